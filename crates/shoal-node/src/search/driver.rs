//! The search driver: the one task that owns the router and carries out its actions.
//!
//! Over 600 lines because it still interleaves five roles (overlay, index client, index server, supernode,
//! DHT) in one struct; splitting it by role, with the topology policy moved into `shoal-proto` so that the
//! simulator runs the same decision code, is the next step of the service-seam work (see `docs/ARCHITECTURE.md`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use shoal_net::{NetEvent, Network};
use shoal_proto::search::digest::Digest;
use shoal_proto::search::flood::{Action, Config as FloodConfig};
use shoal_proto::search::messages::MAX_ADDRS;
use shoal_proto::search::messages::WireId;
use shoal_proto::search::policy::{self, Route};
use shoal_proto::search::registry::{self, Registry};
use shoal_proto::search::supernode::{self, Role, SuperAction, Supernode};
use shoal_proto::search::{Flood, Hit, IndexEntry, Provider, Query, SearchId, SearchMsg, Want};
use shoal_store::{ContentId, MAX_LOCAL_HITS, Store};
use tokio::sync::{broadcast, mpsc};

use super::links::{LinkEvent, Links};
use super::{FoundHit, SearchCounters, SearchEvent, SearchRequest, dht};
use crate::config::{SearchConfig, Topology};
use crate::events::{Event, Events, FeedEvent, Subscription};
use crate::service::Tasks;
use crate::transfer::Event as TransferEvent;

/// Commands from the node.
pub(crate) enum Cmd {
    Start { req: SearchRequest, tx: mpsc::Sender<SearchEvent> },
}

/// What the node reads from the driver.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) counters: Mutex<SearchCounters>,
    /// Peers that run another topology, with theirs.
    pub(crate) mismatches: Mutex<BTreeMap<PeerId, String>>,
}

enum Internal {
    Answer {
        qid: u64,
        hits: Vec<Hit>,
    },
    DhtFound {
        sid: SearchId,
        peer: PeerId,
    },
    /// Our share list, read for the index servers.
    Entries {
        entries: Vec<IndexEntry>,
        why: ListFor,
    },
}

/// Why the share list was read.
#[derive(Clone, Copy, Debug)]
enum ListFor {
    /// An index server just connected: it gets the full list.
    Connected(PeerId),
    /// Our shares changed: every server gets the difference.
    Changed,
    /// The refresh interval passed: every server gets the full list again.
    Refresh,
    /// Our supernodes need our keyword digest.
    Digest,
}

/// How often index servers that are down are dialed again.
const REDIAL_EVERY: Duration = Duration::from_secs(5);

/// Everything the driver needs from the node.
pub(crate) struct Parts {
    pub(crate) topology: Topology,
    pub(crate) config: SearchConfig,
    pub(crate) store: Arc<Store>,
    pub(crate) net: Network,
    /// Makes query ids a neighbour cannot predict (from the OS generator).
    pub(crate) key: shoal_proto::rng::Secret,
    pub(crate) max_connections: Option<u32>,
    /// The search service's tasks: the driver and everything it starts run there.
    pub(crate) tasks: Tasks,
    /// The node's feed: the driver follows share changes on it.
    pub(crate) events: Events,
    /// Time to first hit of the searches started here.
    pub(crate) first_hit: prometheus_client::metrics::histogram::Histogram,
}

