#![warn(missing_docs)]
//! notify: turn records into alerts, once, and get them to people through real channels.
//!
//! A run: read the records (passing through the kinds it does not read), take notify's lock,
//! send again what waits in the outbox, decide what to raise from what the records say and
//! what the state remembers ([`state::evaluate`]), send the raised alerts as one batch per
//! sink, queue in the outbox what a sink did not take, remember, and write `alert` records.
//! The lock (`state/notify.json.lock`) is held from the first read of the state to the last
//! write, so overlapping runs never announce the same thing twice.

pub(crate) mod ack;
pub mod alert;
pub(crate) mod cli;
pub(crate) mod escalate;
pub(crate) mod follow;
pub(crate) mod hub;
pub(crate) mod lifecycle;
pub mod outbox;
mod quorum;
pub mod render;
pub mod rules;
pub(crate) mod show;
pub mod silence;
pub(crate) mod sinks;
pub mod state;

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::CommandFactory;
use serde_json::{Value, json};

use self::alert::{Alert, SinkResult, Suppressed};
use self::cli::{AckArgs, Cli, Cmd, Format, OutboxCmd, SilenceCmd};
use self::outbox::{Line as OutboxLine, Queued};
use self::silence::{Matcher, Silence, Silences};
use self::sinks::Sink;
use self::state::{Input, Policy, Rates, State};
use crate::clock::{self, Clock};
use crate::config::Config;
use crate::entry::{Ctx, Diag, Tool};
use crate::error::{Error, Result, Status};
use crate::ndjson::{self, Source};
use crate::record::{self, Kind, Level};
use crate::store::Lock;
use crate::util;

/// The `notify` tool, as its binary hands it to [`crate::entry::run`].
pub const TOOL: Tool = Tool { name: "notify", main, command };

/// notify's clap definition (for completions and man pages).
pub fn command() -> clap::Command {
    Cli::command()
}

/// Where notify keeps its files.
#[derive(Debug, Clone)]
pub(crate) struct Files {
    pub state: PathBuf,
    pub rates: PathBuf,
    pub silences: PathBuf,
    pub outbox: PathBuf,
    /// The alert history's directory (`state/alerts/`).
    pub history: PathBuf,
}

impl Files {
    pub fn under(state_dir: &Path) -> Files {
        Files {
            state: state_dir.join("notify.json"),
            rates: state_dir.join("alert-rate.json"),
            silences: state_dir.join("silences.json"),
            outbox: state_dir.join("outbox.jsonl"),
            history: crate::history::alerts_dir(state_dir),
        }
    }

    /// Under a hub: the shared files in the hub's local copy, the history where it always is.
    pub fn under_hub(hub: &hub::Hub, state_dir: &Path) -> Files {
        Files { history: crate::history::alerts_dir(state_dir), ..Files::under(hub.dir()) }
    }
}

/// The `notify` tool.
pub fn main(ctx: &mut Ctx, args: Vec<OsString>) -> Result<Status> {
    let (cli, set) = crate::cli::setup::<Cli>(&mut ctx.out, args)?;
    let (paths, clock) = (&set.paths, set.clock);
    ctx.out.escape_controls(cli.format != cli::Format::Ndjson);
    let hub = hub::Hub::from_cli(&cli, &paths.state)?;
    let files = match &hub {
        Some(h) => Files::under_hub(h, &paths.state),
        None => Files::under(&paths.state),
    };
    if let Some(done) = memory_cmd(ctx, &cli, &files, &clock, hub.as_ref()) {
        return done;
    }
    let config = set.load_config(false)?;
    if cli.follow && cli.cmd.is_some() {
        return Err(Error::usage("--follow reads records; it does not go with a subcommand"));
    }
    let timing = follow::Timing::of(&config, cli.group_wait, cli.group_interval)?;
    if let Some(h) = &hub
        && let Some(standby) = h.before_reading(&cli, &files, &ctx.diag)?
    {
        return Ok(standby);
    }
    // Before any other thread starts (the signals are blocked in every thread after it).
    let input = match cli.follow {
        true => Some(crate::ndjson::follow::Follow::start(Source::from_args(&cli.files), set.read_opts)?),
        false => None,
    };
    let Ctx { out, diag, stdin_is_terminal, .. } = ctx;
    let diag: &Diag = diag;
    let mut engine = Engine::of(&config, &cli, diag, clock, &paths.home, files, hub.as_ref())?;
    if let Some(done) = engine.memory_cmd(&cli, out) {
        return done;
    }

    let quorum_dir = hub.as_ref().map_or(paths.state.as_path(), |h| h.dir());
    let mut quorum = quorum::Quorum::load(quorum_dir, cli.quorum.map(|k| k as usize), cli.quorum_window, &config)?;
    if cli.dry_run {
        quorum.read_only();
    }
    if let Some(input) = input {
        out.set_line_buffered(true);
        let ended = follow::run(&mut engine, &input, timing, cli.format, set.read_opts, out, diag, &mut quorum);
        if let Some(h) = &hub {
            // A clean end hands the lease on at once; a failed one lets it run out.
            if ended.is_ok() {
                h.release();
            }
        }
        return ended;
    }
    let mut input = Input::default();
    match &cli.cmd {
        Some(Cmd::Send(s)) => input.loose.push(send_alert(s, diag, &engine.clock.stamp())?),
        _ => {
            let sources =
                if cli.files.is_empty() && *stdin_is_terminal { Vec::new() } else { Source::from_args(&cli.files) };
            let text = cli.format == Format::Text;
            let now = engine.clock.now();
            ndjson::for_each_line(&sources, set.read_opts, diag, |bytes, _| match ndjson::parse_object(bytes) {
                Ok(v) => read_record(quorum.rewrite(v, now), &mut input, &mut *out, text),
                Err(why) => Ok(Err(why)),
            })?;
        }
    }
    let sending = cli.cmd.is_some();
    if engine.sinks.is_empty() && sending {
        diag.warn("no sink is configured (see the alerting settings): the alert only goes to stdout");
    }
    if hub.is_some() {
        // The quorum's view is part of the shared memory the run writes back.
        quorum.save()?;
    }
    let report = engine.run(input);
    if let Some(h) = &hub {
        h.release();
    }
    let report = report?;
    quorum.save()?;
    for a in &report.alerts {
        if sending && a.suppressed == Some(Suppressed::RateLimit) {
            diag.warn(format_args!(
                "rate limited: topic '{}' was sent within the last {}s; not sent",
                a.topic, engine.policy.rate_limit_s
            ));
        }
    }
    write_report(&mut *out, &report, cli.format, cli.dry_run)?;
    if let Some(e) = report.unsaved {
        return Err(e);
    }
    Ok(Status::failures_if(report.undelivered > 0))
}

