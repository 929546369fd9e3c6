//! The tls check: connect, complete a TLS handshake, and read the certificate's expiry.
//!
//! The handshake accepts any certificate (an expired or self-signed one is exactly what this
//! check exists to report), but still checks the handshake signatures. With `tls_verify`
//! the chain is then verified against Mozilla's roots and a failure is reported.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use time::OffsetDateTime;

/// What the handshake showed.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub not_after: OffsetDateTime,
    pub subject: String,
    pub issuer: String,
    /// Set when verification was asked for and failed.
    pub verify_error: Option<String>,
}

#[derive(Debug)]
struct AcceptAny {
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algs.supported_schemes()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Connect to `host:port`, handshake with `server_name`, and read the leaf certificate.
pub fn inspect(host: &str, port: u16, server_name: &str, timeout: Duration, verify: bool) -> Result<CertInfo, String> {
    let deadline = Instant::now() + timeout;
    let addrs: Vec<_> = (host, port).to_socket_addrs().map_err(|e| format!("cannot resolve {host}: {e}"))?.collect();
    let mut last_err = format!("no address for {host}");
    let mut sock = None;
    for a in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            last_err = "timed out connecting".into();
            break;
        }
        match TcpStream::connect_timeout(&a, left) {
            Ok(s) => {
                sock = Some(s);
                break;
            }
            Err(e) => last_err = format!("connect {a}: {e}"),
        }
    }
    let mut sock = sock.ok_or(last_err)?;
    let provider = provider();
    let algs = provider.signature_verification_algorithms;
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny { algs }))
        .with_no_client_auth();
    let name =
        ServerName::try_from(server_name.to_string()).map_err(|e| format!("bad server name '{server_name}': {e}"))?;
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name.clone()).map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("TLS handshake timed out".into());
        }
        sock.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        sock.set_write_timeout(Some(left)).map_err(|e| e.to_string())?;
        match conn.complete_io(&mut sock) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err("TLS handshake timed out".into());
            }
            Err(e) => return Err(format!("TLS handshake: {e}")),
        }
    }
    let chain = conn.peer_certificates().ok_or("the server sent no certificate")?.to_vec();
    let leaf = chain.first().ok_or("the server sent no certificate")?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| format!("cannot parse certificate: {e}"))?;
    let not_after =
        OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp()).map_err(|e| e.to_string())?;
    let verify_error = if verify { verify_chain(&chain, &name).err() } else { None };
    Ok(CertInfo { not_after, subject: cert.subject().to_string(), issuer: cert.issuer().to_string(), verify_error })
}

fn verify_chain(chain: &[CertificateDer<'static>], name: &ServerName<'static>) -> Result<(), String> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| e.to_string())?;
    let (leaf, rest) = chain.split_first().ok_or("empty chain")?;
    verifier
        .verify_server_cert(leaf, rest, name, &[], UnixTime::now())
        .map(|_| ())
        .map_err(|e| format!("certificate not trusted: {e}"))
}
