//! The register's resources as docs/access.md classifies them: for each
//! resource type, every field it serves and every column it stores, with the
//! access class that decides who reads it and whether it is personal data.
//!
//! This is the one list. The field guard (`graphql::guard`), decision
//! explanations, the change-history filter, erasure (`db`), the subject
//! access report and the seed's tombstones all read it; nothing else names a
//! field's class. A field served without a line here is denied (fails
//! closed), and `tests/field_access.snapshot` shows every field's access for review.
//! It depends on nothing else in the crate.

/// What the audit trail and the policy call a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    Company,
    Confidential,
    Contact,
    Service,
    Request,
    AuditEvent,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 6] = [
        ResourceKind::Company,
        ResourceKind::Confidential,
        ResourceKind::Contact,
        ResourceKind::Service,
        ResourceKind::Request,
        ResourceKind::AuditEvent,
    ];

    /// The name the policy (`Record.kind`) and audit events use.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Company => "company",
            ResourceKind::Confidential => "confidential",
            ResourceKind::Contact => "contact",
            ResourceKind::Service => "service",
            ResourceKind::Request => "request",
            ResourceKind::AuditEvent => "audit_event",
        }
    }

    pub fn parse(s: &str) -> Option<ResourceKind> {
        ResourceKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The GraphQL object type that serves it.
    pub fn graphql_type(self) -> &'static str {
        match self {
            ResourceKind::Company => "Company",
            ResourceKind::Confidential => "CompanyConfidential",
            ResourceKind::Contact => "Contact",
            ResourceKind::Service => "Service",
            ResourceKind::Request => "DataSubjectRequest",
            ResourceKind::AuditEvent => "AuditEvent",
        }
    }

    /// Its table.
    pub fn table(self) -> &'static str {
        match self {
            ResourceKind::Company => "companies",
            ResourceKind::Confidential => "company_confidential",
            ResourceKind::Contact => "contacts",
            ResourceKind::Service => "services",
            ResourceKind::Request => "data_subject_requests",
            ResourceKind::AuditEvent => "audit_events",
        }
    }

    /// The class of the field that identifies a row (its id's class): a
    /// list or lookup of this kind is refused to whoever may not read it.
    pub fn listing_class(self) -> FieldClass {
        match self {
            ResourceKind::Company => FieldClass::CompanyPublic,
            ResourceKind::Confidential => FieldClass::CompanyConfidential,
            ResourceKind::Contact => FieldClass::ContactProcessing,
            ResourceKind::Service => FieldClass::ServiceRecord,
            ResourceKind::Request => FieldClass::Request,
            ResourceKind::AuditEvent => FieldClass::Audit,
        }
    }

    /// Every field and column of this kind.
    pub fn fields(self) -> &'static [Field] {
        match self {
            ResourceKind::Company => COMPANY,
            ResourceKind::Confidential => CONFIDENTIAL,
            ResourceKind::Contact => CONTACT,
            ResourceKind::Service => SERVICE,
            ResourceKind::Request => REQUEST,
            ResourceKind::AuditEvent => &[],
        }
    }

    /// The declaration of a GraphQL field of this kind.
    pub fn field(self, graphql: &str) -> Option<&'static Field> {
        self.fields().iter().find(|f| f.graphql == Some(graphql))
    }

    /// The declaration of a column of this kind.
    pub fn column(self, column: &str) -> Option<&'static Field> {
        self.fields().iter().find(|f| f.column == Some(column))
    }

    /// The class of a GraphQL field of a row (`None`: no class decides it).
    pub fn class_of(self, graphql: &str, sole_trader: bool) -> Option<FieldClass> {
        self.field(graphql)?.access.class(sole_trader)
    }

    /// The class a change of this column belongs to (its history is read
    /// under it); `None` for columns no class names, shown to no one.
    pub fn column_class(self, column: &str, sole_trader: bool) -> Option<FieldClass> {
        self.column(column)?.access.class(sole_trader)
    }

    /// The personal columns: cleared on erasure, shown in a subject access report.
    pub fn personal_columns(self) -> impl Iterator<Item = &'static str> {
        self.fields().iter().filter(|f| f.personal).filter_map(|f| f.column)
    }

    /// `col = NULL, …` for every personal column: the SQL of erasure.
    pub fn erase_assignments(self) -> String {
        self.personal_columns().map(|c| format!("{c} = NULL")).collect::<Vec<_>>().join(", ")
    }
}

