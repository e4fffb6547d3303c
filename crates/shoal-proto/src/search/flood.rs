//! The flooding router of the `pure` topology (Gnutella), sans-IO.
//!
//! A peer keeps a bounded set of overlay neighbours (`Join` / `Joined` / `Leave`). A query carries a random
//! id and a TTL; every peer remembers the ids it has seen (bounded and expiring: [`Seen`]), answers from its
//! own index (the host does the lookup: [`Action::Answer`], then [`Flood::on_local_hits`]), and forwards the
//! query with `ttl - 1` to its other neighbours. Hits travel back along the reverse path, one hop at a time,
//! using the seen-cache entry that remembers who sent the query.
//!
//! A search started here uses an expanding ring (Gnutella's dynamic querying): a first query with a small
//! TTL, then, only while there are fewer hits than wanted, a new query with a larger TTL after a pause.
//!
//! Abuse limits: a TTL is capped so that `hops + ttl` never exceeds [`Config::max_ttl`], whatever the sender
//! wrote; each sender has a token bucket of queries; hits routed back per query are capped.
//!
//! The same router serves direct queries: [`Flood::ask`] sends a search's query with TTL 1 to one peer (a
//! provider found in the DHT, an index server, a supernode), which answers it without forwarding.
//!
//! Over 600 lines because the router is one state machine (neighbours, seen-cache, rate limits, searches
//! and their rings share its state); its tests are in `flood/tests.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use super::messages::{Hit, MAX_HITS_PER_MSG, MAX_TTL, Query, SearchMsg, Want, WireId};
use crate::rng::{Secret, SecretIds};

/// Tuning of the router.
#[derive(Clone, Debug)]
pub struct Config {
    /// Most overlay neighbours.
    pub degree: usize,
    /// Highest `hops + ttl` a query may reach; higher TTLs are cut down.
    pub max_ttl: u8,
    /// TTLs of the expanding ring, smallest first.
    pub ring: Vec<u8>,
    /// Pause before the next ring when hits are still below the limit.
    pub ring_wait: Duration,
    /// Most query ids remembered.
    pub seen_capacity: usize,
    /// How long a query id is remembered (and hits for it routed back).
    pub seen_for: Duration,
    /// Queries a sender may make per second, on average.
    pub queries_per_sec: f64,
    /// Queries a sender may make at once.
    pub query_burst: f64,
    /// Most hits routed back per query through this peer.
    pub max_hits_routed: u32,
    /// A `Join` unanswered this long is given up (the answer was lost with a broken link), so the peer can
    /// be asked again.
    pub join_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            degree: 8,
            max_ttl: MAX_TTL,
            ring: vec![2, 4, MAX_TTL],
            ring_wait: Duration::from_millis(1500),
            seen_capacity: 20_000,
            seen_for: Duration::from_secs(120),
            queries_per_sec: 20.0,
            query_burst: 60.0,
            max_hits_routed: 512,
            join_timeout: Duration::from_secs(10),
        }
    }
}

/// Names a search started here.
pub type SearchId = u64;

/// What a finished search measured. Serialized with times in milliseconds (`first_hit_ms`, `elapsed_ms`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SearchStats {
    /// Query messages this peer sent for it.
    pub messages: u64,
    /// Distinct content ids found.
    pub hits: usize,
    /// Distinct peers that answered.
    pub responders: usize,
    /// Time from start to the first hit.
    #[serde(rename = "first_hit_ms", serialize_with = "opt_ms", deserialize_with = "de_opt_ms")]
    #[schema(value_type = Option<f64>)]
    pub first_hit: Option<Duration>,
    /// Rings of the expanding ring used.
    pub rings: usize,
    /// Time from start to end.
    #[serde(rename = "elapsed_ms", serialize_with = "ms", deserialize_with = "de_ms")]
    #[schema(value_type = f64)]
    pub elapsed: Duration,
}

/// Milliseconds with microsecond precision: on loopback a first hit can come in well under a millisecond.
fn millis(d: &Duration) -> f64 {
    (d.as_micros() as f64 / 1000.0 * 1000.0).round() / 1000.0
}

fn from_millis(ms: f64) -> Duration {
    Duration::from_secs_f64((ms / 1000.0).clamp(0.0, 1e9))
}

fn de_ms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    <f64 as serde::Deserialize>::deserialize(d).map(from_millis)
}

fn de_opt_ms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    <Option<f64> as serde::Deserialize>::deserialize(d).map(|v| v.map(from_millis))
}

