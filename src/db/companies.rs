//! Companies: rows, forms and queries.

use crate::register::ResourceKind;
use chrono::{DateTime, Utc};
use diesel::dsl::exists;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use super::page::like_pattern;
use super::rows::{
    delete_statement, erase_statement, narrow, page_reads, row_statements, update_logged,
    visible_reads,
};
use super::schema::{companies, company_confidential, contacts, services};
use super::visible::Visible;
use super::{ChangeAuthor, CompanyForm, CompanyId, DataSource, Entity, LegalBasis, OrgCode};

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

#[derive(Debug, Clone, Default, PartialEq)]
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
    narrow!(q, f;
        name_contains => |s| companies::name.ilike(like_pattern(&s)),
        business_id => |s| companies::business_id.eq(s),
        // A prefix: no leading wildcard.
        industry_code_prefix => |s| companies::industry_code.like(like_pattern(&s)[1..].to_owned()),
        municipality => |s| companies::municipality.eq(s),
        company_form => |v| companies::company_form.eq(v),
        registered_by => |v| companies::registered_by.eq(v),
    );
    q
}

row_statements!(companies, CompanyRow, CompanyId, NewCompany, Entity::Company);
delete_statement!(companies, CompanyRow);
erase_statement!(companies, CompanyRow, ResourceKind::Company);
visible_reads!(companies, CompanyRow; by_ids(id: CompanyId));
super::project::projected_row!(CompanyRow, companies = "companies", ResourceKind::Company,
    facts [id, company_form, industry_code, registered_by, created_at, erased_at],
    [id, business_id, name, company_form, industry_code, municipality, country, website, registered_by,
     legal_basis, source, created_at, updated_at, last_processed_at, legal_hold, legal_hold_reason,
     erased_at, erased_by, erased_by_org]);
page_reads!(companies, CompanyRow, CompanyFilter, counts: company_counts);

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
    Ok(id_by_business_id(conn, business_id).await?.is_some_and(|id| Some(id) != except))
}

/// `old` is the row as locked by [`lock`] in the same transaction.
pub async fn update(
    conn: &mut AsyncPgConnection,
    author: &ChangeAuthor,
    old: &CompanyRow,
    changes: &CompanyChanges,
) -> QueryResult<CompanyRow> {
    let now = Utc::now();
    let set = (changes, companies::updated_at.eq(now), companies::last_processed_at.eq(now));
    Ok(update_logged!(conn, author, companies, CompanyRow, old, set))
}

/// What stops a company from being deleted, if anything.
pub async fn dependents(
    conn: &mut AsyncPgConnection,
    id: CompanyId,
) -> QueryResult<Option<&'static str>> {
    // One statement: EXISTS stops at the first row of each kind.
    let (contacts, services, confidential): (bool, bool, bool) = diesel::select((
        exists(contacts::table.filter(contacts::company_id.eq(id))),
        exists(services::table.filter(services::company_id.eq(id))),
        exists(company_confidential::table.filter(company_confidential::company_id.eq(id))),
    ))
    .get_result(conn)
    .await?;
    Ok([(contacts, "contacts"), (services, "services"), (confidential, "confidential rows")]
        .into_iter()
        .find_map(|(has, what)| has.then_some(what)))
}

/// Marks the company as processed now (a service was recorded for it).
pub async fn touch(conn: &mut AsyncPgConnection, id: CompanyId) -> QueryResult<usize> {
    diesel::update(companies::table.find(id))
        .set(companies::last_processed_at.eq(Utc::now()))
        .execute(conn)
        .await
}

/// Sets or lifts a legal hold (with its reason) on a company.
pub async fn set_legal_hold(
    conn: &mut AsyncPgConnection,
    author: &ChangeAuthor,
    old: &CompanyRow,
    hold: bool,
    reason: Option<String>,
) -> QueryResult<CompanyRow> {
    let set = (
        companies::legal_hold.eq(hold),
        companies::legal_hold_reason.eq(reason),
        companies::updated_at.eq(Utc::now()),
    );
    Ok(update_logged!(conn, author, companies, CompanyRow, old, set))
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
