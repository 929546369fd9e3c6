//! What to check and how: the check types and their specs, and the reading of a service's
//! check fields from services.json (the Agent Ops Kit's schema plus pitcrew's optional keys).
//!
//! services.json's document, its environment and its alerting stay in [`crate::config`]; a
//! service's check fields are read here, with [`Fields`], which keeps the first problem so
//! that a wrong entry is reported by field and the others are still loaded.

use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::util::fields::{Fields, found, number_value, uint_value};
use crate::util::proc::CommandLine;

/// What to check and how.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckSpec {
    /// An HTTP(S) request and what its answer must be.
    Url(Box<UrlSpec>),
    /// A TCP connect.
    Port {
        /// The host to connect to.
        host: String,
        /// The port to connect to.
        port: u16,
    },
    /// A running process whose command line matches.
    Process {
        /// A regular expression a command line must match (as `pgrep -f`).
        pattern: String,
    },
    /// Free space on a file system.
    Disk {
        /// A path on the file system.
        path: PathBuf,
        /// At or below this many free GB the check is down.
        warning_gb: f64,
    },
    /// A TLS handshake and the days left on the certificate.
    Tls {
        /// The host to connect to.
        host: String,
        /// The port to connect to.
        port: u16,
        /// The name sent as SNI and verified against the certificate.
        server_name: String,
        /// Fewer days left than this is degraded.
        warning_days: i64,
        /// Fewer days left than this is down.
        critical_days: i64,
        /// Whether the chain is also verified against the trusted roots.
        tls_verify: bool,
    },
    /// A command (a monitoring plugin): its exit code is the status.
    Command {
        /// The command and its arguments.
        command: CommandLine,
        /// Whether a warning (exit 1) counts as down rather than degraded.
        degraded_is_down: bool,
    },
    /// The age of a file or of an agent's latest tick.
    Heartbeat(HeartbeatSpec),
}

impl CheckSpec {
    /// The check type's name as services.json spells it (`url`, `port`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            CheckSpec::Url(_) => "url",
            CheckSpec::Port { .. } => "port",
            CheckSpec::Process { .. } => "process",
            CheckSpec::Disk { .. } => "disk",
            CheckSpec::Tls { .. } => "tls",
            CheckSpec::Command { .. } => "command",
            CheckSpec::Heartbeat(_) => "heartbeat",
        }
    }

    /// What is checked, as records and metrics show it (URL credentials redacted).
    pub fn target(&self) -> String {
        match self {
            // Shown, never used to connect: credentials in the URL stay out of records and metrics.
            CheckSpec::Url(u) => crate::util::redact::redact_url(&u.target).into_owned(),
            CheckSpec::Port { host, port } => format!("{host}:{port}"),
            CheckSpec::Process { pattern } => pattern.clone(),
            CheckSpec::Disk { path, .. } => path.display().to_string(),
            CheckSpec::Tls { host, port, .. } => format!("{host}:{port}"),
            CheckSpec::Command { command, .. } => command.display(),
            CheckSpec::Heartbeat(h) => match h {
                HeartbeatSpec::File { path, .. } => path.display().to_string(),
                HeartbeatSpec::Tick { agent, .. } => format!("tick:{agent}"),
            },
        }
    }
}

/// A url check.
#[derive(Debug, Clone, PartialEq)]
pub struct UrlSpec {
    /// The URL requested.
    pub target: String,
    /// The status codes that count as up.
    pub expected_status: Vec<u16>,
    /// The HTTP method.
    pub method: String,
    /// Request headers, in order.
    pub headers: Vec<(String, String)>,
    /// The request body, if any.
    pub body: Option<String>,
    /// Text the response body must contain.
    pub body_contains: Option<String>,
    /// A dotted path into a JSON response (`status`, `checks.db.0.ok`) and its expected value.
    pub json_field: Option<(String, Value)>,
    /// Whether redirects are followed.
    pub follow_redirects: bool,
    /// Whether the server's certificate is verified.
    pub tls_verify: bool,
    /// The CA certificates (PEM) to verify the server with, read as curl reads them.
    pub ca_file: Option<PathBuf>,
    /// Slower than this many milliseconds is degraded.
    pub degraded_latency_ms: Option<u64>,
    /// Slower than this many milliseconds is down.
    pub max_latency_ms: Option<u64>,
}

impl UrlSpec {
    /// A plain GET of `target` that is up on one of `expected_status` (redirects followed,
    /// certificates verified, no latency bounds): how a gateway or an agent's address is checked.
    pub(crate) fn get(target: &str, expected_status: std::ops::Range<u16>) -> UrlSpec {
        UrlSpec {
            target: target.to_string(),
            expected_status: expected_status.collect(),
            method: "GET".into(),
            headers: Vec::new(),
            body: None,
            body_contains: None,
            json_field: None,
            follow_redirects: true,
            tls_verify: true,
            ca_file: None,
            degraded_latency_ms: None,
            max_latency_ms: None,
        }
    }
}

