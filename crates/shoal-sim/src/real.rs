//! Real peers in one process: N Shoal nodes on libp2p's in-process memory transport, in wall-clock time.
//!
//! Each peer is the real [`Node`] (its own data directory with identity, SQLite catalog and shared files;
//! its libp2p swarm with identify, ping and Kademlia; its transfer server and search driver), the same as a
//! `shoal daemon` runs. Only the transport differs: `/memory/0` addresses, with Noise or (by default)
//! libp2p's plaintext handshake ([`shoal_net::TransportKind::Memory`]). Peers join through `degree / 2`
//! random peers already up (a random graph, not a full mesh); Kademlia then fills their routing tables as it
//! does on a real network.
//!
//! A run: start the peers, let their routing tables settle, share the files (real files, hashed and
//! announced as provider records, with their keywords), wait until the DHT is quiet, then run the queries
//! one after another: a random online peer that lacks the file looks up its providers with
//! [`Node::find_providers`] (libp2p's `get_providers`). Churn stops and restarts whole nodes (same data
//! directory, so the same identity and shares; a restarted node announces its shares again). Hops per
//! lookup are read off a replay over the routing tables at the time (see [`hops`]).
//!
//! Over 600 lines: start-up (`start_all`, also used by [`messaging`]), churn, lookups and the report of
//! the real-peer mode share one run state; `real/hops.rs` holds the hop counting and `real/messaging.rs`
//! the topic scenario. Splitting churn and lookups out is open work.

pub mod hops;
pub mod letters;
pub mod messaging;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use shoal_net::NetConfig;
use shoal_node::config::Topology as NodeTopology;
use shoal_node::{ContentId, Node, NodeConfig};

use crate::report::{quantile, status_kib};
use crate::scenario::{Scenario, Topology};
use crate::sim::Rng;

/// Kademlia's replication factor and parallelism in libp2p (`K_VALUE`, `ALPHA_VALUE`), used by the replay.
const K: usize = 20;
const ALPHA: usize = 3;

/// Peers started at once.
const START_BATCH: usize = 32;

/// A real run that could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RealError {
    /// The tokio runtime or the temporary directory could not be made.
    #[error("setting up the run: {0}")]
    Setup(#[from] std::io::Error),
    /// A node did not start.
    #[error("starting peer {peer}: {why}")]
    Start {
        /// Which peer.
        peer: usize,
        /// Why.
        why: String,
    },
    /// A file could not be shared.
    #[error("sharing a file on peer {peer}: {why}")]
    Share {
        /// Which peer.
        peer: usize,
        /// Why.
        why: String,
    },
}

/// One lookup.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RealQuery {
    /// Query number.
    pub n: usize,
    /// The peer that looked.
    pub asker: usize,
    /// Copies of the file online when asked.
    pub copies_online: usize,
    /// A holder of the file was found.
    pub success: bool,
    /// Milliseconds to the first provider that holds the file.
    pub first_provider_ms: Option<f64>,
    /// Milliseconds until the whole lookup ended (it goes on after the first provider, asking the closest
    /// peers, while the next lookup starts).
    pub lookup_ms: f64,
    /// Kademlia requests the asker sent until then (other queries it ran meanwhile included).
    pub requests: u64,
    /// Replayed hops to the first provider record (`None`: the replay reached none).
    pub hops: Option<u32>,
    /// Replayed depth of the whole lookup.
    pub last_hop: u32,
}

