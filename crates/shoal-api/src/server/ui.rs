//! The web UI: its files, embedded in the binary and served at `/`, and how a browser logs in.
//!
//! A browser never sees the bearer token. `shoal ui` asks the daemon (with the token) for a one-time code
//! (`POST /api/v1/ui/code`) and opens `/#code=...`; the page sends the code to `POST /ui/login`, which
//! spends it and answers with a session cookie (HttpOnly, SameSite=Strict: page scripts cannot read it and
//! other sites' pages cannot send it) and a CSRF token the page keeps in memory. Requests with the cookie
//! must carry that token in `X-Shoal-Csrf` for anything but GET: a form on another site cannot set the
//! header (Transmission's `X-Transmission-Session-Id` works the same way). A reload asks `GET /ui/session`
//! for the token again (the cookie proves the session). Codes live [`CODE_TTL`] and are used once;
//! sessions end after [`SESSION_IDLE`] unused. Both are bounded in number.
//!
//! The files are build-free (standard ES modules, no framework, no bundler): `cargo build` alone makes a
//! binary with the UI, and what is served is what is in `crates/shoal-api/ui/`. The UI's types come from
//! the OpenAPI description (`ui/api.d.ts`, generated and kept in step by a test).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::base::CameUnder;
use super::{ApiState, body};
use crate::ApiError;
use crate::types::ErrorBody;

/// How long a one-time code may wait to be used.
pub const CODE_TTL: Duration = Duration::from_secs(120);
/// A session unused this long is ended.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);
const MAX_CODES: usize = 16;
const MAX_SESSIONS: usize = 64;
/// The session cookie's name.
pub(crate) const COOKIE: &str = "shoal_session";
/// The header that carries the CSRF token.
pub(crate) const CSRF_HEADER: &str = "x-shoal-csrf";

/// Codes waiting to be used and sessions open, behind the API state's mutex.
#[derive(Default)]
pub(crate) struct Logins {
    codes: HashMap<String, Instant>,
    sessions: HashMap<String, Session>,
}

struct Session {
    csrf: String,
    used: Instant,
}

/// How a request with a session cookie fared.
pub(crate) enum CookieAuth {
    /// No session cookie, or not one we know.
    None,
    /// A valid session, and the request may go on.
    Ok,
    /// A valid session, but a state-changing request without the right CSRF header.
    NoCsrf,
}

impl Logins {
    pub(crate) fn new_code(&mut self, now: Instant) -> String {
        self.codes.retain(|_, at| now.duration_since(*at) < CODE_TTL);
        if self.codes.len() >= MAX_CODES
            && let Some(oldest) = self.codes.iter().min_by_key(|(_, at)| **at).map(|(c, _)| c.clone())
        {
            self.codes.remove(&oldest);
        }
        let code = super::random_hex(16);
        self.codes.insert(code.clone(), now);
        code
    }

    /// Spends `code`; the new session's id and CSRF token.
    fn login(&mut self, code: &str, now: Instant) -> Option<(String, String)> {
        let at = self.codes.remove(code)?;
        if now.duration_since(at) >= CODE_TTL {
            return None;
        }
        self.sessions.retain(|_, s| now.duration_since(s.used) < SESSION_IDLE);
        if self.sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = self.sessions.iter().min_by_key(|(_, s)| s.used).map(|(id, _)| id.clone())
        {
            self.sessions.remove(&oldest);
        }
        let (id, csrf) = (super::random_hex(32), super::random_hex(32));
        self.sessions.insert(id.clone(), Session { csrf: csrf.clone(), used: now });
        Some((id, csrf))
    }

    fn session(&mut self, id: &str, now: Instant) -> Option<&mut Session> {
        if self.sessions.get(id).is_some_and(|s| now.duration_since(s.used) >= SESSION_IDLE) {
            self.sessions.remove(id);
        }
        let s = self.sessions.get_mut(id)?;
        s.used = now;
        Some(s)
    }

