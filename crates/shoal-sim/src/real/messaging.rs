//! Messaging on real peers: one topic, N Shoal nodes on the memory transport with an emulated per-link
//! delay ([`shoal_net::NetConfig::with_link_delay`]), posts of a fixed size from a few publishers.
//!
//! A run: start the peers (a random graph, as in [`crate::real`]), every peer joins the topic, wait for the
//! gossipsub meshes to form, measure the background traffic over a quiet window, then post `messages`
//! posts one `interval_ms` apart from `publishers` random peers, then measure the background again. Every
//! peer's event feed is read from the start: the time from a post's publication to its arrival at each
//! subscriber is its delivery latency; the bytes every peer received during the posting window, less the
//! mean background rate of the two quiet windows, divided by the deliveries, are the link bytes per
//! delivered message per peer. That count holds every protocol, and its background estimate is rough (at a
//! thousand peers on the paused clock it moved the figure between 1.9x and 3.1x the payload from run to
//! run), so the topic's wire cost is also counted on gossipsub's own streams
//! ([`shoal_net::Network::gossip_bytes_received`]: messages, control messages, framing), whose quiet rate
//! is small. Gossipsub's own counters (messages and their bytes received, duplicates included) give the
//! copies of a post each peer received.
//!
//! With `virtual_clock = true` the run is timed by tokio's paused clock on one thread: the clock moves only
//! when every peer is waiting, so the latency is what the protocol and the links cost (link delays, hops,
//! queues), not how long 2 cores take to run a thousand peers one after the other (in real time a
//! 1,000-peer run measures the host's CPU, not Shoal: 65% delivered, p50 33 s). libp2p's own timers
//! (gossipsub's heartbeat, keep-alives) run on the wall clock either way; the waits that let meshes form
//! and the background window are measured on the wall clock too, and the background is charged per wall
//! second. The work of each hop is then free: the real-time run at 100 peers says what it costs (a few ms).
//!
//! ```toml
//! name = "messaging-1k"
//! [messaging]
//! peers = 1000
//! link_delay_ms = 50     # one way, every link
//! publishers = 10
//! messages = 50
//! size_bytes = 10000
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use serde::Deserialize;
use shoal_net::{GossipMesh, NetConfig};
use shoal_node::messaging::{Event as MsgEvent, Messaging};
use shoal_node::{Event, Node};

use super::{RealError, lock, new_peers, online_nodes, settle_tables, start_all};
use crate::report::quantile;
use crate::scenario::ScenarioError;
use crate::sim::Rng;

/// The topic every peer joins.
const TOPIC: &str = "shoal-sim";

/// What to run.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MessagingScenario {
    /// Peers.
    pub peers: usize,
    /// Connections each peer opens when it joins (it gets about as many more from later peers and the DHT).
    #[serde(default = "default_links")]
    pub links: usize,
    /// Random seed.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Noise on every connection (default: plaintext handshake, which still proves peer ids).
    #[serde(default)]
    pub encrypted: bool,
    /// One-way delay of every link, milliseconds.
    #[serde(default = "default_delay")]
    pub link_delay_ms: u64,
    /// Peers that post.
    #[serde(default = "default_publishers")]
    pub publishers: usize,
    /// Posts in all.
    #[serde(default = "default_messages")]
    pub messages: usize,
    /// Bytes of text per post.
    #[serde(default = "default_size")]
    pub size_bytes: usize,
    /// Milliseconds between posts.
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
    /// Seconds between the joins and the quiet window (meshes form on gossipsub's heartbeat).
    #[serde(default = "default_mesh_wait")]
    pub mesh_wait_s: f64,
    /// Seconds of quiet over which the background traffic is measured, once before the posts and once
    /// after them (see [`measure_background`]).
    #[serde(default = "default_quiet")]
    pub quiet_window_s: f64,
    /// Seconds after the last post until the run ends.
    #[serde(default = "default_drain")]
    pub drain_s: f64,
    /// Gossipsub mesh degree D (default: Shoal's, [`GossipMesh::default`]); a degree set here publishes to
    /// the mesh only unless `flood_publish` says otherwise ([`GossipMesh::with_degree`]).
    #[serde(default)]
    pub mesh_n: Option<usize>,
    /// Gossipsub D_high, above which meshes are pruned (default: the degree's, [`GossipMesh::with_degree`]).
    #[serde(default)]
    pub mesh_high: Option<usize>,
    /// Publishers send to every subscribed peer they know, not only to their mesh (default: Shoal's).
    #[serde(default)]
    pub flood_publish: Option<bool>,
    /// Gossipsub's D_lazy: peers outside the mesh told each heartbeat which posts a peer has.
    #[serde(default)]
    pub gossip_lazy: Option<usize>,
    /// Time the run on a paused clock that moves only when every peer waits (see the module doc).
    #[serde(default)]
    pub virtual_clock: bool,
}

