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

/// How long after our stream to a connected server broke its list is sent again on a new one (not at
/// once: a server that refuses every stream is not asked in a tight loop).
const RESEND_AFTER: Duration = Duration::from_secs(1);

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
    /// Connected servers whose stream from us broke, and when: what we wrote may not have arrived (a
    /// stream the server could not accept in time is dropped), so they get the whole list again.
    broken: HashMap<PeerId, Instant>,
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
    /// Connected servers that need our whole list again (their stream broke).
    pub(super) resend: Vec<PeerId>,
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
        Self {
            servers,
            up: HashSet::new(),
            broken: HashMap::new(),
            told: BTreeMap::new(),
            refresh,
            last_refresh: now,
            last_redial: now,
        }
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
        self.broken.remove(peer);
        self.up.remove(peer)
    }

    /// Our stream to `peer` broke at `now` while the connection may still be up; a connected server of
    /// ours then gets its whole list again on a new stream (see [`Due::resend`]).
    pub(super) fn stream_broke(&mut self, peer: PeerId, now: Instant) {
        if self.up.contains(&peer) {
            self.broken.entry(peer).or_insert(now);
        }
    }

    /// What is due at `now`.
    pub(super) fn tick(&mut self, now: Instant) -> Due {
        let mut due = Due { refresh: false, redial: Vec::new(), resend: Vec::new() };
        if self.servers.is_empty() {
            return due;
        }
        self.broken.retain(|p, at| {
            let wait = now.duration_since(*at) < RESEND_AFTER;
            if !wait {
                due.resend.push(*p);
            }
            wait
        });
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
        let all: Vec<PeerId> = self.up.iter().copied().collect();
        let out: Vec<(PeerId, Vec<SearchMsg>)> = match why {
            // `told` is what every connected server has: the others get what changed since, so that
            // remembering `now` as told stays true for them too.
            ListFor::Connected(to) => {
                let others = all.into_iter().filter(|p| *p != to);
                let changes = policy::changes(my_addrs, &self.told, &now);
                let mut v: Vec<_> = others.map(|p| (p, changes.clone())).collect();
                v.push((to, policy::full_list(my_addrs, &now)));
                v
            }
            ListFor::Refresh => all.into_iter().map(|p| (p, policy::full_list(my_addrs, &now))).collect(),
            ListFor::Changed => {
                let changes = policy::changes(my_addrs, &self.told, &now);
                all.into_iter().map(|p| (p, changes.clone())).collect()
            }
            ListFor::Digest => return Vec::new(),
        };
        self.told = now;
        out.into_iter().flat_map(|(p, msgs)| msgs.into_iter().map(move |m| (p, m))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A random server id and its address.
    fn server() -> (PeerId, Multiaddr) {
        let p = PeerId::random();
        (p, format!("/ip4/127.0.0.1/tcp/1/p2p/{p}").parse().unwrap())
    }

    fn entry(i: u8) -> IndexEntry {
        IndexEntry { id: [i; 32], name: format!("f{i}"), size: 1, collection: false }
    }

    #[test]
    fn a_server_that_connects_gets_the_list_and_later_only_the_changes() {
        let (server, addr) = server();
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

    /// A second server that connects gets our whole list; the first one gets what changed since it was
    /// told, so neither misses a change.
    #[test]
    fn a_second_server_connecting_does_not_make_the_first_miss_a_change() {
        let ((s1, a1), (s2, a2)) = (server(), server());
        let addrs = [a1, a2];
        let t0 = Instant::now();
        let mut c = IndexClient::new(&addrs, Duration::from_secs(600), t0);
        assert!(c.connected(s1));
        c.messages(&[], vec![entry(1)], ListFor::Connected(s1));
        assert!(c.connected(s2));
        let sent = c.messages(&[], vec![entry(1), entry(2)], ListFor::Connected(s2));
        let to_s1: Vec<&SearchMsg> = sent.iter().filter(|(p, _)| *p == s1).map(|(_, m)| m).collect();
        assert!(
            matches!(&to_s1[..], [SearchMsg::Publish { reset: false, entries, .. }] if entries.len() == 1 && entries[0].id == [2; 32]),
            "s1 gets the new entry only: {to_s1:?}"
        );
        let to_s2: Vec<&SearchMsg> = sent.iter().filter(|(p, _)| *p == s2).map(|(_, m)| m).collect();
        assert!(matches!(&to_s2[..], [SearchMsg::Publish { reset: true, entries, .. }] if entries.len() == 2));
    }

    /// The CI failure behind this: a peer's first (empty) list went out on a stream the server dropped,
    /// and the server knew nothing of the peer until the next refresh, minutes later.
    #[test]
    fn a_server_whose_stream_broke_gets_the_whole_list_again_once() {
        let (server, addr) = server();
        let t0 = Instant::now();
        let mut c = IndexClient::new(std::slice::from_ref(&addr), Duration::from_secs(600), t0);
        c.stream_broke(server, t0);
        assert!(c.tick(t0 + RESEND_AFTER).resend.is_empty(), "not connected: nothing to resend");
        assert!(c.connected(server));
        c.stream_broke(server, t0);
        c.stream_broke(server, t0 + Duration::from_millis(500));
        assert!(c.tick(t0 + Duration::from_millis(900)).resend.is_empty(), "not in a tight loop");
        assert_eq!(c.tick(t0 + RESEND_AFTER).resend, vec![server], "once, however often it broke");
        assert!(c.tick(t0 + RESEND_AFTER * 2).resend.is_empty());
        let again = c.messages(&[], vec![entry(1)], ListFor::Connected(server));
        assert!(matches!(&again[..], [(p, SearchMsg::Publish { reset: true, .. })] if *p == server));
        // A server that went away is redialed, not resent to.
        c.stream_broke(server, t0);
        assert!(c.disconnected(&server));
        assert!(c.tick(t0 + Duration::from_secs(10)).resend.is_empty());
        assert!(!c.connected(PeerId::random()));
    }
}
