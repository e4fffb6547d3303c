//! The HTTP routes. Handlers are thin: they parse, call the [`Node`], and shape JSON.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use shoal_node::{ContentId, DownloadReport, DownloadRequest, Node, Progress, Ticket};
use tokio::sync::{Notify, broadcast, watch};

use crate::ApiError;

mod search;

/// Shared state of the API: the node, the token, and the downloads started through the API.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    node: Node,
    token: String,
    downloads: Mutex<BTreeMap<String, Entry>>,
    stop: Notify,
    events: broadcast::Sender<serde_json::Value>,
}

struct Entry {
    name: String,
    out: Option<PathBuf>,
    request: DownloadRequest,
    progress: watch::Receiver<Progress>,
    abort: tokio::task::AbortHandle,
    /// Set when the user paused or cancelled it.
    stopped: Option<&'static str>,
    outcome: Option<Result<DownloadReport, String>>,
}

impl ApiState {
    /// State for `node`, accepting requests that carry `token`.
    pub fn new(node: Node, token: String) -> Self {
        let (events, _) = broadcast::channel(1024);
        let state = Self {
            inner: Arc::new(Inner { node, token, downloads: Mutex::new(BTreeMap::new()), stop: Notify::new(), events }),
        };
        // Peer joins and leaves go to the event feed.
        let mut net = state.inner.node.network().subscribe();
        let tx = state.inner.events.clone();
        tokio::spawn(async move {
            loop {
                let ev = match net.recv().await {
                    Ok(shoal_net::NetEvent::PeerConnected { peer, .. }) => {
                        serde_json::json!({ "type": "peer_connected", "peer": peer.to_string() })
                    }
                    Ok(shoal_net::NetEvent::PeerDisconnected { peer }) => {
                        serde_json::json!({ "type": "peer_disconnected", "peer": peer.to_string() })
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let _ = tx.send(ev);
            }
        });
        state
    }

    fn emit(&self, v: serde_json::Value) {
        let _ = self.inner.events.send(v);
    }

    /// Resolves when a client asked the daemon to stop (`POST /api/v1/stop`).
    pub async fn stop_requested(&self) {
        self.inner.stop.notified().await
    }

    fn downloads(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        shoal_store::lock(&self.inner.downloads)
    }
}

/// The API router.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/shares", get(list_shares).post(add_share))
        .route("/api/v1/downloads", get(list_downloads).post(start_download))
        .route("/api/v1/downloads/{id}", get(one_download))
        .route("/api/v1/downloads/{id}/pause", post(pause_download))
        .route("/api/v1/downloads/{id}/resume", post(resume_download))
        .route("/api/v1/downloads/{id}/cancel", post(cancel_download))
        .route("/api/v1/shares/{id}/remove", post(remove_share))
        .route("/api/v1/events", get(events))
        .route("/api/v1/peers", get(peers))
        .route("/api/v1/search", post(search::search))
        .route("/api/v1/stop", post(stop))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::not_found("no such route; see docs/API.md") })
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

/// Constant-time comparison, so response timing does not leak how much of a guessed token was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let given = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if same(t.trim().as_bytes(), state.inner.token.as_bytes()) => next.run(req).await,
        _ => ApiError::unauthorized().into_response(),
    }
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v).map_err(|e| ApiError::bad_request(format!("malformed JSON body: {}", e.body_text())))
}

#[derive(Serialize)]
struct Status {
    peer: String,
    addrs: Vec<String>,
    home: PathBuf,
    topology: String,
    /// Peers met that run another topology: `[peer id, their topology]`.
    topology_mismatches: Vec<(String, String)>,
    search_neighbours: usize,
    /// Search counters, including the index server's registry size when this peer is one.
    search: shoal_node::SearchCounters,
    shares: usize,
    downloads_active: usize,
    peers_connected: usize,
    uploaded_bytes: u64,
    downloaded_bytes: u64,
    verification_failures: u64,
}

