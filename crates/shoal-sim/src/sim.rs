//! The virtual-time engine: Shoal's sans-IO search cores, many peers, one event queue, no sockets.
//!
//! Every peer runs the real core of its topology ([`Flood`] for pure and hybrid, [`Supernode`] for supernode,
//! and the index server's [`Registry`] at peer 0 in hybrid), the same code the node runs. Messages are
//! events delivered after the link's latency; polls happen when a core asks for them; peers leave and come
//! back with exponential session times. Queries run one after another so that each one's messages can be
//! counted exactly.
//!
//! Over 600 lines: the engine's event queue, the peers' cores and the query runner share one state; the
//! swarm model is in `swarm.rs`, scenarios in `scenario.rs`. Splitting the query runner out is open work.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashSet};
use std::time::{Duration, Instant};

use shoal_proto::rng::{SplitMix64, pair_hash};
use shoal_proto::search::digest::Digest;
use shoal_proto::search::flood::{self, Action, Flood, SearchId};
use shoal_proto::search::messages::{IndexEntry, WireId};
use shoal_proto::search::policy::{self, Route};
use shoal_proto::search::registry::{self, Registry};
use shoal_proto::search::supernode::{self, Role, SuperAction, Supernode};
use shoal_proto::search::{Hit, Provider, Query, SearchMsg, Want, keywords};

use crate::scenario::{Scenario, Topology};

/// The simulator's generator: [`SplitMix64`], plus the distributions scenarios use.
pub struct Rng(SplitMix64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(SplitMix64::new(seed ^ 0x5DEE_CE66_D1CE_4E5B))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0.below(n.max(1))
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.0.unit()
    }

    /// Exponentially distributed with the given median.
    pub fn exp_median(&mut self, median: f64) -> f64 {
        -(1.0 - self.unit()).ln() * median / std::f64::consts::LN_2
    }
}

enum Wire {
    Msg(SearchMsg),
    Role(Role, Vec<(u32, Vec<Vec<u8>>)>),
}

enum Kind {
    Deliver { from: u32, to: u32, wire: Wire },
    Poll(u32),
    Leave(u32),
    Join(u32),
}

struct Event {
    at: Duration,
    seq: u64,
    kind: Kind,
}

impl PartialEq for Event {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Event {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

// Both boxed: a peer is a pointer in the list, whatever its topology.
enum Core {
    Flood(Box<Flood<u32>>),
    Super(Box<Supernode<u32>>),
}

/// What a core asked for, to be carried out once the core is no longer borrowed.
enum Acts {
    Flood(Vec<Action<u32>>),
    Super(Vec<SuperAction<u32>>),
}

impl Core {
    /// Runs `f` on a flooding core or `g` on a supernode core.
    fn run(
        &mut self,
        f: impl FnOnce(&mut Flood<u32>) -> Vec<Action<u32>>,
        g: impl FnOnce(&mut Supernode<u32>) -> Vec<SuperAction<u32>>,
    ) -> Acts {
        match self {
            Core::Flood(x) => Acts::Flood(f(x)),
            Core::Super(x) => Acts::Super(g(x)),
        }
    }
}

/// One query's outcome.
#[derive(Clone, Debug, serde::Serialize)]
pub struct QueryRecord {
    /// Which query (0-based).
    pub n: usize,
    /// The asking peer.
    pub asker: u32,
    /// Copies of the wanted file online when the query started.
    pub copies_online: usize,
    /// The wanted file came back.
    pub success: bool,
    /// Query and hit messages sent by all peers while the query ran.
    pub messages: u64,
    /// Peers that received the query and looked it up.
    pub reached: usize,
    /// Virtual milliseconds to the first hit for the wanted file.
    pub first_hit_ms: Option<f64>,
    /// The search ended by itself (limit or timeout) before the engine's deadline.
    pub finished: bool,
}

struct Current {
    asker: u32,
    sid: SearchId,
    want: WireId,
    found_at: Option<Duration>,
    done: bool,
    reached: HashSet<u32>,
}

/// A simulation in progress.
pub struct Sim {
    sc: Scenario,
    rng: Rng,
    base: Instant,
    now: Duration,
    seq: u64,
    queue: BinaryHeap<Reverse<Event>>,
    cores: Vec<Core>,
    alive: Vec<bool>,
    capable: Vec<bool>,
    links: Vec<HashSet<u32>>,
    names: Vec<Vec<(String, WireId)>>,
    /// Per file: its word, id and holders.
    files: Vec<(String, WireId, Vec<u32>)>,
    /// Cumulative query popularity over files.
    popularity: Vec<f64>,
    registry: Option<Registry<u32>>,
    poll_pending: Vec<bool>,
    cur: Option<Current>,
    /// Query and hit messages sent.
    pub search_messages: u64,
    /// Every other message (links, roles, digests, attaches, registrations).
    pub maintenance_messages: u64,
    /// The same by kind of message.
    pub maintenance_by_kind: std::collections::BTreeMap<&'static str, u64>,
    /// Events processed.
    pub events: u64,
    /// Supernode: queries a supernode looked up, times its leaves then (what broadcasting would send).
    pub leaf_slots: u64,
    /// Supernode: queries a supernode passed to a leaf (its digest matched).
    pub leaf_queries: u64,
}

fn file_id(k: usize) -> WireId {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&(k as u64).to_le_bytes());
    id[31] = 0x5e;
    id
}

fn kind_name(w: &Wire) -> &'static str {
    match w {
        Wire::Role(..) => "role",
        Wire::Msg(m) => match m {
            SearchMsg::Join => "join",
            SearchMsg::Joined { accepted: true } => "joined",
            SearchMsg::Joined { accepted: false } => "joined-refused",
            SearchMsg::Leave => "leave",
            SearchMsg::Attach => "attach",
            SearchMsg::Attached { accepted: true } => "attached",
            SearchMsg::Attached { accepted: false } => "attached-refused",
            SearchMsg::Digest { .. } => "digest",
            SearchMsg::Publish { .. } | SearchMsg::Withdraw { .. } => "publish",
            _ => "other",
        },
    }
}