/// `notify silence …` and `notify outbox …`: the commands that need no configuration (under
/// a hub, on the shared memory); `None` for the others.
fn memory_cmd(
    ctx: &mut Ctx,
    cli: &Cli,
    files: &Files,
    clock: &Clock,
    hub: Option<&hub::Hub>,
) -> Option<Result<Status>> {
    match &cli.cmd {
        Some(Cmd::Silence(s)) => Some(silence_cmd(ctx, cli, s, files, clock, hub)),
        Some(Cmd::Outbox(o)) if matches!(o, OutboxCmd::List) || cli.dry_run => {
            Some(hub.map_or(Ok(()), |h| h.pull_locked(files)).and_then(|()| outbox_cmd(ctx, cli, o, files, clock)))
        }
        Some(Cmd::Outbox(o)) => {
            Some(hub::with_lease(hub, files, "outbox drop", || outbox_cmd(ctx, cli, o, files, clock)))
        }
        _ => None,
    }
}

impl<'a> Engine<'a> {
    /// The engine the configuration and the command line make.
    fn of(
        config: &Config,
        cli: &Cli,
        diag: &'a Diag,
        clock: Clock,
        home: &Path,
        files: Files,
        hub: Option<&'a hub::Hub>,
    ) -> Result<Engine<'a>> {
        let sinks = build_sinks(config, &cli.sink, diag, &hostname(config), &clock, home)?;
        let policy = Policy {
            repeat_interval_s: config.alerting.repeat_interval_seconds,
            rate_limit_s: config.alerting.rate_limit_seconds,
            alert_on_recovery: config.alerting.alert_on_recovery,
            after: cli.after,
            // Records from a stream may come again after newer ones; a pipe keeps the order.
            newest_wins: hub.is_some() || cli.files.iter().any(|f| f.to_str().is_some_and(crate::fleet::url::is_nats)),
        };
        let escalation = escalate::Escalation::from_config(&config.alerting.raw, &config.path.display().to_string())
            .map_err(Error::config)?;
        let polls_acks = ["telegram_acks", "gitea_acks"]
            .iter()
            .any(|k| config.alerting.raw.get(*k).and_then(Value::as_bool).unwrap_or(false));
        Ok(Engine {
            sinks,
            policy,
            sink_repeat: sink_repeat_intervals(config),
            dry_run: cli.dry_run,
            files,
            diag,
            clock,
            max_subjects: max_subjects(config)?,
            escalation,
            polls_acks,
            hub,
        })
    }

    /// `notify ack` and `notify state`: the commands that need the engine (under a hub, on
    /// the shared memory; an acknowledgement while a resident hub leads is handed to it);
    /// `None` for the others.
    fn memory_cmd(&mut self, cli: &Cli, out: &mut dyn Write) -> Option<Result<Status>> {
        let hub = self.hub;
        match &cli.cmd {
            Some(Cmd::Ack(a)) => Some((|| {
                if let Some(h) = hub
                    && let Err(holder) = h.try_lead()?
                {
                    h.queue_ack(&ack::Request::from_args(a, self.clock.now())?)?;
                    self.diag.warn(format_args!(
                        "ack: {holder} leads; it applies this acknowledgement within {} s",
                        follow::ACK_POLL.as_secs()
                    ));
                    return Ok(Status::Ok);
                }
                let files = self.files.clone();
                hub::with_lease(hub, &files, "ack", || self.ack_cmd(cli, a, out))
            })()),
            Some(Cmd::State) => {
                Some(hub.map_or(Ok(()), |h| h.pull_locked(&self.files)).and_then(|()| self.state_cmd(cli, out)))
            }
            _ => None,
        }
    }
}

/// `<sink>_repeat_interval_seconds` of the alerting settings, per sink that has one.
fn sink_repeat_intervals(config: &Config) -> Vec<(String, u64)> {
    sinks::NAMES
        .iter()
        .filter_map(|n| {
            let v = config.alerting.raw.get(&format!("{n}_repeat_interval_seconds"))?;
            record::value_as_u64(v).map(|s| (n.to_string(), s))
        })
        .collect()
}

/// `alerting.max_subjects`, or the default.
fn max_subjects(config: &Config) -> Result<usize> {
    match config.alerting.raw.get("max_subjects") {
        None => Ok(state::DEFAULT_MAX_SUBJECTS),
        Some(v) => match v.as_u64().filter(|n| *n > 0) {
            Some(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            None => Err(Error::config(format!(
                "{}: alerting.max_subjects: {v} is not a number above 0",
                config.path.display()
            ))),
        },
    }
}

/// The alert of `notify send`: the message given, or read from stdin (`-`).
fn send_alert(s: &cli::SendArgs, diag: &Diag, stamp: &str) -> Result<Alert> {
    let message = if s.message == "-" {
        // A message, not a stream: at most 1 MiB is read (a runaway producer cannot exhaust
        // memory); the rest is left unread.
        const MAX_MESSAGE: u64 = 1 << 20;
        let mut bytes = Vec::new();
        std::io::stdin()
            .take(MAX_MESSAGE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("reading the message from stdin", e))?;
        if bytes.len() as u64 > MAX_MESSAGE {
            bytes.truncate(MAX_MESSAGE as usize);
            diag.warn(format_args!("send: the message is longer than {MAX_MESSAGE} bytes; the rest is cut"));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        s.message.clone()
    };
    let message = message.trim_end().to_string();
    if message.trim().is_empty() {
        return Err(Error::usage("send: the message is empty"));
    }
    let title = s.title.clone().unwrap_or_else(|| crate::util::truncate(crate::util::first_line(&message), 120));
    let mut a = Alert::new(s.topic.as_deref().unwrap_or(""), s.level, &title, &message, stamp);
    if s.level == Level::Recovery {
        a.status = alert::AlertStatus::Resolved;
    }
    Ok(a)
}

/// Take one input record: into the rules, as an alert to send, or through unchanged. A
/// record of a kind notify reads that it cannot understand is rejected (`Ok(Err(why))`).
fn read_record(v: Value, input: &mut Input, out: &mut dyn Write, text: bool) -> ndjson::Verdict {
    let kind = record::kind_of(&v);
    match kind {
        Kind::Alert => {
            let delivered_before = v.get("sinks").and_then(Value::as_array).is_some_and(|s| !s.is_empty());
            if delivered_before {
                // Already through a notify: pass it on, never send it twice.
                if !text {
                    ndjson::pass(out, &v)?;
                }
                return Ok(Ok(()));
            }
            match serde_json::from_value::<Alert>(v) {
                Ok(a) => input.alert(a),
                Err(e) => return Ok(Err(format!("alert: {e}"))),
            }
        }
        k if rules::reads(k) => match rules::observe(&v) {
            Ok(obs) => {
                for o in obs {
                    input.rule(o);
                }
            }
            Err(why) => return Ok(Err(why)),
        },
        _ => {
            if !text {
                ndjson::pass(out, &v)?;
            }
        }
    }
    Ok(Ok(()))
}

/// What a run did.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Alerts sent again from the outbox.
    pub retried: Vec<Alert>,
    /// This run's alerts, held ones included.
    pub alerts: Vec<Alert>,
    /// Alerts still owed to some sink (this run's and older ones).
    pub undelivered: usize,
    /// Why the state could not be locked or saved, when it could not: the run delivered
    /// without it and ends with this error.
    pub unsaved: Option<Error>,
}

/// The engine: sinks, policy and files.
pub(crate) struct Engine<'a> {
    pub sinks: Vec<Box<dyn Sink + 'a>>,
    pub policy: Policy,
    /// `<sink>_repeat_interval_seconds` from the alerting settings.
    pub sink_repeat: Vec<(String, u64)>,
    pub dry_run: bool,
    pub files: Files,
    pub diag: &'a Diag,
    pub clock: Clock,
    /// Subjects kept in the state at most.
    pub max_subjects: usize,
    /// `alerting.escalate`.
    pub escalation: escalate::Escalation,
    /// Some sink reads acknowledgements (`telegram_acks`, `gitea_acks`).
    pub polls_acks: bool,
    /// The hub this runs as (`--state nats://…`), sharing its memory with the others.
    pub hub: Option<&'a hub::Hub>,
}

