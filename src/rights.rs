//! The data subject's rights as the register carries them out
//! (docs/register.md): what keeps a record from erasure, and erasure itself.
//! It knows nothing of GraphQL: the resolvers (erasure on request or
//! directly) and the retention run share it, so the rules are written once.

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;

use crate::db::companies::CompanyRow;
use crate::db::contacts::ContactRow;
use crate::db::{self, ChangeAuthor, RequestId, RequestKind};

/// Why a record may not be erased now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    Erased,
    /// A task based on law or a pending matter needs the data.
    LegalHold(Option<String>),
    /// A data subject request about the person is still open.
    OpenRequest {
        kind: RequestKind,
        id: RequestId,
    },
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blocker::Erased => write!(f, "the record is erased already"),
            Blocker::LegalHold(reason) => write!(
                f,
                "a legal hold stands ({}); lift it first",
                reason.as_deref().unwrap_or("no reason")
            ),
            Blocker::OpenRequest { kind, id } => {
                write!(f, "an open {} request ({id}) stands; resolve it first", kind.as_str())
            }
        }
    }
}

/// What keeps a contact from erasure, if anything: a tombstone already, a
/// legal hold, or an open request other than `except` (the one being
/// completed).
pub async fn contact_blocker(
    conn: &mut AsyncPgConnection,
    row: &ContactRow,
    except: Option<RequestId>,
) -> QueryResult<Option<Blocker>> {
    if row.erased_at.is_some() {
        return Ok(Some(Blocker::Erased));
    }
    if row.legal_hold {
        return Ok(Some(Blocker::LegalHold(row.legal_hold_reason.clone())));
    }
    Ok(db::requests::open_for_contact(conn, row.id, except)
        .await?
        .first()
        .map(|open| Blocker::OpenRequest { kind: open.kind, id: open.id }))
}

/// What keeps a sole trader company from erasure, if anything.
pub fn company_blocker(row: &CompanyRow) -> Option<Blocker> {
    if row.erased_at.is_some() {
        Some(Blocker::Erased)
    } else if row.legal_hold {
        Some(Blocker::LegalHold(row.legal_hold_reason.clone()))
    } else {
        None
    }
}

/// Erases a contact (checked erasable): the tombstone, the redacted change
/// log, and the identifying facts given on the person's requests.
pub async fn erase_contact(
    conn: &mut AsyncPgConnection,
    author: &ChangeAuthor,
    row: &ContactRow,
) -> QueryResult<ContactRow> {
    let erased = db::contacts::erase(conn, author, row).await?;
    db::requests::forget_subject(conn, row.id).await?;
    Ok(erased)
}

/// Erases a sole trader's personal columns (checked erasable).
pub async fn erase_company(
    conn: &mut AsyncPgConnection,
    author: &ChangeAuthor,
    row: &CompanyRow,
) -> QueryResult<CompanyRow> {
    db::companies::erase(conn, author, row).await
}