const WORDS: &[&str] = &["holiday", "photos", "concert", "lecture", "notes", "garden", "recipe", "travel"];

impl Sim {
    /// Builds the network: peers, links, files; for supernode, lets the election settle for `warmup`.
    pub fn new(sc: Scenario) -> Self {
        let n = sc.peers;
        let mut rng = Rng::new(sc.seed);
        let base = Instant::now();
        let capable: Vec<bool> = (0..n).map(|_| rng.unit() < sc.supernode.capable_fraction).collect();
        let mut sim = Self {
            rng,
            base,
            now: Duration::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            cores: Vec::with_capacity(n),
            alive: vec![true; n],
            capable,
            links: vec![HashSet::new(); n],
            names: vec![Vec::new(); n],
            files: Vec::new(),
            popularity: Vec::new(),
            registry: (sc.topology == Topology::Hybrid).then(|| Registry::new(registry::Config::default())),
            poll_pending: vec![false; n],
            cur: None,
            search_messages: 0,
            maintenance_messages: 0,
            maintenance_by_kind: Default::default(),
            events: 0,
            leaf_slots: 0,
            leaf_queries: 0,
            sc,
        };
        for i in 0..n as u32 {
            let c = sim.fresh_core(i);
            sim.cores.push(c);
        }
        sim.place_files();
        for i in 0..n as u32 {
            sim.link_randomly(i);
        }
        for i in 0..n as u32 {
            sim.announce(i);
            sim.schedule_poll(i, Duration::ZERO);
        }
        if let Some(c) = sim.sc.churn.clone() {
            for i in 0..n as u32 {
                if !(sim.sc.topology == Topology::Hybrid && i == 0) {
                    let t = Duration::from_secs_f64(sim.rng.exp_median(c.median_session_s));
                    sim.push(t, Kind::Leave(i));
                }
            }
        }
        sim
    }

    fn at(&self) -> Instant {
        self.base + self.now
    }

    fn push(&mut self, at: Duration, kind: Kind) {
        self.seq += 1;
        self.queue.push(Reverse(Event { at, seq: self.seq, kind }));
    }

    fn fresh_core(&mut self, i: u32) -> Core {
        let seed = self.rng.next_u64();
        let fc = flood::Config { degree: self.sc.degree, ring: self.sc.ring.clone(), ..flood::Config::default() };
        match self.sc.topology {
            // Structured runs only as real peers (`Scenario::check` refuses it here).
            Topology::Pure | Topology::Hybrid | Topology::Structured => Core::Flood(Box::new(Flood::new(fc, seed))),
            Topology::Supernode => {
                let cfg = supernode::Config {
                    flood: flood::Config { degree: 6, ring: self.sc.ring.clone(), ..flood::Config::default() },
                    capable: self.capable[i as usize],
                    min_uptime: Duration::from_secs(10),
                    orphan_wait: Duration::from_secs(2),
                    max_leaves: self.sc.supernode.max_leaves,
                    demote_below: self.sc.supernode.max_leaves / 4,
                    retry_after: Duration::from_secs(4),
                    gossip_every: Duration::from_secs(10),
                    spread_news: self.sc.peers <= 2_000,
                    ..supernode::Config::default()
                };
                // No addresses: a message to a peer we are not connected to connects first (see `send`).
                Core::Super(Box::new(Supernode::new(cfg, i, Vec::new(), seed, self.at())))
            }
        }
    }