impl Engine<'_> {
    /// One run over what the stream said.
    pub fn run(&mut self, input: Input) -> Result<Report> {
        // State that cannot be locked (a read-only or full home, a lock file that cannot be
        // made) must not keep the alerts from people: they are delivered without the memory
        // that dedups them, nothing is saved, and the run ends with the error (exit 2).
        let mut unsaved = None;
        let mut lock = None;
        if !self.dry_run {
            match Lock::for_file(&self.files.state) {
                Ok(l) => lock = Some(l),
                Err(e) => unsaved = Some(e),
            }
        }
        let _held = match lock.as_mut().map(Lock::acquire) {
            Some(Ok(h)) => Some(h),
            Some(Err(e)) => {
                unsaved = Some(e);
                None
            }
            None => None,
        };
        if let Some(e) = &unsaved {
            self.diag.warn(format_args!(
                "{e}; delivering anyway, without the memory that keeps alerts from repeating (nothing is saved)"
            ));
        }
        let saving = !self.dry_run && unsaved.is_none();
        if let Some(h) = self.hub {
            // The memory as the hubs share it, read while this hub leads (and is locked
            // locally): a hub that does not lead any more must not act.
            h.check().or_else(|e| if self.dry_run { Ok(()) } else { Err(e) })?;
            h.pull(&self.files)?;
        }
        let now = self.clock.now();
        let stamp = clock::fmt_ts(now);
        let mut state = self.load_state();
        let (mut rates, silences) = self.load_rates_and_silences();

        let mut report = Report::default();
        let mut waiting = match outbox::load(&self.files.outbox, self.diag) {
            Ok(w) => w,
            Err(e) if !saving && !self.dry_run => {
                self.diag.warn(format_args!("{e}; the outbox is left for a run that can write it"));
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        // The outbox is retried only when it can be rewritten: else what was sent would be
        // sent again by every later run.
        if saving && outbox::pending(&waiting) > 0 {
            report.retried = self.retry(&mut waiting, &stamp);
            // A sink that has just been given an incident's late word needs no reminder of it
            // in the same run.
            remember_sinks(&mut state, &report.retried, &stamp, true);
        }

        // Acknowledgements given through the sinks since the last run, before deciding
        // (an incident acknowledged now gets no reminder now).
        let (ack_events, ack_notes) = if saving { self.take_acks(&mut state, now) } else { Default::default() };
        if !ack_events.is_empty()
            && let Err(e) = crate::history::append(&self.files.history, now, &ack_events)
        {
            self.diag.warn(format_args!("{e}; the alert history misses this run's acknowledgements"));
        }
        let decision = state::evaluate(&mut state, &mut rates, input, &silences, self.policy, now);
        if let Some(w) = state.bound(self.max_subjects).message(&self.files.state, self.max_subjects) {
            self.diag.warn(w);
        }
        let mut alerts = decision.alerts;
        alerts.extend(ack_notes);
        alerts.extend(self.escalation.due(&mut state, &silences, now));
        if saving || self.dry_run {
            match silence::reminders(&self.files.silences, &silences, now, self.dry_run) {
                Ok(r) => alerts.extend(r),
                Err(e) => self.diag.warn(format_args!("{e}; the reminders about silences wait for the next run")),
            }
        }
        if let Some(h) = self.hub {
            h.name_alerts(&mut alerts);
        }
        self.deliver(&mut alerts, &state, now);
        remember_sinks(&mut state, &alerts, &stamp, false);

        let queued = to_queue(&alerts, &waiting, &stamp);
        if !self.dry_run {
            self.refresh_and_save(
                Saving { state: &state, rates: &rates, alerts: &alerts, retried: &report.retried, queued: &queued },
                saving,
                now,
            )?;
        }
        self.warn_undelivered(&alerts);
        report.undelivered = outbox::pending(&waiting) + queued.len();
        report.alerts = alerts;
        report.unsaved = unsaved;
        Ok(report)
    }

    /// The topic rates and the silences (a broken silences file is said, and none apply).
    fn load_rates_and_silences(&self) -> (Rates, Silences) {
        let (rates, rate_warning) = Rates::load(&self.files.rates);
        if let Some(w) = rate_warning {
            self.diag.warn(w);
        }
        let silences = match Silences::load(&self.files.silences) {
            Ok(s) => s,
            Err(e) => {
                self.diag.warn(format_args!("{e}; no silences apply"));
                Silences::default()
            }
        };
        for s in &silences.silences {
            if let Some(e) = &s.invalid {
                self.diag.warn(format_args!(
                    "{}: silence {}: {e}; it holds nothing",
                    self.files.silences.display(),
                    s.id
                ));
            }
        }
        (rates, silences)
    }

    /// Tell Alertmanager what is still firing and, when `saving`, write the history, the
    /// outbox, the state and the rates.
    fn refresh_and_save(&mut self, run: Saving<'_>, saving: bool, now: time::OffsetDateTime) -> Result<()> {
        let Saving { state, rates, alerts, retried, queued } = run;
        let stamp = clock::fmt_ts(now);
        // What is still firing, for Alertmanager, which forgets what is not posted again.
        let this_run: HashSet<String> = alerts.iter().filter_map(|a| a.subject.clone()).collect();
        let firing = state::still_firing(state, &this_run);
        for s in &mut self.sinks {
            let mine: Vec<Alert> = firing.iter().filter(|a| self.escalation.routes(a, s.name())).cloned().collect();
            if let Some(Err(e)) = s.refresh(&mine) {
                self.diag.warn(format_args!("{}: posting the alerts still firing: {e}", s.name()));
            }
        }
        if saving {
            // Every event of the alerts' lives, for `rollup incidents`; a history that
            // cannot be written costs the history, never the alerts.
            let events = lifecycle::events(retried, alerts, &stamp);
            if let Err(e) = crate::history::append(&self.files.history, now, &events) {
                self.diag.warn(format_args!("{e}; the alert history misses this run's events"));
            }
            outbox::append(&self.files.outbox, queued)?;
            state.save(&self.files.state)?;
            rates.save(&self.files.rates, clock::unix_f64(now), self.policy.rate_limit_s)?;
            if let Some(h) = self.hub {
                h.push(&self.files, self.diag)?;
            }
        } else if !queued.is_empty() {
            self.diag.warn(format_args!(
                "{} alert(s) were not delivered and cannot be queued in the outbox (see the alert records)",
                queued.len()
            ));
        }
        Ok(())
    }

    /// Say on stderr, per sink, how many alerts it did not take.
    fn warn_undelivered(&self, alerts: &[Alert]) {
        for sink in &self.sinks {
            let failed: Vec<&SinkResult> = alerts
                .iter()
                .flat_map(|a| &a.sinks)
                .filter(|s| s.sink == sink.name() && !s.delivered && !s.dry_run)
                .collect();
            if let Some(first) = failed.first() {
                self.diag.warn(format_args!(
                    "{}: {} alert(s) not delivered ({}); queued in the outbox",
                    sink.name(),
                    failed.len(),
                    first.error.as_deref().unwrap_or("failed")
                ));
            }
        }
    }

    fn load_state(&self) -> State {
        match State::load(&self.files.state) {
            Ok(s) => s,
            Err(e) => {
                let aside =
                    self.files.state.with_extension(format!("json.corrupt-{}", self.clock.now().unix_timestamp()));
                let moved = if self.dry_run { false } else { std::fs::rename(&self.files.state, &aside).is_ok() };
                if moved {
                    self.diag.warn(format_args!("{e}; kept aside as {} and starting afresh", aside.display()));
                } else {
                    self.diag.warn(format_args!("{e}; starting afresh"));
                }
                State::default()
            }
        }
    }

    /// The repeat interval of a sink: `<sink>_repeat_interval_seconds`, else a day for Gitea
    /// (an issue tracker wants a daily word, not an hourly one), else the chat's
    /// `repeat_interval_seconds`. Never shorter than the latter, which decides when a reminder
    /// is raised at all.
    pub fn repeat_interval(&self, sink: &str) -> u64 {
        let own = self.sink_repeat.iter().find(|(n, _)| n == sink).map(|(_, s)| *s);
        let default = if sink == "gitea" { 86_400 } else { self.policy.repeat_interval_s };
        own.unwrap_or(default).max(self.policy.repeat_interval_s)
    }

    /// Send every raised alert to each sink that takes it, one batch per sink. A reminder
    /// (`repeat`) goes only to the sinks whose own repeat interval has passed since they were
    /// last given an alert of that incident; one that no sink wants is held as `cadence`.
    fn deliver(&mut self, alerts: &mut [Alert], state: &State, now: time::OffsetDateTime) {
        let intervals: Vec<u64> = self.sinks.iter().map(|s| self.repeat_interval(s.name())).collect();
        let due = |a: &Alert, sink: &str, every: u64| {
            if !a.repeat {
                return true;
            }
            let last = a.subject.as_ref().and_then(|k| state.subjects.get(k)).and_then(|e| e.sent.get(sink));
            last.and_then(|t| clock::parse_ts(t)).is_none_or(|t| (now - t).whole_seconds() >= every as i64)
        };
        let mut wanted = vec![false; alerts.len()];
        for (sink, every) in self.sinks.iter_mut().zip(intervals) {
            let idx: Vec<usize> = (0..alerts.len())
                .filter(|&i| {
                    alerts[i].suppressed.is_none()
                        && sink.accepts(&alerts[i])
                        && self.escalation.routes(&alerts[i], sink.name())
                })
                .filter(|&i| {
                    wanted[i] = true;
                    due(&alerts[i], sink.name(), every)
                })
                .collect();
            if idx.is_empty() {
                continue;
            }
            let batch: Vec<&Alert> = idx.iter().map(|&i| &alerts[i]).collect();
            let results: Vec<SinkResult> = if self.dry_run {
                sink.preview(&batch)
                    .into_iter()
                    .map(|r| SinkResult {
                        sink: sink.name().into(),
                        delivered: false,
                        error: None,
                        dry_run: true,
                        rendered: Some(r),
                    })
                    .collect()
            } else {
                let sent = match self.hub {
                    Some(h) => h.deliver(sink.as_mut(), &batch, false, self.diag),
                    None => sink.deliver(&batch, false),
                };
                sent.into_iter()
                    .map(|r| SinkResult {
                        sink: sink.name().into(),
                        delivered: r.is_ok(),
                        error: r.err(),
                        dry_run: false,
                        rendered: None,
                    })
                    .collect()
            };
            for (i, r) in idx.into_iter().zip(results) {
                alerts[i].sinks.push(r);
            }
        }
        for (a, wanted) in alerts.iter_mut().zip(wanted) {
            if wanted && a.suppressed.is_none() && a.sinks.is_empty() {
                a.suppressed = Some(Suppressed::Cadence);
            }
        }
    }

    /// Send the outbox again, sink by sink; returns the alerts tried, with what each sink did.
    fn retry(&mut self, waiting: &mut Vec<OutboxLine>, stamp: &str) -> Vec<Alert> {
        let mut tried: Vec<(usize, Vec<SinkResult>)> = Vec::new();
        for sink in &mut self.sinks {
            let name = sink.name();
            let idx: Vec<usize> = (0..waiting.len())
                .filter(|&i| matches!(&waiting[i], OutboxLine::Entry(q) if q.sinks.iter().any(|s| s == name)))
                .collect();
            if idx.is_empty() {
                continue;
            }
            let batch: Vec<&Alert> = idx
                .iter()
                .filter_map(|&i| match &waiting[i] {
                    OutboxLine::Entry(q) => Some(&q.alert),
                    OutboxLine::Unreadable(_) => None,
                })
                .collect();
            let results = match self.hub {
                Some(h) => h.deliver(sink.as_mut(), &batch, true, self.diag),
                None => sink.deliver(&batch, true),
            };
            for (i, r) in idx.into_iter().zip(results) {
                let OutboxLine::Entry(q) = &mut waiting[i] else { continue };
                let res = SinkResult {
                    sink: name.into(),
                    delivered: r.is_ok(),
                    error: r.as_ref().err().cloned(),
                    dry_run: false,
                    rendered: None,
                };
                match r {
                    Ok(()) => q.sinks.retain(|s| s != name),
                    Err(e) => {
                        self.diag.warn(format_args!("{name}: '{}' still not delivered: {e}", q.alert.title));
                        q.last_error = Some(merge_error(q.last_error.as_deref(), name, &e));
                    }
                }
                match tried.iter_mut().find(|(j, _)| *j == i) {
                    Some((_, v)) => v.push(res),
                    None => tried.push((i, vec![res])),
                }
            }
        }
        tried.sort_by_key(|(i, _)| *i);
        let mut out = Vec::new();
        for (i, results) in tried {
            if let OutboxLine::Entry(q) = &mut waiting[i] {
                q.attempts = q.attempts.saturating_add(1);
                let mut a = q.alert.clone();
                a.sinks = results;
                a.extra.insert("queued_at".into(), json!(q.queued_at));
                a.extra.insert("attempts".into(), json!(q.attempts));
                a.extra.insert("retried_at".into(), json!(stamp));
                out.push(a);
            }
        }
        if !out.is_empty() {
            waiting.retain(|l| !matches!(l, OutboxLine::Entry(q) if q.sinks.is_empty()));
            if let Err(e) = outbox::rewrite(&self.files.outbox, waiting) {
                self.diag.warn(e);
            }
        }
        out
    }
}

/// `sink: why; other: why` with this sink's reason replaced by `why`.
/// What one run has to save.
struct Saving<'a> {
    state: &'a State,
    rates: &'a Rates,
    alerts: &'a [Alert],
    retried: &'a [Alert],
    queued: &'a [Queued],
}

