//! The security upgrade of TCP connections: libp2p's TLS 1.3 handshake (`/tls/1.0.0`) with the cipher
//! the CPU runs fastest, and Noise (`/noise`) for peers that offer only that. Our dialers offer TLS alone
//! (see `crate::upgrade`); the listener accepts either.
//!
//! Why not `libp2p::tls::Config` or Noise alone: both encrypt with ChaCha20-Poly1305 (libp2p-tls lists it
//! first and its servers follow the client's order). On a CPU with AES instructions AES-GCM costs a
//! fraction of that: profiling a 1 GiB download on the 2-core development machine, ChaCha20-Poly1305 took
//! 28% of the downloader's CPU, AES-GCM under 5%, and throughput went from about 700 MB/s to about
//! 1,000 MB/s (`shoal-bench`, docs/ARCHITECTURE.md). The handshake, certificate and checks are libp2p's
//! (the `libp2p-tls` certificate code does the parsing and signature checks), so any libp2p TLS peer
//! can connect; only the suite preference is ours, and our server side applies it whoever dials.
//!
//! The peer id is taken from the certificate's libp2p extension, whose signature by the host key
//! `libp2p_tls::certificate::parse` verifies; the swarm then checks it against the dialled `/p2p/` id.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use futures::future::{BoxFuture, Either};
use futures::{AsyncRead, AsyncWrite, FutureExt, TryFutureExt};
use futures_rustls::TlsStream;
use libp2p::core::UpgradeInfo;
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade};
use libp2p::identity::Keypair;
use libp2p::{PeerId, noise};
use libp2p_tls::certificate;
use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::crypto::aws_lc_rs::cipher_suite::{
    TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ResolvesServerCert;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{CommonState, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::NetError;

/// multistream-select names, in our order of preference.
pub(crate) const TLS_PROTOCOL: &str = "/tls/1.0.0";
const NOISE_PROTOCOL: &str = "/noise";
/// ALPN value the libp2p TLS spec requires.
const ALPN: &[u8] = b"libp2p";

/// Why a connection's security handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum SecureError {
    /// The TLS handshake broke off or a check in it failed.
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    /// The handshake completed, but the certificate is not a libp2p certificate.
    #[error("the peer's TLS certificate is not a valid libp2p certificate: {0}")]
    Certificate(#[from] certificate::ParseError),
    /// libp2p allows exactly one certificate.
    #[error("the peer presented {0} TLS certificates; libp2p requires exactly one")]
    CertificateCount(usize),
    /// The Noise fallback failed.
    #[error("Noise handshake failed: {0}")]
    Noise(#[from] noise::Error),
}

/// The connection upgrade: TLS first, Noise as the fallback (see the module docs).
#[derive(Clone)]
pub(crate) struct SecureUpgrade {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    noise: noise::Config,
}

impl SecureUpgrade {
    pub(crate) fn new(key: &Keypair) -> Result<Self, NetError> {
        let err = |what: &str, e: &dyn std::fmt::Display| NetError::Transport(format!("{what}: {e}"));
        // One certificate for all connections (the spec allows reusing it); its key is not the host key,
        // which only signs the certificate's libp2p extension.
        let (cert, cert_key) = certificate::generate(key).map_err(|e| err("generating the TLS certificate", &e))?;
        let provider = Arc::new(provider(aes_in_hardware()));
        // rustls's own certificate loaders run webpki, which refuses the libp2p extension (it is marked
        // critical); the resolver hands the certificate over as it is.
        let signer =
            provider.key_provider.load_private_key(cert_key).map_err(|e| err("loading the TLS certificate key", &e))?;
        let resolver = Arc::new(OwnCertificate(Arc::new(CertifiedKey::new(vec![cert], signer))));
        let verifier = Arc::new(Libp2pVerifier);
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| err("TLS server configuration", &e))?
            .with_client_cert_verifier(verifier.clone())
            .with_cert_resolver(resolver.clone());
        server.alpn_protocols = vec![ALPN.to_vec()];
        // Our preference, not the client's: libp2p-tls clients list ChaCha20 first.
        server.ignore_client_order = true;
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| err("TLS client configuration", &e))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(resolver);
        client.alpn_protocols = vec![ALPN.to_vec()];
        let noise = noise::Config::new(key).map_err(|e| err("Noise configuration", &e))?;
        Ok(Self { server: Arc::new(server), client: Arc::new(client), noise })
    }

    /// The cipher suite a connection between two of these upgrades agrees on (for tests and logs).
    #[cfg(test)]
    fn preferred_suite(&self) -> Option<rustls::CipherSuite> {
        self.server.crypto_provider().cipher_suites.first().map(|s| s.suite())
    }
}

/// Whether AES-GCM runs in hardware here (AES and carry-less multiply instructions).
fn aes_in_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes") && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// TLS 1.3 suites only (the libp2p spec forbids older versions), fastest first for this CPU.
fn provider(aes: bool) -> CryptoProvider {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    p.cipher_suites = if aes {
        vec![TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256]
    } else {
        vec![TLS13_CHACHA20_POLY1305_SHA256, TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384]
    };
    p
}

impl UpgradeInfo for SecureUpgrade {
    type Info = &'static str;
    type InfoIter = [&'static str; 2];

    fn protocol_info(&self) -> Self::InfoIter {
        [TLS_PROTOCOL, NOISE_PROTOCOL]
    }
}

pub(crate) type SecureStream<C> = Either<TlsStream<C>, noise::Output<C>>;

impl<C> InboundConnectionUpgrade<C> for SecureUpgrade
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = (PeerId, SecureStream<C>);
    type Error = SecureError;
    type Future = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn upgrade_inbound(self, socket: C, info: Self::Info) -> Self::Future {
        if info == TLS_PROTOCOL {
            async move {
                let stream =
                    futures_rustls::TlsAcceptor::from(self.server).accept(socket).await.map_err(SecureError::Tls)?;
                let peer = peer_of(stream.get_ref().1)?;
                Ok((peer, Either::Left(TlsStream::Server(stream))))
            }
            .boxed()
        } else {
            self.noise.upgrade_inbound(socket, info).map_ok(|(p, s)| (p, Either::Right(s))).err_into().boxed()
        }
    }
}

impl<C> OutboundConnectionUpgrade<C> for SecureUpgrade
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = (PeerId, SecureStream<C>);
    type Error = SecureError;
    type Future = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn upgrade_outbound(self, socket: C, info: Self::Info) -> Self::Future {
        if info == TLS_PROTOCOL {
            async move {
                // The spec forbids SNI; an unspecified IP address turns it off in rustls.
                let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::UNSPECIFIED).into());
                let stream = futures_rustls::TlsConnector::from(self.client)
                    .connect(name, socket)
                    .await
                    .map_err(SecureError::Tls)?;
                let peer = peer_of(stream.get_ref().1)?;
                Ok((peer, Either::Left(TlsStream::Client(stream))))
            }
            .boxed()
        } else {
            self.noise.upgrade_outbound(socket, info).map_ok(|(p, s)| (p, Either::Right(s))).err_into().boxed()
        }
    }
}

