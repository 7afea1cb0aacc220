//! The policy compiled when it loads, so no request asks the policy engine.
//!
//! Everything the policy can decide depends on finitely many facts: the
//! actor's organisation, roles, EU/EEA and purpose, and a record's kind, owner
//! and five flags. A small evaluator of the Polar the policy is written in
//! (rules, `and`/`or`/`not`, `=`, `!=`, `in`, attributes, string and list
//! literals) answers the four entry rules for every combination, and the
//! request path looks the answers up. oso stays for loading (it checks the
//! policy first), `policy test` and `explainDecision`; a test compares the two
//! on every combination.
//!
//! An owner only matters to the policy through equality (with the actor's
//! organisation or a literal the policy names), so each actor has one entry
//! for its own organisation, one per organisation the policy names, and one
//! for every other owner.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use super::engine::{Principal, Record, RecordDecision};
use super::ResourceKind;

// ---------------------------------------------------------------- the language

#[derive(Debug, Clone, PartialEq)]
enum Term {
    Var(String),
    Str(String),
    Bool(bool),
    List(Vec<Term>),
    Attr(Box<Term>, String),
}

#[derive(Debug, Clone)]
enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Eq(Term, Term),
    Ne(Term, Term),
    In(Term, Term),
    Call(String, Vec<Term>),
    /// A bare boolean: `p.in_eu_eea`.
    Test(Term),
}

#[derive(Debug, Clone)]
enum Param {
    /// `_` or `_name`, with its specializer if any (still checked).
    Wild(Option<String>),
    Lit(String),
    Var(String, Option<String>),
}

