//! GraphQL mirrors of the data layer's enumerations, and scalars.

use async_graphql::{Enum, InputValueError, InputValueResult, Scalar, ScalarType, Value};
use bigdecimal::BigDecimal;
use std::str::FromStr;

use crate::db;

macro_rules! remote_enum {
    ($name:ident => $remote:literal { $($variant:ident),+ $(,)? }) => {
        #[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
        #[graphql(remote = $remote)]
        pub enum $name { $($variant),+ }
    };
}

remote_enum!(Organization => "db::OrgCode" { Tem, Ely, Keha, Um, Tukes, Bf, Bfoy, Finnvera, Mmm, Ruokavirasto });
remote_enum!(OrganizationKind => "db::OrgKind" { Controller, Recipient });
remote_enum!(CompanyForm => "db::CompanyForm" { LimitedCompany, PublicLimitedCompany, Partnership, LimitedPartnership, Cooperative, SoleTrader, Foreign, Other });
remote_enum!(LegalBasis => "db::LegalBasis" { Contract, LegalObligation, PublicInterest, LegitimateInterest });
remote_enum!(DataSource => "db::DataSource" { NationalResource, DataSubject, EventThirdParty, PublicSource });
remote_enum!(ServiceKind => "db::ServiceKind" { Advisory, Funding, Event, ContactRequest, Training, Order, Other });
remote_enum!(ServiceStatus => "db::ServiceStatus" { Requested, Ordered, Delivered, Invoiced, Cancelled });
remote_enum!(RequestKind => "db::RequestKind" { Access, Rectification, Erasure, Restriction, Objection, MarketingObjection });
remote_enum!(RequestStatus => "db::RequestStatus" { Received, InProgress, Completed, Rejected });

/// An exact decimal amount in euros, as a string ("1234.50") so no precision
/// is lost in JSON; input may also be a JSON number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal(pub BigDecimal);

#[Scalar]
impl ScalarType for Decimal {
    fn parse(value: Value) -> InputValueResult<Self> {
        let text = match &value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(InputValueError::expected_type(value)),
        };
        BigDecimal::from_str(text.trim())
            .map(Decimal)
            .map_err(|_| InputValueError::custom("not a decimal number"))
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}

impl From<BigDecimal> for Decimal {
    fn from(v: BigDecimal) -> Self {
        Decimal(v)
    }
}
