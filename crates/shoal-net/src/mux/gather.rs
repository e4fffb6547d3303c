//! The socket under a yamux connection: small writes are gathered and sent together when the connection's
//! driver has nothing more to do ([`Flusher::poll_send`]), so the frames of one burst leave in one TLS
//! record and, mostly, one TCP segment.
//!
//! Why: yamux writes each frame as two writes (its 12-byte header, then the body) and flushes after each
//! frame; under TLS each write is its own record and, with `TCP_NODELAY`, its own segment. A new
//! connection's first burst (confirmations of the streams the dialer opened, the listener's own streams,
//! identify) was two dozen segments of 30 to 80 bytes, and TCP's first congestion window is ten segments:
//! the rest waited a round trip for acknowledgements. Seen with `strace` on a 100 ms link: the sharer wrote
//! the transfer stream's confirmation at once and it reached the downloader 150 ms later, a round trip
//! after the yamux confirmation written just before it (docs/PERFORMANCE.md, "Real links").
//!
//! Large writes (a data frame's body) go straight through once the gathered bytes are out: the first
//! bytes of the body top up the gathered record, so a frame's header rides with its body. While the
//! driver keeps reading (a long download), gathered bytes wait at most [`HOLD_AT_MOST`], so window
//! updates and requests written meanwhile are not held back.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use futures::{AsyncRead, AsyncWrite};

/// Most bytes gathered before they are sent whatever the driver is doing: one TLS record's plaintext.
const GATHER: usize = 16 * 1024;

/// Longest gathered bytes wait while the driver is still busy (reading frame after frame).
const HOLD_AT_MOST: Duration = Duration::from_micros(250);

struct Shared<C> {
    io: C,
    buf: Vec<u8>,
    /// How much of `buf` the socket has taken.
    sent: usize,
    /// When the oldest byte in `buf` was gathered.
    since: Option<Instant>,
    /// Bytes went to `io` since its last flush.
    unflushed: bool,
}

impl<C: AsyncWrite + Unpin> Shared<C> {
    /// Writes out what is gathered.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.buf.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
            self.unflushed = true;
        }
        self.buf.clear();
        self.sent = 0;
        self.since = None;
        Poll::Ready(Ok(()))
    }

    /// Writes out what is gathered and flushes the socket.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        if self.unflushed {
            ready!(Pin::new(&mut self.io).poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }
}

fn lock<C>(shared: &Mutex<Shared<C>>) -> io::Result<MutexGuard<'_, Shared<C>>> {
    shared.lock().map_err(|_| io::Error::other("a connection's socket lock was poisoned by a panic"))
}

/// What yamux reads from and writes to.
pub(crate) struct Gathered<C> {
    shared: Arc<Mutex<Shared<C>>>,
}

/// The driver's handle on the same socket: sends what was gathered.
pub(crate) struct Flusher<C> {
    shared: Arc<Mutex<Shared<C>>>,
}

/// Wraps `io`: the first half goes to yamux, the second stays with whoever drives the connection.
pub(crate) fn gathered<C>(io: C) -> (Gathered<C>, Flusher<C>) {
    let shared = Arc::new(Mutex::new(Shared { io, buf: Vec::new(), sent: 0, since: None, unflushed: false }));
    (Gathered { shared: shared.clone() }, Flusher { shared })
}

impl<C: AsyncWrite + Unpin> Flusher<C> {
    /// Sends whatever is gathered and flushes the socket. Pending: the socket is full, and this task is woken
    /// when it has room (then call again).
    pub(crate) fn poll_send(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        lock(&self.shared)?.poll_send(cx)
    }
}

impl<C: AsyncRead + Unpin> AsyncRead for Gathered<C> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut lock(&self.shared)?.io).poll_read(cx, buf)
    }
}