/// Starts the driver; returns its command channel, what it shares, and where inbound links report.
pub(crate) async fn spawn(parts: Parts) -> (mpsc::Sender<Cmd>, Arc<Shared>, mpsc::Sender<LinkEvent>) {
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (link_tx, link_rx) = mpsc::channel(1024);
    let shared = Arc::new(Shared::default());
    let my_addrs = parts.net.listen_addrs().await.unwrap_or_default();
    let flood_cfg =
        FloodConfig { degree: parts.config.degree, ring: parts.config.ring.clone(), ..FloodConfig::default() };
    let servers = parts
        .config
        .index_servers
        .iter()
        .filter_map(|a| match a.iter().last() {
            Some(Protocol::P2p(p)) => Some((p, a.clone())),
            _ => None,
        })
        .collect();
    let mut registry = parts
        .config
        .index_server
        .then(|| Registry::new(registry::Config { expire_after: parts.config.expire, ..registry::Config::default() }));
    // An index server picks up the share lists it had before a restart (they still expire on time), and
    // saves changes through one task so that they reach SQLite in order.
    let mut saver = None;
    if let Some(r) = registry.as_mut() {
        restore_registry(r, &parts.store).await;
        let (tx, rx) = mpsc::channel(64);
        parts.tasks.spawn(save_registry(parts.store.clone(), rx));
        saver = Some(tx);
    }
    let (int_tx, int_rx) = mpsc::channel(1024);
    let my_addrs = encode_addrs(&my_addrs);
    let sup = (parts.topology == Topology::Supernode).then(|| {
        let c = &parts.config;
        let cfg = supernode::Config {
            flood: FloodConfig { ring: c.ring.clone(), ..supernode::Config::default().flood },
            capable: c.supernode_capable,
            min_uptime: c.supernode_min_uptime,
            orphan_wait: c.supernode_orphan_wait,
            max_leaves: c.supernode_max_leaves,
            demote_below: c.supernode_max_leaves / 4,
            // Gossip about supernodes a few times per orphan wait: fast enough to re-home within seconds.
            gossip_every: (c.supernode_orphan_wait * 4).max(Duration::from_secs(1)),
            retry_after: (c.supernode_orphan_wait * 4).clamp(Duration::from_secs(1), Duration::from_secs(10)),
            ..supernode::Config::default()
        };
        Supernode::new(cfg, parts.net.peer_id(), my_addrs.clone(), parts.key.clone(), Instant::now())
    });
    let d = Driver {
        topology: parts.topology,
        me: parts.net.peer_id(),
        store: parts.store,
        links: Links::new(parts.net.streams(), link_tx.clone(), parts.tasks.clone()),
        node_events: parts.events.subscribe(),
        first_hit: parts.first_hit.clone(),
        tasks: parts.tasks.clone(),
        net_events: parts.net.subscribe(),
        net: parts.net,
        flood: Flood::new(flood_cfg, parts.key),
        subs: HashMap::new(),
        introduced: HashSet::new(),
        retry: HashMap::new(),
        my_addrs,
        sup,
        super_capable: parts.config.supernode_capable,
        max_connections: parts.max_connections,
        connected: HashSet::new(),
        published: Arc::new(tokio::sync::Mutex::new(BTreeSet::new())),
        shared: shared.clone(),
        internal: int_tx,
        searches: 0,
        hits: 0,
        servers,
        servers_up: HashSet::new(),
        registry,
        saver,
        told: BTreeMap::new(),
        refresh: parts.config.refresh,
        last_refresh: Instant::now(),
        last_redial: Instant::now(),
    };
    parts.tasks.spawn(d.run(cmd_rx, link_rx, int_rx));
    (cmd_tx, shared, link_tx)
}

type RegistryRow = shoal_store::Registration;

fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

async fn restore_registry(r: &mut Registry<PeerId>, store: &Arc<Store>) {
    let s = store.clone();
    let rows = match tokio::task::spawn_blocking(move || s.load_registered()).await {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "index: cannot read the saved registrations; starting empty");
            return;
        }
        Err(_) => return,
    };
    let (now, unix) = (Instant::now(), unix_ms());
    let n = rows.len();
    for RegistryRow { peer, saved, heard_at_ms } in rows {
        let saved = saved.unwrap_or_default();
        let (Ok(peer), Ok(saved)) = (PeerId::from_bytes(&peer), postcard::from_bytes::<registry::Saved>(&saved)) else {
            continue;
        };
        r.restore(peer, saved, Duration::from_millis(unix.saturating_sub(heard_at_ms).max(0) as u64), now);
    }
    tracing::info!(saved = n, restored = r.peers(), "index: registrations restored");
}