    fn place_files(&mut self) {
        let (n, f) = (self.sc.peers, self.sc.files);
        let weights = self.sc.popularity();
        let mut acc = 0.0;
        self.popularity = weights
            .iter()
            .map(|w| {
                acc += w;
                acc
            })
            .collect();
        for k in 0..f {
            let copies = self.sc.copies(k, &weights);
            // A made-up word of the file's own (what queries ask for), as real names have.
            let word: String = (0..8).map(|_| (b'a' + self.rng.below(26) as u8) as char).collect();
            let name = format!("{} {word}.dat", WORDS[k % WORDS.len()]);
            let id = file_id(k);
            let mut holders = BTreeSet::new();
            // Peer 0 is the index server in hybrid: it holds no files.
            let first = usize::from(self.sc.topology == Topology::Hybrid);
            while holders.len() < copies.min(n - first) {
                holders.insert((first + self.rng.below(n - first)) as u32);
            }
            for h in &holders {
                self.names[*h as usize].push((name.clone(), id));
            }
            self.files.push((word, id, holders.into_iter().collect()));
        }
    }

    /// Connects peer `i` to `degree / 2` random live peers (at least one).
    fn link_randomly(&mut self, i: u32) {
        let n = self.sc.peers;
        let want = (self.sc.degree / 2).max(1);
        let mut tries = 0;
        let mut made = 0;
        while made < want && tries < want * 20 {
            tries += 1;
            let j = self.rng.below(n) as u32;
            if j != i && self.alive[j as usize] && !self.links[i as usize].contains(&j) {
                self.connect(i, j);
                made += 1;
            }
        }
    }

    fn connect(&mut self, a: u32, b: u32) {
        if a == b || !self.alive[a as usize] || !self.alive[b as usize] || self.links[a as usize].contains(&b) {
            return;
        }
        self.links[a as usize].insert(b);
        self.links[b as usize].insert(a);
        self.maintenance_messages += 2;
        *self.maintenance_by_kind.entry("connect").or_default() += 2;
        if self.sc.topology == Topology::Supernode {
            let x = self.with_super(a, |s, _| s.peer_up(b));
            self.apply_super(a, x);
            let y = self.with_super(b, |s, _| s.peer_up(a));
            self.apply_super(b, y);
            return;
        }
        // Overlay links without the Join round trip (counted as two messages above). The hybrid server
        // (peer 0) is nobody's overlay neighbour.
        let room = |c: &Core| matches!(c, Core::Flood(f) if f.wants_neighbours());
        let server = self.sc.topology == Topology::Hybrid && (a == 0 || b == 0);
        if !server && room(&self.cores[a as usize]) && room(&self.cores[b as usize]) {
            if let Core::Flood(f) = &mut self.cores[a as usize] {
                f.add_neighbour(b);
            }
            if let Core::Flood(f) = &mut self.cores[b as usize] {
                f.add_neighbour(a);
            }
        }
    }

    fn with_super(
        &mut self,
        i: u32,
        f: impl FnOnce(&mut Supernode<u32>, Instant) -> Vec<SuperAction<u32>>,
    ) -> Vec<SuperAction<u32>> {
        let now = self.at();
        match &mut self.cores[i as usize] {
            Core::Super(s) => f(s, now),
            Core::Flood(_) => Vec::new(),
        }
    }

