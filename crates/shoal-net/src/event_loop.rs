//! The one task that owns the swarm.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::kad::{self, GetProvidersOk, QueryId, QueryResult, RecordKey};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identify, mdns};
use tokio::sync::{mpsc, oneshot};

use crate::behaviour::{Behaviour, BehaviourEvent, IDENTIFY_PROTOCOL};

/// Peers found on the LAN that we keep track of having introduced ourselves to: a LAN full of (fake) mDNS
/// announcements cannot make the set grow beyond this.
const MAX_INTRODUCED: usize = 4096;
use crate::{DhtState, NetConfig, NetError, NetEvent, PeerInfo};

pub(crate) enum Command {
    ListenAddrs { reply: oneshot::Sender<Vec<Multiaddr>> },
    Connect { peer: PeerId, hints: Vec<Multiaddr>, reply: oneshot::Sender<Result<(), NetError>> },
    Dial { addr: Multiaddr, reply: oneshot::Sender<Result<(), NetError>> },
    Disconnect { peer: PeerId, reply: oneshot::Sender<bool> },
    Provide { key: Vec<u8>, reply: oneshot::Sender<Result<(), NetError>> },
    Unprovide { key: Vec<u8>, reply: oneshot::Sender<()> },
    FindProviders { key: Vec<u8>, found: mpsc::Sender<PeerId> },
    Peers { reply: oneshot::Sender<Vec<PeerInfo>> },
    DhtState { key: Vec<u8>, reply: oneshot::Sender<DhtState> },
    ClosestPeers { key: Vec<u8>, within: Option<Duration>, reply: oneshot::Sender<Result<Vec<PeerId>, NetError>> },
    Gossip(crate::gossip::GossipCommand),
    Shutdown { reply: oneshot::Sender<()> },
}

pub(crate) struct EventLoop {
    /// libp2p's own metrics (connections, Kademlia, identify, ping), when the node exports them.
    metrics: Option<libp2p::metrics::Metrics>,
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    config: NetConfig,
    listen_addrs: Vec<Multiaddr>,
    connected: HashMap<PeerId, Vec<Multiaddr>>,
    agents: HashMap<PeerId, String>,
    pending_connect: HashMap<PeerId, Vec<oneshot::Sender<Result<(), NetError>>>>,
    pending_providers: HashMap<QueryId, mpsc::Sender<PeerId>>,
    pending_closest: HashMap<QueryId, oneshot::Sender<Result<Vec<PeerId>, NetError>>>,
    /// Lookups of the closest peers to cut short at a time, with what they found by then.
    closest_deadlines: Vec<(Instant, QueryId)>,
    /// Where topic messages go to be judged (see [`crate::gossip`]).
    gossip: mpsc::Sender<crate::gossip::GossipEvent>,
    provided: HashSet<Vec<u8>>,
    /// Announcements waiting their turn (`queued` mirrors the queue, for lookups), and those under way.
    provide_queue: VecDeque<Vec<u8>>,
    queued: HashSet<Vec<u8>>,
    providing: HashMap<QueryId, Vec<u8>>,
    /// Keys whose announcement failed: when to try again, and how many times it failed in a row.
    provide_retry: HashMap<Vec<u8>, (Instant, u32)>,
    /// Announcements that ended well, and that failed (each failure is tried again).
    announced: u64,
    announce_failures: u64,
    joined: bool,
    events: tokio::sync::broadcast::Sender<NetEvent>,
    /// Peers and addresses we dialed to meet (bootstrap, mDNS, explicit dials): see `NetEvent::PeerConnected`.
    introduced_peers: HashSet<PeerId>,
    introduced_addrs: HashSet<Multiaddr>,
    /// Connected peers that were introduced.
    introduced: HashSet<PeerId>,
    dht_requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Provider announcements under way at once (see `EventLoop::pump_provides`).
const PROVIDE_AT_ONCE: usize = 4;
/// A failed announcement is tried again after 5 s, then twice as long each time, up to this.
const PROVIDE_RETRY_MAX: Duration = Duration::from_secs(300);

fn provide_backoff(failures: u32) -> Duration {
    (Duration::from_secs(5) * (1u32 << failures.saturating_sub(1).min(6))).min(PROVIDE_RETRY_MAX)
}

pub(crate) fn without_p2p(addr: &Multiaddr) -> Multiaddr {
    addr.iter().filter(|p| !matches!(p, Protocol::P2p(_))).collect()
}

fn is_unspecified(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}

impl EventLoop {
    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        commands: mpsc::Receiver<Command>,
        config: NetConfig,
        events: tokio::sync::broadcast::Sender<NetEvent>,
        dht_requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
        metrics: Option<libp2p::metrics::Metrics>,
        gossip: mpsc::Sender<crate::gossip::GossipEvent>,
    ) -> Self {
        Self {
            metrics,
            swarm,
            commands,
            config,
            listen_addrs: Vec::new(),
            connected: HashMap::new(),
            agents: HashMap::new(),
            pending_connect: HashMap::new(),
            pending_providers: HashMap::new(),
            pending_closest: HashMap::new(),
            closest_deadlines: Vec::new(),
            gossip,
            provided: HashSet::new(),
            provide_queue: VecDeque::new(),
            queued: HashSet::new(),
            providing: HashMap::new(),
            provide_retry: HashMap::new(),
            announced: 0,
            announce_failures: 0,
            joined: false,
            events,
            introduced_peers: HashSet::new(),
            introduced_addrs: HashSet::new(),
            introduced: HashSet::new(),
            dht_requests,
        }
    }

