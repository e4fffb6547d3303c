//! The registry of an index server (`hybrid` topology), sans-IO: who shares what, and where to reach them.
//!
//! Peers publish their share lists (a full list with `reset` on connect and on every refresh, changes as
//! they happen); the server answers queries from the lists of all peers. A peer not heard from for
//! [`Config::expire_after`] is forgotten, so a peer that vanished without a word drops out of results after
//! at most that long. Everything is bounded: peers, entries per peer, hits per answer.
//!
//! Matching is the Rust twin of the local index ([`super::keywords::matches`]), a scan over all entries:
//! fine for the tens of thousands of names a test or a small community has; a large server would want an
//! inverted index here.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

use super::keywords;
use super::messages::{IndexEntry, Query, Want, WireId};

/// Limits of the registry.
#[derive(Clone, Debug)]
pub struct Config {
    /// A peer not heard from for this long is forgotten.
    pub expire_after: Duration,
    /// Most peers registered.
    pub max_peers: usize,
    /// Most entries kept per peer.
    pub max_entries_per_peer: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self { expire_after: Duration::from_secs(15 * 60), max_peers: 10_000, max_entries_per_peer: 10_000 }
    }
}

#[derive(Debug)]
struct Registered {
    addrs: Vec<Vec<u8>>,
    entries: BTreeMap<WireId, IndexEntry>,
    last_seen: Instant,
}

/// Share lists by peer.
#[derive(Debug)]
pub struct Registry<P> {
    cfg: Config,
    peers: HashMap<P, Registered>,
}

/// What a publish did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Recorded.
    Recorded,
    /// The registry is full of other peers: refused.
    Full,
}

impl<P: Clone + Eq + Hash> Registry<P> {
    /// An empty registry.
    pub fn new(cfg: Config) -> Self {
        Self { cfg, peers: HashMap::new() }
    }

    /// Peers registered.
    pub fn peers(&self) -> usize {
        self.peers.len()
    }

    /// Entries over all peers.
    pub fn entries(&self) -> usize {
        self.peers.values().map(|r| r.entries.len()).sum()
    }

    /// `peer` lists `entries` (after forgetting its old list when `reset`) and can be reached at `addrs`.
    pub fn on_publish(
        &mut self,
        peer: P,
        reset: bool,
        addrs: Vec<Vec<u8>>,
        entries: Vec<IndexEntry>,
        now: Instant,
    ) -> Outcome {
        if !self.peers.contains_key(&peer) && self.peers.len() >= self.cfg.max_peers {
            self.expire(now);
            if self.peers.len() >= self.cfg.max_peers {
                return Outcome::Full;
            }
        }
        let max = self.cfg.max_entries_per_peer;
        let r = self.peers.entry(peer).or_insert_with(|| Registered {
            addrs: Vec::new(),
            entries: BTreeMap::new(),
            last_seen: now,
        });
        if reset {
            r.entries.clear();
        }
        if !addrs.is_empty() {
            r.addrs = addrs;
        }
        r.last_seen = now;
        for e in entries {
            if r.entries.len() < max || r.entries.contains_key(&e.id) {
                r.entries.insert(e.id, e);
            }
        }
        Outcome::Recorded
    }

    /// `peer` no longer shares `ids`.
    pub fn on_withdraw(&mut self, peer: &P, ids: &[WireId], now: Instant) {
        if let Some(r) = self.peers.get_mut(peer) {
            r.last_seen = now;
            for id in ids {
                r.entries.remove(id);
            }
        }
    }

    /// Forgets peers not heard from for `expire_after`; returns them.
    pub fn expire(&mut self, now: Instant) -> Vec<P> {
        let keep = self.cfg.expire_after;
        let gone: Vec<P> = self
            .peers
            .iter()
            .filter(|(_, r)| now.saturating_duration_since(r.last_seen) >= keep)
            .map(|(p, _)| p.clone())
            .collect();
        for p in &gone {
            self.peers.remove(p);
        }
        gone
    }