    /// A peer that (re)joins tells its index server or supernodes what it has.
    fn announce(&mut self, i: u32) {
        let entries: Vec<IndexEntry> = self.names[i as usize]
            .iter()
            .map(|(name, id)| IndexEntry { id: *id, name: name.clone(), size: 1, collection: false })
            .collect();
        if let Some(r) = self.registry.as_mut()
            && i != 0
        {
            // What the node sends an index server it (re)connects to: its whole list, in messages of the
            // protocol's size.
            let now = self.base + self.now;
            let list = entries.iter().map(|e| (e.id, e.clone())).collect();
            for m in policy::full_list(&[i.to_le_bytes().to_vec()], &list) {
                if let SearchMsg::Publish { reset, addrs, entries } = m {
                    r.on_publish(i, reset, addrs, entries, now);
                    self.maintenance_messages += 1;
                    *self.maintenance_by_kind.entry("publish").or_default() += 1;
                }
            }
        }
        if matches!(self.cores[i as usize], Core::Super(_)) {
            let mut d = Digest::new();
            for e in &entries {
                d.insert_name(&e.name);
                d.insert_id(&e.id);
            }
            let acts = self.with_super(i, |s, _| s.set_digest(d));
            self.apply_super(i, acts);
        }
    }

    fn schedule_poll(&mut self, i: u32, after: Duration) {
        if !self.poll_pending[i as usize] {
            self.poll_pending[i as usize] = true;
            self.push(self.now + after, Kind::Poll(i));
        }
    }

    fn latency(&self, a: u32, b: u32) -> Duration {
        let [lo, hi] = self.sc.latency_ms;
        // One latency per link, from the pair: the same both ways and every time.
        let h = pair_hash(u64::from(a), u64::from(b));
        Duration::from_millis(lo + h % (hi - lo + 1))
    }

    fn send(&mut self, from: u32, to: u32, wire: Wire) {
        if !self.links[from as usize].contains(&to) {
            // A message to a peer we have no connection to dials it first.
            self.connect(from, to);
        }
        if let (Wire::Msg(SearchMsg::Query { .. }), Core::Super(s)) = (&wire, &self.cores[from as usize])
            && s.role() == Role::Super
            && s.leaves().any(|l| *l == to)
        {
            self.leaf_queries += 1;
        }
        match &wire {
            Wire::Msg(SearchMsg::Query { .. } | SearchMsg::Hits { .. }) => self.search_messages += 1,
            other => {
                self.maintenance_messages += 1;
                *self.maintenance_by_kind.entry(kind_name(other)).or_default() += 1;
            }
        }
        let at = self.now + self.latency(from, to);
        self.push(at, Kind::Deliver { from, to, wire });
    }

    fn local_hits(&self, i: u32, qid_query: &Query) -> Vec<Hit> {
        let provider = |p: u32| Provider { peer: p.to_le_bytes().to_vec(), addrs: Vec::new() };
        let mut hits: Vec<Hit> = self.names[i as usize]
            .iter()
            .filter(|(name, id)| match &qid_query.want {
                Want::Words(w) => keywords::matches(w, name),
                Want::Id(x) => x == id,
            })
            .map(|(name, id)| Hit { id: *id, name: name.clone(), size: 1, collection: false, provider: provider(i) })
            .collect();
        if i == 0
            && let Some(r) = &self.registry
        {
            for (p, _, e) in r.search(qid_query, 256) {
                hits.push(Hit {
                    id: e.id,
                    name: e.name.clone(),
                    size: e.size,
                    collection: false,
                    provider: provider(*p),
                });
            }
        }
        hits
    }

    fn apply_flood(&mut self, i: u32, actions: Vec<Action<u32>>) {
        for a in actions {
            match a {
                Action::Send { to, msg } => self.send(i, to, Wire::Msg(msg)),
                Action::Answer { qid, query } => {
                    if let Some(c) = self.cur.as_mut() {
                        c.reached.insert(i);
                    }
                    if let Core::Super(s) = &self.cores[i as usize]
                        && s.role() == Role::Super
                    {
                        self.leaf_slots += s.leaves().count() as u64;
                    }
                    let hits = self.local_hits(i, &query);
                    if !hits.is_empty() {
                        let now = self.at();
                        let acts = match &mut self.cores[i as usize] {
                            Core::Flood(f) => Acts::Flood(f.on_local_hits(qid, hits, now)),
                            Core::Super(s) => Acts::Super(s.on_local_hits(qid, hits, now)),
                        };
                        self.apply(i, acts);
                    }
                }
                Action::Deliver { search, hits, .. } => {
                    let now = self.now;
                    if let Some(c) = self.cur.as_mut()
                        && c.asker == i
                        && c.sid == search
                        && c.found_at.is_none()
                        && hits.iter().any(|h| h.id == c.want)
                    {
                        c.found_at = Some(now);
                    }
                }
                Action::Finished { search, .. } => {
                    if let Some(c) = self.cur.as_mut()
                        && c.asker == i
                        && c.sid == search
                    {
                        c.done = true;
                    }
                }
                Action::NeighbourUp(_) | Action::NeighbourDown(_) | Action::Throttled(_) => {}
            }
        }
        self.after_actions(i);
    }

