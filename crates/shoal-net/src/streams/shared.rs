//! What the behaviour, the connection handlers and every [`Control`](super::Control) share, behind one
//! mutex held only for bookkeeping (never across an await or an I/O call).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use libp2p::swarm::ConnectionId;
use libp2p::{PeerId, Stream, StreamProtocol};
use tokio::sync::mpsc;

use super::{AlreadyRegistered, INBOUND_QUEUE, IncomingStreams, NewStream, OpenStreamError};

/// Outbound requests one connection's handler may have queued (requests waiting for a dial are moved
/// into that queue, so the two bounds are equal).
pub(crate) const REQUESTS_PER_CONNECTION: usize = 64;
/// Peers with requests waiting for a connection at once.
const MAX_PENDING_PEERS: usize = 1024;

/// One connection's handler as the shared state knows it.
struct Conn {
    peer: PeerId,
    /// False until the swarm reports the connection established: a handler is made before the other
    /// behaviours have had their say, and one of them may still deny the connection.
    established: bool,
    requests: mpsc::Sender<NewStream>,
}

#[derive(Default)]
pub(crate) struct Shared {
    inbound: HashMap<StreamProtocol, mpsc::Sender<(PeerId, Stream)>>,
    conns: HashMap<ConnectionId, Conn>,
    /// Requests for peers with no connection, in the order made, until one is established or dialing fails.
    pending: HashMap<PeerId, Vec<NewStream>>,
    dials: VecDeque<PeerId>,
    waker: Option<Waker>,
    dropped_inbound: u64,
}

impl Shared {
    pub(crate) fn lock(shared: &Arc<Mutex<Shared>>) -> MutexGuard<'_, Shared> {
        // Nothing here is left half-updated by a panic, so a poisoned lock is still consistent.
        shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn accept(&mut self, protocol: StreamProtocol) -> Result<IncomingStreams, AlreadyRegistered> {
        self.inbound.retain(|_, s| !s.is_closed());
        if self.inbound.contains_key(&protocol) {
            return Err(AlreadyRegistered);
        }
        let (sender, receiver) = mpsc::channel(INBOUND_QUEUE);
        self.inbound.insert(protocol, sender);
        Ok(IncomingStreams { receiver })
    }

    /// The protocols a peer's new stream may choose from.
    pub(crate) fn protocols(&mut self) -> Vec<StreamProtocol> {
        self.inbound.retain(|_, s| !s.is_closed());
        self.inbound.keys().cloned().collect()
    }

    pub(crate) fn on_inbound(&mut self, peer: PeerId, stream: Stream, protocol: StreamProtocol) {
        let Entry::Occupied(entry) = self.inbound.entry(protocol) else {
            return; // given up since the negotiation: dropping the stream resets it
        };
        match entry.get().try_send((peer, stream)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped_inbound += 1;
                tracing::debug!(%peer, protocol = %entry.key(), "{INBOUND_QUEUE} incoming streams wait already; resetting this one");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                entry.remove();
            }
        }
    }

    pub(crate) fn dropped_inbound(&self) -> u64 {
        self.dropped_inbound
    }

    /// Where a request goes: the queue of an established connection to `peer` (returned, for the caller
    /// to wait on outside the lock), or the requests waiting for a connection (a dial asked for the first).
    pub(crate) fn route(
        &mut self,
        peer: PeerId,
        request: NewStream,
    ) -> Result<Option<(mpsc::Sender<NewStream>, NewStream)>, OpenStreamError> {
        let conn = self.conns.values().find(|c| c.peer == peer && c.established && !c.requests.is_closed());
        if let Some(c) = conn {
            return Ok(Some((c.requests.clone(), request)));
        }
        if !self.pending.contains_key(&peer) && self.pending.len() >= MAX_PENDING_PEERS {
            return Err(too_many(format!("{MAX_PENDING_PEERS} peers have streams waiting for a connection")));
        }
        let waiting = self.pending.entry(peer).or_default();
        // Callers that gave up (their timeout) hold no place in the bound.
        waiting.retain(|r| !r.reply.is_closed());
        if waiting.len() >= REQUESTS_PER_CONNECTION {
            return Err(too_many(format!("{REQUESTS_PER_CONNECTION} streams to {peer} wait for a connection")));
        }
        waiting.push(request);
        if waiting.len() == 1 {
            self.dials.push_back(peer);
            if let Some(w) = self.waker.take() {
                w.wake();
            }
        }
        Ok(None)
    }

    /// A handler was made for `conn`; the receiver is its queue of requests.
    pub(crate) fn new_handler(&mut self, conn: ConnectionId, peer: PeerId) -> mpsc::Receiver<NewStream> {
        let (requests, receiver) = mpsc::channel(REQUESTS_PER_CONNECTION);
        self.conns.insert(conn, Conn { peer, established: false, requests });
        receiver
    }

    pub(crate) fn on_established(&mut self, conn: ConnectionId) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        c.established = true;
        for request in self.pending.remove(&c.peer).unwrap_or_default() {
            // Both bounds are REQUESTS_PER_CONNECTION and the handler has taken none yet, so this fits.
            if let Err(mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r)) =
                c.requests.try_send(request)
            {
                let _ = r.reply.send(Err(super::gone()));
            }
        }
    }

    /// The connection closed, or was denied before it was established.
    pub(crate) fn on_closed(&mut self, conn: ConnectionId) {
        self.conns.remove(&conn);
    }

    /// Dialing `peer` failed: the requests waiting for it fail with the reason.
    pub(crate) fn on_dial_failure(&mut self, peer: PeerId, reason: &str) {
        for request in self.pending.remove(&peer).unwrap_or_default() {
            let err = io::Error::new(io::ErrorKind::NotConnected, format!("could not connect to {peer}: {reason}"));
            let _ = request.reply.send(Err(OpenStreamError::Io(err)));
        }
    }

    /// The next peer to dial for waiting requests; else remembers who to wake when there is one.
    pub(crate) fn next_dial(&mut self, waker: &Waker) -> Option<PeerId> {
        while let Some(peer) = self.dials.pop_front() {
            if self.pending.contains_key(&peer) {
                return Some(peer);
            }
        }
        self.waker = Some(waker.clone());
        None
    }
}

fn too_many(what: String) -> OpenStreamError {
    OpenStreamError::Io(io::Error::new(io::ErrorKind::WouldBlock, format!("{what}; try again later")))
}
