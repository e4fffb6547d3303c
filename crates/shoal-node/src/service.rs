//! The service seam: the one shape every service of a peer has.
//!
//! A service (transfer, search; next messages, compute, sync) is a type that implements [`Service`] (what
//! the node asks of a running service: its stream protocols, the streams that arrive on them, its status,
//! its shutdown) and [`Start`] (how it starts from a [`Context`]: the store, the network, the configuration,
//! the node's event feed, and a task set of its own). [`crate::services`] lists every service the node
//! runs, in start order: that list is the one place a new service is registered.
//!
//! The node owns the running services in a [`Registry`] and treats them alike: it routes each incoming
//! stream to the service that declared its protocol, reports every service's status, and at shutdown calls
//! each service's [`Service::shutdown`] (newest first) and then aborts every task it spawned through its
//! [`Tasks`]. No service keeps abort lists of its own. The rest of the code reaches a service through its
//! type: `node.service::<Transfer>()`.
//!
//! The shape follows iroh's `ProtocolHandler` + `Router` (a handler per protocol id, accept + shutdown),
//! adapted to `shoal_net::streams`, whose incoming streams wait in a bounded queue per protocol
//! ([`shoal_net::streams::INBOUND_QUEUE`]) and are reset past it: the node runs the accept loops and
//! [`Service::accept`] must not wait.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use libp2p::{PeerId, Stream, StreamProtocol};
use shoal_net::Network;
use shoal_store::Store;

use crate::events::Events;
use crate::{NodeConfig, NodeError};

mod slots;
pub use slots::{PeerSlot, PeerSlots};

/// A boxed future, for the one async method of [`Service`] (a trait object cannot have `async fn`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A running service, as the node sees it.
pub trait Service: Any + Send + Sync {
    /// Short stable name: in status, logs and metric labels (`transfer`, `search`, `messages`).
    fn name(&self) -> &'static str;

    /// The stream protocols this service answers. The node accepts them and hands each stream to
    /// [`Service::accept`].
    fn protocols(&self) -> Vec<StreamProtocol> {
        Vec::new()
    }

    /// A stream a peer opened on one of [`Service::protocols`]. Must return at once (spawn the work on the
    /// service's [`Tasks`]): the node's accept loop must keep being polled or new streams are reset once
    /// the protocol's queue is full.
    fn accept(&self, protocol: &StreamProtocol, peer: PeerId, stream: Stream) {
        tracing::debug!(service = self.name(), %protocol, %peer, "no handler for this protocol; closing the stream");
        drop(stream);
    }

    /// What the service reports in `/api/v1/status`.
    fn status(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Called once when the node stops, before the service's tasks are aborted: finish what must not be lost
    /// (flush a queue, record a state). The default has nothing to do.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// How a service starts.
pub trait Start: Service + Sized {
    /// Starts the service. Long-lived work goes on `ctx.tasks`; services started before this one (see
    /// [`crate::services`]) are reachable through [`Context::service`].
    fn start(ctx: Context) -> impl Future<Output = Result<Self, NodeError>> + Send;
}

/// Everything a service starts from.
#[derive(Clone)]
pub struct Context {
    /// The node's configuration.
    pub config: Arc<NodeConfig>,
    /// This peer's identity key (what its peer id is made of): for services that sign or open what is
    /// sealed to this peer.
    pub identity: libp2p::identity::Keypair,
    /// What this peer has.
    pub store: Arc<Store>,
    /// Who this peer can reach.
    pub net: Network,
    /// The node's event feed (the API's `/api/v1/events` and in-process subscribers read it).
    pub events: Events,
    /// The node's metrics: register a collector for the service's figures (`/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// This service's tasks: aborted when the node stops.
    pub tasks: Tasks,
    registry: Registry,
}

impl Context {
    /// The context services of a node start from (each gets its own [`Tasks`] in [`Registry::start`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: Arc<NodeConfig>,
        identity: libp2p::identity::Keypair,
        store: Arc<Store>,
        net: Network,
        events: Events,
        metrics: Arc<crate::metrics::Metrics>,
        registry: Registry,
    ) -> Self {
        Self { config, identity, store, net, events, metrics, tasks: Tasks::default(), registry }
    }

    /// A service started before this one.
    pub fn service<T: Service>(&self) -> Result<Arc<T>, NodeError> {
        self.registry.get::<T>()
    }
}

/// The tasks of one service. Finished tasks are reaped as new ones are spawned, so the set stays as large
/// as what runs.
#[derive(Clone, Default)]
pub struct Tasks(Arc<Mutex<tokio::task::JoinSet<()>>>);

impl Tasks {
    /// Runs `fut` until it ends or the node stops.
    pub fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let mut set = shoal_store::lock(&self.0);
        while set.try_join_next().is_some() {}
        set.spawn(fut);
    }

    /// Tasks still running.
    pub fn len(&self) -> usize {
        let mut set = shoal_store::lock(&self.0);
        while set.try_join_next().is_some() {}
        set.len()
    }

    /// True when none runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn abort_all(&self) {
        shoal_store::lock(&self.0).abort_all();
    }
}

struct Slot {
    service: Arc<dyn Service>,
    any: Arc<dyn Any + Send + Sync>,
    tasks: Tasks,
}

/// The running services of a node, in start order.
#[derive(Clone, Default)]
pub struct Registry {
    slots: Arc<Mutex<Vec<Slot>>>,
}