fn default_links() -> usize {
    4
}
fn default_seed() -> u64 {
    1
}
fn default_delay() -> u64 {
    50
}
fn default_publishers() -> usize {
    10
}
fn default_messages() -> usize {
    50
}
fn default_size() -> usize {
    10_000
}
fn default_interval() -> u64 {
    200
}
fn default_mesh_wait() -> f64 {
    15.0
}
fn default_quiet() -> f64 {
    20.0
}
fn default_drain() -> f64 {
    20.0
}

impl MessagingScenario {
    /// The gossipsub mesh its peers run.
    pub fn mesh(&self) -> GossipMesh {
        let mut mesh = self.mesh_n.map_or_else(GossipMesh::default, GossipMesh::with_degree);
        if let Some(flood) = self.flood_publish {
            mesh = mesh.with_flood_publish(flood);
        }
        if let Some(h) = self.mesh_high {
            mesh.high = h;
        }
        if let Some(lazy) = self.gossip_lazy {
            mesh = mesh.with_lazy(lazy);
        }
        mesh
    }

    fn check(&self) -> Result<(), ScenarioError> {
        let bad = |m: &str| Err(ScenarioError::Invalid(m.to_string()));
        if !(2..=5_000).contains(&self.peers) {
            return bad("messaging.peers is between 2 and 5,000");
        }
        if self.publishers == 0 || self.publishers > self.peers || self.messages == 0 || self.links == 0 {
            return bad("messaging.publishers (at most peers), messages and links are at least 1");
        }
        if self.size_bytes == 0 || self.size_bytes > shoal_proto::messaging::post::MAX_TEXT {
            return bad("messaging.size_bytes is between 1 and the post text limit (64 KiB)");
        }
        if self.mesh_n.is_some_and(|d| !(2..=50).contains(&d)) {
            return bad("messaging.mesh_n is between 2 and 50");
        }
        if self.mesh_high.is_some_and(|h| h < self.mesh().n || h > 100) {
            return bad("messaging.mesh_high is at least the mesh degree and at most 100");
        }
        if self.gossip_lazy.is_some_and(|lazy| lazy > 100) {
            return bad("messaging.gossip_lazy is at most 100");
        }
        if self.link_delay_ms > 10_000 {
            return bad("messaging.link_delay_ms is at most 10,000");
        }
        for (v, what) in
            [(self.mesh_wait_s, "mesh_wait_s"), (self.quiet_window_s, "quiet_window_s"), (self.drain_s, "drain_s")]
        {
            if !(0.0..=3600.0).contains(&v) {
                return Err(ScenarioError::Invalid(format!("messaging.{what} is between 0 and 3,600")));
            }
        }
        Ok(())
    }
}

/// A scenario file with a `[messaging]` table (`None`: it has none, so it is another kind of scenario).
pub fn from_toml(text: &str) -> Result<Option<(String, MessagingScenario)>, ScenarioError> {
    let Some((name, sc)) = crate::scenario::named_table::<MessagingScenario>(text, "messaging")? else {
        return Ok(None);
    };
    sc.check()?;
    Ok(Some((name, sc)))
}

/// What a messaging run measured.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
pub struct MessagingSummary {
    /// Scenario name.
    pub name: String,
    /// The scenario.
    pub scenario: MessagingScenario,
    /// Seconds to start every peer.
    pub start_seconds: f64,
    /// Peers subscribed (joined the topic) when posting started.
    pub subscribers: usize,
    /// Posts published.
    pub posted: usize,
    /// Arrivals at subscribers other than the author, over posts x (subscribers - 1).
    pub delivery_ratio: f64,
    /// Milliseconds from publication to arrival: median, 99th percentile, mean, maximum.
    pub latency_p50_ms: f64,
    /// 99th percentile.
    pub latency_p99_ms: f64,
    /// Mean.
    pub latency_mean_ms: f64,
    /// Maximum.
    pub latency_max_ms: f64,
    /// Bytes every peer received during the posting window, less the background rate of the quiet windows,
    /// per arrival: what one delivered post cost the peer that got it.
    pub wire_bytes_per_delivery: f64,
    /// The same over the post's text size (1.0: each peer received each post exactly once, with no framing).
    pub amplification: f64,
    /// Background bytes per peer per second (the quiet windows: heartbeats, gossip, pings, DHT upkeep).
    pub background_bytes_per_peer_per_s: f64,
    /// Bytes every peer received on gossipsub's streams during the posting window (messages, control
    /// messages, framing, negotiation; [`shoal_net::Network::gossip_bytes_received`]), less their own
    /// quiet rate, per arrival, over the post's text size: the topic's cost on the wire with no other
    /// protocol in it (0 in figures saved before it was measured).
    #[serde(default)]
    pub stream_amplification: f64,
    /// Gossipsub's stream bytes per peer per second in the quiet windows (heartbeats' control messages).
    #[serde(default)]
    pub stream_background_bytes_per_peer_per_s: f64,
    /// Gossip messages received (duplicates included, gossipsub's count) per arrival: 1.0 is each peer
    /// receiving each post once.
    pub copies_per_delivery: f64,
    /// Gossip message bytes received (duplicates included; signed post, its encoding and gossipsub's own
    /// fields, no control messages or framing) per arrival, over the post's text size.
    pub gossip_amplification: f64,
    /// Whether latencies are on the paused clock (see the module doc).
    pub virtual_clock: bool,
    /// Peak resident memory of the process, MiB.
    pub peak_rss_mib: f64,
    /// Wall-clock seconds.
    pub wall_seconds: f64,
}

