//! Serving under a reverse proxy's base path.
//!
//! A proxy that forwards `https://nas.example/shoal/...` to the daemon either strips `/shoal` (the UI's
//! links are all relative, so that works with no setting) or forwards the path unchanged. For the second
//! kind the daemon is told the base path (`api_base_path = "/shoal"`) and answers under it as well as at
//! `/`: the prefix is taken off before routing, so every route, the UI and the event feed work the same
//! both ways. `/shoal` itself redirects to `/shoal/`, where the UI's relative links resolve under the
//! prefix. The session cookie is scoped to the prefix the browser came through.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::Uri;
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use tower::Layer;

/// A checked base path: `/` then segments of letters, digits and `-._~`, no trailing `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BasePath(String);

/// Why a base path was refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "api_base_path {0:?} is not a path like /shoal: it must start with '/', and its segments may hold only \
     letters, digits and -._~ (no '.' or '..' segments)"
)]
pub struct BadBasePath(pub String);

impl BasePath {
    /// Checks `s`; a trailing `/` is dropped; `""` and `"/"` mean no base path (`None`).
    pub fn parse(s: &str) -> Result<Option<Self>, BadBasePath> {
        let t = s.trim_end_matches('/');
        if t.is_empty() && (s.is_empty() || s.starts_with('/')) {
            return Ok(None);
        }
        let Some(rest) = t.strip_prefix('/') else { return Err(BadBasePath(s.into())) };
        let ok = rest.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        });
        if ok { Ok(Some(Self(t.to_string()))) } else { Err(BadBasePath(s.into())) }
    }

    /// The path, e.g. `/shoal`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The prefix a request came in under (`""` at the root), for the handlers that answer with paths.
#[derive(Clone, Debug, Default)]
pub(crate) struct CameUnder(pub(crate) String);

/// `app` at `/` and, when `base` is set, under it too.
pub fn serve_under(app: Router, base: Option<BasePath>) -> Router {
    let Some(base) = base else { return app };
    let svc = axum::middleware::from_fn_with_state(base, strip).layer(app);
    Router::new().fallback_service(svc)
}

async fn strip(State(base): State<BasePath>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let Some(rest) = path.strip_prefix(base.as_str()) else { return next.run(req).await };
    if rest.is_empty() {
        let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
        return Redirect::permanent(&format!("{}/{query}", base.as_str())).into_response();
    }
    if !rest.starts_with('/') {
        // `/shoalx` is not under `/shoal`.
        return next.run(req).await;
    }
    let pq = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    let Ok(uri) = Uri::builder().path_and_query(pq).build() else { return next.run(req).await };
    *req.uri_mut() = uri;
    req.extensions_mut().insert(CameUnder(base.as_str().to_string()));
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_paths_are_checked() {
        assert_eq!(BasePath::parse("/shoal/").unwrap(), Some(BasePath("/shoal".into())));
        assert_eq!(BasePath::parse("/apps/shoal-1.0~x").unwrap().unwrap().as_str(), "/apps/shoal-1.0~x");
        assert_eq!(BasePath::parse("").unwrap(), None);
        assert_eq!(BasePath::parse("/").unwrap(), None);
        for bad in ["shoal", "/a//b", "/a/../b", "/./a", "/a b", "/a?x", "/a#x", "/é"] {
            let e = BasePath::parse(bad).err().unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(e.to_string().contains("like /shoal"), "{e}");
        }
    }
}
