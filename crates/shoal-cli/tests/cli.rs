//! End-to-end tests of the `shoal` binary: real processes on 127.0.0.1 (port 0), real files, outputs checked
//! with `b3sum` when it is installed (else with the same BLAKE3 implementation it uses).
//!
//! The helpers (spawning, daemons, JSON, `b3sum`) are in `common/`; crash tests are in `crash.rs`, the
//! messaging verbs in `messaging.rs`, the link-emulator runs in `link.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on what they do not expect

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn share_then_get_prints_a_ticket_and_a_verified_copy() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("movie.bin");
    random_file(&src, 5_000_000, 1);
    let (_sharer, ticket) = share(&dir.path().join("a"), &src, &[]);
    let out = dir.path().join("copy.bin");
    let (status, stdout, stderr) = run_get(&dir.path().join("b"), &ticket, &out, &[]);
    assert!(status.success(), "get failed: {stderr}");
    assert_eq!(b3sum(&out), b3sum(&src));
    let report = json(&stdout);
    assert_eq!(report["id"].as_str().unwrap(), b3sum(&src));
    assert_eq!(report["size"], 5_000_000);
    // No partial file is left next to the output.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!names.iter().any(|n| n.to_string_lossy().contains("partial")), "{names:?}");
    // The one-shot get went through the same download manager as a daemon's: a daemon started later on
    // that data directory lists it as done, with its output.
    let (_daemon, _) = daemon(&dir.path().join("b"));
    let ls = json(&run_ok(&dir.path().join("b"), &["ls", "--json"]));
    let d = &ls["downloads"][0];
    assert_eq!((d["state"].as_str(), d["id"].as_str()), (Some("done"), Some(b3sum(&src).as_str())), "{ls}");
    assert_eq!(d["report"]["out"].as_str(), out.to_str(), "{ls}");
}

#[test]
fn get_by_bare_id_finds_the_sharer_through_the_dht() {
    let dir = tempfile::tempdir().unwrap();
    let (_boot, boot_addr) = daemon(&dir.path().join("boot"));
    let src = dir.path().join("song.flac");
    random_file(&src, 3_000_000, 4);
    let (_sharer, _ticket) = share(&dir.path().join("a"), &src, &["--bootstrap", &boot_addr]);
    // The downloader knows only the bootstrap peer and the id, as `b3sum` prints it.
    let id = b3sum(&src);
    let out = dir.path().join("found.flac");
    let (status, stdout, stderr) = run_get(&dir.path().join("c"), &id, &out, &["--bootstrap", &boot_addr]);
    assert!(status.success(), "get by id failed: {stderr}");
    assert_eq!(b3sum(&out), id);
    assert_eq!(json(&stdout)["peers"].as_array().unwrap().iter().filter(|p| p["bytes"].as_u64() > Some(0)).count(), 1);
}

#[test]
fn bad_input_is_one_clear_line_and_a_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["get".into(), "not-a-ticket".into()], "not a shoal ticket"),
        (vec!["get".into(), "shoal1aaaa".into()], "damaged ticket"),
        (vec!["share".into(), dir.path().join("missing").display().to_string()], "does not exist"),
        (vec!["--bootstrap".into(), "nonsense".into(), "daemon".into()], "not a multiaddr"),
        (vec!["--upload-limit".into(), "fast".into(), "daemon".into()], "not a rate"),
        // The API stays on this machine unless that is said out loud, and a persistent key must be strong.
        (vec!["--api-listen".into(), "0.0.0.0:0".into(), "daemon".into()], "not a loopback address"),
        (vec!["--api-key".into(), "short".into(), "daemon".into()], "at least 32"),
        (vec!["--api-base-path".into(), "shoal/../x".into(), "daemon".into()], "not a path like /shoal"),
    ];
    for (args, expect) in cases {
        let o = shoal(&home).args(&args).stdin(Stdio::null()).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?} printed more than one line: {err}");
        assert!(o.stdout.is_empty(), "{args:?} wrote to stdout");
    }
    // An existing output is never overwritten.
    let out = dir.path().join("exists.bin");
    std::fs::write(&out, b"precious").unwrap();
    let id = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
    let (status, _, stderr) = run_get(&home, id, &out, &[]);
    assert!(!status.success() && stderr.contains("already exists"), "{stderr}");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
}

