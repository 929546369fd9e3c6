//! Gateways: the names agents give in their files' `gateway`, mapped to addresses pitcrew
//! checks, once per run, with the check engine ([`crate::check`]).
//!
//! A gateway's address comes from services.json's `gateways` object (pitcrew's own config),
//! else from the Lazarus Pit daemon's config when its `gateways` is such an object, else from
//! the name itself when it is an address (`http://…`, `host:port`). An address is
//!
//! * a string: an `http://` or `https://` URL (up when it answers 2xx) or `host:port` (up
//!   when a TCP connection opens);
//! * an object with one of `url`, `address` (`host:port`) or `command` (a shell command line,
//!   or a list of arguments run without a shell: up when it exits 0), and optionally
//!   `register_url` (where a revived agent is re-registered: see [`register`]) and `timeout`
//!   (seconds, default 5).
//!
//! Each gateway is checked at most once per run, however many cells and agents name it: the
//! first to ask runs the check, the others wait for its result.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::check::http::{BlockingClient, Request};
use crate::check::net;
use crate::check::{self, CheckEnv, CheckSpec, Job, UrlSpec};
use crate::clock::Clock;
use crate::config::CommandLine;
use crate::error::{Error, Result};
use crate::record::{Check, CheckStatus};

/// What a gateway check waits for when the config names no `timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// What cellscan's HTTP requests say they are.
const USER_AGENT: &str = concat!("pitcrew-cellscan/", env!("CARGO_PKG_VERSION"));

/// One gateway's address and what else the config says of it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GatewaySpec {
    pub(crate) check: CheckSpec,
    /// Where a revived agent is registered again (POST), if anywhere.
    pub(crate) register_url: Option<String>,
    pub(crate) timeout: Duration,
    /// Where the address was read (`services.json`, the Lazarus config, or the name itself).
    pub(crate) from: String,
}

/// The gateways of a run: their addresses and, once checked, their checks.
pub struct Gateways {
    specs: BTreeMap<String, GatewaySpec>,
    /// Names that are declared without an address (the daemon's list of names).
    declared: Vec<String>,
    checked: Mutex<BTreeMap<String, Arc<OnceLock<Check>>>>,
    env: Arc<CheckEnv>,
}

/// What a run knows of an agent's gateway.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Known {
    /// Checked: its check record (`name` is `gateway:<name>`).
    Checked(Box<Check>),
    /// Gateways are configured, and this name is none of them.
    Unknown,
    /// The name is declared (the Lazarus config's list of names) but has no address.
    NoAddress,
    /// No gateway is configured anywhere: nothing is checked.
    NotConfigured,
}

impl Gateways {
    /// The gateways of services.json's `gateways` (`config`, the file at `config_path`) and
    /// of the Lazarus config's (`lazarus`, read from `lazarus_path`); services.json wins.
    pub(crate) fn new(
        config: Option<(&Path, &Value)>,
        lazarus: Option<(&Path, &Value)>,
        clock: Clock,
    ) -> Result<Gateways> {
        let mut specs = BTreeMap::new();
        let mut declared = Vec::new();
        for (path, v) in [lazarus, config].into_iter().flatten() {
            match v {
                Value::Object(m) => {
                    for (name, addr) in m {
                        let spec = parse_address(addr)
                            .map_err(|why| Error::config(format!("{}: gateways.{name}: {why}", path.display())))?;
                        specs.insert(name.clone(), GatewaySpec { from: path.display().to_string(), ..spec });
                    }
                }
                // The daemon's own form: a list of names, no addresses.
                Value::Array(names) => {
                    for n in names {
                        match n.as_str() {
                            Some(s) if !s.trim().is_empty() => declared.push(s.to_string()),
                            _ => {
                                return Err(Error::config(format!(
                                    "{}: gateways: expected a list of names or an object of name: address, found {n}",
                                    path.display()
                                )));
                            }
                        }
                    }
                }
                Value::Null => {}
                other => {
                    return Err(Error::config(format!(
                        "{}: gateways: expected an object of name: address, found {other}",
                        path.display()
                    )));
                }
            }
        }
        Ok(Gateways {
            specs,
            declared,
            checked: Mutex::new(BTreeMap::new()),
            env: Arc::new(CheckEnv::new(clock, USER_AGENT)),
        })
    }

    /// No gateway configured.
    pub(crate) fn none(clock: Clock) -> Gateways {
        Gateways {
            specs: BTreeMap::new(),
            declared: Vec::new(),
            checked: Mutex::new(BTreeMap::new()),
            env: Arc::new(CheckEnv::new(clock, USER_AGENT)),
        }
    }

    /// The spec of a gateway: configured, or the name itself when it is an address.
    pub(crate) fn spec(&self, name: &str) -> Option<GatewaySpec> {
        if let Some(s) = self.specs.get(name) {
            return Some(s.clone());
        }
        let looks_like_address =
            name.starts_with("http://") || name.starts_with("https://") || net::host_port(name).is_some();
        if looks_like_address {
            return parse_address(&Value::String(name.to_string()))
                .ok()
                .map(|s| GatewaySpec { from: "the agent file".into(), ..s });
        }
        None
    }

