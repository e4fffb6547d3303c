//! Which peers hold a letter for a recipient that does not answer, the topology's way:
//! - `structured`: the peers closest to the recipient's id in the DHT (a lookup); the recipient looks up
//!   the same peers when it starts, and collects from them;
//! - `hybrid`: the index servers (every peer of the network knows them and connects to them);
//! - `supernode`: the sender's supernodes (a leaf's; a supernode's linked supernodes);
//! - `pure`: the overlay neighbours (the peers we are connected to).
//!
//! Connected peers follow the topology's choice, so a letter finds holders in a small network too. Never
//! ourselves, never the recipient.
//!
//! How a recipient finds its holders, also the topology's way: in `structured` it looks up the peers
//! closest to its own id (`letters.rs`); in `hybrid` it connects to the index servers anyway. In `pure` and
//! `supernode` the holders are the *sender's* neighbours or supernodes, which a recipient that comes back
//! at a new address, attached to other peers, would never meet (and their knocks go to its old address).
//! There holders [`advertise`] a mailbox id per recipient ([`super::ids::mailbox_id`]) as something they
//! provide, and the returning recipient [`look_up`]s its own: a provider lookup of that id, which floods
//! the overlay in `pure` and crosses the supernode backbone in `supernode` like any search, answered by
//! the holders with their addresses. The recipient dials them, so it works when the recipient cannot be
//! dialled. What this shows anyone who looks up a recipient's mailbox id: that some peers hold letters for
//! it, not from whom or what.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use shoal_proto::messaging::AuthorKey;

use super::service::Shared;
use crate::config::Topology;

/// When a returning recipient looks up who holds its letters, after it starts: the overlay fills as
/// neighbours answer, so a little later, and again.
const LOOK_UP_AFTER: [Duration; 3] = [Duration::from_secs(2), Duration::from_secs(10), Duration::from_secs(60)];

/// True where holders advertise mailbox ids and recipients look them up (see the module docs).
fn by_lookup(topology: Topology) -> bool {
    matches!(topology, Topology::Pure | Topology::Supernode)
}

/// Candidates in order of preference.
pub(crate) async fn candidates(shared: &Shared, recipient: PeerId) -> Vec<PeerId> {
    let mut out: Vec<PeerId> = match shared.config.topology {
        Topology::Structured => shared.net.closest_peers(recipient.to_bytes()).await.unwrap_or_default(),
        Topology::Hybrid => shared
            .config
            .search
            .index_servers
            .iter()
            .filter_map(|a| match a.iter().last() {
                Some(libp2p::multiaddr::Protocol::P2p(p)) => Some(p),
                _ => None,
            })
            .collect(),
        Topology::Supernode => match shared.ctx.service::<crate::search::Search>() {
            Ok(search) => search.counters().supers.iter().filter_map(|s| s.parse().ok()).collect(),
            Err(_) => Vec::new(),
        },
        Topology::Pure => Vec::new(),
    };
    for p in shared.net.peers().await.unwrap_or_default() {
        out.push(p.peer);
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| *p != shared.peer_id && *p != recipient && seen.insert(*p));
    out
}

/// Makes the mailbox ids of the recipients we hold letters for (and only those) answer provider lookups.
/// Called on the holders' timer; `advertised` is what was provided before.
pub(crate) async fn advertise(shared: &Shared, advertised: &mut HashSet<AuthorKey>) {
    if !by_lookup(shared.config.topology) {
        return;
    }
    let Ok(search) = shared.ctx.service::<crate::search::Search>() else { return };
    let waiting: HashSet<AuthorKey> = shared.state().holding.recipients().copied().collect();
    for key in advertised.difference(&waiting) {
        if let Some(peer) = super::ids::peer_of(key)
            && let Err(e) = search.unprovide(super::ids::mailbox_id(&peer)).await
        {
            tracing::debug!(error = %e, "cannot stop advertising a mailbox");
        }
    }
    advertised.retain(|k| waiting.contains(k));
    for key in waiting {
        if advertised.contains(&key) {
            continue;
        }
        let Some(peer) = super::ids::peer_of(&key) else { continue };
        match search.provide(super::ids::mailbox_id(&peer)).await {
            Ok(true) => {
                advertised.insert(key);
            }
            // Full: the rest are found by knocking only.
            Ok(false) => break,
            Err(e) => tracing::debug!(error = %e, "cannot advertise a mailbox"),
        }
    }
}

/// A recipient that starts: finds the peers that advertise its mailbox and collects from each (a few
/// times, see [`LOOK_UP_AFTER`]).
pub(crate) fn look_up(shared: &Arc<Shared>) {
    if !by_lookup(shared.config.topology) {
        return;
    }
    let s = shared.clone();
    shared.tasks.spawn(async move {
        let Ok(search) = s.ctx.service::<crate::search::Search>() else { return };
        for wait in LOOK_UP_AFTER {
            tokio::time::sleep(wait).await;
            let Ok(mut found) = search.find_providers(super::ids::mailbox_id(&s.peer_id)).await else { continue };
            while let Some((peer, addrs)) = found.recv().await {
                if peer == s.peer_id {
                    continue;
                }
                tracing::debug!(%peer, "a peer holds letters for us");
                let s2 = s.clone();
                s.tasks.spawn(async move {
                    let up = tokio::time::timeout(super::streams::OPEN_TIMEOUT, s2.net.connect(peer, addrs)).await;
                    if matches!(up, Ok(Ok(()))) {
                        super::letters::collect_from(&s2, peer);
                    }
                });
            }
        }
    });
}
