//! [`Node`]: one running peer.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
use shoal_net::Network;
use shoal_store::{BlobInfo, Store};

use shoal_store::ContentId;
use tokio::sync::mpsc;

use crate::blocking::blocking;
use crate::search::{self, SearchCounters, SearchEvent, SearchRequest, SearchStream};
use crate::transfer::download::{self, DownloadHandle, DownloadRequest};
use crate::transfer::limit::Limits;
use crate::transfer::serve::{self, ServeCtx};
use crate::{NodeConfig, NodeError, Ticket};

/// Traffic counters of a node.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    uploaded_total: AtomicU64,
    downloaded_total: AtomicU64,
    verification_failures: AtomicU64,
    uploads_cancelled: AtomicU64,
    /// Per peer: (bytes uploaded to it, bytes downloaded from it).
    by_peer: Mutex<HashMap<PeerId, (u64, u64)>>,
}

impl Counters {
    pub(crate) fn uploaded(&self, peer: PeerId, n: u64) {
        self.uploaded_total.fetch_add(n, Ordering::Relaxed);
        shoal_store::lock(&self.by_peer).entry(peer).or_default().0 += n;
    }

    pub(crate) fn downloaded(&self, peer: PeerId, n: u64) {
        self.downloaded_total.fetch_add(n, Ordering::Relaxed);
        shoal_store::lock(&self.by_peer).entry(peer).or_default().1 += n;
    }

