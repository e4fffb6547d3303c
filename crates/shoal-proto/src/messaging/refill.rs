//! Refilling a topic after an absence: two peers find which posts of a window each lacks, in a few round
//! trips and bytes proportional to the difference, not to the history.
//!
//! Set reconciliation by ranges over (post time, id), the negentropy protocol (the `negentropy` crate:
//! fingerprints of ranges, split where they differ, ids listed where few remain; what strfry and Nostr
//! relays use). This module wraps it in Shoal's framing: a [`RefillMsg`] names the topic and the round,
//! is one [`crate::wire`] frame of at most [`MAX_REFILL_FRAME`] bytes, and a session ends after
//! [`MAX_ROUNDS`] rounds whatever the peer sends, so a peer cannot keep us reconciling for ever.
//!
//! The initiator (the peer that came back) learns two lists per round: ids it lacks (`need`: ask for those
//! posts) and ids the other lacks (`have`: offer those). The responder only answers. Both sides give the
//! items of the same window: the posts they hold with `time_ms` in it ([`TopicLog::items_since`]).
//!
//! [`TopicLog::items_since`]: super::TopicLog::items_since

use negentropy::{Id, Negentropy, NegentropyStorageVector};
use serde::{Deserialize, Serialize};

use super::post::{MsgId, TopicId};
use crate::wire::{self, WireError};

/// Largest refill frame: negentropy's own frame limit plus our fields.
pub const MAX_REFILL_FRAME: usize = NEGENTROPY_LIMIT as usize + 256;
/// Rounds one session may take (negentropy needs about log16 of the set's size).
pub const MAX_ROUNDS: u8 = 16;
/// What negentropy may put in one message.
const NEGENTROPY_LIMIT: u64 = 60 * 1024;

/// One message of a refill session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefillMsg {
    /// The topic reconciled.
    pub topic: TopicId,
    /// 0 for the initiator's first message, then one more per message.
    pub round: u8,
    /// Negentropy's bytes.
    pub body: Vec<u8>,
}

impl RefillMsg {
    /// One frame of at most [`MAX_REFILL_FRAME`] bytes.
    pub fn encode(&self) -> Result<Vec<u8>, RefillError> {
        Ok(wire::encode(self, MAX_REFILL_FRAME)?)
    }

    /// Reads one frame holding exactly one message; never panics.
    pub fn decode(frame: &[u8]) -> Result<Self, RefillError> {
        Ok(wire::decode_whole(frame, MAX_REFILL_FRAME)?)
    }
}

/// Why a refill session failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefillError {
    /// Not a refill message.
    #[error("not a valid refill message: {0}")]
    Wire(#[from] WireError),
    /// A message about another topic.
    #[error("the peer answered about another topic")]
    WrongTopic,
    /// Out of order or past [`MAX_ROUNDS`].
    #[error("refill message of round {got} where round {expected} was due (at most {MAX_ROUNDS} rounds)")]
    Round {
        /// The round received.
        got: u8,
        /// The round expected.
        expected: u8,
    },
    /// Negentropy refused the bytes.
    #[error("the peer's reconciliation message is malformed: {0}")]
    Protocol(String),
}

fn protocol(e: negentropy::Error) -> RefillError {
    RefillError::Protocol(format!("{e:?}"))
}

fn session(
    items: impl IntoIterator<Item = (u64, MsgId)>,
) -> Result<Negentropy<'static, NegentropyStorageVector>, RefillError> {
    let mut storage = NegentropyStorageVector::new();
    for (time, id) in items {
        storage.insert(time, Id::from_byte_array(id)).map_err(protocol)?;
    }
    storage.seal().map_err(protocol)?;
    Negentropy::owned(storage, NEGENTROPY_LIMIT).map_err(protocol)
}

