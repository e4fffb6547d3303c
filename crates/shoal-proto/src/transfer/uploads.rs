//! Which waiting answer an uploader sends next when its upload is the bottleneck.
//!
//! A peer whose upload is capped has more answers ready than it can send. Sending them in the order they
//! were asked wastes the scarcest resource of a swarm, the seed's upload: many downloaders ask for the same
//! first pieces, and the seed sends some pieces several times before it has sent others once. The
//! [`UploadQueue`] sends the piece it has sent the fewest times first (ties: the one waiting longest), so a
//! seed puts every piece into the swarm once before it sends any twice; downloaders then trade the pieces
//! among themselves. This is the idea of BitTorrent's super-seeding, without changing what is on the wire.
//!
//! Answers on one stream must still go out in the order they were asked (the downloader pipelines its
//! requests), so the node queues only the answer at the head of each stream; the simulator does the same.

use std::collections::HashMap;
use std::hash::Hash;

/// Pieces whose send counts are remembered; past this the counts start again from zero.
const MAX_REMEMBERED: usize = 65_536;

/// Answers waiting for the uplink. `K` names a piece (blob and offset in the node, an index in the
/// simulator); `T` is whatever the caller needs to resume the answer.
#[derive(Debug)]
pub struct UploadQueue<K, T> {
    waiting: Vec<(u64, K, T)>,
    sent: HashMap<K, u32>,
    next_seq: u64,
}

impl<K: Clone + Eq + Hash, T> Default for UploadQueue<K, T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash, T> UploadQueue<K, T> {
    /// An empty queue.
    pub fn new() -> Self {
        Self { waiting: Vec::new(), sent: HashMap::new(), next_seq: 0 }
    }

    /// An answer for piece `key` is ready.
    pub fn push(&mut self, key: K, item: T) {
        self.waiting.push((self.next_seq, key, item));
        self.next_seq += 1;
    }

    /// The answer to send now: the piece sent the fewest times so far, the longest waiting among equals.
    /// It is counted as sent.
    pub fn pop(&mut self) -> Option<(K, T)> {
        let sent = &self.sent;
        let best = self
            .waiting
            .iter()
            .enumerate()
            .min_by_key(|(_, (seq, key, _))| (sent.get(key).copied().unwrap_or(0), *seq))
            .map(|(i, _)| i)?;
        let (_, key, item) = self.waiting.swap_remove(best);
        if self.sent.len() >= MAX_REMEMBERED && !self.sent.contains_key(&key) {
            self.sent.clear();
        }
        *self.sent.entry(key.clone()).or_insert(0) += 1;
        Some((key, item))
    }

    /// Drops the waiting answers `drop` picks (a cancelled request, a closed stream).
    pub fn remove(&mut self, mut drop: impl FnMut(&K, &T) -> bool) {
        self.waiting.retain(|(_, k, t)| !drop(k, t));
    }

    /// How many answers wait.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// How many times `key` was sent (since the counts last started again).
    pub fn times_sent(&self, key: &K) -> u32 {
        self.sent.get(key).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn least_sent_first_then_oldest() {
        let mut q = UploadQueue::new();
        q.push(1u32, "a");
        q.push(1, "b");
        q.push(2, "c");
        assert_eq!(q.pop(), Some((1, "a")), "equal counts: the oldest");
        assert_eq!(q.pop(), Some((2, "c")), "piece 1 was sent once, piece 2 never");
        assert_eq!(q.pop(), Some((1, "b")));
        assert_eq!(q.pop(), None);
        assert_eq!((q.times_sent(&1), q.times_sent(&2), q.times_sent(&3)), (2, 1, 0));
        q.push(3, "d");
        q.push(4, "e");
        q.remove(|k, _| *k == 3);
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop(), Some((4, "e")));
        assert!(q.is_empty());
    }

    proptest! {
        /// Whatever arrives, every answer leaves exactly once, and a piece is never sent for the (n+1)th
        /// time while a piece sent fewer than n times waits.
        #[test]
        fn every_answer_leaves_once_and_least_sent_goes_first(
            ops in prop::collection::vec(prop::option::of(0u8..12), 1..300)
        ) {
            let mut q = UploadQueue::new();
            let (mut pushed, mut popped) = (Vec::new(), Vec::new());
            for (i, op) in ops.iter().enumerate() {
                match op {
                    Some(piece) => {
                        q.push(*piece, i);
                        pushed.push(i);
                    }
                    None => {
                        let least = q.waiting.iter().map(|(_, k, _)| q.times_sent(k)).min();
                        if let Some((k, item)) = q.pop() {
                            prop_assert_eq!(Some(q.times_sent(&k) - 1), least);
                            popped.push(item);
                        }
                    }
                }
            }
            while let Some((_, item)) = q.pop() {
                popped.push(item);
            }
            popped.sort_unstable();
            prop_assert_eq!(popped, pushed);
        }
    }
}
