//! The one HTTP client set-up: HTTP/1.1 on hyper, TLS on rustls (ring), a fresh connection
//! per request, one deadline for everything a request does.
//!
//! Every request measures a fresh connection, as the Agent Ops Kit's checks did, so a server
//! that mishandles keep-alive cannot make one check hang on another's socket; the connection
//! is driven inside the request's own future, so a request that is given up on closes its
//! socket at once. Redirects are followed here (301, 302 and 303 become a GET without a body,
//! 307 and 308 keep the method and body; at most [`MAX_REDIRECTS`]; a relative `Location` is
//! resolved against the URL it came from; `Authorization` is never carried to the next hop).
//! After the last redirect allowed, the redirect itself is the answer.
//!
//! TLS: Mozilla's roots by default; a `ca_file` is read as curl reads it ([`super::cafile`]);
//! `tls_verify: false` takes any certificate. Client configurations are made once per kind.
//!
//! A failure is said in [`crate::util::http::Failure`]'s words: what timed out and after how
//! long, or what refused. [`BlockingClient`] is the same client for code without a runtime.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::{Method, Uri};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;

use super::cafile::CaFileVerifier;
use super::net::{self, ConnectError};
use super::tls::{AcceptAny, provider};
use crate::util::http::Failure;

/// The most redirects one request follows.
pub const MAX_REDIRECTS: usize = 10;

/// One request.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a [(String, String)],
    pub body: Option<&'a [u8]>,
    /// Everything (connecting, redirects, the body) within this.
    pub timeout: Duration,
    pub follow_redirects: bool,
    pub tls_verify: bool,
    pub ca_file: Option<&'a Path>,
    /// Read the answer's body, up to this many bytes (more is an error); `None` reads none.
    pub body_limit: Option<usize>,
}

impl<'a> Request<'a> {
    /// A GET that follows redirects, verifies TLS, and reads no body.
    pub fn get(url: &'a str, timeout: Duration) -> Request<'a> {
        Request {
            method: "GET",
            url,
            headers: &[],
            body: None,
            timeout,
            follow_redirects: true,
            tls_verify: true,
            ca_file: None,
            body_limit: None,
        }
    }
}

/// An answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub location: Option<String>,
    /// The body (lossy UTF-8) when it was asked for, or why it could not be read.
    pub body: Result<String, String>,
    /// The rate-limit headers (`Retry-After`, `X-RateLimit-*`), names in lower case: what a
    /// caller needs to know when it may ask again.
    pub rate_limit: Vec<(String, String)>,
}

type TlsKey = (bool, Option<PathBuf>);

/// The client: a user agent and TLS configurations by kind. Shared by every request of a run.
pub struct Client {
    user_agent: String,
    tls: Mutex<HashMap<TlsKey, Result<Arc<ClientConfig>, String>>>,
}

impl Client {
    /// A client that says it is `user_agent` (`pitcrew-probe/0.1.0`).
    pub fn new(user_agent: &str) -> Client {
        Client { user_agent: user_agent.to_string(), tls: Mutex::new(HashMap::new()) }
    }

    /// Send `req`, following redirects if it says so. An error is why there is no answer,
    /// in words.
    pub async fn fetch(&self, req: &Request<'_>) -> Result<Response, String> {
        let deadline = Instant::now() + req.timeout;
        let mut uri: Uri = req.url.parse().map_err(|e| format!("invalid URL {}: {e}", req.url))?;
        let mut method =
            Method::from_bytes(req.method.as_bytes()).map_err(|e| format!("invalid method {}: {e}", req.method))?;
        let mut headers: Vec<(String, String)> = req.headers.to_vec();
        let mut body: Option<Vec<u8>> = req.body.map(<[u8]>::to_vec);
        let mut hops = 0;
        loop {
            let follow = req.follow_redirects && hops < MAX_REDIRECTS;
            let hop = Hop { method: &method, uri: &uri, headers: &headers, body: body.as_deref() };
            let (resp, next) = self.once(&hop, req, deadline, follow).await?;
            let Some(next) = next else { return Ok(resp) };
            hops += 1;
            if !next.keep_body {
                body = None;
                headers.retain(|(k, _)| {
                    !k.eq_ignore_ascii_case("content-type") && !k.eq_ignore_ascii_case("content-length")
                });
            }
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
            method = next.method;
            uri = next.uri;
        }
    }

