//! Connecting within a deadline: the one place where a check, or the HTTP client, opens a TCP
//! connection. The name resolves under the same deadline, and each of its addresses is tried
//! in turn with what is left of it.

use std::io;
use std::net::SocketAddr;

use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

/// An address written `host:port` or `[v6]:port` (a gateway's, an agent's), with a host of
/// letters, digits, dots and dashes.
pub(crate) fn host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    let host = if let Some(v6) = host.strip_prefix('[') {
        let inner = v6.strip_suffix(']')?;
        inner.parse::<std::net::Ipv6Addr>().ok()?;
        inner
    } else {
        if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
            return None;
        }
        host
    };
    Some((host.to_string(), port))
}

/// Why no connection was made.
#[derive(Debug)]
pub enum ConnectError {
    /// The name did not resolve.
    Resolve(io::Error),
    /// The name resolved to no address.
    NoAddress,
    /// The deadline passed while the name was resolving.
    ResolveTimeout,
    /// The deadline passed while connecting.
    Timeout,
    /// The last address tried failed (refused, unreachable, ...).
    Io(SocketAddr, io::Error),
}

/// Connect to `host:port` before `deadline`. `host` is a name or an IP address (IPv6 without
/// brackets); an address is used as it is, without a lookup.
pub async fn connect(host: &str, port: u16, deadline: Instant) -> Result<TcpStream, ConnectError> {
    let addrs: Vec<SocketAddr> = match timeout_at(deadline, tokio::net::lookup_host((host, port))).await {
        Err(_) => return Err(ConnectError::ResolveTimeout),
        Ok(Err(e)) => return Err(ConnectError::Resolve(e)),
        Ok(Ok(a)) => a.collect(),
    };
    let mut last = ConnectError::NoAddress;
    for a in addrs {
        match timeout_at(deadline, TcpStream::connect(a)).await {
            Err(_) => return Err(ConnectError::Timeout),
            Ok(Ok(s)) => {
                // Requests go out in one write; waiting to coalesce them only adds latency.
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::TimedOut => last = ConnectError::Timeout,
            Ok(Err(e)) => last = ConnectError::Io(a, e),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn connects_and_says_why_not() {
        rt().block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = l.local_addr().unwrap().port();
            let soon = Instant::now() + Duration::from_secs(5);
            assert!(connect("127.0.0.1", port, soon).await.is_ok());
            drop(l);
            match connect("127.0.0.1", port, soon).await {
                Err(ConnectError::Io(_, e)) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused),
                other => panic!("{other:?}"),
            }
        });
    }

    #[test]
    fn the_deadline_bounds_the_whole_connect() {
        rt().block_on(async {
            // A deadline already past: no connection is even attempted.
            let past = Instant::now() - Duration::from_millis(1);
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = l.local_addr().unwrap().port();
            assert!(matches!(connect("127.0.0.1", port, past).await, Err(ConnectError::Timeout)));
            // An address that never answers a SYN (TEST-NET-1 is not routed on a test host,
            // or is refused at once): whatever happens, it ends by the deadline.
            let started = Instant::now();
            let _ = connect("192.0.2.1", 9, started + Duration::from_millis(300)).await;
            assert!(started.elapsed() < crate::util::test_limit(2.0), "{:?}", started.elapsed());
        });
    }
}
