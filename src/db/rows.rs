//! The statements every register table shares, written once. A table's module
//! invokes these for its row type; what differs (filters, what else a write
//! touches) stays in the module. Each write logs its change in the same
//! transaction, so no write path can forget the change log.

/// Reading and writing one row by id: `lock` (for the rest of the
/// transaction), `by_id` (whoever may see it: explanations, replays), `insert`
/// with its change-log rows (then `$after`, if given, e.g. touching the
/// parents' retention clock), and the row's change-log identity.
macro_rules! row_statements {
    ($table:ident, $Row:ident, $Id:ty, $New:ty, $entity:expr $(, after_insert: $after:ident)?) => {
        impl $crate::db::change_log::Logged for $Row {
            const ENTITY: $crate::db::Entity = $entity;
            fn entity_id(&self) -> uuid::Uuid {
                self.id.0
            }
        }

        /// Locks the row for the rest of the transaction.
        pub async fn lock(conn: &mut AsyncPgConnection, id: $Id) -> QueryResult<Option<$Row>> {
            $table::table
                .find(id)
                .for_update()
                .select($Row::as_select())
                .first(conn)
                .await
                .optional()
        }

        /// One row by id, whoever may see it (explaining decisions, replays).
        pub async fn by_id(conn: &mut AsyncPgConnection, id: $Id) -> QueryResult<Option<$Row>> {
            $table::table
                .find(id)
                .select($Row::as_select())
                .first(conn)
                .await
                .optional()
        }

        pub async fn insert(
            conn: &mut AsyncPgConnection,
            author: &$crate::db::ChangeAuthor,
            new: &$New,
        ) -> QueryResult<$Row> {
            let row: $Row = diesel::insert_into($table::table)
                .values(new)
                .returning($Row::as_returning())
                .get_result(conn)
                .await?;
            $crate::db::change_log::log(conn, author, None, Some(&row)).await?;
            $( $after(conn, &row).await?; )?
            Ok(row)
        }
    };
}
pub(crate) use row_statements;

/// Deleting a row, with its change-log rows (not every table may be deleted
/// from: data subject requests stay).
macro_rules! delete_statement {
    ($table:ident, $Row:ident) => {
        pub async fn delete(
            conn: &mut AsyncPgConnection,
            author: &$crate::db::ChangeAuthor,
            old: &$Row,
        ) -> QueryResult<()> {
            diesel::delete($table::table.find(old.id)).execute(conn).await?;
            $crate::db::change_log::log(conn, author, Some(old), None).await?;
            Ok(())
        }
    };
}
pub(crate) use delete_statement;

/// Updates the row `$old` (as locked in the same transaction) with `$set`,
/// logs the change and evaluates to the new row; `?` leaves the caller.
macro_rules! update_logged {
    ($conn:expr, $author:expr, $table:ident, $Row:ident, $old:expr, $set:expr) => {{
        let old: &$Row = $old;
        let new: $Row = diesel::update($table::table.find(old.id))
            .set($set)
            .returning($Row::as_returning())
            .get_result($conn)
            .await?;
        $crate::db::change_log::log($conn, $author, Some(old), Some(&new)).await?;
        new
    }};
}
pub(crate) use update_logged;

/// Erasure (docs/register.md): every personal column `$kind` declares is
/// cleared and the tombstone set in one statement; the change log records it
/// and then the values of every change of the record (this one included) are
/// redacted.
macro_rules! erase_statement {
    ($table:ident, $Row:ident, $kind:expr) => {
        pub async fn erase(
            conn: &mut AsyncPgConnection,
            author: &$crate::db::ChangeAuthor,
            old: &$Row,
        ) -> QueryResult<$Row> {
            $crate::db::tombstone(conn, $kind, old.id.0, author).await?;
            let new = by_id(conn, old.id).await?.ok_or(diesel::result::Error::NotFound)?;
            $crate::db::change_log::log(conn, author, Some(old), Some(&new)).await?;
            $crate::db::change_log::redact(
                conn,
                <$Row as $crate::db::change_log::Logged>::ENTITY,
                old.id.0,
                None,
            )
            .await?;
            Ok(new)
        }
    };
}
pub(crate) use erase_statement;

/// Reads under the policy's row visibility (`crate::db::visible`): rows by
/// their own or a parent's ids, in the register's `(created_at, id)` order,
/// one statement for any number of keys (the loader's batches).
macro_rules! visible_reads {
    ($table:ident, $Row:ident; $($name:ident($column:ident: $Key:ty)),+) => {
        fn visible_sql(
            vis: &$crate::db::visible::Visible,
        ) -> $crate::db::visible::Condition<$table::table> {
            vis.condition::<$table::table>()
        }

        $(
            pub async fn $name(
                conn: &mut AsyncPgConnection,
                ids: &[$Key],
                vis: &$crate::db::visible::Visible,
                cols: $crate::db::project::Columns<$Row>,
            ) -> QueryResult<Vec<$Row>> {
                $table::table
                    .filter($table::$column.eq_any(ids))
                    .filter(visible_sql(vis))
                    .order(($table::created_at.asc(), $table::id.asc()))
                    .select($crate::db::project::Select::<$Row, $table::table>::new(cols))
                    .load::<$Row>(conn)
                    .await
            }
        )+
    };
}
pub(crate) use visible_reads;

/// A filtered listing's page and total, from the module's
/// `filtered(&$Filter, &Visible)` query. The total of an unfiltered listing
/// is summed from the table's visible counts (migration 000007) under the
/// same visibility condition: constant time, whatever the table's size.
macro_rules! page_reads {
    ($table:ident, $Row:ident, $Filter:ty, counts: $counts:ident) => {
        pub async fn list(
            conn: &mut AsyncPgConnection,
            f: &$Filter,
            vis: &$crate::db::visible::Visible,
            page: $crate::db::page::PageRequest,
            cols: $crate::db::project::Columns<$Row>,
        ) -> QueryResult<Vec<$Row>> {
            $crate::db::page::keyset_page!(filtered(f, vis), $table, page)
                .select($crate::db::project::Select::<$Row, $table::table>::new(cols))
                .load::<$Row>(conn)
                .await
        }

        pub async fn count(
            conn: &mut AsyncPgConnection,
            f: &$Filter,
            vis: &$crate::db::visible::Visible,
        ) -> QueryResult<i64> {
            if *f != <$Filter>::default() {
                return filtered(f, vis).count().get_result(conn).await;
            }
            use $crate::db::schema::$counts as counts;
            let total: Option<i64> = counts::table
                .filter(vis.condition::<counts::table>())
                .select(diesel::dsl::sum(counts::n))
                .first(conn)
                .await?;
            Ok(total.unwrap_or(0))
        }
    };
}
pub(crate) use page_reads;

/// A filter's `WHERE` terms: one per field that is set, built by `|v| term`
/// from the field's value (cloned, so the boxed query owns what it binds).
macro_rules! narrow {
    ($q:ident, $f:expr; $($field:ident => |$v:ident| $term:expr),+ $(,)?) => {
        $(if let Some($v) = $f.$field.clone() {
            $q = $q.filter($term);
        })+
    };
}
pub(crate) use narrow;