/// The field classes of docs/access.md; every field of every type is in exactly one.
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
    /// A subject access report: everything held about a person (R9).
    Report,
}

impl FieldClass {
    pub const ALL: [FieldClass; 12] = [
        FieldClass::CompanyPublic,
        FieldClass::CompanyConfidential,
        FieldClass::ContactIdentification,
        FieldClass::ContactHome,
        FieldClass::ContactAdditional,
        FieldClass::ContactProcessing,
        FieldClass::ServiceRecord,
        FieldClass::ServiceInternal,
        FieldClass::History,
        FieldClass::Request,
        FieldClass::Audit,
        FieldClass::Report,
    ];

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
            FieldClass::Report => "report",
        }
    }

    pub fn parse(s: &str) -> Option<FieldClass> {
        FieldClass::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Reads of these classes are recorded in the audit trail (docs/access.md,
    /// "Auditing decisions"), and so is a sole trader's name or business ID,
    /// which is contact identification.
    pub fn is_audited(self) -> bool {
        matches!(
            self,
            FieldClass::ContactIdentification
                | FieldClass::ContactHome
                | FieldClass::ContactAdditional
                | FieldClass::CompanyConfidential
                | FieldClass::ServiceInternal
                | FieldClass::History
                | FieldClass::Request
                | FieldClass::Report
        )
    }
}

/// Who reads a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Whoever the policy lets read this class of the row.
    Class(FieldClass),
    /// A sole trader's name and business ID are personal data: contact
    /// identification for sole traders, this class otherwise.
    SoleTrader(FieldClass),
    /// No one's data: an id, the time of a tombstone.
    Open,
    /// A list whose rows are each judged as rows of their own kind.
    Rows,
}

impl Access {
    /// The class that decides, if any.
    pub fn class(self, sole_trader: bool) -> Option<FieldClass> {
        match self {
            Access::Class(c) => Some(c),
            Access::SoleTrader(_) if sole_trader => Some(FieldClass::ContactIdentification),
            Access::SoleTrader(c) => Some(c),
            Access::Open | Access::Rows => None,
        }
    }
}

/// One field or column of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The GraphQL field, or `None` for a column served as no field.
    pub graphql: Option<&'static str>,
    /// The column, or `None` for a relation or a computed field.
    pub column: Option<&'static str>,
    pub access: Access,
    /// Personal data: cleared on erasure, listed in a subject access report.
    pub personal: bool,
}

const fn field(graphql: &'static str, column: &'static str, access: Access) -> Field {
    Field { graphql: Some(graphql), column: Some(column), access, personal: false }
}

/// A field that is personal data.
const fn personal(graphql: &'static str, column: &'static str, class: FieldClass) -> Field {
    Field {
        graphql: Some(graphql),
        column: Some(column),
        access: Access::Class(class),
        personal: true,
    }
}

/// A field with no column of its own (a relation, a computed value).
const fn computed(graphql: &'static str, access: Access) -> Field {
    Field { graphql: Some(graphql), column: None, access, personal: false }
}

/// A column served as no field (its history is read under `access`).
const fn column(column: &'static str, access: Access, personal: bool) -> Field {
    Field { graphql: None, column: Some(column), access, personal }
}

use Access::{Class, Open, Rows, SoleTrader};
use FieldClass::*;

