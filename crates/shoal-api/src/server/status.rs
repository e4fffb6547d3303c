//! `GET /api/v1/status`, `GET /api/v1/config`, `GET /api/v1/traffic`, `GET /api/v1/peers`,
//! `POST /api/v1/stop`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use shoal_node::transfer::history::{TrafficHistory, history};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiState;
use crate::ApiError;
use crate::types::{ConfigView, PeerView, Status, Stopping, TrafficWindow};

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(config))
        .routes(routes!(traffic))
        .routes(routes!(peers))
        .routes(routes!(stop))
}

/// The configuration the daemon runs with (flags, environment and config file already applied).
#[utoipa::path(get, path = "/api/v1/config", responses((status = 200, body = ConfigView)))]
async fn config(State(s): State<ApiState>) -> Json<ConfigView> {
    let c = s.node().config();
    let text = |v: &[shoal_net::Multiaddr]| v.iter().map(|a| a.to_string()).collect();
    Json(ConfigView {
        home: c.home.clone(),
        topology: c.topology.to_string(),
        listen: text(&c.net.listen),
        bootstrap: text(&c.net.bootstrap),
        mdns: c.net.mdns,
        dht: c.net.dht,
        max_connections: c.net.max_connections,
        upload_limit: c.upload_limit,
        upload_limit_per_peer: c.upload_limit_per_peer,
        download_limit: c.download_limit,
        download_limit_per_peer: c.download_limit_per_peer,
        index_servers: text(&c.search.index_servers),
        index_server: c.search.index_server,
        max_bytes_in_flight: c.download.max_bytes_in_flight,
    })
}

/// Bytes sent and received per bucket over the last hour (360 buckets of 10 s) or day (288 of 5 min),
/// from the samples kept in the catalog; live samples come on the event feed as `traffic` events.
#[utoipa::path(get, path = "/api/v1/traffic", params(TrafficWindow),
    responses((status = 200, body = TrafficHistory), (status = 400, body = crate::types::ErrorBody)))]
async fn traffic(
    State(s): State<ApiState>,
    q: Result<Query<TrafficWindow>, QueryRejection>,
) -> Result<Json<TrafficHistory>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(format!("malformed query string: {}", e.body_text())))?;
    let (span_ms, buckets) = match q.window.as_deref().unwrap_or("hour") {
        "hour" => (3_600_000, 360),
        "day" => (86_400_000, 288),
        other => return Err(ApiError::bad_request(format!("window {other:?} is not one of: hour, day"))),
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let store = s.node().store().clone();
    let since = now.saturating_sub(span_ms);
    let samples = tokio::task::spawn_blocking(move || store.traffic_since(since))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(Json(history(&samples, now, span_ms, buckets)))
}

/// What this peer is and does.
#[utoipa::path(get, path = "/api/v1/status", responses((status = 200, body = Status)))]
async fn status(State(s): State<ApiState>) -> Result<Json<Status>, ApiError> {
    let node = s.node();
    let addrs = node.addrs().await?.iter().map(|a| a.to_string()).collect();
    let peers = node.network().peers().await.map_err(ApiError::internal)?.len();
    let shares = node.store().shares().map_err(ApiError::internal)?.len();
    let search = node.search_counters();
    let traffic = node.traffic();
    let active = node.list_downloads().iter().filter(|d| d.state == shoal_node::DownloadState::Running).count();
    Ok(Json(Status {
        peer: node.peer_id().to_string(),
        addrs,
        home: node.config().home.clone(),
        topology: node.config().topology.to_string(),
        topology_mismatches: node.topology_mismatches(),
        search_neighbours: search.neighbours,
        search,
        shares,
        downloads_active: active,
        peers_connected: peers,
        uploaded_bytes: traffic.uploaded,
        downloaded_bytes: traffic.downloaded,
        verification_failures: traffic.verification_failures,
        services: node.services().iter().map(|sv| (sv.name().to_string(), sv.status())).collect(),
    }))
}

/// Peers connected now, with the traffic exchanged with each.
#[utoipa::path(get, path = "/api/v1/peers", responses((status = 200, body = Vec<PeerView>)))]
async fn peers(State(s): State<ApiState>) -> Result<Json<Vec<PeerView>>, ApiError> {
    let peers = s.node().network().peers().await.map_err(ApiError::internal)?;
    let traffic = s.node().traffic();
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

/// Stops the daemon once it has answered.
#[utoipa::path(post, path = "/api/v1/stop", responses((status = 200, body = Stopping)))]
async fn stop(State(s): State<ApiState>) -> Json<Stopping> {
    s.inner.stop.notify_one();
    Json(Stopping { stopping: true })
}
