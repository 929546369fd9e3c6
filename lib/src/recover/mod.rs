#![warn(missing_docs)]
//! recover: restart what failed, verify that it came back, and never make things worse.
//!
//! The engine (`Recover`) takes the input stream one record at a time (`Recover::take`):
//! every record goes out again at once, unchanged, and the latest status of every checked
//! service is remembered. When the input ends (`Recover::finish`) it walks the services of
//! services.json parents first (by `depends_on`) and, for each one whose latest check was
//! down:
//!
//! 1. if something it depends on was restarted in this run, checks it again first: it may
//!    have come back with its parent (the fresh `check` record says so);
//! 2. if it has no `restart_command`, leaves it;
//! 3. if a service it depends on is still down, does not restart it (`skipped`);
//! 4. asks the ledger ([`crate::restart`]): `cooldown`, `max_attempts`, or run;
//! 5. counts the attempt in the ledger and saves it *before* running the command, so a run
//!    killed mid-restart still honours the cooldown; runs the command (`sh -c`, own process
//!    group, killed whole at the timeout); waits `verify_delay_seconds`; runs the service's
//!    check again; writes the fresh `check` record and a `recovery` record.
//!
//! The ledger is locked from the first decision to the end of the run, so two overlapping
//! runs never restart the same service twice: the second one waits, then sees the first
//! one's attempt and reports `cooldown`. Restart commands come only from services.json.

pub(crate) mod cli;
pub(crate) mod follow;
mod maintenance;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::CommandFactory;
use serde_json::Value;
use time::macros::format_description;

use crate::check::{self, CheckEnv};
use crate::clock::{self, Clock};
use crate::config::{Config, Restart, Service};
use crate::entry::{Ctx, Diag, Tool};
use crate::error::{Result, Status};
use crate::ndjson::{self, Source};
use crate::record::{self, Check, CheckStatus, Kind, Outcome, Recovery};
use crate::restart::{self, Decision, Entry, Held, Ledger, Policy};
use crate::store;
use crate::util::{self, proc};

pub(crate) use cli::Format;

/// The ledger's file name in the state directory (the Agent Ops Kit's).
pub(crate) const LEDGER_FILE: &str = "recovery.json";

/// What recover's checks say they are, in their HTTP requests.
const USER_AGENT: &str = concat!("pitcrew-recover/", env!("CARGO_PKG_VERSION"));

/// The human log's file name in the logs directory (the Agent Ops Kit's).
pub(crate) const LOG_FILE: &str = "recovery.log";

/// Directories a restart command finds on its PATH even under cron's minimal one (the Agent Ops Kit
/// added them too): `systemctl`, `service` and friends live there.
const SYSTEM_PATH: &[&str] = &["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// The `recover` tool, as its binary hands it to [`crate::entry::run`].
pub const TOOL: Tool = Tool { name: "recover", main, command };

/// recover's clap definition (for completions and man pages).
pub fn command() -> clap::Command {
    cli::Cli::command()
}

/// The `recover` tool.
pub fn main(ctx: &mut Ctx, args: Vec<OsString>) -> Result<Status> {
    let (cli, set) = crate::cli::setup::<cli::Cli>(&mut ctx.out, args)?;
    let (env, paths, clock) = (set.env, &set.paths, set.clock);
    ctx.out.escape_controls(cli.format != cli::Format::Ndjson);
    let state_dir = cli.state_dir.clone().unwrap_or_else(|| paths.state.clone());
    let ledger = state_dir.join(LEDGER_FILE);
    let mut log = RecoveryLog::new(Some(paths.logs.join(LOG_FILE)));
    if !cli.reset.is_empty() {
        return reset(&cli.reset, &ledger, &mut log, &clock, cli.format, &mut ctx.out, &ctx.diag);
    }
    let config = set.load_config(false)?;
    // Before any other thread starts (the signals are blocked in every thread after it).
    let input = match cli.follow {
        true => Some(crate::ndjson::follow::Follow::start(Source::from_args(&cli.files), set.read_opts)?),
        false => None,
    };
    let settings = Settings {
        dry_run: cli.dry_run,
        format: cli.format,
        ledger,
        log,
        config_missing: !paths.config.exists(),
        path_env: Some(command_path(env("PATH").as_deref())),
        silences_dir: Some(paths.state.clone()),
    };
    let mut engine = Recover::new(&config, clock, settings);
    if let Some(input) = input {
        ctx.out.set_line_buffered(true);
        let settle = Duration::from_secs_f64(cli.settle);
        return follow::run(&mut engine, &input, settle, set.read_opts, &mut ctx.out, &ctx.diag);
    }
    let sources = Source::from_args(&cli.files);
    let out = &mut ctx.out;
    ndjson::for_each_value(&sources, set.read_opts, &ctx.diag, |v, _| engine.take(v, &mut *out))?;
    engine.finish(out, &ctx.diag)
}

/// PATH for restart commands: the caller's, then the system directories it lacks.
pub(crate) fn command_path(current: Option<&str>) -> String {
    let mut parts: Vec<&str> = current.unwrap_or("").split(':').filter(|p| !p.is_empty()).collect();
    for d in SYSTEM_PATH {
        if !parts.contains(d) {
            parts.push(d);
        }
    }
    parts.join(":")
}

/// How a run behaves, decided before it starts.
pub(crate) struct Settings {
    /// Say what would be done; run nothing, write nothing.
    pub dry_run: bool,
    pub format: Format,
    /// The ledger file (STATE_DIR/recovery.json).
    pub ledger: PathBuf,
    /// The human log.
    pub log: RecoveryLog,
    /// services.json does not exist (so nothing can be restarted: say so once).
    pub config_missing: bool,
    /// PATH given to restart commands (none: inherited as it is).
    pub path_env: Option<String>,
    /// Where notify's silences file is, for the maintenance windows recover stands still in
    /// (none: no windows).
    pub silences_dir: Option<PathBuf>,
}

/// What the stream said of one service most recently.
#[derive(Debug, Clone)]
struct Seen {
    down: bool,
    detail: String,
    suppressed_by: Option<String>,
}

/// The recover engine: feed it records with [`Recover::take`], then call [`Recover::finish`].
pub(crate) struct Recover<'a> {
    config: &'a Config,
    clock: Clock,
    settings: Settings,
    seen: HashMap<String, Seen>,
    tally: BTreeMap<&'static str, usize>,
    /// When set, only these services are acted on (see [`follow`]).
    focus: Option<HashSet<String>>,
    /// The recovery records written, by service (see [`follow`]).
    acted: Vec<(String, Outcome)>,
}

