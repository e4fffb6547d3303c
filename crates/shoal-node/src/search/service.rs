//! [`Search`]: the search service on the node's seam (see [`crate::service`]).
//!
//! It owns the search driver (one task, [`super::driver`]) and answers `/shoal/search/1` streams: each one
//! is read on its own task and its messages go to the driver. A peer needs one stream to us (its outbound
//! link); it may hold [`STREAMS_PER_PEER`] at once, more are closed at once. It finds things in the way the topology
//! finds them, including the providers of a content id for downloads.

use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol};
use shoal_net::Network;
use shoal_store::ContentId;
use tokio::sync::mpsc;

use super::driver::{self, Cmd, Shared};
use super::links::{self, LinkEvent};
use super::{SearchCounters, SearchEvent, SearchRequest, SearchStream};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::NodeError;
use crate::config::Topology;
use crate::metrics::{counter, gauge};
use crate::service::{Context, PeerSlots, Service, Start, Tasks};

/// Inbound search streams one peer may have open at once (it needs one; the others cover reconnects whose
/// old stream has not ended yet).
pub(crate) const STREAMS_PER_PEER: usize = 4;

/// The search figures, read at every scrape.
#[derive(Debug)]
struct SearchMetrics(Arc<Shared>);

impl Collector for SearchMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let c = shoal_store::lock(&self.0.counters).clone();
        counter(&mut enc, "shoal_searches", "Searches started on this peer", c.searches)?;
        counter(&mut enc, "shoal_search_hits", "Hits delivered to searches started here", c.hits)?;
        gauge(
            &mut enc,
            "shoal_search_neighbours",
            "Overlay neighbours (pure and hybrid topologies)",
            c.neighbours as i64,
        )?;
        let r = &c.router;
        counter(&mut enc, "shoal_search_queries_received", "Queries received from other peers", r.queries_received)?;
        counter(&mut enc, "shoal_search_duplicate_queries", "Queries dropped as already seen", r.duplicates)?;
        counter(&mut enc, "shoal_search_throttled_queries", "Queries dropped: sender over its rate", r.throttled)?;
        counter(
            &mut enc,
            "shoal_search_queries_sent",
            "Query messages sent (originated or forwarded)",
            r.queries_sent,
        )?;
        counter(&mut enc, "shoal_search_hit_messages_sent", "Hit messages sent (answered or routed back)", r.hits_sent)
    }
}

/// The search service.
pub struct Search {
    topology: Topology,
    net: Network,
    tasks: Tasks,
    cmds: mpsc::Sender<Cmd>,
    shared: Arc<Shared>,
    links: mpsc::Sender<LinkEvent>,
    inbound: PeerSlots,
}

impl Start for Search {
    async fn start(ctx: Context) -> Result<Self, NodeError> {
        let (cmds, shared, links) = driver::spawn(driver::Parts {
            topology: ctx.config.topology,
            config: ctx.config.search.clone(),
            store: ctx.store.clone(),
            net: ctx.net.clone(),
            key: crate::blocking::os_secret(),
            max_connections: ctx.config.net.max_connections,
            tasks: ctx.tasks.clone(),
            events: ctx.events.clone(),
            first_hit: ctx.metrics.search_first_hit_seconds.clone(),
        })
        .await;
        ctx.metrics.register_collector(SearchMetrics(shared.clone()));
        let inbound = PeerSlots::new(STREAMS_PER_PEER);
        Ok(Self { topology: ctx.config.topology, net: ctx.net, tasks: ctx.tasks, cmds, shared, links, inbound })
    }
}

