//! The flooding router driven over an in-memory network of many peers.

use std::collections::{HashMap, VecDeque};

use proptest::prelude::*;

use super::*;
use crate::search::keywords;
use crate::search::messages::{Provider, Want};

/// Peers as indices, messages in one FIFO queue, one millisecond per hop.
struct Net {
    nodes: Vec<Flood<usize>>,
    names: Vec<Vec<(String, WireId)>>,
    queue: VecDeque<(usize, usize, SearchMsg)>,
    now: Instant,
    delivered: HashMap<(usize, SearchId), Vec<Hit>>,
    finished: HashMap<(usize, SearchId), SearchStats>,
    answered: HashMap<u64, Vec<usize>>,
    query_msgs: u64,
    max_reach: u8,
}

impl Net {
    fn new(n: usize, cfg: Config) -> Self {
        Self {
            nodes: (0..n).map(|i| Flood::new(cfg.clone(), 1000 + i as u64)).collect(),
            names: vec![Vec::new(); n],
            queue: VecDeque::new(),
            now: Instant::now(),
            delivered: HashMap::new(),
            finished: HashMap::new(),
            answered: HashMap::new(),
            query_msgs: 0,
            max_reach: 0,
        }
    }

    fn share(&mut self, at: usize, name: &str) -> WireId {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&(at as u64).to_le_bytes());
        id[8] = self.names[at].len() as u8;
        self.names[at].push((name.to_string(), id));
        id
    }

    fn local(&self, at: usize, q: &Query) -> Vec<Hit> {
        self.names[at]
            .iter()
            .filter(|(name, id)| match &q.want {
                Want::Words(w) => keywords::matches(w, name),
                Want::Id(want) => want == id,
            })
            .map(|(name, id)| Hit {
                id: *id,
                name: name.clone(),
                size: 1,
                collection: false,
                provider: Provider { peer: vec![at as u8], addrs: Vec::new() },
            })
            .collect()
    }

    fn apply(&mut self, at: usize, actions: Vec<Action<usize>>) {
        for a in actions {
            match a {
                Action::Send { to, msg } => {
                    if let SearchMsg::Query { ttl, hops, .. } = &msg {
                        self.query_msgs += 1;
                        self.max_reach = self.max_reach.max(ttl + hops);
                    }
                    self.queue.push_back((at, to, msg));
                }
                Action::Answer { qid, query } => {
                    self.answered.entry(qid).or_default().push(at);
                    let hits = self.local(at, &query);
                    let now = self.now;
                    let more = self.nodes[at].on_local_hits(qid, hits, now);
                    self.apply(at, more);
                }
                Action::Deliver { search, hits, .. } => self.delivered.entry((at, search)).or_default().extend(hits),
                Action::Finished { search, stats } => {
                    self.finished.insert((at, search), stats);
                }
                Action::NeighbourUp(_) | Action::NeighbourDown(_) | Action::Throttled(_) => {}
            }
        }
    }

    fn drain(&mut self) {
        let mut steps = 0;
        while let Some((from, to, msg)) = self.queue.pop_front() {
            steps += 1;
            assert!(steps < 1_000_000, "messages never stop");
            self.now += Duration::from_millis(1);
            if to >= self.nodes.len() {
                continue;
            }
            let now = self.now;
            let acts = self.nodes[to].on_message(from, msg, now);
            self.apply(to, acts);
        }
    }

    fn link(&mut self, a: usize, b: usize) {
        let now = self.now;
        let acts = self.nodes[a].join(b, now);
        self.apply(a, acts);
        self.drain();
    }

    fn search(&mut self, at: usize, text: &str, limit: usize) -> (Vec<Hit>, SearchStats) {
        let now = self.now;
        let (sid, acts) = self.nodes[at].start(Query::words(text), limit, Duration::from_secs(30), now);
        self.apply(at, acts);
        for _ in 0..100 {
            self.drain();
            if let Some(stats) = self.finished.remove(&(at, sid)) {
                return (self.delivered.remove(&(at, sid)).unwrap_or_default(), stats);
            }
            self.now = self.nodes[at].next_wakeup().unwrap_or(self.now).max(self.now);
            let now = self.now;
            let acts = self.nodes[at].poll(now);
            self.apply(at, acts);
        }
        panic!("search never finished");
    }

    /// Hop distances from `from` over the neighbour sets the routers agreed on.
    fn distances(&self, from: usize) -> Vec<Option<usize>> {
        let mut d = vec![None; self.nodes.len()];
        d[from] = Some(0);
        let mut q = VecDeque::from([from]);
        while let Some(x) = q.pop_front() {
            for &y in self.nodes[x].neighbours() {
                if d[y].is_none() {
                    d[y] = d[x].map(|v| v + 1);
                    q.push_back(y);
                }
            }
        }
        d
    }
}