/// Our one certificate, for every handshake on either side.
#[derive(Debug)]
struct OwnCertificate(Arc<CertifiedKey>);

impl ResolvesServerCert for OwnCertificate {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl ResolvesClientCert for OwnCertificate {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The peer id in the one certificate the handshake accepted.
fn peer_of(state: &CommonState) -> Result<PeerId, SecureError> {
    match state.peer_certificates() {
        Some([cert]) => Ok(certificate::parse(cert)?.peer_id()),
        other => Err(SecureError::CertificateCount(other.map_or(0, <[_]>::len))),
    }
}

/// The libp2p rules for both sides' certificates: exactly one, self-signed, with a libp2p extension
/// signed by the host key (all checked by `certificate::parse`), and handshake signatures made with
/// the certificate's key. No CA, no names, no dates beyond what `parse` checks.
#[derive(Debug)]
struct Libp2pVerifier;

impl Libp2pVerifier {
    fn check_chain(end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> Result<(), rustls::Error> {
        if !intermediates.is_empty() {
            return Err(rustls::Error::General("libp2p TLS requires exactly one certificate".into()));
        }
        certificate::parse(end_entity)?;
        Ok(())
    }

    fn check_signature(
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        certificate::parse(cert)?.verify_signature(dss.scheme, message, dss.signature())?;
        Ok(HandshakeSignatureValid::assertion())
    }

    /// The configs allow TLS 1.3 only, so rustls never asks; refuse rather than trust if it ever did.
    fn refuse_tls12() -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("libp2p TLS is TLS 1.3 only".into()))
    }

    fn schemes() -> Vec<SignatureScheme> {
        use SignatureScheme::*;
        vec![
            ECDSA_NISTP384_SHA384,
            ECDSA_NISTP256_SHA256,
            ED25519,
            RSA_PSS_SHA512,
            RSA_PSS_SHA384,
            RSA_PSS_SHA256,
            RSA_PKCS1_SHA512,
            RSA_PKCS1_SHA384,
            RSA_PKCS1_SHA256,
        ]
    }
}

impl ServerCertVerifier for Libp2pVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Self::check_chain(end_entity, intermediates)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Self::refuse_tls12()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Self::check_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        Self::schemes()
    }
}

impl ClientCertVerifier for Libp2pVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Self::check_chain(end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Self::refuse_tls12()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Self::check_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        Self::schemes()
    }
}

#[cfg(test)]
mod tests {
    use futures::{AsyncReadExt, AsyncWriteExt};
    use multistream_select::{Negotiated, Version, dialer_select_proto, listener_select_proto};
    use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

    use super::*;

    type Io = Compat<tokio::net::TcpStream>;

    /// What the swarm does on an outgoing connection: agree on a protocol with multistream-select, then
    /// run that protocol's upgrade.
    async fn dial<U>(io: Io, up: U) -> Result<U::Output, String>
    where
        U: OutboundConnectionUpgrade<Negotiated<Io>, Info = &'static str>,
        U::Error: std::fmt::Display,
    {
        let (info, io) = dialer_select_proto(io, up.protocol_info(), Version::V1).await.map_err(|e| e.to_string())?;
        up.upgrade_outbound(io, info).await.map_err(|e| e.to_string())
    }

