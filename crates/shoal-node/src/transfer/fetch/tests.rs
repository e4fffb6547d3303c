//! The download state machine driven directly: events in, steps out, no socket or file.

use std::time::{Duration, Instant};

use libp2p::PeerId;
use shoal_proto::transfer::{ChunkSpan, Failure, Layout};
use shoal_store::ContentId;

use super::{Answer, Fetch, Step};
use crate::NodeError;
use crate::config::DownloadTuning;

const SIZE: u64 = 4 * 1024 * 1024;

fn tuning() -> DownloadTuning {
    DownloadTuning::default().with_stall_timeout(Duration::from_secs(10))
}

fn all(size: u64) -> Vec<ChunkSpan> {
    vec![ChunkSpan { start: 0, end: size.div_ceil(1024) }]
}

fn gets(steps: &[Step]) -> Vec<(PeerId, u32)> {
    steps
        .iter()
        .filter_map(|s| if let Step::Get { peer, piece, .. } = s { Some((*peer, *piece)) } else { None })
        .collect()
}

/// Polls `f` every 5 ms from `t0`, answering every `Get` with its piece (`proof` more bytes on the wire),
/// until it finishes; the pieces asked and of whom, or `None` if it never finished.
fn run_to_end(f: &mut Fetch, t0: Instant, proof: u64) -> Option<Vec<(PeerId, u32)>> {
    let layout = Layout::new(SIZE);
    let mut now = t0;
    let mut seen = Vec::new();
    for _ in 0..1000 {
        now += Duration::from_millis(5);
        let (steps, done) = f.poll(now, true).unwrap();
        if done {
            return Some(seen);
        }
        for (p, piece) in gets(&steps) {
            seen.push((p, piece));
            let r = layout.piece_bytes(piece);
            f.on_piece_ok(p, piece, r.end - r.start, r.end - r.start + proof, now);
        }
    }
    None
}

/// A fetch with `n` providers from the request, the first of them answered with the whole blob.
fn started(n: usize, discover: bool) -> (Fetch, Vec<PeerId>, Instant) {
    let t0 = Instant::now();
    let peers: Vec<PeerId> = (0..n).map(|_| PeerId::random()).collect();
    let hints = peers.iter().map(|p| (*p, Vec::new())).collect();
    let (mut f, opened) = Fetch::new(ContentId([1; 32]), PeerId::random(), hints, discover, None, tuning(), t0);
    assert_eq!(opened.len(), n, "a session per provider");
    f.expect_size(Some(SIZE));
    assert_eq!(f.on_have(peers[0], SIZE, &all(SIZE), false, t0), Answer::Begin { size: SIZE, collection: false });
    assert_eq!(f.begin(SIZE, &[], false, t0), (0, Vec::new()));
    (f, peers, t0)
}

#[test]
fn the_request_providers_are_opened_once_and_never_ourselves() {
    let me = PeerId::random();
    let a = PeerId::random();
    let hints = vec![(a, Vec::new()), (a, Vec::new()), (me, Vec::new())];
    let (mut f, opened) = Fetch::new(ContentId([1; 32]), me, hints, true, None, tuning(), Instant::now());
    assert_eq!(opened, vec![Step::Open { peer: a, addrs: Vec::new() }]);
    // A lookup that finds the same peer, or us, opens nothing.
    assert_eq!(f.on_found(a, Vec::new()), None);
    assert_eq!(f.on_found(me, Vec::new()), None);
    let b = PeerId::random();
    assert_eq!(f.on_found(b, Vec::new()), Some(Step::Open { peer: b, addrs: Vec::new() }));
}

#[test]
fn lookups_start_when_nobody_answered_and_not_more_than_every_few_seconds() {
    let t0 = Instant::now();
    let (mut f, _) = Fetch::new(ContentId([1; 32]), PeerId::random(), Vec::new(), true, None, tuning(), t0);
    assert_eq!(f.lookup(t0), Some(Step::Lookup));
    assert_eq!(f.lookup(t0 + Duration::from_secs(5)), None, "one lookup at a time");
    f.on_lookup_done();
    assert_eq!(f.lookup(t0 + Duration::from_secs(1)), None, "not again within 3 s");
    assert_eq!(f.lookup(t0 + Duration::from_secs(4)), Some(Step::Lookup));
    // Without discovery, never.
    let (mut g, _) = Fetch::new(ContentId([1; 32]), PeerId::random(), Vec::new(), false, None, tuning(), t0);
    assert_eq!(g.lookup(t0), None);
}

