//! What went wrong with an HTTP request, in words a person reads in an alert.
//!
//! ureq's own texts are made for programmers (`timeout: global`, `io: Connection refused (os
//! error 111)`); these say what timed out and after how long, or what refused.

use std::time::Duration;

/// A duration as people write it: `2 s`, `1.5 s`, `250 ms`, `2 min`.
pub fn seconds(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms % 60_000 == 0 && ms >= 120_000 {
        format!("{} min", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Describe a failed request that was allowed `timeout` in all.
pub fn describe(e: &ureq::Error, timeout: Duration) -> String {
    use ureq::Timeout as T;
    let t = seconds(timeout);
    match e {
        ureq::Error::Timeout(T::Resolve) => format!("the host name did not resolve within {t}"),
        ureq::Error::Timeout(T::Connect) => format!("connect timed out after {t}"),
        ureq::Error::Timeout(T::SendRequest | T::SendBody | T::PerWrite) => {
            format!("the request could not be sent within {t}")
        }
        ureq::Error::Timeout(T::RecvBody) => format!("the answer's body did not arrive within {t}"),
        ureq::Error::Timeout(_) => format!("no answer within {t}"),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
            std::io::ErrorKind::ConnectionReset => "connection reset by the server".into(),
            std::io::ErrorKind::UnexpectedEof => "the server closed the connection without an answer".into(),
            std::io::ErrorKind::TimedOut => format!("no answer within {t}"),
            _ => io.to_string(),
        },
        ureq::Error::TooManyRedirects => "too many redirects".into(),
        other => other.to_string(),
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
        assert_eq!(describe(&ureq::Error::Timeout(ureq::Timeout::Global), d), "no answer within 2 s");
        assert_eq!(describe(&ureq::Error::Timeout(ureq::Timeout::Connect), d), "connect timed out after 2 s");
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(describe(&ureq::Error::Io(refused), d), "connection refused");
    }
}
