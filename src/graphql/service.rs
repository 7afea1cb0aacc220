//! Services: advice, funding, events, contact requests, orders and invoicing.

use async_graphql::{Context, InputObject, MaybeUndefined, Object, ID};
use chrono::{DateTime, Utc};

use super::company::Company;
use super::connection::{self, Conn};
use super::contact::Contact;
use super::enums::{DataSource, Decimal, LegalBasis, Organization, ServiceKind, ServiceStatus};
use super::idempotency::{replay, Idempotent};
use super::input::{self, checked, keep_or_set, required, short_text};
use super::{locked_write, parse_id, ContextExt, Enforce, FieldGuard};
use crate::authz::{Action, Record, ResourceKind};
use crate::db::services::{NewService, ServiceChanges, ServiceFilter, ServiceRow};
use crate::db::{self, CompanyId, ContactId, ServiceId};
use crate::error::{AppError, AppResult};
use diesel_async::AsyncConnection;

register_object!(Service, ServiceRow, Service, Record::service, company_scoped);

guarded_object! {
// Every field passes the guard: its class comes from `register`'s declaration.
#[Object(guard = "FieldGuard(self)")]
impl Service for self {
    id: id,
    kind: some ServiceKind,
    title: string,
    provider: some Organization,
    async fn company(&self, ctx: &Context<'_>) -> AppResult<Option<Company>> {
        // An invisible company reached through here is NOT_FOUND, as by id.
        match ctx.loader()?.load_one(self.row.company_id).await? {
            Some(c) => Ok(Some(Company::new(c))),
            None => Err(AppError::NotFound("company")),
        }
    }
    /// The natural person who received the service, if any. A person the
    /// actor may not see (restricted, objecting, erased) is `null` exactly
    /// as when the service has none: the answer must not tell them apart.
    async fn contact(&self, ctx: &Context<'_>) -> AppResult<Option<Contact>> {
        match self.row.contact_id {
            Some(id) => match ctx.loader()?.load_one(id).await? {
                Some(r) => Ok(Some(Contact::one(ctx, r).await?)),
                None => Ok(None),
            },
            None => Ok(None),
        }
    }
    status: some ServiceStatus,
    requested_at: some DateTime<Utc>,
    delivered_at: opt DateTime<Utc>,
    invoiced_at: opt DateTime<Utc>,
    legal_basis: some LegalBasis,
    source: some DataSource,
    /// Internal to the provider.
    amount_eur: cloned Decimal,
    /// Internal to the provider.
    notes: str,
}
}

#[derive(InputObject, Default)]
pub struct ServiceFilterInput {
    pub company_id: Option<ID>,
    pub contact_id: Option<ID>,
    pub provider: Option<Organization>,
    pub kind: Option<ServiceKind>,
    pub status: Option<ServiceStatus>,
    /// Requested at or after this time.
    pub requested_from: Option<DateTime<Utc>>,
    /// Requested before this time.
    pub requested_to: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct ServiceQuery;

#[Object]
impl ServiceQuery {
    async fn service(&self, ctx: &Context<'_>, id: ID) -> AppResult<Option<Service>> {
        super::guard_register(ctx, ResourceKind::Service)?;
        let id: ServiceId = parse_id("id", &id)?;
        match ctx.loader()?.load_one(id).await? {
            Some(r) => Ok(Some(Service::one(ctx, r).await?)),
            None => Err(AppError::NotFound("service")),
        }
    }

