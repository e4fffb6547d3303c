//! The API through `Router::oneshot` (no socket) over a real node on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on what they do not expect

use axum::body::Body;
use axum::http::{Request, StatusCode};
use shoal_api::server::{ApiState, router};
use shoal_node::{Node, NodeConfig};
use tower::ServiceExt;

const TOKEN: &str = "test-token";

async fn app() -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(NodeConfig::loopback(dir.path().join("home"))).await.unwrap();
    (router(ApiState::new(node, TOKEN.into())), dir)
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req.body(body.map_or_else(Body::empty, |b| Body::from(b.to_string()))).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn every_route_needs_the_token() {
    let (app, _d) = app().await;
    for (m, uri) in
        [("GET", "/api/v1/status"), ("GET", "/api/v1/shares"), ("POST", "/api/v1/stop"), ("GET", "/metrics")]
    {
        assert_eq!(call(&app, m, uri, None, None).await.0, StatusCode::UNAUTHORIZED, "{uri} without a token");
        let (s, b) = call(&app, m, uri, Some("wrong"), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{uri} with a wrong token");
        assert!(b.contains("bearer token"), "{b}");
    }
}

#[tokio::test]
async fn unknown_ids_and_routes_are_404_and_bad_json_is_400() {
    let (app, _d) = app().await;
    let (s, b) = call(&app, "GET", "/api/v1/downloads/abc", Some(TOKEN), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(b.contains("no download with id abc"), "{b}");
    assert_eq!(call(&app, "GET", "/api/v1/nothing", Some(TOKEN), None).await.0, StatusCode::NOT_FOUND);
    let (s, b) = call(&app, "POST", "/api/v1/shares", Some(TOKEN), Some("{\"path\": ")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b.contains("malformed JSON"), "{b}");
    let (s, b) = call(&app, "POST", "/api/v1/shares", Some(TOKEN), Some("{\"path\": \"relative.txt\"}")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b.contains("must be absolute"), "{b}");
    let (s, b) = call(&app, "POST", "/api/v1/downloads", Some(TOKEN), Some("{\"what\": \"garbage\"}")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b.contains("not a shoal ticket"), "{b}");
}

#[tokio::test]
async fn share_then_status_list_and_metrics() {
    let (app, dir) = app().await;
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, b"hello shoal").unwrap();
    let body = serde_json::json!({ "path": file }).to_string();
    let (s, b) = call(&app, "POST", "/api/v1/shares", Some(TOKEN), Some(&body)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["id"], blake3::hash(b"hello shoal").to_hex().to_string());
    assert!(v["ticket"].as_str().unwrap().starts_with("shoal1"));
    let (_, b) = call(&app, "GET", "/api/v1/status", Some(TOKEN), None).await;
    let st: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(st["shares"], 1);
    assert!(st["peer"].as_str().unwrap().starts_with("12D3"));
    let (_, b) = call(&app, "GET", "/api/v1/shares", Some(TOKEN), None).await;
    assert!(b.contains("notes.txt"), "{b}");
    let (s, b) = call(&app, "GET", "/metrics", Some(TOKEN), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(b.contains("shoal_uploaded_bytes_total 0") && b.contains("# TYPE shoal_connected_peers gauge"), "{b}");
}
