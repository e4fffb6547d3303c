//! `GET /api/v1/events`: the node's event feed as server-sent events, each with an `id:`.
//!
//! One task numbers the node's events as they happen and keeps the last [`REPLAY`] of them. A client that
//! reconnects with `Last-Event-ID: n` first gets what came after `n` from that buffer, then the live
//! events; if some of what it missed is no longer buffered, or if it reads too slowly to keep up, it is
//! sent a `lost` event saying how many it missed (re-read `GET /api/v1/downloads` then), never silence.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as Sse, KeepAlive};
use shoal_node::events::FeedEvent;
use shoal_node::{Event, Node};
use tokio::sync::broadcast;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiState;

/// Events kept for clients that reconnect.
pub(crate) const REPLAY: usize = 1024;

/// An event with its number on this daemon's feed.
type Numbered = (u64, Arc<Event>);

/// Numbered events: the replay buffer and the live channel.
#[derive(Clone)]
pub(super) struct Feed {
    buffer: Arc<Mutex<VecDeque<Numbered>>>,
    live: broadcast::Sender<Numbered>,
}

impl Feed {
    /// Numbers `node`'s events from 1 for as long as the node runs.
    pub(super) fn start(node: &Node) -> Self {
        let feed = Self { buffer: Arc::default(), live: broadcast::channel(REPLAY).0 };
        let mut sub = node.events().subscribe();
        let f = feed.clone();
        tokio::spawn(async move {
            let mut seq = 0u64;
            while let Some(ev) = sub.recv().await {
                seq += 1;
                {
                    let mut b = shoal_store::lock(&f.buffer);
                    if b.len() == REPLAY {
                        b.pop_front();
                    }
                    b.push_back((seq, ev.clone()));
                }
                let _ = f.live.send((seq, ev));
            }
        });
        feed
    }

    /// What a client that last saw `after` is owed from the buffer: a `lost` first if part of it is gone.
    fn replay(&self, after: u64) -> Vec<Numbered> {
        let b = shoal_store::lock(&self.buffer);
        let mut out = Vec::new();
        if let Some((oldest, _)) = b.front()
            && *oldest > after + 1
        {
            out.push((oldest - 1, Arc::new(Event::Feed(FeedEvent::Lost { missed: oldest - after - 1 }))));
        }
        out.extend(b.iter().filter(|(n, _)| *n > after).cloned());
        out
    }
}

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(events))
}

fn sse(seq: u64, ev: &Event) -> Result<Sse, Infallible> {
    let data = serde_json::to_string(ev).unwrap_or_default();
    Ok(Sse::default().id(seq.to_string()).event(ev.kind()).data(data))
}

/// The event feed (`text/event-stream`): one event per change, `event:` its type, `data:` the JSON of an
/// [`Event`], `id:` its number. Send `Last-Event-ID` to resume after a disconnection.
#[utoipa::path(get, path = "/api/v1/events",
    params(("Last-Event-ID" = Option<u64>, Header, description = "resume after this event")),
    responses((status = 200, content_type = "text/event-stream", body = Event)))]
async fn events(
    State(s): State<ApiState>,
    headers: HeaderMap,
) -> axum::response::Sse<impl futures::Stream<Item = Result<Sse, Infallible>>> {
    let feed = &s.inner.feed;
    // Subscribe before reading the buffer, so nothing falls between the two.
    let live = feed.live.subscribe();
    let after = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let replay = after.map(|n| feed.replay(n)).unwrap_or_default();
    let last = replay.last().map(|(n, _)| *n).or(after).unwrap_or(0);
    let stream =
        futures::stream::unfold((VecDeque::from(replay), live, last), |(mut replay, mut live, last)| async move {
            if let Some((n, ev)) = replay.pop_front() {
                return Some((sse(n, &ev), (replay, live, n)));
            }
            loop {
                match live.recv().await {
                    Ok((n, _)) if n <= last => continue,
                    Ok((n, ev)) => return Some((sse(n, &ev), (replay, live, n))),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        let lost = Event::Feed(FeedEvent::Lost { missed });
                        return Some((sse(last, &lost), (replay, live, last)));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
    axum::response::Sse::new(stream).keep_alive(KeepAlive::default())
}
