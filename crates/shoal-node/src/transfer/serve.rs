//! The provider side of `/shoal/transfer/1`.
//!
//! Requests on one stream are answered strictly in order, which is what lets the downloader pipeline them.
//! Encoding (reading data and outboard, interleaving proofs) runs on the blocking pool. Anything malformed
//! closes the stream: we never try to resynchronise with a peer that broke framing.
//!
//! Memory is bounded against hostile peers: at most [`MAX_STREAMS_PER_PEER`] streams per peer (more are
//! closed at once), and at most [`MAX_PREPARED`] answers prepared and not yet written, over all streams
//! (a stream waits for a permit before it prepares the next answer).

use std::sync::Arc;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream};
use shoal_proto::transfer::messages::{MAX_FRAME, MAX_GET_CHUNKS, MAX_HAVE_SPANS, MAX_PAYLOAD};
use shoal_proto::transfer::{Request, Response};
use shoal_store::{ContentId, Store};

use super::limit::Limits;
use super::uplink::{PieceKey, Uplink};
use crate::framing::{FrameError, read_frame, write_frame};
use crate::node::Counters;

/// Transfer streams one peer may have open with us at once.
pub(crate) const MAX_STREAMS_PER_PEER: usize = 16;
/// Answers (up to a piece, 1 MiB, each) prepared and not yet written, over all streams.
pub(crate) const MAX_PREPARED: usize = 64;

/// What the serving tasks share.
pub(crate) struct ServeCtx {
    pub(crate) store: Arc<Store>,
    pub(crate) limits: Limits,
    pub(crate) counters: Arc<Counters>,
    pub(crate) corrupt_uploads: bool,
    pub(crate) prepared: Arc<tokio::sync::Semaphore>,
    /// Turn-taking through the global upload cap (least-sent piece first).
    pub(crate) uplink: Arc<Uplink>,
    pub(crate) streams: std::sync::Mutex<std::collections::HashMap<PeerId, usize>>,
}

impl ServeCtx {
    pub(crate) fn new(store: Arc<Store>, limits: Limits, counters: Arc<Counters>, corrupt_uploads: bool) -> Self {
        Self {
            store,
            limits,
            counters,
            corrupt_uploads,
            prepared: Arc::new(tokio::sync::Semaphore::new(MAX_PREPARED)),
            uplink: Arc::default(),
            streams: Default::default(),
        }
    }

    /// Counts a new stream of `peer`; `None` if it already has the most it may.
    fn open_stream(self: &Arc<Self>, peer: PeerId) -> Option<StreamSlot> {
        let mut s = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let n = s.entry(peer).or_default();
        if *n >= MAX_STREAMS_PER_PEER {
            return None;
        }
        *n += 1;
        Some(StreamSlot { ctx: self.clone(), peer })
    }
}

/// One open stream of a peer; gives its slot back when dropped.
struct StreamSlot {
    ctx: Arc<ServeCtx>,
    peer: PeerId,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut s = self.ctx.streams.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = s.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.remove(&self.peer);
            }
        }
    }
}

/// Accepts transfer streams until the control is dropped.
pub(crate) async fn accept_loop(mut incoming: shoal_net::IncomingStreams, ctx: Arc<ServeCtx>) {
    while let Some((peer, stream)) = incoming.next().await {
        let Some(slot) = ctx.open_stream(peer) else {
            tracing::warn!(%peer, "peer opened more than {MAX_STREAMS_PER_PEER} transfer streams; closing the new one");
            drop(stream);
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match serve_stream(peer, stream, &ctx).await {
                Ok(()) => tracing::trace!(%peer, "transfer stream closed"),
                Err(e) => tracing::debug!(%peer, error = %e, "transfer stream ended with an error"),
            }
        });
    }
}

/// An answer ready to be written.
enum Prepared {
    Frame(Response),
    /// Encoded data of a piece.
    Data(PieceKey, Vec<u8>),
}

