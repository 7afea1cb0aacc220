//! Relay cursor connections over keyset pages.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, OutputType, SimpleObject};

use crate::db::page::{Keyset, PageRequest, Paged};
use crate::error::{AppError, AppResult};

pub const DEFAULT_PAGE: i32 = 20;
pub const MAX_PAGE: i32 = 100;

#[derive(SimpleObject, Debug, Clone, Copy)]
pub struct Totals {
    /// How many objects match the filter, across all pages.
    pub total_count: i64,
}

pub type Conn<N> = Connection<String, N, Totals>;

/// A connection costs its page size times what each node costs, so the
/// complexity limit sees `first: 100` as a hundred nodes.
pub fn cost(first: Option<i32>, child_complexity: usize) -> usize {
    let first = first.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE) as usize;
    first.saturating_mul(child_complexity)
}

/// Validates `first` and `after`; the request fetches one row more than the
/// page so `hasNextPage` needs no second query.
pub fn page_request(first: Option<i32>, after: Option<String>) -> AppResult<(PageRequest, usize)> {
    let first = first.unwrap_or(DEFAULT_PAGE);
    if !(0..=MAX_PAGE).contains(&first) {
        return Err(AppError::bad_input("first", format!("must be between 0 and {MAX_PAGE}")));
    }
    let after = match after {
        None => None,
        Some(c) => Some(
            Keyset::decode(&c)
                .ok_or_else(|| AppError::bad_input("after", "is not a cursor this API issued"))?,
        ),
    };
    Ok((PageRequest { after, limit: i64::from(first) + 1 }, first as usize))
}

/// Whether the client selected `totalCount`, so the count query runs only then.
pub fn wants_total(ctx: &Context<'_>) -> bool {
    ctx.look_ahead().field("totalCount").exists()
}

pub fn build<R: Paged, N: OutputType>(
    mut rows: Vec<R>,
    first: usize,
    after: bool,
    total: i64,
    wrap: impl Fn(R) -> N,
) -> Conn<N> {
    let has_next = rows.len() > first;
    rows.truncate(first);
    let mut conn =
        Connection::with_additional_fields(after, has_next, Totals { total_count: total });
    conn.edges.extend(rows.into_iter().map(|r| Edge::new(r.keyset().encode(), wrap(r))));
    conn
}

/// A listing's rows (shared, as the loader holds them) and, when
/// `totalCount` is selected, its total, from the data module's `list` and
/// `count` on one connection. The connection is
/// returned before nodes are built: holding it while the loader takes
/// connections of its own would deadlock the pool once requests outnumber
/// connections.
macro_rules! rows_and_total {
    ($ctx:expr, $($module:ident)::+, ($($arg:expr),*), $page:expr $(, $cols:expr)?) => {{
        let mut conn = $ctx.conn().await?;
        let rows = $($module)::+::list(&mut conn, $($arg,)* $page $(, $cols)?).await?;
        let total = if $crate::graphql::connection::wants_total($ctx) {
            $($module)::+::count(&mut conn, $($arg),*).await?
        } else {
            0
        };
        drop(conn);
        (rows.into_iter().map(std::sync::Arc::new).collect::<Vec<_>>(), total)
    }};
}
pub(crate) use rows_and_total;
