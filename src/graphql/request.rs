//! Data subject requests: filed by any controller's DPO, handled jointly,
//! due one calendar month after receipt (GDPR art. 12(3)).

use async_graphql::{Context, InputObject, Object, ID};
use chrono::{DateTime, Months, NaiveDate, Utc};
use diesel_async::AsyncConnection;

use super::connection::{self, Conn};
use super::enums::{Organization, RequestKind, RequestStatus};
use super::idempotency::{replay, Idempotent};
use super::input::long_text;
use super::{locked_write, parse_id, rights, ContextExt, Enforce, FieldGuard};
use crate::authz::{Action, Record, ResourceKind};
use crate::db::contacts::ContactFlags;
use crate::db::requests::{NewRequest, RequestChanges, RequestFilter, RequestRow};
use crate::db::visible::Visible;
use crate::db::{self, ContactId, RequestId};
use crate::error::{AppError, AppResult};
use crate::validate;

register_object!(DataSubjectRequest, RequestRow, Request, Record::request);

guarded_object! {
// Every field passes the guard: its class comes from `register`'s declaration.
#[Object(guard = "FieldGuard(self)")]
impl DataSubjectRequest for self {
    id: id,
    kind: some RequestKind,
    /// The person's contact record, when one was identified.
    async fn contact_id(&self) -> Option<ID> {
        self.row.contact_id.map(|c| ID(c.to_string()))
    }
    /// The identifying facts the person gave, when no contact was identified.
    subject_description: str,
    /// The organisation whose DPO received the request.
    received_by: some Organization,
    received_at: some DateTime<Utc>,
    /// One calendar month after receipt.
    due_at: some NaiveDate,
    extended_due_at: opt NaiveDate,
    extension_reason: str,
    /// The deadline in force: the extended one, if any.
    async fn deadline(&self) -> Option<NaiveDate> {
        Some(self.row.deadline())
    }
    /// Open and past its deadline.
    async fn overdue(&self, ctx: &Context<'_>) -> Option<bool> {
        Some(self.row.is_overdue(ctx.now().date_naive()))
    }
    status: some RequestStatus,
    /// What was done, or why the request was rejected.
    resolution: str,
    resolved_at: opt DateTime<Utc>,
    /// Who last handled it.
    handled_by: str,
    handled_by_org: opt Organization,
    created_at: some DateTime<Utc>,
    updated_at: some DateTime<Utc>,
}
}

impl crate::db::page::Paged for DataSubjectRequest {
    fn keyset(&self) -> crate::db::page::Keyset {
        crate::db::page::Paged::keyset(&self.row)
    }
}

#[derive(InputObject, Default)]
pub struct DataSubjectRequestFilter {
    pub kind: Option<RequestKind>,
    pub status: Option<RequestStatus>,
    /// Open and past the deadline in force (`false`: the others).
    pub overdue: Option<bool>,
    pub contact_id: Option<ID>,
    pub received_by: Option<Organization>,
}

#[derive(Default)]
pub struct RequestQuery;

