//! How many bytes a downloader keeps requested from one provider: enough to fill the path (its delivery
//! rate times the round trip), not so many that answers queue. Sans-IO: the caller reports each answer
//! with the time its request was sent and `now`.
//!
//! The principal type is [`Window`], one per provider. Its limit works like TCP's congestion window, with
//! answers in place of acknowledgements and the delay of answers as the congestion signal (LEDBAT-like):
//! - **Growth.** An answer that came about as fast as the fastest one so far (no queue in front of it) adds
//!   its own bytes to the limit: the limit doubles every round trip while the path has room, whatever the
//!   piece size, so a 300 ms link with a 30 MB bandwidth-delay product is full within a few seconds.
//! - **Ceiling.** While the rate still rises, the limit never exceeds twice the delivery rate measured
//!   (peak of recent samples) times the fastest answer, plus two answers: once the rate stops rising, the
//!   window stops growing, whatever the delay signal says. Twice, as BBR's in-flight cap: one product
//!   fills the path, the other is queued at the provider (in its socket, not the network: TCP or QUIC
//!   decides what is on the wire), so its sender never runs dry while answers for the first are on the
//!   way, and jitter does not empty it.
//! - **Full pipe.** Once the rate has stopped rising (three round trips in a row without a quarter more:
//!   BBR's full-bandwidth test), the ceiling is 1.25 products: TCP fills whatever we ask it to carry, and
//!   two products overflow a router queue of one again and again; each loss stalls every answer behind it
//!   for a round trip and halves the window. Before then the ceiling stays at two, or the ramp would grow
//!   by a quarter per round trip instead of doubling. (Counting the pipe full at the first halving instead
//!   was tried: a halving in the ramp, where TCP's and yamux's own windows are still growing, left folders
//!   crawling.)
//! - **Shrink.** An answer that took more than twice the fastest one plus `queue_slack` halves the limit,
//!   once per round trip (answers to requests sent before the last halving do not halve it again: they
//!   waited in the queue that halving drains; halving for each of them took the window to one piece):
//!   requests are waiting behind others at the provider (its uplink is shared, a seed asked by a hundred
//!   peers) or in the network's queue. A request that waits there for seconds holds a piece chosen on
//!   stale information; such queues made the simulated swarm send the seed's pieces twice. A floor for
//!   halvings (never below 1.25x the product) was tried: with the 10 s peak it kept a provider that became
//!   busy at its old depth for seconds (the scheduler's test of that case failed), with a short memory it
//!   gained nothing.
//!
//! The *fastest answer* is the round trip plus one answer's serialization with no queue; it only falls,
//! so a path that gets slower is seen through the shrink rule, not a new base.
//!
//! The delivery rate of one answer is BBR's: the bytes delivered while its request was outstanding (its
//! own included) over the time it was outstanding, or since the answer delivered just before it was sent
//! if that is longer. In a full pipe that is the path's rate; in a pipe that is not yet full it is what
//! the window allows, and growth raises it.

use std::time::{Duration, Instant};

/// Bounds of a [`Window`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WindowConfig {
    /// Most bytes outstanding at one provider.
    pub max_bytes: u64,
    /// Queueing beyond twice the fastest answer that is tolerated before the window shrinks.
    pub queue_slack: Duration,
    /// The peak delivery rate decays by half every this long. Long: after TCP recovers from a loss, or
    /// a provider's other uploads end, the window may grow back at once to what the path carried before
    /// (growth is still paced by answers and stopped by the delay signal). With 1 s, the window lagged
    /// TCP's recovery over a 300 ms link and sat at two thirds of TCP's rate.
    pub rate_half_life: Duration,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self { max_bytes: 64 << 20, queue_slack: Duration::from_millis(50), rate_half_life: Duration::from_secs(10) }
    }
}

impl WindowConfig {
    /// Sets the most bytes outstanding at one provider.
    pub fn with_max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }
}

