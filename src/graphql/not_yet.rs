//! Entry points of contract.md whose capability is still to be built (data
//! subject requests). They exist so clients can be written
//! against the final schema, and answer `UNAVAILABLE` saying so.

use async_graphql::connection::Connection;
use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, NaiveDate, Utc};

use super::connection::Totals;
use super::enums::{Organization, RequestKind, RequestStatus};
use crate::error::{AppError, AppResult};

fn not_yet<T>(what: &'static str) -> AppResult<T> {
    Err(AppError::Unavailable(what))
}

#[derive(SimpleObject)]
pub struct DataSubjectRequest {
    pub id: ID,
    pub kind: RequestKind,
    pub contact_id: Option<ID>,
    pub received_by: Organization,
    pub received_at: DateTime<Utc>,
    pub due_at: NaiveDate,
    pub status: RequestStatus,
}

#[derive(InputObject, Default)]
pub struct DataSubjectRequestFilter {
    pub kind: Option<RequestKind>,
    pub status: Option<RequestStatus>,
    pub overdue: Option<bool>,
}

#[derive(SimpleObject)]
pub struct SubjectAccessReport {
    pub contact_id: ID,
    pub generated_at: DateTime<Utc>,
}

#[derive(Default)]
pub struct RequestQuery;

#[Object]
impl RequestQuery {
    async fn data_subject_request(
        &self,
        _ctx: &Context<'_>,
        _id: ID,
    ) -> AppResult<Option<DataSubjectRequest>> {
        not_yet("data subject requests (not built yet)")
    }
    async fn data_subject_requests(
        &self,
        _filter: Option<DataSubjectRequestFilter>,
        _first: Option<i32>,
        _after: Option<String>,
    ) -> AppResult<Connection<String, DataSubjectRequest, Totals>> {
        not_yet("data subject requests (not built yet)")
    }
    async fn subject_access_report(
        &self,
        _contact_id: ID,
    ) -> AppResult<Option<SubjectAccessReport>> {
        not_yet("subject access reports (not built yet)")
    }
}
