//! The [`Network`] handle: what the rest of Shoal can ask of the swarm.

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use crate::NetError;
use crate::event_loop::{Command, EventLoop};
use crate::gossip::{GossipCommand, GossipEvent, GossipMesh, Verdict};

/// Network settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NetConfig {
    /// Addresses to listen on (port 0 picks a free port).
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start (`/ip4/.../tcp/.../p2p/<id>`; the `/p2p` part is optional).
    pub bootstrap: Vec<Multiaddr>,
    /// Discover peers on the LAN by multicast DNS.
    pub mdns: bool,
    /// How long a DHT query may run.
    pub dht_query_timeout: Duration,
    /// How often provided keys are announced again.
    pub reprovide_interval: Duration,
    /// Most connections established at once (`None`: [`crate::DEFAULT_MAX_CONNECTIONS`] on real networks,
    /// no cap in-process). There are also caps per peer and on handshakes under way (`behaviour.rs`).
    pub max_connections: Option<u32>,
    /// How many provider records the DHT keeps (ours apart from other peers').
    pub dht_limits: crate::DhtLimits,
    /// Run the Kademlia DHT (provider records, peer routing). Off, [`Network::provide`] does nothing and
    /// [`Network::find_providers`] finds nothing: the `structured` topology is the one that uses it.
    pub dht: bool,
    /// What identify tells other peers we run (Shoal puts its version and topology here).
    pub agent: String,
    /// How this swarm reaches other peers.
    pub transport: TransportKind,
    /// A connection with no stream open and no protocol wanting it is closed after this long.
    pub idle_timeout: Duration,
    /// How wide gossipsub's meshes are (topics).
    pub gossip_mesh: GossipMesh,
}

/// How a swarm reaches other peers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportKind {
    /// TCP (Noise, Yamux) and QUIC: real networks.
    #[default]
    System,
    /// libp2p's in-process memory transport (`/memory/0` addresses), for many peers in one process (the
    /// simulator). `encrypted`: Noise as on real networks; otherwise libp2p's plaintext handshake, which still
    /// proves peer ids but costs far less CPU. Memory addresses never leave the process.
    Memory {
        /// Noise (true) or plaintext (false).
        encrypted: bool,
        /// One-way delay on every connection, each way (see [`NetConfig::with_link_delay`]).
        delay: Duration,
    },
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            listen: vec![
                "/ip4/0.0.0.0/tcp/0".parse().unwrap_or_else(|_| Multiaddr::empty()),
                "/ip4/0.0.0.0/udp/0/quic-v1".parse().unwrap_or_else(|_| Multiaddr::empty()),
            ],
            bootstrap: Vec::new(),
            mdns: true,
            dht_query_timeout: Duration::from_secs(30),
            reprovide_interval: Duration::from_secs(30 * 60),
            max_connections: None,
            dht_limits: crate::DhtLimits::default(),
            dht: true,
            agent: format!("shoal/{}", env!("CARGO_PKG_VERSION")),
            transport: TransportKind::System,
            idle_timeout: Duration::from_secs(60),
            gossip_mesh: GossipMesh::default(),
        }
    }
}

