//! The transfer service: `/shoal/transfer/1` over libp2p streams, serving ranges and downloading from many
//! peers at once.
//!
//! - [`service`]: [`Transfer`], the service on the node's seam: serves, shares, starts downloads, counts
//!   traffic.
//! - [`manager`]: [`Downloads`], the user's downloads (pause, resume, cancel, kept across restarts).
//! - [`serve`](self::serve): the provider side. Each stream is answered on its own task, its requests in order.
//! - [`session`](self::session): the downloader's side of one stream to one provider: requests are
//!   pipelined on a single long-lived stream; answers are read in order and verified off the async threads.
//! - [`download`]: a whole download (a file, or a folder's files one after the other): the loop that owns
//!   the sessions, the partial file and the checkpoints, and carries out what [`fetch`](self::fetch) decides.
//! - [`fetch`](self::fetch): one blob's download as a state machine around the sans-IO scheduler (no I/O).
//! - [`limit`](self::limit): token buckets for upload and download caps.
//! - [`history`]: the bandwidth history: traffic samples on the event feed and in the catalog.
//! - [`upload`]: files uploaded into the share folder (the web UI's drag-and-drop), then shared.
//! - [`uplink`](self::uplink): under a global upload cap, which waiting answer goes next (least-sent piece
//!   first, `shoal_proto::transfer::UploadQueue`).

use shoal_store::ContentId;

mod batch;
pub mod download;
pub(crate) mod fetch;
pub mod history;
pub(crate) mod limit;
pub mod manager;
pub(crate) mod serve;
pub mod service;
pub(crate) mod session;
pub(crate) mod uplink;
pub mod upload;

pub use manager::{DownloadInfo, Downloads};
pub use service::{Traffic, Transfer};

/// The protocol id as a libp2p stream protocol.
pub(crate) const PROTOCOL: libp2p::StreamProtocol = libp2p::StreamProtocol::new(shoal_proto::transfer::PROTOCOL);

/// What the transfer service reports on the node's event feed.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
// Named apart in the OpenAPI description: three enums called `Event` would be one schema there.
#[schema(as = TransferEvent)]
pub enum Event {
    /// Something was shared.
    ShareAdded {
        /// Root id.
        id: ContentId,
        /// File or folder name.
        name: String,
    },
    /// A share was removed.
    ShareRemoved {
        /// Root id.
        id: ContentId,
    },
    /// A download moved on (at most every [`manager::PROGRESS_EVERY`]).
    DownloadProgress {
        /// Root id.
        id: ContentId,
        /// Where it stands.
        progress: download::Progress,
    },
    /// A download is complete and verified.
    DownloadDone {
        /// Root id.
        id: ContentId,
        /// The outcome.
        report: download::DownloadReport,
    },
    /// A download ended with an error.
    DownloadFailed {
        /// Root id.
        id: ContentId,
        /// What went wrong.
        error: String,
    },
    /// The user paused a download.
    DownloadPaused {
        /// Root id.
        id: ContentId,
    },
    /// The user resumed a download.
    DownloadResumed {
        /// Root id.
        id: ContentId,
    },
    /// The user cancelled a download.
    DownloadCancelled {
        /// Root id.
        id: ContentId,
    },
    /// A traffic sample (every `NodeConfig::traffic_every`, see [`history`]): bytes moved in the `span_ms`
    /// that ended at `at_ms`.
    Traffic {
        /// End of the period, Unix ms.
        at_ms: u64,
        /// Length of the period, ms.
        span_ms: u64,
        /// Bytes sent.
        up: u64,
        /// Bytes received.
        down: u64,
    },
}
