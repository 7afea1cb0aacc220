//! The GraphQL schema: types wrap rows (no GraphQL derive on a diesel row),
//! one file per domain, merged roots, typed context accessors.

// Resolvers read the clock through `ContextExt::now` (clippy.toml).
#![deny(clippy::disallowed_methods)]

/// A register object type: its row, what the policy sees of it, and the
/// kind its fields are declared under (`register`), for the field guard.
/// `$facts` builds the policy's record from the row; with `company_scoped`
/// it also takes the row's company's industry (the recipients' sector), and
/// `many`/`one` look that up in one batch.
macro_rules! register_object {
    ($name:ident, $row:ty, $kind:ident, $facts:expr) => {
        register_object!(@struct $name, $row, $kind);

        impl $name {
            pub fn new(row: impl Into<std::sync::Arc<$row>>) -> Self {
                let row = row.into();
                $name {
                    record: $facts(&row),
                    row,
                }
            }
        }

    };
    ($name:ident, $row:ty, $kind:ident, $facts:expr, company_scoped) => {
        register_object!(@struct $name, $row, $kind);

        impl $name {
            pub fn new(row: std::sync::Arc<$row>, company_industry: Option<&str>) -> Self {
                $name {
                    record: $facts(&row, company_industry),
                    row,
                }
            }

            #[allow(dead_code)]
            pub async fn many(
                ctx: &async_graphql::Context<'_>,
                rows: Vec<std::sync::Arc<$row>>,
            ) -> crate::error::AppResult<Vec<Self>> {
                crate::graphql::with_company_facts(ctx, rows, |r| r.company_id, Self::new).await
            }

            pub async fn one(
                ctx: &async_graphql::Context<'_>,
                row: impl Into<std::sync::Arc<$row>>,
            ) -> crate::error::AppResult<Self> {
                crate::graphql::one_with_company_facts(ctx, row.into(), |r| r.company_id, Self::new)
                    .await
            }
        }

    };
    (@struct $name:ident, $row:ty, $kind:ident) => {
        pub struct $name {
            /// Shared with the request's loader, which hands out the same row
            /// to every place that reads it.
            pub row: std::sync::Arc<$row>,
            /// What the policy sees of this row.
            record: crate::authz::Record,
        }

        impl crate::graphql::Resource for $name {
            const KIND: crate::register::ResourceKind = crate::register::ResourceKind::$kind;
            fn record(&self) -> &crate::authz::Record {
                &self.record
            }
            fn id(&self) -> uuid::Uuid {
                self.row.id.0
            }
        }
    };
}

