//! Entry points of contract.md whose capability is still to be built (the
//! subject access report). They exist so clients can be written against the
//! final schema, and answer `UNAVAILABLE` saying so.

use async_graphql::{Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use crate::error::{AppError, AppResult};

fn not_yet<T>(what: &'static str) -> AppResult<T> {
    Err(AppError::Unavailable(what))
}

#[derive(SimpleObject)]
pub struct SubjectAccessReport {
    pub contact_id: ID,
    pub generated_at: DateTime<Utc>,
}

#[derive(Default)]
pub struct ReportQuery;

#[Object]
impl ReportQuery {
    async fn subject_access_report(
        &self,
        _contact_id: ID,
    ) -> AppResult<Option<SubjectAccessReport>> {
        not_yet("subject access reports (not built yet)")
    }
}
