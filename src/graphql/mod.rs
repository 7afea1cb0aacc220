//! The GraphQL schema: types wrap rows (no GraphQL derive on a diesel row),
//! one file per domain, merged roots, typed context accessors.

pub mod audit;
pub mod company;
pub mod connection;
pub mod contact;
pub mod enums;
pub mod idempotency;
pub mod input;
pub mod limits;
pub mod loader;
pub mod nulls;
pub mod report;
pub mod request;
pub mod rights;
pub mod service;
pub mod viewer;

use async_graphql::dataloader::{DataLoader, HashMapCache};
use async_graphql::{Context, EmptySubscription, MergedObject, Schema, SchemaBuilder};

use crate::app::AppState;
use crate::audit::{chain, AuditEvent, Decided, Recorder};
use crate::auth::Actor;
use crate::authz::{fields, Action, FieldClass, Principal, Record, Visibility};
use crate::config::Limits;
use crate::db::companies::CompanyRow;
use crate::db::confidential::ConfidentialRow;
use crate::db::contacts::ContactRow;
use crate::db::services::ServiceRow;
use crate::db::{self, ChangeAuthor, PooledConn};
use crate::error::{AppError, AppResult};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures::future::BoxFuture;
use loader::DbReader;
use uuid::Uuid;

#[derive(MergedObject, Default)]
pub struct Query(
    company::CompanyQuery,
    contact::ContactQuery,
    service::ServiceQuery,
    request::RequestQuery,
    rights::RightsQuery,
    report::ReportQuery,
    audit::AuditQuery,
    viewer::ViewerQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    company::CompanyMutation,
    contact::ContactMutation,
    service::ServiceMutation,
    request::RequestMutation,
    rights::RightsMutation,
);

pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

/// The schema's shape and limits, without state: also what `schema.graphql` is generated from.
pub fn schema_builder(
    limits: &Limits,
    introspection: bool,
) -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    let mut builder = Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_recursive_depth(64)
        .limit_directives(10)
        .extension(nulls::FieldErrors);
    if !introspection {
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder
}

/// The SDL committed as `schema.graphql`.
pub fn sdl() -> String {
    schema_builder(&Limits::default(), true).finish().sdl()
}

/// What one request carries: who asks, its id, and its own loader.
pub struct RequestContext {
    pub actor: Actor,
    /// What the policy sees of the actor.
    pub principal: Principal,
    /// The policy this request is decided by (a reload does not change it mid-request).
    pub authorizer: std::sync::Arc<crate::authz::Authorizer>,
    /// The rows of each table this actor may see.
    pub visibility: std::sync::Arc<Visibility>,
    pub request_id: String,
    pub loader: DataLoader<DbReader, HashMapCache>,
    /// The request's audit events, committed before the response is sent.
    pub audit: std::sync::Arc<Recorder>,
    /// The changes this request made, by mutation field.
    pub receipts: std::sync::Arc<Receipts>,
}

/// Each change's audit event, appended in the change's transaction, is its
/// receipt: stored means committed. Kept per mutation field (response key),
/// so an error after the change can say what became of it.
#[derive(Default, Debug)]
pub struct Receipts(std::sync::Mutex<Vec<(String, Uuid)>>);

impl Receipts {
    fn push(&self, field: String, event: Uuid) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((field, event));
    }

    /// (mutation field, event id) of every change attempted to its end.
    pub fn all(&self) -> Vec<(String, Uuid)> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

