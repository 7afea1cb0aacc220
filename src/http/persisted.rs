//! Automatic persisted queries (Apollo's protocol, docs/cache.md): a client
//! sends `extensions.persistedQuery.sha256Hash` instead of the document; the
//! first time, or when the gateway does not know the hash, it is answered
//! `PersistedQueryNotFound` and sends the document with the hash, which is
//! checked and stored (in process and in Redis, for every replica).

use async_graphql::{Request, Value};
use sha2::{Digest, Sha256};

use super::HttpState;

/// Documents larger than this are executed but not kept: a client may not
/// fill the shared store with large texts (dashboards' queries are a few KB).
const MAX_PERSISTED_BYTES: usize = 64 * 1024;

/// Why a request's persisted query cannot be used.
pub enum Refused {
    /// The hash is unknown here: the client sends the document with it.
    NotFound,
    /// Malformed, or the document does not have that hash.
    Bad(String),
}

/// The request's `persistedQuery` extension: its hash, if it has one.
fn requested_hash(request: &Request) -> Result<Option<[u8; 32]>, Refused> {
    let Some(ext) = request.extensions.get("persistedQuery") else {
        return Ok(None);
    };
    let Value::Object(ext) = ext else {
        return Err(Refused::Bad("extensions.persistedQuery must be an object".to_owned()));
    };
    match ext.get("version") {
        Some(Value::Number(n)) if n.as_u64() == Some(1) => {}
        _ => return Err(Refused::Bad("persistedQuery.version must be 1".to_owned())),
    }
    let hash = match ext.get("sha256Hash") {
        Some(Value::String(h)) => h,
        _ => return Err(Refused::Bad("persistedQuery.sha256Hash must be a string".to_owned())),
    };
    let mut bytes = [0u8; 32];
    match hex::decode_to_slice(hash, &mut bytes) {
        Ok(()) if hash.len() == 64 => Ok(Some(bytes)),
        _ => {
            Err(Refused::Bad("persistedQuery.sha256Hash must be 64 hexadecimal digits".to_owned()))
        }
    }
}

impl HttpState {
    /// Resolves a persisted query: the document from its hash, or the
    /// document sent with its hash checked and stored. A request without the
    /// extension is left as it is.
    pub(super) async fn persisted(&self, request: &mut Request) -> Result<(), Refused> {
        let Some(hash) = requested_hash(request)? else {
            return Ok(());
        };
        let cache = &self.app.cache;
        if request.query.is_empty() {
            let text = cache.persisted_query(&hash).await.ok_or(Refused::NotFound)?;
            request.query = text.to_string();
            return Ok(());
        }
        let actual: [u8; 32] = Sha256::digest(request.query.as_bytes()).into();
        if actual != hash {
            return Err(Refused::Bad(
                "persistedQuery.sha256Hash is not the SHA-256 of the query".to_owned(),
            ));
        }
        if request.query.len() <= MAX_PERSISTED_BYTES {
            cache.persist_query(hash, &request.query);
        }
        Ok(())
    }
}
