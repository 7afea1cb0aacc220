//! Authorization: the one place where the policy decides, and the only code
//! that will call the policy engine.
//!
//! The Polar policies of docs/access.md (R1–R12) decide: whole requests
//! (`refused`), which rows an actor sees (`hidden`, turned into SQL by
//! [`Authorizer::visibility`]), each field class (`readable`) and each change
//! (`may_write`).

pub mod cases;
pub mod compiled;
pub mod engine;

use std::path::Path;

use sha2::{Digest, Sha256};

pub use crate::register::{FieldClass, ResourceKind};
pub use compiled::CompiledPolicy;
pub use engine::{PolicyEngine, Principal, Record, RecordDecision, DEFAULT_DENY};

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::auth::Actor;
use crate::db::companies::CompanyRow;
use crate::db::confidential::ConfidentialRow;
use crate::db::contacts::ContactRow;
use crate::db::services::ServiceRow;
use crate::db::visible::{self, Visible, VisibleCombo};
use crate::db::OrgCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Delete,
    /// File, extend or resolve a data subject request (R9).
    HandleRequest,
    /// The data subject's rights on a contact (or a sole trader), R9.
    Restrict,
    /// The restriction a restriction, objection or rectification request
    /// puts on its contact when it is filed.
    RestrictOnRequest,
    LiftRestriction,
    ObjectMarketing,
    LegalHold,
    LiftLegalHold,
    Erase,
}

impl Action {
    pub const ALL: [Action; 11] = [
        Action::Create,
        Action::Update,
        Action::Delete,
        Action::HandleRequest,
        Action::Restrict,
        Action::RestrictOnRequest,
        Action::LiftRestriction,
        Action::ObjectMarketing,
        Action::LegalHold,
        Action::LiftLegalHold,
        Action::Erase,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::HandleRequest => "handle_request",
            Action::Restrict => "restrict",
            Action::RestrictOnRequest => "restrict_on_request",
            Action::LiftRestriction => "lift_restriction",
            Action::ObjectMarketing => "object_marketing",
            Action::LegalHold => "legal_hold",
            Action::LiftLegalHold => "lift_legal_hold",
            Action::Erase => "erase",
        }
    }
}

/// What the policy sees of rows: built here, in one place, from the data.
impl Record {
    fn base(kind: ResourceKind, owner: OrgCode) -> Self {
        Record {
            kind: kind.as_str().to_owned(),
            owner: owner.as_str().to_owned(),
            restricted: false,
            marketing_objection: false,
            in_sector: false,
            sole_trader: false,
            erased: false,
        }
    }

    /// A row about to be created by `owner` (nothing about it is hidden yet).
    pub fn new_row(kind: ResourceKind, owner: OrgCode) -> Self {
        Self::base(kind, owner)
    }

    /// The kind of resource this is (`None` only for a record built by hand
    /// with a kind the register does not have).
    pub fn resource(&self) -> Option<ResourceKind> {
        ResourceKind::parse(&self.kind)
    }

    pub fn company(row: &CompanyRow) -> Self {
        Record {
            in_sector: visible::in_sector(row.industry_code.as_deref()),
            sole_trader: row.company_form == crate::db::CompanyForm::SoleTrader,
            erased: row.erased_at.is_some(),
            ..Self::base(ResourceKind::Company, row.registered_by)
        }
    }

    /// `company_industry`: the industry code of the row's company.
    pub fn confidential(row: &ConfidentialRow, company_industry: Option<&str>) -> Self {
        Record {
            in_sector: visible::in_sector(company_industry),
            ..Self::base(ResourceKind::Confidential, row.registered_by)
        }
    }

    pub fn contact(row: &ContactRow, company_industry: Option<&str>) -> Self {
        Record {
            restricted: row.restricted || row.objection_pending,
            marketing_objection: row.marketing_objection,
            in_sector: visible::in_sector(company_industry),
            erased: row.erased_at.is_some(),
            ..Self::base(ResourceKind::Contact, row.registered_by)
        }
    }

