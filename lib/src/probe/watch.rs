//! `probe --watch`: probe as a resident service.
//!
//! Every service is checked on its own schedule, every `interval_seconds` (its own, else the
//! top-level `interval_seconds`, else `check_interval_seconds`; 60 when none is set, at least
//! 1). A service's first check comes at a phase taken from a hash of its name, within its first
//! interval or the first 10 s, whichever is shorter (as Prometheus spreads its scrapes, but
//! never keeping a service unchecked long after a start), so a thousand checks never fire on
//! the same millisecond and a service keeps its phase from run to run; then every interval
//! after, on that grid. Scheduling uses the monotonic clock; the records' stamps come from the
//! tool's clock (`--now` fixes them, not the schedule).
//!
//! A service never has two checks in flight. A check that outlasts its interval is followed
//! at once by the next (for the latest scheduled time that passed), and the scheduled times
//! before it are skipped: the record says how late its check started (`late_ms`, on every
//! record) and how many scheduled times it passed over (`skipped`, when any), and stderr says
//! so once per service.
//!
//! Each record is written and flushed as it completes, and appended to the day's metrics file
//! as in the batch. A down service whose dependency's latest check was down gets
//! `suppressed_by` as in the batch. services.json is read again when its size, time or inode
//! changes (looked at every second) and on SIGHUP: added services start at their phase,
//! removed ones stop (a check in flight is dropped), changed ones are checked as they now
//! say (on a new schedule when their interval changed). A file that cannot be read keeps the
//! last good configuration, and stderr says why, once per edit; a service entry that cannot
//! be read is an `invalid_service` finding, and a service of that name keeps its last good
//! definition. Service lines from `--services` or file arguments are added as they arrive;
//! when their stream ends, the services given are watched on.
//!
//! SIGTERM or SIGINT, or stdout's reader going away, ends the watch: no check is started,
//! checks in flight are abandoned, what completed is written, and probe exits 0.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};

use super::{USER_AGENT, append_metrics, dependency_findings, disk_service, invalid_service, wants_disk_check};
use crate::check::runner::{self, CheckEnv, Job, Limits};
use crate::cli::Setup;
use crate::config::{Config, Service};
use crate::entry::Diag;
use crate::error::{Error, Result, Status};
use crate::ndjson::{self, Source};
use crate::record::{Check, CheckStatus, Finding};
use crate::util::fields::{found, number_value};
use crate::util::stop::Event;

/// How often services.json's size, time and inode are looked at.
const CONFIG_POLL: Duration = Duration::from_secs(1);

/// The longest time over which first checks are spread.
const SPREAD: Duration = Duration::from_secs(10);

/// The interval of a service that sets none, in seconds.
const DEFAULT_INTERVAL: f64 = 60.0;

/// What the watch was asked for, beyond the common set-up.
pub struct Opts {
    /// `--only`: the names to check (all when empty).
    pub only: Vec<String>,
    /// `--services` and file arguments: streams of service lines.
    pub streams: Vec<PathBuf>,
    /// Where the metrics files are (`None`: `--no-metrics`).
    pub metrics: Option<PathBuf>,
    pub concurrency: usize,
    /// Write text lines instead of NDJSON.
    pub text: bool,
}

/// What wakes the watch.
enum Msg {
    Event(Event),
    /// A service line read from a stream, with where it was (`source:line`).
    Streamed(Box<Service>, String),
    /// A finding about a stream's line.
    StreamFinding(Box<Finding>),
    /// A stream of service lines ended (or failed).
    StreamEnd(Result<()>),
    Done(Box<Done>),
}

/// A check that finished.
struct Done {
    id: u64,
    check: Check,
    /// When it was due and when it started.
    due: Instant,
    started: Instant,
    skipped: u64,
}

