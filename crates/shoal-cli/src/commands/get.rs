//! `shoal get TICKET|ID`: download, show progress, exit 0 only when complete and verified.

use std::path::PathBuf;

use anyhow::Context;
use shoal_node::{ContentId, DownloadRequest, Node, NodeConfig, Ticket};

pub(crate) async fn run(config: NodeConfig, what: &str, output: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let req = match what.trim().parse::<ContentId>() {
        Ok(id) => DownloadRequest::from_id(id, output),
        Err(_) => {
            let t: Ticket = what.parse().context("reading the ticket")?;
            DownloadRequest::from_ticket(&t, output)
        }
    };
    if let Some(out) = &req.out
        && !out.is_dir()
        && std::fs::symlink_metadata(out).is_ok()
    {
        anyhow::bail!("{} already exists; choose another output path with -o or remove it", out.display());
    }
    let node = Node::start(config).await.context("starting the peer")?;
    let handle = node.download(req).await?;
    let progress = tokio::spawn(crate::progress::report(handle.progress()));
    let result = handle.finish().await;
    progress.abort();
    let report = result?;
    let mb_s = report.received as f64 / report.seconds.max(1e-6) / 1e6;
    let contributors = report.peers.iter().filter(|p| p.bytes > 0).count();
    eprintln!(
        "done: {} ({} bytes, {} file{}), id {} verified, {mb_s:.1} MB/s from {contributors} peer{}{}",
        report.out.display(),
        report.size,
        report.files,
        if report.files == 1 { "" } else { "s" },
        report.id,
        if contributors == 1 { "" } else { "s" },
        if report.resumed > 0 {
            format!(", resumed with {} bytes already verified", report.resumed)
        } else {
            String::new()
        },
    );
    for p in &report.peers {
        let dropped = p.dropped.as_deref().map(|d| format!(" (dropped: {d})")).unwrap_or_default();
        eprintln!("  {} {} bytes{dropped}", p.peer, p.bytes);
    }
    if json {
        super::print_line(&serde_json::to_string(&report)?)?;
    }
    node.shutdown().await;
    Ok(())
}