#[test]
fn kill_9_at_half_then_restart_fetches_only_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.bin");
    let size = 16 * 1024 * 1024;
    random_file(&src, size, 2);
    // A capped upload makes the download take ~4 s, so there is a middle to kill it in.
    let (_sharer, ticket) = share(&dir.path().join("a"), &src, &["--upload-limit", "4MiB"]);
    let home = dir.path().join("b");
    let out = dir.path().join("big.copy");
    let mut get = spawn({
        let mut c = shoal(&home);
        c.arg("get").arg(&ticket).arg("-o").arg(&out);
        c
    });
    let line = get.wait_stderr(Duration::from_secs(60), |l| {
        l.strip_prefix("progress: ")
            .and_then(|r| r.split(['/', ' ']).next())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|v| v >= size as u64 / 2)
    });
    get.kill9();
    assert!(!out.exists(), "the final name appeared before the download finished");
    let killed_at: u64 = line["progress: ".len()..].split('/').next().unwrap().parse().unwrap();
    assert!(killed_at < size as u64, "download finished before it could be killed: {line}");

    let (status, stdout, stderr) = run_get(&home, &ticket, &out, &[]);
    assert!(status.success(), "resumed get failed: {stderr}");
    assert_eq!(b3sum(&out), b3sum(&src));
    let report = json(&stdout);
    let received = report["received"].as_u64().unwrap();
    let resumed = report["resumed"].as_u64().unwrap();
    eprintln!("killed at {killed_at} bytes verified; after restart: resumed {resumed}, received {received}");
    assert!(resumed > 0, "nothing was resumed: {stdout}");
    assert!((received as f64) < 0.6 * size as f64, "fetched {received} of {size} bytes after the restart");
}

#[test]
fn a_source_killed_mid_transfer_does_not_stop_the_download() {
    let dir = tempfile::tempdir().unwrap();
    let size = 12 * 1024 * 1024;
    let a_file = dir.path().join("a.bin");
    let bytes = random_file(&a_file, size, 3);
    let b_file = dir.path().join("b.bin");
    std::fs::write(&b_file, &bytes).unwrap();
    let (mut a, ticket, a_addr) = share_json(&dir.path().join("a"), &a_file, &["--upload-limit", "2MiB"]);
    // B joins through A; the downloader learns of B only from the DHT.
    let (_b, _, _) = share_json(&dir.path().join("b"), &b_file, &["--upload-limit", "2MiB", "--bootstrap", &a_addr]);
    let out = dir.path().join("copy.bin");
    let mut get = spawn({
        let mut c = shoal(&dir.path().join("c"));
        c.arg("get").arg(&ticket).arg("-o").arg(&out).arg("--json");
        c
    });
    get.wait_stderr(Duration::from_secs(60), |l| {
        l.strip_prefix("progress: ")
            .and_then(|r| r.split('/').next())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|v| v >= size as u64 / 4)
    });
    a.kill9();
    let mut stdout = String::new();
    get.child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    let status = get.child.wait().unwrap();
    assert!(status.success(), "download failed after a source was killed");
    assert_eq!(b3sum(&out), b3sum(&a_file));
    let report = json(&stdout);
    let peers = report["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 2, "{report}");
    assert!(peers.iter().all(|p| p["bytes"].as_u64() > Some(0)), "both sources should have contributed: {report}");
    assert!(peers.iter().any(|p| p["dropped"].is_string()), "the killed source is not reported: {report}");
}

/// A full disk, made real: the downloader runs in its own mount namespace (`unshare`, no root needed
/// where user namespaces are allowed) with the output directory on a 4 MiB tmpfs, for a 12 MiB file.
#[test]
fn a_stalled_download_does_not_repeat_its_progress_line() {
    // The only source dies mid-transfer: the download waits (for another provider, or for its stall
    // timeout), and stderr, a pipe here as in a log, gets a line when something moved, not two a second.
    let dir = tempfile::tempdir().unwrap();
    let size = 16 * 1024 * 1024;
    let src = dir.path().join("big.bin");
    random_file(&src, size, 4);
    let (mut sharer, ticket) = share(&dir.path().join("a"), &src, &["--upload-limit", "2MiB"]);
    let mut get = spawn({
        let mut c = shoal(&dir.path().join("b"));
        c.arg("get").arg(&ticket).arg("-o").arg(dir.path().join("copy.bin"));
        c
    });
    get.wait_stderr(Duration::from_secs(60), |l| l.starts_with("progress: ") && !l.starts_with("progress: 0/"));
    sharer.kill9();
    let rx = get.stderr_lines.as_ref().unwrap();
    let watch_for = Duration::from_secs(4);
    let deadline = Instant::now() + watch_for;
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.starts_with("progress: ") {
            lines.push(line);
        }
    }
    assert!(get.child.try_wait().unwrap().is_none(), "the download ended at once: {lines:?}");
    // One line may say that the source left (its peers went from 1 to 0), and one more if a last piece
    // was verified after that.
    assert!(lines.len() <= 2, "{} progress lines in {watch_for:?} of waiting: {lines:#?}", lines.len());
}

