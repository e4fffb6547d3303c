//! The catalog: one SQLite database (`shoal.db`, WAL) behind one connection, and the helpers every table
//! module uses. Each concern keeps its own table in its own module: `blobs.rs` (what bytes are where and
//! how far verified), `shares.rs`, `downloads.rs`, `index.rs` (the full-text index of shared names),
//! `registry.rs` (an index server's copy of other peers' lists); `migrations.rs` builds the schema.
//!
//! One connection behind a mutex: every statement is short, and one writer is what SQLite wants anyway.
//! Table functions take a `&Connection`, so that a change touching several tables runs them in one
//! transaction ([`Catalog::tx`]). Paths are stored as raw bytes so that non-UTF-8 file names survive.

use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::Connection;

use crate::migrations::{self, MigrateError};
use crate::{ContentId, StoreError};

pub(crate) struct Catalog {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// The catalog predates the name index: the store fills it from the shares.
    pub(crate) needs_reindex: bool,
}

pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

pub(crate) fn path_bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

pub(crate) fn bytes_path(b: Vec<u8>) -> PathBuf {
    PathBuf::from(std::ffi::OsString::from_vec(b))
}

pub(crate) fn id_from(b: Vec<u8>) -> rusqlite::Result<ContentId> {
    let arr: [u8; 32] = b.try_into().map_err(|_| rusqlite::Error::InvalidQuery)?;
    Ok(ContentId(arr))
}

impl Catalog {
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError::Catalog { path: path.to_owned(), source };
        let mut conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(err)?;
        let migrated = migrations::migrate(&mut conn).map_err(|e| match e {
            MigrateError::Newer(version) => StoreError::NewerCatalog { path: path.to_owned(), version },
            MigrateError::Sql(source) => StoreError::Catalog { path: path.to_owned(), source },
        })?;
        if migrated.from > 0 && migrated.from < migrations::MIGRATIONS.len() {
            tracing::info!(path = %path.display(), from = migrated.from, to = migrations::MIGRATIONS.len(), "catalog upgraded");
        }
        Ok(Self { conn: Mutex::new(conn), path: path.to_owned(), needs_reindex: migrated.reindex })
    }

    /// Runs `f` on the connection.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        // A poisoned lock means a panic mid-statement; SQLite itself rolled the statement back.
        let conn = crate::lock(&self.conn);
        f(&conn).map_err(|source| StoreError::Catalog { path: self.path.clone(), source })
    }

    /// Runs `f` in one transaction: all of its statements take effect, or (an error, a crash) none.
    pub(crate) fn tx<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
    }
}
