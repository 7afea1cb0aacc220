//! Data subject requests (GDPR arts. 15–21), handled jointly by every
//! controller's DPO; due one calendar month after receipt.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use super::page::{keyset_page, PageRequest};
use super::rows::{narrow, row_statements, update_logged};
use super::schema::data_subject_requests as dsr;
use super::{
    change_log, ChangeAuthor, ContactId, Entity, OrgCode, RequestId, RequestKind, RequestStatus,
};

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = dsr, check_for_backend(Pg))]
pub struct RequestRow {
    pub id: RequestId,
    pub kind: RequestKind,
    pub contact_id: Option<ContactId>,
    pub subject_description: Option<String>,
    pub received_by: OrgCode,
    pub received_at: DateTime<Utc>,
    pub due_at: NaiveDate,
    pub extended_due_at: Option<NaiveDate>,
    pub extension_reason: Option<String>,
    pub status: RequestStatus,
    pub resolution: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub handled_by: Option<String>,
    pub handled_by_org: Option<OrgCode>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl RequestRow {
    /// The deadline in force: the extended one, if any.
    pub fn deadline(&self) -> NaiveDate {
        self.extended_due_at.unwrap_or(self.due_at)
    }

    pub fn is_open(&self) -> bool {
        matches!(self.status, RequestStatus::Received | RequestStatus::InProgress)
    }

    pub fn is_overdue(&self, today: NaiveDate) -> bool {
        self.is_open() && self.deadline() < today
    }
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = dsr)]
pub struct NewRequest {
    pub kind: RequestKind,
    pub contact_id: Option<ContactId>,
    pub subject_description: Option<String>,
    pub received_by: OrgCode,
    pub received_at: DateTime<Utc>,
    pub due_at: NaiveDate,
    pub handled_by: Option<String>,
    pub handled_by_org: Option<OrgCode>,
}

/// A change of a request's handling.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = dsr)]
pub struct RequestChanges {
    pub extended_due_at: Option<Option<NaiveDate>>,
    pub extension_reason: Option<Option<String>>,
    pub status: Option<RequestStatus>,
    pub resolution: Option<Option<String>>,
    pub resolved_at: Option<Option<DateTime<Utc>>>,
    pub handled_by: Option<Option<String>>,
    pub handled_by_org: Option<Option<OrgCode>>,
}

#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub kind: Option<RequestKind>,
    pub status: Option<RequestStatus>,
    pub contact_id: Option<ContactId>,
    pub received_by: Option<OrgCode>,
    /// Open and past its deadline (`Some(false)`: not overdue) as of `today`.
    pub overdue: Option<bool>,
    pub today: Option<NaiveDate>,
}

const OPEN: [RequestStatus; 2] = [RequestStatus::Received, RequestStatus::InProgress];

diesel::define_sql_function!(fn coalesce(x: diesel::sql_types::Nullable<diesel::sql_types::Date>, y: diesel::sql_types::Date) -> diesel::sql_types::Date);

fn filtered(f: &RequestFilter) -> dsr::BoxedQuery<'static, Pg> {
    let mut q = dsr::table.into_boxed();
    narrow!(q, f;
        kind => |v| dsr::kind.eq(v),
        status => |v| dsr::status.eq(v),
        contact_id => |v| dsr::contact_id.eq(v),
        received_by => |v| dsr::received_by.eq(v),
    );
    if let Some(overdue) = f.overdue {
        let today = f.today.unwrap_or_else(|| Utc::now().date_naive());
        let late =
            dsr::status.eq_any(OPEN).and(coalesce(dsr::extended_due_at, dsr::due_at).lt(today));
        q = if overdue { q.filter(late) } else { q.filter(diesel::dsl::not(late)) };
    }
    q
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    f: &RequestFilter,
    page: PageRequest,
) -> QueryResult<Vec<RequestRow>> {
    keyset_page!(filtered(f), dsr, page).select(RequestRow::as_select()).load(conn).await
}

pub async fn count(conn: &mut AsyncPgConnection, f: &RequestFilter) -> QueryResult<i64> {
    filtered(f).count().get_result(conn).await
}

row_statements!(dsr, RequestRow, RequestId, NewRequest, Entity::DataSubjectRequest);

/// The requests about a person (for the access report and the erasure check).
pub async fn of_contacts(
    conn: &mut AsyncPgConnection,
    ids: &[ContactId],
) -> QueryResult<Vec<RequestRow>> {
    dsr::table
        .filter(dsr::contact_id.eq_any(ids))
        .order((dsr::created_at.asc(), dsr::id.asc()))
        .select(RequestRow::as_select())
        .load(conn)
        .await
}

/// Open requests about a contact other than `except`.
pub async fn open_for_contact(
    conn: &mut AsyncPgConnection,
    contact: ContactId,
    except: Option<RequestId>,
) -> QueryResult<Vec<RequestRow>> {
    let mut q = dsr::table
        .filter(dsr::contact_id.eq(contact))
        .filter(dsr::status.eq_any(OPEN))
        .into_boxed();
    if let Some(id) = except {
        q = q.filter(dsr::id.ne(id));
    }
    q.select(RequestRow::as_select()).load(conn).await
}

pub async fn update(
    conn: &mut AsyncPgConnection,
    author: &ChangeAuthor,
    old: &RequestRow,
    changes: &RequestChanges,
) -> QueryResult<RequestRow> {
    let set = (changes, dsr::updated_at.eq(Utc::now()));
    Ok(update_logged!(conn, author, dsr, RequestRow, old, set))
}

impl super::page::Paged for RequestRow {
    fn keyset(&self) -> super::page::Keyset {
        super::page::Keyset { created_at: self.created_at, id: self.id.0 }
    }
}

/// Erasure of a person: the identifying facts they gave on their requests
/// go too, and the change log's copies of them.
pub async fn forget_subject(
    conn: &mut AsyncPgConnection,
    contact: ContactId,
) -> QueryResult<usize> {
    let ids: Vec<RequestId> = diesel::update(dsr::table)
        .filter(dsr::contact_id.eq(contact))
        .filter(dsr::subject_description.is_not_null())
        .set(dsr::subject_description.eq(None::<String>))
        .returning(dsr::id)
        .get_results(conn)
        .await?;
    for id in &ids {
        change_log::redact(conn, Entity::DataSubjectRequest, id.0, Some("subject_description"))
            .await?;
    }
    Ok(ids.len())
}