impl<C: AsyncWrite + Unpin> AsyncWrite for Gathered<C> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let mut s = lock(&self.shared)?;
        loop {
            if s.buf.len() + data.len() <= GATHER {
                s.buf.extend_from_slice(data);
                s.since.get_or_insert_with(Instant::now);
                return Poll::Ready(Ok(data.len()));
            }
            if s.buf.is_empty() {
                // Too big to gather (a data frame's body): straight through.
                let n = ready!(Pin::new(&mut s.io).poll_write(cx, data))?;
                s.unflushed = true;
                return Poll::Ready(Ok(n));
            }
            let room = GATHER.saturating_sub(s.buf.len());
            if room > 0 {
                // Top the record up with this write's first bytes, then send it; the rest comes next call.
                s.buf.extend_from_slice(&data[..room]);
                return match s.poll_drain(cx) {
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    _ => Poll::Ready(Ok(room)),
                };
            }
            // A full record is still waiting for the socket.
            ready!(s.poll_drain(cx))?;
        }
    }

    /// yamux flushes after every frame; sending is left to the driver ([`Flusher::poll_send`]) unless the
    /// gathered bytes have waited too long.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = lock(&self.shared)?;
        if s.since.is_some_and(|t| t.elapsed() >= HOLD_AT_MOST) {
            return s.poll_send(cx);
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = lock(&self.shared)?;
        ready!(s.poll_send(cx))?;
        Pin::new(&mut s.io).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    /// A socket that records each write it takes and can be told to take nothing.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
        flushes: usize,
        full: bool,
    }

    impl AsyncRead for Recorder {
        fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, _: &mut [u8]) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(0))
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
            if self.full {
                return Poll::Pending;
            }
            self.writes.push(data.to_vec());
            Poll::Ready(Ok(data.len()))
        }
        fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.flushes += 1;
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    fn write(g: &mut Gathered<Recorder>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(g).poll_write(&mut cx(), data)
    }

    fn writes(f: &Flusher<Recorder>) -> Vec<Vec<u8>> {
        f.shared.lock().unwrap().io.writes.clone()
    }

    #[test]
    fn small_frames_leave_together_when_the_driver_sends() {
        let (mut g, f) = gathered(Recorder::default());
        for frame in [&b"header-1"[..], b"body-1", b"header-2", b"body-2"] {
            assert!(matches!(write(&mut g, frame), Poll::Ready(Ok(n)) if n == frame.len()));
            // yamux flushes after each frame: nothing may leave yet.
            assert!(Pin::new(&mut g).poll_flush(&mut cx()).is_ready());
        }
        assert!(writes(&f).is_empty(), "sent before the driver was done");
        assert!(f.poll_send(&mut cx()).is_ready());
        assert_eq!(writes(&f), vec![b"header-1body-1header-2body-2".to_vec()]);
        assert_eq!(f.shared.lock().unwrap().io.flushes, 1);
        // Nothing gathered: no empty write, no flush.
        assert!(f.poll_send(&mut cx()).is_ready());
        assert_eq!(writes(&f).len(), 1);
        assert_eq!(f.shared.lock().unwrap().io.flushes, 1);
    }

    #[test]
    fn a_large_body_takes_its_header_along_then_goes_straight_through() {
        let (mut g, f) = gathered(Recorder::default());
        let header = [7u8; 12];
        let body: Vec<u8> = (0..3 * GATHER).map(|i| i as u8).collect();
        assert!(matches!(write(&mut g, &header), Poll::Ready(Ok(12))));
        let mut at = 0;
        while at < body.len() {
            match write(&mut g, &body[at..]) {
                Poll::Ready(Ok(n)) => at += n,
                other => panic!("write did not go through: {other:?}"),
            }
        }
        assert!(f.poll_send(&mut cx()).is_ready());
        let w = writes(&f);
        assert_eq!(w[0].len(), GATHER, "the header and the body's first bytes make one record");
        assert_eq!(&w[0][..12], &header);
        assert_eq!(w.len(), 2, "the rest of the body in one write: {:?}", w.iter().map(Vec::len).collect::<Vec<_>>());
        assert_eq!(w.concat(), [&header[..], &body].concat());
    }

    #[test]
    fn a_full_socket_holds_writes_back_and_loses_nothing() {
        let (mut g, f) = gathered(Recorder::default());
        f.shared.lock().unwrap().io.full = true;
        let mut sent = Vec::new();
        let chunk = vec![1u8; 1000];
        // Gathering goes on until a record is full and cannot leave.
        loop {
            match write(&mut g, &chunk) {
                Poll::Ready(Ok(n)) => sent.extend_from_slice(&chunk[..n]),
                Poll::Pending => break,
                Poll::Ready(Err(e)) => panic!("{e}"),
            }
            assert!(sent.len() <= GATHER + chunk.len(), "accepted {} bytes into a full socket", sent.len());
        }
        assert!(f.poll_send(&mut cx()).is_pending());
        f.shared.lock().unwrap().io.full = false;
        assert!(f.poll_send(&mut cx()).is_ready());
        assert_eq!(writes(&f).concat(), sent);
    }

    #[test]
    fn gathered_bytes_leave_on_yamuxs_flush_once_they_have_waited_long_enough() {
        let (mut g, f) = gathered(Recorder::default());
        assert!(matches!(write(&mut g, b"window update"), Poll::Ready(Ok(13))));
        assert!(Pin::new(&mut g).poll_flush(&mut cx()).is_ready());
        assert!(writes(&f).is_empty());
        std::thread::sleep(HOLD_AT_MOST * 2);
        assert!(Pin::new(&mut g).poll_flush(&mut cx()).is_ready());
        assert_eq!(writes(&f), vec![b"window update".to_vec()]);
    }

    #[test]
    fn close_sends_what_is_gathered_first() {
        let (mut g, f) = gathered(Recorder::default());
        assert!(matches!(write(&mut g, b"go away"), Poll::Ready(Ok(7))));
        assert!(Pin::new(&mut g).poll_close(&mut cx()).is_ready());
        assert_eq!(writes(&f), vec![b"go away".to_vec()]);
    }
}
