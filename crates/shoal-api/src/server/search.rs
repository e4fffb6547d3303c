//! `POST /api/v1/search`: runs a search on the node and streams its events as they come.
//!
//! The answer is newline-delimited JSON (`application/x-ndjson`): one `{"type":"hit",...}` line per hit and a
//! last `{"type":"done",...}` line with the figures. The same events go to the event feed as `search_hit` and
//! `search_done`, tagged with the search number, for clients that follow `/api/v1/events`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::response::{IntoResponse, Response};
use shoal_node::search::FeedEvent;
use shoal_node::{ContentId, SearchEvent, SearchRequest};
use shoal_proto::search::{Filters, Query, Want, messages::MAX_QUERY_TEXT};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiState, body};
use crate::ApiError;
use crate::types::{ErrorBody, SearchBody, SearchLine};

static NEXT_SEARCH: AtomicU64 = AtomicU64::new(1);

/// Longest search a client may ask for.
const MAX_TIMEOUT_SECS: u64 = 300;

fn request(b: SearchBody) -> Result<SearchRequest, ApiError> {
    let want = match (b.text, b.id) {
        (Some(t), None) => {
            if t.len() > MAX_QUERY_TEXT || shoal_proto::search::keywords::words(&t).is_empty() {
                return Err(ApiError::bad_request(format!(
                    "text must hold at least one letter or digit and at most {MAX_QUERY_TEXT} bytes"
                )));
            }
            Want::Words(t)
        }
        (None, Some(id)) => {
            let id: ContentId =
                id.parse().map_err(|_| ApiError::bad_request("id must be 64 hex digits (a BLAKE3 hash)"))?;
            Want::Id(*id.as_bytes())
        }
        _ => return Err(ApiError::bad_request("give either text or id")),
    };
    if let Some(e) = &b.ext
        && (e.is_empty() || e.len() > 16 || !e.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return Err(ApiError::bad_request("ext must be 1 to 16 letters or digits, without the dot"));
    }
    let timeout = b.timeout_secs.unwrap_or(10);
    if timeout == 0 || timeout > MAX_TIMEOUT_SECS {
        return Err(ApiError::bad_request(format!("timeout_secs must be between 1 and {MAX_TIMEOUT_SECS}")));
    }
    Ok(SearchRequest {
        query: Query { want, filters: Filters { min_size: b.min_size, max_size: b.max_size, ext: b.ext } },
        limit: b.limit.unwrap_or(50).clamp(1, 1000),
        timeout: Duration::from_secs(timeout),
    })
}

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(search))
}

/// Runs a search; the answer is newline-delimited JSON (`application/x-ndjson`), one [`SearchLine`] per
/// hit as it arrives and a last one with the figures.
#[utoipa::path(post, path = "/api/v1/search", request_body = SearchBody,
    responses((status = 200, content_type = "application/x-ndjson", body = SearchLine), (status = 400, body = ErrorBody)))]
async fn search(State(s): State<ApiState>, b: Result<Json<SearchBody>, JsonRejection>) -> Result<Response, ApiError> {
    let req = request(body(b)?)?;
    let stream = s.node().search(req).await?;
    let search = NEXT_SEARCH.fetch_add(1, Ordering::Relaxed);
    let lines = futures::stream::unfold((stream, s, false), move |(mut stream, s, done)| async move {
        if done {
            return None;
        }
        let event = stream.next().await?;
        let last = matches!(event, SearchEvent::Done(_));
        s.node().events().emit(match &event {
            SearchEvent::Hit(hit) => FeedEvent::SearchHit { search, hit: hit.clone() },
            SearchEvent::Done(stats) => FeedEvent::SearchDone { search, stats: stats.clone() },
        });
        let mut line = serde_json::to_string(&SearchLine { search, event }).unwrap_or_default();
        line.push('\n');
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(line)), (stream, s, last)))
    });
    Ok(([(axum::http::header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines)).into_response())
}
