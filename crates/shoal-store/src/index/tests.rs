//! The local index against real shares in a temporary data directory.

use proptest::prelude::*;
use shoal_proto::search::{Filters, Query, keywords};

use crate::Store;

fn words(s: &str) -> Query {
    Query::words(s)
}

fn names(store: &Store, q: &Query) -> Vec<String> {
    let mut v: Vec<String> = store.search_local(q, 100).unwrap().into_iter().map(|h| h.name).collect();
    v.sort();
    v
}

fn setup() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("home")).unwrap();
    (dir, store)
}

#[test]
fn word_prefixes_case_and_accents() {
    let (dir, store) = setup();
    for (name, len) in [("Holiday Photos 2024.zip", 3000), ("Noël en famille.JPG", 10), ("holiday.txt", 5)] {
        let p = dir.path().join(name);
        std::fs::write(&p, vec![b'x'; len]).unwrap();
        store.share(&p).unwrap();
    }
    assert_eq!(names(&store, &words("holid pho")), ["Holiday Photos 2024.zip"]);
    assert_eq!(names(&store, &words("HOLIDAY")), ["Holiday Photos 2024.zip", "holiday.txt"]);
    assert_eq!(names(&store, &words("noel")), ["Noël en famille.JPG"]);
    assert_eq!(names(&store, &words("NOËL FAM")), ["Noël en famille.JPG"]);
    assert!(names(&store, &words("olid")).is_empty(), "only prefixes of words match");
    assert!(names(&store, &words("\"*) OR x")).is_empty(), "FTS syntax in a query is just words");

    let f = |min, max, ext: Option<&str>| Query {
        filters: Filters { min_size: min, max_size: max, ext: ext.map(Into::into) },
        ..words("holiday")
    };
    assert_eq!(names(&store, &f(Some(100), None, None)), ["Holiday Photos 2024.zip"]);
    assert_eq!(names(&store, &f(None, Some(100), None)), ["holiday.txt"]);
    assert_eq!(names(&store, &f(None, None, Some("ZIP"))), ["Holiday Photos 2024.zip"]);
    assert!(names(&store, &f(None, None, Some("%"))).is_empty(), "a wildcard is not an extension");
}

#[test]
fn folders_index_each_file_and_unshare_removes_them() {
    let (dir, store) = setup();
    let top = dir.path().join("Summer Trip");
    std::fs::create_dir_all(top.join("day one")).unwrap();
    std::fs::write(top.join("day one/Beach Été.jpg"), b"sand").unwrap();
    std::fs::write(top.join("notes.txt"), b"notes").unwrap();
    let info = store.share(&top).unwrap();
    let hits = store.search_local(&words("beach ete"), 10).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id, info.files.iter().find(|f| f.path.ends_with(".jpg")).unwrap().id);
    assert!(!hits[0].collection);
    let folder = store.search_local(&words("summer"), 10).unwrap();
    assert_eq!((folder[0].id, folder[0].collection, folder[0].size), (info.id, true, 9));

    // By id: the folder and each file are answerable, an unknown id is not.
    assert_eq!(store.search_local(&Query::id(*info.id.as_bytes()), 10).unwrap().len(), 1);
    assert!(store.search_local(&Query::id([9; 32]), 10).unwrap().is_empty());

    assert!(store.remove_share(&info.id).unwrap().is_some());
    assert!(store.search_local(&words("beach"), 10).unwrap().is_empty());
    assert!(store.search_local(&words("summer"), 10).unwrap().is_empty());
}

#[test]
fn an_old_catalog_is_indexed_when_opened() {
    let (dir, store) = setup();
    let p = dir.path().join("Old Report.pdf");
    std::fs::write(&p, b"pdf").unwrap();
    store.share(&p).unwrap();
    drop(store);
    // Make the catalog look like version 1: no index rows.
    let db = rusqlite::Connection::open(dir.path().join("home/shoal.db")).unwrap();
    db.execute_batch("DELETE FROM names; PRAGMA user_version = 1;").unwrap();
    drop(db);
    let store = Store::open(&dir.path().join("home")).unwrap();
    assert_eq!(names(&store, &words("report")), ["Old Report.pdf"]);
}

#[test]
fn an_index_left_empty_by_a_crash_after_its_migration_is_filled_at_the_next_open() {
    let (dir, store) = setup();
    let p = dir.path().join("Tax Return.pdf");
    std::fs::write(&p, b"pdf").unwrap();
    store.share(&p).unwrap();
    drop(store);
    // The migration that made the index committed (the version is current), the filling never ran.
    let db = rusqlite::Connection::open(dir.path().join("home/shoal.db")).unwrap();
    db.execute_batch("DELETE FROM names;").unwrap();
    drop(db);
    let store = Store::open(&dir.path().join("home")).unwrap();
    assert_eq!(names(&store, &words("return")), ["Tax Return.pdf"]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// SQLite's matching and the Rust twin used by the simulator and digests agree.
    #[test]
    fn fts_agrees_with_keywords_matches(
        list in proptest::collection::vec("[a-cé]{1,4}( [a-cÉ0-1]{1,4}){0,3}", 1..8),
        query in "[a-cé]{1,3}( [a-c]{1,2}){0,1}",
    ) {
        let (dir, store) = setup();
        let mut want = Vec::new();
        for (i, n) in list.iter().enumerate() {
            let p = dir.path().join(format!("{i}"));
            std::fs::write(&p, format!("{i}")).unwrap();
            let info = store.share(&p).unwrap();
            // Index under the generated name (file names here are just numbers).
            store.catalog.tx(|c| crate::index::index_share(c, &info.id, n, 1, &[])).unwrap();
            if keywords::matches(&query, n) {
                want.push(n.clone());
            }
        }
        want.sort();
        prop_assert_eq!(names(&store, &words(&query)), want);
    }
}
