//! Multi-source transfer between real nodes on loopback.

mod common;

use common::*;
use shoal_node::DownloadRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source() {
    let src = peer().await;
    let dst = peer().await;
    let bytes = random_bytes(3 * 1024 * 1024 + 123, 1);
    let file = write_file(src.home(), "one.bin", &bytes);
    let info = src.node.share(&file).await.unwrap();
    assert_eq!(info.id.to_string(), b3(&bytes));
    let ticket = src.node.ticket(&info).await.unwrap();
    let out = dst.home().join("out.bin");
    let report = dst
        .node
        .download(DownloadRequest::from_ticket(&ticket, Some(out.clone())))
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();
    assert_eq!(b3(&std::fs::read(&out).unwrap()), b3(&bytes));
    assert_eq!(report.size, bytes.len() as u64);
    assert_eq!(report.peers.len(), 1);
    assert_eq!(report.peers[0].bytes, bytes.len() as u64);
}
