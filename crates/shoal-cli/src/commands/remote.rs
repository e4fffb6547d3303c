//! Verbs carried out by a running daemon, through its API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use shoal_api::client::Client;

/// The daemon of `home`, if one runs.
pub(crate) async fn daemon(home: &Path) -> anyhow::Result<Option<Client>> {
    Ok(Client::discover(home).await?)
}

/// The daemon of `home`, or a clear error.
pub(crate) async fn required(home: &Path) -> anyhow::Result<Client> {
    daemon(home).await?.with_context(|| {
        format!("no shoal daemon is running on {}: start one with `shoal daemon` (same --home)", home.display())
    })
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    Ok(std::env::current_dir().context("finding the current directory")?.join(p))
}

pub(crate) async fn share(c: &Client, path: &Path, json: bool) -> anyhow::Result<()> {
    let path = std::fs::canonicalize(path).with_context(|| format!("{} does not exist", path.display()))?;
    let v: serde_json::Value = c.post("/api/v1/shares", &serde_json::json!({ "path": path })).await?;
    if json {
        super::print_line(&v.to_string())?;
    } else {
        super::print_line(v["ticket"].as_str().unwrap_or_default())?;
    }
    eprintln!(
        "shared by the running daemon: {} ({} bytes), id {}",
        v["name"].as_str().unwrap_or("?"),
        v["size"],
        v["id"].as_str().unwrap_or("?")
    );
    Ok(())
}

pub(crate) async fn get(c: &Client, what: &str, output: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let output = output.as_deref().map(absolute).transpose()?;
    let started: serde_json::Value =
        c.post("/api/v1/downloads", &serde_json::json!({ "what": what, "output": output })).await?;
    let id = started["id"].as_str().context("the daemon did not say which download it started")?.to_string();
    // The same display as a one-shot download: a bar on a terminal, plain lines otherwise.
    let (tx, rx) = tokio::sync::watch::channel(shoal_node::Progress::default());
    let display = tokio::spawn(crate::progress::report(rx));
    let result = follow(c, &id, &tx, json).await;
    drop(tx);
    let _ = display.await;
    result
}

async fn follow(
    c: &Client,
    id: &str,
    tx: &tokio::sync::watch::Sender<shoal_node::Progress>,
    json: bool,
) -> anyhow::Result<()> {
    loop {
        let v: serde_json::Value = c.get(&format!("/api/v1/downloads/{id}")).await?;
        match v["state"].as_str() {
            Some("done") => {
                let r = &v["report"];
                eprintln!(
                    "done: {} ({} bytes), id {} verified",
                    r["out"].as_str().unwrap_or("?"),
                    r["size"],
                    r["id"].as_str().unwrap_or("?")
                );
                if json {
                    super::print_line(&r.to_string())?;
                }
                return Ok(());
            }
            Some("failed") => bail!("{}", v["error"].as_str().unwrap_or("download failed")),
            Some("paused") => bail!("the download was paused (shoal ls shows it; resume it through the API)"),
            Some("cancelled") => bail!("the download was cancelled"),
            _ => {
                if let Ok(p) = serde_json::from_value::<shoal_node::Progress>(v["progress"].clone()) {
                    let _ = tx.send(p);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn status(c: &Client, json: bool) -> anyhow::Result<()> {
    let v: serde_json::Value = c.get("/api/v1/status").await?;
    if json {
        return super::print_line(&v.to_string());
    }
    super::print_line(&format!("peer {}", v["peer"].as_str().unwrap_or("?")))?;
    for a in v["addrs"].as_array().into_iter().flatten() {
        super::print_line(&format!("listening {}", a.as_str().unwrap_or("?")))?;
    }
    super::print_line(&format!(
        "topology {}  search neighbours {}",
        v["topology"].as_str().unwrap_or("?"),
        v["search_neighbours"]
    ))?;
    for m in v["topology_mismatches"].as_array().into_iter().flatten() {
        super::print_line(&format!(
            "warning: peer {} runs topology {}, not ours: every peer of a network must use the same one",
            m[0].as_str().unwrap_or("?"),
            m[1].as_str().unwrap_or("?")
        ))?;
    }
    super::print_line(&format!(
        "shares {}  active downloads {}  connected peers {}  uploaded {} bytes",
        v["shares"], v["downloads_active"], v["peers_connected"], v["uploaded_bytes"]
    ))
}

pub(crate) async fn ls(c: &Client, json: bool) -> anyhow::Result<()> {
    let shares: serde_json::Value = c.get("/api/v1/shares").await?;
    let downloads: serde_json::Value = c.get("/api/v1/downloads").await?;
    if json {
        return super::print_line(&serde_json::json!({ "shares": shares, "downloads": downloads }).to_string());
    }
    for s in shares.as_array().into_iter().flatten() {
        super::print_line(&format!(
            "share    {}  {:>12}  {}  {}",
            s["id"].as_str().unwrap_or("?"),
            s["size"],
            s["name"].as_str().unwrap_or("?"),
            s["path"].as_str().unwrap_or("?")
        ))?;
    }
    for d in downloads.as_array().into_iter().flatten() {
        super::print_line(&format!(
            "download {}  {:>12}  {}  {}",
            d["id"].as_str().unwrap_or("?"),
            d["progress"]["size"],
            d["state"].as_str().unwrap_or("?"),
            d["name"].as_str().unwrap_or("?")
        ))?;
    }
    Ok(())
}

pub(crate) async fn peers(c: &Client, json: bool) -> anyhow::Result<()> {
    let v: serde_json::Value = c.get("/api/v1/peers").await?;
    if json {
        return super::print_line(&v.to_string());
    }
    for p in v.as_array().into_iter().flatten() {
        let addrs: Vec<&str> = p["addrs"].as_array().into_iter().flatten().filter_map(|a| a.as_str()).collect();
        super::print_line(&format!("{}  {}", p["peer"].as_str().unwrap_or("?"), addrs.join(" ")))?;
    }
    Ok(())
}

pub(crate) async fn stop(c: &Client, json: bool) -> anyhow::Result<()> {
    let v: serde_json::Value = c.post("/api/v1/stop", &serde_json::json!({})).await?;
    if json {
        super::print_line(&v.to_string())?;
    } else {
        eprintln!("the daemon is stopping");
    }
    Ok(())
}
