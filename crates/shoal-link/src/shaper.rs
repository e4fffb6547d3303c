//! One direction of an emulated link, without I/O: packets go in with [`Shaper::offer`] and come out with
//! [`Shaper::pop_due`] once they have been serialized at the link's rate and have crossed its delay.
//!
//! The model is a router's output port: a FIFO queue in front of a line that sends `rate` bytes per second,
//! then a wire that takes `delay`. A packet that finds more than `queue` bytes waiting for the line is
//! dropped (drop-tail, what most home routers do), so a sender that sends faster than the line sees losses,
//! as on a real link, instead of a queue that grows without end. Times are passed in; nothing here reads a
//! clock, so the tests run without a network.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What a link does to the packets that cross it, in one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// One-way delay (half the round trip when both directions have the same).
    pub delay: Duration,
    /// Bytes per second the line sends.
    pub rate: u64,
    /// Bytes that may wait for the line; a packet that finds more is dropped.
    pub queue: u64,
}

impl Shape {
    /// A link with `delay` each way and `rate` bytes per second, and a queue of one bandwidth-delay product
    /// (the round trip's worth of bytes, the classic router sizing), at least 64 KiB.
    pub fn new(delay: Duration, rate: u64) -> Self {
        let bdp = (rate as f64 * delay.as_secs_f64() * 2.0) as u64;
        Self { delay, rate: rate.max(1), queue: bdp.max(64 * 1024) }
    }

    /// Sets the queue, in bytes.
    pub fn with_queue(mut self, bytes: u64) -> Self {
        self.queue = bytes;
        self
    }
}

/// Counters of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Packets and bytes delivered (or on the way).
    pub packets: u64,
    /// Bytes accepted.
    pub bytes: u64,
    /// Packets dropped because the queue was full.
    pub dropped: u64,
}

/// One direction of a link (see the module docs).
#[derive(Debug)]
pub struct Shaper {
    shape: Shape,
    /// When the line is free again: the end of the last accepted packet's serialization.
    line_free: Option<Instant>,
    /// Accepted packets and when each arrives at the far end, in order (delivery times never decrease: the
    /// line is FIFO and the delay the same for all).
    wire: VecDeque<(Instant, Vec<u8>)>,
    counts: Counts,
}

impl Shaper {
    /// A direction with `shape`.
    pub fn new(shape: Shape) -> Self {
        Self { shape, line_free: None, wire: VecDeque::new(), counts: Counts::default() }
    }

    fn serialization(&self, bytes: u64) -> Duration {
        Duration::from_secs_f64(bytes as f64 / self.shape.rate as f64)
    }

    /// Bytes waiting for the line at `now`.
    pub fn backlog(&self, now: Instant) -> u64 {
        let Some(free) = self.line_free else { return 0 };
        let wait = free.saturating_duration_since(now);
        (wait.as_secs_f64() * self.shape.rate as f64) as u64
    }

    /// A packet arrives at `now`. Returns false if it was dropped (the queue was full).
    pub fn offer(&mut self, now: Instant, packet: Vec<u8>) -> bool {
        let len = packet.len() as u64;
        if self.backlog(now) + len > self.shape.queue.max(len) {
            self.counts.dropped += 1;
            return false;
        }
        let start = self.line_free.map_or(now, |f| f.max(now));
        let sent = start + self.serialization(len);
        self.line_free = Some(sent);
        self.wire.push_back((sent + self.shape.delay, packet));
        self.counts.packets += 1;
        self.counts.bytes += len;
        true
    }

    /// When the next packet is due at the far end.
    pub fn next_due(&self) -> Option<Instant> {
        self.wire.front().map(|(t, _)| *t)
    }