    /// One request on a fresh connection; with `follow`, a redirect's next hop instead of
    /// its body.
    async fn once(
        &self,
        hop: &Hop<'_>,
        req: &Request<'_>,
        deadline: Instant,
        follow: bool,
    ) -> Result<(Response, Option<Redirect>), String> {
        let fail = |f: Failure| f.describe(req.timeout);
        let scheme = hop.uri.scheme_str().unwrap_or("");
        let tls = match scheme {
            "https" => true,
            "http" => false,
            _ => return Err(format!("unsupported URL scheme '{scheme}' (http or https)")),
        };
        let host = hop.uri.host().ok_or_else(|| format!("no host in URL {}", hop.uri))?;
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let port = hop.uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let request = self.build(hop, host)?;
        let tcp = net::connect(bare, port, deadline).await.map_err(|e| {
            fail(match e {
                ConnectError::Resolve(_) | ConnectError::NoAddress => Failure::HostNotFound,
                ConnectError::ResolveTimeout => Failure::ResolveTimeout,
                ConnectError::Timeout => Failure::ConnectTimeout,
                ConnectError::Io(_, e) if e.kind() == std::io::ErrorKind::TimedOut => Failure::ConnectTimeout,
                ConnectError::Io(_, e) => Failure::from_io(&e),
            })
        })?;
        let answer = if tls {
            let config = self.tls_config(req.tls_verify, req.ca_file)?;
            let name = ServerName::try_from(bare.to_string()).map_err(|_| format!("invalid server name {bare}"))?;
            let stream = match timeout_at(deadline, TlsConnector::from(config).connect(name, tcp)).await {
                Err(_) => return Err(fail(Failure::ConnectTimeout)),
                Ok(Err(e)) => return Err(tls_error(&e, req.timeout)),
                Ok(Ok(s)) => s,
            };
            exchange(stream, request, req, deadline, follow, hop).await
        } else {
            exchange(tcp, request, req, deadline, follow, hop).await
        };
        answer.map_err(fail)
    }

    /// The request of one hop: origin-form target, Host, User-Agent, Basic credentials from
    /// the URL's user information (unless an Authorization header is given), the headers.
    fn build(&self, hop: &Hop<'_>, host: &str) -> Result<hyper::Request<Full<Bytes>>, String> {
        let target = hop.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let host_header = match hop.uri.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let mut b = hyper::Request::builder().method(hop.method.clone()).uri(target).header("host", host_header);
        let has = |name: &str| hop.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        if !has("user-agent") {
            b = b.header("user-agent", self.user_agent.as_str());
        }
        if !has("accept") {
            b = b.header("accept", "*/*");
        }
        // One request per connection: the server closes first, so the time-wait is its own.
        b = b.header("connection", "close");
        let userinfo = hop.uri.authority().and_then(|a| a.as_str().rsplit_once('@')).map(|(u, _)| u);
        if let Some(info) = userinfo.filter(|_| !has("authorization")) {
            let (user, pass) = info.split_once(':').unwrap_or((info, ""));
            let creds = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            b = b.header("authorization", format!("Basic {creds}"));
        }
        for (k, v) in hop.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        let body = Full::new(Bytes::from(hop.body.map(<[u8]>::to_vec).unwrap_or_default()));
        b.body(body).map_err(|e| format!("bad request: {e}"))
    }

    /// The TLS configuration for these settings, made on first use.
    fn tls_config(&self, verify: bool, ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
        let key = (verify, ca_file.filter(|_| verify).map(Path::to_path_buf));
        let mut cache = self.tls.lock().map_err(|_| "internal lock poisoned".to_string())?;
        cache.entry(key).or_insert_with(|| make_tls_config(verify, ca_file)).clone()
    }
}

/// What a hop sends.
struct Hop<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a [(String, String)],
    body: Option<&'a [u8]>,
}

/// Where a redirect leads.
#[derive(Debug, Clone, PartialEq)]
pub struct Redirect {
    pub method: Method,
    pub uri: Uri,
    /// 307 and 308 send the same body again.
    pub keep_body: bool,
}

