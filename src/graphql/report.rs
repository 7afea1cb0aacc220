//! The subject access report (GDPR art. 15): everything every controller
//! holds about a person, and the recipients who read it, from the audit
//! trail. One class, `report` (R9: a DPO acting on a data subject request),
//! decides the whole report; it is not assembled from the field classes of
//! an ordinary reader.

use async_graphql::{Context, Object, SimpleObject, ID};
use chrono::{DateTime, NaiveDate, Utc};

use super::enums::{
    DataSource, LegalBasis, Organization, RequestKind, RequestStatus, ServiceKind, ServiceStatus,
};
use super::{parse_id, ContextExt, Enforce, Guarded};
use crate::authz::ResourceKind;
use crate::db::contacts::ContactRow;
use crate::db::visible::Visible;
use crate::db::{self, ContactId, Entity, OrgCode};
use crate::error::{AppError, AppResult};
use std::str::FromStr;

/// One personal value held about the person: every personal column the
/// register declares (src/register.rs), so the report cannot forget one.
#[derive(SimpleObject)]
pub struct ReportValue {
    /// The column, as in the register and its change log.
    pub column: String,
    /// Its access class.
    pub class: String,
    pub value: Option<String>,
}

#[derive(SimpleObject)]
#[graphql(name = "ReportContact")]
pub struct ReportContact {
    pub id: ID,
    pub registered_by: Organization,
    pub company_id: ID,
    /// Every personal value held in this record (empty after erasure).
    pub personal_data: Vec<ReportValue>,
    pub legal_basis: LegalBasis,
    pub source: DataSource,
    pub restricted: bool,
    pub objection_pending: bool,
    pub marketing_objection: bool,
    pub legal_hold: bool,
    pub created_at: DateTime<Utc>,
    pub last_processed_at: DateTime<Utc>,
    pub erased_at: Option<DateTime<Utc>>,
}

impl ReportContact {
    fn of(r: ContactRow) -> AppResult<Self> {
        let kind = ResourceKind::Contact;
        // The row's columns by name; the register says which are personal.
        let columns = serde_json::to_value(&r).map_err(AppError::internal)?;
        let personal_data = kind
            .personal_columns()
            .map(|column| ReportValue {
                column: column.to_owned(),
                class: kind
                    .column_class(column, false)
                    .map_or("unclassified", |c| c.as_str())
                    .to_owned(),
                value: match &columns[column] {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                },
            })
            .collect();
        Ok(ReportContact {
            id: ID(r.id.to_string()),
            registered_by: r.registered_by.into(),
            company_id: ID(r.company_id.to_string()),
            personal_data,
            legal_basis: r.legal_basis.into(),
            source: r.source.into(),
            restricted: r.restricted,
            objection_pending: r.objection_pending,
            marketing_objection: r.marketing_objection,
            legal_hold: r.legal_hold,
            created_at: r.created_at,
            last_processed_at: r.last_processed_at,
            erased_at: r.erased_at,
        })
    }
}

/// A service the person received (the provider's amounts are the
/// provider's business, not the person's data, and are left out).
#[derive(SimpleObject)]
pub struct ReportService {
    pub id: ID,
    pub contact_id: ID,
    pub kind: ServiceKind,
    pub title: String,
    pub provider: Organization,
    pub status: ServiceStatus,
    pub requested_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub legal_basis: LegalBasis,
    pub source: DataSource,
    pub notes: Option<String>,
}

/// One change of one of the person's records (who changed it is named by
/// organisation; staff identities are the controllers').
#[derive(SimpleObject)]
pub struct ReportChange {
    pub contact_id: ID,
    pub field: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub redacted: bool,
    pub changed_by_org: Organization,
    pub changed_at: DateTime<Utc>,
}

#[derive(SimpleObject)]
pub struct ReportRequest {
    pub id: ID,
    pub kind: RequestKind,
    pub received_by: Organization,
    pub received_at: DateTime<Utc>,
    pub deadline: NaiveDate,
    pub status: RequestStatus,
    pub resolution: Option<String>,
}

/// An organisation that read the person's data: when, and what.
#[derive(SimpleObject)]
pub struct ReportRecipient {
    pub organization: Organization,
    /// `CONTROLLER` (a joint controller) or `RECIPIENT` (a ministry or agency
    /// the data is disclosed to).
    pub kind: String,
    pub first_read: DateTime<Utc>,
    pub last_read: DateTime<Utc>,
    /// Audited reads (one per request, resource type and field set).
    pub reads: i64,
    pub field_classes: Vec<String>,
}

#[derive(SimpleObject)]
pub struct SubjectAccessReport {
    pub contact_id: ID,
    pub generated_at: DateTime<Utc>,
    /// How the person's records were found across the controllers.
    pub matched_by: String,
    pub contacts: Vec<ReportContact>,
    pub services: Vec<ReportService>,
    pub changes: Vec<ReportChange>,
    pub requests: Vec<ReportRequest>,
    pub recipients: Vec<ReportRecipient>,
}