/// What one round told the initiator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Learned {
    /// Ids the other peer lacks: offer it those posts.
    pub have: Vec<MsgId>,
    /// Ids we lack: ask for those posts.
    pub need: Vec<MsgId>,
    /// The next message to send, or `None`: the session is over.
    pub next: Option<RefillMsg>,
}

/// The peer that asks: it came back, or joined, and wants what it missed.
pub struct Initiator {
    topic: TopicId,
    neg: Negentropy<'static, NegentropyStorageVector>,
    round: u8,
}

impl Initiator {
    /// A session over `items` (the (time, id) of the posts we hold in the window); returns the first
    /// message to send.
    pub fn start(
        topic: TopicId,
        items: impl IntoIterator<Item = (u64, MsgId)>,
    ) -> Result<(Self, RefillMsg), RefillError> {
        let mut neg = session(items)?;
        let body = neg.initiate().map_err(protocol)?;
        Ok((Self { topic, neg, round: 1 }, RefillMsg { topic, round: 0, body }))
    }

    /// Takes the responder's answer.
    pub fn step(&mut self, msg: &RefillMsg) -> Result<Learned, RefillError> {
        if msg.topic != self.topic {
            return Err(RefillError::WrongTopic);
        }
        if msg.round != self.round || self.round >= MAX_ROUNDS {
            return Err(RefillError::Round { got: msg.round, expected: self.round });
        }
        let (mut have, mut need) = (Vec::new(), Vec::new());
        let next = self.neg.reconcile_with_ids(&msg.body, &mut have, &mut need).map_err(protocol)?;
        let next = match next {
            Some(body) if self.round + 1 < MAX_ROUNDS => {
                let m = RefillMsg { topic: self.topic, round: self.round + 1, body };
                self.round += 2;
                Some(m)
            }
            _ => None,
        };
        Ok(Learned { have: have.iter().map(|id| **id).collect(), need: need.iter().map(|id| **id).collect(), next })
    }
}

/// The peer that answers.
pub struct Responder {
    topic: TopicId,
    neg: Negentropy<'static, NegentropyStorageVector>,
    round: u8,
}

impl Responder {
    /// A session over the posts we hold in the window.
    pub fn new(topic: TopicId, items: impl IntoIterator<Item = (u64, MsgId)>) -> Result<Self, RefillError> {
        Ok(Self { topic, neg: session(items)?, round: 0 })
    }

