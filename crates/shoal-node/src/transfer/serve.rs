//! The provider side of `/shoal/transfer/1`.
//!
//! Requests on one stream are answered strictly in order, which is what lets the downloader pipeline them;
//! a `Cancel` turns a waiting `Get`'s answer into `Cancelled` (see `Unanswered`).
//! Encoding (reading data and outboard, interleaving proofs) runs on the blocking pool. Anything malformed
//! closes the stream: we never try to resynchronise with a peer that broke framing.
//!
//! Memory is bounded against hostile peers: at most [`MAX_STREAMS_PER_PEER`] streams per peer (more are
//! closed at once), and at most [`MAX_PREPARED`] answers prepared and not yet written, over all streams
//! (a stream waits for a permit before it prepares the next answer), of which one peer may hold at most
//! [`PREPARED_PER_PEER`]. A peer that asks and never reads costs only itself: every write to it has
//! [`WRITE_TIMEOUT`], after which its stream is closed and its permits are given back.

use std::sync::Arc;

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{PeerId, Stream};
use shoal_proto::transfer::messages::WireId;
use shoal_proto::transfer::messages::{MAX_FRAME, MAX_GET_CHUNKS, MAX_HAVE_SPANS, MAX_PAYLOAD};
use shoal_proto::transfer::{ChunkSpan, Request, Response};
use shoal_store::{ContentId, Served, Store};

use super::limit::Limits;
use super::service::Counters;
use super::uplink::{PieceKey, Uplink};
use crate::framing::{FrameError, read_frame, write_frame};
use crate::service::Tasks;

/// Transfer streams one peer may have open with us at once.
pub(crate) const MAX_STREAMS_PER_PEER: usize = 16;
/// Answers (up to a piece, 1 MiB, each) prepared and not yet written, over all streams.
pub(crate) const MAX_PREPARED: usize = 64;
/// Of those, what one peer's streams may hold together: a peer that stops reading can block at most this
/// many, and others keep the rest.
pub(crate) const PREPARED_PER_PEER: usize = MAX_PREPARED / 4;
/// The longest one write to a peer may take (a frame, or a piece of up to 1 MiB: 35 KB/s at the least).
pub(crate) const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What the serving tasks share.
pub(crate) struct ServeCtx {
    pub(crate) store: Arc<Store>,
    pub(crate) limits: Limits,
    pub(crate) counters: Arc<Counters>,
    pub(crate) corrupt_uploads: bool,
    pub(crate) prepared: Arc<tokio::sync::Semaphore>,
    /// Turn-taking through the global upload cap (least-sent piece first).
    pub(crate) uplink: Arc<Uplink>,
    /// Per peer: its open streams and its share of the prepared answers.
    pub(crate) streams: std::sync::Mutex<std::collections::HashMap<PeerId, (usize, Arc<tokio::sync::Semaphore>)>>,
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
        let mut s = shoal_store::lock(&self.streams);
        let (n, share) = s.entry(peer).or_insert_with(|| (0, Arc::new(tokio::sync::Semaphore::new(PREPARED_PER_PEER))));
        if *n >= MAX_STREAMS_PER_PEER {
            return None;
        }
        *n += 1;
        Some(StreamSlot { ctx: self.clone(), peer, share: share.clone() })
    }
}

/// One open stream of a peer; gives its slot back when dropped (the peer is forgotten with its last one).
struct StreamSlot {
    ctx: Arc<ServeCtx>,
    peer: PeerId,
    /// The peer's share of the prepared answers.
    share: Arc<tokio::sync::Semaphore>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut s = shoal_store::lock(&self.ctx.streams);
        if let Some((n, _)) = s.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.remove(&self.peer);
            }
        }
    }
}