fn line(n: usize, cfg: Config) -> Net {
    let mut net = Net::new(n, cfg);
    for i in 1..n {
        net.link(i, i - 1);
    }
    net
}

#[test]
fn neighbours_are_symmetric_and_capped() {
    let cfg = Config { degree: 2, ..Config::default() };
    let mut net = Net::new(4, cfg);
    net.link(1, 0);
    net.link(2, 0);
    net.link(3, 0);
    assert_eq!(net.nodes[0].neighbours().count(), 2);
    assert!(net.nodes[1].is_neighbour(&0) && net.nodes[0].is_neighbour(&1));
    assert!(!net.nodes[3].is_neighbour(&0), "a full peer refuses, and the asker does not count it");
    assert!(net.nodes[3].wants_neighbours());
    let acts = net.nodes[1].leave(&0);
    net.apply(1, acts);
    net.drain();
    assert!(!net.nodes[0].is_neighbour(&1));
}

#[test]
fn an_unanswered_join_is_given_up_after_the_timeout() {
    let cfg = Config { degree: 1, join_timeout: Duration::from_secs(10), ..Config::default() };
    let mut f: Flood<usize> = Flood::new(cfg, 1);
    let t0 = Instant::now();
    assert!(!f.join(7, t0).is_empty());
    // The answer never comes (lost with a broken link): the slot stays taken until the timeout.
    assert!(!f.wants_neighbours() && f.is_joining(&7));
    assert_eq!(f.next_wakeup(), Some(t0 + Duration::from_secs(10)));
    f.poll(t0 + Duration::from_secs(9));
    assert!(f.is_joining(&7));
    f.poll(t0 + Duration::from_secs(10));
    assert!(!f.is_joining(&7) && f.wants_neighbours(), "the slot is free again");
    // A late answer to a given-up join does not make a neighbour behind our back.
    f.on_message(7, SearchMsg::Joined { accepted: true }, t0 + Duration::from_secs(11));
    assert!(!f.is_neighbour(&7));
    assert!(!f.join(8, t0 + Duration::from_secs(12)).is_empty());
}

#[test]
fn expanding_ring_widens_only_while_hits_are_missing() {
    let mut net = line(8, Config::default());
    net.share(1, "Holiday Photos 2024.zip");
    net.share(5, "Holiday Video.mkv");
    let (hits, stats) = net.search(0, "holid pho", 1);
    assert_eq!(hits.len(), 1);
    assert_eq!(stats.rings, 1, "a hit one hop away needs only the first ring");
    let (hits, stats) = net.search(0, "holiday vid", 1);
    assert_eq!(hits.len(), 1);
    assert_eq!(stats.rings, 3, "five hops away needs the third ring (TTL 2, 4, then 7)");
    assert!(stats.first_hit.is_some());
    let (hits, stats) = net.search(0, "nothing like this", 5);
    assert!(hits.is_empty());
    assert_eq!(stats.rings, 3);
}

#[test]
fn inflated_ttl_is_cut_to_the_cap() {
    let mut net = line(12, Config::default());
    let q = SearchMsg::Query { qid: 77, ttl: 255, hops: 0, query: Query::words("anything") };
    // From a peer that is not a neighbour: answered and forwarded, but never further than max_ttl hops.
    net.queue.push_back((999, 0, q));
    net.drain();
    let mut reached = net.answered.remove(&77).unwrap();
    reached.sort();
    assert_eq!(reached, (0..MAX_TTL as usize).collect::<Vec<_>>());
    assert!(net.max_reach <= MAX_TTL);
}

