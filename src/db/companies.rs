//! Companies: rows, forms and queries.

use crate::register::ResourceKind;
use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use super::page::{keyset_page, like_pattern, PageRequest};
use super::schema::{companies, company_confidential, contacts, services};
use super::visible::{FactColumns, Visible};
use super::{
    change_log, ChangeAuthor, CompanyForm, CompanyId, DataSource, Entity, LegalBasis, OrgCode,
};

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = companies, check_for_backend(Pg))]
pub struct CompanyRow {
    pub id: CompanyId,
    pub business_id: Option<String>,
    pub name: Option<String>,
    pub company_form: CompanyForm,
    pub industry_code: Option<String>,
    pub municipality: Option<String>,
    pub country: String,
    pub website: Option<String>,
    pub registered_by: OrgCode,
    pub legal_basis: LegalBasis,
    pub source: DataSource,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_processed_at: DateTime<Utc>,
    pub legal_hold: bool,
    pub legal_hold_reason: Option<String>,
    pub erased_at: Option<DateTime<Utc>>,
    pub erased_by: Option<String>,
    pub erased_by_org: Option<OrgCode>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = companies)]
pub struct NewCompany {
    pub business_id: String,
    pub name: String,
    pub company_form: CompanyForm,
    pub industry_code: Option<String>,
    pub municipality: Option<String>,
    pub country: String,
    pub website: Option<String>,
    pub registered_by: OrgCode,
    pub legal_basis: LegalBasis,
    pub source: DataSource,
}

/// `None` leaves a column as it is; `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = companies)]
pub struct CompanyChanges {
    pub business_id: Option<String>,
    pub name: Option<String>,
    pub company_form: Option<CompanyForm>,
    pub industry_code: Option<Option<String>>,
    pub municipality: Option<Option<String>>,
    pub country: Option<String>,
    pub website: Option<Option<String>>,
    pub legal_basis: Option<LegalBasis>,
    pub source: Option<DataSource>,
}

#[derive(Debug, Clone, Default)]
pub struct CompanyFilter {
    pub name_contains: Option<String>,
    pub business_id: Option<String>,
    pub industry_code_prefix: Option<String>,
    pub municipality: Option<String>,
    pub company_form: Option<CompanyForm>,
    pub registered_by: Option<OrgCode>,
}

fn filtered(f: &CompanyFilter, vis: &Visible) -> companies::BoxedQuery<'static, Pg> {
    let mut q = companies::table.into_boxed().filter(visible_sql(vis));
    if let Some(s) = &f.name_contains {
        q = q.filter(companies::name.ilike(like_pattern(s)));
    }
    if let Some(s) = &f.business_id {
        q = q.filter(companies::business_id.eq(s.clone()));
    }
    if let Some(s) = &f.industry_code_prefix {
        let mut pattern = like_pattern(s);
        pattern.remove(0); // a prefix: no leading wildcard
        q = q.filter(companies::industry_code.like(pattern));
    }
    if let Some(s) = &f.municipality {
        q = q.filter(companies::municipality.eq(s.clone()));
    }
    if let Some(v) = f.company_form {
        q = q.filter(companies::company_form.eq(v));
    }
    if let Some(v) = f.registered_by {
        q = q.filter(companies::registered_by.eq(v));
    }
    q
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    f: &CompanyFilter,
    vis: &Visible,
    page: PageRequest,
) -> QueryResult<Vec<CompanyRow>> {
    keyset_page!(filtered(f, vis), companies, page)
        .select(CompanyRow::as_select())
        .load(conn)
        .await
}

pub async fn count(
    conn: &mut AsyncPgConnection,
    f: &CompanyFilter,
    vis: &Visible,
) -> QueryResult<i64> {
    filtered(f, vis).count().get_result(conn).await
}

pub async fn by_ids(
    conn: &mut AsyncPgConnection,
    ids: &[CompanyId],
    vis: &Visible,
) -> QueryResult<Vec<CompanyRow>> {
    companies::table
        .filter(companies::id.eq_any(ids))
        .filter(visible_sql(vis))
        .select(CompanyRow::as_select())
        .load(conn)
        .await
}

pub async fn id_by_business_id(
    conn: &mut AsyncPgConnection,
    business_id: &str,
) -> QueryResult<Option<CompanyId>> {
    companies::table
        .filter(companies::business_id.eq(business_id))
        .select(companies::id)
        .first(conn)
        .await
        .optional()
}

pub async fn business_id_taken(
    conn: &mut AsyncPgConnection,
    business_id: &str,
    except: Option<CompanyId>,
) -> QueryResult<bool> {
    Ok(id_by_business_id(conn, business_id)
        .await?
        .is_some_and(|id| Some(id) != except))
}

pub async fn insert(
    conn: &mut AsyncPgConnection,
    author: &ChangeAuthor,
    new: &NewCompany,
) -> QueryResult<CompanyRow> {
    let row: CompanyRow = diesel::insert_into(companies::table)
        .values(new)
        .returning(CompanyRow::as_returning())
        .get_result(conn)
        .await?;
    change_log::record(conn, author, Entity::Company, row.id.0, None, Some(&row)).await?;
    Ok(row)
}

