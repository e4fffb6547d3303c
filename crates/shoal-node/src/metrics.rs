//! The node's metrics, in one `prometheus-client` registry: what `/metrics` serves.
//!
//! - libp2p's own metrics (connections, Kademlia queries, identify, ping), recorded by the network's event
//!   loop under the `libp2p_` prefix;
//! - `shoal_build_info{version, topology}` (always 1);
//! - each service's figures: a service registers a [`Collector`] at start that reads its counters when
//!   scraped (so no figure is kept twice), or histograms it observes itself
//!   ([`Metrics::download_seconds`], [`Metrics::search_first_hit_seconds`]).
//!
//! Counters are named without `_total`: the OpenMetrics encoder adds it (`shoal_uploaded_bytes_total`).

use std::sync::Mutex;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The node's registry and the histograms services observe.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Seconds from start to a verified output, per managed download.
    pub download_seconds: Histogram,
    /// Seconds from the start of a search to its first hit (searches with at least one hit).
    pub search_first_hit_seconds: Histogram,
    /// Seconds from writing a letter to its recipient's receipt (letters whose receipt came).
    pub letter_delivery_seconds: Histogram,
}

impl Metrics {
    /// A registry holding libp2p's metrics (already in `registry`), the build info and the histograms.
    pub(crate) fn new(mut registry: Registry, topology: &str) -> Self {
        let build = Family::<Vec<(String, String)>, Gauge>::default();
        build
            .get_or_create(&vec![
                ("version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
                ("topology".to_string(), topology.to_string()),
            ])
            .set(1);
        registry.register("shoal_build_info", "Shoal's version and the topology this peer runs (always 1)", build);
        // 0.1 s to about 28 h.
        let download_seconds = Histogram::new(exponential_buckets(0.1, 2.0, 20));
        registry.register(
            "shoal_download_duration_seconds",
            "Seconds from start to a complete, verified output, per download the daemon ran",
            download_seconds.clone(),
        );
        // 1 ms to about 65 s.
        let search_first_hit_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        registry.register(
            "shoal_search_first_hit_seconds",
            "Seconds from the start of a search to its first hit",
            search_first_hit_seconds.clone(),
        );
        // 10 ms to about 7.6 days (letters wait for offline recipients up to 7 days).
        let letter_delivery_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 26));
        registry.register(
            "shoal_letter_delivery_seconds",
            "Seconds from writing a direct letter to its recipient's receipt",
            letter_delivery_seconds.clone(),
        );
        Self { registry: Mutex::new(registry), download_seconds, search_first_hit_seconds, letter_delivery_seconds }
    }

    /// Adds figures read at every scrape.
    pub fn register_collector(&self, c: impl Collector) {
        shoal_store::lock(&self.registry).register_collector(Box::new(c));
    }

    /// Everything, in the OpenMetrics text format (what Prometheus scrapes).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &shoal_store::lock(&self.registry)) {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        out
    }
}

/// Writes one counter (`name` without `_total`) from a collector.
pub fn counter(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

/// Writes one gauge from a collector.
pub fn gauge(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: i64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Two;

    impl Collector for Two {
        fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
            counter(&mut enc, "shoal_things", "Things", 3)?;
            gauge(&mut enc, "shoal_level", "Level", -2)
        }
    }

    #[test]
    fn build_info_collectors_and_histograms_are_encoded() {
        let m = Metrics::new(Registry::default(), "pure");
        m.register_collector(Two);
        m.search_first_hit_seconds.observe(0.004);
        let text = m.encode();
        assert!(text.contains("shoal_build_info{version=\"0.1.0\",topology=\"pure\"} 1"), "{text}");
        assert!(text.contains("shoal_things_total 3") && text.contains("# TYPE shoal_level gauge"), "{text}");
        assert!(text.contains("shoal_level -2"), "{text}");
        assert!(text.contains("shoal_search_first_hit_seconds_bucket{le=\"0.004\"} 1"), "{text}");
        assert!(text.contains("shoal_search_first_hit_seconds_count 1"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}
