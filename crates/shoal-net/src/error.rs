//! Errors of the network layer.

use std::path::PathBuf;

/// What went wrong in the network layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The identity key could not be read or written.
    #[error("identity key {path}: {source}")]
    Identity {
        /// Key file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The identity key file is not a key.
    #[error("identity key {path} is not a valid ed25519 key ({why}); move it away to create a new identity")]
    BadIdentity {
        /// Key file.
        path: PathBuf,
        /// Cause.
        why: String,
    },
    /// The transport could not be set up.
    #[error("setting up the network: {0}")]
    Transport(String),
    /// Could not listen on an address.
    #[error("cannot listen on {addr}: {why}")]
    Listen {
        /// Address.
        addr: String,
        /// Cause.
        why: String,
    },
    /// Could not reach a peer.
    #[error("cannot reach peer {peer}: {why}")]
    Dial {
        /// Peer or address.
        peer: String,
        /// Cause.
        why: String,
    },
    /// A Kademlia operation failed.
    #[error("DHT: {0}")]
    Dht(String),
    /// Gossipsub refused (a topic, a message).
    #[error("topics: {0}")]
    Gossip(String),
    /// The operation needs the DHT, which only the `structured` topology runs.
    #[error("this needs the DHT, which only the structured topology runs")]
    NoDht,
    /// The network task has stopped (the node is shutting down).
    #[error("the network task has stopped")]
    Stopped,
}