    async fn accept<U>(io: Io, up: U) -> Result<U::Output, String>
    where
        U: InboundConnectionUpgrade<Negotiated<Io>, Info = &'static str>,
        U::Error: std::fmt::Display,
    {
        let (info, io) = listener_select_proto(io, up.protocol_info()).await.map_err(|e| e.to_string())?;
        up.upgrade_inbound(io, info).await.map_err(|e| e.to_string())
    }

    /// A connected pair of loopback TCP sockets, as futures-io streams.
    async fn pair() -> (Io, Io) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (dialed, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        (dialed.unwrap().compat(), accepted.unwrap().0.compat())
    }

    fn tls_suite<C>(s: &SecureStream<C>) -> Option<rustls::CipherSuite> {
        match s {
            Either::Left(TlsStream::Client(c)) => c.get_ref().1.negotiated_cipher_suite().map(|s| s.suite()),
            Either::Left(TlsStream::Server(c)) => c.get_ref().1.negotiated_cipher_suite().map(|s| s.suite()),
            Either::Right(_) => None,
        }
    }

    async fn echo_one_way(mut from: impl AsyncWrite + Unpin, mut to: impl AsyncRead + Unpin) {
        from.write_all(b"shoal").await.unwrap();
        from.flush().await.unwrap();
        let mut buf = [0u8; 5];
        to.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"shoal");
    }

    #[test]
    fn aes_gcm_comes_first_only_with_hardware_aes() {
        let first = |aes| provider(aes).cipher_suites.first().map(|s| s.suite());
        assert_eq!(first(true), Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256));
        assert_eq!(first(false), Some(rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256));
        let up = SecureUpgrade::new(&Keypair::generate_ed25519()).unwrap();
        assert_eq!(up.preferred_suite(), first(aes_in_hardware()));
    }

    #[tokio::test]
    async fn two_shoal_peers_use_tls_with_the_preferred_suite_and_learn_each_others_ids() {
        let (a, b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let (ua, ub) = (SecureUpgrade::new(&a).unwrap(), SecureUpgrade::new(&b).unwrap());
        let want = ua.preferred_suite();
        let (ca, cb) = pair().await;
        let (ra, rb) = tokio::join!(dial(ca, ua), accept(cb, ub));
        let ((peer_b, sa), (peer_a, sb)) = (ra.unwrap(), rb.unwrap());
        assert_eq!(peer_b, b.public().to_peer_id());
        assert_eq!(peer_a, a.public().to_peer_id());
        assert_eq!(tls_suite(&sa), want);
        assert_eq!(tls_suite(&sb), want);
        echo_one_way(sa, sb).await;
    }

    #[tokio::test]
    async fn a_stock_libp2p_tls_client_gets_our_suite_order() {
        // libp2p-tls clients list ChaCha20 first; our server picks by its own order.
        let (a, b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let stock = libp2p_tls::Config::new(&a).unwrap();
        let ours = SecureUpgrade::new(&b).unwrap();
        let want = ours.preferred_suite();
        let (ca, cb) = pair().await;
        let (ra, rb) = tokio::join!(dial(ca, stock), accept(cb, ours));
        let ((peer_b, sa), (peer_a, sb)) = (ra.unwrap(), rb.unwrap());
        assert_eq!((peer_a, peer_b), (a.public().to_peer_id(), b.public().to_peer_id()));
        assert_eq!(tls_suite(&sb), want);
        echo_one_way(sa, sb).await;
    }

    #[tokio::test]
    async fn a_noise_only_peer_still_connects() {
        let (a, b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let noise_only = noise::Config::new(&a).unwrap();
        let ours = SecureUpgrade::new(&b).unwrap();
        let (ca, cb) = pair().await;
        let (ra, rb) = tokio::join!(dial(ca, noise_only), accept(cb, ours));
        let ((peer_b, sa), (peer_a, sb)) = (ra.unwrap(), rb.unwrap());
        assert_eq!((peer_a, peer_b), (a.public().to_peer_id(), b.public().to_peer_id()));
        assert!(matches!(sb, Either::Right(_)), "the listener should have fallen back to Noise");
        echo_one_way(sa, sb).await;
    }

    #[tokio::test]
    async fn a_garbage_handshake_is_an_error_not_a_panic() {
        let ours = SecureUpgrade::new(&Keypair::generate_ed25519()).unwrap();
        let (mut ca, cb) = pair().await;
        let writer = async move {
            // A multistream header naming TLS, then bytes that are no TLS record.
            ca.write_all(b"\x13/multistream/1.0.0\n\x0b/tls/1.0.0\n").await.unwrap();
            ca.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8]).await.unwrap();
            ca.flush().await.unwrap();
            ca.close().await.ok();
        };
        let (_, r) = tokio::join!(writer, accept(cb, ours));
        assert!(r.is_err());
    }
}
