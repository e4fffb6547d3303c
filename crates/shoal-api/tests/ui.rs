//! The web UI's server side through `Router::oneshot` over a real node: the files are served without
//! credentials, a one-time code becomes a session cookie once, the cookie needs the CSRF header for changes,
//! and the UI's TypeScript types are the OpenAPI description's.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on what they do not expect

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use shoal_api::server::{ApiState, router};
use shoal_node::{Node, NodeConfig};
use tower::ServiceExt;

const TOKEN: &str = "test-token";

async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, headers, String::from_utf8_lossy(&bytes).into_owned())
}

fn req(method: &str, uri: &str) -> axum::http::request::Builder {
    Request::builder().method(method).uri(uri)
}

#[tokio::test]
async fn under_a_base_path_everything_answers_there_and_at_the_root() {
    use shoal_api::server::base::{BasePath, serve_under};
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(NodeConfig::loopback(dir.path().join("home"))).await.unwrap();
    let base = BasePath::parse("/apps/shoal/").unwrap();
    let app = serve_under(router(ApiState::configured(node, TOKEN.into(), None, base.clone())), base);
    let get =
        |uri: &str| req("GET", uri).header("authorization", format!("Bearer {TOKEN}")).body(Body::empty()).unwrap();

    // The prefix alone redirects to the prefix with a slash, where the page's relative links resolve.
    let (s, h, _) = send(&app, get("/apps/shoal?x=1")).await;
    assert_eq!((s, h[header::LOCATION].to_str().unwrap()), (StatusCode::PERMANENT_REDIRECT, "/apps/shoal/?x=1"));
    for prefix in ["/apps/shoal", ""] {
        let (s, _, page) = send(&app, get(&format!("{prefix}/"))).await;
        assert!(s == StatusCode::OK && page.contains("ui/app.js"), "{prefix}/: {s}");
        assert_eq!(send(&app, get(&format!("{prefix}/ui/style.css"))).await.0, StatusCode::OK, "{prefix}");
        let (s, _, b) = send(&app, get(&format!("{prefix}/api/v1/traffic?window=day"))).await;
        assert!(s == StatusCode::OK && b.contains("bucket_ms"), "{prefix}: {s} {b}");
        let (s, _, b) = send(&app, get(&format!("{prefix}/api/v1/nothing"))).await;
        assert!(s == StatusCode::NOT_FOUND && b.contains("no such route"), "{prefix}: {b}");
    }
    assert_eq!(send(&app, get("/apps/shoalx/api/v1/status")).await.0, StatusCode::NOT_FOUND);

    // The login link names the prefix, and the cookie of a login through it is scoped to it.
    let (_, _, b) = send(
        &app,
        req("POST", "/api/v1/ui/code").header("authorization", format!("Bearer {TOKEN}")).body(Body::empty()).unwrap(),
    )
    .await;
    let code: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert!(code["path"].as_str().unwrap().starts_with("/apps/shoal/#code="), "{b}");
    let login = req("POST", "/apps/shoal/ui/login")
        .header("content-type", "application/json")
        .body(Body::from(format!("{{\"code\":\"{}\"}}", code["code"].as_str().unwrap())))
        .unwrap();
    let (s, h, b) = send(&app, login).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(h[header::SET_COOKIE].to_str().unwrap().contains("Path=/apps/shoal/;"), "{h:?}");
}

