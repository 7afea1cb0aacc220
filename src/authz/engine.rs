//! The policy engine: the only code that calls oso.
//!
//! The Rust oso crate has no `authorized_fields`, so one `readable` query with
//! variables for the class and the rule answers every field class of a record
//! at once. Decisions are memoized on everything the policy can see (actor
//! facts and record facts), so a page of rows costs a number of policy queries
//! that grows with the distinct fact combinations, not with rows × fields.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use oso::{Oso, PolarClass, PolarValue};

/// What the policy sees of an actor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PolarClass)]
#[polar(class_name = "Principal")]
pub struct Principal {
    #[polar(attribute)]
    pub org: String,
    #[polar(attribute)]
    pub org_kind: String,
    /// Sorted, without duplicates.
    #[polar(attribute)]
    pub roles: Vec<String>,
    #[polar(attribute)]
    pub in_eu_eea: bool,
    #[polar(attribute)]
    pub purpose: String,
}

/// What the policy sees of a row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PolarClass)]
#[polar(class_name = "Record")]
pub struct Record {
    /// company, confidential, contact or service.
    #[polar(attribute)]
    pub kind: String,
    /// The registering organisation, or a service's provider.
    #[polar(attribute)]
    pub owner: String,
    /// Processing restricted, or an objection being assessed.
    #[polar(attribute)]
    pub restricted: bool,
    #[polar(attribute)]
    pub marketing_objection: bool,
    /// Its company's industry is in the recipients' scope (TOL 01–03, 10, 11).
    #[polar(attribute)]
    pub in_sector: bool,
    #[polar(attribute)]
    pub sole_trader: bool,
    #[polar(attribute)]
    pub erased: bool,
}

/// Everything the policy says about one actor and one record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RecordDecision {
    /// The rule that refuses the whole request, if any (403).
    pub refused: Option<String>,
    /// The rules that hide the record, if any (NOT_FOUND, left out of lists).
    pub hidden: Vec<String>,
    /// Readable field class → the rules that allow it.
    pub readable: BTreeMap<String, Vec<String>>,
}

impl RecordDecision {
    /// The policy's answers as one decision: `hidden`'s rules sorted and
    /// unique; `readable`'s (class, rule) pairs grouped by class, each rule
    /// once, in the order they were answered (the first names the decision).
    pub(crate) fn from_answers(
        refused: Option<String>,
        hidden: Vec<Vec<String>>,
        readable: Vec<Vec<String>>,
    ) -> Self {
        let mut hidden: Vec<String> = hidden.into_iter().flatten().collect();
        hidden.sort();
        hidden.dedup();
        let mut by_class: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for pair in readable {
            if let [class, rule] = &pair[..] {
                let rules = by_class.entry(class.clone()).or_default();
                if !rules.contains(rule) {
                    rules.push(rule.clone());
                }
            }
        }
        RecordDecision { refused, hidden, readable: by_class }
    }
}

/// `may_write`'s (action, rule) answers grouped by action, in answer order.
pub(crate) fn group_writes(pairs: Vec<Vec<String>>) -> BTreeMap<String, Vec<String>> {
    let mut writes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in pairs {
        if let [action, rule] = &pair[..] {
            writes.entry(action.clone()).or_default().push(rule.clone());
        }
    }
    writes
}

tokio::task_local! {
    /// The policy queries of the request being served, when one is: the
    /// gateway scopes it around a request's policy work and reports it.
    pub static REQUEST_QUERIES: Arc<AtomicU64>;
}

static PROCESS_QUERIES: AtomicU64 = AtomicU64::new(0);
static PROCESS_NANOS: AtomicU64 = AtomicU64::new(0);

/// Answered when no rule allows.
pub const DEFAULT_DENY: &str = "R12-default-deny";

pub struct PolicyEngine {
    oso: Oso,
    version: String,
    files: Vec<PathBuf>,
    memo: Memo<(Principal, Record), Arc<RecordDecision>>,
    refusals: Memo<Principal, Option<String>>,
    /// Visibility alone, as derived for SQL filters and asked row by row.
    hidden_memo: Memo<(Principal, Record), Vec<String>>,
    queries: AtomicU64,
}

/// A memo of policy answers, bounded: past its limit it is cleared rather
/// than grown. The fact space is small (organisations × role sets × purposes
/// × record facts), so the limit only bounds a pathological mix.
pub(crate) struct Memo<K, V> {
    map: Mutex<HashMap<K, V>>,
}

