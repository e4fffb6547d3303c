//! A token bucket that caps upload throughput.

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
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
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

#[cfg(test)]
mod tests {
    use super::*;

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
