//! The GraphQL schema: types wrap rows (no GraphQL derive on a diesel row),
//! one file per domain, merged roots, typed context accessors.

pub mod company;
pub mod connection;
pub mod contact;
pub mod enums;
pub mod input;
pub mod limits;
pub mod loader;
pub mod not_yet;
pub mod service;
pub mod viewer;

use async_graphql::dataloader::{DataLoader, HashMapCache};
use async_graphql::{Context, EmptySubscription, MergedObject, Schema, SchemaBuilder};

use crate::app::AppState;
use crate::auth::Actor;
use crate::authz::{Action, FieldClass, ResourceFacts};
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

#[derive(MergedObject, Default)]
pub struct Query(
    company::CompanyQuery,
    contact::ContactQuery,
    service::ServiceQuery,
    not_yet::RequestQuery,
    not_yet::AuditQuery,
    viewer::ViewerQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    company::CompanyMutation,
    contact::ContactMutation,
    service::ServiceMutation,
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
        .limit_directives(10);
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
    pub request_id: String,
    pub loader: DataLoader<DbReader, HashMapCache>,
}

pub trait ContextExt {
    fn state(&self) -> AppResult<&AppState>;
    fn request(&self) -> AppResult<&RequestContext>;
    fn actor(&self) -> AppResult<&Actor> {
        Ok(&self.request()?.actor)
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
    /// Asks the policy whether this actor may read `class` of `resource`.
    fn guard(&self, resource: &ResourceFacts, class: FieldClass) -> AppResult<()>;
    fn guard_write(&self, action: Action, resource: &ResourceFacts) -> AppResult<()>;
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

    fn guard(&self, resource: &ResourceFacts, class: FieldClass) -> AppResult<()> {
        let decision = self
            .state()?
            .authorizer
            .read_field(self.actor()?, resource, class);
        if decision.allowed {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "field class {} ({})",
                class.as_str(),
                decision.rule
            )))
        }
    }

    fn guard_write(&self, action: Action, resource: &ResourceFacts) -> AppResult<()> {
        let decision = self
            .state()?
            .authorizer
            .write(self.actor()?, action, resource);
        if decision.allowed {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "{action:?} is not allowed ({})",
                decision.rule
            )))
        }
    }
}

/// A row a mutation locks before the policy judges it.
pub trait Guarded: Sized + Send {
    type Id: Copy + Send + Sync;
    const NAME: &'static str;
    fn lock(
        conn: &mut AsyncPgConnection,
        id: Self::Id,
    ) -> impl std::future::Future<Output = diesel::QueryResult<Option<Self>>> + Send;
    fn facts(&self) -> ResourceFacts;
}

macro_rules! guarded {
    ($row:ty, $id:ty, $name:literal, $module:ident, $facts:ident) => {
        impl Guarded for $row {
            type Id = $id;
            const NAME: &'static str = $name;
            fn lock(
                conn: &mut AsyncPgConnection,
                id: $id,
            ) -> impl std::future::Future<Output = diesel::QueryResult<Option<Self>>> + Send {
                db::$module::lock(conn, id)
            }
            fn facts(&self) -> ResourceFacts {
                ResourceFacts::$facts(self)
            }
        }
    };
}

guarded!(CompanyRow, db::CompanyId, "company", companies, company);
guarded!(
    ConfidentialRow,
    db::ConfidentialId,
    "confidential row",
    confidential,
    confidential
);
guarded!(ContactRow, db::ContactId, "contact", contacts, contact);
guarded!(ServiceRow, db::ServiceId, "service", services, service);

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
            ctx.guard_write(action, &row.facts())?;
            work(conn, row).await
        })
        .await
}

/// Parses a GraphQL `ID` argument into a newtype id; a malformed one is `BAD_USER_INPUT`.
pub fn parse_id<T: std::str::FromStr>(field: &str, id: &async_graphql::ID) -> AppResult<T> {
    id.parse()
        .map_err(|_| AppError::bad_input(field, "is not a valid id"))
}
