//! Messaging: topics (group chat over gossipsub), direct letters sealed to one peer, and delivery to peers
//! that are offline (store and forward).
//!
//! The cores are sans-IO, in `shoal_proto::messaging` (post signing and ordering, refill, sealing,
//! delivery bookkeeping); this folder drives them:
//! - [`service`]: [`Messaging`], the service on the node's seam, and what the rest of the node calls;
//! - [`topics`]: following topics, judging what gossipsub brings (signature, limits, rate per author),
//!   ordering and keeping posts, refilling a topic from peers after an absence;
//! - [`letters`]: sending a letter, placing copies with holders when the recipient does not answer,
//!   holding letters for others, collecting ours from every peer we meet;
//! - [`placing`]: copies of letters placed with holders, grouped by recipient, holders in parallel;
//! - [`holders`]: which peers hold a letter, the topology's way;
//! - [`streams`]: the `/shoal/messages/1` stream protocol, both ends;
//! - [`ids`]: peer ids as the authors' keys and back.
//!
//! Everything is saved in the catalog (`shoal_store::messages`): history, followed topics, held letters.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub(crate) mod holders;
pub(crate) mod ids;
pub(crate) mod letters;
pub(crate) mod placing;
pub mod service;
pub(crate) mod streams;
pub(crate) mod topics;

pub use ids::mailbox_id;
pub use service::Messaging;

/// The stream protocol (see `shoal_proto::messaging::exchange`).
pub(crate) const PROTOCOL: libp2p::StreamProtocol =
    libp2p::StreamProtocol::new(shoal_proto::messaging::exchange::PROTOCOL);

/// How far back a refill reaches (the history window peers reconcile).
pub const REFILL_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why a messaging call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessagingError {
    /// The topic is not followed here.
    #[error("not following topic {0:?}: join it first (`shoal topics join NAME`)")]
    NotFollowing(String),
    /// A topic name or key that cannot be used.
    #[error("topic: {0}")]
    Topic(String),
    /// Not a peer id, nor a contact's name.
    #[error("{0:?} is neither a peer id nor a contact's name (`shoal contact add NAME PEER`)")]
    UnknownPeer(String),
    /// A peer id without an Ed25519 key (letters are sealed to that key).
    #[error("peer {0} has no Ed25519 identity key: letters cannot be sealed to it")]
    NoKey(String),
    /// The letter or post could not be made.
    #[error("{0}")]
    Compose(String),
    /// Too many letters wait for delivery.
    #[error(transparent)]
    Outbox(#[from] shoal_proto::messaging::delivery::OutboxError),
}

/// A post or letter as people see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageView {
    /// Its id, hex.
    pub id: String,
    /// `post` or `letter`.
    pub kind: String,
    /// A post's topic name, or the other peer of a letter (its petname if it has one, else its peer id).
    pub conversation: String,
    /// The author's peer id.
    pub author: String,
    /// The author's petname, if it is a contact.
    pub author_name: Option<String>,
    /// The author's time, Unix ms.
    pub time_ms: u64,
    /// A post's Lamport clock (the shared order is clock, then id); a letter's time.
    pub clock: u64,
    /// Some posts before this one never arrived.
    pub gap: bool,
    /// The text.
    pub text: String,
    /// A letter's delivery state: `sent`, `held` (by N peers), `delivered`, `expired`, or `received`.
    pub status: Option<String>,
    /// Written by this peer.
    pub mine: bool,
}

/// A topic this peer follows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TopicView {
    /// Its name.
    pub name: String,
    /// Its id, hex (what gossipsub and refills use).
    pub id: String,
    /// A private topic (joined with its key).
    pub private: bool,
    /// A private topic's key (64 hex digits): what members join with (`shoal topics join NAME --key
    /// KEY`). Whoever has it reads the topic: give it only to members.
    pub key: Option<String>,
    /// Posts placed in its log.
    pub posts: usize,
    /// Posts waiting for their parents.
    pub waiting: usize,
    /// Posts shown with a gap before them.
    pub gaps: usize,
    /// Connected peers that follow it.
    pub peers: usize,
}

/// Messaging counters since start, for `/metrics` and status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessagingCounters {
    /// Posts written here.
    pub posts_sent: u64,
    /// Posts from others placed in a log.
    pub posts_received: u64,
    /// Gossip messages rejected (malformed, forged, wrong topic or clock) or over their author's rate.
    pub posts_rejected: u64,
    /// Posts fetched from peers by refill or by asking for missing parents.
    pub posts_refilled: u64,
    /// Letters written here.
    pub letters_sent: u64,
    /// Letters received (duplicates not counted).
    pub letters_received: u64,
    /// Letters written here whose receipt came.
    pub letters_delivered: u64,
    /// Copies of our letters holders took.
    pub letters_placed: u64,
    /// Letters this peer holds for others now.
    pub letters_held: u64,
    /// Letters this peer refused to hold (quotas).
    pub holds_refused: u64,
}

/// What messaging tells the node's event feed. As JSON: `{"type": "message", ...MessageView}` for a post
/// or letter that arrived or was written here, `{"type": "letter_status", id, to, status}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schema(as = MessagingEvent)]
pub enum Event {
    /// A new post or letter (incoming or written here).
    Message(MessageView),
    /// A letter written here changed state.
    LetterStatus {
        /// The letter's id, hex.
        id: String,
        /// Its recipient's peer id.
        to: String,
        /// `sent`, `held`, `delivered` or `expired`.
        status: String,
    },
}

/// The wall clock as posts and letters carry it (for tests that write posts by hand).
#[doc(hidden)]
pub fn now_ms_for_tests() -> u64 {
    now_ms()
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
