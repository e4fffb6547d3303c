//! The search driver: the one task that owns the router and carries out its actions.
//!
//! The driver is the executor: it owns the flooding router (or the supernode core that wraps it), the links
//! and the searches started here, and carries out their actions. What each role of the topology keeps
//! lives in its own module: [`overlay`](super::overlay) (neighbour candidates and back-off, `pure` and
//! `hybrid`), [`index_client`](super::index_client) (our index servers and the list they have from us),
//! [`index_server`](super::index_server) (other peers' lists, when we are one), [`supernode`](super::supernode)
//! (the core's settings and our capacity), [`dht`](super::dht) (keyword keys, `structured`). How a search
//! starts is `shoal_proto::search::policy`, shared with the simulator.
//!
//! Why this file stays over 600 lines: what is left here is the one `select!` loop and the thin methods that
//! hand each event to the role that owns it (router or supernode core) and carry out the actions; every
//! method reads or writes the driver's own fields, so splitting them off would pass the whole driver to
//! each piece. State of a role goes to that role's module, not here.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use shoal_net::{NetEvent, Network};
use shoal_proto::search::digest::Digest;
use shoal_proto::search::flood::{Action, Config as FloodConfig};
use shoal_proto::search::policy::Route;
use shoal_proto::search::supernode::{Role, SuperAction, Supernode};
use shoal_proto::search::{Flood, Hit, IndexEntry, Provider, Query, SearchId, SearchMsg, Want};
use shoal_store::{MAX_LOCAL_HITS, Store};
use tokio::sync::{broadcast, mpsc};

use super::dht::Keywords;
use super::index_client::{IndexClient, ListFor};
use super::index_server::IndexServer;
use super::links::{LinkEvent, Links};
use super::overlay::Overlay;
use super::supernode::Capacity;
use super::{SearchCounters, SearchEvent, SearchRequest, dht, encode_addrs, found_hit};
use crate::blocking::blocking;
use crate::config::{SearchConfig, Topology};
use crate::events::{Event, Events, FeedEvent, Subscription};
use crate::service::Tasks;
use crate::transfer::Event as TransferEvent;

/// Commands from the node.
pub(crate) enum Cmd {
    Start {
        req: SearchRequest,
        tx: mpsc::Sender<SearchEvent>,
    },
    /// The ids we answer for besides our shares changed ([`Shared::provided`]): our supernodes need a new
    /// digest.
    ProvidedChanged,
}

/// Peers of another topology remembered for `status`.
const MAX_MISMATCHES: usize = 64;

/// What the node reads from the driver.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) counters: Mutex<SearchCounters>,
    /// Peers that run another topology, with theirs.
    pub(crate) mismatches: Mutex<BTreeMap<PeerId, String>>,
    /// Ids other services make us answer provider lookups for, besides our shares (at most
    /// [`MAX_PROVIDED`]): a holder's mailbox ids, so that a recipient finds who keeps its letters.
    pub(crate) provided: Mutex<std::collections::HashSet<shoal_proto::search::messages::WireId>>,
}

/// Ids answered for besides our shares, at most.
pub(crate) const MAX_PROVIDED: usize = 4096;

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
    let index = IndexClient::new(&parts.config.index_servers, parts.config.refresh, Instant::now());
    let server = match parts.config.index_server {
        true => Some(IndexServer::start(parts.config.expire, &parts.store, &parts.tasks).await),
        false => None,
    };
    let (int_tx, int_rx) = mpsc::channel(1024);
    let my_addrs = encode_addrs(&my_addrs);
    let sup = (parts.topology == Topology::Supernode)
        .then(|| super::supernode::core(&parts.config, parts.net.peer_id(), my_addrs.clone(), parts.key.clone()));
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
        overlay: Overlay::default(),
        my_addrs,
        sup,
        capacity: Capacity::new(parts.config.supernode_capable, parts.max_connections),
        keywords: Keywords::default(),
        shared: shared.clone(),
        internal: int_tx,
        searches: 0,
        hits: 0,
        index,
        server,
    };
    parts.tasks.spawn(d.run(cmd_rx, link_rx, int_rx));
    (cmd_tx, shared, link_tx)
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
    /// Overlay role: neighbour candidates (`pure`, `hybrid`).
    overlay: Overlay,
    my_addrs: Vec<Vec<u8>>,
    /// DHT role: the keyword keys we announce (`structured`).
    keywords: Keywords,
    shared: Arc<Shared>,
    internal: mpsc::Sender<Internal>,
    searches: u64,
    hits: u64,
    /// Index client role: our index servers (`hybrid`).
    index: IndexClient,
    /// Index server role: other peers' share lists, when this peer is an index server.
    server: Option<IndexServer>,
    /// The supernode layer (`supernode` topology); the router then lives inside it.
    sup: Option<Supernode<PeerId>>,
    /// Supernode role: whether this peer could carry the load.
    capacity: Capacity,
}

