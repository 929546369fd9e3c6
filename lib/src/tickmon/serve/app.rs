//! What every request handler and the sweeper share ([`App`]): the state under one mutex,
//! journaling each event before it is applied, the timeout sweep, compaction, the check that
//! the server's files are still its own, and periods of pressure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant, SystemTime};

use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::conns::Conns;
use super::handlers::Refusal;
use super::stream::RespBody;
use super::sync::Syncer;
use super::{Msg, Settings};
use crate::clock::fmt_ts;
use crate::tickmon::beats::{self, AgentState, Core, Event, Health, Op, PressureNote};

/// Pressure is over when nothing was evicted or refused for this long (or the timeout, if
/// longer).
const PRESSURE_QUIET: Duration = Duration::from_secs(10);
/// The journal is folded into the state file when it grows past this...
const COMPACT_BYTES: u64 = 8 << 20;
/// ...or when it has had events for this long.
const COMPACT_AFTER: Duration = Duration::from_secs(60);

/// An answer.
pub(super) type Resp = Response<RespBody>;

/// Requests answered, by status code.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) by_code: Mutex<std::collections::BTreeMap<u16, u64>>,
    pub(super) journal_errors: AtomicU64,
}

/// Everything a request handler shares.
pub(super) struct App {
    pub(super) core: Mutex<Core>,
    pub(super) settings: Settings,
    pub(super) events: Mutex<Option<mpsc::Sender<Msg>>>,
    pub(super) syncer: Option<Arc<Syncer>>,
    pub(super) counters: Counters,
    pub(super) started: f64,
    pub(super) conns: Arc<Conns>,
    /// Slots for large answers.
    pub(super) slots: Arc<tokio::sync::Semaphore>,
    /// The period of pressure under way, if any.
    pub(super) pressure: Mutex<Episode>,
}

/// A period of pressure under way, and the counts when the last one ended.
#[derive(Default)]
pub(super) struct Episode {
    pub(super) note: Option<PressureNote>,
    pub(super) evicted_before: u64,
    pub(super) refused_before: u64,
}

pub(super) fn unix_now() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

pub(super) fn stamp_now() -> String {
    fmt_ts(time::OffsetDateTime::now_utc())
}