#[derive(Debug, Clone)]
struct Rule {
    params: Vec<Param>,
    body: Option<Expr>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Punct(&'static str),
}

fn tokenize(text: &str) -> anyhow::Result<Vec<Tok>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            '#' => while chars.next().is_some_and(|c| c != '\n') {},
            c if c.is_whitespace() => {
                chars.next();
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => s.extend(chars.next()),
                        Some(c) => s.push(c),
                        None => anyhow::bail!("unterminated string"),
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut s = String::new();
                while let Some(&c) = chars.peek().filter(|c| c.is_alphanumeric() || **c == '_') {
                    s.push(c);
                    chars.next();
                }
                // Numbers are not in the subset: a policy that needs one is
                // refused rather than read as a variable.
                anyhow::ensure!(
                    !s.starts_with(|c: char| c.is_ascii_digit()),
                    "numbers are not supported by the policy compiler: {s}"
                );
                out.push(Tok::Ident(s));
            }
            '!' => {
                chars.next();
                anyhow::ensure!(chars.next() == Some('='), "`!` without `=`");
                out.push(Tok::Punct("!="));
            }
            _ => {
                chars.next();
                let p = match c {
                    '(' => "(",
                    ')' => ")",
                    '[' => "[",
                    ']' => "]",
                    ',' => ",",
                    ';' => ";",
                    ':' => ":",
                    '.' => ".",
                    '=' => "=",
                    other => anyhow::bail!("unexpected character {other:?}"),
                };
                out.push(Tok::Punct(p));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }
    fn next(&mut self) -> anyhow::Result<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t.ok_or_else(|| anyhow::anyhow!("unexpected end of policy"))
    }
    fn is(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Tok::Punct(q)) if *q == p)
            || matches!(self.peek(), Some(Tok::Ident(q)) if q == p)
    }
    fn expect(&mut self, p: &str) -> anyhow::Result<()> {
        anyhow::ensure!(self.is(p), "expected `{p}`, found {:?}", self.peek());
        self.at += 1;
        Ok(())
    }
    fn ident(&mut self) -> anyhow::Result<String> {
        match self.next()? {
            Tok::Ident(s) => Ok(s),
            t => anyhow::bail!("expected a name, found {t:?}"),
        }
    }

    fn rule(&mut self) -> anyhow::Result<(String, Rule)> {
        let name = self.ident()?;
        self.expect("(")?;
        let params = self.items(")", |p| match p.next()? {
            Tok::Str(s) => Ok(Param::Lit(s)),
            Tok::Ident(v) => {
                let spec = if p.is(":") {
                    p.at += 1;
                    Some(p.ident()?)
                } else {
                    None
                };
                Ok(if v.starts_with('_') { Param::Wild(spec) } else { Param::Var(v, spec) })
            }
            t => anyhow::bail!("unexpected {t:?} in the parameters of {name}"),
        })?;
        let body = if self.is("if") {
            self.at += 1;
            Some(self.or()?)
        } else {
            None
        };
        self.expect(";")?;
        Ok((name, Rule { params, body }))
    }

    /// Items separated by commas up to `close`, which is consumed.
    fn items<T>(
        &mut self,
        close: &str,
        mut item: impl FnMut(&mut Self) -> anyhow::Result<T>,
    ) -> anyhow::Result<Vec<T>> {
        let mut out = Vec::new();
        while !self.is(close) {
            out.push(item(self)?);
            if self.is(",") {
                self.at += 1;
            } else if !self.is(close) {
                anyhow::bail!("expected `,` or `{close}`, found {:?}", self.peek());
            }
        }
        self.expect(close)?;
        Ok(out)
    }

    fn or(&mut self) -> anyhow::Result<Expr> {
        self.chain("or", Self::and, Expr::Or)
    }

    fn and(&mut self) -> anyhow::Result<Expr> {
        self.chain("and", Self::unary, Expr::And)
    }

    /// `next (op next)*`: one operand alone, or all of them joined.
    fn chain(
        &mut self,
        op: &str,
        next: fn(&mut Self) -> anyhow::Result<Expr>,
        join: fn(Vec<Expr>) -> Expr,
    ) -> anyhow::Result<Expr> {
        let mut parts = vec![next(self)?];
        while self.is(op) {
            self.at += 1;
            parts.push(next(self)?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { join(parts) })
    }

    fn unary(&mut self) -> anyhow::Result<Expr> {
        if self.is("not") {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.is("(") {
            self.at += 1;
            let e = self.or()?;
            self.expect(")")?;
            return Ok(e);
        }
        // A call: a name followed by `(`.
        if let (Some(Tok::Ident(name)), Some(Tok::Punct("("))) =
            (self.toks.get(self.at), self.toks.get(self.at + 1))
        {
            let name = name.clone();
            self.at += 2;
            let args = self.items(")", Self::term)?;
            return Ok(Expr::Call(name, args));
        }
        let left = self.term()?;
        for (op, make) in
            [("=", Expr::Eq as fn(Term, Term) -> Expr), ("!=", Expr::Ne), ("in", Expr::In)]
        {
            if self.is(op) {
                self.at += 1;
                return Ok(make(left, self.term()?));
            }
        }
        Ok(Expr::Test(left))
    }

    fn term(&mut self) -> anyhow::Result<Term> {
        let mut t = match self.next()? {
            Tok::Str(s) => Term::Str(s),
            Tok::Ident(s) if s == "true" => Term::Bool(true),
            Tok::Ident(s) if s == "false" => Term::Bool(false),
            Tok::Ident(s) => Term::Var(s),
            Tok::Punct("[") => Term::List(self.items("]", Self::term)?),
            t => anyhow::bail!("unexpected {t:?}"),
        };
        while self.is(".") {
            self.at += 1;
            t = Term::Attr(Box::new(t), self.ident()?);
        }
        Ok(t)
    }
}

// ---------------------------------------------------------------- evaluation

#[derive(Debug, Clone, PartialEq)]
enum Val<'a> {
    Str(&'a str),
    Bool(bool),
    List(Vec<Val<'a>>),
    Principal(&'a Principal),
    Record(&'a Record),
}

/// Variable bindings of one solution (few: a linear list is fastest).
type Env<'a> = Vec<(&'a str, Val<'a>)>;

/// A parsed policy: rules by name and arity, in source order (the order oso
/// answers in, which decides the rule a decision names first).
pub struct Program {
    /// By name; a call takes the rules of its arity.
    rules: HashMap<String, Vec<Rule>>,
    /// Every string the policy names: the owners that can matter by name.
    literals: Vec<String>,
}

impl Program {
    pub fn parse_dir(dir: &Path) -> anyhow::Result<Self> {
        let mut text = String::new();
        for f in super::files_with_extension(dir, "polar")? {
            text.push_str(&std::fs::read_to_string(&f)?);
            text.push('\n');
        }
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut p = Parser { toks: tokenize(text)?, at: 0 };
        let literals = p
            .toks
            .iter()
            .filter_map(|t| match t {
                Tok::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        let mut rules: HashMap<String, Vec<Rule>> = HashMap::new();
        while p.peek().is_some() {
            let (name, rule) = p.rule()?;
            rules.entry(name).or_default().push(rule);
        }
        Ok(Program { rules, literals })
    }

    fn resolve<'a>(&self, t: &'a Term, env: &Env<'a>) -> anyhow::Result<Option<Val<'a>>> {
        Ok(match t {
            Term::Str(s) => Some(Val::Str(s)),
            Term::Bool(b) => Some(Val::Bool(*b)),
            Term::Var(v) => env.iter().rev().find(|(n, _)| n == v).map(|(_, x)| x.clone()),
            Term::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    let v = self.resolve(i, env)?;
                    out.push(v.ok_or_else(|| anyhow::anyhow!("an unbound variable in a list"))?);
                }
                Some(Val::List(out))
            }
            Term::Attr(base, name) => {
                let base = self
                    .resolve(base, env)?
                    .ok_or_else(|| anyhow::anyhow!("`.{name}` of an unbound variable"))?;
                Some(attribute(base, name)?)
            }
        })
    }

    /// Binds `t` to `v` in `env` if `t` is unbound, or compares: the envs
    /// that follow (none or one).
    fn unify<'a>(
        &self,
        t: &'a Term,
        v: Val<'a>,
        mut env: Env<'a>,
    ) -> anyhow::Result<Option<Env<'a>>> {
        match self.resolve(t, &env)? {
            Some(x) => Ok((x == v).then_some(env)),
            None => match t {
                Term::Var(name) => {
                    env.push((name, v));
                    Ok(Some(env))
                }
                _ => anyhow::bail!("cannot bind {t:?}"),
            },
        }
    }

    fn solve<'a>(
        &'a self,
        e: &'a Expr,
        env: Env<'a>,
        out: &mut Vec<Env<'a>>,
    ) -> anyhow::Result<()> {
        match e {
            Expr::And(parts) => {
                let mut envs = vec![env];
                for p in parts {
                    let mut next = Vec::new();
                    for env in envs {
                        self.solve(p, env, &mut next)?;
                    }
                    envs = next;
                    if envs.is_empty() {
                        break;
                    }
                }
                out.extend(envs);
            }
            Expr::Or(parts) => {
                for p in parts {
                    self.solve(p, env.clone(), out)?;
                }
            }
            Expr::Not(inner) => {
                let mut found = Vec::new();
                self.solve(inner, env.clone(), &mut found)?;
                if found.is_empty() {
                    out.push(env);
                }
            }
            Expr::Eq(a, b) => match (self.resolve(a, &env)?, self.resolve(b, &env)?) {
                (Some(x), Some(y)) => {
                    if x == y {
                        out.push(env);
                    }
                }
                (Some(x), None) => out.extend(self.unify(b, x, env)?),
                (None, Some(y)) => out.extend(self.unify(a, y, env)?),
                (None, None) => anyhow::bail!("`=` of two unbound variables"),
            },
            Expr::Ne(a, b) => match (self.resolve(a, &env)?, self.resolve(b, &env)?) {
                (Some(x), Some(y)) => {
                    if x != y {
                        out.push(env);
                    }
                }
                _ => anyhow::bail!("`!=` of an unbound variable"),
            },
            Expr::In(item, list) => {
                // An actor's roles are read in place (the most frequent `in`).
                if let Term::Attr(base, attr) = list {
                    if let (Some(Val::Principal(p)), "roles") =
                        (self.resolve(base, &env)?, attr.as_str())
                    {
                        if let Some(Val::Str(role)) = self.resolve(item, &env)? {
                            if p.roles.iter().any(|r| r == role) {
                                out.push(env);
                            }
                            return Ok(());
                        }
                    }
                }
                let Some(Val::List(items)) = self.resolve(list, &env)? else {
                    anyhow::bail!("`in` needs a list");
                };
                for v in items {
                    out.extend(self.unify(item, v, env.clone())?);
                }
            }
            Expr::Test(t) => {
                if self.resolve(t, &env)? == Some(Val::Bool(true)) {
                    out.push(env);
                }
            }
            Expr::Call(name, args) => self.call(name, args, env, out)?,
        }
        Ok(())
    }

    fn call<'a>(
        &'a self,
        name: &str,
        args: &'a [Term],
        env: Env<'a>,
        out: &mut Vec<Env<'a>>,
    ) -> anyhow::Result<()> {
        let rules = self.rules.get(name).map_or(&[][..], Vec::as_slice);
        anyhow::ensure!(
            rules.iter().any(|r| r.params.len() == args.len()),
            "no rule {name}/{}",
            args.len()
        );
        let values: Vec<Option<Val<'a>>> =
            args.iter().map(|a| self.resolve(a, &env)).collect::<anyhow::Result<_>>()?;
        'rules: for rule in rules.iter().filter(|r| r.params.len() == args.len()) {
            let mut inner: Env<'a> = Vec::new();
            for (param, value) in rule.params.iter().zip(&values) {
                match (param, value) {
                    (Param::Wild(_), None) | (Param::Lit(_), None) | (Param::Var(_, _), None) => {}
                    (Param::Wild(spec), Some(v)) => {
                        if !matches_spec(v, spec.as_deref()) {
                            continue 'rules;
                        }
                    }
                    (Param::Lit(l), Some(v)) => {
                        if *v != Val::Str(l) {
                            continue 'rules;
                        }
                    }
                    (Param::Var(n, spec), Some(v)) => {
                        if !matches_spec(v, spec.as_deref()) {
                            continue 'rules;
                        }
                        inner.push((n, v.clone()));
                    }
                }
            }
            let mut solutions = Vec::new();
            match &rule.body {
                Some(body) => self.solve(body, inner, &mut solutions)?,
                None => solutions.push(inner),
            }
            // Hand the values of the caller's unbound arguments back.
            'solutions: for sol in solutions {
                let mut env = env.clone();
                for ((param, value), arg) in rule.params.iter().zip(&values).zip(args) {
                    if value.is_some() {
                        continue;
                    }
                    let bound = match param {
                        Param::Lit(l) => Some(Val::Str(l)),
                        Param::Var(n, _) => {
                            sol.iter().rev().find(|(m, _)| m == n).map(|(_, v)| v.clone())
                        }
                        Param::Wild(_) => None,
                    };
                    if let Some(v) = bound {
                        match self.unify(arg, v, env)? {
                            Some(e) => env = e,
                            None => continue 'solutions,
                        }
                    }
                }
                out.push(env);
            }
        }
        Ok(())
    }

    /// The values of `vars` in every solution of `rule(args)`, in order.
    fn query<'a>(
        &'a self,
        rule: &str,
        args: &'a [Term],
        bindings: Env<'a>,
        vars: &[&str],
    ) -> anyhow::Result<Vec<Vec<String>>> {
        let mut out = Vec::new();
        self.call(rule, args, bindings, &mut out)?;
        out.into_iter()
            .map(|env| {
                vars.iter()
                    .map(|v| match env.iter().rev().find(|(n, _)| n == v) {
                        Some((_, Val::Str(s))) => Ok((*s).to_owned()),
                        other => anyhow::bail!("{rule}: `{v}` is {other:?}, not a string"),
                    })
                    .collect()
            })
            .collect()
    }
}

