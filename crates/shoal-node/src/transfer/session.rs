//! The downloader's side of one stream to one provider.
//!
//! One long-lived stream per provider and download; requests are pipelined on it (a stream per request
//! would cost a protocol negotiation, a round trip, each).
//! The writer half sends requests and records, *before* sending, what answer to expect; the reader half
//! reads answers in that order. A `Data` payload is verified on the reader's task; a large piece is then
//! written on the blocking pool (the write waits for the disk, see [`Partial::commit`]) while the reader
//! goes on with the next answer, at most [`WRITES_AHEAD`] of them at a time; a small one is written at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::FuturesOrdered;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{Multiaddr, PeerId};
use shoal_proto::transfer::messages::{MAX_FRAME, MAX_PAYLOAD};
use shoal_proto::transfer::{ChunkSpan, Failure, Request, Response};
use shoal_store::{ContentId, Partial, PieceError, StoreError, VerifiedPiece};
use tokio::sync::mpsc;

use crate::framing::{read_frame, write_frame};

/// What the download driver asks of a session.
pub(crate) enum SessionCmd {
    /// Ask again which ranges the provider has (it may be downloading too).
    Have,
    /// Fetch one piece and write it into `partial` if it verifies.
    Get { piece: u32, span: ChunkSpan, partial: Arc<Partial> },
    /// Fetch the last chunk of the blob as if it had `size` bytes, with its proof, to check that size (see
    /// `shoal_store::proof`); nothing is written.
    Probe { size: u64, span: ChunkSpan },
    /// Withdraw an earlier `Get` of this range: the piece came from another peer. The provider answers it
    /// `Cancelled` unless its data is already on the way (then it is verified and counted as a duplicate).
    Cancel { span: ChunkSpan },
}

/// What a session reports to the download driver.
#[derive(Debug)]
pub(crate) enum SessionEvent {
    Have {
        peer: PeerId,
        size: u64,
        spans: Vec<ChunkSpan>,
        collection: bool,
    },
    NotFound {
        peer: PeerId,
    },
    /// The answer to a `Probe`: `Ok` if it proved the claimed size.
    SizeProof {
        peer: PeerId,
        size: u64,
        proof: Result<(), String>,
    },
    PieceOk {
        peer: PeerId,
        piece: u32,
        bytes: u64,
        received: u64,
        /// When its last byte arrived: the provider's window is timed by this, not by when the piece was
        /// written (a write that waits for the disk is not a queue on the path, and must not shrink it).
        arrived: Instant,
    },
    PieceFailed {
        peer: PeerId,
        piece: u32,
        failure: Failure,
        why: String,
        received: u64,
    },
    /// Writing failed locally (disk full ...): the download cannot go on.
    Fatal {
        error: StoreError,
    },
    Gone {
        peer: PeerId,
        why: String,
    },
}

