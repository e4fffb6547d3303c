//! The messaging stream protocol, `/shoal/messages/1`: what two peers say to each other directly, beside
//! the topic gossip.
//!
//! One stream per exchange; the peer that opens it speaks first:
//! - **refill** (a peer catching up on a topic): `Refill` rounds ([`super::refill`]) until the initiator
//!   knows the difference; then it sends the posts the other lacks (`Post`), asks for the ones it lacks
//!   (`Want`, answered with `Post`s), and ends with `Done`, answered with `Done`. A `Want` alone (posts a
//!   topic log is waiting for) is the same exchange without the rounds.
//! - **letter** (sender to recipient): `Letter`, answered with the recipient's `Receipt` or `Refused`.
//! - **hold** (sender to a holder): `Hold`s back to back, each answered with `Taken` or `Refused`, and
//!   `Done` after the last (a stream that just ends after one `Hold` is fine too).
//! - **collect** (a recipient back online, to a holder): `Collect`; the holder sends each `Letter` it
//!   keeps for the stream's peer (libp2p authenticated it) and `Done`; the recipient answers with a
//!   `Receipt` for each letter it has now, and `Done`. The holder deletes a letter on its receipt only.
//! - **receipt** (recipient to a sender it reaches later): `Receipt`, no answer.
//!
//! Each frame is one [`crate::wire`] frame of at most [`MAX_EXCHANGE_FRAME`] bytes; [`Frame::decode`]
//! also bounds the lists inside, and never panics.

use serde::{Deserialize, Serialize};

use super::direct::{MAX_SEALED_FRAME, Receipt, Sealed};
use super::post::{MAX_POST_FRAME, MsgId, Post, TopicId};
use super::refill::{MAX_REFILL_FRAME, RefillMsg};
use crate::wire::{self, WireError};

/// The protocol id.
pub const PROTOCOL: &str = "/shoal/messages/1";
/// Ids in one `Want`, at most.
pub const MAX_WANT: usize = 256;
/// Bytes of a refusal's reason, at most.
pub const MAX_REASON: usize = 256;

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// Largest frame: the largest of a post, a sealed letter and a refill message, and the frame's own fields.
pub const MAX_EXCHANGE_FRAME: usize = max(max(MAX_POST_FRAME, MAX_SEALED_FRAME), MAX_REFILL_FRAME) + 64;

/// One message of the exchange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// A round of set reconciliation.
    Refill(RefillMsg),
    /// Posts of `topic` wanted, by id.
    Want {
        /// The topic.
        topic: TopicId,
        /// At most [`MAX_WANT`].
        ids: Vec<MsgId>,
    },
    /// A post (asked for, or offered).
    Post(Post),
    /// A letter for the peer at the other end (its recipient), or handed over by a holder.
    Letter(Sealed),
    /// Keep this letter for its recipient.
    Hold(Sealed),
    /// The holder took the letter.
    Taken {
        /// [`Sealed::id`].
        id: MsgId,
    },
    /// Not taken, and why (in words, at most [`MAX_REASON`] bytes).
    Refused {
        /// [`Sealed::id`].
        id: MsgId,
        /// Why.
        why: String,
    },
    /// Hand over the letters kept for me.
    Collect,
    /// The recipient has the letter.
    Receipt(Receipt),
    /// The end of a list, or of the exchange.
    Done,
}

/// Why a frame was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExchangeError {
    /// Not a frame of this protocol.
    #[error("not a valid messaging frame: {0}")]
    Wire(#[from] WireError),
    /// A list or a reason past its bound.
    #[error("messaging frame over its bounds: {0}")]
    TooLong(&'static str),
}

impl Frame {
    /// One frame of at most [`MAX_EXCHANGE_FRAME`] bytes.
    pub fn encode(&self) -> Result<Vec<u8>, ExchangeError> {
        self.bounded()?;
        Ok(wire::encode(self, MAX_EXCHANGE_FRAME)?)
    }

    /// Reads one whole frame and checks its bounds; never panics.
    pub fn decode(frame: &[u8]) -> Result<Self, ExchangeError> {
        let f: Self = wire::decode_whole(frame, MAX_EXCHANGE_FRAME)?;
        f.bounded()?;
        Ok(f)
    }

    /// Checks the bounds a frame read by other means (a stream reader) must keep too.
    pub fn bounded(&self) -> Result<(), ExchangeError> {
        match self {
            Self::Want { ids, .. } if ids.len() > MAX_WANT => Err(ExchangeError::TooLong("more than 256 ids wanted")),
            Self::Refused { why, .. } if why.len() > MAX_REASON => {
                Err(ExchangeError::TooLong("a refusal's reason over 256 bytes"))
            }
            _ => Ok(()),
        }
    }

    /// A refusal, its reason cut to [`MAX_REASON`] bytes at a character boundary.
    pub fn refused(id: MsgId, why: &str) -> Self {
        let mut end = why.len().min(MAX_REASON);
        while !why.is_char_boundary(end) {
            end -= 1;
        }
        Self::Refused { id, why: why[..end].to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messaging::test_keys::{key, pk};

    #[test]
    fn every_kind_of_frame_round_trips() {
        let (sealed, _) = Sealed::seal(&key(1), &pk(2), 1_000, [7; 16], "hi".into()).unwrap();
        let frames = [
            Frame::Want { topic: TopicId([1; 32]), ids: vec![[2; 32]; MAX_WANT] },
            Frame::Letter(sealed.clone()),
            Frame::Hold(sealed),
            Frame::Taken { id: [3; 32] },
            Frame::refused([4; 32], "full"),
            Frame::Collect,
            Frame::Receipt(Receipt::new(&key(2), [5; 32])),
            Frame::Done,
        ];
        for f in frames {
            assert_eq!(Frame::decode(&f.encode().unwrap()).unwrap(), f);
        }
    }

    #[test]
    fn lists_and_reasons_past_their_bounds_are_refused_both_ways() {
        let want = Frame::Want { topic: TopicId([1; 32]), ids: vec![[2; 32]; MAX_WANT + 1] };
        assert!(want.encode().is_err());
        let bytes = wire::encode(&want, MAX_EXCHANGE_FRAME).unwrap();
        assert_eq!(Frame::decode(&bytes), Err(ExchangeError::TooLong("more than 256 ids wanted")));
        let long = "é".repeat(200);
        let Frame::Refused { why, .. } = Frame::refused([0; 32], &long) else { unreachable!() };
        assert!(why.len() <= MAX_REASON && long.starts_with(&why));
        assert!(Frame::decode(&[1, 0, 0]).is_err());
    }

    #[test]
    fn the_largest_post_and_letter_fit_a_frame() {
        let (sealed, _) =
            Sealed::seal(&key(1), &pk(2), 1_000, [7; 16], "x".repeat(crate::messaging::post::MAX_TEXT)).unwrap();
        assert!(Frame::Letter(sealed).encode().is_ok());
    }
}
