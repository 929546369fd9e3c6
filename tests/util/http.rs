//! Real servers on loopback for the tests: an HTTP server (tiny_http) with a handler, a
//! listener that accepts and never answers, and a TLS front (rustls, with certificates made
//! by rcgen) that terminates TLS and relays to a plain server.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

pub use tiny_http::{Header, Response};

/// What a handler sees of a request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A reply: status, headers, body, and an optional delay before sending it.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply { status, headers: Vec::new(), body: body.into(), delay: Duration::ZERO }
    }

    pub fn json(status: u16, v: &serde_json::Value) -> Reply {
        Reply::new(status, v.to_string()).header("Content-Type", "application/json")
    }

    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }

    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

/// An HTTP server on 127.0.0.1 that answers every request with the handler, one thread per
/// request. Stops when dropped.
pub struct HttpServer {
    pub addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    stop: Arc<AtomicBool>,
}

impl HttpServer {
    pub fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> HttpServer {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let addr = server.server_addr().to_ip().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (s, st) = (server.clone(), stop.clone());
        thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let Ok(Some(mut req)) = s.recv_timeout(Duration::from_millis(50)) else { continue };
                let h = handler.clone();
                thread::spawn(move || {
                    let mut body = String::new();
                    let _ = req.as_reader().read_to_string(&mut body);
                    let seen = Seen {
                        method: req.method().to_string(),
                        url: req.url().to_string(),
                        headers: req.headers().iter().map(|h| (h.field.to_string(), h.value.to_string())).collect(),
                        body,
                    };
                    let reply = h(&seen);
                    if !reply.delay.is_zero() {
                        thread::sleep(reply.delay);
                    }
                    let mut resp = Response::from_data(reply.body).with_status_code(reply.status);
                    for (k, v) in reply.headers {
                        if let Ok(h) = Header::from_bytes(k.as_bytes(), v.as_bytes()) {
                            resp.add_header(h);
                        }
                    }
                    let _ = req.respond(resp);
                });
            }
        });
        HttpServer { addr, server, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.server.unblock();
    }
}

/// A loopback listener whose accepted connections go to `handle`, on a thread of its own
/// until the returned flag is set.
fn raw_listener(mut handle: impl FnMut(TcpStream) + Send + 'static) -> (SocketAddr, Arc<AtomicBool>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let addr = l.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    thread::spawn(move || {
        while !st.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((s, _)) => handle(s),
                Err(_) => thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    (addr, stop)
}

