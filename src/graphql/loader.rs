//! One DataLoader reader for every key type: a nested query costs one SQL
//! statement per level, whatever the number of parent rows. A loader lives for
//! one request, so its cache never carries one actor's rows to another.

use std::collections::HashMap;
use std::hash::Hash;

use async_graphql::dataloader::Loader;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

use crate::authz::Visibility;
use crate::db::change_log::ChangeRow;
use crate::db::companies::CompanyRow;
use crate::db::confidential::ConfidentialRow;
use crate::db::contacts::ContactRow;
use crate::db::project::{Projection, Shapes};
use crate::db::services::ServiceRow;
use crate::db::{self, CompanyId, ContactId, Entity, PgPool, ServiceId};
use crate::error::AppError;
use std::sync::Arc;

/// The loader's per-request cache: keyed by ids, hashed with foldhash
/// (randomly seeded, several times cheaper than SipHash on a uuid).
pub type LoaderCache = async_graphql::dataloader::HashMapCache<foldhash::fast::RandomState>;

/// Reads only what the actor may see: every query carries the actor's
/// visibility, and selects the columns the request's document can serve
/// (its rows are read by field resolvers only; see [`projection`]).
pub struct DbReader {
    pool: PgPool,
    vis: Arc<Visibility>,
    cols: Projection,
}

impl DbReader {
    pub fn new(pool: PgPool, vis: Arc<Visibility>, cols: Projection) -> Self {
        DbReader { pool, vis, cols }
    }
}

/// The columns a document can ask for: those of every field name anywhere in
/// it (each operation, each fragment), whatever type it is selected on. A
/// superset of what the executed operation reads, so a row loaded for one
/// place serves all the others.
pub fn projection(doc: &ExecutableDocument, shapes: &Shapes) -> Projection {
    fn names<'a>(set: &'a SelectionSet, out: &mut Vec<&'a str>) {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    out.push(f.node.name.node.as_str());
                    names(&f.node.selection_set.node, out);
                }
                Selection::InlineFragment(f) => names(&f.node.selection_set.node, out),
                Selection::FragmentSpread(_) => {}
            }
        }
    }
    let mut out = Vec::new();
    for (_, op) in doc.operations.iter() {
        names(&op.node.selection_set.node, &mut out);
    }
    for f in doc.fragments.values() {
        names(&f.node.selection_set.node, &mut out);
    }
    out.sort_unstable();
    out.dedup();
    Projection::for_fields(&out, shapes)
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

/// Rows are shared (`Arc`): the loader's cache hands the same row to every
/// place that reads it, without copying its strings.
fn by_key<K: Hash + Eq, V>(rows: Vec<V>, key: impl Fn(&V) -> K) -> HashMap<K, Arc<V>> {
    rows.into_iter().map(|r| (key(&r), Arc::new(r))).collect()
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

fn shared<V>(rows: Vec<V>) -> Vec<Arc<V>> {
    rows.into_iter().map(Arc::new).collect()
}

macro_rules! loader {
    ($key:ty => $value:ty, |$conn:ident, $keys:ident, $vis:ident, $cols:ident| $body:expr) => {
        impl Loader<$key> for DbReader {
            type Value = $value;
            type Error = AppError;

            async fn load(&self, $keys: &[$key]) -> Result<HashMap<$key, $value>, AppError> {
                let mut conn = self.pool.get().await?;
                let $conn = &mut *conn;
                let $vis = &*self.vis;
                let $cols = self.cols;
                Ok($body)
            }
        }
    };
}

loader!(CompanyId => Arc<CompanyRow>, |conn, keys, vis, cols| by_key(db::companies::by_ids(conn, keys, &vis.companies, cols.companies).await?, |r| r.id));
loader!(ContactId => Arc<ContactRow>, |conn, keys, vis, cols| by_key(db::contacts::by_ids(conn, keys, &vis.contacts, cols.contacts).await?, |r| r.id));
loader!(ServiceId => Arc<ServiceRow>, |conn, keys, vis, cols| by_key(db::services::by_ids(conn, keys, &vis.services, cols.services).await?, |r| r.id));
loader!(ContactsOf => Vec<Arc<ContactRow>>, |conn, keys, vis, cols| {
    let ids: Vec<CompanyId> = keys.iter().map(|k| k.0).collect();
    grouped(keys, shared(db::contacts::by_company_ids(conn, &ids, &vis.contacts, cols.contacts).await?), |r| ContactsOf(r.company_id))
});
loader!(ServicesOfCompany => Vec<Arc<ServiceRow>>, |conn, keys, vis, cols| {
    let ids: Vec<CompanyId> = keys.iter().map(|k| k.0).collect();
    grouped(keys, shared(db::services::by_company_ids(conn, &ids, &vis.services, cols.services).await?), |r| ServicesOfCompany(r.company_id))
});
loader!(ServicesOfContact => Vec<Arc<ServiceRow>>, |conn, keys, vis, cols| {
    let ids: Vec<ContactId> = keys.iter().map(|k| k.0).collect();
    let rows = shared(db::services::by_contact_ids(conn, &ids, &vis.services, cols.services).await?);
    // by_contact_ids returns only rows with a contact.
    grouped(keys, rows, |r| ServicesOfContact(r.contact_id.unwrap_or(ContactId(uuid::Uuid::nil()))))
});
loader!(ConfidentialOf => Vec<Arc<ConfidentialRow>>, |conn, keys, vis, cols| {
    let ids: Vec<CompanyId> = keys.iter().map(|k| k.0).collect();
    grouped(keys, shared(db::confidential::by_company_ids(conn, &ids, &vis.confidential, cols.confidential).await?), |r| ConfidentialOf(r.company_id))
});
loader!(ChangesOfContact => Vec<ChangeRow>, |conn, keys, _vis, _cols| {
    let ids: Vec<uuid::Uuid> = keys.iter().map(|k| k.0 .0).collect();
    grouped(keys, db::change_log::for_entities(conn, Entity::Contact, &ids).await?, |r| ChangesOfContact(ContactId(r.entity_id)))
});
