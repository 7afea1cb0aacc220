//! Keyset pagination. Every list is ordered by `(created_at, id)`, which is
//! never NULL and has an index on each table, so a page costs the same at
//! row 100,000 as at row 0 (no OFFSET).

use base64::Engine;
use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyset {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Keyset {
    pub fn encode(&self) -> String {
        let raw = format!("{}|{}", self.created_at.timestamp_micros(), self.id);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(cursor: &str) -> Option<Keyset> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (micros, id) = raw.split_once('|')?;
        let created_at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
        // A forged time outside what PostgreSQL stores would fail the query:
        // it is no cursor this API issued.
        if !(1..=9999).contains(&chrono::Datelike::year(&created_at)) {
            return None;
        }
        Some(Keyset { created_at, id: Uuid::parse_str(id).ok()? })
    }
}

/// A row that can be paged: its position in the `(created_at, id)` order.
pub trait Paged {
    fn keyset(&self) -> Keyset;
}

impl<T: Paged> Paged for std::sync::Arc<T> {
    fn keyset(&self) -> Keyset {
        T::keyset(self)
    }
}

macro_rules! paged {
    ($($row:ty),+) => {$(
        impl Paged for $row {
            fn keyset(&self) -> Keyset {
                Keyset { created_at: self.created_at, id: self.id.0 }
            }
        }
    )+};
}

paged!(super::companies::CompanyRow, super::contacts::ContactRow, super::services::ServiceRow);

/// One page request: rows strictly after `after`, at most `limit` of them.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub after: Option<Keyset>,
    pub limit: i64,
}

/// Escapes `%`, `_` and `\` so user text matches literally inside ILIKE.
pub fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Applies the keyset condition and order to a boxed query of a table with
/// `created_at` and `id` columns.
macro_rules! keyset_page {
    ($query:expr, $table:ident, $page:expr) => {{
        let mut q = $query;
        if let Some(k) = $page.after {
            q = q.filter(
                $table::created_at
                    .gt(k.created_at)
                    .or($table::created_at.eq(k.created_at).and($table::id.gt(k.id))),
            );
        }
        q.order(($table::created_at.asc(), $table::id.asc())).limit($page.limit)
    }};
}
pub(crate) use keyset_page;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let k = Keyset {
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("valid"),
            id: Uuid::from_u128(42),
        };
        assert_eq!(Keyset::decode(&k.encode()), Some(k));
        assert_eq!(Keyset::decode("not-a-cursor"), None);
        assert_eq!(Keyset::decode(""), None);
        let forged = |micros: i64| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(format!("{micros}|{}", uuid::Uuid::nil()))
        };
        assert_eq!(Keyset::decode(&forged(i64::MAX)), None);
        assert_eq!(Keyset::decode(&forged(-100_000_000_000_000_000)), None);
        assert!(Keyset::decode(&forged(0)).is_some());
    }

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
