//! Companies and their confidential rows.

use async_graphql::{Context, InputObject, MaybeUndefined, Object, ID};
use chrono::{DateTime, Utc};

use super::connection::{self, Conn};
use super::contact::Contact;
use super::enums::{CompanyForm, DataSource, Decimal, LegalBasis, Organization};
use super::idempotency::{replay, Idempotent};
use super::input::{self, checked, keep_or_set, long_text, required, short_text};
use super::loader::{ConfidentialOf, ContactsOf, ServicesOfCompany, ServicesOfContact};
use super::service::Service;
use super::{locked_write, parse_id, ContextExt, Enforce, FieldGuard};
use crate::authz::{Action, Record, ResourceKind};
use crate::db::companies::{CompanyChanges, CompanyFilter, CompanyRow, NewCompany};
use crate::db::confidential::{ConfidentialChanges, ConfidentialRow, NewConfidential};
use crate::db::{self, CompanyId, ConfidentialId};
use crate::error::{AppError, AppResult};
use crate::validate;
use diesel_async::AsyncConnection;

register_object!(Company, CompanyRow, Company, Record::company);

guarded_object! {
// Every field passes the guard: its class comes from `register`'s declaration.
#[Object(guard = "FieldGuard(self)")]
impl Company for self {
    id: id,
    /// Personal data for a sole trader (contact identification).
    business_id: str,
    /// Personal data for a sole trader (contact identification).
    name: str,
    company_form: some CompanyForm,
    industry_code: str,
    municipality: str,
    /// ISO 3166-1 alpha-2.
    country: string,
    website: str,
    registered_by: some Organization,
    legal_basis: some LegalBasis,
    source: some DataSource,
    last_processed_at: some DateTime<Utc>,
    legal_hold: some bool,
    created_at: some DateTime<Utc>,
    updated_at: some DateTime<Utc>,
    /// Set when the record was erased; an erased record keeps only its tombstone.
    erased_at: opt DateTime<Utc>,
    /// (Complexity: a company has a handful of contacts; 5 is the estimate the cost limit uses.)
    #[graphql(complexity = "5 * child_complexity")]
    async fn contacts(&self, ctx: &Context<'_>) -> AppResult<Option<Vec<Contact>>> {
        let rows = ctx
            .loader()?
            .load_one(ContactsOf(self.row.id))
            .await?
            .unwrap_or_default();
        Ok(Some(Contact::many(ctx, rows).await?))
    }
    #[graphql(complexity = "10 * child_complexity")]
    async fn services(&self, ctx: &Context<'_>) -> AppResult<Option<Vec<Service>>> {
        let rows = ctx
            .loader()?
            .load_one(ServicesOfCompany(self.row.id))
            .await?
            .unwrap_or_default();
        Ok(Some(Service::many(ctx, rows).await?))
    }
    /// Confidential data, one entry per registering controller.
    async fn confidential(&self, ctx: &Context<'_>) -> AppResult<Option<Vec<CompanyConfidential>>> {
        let rows = ctx
            .loader()?
            .load_one(ConfidentialOf(self.row.id))
            .await?
            .unwrap_or_default();
        Ok(Some(
            rows.into_iter()
                .map(|r| CompanyConfidential::new(r, self.row.industry_code.as_deref()))
                .collect(),
        ))
    }
}
}

register_object!(
    CompanyConfidential,
    ConfidentialRow,
    Confidential,
    Record::confidential,
    company_scoped
);

#[Object(guard = "FieldGuard(self)")]
impl CompanyConfidential {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }
    async fn registered_by(&self) -> Option<Organization> {
        Some(self.row.registered_by.into())
    }
    async fn turnover_eur(&self) -> Option<Decimal> {
        self.row.turnover_eur.clone().map(Decimal)
    }
    async fn employee_count(&self) -> Option<i32> {
        self.row.employee_count
    }
    async fn risk_rating(&self) -> Option<&str> {
        self.row.risk_rating.as_deref()
    }
    async fn funding_decisions(&self) -> Option<&str> {
        self.row.funding_decisions.as_deref()
    }
    async fn notes(&self) -> Option<&str> {
        self.row.notes.as_deref()
    }
    async fn created_at(&self) -> Option<DateTime<Utc>> {
        Some(self.row.created_at)
    }
    async fn updated_at(&self) -> Option<DateTime<Utc>> {
        Some(self.row.updated_at)
    }
}

#[derive(InputObject, Default)]
pub struct CompanyFilterInput {
    /// Case-insensitive substring of the name.
    pub name_contains: Option<String>,
    pub business_id: Option<String>,
    /// TOL 2008 code prefix, e.g. "01" for agriculture.
    pub industry_code_prefix: Option<String>,
    pub municipality: Option<String>,
    pub company_form: Option<CompanyForm>,
    pub registered_by: Option<Organization>,
}

