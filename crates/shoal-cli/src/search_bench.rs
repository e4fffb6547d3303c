//! `shoal-search-bench`: what a search costs in each topology, on one network of real peers on loopback.
//!
//! ```text
//! cargo build --release -p shoal-cli && target/release/shoal-search-bench      # 50 peers, 200 files
//! target/release/shoal-search-bench --peers 20 --files 50 --queries 20 --topologies pure
//! ```
//!
//! For each topology: N real nodes in this process (plus, for hybrid, one index server they register with) (TCP on 127.0.0.1, port 0), each dialing `--links` random
//! earlier peers (a random graph, not a full mesh); `--files` small files with distinct names spread
//! uniformly at random over the peers, one copy each (names: two common words and a made-up word of the
//! file's own); then `--queries` searches, one after another, each from a random peer for one file's own
//! word, limit 1. Per query: success (the right id came back),
//! messages (every search message and every Kademlia request sent by any peer while the query ran, summed
//! over all peers' counters), peers reached (peers that received the query, for flooding), time to first
//! hit. Medians and the success rate are printed, and a JSON line per topology with `--json`. The same
//! seed gives the same graph, placement and queries.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use shoal_net::NetConfig;
use shoal_node::config::{SearchConfig, Topology};
use shoal_node::{Node, NodeConfig, SearchRequest};