/// The ledger as this run holds it: locked and saved, or (dry run) only read.
enum Book<'l> {
    Locked(Held<'l>),
    ReadOnly(BTreeMap<String, Entry>),
}

impl Book<'_> {
    fn entries(&mut self) -> &mut BTreeMap<String, Entry> {
        match self {
            Book::Locked(h) => &mut h.ledger.entries,
            Book::ReadOnly(m) => m,
        }
    }

    fn save(&self) -> Result<()> {
        match self {
            Book::Locked(h) => h.ledger.save(),
            Book::ReadOnly(_) => Ok(()),
        }
    }
}

impl<'a> Recover<'a> {
    pub fn new(config: &'a Config, clock: Clock, settings: Settings) -> Recover<'a> {
        Recover {
            config,
            clock,
            settings,
            seen: HashMap::new(),
            tally: BTreeMap::new(),
            focus: None,
            acted: Vec::new(),
        }
    }

    /// Take one input record: pass it on at once and remember what it says of its service.
    pub fn take(&mut self, v: Value, out: &mut dyn Write) -> Result<()> {
        let is_check = record::kind_of(&v) == Kind::Check;
        if is_check && let Some(name) = v.get("name").and_then(Value::as_str) {
            let seen = Seen {
                down: CheckStatus::parse(record::str_field(&v, "status")) == Some(CheckStatus::Down),
                detail: record::str_field(&v, "detail").to_string(),
                suppressed_by: v.get("suppressed_by").and_then(Value::as_str).map(String::from),
            };
            self.seen.insert(name.to_string(), seen);
        }
        match self.settings.format {
            Format::Ndjson => ndjson::pass(out, &v),
            Format::Text if is_check => {
                writeln!(out, "{}", check_text_line(&v))?;
                Ok(())
            }
            Format::Text => Ok(()),
        }
    }

    /// The input has ended: restart what is down and can be restarted, parents first.
    /// `Failures` when any service seen is still down.
    pub fn finish(mut self, out: &mut dyn Write, diag: &Diag) -> Result<Status> {
        self.act(out, diag)?;
        let still_down = self.seen.values().filter(|s| s.down).count();
        if self.settings.format == Format::Text {
            self.summary(out, still_down)?;
        }
        Ok(Status::failures_if(still_down > 0))
    }

    /// Restart what is down and can be restarted, parents first (only the services in
    /// `focus` when it is set: `--follow` acts on what failed in its settle window), with the
    /// ledger locked for the whole walk.
    fn act(&mut self, out: &mut dyn Write, diag: &Diag) -> Result<()> {
        let config = self.config;
        let actionable = config.services.iter().any(|s| s.restart.is_some() && self.wants_action(&s.name));
        self.warn_unactionable(diag);
        if !actionable {
            return Ok(());
        }
        let path = self.settings.ledger.clone();
        if self.settings.dry_run {
            let entries = Ledger::peek(&path)?;
            self.walk(&mut Book::ReadOnly(entries), out, diag)
        } else {
            let mut lock = Ledger::lock(&path)?;
            if lock.try_acquire()?.is_none() {
                diag.progress("waiting for another recover run to finish");
            }
            let held = Ledger::open(&path, &mut lock)?;
            diag.clear_progress();
            self.walk(&mut Book::Locked(held), out, diag)
        }
    }

    /// Down, and (when a focus is set) in it.
    fn wants_action(&self, name: &str) -> bool {
        self.is_down(name) && self.focus.as_ref().is_none_or(|f| f.contains(name))
    }

    fn is_down(&self, name: &str) -> bool {
        self.seen.get(name).is_some_and(|s| s.down)
    }

    /// Say why down services that look restartable are not: no services.json, or an entry
    /// in it that could not be read.
    fn warn_unactionable(&self, diag: &Diag) {
        let mut down: Vec<&str> = self.seen.keys().filter(|n| self.wants_action(n)).map(String::as_str).collect();
        if down.is_empty() {
            return;
        }
        down.sort_unstable();
        if self.settings.config_missing {
            diag.warn(format_args!(
                "{}: no such file; nothing can be restarted ({} down: {})",
                self.config.path.display(),
                down.len(),
                down.join(", ")
            ));
            return;
        }
        for p in &self.config.problems {
            if p.name.as_deref().is_some_and(|n| down.contains(&n)) {
                diag.warn(format_args!("not restarting '{}': {p}", p.subject()));
            }
        }
    }

    /// Visit every service parents first and act on the down ones.
    fn walk(&mut self, book: &mut Book<'_>, out: &mut dyn Write, diag: &Diag) -> Result<()> {
        let config = self.config;
        let mut restarted: HashSet<&str> = HashSet::new();
        let mut affected: HashSet<&str> = HashSet::new();
        // The maintenance windows, read when the first service that could be restarted is met.
        let mut windows = None;
        for i in restart_order(&config.services) {
            let svc = &config.services[i];
            let name = svc.name.as_str();
            let touched =
                svc.depends_on.iter().any(|p| restarted.contains(p.as_str()) || affected.contains(p.as_str()));
            if touched {
                affected.insert(name);
            }
            if !self.wants_action(name) {
                continue;
            }
            // A parent was restarted: this one may have come back with it. A fresh check that
            // is still down goes out unless a restart brings a fresher one.
            let mut recheck = None;
            if touched && !self.settings.dry_run {
                let fresh = self.check(svc, diag);
                if fresh.status != CheckStatus::Down {
                    self.log(diag, &format!("BACK: {name} — {} after a dependency's restart", fresh.status.as_str()));
                    self.emit_check(out, &fresh)?;
                    continue;
                }
                // Still down: behind a dependency that is still down, it says so as probe does,
                // so notify lists it under its parent instead of alerting on it alone.
                let mut fresh = fresh;
                fresh.suppressed_by = self.root_cause(svc);
                recheck = Some(fresh);
            }
            let Some(restart) = &svc.restart else {
                if let Some(c) = recheck {
                    self.emit_check(out, &c)?;
                }
                continue;
            };
            let policy = Policy::of(restart);
            let windows = windows.get_or_insert_with(|| self.windows(diag));
            if let Some((why, _)) = self.standing_still(windows, svc) {
                if let Some(c) = recheck.take() {
                    self.emit_check(out, &c)?;
                }
                self.stand_still(svc, &policy, &why, book, out, diag)?;
                continue;
            }
            let blockers = self.blockers(svc);
            let will_run = blockers.is_empty()
                && !self.settings.dry_run
                && matches!(self.peek(book, name, &policy), Decision::Run { .. });
            if let Some(c) = recheck.filter(|_| !will_run) {
                self.emit_check(out, &c)?;
            }
            if !blockers.is_empty() {
                self.skip(svc, &policy, &blockers, book, out, diag)?;
                continue;
            }
            let now = self.clock.unix();
            let decision = self.decide(book, name, &policy, now)?;
            match decision {
                Decision::Run { attempt } if self.settings.dry_run => {
                    let mut rec = self.recovery(name, Outcome::Skipped, attempt, &policy);
                    rec.detail = format!("dry run: would run the restart command: {}", restart.command);
                    let entry = book.entries().get(name).cloned().unwrap_or_default();
                    self.flap(&mut rec, &entry, &policy, now);
                    self.emit_recovery(out, &rec)?;
                }
                Decision::Run { attempt } => {
                    self.restart(svc, restart, &policy, attempt, book, out, diag)?;
                    restarted.insert(name);
                }
                Decision::Cooldown { remaining_seconds } => {
                    let entry = book.entries().get(name).cloned().unwrap_or_default();
                    self.cooling_down(name, &entry, &policy, remaining_seconds, now, out, diag)?;
                }
                Decision::MaxAttempts { attempts } => {
                    let entry = book.entries().get(name).cloned().unwrap_or_default();
                    self.out_of_attempts(name, &entry, &policy, attempts, now, out, diag)?;
                }
            }
        }
        Ok(())
    }

    /// What the rules say about restarting `name` now. On a locked ledger the rules may have
    /// reset a count or pulled a future time back, which is kept; a dry run decides on a copy.
    fn decide(&self, book: &mut Book<'_>, name: &str, policy: &Policy, now: f64) -> Result<Decision> {
        match book {
            Book::Locked(_) => {
                let entry = book.entries().entry(name.to_string()).or_default();
                let before = entry.clone();
                let decision = entry.decide(policy, now);
                if *entry != before && !matches!(decision, Decision::Run { .. }) {
                    book.save()?;
                }
                Ok(decision)
            }
            Book::ReadOnly(_) => Ok(self.peek(book, name, policy)),
        }
    }

    /// Say that `name` waits out its cooldown.
    #[allow(clippy::too_many_arguments)]
    fn cooling_down(
        &mut self,
        name: &str,
        entry: &Entry,
        policy: &Policy,
        remaining_seconds: u64,
        now: f64,
        out: &mut dyn Write,
        diag: &Diag,
    ) -> Result<()> {
        let mut rec = self.recovery(name, Outcome::Cooldown, entry.attempts, policy);
        let ago = (now - entry.last_attempt).max(0.0) as u64;
        rec.detail = format!(
            "{}last attempt {} ago; next attempt allowed in {} (restart_cooldown_seconds {})",
            self.dry_prefix(),
            clock::human_duration(ago),
            clock::human_duration(remaining_seconds),
            policy.cooldown_seconds
        );
        self.flap(&mut rec, entry, policy, now);
        self.log(diag, &format!("COOLDOWN: {name} — {remaining_seconds}s remaining"));
        self.emit_recovery(out, &rec)
    }

    /// Say that `name` has used all its attempts, and when the count resets.
    #[allow(clippy::too_many_arguments)]
    fn out_of_attempts(
        &mut self,
        name: &str,
        entry: &Entry,
        policy: &Policy,
        attempts: u32,
        now: f64,
        out: &mut dyn Write,
        diag: &Diag,
    ) -> Result<()> {
        let mut rec = self.recovery(name, Outcome::MaxAttempts, attempts, policy);
        let reset_at = clock::from_unix_f64(entry.last_attempt + policy.reset_after_seconds as f64)
            .map(clock::fmt_ts)
            .unwrap_or_default();
        rec.detail = format!(
            "{}{attempts} of {} restart attempts used; manual intervention required \
             (the count resets at {reset_at}, {} after the last attempt, or with recover --reset)",
            self.dry_prefix(),
            policy.max_attempts,
            clock::human_duration(policy.reset_after_seconds)
        );
        self.flap(&mut rec, entry, policy, now);
        self.log(diag, &format!("MAX_ATTEMPTS: {name} — {attempts} attempts exhausted"));
        self.emit_recovery(out, &rec)
    }

    /// What the rules would say now, without touching the ledger.
    fn peek(&self, book: &mut Book<'_>, name: &str, policy: &Policy) -> Decision {
        book.entries().get(name).cloned().unwrap_or_default().decide(policy, self.clock.unix())
    }

    /// The services `svc` depends on that are still down: its direct parents; failing those,
    /// the root cause its check record named (`suppressed_by`), unless the stream says that
    /// one is up (the stream may lack the parents in between).
    fn blockers(&self, svc: &Service) -> Vec<String> {
        let mut b: Vec<String> = svc.depends_on.iter().filter(|p| self.is_down(p)).cloned().collect();
        if let (true, Some(root)) = (b.is_empty(), self.seen.get(&svc.name).and_then(|s| s.suppressed_by.as_ref()))
            && *root != svc.name
            && self.seen.get(root).is_none_or(|s| s.down)
        {
            b.push(root.clone());
        }
        b
    }

    /// The root cause of a service that is still down, as probe names it: the topmost service
    /// it depends on that is still down; failing that, the blocker its record named.
    fn root_cause(&self, svc: &Service) -> Option<String> {
        let config = self.config;
        let mut cur = config.service(&svc.name)?;
        let mut visited: HashSet<&str> = HashSet::from([cur.name.as_str()]);
        let mut root = None;
        while let Some(p) = cur.depends_on.iter().find(|p| self.is_down(p) && !visited.contains(p.as_str())) {
            visited.insert(p);
            root = Some(p.clone());
            match config.service(p) {
                Some(parent) => cur = parent,
                None => break,
            }
        }
        root.or_else(|| self.blockers(svc).into_iter().next())
    }

    fn skip(
        &mut self,
        svc: &Service,
        policy: &Policy,
        blockers: &[String],
        book: &mut Book<'_>,
        out: &mut dyn Write,
        diag: &Diag,
    ) -> Result<()> {
        let now = self.clock.unix();
        let entry = book.entries().get(&svc.name).cloned().unwrap_or_default();
        let mut rec = self.recovery(&svc.name, Outcome::Skipped, entry.attempts_at(policy, now), policy);
        let quoted: Vec<String> = blockers.iter().map(|b| format!("'{b}'")).collect();
        let (list, verb) = match quoted.as_slice() {
            [one] => (one.clone(), "is"),
            [init @ .., last] => (format!("{} and {last}", init.join(", ")), "are"),
            [] => (String::new(), "is"),
        };
        rec.detail = format!("{}depends on {list}, which {verb} still down; not restarted", self.dry_prefix());
        self.flap(&mut rec, &entry, policy, now);
        self.log(diag, &format!("SKIPPED: {} — depends on {list}, still down", svc.name));
        self.emit_recovery(out, &rec)
    }

    /// Count the attempt, run the command, verify, report.
    #[allow(clippy::too_many_arguments)]
    fn restart(
        &mut self,
        svc: &Service,
        restart: &Restart,
        policy: &Policy,
        attempt: u32,
        book: &mut Book<'_>,
        out: &mut dyn Write,
        diag: &Diag,
    ) -> Result<()> {
        let name = svc.name.as_str();
        let began = self.clock.unix();
        book.entries().entry(name.to_string()).or_default().begin(policy, began);
        book.save()?;

        let ran = self.run_command(name, restart, policy, attempt, diag);
        let delay = Duration::try_from_secs_f64(restart.verify_delay_seconds).unwrap_or(Duration::ZERO);
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let fresh = self.check(svc, diag);
        let up = fresh.status != CheckStatus::Down;
        let command_ok = ran.as_ref().is_ok_and(proc::Outcome::success);
        let outcome = if command_ok && up { Outcome::Recovered } else { Outcome::Failed };

        let now = self.clock.unix();
        let entry = book.entries().entry(name.to_string()).or_default();
        if outcome == Outcome::Recovered {
            entry.succeeded(began);
        }
        let entry = entry.clone();
        book.save()?;

        let mut rec = self.recovery(name, outcome, attempt, policy);
        rec.verified = up;
        let log_line = describe_attempt(&mut rec, &ran, &fresh, restart, policy);
        let flapping = self.flap(&mut rec, &entry, policy, now);
        let log_line = match flapping {
            Some(n) => format!(
                "{log_line}; FLAPPING: {n} restarts within {}",
                clock::human_duration(policy.flap_window_seconds)
            ),
            None => log_line,
        };
        self.log(diag, &log_line);
        self.history(&rec, began, diag);
        self.emit_check(out, &fresh)?;
        self.emit_recovery(out, &rec)?;
        if let Some(s) = self.seen.get_mut(name) {
            s.down = !up;
            s.detail = fresh.detail;
        }
        Ok(())
    }

    /// Run the restart command of `name` with the attempt in its environment; warn when it
    /// left a process holding its output open.
    fn run_command(
        &self,
        name: &str,
        restart: &Restart,
        policy: &Policy,
        attempt: u32,
        diag: &Diag,
    ) -> std::io::Result<proc::Outcome> {
        let mut env = vec![
            ("PITCREW_SERVICE".to_string(), name.to_string()),
            ("PITCREW_ATTEMPT".to_string(), attempt.to_string()),
            ("PITCREW_MAX_ATTEMPTS".to_string(), policy.max_attempts.to_string()),
            ("PITCREW_DETAIL".to_string(), self.seen.get(name).map(|s| s.detail.clone()).unwrap_or_default()),
        ];
        if let Some(p) = &self.settings.path_env {
            env.push(("PATH".to_string(), p.clone()));
        }
        let started = Instant::now();
        let ran = restart::run(&restart.command, Duration::from_secs(restart.timeout_seconds), env, None);
        if let Ok(o) = &ran
            && !o.timed_out
            && started.elapsed() >= o.duration + proc::OUTPUT_GRACE
        {
            diag.warn(format_args!(
                "{name}: the restart command left a process holding its output open; redirect the \
                     output of what it starts in the background (cmd >file 2>&1 &)"
            ));
        }
        ran
    }

    /// Run the service's check again, with a fresh environment (a new process table) and
    /// the engine's watchdog, so a check that hangs cannot hang the run.
    fn check(&mut self, svc: &Service, diag: &Diag) -> Check {
        let env = Arc::new(CheckEnv::new(self.clock, USER_AGENT));
        let fresh = check::run_all(vec![svc.job()], &env, 1, diag).pop().unwrap_or_else(|| {
            let mut c = Check::new(&svc.name, svc.type_name(), &svc.target(), CheckStatus::Down, "not checked".into());
            c.timestamp = self.clock.stamp();
            c
        });
        if let Some(s) = self.seen.get_mut(&svc.name) {
            s.down = fresh.status == CheckStatus::Down;
            s.detail = fresh.detail.clone();
        }
        fresh
    }

    /// Restarts within the flap window, and the flag when that many is flapping. Returns
    /// the count when flapping.
    fn flap(&self, rec: &mut Recovery, entry: &Entry, policy: &Policy, now: f64) -> Option<u32> {
        let (flapping, n) = entry.flapping(policy, now);
        rec.restarts_in_window = Some(n);
        rec.flapping = flapping;
        flapping.then_some(n)
    }

    fn recovery(&self, name: &str, outcome: Outcome, attempt: u32, policy: &Policy) -> Recovery {
        Recovery::new(name, outcome, attempt, policy.max_attempts, self.settings.dry_run, self.clock.stamp())
    }

    /// Append the restart to the restart history (`state/restarts/DAY.jsonl`, beside the
    /// ledger) for `rollup incidents`: the recovery record as `kind: "restart"`, with when the
    /// command started. A history that cannot be written is said, never fatal.
    fn history(&self, rec: &Recovery, began: f64, diag: &Diag) {
        if self.settings.dry_run {
            return;
        }
        let mut v = serde_json::to_value(rec).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.insert("kind".into(), "restart".into());
            let started = clock::from_unix_f64(began).map(clock::fmt_ts).unwrap_or_default();
            m.insert("started".into(), started.into());
        }
        let dir = crate::history::restarts_dir(self.settings.ledger.parent().unwrap_or(Path::new(".")));
        if let Err(e) = crate::history::append(&dir, self.clock.now(), &[v]) {
            diag.warn(format_args!("{e}; the restart history misses this restart"));
        }
    }