async fn save_registry(store: Arc<Store>, mut rx: mpsc::Receiver<Vec<RegistryRow>>) {
    while let Some(rows) = rx.recv().await {
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.save_registered(&rows)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "index: cannot save registrations"),
            Err(_) => return,
        }
    }
}

/// Our addresses as hits carry them: without `/p2p`, LAN before loopback, at most [`MAX_ADDRS`].
fn encode_addrs(addrs: &[Multiaddr]) -> Vec<Vec<u8>> {
    let mut v: Vec<Multiaddr> =
        addrs.iter().map(|a| a.iter().filter(|p| !matches!(p, Protocol::P2p(_))).collect()).collect();
    v.sort_by_key(|a| a.iter().any(|p| matches!(p, Protocol::Ip4(ip) if ip.is_loopback())));
    v.into_iter().take(MAX_ADDRS).map(|a| a.to_vec()).collect()
}

fn found_hit(h: Hit) -> Option<FoundHit> {
    let peer = PeerId::from_bytes(&h.provider.peer).ok()?;
    let addrs = h.provider.addrs.into_iter().filter_map(|a| Multiaddr::try_from(a).ok()).collect();
    Some(FoundHit { id: ContentId(h.id), name: h.name, size: h.size, collection: h.collection, peer, addrs })
}

struct Driver {
    topology: Topology,
    me: PeerId,
    store: Arc<Store>,
    net: Network,
    net_events: broadcast::Receiver<NetEvent>,
    node_events: Subscription,
    first_hit: prometheus_client::metrics::histogram::Histogram,
    tasks: Tasks,
    links: Links,
    flood: Flood<PeerId>,
    subs: HashMap<SearchId, mpsc::Sender<SearchEvent>>,
    /// Connected peers we were introduced to: overlay neighbour candidates.
    introduced: HashSet<PeerId>,
    /// Introduced peers that did not become neighbours: when to ask again, and how many asks failed.
    retry: HashMap<PeerId, (Instant, u32)>,
    my_addrs: Vec<Vec<u8>>,
    published: Arc<tokio::sync::Mutex<BTreeSet<Vec<u8>>>>,
    shared: Arc<Shared>,
    internal: mpsc::Sender<Internal>,
    searches: u64,
    hits: u64,
    /// Index servers to register with (`hybrid`), and which are connected.
    servers: HashMap<PeerId, Multiaddr>,
    servers_up: HashSet<PeerId>,
    /// Share lists of other peers, when this peer is an index server.
    registry: Option<Registry<PeerId>>,
    /// Where an index server sends registry changes to be saved.
    saver: Option<mpsc::Sender<Vec<RegistryRow>>>,
    /// Our share list as the index servers have it.
    told: BTreeMap<WireId, IndexEntry>,
    refresh: Duration,
    last_refresh: Instant,
    last_redial: Instant,
    /// The supernode layer (`supernode` topology); the router then lives inside it.
    sup: Option<Supernode<PeerId>>,
    super_capable: bool,
    max_connections: Option<u32>,
    connected: HashSet<PeerId>,
}

/// An introduced peer that did not become a neighbour is asked again after 1 s, then after twice as long
/// each time, up to this: a link lost to a passing fault (a stream that could not be opened on a busy
/// machine, say) heals within seconds, and a peer that is full is not asked at every tick.
const RETRY_MAX: Duration = Duration::from_secs(30);

fn retry_after(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(5)).min(RETRY_MAX)
}