#[tokio::test]
async fn a_one_time_code_becomes_a_session_whose_changes_need_the_csrf_header() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(NodeConfig::loopback(dir.path().join("home"))).await.unwrap();
    let app = router(ApiState::new(node, TOKEN.into()));

    // The page and its files need no credentials, and say what they are.
    let (s, h, page) = send(&app, req("GET", "/").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html") && page.contains("ui/app.js"));
    assert!(h[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("default-src 'self'"));
    let (s, h, _) = send(&app, req("GET", "/ui/app.js").body(Body::empty()).unwrap()).await;
    assert_eq!((s, h[header::CONTENT_TYPE].to_str().unwrap()), (StatusCode::OK, "text/javascript; charset=utf-8"));
    assert_eq!(send(&app, req("GET", "/ui/nothing.js").body(Body::empty()).unwrap()).await.0, StatusCode::NOT_FOUND);

    // A code is made with the bearer token only.
    let code_req = || req("POST", "/api/v1/ui/code").header("authorization", format!("Bearer {TOKEN}"));
    let (s, _, b) = send(&app, code_req().body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let code: serde_json::Value = serde_json::from_str(&b).unwrap();
    let code = code["code"].as_str().unwrap().to_string();
    let login = |c: &str| {
        req("POST", "/ui/login")
            .header("content-type", "application/json")
            .body(Body::from(format!("{{\"code\":\"{c}\"}}")))
            .unwrap()
    };
    let (s, h, b) = send(&app, login(&code)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let cookie = h[header::SET_COOKIE].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!b.contains(TOKEN) && !cookie.contains(TOKEN), "the bearer token never reaches the browser");
    let csrf = serde_json::from_str::<serde_json::Value>(&b).unwrap()["csrf"].as_str().unwrap().to_string();
    let session = cookie.split(';').next().unwrap().to_string();

    // A stale (spent) code and a made-up one are refused in words.
    let (s, _, b) = send(&app, login(&code)).await;
    assert!(s == StatusCode::UNAUTHORIZED && b.contains("shoal ui"), "{s} {b}");
    assert_eq!(send(&app, login("0123")).await.0, StatusCode::UNAUTHORIZED);

    // The cookie reads; a change without the header, or with a wrong one, is refused; with it, it works.
    let with = |m: &str, uri: &str| req(m, uri).header(header::COOKIE, &session);
    assert_eq!(send(&app, with("GET", "/api/v1/status").body(Body::empty()).unwrap()).await.0, StatusCode::OK);
    let (s, _, b) = send(
        &app,
        with("POST", "/api/v1/topics")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"name":"harbour"}"#))
            .unwrap(),
    )
    .await;
    assert!(s == StatusCode::FORBIDDEN && b.contains("x-shoal-csrf"), "{s} {b}");
    let (s, _, _) = send(
        &app,
        with("POST", "/api/v1/topics")
            .header("content-type", "application/json")
            .header("x-shoal-csrf", "wrong")
            .body(Body::from(r#"{"name":"harbour"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, b) = send(
        &app,
        with("POST", "/api/v1/topics")
            .header("content-type", "application/json")
            .header("x-shoal-csrf", &csrf)
            .body(Body::from(r#"{"name":"harbour"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // A session cannot mint codes; a reload gets the CSRF token back; logout ends the session.
    let (s, _, _) =
        send(&app, with("POST", "/api/v1/ui/code").header("x-shoal-csrf", &csrf).body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, _, b) = send(&app, with("GET", "/ui/session").body(Body::empty()).unwrap()).await;
    assert!(b.contains(&csrf), "{b}");
    send(&app, with("POST", "/ui/logout").body(Body::empty()).unwrap()).await;
    assert_eq!(
        send(&app, with("GET", "/api/v1/status").body(Body::empty()).unwrap()).await.0,
        StatusCode::UNAUTHORIZED
    );
    // The bearer token keeps working for scripts.
    let (s, _, _) = send(
        &app,
        req("GET", "/api/v1/status").header("authorization", format!("Bearer {TOKEN}")).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

/// `ui/api.d.ts` is what the OpenAPI description generates: the UI's shapes cannot drift from the API's.
#[test]
fn the_uis_types_are_the_openapi_descriptions() {
    let doc = serde_json::to_value(shoal_api::server::openapi()).unwrap();
    let want = shoal_api::typescript::declarations(&doc);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/api.d.ts");
    if std::env::var_os("SHOAL_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "ui/api.d.ts is not what the API's OpenAPI description generates: rewrite it with \
        `SHOAL_BLESS=1 cargo test -p shoal-api --test ui` and check the UI still uses the shapes right"
    );
    for t in ["Status", "ShareRecord", "DownloadInfo", "PeerView", "TopicView", "MessageView", "UiSession"] {
        assert!(want.contains(&format!("export interface {t} ")), "the UI uses {t}");
    }
}

/// `app.js` type-checks against `api.d.ts` (tsc, `ui/tsconfig.json`): a field the UI reads that the API
/// does not have fails here. Needs `SHOAL_TSC` (TypeScript's `tsc`; `.ci/run` installs it); without it the
/// test says so and passes, except under CI.
#[test]
fn the_ui_uses_the_apis_shapes() {
    let Some(tsc) = std::env::var_os("SHOAL_TSC") else {
        assert!(std::env::var_os("CI").is_none(), "CI must type-check the UI, but SHOAL_TSC is not set");
        eprintln!("skipping the UI type check: SHOAL_TSC (TypeScript's tsc) is not set");
        return;
    };
    let ui = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    let out = std::process::Command::new(tsc).arg("-p").arg(&ui).output().unwrap();
    assert!(
        out.status.success(),
        "app.js does not type-check against api.d.ts:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