    #[graphql(complexity = "connection::cost(first, child_complexity)")]
    async fn services(
        &self,
        ctx: &Context<'_>,
        filter: Option<ServiceFilterInput>,
        first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<Conn<Service>> {
        super::guard_register(ctx, ResourceKind::Service)?;
        let (page, first) = connection::page_request(first, after)?;
        let f = filter.unwrap_or_default();
        if let (Some(from), Some(to)) = (f.requested_from, f.requested_to) {
            if from > to {
                return Err(AppError::bad_input("filter.requestedTo", "is before requestedFrom"));
            }
        }
        let filter = ServiceFilter {
            company_id: f
                .company_id
                .as_ref()
                .map(|id| parse_id::<CompanyId>("filter.companyId", id))
                .transpose()?,
            contact_id: f
                .contact_id
                .as_ref()
                .map(|id| parse_id::<ContactId>("filter.contactId", id))
                .transpose()?,
            provider: f.provider.map(Into::into),
            kind: f.kind.map(Into::into),
            status: f.status.map(Into::into),
            requested_from: f.requested_from,
            requested_to: f.requested_to,
        };
        let vis = &ctx.visibility()?.services;
        let (rows, total) = connection::rows_and_total!(
            ctx,
            db::services,
            (&filter, vis),
            page,
            ctx.request()?.projection.services
        );
        let nodes = Service::many(ctx, rows).await?;
        Ok(connection::build(nodes, first, page.after.is_some(), total, |n| n))
    }
}

/// A service for create (companyId, kind, title, legalBasis and source
/// required) and update (absent fields kept, null clears).
#[derive(InputObject)]
pub struct ServiceInput {
    /// Only on create: a service stays with the company it was recorded for.
    pub company_id: Option<ID>,
    pub contact_id: MaybeUndefined<ID>,
    pub kind: MaybeUndefined<ServiceKind>,
    pub title: MaybeUndefined<String>,
    /// REQUESTED when not given on create.
    pub status: MaybeUndefined<ServiceStatus>,
    pub requested_at: MaybeUndefined<DateTime<Utc>>,
    pub delivered_at: MaybeUndefined<DateTime<Utc>>,
    pub invoiced_at: MaybeUndefined<DateTime<Utc>>,
    pub legal_basis: MaybeUndefined<LegalBasis>,
    pub source: MaybeUndefined<DataSource>,
    pub amount_eur: MaybeUndefined<Decimal>,
    pub notes: MaybeUndefined<String>,
}

impl ServiceInput {
    fn into_changes(self) -> AppResult<ServiceChanges> {
        let contact_id = match self.contact_id {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(id) => Some(Some(parse_id::<ContactId>("contactId", &id)?)),
        };
        Ok(ServiceChanges {
            kind: keep_or_set("kind", self.kind)?.map(Into::into),
            title: keep_or_set("title", checked("title", self.title, short_text)?)?,
            contact_id,
            status: keep_or_set("status", self.status)?.map(Into::into),
            requested_at: keep_or_set("requestedAt", self.requested_at)?,
            delivered_at: input::nullable(self.delivered_at),
            invoiced_at: input::nullable(self.invoiced_at),
            legal_basis: keep_or_set("legalBasis", self.legal_basis)?.map(Into::into),
            source: keep_or_set("source", self.source)?.map(Into::into),
            amount_eur: input::nullable(self.amount_eur).map(|v| v.map(|d| d.0)),
            notes: input::text("notes", self.notes, input::long_text)?,
        })
    }
}

/// The person a service is for must be a contact of the same company.
/// A contact the actor may not see (restricted, say) is "no such contact".
async fn check_contact(
    conn: &mut diesel_async::AsyncPgConnection,
    company: CompanyId,
    contact: Option<ContactId>,
    visible: &crate::db::visible::Visible,
) -> AppResult<()> {
    if let Some(contact) = contact {
        let rows =
            db::contacts::by_ids(conn, &[contact], visible, crate::db::project::Columns::all())
                .await?;
        match rows.first() {
            Some(c) if c.company_id == company => {}
            Some(_) => {
                return Err(AppError::bad_input(
                    "contactId",
                    "the contact belongs to another company",
                ))
            }
            None => return Err(AppError::bad_input("contactId", "no such contact")),
        }
    }
    Ok(())
}

#[derive(Default)]
pub struct ServiceMutation;

#[Object]
impl ServiceMutation {
    /// Records a service provided by the actor's organisation.
    async fn create_service(
        &self,
        ctx: &Context<'_>,
        input: ServiceInput,
        #[graphql(
            desc = "Repeating a create with the same key (within a day) answers with the record the first one made instead of making another."
        )]
        idempotency_key: Option<String>,
    ) -> AppResult<Service> {
        let author = ctx.author()?;
        // Authorized before the input is judged: who may not write
        // learns nothing from validation messages.
        let grant = ctx.guard_write(
            Action::Create,
            &Record::new_row(ResourceKind::Service, author.org),
            None,
        )?;
        let idem = Idempotent::of(ctx, idempotency_key)?;
        if let Some(id) = replay(ctx, &idem).await? {
            let row = ctx.loader()?.load_one(ServiceId(id)).await?;
            let row = row.ok_or(AppError::NotFound("service"))?;
            return Service::one(ctx, row).await;
        }
        let contacts_visible = ctx.visibility()?.contacts.clone();
        let company: CompanyId =
            parse_id("companyId", &required("companyId", input.company_id.clone())?)?;
        let c = input.into_changes()?;
        let new = NewService {
            kind: required("kind", c.kind)?,
            title: required("title", c.title)?,
            provider: author.org,
            company_id: company,
            contact_id: c.contact_id.flatten(),
            status: c.status.unwrap_or(db::ServiceStatus::Requested),
            requested_at: c.requested_at,
            delivered_at: input::on_create(c.delivered_at),
            invoiced_at: input::on_create(c.invoiced_at),
            legal_basis: required("legalBasis", c.legal_basis)?,
            source: required("source", c.source)?,
            amount_eur: input::on_create(c.amount_eur),
            notes: input::on_create(c.notes),
        };
        let row = ctx
            .conn()
            .await?
            .transaction::<_, AppError, _>(async move |conn| {
                db::companies::lock(conn, company)
                    .await?
                    .ok_or_else(|| AppError::bad_input("companyId", "no such company"))?;
                check_contact(conn, company, new.contact_id, &contacts_visible).await?;
                let row = db::services::insert(conn, &author, &new).await?;
                if let Some(i) = &idem {
                    i.record(conn, ctx, row.id.0).await?;
                }
                grant.commit(conn, row.id.0).await?;
                Ok(row)
            })
            .await?;
        Service::one(ctx, row).await
    }

