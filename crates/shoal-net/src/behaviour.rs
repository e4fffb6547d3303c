//! The composed libp2p behaviour and how the swarm is built.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use libp2p::PeerId;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::MemoryTransport;
use libp2p::core::{Transport, upgrade};
use libp2p::identity::Keypair;
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, Swarm, connection_limits, identify, kad, mdns, memory_connection_limits, noise, ping, plaintext,
};

use crate::counted::Counting;
use crate::dht_store::DhtStore;
use crate::mux::Yamux;
use crate::secure::SecureUpgrade;
use crate::{NetConfig, NetError, TransportKind};

/// Kademlia protocol id: Shoal's DHT is separate from IPFS's.
pub(crate) const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/shoal/kad/1.0.0");
/// identify protocol version string.
pub(crate) const IDENTIFY_PROTOCOL: &str = "/shoal/id/1.0.0";

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) memory: Toggle<memory_connection_limits::Behaviour>,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) kad: Toggle<kad::Behaviour<DhtStore>>,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(crate) stream: crate::streams::Behaviour,
    pub(crate) gossip: libp2p::gossipsub::Behaviour,
}

/// An in-process transport (libp2p's memory transport) with Noise or plaintext, then Yamux: many peers in
/// one process for the simulator. Plaintext still exchanges and checks public keys (peer ids are real); it
/// only skips the encryption, whose handshakes dominate the CPU at a thousand peers. Memory addresses cannot
/// leave the process, so nothing unencrypted ever reaches a real network. Under the handshake, an
/// emulated link ([`crate::link`]): a one-way delay and a count of the bytes received; over the muxer, a
/// count of what gossipsub's streams receive ([`crate::counted`]).
fn memory_transport(
    key: &Keypair,
    encrypted: bool,
    delay: Duration,
    received: Arc<AtomicU64>,
    gossip_received: Arc<AtomicU64>,
) -> Result<libp2p::core::transport::Boxed<(PeerId, StreamMuxerBox)>, NetError> {
    let base = MemoryTransport::default()
        .map(move |stream, _| crate::link::Delayed::new(stream, delay, received.clone()))
        .upgrade(upgrade::Version::V1);
    let transport = if encrypted {
        let noise = noise::Config::new(key).map_err(|e| NetError::Transport(e.to_string()))?;
        base.authenticate(noise)
            .multiplex(Yamux::default())
            .timeout(Duration::from_secs(20))
            .map(move |(peer, muxer), _| (peer, StreamMuxerBox::new(Counting::new(muxer, gossip_received))))
            .boxed()
    } else {
        base.authenticate(plaintext::Config::new(key))
            .multiplex(Yamux::default())
            .timeout(Duration::from_secs(20))
            .map(move |(peer, muxer), _| (peer, StreamMuxerBox::new(Counting::new(muxer, gossip_received))))
            .boxed()
    };
    Ok(transport)
}

/// Connections established at once when the configuration sets no cap (real networks).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 256;
/// Connections to one peer (TCP and QUIC, each way).
const MAX_CONNECTIONS_PER_PEER: u32 = 4;
/// Handshakes under way at once, each way: a flood of dials or of incoming attempts waits, not piles up.
const MAX_PENDING: u32 = 64;
/// The share of the machine's memory above which no new connection is taken.
const MAX_MEMORY_SHARE: f64 = 0.5;

/// Caps on connections in all, per peer and while they are being set up. In-process networks of the
/// simulator (memory transport) keep only the configured total, if any: a thousand peers of one process
/// are not a thousand machines.
/// QUIC's flow-control windows (libp2p's defaults: 10 MB per stream, 15 MB per connection). A stream can
/// carry at most its window per round trip: 10 MB is 33 MB/s at 300 ms, a third of a 100 MB/s link. These
/// fit a transfer stream's 64 MiB of requests at 100 MB/s x 300 ms (quinn then grows its receive window
/// up to them) and bound what one connection can make us buffer, as yamux's window does on TCP.
fn quic_config(mut c: libp2p::quic::Config) -> libp2p::quic::Config {
    c.max_stream_data = 48_000_000;
    c.max_connection_data = 64_000_000;
    c
}

