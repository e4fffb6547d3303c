//! `GET /api/v1/status`, `GET /api/v1/config`, `GET /api/v1/peers`, `POST /api/v1/stop`.

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiState;
use crate::ApiError;
use crate::types::{ConfigView, PeerView, Status, Stopping};

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(status)).routes(routes!(config)).routes(routes!(peers)).routes(routes!(stop))
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
