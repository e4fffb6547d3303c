//! `shoal demo`: a whole small network in this process, on 127.0.0.1 only, in a temporary directory.
//! With `--ui`, the downloading peer's web UI is served too, and the network runs until Ctrl-C.

use std::time::Instant;

use anyhow::{Context, bail};
use shoal_net::NetConfig;
use shoal_node::{DownloadRequest, Node, NodeConfig};

pub(crate) async fn run(sources: usize, size_mib: u64, json: bool, ui: bool) -> anyhow::Result<()> {
    // With --json the narrative goes to stderr and stdout carries one JSON object.
    let say = |line: String| if json { eprintln!("{line}") } else { println!("{line}") };
    if !(1..=16).contains(&sources) {
        bail!("--sources must be between 1 and 16");
    }
    if !(1..=4096).contains(&size_mib) {
        bail!("--size-mib must be between 1 and 4096");
    }
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let dir = tmp.path();
    let file = dir.join("demo.bin");
    eprintln!("generating a {size_mib} MiB file ...");
    crate::sample::write_pseudo_random(&file, size_mib * 1024 * 1024).context("writing the demo file")?;

    let mut peers: Vec<Node> = Vec::new();
    let mut first_addr: Option<shoal_net::Multiaddr> = None;
    for i in 0..sources {
        let mut net = NetConfig::loopback();
        if let Some(a) = &first_addr {
            net = net.with_bootstrap(vec![a.clone()]);
        }
        let node = Node::start(NodeConfig::loopback(dir.join(format!("peer{i}"))).with_net(net)).await?;
        if first_addr.is_none() {
            first_addr = node.addrs().await?.into_iter().next();
        }
        peers.push(node);
    }
    let hashing = Instant::now();
    let mut info = None;
    for p in &peers {
        info = Some(p.share(&file).await?);
    }
    let info = info.context("no peers")?;
    eprintln!(
        "{sources} peers share it (hashed in {:.1} s each on average)",
        hashing.elapsed().as_secs_f64() / sources as f64
    );
    let ticket = peers[0].ticket(&info).await?;
    let boot = first_addr.context("the first peer has no address")?;
    let downloader = Node::start(
        NodeConfig::loopback(dir.join("downloader")).with_net(NetConfig::loopback().with_bootstrap(vec![boot])),
    )
    .await?;
    say(format!("network: {} peers on 127.0.0.1", sources + 1));
    for (i, p) in peers.iter().enumerate() {
        say(format!("  source {i}: {}", p.peer_id()));
    }
    say(format!("  downloader: {}", downloader.peer_id()));
    say("the downloader gets a ticket naming source 0 only; it finds the others through the DHT".into());
    let out = dir.join("downloaded.bin");
    let served = match ui {
        true => Some(serve_ui(&downloader, &say).await?),
        false => None,
    };
    let report = match served {
        // Through the daemon's download manager, so that the UI lists it and follows its progress.
        Some(_) => managed_download(&downloader, &ticket.to_string(), &out).await?,
        None => {
            let handle = downloader.download(DownloadRequest::from_ticket(&ticket, Some(out.clone()))).await?;
            let progress = tokio::spawn(crate::progress::report(handle.progress()));
            let report = handle.finish().await;
            progress.abort();
            report?
        }
    };
    let id = crate::sample::blake3_file(&out)?;
    if id != info.id.to_string() {
        bail!("the downloaded file's BLAKE3 {id} differs from the shared id {}", info.id);
    }
    say(format!(
        "downloaded {} MiB in {:.2} s: {:.0} MB/s",
        size_mib,
        report.seconds,
        report.size as f64 / report.seconds / 1e6
    ));
    for p in &report.peers {
        let name = peers
            .iter()
            .position(|n| n.peer_id().to_string() == p.peer)
            .map_or_else(|| p.peer.clone(), |i| format!("source {i}"));
        say(format!(
            "  from {name}: {:>6.1} MiB{}",
            p.bytes as f64 / 1048576.0,
            p.dropped.as_deref().map(|d| format!(" (dropped: {d})")).unwrap_or_default()
        ));
    }
    say(format!("verified id (BLAKE3, as b3sum prints it): {id}"));
    if json {
        let v = serde_json::json!({
            "sources": peers.iter().map(|p| p.peer_id().to_string()).collect::<Vec<_>>(),
            "downloader": downloader.peer_id().to_string(),
            "id": id,
            "verified": true,
            "report": report,
        });
        super::print_line(&v.to_string())?;
    }
    if let Some((_, task)) = served {
        // The handler is in place before we say Ctrl-C works: a SIGINT right after the line must end the
        // demo cleanly, not kill it with the default action.
        let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .context("installing the Ctrl-C handler")?;
        say("the network keeps running for the web UI; Ctrl-C ends it".into());
        interrupt.recv().await;
        task.abort();
    }
    downloader.shutdown().await;
    for p in &peers {
        p.shutdown().await;
    }
    drop(tmp);
    Ok(())
}

/// Serves `node`'s API and web UI on 127.0.0.1, prints the one-time login link, and waits until the
/// browser has logged in (or the link has expired).
async fn serve_ui(
    node: &Node,
    say: &impl Fn(String),
) -> anyhow::Result<(shoal_api::server::ApiState, tokio::task::JoinHandle<()>)> {
    let (addr, state, task) = shoal_api::daemon::serve_local(node.clone()).await?;
    say(format!("web UI of the downloader (one-time login, valid 2 minutes): http://{addr}{}", state.ui_login_path()));
    say("open it in a browser; the download starts once it has logged in".into());
    let deadline = Instant::now() + shoal_api::server::ui::CODE_TTL;
    while state.ui_sessions() == 0 && Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Ok((state, task))
}

/// Downloads `ticket` through the node's download manager and waits for its end on the event feed.
async fn managed_download(
    node: &Node,
    ticket: &str,
    out: &std::path::Path,
) -> anyhow::Result<shoal_node::transfer::download::DownloadReport> {
    use shoal_node::{Event, transfer::Event as T};
    let mut events = node.events().subscribe();
    let info = node.add_download(ticket, Some(out.to_path_buf()), false).await?;
    while let Some(ev) = events.recv().await {
        match ev.as_ref() {
            Event::Transfer(T::DownloadDone { id, report }) if *id == info.id => return Ok(report.clone()),
            Event::Transfer(T::DownloadFailed { id, error }) if *id == info.id => bail!("the download failed: {error}"),
            _ => {}
        }
    }
    bail!("the node stopped before the download ended")
}