fn matches_spec(v: &Val<'_>, spec: Option<&str>) -> bool {
    matches!(
        (spec, v),
        (None, _)
            | (Some("Principal"), Val::Principal(_))
            | (Some("Record"), Val::Record(_))
            | (Some("String"), Val::Str(_))
            | (Some("Boolean"), Val::Bool(_))
            | (Some("List"), Val::List(_))
    )
}

fn attribute<'a>(base: Val<'a>, name: &str) -> anyhow::Result<Val<'a>> {
    Ok(match (base, name) {
        (Val::Principal(p), "org") => Val::Str(&p.org),
        (Val::Principal(p), "org_kind") => Val::Str(&p.org_kind),
        (Val::Principal(p), "roles") => Val::List(p.roles.iter().map(|r| Val::Str(r)).collect()),
        (Val::Principal(p), "in_eu_eea") => Val::Bool(p.in_eu_eea),
        (Val::Principal(p), "purpose") => Val::Str(&p.purpose),
        (Val::Record(r), "kind") => Val::Str(&r.kind),
        (Val::Record(r), "owner") => Val::Str(&r.owner),
        (Val::Record(r), "restricted") => Val::Bool(r.restricted),
        (Val::Record(r), "marketing_objection") => Val::Bool(r.marketing_objection),
        (Val::Record(r), "in_sector") => Val::Bool(r.in_sector),
        (Val::Record(r), "sole_trader") => Val::Bool(r.sole_trader),
        (Val::Record(r), "erased") => Val::Bool(r.erased),
        (base, name) => anyhow::bail!("no attribute `{name}` on {base:?}"),
    })
}