/// Locks the row for the rest of the transaction.
pub async fn lock(conn: &mut AsyncPgConnection, id: CompanyId) -> QueryResult<Option<CompanyRow>> {
    companies::table
        .find(id)
        .for_update()
        .select(CompanyRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// `old` is the row as locked by [`lock`] in the same transaction.
pub async fn update(
    conn: &mut AsyncPgConnection,
    author: &ChangeAuthor,
    old: &CompanyRow,
    changes: &CompanyChanges,
) -> QueryResult<CompanyRow> {
    let id = old.id;
    let now = Utc::now();
    let new: CompanyRow = diesel::update(companies::table.find(id))
        .set((
            changes,
            companies::updated_at.eq(now),
            companies::last_processed_at.eq(now),
        ))
        .returning(CompanyRow::as_returning())
        .get_result(conn)
        .await?;
    change_log::record(conn, author, Entity::Company, id.0, Some(old), Some(&new)).await?;
    Ok(new)
}

/// What stops a company from being deleted, if anything.
pub async fn dependents(
    conn: &mut AsyncPgConnection,
    id: CompanyId,
) -> QueryResult<Option<&'static str>> {
    let has = |n: i64| n > 0;
    if has(contacts::table
        .filter(contacts::company_id.eq(id))
        .count()
        .get_result(conn)
        .await?)
    {
        return Ok(Some("contacts"));
    }
    if has(services::table
        .filter(services::company_id.eq(id))
        .count()
        .get_result(conn)
        .await?)
    {
        return Ok(Some("services"));
    }
    if has(company_confidential::table
        .filter(company_confidential::company_id.eq(id))
        .count()
        .get_result(conn)
        .await?)
    {
        return Ok(Some("confidential rows"));
    }
    Ok(None)
}

pub async fn delete(
    conn: &mut AsyncPgConnection,
    author: &ChangeAuthor,
    old: &CompanyRow,
) -> QueryResult<()> {
    diesel::delete(companies::table.find(old.id))
        .execute(conn)
        .await?;
    change_log::record(conn, author, Entity::Company, old.id.0, Some(old), None).await?;
    Ok(())
}

/// Marks the company as processed now (a service was recorded for it).
pub async fn touch(conn: &mut AsyncPgConnection, id: CompanyId) -> QueryResult<usize> {
    diesel::update(companies::table.find(id))
        .set(companies::last_processed_at.eq(Utc::now()))
        .execute(conn)
        .await
}

fn visible_sql(vis: &Visible) -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql::<diesel::sql_types::Bool>(&vis.sql(&FactColumns::companies()))
}

/// Sets or lifts a legal hold (with its reason) on a company.
pub async fn set_legal_hold(
    conn: &mut AsyncPgConnection,
    author: &ChangeAuthor,
    old: &CompanyRow,
    hold: bool,
    reason: Option<String>,
) -> QueryResult<CompanyRow> {
    let new: CompanyRow = diesel::update(companies::table.find(old.id))
        .set((
            companies::legal_hold.eq(hold),
            companies::legal_hold_reason.eq(reason),
            companies::updated_at.eq(Utc::now()),
        ))
        .returning(CompanyRow::as_returning())
        .get_result(conn)
        .await?;
    change_log::record(
        conn,
        author,
        Entity::Company,
        old.id.0,
        Some(old),
        Some(&new),
    )
    .await?;
    Ok(new)
}

/// Erasure of a sole trader: its name, business ID and website are personal
/// data; the tombstone and the public facts of the business stay.
pub async fn erase(
    conn: &mut AsyncPgConnection,
    author: &ChangeAuthor,
    old: &CompanyRow,
) -> QueryResult<CompanyRow> {
    // Every personal column the register declares, and the tombstone.
    super::tombstone(conn, ResourceKind::Company, old.id.0, author).await?;
    let new: CompanyRow = companies::table
        .find(old.id)
        .select(CompanyRow::as_select())
        .first(conn)
        .await?;
    change_log::record(
        conn,
        author,
        Entity::Company,
        old.id.0,
        Some(old),
        Some(&new),
    )
    .await?;
    change_log::redact(conn, Entity::Company, old.id.0, None).await?;
    Ok(new)
}

/// Sole traders (whose name and business ID are personal data) the
/// five-year rule says must go: not processed since `cutoff`, not erased, no
/// legal hold.
pub async fn retention_due(
    conn: &mut AsyncPgConnection,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<CompanyRow>> {
    companies::table
        .filter(companies::company_form.eq(super::CompanyForm::SoleTrader))
        .filter(companies::erased_at.is_null())
        .filter(companies::last_processed_at.lt(cutoff))
        .filter(companies::legal_hold.eq(false))
        .order((companies::last_processed_at.asc(), companies::id.asc()))
        .limit(limit)
        .select(CompanyRow::as_select())
        .load(conn)
        .await
}
