//! The bandwidth history: every [`NodeConfig::traffic_every`](crate::NodeConfig) the transfer service
//! takes the bytes moved since the last sample, says them on the event feed ([`super::Event::Traffic`],
//! what a live rate display follows) and keeps them in the catalog for [`KEEP`] (so the last hour and day
//! survive a restart). [`history`] buckets stored samples for a chart.
//!
//! Samples in which nothing moved are said but not stored: an idle daemon does not write to its disk.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use shoal_store::{Store, TrafficSample};

use super::service::Counters;
use crate::blocking::blocking;
use crate::events::Events;

/// How long samples are kept.
pub const KEEP: Duration = Duration::from_secs(2 * 24 * 3600);

/// Most buckets a history may be cut into (a chart is a few hundred pixels wide).
pub const MAX_BUCKETS: usize = 1440;

/// Bytes moved per bucket over a window that ends now, oldest bucket first.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TrafficHistory {
    /// Start of the first bucket, Unix ms.
    pub from_ms: u64,
    /// Length of each bucket, ms.
    pub bucket_ms: u64,
    /// Bytes sent in each bucket.
    pub up: Vec<u64>,
    /// Bytes received in each bucket.
    pub down: Vec<u64>,
}

/// Cuts the window of `span_ms` that ends at `to_ms` into `buckets` buckets and adds each sample to the
/// bucket its end falls in (samples outside the window are left out). `buckets` is at least 1 and at most
/// [`MAX_BUCKETS`].
pub fn history(samples: &[TrafficSample], to_ms: u64, span_ms: u64, buckets: usize) -> TrafficHistory {
    let n = buckets.clamp(1, MAX_BUCKETS);
    let bucket_ms = (span_ms / n as u64).max(1);
    let from_ms = to_ms.saturating_sub(bucket_ms * n as u64);
    let mut h = TrafficHistory { from_ms, bucket_ms, up: vec![0; n], down: vec![0; n] };
    for s in samples {
        // A sample belongs to the bucket (from + k*b, from + (k+1)*b] its end is in.
        if s.at_ms <= from_ms || s.at_ms > to_ms {
            continue;
        }
        let k = ((s.at_ms - from_ms - 1) / bucket_ms) as usize;
        if let (Some(u), Some(d)) = (h.up.get_mut(k), h.down.get_mut(k)) {
            *u = u.saturating_add(s.up);
            *d = d.saturating_add(s.down);
        }
    }
    h
}

/// Takes a sample every `every` until the node stops.
pub(crate) async fn run(store: Arc<Store>, counters: Arc<Counters>, events: Events, every: Duration) {
    let totals =
        || (counters.uploaded_total.load(Ordering::Relaxed), counters.downloaded_total.load(Ordering::Relaxed));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let (mut last, mut last_at) = (totals(), Instant::now());
    loop {
        tick.tick().await;
        let (now, now_at) = (totals(), Instant::now());
        let sample = TrafficSample {
            at_ms: crate::messaging::now_ms(),
            span_ms: now_at.duration_since(last_at).as_millis() as u64,
            up: now.0.saturating_sub(last.0),
            down: now.1.saturating_sub(last.1),
        };
        (last, last_at) = (now, now_at);
        events.emit(super::Event::Traffic {
            at_ms: sample.at_ms,
            span_ms: sample.span_ms,
            up: sample.up,
            down: sample.down,
        });
        if sample.up == 0 && sample.down == 0 {
            continue;
        }
        let store = store.clone();
        let forget = sample.at_ms.saturating_sub(KEEP.as_millis() as u64);
        if let Err(e) = blocking(move || store.record_traffic(&sample, forget)).await {
            tracing::warn!(error = %e, "could not record a traffic sample; the bandwidth history misses it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at_ms: u64, up: u64, down: u64) -> TrafficSample {
        TrafficSample { at_ms, span_ms: 1_000, up, down }
    }

    #[test]
    fn samples_fall_in_the_bucket_their_end_is_in() {
        // Window (0, 4000] in 4 buckets of 1000 ms.
        let h = history(
            &[s(0, 100, 0), s(1, 1, 10), s(1000, 2, 20), s(1001, 4, 40), s(4000, 8, 80), s(4001, 100, 0)],
            4000,
            4000,
            4,
        );
        assert_eq!(h, TrafficHistory { from_ms: 0, bucket_ms: 1000, up: vec![3, 4, 0, 8], down: vec![30, 40, 0, 80] });
    }

    #[test]
    fn every_byte_in_the_window_is_counted_once() {
        let samples: Vec<_> = (1..=3600u64).map(|k| s(10_000 + k * 1000, k, 2 * k)).collect();
        let h = history(&samples, 10_000 + 3600 * 1000, 3600 * 1000, 360);
        assert_eq!(h.up.len(), 360);
        assert_eq!(h.up.iter().sum::<u64>(), (1..=3600u64).sum::<u64>());
        assert_eq!(h.down.iter().sum::<u64>(), 2 * (1..=3600u64).sum::<u64>());
    }

    #[test]
    fn odd_sizes_are_bounded() {
        assert_eq!(history(&[], 10, 10, 0).up.len(), 1);
        assert_eq!(history(&[], 10, 10, usize::MAX).up.len(), MAX_BUCKETS);
        let h = history(&[s(5, 1, 1)], 5, 0, 10);
        assert_eq!(h.bucket_ms, 1);
        assert_eq!(h.up.iter().sum::<u64>(), 1);
    }
}