/// What the policy says about one actor and one record, writes included.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Entry {
    pub decision: RecordDecision,
    /// Action → the rules that allow it (empty: none), as oso answers them.
    pub writes: BTreeMap<String, Vec<String>>,
}

impl Program {
    /// The rule refusing the actor's whole request, if any.
    pub fn refused(&self, actor: &Principal) -> anyhow::Result<Option<String>> {
        let args = [Term::Var("p".into()), Term::Var("rule".into())];
        let env = vec![("p", Val::Principal(actor))];
        Ok(self.query("refused", &args, env, &["rule"])?.into_iter().flatten().next())
    }

    /// Everything the policy says about the actor and the record, computed
    /// the way `PolicyEngine` asks oso (same order, same de-duplication).
    pub fn entry(&self, actor: &Principal, record: &Record) -> anyhow::Result<Entry> {
        self.entry_refused(actor, record, self.refused(actor)?)
    }

    fn entry_refused(
        &self,
        actor: &Principal,
        record: &Record,
        refused: Option<String>,
    ) -> anyhow::Result<Entry> {
        let [p, r, rule, class, action] =
            ["p", "r", "rule", "class", "action"].map(|v| Term::Var(v.into()));
        let env = || vec![("p", Val::Principal(actor)), ("r", Val::Record(record))];
        let hidden_args = [p.clone(), r.clone(), rule.clone()];
        let hidden = self.query("hidden", &hidden_args, env(), &["rule"])?;
        let readable_args = [p.clone(), r.clone(), class, rule.clone()];
        let readable = self.query("readable", &readable_args, env(), &["class", "rule"])?;
        let write_args = [p, action, r, rule];
        let writes = self.query("may_write", &write_args, env(), &["action", "rule"])?;
        Ok(Entry {
            decision: RecordDecision::from_answers(refused, hidden, readable),
            writes: super::engine::group_writes(writes),
        })
    }
}

