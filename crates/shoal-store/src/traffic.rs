//! The `traffic` table: how many bytes this peer sent and received in each few seconds, so that the web
//! UI and the API can show the bandwidth of the last hour or day after a restart too.
//!
//! The transfer service writes one row per sample period in which anything moved (an idle daemon writes
//! nothing) and drops rows older than what it keeps; readers bucket the rows themselves.

use rusqlite::params;

use crate::{Store, StoreError};

/// The bytes moved in the `span_ms` milliseconds that ended at `at_ms` (Unix time).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrafficSample {
    /// End of the period, Unix ms.
    pub at_ms: u64,
    /// Length of the period, ms.
    pub span_ms: u64,
    /// Bytes sent (served to other peers).
    pub up: u64,
    /// Bytes received (downloaded).
    pub down: u64,
}

fn i(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

fn u(v: i64) -> u64 {
    v.max(0) as u64
}

impl Store {
    /// Records `sample` and forgets every sample that ended before `forget_before_ms`, in one transaction.
    pub fn record_traffic(&self, sample: &TrafficSample, forget_before_ms: u64) -> Result<(), StoreError> {
        self.catalog.tx(|c| {
            c.execute(
                "INSERT INTO traffic (at_ms, span_ms, up, down) VALUES (?1, ?2, ?3, ?4)",
                params![i(sample.at_ms), i(sample.span_ms), i(sample.up), i(sample.down)],
            )?;
            c.execute("DELETE FROM traffic WHERE at_ms < ?1", params![i(forget_before_ms)])?;
            Ok(())
        })
    }

    /// The samples that ended at or after `since_ms`, oldest first.
    pub fn traffic_since(&self, since_ms: u64) -> Result<Vec<TrafficSample>, StoreError> {
        self.catalog.with(|c| {
            let mut st = c.prepare("SELECT at_ms, span_ms, up, down FROM traffic WHERE at_ms >= ?1 ORDER BY at_ms")?;
            let rows = st.query_map(params![i(since_ms)], |r| {
                Ok(TrafficSample { at_ms: u(r.get(0)?), span_ms: u(r.get(1)?), up: u(r.get(2)?), down: u(r.get(3)?) })
            })?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64, up: u64, down: u64) -> TrafficSample {
        TrafficSample { at_ms, span_ms: 5_000, up, down }
    }

    #[test]
    fn samples_survive_a_restart_and_old_ones_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.record_traffic(&sample(10_000, 1, 2), 0).unwrap();
        s.record_traffic(&sample(15_000, 3, 4), 0).unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.traffic_since(0).unwrap(), vec![sample(10_000, 1, 2), sample(15_000, 3, 4)]);
        assert_eq!(s.traffic_since(12_000).unwrap(), vec![sample(15_000, 3, 4)]);
        s.record_traffic(&sample(20_000, 5, 6), 15_000).unwrap();
        assert_eq!(s.traffic_since(0).unwrap(), vec![sample(15_000, 3, 4), sample(20_000, 5, 6)]);
    }

    #[test]
    fn counts_too_large_for_sqlite_are_kept_at_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.record_traffic(&sample(u64::MAX, u64::MAX, 0), 0).unwrap();
        assert_eq!(s.traffic_since(0).unwrap()[0].up, i64::MAX as u64);
    }
}
