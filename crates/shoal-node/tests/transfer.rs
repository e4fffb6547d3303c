//! Multi-source transfer between real nodes on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on what they do not expect

mod common;

use common::*;
use shoal_node::DownloadRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source() {
    let src = peer().await;
    let dst = peer().await;
    let bytes = random_bytes(3 * 1024 * 1024 + 123, 1);
    let file = write_file(src.home(), "one.bin", &bytes);
    let info = src.node.share(&file).await.unwrap();
    assert_eq!(info.id.to_string(), b3(&bytes));
    let ticket = src.node.ticket(&info).await.unwrap();
    let out = dst.home().join("out.bin");
    let report = fetch(&dst, &ticket, &out).await;
    assert_eq!(b3(&std::fs::read(&out).unwrap()), b3(&bytes));
    assert_eq!(report.size, bytes.len() as u64);
    assert_eq!(report.peers.len(), 1);
    assert_eq!(report.peers[0].bytes, bytes.len() as u64);
}

/// A file large enough for 256 KiB pieces: those are verified as they arrive and written around the page
/// cache on blocking threads while the next ones are read (`session.rs`, `Partial::commit`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_pieces_from_two_sources() {
    let bytes = random_bytes(256 * 1024 * 1024 + 4097, 12);
    let sources = [peer().await, peer().await];
    let ticket = shared_by(&sources.iter().collect::<Vec<_>>(), "large.bin", &bytes).await;
    let dst = peer().await;
    let out = dst.home().join("out.bin");
    let report = fetch(&dst, &ticket, &out).await;
    assert_eq!(b3(&std::fs::read(&out).unwrap()), b3(&bytes));
    assert_eq!(report.peers.iter().map(|p| p.bytes).sum::<u64>(), bytes.len() as u64);
    assert_eq!(report.peers.iter().filter(|p| p.bytes > 0).count(), 2, "{:#?}", report.peers);
}