/// A transfer stream a peer opened: served on its own task, unless the peer already has the most it may.
pub(crate) fn accept(ctx: &Arc<ServeCtx>, tasks: &Tasks, peer: PeerId, stream: Stream) {
    let Some(slot) = ctx.open_stream(peer) else {
        tracing::warn!(%peer, "peer opened more than {MAX_STREAMS_PER_PEER} transfer streams; closing the new one");
        drop(stream);
        return;
    };
    let ctx = ctx.clone();
    tasks.spawn(async move {
        let share = slot.share.clone();
        let _slot = slot;
        match serve_stream(peer, stream, &ctx, share).await {
            Ok(()) => tracing::trace!(%peer, "transfer stream closed"),
            Err(e) => tracing::debug!(%peer, error = %e, "transfer stream ended with an error"),
        }
    });
}

/// An answer ready to be written.
enum Prepared {
    Frame(Response),
    /// Encoded data of a piece.
    Data(PieceKey, Vec<u8>),
}

/// An answer on its way to the writer: still being prepared, or known at once.
enum Answer {
    Pending(tokio::task::JoinHandle<Prepared>),
    Ready(Prepared),
}

/// A request read from a stream and not answered yet.
struct Waiting {
    seq: u64,
    /// The range of a `Get` (what a `Cancel` names); `None` for other requests.
    get: Option<(WireId, ChunkSpan)>,
    cancelled: bool,
}

/// Requests a stream has read but not answered yet, at most a few dozen. Requests get their answers strictly
/// in order; a `Cancel` marks the oldest unanswered `Get` of its range, and that one is answered `Cancelled`
/// if its data has not started to go out.
#[derive(Default)]
struct Unanswered {
    list: std::sync::Mutex<std::collections::VecDeque<Waiting>>,
}

impl Unanswered {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<Waiting>> {
        shoal_store::lock(&self.list)
    }
    fn push(&self, seq: u64, req: &Request) {
        let get = match req {
            Request::Get { id, span } => Some((*id, *span)),
            Request::Have { .. } | Request::Cancel { .. } => None,
        };
        self.lock().push_back(Waiting { seq, get, cancelled: false });
    }
    /// Marks the oldest unanswered, not yet cancelled `Get` of exactly this range.
    fn cancel(&self, id: WireId, span: ChunkSpan) {
        if let Some(w) = self.lock().iter_mut().find(|w| !w.cancelled && w.get == Some((id, span))) {
            w.cancelled = true;
        }
    }
    fn is_cancelled(&self, seq: u64) -> bool {
        self.lock().iter().any(|w| w.seq == seq && w.cancelled)
    }
    /// The answer to `seq` went out (or was dropped): forget it.
    fn answered(&self, seq: u64) {
        self.lock().retain(|w| w.seq != seq);
    }
}

/// Requests one stream may have read and not yet answered. The downloader keeps far fewer in flight (at
/// most 4 by default); a peer that sends more is simply not read until answers catch up.
const MAX_UNANSWERED: usize = 32;

