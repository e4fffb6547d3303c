//! Attacks on a node by hostile peers (`shoal_testkit::hostile`), each shown to fail while honest peers are
//! still served. One test per hole of the hardening issue; the store's own crash tests are in shoal-store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on what they do not expect

mod common;

use common::*;
use shoal_node::DownloadRequest;
use shoal_testkit::hostile::{Hostile, Lie};

/// The honest file's size: large enough that the honest provider cannot deliver all of it before the liar
/// has answered (with 300,000 bytes and the size known, the download ended first about one run in a
/// hundred, and the liar never made the report).
const SIZE: usize = 3_000_000;

/// A download of `bytes` by bare id from a liar and an honest provider, the liar named first.
async fn download_past_a_liar(lie: u64, with_size: bool) -> shoal_node::DownloadReport {
    let src = peer().await;
    let bytes = random_bytes(SIZE, 41);
    let ticket = shared_by(&[&src], "f.bin", &bytes).await;
    let liar = Hostile::start(Lie::Size(lie)).await.unwrap();
    let dst = peer().await;
    let out = dst.home().join("got.bin");
    let mut req = DownloadRequest::from_id(ticket.id, Some(out.clone()));
    req.providers = vec![(liar.peer_id(), liar.addrs()), ticket.providers[0].clone()];
    req.discover = false;
    req.size = with_size.then_some(ticket.size);
    let report = dst.node.download(req).await.unwrap().finish().await.unwrap();
    assert_eq!(b3(&std::fs::read(&out).unwrap()), b3(&bytes), "the output is the honest file");
    let liar_id = liar.peer_id().to_string();
    let seen = report.peers.iter().find(|p| p.peer == liar_id).expect("the liar is in the report");
    assert!(seen.dropped.as_deref().is_some_and(|w| w.contains("claims")), "{seen:?}");
    assert_eq!(seen.bytes, 0, "nothing the liar sent was used");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_claims_a_huge_size_cannot_prove_it_and_the_honest_one_serves() {
    // 1 TiB: were it believed, the file would be preallocated at that size.
    download_past_a_liar(1 << 40, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_claims_a_smaller_size_cannot_prove_it_either() {
    download_past_a_liar(1000, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_tickets_size_a_liar_is_dropped_on_its_first_answer() {
    let report = download_past_a_liar(1 << 30, true).await;
    // Dropped at its first answer: against the ticket's size if it answered first, else against the size
    // the honest provider's answer had already fixed.
    let liar = report.peers.iter().find(|p| p.dropped.is_some()).unwrap();
    let why = liar.dropped.as_deref().unwrap();
    let (request, blob) = (format!("where the request says {SIZE}"), format!("where the blob has {SIZE}"));
    assert!(why.contains(&request) || why.contains(&blob), "{liar:?}");
}

/// A collection of `entries` (name, bytes), every file shared by `src`; its ticket.
async fn collection_ticket(src: &Peer, entries: &[(&str, &[u8])]) -> shoal_node::Ticket {
    use shoal_store::{Collection, Entry};
    let mut list = Vec::new();
    for (i, (name, bytes)) in entries.iter().enumerate() {
        let info = src.node.share(&write_file(src.home(), &format!("member{i}"), bytes)).await.unwrap();
        list.push(Entry { path: (*name).into(), id: info.id, size: bytes.len() as u64 });
    }
    let collection = Collection { entries: list };
    let encoded = collection.encode();
    let id = src.node.store().import_bytes(&encoded).unwrap();
    let any = src.node.share(&write_file(src.home(), "any", b"x")).await.unwrap();
    let mut ticket = src.node.ticket(&any).await.unwrap();
    (ticket.id, ticket.size, ticket.collection, ticket.name) = (id, encoded.len() as u64, true, "folder".into());
    ticket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_entry_named_like_another_entrys_partial_file_cannot_destroy_it() {
    let src = peer().await;
    let (first, second) = (random_bytes(150_000, 51), random_bytes(90_000, 52));
    // Fetched in order: the first is complete when the second starts, whose partial file used to be
    // `.a.shoal-partial`, right where the first had just been put.
    let ticket = collection_ticket(&src, &[(".a.shoal-partial", &first), ("a", &second)]).await;
    let dst = peer().await;
    let out = dst.home().join("got");
    let report = fetch(&dst, &ticket, &out).await;
    assert_eq!(report.files, 2);
    assert_eq!(b3(&std::fs::read(out.join(".a.shoal-partial")).unwrap()), b3(&first), "the first entry survived");
    assert_eq!(b3(&std::fs::read(out.join("a")).unwrap()), b3(&second));
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2, "nothing else in the folder");
    assert!(!dst.home().join(".got.shoal-partial").exists(), "the staging folder is gone once all are in place");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_downloads_of_one_blob_into_one_data_dir_one_writer_and_the_other_refused() {
    // A slow source (1 MB/s) so that the first download is still writing when the second begins.
    let src = peer_with(|c| c.with_upload_limit(Some(1_000_000))).await;
    let bytes = random_bytes(3_000_000, 61);
    let ticket = shared_by(&[&src], "f.bin", &bytes).await;
    let dst = peer().await;
    let (a, b) = (dst.home().join("a.bin"), dst.home().join("b.bin"));
    let first = dst.node.download(DownloadRequest::from_ticket(&ticket, Some(a.clone()))).await.unwrap();
    let mut progress = first.progress();
    tokio::time::timeout(std::time::Duration::from_secs(20), progress.wait_for(|p| p.verified > 0))
        .await
        .unwrap()
        .unwrap();
    let second = dst.node.download(DownloadRequest::from_ticket(&ticket, Some(b.clone()))).await.unwrap();
    let err = second.finish().await.expect_err("a second writer of the same blob was let in");
    assert!(err.to_string().contains("already writing"), "{err}");
    let report = first.finish().await.unwrap();
    assert_eq!(report.size, bytes.len() as u64);
    assert_eq!(b3(&std::fs::read(&a).unwrap()), b3(&bytes), "the first download is intact");
    assert!(!b.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsharing_a_folder_stops_serving_and_withdraws_every_file_of_it() {
    let src = peer().await;
    let root = src.home().join("album");
    std::fs::create_dir_all(&root).unwrap();
    let (one, two) = (random_bytes(40_000, 71), random_bytes(50_000, 72));
    write_file(&root, "one.bin", &one);
    write_file(&root, "two.bin", &two);
    let info = src.node.share(&root).await.unwrap();
    let ticket = src.node.ticket(&info).await.unwrap();
    let member = info.files.iter().find(|f| f.path == "one.bin").unwrap().id;
    let key = member.as_bytes().to_vec();
    assert!(src.node.network().dht_state(key.clone()).await.unwrap().providers.contains(&src.node.peer_id()));
    assert!(src.node.unshare(&info.id).await.unwrap());
    // Withdrawn from the DHT: our own provider record of the file is gone.
    let state = src.node.network().dht_state(key).await.unwrap();
    assert!(!state.providers.contains(&src.node.peer_id()), "a file of the unshared folder is still provided");
    // And not served: a peer that asks for the file by id, from us only, finds no provider.
    let dst = peer().await;
    let mut req = DownloadRequest::from_id(member, Some(dst.home().join("one.bin")));
    req.providers = ticket.providers.clone();
    req.discover = false;
    let err = dst.node.download(req).await.unwrap().finish().await.expect_err("an unshared file was served");
    assert!(err.to_string().contains("no provider"), "{err}");
    // The user's files are untouched.
    assert_eq!(std::fs::read(root.join("one.bin")).unwrap(), one);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_cannot_fill_our_dht_store_nor_stop_us_announcing_our_shares() {
    let limits = shoal_net::DhtLimits { own: 1 << 20, per_peer: 40, total: 100 };
    let victim = peer_with(|mut c| {
        c.net = c.net.clone().with_dht_limits(limits);
        c
    })
    .await;
    let (me, addrs) = (victim.node.peer_id(), victim.node.addrs().await.unwrap());
    // Three Sybils announce 60 keys each to us: more than each may, and more than all may together.
    let mut sybils = Vec::new();
    for _ in 0..3 {
        sybils.push(Hostile::flood_dht(me, addrs.clone(), 60).await.unwrap());
    }
    let probe = vec![0u8; 32];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let held = loop {
        let held = victim.node.network().dht_state(probe.clone()).await.unwrap().remote_records;
        if held >= 100 || std::time::Instant::now() > deadline {
            break held;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(held, 100, "the store is bounded in all (and was filled to the bound)");
    // Our own shares are still announced: every one of them is in our store as provided by us.
    let mut ids = Vec::new();
    for i in 0..30 {
        let info = victim.node.share(&write_file(victim.home(), &format!("f{i}"), &random_bytes(100, 900 + i))).await;
        ids.push(info.unwrap().id);
    }
    // (Announcements are queued and go out a few at a time.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for id in ids {
        loop {
            let state = victim.node.network().dht_state(id.as_bytes().to_vec()).await.unwrap();
            if state.providers.contains(&me) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "our own share {id} was never recorded as provided");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    assert_eq!(victim.node.network().dht_state(probe).await.unwrap().remote_records, 100);
    drop(sybils);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_that_ask_and_never_read_cost_only_themselves() {
    let src = peer().await;
    let bytes = random_bytes(8 << 20, 91);
    let ticket = shared_by(&[&src], "f.bin", &bytes).await;
    let (provider, addrs) = ticket.providers[0].clone();
    // Three hoarders, 16 streams each, every one full of 1 MiB requests never read: together far more than
    // the provider's 64 prepared answers.
    let mut hoarders = Vec::new();
    for _ in 0..3 {
        hoarders.push(
            Hostile::hoard(provider, addrs.clone(), *ticket.id.as_bytes(), bytes.len() as u64, 16).await.unwrap(),
        );
    }
    // An honest download from the same provider still completes (the test's stall timeout is 20 s, less
    // than the 30 s after which the hoarders' streams are closed: their share alone is what they block).
    let dst = peer().await;
    let out = dst.home().join("got.bin");
    fetch(&dst, &ticket, &out).await;
    assert_eq!(b3(&std::fs::read(&out).unwrap()), b3(&bytes));
    drop(hoarders);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peer_cannot_open_connections_without_limit() {
    let victim = peer().await;
    let addr = victim.node.addrs().await.unwrap().into_iter().next().unwrap();
    let hostile = Hostile::dial_repeatedly(addr.clone(), 20).await.unwrap();
    let count = || async {
        let peers = victim.node.network().peers().await.unwrap();
        peers.iter().find(|p| p.peer == hostile.peer_id()).map_or(0, |p| p.addrs.len())
    };
    let start = std::time::Instant::now();
    let deadline = start + std::time::Duration::from_secs(10);
    let mut most = 0;
    // Watch until the dials have been answered (at least the allowed four are in), then a little longer.
    // An attacker keeps dialing: a burst whose connections did not all stand at once (seen once in CI, 3 at
    // most) is followed by more, every 2 s; the cap must hold through all of them.
    let mut settled_at = None;
    let mut last_burst = start;
    while std::time::Instant::now() < deadline {
        if most < 4 && last_burst.elapsed() > std::time::Duration::from_secs(2) {
            hostile.dial_again(&addr, 20).await;
            last_burst = std::time::Instant::now();
        }
        most = most.max(count().await);
        if most >= 4 && settled_at.is_none() {
            settled_at = Some(std::time::Instant::now());
        }
        if settled_at.is_some_and(|t| t.elapsed() > std::time::Duration::from_millis(500)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(most, 4, "connections from one peer: at most 4 (and the dials did arrive)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_of_many_small_files_comes_whole_even_when_one_provider_lacks_half_of_them() {
    let full = peer().await;
    let root = full.home().join("photos");
    let files: Vec<(String, Vec<u8>)> =
        (0..300).map(|i| (format!("d{}/p{i:03}.jpg", i % 7), random_bytes(1000 + i * 37, 500 + i as u64))).collect();
    for (name, bytes) in &files {
        std::fs::create_dir_all(root.join(name).parent().unwrap()).unwrap();
        std::fs::write(root.join(name), bytes).unwrap();
    }
    let info = full.node.share(&root).await.unwrap();
    let ticket = full.node.ticket(&info).await.unwrap();
    // A second provider with the folder's collection but only every other file.
    let half = peer().await;
    let collection = full.node.store().read_blob(&info.id, 1 << 24).unwrap().unwrap();
    half.node.store().import_bytes(&collection).unwrap();
    for (i, (_, bytes)) in files.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        half.node.share(&write_file(half.home(), &format!("h{i}"), bytes)).await.unwrap();
    }
    let half_ticket =
        half.node.ticket(&half.node.share(&write_file(half.home(), "x", b"x")).await.unwrap()).await.unwrap();
    let mut both = ticket.clone();
    both.providers = vec![half_ticket.providers[0].clone(), ticket.providers[0].clone()];
    let dst = peer().await;
    let out = dst.home().join("got");
    let report = fetch(&dst, &both, &out).await;
    assert_eq!(report.files, files.len());
    for (name, bytes) in &files {
        assert_eq!(std::fs::read(out.join(name)).unwrap(), *bytes, "{name}");
    }
    // Both served files, and the staging folder is gone.
    let served: Vec<&shoal_node::PeerReport> = report.peers.iter().filter(|p| p.bytes > 0).collect();
    assert_eq!(served.len(), 2, "{:?}", report.peers);
    assert!(!dst.home().join(".got.shoal-partial").exists());
    // Fetched again into the same place: everything is found in place, checked, nothing is fetched.
    let again = dst.node.download(DownloadRequest::from_ticket(&both, Some(out.clone()))).await.unwrap();
    let err = again.finish().await;
    assert!(err.is_ok(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_flooding_queries_is_throttled_and_others_still_search() {
    use shoal_node::config::Topology;
    let victim = peer_with(|c| c.with_topology(Topology::Pure)).await;
    let addr = victim.node.addrs().await.unwrap()[0].clone();
    victim.node.share(&write_file(victim.home(), "Holiday Photos.zip", &random_bytes(5000, 95))).await.unwrap();
    let honest = peer_with(|c| {
        let net = c.net.clone().with_bootstrap(vec![addr]);
        c.with_topology(Topology::Pure).with_net(net)
    })
    .await;
    let (me, addrs) = (victim.node.peer_id(), victim.node.addrs().await.unwrap());
    let flooder = Hostile::flood_queries(me, addrs, 5_000).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while victim.node.search_counters().router.throttled == 0 {
        assert!(std::time::Instant::now() < deadline, "the flood was never throttled");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The honest neighbour's search still reaches the victim and comes back with its file.
    let mut found = false;
    for _ in 0..10 {
        let req = shoal_node::SearchRequest {
            query: shoal_proto::search::Query::words("holiday"),
            limit: 1,
            timeout: std::time::Duration::from_secs(3),
        };
        let mut stream = honest.node.search(req).await.unwrap();
        while let Some(ev) = stream.next().await {
            if let shoal_node::SearchEvent::Hit(h) = ev
                && h.name == "Holiday Photos.zip"
            {
                found = true;
            }
        }
        if found {
            break;
        }
    }
    assert!(found, "an honest search failed while a neighbour flooded");
    // The flood was written before the search began, but the victim may still be reading it (a CI run
    // read the counters after 305 of the 5,000): wait, bounded, for most of it to have been dropped.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let c = victim.node.search_counters().router;
        if c.throttled >= 1_000 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "most of the 5,000 were dropped: {c:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(flooder);
}