// ---------------------------------------------------------------- the table

impl Program {
    /// Every decision for one actor profile: each record shape with the
    /// actor's own organisation, each named one and any other as its owner.
    fn table(
        &self,
        actor: &Principal,
        named: &[String],
        shapes: &[Record],
    ) -> anyhow::Result<ActorTable> {
        // An owner that is neither the actor's organisation nor named: one
        // that no organisation code equals.
        const OTHER: &str = "\u{0}other";
        let refused = self.refused(actor)?;
        let mut entries = HashMap::new();
        if refused.is_none() {
            let mut owners = vec![(OwnerClass::Own, actor.org.clone())];
            for (i, n) in named.iter().enumerate().filter(|(_, n)| **n != actor.org) {
                owners.push((OwnerClass::Named(i), n.clone()));
            }
            owners.push((OwnerClass::Other, OTHER.to_owned()));
            // Equal entries are shared: there are few distinct ones.
            let mut shared: HashMap<Entry, Arc<Entry>> = HashMap::new();
            for shape in shapes {
                for (class, owner) in &owners {
                    let record = Record { owner: owner.clone(), ..shape.clone() };
                    let entry = self.entry_refused(actor, &record, None)?;
                    let entry =
                        shared.entry(entry.clone()).or_insert_with(|| Arc::new(entry)).clone();
                    let kind = shape
                        .resource()
                        .ok_or_else(|| anyhow::anyhow!("unknown resource kind {}", shape.kind))?;
                    let key = RecordKey { kind, owner: *class, flags: flags(shape) };
                    entries.insert(key, entry);
                }
            }
        }
        let refused_entry = refused.as_ref().map(|rule| {
            Arc::new(Entry {
                decision: RecordDecision {
                    refused: Some(rule.clone()),
                    hidden: vec![rule.clone()],
                    readable: BTreeMap::new(),
                },
                writes: BTreeMap::new(),
            })
        });
        Ok(ActorTable { refused, entries, refused_entry, named: named.into() })
    }
}