/// Answers the requests of one stream in order. Reading and preparing the next answers (up to two ahead)
/// overlaps with writing the current one.
async fn serve_stream(peer: PeerId, stream: Stream, ctx: &Arc<ServeCtx>) -> Result<(), FrameError> {
    let (mut rd, mut wr) = stream.split();
    type Permit = tokio::sync::OwnedSemaphorePermit;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(tokio::task::JoinHandle<Prepared>, Permit)>(2);
    let reader = {
        let ctx = ctx.clone();
        async move {
            while let Some(req) = read_frame::<Request, _>(&mut rd, MAX_FRAME).await? {
                // The permit travels with the answer and is released once it is written.
                let Ok(permit) = ctx.prepared.clone().acquire_owned().await else { break };
                let prepared = tokio::spawn(prepare(req, ctx.clone()));
                if tx.send((prepared, permit)).await.is_err() {
                    break;
                }
            }
            Ok::<(), FrameError>(())
        }
    };
    let writer = async move {
        while let Some((h, _permit)) = rx.recv().await {
            let prepared = h.await.map_err(|e| FrameError::Io(std::io::Error::other(e)))?;
            match prepared {
                Prepared::Frame(resp) => write_frame(&mut wr, &resp, MAX_FRAME).await?,
                Prepared::Data(key, mut buf) => {
                    let mid = buf.len() / 2;
                    if ctx.corrupt_uploads
                        && let Some(b) = buf.get_mut(mid)
                    {
                        *b ^= 0x01;
                    }
                    ctx.limits.acquire_peer(peer, buf.len()).await;
                    if ctx.limits.has_global() {
                        // The cap is the bottleneck: wait for our turn (least-sent piece first) and pace
                        // through the cap while holding it; write after giving it back.
                        let _turn = ctx.uplink.turn(key).await;
                        ctx.limits.acquire_global(buf.len()).await;
                    }
                    write_frame(&mut wr, &Response::Data { len: buf.len() as u64 }, MAX_FRAME).await?;
                    wr.write_all(&buf).await?;
                    ctx.counters.uploaded(peer, buf.len() as u64);
                }
            }
            if rx.is_empty() {
                wr.flush().await?;
            }
        }
        wr.flush().await?;
        Ok::<(), FrameError>(())
    };
    tokio::pin!(reader, writer);
    tokio::select! {
        r = &mut reader => {
            // The peer closed its side or broke framing: finish what was asked, then stop.
            let w = writer.await;
            r.and(w)
        }
        w = &mut writer => w,
    }
}

async fn prepare(req: Request, ctx: Arc<ServeCtx>) -> Prepared {
    match req {
        Request::Have { id } => {
            let id = ContentId(id);
            let store = ctx.store.clone();
            let answer = tokio::task::spawn_blocking(move || {
                let served = store.open_served(&id)?;
                let collection = store.is_collection(&id)?;
                Ok::<_, shoal_store::StoreError>(served.map(|s| (s.size, s.spans(), collection)))
            })
            .await;
            Prepared::Frame(match answer {
                Ok(Ok(Some((size, mut spans, collection)))) => {
                    spans.truncate(MAX_HAVE_SPANS);
                    Response::Have { size, spans, collection }
                }
                Ok(Ok(None)) => Response::NotFound,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot look up a requested blob");
                    Response::Refused { reason: "storage error at the provider".into() }
                }
                Err(e) => Response::Refused { reason: format!("provider task failed: {e}") },
            })
        }
        Request::Get { id, span } => {
            if span.end <= span.start || span.end - span.start > MAX_GET_CHUNKS {
                let n = span.end.saturating_sub(span.start);
                return Prepared::Frame(Response::Refused {
                    reason: format!("range of {n} chunks is outside 1..={MAX_GET_CHUNKS}"),
                });
            }
            let id = ContentId(id);
            let store = ctx.store.clone();
            let encoded = tokio::task::spawn_blocking(move || {
                let Some(served) = store.open_served(&id)? else {
                    return Ok(None);
                };
                if !served.can_serve(&span) {
                    return Ok(None);
                }
                let mut buf = Vec::with_capacity((span.end - span.start) as usize * 1024 + 4096);
                served.encode(span, &mut buf)?;
                Ok::<_, shoal_store::StoreError>(Some(buf))
            })
            .await;
            match encoded {
                Ok(Ok(Some(buf))) if buf.len() as u64 <= MAX_PAYLOAD => Prepared::Data((id.0, span.start), buf),
                Ok(Ok(_)) => Prepared::Frame(Response::NotFound),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot serve a range");
                    Prepared::Frame(Response::Refused { reason: "storage error at the provider".into() })
                }
                Err(e) => Prepared::Frame(Response::Refused { reason: format!("provider task failed: {e}") }),
            }
        }
    }
}