    pub(crate) fn upload_cancelled(&self) {
        self.uploads_cancelled.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn verification_failed(&self) {
        self.verification_failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// A node's traffic since it started.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Traffic {
    /// Bytes sent to other peers (payload of ranges served).
    pub uploaded: u64,
    /// Bytes received from other peers (payload of ranges fetched).
    pub downloaded: u64,
    /// Pieces that failed verification (each one got its sender dropped).
    pub verification_failures: u64,
    /// Pieces not sent because their downloader withdrew the request (it got them elsewhere meanwhile).
    pub uploads_cancelled: u64,
    /// Per peer id: (uploaded to it, downloaded from it).
    pub by_peer: HashMap<String, (u64, u64)>,
}

struct Inner {
    config: NodeConfig,
    search: mpsc::Sender<search::driver::Cmd>,
    search_shared: Arc<search::driver::Shared>,
    search_tasks: [tokio::task::JoinHandle<()>; 2],
    download_limits: Arc<Limits>,
    store: Arc<Store>,
    net: Network,
    counters: Arc<Counters>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.accept.abort();
        for t in &self.search_tasks {
            t.abort();
        }
    }
}

/// A running peer. Cheap to clone; all clones are the same peer.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl Node {
    /// Opens the data directory, loads (or creates) the identity, starts the network, serves what the store
    /// has and announces it in the DHT.
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
        let net = Network::start(key, config.net.clone()).await?;
        let incoming = net
            .streams()
            .accept(crate::transfer::PROTOCOL)
            .map_err(|_| NodeError::Task("transfer protocol registered twice".into()))?;
        let counters = Arc::new(Counters::default());
        let ctx = Arc::new(ServeCtx::new(
            store.clone(),
            Limits::new(config.upload_limit, config.upload_limit_per_peer),
            counters.clone(),
            config.corrupt_uploads,
        ));
        let accept = tokio::spawn(serve::accept_loop(incoming, ctx));
        let search_incoming = net
            .streams()
            .accept(search::PROTOCOL)
            .map_err(|_| NodeError::Task("search protocol registered twice".into()))?;
        let (search, search_shared, t1, t2) = search::driver::spawn(search::driver::Parts {
            topology: config.topology,
            config: config.search.clone(),
            store: store.clone(),
            net: net.clone(),
            incoming: search_incoming,
            key: crate::blocking::os_secret(),
            max_connections: config.net.max_connections,
        })
        .await;
        let download_limits = Arc::new(Limits::new(config.download_limit, config.download_limit_per_peer));
        let node = Self {
            inner: Arc::new(Inner {
                config,
                search,
                search_shared,
                search_tasks: [t1, t2],
                download_limits,
                store,
                net,
                counters,
                accept,
            }),
        };
        let ids = {
            let store = node.inner.store.clone();
            blocking(move || store.servable_ids()).await?
        };
        for id in ids {
            node.inner.net.provide(id.as_bytes().to_vec()).await?;
        }
        tracing::info!(peer = %node.peer_id(), "node started");
        Ok(node)
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
        let store = self.inner.store.clone();
        let p = path.to_path_buf();
        let info = blocking(move || store.share(&p)).await?;
        self.inner.net.provide(info.id.as_bytes().to_vec()).await?;
        for f in &info.files {
            self.inner.net.provide(f.id.as_bytes().to_vec()).await?;
        }
        let _ = self.inner.search.send(search::driver::Cmd::SharesChanged).await;
        Ok(info)
    }

    /// Stops sharing `id` and withdraws it from the DHT. Returns whether it was shared.
    pub async fn unshare(&self, id: &shoal_store::ContentId) -> Result<bool, NodeError> {
        let store = self.inner.store.clone();
        let i = *id;
        let was = blocking(move || store.remove_share(&i)).await?;
        if was {
            self.inner.net.unprovide(id.as_bytes().to_vec()).await?;
            let _ = self.inner.search.send(search::driver::Cmd::SharesChanged).await;
        }
        Ok(was)
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
        let (tx, rx) = mpsc::channel(1024);
        self.inner.search.send(search::driver::Cmd::Start { req, tx }).await.map_err(|_| NodeError::SearchStopped)?;
        Ok(SearchStream { rx })
    }

    /// Peers that have `id`, found the way the topology finds things (the DHT's provider records in
    /// `structured`, a search for the id otherwise), with the addresses they gave when known.
    pub async fn find_providers(&self, id: ContentId) -> Result<mpsc::Receiver<(PeerId, Vec<Multiaddr>)>, NodeError> {
        let (tx, rx) = mpsc::channel(64);
        if self.inner.config.topology == crate::config::Topology::Structured {
            let mut found = self.inner.net.find_providers(id.as_bytes().to_vec()).await?;
            tokio::spawn(async move {
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
                timeout: std::time::Duration::from_secs(8),
            };
            let mut stream = self.search(req).await?;
            tokio::spawn(async move {
                while let Some(SearchEvent::Hit(h)) = stream.next().await {
                    if h.id == id && tx.send((h.peer, h.addrs)).await.is_err() {
                        return;
                    }
                }
            });
        }
        Ok(rx)
    }

    /// Search counters since start.
    pub fn search_counters(&self) -> SearchCounters {
        shoal_store::lock(&self.inner.search_shared.counters).clone()
    }

    /// Peers met that run another topology (peer id, their topology).
    pub fn topology_mismatches(&self) -> Vec<(String, String)> {
        let m = shoal_store::lock(&self.inner.search_shared.mismatches);
        m.iter().map(|(p, t)| (p.to_string(), t.clone())).collect()
    }

    /// Starts a download.
    pub async fn download(&self, req: DownloadRequest) -> Result<DownloadHandle, NodeError> {
        Ok(download::start(self.clone(), req))
    }

    pub(crate) fn download_limits(&self) -> &Arc<Limits> {
        &self.inner.download_limits
    }

    /// Bytes uploaded to other peers since start.
    pub fn uploaded(&self) -> u64 {
        self.inner.counters.uploaded_total.load(Ordering::Relaxed)
    }

    /// Traffic counters since start.
    pub fn traffic(&self) -> Traffic {
        let c = &self.inner.counters;
        Traffic {
            uploaded: c.uploaded_total.load(Ordering::Relaxed),
            downloaded: c.downloaded_total.load(Ordering::Relaxed),
            verification_failures: c.verification_failures.load(Ordering::Relaxed),
            uploads_cancelled: c.uploads_cancelled.load(Ordering::Relaxed),
            by_peer: shoal_store::lock(&c.by_peer).iter().map(|(p, v)| (p.to_string(), *v)).collect(),
        }
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Stops serving and closes every connection.
    pub async fn shutdown(&self) {
        self.inner.accept.abort();
        for t in &self.inner.search_tasks {
            t.abort();
        }
        self.inner.net.shutdown().await;
    }
}