    /// A data subject request: owned by the organisation that received it.
    pub fn request(row: &crate::db::requests::RequestRow) -> Self {
        Self::base(ResourceKind::Request, row.received_by)
    }

    pub fn service(row: &ServiceRow, company_industry: Option<&str>) -> Self {
        Record {
            in_sector: visible::in_sector(company_industry),
            ..Self::base(ResourceKind::Service, row.provider)
        }
    }
}

/// The rows of each table an actor may see, derived from the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visibility {
    pub companies: Visible,
    pub contacts: Visible,
    pub services: Visible,
    pub confidential: Visible,
}

impl Visibility {
    pub fn all() -> Self {
        Visibility {
            companies: Visible::All,
            contacts: Visible::All,
            services: Visible::All,
            confidential: Visible::All,
        }
    }
}

/// Which facts vary within each table (the others are constant there; see
/// `db::visible::FactColumns`): restricted, marketing objection, in sector,
/// erased, sole trader.
const VARYING: [(ResourceKind, [bool; 5]); 4] = [
    (ResourceKind::Company, [false, false, true, true, true]),
    (ResourceKind::Contact, [true, true, true, true, false]),
    (ResourceKind::Service, [false, false, true, false, false]),
    (ResourceKind::Confidential, [false, false, true, false, false]),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub rules: Vec<String>,
}

impl Decision {
    pub fn rule(&self) -> &str {
        self.rules.first().map_or(DEFAULT_DENY, String::as_str)
    }
}

pub struct Authorizer {
    engine: PolicyEngine,
    /// Decisions asked outside the compiled space (answered by evaluating
    /// the compiled program): none is expected; tests hold it at zero.
    misses: std::sync::atomic::AtomicU64,
    /// Every decision the request path asks for, computed when the policy
    /// loaded: no request queries oso.
    compiled: Arc<CompiledPolicy>,
    visibility: engine::Memo<Principal, Arc<Visibility>>,
}

/// Every actor profile the gateway can present to the policy: each
/// organisation, set of roles, EU/EEA or not, and purpose.
/// Built from actors exactly as a request builds them ([`Principal::of`]),
/// so a request's principal is always one of these.
pub fn actor_profiles() -> Vec<Principal> {
    use crate::auth::{Purpose, Role};
    let mut out = Vec::new();
    for org in OrgCode::ALL {
        for set in 0u32..(1 << Role::ALL.len()) {
            let mut roles: Vec<Role> = Role::ALL
                .iter()
                .enumerate()
                .filter(|(i, _)| set & (1 << i) != 0)
                .map(|(_, r)| *r)
                .collect();
            roles.sort();
            // Finland is in the EU/EEA, the United States is not.
            for country in ["FI", "US"] {
                for purpose in Purpose::ALL {
                    out.push(Principal::of(&Actor {
                        sub: String::new(),
                        org: *org,
                        roles: roles.clone(),
                        country: country.to_owned(),
                        purpose: *purpose,
                    }));
                }
            }
        }
    }
    out
}

/// Every record shape the gateway builds (owner aside): each kind with every
/// combination of the facts that vary in its table, and of `in_sector`, which
/// the register-level guards assume.
pub fn record_shapes() -> Vec<Record> {
    let mut varying: Vec<(ResourceKind, [bool; 5])> = VARYING.to_vec();
    varying.push((ResourceKind::Request, [false; 5]));
    varying.push((ResourceKind::AuditEvent, [false; 5]));
    let mut out = Vec::new();
    for (kind, mut v) in varying {
        v[2] = true;
        for bits in 0u8..32 {
            let f: [bool; 5] = std::array::from_fn(|i| bits & (1 << i) != 0);
            if f.iter().zip(v).any(|(on, varies)| *on && !varies) {
                continue;
            }
            out.push(Record {
                restricted: f[0],
                marketing_objection: f[1],
                in_sector: f[2],
                erased: f[3],
                sole_trader: f[4],
                ..Record::base(kind, OrgCode::Tem)
            });
        }
    }
    out
}

