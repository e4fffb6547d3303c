//! The overlay role (`pure`, and `hybrid`, which floods over it when no index server answers): which
//! connected peers we were introduced to, and when to ask each again to be a neighbour.
//!
//! The flooding router ([`Flood`]) decides who is a neighbour; this keeps the candidates and the back-off
//! for those that did not become one.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use shoal_proto::search::Flood;

/// An introduced peer that did not become a neighbour is asked again after 1 s, then after twice as long
/// each time, up to this: a link lost to a passing fault (a stream that could not be opened on a busy
/// machine, say) heals within seconds, and a peer that is full is not asked at every tick.
const RETRY_MAX: Duration = Duration::from_secs(30);

fn retry_after(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(5)).min(RETRY_MAX)
}

/// Neighbour candidates and their back-off.
#[derive(Default)]
pub(super) struct Overlay {
    /// Connected peers we were introduced to: overlay neighbour candidates.
    introduced: HashSet<PeerId>,
    /// Introduced peers that did not become neighbours: when to ask again, and how many asks failed.
    retry: HashMap<PeerId, (Instant, u32)>,
}

impl Overlay {
    /// A peer we were introduced to (a bootstrap peer, one found on the LAN) connected.
    pub(super) fn introduced(&mut self, peer: PeerId) {
        self.introduced.insert(peer);
    }

    /// A peer disconnected.
    pub(super) fn gone(&mut self, peer: &PeerId) {
        self.introduced.remove(peer);
    }

    /// Candidates to ask now, when the router wants neighbours (`skip`: peers that are not candidates, such
    /// as index servers).
    pub(super) fn candidates(
        &self,
        flood: &Flood<PeerId>,
        skip: impl Fn(&PeerId) -> bool,
        now: Instant,
    ) -> Vec<PeerId> {
        if !flood.wants_neighbours() {
            return Vec::new();
        }
        self.introduced
            .iter()
            .filter(|p| !flood.is_neighbour(p) && !skip(p) && self.retry.get(p).is_none_or(|(at, _)| now >= *at))
            .copied()
            .collect()
    }

    /// Introduced peers that are neither neighbours nor being asked refused, or the link failed, or the
    /// ask timed out: they are asked again later, each time later (see `retry_after`).
    pub(super) fn back_off(&mut self, flood: &Flood<PeerId>, now: Instant) {
        let introduced = &self.introduced;
        self.retry.retain(|p, _| introduced.contains(p) && !flood.is_neighbour(p));
        for p in introduced.iter().filter(|p| !flood.is_neighbour(p) && !flood.is_joining(p)) {
            let e = self.retry.entry(*p).or_insert((now, 0));
            if now >= e.0 {
                e.1 += 1;
                e.0 = now + retry_after(e.1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let got: Vec<u64> = (1..=8).map(|n| retry_after(n).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn a_peer_that_did_not_join_is_asked_again_only_after_its_backoff() {
        let flood: Flood<PeerId> = Flood::new(shoal_proto::search::flood::Config::default(), 1);
        let mut o = Overlay::default();
        let p = PeerId::random();
        o.introduced(p);
        let t0 = Instant::now();
        assert_eq!(o.candidates(&flood, |_| false, t0), vec![p]);
        o.back_off(&flood, t0);
        assert!(o.candidates(&flood, |_| false, t0).is_empty(), "asked again at once");
        assert_eq!(o.candidates(&flood, |_| false, t0 + Duration::from_secs(1)), vec![p]);
        assert!(o.candidates(&flood, |q| *q == p, t0 + Duration::from_secs(1)).is_empty(), "skipped");
        o.gone(&p);
        assert!(o.candidates(&flood, |_| false, t0 + Duration::from_secs(60)).is_empty());
    }
}
