//! Crashes at the worst moments, through the real binary: `SHOAL_CRASH_AT` makes a debug build abort at a
//! named step (`shoal_store::crash`), as `kill -9` would. After each, `shoal doctor` finds the data
//! directory consistent, and what was being done is either fully there or not there at all.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on what they do not expect

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use common::*;

/// Runs `shoal ARGS` on `home` with `SHOAL_CRASH_AT=point` and checks that it died at that point.
fn crash_at(home: &std::path::Path, point: &str, args: &[&str]) {
    let o = shoal(home).env("SHOAL_CRASH_AT", point).args(args).stdin(Stdio::null()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.signal(), Some(libc_sigabrt()), "{args:?} did not crash at {point}: {err}");
    assert!(err.contains(&format!("crash point {point}")), "{err}");
}

const fn libc_sigabrt() -> i32 {
    6
}

/// `shoal doctor --json` says the data directory is consistent.
fn consistent(home: &std::path::Path) {
    let o = shoal(home).args(["doctor", "--json"]).stdin(Stdio::null()).output().unwrap();
    let v = json(&String::from_utf8_lossy(&o.stdout));
    assert!(o.status.success() && v["ok"] == true, "doctor: {v} {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_crash_in_the_middle_of_a_migration_leaves_a_catalog_that_opens_and_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    // A fresh data directory runs every migration; the last one dies before its commit.
    crash_at(&home, "migration-before-commit", &["doctor"]);
    consistent(&home);
}

#[test]
fn a_crash_while_sharing_or_unsharing_leaves_the_old_state() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let file = dir.path().join("notes.bin");
    random_file(&file, 300_000, 81);
    let id = b3sum(&file);
    crash_at(&home, "share-before-commit", &["share", file.to_str().unwrap()]);
    consistent(&home);
    // Not shared: unsharing it says so.
    let o = shoal(&home).args(["unshare", &id]).stdin(Stdio::null()).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("not shared"), "{o:?}");
    // Shared for real this time (the sharer is stopped once its ticket is out), then a crash while unsharing.
    let (sharer, _ticket) = share(&home, &file, &[]);
    drop(sharer);
    crash_at(&home, "unshare-before-commit", &["unshare", &id]);
    consistent(&home);
    // Still shared: the real unshare finds it, and a second one does not.
    let o = shoal(&home).args(["unshare", &id, "--json"]).stdin(Stdio::null()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(json(&String::from_utf8_lossy(&o.stdout))["removed"], id);
    let o = shoal(&home).args(["unshare", &id]).stdin(Stdio::null()).output().unwrap();
    assert!(!o.status.success());
    consistent(&home);
}

#[test]
fn a_crash_after_the_download_got_its_name_is_completed_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    let file = dir.path().join("video.bin");
    random_file(&file, 2_000_000, 82);
    let (_sharer, ticket) = share(&src, &file, &[]);
    let out = dir.path().join("got.bin");
    crash_at(&dst, "finish-after-link", &["get", &ticket, "-o", out.to_str().unwrap(), "--timeout", "30"]);
    assert_eq!(b3sum(&out), b3sum(&file), "the final name holds the complete file");
    consistent(&dst);
    // The same command again completes the record instead of refusing an existing output.
    let (status, stdout, stderr) = run_get(&dst, &ticket, &out, &[]);
    assert!(status.success(), "{stderr}");
    assert_eq!(json(&stdout)["id"], b3sum(&file));
    assert_eq!(b3sum(&out), b3sum(&file));
    assert!(!dir.path().join(".got.bin.shoal-partial").exists(), "the partial name is gone");
    consistent(&dst);
}