impl NetConfig {
    /// Loopback only, port 0, no mDNS: what tests, benchmarks and the demo use.
    pub fn loopback() -> Self {
        Self {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap_or_else(|_| Multiaddr::empty())],
            mdns: false,
            dht_query_timeout: Duration::from_secs(10),
            ..Self::default()
        }
    }

    /// In-process peers on libp2p's memory transport (see [`TransportKind::Memory`]), no mDNS. Idle
    /// connections close after 10 s (libp2p's default) rather than 60: a thousand peers sharing two cores
    /// cannot afford the ping and timer traffic of every connection a DHT lookup ever opened.
    pub fn memory(encrypted: bool) -> Self {
        Self {
            listen: vec!["/memory/0".parse().unwrap_or_else(|_| Multiaddr::empty())],
            transport: TransportKind::Memory { encrypted, delay: Duration::ZERO },
            idle_timeout: Duration::from_secs(10),
            ..Self::loopback()
        }
    }

    /// On the memory transport, delays everything each connection carries by `delay` each way (a round
    /// trip of twice that), as a real link would; other transports are left as they are.
    pub fn with_link_delay(mut self, delay: Duration) -> Self {
        if let TransportKind::Memory { delay: d, .. } = &mut self.transport {
            *d = delay;
        }
        self
    }

    /// Sets how many provider records the DHT keeps.
    pub fn with_dht_limits(mut self, limits: crate::DhtLimits) -> Self {
        self.dht_limits = limits;
        self
    }

    /// Sets the listen addresses.
    pub fn with_listen(mut self, listen: Vec<Multiaddr>) -> Self {
        self.listen = listen;
        self
    }

    /// Sets the bootstrap peers.
    pub fn with_bootstrap(mut self, bootstrap: Vec<Multiaddr>) -> Self {
        self.bootstrap = bootstrap;
        self
    }

    /// Caps the number of established connections.
    pub fn with_max_connections(mut self, n: Option<u32>) -> Self {
        self.max_connections = n;
        self
    }

    /// Turns the DHT on or off.
    pub fn with_dht(mut self, on: bool) -> Self {
        self.dht = on;
        self
    }

    /// Sets how wide gossipsub's meshes are.
    pub fn with_gossip_mesh(mut self, mesh: GossipMesh) -> Self {
        self.gossip_mesh = mesh;
        self
    }

    /// Turns mDNS on or off.
    pub fn with_mdns(mut self, on: bool) -> Self {
        self.mdns = on;
        self
    }
}

/// A connected peer.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// Its id.
    pub peer: PeerId,
    /// Addresses of our connections to it.
    pub addrs: Vec<Multiaddr>,
    /// Its agent string (from identify), once known.
    pub agent: Option<String>,
    /// True when we dialed it to meet it (see [`NetEvent::PeerConnected`]).
    pub introduced: bool,
}

/// What a peer's DHT holds (see [`Network::dht_state`]).
#[derive(Clone, Debug, Default)]
pub struct DhtState {
    /// Peers in its Kademlia routing table.
    pub routing: Vec<PeerId>,
    /// Providers of the key asked about whose records it stores (itself included when it provides it).
    pub providers: Vec<PeerId>,
    /// Provided keys whose announcement is queued, under way, or failed and waiting to be tried again.
    pub announcing: usize,
    /// Announcements that reached the closest peers, since start.
    pub announced: u64,
    /// Announcements that failed (timed out, or found no peer), since start; each is tried again.
    pub announce_failures: u64,
    /// Other peers' provider records held (bounded by [`NetConfig::dht_limits`]).
    pub remote_records: usize,
}

/// Something that happened in the network, for whoever listens ([`Network::subscribe`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum NetEvent {
    /// First connection to a peer.
    PeerConnected {
        /// The peer.
        peer: PeerId,
        /// True when we dialed it to meet it: a bootstrap peer, one found on the LAN, or one given to
        /// [`Network::dial`]. Overlays pick their neighbours among these (and among peers that ask).
        introduced: bool,
    },
    /// A peer told us what it runs (identify).
    Identified {
        /// The peer.
        peer: PeerId,
        /// Its agent string, e.g. `shoal/0.1.0 topology=pure`.
        agent: String,
    },
    /// Last connection to a peer closed.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
    },
}

/// A handle to the swarm. Cheap to clone; every clone talks to the same event loop.
#[derive(Clone)]
pub struct Network {
    peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    control: crate::streams::Control,
    events: tokio::sync::broadcast::Sender<NetEvent>,
    dht_requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
    received: std::sync::Arc<std::sync::atomic::AtomicU64>,
    gossip_received: std::sync::Arc<std::sync::atomic::AtomicU64>,
    gossip: std::sync::Arc<std::sync::Mutex<Option<mpsc::Receiver<GossipEvent>>>>,
}

