//! The DHT's record store: bounded against strangers, and our own announcements kept apart from theirs.
//!
//! Shoal uses Kademlia for provider records only. libp2p's `MemoryStore` holds values as well (a stranger
//! could fill 65,536 of 64 KiB), and counts our own provided keys and every stranger's against one limit,
//! so a peer that announced enough keys to us stopped our own `start_providing` (shares were then never
//! announced). Here:
//! - value records are refused (`put` fails: nothing of ours uses them);
//! - our own provider records live apart, bounded only by [`DhtLimits::own`];
//! - other peers' provider records are bounded per peer and in all, with at most [`MAX_PROVIDERS_PER_KEY`]
//!   per key and a few short addresses each; when a bound is reached, expired records are dropped first,
//!   then new ones are refused (what is already stored stays).

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Values;
use std::time::Instant;

use libp2p::PeerId;
use libp2p::kad::store::{Error, RecordStore, Result};
use libp2p::kad::{ProviderRecord, Record, RecordKey};

/// Providers kept per key (Kademlia's replication factor: more adds nothing to a lookup).
pub const MAX_PROVIDERS_PER_KEY: usize = 20;
/// Addresses kept per stranger's record, and the longest kept (in bytes).
const MAX_ADDRS: usize = 4;
const MAX_ADDR_BYTES: usize = 128;

/// How many provider records the store keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DhtLimits {
    /// Our own provided keys (one per shared file).
    pub own: usize,
    /// Other peers' records from any one peer.
    pub per_peer: usize,
    /// Other peers' records in all.
    pub total: usize,
}

impl Default for DhtLimits {
    /// A peer is among the 20 closest for about 20/N of another's keys, so 8,192 per peer covers a
    /// 10,000-file share in a network of 25 peers and more; 65,536 in all is about 40 MB at the worst.
    fn default() -> Self {
        Self { own: 1 << 20, per_peer: 8_192, total: 65_536 }
    }
}

/// The record store (see the module docs).
pub(crate) struct DhtStore {
    local: PeerId,
    limits: DhtLimits,
    own: HashMap<RecordKey, ProviderRecord>,
    remote: HashMap<RecordKey, Vec<ProviderRecord>>,
    per_peer: HashMap<PeerId, usize>,
    remote_total: usize,
}

impl DhtStore {
    pub(crate) fn new(local: PeerId, limits: DhtLimits) -> Self {
        Self { local, limits, own: HashMap::new(), remote: HashMap::new(), per_peer: HashMap::new(), remote_total: 0 }
    }

    /// Other peers' records held now.
    pub(crate) fn remote_records(&self) -> usize {
        self.remote_total
    }

    /// Drops every expired record of other peers.
    fn prune_expired(&mut self, now: Instant) {
        let (per_peer, total) = (&mut self.per_peer, &mut self.remote_total);
        self.remote.retain(|_, list| {
            list.retain(|r| {
                let keep = !r.is_expired(now);
                if !keep {
                    forget(per_peer, total, &r.provider);
                }
                keep
            });
            !list.is_empty()
        });
    }

    fn add_remote(&mut self, mut record: ProviderRecord) -> Result<()> {
        record.addresses.retain(|a| a.len() <= MAX_ADDR_BYTES);
        record.addresses.truncate(MAX_ADDRS);
        if let Some(existing) =
            self.remote.get_mut(&record.key).and_then(|l| l.iter_mut().find(|r| r.provider == record.provider))
        {
            *existing = record;
            return Ok(());
        }
        let full = |s: &Self| {
            s.remote_total >= s.limits.total
                || s.per_peer.get(&record.provider).copied().unwrap_or(0) >= s.limits.per_peer
        };
        if full(self) {
            self.prune_expired(Instant::now());
            if full(self) {
                return Err(Error::MaxProvidedKeys);
            }
        }
        let list = self.remote.entry(record.key.clone()).or_default();
        if list.len() >= MAX_PROVIDERS_PER_KEY {
            // As libp2p's store does: a full key ignores newcomers (Sybils cannot push honest providers out).
            return Ok(());
        }
        *self.per_peer.entry(record.provider).or_default() += 1;
        self.remote_total += 1;
        list.push(record);
        Ok(())
    }
}

fn forget(per_peer: &mut HashMap<PeerId, usize>, total: &mut usize, peer: &PeerId) {
    *total = total.saturating_sub(1);
    if let Some(n) = per_peer.get_mut(peer) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            per_peer.remove(peer);
        }
    }
}

fn borrowed(r: &ProviderRecord) -> Cow<'_, ProviderRecord> {
    Cow::Borrowed(r)
}