    /// Up to `limit` (peer, its addresses, entry) matching `query`.
    pub fn search(&self, query: &Query, limit: usize) -> Vec<(&P, &[Vec<u8>], &IndexEntry)> {
        let mut out = Vec::new();
        for (p, r) in &self.peers {
            let found: Box<dyn Iterator<Item = &IndexEntry>> = match &query.want {
                Want::Id(id) => Box::new(r.entries.get(id).into_iter()),
                Want::Words(text) => Box::new(
                    r.entries
                        .values()
                        .filter(|e| keywords::matches(text, &e.name) && query.filters.accept(&e.name, e.size)),
                ),
            };
            for e in found {
                if out.len() >= limit {
                    return out;
                }
                out.push((p, r.addrs.as_slice(), e));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn entry(id: u8, name: &str) -> IndexEntry {
        IndexEntry { id: [id; 32], name: name.into(), size: 10, collection: false }
    }

    #[test]
    fn publish_withdraw_reset_and_expiry() {
        let t0 = Instant::now();
        let cfg = Config { expire_after: Duration::from_secs(60), ..Config::default() };
        let mut r: Registry<&str> = Registry::new(cfg);
        r.on_publish("a", true, vec![vec![1]], vec![entry(1, "Holiday Photos.zip"), entry(2, "notes.txt")], t0);
        r.on_publish("b", true, vec![vec![2]], vec![entry(1, "Holiday Photos.zip")], t0);
        let q = Query::words("holid pho");
        assert_eq!(r.search(&q, 10).len(), 2, "two peers have it");
        assert_eq!(r.search(&Query::id([2; 32]), 10).len(), 1);
        r.on_withdraw(&"b", &[[1; 32]], t0);
        assert_eq!(r.search(&q, 10).len(), 1);
        // A full list replaces the old one.
        r.on_publish("a", true, vec![], vec![entry(3, "other.bin")], t0);
        assert!(r.search(&q, 10).is_empty());
        // "a" keeps refreshing, "b" goes silent: only "b" expires.
        r.on_publish("a", false, vec![], vec![], t0 + Duration::from_secs(50));
        assert_eq!(r.expire(t0 + Duration::from_secs(61)), vec!["b"]);
        assert_eq!(r.peers(), 1);
    }

    #[test]
    fn limits_hold() {
        let t0 = Instant::now();
        let cfg = Config { max_peers: 2, max_entries_per_peer: 3, ..Config::default() };
        let mut r: Registry<u32> = Registry::new(cfg);
        let many: Vec<IndexEntry> = (0..10).map(|i| entry(i, "x")).collect();
        assert_eq!(r.on_publish(1, true, vec![], many.clone(), t0), Outcome::Recorded);
        assert_eq!(r.entries(), 3);
        assert_eq!(r.on_publish(2, true, vec![], vec![], t0), Outcome::Recorded);
        assert_eq!(r.on_publish(3, true, vec![], vec![], t0), Outcome::Full);
        assert_eq!(r.search(&Query::words("x"), 2).len(), 2);
    }

    proptest! {
        /// Whatever the sequence of publishes and withdrawals, the registry answers exactly what a naive
        /// model (a map per peer) would.
        #[test]
        fn matches_a_naive_model(ops in proptest::collection::vec((0u8..3, any::<bool>(), 0u8..6, any::<bool>()), 1..60)) {
            let t0 = Instant::now();
            let mut r: Registry<u8> = Registry::new(Config::default());
            let mut model: HashMap<u8, BTreeMap<u8, ()>> = HashMap::new();
            for (peer, reset, id, withdraw) in ops {
                if withdraw {
                    r.on_withdraw(&peer, &[[id; 32]], t0);
                    if let Some(m) = model.get_mut(&peer) { m.remove(&id); }
                } else {
                    r.on_publish(peer, reset, vec![], vec![entry(id, &format!("file{id} common"))], t0);
                    let m = model.entry(peer).or_default();
                    if reset { m.clear(); }
                    m.insert(id, ());
                }
            }
            let want: usize = model.values().map(BTreeMap::len).sum();
            prop_assert_eq!(r.search(&Query::words("common"), 1000).len(), want);
            prop_assert_eq!(r.entries(), want);
        }
    }
}
