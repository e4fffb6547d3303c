//! Figures of a run: a summary (JSON) and one line per query (CSV).

use std::time::{Duration, Instant};

use crate::scenario::{Scenario, Topology};
use crate::sim::{QueryRecord, Sim};

/// The summary of a run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    /// Scenario name.
    pub name: String,
    /// Topology.
    pub topology: Topology,
    /// Peers.
    pub peers: usize,
    /// Queries run.
    pub queries: usize,
    /// Share of queries that found the wanted file.
    pub success_rate: f64,
    /// The same, counting only queries whose file had a copy online when asked.
    pub success_rate_when_online: f64,
    /// Median query and hit messages per query, over the whole network.
    pub median_messages_per_query: f64,
    /// 90th percentile of the same.
    pub p90_messages_per_query: f64,
    /// Median number of peers that looked a query up.
    pub median_peers_reached: f64,
    /// Median virtual milliseconds to the first hit (successful queries).
    pub median_first_hit_ms: f64,
    /// Messages that are not queries or hits (links, roles, digests, registrations), per peer per second.
    pub maintenance_per_peer_per_s: f64,
    /// The same by kind of message (connect, role, attach, attached, digest, join, joined, leave, publish).
    pub maintenance_by_kind: std::collections::BTreeMap<&'static str, f64>,
    /// Supernode: share of leaf query traffic that leaf digests kept off the wire (1 - queries passed to
    /// leaves / queries times leaves at the supernodes that looked them up); Gnutella's QRP reports 80-98%.
    pub digest_filtered: f64,
    /// Largest seen-cache of any peer at the end.
    pub max_seen_cache: usize,
    /// Mean overlay degree of a flooding peer at the end (pure, hybrid).
    pub mean_degree: f64,
    /// Supernodes online at the end.
    pub supernodes: usize,
    /// Online leaves without a supernode at the end (supernode topology).
    pub orphans: usize,
    /// Median number of links to other supernodes of a supernode at the end.
    pub median_supernode_links: f64,
    /// Peers online at the end.
    pub online_at_end: usize,
    /// Events processed.
    pub events: u64,
    /// Virtual seconds simulated.
    pub virtual_seconds: f64,
    /// Virtual seconds the network ran before the first query (elections, churn settling).
    pub warmup_seconds: f64,
    /// Wall-clock seconds.
    pub wall_seconds: f64,
    /// Peak resident memory of this process, MiB.
    pub peak_rss_mib: f64,
    /// Heap the simulation holds at the end of the run (cores, links, queues), per peer, KiB.
    pub heap_kib_per_peer: f64,
}

/// A run's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    /// The summary.
    pub summary: Summary,
    /// Every query.
    pub queries: Vec<QueryRecord>,
}

impl Report {
    /// One line per query, with a header.
    pub fn csv(&self) -> String {
        let mut out = String::from("n,asker,copies_online,success,messages,reached,first_hit_ms,finished\n");
        for q in &self.queries {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{}\n",
                q.n,
                q.asker,
                q.copies_online,
                q.success,
                q.messages,
                q.reached,
                q.first_hit_ms.map_or(String::new(), |v| format!("{v:.3}")),
                q.finished
            ));
        }
        out
    }
}

/// The `q` quantile (0 to 1) of `v`, NaN when empty.
pub(crate) fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// A line of `/proc/self/status` in KiB (`VmHWM:` peak, `VmRSS:` now); 0 where there is no procfs.
pub fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// Runs a scenario: builds the network, lets it settle (supernode elections, churn), runs the queries.
pub fn run(sc: Scenario) -> Report {
    let wall = Instant::now();
    let heap_before = crate::heap::live_bytes();
    let warmup = match (sc.warmup_s, sc.topology, &sc.churn) {
        (Some(w), _, _) => Duration::from_secs_f64(w),
        // Supernodes: elections, then underused supernodes stepping down (a few gossip periods).
        (None, Topology::Supernode, _) => Duration::from_secs(120),
        (None, _, Some(_)) => Duration::from_secs(60),
        _ => Duration::ZERO,
    };
    let mut sim = Sim::new(sc.clone());
    sim.run_until(warmup);
    let maintenance_before = sim.maintenance_messages;
    let by_kind_before = sim.maintenance_by_kind.clone();
    let (slots_before, leafq_before) = (sim.leaf_slots, sim.leaf_queries);
    let t0 = sim.now();
    let queries: Vec<QueryRecord> = (0..sc.queries).map(|n| sim.query(n)).collect();
    let span = (sim.now() - t0).as_secs_f64().max(1e-9);
    let ok = |q: &&QueryRecord| q.success;
    let online: Vec<&QueryRecord> = queries.iter().filter(|q| q.copies_online > 0).collect();
    let peak = status_kib("VmHWM:");
    let heap_now = crate::heap::live_bytes();
    let summary = Summary {
        name: sc.name.clone(),
        topology: sc.topology,
        peers: sc.peers,
        queries: queries.len(),
        success_rate: queries.iter().filter(ok).count() as f64 / queries.len().max(1) as f64,
        success_rate_when_online: online.iter().filter(|q| q.success).count() as f64 / online.len().max(1) as f64,
        median_messages_per_query: quantile(queries.iter().map(|q| q.messages as f64).collect(), 0.5),
        p90_messages_per_query: quantile(queries.iter().map(|q| q.messages as f64).collect(), 0.9),
        median_peers_reached: quantile(queries.iter().map(|q| q.reached as f64).collect(), 0.5),
        median_first_hit_ms: quantile(queries.iter().filter_map(|q| q.first_hit_ms).collect(), 0.5),
        maintenance_per_peer_per_s: (sim.maintenance_messages - maintenance_before) as f64 / sc.peers as f64 / span,
        maintenance_by_kind: sim
            .maintenance_by_kind
            .iter()
            .map(|(k, v)| {
                let before = by_kind_before.get(k).copied().unwrap_or(0);
                (*k, (v - before) as f64 / sc.peers as f64 / span)
            })
            .collect(),
        digest_filtered: {
            let slots = (sim.leaf_slots - slots_before) as f64;
            if slots > 0.0 { 1.0 - (sim.leaf_queries - leafq_before) as f64 / slots } else { f64::NAN }
        },
        max_seen_cache: sim.max_seen(),
        mean_degree: sim.mean_degree(),
        supernodes: sim.supernodes(),
        orphans: sim.overlay_shape().0,
        median_supernode_links: sim.overlay_shape().1,
        online_at_end: sim.online(),
        events: sim.events,
        virtual_seconds: sim.now().as_secs_f64(),
        warmup_seconds: warmup.as_secs_f64(),
        wall_seconds: wall.elapsed().as_secs_f64(),
        peak_rss_mib: peak as f64 / 1024.0,
        heap_kib_per_peer: heap_now.saturating_sub(heap_before) as f64 / 1024.0 / sc.peers as f64,
    };
    Report { summary, queries }
}
