//! The registry of an index server (`hybrid` topology), sans-IO: who shares what, and where to reach them.
//!
//! Peers publish their share lists (a full list with `reset` on connect and on every refresh, changes as
//! they happen); the server answers queries from the lists of all peers. A peer not heard from for
//! [`Config::expire_after`] is forgotten, so a peer that vanished without a word drops out of results after
//! at most that long. Everything is bounded: peers, entries and bytes per peer (a quota: a few Sybils cannot
//! take the server), bytes over all (the memory bound: when it is reached, new entries are refused, what is
//! listed stays), addresses per peer, hits per answer.
//!
//! Matching is the Rust twin of the local index ([`super::keywords::matches`]), a scan over all entries:
//! fine for the tens of thousands of names a test or a small community has; a large server would want an
//! inverted index here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
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
    /// Most bytes (see [`cost`]) kept per peer.
    pub max_bytes_per_peer: usize,
    /// Most bytes kept over all peers: the registry's memory bound.
    pub max_bytes: usize,
}

impl Default for Config {
    /// 10,000 entries or 4 MiB a peer (a typical entry is about 100 bytes), 512 MiB in all.
    fn default() -> Self {
        Self {
            expire_after: Duration::from_secs(15 * 60),
            max_peers: 10_000,
            max_entries_per_peer: 10_000,
            max_bytes_per_peer: 4 << 20,
            max_bytes: 512 << 20,
        }
    }
}

/// Addresses kept per peer, and the longest kept (bytes).
const MAX_ADDRS: usize = 8;
const MAX_ADDR_BYTES: usize = 128;

/// What an entry costs the server's memory, roughly: its name, its id and size, and the map's node.
pub fn cost(e: &IndexEntry) -> usize {
    e.name.len() + 96
}

#[derive(Debug)]
struct Registered {
    addrs: Vec<Vec<u8>>,
    entries: BTreeMap<WireId, IndexEntry>,
    /// Sum of [`cost`] over `entries`.
    bytes: usize,
    last_seen: Instant,
}

fn bounded_addrs(mut addrs: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    addrs.retain(|a| a.len() <= MAX_ADDR_BYTES);
    addrs.truncate(MAX_ADDRS);
    addrs
}

/// Share lists by peer.
#[derive(Debug)]
pub struct Registry<P> {
    cfg: Config,
    peers: HashMap<P, Registered>,
    /// Sum of every peer's `bytes`.
    bytes: usize,
    /// Peers whose list changed (or that were forgotten) since [`Registry::take_dirty`].
    dirty: BTreeSet<P>,
}

/// What a publish did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Recorded.
    Recorded,
    /// The registry is full of other peers: refused.
    Full,
}

/// One peer's registration, as saved and restored (the host keeps it in SQLite).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Saved {
    /// Its addresses.
    pub addrs: Vec<Vec<u8>>,
    /// Its list.
    pub entries: Vec<IndexEntry>,
}

impl<P: Clone + Eq + Hash + Ord> Registry<P> {
    /// An empty registry.
    pub fn new(cfg: Config) -> Self {
        Self { cfg, peers: HashMap::new(), bytes: 0, dirty: BTreeSet::new() }
    }