async fn wait_until_connected(p: &Peer, n: usize) {
    for _ in 0..100 {
        if p.node.network().peers().await.unwrap().len() >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("peer did not connect to {n} peers within 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_sources_all_contribute() {
    let bytes = random_bytes(16 * 1024 * 1024, 2);
    let sources = [peer().await, peer().await, peer().await, peer().await];
    let ticket = shared_by(&sources.iter().collect::<Vec<_>>(), "copy.bin", &bytes).await;
    let dst = peer().await;
    let out = dst.home().join("out.bin");
    let report = fetch(&dst, &ticket, &out).await;
    assert_eq!(b3(&std::fs::read(&out).unwrap()), b3(&bytes));
    let contributors = report.peers.iter().filter(|p| p.bytes > 0).count();
    assert!(contributors >= 3, "only {contributors} sources contributed: {:#?}", report.peers);
    assert_eq!(report.peers.iter().map(|p| p.bytes).sum::<u64>(), bytes.len() as u64);
    // And the sources' own counters agree that they uploaded.
    let uploaded: Vec<u64> = sources.iter().map(|s| s.node.uploaded()).collect();
    assert!(uploaded.iter().filter(|&&u| u > 0).count() >= 3, "{uploaded:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_peer_is_dropped_and_nothing_it_sent_is_written() {
    let bytes = random_bytes(8 * 1024 * 1024, 3);
    let honest = peer().await;
    let liar = peer_with(|mut c| {
        c.corrupt_uploads = true;
        c
    })
    .await;
    let ticket = shared_by(&[&liar, &honest], "f.bin", &bytes).await;
    let dst = peer().await;
    let out = dst.home().join("out.bin");
    let report = fetch(&dst, &ticket, &out).await;
    assert_eq!(b3(&std::fs::read(&out).unwrap()), b3(&bytes));
    let liar_id = liar.node.peer_id().to_string();
    let l = report.peers.iter().find(|p| p.peer == liar_id).expect("the corrupt peer was asked");
    assert!(l.received > 0, "the corrupt peer was never asked for data: {report:#?}");
    assert_eq!(l.bytes, 0, "bytes from the corrupt peer were written");
    assert!(l.dropped.as_deref().unwrap_or("").contains("verification"), "{l:?}");
    assert!(liar.node.uploaded() > 0);
    let t = dst.node.traffic();
    assert!(t.verification_failures > 0 && t.downloaded >= bytes.len() as u64, "{t:?}");
}

/// Waits (up to 20 s) until `1 / part` of the download is verified, and checks that it is not finished.
async fn verified_at_least(download: &shoal_node::DownloadHandle, part: u64) {
    let mut progress = download.progress();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let p = progress.borrow().clone();
        if p.size > 0 && p.verified >= p.size / part {
            assert!(p.verified < p.size, "the download finished before the middle could be reached");
            return;
        }
        tokio::time::timeout_at(deadline, progress.changed()).await.expect("no progress").unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_killed_mid_transfer_download_completes_from_the_other() {
    let bytes = random_bytes(12 * 1024 * 1024, 4);
    // Capped uploads make the transfer last a few seconds, so there is a middle to kill a source in.
    let a = peer_with(|c| c.with_upload_limit(Some(3 * 1024 * 1024))).await;
    let b = peer_with(|c| c.with_upload_limit(Some(3 * 1024 * 1024))).await;
    let ticket = shared_by(&[&a, &b], "f.bin", &bytes).await;
    let dst = peer().await;
    let out = dst.home().join("out.bin");
    let handle = dst.node.download(DownloadRequest::from_ticket(&ticket, Some(out.clone()))).await.unwrap();
    verified_at_least(&handle, 4).await;
    a.node.shutdown().await;
    let report = handle.finish().await.unwrap();
    assert_eq!(b3(&std::fs::read(&out).unwrap()), b3(&bytes));
    let a_id = a.node.peer_id().to_string();
    let ar = report.peers.iter().find(|p| p.peer == a_id).unwrap();
    assert!(ar.bytes > 0 && ar.bytes < bytes.len() as u64, "{report:#?}");
    assert!(ar.dropped.is_some(), "killed source not reported as dropped: {ar:?}");
}

/// The only source's connection closes mid-download (the source closes it): the download opens it again
/// and finishes from it. Before, a session that broke took its provider out for good and this download
/// stalled until `stall_timeout` and failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_only_source_whose_connection_closes_mid_transfer_is_opened_again() {
    let bytes = random_bytes(8 * 1024 * 1024, 6);
    // 2 MB/s: about 4 s, time to cut the connection in the middle.
    let src = peer_with(|c| c.with_upload_limit(Some(2 * 1024 * 1024))).await;
    let ticket = shared_by(&[&src], "f.bin", &bytes).await;
    let dst = peer().await;
    let out = dst.home().join("out.bin");
    let handle = dst.node.download(DownloadRequest::from_ticket(&ticket, Some(out.clone()))).await.unwrap();
    verified_at_least(&handle, 4).await;
    assert!(src.node.network().disconnect(dst.node.peer_id()).await.unwrap(), "there was no connection");
    let report = handle.finish().await.unwrap();
    assert_eq!(b3(&std::fs::read(&out).unwrap()), b3(&bytes));
    let s = report.peers.iter().find(|p| p.peer == src.node.peer_id().to_string()).unwrap();
    assert_eq!(s.bytes, bytes.len() as u64, "{report:#?}");
    assert!(s.dropped.is_none(), "the source came back, yet it is reported as dropped: {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_knowing_one_other_finds_a_third_peers_file_through_the_dht() {
    let a = peer().await;
    let a_addr = a.node.addrs().await.unwrap()[0].clone();
    let boot = |c: shoal_node::NodeConfig| {
        let net = c.net.clone().with_bootstrap(vec![a_addr.clone()]);
        c.with_net(net)
    };
    let b = peer_with(boot).await;
    wait_until_connected(&b, 1).await;
    let bytes = random_bytes(2 * 1024 * 1024 + 5, 5);
    let file = write_file(b.home(), "dht.bin", &bytes);
    let info = b.node.share(&file).await.unwrap();
    let c = peer_with(boot).await;
    // C knows only A; it never learns B's address from us.
    let known: Vec<_> = c.node.network().peers().await.unwrap().into_iter().map(|p| p.peer).collect();
    assert!(!known.contains(&b.node.peer_id()));
    let out = c.home().join("found.bin");
    let report =
        c.node.download(DownloadRequest::from_id(info.id, Some(out.clone()))).await.unwrap().finish().await.unwrap();
    assert_eq!(b3(&std::fs::read(&out).unwrap()), b3(&bytes));
    assert_eq!(report.peers.iter().find(|p| p.bytes > 0).unwrap().peer, b.node.peer_id().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_round_trip() {
    let src = peer().await;
    let root = src.home().join("album");
    std::fs::create_dir_all(root.join("disc 1")).unwrap();
    std::fs::create_dir_all(root.join("disc 2")).unwrap();
    // (name, size, seed): more distinct files than are fetched at once, and repeated contents (two empty
    // files, a copy) that must be fetched once and copied.
    let files = [
        ("cover.jpg", 70_000usize, 10u64),
        ("disc 1/01 intro.flac", 1_500_000, 11),
        ("disc 1/02 song.flac", 900_000, 12),
        ("disc 1/03 song.flac", 1_100_000, 13),
        ("disc 1/empty.txt", 0, 0),
        ("disc 2/01 song.flac", 700_000, 14),
        ("disc 2/02 song.flac", 300_000, 15),
        ("disc 2/empty too.txt", 0, 0),
        ("disc 2/cover copy.jpg", 70_000, 10),
    ];
    for (name, size, seed) in files {
        write_file(&root, name, &random_bytes(size, seed));
    }
    let info = src.node.share(&root).await.unwrap();
    assert!(info.is_collection);
    let ticket = src.node.ticket(&info).await.unwrap();
    let dst = peer().await;
    let out = dst.home().join("got");
    let report = fetch(&dst, &ticket, &out).await;
    assert_eq!(report.files, files.len());
    assert_eq!(report.size, files.iter().map(|f| f.1 as u64).sum::<u64>());
    for (name, size, seed) in files {
        assert_eq!(b3(&std::fs::read(out.join(name)).unwrap()), b3(&random_bytes(size, seed)), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_collections_are_rejected_and_nothing_is_written_outside() {
    use shoal_store::{Collection, Entry};
    let src = peer().await;
    let dst = peer().await;
    let payload = random_bytes(1000, 20);
    let member = write_file(src.home(), "member.bin", &payload);
    let m = src.node.share(&member).await.unwrap();
    let base = dst.home().join("downloads");
    std::fs::create_dir_all(&base).unwrap();
    let outside = dst.home().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    // A symlink planted in the output directory, pointing outside it.
    std::fs::create_dir_all(base.join("c3").join("tree")).unwrap();
    std::os::unix::fs::symlink(&outside, base.join("c3").join("tree").join("evil")).unwrap();
    let cases = [("c1", "../x"), ("c2", "/etc/x"), ("c3", "evil/x"), ("c4", "a/../../x"), ("c5", "CON")];
    for (dir, path) in cases {
        let hostile = Collection { entries: vec![Entry { path: path.into(), id: m.id, size: payload.len() as u64 }] };
        let id = src.node.store().import_bytes(&hostile.encode()).unwrap();
        let mut ticket = src.node.ticket(&m).await.unwrap();
        ticket.id = id;
        ticket.size = hostile.encode().len() as u64;
        ticket.collection = true;
        ticket.name = "tree".into();
        let out = base.join(dir);
        std::fs::create_dir_all(&out).unwrap();
        let result =
            dst.node.download(DownloadRequest::from_ticket(&ticket, Some(out.clone()))).await.unwrap().finish().await;
        let err = result.expect_err(&format!("{path:?} was accepted")).to_string();
        assert!(err.contains("collection") || err.contains("symlink"), "{path}: {err}");
    }
    assert!(!dst.home().join("x").exists() && !base.join("x").exists());
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "something was written through the symlink");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_peers_pieces_move_to_a_fast_one() {
    let bytes = random_bytes(8 * 1024 * 1024, 6);
    // 64 KiB/s: the slow peer alone would need over two minutes; its first batch of pieces alone 16 s.
    let slow = peer_with(|c| c.with_upload_limit(Some(64 * 1024))).await;
    let fast = peer().await;
    let ticket = shared_by(&[&slow, &fast], "f.bin", &bytes).await;
    let dst = peer().await; // slow_after = 3 s in the test tuning
    let out = dst.home().join("out.bin");
    let report = fetch(&dst, &ticket, &out).await;
    assert_eq!(b3(&std::fs::read(&out).unwrap()), b3(&bytes));
    let slow_id = slow.node.peer_id().to_string();
    let s = report.peers.iter().find(|p| p.peer == slow_id).map_or(0, |p| p.bytes);
    assert!(s < bytes.len() as u64 / 4, "the slow peer delivered {s} bytes: {report:#?}");
    assert!(report.seconds < 16.0, "the slow peer's pieces did not move: {report:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_still_downloading_serves_what_it_has_verified() {
    let bytes = random_bytes(16 * 1024 * 1024, 7);
    let a = peer_with(|c| c.with_upload_limit(Some(4 * 1024 * 1024))).await;
    let file = write_file(a.home(), "f.bin", &bytes);
    let info = a.node.share(&file).await.unwrap();
    let ticket = a.node.ticket(&info).await.unwrap();
    let b = peer().await;
    let b_out = b.home().join("b.bin");
    let b_dl = b.node.download(DownloadRequest::from_ticket(&ticket, Some(b_out.clone()))).await.unwrap();
    verified_at_least(&b_dl, 2).await;
    // C knows only B, which has half of the file.
    let c = peer().await;
    let mut from_b = ticket.clone();
    let b_addrs = b.node.addrs().await.unwrap();
    from_b.providers = vec![(b.node.peer_id(), b_addrs)];
    let mut req = DownloadRequest::from_ticket(&from_b, Some(c.home().join("c.bin")));
    req.discover = false;
    let c_dl = c.node.download(req).await.unwrap();
    b_dl.finish().await.unwrap();
    let served_while_partial = b.node.uploaded();
    assert!(served_while_partial > 0, "B served nothing while it was still downloading");
    let report = c_dl.finish().await.unwrap();
    assert_eq!(b3(&std::fs::read(c.home().join("c.bin")).unwrap()), b3(&bytes));
    assert_eq!(report.peers.len(), 1);
}

/// A ticket names the size, so the download begins before any provider answers (its first requests leave
/// with the `Have`); when none can be reached, it still fails with "no provider" and leaves no file behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_whose_providers_are_all_gone_fails_and_leaves_no_partial_file() {
    let src = peer().await;
    let ticket = shared_by(&[&src], "f.bin", &random_bytes(3 * 1024 * 1024, 9)).await;
    src.node.shutdown().await;
    drop(src);
    let dst = peer().await;
    let out_dir = dst.home().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let mut req = DownloadRequest::from_ticket(&ticket, Some(out_dir.join("f.bin")));
    req.discover = false;
    let err = dst.node.download(req).await.unwrap().finish().await.unwrap_err();
    assert!(err.to_string().contains("no provider"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&out_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "{left:?}");
    // And the store has no record of a partial download to resume.
    assert!(dst.node.store().servable_ids().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_over_quic() {
    let quic = |c: shoal_node::NodeConfig| {
        let net = c.net.clone().with_listen(vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap()]);
        c.with_net(net)
    };
    let src = peer_with(quic).await;
    let dst = peer_with(quic).await;
    let bytes = random_bytes(2 * 1024 * 1024, 8);
    let file = write_file(src.home(), "q.bin", &bytes);
    let info = src.node.share(&file).await.unwrap();
    let ticket = src.node.ticket(&info).await.unwrap();
    assert!(ticket.providers[0].1.iter().all(|a| a.to_string().contains("/quic-v1")));
    let out = dst.home().join("q.bin");
    fetch(&dst, &ticket, &out).await;
    assert_eq!(b3(&std::fs::read(&out).unwrap()), b3(&bytes));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_frames_close_the_stream_and_nothing_else() {
    use futures::{AsyncReadExt, AsyncWriteExt};
    let src = peer().await;
    let bytes = random_bytes(100_000, 9);
    let info = src.node.share(&write_file(src.home(), "f.bin", &bytes)).await.unwrap();
    let ticket = src.node.ticket(&info).await.unwrap();
    let evil = peer().await;
    let proto = libp2p::StreamProtocol::new(shoal_proto::transfer::PROTOCOL);
    let (provider, addrs) = ticket.providers[0].clone();
    evil.node.network().connect(provider, addrs).await.unwrap();
    let cases: [&[u8]; 4] = [
        &[1, 0xff, 0xff, 0xff, 0x7f],       // announces a 2 GiB frame
        &[9, 1, 0, 0, 0, 0],                // unknown version
        &[1, 3, 0, 0, 0, 0xee, 0xee, 0xee], // not a request
        &[1, 200, 0, 0, 0, 1, 2, 3],        // truncated, then the writer goes away
    ];
    for junk in cases {
        let mut s = evil.node.network().streams().open_stream(provider, proto.clone()).await.unwrap();
        s.write_all(junk).await.unwrap();
        let _ = s.close().await;
        let mut rest = Vec::new();
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the provider kept a broken stream open: {junk:?}");
        assert!(rest.is_empty(), "the provider answered garbage {junk:?} with {rest:?}");
    }
    // The provider is still up and serving.
    let dst = peer().await;
    let out = dst.home().join("ok.bin");
    fetch(&dst, &ticket, &out).await;
    assert_eq!(b3(&std::fs::read(&out).unwrap()), b3(&bytes));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_cannot_open_unbounded_streams() {
    use futures::{AsyncReadExt, AsyncWriteExt};
    use shoal_proto::transfer::messages::MAX_FRAME;
    use shoal_proto::transfer::{Request, Response};
    use shoal_proto::wire;
    let src = peer().await;
    let info = src.node.share(&write_file(src.home(), "f.bin", &random_bytes(5000, 30))).await.unwrap();
    let ticket = src.node.ticket(&info).await.unwrap();
    let (provider, addrs) = ticket.providers[0].clone();
    let evil = peer().await;
    evil.node.network().connect(provider, addrs).await.unwrap();
    let proto = libp2p::StreamProtocol::new(shoal_proto::transfer::PROTOCOL);
    let have = wire::encode(&Request::Have { id: *info.id.as_bytes() }, MAX_FRAME).unwrap();
    async fn ask(s: &mut libp2p::Stream, frame: &[u8]) -> Option<Response> {
        s.write_all(frame).await.ok()?;
        s.flush().await.ok()?;
        let mut header = [0u8; wire::HEADER_LEN];
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_exact(&mut header)).await;
        read.ok()?.ok()?;
        let len = wire::decode_header(header, MAX_FRAME).ok()?;
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await.ok()?;
        wire::decode_body(&body).ok()
    }
    let mut open = Vec::new();
    for i in 0..16 {
        let mut s = evil.node.network().streams().open_stream(provider, proto.clone()).await.unwrap();
        assert!(matches!(ask(&mut s, &have).await, Some(Response::Have { .. })), "stream {i} got no answer");
        open.push(s);
    }
    let mut extra = evil.node.network().streams().open_stream(provider, proto.clone()).await.unwrap();
    assert!(ask(&mut extra, &have).await.is_none(), "a 17th stream was served");
    // Closing one gives its slot back.
    let mut closed = open.pop().unwrap();
    closed.close().await.unwrap();
    drop(closed);
    let mut served_again = false;
    for _ in 0..50 {
        let mut s = evil.node.network().streams().open_stream(provider, proto.clone()).await.unwrap();
        if matches!(ask(&mut s, &have).await, Some(Response::Have { .. })) {
            served_again = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(served_again, "the slot of a closed stream was never given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_requests_are_answered_cancelled_and_their_data_is_not_sent() {
    use futures::{AsyncReadExt, AsyncWriteExt};
    use shoal_proto::transfer::messages::MAX_FRAME;
    use shoal_proto::transfer::{ChunkSpan, Request, Response};
    use shoal_proto::wire;
    // 16 KiB/s: each 16 KiB piece waits about a second for the cap, time enough for a cancel to arrive.
    let src = peer_with(|c| c.with_upload_limit(Some(16 * 1024))).await;
    let info = src.node.share(&write_file(src.home(), "f.bin", &random_bytes(64 * 1024, 31))).await.unwrap();
    let ticket = src.node.ticket(&info).await.unwrap();
    let (provider, addrs) = ticket.providers[0].clone();
    let client = peer().await;
    client.node.network().connect(provider, addrs).await.unwrap();
    let proto = libp2p::StreamProtocol::new(shoal_proto::transfer::PROTOCOL);
    let mut s = client.node.network().streams().open_stream(provider, proto).await.unwrap();
    let id = *info.id.as_bytes();
    let span = |i: u64| ChunkSpan { start: i * 16, end: (i + 1) * 16 };
    let mut frames = Vec::new();
    for req in [
        Request::Get { id, span: span(0) },
        Request::Get { id, span: span(1) },
        Request::Get { id, span: span(2) },
        Request::Cancel { id, span: span(2) },
        Request::Cancel { id, span: span(1) },
        // Withdraws nothing: no such request is waiting.
        Request::Cancel { id, span: span(3) },
        Request::Have { id },
    ] {
        frames.extend(wire::encode(&req, MAX_FRAME).unwrap());
    }
    s.write_all(&frames).await.unwrap();
    s.flush().await.unwrap();
    async fn answer(s: &mut libp2p::Stream) -> Response {
        let mut header = [0u8; wire::HEADER_LEN];
        tokio::time::timeout(std::time::Duration::from_secs(10), s.read_exact(&mut header)).await.unwrap().unwrap();
        let mut body = vec![0u8; wire::decode_header(header, MAX_FRAME).unwrap()];
        s.read_exact(&mut body).await.unwrap();
        let resp: Response = wire::decode_body(&body).unwrap();
        if let Response::Data { len } = resp {
            let mut data = vec![0u8; len as usize];
            s.read_exact(&mut data).await.unwrap();
        }
        resp
    }
    let answers = [answer(&mut s).await, answer(&mut s).await, answer(&mut s).await, answer(&mut s).await];
    assert!(matches!(answers[0], Response::Data { .. }), "{answers:?}");
    assert_eq!(answers[1], Response::Cancelled, "{answers:?}");
    assert_eq!(answers[2], Response::Cancelled, "{answers:?}");
    assert!(matches!(answers[3], Response::Have { .. }), "answers out of order: {answers:?}");
    let t = src.node.traffic();
    assert_eq!(t.uploads_cancelled, 2, "{t:?}");
    assert!(t.uploaded < 2 * 16 * 1024, "cancelled data went out: {t:?}");
}