    async fn update_service(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: ServiceInput,
    ) -> AppResult<Service> {
        super::authorize_kind(ctx, Action::Update, ResourceKind::Service)?;
        let id: ServiceId = parse_id("id", &id)?;
        if input.company_id.is_some() {
            return Err(AppError::bad_input(
                "companyId",
                "cannot be changed; record the service again for the other company",
            ));
        }
        let author = ctx.author()?;
        let contacts_visible = ctx.visibility()?.contacts.clone();
        let changes = input.into_changes()?;
        let row = locked_write(ctx, id, Action::Update, move |conn, old: ServiceRow| {
            Box::pin(async move {
                if let Some(contact) = changes.contact_id {
                    check_contact(conn, old.company_id, contact, &contacts_visible).await?;
                }
                Ok(db::services::update(conn, &author, &old, &changes).await?)
            })
        })
        .await?;
        Service::one(ctx, row).await
    }

    async fn delete_service(&self, ctx: &Context<'_>, id: ID) -> AppResult<ID> {
        super::authorize_kind(ctx, Action::Delete, ResourceKind::Service)?;
        let service: ServiceId = parse_id("id", &id)?;
        let author = ctx.author()?;
        locked_write(ctx, service, Action::Delete, move |conn, old: ServiceRow| {
            Box::pin(async move { Ok(db::services::delete(conn, &author, &old).await?) })
        })
        .await?;
        Ok(id)
    }
}

impl crate::db::page::Paged for Service {
    fn keyset(&self) -> crate::db::page::Keyset {
        self.row.keyset()
    }
}
