//! `notify --follow`: the batch's run ([`Engine::run`]) on Alertmanager's timing.
//!
//! Records are read as they arrive and gathered into one pending input (the last record of a
//! subject wins, as in a batch run); kinds notify does not read pass through at once. A record
//! is *news* when it says something the state does not know yet: a subject turned bad, worse,
//! or good, is bad and not announced yet (held by `--after`, a silence, the rate limit), or
//! an alert record. News starts the clock:
//!
//! - while nothing announced is outstanding (a new group), the pending input is run
//!   `group_wait` after the first news, so what fails together goes out in one message;
//! - while something announced is still bad (the group is open), changes go out
//!   `group_interval` after the last message (at once when that is past);
//! - reminders follow `repeat_interval_seconds` with no input needed: when a subject's
//!   reminder is due, its last bad record is run again;
//! - the next level of the escalation policy is run when it is due, with no input needed;
//! - acknowledgements given in the sinks (`telegram_acks`, `gitea_acks`) are read by every
//!   run, and every 10 s while nothing else runs;
//! - what a sink did not take is retried from the outbox after 10 s, doubling to 5 min while
//!   it keeps failing (and at start when the outbox holds something).
//!
//! Each run is a whole batch run (lock, outbox, evaluate, deliver, save), so silences,
//! inhibition, `--after` (one run counts as one), per-sink cadence and acknowledgements hold
//! exactly as in the batch. SIGTERM, SIGINT or SIGHUP, the end of the input and a closed
//! stdout run what is pending (sent, or queued in the outbox), save, and end with status 0.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::rules::{self, Observation};
use super::state::{self, Input, State};
use super::{Engine, Format, outbox, read_record, write_report};
use crate::clock;
use crate::config::Config;
use crate::entry::{Diag, Out};
use crate::error::{Error, Result, Status};
use crate::ndjson::ReadOpts;
use crate::ndjson::follow::{self, Follow, Msg};
use crate::record::{self, Kind, Level};

/// `group_wait` when neither `--group-wait` nor `alerting.group_wait_seconds` says.
pub const DEFAULT_GROUP_WAIT_S: f64 = 10.0;
/// `group_interval` when neither `--group-interval` nor `alerting.group_interval_seconds` says.
pub const DEFAULT_GROUP_INTERVAL_S: f64 = 300.0;
/// The first wait before the outbox is tried again; it doubles up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_secs(10);
pub const RETRY_MAX: Duration = Duration::from_secs(300);

/// The soonest the next reminder is asked for: a repeat interval shorter than this, or a
/// reminder held back by a silence or the rate limit, waits this long (no busy loop).
const REMINDER_FLOOR_MS: i128 = 10_000;

/// How often acknowledgements given in the sinks are read while nothing else runs
/// (`telegram_acks`, `gitea_acks`).
pub const ACK_POLL: Duration = Duration::from_secs(10);

/// How long to wait before a run.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub group_wait: Duration,
    pub group_interval: Duration,
}

impl Timing {
    /// The flags, else the alerting settings, else the defaults.
    pub fn of(config: &Config, group_wait: Option<f64>, group_interval: Option<f64>) -> Result<Timing> {
        let get = |flag: Option<f64>, key: &str, default: f64| -> Result<Duration> {
            let secs = match (flag, config.alerting.raw.get(key)) {
                (Some(s), _) => s,
                (None, None) => default,
                (None, Some(v)) => v.as_f64().filter(|s| (0.0..=86_400.0).contains(s)).ok_or_else(|| {
                    Error::config(format!(
                        "{}: alerting.{key}: {v} is not a number of seconds from 0 to 86400",
                        config.path.display()
                    ))
                })?,
            };
            Ok(Duration::from_secs_f64(secs))
        };
        Ok(Timing {
            group_wait: get(group_wait, "group_wait_seconds", DEFAULT_GROUP_WAIT_S)?,
            group_interval: get(group_interval, "group_interval_seconds", DEFAULT_GROUP_INTERVAL_S)?,
        })
    }
}

/// What the state says of a subject: its level and the level announced.
type Known = HashMap<String, (Option<Level>, Option<Level>)>;