/// One service on its schedule.
struct Entry {
    service: Service,
    job: Arc<Job>,
    interval: Duration,
    /// Its next scheduled time (while a check is in flight, the one after that check's).
    due: Instant,
    in_flight: bool,
    /// Scheduled times passed over, to be told in the next record.
    skipped: u64,
    /// Whether stderr has said that its checks outlast the interval.
    told_late: bool,
}

/// Watch until told to stop. `events` must come from [`crate::util::stop::events`], called
/// before any other thread was started.
pub fn run(out: &mut dyn Write, diag: &Diag, set: &Setup, opts: Opts, events: Receiver<Event>) -> Result<Status> {
    let config_required = opts.streams.is_empty();
    let config = set.load_config(config_required)?;
    let limits = Limits::new(opts.concurrency, runner::raise_open_files_limit());
    let rt = runner::runtime(usize::MAX, limits).map_err(|e| Error::other(format!("cannot start the runtime: {e}")))?;
    let (tx, rx) = mpsc::unbounded_channel();
    forward_events(events, tx.clone())?;
    if !opts.streams.is_empty() {
        read_streams(&opts.streams, set, &config, tx.clone())?;
    }
    let mut w = Watch {
        set,
        config_required,
        sig: file_sig(&set.paths.config),
        env: Arc::new(CheckEnv::resident(set.clock, USER_AGENT)),
        slots: Arc::new(Semaphore::new(limits.in_flight)),
        pool: Arc::new(Semaphore::new(limits.blocking)),
        tx,
        opts,
        config,
        streamed: Vec::new(),
        names_streamed: HashSet::new(),
        entries: HashMap::new(),
        by_name: HashMap::new(),
        due: BTreeSet::new(),
        latest: HashMap::new(),
        next_id: 0,
        said: HashSet::new(),
        metrics_failing: false,
        checks: Vec::new(),
        findings: Vec::new(),
    };
    let result = rt.block_on(w.main(out, diag, rx));
    // Checks still in flight are abandoned (a blocking one is left to end with the process).
    rt.shutdown_background();
    result
}

/// The stop channel's events, onto the watch's channel.
fn forward_events(events: Receiver<Event>, tx: mpsc::UnboundedSender<Msg>) -> Result<()> {
    std::thread::Builder::new()
        .name("probe-events".into())
        .spawn(move || {
            while let Ok(e) = events.recv() {
                if tx.send(Msg::Event(e)).is_err() {
                    return;
                }
            }
        })
        .map(drop)
        .map_err(|e| Error::other(format!("cannot start a thread: {e}")))
}

/// Read the streams of service lines on a thread of their own, each service as it arrives.
fn read_streams(streams: &[PathBuf], set: &Setup, config: &Config, tx: mpsc::UnboundedSender<Msg>) -> Result<()> {
    let sources = Source::from_args(streams);
    let (opts, home, config, stamp_clock) = (set.read_opts, set.paths.home.clone(), config.clone(), set.clock);
    std::thread::Builder::new()
        .name("probe-services".into())
        .spawn(move || {
            let diag = Diag::stderr("probe");
            let end = ndjson::for_each_value(&sources, opts, &diag, |v, pos| {
                let msg = match config.parse_service_value(&v, Some(home.clone())) {
                    Ok(mut s) => {
                        s.line = pos.line as usize;
                        Msg::Streamed(Box::new(s), pos.to_string())
                    }
                    Err(why) => {
                        let subject = v.get("name").and_then(Value::as_str).unwrap_or("service");
                        let msg = format!("{pos}: {why}");
                        diag.warn(&msg);
                        Msg::StreamFinding(Box::new(invalid_service(subject, msg, stamp_clock.stamp())))
                    }
                };
                tx.send(msg).map_err(|_| Error::other("the watch has ended"))
            });
            let _ = tx.send(Msg::StreamEnd(end));
        })
        .map(drop)
        .map_err(|e| Error::other(format!("cannot start a thread: {e}")))
}

/// What tells a changed file: its size, modification time and inode.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sig(u64, Option<std::time::SystemTime>, u64);

