//! An emulated link under the in-process memory transport: a one-way delay on everything a connection
//! receives, and a count of the bytes received.
//!
//! The simulator runs a thousand real nodes in one process on libp2p's memory transport, where a byte
//! written arrives at once. Protocols whose figures depend on the round trip (gossipsub's mesh and its
//! IHAVE/IWANT repair, the messaging service's collection of letters) need a delay to be measured honestly,
//! and their cost needs the bytes each peer receives. Both live here, under the security and muxer layers,
//! so they see what a real link would carry (Yamux frames, handshakes, every protocol's messages).
//!
//! Each direction of a connection is delayed where it is read: a chunk read from the channel is stamped
//! with the time it came and released `delay` later, in order. What is held is bounded
//! ([`MAX_HELD`]): past it the channel is not read, so the writer feels back-pressure as on a full link.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};

/// Bytes held back per direction of a connection before the channel is no longer read.
const MAX_HELD: usize = 4 * 1024 * 1024;
/// Bytes read from the channel at a time.
const CHUNK: usize = 16 * 1024;

/// A stream whose reads arrive `delay` after the bytes did, counting what it receives.
pub(crate) struct Delayed<S> {
    inner: S,
    delay: Duration,
    received: Arc<AtomicU64>,
    held: VecDeque<(Instant, Vec<u8>)>,
    held_bytes: usize,
    /// How much of the front chunk was already handed out.
    offset: usize,
    timer: Option<Pin<Box<Sleep>>>,
    scratch: Vec<u8>,
    eof: bool,
}

impl<S> Delayed<S> {
    pub(crate) fn new(inner: S, delay: Duration, received: Arc<AtomicU64>) -> Self {
        Self {
            inner,
            delay,
            received,
            held: VecDeque::new(),
            held_bytes: 0,
            offset: 0,
            timer: None,
            scratch: Vec::new(),
            eof: false,
        }
    }
}

impl<S: AsyncRead + Unpin> Delayed<S> {
    /// Takes in what the channel has, stamped with the time it came.
    fn take_in(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        while !self.eof && self.held_bytes < MAX_HELD {
            self.scratch.resize(CHUNK, 0);
            match Pin::new(&mut self.inner).poll_read(cx, &mut self.scratch) {
                Poll::Ready(Ok(0)) => self.eof = true,
                Poll::Ready(Ok(n)) => {
                    self.received.fetch_add(n as u64, Ordering::Relaxed);
                    self.held.push_back((Instant::now(), self.scratch[..n].to_vec()));
                    self.held_bytes += n;
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => break,
            }
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Delayed<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.take_in(cx)?;
        loop {
            let Some((came, chunk)) = this.held.front() else {
                return if this.eof { Poll::Ready(Ok(0)) } else { Poll::Pending };
            };
            let due = *came + this.delay;
            if Instant::now() >= due {
                this.timer = None;
                let len = chunk.len();
                let n = buf.len().min(len - this.offset);
                buf[..n].copy_from_slice(&chunk[this.offset..this.offset + n]);
                this.offset += n;
                if this.offset == len {
                    this.held.pop_front();
                    this.held_bytes -= len;
                    this.offset = 0;
                }
                return Poll::Ready(Ok(n));
            }
            let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
            if timer.deadline() != due {
                timer.as_mut().reset(due);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Delayed<S> {
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
    use futures::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_arrive_in_order_after_the_delay_and_are_counted() {
        let (a, b) = tokio::io::duplex(1 << 20);
        use tokio_util::compat::TokioAsyncReadCompatExt;
        let received = Arc::new(AtomicU64::new(0));
        let mut reader = Delayed::new(b.compat(), Duration::from_millis(80), received.clone());
        let mut writer = a.compat();
        let sent: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let t0 = std::time::Instant::now();
        writer.write_all(&sent).await.unwrap();
        writer.close().await.unwrap();
        drop(writer);
        let mut got = Vec::new();
        reader.read_to_end(&mut got).await.unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(80), "arrived after {:?}", t0.elapsed());
        assert_eq!(got, sent);
        assert_eq!(received.load(Ordering::Relaxed), sent.len() as u64);
    }
}