    /// The one stderr line for gateways declared by name only (the daemon's list), if any.
    pub(crate) fn unaddressed_note(&self) -> Option<String> {
        let names: Vec<&str> =
            self.declared.iter().filter(|d| !self.specs.contains_key(*d)).map(String::as_str).collect();
        if names.is_empty() {
            return None;
        }
        Some(format!(
            "gateways {}: named without an address, not checked (give each one in services.json's gateways: a URL, host:port or a command)",
            names.join(", ")
        ))
    }

    /// Whether any gateway is configured (by address or by name).
    fn configured(&self) -> bool {
        !self.specs.is_empty() || !self.declared.is_empty()
    }

    /// The check of gateway `name`, run once per run (see [`Gateways::reset`]).
    pub(crate) fn status(&self, name: &str) -> Known {
        let Some(spec) = self.spec(name) else {
            return if self.declared.iter().any(|d| d == name) {
                Known::NoAddress
            } else if self.configured() {
                Known::Unknown
            } else {
                Known::NotConfigured
            };
        };
        let cell = match self.checked.lock() {
            Ok(mut m) => m.entry(name.to_string()).or_default().clone(),
            Err(_) => Arc::new(OnceLock::new()),
        };
        let c = cell.get_or_init(|| self.check_now(name, &spec));
        Known::Checked(Box::new(c.clone()))
    }

    /// Check gateway `name` now, whatever this run already knows (verifying a revival).
    pub(crate) fn check_now(&self, name: &str, spec: &GatewaySpec) -> Check {
        let job = Job::new(format!("gateway:{name}"), spec.check.clone(), spec.timeout);
        let mut c = check::run_one(job, &self.env);
        c.extra.insert("source".into(), "cellscan".into());
        c.extra.insert("gateway".into(), name.into());
        c
    }

    /// Every gateway checked in this run, by name.
    pub(crate) fn checks(&self) -> Vec<Check> {
        let Ok(m) = self.checked.lock() else { return Vec::new() };
        m.values().filter_map(|c| c.get().cloned()).collect()
    }

    /// Forget the checks (before the next scan of a watch).
    pub(crate) fn reset(&self) {
        if let Ok(mut m) = self.checked.lock() {
            m.clear();
        }
    }
}

/// Whether a check counts the gateway as down.
pub(crate) fn is_down(c: &Check) -> bool {
    c.status == CheckStatus::Down
}

/// An address as the config writes it.
fn parse_address(v: &Value) -> std::result::Result<GatewaySpec, String> {
    let spec = |check| GatewaySpec { check, register_url: None, timeout: DEFAULT_TIMEOUT, from: String::new() };
    match v {
        Value::String(s) => address_of(s).map(spec),
        Value::Object(m) => {
            let mut g = spec(object_check(m)?);
            if let Some(r) = m.get("register_url") {
                match r.as_str() {
                    Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                        g.register_url = Some(u.to_string())
                    }
                    _ => return Err(format!("register_url: expected an http:// or https:// URL, found {r}")),
                }
            }
            if let Some(t) = m.get("timeout") {
                match t.as_f64() {
                    Some(s) if s.is_finite() && s > 0.0 => g.timeout = Duration::from_secs_f64(s.min(3600.0)),
                    _ => return Err(format!("timeout: expected a positive number of seconds, found {t}")),
                }
            }
            for k in m.keys() {
                if !["url", "address", "command", "register_url", "timeout"].contains(&k.as_str()) {
                    return Err(format!("unknown key '{k}' (url, address, command, register_url, timeout)"));
                }
            }
            Ok(g)
        }
        other => Err(format!("expected a URL, host:port, or an object with url, address or command; found {other}")),
    }
}

fn object_check(m: &Map<String, Value>) -> std::result::Result<CheckSpec, String> {
    let given: Vec<&str> = ["url", "address", "command"].into_iter().filter(|k| m.contains_key(*k)).collect();
    match given.as_slice() {
        ["url"] => match m.get("url").and_then(Value::as_str) {
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => Ok(url_check(u)),
            _ => Err("url: expected an http:// or https:// URL".into()),
        },
        ["address"] => match m.get("address").and_then(Value::as_str).and_then(net::host_port) {
            Some((host, port)) => Ok(CheckSpec::Port { host, port }),
            None => Err("address: expected host:port".into()),
        },
        ["command"] => {
            let command = match m.get("command") {
                Some(Value::String(s)) if !s.trim().is_empty() => CommandLine::Shell(s.clone()),
                Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => {
                    CommandLine::Argv(a.iter().filter_map(Value::as_str).map(String::from).collect())
                }
                _ => return Err("command: expected a shell command line or a list of arguments".into()),
            };
            Ok(CheckSpec::Command { command, degraded_is_down: true })
        }
        [] => Err("expected one of url, address or command".into()),
        _ => Err(format!("give one of url, address or command, not {}", given.join(" and "))),
    }
}