const MEMO_LIMIT: usize = 100_000;

impl<K, V> Default for Memo<K, V> {
    fn default() -> Self {
        Memo { map: Mutex::new(HashMap::new()) }
    }
}

impl<K: Eq + std::hash::Hash, V: Clone> Memo<K, V> {
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        self.map.lock().ok().and_then(|m| m.get(key).cloned())
    }

    /// The remembered answer, or `compute`'s, remembered. Computed outside
    /// the lock: policy queries are slow and may run on several threads.
    pub(crate) fn get_or_try(
        &self,
        key: K,
        compute: impl FnOnce() -> anyhow::Result<V>,
    ) -> anyhow::Result<V> {
        if let Some(v) = self.get(&key) {
            return Ok(v);
        }
        let value = compute()?;
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= MEMO_LIMIT {
                m.clear();
            }
            m.insert(key, value.clone());
        }
        Ok(value)
    }
}

/// The rules the gateway queries; a policy must define each.
const ENTRY_RULES: [&str; 4] = ["refused", "hidden", "readable", "may_write"];

impl PolicyEngine {
    /// Loads every `.polar` file of `dir` and checks the policy by asking each
    /// entry rule about every combination of probe facts: a rule that names an
    /// unknown class, attribute or rule fails here, not on a user's request.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let files = super::files_with_extension(dir, "polar")?;
        anyhow::ensure!(!files.is_empty(), "no .polar files in {}", dir.display());
        let mut oso = Oso::new();
        oso.register_class(Principal::get_polar_class())?;
        oso.register_class(Record::get_polar_class())?;
        oso.load_files(files.clone())
            .map_err(|e| anyhow::anyhow!("policy in {} does not load: {e}", dir.display()))?;
        let engine = PolicyEngine {
            oso,
            version: super::policy_version(dir)?,
            files,
            memo: Memo::default(),
            refusals: Memo::default(),
            hidden_memo: Memo::default(),
            queries: AtomicU64::new(0),
        };
        engine.check()?;
        Ok(engine)
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Policy queries made so far (a metric, and how tests bound the cost).
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// Policy queries and the seconds spent in them by every engine of the
    /// process (a reload replaces the engine; these counters go on).
    pub fn process_totals() -> (u64, f64) {
        (
            PROCESS_QUERIES.load(Ordering::Relaxed),
            PROCESS_NANOS.load(Ordering::Relaxed) as f64 / 1e9,
        )
    }

