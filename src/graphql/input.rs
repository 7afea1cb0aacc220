//! Turning mutation input into data-layer forms. Every error names the
//! GraphQL field (camelCase) so a client can point at it.

use async_graphql::MaybeUndefined;

use crate::error::{AppError, AppResult};

pub type Validator = fn(&str) -> Result<String, String>;

/// Free text of at most 500 characters.
pub fn short_text(s: &str) -> Result<String, String> {
    crate::validate::text(s, 500)
}

/// Free text of at most 10,000 characters.
pub fn long_text(s: &str) -> Result<String, String> {
    crate::validate::text(s, 10_000)
}

/// Validates a present value; absent and null pass through.
pub fn checked(
    field: &str,
    value: MaybeUndefined<String>,
    validator: Validator,
) -> AppResult<MaybeUndefined<String>> {
    match value {
        MaybeUndefined::Value(v) => {
            validator(&v).map(MaybeUndefined::Value).map_err(|m| AppError::bad_input(field, m))
        }
        other => Ok(other),
    }
}

/// A value a new row must have.
pub fn required<T>(field: &str, value: Option<T>) -> AppResult<T> {
    value.ok_or_else(|| AppError::bad_input(field, "is required"))
}

/// A NOT NULL column on update: absent keeps it, null is an error.
pub fn keep_or_set<T>(field: &str, value: MaybeUndefined<T>) -> AppResult<Option<T>> {
    match value {
        MaybeUndefined::Undefined => Ok(None),
        MaybeUndefined::Null => Err(AppError::bad_input(field, "cannot be cleared")),
        MaybeUndefined::Value(v) => Ok(Some(v)),
    }
}

/// A nullable column: absent keeps it, null clears it.
pub fn nullable<T>(value: MaybeUndefined<T>) -> Option<Option<T>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

/// Validated nullable text column.
pub fn text(
    field: &str,
    value: MaybeUndefined<String>,
    validator: Validator,
) -> AppResult<Option<Option<String>>> {
    Ok(nullable(checked(field, value, validator)?))
}

/// On create, a nullable column that was not given is simply NULL.
pub fn on_create<T>(value: Option<Option<T>>) -> Option<T> {
    value.flatten()
}