impl RecordStore for DhtStore {
    type RecordsIter<'a> = std::iter::Empty<Cow<'a, Record>>;
    type ProvidedIter<'a> =
        std::iter::Map<Values<'a, RecordKey, ProviderRecord>, fn(&'a ProviderRecord) -> Cow<'a, ProviderRecord>>;

    fn get(&self, _: &RecordKey) -> Option<Cow<'_, Record>> {
        None
    }

    /// Value records are not part of Shoal's protocol: refused.
    fn put(&mut self, _: Record) -> Result<()> {
        Err(Error::MaxRecords)
    }

    fn remove(&mut self, _: &RecordKey) {}

    fn records(&self) -> Self::RecordsIter<'_> {
        std::iter::empty()
    }

    fn add_provider(&mut self, record: ProviderRecord) -> Result<()> {
        if record.provider != self.local {
            return self.add_remote(record);
        }
        if !self.own.contains_key(&record.key) && self.own.len() >= self.limits.own {
            return Err(Error::MaxProvidedKeys);
        }
        self.own.insert(record.key.clone(), record);
        Ok(())
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        self.own.get(key).into_iter().chain(self.remote.get(key).into_iter().flatten()).cloned().collect()
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.own.values().map(borrowed as fn(&ProviderRecord) -> Cow<'_, ProviderRecord>)
    }

    fn remove_provider(&mut self, key: &RecordKey, provider: &PeerId) {
        if *provider == self.local {
            self.own.remove(key);
            return;
        }
        let Some(list) = self.remote.get_mut(key) else { return };
        let before = list.len();
        list.retain(|r| r.provider != *provider);
        if list.len() < before {
            forget(&mut self.per_peer, &mut self.remote_total, provider);
        }
        if list.is_empty() {
            self.remote.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn record(key: u32, provider: PeerId, expires: Option<Instant>) -> ProviderRecord {
        ProviderRecord { key: RecordKey::new(&key.to_be_bytes()), provider, expires, addresses: Vec::new() }
    }

    fn limits() -> DhtLimits {
        DhtLimits { own: 1000, per_peer: 10, total: 25 }
    }

    #[test]
    fn strangers_are_bounded_per_peer_and_in_all_and_cannot_stop_our_own_announcements() {
        let me = PeerId::random();
        let mut s = DhtStore::new(me, limits());
        let sybils: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        for (i, p) in sybils.iter().enumerate() {
            for k in 0..50 {
                let _ = s.add_provider(record(i as u32 * 1000 + k, *p, None));
            }
        }
        assert_eq!(s.remote_records(), 25, "bounded in all");
        assert!(s.per_peer.values().all(|n| *n <= 10), "bounded per peer: {:?}", s.per_peer);
        // Our own keys still go in, all of them.
        for k in 0..500 {
            s.add_provider(record(1_000_000 + k, me, None)).unwrap();
        }
        assert_eq!(s.provided().count(), 500);
        // Value records are refused.
        assert!(s.put(Record::new(RecordKey::new(b"k"), vec![1; 10])).is_err());
        assert_eq!(s.records().count(), 0);
    }

    #[test]
    fn expired_records_make_room_and_removal_gives_the_quota_back() {
        let mut s = DhtStore::new(PeerId::random(), limits());
        let p = PeerId::random();
        let past = Instant::now().checked_sub(Duration::from_secs(1));
        for k in 0..10 {
            s.add_provider(record(k, p, past)).unwrap();
        }
        // Full for `p`, but every record of it has expired: a new one goes in.
        s.add_provider(record(99, p, None)).unwrap();
        assert_eq!((s.remote_records(), s.per_peer[&p]), (1, 1));
        s.remove_provider(&RecordKey::new(&99u32.to_be_bytes()), &p);
        assert_eq!(s.remote_records(), 0);
        assert!(!s.per_peer.contains_key(&p), "a peer with no record is not kept");
    }

    #[test]
    fn a_key_keeps_at_most_twenty_providers_and_the_first_ones_stay() {
        let mut s = DhtStore::new(PeerId::random(), DhtLimits { own: 10, per_peer: 10, total: 1000 });
        let peers: Vec<PeerId> = (0..30).map(|_| PeerId::random()).collect();
        for p in &peers {
            s.add_provider(record(7, *p, None)).unwrap();
        }
        let kept: Vec<PeerId> = s.providers(&RecordKey::new(&7u32.to_be_bytes())).iter().map(|r| r.provider).collect();
        assert_eq!(kept, peers[..MAX_PROVIDERS_PER_KEY].to_vec());
    }
}
