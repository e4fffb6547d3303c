//! Crash points for tests: `SHOAL_CRASH_AT=<name>` makes a debug build abort (as `kill -9` would, no
//! destructors, no flush) at the named step, so that a test can show that the catalog and the files hold
//! either the old state or the new one afterwards. Release builds compile every point to nothing.
//!
//! Points: `share-before-commit`, `unshare-before-commit` (inside the transaction, after every statement),
//! `finish-after-link` (the complete file has its final name, the catalog does not know yet),
//! `migration-before-commit` (inside the last migration step's transaction).

/// Aborts the process here if `SHOAL_CRASH_AT` names this point (debug builds only).
#[inline]
pub fn point(name: &str) {
    #[cfg(debug_assertions)]
    if std::env::var_os("SHOAL_CRASH_AT").is_some_and(|v| v == name) {
        eprintln!("crash point {name}: aborting");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}