#[test]
fn the_first_answer_starts_a_lookup_at_once_and_lookups_go_on_while_providers_are_few() {
    // Over a long link the lookup at the start ran before any connection existed and found nobody; the
    // ticket's one provider answers a moment later. The others must still be found (the download used one
    // source of four over 100 ms links before).
    let t0 = Instant::now();
    let a = PeerId::random();
    let (mut f, _) = Fetch::new(ContentId([1; 32]), PeerId::random(), vec![(a, Vec::new())], true, None, tuning(), t0);
    f.expect_size(Some(SIZE));
    assert_eq!(f.lookup(t0), Some(Step::Lookup));
    f.on_lookup_done();
    let t1 = t0 + Duration::from_millis(400);
    assert_eq!(f.lookup(t1), None, "not again within 3 s before anyone answered");
    assert_eq!(f.on_have(a, SIZE, &all(SIZE), false, t1), Answer::Begin { size: SIZE, collection: false });
    assert_eq!(f.lookup(t1), Some(Step::Lookup), "the first answer brings a lookup at once");
    f.on_lookup_done();
    f.begin(SIZE, &[], false, t1);
    // One provider in: it keeps looking, less and less often (3 s, then 6 s, ...).
    assert_eq!(f.lookup(t1 + Duration::from_secs(1)), None);
    assert_eq!(f.lookup(t1 + Duration::from_secs(4)), Some(Step::Lookup));
    f.on_lookup_done();
    assert_eq!(f.lookup(t1 + Duration::from_secs(8)), None, "the next one waits 6 s");
    assert_eq!(f.lookup(t1 + Duration::from_secs(11)), Some(Step::Lookup));
    f.on_lookup_done();
    let b = PeerId::random();
    assert_eq!(f.on_found(b, Vec::new()), Some(Step::Open { peer: b, addrs: Vec::new() }), "a late provider joins");
    // With enough providers in, it stops looking.
    for _ in 0..8 {
        f.on_found(PeerId::random(), Vec::new());
    }
    assert_eq!(f.lookup(t1 + Duration::from_secs(60)), None);
}

#[test]
fn with_no_provider_and_no_discovery_it_fails_at_once_and_with_discovery_after_the_stall_timeout() {
    let t0 = Instant::now();
    let (mut f, _) = Fetch::new(ContentId([1; 32]), PeerId::random(), Vec::new(), false, None, tuning(), t0);
    assert!(matches!(f.poll(t0, true), Err(NodeError::NoProviders { .. })));
    let (mut g, _) = Fetch::new(ContentId([1; 32]), PeerId::random(), Vec::new(), true, None, tuning(), t0);
    assert!(g.poll(t0 + Duration::from_secs(9), true).is_ok());
    assert!(matches!(g.poll(t0 + Duration::from_secs(11), true), Err(NodeError::NoProviders { .. })));
}

#[test]
fn work_waits_for_a_provider_found_just_now_to_answer_then_is_spread_over_them() {
    let (mut f, peers, t0) = started(1, true);
    let found = PeerId::random();
    assert!(f.on_found(found, Vec::new()).is_some());
    // The found provider has not answered: within `gather`, nothing is requested.
    let (steps, done) = f.poll(t0 + Duration::from_millis(10), true).unwrap();
    assert!(gets(&steps).is_empty() && !done, "{steps:?}");
    assert_eq!(f.on_have(found, SIZE, &all(SIZE), false, t0), Answer::Steps(Vec::new()));
    let (steps, _) = f.poll(t0 + Duration::from_millis(20), true).unwrap();
    let asked: std::collections::HashSet<PeerId> = gets(&steps).iter().map(|(p, _)| *p).collect();
    assert_eq!(asked, [peers[0], found].into(), "both providers get requests: {steps:?}");
}

/// A fetch whose request names the size and kind, begun before any answer.
fn named(peers: &[PeerId], t0: Instant) -> Fetch {
    let hints = peers.iter().map(|p| (*p, Vec::new())).collect();
    let (mut f, _) = Fetch::new(ContentId([1; 32]), PeerId::random(), hints, false, Some(false), tuning(), t0);
    f.expect_size(Some(SIZE));
    assert_eq!(f.named(), Some((SIZE, false)));
    assert_eq!(f.begin(SIZE, &[], false, t0), (0, Vec::new()));
    assert_eq!(f.named(), None, "begun once");
    f
}

