//! Services a company or person received.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use super::rows::{
    delete_statement, narrow, page_reads, row_statements, update_logged, visible_reads,
};
use super::schema::services;
use super::visible::Visible;
use super::{
    companies, contacts, ChangeAuthor, CompanyId, ContactId, DataSource, Entity, LegalBasis,
    OrgCode, ServiceId, ServiceKind, ServiceStatus,
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

#[derive(Debug, Clone, Default, PartialEq)]
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
    narrow!(q, f;
        company_id => |v| services::company_id.eq(v),
        contact_id => |v| services::contact_id.eq(v),
        provider => |v| services::provider.eq(v),
        kind => |v| services::kind.eq(v),
        status => |v| services::status.eq(v),
        requested_from => |v| services::requested_at.ge(v),
        requested_to => |v| services::requested_at.lt(v),
    );
    q
}

row_statements!(services, ServiceRow, ServiceId, NewService, Entity::Service,
    after_insert: touch_clients);
delete_statement!(services, ServiceRow);
visible_reads!(services, ServiceRow;
    by_ids(id: ServiceId), by_company_ids(company_id: CompanyId),
    by_contact_ids(contact_id: ContactId));
page_reads!(services, ServiceRow, ServiceFilter, counts: service_counts);
super::project::projected_row!(ServiceRow, services = "services", crate::register::ResourceKind::Service,
    facts [id, provider, company_id, contact_id, created_at],
    [id, kind, title, provider, company_id, contact_id, status, requested_at, delivered_at, invoiced_at,
     legal_basis, source, amount_eur, notes, created_at, updated_at]);

/// Recording a service for a person (or company) is processing: their
/// `last_processed_at` moves (docs/register.md, retention).
async fn touch_clients(conn: &mut AsyncPgConnection, row: &ServiceRow) -> QueryResult<()> {
    companies::touch(conn, row.company_id).await?;
    if let Some(contact) = row.contact_id {
        contacts::touch(conn, contact).await?;
    }
    Ok(())
}

pub async fn update(
    conn: &mut AsyncPgConnection,
    author: &ChangeAuthor,
    old: &ServiceRow,
    changes: &ServiceChanges,
) -> QueryResult<ServiceRow> {
    let set = (changes, services::updated_at.eq(Utc::now()));
    let new = update_logged!(conn, author, services, ServiceRow, old, set);
    if let Some(contact) = new.contact_id {
        contacts::touch(conn, contact).await?;
    }
    Ok(new)
}
