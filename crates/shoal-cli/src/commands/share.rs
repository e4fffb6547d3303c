//! `shoal share PATH`: ticket on stdout's first line, then serve until stopped.

use std::path::Path;

use anyhow::Context;
use shoal_node::{Node, NodeConfig};

pub(crate) async fn run(config: NodeConfig, path: &Path, json: bool) -> anyhow::Result<()> {
    if !path.exists() {
        anyhow::bail!("{} does not exist", path.display());
    }
    let stopper = super::Stopper::new()?;
    let node = Node::start(config).await.context("starting the peer")?;
    let info = node.share(path).await.with_context(|| format!("sharing {}", path.display()))?;
    let ticket = node.ticket(&info).await?;
    if json {
        let v = serde_json::json!({
            "ticket": ticket.to_string(),
            "id": info.id.to_string(),
            "name": info.name,
            "size": info.size,
            "collection": info.is_collection,
            "files": info.files.len(),
            "peer": node.peer_id().to_string(),
            "addrs": node.addrs().await?.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        });
        super::print_line(&v.to_string())?;
    } else {
        super::print_line(&ticket.to_string())?;
    }
    let what =
        if info.is_collection { format!("folder, {} files", info.files.len()) } else { format!("{} bytes", info.size) };
    eprintln!("sharing {} ({what}), id {}", info.name, info.id);
    eprintln!("peer {} listening on:", node.peer_id());
    for a in node.addrs().await? {
        eprintln!("  {a}");
    }
    eprintln!("fetch it with: shoal get <ticket>   (Ctrl-C stops sharing)");
    stopper.wait().await;
    node.shutdown().await;
    Ok(())
}
