//! The topology policy: which variant of the P2P model a network runs, what each peer then keeps, how a
//! search starts, and what a peer tells its index servers when its shares change.
//!
//! These decisions are made here once, so that the node's search driver and the simulator run the same
//! code: a change of policy shows in the simulator's figures and in the real network alike.

use std::collections::BTreeMap;

use super::messages::{IndexEntry, MAX_PUBLISH_ENTRIES, MAX_WITHDRAW_IDS, SearchMsg, WireId};

/// The variant of the P2P model a network runs: how search finds things. Every peer of a network must run
/// the same one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// Flooding with a TTL, no index (Gnutella).
    Pure,
    /// A Kademlia DHT as the index (eMule Kad). The default.
    #[default]
    Structured,
    /// Index servers keep share lists (Napster, trackers); flooding when none answers.
    Hybrid,
    /// Supernodes index their leaves (Kazaa, Gnutella ultrapeers).
    Supernode,
}

impl std::str::FromStr for Topology {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pure" => Ok(Self::Pure),
            "structured" => Ok(Self::Structured),
            "hybrid" => Ok(Self::Hybrid),
            "supernode" => Ok(Self::Supernode),
            other => Err(format!("unknown topology {other:?}: use pure, structured, hybrid or supernode")),
        }
    }
}

impl std::fmt::Display for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pure => "pure",
            Self::Structured => "structured",
            Self::Hybrid => "hybrid",
            Self::Supernode => "supernode",
        })
    }
}

/// How a search starts on a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Look the most selective word up in the DHT and ask the peers found, one hop (`structured`).
    Dht,
    /// Ask the index servers that are connected, one hop (`hybrid` with a server up).
    IndexServers,
    /// Flood it through the overlay (`pure`, and `hybrid` when no index server answers).
    Flood,
    /// Hand it to the supernode layer (`supernode`).
    Supernode,
}

impl Topology {
    /// How a search starts, given whether an index server is connected now.
    pub fn route(self, index_server_up: bool) -> Route {
        match self {
            Self::Structured => Route::Dht,
            Self::Hybrid if index_server_up => Route::IndexServers,
            Self::Pure | Self::Hybrid => Route::Flood,
            Self::Supernode => Route::Supernode,
        }
    }

    /// True when peers keep a flooding overlay (`hybrid` floods over it when no index server answers).
    pub fn keeps_overlay(self) -> bool {
        matches!(self, Self::Pure | Self::Hybrid)
    }

    /// True when peers run the Kademlia DHT (the others find things their own way).
    pub fn runs_dht(self) -> bool {
        self == Self::Structured
    }

    /// True when index servers belong to this topology.
    pub fn has_index_servers(self) -> bool {
        self == Self::Hybrid
    }
}

/// A peer's whole share list as `Publish` messages (the first one resets what the server had), each within
/// [`MAX_PUBLISH_ENTRIES`]: what an index server gets when it connects and at every refresh.
pub fn full_list(addrs: &[Vec<u8>], entries: &BTreeMap<WireId, IndexEntry>) -> Vec<SearchMsg> {
    let all: Vec<IndexEntry> = entries.values().cloned().collect();
    if all.is_empty() {
        return vec![SearchMsg::Publish { reset: true, addrs: addrs.to_vec(), entries: Vec::new() }];
    }
    all.chunks(MAX_PUBLISH_ENTRIES)
        .enumerate()
        .map(|(i, c)| SearchMsg::Publish { reset: i == 0, addrs: addrs.to_vec(), entries: c.to_vec() })
        .collect()
}

/// What changed between the list an index server has (`told`) and the list now: `Publish` for what is new
/// or different, then `Withdraw` for what is gone, each within its message limit. Empty when nothing
/// changed.
pub fn changes(
    addrs: &[Vec<u8>],
    told: &BTreeMap<WireId, IndexEntry>,
    now: &BTreeMap<WireId, IndexEntry>,
) -> Vec<SearchMsg> {
    let added: Vec<IndexEntry> = now.values().filter(|e| told.get(&e.id) != Some(*e)).cloned().collect();
    let removed: Vec<WireId> = told.keys().filter(|id| !now.contains_key(*id)).copied().collect();
    let mut out: Vec<SearchMsg> = added
        .chunks(MAX_PUBLISH_ENTRIES)
        .map(|c| SearchMsg::Publish { reset: false, addrs: addrs.to_vec(), entries: c.to_vec() })
        .collect();
    out.extend(removed.chunks(MAX_WITHDRAW_IDS).map(|c| SearchMsg::Withdraw { ids: c.to_vec() }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::registry::{self, Registry};

    fn entry(i: u8, name: &str) -> IndexEntry {
        IndexEntry { id: [i; 32], name: name.into(), size: u64::from(i), collection: false }
    }

    fn list(entries: &[IndexEntry]) -> BTreeMap<WireId, IndexEntry> {
        entries.iter().map(|e| (e.id, e.clone())).collect()
    }

    #[test]
    fn routes_follow_the_topology() {
        assert_eq!(Topology::Structured.route(false), Route::Dht);
        assert_eq!(Topology::Hybrid.route(true), Route::IndexServers);
        assert_eq!(Topology::Hybrid.route(false), Route::Flood);
        assert_eq!(Topology::Pure.route(true), Route::Flood);
        assert_eq!(Topology::Supernode.route(true), Route::Supernode);
        assert!(Topology::Hybrid.keeps_overlay() && !Topology::Supernode.keeps_overlay());
        assert_eq!("HYBRID".parse::<Topology>(), Ok(Topology::Hybrid));
        assert!("mesh".parse::<Topology>().unwrap_err().contains("use pure, structured"));
        assert_eq!(Topology::Supernode.to_string(), "supernode");
    }

    /// An index server that applies the full list and then each change ends up with exactly the list now.
    #[test]
    fn changes_bring_a_server_from_the_old_list_to_the_new() {
        let before: Vec<IndexEntry> = (0..200).map(|i| entry(i, &format!("file {i}"))).collect();
        let mut after: Vec<IndexEntry> = before[50..].to_vec();
        after[0].name = "renamed".into();
        after.push(entry(250, "new one"));
        let (told, now) = (list(&before), list(&after));
        let t0 = std::time::Instant::now();
        let mut r: Registry<u8> = Registry::new(registry::Config::default());
        fn apply(r: &mut Registry<u8>, msgs: Vec<SearchMsg>, t0: std::time::Instant) {
            for m in msgs {
                match m {
                    SearchMsg::Publish { reset, addrs, entries } => {
                        assert!(entries.len() <= MAX_PUBLISH_ENTRIES);
                        r.on_publish(1, reset, addrs, entries, t0);
                    }
                    SearchMsg::Withdraw { ids } => r.on_withdraw(&1, &ids, t0),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        let full = full_list(&[vec![1]], &told);
        assert_eq!(full.len(), 2, "200 entries go in two messages");
        apply(&mut r, full, t0);
        assert_eq!(r.entries(), 200);
        let diff = changes(&[vec![1]], &told, &now);
        apply(&mut r, diff, t0);
        assert_eq!(r.entries(), after.len());
        assert!(changes(&[vec![1]], &now, &now).is_empty());
        // An empty list still tells the server to forget what it had.
        assert!(matches!(&full_list(&[], &BTreeMap::new())[..], [SearchMsg::Publish { reset: true, .. }]));
    }
}
