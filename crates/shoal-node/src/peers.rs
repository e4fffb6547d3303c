//! [`Peers`]: who this node is connected to, as a service. It puts connections and disconnections on the
//! node's event feed and reports the count; the peer table itself is the network's
//! ([`shoal_net::Network::peers`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use shoal_net::NetEvent;
use tokio::sync::broadcast;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::NodeError;
use crate::events::PeerEvent;
use crate::metrics::gauge;
use crate::service::{Context, Service, Start};

/// The peers service.
pub struct Peers {
    connected: Arc<AtomicUsize>,
}

impl Start for Peers {
    async fn start(ctx: Context) -> Result<Self, NodeError> {
        let connected = Arc::new(AtomicUsize::new(0));
        let mut net = ctx.net.subscribe();
        // Peers met before we subscribed (bootstrap dials are quick on loopback).
        connected.store(ctx.net.peers().await?.len(), Ordering::Relaxed);
        let (events, count, peers_net) = (ctx.events.clone(), connected.clone(), ctx.net.clone());
        ctx.tasks.spawn(async move {
            loop {
                match net.recv().await {
                    Ok(NetEvent::PeerConnected { peer, .. }) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        events.emit(PeerEvent::PeerConnected { peer: peer.to_string() });
                    }
                    Ok(NetEvent::PeerDisconnected { peer }) => {
                        let _ = count.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(1)));
                        events.emit(PeerEvent::PeerDisconnected { peer: peer.to_string() });
                    }
                    // Missed connections or disconnections: count again from the network's own table.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if let Ok(p) = peers_net.peers().await {
                            count.store(p.len(), Ordering::Relaxed);
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        ctx.metrics.register_collector(PeersMetrics(connected.clone()));
        Ok(Self { connected })
    }
}

#[derive(Debug)]
struct PeersMetrics(Arc<AtomicUsize>);

impl Collector for PeersMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        gauge(&mut enc, "shoal_connected_peers", "Peers connected now", self.0.load(Ordering::Relaxed) as i64)
    }
}

impl Service for Peers {
    fn name(&self) -> &'static str {
        "peers"
    }

    fn status(&self) -> serde_json::Value {
        serde_json::json!({ "connected": self.connected.load(Ordering::Relaxed) })
    }
}
