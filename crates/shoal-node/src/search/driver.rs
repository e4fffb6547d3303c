//! The search driver: the one task that owns the router and carries out its actions.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use shoal_net::{NetEvent, Network};
use shoal_proto::search::flood::{Action, Config as FloodConfig};
use shoal_proto::search::{Flood, Hit, Provider, Query, SearchId, Want, messages::MAX_ADDRS};
use shoal_store::{ContentId, MAX_LOCAL_HITS, Store};
use tokio::sync::{broadcast, mpsc};

use super::links::{LinkEvent, Links};
use super::{FoundHit, SearchCounters, SearchEvent, SearchRequest, dht};
use crate::config::{SearchConfig, Topology};

/// Commands from the node.
pub(crate) enum Cmd {
    Start { req: SearchRequest, tx: mpsc::Sender<SearchEvent> },
    SharesChanged,
}

/// What the node reads from the driver.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) counters: Mutex<SearchCounters>,
    /// Peers that run another topology, with theirs.
    pub(crate) mismatches: Mutex<BTreeMap<PeerId, String>>,
}

enum Internal {
    Answer { qid: u64, hits: Vec<Hit> },
    DhtFound { sid: SearchId, peer: PeerId },
}

/// Everything the driver needs from the node.
pub(crate) struct Parts {
    pub(crate) topology: Topology,
    pub(crate) config: SearchConfig,
    pub(crate) store: Arc<Store>,
    pub(crate) net: Network,
    pub(crate) incoming: shoal_net::IncomingStreams,
    pub(crate) seed: u64,
}

/// Starts the driver; returns its command channel, what it shares and the task.
pub(crate) async fn spawn(
    parts: Parts,
) -> (mpsc::Sender<Cmd>, Arc<Shared>, tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>) {
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (link_tx, link_rx) = mpsc::channel(1024);
    let accept = tokio::spawn(super::links::accept_loop(parts.incoming, link_tx.clone()));
    let shared = Arc::new(Shared::default());
    let my_addrs = parts.net.listen_addrs().await.unwrap_or_default();
    let flood_cfg = FloodConfig {
        degree: parts.config.degree,
        ring: if parts.topology == Topology::Pure { parts.config.ring.clone() } else { vec![1] },
        ..FloodConfig::default()
    };
    let (int_tx, int_rx) = mpsc::channel(1024);
    let d = Driver {
        topology: parts.topology,
        me: parts.net.peer_id(),
        store: parts.store,
        links: Links::new(parts.net.streams(), link_tx),
        net_events: parts.net.subscribe(),
        net: parts.net,
        flood: Flood::new(flood_cfg, parts.seed),
        subs: HashMap::new(),
        introduced: HashSet::new(),
        refused: HashMap::new(),
        my_addrs: encode_addrs(&my_addrs),
        published: Arc::new(tokio::sync::Mutex::new(BTreeSet::new())),
        shared: shared.clone(),
        internal: int_tx,
        searches: 0,
        hits: 0,
    };
    let task = tokio::spawn(d.run(cmd_rx, link_rx, int_rx));
    (cmd_tx, shared, task, accept)
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
    links: Links,
    flood: Flood<PeerId>,
    subs: HashMap<SearchId, mpsc::Sender<SearchEvent>>,
    /// Connected peers we were introduced to: overlay neighbour candidates.
    introduced: HashSet<PeerId>,
    /// Peers that refused to be neighbours, and when (asked again later).
    refused: HashMap<PeerId, Instant>,
    my_addrs: Vec<Vec<u8>>,
    published: Arc<tokio::sync::Mutex<BTreeSet<Vec<u8>>>>,
    shared: Arc<Shared>,
    internal: mpsc::Sender<Internal>,
    searches: u64,
    hits: u64,
}

