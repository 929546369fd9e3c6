//! Heartbeat state: the agents the endpoint knows, how events change them, and how the state
//! is kept so that nothing acknowledged is ever forgotten.
//!
//! The rules are the Lazarus Pit's heartbeat endpoint's: a heartbeat makes an agent healthy and clears
//! its failures (merging the metadata it carries); a failure, reported or a period of
//! silence, counts one more consecutive failure: one makes it degraded, three unhealthy.
//!
//! Persistence is a snapshot (`heartbeats.json`, rewritten atomically) and a journal
//! (`heartbeats.json.journal`): every event is appended to the journal as one line, in one
//! `write`, before it is applied and acknowledged, so a crash of the server (even `kill -9`)
//! loses nothing it answered; with fsync on, neither does a power cut. Events carry a
//! sequence number and the snapshot the number of the last event it contains, so replaying a
//! journal over a snapshot that already has some of its events (a crash between writing the
//! snapshot and truncating the journal) applies each event once. Readers need no lock: they
//! read the snapshot, then the journal, and start over if compaction ran in between.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::clock::{fmt_ts, from_unix_f64};
use crate::error::{Error, Result};
use crate::ndjson::depth;
use crate::store;

/// Failures in a row after which an agent is unhealthy.
pub(crate) const UNHEALTHY_AFTER: u32 = 3;
/// Metadata keys kept per agent; a heartbeat that would exceed it replaces the metadata.
pub(crate) const MAX_METADATA_KEYS: usize = 256;
/// Metadata bytes (as JSON) kept per agent; a heartbeat that would exceed it replaces the
/// metadata too. Without it, 256 heartbeats of one new 64 KiB key each would make one agent
/// 16 MiB, and ten thousand agents a state no machine holds.
pub(crate) const MAX_METADATA_BYTES: usize = 64 * 1024;
/// Longest error message kept.
pub(crate) const MAX_ERROR_CHARS: usize = 2000;
/// Deepest nesting of a heartbeat's metadata: the state file nests it three levels deeper,
/// and must stay readable (JSON readers stop at 128).
pub(crate) const MAX_METADATA_DEPTH: usize = 32;

/// An agent's health as the endpoint sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Health {
    Healthy,
    Degraded,
    Unhealthy,
}

impl Health {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unhealthy => "unhealthy",
        }
    }

    /// The health after `n` consecutive failures.
    pub(crate) fn after_failures(n: u32) -> Health {
        match n {
            0 => Health::Healthy,
            n if n >= UNHEALTHY_AFTER => Health::Unhealthy,
            _ => Health::Degraded,
        }
    }

    pub(crate) const ALL: [Health; 3] = [Health::Healthy, Health::Degraded, Health::Unhealthy];
}

/// One agent's state: the Lazarus Pit heartbeat endpoint's fields, plus counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentState {
    /// The agent's id, as in the endpoint's paths.
    pub agent_id: String,
    pub(crate) status: Health,
    /// Seconds since the epoch of the last heartbeat (of registration, before the first).
    pub(crate) last_heartbeat: f64,
    /// Seconds since the epoch of the last heartbeat or failure.
    pub(crate) last_response: f64,
    pub(crate) consecutive_failures: u32,
    pub(crate) response_time: f64,
    pub(crate) error_message: Option<String>,
    pub(crate) metadata: Map<String, Value>,
    /// Heartbeats acknowledged, ever.
    #[serde(default)]
    pub(crate) heartbeats: u64,
    /// Failures counted, ever (reported and silences).
    #[serde(default)]
    pub(crate) failures: u64,
    /// When the endpoint first heard of the agent.
    #[serde(default)]
    pub(crate) first_seen: f64,
}

impl AgentState {
    fn new(agent: &str, at: f64) -> AgentState {
        AgentState {
            agent_id: agent.to_string(),
            status: Health::Healthy,
            last_heartbeat: at,
            last_response: at,
            consecutive_failures: 0,
            response_time: 0.0,
            error_message: None,
            metadata: Map::new(),
            heartbeats: 0,
            failures: 0,
            first_seen: at,
        }
    }

    /// The agent as the HTTP API shows it: the Lazarus Pit endpoint's shape plus RFC 3339 copies of its times.
    pub fn api(&self) -> Value {
        serde_json::to_value(self.api_view(true)).unwrap_or(Value::Null)
    }