impl Network {
    /// Builds the swarm, starts listening, dials the bootstrap peers and spawns the event loop.
    /// Returns once every listener has an address (so [`Network::listen_addrs`] is complete).
    pub async fn start(key: Keypair, config: NetConfig) -> Result<Self, NetError> {
        Self::start_with_metrics(key, config, None).await
    }

    /// [`Network::start`], recording libp2p's metrics (swarm, Kademlia, identify, ping, gossipsub) into `registry`.
    pub async fn start_with_metrics(
        key: Keypair,
        config: NetConfig,
        registry: Option<&mut prometheus_client::registry::Registry>,
    ) -> Result<Self, NetError> {
        let mut registry = registry;
        let peer_id = key.public().to_peer_id();
        let received = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let gossip_received = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut swarm =
            crate::behaviour::build(key, &config, received.clone(), gossip_received.clone(), registry.as_deref_mut())?;
        let metrics = registry.map(libp2p::metrics::Metrics::new);
        let control = swarm.behaviour().stream.new_control();
        for addr in &config.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| NetError::Listen { addr: addr.to_string(), why: e.to_string() })?;
        }
        let (tx, rx) = mpsc::channel(256);
        let (events, _) = tokio::sync::broadcast::channel(256);
        let dht_requests = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (gossip_tx, gossip_rx) = mpsc::channel(crate::gossip::PENDING_MESSAGES);
        let mut ev =
            EventLoop::new(swarm, rx, config.clone(), events.clone(), dht_requests.clone(), metrics, gossip_tx);
        ev.await_listeners(config.listen.len(), Duration::from_secs(5)).await?;
        for addr in &config.bootstrap {
            ev.dial_addr(addr.clone());
        }
        tokio::spawn(ev.run());
        let gossip = std::sync::Arc::new(std::sync::Mutex::new(Some(gossip_rx)));
        Ok(Self { peer_id, commands: tx, control, events, dht_requests, received, gossip_received, gossip })
    }

    /// Network events from now on. A subscriber that falls behind misses the oldest (bounded buffer).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<NetEvent> {
        self.events.subscribe()
    }

    /// Kademlia requests this peer has sent since start (every lookup, announcement and bootstrap): what the
    /// DHT costs, for the figures that compare topologies.
    pub fn dht_requests(&self) -> u64 {
        self.dht_requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Bytes this peer has received on all its connections since start, as the link carried them (framing,
    /// handshakes and every protocol included): counted on the memory transport only (the simulator's
    /// figure of what a protocol costs), 0 on real transports.
    pub fn link_bytes_received(&self) -> u64 {
        self.received.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Bytes this peer has received on gossipsub's streams since start (messages, control messages, their
    /// framing; no muxer headers): what topics cost on the link, with no other protocol in it. Counted on the
    /// memory transport only, 0 on real transports.
    pub fn gossip_bytes_received(&self) -> u64 {
        self.gossip_received.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// This peer's id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// A control for opening and accepting protocol streams.
    pub fn streams(&self) -> crate::streams::Control {
        self.control.clone()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// The addresses this peer listens on (with `/p2p/<id>` appended: ready to give to others).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.ask(|reply| Command::ListenAddrs { reply }).await
    }

    /// Makes sure we are connected to `peer`, dialing it (with `hints` and whatever the DHT knows) if needed.
    pub async fn connect(&self, peer: PeerId, hints: Vec<Multiaddr>) -> Result<(), NetError> {
        self.ask(|reply| Command::Connect { peer, hints, reply }).await?
    }

    /// Closes every connection to `peer`, and with them every stream; returns whether there was one. The
    /// peer may connect again.
    pub async fn disconnect(&self, peer: PeerId) -> Result<bool, NetError> {
        self.ask(|reply| Command::Disconnect { peer, reply }).await
    }

    /// Dials an address (e.g. a bootstrap peer given later).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetError> {
        self.ask(|reply| Command::Dial { addr, reply }).await?
    }

    /// Announces in the DHT that we provide `key` (and keeps re-announcing it).
    pub async fn provide(&self, key: Vec<u8>) -> Result<(), NetError> {
        self.ask(|reply| Command::Provide { key, reply }).await?
    }

    /// Stops announcing `key`.
    pub async fn unprovide(&self, key: Vec<u8>) -> Result<(), NetError> {
        self.ask(|reply| Command::Unprovide { key, reply }).await
    }

    /// Looks up providers of `key` in the DHT. Providers arrive on the channel as they are found; the
    /// channel closes when the lookup ends. Found providers are dialed right away.
    pub async fn find_providers(&self, key: Vec<u8>) -> Result<mpsc::Receiver<PeerId>, NetError> {
        let (tx, rx) = mpsc::channel(64);
        self.commands.send(Command::FindProviders { key, found: tx }).await.map_err(|_| NetError::Stopped)?;
        Ok(rx)
    }

    /// Peers we are connected to.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NetError> {
        self.ask(|reply| Command::Peers { reply }).await
    }

    /// The routing table and the provider records held for `key` (empty without the DHT): what the
    /// simulator reads to measure lookups against the tables the real network built.
    pub async fn dht_state(&self, key: Vec<u8>) -> Result<DhtState, NetError> {
        self.ask(|reply| Command::DhtState { key, reply }).await
    }

    /// The up to 20 peers closest to `key` in the DHT (Kademlia's XOR distance), from a lookup; an error
    /// without the DHT.
    pub async fn closest_peers(&self, key: Vec<u8>) -> Result<Vec<PeerId>, NetError> {
        self.ask(|reply| Command::ClosestPeers { key, within: None, reply }).await?
    }

    /// [`Network::closest_peers`], cut short after about `within` (to the second): the closest peers that
    /// had answered by then. A lookup otherwise waits for its slowest peer, up to the query timeout.
    pub async fn closest_peers_within(&self, key: Vec<u8>, within: Duration) -> Result<Vec<PeerId>, NetError> {
        self.ask(|reply| Command::ClosestPeers { key, within: Some(within), reply }).await?
    }

    /// Topic messages and subscriptions, for the one service that judges them: the first call takes the
    /// receiver, later calls get `None`. Every [`GossipEvent::Message`] needs a [`Network::report`].
    pub fn gossip_events(&self) -> Option<mpsc::Receiver<GossipEvent>> {
        self.gossip.lock().ok()?.take()
    }

    /// Follows a topic: its messages arrive on [`Network::gossip_events`].
    pub async fn join_topic(&self, topic: String) -> Result<(), NetError> {
        self.ask(|reply| Command::Gossip(GossipCommand::Join { topic, reply })).await?
    }

    /// Stops following a topic.
    pub async fn leave_topic(&self, topic: String) -> Result<(), NetError> {
        self.commands.send(Command::Gossip(GossipCommand::Leave { topic })).await.map_err(|_| NetError::Stopped)
    }

    /// Publishes on a topic; returns how many connected peers follow it (0: nobody got it now).
    pub async fn publish(&self, topic: String, data: Vec<u8>) -> Result<usize, NetError> {
        self.ask(|reply| Command::Gossip(GossipCommand::Publish { topic, data, reply })).await?
    }

    /// The verdict on a message from [`Network::gossip_events`]: forwarded only when accepted.
    pub async fn report(&self, id: Vec<u8>, source: PeerId, verdict: Verdict) -> Result<(), NetError> {
        let cmd = Command::Gossip(GossipCommand::Report { id, source, verdict });
        self.commands.send(cmd).await.map_err(|_| NetError::Stopped)
    }

    /// Connected peers that follow `topic`.
    pub async fn topic_peers(&self, topic: String) -> Result<Vec<PeerId>, NetError> {
        self.ask(|reply| Command::Gossip(GossipCommand::Peers { topic, reply })).await
    }

    /// Closes every connection and stops the event loop.
    pub async fn shutdown(&self) {
        let _ = self.ask(|reply| Command::Shutdown { reply }).await;
    }
}
