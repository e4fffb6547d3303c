//! Errors of a node.

use std::path::PathBuf;

use shoal_store::ContentId;

/// What went wrong. Every message says what failed and, where there is one, what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] shoal_store::StoreError),
    /// The network failed.
    #[error(transparent)]
    Net(#[from] shoal_net::NetError),
    /// A ticket could not be read.
    #[error(transparent)]
    Ticket(#[from] crate::ticket::TicketError),
    /// The data directory is unusable.
    #[error("data directory {path}: {why}")]
    Home {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// An index server address without its peer id.
    #[error("index server {0} must end in /p2p/<peer id> (the server prints its addresses when it starts)")]
    IndexServer(String),
    /// The search service stopped.
    #[error("the search service stopped; restart the peer")]
    SearchStopped,
    /// No peer could be found that has the content.
    #[error("no provider found for {id} within {secs} s: check that a peer sharing it is running and reachable")]
    NoProviders {
        /// The id.
        id: ContentId,
        /// How long we looked.
        secs: u64,
    },
    /// Every provider failed or was dropped.
    #[error("download of {id} stalled: {why}")]
    Stalled {
        /// The id.
        id: ContentId,
        /// What happened to the providers.
        why: String,
    },
    /// The output path cannot be used.
    #[error("output {path}: {why}")]
    Output {
        /// The path.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// A peer broke the protocol.
    #[error("protocol error with {peer}: {why}")]
    Protocol {
        /// The peer.
        peer: String,
        /// What it did.
        why: String,
    },
    /// No download with this id (the daemon lists them: `shoal ls`).
    #[error("no download with id {0}")]
    NoDownload(ContentId),
    /// A download failed; the message is its error as it was recorded.
    #[error("{0}")]
    Failed(String),
    /// The request conflicts with the state of what it names (a download already running, say).
    #[error("{0}")]
    Busy(String),
    /// A service the node does not run was asked for.
    #[error("the {0} service is not running on this node")]
    NoService(&'static str),
    /// Messaging refused or failed.
    #[error(transparent)]
    Messaging(#[from] crate::messaging::MessagingError),
    /// A background task died.
    #[error("internal task failed: {0}")]
    Task(String),
}
