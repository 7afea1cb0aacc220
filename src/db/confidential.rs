//! Confidential company data: one row per company and registering controller.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use super::rows::{delete_statement, row_statements, update_logged, visible_reads};
use super::schema::company_confidential as cc;
use super::{ChangeAuthor, CompanyId, ConfidentialId, Entity, OrgCode};

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = cc, check_for_backend(Pg))]
pub struct ConfidentialRow {
    pub id: ConfidentialId,
    pub company_id: CompanyId,
    pub registered_by: OrgCode,
    pub turnover_eur: Option<BigDecimal>,
    pub employee_count: Option<i32>,
    pub risk_rating: Option<String>,
    pub funding_decisions: Option<String>,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = cc)]
pub struct NewConfidential {
    pub company_id: CompanyId,
    pub registered_by: OrgCode,
    pub turnover_eur: Option<BigDecimal>,
    pub employee_count: Option<i32>,
    pub risk_rating: Option<String>,
    pub funding_decisions: Option<String>,
    pub notes: Option<String>,
}

#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = cc)]
pub struct ConfidentialChanges {
    pub turnover_eur: Option<Option<BigDecimal>>,
    pub employee_count: Option<Option<i32>>,
    pub risk_rating: Option<Option<String>>,
    pub funding_decisions: Option<Option<String>>,
    pub notes: Option<Option<String>>,
}

row_statements!(cc, ConfidentialRow, ConfidentialId, NewConfidential, Entity::CompanyConfidential);
delete_statement!(cc, ConfidentialRow);
visible_reads!(cc, ConfidentialRow; by_company_ids(company_id: CompanyId));
super::project::projected_row!(ConfidentialRow, cc = "company_confidential",
    crate::register::ResourceKind::Confidential,
    facts [id, company_id, registered_by, created_at],
    [id, company_id, registered_by, turnover_eur, employee_count, risk_rating, funding_decisions, notes,
     created_at, updated_at]);

pub async fn exists_for(
    conn: &mut AsyncPgConnection,
    company: CompanyId,
    org: OrgCode,
) -> QueryResult<bool> {
    let n: i64 = cc::table
        .filter(cc::company_id.eq(company))
        .filter(cc::registered_by.eq(org))
        .count()
        .get_result(conn)
        .await?;
    Ok(n > 0)
}

pub async fn update(
    conn: &mut AsyncPgConnection,
    author: &ChangeAuthor,
    old: &ConfidentialRow,
    changes: &ConfidentialChanges,
) -> QueryResult<ConfidentialRow> {
    let set = (changes, cc::updated_at.eq(Utc::now()));
    Ok(update_logged!(conn, author, cc, ConfidentialRow, old, set))
}
