//! Transfer streams opened ahead for a folder's small files, while its collection is still being fetched.
//!
//! Opening a stream costs a round trip (multistream-select's protocol choice, answered by the provider)
//! before the first request may go out. The files are known only once the collection is in, but the
//! providers are known from the start (the ticket's): their streams are opened at once and handed to
//! [`super::fetch_small`]'s workers, which open their own only for providers found later or when one of
//! these failed. Dropping a [`Warm`] closes whatever it still holds.

use std::collections::HashMap;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId, Stream};
use tokio::task::JoinHandle;

use super::STREAMS_PER_PROVIDER;

/// One stream being opened (or open) to a provider; `Err` says why it could not be.
pub(crate) type Opening = JoinHandle<Result<Stream, String>>;

/// Streams being opened to each provider, taken one at a time by the workers.
#[derive(Default)]
pub(crate) struct Warm {
    streams: HashMap<PeerId, Vec<Opening>>,
}

impl Warm {
    /// Starts opening [`STREAMS_PER_PROVIDER`] streams to each of `providers` other than `me`.
    pub(crate) fn open(net: &shoal_net::Network, me: PeerId, providers: &[(PeerId, Vec<Multiaddr>)]) -> Self {
        let mut streams: HashMap<PeerId, Vec<Opening>> = HashMap::new();
        for (peer, addrs) in providers.iter().filter(|(p, _)| *p != me) {
            let list = streams.entry(*peer).or_default();
            if !list.is_empty() {
                continue;
            }
            for _ in 0..STREAMS_PER_PROVIDER {
                let (net, peer, addrs) = (net.clone(), *peer, addrs.clone());
                list.push(tokio::spawn(async move { open(&net, peer, addrs).await }));
            }
        }
        Self { streams }
    }

    /// A stream opened ahead to `peer`, if one is left.
    pub(crate) fn take(&mut self, peer: &PeerId) -> Option<Opening> {
        self.streams.get_mut(peer)?.pop()
    }
}

impl Drop for Warm {
    fn drop(&mut self) {
        for h in self.streams.values().flatten() {
            h.abort();
        }
    }
}

/// Connects to `peer` if needed and opens a transfer stream, each within 10 s.
pub(crate) async fn open(net: &shoal_net::Network, peer: PeerId, addrs: Vec<Multiaddr>) -> Result<Stream, String> {
    let timeout = Duration::from_secs(10);
    tokio::time::timeout(timeout, net.connect(peer, addrs))
        .await
        .map_err(|_| "could not connect within 10 s".to_string())?
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(timeout, net.streams().open_stream(peer, crate::transfer::PROTOCOL))
        .await
        .map_err(|_| "could not open a transfer stream within 10 s".to_string())?
        .map_err(|e| format!("cannot open a transfer stream: {e}"))
}

#[cfg(test)]
mod tests {
    use futures::io::AsyncWriteExt;
    use shoal_proto::transfer::messages::MAX_FRAME;
    use shoal_proto::transfer::{Request, Response};

    use super::*;
    use crate::framing::{read_frame, write_frame};
    use crate::{Node, NodeConfig};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streams_opened_ahead_are_live_transfer_streams_four_per_provider_and_none_to_ourselves() {
        let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = Node::start(NodeConfig::loopback(dirs.0.path().join("a"))).await.unwrap();
        let b = Node::start(NodeConfig::loopback(dirs.1.path().join("b"))).await.unwrap();
        let providers = vec![(b.peer_id(), b.addrs().await.unwrap()), (a.peer_id(), Vec::new())];
        let mut warm = Warm::open(a.network(), a.peer_id(), &providers);
        assert!(warm.take(&a.peer_id()).is_none(), "no stream to ourselves");
        let mut opened = Vec::new();
        while let Some(h) = warm.take(&b.peer_id()) {
            opened.push(h.await.unwrap().unwrap());
        }
        assert_eq!(opened.len(), STREAMS_PER_PROVIDER);
        // Each answers a request as a transfer stream does: B has no such blob.
        for s in &mut opened {
            write_frame(s, &Request::Have { id: [7; 32] }, MAX_FRAME).await.unwrap();
            s.flush().await.unwrap();
            let answer: Option<Response> = read_frame(s, MAX_FRAME).await.unwrap();
            assert_eq!(answer, Some(Response::NotFound));
        }
        drop(opened);
        a.shutdown().await;
        b.shutdown().await;
    }
}