/// Runs a messaging scenario to the end.
pub fn run(name: &str, sc: &MessagingScenario) -> Result<MessagingSummary, RealError> {
    let rt = if sc.virtual_clock {
        tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()?
    };
    rt.block_on(run_async(name, sc))
}

/// Waits `seconds` of wall-clock time while the peers run (on a paused clock, the clock moves on as they
/// need it).
async fn wall_wait(seconds: f64) {
    let until = std::time::Instant::now() + Duration::from_secs_f64(seconds);
    while std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Seconds between the end of the posts and the second background window.
const SETTLE_S: f64 = 10.0;

/// The bytes per wall-clock second all peers receive while nothing is posted (what drives it, libp2p's and
/// our timers, runs on the wall clock). Measured before the posts and again after them, and the two
/// averaged: one window of 10 s before the posts alone gave 1,240-1,820 B per peer per second in four runs
/// of the 1,000-peer scenario, and the link bytes per delivered post then came out between 1.9x and 3.1x
/// the payload while gossipsub's own count of message bytes stayed at 2.88-2.94x.
/// Returns the rates of all bytes and of gossipsub's stream bytes.
async fn measure_background(nodes: &[(usize, Node)], secs: f64) -> (f64, f64) {
    let (from, at) = (received(nodes), std::time::Instant::now());
    wall_wait(secs).await;
    let to = received(nodes);
    let elapsed = at.elapsed().as_secs_f64().max(1e-3);
    ((to.0 - from.0) as f64 / elapsed, (to.1 - from.1) as f64 / elapsed)
}

/// Bytes all peers have received on their links, and on gossipsub's streams alone.
fn received(nodes: &[(usize, Node)]) -> (u64, u64) {
    nodes.iter().fold((0, 0), |(all, gossip), (_, n)| {
        (all + n.network().link_bytes_received(), gossip + n.network().gossip_bytes_received())
    })
}

/// Gossip messages and their bytes every peer has received, duplicates included (from each node's metrics).
fn gossip_received(nodes: &[(usize, Node)]) -> (u64, u64) {
    nodes.iter().fold((0, 0), |(count, bytes), (_, n)| {
        let text = n.metrics().encode();
        (
            count + metric_sum(&text, "gossipsub_topic_msg_recv_counts_unfiltered_total"),
            bytes + metric_sum(&text, "gossipsub_topic_msg_recv_bytes_unfiltered_total"),
        )
    })
}

/// The sum of a metric's samples (every label set) in OpenMetrics text.
fn metric_sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' '])))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