/// Which owner an entry stands for, relative to the actor: its own
/// organisation, one the policy names (by its index in the named list), or
/// any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum OwnerClass {
    Own,
    Named(usize),
    Other,
}

/// The record facts a table entry is keyed on (the owner as its class).
/// Copy, so a lookup on the request path allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct RecordKey {
    kind: ResourceKind,
    owner: OwnerClass,
    flags: u8,
}

fn flags(r: &Record) -> u8 {
    u8::from(r.restricted)
        | u8::from(r.marketing_objection) << 1
        | u8::from(r.in_sector) << 2
        | u8::from(r.sole_trader) << 3
        | u8::from(r.erased) << 4
}

/// Every decision of one actor profile.
pub struct ActorTable {
    pub refused: Option<String>,
    entries: HashMap<RecordKey, Arc<Entry>>,
    /// For a refused actor, the one answer to everything: refused, and every
    /// record hidden (fail closed), whatever else the policy would say.
    refused_entry: Option<Arc<Entry>>,
    /// The organisations the policy names, as when the table was compiled.
    named: Arc<[String]>,
}

impl ActorTable {
    /// The entry for a record of the actor of organisation `org`; `None`
    /// outside the compiled space.
    pub fn lookup(&self, org: &str, record: &Record) -> Option<&Arc<Entry>> {
        if let Some(refused) = &self.refused_entry {
            return Some(refused);
        }
        let owner = if record.owner == org {
            OwnerClass::Own
        } else if let Some(i) = self.named.iter().position(|n| *n == record.owner) {
            OwnerClass::Named(i)
        } else {
            OwnerClass::Other
        };
        let key = RecordKey { kind: record.resource()?, owner, flags: flags(record) };
        self.entries.get(&key)
    }
}

impl Entry {
    /// The rules that let the actor read `class` of the record, or `None`
    /// when it may not: the same composition as `Authorizer::read_field`
    /// (a refused actor or a hidden record reads nothing; a class no rule
    /// allows is denied), borrowed from the table.
    pub fn readable(&self, class: &str) -> Option<&[String]> {
        let d = &self.decision;
        if d.refused.is_some() || !d.hidden.is_empty() {
            return None;
        }
        d.readable.get(class).filter(|rules| !rules.is_empty()).map(Vec::as_slice)
    }
}

pub struct CompiledPolicy {
    program: Program,
    /// Each table knows the organisations the policy names (an owner among
    /// them is its own class).
    actors: HashMap<Principal, Arc<ActorTable>>,
}

