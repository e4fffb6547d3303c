//! Which peers hold a letter for a recipient that does not answer, the topology's way:
//! - `structured`: the peers closest to the recipient's id in the DHT (a lookup); the recipient looks up
//!   the same peers when it starts, and collects from them;
//! - `hybrid`: the index servers (every peer of the network knows them and connects to them);
//! - `supernode`: the sender's supernodes (a leaf's; a supernode's linked supernodes);
//! - `pure`: the overlay neighbours (the peers we are connected to).
//!
//! Connected peers follow the topology's choice, so a letter finds holders in a small network too. Never
//! ourselves, never the recipient.

use libp2p::PeerId;

use super::service::Shared;
use crate::config::Topology;

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
