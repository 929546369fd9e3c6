//! What went wrong with an HTTP request, in words a person reads in an alert.
//!
//! HTTP clients' own texts are made for programmers (`timeout: global`, `io: Connection
//! refused (os error 111)`); these say what timed out and after how long, or what refused.

use std::time::Duration;

/// A duration as people write it: `2 s`, `1.5 s`, `250 ms`, `2 min`.
pub fn seconds(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(60_000) && ms >= 120_000 {
        format!("{} min", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Why a request got no usable answer, by phase: the words of the HTTP client
/// ([`crate::check::http`]) that every tool's requests go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The host name did not resolve in time.
    ResolveTimeout,
    /// No connection (TLS handshake included) in time.
    ConnectTimeout,
    /// The request could not be written in time.
    SendTimeout,
    /// The request went out; no answer came in time.
    AnswerTimeout,
    /// The answer's head came; its body did not, in time.
    BodyTimeout,
    HostNotFound,
    ConnectionFailed,
    Refused,
    Reset,
    /// The server closed the connection before it answered.
    Closed,
    TooManyRedirects,
    /// Anything else, in its own words.
    Other(String),
}

impl Failure {
    /// In words, for a request that was allowed `timeout` in all.
    pub fn describe(&self, timeout: Duration) -> String {
        let t = seconds(timeout);
        match self {
            Failure::ResolveTimeout => format!("the host name did not resolve within {t}"),
            Failure::ConnectTimeout => format!("connect timed out after {t}"),
            Failure::SendTimeout => format!("the request could not be sent within {t}"),
            Failure::AnswerTimeout => format!("no answer within {t}"),
            Failure::BodyTimeout => format!("the answer's body did not arrive within {t}"),
            Failure::HostNotFound => "host not found".into(),
            Failure::ConnectionFailed => "connection failed".into(),
            Failure::Refused => "connection refused".into(),
            Failure::Reset => "connection reset by the server".into(),
            Failure::Closed => "the server closed the connection without an answer".into(),
            Failure::TooManyRedirects => "too many redirects".into(),
            Failure::Other(s) => s.clone(),
        }
    }

    /// An I/O error met while talking to the server.
    pub fn from_io(e: &std::io::Error) -> Failure {
        match e.kind() {
            std::io::ErrorKind::ConnectionRefused => Failure::Refused,
            std::io::ErrorKind::ConnectionReset => Failure::Reset,
            std::io::ErrorKind::UnexpectedEof => Failure::Closed,
            std::io::ErrorKind::TimedOut => Failure::AnswerTimeout,
            _ => Failure::Other(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(seconds(Duration::from_secs(2)), "2 s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(seconds(Duration::from_millis(250)), "250 ms");
        assert_eq!(seconds(Duration::from_secs(300)), "5 min");
        assert_eq!(seconds(Duration::from_secs(90)), "90 s");
    }

    #[test]
    fn timeouts_say_what_and_how_long() {
        let d = Duration::from_secs(2);
        assert_eq!(Failure::AnswerTimeout.describe(d), "no answer within 2 s");
        assert_eq!(Failure::ConnectTimeout.describe(d), "connect timed out after 2 s");
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(Failure::from_io(&refused).describe(d), "connection refused");
    }
}