struct Args {
    peers: usize,
    files: usize,
    queries: usize,
    links: usize,
    topologies: Vec<Topology>,
    seed: u64,
    json: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        peers: 50,
        files: 200,
        queries: 60,
        links: 3,
        topologies: vec![Topology::Pure, Topology::Structured, Topology::Hybrid, Topology::Supernode],
        seed: 1,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--peers" => a.peers = val()?.parse().context("--peers takes a number")?,
            "--files" => a.files = val()?.parse().context("--files takes a number")?,
            "--queries" => a.queries = val()?.parse().context("--queries takes a number")?,
            "--links" => a.links = val()?.parse().context("--links takes a number")?,
            "--seed" => a.seed = val()?.parse().context("--seed takes a number")?,
            "--topologies" => {
                a.topologies = val()?
                    .split(',')
                    .map(|t| t.parse::<Topology>().map_err(anyhow::Error::msg))
                    .collect::<Result<_, _>>()?
            }
            "--json" => a.json = true,
            "-h" | "--help" => {
                println!(
                    "usage: shoal-search-bench [--peers 50] [--files 200] [--queries 60] [--links 3] \
                     [--topologies pure,structured,hybrid,supernode] [--seed 1] [--json]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if a.peers < 2 || a.files == 0 || a.queries == 0 || a.links == 0 {
        bail!("--peers must be at least 2; --files, --queries and --links at least 1");
    }
    Ok(a)
}

const WORDS: &[&str] = &[
    "holiday", "photos", "concert", "lecture", "notes", "garden", "recipe", "travel", "report", "budget", "music",
    "video", "archive", "family", "project", "draft",
];

#[derive(Default)]
struct Totals {
    messages: u64,
    received: Vec<u64>,
}

fn totals(nodes: &[Node]) -> Totals {
    let mut t = Totals::default();
    for n in nodes {
        let c = n.search_counters();
        t.messages += c.router.queries_sent + c.router.hits_sent + n.network().dht_requests();
        t.received.push(c.router.queries_received - c.router.duplicates - c.router.throttled);
    }
    t
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Waits until the sum of all DHT requests stays still for a second (announcements done), at most `max`.
async fn settle(nodes: &[Node], max: Duration) {
    let deadline = Instant::now() + max;
    let mut last = u64::MAX;
    while Instant::now() < deadline {
        let now: u64 = nodes.iter().map(|n| n.network().dht_requests()).sum();
        if now == last {
            return;
        }
        last = now;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn run(t: Topology, a: &Args, dir: &Path) -> anyhow::Result<serde_json::Value> {
    // The same seed gives the same network and workload.
    let mut rng = shoal_proto::rng::SplitMix64::new(a.seed);
    let mut nodes: Vec<Node> = Vec::new();
    let started = Instant::now();
    let rss_before = rss_kib();
    // Hybrid: one index server besides the N peers; every peer registers with it.
    let server = match t {
        Topology::Hybrid => {
            let search = SearchConfig::default().with_index_server(true);
            let cfg = NodeConfig::loopback(dir.join(format!("{t}-server"))).with_topology(t).with_search(search);
            Some(Node::start(cfg).await.context("starting the index server")?)
        }
        _ => None,
    };
    let servers = match &server {
        Some(s) => vec![s.addrs().await?[0].clone()],
        None => Vec::new(),
    };
    for i in 0..a.peers {
        let mut boot = Vec::new();
        let mut picked = Vec::new();
        while picked.len() < a.links.min(i) {
            let j = rng.below(i);
            if !picked.contains(&j) {
                picked.push(j);
                boot.push(nodes[j].addrs().await?[0].clone());
            }
        }
        let cfg = NodeConfig::loopback(dir.join(format!("{t}-{i}")))
            .with_net(NetConfig::loopback().with_bootstrap(boot))
            .with_topology(t)
            .with_search(
                SearchConfig::default()
                    .with_index_servers(servers.clone())
                    // Supernodes may appear once a peer has been up a second and orphaned half a second.
                    .with_supernode(true, Duration::from_secs(1), Duration::from_millis(500)),
            );
        nodes.push(Node::start(cfg).await.with_context(|| format!("starting peer {i}"))?);
    }
    // Overlay links (pure, hybrid), routing tables (structured) or supernode homes settle.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let mut linked = 0;
        for n in &nodes {
            let ok = match t {
                Topology::Pure => n.search_counters().neighbours > 0,
                Topology::Hybrid => n.search_counters().index_servers_up > 0 && n.search_counters().neighbours > 0,
                Topology::Supernode => {
                    let c = n.search_counters();
                    c.role == Some(shoal_proto::search::supernode::Role::Super) || !c.supers.is_empty()
                }
                _ => !n.network().peers().await?.is_empty(),
            };
            linked += usize::from(ok);
        }
        if linked == nodes.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut files = Vec::new();
    for k in 0..a.files {
        let owner = rng.below(a.peers);
        // A made-up word of its own per file (what the queries look for), among common words.
        let own: String = (0..7).map(|_| (b'a' + rng.below(26) as u8) as char).collect();
        let name = format!("{} {own} {}.dat", WORDS[rng.below(WORDS.len())], WORDS[rng.below(WORDS.len())]);
        let path = dir.join(format!("{t}-{owner}")).join(&name);
        std::fs::write(&path, format!("{t} file {k} {own}")).with_context(|| format!("writing {}", path.display()))?;
        let info = nodes[owner].share(&path).await?;
        files.push((owner, own, info.id));
    }
    settle(&nodes, Duration::from_secs(120)).await;
    let setup = started.elapsed().as_secs_f64();
    let neighbours: usize = nodes.iter().map(|n| n.search_counters().neighbours).sum();
    let supernodes =
        nodes.iter().filter(|n| n.search_counters().role == Some(shoal_proto::search::supernode::Role::Super)).count();

    let (mut msgs, mut reached, mut first) = (Vec::new(), Vec::new(), Vec::new());
    let mut ok = 0usize;
    for _ in 0..a.queries {
        let (owner, own, id) = files[rng.below(files.len())].clone();
        let mut asker = rng.below(a.peers);
        if asker == owner {
            asker = (asker + 1) % a.peers;
        }
        let everyone: Vec<Node> = nodes.iter().chain(server.iter()).cloned().collect();
        let before = totals(&everyone);
        let req = SearchRequest { limit: 1, timeout: Duration::from_secs(10), ..SearchRequest::words(own) };
        let (hits, stats) = nodes[asker].search(req).await?.collect().await;
        // Let answers still in flight land before the counters are read again.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = totals(&everyone);
        msgs.push((after.messages - before.messages) as f64);
        reached.push(after.received.iter().zip(&before.received).filter(|(x, y)| x > y).count() as f64);
        if hits.iter().any(|h| h.id == id) {
            ok += 1;
            if let Some(f) = stats.first_hit {
                first.push(f.as_secs_f64() * 1000.0);
            }
        }
    }
    let rss_per_peer = rss_kib().saturating_sub(rss_before) as f64 / a.peers as f64 / 1024.0;
    for n in nodes.iter().chain(server.iter()) {
        n.shutdown().await;
    }
    Ok(serde_json::json!({
        "topology": t.to_string(),
        "peers": a.peers,
        "files": a.files,
        "queries": a.queries,
        "links_per_new_peer": a.links,
        "mean_degree": neighbours as f64 / a.peers as f64,
        "supernodes": supernodes,
        "success_rate": ok as f64 / a.queries as f64,
        "median_messages_per_query": median(&mut msgs),
        "median_peers_reached": median(&mut reached),
        "median_first_hit_ms": median(&mut first),
        "setup_seconds": setup,
        "rss_mib_per_peer": rss_per_peer,
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = parse_args()?;
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let mut rows = Vec::new();
    for &t in &a.topologies {
        eprintln!("{t}: starting {} peers, sharing {} files, running {} queries ...", a.peers, a.files, a.queries);
        let row = run(t, &a, dir.path()).await?;
        if a.json {
            println!("{row}");
        }
        rows.push(row);
    }
    println!(
        "{:<11} {:>7} {:>13} {:>14} {:>13} {:>15} {:>12}",
        "topology", "success", "msgs/query", "peers reached", "1st hit ms", "mean degree", "MiB/peer"
    );
    for r in &rows {
        println!(
            "{:<11} {:>6.1}% {:>13.0} {:>14.0} {:>13.1} {:>15.1} {:>12.1}",
            r["topology"].as_str().unwrap_or("?"),
            r["success_rate"].as_f64().unwrap_or(0.0) * 100.0,
            r["median_messages_per_query"].as_f64().unwrap_or(f64::NAN),
            r["median_peers_reached"].as_f64().unwrap_or(f64::NAN),
            r["median_first_hit_ms"].as_f64().unwrap_or(f64::NAN),
            r["mean_degree"].as_f64().unwrap_or(f64::NAN),
            r["rss_mib_per_peer"].as_f64().unwrap_or(f64::NAN),
        );
    }
    Ok(())
}
