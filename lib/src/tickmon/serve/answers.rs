//! The large answers of `tickmon serve`: `/health`, written in chunks as the agents are read,
//! and `/metrics`. At most [`RESPONSE_SLOTS`] of them are built at once, so memory stays
//! bounded whatever the number of readers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::json;

use super::conns::ConnState;
use super::stream::{Chunks, RespBody, full};
use super::{App, Resp, error, unix_now};
use crate::tickmon::beats::{AgentState, Health};

/// Large answers (`/health`, `/metrics`) built at once; more wait for a slot.
pub const RESPONSE_SLOTS: usize = 8;
/// How long a request waits for a response slot before it is answered 503.
const SLOT_WAIT: Duration = Duration::from_secs(10);
/// A chunk of a streamed `/health` is cut after this many bytes.
const HEALTH_CHUNK: usize = 256 * 1024;

/// `?metadata=1` (or `true`, `yes`): `/health` with each agent's metadata.
pub fn wants_metadata(query: Option<&str>) -> bool {
    query.unwrap_or("").split('&').any(|kv| match kv.split_once('=') {
        Some((k, v)) => k == "metadata" && matches!(v, "1" | "true" | "yes"),
        None => kv == "metadata",
    })
}

/// A slot to build a large answer in, waiting a while for one; `None` when none came free.
async fn slot(app: &App) -> Option<tokio::sync::OwnedSemaphorePermit> {
    tokio::time::timeout(SLOT_WAIT, app.slots.clone().acquire_owned()).await.ok().and_then(|p| p.ok())
}

