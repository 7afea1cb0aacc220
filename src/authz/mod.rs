//! Authorization: the one place where the policy decides, and the only code
//! that will call the policy engine.
//!
//! Foundation stage: the Polar policies (access.md R1–R12) are the next piece of
//! work. Until then every authenticated actor may read and write everything,
//! and each decision names the rule `foundation-allow-all` so nobody mistakes
//! it for the real policy. Every resolver and mutation already asks here, per
//! resource and field class, so enforcing the policy changes this module only.

pub mod cases;
pub mod engine;

use std::path::Path;

use sha2::{Digest, Sha256};

pub use engine::{PolicyEngine, Principal, Record, RecordDecision, DEFAULT_DENY};

use crate::auth::Actor;
use crate::db::companies::CompanyRow;
use crate::db::confidential::ConfidentialRow;
use crate::db::contacts::ContactRow;
use crate::db::services::ServiceRow;
use crate::db::OrgCode;

/// The field classes of access.md; every GraphQL field is in exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldClass {
    CompanyPublic,
    CompanyConfidential,
    ContactIdentification,
    ContactHome,
    ContactAdditional,
    ContactProcessing,
    ServiceRecord,
    ServiceInternal,
    History,
    Request,
    Audit,
}

impl FieldClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldClass::CompanyPublic => "company.public",
            FieldClass::CompanyConfidential => "company.confidential",
            FieldClass::ContactIdentification => "contact.identification",
            FieldClass::ContactHome => "contact.home",
            FieldClass::ContactAdditional => "contact.additional",
            FieldClass::ContactProcessing => "contact.processing",
            FieldClass::ServiceRecord => "service.record",
            FieldClass::ServiceInternal => "service.internal",
            FieldClass::History => "history",
            FieldClass::Request => "request",
            FieldClass::Audit => "audit",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    Company,
    Confidential,
    Contact,
    Service,
}

/// What the policy may see of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResourceFacts {
    pub kind: ResourceKind,
    /// The registering organisation, or the provider of a service.
    pub owner: OrgCode,
}

impl ResourceFacts {
    pub fn company(row: &CompanyRow) -> Self {
        ResourceFacts {
            kind: ResourceKind::Company,
            owner: row.registered_by,
        }
    }

    pub fn confidential(row: &ConfidentialRow) -> Self {
        ResourceFacts {
            kind: ResourceKind::Confidential,
            owner: row.registered_by,
        }
    }

    pub fn contact(row: &ContactRow) -> Self {
        ResourceFacts {
            kind: ResourceKind::Contact,
            owner: row.registered_by,
        }
    }

    pub fn service(row: &ServiceRow) -> Self {
        ResourceFacts {
            kind: ResourceKind::Service,
            owner: row.provider,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub rule: &'static str,
}

const FOUNDATION_RULE: &str = "foundation-allow-all";

pub struct Authorizer {
    version: String,
}

impl Authorizer {
    /// Reads the policy directory; the version is the SHA-256 of its `.polar`
    /// files (names and contents, in name order).
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        Ok(Authorizer {
            version: policy_version(dir)?,
        })
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn read_field(
        &self,
        _actor: &Actor,
        _resource: &ResourceFacts,
        _class: FieldClass,
    ) -> Decision {
        Decision {
            allowed: true,
            rule: FOUNDATION_RULE,
        }
    }

    pub fn write(&self, _actor: &Actor, _action: Action, _resource: &ResourceFacts) -> Decision {
        Decision {
            allowed: true,
            rule: FOUNDATION_RULE,
        }
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
    let deny = |rules: Vec<String>| {
        Ok(Verdict {
            allowed: false,
            rules,
        })
    };
    let d = engine.decide(actor, record)?;
    if let Some(rule) = &d.refused {
        return deny(vec![rule.clone()]);
    }
    if action != "create" && !d.hidden.is_empty() {
        return deny(d.hidden.clone());
    }
    let allowed_by = match (action, class) {
        ("read", Some(class)) => d.readable.get(class).cloned().unwrap_or_default(),
        ("read", None) => anyhow::bail!("a read decision needs a field class"),
        (write, _) => engine.write_rules(actor, write, record)?,
    };
    if allowed_by.is_empty() {
        deny(vec![DEFAULT_DENY.to_owned()])
    } else {
        Ok(Verdict {
            allowed: true,
            rules: allowed_by,
        })
    }
}

pub fn policy_version(dir: &Path) -> anyhow::Result<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("reading policy directory {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "polar"))
        .collect();
    files.sort();
    let mut hash = Sha256::new();
    for f in files {
        hash.update(
            f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
                .as_bytes(),
        );
        hash.update([0]);
        hash.update(std::fs::read(&f)?);
        hash.update([0]);
    }
    Ok(format!("sha256:{}", hex::encode(hash.finalize())))
}