    /// Polls the swarm until `n` listeners have reported an address, or `timeout`.
    pub(crate) async fn await_listeners(&mut self, n: usize, timeout: Duration) -> Result<(), NetError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = HashSet::new();
        while seen.len() < n {
            match tokio::time::timeout_at(deadline, self.swarm.select_next_some()).await {
                Ok(SwarmEvent::NewListenAddr { listener_id, address }) => {
                    seen.insert(listener_id);
                    self.on_new_listen_addr(address);
                }
                Ok(SwarmEvent::ListenerError { error, .. })
                | Ok(SwarmEvent::ListenerClosed { reason: Err(error), .. }) => {
                    return Err(NetError::Listen { addr: "listener".into(), why: error.to_string() });
                }
                Ok(other) => self.on_swarm_event(other),
                Err(_) => {
                    return Err(NetError::Listen {
                        addr: format!("{n} listeners"),
                        why: "no address reported within 5 s".into(),
                    });
                }
            }
        }
        Ok(())
    }

    fn on_new_listen_addr(&mut self, address: Multiaddr) {
        tracing::info!(%address, "listening");
        // On loopback and LAN nobody can tell us our address: declare it, or Kademlia will neither serve
        // (it stays in client mode) nor put our address in provider records.
        self.swarm.add_external_address(address.clone());
        self.listen_addrs.push(address);
    }

    fn kad(&mut self) -> Option<&mut kad::Behaviour<crate::dht_store::DhtStore>> {
        self.swarm.behaviour_mut().kad.as_mut()
    }

    pub(crate) fn dial_addr(&mut self, addr: Multiaddr) -> Option<DialError> {
        if let Some(Protocol::P2p(peer)) = addr.iter().last() {
            self.introduced_peers.insert(peer);
            if let Some(k) = self.kad() {
                k.add_address(&peer, addr.clone());
            }
        }
        self.introduced_addrs.insert(without_p2p(&addr));
        match self.swarm.dial(addr.clone()) {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(%addr, error = %e, "cannot dial");
                Some(e)
            }
        }
    }

    pub(crate) async fn run(mut self) {
        let mut reprovide = tokio::time::interval(self.config.reprovide_interval);
        reprovide.tick().await;
        let mut retry = tokio::time::interval(Duration::from_secs(1));
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_swarm_event(ev),
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Shutdown { reply }) => {
                        let _ = reply.send(());
                        break;
                    }
                    Some(cmd) => self.on_command(cmd),
                    None => break,
                },
                _ = reprovide.tick() => self.reprovide_all(),
                _ = retry.tick() => {
                    self.retry_provides();
                    self.cut_short_lookups();
                }
            }
        }
        tracing::debug!("network event loop stopped");
    }

    /// Finishes the lookups of closest peers whose time is up: they answer with the peers that responded so
    /// far. A lookup otherwise waits for its slowest peer, up to the query timeout (10-30 s), and a peer that
    /// needs the closest peers within seconds (a recipient collecting its letters) cannot wait that long.
    fn cut_short_lookups(&mut self) {
        let now = Instant::now();
        let pending = &self.pending_closest;
        let mut due = Vec::new();
        self.closest_deadlines.retain(|&(at, q)| {
            if pending.contains_key(&q) && at <= now {
                due.push(q);
            }
            pending.contains_key(&q) && at > now
        });
        if let Some(kad) = self.kad() {
            for q in due {
                if let Some(mut query) = kad.query_mut(&q) {
                    query.finish();
                }
            }
        }
    }

    fn reprovide_all(&mut self) {
        for key in self.provided.clone() {
            self.queue_provide(key);
        }
        self.pump_provides();
    }

    fn queue_provide(&mut self, key: Vec<u8>) {
        if !self.queued.contains(&key) && !self.providing.values().any(|k| *k == key) {
            self.queued.insert(key.clone());
            self.provide_queue.push_back(key);
        }
    }

    /// Starts queued announcements, at most [`PROVIDE_AT_ONCE`] at a time. Each is a lookup of the closest
    /// peers and then a request to each: a peer sharing a folder of thousands of files, or a thousand
    /// peers in one process, would otherwise start them all at once and see them time out, and libp2p
    /// stores nothing when the lookup phase times out.
    fn pump_provides(&mut self) {
        while self.providing.len() < PROVIDE_AT_ONCE {
            let Some(key) = self.provide_queue.pop_front() else { return };
            self.queued.remove(&key);
            if !self.provided.contains(&key) {
                continue;
            }
            let Some(k) = self.kad() else { return };
            match k.start_providing(RecordKey::new(&key)) {
                Ok(q) => {
                    self.providing.insert(q, key);
                }
                Err(e) => tracing::warn!(error = %e, "cannot announce a provided key"),
            }
        }
    }

    /// An announcement ended: a failed one is tried again later, backing off.
    fn provide_done(&mut self, q: QueryId, ok: bool) {
        let Some(key) = self.providing.remove(&q) else { return };
        if ok {
            self.announced += 1;
        } else {
            self.announce_failures += 1;
        }
        if ok || !self.provided.contains(&key) {
            self.provide_retry.remove(&key);
        } else {
            let e = self.provide_retry.entry(key).or_insert((Instant::now(), 0));
            e.1 += 1;
            e.0 = Instant::now() + provide_backoff(e.1);
        }
        self.pump_provides();
    }

    fn retry_provides(&mut self) {
        let now = Instant::now();
        let due: Vec<Vec<u8>> =
            self.provide_retry.iter().filter(|(_, (at, _))| *at <= now).map(|(k, _)| k.clone()).collect();
        for key in due {
            // Keep the failure count: a key that fails again backs off further.
            if let Some(e) = self.provide_retry.get_mut(&key) {
                e.0 = now + PROVIDE_RETRY_MAX;
            }
            self.queue_provide(key);
        }
        self.pump_provides();
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::ListenAddrs { reply } => {
                let me = self.swarm.local_peer_id().to_owned();
                let addrs = self.listen_addrs.iter().map(|a| a.clone().with(Protocol::P2p(me))).collect();
                let _ = reply.send(addrs);
            }
            Command::Disconnect { peer, reply } => {
                let _ = reply.send(self.swarm.disconnect_peer_id(peer).is_ok());
            }
            Command::Connect { peer, hints, reply } => {
                if self.swarm.is_connected(&peer) {
                    let _ = reply.send(Ok(()));
                    return;
                }
                for a in hints.iter().filter(|a| !is_unspecified(a)) {
                    if let Some(k) = self.kad() {
                        k.add_address(&peer, a.clone());
                    }
                }
                let opts = DialOpts::peer_id(peer)
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .addresses(hints)
                    .extend_addresses_through_behaviour()
                    .build();
                match self.swarm.dial(opts) {
                    Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => {
                        self.pending_connect.entry(peer).or_default().push(reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::dial(peer, &e)));
                    }
                }
            }
            Command::Dial { addr, reply } => {
                let r = match self.dial_addr(addr.clone()) {
                    None => Ok(()),
                    Some(e) => Err(NetError::dial(&addr, &e)),
                };
                let _ = reply.send(r);
            }
            Command::Provide { key, reply } => {
                if self.config.dht && self.provided.insert(key.clone()) {
                    self.provide_retry.remove(&key);
                    self.queue_provide(key);
                    self.pump_provides();
                }
                let _ = reply.send(Ok(()));
            }
            Command::Unprovide { key, reply } => {
                if let Some(k) = self.kad() {
                    k.stop_providing(&RecordKey::new(&key));
                }
                self.provided.remove(&key);
                self.provide_retry.remove(&key);
                let _ = reply.send(());
            }
            Command::FindProviders { key, found } => {
                // Without the DHT, `found` is dropped here: the lookup ends at once with nothing.
                if let Some(k) = self.kad() {
                    let q = k.get_providers(RecordKey::new(&key));
                    self.pending_providers.insert(q, found);
                }
            }
            Command::Peers { reply } => {
                let peers = self
                    .connected
                    .iter()
                    .map(|(p, a)| PeerInfo {
                        peer: *p,
                        addrs: a.clone(),
                        agent: self.agents.get(p).cloned(),
                        introduced: self.introduced.contains(p),
                    })
                    .collect();
                let _ = reply.send(peers);
            }
            Command::DhtState { key, reply } => {
                use kad::store::RecordStore;
                let announcing = self.provide_queue.len() + self.providing.len() + self.provide_retry.len();
                let (announced, announce_failures) = (self.announced, self.announce_failures);
                let state = match self.kad() {
                    Some(k) => DhtState {
                        announcing,
                        announced,
                        announce_failures,
                        routing: k
                            .kbuckets()
                            .flat_map(|b| b.iter().map(|e| *e.node.key.preimage()).collect::<Vec<_>>())
                            .collect(),
                        providers: k
                            .store_mut()
                            .providers(&RecordKey::new(&key))
                            .into_iter()
                            .map(|r| r.provider)
                            .collect(),
                        remote_records: k.store_mut().remote_records(),
                    },
                    None => DhtState::default(),
                };
                let _ = reply.send(state);
            }
            Command::ClosestPeers { key, within, reply } => match self.kad() {
                Some(k) => {
                    let q = k.get_closest_peers(key);
                    self.pending_closest.insert(q, reply);
                    if let Some(w) = within {
                        self.closest_deadlines.push((Instant::now() + w, q));
                    }
                }
                None => {
                    let _ = reply.send(Err(NetError::NoDht));
                }
            },
            Command::Gossip(cmd) => crate::gossip::command(&mut self.swarm.behaviour_mut().gossip, cmd),
            Command::Shutdown { .. } => {}
        }
    }

    fn record(&self, ev: &SwarmEvent<BehaviourEvent>) {
        use libp2p::metrics::Recorder;
        let Some(m) = &self.metrics else { return };
        m.record(ev);
        match ev {
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => m.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => m.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => m.record(e),
            _ => {}
        }
    }

    fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        self.record(&ev);
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => self.on_new_listen_addr(address),
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                tracing::debug!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connected");
                let first = !self.connected.contains_key(&peer_id);
                self.connected.entry(peer_id).or_default().push(endpoint.get_remote_address().clone());
                if first {
                    let introduced = self.introduced_peers.contains(&peer_id)
                        || (endpoint.is_dialer()
                            && self.introduced_addrs.contains(&without_p2p(endpoint.get_remote_address())));
                    if introduced {
                        self.introduced.insert(peer_id);
                    }
                    let _ = self.events.send(NetEvent::PeerConnected { peer: peer_id, introduced });
                }
                for reply in self.pending_connect.remove(&peer_id).unwrap_or_default() {
                    let _ = reply.send(Ok(()));
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established, endpoint, cause, .. } => {
                let me = *self.swarm.local_peer_id();
                tracing::debug!(%me, peer = %peer_id, num_established, cause = ?cause, "connection closed");
                if num_established == 0 {
                    self.connected.remove(&peer_id);
                    self.introduced.remove(&peer_id);
                    self.agents.remove(&peer_id);
                    let _ = self.events.send(NetEvent::PeerDisconnected { peer: peer_id });
                } else if let Some(v) = self.connected.get_mut(&peer_id)
                    && let Some(i) = v.iter().position(|a| a == endpoint.get_remote_address())
                {
                    // One entry per connection: only the closed one goes.
                    v.remove(i);
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id: Some(peer), error, .. } => {
                if self.swarm.is_connected(&peer) {
                    return;
                }
                for reply in self.pending_connect.remove(&peer).unwrap_or_default() {
                    let _ = reply.send(Err(NetError::dial(peer, &error)));
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                if info.protocol_version != IDENTIFY_PROTOCOL {
                    tracing::warn!(peer = %peer_id, theirs = %info.protocol_version, ours = IDENTIFY_PROTOCOL,
                        "peer speaks another Shoal network version");
                }
                self.agents.insert(peer_id, info.agent_version.clone());
                let _ = self.events.send(NetEvent::Identified { peer: peer_id, agent: info.agent_version.clone() });
                if let Some(k) = self.swarm.behaviour_mut().kad.as_mut() {
                    for addr in info.listen_addrs.into_iter().filter(|a| !is_unspecified(a)) {
                        k.add_address(&peer_id, addr);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(list))) => {
                // A LAN can announce any number of peers: the ones we already know or are connected to are
                // not dialed again, the list we keep of them is bounded, and the connection limits (total,
                // per peer, handshakes under way) bound the dials.
                for (peer, addr) in list {
                    if self.swarm.is_connected(&peer) || self.introduced_peers.len() >= MAX_INTRODUCED {
                        continue;
                    }
                    tracing::info!(%peer, %addr, "found on the LAN");
                    self.introduced_peers.insert(peer);
                    if let Some(k) = self.kad() {
                        k.add_address(&peer, addr.clone());
                    }
                    let _ = self.swarm.dial(DialOpts::peer_id(peer).addresses(vec![addr]).build());
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(ev)) => self.on_kad_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(ev)) => {
                crate::gossip::on_event(&mut self.swarm.behaviour_mut().gossip, &self.gossip, ev)
            }
            _ => {}
        }
    }

    fn on_kad_event(&mut self, ev: kad::Event) {
        match ev {
            // First peer in the routing table: what we announced while alone reached nobody.
            kad::Event::RoutingUpdated { peer, is_new_peer, .. } if is_new_peer && !self.joined => {
                tracing::debug!(%peer, "joined the DHT; announcing provided keys");
                self.joined = true;
                self.reprovide_all();
            }
            kad::Event::OutboundQueryProgressed { id, result, step, stats } => {
                if step.last {
                    // The last step carries the whole query's statistics.
                    self.dht_requests.fetch_add(u64::from(stats.num_requests()), std::sync::atomic::Ordering::Relaxed);
                }
                self.on_query_progress(id, result, step)
            }
            _ => {}
        }
    }

    fn on_query_progress(&mut self, id: QueryId, result: QueryResult, step: kad::ProgressStep) {
        match result {
            QueryResult::GetProviders(Ok(GetProvidersOk::FoundProviders { providers, .. })) => {
                for p in providers {
                    // Dial now: the provider's addresses live in this query, which may end soon.
                    if !self.swarm.is_connected(&p) {
                        let opts = DialOpts::peer_id(p).condition(PeerCondition::DisconnectedAndNotDialing).build();
                        let _ = self.swarm.dial(opts);
                    }
                    if let Some(tx) = self.pending_providers.get(&id) {
                        let _ = tx.try_send(p);
                    }
                }
                if step.last {
                    self.pending_providers.remove(&id);
                }
            }
            QueryResult::GetProviders(_) => {
                self.pending_providers.remove(&id);
            }
            QueryResult::GetClosestPeers(r) => {
                // A lookup that timed out still found peers: they are the closest we know.
                let peers = match r {
                    Ok(ok) => ok.peers,
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                if let Some(reply) = self.pending_closest.remove(&id) {
                    let _ = reply.send(Ok(peers.into_iter().map(|p| p.peer_id).collect()));
                }
            }
            QueryResult::StartProviding(r) => {
                if let Err(e) = &r {
                    tracing::debug!(error = %e, "provider announcement incomplete: will try again");
                }
                self.provide_done(id, r.is_ok());
            }
            _ => {}
        }
    }
}