#[test]
fn a_full_disk_is_a_clear_error_and_leaves_nothing_under_the_final_name() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.bin");
    random_file(&src, 12 * 1024 * 1024, 5);
    let (_sharer, ticket) = share(&dir.path().join("a"), &src, &[]);
    let small = dir.path().join("small-disk");
    std::fs::create_dir_all(&small).unwrap();
    let script = r#"mount -t tmpfs -o size=4m tmpfs "$1" || exit 97
"$2" --home "$3" --loopback get "$4" -o "$1/out.bin" --timeout 20
code=$?
echo "LEFT:$(ls -A "$1" | tr '\n' ' ')"
exit $code"#;
    let o = Command::new("unshare")
        .args(["-rm", "sh", "-c", script, "sh"])
        .arg(&small)
        .arg(SHOAL)
        .arg(dir.path().join("b"))
        .arg(&ticket)
        .env("RUST_LOG", "warn,libp2p_kad=error")
        .stdin(Stdio::null())
        .output()
        .expect("the unshare command (util-linux) is needed for this test");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(97), "could not mount a tmpfs in a user namespace: {stderr}");
    assert!(!o.status.success(), "download into a full disk succeeded: {stdout} {stderr}");
    // Found before anything was written: it says so, and does not promise a resume it cannot keep.
    assert!(stderr.contains("not enough free space for 12582912 bytes"), "unclear error: {stderr}");
    assert!(!stderr.contains("resume"), "{stderr}");
    assert_eq!(stderr.trim().lines().filter(|l| l.starts_with("error:")).count(), 1, "{stderr}");
    let left = stdout.lines().find_map(|l| l.strip_prefix("LEFT:")).unwrap_or("?");
    assert!(!left.contains("out.bin"), "a file was left under the final name: {left}");
}

#[test]
fn two_daemons_share_get_ls_stop_restart_and_the_share_is_still_there() {
    let dir = tempfile::tempdir().unwrap();
    let (a_home, b_home) = (dir.path().join("a"), dir.path().join("b"));
    let (mut a, _) = daemon(&a_home);
    let (_b, _) = daemon(&b_home);
    assert!(a_home.join("api.addr").exists() && a_home.join("api.token").exists());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(a_home.join("api.token")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let src = dir.path().join("report.pdf");
    random_file(&src, 1_500_000, 11);
    // With a daemon running, `share` hands the file to it and exits.
    let ticket = run_ok(&a_home, &["share", src.to_str().unwrap()]).trim().to_string();
    assert!(ticket.starts_with("shoal1"));
    let out = dir.path().join("copy.pdf");
    let report: serde_json::Value =
        serde_json::from_str(run_ok(&b_home, &["get", &ticket, "-o", out.to_str().unwrap(), "--json"]).trim()).unwrap();
    assert_eq!(b3sum(&out), b3sum(&src));
    assert_eq!(report["id"].as_str().unwrap(), b3sum(&src));

    let ls: serde_json::Value = serde_json::from_str(run_ok(&a_home, &["ls", "--json"]).trim()).unwrap();
    assert_eq!(ls["shares"][0]["name"], "report.pdf");
    let ls_b: serde_json::Value = serde_json::from_str(run_ok(&b_home, &["ls", "--json"]).trim()).unwrap();
    assert_eq!(ls_b["downloads"][0]["state"], "done");
    let status: serde_json::Value = serde_json::from_str(run_ok(&a_home, &["status", "--json"]).trim()).unwrap();
    assert!(status["uploaded_bytes"].as_u64().unwrap() >= 1_500_000);

    // A second daemon on the same data directory refuses to start.
    let o = shoal(&b_home).arg("daemon").stdin(Stdio::null()).output().unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("another shoal daemon"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    run_ok(&a_home, &["stop"]);
    let status = a.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "daemon exited with {status}");
    assert!(!a_home.join("api.addr").exists() && !a_home.join("api.token").exists(), "API files left behind");
    let o = shoal(&a_home).arg("status").stdin(Stdio::null()).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("no shoal daemon is running"));

    let (_a2, _) = daemon(&a_home);
    let ls: serde_json::Value = serde_json::from_str(run_ok(&a_home, &["ls", "--json"]).trim()).unwrap();
    assert_eq!(ls["shares"][0]["name"], "report.pdf", "the share did not survive a restart: {ls}");
}