fn ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(millis(d))
}

fn opt_ms<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&millis(d)),
        None => s.serialize_none(),
    }
}

/// Something the host must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<P> {
    /// Send `msg` to `to`.
    Send {
        /// The peer.
        to: P,
        /// The message.
        msg: SearchMsg,
    },
    /// Look `query` up in the local index and call [`Flood::on_local_hits`] with what matches.
    Answer {
        /// Query id to answer.
        qid: u64,
        /// The query.
        query: Query,
    },
    /// Hits for a search started here.
    Deliver {
        /// The search.
        search: SearchId,
        /// The neighbour they came through.
        from: P,
        /// The hits.
        hits: Vec<Hit>,
    },
    /// A search started here ended (limit reached, timed out, or cancelled).
    Finished {
        /// The search.
        search: SearchId,
        /// What it measured.
        stats: SearchStats,
    },
    /// `peer` is now a neighbour.
    NeighbourUp(P),
    /// `peer` is no longer a neighbour.
    NeighbourDown(P),
    /// `peer` sent queries faster than allowed; some were dropped.
    Throttled(P),
}

/// Counters since start (for `/metrics` and the simulator).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Counters {
    /// Queries received from other peers.
    pub queries_received: u64,
    /// Of those, already seen (dropped).
    pub duplicates: u64,
    /// Of those, over the sender's rate (dropped).
    pub throttled: u64,
    /// Query messages sent (forwarded or originated).
    pub queries_sent: u64,
    /// Hit messages sent (answered or routed back).
    pub hits_sent: u64,
}

/// Query ids seen recently: who sent each (to route hits back), bounded in number and age.
#[derive(Debug)]
pub struct Seen<P> {
    entries: HashMap<u64, SeenEntry<P>>,
    order: VecDeque<(Instant, u64)>,
    capacity: usize,
    keep_for: Duration,
}

#[derive(Debug)]
struct SeenEntry<P> {
    /// `None` for a query that started here.
    from: Option<P>,
    routed: u32,
}

impl<P> Seen<P> {
    fn new(capacity: usize, keep_for: Duration) -> Self {
        Self { entries: HashMap::new(), order: VecDeque::new(), capacity: capacity.max(1), keep_for }
    }

    /// Remembers `qid`; false if it was already known.
    fn insert(&mut self, qid: u64, from: Option<P>, now: Instant) -> bool {
        self.expire(now);
        if self.entries.contains_key(&qid) {
            return false;
        }
        while self.entries.len() >= self.capacity {
            let Some((_, old)) = self.order.pop_front() else { break };
            self.entries.remove(&old);
        }
        self.entries.insert(qid, SeenEntry { from, routed: 0 });
        self.order.push_back((now, qid));
        true
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(at, qid)) = self.order.front() {
            if now.saturating_duration_since(at) < self.keep_for {
                break;
            }
            self.order.pop_front();
            self.entries.remove(&qid);
        }
    }

    /// How many query ids are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    warned: bool,
}

#[derive(Debug)]
struct Search {
    query: Query,
    qids: Vec<u64>,
    limit: usize,
    started: Instant,
    deadline: Instant,
    next_ring: Option<Instant>,
    ring: usize,
    ids: HashSet<WireId>,
    responders: HashSet<Vec<u8>>,
    first_hit: Option<Duration>,
    messages: u64,
}

impl Search {
    /// What the limit counts: distinct ids for words, distinct providers for an id lookup.
    fn found(&self) -> usize {
        match self.query.want {
            Want::Id(_) => self.responders.len(),
            Want::Words(_) => self.ids.len(),
        }
    }
}

/// The flooding router of one peer. `P` names a peer (a libp2p `PeerId` in the node, an index in the
/// simulator).
#[derive(Debug)]
pub struct Flood<P> {
    cfg: Config,
    neighbours: BTreeSet<P>,
    /// Peers asked to be neighbours, and when.
    joining: BTreeMap<P, Instant>,
    seen: Seen<P>,
    buckets: HashMap<P, Bucket>,
    searches: BTreeMap<SearchId, Search>,
    by_qid: HashMap<u64, SearchId>,
    next_search: SearchId,
    ids: SecretIds,
    counters: Counters,
}