fn file_sig(path: &Path) -> Option<Sig> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Sig(m.len(), m.modified().ok(), m.ino()))
}

/// When a service's first check comes after a start: a fraction, from a hash of its name
/// (FNV-1a, mixed; the same in every run), of its interval or of 10 s, whichever is shorter.
pub fn phase(name: &str, interval: Duration) -> Duration {
    let spread = interval.min(SPREAD);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV's high bits barely move when names differ only at the end: mix them (murmur3's
    // finalizer).
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    spread.mul_f64((h >> 11) as f64 / (1u64 << 53) as f64)
}

/// The interval of `s` in `config`: its own `interval_seconds` (a streamed service's own line
/// counts too), else the top-level one or `check_interval_seconds`, else 60 s; at least 1 s.
fn interval_of(config: &Config, s: &Service) -> std::result::Result<Duration, String> {
    let in_file = config.services.iter().any(|c| c.name == s.name)
        || config.problems.iter().any(|p| p.name.as_deref() == Some(&s.name));
    let secs = match s.raw.get("interval_seconds") {
        Some(v) if !in_file && !v.is_null() => match number_value(v) {
            Some(n) if n > 0.0 && n.is_finite() => Some(n),
            _ => {
                return Err(format!(
                    "service '{}': interval_seconds: expected a number of seconds above 0, found {}",
                    s.name,
                    found(v)
                ));
            }
        },
        _ => config.interval_seconds(&s.name)?,
    };
    Ok(Duration::from_secs_f64(secs.unwrap_or(DEFAULT_INTERVAL).clamp(1.0, 1e9)))
}

struct Watch<'a> {
    set: &'a Setup,
    config_required: bool,
    sig: Option<Sig>,
    env: Arc<CheckEnv>,
    /// A place per check that may run at once, and per blocking check.
    slots: Arc<Semaphore>,
    pool: Arc<Semaphore>,
    tx: mpsc::UnboundedSender<Msg>,
    opts: Opts,
    /// The last good configuration.
    config: Config,
    /// Services from the streams, in arrival order.
    streamed: Vec<Service>,
    names_streamed: HashSet<String>,
    entries: HashMap<u64, Entry>,
    by_name: HashMap<String, u64>,
    /// Services waiting for their next check, by due time.
    due: BTreeSet<(Instant, u64)>,
    /// The latest status of each service (for `suppressed_by`).
    latest: HashMap<String, CheckStatus>,
    next_id: u64,
    /// Dependency findings written already (each is written once).
    said: HashSet<String>,
    metrics_failing: bool,
    /// Records to write next.
    checks: Vec<Check>,
    findings: Vec<Finding>,
}

