//! Enumerations stored as CHECK-constrained text (see the first migration).

use diesel::deserialize::{self, FromSql};
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Text;
use std::io::Write;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} value {value:?}")]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
                 diesel::expression::AsExpression, diesel::deserialize::FromSqlRow, serde::Serialize, serde::Deserialize)]
        #[diesel(sql_type = Text)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        // A projected read's placeholder (`db::project`), never served.
        impl super::project::Unfetched for $name {
            fn unfetched() -> Self {
                $name::ALL[0]
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { kind: stringify!($name), value: s.to_owned() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ToSql<Text, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                out.write_all(self.as_str().as_bytes())?;
                Ok(IsNull::No)
            }
        }

        impl FromSql<Text, Pg> for $name {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                let text = <String as FromSql<Text, Pg>>::from_sql(bytes)?;
                Ok(text.parse()?)
            }
        }
    };
}

text_enum!(
    /// The ten organisations of docs/register.md.
    OrgCode {
        Tem = "TEM",
        Ely = "ELY",
        Keha = "KEHA",
        Um = "UM",
        Tukes = "TUKES",
        Bf = "BF",
        Bfoy = "BFOY",
        Finnvera = "FINNVERA",
        Mmm = "MMM",
        Ruokavirasto = "RUOKAVIRASTO",
    }
);

text_enum!(OrgKind { Controller = "CONTROLLER", Recipient = "RECIPIENT" });

impl OrgCode {
    /// Mirrors the `organizations.kind` column loaded by the first migration.
    pub fn kind(self) -> OrgKind {
        match self {
            OrgCode::Mmm | OrgCode::Ruokavirasto => OrgKind::Recipient,
            _ => OrgKind::Controller,
        }
    }

    pub fn controllers() -> impl Iterator<Item = OrgCode> {
        OrgCode::ALL.iter().copied().filter(|o| o.kind() == OrgKind::Controller)
    }
}

text_enum!(CompanyForm {
    LimitedCompany = "LIMITED_COMPANY",
    PublicLimitedCompany = "PUBLIC_LIMITED_COMPANY",
    Partnership = "PARTNERSHIP",
    LimitedPartnership = "LIMITED_PARTNERSHIP",
    Cooperative = "COOPERATIVE",
    SoleTrader = "SOLE_TRADER",
    Foreign = "FOREIGN",
    Other = "OTHER",
});

text_enum!(LegalBasis {
    Contract = "CONTRACT",
    LegalObligation = "LEGAL_OBLIGATION",
    PublicInterest = "PUBLIC_INTEREST",
    LegitimateInterest = "LEGITIMATE_INTEREST",
});

text_enum!(DataSource {
    NationalResource = "NATIONAL_RESOURCE",
    DataSubject = "DATA_SUBJECT",
    EventThirdParty = "EVENT_THIRD_PARTY",
    PublicSource = "PUBLIC_SOURCE",
});

text_enum!(ServiceKind {
    Advisory = "ADVISORY",
    Funding = "FUNDING",
    Event = "EVENT",
    ContactRequest = "CONTACT_REQUEST",
    Training = "TRAINING",
    Order = "ORDER",
    Other = "OTHER",
});

text_enum!(ServiceStatus {
    Requested = "REQUESTED",
    Ordered = "ORDERED",
    Delivered = "DELIVERED",
    Invoiced = "INVOICED",
    Cancelled = "CANCELLED",
});

text_enum!(RequestKind {
    Access = "ACCESS",
    Rectification = "RECTIFICATION",
    Erasure = "ERASURE",
    Restriction = "RESTRICTION",
    Objection = "OBJECTION",
    MarketingObjection = "MARKETING_OBJECTION",
});

text_enum!(RequestStatus {
    Received = "RECEIVED",
    InProgress = "IN_PROGRESS",
    Completed = "COMPLETED",
    Rejected = "REJECTED",
});

text_enum!(Entity {
    Company = "company",
    CompanyConfidential = "company_confidential",
    Contact = "contact",
    Service = "service",
    DataSubjectRequest = "data_subject_request",
});
