//! A Shoal peer.
//!
//! The principal type is [`Node`]: a cheap, cloneable handle to one running peer, which owns a
//! [`shoal_store::Store`] (what it has), a [`shoal_net::Network`] (who it can reach) and the transfer
//! protocol on both sides: it serves ranges of what it has to anyone who asks, and it downloads from many
//! peers at once, driving the sans-IO [`shoal_proto::transfer::Scheduler`].
//!
//! - [`config`]: [`NodeConfig`] and where the data directory is.
//! - [`ticket`]: share tickets, the copy-paste form of "this id, from these peers".
//! - [`transfer`]: `/shoal/transfer/1` on the wire; the provider side and the multi-source downloader.
//!
//! ```no_run
//! # async fn demo() -> Result<(), shoal_node::NodeError> {
//! use shoal_node::{Node, NodeConfig, DownloadRequest};
//! let alice = Node::start(NodeConfig::loopback("/tmp/alice".into())).await?;
//! let bob = Node::start(NodeConfig::loopback("/tmp/bob".into())).await?;
//! let shared = alice.share("song.flac".as_ref()).await?;
//! let ticket = alice.ticket(&shared).await?;
//! let report = bob.download(DownloadRequest::from_ticket(&ticket, Some("copy.flac".into()))).await?.finish().await?;
//! println!("{} bytes from {} peers", report.size, report.peers.len());
//! # Ok(()) }
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod blocking;
pub mod config;
mod error;
pub mod events;
mod framing;
pub mod messaging;
pub mod metrics;
mod node;
pub mod peers;
pub mod search;
pub mod service;
mod services;
pub mod ticket;
pub mod transfer;

pub use config::NodeConfig;
pub use error::NodeError;
pub use events::{Event, Events, Subscription};
pub use node::Node;
pub use search::{FoundHit, SearchCounters, SearchEvent, SearchRequest, SearchStream};
pub use service::{Context, Service, Start};
pub use shoal_store::{BlobInfo, ContentId, DownloadState};
pub use ticket::Ticket;
pub use transfer::download::{DownloadHandle, DownloadReport, DownloadRequest, PeerRate, PeerReport, Progress};
pub use transfer::{DownloadInfo, Traffic};