/// The driver's handle on a running session. Dropping it ends the session.
pub(crate) struct SessionHandle {
    pub(crate) tx: mpsc::UnboundedSender<SessionCmd>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

enum Expect {
    Have,
    Probe { size: u64 },
    Get { piece: u32, span: ChunkSpan, partial: Arc<Partial> },
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Pieces one session may have verified and not yet written (each waits for the disk on a blocking thread).
/// Two keep the disk busy while the next piece arrives and bound the memory to two more pieces per source.
const WRITES_AHEAD: usize = 2;

/// Starts a session with `peer` for blob `id`; it first asks `Have`.
pub(crate) fn spawn(
    limits: Arc<super::limit::Limits>,
    net: shoal_net::Network,
    peer: PeerId,
    hints: Vec<Multiaddr>,
    id: ContentId,
    events: mpsc::Sender<SessionEvent>,
) -> SessionHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let _ = tx.send(SessionCmd::Have);
    let ev = events.clone();
    let task = tokio::spawn(async move {
        let why = match run(limits, net, peer, hints, id, rx, events).await {
            Ok(()) => "session closed".to_string(),
            Err(e) => e,
        };
        let _ = ev.send(SessionEvent::Gone { peer, why }).await;
    });
    SessionHandle { tx, task }
}

async fn run(
    limits: Arc<super::limit::Limits>,
    net: shoal_net::Network,
    peer: PeerId,
    hints: Vec<Multiaddr>,
    id: ContentId,
    mut cmds: mpsc::UnboundedReceiver<SessionCmd>,
    events: mpsc::Sender<SessionEvent>,
) -> Result<(), String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, net.connect(peer, hints)).await {
        Err(_) => return Err("could not connect within 10 s".into()),
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(())) => {}
    }
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, net.streams().open_stream(peer, super::PROTOCOL))
        .await
        .map_err(|_| "could not open a transfer stream within 10 s".to_string())?
        .map_err(|e| format!("cannot open a transfer stream: {e}"))?;
    let (mut rd, mut wr) = stream.split();
    let (exp_tx, mut exp_rx) = mpsc::unbounded_channel::<Expect>();
    let wire_id = *id.as_bytes();

    let writer = async move {
        while let Some(cmd) = cmds.recv().await {
            let (req, exp) = match cmd {
                SessionCmd::Have => (Request::Have { id: wire_id }, Some(Expect::Have)),
                SessionCmd::Get { piece, span, partial } => {
                    (Request::Get { id: wire_id, span }, Some(Expect::Get { piece, span, partial }))
                }
                // No answer of its own: the `Get` it withdraws is answered (`Cancelled` or `Data`).
                SessionCmd::Cancel { span } => (Request::Cancel { id: wire_id, span }, None),
                SessionCmd::Probe { size, span } => (Request::Get { id: wire_id, span }, Some(Expect::Probe { size })),
            };
            if let Some(exp) = exp
                && exp_tx.send(exp).is_err()
            {
                break;
            }
            write_frame(&mut wr, &req, MAX_FRAME).await.map_err(|e| e.to_string())?;
            wr.flush().await.map_err(|e| e.to_string())?;
        }
        let _ = wr.close().await;
        Ok::<(), String>(())
    };

    let events_r = events.clone();
    let reader = async move {
        // One buffer per provider, reused: zeroing and faulting in a fresh megabyte per piece costs more
        // than the copy.
        let mut buf: Vec<u8> = Vec::new();
        let mut writes = FuturesOrdered::new();
        loop {
            // Report writes as they finish, also while no answer is expected.
            let exp = tokio::select! {
                biased;
                Some(done) = writes.next(), if !writes.is_empty() => {
                    if events_r.send(written(done)).await.is_err() {
                        break;
                    }
                    continue;
                }
                exp = exp_rx.recv() => match exp {
                    Some(exp) => exp,
                    None => break,
                },
            };
            let resp: Response = read_frame(&mut rd, MAX_FRAME)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "provider closed the stream".to_string())?;
            let ev = match (exp, resp) {
                (Expect::Have, Response::Have { size, spans, collection }) => {
                    SessionEvent::Have { peer, size, spans, collection }
                }
                (Expect::Have, Response::NotFound | Response::Refused { .. }) => SessionEvent::NotFound { peer },
                (Expect::Get { piece, span, partial }, Response::Data { len }) => {
                    if len > MAX_PAYLOAD {
                        return Err(format!("payload of {len} bytes is over the limit"));
                    }
                    // Pace reading under a download cap; TCP back-pressure then slows the sender.
                    limits.acquire(peer, len as usize).await;
                    if buf.len() < len as usize {
                        buf.resize(len as usize, 0);
                    }
                    rd.read_exact(&mut buf[..len as usize]).await.map_err(|e| e.to_string())?;
                    let arrived = Instant::now();
                    // Verified here, not on a blocking thread (see `verify`).
                    match verify(&partial, span, &buf[..len as usize], peer, piece, len) {
                        Err(ev) => ev,
                        Ok(v) if partial.commit_waits_for_disk(&v) => {
                            if writes.len() >= WRITES_AHEAD
                                && let Some(done) = writes.next().await
                                && events_r.send(written(done)).await.is_err()
                            {
                                break;
                            }
                            writes.push_back(tokio::task::spawn_blocking(move || {
                                commit(&partial, v, peer, piece, len, arrived)
                            }));
                            continue;
                        }
                        Ok(v) => commit(&partial, v, peer, piece, len, arrived),
                    }
                }
                (Expect::Probe { size }, Response::Data { len }) => {
                    if len > MAX_PAYLOAD {
                        return Err(format!("payload of {len} bytes is over the limit"));
                    }
                    if buf.len() < len as usize {
                        buf.resize(len as usize, 0);
                    }
                    rd.read_exact(&mut buf[..len as usize]).await.map_err(|e| e.to_string())?;
                    SessionEvent::SizeProof {
                        peer,
                        size,
                        proof: shoal_store::proof::check_size(&id, size, &buf[..len as usize]),
                    }
                }
                (Expect::Probe { size }, Response::NotFound | Response::Refused { .. } | Response::Cancelled) => {
                    SessionEvent::SizeProof { peer, size, proof: Err("it did not send the last chunk".into()) }
                }
                // We withdrew it; the scheduler has already forgotten the request.
                (Expect::Get { .. }, Response::Cancelled) => continue,
                (Expect::Get { piece, .. }, Response::NotFound) => SessionEvent::PieceFailed {
                    peer,
                    piece,
                    failure: Failure::Missing,
                    why: "provider no longer has it".into(),
                    received: 0,
                },
                (Expect::Get { piece, .. }, Response::Refused { reason }) => {
                    SessionEvent::PieceFailed { peer, piece, failure: Failure::Transient, why: reason, received: 0 }
                }
                (_, other) => return Err(format!("unexpected answer {other:?}")),
            };
            if events_r.send(ev).await.is_err() {
                break;
            }
        }
        while let Some(done) = writes.next().await {
            if events_r.send(written(done)).await.is_err() {
                break;
            }
        }
        Ok::<(), String>(())
    };

    tokio::select! {
        r = writer => r,
        r = reader => r,
    }
}

