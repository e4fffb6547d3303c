//! The index client role (`hybrid`): the index servers this peer registers with, which of them are
//! connected, and the share list they have from us (so that a change sends only the difference, built by
//! `shoal_proto::search::policy`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use shoal_proto::search::messages::WireId;
use shoal_proto::search::{IndexEntry, SearchMsg, policy};

/// How often index servers that are down are dialed again.
const REDIAL_EVERY: Duration = Duration::from_secs(5);

/// Why our share list was read.
#[derive(Clone, Copy, Debug)]
pub(super) enum ListFor {
    /// An index server just connected: it gets the full list.
    Connected(PeerId),
    /// Our shares changed: every server gets the difference.
    Changed,
    /// The refresh interval passed: every server gets the full list again.
    Refresh,
    /// Our supernodes need our keyword digest.
    Digest,
}

/// The index servers of this peer.
pub(super) struct IndexClient {
    servers: HashMap<PeerId, Multiaddr>,
    up: HashSet<PeerId>,
    /// Our share list as the index servers have it.
    told: BTreeMap<WireId, IndexEntry>,
    refresh: Duration,
    last_refresh: Instant,
    last_redial: Instant,
}

/// What is due at a tick.
pub(super) struct Due {
    /// Read the share list and send it whole to every connected server.
    pub(super) refresh: bool,
    /// Servers to dial again.
    pub(super) redial: Vec<Multiaddr>,
}

impl IndexClient {
    /// The servers of `addrs` (each ends in `/p2p/<id>`; others were refused when the node started).
    pub(super) fn new(addrs: &[Multiaddr], refresh: Duration, now: Instant) -> Self {
        let servers = addrs
            .iter()
            .filter_map(|a| match a.iter().last() {
                Some(Protocol::P2p(p)) => Some((p, a.clone())),
                _ => None,
            })
            .collect();
        Self { servers, up: HashSet::new(), told: BTreeMap::new(), refresh, last_refresh: now, last_redial: now }
    }

    /// True when this peer has index servers to register with.
    pub(super) fn has_servers(&self) -> bool {
        !self.servers.is_empty()
    }

    /// True when `peer` is one of our index servers.
    pub(super) fn is_server(&self, peer: &PeerId) -> bool {
        self.servers.contains_key(peer)
    }

    /// The servers connected now.
    pub(super) fn up(&self) -> impl Iterator<Item = &PeerId> {
        self.up.iter()
    }

    /// How many are connected.
    pub(super) fn up_count(&self) -> usize {
        self.up.len()
    }

    /// `peer` connected; true when it is one of our servers (it then needs our full list).
    pub(super) fn connected(&mut self, peer: PeerId) -> bool {
        self.is_server(&peer) && self.up.insert(peer)
    }

    /// `peer` disconnected; true when it was a connected server.
    pub(super) fn disconnected(&mut self, peer: &PeerId) -> bool {
        self.up.remove(peer)
    }

    /// What is due at `now`.
    pub(super) fn tick(&mut self, now: Instant) -> Due {
        let mut due = Due { refresh: false, redial: Vec::new() };
        if self.servers.is_empty() {
            return due;
        }
        if now.duration_since(self.last_refresh) >= self.refresh {
            self.last_refresh = now;
            due.refresh = true;
        }
        if now.duration_since(self.last_redial) >= REDIAL_EVERY && self.up.len() < self.servers.len() {
            self.last_redial = now;
            due.redial = self.servers.iter().filter(|(p, _)| !self.up.contains(p)).map(|(_, a)| a.clone()).collect();
        }
        due
    }

    /// What to send, to whom, now that our list is `entries` (read for `why`); remembers it as told.
    pub(super) fn messages(
        &mut self,
        my_addrs: &[Vec<u8>],
        entries: Vec<IndexEntry>,
        why: ListFor,
    ) -> Vec<(PeerId, SearchMsg)> {
        let now: BTreeMap<WireId, IndexEntry> = entries.into_iter().map(|e| (e.id, e)).collect();
        let (to, msgs): (Vec<PeerId>, Vec<SearchMsg>) = match why {
            ListFor::Connected(to) => (vec![to], policy::full_list(my_addrs, &now)),
            ListFor::Refresh => (self.up.iter().copied().collect(), policy::full_list(my_addrs, &now)),
            ListFor::Changed => (self.up.iter().copied().collect(), policy::changes(my_addrs, &self.told, &now)),
            ListFor::Digest => return Vec::new(),
        };
        self.told = now;
        to.into_iter().flat_map(|p| msgs.iter().map(move |m| (p, m.clone()))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u8) -> IndexEntry {
        IndexEntry { id: [i; 32], name: format!("f{i}"), size: 1, collection: false }
    }

    #[test]
    fn a_server_that_connects_gets_the_list_and_later_only_the_changes() {
        let server = PeerId::random();
        let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/1/p2p/{server}").parse().unwrap();
        let t0 = Instant::now();
        let mut c = IndexClient::new(std::slice::from_ref(&addr), Duration::from_secs(60), t0);
        assert!(c.has_servers() && c.is_server(&server) && c.up_count() == 0);
        // Down: dialed again every few seconds.
        assert_eq!(c.tick(t0 + Duration::from_secs(6)).redial, vec![addr]);
        assert!(c.connected(server));
        assert!(!c.connected(PeerId::random()), "not a server of ours");
        let first = c.messages(&[], vec![entry(1), entry(2)], ListFor::Connected(server));
        assert!(
            matches!(&first[..], [(p, SearchMsg::Publish { reset: true, entries, .. })] if *p == server && entries.len() == 2)
        );
        let change = c.messages(&[], vec![entry(2), entry(3)], ListFor::Changed);
        let kinds: Vec<&str> = change
            .iter()
            .map(|(_, m)| match m {
                SearchMsg::Publish { reset: false, .. } => "publish",
                SearchMsg::Withdraw { .. } => "withdraw",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["publish", "withdraw"]);
        assert!(c.tick(t0 + Duration::from_secs(61)).refresh);
        assert!(c.disconnected(&server) && c.up_count() == 0);
    }
}