/// A TCP listener that accepts connections and never says a word.
pub struct Blackhole {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Blackhole {
    pub fn start() -> Blackhole {
        let mut held = Vec::new();
        let (addr, stop) = raw_listener(move |s| held.push(s));
        Blackhole { addr, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A peer that answers garbage: every connection gets a few KiB of pseudo-random bytes (no
/// HTTP at all), then is closed.
pub struct Garbage {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Garbage {
    pub fn start() -> Garbage {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let (addr, stop) = raw_listener(move |mut s| {
            let mut junk = vec![0u8; 4096];
            for b in &mut junk {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let _ = s.set_nonblocking(false);
            let _ = s.write_all(&junk);
            let _ = s.flush();
        });
        Garbage { addr, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for Garbage {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A certificate authority and a leaf certificate for localhost / 127.0.0.1.
pub struct Certs {
    pub ca_pem: String,
    pub leaf_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

/// A leaf certificate and its key as PEM, for servers that read files (aiosmtpd).
pub struct LeafPem {
    pub cert: String,
    pub key: String,
}

impl Certs {
    /// A leaf valid from yesterday until `days` from now (negative: already expired).
    pub fn new(days: i64) -> Certs {
        Certs::for_names(&["localhost", "127.0.0.1"], days).0
    }

    /// A leaf for these names (DNS names or IP addresses), valid for `days`; with its PEM.
    pub fn for_names(names: &[&str], days: i64) -> (Certs, LeafPem) {
        let now = time::OffsetDateTime::now_utc();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "pitcrew test CA");
        ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        ca_params.not_before = now - time::Duration::days(30);
        ca_params.not_after = now + time::Duration::days(3650);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, names[0]);
        params.not_before = now - time::Duration::days(if days < 0 { 400 } else { 1 });
        params.not_after = now + time::Duration::days(days) + time::Duration::hours(1);
        let leaf = params.signed_by(&key, &issuer).unwrap();
        (
            Certs { ca_pem: ca_cert.pem(), leaf_der: leaf.der().to_vec(), key_der: key.serialize_der() },
            LeafPem { cert: leaf.pem(), key: key.serialize_pem() },
        )
    }
}

/// A TLS front on 127.0.0.1 that relays each connection to `backend` in the clear.
pub struct TlsFront {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl TlsFront {
    pub fn start(certs: &Certs, backend: SocketAddr) -> TlsFront {
        TlsFront::serve(certs, backend, false)
    }

    /// An HTTPS proxy that answers `CONNECT host:443` itself and terminates the TLS inside
    /// with `certs` (made for the hosts a client asks for), relaying to `backend`: how a
    /// client whose service host is fixed in its code (Apprise's `slack://`, `discord://`)
    /// is pointed at a loopback fake, with `HTTPS_PROXY` and the test CA, and no DNS lookup.
    pub fn connect_proxy(certs: &Certs, backend: SocketAddr) -> TlsFront {
        TlsFront::serve(certs, backend, true)
    }

    fn serve(certs: &Certs, backend: SocketAddr, connect: bool) -> TlsFront {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![rustls::pki_types::CertificateDer::from(certs.leaf_der.clone())],
                rustls::pki_types::PrivateKeyDer::Pkcs8(certs.key_der.clone().into()),
            )
            .unwrap();
        let config = Arc::new(config);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => {
                        let config = config.clone();
                        thread::spawn(move || {
                            if !connect || answer_connect(&s) {
                                relay(s, config, backend);
                            }
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        TlsFront { addr, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{}{}", self.addr, path)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Read a proxy's `CONNECT` request (up to its blank line) and say yes to it.
fn answer_connect(mut s: &TcpStream) -> bool {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) if head.len() < 8192 => head.push(byte[0]),
            _ => return false,
        }
    }
    head.starts_with(b"CONNECT ") && s.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").is_ok()
}

/// Relay one connection: finish the TLS handshake first (a client that refuses the
/// certificate never reaches the backend), then copy both ways until either side is done, and
/// close the backend connection with it, so the backend's keep-alive connections (each holds
/// one of tiny_http's worker threads) never outlive the client's.
fn relay(client: TcpStream, config: Arc<rustls::ServerConfig>, backend: SocketAddr) {
    let _ = client.set_nonblocking(false);
    let Ok(conn) = rustls::ServerConnection::new(config) else { return };
    let mut tls = rustls::StreamOwned::new(conn, client);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let _ = tls.sock.set_read_timeout(Some(Duration::from_secs(30)));
    while tls.conn.is_handshaking() {
        if tls.conn.complete_io(&mut tls.sock).is_err() {
            return;
        }
    }
    let Ok(mut back) = TcpStream::connect(backend) else { return };
    let tick = Some(Duration::from_millis(5));
    let _ = tls.sock.set_read_timeout(tick);
    let _ = back.set_read_timeout(tick);
    let mut buf = [0u8; 16 * 1024];
    while std::time::Instant::now() < deadline {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if back.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
        match back.read(&mut buf) {
            Ok(0) => {
                tls.conn.send_close_notify();
                let _ = tls.flush();
                break;
            }
            Ok(n) => {
                if tls.write_all(&buf[..n]).and_then(|_| tls.flush()).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = back.shutdown(std::net::Shutdown::Both);
}
