//! An agent's vitals, checked for real: is its gateway running, is its home directory
//! usable, is its config valid. And the status a tick reports when it is derived from them.
//!
//! * The gateway is a process pattern (matched like `pgrep -f`, never matching tickmon or the
//!   shell that started it), `host:port` (a TCP connection opens), or an http(s) URL (it
//!   answers below 400). `process:`, `tcp:` prefixes make the kind explicit.
//! * The home directory exists, is a directory, can be listed, and a file can be created,
//!   written and removed in it.
//! * The config file exists and is a file; a `.json` file must parse as JSON, any other must
//!   be readable and not empty.
//!
//! The gateway is a check spec run by the check engine ([`crate::check`]), as probe runs its
//! services. Every check runs under a time limit (a hung NFS mount or a DNS lookup cannot
//! stall the submission); one that overstays it counts as failed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use serde_json::{Map, Value};

use super::tick::{CORE_VITALS, TickStatus};
use crate::check::net;
use crate::check::{self, CheckEnv, CheckSpec, Job, UrlSpec};
use crate::clock::Clock;
use crate::record::{Check, CheckStatus};

/// What tickmon's HTTP requests say they are.
const USER_AGENT: &str = concat!("pitcrew-tickmon/", env!("CARGO_PKG_VERSION"));

/// The outcome of one vital check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Vital {
    pub(crate) ok: bool,
    pub(crate) detail: String,
}

impl Vital {
    pub(crate) fn ok(detail: impl Into<String>) -> Vital {
        Vital { ok: true, detail: detail.into() }
    }

    pub(crate) fn failed(detail: impl Into<String>) -> Vital {
        Vital { ok: false, detail: detail.into() }
    }
}

/// What a gateway spec names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Gateway {
    Process(String),
    Tcp(String, u16),
    Http(String),
}

impl Gateway {
    pub(crate) fn parse(spec: &str) -> Gateway {
        let s = spec.trim();
        if let Some(p) = s.strip_prefix("process:") {
            return Gateway::Process(p.to_string());
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            return Gateway::Http(s.to_string());
        }
        let hp = s.strip_prefix("tcp:").unwrap_or(s);
        if let Some((host, port)) = net::host_port(hp) {
            return Gateway::Tcp(host, port);
        }
        Gateway::Process(s.to_string())
    }

    /// The gateway as the check engine runs it: a process, a port, or a URL that answers
    /// below 400 (redirects followed).
    pub(crate) fn job(&self, timeout: Duration) -> Job {
        let spec = match self {
            Gateway::Process(p) => CheckSpec::Process { pattern: p.clone() },
            Gateway::Tcp(host, port) => CheckSpec::Port { host: host.clone(), port: *port },
            Gateway::Http(url) => CheckSpec::Url(Box::new(UrlSpec::get(url, 100..400))),
        };
        Job::new("gateway", spec, timeout)
    }
}

/// Run the gateway's check with the engine.
fn run(gw: &Gateway, timeout: Duration) -> Check {
    let env = Arc::new(CheckEnv::new(Clock::system(), USER_AGENT));
    check::run_one(gw.job(timeout), &env)
}

/// Run `f` with a time limit; past it the vital has failed. The thread is left to finish on
/// its own (it holds nothing the caller needs).
fn bounded(timeout: Duration, what: &str, f: impl FnOnce() -> Vital + Send + 'static) -> Vital {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(timeout) {
        Ok(v) => v,
        Err(_) => {
            Vital::failed(format!("{what}: no answer within {}", crate::clock::human_duration(timeout.as_secs())))
        }
    }
}

/// Is the gateway running?
pub(crate) fn check_gateway(spec: &str, timeout: Duration) -> Vital {
    match Gateway::parse(spec) {
        Gateway::Process(p) => check_process(&p, timeout),
        gw @ Gateway::Tcp(..) => check_tcp(&gw, timeout),
        gw @ Gateway::Http(..) => check_http(&gw, timeout),
    }
}

fn check_process(pattern: &str, timeout: Duration) -> Vital {
    if pattern.is_empty() {
        return Vital::failed("gateway: empty process pattern");
    }
    let c = run(&Gateway::Process(pattern.to_string()), timeout);
    let Some(pids) = c.pids else {
        return match c.detail.as_str() {
            "not running" => Vital::failed(format!("no process matches '{pattern}'")),
            why => Vital::failed(format!("cannot list processes: {why}")),
        };
    };
    let ancestors = ancestors();
    let pids: Vec<u32> = pids.into_iter().filter(|p| !ancestors.contains(p)).collect();
    if pids.is_empty() {
        Vital::failed(format!("no process matches '{pattern}'"))
    } else {
        let shown: Vec<String> = pids.iter().take(5).map(u32::to_string).collect();
        Vital::ok(format!("process '{pattern}' running (pid {})", shown.join(", ")))
    }
}

