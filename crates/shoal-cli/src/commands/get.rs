//! `shoal get TICKET|ID`: download, show progress, exit 0 only when complete and verified.

use std::path::PathBuf;

use anyhow::Context;
use shoal_node::{Node, NodeConfig};

pub(crate) async fn run(config: NodeConfig, what: &str, output: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    // Read the ticket (or id) first: bad input is said before any peer starts.
    shoal_node::transfer::manager::parse_target(what, None).context("reading the ticket")?;
    // (Unless a crash interrupted this very download just as it got its name: the node completes that.)
    if let Some(out) = &output
        && !out.is_dir()
        && std::fs::symlink_metadata(out).is_ok()
        && std::fs::symlink_metadata(shoal_node::transfer::download::partial_path_for(out)).is_err()
    {
        anyhow::bail!("{} already exists; choose another output path with -o or remove it", out.display());
    }
    let cwd = std::env::current_dir().context("finding the current directory")?;
    let output = Some(output.map_or_else(|| cwd.clone(), |o| cwd.join(o)));
    let node = Node::start(config).await.context("starting the peer")?;
    // The same download manager as the daemon's: the request is in the catalog like any other (a daemon
    // started later on this data directory lists it, or takes it up if this process was stopped).
    let info = node.add_download(what, output, false).await?;
    let progress = tokio::spawn(crate::progress::report(node.download_progress(&info.id)?));
    let result = node.wait_download(&info.id).await;
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
