//! Yamux (`/yamux/1.0.0`) as libp2p's stream multiplexer, with data frames of up to [`FRAME_DATA`] bytes.
//!
//! Why not `libp2p::yamux::Config`: it leaves the `yamux` crate's frame size at 16 KiB and has no setting
//! for it. Under TLS every data frame is two writes to the security layer (the 12-byte header, then the
//! body), each its own TLS record and its own `writev`, and the stream's task and the connection's task
//! hand over once per frame. A 1 GiB download took 137,550 `writev`s at 16 KiB and 27,094 at 256 KiB, and
//! the sending peer's CPU for it went from 1.17 s to 0.75 s on the 2-core development machine (loopback
//! delivery runs inside the sender's system calls; `perf`, docs/ARCHITECTURE.md "Throughput"). 64 KiB
//! frames were measured too and sat in between. The cost of large frames is latency for other streams of
//! the connection: a Kademlia or search message may wait behind one frame, 2 ms at 1 Gbit/s, 20 ms at
//! 100 Mbit/s. Frames of 256 KiB are above glibc's default `mmap` threshold; the `shoal` binary raises it
//! (shoal-cli's `tune_allocator`), otherwise each frame would fault in fresh pages.
//!
//! The wire protocol is yamux's own: a peer using libp2p-yamux talks to this one unchanged (frame sizes are
//! each sender's choice). Inbound streams that arrive while nobody asks for one are buffered, at most
//! [`MAX_BUFFERED_INBOUND`]; yamux's ACK backlog keeps well-behaved peers under that.
//!
//! Below yamux, small writes are gathered and sent when the connection has nothing more to do
//! ([`gather`]): a burst of small frames leaves as one TLS record instead of two per frame.

mod gather;

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures::{AsyncRead, AsyncWrite, future};
use libp2p::core::UpgradeInfo;
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade};

use gather::{Flusher, Gathered, gathered};

/// The largest payload of one data frame we send.
pub(crate) const FRAME_DATA: usize = 256 * 1024;

/// Inbound streams held for the swarm at most; more are reset.
const MAX_BUFFERED_INBOUND: usize = 256;

/// The upgrade that puts yamux on a secured connection.
#[derive(Debug, Clone)]
pub(crate) struct Yamux(yamux::Config);

/// Streams one connection may carry at once (yamux's default is 512). A peer needs one per protocol and
/// download, and at most 16 transfer streams of its are served; 128 leaves room and bounds the rest.
const MAX_STREAMS: usize = 128;
/// What all streams of one connection may have received and not yet read (yamux's default is 1 GiB).
/// Each stream's window starts at 256 KiB (yamux's protocol constant) and doubles only while we read its
/// data within two round trips, so a peer cannot make us buffer more than we consume; what this caps is a
/// fast stream's window: `MAX_STREAMS` x 256 KiB are set aside, the rest is what streams may grow into.
/// With 64 MiB, one transfer stream stopped at 16 MiB (the next doubling did not fit) and a 300 ms link
/// carried 65 MB/s of its 100; with 128 MiB it grows to 64 MiB, twice the 30 MB that 100 MB/s x 300 ms
/// keeps in flight, and that link carried 98 MB/s (docs/PERFORMANCE.md, "Real links").
const MAX_CONNECTION_WINDOW: usize = 128 * 1024 * 1024;

impl Default for Yamux {
    fn default() -> Self {
        let mut config = yamux::Config::default();
        config.set_split_send_size(FRAME_DATA);
        // Streams first: the window must stay >= 256 KiB per stream (yamux checks it).
        config.set_max_num_streams(MAX_STREAMS);
        config.set_max_connection_receive_window(Some(MAX_CONNECTION_WINDOW));
        Self(config)
    }
}

impl UpgradeInfo for Yamux {
    type Info = &'static str;
    type InfoIter = std::iter::Once<Self::Info>;

    fn protocol_info(&self) -> Self::InfoIter {
        std::iter::once("/yamux/1.0.0")
    }
}

/// What an upgrade in either direction resolves to: the muxer at once (yamux has no handshake).
type Upgraded<C> = future::Ready<Result<Muxer<C>, std::io::Error>>;

impl Yamux {
    fn start<C: AsyncRead + AsyncWrite + Unpin>(self, socket: C, mode: yamux::Mode) -> Upgraded<C> {
        let (socket, flusher) = gathered(socket);
        future::ready(Ok(Muxer::new(yamux::Connection::new(socket, self.0, mode), flusher)))
    }
}

impl<C: AsyncRead + AsyncWrite + Send + Unpin + 'static> InboundConnectionUpgrade<C> for Yamux {
    type Output = Muxer<C>;
    type Error = std::io::Error;
    type Future = Upgraded<C>;

    fn upgrade_inbound(self, socket: C, _: Self::Info) -> Self::Future {
        self.start(socket, yamux::Mode::Server)
    }
}