fn busy_answer() -> Resp {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, "too many large answers at once; try again");
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// `/health`, written in chunks by a task (the agents are read a page at a time, the state
/// lock held only for a page): memory is a few chunks per answer, whatever the agents.
pub(super) async fn health(app: &Arc<App>, conn: &Arc<ConnState>, with_metadata: bool) -> Resp {
    let Some(permit) = slot(app).await else { return busy_answer() };
    let head = {
        let core = app.lock();
        let counts = core.snap.counts();
        let n = |h: Health| counts.get(&h).copied().unwrap_or(0);
        let mut server = json!({
            "connections": app.conns.open(),
            "max_connections": app.conns.max,
            "under_pressure": app.pressure.lock().map(|p| p.note.is_some()).unwrap_or(false),
        });
        if let Ok(p) = app.pressure.lock() {
            if let Some(note) = &p.note {
                server["pressure"] = json!(note.describe());
            }
        }
        let v = json!({
            "timestamp": unix_now(),
            "total_agents": core.snap.agents.len(),
            "healthy": n(Health::Healthy),
            "degraded": n(Health::Degraded),
            "unhealthy": n(Health::Unhealthy),
            "server": server,
        });
        // `{...,"server":{...}` and then the agents.
        let mut head = v.to_string();
        head.pop();
        head.push_str(",\"agents\":{");
        head
    };
    let (tx, body) = Chunks::new(Some(conn.busy()));
    let app = app.clone();
    tokio::spawn(async move {
        let _permit = permit;
        if tx.send(Bytes::from(head)).await.is_err() {
            return;
        }
        let mut after: Option<String> = None;
        let mut first = true;
        loop {
            let mut chunk = Vec::with_capacity(HEALTH_CHUNK + 4096);
            let done = {
                let core = app.lock();
                let range: Box<dyn Iterator<Item = (&String, &AgentState)>> = match &after {
                    None => Box::new(core.snap.agents.iter()),
                    Some(k) => Box::new(
                        core.snap.agents.range::<String, _>((std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded)),
                    ),
                };
                let mut done = true;
                for (id, a) in range {
                    if chunk.len() >= HEALTH_CHUNK {
                        done = false;
                        break;
                    }
                    if !first {
                        chunk.push(b',');
                    }
                    first = false;
                    let _ = serde_json::to_writer(&mut chunk, id);
                    chunk.push(b':');
                    let _ = serde_json::to_writer(&mut chunk, &a.api_view(with_metadata));
                    after = Some(id.clone());
                }
                done
            };
            if done {
                chunk.extend_from_slice(b"}}");
            }
            if tx.send(Bytes::from(chunk)).await.is_err() || done {
                return;
            }
        }
    });
    let mut r = Response::new(RespBody::Right(body));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Start a metric family: its HELP and TYPE lines.
fn family(t: &mut String, name: &str, kind: &str, help: &str) {
    use std::fmt::Write as _;
    let _ = writeln!(t, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

type PerAgent = (&'static str, &'static str, &'static str, fn(&AgentState) -> String);

/// The per-agent families: name, type, help, value.
const PER_AGENT: [PerAgent; 5] = [
    ("tickmon_agent_up", "gauge", "1 when the agent is healthy, else 0.", |a| {
        u8::from(a.status == Health::Healthy).to_string()
    }),
    ("tickmon_agent_consecutive_failures", "gauge", "Failures in a row since the last heartbeat.", |a| {
        a.consecutive_failures.to_string()
    }),
    (
        "tickmon_agent_last_heartbeat_timestamp_seconds",
        "gauge",
        "When the agent's last heartbeat arrived, in seconds since the epoch.",
        |a| format!("{:.3}", a.last_heartbeat),
    ),
    ("tickmon_agent_heartbeats_total", "counter", "Heartbeats acknowledged from the agent.", |a| {
        a.heartbeats.to_string()
    }),
    ("tickmon_agent_failures_total", "counter", "Failures counted for the agent, reported or by silence.", |a| {
        a.failures.to_string()
    }),
];

/// The Prometheus text format; each family is written whole, as the format requires.
pub(super) async fn metrics(app: &App) -> Resp {
    use std::fmt::Write as _;
    let Some(_permit) = slot(app).await else { return busy_answer() };
    let mut t = String::with_capacity(4096);
    let core = app.lock();
    let counts = core.snap.counts();
    family(&mut t, "tickmon_agents", "gauge", "Agents known to the heartbeat endpoint, by status.");
    for h in Health::ALL {
        let _ = writeln!(t, "tickmon_agents{{status=\"{}\"}} {}", h.as_str(), counts.get(&h).copied().unwrap_or(0));
    }
    for (name, kind, help, value) in PER_AGENT {
        family(&mut t, name, kind, help);
        for a in core.snap.agents.values() {
            let _ = writeln!(t, "{name}{{agent=\"{}\"}} {}", a.agent_id, value(a));
        }
    }
    family(&mut t, "tickmon_agent_status", "gauge", "The agent's status: 1 on the status it is in.");
    for a in core.snap.agents.values() {
        for h in Health::ALL {
            let on = u8::from(a.status == h);
            let _ = writeln!(t, "tickmon_agent_status{{agent=\"{}\",status=\"{}\"}} {on}", a.agent_id, h.as_str());
        }
    }
    let journal = core.journal.len();
    drop(core);
    family(&mut t, "tickmon_journal_bytes", "gauge", "Size of the journal not yet folded into the state file.");
    let _ = writeln!(t, "tickmon_journal_bytes {journal}");
    family(&mut t, "tickmon_journal_errors_total", "counter", "Events that could not be written to the journal.");
    let _ = writeln!(t, "tickmon_journal_errors_total {}", app.counters.journal_errors.load(Ordering::Relaxed));
    family(&mut t, "tickmon_http_requests_total", "counter", "HTTP requests answered, by status code.");
    if let Ok(m) = app.counters.by_code.lock() {
        for (code, n) in m.iter() {
            let _ = writeln!(t, "tickmon_http_requests_total{{code=\"{code}\"}} {n}");
        }
    }
    family(&mut t, "tickmon_start_time_seconds", "gauge", "When the server started, in seconds since the epoch.");
    let _ = writeln!(t, "tickmon_start_time_seconds {:.3}", app.started);
    let c = &app.conns;
    family(&mut t, "tickmon_connections", "gauge", "Connections open now.");
    let _ = writeln!(t, "tickmon_connections {}", c.open());
    family(&mut t, "tickmon_connections_max", "gauge", "Connections served at once at most.");
    let _ = writeln!(t, "tickmon_connections_max {}", c.max);
    family(
        &mut t,
        "tickmon_connections_evicted_total",
        "counter",
        "Idle connections closed to make room for new ones.",
    );
    let _ = writeln!(t, "tickmon_connections_evicted_total {}", c.counts.evicted.load(Ordering::Relaxed));
    family(&mut t, "tickmon_connections_refused_total", "counter", "Connections refused because every one was busy.");
    let _ = writeln!(t, "tickmon_connections_refused_total {}", c.counts.refused.load(Ordering::Relaxed));
    family(
        &mut t,
        "tickmon_accept_errors_total",
        "counter",
        "Connections that could not be accepted (out of descriptors).",
    );
    let _ = writeln!(t, "tickmon_accept_errors_total {}", c.counts.accept_errors.load(Ordering::Relaxed));
    let pressured = app.pressure.lock().map(|p| p.note.is_some()).unwrap_or(false);
    family(
        &mut t,
        "tickmon_server_under_pressure",
        "gauge",
        "1 while connections are being evicted or refused (silence is then not counted as failure).",
    );
    let _ = writeln!(t, "tickmon_server_under_pressure {}", u8::from(pressured));
    let mut r = Response::new(full(t));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    r
}
