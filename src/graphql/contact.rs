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
use super::{locked_write, parse_id, ContextExt};
use crate::authz::{Action, FieldClass, Record};
use crate::db::change_log::ChangeRow;
use crate::db::contacts::{ContactFields, ContactFilter, ContactRow, NewContact};
use crate::db::{self, CompanyId, ContactId};
use crate::error::{AppError, AppResult};
use crate::validate;
use diesel_async::AsyncConnection;

pub struct Contact {
    pub row: ContactRow,
    /// What the policy sees of this contact.
    record: Record,
}

/// The access.md class of a contact column, which decides who reads its
/// history. A column no class names is shown to no one (fails closed).
/// `legal_hold_reason` and `objection_pending` are served as no field: they
/// tell of a pending legal matter or a data subject's objection, which the
/// DPOs handle (R9), so their history is class `request` (docs/access.md).
pub fn field_class(column: &str) -> Option<FieldClass> {
    Some(match column {
        "first_name" | "last_name" | "email" | "phone" | "title" | "role_in_company" => {
            FieldClass::ContactIdentification
        }
        "home_country" | "home_municipality" | "postal_address" => FieldClass::ContactHome,
        "nickname" | "native_name" | "native_address" | "native_title" | "work_country"
        | "industry" | "investment_profile" | "expertise_level" | "job_description"
        | "other_description" => FieldClass::ContactAdditional,
        "company_id"
        | "registered_by"
        | "legal_basis"
        | "source"
        | "restricted"
        | "marketing_objection"
        | "legal_hold"
        | "last_processed_at"
        | "created_at"
        | "updated_at"
        | "erased_at" => FieldClass::ContactProcessing,
        "legal_hold_reason" | "objection_pending" => FieldClass::Request,
        _ => return None,
    })
}

impl Contact {
    pub fn new(row: ContactRow, company_industry: Option<&str>) -> Self {
        Contact {
            record: Record::contact(&row, company_industry),
            row,
        }
    }

    pub async fn many(ctx: &Context<'_>, rows: Vec<ContactRow>) -> AppResult<Vec<Contact>> {
        super::with_company_facts(ctx, rows, |r| r.company_id, Contact::new).await
    }

    pub async fn one(ctx: &Context<'_>, row: ContactRow) -> AppResult<Contact> {
        super::one_with_company_facts(ctx, row, |r| r.company_id, Contact::new).await
    }

    fn facts(&self) -> &Record {
        &self.record
    }

    /// The field being resolved, if the policy lets this actor read it.
    fn read<T>(&self, ctx: &Context<'_>, value: T) -> AppResult<Option<T>> {
        ctx.guard(self.facts(), self.row.id.0)?;
        Ok(Some(value))
    }

    fn text(&self, ctx: &Context<'_>, value: &Option<String>) -> AppResult<Option<String>> {
        ctx.guard(self.facts(), self.row.id.0)?;
        Ok(value.clone())
    }
}

