//! The `blobs` table: every blob this peer can serve or is downloading, where its bytes are, and which
//! ranges of a partial one are verified.

use rusqlite::{Connection, OptionalExtension, params};
use shoal_proto::transfer::ChunkSpan;

use crate::catalog::{Catalog, bytes_path, id_from, now_secs, path_bytes};
use crate::{ContentId, StoreError};
use std::path::PathBuf;

/// Where a blob's bytes are and how far they are verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BlobState {
    Complete,
    Partial,
    /// A shared file changed after it was hashed: never served under this id again.
    Stale,
}

impl BlobState {
    fn as_str(&self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Partial => "partial",
            Self::Stale => "stale",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct BlobRow {
    pub(crate) id: ContentId,
    pub(crate) size: u64,
    pub(crate) data_path: PathBuf,
    pub(crate) mtime_ns: Option<i64>,
    pub(crate) state: BlobState,
    pub(crate) verified: Vec<ChunkSpan>,
}

/// Inserts or replaces a blob's row.
pub(crate) fn put(c: &Connection, row: &BlobRow) -> rusqlite::Result<()> {
    let state = row.state.as_str();
    let verified = postcard::to_stdvec(&row.verified).unwrap_or_default();
    c.execute(
        "INSERT INTO blobs (id, size, data_path, mtime_ns, state, verified, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(id) DO UPDATE SET size=?2, data_path=?3, mtime_ns=?4, state=?5, verified=?6, updated_at=?7",
        params![
            row.id.as_bytes(),
            row.size as i64,
            path_bytes(&row.data_path),
            row.mtime_ns,
            state,
            verified,
            now_secs()
        ],
    )
    .map(|_| ())
}

/// Removes a blob's row.
pub(crate) fn remove(c: &Connection, id: &ContentId) -> rusqlite::Result<()> {
    c.execute("DELETE FROM blobs WHERE id = ?1", params![id.as_bytes()]).map(|_| ())
}

impl Catalog {
    pub(crate) fn put_blob(&self, row: &BlobRow) -> Result<(), StoreError> {
        self.with(|c| put(c, row))
    }

    pub(crate) fn blob(&self, id: &ContentId) -> Result<Option<BlobRow>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT size, data_path, mtime_ns, state, verified FROM blobs WHERE id = ?1",
                params![id.as_bytes()],
                |r| {
                    let state: String = r.get(3)?;
                    let verified: Vec<u8> = r.get(4)?;
                    Ok(BlobRow {
                        id: *id,
                        size: r.get::<_, i64>(0)? as u64,
                        data_path: bytes_path(r.get(1)?),
                        mtime_ns: r.get(2)?,
                        state: match state.as_str() {
                            "complete" => BlobState::Complete,
                            "partial" => BlobState::Partial,
                            _ => BlobState::Stale,
                        },
                        verified: postcard::from_bytes(&verified).unwrap_or_default(),
                    })
                },
            )
            .optional()
        })
    }

    pub(crate) fn set_verified(&self, id: &ContentId, spans: &[ChunkSpan]) -> Result<(), StoreError> {
        let verified = postcard::to_stdvec(spans).unwrap_or_default();
        self.with(|c| {
            c.execute(
                "UPDATE blobs SET verified = ?2, updated_at = ?3 WHERE id = ?1 AND state = 'partial'",
                params![id.as_bytes(), verified, now_secs()],
            )
            .map(|_| ())
        })
    }

    /// Marks `row`'s blob stale if its row still says what `row` does (path, mtime, state); whether it did.
    /// A row that changed meanwhile (a download completed and moved the file) is left alone.
    pub(crate) fn set_state_stale_if_unchanged(&self, row: &BlobRow) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE blobs SET state = 'stale' WHERE id = ?1 AND data_path = ?2 AND mtime_ns IS ?3 AND state = ?4",
                params![row.id.as_bytes(), path_bytes(&row.data_path), row.mtime_ns, row.state.as_str()],
            )
            .map(|n| n == 1)
        })
    }

    pub(crate) fn remove_blob(&self, id: &ContentId) -> Result<(), StoreError> {
        self.with(|c| remove(c, id))
    }

    /// Ids of every blob that can be served (complete or partial): what to announce in the DHT.
    pub(crate) fn servable_ids(&self) -> Result<Vec<ContentId>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT id FROM blobs WHERE state IN ('complete', 'partial')")?;
            let rows = st.query_map([], |r| id_from(r.get(0)?))?;
            rows.collect()
        })
    }
}
