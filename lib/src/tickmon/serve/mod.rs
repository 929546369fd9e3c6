//! `tickmon serve`: the heartbeat endpoint (hyper on a tokio runtime).
//!
//! Requests are answered by a pool of worker threads; one connection never holds a worker
//! while it is slow: a request head must arrive within `--header-timeout` (5 s), a body
//! within 10 s, and a body is read only up to `--max-body` (a larger declared length is
//! refused before a byte is read). Connections are admitted by [`conns`]: a limit per
//! peer and in all, the idle connection of longest standing closed to make room, and pressure
//! said once instead of counted against the agents.
//! Every change goes through [`Core::record`] under one mutex: it is appended to the journal
//! (one `write`) before it is applied, and answered after that, so an acknowledged heartbeat
//! survives `kill -9`. With `--fsync`, a syncing thread makes journal appends durable in
//! groups (one `fdatasync` for every request that arrived while the previous one ran) and
//! answers wait for it.
//!
//! A sweeper thread counts silence past `--timeout` as a failure (once per period, as the
//! Lazarus Pit's heartbeat endpoint's `check_timeouts` did) and folds the journal into the state file when it grows or
//! has waited a minute; it also checks that the journal and the state file are still the
//! ones the server writes (someone may delete or replace them) and saves the state when
//! not. The server holds a lock on its state directory, which cannot be unlinked from under
//! it. SIGTERM and SIGINT stop accepting, let requests in flight finish, and write a final
//! snapshot; when that cannot be written the server says so and exits 2 (the journal still
//! holds everything acknowledged). Status changes go to stdout as `heartbeat` records.
//!
//! `GET /health` is written in chunks of at most 256 KiB by a task, agents without their
//! metadata unless `?metadata=1` asks for it; at most [`RESPONSE_SLOTS`] such answers (and
//! `/metrics`) are built at once, so memory stays bounded whatever the number of readers.

use std::convert::Infallible;
use std::fs::File;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;
use tokio::signal::unix::{SignalKind, signal};

pub mod answers;
pub mod conns;
pub mod stream;

use super::beats::{AgentState, Core, Event, Health, MAX_ERROR_CHARS, MAX_METADATA_DEPTH, Op, PressureNote};
use crate::clock::fmt_ts;
use crate::entry::{Diag, Out};
use crate::error::{Error, Result};
use crate::ndjson;
use crate::util::{is_safe_id, truncate};
pub use answers::RESPONSE_SLOTS;
use conns::{ConnState, Conns};
use stream::{RespBody, full};

/// Time a client has to send a request's body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Descriptors kept for the server's own files (state, journal, lock, stdio, runtime) when
/// the connection limit is fitted to the descriptor limit.
const RESERVED_FDS: u64 = 64;
/// Pressure is over when nothing was evicted or refused for this long (or the timeout, if
/// longer).
const PRESSURE_QUIET: Duration = Duration::from_secs(10);
/// The journal is folded into the state file when it grows past this...
const COMPACT_BYTES: u64 = 8 << 20;
/// ...or when it has had events for this long.
const COMPACT_AFTER: Duration = Duration::from_secs(60);
/// How long requests in flight get to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(5);

/// The server's settings, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub state: PathBuf,
    pub timeout: Duration,
    pub token: Option<Vec<u8>>,
    pub max_body: usize,
    pub max_agents: usize,
    pub heartbeat_interval: u64,
    pub fsync: bool,
    pub threads: usize,
    /// Connections at once, in all and per peer address.
    pub max_connections: usize,
    pub max_connections_per_peer: usize,
    /// Time a client has to send a request head (also the idle keep-alive limit).
    pub header_timeout: Duration,
}