#[test]
fn with_the_size_named_every_provider_is_asked_before_it_answers_and_its_answer_corrects_what_it_has() {
    let t0 = Instant::now();
    let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
    let (seed, partial, stranger) = (peers[0], peers[1], peers[2]);
    let mut f = named(&peers, t0);
    let (steps, _) = f.poll(t0, true).unwrap();
    let asked: std::collections::HashSet<PeerId> = gets(&steps).iter().map(|(p, _)| *p).collect();
    assert_eq!(asked, peers.iter().copied().collect(), "no answer awaited: {steps:?}");
    // The answers: a seed, a provider with the first 8 chunks only, and one without the blob.
    let layout = Layout::new(SIZE);
    let first = ChunkSpan { start: 0, end: 8 };
    assert_eq!(f.on_have(seed, SIZE, &all(SIZE), false, t0), Answer::Steps(Vec::new()));
    assert_eq!(f.on_have(partial, SIZE, &[first], false, t0), Answer::Steps(Vec::new()));
    assert_eq!(f.on_not_found(stranger), vec![Step::Close(stranger)]);
    // What the partial provider was asked and lacks is answered `Missing`: no strike, it stays.
    for (p, piece) in gets(&steps).into_iter().filter(|(p, _)| *p == partial) {
        f.on_piece_failed(p, piece, Failure::Missing, "not here", 0, t0);
    }
    let seen = run_to_end(&mut f, t0, 0).unwrap_or_default();
    assert!(seen.iter().all(|(p, _)| *p != stranger), "the provider without it is not asked again");
    let lacks = |piece: u32| layout.piece_chunks(piece).end > first.end;
    assert!(!seen.iter().any(|(p, piece)| *p == partial && lacks(*piece)), "asked the partial one for what it lacks");
    let done = f.finish().unwrap();
    assert_eq!(done.size, SIZE);
    assert!(f.tally.peers.get(&partial).is_none_or(|r| r.dropped.is_none()), "a `Missing` is no misconduct");
}

#[test]
fn a_liar_asked_before_it_answered_is_reported_for_its_lie_not_for_the_data_that_followed() {
    let t0 = Instant::now();
    let (honest, liar) = (PeerId::random(), PeerId::random());
    let mut f = named(&[honest, liar], t0);
    let (steps, _) = f.poll(t0, true).unwrap();
    let asked_liar = gets(&steps).into_iter().find(|(p, _)| *p == liar).map(|(_, piece)| piece).unwrap();
    assert_eq!(f.on_have(liar, 3, &all(3), false, t0), Answer::Steps(vec![Step::Close(liar)]));
    // Its answer to the early `Get` was already on the way: data for another size, which fails to verify.
    f.on_piece_failed(liar, asked_liar, Failure::Corrupt, "bad hash", 100, t0);
    f.on_have(honest, SIZE, &all(SIZE), false, t0);
    let seen = run_to_end(&mut f, t0, 0).unwrap_or_default();
    assert!(seen.iter().all(|(p, _)| *p == honest), "the liar is asked nothing more");
    f.finish().unwrap();
    let why = f.tally.peers[&liar].dropped.clone().unwrap_or_default();
    assert!(why.contains("claims 3 bytes"), "{why}");
}

#[test]
fn begun_on_the_requests_word_with_nobody_answering_it_fails_as_before() {
    let t0 = Instant::now();
    let a = PeerId::random();
    let mut f = named(&[a], t0);
    assert!(f.poll(t0, true).is_ok());
    // The only provider could not be reached, and there is no discovery: it fails at once, not at the stall.
    assert_eq!(f.on_gone(a, "could not connect within 10 s".into(), t0), None);
    assert!(matches!(f.poll(t0 + Duration::from_millis(10), true), Err(NodeError::NoProviders { .. })));
    // Without a size or a kind named it waits for an answer as before.
    let (g, _) = Fetch::new(ContentId([1; 32]), PeerId::random(), vec![(a, Vec::new())], false, None, tuning(), t0);
    assert_eq!(g.named(), None);
}

#[test]
fn a_provider_that_claims_another_size_or_an_absurd_one_is_closed() {
    let (mut f, peers, t0) = started(3, false);
    assert_eq!(f.on_have(peers[1], SIZE + 1, &all(SIZE + 1), false, t0), Answer::Steps(vec![Step::Close(peers[1])]));
    assert_eq!(f.on_have(peers[2], 1 << 51, &[], false, t0), Answer::Steps(vec![Step::Close(peers[2])]));
    // Neither is asked for anything afterwards.
    let (steps, _) = f.poll(t0 + Duration::from_secs(1), true).unwrap();
    assert!(gets(&steps).iter().all(|(p, _)| *p == peers[0]), "{steps:?}");
}