/// The next hop of an answer with `status` and `location` to a request `method base`, if the
/// answer is a redirect that can be followed.
pub fn redirect(status: u16, method: &Method, location: Option<&str>, base: &Uri) -> Option<Redirect> {
    let (method, keep_body) = match status {
        301..=303 if method == Method::HEAD => (Method::HEAD, false),
        301..=303 => (Method::GET, false),
        307 | 308 => (method.clone(), true),
        _ => return None,
    };
    let uri = resolve(base, location?.trim())?;
    Some(Redirect { method, uri, keep_body })
}

/// A `Location` resolved against the URL it answered (RFC 3986 §5.2): absolute,
/// scheme-relative (`//host/p`), absolute-path (`/p`), query-only (`?q`), or relative to the
/// base's directory, dot segments removed; the fragment dropped.
pub fn resolve(base: &Uri, location: &str) -> Option<Uri> {
    let location = location.split('#').next().unwrap_or("");
    let lower = location.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return location.parse().ok();
    }
    let scheme = base.scheme_str()?;
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{scheme}://{rest}").parse().ok();
    }
    let authority = base.authority()?.as_str();
    let base_path = base.path();
    let joined = if location.is_empty() {
        base.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into())
    } else if location.starts_with('/') {
        location.to_string()
    } else if location.starts_with('?') {
        format!("{base_path}{location}")
    } else {
        let dir = &base_path[..base_path.rfind('/').map(|i| i + 1).unwrap_or(0)];
        format!("{}{location}", if dir.is_empty() { "/" } else { dir })
    };
    let (path, query) = match joined.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q)),
        None => (joined.clone(), None),
    };
    let path = remove_dot_segments(&path);
    let tail = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("{scheme}://{authority}{path}{tail}").parse().ok()
}

/// `/a/./b/../c` is `/a/c` (RFC 3986 §5.2.4, for absolute paths).
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *seg {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

/// Send the request on `io` and read the answer (and its body when asked and not followed).
async fn exchange<T>(
    io: T,
    request: hyper::Request<Full<Bytes>>,
    req: &Request<'_>,
    deadline: Instant,
    follow: bool,
    hop: &Hop<'_>,
) -> Result<(Response, Option<Redirect>), Failure>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = match timeout_at(deadline, http1::Builder::new().handshake(TokioIo::new(io))).await {
        Err(_) => return Err(Failure::SendTimeout),
        Ok(Err(e)) => return Err(hyper_failure(&e)),
        Ok(Ok(pair)) => pair,
    };
    tokio::pin!(conn);
    let head = async {
        let send = sender.send_request(request);
        tokio::pin!(send);
        tokio::select! {
            biased;
            r = &mut send => r,
            r = &mut conn => match r {
                Err(e) => Err(e),
                Ok(()) => send.await,
            },
        }
    };
    let resp = match timeout_at(deadline, head).await {
        Err(_) => return Err(Failure::AnswerTimeout),
        Ok(Err(e)) => return Err(hyper_failure(&e)),
        Ok(Ok(r)) => r,
    };
    let status = resp.status().as_u16();
    let location = resp.headers().get("location").and_then(|l| l.to_str().ok()).map(String::from);
    let rate_limit = resp
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str() == "retry-after" || k.as_str().starts_with("x-ratelimit-"))
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let next = if follow { redirect(status, hop.method, location.as_deref(), hop.uri) } else { None };
    let body = match (req.body_limit, &next) {
        (Some(limit), None) => {
            let read = async {
                let mut body = resp.into_body();
                let mut buf: Vec<u8> = Vec::new();
                loop {
                    let frame = tokio::select! {
                        biased;
                        f = body.frame() => f,
                        r = &mut conn => match r {
                            Err(e) => return Err(hyper_failure(&e).describe(req.timeout)),
                            Ok(()) => body.frame().await,
                        },
                    };
                    match frame {
                        None => break,
                        Some(Err(e)) => return Err(hyper_failure(&e).describe(req.timeout)),
                        Some(Ok(f)) => {
                            if let Some(d) = f.data_ref() {
                                if buf.len() + d.len() > limit {
                                    return Err(format!("the body is over {limit} bytes"));
                                }
                                buf.extend_from_slice(d);
                            }
                        }
                    }
                }
                Ok(String::from_utf8_lossy(&buf).into_owned())
            };
            match timeout_at(deadline, read).await {
                Err(_) => Err(Failure::BodyTimeout.describe(req.timeout)),
                Ok(r) => r,
            }
        }
        _ => Ok(String::new()),
    };
    Ok((Response { status, location, body, rate_limit }, next))
}

