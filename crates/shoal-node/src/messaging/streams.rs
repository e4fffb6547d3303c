//! Both ends of `/shoal/messages/1` (see `shoal_proto::messaging::exchange`): frames with a deadline each,
//! and the dispatch of an incoming stream by its first frame.

use std::time::Duration;

use futures::AsyncWriteExt;
use libp2p::{PeerId, Stream};
use shoal_proto::messaging::exchange::{Frame, MAX_EXCHANGE_FRAME};

use super::service::Shared;
use crate::framing::{read_frame, write_frame};

/// How long one frame may take to come or to go: a peer that stalls an exchange loses it.
pub(crate) const FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// How long opening a stream (and connecting first, if needed) may take.
pub(crate) const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an exchange ended early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExchangeFailed {
    #[error("the peer did not answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Frame(crate::framing::FrameError),
    #[error(transparent)]
    Bounds(#[from] shoal_proto::messaging::exchange::ExchangeError),
    #[error("cannot reach the peer: {0}")]
    Open(String),
    /// The peer is connected but does not answer the messaging protocol: not a messaging peer, or one
    /// that has just started (a node connects to its bootstrap peers before its services register).
    #[error("the peer does not answer the messaging protocol (yet)")]
    NotServing,
    /// The peer reset or closed our stream before the exchange was over: it is going away, or it was busy.
    /// Until 2026-12-07 libp2p-stream handed a protocol's incoming streams to the service over a channel
    /// of one slot and dropped those that came while it was full (9,348 streams and 6,948 failed
    /// collections in one run of the churn scenario of 200 peers); `shoal_net::streams` queues them now,
    /// but a busy or departing peer still drops streams, so a dropped stream is worth another try soon.
    #[error("the peer dropped the stream ({0})")]
    Dropped(String),
    #[error("the peer broke the exchange: {0}")]
    Unexpected(&'static str),
}

impl From<crate::framing::FrameError> for ExchangeFailed {
    fn from(e: crate::framing::FrameError) -> Self {
        use std::io::ErrorKind::{BrokenPipe, ConnectionReset, UnexpectedEof, WriteZero};
        match e {
            crate::framing::FrameError::Io(io)
                if matches!(io.kind(), WriteZero | ConnectionReset | BrokenPipe | UnexpectedEof) =>
            {
                Self::Dropped(io.to_string())
            }
            other => Self::Frame(other),
        }
    }
}

/// Runs `exchange` with a peer, again a few times (0.25, 0.5, 1, 2 s later) while it answers
/// [`ExchangeFailed::NotServing`] (a peer that has just started connects before its messaging service is
/// there; seen in a test: about one start in four) or drops the stream ([`ExchangeFailed::Dropped`]).
/// Every exchange so wrapped can be repeated: the peer drops letters, holds and receipts it already has.
pub(crate) async fn with_retries<T, F, Fut>(mut exchange: F) -> Result<T, ExchangeFailed>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ExchangeFailed>>,
{
    let mut wait = Duration::from_millis(250);
    for _ in 0..4 {
        match exchange().await {
            Err(ExchangeFailed::NotServing | ExchangeFailed::Dropped(_)) => {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            done => return done,
        }
    }
    exchange().await
}

/// A stream with its peer.
pub(crate) struct Link {
    pub(crate) peer: PeerId,
    stream: Stream,
}

impl Link {
    /// Connects to `peer` if needed and opens a messaging stream, within [`OPEN_TIMEOUT`].
    pub(crate) async fn open(shared: &Shared, peer: PeerId) -> Result<Self, ExchangeFailed> {
        let open = async {
            shared.net.connect(peer, Vec::new()).await.map_err(|e| ExchangeFailed::Open(e.to_string()))?;
            shared.net.streams().open_stream(peer, super::PROTOCOL).await.map_err(|e| match e {
                shoal_net::OpenStreamError::UnsupportedProtocol(_) => ExchangeFailed::NotServing,
                other => ExchangeFailed::Open(other.to_string()),
            })
        };
        let stream =
            tokio::time::timeout(OPEN_TIMEOUT, open).await.map_err(|_| ExchangeFailed::Timeout(OPEN_TIMEOUT))??;
        Ok(Self { peer, stream })
    }

    pub(crate) fn accepted(peer: PeerId, stream: Stream) -> Self {
        Self { peer, stream }
    }

    /// Writes and flushes one frame.
    pub(crate) async fn send(&mut self, f: &Frame) -> Result<(), ExchangeFailed> {
        f.bounded()?;
        let write = async {
            write_frame(&mut self.stream, f, MAX_EXCHANGE_FRAME).await?;
            self.stream.flush().await.map_err(crate::framing::FrameError::from)
        };
        tokio::time::timeout(FRAME_TIMEOUT, write).await.map_err(|_| ExchangeFailed::Timeout(FRAME_TIMEOUT))??;
        Ok(())
    }

    /// Reads one frame; `None` when the peer closed the stream.
    pub(crate) async fn recv(&mut self) -> Result<Option<Frame>, ExchangeFailed> {
        let read = read_frame::<Frame, _>(&mut self.stream, MAX_EXCHANGE_FRAME);
        let f =
            tokio::time::timeout(FRAME_TIMEOUT, read).await.map_err(|_| ExchangeFailed::Timeout(FRAME_TIMEOUT))??;
        if let Some(f) = &f {
            f.bounded()?;
        }
        Ok(f)
    }

    /// Reads one frame that must be there.
    pub(crate) async fn expect(&mut self) -> Result<Frame, ExchangeFailed> {
        self.recv().await?.ok_or_else(|| ExchangeFailed::Dropped("closed before it answered".into()))
    }

    /// Closes our side.
    pub(crate) async fn close(mut self) {
        let _ = tokio::time::timeout(FRAME_TIMEOUT, self.stream.close()).await;
    }
}

/// Serves one incoming stream: its first frame says which exchange it is.
pub(crate) async fn serve(shared: std::sync::Arc<Shared>, mut link: Link) {
    let first = match link.recv().await {
        Ok(Some(f)) => f,
        Ok(None) => return,
        Err(e) => {
            tracing::debug!(peer = %link.peer, error = %e, "messaging stream: bad first frame");
            return;
        }
    };
    let peer = link.peer;
    let r = match first {
        Frame::Refill(_) | Frame::Want { .. } | Frame::Post(_) | Frame::Done => {
            super::topics::answer(&shared, link, first).await
        }
        Frame::Letter(sealed) => super::letters::take_letter(&shared, link, sealed).await,
        Frame::Hold(sealed) => super::letters::take_hold(&shared, link, sealed).await,
        Frame::Collect => super::letters::hand_over(&shared, link).await,
        Frame::Receipt(r) => {
            super::letters::on_receipt(&shared, peer, r).await;
            Ok(())
        }
        Frame::Taken { .. } | Frame::Refused { .. } => Err(ExchangeFailed::Unexpected("an answer with no question")),
    };
    if let Err(e) = r {
        tracing::debug!(%peer, error = %e, "messaging exchange ended early");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_or_closed_stream_is_a_drop_other_errors_are_not() {
        for kind in
            [std::io::ErrorKind::WriteZero, std::io::ErrorKind::ConnectionReset, std::io::ErrorKind::UnexpectedEof]
        {
            let e = crate::framing::FrameError::Io(std::io::Error::new(kind, "connection is closed"));
            assert!(matches!(ExchangeFailed::from(e), ExchangeFailed::Dropped(_)), "{kind:?}");
        }
        let e = crate::framing::FrameError::Io(std::io::Error::other("disk on fire"));
        assert!(matches!(ExchangeFailed::from(e), ExchangeFailed::Frame(_)));
    }

    #[tokio::test]
    async fn a_dropped_stream_is_tried_again_and_a_broken_exchange_is_not() {
        let tries = std::sync::atomic::AtomicUsize::new(0);
        let r = with_retries(|| async {
            if tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 2 {
                Err(ExchangeFailed::Dropped("busy".into()))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(r.ok(), Some(7));
        assert_eq!(tries.load(std::sync::atomic::Ordering::Relaxed), 3);

        let tries = std::sync::atomic::AtomicUsize::new(0);
        let r: Result<(), _> = with_retries(|| async {
            tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err(ExchangeFailed::Unexpected("garbage"))
        })
        .await;
        assert!(matches!(r, Err(ExchangeFailed::Unexpected(_))));
        assert_eq!(tries.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