/// Answers the requests of one stream in order, in three stages: the reader takes requests (and cancels)
/// off the stream as they come, so a `Cancel` is seen while its `Get` still waits; the preparer encodes up to
/// two answers ahead of the writer; the writer paces data through the upload caps and writes.
async fn serve_stream(
    peer: PeerId,
    stream: Stream,
    ctx: &Arc<ServeCtx>,
    share: Arc<tokio::sync::Semaphore>,
) -> Result<(), FrameError> {
    let (mut rd, mut wr) = stream.split();
    /// The peer's permit and the global one, released together once the answer is written.
    type Permit = (tokio::sync::OwnedSemaphorePermit, tokio::sync::OwnedSemaphorePermit);
    let unanswered = Arc::new(Unanswered::default());
    let (req_tx, mut req_rx) = tokio::sync::mpsc::channel::<(u64, Request)>(MAX_UNANSWERED);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, Answer, Permit)>(2);
    let reader = {
        let unanswered = unanswered.clone();
        async move {
            let mut seq = 0u64;
            while let Some(req) = read_frame::<Request, _>(&mut rd, MAX_FRAME).await? {
                if let Request::Cancel { id, span } = req {
                    unanswered.cancel(id, span);
                    continue;
                }
                seq += 1;
                unanswered.push(seq, &req);
                if req_tx.send((seq, req)).await.is_err() {
                    break;
                }
            }
            Ok::<(), FrameError>(())
        }
    };
    let preparer = {
        let (ctx, unanswered) = (ctx.clone(), unanswered.clone());
        let open = Arc::new(OpenBlob::default());
        async move {
            while let Some((seq, req)) = req_rx.recv().await {
                // The permits travel with the answer and are released once it is written. The peer's own
                // first: a peer whose answers are stuck waits on its share, not on everyone's.
                let Ok(mine) = share.clone().acquire_owned().await else { break };
                let Ok(global) = ctx.prepared.clone().acquire_owned().await else { break };
                let permit = (mine, global);
                let answer = if unanswered.is_cancelled(seq) {
                    ctx.counters.upload_cancelled();
                    Answer::Ready(Prepared::Frame(Response::Cancelled))
                } else if let Some(ready) = open.encode_small(&req) {
                    Answer::Ready(ready)
                } else {
                    Answer::Pending(tokio::spawn(prepare(req, ctx.clone(), open.clone())))
                };
                if tx.send((seq, answer, permit)).await.is_err() {
                    break;
                }
            }
        }
    };
    let writer = async move {
        while let Some((seq, answer, _permit)) = rx.recv().await {
            let prepared = match answer {
                Answer::Ready(p) => p,
                Answer::Pending(h) => h.await.map_err(|e| FrameError::Io(std::io::Error::other(e)))?,
            };
            match prepared {
                Prepared::Frame(resp) => in_time(write_frame(&mut wr, &resp, MAX_FRAME)).await?,
                Prepared::Data(key, buf) => {
                    send_data(&mut wr, peer, ctx, key, buf, || unanswered.is_cancelled(seq)).await?
                }
            }
            unanswered.answered(seq);
            if rx.is_empty() {
                in_time(async { Ok(wr.flush().await?) }).await?;
            }
        }
        in_time(async { Ok(wr.flush().await?) }).await?;
        Ok::<(), FrameError>(())
    };
    let front = async move {
        let (r, ()) = tokio::join!(reader, preparer);
        r
    };
    tokio::pin!(front, writer);
    tokio::select! {
        r = &mut front => {
            // The peer closed its side or broke framing: finish what was asked, then stop.
            let w = writer.await;
            r.and(w)
        }
        w = &mut writer => w,
    }
}

/// Writes one piece's data, after waiting for the upload caps, or `Cancelled` if the downloader withdrew
/// the request while it waited (checked after each wait: the waits are where time passes).
async fn send_data<W: futures::AsyncWrite + Unpin>(
    wr: &mut W,
    peer: PeerId,
    ctx: &ServeCtx,
    key: PieceKey,
    mut buf: Vec<u8>,
    cancelled: impl Fn() -> bool,
) -> Result<(), FrameError> {
    if !cancelled() {
        ctx.limits.acquire_peer(peer, buf.len()).await;
    }
    if !cancelled() && ctx.limits.has_global() {
        // The cap is the bottleneck: wait for our turn (least-sent piece first) and pace through the cap
        // while holding it; write after giving it back.
        let turn = ctx.uplink.turn(key).await;
        if !cancelled() {
            ctx.limits.acquire_global(buf.len()).await;
        }
        drop(turn);
    }
    if cancelled() {
        ctx.counters.upload_cancelled();
        return in_time(write_frame(wr, &Response::Cancelled, MAX_FRAME)).await;
    }
    let mid = buf.len() / 2;
    if ctx.corrupt_uploads
        && let Some(b) = buf.get_mut(mid)
    {
        *b ^= 0x01;
    }
    in_time(async {
        write_frame(wr, &Response::Data { len: buf.len() as u64 }, MAX_FRAME).await?;
        Ok(wr.write_all(&buf).await?)
    })
    .await?;
    ctx.counters.uploaded(peer, buf.len() as u64);
    Ok(())
}