impl<P: Clone + Ord + Hash> Flood<P> {
    /// A router with no neighbours. `key` makes query ids (see [`crate::rng`]): a node gives a key from the OS
    /// generator; the simulator and tests a `u64` seed, so that runs replay.
    pub fn new(cfg: Config, key: impl Into<Secret>) -> Self {
        let seen = Seen::new(cfg.seen_capacity, cfg.seen_for);
        Self {
            cfg,
            neighbours: BTreeSet::new(),
            joining: BTreeMap::new(),
            seen,
            buckets: HashMap::new(),
            searches: BTreeMap::new(),
            by_qid: HashMap::new(),
            next_search: 1,
            ids: SecretIds::new(key.into()),
            counters: Counters::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Current neighbours.
    pub fn neighbours(&self) -> impl Iterator<Item = &P> {
        self.neighbours.iter()
    }

    /// True when `peer` is a neighbour.
    pub fn is_neighbour(&self, peer: &P) -> bool {
        self.neighbours.contains(peer)
    }

    /// True while `peer` was asked to be a neighbour and has not answered.
    pub fn is_joining(&self, peer: &P) -> bool {
        self.joining.contains_key(peer)
    }

    /// True when fewer neighbours are linked or being asked than the degree.
    pub fn wants_neighbours(&self) -> bool {
        self.neighbours.len() + self.joining.len() < self.cfg.degree
    }

    /// The seen-cache.
    pub fn seen(&self) -> &Seen<P> {
        &self.seen
    }

    /// Counters since start.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Searches started here and not finished.
    pub fn active_searches(&self) -> usize {
        self.searches.len()
    }

    fn next_qid(&mut self) -> u64 {
        self.ids.next_id()
    }

    /// Makes `peer` a neighbour without the `Join` handshake (a leaf's supernodes); false if full.
    pub fn add_neighbour(&mut self, peer: P) -> bool {
        if self.neighbours.contains(&peer) {
            return true;
        }
        if self.neighbours.len() >= self.cfg.degree {
            return false;
        }
        self.joining.remove(&peer);
        self.neighbours.insert(peer)
    }

    /// Asks `peer` to become a neighbour, if there is room and it is not one already.
    pub fn join(&mut self, peer: P, now: Instant) -> Vec<Action<P>> {
        if self.neighbours.contains(&peer) || self.joining.contains_key(&peer) || !self.wants_neighbours() {
            return Vec::new();
        }
        self.joining.insert(peer.clone(), now);
        vec![Action::Send { to: peer, msg: SearchMsg::Join }]
    }

    /// `peer` disconnected: it is no longer a neighbour.
    pub fn peer_gone(&mut self, peer: &P) -> Vec<Action<P>> {
        self.joining.remove(peer);
        self.buckets.remove(peer);
        if self.neighbours.remove(peer) { vec![Action::NeighbourDown(peer.clone())] } else { Vec::new() }
    }

    /// Leaves `peer` (tells it so).
    pub fn leave(&mut self, peer: &P) -> Vec<Action<P>> {
        let mut out = self.peer_gone(peer);
        out.push(Action::Send { to: peer.clone(), msg: SearchMsg::Leave });
        out
    }

    /// A message from `from`.
    pub fn on_message(&mut self, from: P, msg: SearchMsg, now: Instant) -> Vec<Action<P>> {
        let mut out = Vec::new();
        match msg {
            SearchMsg::Join => {
                let accepted = self.neighbours.contains(&from) || self.neighbours.len() < self.cfg.degree;
                if accepted && self.neighbours.insert(from.clone()) {
                    self.joining.remove(&from);
                    out.push(Action::NeighbourUp(from.clone()));
                }
                out.push(Action::Send { to: from, msg: SearchMsg::Joined { accepted } });
            }
            SearchMsg::Joined { accepted } => {
                let asked = self.joining.remove(&from).is_some();
                if accepted && asked {
                    if self.neighbours.len() < self.cfg.degree {
                        if self.neighbours.insert(from.clone()) {
                            out.push(Action::NeighbourUp(from));
                        }
                    } else {
                        out.push(Action::Send { to: from, msg: SearchMsg::Leave });
                    }
                }
            }
            SearchMsg::Leave => out.extend(self.peer_gone(&from)),
            SearchMsg::Query { qid, ttl, hops, query } => self.on_query(from, qid, ttl, hops, query, now, &mut out),
            SearchMsg::Hits { qid, hits } => self.on_hits(Some(from), qid, hits, now, &mut out),
            // Index updates are for an index server's registry, roles and digests for the supernode layer.
            SearchMsg::Publish { .. }
            | SearchMsg::Withdraw { .. }
            | SearchMsg::Role { .. }
            | SearchMsg::Attach
            | SearchMsg::Attached { .. }
            | SearchMsg::Digest { .. } => {}
        }
        out
    }

    fn allow(&mut self, from: &P, now: Instant) -> (bool, bool) {
        let (rate, burst) = (self.cfg.queries_per_sec, self.cfg.query_burst);
        let b = self.buckets.entry(from.clone()).or_insert(Bucket { tokens: burst, at: now, warned: false });
        b.tokens = (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            b.warned = false;
            (true, false)
        } else {
            let first = !b.warned;
            b.warned = true;
            (false, first)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_query(&mut self, from: P, qid: u64, ttl: u8, hops: u8, query: Query, now: Instant, out: &mut Vec<Action<P>>) {
        self.counters.queries_received += 1;
        let (ok, warn) = self.allow(&from, now);
        if !ok {
            self.counters.throttled += 1;
            if warn {
                out.push(Action::Throttled(from));
            }
            return;
        }
        if query.validate().is_err() {
            return;
        }
        if !self.seen.insert(qid, Some(from.clone()), now) {
            self.counters.duplicates += 1;
            return;
        }
        out.push(Action::Answer { qid, query: query.clone() });
        // Whatever the sender wrote, a query never travels further than max_ttl hops from its origin.
        let ttl = ttl.min(self.cfg.max_ttl.saturating_sub(hops));
        if ttl > 1 {
            let targets: Vec<P> = self.neighbours.iter().filter(|n| **n != from).cloned().collect();
            for to in targets {
                self.counters.queries_sent += 1;
                let msg = SearchMsg::Query { qid, ttl: ttl - 1, hops: hops.saturating_add(1), query: query.clone() };
                out.push(Action::Send { to, msg });
            }
        }
    }

    fn on_hits(&mut self, from: Option<P>, qid: u64, hits: Vec<Hit>, now: Instant, out: &mut Vec<Action<P>>) {
        if hits.is_empty() || hits.len() > MAX_HITS_PER_MSG || hits.iter().any(|h| h.validate().is_err()) {
            return;
        }
        if let Some(&sid) = self.by_qid.get(&qid) {
            let (Some(s), Some(from)) = (self.searches.get_mut(&sid), from) else { return };
            for h in &hits {
                s.ids.insert(h.id);
                s.responders.insert(h.provider.peer.clone());
            }
            s.first_hit.get_or_insert(now.saturating_duration_since(s.started));
            let done = s.found() >= s.limit;
            out.push(Action::Deliver { search: sid, from, hits });
            if done {
                out.extend(self.finish(sid, now));
            }
            return;
        }
        self.seen.expire(now);
        let Some(entry) = self.seen.entries.get_mut(&qid) else { return };
        let Some(back) = entry.from.clone() else { return };
        let room = self.cfg.max_hits_routed.saturating_sub(entry.routed) as usize;
        let hits: Vec<Hit> = hits.into_iter().take(room).collect();
        if hits.is_empty() {
            return;
        }
        entry.routed += hits.len() as u32;
        self.counters.hits_sent += 1;
        out.push(Action::Send { to: back, msg: SearchMsg::Hits { qid, hits } });
    }

    /// What the local index found for query `qid` (after [`Action::Answer`]); routed back to the asker.
    pub fn on_local_hits(&mut self, qid: u64, hits: Vec<Hit>, now: Instant) -> Vec<Action<P>> {
        let mut out = Vec::new();
        for chunk in hits.chunks(MAX_HITS_PER_MSG) {
            self.on_hits(None, qid, chunk.to_vec(), now, &mut out);
        }
        out
    }

    /// Starts a search: floods `query` to the neighbours with the first TTL of the ring. It ends after
    /// `limit` distinct ids (distinct providers for [`Want::Id`]), at `now + timeout`, or when cancelled, with [`Action::Finished`].
    pub fn start(&mut self, query: Query, limit: usize, timeout: Duration, now: Instant) -> (SearchId, Vec<Action<P>>) {
        self.open(query, limit, timeout, now, true)
    }

    /// Starts a search that floods nothing: its query goes only where [`Flood::ask`] sends it (DHT
    /// providers, index servers, supernodes).
    pub fn start_direct(&mut self, query: Query, limit: usize, timeout: Duration, now: Instant) -> SearchId {
        self.open(query, limit, timeout, now, false).0
    }

    fn open(
        &mut self,
        query: Query,
        limit: usize,
        timeout: Duration,
        now: Instant,
        flood: bool,
    ) -> (SearchId, Vec<Action<P>>) {
        let sid = self.next_search;
        self.next_search += 1;
        self.searches.insert(
            sid,
            Search {
                query,
                qids: Vec::new(),
                limit: limit.max(1),
                started: now,
                deadline: now + timeout,
                next_ring: None,
                ring: 0,
                ids: HashSet::new(),
                responders: HashSet::new(),
                first_hit: None,
                messages: 0,
            },
        );
        let mut out = Vec::new();
        if flood {
            self.send_ring(sid, now, &mut out);
        } else {
            let qid = self.next_qid();
            if let Some(s) = self.searches.get_mut(&sid) {
                s.qids.push(qid);
            }
            self.by_qid.insert(qid, sid);
            self.seen.insert(qid, None, now);
        }
        (sid, out)
    }

    fn send_ring(&mut self, sid: SearchId, now: Instant, out: &mut Vec<Action<P>>) {
        let qid = self.next_qid();
        let Some(s) = self.searches.get_mut(&sid) else { return };
        let Some(&ttl) = self.cfg.ring.get(s.ring) else { return };
        let ttl = ttl.clamp(1, self.cfg.max_ttl);
        s.qids.push(qid);
        s.ring += 1;
        s.next_ring = (s.ring < self.cfg.ring.len()).then(|| now + self.cfg.ring_wait);
        self.by_qid.insert(qid, sid);
        self.seen.insert(qid, None, now);
        for to in &self.neighbours {
            s.messages += 1;
            self.counters.queries_sent += 1;
            out.push(Action::Send {
                to: to.clone(),
                msg: SearchMsg::Query { qid, ttl, hops: 0, query: s.query.clone() },
            });
        }
    }

    /// Sends search `sid`'s query to `peer` directly, with TTL 1 (answered, never forwarded).
    pub fn ask(&mut self, sid: SearchId, peer: P) -> Vec<Action<P>> {
        let Some(s) = self.searches.get_mut(&sid) else { return Vec::new() };
        let Some(&qid) = s.qids.first() else { return Vec::new() };
        s.messages += 1;
        self.counters.queries_sent += 1;
        vec![Action::Send { to: peer, msg: SearchMsg::Query { qid, ttl: 1, hops: 0, query: s.query.clone() } }]
    }

    /// Ends search `sid` now.
    pub fn cancel(&mut self, sid: SearchId, now: Instant) -> Vec<Action<P>> {
        self.finish(sid, now).into_iter().collect()
    }

    fn finish(&mut self, sid: SearchId, now: Instant) -> Option<Action<P>> {
        let s = self.searches.remove(&sid)?;
        for q in &s.qids {
            self.by_qid.remove(q);
        }
        Some(Action::Finished {
            search: sid,
            stats: SearchStats {
                messages: s.messages,
                hits: s.ids.len(),
                responders: s.responders.len(),
                first_hit: s.first_hit,
                rings: s.ring,
                elapsed: now.saturating_duration_since(s.started),
            },
        })
    }

    /// Time passes: searches widen their ring or end, old query ids are forgotten.
    pub fn poll(&mut self, now: Instant) -> Vec<Action<P>> {
        self.seen.expire(now);
        let wait = self.cfg.join_timeout;
        self.joining.retain(|_, at| now.saturating_duration_since(*at) < wait);
        let idle = self.cfg.seen_for;
        self.buckets.retain(|_, b| now.saturating_duration_since(b.at) < idle);
        let mut out = Vec::new();
        let ids: Vec<SearchId> = self.searches.keys().copied().collect();
        for sid in ids {
            let Some(s) = self.searches.get(&sid) else { continue };
            if s.found() >= s.limit || now >= s.deadline {
                out.extend(self.finish(sid, now));
            } else if s.next_ring.is_some_and(|t| now >= t) {
                self.send_ring(sid, now, &mut out);
            }
        }
        out
    }

    /// When [`Flood::poll`] next has something to do (for an event loop with a virtual clock).
    pub fn next_wakeup(&self) -> Option<Instant> {
        let searches = self.searches.values().map(|s| s.next_ring.map_or(s.deadline, |r| r.min(s.deadline)));
        let joins = self.joining.values().map(|at| *at + self.cfg.join_timeout);
        searches.chain(joins).min()
    }
}

#[cfg(test)]
mod tests;