/// The summary of a real run.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RealSummary {
    /// Scenario name.
    pub name: String,
    /// Topology (structured).
    pub topology: Topology,
    /// Peers.
    pub peers: usize,
    /// Noise (true) or plaintext.
    pub encrypted: bool,
    /// Seconds to start every peer.
    pub start_seconds: f64,
    /// Seconds for routing tables to settle and shares to be announced.
    pub settle_seconds: f64,
    /// Mean routing-table size when the queries started.
    pub mean_routing_table: f64,
    /// Provider announcements (files and keywords) that reached the DHT before the queries started.
    pub announced: u64,
    /// Announcements that failed and were tried again.
    pub announce_failures: u64,
    /// Resident memory of the whole process once every peer has started and shared, per peer, MiB (an upper
    /// bound: it includes the process's own memory, and what an earlier run in the same process left).
    pub rss_mib_per_peer: f64,
    /// Peak resident memory of the process, MiB.
    pub peak_rss_mib: f64,
    /// Queries run.
    pub queries: usize,
    /// Share of queries that found a holder.
    pub success_rate: f64,
    /// The same, counting only queries whose file had a copy online.
    pub success_rate_when_online: f64,
    /// Median milliseconds to the first provider (successful queries).
    pub median_first_provider_ms: f64,
    /// Median hops to the first provider record (replayed).
    pub median_hops: f64,
    /// 90th percentile of the same.
    pub p90_hops: f64,
    /// Mean of the same.
    pub mean_hops: f64,
    /// Median depth of a whole lookup (replayed).
    pub median_lookup_depth: f64,
    /// ceil(log2 N), for comparison (Kademlia's bound is log2 N + c steps).
    pub log2_peers: f64,
    /// Median Kademlia requests per lookup.
    pub median_requests_per_lookup: f64,
    /// Kademlia requests per online peer per second over a quiet window before the lookups
    /// (`maintenance_window_s`: bootstrap and bucket refreshes; with churn also the announcements of peers
    /// coming back).
    pub maintenance_per_peer_per_s: f64,
    /// Peers online at the end.
    pub online_at_end: usize,
    /// Wall-clock seconds.
    pub wall_seconds: f64,
}

/// A real run's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RealReport {
    /// The summary.
    pub summary: RealSummary,
    /// Every query.
    pub queries: Vec<RealQuery>,
}

impl RealReport {
    /// One line per query, with a header.
    pub fn csv(&self) -> String {
        let mut out =
            String::from("n,asker,copies_online,success,first_provider_ms,lookup_ms,requests,hops,last_hop\n");
        for q in &self.queries {
            out.push_str(&format!(
                "{},{},{},{},{},{:.1},{},{},{}\n",
                q.n,
                q.asker,
                q.copies_online,
                q.success,
                q.first_provider_ms.map_or(String::new(), |v| format!("{v:.1}")),
                q.lookup_ms,
                q.requests,
                q.hops.map_or(String::new(), |h| h.to_string()),
                q.last_hop
            ));
        }
        out
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Online,
    Leaving,
    Offline,
}

pub(crate) struct Peer {
    pub(crate) home: PathBuf,
    pub(crate) id: Option<PeerId>,
    pub(crate) node: Option<Node>,
    pub(crate) addr: Option<Multiaddr>,
    pub(crate) state: State,
}

/// The peers, shared by the query loop and the churn task. Never held across an `.await`.
pub(crate) type Peers = Arc<Mutex<Vec<Peer>>>;

pub(crate) fn lock(peers: &Peers) -> std::sync::MutexGuard<'_, Vec<Peer>> {
    shoal_store::lock(peers)
}

pub(crate) fn online_nodes(peers: &Peers) -> Vec<(usize, Node)> {
    lock(peers)
        .iter()
        .enumerate()
        .filter(|(_, p)| p.state == State::Online)
        .filter_map(|(i, p)| Some((i, p.node.clone()?)))
        .collect()
}

/// Up to `n` addresses of random online peers (other than `except`).
pub(crate) fn random_addrs(peers: &Peers, rng: &mut Rng, n: usize, except: usize) -> Vec<Multiaddr> {
    let ps = lock(peers);
    let up: Vec<&Multiaddr> = ps
        .iter()
        .enumerate()
        .filter(|(i, p)| *i != except && p.state == State::Online)
        .filter_map(|(_, p)| p.addr.as_ref())
        .collect();
    let mut out: Vec<Multiaddr> = Vec::new();
    for _ in 0..4 * n {
        if out.len() >= n.min(up.len()) {
            break;
        }
        let a = up[rng.below(up.len())];
        if !out.contains(a) {
            out.push(a.clone());
        }
    }
    out
}