impl TryFrom<CompanyFilterInput> for CompanyFilter {
    type Error = AppError;
    fn try_from(f: CompanyFilterInput) -> AppResult<Self> {
        if let Some(p) = &f.industry_code_prefix {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(AppError::bad_input(
                    "filter.industryCodePrefix",
                    "must be one to five digits",
                ));
            }
        }
        Ok(CompanyFilter {
            name_contains: f.name_contains,
            business_id: f.business_id,
            industry_code_prefix: f.industry_code_prefix,
            municipality: f.municipality,
            company_form: f.company_form.map(Into::into),
            registered_by: f.registered_by.map(Into::into),
        })
    }
}

#[derive(Default)]
pub struct CompanyQuery;

#[Object]
impl CompanyQuery {
    async fn company(&self, ctx: &Context<'_>, id: ID) -> AppResult<Option<Company>> {
        super::guard_register(ctx, ResourceKind::Company)?;
        let id: CompanyId = parse_id("id", &id)?;
        match ctx.loader()?.load_one(id).await? {
            Some(row) => Ok(Some(Company::new(row))),
            None => Err(AppError::NotFound("company")),
        }
    }

    async fn company_by_business_id(
        &self,
        ctx: &Context<'_>,
        business_id: String,
    ) -> AppResult<Option<Company>> {
        super::guard_register(ctx, ResourceKind::Company)?;
        let business_id = validate::business_id(&business_id)
            .map_err(|m| AppError::bad_input("businessId", m))?;
        let id = db::companies::id_by_business_id(&mut *ctx.conn().await?, &business_id).await?;
        let row = match id {
            Some(id) => ctx.loader()?.load_one(id).await?,
            None => None,
        };
        row.map(|r| Some(Company::new(r))).ok_or(AppError::NotFound("company"))
    }

