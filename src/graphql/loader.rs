//! One DataLoader reader for every key type: a nested query costs one SQL
//! statement per level, whatever the number of parent rows. A loader lives for
//! one request, so its cache never carries one actor's rows to another.

use std::collections::HashMap;
use std::hash::Hash;

use async_graphql::dataloader::Loader;

use crate::authz::Visibility;
use crate::db::change_log::ChangeRow;
use crate::db::companies::CompanyRow;
use crate::db::confidential::ConfidentialRow;
use crate::db::contacts::ContactRow;
use crate::db::services::ServiceRow;
use crate::db::{self, CompanyId, ContactId, Entity, PgPool, ServiceId};
use crate::error::AppError;
use std::sync::Arc;

/// Reads only what the actor may see: every query carries the actor's visibility.
pub struct DbReader {
    pool: PgPool,
    vis: Arc<Visibility>,
}

impl DbReader {
    pub fn new(pool: PgPool, vis: Arc<Visibility>) -> Self {
        DbReader { pool, vis }
    }
}

/// Contacts of a company.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContactsOf(pub CompanyId);
/// Services received by a company.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServicesOfCompany(pub CompanyId);
/// Services received by a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServicesOfContact(pub ContactId);
/// Confidential rows of a company, one per registering controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConfidentialOf(pub CompanyId);
/// Change log of a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChangesOfContact(pub ContactId);

fn by_key<K: Hash + Eq, V>(rows: Vec<V>, key: impl Fn(&V) -> K) -> HashMap<K, V> {
    rows.into_iter().map(|r| (key(&r), r)).collect()
}

/// Groups rows under their parent key; every requested key gets a (possibly empty) list.
fn grouped<K: Hash + Eq + Copy, V>(
    keys: &[K],
    rows: Vec<V>,
    key: impl Fn(&V) -> K,
) -> HashMap<K, Vec<V>> {
    let mut map: HashMap<K, Vec<V>> = keys.iter().map(|k| (*k, Vec::new())).collect();
    for row in rows {
        map.entry(key(&row)).or_default().push(row);
    }
    map
}

macro_rules! loader {
    ($key:ty => $value:ty, |$conn:ident, $keys:ident, $vis:ident| $body:expr) => {
        impl Loader<$key> for DbReader {
            type Value = $value;
            type Error = AppError;

            async fn load(&self, $keys: &[$key]) -> Result<HashMap<$key, $value>, AppError> {
                let mut conn = self.pool.get().await?;
                let $conn = &mut *conn;
                let $vis = &*self.vis;
                Ok($body)
            }
        }
    };
}

loader!(CompanyId => CompanyRow, |conn, keys, vis| by_key(db::companies::by_ids(conn, keys, &vis.companies).await?, |r| r.id));
loader!(ContactId => ContactRow, |conn, keys, vis| by_key(db::contacts::by_ids(conn, keys, &vis.contacts).await?, |r| r.id));
loader!(ServiceId => ServiceRow, |conn, keys, vis| by_key(db::services::by_ids(conn, keys, &vis.services).await?, |r| r.id));
loader!(ContactsOf => Vec<ContactRow>, |conn, keys, vis| {
    let ids: Vec<CompanyId> = keys.iter().map(|k| k.0).collect();
    grouped(keys, db::contacts::by_company_ids(conn, &ids, &vis.contacts).await?, |r| ContactsOf(r.company_id))
});
loader!(ServicesOfCompany => Vec<ServiceRow>, |conn, keys, vis| {
    let ids: Vec<CompanyId> = keys.iter().map(|k| k.0).collect();
    grouped(keys, db::services::by_company_ids(conn, &ids, &vis.services).await?, |r| ServicesOfCompany(r.company_id))
});
loader!(ServicesOfContact => Vec<ServiceRow>, |conn, keys, vis| {
    let ids: Vec<ContactId> = keys.iter().map(|k| k.0).collect();
    let rows = db::services::by_contact_ids(conn, &ids, &vis.services).await?;
    // by_contact_ids returns only rows with a contact.
    grouped(keys, rows, |r| ServicesOfContact(r.contact_id.unwrap_or(ContactId(uuid::Uuid::nil()))))
});
loader!(ConfidentialOf => Vec<ConfidentialRow>, |conn, keys, vis| {
    let ids: Vec<CompanyId> = keys.iter().map(|k| k.0).collect();
    grouped(keys, db::confidential::by_company_ids(conn, &ids, &vis.confidential).await?, |r| ConfidentialOf(r.company_id))
});
loader!(ChangesOfContact => Vec<ChangeRow>, |conn, keys, _vis| {
    let ids: Vec<uuid::Uuid> = keys.iter().map(|k| k.0 .0).collect();
    grouped(keys, db::change_log::for_entities(conn, Entity::Contact, &ids).await?, |r| ChangesOfContact(ContactId(r.entity_id)))
});
