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

/// `shoal unshare ID` through the running daemon (which also withdraws it from the network).
pub(crate) async fn unshare_remote(
    client: &shoal_api::client::Client,
    id: &shoal_store::ContentId,
    json: bool,
) -> anyhow::Result<()> {
    let removed = client.unshare(id).await?;
    if json {
        super::print_line(&serde_json::to_string(&removed)?)?;
    }
    eprintln!("no longer shared by the running daemon: {id}");
    Ok(())
}

/// `shoal unshare ID` without a daemon: the catalog forgets it (nothing was announcing it).
pub(crate) fn unshare_here(home: &Path, id: &shoal_store::ContentId, json: bool) -> anyhow::Result<()> {
    let store = shoal_store::Store::open(home).with_context(|| format!("opening {}", home.display()))?;
    let Some(gone) = store.remove_share(id)? else {
        anyhow::bail!("{id} is not shared here (see `shoal ls` with a daemon running)");
    };
    if json {
        super::print_line(&serde_json::json!({ "removed": id.to_string(), "withdrawn": gone.len() }).to_string())?;
    }
    eprintln!("no longer shared: {id} ({} id(s) withdrawn)", gone.len());
    Ok(())
}

/// `shoal doctor`: every problem on its own line (or a JSON list); exit 1 if there is any.
pub(crate) fn doctor(home: &Path, json: bool) -> anyhow::Result<()> {
    let store = shoal_store::Store::open(home).with_context(|| format!("opening {}", home.display()))?;
    let problems = store.check()?;
    if json {
        super::print_line(&serde_json::json!({ "ok": problems.is_empty(), "problems": problems }).to_string())?;
    } else if problems.is_empty() {
        super::print_line(&format!("ok: {} is consistent", home.display()))?;
    } else {
        for p in &problems {
            super::print_line(&format!("problem: {p}"))?;
        }
    }
    if !problems.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
