//! The node's download manager: a finished and a failed download are still listed, as they ended, after
//! the node restarts on the same data directory, a paused one stays paused, a cancelled one is forgotten.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on what they do not expect

mod common;

use std::time::Duration;

use common::*;
use shoal_node::{DownloadState, Node, NodeConfig};

async fn wait_for(node: &Node, id: &shoal_node::ContentId, state: DownloadState) -> shoal_node::DownloadInfo {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let d = node.get_download(id).unwrap();
        if d.state == state {
            return d;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {:?}, not {state:?}: {d:?}", d.state);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_failed_and_paused_downloads_survive_a_restart() {
    let sharer = peer().await;
    let bytes = random_bytes(300_000, 21);
    let ticket = shared_by(&[&sharer], "song.flac", &bytes).await;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let out = dir.path().join("song.flac");
    let cfg = || NodeConfig::loopback(home.clone()).with_download(tuning().with_stall_timeout(Duration::from_secs(2)));
    let node = Node::start(cfg()).await.unwrap();

    // Done: the whole file, verified.
    node.add_download(&ticket.to_string(), Some(out.clone()), false).await.unwrap();
    let done = wait_for(&node, &ticket.id, DownloadState::Done).await;
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    assert_eq!(done.report.as_ref().map(|r| r.size), Some(bytes.len() as u64));
    // Failed: an id nobody has.
    let nobody = shoal_node::ContentId([9; 32]);
    node.add_download(&nobody.to_string(), Some(dir.path().join("x")), false).await.unwrap();
    let failed = wait_for(&node, &nobody, DownloadState::Failed).await;
    assert!(failed.error.as_deref().unwrap_or_default().contains("no provider"), "{failed:?}");
    // Paused: recorded, not started.
    let other = shoal_node::ContentId([8; 32]);
    node.add_download(&other.to_string(), Some(dir.path().join("y")), true).await.unwrap();
    // Bad input is refused with a reason, and nothing is recorded for it.
    assert!(node.add_download("garbage", None, false).await.is_err());
    assert!(node.add_download(&ticket.to_string(), Some("relative".into()), false).await.is_err());
    node.shutdown().await;
    drop(node);

    let node = Node::start(cfg()).await.unwrap();
    assert_eq!(node.recover_downloads().await.unwrap(), 0, "nothing was running");
    let list = node.list_downloads();
    assert_eq!(list.len(), 3, "{list:?}");
    let again = node.get_download(&ticket.id).unwrap();
    assert_eq!(again.state, DownloadState::Done);
    assert_eq!(again.report.map(|r| r.out), Some(out.clone()));
    assert_eq!(again.name, "song.flac");
    assert_eq!(node.get_download(&nobody).unwrap().state, DownloadState::Failed);
    assert_eq!(node.get_download(&other).unwrap().state, DownloadState::Paused);
    // Cancelling the paused one forgets it for good.
    node.cancel_download(&other).await.unwrap();
    node.shutdown().await;
    drop(node);
    let node = Node::start(cfg()).await.unwrap();
    node.recover_downloads().await.unwrap();
    assert_eq!(node.list_downloads().len(), 2);
    assert!(node.get_download(&other).is_err());
    node.shutdown().await;
}
