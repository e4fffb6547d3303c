//! How a TCP connection becomes a secured, multiplexed libp2p connection, in as few round trips as the
//! protocols allow.
//!
//! libp2p's transport builder (`upgrade().authenticate().multiplex()`) negotiates each step with
//! multistream-select and offers the same list in both directions. With two security protocols on offer
//! (TLS, then Noise) the dialer must wait a whole round trip for the listener's choice before it may send
//! its first handshake message, whatever `Version` is chosen: `V1Lazy` only skips that wait for a single
//! offer. Here the two directions differ:
//! - the **dialer** offers TLS alone and sends its ClientHello right behind the proposal (`V1Lazy`), then
//!   yamux the same way: a new connection costs TCP's handshake and TLS's, nothing more;
//! - the **listener** still accepts TLS or Noise ([`crate::secure`]), so other libp2p peers that offer only
//!   Noise connect as before.
//!
//! What is given up: dialing a peer that speaks Noise only fails (its listener answers `na` to TLS) where
//! the builder would have fallen back. Every Shoal peer accepts TLS. Over a 100 ms link the connection was
//! ready about one round trip sooner (docs/PERFORMANCE.md, "Real links").

use std::time::Duration;

use futures::{AsyncRead, AsyncWrite, AsyncWriteExt};
use libp2p::PeerId;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::timeout::TransportTimeout;
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade};
use libp2p::core::{ConnectedPoint, Transport, UpgradeInfo};
use libp2p::tcp;
use multistream_select::{NegotiationError, Version, dialer_select_proto, listener_select_proto};

use crate::mux::Yamux;
use crate::secure::{SecureError, SecureUpgrade, TLS_PROTOCOL};

/// Read buffer under the security layer on TCP connections. libp2p-noise reads its frames 8 KiB at a time
/// and rustls its records 4 KiB at a time; straight from the socket that is one `recvfrom` per few KiB
/// (131,072 per GiB at 8 KiB, over a second of system CPU on the 2-core development machine). A buffer
/// below it turns those into memory copies and a few large reads.
const TCP_READ_BUFFER: usize = 256 * 1024;

/// How long a connection may take from TCP's handshake to a ready muxer.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a TCP connection could not be upgraded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpgradeError {
    /// The peers agreed on no protocol for a step (for a dialer: the peer does not accept TLS).
    #[error("no common protocol for the {step}: {source}")]
    Negotiation {
        step: &'static str,
        #[source]
        source: NegotiationError,
    },
    /// The security handshake failed.
    #[error(transparent)]
    Secure(#[from] SecureError),
    /// The muxer could not start.
    #[error("starting yamux failed: {0}")]
    Mux(std::io::Error),
}

fn negotiation(step: &'static str) -> impl FnOnce(NegotiationError) -> UpgradeError {
    move |source| UpgradeError::Negotiation { step, source }
}

/// TCP + TLS 1.3 (Noise accepted from dialers that offer only that) + Yamux, with a read buffer under the
/// security layer (see [`TCP_READ_BUFFER`]).
pub(crate) fn tcp_transport(secure: SecureUpgrade) -> libp2p::core::transport::Boxed<(PeerId, StreamMuxerBox)> {
    let transport = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .map(|stream, _| futures::io::BufReader::with_capacity(TCP_READ_BUFFER, stream))
        .and_then(move |conn, endpoint| upgrade(conn, endpoint, secure.clone()));
    TransportTimeout::new(transport, UPGRADE_TIMEOUT).boxed()
}

