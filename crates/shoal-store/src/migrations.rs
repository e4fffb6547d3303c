//! The catalog's schema, as the list of steps that build it.
//!
//! Migration `n` (counting from 1) takes a catalog from `user_version = n - 1` to `n`. Each runs in one
//! transaction together with the `user_version` update, so a crash in the middle of a migration leaves the
//! catalog exactly as it was before it (SQLite rolls the transaction back on the next open): the version can
//! never say a step was done when its work is not. A catalog whose version is newer than the list is
//! refused, not touched.
//!
//! This is what the `rusqlite_migration` crate does; its current release is built on an older `rusqlite`
//! than ours (two `rusqlite` versions cannot link SQLite twice), so the few lines are ours. Never edit a
//! migration that has shipped: add one.

use rusqlite::Connection;

/// The `requests` table as versions 1-3 had it: step 1 creates it, and step 4 creates it too if a catalog
/// from before the list of steps lacks it, before rebuilding it.
macro_rules! requests_v1 {
    () => {
        "CREATE TABLE IF NOT EXISTS requests (
            id BLOB PRIMARY KEY,
            what TEXT NOT NULL,
            output BLOB,
            state TEXT NOT NULL CHECK (state IN ('running', 'paused')),
            updated_at INTEGER NOT NULL
        );"
    };
}

/// One step: SQL, or SQL plus a flag for work the store does after it (see [`Migration::reindex`]).
pub(crate) struct Migration {
    pub(crate) sql: &'static str,
    /// The store fills the name index from the shares after this step.
    pub(crate) reindex: bool,
}