/// What a request must carry for [`Window::on_answer`]: the provider's delivered count when it was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    /// When the request was sent.
    pub at: Instant,
    delivered: u64,
    /// When the answer before it was delivered.
    last_answer: Option<Instant>,
}

/// The bytes one provider may have outstanding (see the module docs).
#[derive(Clone, Debug)]
pub struct Window {
    limit: u64,
    fastest: Option<Duration>,
    /// Peak delivery rate (bytes per second) and when it was last raised or decayed.
    rate: f64,
    rate_at: Option<Instant>,
    delivered: u64,
    last_answer: Option<Instant>,
    /// When the limit was last halved.
    shrunk_at: Option<Instant>,
    /// The full-pipe test (see [`Window::on_answer`]): the delivered count that ends the current round
    /// trip, the peak rate when the rate last rose by a quarter, and rounds since (the pipe is full at
    /// `FULL_ROUNDS`).
    round_end: u64,
    full_rate: f64,
    flat_rounds: u32,
}

/// The ceiling's multiple of the bandwidth-delay product while the rate still rises (see the module docs).
const GAIN: f64 = 2.0;
/// ... and once it has stopped rising: a quarter of a product queued at most.
const FULL_GAIN: f64 = 1.25;
/// Round trips in a row in which the peak rate grew by less than `FULL_RISE` before the pipe counts as
/// full (BBR's full-bandwidth test).
const FULL_ROUNDS: u32 = 3;
const FULL_RISE: f64 = 1.25;

impl Window {
    /// A window that starts at `initial` bytes (at least one answer's worth is always allowed).
    pub fn new(initial: u64) -> Self {
        Self {
            limit: initial.max(1),
            fastest: None,
            rate: 0.0,
            rate_at: None,
            delivered: 0,
            last_answer: None,
            shrunk_at: None,
            round_end: 0,
            full_rate: 0.0,
            flat_rounds: 0,
        }
    }

    /// Bytes that may be outstanding now.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The fastest answer so far (round trip plus one answer, no queue).
    pub fn fastest(&self) -> Option<Duration> {
        self.fastest
    }

    /// The peak delivery rate measured, in bytes per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Whether the rate has stopped rising (the path is full).
    pub fn is_full(&self) -> bool {
        self.flat_rounds >= FULL_ROUNDS
    }

    /// A request is sent at `now`: keep the returned value with it.
    pub fn on_send(&self, now: Instant) -> Sent {
        Sent { at: now, delivered: self.delivered, last_answer: self.last_answer }
    }

