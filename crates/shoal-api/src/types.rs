//! The API contract: every request body, response body and event of `/api/v1`, as Rust types.
//!
//! The server answers with these, [`crate::client`] (and so the CLI) reads them, and the OpenAPI
//! description served at `/api/v1/openapi.json` is derived from them (`utoipa`), for the web UI and for
//! anyone else. A field renamed here changes all three at once; a client that reads a field that is gone
//! fails to compile instead of printing `?`.
//!
//! Types that belong to a layer below (a download's [`DownloadInfo`], a share's [`ShareRecord`], a search's
//! [`SearchEvent`], the node's [`Event`]) are used as they are, re-exported here so that one `use` gives a
//! client the whole contract.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use shoal_node::search::{FoundHit, SearchCounters, SearchEvent};
pub use shoal_node::transfer::download::{DownloadReport, PeerRate, PeerReport, Progress};
pub use shoal_node::transfer::history::TrafficHistory;
pub use shoal_node::{ContentId, DownloadInfo, DownloadState, Event};
pub use shoal_proto::search::SearchStats;
pub use shoal_store::ShareRecord;

/// `GET /api/v1/status`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// This peer's id.
    pub peer: String,
    /// Listen addresses, each ending in `/p2p/<peer id>`.
    pub addrs: Vec<String>,
    /// The data directory.
    #[schema(value_type = String)]
    pub home: PathBuf,
    /// `pure`, `structured`, `hybrid` or `supernode`.
    pub topology: String,
    /// Peers met that run another topology: `[peer id, their topology]`.
    pub topology_mismatches: Vec<(String, String)>,
    /// Overlay neighbours (`pure`, `hybrid`).
    pub search_neighbours: usize,
    /// Search counters, including the index server's registry size when this peer is one.
    pub search: SearchCounters,
    /// Shares.
    pub shares: usize,
    /// Downloads running now.
    pub downloads_active: usize,
    /// Peers connected now.
    pub peers_connected: usize,
    /// Bytes uploaded since start.
    pub uploaded_bytes: u64,
    /// Bytes downloaded since start.
    pub downloaded_bytes: u64,
    /// Pieces that failed verification since start.
    pub verification_failures: u64,
    /// Each running service's own status, by name (`peers`, `transfer`, `search`, ...).
    #[schema(value_type = Object)]
    pub services: BTreeMap<String, serde_json::Value>,
}

/// `GET /api/v1/config`: the effective configuration (read only; change it in the config file, the
/// environment or the flags, and restart the daemon).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ConfigView {
    /// The data directory.
    #[schema(value_type = String)]
    pub home: PathBuf,
    /// `pure`, `structured`, `hybrid` or `supernode`.
    pub topology: String,
    /// Listen addresses asked for.
    pub listen: Vec<String>,
    /// Bootstrap peers.
    pub bootstrap: Vec<String>,
    /// LAN discovery (mDNS).
    pub mdns: bool,
    /// The Kademlia DHT.
    pub dht: bool,
    /// Connections at most (`None`: libp2p's default).
    pub max_connections: Option<u32>,
    /// Upload cap, bytes per second, all peers together (`None`: none).
    pub upload_limit: Option<u64>,
    /// Upload cap per peer.
    pub upload_limit_per_peer: Option<u64>,
    /// Download cap, all peers together.
    pub download_limit: Option<u64>,
    /// Download cap per peer.
    pub download_limit_per_peer: Option<u64>,
    /// Index servers (hybrid).
    pub index_servers: Vec<String>,
    /// This peer is an index server.
    pub index_server: bool,
    /// Bytes one download may have asked for and not received, at most, per peer.
    pub max_bytes_in_flight: u64,
}

/// `POST /api/v1/shares`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddShare {
    /// Absolute path of a file or folder on the daemon's machine.
    #[schema(value_type = String)]
    pub path: PathBuf,
}

/// What `POST /api/v1/shares` answers.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Shared {
    /// The ticket to give to others.
    pub ticket: String,
    /// Root id.
    pub id: ContentId,
    /// File or folder name.
    pub name: String,
    /// Bytes (for a folder: its collection blob).
    pub size: u64,
    /// True for a folder.
    pub collection: bool,
    /// Files in a folder.
    pub files: usize,
    /// This peer's id.
    pub peer: String,
    /// This peer's addresses.
    pub addrs: Vec<String>,
}

