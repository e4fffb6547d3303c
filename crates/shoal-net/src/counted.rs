//! Bytes a peer receives on gossipsub's streams, counted apart from the rest (memory transport only).
//!
//! The simulator's topic figure is what a delivered post costs each peer in bytes. The link's own count
//! ([`crate::link`]) holds every protocol, so what Kademlia, pings and identify cost while posts spread had
//! to be estimated from quiet windows and subtracted; at a thousand peers on a paused clock that estimate
//! moved the figure between 1.9x and 3.1x the payload from run to run while gossipsub's own count of message
//! bytes stayed at 2.9x. Here every substream is classified by the protocol its multistream-select
//! negotiation names, read from the first bytes it receives, and what gossipsub's streams receive
//! (`/meshsub/...`: messages, control messages, their framing and the negotiation) is counted. Not in it:
//! yamux's 12-byte frame headers and the connection's own handshake.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};

/// The protocol prefix of gossipsub's streams (every version).
const GOSSIP: &[u8] = b"/meshsub/";
/// Negotiation messages that name no protocol: the header, and a refusal before the next proposal.
const NOT_A_PROTOCOL: [&[u8]; 2] = [b"/multistream/1.0.0\n", b"na\n"];
/// Bytes looked at to find the protocol; a stream that has not named one by then is not gossipsub's.
const SNIFF: usize = 256;

/// A muxer whose substreams count what gossipsub's streams receive into `gossip`.
pub(crate) struct Counting<M> {
    inner: M,
    gossip: Arc<AtomicU64>,
}

impl<M> Counting<M> {
    pub(crate) fn new(inner: M, gossip: Arc<AtomicU64>) -> Self {
        Self { inner, gossip }
    }
}

impl<M> StreamMuxer for Counting<M>
where
    M: StreamMuxer + Unpin,
    M::Substream: Unpin,
{
    type Substream = Counted<M::Substream>;
    type Error = M::Error;

    fn poll_inbound(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        Pin::new(&mut this.inner).poll_inbound(cx).map_ok(|s| Counted::new(s, this.gossip.clone()))
    }

    fn poll_outbound(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        Pin::new(&mut this.inner).poll_outbound(cx).map_ok(|s| Counted::new(s, this.gossip.clone()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll(cx)
    }
}

/// What a substream turned out to carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Its protocol is not named yet.
    Unknown,
    Gossip,
    Other,
}

/// A substream that counts what it receives when it is gossipsub's.
pub(crate) struct Counted<S> {
    inner: S,
    kind: Kind,
    /// The first bytes received, while the protocol is unknown.
    seen: Vec<u8>,
    gossip: Arc<AtomicU64>,
}

impl<S> Counted<S> {
    fn new(inner: S, gossip: Arc<AtomicU64>) -> Self {
        Self { inner, kind: Kind::Unknown, seen: Vec::new(), gossip }
    }

    fn on_received(&mut self, bytes: &[u8]) {
        match self.kind {
            Kind::Gossip => {
                self.gossip.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            Kind::Other => {}
            Kind::Unknown => {
                self.seen.extend_from_slice(bytes);
                self.kind = match named_protocol(&self.seen) {
                    Some(p) if p.starts_with(GOSSIP) => Kind::Gossip,
                    Some(_) => Kind::Other,
                    None if self.seen.len() >= SNIFF => Kind::Other,
                    None => Kind::Unknown,
                };
                if self.kind == Kind::Gossip {
                    self.gossip.fetch_add(self.seen.len() as u64, Ordering::Relaxed);
                }
                if self.kind != Kind::Unknown {
                    self.seen = Vec::new();
                }
            }
        }
    }
}

/// The protocol named by the multistream-select messages at the start of `bytes` (each a one-byte length,
/// then the text), or `None` if they do not name one yet.
fn named_protocol(bytes: &[u8]) -> Option<&[u8]> {
    let mut rest = bytes;
    loop {
        let (&len, after) = rest.split_first()?;
        // Longer messages have a multi-byte length: no protocol name of ours or libp2p's is that long.
        if len >= 0x80 {
            return Some(&[]);
        }
        let msg = after.get(..len as usize)?;
        rest = &after[len as usize..];
        if !NOT_A_PROTOCOL.contains(&msg) {
            return Some(msg);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = r
            && let Some(got) = buf.get(..n)
        {
            this.on_received(got);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A negotiation message: its length, then its text.
    fn msg(text: &str) -> Vec<u8> {
        let mut m = vec![text.len() as u8];
        m.extend_from_slice(text.as_bytes());
        m
    }

    fn counted(chunks: &[Vec<u8>]) -> u64 {
        let gossip = Arc::new(AtomicU64::new(0));
        let mut s = Counted::new((), gossip.clone());
        for c in chunks {
            s.on_received(c);
        }
        gossip.load(Ordering::Relaxed)
    }

    #[test]
    fn a_gossip_stream_is_counted_whole_even_when_its_name_comes_in_pieces() {
        let mut first = msg("/multistream/1.0.0\n");
        let name = msg("/meshsub/1.1.0\n");
        first.extend_from_slice(&name[..5]);
        let chunks = vec![first.clone(), name[5..].to_vec(), vec![7; 1000], vec![8; 24]];
        let total: usize = chunks.iter().map(Vec::len).sum();
        assert_eq!(counted(&chunks), total as u64);
    }

    #[test]
    fn a_refused_proposal_before_gossip_still_counts_as_gossip() {
        let mut first = msg("/multistream/1.0.0\n");
        first.extend(msg("na\n"));
        first.extend(msg("/meshsub/1.0.0\n"));
        assert_eq!(counted(&[first.clone(), vec![1; 10]]), first.len() as u64 + 10);
    }

    #[test]
    fn other_protocols_are_not_counted_even_if_they_mention_gossip() {
        let mut identify = msg("/multistream/1.0.0\n");
        identify.extend(msg("/ipfs/id/1.0.0\n"));
        identify.extend_from_slice(b"\x40/meshsub/1.1.0\n and more of the identify message");
        assert_eq!(counted(&[identify, vec![0; 500]]), 0);
        // Garbage that never names a protocol, and a stream with a long length byte.
        assert_eq!(counted(&[vec![0xff; 10], msg("/meshsub/1.1.0\n")]), 0);
        assert_eq!(counted(&[vec![b'x'; SNIFF + 1], msg("/meshsub/1.1.0\n")]), 0);
    }
}