#[Object]
impl RequestQuery {
    async fn data_subject_request(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> AppResult<Option<DataSubjectRequest>> {
        let id: RequestId = parse_id("id", &id)?;
        // Requests are invisible to whoever may not read the class
        // `request`: NOT_FOUND for every id, existing or not.
        let kind = Record::new_row(ResourceKind::Request, ctx.org()?);
        if !ctx.may_read(&kind, crate::authz::FieldClass::Request)? {
            return Err(AppError::NotFound("data subject request"));
        }
        let row = db::requests::by_id(&mut *ctx.conn().await?, id)
            .await?
            .ok_or(AppError::NotFound("data subject request"))?;
        Ok(Some(DataSubjectRequest::new(row)))
    }

    /// Every controller's requests (they are handled jointly), oldest first.
    #[graphql(complexity = "connection::cost(first, child_complexity)")]
    async fn data_subject_requests(
        &self,
        ctx: &Context<'_>,
        filter: Option<DataSubjectRequestFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<Conn<DataSubjectRequest>> {
        // The list as a whole is the class `request`: refused, it is FORBIDDEN
        // (and recorded) rather than an empty page.
        super::guard_register(ctx, ResourceKind::Request)?;
        let (page, first) = connection::page_request(first, after)?;
        let f = filter.unwrap_or_default();
        let filter = RequestFilter {
            kind: f.kind.map(Into::into),
            status: f.status.map(Into::into),
            contact_id: f
                .contact_id
                .as_ref()
                .map(|id| parse_id::<ContactId>("filter.contactId", id))
                .transpose()?,
            received_by: f.received_by.map(Into::into),
            overdue: f.overdue,
            today: None,
        };
        let (rows, total) = connection::rows_and_total!(ctx, db::requests, (&filter), page);
        Ok(connection::build(
            rows.into_iter().map(DataSubjectRequest::new).collect(),
            first,
            page.after.is_some(),
            total,
            |r| r,
        ))
    }
}

#[derive(InputObject)]
pub struct FileRequestInput {
    pub kind: RequestKind,
    /// The person's contact record, if one was identified.
    pub contact_id: Option<ID>,
    /// Otherwise the identifying facts the person gave.
    pub subject_description: Option<String>,
    /// The day the request reached the controller (default: today); the
    /// deadline is one calendar month later.
    pub received_on: Option<NaiveDate>,
    /// RECTIFICATION only: restrict the contact while the request is pending.
    pub restrict_while_pending: Option<bool>,
}

#[derive(InputObject)]
pub struct ResolveRequestInput {
    /// `IN_PROGRESS` (from `RECEIVED`), `COMPLETED` or `REJECTED` (from `IN_PROGRESS`).
    pub status: RequestStatus,
    /// What was done; required to reject.
    pub resolution: Option<String>,
    /// OBJECTION, when completing: whether the objection was upheld (the
    /// contact stays restricted) or not (the restriction is lifted).
    pub objection_upheld: Option<bool>,
}

/// The longest extension GDPR art. 12(3) allows: two further months.
const MAX_EXTENSION_MONTHS: u32 = 2;

fn received_at(on: NaiveDate, now: DateTime<Utc>) -> DateTime<Utc> {
    if on == now.date_naive() {
        now
    } else {
        on.and_hms_opt(0, 0, 0).map_or(now, |t| t.and_utc())
    }
}

/// What filing a request does to its contact at once, if anything.
fn opening_effect(
    kind: db::RequestKind,
    restrict_while_pending: bool,
) -> Option<(Action, ContactFlags)> {
    use db::RequestKind::*;
    let restrict = || ContactFlags { restricted: Some(true), ..Default::default() };
    match kind {
        Restriction => Some((Action::RestrictOnRequest, restrict())),
        Rectification if restrict_while_pending => Some((Action::RestrictOnRequest, restrict())),
        Objection => Some((
            Action::RestrictOnRequest,
            ContactFlags { objection_pending: Some(true), ..Default::default() },
        )),
        MarketingObjection => Some((
            Action::ObjectMarketing,
            ContactFlags { marketing_objection: Some(true), ..Default::default() },
        )),
        Access | Erasure | Rectification => None,
    }
}

/// What resolving a request does to its contact: an objection assessed
/// keeps or lifts the restriction, a completed erasure erases. Both are the
/// registering organisation's DPO's (R9); anyone else gets FORBIDDEN.
async fn closing_effect(
    ctx: &Context<'_>,
    conn: &mut diesel_async::AsyncPgConnection,
    author: &db::ChangeAuthor,
    request: &RequestRow,
    contact: ContactId,
    to: db::RequestStatus,
    upheld: Option<bool>,
) -> AppResult<()> {
    use db::RequestKind::*;
    use db::RequestStatus::*;
    match (request.kind, to) {
        (Objection, Completed | Rejected) => {
            let upheld = match (to, upheld) {
                (Rejected, _) => false,
                (_, Some(u)) => u,
                (_, None) => {
                    return Err(AppError::bad_input(
                        "input.objectionUpheld",
                        "say whether the objection was upheld",
                    ))
                }
            };
            let action = if upheld { Action::Restrict } else { Action::LiftRestriction };
            let (old, grant) = rights::lock_contact_for(ctx, conn, contact, action).await?;
            let flags = ContactFlags {
                objection_pending: Some(false),
                restricted: upheld.then_some(true),
                ..Default::default()
            };
            db::contacts::set_flags(conn, author, &old, &flags).await?;
            grant.commit(conn, contact.0).await
        }
        (Erasure, Completed) => {
            let (old, grant) = rights::lock_contact_for(ctx, conn, contact, Action::Erase).await?;
            rights::check_erasable(conn, &old, Some(request.id)).await?;
            rights::erase_contact(conn, author, &old).await?;
            grant.commit(conn, contact.0).await
        }
        _ => Ok(()),
    }
}

/// The one allowed order of statuses.
fn check_transition(from: db::RequestStatus, to: db::RequestStatus) -> AppResult<()> {
    use db::RequestStatus::*;
    match (from, to) {
        (Received, InProgress) | (InProgress, Completed) | (InProgress, Rejected) => Ok(()),
        _ => Err(AppError::bad_input(
            "status",
            format!(
                "a request cannot go from {} to {}; the order is RECEIVED → IN_PROGRESS → COMPLETED or REJECTED",
                from.as_str(),
                to.as_str()
            ),
        )),
    }
}

#[derive(Default)]
pub struct RequestMutation;

#[Object]
impl RequestMutation {
    /// Files a request the person made to this DPO's organisation.
    async fn file_data_subject_request(
        &self,
        ctx: &Context<'_>,
        input: FileRequestInput,
        #[graphql(
            desc = "Repeating a create with the same key (within a day) answers with the record the first one made instead of making another."
        )]
        idempotency_key: Option<String>,
    ) -> AppResult<DataSubjectRequest> {
        let author = ctx.author()?;
        // Authorized before the input is judged.
        // A request has no sector: recipients are refused (R7), not shown NOT_FOUND.
        let grant = ctx.guard_write(
            Action::HandleRequest,
            &Record { in_sector: true, ..Record::new_row(ResourceKind::Request, author.org) },
            None,
        )?;
        let idem = Idempotent::of(ctx, idempotency_key)?;
        if let Some(id) = replay(ctx, &idem).await? {
            let row = db::requests::by_id(&mut *ctx.conn().await?, RequestId(id)).await?;
            let row = row.ok_or(AppError::NotFound("data subject request"))?;
            return Ok(DataSubjectRequest::new(row));
        }
        let contact = input
            .contact_id
            .as_ref()
            .map(|id| parse_id::<ContactId>("input.contactId", id))
            .transpose()?;
        let description = match input.subject_description {
            Some(d) => Some(
                long_text(&d).map_err(|m| AppError::bad_input("input.subjectDescription", m))?,
            ),
            None => None,
        };
        if contact.is_none() && description.is_none() {
            return Err(AppError::bad_input(
                "input",
                "name the contact or describe the person (subjectDescription)",
            ));
        }
        let kind: db::RequestKind = input.kind.into();
        let restrict_while_pending = input.restrict_while_pending.unwrap_or(false);
        if restrict_while_pending && kind != db::RequestKind::Rectification {
            return Err(AppError::bad_input(
                "input.restrictWhilePending",
                "only a rectification request restricts optionally",
            ));
        }
        let effect = opening_effect(kind, restrict_while_pending);
        if effect.is_some() && contact.is_none() {
            return Err(AppError::bad_input(
                "input.contactId",
                format!("a {} request needs the contact it concerns", kind.as_str()),
            ));
        }
        let now = ctx.now();
        let received_on = input.received_on.unwrap_or_else(|| now.date_naive());
        if received_on > now.date_naive() {
            return Err(AppError::bad_input("input.receivedOn", "is in the future"));
        }
        let new = NewRequest {
            kind,
            contact_id: contact,
            subject_description: description,
            received_by: author.org,
            received_at: received_at(received_on, now),
            due_at: validate::one_month_after(received_on),
            handled_by: Some(author.sub.clone()),
            handled_by_org: Some(author.org),
        };
        let row = ctx
            .conn()
            .await?
            .transaction::<_, AppError, _>(async move |conn| {
                if let Some(c) = contact {
                    // Whoever registered the person: requests are handled jointly.
                    if db::contacts::by_ids(
                        conn,
                        &[c],
                        &Visible::All,
                        crate::db::project::Columns::all(),
                    )
                    .await?
                    .is_empty()
                    {
                        return Err(AppError::bad_input("input.contactId", "no such contact"));
                    }
                }
                let row = db::requests::insert(conn, &author, &new).await?;
                if let (Some(c), Some((action, flags))) = (contact, effect) {
                    // The policy decides the effect too (R9: protective, so
                    // any controller's DPO who files the request).
                    let (old, effect_grant) =
                        rights::lock_contact_for(ctx, conn, c, action).await?;
                    db::contacts::set_flags(conn, &author, &old, &flags).await?;
                    effect_grant.commit(conn, c.0).await?;
                }
                if let Some(i) = &idem {
                    i.record(conn, ctx, row.id.0).await?;
                }
                grant.commit(conn, row.id.0).await?;
                Ok(row)
            })
            .await?;
        Ok(DataSubjectRequest::new(row))
    }