    fn dry_prefix(&self) -> &'static str {
        if self.settings.dry_run { "dry run: " } else { "" }
    }

    fn emit_check(&mut self, out: &mut dyn Write, c: &Check) -> Result<()> {
        match self.settings.format {
            Format::Ndjson => ndjson::write(out, c),
            Format::Text => Ok(writeln!(out, "{}", c.text_line())?),
        }
    }

    fn emit_recovery(&mut self, out: &mut dyn Write, r: &Recovery) -> Result<()> {
        *self.tally.entry(r.outcome.as_str()).or_default() += 1;
        if self.focus.is_some() {
            self.acted.push((r.name.clone(), r.outcome));
        }
        match self.settings.format {
            Format::Ndjson => ndjson::write(out, r),
            Format::Text => Ok(writeln!(out, "{}", recovery_text_line(r))?),
        }
    }

    fn log(&mut self, diag: &Diag, msg: &str) {
        if !self.settings.dry_run {
            self.settings.log.line(&self.clock, diag, msg);
        }
    }

    fn summary(&self, out: &mut dyn Write, still_down: usize) -> Result<()> {
        let mut parts: Vec<String> = self.tally.iter().map(|(k, n)| format!("{n} {k}")).collect();
        if parts.is_empty() {
            parts.push("nothing restarted".into());
        }
        let tail = match still_down {
            0 => "everything is up".to_string(),
            n => format!("{n} still down"),
        };
        writeln!(out, "\n{}; {tail}.", parts.join(", "))?;
        Ok(())
    }
}

