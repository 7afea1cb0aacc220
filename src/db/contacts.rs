//! Contacts: personal data of companies' contact and responsible persons.

use crate::register::ResourceKind;
use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use super::page::like_pattern;
use super::rows::{
    delete_statement, erase_statement, narrow, page_reads, row_statements, update_logged,
    visible_reads,
};
use super::schema::{contacts, services};
use super::visible::Visible;
use super::{ChangeAuthor, CompanyId, ContactId, DataSource, Entity, LegalBasis, OrgCode};

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = contacts, check_for_backend(Pg))]
pub struct ContactRow {
    pub id: ContactId,
    pub company_id: CompanyId,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub home_country: Option<String>,
    pub home_municipality: Option<String>,
    pub postal_address: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub title: Option<String>,
    pub role_in_company: Option<String>,
    pub nickname: Option<String>,
    pub native_name: Option<String>,
    pub native_address: Option<String>,
    pub native_title: Option<String>,
    pub work_country: Option<String>,
    pub industry: Option<String>,
    pub investment_profile: Option<String>,
    pub expertise_level: Option<String>,
    pub job_description: Option<String>,
    pub other_description: Option<String>,
    pub registered_by: OrgCode,
    pub legal_basis: LegalBasis,
    pub source: DataSource,
    pub restricted: bool,
    pub objection_pending: bool,
    pub marketing_objection: bool,
    pub legal_hold: bool,
    pub legal_hold_reason: Option<String>,
    pub last_processed_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub erased_at: Option<DateTime<Utc>>,
    pub erased_by: Option<String>,
    pub erased_by_org: Option<OrgCode>,
}

/// The person's own data, shared by the insert and update forms.
#[derive(Debug, Clone, Default, Insertable, AsChangeset)]
#[diesel(table_name = contacts)]
pub struct ContactFields {
    pub first_name: Option<Option<String>>,
    pub last_name: Option<String>,
    pub home_country: Option<Option<String>>,
    pub home_municipality: Option<Option<String>>,
    pub postal_address: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub title: Option<Option<String>>,
    pub role_in_company: Option<Option<String>>,
    pub nickname: Option<Option<String>>,
    pub native_name: Option<Option<String>>,
    pub native_address: Option<Option<String>>,
    pub native_title: Option<Option<String>>,
    pub work_country: Option<Option<String>>,
    pub industry: Option<Option<String>>,
    pub investment_profile: Option<Option<String>>,
    pub expertise_level: Option<Option<String>>,
    pub job_description: Option<Option<String>>,
    pub other_description: Option<Option<String>>,
    pub legal_basis: Option<LegalBasis>,
    pub source: Option<DataSource>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = contacts)]
pub struct NewContact {
    pub company_id: CompanyId,
    pub registered_by: OrgCode,
    #[diesel(embed)]
    pub fields: ContactFields,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactFilter {
    pub company_id: Option<CompanyId>,
    pub name_contains: Option<String>,
    pub email: Option<String>,
    pub registered_by: Option<OrgCode>,
}

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>);
diesel::define_sql_function!(fn coalesce(x: diesel::sql_types::Nullable<diesel::sql_types::Text>, y: diesel::sql_types::Text) -> diesel::sql_types::Text);

fn filtered(f: &ContactFilter, vis: &Visible) -> contacts::BoxedQuery<'static, Pg> {
    let mut q = contacts::table.into_boxed().filter(visible_sql(vis));
    // The name matches the expression of the trigram index contacts_name_trgm_idx.
    narrow!(q, f;
        company_id => |id| contacts::company_id.eq(id),
        name_contains => |s| coalesce(contacts::first_name, "")
            .concat(" ")
            .concat(coalesce(contacts::last_name, ""))
            .ilike(like_pattern(&s)),
        email => |s| lower(contacts::email).eq(s.to_lowercase()),
        registered_by => |v| contacts::registered_by.eq(v),
    );
    q
}