    /// Extends the deadline once, by at most two further months, with a reason.
    async fn extend_data_subject_request(
        &self,
        ctx: &Context<'_>,
        id: ID,
        extended_due_at: NaiveDate,
        reason: String,
    ) -> AppResult<DataSubjectRequest> {
        let id: RequestId = parse_id("id", &id)?;
        let reason = long_text(&reason).map_err(|m| AppError::bad_input("reason", m))?;
        let author = ctx.author()?;
        let row = locked_write(ctx, id, Action::HandleRequest, move |conn, old: RequestRow| {
            Box::pin(async move {
                if !old.is_open() {
                    return Err(AppError::bad_input("id", "the request is already resolved"));
                }
                if old.extended_due_at.is_some() {
                    return Err(AppError::bad_input(
                        "extendedDueAt",
                        "the deadline was extended already; it can be extended once",
                    ));
                }
                let latest = old
                    .due_at
                    .checked_add_months(Months::new(MAX_EXTENSION_MONTHS))
                    .unwrap_or(old.due_at);
                if extended_due_at <= old.due_at || extended_due_at > latest {
                    return Err(AppError::bad_input(
                        "extendedDueAt",
                        format!(
                            "must be after {} and at most {latest} (two months more)",
                            old.due_at
                        ),
                    ));
                }
                let changes = RequestChanges {
                    extended_due_at: Some(Some(extended_due_at)),
                    extension_reason: Some(Some(reason)),
                    handled_by: Some(Some(author.sub.clone())),
                    handled_by_org: Some(Some(author.org)),
                    ..Default::default()
                };
                Ok(db::requests::update(conn, &author, &old, &changes).await?)
            })
        })
        .await?;
        Ok(DataSubjectRequest::new(row))
    }

