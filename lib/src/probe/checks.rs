//! One check of one service, for every check type. [`check_one`] never fails: whatever goes
//! wrong becomes a `down` record whose detail says why.

use std::collections::HashMap;
use std::io::Read;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use time::OffsetDateTime;
use ureq::RequestExt;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{ConnectProxyConnector, Connector, RustlsConnector, TcpConnector};

use super::cafile::CaFileTls;
use super::plugin;
use super::procs::ProcTable;
use super::tls;
use crate::clock::{self, Clock};
use crate::config::{CheckSpec, HeartbeatSpec, Service, UrlSpec};
use crate::record::{Check, CheckStatus};
use crate::util::{self, proc};

/// The most of a response body read for body and JSON checks.
const BODY_LIMIT: u64 = 1 << 20;

type TlsCache = Mutex<HashMap<(bool, Option<PathBuf>), Result<TlsConfig, String>>>;

/// What every check of one run shares: the clock, one HTTP agent (connection pool), TLS
/// settings by kind, and one snapshot of the process table.
pub struct CheckEnv {
    pub clock: Clock,
    agent: ureq::Agent,
    procs: ProcTable,
    tls: TlsCache,
}

impl CheckEnv {
    pub fn new(clock: Clock) -> CheckEnv {
        // No connection reuse: every check measures a fresh connection, as the Agent Ops Kit's did, and
        // a server that mishandles keep-alive cannot make one check hang on another's socket.
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(concat!("pitcrew-probe/", env!("CARGO_PKG_VERSION")))
            .max_idle_connections(0)
            // Health endpoints answer small: modest buffers keep hundreds of concurrent checks
            // within a few MiB (ureq's default is 128 KiB each way per request).
            .input_buffer_size(32 * 1024)
            .output_buffer_size(16 * 1024)
            .max_response_header_size(32 * 1024)
            .max_idle_connections_per_host(0)
            .build();
        // ureq's own connector chain, with one more link before its TLS: a `ca_file` is read
        // as curl reads it (see `cafile`).
        let connector =
            ().chain(ConnectProxyConnector::default())
                .chain(TcpConnector::default())
                .chain(CaFileTls::default())
                .chain(RustlsConnector::default());
        let agent = ureq::Agent::with_parts(config, connector, DefaultResolver::default());
        CheckEnv { clock, agent, procs: ProcTable::new(), tls: Mutex::new(HashMap::new()) }
    }

    /// The process table (read on first use by a process check).
    pub fn procs(&self) -> &ProcTable {
        &self.procs
    }