    fn apply(&mut self, i: u32, acts: Acts) {
        match acts {
            Acts::Flood(a) => self.apply_flood(i, a),
            Acts::Super(a) => self.apply_super(i, a),
        }
    }

    fn apply_super(&mut self, i: u32, actions: Vec<SuperAction<u32>>) {
        for a in actions {
            match a {
                SuperAction::Flood(a) => self.apply_flood(i, vec![a]),
                SuperAction::SendRole { to, role, supers } => self.send(i, to, Wire::Role(role, supers)),
                SuperAction::Dial { peer, .. } => self.connect(i, peer),
                SuperAction::Promoted | SuperAction::Demoted => {}
            }
        }
    }

    fn after_actions(&mut self, i: u32) {
        let wake = match &self.cores[i as usize] {
            Core::Flood(f) => f.next_wakeup().map(|t| t.saturating_duration_since(self.at())),
            Core::Super(_) => None,
        };
        if let Some(after) = wake {
            self.schedule_poll(i, after);
        }
    }

    fn process(&mut self, ev: Event) {
        self.events += 1;
        self.now = ev.at;
        let now = self.at();
        match ev.kind {
            Kind::Deliver { from, to, wire } => {
                if !self.alive[to as usize] || !self.alive[from as usize] {
                    return;
                }
                let acts = match (wire, &mut self.cores[to as usize]) {
                    (Wire::Msg(m), Core::Flood(f)) => Acts::Flood(f.on_message(from, m, now)),
                    (Wire::Msg(m), Core::Super(s)) => Acts::Super(s.on_message(from, m, now)),
                    (Wire::Role(r, list), Core::Super(s)) => Acts::Super(s.on_role(from, r, list, now)),
                    (Wire::Role(..), Core::Flood(_)) => Acts::Flood(Vec::new()),
                };
                self.apply(to, acts);
            }
            Kind::Poll(i) => {
                self.poll_pending[i as usize] = false;
                if !self.alive[i as usize] {
                    return;
                }
                let next = match &self.cores[i as usize] {
                    Core::Super(s) => Some(s.next_wakeup(now).saturating_duration_since(now)),
                    Core::Flood(_) => None,
                };
                let acts = self.cores[i as usize].run(|f| f.poll(now), |s| s.poll(now));
                self.apply(i, acts);
                if let Some(next) = next {
                    self.schedule_poll(i, next.max(Duration::from_millis(50)));
                }
                if let Some(r) = self.registry.as_mut() {
                    r.expire(now);
                }
            }
            Kind::Leave(i) => self.leave(i),
            Kind::Join(i) => self.join(i),
        }
    }

    fn leave(&mut self, i: u32) {
        if !self.alive[i as usize] {
            return;
        }
        self.alive[i as usize] = false;
        let now = self.at();
        for j in std::mem::take(&mut self.links[i as usize]) {
            self.links[j as usize].remove(&i);
            let acts = self.cores[j as usize].run(|f| f.peer_gone(&i), |s| s.peer_gone(&i, now));
            self.apply(j, acts);
        }
        if let Some(c) = self.cur.as_mut()
            && c.asker == i
        {
            c.done = true;
        }
        if let Some(c) = self.sc.churn.clone() {
            let t = Duration::from_secs_f64(self.rng.exp_median(c.median_offline_s));
            self.push(self.now + t, Kind::Join(i));
        }
    }

    fn join(&mut self, i: u32) {
        if self.alive[i as usize] {
            return;
        }
        self.alive[i as usize] = true;
        self.cores[i as usize] = self.fresh_core(i);
        self.link_randomly(i);
        self.announce(i);
        self.schedule_poll(i, Duration::ZERO);
        if let Some(c) = self.sc.churn.clone() {
            let t = Duration::from_secs_f64(self.rng.exp_median(c.median_session_s));
            self.push(self.now + t, Kind::Leave(i));
        }
    }

    /// Processes events until virtual time `until`.
    pub fn run_until(&mut self, until: Duration) {
        while let Some(Reverse(ev)) = self.queue.peek() {
            if ev.at > until {
                break;
            }
            let Some(Reverse(ev)) = self.queue.pop() else { break };
            self.process(ev);
        }
        self.now = self.now.max(until);
    }

    /// Virtual time now.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Peers online.
    pub fn online(&self) -> usize {
        self.alive.iter().filter(|a| **a).count()
    }

