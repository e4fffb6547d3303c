//! Helpers of the `shoal` binary's end-to-end tests: processes that are killed (by their own pid) when
//! dropped, the verbs started the way a user starts them, JSON and `b3sum` checks.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");

/// A child process that is killed (by its own pid) and reaped when dropped.
pub struct Proc {
    pub child: Child,
    pub stderr_lines: Option<mpsc::Receiver<String>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn kill9(&mut self) {
        // Child::kill sends SIGKILL on Unix.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits (bounded) for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "process {} did not exit within {timeout:?}", self.child.id());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (bounded) for a stderr line matching `pred`.
    pub fn wait_stderr(&mut self, timeout: Duration, mut pred: impl FnMut(&str) -> bool) -> String {
        let rx = self.stderr_lines.as_ref().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => {}
                Err(e) => panic!("no matching stderr line within {timeout:?}: {e}"),
            }
        }
    }
}

pub fn shoal(home: &Path) -> Command {
    let mut c = Command::new(SHOAL);
    c.arg("--home").arg(home).arg("--loopback").env_remove("SHOAL_HOME").env("RUST_LOG", "warn,libp2p_kad=error");
    c
}

pub fn spawn(mut cmd: Command) -> Proc {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Proc { child, stderr_lines: Some(rx) }
}

/// Starts `shoal share` and returns it with the ticket from its first stdout line.
pub fn share(home: &Path, path: &Path, extra: &[&str]) -> (Proc, String) {
    let mut cmd = shoal(home);
    cmd.args(extra).arg("share").arg(path);
    let mut p = spawn(cmd);
    let stdout = p.child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let ticket = rx.recv_timeout(Duration::from_secs(60)).expect("no ticket within 60 s").trim().to_string();
    assert!(ticket.starts_with("shoal1"), "first stdout line is not a ticket: {ticket:?}");
    (p, ticket)
}

pub fn random_file(path: &Path, n: usize, seed: u64) -> Vec<u8> {
    let out = shoal_testkit::random_bytes(n, seed);
    std::fs::write(path, &out).unwrap();
    out
}

/// The BLAKE3 of a file as `b3sum` prints it (from `b3sum` itself when installed).
pub fn b3sum(path: &Path) -> String {
    if let Ok(out) = Command::new("b3sum").arg("--no-names").arg(path).output()
        && out.status.success()
    {
        return String::from_utf8(out.stdout).unwrap().trim().to_string();
    }
    blake3::hash(&std::fs::read(path).unwrap()).to_hex().to_string()
}

pub fn run_get(home: &Path, what: &str, out: &Path, extra: &[&str]) -> (std::process::ExitStatus, String, String) {
    let mut cmd = shoal(home);
    cmd.arg("get").arg(what).arg("-o").arg(out).arg("--json").arg("--timeout").arg("30").args(extra);
    let o = cmd.stdin(Stdio::null()).output().unwrap();
    (o.status, String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Starts `shoal daemon` and returns it with its first listen address.
pub fn daemon(home: &Path) -> (Proc, String) {
    daemon_with(home, &[])
}

pub fn daemon_with(home: &Path, extra: &[&str]) -> (Proc, String) {
    let mut c = shoal(home);
    c.args(extra).arg("daemon");
    let mut p = spawn(c);
    let mut lines = BufReader::new(p.child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("peer 12D3"), "daemon's first line: {first:?}");
    let second = lines.next().unwrap().unwrap();
    let addr = second.strip_prefix("listening ").expect("daemon's second line names an address").to_string();
    assert!(addr.starts_with("/ip4/127.0.0.1/tcp/") && addr.contains("/p2p/"), "{addr}");
    (p, addr)
}

/// `share --json` output: the ticket and the sharer's first address.
pub fn share_json(home: &Path, path: &Path, extra: &[&str]) -> (Proc, String, String) {
    let mut all = extra.to_vec();
    let mut cmd = shoal(home);
    all.push("share");
    cmd.args(&all).arg(path).arg("--json");
    let mut p = spawn(cmd);
    let mut line = String::new();
    BufReader::new(p.child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let v = json(&line);
    (p, v["ticket"].as_str().unwrap().to_string(), v["addrs"][0].as_str().unwrap().to_string())
}

pub fn run_ok(home: &Path, args: &[&str]) -> String {
    let o = shoal(home).args(args).stdin(Stdio::null()).output().unwrap();
    assert!(o.status.success(), "shoal {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}