/// Secures and multiplexes one connection; `endpoint` says which side we are (a hole punch may make the
/// dialer act as the listener, as libp2p's own upgrade honours).
async fn upgrade<C>(
    conn: C,
    endpoint: ConnectedPoint,
    secure: SecureUpgrade,
) -> Result<(PeerId, StreamMuxerBox), UpgradeError>
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let yamux = Yamux::default();
    let dialer = matches!(endpoint, ConnectedPoint::Dialer { role_override, .. } if role_override.is_dialer());
    if dialer {
        let (info, io) =
            dialer_select_proto(conn, [TLS_PROTOCOL], Version::V1Lazy).await.map_err(negotiation("security"))?;
        let (peer, secured) = secure.upgrade_outbound(io, info).await?;
        let (info, mut io) =
            dialer_select_proto(secured, yamux.protocol_info(), Version::V1Lazy).await.map_err(negotiation("muxer"))?;
        // `V1Lazy` holds the proposal until something is written behind it, and yamux writes nothing until a
        // stream opens: without this flush the listener's upgrade would wait for our first stream.
        io.flush().await.map_err(UpgradeError::Mux)?;
        let muxer = yamux.upgrade_outbound(io, info).await.map_err(UpgradeError::Mux)?;
        Ok((peer, StreamMuxerBox::new(muxer)))
    } else {
        let (info, io) = listener_select_proto(conn, secure.protocol_info()).await.map_err(negotiation("security"))?;
        let (peer, secured) = secure.upgrade_inbound(io, info).await?;
        let (info, io) = listener_select_proto(secured, yamux.protocol_info()).await.map_err(negotiation("muxer"))?;
        let muxer = yamux.upgrade_inbound(io, info).await.map_err(UpgradeError::Mux)?;
        Ok((peer, StreamMuxerBox::new(muxer)))
    }
}

#[cfg(test)]
mod tests {
    use futures::AsyncReadExt;
    use libp2p::core::Endpoint;
    use libp2p::core::transport::PortUse;
    use libp2p::identity::Keypair;

    use super::*;
    use crate::mux::tests::pair;

    fn dialer() -> ConnectedPoint {
        ConnectedPoint::Dialer {
            address: "/ip4/127.0.0.1/tcp/1".parse().unwrap(),
            role_override: Endpoint::Dialer,
            port_use: PortUse::New,
        }
    }

    fn listener() -> ConnectedPoint {
        ConnectedPoint::Listener {
            local_addr: "/ip4/127.0.0.1/tcp/1".parse().unwrap(),
            send_back_addr: "/ip4/127.0.0.1/tcp/2".parse().unwrap(),
        }
    }

    #[tokio::test]
    async fn the_dialer_sends_its_tls_hello_without_waiting_for_the_listener() {
        let (a, mut b) = pair().await;
        let up = SecureUpgrade::new(&Keypair::generate_ed25519()).unwrap();
        let dial = tokio::spawn(upgrade(a, dialer(), up));
        // Nothing is written back: a dialer that waited for the listener's choice (two offers, or `V1`)
        // would stop after the protocol names.
        let want = b"\x13/multistream/1.0.0\n\x0b/tls/1.0.0\n";
        let mut got = vec![0u8; want.len() + 1];
        let read = tokio::time::timeout(Duration::from_secs(5), b.read_exact(&mut got)).await;
        assert!(read.is_ok_and(|r| r.is_ok()), "the dialer sent no more than the protocol names");
        assert_eq!(&got[..want.len()], want, "the dialer offers TLS alone");
        assert_eq!(got[want.len()], 0x16, "a TLS handshake record follows the proposal at once");
        dial.abort();
    }

    #[tokio::test]
    async fn two_peers_connect_and_learn_each_others_ids() {
        let (ka, kb) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let (a, b) = pair().await;
        let (ra, rb) = tokio::join!(
            upgrade(a, dialer(), SecureUpgrade::new(&ka).unwrap()),
            upgrade(b, listener(), SecureUpgrade::new(&kb).unwrap())
        );
        let ((peer_b, _), (peer_a, _)) = (ra.unwrap(), rb.unwrap());
        assert_eq!((peer_a, peer_b), (ka.public().to_peer_id(), kb.public().to_peer_id()));
    }

    #[tokio::test]
    async fn a_noise_only_dialer_is_still_accepted() {
        let (ka, kb) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let (a, b) = pair().await;
        let noise_dial = async move {
            let noise = libp2p::noise::Config::new(&ka).unwrap();
            let (info, io) = dialer_select_proto(a, noise.protocol_info(), Version::V1).await.unwrap();
            let (peer, _io) = noise.upgrade_outbound(io, info).await.unwrap();
            peer
        };
        let (peer_b, accepted) = tokio::join!(noise_dial, upgrade(b, listener(), SecureUpgrade::new(&kb).unwrap()));
        assert_eq!(peer_b, kb.public().to_peer_id());
        // The listener reached its muxer step (yamux negotiation needs the dialer; its failure is fine here).
        let accepted_security = match accepted {
            Ok(_) => true,
            Err(UpgradeError::Negotiation { step, .. }) => step == "muxer",
            Err(_) => false,
        };
        assert!(accepted_security);
    }
}