#[test]
fn every_piece_verified_finishes_and_the_tally_counts_each_providers_bytes() {
    let (mut f, peers, t0) = started(1, false);
    assert!(run_to_end(&mut f, t0, 100).is_some(), "never finished");
    assert_eq!(f.tally.peers[&peers[0]].bytes, SIZE);
    assert!(f.tally.received > SIZE, "proof bytes are counted as received");
    let done = f.finish().unwrap();
    assert_eq!((done.size, done.working.len()), (SIZE, 1));
}

#[test]
fn a_resumed_download_counts_what_it_had_and_asks_only_for_the_rest() {
    let t0 = Instant::now();
    let p = PeerId::random();
    let (mut f, _) = Fetch::new(ContentId([1; 32]), PeerId::random(), vec![(p, Vec::new())], false, None, tuning(), t0);
    let layout = Layout::new(SIZE);
    let first_half = ChunkSpan { start: 0, end: layout.piece_chunks(layout.piece_count() / 2).start };
    let (resumed, _) = f.begin(SIZE, &[first_half], false, t0);
    assert_eq!(resumed, SIZE / 2);
    f.on_have(p, SIZE, &all(SIZE), false, t0);
    let (steps, _) = f.poll(t0 + Duration::from_millis(10), true).unwrap();
    assert!(gets(&steps).iter().all(|(_, piece)| *piece >= layout.piece_count() / 2), "{steps:?}");
}

#[test]
fn nothing_useful_for_the_stall_timeout_fails_with_the_reason() {
    let (mut f, peers, t0) = started(1, false);
    f.on_piece_failed(peers[0], 0, Failure::Corrupt, "bad hash", 10, t0);
    let err = f.poll(t0 + Duration::from_secs(11), true).map(|_| ()).unwrap_err();
    assert!(matches!(&err, NodeError::Stalled { why, .. } if why.contains("failed verification")), "{err}");
}

#[test]
fn partial_providers_are_asked_again_and_checkpoints_wait_for_the_last_one() {
    let (mut f, peers, t0) = started(2, false);
    let half = vec![ChunkSpan { start: 0, end: 8 }];
    f.on_have(peers[1], SIZE, &half, false, t0);
    let (steps, _) = f.poll(t0 + Duration::from_millis(1500), false).unwrap();
    assert!(steps.contains(&Step::AskHave(peers[1])) && !steps.contains(&Step::AskHave(peers[0])), "{steps:?}");
    assert!(!steps.contains(&Step::Checkpoint), "the last checkpoint has not finished");
    let (steps, _) = f.poll(t0 + Duration::from_millis(1600), true).unwrap();
    assert!(steps.contains(&Step::Checkpoint), "{steps:?}");
}

#[test]
fn an_empty_blob_whose_id_is_not_the_empty_hash_is_refused() {
    let t0 = Instant::now();
    let p = PeerId::random();
    let (mut f, _) = Fetch::new(ContentId([1; 32]), PeerId::random(), vec![(p, Vec::new())], false, None, tuning(), t0);
    assert_eq!(f.on_have(p, 0, &[], false, t0), Answer::Steps(vec![Step::Close(p)]));
    // The empty blob's own id needs no proof.
    let (mut g, _) = Fetch::new(ContentId::of(b""), PeerId::random(), vec![(p, Vec::new())], false, None, tuning(), t0);
    assert_eq!(g.on_have(p, 0, &[], false, t0), Answer::Begin { size: 0, collection: false });
    // A request naming size 0 for another id does not begin at once with an empty file, and the honest
    // provider's size is proven instead of being called a lie.
    let (mut h, _) =
        Fetch::new(ContentId([1; 32]), PeerId::random(), vec![(p, Vec::new())], false, Some(false), tuning(), t0);
    h.expect_size(Some(0));
    assert_eq!(h.named(), None);
    assert_eq!(h.on_have(p, SIZE, &all(SIZE), false, t0), Answer::Steps(vec![probe(p, SIZE)]));
    let (mut e, _) =
        Fetch::new(ContentId::of(b""), PeerId::random(), vec![(p, Vec::new())], false, Some(false), tuning(), t0);
    e.expect_size(Some(0));
    assert_eq!(e.named(), Some((0, false)));
}

fn probe(peer: PeerId, size: u64) -> Step {
    let chunks = size.div_ceil(1024);
    Step::Probe { peer, size, span: ChunkSpan { start: chunks - 1, end: chunks } }
}