/// Compiles the policy in `dir` for every actor profile and record shape.
pub fn compile_fresh(dir: &Path) -> anyhow::Result<CompiledPolicy> {
    let orgs: Vec<&str> = OrgCode::ALL.iter().map(|o| o.as_str()).collect();
    CompiledPolicy::compile(
        compiled::Program::parse_dir(dir)?,
        actor_profiles(),
        &record_shapes(),
        &orgs,
    )
}

/// Compiled policies by version: tests and reloads of an unchanged policy
/// compile once per process.
static COMPILED: std::sync::Mutex<Option<(String, Arc<CompiledPolicy>)>> =
    std::sync::Mutex::new(None);

fn compile(dir: &Path, version: &str) -> anyhow::Result<Arc<CompiledPolicy>> {
    // Held while compiling: a second load of the same policy waits for the
    // first rather than compiling it again at the same time.
    let mut cached = COMPILED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((v, c)) = cached.as_ref().filter(|(v, _)| v == version) {
        tracing::debug!(version = %v, "policy already compiled");
        return Ok(c.clone());
    }
    let started = std::time::Instant::now();
    let compiled = Arc::new(compile_fresh(dir)?);
    // oso and the compiler read the files separately: a change in between
    // (a ConfigMap swapped during a reload) must not pair two policies.
    anyhow::ensure!(
        policy_version(dir)? == version,
        "the policy files changed while they were loading; the policy in force stays"
    );
    tracing::info!(
        profiles = compiled.profiles(),
        millis = started.elapsed().as_millis() as u64,
        "policy compiled"
    );
    *cached = Some((version.to_owned(), compiled.clone()));
    Ok(compiled)
}