    /// The next packet, if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.next_due()? <= now { self.wire.pop_front().map(|(_, p)| p) } else { None }
    }

    /// What went through so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_packet_takes_its_serialization_plus_the_delay() {
        let t0 = Instant::now();
        // 1,000 bytes at 100,000 B/s: 10 ms on the line, then 50 ms on the wire.
        let mut s = Shaper::new(Shape::new(50 * MS, 100_000));
        assert!(s.offer(t0, vec![0; 1000]));
        assert_eq!(s.next_due(), Some(t0 + 60 * MS));
        assert!(s.pop_due(t0 + 59 * MS).is_none());
        assert_eq!(s.pop_due(t0 + 60 * MS).map(|p| p.len()), Some(1000));
    }

    #[test]
    fn back_to_back_packets_are_spaced_by_the_rate() {
        let t0 = Instant::now();
        let mut s = Shaper::new(Shape::new(Duration::ZERO, 100_000).with_queue(1 << 20));
        for _ in 0..3 {
            assert!(s.offer(t0, vec![0; 1000]));
        }
        let mut due = Vec::new();
        while let Some(t) = s.next_due() {
            due.push(t.duration_since(t0));
            s.pop_due(t);
        }
        assert_eq!(due, vec![10 * MS, 20 * MS, 30 * MS]);
    }

    #[test]
    fn a_full_queue_drops_and_drains_at_the_rate() {
        let t0 = Instant::now();
        let mut s = Shaper::new(Shape::new(Duration::ZERO, 100_000).with_queue(3000));
        let accepted = (0..10).filter(|_| s.offer(t0, vec![0; 1000])).count();
        assert_eq!(accepted, 3, "3,000 bytes of queue hold three 1,000-byte packets");
        assert_eq!(s.counts().dropped, 7);
        // 10 ms later one packet has left the line: room for one more.
        assert!(s.offer(t0 + 10 * MS, vec![0; 1000]));
        assert!(!s.offer(t0 + 10 * MS, vec![0; 1000]));
    }

    #[test]
    fn an_idle_line_starts_afresh() {
        let t0 = Instant::now();
        let mut s = Shaper::new(Shape::new(5 * MS, 1_000_000));
        s.offer(t0, vec![0; 1000]);
        let later = t0 + Duration::from_secs(1);
        s.offer(later, vec![0; 1000]);
        s.pop_due(later);
        assert_eq!(s.next_due(), Some(later + MS + 5 * MS));
    }

    proptest! {
        /// Whatever arrives when: order is kept, nothing arrives before its serialization and delay, and the
        /// bytes delivered by any time never exceed what the rate allows since the first packet (plus one
        /// packet, the one on the line).
        #[test]
        fn order_delay_and_rate_hold(
            arrivals in proptest::collection::vec((0u64..5_000, 1usize..3_000), 1..200),
            rate in 10_000u64..10_000_000,
            delay_ms in 0u32..300,
            queue in 3_000u64..200_000,
        ) {
            let t0 = Instant::now();
            let mut s = Shaper::new(Shape::new(delay_ms * MS, rate).with_queue(queue));
            let mut at = t0;
            let mut sent = Vec::new();
            for (n, (gap_us, len)) in arrivals.iter().enumerate() {
                at += Duration::from_micros(*gap_us);
                let mut p = vec![0u8; *len];
                p[0] = n as u8;
                if s.offer(at, p) {
                    sent.push((n as u8, at, *len as u64));
                }
            }
            let mut got = Vec::new();
            while let Some(t) = s.next_due() {
                let p = s.pop_due(t);
                prop_assert!(p.is_some());
                got.push((p.map_or(0, |p| p[0]), t));
            }
            prop_assert_eq!(got.len(), sent.len());
            let mut bytes = 0u64;
            let first = sent.first().map_or(t0, |s| s.1);
            for ((id, due), (sid, arrived, len)) in got.iter().zip(&sent) {
                prop_assert_eq!(id, sid);
                prop_assert!(*due >= *arrived + delay_ms * MS);
                bytes += len;
                let window = due.saturating_duration_since(first + delay_ms * MS).as_secs_f64();
                prop_assert!(bytes as f64 <= window * rate as f64 + 3_000.0 + 1.0);
            }
        }
    }
}