/// Resolve `--listen`; refuse an address beyond loopback without a token.
pub fn listen_addr(spec: &str, has_token: bool) -> Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = spec
        .to_socket_addrs()
        .map_err(|e| Error::usage(format!("--listen: '{spec}' is not an address to listen on (HOST:PORT): {e}")))?
        .collect();
    let Some(first) = addrs.first().copied() else {
        return Err(Error::usage(format!("--listen: '{spec}' resolves to no address")));
    };
    if !has_token && addrs.iter().any(|a| !a.ip().is_loopback()) {
        return Err(Error::usage(format!(
            "--listen {spec}: refusing to listen beyond loopback without --token-file \
             (anyone who can reach it could report heartbeats and failures)"
        )));
    }
    Ok(first)
}

/// Read the bearer token: the file's content, trimmed.
pub fn read_token(path: &std::path::Path, diag: &Diag) -> Result<Vec<u8>> {
    let bytes = crate::store::read::read(path, crate::store::kinds::TOKEN)
        .map_err(|e| Error::path("cannot read token file", path, e))?;
    let token = String::from_utf8(bytes)
        .map_err(|_| Error::config(format!("{}: the token is not text", path.display())))?
        .trim()
        .to_string();
    if token.is_empty() {
        return Err(Error::config(format!("{}: the token file is empty", path.display())));
    }
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path) {
        if m.permissions().mode() & 0o077 != 0 {
            diag.warn(format_args!("{}: the token file can be read by other users", path.display()));
        }
    }
    Ok(token.into_bytes())
}

/// What the server thread tells the main thread.
enum Msg {
    Record(Value),
    Warn(String),
}

/// Requests answered, by status code.
#[derive(Default)]
struct Counters {
    by_code: Mutex<std::collections::BTreeMap<u16, u64>>,
    journal_errors: AtomicU64,
}

/// Group commit of journal appends (`--fsync`).
struct Syncer {
    file: Arc<Mutex<Arc<File>>>,
    state: Mutex<SyncState>,
    wake: Condvar,
    synced: tokio::sync::watch::Sender<u64>,
    failed: AtomicBool,
}

#[derive(Default)]
struct SyncState {
    written: u64,
    synced: u64,
    stop: bool,
}

impl Syncer {
    fn note_written(&self, seq: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.written = s.written.max(seq);
            self.wake.notify_one();
        }
    }

    /// The part of the journal below `seq` is already durable (a snapshot holds it).
    fn note_durable(&self, seq: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.written = s.written.max(seq);
            s.synced = s.synced.max(seq);
        }
        self.synced.send_modify(|v| *v = (*v).max(seq));
    }

    /// The syncing thread: one fdatasync covers every append made before it started.
    fn run(&self) {
        loop {
            let target = {
                let Ok(mut s) = self.state.lock() else { return };
                while s.written <= s.synced && !s.stop {
                    s = match self.wake.wait(s) {
                        Ok(s) => s,
                        Err(_) => return,
                    };
                }
                if s.written <= s.synced {
                    return;
                }
                s.written
            };
            let file = self.file.lock().map(|f| f.clone());
            if file.map_or(true, |f| f.sync_data().is_err()) {
                self.failed.store(true, Ordering::Relaxed);
            }
            if let Ok(mut s) = self.state.lock() {
                s.synced = s.synced.max(target);
            }
            self.synced.send_modify(|v| *v = (*v).max(target));
        }
    }

    fn stop(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.stop = true;
            self.wake.notify_all();
        }
    }

    /// Wait until `seq` is durable; false when syncing failed.
    async fn wait(&self, seq: u64) -> bool {
        let mut rx = self.synced.subscribe();
        let ok = rx.wait_for(|v| *v >= seq).await.is_ok();
        ok && !self.failed.load(Ordering::Relaxed)
    }
}

/// Everything a request handler shares.
struct App {
    core: Mutex<Core>,
    settings: Settings,
    events: Mutex<Option<mpsc::Sender<Msg>>>,
    syncer: Option<Arc<Syncer>>,
    counters: Counters,
    started: f64,
    conns: Arc<Conns>,
    /// Slots for large answers.
    slots: Arc<tokio::sync::Semaphore>,
    /// The period of pressure under way, if any.
    pressure: Mutex<Episode>,
}