/// The services' indices, each after every service it depends on (config order otherwise;
/// a dependency cycle is cut where it closes).
pub(crate) fn restart_order(services: &[Service]) -> Vec<usize> {
    let index: HashMap<&str, usize> = services.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
    let mut state = vec![0u8; services.len()]; // 0 unseen, 1 on the path, 2 placed
    let mut order = Vec::with_capacity(services.len());
    for start in 0..services.len() {
        if state[start] != 0 {
            continue;
        }
        state[start] = 1;
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        while let Some((node, next)) = stack.last_mut() {
            let deps = &services[*node].depends_on;
            if let Some(dep) = deps.get(*next) {
                *next += 1;
                if let Some(&d) = index.get(dep.as_str())
                    && state[d] == 0
                {
                    state[d] = 1;
                    stack.push((d, 0));
                }
            } else {
                state[*node] = 2;
                order.push(*node);
                stack.pop();
            }
        }
    }
    order
}

/// The first line the command said (stderr, else stdout), cut to 200 characters.
fn command_output(o: &proc::Outcome) -> Option<String> {
    [&o.stderr, &o.stdout]
        .into_iter()
        .map(|s| util::first_line(s))
        .find(|l| !l.is_empty())
        .map(|l| util::truncate(l, 200))
}

fn prefixed(said: &Option<String>) -> String {
    said.as_ref().map(|s| format!(": {s}")).unwrap_or_default()
}

