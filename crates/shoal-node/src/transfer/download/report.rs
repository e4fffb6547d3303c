//! What a download tells its watchers and its caller: progress while it runs ([`Progress`], each
//! provider's [`PeerRate`] from a moving average), and the report when it ends ([`DownloadReport`], each
//! provider's [`PeerReport`]). Shapes of the API and of `get --json` (docs/CLI.md).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use libp2p::PeerId;
use serde::Serialize;
use shoal_store::ContentId;

/// Progress of a running download.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Progress {
    /// Total bytes (0 until the first provider answered).
    pub size: u64,
    /// Bytes verified so far (including those verified before a restart).
    pub verified: u64,
    /// Bytes received in this run (payload, including proofs and discarded data).
    pub received: u64,
    /// Providers currently in the download.
    pub peers: usize,
    /// Files completed (for a folder).
    pub files_done: usize,
    /// Files in all (1 for a file).
    pub files_total: usize,
    /// Each provider's share of this download: verified bytes and recent rate.
    #[serde(default)]
    pub per_peer: Vec<PeerRate>,
}

/// One provider's part in a running download.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PeerRate {
    /// Peer id.
    pub peer: String,
    /// Verified bytes it delivered in this run.
    pub bytes: u64,
    /// Recent rate in bytes per second (moving average over about two seconds).
    pub rate: f64,
}

/// Per-peer moving average of delivered bytes per second.
#[derive(Default)]
pub(crate) struct Rates {
    by_peer: HashMap<PeerId, (u64, f64, Instant)>,
}

impl Rates {
    /// Time constant of the moving average.
    const TAU: f64 = 2.0;

    pub(crate) fn add(&mut self, peer: PeerId, bytes: u64, now: Instant) {
        let e = self.by_peer.entry(peer).or_insert((0, 0.0, now));
        let dt = now.duration_since(e.2).as_secs_f64();
        e.0 += bytes;
        if dt > 1e-3 {
            let alpha = 1.0 - (-dt / Self::TAU).exp();
            e.1 += (bytes as f64 / dt - e.1) * alpha;
            e.2 = now;
        }
    }

    pub(crate) fn snapshot(&self, now: Instant) -> Vec<PeerRate> {
        let mut v: Vec<PeerRate> = self
            .by_peer
            .iter()
            .map(|(p, (bytes, rate, last))| {
                // A peer that has gone quiet decays towards zero.
                let idle = now.duration_since(*last).as_secs_f64();
                PeerRate { peer: p.to_string(), bytes: *bytes, rate: rate * (-idle / Self::TAU).exp() }
            })
            .collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.bytes));
        v
    }
}

/// What one provider contributed.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PeerReport {
    /// Peer id.
    pub peer: String,
    /// Verified bytes it delivered that completed pieces.
    pub bytes: u64,
    /// Payload bytes received from it (including proofs, duplicates and rejected data).
    pub received: u64,
    /// Why it was dropped, if it was.
    pub dropped: Option<String>,
}

/// The outcome of a completed download.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DownloadReport {
    /// Content id.
    pub id: ContentId,
    /// Where it was written.
    #[schema(value_type = String)]
    pub out: PathBuf,
    /// Total bytes (files).
    pub size: u64,
    /// True for a folder.
    pub collection: bool,
    /// Files written.
    pub files: usize,
    /// Bytes received in this run.
    pub received: u64,
    /// Bytes that were already verified when this run started (a resumed download).
    pub resumed: u64,
    /// Wall time of this run, in seconds, until the output was complete, synced to disk and in place.
    pub seconds: f64,
    /// Seconds spent receiving and verifying pieces (what throughput is measured over: it excludes
    /// start-up, finding providers and the final sync to disk).
    pub transfer_seconds: f64,
    /// Per-provider figures, by bytes delivered.
    pub peers: Vec<PeerReport>,
}
