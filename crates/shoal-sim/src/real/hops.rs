//! Hop counts of Kademlia lookups, replayed over the routing tables the real network built.
//!
//! libp2p's Kademlia reports what a lookup found, how many requests it sent and how long it took, but not
//! how deep it went. The literature counts hops: a peer the querier knew is one hop away, a peer it learnt
//! of from a one-hop peer two hops, and so on. This module replays a lookup the way Kademlia runs it
//! (alpha requests at a time to the closest peers not yet asked, until the k closest known have all
//! answered) over snapshots of every peer's real routing table and real provider records, and reports the
//! hop at which the first provider record was reached and the deepest hop the lookup needed.
//!
//! It is a measurement, not a second implementation: the lookups whose success and latency are reported
//! are libp2p's own, run by the nodes; only the depth is read off the replay. Both run over the same
//! tables, so their paths differ only in the order in which answers come back.

use std::collections::{BTreeMap, HashMap, HashSet};

use libp2p::PeerId;
use libp2p::kad::{KBucketDistance, KBucketKey, RecordKey};

/// What a replayed lookup saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replay {
    /// Hop of the first peer asked that holds a provider record for the key (0: the querier holds one);
    /// `None`: no provider record was reached.
    pub first_provider_hop: Option<u32>,
    /// Deepest hop the lookup asked before it ended.
    pub last_hop: u32,
    /// Peers asked (online or not).
    pub asked: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Answered,
    Failed,
}

/// Replays a lookup of `key` from `from`. `tables` holds the routing table of every online peer (a peer
/// missing from it is offline: asking it fails), `holders` the peers that store a provider record for
/// `key`. `k` and `alpha` as in Kademlia (libp2p: 20 and 3).
pub fn replay(
    from: PeerId,
    key: &[u8],
    tables: &HashMap<PeerId, Vec<PeerId>>,
    holders: &HashSet<PeerId>,
    k: usize,
    alpha: usize,
) -> Replay {
    let target = KBucketKey::new(RecordKey::new(&key));
    let distance = |p: &PeerId| KBucketKey::from(*p).distance(&target);
    // The k peers of a table closest to the target: what a peer answers (libp2p leaves the asker out).
    let closest = |table: &[PeerId], asker: &PeerId| -> Vec<PeerId> {
        let mut v: Vec<(KBucketDistance, PeerId)> =
            table.iter().filter(|p| *p != asker).map(|p| (distance(p), *p)).collect();
        v.sort_unstable_by_key(|a| a.0);
        v.into_iter().take(k).map(|(_, p)| p).collect()
    };
    let mut out = Replay::default();
    if holders.contains(&from) {
        out.first_provider_hop = Some(0);
    }
    // Known peers by distance: (peer, hop, state).
    let mut known: BTreeMap<KBucketDistance, (PeerId, u32, State)> = BTreeMap::new();
    for p in closest(tables.get(&from).map_or(&[][..], Vec::as_slice), &from) {
        known.insert(distance(&p), (p, 1, State::Waiting));
    }
    // Bounded: every round asks at least one new peer, and the peers are finitely many.
    loop {
        // The k closest that have not failed; the lookup ends when all of them have answered.
        let live: Vec<KBucketDistance> =
            known.iter().filter(|(_, (_, _, s))| *s != State::Failed).take(k).map(|(d, _)| *d).collect();
        let round: Vec<KBucketDistance> =
            live.iter().filter(|d| known.get(*d).is_some_and(|e| e.2 == State::Waiting)).take(alpha).copied().collect();
        if round.is_empty() {
            break;
        }
        let mut learnt = Vec::new();
        for d in round {
            let Some(entry) = known.get_mut(&d) else { continue };
            let (peer, hop) = (entry.0, entry.1);
            out.asked += 1;
            let Some(table) = tables.get(&peer) else {
                entry.2 = State::Failed;
                continue;
            };
            entry.2 = State::Answered;
            out.last_hop = out.last_hop.max(hop);
            if holders.contains(&peer) && out.first_provider_hop.is_none_or(|h| hop < h) {
                out.first_provider_hop = Some(hop);
            }
            learnt.extend(closest(table, &from).into_iter().map(|p| (p, hop + 1)));
        }
        for (p, hop) in learnt {
            if p != from {
                known.entry(distance(&p)).or_insert((p, hop, State::Waiting));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(n: usize) -> Vec<PeerId> {
        (0..n).map(|_| PeerId::random()).collect()
    }

    #[test]
    fn a_full_mesh_finds_the_provider_in_one_hop() {
        let p = peers(30);
        let tables: HashMap<PeerId, Vec<PeerId>> = p.iter().map(|a| (*a, p.clone())).collect();
        let holders: HashSet<PeerId> = [p[7]].into();
        // The holder is in the querier's table, but it is reached in one hop only if it is among the k
        // closest to the key: with k = 30 everyone is.
        let r = replay(p[0], b"key", &tables, &holders, 30, 3);
        assert_eq!(r.first_provider_hop, Some(1));
        assert_eq!(r.last_hop, 1);
        assert_eq!(r.asked, 29, "everyone but the querier");
    }

    #[test]
    fn a_chain_counts_one_hop_per_referral_and_offline_peers_fail() {
        // 0 knows 1, 1 knows 2, 2 knows 3 (the holder); 4 is known by 0 but offline.
        let p = peers(5);
        let mut tables: HashMap<PeerId, Vec<PeerId>> = HashMap::new();
        tables.insert(p[0], vec![p[1], p[4]]);
        tables.insert(p[1], vec![p[2]]);
        tables.insert(p[2], vec![p[3]]);
        tables.insert(p[3], vec![]);
        let holders: HashSet<PeerId> = [p[3]].into();
        let r = replay(p[0], b"key", &tables, &holders, 20, 3);
        assert_eq!(r.first_provider_hop, Some(3));
        assert_eq!(r.last_hop, 3);
        assert_eq!(r.asked, 4, "1, 4 (fails), 2, 3");
        // The querier itself holds a record: zero hops.
        let r = replay(p[3], b"key", &tables, &holders, 20, 3);
        assert_eq!((r.first_provider_hop, r.asked), (Some(0), 0));
        // Nobody holds one: none found, the lookup still ends.
        let r = replay(p[0], b"key", &tables, &HashSet::new(), 20, 3);
        assert_eq!(r.first_provider_hop, None);
    }
}