impl<C: AsyncRead + AsyncWrite + Send + Unpin + 'static> OutboundConnectionUpgrade<C> for Yamux {
    type Output = Muxer<C>;
    type Error = std::io::Error;
    type Future = Upgraded<C>;

    fn upgrade_outbound(self, socket: C, _: Self::Info) -> Self::Future {
        self.start(socket, yamux::Mode::Client)
    }
}

/// One yamux connection, as libp2p's [`StreamMuxer`].
pub(crate) struct Muxer<C> {
    connection: yamux::Connection<Gathered<C>>,
    /// Sends what yamux wrote, once it has nothing more to do.
    flusher: Flusher<C>,
    /// Streams the peer opened while the swarm was driving the connection ([`StreamMuxer::poll`]) rather
    /// than asking for an inbound stream: yamux only makes progress through `poll_next_inbound`, so those
    /// calls can produce streams nobody asked for yet.
    inbound: VecDeque<yamux::Stream>,
    inbound_waker: Option<Waker>,
}

impl<C: AsyncWrite + Unpin> Muxer<C> {
    fn new(connection: yamux::Connection<Gathered<C>>, flusher: Flusher<C>) -> Self {
        Self { connection, flusher, inbound: VecDeque::new(), inbound_waker: None }
    }

    /// Sends what yamux gathered: called whenever yamux has returned. A full socket wakes this task when it
    /// has room, and the next call goes on.
    fn send_gathered(&self, cx: &mut Context<'_>) -> Result<(), yamux::ConnectionError> {
        match self.flusher.poll_send(cx) {
            Poll::Ready(Err(e)) => Err(yamux::ConnectionError::Io(e)),
            _ => Ok(()),
        }
    }
}

fn closed() -> yamux::ConnectionError {
    yamux::ConnectionError::Closed
}

impl<C: AsyncRead + AsyncWrite + Unpin> StreamMuxer for Muxer<C> {
    type Substream = yamux::Stream;
    type Error = yamux::ConnectionError;