impl Driver {
    async fn run(
        mut self,
        mut cmds: mpsc::Receiver<Cmd>,
        mut links: mpsc::Receiver<LinkEvent>,
        mut internal: mpsc::Receiver<Internal>,
    ) {
        if self.topology.runs_dht() {
            self.keywords.publish(self.store.clone(), self.net.clone(), &self.tasks);
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
                    Some(Cmd::ProvidedChanged) => {
                        if self.sup.is_some() {
                            self.read_list(ListFor::Digest);
                        }
                    }
                },
                ev = self.node_events.recv() => match ev.as_deref() {
                    // Missed events may have been share changes: re-read the list to be sure.
                    Some(Event::Transfer(TransferEvent::ShareAdded { .. } | TransferEvent::ShareRemoved { .. }))
                    | Some(Event::Feed(FeedEvent::Lost { .. })) => self.shares_changed(),
                    Some(_) => {}
                    None => break,
                },
                Some(ev) = links.recv() => match ev {
                    LinkEvent::Msg(from, SearchMsg::Publish { reset, addrs, entries }) => {
                        if let Some(r) = self.server.as_mut() {
                            r.on_publish(from, reset, addrs, entries);
                        }
                    }
                    LinkEvent::Msg(from, SearchMsg::Withdraw { ids }) => {
                        if let Some(r) = self.server.as_mut() {
                            r.on_withdraw(&from, &ids);
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
                        self.index.stream_broke(peer, Instant::now());
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
                    Internal::Answer { qid, hits } => self.local_hits(qid, hits),
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
        if self.topology.runs_dht() {
            self.keywords.publish(self.store.clone(), self.net.clone(), &self.tasks);
        }
        if self.index.has_servers() {
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
        let capable = self.capacity.capable();
        if let Some(sup) = self.sup.as_mut() {
            sup.set_capable(capable);
            let acts = sup.poll(now);
            self.exec_super(acts);
        }
        if let Some(r) = self.server.as_mut() {
            r.tick(now);
        }
        let due = self.index.tick(now);
        if due.refresh {
            self.read_list(ListFor::Refresh);
        }
        for server in due.resend {
            tracing::debug!(%server, "our stream to an index server broke: sending our whole list again");
            self.read_list(ListFor::Connected(server));
        }
        for addr in due.redial {
            let net = self.net.clone();
            self.tasks.spawn(async move {
                let _ = net.dial(addr).await;
            });
        }
        if self.overlay() {
            let index = &self.index;
            for p in self.overlay.candidates(&self.flood, |p| index.is_server(p), now) {
                let acts = self.flood.join(p, now);
                self.exec(acts);
            }
            self.overlay.back_off(&self.flood, now);
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
            index_servers_up: self.index.up_count(),
            index_peers: self.server.as_ref().map_or(0, IndexServer::peers),
            index_entries: self.server.as_ref().map_or(0, IndexServer::entries),
            router: match &self.sup {
                Some(s) => s.flood().counters().clone(),
                None => self.flood.counters().clone(),
            },
        };
    }

    fn on_net(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::PeerConnected { peer, .. } if self.sup.is_some() => {
                self.capacity.connected(peer);
                if let Some(sup) = self.sup.as_mut() {
                    let acts = sup.peer_up(peer);
                    self.exec_super(acts);
                }
            }
            NetEvent::PeerConnected { peer, .. } if self.index.is_server(&peer) => self.index_server_up(peer),
            NetEvent::PeerConnected { peer, introduced } if introduced && self.overlay() => {
                self.overlay.introduced(peer);
                let acts = self.flood.join(peer, Instant::now());
                self.exec(acts);
            }
            NetEvent::PeerDisconnected { peer } => {
                if self.index.disconnected(&peer) {
                    tracing::warn!(%peer, "index server unreachable: searches fall back to flooding until it is back");
                }
                self.overlay.gone(&peer);
                self.capacity.gone(&peer);
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
                    let mut m = shoal_store::lock(&self.shared.mismatches);
                    // Shown to the user as a warning: a few are enough, and strangers cannot grow the list.
                    if m.len() < MAX_MISMATCHES || m.contains_key(&peer) {
                        m.insert(peer, theirs.to_string());
                    }
                }
            }
            _ => {}
        }
    }

    /// One of our index servers connected: it gets our whole list (once per connection).
    fn index_server_up(&mut self, peer: PeerId) {
        if self.index.connected(peer) {
            tracing::info!(%peer, "index server connected: registering our shares");
            self.read_list(ListFor::Connected(peer));
        }
    }

    fn start(&mut self, req: SearchRequest, tx: mpsc::Sender<SearchEvent>) {
        self.searches += 1;
        let now = Instant::now();
        let (q, limit, timeout) = (req.query.clone(), req.limit, req.timeout);
        let route = self.topology.route(self.index.up_count() > 0);
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
                let servers: Vec<PeerId> = self.index.up().copied().collect();
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
        if let Some(r) = &self.server {
            let hits = r.search(&query);
            if !hits.is_empty() {
                let acts = self.flood.on_local_hits(qid, hits, Instant::now());
                self.exec(acts);
            }
        }
        let (store, internal) = (self.store.clone(), self.internal.clone());
        let provider = Provider { peer: self.me.to_bytes(), addrs: self.my_addrs.clone() };
        if let Want::Id(id) = &query.want
            && shoal_store::lock(&self.shared.provided).contains(id)
        {
            // Not a file: no name, no size. Only a lookup of this exact id asks for it.
            let hit = Hit { id: *id, name: String::new(), size: 0, collection: false, provider: provider.clone() };
            self.local_hits(qid, vec![hit]);
        }
        self.tasks.spawn(async move {
            let found = blocking(move || store.search_local(&query, MAX_LOCAL_HITS)).await;
            let hits: Vec<Hit> = match found {
                Ok(v) => v
                    .into_iter()
                    .map(|h| Hit {
                        id: *h.id.as_bytes(),
                        name: h.name,
                        size: h.size,
                        collection: h.collection,
                        provider: provider.clone(),
                    })
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "local search failed");
                    return;
                }
            };
            if !hits.is_empty() {
                let _ = internal.send(Internal::Answer { qid, hits }).await;
            }
        });
    }

