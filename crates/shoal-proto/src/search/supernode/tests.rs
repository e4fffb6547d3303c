//! The supernode layer driven over an in-memory network with a virtual clock.

use std::collections::VecDeque;

use proptest::prelude::*;

use super::*;
use crate::search::keywords;
use crate::search::messages::{Provider, Want, WireId};

enum Wire {
    Msg(SearchMsg),
    Role(Role, Vec<(usize, Vec<Vec<u8>>)>),
}

struct Net {
    nodes: Vec<Supernode<usize>>,
    alive: Vec<bool>,
    links: BTreeSet<(usize, usize)>,
    names: Vec<Vec<(String, WireId)>>,
    queue: VecDeque<(usize, usize, Wire)>,
    now: Instant,
    delivered: HashMap<(usize, SearchId), Vec<Hit>>,
    finished: HashMap<(usize, SearchId), flood::SearchStats>,
    query_msgs: u64,
}

impl Net {
    fn new(n: usize, cfg: Config) -> Self {
        let now = Instant::now();
        Self {
            nodes: (0..n).map(|i| Supernode::new(cfg.clone(), i, vec![vec![i as u8]], 77 + i as u64, now)).collect(),
            alive: vec![true; n],
            links: BTreeSet::new(),
            names: vec![Vec::new(); n],
            queue: VecDeque::new(),
            now,
            delivered: HashMap::new(),
            finished: HashMap::new(),
            query_msgs: 0,
        }
    }

    fn connect(&mut self, a: usize, b: usize) {
        if a == b || !self.alive[a] || !self.alive[b] || !self.links.insert((a.min(b), a.max(b))) {
            return;
        }
        let x = self.nodes[a].peer_up(b);
        self.apply(a, x);
        let y = self.nodes[b].peer_up(a);
        self.apply(b, y);
    }

    fn kill(&mut self, k: usize) {
        self.alive[k] = false;
        let gone: Vec<(usize, usize)> = self.links.iter().filter(|(a, b)| *a == k || *b == k).copied().collect();
        for (a, b) in gone {
            self.links.remove(&(a, b));
            let other = if a == k { b } else { a };
            let now = self.now;
            let acts = self.nodes[other].peer_gone(&k, now);
            self.apply(other, acts);
        }
    }

