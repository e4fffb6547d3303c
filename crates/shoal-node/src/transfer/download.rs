//! The multi-source downloader: the I/O around the download state machine ([`super::fetch`]) and the sans-IO
//! `shoal_proto::transfer::Scheduler` inside it.
//!
//! One driver task per download owns the scheduler and the sessions (one per provider). Providers come from
//! the request's hints (a ticket) and from the DHT, found while the download runs and again whenever the
//! scheduler reports pieces no current peer has. The driver waits a short `gather` time after the first
//! answer so that work is spread over all providers, then requests pieces as the scheduler decides; it makes
//! verified ranges durable every `checkpoint_every`; it re-asks partial providers (peers that are still
//! downloading) which ranges they have; and it gives up with a clear error when no provider has been
//! usable for `stall_timeout`.
//!
//! A folder is a collection blob (fetched like any other, into the store) followed by its files, from the
//! peers that served the collection (and the DHT): the small ones many at once ([`super::batch`]), the
//! others one after the other, each from every provider. What a download reports is in `report`.
//!
//! What a blob's download decides (which provider gets which request, when to look for more, when to give
//! up) is [`super::fetch::Fetch`], a state machine without I/O; `fetch_blob` here only carries its steps out
//! and feeds it the sessions' events.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use shoal_proto::transfer::Failure;
use shoal_store::collection::{MAX_COLLECTION_BYTES, prepare_output, safe_relative_path};
use shoal_store::{Collection, ContentId, DownloadRecord, Partial};
use tokio::sync::{mpsc, watch};

use super::fetch::{Answer, Done, Fetch, Step, Tally};
use super::session::{self, SessionCmd, SessionEvent, SessionHandle};
use crate::blocking::blocking;
use crate::{Node, NodeError, Ticket};

mod report;
pub(crate) use report::Rates;
pub use report::{DownloadReport, PeerRate, PeerReport, Progress};

/// What to download and where.
#[derive(Clone, Debug)]
pub struct DownloadRequest {
    /// Content id.
    pub id: ContentId,
    /// Name to use when `out` is a directory or absent (untrusted; checked).
    pub name: Option<String>,
    /// `Some(true)` for a folder, `Some(false)` for a file, `None`: as the providers say.
    pub collection: Option<bool>,
    /// The size a ticket names (of the file, or of a folder's collection); `None`: a provider must prove
    /// the size it claims before anything is allocated.
    pub size: Option<u64>,
    /// Known providers and their addresses (from a ticket).
    pub providers: Vec<(PeerId, Vec<Multiaddr>)>,
    /// Output path: the file (or folder) to create; an existing directory means "inside it".
    pub out: Option<PathBuf>,
    /// Look for more providers, the way the topology finds them (DHT, or a search for the id).
    pub discover: bool,
}

impl DownloadRequest {
    /// Everything a ticket says.
    pub fn from_ticket(t: &Ticket, out: Option<PathBuf>) -> Self {
        Self {
            id: t.id,
            name: Some(t.name.clone()),
            collection: Some(t.collection),
            size: Some(t.size),
            providers: t.providers.clone(),
            out,
            discover: true,
        }
    }

    /// A bare id: providers are looked for the way the topology finds them.
    pub fn from_id(id: ContentId, out: Option<PathBuf>) -> Self {
        Self { id, name: None, collection: None, size: None, providers: Vec::new(), out, discover: true }
    }
}

/// A running download.
pub struct DownloadHandle {
    progress: watch::Receiver<Progress>,
    task: tokio::task::JoinHandle<Result<DownloadReport, NodeError>>,
}

impl DownloadHandle {
    /// Watch progress.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }

    /// Waits for the download to end.
    pub async fn finish(self) -> Result<DownloadReport, NodeError> {
        self.task.await.map_err(|e| NodeError::Task(e.to_string()))?
    }

    /// Stops the download (what is verified stays recorded; the same request resumes it).
    pub fn abort(&self) {
        self.task.abort();
    }