    fn tls_config(&self, verify: bool, ca_file: Option<&PathBuf>) -> Result<TlsConfig, String> {
        let key = (verify, ca_file.cloned());
        let mut cache = self.tls.lock().map_err(|_| "internal lock poisoned".to_string())?;
        cache
            .entry(key)
            .or_insert_with(|| {
                let mut b = TlsConfig::builder().disable_verification(!verify);
                if let Some(path) = ca_file {
                    let pem = crate::store::read::read(path, crate::store::kinds::CA_FILE)
                        .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                    let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
                        .filter_map(|item| match item {
                            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                            _ => None,
                        })
                        .collect();
                    if certs.is_empty() {
                        return Err(format!("ca_file {}: no certificate found", path.display()));
                    }
                    b = b.root_certs(RootCerts::Specific(Arc::new(certs)));
                }
                Ok(b.build())
            })
            .clone()
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

/// Run the service's check and describe the result as a `check` record.
pub fn check_one(svc: &Service, env: &CheckEnv) -> Check {
    let timestamp = env.clock.stamp();
    let start = Instant::now();
    let mut c = Check::new(&svc.name, svc.type_name(), &svc.target(), CheckStatus::Down, String::new());
    match &svc.spec {
        CheckSpec::Url(u) => url_check(u, svc.timeout, env, &mut c),
        CheckSpec::Port { host, port } => port_check(host, *port, svc.timeout, &mut c),
        CheckSpec::Process { pattern } => match env.procs.matching(pattern) {
            Ok(pids) if !pids.is_empty() => {
                c.status = CheckStatus::Up;
                c.detail = format!("{} process(es) running", pids.len());
                c.pids = Some(pids);
            }
            Ok(_) => c.detail = "not running".into(),
            Err(e) => c.detail = e,
        },
        CheckSpec::Disk { path, warning_gb } => match nix::sys::statvfs::statvfs(path) {
            Ok(st) => {
                let free = st.blocks_available() as f64 * st.fragment_size() as f64 / (1024.0 * 1024.0 * 1024.0);
                c.free_gb = Some((free * 100.0).round() / 100.0);
                c.detail = format!("{free:.1} GB free");
                if free > *warning_gb {
                    c.status = CheckStatus::Up;
                } else {
                    c.detail.push_str(&format!(" (warning at {warning_gb} GB)"));
                }
            }
            Err(e) => c.detail = format!("{}: {e}", path.display()),
        },
        CheckSpec::Tls { host, port, server_name, warning_days, critical_days, tls_verify } => {
            match tls::inspect(host, *port, server_name, svc.timeout, *tls_verify) {
                Ok(info) => {
                    let left = (info.not_after - env.clock.now()).whole_seconds().div_euclid(86_400);
                    c.days_left = Some(left);
                    c.not_after = Some(clock::fmt_ts(info.not_after));
                    c.extra.insert("subject".into(), Value::String(info.subject));
                    c.extra.insert("issuer".into(), Value::String(info.issuer));
                    if let Some(err) = info.verify_error {
                        c.detail = err;
                    } else if left < 0 {
                        c.detail = format!("certificate expired {} day(s) ago", -left);
                    } else if left < *critical_days {
                        c.detail = format!("certificate expires in {left} day(s) (critical under {critical_days})");
                    } else if left < *warning_days {
                        c.status = CheckStatus::Degraded;
                        c.detail = format!("certificate expires in {left} day(s) (warning under {warning_days})");
                    } else {
                        c.status = CheckStatus::Up;
                        c.detail = format!("certificate valid for {left} day(s)");
                    }
                }
                Err(e) => c.detail = e,
            }
        }
        CheckSpec::Command { command, degraded_is_down } => {
            let mut spec = proc::Spec::new(command, svc.timeout);
            spec.capture_limit = 64 * 1024;
            match proc::run(&spec) {
                Ok(o) => {
                    let out = plugin::parse_output(&o.stdout);
                    c.exit_code = o.exit_code;
                    c.status = plugin::status_of_exit(o.exit_code, *degraded_is_down);
                    c.detail = if o.timed_out {
                        format!("plugin {}", o.describe())
                    } else if !out.summary.is_empty() {
                        out.summary
                    } else if !util::first_line(&o.stderr).is_empty() {
                        util::first_line(&o.stderr).to_string()
                    } else {
                        o.describe()
                    };
                    if !out.perf.is_empty() {
                        c.perfdata = Some(out.perf);
                    }
                    if !out.long_text.is_empty() {
                        c.extra.insert("long_output".into(), Value::String(out.long_text.join("\n")));
                    }
                }
                Err(e) => c.detail = format!("cannot run: {e}"),
            }
        }
        CheckSpec::Heartbeat(h) => heartbeat_check(h, env, &mut c),
    }
    c.detail = util::truncate(&c.detail, 300);
    c.latency_ms = ms(start.elapsed());
    c.timestamp = timestamp;
    apply_latency_limits(svc, &mut c);
    c
}

fn url_check(u: &UrlSpec, timeout: Duration, env: &CheckEnv, c: &mut Check) {
    let tls = match env.tls_config(u.tls_verify, u.ca_file.as_ref()) {
        Ok(t) => t,
        Err(e) => {
            c.detail = e;
            return;
        }
    };
    let mut builder = ureq::http::Request::builder().method(u.method.as_str()).uri(u.target.as_str());
    for (k, v) in &u.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let redirects = if u.follow_redirects { 10 } else { 0 };
    let sent = match &u.body {
        Some(body) => builder.body(body.clone().into_bytes()).map_err(|e| e.to_string()).and_then(|req| {
            req.with_agent(&env.agent)
                .configure()
                .timeout_global(Some(timeout))
                .max_redirects(redirects)
                .max_redirects_will_error(false)
                .tls_config(tls)
                .build()
                .run()
                .map_err(|e| util::http::describe(&e, timeout))
        }),
        None => builder.body(()).map_err(|e| e.to_string()).and_then(|req| {
            req.with_agent(&env.agent)
                .configure()
                .timeout_global(Some(timeout))
                .max_redirects(redirects)
                .max_redirects_will_error(false)
                .tls_config(tls)
                .build()
                .run()
                .map_err(|e| util::http::describe(&e, timeout))
        }),
    };
    let mut resp = match sent {
        Ok(r) => r,
        Err(e) => {
            c.detail = crate::util::redact::redact_in(&e, &u.target);
            return;
        }
    };
    let code = resp.status().as_u16();
    c.http_status = Some(code);
    if !u.expected_status.contains(&code) {
        let want: Vec<String> = u.expected_status.iter().map(u16::to_string).collect();
        c.detail = format!("HTTP {code} (expected {})", want.join(" or "));
        return;
    }
    if u.body_contains.is_some() || u.json_field.is_some() {
        let mut body = String::new();
        let read = resp
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .lossy_utf8(true)
            .reader()
            .take(BODY_LIMIT)
            .read_to_string(&mut body);
        if let Err(e) = read {
            c.detail = format!("HTTP {code}, reading body: {e}");
            return;
        }
        if let Some(needle) = &u.body_contains {
            if !body.contains(needle.as_str()) {
                c.detail = format!("HTTP {code}, body does not contain {needle:?}");
                return;
            }
        }
        if let Some((path, want)) = &u.json_field {
            let doc: Value = match serde_json::from_str(&body) {
                Ok(v) => v,
                Err(e) => {
                    c.detail = format!("HTTP {code}, body is not JSON: {e}");
                    return;
                }
            };
            match json_path(&doc, path) {
                Some(got) if got == want => {}
                Some(got) => {
                    c.detail = format!("HTTP {code}, {path} = {got} (expected {want})");
                    return;
                }
                None => {
                    c.detail = format!("HTTP {code}, {path} is missing (expected {want})");
                    return;
                }
            }
        }
    }
    c.status = CheckStatus::Up;
    c.detail = format!("HTTP {code}");
}

/// Apply a url check's latency limits once its latency is known.
fn apply_latency_limits(svc: &Service, c: &mut Check) {
    let CheckSpec::Url(u) = &svc.spec else { return };
    if c.status == CheckStatus::Down {
        return;
    }
    if let Some(max) = u.max_latency_ms {
        if c.latency_ms > max {
            c.status = CheckStatus::Down;
            c.detail = format!("{} in {}ms (max {max}ms)", c.detail, c.latency_ms);
            return;
        }
    }
    if let Some(slow) = u.degraded_latency_ms {
        if c.latency_ms > slow {
            c.status = CheckStatus::Degraded;
            c.detail = format!("{}, slow: {}ms (degraded over {slow}ms)", c.detail, c.latency_ms);
        }
    }
}

/// Follow a dotted path (`a.b.0.c`) into a JSON document.
pub fn json_path<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = doc;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        cur = match cur {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn port_check(host: &str, port: u16, timeout: Duration, c: &mut Check) {
    let deadline = Instant::now() + timeout;
    let addrs = match (host, port).to_socket_addrs() {
        Ok(a) => a.collect::<Vec<_>>(),
        Err(e) => {
            c.detail = format!("port {port}: cannot resolve {host}: {e}");
            return;
        }
    };
    let mut why = format!("port {port}: no address for {host}");
    let timed_out = format!("port {port}: connect timed out after {}", util::http::seconds(timeout));
    for a in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            why = timed_out;
            break;
        }
        match TcpStream::connect_timeout(&a, left) {
            Ok(_) => {
                c.status = CheckStatus::Up;
                c.detail = format!("port {port} open");
                return;
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) => {
                why = timed_out.clone();
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                why = format!("port {port}: connection refused")
            }
            Err(e) => why = format!("port {port}: {e}"),
        }
    }
    c.detail = why;
}

fn heartbeat_check(h: &HeartbeatSpec, env: &CheckEnv, c: &mut Check) {
    let now = env.clock.now();
    match h {
        HeartbeatSpec::File { path, max_age_seconds } => {
            let mtime = match std::fs::metadata(path).and_then(|m| m.modified()) {
                Ok(t) => t,
                Err(e) => {
                    c.detail = format!("no heartbeat: {}: {e}", path.display());
                    return;
                }
            };
            judge_age(OffsetDateTime::from(mtime), now, *max_age_seconds, c);
        }
        HeartbeatSpec::Tick { agent, ticks_dir, max_age_seconds } => {
            let this_month = now.date().replace_day(1).unwrap_or(now.date());
            let last_month = this_month.previous_day().unwrap_or(this_month);
            let mut found = None;
            for m in [this_month, last_month] {
                let p = ticks_dir.join(clock::fmt_month(m)).join(format!("{agent}.json"));
                match crate::store::read::read(&p, crate::store::kinds::TICK) {
                    Ok(b) => {
                        found = Some((p, b));
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        c.detail = format!("cannot read {}: {e}", p.display());
                        return;
                    }
                }
            }
            let Some((path, bytes)) = found else {
                c.detail = format!("no tick from {agent} this month or last");
                return;
            };
            let tick: Value = match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(e) => {
                    c.detail = format!("{}: {}", path.display(), e);
                    return;
                }
            };
            let stamp = ["timestamp", "submitted_at", "tick_time"]
                .iter()
                .find_map(|k| tick.get(*k).and_then(Value::as_str).and_then(clock::parse_ts))
                .or_else(|| std::fs::metadata(&path).and_then(|m| m.modified()).ok().map(OffsetDateTime::from))
                .unwrap_or(OffsetDateTime::from(SystemTime::UNIX_EPOCH));
            judge_age(stamp, now, *max_age_seconds, c);
            let status = tick.get("status").and_then(Value::as_str).unwrap_or("");
            match status {
                "critical" | "offline" => {
                    c.status = CheckStatus::Down;
                    c.detail = format!("tick status {status}; {}", c.detail);
                }
                "degraded" if c.status == CheckStatus::Up => {
                    c.status = CheckStatus::Degraded;
                    c.detail = format!("tick status degraded; {}", c.detail);
                }
                _ => {}
            }
        }
    }
}

fn judge_age(at: OffsetDateTime, now: OffsetDateTime, max: u64, c: &mut Check) {
    let age = (now - at).whole_seconds().max(0) as u64;
    c.age_s = Some(age);
    if age > max {
        c.detail = format!("last heartbeat {} ago (max {})", clock::human_duration(age), clock::human_duration(max));
    } else {
        c.status = CheckStatus::Up;
        c.detail = format!("last heartbeat {} ago", clock::human_duration(age));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths() {
        let v: Value = serde_json::json!({"a": {"b": [1, {"c": "ok"}]}});
        assert_eq!(json_path(&v, "a.b.1.c"), Some(&Value::from("ok")));
        assert_eq!(json_path(&v, "a.b.5"), None);
        assert_eq!(json_path(&v, "a.x"), None);
    }
}