    fn check(&self) -> anyhow::Result<()> {
        let probe_actor = Principal {
            org: "TEM".into(),
            org_kind: "CONTROLLER".into(),
            roles: vec![
                "auditor".into(),
                "confidential".into(),
                "dpo".into(),
                "editor".into(),
                "viewer".into(),
            ],
            in_eu_eea: true,
            purpose: "CUSTOMER_RELATIONSHIP".into(),
        };
        for rule in ENTRY_RULES {
            anyhow::ensure!(
                self.defines(rule),
                "the policy defines no rule `{rule}`, which the gateway asks"
            );
        }
        // No flag, all flags, and each flag alone and each flag missing: every
        // rule body is reached with its attributes, at a tenth of the full grid.
        let probes = [0u8, 31, 1, 2, 4, 8, 16, 30, 29, 27, 23, 15];
        for kind in ["company", "confidential", "contact", "service"] {
            for bits in probes {
                let record = Record {
                    kind: kind.into(),
                    owner: "TEM".into(),
                    restricted: bits & 1 != 0,
                    marketing_objection: bits & 2 != 0,
                    in_sector: bits & 4 != 0,
                    sole_trader: bits & 8 != 0,
                    erased: bits & 16 != 0,
                };
                for purpose in ["CUSTOMER_RELATIONSHIP", "MARKETING", "DATA_SUBJECT_REQUEST"] {
                    let actor = Principal { purpose: purpose.into(), ..probe_actor.clone() };
                    self.evaluate(&actor, &record)
                        .map_err(|e| anyhow::anyhow!("policy check failed: {e}"))?;
                    for action in ["create", "update", "delete", "erase"] {
                        self.write_rules(&actor, action, &record)
                            .map_err(|e| anyhow::anyhow!("policy check failed: {e}"))?;
                    }
                }
            }
        }
        self.queries.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Whether a rule of that name is defined: a rule head starts a line.
    fn defines(&self, rule: &str) -> bool {
        let head = format!("{rule}(");
        self.files.iter().any(|f| {
            std::fs::read_to_string(f)
                .is_ok_and(|text| text.lines().any(|l| l.trim_start().starts_with(&head)))
        })
    }

    /// The string values of `vars` in every answer to `rule(args)`, counted
    /// and timed for the metrics.
    fn strings(
        &self,
        rule: &str,
        args: impl oso::ToPolarList,
        vars: &[&str],
    ) -> anyhow::Result<Vec<Vec<String>>> {
        let started = std::time::Instant::now();
        let run = || -> anyhow::Result<Vec<Vec<String>>> {
            let mut out = Vec::new();
            for result in self.oso.query_rule(rule, args)? {
                let result = result?;
                let mut row = Vec::with_capacity(vars.len());
                for v in vars {
                    row.push(result.get_typed::<String>(v)?);
                }
                out.push(row);
            }
            Ok(out)
        };
        let out = run();
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.queries.fetch_add(1, Ordering::Relaxed);
        PROCESS_QUERIES.fetch_add(1, Ordering::Relaxed);
        PROCESS_NANOS.fetch_add(nanos, Ordering::Relaxed);
        let _ = REQUEST_QUERIES.try_with(|c| c.fetch_add(1, Ordering::Relaxed));
        out
    }

    fn evaluate(&self, actor: &Principal, record: &Record) -> anyhow::Result<RecordDecision> {
        let var = |v: &str| PolarValue::Variable(v.to_owned());
        let a = || actor.clone();
        let r = || record.clone();
        let refused =
            self.strings("refused", (a(), var("rule")), &["rule"])?.into_iter().flatten().next();
        let hidden = self.strings("hidden", (a(), r(), var("rule")), &["rule"])?;
        let readable =
            self.strings("readable", (a(), r(), var("class"), var("rule")), &["class", "rule"])?;
        Ok(RecordDecision::from_answers(refused, hidden, readable))
    }

    /// Everything oso says about the actor and the record, every action's
    /// write rules included (what the compiled policy must agree with).
    #[cfg(test)]
    pub(crate) fn evaluate_all(
        &self,
        actor: &Principal,
        record: &Record,
    ) -> anyhow::Result<super::compiled::Entry> {
        let decision = self.evaluate(actor, record)?;
        let args = (
            actor.clone(),
            PolarValue::Variable("action".into()),
            record.clone(),
            PolarValue::Variable("rule".into()),
        );
        let writes = group_writes(self.strings("may_write", args, &["action", "rule"])?);
        Ok(super::compiled::Entry { decision, writes })
    }

    /// The memoized decision for one actor and one record.
    pub fn decide(
        &self,
        actor: &Principal,
        record: &Record,
    ) -> anyhow::Result<Arc<RecordDecision>> {
        self.memo.get_or_try((actor.clone(), record.clone()), || {
            Ok(Arc::new(self.evaluate(actor, record)?))
        })
    }

    /// The rule refusing this actor's whole request, if any (memoized).
    pub fn refused(&self, actor: &Principal) -> anyhow::Result<Option<String>> {
        self.refusals.get_or_try(actor.clone(), || {
            let v = PolarValue::Variable("rule".into());
            Ok(self.strings("refused", (actor.clone(), v), &["rule"])?.into_iter().flatten().next())
        })
    }

    /// The rules hiding `record` from the actor (empty: visible); from the
    /// full decision when it is known.
    pub fn hidden(&self, actor: &Principal, record: &Record) -> anyhow::Result<Vec<String>> {
        let key = (actor.clone(), record.clone());
        if let Some(d) = self.memo.get(&key) {
            return Ok(d.hidden.clone());
        }
        self.hidden_memo.get_or_try(key, || {
            let v = PolarValue::Variable("rule".into());
            Ok(self
                .strings("hidden", (actor.clone(), record.clone(), v), &["rule"])?
                .into_iter()
                .flatten()
                .collect())
        })
    }

    /// The rules that allow `action` on `record` (empty: denied).
    pub fn write_rules(
        &self,
        actor: &Principal,
        action: &str,
        record: &Record,
    ) -> anyhow::Result<Vec<String>> {
        let args =
            (actor.clone(), action.to_owned(), record.clone(), PolarValue::Variable("rule".into()));
        Ok(self.strings("may_write", args, &["rule"])?.into_iter().flatten().collect())
    }
}