/// A heartbeat check: the age of a file, or of an agent's latest tick.
#[derive(Debug, Clone, PartialEq)]
pub enum HeartbeatSpec {
    /// A file's modification time.
    File {
        /// The file.
        path: PathBuf,
        /// Older than this is down.
        max_age_seconds: u64,
    },
    /// An agent's latest tick in the ticks directory.
    Tick {
        /// The agent's name.
        agent: String,
        /// Where the agents' tick files are.
        ticks_dir: PathBuf,
        /// Older than this is down.
        max_age_seconds: u64,
    },
}

/// Defaults that come from the top of the document.
pub struct Defaults {
    pub disk_warning_gb: f64,
    pub ticks_dir: PathBuf,
}

impl Defaults {
    pub fn from_top(map: &Map<String, Value>, home: Option<PathBuf>) -> Defaults {
        let home = home.unwrap_or_else(|| PathBuf::from(".agent-ops"));
        Defaults {
            disk_warning_gb: map.get("disk_warning_gb").and_then(number_value).unwrap_or(5.0),
            ticks_dir: home.join("ticks"),
        }
    }
}

/// The time limit of a check type when the service names none, in seconds.
pub fn default_timeout(type_name: &str) -> f64 {
    match type_name {
        "port" | "tcp" => 3.0,
        "process" | "disk" | "heartbeat" => 5.0,
        "command" | "nagios" => 30.0,
        _ => 10.0,
    }
}

/// Read the check fields of a service of type `type_name`; the first problem stays in `f`.
pub fn parse(f: &mut Fields<'_>, type_name: &str, defaults: &Defaults) -> CheckSpec {
    match type_name {
        "url" | "http" | "https" => url(f),
        "port" | "tcp" => port(f),
        "process" => process(f),
        "disk" => CheckSpec::Disk {
            path: PathBuf::from(f.string("path").unwrap_or_else(|| "/".into())),
            warning_gb: f.number("warning_gb").unwrap_or(defaults.disk_warning_gb),
        },
        "tls" | "ssl" | "cert" => tls(f),
        "command" | "nagios" => command(f),
        "heartbeat" => heartbeat(f, defaults),
        other => {
            f.fail(
                "type",
                &format!("unknown check type '{other}' (url, port, process, disk, tls, command, heartbeat)"),
            );
            CheckSpec::Process { pattern: String::new() }
        }
    }
}

fn url(f: &mut Fields<'_>) -> CheckSpec {
    let target = f.required_string("target");
    if !(target.is_empty() || target.starts_with("http://") || target.starts_with("https://")) {
        f.fail("target", "expected an http:// or https:// URL");
    }
    let expected_status = match f.get("expected_status") {
        None => vec![200],
        Some(Value::Array(a)) => {
            let codes: Vec<u16> =
                a.iter().filter_map(uint_value).filter(|c| (100..=599).contains(c)).map(|c| c as u16).collect();
            if codes.len() != a.len() || codes.is_empty() {
                let bad = a.iter().find(|v| !uint_value(v).is_some_and(|c| (100..=599).contains(&c)));
                let why = match bad {
                    Some(v) => format!("expected HTTP status codes (100-599), found {}", found(v)),
                    None => "expected HTTP status codes (100-599), found an empty list".to_string(),
                };
                f.fail("expected_status", &why);
            }
            codes
        }
        Some(v) => match uint_value(v) {
            Some(c) if (100..=599).contains(&c) => vec![c as u16],
            _ => {
                f.fail("expected_status", &format!("expected an HTTP status code (100-599), found {}", found(v)));
                vec![]
            }
        },
    };
    let method = f.string("method").unwrap_or_else(|| "GET".into()).to_ascii_uppercase();
    if !method.bytes().all(|b| b.is_ascii_alphabetic()) || method.is_empty() {
        f.fail("method", "expected an HTTP method such as GET or POST");
    }
    let mut headers = Vec::new();
    match f.get("headers") {
        None => {}
        Some(Value::Object(h)) => {
            for (k, v) in h {
                match v {
                    Value::String(s) => headers.push((k.clone(), s.clone())),
                    _ => f.fail("headers", &format!("value of '{k}' must be a string")),
                }
            }
        }
        Some(_) => f.fail("headers", "expected an object of header names to strings"),
    }
    let body = match f.get("body") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
                headers.push(("Content-Type".into(), "application/json".into()));
            }
            Some(other.to_string())
        }
    };
    let json_field = match f.string("json_field") {
        Some(path) => match f.obj.get("json_equals") {
            Some(want) => Some((path, want.clone())),
            None => {
                f.fail("json_equals", "missing (required with json_field)");
                None
            }
        },
        None => None,
    };
    CheckSpec::Url(Box::new(UrlSpec {
        target,
        expected_status,
        method,
        headers,
        body,
        body_contains: f.string("body_contains"),
        json_field,
        follow_redirects: f.boolean("follow_redirects").unwrap_or(true),
        tls_verify: f.boolean("tls_verify").unwrap_or(true),
        ca_file: f.string("ca_file").map(PathBuf::from),
        degraded_latency_ms: f.uint("degraded_latency_ms", u64::MAX),
        max_latency_ms: f.uint("max_latency_ms", u64::MAX),
    }))
}

