//! `ca_file` as curl reads it: a certificate in the file may be the server's own.
//!
//! rustls verifies with webpki, which builds a chain from the server's certificate up to a
//! trust anchor and refuses a server certificate that is itself a CA (`CaUsedAsEndEntity`).
//! The ordinary self-signed certificate `openssl req -x509` makes has basicConstraints CA:TRUE,
//! so webpki rejects it even when it is the very certificate put in `ca_file`; curl, wget and
//! Python accept it. probe's HTTP agent therefore has one more link in its connector chain,
//! [`CaFileTls`], which handles the TLS of every request whose settings name specific roots
//! (a `ca_file`) with [`CaFileVerifier`]: webpki's verification first, and when that fails, a
//! server certificate byte for byte equal to one of the file's is accepted after its name and
//! validity dates are checked here. The handshake's signatures are always checked with
//! webpki's algorithms against the presented certificate, so the server proves it holds that
//! certificate's key. Requests without a `ca_file` go to ureq's own TLS, untouched.

use std::collections::HashMap;
use std::fmt;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, StreamOwned};
use ureq::tls::{RootCerts, TlsProvider};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport, TransportAdapter,
};

/// webpki's verification, and the certificates of the `ca_file` accepted as they are.
#[derive(Debug)]
pub struct CaFileVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl CaFileVerifier {
    /// A verifier trusting `certs` (a `ca_file`'s): as roots, and each as a server's own.
    pub fn new(certs: &[CertificateDer<'static>], provider: Arc<CryptoProvider>) -> Result<CaFileVerifier, String> {
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(certs.iter().cloned());
        if added == 0 {
            return Err("no usable certificate".into());
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(CaFileVerifier { webpki, pinned: certs.to_vec() })
    }
}

/// The certificate's validity period holds `now`.
fn valid_at(cert: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let validity = parsed.validity();
    if now < validity.not_before.timestamp() {
        return Err(rustls::Error::InvalidCertificate(CertificateError::NotValidYet));
    }
    if now > validity.not_after.timestamp() {
        return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
    }
    Ok(())
}

impl ServerCertVerifier for CaFileVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Ok(v) => Ok(v),
            // The server presents a certificate of the ca_file itself (a self-signed one that
            // says CA:TRUE, typically): trusted as it is, for the names and times it covers.
            Err(rustls::Error::InvalidCertificate(_))
                if self.pinned.iter().any(|c| c.as_ref() == end_entity.as_ref()) =>
            {
                let parsed = ParsedCertificate::try_from(end_entity)?;
                verify_server_name(&parsed, server_name)?;
                valid_at(end_entity, now)?;
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The connector: TLS with a [`CaFileVerifier`] for requests that name specific roots and
/// verify; every other connection passes through to the next link (ureq's TLS).
#[derive(Default)]
pub struct CaFileTls {
    /// Client configurations by the certificates they trust (one per `ca_file`).
    configs: Mutex<HashMap<Vec<Vec<u8>>, Arc<ClientConfig>>>,
}

impl fmt::Debug for CaFileTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaFileTls").finish()
    }
}

impl CaFileTls {
    fn config(&self, certs: &[ureq::tls::Certificate<'static>], sni: bool) -> Result<Arc<ClientConfig>, ureq::Error> {
        let key: Vec<Vec<u8>> = certs.iter().map(|c| c.der().to_vec()).collect();
        let mut configs = self.configs.lock().map_err(|_| ureq::Error::Tls("internal lock poisoned"))?;
        if let Some(c) = configs.get(&key) {
            return Ok(c.clone());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let ders: Vec<CertificateDer<'static>> = key.iter().map(|d| CertificateDer::from(d.clone())).collect();
        let verifier = CaFileVerifier::new(&ders, provider.clone())
            .map_err(|_| ureq::Error::Tls("ca_file holds no usable certificate"))?;
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        config.enable_sni = sni;
        let config = Arc::new(config);
        configs.insert(key, config.clone());
        Ok(config)
    }
}

impl<In: Transport> Connector<In> for CaFileTls {
    type Out = Either<In, CaFileTransport>;

    fn connect(&self, details: &ConnectionDetails, chained: Option<In>) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else { return Ok(None) };
        let tls = details.config.tls_config();
        let RootCerts::Specific(certs) = tls.root_certs() else { return Ok(Some(Either::A(transport))) };
        if !details.needs_tls()
            || transport.is_tls()
            || tls.disable_verification()
            || tls.provider() != TlsProvider::Rustls
        {
            return Ok(Some(Either::A(transport)));
        }
        let config = self.config(certs, tls.use_sni())?;
        let host = details.uri.authority().map(|a| a.host()).unwrap_or_default();
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let name = ServerName::try_from(host.to_string()).map_err(|_| ureq::Error::Tls("invalid server name"))?;
        let mut conn = ClientConnection::new(config, name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        conn.complete_io(&mut sock)?;
        let buffers = LazyBuffers::new(details.config.input_buffer_size(), details.config.output_buffer_size());
        Ok(Some(Either::B(CaFileTransport { buffers, stream: StreamOwned::new(conn, sock) })))
    }
}

/// A TLS connection made by [`CaFileTls`].
pub struct CaFileTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for CaFileTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaFileTransport").finish()
    }
}

impl Transport for CaFileTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let n = self.stream.read(input)?;
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
