//! What [`super::Fetch`] hands back to the loop that drives it: the steps to carry out, what a `Have`
//! answer means, the tally for the report and the summary of a finished blob. Kept apart so that the state
//! machine's file holds its rules only.

use std::collections::HashMap;

use libp2p::{Multiaddr, PeerId};
use shoal_proto::transfer::ChunkSpan;

#[cfg(doc)]
use super::Fetch;
use crate::transfer::download::{PeerRate, PeerReport};

/// What the loop must do.
#[derive(Debug, PartialEq)]
pub(crate) enum Step {
    /// Open a session to a provider (from the request's hints or a lookup).
    Open { peer: PeerId, addrs: Vec<Multiaddr> },
    /// End the session to a provider (it lied, failed or was too slow).
    Close(PeerId),
    /// Ask a provider for a piece.
    Get { peer: PeerId, piece: u32, span: ChunkSpan },
    /// Withdraw a request (the piece came from someone else).
    Cancel { peer: PeerId, span: ChunkSpan },
    /// Ask a partial provider again which ranges it has.
    AskHave(PeerId),
    /// Ask a provider for the last chunk of a blob of `size` bytes with its proof, to check the size it
    /// claims; report the outcome with [`Fetch::on_size_proof`].
    Probe { peer: PeerId, size: u64, span: ChunkSpan },
    /// Start a provider lookup; report what it finds with [`Fetch::on_found`], its end with
    /// [`Fetch::on_lookup_done`].
    Lookup,
    /// Make the verified ranges durable (the previous checkpoint has finished).
    Checkpoint,
    /// Tell the progress watchers: providers in the download and their rates.
    Publish { peers: usize, per_peer: Vec<PeerRate> },
}

/// What a `Have` answer means for the loop.
#[derive(Debug, PartialEq)]
pub(crate) enum Answer {
    /// The size is proven: open the partial file for `size` bytes, then call [`Fetch::begin`].
    Begin { size: u64, collection: bool },
    /// Carried out.
    Steps(Vec<Step>),
}

/// What this blob's download contributed, for the report.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) peers: HashMap<PeerId, PeerReport>,
    pub(crate) received: u64,
    pub(crate) resumed: u64,
}

impl Tally {
    pub(crate) fn peer(&mut self, p: PeerId) -> &mut PeerReport {
        self.peers.entry(p).or_insert_with(|| PeerReport { peer: p.to_string(), bytes: 0, received: 0, dropped: None })
    }
}

/// A finished blob, as [`Fetch::finish`] sums it up.
pub(crate) struct Done {
    pub(crate) size: u64,
    pub(crate) collection: bool,
    pub(crate) transfer_secs: f64,
    /// Providers still in the download (those that answered first): the next files of a folder ask them.
    pub(crate) working: Vec<(PeerId, Vec<Multiaddr>)>,
}