impl Watch<'_> {
    async fn main(&mut self, out: &mut dyn Write, diag: &Diag, mut rx: mpsc::UnboundedReceiver<Msg>) -> Result<Status> {
        let config = self.config.clone();
        self.apply(&config, diag);
        if self.opts.streams.is_empty() {
            self.check_only()?;
            self.dependencies();
        }
        self.write(out, diag)?;
        let mut poll = tokio::time::interval_at(tokio::time::Instant::now() + CONFIG_POLL, CONFIG_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.start_due();
            let next = self.due.first().map(|(at, _)| *at);
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { return Ok(Status::Ok) };
                    let mut go_on = self.handle(msg, diag)?;
                    // Whatever else is waiting, so that a burst is written with one flush.
                    for _ in 0..4096 {
                        if !go_on {
                            break;
                        }
                        match rx.try_recv() {
                            Ok(msg) => go_on = self.handle(msg, diag)?,
                            Err(_) => break,
                        }
                    }
                    if !go_on {
                        // Checks that completed but were not yet told are written too.
                        while let Ok(Msg::Done(d)) = rx.try_recv() {
                            self.finish(d, diag);
                        }
                        self.write(out, diag)?;
                        return Ok(Status::Ok);
                    }
                    self.write(out, diag)?;
                }
                () = sleep_until(next) => {}
                _ = poll.tick() => {
                    self.reload(false, diag);
                    self.write(out, diag)?;
                }
            }
        }
    }

    /// Act on one message; false when the watch is to end.
    fn handle(&mut self, msg: Msg, diag: &Diag) -> Result<bool> {
        match msg {
            Msg::Done(d) => self.finish(d, diag),
            Msg::Event(Event::Hangup) => self.reload(true, diag),
            Msg::Event(Event::Terminate | Event::StdoutClosed) => return Ok(false),
            Msg::StreamFinding(f) => self.findings.push(*f),
            Msg::Streamed(s, pos) => self.streamed_service(*s, &pos, diag),
            Msg::StreamEnd(end) => {
                end?;
                self.check_only()?;
                self.dependencies();
            }
        }
        Ok(true)
    }

    /// Every `--only` name must be a service (once all services are known).
    fn check_only(&self) -> Result<()> {
        match self.opts.only.iter().find(|n| !self.by_name.contains_key(*n)) {
            Some(name) => Err(Error::usage(format!("--only: no service named '{name}'"))),
            None => Ok(()),
        }
    }

    fn wanted(&self, name: &str) -> bool {
        self.opts.only.is_empty() || self.opts.only.iter().any(|n| n == name)
    }

    /// A service from a stream: added unless its name is taken.
    fn streamed_service(&mut self, s: Service, pos: &str, diag: &Diag) {
        if self.names_streamed.contains(&s.name) || self.config.service(&s.name).is_some() {
            let msg = format!("{pos}: service '{}': name: another service already has this name", s.name);
            diag.warn(&msg);
            self.findings.push(invalid_service(&s.name, msg, self.env.clock.stamp()));
            return;
        }
        self.names_streamed.insert(s.name.clone());
        if self.wanted(&s.name) {
            let interval = interval_of(&self.config, &s);
            self.upsert(s.clone(), interval, Instant::now(), diag);
        }
        self.streamed.push(s);
    }

    /// Read services.json again if it changed (or `forced`, on SIGHUP) and apply it; a file
    /// that cannot be read keeps the last good configuration.
    fn reload(&mut self, forced: bool, diag: &Diag) {
        let sig = file_sig(&self.set.paths.config);
        if !forced && sig == self.sig {
            return;
        }
        self.sig = sig;
        match self.set.load_config(self.config_required) {
            Ok(config) => {
                self.apply(&config, diag);
                self.config = config;
                self.dependencies();
            }
            Err(e) => diag.warn(format_args!("{e} (the last good configuration stays in force)")),
        }
    }

    /// Make the watched services those of `config` and the streams.
    fn apply(&mut self, config: &Config, diag: &Diag) {
        let stamp = self.env.clock.stamp();
        let mut list: Vec<Service> = config.services.clone();
        for p in &config.problems {
            diag.warn(p);
            self.findings.push(invalid_service(&p.subject(), p.to_string(), stamp.clone()));
            // A service whose entry cannot be read keeps its last good definition.
            let kept = p.name.as_ref().and_then(|n| self.by_name.get(n)).and_then(|id| self.entries.get(id));
            if let Some(e) = kept.filter(|e| !list.iter().any(|s| s.name == e.service.name)) {
                list.push(e.service.clone());
            }
        }
        let file_exists = self.set.paths.config.exists();
        if file_exists
            && wants_disk_check(config)
            && !list.iter().any(|s| matches!(s.spec, crate::config::CheckSpec::Disk { .. }))
        {
            list.push(disk_service(config));
        }
        let names: HashSet<String> = list.iter().map(|s| s.name.clone()).collect();
        list.extend(self.streamed.iter().filter(|s| !names.contains(&s.name)).cloned());
        list.retain(|s| self.wanted(&s.name));
        let keep: HashSet<&str> = list.iter().map(|s| s.name.as_str()).collect();
        let gone: Vec<String> = self.by_name.keys().filter(|n| !keep.contains(n.as_str())).cloned().collect();
        for name in gone {
            self.remove(&name);
        }
        let now = Instant::now();
        for s in list {
            let interval = interval_of(config, &s);
            self.upsert(s, interval, now, diag);
        }
    }

    /// Stop watching a service (a check in flight is dropped when it ends).
    fn remove(&mut self, name: &str) {
        if let Some(id) = self.by_name.remove(name)
            && let Some(e) = self.entries.remove(&id)
        {
            self.due.remove(&(e.due, id));
        }
        self.latest.remove(name);
    }

    /// Watch a new service, or follow a changed one's new definition.
    fn upsert(&mut self, s: Service, interval: std::result::Result<Duration, String>, now: Instant, diag: &Diag) {
        let id = self.by_name.get(&s.name).copied();
        let old_interval = id.and_then(|id| self.entries.get(&id)).map(|e| e.interval);
        let interval = match interval {
            Ok(i) => i,
            Err(why) => {
                diag.warn(format_args!(
                    "{why} (keeping {})",
                    if old_interval.is_some() { "its last good interval" } else { "60 s" }
                ));
                old_interval.unwrap_or(Duration::from_secs_f64(DEFAULT_INTERVAL))
            }
        };
        let Some(id) = id else {
            let id = self.next_id;
            self.next_id += 1;
            let due = now + phase(&s.name, interval);
            self.by_name.insert(s.name.clone(), id);
            self.due.insert((due, id));
            let job = Arc::new(s.job());
            let e = Entry { service: s, job, interval, due, in_flight: false, skipped: 0, told_late: false };
            self.entries.insert(id, e);
            return;
        };
        let Some(e) = self.entries.get_mut(&id) else { return };
        if e.service != s {
            e.job = Arc::new(s.job());
            e.service = s;
        }
        if e.interval != interval {
            if !e.in_flight {
                self.due.remove(&(e.due, id));
            }
            e.interval = interval;
            e.skipped = 0;
            e.due = now + phase(&e.service.name, interval);
            if !e.in_flight {
                self.due.insert((e.due, id));
            }
        }
    }

    /// Start every check that is due.
    fn start_due(&mut self) {
        let now = Instant::now();
        while let Some(&(at, id)) = self.due.first() {
            if at > now {
                break;
            }
            self.due.pop_first();
            let Some(e) = self.entries.get_mut(&id) else { continue };
            e.in_flight = true;
            e.due = at + e.interval;
            let skipped = std::mem::take(&mut e.skipped);
            let (job, env, slots, pool, tx) =
                (e.job.clone(), self.env.clone(), self.slots.clone(), self.pool.clone(), self.tx.clone());
            tokio::spawn(async move {
                let Ok(_slot) = slots.acquire_owned().await else { return };
                let started = Instant::now();
                let check = runner::run_job(job, &env, &pool).await;
                let _ = tx.send(Msg::Done(Box::new(Done { id, check, due: at, started, skipped })));
            });
        }
    }

    /// A check finished: its record, and its service's next check.
    fn finish(&mut self, d: Box<Done>, diag: &Diag) {
        let Some(e) = self.entries.get_mut(&d.id) else { return };
        e.in_flight = false;
        let now = Instant::now();
        if e.due <= now {
            // The check outlasted its interval: the next starts now, for the latest scheduled
            // time that passed; the ones before it are skipped.
            let missed = ((now - e.due).as_nanos() / e.interval.as_nanos().max(1)) as u64;
            e.due += e.interval.mul_f64(missed as f64);
            e.skipped = missed;
            if !e.told_late {
                e.told_late = true;
                diag.warn(format_args!(
                    "{}: a check took {:.1} s, longer than its {} s interval: each next check starts when one ends, late (see late_ms and skipped in its records)",
                    e.service.name,
                    (now - d.started).as_secs_f64(),
                    e.interval.as_secs_f64()
                ));
            }
        }
        self.due.insert((e.due, d.id));
        let mut c = d.check;
        c.extra.insert("late_ms".into(), (d.started.saturating_duration_since(d.due).as_millis() as u64).into());
        if d.skipped > 0 {
            c.extra.insert("skipped".into(), d.skipped.into());
        }
        self.latest.insert(c.name.clone(), c.status);
        if c.status == CheckStatus::Down {
            c.suppressed_by = self.root_cause(&c.name);
        }
        self.checks.push(c);
    }

    /// The topmost service above `name` whose latest check was down, following the first
    /// such dependency of each (as the batch's `suppressed_by`).
    fn root_cause(&self, name: &str) -> Option<String> {
        let mut seen = HashSet::from([name.to_string()]);
        let (mut cur, mut root) = (name.to_string(), None);
        loop {
            let Some(e) = self.by_name.get(&cur).and_then(|id| self.entries.get(id)) else { return root };
            let parent = e
                .service
                .depends_on
                .iter()
                .find(|p| **p != cur && self.latest.get(p.as_str()) == Some(&CheckStatus::Down));
            match parent {
                Some(p) if seen.insert(p.clone()) => {
                    root = Some(p.clone());
                    cur = p.clone();
                }
                _ => return root,
            }
        }
    }

    /// Unknown dependencies and cycles among the watched services, each written once.
    fn dependencies(&mut self) {
        let mut ids: Vec<&u64> = self.by_name.values().collect();
        ids.sort();
        let services: Vec<Service> =
            ids.into_iter().filter_map(|id| self.entries.get(id)).map(|e| e.service.clone()).collect();
        for f in dependency_findings(&services, &self.env.clock.stamp()) {
            if self.said.insert(format!("{}\0{}", f.subject, f.detail)) {
                self.findings.push(f);
            }
        }
    }

    /// Write what is waiting, flush, and append the checks to the metrics file.
    fn write(&mut self, out: &mut dyn Write, diag: &Diag) -> Result<()> {
        if self.checks.is_empty() && self.findings.is_empty() {
            return Ok(());
        }
        for f in std::mem::take(&mut self.findings) {
            if f.problem != "invalid_service" {
                diag.warn(format_args!("{}: {}", f.subject, f.detail));
            }
            if self.opts.text {
                writeln!(out, "[INVALID] {}", f.detail)?;
            } else {
                ndjson::write(out, &f)?;
            }
        }
        for c in &self.checks {
            if self.opts.text {
                writeln!(out, "{}", c.text_line())?;
            } else {
                ndjson::write(out, c)?;
            }
        }
        out.flush()?;
        let checks = std::mem::take(&mut self.checks);
        if let Some(dir) = &self.opts.metrics {
            match append_metrics(dir, &self.env.clock, &checks) {
                Ok(()) => self.metrics_failing = false,
                Err(e) if !self.metrics_failing => {
                    self.metrics_failing = true;
                    diag.warn(format_args!("{e} (said once until it works again)"));
                }
                Err(_) => {}
            }
        }
        Ok(())
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_spread_over_the_interval_and_stay_put() {
        let i = Duration::from_secs(1);
        let p: Vec<Duration> = (0..1000).map(|n| phase(&format!("svc-{n}"), i)).collect();
        assert!(p.iter().all(|d| *d < i));
        assert_eq!(phase("svc-7", i), p[7]);
        assert!(phase("svc-7", Duration::from_secs(3600)) < SPREAD);
        // Spread: every tenth of the second holds some.
        for tenth in 0..10 {
            let lo = Duration::from_millis(tenth * 100);
            let n = p.iter().filter(|d| **d >= lo && **d < lo + Duration::from_millis(100)).count();
            assert!((50..150).contains(&n), "{tenth}: {n}");
        }
    }
}