fn connection_limits(config: &NetConfig) -> connection_limits::ConnectionLimits {
    let limits = connection_limits::ConnectionLimits::default();
    match config.transport {
        TransportKind::System => limits
            .with_max_established(Some(config.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS)))
            .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
            .with_max_pending_incoming(Some(MAX_PENDING))
            .with_max_pending_outgoing(Some(MAX_PENDING)),
        TransportKind::Memory { .. } => limits.with_max_established(config.max_connections),
    }
}

/// The swarm; gossipsub records its metrics (messages and bytes per topic, duplicates too) into `registry`.
pub(crate) fn build(
    key: Keypair,
    config: &NetConfig,
    received: Arc<AtomicU64>,
    gossip_received: Arc<AtomicU64>,
    registry: Option<&mut prometheus_client::registry::Registry>,
) -> Result<Swarm<Behaviour>, NetError> {
    let transport_err = |e: &dyn std::fmt::Display| NetError::Transport(e.to_string());
    let gossip = crate::gossip::behaviour(config.gossip_mesh, registry).map_err(NetError::Transport)?;
    let swarm = match config.transport {
        TransportKind::System => {
            let secure = SecureUpgrade::new(&key)?;
            libp2p::SwarmBuilder::with_existing_identity(key)
                .with_tokio()
                .with_quic_config(quic_config)
                .with_other_transport(move |_| crate::upgrade::tcp_transport(secure))
                .map_err(|e| transport_err(&e))?
                .with_behaviour(|key| behaviour(key, config, gossip))
                .map_err(|e| transport_err(&e))?
                .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
                .build()
        }
        TransportKind::Memory { encrypted, delay } => {
            let transport = memory_transport(&key, encrypted, delay, received, gossip_received)?;
            libp2p::SwarmBuilder::with_existing_identity(key)
                .with_tokio()
                .with_other_transport(move |_| transport)
                .map_err(|e| transport_err(&e))?
                .with_behaviour(|key| behaviour(key, config, gossip))
                .map_err(|e| transport_err(&e))?
                .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
                .build()
        }
    };
    Ok(swarm)
}

fn behaviour(
    key: &Keypair,
    config: &NetConfig,
    gossip: libp2p::gossipsub::Behaviour,
) -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
    let peer_id = key.public().to_peer_id();
    // Bounded against strangers, our own keys apart (see `dht_store`).
    let store = DhtStore::new(peer_id, config.dht_limits);
    let mut kcfg = kad::Config::new(KAD_PROTOCOL);
    kcfg.set_query_timeout(config.dht_query_timeout);
    let mut kad = kad::Behaviour::with_config(peer_id, store, kcfg);
    kad.set_mode(Some(kad::Mode::Server));
    // Without the DHT (topologies other than `structured`) Kademlia is absent altogether: it would
    // otherwise connect peers on its own (bootstrap lookups) and blur the overlay being measured.
    let kad = config.dht.then_some(kad);
    let mdns = if config.mdns { Some(mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)?) } else { None };
    let limits = connection_limits(config);
    // New connections are refused while this process uses more than half of the machine's memory (a
    // flood of peers costs buffers and windows per connection; what is connected stays).
    let memory = (config.transport == TransportKind::System)
        .then(|| memory_connection_limits::Behaviour::with_max_percentage(MAX_MEMORY_SHARE));
    Ok(Behaviour {
        limits: connection_limits::Behaviour::new(limits),
        memory: memory.into(),
        identify: identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public()).with_agent_version(config.agent.clone()),
        ),
        ping: ping::Behaviour::default(),
        kad: kad.into(),
        mdns: mdns.into(),
        stream: crate::streams::Behaviour::default(),
        gossip,
    })
}