/// The outbox lines for the alerts some sink did not take.
fn to_queue(alerts: &[Alert], waiting: &[OutboxLine], stamp: &str) -> Vec<Queued> {
    // A reminder for a sink that still owes the incident's first word is not queued: the
    // outbox would grow by one line per repeat for as long as the sink is down, and the
    // person would get them all at once when it is back.
    let owed: HashSet<(String, String)> = waiting
        .iter()
        .filter_map(|l| match l {
            OutboxLine::Entry(q) if !q.alert.is_resolved() => q.alert.subject.as_ref().map(|s| (q, s)),
            _ => None,
        })
        .flat_map(|(q, subj)| q.sinks.iter().map(move |k| (k.clone(), subj.clone())))
        .collect();
    let mut queued = Vec::new();
    for a in alerts {
        let subject = a.subject.clone().unwrap_or_default();
        let failed: Vec<&SinkResult> = a
            .sinks
            .iter()
            .filter(|s| !s.delivered && !s.dry_run)
            .filter(|s| !(a.repeat && owed.contains(&(s.sink.clone(), subject.clone()))))
            .collect();
        if failed.is_empty() {
            continue;
        }
        queued.push(Queued {
            alert: a.undelivered(),
            sinks: failed.iter().map(|s| s.sink.clone()).collect(),
            attempts: 1,
            queued_at: stamp.to_string(),
            last_error: Some(
                failed
                    .iter()
                    .map(|s| format!("{}: {}", s.sink, s.error.as_deref().unwrap_or("failed")))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            extra: serde_json::Map::new(),
        });
    }
    queued
}

fn merge_error(old: Option<&str>, sink: &str, why: &str) -> String {
    let mut parts: Vec<String> = old
        .unwrap_or("")
        .split("; ")
        .filter(|p| !p.is_empty() && !p.starts_with(&format!("{sink}: ")))
        .map(String::from)
        .collect();
    parts.push(format!("{sink}: {why}"));
    parts.join("; ")
}

/// Remember, per subject, which sinks were given an alert of it in this run (sent, or queued
/// for them in the outbox), for the per-sink repeat intervals.
fn remember_sinks(state: &mut State, alerts: &[Alert], stamp: &str, delivered_only: bool) {
    for a in alerts.iter().filter(|a| !a.is_resolved()) {
        let Some(e) = a.subject.as_ref().and_then(|k| state.subjects.get_mut(k)) else { continue };
        for r in a.sinks.iter().filter(|r| !r.dry_run && (r.delivered || !delivered_only)) {
            e.sent.insert(r.sink.clone(), stamp.to_string());
        }
    }
}

/// This machine's name (the `host` setting, else the system's), for issues and labels.
fn hostname(config: &Config) -> String {
    if let Some(h) = config.alerting.raw.get("host").and_then(Value::as_str) {
        return h.to_string();
    }
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default()
}

/// The configured sinks, less those `--sink` leaves out. A sink configured in part (a
/// Telegram token without a chat, a Gitea URL without a token) is a configuration error that
/// says what is missing: alerts are never dropped because half a sink was set up. Gitea's
/// repository, when none is configured, is the one the ticks come from (the `origin` remote
/// of the checkout holding `HOME/ticks`), where the Agent Tick Protocol files its issues.
fn build_sinks<'d>(
    config: &Config,
    only: &[String],
    diag: &'d Diag,
    host: &str,
    clock: &Clock,
    home: &Path,
) -> Result<Vec<Box<dyn Sink + 'd>>> {
    let a = &config.alerting;
    let timeout = a.raw.get("timeout_seconds").and_then(Value::as_f64).filter(|t| *t > 0.0).unwrap_or(10.0);
    // A day at most: any number may be written there, and no request is worth waiting longer.
    let timeout = Duration::try_from_secs_f64(timeout).unwrap_or(Duration::MAX).min(Duration::from_secs(86_400));
    let http = sinks::Http::new(a, timeout);
    let wanted = |n: &str| only.is_empty() || only.iter().any(|o| o == n);
    let mut out: Vec<Box<dyn Sink + 'd>> = Vec::new();
    let mut missing: Vec<(&str, String)> = Vec::new();
    let mut partial: Vec<(&str, String)> = Vec::new();

    let tg_token = !a.telegram_bot_token.is_empty();
    match (&a.telegram_chat_id, tg_token) {
        (Some(chat), true) if wanted("telegram") => {
            out.push(Box::new(sinks::telegram::Telegram::new(http.clone(), a, chat, diag)));
        }
        (Some(_), true) => {}
        (None, false) => missing.push(("telegram", "telegram_bot_token and telegram_chat_id".into())),
        (Some(_), false) => partial.push(("telegram", "telegram_bot_token (TELEGRAM_BOT_TOKEN)".into())),
        (None, true) => partial.push(("telegram", "telegram_chat_id (TELEGRAM_CHAT_ID)".into())),
    }
    let gitea_any = a.gitea_url.is_some() || a.gitea_repo.is_some() || !a.gitea_token.is_empty();
    let ticks = home.join("ticks");
    let repo = if gitea_any { gitea_repo(a, &ticks, home) } else { None };
    match (&a.gitea_url, &repo, a.gitea_token.is_empty()) {
        (Some(url), Some(repo), false) => {
            if wanted("gitea") {
                let g = sinks::gitea::Gitea::new(http.clone(), a, url, repo, host, diag)
                    .map_err(|e| Error::config(format!("{}: alerting: {e}", config.path.display())))?;
                out.push(Box::new(g));
            }
        }
        _ if !gitea_any => missing.push(("gitea", "gitea_url, gitea_repo and gitea_token".into())),
        (u, r, no_token) => partial.push(("gitea", gitea_needs(u.is_none(), r.is_none(), no_token, &ticks))),
    }
    match &a.alertmanager_url {
        Some(url) if wanted("alertmanager") => out.push(Box::new(sinks::alertmanager::Alertmanager::new(
            http.clone(),
            a,
            url,
            host,
            config.check_interval_seconds,
            clock.now(),
        ))),
        Some(_) => {}
        None => missing.push(("alertmanager", "alertmanager_url (ALERTMANAGER_URL)".into())),
    }
    match &a.webhook_url {
        Some(url) if wanted("webhook") => out.push(Box::new(sinks::Webhook::new(http.clone(), a, url))),
        Some(_) => {}
        None => missing.push(("webhook", "webhook_url (WEBHOOK_URL)".into())),
    }
    match &a.exec {
        Some(cmd) if wanted("exec") => out.push(Box::new(sinks::Exec::new(a, cmd))),
        Some(_) => {}
        None => missing.push(("exec", "exec".into())),
    }
    channel_sinks(config, &http, timeout, &wanted, &mut out, &mut missing, &mut partial)?;
    for (name, need) in &missing {
        if only.iter().any(|o| o == name) {
            return Err(Error::usage(format!(
                "--sink {name}: not configured (it needs {need} in the alerting settings)"
            )));
        }
    }
    // Half a configuration is a mistake that would lose alerts without a word.
    if let Some((name, need)) = partial.iter().find(|(n, _)| wanted(n)) {
        return Err(Error::config(format!(
            "{}: alerting: the {name} sink is configured in part: {need} is missing",
            config.path.display()
        )));
    }
    Ok(out)
}