    /// Checks a request's session cookie and, for a state-changing `method`, its CSRF header.
    pub(crate) fn check(&mut self, headers: &HeaderMap, state_changing: bool, now: Instant) -> CookieAuth {
        let Some(id) = cookie(headers, COOKIE) else { return CookieAuth::None };
        let Some(s) = self.session(&id, now) else { return CookieAuth::None };
        if !state_changing {
            return CookieAuth::Ok;
        }
        let given = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if super::same(given.as_bytes(), s.csrf.as_bytes()) { CookieAuth::Ok } else { CookieAuth::NoCsrf }
    }

    /// Sessions not idle past [`SESSION_IDLE`].
    pub(crate) fn open_sessions(&self, now: Instant) -> usize {
        self.sessions.values().filter(|s| now.duration_since(s.used) < SESSION_IDLE).count()
    }

    fn logout(&mut self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, COOKIE) {
            self.sessions.remove(&id);
        }
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// `POST /api/v1/ui/code`: a one-time login code for the web UI.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct UiCode {
    /// Spend it at `POST /ui/login` within `expires_secs`; it works once.
    pub code: String,
    /// Seconds it stays valid.
    pub expires_secs: u64,
    /// The UI's path with the code (`/#code=...`), to append to the API's address.
    pub path: String,
}

/// `POST /ui/login`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UiLogin {
    /// The one-time code.
    pub code: String,
}

/// What `POST /ui/login` and `GET /ui/session` answer (the session itself is the cookie).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct UiSession {
    /// Send it as `X-Shoal-Csrf` with every request that changes something.
    pub csrf: String,
}

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(new_code))
}

/// Makes a one-time login code for the web UI (bearer token only: a browser session cannot make more).
#[utoipa::path(post, path = "/api/v1/ui/code", responses((status = 200, body = UiCode), (status = 401, body = ErrorBody)))]
async fn new_code(State(s): State<ApiState>, headers: HeaderMap) -> Result<Json<UiCode>, ApiError> {
    if !s.bearer_ok(&headers) {
        return Err(ApiError {
            status: StatusCode::FORBIDDEN,
            message: "login codes are made with the bearer token only (`shoal ui`)".into(),
        });
    }
    let code = s.logins().new_code(Instant::now());
    Ok(Json(UiCode { path: s.login_path(&code), code, expires_secs: CODE_TTL.as_secs() }))
}

