//! Lookups of the closest peers when one peer in the way stops answering: `closest_peers_within` must
//! return what the others said once its time is up, where a plain lookup waits for the silent peer.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on what they do not expect

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use shoal_net::{NetConfig, Network};

/// A peer on its own single-threaded runtime, so the test can freeze it: its connections stay open (the
/// kernel still acknowledges what arrives) and it answers nothing, as a peer whose machine hangs.
struct Freezable {
    net: Network,
    runtime: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Freezable {
    fn start() -> Self {
        let (tx, rx) = std_mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let key = libp2p::identity::Keypair::generate_ed25519();
                let net = Network::start(key, NetConfig::loopback()).await.unwrap();
                tx.send((net.clone(), tokio::runtime::Handle::current())).unwrap();
                let _ = tokio::time::timeout(Duration::from_secs(60), stopped).await;
                net.shutdown().await;
            });
        });
        let (net, runtime) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Self { net, runtime, stop: Some(stop), thread: Some(thread) }
    }

    /// Blocks the peer's only thread until `thaw` is sent to (or dropped), at most 30 s.
    fn freeze(&self) -> std_mpsc::Sender<()> {
        let (thaw, frozen) = std_mpsc::channel::<()>();
        self.runtime.spawn(async move {
            let _ = frozen.recv_timeout(Duration::from_secs(30));
        });
        thaw
    }

    fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_cut_short_answers_without_the_silent_peer() {
    let key = libp2p::identity::Keypair::generate_ed25519();
    let b = Network::start(key, NetConfig::loopback()).await.unwrap();
    let c = Freezable::start();
    let mut bootstrap = b.listen_addrs().await.unwrap();
    bootstrap.extend(c.net.listen_addrs().await.unwrap());
    let key = libp2p::identity::Keypair::generate_ed25519();
    let a = Network::start(key, NetConfig::loopback().with_bootstrap(bootstrap)).await.unwrap();

    // Both must be in a's routing table (identify tells it they speak Kademlia): bounded wait.
    let both = [b.peer_id(), c.net.peer_id()];
    let mut known = false;
    for _ in 0..100 {
        let routing = a.dht_state(Vec::new()).await.unwrap().routing;
        if both.iter().all(|p| routing.contains(p)) {
            known = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(known, "a did not learn both peers within 5 s");

    let thaw = c.freeze();
    let target = b"any key at all".to_vec();
    let plain = tokio::spawn({
        let a = a.clone();
        let target = target.clone();
        async move { a.closest_peers(target).await }
    });
    let started = Instant::now();
    let cut = tokio::time::timeout(Duration::from_secs(8), a.closest_peers_within(target, Duration::from_secs(1)))
        .await
        .expect("the cut-short lookup did not answer within 8 s")
        .unwrap();
    let took = started.elapsed();
    // The plain lookup still waits for c (kad gives a peer 10 s): without that, this test shows nothing.
    assert!(!plain.is_finished(), "the silent peer did not hold up a plain lookup");
    assert!(took < Duration::from_secs(4), "cut short after 1 s, it took {took:?}");
    assert!(cut.contains(&b.peer_id()), "the peer that answered is missing: {cut:?}");

    drop(thaw);
    plain.abort();
    a.shutdown().await;
    b.shutdown().await;
    c.stop();
}