impl CompiledPolicy {
    /// Compiles the policy for every actor profile of `actors` and every
    /// record shape of `records` (kind and flags; the owner is varied here).
    pub fn compile(
        program: Program,
        actors: Vec<Principal>,
        records: &[Record],
        orgs: &[&str],
    ) -> anyhow::Result<Self> {
        let named: Vec<String> = orgs
            .iter()
            .filter(|o| program.literals.iter().any(|l| l == *o))
            .map(|o| (*o).to_owned())
            .collect();
        // Organisations the policy does not name, of one kind, are
        // interchangeable (owners are classed relative to the actor): one
        // stands for the others and they share its table.
        let stand_in = |actor: &Principal| match named.contains(&actor.org) {
            true => actor.clone(),
            false => Principal { org: format!("\u{0}{}", actor.org_kind), ..actor.clone() },
        };
        let distinct: Vec<Principal> = actors
            .iter()
            .map(stand_in)
            .collect::<std::collections::HashSet<_>>()
            .into_iter()
            .collect();
        // Compiled on every core: the profiles are independent.
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let chunk = distinct.len().div_ceil(threads).max(1);
        type Tables = Vec<(Principal, ActorTable)>;
        let computed: Vec<anyhow::Result<Tables>> = std::thread::scope(|s| {
            let handles: Vec<_> = distinct
                .chunks(chunk)
                .map(|part| {
                    let (program, named) = (&program, &named);
                    s.spawn(move || {
                        part.iter()
                            .map(|a| Ok((a.clone(), program.table(a, named, records)?)))
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("policy compilation panicked")))
                })
                .collect()
        });
        // Equal entries are shared across every table: a few dozen distinct
        // decisions stand for the whole space (megabytes otherwise).
        let mut shared: HashMap<Arc<Entry>, Arc<Entry>> = HashMap::new();
        let mut by_stand_in: HashMap<Principal, Arc<ActorTable>> = HashMap::new();
        for part in computed {
            for (actor, mut table) in part? {
                for entry in table.entries.values_mut() {
                    *entry = shared.entry(entry.clone()).or_insert_with(|| entry.clone()).clone();
                }
                by_stand_in.insert(actor, Arc::new(table));
            }
        }
        let mut tables = HashMap::with_capacity(actors.len());
        for actor in actors {
            let table = by_stand_in
                .get(&stand_in(&actor))
                .ok_or_else(|| anyhow::anyhow!("no table for {actor:?}"))?
                .clone();
            tables.insert(actor, table);
        }
        Ok(CompiledPolicy { program, actors: tables })
    }

    pub fn actor(&self, actor: &Principal) -> Option<&Arc<ActorTable>> {
        self.actors.get(actor)
    }

    pub fn profiles(&self) -> usize {
        self.actors.len()
    }

    /// The compiled entry for the actor and the record; `None` for a
    /// combination outside the compiled space (the caller falls back).
    pub fn lookup(&self, actor: &Principal, record: &Record) -> Option<&Arc<Entry>> {
        self.actors.get(actor)?.lookup(&actor.org, record)
    }

