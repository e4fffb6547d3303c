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
        serve = "least_sent"
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
    // Not a distribution scenario: None; a bad one: an error.
    assert!(shoal_sim::swarm::from_toml("topology = \"pure\"").unwrap().is_none());
    assert!(
        shoal_sim::swarm::from_toml(
            "[distribution]\npeers = 0\nfile_mib = 1\nseed_upload_mib_s = 1\nupload_mib_s = [1, 1]"
        )
        .is_err()
    );
}
