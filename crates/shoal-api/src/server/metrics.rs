//! `GET /metrics`: Prometheus text format.

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use crate::ApiError;

pub(super) async fn metrics(State(s): State<ApiState>) -> Result<Response, ApiError> {
    let peers = s.node().network().peers().await.map_err(ApiError::internal)?.len();
    let active = s.node().list_downloads().iter().filter(|d| d.state == shoal_node::DownloadState::Running).count();
    let t = s.node().traffic();
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
    let c = s.node().search_counters();
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