pub trait ContextExt {
    fn state(&self) -> AppResult<&AppState>;
    fn request(&self) -> AppResult<&RequestContext>;
    fn actor(&self) -> AppResult<&Actor> {
        Ok(&self.request()?.actor)
    }
    fn visibility(&self) -> AppResult<&Visibility> {
        Ok(&self.request()?.visibility)
    }
    fn loader(&self) -> AppResult<&DataLoader<DbReader, HashMapCache>> {
        Ok(&self.request()?.loader)
    }
    fn author(&self) -> AppResult<ChangeAuthor> {
        let r = self.request()?;
        Ok(ChangeAuthor {
            sub: r.actor.sub.clone(),
            org: r.actor.org,
            request_id: Some(r.request_id.clone()),
        })
    }
    /// A pooled connection; an exhausted pool is `UNAVAILABLE`.
    fn conn(&self) -> impl std::future::Future<Output = AppResult<PooledConn>> + Send;
    /// Asks the policy whether this actor may read the field being resolved
    /// of `record` (resource `id`); its class comes from `authz::fields`.
    /// Denied is `FORBIDDEN` naming the class, the rule and the audit event;
    /// allowed reads of audited classes are recorded.
    fn guard(&self, record: &Record, id: Uuid) -> AppResult<()> {
        self.guard_at(record, Some(id))
    }
    /// The same for a field that reads no one resource (a list of a kind):
    /// `record` describes the kind; an allowed read records nothing itself.
    fn guard_at(&self, record: &Record, id: Option<Uuid>) -> AppResult<()>;
    /// Whether `class` of `record` is readable, deciding nothing visible to
    /// the client (which change-log entries to show).
    fn may_read(&self, record: &Record, class: FieldClass) -> AppResult<bool>;
    /// Asks the policy whether this actor may make this change: a record
    /// hidden from the actor is `NOT_FOUND`, a denied change `FORBIDDEN`
    /// (both recorded). Allowed, the grant must be committed in the
    /// mutation's transaction ([`WriteGrant::commit`]).
    fn guard_write(
        &self,
        action: Action,
        record: &Record,
        id: Option<Uuid>,
    ) -> AppResult<WriteGrant>;
}

/// An allowed change whose audit event commits with the change itself.
#[must_use = "the grant's audit event must be committed with the change"]
pub struct WriteGrant {
    event: AuditEvent,
    /// Where the receipt goes once the event is appended, and under which field.
    receipts: std::sync::Arc<Receipts>,
    field: String,
}

impl WriteGrant {
    /// Appends the change's event to the chain inside the mutation's
    /// transaction: the change and its record commit together or not at all.
    /// It is the transaction's last statement, so from here on only the
    /// commit decides: the event is kept as the change's receipt.
    pub async fn commit(mut self, conn: &mut AsyncPgConnection, id: Uuid) -> AppResult<()> {
        self.event.decided.resource_ids = vec![id];
        let event = self.event.id;
        chain::append(conn, &[self.event]).await.map_err(|e| {
            tracing::error!(error = %e, "a change's audit event was not stored; the change is rolled back");
            AppError::Unavailable("the audit trail")
        })?;
        self.receipts.push(self.field, event);
        Ok(())
    }
}

/// The response key of the root field being resolved (the mutation).
fn root_key(ctx: &Context<'_>) -> String {
    let mut node = ctx.path_node.as_ref();
    let mut key = String::new();
    while let Some(n) = node {
        if let async_graphql::QueryPathSegment::Name(name) = n.segment {
            key = name.to_owned();
        }
        node = n.parent;
    }
    key
}

/// The input fields a mutation names (never their values), for its audit event.
fn written_fields(ctx: &Context<'_>) -> Vec<String> {
    let mut fields: Vec<String> = ctx
        .field()
        .arguments()
        .unwrap_or_default()
        .into_iter()
        .flat_map(|(name, value)| match value {
            async_graphql::Value::Object(o) => o.keys().map(|k| k.to_string()).collect(),
            _ => vec![name.to_string()],
        })
        .collect();
    fields.sort();
    fields.dedup();
    fields
}