/// Every step, oldest first. Versions 1-3 are those that Shoal wrote with `CREATE TABLE IF NOT EXISTS`
/// before migrations had a list: the `IF NOT EXISTS` stays so that those catalogs upgrade in place.
pub(crate) const MIGRATIONS: &[Migration] = &[
    // 1: blobs, shares, download requests, downloads.
    Migration {
        sql: concat!(
            "
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
",
            requests_v1!(),
            "
        CREATE TABLE IF NOT EXISTS downloads (
            id BLOB PRIMARY KEY,
            name TEXT NOT NULL,
            out_path BLOB NOT NULL,
            size INTEGER NOT NULL,
            is_collection INTEGER NOT NULL,
            state TEXT NOT NULL,
            updated_at INTEGER NOT NULL
        );"
        ),
        reindex: false,
    },
    // 2: the full-text index of shared names (`index.rs`), filled from the shares.
    Migration {
        sql: "
        CREATE VIRTUAL TABLE IF NOT EXISTS names USING fts5(
            name, id UNINDEXED, size UNINDEXED, root UNINDEXED, collection UNINDEXED,
            tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3'
        );",
        reindex: true,
    },
    // 3: an index server's registry of other peers' share lists (`registry.rs`).
    Migration {
        sql: "
        CREATE TABLE IF NOT EXISTS registry (
            peer BLOB PRIMARY KEY,
            saved BLOB NOT NULL,
            heard_at_ms INTEGER NOT NULL
        );",
        reindex: false,
    },
    // 4: download requests keep how they ended (done, failed), so the list survives a restart.
    Migration {
        sql: concat!(
            requests_v1!(),
            "

        CREATE TABLE requests_v4 (
            id BLOB PRIMARY KEY,
            what TEXT NOT NULL,
            output BLOB,
            state TEXT NOT NULL CHECK (state IN ('running', 'paused', 'done', 'failed', 'cancelled')),
            name TEXT NOT NULL DEFAULT '',
            error TEXT,
            report TEXT,
            updated_at INTEGER NOT NULL
        );
        INSERT INTO requests_v4 (id, what, output, state, updated_at)
            SELECT id, what, output, state, updated_at FROM requests;
        DROP TABLE requests;
        ALTER TABLE requests_v4 RENAME TO requests;"
        ),
        reindex: false,
    },
    // 5: messaging (`messages.rs`): posts and letters with their text in a full-text index kept by
    // triggers, petnames, and the sealed letters held for offline peers. `n` is the FTS rowid, explicit so
    // that a VACUUM cannot renumber it. `IF NOT EXISTS` like steps 1-3: a catalog whose version says less
    // than it holds (the index tests make one) runs the step again harmlessly.
    Migration {
        sql: "
        CREATE TABLE IF NOT EXISTS messages (
            n INTEGER PRIMARY KEY,
            id BLOB NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('post', 'letter')),
            conversation BLOB NOT NULL,
            author BLOB NOT NULL,
            time_ms INTEGER NOT NULL,
            clock INTEGER NOT NULL,
            gap INTEGER NOT NULL DEFAULT 0,
            text TEXT NOT NULL,
            status TEXT,
            frame BLOB NOT NULL
        );
        CREATE INDEX IF NOT EXISTS messages_order ON messages (conversation, clock, id);
        CREATE INDEX IF NOT EXISTS messages_time ON messages (conversation, time_ms);
        CREATE VIRTUAL TABLE IF NOT EXISTS messages_text USING fts5(
            text, content = 'messages', content_rowid = 'n',
            tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3'
        );
        CREATE TRIGGER IF NOT EXISTS messages_ai AFTER INSERT ON messages BEGIN
            INSERT INTO messages_text (rowid, text) VALUES (new.n, new.text);
        END;
        CREATE TRIGGER IF NOT EXISTS messages_ad AFTER DELETE ON messages BEGIN
            INSERT INTO messages_text (messages_text, rowid, text) VALUES ('delete', old.n, old.text);
        END;
        CREATE TRIGGER IF NOT EXISTS messages_au AFTER UPDATE OF text ON messages BEGIN
            INSERT INTO messages_text (messages_text, rowid, text) VALUES ('delete', old.n, old.text);
            INSERT INTO messages_text (rowid, text) VALUES (new.n, new.text);
        END;
        CREATE TABLE IF NOT EXISTS contacts (
            name TEXT PRIMARY KEY,
            peer TEXT NOT NULL UNIQUE,
            added_at_ms INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS held (
            id BLOB PRIMARY KEY,
            sender BLOB NOT NULL,
            recipient BLOB NOT NULL,
            frame BLOB NOT NULL,
            since_ms INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS held_recipient ON held (recipient, since_ms);",
        reindex: false,
    },
    // 6: the topics this peer follows (a private topic's key too), so that it follows them after a restart.
    Migration {
        sql: "
        CREATE TABLE IF NOT EXISTS topics (
            id BLOB PRIMARY KEY,
            name TEXT NOT NULL,
            key BLOB,
            joined_ms INTEGER NOT NULL
        );",
        reindex: false,
    },
    // 7: traffic samples (bytes up and down per few seconds), for the bandwidth history of the last day.
    Migration {
        sql: "
        CREATE TABLE IF NOT EXISTS traffic (
            at_ms INTEGER NOT NULL,
            span_ms INTEGER NOT NULL,
            up INTEGER NOT NULL,
            down INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS traffic_at ON traffic (at_ms);",
        reindex: false,
    },
];

/// What [`migrate`] did.
pub(crate) struct Migrated {
    /// The version the catalog had.
    pub(crate) from: usize,
    /// The store must fill the name index.
    pub(crate) reindex: bool,
}

/// Brings `conn` to the newest version. `Err(Some(v))`: the catalog is at version `v`, newer than ours.
pub(crate) fn migrate(conn: &mut Connection) -> Result<Migrated, MigrateError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let from = usize::try_from(version).map_err(|_| MigrateError::Newer(version))?;
    if from > MIGRATIONS.len() {
        return Err(MigrateError::Newer(version));
    }
    let mut reindex = false;
    for (i, m) in MIGRATIONS.iter().enumerate().skip(from) {
        let tx = conn.transaction()?;
        tx.execute_batch(m.sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        if i + 1 == MIGRATIONS.len() {
            crate::crash::point("migration-before-commit");
        }
        tx.commit()?;
        // A catalog made before the index existed (version 1) has shares to index; a fresh one has none.
        reindex |= m.reindex && from > 0;
    }
    Ok(Migrated { from, reindex })
}

/// Why [`migrate`] failed.
#[derive(Debug)]
pub(crate) enum MigrateError {
    /// The catalog is at this version, newer than ours.
    Newer(i64),
    /// SQLite failed; the failed step was rolled back.
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for MigrateError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sql(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(c: &Connection) -> i64 {
        c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap()
    }

    #[test]
    fn a_fresh_catalog_gets_every_step_and_a_second_run_does_nothing() {
        let mut c = Connection::open_in_memory().unwrap();
        let m = migrate(&mut c).unwrap();
        assert_eq!((m.from, m.reindex), (0, false));
        assert_eq!(version(&c), MIGRATIONS.len() as i64);
        let again = migrate(&mut c).unwrap();
        assert_eq!(again.from, MIGRATIONS.len());
    }

    #[test]
    fn a_version_1_catalog_keeps_its_requests_and_is_reindexed() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch(MIGRATIONS[0].sql).unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
        c.execute("INSERT INTO requests (id, what, state, updated_at) VALUES (x'01', 'shoal1x', 'paused', 5)", [])
            .unwrap();
        let m = migrate(&mut c).unwrap();
        assert!(m.reindex);
        let (what, state): (String, String) =
            c.query_row("SELECT what, state FROM requests", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        assert_eq!((what.as_str(), state.as_str()), ("shoal1x", "paused"));
        // The new states are allowed now.
        c.execute("UPDATE requests SET state = 'done'", []).unwrap();
    }

    #[test]
    fn a_failing_step_leaves_the_version_and_the_tables_as_they_were() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch(MIGRATIONS[0].sql).unwrap();
        c.execute_batch(MIGRATIONS[1].sql).unwrap();
        c.execute_batch(MIGRATIONS[2].sql).unwrap();
        c.pragma_update(None, "user_version", 3).unwrap();
        // A stray table in the way makes step 4 fail half-way (after nothing, or after the copy).
        c.execute_batch("CREATE TABLE requests_v4 (x)").unwrap();
        c.execute("INSERT INTO requests (id, what, state, updated_at) VALUES (x'02', 'w', 'running', 1)", []).unwrap();
        assert!(matches!(migrate(&mut c), Err(MigrateError::Sql(_))));
        assert_eq!(version(&c), 3);
        let n: i64 = c.query_row("SELECT COUNT(*) FROM requests", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn a_newer_catalog_is_refused_untouched() {
        let mut c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(migrate(&mut c), Err(MigrateError::Newer(99))));
        assert_eq!(version(&c), 99);
    }
}