impl Registry {
    /// Starts service `T` and, for each protocol it declares, a loop that hands it the incoming streams.
    pub(crate) async fn start<T: Start>(&self, base: &Context) -> Result<(), NodeError> {
        let tasks = Tasks::default();
        let ctx = Context { tasks: tasks.clone(), ..base.clone() };
        let service = Arc::new(T::start(ctx.clone()).await?);
        for protocol in service.protocols() {
            let mut incoming = ctx
                .net
                .streams()
                .accept(protocol.clone())
                .map_err(|_| NodeError::Task(format!("protocol {protocol} is registered twice")))?;
            let s = service.clone();
            tasks.spawn(async move {
                while let Some((peer, stream)) = incoming.next().await {
                    s.accept(&protocol, peer, stream);
                }
            });
        }
        tracing::debug!(service = service.name(), "service started");
        let slot = Slot { any: service.clone(), service, tasks };
        shoal_store::lock(&self.slots).push(slot);
        Ok(())
    }

    /// The running service of type `T`.
    pub fn get<T: Service>(&self) -> Result<Arc<T>, NodeError> {
        let slots = shoal_store::lock(&self.slots);
        slots
            .iter()
            .find_map(|s| s.any.clone().downcast::<T>().ok())
            .ok_or(NodeError::NoService(std::any::type_name::<T>()))
    }

    /// Every running service, in start order.
    pub fn all(&self) -> Vec<Arc<dyn Service>> {
        shoal_store::lock(&self.slots).iter().map(|s| s.service.clone()).collect()
    }

    /// Stops every service, newest first: its own shutdown, then its tasks.
    pub(crate) async fn shutdown(&self) {
        let slots: Vec<(Arc<dyn Service>, Tasks)> = {
            let slots = shoal_store::lock(&self.slots);
            slots.iter().rev().map(|s| (s.service.clone(), s.tasks.clone())).collect()
        };
        for (service, tasks) in slots {
            service.shutdown().await;
            tasks.abort_all();
            tracing::debug!(service = service.name(), "service stopped");
        }
    }

    /// Aborts every task without waiting (the node was dropped without `shutdown`).
    pub(crate) fn abort(&self) {
        for s in shoal_store::lock(&self.slots).iter() {
            s.tasks.abort_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use futures::{AsyncReadExt, AsyncWriteExt};
    use shoal_net::NetConfig;

    use super::*;

    const ECHO: StreamProtocol = StreamProtocol::new("/shoal/test-echo/1");

    /// A service made only of the seam: it echoes one byte per stream and counts the streams.
    struct Echo {
        tasks: Tasks,
        streams: Arc<AtomicUsize>,
        stopped: Arc<AtomicBool>,
    }

    impl Start for Echo {
        async fn start(ctx: Context) -> Result<Self, NodeError> {
            // Long-lived work on the service's own tasks: aborted at shutdown.
            ctx.tasks.spawn(futures::future::pending());
            Ok(Self { tasks: ctx.tasks, streams: Arc::default(), stopped: Arc::default() })
        }
    }

    impl Service for Echo {
        fn name(&self) -> &'static str {
            "echo"
        }
        fn protocols(&self) -> Vec<StreamProtocol> {
            vec![ECHO]
        }
        fn accept(&self, _: &StreamProtocol, _peer: PeerId, mut stream: Stream) {
            self.streams.fetch_add(1, Ordering::Relaxed);
            self.tasks.spawn(async move {
                let mut b = [0u8; 1];
                if stream.read_exact(&mut b).await.is_ok() {
                    let _ = stream.write_all(&b).await;
                    let _ = stream.close().await;
                }
            });
        }
        fn status(&self) -> serde_json::Value {
            serde_json::json!({ "streams": self.streams.load(Ordering::Relaxed) })
        }
        fn shutdown(&self) -> BoxFuture<'_, ()> {
            Box::pin(async { self.stopped.store(true, Ordering::Relaxed) })
        }
    }

    async fn context(dir: &std::path::Path) -> Context {
        let config = Arc::new(NodeConfig::loopback(dir.to_path_buf()));
        let store = Arc::new(Store::open(dir).unwrap());
        let key = libp2p::identity::Keypair::generate_ed25519();
        let net = Network::start(key.clone(), NetConfig::loopback()).await.unwrap();
        let metrics = Arc::new(crate::metrics::Metrics::new(Default::default(), "structured"));
        Context::new(config, key, store, net, Events::default(), metrics, Registry::default())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_service_gets_its_streams_reports_status_and_stops_with_its_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(&dir.path().join("a")).await;
        let registry = ctx.registry.clone();
        registry.start::<Echo>(&ctx).await.unwrap();
        let echo = registry.get::<Echo>().unwrap();
        assert!(registry.get::<crate::transfer::Transfer>().is_err(), "only what was started is there");
        // The same protocol cannot be claimed twice.
        assert!(registry.start::<Echo>(&ctx).await.is_err());

        let other = context(&dir.path().join("b")).await;
        let addr = ctx.net.listen_addrs().await.unwrap().remove(0);
        other.net.dial(addr).await.unwrap();
        let mut stream = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            other.net.streams().open_stream(ctx.net.peer_id(), ECHO),
        )
        .await
        .unwrap()
        .unwrap();
        stream.write_all(&[42]).await.unwrap();
        let mut back = [0u8; 1];
        stream.read_exact(&mut back).await.unwrap();
        assert_eq!(back, [42]);
        assert_eq!(echo.status()["streams"], 1);
        assert_eq!(registry.all().iter().map(|s| s.name()).collect::<Vec<_>>(), ["echo"]);

        assert!(!echo.tasks.is_empty(), "the pending task and the accept loop run");
        registry.shutdown().await;
        assert!(echo.stopped.load(Ordering::Relaxed), "shutdown was called");
        // Aborted tasks finish at their next poll: give the runtime a moment, bounded.
        for _ in 0..100 {
            if echo.tasks.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(echo.tasks.is_empty(), "{} tasks still running after shutdown", echo.tasks.len());
        ctx.net.shutdown().await;
        other.net.shutdown().await;
    }
}