impl ContextExt for Context<'_> {
    fn state(&self) -> AppResult<&AppState> {
        self.data::<AppState>()
            .map_err(|_| AppError::internal_msg("no application state in the GraphQL context"))
    }

    fn request(&self) -> AppResult<&RequestContext> {
        self.data::<RequestContext>()
            .map_err(|_| AppError::internal_msg("no request context in the GraphQL context"))
    }

    fn conn(&self) -> impl std::future::Future<Output = AppResult<PooledConn>> + Send {
        let pool = self.state().map(|s| s.pool.clone());
        async move { Ok(pool?.get().await?) }
    }

    fn guard_at(&self, record: &Record, id: Option<Uuid>) -> AppResult<()> {
        let r = self.request()?;
        let field = self.field().name();
        // A field missing from the table is a bug; it fails closed.
        let class = fields::class_of(&record.kind, field, record.sole_trader).ok_or_else(|| {
            AppError::internal_msg(format!("{}.{field} has no access class", record.kind))
        })?;
        let decision = r
            .authorizer
            .read_field(&r.principal, record, class)
            .map_err(policy_error)?;
        let kind = fields::resource_type(&record.kind);
        if decision.allowed {
            if let (true, Some(id)) = (class.is_audited(), id) {
                r.audit
                    .read(kind, id, field, class.as_str(), &decision.rules);
            }
            Ok(())
        } else {
            let event = r.audit.deny(
                "read",
                kind,
                id,
                Some(field),
                Some(class.as_str()),
                &decision.rules,
            );
            Err(AppError::forbidden(
                format!("field class {} ({})", class.as_str(), decision.rule()),
                event,
            ))
        }
    }

    fn may_read(&self, record: &Record, class: FieldClass) -> AppResult<bool> {
        let r = self.request()?;
        Ok(r.authorizer
            .read_field(&r.principal, record, class)
            .map_err(policy_error)?
            .allowed)
    }

    fn guard_write(
        &self,
        action: Action,
        record: &Record,
        id: Option<Uuid>,
    ) -> AppResult<WriteGrant> {
        let r = self.request()?;
        let (decision, hidden) = r
            .authorizer
            .write(&r.principal, action, record)
            .map_err(policy_error)?;
        let kind = fields::resource_type(&record.kind);
        let fields = written_fields(self);
        if hidden || !decision.allowed {
            let event = r
                .audit
                .deny(action.as_str(), kind, id, None, None, &decision.rules);
            return Err(if hidden {
                AppError::NotFound("record")
            } else {
                AppError::forbidden(
                    format!(
                        "{} {} is not allowed ({})",
                        action.as_str(),
                        record.kind,
                        decision.rule()
                    ),
                    event,
                )
            });
        }
        Ok(WriteGrant {
            receipts: r.receipts.clone(),
            field: root_key(self),
            event: r.audit.subject().event(
                Uuid::new_v4(),
                Decided {
                    action: action.as_str().to_owned(),
                    resource_type: kind.to_owned(),
                    resource_ids: Vec::new(),
                    fields,
                    field_classes: Vec::new(),
                    allowed: true,
                    rules: decision.rules,
                },
            ),
        })
    }
}

/// The register's root fields (`companies`, `contact(id)` …): refused with
/// one FORBIDDEN (recorded) to an actor who may read nothing of `kind`,
/// rather than a list of ids with every field denied. Decided before the
/// id is looked at, so the answer tells nothing about what exists.
pub fn guard_register(ctx: &Context<'_>, kind: &str) -> AppResult<()> {
    let org = ctx.actor()?.org;
    let record = Record {
        in_sector: true,
        ..Record::new_row(kind, org)
    };
    ctx.guard_at(&record, None)
}

/// Authorization before the input is judged: an actor the policy lets make
/// no `action` on any record of `kind` (a recipient, an auditor) is
/// FORBIDDEN (recorded) before validation could tell it anything. The
/// record's own decision follows once it is locked.
pub fn authorize_kind(ctx: &Context<'_>, action: Action, kind: &str) -> AppResult<()> {
    let org = ctx.actor()?.org;
    // The most permissive facts a record of `kind` can have: in the
    // recipients' sector, and a sole trader (whose rights R9 covers).
    let record = Record {
        in_sector: true,
        sole_trader: kind == "company",
        ..Record::new_row(kind, org)
    };
    // Allowed, the grant is dropped: the change records its own event.
    ctx.guard_write(action, &record, None).map(drop)
}

/// A policy that fails to evaluate is an internal error: the cause is logged,
/// and nothing is disclosed (fail closed).
pub fn policy_error(e: anyhow::Error) -> AppError {
    AppError::internal_msg(format!("policy evaluation failed: {e:#}"))
}

/// The industry code of a company the actor may see (the sector fact of its
/// contacts, services and confidential rows).
pub async fn company_industry(
    ctx: &Context<'_>,
    company: db::CompanyId,
) -> AppResult<Option<String>> {
    Ok(ctx
        .loader()?
        .load_one(company)
        .await?
        .and_then(|c| c.industry_code))
}

/// Wraps rows that belong to a company with what the policy sees of them:
/// their company's sector comes from one batched (usually cached) lookup.
pub async fn with_company_facts<R, N>(
    ctx: &Context<'_>,
    rows: Vec<R>,
    company: impl Fn(&R) -> db::CompanyId,
    make: impl Fn(R, Option<&str>) -> N,
) -> AppResult<Vec<N>> {
    let companies = ctx.loader()?.load_many(rows.iter().map(&company)).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let industry = companies
                .get(&company(&r))
                .and_then(|c| c.industry_code.clone());
            make(r, industry.as_deref())
        })
        .collect())
}

/// One row, wrapped as [`with_company_facts`] does.
pub async fn one_with_company_facts<R, N>(
    ctx: &Context<'_>,
    row: R,
    company: impl Fn(&R) -> db::CompanyId,
    make: impl Fn(R, Option<&str>) -> N,
) -> AppResult<N> {
    with_company_facts(ctx, vec![row], company, make)
        .await?
        .pop()
        .ok_or_else(|| AppError::internal_msg("a wrapped row vanished"))
}