row_statements!(contacts, ContactRow, ContactId, NewContact, Entity::Contact);
super::project::projected_row!(ContactRow, contacts = "contacts", ResourceKind::Contact,
    facts [id, company_id, registered_by, restricted, objection_pending, marketing_objection, created_at, erased_at],
    [id, company_id, first_name, last_name, home_country, home_municipality, postal_address, email, phone,
     title, role_in_company, nickname, native_name, native_address, native_title, work_country, industry,
     investment_profile, expertise_level, job_description, other_description, registered_by, legal_basis,
     source, restricted, objection_pending, marketing_objection, legal_hold, legal_hold_reason,
     last_processed_at, created_at, updated_at, erased_at, erased_by, erased_by_org]);
delete_statement!(contacts, ContactRow);
erase_statement!(contacts, ContactRow, ResourceKind::Contact);
visible_reads!(contacts, ContactRow;
    by_ids(id: ContactId), by_company_ids(company_id: CompanyId));
page_reads!(contacts, ContactRow, ContactFilter, counts: contact_counts);

/// A change to the person's data is processing: `last_processed_at` moves (docs/register.md, retention).
pub async fn update(
    conn: &mut AsyncPgConnection,
    author: &ChangeAuthor,
    old: &ContactRow,
    changes: &ContactFields,
) -> QueryResult<ContactRow> {
    let now = Utc::now();
    let set = (changes, contacts::updated_at.eq(now), contacts::last_processed_at.eq(now));
    Ok(update_logged!(conn, author, contacts, ContactRow, old, set))
}

pub async fn has_services(conn: &mut AsyncPgConnection, id: ContactId) -> QueryResult<bool> {
    let n: i64 =
        services::table.filter(services::contact_id.eq(id)).count().get_result(conn).await?;
    Ok(n > 0)
}

/// A service was recorded for the person: the five-year clock restarts.
pub async fn touch(conn: &mut AsyncPgConnection, id: ContactId) -> QueryResult<usize> {
    diesel::update(contacts::table.find(id))
        .set(contacts::last_processed_at.eq(Utc::now()))
        .execute(conn)
        .await
}

/// The processing flags a data subject's rights set (restriction, objection,
/// legal hold); `None` leaves a flag as it is.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = contacts)]
pub struct ContactFlags {
    pub restricted: Option<bool>,
    pub objection_pending: Option<bool>,
    pub marketing_objection: Option<bool>,
    pub legal_hold: Option<bool>,
    pub legal_hold_reason: Option<Option<String>>,
}

/// Sets processing flags (not processing itself: the retention clock stays).
pub async fn set_flags(
    conn: &mut AsyncPgConnection,
    author: &ChangeAuthor,
    old: &ContactRow,
    flags: &ContactFlags,
) -> QueryResult<ContactRow> {
    let set = (flags, contacts::updated_at.eq(Utc::now()));
    Ok(update_logged!(conn, author, contacts, ContactRow, old, set))
}

/// Contacts the five-year rule says must go (docs/register.md): not processed since
/// `cutoff`, not erased, no legal hold and no open data subject request.
pub async fn retention_due(
    conn: &mut AsyncPgConnection,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<ContactRow>> {
    use super::schema::data_subject_requests as dsr;
    let open = dsr::table.filter(dsr::contact_id.eq(contacts::id.nullable())).filter(
        dsr::status.eq_any([super::RequestStatus::Received, super::RequestStatus::InProgress]),
    );
    contacts::table
        .filter(contacts::erased_at.is_null())
        .filter(contacts::last_processed_at.lt(cutoff))
        .filter(contacts::legal_hold.eq(false))
        .filter(diesel::dsl::not(diesel::dsl::exists(open)))
        .order((contacts::last_processed_at.asc(), contacts::id.asc()))
        .limit(limit)
        .select(ContactRow::as_select())
        .load(conn)
        .await
}

/// The same person as registered by every controller: the contact itself
/// and, if it has an email address, every contact with that address
/// (case-insensitively), erased ones included (their tombstones are held too).
pub async fn same_person(
    conn: &mut AsyncPgConnection,
    row: &ContactRow,
) -> QueryResult<Vec<ContactRow>> {
    let mut q = contacts::table.into_boxed().filter(contacts::id.eq(row.id));
    if let Some(email) = &row.email {
        q = q.or_filter(lower(contacts::email).eq(email.to_lowercase()));
    }
    q.order((contacts::created_at.asc(), contacts::id.asc()))
        .select(ContactRow::as_select())
        .load(conn)
        .await
}
