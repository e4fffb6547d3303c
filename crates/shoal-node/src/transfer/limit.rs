//! Token buckets that cap throughput: one for all traffic in a direction, one per peer.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Bytes per second with a burst of a quarter second (at least 64 KiB), shared by all uploads.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub(crate) fn new(bytes_per_sec: u64) -> Self {
        let rate = bytes_per_sec.max(1) as f64;
        let burst = (rate / 4.0).max(64.0 * 1024.0);
        Self { rate, burst, state: Mutex::new((burst, Instant::now())) }
    }

    /// Waits until `n` bytes may be sent. Debt is allowed (a piece larger than the burst goes out whole and
    /// the next caller waits longer), so the long-run rate is exact.
    pub(crate) async fn acquire(&self, n: usize) {
        let wait = {
            let mut s = shoal_store::lock(&self.state);
            let now = Instant::now();
            let refill = now.saturating_duration_since(s.1).as_secs_f64() * self.rate;
            s.0 = (s.0 + refill).min(self.burst) - n as f64;
            s.1 = now;
            if s.0 >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-s.0 / self.rate) }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Per-peer buckets kept before idle ones are dropped.
const MAX_PEER_BUCKETS: usize = 1024;

/// The caps of one direction (upload or download): global and per peer; either may be absent.
#[derive(Debug, Default)]
pub(crate) struct Limits {
    global: Option<RateLimiter>,
    per_peer_rate: Option<u64>,
    per_peer: std::sync::Mutex<std::collections::HashMap<libp2p::PeerId, std::sync::Arc<RateLimiter>>>,
}

impl Limits {
    pub(crate) fn new(global: Option<u64>, per_peer: Option<u64>) -> Self {
        Self { global: global.map(RateLimiter::new), per_peer_rate: per_peer, per_peer: Default::default() }
    }

    /// Waits until `n` bytes may pass to or from `peer`.
    pub(crate) async fn acquire(&self, peer: libp2p::PeerId, n: usize) {
        self.acquire_peer(peer, n).await;
        self.acquire_global(n).await;
    }

    /// True when there is a cap for all peers together.
    pub(crate) fn has_global(&self) -> bool {
        self.global.is_some()
    }

    /// Waits for the cap of `peer` only.
    pub(crate) async fn acquire_peer(&self, peer: libp2p::PeerId, n: usize) {
        if let Some(rate) = self.per_peer_rate {
            let l = {
                let mut all = shoal_store::lock(&self.per_peer);
                // Buckets nobody waits on are dropped once there are many (a peer's next transfer gets a
                // full bucket, which a cap per peer allows anyway): the map follows the peers sending now.
                if all.len() >= MAX_PEER_BUCKETS && !all.contains_key(&peer) {
                    all.retain(|_, l| std::sync::Arc::strong_count(l) > 1);
                }
                all.entry(peer).or_insert_with(|| std::sync::Arc::new(RateLimiter::new(rate))).clone()
            };
            l.acquire(n).await;
        }
    }

    /// Per-peer buckets kept now.
    #[cfg(test)]
    fn buckets(&self) -> usize {
        shoal_store::lock(&self.per_peer).len()
    }

    /// Waits for the cap of all peers together only.
    pub(crate) async fn acquire_global(&self, n: usize) {
        if let Some(g) = &self.global {
            g.acquire(n).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn per_peer_buckets_are_bounded() {
        let l = Limits::new(None, Some(1 << 30));
        for _ in 0..MAX_PEER_BUCKETS * 3 {
            l.acquire_peer(libp2p::PeerId::random(), 1).await;
        }
        assert!(l.buckets() <= MAX_PEER_BUCKETS, "{} buckets", l.buckets());
    }

    #[tokio::test(start_paused = true)]
    async fn long_run_rate_is_the_limit() {
        let l = RateLimiter::new(1_000_000);
        let t0 = tokio::time::Instant::now();
        for _ in 0..40 {
            l.acquire(100_000).await;
        }
        // 4 MB at 1 MB/s, minus the initial burst of 250 kB.
        let secs = t0.elapsed().as_secs_f64();
        assert!((3.6..=4.0).contains(&secs), "took {secs}");
    }
}