impl Authorizer {
    /// Loads and checks the policy; a policy that does not load or names an
    /// unknown class, attribute or rule stops the start.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let engine = PolicyEngine::load(dir)?;
        let compiled = compile(dir, engine.version())?;
        Ok(Authorizer {
            engine,
            misses: std::sync::atomic::AtomicU64::new(0),
            compiled,
            visibility: engine::Memo::default(),
        })
    }

    /// Decisions that were not in the compiled table (see `misses`).
    pub fn compiled_misses(&self) -> u64 {
        self.misses.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The SHA-256 of the policy files in force.
    pub fn version(&self) -> &str {
        self.engine.version()
    }

    pub fn engine(&self) -> &PolicyEngine {
        &self.engine
    }

    /// The actor's compiled decisions, to resolve once per request (`None`:
    /// a profile outside the compiled space, decided through
    /// [`Authorizer::read_field`] and counted as a miss).
    pub fn actor_table(&self, actor: &Principal) -> Option<Arc<compiled::ActorTable>> {
        self.compiled.actor(actor).cloned()
    }

    /// The rule that refuses this actor's whole request, if any (R6, R8: 403).
    pub fn refused(&self, actor: &Principal) -> anyhow::Result<Option<String>> {
        match self.compiled.actor(actor) {
            Some(table) => Ok(table.refused.clone()),
            None => {
                self.misses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(?actor, "an actor profile outside the compiled policy");
                self.compiled.program().refused(actor)
            }
        }
    }

    /// The compiled entry for the actor and the record (evaluated from the
    /// compiled program for a combination outside the compiled space).
    fn entry(&self, actor: &Principal, record: &Record) -> anyhow::Result<Arc<compiled::Entry>> {
        match self.compiled.lookup(actor, record) {
            Some(e) => Ok(e.clone()),
            None => {
                self.misses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(?actor, ?record, "a decision outside the compiled policy");
                Ok(Arc::new(self.compiled.program().entry(actor, record)?))
            }
        }
    }

    /// Which rows of each table the actor may see: the policy's `hidden` rule
    /// asked for every combination of the facts that vary in that table and
    /// every owner, once per actor profile.
    /// The request-level decision when nothing needs evaluating (the actor's
    /// profile is in the compiled table and its visibility is remembered:
    /// every request but a profile's first), so admission need not leave the
    /// async worker; `Err` is the refusing rule.
    pub fn admission_memoized(&self, actor: &Principal) -> Option<Result<Arc<Visibility>, String>> {
        let table = self.compiled.actor(actor)?;
        if let Some(rule) = &table.refused {
            return Some(Err(rule.clone()));
        }
        self.visibility.get(actor).map(Ok)
    }

    pub fn visibility(&self, actor: &Principal) -> anyhow::Result<Arc<Visibility>> {
        self.visibility.get_or_try(actor.clone(), || self.derive_visibility(actor))
    }

    fn derive_visibility(&self, actor: &Principal) -> anyhow::Result<Arc<Visibility>> {
        let mut tables = Vec::new();
        for (kind, varying) in VARYING {
            let mut by_facts: BTreeMap<[bool; 5], Vec<OrgCode>> = BTreeMap::new();
            for bits in 0u8..32 {
                let facts: [bool; 5] = std::array::from_fn(|i| bits & (1 << i) != 0);
                if facts.iter().zip(varying).any(|(on, varies)| *on && !varies) {
                    continue;
                }
                for owner in OrgCode::ALL {
                    let record = Record {
                        restricted: facts[0],
                        marketing_objection: facts[1],
                        in_sector: facts[2],
                        erased: facts[3],
                        sole_trader: facts[4],
                        ..Record::base(kind, *owner)
                    };
                    if self.entry(actor, &record)?.decision.hidden.is_empty() {
                        by_facts.entry(facts).or_default().push(*owner);
                    }
                }
            }
            // A fact that does not vary in this table is no condition there.
            let fact = |f: &[bool; 5], i: usize| varying[i].then_some(f[i]);
            let combos = by_facts
                .into_iter()
                .map(|(f, owners)| VisibleCombo {
                    restricted: fact(&f, 0),
                    marketing_objection: fact(&f, 1),
                    in_sector: fact(&f, 2),
                    erased: fact(&f, 3),
                    sole_trader: fact(&f, 4),
                    owners: (owners.len() < OrgCode::ALL.len()).then_some(owners),
                })
                .collect();
            tables.push(Visible::Any(visible::simplify(combos)));
        }
        let [companies, contacts, services, confidential] =
            <[Visible; 4]>::try_from(tables).map_err(|_| anyhow::anyhow!("four tables"))?;
        Ok(Arc::new(Visibility { companies, contacts, services, confidential }))
    }

    /// May the actor read `class` of this (visible) record?
    pub fn read_field(
        &self,
        actor: &Principal,
        record: &Record,
        class: FieldClass,
    ) -> anyhow::Result<Decision> {
        let e = self.entry(actor, record)?;
        let allowed_by = e.decision.readable.get(class.as_str());
        let v = compose(&e.decision, "read", allowed_by.cloned().unwrap_or_default());
        Ok(Decision { allowed: v.allowed, rules: v.rules })
    }

    /// May the actor make this change? `hidden` is true when the record is
    /// invisible to the actor (the caller answers NOT_FOUND, not FORBIDDEN).
    pub fn write(
        &self,
        actor: &Principal,
        action: Action,
        record: &Record,
    ) -> anyhow::Result<(Decision, bool)> {
        let e = self.entry(actor, record)?;
        let hidden = action != Action::Create && !e.decision.hidden.is_empty();
        let allowed_by = e.writes.get(action.as_str()).cloned().unwrap_or_default();
        let v = compose(&e.decision, action.as_str(), allowed_by);
        Ok((Decision { allowed: v.allowed, rules: v.rules }, hidden))
    }
}

impl Authorizer {
    /// The decision on `action` (and, for a read, field `class`) of a
    /// described record by a described actor, and the rules behind it, as
    /// the gateway would enforce it (for auditors' explanations).
    pub fn explain(
        &self,
        actor: &Principal,
        action: &str,
        record: &Record,
        class: Option<FieldClass>,
    ) -> anyhow::Result<Verdict> {
        verdict(&self.engine, actor, action, record, class.map(FieldClass::as_str))
    }

    /// May the actor read the audit trail (class `audit`, R10)?
    pub fn may_audit(&self, actor: &Principal, org: OrgCode) -> anyhow::Result<Decision> {
        self.read_field(actor, &Record::new_row(ResourceKind::AuditEvent, org), FieldClass::Audit)
    }
}