/// The loop's memory between runs.
struct Follower<'e, 'a> {
    engine: &'e mut Engine<'a>,
    timing: Timing,
    format: Format,
    pending: Input,
    /// The levels the pending input says, per subject (what a dry run takes as known).
    pending_levels: HashMap<String, Option<Level>>,
    known: Known,
    /// The last bad record of each subject still bad, for its reminders.
    bad: HashMap<String, Observation>,
    /// When the pending news is to be run.
    news_due: Option<Instant>,
    /// When the next reminder is due.
    repeat_due: Option<Instant>,
    /// When the outbox is to be tried again, and the wait after that.
    retry_due: Option<Instant>,
    retry_wait: Duration,
    /// When a message last went out.
    last_message: Option<Instant>,
    /// When the sinks are next asked for acknowledgements.
    poll_due: Option<Instant>,
}

/// Run until the input ends or a signal says stop. `Ok` on a clean end.
#[allow(clippy::too_many_arguments)]
pub fn run(
    engine: &mut Engine<'_>,
    input: &Follow,
    timing: Timing,
    format: Format,
    opts: ReadOpts,
    out: &mut Out,
    diag: &Diag,
    quorum: &mut super::quorum::Quorum,
) -> Result<Status> {
    let waiting = outbox::load(&engine.files.outbox, diag).map(|w| outbox::pending(&w)).unwrap_or(0);
    let mut f = Follower {
        engine,
        timing,
        format,
        pending: Input::default(),
        pending_levels: HashMap::new(),
        known: Known::new(),
        bad: HashMap::new(),
        news_due: None,
        repeat_due: None,
        retry_due: (waiting > 0).then(Instant::now),
        retry_wait: RETRY_FIRST,
        last_message: None,
        poll_due: None,
    };
    // A hub also runs every ACK_POLL for the acknowledgements asked for on other machines.
    if (f.engine.polls_acks || f.engine.hub.is_some()) && !f.engine.dry_run {
        f.poll_due = Some(Instant::now() + ACK_POLL);
    }
    f.learn_state();
    // Records from a JetStream consumer are acknowledged once nothing they caused waits
    // unsaved: when no news is held for its group wait.
    input.ack_on_commit();
    // A hub reads and acknowledges records only while it leads.
    let hub = f.engine.hub;
    let leads = || hub.map_or(Ok(()), |h| h.check());
    loop {
        let due = [f.news_due, f.repeat_due, f.retry_due, f.poll_due].into_iter().flatten().min();
        let Some(msg) = input.next(due) else {
            f.flush(out)?;
            if f.news_due.is_none() {
                leads()?;
                input.commit()?;
            }
            continue;
        };
        match msg {
            Msg::Record { value, source, line } => {
                leads()?;
                let value = quorum.rewrite(value, f.engine.clock.now());
                quorum.save()?;
                let news = f.news(&value);
                match read_record(value, &mut f.pending, out, format == Format::Text)? {
                    Ok(()) => {}
                    Err(why) => follow::reject(opts, diag, &source, line, why)?,
                }
                out.flush()?;
                if news && f.news_due.is_none() {
                    f.news_due = Some(f.news_time());
                }
                if f.news_due.is_none() {
                    leads()?;
                    input.commit()?;
                }
            }
            Msg::Bad { why, source, line } => follow::reject(opts, diag, &source, line, why)?,
            Msg::Failed(e) => {
                f.flush(out)?;
                return Err(e);
            }
            Msg::End | Msg::Event(_) => {
                if !f.pending.is_empty() {
                    f.flush(out)?;
                }
                out.flush()?;
                return Ok(Status::Ok);
            }
        }
    }
}

impl Follower<'_, '_> {
    /// Whether `v` says something the state does not know; remembers the bad records.
    fn news(&mut self, v: &Value) -> bool {
        let kind = record::kind_of(v);
        if kind == Kind::Alert {
            return v.get("sinks").and_then(Value::as_array).is_none_or(|s| s.is_empty());
        }
        if !rules::reads(kind) {
            return false;
        }
        let Ok(obs) = rules::observe(v) else { return false };
        let mut news = false;
        for o in obs {
            let key = state::subject_key(&o.subject).into_owned();
            news |= match self.known.get(&key) {
                None => o.bad.is_some(),
                Some((level, notified)) => o.bad != *level || (o.bad.is_some() && notified.is_none()),
            };
            self.pending_levels.insert(key.clone(), o.bad);
            match o.bad {
                Some(_) => {
                    self.bad.insert(key, o);
                }
                None => {
                    self.bad.remove(&key);
                }
            }
        }
        news
    }