/// How long a refusing peer is left alone before it is asked to be a neighbour again.
const REFUSED_BACKOFF: Duration = Duration::from_secs(30);

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
        // Peers met before this task subscribed to network events (bootstrap dials are quick on loopback).
        for p in self.net.peers().await.unwrap_or_default() {
            self.on_net(NetEvent::PeerConnected { peer: p.peer, introduced: p.introduced });
        }
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    None => break,
                    Some(Cmd::Start { req, tx }) => self.start(req, tx),
                    Some(Cmd::SharesChanged) => {
                        if self.topology == Topology::Structured {
                            self.publish_keywords();
                        }
                    }
                },
                Some(ev) = links.recv() => match ev {
                    LinkEvent::Msg(from, msg) => {
                        let acts = self.flood.on_message(from, msg, Instant::now());
                        self.exec(acts);
                    }
                    LinkEvent::Closed(peer) => {
                        self.links.forget(&peer);
                        let acts = self.flood.peer_gone(&peer);
                        self.exec(acts);
                    }
                },
                ev = self.net_events.recv() => match ev {
                    Ok(ev) => self.on_net(ev),
                    Err(broadcast::error::RecvError::Lagged(n)) => tracing::debug!(n, "search driver missed network events"),
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                Some(int) = internal.recv() => match int {
                    Internal::Answer { qid, hits } => {
                        let acts = self.flood.on_local_hits(qid, hits, Instant::now());
                        self.exec(acts);
                    }
                    Internal::DhtFound { sid, peer } => {
                        if peer != self.me && self.subs.contains_key(&sid) {
                            let acts = self.flood.ask(sid, peer);
                            self.exec(acts);
                        }
                    }
                },
                _ = tick.tick() => self.on_tick(),
            }
        }
        tracing::debug!("search driver stopped");
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        let acts = self.flood.poll(now);
        self.exec(acts);
        if self.topology == Topology::Pure && self.flood.wants_neighbours() {
            self.refused.retain(|_, at| now.duration_since(*at) < REFUSED_BACKOFF);
            let candidates: Vec<PeerId> = self
                .introduced
                .iter()
                .filter(|p| !self.flood.is_neighbour(p) && !self.refused.contains_key(p))
                .copied()
                .collect();
            for p in candidates {
                let acts = self.flood.join(p);
                self.exec(acts);
            }
        }
        let mut c = self.shared.counters.lock().unwrap_or_else(|p| p.into_inner());
        *c = SearchCounters {
            searches: self.searches,
            hits: self.hits,
            neighbours: self.flood.neighbours().count(),
            router: self.flood.counters().clone(),
        };
    }

    fn on_net(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::PeerConnected { peer, introduced } if introduced && self.topology == Topology::Pure => {
                self.introduced.insert(peer);
                let acts = self.flood.join(peer);
                self.exec(acts);
            }
            NetEvent::PeerDisconnected { peer } => {
                self.introduced.remove(&peer);
                self.links.forget(&peer);
                let acts = self.flood.peer_gone(&peer);
                self.exec(acts);
            }
            NetEvent::Identified { peer, agent } => {
                let theirs = agent.split_whitespace().find_map(|w| w.strip_prefix("topology="));
                let ours = self.topology.to_string();
                if let Some(theirs) = theirs.filter(|t| *t != ours) {
                    tracing::warn!(%peer, theirs, ours, "peer runs another topology: searches will not reach through it; \
                        every peer of a network must use the same `topology` setting");
                    self.shared.mismatches.lock().unwrap_or_else(|p| p.into_inner()).insert(peer, theirs.to_string());
                }
            }
            _ => {}
        }
    }

    fn start(&mut self, req: SearchRequest, tx: mpsc::Sender<SearchEvent>) {
        self.searches += 1;
        let (sid, acts) = self.flood.start(req.query.clone(), req.limit, req.timeout, Instant::now());
        self.subs.insert(sid, tx);
        self.exec(acts);
        if self.topology == Topology::Structured {
            let key = match &req.query.want {
                Want::Words(t) => dht::lookup_word(t).map(|w| dht::keyword_key(&w)),
                Want::Id(id) => Some(id.to_vec()),
            };
            let Some(key) = key else { return };
            let (net, internal) = (self.net.clone(), self.internal.clone());
            tokio::spawn(async move {
                let Ok(mut rx) = net.find_providers(key).await else { return };
                while let Some(peer) = rx.recv().await {
                    if internal.send(Internal::DhtFound { sid, peer }).await.is_err() {
                        return;
                    }
                }
            });
        }
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
                        let acts = self.flood.cancel(search, Instant::now());
                        self.exec(acts);
                    }
                }
                Action::Finished { search, stats } => {
                    if let Some(tx) = self.subs.remove(&search) {
                        tokio::spawn(async move {
                            let _ = tx.send(SearchEvent::Done(stats)).await;
                        });
                    }
                }
                Action::NeighbourUp(p) => tracing::info!(peer = %p, "search neighbour up"),
                Action::NeighbourDown(p) => tracing::info!(peer = %p, "search neighbour down"),
                Action::Throttled(p) => tracing::warn!(peer = %p, "peer sends queries too fast: dropping some"),
            }
        }
        // Refused joins: remember them so the tick does not ask again at once.
        let now = Instant::now();
        for p in self.introduced.iter().filter(|p| !self.flood.is_neighbour(p)) {
            if !self.flood.is_joining(p) {
                self.refused.entry(*p).or_insert(now);
            }
        }
    }

    /// Looks `query` up in the local index off the async threads; hits go back to the router.
    fn answer(&self, qid: u64, query: Query) {
        let (store, internal) = (self.store.clone(), self.internal.clone());
        let provider = Provider { peer: self.me.to_bytes(), addrs: self.my_addrs.clone() };
        tokio::spawn(async move {
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

    /// Announces the keys of the names shared now and withdraws those of names no longer shared.
    fn publish_keywords(&self) {
        let (store, net, published) = (self.store.clone(), self.net.clone(), self.published.clone());
        tokio::spawn(async move {
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