fn port(f: &mut Fields<'_>) -> CheckSpec {
    let host = f.string("host").unwrap_or_else(|| "127.0.0.1".into());
    let port = f.port("port");
    if port.is_none() && f.obj.get("port").is_none() {
        f.fail("port", "missing (required)");
    }
    CheckSpec::Port { host, port: port.unwrap_or(0) }
}

fn process(f: &mut Fields<'_>) -> CheckSpec {
    let pattern = f.required_string("process_name");
    // Matched as `pgrep -f` does, as a regular expression: one that does not compile is
    // a problem of this entry, never silently a substring.
    if !pattern.is_empty()
        && let Err(e) = regex::Regex::new(&pattern)
    {
        f.fail("process_name", &format!("not a valid regular expression: {}", regex_error(&e)));
    }
    CheckSpec::Process { pattern }
}

fn tls(f: &mut Fields<'_>) -> CheckSpec {
    let target = f.string("target");
    let (host, port) = match target {
        Some(t) => match split_host_port(&t) {
            Some(hp) => hp,
            None => {
                f.fail("target", "expected host, host:port or https://host[:port]");
                (String::new(), 443)
            }
        },
        None => {
            let host = f.required_string("host");
            (host, f.port("port").unwrap_or(443))
        }
    };
    let server_name = f.string("server_name").unwrap_or_else(|| host.clone());
    CheckSpec::Tls {
        host,
        port,
        server_name,
        warning_days: f.uint("warning_days", 36_500).unwrap_or(14) as i64,
        critical_days: f.uint("critical_days", 36_500).unwrap_or(0) as i64,
        tls_verify: f.boolean("tls_verify").unwrap_or(false),
    }
}

fn command(f: &mut Fields<'_>) -> CheckSpec {
    let command = match f.get("command") {
        Some(Value::String(s)) if !s.trim().is_empty() => CommandLine::Shell(s.clone()),
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => {
            CommandLine::Argv(a.iter().filter_map(Value::as_str).map(String::from).collect())
        }
        None => {
            f.fail("command", "missing (required)");
            CommandLine::Shell(String::new())
        }
        Some(_) => {
            f.fail("command", "expected a shell command string or an array of arguments");
            CommandLine::Shell(String::new())
        }
    };
    CheckSpec::Command { command, degraded_is_down: f.boolean("warning_is_down").unwrap_or(false) }
}

fn heartbeat(f: &mut Fields<'_>, defaults: &Defaults) -> CheckSpec {
    let max_age = f.uint("max_age_seconds", u64::MAX);
    match (f.string("path"), f.string("agent")) {
        (Some(path), _) => CheckSpec::Heartbeat(HeartbeatSpec::File {
            path: PathBuf::from(path),
            max_age_seconds: max_age.unwrap_or(3600),
        }),
        (None, Some(agent)) if !crate::util::is_safe_id(&agent) => {
            // The id names a file under the ticks directory: no path characters.
            f.fail("agent", "not a valid agent id (1-128 letters, digits, '-', '_', '.', not starting with '.')");
            CheckSpec::Heartbeat(HeartbeatSpec::File { path: PathBuf::new(), max_age_seconds: 0 })
        }
        (None, Some(agent)) => CheckSpec::Heartbeat(HeartbeatSpec::Tick {
            agent,
            ticks_dir: f.string("ticks_dir").map(PathBuf::from).unwrap_or_else(|| defaults.ticks_dir.clone()),
            max_age_seconds: max_age.unwrap_or(35 * 86_400),
        }),
        (None, None) => {
            f.fail("path", "missing (a heartbeat check needs path or agent)");
            CheckSpec::Heartbeat(HeartbeatSpec::File { path: PathBuf::new(), max_age_seconds: 0 })
        }
    }
}

/// A regex error on one line: its last line says what is wrong (`unclosed group`); the lines
/// before it draw the pattern with a caret.
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let why = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(&text).trim();
    why.strip_prefix("error: ").unwrap_or(why).to_string()
}

/// `host`, `host:port`, `[v6]:port`, or a URL with an optional port.
pub fn split_host_port(t: &str) -> Option<(String, u16)> {
    let t = t.trim();
    let (rest, default_port) = if let Some(r) = t.strip_prefix("https://") {
        (r, 443)
    } else if let Some(r) = t.strip_prefix("http://") {
        (r, 80)
    } else {
        (t, 443)
    };
    let hostport = rest.split(['/', '?', '#']).next().unwrap_or("");
    if hostport.is_empty() {
        return None;
    }
    if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => Some((h.to_string(), p.parse().ok().filter(|p| *p > 0)?)),
        Some(_) => None,
        None => Some((hostport.to_string(), default_port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("example.com"), Some(("example.com".into(), 443)));
        assert_eq!(split_host_port("https://e.com:8443/x"), Some(("e.com".into(), 8443)));
        assert_eq!(split_host_port("[::1]:9"), Some(("::1".into(), 9)));
        assert_eq!(split_host_port("e.com:x"), None);
    }
}
