//! `shoal-sim results [--full] [--reuse-real] [--out DIR]`: the standard experiments, their CSV and SVG files, and
//! `RESULTS.md` with each figure beside the literature's. One command regenerates all of it.
//!
//! Experiments (all in virtual time, Shoal's own cores):
//! - cost of a search vs N for pure, hybrid and supernode (files on 1% of peers);
//! - reach of a flooded query vs TTL, beside Gnutella's sum of d(d-1)^(i-1);
//! - search success vs churn (exponential sessions);
//! - distribution time of a 64 MiB file vs N, beside D_p2p and D_cs;
//! - messaging on real peers (`results/messaging.rs`): a topic on 1,000 peers, letters under churn.
//!
//! Over 600 lines: each experiment sits beside the Markdown that reports it, so a figure and its words
//! change together. New experiments go in `results/`, one file each with its runs and its section
//! (messaging is the first); moving the older ones there is open work.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::plot::{Series, line_chart};
use crate::real::RealSummary;
use crate::report::{Summary, run};
use crate::scenario::{Churn, Mode, Replication, Scenario, SupernodeSettings, Topology};
use crate::swarm::{self, DistResult};

mod messaging;

/// What to run and where to write.
#[derive(Clone, Debug)]
pub struct Options {
    /// Also 30,000 and 100,000 peers (tens of minutes).
    pub full: bool,
    /// The directory that receives `RESULTS.md` and `results/`.
    pub out: PathBuf,
    /// Take the real-peer figures from the `results/real.json` (and `results/messaging.json`, when there is
    /// one) of an earlier run instead of starting thousands of peers again (half an hour and more); for
    /// work on the virtual-time experiments.
    pub reuse_real: bool,
}

