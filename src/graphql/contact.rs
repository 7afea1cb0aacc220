//! Contacts: companies' contact and responsible persons (personal data).

use async_graphql::{Context, InputObject, MaybeUndefined, Object, ID};
use chrono::{DateTime, Utc};

use super::company::Company;
use super::connection::{self, Conn};
use super::enums::{DataSource, LegalBasis, Organization};
use super::idempotency::{replay, Idempotent};
use super::input::{self, checked, keep_or_set, long_text, required, short_text};
use super::loader::{ChangesOfContact, ServicesOfContact};
use super::service::Service;
use super::{locked_write, parse_id, ContextExt, Enforce, FieldGuard};
use crate::authz::{Action, Record, ResourceKind};
use crate::db::change_log::ChangeRow;
use crate::db::contacts::{ContactFields, ContactFilter, ContactRow, NewContact};
use crate::db::{self, CompanyId, ContactId};
use crate::error::{AppError, AppResult};
use crate::validate;
use diesel_async::AsyncConnection;

register_object!(Contact, ContactRow, Contact, Record::contact, company_scoped);

guarded_object! {
// Every field passes the guard: its class comes from `register`'s declaration.
#[Object(guard = "FieldGuard(self)")]
impl Contact for self {
    id: id,
    first_name: str,
    last_name: str,
    email: str,
    phone: str,
    title: str,
    role_in_company: str,
    home_country: str,
    home_municipality: str,
    postal_address: str,
    nickname: str,
    native_name: str,
    native_address: str,
    native_title: str,
    work_country: str,
    industry: str,
    investment_profile: str,
    expertise_level: str,
    job_description: str,
    other_description: str,
    async fn company(&self, ctx: &Context<'_>) -> AppResult<Option<Company>> {
        // An invisible company reached through here is NOT_FOUND, as by id.
        match ctx.loader()?.load_one(self.row.company_id).await? {
            Some(c) => Ok(Some(Company::new(c))),
            None => Err(AppError::NotFound("company")),
        }
    }
    registered_by: some Organization,
    legal_basis: some LegalBasis,
    source: some DataSource,
    /// Processing restricted (GDPR art. 18).
    restricted: some bool,
    marketing_objection: some bool,
    legal_hold: some bool,
    last_processed_at: some DateTime<Utc>,
    created_at: some DateTime<Utc>,
    updated_at: some DateTime<Utc>,
    erased_at: opt DateTime<Utc>,
    /// Services the person received.
    #[graphql(complexity = "5 * child_complexity")]
    async fn services(&self, ctx: &Context<'_>) -> AppResult<Option<Vec<Service>>> {
        let rows = ctx
            .loader()?
            .load_one(ServicesOfContact(self.row.id))
            .await?
            .unwrap_or_default();
        Ok(Some(Service::many(ctx, rows).await?))
    }
    /// The change log of this record, oldest first; an entry is shown when its field is readable.
    async fn changes(&self, ctx: &Context<'_>) -> AppResult<Option<Vec<ContactChange>>> {
        let rows = ctx
            .loader()?
            .load_one(ChangesOfContact(self.row.id))
            .await?
            .unwrap_or_default();
        // A change is shown when its column's class is readable here; a
        // column the register does not class is shown to no one.
        let column_class = |c: &str| ResourceKind::Contact.column_class(c, false);
        Ok(Some(
            rows.into_iter()
                .filter_map(|r| {
                    match column_class(&r.field).map(|c| ctx.may_read(&self.record, c)) {
                        Some(Ok(true)) => Some(Ok(ContactChange { row: r })),
                        Some(Err(e)) => Some(Err(e)),
                        None | Some(Ok(false)) => None,
                    }
                })
                .collect::<AppResult<_>>()?,
        ))
    }
}
}

pub struct ContactChange {
    row: ChangeRow,
}

#[Object]
impl ContactChange {
    /// The changed column (snake_case, as in the register).
    async fn field(&self) -> &str {
        &self.row.field
    }
    async fn old_value(&self) -> Option<&str> {
        self.row.old_value.as_deref()
    }
    async fn new_value(&self) -> Option<&str> {
        self.row.new_value.as_deref()
    }
    /// True when an erasure removed the values.
    async fn redacted(&self) -> bool {
        self.row.redacted
    }
    async fn changed_by(&self) -> &str {
        &self.row.changed_by
    }
    async fn changed_by_org(&self) -> Organization {
        self.row.changed_by_org.into()
    }
    async fn changed_at(&self) -> DateTime<Utc> {
        self.row.changed_at
    }
    async fn request_id(&self) -> Option<&str> {
        self.row.request_id.as_deref()
    }
}