    fn share(&mut self, at: usize, name: &str) -> WireId {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&(at as u64).to_le_bytes());
        id[8] = self.names[at].len() as u8;
        self.names[at].push((name.to_string(), id));
        let mut d = Digest::new();
        for (n, i) in &self.names[at] {
            d.insert_name(n);
            d.insert_id(i);
        }
        let acts = self.nodes[at].set_digest(d);
        self.apply(at, acts);
        id
    }

    fn apply(&mut self, at: usize, actions: Vec<SuperAction<usize>>) {
        for a in actions {
            match a {
                SuperAction::Flood(Action::Send { to, msg }) => {
                    if matches!(msg, SearchMsg::Query { .. }) {
                        self.query_msgs += 1;
                    }
                    self.queue.push_back((at, to, Wire::Msg(msg)));
                }
                SuperAction::SendRole { to, role, supers } => self.queue.push_back((at, to, Wire::Role(role, supers))),
                SuperAction::Dial { peer, .. } => self.connect(at, peer),
                SuperAction::Flood(Action::Answer { qid, query }) => {
                    let hits: Vec<Hit> = self.names[at]
                        .iter()
                        .filter(|(n, id)| match &query.want {
                            Want::Words(w) => keywords::matches(w, n),
                            Want::Id(x) => x == id,
                        })
                        .map(|(n, id)| Hit {
                            id: *id,
                            name: n.clone(),
                            size: 1,
                            collection: false,
                            provider: Provider { peer: vec![at as u8], addrs: vec![] },
                        })
                        .collect();
                    let now = self.now;
                    let more = self.nodes[at].on_local_hits(qid, hits, now);
                    self.apply(at, more);
                }
                SuperAction::Flood(Action::Deliver { search, hits, .. }) => {
                    self.delivered.entry((at, search)).or_default().extend(hits)
                }
                SuperAction::Flood(Action::Finished { search, stats }) => {
                    self.finished.insert((at, search), stats);
                }
                _ => {}
            }
        }
    }

    /// Delivers messages (1 ms each) and polls every peer every 100 ms, for `ms` virtual milliseconds.
    fn run(&mut self, ms: u64) {
        let end = self.now + Duration::from_millis(ms);
        let mut next_poll = self.now;
        let mut steps = 0u64;
        while self.now < end {
            steps += 1;
            assert!(steps < 5_000_000, "never settles");
            if let Some((from, to, w)) = self.queue.pop_front() {
                self.now += Duration::from_millis(1);
                // Messages only travel over live connections.
                if !self.alive[to] || !self.links.contains(&(from.min(to), from.max(to))) {
                    continue;
                }
                let now = self.now;
                let acts = match w {
                    Wire::Msg(m) => self.nodes[to].on_message(from, m, now),
                    Wire::Role(r, s) => self.nodes[to].on_role(from, r, s, now),
                };
                self.apply(to, acts);
            } else {
                self.now = self.now.max(next_poll);
            }
            if self.now >= next_poll {
                next_poll = self.now + Duration::from_millis(100);
                for i in 0..self.nodes.len() {
                    if self.alive[i] {
                        let now = self.now;
                        let acts = self.nodes[i].poll(now);
                        self.apply(i, acts);
                    }
                }
            }
        }
    }

    fn search(&mut self, at: usize, text: &str) -> Vec<Hit> {
        let now = self.now;
        let (sid, acts) = self.nodes[at].start(Query::words(text), 1, Duration::from_secs(10), now);
        self.apply(at, acts);
        for _ in 0..200 {
            self.run(100);
            if self.finished.remove(&(at, sid)).is_some() {
                return self.delivered.remove(&(at, sid)).unwrap_or_default();
            }
        }
        panic!("search never finished");
    }

    fn supers(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.alive[i] && self.nodes[i].role() == Role::Super).collect()
    }

    /// Every live leaf is attached to at least one live supernode.
    fn all_homed(&self) -> bool {
        (0..self.nodes.len())
            .filter(|&i| self.alive[i] && self.nodes[i].role() == Role::Leaf)
            .all(|i| self.nodes[i].supers().any(|s| self.alive[*s]))
    }
}

fn quick() -> Config {
    Config {
        min_uptime: Duration::from_millis(500),
        orphan_wait: Duration::from_millis(500),
        retry_after: Duration::from_secs(2),
        gossip_every: Duration::from_secs(2),
        ..Config::default()
    }
}

fn ring(n: usize, cfg: Config) -> Net {
    let mut net = Net::new(n, cfg);
    for i in 0..n {
        net.connect(i, (i + 1) % n);
    }
    net
}

#[test]
fn a_ring_elects_supernodes_homes_every_leaf_and_finds_files() {
    let mut net = ring(12, quick());
    net.run(10_000);
    let supers = net.supers();
    assert!(!supers.is_empty() && supers.len() < 12, "supernodes: {supers:?}");
    assert!(net.all_homed());
    let leaf = (0..12).find(|i| !supers.contains(i)).unwrap();
    let far = (leaf + 6) % 12;
    let id = net.share(far, "Holiday Photos 2024.zip");
    net.run(500);
    let hits = net.search(leaf, "holid pho");
    assert!(hits.iter().any(|h| h.id == id), "not found from {leaf} (supers {supers:?})");
}

#[test]
fn queries_reach_only_leaves_whose_digest_matches() {
    let mut net = ring(12, quick());
    net.run(10_000);
    for i in 0..12 {
        net.share(i, &format!("common file{i}.txt"));
    }
    net.run(500);
    let leaf = (0..12).find(|i| net.nodes[*i].role() == Role::Leaf).unwrap();
    let before = net.query_msgs;
    net.search(leaf, "nothing matches this");
    let useless = net.query_msgs - before;
    let before = net.query_msgs;
    net.search(leaf, "common");
    let useful = net.query_msgs - before;
    assert!(
        useless < useful,
        "a query no digest matches costs less ({useless}) than one every leaf matches ({useful})"
    );
}