type Resp = Response<RespBody>;

/// A period of pressure under way, and the counts when the last one ended.
#[derive(Default)]
struct Episode {
    note: Option<PressureNote>,
    evicted_before: u64,
    refused_before: u64,
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn stamp_now() -> String {
    fmt_ts(time::OffsetDateTime::now_utc())
}

impl App {
    fn lock(&self) -> MutexGuard<'_, Core> {
        // A handler that panicked mid-update left the state as the journal says it is: the
        // journal line is written before the change, so carrying on is safe.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, msg: Msg) {
        if let Ok(guard) = self.events.lock() {
            if let Some(tx) = guard.as_ref() {
                let _ = tx.send(msg);
            }
        }
    }

    fn warn(&self, msg: String) {
        self.send(Msg::Warn(msg));
    }

    /// Tell stdout about a status change.
    fn emit_change(&self, agent: &AgentState, from: Option<Health>) {
        let mut rec = agent.record(&stamp_now());
        rec.insert("previous_status".into(), json!(from.map(Health::as_str)));
        self.send(Msg::Record(Value::Object(rec)));
    }

    fn count(&self, code: u16) {
        if let Ok(mut m) = self.counters.by_code.lock() {
            *m.entry(code).or_default() += 1;
        }
    }

    /// Journal and apply an event. The agent's state after it comes back when asked for (a
    /// copy per heartbeat would be wasted work).
    async fn record(
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
        if let (Some(c), Some(s)) = (&change, &state) {
            if c.to.is_some() {
                self.emit_change(s, c.from);
            }
        }
        Ok(state)
    }

    /// Count silence past the timeout as a failure. Silence counts from the later of the
    /// agent's last word and the server's last moment of pressure: while connections were
    /// being evicted or refused, an agent may have tried and failed to reach the server.
    fn sweep(&self) {
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
    fn compact(&self, force: bool, last: &mut Instant) -> std::result::Result<(), String> {
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
    fn check_files(&self) {
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
    fn watch_pressure(&self) {
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
                        super::beats::ts(note.since)
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
pub fn pressure_finding(n: &PressureNote, state: &std::path::Path, stamp: &str) -> Value {
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

/// A request refused: the status and the message of its `{"error": ...}` answer.
#[derive(Debug)]
pub struct Refusal(StatusCode, String);

impl Refusal {
    fn new(code: StatusCode, msg: impl Into<String>) -> Refusal {
        Refusal(code, msg.into())
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        self.0.as_u16()
    }

    /// What the answer says.
    pub fn message(&self) -> &str {
        &self.1
    }

    fn response(self) -> Resp {
        error(self.0, &self.1)
    }
}

/// What a heartbeat body carries: metadata and a response time.
pub type Beat = (Option<Map<String, Value>>, Option<f64>);

fn json_response(code: StatusCode, v: &Value) -> Resp {
    let mut r = Response::new(full(v.to_string()));
    *r.status_mut() = code;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(code: StatusCode, msg: &str) -> Resp {
    json_response(code, &json!({ "error": msg }))
}

fn method_not_allowed(allow: &'static str) -> Resp {
    let mut r = error(StatusCode::METHOD_NOT_ALLOWED, &format!("method not allowed (allowed: {allow})"));
    r.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

fn authorized(token: &[u8], req: &Request<Incoming>) -> bool {
    let Some(h) = req.headers().get(header::AUTHORIZATION) else { return false };
    let b = h.as_bytes();
    if b.len() < 7 || !b[..7].eq_ignore_ascii_case(b"bearer ") {
        return false;
    }
    let given = b[7..].trim_ascii();
    given.ct_eq(token).into()
}

fn valid_id(id: &str) -> std::result::Result<(), Refusal> {
    if is_safe_id(id) {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "invalid agent id (1-128 letters, digits, '-', '_', '.', not starting with '.')",
        ))
    }
}

async fn read_body(req: Request<Incoming>, max: usize) -> std::result::Result<(Bytes, bool), Refusal> {
    let too_large = || Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body larger than {max} bytes"));
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim().to_ascii_lowercase().starts_with("application/json"));
    let body = Limited::new(req.into_body(), max);
    match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
        Err(_) => Err(Refusal::new(StatusCode::REQUEST_TIMEOUT, "the request body did not arrive in time")),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(e)) => Err(Refusal::new(StatusCode::BAD_REQUEST, format!("cannot read the request body: {e}"))),
        Ok(Ok(c)) => Ok((c.to_bytes(), is_json)),
    }
}

fn bad_json(e: &serde_json::Error) -> Refusal {
    Refusal::new(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}"))
}

/// `{"metadata": {...}, "response_time": 0.2}`, every part optional; an empty body is fine.
pub fn parse_beat(body: &[u8]) -> std::result::Result<Beat, Refusal> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((None, None));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| bad_json(&e))?;
    let Value::Object(m) = v else {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "expected a JSON object like {\"metadata\": {...}}"));
    };
    let metadata = match m.get("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(md)) if md.values().any(|v| crate::ndjson::depth(v) >= MAX_METADATA_DEPTH) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("metadata: nested deeper than {MAX_METADATA_DEPTH} levels"),
            ));
        }
        Some(Value::Object(md)) => Some(md.clone()),
        Some(_) => return Err(Refusal::new(StatusCode::BAD_REQUEST, "metadata: expected a JSON object")),
    };
    let rt = match m.get("response_time") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() && f >= 0.0 => Some(f),
            _ => return Err(Refusal::new(StatusCode::BAD_REQUEST, "response_time: expected seconds (a number >= 0)")),
        },
        Some(_) => {
            return Err(Refusal::new(StatusCode::BAD_REQUEST, "response_time: expected seconds (a number >= 0)"));
        }
    };
    Ok((metadata, rt))
}