    pub fn program(&self) -> &Program {
        &self.program
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::PolicyEngine;

    /// The compiled table answers every actor profile and record shape, for
    /// every owner, exactly as the compiled program does (so the owner
    /// classes lose nothing), and the program answers as oso does: refusal for
    /// every profile, and every decision and write for each profile of the
    /// organisations that stand for the rest (a controller, the one the
    /// policy names, a recipient) on every shape with each kind of owner.
    /// Minutes in a debug build (oso answers about 60,000 decisions here):
    /// `.ci/run` runs it, `cargo test` skips it; the sampled test below runs
    /// always.
    #[test]
    #[ignore = "exhaustive; run by .ci/run"]
    fn compiled_policy_agrees_with_oso_on_every_combination() {
        let dir = Path::new("policies");
        let oso = PolicyEngine::load(dir).expect("load");
        let started = std::time::Instant::now();
        let orgs: Vec<&str> = crate::db::OrgCode::ALL.iter().map(|o| o.as_str()).collect();
        let profiles = crate::authz::actor_profiles();
        let shapes = crate::authz::record_shapes();
        let compiled = CompiledPolicy::compile(
            Program::parse_dir(dir).expect("parse"),
            profiles.clone(),
            &shapes,
            &orgs,
        )
        .expect("compile");
        let program = compiled.program();
        eprintln!("compiled in {:?}", started.elapsed());
        let mut compared = 0usize;
        for actor in &profiles {
            let refused = compiled.actor(actor).expect("compiled").refused.clone();
            assert_eq!(refused, oso.refused(actor).expect("oso"), "{actor:?}");
            if refused.is_some() {
                continue;
            }
            for shape in &shapes {
                for owner in &orgs {
                    let record = Record { owner: (*owner).to_owned(), ..shape.clone() };
                    let table = compiled.lookup(actor, &record).expect("in the table");
                    let direct = program.entry(actor, &record).expect("program");
                    assert_eq!(**table, direct, "{actor:?} {record:?}");
                }
            }
        }
        eprintln!("table checked at {:?}", started.elapsed());
        let standing_for_all = ["TEM", "BFOY", "MMM"];
        let owners = ["TEM", "ELY", "BFOY", "MMM"];
        let sample: Vec<&Principal> = profiles
            .iter()
            .filter(|p| standing_for_all.contains(&p.org.as_str()))
            .filter(|p| compiled.actor(p).is_some_and(|t| t.refused.is_none()))
            .collect();
        std::thread::scope(|s| {
            let chunks: Vec<_> = sample.chunks(sample.len().div_ceil(2)).collect();
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    let (oso, program, shapes) = (&oso, program, &shapes);
                    s.spawn(move || {
                        let mut n = 0usize;
                        for actor in chunk {
                            for shape in shapes {
                                for owner in owners {
                                    let record =
                                        Record { owner: owner.to_owned(), ..shape.clone() };
                                    let mine = program.entry(actor, &record).expect("program");
                                    let theirs = oso.evaluate_all(actor, &record).expect("oso");
                                    assert_eq!(mine, theirs, "{actor:?} {record:?}");
                                    n += 1;
                                }
                            }
                        }
                        n
                    })
                })
                .collect();
            for h in handles {
                compared += h.join().expect("thread");
            }
        });
        eprintln!("{compared} compared with oso at {:?}", started.elapsed());
        assert!(compared > 10_000, "{compared}");
    }

    /// A sample of the exhaustive comparison: every 97th combination of
    /// profile, shape and owner.
    #[test]
    fn compiled_policy_agrees_with_oso_on_a_sample() {
        let dir = Path::new("policies");
        let oso = PolicyEngine::load(dir).expect("load");
        let program = Program::parse_dir(dir).expect("parse");
        let profiles = crate::authz::actor_profiles();
        let shapes = crate::authz::record_shapes();
        let orgs: Vec<&str> = crate::db::OrgCode::ALL.iter().map(|o| o.as_str()).collect();
        let mut n = 0usize;
        for (i, actor) in profiles.iter().enumerate().step_by(7) {
            assert_eq!(program.refused(actor).expect("program"), oso.refused(actor).expect("oso"));
            let shape = &shapes[i % shapes.len()];
            let record = Record { owner: orgs[i % orgs.len()].to_owned(), ..shape.clone() };
            let mine = program.entry(actor, &record).expect("program");
            assert_eq!(
                mine,
                oso.evaluate_all(actor, &record).expect("oso"),
                "{actor:?} {record:?}"
            );
            n += 1;
        }
        assert!(n > 300, "{n}");
    }

    #[test]
    fn constructs_outside_the_subset_are_refused() {
        for policy in [
            "r(p: Principal) if p.count > 2;",
            "r(p: Principal) if p.count = 2;",
            "r(p: Principal) if p matches Principal;",
            "r(p: Principal) if forall(x in p.roles, x = \"a\");",
            "r(p: Principal) if p.org = \"unterminated;",
        ] {
            assert!(Program::parse(policy).is_err(), "{policy}");
        }
        assert!(
            Program::parse("r(p: Principal, \"x\") if p.org = \"TEM\" or not p.in_eu_eea;").is_ok()
        );
    }

    #[test]
    fn a_specializer_on_an_unnamed_parameter_still_applies() {
        let program = Program::parse("f(_x: Record, \"matched\"); g(_, \"any\");").expect("parse");
        let args = [Term::Str("a string".into()), Term::Var("out".into())];
        assert!(program.query("f", &args, vec![], &["out"]).expect("query").is_empty());
        assert_eq!(
            program.query("g", &args, vec![], &["out"]).expect("query"),
            vec![vec!["any".to_owned()]]
        );
    }
}
