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

impl NetError {
    /// [`NetError::Dial`] for `peer` (a peer id or an address) from libp2p's error.
    pub(crate) fn dial(peer: impl ToString, e: &libp2p::swarm::DialError) -> Self {
        Self::Dial { peer: peer.to_string(), why: dial_why(e) }
    }
}

/// A failed dial in a line a person can read: each address tried with the innermost cause, once. libp2p's
/// own text repeats the cause at every layer and wraps it in debug brackets ("Failed to negotiate transport
/// protocol(s): [(/ip4/../p2p/..: : Connection refused (os error 111): Connection refused (os error 111):
/// ...)]"), and `shoal get` prints one per unreachable provider.
fn dial_why(e: &libp2p::swarm::DialError) -> String {
    match e {
        libp2p::swarm::DialError::Transport(tried) if !tried.is_empty() => tried
            .iter()
            .map(|(addr, err)| format!("{}: {}", crate::event_loop::without_p2p(addr), innermost(err)))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// The last error in `e`'s chain of sources: the one that says what actually happened.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut e = e;
    while let Some(source) = e.source() {
        e = source;
    }
    e.to_string()
}

#[cfg(test)]
mod tests {
    use std::io;

    use libp2p::TransportError;
    use libp2p::swarm::DialError;

    use super::*;

    #[test]
    fn a_refused_dial_reads_as_the_address_and_the_cause_once() {
        let refused = || io::Error::new(io::ErrorKind::ConnectionRefused, "Connection refused (os error 111)");
        // As libp2p nests it: the upgrade's error around the socket's.
        let nested = io::Error::other(io::Error::other(refused()));
        let addr: libp2p::Multiaddr =
            "/ip4/127.0.0.1/tcp/34149/p2p/12D3KooWD6P6gkL6Jupfwmds2JJ5ZS4jerjT6M8yjJdrsy3NYNz8".parse().unwrap();
        let other: libp2p::Multiaddr = "/ip4/10.0.0.7/tcp/4001".parse().unwrap();
        let e = DialError::Transport(vec![
            (addr, TransportError::Other(nested)),
            (other, TransportError::Other(io::Error::new(io::ErrorKind::TimedOut, "timed out"))),
        ]);
        assert_eq!(
            dial_why(&e),
            "/ip4/127.0.0.1/tcp/34149: Connection refused (os error 111); /ip4/10.0.0.7/tcp/4001: timed out"
        );
        assert_eq!(dial_why(&DialError::Aborted), DialError::Aborted.to_string());
    }
}