/// A row a mutation locks before the policy judges it.
pub trait Guarded: Sized + Send {
    type Id: Copy + Send + Sync;
    const NAME: &'static str;
    fn lock(
        conn: &mut AsyncPgConnection,
        id: Self::Id,
    ) -> impl std::future::Future<Output = diesel::QueryResult<Option<Self>>> + Send;
    /// The row's id, for the audit trail.
    fn uuid(&self) -> Uuid;
    /// What the policy sees of the locked row.
    fn record(
        &self,
        conn: &mut AsyncPgConnection,
    ) -> impl std::future::Future<Output = diesel::QueryResult<Record>> + Send;
}

/// The industry code of a row's company, read inside the mutation's transaction.
pub(crate) async fn industry_of(
    conn: &mut AsyncPgConnection,
    company: db::CompanyId,
) -> diesel::QueryResult<Option<String>> {
    Ok(
        db::companies::by_ids(conn, &[company], &db::visible::Visible::All)
            .await?
            .into_iter()
            .next()
            .and_then(|c| c.industry_code),
    )
}

macro_rules! guarded {
    ($row:ty, $id:ty, $name:literal, $module:ident, |$this:ident, $conn:ident| $record:expr) => {
        impl Guarded for $row {
            type Id = $id;
            const NAME: &'static str = $name;
            fn lock(
                conn: &mut AsyncPgConnection,
                id: $id,
            ) -> impl std::future::Future<Output = diesel::QueryResult<Option<Self>>> + Send {
                db::$module::lock(conn, id)
            }
            fn uuid(&self) -> Uuid {
                self.id.0
            }
            fn record(
                &self,
                $conn: &mut AsyncPgConnection,
            ) -> impl std::future::Future<Output = diesel::QueryResult<Record>> + Send {
                let $this = self;
                async move { $record }
            }
        }
    };
}

guarded!(
    CompanyRow,
    db::CompanyId,
    "company",
    companies,
    |row, _conn| Ok(Record::company(row))
);
guarded!(
    ConfidentialRow,
    db::ConfidentialId,
    "confidential row",
    confidential,
    |row, conn| {
        Ok(Record::confidential(
            row,
            industry_of(conn, row.company_id).await?.as_deref(),
        ))
    }
);
guarded!(
    ContactRow,
    db::ContactId,
    "contact",
    contacts,
    |row, conn| {
        Ok(Record::contact(
            row,
            industry_of(conn, row.company_id).await?.as_deref(),
        ))
    }
);
guarded!(
    crate::db::requests::RequestRow,
    db::RequestId,
    "data subject request",
    requests,
    |row, _conn| Ok(Record::request(row))
);
guarded!(
    ServiceRow,
    db::ServiceId,
    "service",
    services,
    |row, conn| {
        Ok(Record::service(
            row,
            industry_of(conn, row.company_id).await?.as_deref(),
        ))
    }
);

/// One transaction for an update or delete: lock the row (`NOT_FOUND` if it
/// is gone), ask the policy, then do `work` with the locked row. The change
/// log rows `work` writes commit with it or not at all.
pub async fn locked_write<T, R, F>(
    ctx: &Context<'_>,
    id: T::Id,
    action: Action,
    work: F,
) -> AppResult<R>
where
    T: Guarded,
    R: Send,
    F: for<'c> FnOnce(&'c mut AsyncPgConnection, T) -> BoxFuture<'c, AppResult<R>> + Send,
{
    ctx.conn()
        .await?
        .transaction::<_, AppError, _>(async move |conn| {
            let row = T::lock(conn, id)
                .await?
                .ok_or(AppError::NotFound(T::NAME))?;
            let record = row.record(conn).await?;
            let uuid = row.uuid();
            let grant = ctx
                .guard_write(action, &record, Some(uuid))
                .map_err(|e| match e {
                    AppError::NotFound(_) => AppError::NotFound(T::NAME),
                    other => other,
                })?;
            let done = work(conn, row).await?;
            grant.commit(conn, uuid).await?;
            Ok(done)
        })
        .await
}

/// Parses a GraphQL `ID` argument into a newtype id; a malformed one is `BAD_USER_INPUT`.
pub fn parse_id<T: std::str::FromStr>(field: &str, id: &async_graphql::ID) -> AppResult<T> {
    id.parse()
        .map_err(|_| AppError::bad_input(field, "is not a valid id"))
}
