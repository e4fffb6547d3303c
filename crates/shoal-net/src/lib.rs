//! Shoal's network layer, on libp2p 0.57.
//!
//! The principal type is [`Network`], a cheap, cloneable handle to one swarm. [`Network::start`] builds the
//! swarm (TCP with TLS 1.3 (Noise accepted from peers that offer only that) and our Yamux glue, upgraded in
//! as few round trips as the protocols allow (`upgrade.rs`), and QUIC; identify, ping, Kademlia as
//! `/shoal/kad/1.0.0` in server mode, mDNS when enabled, gossipsub for topics ([`gossip`]), and
//! our stream behaviour for Shoal's own protocols ([`streams`])) and spawns the one task that owns it, the event loop. Every
//! other task talks to the swarm through commands with `oneshot` replies, the way rust-libp2p's
//! file-sharing example does. Bulk data does not pass through the event loop: protocol streams
//! come from [`Network::streams`] and are read and written by their own tasks.
//!
//! What the event loop does on its own, so that peers find each other:
//! - declares its listen addresses as external addresses (loopback and LAN have no other way to learn
//!   them, and Kademlia only hands out confirmed external addresses in provider records);
//! - feeds the listen addresses each peer reports through identify into Kademlia's routing table;
//! - dials bootstrap addresses and mDNS discoveries;
//! - re-announces provided keys when it first joins a network, and every `reprovide_interval`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), shoal_net::NetError> {
//! let dir = tempfile::tempdir().map_err(|e| shoal_net::NetError::Identity { path: "tmp".into(), source: e })?;
//! let key = shoal_net::identity::load_or_create(&dir.path().join("identity.key"))?;
//! let net = shoal_net::Network::start(key, shoal_net::NetConfig::default()).await?;
//! println!("I am {} at {:?}", net.peer_id(), net.listen_addrs().await?);
//! # Ok(()) }
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod behaviour;
mod counted;
mod dht_store;
mod error;
mod event_loop;
pub mod gossip;
pub mod identity;
mod link;
mod mux;
mod network;
mod secure;
pub mod streams;
mod upgrade;

pub use behaviour::DEFAULT_MAX_CONNECTIONS;
pub use dht_store::{DhtLimits, MAX_PROVIDERS_PER_KEY};
pub use error::NetError;
pub use gossip::{GossipEvent, GossipMesh, GossipMessage, Verdict};
pub use libp2p::{Multiaddr, PeerId, StreamProtocol};
pub use network::{DhtState, NetConfig, NetEvent, Network, PeerInfo, TransportKind};
pub use secure::SecureError;
pub use streams::{AlreadyRegistered, Control, IncomingStreams, OpenStreamError};
