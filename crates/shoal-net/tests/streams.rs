//! Protocol streams (`shoal_net::streams`): streams that several peers open at the same instant all reach
//! the service, however late it takes them (libp2p-stream, used before, reset all but one), streams on
//! one connection are negotiated side by side, and the errors say what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on what they do not expect

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use shoal_net::{NetConfig, Network, OpenStreamError, StreamProtocol};

const ECHO: StreamProtocol = StreamProtocol::new("/shoal-test/byte/1");
const LIMIT: Duration = Duration::from_secs(20);

async fn peer() -> Network {
    let key = libp2p::identity::Keypair::generate_ed25519();
    Network::start(key, NetConfig::loopback().with_dht(false)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_opened_at_once_by_several_peers_all_wait_for_the_service() {
    let server = peer().await;
    let addrs = server.listen_addrs().await.unwrap();
    // Registered, but not taken from until every stream is open: the worst case of a busy accept loop.
    let mut incoming = server.streams().accept(ECHO).unwrap();
    let clients = [peer().await, peer().await, peer().await];
    const EACH: usize = 12;
    let opened = futures::future::join_all(clients.iter().enumerate().map(|(c, client)| {
        let (id, addrs) = (server.peer_id(), addrs.clone());
        async move {
            client.connect(id, addrs).await.unwrap();
            // All of one client's streams on its one connection, negotiated at the same time.
            futures::future::join_all((0..EACH).map(|i| {
                let mut control = client.streams();
                async move {
                    let mut s = control.open_stream(id, ECHO).await.unwrap();
                    s.write_all(&[(c * EACH + i) as u8]).await.unwrap();
                    s.flush().await.unwrap();
                    s
                }
            }))
            .await
        }
    }));
    let opened = tokio::time::timeout(LIMIT, opened).await.expect("the streams were not opened in time");
    let mut seen = Vec::new();
    for _ in 0..clients.len() * EACH {
        let (from, mut s) = tokio::time::timeout(LIMIT, incoming.next()).await.unwrap().unwrap();
        assert!(clients.iter().any(|c| c.peer_id() == from));
        let mut byte = [0u8];
        tokio::time::timeout(LIMIT, s.read_exact(&mut byte)).await.unwrap().unwrap();
        seen.push(byte[0]);
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..(clients.len() * EACH) as u8).collect::<Vec<_>>());
    assert_eq!(server.streams().dropped_inbound(), 0);
    drop(opened);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_the_peer_does_not_answer_is_named_in_the_error() {
    let (a, b) = (peer().await, peer().await);
    a.connect(b.peer_id(), b.listen_addrs().await.unwrap()).await.unwrap();
    let err = tokio::time::timeout(LIMIT, a.streams().open_stream(b.peer_id(), ECHO)).await.unwrap().unwrap_err();
    assert!(matches!(&err, OpenStreamError::UnsupportedProtocol(p) if *p == ECHO), "{err}");
    assert!(err.to_string().contains("/shoal-test/byte/1"), "{err}");
    // Once b takes the protocol, the same connection carries it.
    let _incoming = b.streams().accept(ECHO).unwrap();
    tokio::time::timeout(LIMIT, a.streams().open_stream(b.peer_id(), ECHO)).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_never_met_cannot_be_reached_and_the_error_says_so() {
    let a = peer().await;
    let stranger = libp2p::identity::Keypair::generate_ed25519().public().to_peer_id();
    let err = tokio::time::timeout(LIMIT, a.streams().open_stream(stranger, ECHO)).await.unwrap().unwrap_err();
    assert!(matches!(err, OpenStreamError::Io(_)), "{err}");
    assert!(err.to_string().contains(&stranger.to_string()), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_is_taken_by_one_receiver_at_a_time() {
    let a = peer().await;
    let first = a.streams().accept(ECHO).unwrap();
    assert!(a.streams().accept(ECHO).is_err());
    drop(first);
    let _second = a.streams().accept(ECHO).unwrap();
}
