//! `/shoal/transfer/1` over libp2p streams: serving ranges, and downloading from many peers at once.
//!
//! - [`serve`](self::serve): the provider side. One task accepts streams (it must always be polled: an
//!   unaccepted stream is dropped by `libp2p-stream`), one task per stream answers its requests in order.
//! - [`session`](self::session): the downloader's side of one stream to one provider: requests are
//!   pipelined on a single long-lived stream; answers are read in order and verified off the async threads.
//! - [`download`]: drives the sans-IO scheduler with session events and owns the partial file.
//! - [`limit`](self::limit): token buckets for upload and download caps.
//! - [`uplink`](self::uplink): under a global upload cap, which waiting answer goes next (least-sent piece
//!   first, `shoal_proto::transfer::UploadQueue`).

pub mod download;
pub(crate) mod limit;
pub(crate) mod serve;
pub(crate) mod session;
pub(crate) mod uplink;

/// The protocol id as a libp2p stream protocol.
pub(crate) const PROTOCOL: libp2p::StreamProtocol = libp2p::StreamProtocol::new(shoal_proto::transfer::PROTOCOL);
