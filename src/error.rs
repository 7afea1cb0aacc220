//! The one error type of the gateway and its one conversion to GraphQL errors.
//!
//! async-graphql's `custom-error-conversion` feature removes the blanket
//! `From<impl Display>` conversion, so a diesel or pool error can only reach a
//! client through [`AppError`], whose internal causes are logged and replaced by
//! a request id.

use std::sync::Arc;

use async_graphql::ErrorExtensions;

/// The closed set of `extensions.code` values a client can see (docs/contract.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Unauthenticated,
    Forbidden,
    NotFound,
    BadUserInput,
    QueryTooComplex,
    RateLimited,
    Unavailable,
    InternalServerError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::BadUserInput => "BAD_USER_INPUT",
            ErrorCode::QueryTooComplex => "QUERY_TOO_COMPLEX",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::InternalServerError => "INTERNAL_SERVER_ERROR",
        }
    }
}

type Cause = Arc<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Unauthenticated(String),
    /// A denial; `audit_event` is the id of the event that recorded it, so a
    /// complaint leads straight to the decision.
    #[error("access denied: {message}")]
    Forbidden {
        message: String,
        audit_event: uuid::Uuid,
        /// What would allow it, when the caller can change that itself (the
        /// processing purpose); never anything about rows it may not see.
        hint: Option<String>,
    },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("invalid {field}: {message}")]
    BadUserInput { field: String, message: String },
    #[error("{0}")]
    QueryTooComplex(String),
    #[error("{0} is unavailable")]
    Unavailable(&'static str),
    #[error("internal error")]
    Internal(#[source] Cause),
}

impl AppError {
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::BadUserInput { field: field.into(), message: message.into() }
    }

    pub fn forbidden(message: impl Into<String>, audit_event: uuid::Uuid) -> Self {
        AppError::Forbidden { message: message.into(), audit_event, hint: None }
    }

    /// A denial with a hint (`extensions.hint`).
    pub fn with_hint(self, hint: Option<String>) -> Self {
        match self {
            AppError::Forbidden { message, audit_event, .. } => {
                AppError::Forbidden { message, audit_event, hint }
            }
            other => other,
        }
    }

    pub fn internal(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        AppError::Internal(Arc::new(cause))
    }

    pub fn internal_msg(message: impl Into<String>) -> Self {
        AppError::Internal(Arc::new(Message(message.into())))
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            AppError::Forbidden { .. } => ErrorCode::Forbidden,
            AppError::NotFound(_) => ErrorCode::NotFound,
            AppError::BadUserInput { .. } => ErrorCode::BadUserInput,
            AppError::QueryTooComplex(_) => ErrorCode::QueryTooComplex,
            AppError::Unavailable(_) => ErrorCode::Unavailable,
            AppError::Internal(_) => ErrorCode::InternalServerError,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Message(String);

impl From<diesel::result::Error> for AppError {
    fn from(err: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match &err {
            // statement_timeout, lost or terminated connections, a server
            // shutting down and serialization failures are the database
            // being unavailable, not a bug; the client may retry.
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection
                | DatabaseErrorKind::UnableToSendCommand
                | DatabaseErrorKind::SerializationFailure,
                _,
            )
            | Error::BrokenTransactionManager => {
                tracing::warn!(error = %err, "database connection lost");
                AppError::Unavailable("the database")
            }
            Error::DatabaseError(_, info) if info.message().contains("statement timeout") => {
                tracing::warn!(error = %err, "statement timed out");
                AppError::Unavailable("the database (statement timeout)")
            }
            Error::DatabaseError(_, info) if is_unavailable(info.message()) => {
                tracing::warn!(error = %err, "database unavailable");
                AppError::Unavailable("the database")
            }
            _ => AppError::internal(err),
        }
    }
}

/// PostgreSQL's messages for a server that ends or refuses sessions
/// (SQLSTATE 57P01–57P03, 53300, 55P03, 08xxx), which diesel reports
/// without their codes.
fn is_unavailable(message: &str) -> bool {
    const MARKS: [&str; 8] = [
        "terminating connection",
        "the database system is",
        "too many connections",
        "lock timeout",
        "could not obtain lock",
        "connection",
        "server closed",
        "cannot execute",
    ];
    let m = message.to_ascii_lowercase();
    MARKS.iter().any(|mark| m.contains(mark))
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for AppError {
    fn from(err: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        tracing::warn!(error = %err, "no database connection");
        AppError::Unavailable("the database")
    }
}

tokio::task_local! {
    /// The id of the HTTP request being served, so errors can name it.
    pub static REQUEST_ID: String;
}

pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        let code = err.code();
        let request_id = current_request_id();
        let message = match &err {
            AppError::Internal(cause) => {
                // The cause stays in the log; the client gets the id to quote.
                tracing::error!(request_id = request_id.as_deref().unwrap_or("-"), error = %cause, source = ?cause, "internal error");
                match &request_id {
                    Some(id) => format!("internal error (request {id})"),
                    None => "internal error".to_owned(),
                }
            }
            other => other.to_string(),
        };
        async_graphql::Error::new(message).extend_with(|_, ext| {
            ext.set("code", code.as_str());
            if let AppError::BadUserInput { field, .. } = &err {
                ext.set("field", field.as_str());
            }
            if let AppError::Forbidden { audit_event: id, hint, .. } = &err {
                ext.set("auditEventId", id.to_string());
                if let Some(hint) = hint {
                    ext.set("hint", hint.as_str());
                }
            }
            if let (ErrorCode::InternalServerError, Some(id)) = (code, &request_id) {
                ext.set("requestId", id.as_str());
            }
        })
    }
}

pub type AppResult<T> = Result<T, AppError>;

/// The text a panic carried, for the log (never for the client).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}