/// The cookie that carries a session (or ends one, with an empty value).
/// Scoped to the base path the request came in under (`/` at the root; see [`super::base`]).
fn session_cookie(id: &str, max_age: u64, under: Option<&CameUnder>) -> Result<HeaderValue, ApiError> {
    let path = under.map_or("", |u| u.0.as_str());
    HeaderValue::from_str(&format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path={path}/; Max-Age={max_age}"))
        .map_err(ApiError::internal)
}

/// `POST /ui/login`: spends a one-time code; sets the session cookie and answers the CSRF token.
pub(super) async fn login(
    State(s): State<ApiState>,
    under: Option<Extension<CameUnder>>,
    b: Result<Json<UiLogin>, JsonRejection>,
) -> Response {
    let r = async {
        let code = body(b)?.code;
        let (id, csrf) = s.logins().login(code.trim(), Instant::now()).ok_or_else(|| ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "this login code is unknown, used or expired: run `shoal ui` for a new one".into(),
        })?;
        let cookie = session_cookie(&id, SESSION_IDLE.as_secs(), under.as_deref())?;
        Ok::<_, ApiError>(([(header::SET_COOKIE, cookie)], Json(UiSession { csrf })).into_response())
    };
    r.await.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /ui/session`: the CSRF token of the session the cookie names (a page that was reloaded).
pub(super) async fn session(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    let Some(id) = cookie(&headers, COOKIE) else { return not_logged_in() };
    let csrf = s.logins().session(&id, Instant::now()).map(|x| x.csrf.clone());
    match csrf {
        Some(csrf) => Json(UiSession { csrf }).into_response(),
        None => not_logged_in(),
    }
}

/// `POST /ui/logout`: ends the session.
pub(super) async fn logout(
    State(s): State<ApiState>,
    under: Option<Extension<CameUnder>>,
    headers: HeaderMap,
) -> Response {
    s.logins().logout(&headers);
    match session_cookie("", 0, under.as_deref()) {
        Ok(c) => ([(header::SET_COOKIE, c)], Json(serde_json::json!({"done": true}))).into_response(),
        Err(e) => e.into_response(),
    }
}

fn not_logged_in() -> Response {
    ApiError { status: StatusCode::UNAUTHORIZED, message: "not logged in: run `shoal ui` for a login link".into() }
        .into_response()
}

/// The UI's files, as built into the binary.
const FILES: &[(&str, &str, &str)] = &[
    ("index.html", "text/html; charset=utf-8", include_str!("../../ui/index.html")),
    ("app.js", "text/javascript; charset=utf-8", include_str!("../../ui/app.js")),
    ("style.css", "text/css; charset=utf-8", include_str!("../../ui/style.css")),
];

/// Serves one of the UI's files (`/` is `index.html`).
pub(super) fn file(name: &str) -> Response {
    let name = if name.is_empty() { "index.html" } else { name };
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, mime, text)) => (
            [
                (header::CONTENT_TYPE, *mime),
                (header::CACHE_CONTROL, "no-cache"),
                // The UI loads only its own files and talks only to its own daemon.
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'",
                ),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *text,
        )
            .into_response(),
        None => ApiError::not_found(format!("the web UI has no file {name:?}")).into_response(),
    }
}

/// Bytes of the UI's files as served (before compression), for the size figure.
pub fn ui_bytes() -> usize {
    FILES.iter().map(|(_, _, t)| t.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(id: &str, csrf: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&format!("other=1; {COOKIE}={id}")).unwrap());
        if let Some(c) = csrf {
            h.insert(CSRF_HEADER, HeaderValue::from_str(c).unwrap());
        }
        h
    }

    #[test]
    fn a_code_works_once_and_not_after_it_expired() {
        let mut l = Logins::default();
        let t0 = Instant::now();
        let code = l.new_code(t0);
        let (id, csrf) = l.login(&code, t0).unwrap();
        assert!(l.login(&code, t0).is_none(), "a code is spent by its first use");
        assert!(matches!(l.check(&with_cookie(&id, None), false, t0), CookieAuth::Ok));
        assert!(matches!(l.check(&with_cookie(&id, None), true, t0), CookieAuth::NoCsrf));
        assert!(matches!(l.check(&with_cookie(&id, Some("nope")), true, t0), CookieAuth::NoCsrf));
        assert!(matches!(l.check(&with_cookie(&id, Some(&csrf)), true, t0), CookieAuth::Ok));
        assert!(matches!(l.check(&with_cookie("forged", Some(&csrf)), true, t0), CookieAuth::None));
        let stale = l.new_code(t0);
        assert!(l.login(&stale, t0 + CODE_TTL).is_none(), "an expired code is refused");
        assert!(matches!(l.check(&with_cookie(&id, None), false, t0 + SESSION_IDLE * 2), CookieAuth::None));
    }

    #[test]
    fn codes_and_sessions_are_bounded() {
        let mut l = Logins::default();
        let t0 = Instant::now();
        for i in 0..(MAX_SESSIONS * 2) {
            let code = l.new_code(t0 + Duration::from_millis(i as u64));
            l.login(&code, t0 + Duration::from_millis(i as u64)).unwrap();
        }
        assert!(l.codes.len() <= MAX_CODES && l.sessions.len() <= MAX_SESSIONS);
        for _ in 0..(MAX_CODES * 2) {
            l.new_code(t0);
        }
        assert!(l.codes.len() <= MAX_CODES);
    }
}
