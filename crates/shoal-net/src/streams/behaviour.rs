//! The `NetworkBehaviour`: a handler for every connection, dials for requests to peers with none, and
//! the connection bookkeeping that routes requests.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, DialError, DialFailure, FromSwarm, ListenFailure,
    NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

use super::Control;
use super::handler::Handler;
use super::shared::Shared;

#[derive(Default)]
pub(crate) struct Behaviour {
    shared: Arc<Mutex<Shared>>,
}

impl Behaviour {
    pub(crate) fn new_control(&self) -> Control {
        Control::new(self.shared.clone())
    }

    fn handler(&self, conn: ConnectionId, peer: PeerId) -> Handler {
        let requests = Shared::lock(&self.shared).new_handler(conn, peer);
        Handler::new(peer, self.shared.clone(), requests)
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        conn: ConnectionId,
        peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(conn, peer))
    }

    fn handle_established_outbound_connection(
        &mut self,
        conn: ConnectionId,
        peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(conn, peer))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        let mut shared = Shared::lock(&self.shared);
        match event {
            FromSwarm::ConnectionEstablished(e) => shared.on_established(e.connection_id),
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) => shared.on_closed(connection_id),
            // A connection another behaviour denied after ours made its handler.
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => shared.on_closed(connection_id),
            FromSwarm::DialFailure(DialFailure { peer_id, error, connection_id }) => {
                shared.on_closed(connection_id);
                // Not when the dial was skipped because the peer is connected or being dialed already: the
                // requests then wait for that connection.
                let failed = matches!(
                    error,
                    DialError::Transport(_)
                        | DialError::Denied { .. }
                        | DialError::NoAddresses
                        | DialError::WrongPeerId { .. }
                        | DialError::LocalPeerId { .. }
                );
                if let (Some(peer), true) = (peer_id, failed) {
                    shared.on_dial_failure(peer, &error.to_string());
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(&mut self, _peer: PeerId, _conn: ConnectionId, event: THandlerOutEvent<Self>) {
        match event {}
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        match Shared::lock(&self.shared).next_dial(cx.waker()) {
            Some(peer) => Poll::Ready(ToSwarm::Dial {
                opts: DialOpts::peer_id(peer).condition(PeerCondition::DisconnectedAndNotDialing).build(),
            }),
            None => Poll::Pending,
        }
    }
}
