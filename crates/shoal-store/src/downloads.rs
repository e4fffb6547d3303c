//! Downloads in the catalog: the `requests` table (what the user asked the daemon to download, and how
//! each one ended) and the `downloads` table (what was downloaded here, which keeps it served after it is
//! unshared and tells a downloaded folder from a file).

use std::path::PathBuf;

use rusqlite::params;

use crate::catalog::{bytes_path, id_from, now_secs, path_bytes};
use crate::{ContentId, Store, StoreError};

/// Where a download the user asked for stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DownloadState {
    /// Fetching.
    Running,
    /// Stopped by the user; resuming fetches only what is missing.
    Paused,
    /// Complete and verified.
    Done,
    /// Ended with an error (the request keeps the message).
    Failed,
    /// Stopped by the user and its partial file deleted (never stored: a cancelled request is forgotten).
    Cancelled,
}

impl DownloadState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> rusqlite::Result<Self> {
        Ok(match s {
            "running" => Self::Running,
            "paused" => Self::Paused,
            "done" => Self::Done,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return Err(rusqlite::Error::InvalidQuery),
        })
    }
}

/// A download the daemon was asked for: taken up again when the daemon starts, or listed as it ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DownloadRequestRecord {
    /// Root id.
    pub id: ContentId,
    /// The ticket or id as given.
    pub what: String,
    /// The output path as given.
    pub output: Option<PathBuf>,
    /// Where it stands.
    pub state: DownloadState,
    /// Display name (empty when not known yet).
    pub name: String,
    /// Why it failed.
    pub error: Option<String>,
    /// The node's report of a finished download (JSON, opaque to the store).
    pub report: Option<String>,
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

/// True when `id` was downloaded here (it keeps being served after it is unshared).
pub(crate) fn was_downloaded(c: &rusqlite::Connection, id: &ContentId) -> rusqlite::Result<bool> {
    c.query_row("SELECT EXISTS(SELECT 1 FROM downloads WHERE id = ?1)", params![id.as_bytes()], |r| r.get(0))
}

impl Store {
    /// Records a download job.
    pub fn put_download(&self, d: &DownloadRecord) -> Result<(), StoreError> {
        self.catalog.with(|c| {
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

    /// Download jobs, oldest first.
    pub fn downloads(&self) -> Result<Vec<DownloadRecord>, StoreError> {
        self.catalog.with(|c| {
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

    /// Records (or updates) a download request, so that it survives a restart.
    pub fn put_request(&self, r: &DownloadRequestRecord) -> Result<(), StoreError> {
        self.catalog.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO requests (id, what, output, state, name, error, report, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    r.id.as_bytes(),
                    r.what,
                    r.output.as_deref().map(path_bytes),
                    r.state.as_str(),
                    r.name,
                    r.error,
                    r.report,
                    now_secs()
                ],
            )
            .map(|_| ())
        })
    }

    /// Forgets a download request (it was cancelled).
    pub fn remove_request(&self, id: &ContentId) -> Result<(), StoreError> {
        self.catalog.with(|c| c.execute("DELETE FROM requests WHERE id = ?1", params![id.as_bytes()]).map(|_| ()))
    }

    /// Every download request, oldest first.
    pub fn requests(&self) -> Result<Vec<DownloadRequestRecord>, StoreError> {
        self.catalog.with(|c| {
            let mut st = c.prepare(
                "SELECT id, what, output, state, name, error, report FROM requests ORDER BY updated_at, rowid",
            )?;
            let rows = st.query_map([], |r| {
                Ok(DownloadRequestRecord {
                    id: id_from(r.get(0)?)?,
                    what: r.get(1)?,
                    output: r.get::<_, Option<Vec<u8>>>(2)?.map(bytes_path),
                    state: DownloadState::parse(&r.get::<_, String>(3)?)?,
                    name: r.get(4)?,
                    error: r.get(5)?,
                    report: r.get(6)?,
                })
            })?;
            rows.collect()
        })
    }

    /// True when `id` is known here as a collection (a folder), shared or downloaded.
    pub fn is_collection(&self, id: &ContentId) -> Result<bool, StoreError> {
        self.catalog.with(|c| {
            c.query_row(
                "SELECT EXISTS(SELECT 1 FROM shares WHERE id = ?1 AND is_collection)
                     OR EXISTS(SELECT 1 FROM downloads WHERE id = ?1 AND is_collection)",
                params![id.as_bytes()],
                |r| r.get(0),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_keep_how_they_ended_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let id = ContentId([7; 32]);
        {
            let store = Store::open(&home).unwrap();
            let mut r = DownloadRequestRecord {
                id,
                what: id.to_string(),
                output: Some("/tmp/x".into()),
                state: DownloadState::Running,
                name: "x".into(),
                error: None,
                report: None,
            };
            store.put_request(&r).unwrap();
            r.state = DownloadState::Failed;
            r.error = Some("no provider".into());
            store.put_request(&r).unwrap();
        }
        let store = Store::open(&home).unwrap();
        let all = store.requests().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].state, all[0].error.as_deref()), (DownloadState::Failed, Some("no provider")));
        store.remove_request(&id).unwrap();
        assert!(store.requests().unwrap().is_empty());
    }
}