/// Results that could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResultsError {
    /// A file could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A chart could not be drawn.
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
    /// The built-in distribution scenario is broken.
    #[error(transparent)]
    Scenario(#[from] crate::scenario::ScenarioError),
    /// A run of real peers failed.
    #[error(transparent)]
    Real(#[from] crate::real::RealError),
    /// A scenario run in a process of its own failed.
    #[error("the {name} run (a child process of shoal-sim) failed: {why}")]
    Child {
        /// The scenario.
        name: String,
        /// What went wrong.
        why: String,
    },
    /// `--reuse-real` found no usable figures from an earlier run.
    #[error("reading the real-peer figures of an earlier run from {path}: {why} (run without --reuse-real once)")]
    Reuse {
        /// The file.
        path: String,
        /// Why it could not be used.
        why: String,
    },
}

/// Real peers of the structured topology: lookups at several sizes, and at 1,000 peers under churn.
#[derive(serde::Serialize, serde::Deserialize)]
struct RealRuns {
    scaling: Vec<RealSummary>,
    churn: RealSummary,
}

/// Copies of each file in the real runs (a fixed number: announcements are the slow part of a real run).
const REAL_COPIES: usize = 5;
/// Median session (and offline time) of the real churn run, seconds.
const REAL_SESSION_S: f64 = 120.0;

fn structured(peers: usize, churn: bool) -> Scenario {
    let mut sc = search(Topology::Structured, peers, vec![2, 4, 7], REAL_COPIES, 200);
    sc.files = 100;
    sc.mode = Mode::Real;
    if churn {
        sc.name = format!("structured-{peers}-churn");
        sc.churn = Some(Churn { median_session_s: REAL_SESSION_S, median_offline_s: REAL_SESSION_S });
        sc.warmup_s = Some(2.0 * REAL_SESSION_S);
    }
    sc
}

fn real_runs() -> Result<RealRuns, ResultsError> {
    let mut scaling = Vec::new();
    for n in [100, 300, 1_000] {
        eprintln!("real peers: structured, {n} peers ...");
        let s = crate::real::run(&structured(n, false))?.summary;
        eprintln!(
            "  success {:.1}%, median hops {}, {:.0} s wall",
            s.success_rate * 100.0,
            s.median_hops,
            s.wall_seconds
        );
        scaling.push(s);
    }
    eprintln!("real peers: structured, 1000 peers, sessions of median {REAL_SESSION_S} s ...");
    let churn = crate::real::run(&structured(1_000, true))?.summary;
    eprintln!("  success {:.1}%, median hops {}", churn.success_rate * 100.0, churn.median_hops);
    Ok(RealRuns { scaling, churn })
}

/// The distribution scenario the results use (the same file as in `scenarios/`).
const DISTRIBUTION: &str = include_str!("../scenarios/distribution-100.toml");

fn search(topology: Topology, peers: usize, ring: Vec<u8>, copies: usize, queries: usize) -> Scenario {
    Scenario {
        name: format!("{topology:?}-{peers}").to_lowercase(),
        topology,
        peers,
        degree: 8,
        ring,
        seed: 1,
        latency_ms: [10, 50],
        files: 200,
        replication: Replication::Uniform { copies },
        queries,
        query_zipf: None,
        query_timeout_ms: 10_000,
        churn: None,
        supernode: SupernodeSettings::default(),
        warmup_s: None,
        mode: crate::scenario::Mode::Virtual,
        encrypted: false,
        maintenance_window_s: 30.0,
    }
}

fn write(path: &Path, text: &str) -> Result<(), ResultsError> {
    std::fs::write(path, text).map_err(|source| ResultsError::Io { path: path.display().to_string(), source })
}

fn progress(what: &str, s: &Summary) {
    eprintln!(
        "  {what}: success {:.1}%, {} msgs/query, {:.1} s wall",
        s.success_rate * 100.0,
        s.median_messages_per_query,
        s.wall_seconds
    );
}

/// Runs every experiment and writes `RESULTS.md`, CSV and SVG files under `opts.out`.
pub fn generate(opts: &Options) -> Result<(), ResultsError> {
    let wall = Instant::now();
    let dir = opts.out.join("results");
    std::fs::create_dir_all(&dir).map_err(|source| ResultsError::Io { path: dir.display().to_string(), source })?;
    let sizes: Vec<usize> =
        if opts.full { vec![1_000, 3_000, 10_000, 30_000, 100_000] } else { vec![1_000, 3_000, 10_000] };

    // 0. Real peers (the structured topology has no sans-IO core: libp2p's Kademlia runs for real).
    let saved = dir.join("real.json");
    let real = if opts.reuse_real {
        let reuse = |why: String| ResultsError::Reuse { path: saved.display().to_string(), why };
        let text = std::fs::read_to_string(&saved).map_err(|e| reuse(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| reuse(e.to_string()))?
    } else {
        let real = real_runs()?;
        let json = serde_json::to_string_pretty(&real)
            .map_err(|e| ResultsError::Reuse { path: saved.display().to_string(), why: e.to_string() })?;
        write(&saved, &json)?;
        real
    };
    write(&dir.join("structured_real.csv"), &real_csv(&real))?;
    // Messaging on real peers too, before the virtual-time runs: letters run on the wall clock.
    let msg = messaging::load_or_run(&dir, opts.reuse_real)?;
    let pts = |f: fn(&RealSummary) -> f64| real.scaling.iter().map(|s| (s.peers as f64, f(s))).collect::<Vec<_>>();
    line_chart(
        &dir.join("hops_vs_n.svg"),
        "Kademlia lookups on real peers: hops vs peers",
        "peers",
        "hops",
        false,
        &[
            Series {
                name: "hops to the first provider record (median)".into(),
                points: pts(|s| s.median_hops),
                reference: false,
            },
            Series {
                name: "hops to the first provider record (mean)".into(),
                points: pts(|s| s.mean_hops),
                reference: false,
            },
            Series {
                name: "depth of the whole lookup (median)".into(),
                points: pts(|s| s.median_lookup_depth),
                reference: false,
            },
            Series { name: "log2 N".into(), points: pts(|s| (s.peers as f64).log2()), reference: true },
        ],
    )?;

    // 1. Cost of a search vs N.
    eprintln!("search cost vs N ({sizes:?}) ...");
    let mut scaling: Vec<Summary> = Vec::new();
    for &n in &sizes {
        for t in [Topology::Pure, Topology::Hybrid, Topology::Supernode] {
            let s = run(search(t, n, vec![2, 4, 7], (n / 100).max(1), 50)).summary;
            progress(&format!("{t:?} {n}"), &s);
            scaling.push(s);
        }
    }
    let mut csv = String::from(
        "topology,peers,success_rate,median_messages,p90_messages,median_reached,median_first_hit_ms,maintenance_per_peer_s,supernodes,digest_filtered,wall_s,heap_kib_per_peer\n",
    );
    for s in &scaling {
        let _ = writeln!(
            csv,
            "{:?},{},{:.4},{},{},{},{:.1},{:.3},{},{:.4},{:.2},{:.1}",
            s.topology,
            s.peers,
            s.success_rate,
            s.median_messages_per_query,
            s.p90_messages_per_query,
            s.median_peers_reached,
            s.median_first_hit_ms,
            s.maintenance_per_peer_per_s,
            s.supernodes,
            s.digest_filtered,
            s.wall_seconds,
            s.heap_kib_per_peer
        );
    }
    write(&dir.join("search_vs_n.csv"), &csv)?;
    let by = |t: Topology| -> Vec<&Summary> { scaling.iter().filter(|s| s.topology == t).collect() };
    let series = |t: Topology, name: &str| Series {
        name: name.into(),
        points: by(t).iter().map(|s| (s.peers as f64, s.median_messages_per_query.max(1.0))).collect(),
        reference: false,
    };
    line_chart(
        &dir.join("messages_vs_n.svg"),
        "Messages per search vs peers (files on 1% of peers; structured: on 5)",
        "peers",
        "messages per query (median)",
        true,
        &[
            series(Topology::Pure, "pure (flooding, ring 2/4/7)"),
            series(Topology::Supernode, "supernode"),
            series(Topology::Hybrid, "hybrid (index server)"),
            Series {
                name: "structured (Kademlia requests + answers, real peers)".into(),
                points: pts(|s| 2.0 * s.median_requests_per_lookup),
                reference: false,
            },
        ],
    )?;

    // 2. Reach vs TTL.
    eprintln!("reach vs TTL ...");
    let mut reach: Vec<(u8, f64, f64)> = Vec::new();
    for ttl in 1..=5u8 {
        let n = 10_000;
        let mut sc = search(Topology::Pure, n, vec![ttl], 1, 20);
        sc.files = 20;
        let s = run(sc).summary;
        let d = s.mean_degree;
        let formula: f64 = (1..=ttl as i32).map(|i| d * (d - 1.0).powi(i - 1)).sum::<f64>().min((n - 1) as f64);
        reach.push((ttl, s.median_peers_reached, formula));
        eprintln!("  TTL {ttl}: reached {} (formula {formula:.0}, mean degree {d:.2})", s.median_peers_reached);
    }
    let mut csv = String::from("ttl,median_reached,formula\n");
    for (t, r, f) in &reach {
        let _ = writeln!(csv, "{t},{r},{f:.1}");
    }
    write(&dir.join("reach_vs_ttl.csv"), &csv)?;

    // 3. Success vs churn.
    eprintln!("success vs churn ...");
    let sessions = [f64::INFINITY, 1800.0, 600.0, 120.0];
    let mut churn: Vec<(Topology, f64, Summary)> = Vec::new();
    for t in [Topology::Pure, Topology::Supernode] {
        for &m in &sessions {
            let mut sc = search(t, 1_000, vec![2, 4, 7], 10, 100);
            if m.is_finite() {
                sc.churn = Some(Churn { median_session_s: m, median_offline_s: m });
                // Two medians: most peers have left and come back at least once.
                sc.warmup_s = Some(2.0 * m);
            }
            let s = run(sc).summary;
            progress(&format!("{t:?} session {m} s"), &s);
            churn.push((t, m, s));
        }
    }
    let mut csv = String::from("topology,median_session_s,success_rate,success_when_online,median_messages,online\n");
    for (t, m, s) in &churn {
        let _ = writeln!(
            csv,
            "{t:?},{m},{:.4},{:.4},{},{}",
            s.success_rate, s.success_rate_when_online, s.median_messages_per_query, s.online_at_end
        );
    }
    write(&dir.join("success_vs_churn.csv"), &csv)?;
    let churn_series = |t: Topology, name: &str| Series {
        name: name.into(),
        points: churn
            .iter()
            .filter(|(tt, m, _)| *tt == t && m.is_finite())
            .map(|(_, m, s)| (m / 60.0, s.success_rate_when_online * 100.0))
            .collect(),
        reference: false,
    };
    line_chart(
        &dir.join("success_vs_churn.svg"),
        "Search success vs churn (1,000 peers, files on 1%)",
        "median session, minutes (exponential; offline the same)",
        "success when a copy is online, %",
        false,
        &[
            churn_series(Topology::Pure, "pure"),
            churn_series(Topology::Supernode, "supernode"),
            Series {
                name: "structured (real peers)".into(),
                points: vec![(REAL_SESSION_S / 60.0, real.churn.success_rate_when_online * 100.0)],
                reference: false,
            },
        ],
    )?;

    // 4. File distribution.
    eprintln!("file distribution ...");
    let d = swarm::from_toml(DISTRIBUTION)?
        .ok_or_else(|| crate::scenario::ScenarioError::Invalid("no [distribution] table".into()))?;
    let mut dist: Vec<DistResult> = swarm::run_all(&d);
    dist.sort_by_key(|r| r.peers);
    write(&dir.join("distribution_vs_n.csv"), &swarm::csv(&dist))?;
    let pts = |f: fn(&DistResult) -> f64| dist.iter().map(|r| (r.peers as f64, f(r))).collect::<Vec<_>>();
    line_chart(
        &dir.join("distribution_vs_n.svg"),
        "Distribution time of a 64 MiB file, equal upload caps (10 MiB/s)",
        "peers",
        "seconds",
        true,
        &[
            Series { name: "Shoal (simulated)".into(), points: pts(|r| r.time_s), reference: false },
            Series { name: "D_p2p bound".into(), points: pts(|r| r.bound_p2p_s), reference: true },
            Series { name: "D_cs (client-server)".into(), points: pts(|r| r.bound_cs_s), reference: true },
        ],
    )?;
    // The same 100 peers: what the node does, what each of its choices buys, and the node before them.
    // A slack of a thousand seconds never shrinks the depth: a fixed pipeline of 4 (the count cap).
    let fixed =
        |d: &swarm::Distribution| swarm::Distribution { queue_slack_s: Some(1000.0), in_flight: Some(4), ..d.clone() };
    let variants = [
        (
            "the node: 64 KiB pieces (1,024), window by rate x answer delay (halved when answers queue), Cancel, least-sent uploads",
            d.clone(),
        ),
        (
            "... with at most 4 requests per provider (the node before 2026-12-02: depth 1 to 4)",
            swarm::Distribution { in_flight: Some(4), ..d.clone() },
        ),
        (
            "... with 256 KiB pieces (256; the node before 2026-11-26)",
            swarm::Distribution { piece_kib: Some(256), ..d.clone() },
        ),
        ("... with 1 MiB pieces (64)", swarm::Distribution { piece_kib: Some(1024), ..d.clone() }),
        (
            "... without Cancel (uploaders send every request they took)",
            swarm::Distribution { cancel_on_wire: false, ..d.clone() },
        ),
        ("... with a fixed depth of 4", fixed(&d)),
        ("... without Cancel and with a fixed depth of 4", swarm::Distribution { cancel_on_wire: false, ..fixed(&d) }),
        ("... with uploads in arrival order", swarm::Distribution { serve: swarm::Serve::Fifo, ..d.clone() }),
        (
            "... with up to 64 requests in flight (as many bytes as 4 of 1 MiB)",
            swarm::Distribution { in_flight: Some(64), ..d.clone() },
        ),
        ("... with a fixed depth of 1", swarm::Distribution { in_flight: Some(1), ..d.clone() }),
    ];
    let ablation: Vec<(&str, DistResult)> = variants
        .into_iter()
        .map(|(name, v)| (name, swarm::distribute(&swarm::Distribution { sweep: Vec::new(), ..v })))
        .collect();

    let figures = Figures {
        scaling: &scaling,
        reach: &reach,
        churn: &churn,
        dist: &dist,
        ablation: &ablation,
        real: &real,
        messaging: &msg,
    };
    let md = markdown(opts, &figures, wall.elapsed().as_secs_f64());
    write(&opts.out.join("RESULTS.md"), &md)?;
    eprintln!(
        "wrote {} and {} ({:.0} s)",
        opts.out.join("RESULTS.md").display(),
        dir.display(),
        wall.elapsed().as_secs_f64()
    );
    Ok(())
}

fn real_csv(real: &RealRuns) -> String {
    let mut csv = String::from(
        "peers,churn_median_s,success_rate,median_hops,p90_hops,mean_hops,median_lookup_depth,median_requests,median_first_provider_ms,mean_routing_table,maintenance_per_peer_s,rss_mib_per_peer,peak_rss_mib,start_s,wall_s\n",
    );
    for (s, churn) in real.scaling.iter().map(|s| (s, 0.0)).chain([(&real.churn, REAL_SESSION_S)]) {
        let _ = writeln!(
            csv,
            "{},{churn},{:.4},{},{},{:.3},{},{},{:.2},{:.1},{:.4},{:.2},{:.0},{:.1},{:.1}",
            s.peers,
            s.success_rate,
            s.median_hops,
            s.p90_hops,
            s.mean_hops,
            s.median_lookup_depth,
            s.median_requests_per_lookup,
            s.median_first_provider_ms,
            s.mean_routing_table,
            s.maintenance_per_peer_per_s,
            s.rss_mib_per_peer,
            s.peak_rss_mib,
            s.start_seconds,
            s.wall_seconds
        );
    }
    csv
}

/// The structured topology's section: real peers, lookups, hops, memory.
fn real_markdown(m: &mut String, real: &RealRuns) {
    let _ = writeln!(m, "## Structured (Kademlia): lookups on real peers\n\n![hops vs N](results/hops_vs_n.svg)\n");
    let _ = writeln!(
        m,
        "Real Shoal nodes (`shoal-node`: libp2p swarm with Kademlia k = 20, alpha = 3, SQLite store, search driver) in one process on libp2p's memory transport (plaintext handshake), joined through 4 random peers each. 100 files, each shared by {REAL_COPIES} random peers (announced as provider records, with their keyword); then 200 lookups, one after another, each by a random online peer that lacks the file, with `Node::find_providers` (libp2p's `get_providers`). Hops are read off a replay of each lookup over the routing tables and provider records of every peer at that moment (`crates/shoal-sim/src/real/hops.rs`): a peer the asker knew is one hop, a peer learnt from it two, and so on; 0 means the asker held a provider record itself.\n\n| peers | churn | success | hops to 1st provider: median / p90 / mean | lookup depth | ceil(log2 N) | requests per lookup | 1st provider ms | routing table | maintenance req/peer/s | peak RSS / N, MiB | start s |\n|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (s, churn) in real
        .scaling
        .iter()
        .map(|s| (s, "none".to_string()))
        .chain([(&real.churn, format!("sessions median {:.0} min", REAL_SESSION_S / 60.0))])
    {
        let _ = writeln!(
            m,
            "| {} | {churn} | {:.1}% | {} / {} / {:.2} | {} | {} | {} | {:.1} | {:.0} | {:.3} | {:.1} | {:.0} |",
            s.peers,
            s.success_rate * 100.0,
            s.median_hops,
            s.p90_hops,
            s.mean_hops,
            s.median_lookup_depth,
            s.log2_peers,
            s.median_requests_per_lookup,
            s.median_first_provider_ms,
            s.mean_routing_table,
            s.maintenance_per_peer_per_s,
            s.peak_rss_mib / s.peers as f64,
            s.start_seconds
        );
    }
    let _ = writeln!(m);
    if let Some(k) = real.scaling.iter().find(|s| s.peers == 1_000) {
        let _ = writeln!(
            m,
            "- 1,000 peers without churn: **{:.1}%** of lookups found a holder; target >= 99%: {}. Median hops to the first provider record **{}** (p90 {}); target <= 4: {}. Kademlia bounds a lookup by ceil(log2 N) + c = {} + c steps (Maymounkov & Mazieres, IPTPS 2002); with k = 20 buckets most of that is never needed: IPFS measured a median of 1.74 hops to the first provider (Trautwein et al., *Design and Evaluation of IPFS*, SIGCOMM 2022).",
            k.success_rate * 100.0,
            verdict(k.success_rate >= 0.99),
            k.median_hops,
            k.p90_hops,
            verdict(k.median_hops <= 4.0),
            k.log2_peers
        );
        let _ = writeln!(
            m,
            "- Memory: the process peaked at **{:.0} MiB for 1,000 whole nodes** ({:.1} MiB per peer, counting everything the process holds; the runs share one process, so the peak of a row is the largest so far); target 1,000 peers within 24 GiB: {}.",
            k.peak_rss_mib,
            k.peak_rss_mib / k.peers as f64,
            verdict(k.peak_rss_mib < 24.0 * 1024.0)
        );
    }
    let c = &real.churn;
    let _ = writeln!(
        m,
        "- 1,000 peers, sessions and offline times exponential with median {:.0} min, lookups after {:.0} min: **{:.1}%** found a holder when one was online ({} peers online at the end); target >= 95%: {}. A peer that comes back announces its shares again at once; records held by peers that left are lost with them (libp2p's memory store), and the other holders of the 20 keep the key findable. The median time to the first provider is {:.1} s under churn against {:.0} ms without; we have not found out where that time goes (a dial to a peer that left fails at once on the memory transport, so it is not connection time-outs alone).\n",
        REAL_SESSION_S / 60.0,
        2.0 * REAL_SESSION_S / 60.0,
        c.success_rate_when_online * 100.0,
        c.online_at_end,
        verdict(c.success_rate_when_online >= 0.95),
        c.median_first_provider_ms / 1000.0,
        real.scaling.iter().find(|s| s.peers == c.peers).map_or(f64::NAN, |s| s.median_first_provider_ms),
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**not met**" }
}

/// Everything the experiments measured, for the Markdown.
struct Figures<'a> {
    scaling: &'a [Summary],
    reach: &'a [(u8, f64, f64)],
    churn: &'a [(Topology, f64, Summary)],
    dist: &'a [DistResult],
    ablation: &'a [(&'a str, DistResult)],
    real: &'a RealRuns,
    messaging: &'a messaging::MessagingRuns,
}

fn markdown(opts: &Options, f: &Figures<'_>, wall_s: f64) -> String {
    let Figures { scaling, reach, churn, dist, ablation, real, messaging } = *f;
    let mut m = String::new();
    let cmd = if opts.full {
        "cargo run --release -p shoal-sim -- results --full"
    } else {
        "cargo run --release -p shoal-sim -- results"
    };
    let _ = writeln!(m, "# Results\n");
    let _ = writeln!(
        m,
        "Generated by `{cmd}`. The real-peer runs took {real_min:.0} min of wall time on this 2-core machine and the rest {wall_s:.0} s{reused}; add `--full` for 30,000 and 100,000 peers in virtual time, and `--reuse-real` to redo everything else with the real-peer figures of the last run (`results/real.json`, `results/messaging.json`).\n\nTwo kinds of figures. The pure, hybrid and supernode topologies and file distribution come from Shoal's own protocol cores (`shoal-proto`: the flooding router, the index server's registry, the supernode layer, the download scheduler, the same code the node runs) driven in virtual time by `shoal-sim`, with per-link latency. The structured topology has no core of ours (it is libp2p's Kademlia), so it is measured on whole Shoal nodes, up to 1,000 in one process. CSV files and charts are in [`results/`](results/). Do not edit this file by hand: change the experiments in `crates/shoal-sim/src/results.rs` and run the command again.\n",
        real_min = (real.scaling.iter().chain([&real.churn]).map(|s| s.wall_seconds).sum::<f64>()
            + messaging.wall_seconds())
            / 60.0,
        reused = if opts.reuse_real { " (this time with the real-peer figures of an earlier run)" } else { "" },
    );

    let _ = writeln!(
        m,
        "Common settings: per-link latency 10-50 ms, degree 8, 200 files each on 1% of the peers, 50 queries one after another, seed 1.\n"
    );

    // Search cost.
    let _ = writeln!(m, "## Messages per search vs N\n\n![messages vs N](results/messages_vs_n.svg)\n");
    let _ = writeln!(
        m,
        "Pure, hybrid and supernode in virtual time (below); structured on real peers (its own section), where a lookup's messages are its Kademlia requests and their answers: {}.\n",
        real.scaling
            .iter()
            .map(|s| format!("{} at {} peers", 2.0 * s.median_requests_per_lookup, s.peers))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        m,
        "| topology | peers | success | msgs/query (median) | p90 | peers reached | 1st hit ms | maintenance msgs/peer/s | supernodes | wall s | heap KiB/peer |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for s in scaling {
        let _ = writeln!(
            m,
            "| {:?} | {} | {:.1}% | {} | {} | {} | {:.0} | {:.3} | {} | {:.1} | {:.1} |",
            s.topology,
            s.peers,
            s.success_rate * 100.0,
            s.median_messages_per_query,
            s.p90_messages_per_query,
            s.median_peers_reached,
            s.median_first_hit_ms,
            s.maintenance_per_peer_per_s,
            if s.topology == Topology::Supernode { s.supernodes.to_string() } else { "-".into() },
            s.wall_seconds,
            s.heap_kib_per_peer
        );
    }
    let _ = writeln!(m);
    let find = |t: Topology, n: usize| scaling.iter().find(|s| s.topology == t && s.peers == n);
    if let (Some(p), Some(s)) = (find(Topology::Pure, 100_000), find(Topology::Supernode, 100_000)) {
        let _ = writeln!(
            m,
            "- 100,000 peers in virtual time: pure flooding took **{:.1} s** and supernode **{:.1} s** of wall time for the whole run (building the network, {} queries); target under 10 minutes each: {}.",
            p.wall_seconds,
            s.wall_seconds,
            s.queries,
            verdict(p.wall_seconds < 600.0 && s.wall_seconds < 600.0)
        );
    }
    for s in scaling.iter().filter(|s| s.topology == Topology::Supernode) {
        if let Some(p) = find(Topology::Pure, s.peers) {
            let ratio = p.median_messages_per_query / s.median_messages_per_query.max(1.0);
            let ok = ratio >= 20.0 && s.success_rate >= 0.99 && p.success_rate >= 0.99;
            let _ = writeln!(
                m,
                "- {} peers: supernode uses **{ratio:.0}x** fewer messages per query than pure flooding ({:.0}% vs {:.0}% success). Target >= 20x at >= 99% success: {}.",
                s.peers,
                s.success_rate * 100.0,
                p.success_rate * 100.0,
                verdict(ok)
            );
        }
    }
    if let Some(s) = scaling.iter().filter(|s| s.topology == Topology::Supernode).max_by_key(|s| s.peers) {
        let _ = writeln!(
            m,
            "- Leaf digests kept **{:.1}%** of leaf query traffic off the wire at {} peers (the share of a supernode's leaves that a query it handled was not sent to). Gnutella's query routing protocol (QRP) is reported to block 80-98% of the query traffic that broadcasting to leaves would send (Gnutella 0.6 ultrapeer proposals; Stutzbach et al., *Characterizing Unstructured Overlay Topologies in Modern P2P File-Sharing Systems*, IMC 2005).",
            s.digest_filtered * 100.0,
            s.peers
        );
    }
    let _ = writeln!(
        m,
        "- Pure flooding costs grow with N because the ring stops at the first TTL that finds the file; hybrid costs 2 messages at any N (one question, one answer), the price being a server that every peer depends on.\n"
    );

    // Reach.
    let _ = writeln!(m, "## Reach of a flooded query vs TTL (10,000 peers)\n");
    let _ = writeln!(
        m,
        "Gnutella's reach for degree d and TTL t is sum over i = 1..t of d(d-1)^(i-1) peers when every peer has d links and the overlay is a tree; d here is the mean degree measured in the same run.\n\n| TTL | peers reached (median) | formula | reached / formula |\n|---:|---:|---:|---:|"
    );
    for (t, r, f) in reach {
        let _ = writeln!(m, "| {t} | {r} | {f:.0} | {:.2} |", r / f.max(1.0));
    }
    let _ = writeln!(
        m,
        "\nThe first hops reach a little more than the formula: degrees are unequal, and a neighbour is more likely to be a well-linked peer than the mean says (a peer with many links is the neighbour of many). Later hops fall below it as the horizon fills the network and cycles return the query to peers that already saw it (the seen-cache drops those duplicates).\n"
    );

    // Churn.
    let _ =
        writeln!(m, "## Search success vs churn (1,000 peers)\n\n![success vs churn](results/success_vs_churn.svg)\n");
    let _ = writeln!(
        m,
        "Sessions and offline times are exponential with the given median; queries start after two medians.\n\n| topology | median session | success | success when a copy is online | msgs/query | online at end |\n|---|---:|---:|---:|---:|---:|"
    );
    for (t, s_, s) in churn {
        let session = if s_.is_finite() { format!("{:.0} min", s_ / 60.0) } else { "no churn".into() };
        let _ = writeln!(
            m,
            "| {t:?} | {session} | {:.1}% | {:.1}% | {} | {} |",
            s.success_rate * 100.0,
            s.success_rate_when_online * 100.0,
            s.median_messages_per_query,
            s.online_at_end
        );
    }
    let _ = writeln!(m);

    real_markdown(&mut m, real);
    messaging::markdown(&mut m, messaging);

    // Distribution.
    let _ = writeln!(
        m,
        "## File distribution vs the textbook bound\n\n![distribution vs N](results/distribution_vs_n.svg)\n"
    );
    let _ = writeln!(
        m,
        "One seed, N peers, every upload capped at 10 MiB/s, downloads uncapped (so d_min does not bind). D_p2p = max(F/u_s, N*F/(u_s + sum u_i)) and D_cs = N*F/u_s (Kurose & Ross, *Computer Networking*, ch. 2). Scenario: `crates/shoal-sim/scenarios/distribution-100.toml`.\n\n| peers | pieces | time s | mean s | D_p2p s | D_cs s | time / D_p2p | seed copies sent |\n|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in dist {
        let _ = writeln!(
            m,
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.3} | {:.2} |",
            r.peers, r.pieces, r.time_s, r.mean_s, r.bound_p2p_s, r.bound_cs_s, r.ratio_to_p2p_bound, r.seed_copies
        );
    }
    if let Some(r) = dist.iter().find(|r| r.peers == 100) {
        let _ = writeln!(
            m,
            "\n64 MiB to 100 peers: **{:.3}x** the D_p2p bound; target <= 1.15x: {}. Every run is at or above the bound (a run below it would be a measurement error) and far below the client-server time.",
            r.ratio_to_p2p_bound,
            verdict(r.ratio_to_p2p_bound <= 1.15)
        );
    }
    let _ = writeln!(
        m,
        "\nWhat matters, at 100 peers (each row changes one thing from the first, or adds to the row above it):\n\n| variant | time / D_p2p | seed copies |\n|---|---:|---:|"
    );
    for (name, r) in ablation {
        let _ = writeln!(m, "| {name} | {:.3} | {:.2} |", r.ratio_to_p2p_bound, r.seed_copies);
    }
    let _ = writeln!(
        m,
        "\nThe seed must send every byte once (F/u_s = 6.4 s here, which is also D_p2p); what comes after is the time the last pieces to leave it take to reach everyone, a few piece-times and round trips per hop. Smaller pieces shorten that tail, which is why the node cuts a file into about a thousand pieces (the price is work per request: README, Performance). Duplicates the seed sends delay its last unique piece; two things cut them: `Cancel` (a downloader that got a piece elsewhere withdraws its other requests for it, and an uploader drops them if they are still waiting), and a delay-based request depth (a downloader keeps one request at a peer whose answers queue behind other peers' requests, more at a peer that answers at once), so that a seed asked by 100 peers does not hold thousands of requests chosen on stale information. Super-seeding (the seed offers each downloader its own share of the pieces not yet sent, refreshed when the downloader re-asks, once a second) was tried and made it slower with 256 KiB pieces (1.25-1.28x against 1.20x: downloaders that had used up their share left the seed idle until they asked again); it is kept on the branch `experiment/super-seeding`. BitTorrent swarms are reported close to the fluid bound in simulation and measurement (Qiu & Srikant, *Modeling and Performance Analysis of BitTorrent-Like Peer-to-Peer Networks*, SIGCOMM 2004; Bharambe et al., *Analyzing and Improving a BitTorrent Network's Performance Mechanisms*, INFOCOM 2006, where the seed's upload utilisation is the key).\n"
    );

    // Short of.
    let _ = writeln!(m, "## Where we fall short\n");
    for s in scaling.iter().filter(|s| s.success_rate < 0.99) {
        let fine: Vec<String> = scaling
            .iter()
            .filter(|o| o.topology == s.topology && o.success_rate >= 0.99)
            .map(|o| o.peers.to_string())
            .collect();
        let _ = writeln!(
            m,
            "- **{:?} at {} peers found {:.0}% of the files, not 99%** ({} of {} queries failed; at {} peers it found {}).{}",
            s.topology,
            s.peers,
            s.success_rate * 100.0,
            s.queries - (s.success_rate * s.queries as f64).round() as usize,
            s.queries,
            if fine.is_empty() { "no other size".to_string() } else { fine.join(", ") },
            if fine.is_empty() { "no better" } else { "at least 99%" },
            if s.topology == Topology::Supernode && s.orphans > 0 {
                format!(
                    " At the end of the run {} peers ({:.1}%) had no supernode yet, after {:.0} s of warm-up; a query asked by such an orphan reaches nobody (seen in a run with `--csv`: the failed queries sent no message). Next: a longer warm-up at this size, or orphans that ask their direct neighbours meanwhile.",
                    s.orphans,
                    s.orphans as f64 / s.peers as f64 * 100.0,
                    s.warmup_seconds,
                )
            } else {
                " Not investigated yet.".to_string()
            },
        );
    }
    let above: Vec<String> = dist
        .iter()
        .filter(|r| r.peers != 100 && r.ratio_to_p2p_bound > 1.15)
        .map(|r| format!("{:.2}x at {} peers", r.ratio_to_p2p_bound, r.peers))
        .collect();
    if !above.is_empty() {
        let _ = writeln!(
            m,
            "- **File distribution at other swarm sizes is above 1.15x the bound**: {}. The target is set at 100 peers; why the tail after the seed's last unique piece is longer at these sizes is not investigated yet.",
            above.join(", ")
        );
    }
    if let Some(r) = dist.iter().find(|r| r.peers == 100)
        && r.ratio_to_p2p_bound > 1.15
    {
        let _ = writeln!(
            m,
            "- **File distribution is {:.2}x the D_p2p bound, not the 1.15x we aimed for.** The seed sends {:.2} copies of the file where one would do. Next: announcing completed pieces to providers at once instead of the one-second re-ask, and offers the seed pushes (see the branch `experiment/super-seeding`).",
            r.ratio_to_p2p_bound, r.seed_copies,
        );
    }
    let _ = writeln!(
        m,
        "- **Real peers share two cores.** A thousand nodes in one process run at a fraction of a real peer's speed: the memory transport has no latency (milliseconds to the first provider measure CPU, not a network), idle connections close after 10 s instead of 60, and files are shared 25 peers at a time so that announcements do not time out (each peer of a real network has a machine of its own). The plaintext handshake replaces Noise (`encrypted = true` in a scenario turns Noise on; start-up is then much slower). Hops come from a replay over the real tables, not from libp2p, which does not report them.\n- Structured is measured at 100 to 1,000 peers and at one churn rate only: a real run takes minutes, and one with churn takes two session medians of wall-clock warm-up.\n- The distribution model: uploads are one piece at a time per uploader at its cap (as the node's uplink does under a global cap), downloads uncapped, and a completed piece is announced to neighbours at once (the node re-asks its providers every second).\n- Memory per peer in the virtual-time tables is the heap the simulated cores hold (counted by the allocator); the structured table gives the resident memory of whole nodes."
    );
    m
}
