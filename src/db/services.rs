//! Services a company or person received.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use super::page::{keyset_page, PageRequest};
use super::schema::services;
use super::visible::{FactColumns, Visible};
use super::{
    change_log, companies, contacts, ChangeAuthor, CompanyId, ContactId, DataSource, Entity,
    LegalBasis, OrgCode, ServiceId, ServiceKind, ServiceStatus,
};

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = services, check_for_backend(Pg))]
pub struct ServiceRow {
    pub id: ServiceId,
    pub kind: ServiceKind,
    pub title: String,
    pub provider: OrgCode,
    pub company_id: CompanyId,
    pub contact_id: Option<ContactId>,
    pub status: ServiceStatus,
    pub requested_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub invoiced_at: Option<DateTime<Utc>>,
    pub legal_basis: LegalBasis,
    pub source: DataSource,
    pub amount_eur: Option<BigDecimal>,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = services)]
pub struct NewService {
    pub kind: ServiceKind,
    pub title: String,
    pub provider: OrgCode,
    pub company_id: CompanyId,
    pub contact_id: Option<ContactId>,
    pub status: ServiceStatus,
    pub requested_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub invoiced_at: Option<DateTime<Utc>>,
    pub legal_basis: LegalBasis,
    pub source: DataSource,
    pub amount_eur: Option<BigDecimal>,
    pub notes: Option<String>,
}

#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = services)]
pub struct ServiceChanges {
    pub kind: Option<ServiceKind>,
    pub title: Option<String>,
    pub contact_id: Option<Option<ContactId>>,
    pub status: Option<ServiceStatus>,
    pub requested_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<Option<DateTime<Utc>>>,
    pub invoiced_at: Option<Option<DateTime<Utc>>>,
    pub legal_basis: Option<LegalBasis>,
    pub source: Option<DataSource>,
    pub amount_eur: Option<Option<BigDecimal>>,
    pub notes: Option<Option<String>>,
}

#[derive(Debug, Clone, Default)]
pub struct ServiceFilter {
    pub company_id: Option<CompanyId>,
    pub contact_id: Option<ContactId>,
    pub provider: Option<OrgCode>,
    pub kind: Option<ServiceKind>,
    pub status: Option<ServiceStatus>,
    pub requested_from: Option<DateTime<Utc>>,
    pub requested_to: Option<DateTime<Utc>>,
}

fn filtered(f: &ServiceFilter, vis: &Visible) -> services::BoxedQuery<'static, Pg> {
    let mut q = services::table.into_boxed().filter(visible_sql(vis));
    if let Some(v) = f.company_id {
        q = q.filter(services::company_id.eq(v));
    }
    if let Some(v) = f.contact_id {
        q = q.filter(services::contact_id.eq(v));
    }
    if let Some(v) = f.provider {
        q = q.filter(services::provider.eq(v));
    }
    if let Some(v) = f.kind {
        q = q.filter(services::kind.eq(v));
    }
    if let Some(v) = f.status {
        q = q.filter(services::status.eq(v));
    }
    if let Some(v) = f.requested_from {
        q = q.filter(services::requested_at.ge(v));
    }
    if let Some(v) = f.requested_to {
        q = q.filter(services::requested_at.lt(v));
    }
    q
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    f: &ServiceFilter,
    vis: &Visible,
    page: PageRequest,
) -> QueryResult<Vec<ServiceRow>> {
    keyset_page!(filtered(f, vis), services, page)
        .select(ServiceRow::as_select())
        .load(conn)
        .await
}

pub async fn count(
    conn: &mut AsyncPgConnection,
    f: &ServiceFilter,
    vis: &Visible,
) -> QueryResult<i64> {
    filtered(f, vis).count().get_result(conn).await
}

pub async fn by_ids(
    conn: &mut AsyncPgConnection,
    ids: &[ServiceId],
    vis: &Visible,
) -> QueryResult<Vec<ServiceRow>> {
    services::table
        .filter(services::id.eq_any(ids))
        .filter(visible_sql(vis))
        .select(ServiceRow::as_select())
        .load(conn)
        .await
}

pub async fn by_company_ids(
    conn: &mut AsyncPgConnection,
    ids: &[CompanyId],
    vis: &Visible,
) -> QueryResult<Vec<ServiceRow>> {
    services::table
        .filter(services::company_id.eq_any(ids))
        .filter(visible_sql(vis))
        .order((services::created_at.asc(), services::id.asc()))
        .select(ServiceRow::as_select())
        .load(conn)
        .await
}

pub async fn by_contact_ids(
    conn: &mut AsyncPgConnection,
    ids: &[ContactId],
    vis: &Visible,
) -> QueryResult<Vec<ServiceRow>> {
    services::table
        .filter(services::contact_id.eq_any(ids))
        .filter(visible_sql(vis))
        .order((services::created_at.asc(), services::id.asc()))
        .select(ServiceRow::as_select())
        .load(conn)
        .await
}

/// Recording a service for a person (or company) is processing: their
/// `last_processed_at` moves (docs/register.md, retention).
pub async fn insert(
    conn: &mut AsyncPgConnection,
    author: &ChangeAuthor,
    new: &NewService,
) -> QueryResult<ServiceRow> {
    let row: ServiceRow = diesel::insert_into(services::table)
        .values(new)
        .returning(ServiceRow::as_returning())
        .get_result(conn)
        .await?;
    change_log::record(conn, author, Entity::Service, row.id.0, None, Some(&row)).await?;
    companies::touch(conn, row.company_id).await?;
    if let Some(contact) = row.contact_id {
        contacts::touch(conn, contact).await?;
    }
    Ok(row)
}

pub async fn lock(conn: &mut AsyncPgConnection, id: ServiceId) -> QueryResult<Option<ServiceRow>> {
    services::table
        .find(id)
        .for_update()
        .select(ServiceRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn update(
    conn: &mut AsyncPgConnection,
    author: &ChangeAuthor,
    old: &ServiceRow,
    changes: &ServiceChanges,
) -> QueryResult<ServiceRow> {
    let new: ServiceRow = diesel::update(services::table.find(old.id))
        .set((changes, services::updated_at.eq(Utc::now())))
        .returning(ServiceRow::as_returning())
        .get_result(conn)
        .await?;
    change_log::record(
        conn,
        author,
        Entity::Service,
        old.id.0,
        Some(old),
        Some(&new),
    )
    .await?;
    if let Some(contact) = new.contact_id {
        contacts::touch(conn, contact).await?;
    }
    Ok(new)
}

pub async fn delete(
    conn: &mut AsyncPgConnection,
    author: &ChangeAuthor,
    old: &ServiceRow,
) -> QueryResult<()> {
    diesel::delete(services::table.find(old.id))
        .execute(conn)
        .await?;
    change_log::record(conn, author, Entity::Service, old.id.0, Some(old), None).await?;
    Ok(())
}

fn visible_sql(vis: &Visible) -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql::<diesel::sql_types::Bool>(&vis.sql(&FactColumns::services()))
}