    /// [`AgentState::api`] as a view that serializes without copying the metadata, and
    /// without it at all unless `with_metadata`.
    pub(crate) fn api_view(&self, with_metadata: bool) -> ApiView<'_> {
        ApiView {
            agent_id: &self.agent_id,
            status: self.status.as_str(),
            last_heartbeat: self.last_heartbeat,
            last_response: self.last_response,
            consecutive_failures: self.consecutive_failures,
            response_time: self.response_time,
            error_message: self.error_message.as_deref(),
            metadata: with_metadata.then_some(&self.metadata),
            heartbeats: self.heartbeats,
            last_heartbeat_at: ts(self.last_heartbeat),
            last_response_at: ts(self.last_response),
        }
    }

    /// The agent as a `heartbeat` record of the pipe.
    pub fn record(&self, stamp: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("kind".into(), json!("heartbeat"));
        m.insert("agent".into(), json!(self.agent_id));
        m.insert("status".into(), json!(self.status.as_str()));
        m.insert("consecutive_failures".into(), json!(self.consecutive_failures));
        m.insert("last_heartbeat".into(), json!(ts(self.last_heartbeat)));
        m.insert("last_response".into(), json!(ts(self.last_response)));
        m.insert("error".into(), json!(self.error_message));
        m.insert("metadata".into(), Value::Object(self.metadata.clone()));
        m.insert("heartbeats".into(), json!(self.heartbeats));
        m.insert("failures".into(), json!(self.failures));
        m.insert("timestamp".into(), json!(stamp));
        m
    }

    fn fail(&mut self, at: f64, error: &str) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.failures += 1;
        self.last_response = at;
        self.error_message = Some(error.to_string());
        self.status = Health::after_failures(self.consecutive_failures);
    }
}

/// An agent as the HTTP API shows it, borrowed.
#[derive(Debug, Serialize)]
pub(crate) struct ApiView<'a> {
    agent_id: &'a str,
    status: &'static str,
    last_heartbeat: f64,
    last_response: f64,
    consecutive_failures: u32,
    response_time: f64,
    error_message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a Map<String, Value>>,
    heartbeats: u64,
    last_heartbeat_at: String,
    last_response_at: String,
}

/// The length of a map written as JSON, counted without writing it.
fn json_len(m: &Map<String, Value>) -> usize {
    struct Count(usize);
    impl io::Write for Count {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, m);
    c.0
}

/// Seconds since the epoch as RFC 3339.
pub(crate) fn ts(secs: f64) -> String {
    from_unix_f64(secs).map(fmt_ts).unwrap_or_default()
}

/// What an event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// A heartbeat.
    Beat,
    /// A failure the agent (or someone for it) reported.
    Fail,
    /// Silence past the timeout.
    Timeout,
    /// Forget the agent.
    Forget,
}

/// One change of state, as journaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Its number in the journal: one more than the event before.
    pub seq: u64,
    /// What it does.
    pub op: Op,
    /// The agent it is about.
    pub agent: String,
    /// When, in seconds since the epoch.
    pub at: f64,
    /// A heartbeat's metadata, merged into the agent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// A failure's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The response time a heartbeat reported, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_time: Option<f64>,
}

impl Event {
    /// An event with no number, metadata, error or response time yet.
    pub fn new(op: Op, agent: &str, at: f64) -> Event {
        Event { seq: 0, op, agent: agent.to_string(), at, metadata: None, error: None, response_time: None }
    }
}

/// A status change an event caused: `from` is None for a new agent, `to` None for a
/// forgotten one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub(crate) agent: String,
    pub(crate) from: Option<Health>,
    pub(crate) to: Option<Health>,
}

/// The whole state: every agent, and the number of the last event applied.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(default)]
    pub(crate) version: u32,
    /// The number of the last event applied.
    #[serde(default)]
    pub seq: u64,
    #[serde(default)]
    pub(crate) saved_at: String,
    /// Every agent, by id.
    #[serde(default)]
    pub agents: BTreeMap<String, AgentState>,
    /// The server's last period of pressure, if any (saved so that `tickmon heartbeats`
    /// can say it, and count silence as the server did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pressure: Option<PressureNote>,
}

