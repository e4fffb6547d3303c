//! Errors of the store.

use std::path::PathBuf;

/// What went wrong in the store. Messages name the file and say what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file or directory could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing ("reading", "creating" ...).
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The disk filled up while a download was being written; what was verified is kept.
    #[error("disk full while writing {path}: free some space and run the same command again to resume")]
    DiskFull {
        /// The file being written.
        path: PathBuf,
    },
    /// There is not room for the whole download, found before anything was written (nothing is kept).
    #[error("not enough free space for {size} bytes at {path}: free some space (or choose another -o) and try again")]
    NoSpace {
        /// The file that was to be created.
        path: PathBuf,
        /// Bytes it needs.
        size: u64,
    },
    /// The catalog database failed.
    #[error("catalog {path}: {source}")]
    Catalog {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The catalog was written by a newer Shoal.
    #[error("catalog {path} has schema version {version}, newer than this shoal understands: upgrade shoal")]
    NewerCatalog {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        version: i64,
    },
    /// The path is not something that can be shared.
    #[error("cannot share {path}: {why}")]
    NotShareable {
        /// The path given.
        path: PathBuf,
        /// Why not.
        why: String,
    },
    /// A collection is malformed or hostile.
    #[error("invalid collection: {0}")]
    Collection(String),
    /// Another download of the same blob is writing into this data directory (another command, or the
    /// daemon): one writer per partial download.
    #[error("another download of {0} is already writing into this data directory; wait for it to finish or cancel it")]
    InUse(crate::ContentId),
    /// A destination already exists.
    #[error("{0} already exists; choose another output path or remove it first")]
    Exists(PathBuf),
    /// A messaging record was refused (a contact name, a duplicate contact); the text says why.
    #[error("{0}")]
    Messages(String),
}

impl StoreError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| {
            if source.raw_os_error() == Some(libc::ENOSPC) {
                StoreError::DiskFull { path }
            } else {
                StoreError::Io { action, path, source }
            }
        }
    }
}