    /// Peers changed or forgotten since the last call, each with what to save (`None`: delete it) and how
    /// long ago it was last heard from.
    pub fn take_dirty(&mut self, now: Instant) -> Vec<(P, Option<(Saved, Duration)>)> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|p| {
                let saved = self.peers.get(&p).map(|r| {
                    let age = now.saturating_duration_since(r.last_seen);
                    (Saved { addrs: r.addrs.clone(), entries: r.entries.values().cloned().collect() }, age)
                });
                (p, saved)
            })
            .collect()
    }

    /// Puts back a registration saved earlier, last heard from `age` ago (it expires as if never gone).
    pub fn restore(&mut self, peer: P, saved: Saved, age: Duration, now: Instant) {
        if age >= self.cfg.expire_after || self.peers.len() >= self.cfg.max_peers {
            self.dirty.insert(peer);
            return;
        }
        let last_seen = now.checked_sub(age).unwrap_or(now);
        let r = Registered { addrs: bounded_addrs(saved.addrs), entries: BTreeMap::new(), bytes: 0, last_seen };
        if let Some(old) = self.peers.insert(peer.clone(), r) {
            self.bytes -= old.bytes;
        }
        for e in saved.entries {
            self.add_entry(&peer, e);
        }
    }

    /// Adds one entry of `peer` if its quota and the memory bound allow.
    fn add_entry(&mut self, peer: &P, e: IndexEntry) {
        let (cfg, total) = (&self.cfg, &mut self.bytes);
        let Some(r) = self.peers.get_mut(peer) else { return };
        let c = cost(&e);
        let old = r.entries.get(&e.id).map(cost);
        let grows = c.saturating_sub(old.unwrap_or(0));
        let fits = (old.is_some() || r.entries.len() < cfg.max_entries_per_peer)
            && r.bytes + grows <= cfg.max_bytes_per_peer
            && *total + grows <= cfg.max_bytes;
        if !fits {
            return;
        }
        r.entries.insert(e.id, e);
        r.bytes = r.bytes + c - old.unwrap_or(0);
        *total = *total + c - old.unwrap_or(0);
    }

    /// Bytes kept over all peers (see [`cost`]).
    pub fn bytes(&self) -> usize {
        self.bytes
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
        if reset || !entries.is_empty() || !addrs.is_empty() {
            self.dirty.insert(peer.clone());
        }
        let r = self.peers.entry(peer.clone()).or_insert_with(|| Registered {
            addrs: Vec::new(),
            entries: BTreeMap::new(),
            bytes: 0,
            last_seen: now,
        });
        if reset {
            r.entries.clear();
            self.bytes -= std::mem::take(&mut r.bytes);
        }
        if !addrs.is_empty() {
            r.addrs = bounded_addrs(addrs);
        }
        r.last_seen = now;
        for e in entries {
            self.add_entry(&peer, e);
        }
        Outcome::Recorded
    }

    /// `peer` no longer shares `ids`.
    pub fn on_withdraw(&mut self, peer: &P, ids: &[WireId], now: Instant) {
        if let Some(r) = self.peers.get_mut(peer) {
            self.dirty.insert(peer.clone());
            r.last_seen = now;
            for id in ids {
                if let Some(e) = r.entries.remove(id) {
                    r.bytes -= cost(&e);
                    self.bytes -= cost(&e);
                }
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
            if let Some(r) = self.peers.remove(p) {
                self.bytes -= r.bytes;
            }
            self.dirty.insert(p.clone());
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
    fn quotas_per_peer_and_the_memory_bound_hold_against_sybils_and_the_count_stays_exact() {
        let t0 = Instant::now();
        let one = cost(&entry(0, "x".repeat(100).as_str()));
        let cfg = Config { max_bytes_per_peer: 10 * one, max_bytes: 25 * one, ..Config::default() };
        let mut r: Registry<u32> = Registry::new(cfg);
        let list = |base: u32| -> Vec<IndexEntry> {
            (0..50u32)
                .map(|i| {
                    let mut e = entry(0, &"x".repeat(100));
                    e.id[..4].copy_from_slice(&(base * 1000 + i).to_le_bytes());
                    e
                })
                .collect()
        };
        for sybil in 0..5 {
            r.on_publish(sybil, true, vec![vec![0; 1000]; 100], list(sybil), t0);
        }
        assert_eq!(r.bytes(), 25 * one, "the memory bound");
        assert_eq!(r.entries(), 25, "10 + 10 + 5, then nothing");
        assert!(r.peers.values().all(|p| p.bytes <= 10 * one && p.addrs.is_empty()), "quota; long addresses dropped");
        // Withdrawing, resetting and expiring give the bytes back exactly.
        r.on_withdraw(&0, &[list(0)[0].id], t0);
        assert_eq!(r.bytes(), 24 * one);
        r.on_publish(1, true, vec![], list(1)[..3].to_vec(), t0);
        assert_eq!(r.bytes(), 17 * one);
        r.expire(t0 + Duration::from_secs(16 * 60));
        assert_eq!((r.bytes(), r.entries()), (0, 0));
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
    fn what_is_saved_comes_back_and_still_expires() {
        let t0 = Instant::now();
        let cfg = Config { expire_after: Duration::from_secs(60), ..Config::default() };
        let mut r: Registry<u8> = Registry::new(cfg.clone());
        r.on_publish(1, true, vec![vec![9]], vec![entry(1, "Holiday Photos.zip")], t0);
        r.on_publish(2, true, vec![], vec![entry(2, "notes.txt")], t0);
        r.on_withdraw(&2, &[[2; 32]], t0);
        let t1 = t0 + Duration::from_secs(20);
        let saved = r.take_dirty(t1);
        assert_eq!(saved.len(), 2);
        assert!(r.take_dirty(t1).is_empty(), "nothing changed since");
        // A restarted server restores what was saved, ages included.
        let mut back: Registry<u8> = Registry::new(cfg);
        for (p, s) in saved {
            let (s, age) = s.unwrap();
            assert_eq!(age, Duration::from_secs(20));
            back.restore(p, s, age, t1);
        }
        assert_eq!(back.search(&Query::words("holid"), 10).len(), 1);
        // Not heard from since: it expires 60 s after it was last heard from, not after the restart.
        assert!(back.expire(t0 + Duration::from_secs(59)).is_empty());
        assert_eq!(back.expire(t0 + Duration::from_secs(61)).len(), 2);
        assert_eq!(back.take_dirty(t1).iter().filter(|(_, s)| s.is_none()).count(), 2, "expired peers are deleted");
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
