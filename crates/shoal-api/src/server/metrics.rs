//! `GET /metrics`: the node's registry (its services' figures and libp2p's) in the OpenMetrics text format.

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::ApiState;

pub(super) async fn metrics(State(s): State<ApiState>) -> Response {
    let text = s.node().metrics().encode();
    ([(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
        .into_response()
}
