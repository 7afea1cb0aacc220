//! Confidential company data: one row per company and registering controller.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use super::schema::company_confidential as cc;
use super::visible::{FactColumns, Visible};
use super::{change_log, ChangeAuthor, CompanyId, ConfidentialId, Entity, OrgCode};

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

pub async fn by_company_ids(
    conn: &mut AsyncPgConnection,
    ids: &[CompanyId],
    vis: &Visible,
) -> QueryResult<Vec<ConfidentialRow>> {
    cc::table
        .filter(cc::company_id.eq_any(ids))
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
            &vis.sql(&FactColumns::confidential()),
        ))
        .order((cc::created_at.asc(), cc::id.asc()))
        .select(ConfidentialRow::as_select())
        .load(conn)
        .await
}

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

pub async fn insert(
    conn: &mut AsyncPgConnection,
    author: &ChangeAuthor,
    new: &NewConfidential,
) -> QueryResult<ConfidentialRow> {
    let row: ConfidentialRow = diesel::insert_into(cc::table)
        .values(new)
        .returning(ConfidentialRow::as_returning())
        .get_result(conn)
        .await?;
    change_log::record(
        conn,
        author,
        Entity::CompanyConfidential,
        row.id.0,
        None,
        Some(&row),
    )
    .await?;
    Ok(row)
}

pub async fn lock(
    conn: &mut AsyncPgConnection,
    id: ConfidentialId,
) -> QueryResult<Option<ConfidentialRow>> {
    cc::table
        .find(id)
        .for_update()
        .select(ConfidentialRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn update(
    conn: &mut AsyncPgConnection,
    author: &ChangeAuthor,
    old: &ConfidentialRow,
    changes: &ConfidentialChanges,
) -> QueryResult<ConfidentialRow> {
    let new: ConfidentialRow = diesel::update(cc::table.find(old.id))
        .set((changes, cc::updated_at.eq(Utc::now())))
        .returning(ConfidentialRow::as_returning())
        .get_result(conn)
        .await?;
    change_log::record(
        conn,
        author,
        Entity::CompanyConfidential,
        old.id.0,
        Some(old),
        Some(&new),
    )
    .await?;
    Ok(new)
}

pub async fn delete(
    conn: &mut AsyncPgConnection,
    author: &ChangeAuthor,
    old: &ConfidentialRow,
) -> QueryResult<()> {
    diesel::delete(cc::table.find(old.id)).execute(conn).await?;
    change_log::record(
        conn,
        author,
        Entity::CompanyConfidential,
        old.id.0,
        Some(old),
        None,
    )
    .await?;
    Ok(())
}

/// One row by id, whoever may see it (for explaining decisions about it).
pub async fn by_id(
    conn: &mut AsyncPgConnection,
    id: ConfidentialId,
) -> QueryResult<Option<ConfidentialRow>> {
    cc::table
        .find(id)
        .select(ConfidentialRow::as_select())
        .first(conn)
        .await
        .optional()
}
