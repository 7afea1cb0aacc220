//! Reads that fetch only the columns a request can serve.
//!
//! A dashboard shows a handful of a contact's 35 columns; fetching all of them
//! cost PostgreSQL and the gateway most of a read (docs/performance.md). A
//! projected read selects the row's *fact* columns (what the policy, the
//! keyset and the relations need: always fetched) and the columns of the
//! fields the request names; the others are left at a placeholder
//! ([`Unfetched`]) in the row. The GraphQL layer derives the names from the
//! whole document (every field name anywhere in it), so a row loaded for one
//! place serves every other place the same request reads it from; code that
//! needs a whole row (writes, reports, explanations) reads with
//! [`Columns::all`].
//!
//! The statement text depends only on which columns are fetched, so it is
//! prepared once per connection and combination, like any other read.

use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use diesel::expression::{
    is_aggregate, AppearsOnTable, Expression, SelectableExpression, ValidGrouping,
};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::Untyped;
use diesel::QueryResult;

use crate::register::ResourceKind;

/// The value an unfetched column holds in a projected row: never served,
/// since the request names no field that reads it.
pub trait Unfetched {
    fn unfetched() -> Self;
}

impl<T> Unfetched for Option<T> {
    fn unfetched() -> Self {
        None
    }
}

impl Unfetched for String {
    fn unfetched() -> Self {
        String::new()
    }
}

impl Unfetched for bool {
    fn unfetched() -> Self {
        false
    }
}

impl Unfetched for DateTime<Utc> {
    fn unfetched() -> Self {
        DateTime::UNIX_EPOCH
    }
}

/// A row type whose reads can be projected.
pub trait Projected: Sized {
    /// The resource whose field declarations (`crate::register`) map the
    /// request's field names to columns.
    const KIND: ResourceKind;
    const TABLE: &'static str;
    /// Every column, in the row's field order (at most 64).
    const COLUMNS: &'static [&'static str];
    /// The columns every read fetches: the id, the keyset, the relations and
    /// every fact the policy decides on (`authz::Record`).
    const FACTS: &'static [&'static str];
}

/// Which columns of `R`'s table a read selects: the `SELECT` list.
pub struct Columns<R> {
    mask: u64,
    row: PhantomData<fn() -> R>,
}

impl<R> Clone for Columns<R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<R> Copy for Columns<R> {}

impl<R> std::fmt::Debug for Columns<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Columns({:#x})", self.mask)
    }
}

impl<R> PartialEq for Columns<R> {
    fn eq(&self, other: &Self) -> bool {
        self.mask == other.mask
    }
}

impl<R: Projected> Columns<R> {
    fn bit(column: &str) -> u64 {
        R::COLUMNS.iter().position(|c| *c == column).map_or(0, |i| 1 << i)
    }

    /// Every column: a whole row.
    pub fn all() -> Self {
        let n = R::COLUMNS.len();
        Columns { mask: if n >= 64 { u64::MAX } else { (1 << n) - 1 }, row: PhantomData }
    }

    /// The facts and the columns of the named GraphQL fields of `R::KIND`;
    /// names that are no field of it are ignored. Once the table has used
    /// as many column sets as `shapes` admits, a new one is every column.
    pub fn for_fields<'a>(names: impl IntoIterator<Item = &'a str>, shapes: &Shapes) -> Self {
        let wanted = Self::exactly(names);
        if shapes.admit(R::TABLE, wanted.mask) {
            wanted
        } else {
            Self::all()
        }
    }

    /// [`Self::for_fields`] without the bound.
    fn exactly<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut mask = R::FACTS.iter().fold(0, |m, c| m | Self::bit(c));
        for name in names {
            if let Some(column) = R::KIND.field(name).and_then(|f| f.column) {
                mask |= Self::bit(column);
            }
        }
        Columns { mask, row: PhantomData }
    }

    pub fn has(&self, column: &str) -> bool {
        self.mask & Self::bit(column) != 0
    }

    /// The selected columns, in the row's order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        R::COLUMNS.iter().enumerate().filter(|(i, _)| self.mask & (1 << i) != 0).map(|(_, c)| *c)
    }
}

/// How many column sets of one table get statements of their own.
pub const MAX_SHAPES: usize = 64;

