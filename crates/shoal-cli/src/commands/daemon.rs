//! `shoal daemon`: a peer in the foreground.

use anyhow::Context;
use shoal_node::{Node, NodeConfig};

pub(crate) async fn run(config: NodeConfig, json: bool) -> anyhow::Result<()> {
    let home = config.home.clone();
    let node = Node::start(config).await.context("starting the peer")?;
    let addrs = node.addrs().await?;
    if json {
        let v = serde_json::json!({
            "peer": node.peer_id().to_string(),
            "addrs": addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "home": home,
        });
        super::print_line(&v.to_string())?;
    } else {
        super::print_line(&format!("peer {}", node.peer_id()))?;
        for a in &addrs {
            super::print_line(&format!("listening {a}"))?;
        }
    }
    let shares = node.store().shares()?;
    eprintln!("serving {} shares from {} (Ctrl-C stops)", shares.len(), home.display());
    super::until_stopped().await?;
    node.shutdown().await;
    Ok(())
}