/// `{"error": "text"}`, a JSON string, or a plain-text body; empty means "failure reported".
pub fn parse_failure(body: &[u8], is_json: bool) -> std::result::Result<String, Refusal> {
    const DEFAULT: &str = "failure reported";
    let text = if body.iter().all(u8::is_ascii_whitespace) {
        DEFAULT.to_string()
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => match m.get("error") {
                None | Some(Value::Null) => DEFAULT.to_string(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            },
            Ok(Value::String(s)) => s,
            Ok(_) if is_json => {
                return Err(Refusal::new(StatusCode::BAD_REQUEST, "expected a JSON object like {\"error\": \"...\"}"));
            }
            Err(e) if is_json => return Err(bad_json(&e)),
            _ => match std::str::from_utf8(body) {
                Ok(s) => s.trim().to_string(),
                Err(_) => return Err(Refusal::new(StatusCode::BAD_REQUEST, "the error text is not UTF-8")),
            },
        }
    };
    let text = if text.trim().is_empty() { DEFAULT.to_string() } else { text };
    Ok(truncate(&text, MAX_ERROR_CHARS))
}

async fn handle(app: Arc<App>, conn: Arc<ConnState>, req: Request<Incoming>) -> std::result::Result<Resp, Infallible> {
    // Busy while the request is handled; a streamed answer keeps its own mark until it ends.
    let busy = conn.busy();
    let resp = route(&app, &conn, req).await;
    app.count(resp.status().as_u16());
    drop(busy);
    Ok(resp)
}