/// The `#[Object]` impl of a register type (its attribute names the
/// `FieldGuard` every field passes; it is written at the call site so the
/// resolvers' `complexity` expressions see the names it defines). Plain
/// getters take one line, saying how the row's column becomes the field: `str` (optional text), `string` (text always present),
/// `some T` (a value always present, converted), `opt T` (an optional
/// value), `cloned T` (an optional value that is not `Copy`), `id`.
/// Resolvers with logic are written out in between; the order is the schema's.
/// (`for self` hands the macro the caller's `self`, which hygiene would
/// otherwise keep apart from the guard's.)
macro_rules! guarded_object {
    ($pound:tt $object:tt $impl:tt $T:ident for $s:tt { $($body:tt)* }) => {
        guarded_object!(@munch $s [$pound $object $impl $T] [] $($body)*);
    };
    (@munch $s:tt $T:tt [$($acc:tt)*] $(#[$m:meta])* $f:ident: str, $($tail:tt)*) => {
        guarded_object!(@munch $s $T [$($acc)* $(#[$m])* async fn $f(&$s) -> Option<&str> {
            $s.row.$f.as_deref()
        }] $($tail)*);
    };
    (@munch $s:tt $T:tt [$($acc:tt)*] $(#[$m:meta])* $f:ident: string, $($tail:tt)*) => {
        guarded_object!(@munch $s $T [$($acc)* $(#[$m])* async fn $f(&$s) -> Option<&str> {
            Some(&$s.row.$f)
        }] $($tail)*);
    };
    (@munch $s:tt $T:tt [$($acc:tt)*] $(#[$m:meta])* $f:ident: some $O:ty, $($tail:tt)*) => {
        guarded_object!(@munch $s $T [$($acc)* $(#[$m])* async fn $f(&$s) -> Option<$O> {
            Some($s.row.$f.into())
        }] $($tail)*);
    };
    (@munch $s:tt $T:tt [$($acc:tt)*] $(#[$m:meta])* $f:ident: opt $O:ty, $($tail:tt)*) => {
        guarded_object!(@munch $s $T [$($acc)* $(#[$m])* async fn $f(&$s) -> Option<$O> {
            $s.row.$f.map(Into::into)
        }] $($tail)*);
    };
    (@munch $s:tt $T:tt [$($acc:tt)*] $(#[$m:meta])* $f:ident: cloned $O:ty, $($tail:tt)*) => {
        guarded_object!(@munch $s $T [$($acc)* $(#[$m])* async fn $f(&$s) -> Option<$O> {
            $s.row.$f.as_ref().map(|v| <$O>::from(v.to_owned()))
        }] $($tail)*);
    };
    (@munch $s:tt $T:tt [$($acc:tt)*] $(#[$m:meta])* $f:ident: id, $($tail:tt)*) => {
        guarded_object!(@munch $s $T [$($acc)* $(#[$m])* async fn $f(&$s) -> async_graphql::ID {
            async_graphql::ID($s.row.$f.to_string())
        }] $($tail)*);
    };
    (@munch $s:tt $T:tt [$($acc:tt)*] $(#[$m:meta])* async fn $f:ident($($args:tt)*) -> $R:ty $b:block $($tail:tt)*) => {
        guarded_object!(@munch $s $T [$($acc)* $(#[$m])* async fn $f($($args)*) -> $R $b] $($tail)*);
    };
    (@munch $s:tt [$($head:tt)*] [$($acc:tt)*]) => {
        $($head)* {
            $($acc)*
        }
    };
}

pub mod audit;
pub mod company;
pub mod connection;
pub mod contact;
pub mod enums;
pub mod guard;
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

use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, EmptySubscription, MergedObject, Schema, SchemaBuilder};
use loader::LoaderCache;

use crate::app::AppState;
use crate::audit::Recorder;
use crate::auth::Actor;
use crate::authz::{Action, Principal, Record, Visibility};
use crate::config::Limits;
use crate::db::companies::CompanyRow;
use crate::db::confidential::ConfidentialRow;
use crate::db::contacts::ContactRow;
use crate::db::services::ServiceRow;
use crate::db::{self, ChangeAuthor, PooledConn};
use crate::error::{AppError, AppResult};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures::future::BoxFuture;
pub use guard::{
    authorize_kind, guard_register, policy_error, Enforce, FieldGuard, Resource, WriteGrant,
};
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
        .extension(limits::DepthAndComplexity {
            max_depth: limits.max_depth,
            max_complexity: limits.max_complexity,
        })
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
    /// The actor's table of that policy, resolved once: a field's decision
    /// is then a lookup by the record's facts (see `guard::FieldGuard`).
    pub actor_table: Option<std::sync::Arc<crate::authz::compiled::ActorTable>>,
    /// The rows of each table this actor may see.
    pub visibility: std::sync::Arc<Visibility>,
    pub request_id: String,
    pub loader: DataLoader<DbReader, LoaderCache>,
    /// The columns the document can ask for (`loader::projection`): what
    /// listings and the loader select.
    pub projection: crate::db::project::Projection,
    /// The request's audit events, committed before the response is sent.
    pub audit: std::sync::Arc<Recorder>,
    /// The changes this request made, by mutation field.
    pub receipts: std::sync::Arc<Receipts>,
    /// The purpose hints of this request's denied reads.
    pub hints: HintMemo,
}

/// A request's purpose hints by record shape and field class: what another
/// purpose would allow depends on nothing else, and a page denies the same
/// class of many alike rows. A few shapes per request, so a short list.
#[derive(Default)]
pub struct HintMemo(
    std::sync::Mutex<Vec<(crate::authz::Record, crate::authz::FieldClass, Option<String>)>>,
);

impl HintMemo {
    pub fn get_or_insert(
        &self,
        record: &crate::authz::Record,
        class: crate::authz::FieldClass,
        hint: impl FnOnce() -> Option<String>,
    ) -> Option<String> {
        let mut memo = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, _, h)) = memo.iter().find(|(r, c, _)| *c == class && r == record) {
            return h.clone();
        }
        let h = hint();
        memo.push((record.clone(), class, h.clone()));
        h
    }
}

/// Each change's audit event, appended in the change's transaction, is its
/// receipt: stored means committed. Kept per mutation field (response key),
/// so an error after the change can say what became of it.
#[derive(Default, Debug)]
pub struct Receipts(std::sync::Mutex<Vec<(String, Uuid)>>);

impl Receipts {
    fn push(&self, field: String, event: Uuid) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((field, event));
    }

    /// (mutation field, event id) of every change attempted to its end.
    pub fn all(&self) -> Vec<(String, Uuid)> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

pub trait ContextExt {
    fn state(&self) -> AppResult<&AppState>;
    fn request(&self) -> AppResult<&RequestContext>;
    /// The actor as a person (their `sub`, country): an answer that reads
    /// this depends on who asks, so it is not shared through the cache.
    fn actor(&self) -> AppResult<&Actor> {
        crate::db::reads::depends_on("the actor's identity");
        Ok(&self.request()?.actor)
    }
    /// The actor's organisation: one of the facts the policy (and the
    /// cache's key) already holds.
    fn org(&self) -> AppResult<db::OrgCode> {
        Ok(self.request()?.actor.org)
    }
    /// The time, for answers that depend on it (a deadline passed): such an
    /// answer is not cached. Resolvers take the time only from here
    /// (`clippy::disallowed_methods` refuses `Utc::now` in this module).
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        crate::db::reads::depends_on("the clock");
        #[allow(clippy::disallowed_methods)]
        let now = chrono::Utc::now();
        now
    }
    fn visibility(&self) -> AppResult<&Visibility> {
        Ok(&self.request()?.visibility)
    }
    fn loader(&self) -> AppResult<&DataLoader<DbReader, LoaderCache>> {
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
}

/// The industry code of a company the actor may see (the sector fact of its
/// contacts, services and confidential rows).
pub async fn company_industry(
    ctx: &Context<'_>,
    company: db::CompanyId,
) -> AppResult<Option<String>> {
    Ok(ctx.loader()?.load_one(company).await?.and_then(|c| c.industry_code.clone()))
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
            let industry = companies.get(&company(&r)).and_then(|c| c.industry_code.clone());
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
    Ok(db::companies::by_ids(
        conn,
        &[company],
        &db::visible::Visible::All,
        crate::db::project::Columns::all(),
    )
    .await?
    .into_iter()
    .next()
    .and_then(|c| c.industry_code))
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

guarded!(CompanyRow, db::CompanyId, "company", companies, |row, _conn| Ok(Record::company(row)));
guarded!(ConfidentialRow, db::ConfidentialId, "confidential row", confidential, |row, conn| {
    Ok(Record::confidential(row, industry_of(conn, row.company_id).await?.as_deref()))
});
guarded!(ContactRow, db::ContactId, "contact", contacts, |row, conn| {
    Ok(Record::contact(row, industry_of(conn, row.company_id).await?.as_deref()))
});
guarded!(
    crate::db::requests::RequestRow,
    db::RequestId,
    "data subject request",
    requests,
    |row, _conn| Ok(Record::request(row))
);
guarded!(ServiceRow, db::ServiceId, "service", services, |row, conn| {
    Ok(Record::service(row, industry_of(conn, row.company_id).await?.as_deref()))
});

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
            let row = T::lock(conn, id).await?.ok_or(AppError::NotFound(T::NAME))?;
            let record = row.record(conn).await?;
            let uuid = row.uuid();
            let grant = ctx.guard_write(action, &record, Some(uuid)).map_err(|e| match e {
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
    id.parse().map_err(|_| AppError::bad_input(field, "is not a valid id"))
}
