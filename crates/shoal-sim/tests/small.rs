//! Small scenarios (20-50 peers) that must hold whatever the seed: every query ends, caches stay bounded,
//! replicated files are always found without churn, runs are reproducible, supernodes save messages.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on what they do not expect

use shoal_sim::{Scenario, run};

fn scenario(topology: &str, peers: usize, copies: usize, seed: u64, churn: bool) -> Scenario {
    let mut text = format!(
        "name = \"t\"\ntopology = \"{topology}\"\npeers = {peers}\nseed = {seed}\nfiles = 40\nqueries = 40\n\
         replication = {{ kind = \"uniform\", copies = {copies} }}\n"
    );
    if churn {
        text.push_str("[churn]\nmedian_session_s = 60\nmedian_offline_s = 60\n");
    }
    Scenario::from_toml(&text).unwrap()
}

#[test]
fn without_churn_every_replicated_file_is_found_and_every_query_ends() {
    for seed in 1..=3 {
        for (topology, peers) in [("pure", 30), ("hybrid", 30), ("supernode", 50)] {
            let r = run(scenario(topology, peers, 3, seed, false));
            let s = &r.summary;
            assert_eq!(r.queries.len(), 40);
            assert!(r.queries.iter().all(|q| q.finished), "{topology} seed {seed}: a query never ended");
            assert_eq!(s.success_rate, 1.0, "{topology} seed {seed}: {s:?}");
            // Each query makes at most three query ids (the rings); nothing else may stay in a seen-cache.
            assert!(s.max_seen_cache <= 3 * 40, "{topology}: seen-cache of {}", s.max_seen_cache);
            assert!(r.queries.iter().all(|q| q.first_hit_ms.is_some_and(|t| t > 0.0)));
        }
    }
}

#[test]
fn with_churn_queries_still_end_and_caches_stay_bounded() {
    for topology in ["pure", "supernode"] {
        let r = run(scenario(topology, 40, 3, 7, true));
        assert!(r.queries.iter().all(|q| q.finished), "{topology}: a query never ended");
        assert!(r.summary.max_seen_cache <= 3 * 40);
        // Half the peers are away at any time, yet most files have a copy online and are found.
        assert!(r.summary.success_rate_when_online > 0.5, "{topology}: {:?}", r.summary);
    }
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let a = run(scenario("supernode", 30, 2, 5, true));
    let b = run(scenario("supernode", 30, 2, 5, true));
    let key = |r: &shoal_sim::Report| r.queries.iter().map(|q| (q.asker, q.success, q.messages)).collect::<Vec<_>>();
    assert_eq!(key(&a), key(&b));
}

#[test]
fn supernodes_and_index_servers_cost_fewer_messages_than_flooding() {
    let pure = run(scenario("pure", 50, 3, 2, false)).summary;
    let sup = run(scenario("supernode", 50, 3, 2, false)).summary;
    let hyb = run(scenario("hybrid", 50, 3, 2, false)).summary;
    assert!(sup.median_messages_per_query < pure.median_messages_per_query, "{sup:?} vs {pure:?}");
    assert!(hyb.median_messages_per_query <= 2.0);
}

#[test]
fn a_swarm_distribution_finishes_never_beats_the_bound_and_beats_client_server() {
    let text = r#"
        [distribution]
        peers = 30
        file_mib = 4
        seed_upload_mib_s = 2
        upload_mib_s = [1, 3]
        neighbours = 10
        in_flight = 2
        piece_kib = 64
        slow_after_s = 0.5
        sweep = [5]
    "#;
    let d = shoal_sim::swarm::from_toml(text).unwrap().unwrap();
    for r in shoal_sim::swarm::run_all(&d) {
        assert_eq!(r.finished, r.peers, "every peer finished: {r:?}");
        // A time below the bound would be a measurement error: no schedule can beat it.
        assert!(r.time_s >= r.bound_p2p_s, "{r:?}");
        assert!(r.time_s < r.bound_cs_s, "the swarm beats one server sending to everyone: {r:?}");
        assert!(r.seed_copies >= 1.0, "the seed sent every piece at least once: {r:?}");
    }
    // The other upload orders and the node without `Cancel` finish too, and respect the bound.
    for extra in ["serve = \"fifo\"", "cancel_on_wire = false", "cancel_on_wire = false\nserve = \"fifo\""] {
        let d = shoal_sim::swarm::from_toml(&format!("{text}\n{extra}")).unwrap().unwrap();
        let r = shoal_sim::swarm::distribute(&d);
        assert_eq!(r.finished, r.peers, "{extra}: {r:?}");
        assert!(r.time_s >= r.bound_p2p_s, "{extra}: {r:?}");
    }
    // Not a distribution scenario: None; a bad one: an error.
    assert!(shoal_sim::swarm::from_toml("topology = \"pure\"").unwrap().is_none());
    assert!(
        shoal_sim::swarm::from_toml(
            "[distribution]\npeers = 0\nfile_mib = 1\nseed_upload_mib_s = 1\nupload_mib_s = [1, 1]"
        )
        .is_err()
    );
}

#[test]
fn real_structured_peers_find_every_file_and_every_lookup_ends() {
    // 30 whole Shoal nodes on the memory transport: shares announced in the DHT, lookups by libp2p.
    let sc = Scenario::from_toml(
        "name = \"real\"\ntopology = \"structured\"\nmode = \"real\"\npeers = 30\nfiles = 10\nqueries = 15\n\
         maintenance_window_s = 1\nreplication = { kind = \"uniform\", copies = 2 }\n",
    )
    .unwrap();
    let r = shoal_sim::real::run(&sc).unwrap();
    let s = &r.summary;
    assert_eq!(r.queries.len(), 15);
    assert_eq!(s.success_rate, 1.0, "{s:?}");
    assert_eq!(s.online_at_end, 30);
    assert!(s.announced >= 20, "every share (and its keyword) was announced: {s:?}");
    for q in &r.queries {
        assert!(q.copies_online == 2 && q.asker < 30, "{q:?}");
        assert!(q.lookup_ms < 10_000.0, "the lookup ended before its timeout: {q:?}");
        // The replay reached a record holder, and no deeper than the lookup went.
        let hops = q.hops.unwrap();
        assert!(hops <= q.last_hop.max(1), "{q:?}");
    }
    // Real mode is for the structured topology only, and virtual mode refuses structured.
    assert!(Scenario::from_toml("topology = \"structured\"\npeers = 10\nfiles = 1\nqueries = 1\nreplication = { kind = \"uniform\", copies = 1 }").is_err());
    assert!(Scenario::from_toml("topology = \"pure\"\nmode = \"real\"\npeers = 10\nfiles = 1\nqueries = 1\nreplication = { kind = \"uniform\", copies = 1 }").is_err());
}
