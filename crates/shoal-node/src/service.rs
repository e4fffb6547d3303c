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
//! adapted to `libp2p-stream`, whose incoming streams must be accepted at once or are dropped: the node runs
//! the accept loops and [`Service::accept`] must not wait.

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
    /// service's [`Tasks`]): the node's accept loop must keep being polled or `libp2p-stream` drops streams.
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
    /// What this peer has.
    pub store: Arc<Store>,
    /// Who this peer can reach.
    pub net: Network,
    /// The node's event feed (the API's `/api/v1/events` and in-process subscribers read it).
    pub events: Events,
    /// This service's tasks: aborted when the node stops.
    pub tasks: Tasks,
    registry: Registry,
}

impl Context {
    /// The context services of a node start from (each gets its own [`Tasks`] in [`Registry::start`]).
    pub(crate) fn new(
        config: Arc<NodeConfig>,
        store: Arc<Store>,
        net: Network,
        events: Events,
        registry: Registry,
    ) -> Self {
        Self { config, store, net, events, tasks: Tasks::default(), registry }
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