    /// What this peer found for query `qid`, to the router (inside the supernode layer when there is one).
    fn local_hits(&mut self, qid: u64, hits: Vec<Hit>) {
        if let Some(sup) = self.sup.as_mut() {
            let acts = sup.on_local_hits(qid, hits, Instant::now());
            self.exec_super(acts);
        } else {
            let acts = self.flood.on_local_hits(qid, hits, Instant::now());
            self.exec(acts);
        }
    }

    /// Reads our share list off the async threads, for the index servers.
    fn read_list(&self, why: ListFor) {
        let (store, internal) = (self.store.clone(), self.internal.clone());
        self.tasks.spawn(async move {
            let entries = match blocking(move || store.indexed_entries()).await {
                Ok(v) => v
                    .into_iter()
                    .map(|h| IndexEntry { id: *h.id.as_bytes(), name: h.name, size: h.size, collection: h.collection })
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the local index for the index servers");
                    return;
                }
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
            for id in shoal_store::lock(&self.shared.provided).iter() {
                d.insert_id(id);
            }
            if let Some(sup) = self.sup.as_mut() {
                let acts = sup.set_digest(d);
                self.exec_super(acts);
            }
            return;
        }
        for (to, msg) in self.index.messages(&self.my_addrs, entries, why) {
            self.links.send(to, msg);
        }
    }
}
