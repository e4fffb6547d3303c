//! The API through `Router::oneshot` (no socket) over a real node on 127.0.0.1.
//! One file for the whole v1 surface (over 600 lines): its tests share `app`, `call` and the event helpers below,
//! and a split by resource would move those into a shared module for no reader's gain.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on what they do not expect

use axum::body::Body;
use axum::http::{Request, StatusCode};
use shoal_api::server::{ApiState, router};
use shoal_node::{Node, NodeConfig};
use shoal_testkit::random_bytes;
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
async fn a_persistent_api_key_works_besides_the_token_and_nothing_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(NodeConfig::loopback(dir.path().join("home"))).await.unwrap();
    let key = "k".repeat(40);
    let app = router(ApiState::configured(node, TOKEN.into(), Some(key.clone()), None));
    for t in [TOKEN, key.as_str()] {
        assert_eq!(call(&app, "GET", "/api/v1/status", Some(t), None).await.0, StatusCode::OK, "{t}");
    }
    // Neither a prefix of the key nor the key with more after it.
    for t in [&key[..39], &format!("{key}x")] {
        assert_eq!(call(&app, "GET", "/api/v1/status", Some(t), None).await.0, StatusCode::UNAUTHORIZED, "{t}");
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
    // A listed share's ticket, later: the same content, this peer.
    let (s, b) =
        call(&app, "GET", &format!("/api/v1/shares/{}/ticket", v["id"].as_str().unwrap()), Some(TOKEN), None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let t: shoal_node::Ticket =
        serde_json::from_str::<serde_json::Value>(&b).unwrap()["ticket"].as_str().unwrap().parse().unwrap();
    assert_eq!((t.id.to_string(), t.name.as_str(), t.size), (v["id"].as_str().unwrap().to_string(), "notes.txt", 11));
    let (s, _) = call(&app, "GET", &format!("/api/v1/shares/{}/ticket", "0".repeat(64)), Some(TOKEN), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = call(&app, "GET", "/metrics", Some(TOKEN), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(b.contains("shoal_uploaded_bytes_total 0") && b.contains("# TYPE shoal_connected_peers gauge"), "{b}");
    assert!(b.contains("shoal_build_info{version=\"0.1.0\",topology=\"structured\"} 1"), "{b}");
    assert!(b.contains("# TYPE shoal_download_duration_seconds histogram"), "{b}");
    assert!(b.contains("shoal_search_first_hit_seconds_count 0") && b.contains("shoal_searches_total 0"), "{b}");
    // libp2p's own metrics are in the same registry.
    assert!(b.contains("libp2p_swarm_dial_attempt_total"), "{b}");
    assert!(b.trim_end().ends_with("# EOF"), "{b}");
}

struct Two {
    app: axum::Router,
    sharer: Node,
    dir: tempfile::TempDir,
}

async fn api_and_sharer(upload_limit: u64) -> Two {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(NodeConfig::loopback(dir.path().join("api-home"))).await.unwrap();
    let sharer = Node::start(NodeConfig::loopback(dir.path().join("sharer")).with_upload_limit(Some(upload_limit)))
        .await
        .unwrap();
    Two { app: router(ApiState::new(node, TOKEN.into())), sharer, dir }
}

/// Subscribes to the event feed from now on; returns a channel of (id, event type, data).
async fn subscribe(app: &axum::Router) -> Feed {
    let req =
        Request::get("/api/v1/events").header("authorization", format!("Bearer {TOKEN}")).body(Body::empty()).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    read_events(resp)
}

type Feed = tokio::sync::mpsc::UnboundedReceiver<(u64, String, serde_json::Value)>;

/// Parses server-sent events (id, event, data) off a response body as they arrive.
fn read_events(resp: axum::response::Response) -> Feed {
    use futures::StreamExt;
    let mut body = resp.into_body().into_data_stream();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let msg: String = buf.drain(..end + 2).collect();
                let field = |k: &str| msg.lines().find_map(|l| l.strip_prefix(k)).map(str::to_string);
                // Keep-alive comments have no id.
                let Some(id) = field("id: ").and_then(|i| i.parse().ok()) else { continue };
                let data = serde_json::from_str(&field("data: ").unwrap_or_default()).unwrap_or_default();
                if tx.send((id, field("event: ").unwrap_or_default(), data)).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

async fn next_event(rx: &mut Feed, kind: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let Ok(got) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            panic!("no {kind} event within 30 s; saw {seen:?}");
        };
        let (_, k, v) = got.unwrap();
        if k == kind {
            return v;
        }
        seen.push(if k == "download_failed" { format!("{k}: {v}") } else { k });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_pause_resume_and_the_file_arrives_whole() {
    let t = api_and_sharer(2 * 1024 * 1024).await;
    let bytes = random_bytes(6 * 1024 * 1024, 1);
    let file = t.dir.path().join("video.bin");
    std::fs::write(&file, &bytes).unwrap();
    let info = t.sharer.share(&file).await.unwrap();
    let ticket = t.sharer.ticket(&info).await.unwrap().to_string();
    let mut events = subscribe(&t.app).await;
    let out = t.dir.path().join("got.bin");
    let body = serde_json::json!({ "what": ticket, "output": out }).to_string();
    let (s, b) = call(&t.app, "POST", "/api/v1/downloads", Some(TOKEN), Some(&body)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let id = info.id.to_string();
    next_event(&mut events, "peer_connected").await;
    // Pause once a megabyte is verified (at 2 MiB/s, several 100 ms checkpoints have recorded it by then).
    loop {
        let p = next_event(&mut events, "download_progress").await;
        assert_eq!(p["id"], id);
        if p["progress"]["verified"].as_u64().unwrap() >= 1024 * 1024 {
            let per_peer = &p["progress"]["per_peer"][0];
            assert_eq!(per_peer["peer"], t.sharer.peer_id().to_string());
            assert!(per_peer["bytes"].as_u64().unwrap() > 0 && per_peer["rate"].as_f64().unwrap() > 0.0, "{p}");
            break;
        }
    }
    let (s, b) = call(&t.app, "POST", &format!("/api/v1/downloads/{id}/pause"), Some(TOKEN), None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, b) = call(&t.app, "GET", &format!("/api/v1/downloads/{id}"), Some(TOKEN), None).await;
    let paused: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(paused["state"], "paused", "{b}");
    // What came from whom stays; nothing moves and no one is connected while paused.
    assert!(paused["progress"]["per_peer"][0]["bytes"].as_u64().unwrap() > 0, "{b}");
    assert_eq!(paused["progress"]["per_peer"][0]["rate"].as_f64(), Some(0.0), "{b}");
    assert_eq!(paused["progress"]["peers"], 0, "{b}");
    assert_eq!(
        call(&t.app, "POST", &format!("/api/v1/downloads/{id}/pause"), Some(TOKEN), None).await.0,
        StatusCode::CONFLICT
    );
    let (s, b) = call(&t.app, "POST", &format!("/api/v1/downloads/{id}/resume"), Some(TOKEN), None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let done = next_event(&mut events, "download_done").await;
    assert_eq!(done["id"], id);
    assert!(done["report"]["resumed"].as_u64().unwrap() > 0, "the resumed run started from scratch: {done}");
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_removes_the_partial_file_and_remove_share_stops_listing() {
    let t = api_and_sharer(1024 * 1024).await;
    let bytes = random_bytes(8 * 1024 * 1024, 2);
    let file = t.dir.path().join("big.bin");
    std::fs::write(&file, &bytes).unwrap();
    let info = t.sharer.share(&file).await.unwrap();
    let ticket = t.sharer.ticket(&info).await.unwrap().to_string();
    let mut events = subscribe(&t.app).await;
    let outdir = t.dir.path().join("out");
    std::fs::create_dir_all(&outdir).unwrap();
    let body = serde_json::json!({ "what": ticket, "output": outdir.join("big.bin") }).to_string();
    assert_eq!(call(&t.app, "POST", "/api/v1/downloads", Some(TOKEN), Some(&body)).await.0, StatusCode::OK);
    let id = info.id.to_string();
    next_event(&mut events, "download_progress").await;
    assert!(outdir.join(".big.bin.shoal-partial").exists());
    let (s, b) = call(&t.app, "POST", &format!("/api/v1/downloads/{id}/cancel"), Some(TOKEN), None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    next_event(&mut events, "download_cancelled").await;
    assert!(!outdir.join(".big.bin.shoal-partial").exists(), "partial file left after cancel");
    assert!(!outdir.join("big.bin").exists());
    let (_, b) = call(&t.app, "GET", &format!("/api/v1/downloads/{id}"), Some(TOKEN), None).await;
    assert!(b.contains("\"state\":\"cancelled\""), "{b}");

    // Shares: add one on the API node, remove it, and it is gone (a second remove is a 404).
    let mine = t.dir.path().join("mine.txt");
    std::fs::write(&mine, b"mine").unwrap();
    let (_, b) =
        call(&t.app, "POST", "/api/v1/shares", Some(TOKEN), Some(&serde_json::json!({"path": mine}).to_string())).await;
    let sid = serde_json::from_str::<serde_json::Value>(&b).unwrap()["id"].as_str().unwrap().to_string();
    let uri = format!("/api/v1/shares/{sid}/remove");
    assert_eq!(call(&t.app, "POST", &uri, Some(TOKEN), None).await.0, StatusCode::OK);
    assert_eq!(call(&t.app, "GET", "/api/v1/shares", Some(TOKEN), None).await.1, "[]");
    assert_eq!(call(&t.app, "POST", &uri, Some(TOKEN), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(std::fs::read(&mine).unwrap(), b"mine", "removing a share must not touch the file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_streams_hits_as_ndjson_and_on_the_event_feed() {
    let dir = tempfile::tempdir().unwrap();
    let sharer = Node::start(NodeConfig::loopback(dir.path().join("sharer"))).await.unwrap();
    let file = dir.path().join("Quarterly Report.pdf");
    std::fs::write(&file, random_bytes(10_000, 3)).unwrap();
    let info = sharer.share(&file).await.unwrap();
    let boot = sharer.addrs().await.unwrap();
    let net = shoal_net::NetConfig::loopback().with_bootstrap(boot);
    let node = Node::start(NodeConfig::loopback(dir.path().join("api")).with_net(net)).await.unwrap();
    let app = router(ApiState::new(node, TOKEN.into()));
    let mut events = subscribe(&app).await;

    for bad in
        ["{}", r#"{"text":"!!"}"#, r#"{"text":"x","timeout_secs":0}"#, r#"{"text":"x","id":"00"}"#, r#"{"txt":"x"}"#]
    {
        let (s, b) = call(&app, "POST", "/api/v1/search", Some(TOKEN), Some(bad)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {b}");
    }

    // The keyword announcement reaches the DHT a moment after the peers meet: ask until it is found.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let lines = loop {
        let (s, body) = call(
            &app,
            "POST",
            "/api/v1/search",
            Some(TOKEN),
            Some(r#"{"text":"quart rep","limit":1,"timeout_secs":3}"#),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let lines: Vec<serde_json::Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        if lines.iter().any(|v| v["type"] == "hit") {
            break lines;
        }
        assert!(std::time::Instant::now() < deadline, "never found: {body}");
    };
    let hit = &lines[0];
    assert_eq!(hit["id"], info.id.to_string());
    assert_eq!(hit["peer"], sharer.peer_id().to_string());
    assert_eq!(lines.last().unwrap()["type"], "done");
    let n = hit["search"].clone();
    // Earlier searches (if any were needed) have their own numbers on the feed.
    while next_event(&mut events, "search_hit").await["search"] != n {}
    let done = loop {
        let d = next_event(&mut events, "search_done").await;
        if d["search"] == n {
            break d;
        }
    };
    assert_eq!(done["hits"], 1);
}

#[tokio::test]
async fn openapi_lists_every_route_and_every_listed_route_exists() {
    let (app, _d) = app().await;
    let (s, b) = call(&app, "GET", "/api/v1/openapi.json", Some(TOKEN), None).await;
    assert_eq!(s, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let mut listed: Vec<(String, String)> = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            listed.push((method.to_uppercase(), path.clone()));
        }
    }
    listed.sort();
    let mut want: Vec<(String, String)> = [
        ("GET", "/api/v1/status"),
        ("GET", "/api/v1/config"),
        ("GET", "/api/v1/traffic"),
        ("GET", "/api/v1/peers"),
        ("POST", "/api/v1/stop"),
        ("GET", "/api/v1/shares"),
        ("POST", "/api/v1/shares"),
        ("POST", "/api/v1/shares/upload"),
        ("POST", "/api/v1/shares/{id}/remove"),
        ("GET", "/api/v1/shares/{id}/ticket"),
        ("GET", "/api/v1/downloads"),
        ("POST", "/api/v1/downloads"),
        ("GET", "/api/v1/downloads/{id}"),
        ("POST", "/api/v1/downloads/{id}/pause"),
        ("POST", "/api/v1/downloads/{id}/resume"),
        ("POST", "/api/v1/downloads/{id}/cancel"),
        ("GET", "/api/v1/events"),
        ("POST", "/api/v1/search"),
        ("GET", "/api/v1/topics"),
        ("POST", "/api/v1/topics"),
        ("POST", "/api/v1/topics/{topic}/leave"),
        ("GET", "/api/v1/topics/{topic}/messages"),
        ("POST", "/api/v1/topics/{topic}/messages"),
        ("GET", "/api/v1/letters"),
        ("POST", "/api/v1/letters"),
        ("GET", "/api/v1/letters/{peer}"),
        ("GET", "/api/v1/messages/search"),
        ("GET", "/api/v1/contacts"),
        ("POST", "/api/v1/contacts"),
        ("POST", "/api/v1/contacts/{name}/remove"),
        ("POST", "/api/v1/ui/code"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    want.sort();
    assert_eq!(listed, want);
    // Every listed route reaches a handler: the router's fallback (a 404 naming no route) never answers.
    // (POST /stop is left out: it would stop nothing here, but it says so.)
    for (m, p) in &listed {
        if p.ends_with("/events") || p.ends_with("/stop") {
            continue;
        }
        let uri =
            p.replace("{id}", &"0".repeat(64)).replace("{topic}", "x").replace("{peer}", "x").replace("{name}", "x");
        let (_, b) = call(&app, m, &uri, Some(TOKEN), Some("{}")).await;
        assert!(!b.contains("no such route"), "{m} {uri}: {b}");
    }
    // The shared types are in the description.
    // Each source's events under its own name (enums that share a Rust name would be one schema).
    for schema in [
        "Status",
        "DownloadInfo",
        "DownloadState",
        "Event",
        "TransferEvent",
        "MessagingEvent",
        "SearchFeedEvent",
        "FeedEvent",
        "SearchLine",
        "ShareRecord",
        "TrafficHistory",
        "ErrorBody",
    ] {
        assert!(doc["components"]["schemas"].get(schema).is_some(), "no schema {schema}");
    }
}

async fn recv(rx: &mut Feed) -> (u64, String, serde_json::Value) {
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv()).await.unwrap().unwrap()
}

/// The event feed, resuming after event `last` when given (`Last-Event-ID`).
async fn feed(app: &axum::Router, last: Option<u64>) -> Feed {
    let mut req = Request::get("/api/v1/events").header("authorization", format!("Bearer {TOKEN}"));
    if let Some(n) = last {
        req = req.header("last-event-id", n.to_string());
    }
    read_events(app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_has_an_id_and_a_reconnecting_client_gets_what_it_missed() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(NodeConfig::loopback(dir.path().join("home"))).await.unwrap();
    let app = router(ApiState::new(node.clone(), TOKEN.into()));
    let mut first = feed(&app, None).await;
    // Give the feed a moment to be subscribed, then make five shares: five `share_added` events.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    for i in 0..5 {
        let f = dir.path().join(format!("f{i}.txt"));
        std::fs::write(&f, format!("file {i}")).unwrap();
        node.share(&f).await.unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let (id, kind, data) = recv(&mut first).await;
        if kind == "share_added" {
            assert!(data["name"].as_str().unwrap().starts_with('f'), "{data}");
            seen.push(id);
        }
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "ids must increase: {seen:?}");
    // A client that saw up to the second share reconnects: it gets the third, fourth and fifth, in order.
    let mut again = feed(&app, Some(seen[1])).await;
    let mut replayed = Vec::new();
    while replayed.len() < 3 {
        let (id, kind, _) = recv(&mut again).await;
        if kind == "share_added" {
            replayed.push(id);
        }
    }
    assert_eq!(replayed, seen[2..].to_vec());
    // One that asks for events older than what is kept is told how many it lost, not left guessing.
    for i in 0..1100 {
        node.events().emit(shoal_node::events::PeerEvent::PeerConnected { peer: format!("p{i}") });
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut late = feed(&app, Some(1)).await;
    let (_, kind, data) = recv(&mut late).await;
    assert_eq!(kind, "lost", "{data}");
    assert!(data["missed"].as_u64().unwrap() > 0, "{data}");
}

/// Topics, posts, contacts and letters through the API, and what bad input gets: words, a 4xx, nothing
/// stored.
#[tokio::test]
async fn messaging_routes_post_read_and_refuse_bad_input_in_words() {
    let (app, _d) = app().await;
    let (s, b) = call(&app, "POST", "/api/v1/topics", Some(TOKEN), Some(r#"{"name":"  Rust Lang "}"#)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let topic: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(topic["name"], "Rust Lang");
    let (s, b) =
        call(&app, "POST", "/api/v1/topics/Rust%20Lang/messages", Some(TOKEN), Some(r#"{"text":"hello"}"#)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = call(&app, "GET", "/api/v1/topics/Rust%20Lang/messages", Some(TOKEN), None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let posts: Vec<serde_json::Value> = serde_json::from_str(&b).unwrap();
    assert_eq!(posts.len(), 1);
    assert_eq!((posts[0]["text"].as_str(), posts[0]["mine"].as_bool()), (Some("hello"), Some(true)));
    let (s, b) = call(&app, "GET", "/api/v1/messages/search?q=hel", Some(TOKEN), None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b.contains("hello"), "{b}");

    let bad = [
        ("POST", "/api/v1/topics", r#"{"name":"a\u0007b"}"#, StatusCode::BAD_REQUEST, "control"),
        ("POST", "/api/v1/topics", r#"{"name":"x","key":"nothex"}"#, StatusCode::BAD_REQUEST, "64 hex"),
        ("POST", "/api/v1/topics/Rust%20Lang/messages", r#"{"text":"  "}"#, StatusCode::BAD_REQUEST, "empty"),
        ("POST", "/api/v1/topics/nope/messages", r#"{"text":"hi"}"#, StatusCode::NOT_FOUND, "join it first"),
        ("POST", "/api/v1/letters", r#"{"to":"nobody","text":"hi"}"#, StatusCode::BAD_REQUEST, "contact"),
        ("POST", "/api/v1/contacts", r#"{"name":"bob","peer":"not a peer"}"#, StatusCode::BAD_REQUEST, "peer id"),
        ("POST", "/api/v1/topics", r#"{"nom":"x"}"#, StatusCode::BAD_REQUEST, "malformed JSON"),
    ];
    for (m, uri, body, want, says) in bad {
        let (s, b) = call(&app, m, uri, Some(TOKEN), Some(body)).await;
        assert_eq!(s, want, "{uri} {body}: {b}");
        assert!(b.contains(says), "{uri} {body}: {b}");
    }
    let x = "x".repeat(64 * 1024 + 1);
    let (s, b) =
        call(&app, "POST", "/api/v1/topics/Rust%20Lang/messages", Some(TOKEN), Some(&format!(r#"{{"text":"{x}"}}"#)))
            .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{}", &b[..b.len().min(200)]);

    let peer = libp2p::identity::Keypair::generate_ed25519().public().to_peer_id().to_string();
    let (s, b) =
        call(&app, "POST", "/api/v1/contacts", Some(TOKEN), Some(&format!(r#"{{"name":" Bob ","peer":"{peer}"}}"#)))
            .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) =
        call(&app, "POST", "/api/v1/contacts", Some(TOKEN), Some(&format!(r#"{{"name":"Bob2","peer":"{peer}"}}"#)))
            .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "one name per peer: {b}");
    let (s, b) = call(&app, "POST", "/api/v1/letters", Some(TOKEN), Some(r#"{"to":"Bob","text":"for bob"}"#)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let letter: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!((letter["conversation"].as_str(), letter["status"].as_str()), (Some("Bob"), Some("sent")));
    let (_, b) = call(&app, "GET", "/api/v1/letters", Some(TOKEN), None).await;
    assert!(b.contains("for bob"), "{b}");
    let (s, b) = call(&app, "POST", "/api/v1/contacts/Bob/remove", Some(TOKEN), Some("{}")).await;
    assert_eq!((s, b.contains("true")), (StatusCode::OK, true), "{b}");
    let (_, b) = call(&app, "GET", "/api/v1/topics/Rust%20Lang/messages", Some(TOKEN), None).await;
    assert_eq!(serde_json::from_str::<Vec<serde_json::Value>>(&b).unwrap().len(), 1, "bad input stored nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_samples_come_on_the_feed_and_the_history_keeps_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NodeConfig::loopback(dir.path().join("api-home"));
    cfg.traffic_every = std::time::Duration::from_millis(200);
    let node = Node::start(cfg).await.unwrap();
    let sharer = Node::start(NodeConfig::loopback(dir.path().join("sharer"))).await.unwrap();
    let app = router(ApiState::new(node, TOKEN.into()));
    let bytes = random_bytes(3 * 1024 * 1024, 9);
    let file = dir.path().join("f.bin");
    std::fs::write(&file, &bytes).unwrap();
    let info = sharer.share(&file).await.unwrap();
    let ticket = sharer.ticket(&info).await.unwrap().to_string();
    let mut events = subscribe(&app).await;
    let body = serde_json::json!({ "what": ticket, "output": dir.path().join("got.bin") }).to_string();
    assert_eq!(call(&app, "POST", "/api/v1/downloads", Some(TOKEN), Some(&body)).await.0, StatusCode::OK);
    // Every byte counted before `done` is in a sample by the first idle one after it.
    let (mut said, mut done) = (0, false);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, kind, v) = tokio::time::timeout_at(deadline, events.recv()).await.expect("no idle sample").unwrap();
        match kind.as_str() {
            "download_done" => done = true,
            "traffic" if done && v["down"] == 0 => break,
            "traffic" => {
                assert!(v["span_ms"].as_u64().unwrap() > 0, "{v}");
                said += v["down"].as_u64().unwrap();
            }
            _ => {}
        }
    }
    let (_, st) = call(&app, "GET", "/api/v1/status", Some(TOKEN), None).await;
    let downloaded = serde_json::from_str::<serde_json::Value>(&st).unwrap()["downloaded_bytes"].as_u64().unwrap();
    assert!(downloaded >= bytes.len() as u64, "{st}");
    for window in ["", "?window=hour", "?window=day"] {
        let (s, b) = call(&app, "GET", &format!("/api/v1/traffic{window}"), Some(TOKEN), None).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let h: shoal_api::types::TrafficHistory = serde_json::from_str(&b).unwrap();
        assert_eq!(h.down.len(), if window.ends_with("day") { 288 } else { 360 });
        assert_eq!(h.down.iter().sum::<u64>(), downloaded, "{window}: {b}");
    }
    assert_eq!(said, downloaded, "what the feed said and what the node counted");
    let (s, b) = call(&app, "GET", "/api/v1/traffic?window=week", Some(TOKEN), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b.contains("hour, day"), "{b}");
}

async fn upload(app: &axum::Router, name: &str, body: Body) -> (StatusCode, String) {
    let enc: String = name
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'.' { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    let uri = format!("/api/v1/shares/upload?name={enc}");
    let req = Request::post(uri)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/octet-stream")
        .body(body)
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn an_upload_lands_in_the_share_folder_and_never_replaces_or_leaves_a_part() {
    let (app, dir) = app().await;
    let folder = dir.path().join("home").join("shared");
    let bytes = random_bytes(3 * 1024 * 1024 + 17, 4);
    let (s, b) = upload(&app, "holiday photos.bin", Body::from(bytes.clone())).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let shared: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(shared["id"], blake3::hash(&bytes).to_hex().as_str(), "{b}");
    assert!(shared["ticket"].as_str().unwrap().starts_with("shoal1"), "{b}");
    assert_eq!(std::fs::read(folder.join("holiday photos.bin")).unwrap(), bytes);
    let (_, list) = call(&app, "GET", "/api/v1/shares", Some(TOKEN), None).await;
    assert!(list.contains("holiday photos.bin"), "{list}");

    // The same name again: refused, and the file there is untouched.
    let (s, b) = upload(&app, "holiday photos.bin", Body::from("other bytes")).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert!(b.contains("exists already"), "{b}");
    assert_eq!(std::fs::read(folder.join("holiday photos.bin")).unwrap(), bytes);

    for bad in ["a/b", "..", ".", "bell\u{7}", ""] {
        let (s, b) = upload(&app, bad, Body::from("x")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad:?}: {b}");
        assert!(b.contains("plain file name"), "{bad:?}: {b}");
    }
    let req =
        Request::post("/api/v1/shares/upload").header("authorization", format!("Bearer {TOKEN}")).body(Body::from("x"));
    let resp = app.clone().oneshot(req.unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // A body that breaks off: an error, no file under the name, no temporary file left.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(vec![1; 64 * 1024]), Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "browser closed"))];
    let (s, b) = upload(&app, "cut.bin", Body::from_stream(futures::stream::iter(chunks))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b.contains("broke off"), "{b}");
    let left: Vec<_> = std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("holiday photos.bin")]);

    // A search hit's name to download under is checked the same way.
    let body = serde_json::json!({ "what": shared["ticket"], "name": "../escape.bin" }).to_string();
    let (s, b) = call(&app, "POST", "/api/v1/downloads", Some(TOKEN), Some(&body)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b.contains("plain file name"), "{b}");
}