#[test]
fn a_claimed_size_is_proven_first_and_a_liar_that_cannot_prove_its_claim_is_dropped_for_the_honest_one() {
    let t0 = Instant::now();
    let (liar, honest) = (PeerId::random(), PeerId::random());
    let hints = vec![(liar, Vec::new()), (honest, Vec::new())];
    let (mut f, _) = Fetch::new(ContentId([1; 32]), PeerId::random(), hints, false, None, tuning(), t0);
    // The liar answers first: it is asked for the proof, and nothing begins.
    let lie = 64 * SIZE;
    assert_eq!(f.on_have(liar, lie, &all(lie), false, t0), Answer::Steps(vec![probe(liar, lie)]));
    // One proof at a time: the honest answer waits.
    assert_eq!(f.on_have(honest, SIZE, &all(SIZE), false, t0), Answer::Steps(Vec::new()));
    let (steps, _) = f.poll(t0, true).unwrap();
    assert!(gets(&steps).is_empty(), "nothing is requested before the size is proven: {steps:?}");
    // The liar cannot prove it: dropped, and the honest claim is checked next.
    let answer = f.on_size_proof(liar, lie, Err("the proof does not verify".into()));
    assert_eq!(answer, Answer::Steps(vec![Step::Close(liar), probe(honest, SIZE)]));
    assert_eq!(f.on_size_proof(honest, SIZE, Ok(())), Answer::Begin { size: SIZE, collection: false });
    let (_, joined) = f.begin(SIZE, &[], false, t0);
    assert!(joined.is_empty(), "the honest provider joins: {joined:?}");
    let (steps, _) = f.poll(t0 + Duration::from_secs(1), true).unwrap();
    assert!(!gets(&steps).is_empty() && gets(&steps).iter().all(|(p, _)| *p == honest), "{steps:?}");
    // A late liar with another size is dropped at once.
    let late = PeerId::random();
    assert!(f.on_found(late, Vec::new()).is_some());
    assert_eq!(f.on_have(late, SIZE * 2, &all(SIZE * 2), false, t0), Answer::Steps(vec![Step::Close(late)]));
}

#[test]
fn held_answers_of_another_size_are_dropped_once_the_size_is_proven() {
    let t0 = Instant::now();
    let (a, b) = (PeerId::random(), PeerId::random());
    let (mut f, _) =
        Fetch::new(ContentId([1; 32]), PeerId::random(), vec![(a, vec![]), (b, vec![])], false, None, tuning(), t0);
    assert_eq!(f.on_have(a, SIZE, &all(SIZE), false, t0), Answer::Steps(vec![probe(a, SIZE)]));
    assert_eq!(f.on_have(b, SIZE + 5, &all(SIZE + 5), false, t0), Answer::Steps(Vec::new()));
    assert_eq!(f.on_size_proof(a, SIZE, Ok(())), Answer::Begin { size: SIZE, collection: false });
    let (_, steps) = f.begin(SIZE, &[], false, t0);
    assert_eq!(steps, vec![Step::Close(b)]);
}

#[test]
fn when_the_provider_asked_for_the_proof_leaves_the_next_one_is_asked() {
    let t0 = Instant::now();
    let (a, b) = (PeerId::random(), PeerId::random());
    let (mut f, _) =
        Fetch::new(ContentId([1; 32]), PeerId::random(), vec![(a, vec![]), (b, vec![])], false, None, tuning(), t0);
    assert_eq!(f.on_have(a, SIZE, &all(SIZE), false, t0), Answer::Steps(vec![probe(a, SIZE)]));
    assert_eq!(f.on_have(b, SIZE, &all(SIZE), false, t0), Answer::Steps(Vec::new()));
    assert_eq!(f.on_gone(a, "stream broke".into(), t0), Some(probe(b, SIZE)));
    // A provider that does not have the last chunk is never asked to prove the size.
    let c = PeerId::random();
    let (mut g, _) = Fetch::new(ContentId([1; 32]), PeerId::random(), vec![(c, vec![])], false, None, tuning(), t0);
    assert_eq!(g.on_have(c, SIZE, &[ChunkSpan { start: 0, end: 8 }], false, t0), Answer::Steps(Vec::new()));
}