/// The query of `POST /api/v1/shares/upload`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadName {
    /// The file's name in the share folder: a plain name (no '/', not '.' or '..', no control characters).
    pub name: String,
}

/// The query of `GET /api/v1/traffic`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrafficWindow {
    /// `hour` (the default) or `day`.
    pub window: Option<String>,
}

/// What `GET /api/v1/shares/{id}/ticket` answers.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ShareTicket {
    /// The ticket to give to others (this peer and its addresses as they are now).
    pub ticket: String,
}

/// What `POST /api/v1/shares/{id}/remove` answers.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Removed {
    /// The share that was removed.
    pub removed: ContentId,
}

/// `POST /api/v1/downloads`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartDownload {
    /// A ticket or a content id.
    pub what: String,
    /// Absolute output path (default: `<home>/downloads/<name>`).
    #[schema(value_type = Option<String>)]
    pub output: Option<PathBuf>,
    /// Only record it, paused (resume it later).
    #[serde(default)]
    pub paused: bool,
    /// Save it in the downloads folder under this file name (a search hit's); not with `output`.
    #[serde(default)]
    pub name: Option<String>,
}

/// One line of `GET /api/v1/peers`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PeerView {
    /// Peer id.
    pub peer: String,
    /// Its addresses as we know them.
    pub addrs: Vec<String>,
    /// What it says it runs (`shoal/0.1.0 topology=structured`).
    pub agent: Option<String>,
    /// Bytes served to it since the daemon started.
    pub uploaded: u64,
    /// Bytes received from it since the daemon started.
    pub downloaded: u64,
}

/// `POST /api/v1/search`. Give `text` or `id`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    /// Words (prefixes) to look for.
    pub text: Option<String>,
    /// Or: a content id whose providers to find.
    pub id: Option<String>,
    /// Stop after this many distinct ids (1-1000, default 50).
    pub limit: Option<usize>,
    /// Stop after this many seconds (1-300, default 10).
    pub timeout_secs: Option<u64>,
    /// Smallest size in bytes.
    pub min_size: Option<u64>,
    /// Largest size in bytes.
    pub max_size: Option<u64>,
    /// File extension without the dot.
    pub ext: Option<String>,
}

/// One line of the answer to `POST /api/v1/search` (newline-delimited JSON): a search event and the
/// number of the search on this daemon.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchLine {
    /// Which search (the same number tags its events on the feed).
    pub search: u64,
    /// A hit, or the figures at the end.
    #[serde(flatten)]
    pub event: SearchEvent,
}

/// What `POST /api/v1/stop` answers.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Stopping {
    /// Always true: the daemon stops once it has answered.
    pub stopping: bool,
}

/// Every error answer: a status code and this body.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong and, where possible, what to do.
    pub error: String,
}

// Messaging: topics, letters, contacts. Posts and letters are `MessageView`s, topics `TopicView`s.

pub use shoal_node::messaging::{MessageView, MessagingCounters, TopicView};

/// `POST /api/v1/topics`: follow a public topic by name, or a private one by its key.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct JoinTopic {
    /// A public topic's name (NFC, trimmed, at most 128 bytes), or the name to show a private one by.
    pub name: String,
    /// A private topic's key: 64 hex digits from its invite.
    #[serde(default)]
    pub key: Option<String>,
    /// Start a new private topic (a fresh key; the answer carries it) when no `key` is given.
    #[serde(default)]
    pub private: bool,
}

/// `POST /api/v1/topics/{topic}/messages`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct WritePost {
    /// The text (at most 64 KiB; larger content goes as a share's ticket).
    pub text: String,
}

/// `POST /api/v1/letters`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct WriteLetter {
    /// The recipient: a peer id, or a contact's name.
    pub to: String,
    /// The text (at most 64 KiB).
    pub text: String,
}

/// A page of a conversation: `?after=<message id>&limit=N`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// The id of the last message of the previous page.
    pub after: Option<String>,
    /// At most this many (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// `GET /api/v1/messages/search?q=...`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageSearch {
    /// Words that must all be in the text (as prefixes).
    pub q: String,
    /// At most this many (default 50, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// A petname for a peer id (`GET`/`POST /api/v1/contacts`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Contact {
    /// The name (NFC, trimmed, at most 64 bytes, no control characters).
    pub name: String,
    /// The peer id.
    pub peer: String,
}

/// What a removal or a leave answers: whether there was something to remove.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Done {
    /// True when something was removed or left.
    pub done: bool,
}