impl Service for Search {
    fn name(&self) -> &'static str {
        "search"
    }

    fn protocols(&self) -> Vec<StreamProtocol> {
        vec![super::PROTOCOL]
    }

    fn accept(&self, _protocol: &StreamProtocol, peer: PeerId, stream: Stream) {
        let Some(slot) = self.inbound.take(peer) else {
            tracing::debug!(%peer, "peer opened more than {STREAMS_PER_PEER} search streams; closing the new one");
            return;
        };
        let links = self.links.clone();
        self.tasks.spawn(async move {
            let _slot = slot;
            links::read_loop(peer, stream, links).await;
        });
    }

    fn status(&self) -> serde_json::Value {
        serde_json::to_value(self.counters()).unwrap_or_default()
    }
}

impl Search {
    /// Starts a search, in the way the topology searches. Dropping the stream cancels it.
    pub async fn search(&self, req: SearchRequest) -> Result<SearchStream, NodeError> {
        let (tx, rx) = mpsc::channel(1024);
        self.cmds.send(Cmd::Start { req, tx }).await.map_err(|_| NodeError::SearchStopped)?;
        Ok(SearchStream { rx })
    }

    /// Peers that have `id`, found the way the topology finds things (the DHT's provider records in
    /// `structured`, a search for the id otherwise), with the addresses they gave when known.
    pub async fn find_providers(&self, id: ContentId) -> Result<mpsc::Receiver<(PeerId, Vec<Multiaddr>)>, NodeError> {
        let (tx, rx) = mpsc::channel(64);
        if self.topology == Topology::Structured {
            let mut found = self.net.find_providers(id.as_bytes().to_vec()).await?;
            self.tasks.spawn(async move {
                while let Some(p) = found.recv().await {
                    if tx.send((p, Vec::new())).await.is_err() {
                        return;
                    }
                }
            });
        } else {
            let req = SearchRequest {
                query: shoal_proto::search::Query::id(*id.as_bytes()),
                limit: 32,
                timeout: Duration::from_secs(8),
            };
            let mut stream = self.search(req).await?;
            self.tasks.spawn(async move {
                while let Some(SearchEvent::Hit(h)) = stream.next().await {
                    if h.id == id && tx.send((h.peer, h.addrs)).await.is_err() {
                        return;
                    }
                }
            });
        }
        Ok(rx)
    }

    /// Makes this peer answer [`Search::find_providers`] for `id` although no share of ours has it (a
    /// holder's mailbox id: see `messaging/holders.rs`). In `structured` that is a provider record in the
    /// DHT; elsewhere this peer answers lookups of the id that reach it (and, as a leaf, its digest names
    /// the id so its supernodes ask it). False when [`MAX_PROVIDED`](super::driver::MAX_PROVIDED) ids are
    /// provided already.
    pub async fn provide(&self, id: ContentId) -> Result<bool, NodeError> {
        if self.topology == Topology::Structured {
            self.net.provide(id.as_bytes().to_vec()).await?;
            return Ok(true);
        }
        let added = {
            let mut set = shoal_store::lock(&self.shared.provided);
            if set.len() >= super::driver::MAX_PROVIDED && !set.contains(id.as_bytes()) {
                return Ok(false);
            }
            set.insert(*id.as_bytes())
        };
        if added {
            let _ = self.cmds.send(Cmd::ProvidedChanged).await;
        }
        Ok(true)
    }

    /// Stops answering for an id given to [`Search::provide`].
    pub async fn unprovide(&self, id: ContentId) -> Result<(), NodeError> {
        if self.topology == Topology::Structured {
            self.net.unprovide(id.as_bytes().to_vec()).await?;
            return Ok(());
        }
        if shoal_store::lock(&self.shared.provided).remove(id.as_bytes()) {
            let _ = self.cmds.send(Cmd::ProvidedChanged).await;
        }
        Ok(())
    }

    /// Search counters since start.
    pub fn counters(&self) -> SearchCounters {
        shoal_store::lock(&self.shared.counters).clone()
    }

    /// Peers met that run another topology (peer id, their topology).
    pub fn topology_mismatches(&self) -> Vec<(String, String)> {
        let m = shoal_store::lock(&self.shared.mismatches);
        m.iter().map(|(p, t)| (p.to_string(), t.clone())).collect()
    }
}