#[test]
fn with_a_size_from_the_request_no_proof_is_needed_and_other_claims_are_lies() {
    let t0 = Instant::now();
    let (liar, honest) = (PeerId::random(), PeerId::random());
    let hints = vec![(liar, Vec::new()), (honest, Vec::new())];
    let (mut f, _) = Fetch::new(ContentId([1; 32]), PeerId::random(), hints, false, None, tuning(), t0);
    f.expect_size(Some(SIZE));
    assert_eq!(f.on_have(liar, 3, &all(3), false, t0), Answer::Steps(vec![Step::Close(liar)]));
    assert_eq!(f.on_have(honest, SIZE, &all(SIZE), false, t0), Answer::Begin { size: SIZE, collection: false });
    let (_, joined) = f.begin(SIZE, &[], false, t0);
    assert!(joined.is_empty());
    run_to_end(&mut f, t0, 0);
    f.finish().unwrap();
    let why = f.tally.peers[&liar].dropped.clone().unwrap_or_default();
    assert!(why.contains("claims 3 bytes"), "{why}");
}

fn opens(steps: &[Step]) -> Vec<PeerId> {
    steps.iter().filter_map(|s| if let Step::Open { peer, .. } = s { Some(*peer) } else { None }).collect()
}

#[test]
fn a_provider_whose_session_broke_is_opened_again_backing_off_and_a_few_times_only() {
    let t0 = Instant::now();
    let (a, silent) = (PeerId::random(), PeerId::random());
    let tuning = DownloadTuning::default().with_stall_timeout(Duration::from_secs(30));
    let hints = vec![(a, Vec::new()), (silent, Vec::new())];
    let (mut f, _) = Fetch::new(ContentId([1; 32]), PeerId::random(), hints, false, None, tuning, t0);
    f.expect_size(Some(SIZE));
    assert_eq!(f.on_have(a, SIZE, &all(SIZE), false, t0), Answer::Begin { size: SIZE, collection: false });
    f.begin(SIZE, &[], false, t0);
    let s = Duration::from_secs;
    // `a` had answered: its session breaks and it is opened again 1 s later, not before.
    assert_eq!(f.on_gone(a, "stream reset".into(), t0), None);
    assert!(opens(&f.poll(t0 + Duration::from_millis(900), true).unwrap().0).is_empty());
    assert_eq!(opens(&f.poll(t0 + s(1), true).unwrap().0), vec![a]);
    // A provider that never answered is not tried again.
    assert_eq!(f.on_gone(silent, "could not connect within 10 s".into(), t0), None);
    // `a` breaks again and again with no piece in between: 2 s, then 4 s, then 8 s, then it is left out.
    let mut at = t0 + s(1);
    for wait in [2, 4, 8] {
        f.on_gone(a, "stream reset".into(), at);
        assert!(opens(&f.poll(at + s(wait) - Duration::from_millis(1), true).unwrap().0).is_empty());
        at += s(wait);
        assert_eq!(opens(&f.poll(at, true).unwrap().0), vec![a], "after {wait} s");
    }
    f.on_gone(a, "stream reset".into(), at);
    assert!(opens(&f.poll(at + s(9), true).unwrap().0).is_empty(), "more than four attempts");
    let err = f.poll(t0 + s(31), true).map(|_| ()).unwrap_err();
    assert!(matches!(&err, NodeError::Stalled { why, .. } if why.contains("stream reset")), "{err}");
}

#[test]
fn a_verified_piece_resets_the_attempts_and_a_provider_dropped_for_bad_data_is_not_opened_again() {
    let (mut f, peers, t0) = started(1, false);
    let a = peers[0];
    let s = Duration::from_secs;
    let layout = Layout::new(SIZE);
    let mut at = t0;
    // Four breaks, each followed by a verified piece: every reopen comes after 1 s.
    for _ in 0..5 {
        f.on_gone(a, "connection closed".into(), at);
        at += s(1);
        let (steps, _) = f.poll(at, true).unwrap();
        assert_eq!(opens(&steps), vec![a]);
        f.on_have(a, SIZE, &all(SIZE), false, at);
        at += Duration::from_millis(100);
        let (steps, _) = f.poll(at, true).unwrap();
        let (p, piece) = gets(&steps)[0];
        let r = layout.piece_bytes(piece);
        f.on_piece_ok(p, piece, r.end - r.start, r.end - r.start, at);
    }
    // Data that fails verification: the session's end does not bring it back.
    f.on_piece_failed(a, 1, Failure::Corrupt, "bad hash", 10, at);
    f.on_gone(a, "closed".into(), at);
    assert!(opens(&f.poll(at + s(2), true).unwrap().0).is_empty());
}
