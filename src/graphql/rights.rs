//! The data subject's rights on the register (R9): restriction, objection to
//! marketing, legal hold and erasure. Restricting, lifting, holding and
//! erasing are the registering organisation's DPO's; an objection to direct
//! marketing any controller's DPO records at once.

use async_graphql::{Context, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;

use super::company::Company;
use super::contact::Contact;
use super::enums::Organization;
use super::input::long_text;
use super::{locked_write, parse_id, ContextExt, Enforce, Guarded, WriteGrant};
use crate::audit::Decided;
use crate::authz::{Action, FieldClass, ResourceKind};
use crate::db::companies::CompanyRow;
use crate::db::contacts::{ContactFlags, ContactRow};
use crate::db::{self, ChangeAuthor, CompanyId, ContactId, RequestId};
use crate::error::{AppError, AppResult};
use crate::retention;

/// Locks a contact inside the caller's transaction and asks the policy for
/// `action` on it: what a request's effect does before it changes the person.
pub async fn lock_contact_for(
    ctx: &Context<'_>,
    conn: &mut AsyncPgConnection,
    id: ContactId,
    action: Action,
) -> AppResult<(ContactRow, WriteGrant)> {
    let row = db::contacts::lock(conn, id).await?.ok_or(AppError::NotFound("contact"))?;
    let record = row.record(conn).await?;
    let grant = ctx.guard_write(action, &record, Some(id.0)).map_err(|e| match e {
        AppError::NotFound(_) => AppError::NotFound("contact"),
        other => other,
    })?;
    Ok((row, grant))
}

/// Erasure is refused while the law or a pending matter needs the data
/// (docs/register.md): `BAD_USER_INPUT` saying what stands.
pub async fn check_erasable(
    conn: &mut AsyncPgConnection,
    row: &ContactRow,
    except: Option<RequestId>,
) -> AppResult<()> {
    match crate::rights::contact_blocker(conn, row, except).await? {
        Some(blocker) => Err(AppError::bad_input("id", blocker.to_string())),
        None => Ok(()),
    }
}

/// Erases a contact checked erasable.
pub async fn erase_contact(
    conn: &mut AsyncPgConnection,
    author: &ChangeAuthor,
    row: &ContactRow,
) -> AppResult<ContactRow> {
    Ok(crate::rights::erase_contact(conn, author, row).await?)
}

fn reason(text: &str) -> AppResult<String> {
    long_text(text).map_err(|m| AppError::bad_input("reason", m))
}

#[derive(Default)]
pub struct RightsMutation;

impl RightsMutation {
    async fn company_hold(
        ctx: &Context<'_>,
        id: ID,
        action: Action,
        hold: bool,
        reason: String,
    ) -> AppResult<Company> {
        let id: CompanyId = parse_id("id", &id)?;
        let author = ctx.author()?;
        let row = locked_write(ctx, id, action, move |conn, old: CompanyRow| {
            Box::pin(async move {
                Ok(db::companies::set_legal_hold(conn, &author, &old, hold, Some(reason)).await?)
            })
        })
        .await?;
        Ok(Company::new(row))
    }

    async fn flags(
        ctx: &Context<'_>,
        id: ID,
        action: Action,
        flags: ContactFlags,
    ) -> AppResult<Contact> {
        let id: ContactId = parse_id("id", &id)?;
        let author = ctx.author()?;
        let row = locked_write(ctx, id, action, move |conn, old: ContactRow| {
            Box::pin(async move { Ok(db::contacts::set_flags(conn, &author, &old, &flags).await?) })
        })
        .await?;
        Contact::one(ctx, row).await
    }
}

#[Object]
impl RightsMutation {
    /// Restricts processing of a contact (GDPR art. 18) until lifted.
    async fn restrict_contact(&self, ctx: &Context<'_>, id: ID) -> AppResult<Contact> {
        let flags = ContactFlags { restricted: Some(true), ..Default::default() };
        Self::flags(ctx, id, Action::Restrict, flags).await
    }

    /// Lifts a restriction (not a pending objection: resolving it does that).
    async fn lift_restriction(&self, ctx: &Context<'_>, id: ID) -> AppResult<Contact> {
        let flags = ContactFlags { restricted: Some(false), ..Default::default() };
        Self::flags(ctx, id, Action::LiftRestriction, flags).await
    }

    /// Records an objection to direct marketing (GDPR art. 21(3)): at once,
    /// without assessment.
    async fn object_to_marketing(&self, ctx: &Context<'_>, id: ID) -> AppResult<Contact> {
        let flags = ContactFlags { marketing_objection: Some(true), ..Default::default() };
        Self::flags(ctx, id, Action::ObjectMarketing, flags).await
    }

    /// Keeps a contact from erasure for a task based on law or a pending matter.
    async fn set_contact_legal_hold(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: String,
    ) -> AppResult<Contact> {
        super::authorize_kind(ctx, Action::LegalHold, ResourceKind::Contact)?;
        let flags = ContactFlags {
            legal_hold: Some(true),
            legal_hold_reason: Some(Some(self::reason(&reason)?)),
            ..Default::default()
        };
        Self::flags(ctx, id, Action::LegalHold, flags).await
    }

    /// Lifts a legal hold; the reason stays in the change log.
    async fn lift_contact_legal_hold(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: String,
    ) -> AppResult<Contact> {
        super::authorize_kind(ctx, Action::LiftLegalHold, ResourceKind::Contact)?;
        let flags = ContactFlags {
            legal_hold: Some(false),
            legal_hold_reason: Some(Some(format!("lifted: {}", self::reason(&reason)?))),
            ..Default::default()
        };
        Self::flags(ctx, id, Action::LiftLegalHold, flags).await
    }

    /// A legal hold on a sole trader company.
    async fn set_company_legal_hold(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: String,
    ) -> AppResult<Company> {
        super::authorize_kind(ctx, Action::LegalHold, ResourceKind::Company)?;
        let reason = self::reason(&reason)?;
        Self::company_hold(ctx, id, Action::LegalHold, true, reason).await
    }

    /// Lifts it; the reason stays in the change log.
    async fn lift_company_legal_hold(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: String,
    ) -> AppResult<Company> {
        super::authorize_kind(ctx, Action::LiftLegalHold, ResourceKind::Company)?;
        let reason = format!("lifted: {}", self::reason(&reason)?);
        Self::company_hold(ctx, id, Action::LiftLegalHold, false, reason).await
    }

    /// Erases a contact: a tombstone and nothing personal.
    /// Refused while a legal hold or an open request stands.
    async fn erase_contact(&self, ctx: &Context<'_>, id: ID) -> AppResult<Contact> {
        let id: ContactId = parse_id("id", &id)?;
        let author = ctx.author()?;
        let row = locked_write(ctx, id, Action::Erase, move |conn, old: ContactRow| {
            Box::pin(async move {
                check_erasable(conn, &old, None).await?;
                erase_contact(conn, &author, &old).await
            })
        })
        .await?;
        Contact::one(ctx, row).await
    }

    /// Erases a sole trader company's name, business ID and website.
    async fn erase_company(&self, ctx: &Context<'_>, id: ID) -> AppResult<Company> {
        let id: CompanyId = parse_id("id", &id)?;
        let author = ctx.author()?;
        let row = locked_write(ctx, id, Action::Erase, move |conn, old: CompanyRow| {
            Box::pin(async move {
                if let Some(blocker) = crate::rights::company_blocker(&old) {
                    return Err(AppError::bad_input("id", blocker.to_string()));
                }
                Ok(crate::rights::erase_company(conn, &author, &old).await?)
            })
        })
        .await?;
        Ok(Company::new(row))
    }
}

/// A record the five-year rule says must go.
#[derive(SimpleObject)]
pub struct RetentionCandidate {
    /// `contact` or `company` (a sole trader).
    pub kind: String,
    pub id: ID,
    pub registered_by: Organization,
    pub last_processed_at: DateTime<Utc>,
}

#[derive(SimpleObject)]
pub struct RetentionCandidates {
    /// Data last processed before this is past the rule.
    pub cutoff: DateTime<Utc>,
    /// Oldest first; no legal hold and no open request stands for any of them.
    pub candidates: Vec<RetentionCandidate>,
}

#[derive(Default)]
pub struct RightsQuery;

#[Object]
impl RightsQuery {
    /// What `kasvu-gateway retention` would erase now (at most `first` of
    /// each kind): for DPOs, who see every controller's (class `request`).
    async fn retention_candidates(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] first: i32,
    ) -> AppResult<RetentionCandidates> {
        let r = ctx.request()?;
        let decision = super::guard_register(ctx, ResourceKind::Request)?;
        if !(1..=1000).contains(&first) {
            return Err(AppError::bad_input("first", "must be between 1 and 1000"));
        }
        let due = retention::due(&mut *ctx.conn().await?, i64::from(first)).await?;
        for kind in [ResourceKind::Contact, ResourceKind::Company] {
            let ids: Vec<_> = due.iter().filter(|d| d.kind == kind).map(|d| d.id).collect();
            if !ids.is_empty() {
                // Recorded under the rules that allowed the list.
                r.audit.push(Decided {
                    action: "read".to_owned(),
                    resource_type: kind.as_str().to_owned(),
                    resource_ids: ids,
                    fields: vec!["retentionCandidates".to_owned()],
                    field_classes: vec![FieldClass::Request.as_str().to_owned()],
                    allowed: true,
                    rules: decision.rules.clone(),
                });
            }
        }
        Ok(RetentionCandidates {
            cutoff: retention::cutoff(ctx.now()),
            candidates: due
                .into_iter()
                .map(|d| RetentionCandidate {
                    kind: d.kind.as_str().to_owned(),
                    id: ID(d.id.to_string()),
                    registered_by: d.registered_by.into(),
                    last_processed_at: d.last_processed_at,
                })
                .collect(),
        })
    }
}
