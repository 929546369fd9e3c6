//! One check of one service, for every check type. A check never fails: whatever goes wrong
//! becomes a `down` record whose detail says why.
//!
//! url, port and tls checks are network work and run on the runtime ([`network`]); process,
//! disk, command and heartbeat checks read files or run programs and run on the blocking pool
//! ([`blocking`]). Either way [`finish`] gives the record its latency, timestamp and limits.

use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use time::OffsetDateTime;
use tokio::time::Instant as TokioInstant;

use super::net::{self, ConnectError};
use super::spec::{CheckSpec, HeartbeatSpec, UrlSpec};
use super::{CheckEnv, Job, http, plugin, tls};
use crate::clock;
use crate::record::{Check, CheckStatus};
use crate::util::{self, proc};

/// The most of a response body read for body and JSON checks.
const BODY_LIMIT: usize = 1 << 20;

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

/// A check started at `started` (`timestamp` then) is done: cut its detail, note its latency
/// and timestamp, apply a url check's latency limits.
pub(crate) fn finish(job: &Job, mut c: Check, started: Instant, timestamp: String) -> Check {
    c.detail = util::truncate(&c.detail, 300);
    c.latency_ms = ms(started.elapsed());
    c.timestamp = timestamp;
    apply_latency_limits(job, &mut c);
    c
}

/// Run a url, port or tls check.
pub(crate) async fn network(job: &Job, env: &CheckEnv) -> Check {
    let timestamp = env.clock.stamp();
    let started = Instant::now();
    let mut c = job.record(CheckStatus::Down, String::new());
    match &job.spec {
        CheckSpec::Url(u) => url_check(u, job.timeout, env, &mut c).await,
        CheckSpec::Port { host, port } => port_check(host, *port, job.timeout, &mut c).await,
        CheckSpec::Tls { host, port, server_name, warning_days, critical_days, tls_verify } => {
            match tls::inspect(host, *port, server_name, job.timeout, *tls_verify).await {
                Ok(info) => judge_certificate(info, env, *warning_days, *critical_days, &mut c),
                Err(e) => c.detail = e,
            }
        }
        _ => c.detail = "internal: not a network check".into(),
    }
    finish(job, c, started, timestamp)
}

/// Run a process, disk, command or heartbeat check (on a thread that may block).
pub(crate) fn blocking(job: &Job, env: &CheckEnv) -> Check {
    let timestamp = env.clock.stamp();
    let started = Instant::now();
    let mut c = job.record(CheckStatus::Down, String::new());
    match &job.spec {
        CheckSpec::Process { pattern } => match env.procs().matching(pattern) {
            Ok(pids) if !pids.is_empty() => {
                c.status = CheckStatus::Up;
                c.detail = format!("{} process(es) running", pids.len());
                c.pids = Some(pids);
            }
            Ok(_) => c.detail = "not running".into(),
            Err(e) => c.detail = e,
        },
        CheckSpec::Disk { path, warning_gb } => disk_check(path, *warning_gb, &mut c),
        CheckSpec::Command { command, degraded_is_down } => {
            plugin_check(command, *degraded_is_down, job.timeout, &mut c)
        }
        CheckSpec::Heartbeat(h) => heartbeat_check(h, env, &mut c),
        _ => c.detail = "internal: not a blocking check".into(),
    }
    finish(job, c, started, timestamp)
}

fn disk_check(path: &std::path::Path, warning_gb: f64, c: &mut Check) {
    match nix::sys::statvfs::statvfs(path) {
        Ok(st) => {
            let free = st.blocks_available() as f64 * st.fragment_size() as f64 / (1024.0 * 1024.0 * 1024.0);
            c.free_gb = Some((free * 100.0).round() / 100.0);
            c.detail = format!("{free:.1} GB free");
            if free > warning_gb {
                c.status = CheckStatus::Up;
            } else {
                c.detail.push_str(&format!(" (warning at {warning_gb} GB)"));
            }
        }
        Err(e) => c.detail = format!("{}: {e}", path.display()),
    }
}