async fn status(State(s): State<ApiState>) -> Result<Json<Status>, ApiError> {
    let node = &s.inner.node;
    let addrs = node.addrs().await?.iter().map(|a| a.to_string()).collect();
    let peers = node.network().peers().await.map_err(ApiError::internal)?.len();
    let shares = node.store().shares().map_err(ApiError::internal)?.len();
    let active = s.downloads().values().filter(|e| e.outcome.is_none()).count();
    Ok(Json(Status {
        peer: node.peer_id().to_string(),
        addrs,
        home: node.config().home.clone(),
        topology: node.config().topology.to_string(),
        topology_mismatches: node.topology_mismatches(),
        search_neighbours: node.search_counters().neighbours,
        search: node.search_counters(),
        shares,
        downloads_active: active,
        peers_connected: peers,
        uploaded_bytes: node.uploaded(),
        downloaded_bytes: node.traffic().downloaded,
        verification_failures: node.traffic().verification_failures,
    }))
}

async fn list_shares(State(s): State<ApiState>) -> Result<Json<Vec<shoal_store::ShareRecord>>, ApiError> {
    Ok(Json(s.inner.node.store().shares().map_err(ApiError::internal)?))
}

#[derive(Deserialize)]
struct AddShare {
    path: PathBuf,
}

#[derive(Serialize)]
struct Shared {
    ticket: String,
    id: ContentId,
    name: String,
    size: u64,
    collection: bool,
    files: usize,
    peer: String,
    addrs: Vec<String>,
}

async fn add_share(
    State(s): State<ApiState>,
    b: Result<Json<AddShare>, JsonRejection>,
) -> Result<Json<Shared>, ApiError> {
    let req = body(b)?;
    if !req.path.is_absolute() {
        return Err(ApiError::bad_request(format!("path {} must be absolute", req.path.display())));
    }
    if !req.path.exists() {
        return Err(ApiError::bad_request(format!("{} does not exist", req.path.display())));
    }
    let info = s.inner.node.share(&req.path).await?;
    let ticket = s.inner.node.ticket(&info).await?;
    Ok(Json(Shared {
        ticket: ticket.to_string(),
        id: info.id,
        name: info.name,
        size: info.size,
        collection: info.is_collection,
        files: info.files.len(),
        peer: s.inner.node.peer_id().to_string(),
        addrs: s.inner.node.addrs().await?.iter().map(|a| a.to_string()).collect(),
    }))
}

#[derive(Deserialize)]
struct StartDownload {
    /// A ticket or a content id.
    what: String,
    /// Absolute output path (default: `<home>/downloads/<name>`).
    output: Option<PathBuf>,
}

#[derive(Serialize)]
struct DownloadView {
    id: String,
    name: String,
    out: Option<PathBuf>,
    state: &'static str,
    progress: Progress,
    error: Option<String>,
    report: Option<DownloadReport>,
}

fn view(id: &str, e: &Entry) -> DownloadView {
    let (state, error, report) = match &e.outcome {
        None => (e.stopped.unwrap_or("running"), None, None),
        Some(Ok(r)) => ("done", None, Some(r.clone())),
        Some(Err(m)) => ("failed", Some(m.clone()), None),
    };
    DownloadView {
        id: id.to_string(),
        name: e.name.clone(),
        out: e.report_out().or_else(|| e.out.clone()),
        state,
        progress: e.progress.borrow().clone(),
        error,
        report,
    }
}

impl Entry {
    fn report_out(&self) -> Option<PathBuf> {
        match &self.outcome {
            Some(Ok(r)) => Some(r.out.clone()),
            _ => None,
        }
    }
}

async fn start_download(
    State(s): State<ApiState>,
    b: Result<Json<StartDownload>, JsonRejection>,
) -> Result<Json<DownloadView>, ApiError> {
    let req = body(b)?;
    Ok(Json(begin(&s, &req.what, req.output, false).await?))
}