/// A period when the server itself was hard to reach: connections were evicted or refused
/// (a client holding many idle connections, or the descriptor limit). Times are seconds since
/// the epoch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PressureNote {
    pub(crate) since: f64,
    /// The last eviction or refusal seen.
    pub(crate) last: f64,
    pub(crate) evicted: u64,
    pub(crate) refused: u64,
    /// True once it ended.
    #[serde(default)]
    pub(crate) over: bool,
}

impl PressureNote {
    /// What it was, for messages and findings.
    pub(crate) fn describe(&self) -> String {
        let what =
            format!("{} connection(s) evicted and {} refused since {}", self.evicted, self.refused, ts(self.since));
        if self.over {
            format!("the heartbeat endpoint was under pressure: {what}, until {}", ts(self.last))
        } else {
            format!(
                "the heartbeat endpoint is under pressure: {what}; silence is not counted as an agent's failure meanwhile"
            )
        }
    }
}

impl Snapshot {
    /// Apply one event; the status change it caused, if any.
    pub fn apply(&mut self, ev: &Event) -> Option<Change> {
        self.seq = self.seq.max(ev.seq);
        let before = self.agents.get(&ev.agent).map(|a| a.status);
        if ev.op == Op::Forget {
            self.agents.remove(&ev.agent);
            return before.map(|from| Change { agent: ev.agent.clone(), from: Some(from), to: None });
        }
        let a = self.agents.entry(ev.agent.clone()).or_insert_with(|| AgentState::new(&ev.agent, ev.at));
        match ev.op {
            Op::Beat => {
                a.last_heartbeat = ev.at;
                a.last_response = ev.at;
                a.response_time = ev.response_time.unwrap_or(0.0);
                a.consecutive_failures = 0;
                a.error_message = None;
                a.status = Health::Healthy;
                a.heartbeats += 1;
                // Metadata too deep to save (never accepted by the server) is left out.
                let md = ev.metadata.as_ref().filter(|md| md.values().all(|v| depth(v) < MAX_METADATA_DEPTH));
                if let Some(md) = md {
                    let new_keys = md.keys().filter(|k| !a.metadata.contains_key(*k)).count();
                    if a.metadata.len() + new_keys > MAX_METADATA_KEYS {
                        a.metadata = md.clone();
                    } else {
                        for (k, v) in md {
                            a.metadata.insert(k.clone(), v.clone());
                        }
                        if !md.is_empty() && json_len(&a.metadata) > MAX_METADATA_BYTES {
                            a.metadata = md.clone();
                        }
                    }
                }
            }
            Op::Fail | Op::Timeout => {
                let msg = ev.error.as_deref().unwrap_or("failure reported");
                a.fail(ev.at, msg);
            }
            Op::Forget => {}
        }
        let after = a.status;
        (before != Some(after)).then(|| Change { agent: ev.agent.clone(), from: before, to: Some(after) })
    }

    /// Counts by health.
    pub(crate) fn counts(&self) -> BTreeMap<Health, usize> {
        let mut c: BTreeMap<Health, usize> = Health::ALL.iter().map(|h| (*h, 0)).collect();
        for a in self.agents.values() {
            *c.entry(a.status).or_default() += 1;
        }
        c
    }
}

/// Agents as the server would see them at `now` after `timeout` of silence per failure: a
/// read-only view for `tickmon heartbeats --timeout`. As the server does, silence counts
/// from the end of the server's last period of pressure when that is later.
pub fn with_timeouts(snap: &Snapshot, now: f64, timeout: f64) -> Snapshot {
    let mut out = snap.clone();
    if timeout <= 0.0 {
        return out;
    }
    let quiet_since = quiet_since(snap);
    for a in out.agents.values_mut() {
        count_silence(a, now, timeout, quiet_since);
    }
    out
}

/// When silence starts to count: the end of the server's last period of pressure (0 without).
pub fn quiet_since(snap: &Snapshot) -> f64 {
    snap.pressure.as_ref().map(|p| p.last).unwrap_or(0.0)
}

/// Periods of `timeout` the agent has been silent at `now`, as the server would count them
/// (silence counts from the later of its last word and `quiet_since`).
pub(crate) fn silent_periods(a: &AgentState, now: f64, timeout: f64, quiet_since: f64) -> u32 {
    let silent = now - a.last_response.max(quiet_since);
    if timeout <= 0.0 || silent <= timeout {
        return 0;
    }
    (silent / timeout).floor().min(f64::from(u32::MAX)) as u32
}