    /// A handle that stops the download, usable after `finish` took the handle.
    pub fn abort_handle(&self) -> tokio::task::AbortHandle {
        self.task.abort_handle()
    }
}

pub(crate) fn start(node: Node, req: DownloadRequest) -> DownloadHandle {
    let (tx, rx) = watch::channel(Progress { files_total: 1, ..Progress::default() });
    let task = tokio::spawn(async move { run(node, req, tx).await });
    DownloadHandle { progress: rx, task }
}

/// A name from a ticket or a peer, made safe to use as one file name.
fn safe_name(name: Option<&str>, id: &ContentId) -> String {
    name.filter(|n| safe_relative_path(n).is_ok_and(|p| p.components().count() == 1))
        .map_or_else(|| id.to_string(), str::to_string)
}

/// Where a file's download is written until it is complete: `.NAME.shoal-partial` beside it.
pub fn partial_path_for(final_path: &Path) -> PathBuf {
    let name = final_path.file_name().map_or_else(|| "download".into(), |n| n.to_string_lossy().into_owned());
    final_path.with_file_name(format!(".{name}.shoal-partial"))
}

/// Where a folder's files are written until each is complete: next to the folder, not in it, so that no
/// entry of a (hostile) collection can name another entry's partial file. Named after the folder, so the
/// same request finds it again and resumes.
fn staging_dir(out: &Path) -> PathBuf {
    let name = out.file_name().map_or_else(|| "download".into(), |n| n.to_string_lossy().into_owned());
    out.with_file_name(format!(".{name}.shoal-partial"))
}

#[derive(Default)]
struct Totals {
    peers: HashMap<PeerId, PeerReport>,
    received: u64,
    resumed: u64,
    transfer_secs: f64,
    working: Vec<(PeerId, Vec<Multiaddr>)>,
}

impl Totals {
    /// Adds one blob's figures (a folder's files each add theirs).
    fn absorb(&mut self, t: Tally, blob: &Done) {
        self.received += t.received;
        self.resumed += t.resumed;
        self.transfer_secs += blob.transfer_secs;
        for (p, r) in t.peers {
            let e = self.peers.entry(p).or_insert_with(|| PeerReport {
                peer: r.peer.clone(),
                bytes: 0,
                received: 0,
                dropped: None,
            });
            e.bytes += r.bytes;
            e.received += r.received;
            if r.dropped.is_some() {
                e.dropped = r.dropped;
            }
        }
        self.working.extend(blob.working.iter().cloned());
    }
}

