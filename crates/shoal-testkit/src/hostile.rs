//! A hostile peer for tests: a real libp2p peer (Shoal's own network layer, on loopback) whose transfer
//! answers are under the test's control, so that a test can perform an attack and show that it fails.
//!
//! What it can do today: answer every `Have` with a size of its choosing (and claim to have all of it), and
//! answer every `Get` with garbage of the right length ([`Hostile::start`]); announce itself as the
//! provider of any number of made-up keys to fill a peer's DHT store ([`Hostile::flood_dht`]); ask for
//! data and never read it ([`Hostile::hoard`]); dial one peer over and over ([`Hostile::dial_repeatedly`]).
//! flood a peer with search queries ([`Hostile::flood_queries`]). Further attacks are added here as tests
//! need them.

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol};
use shoal_proto::transfer::messages::MAX_FRAME;
use shoal_proto::transfer::{CHUNK, ChunkSpan, Request, Response};
use shoal_proto::wire;

/// How the hostile peer answers transfer requests.
#[derive(Clone, Copy, Debug)]
pub enum Lie {
    /// Claims every blob it is asked about has this many bytes, all of them here.
    Size(u64),
}

/// A running hostile peer. Dropping it stops it.
pub struct Hostile {
    net: shoal_net::Network,
    addrs: Vec<Multiaddr>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Hostile {
    /// Starts a peer on 127.0.0.1 (port 0) that answers transfer streams with `lie`.
    pub async fn start(lie: Lie) -> Result<Self, String> {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let net = shoal_net::Network::start(key, shoal_net::NetConfig::loopback().with_dht(false))
            .await
            .map_err(|e| e.to_string())?;
        let mut incoming =
            net.streams().accept(StreamProtocol::new(shoal_proto::transfer::PROTOCOL)).map_err(|e| e.to_string())?;
        let task = tokio::spawn(async move {
            while let Some((_peer, stream)) = incoming.next().await {
                tokio::spawn(answer(stream, lie));
            }
        });
        let addrs = net.listen_addrs().await.map_err(|e| e.to_string())?;
        Ok(Self { net, addrs, task })
    }

    /// A peer with the DHT on that announces `keys` made-up keys (as their provider) while connected to
    /// `target` only: every announcement lands in `target`'s store. Returns once all were sent.
    pub async fn flood_dht(target: PeerId, addrs: Vec<Multiaddr>, keys: usize) -> Result<Self, String> {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let net = shoal_net::Network::start(key, shoal_net::NetConfig::loopback()).await.map_err(|e| e.to_string())?;
        net.connect(target, addrs).await.map_err(|e| e.to_string())?;
        let me = net.peer_id().to_bytes();
        for i in 0..keys {
            let mut k = me.clone();
            k.extend_from_slice(&(i as u64).to_le_bytes());
            net.provide(k).await.map_err(|e| e.to_string())?;
        }
        let addrs = net.listen_addrs().await.map_err(|e| e.to_string())?;
        Ok(Self { net, addrs, task: tokio::spawn(async {}) })
    }

    /// A peer that opens `streams` transfer streams to `provider`, asks each for as many 1 MiB ranges of
    /// blob `id` (`size` bytes) as the provider reads ahead, and never reads an answer: it would hold the
    /// provider's prepared answers (and their memory) for as long as the provider lets it.
    pub async fn hoard(
        provider: PeerId,
        addrs: Vec<Multiaddr>,
        id: [u8; 32],
        size: u64,
        streams: usize,
    ) -> Result<Self, String> {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let net = shoal_net::Network::start(key, shoal_net::NetConfig::loopback().with_dht(false))
            .await
            .map_err(|e| e.to_string())?;
        let mut open = Vec::new();
        let chunks = size.div_ceil(CHUNK).max(1);
        // A stream whose connection went away (a busy machine) is opened again on a new one, a few times.
        let mut tries = 0;
        while open.len() < streams && tries < streams * 3 {
            tries += 1;
            let opened: Result<Stream, String> = async {
                net.connect(provider, addrs.clone()).await.map_err(|e| e.to_string())?;
                let mut s = net
                    .streams()
                    .open_stream(provider, StreamProtocol::new(shoal_proto::transfer::PROTOCOL))
                    .await
                    .map_err(|e| e.to_string())?;
                for i in 0..32u64 {
                    let start = (i * 1024) % chunks;
                    let span = ChunkSpan { start, end: (start + 1024).min(chunks) };
                    let frame = wire::encode(&Request::Get { id, span }, MAX_FRAME).map_err(|e| e.to_string())?;
                    s.write_all(&frame).await.map_err(|e| e.to_string())?;
                }
                s.flush().await.map_err(|e| e.to_string())?;
                Ok(s)
            }
            .await;
            match opened {
                Ok(s) => open.push(s),
                Err(e) => eprintln!("hoard: a stream to {provider} failed ({e}); trying again"),
            }
        }
        if open.is_empty() {
            return Err(format!("could not open a single stream to {provider}"));
        }
        let addrs = net.listen_addrs().await.map_err(|e| e.to_string())?;
        // The streams stay open, unread, until the hostile peer is dropped.
        let task = tokio::spawn(async move {
            let _open = open;
            std::future::pending::<()>().await;
        });
        Ok(Self { net, addrs, task })
    }

    /// A peer that dials `addr` `times` times (each dial a new connection if the other side takes it).
    pub async fn dial_repeatedly(addr: Multiaddr, times: usize) -> Result<Self, String> {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let net = shoal_net::Network::start(key, shoal_net::NetConfig::loopback().with_dht(false))
            .await
            .map_err(|e| e.to_string())?;
        for _ in 0..times {
            let _ = net.dial(addr.clone()).await;
        }
        let addrs = net.listen_addrs().await.map_err(|e| e.to_string())?;
        Ok(Self { net, addrs, task: tokio::spawn(async {}) })
    }

    /// Dials `addr` `times` times more (see [`Hostile::dial_repeatedly`]).
    pub async fn dial_again(&self, addr: &Multiaddr, times: usize) {
        for _ in 0..times {
            let _ = self.net.dial(addr.clone()).await;
        }
    }

    /// A peer that sends `n` search queries (each a new query id, the widest TTL) to `target` on one search
    /// stream, as fast as the stream takes them.
    pub async fn flood_queries(target: PeerId, addrs: Vec<Multiaddr>, n: usize) -> Result<Self, String> {
        use shoal_proto::search::{Query, SearchMsg};
        let key = libp2p::identity::Keypair::generate_ed25519();
        let net = shoal_net::Network::start(key, shoal_net::NetConfig::loopback().with_dht(false))
            .await
            .map_err(|e| e.to_string())?;
        net.connect(target, addrs).await.map_err(|e| e.to_string())?;
        let proto = StreamProtocol::new(shoal_proto::search::messages::PROTOCOL);
        let mut s = net.streams().open_stream(target, proto).await.map_err(|e| e.to_string())?;
        for qid in 0..n as u64 {
            let msg = SearchMsg::Query {
                qid: qid.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                ttl: 7,
                hops: 0,
                query: Query::words("a"),
            };
            let frame = wire::encode(&msg, shoal_proto::search::messages::MAX_FRAME).map_err(|e| e.to_string())?;
            if s.write_all(&frame).await.is_err() {
                break;
            }
        }
        let _ = s.flush().await;
        let addrs = net.listen_addrs().await.map_err(|e| e.to_string())?;
        let task = tokio::spawn(async move {
            let _keep = s;
            std::future::pending::<()>().await;
        });
        Ok(Self { net, addrs, task })
    }

    /// Its peer id.
    pub fn peer_id(&self) -> PeerId {
        self.net.peer_id()
    }

    /// Where it listens.
    pub fn addrs(&self) -> Vec<Multiaddr> {
        self.addrs.clone()
    }
}

/// Answers one stream's requests with the lie until the other side closes it.
async fn answer(mut stream: Stream, lie: Lie) {
    loop {
        let mut header = [0u8; wire::HEADER_LEN];
        if stream.read_exact(&mut header).await.is_err() {
            return;
        }
        let Ok(len) = wire::decode_header(header, MAX_FRAME) else { return };
        let mut body = vec![0u8; len];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let Ok(req) = wire::decode_body::<Request>(&body) else { return };
        let Lie::Size(size) = lie;
        let (resp, payload) = match req {
            Request::Have { .. } => {
                let spans = vec![ChunkSpan { start: 0, end: size.div_ceil(CHUNK) }];
                (Response::Have { size, spans, collection: false }, Vec::new())
            }
            // Garbage the size of the data and a little proof.
            Request::Get { span, .. } => {
                let n = (span.end.saturating_sub(span.start) * CHUNK + 64).min(1 << 20) as usize;
                (Response::Data { len: n as u64 }, vec![0x5a; n])
            }
            Request::Cancel { .. } => continue,
        };
        let Ok(frame) = wire::encode(&resp, MAX_FRAME) else { return };
        if stream.write_all(&frame).await.is_err() || stream.write_all(&payload).await.is_err() {
            return;
        }
        if stream.flush().await.is_err() {
            return;
        }
    }
}