/// This process's ancestors: the shell or cron job that started tickmon has the pattern on
/// its own command line and must not count as the gateway.
fn ancestors() -> Vec<u32> {
    let mut out = Vec::new();
    let mut pid = std::process::id();
    for _ in 0..64 {
        let Ok(stat) =
            crate::store::read::read_text(Path::new(&format!("/proc/{pid}/stat")), crate::store::kinds::PROC)
        else {
            break;
        };
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            break;
        };
        if ppid <= 1 {
            break;
        }
        out.push(ppid);
        pid = ppid;
    }
    out
}

fn check_tcp(gw: &Gateway, timeout: Duration) -> Vital {
    let c = run(gw, timeout);
    let (host, port) = match gw {
        Gateway::Tcp(h, p) => (h.as_str(), *p),
        _ => ("", 0),
    };
    if c.status == CheckStatus::Up {
        return Vital::ok(format!("{host}:{port} accepts connections"));
    }
    let why = c.detail.strip_prefix(&format!("port {port}: ")).unwrap_or(&c.detail);
    Vital::failed(format!("{host}:{port}: {why}"))
}

fn check_http(gw: &Gateway, timeout: Duration) -> Vital {
    let c = run(gw, timeout);
    // The target as records show it: credentials in the URL stay out of the tick.
    let url = c.target.as_deref().unwrap_or_default();
    match (c.status, c.http_status) {
        (CheckStatus::Down, None) => Vital::failed(format!("{url}: {}", c.detail)),
        (CheckStatus::Down, Some(code)) => Vital::failed(format!("{url}: HTTP {code}")),
        (_, code) => Vital::ok(format!("{url}: HTTP {}", code.unwrap_or(0))),
    }
}

/// Is the home directory there, listable and writable?
pub(crate) fn check_home(dir: &Path, timeout: Duration) -> Vital {
    let dir = dir.to_path_buf();
    bounded(timeout, &format!("home {}", dir.display()), move || home_vital(&dir))
}