/// Starts the structured-topology node at `home` on `net` (a memory-transport configuration), joining
/// through `boot`.
pub(crate) async fn start_node(
    home: &Path,
    net: &NetConfig,
    boot: Vec<Multiaddr>,
) -> Result<(Node, Multiaddr), String> {
    let net = net.clone().with_bootstrap(boot);
    let cfg = NodeConfig::loopback(home.to_path_buf()).with_net(net).with_topology(NodeTopology::Structured);
    let node = Node::start(cfg).await.map_err(|e| e.to_string())?;
    let addr = node.addrs().await.map_err(|e| e.to_string())?.into_iter().next().ok_or("no listen address")?;
    Ok((node, addr))
}

/// Runs a real scenario (structured topology) to the end.
pub fn run(sc: &Scenario) -> Result<RealReport, RealError> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run_async(sc))
}

/// `n` peers with homes under `dir`, none started.
pub(crate) fn new_peers(dir: &Path, n: usize) -> Peers {
    Arc::new(Mutex::new(
        (0..n)
            .map(|i| Peer { home: dir.join(format!("p{i}")), id: None, node: None, addr: None, state: State::Offline })
            .collect(),
    ))
}

/// Records peer `i` as up, with its node and listen address.
pub(crate) fn set_online(peers: &Peers, i: usize, node: Node, addr: Multiaddr) {
    let mut ps = lock(peers);
    ps[i].id = Some(node.peer_id());
    ps[i].node = Some(node);
    ps[i].addr = Some(addr);
    ps[i].state = State::Online;
}

/// Starts every peer: peer 0 alone, then batches, each peer joining through `links` random peers of earlier
/// batches.
pub(crate) async fn start_all(peers: &Peers, rng: &mut Rng, links: usize, net: &NetConfig) -> Result<(), RealError> {
    let n = lock(peers).len();
    let mut next = 0;
    while next < n {
        let batch: Vec<usize> = (next..(next + if next == 0 { 1 } else { START_BATCH }).min(n)).collect();
        next += batch.len();
        let plans: Vec<(usize, PathBuf, Vec<Multiaddr>)> = batch
            .iter()
            .map(|&i| {
                let home = lock(peers)[i].home.clone();
                (i, home, random_addrs(peers, rng, links, i))
            })
            .collect();
        let started = futures::future::join_all(
            plans.into_iter().map(|(i, home, boot)| async move { (i, start_node(&home, net, boot).await) }),
        )
        .await;
        for (i, r) in started {
            let (node, addr) = r.map_err(|why| RealError::Start { peer: i, why })?;
            set_online(peers, i, node, addr);
        }
    }
    Ok(())
}

/// A fresh folder for the peers' homes, removed when dropped: in `/dev/shm` where there is one. A thousand
/// catalogs on one disk wait on each other's writes (a 1,000-peer topic run wrote 2.3 GB and spent half
/// its time in I/O wait); each peer of a real network has a disk of its own.
pub(crate) fn homes_dir(prefix: &str) -> std::io::Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let mut b = tempfile::Builder::new();
    b.prefix(prefix);
    if shm.is_dir()
        && let Ok(dir) = b.tempdir_in(shm)
    {
        return Ok(dir);
    }
    b.tempdir()
}