impl Principal {
    /// What the policy sees of an actor: not the person, only the facts the
    /// rules use, so decisions memoize across the people who share them.
    pub fn of(actor: &Actor) -> Self {
        Principal {
            org: actor.org.as_str().to_owned(),
            org_kind: actor.org_kind().as_str().to_owned(),
            roles: actor.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            in_eu_eea: actor.in_eu_eea(),
            purpose: actor.purpose.as_str().to_owned(),
        }
    }
}

/// A decision and the rules behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub rules: Vec<String>,
}

/// Composes the policy's answers the way the gateway enforces them: a refused
/// request, then a hidden record, then the field class or write rule; R12
/// when nothing allows. `create` judges the record to be written, so
/// visibility does not apply to it.
pub fn verdict(
    engine: &PolicyEngine,
    actor: &Principal,
    action: &str,
    record: &Record,
    class: Option<&str>,
) -> anyhow::Result<Verdict> {
    let d = engine.decide(actor, record)?;
    if d.refused.is_some() || (action != "create" && !d.hidden.is_empty()) {
        return Ok(compose(&d, action, Vec::new()));
    }
    let allowed_by = match (action, class) {
        ("read", Some(class)) => d.readable.get(class).cloned().unwrap_or_default(),
        ("read", None) => anyhow::bail!("a read decision needs a field class"),
        (write, _) => engine.write_rules(actor, write, record)?,
    };
    Ok(compose(&d, action, allowed_by))
}

/// The one composition of the policy's answers (oso's for explanations, the
/// compiled ones on the request path): a refused request, then a hidden
/// record (except for `create`), then the rules that allow; R12 when none.
fn compose(d: &RecordDecision, action: &str, allowed_by: Vec<String>) -> Verdict {
    let deny = |rules: Vec<String>| Verdict { allowed: false, rules };
    if let Some(rule) = &d.refused {
        return deny(vec![rule.clone()]);
    }
    if action != "create" && !d.hidden.is_empty() {
        return deny(d.hidden.clone());
    }
    if allowed_by.is_empty() {
        deny(vec![DEFAULT_DENY.to_owned()])
    } else {
        Verdict { allowed: true, rules: allowed_by }
    }
}

pub fn policy_version(dir: &Path) -> anyhow::Result<String> {
    let files = files_with_extension(dir, "polar")?;
    let mut hash = Sha256::new();
    for f in files {
        hash.update(
            f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default().as_bytes(),
        );
        hash.update([0]);
        hash.update(std::fs::read(&f)?);
        hash.update([0]);
    }
    Ok(format!("sha256:{}", hex::encode(hash.finalize())))
}

/// The files of `dir` whose names end in `.ext`, in name order.
pub fn files_with_extension(dir: &Path, ext: &str) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field guard's fast path (the request's table, rules borrowed from
    /// it) decides every read exactly as `read_field` does: a sample of the
    /// profiles, every record shape, every owner, every class.
    #[test]
    fn the_guards_table_lookup_decides_reads_as_read_field_does() {
        let authorizer = Authorizer::load(Path::new("policies")).expect("load");
        let mut checked = 0;
        for actor in actor_profiles().into_iter().step_by(13) {
            let table = authorizer.actor_table(&actor).expect("every profile is compiled");
            for shape in record_shapes() {
                for owner in OrgCode::ALL {
                    let record = Record { owner: owner.as_str().to_owned(), ..shape.clone() };
                    for class in FieldClass::ALL {
                        let slow = authorizer.read_field(&actor, &record, class).expect("decide");
                        let fast = table
                            .lookup(&actor.org, &record)
                            .expect("in the table")
                            .readable(class.as_str());
                        match fast {
                            Some(rules) => {
                                assert!(slow.allowed, "{actor:?} {record:?} {class:?}");
                                assert_eq!(rules, slow.rules.as_slice());
                            }
                            None => assert!(!slow.allowed, "{actor:?} {record:?} {class:?}"),
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 100_000, "{checked}");
    }
}