impl Driver {
    async fn run(
        mut self,
        mut cmds: mpsc::Receiver<Cmd>,
        mut links: mpsc::Receiver<LinkEvent>,
        mut internal: mpsc::Receiver<Internal>,
    ) {
        if self.topology == Topology::Structured {
            self.publish_keywords();
        }
        if self.sup.is_some() {
            self.read_list(ListFor::Digest);
        }
        // Peers met before this task subscribed to network events (bootstrap dials are quick on loopback).
        for p in self.net.peers().await.unwrap_or_default() {
            self.on_net(NetEvent::PeerConnected { peer: p.peer, introduced: p.introduced });
            if let Some(agent) = p.agent {
                self.on_net(NetEvent::Identified { peer: p.peer, agent });
            }
        }
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    None => break,
                    Some(Cmd::Start { req, tx }) => self.start(req, tx),
                },
                ev = self.node_events.recv() => match ev {
                    // Missed events may have been share changes: re-read the list to be sure.
                    Some(Event::Transfer(TransferEvent::ShareAdded { .. } | TransferEvent::ShareRemoved { .. }))
                    | Some(Event::Feed(FeedEvent::Lost { .. })) => self.shares_changed(),
                    Some(_) => {}
                    None => break,
                },
                Some(ev) = links.recv() => match ev {
                    LinkEvent::Msg(from, SearchMsg::Publish { reset, addrs, entries }) => {
                        if let Some(r) = self.registry.as_mut()
                            && r.on_publish(from, reset, addrs, entries, Instant::now()) == registry::Outcome::Full
                        {
                            tracing::warn!(peer = %from, "index full: a peer's share list was refused");
                        }
                    }
                    LinkEvent::Msg(from, SearchMsg::Withdraw { ids }) => {
                        if let Some(r) = self.registry.as_mut() {
                            r.on_withdraw(&from, &ids, Instant::now());
                        }
                    }
                    LinkEvent::Msg(from, SearchMsg::Role { supernode, supers }) => {
                        if let Some(sup) = self.sup.as_mut() {
                            let role = if supernode { Role::Super } else { Role::Leaf };
                            let list = supers
                                .into_iter()
                                .filter_map(|p| Some((PeerId::from_bytes(&p.peer).ok()?, p.addrs)))
                                .collect();
                            let acts = sup.on_role(from, role, list, Instant::now());
                            self.exec_super(acts);
                        }
                    }
                    LinkEvent::Msg(from, msg) => {
                        if let Some(sup) = self.sup.as_mut() {
                            let acts = sup.on_message(from, msg, Instant::now());
                            self.exec_super(acts);
                        } else {
                            let acts = self.flood.on_message(from, msg, Instant::now());
                            self.exec(acts);
                        }
                    }
                    LinkEvent::Closed(peer) => {
                        self.links.forget(&peer);
                        // Supernode links follow connections (PeerDisconnected), not one failed stream.
                        if self.sup.is_none() {
                            let acts = self.flood.peer_gone(&peer);
                            self.exec(acts);
                        }
                    }
                },
                ev = self.net_events.recv() => match ev {
                    Ok(ev) => self.on_net(ev),
                    Err(broadcast::error::RecvError::Lagged(n)) => tracing::debug!(n, "search driver missed network events"),
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                Some(int) = internal.recv() => match int {
                    Internal::Answer { qid, hits } => {
                        if let Some(sup) = self.sup.as_mut() {
                            let acts = sup.on_local_hits(qid, hits, Instant::now());
                            self.exec_super(acts);
                        } else {
                            let acts = self.flood.on_local_hits(qid, hits, Instant::now());
                            self.exec(acts);
                        }
                    }
                    Internal::DhtFound { sid, peer } => {
                        if peer != self.me && self.subs.contains_key(&sid) {
                            let acts = self.flood.ask(sid, peer);
                            self.exec(acts);
                        }
                    }
                    Internal::Entries { entries, why } => self.send_list(entries, why),
                },
                _ = tick.tick() => self.on_tick(),
            }
            // Counters are read by status and /metrics at any time: keep them current.
            self.share_counters();
        }
        tracing::debug!("search driver stopped");
    }

    /// Our shares changed: tell the DHT, the index servers or our supernodes, as the topology wants.
    fn shares_changed(&mut self) {
        if self.topology == Topology::Structured {
            self.publish_keywords();
        }
        if !self.servers.is_empty() {
            self.read_list(ListFor::Changed);
        }
        if self.sup.is_some() {
            self.read_list(ListFor::Digest);
        }
    }

    /// Pure and hybrid keep an overlay (hybrid floods over it when no index server answers).
    fn overlay(&self) -> bool {
        self.topology.keeps_overlay()
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        let acts = self.flood.poll(now);
        self.exec(acts);
        // Spare capacity: under half the connection cap.
        let spare = self.max_connections.is_none_or(|m| (self.connected.len() as u64) * 2 < u64::from(m));
        let capable = self.super_capable && spare;
        if let Some(sup) = self.sup.as_mut() {
            sup.set_capable(capable);
            let acts = sup.poll(now);
            self.exec_super(acts);
        }
        if let Some(r) = self.registry.as_mut() {
            let gone = r.expire(now);
            if !gone.is_empty() {
                tracing::info!(peers = gone.len(), "index: forgot peers not heard from");
            }
            let changed = r.take_dirty(now);
            if !changed.is_empty()
                && let Some(tx) = &self.saver
            {
                let unix_ms = unix_ms();
                let rows = changed
                    .into_iter()
                    .map(|(p, s)| match s {
                        Some((saved, age)) => RegistryRow {
                            peer: p.to_bytes(),
                            saved: postcard::to_stdvec(&saved).ok(),
                            heard_at_ms: unix_ms - age.as_millis() as i64,
                        },
                        None => RegistryRow { peer: p.to_bytes(), saved: None, heard_at_ms: unix_ms },
                    })
                    .collect();
                if tx.try_send(rows).is_err() {
                    tracing::warn!("index: saving falls behind; a restart may lose recent changes");
                }
            }
        }
        if !self.servers.is_empty() {
            if now.duration_since(self.last_refresh) >= self.refresh {
                self.last_refresh = now;
                self.read_list(ListFor::Refresh);
            }
            if now.duration_since(self.last_redial) >= REDIAL_EVERY && self.servers_up.len() < self.servers.len() {
                self.last_redial = now;
                for (p, addr) in &self.servers {
                    if !self.servers_up.contains(p) {
                        let (net, addr) = (self.net.clone(), addr.clone());
                        self.tasks.spawn(async move {
                            let _ = net.dial(addr).await;
                        });
                    }
                }
            }
        }
        if self.overlay() && self.flood.wants_neighbours() {
            let candidates: Vec<PeerId> = self
                .introduced
                .iter()
                .filter(|p| {
                    !self.flood.is_neighbour(p)
                        && !self.servers.contains_key(p)
                        && self.retry.get(p).is_none_or(|(at, _)| now >= *at)
                })
                .copied()
                .collect();
            for p in candidates {
                let acts = self.flood.join(p, now);
                self.exec(acts);
            }
        }
        if self.overlay() {
            // Introduced peers that are neither neighbours nor being asked refused, or the link failed, or
            // the ask timed out: back off before asking again (see `retry_after`).
            let (flood, introduced) = (&self.flood, &self.introduced);
            self.retry.retain(|p, _| introduced.contains(p) && !flood.is_neighbour(p));
            for p in introduced.iter().filter(|p| !flood.is_neighbour(p) && !flood.is_joining(p)) {
                let e = self.retry.entry(*p).or_insert((now, 0));
                if now >= e.0 {
                    e.1 += 1;
                    e.0 = now + retry_after(e.1);
                }
            }
        }
    }

    fn share_counters(&self) {
        let mut c = shoal_store::lock(&self.shared.counters);
        *c = SearchCounters {
            searches: self.searches,
            hits: self.hits,
            neighbours: match &self.sup {
                Some(s) => s.supers().count(),
                None => self.flood.neighbours().count(),
            },
            role: self.sup.as_ref().map(Supernode::role),
            leaves: self.sup.as_ref().map_or(0, |s| s.leaves().count()),
            supers: self.sup.as_ref().map_or_else(Vec::new, |s| s.supers().map(|p| p.to_string()).collect()),
            index_servers_up: self.servers_up.len(),
            index_peers: self.registry.as_ref().map_or(0, Registry::peers),
            index_entries: self.registry.as_ref().map_or(0, Registry::entries),
            router: match &self.sup {
                Some(s) => s.flood().counters().clone(),
                None => self.flood.counters().clone(),
            },
        };
    }

    fn on_net(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::PeerConnected { peer, .. } if self.sup.is_some() => {
                self.connected.insert(peer);
                if let Some(sup) = self.sup.as_mut() {
                    let acts = sup.peer_up(peer);
                    self.exec_super(acts);
                }
            }
            NetEvent::PeerConnected { peer, .. } if self.servers.contains_key(&peer) => {
                tracing::info!(%peer, "index server connected: registering our shares");
                self.servers_up.insert(peer);
                self.read_list(ListFor::Connected(peer));
            }
            NetEvent::PeerConnected { peer, introduced } if introduced && self.overlay() => {
                self.introduced.insert(peer);
                let acts = self.flood.join(peer, Instant::now());
                self.exec(acts);
            }
            NetEvent::PeerDisconnected { peer } => {
                if self.servers_up.remove(&peer) {
                    tracing::warn!(%peer, "index server unreachable: searches fall back to flooding until it is back");
                }
                self.introduced.remove(&peer);
                self.connected.remove(&peer);
                self.links.forget(&peer);
                if let Some(sup) = self.sup.as_mut() {
                    let acts = sup.peer_gone(&peer, Instant::now());
                    self.exec_super(acts);
                } else {
                    let acts = self.flood.peer_gone(&peer);
                    self.exec(acts);
                }
            }
            NetEvent::Identified { peer, agent } => {
                let theirs = agent.split_whitespace().find_map(|w| w.strip_prefix("topology="));
                let ours = self.topology.to_string();
                if let Some(theirs) = theirs.filter(|t| *t != ours) {
                    tracing::warn!(%peer, theirs, ours, "peer runs another topology: searches will not reach through it; \
                        every peer of a network must use the same `topology` setting");
                    shoal_store::lock(&self.shared.mismatches).insert(peer, theirs.to_string());
                }
            }
            _ => {}
        }
    }

    fn start(&mut self, req: SearchRequest, tx: mpsc::Sender<SearchEvent>) {
        self.searches += 1;
        let now = Instant::now();
        let (q, limit, timeout) = (req.query.clone(), req.limit, req.timeout);
        let route = self.topology.route(!self.servers_up.is_empty());
        if self.topology.has_index_servers() && route == Route::Flood {
            tracing::warn!("no index server answers: flooding this search to the overlay instead");
        }
        let sid = match route {
            Route::Supernode => {
                let Some(sup) = self.sup.as_mut() else { return };
                let (sid, acts) = sup.start(q, limit, timeout, now);
                self.subs.insert(sid, tx.clone());
                self.exec_super(acts);
                sid
            }
            Route::Dht | Route::IndexServers => self.flood.start_direct(q, limit, timeout, now),
            Route::Flood => {
                let (sid, acts) = self.flood.start(q, limit, timeout, now);
                self.exec(acts);
                sid
            }
        };
        self.subs.insert(sid, tx);
        match route {
            Route::IndexServers => {
                let servers: Vec<PeerId> = self.servers_up.iter().copied().collect();
                for s in servers {
                    let acts = self.flood.ask(sid, s);
                    self.exec(acts);
                }
            }
            Route::Dht => self.ask_dht(sid, &req.query.want),
            Route::Flood | Route::Supernode => {}
        }
    }

    /// Structured: finds the peers the DHT names for the query's most selective word (or the id) and asks
    /// each, one hop.
    fn ask_dht(&mut self, sid: SearchId, want: &Want) {
        let key = match want {
            Want::Words(t) => dht::lookup_word(t).map(|w| dht::keyword_key(&w)),
            Want::Id(id) => Some(id.to_vec()),
        };
        let Some(key) = key else { return };
        let (net, internal) = (self.net.clone(), self.internal.clone());
        self.tasks.spawn(async move {
            let Ok(mut rx) = net.find_providers(key).await else { return };
            while let Some(peer) = rx.recv().await {
                if internal.send(Internal::DhtFound { sid, peer }).await.is_err() {
                    return;
                }
            }
        });
    }

    fn exec(&mut self, actions: Vec<Action<PeerId>>) {
        for a in actions {
            match a {
                Action::Send { to, msg } => self.links.send(to, msg),
                Action::Answer { qid, query } => self.answer(qid, query),
                Action::Deliver { search, hits, .. } => {
                    let Some(tx) = self.subs.get(&search) else { continue };
                    let mut gone = false;
                    for h in hits.into_iter().filter_map(found_hit) {
                        self.hits += 1;
                        match tx.try_send(SearchEvent::Hit(h)) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                tracing::debug!("search reader is slow: hit dropped")
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => gone = true,
                        }
                    }
                    if gone {
                        // Nobody reads this search any more: end it.
                        self.subs.remove(&search);
                        if let Some(sup) = self.sup.as_mut() {
                            let acts = sup.cancel(search, Instant::now());
                            self.exec_super(acts);
                        } else {
                            let acts = self.flood.cancel(search, Instant::now());
                            self.exec(acts);
                        }
                    }
                }
                Action::Finished { search, stats } => {
                    if let Some(d) = stats.first_hit {
                        self.first_hit.observe(d.as_secs_f64());
                    }
                    if let Some(tx) = self.subs.remove(&search) {
                        self.tasks.spawn(async move {
                            let _ = tx.send(SearchEvent::Done(stats)).await;
                        });
                    }
                }
                Action::NeighbourUp(p) => tracing::info!(peer = %p, "search neighbour up"),
                Action::NeighbourDown(p) => tracing::info!(peer = %p, "search neighbour down"),
                Action::Throttled(p) => tracing::warn!(peer = %p, "peer sends queries too fast: dropping some"),
            }
        }
    }

    /// Carries out what the supernode layer asks for.
    fn exec_super(&mut self, actions: Vec<SuperAction<PeerId>>) {
        for a in actions {
            match a {
                SuperAction::Flood(a) => self.exec(vec![a]),
                SuperAction::SendRole { to, role, supers } => {
                    let supers = supers.into_iter().map(|(p, addrs)| Provider { peer: p.to_bytes(), addrs }).collect();
                    self.links.send(to, SearchMsg::Role { supernode: role == Role::Super, supers });
                }
                SuperAction::Dial { peer, addrs } => {
                    let addrs: Vec<Multiaddr> = addrs.into_iter().filter_map(|a| Multiaddr::try_from(a).ok()).collect();
                    let net = self.net.clone();
                    self.tasks.spawn(async move {
                        let _ = net.connect(peer, addrs).await;
                    });
                }
                SuperAction::Promoted => tracing::info!("promoted to supernode: carrying searches for leaves"),
                SuperAction::Demoted => tracing::info!("stepped down to leaf: too few leaves, other supernodes around"),
            }
        }
    }

    /// Looks `query` up in the local index off the async threads (and in the registry, on an index server);
    /// hits go back to the router.
    fn answer(&mut self, qid: u64, query: Query) {
        if let Some(r) = &self.registry {
            let hits: Vec<Hit> = r
                .search(&query, MAX_LOCAL_HITS)
                .into_iter()
                .map(|(p, addrs, e)| Hit {
                    id: e.id,
                    name: e.name.clone(),
                    size: e.size,
                    collection: e.collection,
                    provider: Provider { peer: p.to_bytes(), addrs: addrs.to_vec() },
                })
                .collect();
            if !hits.is_empty() {
                let acts = self.flood.on_local_hits(qid, hits, Instant::now());
                self.exec(acts);
            }
        }
        let (store, internal) = (self.store.clone(), self.internal.clone());
        let provider = Provider { peer: self.me.to_bytes(), addrs: self.my_addrs.clone() };
        self.tasks.spawn(async move {
            let found = tokio::task::spawn_blocking(move || store.search_local(&query, MAX_LOCAL_HITS)).await;
            let hits: Vec<Hit> = match found {
                Ok(Ok(v)) => v
                    .into_iter()
                    .map(|h| Hit {
                        id: *h.id.as_bytes(),
                        name: h.name,
                        size: h.size,
                        collection: h.collection,
                        provider: provider.clone(),
                    })
                    .collect(),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "local search failed");
                    return;
                }
                Err(_) => return,
            };
            if !hits.is_empty() {
                let _ = internal.send(Internal::Answer { qid, hits }).await;
            }
        });
    }

    /// Reads our share list off the async threads, for the index servers.
    fn read_list(&self, why: ListFor) {
        let (store, internal) = (self.store.clone(), self.internal.clone());
        self.tasks.spawn(async move {
            let entries = match tokio::task::spawn_blocking(move || store.indexed_entries()).await {
                Ok(Ok(v)) => v
                    .into_iter()
                    .map(|h| IndexEntry { id: *h.id.as_bytes(), name: h.name, size: h.size, collection: h.collection })
                    .collect(),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot read the local index for the index servers");
                    return;
                }
                Err(_) => return,
            };
            let _ = internal.send(Internal::Entries { entries, why }).await;
        });
    }

    /// Sends our list (whole, or what changed) to the index servers, or our digest to our supernodes.
    fn send_list(&mut self, entries: Vec<IndexEntry>, why: ListFor) {
        if let ListFor::Digest = why {
            let mut d = Digest::new();
            for e in &entries {
                d.insert_name(&e.name);
                d.insert_id(&e.id);
            }
            if let Some(sup) = self.sup.as_mut() {
                let acts = sup.set_digest(d);
                self.exec_super(acts);
            }
            return;
        }
        let now: BTreeMap<WireId, IndexEntry> = entries.into_iter().map(|e| (e.id, e)).collect();
        let (to, msgs): (Vec<PeerId>, Vec<SearchMsg>) = match why {
            ListFor::Connected(to) => (vec![to], policy::full_list(&self.my_addrs, &now)),
            ListFor::Refresh => (self.servers_up.iter().copied().collect(), policy::full_list(&self.my_addrs, &now)),
            ListFor::Changed => {
                (self.servers_up.iter().copied().collect(), policy::changes(&self.my_addrs, &self.told, &now))
            }
            ListFor::Digest => (Vec::new(), Vec::new()),
        };
        for to in to {
            for m in &msgs {
                self.links.send(to, m.clone());
            }
        }
        self.told = now;
    }

    /// Announces the keys of the names shared now and withdraws those of names no longer shared.
    fn publish_keywords(&self) {
        let (store, net, published) = (self.store.clone(), self.net.clone(), self.published.clone());
        self.tasks.spawn(async move {
            // One update at a time, in order: the lock is held across the announcements.
            let mut published = published.lock().await;
            let names = match tokio::task::spawn_blocking(move || store.indexed_names()).await {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot read the local index to publish keywords");
                    return;
                }
                Err(_) => return,
            };
            let want = dht::keys_for_names(&names);
            for gone in published.difference(&want) {
                let _ = net.unprovide(gone.clone()).await;
            }
            for new in want.difference(&published) {
                if let Err(e) = net.provide(new.clone()).await {
                    tracing::warn!(error = %e, "cannot announce a keyword in the DHT");
                }
            }
            tracing::debug!(keys = want.len(), "keywords announced in the DHT");
            *published = want;
        });
    }
}
