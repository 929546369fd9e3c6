//! The tls check: connect, complete a TLS handshake, and read the certificate's expiry.
//!
//! The handshake accepts any certificate (an expired or self-signed one is exactly what this
//! check exists to report), but still checks the handshake signatures. With `tls_verify`
//! the chain is then verified against Mozilla's roots and a failure is reported.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use time::OffsetDateTime;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;

use super::net::{self, ConnectError};

/// What the handshake showed.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub not_after: OffsetDateTime,
    pub subject: String,
    pub issuer: String,
    /// Set when verification was asked for and failed.
    pub verify_error: Option<String>,
}

/// A verifier that takes any certificate but still checks the handshake's signatures with
/// it: the tls check's, and the HTTP client's when `tls_verify` is off.
#[derive(Debug)]
pub struct AcceptAny {
    algs: WebPkiSupportedAlgorithms,
}

impl AcceptAny {
    pub fn new() -> AcceptAny {
        AcceptAny { algs: provider().signature_verification_algorithms }
    }
}

impl Default for AcceptAny {
    fn default() -> AcceptAny {
        AcceptAny::new()
    }
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

/// The crypto provider of every TLS connection pitcrew makes: rustls on ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The tls check's client configuration (any certificate), made once.
fn accept_any_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let config = rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny::new()))
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

/// Connect to `host:port`, handshake with `server_name`, and read the leaf certificate, all
/// within `timeout`.
pub async fn inspect(
    host: &str,
    port: u16,
    server_name: &str,
    timeout: Duration,
    verify: bool,
) -> Result<CertInfo, String> {
    let deadline = Instant::now() + timeout;
    let sock = net::connect(host, port, deadline).await.map_err(|e| match e {
        ConnectError::Resolve(e) => format!("cannot resolve {host}: {e}"),
        ConnectError::NoAddress => format!("no address for {host}"),
        ConnectError::ResolveTimeout | ConnectError::Timeout => "timed out connecting".into(),
        ConnectError::Io(a, e) => format!("connect {a}: {e}"),
    })?;
    let config = accept_any_config()?;
    let name =
        ServerName::try_from(server_name.to_string()).map_err(|e| format!("bad server name '{server_name}': {e}"))?;
    let tls = match timeout_at(deadline, TlsConnector::from(config).connect(name.clone(), sock)).await {
        Err(_) => return Err("TLS handshake timed out".into()),
        Ok(Err(e)) => return Err(format!("TLS handshake: {e}")),
        Ok(Ok(s)) => s,
    };
    let chain: Vec<CertificateDer<'static>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .ok_or("the server sent no certificate")?
        .iter()
        .map(|c| c.clone().into_owned())
        .collect();
    drop(tls);
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