/// Records a download request (so that it survives a restart) and starts it, or only lists it if `paused`.
async fn begin(s: &ApiState, what: &str, output: Option<PathBuf>, paused: bool) -> Result<DownloadView, ApiError> {
    let mut out = output.clone();
    if let Some(o) = &out
        && !o.is_absolute()
    {
        return Err(ApiError::bad_request(format!("output {} must be absolute", o.display())));
    }
    if out.is_none() {
        let dir = s.inner.node.config().home.join("downloads");
        std::fs::create_dir_all(&dir).map_err(ApiError::internal)?;
        out = Some(dir);
    }
    let (dreq, name) = match what.trim().parse::<ContentId>() {
        Ok(id) => (DownloadRequest::from_id(id, out.clone()), id.to_string()),
        Err(_) => {
            let t: Ticket =
                what.parse().map_err(|e: shoal_node::ticket::TicketError| ApiError::bad_request(e.to_string()))?;
            (DownloadRequest::from_ticket(&t, out.clone()), t.name.clone())
        }
    };
    let id = dreq.id.to_string();
    if s.downloads().get(&id).is_some_and(|e| e.outcome.is_none() && e.stopped.is_none()) {
        return Err(ApiError::conflict(format!("{id} is already downloading")));
    }
    let record = shoal_store::DownloadRequestRecord {
        id: dreq.id,
        what: what.trim().to_string(),
        output,
        state: if paused { "paused" } else { "running" }.into(),
    };
    s.inner.node.store().put_request(&record).map_err(ApiError::internal)?;
    let (progress, abort, stopped) = if paused {
        (watch::channel(Progress::default()).1, tokio::spawn(async {}).abort_handle(), Some("paused"))
    } else {
        let (p, a) = launch(s, id.clone(), dreq.clone()).await?;
        (p, a, None)
    };
    let entry = Entry { name, out, request: dreq, progress, abort, stopped, outcome: None };
    let v = view(&id, &entry);
    s.downloads().insert(id, entry);
    Ok(v)
}

impl ApiState {
    /// Takes up the downloads a previous run of the daemon had not finished (paused ones stay paused).
    pub async fn resume_requests(&self) -> Result<usize, ApiError> {
        let requests = self.inner.node.store().requests().map_err(ApiError::internal)?;
        let n = requests.len();
        for r in requests {
            tracing::info!(id = %r.id.short(), state = %r.state, "taking up an unfinished download");
            if let Err(e) = begin(self, &r.what, r.output.clone(), r.state == "paused").await {
                tracing::warn!(id = %r.id.short(), error = %e, "cannot take up a download; dropping it");
                let _ = self.inner.node.store().remove_request(&r.id);
            }
        }
        Ok(n)
    }

    fn set_request_state(&self, id: &str, state: Option<&str>) {
        let Ok(cid) = id.parse::<ContentId>() else { return };
        let store = self.inner.node.store();
        let r = match state {
            None => store.remove_request(&cid),
            Some(state) => match store.requests() {
                Ok(all) => match all.into_iter().find(|r| r.id == cid) {
                    Some(mut r) => {
                        r.state = state.into();
                        store.put_request(&r)
                    }
                    None => Ok(()),
                },
                Err(e) => Err(e),
            },
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "cannot record a download's state");
        }
    }
}

