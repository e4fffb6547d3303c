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
use serde::Deserialize;
use shoal_node::{ContentId, SearchEvent, SearchRequest};
use shoal_proto::search::{Filters, Query, Want, messages::MAX_QUERY_TEXT};

use super::{ApiState, body};
use crate::ApiError;

static NEXT_SEARCH: AtomicU64 = AtomicU64::new(1);

/// Longest search a client may ask for.
const MAX_TIMEOUT_SECS: u64 = 300;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchBody {
    /// Words (prefixes) to look for.
    text: Option<String>,
    /// Or: a content id whose providers to find.
    id: Option<String>,
    limit: Option<usize>,
    timeout_secs: Option<u64>,
    min_size: Option<u64>,
    max_size: Option<u64>,
    ext: Option<String>,
}

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

pub(super) async fn search(
    State(s): State<ApiState>,
    b: Result<Json<SearchBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = request(body(b)?)?;
    let stream = s.inner.node.search(req).await?;
    let n = NEXT_SEARCH.fetch_add(1, Ordering::Relaxed);
    let lines = futures::stream::unfold((stream, s, false), move |(mut stream, s, done)| async move {
        if done {
            return None;
        }
        let ev = stream.next().await?;
        let mut v = serde_json::to_value(&ev).unwrap_or_default();
        let last = matches!(ev, SearchEvent::Done(_));
        let mut feed = v.clone();
        feed["type"] = format!("search_{}", v["type"].as_str().unwrap_or("event")).into();
        feed["search"] = n.into();
        s.emit(feed);
        v["search"] = n.into();
        let mut line = v.to_string();
        line.push('\n');
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(line)), (stream, s, last)))
    });
    Ok(([(axum::http::header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines)).into_response())
}
