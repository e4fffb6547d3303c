//! Shares: the `shares` table, and sharing a file or folder in place (hashed, not copied).
//!
//! Each change is one transaction over every table it touches (the blobs of a folder's files and of its
//! collection, the share row, the name index), so a crash leaves either the old state or the new one: never
//! a share whose files are not servable, nor servable files of a share that is not listed. The outboard
//! files are written (atomically) before the transaction; an outboard nobody's row points to is harmless.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};

use crate::blobs::{self, BlobRow};
use crate::catalog::{bytes_path, id_from, now_secs, path_bytes};
use crate::collection::{Collection, Entry, MAX_COLLECTION_BYTES};
use crate::{BlobInfo, ContentId, Store, StoreError, downloads, index};

/// Something this peer shares.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ShareRecord {
    /// Root id (a file's id, or a folder's collection id).
    pub id: ContentId,
    /// Display name (file or folder name).
    pub name: String,
    /// Where it is on disk.
    #[schema(value_type = String)]
    pub path: PathBuf,
    /// Bytes (for a folder: the sum of its files).
    pub size: u64,
    /// True for a folder.
    pub is_collection: bool,
}

fn put(c: &Connection, s: &ShareRecord) -> rusqlite::Result<()> {
    c.execute(
        "INSERT OR REPLACE INTO shares (id, name, path, size, is_collection, added_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![s.id.as_bytes(), s.name, path_bytes(&s.path), s.size as i64, s.is_collection, now_secs()],
    )
    .map(|_| ())
}

fn list(c: &Connection) -> rusqlite::Result<Vec<ShareRecord>> {
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
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| "unnamed".into(), |n| n.to_string_lossy().into_owned())
}

/// Records a share, its blobs and its names: one transaction.
fn record(c: &Connection, rows: &[BlobRow], share: &ShareRecord, files: &[Entry]) -> rusqlite::Result<()> {
    record_all(c, rows, share, files)?;
    crate::crash::point("share-before-commit");
    Ok(())
}

fn record_all(c: &Connection, rows: &[BlobRow], share: &ShareRecord, files: &[Entry]) -> rusqlite::Result<()> {
    for row in rows {
        blobs::put(c, row)?;
    }
    put(c, share)?;
    index::index_share(c, &share.id, &share.name, share.size, files)
}

impl Store {
    /// Shares a file or a folder (as a collection). Nothing is copied.
    pub fn share(&self, path: &Path) -> Result<BlobInfo, StoreError> {
        let meta = std::fs::metadata(path).map_err(StoreError::io("opening", path))?;
        if meta.is_dir() { self.share_dir(path) } else { self.share_file(path) }
    }

    /// Shares one regular file.
    pub fn share_file(&self, path: &Path) -> Result<BlobInfo, StoreError> {
        let path = std::fs::canonicalize(path).map_err(StoreError::io("opening", path))?;
        let meta = std::fs::metadata(&path).map_err(StoreError::io("opening", &path))?;
        if !meta.is_file() {
            return Err(StoreError::NotShareable { path, why: "not a regular file or folder".into() });
        }
        let row = self.hash_in_place(&path)?;
        let (id, size, name) = (row.id, row.size, file_name(&path));
        let share = ShareRecord { id, name: name.clone(), path, size, is_collection: false };
        self.sync_blobs()?;
        self.catalog.tx(|c| record(c, &[row], &share, &[]))?;
        Ok(BlobInfo { id, size, name, is_collection: false, files: Vec::new() })
    }

    /// Shares a folder: every regular file below it (symlinks are skipped), listed in a collection.
    pub fn share_dir(&self, dir: &Path) -> Result<BlobInfo, StoreError> {
        let dir = std::fs::canonicalize(dir).map_err(StoreError::io("opening", dir))?;
        let mut entries = Vec::new();
        let mut rows = Vec::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            let rd = std::fs::read_dir(&d).map_err(StoreError::io("listing", &d))?;
            for item in rd {
                let item = item.map_err(StoreError::io("listing", &d))?;
                let p = item.path();
                let ft = item.file_type().map_err(StoreError::io("reading", &p))?;
                if ft.is_symlink() {
                    tracing::warn!(path = %p.display(), "skipping symlink: collections hold regular files only");
                } else if ft.is_dir() {
                    stack.push(p);
                } else if ft.is_file() {
                    let rel = p.strip_prefix(&dir).unwrap_or(&p);
                    let Some(rel) = rel.to_str() else {
                        tracing::warn!(path = %p.display(), "skipping file whose name is not UTF-8");
                        continue;
                    };
                    let row = self.hash_in_place(&p)?;
                    entries.push(Entry { path: rel.to_string(), id: row.id, size: row.size });
                    rows.push(row);
                }
            }
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let collection = Collection { entries };
        let bytes = collection.encode();
        if bytes.len() as u64 > MAX_COLLECTION_BYTES {
            return Err(StoreError::NotShareable { path: dir, why: "too many files for one collection".into() });
        }
        let root = self.write_bytes(&bytes)?;
        let id = root.id;
        rows.push(root);
        let name = file_name(&dir);
        let share =
            ShareRecord { id, name: name.clone(), path: dir, size: collection.total_size(), is_collection: true };
        self.sync_blobs()?;
        self.catalog.tx(|c| record(c, &rows, &share, &collection.entries))?;
        Ok(BlobInfo { id, size: bytes.len() as u64, name, is_collection: true, files: collection.entries })
    }

