//! The authenticated actor and the policy version.

use async_graphql::{Context, Object, SimpleObject};

use super::enums::{Organization, OrganizationKind};
use super::ContextExt;
use crate::error::AppResult;

#[derive(SimpleObject)]
pub struct Viewer {
    pub sub: String,
    pub org: Organization,
    pub org_kind: OrganizationKind,
    pub roles: Vec<String>,
    /// ISO 3166-1 alpha-2 country where the person works.
    pub country: String,
    pub in_eu_eea: bool,
    /// The X-Processing-Purpose of this request.
    pub purpose: String,
}

#[derive(Default)]
pub struct ViewerQuery;

#[Object]
impl ViewerQuery {
    async fn viewer(&self, ctx: &Context<'_>) -> AppResult<Viewer> {
        let a = ctx.actor()?;
        Ok(Viewer {
            sub: a.sub.clone(),
            org: a.org.into(),
            org_kind: a.org_kind().into(),
            roles: a.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            country: a.country.clone(),
            in_eu_eea: a.in_eu_eea(),
            purpose: a.purpose.as_str().to_owned(),
        })
    }

    /// SHA-256 of the policy files in force. Class `audit`: auditors read it;
    /// for anyone else it is null with FORBIDDEN.
    async fn policy_version(&self, ctx: &Context<'_>) -> AppResult<Option<String>> {
        super::audit::AuditQuery::guard_audit(ctx, "policyVersion")?;
        Ok(Some(ctx.request()?.authorizer.version().to_owned()))
    }
}
