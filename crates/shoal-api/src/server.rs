//! The HTTP routes, one file per resource under `server/`. Handlers are thin: they parse, call the
//! [`Node`], and answer with the types of [`crate::types`].
//!
//! Routes are registered through `utoipa-axum`'s `routes!`, which adds each handler's `#[utoipa::path]`
//! to the OpenAPI description as it adds the route: the description served at `/api/v1/openapi.json`
//! lists exactly the routes that exist. A new service adds its file here and one `.merge(...)` line in
//! [`router`].

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use shoal_node::{ContentId, Node};
use tokio::sync::Notify;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::ApiError;

pub mod base;
mod downloads;
mod events;
mod messages;
mod metrics;
mod search;
mod shares;
mod status;
pub mod ui;

/// Shared state of the API: the node, the token, the event feed with its replay buffer.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    node: Node,
    token: String,
    /// A persistent key for remote tools (`api_key`), accepted as well as the per-run token.
    key: Option<String>,
    stop: Notify,
    feed: events::Feed,
    /// The web UI's login codes and sessions.
    logins: std::sync::Mutex<ui::Logins>,
    /// The base path a reverse proxy serves the daemon under, if it forwards it unchanged.
    base: Option<base::BasePath>,
}

impl ApiState {
    /// State for `node`, accepting requests that carry `token`. Starts numbering the node's events for
    /// the feed.
    pub fn new(node: Node, token: String) -> Self {
        Self::configured(node, token, None, None)
    }

    /// State for `node` that also accepts a persistent API `key` and is served under `base` as well as at
    /// `/` (see `daemon::ApiOptions`; give the router to [`base::serve_under`]).
    pub fn configured(node: Node, token: String, key: Option<String>, base: Option<base::BasePath>) -> Self {
        let feed = events::Feed::start(&node);
        let logins = Default::default();
        Self { inner: Arc::new(Inner { node, token, key, stop: Notify::new(), feed, logins, base }) }
    }

    /// A one-time login path for the web UI (`/#code=...`, under the base path if there is one), as
    /// `POST /api/v1/ui/code` makes (for a program that runs the API in-process, like `shoal demo --ui`).
    pub fn ui_login_path(&self) -> String {
        let code = self.logins().new_code(std::time::Instant::now());
        self.login_path(&code)
    }

    fn login_path(&self, code: &str) -> String {
        format!("{}/#code={code}", self.inner.base.as_ref().map_or("", |b| b.as_str()))
    }

    /// Web UI sessions open now.
    pub fn ui_sessions(&self) -> usize {
        self.logins().open_sessions(std::time::Instant::now())
    }

    fn logins(&self) -> std::sync::MutexGuard<'_, ui::Logins> {
        shoal_store::lock(&self.inner.logins)
    }

    /// Whether `headers` carry the per-run token or the persistent key.
    fn bearer_ok(&self, headers: &axum::http::HeaderMap) -> bool {
        let given = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        given.is_some_and(|t| {
            let t = t.trim().as_bytes();
            same(t, self.inner.token.as_bytes()) | self.inner.key.as_ref().is_some_and(|k| same(t, k.as_bytes()))
        })
    }

    /// Resolves when a client asked the daemon to stop (`POST /api/v1/stop`).
    pub async fn stop_requested(&self) {
        self.inner.stop.notified().await
    }

    /// Takes up the downloads a previous run of the daemon had recorded (paused ones stay paused).
    pub async fn resume_requests(&self) -> Result<usize, ApiError> {
        Ok(self.inner.node.recover_downloads().await?)
    }

    fn node(&self) -> &Node {
        &self.inner.node
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Shoal local API",
        description = "The API of a Shoal daemon (`shoal daemon`): every route needs `Authorization: Bearer <api.token>`, or the web UI's session cookie (and, for anything but GET, its `X-Shoal-Csrf` header). Errors answer `{\"error\": \"...\"}`."
    ),
    components(schemas(crate::types::ErrorBody, ui::UiLogin, ui::UiSession))
)]
struct ApiDoc;

/// The routes of `/api/v1` and their OpenAPI description, built together.
fn api() -> (Router<ApiState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(status::routes())
        .merge(shares::routes())
        .merge(downloads::routes())
        .merge(events::routes())
        .merge(search::routes())
        .merge(messages::routes())
        .merge(ui::routes())
        .split_for_parts()
}

/// The OpenAPI 3 description of `/api/v1` (what `/api/v1/openapi.json` serves).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// The API router.
pub fn router(state: ApiState) -> Router {
    let (routes, doc) = api();
    let doc = Arc::new(doc);
    routes
        .route("/api/v1/openapi.json", axum::routing::get(move || async move { Json(doc.as_ref().clone()) }))
        .route("/metrics", axum::routing::get(metrics::metrics))
        .fallback(|| async { ApiError::not_found("no such route; see docs/API.md or /api/v1/openapi.json") })
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        // The web UI's files and its login need no credentials (added after the auth layer, so it does
        // not wrap them).
        .route("/", axum::routing::get(|| async { ui::file("") }))
        .route("/ui/{file}", axum::routing::get(|Path(f): Path<String>| async move { ui::file(&f) }))
        .route("/ui/login", axum::routing::post(ui::login))
        .route("/ui/session", axum::routing::get(ui::session))
        .route("/ui/logout", axum::routing::post(ui::logout))
        .layer(middleware::from_fn(json_errors))
        .with_state(state)
}

/// Extractors answer their own rejections in plain text (a path segment that is not UTF-8, a method the
/// route does not take); every error of this API is `{"error": "..."}`, so those are rewritten (found by
/// the request fuzzer, `tests/fuzz.rs`).
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let text = axum::body::to_bytes(resp.into_body(), 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("error").to_lowercase() } else { text };
    ApiError { status, message }.into_response()
}

/// Constant-time comparison, so response timing does not leak how much of a guessed token was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.ct_eq(b))
}

async fn auth(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    if state.bearer_ok(req.headers()) {
        return next.run(req).await;
    }
    let changes = !matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    let cookie = state.logins().check(req.headers(), changes, std::time::Instant::now());
    match cookie {
        ui::CookieAuth::Ok => next.run(req).await,
        ui::CookieAuth::NoCsrf => ApiError {
            status: axum::http::StatusCode::FORBIDDEN,
            message: format!("missing or wrong {} header: reload the page", ui::CSRF_HEADER),
        }
        .into_response(),
        ui::CookieAuth::None => ApiError::unauthorized().into_response(),
    }
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v).map_err(|e| ApiError::bad_request(format!("malformed JSON body: {}", e.body_text())))
}

/// A content id from a path segment; anything else names nothing (404).
fn path_id(id: &str, what: &str) -> Result<ContentId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found(format!("no {what} with id {id}")))
}

/// `bytes` random bytes as lowercase hex: the API's bearer token, the UI's one-time codes, session ids and
/// CSRF tokens. `rand`'s thread generator is a CSPRNG seeded from the operating system.
pub(crate) fn random_hex(bytes: usize) -> String {
    let b: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    data_encoding::HEXLOWER.encode(&b)
}
