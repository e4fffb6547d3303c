//! Providers of one download whose session broke and that will be opened again: when, how many times, and
//! why each left (reported until it answers again). Sans-IO like [`super::Fetch`], which owns one.
//!
//! A stream is lost without the provider being at fault: a connection may close under a burst or an idle
//! timeout, and until 2026-12-07 libp2p-stream reset incoming streams that arrived while its one-slot
//! hand-over channel was full (`shoal_net::streams` queues them now). Before this, such a provider was out
//! of the download for good, and a download from one source stalled for `stall_timeout` and failed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// The first attempt waits this long, each next one twice as long.
const REOPEN_AFTER: Duration = Duration::from_secs(1);
/// Attempts with no verified piece from the provider in between (1 + 2 + 4 + 8 s).
pub(super) const MAX_REOPENS: u32 = 4;

/// See the module docs. Keys are providers of this download that had answered.
#[derive(Default)]
pub(super) struct Reopens {
    /// Why each provider waiting to come back left.
    left: HashMap<PeerId, String>,
    at: HashMap<PeerId, Instant>,
    /// Attempts since the provider's last verified piece.
    attempts: HashMap<PeerId, u32>,
}

impl Reopens {
    /// `peer`'s session broke at `now` for `why`: schedules it, unless it has had its attempts (then `why`
    /// is given back, to be reported as the reason it was dropped).
    pub(super) fn broke(&mut self, peer: PeerId, why: String, now: Instant) -> Result<(), String> {
        let attempts = self.attempts.get(&peer).copied().unwrap_or(0);
        if attempts >= MAX_REOPENS {
            self.left.remove(&peer);
            return Err(why);
        }
        tracing::info!(%peer, %why, attempts, "provider's session broke; it is opened again");
        self.attempts.insert(peer, attempts + 1);
        self.at.insert(peer, now + REOPEN_AFTER * (1 << attempts));
        self.left.insert(peer, why);
        Ok(())
    }

    /// Providers to open again now.
    pub(super) fn due(&mut self, now: Instant) -> Vec<PeerId> {
        let due: Vec<PeerId> = self.at.iter().filter(|(_, at)| **at <= now).map(|(p, _)| *p).collect();
        for p in &due {
            self.at.remove(p);
        }
        due
    }

    /// `peer` answered: why it left no longer stands.
    pub(super) fn answered(&mut self, peer: &PeerId) {
        self.left.remove(peer);
    }

    /// A piece from `peer` verified: its attempts start again from the first.
    pub(super) fn delivered(&mut self, peer: &PeerId) {
        self.attempts.remove(peer);
    }

    /// Whether a provider is waiting to be opened again.
    pub(super) fn pending(&self) -> bool {
        !self.at.is_empty()
    }

    /// Why each provider that is away left.
    pub(super) fn left(&self) -> impl Iterator<Item = (&PeerId, &String)> {
        self.left.iter()
    }

    /// The reasons of those still away, taken at the end of the download.
    pub(super) fn take_left(&mut self) -> HashMap<PeerId, String> {
        std::mem::take(&mut self.left)
    }
}