    /// Answers the initiator's message.
    pub fn answer(&mut self, msg: &RefillMsg) -> Result<RefillMsg, RefillError> {
        if msg.topic != self.topic {
            return Err(RefillError::WrongTopic);
        }
        if msg.round != self.round || self.round >= MAX_ROUNDS {
            return Err(RefillError::Round { got: msg.round, expected: self.round });
        }
        let body = self.neg.reconcile(&msg.body).map_err(protocol)?;
        let m = RefillMsg { topic: self.topic, round: self.round + 1, body };
        self.round += 2;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn topic() -> TopicId {
        TopicId::public("refill").unwrap()
    }

    fn id(n: u32) -> MsgId {
        *blake3::hash(&n.to_le_bytes()).as_bytes()
    }

    /// Runs a whole session through the wire; returns what the initiator needs and what it has extra.
    fn run(mine: &[(u64, MsgId)], theirs: &[(u64, MsgId)]) -> (BTreeSet<MsgId>, BTreeSet<MsgId>, usize, usize) {
        let (mut a, first) = Initiator::start(topic(), mine.iter().copied()).unwrap();
        let mut b = Responder::new(topic(), theirs.iter().copied()).unwrap();
        let (mut need, mut have) = (BTreeSet::new(), BTreeSet::new());
        let mut msg = first;
        let (mut rounds, mut bytes) = (0, 0);
        loop {
            let frame = msg.encode().unwrap();
            bytes += frame.len();
            let answer = b.answer(&RefillMsg::decode(&frame).unwrap()).unwrap();
            let frame = answer.encode().unwrap();
            bytes += frame.len();
            let learned = a.step(&RefillMsg::decode(&frame).unwrap()).unwrap();
            rounds += 1;
            need.extend(learned.need);
            have.extend(learned.have);
            match learned.next {
                Some(m) => msg = m,
                None => break,
            }
        }
        (need, have, rounds, bytes)
    }

    #[test]
    fn a_peer_back_from_an_absence_learns_the_twenty_it_missed_in_few_bytes() {
        let shared: Vec<(u64, MsgId)> = (0..10_000).map(|n| (1_000 + n as u64, id(n))).collect();
        let missed: Vec<(u64, MsgId)> = (10_000..10_020).map(|n| (1_000 + n as u64, id(n))).collect();
        let mine_only = (5_000_000, id(99_999));
        let mut mine = shared.clone();
        mine.push(mine_only);
        let theirs: Vec<(u64, MsgId)> = shared.iter().chain(&missed).copied().collect();
        let (need, have, rounds, bytes) = run(&mine, &theirs);
        assert_eq!(need, missed.iter().map(|(_, id)| *id).collect());
        assert_eq!(have, BTreeSet::from([mine_only.1]));
        assert!(rounds <= 4, "{rounds} rounds");
        // Listing 10,000 ids would take 320 KB.
        assert!(bytes < 40_000, "{bytes} bytes for a difference of 21 in 10,000");
    }

    #[test]
    fn out_of_order_foreign_or_broken_messages_are_refused() {
        let (mut a, first) = Initiator::start(topic(), [(1, id(1))]).unwrap();
        let mut b = Responder::new(topic(), [(1, id(1)), (2, id(2))]).unwrap();
        let other = RefillMsg { topic: TopicId::public("other").unwrap(), ..first.clone() };
        assert_eq!(b.answer(&other), Err(RefillError::WrongTopic));
        let replayed = RefillMsg { round: 4, ..first.clone() };
        assert!(matches!(b.answer(&replayed), Err(RefillError::Round { .. })));
        // A body in a negentropy version nobody speaks (truncated bodies are read as ending early).
        let garbage = RefillMsg { body: vec![0x01], ..first.clone() };
        let r = b.answer(&garbage);
        assert!(matches!(r, Err(RefillError::Protocol(_))), "{r:?}");
        let answer = b.answer(&first).unwrap();
        assert!(matches!(a.step(&RefillMsg { round: 0, ..answer.clone() }), Err(RefillError::Round { .. })));
        assert_eq!(a.step(&answer).unwrap().need, vec![id(2)]);
    }

    proptest! {
        #[test]
        fn both_sides_learn_exactly_the_difference(
            common in proptest::collection::btree_set(0u32..5_000, 0..300),
            only_mine in proptest::collection::btree_set(5_000u32..10_000, 0..40),
            only_theirs in proptest::collection::btree_set(10_000u32..15_000, 0..40),
        ) {
            let item = |n: &u32| ((*n as u64) * 7 % 1_000, id(*n));
            let mine: Vec<_> = common.iter().chain(&only_mine).map(item).collect();
            let theirs: Vec<_> = common.iter().chain(&only_theirs).map(item).collect();
            let (need, have, _, _) = run(&mine, &theirs);
            prop_assert_eq!(need, only_theirs.iter().map(|n| id(*n)).collect::<BTreeSet<_>>());
            prop_assert_eq!(have, only_mine.iter().map(|n| id(*n)).collect::<BTreeSet<_>>());
        }

        #[test]
        fn garbage_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut b = Responder::new(topic(), (0..50).map(|n| (n as u64, id(n)))).unwrap();
            let _ = b.answer(&RefillMsg { topic: topic(), round: 0, body: body.clone() });
            let (mut a, _) = Initiator::start(topic(), (0..50).map(|n| (n as u64, id(n)))).unwrap();
            let _ = a.step(&RefillMsg { topic: topic(), round: 1, body });
        }
    }
}