/// Verifies one piece (at most [`MAX_PAYLOAD`]: 1 MiB and its proofs); the event to report if it does not.
/// It runs on the task that read the piece: handing each piece to a blocking thread and back cost more than
/// hashing it (about 0.3 ms for 1 MiB). With 64 KiB pieces on loopback, one source's 64 MiB went from 383
/// to 480 MB/s when verification moved here. What is given up is reading the next piece while this one is
/// hashed; on the 2-core development machine the hand-offs cost more than that overlap gained.
fn verify(
    partial: &Partial,
    span: ChunkSpan,
    encoded: &[u8],
    peer: PeerId,
    piece: u32,
    len: u64,
) -> Result<VerifiedPiece, SessionEvent> {
    partial.verify(span, encoded).map_err(|e| match e {
        PieceError::Corrupt(why) => {
            SessionEvent::PieceFailed { peer, piece, failure: Failure::Corrupt, why, received: len }
        }
        PieceError::Store(error) => SessionEvent::Fatal { error },
        e => SessionEvent::Fatal { error: StoreError::Collection(format!("unexpected piece error: {e}")) },
    })
}

/// Writes a verified piece; what happened, as the event for the download loop.
fn commit(partial: &Partial, v: VerifiedPiece, peer: PeerId, piece: u32, len: u64, arrived: Instant) -> SessionEvent {
    match partial.commit(v) {
        Ok(bytes) => SessionEvent::PieceOk { peer, piece, bytes, received: len, arrived },
        Err(error) => SessionEvent::Fatal { error },
    }
}

/// The event of a write that ran on the blocking pool.
fn written(done: Result<SessionEvent, tokio::task::JoinError>) -> SessionEvent {
    done.unwrap_or_else(|e| SessionEvent::Fatal {
        error: StoreError::Collection(format!("the task writing a piece failed: {e}")),
    })
}