async fn run_async(sc: &Scenario) -> Result<RealReport, RealError> {
    let wall = Instant::now();
    let dir = homes_dir("shoal-sim-")?;
    let mut rng = Rng::new(sc.seed);
    let peers = new_peers(dir.path(), sc.peers);
    let links = (sc.degree / 2).max(1);

    // 1. Start.
    eprintln!("  starting {} peers ...", sc.peers);
    start_all(&peers, &mut rng, links, &NetConfig::memory(sc.encrypted)).await?;
    let start_seconds = wall.elapsed().as_secs_f64();
    let settle_from = Instant::now();
    settle_tables(&peers).await;

    // 2. Files: real files in the holders' data directories, shared (hashed, announced).
    let popularity = sc.popularity();
    let mut holders: Vec<Vec<usize>> = Vec::with_capacity(sc.files);
    for k in 0..sc.files {
        let mut h = HashSet::new();
        while h.len() < sc.copies(k, &popularity) {
            h.insert(rng.below(sc.peers));
        }
        holders.push(h.into_iter().collect());
    }
    let mut by_peer: HashMap<usize, Vec<usize>> = HashMap::new();
    for (k, h) in holders.iter().enumerate() {
        for &p in h {
            by_peer.entry(p).or_default().push(k);
        }
    }
    eprintln!("  sharing {} files ({} copies) ...", sc.files, holders.iter().map(Vec::len).sum::<usize>());
    let words: Vec<String> =
        (0..sc.files).map(|_| (0..8).map(|_| (b'a' + rng.below(26) as u8) as char).collect()).collect();
    let ids = share_all(&peers, &by_peer, &words, sc.seed).await?;
    wait_quiet(&peers).await;
    let settle_seconds = settle_from.elapsed().as_secs_f64();
    // The whole process's resident memory, not the growth during this run: freed memory of an earlier run in
    // the same process is reused without raising RSS, which made a growth figure far too small.
    let rss_mib_per_peer = status_kib("VmRSS:") as f64 / 1024.0 / sc.peers as f64;
    let (mean_routing_table, announced, announce_failures) = {
        let nodes = online_nodes(&peers);
        let states = futures::future::join_all(nodes.iter().map(|(_, n)| n.network().dht_state(Vec::new()))).await;
        let states: Vec<_> = states.into_iter().flatten().collect();
        (
            states.iter().map(|s| s.routing.len() as f64).sum::<f64>() / nodes.len().max(1) as f64,
            states.iter().map(|s| s.announced).sum(),
            states.iter().map(|s| s.announce_failures).sum(),
        )
    };
    let holder_ids: Vec<HashSet<PeerId>> = holders
        .iter()
        .map(|h| {
            let ps = lock(&peers);
            h.iter().filter_map(|p| ps[*p].id).collect()
        })
        .collect();

    // 3. Churn, then queries.
    let churn = sc.churn.clone().map(|c| {
        let peers = peers.clone();
        let seed = sc.seed ^ 0xC4_u64;
        let (encrypted, links) = (sc.encrypted, links);
        let net = NetConfig::memory(encrypted);
        tokio::spawn(async move { churn_loop(peers, c, seed, net, links, Default::default()).await })
    });
    if churn.is_some() {
        let warmup = sc.warmup_s.unwrap_or(60.0);
        eprintln!("  churn: warming up for {warmup:.0} s ...");
        tokio::time::sleep(Duration::from_secs_f64(warmup)).await;
    }
    // Maintenance: what the DHT sends on its own over a quiet window (bootstrap and bucket refreshes,
    // re-announcements of peers that came back), before the lookups start.
    let (quiet_before, quiet_from) = (total_requests(&peers), Instant::now());
    tokio::time::sleep(Duration::from_secs_f64(sc.maintenance_window_s)).await;
    let maintenance_per_peer_per_s = total_requests(&peers).saturating_sub(quiet_before) as f64
        / online_nodes(&peers).len().max(1) as f64
        / quiet_from.elapsed().as_secs_f64().max(1e-3);
    let timeout = Duration::from_millis(sc.query_timeout_ms);
    let mut cumulative = Vec::with_capacity(popularity.len());
    let mut acc = 0.0;
    for p in &popularity {
        acc += p;
        cumulative.push(acc);
    }
    let mut queries = Vec::with_capacity(sc.queries);
    let mut ends = Vec::with_capacity(sc.queries);
    eprintln!("  {} lookups ...", sc.queries);
    for n in 0..sc.queries {
        let u = rng.unit();
        let k = cumulative.partition_point(|c| *c < u).min(sc.files - 1);
        let (q, rest) = lookup(&peers, &mut rng, n, &ids[k], &holders[k], &holder_ids[k], timeout).await;
        queries.push(q);
        ends.push((n, rest));
        if (n + 1) % 50 == 0 {
            let ok = queries.iter().filter(|q| q.success).count();
            let first: Vec<f64> = queries.iter().filter_map(|q| q.first_provider_ms).collect();
            eprintln!(
                "    {} lookups: {ok} found, median {:.0} ms to the first provider, {} peers online",
                n + 1,
                quantile(first, 0.5),
                online_nodes(&peers).len()
            );
        }
    }
    // Bounded: each lookup's remainder ends at its deadline.
    for (n, rest) in ends {
        if let Some(h) = rest
            && let Ok((requests, ms)) = h.await
        {
            queries[n].requests = requests;
            queries[n].lookup_ms = ms;
        }
    }
    if let Some(c) = churn {
        c.abort();
    }
    let online_at_end = online_nodes(&peers).len();
    let nodes: Vec<Node> = lock(&peers).iter_mut().filter_map(|p| p.node.take()).collect();
    futures::future::join_all(nodes.iter().map(Node::shutdown)).await;
    drop(nodes);

    let ok: Vec<&RealQuery> = queries.iter().filter(|q| q.success).collect();
    let online: Vec<&RealQuery> = queries.iter().filter(|q| q.copies_online > 0).collect();
    let hops: Vec<f64> = queries.iter().filter_map(|q| q.hops.map(f64::from)).collect();
    let summary = RealSummary {
        name: sc.name.clone(),
        topology: sc.topology,
        peers: sc.peers,
        encrypted: sc.encrypted,
        start_seconds,
        settle_seconds,
        mean_routing_table,
        announced,
        announce_failures,
        rss_mib_per_peer,
        peak_rss_mib: status_kib("VmHWM:") as f64 / 1024.0,
        queries: queries.len(),
        success_rate: ok.len() as f64 / queries.len().max(1) as f64,
        success_rate_when_online: online.iter().filter(|q| q.success).count() as f64 / online.len().max(1) as f64,
        median_first_provider_ms: quantile(ok.iter().filter_map(|q| q.first_provider_ms).collect(), 0.5),
        median_hops: quantile(hops.clone(), 0.5),
        p90_hops: quantile(hops.clone(), 0.9),
        mean_hops: hops.iter().sum::<f64>() / hops.len().max(1) as f64,
        median_lookup_depth: quantile(queries.iter().map(|q| f64::from(q.last_hop)).collect(), 0.5),
        log2_peers: (sc.peers as f64).log2().ceil(),
        median_requests_per_lookup: quantile(queries.iter().map(|q| q.requests as f64).collect(), 0.5),
        maintenance_per_peer_per_s,
        online_at_end,
        wall_seconds: wall.elapsed().as_secs_f64(),
    };
    Ok(RealReport { summary, queries })
}

