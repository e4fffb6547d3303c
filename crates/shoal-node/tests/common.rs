//! Helpers for integration tests: real nodes on 127.0.0.1 (port 0) in temp dirs, real files.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use shoal_node::config::DownloadTuning;
use shoal_node::{Node, NodeConfig};

pub struct Peer {
    pub node: Node,
    pub dir: tempfile::TempDir,
}

impl Peer {
    pub fn home(&self) -> &Path {
        self.dir.path()
    }
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

pub fn tuning() -> DownloadTuning {
    DownloadTuning::default().with_stall_timeout(Duration::from_secs(20)).with_slow_after(Duration::from_secs(3))
}

pub async fn peer_with(f: impl FnOnce(NodeConfig) -> NodeConfig) -> Peer {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let cfg = f(NodeConfig::loopback(dir.path().join("home")).with_download(tuning()));
    let node = Node::start(cfg).await.unwrap();
    Peer { node, dir }
}

pub async fn peer() -> Peer {
    peer_with(|c| c).await
}

#[allow(unused_imports)]
pub use shoal_testkit::random_bytes;

pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The id `b3sum` would print.
pub fn b3(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Each of `peers` shares its own copy of `bytes`; returns one ticket naming all of them.
pub async fn shared_by(peers: &[&Peer], name: &str, bytes: &[u8]) -> shoal_node::Ticket {
    let mut ticket: Option<shoal_node::Ticket> = None;
    for p in peers {
        let file = write_file(p.home(), name, bytes);
        let info = p.node.share(&file).await.unwrap();
        let t = p.node.ticket(&info).await.unwrap();
        match &mut ticket {
            None => ticket = Some(t),
            Some(all) => all.providers.extend(t.providers),
        }
    }
    ticket.expect("at least one peer")
}

/// Downloads `ticket` into `out` on `dst` and returns the report.
pub async fn fetch(dst: &Peer, ticket: &shoal_node::Ticket, out: &Path) -> shoal_node::DownloadReport {
    let req = shoal_node::DownloadRequest::from_ticket(ticket, Some(out.to_path_buf()));
    dst.node.download(req).await.unwrap().finish().await.unwrap()
}

/// Polls `ok` every 100 ms until it holds; fails the test, naming `what`, after `secs`.
pub async fn wait_until(what: &str, secs: u64, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !ok().await {
        assert!(std::time::Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