#[test]
fn a_stale_api_addr_from_a_crashed_daemon_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    std::fs::create_dir_all(&home).unwrap();
    // Nothing listens on a port we just bound and released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(home.join("api.addr"), format!("127.0.0.1:{port}")).unwrap();
    std::fs::write(home.join("api.token"), "stale").unwrap();
    let o = shoal(&home).arg("status").stdin(Stdio::null()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("no shoal daemon is running"), "{err}");
    // And a new daemon replaces the stale files.
    let (_d, _) = daemon(&home);
    assert_ne!(std::fs::read_to_string(home.join("api.token")).unwrap(), "stale");
    run_ok(&home, &["status"]);
}

/// Downloads a 100 MB file through a cap of 10 MB/s set with `args` on the sharer (`up`) or the
/// downloader (`down`), and returns the measured rate over the transfer (about 10 s).
fn rate_through_cap(up: &[&str], down: &[&str]) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.bin");
    let size = 100_000_000;
    random_file(&src, size, 12);
    let (_sharer, ticket) = share(&dir.path().join("a"), &src, up);
    let out = dir.path().join("copy.bin");
    let (status, stdout, stderr) = run_get(&dir.path().join("b"), &ticket, &out, down);
    assert!(status.success(), "{stderr}");
    assert_eq!(b3sum(&out), b3sum(&src));
    let r = json(&stdout);
    size as f64 / r["transfer_seconds"].as_f64().unwrap()
}

#[test]
fn an_upload_cap_of_10_mb_s_gives_10_mb_s() {
    let rate = rate_through_cap(&["--upload-limit", "10MB"], &[]);
    eprintln!("upload cap 10 MB/s: measured {:.2} MB/s", rate / 1e6);
    assert!((9e6..=11e6).contains(&rate), "measured {rate} B/s");
}

#[test]
fn a_download_cap_of_10_mb_s_gives_10_mb_s() {
    let rate = rate_through_cap(&[], &["--download-limit", "10MB"]);
    eprintln!("download cap 10 MB/s: measured {:.2} MB/s", rate / 1e6);
    assert!((9e6..=11e6).contains(&rate), "measured {rate} B/s");
}

#[test]
fn config_values_come_from_flag_then_env_then_file_then_default() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("config.toml"),
        "upload_limit = \"5MB\"\ndownload_limit = \"6MB\"\ntopology = \"pure\"\nmax_connections = 9\ndirect_writes = false\n",
    )
    .unwrap();
    let o = shoal(&home)
        .env("SHOAL_DOWNLOAD_LIMIT", "8MB")
        .env("SHOAL_MAX_CONNECTIONS", "50")
        .env("SHOAL_API_LISTEN", "127.0.0.1:5999")
        .env("SHOAL_API_KEY", "a-secret-that-must-never-be-printed-0123456789")
        .args(["config", "--json", "--max-connections", "70"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let got = |k: &str| (v[k]["value"].clone(), v[k]["source"].as_str().unwrap().to_string());
    assert_eq!(got("max_connections"), (serde_json::json!(70), "flag".into()));
    assert_eq!(got("download_limit"), (serde_json::json!("8MB"), "env".into()));
    assert_eq!(got("upload_limit"), (serde_json::json!("5MB"), "file".into()));
    assert_eq!(got("topology"), (serde_json::json!("pure"), "file".into()));
    assert_eq!(got("upload_limit_per_peer"), (serde_json::Value::Null, "default".into()));
    assert_eq!(got("direct_writes"), (serde_json::json!(false), "file".into()));
    assert_eq!(got("supernode_capable"), (serde_json::json!(true), "default".into()));
    assert_eq!(got("api_listen"), (serde_json::json!("127.0.0.1:5999"), "env".into()));
    assert_eq!(got("api_key"), (serde_json::json!("(set)"), "env".into()));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("must-never"), "the key was printed");
    // The topology reaches the daemon's status.
    let (_d, _) = daemon(&home);
    let st: serde_json::Value = serde_json::from_str(run_ok(&home, &["status", "--json"]).trim()).unwrap();
    assert_eq!(st["topology"], "pure");
    // A key that does not exist is an error that names it, on one line.
    std::fs::write(home.join("config.toml"), "uplaod_limit = \"5MB\"\n").unwrap();
    let o = shoal(&home).arg("config").stdin(Stdio::null()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("uplaod_limit") && err.trim().lines().count() == 1, "{err}");
}