fn total_requests(peers: &Peers) -> u64 {
    online_nodes(peers).iter().map(|(_, n)| n.network().dht_requests()).sum()
}

/// Waits until the routing tables stop growing (Kademlia's own bootstrap lookups fill them), at most 60 s.
pub(crate) async fn settle_tables(peers: &Peers) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = 0usize;
    let mut steady = 0;
    while Instant::now() < deadline && steady < 3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let nodes = online_nodes(peers);
        let sizes = futures::future::join_all(nodes.iter().map(|(_, n)| n.network().dht_state(Vec::new()))).await;
        let total: usize = sizes.iter().flatten().map(|s| s.routing.len()).sum();
        steady = if total <= last + last / 100 { steady + 1 } else { 0 };
        last = last.max(total);
    }
}

/// Waits until the DHT is quiet: fewer than one request per 20 peers per second, at most 120 s.
async fn wait_quiet(peers: &Peers) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let n = lock(peers).len() as u64;
    let mut last = total_requests(peers);
    let mut quiet = 0;
    while Instant::now() < deadline && quiet < 2 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = total_requests(peers);
        quiet = if now.saturating_sub(last) * 20 < n.max(20) { quiet + 1 } else { 0 };
        last = now;
    }
}

/// Peers that share their files at the same time. A thousand peers announcing at once on two cores
/// would time their lookups out (each peer has a machine of its own in a real network); in waves, each
/// wave's announcements finish before the next wave starts.
const SHARE_WAVE: usize = 25;