/// A hyper error in [`Failure`]'s words.
fn hyper_failure(e: &hyper::Error) -> Failure {
    if e.is_incomplete_message() {
        return Failure::Closed;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Failure::from_io(io);
        }
        source = s.source();
    }
    Failure::Other(e.to_string())
}

/// A failed TLS handshake: rustls's own reason (`invalid peer certificate: ...`).
fn tls_error(e: &std::io::Error, timeout: Duration) -> String {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(tls) => format!("rustls: {tls}"),
        None => Failure::from_io(e).describe(timeout),
    }
}

fn make_tls_config(verify: bool, ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match (verify, ca_file) {
        (false, _) => {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAny::new())).with_no_client_auth()
        }
        (true, Some(path)) => {
            let pem = crate::store::read::read(path, crate::store::kinds::CA_FILE)
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok).collect();
            if certs.is_empty() {
                return Err(format!("ca_file {}: no certificate found", path.display()));
            }
            let verifier =
                CaFileVerifier::new(&certs, provider()).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier)).with_no_client_auth()
        }
        (true, None) => {
            let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// The same client for code that has no runtime of its own (a thread pool, a loop): each
/// request runs on a small runtime the client keeps.
pub struct BlockingClient {
    client: Client,
    rt: tokio::runtime::Runtime,
}

impl BlockingClient {
    pub fn new(user_agent: &str) -> std::io::Result<BlockingClient> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(4)
            .thread_name("pitcrew-http")
            .enable_all()
            .build()?;
        Ok(BlockingClient { client: Client::new(user_agent), rt })
    }

    /// Send `req` and wait for the answer.
    pub fn fetch(&self, req: &Request<'_>) -> Result<Response, String> {
        self.rt.block_on(self.client.fetch(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn locations_resolve_against_the_url_they_answered() {
        let base = uri("http://h:8080/a/b/c?x=1");
        let cases = [
            ("https://other/p", "https://other/p"),
            ("//elsewhere:9/q", "http://elsewhere:9/q"),
            ("/root?y=2", "http://h:8080/root?y=2"),
            ("?z=3", "http://h:8080/a/b/c?z=3"),
            ("d", "http://h:8080/a/b/d"),
            ("../d/./e", "http://h:8080/a/d/e"),
            ("../../../../up", "http://h:8080/up"),
            ("./", "http://h:8080/a/b/"),
            ("..", "http://h:8080/a/"),
            ("d#frag", "http://h:8080/a/b/d"),
            ("", "http://h:8080/a/b/c?x=1"),
        ];
        for (loc, want) in cases {
            assert_eq!(resolve(&base, loc).map(|u| u.to_string()), Some(want.to_string()), "{loc}");
        }
        assert_eq!(resolve(&uri("http://h"), "x").unwrap().to_string(), "http://h/x");
    }

    #[test]
    fn redirects_change_the_method_as_browsers_do() {
        let base = uri("http://h/form");
        let post = Method::POST;
        for status in [301, 302, 303] {
            let r = redirect(status, &post, Some("/done"), &base).unwrap();
            assert_eq!((r.method, r.keep_body, r.uri.to_string()), (Method::GET, false, "http://h/done".into()));
        }
        for status in [307, 308] {
            let r = redirect(status, &post, Some("/again"), &base).unwrap();
            assert_eq!((r.method, r.keep_body), (Method::POST, true));
        }
        assert_eq!(redirect(302, &Method::HEAD, Some("/x"), &base).unwrap().method, Method::HEAD);
        // Not a redirect, or one without a usable Location: the answer stands.
        assert!(redirect(200, &post, Some("/x"), &base).is_none());
        assert!(redirect(304, &Method::GET, Some("/x"), &base).is_none());
        assert!(redirect(302, &Method::GET, None, &base).is_none());
        assert!(redirect(302, &Method::GET, Some("http://bad host/"), &base).is_none());
    }

    #[test]
    fn dot_segments() {
        assert_eq!(remove_dot_segments("/a/b/c/./../../g"), "/a/g");
        assert_eq!(remove_dot_segments("/mid/content=5/../6"), "/mid/6");
        assert_eq!(remove_dot_segments("/"), "/");
    }
}