    /// When news arriving now is to be run.
    fn news_time(&self) -> Instant {
        let now = Instant::now();
        let open = self.known.values().any(|(level, notified)| level.is_some() && notified.is_some());
        match self.last_message {
            Some(last) if open => (last + self.timing.group_interval).max(now),
            _ => now + self.timing.group_wait,
        }
    }

    /// One batch run of what is pending, with the reminders that are due; then the timers.
    fn flush(&mut self, out: &mut Out) -> Result<()> {
        let mut input = std::mem::take(&mut self.pending);
        let levels = std::mem::take(&mut self.pending_levels);
        let state = self.load_state();
        for key in self.reminders_due(&state) {
            if let Some(o) = self.bad.get(&key) {
                input.rule(o.clone());
            }
        }
        self.news_due = None;
        let report = self.engine.run(input)?;
        if self.poll_due.is_some() {
            self.poll_due = Some(Instant::now() + ACK_POLL);
        }
        let sent = report.alerts.iter().chain(&report.retried).any(|a| a.suppressed.is_none() && !a.sinks.is_empty());
        if sent {
            self.last_message = Some(Instant::now());
        }
        if report.undelivered > 0 {
            self.retry_due = Some(Instant::now() + self.retry_wait);
            self.retry_wait = (self.retry_wait * 2).min(RETRY_MAX);
        } else {
            self.retry_due = None;
            self.retry_wait = RETRY_FIRST;
        }
        if self.engine.dry_run {
            for (k, l) in levels {
                self.known.insert(k, (l, l));
            }
        } else {
            self.learn_state();
        }
        write_report(out, &report, self.format, self.engine.dry_run)?;
        out.flush()?;
        Ok(())
    }

    fn load_state(&self) -> State {
        State::load(&self.engine.files.state).unwrap_or_default()
    }

    /// Take what the state knows, and when the next reminder is due.
    fn learn_state(&mut self) {
        if self.engine.dry_run {
            return;
        }
        let state = self.load_state();
        self.known = state.subjects.iter().map(|(k, e)| (k.clone(), (e.level, e.notified))).collect();
        let every = self.engine.policy.repeat_interval_s;
        let now = self.engine.clock.now();
        self.repeat_due = self
            .reminders(&state)
            .filter_map(|(_, last)| {
                let left = (last + Duration::from_secs(every) - now).whole_milliseconds().max(REMINDER_FLOOR_MS);
                Some(Instant::now() + Duration::from_millis(u64::try_from(left).ok()?))
            })
            .min();
        // The next escalation level due (alerting.escalate) is a run of its own.
        let escalation_due = state
            .subjects
            .values()
            .filter(|e| e.level.is_some() && e.notified.is_some() && !e.once && !e.acked(now))
            .filter_map(|e| self.engine.escalation.next_due(e))
            .filter_map(|(_, at)| {
                let left = (at - now).whole_milliseconds().max(REMINDER_FLOOR_MS);
                Some(Instant::now() + Duration::from_millis(u64::try_from(left).ok()?))
            })
            .min();
        self.repeat_due = [self.repeat_due, escalation_due].into_iter().flatten().min();
    }

    /// The subjects that get reminders (bad, announced, not acknowledged, seen in this run
    /// of the process), with when they were last announced.
    fn reminders<'s>(&'s self, state: &'s State) -> impl Iterator<Item = (&'s String, time::OffsetDateTime)> + 's {
        let every = self.engine.policy.repeat_interval_s;
        state
            .subjects
            .iter()
            .filter(move |(k, e)| {
                every > 0
                    && e.level.is_some()
                    && e.notified.is_some()
                    && !e.once
                    && !e.acked(self.engine.clock.now())
                    && self.bad.contains_key(*k)
            })
            .filter_map(|(k, e)| Some((k, clock::parse_ts(e.last_sent.as_deref()?)?)))
    }

    /// The subjects whose reminder is due now.
    fn reminders_due(&self, state: &State) -> Vec<String> {
        let every = self.engine.policy.repeat_interval_s as i64;
        let now = self.engine.clock.now();
        self.reminders(state)
            .filter(|(_, last)| (now - *last).whole_seconds() >= every)
            .map(|(k, _)| k.clone())
            .collect()
    }
}