/// Writes and shares every file on its holders, a wave of peers at a time, and waits for each wave's
/// announcements to reach the DHT. Returns each file's id.
async fn share_all(
    peers: &Peers,
    by_peer: &HashMap<usize, Vec<usize>>,
    words: &[String],
    seed: u64,
) -> Result<Vec<ContentId>, RealError> {
    let mut jobs: Vec<(usize, Node, PathBuf, Vec<usize>)> = {
        let ps = lock(peers);
        by_peer
            .iter()
            .filter_map(|(p, files)| Some((*p, ps[*p].node.clone()?, ps[*p].home.clone(), files.clone())))
            .collect()
    };
    jobs.sort_by_key(|j| j.0);
    let mut ids = vec![ContentId([0; 32]); words.len()];
    let started = Instant::now();
    for (w, wave) in jobs.chunks(SHARE_WAVE).enumerate() {
        let results = futures::future::join_all(wave.iter().map(|(p, node, home, files)| async move {
            let err = |why: String| RealError::Share { peer: *p, why };
            let dir = home.join("files");
            std::fs::create_dir_all(&dir).map_err(|e| err(e.to_string()))?;
            let mut out = Vec::new();
            for &k in files {
                // Distinct content per file (so a distinct id), a few KiB like a small document. The name is
                // one made-up word: one keyword to announce besides the id (each announcement is a lookup).
                let body = format!("shoal-sim file {k} of run {seed}\n").repeat(100);
                let path = dir.join(&words[k]);
                std::fs::write(&path, body).map_err(|e| err(e.to_string()))?;
                let info = node.share(&path).await.map_err(|e| err(e.to_string()))?;
                out.push((k, info.id));
            }
            Ok::<_, RealError>(out)
        }))
        .await;
        for r in results {
            for (k, id) in r? {
                ids[k] = id;
            }
        }
        // Keyword announcements are queued by each node's search driver a moment after the share.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let states =
                futures::future::join_all(wave.iter().map(|(_, n, _, _)| n.network().dht_state(Vec::new()))).await;
            if states.iter().flatten().all(|s| s.announcing == 0) || Instant::now() >= deadline {
                if w % 10 == 9 {
                    let failed: u64 = states.iter().flatten().map(|s| s.announce_failures).sum();
                    let done: u64 = states.iter().flatten().map(|s| s.announced).sum();
                    eprintln!(
                        "    {} of {} sharers done ({:.0} s; last wave: {done} announced, {failed} failed)",
                        ((w + 1) * SHARE_WAVE).min(jobs.len()),
                        jobs.len(),
                        started.elapsed().as_secs_f64()
                    );
                }
                break;
            }
        }
    }
    Ok(ids)
}

