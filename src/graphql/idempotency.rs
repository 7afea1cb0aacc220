//! Idempotency keys on the create mutations (`idempotencyKey`): a create
//! repeated with the same key, by the same actor, within a day answers with
//! the record the first one made; the same key with other arguments is
//! refused. The key is recorded in the create's own transaction, so a key
//! exists exactly when its record was committed.

use async_graphql::Context;
use diesel_async::AsyncPgConnection;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::ContextExt;
use crate::db::idempotency::{self, KeyRow};
use crate::error::{AppError, AppResult};

const FIELD: &str = "idempotencyKey";

/// A create mutation's key and what it was asked.
pub struct Idempotent {
    key: String,
    operation: String,
    hash: Vec<u8>,
}

impl Idempotent {
    /// The mutation's key, checked; `None` when the client gave none.
    pub fn of(ctx: &Context<'_>, key: Option<String>) -> AppResult<Option<Self>> {
        let Some(key) = key else { return Ok(None) };
        let ok = (8..=128).contains(&key.len())
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if !ok {
            return Err(AppError::bad_input(
                FIELD,
                "is 8 to 128 characters of letters, digits and - _ . : (a UUID will do)",
            ));
        }
        let mut hash = Sha256::new();
        let arguments = ctx.field().arguments().map_err(|e| AppError::internal_msg(e.message))?;
        for (name, value) in arguments {
            if name.as_str() == FIELD {
                continue;
            }
            hash.update(name.as_bytes());
            hash.update([0]);
            hash.update(canonical(&value.into_json().map_err(AppError::internal)?).as_bytes());
            hash.update([0]);
        }
        Ok(Some(Idempotent {
            key,
            operation: ctx.field().name().to_owned(),
            hash: hash.finalize().to_vec(),
        }))
    }

    /// The id of the record an earlier request with this key made, if any.
    pub async fn replayed(&self, ctx: &Context<'_>) -> AppResult<Option<Uuid>> {
        let actor = ctx.actor()?;
        let found =
            idempotency::find(&mut *ctx.conn().await?, actor.org, &actor.sub, &self.key).await?;
        match found {
            None => Ok(None),
            Some(k) if k.operation == self.operation && k.request_hash == self.hash => {
                Ok(Some(k.resource_id))
            }
            Some(_) => Err(AppError::bad_input(
                FIELD,
                "was used for a different request in the last day; use a new key",
            )),
        }
    }

    /// Records the key with the record made, in the create's transaction.
    pub async fn record(
        &self,
        conn: &mut AsyncPgConnection,
        ctx: &Context<'_>,
        resource: Uuid,
    ) -> AppResult<()> {
        let actor = ctx.actor()?;
        let row = KeyRow {
            org: actor.org,
            sub: actor.sub.clone(),
            key: self.key.clone(),
            operation: self.operation.clone(),
            request_hash: self.hash.clone(),
            resource_id: resource,
            created_at: ctx.now(),
        };
        idempotency::insert(conn, &row).await.map_err(|e| match e {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => AppError::bad_input(
                FIELD,
                "is in use by a request still running; repeat this one when it has answered",
            ),
            other => other.into(),
        })
    }
}

/// The record an earlier request with the same key made, if a key was given.
pub async fn replay(ctx: &Context<'_>, idem: &Option<Idempotent>) -> AppResult<Option<Uuid>> {
    match idem {
        Some(i) => i.replayed(ctx).await,
        None => Ok(None),
    }
}

/// JSON with object keys sorted, so the hash does not depend on the order a
/// client wrote its input in.
fn canonical(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", serde_json::Value::from(k.as_str()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        serde_json::Value::Array(items) => {
            format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn canonical_json_ignores_key_order_only() {
        let a = serde_json::json!({"b": 1, "a": {"d": [1, 2], "c": "x"}});
        let b = serde_json::json!({"a": {"c": "x", "d": [1, 2]}, "b": 1});
        let c = serde_json::json!({"a": {"c": "x", "d": [2, 1]}, "b": 1});
        assert_eq!(canonical(&a), canonical(&b));
        assert_ne!(canonical(&a), canonical(&c));
    }
}