#[test]
fn a_leaf_whose_supernode_dies_re_homes_within_seconds() {
    let mut net = ring(12, quick());
    net.run(10_000);
    let leaf = (0..12).find(|&i| net.nodes[i].role() == Role::Leaf).unwrap();
    let home = *net.nodes[leaf].supers().next().unwrap();
    assert!(net.supers().len() >= 2, "the test needs a second supernode: {:?}", net.supers());
    let far = (0..12).find(|&i| i != leaf && i != home && net.nodes[i].role() == Role::Leaf).unwrap();
    let id = net.share(far, "Winter Notes.txt");
    net.kill(home);
    net.run(3_000);
    assert!(net.all_homed(), "leaves re-homed after their supernode died");
    let hits = net.search(leaf, "winter");
    assert!(hits.iter().any(|h| h.id == id));
}

#[test]
fn too_few_supernodes_promote_more() {
    // Star: everyone knows the hub only; each supernode takes at most two leaves.
    let cfg = Config { max_leaves: 2, ..quick() };
    let mut net = Net::new(9, cfg);
    for i in 1..9 {
        net.connect(0, i);
    }
    net.run(20_000);
    assert!(net.all_homed());
    assert!(net.supers().len() >= 3, "8 leaves need at least 3 supernodes of 2 leaves: {:?}", net.supers());
}

#[test]
fn underused_supernodes_step_down_and_everyone_stays_homed() {
    // A flash start: everyone orphaned at once, news only by gossip, so most capable peers promote.
    let cfg = Config { spread_news: false, max_leaves: 16, demote_below: 8, ..quick() };
    let n = 40;
    let mut net = Net::new(n, cfg);
    for i in 0..n {
        for k in [1, 7, 13] {
            net.connect(i, (i + k) % n);
        }
    }
    net.run(3_000);
    let early = net.supers().len();
    net.run(60_000);
    let late = net.supers().len();
    assert!(early >= 10, "the flash start promotes many: {early}");
    assert!(late < early / 2, "underused supernodes stepped down: {early} -> {late}");
    assert!(late >= 3, "40 peers need at least 3 supernodes of 16 leaves: {late}");
    assert!(net.all_homed());
    let leaf = (0..n).find(|&i| net.nodes[i].role() == Role::Leaf).unwrap();
    let id = net.share((leaf + n / 2) % n, "Spring Lecture.pdf");
    net.run(500);
    assert!(net.search(leaf, "lecture").iter().any(|h| h.id == id));
}

#[test]
fn incapable_peers_never_promote() {
    let cfg = Config { capable: false, ..quick() };
    let mut net = ring(6, cfg);
    net.run(10_000);
    assert!(net.supers().is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// On any connected graph with no churn: every leaf finds a home, and a search finds a shared file.
    #[test]
    fn any_connected_graph_homes_everyone_and_finds_files(
        n in 4usize..24,
        extra in proptest::collection::vec((0usize..24, 0usize..24), 0..24),
        sharer in any::<prop::sample::Index>(),
        asker in any::<prop::sample::Index>(),
    ) {
        let mut net = Net::new(n, quick());
        for i in 1..n {
            net.connect(i, (i * 7 + 3) % i);
        }
        for (a, b) in extra {
            net.connect(a % n, b % n);
        }
        net.run(15_000);
        prop_assert!(!net.supers().is_empty());
        prop_assert!(net.all_homed());
        let (s, a) = (sharer.index(n), asker.index(n));
        prop_assume!(s != a);
        let id = net.share(s, "needle haystack.bin");
        net.run(500);
        let hits = net.search(a, "needle");
        prop_assert!(hits.iter().any(|h| h.id == id), "supers {:?}", net.supers());
    }
}