/// The chat, push and mail channels' sinks (Slack, Discord, ntfy, email, Apprise): those
/// configured and wanted go to `out`; the others are noted as missing or configured in part.
fn channel_sinks<'d>(
    config: &Config,
    http: &sinks::Http,
    timeout: Duration,
    wanted: &dyn Fn(&str) -> bool,
    out: &mut Vec<Box<dyn Sink + 'd>>,
    missing: &mut Vec<(&'static str, String)>,
    partial: &mut Vec<(&'static str, String)>,
) -> Result<()> {
    let a = &config.alerting;
    let bad = |e: String| Error::config(format!("{}: alerting: {e}", config.path.display()));
    if let Some(p) = crate::config::Channels::problems(&a.raw).into_iter().next() {
        return Err(Error::config(format!("{}: {p}", config.path.display())));
    }
    let ch = &a.channels;
    match ch.slack_webhook_url.is_empty() {
        false if wanted("slack") => out.push(Box::new(sinks::slack::Slack::new(http.clone(), a))),
        false => {}
        true => missing.push(("slack", "slack_webhook_url (SLACK_WEBHOOK_URL)".into())),
    }
    match ch.discord_webhook_url.is_empty() {
        false if wanted("discord") => out.push(Box::new(sinks::discord::Discord::new(http.clone(), a))),
        false => {}
        true => missing.push(("discord", "discord_webhook_url (DISCORD_WEBHOOK_URL)".into())),
    }
    match (ch.ntfy_url.is_empty(), ch.ntfy_token.is_empty()) {
        (false, _) if wanted("ntfy") => out.push(Box::new(sinks::ntfy::Ntfy::new(http.clone(), a))),
        (false, _) => {}
        (true, true) => missing.push(("ntfy", "ntfy_url (NTFY_URL)".into())),
        (true, false) => partial.push(("ntfy", "ntfy_url (NTFY_URL), the topic URL".into())),
    }
    match &ch.smtp_url {
        Some(url) if wanted("email") => {
            out.push(Box::new(sinks::email::Email::new(a, url, timeout).map_err(|e| bad(format!("email: {e}")))?));
        }
        Some(_) => {}
        None if ch.email_to.is_empty() && ch.email_from.is_none() => {
            missing.push(("email", "smtp_url, email_from and email_to".into()));
        }
        None => partial.push(("email", "smtp_url (SMTP_URL)".into())),
    }
    match ch.apprise_urls.is_empty() && ch.apprise_config.is_none() {
        false if wanted("apprise") => {
            out.push(Box::new(sinks::apprise::Apprise::new(a).map_err(|e| bad(format!("apprise: {e}")))?));
        }
        false => {}
        true => missing.push(("apprise", "apprise_urls (APPRISE_URLS) or apprise_config".into())),
    }
    Ok(())
}

/// The Gitea repository: as configured, else the origin remote of the ticks repository (or
/// of the home), where the Tick Protocol keeps it.
fn gitea_repo(a: &crate::config::Alerting, ticks: &Path, home: &Path) -> Option<String> {
    match &a.gitea_repo {
        Some(r) => Some(r.clone()),
        None => {
            let from = if ticks.is_dir() { ticks } else { home };
            util::git::origin_repo(from, Duration::from_secs(10))
        }
    }
}

/// What a Gitea sink configured in part lacks.
fn gitea_needs(no_url: bool, no_repo: bool, no_token: bool, ticks: &Path) -> String {
    let mut need = Vec::new();
    if no_url {
        need.push("gitea_url (GITEA_URL or CLAW_CODE_GITEA_URL)".to_string());
    }
    if no_repo {
        need.push(format!(
            "gitea_repo (GITEA_REPO; the ticks repository {} has no origin remote to take it from)",
            ticks.display()
        ));
    }
    if no_token {
        need.push("gitea_token (GITEA_TOKEN)".to_string());
    }
    need.join(" and ")
}

fn write_report(out: &mut dyn Write, report: &Report, format: Format, dry_run: bool) -> Result<()> {
    match format {
        Format::Ndjson => {
            for a in report.retried.iter().chain(&report.alerts) {
                ndjson::write(out, a)?;
            }
        }
        Format::Text if dry_run => {
            for a in &report.alerts {
                if let Some(s) = a.suppressed {
                    writeln!(out, "held ({}): {} {}: {}", s.as_str(), a.level.prefix(), a.title, a.message)?;
                }
            }
            for sink in sinks::NAMES {
                let mut shown: Vec<&Value> = Vec::new();
                for r in report.alerts.iter().flat_map(|a| &a.sinks).filter(|s| s.sink == *sink) {
                    if let Some(r) = &r.rendered
                        && !shown.contains(&r)
                    {
                        shown.push(r);
                    }
                }
                if !shown.is_empty() {
                    writeln!(out, "== {sink}")?;
                    for r in shown {
                        writeln!(out, "{}", preview_text(r))?;
                    }
                }
            }
        }
        Format::Text => {
            for a in report.retried.iter().chain(&report.alerts) {
                let what = match a.suppressed {
                    Some(s) => format!("held ({})", s.as_str()),
                    None if a.sinks.is_empty() => "no sink".to_string(),
                    None => a
                        .sinks
                        .iter()
                        .map(|s| match (&s.error, s.delivered) {
                            (_, true) => format!("{}: sent", s.sink),
                            (Some(e), false) => format!("{}: FAILED ({e})", s.sink),
                            (None, false) => format!("{}: FAILED", s.sink),
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                };
                let late = if a.extra.contains_key("queued_at") { " (from the outbox)" } else { "" };
                writeln!(out, "{} {}: {}{late} -> {what}", a.level.prefix(), a.title, a.message)?;
            }
            if report.undelivered > 0 {
                writeln!(out, "\n{} alert(s) waiting in the outbox.", report.undelivered)?;
            }
        }
    }
    Ok(())
}

/// A sink's preview for people.
fn preview_text(r: &Value) -> String {
    if let Some(m) = r.get("messages").and_then(Value::as_array) {
        return m.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("\n-- next message --\n");
    }
    if let Some(t) = r.get("text").or_else(|| r.get("stdin")).and_then(Value::as_str) {
        return t.to_string();
    }
    serde_json::to_string_pretty(r).unwrap_or_default()
}

/// One silence, as a record or a line of text.
fn show_silence(out: &mut dyn Write, format: Format, s: &Silence, now: time::OffsetDateTime) -> Result<()> {
    match format {
        Format::Ndjson => ndjson::write(out, &s.record(now)),
        Format::Text => {
            let r = s.record(now);
            let why = if s.why.is_empty() { String::new() } else { format!(" ({})", s.why) };
            let ms: Vec<String> = s.matchers.iter().map(ToString::to_string).collect();
            let when = match (&s.recur.every, &s.recur.cron) {
                (Some(e), _) => format!("every '{e}' {}", s.recur.tz.as_deref().unwrap_or("UTC")),
                (_, Some(c)) => format!(
                    "cron '{c}' for {} {}",
                    s.recur.duration.as_deref().unwrap_or("?"),
                    s.recur.tz.as_deref().unwrap_or("UTC")
                ),
                _ => format!("{} .. {}", s.starts_at, s.ends_at),
            };
            let next = match (r["next_starts_at"].as_str(), r["next_ends_at"].as_str()) {
                (Some(a), Some(b)) => format!(" next {a} .. {b}"),
                _ => String::new(),
            };
            writeln!(out, "{:>4}  {:<9} {when}{next}  {}{why}", s.id, r["state"].as_str().unwrap_or(""), ms.join(" "))?;
            Ok(())
        }
    }
}

/// The silence `notify silence add` describes, checked.
#[allow(clippy::too_many_arguments)]
fn new_silence(
    matchers: &[String],
    duration: &Option<String>,
    every: &Option<String>,
    cron: &Option<String>,
    window_length: &Option<String>,
    tz: &Option<String>,
    starts: &Option<String>,
    no_recover: bool,
    why: &str,
    now: time::OffsetDateTime,
) -> Result<Silence> {
    let matchers: Vec<Matcher> = matchers
        .iter()
        .map(|m| Matcher::parse(m))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::usage(format!("--match {e}")))?;
    let start = match starts {
        Some(s) => {
            clock::parse_ts(s).ok_or_else(|| Error::usage(format!("--starts: '{s}' is not an RFC 3339 time")))?
        }
        None => now,
    };
    let recur = silence::Recurrence {
        every: every.clone(),
        cron: cron.clone(),
        duration: window_length.clone(),
        tz: tz.clone(),
    };
    let ends_at = match duration {
        Some(duration) => {
            if tz.is_some() {
                return Err(Error::usage("--tz goes with --every or --cron"));
            }
            let d = clock::parse_duration(duration).filter(|d| !d.is_zero()).ok_or_else(|| {
                Error::usage(format!("--for: '{duration}' is not a duration (90s, 15m, 2h, 1d, 1h30m)"))
            })?;
            let end = clock::add_or_latest(start, d);
            if end <= now {
                return Err(Error::usage("silence add: it would end before now"));
            }
            clock::fmt_ts(end)
        }
        None => {
            let what = if every.is_some() { "--every" } else { "--cron" };
            let schedule = recur.schedule().map_err(|e| Error::usage(format!("{what}: {e}")))?;
            if schedule.as_ref().and_then(|s| s.window_at_or_after(start)).is_none() {
                return Err(Error::usage(format!("{what}: the window never comes")));
            }
            String::new()
        }
    };
    Ok(Silence {
        id: 0,
        matchers,
        starts_at: clock::fmt_ts(start),
        ends_at,
        why: why.to_string(),
        created_at: clock::fmt_ts(now),
        created_by: std::env::var("USER").unwrap_or_default(),
        recur,
        maintenance: no_recover.then_some(silence::Maintenance { recover: false }),
        reminded: Vec::new(),
        schedule: None,
        invalid: None,
    })
}

fn silence_cmd(
    ctx: &mut Ctx,
    cli: &Cli,
    cmd: &SilenceCmd,
    files: &Files,
    clock: &Clock,
    hub: Option<&hub::Hub>,
) -> Result<Status> {
    let now = clock.now();
    let out = &mut ctx.out;
    let show = |out: &mut dyn Write, s: &Silence| show_silence(out, cli.format, s, now);
    // Under a hub the silences are shared: read them first, and write a change back.
    let edit = |change: &dyn Fn() -> Result<Silence>| match hub {
        Some(h) => h.edit_silences(files, change),
        None => change(),
    };
    match cmd {
        SilenceCmd::Add { matchers, duration, every, cron, window_length, tz, starts, no_recover, why } => {
            let s = new_silence(matchers, duration, every, cron, window_length, tz, starts, *no_recover, why, now)?;
            let s = edit(&|| silence::add(&files.silences, s.clone(), now))?;
            show(out, &s)?;
        }
        SilenceCmd::List { all } => {
            if let Some(h) = hub {
                h.pull_locked(files)?;
            }
            let file = Silences::load(&files.silences)?;
            for s in file.silences.iter().filter(|s| *all || !s.expired(now)) {
                show(out, s)?;
            }
        }
        SilenceCmd::Expire { id } => {
            let s = edit(&|| silence::expire(&files.silences, *id, now))?;
            show(out, &s)?;
        }
    }
    Ok(Status::Ok)
}

impl Engine<'_> {
    /// `notify ack`: mark the matching incidents still firing as taken on by a person (no
    /// reminders and no escalation until they are back, worse, or `--for` ran out), write
    /// each acknowledgement to the alert history and announce it through the sinks. Exit 1
    /// when nothing matched.
    fn ack_cmd(&mut self, cli: &Cli, args: &AckArgs, out: &mut dyn Write) -> Result<Status> {
        let now = self.clock.now();
        let request = ack::Request::from_args(args, now)?;
        let wanted = request.wanted()?;
        let ack = request.ack();
        let by = request.by.clone();
        let mut lock = Lock::for_file(&self.files.state)?;
        let _held = lock.acquire()?;
        let mut state = State::load(&self.files.state)?;
        let done = ack::acknowledge(&mut state, &wanted, &ack, now);
        for (key, who) in &done.already {
            self.diag.warn(format!("{key}: already acknowledged by {who}"));
        }
        let mut notes = done.announcements;
        if !done.events.is_empty() && !self.dry_run {
            state.save(&self.files.state)?;
            crate::history::append(&self.files.history, now, &done.events)?;
            self.announce(&mut notes, &state, now)?;
        }
        for e in &done.events {
            match cli.format {
                Format::Ndjson => ndjson::write(out, e)?,
                Format::Text => {
                    let until = e.extra.get("until").and_then(Value::as_str).map(|u| format!(" until {u}"));
                    writeln!(
                        out,
                        "{} {} ({}): acknowledged by {by}{}",
                        e.timestamp,
                        e.subject,
                        e.name,
                        until.unwrap_or_default()
                    )?
                }
            }
        }
        if done.events.is_empty() {
            self.diag.warn("ack: no alert still firing matches");
            return Ok(Status::Failures);
        }
        Ok(Status::Ok)
    }

    /// Send acknowledgements' announcements now, through the sinks they are for; what a sink
    /// does not take waits in the outbox. Called with the state's lock held.
    fn announce(&mut self, notes: &mut [Alert], state: &State, now: time::OffsetDateTime) -> Result<()> {
        if notes.is_empty() {
            return Ok(());
        }
        let stamp = clock::fmt_ts(now);
        if let Some(h) = self.hub {
            h.name_alerts(notes);
        }
        self.deliver(notes, state, now);
        let waiting = outbox::load(&self.files.outbox, self.diag).unwrap_or_default();
        let queued = to_queue(notes, &waiting, &stamp);
        outbox::append(&self.files.outbox, &queued)?;
        self.warn_undelivered(notes);
        Ok(())
    }
}

fn outbox_cmd(ctx: &mut Ctx, cli: &Cli, cmd: &OutboxCmd, files: &Files, clock: &Clock) -> Result<Status> {
    let Ctx { out, diag, .. } = ctx;
    let show = |out: &mut dyn Write, q: &Queued| -> Result<()> {
        match cli.format {
            Format::Ndjson => {
                let mut v = serde_json::to_value(q).map_err(|e| Error::other(e.to_string()))?;
                if let Value::Object(m) = &mut v {
                    m.shift_insert(0, "kind".into(), json!("queued"));
                    m.insert("timestamp".into(), json!(clock.stamp()));
                }
                ndjson::write(out, &v)
            }
            Format::Text => {
                let err = q.last_error.as_deref().map(|e| format!(" — {e}")).unwrap_or_default();
                writeln!(
                    out,
                    "{} {} {}: {} [owed to {}; {} attempt(s) since {}]{err}",
                    q.queued_at,
                    q.alert.level.prefix(),
                    q.alert.title,
                    q.alert.message,
                    q.sinks.join(", "),
                    q.attempts,
                    q.queued_at
                )?;
                Ok(())
            }
        }
    };
    match cmd {
        OutboxCmd::List => {
            for l in outbox::load(&files.outbox, diag)? {
                if let OutboxLine::Entry(q) = l {
                    show(&mut *out, &q)?;
                }
            }
        }
        OutboxCmd::Drop => {
            let mut lock = Lock::for_file(&files.state)?;
            let _held = lock.acquire()?;
            let mut lines = outbox::load(&files.outbox, diag)?;
            let mut dropped = 0usize;
            for l in &mut lines {
                if let OutboxLine::Entry(q) = l {
                    let before = q.sinks.len();
                    if cli.sink.is_empty() {
                        q.sinks.clear();
                    } else {
                        q.sinks.retain(|s| !cli.sink.contains(s));
                    }
                    if q.sinks.len() < before {
                        dropped += 1;
                        show(&mut *out, q)?;
                    }
                }
            }
            lines.retain(|l| !matches!(l, OutboxLine::Entry(q) if q.sinks.is_empty()));
            if dropped > 0 && !cli.dry_run {
                outbox::rewrite(&files.outbox, &lines)?;
            }
        }
    }
    Ok(Status::Ok)
}
