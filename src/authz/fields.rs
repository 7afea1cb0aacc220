//! Which access.md field class each GraphQL field of the register belongs
//! to. The resolvers' guard looks the class up here, and `explainDecision`
//! explains with the same table, so what is explained is what is enforced.

use super::FieldClass;

/// The class of `field` (a GraphQL field name) of a resource of `kind`;
/// `None` for fields no policy guards (ids, tombstones, nested lists whose
/// rows guard themselves). A sole trader's name and business ID are personal
/// data (access.md), so they are contact identification for sole traders.
pub fn class_of(kind: &str, field: &str, sole_trader: bool) -> Option<FieldClass> {
    use FieldClass::*;
    Some(match (kind, field) {
        // The register's root fields are judged by the class that holds the
        // ids they list (R10: an auditor alone reads none; R7: nor does a
        // recipient without a reading role).
        ("company", "company" | "companyByBusinessId" | "companies") => CompanyPublic,
        ("contact", "contact" | "contacts") => ContactProcessing,
        ("service", "service" | "services") => ServiceRecord,
        ("company", "businessId" | "name") if sole_trader => ContactIdentification,
        (
            "company",
            "businessId" | "name" | "companyForm" | "industryCode" | "municipality" | "country"
            | "website" | "registeredBy" | "legalBasis" | "source" | "lastProcessedAt"
            | "legalHold" | "createdAt" | "updatedAt",
        ) => CompanyPublic,
        (
            "confidential",
            "registeredBy" | "turnoverEur" | "employeeCount" | "riskRating" | "fundingDecisions"
            | "notes" | "createdAt" | "updatedAt",
        ) => CompanyConfidential,
        ("contact", "firstName" | "lastName" | "email" | "phone" | "title" | "roleInCompany") => {
            ContactIdentification
        }
        ("contact", "homeCountry" | "homeMunicipality" | "postalAddress") => ContactHome,
        (
            "contact",
            "nickname" | "nativeName" | "nativeAddress" | "nativeTitle" | "workCountry"
            | "industry" | "investmentProfile" | "expertiseLevel" | "jobDescription"
            | "otherDescription",
        ) => ContactAdditional,
        (
            "contact",
            "company" | "registeredBy" | "legalBasis" | "source" | "restricted"
            | "marketingObjection" | "legalHold" | "lastProcessedAt" | "createdAt" | "updatedAt",
        ) => ContactProcessing,
        ("contact", "services") => ServiceRecord,
        ("contact", "changes") => History,
        // The report about the person this contact is (a root field).
        ("contact", "subjectAccessReport") => Report,
        (
            "service",
            "kind" | "title" | "provider" | "company" | "contact" | "status" | "requestedAt"
            | "deliveredAt" | "invoicedAt" | "legalBasis" | "source",
        ) => ServiceRecord,
        ("service", "amountEur" | "notes") => ServiceInternal,
        (
            "request",
            "kind"
            | "contactId"
            | "subjectDescription"
            | "receivedBy"
            | "receivedAt"
            | "dueAt"
            | "extendedDueAt"
            | "extensionReason"
            | "deadline"
            | "overdue"
            | "status"
            | "resolution"
            | "resolvedAt"
            | "handledBy"
            | "handledByOrg"
            | "createdAt"
            | "updatedAt"
            | "dataSubjectRequests"
            | "retentionCandidates",
        ) => Request,
        _ => return None,
    })
}

/// Fields that are deliberately unguarded: what they show is no one's data
/// (ids, the tombstone's time) or is guarded row by row further down.
pub const UNGUARDED: [(&str, &str); 10] = [
    ("company", "id"),
    ("company", "erasedAt"),
    ("company", "contacts"),
    ("company", "services"),
    ("company", "confidential"),
    ("confidential", "id"),
    ("contact", "id"),
    ("contact", "erasedAt"),
    ("service", "id"),
    ("request", "id"),
];

/// The GraphQL type of each resource kind (for checking this table against
/// the schema).
pub const TYPES: [(&str, &str); 5] = [
    ("company", "Company"),
    ("confidential", "CompanyConfidential"),
    ("contact", "Contact"),
    ("service", "Service"),
    ("request", "DataSubjectRequest"),
];

impl FieldClass {
    /// Reads of these classes are recorded in the audit trail (access.md,
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

    pub fn parse(s: &str) -> Option<FieldClass> {
        FieldClass::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// The kinds of resource events name, as static strings.
pub fn resource_type(kind: &str) -> &'static str {
    match kind {
        "company" => "company",
        "confidential" => "confidential",
        "contact" => "contact",
        "service" => "service",
        "request" => "request",
        "audit_event" => "audit_event",
        _ => "other",
    }
}
