//! [`Transfer`]: the transfer service on the node's seam (see [`crate::service`]).
//!
//! It answers `/shoal/transfer/1` streams (the provider side, [`super::serve`]), announces what the store
//! can serve, shares and unshares, starts downloads ([`super::download`]) and keeps the user's downloads
//! ([`super::manager`]). Its counters are the node's traffic figures.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use libp2p::{PeerId, Stream, StreamProtocol};
use shoal_net::Network;
use shoal_store::{BlobInfo, ContentId, Store};

use super::download::{self, DownloadHandle, DownloadRequest};
use super::limit::Limits;
use super::manager::Downloads;
use super::serve::{self, ServeCtx};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::blocking::blocking;
use crate::events::Events;
use crate::metrics::{counter, gauge};
use crate::service::{Context, Service, Start, Tasks};
use crate::{Node, NodeError};

/// Traffic counters of a node.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(super) uploaded_total: AtomicU64,
    pub(super) downloaded_total: AtomicU64,
    verification_failures: AtomicU64,
    uploads_cancelled: AtomicU64,
    /// Per peer: (bytes uploaded to it, bytes downloaded from it).
    by_peer: Mutex<HashMap<PeerId, (u64, u64)>>,
}

/// Peers whose traffic is counted one by one; past this the peer with the least traffic is forgotten
/// (its bytes stay in the totals), so a stream of peers that each send a byte cannot grow the map.
const MAX_COUNTED_PEERS: usize = 4096;

impl Counters {
    pub(crate) fn uploaded(&self, peer: PeerId, n: u64) {
        self.uploaded_total.fetch_add(n, Ordering::Relaxed);
        self.add(peer, n, 0);
    }

    pub(crate) fn downloaded(&self, peer: PeerId, n: u64) {
        self.downloaded_total.fetch_add(n, Ordering::Relaxed);
        self.add(peer, 0, n);
    }

    fn add(&self, peer: PeerId, up: u64, down: u64) {
        let mut by_peer = shoal_store::lock(&self.by_peer);
        if !by_peer.contains_key(&peer)
            && by_peer.len() >= MAX_COUNTED_PEERS
            && let Some(least) = by_peer.iter().min_by_key(|(_, (u, d))| u + d).map(|(p, _)| *p)
        {
            by_peer.remove(&least);
        }
        let e = by_peer.entry(peer).or_default();
        e.0 += up;
        e.1 += down;
    }

    pub(crate) fn upload_cancelled(&self) {
        self.uploads_cancelled.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn verification_failed(&self) {
        self.verification_failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// A node's traffic since it started.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
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

/// The transfer service's figures, read at every scrape.
struct TransferMetrics {
    counters: Arc<Counters>,
    downloads: Downloads,
}

impl std::fmt::Debug for TransferMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransferMetrics")
    }
}

impl Collector for TransferMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(&mut enc, "shoal_uploaded_bytes", "Bytes uploaded to other peers", load(&c.uploaded_total))?;
        counter(&mut enc, "shoal_downloaded_bytes", "Bytes downloaded from other peers", load(&c.downloaded_total))?;
        counter(
            &mut enc,
            "shoal_verification_failures",
            "Pieces that failed verification",
            load(&c.verification_failures),
        )?;
        counter(
            &mut enc,
            "shoal_uploads_cancelled",
            "Pieces not sent because the downloader withdrew the request",
            load(&c.uploads_cancelled),
        )?;
        gauge(&mut enc, "shoal_active_downloads", "Downloads in progress", self.downloads.active() as i64)
    }
}

/// The transfer service.
pub struct Transfer {
    store: Arc<Store>,
    net: Network,
    events: Events,
    tasks: Tasks,
    serve: Arc<ServeCtx>,
    counters: Arc<Counters>,
    download_limits: Arc<Limits>,
    downloads: Downloads,
    shared_dir: std::path::PathBuf,
}

impl Start for Transfer {
    async fn start(ctx: Context) -> Result<Self, NodeError> {
        let cfg = &ctx.config;
        let counters = Arc::new(Counters::default());
        let serve = Arc::new(ServeCtx::new(
            ctx.store.clone(),
            Limits::new(cfg.upload_limit, cfg.upload_limit_per_peer),
            counters.clone(),
            cfg.corrupt_uploads,
        ));
        let downloads = Downloads::new(
            ctx.store.clone(),
            ctx.events.clone(),
            ctx.tasks.clone(),
            ctx.metrics.clone(),
            cfg.home.join("downloads"),
        );
        ctx.metrics.register_collector(TransferMetrics { counters: counters.clone(), downloads: downloads.clone() });
        if !cfg.traffic_every.is_zero() {
            let run = super::history::run(ctx.store.clone(), counters.clone(), ctx.events.clone(), cfg.traffic_every);
            ctx.tasks.spawn(run);
        }
        let store = ctx.store.clone();
        for id in blocking(move || store.servable_ids()).await? {
            ctx.net.provide(id.as_bytes().to_vec()).await?;
        }
        Ok(Self {
            downloads,
            store: ctx.store,
            net: ctx.net,
            events: ctx.events,
            tasks: ctx.tasks,
            serve,
            counters,
            download_limits: Arc::new(Limits::new(cfg.download_limit, cfg.download_limit_per_peer)),
            shared_dir: cfg.home.join(super::upload::FOLDER),
        })
    }
}

