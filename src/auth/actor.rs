//! The actor of docs/access.md: built only from a verified token and the purpose header.

use std::fmt;
use std::str::FromStr;

use crate::db::{OrgCode, OrgKind};
use crate::validate;

macro_rules! plain_enum {
    ($name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str { match self { $($name::$variant => $text),+ } }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s { $($text => Ok($name::$variant),)+ _ => Err(s.to_owned()) }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

plain_enum!(Role {
    Viewer = "viewer",
    Editor = "editor",
    Confidential = "confidential",
    Dpo = "dpo",
    Auditor = "auditor",
});

plain_enum!(Purpose {
    CustomerRelationship = "CUSTOMER_RELATIONSHIP",
    Marketing = "MARKETING",
    DataSubjectRequest = "DATA_SUBJECT_REQUEST",
    SecurityAudit = "SECURITY_AUDIT",
});

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Actor {
    pub sub: String,
    pub org: OrgCode,
    /// Sorted and without duplicates, so equal actors hash equally.
    pub roles: Vec<Role>,
    pub country: String,
    pub purpose: Purpose,
}

impl Actor {
    pub fn org_kind(&self) -> OrgKind {
        self.org.kind()
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn in_eu_eea(&self) -> bool {
        validate::in_eu_eea(&self.country)
    }
}
