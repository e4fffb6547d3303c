//! Search over the network, in the topology the node runs.
//!
//! One task, the search driver ([`driver`](self::driver)), owns the sans-IO router
//! ([`shoal_proto::search::Flood`]) and feeds it messages, peer events, local index answers and time. What it
//! does per topology:
//! - `pure`: floods queries among overlay neighbours (peers it was introduced to, and peers that ask to join,
//!   up to `degree`); hits come back along the reverse path.
//! - `structured`: no overlay. Each keyword of each shared name is announced in the Kademlia DHT as a provider
//!   record under BLAKE3 of the keyword's first three letters ([`keyword_key`](self::dht::keyword_key)); a
//!   search looks up its most selective word there and asks the peers found, one hop, with the full query.
//!   Provider lookups of a content id use the DHT's provider records of that id, as downloads always did.
//!
//! Messages travel on `/shoal/search/1` ([`links`](self::links)): one outbound stream per peer written by its
//! own task, and inbound streams read by one task each, so a slow peer never blocks the driver.
//! [`Search`] is the service on the node's seam that owns all of it.

use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use shoal_proto::search::Hit;
use shoal_proto::search::messages::MAX_ADDRS;
use shoal_proto::search::{Query, SearchStats};
use shoal_store::ContentId;
use tokio::sync::mpsc;

pub(crate) mod dht;
pub(crate) mod driver;
mod index_client;
mod index_server;
pub(crate) mod links;
mod overlay;
pub mod service;
mod supernode;

pub use service::Search;

/// The protocol id as a libp2p stream protocol.
pub(crate) const PROTOCOL: libp2p::StreamProtocol = libp2p::StreamProtocol::new(shoal_proto::search::PROTOCOL);

/// Our addresses as hits carry them: without `/p2p`, LAN before loopback, at most [`MAX_ADDRS`].
pub(crate) fn encode_addrs(addrs: &[Multiaddr]) -> Vec<Vec<u8>> {
    let mut v: Vec<Multiaddr> =
        addrs.iter().map(|a| a.iter().filter(|p| !matches!(p, Protocol::P2p(_))).collect()).collect();
    v.sort_by_key(|a| a.iter().any(|p| matches!(p, Protocol::Ip4(ip) if ip.is_loopback())));
    v.into_iter().take(MAX_ADDRS).map(|a| a.to_vec()).collect()
}

pub(crate) fn found_hit(h: Hit) -> Option<FoundHit> {
    let peer = PeerId::from_bytes(&h.provider.peer).ok()?;
    let addrs = h.provider.addrs.into_iter().filter_map(|a| Multiaddr::try_from(a).ok()).collect();
    Some(FoundHit { id: ContentId(h.id), name: h.name, size: h.size, collection: h.collection, peer, addrs })
}

/// A search to run.
#[derive(Clone, Debug)]
pub struct SearchRequest {
    /// What to look for.
    pub query: Query,
    /// Stop after this many distinct ids (providers, for an id lookup).
    pub limit: usize,
    /// Stop after this long.
    pub timeout: Duration,
}

impl SearchRequest {
    /// Words, with the default limit (50) and timeout (10 s).
    pub fn words(text: impl Into<String>) -> Self {
        Self { query: Query::words(text), limit: 50, timeout: Duration::from_secs(10) }
    }
}

/// One thing found at one peer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FoundHit {
    /// Content id (give it to `shoal get`).
    pub id: ContentId,
    /// File or folder name.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// True for a folder.
    pub collection: bool,
    /// The peer that has it (libp2p's serde form: the base58 peer id).
    #[schema(value_type = String)]
    pub peer: PeerId,
    /// Its addresses, as it gave them (multiaddr strings).
    #[schema(value_type = Vec<String>)]
    pub addrs: Vec<Multiaddr>,
}

/// What a running search reports. As JSON: `{"type":"hit", id, name, size, collection, peer, addrs}` and
/// `{"type":"done", messages, hits, responders, first_hit_ms, rings, elapsed_ms}`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SearchEvent {
    /// A hit (the same id may come again from another peer).
    Hit(FoundHit),
    /// The search ended; nothing follows.
    Done(SearchStats),
}

/// A search's events as the node's feed carries them, tagged with the number of the search
/// (`{"type": "search_hit", "search": 3, "id": ..., ...}`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
// Named apart in the OpenAPI description from the feed's own `FeedEvent`.
#[schema(as = SearchFeedEvent)]
pub enum FeedEvent {
    /// A hit of search `search`.
    SearchHit {
        /// Which search.
        search: u64,
        /// What was found.
        #[serde(flatten)]
        hit: FoundHit,
    },
    /// Search `search` ended.
    SearchDone {
        /// Which search.
        search: u64,
        /// Its figures.
        #[serde(flatten)]
        stats: SearchStats,
    },
}

/// A running search: its events, in order. Dropping it cancels the search.
pub struct SearchStream {
    pub(crate) rx: mpsc::Receiver<SearchEvent>,
}

impl SearchStream {
    /// The next event; `None` once the search has ended and [`SearchEvent::Done`] was read.
    pub async fn next(&mut self) -> Option<SearchEvent> {
        self.rx.recv().await
    }

    /// Waits for the end and returns every hit and the figures.
    pub async fn collect(mut self) -> (Vec<FoundHit>, SearchStats) {
        let mut hits = Vec::new();
        while let Some(ev) = self.next().await {
            match ev {
                SearchEvent::Hit(h) => hits.push(h),
                SearchEvent::Done(stats) => return (hits, stats),
            }
        }
        (hits, SearchStats::default())
    }
}

/// Search counters since start, for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SearchCounters {
    /// Searches started here.
    pub searches: u64,
    /// Hits delivered to searches started here.
    pub hits: u64,
    /// Current overlay neighbours (`pure`, `hybrid`).
    pub neighbours: usize,
    /// Index servers connected (`hybrid`).
    pub index_servers_up: usize,
    /// `supernode` topology: `leaf` or `super`.
    pub role: Option<shoal_proto::search::supernode::Role>,
    /// On a supernode: its leaves.
    pub leaves: usize,
    /// `supernode` topology: a leaf's supernodes, or a supernode's linked supernodes (peer ids).
    pub supers: Vec<String>,
    /// On an index server: peers registered and the names they list.
    pub index_peers: usize,
    /// See `index_peers`.
    pub index_entries: usize,
    /// The router's counters (queries received, forwarded, dropped).
    #[serde(flatten)]
    pub router: shoal_proto::search::flood::Counters,
}
