//! The search index (the `names` table): the names of what this peer shares, searchable by word prefixes.
//!
//! SQLite FTS5 with the `unicode61` tokenizer folding case and accents, so `holid pho` finds
//! `Holiday Photos 2024.zip` and `noel` finds `Noël`. A shared file is one row; a shared folder is one row for
//! the folder (its collection id) and one per file inside it (the file's own id, which can be fetched alone).
//! Rows carry the root id of the share they belong to, so unsharing removes them all. A provider lookup by
//! content id does not use the index: any blob this peer can serve answers it, downloaded ones included.

use rusqlite::{Connection, ToSql, params};
use shoal_proto::search::{Filters, Query, Want, keywords};

use crate::catalog::{Catalog, id_from};
use crate::{ContentId, Entry, StoreError};

/// Most hits one local lookup returns.
pub const MAX_LOCAL_HITS: usize = 256;

/// Something in the local index that matches a query.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LocalHit {
    /// Content id.
    pub id: ContentId,
    /// File or folder name.
    pub name: String,
    /// Bytes (for a folder: the sum of its files).
    pub size: u64,
    /// True for a folder.
    pub collection: bool,
}

/// An FTS5 query for `text`: every word as a quoted prefix, all required. `None` when there is no word.
pub(crate) fn match_expr(text: &str) -> Option<String> {
    let words = keywords::words(text);
    // Folded words hold letters and digits only, so quoting them needs no escaping.
    (!words.is_empty()).then(|| words.iter().map(|w| format!("\"{w}\"*")).collect::<Vec<_>>().join(" AND "))
}

/// A row of `SELECT id, name, size, collection FROM names`.
fn hit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LocalHit> {
    Ok(LocalHit { id: id_from(r.get(0)?)?, name: r.get(1)?, size: r.get::<_, i64>(2)? as u64, collection: r.get(3)? })
}

fn ext_ok(ext: &str) -> bool {
    !ext.is_empty() && ext.len() <= 16 && ext.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Replaces the rows of share `root` with its name and, for a folder, its files' names (inside the caller's
/// transaction: sharing is one change).
pub(crate) fn index_share(
    c: &Connection,
    root: &ContentId,
    name: &str,
    size: u64,
    files: &[Entry],
) -> rusqlite::Result<()> {
    c.execute("DELETE FROM names WHERE root = ?1", params![root.as_bytes()])?;
    let mut ins = c.prepare("INSERT INTO names (name, id, size, root, collection) VALUES (?1, ?2, ?3, ?4, ?5)")?;
    ins.execute(params![name, root.as_bytes(), size as i64, root.as_bytes(), !files.is_empty()])?;
    for f in files {
        let file_name = f.path.rsplit('/').next().unwrap_or(&f.path);
        ins.execute(params![file_name, f.id.as_bytes(), f.size as i64, root.as_bytes(), false])?;
    }
    Ok(())
}

/// Removes share `root`'s rows.
pub(crate) fn unindex_share(c: &Connection, root: &ContentId) -> rusqlite::Result<()> {
    c.execute("DELETE FROM names WHERE root = ?1", params![root.as_bytes()]).map(|_| ())
}

impl Catalog {
    /// Whether the name index and the shares disagree: a share it does not list, or rows of a share that is
    /// gone (each share is indexed in the transaction that records it, and unindexed in the one that removes
    /// it, so only an interrupted fill of the index leaves this true).
    pub(crate) fn index_is_behind(&self) -> Result<bool, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT EXISTS(SELECT 1 FROM shares WHERE id NOT IN (SELECT root FROM names))
                     OR EXISTS(SELECT 1 FROM names WHERE root NOT IN (SELECT id FROM shares))",
                [],
                |r| r.get(0),
            )
        })
    }

    /// Every indexed name (for publishing keywords).
    pub(crate) fn indexed_names(&self) -> Result<Vec<String>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT DISTINCT name FROM names")?;
            let rows = st.query_map([], |r| r.get(0))?;
            rows.collect()
        })
    }

    /// Every indexed name with its id (one row per id), for an index server's copy of our list.
    pub(crate) fn indexed_entries(&self) -> Result<Vec<LocalHit>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT id, name, size, collection FROM names GROUP BY id")?;
            let rows = st.query_map([], hit_row)?;
            rows.collect()
        })
    }

    pub(crate) fn search_words(&self, text: &str, f: &Filters, limit: usize) -> Result<Vec<LocalHit>, StoreError> {
        let Some(expr) = match_expr(text) else { return Ok(Vec::new()) };
        let mut sql = String::from(
            "SELECT id, name, size, collection FROM names WHERE names MATCH ?1
             AND size >= ?2 AND size <= ?3",
        );
        let min = f.min_size.unwrap_or(0).min(i64::MAX as u64) as i64;
        let max = f.max_size.unwrap_or(u64::MAX).min(i64::MAX as u64) as i64;
        let pattern = match f.ext.as_deref() {
            Some(e) if ext_ok(e) => Some(format!("%.{}", e.to_ascii_lowercase())),
            Some(_) => return Ok(Vec::new()),
            None => None,
        };
        if pattern.is_some() {
            sql.push_str(" AND lower(name) LIKE ?4");
        }
        sql.push_str(" ORDER BY rank LIMIT 1024");
        let mut out: Vec<LocalHit> = Vec::new();
        self.with(|c| {
            let mut st = c.prepare(&sql)?;
            let mut args: Vec<&dyn ToSql> = vec![&expr, &min, &max];
            if let Some(p) = &pattern {
                args.push(p);
            }
            let rows = st.query_map(args.as_slice(), hit_row)?;
            for row in rows {
                let hit = row?;
                if out.len() < limit && !out.iter().any(|h| h.id == hit.id) {
                    out.push(hit);
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// `id` as a hit when this peer can serve it (shared, downloaded or being downloaded).
    pub(crate) fn lookup_id(&self, id: &ContentId) -> Result<Option<LocalHit>, StoreError> {
        use rusqlite::OptionalExtension;
        self.with(|c| {
            c.query_row(
                "SELECT b.size,
                        COALESCE((SELECT name FROM names WHERE id = ?1 LIMIT 1),
                                 (SELECT name FROM downloads WHERE id = ?1), ''),
                        EXISTS(SELECT 1 FROM shares WHERE id = ?1 AND is_collection)
                          OR EXISTS(SELECT 1 FROM downloads WHERE id = ?1 AND is_collection)
                 FROM blobs b WHERE b.id = ?1 AND b.state IN ('complete', 'partial')",
                params![id.as_bytes()],
                |r| Ok(LocalHit { id: *id, size: r.get::<_, i64>(0)? as u64, name: r.get(1)?, collection: r.get(2)? }),
            )
            .optional()
        })
    }
}

impl crate::Store {
    /// What the local index has for `query` (at most `limit` distinct ids, best matches first).
    pub fn search_local(&self, query: &Query, limit: usize) -> Result<Vec<LocalHit>, StoreError> {
        let limit = limit.min(MAX_LOCAL_HITS);
        match &query.want {
            Want::Words(text) => self.catalog.search_words(text, &query.filters, limit),
            Want::Id(id) => Ok(self.catalog.lookup_id(&ContentId(*id))?.into_iter().collect()),
        }
    }

    /// Every entry in the local index, one per id.
    pub fn indexed_entries(&self) -> Result<Vec<LocalHit>, StoreError> {
        self.catalog.indexed_entries()
    }

    /// Every name in the local index.
    pub fn indexed_names(&self) -> Result<Vec<String>, StoreError> {
        self.catalog.indexed_names()
    }
}

#[cfg(test)]
mod tests;
