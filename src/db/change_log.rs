//! "Information about changes to these data": one row per changed field,
//! written in the same transaction as the change.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use super::schema::change_log;
use super::{ChangeAuthor, Entity, OrgCode};

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = change_log, check_for_backend(diesel::pg::Pg))]
pub struct ChangeRow {
    pub id: i64,
    pub entity: Entity,
    pub entity_id: Uuid,
    pub field: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub redacted: bool,
    pub changed_by: String,
    pub changed_by_org: OrgCode,
    pub changed_at: DateTime<Utc>,
    pub request_id: Option<String>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = change_log)]
struct NewChange<'a> {
    entity: Entity,
    entity_id: Uuid,
    field: &'a str,
    old_value: Option<String>,
    new_value: Option<String>,
    changed_by: &'a str,
    changed_by_org: OrgCode,
    request_id: Option<&'a str>,
}

/// Columns that change on every write and say nothing about the data.
const BOOKKEEPING: &[&str] = &["id", "created_at", "updated_at"];

/// The fields that differ between two serialisations of a row, with their old
/// and new values as text. `old` is `None` for a created row, `new` for a
/// deleted one.
pub fn diff<T: Serialize>(
    old: Option<&T>,
    new: Option<&T>,
) -> Vec<(String, Option<String>, Option<String>)> {
    let as_map = |row: Option<&T>| match row.map(serde_json::to_value) {
        Some(Ok(serde_json::Value::Object(map))) => map,
        _ => serde_json::Map::new(),
    };
    let (old, new) = (as_map(old), as_map(new));
    let mut fields: Vec<&String> = old.keys().chain(new.keys()).collect();
    fields.sort();
    fields.dedup();
    fields
        .into_iter()
        .filter(|f| !BOOKKEEPING.contains(&f.as_str()))
        .filter_map(|f| {
            let (o, n) = (text(old.get(f)), text(new.get(f)));
            (o != n).then(|| (f.clone(), o, n))
        })
        .collect()
}

fn text(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Writes the change log rows for one entity's change; returns how many.
async fn record<T: Serialize>(
    conn: &mut AsyncPgConnection,
    author: &ChangeAuthor,
    entity: Entity,
    entity_id: Uuid,
    old: Option<&T>,
    new: Option<&T>,
) -> QueryResult<usize> {
    let changes = diff(old, new);
    if changes.is_empty() {
        return Ok(0);
    }
    let rows: Vec<NewChange<'_>> = changes
        .iter()
        .map(|(field, old_value, new_value)| NewChange {
            entity,
            entity_id,
            field,
            old_value: old_value.clone(),
            new_value: new_value.clone(),
            changed_by: &author.sub,
            changed_by_org: author.org,
            request_id: author.request_id.as_deref(),
        })
        .collect();
    diesel::insert_into(change_log::table).values(&rows).execute(conn).await
}

/// A row type whose changes are logged: which entity it is and its id.
pub trait Logged: Serialize {
    const ENTITY: Entity;
    fn entity_id(&self) -> Uuid;
}

/// [`record`] for a row type that knows its entity and id.
pub async fn log<T: Logged>(
    conn: &mut AsyncPgConnection,
    author: &ChangeAuthor,
    old: Option<&T>,
    new: Option<&T>,
) -> QueryResult<usize> {
    let Some(id) = old.or(new).map(Logged::entity_id) else {
        return Ok(0);
    };
    record(conn, author, T::ENTITY, id, old, new).await
}

/// Erasure: the old and new values of every change of one entity are
/// removed; which field changed, when and by whom stays.
pub async fn redact(
    conn: &mut AsyncPgConnection,
    entity: Entity,
    entity_id: Uuid,
    only_field: Option<&str>,
) -> QueryResult<usize> {
    let mut q = diesel::update(change_log::table)
        .filter(change_log::entity.eq(entity))
        .filter(change_log::entity_id.eq(entity_id))
        .into_boxed();
    if let Some(f) = only_field {
        q = q.filter(change_log::field.eq(f.to_owned()));
    }
    q.set((
        change_log::old_value.eq(None::<String>),
        change_log::new_value.eq(None::<String>),
        change_log::redacted.eq(true),
    ))
    .execute(conn)
    .await
}

/// Change log rows of many entities at once, oldest first (for the loader).
pub async fn for_entities(
    conn: &mut AsyncPgConnection,
    entity: Entity,
    ids: &[Uuid],
) -> QueryResult<Vec<ChangeRow>> {
    change_log::table
        .filter(change_log::entity.eq(entity))
        .filter(change_log::entity_id.eq_any(ids))
        .order((change_log::changed_at.asc(), change_log::id.asc()))
        .select(ChangeRow::as_select())
        .load(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row {
        id: u32,
        updated_at: &'static str,
        name: Option<&'static str>,
        count: i32,
    }

    #[test]
    fn diff_lists_changed_fields_only() {
        let a = Row { id: 1, updated_at: "x", name: Some("A"), count: 1 };
        let b = Row { id: 1, updated_at: "y", name: None, count: 2 };
        assert_eq!(
            diff(Some(&a), Some(&b)),
            vec![
                ("count".into(), Some("1".into()), Some("2".into())),
                ("name".into(), Some("A".into()), None),
            ]
        );
        // A created row logs each non-null field once.
        assert_eq!(diff(None, Some(&a)).len(), 2);
    }
}