async fn lookup(
    peers: &Peers,
    rng: &mut Rng,
    n: usize,
    id: &ContentId,
    holders: &[usize],
    holder_ids: &HashSet<PeerId>,
    timeout: Duration,
) -> (RealQuery, Option<tokio::task::JoinHandle<(u64, f64)>>) {
    let nodes = online_nodes(peers);
    let copies_online = nodes.iter().filter(|(i, _)| holders.contains(i)).count();
    let askers: Vec<&(usize, Node)> = nodes.iter().filter(|(i, _)| !holders.contains(i)).collect();
    let mut q = RealQuery {
        n,
        asker: usize::MAX,
        copies_online,
        success: false,
        first_provider_ms: None,
        lookup_ms: 0.0,
        requests: 0,
        hops: None,
        last_hop: 0,
    };
    if askers.is_empty() {
        return (q, None);
    }
    let (asker, node) = askers[rng.below(askers.len())].clone();
    q.asker = asker;
    // The tables as the lookup starts.
    let key = id.as_bytes().to_vec();
    let states = futures::future::join_all(nodes.iter().map(|(_, n)| n.network().dht_state(key.clone()))).await;
    let mut tables = HashMap::new();
    let mut record_holders = HashSet::new();
    for ((_, n), s) in nodes.iter().zip(states) {
        if let Ok(s) = s {
            if !s.providers.is_empty() {
                record_holders.insert(n.peer_id());
            }
            tables.insert(n.peer_id(), s.routing);
        }
    }
    let r = hops::replay(node.peer_id(), &key, &tables, &record_holders, K, ALPHA);
    q.hops = r.first_provider_hop;
    q.last_hop = r.last_hop;

    let before = node.network().dht_requests();
    let t0 = Instant::now();
    let Ok(mut rx) = node.find_providers(*id).await else { return (q, None) };
    let deadline = tokio::time::Instant::now() + timeout;
    // Until a holder is found or the deadline; the channel closes when the lookup ends.
    while let Ok(Some((p, _))) = tokio::time::timeout_at(deadline, rx.recv()).await {
        if holder_ids.contains(&p) {
            q.first_provider_ms = Some(t0.elapsed().as_secs_f64() * 1000.0);
            q.success = true;
            break;
        }
    }
    // The rest of the lookup (asking the remaining closest peers) runs on while the next one starts: under
    // churn it waits on peers that left, and the figure that matters to a user is the first provider.
    let rest = tokio::spawn(async move {
        while let Ok(Some(_)) = tokio::time::timeout_at(deadline, rx.recv()).await {}
        (node.network().dht_requests().saturating_sub(before), t0.elapsed().as_secs_f64() * 1000.0)
    });
    (q, Some(rest))
}

/// Peers leave and come back with exponential session and offline times, until aborted; those in `skip`
/// are left alone. Peers that come back start on `net`, joining through `links` random online peers.
pub(crate) async fn churn_loop(
    peers: Peers,
    churn: crate::scenario::Churn,
    seed: u64,
    net: NetConfig,
    links: usize,
    skip: std::collections::HashSet<usize>,
) {
    let mut rng = Rng::new(seed);
    let start = tokio::time::Instant::now();
    let n = lock(&peers).len();
    // (when, peer, leave?) in a heap ordered by time.
    let mut events: std::collections::BinaryHeap<std::cmp::Reverse<(Duration, usize, bool)>> = (0..n)
        .filter(|i| !skip.contains(i))
        .map(|i| std::cmp::Reverse((Duration::from_secs_f64(rng.exp_median(churn.median_session_s)), i, true)))
        .collect();
    while let Some(std::cmp::Reverse((at, i, leave))) = events.pop() {
        tokio::time::sleep_until(start + at).await;
        if leave {
            let node = {
                let mut ps = lock(&peers);
                ps[i].state = State::Leaving;
                ps[i].node.take()
            };
            let p = peers.clone();
            tokio::spawn(async move {
                if let Some(node) = node {
                    node.shutdown().await;
                }
                lock(&p)[i].state = State::Offline;
            });
            events.push(std::cmp::Reverse((
                at + Duration::from_secs_f64(rng.exp_median(churn.median_offline_s)),
                i,
                false,
            )));
            continue;
        }
        let (state, home) = {
            let ps = lock(&peers);
            (ps[i].state, ps[i].home.clone())
        };
        if state != State::Offline {
            // Still shutting down: try again in a second.
            events.push(std::cmp::Reverse((at + Duration::from_secs(1), i, false)));
            continue;
        }
        let boot = random_addrs(&peers, &mut rng, links, i);
        let (p, net) = (peers.clone(), net.clone());
        tokio::spawn(async move {
            match start_node(&home, &net, boot).await {
                Ok((node, addr)) => set_online(&p, i, node, addr),
                Err(e) => eprintln!("  peer {i} could not restart: {e}"),
            }
        });
        events.push(std::cmp::Reverse((at + Duration::from_secs_f64(rng.exp_median(churn.median_session_s)), i, true)));
    }
}
