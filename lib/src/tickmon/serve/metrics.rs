//! `/metrics`: the agents, the journal, the requests and the connections in the Prometheus
//! text format, written by [`crate::util::prom`] (label values escaped, names checked); each
//! family is written whole, as the format requires.

use std::sync::atomic::Ordering;

use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::answers::{busy_answer, slot};
use super::app::{App, Resp};
use super::handlers::error;
use super::stream::full;
use crate::tickmon::beats::{AgentState, Health, Snapshot};
use crate::util::prom::{Prom, Type};

type PerAgent = (&'static str, Type, &'static str, fn(&AgentState) -> String);

/// The per-agent families: name, type, help, value.
const PER_AGENT: [PerAgent; 5] = [
    ("tickmon_agent_up", Type::Gauge, "1 when the agent is healthy, else 0.", |a| {
        u8::from(a.status == Health::Healthy).to_string()
    }),
    ("tickmon_agent_consecutive_failures", Type::Gauge, "Failures in a row since the last heartbeat.", |a| {
        a.consecutive_failures.to_string()
    }),
    (
        "tickmon_agent_last_heartbeat_timestamp_seconds",
        Type::Gauge,
        "When the agent's last heartbeat arrived, in seconds since the epoch.",
        |a| format!("{:.3}", a.last_heartbeat),
    ),
    ("tickmon_agent_heartbeats_total", Type::Counter, "Heartbeats acknowledged from the agent.", |a| {
        a.heartbeats.to_string()
    }),
    ("tickmon_agent_failures_total", Type::Counter, "Failures counted for the agent, reported or by silence.", |a| {
        a.failures.to_string()
    }),
];

/// The families about the agents of `snap`: counts by status, then each agent's.
fn agent_families(p: &mut Prom, snap: &Snapshot) {
    let counts = snap.counts();
    p.family("tickmon_agents", Type::Gauge, "Agents known to the heartbeat endpoint, by status.");
    for h in Health::ALL {
        p.sample("tickmon_agents", &[("status", h.as_str())], counts.get(&h).copied().unwrap_or(0));
    }
    for (name, kind, help, value) in PER_AGENT {
        p.family(name, kind, help);
        for a in snap.agents.values() {
            p.sample(name, &[("agent", &a.agent_id)], value(a));
        }
    }
    p.family("tickmon_agent_status", Type::Gauge, "The agent's status: 1 on the status it is in.");
    for a in snap.agents.values() {
        for h in Health::ALL {
            p.sample(
                "tickmon_agent_status",
                &[("agent", &a.agent_id), ("status", h.as_str())],
                u8::from(a.status == h),
            );
        }
    }
}

/// One family of one sample without labels.
fn single(p: &mut Prom, name: &str, kind: Type, help: &str, value: impl std::fmt::Display) {
    p.family(name, kind, help);
    p.sample(name, &[], value);
}

/// The families about the server: journal, requests, connections, pressure.
fn server_families(p: &mut Prom, app: &App, journal: u64) {
    let help = "Size of the journal not yet folded into the state file.";
    single(p, "tickmon_journal_bytes", Type::Gauge, help, journal);
    let errors = app.counters.journal_errors.load(Ordering::Relaxed);
    let help = "Events that could not be written to the journal.";
    single(p, "tickmon_journal_errors_total", Type::Counter, help, errors);
    p.family("tickmon_http_requests_total", Type::Counter, "HTTP requests answered, by status code.");
    if let Ok(m) = app.counters.by_code.lock() {
        for (code, n) in m.iter() {
            p.sample("tickmon_http_requests_total", &[("code", &code.to_string())], n);
        }
    }
    let help = "When the server started, in seconds since the epoch.";
    single(p, "tickmon_start_time_seconds", Type::Gauge, help, format_args!("{:.3}", app.started));
    let c = &app.conns;
    single(p, "tickmon_connections", Type::Gauge, "Connections open now.", c.open());
    single(p, "tickmon_connections_max", Type::Gauge, "Connections served at once at most.", c.max);
    let (evicted, refused) = (c.counts.evicted.load(Ordering::Relaxed), c.counts.refused.load(Ordering::Relaxed));
    let help = "Idle connections closed to make room for new ones.";
    single(p, "tickmon_connections_evicted_total", Type::Counter, help, evicted);
    let help = "Connections refused because every one was busy.";
    single(p, "tickmon_connections_refused_total", Type::Counter, help, refused);
    let help = "Connections that could not be accepted (out of descriptors).";
    let accept_errors = c.counts.accept_errors.load(Ordering::Relaxed);
    single(p, "tickmon_accept_errors_total", Type::Counter, help, accept_errors);
    let pressured = app.pressure.lock().map(|p| p.note.is_some()).unwrap_or(false);
    let help = "1 while connections are being evicted or refused (silence is then not counted as failure).";
    single(p, "tickmon_server_under_pressure", Type::Gauge, help, u8::from(pressured));
}

/// The Prometheus text format.
pub(super) async fn metrics(app: &App) -> Resp {
    let Some(_permit) = slot(app).await else { return busy_answer() };
    let mut p = Prom::with_capacity(4096);
    let core = app.lock();
    agent_families(&mut p, &core.snap);
    let journal = core.journal.len();
    drop(core);
    server_families(&mut p, app, journal);
    match p.finish() {
        Ok(text) => {
            let mut r = Response::new(full(text));
            let ct = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
            r.headers_mut().insert(header::CONTENT_TYPE, ct);
            r
        }
        Err(why) => error(StatusCode::INTERNAL_SERVER_ERROR, &why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickmon::beats::{Event, Op};

    #[test]
    fn agent_ids_are_escaped_in_label_values() {
        let mut snap = Snapshot::default();
        for id in ["plain", "we\"ird\\id\nx"] {
            snap.apply(&Event::new(Op::Beat, id, 1.8e9));
        }
        let mut p = Prom::default();
        agent_families(&mut p, &snap);
        let text = p.finish().unwrap();
        assert!(text.contains("tickmon_agent_up{agent=\"plain\"} 1\n"), "{text}");
        assert!(text.contains("tickmon_agent_up{agent=\"we\\\"ird\\\\id\\nx\"} 1\n"), "{text}");
        assert!(text.contains("tickmon_agent_status{agent=\"we\\\"ird\\\\id\\nx\",status=\"healthy\"} 1\n"));
        // Every line is a comment or one sample: nothing an id holds breaks a line.
        assert!(text.lines().all(|l| l.starts_with('#') || l.split(' ').count() == 2), "{text}");
    }
}