const COMPANY: &[Field] = &[
    field("id", "id", Open),
    Field { personal: true, ..field("businessId", "business_id", SoleTrader(CompanyPublic)) },
    Field { personal: true, ..field("name", "name", SoleTrader(CompanyPublic)) },
    field("companyForm", "company_form", Class(CompanyPublic)),
    field("industryCode", "industry_code", Class(CompanyPublic)),
    field("municipality", "municipality", Class(CompanyPublic)),
    field("country", "country", Class(CompanyPublic)),
    // A sole trader's site often names the person: erased with the name.
    Field { personal: true, ..field("website", "website", Class(CompanyPublic)) },
    field("registeredBy", "registered_by", Class(CompanyPublic)),
    field("legalBasis", "legal_basis", Class(CompanyPublic)),
    field("source", "source", Class(CompanyPublic)),
    field("lastProcessedAt", "last_processed_at", Class(CompanyPublic)),
    field("legalHold", "legal_hold", Class(CompanyPublic)),
    field("createdAt", "created_at", Class(CompanyPublic)),
    field("updatedAt", "updated_at", Class(CompanyPublic)),
    field("erasedAt", "erased_at", Open),
    computed("contacts", Rows),
    computed("services", Rows),
    computed("confidential", Rows),
    // The reason of a legal hold tells of a pending legal matter: the DPOs'.
    column("legal_hold_reason", Class(Request), true),
    column("erased_by", Class(Request), false),
    column("erased_by_org", Class(Request), false),
];

const CONFIDENTIAL: &[Field] = &[
    field("id", "id", Open),
    column("company_id", Class(CompanyConfidential), false),
    field("registeredBy", "registered_by", Class(CompanyConfidential)),
    field("turnoverEur", "turnover_eur", Class(CompanyConfidential)),
    field("employeeCount", "employee_count", Class(CompanyConfidential)),
    field("riskRating", "risk_rating", Class(CompanyConfidential)),
    field("fundingDecisions", "funding_decisions", Class(CompanyConfidential)),
    field("notes", "notes", Class(CompanyConfidential)),
    field("createdAt", "created_at", Class(CompanyConfidential)),
    field("updatedAt", "updated_at", Class(CompanyConfidential)),
    column("in_sector", Class(CompanyConfidential), false),
];

const CONTACT: &[Field] = &[
    field("id", "id", Open),
    personal("firstName", "first_name", ContactIdentification),
    personal("lastName", "last_name", ContactIdentification),
    personal("email", "email", ContactIdentification),
    personal("phone", "phone", ContactIdentification),
    personal("title", "title", ContactIdentification),
    personal("roleInCompany", "role_in_company", ContactIdentification),
    personal("homeCountry", "home_country", ContactHome),
    personal("homeMunicipality", "home_municipality", ContactHome),
    personal("postalAddress", "postal_address", ContactHome),
    personal("nickname", "nickname", ContactAdditional),
    personal("nativeName", "native_name", ContactAdditional),
    personal("nativeAddress", "native_address", ContactAdditional),
    personal("nativeTitle", "native_title", ContactAdditional),
    personal("workCountry", "work_country", ContactAdditional),
    personal("industry", "industry", ContactAdditional),
    personal("investmentProfile", "investment_profile", ContactAdditional),
    personal("expertiseLevel", "expertise_level", ContactAdditional),
    personal("jobDescription", "job_description", ContactAdditional),
    personal("otherDescription", "other_description", ContactAdditional),
    field("company", "company_id", Class(ContactProcessing)),
    field("registeredBy", "registered_by", Class(ContactProcessing)),
    field("legalBasis", "legal_basis", Class(ContactProcessing)),
    field("source", "source", Class(ContactProcessing)),
    field("restricted", "restricted", Class(ContactProcessing)),
    field("marketingObjection", "marketing_objection", Class(ContactProcessing)),
    field("legalHold", "legal_hold", Class(ContactProcessing)),
    field("lastProcessedAt", "last_processed_at", Class(ContactProcessing)),
    field("createdAt", "created_at", Class(ContactProcessing)),
    field("updatedAt", "updated_at", Class(ContactProcessing)),
    field("erasedAt", "erased_at", Open),
    computed("services", Class(ServiceRecord)),
    computed("changes", Class(History)),
    // An objection being assessed and the reason of a legal hold tell of a
    // data subject's request or a pending legal matter: the DPOs' (R9).
    column("objection_pending", Class(Request), false),
    // Its company's sector (R7), kept by the database: a processing fact.
    column("in_sector", Class(ContactProcessing), false),
    column("legal_hold_reason", Class(Request), true),
    column("erased_by", Class(Request), false),
    column("erased_by_org", Class(Request), false),
];

