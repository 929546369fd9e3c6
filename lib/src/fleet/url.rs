//! `nats://[user:pass@]host:port[,host2:port]/SUBJECT[?durable=NAME&replicas=N]`: where
//! records go and come from. The credentials are kept apart from the address and never
//! shown: [`NatsUrl`]'s `Display` (used in every message) is the redacted form.

use std::fmt;

use crate::error::{Error, Result};

/// A parsed `nats://` address.
#[derive(Clone, PartialEq, Eq)]
pub struct NatsUrl {
    /// `host:port` of each server, credentials removed.
    pub servers: Vec<String>,
    /// The subject records are published to and read from.
    pub subject: String,
    /// The durable consumer's name, for reading.
    pub durable: Option<String>,
    /// The stream's replicas when pitcrew creates it (1 to 5).
    pub replicas: usize,
    /// How long the durable consumer waits for an acknowledgement before it delivers a
    /// message again (`?ack_wait=SECS`, 30 by default).
    pub ack_wait: u64,
    /// `tls://` was given: the connection must use TLS.
    pub tls: bool,
    /// User and password from the URL's userinfo.
    pub user: Option<(String, String)>,
    /// A token from the URL's userinfo (`nats://TOKEN@host`).
    pub token: Option<String>,
}

impl fmt::Debug for NatsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NatsUrl({self})")
    }
}

impl fmt::Display for NatsUrl {
    /// `nats://host:port[,host:port]/SUBJECT[?durable=NAME]`, without credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "tls" } else { "nats" };
        write!(f, "{scheme}://{}/{}", self.servers.join(","), self.subject)?;
        if let Some(d) = &self.durable {
            write!(f, "?durable={d}")?;
        }
        Ok(())
    }
}

/// True when `arg` names a NATS address rather than a file.
pub fn is_nats(arg: &str) -> bool {
    arg.starts_with("nats://") || arg.starts_with("tls://")
}

fn token_ok(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

impl NatsUrl {
    /// Parse an address; errors never repeat the credentials.
    pub fn parse(arg: &str) -> Result<NatsUrl> {
        let (tls, rest) = match (arg.strip_prefix("nats://"), arg.strip_prefix("tls://")) {
            (Some(r), _) => (false, r),
            (None, Some(r)) => (true, r),
            _ => return Err(Error::usage("a NATS address starts with nats:// or tls://")),
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let shown =
            |what: &str| Error::usage(format!("{what} in {}://{hosts}/{path}", if tls { "tls" } else { "nats" }));
        let (subject, query) = path.split_once('?').unwrap_or((path, ""));
        if subject.is_empty() || !subject.split('.').all(|t| !t.is_empty() && !t.contains([' ', '*', '>'])) {
            return Err(shown("no subject (nats://host:port/SUBJECT, tokens separated by dots, no wildcards)"));
        }
        let mut servers = Vec::new();
        for h in hosts.split(',') {
            let (name, port) = match h.rsplit_once(':') {
                Some((n, p)) => (n, p),
                None => (h, "4222"),
            };
            if name.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(shown(&format!("bad server '{h}'")));
            }
            servers.push(format!("{name}:{port}"));
        }
        let (mut durable, mut replicas, mut ack_wait) = (None, 1usize, 30u64);
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            match kv.split_once('=') {
                Some(("durable", d)) if token_ok(d) => durable = Some(d.to_string()),
                Some(("replicas", r)) => match r.parse::<usize>() {
                    Ok(n @ 1..=5) => replicas = n,
                    _ => return Err(shown("replicas must be 1 to 5")),
                },
                Some(("ack_wait", w)) => match w.parse::<u64>() {
                    Ok(n @ 1..=3600) => ack_wait = n,
                    _ => return Err(shown("ack_wait must be 1 to 3600 seconds")),
                },
                _ => {
                    return Err(shown(&format!(
                        "unknown or bad parameter '{kv}' (durable=NAME of letters, digits, - and _; replicas=N; ack_wait=SECS)"
                    )));
                }
            }
        }
        let (mut user, mut token) = (None, None);
        if let Some(u) = userinfo {
            let dec = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
            match u.split_once(':') {
                Some((n, p)) => user = Some((dec(n), dec(p))),
                None => token = Some(dec(u)),
            }
        }
        Ok(NatsUrl { servers, subject: subject.to_string(), durable, replicas, ack_wait, tls, user, token })
    }

    /// The stream that holds the subject: its name in upper case, other characters as `_`
    /// (`pitcrew.checks` → `PITCREW_CHECKS`).
    pub fn stream(&self) -> String {
        self.subject.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
    }

    /// A file name for what belongs to this address (the publish outbox): the subject and a
    /// hash of the servers.
    pub fn file_stem(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.servers.join(",").bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        format!("{}-{:08x}", self.subject, h as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_never_shows_credentials() {
        let u = NatsUrl::parse("nats://alice:s%40cret@h1:4222,h2:4223/pitcrew.checks?durable=hub&replicas=3").unwrap();
        assert_eq!(u.servers, ["h1:4222", "h2:4223"]);
        assert_eq!(u.subject, "pitcrew.checks");
        assert_eq!(u.durable.as_deref(), Some("hub"));
        assert_eq!(u.replicas, 3);
        assert_eq!(u.user, Some(("alice".into(), "s@cret".into())));
        assert_eq!(u.to_string(), "nats://h1:4222,h2:4223/pitcrew.checks?durable=hub");
        assert!(!format!("{u:?}").contains("cret"));
        assert_eq!(u.stream(), "PITCREW_CHECKS");
        let t = NatsUrl::parse("tls://tok3n@hub/x").unwrap();
        assert_eq!((t.token.as_deref(), t.tls, t.servers[0].as_str()), (Some("tok3n"), true, "hub:4222"));
    }

    #[test]
    fn bad_addresses_are_refused_without_the_secret() {
        for bad in ["nats://u:pw1@h:1/", "nats://u:pw1@h:x/s", "nats://u:pw1@h/s?durable=a.b", "nats://u:pw1@h/a.*"] {
            let e = NatsUrl::parse(bad).unwrap_err().to_string();
            assert!(!e.contains("pw1"), "{e}");
        }
    }
}