/// The column sets in use by one pool's connections, per table. Each set has
/// its own statement text, and each connection prepares (and keeps) every
/// text it runs: documents naming ever new combinations of fields would grow
/// every connection's statement cache, here and in PostgreSQL, without end.
/// So the first [`MAX_SHAPES`] sets of a table are admitted and any later new
/// one reads every column (one statement more, the one writes use). An
/// application's documents are a fixed few; junk sent first costs later
/// documents their projection, never their answer.
pub struct Shapes {
    max: usize,
    admitted: std::sync::Mutex<Vec<(&'static str, u64)>>,
}

impl Default for Shapes {
    fn default() -> Self {
        Shapes::new(MAX_SHAPES)
    }
}

impl Shapes {
    pub const fn new(max: usize) -> Self {
        Shapes { max, admitted: std::sync::Mutex::new(Vec::new()) }
    }

    /// How many column sets of `table` have statements of their own.
    pub fn count(&self, table: &str) -> usize {
        let admitted = self.admitted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        admitted.iter().filter(|(t, _)| *t == table).count()
    }

    /// Whether `mask` of `table` may have a statement of its own.
    pub fn admit(&self, table: &'static str, mask: u64) -> bool {
        let mut admitted = self.admitted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if admitted.iter().any(|(t, m)| *t == table && *m == mask) {
            return true;
        }
        if admitted.iter().filter(|(t, _)| *t == table).count() >= self.max {
            return false;
        }
        admitted.push((table, mask));
        true
    }
}

/// The select clause of a projected read: untyped, so rows are built by
/// column name (`QueryableByName`, see [`projected_row`]).
pub struct Select<R, T> {
    columns: Columns<R>,
    table: PhantomData<fn() -> T>,
}

impl<R, T> Select<R, T> {
    pub fn new(columns: Columns<R>) -> Self {
        Select { columns, table: PhantomData }
    }
}

impl<R, T> Clone for Select<R, T> {
    fn clone(&self) -> Self {
        Select { columns: self.columns, table: PhantomData }
    }
}

impl<R, T> Expression for Select<R, T> {
    type SqlType = Untyped;
}

impl<R, T> ValidGrouping<()> for Select<R, T> {
    type IsAggregate = is_aggregate::No;
}

impl<R, T, QS> AppearsOnTable<QS> for Select<R, T> where T: diesel::Table {}
impl<R, T, QS> SelectableExpression<QS> for Select<R, T> where T: diesel::Table {}

// The statement's text is the cache key (no static query id): one prepared
// statement per combination of columns, as for any dynamic query.
impl<R, T> QueryId for Select<R, T> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<R: Projected, T> QueryFragment<Pg> for Select<R, T> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        for (i, column) in self.columns.names().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_identifier(R::TABLE)?;
            out.push_sql(".");
            out.push_identifier(column)?;
        }
        Ok(())
    }
}

/// Declares a row projectable: its columns in field order, its facts, and a
/// `QueryableByName` that fills the columns a read did not select with
/// [`Unfetched`] values (a missing fact is an error: it would decide wrongly).
macro_rules! projected_row {
    ($Row:ident, $table:ident = $name:literal, $kind:expr, facts [$($fact:ident),+ $(,)?], [$($col:ident),+ $(,)?]) => {
        impl $crate::db::project::Projected for $Row {
            const KIND: $crate::register::ResourceKind = $kind;
            const TABLE: &'static str = $name;
            const COLUMNS: &'static [&'static str] = &[$(stringify!($col)),+];
            const FACTS: &'static [&'static str] = &[$(stringify!($fact)),+];
        }

        impl diesel::deserialize::QueryableByName<diesel::pg::Pg> for $Row {
            fn build<'a>(
                row: &impl diesel::row::NamedRow<'a, diesel::pg::Pg>,
            ) -> diesel::deserialize::Result<Self> {
                use diesel::row::Field as _;
                $(#[allow(non_snake_case)] let mut $col = None;)+
                for i in 0..row.field_count() {
                    let Some(field) = diesel::row::Row::get(row, i) else { continue };
                    match field.field_name() {
                        $(Some(stringify!($col)) => {
                            $col = Some(<_ as diesel::deserialize::FromSql<
                                <$table::$col as diesel::Expression>::SqlType,
                                diesel::pg::Pg,
                            >>::from_nullable_sql(field.value())?);
                        })+
                        _ => {}
                    }
                }
                const FACTS: &[&str] = &[$(stringify!($fact)),+];
                $(if FACTS.contains(&stringify!($col)) && $col.is_none() {
                    return Err(format!(
                        "{}.{} was not selected but is a fact",
                        stringify!($table),
                        stringify!($col)
                    )
                    .into());
                })+
                Ok($Row {
                    $($col: $col.unwrap_or_else($crate::db::project::Unfetched::unfetched),)+
                })
            }
        }
    };
}
pub(crate) use projected_row;