    #[graphql(complexity = "connection::cost(first, child_complexity)")]
    async fn companies(
        &self,
        ctx: &Context<'_>,
        filter: Option<CompanyFilterInput>,
        first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<Conn<Company>> {
        super::guard_register(ctx, ResourceKind::Company)?;
        let (page, first) = connection::page_request(first, after)?;
        let filter: CompanyFilter = filter.unwrap_or_default().try_into()?;
        let vis = &ctx.visibility()?.companies;
        let (rows, total) = connection::rows_and_total!(
            ctx,
            db::companies,
            (&filter, vis),
            page,
            ctx.request()?.projection.companies
        );
        // Primed so `contact.company` and `service.company` under this page cost no query.
        ctx.loader()?.feed_many(rows.iter().map(|r| (r.id, r.clone()))).await;
        preload_children(ctx, &rows).await?;
        Ok(connection::build(rows, first, page.after.is_some(), total, Company::new))
    }
}

/// Loads the nested levels a page selects with one batch each, so the cost
/// is one statement per level however the resolvers' timing falls (the
/// DataLoader's own batching window can split a level under load).
async fn preload_children(ctx: &Context<'_>, rows: &[std::sync::Arc<CompanyRow>]) -> AppResult<()> {
    let la = ctx.look_ahead();
    let nodes = [la.field("nodes"), la.field("edges").field("node")];
    let loader = ctx.loader()?;
    if nodes.iter().any(|n| n.field("contacts").exists()) {
        let contacts = loader.load_many(rows.iter().map(|r| ContactsOf(r.id))).await?;
        let people: Vec<_> = contacts.values().flatten().collect();
        loader.feed_many(people.iter().map(|c| (c.id, (*c).clone()))).await;
        if nodes.iter().any(|n| n.field("contacts").field("services").exists()) {
            loader.load_many(people.iter().map(|c| ServicesOfContact(c.id))).await?;
        }
    }
    if nodes.iter().any(|n| n.field("services").exists()) {
        loader.load_many(rows.iter().map(|r| ServicesOfCompany(r.id))).await?;
    }
    if nodes.iter().any(|n| n.field("confidential").exists()) {
        loader.load_many(rows.iter().map(|r| ConfidentialOf(r.id))).await?;
    }
    Ok(())
}

/// Company data for create (required fields must be present) and update
/// (absent fields are kept; null clears an optional field).
#[derive(InputObject)]
pub struct CompanyInput {
    pub business_id: MaybeUndefined<String>,
    pub name: MaybeUndefined<String>,
    pub company_form: MaybeUndefined<CompanyForm>,
    /// TOL 2008, five digits.
    pub industry_code: MaybeUndefined<String>,
    pub municipality: MaybeUndefined<String>,
    /// ISO 3166-1 alpha-2; FI when not given on create.
    pub country: MaybeUndefined<String>,
    pub website: MaybeUndefined<String>,
    pub legal_basis: MaybeUndefined<LegalBasis>,
    pub source: MaybeUndefined<DataSource>,
}

impl CompanyInput {
    fn into_changes(self) -> AppResult<CompanyChanges> {
        Ok(CompanyChanges {
            business_id: keep_or_set(
                "businessId",
                checked("businessId", self.business_id, validate::business_id)?,
            )?,
            name: keep_or_set("name", checked("name", self.name, short_text)?)?,
            company_form: keep_or_set("companyForm", self.company_form)?.map(Into::into),
            industry_code: input::text(
                "industryCode",
                self.industry_code,
                validate::industry_code,
            )?,
            municipality: input::text("municipality", self.municipality, short_text)?,
            country: keep_or_set("country", checked("country", self.country, validate::country)?)?,
            website: input::text("website", self.website, validate::website)?,
            legal_basis: keep_or_set("legalBasis", self.legal_basis)?.map(Into::into),
            source: keep_or_set("source", self.source)?.map(Into::into),
        })
    }
}

#[derive(InputObject)]
pub struct ConfidentialInput {
    pub turnover_eur: MaybeUndefined<Decimal>,
    pub employee_count: MaybeUndefined<i32>,
    pub risk_rating: MaybeUndefined<String>,
    pub funding_decisions: MaybeUndefined<String>,
    pub notes: MaybeUndefined<String>,
}

impl ConfidentialInput {
    fn into_changes(self) -> AppResult<ConfidentialChanges> {
        if let MaybeUndefined::Value(n) = self.employee_count {
            if n < 0 {
                return Err(AppError::bad_input("employeeCount", "must not be negative"));
            }
        }
        Ok(ConfidentialChanges {
            turnover_eur: input::nullable(self.turnover_eur).map(|v| v.map(|d| d.0)),
            employee_count: input::nullable(self.employee_count),
            risk_rating: input::text("riskRating", self.risk_rating, short_text)?,
            funding_decisions: input::text("fundingDecisions", self.funding_decisions, long_text)?,
            notes: input::text("notes", self.notes, long_text)?,
        })
    }
}

/// A business ID identifies one company in the register.
async fn ensure_business_id_free(
    conn: &mut diesel_async::AsyncPgConnection,
    business_id: &str,
    except: Option<CompanyId>,
) -> AppResult<()> {
    if db::companies::business_id_taken(conn, business_id, except).await? {
        return Err(AppError::bad_input(
            "businessId",
            "a company with this business ID is already registered",
        ));
    }
    Ok(())
}

#[derive(Default)]
pub struct CompanyMutation;

#[Object]
impl CompanyMutation {
    /// Registers a company for the actor's organisation.
    async fn create_company(
        &self,
        ctx: &Context<'_>,
        input: CompanyInput,
        #[graphql(
            desc = "Repeating a create with the same key (within a day) answers with the record the first one made instead of making another."
        )]
        idempotency_key: Option<String>,
    ) -> AppResult<Company> {
        let author = ctx.author()?;
        // Authorized before the input is judged: who may not write
        // learns nothing from validation messages.
        let grant = ctx.guard_write(
            Action::Create,
            &Record::new_row(ResourceKind::Company, author.org),
            None,
        )?;
        let idem = Idempotent::of(ctx, idempotency_key)?;
        if let Some(id) = replay(ctx, &idem).await? {
            let row = ctx.loader()?.load_one(CompanyId(id)).await?;
            return row.map(Company::new).ok_or(AppError::NotFound("company"));
        }
        let c = input.into_changes()?;
        let new = NewCompany {
            business_id: required("businessId", c.business_id)?,
            name: required("name", c.name)?,
            company_form: required("companyForm", c.company_form)?,
            industry_code: input::on_create(c.industry_code),
            municipality: input::on_create(c.municipality),
            country: c.country.unwrap_or_else(|| "FI".to_owned()),
            website: input::on_create(c.website),
            registered_by: author.org,
            legal_basis: required("legalBasis", c.legal_basis)?,
            source: required("source", c.source)?,
        };
        let row = ctx
            .conn()
            .await?
            .transaction::<_, AppError, _>(async move |conn| {
                ensure_business_id_free(conn, &new.business_id, None).await?;
                let row = db::companies::insert(conn, &author, &new).await?;
                if let Some(i) = &idem {
                    i.record(conn, ctx, row.id.0).await?;
                }
                grant.commit(conn, row.id.0).await?;
                Ok(row)
            })
            .await?;
        Ok(Company::new(row))
    }

    async fn update_company(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: CompanyInput,
    ) -> AppResult<Company> {
        super::authorize_kind(ctx, Action::Update, ResourceKind::Company)?;
        let id: CompanyId = parse_id("id", &id)?;
        let author = ctx.author()?;
        let changes = input.into_changes()?;
        let row = locked_write(ctx, id, Action::Update, move |conn, old: CompanyRow| {
            Box::pin(async move {
                if let Some(b) = &changes.business_id {
                    ensure_business_id_free(conn, b, Some(id)).await?;
                }
                Ok(db::companies::update(conn, &author, &old, &changes).await?)
            })
        })
        .await?;
        Ok(Company::new(row))
    }

    /// Deletes a company that has no contacts, services or confidential rows left.
    async fn delete_company(&self, ctx: &Context<'_>, id: ID) -> AppResult<ID> {
        super::authorize_kind(ctx, Action::Delete, ResourceKind::Company)?;
        let company: CompanyId = parse_id("id", &id)?;
        let author = ctx.author()?;
        locked_write(ctx, company, Action::Delete, move |conn, old: CompanyRow| {
            Box::pin(async move {
                if let Some(what) = db::companies::dependents(conn, old.id).await? {
                    return Err(AppError::bad_input(
                        "id",
                        format!("the company still has {what}; delete them first"),
                    ));
                }
                Ok(db::companies::delete(conn, &author, &old).await?)
            })
        })
        .await?;
        Ok(id)
    }

    /// Registers confidential data of a company for the actor's organisation (one row per organisation).
    async fn create_company_confidential(
        &self,
        ctx: &Context<'_>,
        company_id: ID,
        input: ConfidentialInput,
        #[graphql(
            desc = "Repeating a create with the same key (within a day) answers with the record the first one made instead of making another."
        )]
        idempotency_key: Option<String>,
    ) -> AppResult<CompanyConfidential> {
        let company: CompanyId = parse_id("companyId", &company_id)?;
        let author = ctx.author()?;
        // Authorized before the input is judged: who may not write
        // learns nothing from validation messages.
        let grant = ctx.guard_write(
            Action::Create,
            &Record::new_row(ResourceKind::Confidential, author.org),
            None,
        )?;
        let idem = Idempotent::of(ctx, idempotency_key)?;
        if let Some(id) = replay(ctx, &idem).await? {
            // The actor's own organisation's row: it made it.
            let row = db::confidential::by_id(&mut *ctx.conn().await?, ConfidentialId(id)).await?;
            let row = row.ok_or(AppError::NotFound("confidential row"))?;
            return CompanyConfidential::one(ctx, row).await;
        }
        let c = input.into_changes()?;
        let new = NewConfidential {
            company_id: company,
            registered_by: author.org,
            turnover_eur: input::on_create(c.turnover_eur),
            employee_count: input::on_create(c.employee_count),
            risk_rating: input::on_create(c.risk_rating),
            funding_decisions: input::on_create(c.funding_decisions),
            notes: input::on_create(c.notes),
        };
        let row = ctx.conn().await?.transaction::<_, AppError, _>(async move |conn| {
                db::companies::lock(conn, company).await?.ok_or(AppError::NotFound("company"))?;
                if db::confidential::exists_for(conn, company, author.org).await? {
                    return Err(AppError::bad_input("companyId", "your organisation already has a confidential row for this company; update it"));
                }
                let row = db::confidential::insert(conn, &author, &new).await?;
                if let Some(i) = &idem {
                    i.record(conn, ctx, row.id.0).await?;
                }
                grant.commit(conn, row.id.0).await?;
                Ok(row)
            })
        .await?;
        CompanyConfidential::one(ctx, row).await
    }

    async fn update_company_confidential(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: ConfidentialInput,
    ) -> AppResult<CompanyConfidential> {
        super::authorize_kind(ctx, Action::Update, ResourceKind::Confidential)?;
        let id: ConfidentialId = parse_id("id", &id)?;
        let author = ctx.author()?;
        let changes = input.into_changes()?;
        let row = locked_write(ctx, id, Action::Update, move |conn, old: ConfidentialRow| {
            Box::pin(
                async move { Ok(db::confidential::update(conn, &author, &old, &changes).await?) },
            )
        })
        .await?;
        CompanyConfidential::one(ctx, row).await
    }

    async fn delete_company_confidential(&self, ctx: &Context<'_>, id: ID) -> AppResult<ID> {
        super::authorize_kind(ctx, Action::Delete, ResourceKind::Confidential)?;
        let row_id: ConfidentialId = parse_id("id", &id)?;
        let author = ctx.author()?;
        locked_write(ctx, row_id, Action::Delete, move |conn, old: ConfidentialRow| {
            Box::pin(async move { Ok(db::confidential::delete(conn, &author, &old).await?) })
        })
        .await?;
        Ok(id)
    }
}
