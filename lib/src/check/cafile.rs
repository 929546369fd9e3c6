//! `ca_file` as curl reads it: a certificate in the file may be the server's own.
//!
//! rustls verifies with webpki, which builds a chain from the server's certificate up to a
//! trust anchor and refuses a server certificate that is itself a CA (`CaUsedAsEndEntity`).
//! The ordinary self-signed certificate `openssl req -x509` makes has basicConstraints CA:TRUE,
//! so webpki rejects it even when it is the very certificate put in `ca_file`; curl, wget and
//! Python accept it. The HTTP client ([`super::http`]) therefore verifies the TLS of every
//! request that names a `ca_file` with [`CaFileVerifier`]: webpki's verification first, and
//! when that fails, a server certificate byte for byte equal to one of the file's is accepted
//! after its name and validity dates are checked here. The handshake's signatures are always
//! checked with webpki's algorithms against the presented certificate, so the server proves it
//! holds that certificate's key. Requests without a `ca_file` are verified by webpki against
//! Mozilla's roots, untouched.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore};

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
