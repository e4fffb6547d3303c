//! The catalog: SQLite (WAL) records of blobs, shares, downloads and verified ranges (and, in `index.rs`, the
//! full-text index of shared names).
//!
//! One connection behind a mutex: every statement is short, and one writer is what SQLite wants anyway.
//! Paths are stored as raw bytes so that non-UTF-8 file names survive.

use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use shoal_proto::transfer::ChunkSpan;

use crate::{ContentId, StoreError};

/// Version 2 added the `names` full-text index (see `index.rs`), version 3 an index server's `registry`.
const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS blobs (
    id BLOB PRIMARY KEY,
    size INTEGER NOT NULL,
    data_path BLOB NOT NULL,
    mtime_ns INTEGER,
    state TEXT NOT NULL CHECK (state IN ('complete', 'partial', 'stale')),
    verified BLOB NOT NULL DEFAULT x'',
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS shares (
    id BLOB PRIMARY KEY,
    name TEXT NOT NULL,
    path BLOB NOT NULL,
    size INTEGER NOT NULL,
    is_collection INTEGER NOT NULL,
    added_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    id BLOB PRIMARY KEY,
    what TEXT NOT NULL,
    output BLOB,
    state TEXT NOT NULL CHECK (state IN ('running', 'paused')),
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS downloads (
    id BLOB PRIMARY KEY,
    name TEXT NOT NULL,
    out_path BLOB NOT NULL,
    size INTEGER NOT NULL,
    is_collection INTEGER NOT NULL,
    state TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS registry (
    peer BLOB PRIMARY KEY,
    saved BLOB NOT NULL,
    heard_at_ms INTEGER NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS names USING fts5(
    name, id UNINDEXED, size UNINDEXED, root UNINDEXED, collection UNINDEXED,
    tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3'
);
";

/// Where a blob's bytes are and how far they are verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BlobState {
    Complete,
    Partial,
    /// A shared file changed after it was hashed: never served under this id again.
    Stale,
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

/// Something this peer shares.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ShareRecord {
    /// Root id (a file's id, or a folder's collection id).
    pub id: ContentId,
    /// Display name (file or folder name).
    pub name: String,
    /// Where it is on disk.
    pub path: PathBuf,
    /// Bytes (for a folder: the sum of its files).
    pub size: u64,
    /// True for a folder.
    pub is_collection: bool,
}

/// A download the daemon was asked for and has not finished: resumed when the daemon starts again.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DownloadRequestRecord {
    /// Root id.
    pub id: ContentId,
    /// The ticket or id as given.
    pub what: String,
    /// The output path as given.
    pub output: Option<PathBuf>,
    /// `running` or `paused`.
    pub state: String,
}

/// A download this peer started.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DownloadRecord {
    /// Root id.
    pub id: ContentId,
    /// Display name.
    pub name: String,
    /// Output path.
    pub out_path: PathBuf,
    /// Bytes.
    pub size: u64,
    /// True for a folder.
    pub is_collection: bool,
    /// `running`, `done` or `failed`.
    pub state: String,
}

pub(crate) struct Catalog {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// The catalog predates the name index: the store fills it from the shares.
    pub(crate) needs_reindex: bool,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn path_bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

fn bytes_path(b: Vec<u8>) -> PathBuf {
    PathBuf::from(std::ffi::OsString::from_vec(b))
}

pub(crate) fn id_from(b: Vec<u8>) -> rusqlite::Result<ContentId> {
    let arr: [u8; 32] = b.try_into().map_err(|_| rusqlite::Error::InvalidQuery)?;
    Ok(ContentId(arr))
}

impl Catalog {
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError::Catalog { path: path.to_owned(), source };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(err)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(err)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerCatalog { path: path.to_owned(), version });
        }
        conn.execute_batch(SCHEMA).map_err(err)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(err)?;
        Ok(Self { conn: Mutex::new(conn), path: path.to_owned(), needs_reindex: version == 1 })
    }

    pub(crate) fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        // A poisoned lock means a panic mid-statement; SQLite itself rolled the statement back.
        let conn = crate::lock(&self.conn);
        f(&conn).map_err(|source| StoreError::Catalog { path: self.path.clone(), source })
    }

    pub(crate) fn put_blob(&self, row: &BlobRow) -> Result<(), StoreError> {
        let state = match row.state {
            BlobState::Complete => "complete",
            BlobState::Partial => "partial",
            BlobState::Stale => "stale",
        };
        let verified = postcard::to_stdvec(&row.verified).unwrap_or_default();
        self.with(|c| {
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
        })
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

    pub(crate) fn set_state_stale(&self, id: &ContentId) -> Result<(), StoreError> {
        self.with(|c| c.execute("UPDATE blobs SET state = 'stale' WHERE id = ?1", params![id.as_bytes()]).map(|_| ()))
    }

    pub(crate) fn remove_blob(&self, id: &ContentId) -> Result<(), StoreError> {
        self.with(|c| c.execute("DELETE FROM blobs WHERE id = ?1", params![id.as_bytes()]).map(|_| ()))
    }

    pub(crate) fn put_share(&self, s: &ShareRecord) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO shares (id, name, path, size, is_collection, added_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![s.id.as_bytes(), s.name, path_bytes(&s.path), s.size as i64, s.is_collection, now_secs()],
            )
            .map(|_| ())
        })
    }

    pub(crate) fn shares(&self) -> Result<Vec<ShareRecord>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT id, name, path, size, is_collection FROM shares ORDER BY added_at, name")?;
            let rows = st.query_map([], |r| {
                Ok(ShareRecord {
                    id: id_from(r.get(0)?)?,
                    name: r.get(1)?,
                    path: bytes_path(r.get(2)?),
                    size: r.get::<_, i64>(3)? as u64,
                    is_collection: r.get(4)?,
                })
            })?;
            rows.collect()
        })
    }

    pub(crate) fn put_download(&self, d: &DownloadRecord) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO downloads (id, name, out_path, size, is_collection, state, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    d.id.as_bytes(),
                    d.name,
                    path_bytes(&d.out_path),
                    d.size as i64,
                    d.is_collection,
                    d.state,
                    now_secs()
                ],
            )
            .map(|_| ())
        })
    }

    pub(crate) fn downloads(&self) -> Result<Vec<DownloadRecord>, StoreError> {
        self.with(|c| {
            let mut st =
                c.prepare("SELECT id, name, out_path, size, is_collection, state FROM downloads ORDER BY updated_at")?;
            let rows = st.query_map([], |r| {
                Ok(DownloadRecord {
                    id: id_from(r.get(0)?)?,
                    name: r.get(1)?,
                    out_path: bytes_path(r.get(2)?),
                    size: r.get::<_, i64>(3)? as u64,
                    is_collection: r.get(4)?,
                    state: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Removes a share; returns whether there was one.
    pub(crate) fn remove_share(&self, id: &ContentId) -> Result<bool, StoreError> {
        self.with(|c| c.execute("DELETE FROM shares WHERE id = ?1", params![id.as_bytes()]).map(|n| n > 0))
    }

    pub(crate) fn put_request(&self, r: &DownloadRequestRecord) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO requests (id, what, output, state, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![r.id.as_bytes(), r.what, r.output.as_deref().map(path_bytes), r.state, now_secs()],
            )
            .map(|_| ())
        })
    }

    pub(crate) fn remove_request(&self, id: &ContentId) -> Result<(), StoreError> {
        self.with(|c| c.execute("DELETE FROM requests WHERE id = ?1", params![id.as_bytes()]).map(|_| ()))
    }

    pub(crate) fn requests(&self) -> Result<Vec<DownloadRequestRecord>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT id, what, output, state FROM requests ORDER BY updated_at")?;
            let rows = st.query_map([], |r| {
                Ok(DownloadRequestRecord {
                    id: id_from(r.get(0)?)?,
                    what: r.get(1)?,
                    output: r.get::<_, Option<Vec<u8>>>(2)?.map(bytes_path),
                    state: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }

    /// True when `id` was downloaded here (it keeps being served after it is unshared).
    pub(crate) fn was_downloaded(&self, id: &ContentId) -> Result<bool, StoreError> {
        self.with(|c| {
            c.query_row("SELECT EXISTS(SELECT 1 FROM downloads WHERE id = ?1)", params![id.as_bytes()], |r| r.get(0))
        })
    }

    /// True when `id` was shared or downloaded as a collection.
    pub(crate) fn is_collection(&self, id: &ContentId) -> Result<bool, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT EXISTS(SELECT 1 FROM shares WHERE id = ?1 AND is_collection)
                     OR EXISTS(SELECT 1 FROM downloads WHERE id = ?1 AND is_collection)",
                params![id.as_bytes()],
                |r| r.get(0),
            )
        })
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