const SERVICE: &[Field] = &[
    field("id", "id", Open),
    field("kind", "kind", Class(ServiceRecord)),
    field("title", "title", Class(ServiceRecord)),
    field("provider", "provider", Class(ServiceRecord)),
    field("company", "company_id", Class(ServiceRecord)),
    field("contact", "contact_id", Class(ServiceRecord)),
    field("status", "status", Class(ServiceRecord)),
    field("requestedAt", "requested_at", Class(ServiceRecord)),
    field("deliveredAt", "delivered_at", Class(ServiceRecord)),
    field("invoicedAt", "invoiced_at", Class(ServiceRecord)),
    field("legalBasis", "legal_basis", Class(ServiceRecord)),
    field("source", "source", Class(ServiceRecord)),
    field("amountEur", "amount_eur", Class(ServiceInternal)),
    field("notes", "notes", Class(ServiceInternal)),
    column("created_at", Class(ServiceRecord), false),
    column("in_sector", Class(ServiceRecord), false),
    column("updated_at", Class(ServiceRecord), false),
];

const REQUEST: &[Field] = &[
    field("id", "id", Open),
    field("kind", "kind", Class(Request)),
    field("contactId", "contact_id", Class(Request)),
    // What the person said of themselves when no contact matched.
    Field { personal: true, ..field("subjectDescription", "subject_description", Class(Request)) },
    field("receivedBy", "received_by", Class(Request)),
    field("receivedAt", "received_at", Class(Request)),
    field("dueAt", "due_at", Class(Request)),
    field("extendedDueAt", "extended_due_at", Class(Request)),
    field("extensionReason", "extension_reason", Class(Request)),
    computed("deadline", Class(Request)),
    computed("overdue", Class(Request)),
    field("status", "status", Class(Request)),
    field("resolution", "resolution", Class(Request)),
    field("resolvedAt", "resolved_at", Class(Request)),
    field("handledBy", "handled_by", Class(Request)),
    field("handledByOrg", "handled_by_org", Class(Request)),
    field("createdAt", "created_at", Class(Request)),
    field("updatedAt", "updated_at", Class(Request)),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declaration_is_named_once() {
        for kind in ResourceKind::ALL {
            let fields = kind.fields();
            for (i, f) in fields.iter().enumerate() {
                assert!(f.graphql.is_some() || f.column.is_some(), "{kind:?}: {f:?}");
                for g in &fields[i + 1..] {
                    assert!(
                        f.graphql.is_none() || f.graphql != g.graphql,
                        "{kind:?}.{:?} twice",
                        f.graphql
                    );
                }
                // A personal field has a column to clear.
                assert!(!f.personal || f.column.is_some(), "{kind:?}: {f:?}");
            }
        }
    }

    #[test]
    fn a_sole_traders_name_is_identification_and_columns_have_classes() {
        let c = ResourceKind::Company;
        assert_eq!(c.class_of("name", true), Some(FieldClass::ContactIdentification));
        assert_eq!(c.class_of("name", false), Some(FieldClass::CompanyPublic));
        assert_eq!(c.class_of("id", false), None);
        assert_eq!(c.class_of("birthDate", false), None);
        let p = ResourceKind::Contact;
        assert_eq!(p.column_class("legal_hold_reason", false), Some(FieldClass::Request));
        assert_eq!(p.column_class("first_name", false), Some(FieldClass::ContactIdentification));
        assert_eq!(p.column_class("no_such_column", false), None);
        assert!(p.erase_assignments().contains("legal_hold_reason = NULL"));
        assert!(!p.erase_assignments().contains("legal_basis"));
    }
}