/// The columns one request reads of each projectable table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projection {
    pub companies: Columns<super::companies::CompanyRow>,
    pub contacts: Columns<super::contacts::ContactRow>,
    pub services: Columns<super::services::ServiceRow>,
    pub confidential: Columns<super::confidential::ConfidentialRow>,
}

impl Projection {
    /// Whole rows.
    pub fn all() -> Self {
        Projection {
            companies: Columns::all(),
            contacts: Columns::all(),
            services: Columns::all(),
            confidential: Columns::all(),
        }
    }

    /// The facts and the columns of every field named in `names`, whatever
    /// type the name belongs to (a superset: a name selected on one type
    /// fetches the same-named column of the others), within `shapes`.
    pub fn for_fields(names: &[&str], shapes: &Shapes) -> Self {
        let names = || names.iter().copied();
        Projection {
            companies: Columns::for_fields(names(), shapes),
            contacts: Columns::for_fields(names(), shapes),
            services: Columns::for_fields(names(), shapes),
            confidential: Columns::for_fields(names(), shapes),
        }
    }
}

impl Default for Projection {
    fn default() -> Self {
        Projection::all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::contacts::ContactRow;
    use crate::db::services::ServiceRow;

    #[test]
    fn a_projection_keeps_the_facts_and_the_named_fields_columns() {
        let c = Columns::<ContactRow>::exactly(["firstName", "email", "services", "nosuch"]);
        let names: Vec<_> = c.names().collect();
        assert_eq!(
            names,
            [
                "id",
                "company_id",
                "first_name",
                "email",
                "registered_by",
                "restricted",
                "objection_pending",
                "marketing_objection",
                "created_at",
                "erased_at"
            ]
        );
        assert!(!c.has("last_name") && !c.has("legal_basis"));
        // The relation `contact` of a service reads its column.
        assert!(Columns::<ServiceRow>::exactly(["contact"]).has("contact_id"));
        assert_eq!(Columns::<ContactRow>::all().names().count(), 35);
    }

    fn every_field_fetches_its_column_named_alone<R: Projected>() {
        assert!(R::COLUMNS.len() <= 64, "{}: a mask holds 64 columns", R::TABLE);
        for fact in R::FACTS {
            assert!(R::COLUMNS.contains(fact), "{}.{fact} is no column", R::TABLE);
        }
        for f in R::KIND.fields() {
            let (Some(field), Some(column)) = (f.graphql, f.column) else { continue };
            assert!(R::COLUMNS.contains(&column), "{}.{column} is not a column", R::TABLE);
            let c = Columns::<R>::exactly([field]);
            assert!(c.has(column), "{field} alone does not fetch {}.{column}", R::TABLE);
            assert!(R::FACTS.iter().all(|f| c.has(f)));
        }
        // A document naming no field of the table fetches its facts only.
        assert_eq!(Columns::<R>::exactly([]).names().collect::<Vec<_>>(), R::FACTS);
    }

    #[test]
    fn every_declared_field_fetches_its_column() {
        every_field_fetches_its_column_named_alone::<crate::db::companies::CompanyRow>();
        every_field_fetches_its_column_named_alone::<ContactRow>();
        every_field_fetches_its_column_named_alone::<ServiceRow>();
        every_field_fetches_its_column_named_alone::<crate::db::confidential::ConfidentialRow>();
    }

    #[test]
    fn a_table_gets_at_most_its_bound_of_column_sets_and_then_every_column() {
        let shapes = Shapes::new(2);
        assert!(shapes.admit("contacts", 0b1));
        assert!(shapes.admit("contacts", 0b11));
        assert!(shapes.admit("contacts", 0b1), "an admitted set stays admitted");
        assert!(!shapes.admit("contacts", 0b111), "a third new set reads every column");
        assert!(shapes.admit("services", 0b111), "each table has its own bound");
    }

    #[test]
    fn the_select_list_quotes_qualified_columns() {
        use diesel::query_builder::QueryBuilder;
        let c = Columns::<ServiceRow>::exactly(["kind"]);
        let select = Select::<ServiceRow, crate::db::schema::services::table>::new(c);
        let mut qb = diesel::pg::PgQueryBuilder::default();
        QueryFragment::<Pg>::to_sql(&select, &mut qb, &Pg).expect("sql");
        assert_eq!(
            qb.finish(),
            r#""services"."id", "services"."kind", "services"."provider", "services"."company_id", "services"."contact_id", "services"."created_at""#
        );
    }
}
