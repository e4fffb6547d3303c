//! The provider side of `/shoal/transfer/1`.
//!
//! Requests on one stream are answered strictly in order, which is what lets the downloader pipeline them.
//! Encoding (reading data and outboard, interleaving proofs) runs on the blocking pool. Anything malformed
//! closes the stream: we never try to resynchronise with a peer that broke framing.

use std::sync::Arc;

use futures::{AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream};
use shoal_proto::transfer::messages::{MAX_FRAME, MAX_GET_CHUNKS, MAX_HAVE_SPANS, MAX_PAYLOAD};
use shoal_proto::transfer::{Request, Response};
use shoal_store::{ContentId, Store};

use super::framing::{FrameError, read_frame, write_frame};
use super::limit::RateLimiter;
use crate::node::Counters;

/// What the serving tasks share.
pub(crate) struct ServeCtx {
    pub(crate) store: Arc<Store>,
    pub(crate) limiter: Option<RateLimiter>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) corrupt_uploads: bool,
}

/// Accepts transfer streams until the control is dropped.
pub(crate) async fn accept_loop(mut incoming: shoal_net::IncomingStreams, ctx: Arc<ServeCtx>) {
    while let Some((peer, stream)) = incoming.next().await {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            match serve_stream(peer, stream, &ctx).await {
                Ok(()) => tracing::trace!(%peer, "transfer stream closed"),
                Err(e) => tracing::debug!(%peer, error = %e, "transfer stream ended with an error"),
            }
        });
    }
}

async fn serve_stream(peer: PeerId, mut stream: Stream, ctx: &ServeCtx) -> Result<(), FrameError> {
    let mut payload = Vec::new();
    while let Some(req) = read_frame::<Request, _>(&mut stream, MAX_FRAME).await? {
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
                let resp = match answer {
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
                };
                write_frame(&mut stream, &resp, MAX_FRAME).await?;
                stream.flush().await?;
            }
            Request::Get { id, span } => {
                if span.end <= span.start || span.end - span.start > MAX_GET_CHUNKS {
                    let reason = format!("range of {} chunks is outside 1..={MAX_GET_CHUNKS}", span.end.saturating_sub(span.start));
                    write_frame(&mut stream, &Response::Refused { reason }, MAX_FRAME).await?;
                    stream.flush().await?;
                    continue;
                }
                let id = ContentId(id);
                let store = ctx.store.clone();
                let mut buf = std::mem::take(&mut payload);
                let encoded = tokio::task::spawn_blocking(move || {
                    buf.clear();
                    let Some(served) = store.open_served(&id)? else { return Ok((buf, false)) };
                    if !served.can_serve(&span) {
                        return Ok((buf, false));
                    }
                    served.encode(span, &mut buf)?;
                    Ok::<_, shoal_store::StoreError>((buf, true))
                })
                .await;
                match encoded {
                    Ok(Ok((mut buf, true))) if buf.len() as u64 <= MAX_PAYLOAD => {
                        let mid = buf.len() / 2;
                        if ctx.corrupt_uploads
                            && let Some(b) = buf.get_mut(mid)
                        {
                            *b ^= 0x01;
                        }
                        if let Some(l) = &ctx.limiter {
                            l.acquire(buf.len()).await;
                        }
                        write_frame(&mut stream, &Response::Data { len: buf.len() as u64 }, MAX_FRAME).await?;
                        stream.write_all(&buf).await?;
                        stream.flush().await?;
                        ctx.counters.uploaded(peer, buf.len() as u64);
                        payload = buf;
                    }
                    Ok(Ok((buf, _))) => {
                        write_frame(&mut stream, &Response::NotFound, MAX_FRAME).await?;
                        stream.flush().await?;
                        payload = buf;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "cannot serve a range");
                        let reason = "storage error at the provider".to_string();
                        write_frame(&mut stream, &Response::Refused { reason }, MAX_FRAME).await?;
                        stream.flush().await?;
                    }
                    Err(e) => return Err(FrameError::Io(std::io::Error::other(e))),
                }
            }
        }
    }
    Ok(())
}