    /// Stops sharing `id`: it is no longer listed nor served, and neither is any file of a shared folder that
    /// no other share and no download still needs (a blob that was downloaded here keeps being served like
    /// any completed download). The user's files are not touched. Returns `None` if `id` was not shared,
    /// else the ids no longer served (to withdraw from the network). One transaction.
    pub fn remove_share(&self, id: &ContentId) -> Result<Option<Vec<ContentId>>, StoreError> {
        self.catalog.tx(|c| {
            if c.execute("DELETE FROM shares WHERE id = ?1", params![id.as_bytes()])? == 0 {
                return Ok(None);
            }
            // The share's ids (its root and, for a folder, every file) and those other shares still list.
            let ids = |sql: &str| -> rusqlite::Result<HashSet<[u8; 32]>> {
                let mut st = c.prepare(sql)?;
                let rows = st.query_map(params![id.as_bytes()], |r| r.get::<_, [u8; 32]>(0))?;
                rows.collect()
            };
            let mut mine = ids("SELECT id FROM names WHERE root = ?1")?;
            mine.insert(id.0);
            let others = ids("SELECT DISTINCT id FROM names WHERE root != ?1")?;
            index::unindex_share(c, id)?;
            let mut gone = Vec::new();
            for raw in mine.difference(&others) {
                let blob = ContentId(*raw);
                if !downloads::was_downloaded(c, &blob)? {
                    blobs::remove(c, &blob)?;
                    gone.push(blob);
                }
            }
            gone.sort_by_key(|b| (b != id, b.0));
            crate::crash::point("unshare-before-commit");
            Ok(Some(gone))
        })
    }

    /// Everything shared, oldest first.
    pub fn shares(&self) -> Result<Vec<ShareRecord>, StoreError> {
        self.catalog.with(list)
    }

    /// Fills the name index from the shares (a catalog from before the index existed).
    pub(crate) fn reindex(&self) -> Result<(), StoreError> {
        self.catalog.with(|c| c.execute_batch("DELETE FROM names"))?;
        for s in self.shares()? {
            let files = match s.is_collection {
                true => match self.read_blob(&s.id, MAX_COLLECTION_BYTES)? {
                    Some(bytes) => Collection::decode(&bytes)?.entries,
                    None => Vec::new(),
                },
                false => Vec::new(),
            };
            self.catalog.tx(|c| index::index_share(c, &s.id, &s.name, s.size, &files))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store in a temporary directory and a file `name` holding `bytes` beside it.
    fn store_and_file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, Store, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("home")).unwrap();
        let f = dir.path().join(name);
        std::fs::write(&f, bytes).unwrap();
        (dir, store, f)
    }

    #[test]
    fn a_share_that_fails_half_way_records_nothing() {
        let (_dir, store, f) = store_and_file("a.txt", b"hello");
        let row = store.hash_in_place(&f).unwrap();
        let share = ShareRecord { id: row.id, name: "a.txt".into(), path: f.clone(), size: 5, is_collection: false };
        // The name-index step fails inside the transaction (its table is gone): the blob and share rows
        // written before it must be rolled back with it.
        store.catalog.with(|c| c.execute_batch("DROP TABLE names")).unwrap();
        assert!(store.catalog.tx(|c| record(c, std::slice::from_ref(&row), &share, &[])).is_err());
        assert!(store.shares().unwrap().is_empty());
        assert!(store.catalog.blob(&row.id).unwrap().is_none());
    }

    #[test]
    fn a_file_that_says_it_is_empty_but_is_not_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("home")).unwrap();
        let err = store.share(Path::new("/proc/self/status")).unwrap_err();
        assert!(err.to_string().contains("special file"), "{err}");
        assert!(store.shares().unwrap().is_empty());
        // A really empty file is fine.
        std::fs::write(dir.path().join("empty"), b"").unwrap();
        assert_eq!(store.share(&dir.path().join("empty")).unwrap().size, 0);
    }

    #[test]
    fn unsharing_removes_the_share_its_names_and_its_blob_together() {
        let (_dir, store, f) = store_and_file("report.pdf", b"pdf");
        let info = store.share(&f).unwrap();
        assert_eq!(store.remove_share(&info.id).unwrap(), Some(vec![info.id]));
        assert!(store.shares().unwrap().is_empty());
        assert!(store.indexed_names().unwrap().is_empty());
        assert!(store.open_served(&info.id).unwrap().is_none());
        assert_eq!(store.remove_share(&info.id).unwrap(), None);
    }

    #[test]
    fn unsharing_a_folder_stops_serving_its_files_except_those_another_share_still_lists() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("home")).unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        for (d, name, bytes) in
            [(&a, "one", &b"one"[..]), (&a, "both", b"both"), (&b, "both", b"both"), (&b, "two", b"2")]
        {
            std::fs::write(d.join(name), bytes).unwrap();
        }
        let (fa, fb) = (store.share(&a).unwrap(), store.share(&b).unwrap());
        let single = store.share(&dir.path().join("a").join("one")).unwrap();
        let id = |name: &[u8]| ContentId::of(name);
        let gone = store.remove_share(&fa.id).unwrap().unwrap();
        // The folder and none of its files: "one" is also shared on its own, "both" is in folder b.
        assert_eq!(gone, vec![fa.id]);
        for still in [id(b"one"), id(b"both"), id(b"2"), fb.id, single.id] {
            assert!(store.open_served(&still).unwrap().is_some(), "{still} stopped being served");
        }
        let mut gone = store.remove_share(&fb.id).unwrap().unwrap();
        gone.sort_by_key(|g| g.0);
        let mut want = vec![fb.id, id(b"both"), id(b"2")];
        want.sort_by_key(|g| g.0);
        assert_eq!(gone, want);
        for g in &want {
            assert!(store.open_served(g).unwrap().is_none(), "{g} is still served");
        }
        assert!(store.open_served(&id(b"one")).unwrap().is_some(), "still shared on its own");
    }
}