#[test]
fn a_daemon_takes_up_its_unfinished_downloads_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (a_home, b_home) = (dir.path().join("a"), dir.path().join("b"));
    let src = dir.path().join("album.bin");
    random_file(&src, 8 * 1024 * 1024, 13);
    let (_a, _) = daemon_with(&a_home, &["--upload-limit", "2MiB"]);
    let ticket = run_ok(&a_home, &["share", src.to_str().unwrap()]).trim().to_string();
    let (mut b, _) = daemon(&b_home);
    let out = dir.path().join("album.copy");
    // The CLI asks daemon B for the download and shows progress; once some arrived, B is stopped.
    let mut client = spawn({
        let mut c = shoal(&b_home);
        c.arg("get").arg(&ticket).arg("-o").arg(&out);
        c
    });
    client.wait_stderr(Duration::from_secs(30), |l| l.starts_with("progress: ") && !l.starts_with("progress: 0/"));
    drop(client);
    run_ok(&b_home, &["stop"]);
    b.wait_exit(Duration::from_secs(10));
    assert!(!out.exists(), "finished before the restart; the test proves nothing");
    let (_b2, _) = daemon(&b_home);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ls: serde_json::Value = serde_json::from_str(run_ok(&b_home, &["ls", "--json"]).trim()).unwrap();
        let d = &ls["downloads"][0];
        if d["state"] == "done" {
            assert!(d["report"]["resumed"].as_u64().unwrap() > 0, "started again from zero: {d}");
            break;
        }
        assert!(Instant::now() < deadline, "the download was not taken up after the restart: {ls}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(b3sum(&out), b3sum(&src));
}

#[test]
fn demo_runs_a_network_and_reports_a_verified_id() {
    let o = Command::new(SHOAL)
        .args(["demo", "--sources", "3", "--size-mib", "8"])
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "demo failed: {}", String::from_utf8_lossy(&o.stderr));
    let id = out.lines().find_map(|l| l.strip_prefix("verified id (BLAKE3, as b3sum prints it): ")).expect(&out);
    assert_eq!(id.len(), 64);
    assert!(out.lines().filter(|l| l.trim_start().starts_with("from source")).count() >= 2, "{out}");
    let o = Command::new(SHOAL)
        .args(["demo", "--sources", "2", "--size-mib", "4", "--json"])
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success());
    let v = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(v["verified"], true);
    assert_eq!(v["report"]["size"], 4 * 1024 * 1024);
}