    /// The answer to the request sent as `sent` arrived at `now` with `bytes`.
    pub fn on_answer(&mut self, sent: Sent, bytes: u64, now: Instant, config: &WindowConfig) {
        let took = now.saturating_duration_since(sent.at).max(Duration::from_micros(1));
        let base = self.fastest.map_or(took, |f| f.min(took));
        self.fastest = Some(base);
        self.delivered += bytes;
        // Over the longer of the request's time out and the time since the answer before it was sent: after
        // a stall, answers come in a burst, and the request's own time alone made a 25 MB/s link look like
        // 110 (BBR's rule).
        let since_answer = sent.last_answer.map_or(took, |t| now.saturating_duration_since(t));
        self.last_answer = Some(now);
        let sample = self.delivered.saturating_sub(sent.delivered) as f64 / took.max(since_answer).as_secs_f64();
        let decayed = match self.rate_at {
            Some(t) => {
                let halves = now.saturating_duration_since(t).as_secs_f64() / config.rate_half_life.as_secs_f64();
                self.rate * 0.5f64.powf(halves)
            }
            None => 0.0,
        };
        self.rate = decayed.max(sample);
        self.rate_at = Some(now);
        // A round trip ends with the first answer to a request sent after it began (BBR's round count).
        if !self.is_full() && sent.delivered >= self.round_end {
            self.round_end = self.delivered;
            if self.rate >= self.full_rate * FULL_RISE {
                self.full_rate = self.rate;
                self.flat_rounds = 0;
            } else {
                self.flat_rounds += 1;
            }
        }
        let gain = if self.is_full() { FULL_GAIN } else { GAIN };
        let ceiling = ((gain * self.rate * base.as_secs_f64()) as u64).saturating_add(2 * bytes);
        let max = config.max_bytes.max(bytes);
        if took > base * 2 + config.queue_slack {
            if self.shrunk_at.is_none_or(|t| sent.at >= t) {
                self.limit = (self.limit / 2).max(bytes);
                self.shrunk_at = Some(now);
            }
        } else if took < base * 3 / 2 + config.queue_slack / 2 {
            self.limit = (self.limit + bytes).min(ceiling.max(self.limit));
        }
        self.limit = self.limit.clamp(bytes.min(max), max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What [`run_link`] saw.
    struct Run {
        /// Bytes per second achieved.
        rate: f64,
        /// The largest limit seen.
        peak: u64,
        /// Times the router's queue overflowed (answers were lost).
        overflows: usize,
        /// The limit when the window first counted the pipe as full.
        full_at: Option<u64>,
    }

    /// A provider behind a link of `rate` bytes/s and `rtt`, serving requests of `piece` bytes in order,
    /// driven by a window for `secs`. With `queue`, the router in front of the link holds that many bytes
    /// at most (drop-tail): an answer that finds it full is lost and arrives a round trip late, and the
    /// answers behind it wait for it (TCP delivers in order), which is what a loss looks like to us.
    fn run_link(rate: f64, rtt: Duration, piece: u64, secs: f64, queue: Option<u64>) -> Run {
        let config = WindowConfig::default();
        let t0 = Instant::now();
        let mut w = Window::new(piece);
        // Outstanding requests: (sent, when its answer arrives).
        let mut out: std::collections::VecDeque<(Sent, Instant)> = Default::default();
        let mut line_free = t0;
        let mut now = t0;
        let mut last_arrival = t0;
        let mut last_loss: Option<Instant> = None;
        let mut run = Run { rate: 0.0, peak: 0, overflows: 0, full_at: None };
        let mut got = 0u64;
        let serialize = Duration::from_secs_f64(piece as f64 / rate);
        while now.duration_since(t0).as_secs_f64() < secs {
            while (out.len() as u64 + 1) * piece <= w.limit() {
                // The request takes half the round trip to arrive, then waits for the line.
                let reaches = now + rtt / 2;
                let waiting = line_free.saturating_duration_since(reaches).as_secs_f64() * rate;
                let start = line_free.max(reaches);
                line_free = start + serialize;
                let mut arrives = line_free + rtt / 2;
                if queue.is_some_and(|q| waiting > q as f64) {
                    // Losses a round trip apart are separate overflows; TCP recovers each one at once.
                    if last_loss.is_none_or(|t| now >= t + rtt) {
                        run.overflows += 1;
                        last_loss = Some(now);
                    }
                    arrives += rtt;
                }
                last_arrival = last_arrival.max(arrives);
                out.push_back((w.on_send(now), last_arrival));
            }
            let Some((sent, at)) = out.pop_front() else { break };
            now = at;
            w.on_answer(sent, piece, now, &config);
            got += piece;
            run.peak = run.peak.max(w.limit());
            if w.is_full() && run.full_at.is_none() {
                run.full_at = Some(w.limit());
            }
        }
        run.rate = got as f64 / now.duration_since(t0).as_secs_f64();
        let bdp = rate * (rtt + serialize).as_secs_f64();
        eprintln!("  final window {:.2}x the bandwidth-delay product", w.limit() as f64 / bdp);
        eprintln!(
            "{:.0} MB/s at {rtt:?}, {piece} B pieces: {:.1} MB/s, peak window {}, {} overflows",
            rate / 1e6,
            run.rate / 1e6,
            run.peak,
            run.overflows
        );
        run
    }

    #[test]
    fn a_long_fat_link_is_filled() {
        // 100 MB/s and 300 ms: 30 MB in flight are needed; 4 pieces of 256 KiB would give 3.5 MB/s.
        let run = run_link(100e6, Duration::from_millis(300), 256 << 10, 20.0, None);
        assert!(run.rate > 0.85 * 100e6, "reached {:.1} MB/s of 100", run.rate / 1e6);
        assert!(run.peak < 64 << 20, "the window stays bounded: {}", run.peak);
    }

    #[test]
    fn small_pieces_fill_a_link_too() {
        let run = run_link(25e6, Duration::from_millis(100), 64 << 10, 10.0, None);
        assert!(run.rate > 0.85 * 25e6, "reached {:.1} MB/s of 25", run.rate / 1e6);
    }

    #[test]
    fn the_window_stops_near_the_bandwidth_delay_product() {
        // Past the product, more requests only queue: the ceiling and the delay keep the window within a
        // few products (here 2.5 MB), far below the 64 MiB bound.
        let run = run_link(25e6, Duration::from_millis(100), 256 << 10, 10.0, None);
        assert!(run.peak <= 4 * 2_500_000 + (512 << 10), "window grew to {}", run.peak);
    }

    #[test]
    fn the_pipe_counts_as_full_only_once_it_is() {
        // While the rate still doubles the window may grow fast; the test for a full pipe must not fire
        // before the window holds a product (10 MB here), or the rest of the ramp crawls at a quarter per
        // round trip.
        let run = run_link(100e6, Duration::from_millis(100), 256 << 10, 10.0, None);
        let full_at = run.full_at.unwrap_or(0);
        assert!(full_at >= 10_000_000, "counted as full at a window of {full_at}");
    }

    #[test]
    fn a_full_pipe_does_not_overflow_the_router_again_and_again() {
        // A router queue of one product, as in the link bench: a window of two products overflows it, and
        // each loss stalls every answer behind it for a round trip. Once the rate has stopped rising the
        // window keeps a quarter of a product queued at most: the ramp's end overflows it (twice here),
        // then nothing does. With two products kept it overflowed 64 times in these 20 s (82 MB/s).
        let run = run_link(100e6, Duration::from_millis(100), 256 << 10, 20.0, Some(10_000_000));
        assert!(run.overflows <= 3, "the queue overflowed {} times", run.overflows);
        assert!(run.rate > 0.9 * 100e6, "reached {:.1} MB/s of 100", run.rate / 1e6);
    }

    #[test]
    fn queued_answers_shrink_the_window() {
        let config = WindowConfig::default();
        let t0 = Instant::now();
        let mut w = Window::new(1 << 20);
        let piece = 64 << 10;
        let s = w.on_send(t0);
        w.on_answer(s, piece, t0 + Duration::from_millis(20), &config);
        let before = w.limit();
        // An answer that waited 500 ms: a queue.
        let t1 = t0 + Duration::from_secs(1);
        let s = w.on_send(t1);
        w.on_answer(s, piece, t1 + Duration::from_millis(500), &config);
        assert!(w.limit() <= before / 2, "{} of {before}", w.limit());
        // A second late answer to a request sent before the halving does not halve it again.
        let after = w.limit();
        let s2 = w.on_send(t1 + Duration::from_millis(100));
        w.on_answer(s2, piece, t1 + Duration::from_millis(700), &config);
        assert!(w.limit() > after * 3 / 4, "halved again: {} of {after}", w.limit());
    }

    proptest! {
        /// Whatever the answers' timing and sizes, the limit stays within one answer and the bound.
        #[test]
        fn the_limit_stays_bounded(steps in proptest::collection::vec((0u64..2_000, 1u64..2_000_000), 1..300)) {
            let config = WindowConfig::default();
            let t0 = Instant::now();
            let mut w = Window::new(1);
            let mut now = t0;
            for (ms, bytes) in steps {
                let s = w.on_send(now);
                now += Duration::from_millis(ms);
                w.on_answer(s, bytes, now, &config);
                prop_assert!(w.limit() >= bytes.min(config.max_bytes));
                prop_assert!(w.limit() <= config.max_bytes.max(bytes));
            }
        }
    }
}