async fn run_async(name: &str, sc: &MessagingScenario) -> Result<MessagingSummary, RealError> {
    let wall = std::time::Instant::now();
    let dir = super::homes_dir("shoal-sim-msg-")?;
    let mut rng = Rng::new(sc.seed);
    let peers = new_peers(dir.path(), sc.peers);
    let delay = Duration::from_millis(sc.link_delay_ms);
    eprintln!("  starting {} peers ({} ms links) ...", sc.peers, sc.link_delay_ms);
    let mesh = sc.mesh();
    let net = NetConfig::memory(sc.encrypted).with_link_delay(delay).with_gossip_mesh(mesh);
    start_all(&peers, &mut rng, sc.links, &net).await?;
    let start_seconds = wall.elapsed().as_secs_f64();
    settle_tables(&peers).await;
    let nodes = online_nodes(&peers);

    // Every arrival: (post id, when), per peer, read off the event feeds from before the joins.
    let arrivals: Arc<Mutex<Vec<(String, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let mut readers = Vec::new();
    for (_, node) in &nodes {
        let mut feed = node.events().subscribe();
        let arrivals = arrivals.clone();
        readers.push(tokio::spawn(async move {
            while let Some(ev) = feed.recv().await {
                if let Event::Messaging(MsgEvent::Message(m)) = &*ev
                    && !m.mine
                    && m.kind == "post"
                {
                    shoal_store::lock(&arrivals).push((m.id.clone(), Instant::now()));
                }
            }
        }));
    }
    let services: Vec<Arc<Messaging>> = nodes.iter().filter_map(|(_, n)| n.service::<Messaging>().ok()).collect();
    eprintln!("  {} peers join the topic ...", services.len());
    let joined = futures::future::join_all(services.iter().map(|m| m.join(TOPIC, None))).await;
    let subscribers = joined.iter().filter(|r| r.is_ok()).count();
    wall_wait(sc.mesh_wait_s).await;

    let before = measure_background(&nodes, sc.quiet_window_s).await;

    let publishers: Vec<usize> = (0..sc.publishers).map(|_| rng.below(services.len())).collect();
    let text: String = "m".repeat(sc.size_bytes);
    let mut posts: HashMap<String, Instant> = HashMap::new();
    let (bytes_from, window_from) = (received(&nodes), std::time::Instant::now());
    let gossip_from = gossip_received(&nodes);
    eprintln!("  {} posts of {} bytes ...", sc.messages, sc.size_bytes);
    for k in 0..sc.messages {
        let by = &services[publishers[k % publishers.len()]];
        let t = Instant::now();
        // Distinct text per post (so a distinct id); the size stays as set.
        let body = format!("{k:06} {}", &text[..sc.size_bytes.saturating_sub(7)]);
        if let Ok(view) = by.post(TOPIC, &body).await {
            posts.insert(view.id, t);
        }
        tokio::time::sleep(Duration::from_millis(sc.interval_ms)).await;
    }
    // Until every subscriber has every post, or the drain time is up.
    let want = posts.len() * subscribers.saturating_sub(1);
    let deadline = std::time::Instant::now() + Duration::from_secs_f64(sc.drain_s);
    while std::time::Instant::now() < deadline && shoal_store::lock(&arrivals).len() < want {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let window = window_from.elapsed().as_secs_f64();
    let bytes_to = received(&nodes);
    let (window_bytes, window_stream_bytes) = ((bytes_to.0 - bytes_from.0) as f64, (bytes_to.1 - bytes_from.1) as f64);
    let gossip_to = gossip_received(&nodes);
    // Gossipsub advertises a post's id for a few heartbeats after it spread: let that pass, then measure
    // the background again.
    wall_wait(SETTLE_S).await;
    let after = measure_background(&nodes, sc.quiet_window_s).await;
    let background = (before.0 + after.0) / 2.0;
    let stream_background = (before.1 + after.1) / 2.0;
    let bytes = window_bytes - background * window;
    let stream_bytes = window_stream_bytes - stream_background * window;
    let (copies, gossip_bytes) = (gossip_to.0 - gossip_from.0, gossip_to.1 - gossip_from.1);

    let got = shoal_store::lock(&arrivals).clone();
    let latencies: Vec<f64> =
        got.iter().filter_map(|(id, at)| posts.get(id).map(|t| at.duration_since(*t).as_secs_f64() * 1000.0)).collect();
    let delivered = latencies.len();
    for r in readers {
        r.abort();
    }
    let all: Vec<Node> = lock(&peers).iter_mut().filter_map(|p| p.node.take()).collect();
    drop(nodes);
    futures::future::join_all(all.iter().map(Node::shutdown)).await;

    Ok(MessagingSummary {
        name: name.to_string(),
        scenario: sc.clone(),
        start_seconds,
        subscribers,
        posted: posts.len(),
        delivery_ratio: delivered as f64 / want.max(1) as f64,
        latency_p50_ms: quantile(latencies.clone(), 0.5),
        latency_p99_ms: quantile(latencies.clone(), 0.99),
        latency_mean_ms: latencies.iter().sum::<f64>() / delivered.max(1) as f64,
        latency_max_ms: latencies.iter().copied().fold(0.0, f64::max),
        wire_bytes_per_delivery: bytes / delivered.max(1) as f64,
        amplification: bytes / delivered.max(1) as f64 / sc.size_bytes as f64,
        background_bytes_per_peer_per_s: background / sc.peers as f64,
        stream_amplification: stream_bytes / delivered.max(1) as f64 / sc.size_bytes as f64,
        stream_background_bytes_per_peer_per_s: stream_background / sc.peers as f64,
        copies_per_delivery: copies as f64 / delivered.max(1) as f64,
        gossip_amplification: gossip_bytes as f64 / delivered.max(1) as f64 / sc.size_bytes as f64,
        virtual_clock: sc.virtual_clock,
        peak_rss_mib: crate::report::status_kib("VmHWM:") as f64 / 1024.0,
        wall_seconds: wall.elapsed().as_secs_f64(),
    })
}
