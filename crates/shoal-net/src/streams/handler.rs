//! The `ConnectionHandler` of one connection: offers the registered protocols to the peer's new streams
//! and opens the streams asked for, each negotiation independent of the others (the reply travels with
//! its request as the outbound open info), and the upgrade that names the protocols.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::io;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use libp2p::core::{InboundUpgrade, OutboundUpgrade, UpgradeInfo};
use libp2p::swarm::handler::{ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound};
use libp2p::swarm::{ConnectionHandler, ConnectionHandlerEvent, StreamUpgradeError, SubstreamProtocol};
use libp2p::{PeerId, Stream, StreamProtocol};
use tokio::sync::{mpsc, oneshot};

use super::shared::Shared;
use super::{NewStream, OpenStreamError};

type Reply = oneshot::Sender<Result<Stream, OpenStreamError>>;

pub(crate) struct Handler {
    remote: PeerId,
    shared: Arc<Mutex<Shared>>,
    requests: mpsc::Receiver<NewStream>,
}

impl Handler {
    pub(super) fn new(remote: PeerId, shared: Arc<Mutex<Shared>>, requests: mpsc::Receiver<NewStream>) -> Self {
        Self { remote, shared, requests }
    }
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Infallible;
    type InboundProtocol = Upgrade;
    type OutboundProtocol = Upgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = (StreamProtocol, Reply);

    fn listen_protocol(&self) -> SubstreamProtocol<Upgrade, ()> {
        SubstreamProtocol::new(Upgrade(Shared::lock(&self.shared).protocols()), ())
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Upgrade, Self::OutboundOpenInfo, Infallible>> {
        while let Poll::Ready(Some(request)) = self.requests.poll_recv(cx) {
            if request.reply.is_closed() {
                continue; // its caller gave up while it waited
            }
            let protocol =
                SubstreamProtocol::new(Upgrade(vec![request.protocol.clone()]), (request.protocol, request.reply));
            return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest { protocol });
        }
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, event: Infallible) {
        match event {}
    }

    fn on_connection_event(&mut self, event: ConnectionEvent<Upgrade, Upgrade, (), Self::OutboundOpenInfo>) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: (stream, protocol), ..
            }) => {
                Shared::lock(&self.shared).on_inbound(self.remote, stream, protocol);
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: (stream, _),
                info: (_, reply),
            }) => {
                let _ = reply.send(Ok(stream));
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { error, info: (protocol, reply) }) => {
                let err = match error {
                    StreamUpgradeError::NegotiationFailed => OpenStreamError::UnsupportedProtocol(protocol),
                    StreamUpgradeError::Timeout => OpenStreamError::Io(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the peer did not agree to {protocol} in time"),
                    )),
                    StreamUpgradeError::Io(e) => OpenStreamError::Io(e),
                    StreamUpgradeError::Apply(never) => match never {},
                };
                let _ = reply.send(Err(err));
            }
            _ => {}
        }
    }
}

/// The protocols a stream may be opened for: the registered ones inbound, the one asked for outbound.
pub(crate) struct Upgrade(Vec<StreamProtocol>);

impl UpgradeInfo for Upgrade {
    type Info = StreamProtocol;
    type InfoIter = std::vec::IntoIter<StreamProtocol>;

    fn protocol_info(&self) -> Self::InfoIter {
        self.0.clone().into_iter()
    }
}

impl InboundUpgrade<Stream> for Upgrade {
    type Output = (Stream, StreamProtocol);
    type Error = Infallible;
    type Future = Ready<Result<Self::Output, Infallible>>;

    fn upgrade_inbound(self, stream: Stream, protocol: StreamProtocol) -> Self::Future {
        ready(Ok((stream, protocol)))
    }
}

impl OutboundUpgrade<Stream> for Upgrade {
    type Output = (Stream, StreamProtocol);
    type Error = Infallible;
    type Future = Ready<Result<Self::Output, Infallible>>;

    fn upgrade_outbound(self, stream: Stream, protocol: StreamProtocol) -> Self::Future {
        ready(Ok((stream, protocol)))
    }
}