async fn run(node: Node, req: DownloadRequest, progress: watch::Sender<Progress>) -> Result<DownloadReport, NodeError> {
    let started = Instant::now();
    let name = safe_name(req.name.as_deref(), &req.id);
    let cwd = std::env::current_dir().map_err(|e| NodeError::Output { path: ".".into(), why: e.to_string() })?;
    let out = match &req.out {
        None => cwd.join(&name),
        Some(p) if p.is_dir() => p.join(&name),
        Some(p) => cwd.join(p),
    };
    let mut totals = Totals::default();
    let mut record = DownloadRecord {
        id: req.id,
        name: name.clone(),
        out_path: out.clone(),
        size: 0,
        is_collection: req.collection.unwrap_or(false),
        state: "running".into(),
    };
    // The first blob: the file itself, or the collection of a folder (kept in the store).
    let store = node.store().clone();
    let id = req.id;
    let out_for_dest = out.clone();
    let adopted = adopt(&node, id, partial_path_for(&out), out.clone()).await?;
    let dest = move |collection: bool| -> Result<(PathBuf, PathBuf), NodeError> {
        if collection {
            let dir = store.home().join("blobs");
            Ok((dir.join(format!("{id}.collection-partial")), dir.join(format!("{id}.collection"))))
        } else {
            if !adopted && std::fs::symlink_metadata(&out_for_dest).is_ok() {
                return Err(NodeError::Output {
                    path: out_for_dest,
                    why: "already exists; choose another path with -o or remove it".into(),
                });
            }
            Ok((partial_path_for(&out_for_dest), out_for_dest))
        }
    };
    let want = Want { id: req.id, collection: req.collection, size: req.size };
    let first = fetch_blob(&node, want, req.providers.clone(), req.discover, dest, &progress, &mut totals).await?;
    record.size = first.size;
    record.is_collection = first.collection;
    let node_store = node.store().clone();
    let rec = record.clone();
    blocking(move || node_store.put_download(&rec)).await?;

    let (size, files) = if !first.collection {
        progress.send_modify(|p| p.files_done = 1);
        (first.size, 1)
    } else {
        let store = node.store().clone();
        let path = first.path.clone();
        let bytes = blocking(move || {
            let output = |why: String| NodeError::Output { path: path.clone(), why };
            let m = std::fs::metadata(&path).map_err(|e| output(e.to_string()))?;
            if m.len() > MAX_COLLECTION_BYTES {
                return Err(output("collection is too large".to_string()));
            }
            std::fs::read(&path).map_err(|e| output(e.to_string()))
        })
        .await?;
        drop(store);
        let collection = Collection::decode(&bytes)?;
        if std::fs::symlink_metadata(&out).is_ok_and(|m| !m.is_dir()) {
            return Err(NodeError::Output { path: out, why: "exists and is not a directory".into() });
        }
        std::fs::create_dir_all(&out).map_err(|e| NodeError::Output { path: out.clone(), why: e.to_string() })?;
        // Every name was checked by decode; now make sure no directory on the way is a symlink, before fetching.
        let mut targets = Vec::new();
        for e in &collection.entries {
            let rel =
                safe_relative_path(&e.path).map_err(|err| shoal_store::StoreError::Collection(err.to_string()))?;
            targets.push(prepare_output(&out, &rel)?);
        }
        progress.send_modify(|p| {
            p.files_total = collection.entries.len();
            p.size = collection.total_size();
            p.verified = 0;
        });
        let hints = if totals.working.is_empty() { req.providers.clone() } else { totals.working.clone() };
        let staging = staging_dir(&out);
        std::fs::create_dir_all(&staging)
            .map_err(|e| NodeError::Output { path: staging.clone(), why: e.to_string() })?;
        // Small files (each whole in one answer) many at once over shared streams; the large ones one
        // after the other, each from every provider (see `batch`).
        let (small, large): (Vec<_>, Vec<_>) =
            collection.entries.iter().zip(targets).partition(|(e, _)| e.size <= shoal_store::small::MAX_SMALL);
        if !small.is_empty() {
            let mut providers = hints.clone();
            if providers.is_empty() && req.discover {
                providers = discover(&node, req.id).await;
            }
            let files = small
                .iter()
                .map(|(e, t)| super::batch::SmallFile { id: e.id, size: e.size, target: t.clone() })
                .collect();
            let got =
                super::batch::fetch_small(&node, files, providers, &staging, &progress, &mut totals.peers).await?;
            totals.resumed += got.resumed;
            totals.received += got.received;
            totals.transfer_secs += got.seconds;
        }
        for (e, target) in large {
            let (t, part) = (target.clone(), staging.join(format!("{}.partial", e.id)));
            adopt(&node, e.id, part.clone(), t.clone()).await?;
            let dest = move |_c: bool| Ok((part, t));
            let before = progress.borrow().verified;
            let want = Want { id: e.id, collection: Some(false), size: Some(e.size) };
            let got = fetch_blob(&node, want, hints.clone(), req.discover, dest, &progress, &mut totals).await?;
            if got.size != e.size {
                return Err(NodeError::Stalled {
                    id: e.id,
                    why: format!("{} has {} bytes, the collection says {}", e.path, got.size, e.size),
                });
            }
            progress.send_modify(|p| {
                p.files_done += 1;
                p.verified = before + e.size;
            });
        }
        // Empty now (every file moved to its name); a leftover means something is still there to resume.
        let _ = std::fs::remove_dir(&staging);
        (collection.total_size(), collection.entries.len())
    };
    record.state = "done".into();
    let node_store = node.store().clone();
    blocking(move || node_store.put_download(&record)).await?;
    let mut peers: Vec<PeerReport> = totals.peers.into_values().collect();
    peers.sort_by_key(|p| std::cmp::Reverse(p.bytes));
    Ok(DownloadReport {
        id: req.id,
        out,
        size,
        collection: first.collection,
        files,
        received: totals.received,
        resumed: totals.resumed,
        seconds: started.elapsed().as_secs_f64(),
        transfer_seconds: totals.transfer_secs,
        peers,
    })
}

