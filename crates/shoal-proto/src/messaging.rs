//! Messaging: what a topic's messages are and how every peer puts them in the same order.
//!
//! - [`post`]: a [`Post`], the signed, hash-linked unit of a topic (group chat): its canonical encoding,
//!   its id (BLAKE3 of that encoding), its limits, signing and checking. Nothing here trusts the carrier:
//!   a post is accepted for what it proves (its author's signature), not for who forwarded it.
//! - [`delivery`]: getting a letter to a recipient that may be offline: the sender's [`delivery::Outbox`]
//!   (sent, held by N, delivered), a holder's bounded [`delivery::Holding`], the recipient's
//!   [`delivery::Inbox`] (duplicates dropped).
//! - [`direct`]: a [`direct::Letter`] to one peer, sealed with HPKE to its identity key and signed by the
//!   sender; the [`direct::Receipt`] only the recipient can make, on which holders delete their copy.
//! - [`group`]: a private topic's [`group::GroupKey`] (from its invite) and its posts' text sealed with
//!   it (XChaCha20-Poly1305), so only members read a private topic.
//! - [`exchange`]: the stream protocol two peers speak directly (refill, letters, holding, collecting).
//! - [`log`]: [`TopicLog`], the sans-IO core of one topic: it takes checked posts and `now`, holds those
//!   whose parents have not arrived, says which ids to ask peers for, and gives the order every peer shows
//!   (Lamport clock, then id), bounded in posts, in waiting posts and per author.
//! - [`refill`]: set reconciliation of a topic's window between two peers (negentropy), so a peer that
//!   was away learns which posts it missed in a few round trips.
//!
//! The node carries posts over gossipsub and refills gaps from peers; the simulator drives the same log.

pub mod delivery;
pub mod direct;
pub mod exchange;
pub mod group;
pub mod log;
pub mod post;
pub mod refill;

pub use log::{Insert, LogConfig, TopicLog};
pub use post::{AuthorKey, MsgId, Post, PostError, TopicId};

/// Fixed keys for the tests of every module here: key `n` is the signing key of 32 bytes `n`.
#[cfg(test)]
mod test_keys {
    use ed25519_dalek::SigningKey;

    use super::AuthorKey;

    pub(super) fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    pub(super) fn pk(n: u8) -> AuthorKey {
        key(n).verifying_key().to_bytes()
    }
}