#[Object]
impl Contact {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }
    async fn first_name(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        self.text(ctx, &self.row.first_name)
    }
    async fn last_name(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        self.text(ctx, &self.row.last_name)
    }
    async fn email(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        self.text(ctx, &self.row.email)
    }
    async fn phone(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        self.text(ctx, &self.row.phone)
    }
    async fn title(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        self.text(ctx, &self.row.title)
    }
    async fn role_in_company(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        self.text(ctx, &self.row.role_in_company)
    }
    async fn home_country(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        self.text(ctx, &self.row.home_country)
    }
    async fn home_municipality(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        self.text(ctx, &self.row.home_municipality)
    }
    async fn postal_address(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        self.text(ctx, &self.row.postal_address)
    }
    async fn nickname(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        self.text(ctx, &self.row.nickname)
    }
    async fn native_name(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        self.text(ctx, &self.row.native_name)
    }
    async fn native_address(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        self.text(ctx, &self.row.native_address)
    }
    async fn native_title(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        self.text(ctx, &self.row.native_title)
    }
    async fn work_country(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        self.text(ctx, &self.row.work_country)
    }
    async fn industry(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        self.text(ctx, &self.row.industry)
    }
    async fn investment_profile(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        self.text(ctx, &self.row.investment_profile)
    }
    async fn expertise_level(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        self.text(ctx, &self.row.expertise_level)
    }
    async fn job_description(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        self.text(ctx, &self.row.job_description)
    }
    async fn other_description(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        self.text(ctx, &self.row.other_description)
    }
    async fn company(&self, ctx: &Context<'_>) -> AppResult<Option<Company>> {
        ctx.guard(self.facts(), self.row.id.0)?;
        // An invisible company reached through here is NOT_FOUND, as by id.
        match ctx.loader()?.load_one(self.row.company_id).await? {
            Some(c) => Ok(Some(Company(c))),
            None => Err(AppError::NotFound("company")),
        }
    }
    async fn registered_by(&self, ctx: &Context<'_>) -> AppResult<Option<Organization>> {
        self.read(ctx, self.row.registered_by.into())
    }
    async fn legal_basis(&self, ctx: &Context<'_>) -> AppResult<Option<LegalBasis>> {
        self.read(ctx, self.row.legal_basis.into())
    }
    async fn source(&self, ctx: &Context<'_>) -> AppResult<Option<DataSource>> {
        self.read(ctx, self.row.source.into())
    }
    /// Processing restricted (GDPR art. 18).
    async fn restricted(&self, ctx: &Context<'_>) -> AppResult<Option<bool>> {
        self.read(ctx, self.row.restricted)
    }
    async fn marketing_objection(&self, ctx: &Context<'_>) -> AppResult<Option<bool>> {
        self.read(ctx, self.row.marketing_objection)
    }
    async fn legal_hold(&self, ctx: &Context<'_>) -> AppResult<Option<bool>> {
        self.read(ctx, self.row.legal_hold)
    }
    async fn last_processed_at(&self, ctx: &Context<'_>) -> AppResult<Option<DateTime<Utc>>> {
        self.read(ctx, self.row.last_processed_at)
    }
    async fn created_at(&self, ctx: &Context<'_>) -> AppResult<Option<DateTime<Utc>>> {
        self.read(ctx, self.row.created_at)
    }
    async fn updated_at(&self, ctx: &Context<'_>) -> AppResult<Option<DateTime<Utc>>> {
        self.read(ctx, self.row.updated_at)
    }
    async fn erased_at(&self) -> Option<DateTime<Utc>> {
        self.row.erased_at
    }
    /// Services the person received.
    #[graphql(complexity = "5 * child_complexity")]
    async fn services(&self, ctx: &Context<'_>) -> AppResult<Option<Vec<Service>>> {
        ctx.guard(self.facts(), self.row.id.0)?;
        let rows = ctx
            .loader()?
            .load_one(ServicesOfContact(self.row.id))
            .await?
            .unwrap_or_default();
        Ok(Some(Service::many(ctx, rows).await?))
    }
    /// The change log of this record, oldest first; an entry is shown when its field is readable.
    async fn changes(&self, ctx: &Context<'_>) -> AppResult<Option<Vec<ContactChange>>> {
        ctx.guard(self.facts(), self.row.id.0)?;
        let rows = ctx
            .loader()?
            .load_one(ChangesOfContact(self.row.id))
            .await?
            .unwrap_or_default();
        let facts = self.facts();
        Ok(Some(
            rows.into_iter()
                .filter_map(
                    |r| match field_class(&r.field).map(|c| ctx.may_read(facts, c)) {
                        Some(Ok(true)) => Some(Ok(ContactChange { row: r })),
                        Some(Err(e)) => Some(Err(e)),
                        None | Some(Ok(false)) => None,
                    },
                )
                .collect::<AppResult<_>>()?,
        ))
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
        super::guard_register(ctx, "contact")?;
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
        super::guard_register(ctx, "contact")?;
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
        let mut conn = ctx.conn().await?;
        let rows =
            db::contacts::list(&mut conn, &filter, &ctx.visibility()?.contacts, page).await?;
        ctx.loader()?
            .feed_many(rows.iter().map(|r| (r.id, r.clone())))
            .await;
        let total = if connection::wants_total(ctx) {
            db::contacts::count(&mut conn, &filter, &ctx.visibility()?.contacts).await?
        } else {
            0
        };
        // Returned before the loader takes a connection (see `companies`).
        drop(conn);
        let nodes = Contact::many(ctx, rows).await?;
        Ok(connection::build(
            nodes,
            first,
            page.after.is_some(),
            total,
            |n| n,
        ))
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
            &Record::new_row("contact", author.org),
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
        let new = NewContact {
            company_id: company,
            registered_by: author.org,
            fields,
        };
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
        super::authorize_kind(ctx, Action::Update, "contact")?;
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
        super::authorize_kind(ctx, Action::Delete, "contact")?;
        let contact: ContactId = parse_id("id", &id)?;
        let author = ctx.author()?;
        locked_write(
            ctx,
            contact,
            Action::Delete,
            move |conn, old: ContactRow| {
                Box::pin(async move {
                    if db::contacts::has_services(conn, old.id).await? {
                        return Err(AppError::bad_input(
                            "id",
                            "the contact has services; delete or reassign them first",
                        ));
                    }
                    Ok(db::contacts::delete(conn, &author, &old).await?)
                })
            },
        )
        .await?;
        Ok(id)
    }
}

impl crate::db::page::Paged for Contact {
    fn keyset(&self) -> crate::db::page::Keyset {
        self.row.keyset()
    }
}