impl App {
    pub(super) fn lock(&self) -> MutexGuard<'_, Core> {
        // A handler that panicked mid-update left the state as the journal says it is: the
        // journal line is written before the change, so carrying on is safe.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn send(&self, msg: Msg) {
        if let Ok(guard) = self.events.lock()
            && let Some(tx) = guard.as_ref()
        {
            let _ = tx.send(msg);
        }
    }

    pub(super) fn warn(&self, msg: String) {
        self.send(Msg::Warn(msg));
    }

    /// Tell stdout about a status change.
    pub(super) fn emit_change(&self, agent: &AgentState, from: Option<Health>) {
        let mut rec = agent.record(&stamp_now());
        rec.insert("previous_status".into(), json!(from.map(Health::as_str)));
        self.send(Msg::Record(Value::Object(rec)));
    }

    pub(super) fn count(&self, code: u16) {
        if let Ok(mut m) = self.counters.by_code.lock() {
            *m.entry(code).or_default() += 1;
        }
    }

    /// Journal and apply an event. The agent's state after it comes back when asked for (a
    /// copy per heartbeat would be wasted work).
    pub(super) async fn record(
        &self,
        ev: Event,
        allow_new: bool,
        want_state: bool,
    ) -> std::result::Result<Option<AgentState>, Refusal> {
        let agent = ev.agent.clone();
        let (seq, state, change) = {
            let mut core = self.lock();
            let known = core.snap.agents.contains_key(&agent);
            if !known && !allow_new {
                return Err(Refusal::new(StatusCode::NOT_FOUND, "unknown agent"));
            }
            if !known && core.snap.agents.len() >= self.settings.max_agents {
                return Err(Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("agent limit reached ({} agents)", self.settings.max_agents),
                ));
            }
            match core.record(ev) {
                Ok((seq, change)) => {
                    let changed = change.as_ref().is_some_and(|c| c.to.is_some());
                    let state = if want_state || changed { core.snap.agents.get(&agent).cloned() } else { None };
                    (seq, state, change)
                }
                Err(e) => {
                    drop(core);
                    self.counters.journal_errors.fetch_add(1, Ordering::Relaxed);
                    let msg = format!("cannot write the journal: {e}");
                    self.warn(msg.clone());
                    return Err(Refusal::new(StatusCode::SERVICE_UNAVAILABLE, msg));
                }
            }
        };
        if let Some(sync) = &self.syncer {
            sync.note_written(seq);
            if !sync.wait(seq).await {
                return Err(Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "cannot make the journal durable (fsync failed)",
                ));
            }
        }
        if let (Some(c), Some(s)) = (&change, &state)
            && c.to.is_some()
        {
            self.emit_change(s, c.from);
        }
        Ok(state)
    }

    /// Count silence past the timeout as a failure. Silence counts from the later of the
    /// agent's last word and the server's last moment of pressure: while connections were
    /// being evicted or refused, an agent may have tried and failed to reach the server.
    pub(super) fn sweep(&self) {
        let now = unix_now();
        let timeout = self.settings.timeout.as_secs_f64();
        let quiet_since = self.conns.quiet_since().unwrap_or(0.0);
        let mut changes = Vec::new();
        let mut last_seq = None;
        {
            let mut core = self.lock();
            let overdue: Vec<(String, f64)> = core
                .snap
                .agents
                .values()
                .filter(|a| now - a.last_response.max(quiet_since) > timeout)
                .map(|a| (a.agent_id.clone(), now - a.last_response))
                .collect();
            for (id, silent) in overdue {
                let mut ev = Event::new(Op::Timeout, &id, now);
                ev.error = Some(format!("no heartbeat for {} seconds", silent.round() as u64));
                match core.record(ev) {
                    Ok((seq, change)) => {
                        last_seq = Some(seq);
                        if let (Some(c), Some(a)) = (change, core.snap.agents.get(&id)) {
                            changes.push((a.clone(), c.from));
                        }
                    }
                    Err(e) => {
                        self.counters.journal_errors.fetch_add(1, Ordering::Relaxed);
                        self.warn(format!("timeout sweep: cannot write the journal: {e}"));
                        break;
                    }
                }
            }
        }
        if let (Some(sync), Some(seq)) = (&self.syncer, last_seq) {
            sync.note_written(seq);
        }
        for (a, from) in changes {
            self.emit_change(&a, from);
        }
    }

    /// Fold the journal into the state file. The error, when it could not be saved.
    pub(super) fn compact(&self, force: bool, last: &mut Instant) -> std::result::Result<(), String> {
        let mut core = self.lock();
        let due = core.journal.len() > COMPACT_BYTES || (core.dirty > 0 && last.elapsed() >= COMPACT_AFTER);
        if !(force || due) {
            return Ok(());
        }
        let seq = core.snap.seq;
        match core.compact(&stamp_now()) {
            Ok(()) => {
                *last = Instant::now();
                drop(core);
                if let Some(sync) = &self.syncer {
                    sync.note_durable(seq);
                }
                Ok(())
            }
            Err(e) => {
                drop(core);
                self.warn(format!("cannot save the state: {e}"));
                Err(e.to_string())
            }
        }
    }

    /// The journal and the state file are still the ones written here; if someone deleted or
    /// replaced one, a new journal is started and the state saved now.
    pub(super) fn check_files(&self) {
        let mut core = self.lock();
        let seq = core.snap.seq;
        match core.check_files(&stamp_now()) {
            Ok(None) => {}
            Ok(Some(what)) => {
                drop(core);
                if let Some(sync) = &self.syncer {
                    sync.note_durable(seq);
                }
                self.warn(what);
            }
            Err(e) => {
                drop(core);
                self.counters.journal_errors.fetch_add(1, Ordering::Relaxed);
                self.warn(format!("the journal or state file changed under the server, and {e}"));
            }
        }
    }

    /// Start or end a period of pressure: said once each way (stderr and a `finding` on
    /// stdout), and noted in the state for `tickmon heartbeats`.
    pub(super) fn watch_pressure(&self) {
        let now = unix_now();
        let last = self.conns.quiet_since();
        let evicted = self.conns.counts.evicted.load(Ordering::Relaxed);
        let refused = self.conns.counts.refused.load(Ordering::Relaxed);
        let quiet = PRESSURE_QUIET.max(self.settings.timeout).as_secs_f64();
        let Ok(mut ep) = self.pressure.lock() else { return };
        let (evicted, refused) = (evicted - ep.evicted_before, refused - ep.refused_before);
        let changed = match (ep.note.as_mut(), last) {
            (None, Some(t)) if now - t < quiet => {
                let note = PressureNote { since: t, last: t, evicted, refused, over: false };
                let top = self.conns.top_peer().map(|(p, n)| format!("; most from {p} ({n})")).unwrap_or_default();
                self.warn(format!(
                    "under pressure: connections are being evicted or refused ({} open of at most {}{top}); \
                     silence is not counted as an agent's failure until it ends",
                    self.conns.open(),
                    self.conns.max
                ));
                ep.note = Some(note);
                true
            }
            (Some(note), Some(t)) => {
                note.last = t;
                note.evicted = evicted;
                note.refused = refused;
                if now - t >= quiet {
                    note.over = true;
                    self.warn(format!(
                        "pressure is over: {evicted} connection(s) evicted, {refused} refused since {}",
                        beats::ts(note.since)
                    ));
                    true
                } else {
                    false
                }
            }
            _ => false,
        };
        if !changed {
            return;
        }
        let note = ep.note.clone();
        if note.as_ref().is_some_and(|n| n.over) {
            ep.note = None;
            ep.evicted_before += evicted;
            ep.refused_before += refused;
        }
        drop(ep);
        if let Some(n) = &note {
            self.send(Msg::Record(pressure_finding(n, &self.settings.state, &stamp_now())));
        }
        let mut core = self.lock();
        core.snap.pressure = note;
        core.dirty += 1;
    }
}

/// The `finding` a period of pressure is told with (a warning while it lasts, info when
/// over); its subject is the server's state file, the same for `serve` and `heartbeats`.
pub(crate) fn pressure_finding(n: &PressureNote, state: &std::path::Path, stamp: &str) -> Value {
    json!({
        "kind": "finding",
        "source": "tickmon",
        "subject": format!("tickmon serve {}", state.display()),
        "level": if n.over { "info" } else { "warning" },
        "problem": "server_under_pressure",
        "detail": n.describe(),
        "timestamp": stamp,
    })
}