#[test]
fn sigterm_stops_a_daemon_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let (mut d, _) = daemon(&home);
    assert!(home.join("api.addr").exists());
    // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
    assert_eq!(unsafe { libc::kill(d.child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let status = d.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "daemon exited with {status} on SIGTERM");
    assert!(!home.join("api.addr").exists() && !home.join("api.token").exists());
    // The data directory is not locked any more: a new daemon starts.
    let (_d2, _) = daemon(&home);
}

/// Runs `shoal search` until a line of stdout satisfies `found` (the overlay links up in the first moments
/// after a daemon starts), at most five times. Returns stdout.
fn search_until(home: &Path, args: &[&str], found: impl Fn(&str) -> bool) -> String {
    for _ in 0..5 {
        let o = shoal(home).arg("search").args(args).stdin(Stdio::null()).output().unwrap();
        let out = String::from_utf8(o.stdout).unwrap();
        // 0 with hits, 1 (as grep) without; anything else is an error.
        let hits = out.lines().any(|l| !l.contains("\"type\":\"done\""));
        assert_eq!(o.status.code(), Some(if hits { 0 } else { 1 }), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        if out.lines().any(&found) {
            return out;
        }
    }
    panic!("shoal search {args:?} never found it");
}

#[test]
fn search_through_a_daemon_and_one_shot_then_get_the_hit_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let pure = ["--topology", "pure"];
    let (_a, a_addr) = daemon_with(&dir.path().join("a"), &pure);
    let (_b, b_addr) = daemon_with(&dir.path().join("b"), &["--topology", "pure", "--bootstrap", &a_addr]);
    let folder = dir.path().join("Summer");
    std::fs::create_dir(&folder).unwrap();
    let file = folder.join("Holiday Photos 2024.zip");
    random_file(&file, 200_000, 9);
    run_ok(&dir.path().join("a"), &["share", folder.to_str().unwrap()]);
    let id = b3sum(&file);

    // Through B's daemon, one hop: JSON lines, a hit then the figures.
    let out = search_until(&dir.path().join("b"), &["holid", "PHO", "--json", "--limit", "1", "--timeout", "5"], |l| {
        json(l)["id"] == id.as_str()
    });
    let lines: Vec<serde_json::Value> = out.lines().map(json).collect();
    let hit = lines.iter().find(|v| v["type"] == "hit").unwrap();
    assert_eq!((hit["name"].as_str(), hit["size"].as_u64()), (Some("Holiday Photos 2024.zip"), Some(200_000)));
    let done = lines.last().unwrap();
    assert_eq!(done["type"], "done");
    assert!(done["messages"].as_u64() >= Some(1) && done["first_hit_ms"].as_f64().is_some(), "{done}");

    // Plain text: the id, the size and the name on one line.
    let text = search_until(&dir.path().join("b"), &["holiday", "--limit", "1"], |l| l.starts_with(&id));
    assert!(text.contains("Holiday Photos 2024.zip"), "{text}");

    // A one-shot peer that knows only B: two hops; then the hit's id is all `get` needs.
    let c = dir.path().join("c");
    let boot = ["--topology", "pure", "--bootstrap", &b_addr];
    let mut args: Vec<&str> = boot.to_vec();
    args.extend(["search", "holiday", "--json", "--limit", "1"]);
    let o = shoal(&c).args(&args).stdin(Stdio::null()).output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.lines().any(|l| json(l)["id"] == id.as_str()), "{stdout} {}", String::from_utf8_lossy(&o.stderr));
    let got = dir.path().join("got.zip");
    let (status, _, stderr) = run_get(&c, &id, &got, &boot);
    assert!(status.success(), "get by id in pure topology failed: {stderr}");
    assert_eq!(b3sum(&got), id);

    // Bad input: one clear line, non-zero exit.
    for bad in [&["search", "x", "--ext", ".zip"][..], &["search", "--", "!!"], &["search", "x", "--timeout", "0"]] {
        let o = shoal(&dir.path().join("b")).args(bad).stdin(Stdio::null()).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.code() == Some(2) && err.trim().lines().count() == 1, "{bad:?}: {err}");
    }
    // Nothing found is not an error, but it is not success either: exit 1, as grep.
    let o =
        shoal(&dir.path().join("b")).args(["search", "zqxjv", "--timeout", "1"]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stdout.is_empty());
}

#[test]
fn an_index_server_answers_hybrid_searches() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = shoal(&dir.path().join("server"));
    c.arg("index-server");
    let mut server = spawn(c);
    let mut lines = BufReader::new(server.child.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().starts_with("peer 12D3"));
    let server_addr = lines.next().unwrap().unwrap().strip_prefix("listening ").unwrap().to_string();
    let hybrid = ["--topology", "hybrid", "--index-server", &server_addr];
    let (_a, _) = daemon_with(&dir.path().join("a"), &hybrid);
    let (_b, _) = daemon_with(&dir.path().join("b"), &hybrid);
    let file = dir.path().join("Lecture Notes Physics.pdf");
    random_file(&file, 50_000, 11);
    run_ok(&dir.path().join("a"), &["share", file.to_str().unwrap()]);
    let id = b3sum(&file);
    let out = search_until(&dir.path().join("b"), &["lecture", "phys", "--json", "--limit", "1"], |l| {
        json(l)["id"] == id.as_str()
    });
    let done = json(out.lines().last().unwrap());
    assert_eq!(done["messages"], 1, "one question to the index server: {done}");
    // The server's status shows what it holds. B's (empty) list may still be on its way when the search
    // returns (its first list is read off the async threads while the search goes out): ask up to 10 s.
    let mut st = serde_json::Value::Null;
    for _ in 0..50 {
        st = json(&run_ok(&dir.path().join("server"), &["status", "--json"]));
        if st["search"]["index_peers"] == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(st["topology"], "hybrid");
    assert_eq!(st["search"]["index_peers"], 2, "{st}");
    // An index server needs the hybrid topology.
    let o = shoal(&dir.path().join("x")).args(["--topology", "pure", "index-server"]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("hybrid"));
}