/// The agent's health at `now` once its silence is counted, without changing it.
pub(crate) fn health_at(a: &AgentState, now: f64, timeout: f64, quiet_since: f64) -> Health {
    match silent_periods(a, now, timeout, quiet_since) {
        0 => a.status,
        n => Health::after_failures(a.consecutive_failures.saturating_add(n)),
    }
}

/// Count the agent's silence at `now` as failures, one per period of `timeout`.
pub(crate) fn count_silence(a: &mut AgentState, now: f64, timeout: f64, quiet_since: f64) {
    let periods = silent_periods(a, now, timeout, quiet_since);
    if periods > 0 {
        let heard = now - a.last_response;
        a.consecutive_failures = a.consecutive_failures.saturating_add(periods);
        a.failures += u64::from(periods);
        a.last_response += f64::from(periods) * timeout;
        a.error_message = Some(format!("no heartbeat for {} seconds", heard.round() as u64));
        a.status = Health::after_failures(a.consecutive_failures);
    }
}

/// The journal beside a state file: `STATE.journal`.
pub(crate) fn journal_path(state: &Path) -> PathBuf {
    let mut p = state.as_os_str().to_owned();
    p.push(".journal");
    PathBuf::from(p)
}

/// The state as loaded, and what was odd about it.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The state: the snapshot file with the journal replayed over it.
    pub snapshot: Snapshot,
    /// Journal lines that could not be used (reported, skipped).
    pub warnings: Vec<String>,
    /// Events replayed from the journal.
    pub replayed: u64,
}

/// Read the snapshot and replay the journal over it.
pub(crate) fn load(state: &Path) -> Result<Loaded> {
    let jpath = journal_path(state);
    let mut last = Loaded::default();
    // The state file is replaced (a new inode) by every compaction.
    let identity = || std::fs::metadata(state).ok().map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    for _attempt in 0..10 {
        let before = identity();
        let snapshot: Snapshot = store::read_json(state, store::kinds::HEARTBEAT_STATE)?.unwrap_or_default();
        let journal = match store::read::read(&jpath, store::kinds::HEARTBEAT_JOURNAL) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::path("cannot read", &jpath, e)),
        };
        let (loaded, gap) = replay(snapshot, &journal, &jpath);
        if !gap && identity() == before {
            return Ok(loaded);
        }
        // Compaction ran between the reads: read both again.
        last = loaded;
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    last.warnings.push(format!("{}: events are missing between the state and the journal", jpath.display()));
    Ok(last)
}

/// Replay journal bytes over a snapshot. The flag says a gap was found (events between the
/// snapshot and the first journal event are missing).
pub fn replay(mut snapshot: Snapshot, journal: &[u8], jpath: &Path) -> (Loaded, bool) {
    let mut warnings = Vec::new();
    let mut replayed = 0;
    let mut rest = journal;
    let mut lineno = 0u64;
    while !rest.is_empty() {
        let (line, complete) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let l = &rest[..i];
                rest = &rest[i + 1..];
                (l, true)
            }
            None => {
                let l = rest;
                rest = &[];
                (l, false)
            }
        };
        lineno += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if !complete {
            // A write in progress (a live server) or cut short by a crash: not acknowledged.
            break;
        }
        let ev: Event = match serde_json::from_slice(line) {
            Ok(e) => e,
            Err(e) => {
                warnings.push(format!("{}:{lineno}: {}", jpath.display(), crate::ndjson::json_error_message(&e)));
                continue;
            }
        };
        if ev.seq <= snapshot.seq {
            continue;
        }
        if ev.seq != snapshot.seq + 1 && replayed == 0 {
            return (Loaded { snapshot, warnings, replayed }, true);
        }
        if !crate::util::is_safe_id(&ev.agent) {
            warnings.push(format!("{}:{lineno}: agent '{}' is not a valid id", jpath.display(), ev.agent));
            snapshot.seq = ev.seq;
            continue;
        }
        snapshot.apply(&ev);
        replayed += 1;
    }
    (Loaded { snapshot, warnings, replayed }, false)
}

/// Device and inode of a file.
type Identity = Option<(u64, u64)>;