    /// Moves a request on: RECEIVED → IN_PROGRESS → COMPLETED or REJECTED.
    async fn resolve_data_subject_request(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: ResolveRequestInput,
    ) -> AppResult<DataSubjectRequest> {
        let id: RequestId = parse_id("id", &id)?;
        let to: db::RequestStatus = input.status.into();
        let resolution = match input.resolution {
            Some(r) => Some(long_text(&r).map_err(|m| AppError::bad_input("input.resolution", m))?),
            None => None,
        };
        if to == db::RequestStatus::Rejected && resolution.is_none() {
            return Err(AppError::bad_input("input.resolution", "a rejection needs a reason"));
        }
        let upheld = input.objection_upheld;
        let author = ctx.author()?;
        let row = ctx
            .conn()
            .await?
            .transaction::<_, AppError, _>(async move |conn| {
                let old = db::requests::lock(conn, id)
                    .await?
                    .ok_or(AppError::NotFound("data subject request"))?;
                let grant =
                    ctx.guard_write(Action::HandleRequest, &Record::request(&old), Some(id.0))?;
                check_transition(old.status, to)?;
                let old = match old.contact_id {
                    Some(contact) => {
                        closing_effect(ctx, conn, &author, &old, contact, to, upheld).await?;
                        // Read again: an erasure has just forgotten what the
                        // person gave, and the change log must not copy it back.
                        db::requests::lock(conn, id)
                            .await?
                            .ok_or(AppError::NotFound("data subject request"))?
                    }
                    None => old,
                };
                let done = matches!(to, db::RequestStatus::Completed | db::RequestStatus::Rejected);
                let changes = RequestChanges {
                    status: Some(to),
                    resolution: resolution.map(Some),
                    resolved_at: done.then(|| Some(ctx.now())),
                    handled_by: Some(Some(author.sub.clone())),
                    handled_by_org: Some(Some(author.org)),
                    ..Default::default()
                };
                let new = db::requests::update(conn, &author, &old, &changes).await?;
                grant.commit(conn, id.0).await?;
                Ok(new)
            })
            .await?;
        Ok(DataSubjectRequest::new(row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_documented_transitions_are_allowed() {
        use db::RequestStatus::*;
        for from in [Received, InProgress, Completed, Rejected] {
            for to in [Received, InProgress, Completed, Rejected] {
                let ok = matches!(
                    (from, to),
                    (Received, InProgress) | (InProgress, Completed) | (InProgress, Rejected)
                );
                assert_eq!(check_transition(from, to).is_ok(), ok, "{from:?} → {to:?}");
            }
        }
    }
}