/// A check record as the Agent Ops Kit's text line; records that are not quite checks still show.
fn check_text_line(v: &Value) -> String {
    match serde_json::from_value::<Check>(v.clone()) {
        Ok(c) => c.text_line(),
        Err(_) => {
            let detail = record::str_field(v, "detail");
            let sep = if detail.is_empty() { "" } else { " - " };
            format!("[{}] {}{sep}{detail}", record::str_field(v, "status").to_uppercase(), record::str_field(v, "name"))
        }
    }
}

/// `[RECOVERED] api - restarted; check up: HTTP 200; attempt 1/3, 412ms`.
pub(crate) fn recovery_text_line(r: &Recovery) -> String {
    let mut s = format!("[{}] {} - {}", r.outcome.as_str().to_uppercase(), r.name, r.detail);
    let mut facts = vec![format!("attempt {}/{}", r.attempt, r.max_attempts)];
    if r.duration_ms > 0 {
        facts.push(format!("{}ms", r.duration_ms));
    }
    s.push_str(&format!("; {}", facts.join(", ")));
    if r.flapping {
        s.push_str(&format!(" [flapping: {} restarts in the window]", r.restarts_in_window.unwrap_or(0)));
    }
    s
}

/// Fill in what the attempt of `rec` did (exit code, time, detail) and return its log line.
fn describe_attempt(
    rec: &mut Recovery,
    ran: &std::io::Result<proc::Outcome>,
    fresh: &Check,
    restart: &Restart,
    policy: &Policy,
) -> String {
    let (name, attempt, up) = (rec.name.clone(), rec.attempt, rec.verified);
    let check_says = format!("check {}: {}", fresh.status.as_str(), fresh.detail);
    let counter = format!("attempt {attempt}/{}", policy.max_attempts);
    match ran {
        Ok(o) => {
            rec.exit_code = o.exit_code;
            rec.duration_ms = o.duration.as_millis().min(u128::from(u64::MAX)) as u64;
            let ms = rec.duration_ms;
            let said = command_output(o);
            if o.timed_out {
                let limit = restart.timeout_seconds;
                rec.detail = format!("restart command timed out after {limit}s (process group killed); {check_says}");
                format!("RESTART TIMEOUT: {name} ({counter}, timed out after {limit}s)")
            } else if !o.success() {
                rec.detail = match &said {
                    Some(s) => format!("restart command failed: {}: {s}; {check_says}", o.describe()),
                    None => format!("restart command failed: {}; {check_says}", o.describe()),
                };
                format!("RESTART FAIL: {name} ({counter}, {}, {ms}ms){}", o.describe(), prefixed(&said))
            } else if !up {
                rec.detail = format!("restart command succeeded but the service is still down: {}", fresh.detail);
                format!("RESTART UNVERIFIED: {name} ({counter}, {ms}ms): still down: {}", fresh.detail)
            } else {
                rec.detail = format!("restarted; {check_says}");
                format!("RESTART OK: {name} ({counter}, {ms}ms)")
            }
        }
        Err(e) => {
            rec.detail = format!("cannot run the restart command: {e}; {check_says}");
            format!("RESTART ERROR: {name} ({counter}): {e}")
        }
    }
}