fn address_of(s: &str) -> std::result::Result<CheckSpec, String> {
    let s = s.trim();
    if s.starts_with("http://") || s.starts_with("https://") {
        return Ok(url_check(s));
    }
    match net::host_port(s) {
        Some((host, port)) => Ok(CheckSpec::Port { host, port }),
        None => Err(format!("'{s}' is neither an http(s):// URL nor host:port (a command goes in {{\"command\": …}})")),
    }
}

/// A GET that must answer 2xx.
fn url_check(url: &str) -> CheckSpec {
    CheckSpec::Url(Box::new(UrlSpec::get(url, 200..300)))
}

/// Re-register a revived agent with its gateway: POST `body` (JSON) to `url`; `Ok` with what
/// the gateway answered when it answered 2xx.
pub(crate) fn register(url: &str, body: &Value, timeout: Duration) -> std::result::Result<String, String> {
    let client = BlockingClient::new(USER_AGENT).map_err(|e| format!("cannot start the HTTP client: {e}"))?;
    let bytes = body.to_string().into_bytes();
    let headers = vec![("Content-Type".to_string(), "application/json".to_string())];
    let mut req = Request::get(url, timeout);
    req.method = "POST";
    req.body = Some(&bytes);
    req.headers = &headers;
    req.follow_redirects = false;
    req.body_limit = Some(64 * 1024);
    let resp = client.fetch(&req).map_err(|e| format!("POST {}: {e}", crate::util::redact::redact_url(url)))?;
    let body = resp.body.unwrap_or_default();
    let said = crate::util::truncate(crate::util::first_line(&body), 200).to_string();
    if (200..300).contains(&resp.status) {
        Ok(format!("HTTP {}", resp.status))
    } else {
        Err(format!(
            "POST {}: HTTP {}{}",
            crate::util::redact::redact_url(url),
            resp.status,
            if said.is_empty() { String::new() } else { format!(": {said}") }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn addresses_as_strings_and_objects() {
        let v = json!({
            "web": "http://127.0.0.1:8001/health",
            "tcp": "127.0.0.1:9000",
            "cmd": {"command": ["true"], "register_url": "http://127.0.0.1:8001/register", "timeout": 2}
        });
        let g = Gateways::new(Some((Path::new("s.json"), &v)), None, Clock::system()).unwrap();
        assert_eq!(g.spec("web").unwrap().check.type_name(), "url");
        assert_eq!(g.spec("tcp").unwrap().check, CheckSpec::Port { host: "127.0.0.1".into(), port: 9000 });
        let cmd = g.spec("cmd").unwrap();
        assert_eq!((cmd.check.type_name(), cmd.timeout), ("command", Duration::from_secs(2)));
        assert_eq!(cmd.register_url.as_deref(), Some("http://127.0.0.1:8001/register"));
        assert_eq!(g.spec("gw.example:8443").unwrap().check.type_name(), "port", "an address names itself");
        assert!(g.spec("gateway_9").is_none());
        assert_eq!(g.status("gateway_9"), Known::Unknown);
    }

    #[test]
    fn bad_addresses_name_the_file_and_the_gateway() {
        for (v, want) in [
            (json!({"g": "gateway-host"}), "s.json: gateways.g: 'gateway-host' is neither"),
            (json!({"g": {"url": "x", "address": "h:1"}}), "gateways.g: give one of url, address or command"),
            (json!({"g": {"address": "h:1", "retries": 2}}), "gateways.g: unknown key 'retries'"),
            (json!(["g", 3]), "s.json: gateways: expected a list of names"),
        ] {
            let e = Gateways::new(Some((Path::new("s.json"), &v)), None, Clock::system()).err().unwrap().to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn services_json_wins_over_the_lazarus_config_and_names_alone_declare() {
        let lz = json!({"g": "127.0.0.1:1", "h": "127.0.0.1:2"});
        let sj = json!({"g": "127.0.0.1:3"});
        let g =
            Gateways::new(Some((Path::new("s.json"), &sj)), Some((Path::new("l.json"), &lz)), Clock::system()).unwrap();
        assert_eq!(g.spec("g").unwrap().check, CheckSpec::Port { host: "127.0.0.1".into(), port: 3 });
        assert_eq!(g.spec("h").unwrap().from, "l.json");
        let names = json!(["gateway_1"]);
        let g = Gateways::new(None, Some((Path::new("l.json"), &names)), Clock::system()).unwrap();
        assert_eq!(g.status("gateway_1"), Known::NoAddress, "declared, but no address to check");
        assert_eq!(g.status("gateway_2"), Known::Unknown);
        let none = Gateways::new(None, None, Clock::system()).unwrap();
        assert_eq!(none.status("gateway_1"), Known::NotConfigured);
    }
}
