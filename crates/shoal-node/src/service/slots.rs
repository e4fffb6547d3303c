//! Per-peer bounds that every service puts on what a remote peer may hold at once: open streams of a
//! protocol, prepared answers. Everything keyed by a remote peer is bounded and forgotten when the peer's
//! last slot is given back, so the map never outgrows the peers that hold something now.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use libp2p::PeerId;

/// At most `per_peer` slots held by any one peer at once.
#[derive(Clone, Debug)]
pub struct PeerSlots {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    per_peer: usize,
    held: Mutex<HashMap<PeerId, usize>>,
}

/// One slot of one peer; given back when dropped.
#[derive(Debug)]
pub struct PeerSlot {
    inner: Arc<Inner>,
    peer: PeerId,
}

impl PeerSlots {
    /// Slots of which each peer may hold `per_peer`.
    pub fn new(per_peer: usize) -> Self {
        Self { inner: Arc::new(Inner { per_peer, held: Mutex::new(HashMap::new()) }) }
    }

    /// A slot for `peer`, or `None` if it holds the most it may.
    pub fn take(&self, peer: PeerId) -> Option<PeerSlot> {
        let mut held = shoal_store::lock(&self.inner.held);
        let n = held.entry(peer).or_default();
        if *n >= self.inner.per_peer {
            return None;
        }
        *n += 1;
        Some(PeerSlot { inner: self.inner.clone(), peer })
    }

    /// Peers holding at least one slot now.
    pub fn peers(&self) -> usize {
        shoal_store::lock(&self.inner.held).len()
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut held = shoal_store::lock(&self.inner.held);
        if let Some(n) = held.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_peer_gets_its_share_and_a_peer_with_none_left_is_forgotten() {
        let slots = PeerSlots::new(2);
        let (a, b) = (PeerId::random(), PeerId::random());
        let a1 = slots.take(a).unwrap();
        let a2 = slots.take(a).unwrap();
        assert!(slots.take(a).is_none(), "a third slot for the same peer");
        let b1 = slots.take(b).unwrap();
        assert_eq!(slots.peers(), 2);
        drop(a1);
        let a3 = slots.take(a).unwrap();
        drop((a2, a3, b1));
        assert_eq!(slots.peers(), 0, "peers without slots are not kept");
    }
}