fn home_vital(dir: &Path) -> Vital {
    let shown = dir.display();
    match std::fs::metadata(dir) {
        Err(e) => return Vital::failed(format!("{shown}: {e}")),
        Ok(m) if !m.is_dir() => return Vital::failed(format!("{shown}: not a directory")),
        Ok(_) => {}
    }
    if let Err(e) = std::fs::read_dir(dir) {
        return Vital::failed(format!("{shown}: cannot list: {e}"));
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let probe: PathBuf = dir.join(format!(".tickmon-vital-{}-{nanos}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|mut f| f.write_all(b"tick\n").and_then(|()| f.sync_all()));
    let removed = if written.is_ok() || probe.exists() { std::fs::remove_file(&probe) } else { Ok(()) };
    match (written, removed) {
        (Ok(()), Ok(())) => Vital::ok(format!("{shown} is readable and writable")),
        (Err(e), _) => Vital::failed(format!("{shown}: cannot create a file: {e}")),
        (Ok(()), Err(e)) => Vital::failed(format!("{shown}: cannot remove a file: {e}")),
    }
}

/// Is the config file there and valid?
pub(crate) fn check_config(path: &Path, timeout: Duration) -> Vital {
    let path = path.to_path_buf();
    bounded(timeout, &format!("config {}", path.display()), move || config_vital(&path))
}

fn config_vital(path: &Path) -> Vital {
    let shown = path.display();
    match std::fs::metadata(path) {
        Err(e) => return Vital::failed(format!("{shown}: {e}")),
        Ok(m) if !m.is_file() => return Vital::failed(format!("{shown}: not a file")),
        Ok(_) => {}
    }
    let bytes = match crate::store::read::read(path, crate::store::kinds::AGENT_CONFIG) {
        Ok(b) => b,
        Err(e) => return Vital::failed(format!("{shown}: {e}")),
    };
    let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(_) => Vital::ok(format!("{shown} is valid JSON")),
            Err(e) => Vital::failed(format!("invalid JSON: {}", crate::ndjson::doc_error(path, &e))),
        }
    } else if bytes.iter().all(u8::is_ascii_whitespace) {
        Vital::failed(format!("{shown} is empty"))
    } else {
        Vital::ok(format!("{shown} is readable ({} bytes)", bytes.len()))
    }
}

/// The status of a tick whose vitals and capabilities are these: every core vital that was
/// checked false is offline; any core vital false is critical; any other vital or any
/// capability false is degraded; else healthy. A core vital that is not a boolean (a gateway
/// nobody configured is `null`) was not checked and counts neither way.
pub(crate) fn derive_status(vitals: &Map<String, Value>, capabilities: &Map<String, Value>) -> TickStatus {
    let is_false = |v: &Value| v.as_bool() == Some(false);
    let checked = CORE_VITALS.iter().filter(|k| vitals.get(**k).is_some_and(Value::is_boolean)).count();
    let core_down = CORE_VITALS.iter().filter(|k| vitals.get(**k).is_some_and(is_false)).count();
    if core_down > 0 && core_down == checked {
        TickStatus::Offline
    } else if core_down > 0 {
        TickStatus::Critical
    } else if vitals.values().any(is_false) || capabilities.values().any(is_false) {
        TickStatus::Degraded
    } else {
        TickStatus::Healthy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pitcrew-vitals-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn gateway_specs() {
        assert_eq!(Gateway::parse("127.0.0.1:8642"), Gateway::Tcp("127.0.0.1".into(), 8642));
        assert_eq!(Gateway::parse("tcp:gw.local:80"), Gateway::Tcp("gw.local".into(), 80));
        assert_eq!(Gateway::parse("[::1]:9"), Gateway::Tcp("::1".into(), 9));
        assert_eq!(Gateway::parse("http://x/health"), Gateway::Http("http://x/health".into()));
        assert_eq!(Gateway::parse("agent-gateway"), Gateway::Process("agent-gateway".into()));
        assert_eq!(Gateway::parse("python.*:run"), Gateway::Process("python.*:run".into()));
        assert_eq!(Gateway::parse("process:a:1"), Gateway::Process("a:1".into()));
    }

    #[test]
    fn tcp_gateway_is_connected_to() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(check_gateway(&format!("127.0.0.1:{port}"), T).ok);
        drop(l);
        let v = check_gateway(&format!("127.0.0.1:{port}"), T);
        assert!(!v.ok && v.detail.contains("refused"), "{v:?}");
    }

    #[test]
    fn process_gateway_never_matches_tickmon_or_its_parents() {
        let v = check_gateway("no-such-gateway-process-zq9", T);
        assert!(!v.ok, "{v:?}");
        // The test binary's own parent (cargo or nextest) is an ancestor: never a match.
        let me = std::fs::read_to_string("/proc/self/cmdline").unwrap();
        let first = me.split('\0').next().unwrap();
        assert!(!ancestors().contains(&std::process::id()));
        assert!(!check_process(&regex::escape(first), T).detail.contains(&std::process::id().to_string()));
    }

    #[test]
    fn home_must_be_writable() {
        let d = tmpdir("home");
        assert!(check_home(&d, T).ok);
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0, "the probe file is removed");
        let v = check_home(&d.join("nope"), T);
        assert!(!v.ok && v.detail.contains("No such file"), "{v:?}");
        let f = d.join("file");
        std::fs::write(&f, "x").unwrap();
        assert!(check_home(&f, T).detail.contains("not a directory"));
    }

    #[test]
    fn config_must_parse_when_json() {
        let d = tmpdir("config");
        let good = d.join("c.json");
        std::fs::write(&good, r#"{"model":"x"}"#).unwrap();
        assert!(check_config(&good, T).ok);
        let bad = d.join("bad.json");
        std::fs::write(&bad, "{\"model\":").unwrap();
        let v = check_config(&bad, T);
        assert!(!v.ok && v.detail.contains("bad.json:1:"), "{v:?}");
        let yaml = d.join("config.yaml");
        std::fs::write(&yaml, "model: x\n").unwrap();
        assert!(check_config(&yaml, T).ok);
        std::fs::write(&yaml, "  \n").unwrap();
        assert!(!check_config(&yaml, T).ok);
        assert!(!check_config(&d.join("missing.json"), T).ok);
    }

    #[test]
    fn status_follows_the_vitals() {
        let v = |g: bool, h: bool, c: bool| {
            json!({"gateway_running": g, "home_directory_accessible": h, "config_valid": c})
                .as_object()
                .unwrap()
                .clone()
        };
        let none = Map::new();
        assert_eq!(derive_status(&v(true, true, true), &none), TickStatus::Healthy);
        assert_eq!(derive_status(&v(false, true, true), &none), TickStatus::Critical);
        assert_eq!(derive_status(&v(true, true, false), &none), TickStatus::Critical);
        assert_eq!(derive_status(&v(false, false, false), &none), TickStatus::Offline);
        let caps = json!({"code": true, "deploy": false}).as_object().unwrap().clone();
        assert_eq!(derive_status(&v(true, true, true), &caps), TickStatus::Degraded);
        // A gateway nobody configured is not checked: the other two decide.
        let mut no_gw = v(true, true, true);
        no_gw.insert("gateway_running".into(), Value::Null);
        assert_eq!(derive_status(&no_gw, &none), TickStatus::Healthy);
        no_gw.insert("config_valid".into(), json!(false));
        assert_eq!(derive_status(&no_gw, &none), TickStatus::Critical);
        no_gw.insert("home_directory_accessible".into(), json!(false));
        assert_eq!(derive_status(&no_gw, &none), TickStatus::Offline);
        let mut extra = v(true, true, true);
        extra.insert("disk_ok".into(), json!(false));
        assert_eq!(derive_status(&extra, &none), TickStatus::Degraded);
    }
}
