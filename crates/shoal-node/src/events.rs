//! The node's event feed: what happened, typed, for whoever listens (the API's `/api/v1/events`, the CLI,
//! tests, other services).
//!
//! [`Event`] is one variant per source, each a tagged enum of its own (`{"type": "peer_connected", ...}`),
//! so a service adds its events by adding its enum and one variant here. A subscriber that reads too slowly
//! is never silently behind: it receives [`FeedEvent::Lost`] saying how many events it missed.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// Events buffered for slow subscribers before the oldest are dropped (and [`FeedEvent::Lost`] is said).
const CAPACITY: usize = 1024;

/// Something that happened on this node.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Event {
    /// A peer connected or left.
    Peer(PeerEvent),
    /// Downloads and shares.
    Transfer(crate::transfer::Event),
    /// Searches started through the API.
    Search(crate::search::FeedEvent),
    /// Posts and letters.
    Messaging(crate::messaging::Event),
    /// About the feed itself.
    Feed(FeedEvent),
}

/// Peers connecting and leaving.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PeerEvent {
    /// A connection to `peer` is up (the first one).
    PeerConnected {
        /// Peer id.
        peer: String,
    },
    /// The last connection to `peer` closed.
    PeerDisconnected {
        /// Peer id.
        peer: String,
    },
}

/// About the feed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FeedEvent {
    /// This subscriber read too slowly and `missed` events were dropped before it saw them: re-read the
    /// state it follows (e.g. `GET /api/v1/downloads`).
    Lost {
        /// How many.
        missed: u64,
    },
}

impl From<PeerEvent> for Event {
    fn from(e: PeerEvent) -> Self {
        Self::Peer(e)
    }
}

impl From<crate::transfer::Event> for Event {
    fn from(e: crate::transfer::Event) -> Self {
        Self::Transfer(e)
    }
}

impl From<crate::search::FeedEvent> for Event {
    fn from(e: crate::search::FeedEvent) -> Self {
        Self::Search(e)
    }
}

impl From<crate::messaging::Event> for Event {
    fn from(e: crate::messaging::Event) -> Self {
        Self::Messaging(e)
    }
}

impl Event {
    /// The `type` field, as the SSE `event:` name.
    pub fn kind(&self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v["type"].as_str().map(str::to_string)).unwrap_or_default()
    }
}

/// Where events are sent. Cheap to clone.
///
/// Events travel as `Arc<Event>`: the channel keeps [`CAPACITY`] slots for every node whether or not
/// anyone listens, and a slot of a pointer costs 8 bytes where one of an `Event` would cost hundreds
/// (a download report is the largest variant); with a thousand nodes in one process that is the
/// difference between 8 MiB and a few hundred.
#[derive(Clone, Debug)]
pub struct Events {
    tx: broadcast::Sender<Arc<Event>>,
}

impl Default for Events {
    fn default() -> Self {
        Self { tx: broadcast::channel(CAPACITY).0 }
    }
}

impl Events {
    /// Sends `ev` to every subscriber (none listening is fine).
    pub fn emit(&self, ev: impl Into<Event>) {
        let _ = self.tx.send(Arc::new(ev.into()));
    }

    /// Events from now on.
    pub fn subscribe(&self) -> Subscription {
        Subscription { rx: self.tx.subscribe() }
    }
}

/// One subscriber's view of the feed.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Arc<Event>>,
}

impl Subscription {
    /// The next event; [`FeedEvent::Lost`] after falling behind; `None` when the node has stopped.
    pub async fn recv(&mut self) -> Option<Arc<Event>> {
        match self.rx.recv().await {
            Ok(ev) => Some(ev),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(Arc::new(Event::Feed(FeedEvent::Lost { missed: n }))),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slow_subscriber_is_told_how_many_it_missed() {
        let events = Events::default();
        let mut sub = events.subscribe();
        for i in 0..CAPACITY + 10 {
            events.emit(PeerEvent::PeerConnected { peer: i.to_string() });
        }
        assert_eq!(sub.recv().await.as_deref(), Some(&Event::Feed(FeedEvent::Lost { missed: 10 })));
        assert_eq!(sub.recv().await.as_deref(), Some(&Event::Peer(PeerEvent::PeerConnected { peer: "10".into() })));
    }

    #[test]
    fn events_are_flat_json_with_a_type() {
        let ev = Event::Peer(PeerEvent::PeerDisconnected { peer: "p".into() });
        let json = serde_json::to_string(&ev).unwrap();
        assert_eq!(json, r#"{"type":"peer_disconnected","peer":"p"}"#);
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), ev);
        assert_eq!(ev.kind(), "peer_disconnected");
    }
}