fn plugin_check(command: &proc::CommandLine, degraded_is_down: bool, timeout: Duration, c: &mut Check) {
    let mut spec = proc::Spec::new(command, timeout);
    spec.capture_limit = 64 * 1024;
    match proc::run(&spec) {
        Ok(o) => {
            let out = plugin::parse_output(&o.stdout);
            c.exit_code = o.exit_code;
            c.status = plugin::status_of_exit(o.exit_code, degraded_is_down);
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

fn judge_certificate(info: tls::CertInfo, env: &CheckEnv, warning_days: i64, critical_days: i64, c: &mut Check) {
    let left = (info.not_after - env.clock.now()).whole_seconds().div_euclid(86_400);
    c.days_left = Some(left);
    c.not_after = Some(clock::fmt_ts(info.not_after));
    c.extra.insert("subject".into(), Value::String(info.subject));
    c.extra.insert("issuer".into(), Value::String(info.issuer));
    if let Some(err) = info.verify_error {
        c.detail = err;
    } else if left < 0 {
        c.detail = format!("certificate expired {} day(s) ago", -left);
    } else if left < critical_days {
        c.detail = format!("certificate expires in {left} day(s) (critical under {critical_days})");
    } else if left < warning_days {
        c.status = CheckStatus::Degraded;
        c.detail = format!("certificate expires in {left} day(s) (warning under {warning_days})");
    } else {
        c.status = CheckStatus::Up;
        c.detail = format!("certificate valid for {left} day(s)");
    }
}

async fn url_check(u: &UrlSpec, timeout: Duration, env: &CheckEnv, c: &mut Check) {
    let reads_body = u.body_contains.is_some() || u.json_field.is_some();
    let req = http::Request {
        method: &u.method,
        url: &u.target,
        headers: &u.headers,
        body: u.body.as_deref().map(str::as_bytes),
        timeout,
        follow_redirects: u.follow_redirects,
        tls_verify: u.tls_verify,
        ca_file: u.ca_file.as_deref(),
        body_limit: reads_body.then_some(BODY_LIMIT),
    };
    let resp = match env.http.fetch(&req).await {
        Ok(r) => r,
        Err(e) => {
            c.detail = crate::util::redact::redact_in(&e, &u.target);
            return;
        }
    };
    let code = resp.status;
    c.http_status = Some(code);
    if !u.expected_status.contains(&code) {
        c.detail = format!("HTTP {code} (expected {})", expected_text(&u.expected_status));
        return;
    }
    if u.body_contains.is_some() || u.json_field.is_some() {
        let body = match resp.body {
            Ok(b) => b,
            Err(e) => {
                c.detail = format!("HTTP {code}, reading body: {e}");
                return;
            }
        };
        if let Some(needle) = &u.body_contains
            && !body.contains(needle.as_str())
        {
            c.detail = format!("HTTP {code}, body does not contain {needle:?}");
            return;
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
fn apply_latency_limits(job: &Job, c: &mut Check) {
    let CheckSpec::Url(u) = &job.spec else { return };
    if c.status == CheckStatus::Down {
        return;
    }
    if let Some(max) = u.max_latency_ms
        && c.latency_ms > max
    {
        c.status = CheckStatus::Down;
        c.detail = format!("{} in {}ms (max {max}ms)", c.detail, c.latency_ms);
        return;
    }
    if let Some(slow) = u.degraded_latency_ms
        && c.latency_ms > slow
    {
        c.status = CheckStatus::Degraded;
        c.detail = format!("{}, slow: {}ms (degraded over {slow}ms)", c.detail, c.latency_ms);
    }
}

/// The status codes wanted, runs of three or more written as ranges: `200-299`, `200 or 204`.
fn expected_text(codes: &[u16]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < codes.len() {
        let mut j = i;
        while j + 1 < codes.len() && codes[j + 1] == codes[j].wrapping_add(1) {
            j += 1;
        }
        if j - i >= 2 {
            parts.push(format!("{}-{}", codes[i], codes[j]));
        } else {
            parts.extend(codes[i..=j].iter().map(u16::to_string));
        }
        i = j + 1;
    }
    parts.join(" or ")
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

async fn port_check(host: &str, port: u16, timeout: Duration, c: &mut Check) {
    let deadline = TokioInstant::now() + timeout;
    c.detail = match net::connect(host, port, deadline).await {
        Ok(_) => {
            c.status = CheckStatus::Up;
            format!("port {port} open")
        }
        Err(ConnectError::Resolve(e)) => format!("port {port}: cannot resolve {host}: {e}"),
        Err(ConnectError::NoAddress) => format!("port {port}: no address for {host}"),
        Err(ConnectError::ResolveTimeout) => {
            format!("port {port}: {}", util::http::Failure::ResolveTimeout.describe(timeout))
        }
        Err(ConnectError::Timeout) => {
            format!("port {port}: connect timed out after {}", util::http::seconds(timeout))
        }
        Err(ConnectError::Io(_, e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("port {port}: connection refused")
        }
        Err(ConnectError::Io(_, e)) => format!("port {port}: {e}"),
    };
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
    fn expected_codes_are_written_as_ranges() {
        let all: Vec<u16> = (200..300).collect();
        assert_eq!(expected_text(&all), "200-299");
        assert_eq!(expected_text(&[200, 204]), "200 or 204");
        assert_eq!(expected_text(&[200, 201, 202, 301, 302]), "200-202 or 301 or 302");
    }

    #[test]
    fn json_paths() {
        let v: Value = serde_json::json!({"a": {"b": [1, {"c": "ok"}]}});
        assert_eq!(json_path(&v, "a.b.1.c"), Some(&Value::from("ok")));
        assert_eq!(json_path(&v, "a.b.5"), None);
        assert_eq!(json_path(&v, "a.x"), None);
    }
}