    /// Supernodes online.
    pub fn supernodes(&self) -> usize {
        self.cores
            .iter()
            .zip(&self.alive)
            .filter(|(c, a)| **a && matches!(c, Core::Super(s) if s.role() == Role::Super))
            .count()
    }

    /// Mean number of overlay neighbours of an online flooding peer (pure, hybrid).
    pub fn mean_degree(&self) -> f64 {
        let degrees: Vec<usize> = self
            .cores
            .iter()
            .zip(&self.alive)
            .filter_map(|(c, a)| match (a, c) {
                (true, Core::Flood(f)) => Some(f.neighbours().count()),
                _ => None,
            })
            .collect();
        degrees.iter().sum::<usize>() as f64 / degrees.len().max(1) as f64
    }

    /// Online leaves attached to no supernode, and the median number of supernode links of a supernode.
    pub fn overlay_shape(&self) -> (usize, f64) {
        let mut orphans = 0;
        let mut links = Vec::new();
        for (c, a) in self.cores.iter().zip(&self.alive) {
            if let (true, Core::Super(s)) = (a, c) {
                let n = s.supers().count();
                match s.role() {
                    Role::Leaf if n == 0 => orphans += 1,
                    Role::Super => links.push(n),
                    Role::Leaf => {}
                }
            }
        }
        links.sort_unstable();
        (orphans, links.get(links.len() / 2).map_or(0.0, |n| *n as f64))
    }

    /// The largest seen-cache of any peer.
    pub fn max_seen(&self) -> usize {
        self.cores
            .iter()
            .map(|c| match c {
                Core::Flood(f) => f.seen().len(),
                Core::Super(s) => s.flood().seen().len(),
            })
            .max()
            .unwrap_or(0)
    }

    /// Runs query `n`: a random online peer looks for a file chosen by popularity. Returns its record.
    pub fn query(&mut self, n: usize) -> QueryRecord {
        let u = self.rng.unit();
        let k = self.popularity.partition_point(|c| *c < u).min(self.files.len() - 1);
        let (word, want, holders) = self.files[k].clone();
        let copies_online = holders.iter().filter(|h| self.alive[**h as usize]).count();
        let mut asker = self.rng.below(self.sc.peers) as u32;
        for _ in 0..self.sc.peers {
            let is_server = self.sc.topology == Topology::Hybrid && asker == 0;
            if self.alive[asker as usize] && !holders.contains(&asker) && !is_server {
                break;
            }
            asker = (asker + 1) % self.sc.peers as u32;
        }
        let timeout = Duration::from_millis(self.sc.query_timeout_ms);
        let (before_msgs, started, now) = (self.search_messages, self.now, self.at());
        let query = Query::words(word);
        // The node's own policy: hybrid asks the index server (peer 0) while it is up, else floods.
        let route = self.sc.topology.route(self.alive[0]);
        let (sid, acts) = match &mut self.cores[asker as usize] {
            Core::Flood(f) if route == Route::IndexServers => {
                let sid = f.start_direct(query, 1, timeout, now);
                (sid, Acts::Flood(f.ask(sid, 0)))
            }
            Core::Flood(f) => {
                let (sid, a) = f.start(query, 1, timeout, now);
                (sid, Acts::Flood(a))
            }
            Core::Super(s) => {
                let (sid, a) = s.start(query, 1, timeout, now);
                (sid, Acts::Super(a))
            }
        };
        self.cur = Some(Current { asker, sid, want, found_at: None, done: false, reached: HashSet::new() });
        self.apply(asker, acts);
        self.after_actions(asker);
        let deadline = started + timeout + Duration::from_secs(5);
        while self.cur.as_ref().is_some_and(|c| !c.done) && self.now < deadline {
            let Some(Reverse(ev)) = self.queue.pop() else { break };
            if ev.at > deadline {
                self.queue.push(Reverse(ev));
                break;
            }
            self.process(ev);
        }
        // Let hits still in flight land, so that they are counted with this query.
        let settle = self.now + Duration::from_millis(self.sc.latency_ms[1] * 16);
        self.run_until(settle);
        let c = self.cur.take();
        let (found, reached, done) = c.map_or((None, 0, false), |c| (c.found_at, c.reached.len(), c.done));
        QueryRecord {
            n,
            asker,
            copies_online,
            success: found.is_some(),
            messages: self.search_messages - before_msgs,
            reached,
            first_hit_ms: found.map(|t| (t - started).as_secs_f64() * 1000.0),
            finished: done,
        }
    }
}