/// What a request asks for, from its method and path alone (ids not yet validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    Health,
    Metrics,
    Heartbeat(&'a str),
    Failure(&'a str),
    Agent(&'a str),
    Forget(&'a str),
    /// A known path with a method it does not take: the methods it does.
    NotAllowed(&'static str),
    NotFound,
}

/// Route a request by its method and path.
pub fn route_of<'a>(method: &str, path: &'a str) -> Route<'a> {
    let parts: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let read = method == "GET" || method == "HEAD";
    let post = method == "POST";
    match parts.as_slice() {
        ["health"] if read => Route::Health,
        ["health"] => Route::NotAllowed("GET, HEAD"),
        ["metrics"] if read => Route::Metrics,
        ["metrics"] => Route::NotAllowed("GET, HEAD"),
        ["heartbeat", id] if post => Route::Heartbeat(id),
        ["heartbeat", _] => Route::NotAllowed("POST"),
        ["heartbeat", id, "fail"] if post => Route::Failure(id),
        ["heartbeat", _, "fail"] => Route::NotAllowed("POST"),
        ["agent", id] if read => Route::Agent(id),
        ["agent", id] if method == "DELETE" => Route::Forget(id),
        ["agent", _] => Route::NotAllowed("GET, HEAD, DELETE"),
        _ => Route::NotFound,
    }
}

async fn route(app: &Arc<App>, conn: &Arc<ConnState>, req: Request<Incoming>) -> Resp {
    if let Some(token) = &app.settings.token {
        if !authorized(token, &req) {
            let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match route_of(method.as_str(), &path) {
        Route::Health => answers::health(app, conn, answers::wants_metadata(req.uri().query())).await,
        Route::Metrics => answers::metrics(app).await,
        Route::Heartbeat(id) => heartbeat(app, id, req).await,
        Route::Failure(id) => failure(app, id, req).await,
        Route::Agent(id) => agent(app, id),
        Route::Forget(id) => forget(app, id).await,
        Route::NotAllowed(allow) => method_not_allowed(allow),
        Route::NotFound => error(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn heartbeat(app: &App, id: &str, req: Request<Incoming>) -> Resp {
    if let Err(r) = valid_id(id) {
        return r.response();
    }
    let (body, _) = match read_body(req, app.settings.max_body).await {
        Ok(b) => b,
        Err(r) => return r.response(),
    };
    let (metadata, response_time) = match parse_beat(&body) {
        Ok(p) => p,
        Err(r) => return r.response(),
    };
    let now = unix_now();
    let mut ev = Event::new(Op::Beat, id, now);
    ev.metadata = metadata;
    ev.response_time = response_time;
    match app.record(ev, true, false).await {
        Ok(_) => json_response(
            StatusCode::OK,
            &json!({"status": "ok", "agent_id": id, "timestamp": now, "next_heartbeat": app.settings.heartbeat_interval}),
        ),
        Err(r) => r.response(),
    }
}

async fn failure(app: &App, id: &str, req: Request<Incoming>) -> Resp {
    if let Err(r) = valid_id(id) {
        return r.response();
    }
    let (body, is_json) = match read_body(req, app.settings.max_body).await {
        Ok(b) => b,
        Err(r) => return r.response(),
    };
    let text = match parse_failure(&body, is_json) {
        Ok(t) => t,
        Err(r) => return r.response(),
    };
    let mut ev = Event::new(Op::Fail, id, unix_now());
    ev.error = Some(text);
    match app.record(ev, true, true).await {
        Ok(state) => json_response(StatusCode::OK, &state.map(|a| a.api()).unwrap_or(Value::Null)),
        Err(r) => r.response(),
    }
}

fn agent(app: &App, id: &str) -> Resp {
    if let Err(r) = valid_id(id) {
        return r.response();
    }
    let state = app.lock().snap.agents.get(id).map(AgentState::api);
    match state {
        Some(v) => json_response(StatusCode::OK, &v),
        None => error(StatusCode::NOT_FOUND, "unknown agent"),
    }
}

async fn forget(app: &App, id: &str) -> Resp {
    if let Err(r) = valid_id(id) {
        return r.response();
    }
    match app.record(Event::new(Op::Forget, id, unix_now()), false, false).await {
        Ok(_) => json_response(StatusCode::OK, &json!({"status": "forgotten", "agent_id": id})),
        Err(r) => r.response(),
    }
}

/// Run the server until SIGTERM or SIGINT. Status changes go to `out` as `heartbeat`
/// records; messages to `diag`.
pub fn run(settings: Settings, out: &mut Out, diag: &Diag) -> Result<()> {
    // The lock is held on the state directory itself, which cannot be unlinked from under
    // the server as a lock file can: one server per state directory.
    let state_dir = match settings.state.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = crate::store::Dir::create(&state_dir)?;
    let mut dir_lock = crate::store::Lock::from_file(
        File::from(dir.fd().try_clone_to_owned().map_err(|e| Error::path("cannot lock", &state_dir, e))?),
        state_dir.clone(),
    );
    let Some(_held_dir) = dir_lock.try_acquire()? else {
        return Err(Error::other(format!(
            "{}: another tickmon serve is using this state directory ({} is one server's)",
            state_dir.display(),
            settings.state.display()
        )));
    };
    // The lock file too, for servers of earlier versions.
    let mut lock = crate::store::Lock::for_file(&settings.state)?;
    let Some(_held) = lock.try_acquire()? else {
        return Err(Error::other(format!(
            "{}: another tickmon serve is using this state file",
            settings.state.display()
        )));
    };
    let max_connections = fit_to_descriptors(settings.max_connections, diag);
    let (core, loaded) = Core::open(&settings.state, &stamp_now())?;
    for w in &loaded.warnings {
        diag.warn(w);
    }
    let syncer = if settings.fsync {
        let file = core.journal.handle();
        let (tx, _) = tokio::sync::watch::channel(core.snap.seq);
        Some(Arc::new(Syncer {
            file,
            state: Mutex::new(SyncState { written: core.snap.seq, synced: core.snap.seq, stop: false }),
            wake: Condvar::new(),
            synced: tx,
            failed: AtomicBool::new(false),
        }))
    } else {
        None
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.threads)
        .thread_name("tickmon-serve")
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::io("starting the server runtime", e))?;
    let std_listener = std::net::TcpListener::bind(settings.listen)
        .map_err(|e| Error::io(format!("cannot listen on {}", settings.listen), e))?;
    std_listener.set_nonblocking(true).map_err(|e| Error::io("listening", e))?;
    let local = std_listener.local_addr().map_err(|e| Error::io("listening", e))?;
    let (listener, term, int) = {
        let _ctx = rt.enter();
        let l = tokio::net::TcpListener::from_std(std_listener).map_err(|e| Error::io("listening", e))?;
        let term = signal(SignalKind::terminate()).map_err(|e| Error::io("installing a SIGTERM handler", e))?;
        let int = signal(SignalKind::interrupt()).map_err(|e| Error::io("installing a SIGINT handler", e))?;
        (l, term, int)
    };

    let (tx, rx) = mpsc::channel::<Msg>();
    let agents = core.snap.agents.len();
    let app = Arc::new(App {
        core: Mutex::new(core),
        settings: settings.clone(),
        events: Mutex::new(Some(tx)),
        syncer: syncer.clone(),
        counters: Counters::default(),
        started: unix_now(),
        conns: Arc::new(Conns::new(max_connections, settings.max_connections_per_peer)),
        slots: Arc::new(tokio::sync::Semaphore::new(RESPONSE_SLOTS)),
        pressure: Mutex::new(Episode::default()),
    });
    diag.warn(format_args!(
        "listening on http://{local} (state {}, {agents} agent(s), {} replayed from the journal)",
        settings.state.display(),
        loaded.replayed
    ));

    std::thread::scope(|s| -> Result<()> {
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        if let Some(sync) = &syncer {
            s.spawn(move || sync.run());
        }
        let sweeper_app = app.clone();
        let sweep_every = (settings.timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(30));
        s.spawn(move || {
            let mut last = Instant::now();
            while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(sweep_every) {
                sweeper_app.watch_pressure();
                sweeper_app.sweep();
                sweeper_app.check_files();
                let _ = sweeper_app.compact(false, &mut last);
            }
        });
        let server_app = app.clone();
        let server = s.spawn(move || {
            rt.block_on(accept_loop(listener, server_app.clone(), term, int));
            // Let what is still running finish briefly, then save everything.
            rt.shutdown_timeout(Duration::from_secs(1));
            let _ = stop_tx.send(());
            let mut last = Instant::now();
            server_app.check_files();
            let saved = server_app.compact(true, &mut last);
            if let Some(sync) = &server_app.syncer {
                sync.stop();
            }
            if let Ok(mut ev) = server_app.events.lock() {
                ev.take();
            }
            saved
        });
        let mut writing = true;
        for msg in rx {
            match msg {
                Msg::Warn(w) => diag.warn(w),
                Msg::Record(v) if writing => {
                    if let Err(e) =
                        ndjson::write(out, &v).and_then(|()| std::io::Write::flush(out).map_err(Error::from))
                    {
                        // A reader that went away does not stop the server.
                        if !e.is_broken_pipe() {
                            diag.warn(format_args!("cannot write a record: {e}"));
                        }
                        writing = false;
                    }
                }
                Msg::Record(_) => {}
            }
        }
        let saved = server.join().map_err(|_| Error::other("the server thread failed"))?;
        saved.map_err(|why| {
            Error::other(format!(
                "stopped; the state was NOT saved ({why}); the journal {} still holds every acknowledged \
                 heartbeat and the next start replays it",
                super::beats::journal_path(&settings.state).display()
            ))
        })
    })?;
    diag.warn("stopped; state saved");
    Ok(())
}

/// The connection limit, fitted to the descriptor limit (raised to its hard limit first):
/// a server that runs out of descriptors cannot even accept the connection that would evict
/// an idle one.
fn fit_to_descriptors(wanted: usize, diag: &Diag) -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return wanted };
    let soft = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() { hard } else { soft };
    let room = usize::try_from(soft.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX).max(16);
    if room < wanted {
        diag.warn(format_args!(
            "at most {room} connections at once: the descriptor limit is {soft} (raise it, e.g. LimitNOFILE=, for --max-connections {wanted})"
        ));
        room
    } else {
        wanted
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(app.settings.header_timeout)
        .keep_alive(true)
        .max_buf_size(64 * 1024);
    let mut said = Instant::now() - Duration::from_secs(1);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => serve_one(&app, &builder, &graceful, stream, peer.ip()),
                Err(e) => {
                    // Out of descriptors and the like: close the connection idle the longest
                    // and go on; said at most once a second.
                    let shed = app.conns.shed();
                    if said.elapsed() >= Duration::from_secs(1) {
                        said = Instant::now();
                        app.warn(format!("accept: {e}{}", if shed { "; closed an idle connection" } else { "" }));
                    }
                    if !shed {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN) => {}
    }
}

/// Admit one connection (perhaps closing an idle one for it) and serve it on a task until
/// it ends or is evicted.
fn serve_one(
    app: &Arc<App>,
    builder: &http1::Builder,
    graceful: &GracefulShutdown,
    stream: tokio::net::TcpStream,
    peer: IpAddr,
) {
    let Some(mut ticket) = app.conns.admit(peer) else {
        drop(stream);
        return;
    };
    let _ = stream.set_nodelay(true);
    let (app, state) = (app.clone(), ticket.state.clone());
    let conn =
        builder.serve_connection(TokioIo::new(stream), service_fn(move |req| handle(app.clone(), state.clone(), req)));
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        tokio::select! {
            _ = conn => {}
            _ = &mut ticket.closed => {}
        }
        drop(ticket);
    });
}
