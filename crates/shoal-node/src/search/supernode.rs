//! The supernode role (`supernode` topology): the core from `shoal-proto` set up from the node's settings,
//! and the host's judgement of whether this peer could carry a supernode's load (spare connections).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use shoal_proto::rng::Secret;
use shoal_proto::search::flood::Config as FloodConfig;
use shoal_proto::search::supernode::{self, Supernode};

use crate::config::SearchConfig;

/// A leaf that has just started, with the node's supernode settings.
pub(super) fn core(c: &SearchConfig, me: PeerId, my_addrs: Vec<Vec<u8>>, key: Secret) -> Supernode<PeerId> {
    let cfg = supernode::Config {
        flood: FloodConfig { ring: c.ring.clone(), ..supernode::Config::default().flood },
        capable: c.supernode_capable,
        min_uptime: c.supernode_min_uptime,
        orphan_wait: c.supernode_orphan_wait,
        max_leaves: c.supernode_max_leaves,
        demote_below: c.supernode_max_leaves / 4,
        // Gossip about supernodes a few times per orphan wait: fast enough to re-home within seconds.
        gossip_every: (c.supernode_orphan_wait * 4).max(Duration::from_secs(1)),
        retry_after: (c.supernode_orphan_wait * 4).clamp(Duration::from_secs(1), Duration::from_secs(10)),
        ..supernode::Config::default()
    };
    Supernode::new(cfg, me, my_addrs, key, Instant::now())
}

/// Whether this peer may be a supernode: the setting, and spare capacity (under half its connection cap).
pub(super) struct Capacity {
    capable: bool,
    max_connections: Option<u32>,
    connected: HashSet<PeerId>,
}

impl Capacity {
    pub(super) fn new(capable: bool, max_connections: Option<u32>) -> Self {
        Self { capable, max_connections, connected: HashSet::new() }
    }

    pub(super) fn connected(&mut self, peer: PeerId) {
        self.connected.insert(peer);
    }

    pub(super) fn gone(&mut self, peer: &PeerId) {
        self.connected.remove(peer);
    }

    /// True when the setting allows it and fewer than half the allowed connections are in use.
    pub(super) fn capable(&self) -> bool {
        let spare = self.max_connections.is_none_or(|m| (self.connected.len() as u64) * 2 < u64::from(m));
        self.capable && spare
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_near_its_connection_cap_is_not_capable() {
        let mut c = Capacity::new(true, Some(4));
        assert!(c.capable());
        let (a, b) = (PeerId::random(), PeerId::random());
        c.connected(a);
        assert!(c.capable());
        c.connected(b);
        assert!(!c.capable(), "2 of 4 is not under half");
        c.gone(&b);
        assert!(c.capable());
        assert!(!Capacity::new(false, None).capable());
    }
}
