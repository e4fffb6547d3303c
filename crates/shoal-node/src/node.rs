//! [`Node`]: one running peer, a facade over its services.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
use shoal_net::Network;
use shoal_store::{BlobInfo, ContentId, Store};
use tokio::sync::mpsc;

use crate::blocking::blocking;
use crate::events::Events;
use crate::metrics::Metrics;
use crate::search::{Search, SearchCounters, SearchRequest, SearchStream};
use crate::service::{Context, Registry, Service};
use crate::transfer::download::{DownloadHandle, DownloadRequest};
use crate::transfer::{DownloadInfo, Traffic, Transfer};
use crate::{NodeConfig, NodeError, Ticket};

struct Inner {
    config: Arc<NodeConfig>,
    store: Arc<Store>,
    net: Network,
    events: Events,
    metrics: Arc<Metrics>,
    services: Registry,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.services.abort();
    }
}

/// A running peer. Cheap to clone; all clones are the same peer.
///
/// It opens the store and the network and starts the services listed in [`crate::services`]; its methods
/// are the common operations, each a call into one service (reach any service with [`Node::service`]).
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl Node {
    /// Opens the data directory, loads (or creates) the identity, starts the network and every service:
    /// what the store has is served and announced.
    pub async fn start(mut config: NodeConfig) -> Result<Self, NodeError> {
        use crate::config::Topology;
        if config.topology == Topology::Hybrid {
            for a in &config.search.index_servers {
                if !matches!(a.iter().last(), Some(Protocol::P2p(_))) {
                    return Err(NodeError::IndexServer(a.to_string()));
                }
                // Dialed at start like bootstrap peers; the search driver registers with them once connected.
                if !config.net.bootstrap.contains(a) {
                    config.net.bootstrap.push(a.clone());
                }
            }
            if config.search.index_servers.is_empty() && !config.search.index_server {
                tracing::warn!("hybrid topology without an index server: searches will flood the overlay");
            }
        } else if config.search.index_server || !config.search.index_servers.is_empty() {
            tracing::warn!(topology = %config.topology, "index servers belong to the hybrid topology: ignored");
            config.search.index_server = false;
            config.search.index_servers.clear();
        }
        // Only the structured topology runs the DHT; the others find things their own way.
        config.net.dht = config.topology == Topology::Structured;
        config.net.agent = format!("shoal/{} topology={}", env!("CARGO_PKG_VERSION"), config.topology);
        let home = config.home.clone();
        let home_err = |why: String| NodeError::Home { path: home.clone(), why };
        std::fs::create_dir_all(&home).map_err(|e| home_err(e.to_string()))?;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).map_err(|e| home_err(e.to_string()))?;
        let key = shoal_net::identity::load_or_create(&home.join("identity.key"))?;
        let store = {
            let home = home.clone();
            Arc::new(blocking(move || Store::open(&home)).await?)
        };
        let mut registry = prometheus_client::registry::Registry::default();
        // Bootstrap peers are dialed once every service accepts its protocols: a peer we connect to may
        // open a stream to us at once (collect its letters, register with us), and a stream on a protocol
        // nobody accepts yet is refused as unsupported.
        let bootstrap = config.net.bootstrap.clone();
        let mut net_config = config.net.clone();
        net_config.bootstrap.clear();
        let net = Network::start_with_metrics(key.clone(), net_config, Some(&mut registry)).await?;
        let metrics = Arc::new(Metrics::new(registry, &config.topology.to_string()));
        let config = Arc::new(config);
        let (events, services) = (Events::default(), Registry::default());
        let ctx = Context::new(
            config.clone(),
            key,
            store.clone(),
            net.clone(),
            events.clone(),
            metrics.clone(),
            services.clone(),
        );
        let node = Self { inner: Arc::new(Inner { config, store, net, events, metrics, services }) };
        if let Err(e) = crate::services::start_all(&node.inner.services, &ctx).await {
            node.shutdown().await;
            return Err(e);
        }
        for addr in bootstrap {
            if let Err(e) = node.inner.net.dial(addr.clone()).await {
                tracing::warn!(%addr, error = %e, "cannot dial a bootstrap peer");
            }
        }
        tracing::info!(peer = %node.peer_id(), "node started");
        Ok(node)
    }

    /// The running service of type `T` (`node.service::<Transfer>()`).
    pub fn service<T: Service>(&self) -> Result<Arc<T>, NodeError> {
        self.inner.services.get::<T>()
    }

    /// Every running service, in start order (for status pages).
    pub fn services(&self) -> Vec<Arc<dyn Service>> {
        self.inner.services.all()
    }

    pub(crate) fn transfer(&self) -> Result<Arc<Transfer>, NodeError> {
        self.service::<Transfer>()
    }

    fn search_service(&self) -> Result<Arc<Search>, NodeError> {
        self.service::<Search>()
    }

    /// The node's event feed.
    pub fn events(&self) -> &Events {
        &self.inner.events
    }

    /// The node's metrics (`/metrics`).
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// This peer's id.
    pub fn peer_id(&self) -> PeerId {
        self.inner.net.peer_id()
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// The network handle.
    pub fn network(&self) -> &Network {
        &self.inner.net
    }

    /// Listen addresses, each ending in `/p2p/<peer id>`.
    pub async fn addrs(&self) -> Result<Vec<Multiaddr>, NodeError> {
        Ok(self.inner.net.listen_addrs().await?)
    }

    /// Shares a file or folder (hashed in place, not copied) and announces it (and a folder's files).
    pub async fn share(&self, path: &Path) -> Result<BlobInfo, NodeError> {
        self.transfer()?.share(path).await
    }

    /// Writes an uploaded file into the share folder (`<home>/shared`) as `name` and shares it; a name that
    /// exists there is refused, and an upload that breaks off leaves nothing.
    pub async fn upload<S, B, E>(&self, name: &str, body: S) -> Result<BlobInfo, NodeError>
    where
        S: futures::Stream<Item = Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        self.transfer()?.upload(name, body).await
    }

    /// Stops sharing `id` and withdraws it from the DHT. Returns whether it was shared.
    pub async fn unshare(&self, id: &ContentId) -> Result<bool, NodeError> {
        self.transfer()?.unshare(id).await
    }

    /// A ticket for something this peer shares, naming this peer and its addresses.
    pub async fn ticket(&self, info: &BlobInfo) -> Result<Ticket, NodeError> {
        let addrs = self
            .addrs()
            .await?
            .into_iter()
            .map(|a| a.into_iter().filter(|p| !matches!(p, Protocol::P2p(_))).collect())
            .collect();
        Ok(Ticket {
            id: info.id,
            name: info.name.clone(),
            size: info.size,
            collection: info.is_collection,
            providers: vec![(self.peer_id(), addrs)],
        })
    }

    /// Starts a search, in the way the topology searches. Dropping the stream cancels it.
    pub async fn search(&self, req: SearchRequest) -> Result<SearchStream, NodeError> {
        self.search_service()?.search(req).await
    }

    /// Peers that have `id`, found the way the topology finds things.
    pub async fn find_providers(&self, id: ContentId) -> Result<mpsc::Receiver<(PeerId, Vec<Multiaddr>)>, NodeError> {
        self.search_service()?.find_providers(id).await
    }

    /// Search counters since start.
    pub fn search_counters(&self) -> SearchCounters {
        self.search_service().map(|s| s.counters()).unwrap_or_default()
    }

    /// Peers met that run another topology (peer id, their topology).
    pub fn topology_mismatches(&self) -> Vec<(String, String)> {
        self.search_service().map(|s| s.topology_mismatches()).unwrap_or_default()
    }

    /// Starts a download and returns its handle (what `shoal get` without a daemon uses). Downloads the
    /// user manages (pause, resume, a list that survives restarts) go through [`Node::add_download`].
    pub async fn download(&self, req: DownloadRequest) -> Result<DownloadHandle, NodeError> {
        Ok(self.transfer()?.download(self.clone(), req))
    }

    /// Starts a managed download of a ticket or id (see [`crate::transfer::Downloads::add`]).
    pub async fn add_download(
        &self,
        what: &str,
        output: Option<PathBuf>,
        paused: bool,
    ) -> Result<DownloadInfo, NodeError> {
        self.transfer()?.downloads().add(self, what, output, paused).await
    }

    /// Starts a managed download into the downloads folder under `name` (see
    /// [`crate::transfer::Downloads::add_as`]).
    pub async fn add_download_as(&self, what: &str, name: &str, paused: bool) -> Result<DownloadInfo, NodeError> {
        self.transfer()?.downloads().add_as(self, what, name, paused).await
    }

    /// Pauses a managed download.
    pub async fn pause_download(&self, id: &ContentId) -> Result<DownloadInfo, NodeError> {
        self.transfer()?.downloads().pause(id).await
    }

    /// Resumes a paused download.
    pub async fn resume_download(&self, id: &ContentId) -> Result<DownloadInfo, NodeError> {
        self.transfer()?.downloads().resume(self, id).await
    }

    /// Cancels a download and deletes its partial file.
    pub async fn cancel_download(&self, id: &ContentId) -> Result<DownloadInfo, NodeError> {
        self.transfer()?.downloads().cancel(id).await
    }

    /// The managed downloads.
    pub fn list_downloads(&self) -> Vec<DownloadInfo> {
        self.transfer().map(|t| t.downloads().list()).unwrap_or_default()
    }

    /// One managed download.
    pub fn get_download(&self, id: &ContentId) -> Result<DownloadInfo, NodeError> {
        self.transfer()?.downloads().get(id)
    }

    /// Waits for a managed download to end (see [`crate::transfer::Downloads::wait`]), its progress on
    /// the returned watch meanwhile.
    pub async fn wait_download(&self, id: &ContentId) -> Result<crate::transfer::download::DownloadReport, NodeError> {
        self.transfer()?.downloads().wait(id).await
    }

    /// The live progress of a managed download.
    pub fn download_progress(
        &self,
        id: &ContentId,
    ) -> Result<tokio::sync::watch::Receiver<crate::transfer::download::Progress>, NodeError> {
        self.transfer()?.downloads().progress(id)
    }

    /// Takes up the downloads a previous run recorded (see [`crate::transfer::Downloads::recover`]).
    pub async fn recover_downloads(&self) -> Result<usize, NodeError> {
        self.transfer()?.downloads().recover(self).await
    }

    /// Bytes uploaded to other peers since start.
    pub fn uploaded(&self) -> u64 {
        self.traffic().uploaded
    }

    /// Traffic counters since start.
    pub fn traffic(&self) -> Traffic {
        self.transfer().map(|t| t.traffic()).unwrap_or_default()
    }

    /// Stops every service (newest first), then closes every connection.
    pub async fn shutdown(&self) {
        self.inner.services.shutdown().await;
        self.inner.net.shutdown().await;
    }
}