#[derive(InputObject, Default)]
pub struct ContactFilterInput {
    pub company_id: Option<ID>,
    /// Case-insensitive substring of "first last".
    pub name_contains: Option<String>,
    /// Exact address, case-insensitive.
    pub email: Option<String>,
    pub registered_by: Option<Organization>,
}

#[derive(Default)]
pub struct ContactQuery;

#[Object]
impl ContactQuery {
    async fn contact(&self, ctx: &Context<'_>, id: ID) -> AppResult<Option<Contact>> {
        super::guard_register(ctx, ResourceKind::Contact)?;
        let id: ContactId = parse_id("id", &id)?;
        match ctx.loader()?.load_one(id).await? {
            Some(r) => Ok(Some(Contact::one(ctx, r).await?)),
            None => Err(AppError::NotFound("contact")),
        }
    }

    #[graphql(complexity = "connection::cost(first, child_complexity)")]
    async fn contacts(
        &self,
        ctx: &Context<'_>,
        filter: Option<ContactFilterInput>,
        first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<Conn<Contact>> {
        super::guard_register(ctx, ResourceKind::Contact)?;
        let (page, first) = connection::page_request(first, after)?;
        let f = filter.unwrap_or_default();
        let filter = ContactFilter {
            company_id: f
                .company_id
                .as_ref()
                .map(|id| parse_id::<CompanyId>("filter.companyId", id))
                .transpose()?,
            name_contains: f.name_contains,
            email: f.email,
            registered_by: f.registered_by.map(Into::into),
        };
        let vis = &ctx.visibility()?.contacts;
        let (rows, total) = connection::rows_and_total!(
            ctx,
            db::contacts,
            (&filter, vis),
            page,
            ctx.request()?.projection.contacts
        );
        ctx.loader()?.feed_many(rows.iter().map(|r| (r.id, r.clone()))).await;
        let nodes = Contact::many(ctx, rows).await?;
        Ok(connection::build(nodes, first, page.after.is_some(), total, |n| n))
    }
}

/// A person's data for create and update: absent fields are kept, null clears.
#[derive(InputObject)]
pub struct ContactInput {
    pub first_name: MaybeUndefined<String>,
    pub last_name: MaybeUndefined<String>,
    /// ISO 3166-1 alpha-2.
    pub home_country: MaybeUndefined<String>,
    pub home_municipality: MaybeUndefined<String>,
    pub postal_address: MaybeUndefined<String>,
    pub email: MaybeUndefined<String>,
    pub phone: MaybeUndefined<String>,
    pub title: MaybeUndefined<String>,
    pub role_in_company: MaybeUndefined<String>,
    pub nickname: MaybeUndefined<String>,
    pub native_name: MaybeUndefined<String>,
    pub native_address: MaybeUndefined<String>,
    pub native_title: MaybeUndefined<String>,
    /// ISO 3166-1 alpha-2.
    pub work_country: MaybeUndefined<String>,
    pub industry: MaybeUndefined<String>,
    pub investment_profile: MaybeUndefined<String>,
    pub expertise_level: MaybeUndefined<String>,
    pub job_description: MaybeUndefined<String>,
    pub other_description: MaybeUndefined<String>,
    pub legal_basis: MaybeUndefined<LegalBasis>,
    pub source: MaybeUndefined<DataSource>,
}

impl ContactInput {
    fn into_fields(self) -> AppResult<ContactFields> {
        use input::text;
        Ok(ContactFields {
            first_name: text("firstName", self.first_name, short_text)?,
            last_name: keep_or_set("lastName", checked("lastName", self.last_name, short_text)?)?,
            home_country: text("homeCountry", self.home_country, validate::country)?,
            home_municipality: text("homeMunicipality", self.home_municipality, short_text)?,
            postal_address: text("postalAddress", self.postal_address, short_text)?,
            email: text("email", self.email, validate::email)?,
            phone: text("phone", self.phone, validate::phone)?,
            title: text("title", self.title, short_text)?,
            role_in_company: text("roleInCompany", self.role_in_company, short_text)?,
            nickname: text("nickname", self.nickname, short_text)?,
            native_name: text("nativeName", self.native_name, short_text)?,
            native_address: text("nativeAddress", self.native_address, short_text)?,
            native_title: text("nativeTitle", self.native_title, short_text)?,
            work_country: text("workCountry", self.work_country, validate::country)?,
            industry: text("industry", self.industry, short_text)?,
            investment_profile: text("investmentProfile", self.investment_profile, long_text)?,
            expertise_level: text("expertiseLevel", self.expertise_level, short_text)?,
            job_description: text("jobDescription", self.job_description, long_text)?,
            other_description: text("otherDescription", self.other_description, long_text)?,
            legal_basis: keep_or_set("legalBasis", self.legal_basis)?.map(Into::into),
            source: keep_or_set("source", self.source)?.map(Into::into),
        })
    }
}

#[derive(Default)]
pub struct ContactMutation;

#[Object]
impl ContactMutation {
    /// Registers a contact person of a company for the actor's organisation.
    async fn create_contact(
        &self,
        ctx: &Context<'_>,
        company_id: ID,
        input: ContactInput,
        #[graphql(
            desc = "Repeating a create with the same key (within a day) answers with the record the first one made instead of making another."
        )]
        idempotency_key: Option<String>,
    ) -> AppResult<Contact> {
        let company: CompanyId = parse_id("companyId", &company_id)?;
        let author = ctx.author()?;
        // Authorized before the input is judged: who may not write
        // learns nothing from validation messages.
        let grant = ctx.guard_write(
            Action::Create,
            &Record::new_row(ResourceKind::Contact, author.org),
            None,
        )?;
        let idem = Idempotent::of(ctx, idempotency_key)?;
        if let Some(id) = replay(ctx, &idem).await? {
            let row = ctx.loader()?.load_one(ContactId(id)).await?;
            let row = row.ok_or(AppError::NotFound("contact"))?;
            return Contact::one(ctx, row).await;
        }
        let fields = input.into_fields()?;
        required("lastName", fields.last_name.as_ref())?;
        required("legalBasis", fields.legal_basis)?;
        required("source", fields.source)?;
        let new = NewContact { company_id: company, registered_by: author.org, fields };
        let row = ctx
            .conn()
            .await?
            .transaction::<_, AppError, _>(async move |conn| {
                db::companies::lock(conn, company)
                    .await?
                    .ok_or_else(|| AppError::bad_input("companyId", "no such company"))?;
                let row = db::contacts::insert(conn, &author, &new).await?;
                if let Some(i) = &idem {
                    i.record(conn, ctx, row.id.0).await?;
                }
                grant.commit(conn, row.id.0).await?;
                Ok(row)
            })
            .await?;
        Contact::one(ctx, row).await
    }

    async fn update_contact(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: ContactInput,
    ) -> AppResult<Contact> {
        super::authorize_kind(ctx, Action::Update, ResourceKind::Contact)?;
        let id: ContactId = parse_id("id", &id)?;
        let author = ctx.author()?;
        let fields = input.into_fields()?;
        let row = locked_write(ctx, id, Action::Update, move |conn, old: ContactRow| {
            Box::pin(async move { Ok(db::contacts::update(conn, &author, &old, &fields).await?) })
        })
        .await?;
        Contact::one(ctx, row).await
    }

    /// Deletes a contact entered by mistake; a person's data that must go for
    /// a GDPR reason is erased instead, which keeps a tombstone.
    async fn delete_contact(&self, ctx: &Context<'_>, id: ID) -> AppResult<ID> {
        super::authorize_kind(ctx, Action::Delete, ResourceKind::Contact)?;
        let contact: ContactId = parse_id("id", &id)?;
        let author = ctx.author()?;
        locked_write(ctx, contact, Action::Delete, move |conn, old: ContactRow| {
            Box::pin(async move {
                if db::contacts::has_services(conn, old.id).await? {
                    return Err(AppError::bad_input(
                        "id",
                        "the contact has services; delete or reassign them first",
                    ));
                }
                Ok(db::contacts::delete(conn, &author, &old).await?)
            })
        })
        .await?;
        Ok(id)
    }
}

impl crate::db::page::Paged for Contact {
    fn keyset(&self) -> crate::db::page::Keyset {
        self.row.keyset()
    }
}
