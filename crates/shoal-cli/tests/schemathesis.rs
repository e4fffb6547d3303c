//! The daemon's API fuzzed by schemathesis (PyPI) from its own OpenAPI description: every check it has
//! (no server error, status codes, content types, headers and bodies as described, auth enforced, invalid
//! data rejected...) but "every schema-valid request is accepted", which the search body cannot promise (it
//! needs `text` or `id`, one of two optional fields, and says so in words). Routes whose bodies name paths
//! on this machine (`POST /shares`, `POST /downloads`) and `stop` and the endless event feed are left to the
//! property test in shoal-api's `tests/fuzz.rs`, which keeps every path inside its own directory; the
//! `.../leave` and `.../remove` routes to shoal-api's own tests (see below).
//!
//! `.ci/run` installs schemathesis and names it in `SHOAL_SCHEMATHESIS`; elsewhere the test says it is
//! skipped, and fails if CI is set without it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on what they do not expect

mod common;

use common::*;

#[test]
fn schemathesis_finds_nothing_wrong_with_the_api() {
    let Some(st) = std::env::var_os("SHOAL_SCHEMATHESIS") else {
        assert!(std::env::var_os("CI").is_none(), "CI is set but SHOAL_SCHEMATHESIS (the schemathesis binary) is not");
        eprintln!("skipped: set SHOAL_SCHEMATHESIS to a schemathesis binary to run it");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let (_daemon, _) = daemon(&home);
    let addr = std::fs::read_to_string(home.join("api.addr")).unwrap();
    let token = std::fs::read_to_string(home.join("api.token")).unwrap();
    let out = std::process::Command::new(st)
        .arg("run")
        .arg(format!("http://{}/api/v1/openapi.json", addr.trim()))
        .args(["-H", &format!("Authorization: Bearer {}", token.trim())])
        .args(["--exclude-path", "/api/v1/shares", "--exclude-path", "/api/v1/downloads"])
        .args(["--exclude-path", "/api/v1/stop", "--exclude-path", "/api/v1/events"])
        // Leaving a topic and forgetting a contact are POSTs that end a resource: schemathesis's stateful
        // runs follow them with a call on what was left and call the (right) 404 a missing resource.
        // shoal-api's `messaging_routes_...` test covers them.
        .args(["--exclude-path-regex", "/(leave|remove)$"])
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
        .args(["--max-examples", "40", "--seed", "1", "--no-color"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running schemathesis");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "schemathesis found problems:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("passed"), "{text}");
}