/// Starts (or restarts) a download and the task that reports on it.
async fn launch(
    s: &ApiState,
    id: String,
    req: DownloadRequest,
) -> Result<(watch::Receiver<Progress>, tokio::task::AbortHandle), ApiError> {
    let handle = s.inner.node.download(req).await?;
    let (progress, abort) = (handle.progress(), handle.abort_handle());
    let state = s.clone();
    let mut watch = handle.progress();
    tokio::spawn(async move {
        let reporter = {
            let (state, id) = (state.clone(), id.clone());
            async move {
                while watch.changed().await.is_ok() {
                    let p = watch.borrow().clone();
                    state.emit(serde_json::json!({ "type": "download_progress", "id": id, "progress": p }));
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
            }
        };
        let outcome = tokio::select! {
            r = handle.finish() => r.map_err(|e| e.to_string()),
            _ = reporter => return,
        };
        let mut d = state.downloads();
        let Some(e) = d.get_mut(&id) else { return };
        if e.stopped.is_some() {
            return;
        }
        let ev = match &outcome {
            Ok(r) => serde_json::json!({ "type": "download_done", "id": id, "report": r }),
            Err(m) => serde_json::json!({ "type": "download_failed", "id": id, "error": m }),
        };
        e.outcome = Some(outcome);
        drop(d);
        // Done or failed for good: nothing to take up after a restart.
        state.set_request_state(&id, None);
        state.emit(ev);
    });
    Ok((progress, abort))
}

async fn pause_download(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<DownloadView>, ApiError> {
    let mut d = s.downloads();
    let e = d.get_mut(&id).ok_or_else(|| ApiError::not_found(format!("no download with id {id}")))?;
    if e.outcome.is_some() || e.stopped.is_some() {
        return Err(ApiError::conflict(format!("{id} is not running")));
    }
    e.stopped = Some("paused");
    e.abort.abort();
    let v = view(&id, e);
    drop(d);
    s.set_request_state(&id, Some("paused"));
    s.emit(serde_json::json!({ "type": "download_paused", "id": id }));
    Ok(Json(v))
}

async fn resume_download(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<DownloadView>, ApiError> {
    let req = {
        let d = s.downloads();
        let e = d.get(&id).ok_or_else(|| ApiError::not_found(format!("no download with id {id}")))?;
        if e.stopped != Some("paused") {
            return Err(ApiError::conflict(format!("{id} is not paused")));
        }
        e.request.clone()
    };
    let (progress, abort) = launch(&s, id.clone(), req).await?;
    let mut d = s.downloads();
    let e = d.get_mut(&id).ok_or_else(|| ApiError::not_found(format!("no download with id {id}")))?;
    e.progress = progress;
    e.abort = abort;
    e.stopped = None;
    let v = view(&id, e);
    drop(d);
    s.set_request_state(&id, Some("running"));
    Ok(Json(v))
}

async fn cancel_download(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<DownloadView>, ApiError> {
    let cid: ContentId = id.parse().map_err(|_| ApiError::not_found(format!("no download with id {id}")))?;
    let v = {
        let mut d = s.downloads();
        let e = d.get_mut(&id).ok_or_else(|| ApiError::not_found(format!("no download with id {id}")))?;
        if e.outcome.is_some() {
            return Err(ApiError::conflict(format!("{id} has already ended")));
        }
        e.stopped = Some("cancelled");
        e.abort.abort();
        view(&id, e)
    };
    let store = s.inner.node.store().clone();
    // The partial file goes; a finished file or a shared one is never touched.
    tokio::task::spawn_blocking(move || store.discard_partial(&cid))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    s.set_request_state(&id, None);
    s.emit(serde_json::json!({ "type": "download_cancelled", "id": id }));
    Ok(Json(v))
}

async fn remove_share(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    let cid: ContentId = id.parse().map_err(|_| ApiError::not_found(format!("no share with id {id}")))?;
    if !s.inner.node.unshare(&cid).await? {
        return Err(ApiError::not_found(format!("no share with id {id}")));
    }
    Ok(Json(serde_json::json!({ "removed": id })))
}

async fn events(
    State(s): State<ApiState>,
) -> Sse<impl futures::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let rx = s.inner.events.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(v) => {
                    let kind = v["type"].as_str().unwrap_or("event").to_string();
                    return Some((Ok(Event::default().event(kind).data(v.to_string())), rx));
                }
                // A slow reader misses the oldest events rather than holding memory.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn list_downloads(State(s): State<ApiState>) -> Json<Vec<DownloadView>> {
    Json(s.downloads().iter().map(|(id, e)| view(id, e)).collect())
}

async fn one_download(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<DownloadView>, ApiError> {
    let d = s.downloads();
    let e = d.get(&id).ok_or_else(|| ApiError::not_found(format!("no download with id {id}")))?;
    Ok(Json(view(&id, e)))
}

#[derive(Serialize)]
struct PeerView {
    peer: String,
    addrs: Vec<String>,
    agent: Option<String>,
    /// Bytes served to it since the daemon started.
    uploaded: u64,
    /// Bytes received from it since the daemon started.
    downloaded: u64,
}

async fn peers(State(s): State<ApiState>) -> Result<Json<Vec<PeerView>>, ApiError> {
    let peers = s.inner.node.network().peers().await.map_err(ApiError::internal)?;
    let traffic = s.inner.node.traffic();
    Ok(Json(
        peers
            .into_iter()
            .map(|p| {
                let (uploaded, downloaded) = traffic.by_peer.get(&p.peer.to_string()).copied().unwrap_or_default();
                PeerView {
                    peer: p.peer.to_string(),
                    addrs: p.addrs.iter().map(|a| a.to_string()).collect(),
                    agent: p.agent,
                    uploaded,
                    downloaded,
                }
            })
            .collect(),
    ))
}

async fn stop(State(s): State<ApiState>) -> Json<serde_json::Value> {
    s.inner.stop.notify_one();
    Json(serde_json::json!({ "stopping": true }))
}

async fn metrics(State(s): State<ApiState>) -> Result<Response, ApiError> {
    let peers = s.inner.node.network().peers().await.map_err(ApiError::internal)?.len();
    let active = s.downloads().values().filter(|e| e.outcome.is_none() && e.stopped.is_none()).count();
    let t = s.inner.node.traffic();
    let text = format!(
        "# HELP shoal_uploaded_bytes_total Bytes uploaded to other peers.\n\
         # TYPE shoal_uploaded_bytes_total counter\n\
         shoal_uploaded_bytes_total {}\n\
         # HELP shoal_downloaded_bytes_total Bytes downloaded from other peers.\n\
         # TYPE shoal_downloaded_bytes_total counter\n\
         shoal_downloaded_bytes_total {}\n\
         # HELP shoal_verification_failures_total Pieces that failed verification.\n\
         # TYPE shoal_verification_failures_total counter\n\
         shoal_verification_failures_total {}\n\
         # HELP shoal_uploads_cancelled_total Pieces not sent because the downloader withdrew the request.\n\
         # TYPE shoal_uploads_cancelled_total counter\n\
         shoal_uploads_cancelled_total {}\n\
         # HELP shoal_connected_peers Peers connected now.\n\
         # TYPE shoal_connected_peers gauge\n\
         shoal_connected_peers {peers}\n\
         # HELP shoal_active_downloads Downloads in progress.\n\
         # TYPE shoal_active_downloads gauge\n\
         shoal_active_downloads {active}\n",
        t.uploaded, t.downloaded, t.verification_failures, t.uploads_cancelled
    );
    let c = s.inner.node.search_counters();
    let mut text = text;
    for (name, help, kind, v) in [
        ("shoal_searches_total", "Searches started on this peer.", "counter", c.searches),
        ("shoal_search_hits_total", "Hits delivered to searches started here.", "counter", c.hits),
        ("shoal_search_neighbours", "Overlay neighbours (pure topology).", "gauge", c.neighbours as u64),
        (
            "shoal_search_queries_received_total",
            "Queries received from other peers.",
            "counter",
            c.router.queries_received,
        ),
        ("shoal_search_duplicate_queries_total", "Queries dropped as already seen.", "counter", c.router.duplicates),
        (
            "shoal_search_throttled_queries_total",
            "Queries dropped: sender over its rate.",
            "counter",
            c.router.throttled,
        ),
        (
            "shoal_search_queries_sent_total",
            "Query messages sent (originated or forwarded).",
            "counter",
            c.router.queries_sent,
        ),
        (
            "shoal_search_hit_messages_sent_total",
            "Hit messages sent (answered or routed back).",
            "counter",
            c.router.hits_sent,
        ),
    ] {
        text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"));
    }
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}
