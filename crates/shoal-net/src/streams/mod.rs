//! Protocol streams for Shoal's own services: a service registers the protocols it answers and takes the
//! streams peers open for them ([`Control::accept`]), and opens streams to peers ([`Control::open_stream`]),
//! dialing the peer when no connection stands.
//!
//! Why not `libp2p-stream`, whose API this keeps: it hands a protocol's incoming streams over a channel of
//! one slot and resets every stream that arrives while that slot is taken (rust-libp2p#5651), so two peers
//! opening a stream in the same instant lose one of them; a simulator run logged 9,348 such resets, and a
//! hostile-peer test failed one run in fifteen because the flooding peer's only stream was the one reset.
//! It also negotiates one outbound stream per connection at a time, so a second stream to a provider waits
//! a round trip for the first one's protocol choice. Here incoming streams wait in a queue of
//! [`INBOUND_QUEUE`] per protocol (the node's accept loops take them at once; the bound only comes into
//! play if a service stops taking them) and any number of outbound negotiations run at once on a connection.
//!
//! - `shared.rs`: what the behaviour, its handlers and the controls share (registrations, connections,
//!   requests waiting for a dial);
//! - `behaviour.rs`: the `NetworkBehaviour` (handlers per connection, dials, connection bookkeeping);
//! - `handler.rs`: the `ConnectionHandler` of one connection and the upgrade that names the protocols.

mod behaviour;
mod handler;
mod shared;

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use libp2p::{PeerId, Stream, StreamProtocol};
use tokio::sync::{mpsc, oneshot};

pub(crate) use behaviour::Behaviour;
use shared::Shared;

/// Incoming streams of one protocol that may wait for the service to take them. Past it a new stream is
/// reset (and counted: [`Control::dropped_inbound`]).
pub const INBOUND_QUEUE: usize = 256;

/// Why a stream could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenStreamError {
    /// The peer does not answer this protocol (not Shoal, another version, or the service is not running).
    #[error("failed to open a stream: the peer does not support {0}")]
    UnsupportedProtocol(StreamProtocol),
    /// No connection could be made or kept, or the stream could not be set up; trying again may work.
    #[error("failed to open a stream: {0}")]
    Io(#[from] io::Error),
}

/// [`Control::accept`] was called for a protocol that is accepted already (by a live [`IncomingStreams`]).
#[derive(Debug, thiserror::Error)]
#[error("the protocol is already registered: drop its IncomingStreams first")]
pub struct AlreadyRegistered;

/// A request for an outbound stream, on its way to a connection's handler.
#[derive(Debug)]
pub(crate) struct NewStream {
    pub(crate) protocol: StreamProtocol,
    pub(crate) reply: oneshot::Sender<Result<Stream, OpenStreamError>>,
}

/// Opens and accepts protocol streams. Cheap to clone; every clone talks to the same swarm.
#[derive(Clone)]
pub struct Control {
    shared: Arc<Mutex<Shared>>,
}

impl Control {
    pub(crate) fn new(shared: Arc<Mutex<Shared>>) -> Self {
        Self { shared }
    }

    /// Opens a stream to `peer` for `protocol`, on a connection that stands or on one dialed for it.
    pub async fn open_stream(&mut self, peer: PeerId, protocol: StreamProtocol) -> Result<Stream, OpenStreamError> {
        let (reply, answer) = oneshot::channel();
        let request = NewStream { protocol, reply };
        let to_connection = Shared::lock(&self.shared).route(peer, request)?;
        if let Some((sender, request)) = to_connection {
            // The handler's queue is bounded; waiting here is waiting for the connection's task.
            sender.send(request).await.map_err(|_| gone())?;
        }
        answer.await.map_err(|_| gone())?
    }

    /// Takes the incoming streams of `protocol` from now on. Dropping the [`IncomingStreams`] gives the
    /// protocol up (peers' new streams for it are then refused at negotiation).
    pub fn accept(&mut self, protocol: StreamProtocol) -> Result<IncomingStreams, AlreadyRegistered> {
        Shared::lock(&self.shared).accept(protocol)
    }

    /// Incoming streams reset since start because their protocol's queue was full.
    pub fn dropped_inbound(&self) -> u64 {
        Shared::lock(&self.shared).dropped_inbound()
    }
}

fn gone() -> OpenStreamError {
    OpenStreamError::Io(io::Error::new(
        io::ErrorKind::ConnectionReset,
        "the connection closed before the stream was open",
    ))
}

/// The streams peers open for one protocol, with the peer that opened each.
#[must_use = "streams wait in the queue until taken"]
pub struct IncomingStreams {
    receiver: mpsc::Receiver<(PeerId, Stream)>,
}

impl futures::Stream for IncomingStreams {
    type Item = (PeerId, Stream);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.receiver.poll_recv(cx)
    }
}
