//! The catalog's integrity check (`shoal doctor`, and the crash tests): SQLite's own check, then the
//! invariants that Shoal's transactions keep between tables and files. After a crash at any step, every one
//! of them must hold; a problem found names what is wrong and what to do.

use bao_tree::BaoTree;
use rusqlite::Connection;

use crate::outboard::BLOCK_SIZE;
use crate::{ContentId, Store, StoreError};

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// What is wrong, in a sentence that says what to do.
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

fn ids(c: &Connection, sql: &str) -> rusqlite::Result<Vec<ContentId>> {
    let mut st = c.prepare(sql)?;
    let rows = st.query_map([], |r| r.get::<_, [u8; 32]>(0).map(ContentId))?;
    rows.collect()
}

impl Store {
    /// Checks the catalog and the files it points to; an empty list when everything holds.
    pub fn check(&self) -> Result<Vec<Problem>, StoreError> {
        let mut problems = Vec::new();
        let mut say = |what: String| problems.push(Problem { what });
        let (integrity, unlisted, orphans, complete) = self.catalog.with(|c| {
            let mut st = c.prepare("PRAGMA integrity_check")?;
            let integrity: Vec<String> = st.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
            let unlisted = ids(c, "SELECT id FROM shares WHERE id NOT IN (SELECT id FROM blobs)")?;
            let orphans = ids(c, "SELECT DISTINCT root FROM names WHERE root NOT IN (SELECT id FROM shares)")?;
            let mut st = c.prepare("SELECT id, size FROM blobs WHERE state = 'complete'")?;
            let complete: Vec<(ContentId, u64)> = st
                .query_map([], |r| Ok((ContentId(r.get::<_, [u8; 32]>(0)?), r.get::<_, i64>(1)? as u64)))?
                .collect::<rusqlite::Result<_>>()?;
            Ok((integrity, unlisted, orphans, complete))
        })?;
        if integrity != ["ok"] {
            say(format!(
                "the catalog database is damaged ({}); move shoal.db aside and share again",
                integrity.join("; ")
            ));
        }
        for id in unlisted {
            say(format!("share {id} has no blob record; unshare it and share it again"));
        }
        for id in orphans {
            say(format!("the name index lists {id}, which is not shared; it is rebuilt when shoal next starts"));
        }
        let unindexed =
            self.catalog.with(|c| ids(c, "SELECT id FROM shares WHERE id NOT IN (SELECT root FROM names)"))?;
        if !unindexed.is_empty() {
            say("the name index misses some shares; it is rebuilt when shoal next starts".into());
        }
        for (id, size) in complete {
            let want = BaoTree::new(size, BLOCK_SIZE).outboard_size();
            if want == 0 {
                continue;
            }
            let path = self.outboard_path(&id);
            match std::fs::metadata(&path) {
                Ok(m) if m.len() == want => {}
                Ok(m) => {
                    say(format!("outboard {} has {} bytes, not {want}; share the file again", path.display(), m.len()))
                }
                Err(e) => say(format!("outboard {} of a complete blob: {e}; share the file again", path.display())),
            }
        }
        Ok(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_healthy_store_has_no_problem_and_each_broken_invariant_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("home")).unwrap();
        let f = dir.path().join("a.bin");
        std::fs::write(&f, vec![7u8; 100_000]).unwrap();
        let info = store.share(&f).unwrap();
        assert_eq!(store.check().unwrap(), Vec::new());
        std::fs::write(store.outboard_path(&info.id), b"short").unwrap();
        let p = store.check().unwrap();
        assert!(p.len() == 1 && p[0].what.contains("not"), "{p:?}");
        store.catalog.with(|c| c.execute_batch("DELETE FROM blobs")).unwrap();
        let p = store.check().unwrap();
        assert!(p.iter().any(|p| p.what.contains("has no blob record")), "{p:?}");
    }
}
