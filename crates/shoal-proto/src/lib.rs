//! Shoal's protocol cores.
//!
//! Everything here is *sans-IO*: the types take events and the current time and return actions; they never
//! touch a socket, a file or a clock. The node drives them over libp2p, tests drive them directly, and the
//! simulator (`shoal-sim`) drives the same code at scale.
//!
//! - [`rng`]: seeded generators that replay, and secret ids a peer cannot predict.
//! - [`wire`]: framing shared by Shoal's own protocols (a version byte, a bounded length, a postcard body).
//! - [`messaging`]: topic posts (signed, hash-linked) and the topic log that orders them alike on every
//!   peer and says which missing posts to ask for.
//! - [`search`]: names folded into words, the `/shoal/search/1` messages, and the flooding router.
//! - [`transfer`]: the `/shoal/transfer/1` messages, the piece layout of a blob, and the download
//!   [`transfer::Scheduler`] (piece picker: rarest first, several requests in flight per peer, slow and
//!   corrupt peers moved aside, end game).
//!
//! ```
//! use shoal_proto::transfer::{Layout, Scheduler, Config, Action};
//! use std::time::Instant;
//!
//! let layout = Layout::new(4 * 1024 * 1024);
//! let mut s: Scheduler<&str> = Scheduler::new(Config::default(), layout.piece_count(), []);
//! let now = Instant::now();
//! s.add_peer("a", None, now);
//! let actions = s.poll(now);
//! assert!(actions.iter().any(|a| matches!(a, Action::Request { peer: "a", .. })));
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod messaging;
pub mod rng;
pub mod search;
pub mod transfer;
pub mod wire;