/// Providers of `id` found the way the topology finds them, for up to 10 s.
async fn discover(node: &Node, id: ContentId) -> Vec<(PeerId, Vec<Multiaddr>)> {
    let mut out = Vec::new();
    let Ok(mut rx) = node.find_providers(id).await else { return out };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Some(p)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        out.push(p);
    }
    out
}

/// Completes a download of `id` that a crash interrupted right after the file got its final name (see
/// `Store::adopt_finished`); true if it did.
async fn adopt(node: &Node, id: ContentId, partial: PathBuf, out: PathBuf) -> Result<bool, NodeError> {
    if std::fs::symlink_metadata(&out).is_err() {
        return Ok(false);
    }
    let store = node.store().clone();
    blocking(move || store.adopt_finished(&id, &partial, &out)).await
}

/// A DHT lookup's output.
enum Found {
    Peer(PeerId, Vec<Multiaddr>),
    Done,
}

struct Fetched {
    size: u64,
    collection: bool,
    path: PathBuf,
}

/// One blob to fetch, and what the request already knows of it.
struct Want {
    id: ContentId,
    collection: Option<bool>,
    size: Option<u64>,
}

/// Fetches one blob from every provider it can find.
async fn fetch_blob(
    node: &Node,
    want: Want,
    providers: Vec<(PeerId, Vec<Multiaddr>)>,
    discover: bool,
    dest: impl FnOnce(bool) -> Result<(PathBuf, PathBuf), NodeError>,
    progress: &watch::Sender<Progress>,
    totals: &mut Totals,
) -> Result<Fetched, NodeError> {
    let Want { id, collection: collection_hint, size: expected_size } = want;
    // Already here (shared or downloaded before): no network needed.
    let store = node.store().clone();
    let known = blocking(move || Ok::<_, NodeError>((store.complete_path(&id)?, store.is_collection(&id)?))).await?;
    if let (Some(have), is_coll) = known {
        let collection = collection_hint.unwrap_or(is_coll);
        let (partial_path, final_path) = dest(collection)?;
        let size =
            std::fs::metadata(&have).map_err(|e| NodeError::Output { path: have.clone(), why: e.to_string() })?.len();
        if final_path != have {
            let (from, part, to) = (have.clone(), partial_path.clone(), final_path.clone());
            blocking(move || {
                let copied = std::fs::copy(&from, &part)
                    .and_then(|_| std::fs::hard_link(&part, &to))
                    .and_then(|()| std::fs::remove_file(&part));
                copied.map_err(|e| NodeError::Output { path: to.clone(), why: e.to_string() })
            })
            .await?;
        }
        progress.send_modify(|p| {
            if p.files_total <= 1 {
                p.size = size;
            }
            p.verified += size;
        });
        return Ok(Fetched { size, collection, path: final_path });
    }
    let transfer = node.transfer()?;
    let tuning = node.config().download.clone();
    let net = node.network().clone();
    let (ev_tx, mut ev_rx) = mpsc::channel::<SessionEvent>(1024);
    let (found_tx, mut found_rx) = mpsc::channel::<Found>(64);
    let mut sessions: HashMap<PeerId, SessionHandle> = HashMap::new();
    let (mut fetch, opened) =
        Fetch::new(id, node.peer_id(), providers, discover, collection_hint, tuning.clone(), Instant::now());
    fetch.expect_size(expected_size);
    let mut dest = Some(dest);
    let mut active: Option<(Arc<Partial>, PathBuf)> = None;
    let mut checkpoint: Option<tokio::task::JoinHandle<Result<(), shoal_store::StoreError>>> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    // Carries out one step of the state machine; only sessions and lookups are I/O here.
    let open = |sessions: &mut HashMap<PeerId, SessionHandle>, peer: PeerId, addrs: Vec<Multiaddr>| {
        let s = session::spawn(transfer.download_limits().clone(), net.clone(), peer, addrs, id, ev_tx.clone());
        sessions.insert(peer, s);
    };
    for step in opened {
        if let Step::Open { peer, addrs } = step {
            open(&mut sessions, peer, addrs);
        }
    }
    // The request names the size: the file opens at once, and the first requests leave with the `Have`.
    let mut named = fetch.named();
    // The partial file was created by this download (nothing was resumed into it).
    let mut fresh = false;
    let finished = loop {
        if let Some(Step::Lookup) = fetch.lookup(Instant::now()) {
            let (finder, found_tx) = (node.clone(), found_tx.clone());
            tokio::spawn(async move {
                if let Ok(mut rx) = finder.find_providers(id).await {
                    while let Some((p, addrs)) = rx.recv().await {
                        if found_tx.send(Found::Peer(p, addrs)).await.is_err() {
                            return;
                        }
                    }
                }
                let _ = found_tx.send(Found::Done).await;
            });
        }
        let mut steps = Vec::new();
        let mut begin = None;
        tokio::select! {
            () = std::future::ready(()), if named.is_some() => begin = named.take(),
            ev = ev_rx.recv() => {
                let Some(ev) = ev else { break false };
                let now = Instant::now();
                match ev {
                    SessionEvent::Have { peer, size, spans, collection } => {
                        match fetch.on_have(peer, size, &spans, collection, now) {
                            Answer::Steps(s) => steps = s,
                            Answer::Begin { size, collection } => begin = Some((size, collection)),
                        }
                    }
                    SessionEvent::SizeProof { peer, size, proof } => match fetch.on_size_proof(peer, size, proof) {
                        Answer::Steps(s) => steps = s,
                        Answer::Begin { size, collection } => begin = Some((size, collection)),
                    },
                    SessionEvent::NotFound { peer } => steps.extend(fetch.on_not_found(peer)),
                    SessionEvent::PieceOk { peer, piece, bytes, received, arrived } => {
                        transfer.counters().downloaded(peer, received);
                        let counted = fetch.on_piece_ok(peer, piece, bytes, received, arrived.min(now));
                        // Counted now, announced with the rest (at most every `fetch::PUBLISH_EVERY`).
                        let total = fetch.tally.received;
                        progress.send_if_modified(|p| { p.verified += counted; p.received = total; false });
                    }
                    SessionEvent::PieceFailed { peer, piece, failure, why, received } => {
                        transfer.counters().downloaded(peer, received);
                        if failure == Failure::Corrupt { transfer.counters().verification_failed(); }
                        fetch.on_piece_failed(peer, piece, failure, &why, received, now);
                    }
                    SessionEvent::Fatal { error } => return Err(error.into()),
                    SessionEvent::Gone { peer, why } => {
                        sessions.remove(&peer);
                        steps.extend(fetch.on_gone(peer, why, now));
                    }
                }
            }
            found = found_rx.recv() => match found {
                Some(Found::Peer(p, addrs)) => steps.extend(fetch.on_found(p, addrs)),
                _ => fetch.on_lookup_done(),
            },
            _ = tick.tick() => {}
        }
        // The size is proven (or named by the request): only now is the partial file opened (and allocated).
        if let Some((size, collection)) = begin
            && let Some(d) = dest.take()
        {
            let (partial_path, final_path) = d(collection)?;
            let store = node.store().clone();
            let pp = partial_path.clone();
            let mut partial = blocking(move || store.begin_download(&id, size, &pp)).await?;
            if !tuning.direct_writes {
                partial = partial.without_direct_writes();
            }
            let (resumed, joined) = fetch.begin(size, &partial.verified(), collection, Instant::now());
            fresh = resumed == 0;
            steps.extend(joined);
            progress.send_modify(|p| {
                p.size = if p.files_total > 1 { p.size } else { size };
                p.verified += resumed;
            });
            // A peer that is downloading serves what it has verified: tell the DHT.
            let _ = net.provide(id.as_bytes().to_vec()).await;
            active = Some((Arc::new(partial), final_path));
        }
        let idle = checkpoint.as_ref().is_none_or(|h| h.is_finished());
        if idle && let Some(h) = checkpoint.take() {
            h.await.map_err(|e| NodeError::Task(e.to_string()))??;
        }
        let (polled, done) = match fetch.poll(Instant::now(), idle) {
            Ok(polled) => polled,
            // Begun on the request's word and nobody ever answered: the file opened for it holds nothing.
            Err(e @ NodeError::NoProviders { .. }) if fresh => {
                drop((sessions, active));
                let store = node.store().clone();
                blocking(move || store.discard_partial(&id)).await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        steps.extend(polled);
        for step in steps {
            match step {
                Step::Open { peer, addrs } => open(&mut sessions, peer, addrs),
                Step::Close(peer) => {
                    sessions.remove(&peer);
                }
                Step::Get { peer, piece, span } => {
                    let Some((partial, _)) = &active else { continue };
                    let cmd = SessionCmd::Get { piece, span, partial: partial.clone() };
                    if sessions.get(&peer).is_none_or(|s| s.tx.send(cmd).is_err()) {
                        fetch.on_unreachable(&peer);
                    }
                }
                Step::Cancel { peer, span } => {
                    if let Some(s) = sessions.get(&peer) {
                        let _ = s.tx.send(SessionCmd::Cancel { span });
                    }
                }
                Step::AskHave(peer) => {
                    if let Some(s) = sessions.get(&peer) {
                        let _ = s.tx.send(SessionCmd::Have);
                    }
                }
                Step::Probe { peer, size, span } => {
                    if sessions.get(&peer).is_none_or(|s| s.tx.send(SessionCmd::Probe { size, span }).is_err()) {
                        fetch.on_unreachable(&peer);
                    }
                }
                Step::Checkpoint => {
                    if let Some((partial, _)) = &active {
                        let partial = partial.clone();
                        checkpoint = Some(tokio::task::spawn_blocking(move || partial.checkpoint()));
                    }
                }
                Step::Publish { peers, per_peer } => progress.send_modify(|p| {
                    p.peers = peers;
                    p.per_peer = per_peer;
                }),
                Step::Lookup => {}
            }
        }
        if done {
            break true;
        }
    };
    let (Some((partial, final_path)), true) = (active, finished) else {
        return Err(NodeError::NoProviders { id, secs: tuning.stall_timeout.as_secs() });
    };
    if let Some(h) = checkpoint.take() {
        h.await.map_err(|e| NodeError::Task(e.to_string()))??;
    }
    let blob = fetch.finish()?;
    totals.absorb(std::mem::take(&mut fetch.tally), &blob);
    drop(sessions);
    let fp = final_path.clone();
    let recheck = tuning.recheck_on_finish;
    blocking(move || {
        if recheck {
            partial.recheck()?;
        }
        partial.finish(&fp)
    })
    .await?;
    tracing::info!(id = %id.short(), secs = blob.transfer_secs, "download complete");
    Ok(Fetched { size: blob.size, collection: blob.collection, path: final_path })
}