#[test]
fn a_flooding_peer_is_throttled() {
    let cfg = Config { queries_per_sec: 1.0, query_burst: 10.0, ..Config::default() };
    let mut f: Flood<u32> = Flood::new(cfg, 1);
    let now = Instant::now();
    let mut answered = 0;
    let mut warned = 0;
    for qid in 0..100 {
        for a in f.on_message(5, SearchMsg::Query { qid, ttl: 1, hops: 0, query: Query::words("x y") }, now) {
            match a {
                Action::Answer { .. } => answered += 1,
                Action::Throttled(5) => warned += 1,
                _ => {}
            }
        }
    }
    assert_eq!((answered, warned, f.counters().throttled), (10, 1, 90));
    // Tokens come back with time.
    let later = now + Duration::from_secs(3);
    let acts = f.on_message(5, SearchMsg::Query { qid: 500, ttl: 1, hops: 0, query: Query::words("x y") }, later);
    assert!(acts.iter().any(|a| matches!(a, Action::Answer { .. })));
}

#[test]
fn malformed_queries_and_hits_are_dropped() {
    let mut f: Flood<u32> = Flood::new(Config::default(), 1);
    let now = Instant::now();
    let bad = SearchMsg::Query { qid: 1, ttl: 3, hops: 0, query: Query::words("") };
    assert!(f.on_message(2, bad, now).is_empty());
    let stray = SearchMsg::Hits {
        qid: 42,
        hits: vec![Hit {
            id: [0; 32],
            name: "x".into(),
            size: 1,
            collection: false,
            provider: Provider { peer: vec![1], addrs: vec![] },
        }],
    };
    assert!(f.on_message(2, stray, now).is_empty(), "hits for an unknown query go nowhere");
}

/// A connected random graph: a random spanning tree plus extra random edges.
fn graph() -> impl Strategy<Value = (usize, Vec<(usize, usize)>)> {
    (5usize..40).prop_flat_map(|n| {
        let tree = proptest::collection::vec(any::<prop::sample::Index>(), n - 1);
        let extra = proptest::collection::vec((0..n, 0..n), 0..n);
        (Just(n), tree, extra).prop_map(|(n, tree, extra)| {
            let mut edges: Vec<(usize, usize)> =
                tree.iter().enumerate().map(|(i, ix)| (i + 1, ix.index(i + 1))).collect();
            edges.extend(extra.into_iter().filter(|(a, b)| a != b));
            (n, edges)
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the graph: every search ends, each peer forwards a query id at most once, a file within
    /// the widest ring is found, and nothing beyond it is.
    #[test]
    fn floods_terminate_and_find_what_is_in_reach((n, edges) in graph(), sharer in any::<prop::sample::Index>(),
                                                   asker in any::<prop::sample::Index>(), degree in 2usize..8) {
        let cfg = Config { degree, ..Config::default() };
        let mut net = Net::new(n, cfg);
        for (a, b) in edges {
            net.link(a, b);
        }
        let (sharer, asker) = (sharer.index(n), asker.index(n));
        net.share(sharer, "needle in a haystack.txt");
        let dist = net.distances(asker)[sharer];
        let degrees: u64 = net.nodes.iter().map(|f| f.neighbours().count() as u64).sum();
        let before = net.query_msgs;
        let (hits, stats) = net.search(asker, "needle hay", 1);
        let sent = net.query_msgs - before;
        // Each ring's qid crosses each link at most once in each direction.
        prop_assert!(sent <= stats.rings as u64 * degrees, "{sent} messages > {} rings x {degrees}", stats.rings);
        prop_assert!(net.max_reach <= MAX_TTL);
        let reachable = dist.is_some_and(|d| d >= 1 && d <= MAX_TTL as usize);
        if sharer == asker {
            prop_assert!(hits.is_empty(), "a peer does not answer its own search");
        } else {
            prop_assert_eq!(!hits.is_empty(), reachable, "distance {:?}", dist);
        }
        for f in &net.nodes {
            prop_assert_eq!(f.active_searches(), 0);
        }
    }

    /// The seen-cache never holds more than its capacity, however many queries pass.
    #[test]
    fn seen_cache_stays_bounded(queries in 1usize..200, capacity in 1usize..32) {
        let cfg = Config { seen_capacity: capacity, query_burst: 1e9, ..Config::default() };
        let mut net = line(6, cfg);
        for i in 0..queries {
            net.search(i % 6, "some words", 1);
            for f in &net.nodes {
                prop_assert!(f.seen().len() <= capacity);
            }
        }
    }
}