/// Everything held about the person `contact` is.
async fn build(ctx: &Context<'_>, contact: ContactId) -> AppResult<SubjectAccessReport> {
    // Visibility first: a contact this actor may not see (restricted,
    // objecting, erased, outside a recipient's sector) is NOT_FOUND exactly
    // like an unknown id, whatever the report's own rule would say.
    // The whole row, not the loader's (which holds the columns the document
    // names): the report reads the email and every personal column.
    let mut conn = ctx.conn().await?;
    let conn = &mut *conn;
    let row = db::contacts::by_ids(
        conn,
        &[contact],
        &ctx.visibility()?.contacts,
        crate::db::project::Columns::all(),
    )
    .await?
    .pop()
    .ok_or(AppError::NotFound("contact"))?;
    // The report as a whole is the class `report` of this person's record.
    let record = row.record(conn).await?;
    let decision = ctx.read_class(
        &record,
        crate::authz::FieldClass::Report,
        Some(contact.0),
        "subjectAccessReport",
    )?;
    let matched_by = if row.email.is_some() {
        "the contact and every contact with the same email address"
    } else {
        "the contact alone (it has no email address)"
    };
    let people = db::contacts::same_person(conn, &row).await?;
    let ids: Vec<ContactId> = people.iter().map(|c| c.id).collect();
    let uuids: Vec<uuid::Uuid> = ids.iter().map(|i| i.0).collect();
    let services =
        db::services::by_contact_ids(conn, &ids, &Visible::All, crate::db::project::Columns::all())
            .await?;
    // R3: a service's notes are internal to its provider, in a report too.
    let mut notes_readable = Vec::with_capacity(services.len());
    for s in &services {
        notes_readable.push(ctx.may_read(
            &crate::authz::Record::service(s, None),
            crate::authz::FieldClass::ServiceInternal,
        )?);
    }
    let changes = db::change_log::for_entities(conn, Entity::Contact, &uuids).await?;
    let requests = db::requests::of_contacts(conn, &ids).await?;
    let mut read_ids = uuids.clone();
    read_ids.extend(services.iter().map(|s| s.id.0));
    let disclosures = db::audit::disclosures(conn, &read_ids).await?;
    // Every record the report discloses is on the audit record, under the
    // rules that allowed the report.
    let r = ctx.request()?;
    for c in &people {
        r.audit.read(
            ResourceKind::Contact.as_str(),
            c.id.0,
            "subjectAccessReport",
            crate::authz::FieldClass::Report.as_str(),
            &decision.rules,
        );
    }
    let recipients = disclosures
        .into_iter()
        .map(|d| {
            let org = OrgCode::from_str(&d.actor_org)
                .map_err(|_| AppError::internal_msg(format!("audit org {}", d.actor_org)))?;
            Ok(ReportRecipient {
                organization: org.into(),
                kind: org.kind().as_str().to_uppercase(),
                first_read: d.first_read,
                last_read: d.last_read,
                reads: d.events,
                field_classes: d.field_classes,
            })
        })
        .collect::<AppResult<Vec<_>>>()?;
    Ok(SubjectAccessReport {
        contact_id: ID(contact.to_string()),
        generated_at: ctx.now(),
        matched_by: matched_by.to_owned(),
        services: services
            .into_iter()
            .zip(notes_readable)
            .filter_map(|(s, notes_readable)| {
                Some(ReportService {
                    id: ID(s.id.to_string()),
                    contact_id: ID(s.contact_id?.to_string()),
                    kind: s.kind.into(),
                    title: s.title,
                    provider: s.provider.into(),
                    status: s.status.into(),
                    requested_at: s.requested_at,
                    delivered_at: s.delivered_at,
                    legal_basis: s.legal_basis.into(),
                    source: s.source.into(),
                    notes: s.notes.filter(|_| notes_readable),
                })
            })
            .collect(),
        changes: changes
            .into_iter()
            .map(|c| ReportChange {
                contact_id: ID(c.entity_id.to_string()),
                field: c.field,
                old_value: c.old_value,
                new_value: c.new_value,
                redacted: c.redacted,
                changed_by_org: c.changed_by_org.into(),
                changed_at: c.changed_at,
            })
            .collect(),
        requests: requests
            .into_iter()
            .map(|q| ReportRequest {
                id: ID(q.id.to_string()),
                kind: q.kind.into(),
                received_by: q.received_by.into(),
                received_at: q.received_at,
                deadline: q.deadline(),
                status: q.status.into(),
                resolution: q.resolution,
            })
            .collect(),
        contacts: people.into_iter().map(ReportContact::of).collect::<AppResult<_>>()?,
        recipients,
    })
}

#[derive(Default)]
pub struct ReportQuery;

#[Object]
impl ReportQuery {
    /// Everything every controller holds about the person this contact is,
    /// and who read it (DPO, purpose DATA_SUBJECT_REQUEST). Also as JSON at
    /// `GET /reports/subject-access/{contactId}`.
    async fn subject_access_report(
        &self,
        ctx: &Context<'_>,
        contact_id: ID,
    ) -> AppResult<Option<SubjectAccessReport>> {
        let id: ContactId = parse_id("contactId", &contact_id)?;
        Ok(Some(build(ctx, id).await?))
    }
}
