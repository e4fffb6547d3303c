//! Verbs carried out by a running daemon, through its API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use shoal_api::client::Client;
use shoal_api::types::{ContentId, DownloadState, StartDownload};

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
    let shared = c.share(&path).await?;
    if json {
        super::print_line(&serde_json::to_string(&shared)?)?;
    } else {
        super::print_line(&shared.ticket)?;
    }
    eprintln!("shared by the running daemon: {} ({} bytes), id {}", shared.name, shared.size, shared.id);
    Ok(())
}

pub(crate) async fn get(c: &Client, what: &str, output: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let output = output.as_deref().map(absolute).transpose()?;
    let started =
        c.start_download(&StartDownload { what: what.to_string(), output, paused: false, name: None }).await?;
    // The same display as a one-shot download: a bar on a terminal, plain lines otherwise.
    let (tx, rx) = tokio::sync::watch::channel(shoal_node::Progress::default());
    let display = tokio::spawn(crate::progress::report(rx));
    let result = follow(c, &started.id, &tx, json).await;
    drop(tx);
    let _ = display.await;
    result
}

async fn follow(
    c: &Client,
    id: &ContentId,
    tx: &tokio::sync::watch::Sender<shoal_node::Progress>,
    json: bool,
) -> anyhow::Result<()> {
    loop {
        let d = c.download(id).await?;
        match d.state {
            DownloadState::Done => {
                let r = d.report.context("the daemon says the download is done but sent no report")?;
                eprintln!("done: {} ({} bytes), id {} verified", r.out.display(), r.size, r.id);
                if json {
                    super::print_line(&serde_json::to_string(&r)?)?;
                }
                return Ok(());
            }
            DownloadState::Failed => bail!("{}", d.error.unwrap_or_else(|| "download failed".into())),
            DownloadState::Paused => bail!("the download was paused (shoal ls shows it; resume it through the API)"),
            DownloadState::Cancelled => bail!("the download was cancelled"),
            DownloadState::Running => {
                let _ = tx.send(d.progress);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn status(c: &Client, json: bool) -> anyhow::Result<()> {
    let st = c.status().await?;
    if json {
        return super::print_line(&serde_json::to_string(&st)?);
    }
    super::print_line(&format!("peer {}", st.peer))?;
    for a in &st.addrs {
        super::print_line(&format!("listening {a}"))?;
    }
    super::print_line(&format!("topology {}  search neighbours {}", st.topology, st.search_neighbours))?;
    for (peer, theirs) in &st.topology_mismatches {
        super::print_line(&format!(
            "warning: peer {peer} runs topology {theirs}, not ours: every peer of a network must use the same one"
        ))?;
    }
    super::print_line(&format!(
        "shares {}  active downloads {}  connected peers {}  uploaded {} bytes",
        st.shares, st.downloads_active, st.peers_connected, st.uploaded_bytes
    ))
}

pub(crate) async fn ls(c: &Client, json: bool) -> anyhow::Result<()> {
    let shares = c.shares().await?;
    let downloads = c.downloads().await?;
    if json {
        return super::print_line(&serde_json::json!({ "shares": shares, "downloads": downloads }).to_string());
    }
    for s in &shares {
        super::print_line(&format!("share    {}  {:>12}  {}  {}", s.id, s.size, s.name, s.path.display()))?;
    }
    for d in &downloads {
        let state = serde_json::to_value(d.state)?;
        let state = state.as_str().unwrap_or_default();
        super::print_line(&format!("download {}  {:>12}  {}  {}", d.id, d.progress.size, state, d.name))?;
    }
    Ok(())
}

pub(crate) async fn peers(c: &Client, json: bool) -> anyhow::Result<()> {
    let peers = c.peers().await?;
    if json {
        return super::print_line(&serde_json::to_string(&peers)?);
    }
    for p in &peers {
        super::print_line(&format!("{}  {}", p.peer, p.addrs.join(" ")))?;
    }
    Ok(())
}

pub(crate) async fn stop(c: &Client, json: bool) -> anyhow::Result<()> {
    let v = c.stop().await?;
    if json {
        super::print_line(&serde_json::to_string(&v)?)?;
    } else {
        eprintln!("the daemon is stopping");
    }
    Ok(())
}

/// `shoal ui`: a one-time login link to the daemon's web UI, opened in the browser (`xdg-open`, `open`) or
/// printed. The bearer token never goes into the link.
pub(crate) async fn ui(c: &Client, print: bool, json: bool, via: Option<&str>) -> anyhow::Result<()> {
    if let Some(v) = via
        && !(v.starts_with("http://") || v.starts_with("https://"))
    {
        anyhow::bail!("--via {v:?} is not an http:// or https:// address like https://nas.example/shoal");
    }
    let code = c.ui_code().await?;
    let url = match via {
        // The proxy's address already names the base path, if it has one.
        Some(v) => format!("{}/#code={}", v.trim_end_matches('/'), code.code),
        None => format!("{}{}", c.base_url(), code.path),
    };
    if json {
        return super::print_line(&serde_json::json!({"url": url, "expires_secs": code.expires_secs}).to_string());
    }
    let opened = !print && open_browser(&url);
    super::print_line(&url)?;
    if opened {
        eprintln!("opened in the browser; the link works once, within {} s", code.expires_secs);
    } else {
        eprintln!("open this link in a browser on this machine; it works once, within {} s", code.expires_secs);
    }
    Ok(())
}

/// Starts the desktop's browser on `url`, if this machine has one to start.
fn open_browser(url: &str) -> bool {
    let has_display = std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    if !cfg!(target_os = "macos") && !has_display {
        return false;
    }
    std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}