/// Device and inode of what is at `path` now (not following a link).
fn identity(path: &Path) -> Identity {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The journal, open for appending.
pub(crate) struct Journal {
    file: Arc<File>,
    /// The journal file a syncing thread syncs: replaced when the journal is.
    slot: Arc<Mutex<Arc<File>>>,
    path: PathBuf,
    len: u64,
    ident: Option<(u64, u64)>,
}

impl Journal {
    /// Open (creating) the journal; its creation is made durable.
    pub(crate) fn open(path: &Path) -> Result<Journal> {
        let (file, len, ident) = Journal::open_file(path)?;
        let file = Arc::new(file);
        Ok(Journal { slot: Arc::new(Mutex::new(file.clone())), file, path: path.to_path_buf(), len, ident })
    }

    /// The file, its length and its identity.
    fn open_file(path: &Path) -> Result<(File, u64, Identity)> {
        let existed = path.exists();
        let file = store::open_append_as(path, store::Perm::Private)?;
        let meta = file.metadata().map_err(|e| Error::path("cannot stat", path, e))?;
        if !existed && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            store::sync_dir(dir).map_err(|e| Error::path("cannot sync", dir, e))?;
        }
        use std::os::unix::fs::MetadataExt;
        Ok((file, meta.len(), Some((meta.dev(), meta.ino()))))
    }

    /// True while the file at the journal's path is the one this journal writes to: someone
    /// may have deleted or replaced it, and appends to a deleted file are lost at a crash.
    pub(crate) fn is_current(&self) -> bool {
        self.ident.is_some() && identity(&self.path) == self.ident
    }

    /// Start a fresh journal at the path (whatever is there now is not ours and is removed).
    /// The caller saves the state at once: the events of the old journal are only in memory.
    pub(crate) fn reopen(&mut self) -> Result<()> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::path("cannot replace", &self.path, e)),
        }
        let (file, len, ident) = Journal::open_file(&self.path)?;
        self.file = Arc::new(file);
        if let Ok(mut s) = self.slot.lock() {
            *s = self.file.clone();
        }
        self.len = len;
        self.ident = ident;
        Ok(())
    }

    /// Append one whole line in one write. On failure the journal is cut back to where it
    /// was, so a half-written line can never glue itself to the next one.
    pub(crate) fn append(&mut self, line: &[u8]) -> io::Result<()> {
        let mut f: &File = &self.file;
        let written = f.write(line).and_then(|n| if n < line.len() { f.write_all(&line[n..]) } else { Ok(()) });
        match written {
            Ok(()) => {
                self.len += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }

    /// Empty the journal (after its events went into a durable snapshot).
    pub(crate) fn truncate(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.len = 0;
        Ok(())
    }

    /// The journal file for a syncing thread: it always holds the current journal.
    pub(crate) fn handle(&self) -> Arc<Mutex<Arc<File>>> {
        self.slot.clone()
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// The state a server works on: the snapshot in memory, its journal, where it is saved.
pub(crate) struct Core {
    pub(crate) snap: Snapshot,
    pub(crate) journal: Journal,
    pub(crate) state_path: PathBuf,
    /// Events since the last compaction.
    pub(crate) dirty: u64,
    /// Device and inode of the state file as last written.
    state_ident: Option<(u64, u64)>,
}

impl Core {
    /// Load the state and open the journal, folding what was journaled into a fresh snapshot.
    pub(crate) fn open(state_path: &Path, stamp: &str) -> Result<(Core, Loaded)> {
        let loaded = load(state_path)?;
        let journal = Journal::open(&journal_path(state_path))?;
        let mut core = Core {
            snap: loaded.snapshot.clone(),
            journal,
            state_path: state_path.to_path_buf(),
            dirty: 0,
            state_ident: None,
        };
        core.compact(stamp)?;
        Ok((core, loaded))
    }

    /// Journal the event, then apply it. Nothing changes when the journal cannot take it. A
    /// journal that was deleted or replaced is started afresh, with the state saved first,
    /// before the event is taken: an event is only acknowledged once it is in a file that
    /// will be read back.
    pub(crate) fn record(&mut self, mut ev: Event) -> io::Result<(u64, Option<Change>)> {
        if !self.journal.is_current() {
            self.renew_journal(&fmt_ts(time::OffsetDateTime::now_utc()))
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        ev.seq = self.snap.seq + 1;
        self.journal.append(&event_line(&ev))?;
        let change = self.snap.apply(&ev);
        self.dirty += 1;
        Ok((ev.seq, change))
    }

    fn renew_journal(&mut self, stamp: &str) -> Result<()> {
        self.journal.reopen()?;
        self.compact(stamp)
    }

    /// Check that the journal and the state file at their paths are still the ones this
    /// server writes (someone may have deleted or replaced them); if not, start a new
    /// journal and save the state now. What was done, for a message.
    pub(crate) fn check_files(&mut self, stamp: &str) -> Result<Option<String>> {
        if !self.journal.is_current() {
            self.renew_journal(stamp)?;
            return Ok(Some(format!(
                "{} was deleted or replaced; a new journal was started and the state saved",
                self.journal.path().display()
            )));
        }
        if self.state_ident.is_some() && identity(&self.state_path) != self.state_ident {
            self.compact(stamp)?;
            return Ok(Some(format!(
                "{} was deleted or replaced; the state was saved again",
                self.state_path.display()
            )));
        }
        Ok(None)
    }

    /// Write the snapshot atomically and durably, then empty the journal.
    pub(crate) fn compact(&mut self, stamp: &str) -> Result<()> {
        self.snap.version = 1;
        self.snap.saved_at = stamp.to_string();
        let mut bytes = serde_json::to_vec(&self.snap).map_err(|e| Error::other(format!("serializing state: {e}")))?;
        bytes.push(b'\n');
        store::atomic_write_as(&self.state_path, &bytes, store::Perm::Private)?;
        self.state_ident = identity(&self.state_path);
        self.journal.truncate().map_err(|e| Error::path("cannot truncate", self.journal.path(), e))?;
        self.dirty = 0;
        Ok(())
    }
}

/// One journal line: the event as JSON and a newline.
pub fn event_line(ev: &Event) -> Vec<u8> {
    // An event is strings, numbers and JSON values: serializing it cannot fail.
    let mut v = serde_json::to_vec(ev).unwrap_or_default();
    v.push(b'\n');
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pitcrew-beats-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn beat(agent: &str, at: f64) -> Event {
        Event::new(Op::Beat, agent, at)
    }

    fn fail(agent: &str, at: f64) -> Event {
        let mut e = Event::new(Op::Fail, agent, at);
        e.error = Some("boom".into());
        e
    }

    #[test]
    fn one_failure_degrades_three_make_unhealthy_a_heartbeat_heals() {
        let mut s = Snapshot::default();
        let ch = s.apply(&beat("a1", 10.0)).unwrap();
        assert_eq!((ch.from, ch.to), (None, Some(Health::Healthy)));
        assert_eq!(s.apply(&fail("a1", 11.0)).unwrap().to, Some(Health::Degraded));
        assert!(s.apply(&fail("a1", 12.0)).is_none());
        assert_eq!(s.apply(&fail("a1", 13.0)).unwrap().to, Some(Health::Unhealthy));
        let a = &s.agents["a1"];
        assert_eq!((a.consecutive_failures, a.error_message.as_deref(), a.last_response), (3, Some("boom"), 13.0));
        assert_eq!(s.apply(&beat("a1", 14.0)).unwrap().to, Some(Health::Healthy));
        let a = &s.agents["a1"];
        assert_eq!((a.consecutive_failures, a.heartbeats, a.failures, a.error_message.clone()), (0, 2, 3, None));
        let gone = s.apply(&Event::new(Op::Forget, "a1", 15.0)).unwrap();
        assert_eq!((gone.from, gone.to), (Some(Health::Healthy), None));
        assert!(s.agents.is_empty());
    }

    #[test]
    fn metadata_merges_and_is_bounded() {
        let mut s = Snapshot::default();
        let mut e = beat("a", 1.0);
        e.metadata = Some(json!({"x": 1, "y": 2}).as_object().unwrap().clone());
        s.apply(&e);
        e.metadata = Some(json!({"y": 3}).as_object().unwrap().clone());
        s.apply(&e);
        assert_eq!(Value::Object(s.agents["a"].metadata.clone()), json!({"x": 1, "y": 3}));
        let many: Map<String, Value> = (0..MAX_METADATA_KEYS).map(|i| (format!("k{i}"), json!(i))).collect();
        e.metadata = Some(many);
        s.apply(&e);
        assert_eq!(s.agents["a"].metadata.len(), MAX_METADATA_KEYS);
        assert!(!s.agents["a"].metadata.contains_key("x"));
        // Bytes are bounded too: a new 60 KiB key each time does not pile up.
        let mut s = Snapshot::default();
        for i in 0..50 {
            e.metadata = Some(json!({format!("blob{i}"): "x".repeat(60 * 1024)}).as_object().unwrap().clone());
            s.apply(&e);
            assert!(json_len(&s.agents["a"].metadata) <= 2 * MAX_METADATA_BYTES);
        }
        assert_eq!(s.agents["a"].metadata.len(), 1);
        assert!(s.agents["a"].metadata.contains_key("blob49"));
    }

    #[test]
    fn the_api_shape_is_the_lazarus_pits_plus_rfc3339_times() {
        let mut s = Snapshot::default();
        s.apply(&beat("a1", 1_795_437_000.5));
        let v = s.agents["a1"].api();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "agent_id",
                "status",
                "last_heartbeat",
                "last_response",
                "consecutive_failures",
                "response_time",
                "error_message",
                "metadata",
                "heartbeats",
                "last_heartbeat_at",
                "last_response_at"
            ]
        );
        assert_eq!(v["last_heartbeat_at"], "2026-11-23T12:30:00.500Z");
        assert_eq!(v["error_message"], Value::Null);
    }

    #[test]
    fn journal_replays_over_the_snapshot_once() {
        let d = tmpdir("replay");
        let state = d.join("hb.json");
        let (mut core, _) = Core::open(&state, "t0").unwrap();
        core.record(beat("a", 1.0)).unwrap();
        core.record(beat("a", 2.0)).unwrap();
        core.compact("t1").unwrap();
        core.record(fail("a", 3.0)).unwrap();
        core.record(beat("b", 4.0)).unwrap();
        // A crash after the snapshot was written but before the journal was emptied: the
        // journal holds events the snapshot already has.
        let journal_before = std::fs::read(journal_path(&state)).unwrap();
        core.compact("t2").unwrap();
        std::fs::write(journal_path(&state), &journal_before).unwrap();
        drop(core);
        let l = load(&state).unwrap();
        assert_eq!(l.replayed, 0);
        assert_eq!(l.snapshot.agents["a"].heartbeats, 2);
        assert_eq!(l.snapshot.agents["a"].consecutive_failures, 1);
        // And events after the snapshot are replayed.
        let (mut core, _) = Core::open(&state, "t3").unwrap();
        core.record(beat("a", 5.0)).unwrap();
        drop(core);
        let l = load(&state).unwrap();
        assert_eq!((l.replayed, l.snapshot.agents["a"].heartbeats, l.snapshot.seq), (1, 3, 5));
    }

    #[test]
    fn a_torn_last_line_is_not_replayed_and_bad_lines_are_reported() {
        let d = tmpdir("torn");
        let state = d.join("hb.json");
        let mut bytes = event_line(&Event { seq: 1, ..beat("a", 1.0) });
        bytes.extend_from_slice(b"{\"seq\":2,\"op\":\n");
        bytes.extend_from_slice(&event_line(&Event { seq: 3, ..beat("a", 2.0) }));
        bytes.extend_from_slice(b"{\"seq\":4,\"op\":\"beat\",\"age");
        std::fs::write(journal_path(&state), &bytes).unwrap();
        let l = load(&state).unwrap();
        assert_eq!(l.snapshot.agents["a"].heartbeats, 2);
        assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
        assert!(l.warnings[0].contains(":2:"), "{:?}", l.warnings);
    }

    #[test]
    fn a_gap_means_compaction_ran_between_the_reads() {
        let snap = Snapshot { seq: 5, ..Snapshot::default() };
        let j = event_line(&Event { seq: 9, ..beat("a", 1.0) });
        let (_, gap) = replay(snap, &j, Path::new("j"));
        assert!(gap);
    }

    #[test]
    fn silence_counts_as_failures_in_the_read_only_view() {
        let mut s = Snapshot::default();
        s.apply(&beat("a", 1000.0));
        let v = with_timeouts(&s, 1000.0 + 650.0, 300.0);
        let a = &v.agents["a"];
        assert_eq!((a.consecutive_failures, a.status), (2, Health::Degraded));
        let v = with_timeouts(&s, 1000.0 + 3000.0, 300.0);
        assert_eq!(v.agents["a"].status, Health::Unhealthy);
        assert_eq!(s.agents["a"].status, Health::Healthy, "the state itself is untouched");
    }
}