/// The human log, `HOME/logs/recovery.log`: one `[YYYY-MM-DD HH:MM:SS] WHAT: ...` line per
/// action, appended in one write. A log that cannot be written is reported once and then
/// left alone: it never stops a recovery.
pub(crate) struct RecoveryLog {
    path: Option<PathBuf>,
}

impl RecoveryLog {
    pub fn new(path: Option<PathBuf>) -> RecoveryLog {
        RecoveryLog { path }
    }

    pub fn line(&mut self, clock: &Clock, diag: &Diag, msg: &str) {
        let Some(path) = &self.path else { return };
        let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
        let ts = clock.now().format(&fmt).unwrap_or_default();
        let line = format!("[{ts}] {}\n", msg.replace('\n', " "));
        if let Err(e) = store::append_line(path, line.as_bytes()) {
            diag.warn(format_args!("{e} (logging no more in this run)"));
            self.path = None;
        }
    }
}

/// `--reset NAME...`: forget the services' attempts and restart history, under the lock.
fn reset(
    names: &[String],
    ledger_path: &Path,
    log: &mut RecoveryLog,
    clock: &Clock,
    format: Format,
    out: &mut dyn Write,
    diag: &Diag,
) -> Result<Status> {
    let mut lock = Ledger::lock(ledger_path)?;
    let mut held = Ledger::open(ledger_path, &mut lock)?;
    let mut forgotten = Vec::new();
    for name in names {
        match held.ledger.entries.remove(name) {
            Some(e) => forgotten.push((name, e)),
            None => diag.warn(format_args!("{name}: no restart history to reset")),
        }
    }
    if forgotten.is_empty() {
        return Ok(Status::Ok);
    }
    held.ledger.save()?;
    for (name, e) in forgotten {
        log.line(clock, diag, &format!("RESET: {name} — {} attempt(s) forgotten", e.attempts));
        if format == Format::Text {
            writeln!(out, "reset {name}: {} attempt(s), {} recent restart(s) forgotten", e.attempts, e.restarts.len())?;
        }
    }
    Ok(Status::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::entry::SharedBuf;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pitcrew-recover-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn config(services: Value) -> Config {
        let doc = serde_json::json!({ "services": services });
        let env = config::env_from(&[]);
        Config::parse(doc.to_string().as_bytes(), Path::new("services.json"), &env).unwrap()
    }

    fn settings(dir: &Path, dry_run: bool) -> Settings {
        Settings {
            dry_run,
            format: Format::Ndjson,
            ledger: dir.join("state").join(LEDGER_FILE),
            log: RecoveryLog::new(Some(dir.join("logs").join(LOG_FILE))),
            config_missing: false,
            path_env: None,
            silences_dir: Some(dir.join("state")),
        }
    }

    fn clock(t: &str) -> Clock {
        Clock::fixed(clock::parse_ts(t).unwrap())
    }

    /// Run the engine over NDJSON text; returns (status, output records, stderr).
    fn run(cfg: &Config, clock: Clock, s: Settings, input: &str) -> (Status, Vec<Value>, String) {
        let (diag, err) = Diag::memory("recover");
        let mut engine = Recover::new(cfg, clock, s);
        let mut out = SharedBuf::default();
        let mut take = |b: &[u8], _: ndjson::Pos<'_>| -> ndjson::Verdict {
            match ndjson::parse_object(b) {
                Ok(v) => engine.take(v, &mut out).map(Ok),
                Err(e) => Ok(Err(e)),
            }
        };
        ndjson::read_lines(input.as_bytes(), "stdin", ndjson::ReadOpts::default(), &diag, &mut take).unwrap();
        let status = engine.finish(&mut out, &diag).unwrap();
        let recs = out.text().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        (status, recs, err.text())
    }

    fn down(name: &str) -> String {
        format!("{}\n", serde_json::json!({"kind": "check", "name": name, "status": "down", "detail": "refused"}))
    }

    fn sh_quote(p: &Path) -> String {
        format!("'{}'", p.display())
    }

    #[test]
    fn order_puts_parents_first_and_survives_cycles() {
        let cfg = config(serde_json::json!([
            {"name": "worker", "type": "process", "process_name": "w", "depends_on": ["api"]},
            {"name": "api", "type": "process", "process_name": "a", "depends_on": ["gateway", "db"]},
            {"name": "db", "type": "process", "process_name": "d"},
            {"name": "gateway", "type": "process", "process_name": "g"},
            {"name": "x", "type": "process", "process_name": "x", "depends_on": ["y", "nope"]},
            {"name": "y", "type": "process", "process_name": "y", "depends_on": ["x"]}
        ]));
        let names: Vec<&str> = restart_order(&cfg.services).iter().map(|&i| cfg.services[i].name.as_str()).collect();
        assert_eq!(names, ["gateway", "db", "api", "worker", "y", "x"]);
    }

    #[test]
    fn path_gains_the_system_directories_once() {
        assert_eq!(
            command_path(Some("/opt/bin:/usr/bin")),
            "/opt/bin:/usr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin:/bin"
        );
        assert!(command_path(None).starts_with("/usr/local/sbin:"));
    }

    #[test]
    fn a_status_in_capitals_is_the_same_status() {
        let d = tmpdir("capitals");
        let flag = d.join("api.up");
        let cfg = config(serde_json::json!([{
            "name": "api", "type": "command", "command": format!("test -f {}", sh_quote(&flag)),
            "restart_command": format!("touch {}", sh_quote(&flag)), "verify_delay_seconds": 0
        }]));
        let input = format!("{}\n", serde_json::json!({"kind": "check", "name": "api", "status": "DOWN"}));
        let (status, recs, err) = run(&cfg, clock("2026-11-23T10:30:00Z"), settings(&d, false), &input);
        assert_eq!(status, Status::Ok, "{err}");
        assert_eq!(recs.last().unwrap()["outcome"], "recovered", "DOWN is down: {recs:?}");
    }

    #[test]
    fn passes_everything_through_then_restarts_and_verifies() {
        let d = tmpdir("through");
        let flag = d.join("api.up");
        let cfg = config(serde_json::json!([{
            "name": "api", "type": "command",
            "command": format!("test -f {} || exit 2", sh_quote(&flag)),
            "restart_command": format!("echo \"$PITCREW_SERVICE $PITCREW_ATTEMPT/$PITCREW_MAX_ATTEMPTS $PITCREW_DETAIL\" > {}", sh_quote(&flag)),
            "verify_delay_seconds": 0
        }]));
        let input = format!(
            "{}{{\"kind\":\"alert\",\"topic\":\"t\",\"zone\":[1]}}\n{{\"name\":\"kit-line\",\"status\":\"up\"}}\n",
            down("api")
        );
        let (status, recs, err) = run(&cfg, clock("2026-11-23T10:30:00Z"), settings(&d, false), &input);
        assert_eq!(status, Status::Ok, "{err}");
        let inputs: Vec<Value> = input.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(recs[..3], inputs[..], "records pass through unchanged, in order");
        assert_eq!((recs[3]["kind"].as_str(), recs[3]["status"].as_str()), (Some("check"), Some("up")));
        let r = &recs[4];
        assert_eq!(r["outcome"], "recovered", "{r}");
        assert_eq!(
            (r["attempt"].as_u64(), r["max_attempts"].as_u64(), r["verified"].as_bool()),
            (Some(1), Some(3), Some(true))
        );
        assert_eq!(r["exit_code"], 0);
        assert_eq!(r["restarts_in_window"], 1);
        assert!(r.get("flapping").is_none());
        assert_eq!(r["timestamp"], "2026-11-23T10:30:00.000Z");
        assert_eq!(std::fs::read_to_string(&flag).unwrap(), "api 1/3 refused\n");
        let ledger: BTreeMap<String, Entry> =
            store::read_json(&d.join("state/recovery.json"), store::kinds::LEDGER).unwrap().unwrap();
        assert_eq!(ledger["api"].attempts, 1);
        assert!(ledger["api"].last_success.is_some());
        let log = std::fs::read_to_string(d.join("logs/recovery.log")).unwrap();
        assert!(log.starts_with("[2026-11-23 10:30:00] RESTART OK: api (attempt 1/3, "), "{log}");
    }

    #[test]
    fn cooldown_max_attempts_reset_and_flapping() {
        let d = tmpdir("rules");
        let count = d.join("count");
        let cfg = config(serde_json::json!([{
            "name": "api", "type": "command", "command": "exit 2",
            "restart_command": format!("echo x >> {}", sh_quote(&count)),
            "verify_delay_seconds": 0
        }]));
        let at = |t: &str| run(&cfg, clock(t), settings(&d, false), &down("api"));
        let outcome = |recs: &[Value]| recs.last().unwrap()["outcome"].as_str().unwrap().to_string();
        let (st, r, _) = at("2026-11-23T10:00:00Z");
        assert_eq!((st, outcome(&r)), (Status::Failures, "failed".to_string()));
        assert!(r.last().unwrap()["detail"].as_str().unwrap().contains("still down"), "{r:?}");
        let (_, r, _) = at("2026-11-23T10:00:10Z");
        assert_eq!(outcome(&r), "cooldown");
        assert!(r.last().unwrap()["detail"].as_str().unwrap().contains("next attempt allowed in 4m 50s"));
        assert_eq!(r.len(), 2, "no fresh check without a restart");
        assert_eq!(outcome(&at("2026-11-23T10:05:01Z").1), "failed");
        let (_, r, _) = at("2026-11-23T10:10:02Z");
        let last = r.last().unwrap();
        assert_eq!((last["attempt"].as_u64(), last["flapping"].as_bool()), (Some(3), Some(true)));
        let (_, r, _) = at("2026-11-23T10:15:03Z");
        assert_eq!(outcome(&r), "max_attempts");
        assert!(r.last().unwrap()["detail"].as_str().unwrap().contains("2026-11-23T11:10:02.000Z"), "{r:?}");
        let (_, r, _) = at("2026-11-23T11:10:03Z");
        assert_eq!((outcome(&r), r.last().unwrap()["attempt"].as_u64()), ("failed".to_string(), Some(1)));
        assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 4);
    }

    #[test]
    fn parents_first_children_rechecked_or_skipped() {
        let d = tmpdir("deps");
        let order = d.join("order");
        let gw = d.join("gw.up");
        let q = |p: &Path| sh_quote(p);
        let cfg = config(serde_json::json!([
            {"name": "worker", "type": "command", "command": format!("test -f {} || exit 2", q(&d.join("worker.up"))),
             "depends_on": ["api"], "verify_delay_seconds": 0,
             "restart_command": format!("echo worker >> {}; touch {}", q(&order), q(&d.join("worker.up")))},
            {"name": "api", "type": "command", "command": format!("test -f {} || exit 2", q(&gw)),
             "depends_on": ["gateway"], "verify_delay_seconds": 0,
             "restart_command": format!("echo api >> {}", q(&order))},
            {"name": "gateway", "type": "command", "command": format!("test -f {} || exit 2", q(&gw)),
             "verify_delay_seconds": 0,
             "restart_command": format!("echo gateway >> {}; test -f {} && touch {}", q(&order), q(&d.join("allow")), q(&gw))}
        ]));
        let input = format!("{}{}{}", down("worker"), down("api"), down("gateway"));
        // The gateway cannot come back: nothing that depends on it is restarted.
        let (st, recs, _) = run(&cfg, clock("2026-11-23T10:00:00Z"), settings(&d, false), &input);
        assert_eq!(st, Status::Failures);
        let rec = |recs: &[Value], kind: &str, name: &str| {
            recs.iter().skip(3).find(|r| r["kind"] == kind && r["name"] == name).cloned().unwrap_or(Value::Null)
        };
        assert_eq!(rec(&recs, "recovery", "gateway")["outcome"], "failed");
        let api = rec(&recs, "recovery", "api");
        assert_eq!(
            (api["outcome"].as_str(), api["detail"].as_str()),
            (Some("skipped"), Some("depends on 'gateway', which is still down; not restarted"))
        );
        assert_eq!(rec(&recs, "recovery", "worker")["detail"], "depends on 'api', which is still down; not restarted");
        assert_eq!(std::fs::read_to_string(&order).unwrap(), "gateway\n");
        // The children checked again after the gateway's restart are still down because of it,
        // and say so as probe does (notify lists them under the gateway).
        for child in ["api", "worker"] {
            let c = rec(&recs, "check", child);
            assert_eq!((c["status"].as_str(), c["suppressed_by"].as_str()), (Some("down"), Some("gateway")), "{c}");
        }

        // Now it can: api comes back with it (re-checked, not restarted); worker is restarted.
        std::fs::write(d.join("allow"), "").unwrap();
        let (st, recs, err) = run(&cfg, clock("2026-11-23T11:00:00Z"), settings(&d, false), &input);
        assert_eq!(st, Status::Ok, "{err}");
        let names: Vec<String> = recs[3..]
            .iter()
            .map(|r| format!("{}:{}", r["kind"].as_str().unwrap(), r["name"].as_str().unwrap()))
            .collect();
        assert_eq!(names, ["check:gateway", "recovery:gateway", "check:api", "check:worker", "recovery:worker"]);
        assert_eq!(rec(&recs, "check", "api")["status"], "up");
        assert_eq!(rec(&recs, "recovery", "worker")["outcome"], "recovered");
        assert_eq!(std::fs::read_to_string(&order).unwrap(), "gateway\ngateway\nworker\n");
    }

    #[test]
    fn commands_in_the_stream_never_run() {
        let d = tmpdir("stream-cmd");
        let pwned = d.join("pwned");
        let cfg = config(serde_json::json!([{"name": "plain", "type": "command", "command": "exit 2"}]));
        let input = [
            serde_json::json!({"kind": "check", "name": "plain", "status": "down", "restart_command": format!("touch {}", sh_quote(&pwned))}),
            serde_json::json!({"kind": "check", "name": "ghost", "status": "down", "restart_command": format!("touch {}", sh_quote(&pwned))}),
        ]
        .iter()
        .map(|v| format!("{v}\n"))
        .collect::<String>();
        let (st, recs, _) = run(&cfg, clock("2026-11-23T10:00:00Z"), settings(&d, false), &input);
        assert_eq!((st, recs.len()), (Status::Failures, 2));
        assert!(!pwned.exists());
        assert!(!d.join("state").exists(), "nothing to act on: no ledger");
    }

    #[test]
    fn dry_run_changes_nothing() {
        let d = tmpdir("dry");
        let ran = d.join("ran");
        let cfg = config(serde_json::json!([{
            "name": "api", "type": "command", "command": "exit 2",
            "restart_command": format!("touch {}", sh_quote(&ran))
        }]));
        let (st, recs, _) = run(&cfg, clock("2026-11-23T10:00:00Z"), settings(&d, true), &down("api"));
        assert_eq!(st, Status::Failures);
        let r = &recs[1];
        assert_eq!((r["outcome"].as_str(), r["dry_run"].as_bool()), (Some("skipped"), Some(true)));
        assert!(r["detail"].as_str().unwrap().starts_with("dry run: would run the restart command: touch"));
        assert!(!ran.exists() && !d.join("state").exists() && !d.join("logs").exists());
    }
}