    fn poll_inbound(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<yamux::Stream, Self::Error>> {
        let this = self.get_mut();
        if let Some(stream) = this.inbound.pop_front() {
            return Poll::Ready(Ok(stream));
        }
        match this.connection.poll_next_inbound(cx) {
            Poll::Ready(Some(r)) => Poll::Ready(r),
            Poll::Ready(None) => Poll::Ready(Err(closed())),
            Poll::Pending => {
                this.send_gathered(cx)?;
                this.inbound_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn poll_outbound(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<yamux::Stream, Self::Error>> {
        let this = self.get_mut();
        let r = this.connection.poll_new_outbound(cx);
        this.send_gathered(cx)?;
        r
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().connection.poll_close(cx)
    }

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        let this = self.get_mut();
        let stream = match this.connection.poll_next_inbound(cx) {
            Poll::Ready(Some(r)) => r?,
            Poll::Ready(None) => return Poll::Ready(Err(closed())),
            Poll::Pending => {
                // Nothing more to do for now: what the streams wrote leaves together.
                this.send_gathered(cx)?;
                return Poll::Pending;
            }
        };
        if this.inbound.len() >= MAX_BUFFERED_INBOUND {
            tracing::warn!(%stream, "peer opened more streams than are waiting to be accepted; resetting it");
            drop(stream);
        } else {
            this.inbound.push_back(stream);
            if let Some(w) = this.inbound_waker.take() {
                w.wake();
            }
        }
        // Let the caller run other work, then come back to drive the connection further.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use futures::{AsyncReadExt, AsyncWriteExt};
    use libp2p::core::muxing::StreamMuxerExt;
    use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

    use super::*;

    pub(crate) type Io = Compat<tokio::net::TcpStream>;

    /// A connected pair of loopback TCP sockets, as futures-io streams (the upgrade's tests use it too).
    pub(crate) async fn pair() -> (Io, Io) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (dialed, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        (dialed.unwrap().compat(), accepted.unwrap().0.compat())
    }

    /// Opens a stream on `dialer`, sends `data` and a close, and checks that the accepting side gets exactly
    /// that and can answer on the same stream. Both muxers are driven the way the swarm drives them.
    async fn round_trip<D, A>(mut dialer: D, mut acceptor: A, data: Vec<u8>)
    where
        D: StreamMuxer + Unpin + Send + 'static,
        D::Substream: Unpin + Send + 'static,
        D::Error: std::fmt::Debug,
        A: StreamMuxer + Unpin + Send + 'static,
        A::Substream: Unpin + Send + 'static,
        A::Error: std::fmt::Debug,
    {
        let mut out = future::poll_fn(|cx| dialer.poll_outbound_unpin(cx)).await.unwrap();
        let drive_dialer = tokio::spawn(async move {
            let _ = future::poll_fn(|cx| dialer.poll_unpin(cx)).await;
        });
        let expected = data.clone();
        let accepting = tokio::spawn(async move {
            let mut inbound = future::poll_fn(|cx| acceptor.poll_inbound_unpin(cx)).await.unwrap();
            let drive = tokio::spawn(async move {
                let _ = future::poll_fn(|cx| acceptor.poll_unpin(cx)).await;
            });
            let mut got = Vec::new();
            inbound.read_to_end(&mut got).await.unwrap();
            assert!(got == expected, "received {} bytes, not the {} sent", got.len(), expected.len());
            inbound.write_all(b"thanks").await.unwrap();
            inbound.close().await.unwrap();
            drive.abort_handle()
        });
        out.write_all(&data).await.unwrap();
        out.close().await.unwrap();
        let mut answer = Vec::new();
        out.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"thanks");
        accepting.await.unwrap().abort();
        drive_dialer.abort();
    }

    fn data() -> Vec<u8> {
        // Several of our frames' worth, and not a multiple of any frame size.
        (0..3 * FRAME_DATA + 12_345).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn our_muxer_talks_to_libp2p_yamux_both_ways() {
        let (a, b) = pair().await;
        let ours = Yamux::default().upgrade_outbound(a, "/yamux/1.0.0").await.unwrap();
        let theirs = libp2p::yamux::Config::default().upgrade_inbound(b, "/yamux/1.0.0").await.unwrap();
        round_trip(ours, theirs, data()).await;

        let (a, b) = pair().await;
        let theirs = libp2p::yamux::Config::default().upgrade_outbound(a, "/yamux/1.0.0").await.unwrap();
        let ours = Yamux::default().upgrade_inbound(b, "/yamux/1.0.0").await.unwrap();
        round_trip(theirs, ours, data()).await;
    }

    /// Counts the writes that reach the socket.
    struct Counting {
        io: Io,
        writes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl AsyncRead for Counting {
        fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.io).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Counting {
        fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
            let r = Pin::new(&mut self.io).poll_write(cx, buf);
            if let Poll::Ready(Ok(_)) = r {
                self.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            r
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_flush(cx)
        }
        fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_close(cx)
        }
    }

    /// What several streams write while the connection is busy leaves in one socket write, not two per
    /// frame: a new connection's first burst must fit TCP's first congestion window (see `gather`).
    #[tokio::test]
    async fn the_first_frames_of_several_streams_leave_in_one_write() {
        let (a, b) = pair().await;
        let writes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let socket = Counting { io: a, writes: writes.clone() };
        let mut dialer = Yamux::default().upgrade_outbound(socket, "/yamux/1.0.0").await.unwrap();
        let mut acceptor = Yamux::default().upgrade_inbound(b, "/yamux/1.0.0").await.unwrap();
        const STREAMS: usize = 8;
        let mut sent: Vec<String> = (0..STREAMS).map(|i| format!("hello from stream {i}")).collect();
        let mut outs = Vec::new();
        for text in &sent {
            let mut s = future::poll_fn(|cx| dialer.poll_outbound_unpin(cx)).await.unwrap();
            s.write_all(text.as_bytes()).await.unwrap();
            outs.push(s);
        }
        let before = writes.load(std::sync::atomic::Ordering::SeqCst);
        let drive = tokio::spawn(async move {
            let _ = future::poll_fn(|cx| dialer.poll_unpin(cx)).await;
        });
        let wait = std::time::Duration::from_secs(5);
        let mut got = Vec::new();
        for _ in 0..STREAMS {
            let inbound = tokio::time::timeout(wait, future::poll_fn(|cx| acceptor.poll_inbound_unpin(cx)));
            let mut s = inbound.await.unwrap().unwrap();
            let mut buf = [0u8; 64];
            let n = tokio::time::timeout(wait, s.read(&mut buf)).await.unwrap().unwrap();
            got.push(String::from_utf8(buf[..n].to_vec()).unwrap());
        }
        got.sort();
        sent.sort();
        assert_eq!(got, sent);
        let burst = writes.load(std::sync::atomic::Ordering::SeqCst) - before;
        // Without gathering: two writes per frame, 16 here (and a ping).
        assert!(burst <= 2, "the first frames of {STREAMS} streams took {burst} socket writes");
        drive.abort();
        drop(outs);
    }

    #[tokio::test]
    async fn two_of_ours_carry_a_stream() {
        let (a, b) = pair().await;
        let dialer = Yamux::default().upgrade_outbound(a, "/yamux/1.0.0").await.unwrap();
        let acceptor = Yamux::default().upgrade_inbound(b, "/yamux/1.0.0").await.unwrap();
        round_trip(dialer, acceptor, data()).await;
    }
}