impl Service for Transfer {
    fn name(&self) -> &'static str {
        "transfer"
    }

    fn protocols(&self) -> Vec<StreamProtocol> {
        vec![super::PROTOCOL]
    }

    fn accept(&self, _protocol: &StreamProtocol, peer: PeerId, stream: Stream) {
        serve::accept(&self.serve, &self.tasks, peer, stream);
    }

    fn status(&self) -> serde_json::Value {
        let t = self.traffic();
        serde_json::json!({
            "uploaded": t.uploaded,
            "downloaded": t.downloaded,
            "verification_failures": t.verification_failures,
            "downloads_active": self.downloads.active(),
        })
    }
}

impl Transfer {
    /// Shares a file or folder (hashed in place, not copied) and announces it (and a folder's files).
    pub async fn share(&self, path: &Path) -> Result<BlobInfo, NodeError> {
        let store = self.store.clone();
        let p = path.to_path_buf();
        let info = blocking(move || store.share(&p)).await?;
        self.net.provide(info.id.as_bytes().to_vec()).await?;
        for f in &info.files {
            self.net.provide(f.id.as_bytes().to_vec()).await?;
        }
        self.events.emit(super::Event::ShareAdded { id: info.id, name: info.name.clone() });
        Ok(info)
    }

    /// Writes an uploaded file into the share folder (`<home>/shared`) as `name` and shares it; a name
    /// that exists there is refused (see [`super::upload`]).
    pub async fn upload<S, B, E>(&self, name: &str, body: S) -> Result<BlobInfo, NodeError>
    where
        S: futures::Stream<Item = Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        super::upload::receive(self, &self.shared_dir, name, body).await
    }

    /// The share folder, where uploads go.
    pub fn shared_dir(&self) -> &Path {
        &self.shared_dir
    }

    /// Stops sharing `id` (and, for a folder, every file no other share or download needs) and withdraws
    /// what is no longer served from the DHT. Returns whether it was shared.
    pub async fn unshare(&self, id: &ContentId) -> Result<bool, NodeError> {
        let store = self.store.clone();
        let i = *id;
        let Some(gone) = blocking(move || store.remove_share(&i)).await? else { return Ok(false) };
        for g in gone {
            self.net.unprovide(g.as_bytes().to_vec()).await?;
        }
        self.events.emit(super::Event::ShareRemoved { id: *id });
        Ok(true)
    }

    /// Starts a download that `node` runs (it finds providers through the node's search service).
    pub fn download(&self, node: Node, req: DownloadRequest) -> DownloadHandle {
        download::start(node, req)
    }

    /// The downloads the user asked for (pause, resume, cancel; kept across restarts).
    pub fn downloads(&self) -> &Downloads {
        &self.downloads
    }

    /// Traffic counters since start.
    pub fn traffic(&self) -> Traffic {
        let c = &self.counters;
        Traffic {
            uploaded: c.uploaded_total.load(Ordering::Relaxed),
            downloaded: c.downloaded_total.load(Ordering::Relaxed),
            verification_failures: c.verification_failures.load(Ordering::Relaxed),
            uploads_cancelled: c.uploads_cancelled.load(Ordering::Relaxed),
            by_peer: shoal_store::lock(&c.by_peer).iter().map(|(p, v)| (p.to_string(), *v)).collect(),
        }
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    pub(crate) fn download_limits(&self) -> &Arc<Limits> {
        &self.download_limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_peer_counters_are_bounded_and_keep_the_busiest_peers() {
        let c = Counters::default();
        let busy = PeerId::random();
        c.uploaded(busy, 1_000_000);
        for _ in 0..MAX_COUNTED_PEERS + 500 {
            c.downloaded(PeerId::random(), 1);
        }
        let by_peer = shoal_store::lock(&c.by_peer);
        assert_eq!(by_peer.len(), MAX_COUNTED_PEERS);
        assert_eq!(by_peer.get(&busy), Some(&(1_000_000, 0)), "the busiest peer was forgotten");
        assert_eq!(c.downloaded_total.load(Ordering::Relaxed), MAX_COUNTED_PEERS as u64 + 500, "totals keep all");
    }
}