/// A write to the peer, given at most [`WRITE_TIMEOUT`]: a peer that does not read gets its stream closed
/// (an error here ends it), not our permits for ever.
async fn in_time(write: impl Future<Output = Result<(), FrameError>>) -> Result<(), FrameError> {
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(r) => r,
        Err(_) => Err(FrameError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("the peer read nothing for {} s", WRITE_TIMEOUT.as_secs()),
        ))),
    }
}

/// Gets spanning at most this many chunks (256 KiB) are encoded on the stream's own task when their blob is
/// open (see [`OpenBlob`]): a read, usually from the page cache, and a copy, cheaper than a hand-off to a
/// blocking thread. Larger ones still go to a blocking thread: a read that misses the page cache waits for
/// the disk, and the longer the read the longer it would hold up the runtime's other tasks.
const SMALL_GET_CHUNKS: u64 = 256;

/// The complete blob a stream served last, kept open. Looking a blob up for every request (a catalog
/// query, an `open` and an `fstat`) and handing each to a blocking thread cost more than reading a 64 KiB
/// piece; with the blob open, a small piece is encoded at once after one `fstat` shows the file unchanged.
#[derive(Default)]
struct OpenBlob {
    slot: std::sync::Mutex<Option<(ContentId, Arc<Served>)>>,
}

impl OpenBlob {
    fn keep(&self, id: ContentId, served: Arc<Served>) {
        *shoal_store::lock(&self.slot) = Some((id, served));
    }

    /// The open blob if it is `id` and its file has not changed since (else it is closed).
    fn get(&self, id: &ContentId) -> Option<Arc<Served>> {
        let mut slot = shoal_store::lock(&self.slot);
        match slot.as_ref() {
            Some((open, served)) if open == id && served.unchanged() => Some(served.clone()),
            Some(_) => {
                *slot = None;
                None
            }
            None => None,
        }
    }

    /// The answer to a small `Get` of the open blob, if everything about it is ordinary; `None` sends the
    /// request the careful way (which also gives every refusal and error its answer).
    fn encode_small(&self, req: &Request) -> Option<Prepared> {
        let Request::Get { id, span } = req else { return None };
        if span.end <= span.start || span.end - span.start > SMALL_GET_CHUNKS {
            return None;
        }
        let served = self.get(&ContentId(*id))?;
        if !served.can_serve(span) {
            return None;
        }
        let buf = encode(&served, *span).ok()?;
        (buf.len() as u64 <= MAX_PAYLOAD).then_some(Prepared::Data((*id, span.start), buf))
    }
}

/// The bao encoding of `span` of a blob being served, in a buffer sized for it.
fn encode(served: &Served, span: ChunkSpan) -> Result<Vec<u8>, shoal_store::StoreError> {
    let mut buf = Vec::with_capacity((span.end - span.start) as usize * 1024 + 4096);
    served.encode(span, &mut buf)?;
    Ok(buf)
}

async fn prepare(req: Request, ctx: Arc<ServeCtx>, open: Arc<OpenBlob>) -> Prepared {
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
        // The reader handles cancels; one never gets here.
        Request::Cancel { .. } => Prepared::Frame(Response::Cancelled),
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
                if let Some(served) = open.get(&id)
                    && served.can_serve(&span)
                {
                    return encode(&served, span).map(Some);
                }
                let Some(served) = store.open_served(&id)? else {
                    return Ok(None);
                };
                if !served.can_serve(&span) {
                    return Ok(None);
                }
                let buf = encode(&served, span)?;
                if served.is_complete() {
                    open.keep(id, Arc::new(served));
                }
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
