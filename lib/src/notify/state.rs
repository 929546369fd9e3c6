//! What notify remembers between runs, and the decision it makes each run.
//!
//! `state/notify.json` keeps, per subject, its level (absent when good), since when, how many
//! runs in a row it has been bad, the level last announced (`notified`) and when
//! (`last_sent`). The Agent Ops Kit's `state/alert-rate.json` (`{topic: seconds since the
//! epoch}`) keeps when each topic was last sent; notify reads and writes it as the kit does, so
//! the kit's alert script and notify honour each other's rate limits (docs/compat.md).
//!
//! The decision ([`evaluate`]): a subject that is bad wants an alert when it turns bad, when
//! it gets worse than the worst level announced in the incident, or when the announcement is
//! older than `repeat_interval_seconds` (getting better while still bad waits for that);
//! a subject that turned good after a bad level was announced wants a recovery alert (with
//! `alert_on_recovery`). A wanted alert may be held back: silenced, inhibited (its parent is
//! down), under the `--after` threshold, or rate-limited (its topic was sent within
//! `rate_limit_seconds`). A subject that was bad earlier in the run and good at its end (recover
//! restarted it) gets its outage alert and, when that is not held back, its recovery alert in
//! the same run. A held-back alert is still an alert record with `suppressed` set,
//! and the subject's announcement stays outstanding, so the next run asks again: nothing is
//! lost, only delayed. An alert that is not held back is raised: it is sent now, or queued in
//! the outbox until it is, so the state records it as announced.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::alert::{Alert, AlertStatus, Suppressed};
use super::rules::Observation;
use super::silence::Silences;
use crate::clock::{self, human_duration};
use crate::error::Result;
use crate::record::Level;
use crate::store;

/// Subjects not seen for this long are forgotten.
const FORGET_AFTER_S: i64 = 30 * 86_400;

/// How far ahead of now a record's time may be and still count as a subject's newest.
const FUTURE_TOLERANCE_S: i64 = 300;

/// The longest string kept in the state (a subject's key, title, name, message, ...), in
/// bytes: what the state holds is then proportional to the number of subjects, whatever the
/// records carried. Alerts themselves are sent whole.
pub(crate) const MAX_STORED_BYTES: usize = 4096;

/// Subjects kept by default (`alerting.max_subjects` in services.json changes it).
pub(crate) const DEFAULT_MAX_SUBJECTS: usize = 10_000;

/// Extra (unknown) fields kept per subject.
const MAX_EXTRA_FIELDS: usize = 16;

/// What bounding the state cut.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cut {
    /// Strings cut to [`MAX_STORED_BYTES`] (or values left out for being larger).
    pub strings: usize,
    /// Subjects forgotten for being over the limit (the least recently seen, quiet ones first).
    pub subjects: usize,
}

impl Cut {
    /// A message for stderr when something was cut.
    pub fn message(&self, path: &Path, max_subjects: usize) -> Option<String> {
        let mut parts = Vec::new();
        if self.strings > 0 {
            parts.push(format!("{} stored value(s) cut to {MAX_STORED_BYTES} bytes", self.strings));
        }
        if self.subjects > 0 {
            parts.push(format!(
                "{} subject(s) over the limit of {max_subjects} forgotten (the least recently seen; \
                 set alerting.max_subjects to keep more)",
                self.subjects
            ));
        }
        (!parts.is_empty()).then(|| format!("{}: {}", path.display(), parts.join(", ")))
    }
}

/// Cut `s` to at most [`MAX_STORED_BYTES`] bytes on a character boundary; true when cut.
fn cap(s: &mut String) -> bool {
    if s.len() <= MAX_STORED_BYTES {
        return false;
    }
    let mut end = MAX_STORED_BYTES - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push('…');
    true
}

/// A subject key as kept: at most [`MAX_STORED_BYTES`] bytes (two subjects that share their
/// first 4 KiB are one subject).
pub(crate) fn subject_key(key: &str) -> std::borrow::Cow<'_, str> {
    if key.len() <= MAX_STORED_BYTES {
        return std::borrow::Cow::Borrowed(key);
    }
    let mut k = key.to_string();
    cap(&mut k);
    std::borrow::Cow::Owned(k)
}

fn json_len(v: &Value) -> usize {
    serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX)
}

/// One subject's memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Subject {
    /// The level while bad; absent when good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// When it turned bad (or good).
    #[serde(default)]
    pub since: String,
    #[serde(default)]
    pub last_seen: String,
    /// Consecutive runs it has been bad in.
    #[serde(default)]
    pub bad_runs: u32,
    /// The bad level last announced; absent when nothing bad is outstanding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notified: Option<Level>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sent: Option<String>,
    /// The incident's title, name, source kind, state word and message as last announced
    /// (for recovery alerts and Alertmanager refreshes).
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub topic: String,
    /// Labels of an alert record that spoke for the subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Value>,
    /// Per sink, when it was last given (sent or queued) an alert of this incident: a sink
    /// with a longer repeat interval than the chat's (Gitea: a day) skips the reminders in
    /// between.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sent: BTreeMap<String, String>,
    /// An event announced once (a monitoring gap): never repeated, never refreshed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub once: bool,
    /// Who acknowledged the incident (`notify ack`), and when: no reminders until it is back
    /// or gets worse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_at: Option<String>,
    /// When an acknowledgement given `--for` a while runs out (absent: until the incident
    /// changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_until: Option<String>,
    /// The escalation level reached (`alerting.escalate`; 0: none), and when.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub escalation: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated_at: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Subject {
    /// Acknowledged at `now`: by someone, and not past the time it was given for.
    pub(crate) fn acked(&self, now: OffsetDateTime) -> bool {
        self.acked_by.is_some() && self.acked_until.as_deref().and_then(ts).is_none_or(|u| now < u)
    }

    /// Forget the acknowledgement.
    pub(crate) fn unack(&mut self) {
        self.acked_by = None;
        self.acked_at = None;
        self.acked_until = None;
    }

    /// Mark an alert of this incident with its escalation level (sinks reserved for a level
    /// take the incident's later alerts once it reached it).
    pub(crate) fn mark(&self, a: &mut Alert) {
        if self.escalation > 0 {
            a.extra.insert("escalation".into(), json!(self.escalation));
        }
    }
}

/// `state/notify.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub(crate) subjects: BTreeMap<String, Subject>,
    /// The time of the newest record read of each subject, good ones too: a record older
    /// than that (a stream that delivers again what a killed reader had, after newer ones)
    /// says nothing new and is left out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) newest: BTreeMap<String, String>,
    #[serde(flatten)]
    pub(crate) extra: Map<String, Value>,
}

impl State {
    /// Keep the state within its bounds: every stored string at most [`MAX_STORED_BYTES`],
    /// labels and extra fields left out when larger, at most `max_subjects` subjects (those
    /// with an outstanding announcement kept first, then the most recently seen).
    pub(crate) fn bound(&mut self, max_subjects: usize) -> Cut {
        let mut cut = Cut::default();
        if self.subjects.keys().any(|k| k.len() > MAX_STORED_BYTES) {
            let all = std::mem::take(&mut self.subjects);
            for (k, v) in all {
                if k.len() > MAX_STORED_BYTES {
                    cut.strings += 1;
                }
                self.subjects.entry(subject_key(&k).into_owned()).or_insert(v);
            }
        }
        for s in self.subjects.values_mut() {
            for f in [
                &mut s.since,
                &mut s.last_seen,
                &mut s.title,
                &mut s.name,
                &mut s.kind,
                &mut s.state,
                &mut s.message,
                &mut s.topic,
            ] {
                cut.strings += usize::from(cap(f));
            }
            if let Some(t) = &mut s.last_sent {
                cut.strings += usize::from(cap(t));
            }
            if s.labels.as_ref().is_some_and(|l| json_len(l) > MAX_STORED_BYTES) {
                s.labels = None;
                cut.strings += 1;
            }
            let before = s.extra.len();
            let mut kept = 0;
            s.extra.retain(|k, v| {
                kept += 1;
                kept <= MAX_EXTRA_FIELDS && k.len() <= 256 && json_len(v) <= MAX_STORED_BYTES
            });
            cut.strings += before - s.extra.len();
        }
        let extra_before = self.extra.len();
        self.extra.retain(|_, v| json_len(v) <= MAX_STORED_BYTES);
        cut.strings += extra_before - self.extra.len();
        if self.subjects.len() > max_subjects {
            let mut order: Vec<(bool, String, String)> = self
                .subjects
                .iter()
                .map(|(k, s)| (s.notified.is_some() || s.level.is_some(), s.last_seen.clone(), k.clone()))
                .collect();
            // Outstanding first, then the most recently seen (RFC 3339 sorts as time).
            order.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
            for (_, _, k) in order.into_iter().skip(max_subjects) {
                self.subjects.remove(&k);
                cut.subjects += 1;
            }
        }
        if self.newest.len() > max_subjects {
            let mut order: Vec<(String, String)> = std::mem::take(&mut self.newest).into_iter().collect();
            order.sort_by(|a, b| b.1.cmp(&a.1));
            order.truncate(max_subjects);
            self.newest = order.into_iter().collect();
        }
        cut
    }

    pub(crate) fn load(path: &Path) -> Result<State> {
        Ok(store::read_json(path, store::kinds::NOTIFY_STATE)?.unwrap_or_default())
    }

    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        store::write_json_as(path, self, store::Perm::Private)
    }
}

/// The Agent Ops Kit's `alert-rate.json`: topic -> seconds since the epoch of the last send.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rates(pub(crate) BTreeMap<String, f64>);

impl Rates {
    /// Read the file the Agent Ops Kit's lenient way: unreadable or not JSON is empty (and said).
    pub(crate) fn load(path: &Path) -> (Rates, Option<String>) {
        match store::read::read(path, store::kinds::NOTIFY_SMALL) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Rates::default(), None),
            Err(e) => (Rates::default(), Some(format!("{}: {e}", path.display()))),
            Ok(bytes) => match serde_json::from_slice::<Map<String, Value>>(&bytes) {
                Ok(m) => (Rates(m.into_iter().filter_map(|(k, v)| v.as_f64().map(|t| (k, t))).collect()), None),
                Err(e) => (Rates::default(), Some(format!("{}: {e}; starting afresh", path.display()))),
            },
        }
    }

    /// Write it as the Agent Ops Kit did (pretty, entries older than an hour pruned; here: older than
    /// an hour or the rate limit, whichever is longer).
    pub(crate) fn save(&self, path: &Path, now: f64, rate_limit_s: u64) -> Result<()> {
        let keep = (rate_limit_s as f64).max(3600.0);
        let pruned: Map<String, Value> =
            self.0.iter().filter(|(_, t)| now - **t < keep).map(|(k, t)| (k.clone(), json!(t))).collect();
        store::write_json_as(path, &pruned, store::Perm::Private)
    }

    /// Was the topic sent within `limit_s` of `now`?
    pub(crate) fn limited(&self, topic: &str, now: f64, limit_s: u64) -> bool {
        !topic.is_empty() && limit_s > 0 && self.0.get(topic).is_some_and(|t| now - t < limit_s as f64)
    }

    pub(crate) fn mark(&mut self, topic: &str, now: f64) {
        if !topic.is_empty() {
            self.0.insert(topic.to_string(), now);
        }
    }
}

/// The settings the decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Seconds before a subject still bad is alerted again.
    pub repeat_interval_s: u64,
    /// Seconds between two alerts of one topic.
    pub rate_limit_s: u64,
    /// Whether a subject that is good again is alerted as resolved.
    pub alert_on_recovery: bool,
    /// Alert only after this many consecutive bad runs.
    pub after: u32,
    /// Leave out a record older than the newest read of its subject: the records come from
    /// a stream that delivers again, after newer ones, what a killed reader had (a
    /// `nats://` source, a hub). A pipe keeps the order, and a host whose clock steps back
    /// is then still heard.
    pub newest_wins: bool,
}

/// What the stream said about one subject in this run (the last record wins, but an alert
/// record speaks for its subject over the rules).
#[derive(Debug, Clone)]
pub(crate) enum Said {
    Rule(Observation),
    Alert(Box<Alert>),
}

/// One run's input: what was said per subject, in order of first mention, and the alerts
/// without a subject, to be sent as they are.
#[derive(Debug, Default)]
pub struct Input {
    order: Vec<String>,
    said: HashMap<String, Said>,
    /// The last bad observation of each subject in this run: when a later record of the run
    /// says the subject is good again (recover restarted it), the outage still happened.
    bad_before: HashMap<String, Observation>,
    pub(crate) loose: Vec<Alert>,
}

impl Input {
    /// A rule's observation of a subject from the stream; an alert record for the same
    /// subject in this run speaks over it.
    pub fn rule(&mut self, o: Observation) {
        let key = subject_key(&o.subject).into_owned();
        match self.said.get(&key) {
            Some(Said::Alert(_)) => return,
            // The newest record wins, whatever order they came in.
            Some(Said::Rule(prev)) if older(&o.timestamp, &prev.timestamp) => return,
            _ => {}
        }
        if o.bad.is_some() {
            self.bad_before.insert(key.clone(), o.clone());
        }
        self.put(key, Said::Rule(o));
    }

    /// An alert record from the stream: with a subject and a level (bad, or resolved) it
    /// speaks for that subject; otherwise it is sent as it is.
    pub fn alert(&mut self, a: Alert) {
        match a.subject.clone() {
            Some(s) if !s.is_empty() && (a.level.is_bad() || a.is_resolved()) => self.put(s, Said::Alert(Box::new(a))),
            _ => self.loose.push(a),
        }
    }

    fn put(&mut self, key: String, s: Said) {
        let key = subject_key(&key).into_owned();
        if self.said.insert(key.clone(), s).is_none() {
            self.order.push(key);
        }
    }

    /// True when nothing was said.
    pub(crate) fn is_empty(&self) -> bool {
        self.order.is_empty() && self.loose.is_empty()
    }
}

fn ts(s: &str) -> Option<OffsetDateTime> {
    clock::parse_ts(s)
}

/// True when both are times and `a` is before `b`.
fn older(a: &str, b: &str) -> bool {
    matches!((ts(a), ts(b)), (Some(a), Some(b)) if a < b)
}

fn age_s(since: &str, now: OffsetDateTime) -> Option<u64> {
    ts(since).map(|t| (now - t).whole_seconds().max(0) as u64)
}

/// What one run decided.
#[derive(Debug, Default)]
pub struct Decision {
    /// Every alert, held back ones included, in input order.
    pub alerts: Vec<Alert>,
}

/// Decide what to raise, and update the state and topic rates as if every raised alert were
/// sent (a failed send goes to the outbox, so it is as good as sent).
pub fn evaluate(
    state: &mut State,
    rates: &mut Rates,
    input: Input,
    silences: &Silences,
    policy: Policy,
    now: OffsetDateTime,
) -> Decision {
    let mut pass = Pass {
        silences,
        policy,
        before: rates.clone(),
        now,
        now_s: clock::unix_f64(now),
        stamp: clock::fmt_ts(now),
        alerts: Vec::new(),
        raised_topics: Vec::new(),
    };
    let Input { order, mut said, mut bad_before, loose } = input;
    for key in order {
        let Some(s) = said.remove(&key) else { continue };
        if let Said::Rule(o) = &s {
            if policy.newest_wins && state.newest.get(&key).is_some_and(|n| older(&o.timestamp, n)) {
                continue;
            }
            // A record from the future (a clock ahead, a mistyped time) is not taken as the
            // newest: it would leave the subject's real records out until then.
            if let Some(t) = ts(&o.timestamp).filter(|t| (*t - now).whole_seconds() <= FUTURE_TOLERANCE_S) {
                state.newest.insert(key.clone(), clock::fmt_ts(t));
            }
        }
        let entry = state.subjects.entry(key.clone()).or_default();
        entry.last_seen.clone_from(&pass.stamp);
        let forget = match &s {
            Said::Rule(o) => match o.bad {
                Some(level) => pass.bad(entry, &key, &s, level, o.parent.is_some()),
                None => pass.good(entry, &key, &s, bad_before.remove(&key)),
            },
            Said::Alert(a) if a.is_resolved() => pass.good(entry, &key, &s, bad_before.remove(&key)),
            Said::Alert(a) => pass.bad(entry, &key, &s, a.level, false),
        };
        if forget {
            state.subjects.remove(&key);
        }
    }
    pass.loose(loose);
    for t in &pass.raised_topics {
        rates.mark(t, pass.now_s);
    }
    let mut alerts = pass.alerts;
    mention_children(&mut alerts);
    state.subjects.retain(|_, e| ts(&e.last_seen).is_none_or(|t| (now - t).whole_seconds() < FORGET_AFTER_S));
    state.newest.retain(|_, t| ts(t).is_some_and(|t| (now - t).whole_seconds() < FORGET_AFTER_S));
    Decision { alerts }
}

/// One evaluation: what holds alerts back, and what it raised so far.
struct Pass<'a> {
    silences: &'a Silences,
    policy: Policy,
    /// The topic rates as they were before this run (a topic raised now does not hold back
    /// another alert of the same run).
    before: Rates,
    now: OffsetDateTime,
    now_s: f64,
    stamp: String,
    alerts: Vec<Alert>,
    raised_topics: Vec<String>,
}

impl Pass<'_> {
    /// Why `a` is held back, if it is.
    fn hold(&self, a: &Alert, parent: bool, bad_runs: u32) -> Option<Suppressed> {
        if self.silences.muting(a, self.now).is_some() {
            Some(Suppressed::Silenced)
        } else if parent {
            Some(Suppressed::Inhibited)
        } else if bad_runs < self.policy.after {
            Some(Suppressed::Threshold)
        } else if self.before.limited(&a.topic, self.now_s, self.policy.rate_limit_s) {
            Some(Suppressed::RateLimit)
        } else {
            None
        }
    }

    /// A subject said to be bad at `level`. Never forgets it (false).
    fn bad(&mut self, entry: &mut Subject, key: &str, s: &Said, level: Level, parent: bool) -> bool {
        if entry.level.is_none() {
            entry.since.clone_from(&self.stamp);
            entry.bad_runs = 0;
            entry.unack();
            entry.escalation = 0;
            entry.escalated_at = None;
        }
        entry.bad_runs = entry.bad_runs.saturating_add(1);
        entry.level = Some(level);
        // Turning bad and getting worse are news; getting better while still bad (a restart
        // that failed after the attempts were used up, a down service now only degraded)
        // waits for the next reminder. `notified` keeps the worst level announced in the
        // incident.
        let once = matches!(s, Said::Rule(o) if o.once);
        if once && entry.notified.is_some() {
            return false;
        }
        entry.once = once;
        let repeat = entry.notified.is_some_and(|n| level.severity() <= n.severity());
        // An acknowledged incident gets no reminders; getting worse is news again.
        let due = !repeat
            || !entry.acked(self.now)
                && entry
                    .last_sent
                    .as_deref()
                    .and_then(|t| age_s(t, self.now))
                    .is_none_or(|a| a >= self.policy.repeat_interval_s);
        if !due {
            return false;
        }
        let mut a = match s {
            Said::Rule(o) => rule_alert(o, level, key, entry, &self.stamp),
            Said::Alert(a) => {
                let mut a = a.as_ref().clone();
                a.status = AlertStatus::Firing;
                a.since = Some(entry.since.clone());
                a
            }
        };
        a.repeat = repeat;
        a.was = entry.notified.filter(|n| *n != level);
        entry.mark(&mut a);
        a.suppressed = self.hold(&a, parent, entry.bad_runs);
        if a.suppressed.is_none() {
            if !repeat {
                // Worse than what was acknowledged: the acknowledgement ends.
                entry.unack();
            }
            entry.notified = Some(entry.notified.filter(|n| n.severity() > level.severity()).unwrap_or(level));
            entry.last_sent = Some(self.stamp.clone());
            remember(entry, &a, s);
            self.raised_topics.push(a.topic.clone());
        }
        self.alerts.push(a);
        false
    }

    /// A subject said to be good (`bad_before`: its last bad record of this run, if any).
    /// True when it is to be forgotten.
    fn good(&mut self, entry: &mut Subject, key: &str, s: &Said, bad_before: Option<Observation>) -> bool {
        let was = entry.notified;
        let since = entry.since.clone();
        let earlier_bad_runs = if entry.level.is_some() { entry.bad_runs } else { 0 };
        entry.level = None;
        entry.bad_runs = 0;
        let Some(was) = was else {
            // Bad earlier in this run and good at its end (a restart worked): the outage is
            // announced as it would have been, with its recovery after it.
            if let (Some(b), Said::Rule(good)) = (bad_before, s) {
                let outage_since = if earlier_bad_runs > 0 { Some(since.as_str()) } else { None };
                self.healed(entry, key, &b, good, outage_since, earlier_bad_runs);
            }
            return true;
        };
        if !self.policy.alert_on_recovery {
            return true;
        }
        let mut a = match s {
            Said::Rule(o) => recovery_alert(o, was, key, entry, &since, self.now, &self.stamp),
            Said::Alert(a) => {
                let mut a = a.as_ref().clone();
                a.status = AlertStatus::Resolved;
                a.level = Level::Recovery;
                a.was = Some(was);
                a.since = Some(since);
                a
            }
        };
        entry.mark(&mut a);
        let silenced = self.silences.muting(&a, self.now).is_some();
        if silenced {
            a.suppressed = Some(Suppressed::Silenced);
            entry.unack();
        }
        self.alerts.push(a);
        !silenced
    }

    /// The outage and recovery of a subject healed within the run.
    fn healed(
        &mut self,
        entry: &mut Subject,
        key: &str,
        bad: &Observation,
        good: &Observation,
        since: Option<&str>,
        earlier_bad_runs: u32,
    ) {
        let (mut outage, mut recovery) = healed_in_run(bad, good, key, entry, since, self.now);
        outage.suppressed = self.hold(&outage, bad.parent.is_some(), earlier_bad_runs.saturating_add(1));
        let raised = outage.suppressed.is_none();
        if raised {
            self.raised_topics.push(outage.topic.clone());
        }
        self.alerts.push(outage);
        if raised && self.policy.alert_on_recovery {
            if self.silences.muting(&recovery, self.now).is_some() {
                recovery.suppressed = Some(Suppressed::Silenced);
            }
            self.alerts.push(recovery);
        }
    }

    /// Alerts without a subject: sent as they are, once per run, within the topic's limit
    /// (recoveries too, as the Agent Ops Kit's alert script did).
    fn loose(&mut self, loose: Vec<Alert>) {
        let mut seen = HashSet::new();
        for mut a in loose {
            if a.timestamp.is_empty() {
                a.timestamp.clone_from(&self.stamp);
            }
            let key = (a.topic.clone(), a.title.clone(), a.message.clone(), a.level, a.status);
            a.suppressed = if !seen.insert(key) {
                Some(Suppressed::Duplicate)
            } else if self.silences.muting(&a, self.now).is_some() {
                Some(Suppressed::Silenced)
            } else if self.before.limited(&a.topic, self.now_s, self.policy.rate_limit_s) {
                Some(Suppressed::RateLimit)
            } else {
                None
            };
            if a.suppressed.is_none() {
                self.raised_topics.push(a.topic.clone());
            }
            self.alerts.push(a);
        }
    }
}

/// The outage alert and the recovery alert of a subject that was bad (`bad`) earlier in this
/// run and is good (`good`) at its end. The outage dates from `since` when the subject was
/// already bad in earlier runs, else from the bad record; the recovery from the good record.
fn healed_in_run(
    bad: &Observation,
    good: &Observation,
    subject: &str,
    entry: &mut Subject,
    since: Option<&str>,
    now: OffsetDateTime,
) -> (Alert, Alert) {
    let stamp = clock::fmt_ts(now);
    let level = bad.bad.unwrap_or(Level::Error);
    entry.since = match since {
        Some(s) => s.to_string(),
        None => ts(&bad.timestamp).map(clock::fmt_ts).unwrap_or_else(|| stamp.clone()),
    };
    let since = entry.since.clone();
    let outage = rule_alert(bad, level, subject, entry, &stamp);
    entry.title.clone_from(&outage.title);
    let back = ts(&good.timestamp).filter(|t| ts(&since).is_some_and(|s| *t >= s)).unwrap_or(now);
    let recovery = recovery_alert(good, level, subject, entry, &since, back, &stamp);
    (outage, recovery)
}

fn remember(entry: &mut Subject, a: &Alert, s: &Said) {
    entry.title.clone_from(&a.title);
    entry.message.clone_from(&a.message);
    entry.topic.clone_from(&a.topic);
    match s {
        Said::Rule(o) => {
            entry.name.clone_from(&o.name);
            entry.kind = o.kind.to_string();
            entry.state.clone_from(&o.state);
            entry.labels = None;
        }
        Said::Alert(a) => {
            entry.name = a.name().to_string();
            entry.kind = "alert".into();
            entry.state.clear();
            entry.labels.clone_from(&a.labels);
        }
    }
}

fn rule_labels(o: &Observation) -> Value {
    json!({"kind": o.kind, "name": o.name})
}

fn rule_alert(o: &Observation, level: Level, subject: &str, entry: &Subject, stamp: &str) -> Alert {
    let message = if o.detail.is_empty() { o.state.clone() } else { format!("{}: {}", o.state, o.detail) };
    let mut a = Alert::new(subject, level, &o.title, &message, stamp);
    a.subject = Some(subject.to_string());
    a.labels = Some(rule_labels(o));
    a.state = Some(o.state.clone());
    a.since = Some(entry.since.clone());
    a.suppressed_by = o.parent.clone();
    a
}

fn recovery_alert(
    o: &Observation,
    was: Level,
    subject: &str,
    entry: &Subject,
    since: &str,
    now: OffsetDateTime,
    stamp: &str,
) -> Alert {
    let mut message = match age_s(since, now) {
        Some(s) => format!("recovered after {}", human_duration(s)),
        None => "recovered".to_string(),
    };
    if !o.detail.is_empty() {
        message.push_str(&format!(": {}", o.detail));
    }
    let title = if entry.title.is_empty() { o.title.clone() } else { entry.title.clone() };
    let mut a = Alert::new(subject, Level::Recovery, &title, &message, stamp);
    a.status = AlertStatus::Resolved;
    a.subject = Some(subject.to_string());
    a.labels = Some(rule_labels(o));
    a.state = Some(o.state.clone());
    a.since = Some(since.to_string());
    a.was = Some(was);
    a
}

/// Mention inhibited children under their parent: the parent's `also` lists them when the
/// parent's alert is in this run.
fn mention_children(alerts: &mut [Alert]) {
    let mut children: HashMap<String, Vec<String>> = HashMap::new();
    for a in alerts.iter() {
        if a.suppressed == Some(Suppressed::Inhibited)
            && let Some(p) = &a.suppressed_by
        {
            children.entry(p.clone()).or_default().push(a.name().to_string());
        }
    }
    for a in alerts.iter_mut() {
        if a.suppressed.is_none()
            && !a.is_resolved()
            && a.source_kind() == "check"
            && let Some(c) = children.remove(a.name())
        {
            a.also = c;
        }
    }
}

/// Alerts for every subject still bad and announced, rebuilt from the state: Alertmanager
/// forgets an alert that is not posted again, so it is told of them every run.
pub fn still_firing(state: &State, skip: &HashSet<String>) -> Vec<Alert> {
    state
        .subjects
        .iter()
        .filter(|(k, e)| e.level.is_some() && e.notified.is_some() && !e.once && !skip.contains(*k))
        .filter_map(|(k, e)| {
            let level = e.notified?;
            let mut a =
                Alert::new(if e.topic.is_empty() { k } else { &e.topic }, level, &e.title, &e.message, &e.last_seen);
            a.subject = Some(k.clone());
            a.since = Some(e.since.clone());
            a.labels = if e.kind == "alert" { e.labels.clone() } else { Some(json!({"kind": e.kind, "name": e.name})) };
            if e.kind != "alert" {
                a.state = Some(e.state.clone());
            }
            e.mark(&mut a);
            Some(a)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::rules;

    fn t(s: &str) -> OffsetDateTime {
        clock::parse_ts(s).unwrap()
    }

    fn policy() -> Policy {
        Policy { repeat_interval_s: 3600, rate_limit_s: 300, alert_on_recovery: true, after: 1, newest_wins: false }
    }

    fn run(state: &mut State, rates: &mut Rates, lines: &[Value], p: Policy, now: &str) -> Vec<Alert> {
        run_with(state, rates, lines, p, now, &Silences::default())
    }

    fn run_with(
        state: &mut State,
        rates: &mut Rates,
        lines: &[Value],
        p: Policy,
        now: &str,
        s: &Silences,
    ) -> Vec<Alert> {
        let mut input = Input::default();
        for v in lines {
            if v["kind"] == "alert" {
                input.alert(serde_json::from_value(v.clone()).unwrap());
            } else {
                for o in rules::observe(v).unwrap() {
                    input.rule(o);
                }
            }
        }
        evaluate(state, rates, input, s, p, t(now)).alerts
    }

    fn check(name: &str, status: &str) -> Value {
        json!({"kind": "check", "name": name, "status": status, "detail": format!("{name} {status}")})
    }

    fn check_at(name: &str, status: &str, at: &str) -> Value {
        let mut v = check(name, status);
        v["timestamp"] = json!(at);
        v
    }

    #[test]
    fn a_record_older_than_one_read_before_says_nothing() {
        // A stream delivers again, after newer records, what a killed reader had: api was
        // down at 10:00 and 10:02, up at 10:01 (delivered last). It stays down, and the
        // recovery is not announced; then a newer up record recovers it.
        let (mut st, mut r) = (State::default(), Rates::default());
        let p = Policy { newest_wins: true, ..policy() };
        let a = run(&mut st, &mut r, &[check_at("api", "down", "2026-11-23T10:02:00Z")], p, "2026-11-23T10:02:05Z");
        assert_eq!(a.len(), 1);
        let late = [check_at("api", "up", "2026-11-23T10:01:00Z")];
        let (mut piped, mut piped_rates) = (st.clone(), r.clone());
        let a = run(&mut st, &mut r, &late, p, "2026-11-23T10:02:35Z");
        assert!(a.is_empty(), "{a:?}");
        assert!(st.subjects["check:api"].level.is_some());
        // From a pipe, which keeps the order, the same record is heard (a clock stepped back).
        let a = run(&mut piped, &mut piped_rates, &late, policy(), "2026-11-23T10:02:35Z");
        assert_eq!((a.len(), a[0].status), (1, AlertStatus::Resolved), "{a:?}");
        // Within one run too: the newest record wins whatever the order.
        let lines = [check_at("db", "down", "2026-11-23T10:03:00Z"), check_at("db", "up", "2026-11-23T10:02:00Z")];
        let a = run(&mut st, &mut r, &lines, p, "2026-11-23T10:03:05Z");
        assert_eq!((a.len(), a[0].subject.as_deref()), (1, Some("check:db")), "{a:?}");
        assert_eq!(a[0].status, AlertStatus::Firing);
        let a = run(&mut st, &mut r, &[check_at("api", "up", "2026-11-23T10:04:00Z")], p, "2026-11-23T10:04:05Z");
        assert_eq!(a[0].status, AlertStatus::Resolved, "{a:?}");
        // A record from the future (a clock ahead) is heard, but is not the newest: the
        // subject's records of now still count.
        let ahead = [check_at("web", "down", "2026-11-23T13:00:00Z")];
        assert_eq!(run(&mut st, &mut r, &ahead, p, "2026-11-23T11:00:00Z").len(), 1);
        let a = run(&mut st, &mut r, &[check_at("web", "up", "2026-11-23T11:01:00Z")], p, "2026-11-23T11:01:05Z");
        assert_eq!((a.len(), a[0].status), (1, AlertStatus::Resolved), "{a:?}");
    }

    #[test]
    fn turning_bad_staying_bad_repeating_and_recovering() {
        let (mut st, mut r) = (State::default(), Rates::default());
        let a = run(&mut st, &mut r, &[check("api", "down")], policy(), "2026-11-23T10:00:00Z");
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].level, a[0].title.as_str(), a[0].message.as_str()),
            (Level::Error, "api is failing", "down: api down")
        );
        assert!(a[0].suppressed.is_none());
        assert!(run(&mut st, &mut r, &[check("api", "down")], policy(), "2026-11-23T10:05:00Z").is_empty());
        let a = run(&mut st, &mut r, &[check("api", "down")], policy(), "2026-11-23T11:00:00Z");
        assert!(a[0].repeat, "past repeat_interval: a reminder");
        let a = run(&mut st, &mut r, &[check("api", "up")], policy(), "2026-11-23T11:30:00Z");
        assert_eq!((a[0].level, a[0].status, a[0].was), (Level::Recovery, AlertStatus::Resolved, Some(Level::Error)));
        assert_eq!(a[0].message, "recovered after 1h 30m: api up");
        assert_eq!(a[0].title, "api is failing", "the incident keeps its title");
        assert!(st.subjects.is_empty());
        assert!(run(&mut st, &mut r, &[check("api", "up")], policy(), "2026-11-23T11:35:00Z").is_empty());
    }

    #[test]
    fn an_acknowledged_incident_is_not_repeated_until_it_is_worse_or_back() {
        let (mut st, mut r) = (State::default(), Rates::default());
        let p = Policy { rate_limit_s: 0, ..policy() };
        let alert = |level: &str| json!({"kind": "alert", "subject": "disk:db", "level": level, "title": "db disk", "message": level});
        assert_eq!(run(&mut st, &mut r, &[alert("error")], p, "2026-11-23T10:00:00Z").len(), 1);
        let e = st.subjects.get_mut("disk:db").unwrap();
        e.acked_by = Some("ops".into());
        e.acked_at = Some("2026-11-23T10:05:00.000Z".into());
        assert!(run(&mut st, &mut r, &[alert("error")], p, "2026-11-23T12:00:00Z").is_empty(), "no reminder");
        let a = run(&mut st, &mut r, &[alert("critical")], p, "2026-11-23T12:05:00Z");
        assert_eq!((a.len(), a[0].repeat, a[0].was), (1, false, Some(Level::Error)), "worse is news");
        assert_eq!(st.subjects["disk:db"].acked_by, None, "the acknowledgement ends");
        let a = run(&mut st, &mut r, &[alert("critical")], p, "2026-11-23T13:05:00Z");
        assert!(a[0].repeat, "reminders again");
        // Without the acknowledgement the reminder at 12:00 would have gone.
        let (mut st2, mut r2) = (State::default(), Rates::default());
        run(&mut st2, &mut r2, &[alert("error")], p, "2026-11-23T10:00:00Z");
        assert_eq!(run(&mut st2, &mut r2, &[alert("error")], p, "2026-11-23T12:00:00Z").len(), 1);
    }

    #[test]
    fn a_monitoring_gap_is_told_once_whoever_reports_it() {
        let (mut st, mut r) = (State::default(), Rates::default());
        let gap = |detail: &str, end: Value| {
            json!({"kind": "finding", "source": "rollup", "subject": "monitoring", "level": "warning",
                   "problem": "monitoring_gap", "detail": detail, "start": "2026-11-23T04:00:00Z", "end": end})
        };
        // The orchestrator's run after the silence, then the daily reports that see it closed.
        let a = run(&mut st, &mut r, &[gap("since 04:00", Value::Null)], policy(), "2026-11-23T10:00:00Z");
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].subject.as_deref(), Some("monitoring_gap:2026-11-23T04:00:00.000Z"));
        assert_eq!(a[0].title, "Monitoring gap: no checks since 2026-11-23T04:00:00.000Z");
        for now in ["2026-11-23T12:00:00Z", "2026-11-24T09:00:00Z", "2026-11-30T09:00:00Z"] {
            let again = run(&mut st, &mut r, &[gap("04:00 to 10:00", json!("2026-11-23T10:00:00Z"))], policy(), now);
            assert!(again.is_empty(), "never repeated: {again:?}");
        }
        assert!(still_firing(&st, &HashSet::new()).is_empty(), "an event, not a state Alertmanager keeps firing");
        let other = json!({"kind": "finding", "source": "rollup", "subject": "monitoring", "level": "warning",
                           "problem": "monitoring_gap", "detail": "x", "start": "2026-11-25T01:00:00Z"});
        assert_eq!(run(&mut st, &mut r, &[other], policy(), "2026-11-30T09:05:00Z").len(), 1, "another gap is news");
    }

    #[test]
    fn the_last_record_of_a_subject_wins() {
        let (mut st, mut r) = (State::default(), Rates::default());
        let a = run(&mut st, &mut r, &[check("api", "degraded"), check("api", "up")], policy(), "2026-11-23T09:00:00Z");
        assert_eq!(a.len(), 2, "bad, then good in the same run: the trouble and its end; {a:?}");
        assert!(st.subjects.is_empty());
        let a = run(&mut st, &mut r, &[check("api", "up"), check("api", "degraded")], policy(), "2026-11-23T10:00:00Z");
        assert_eq!(a[0].level, Level::Warning);
        let a = run(&mut st, &mut r, &[check("api", "down")], policy(), "2026-11-23T10:01:00Z");
        assert_eq!(
            (a[0].level, a[0].suppressed),
            (Level::Error, Some(Suppressed::RateLimit)),
            "escalation, rate-limited"
        );
        let a = run(&mut st, &mut r, &[check("api", "down")], policy(), "2026-11-23T10:06:00Z");
        assert_eq!((a[0].level, a[0].suppressed), (Level::Error, None), "and sent once the limit has passed");
    }

    #[test]
    fn an_outage_healed_within_the_run_is_announced_with_its_recovery() {
        let (mut st, mut r) = (State::default(), Rates::default());
        let mut down = check("gateway", "down");
        down["timestamp"] = json!("2026-11-23T10:00:00.000Z");
        let mut up = check("gateway", "up");
        up["timestamp"] = json!("2026-11-23T10:00:03.000Z");
        let mut child = check("api", "down");
        child["suppressed_by"] = json!("gateway");
        let lines = [child, down.clone(), up.clone(), check("api", "up")];
        let a = run(&mut st, &mut r, &lines, policy(), "2026-11-23T10:00:05Z");
        let got: Vec<_> = a.iter().map(|a| (a.subject.as_deref().unwrap_or(""), a.level, a.suppressed)).collect();
        assert_eq!(
            got,
            vec![
                ("check:api", Level::Error, Some(Suppressed::Inhibited)),
                ("check:gateway", Level::Error, None),
                ("check:gateway", Level::Recovery, None),
            ]
        );
        assert_eq!(a[1].also, vec!["api"], "the child is listed under its parent");
        assert_eq!(a[1].since.as_deref(), Some("2026-11-23T10:00:00.000Z"));
        assert_eq!((a[2].status, a[2].was), (AlertStatus::Resolved, Some(Level::Error)));
        assert_eq!(a[2].message, "recovered after 3s: gateway up");
        assert!(st.subjects.is_empty(), "nothing stays outstanding");
        // Within the rate limit the outage is held, and its recovery with it.
        let a = run(&mut st, &mut r, &[down.clone(), up.clone()], policy(), "2026-11-23T10:02:00Z");
        assert_eq!((a.len(), a[0].suppressed), (1, Some(Suppressed::RateLimit)));
        // Under --after 2 a first bad run is held; a second one (bad in the run before) is not.
        let p = Policy { after: 2, ..policy() };
        let a = run(&mut st, &mut r, &[down.clone(), up.clone()], p, "2026-11-23T11:00:00Z");
        assert_eq!((a.len(), a[0].suppressed), (1, Some(Suppressed::Threshold)));
        // (Records of later runs are newer: a record older than one read before says nothing.)
        run(&mut st, &mut r, &[check_at("gateway", "down", "2026-11-23T11:10:00Z")], p, "2026-11-23T11:10:00Z");
        let (down, up) =
            (check_at("gateway", "down", "2026-11-23T11:20:00Z"), check_at("gateway", "up", "2026-11-23T11:20:03Z"));
        let a = run(&mut st, &mut r, &[down, up], p, "2026-11-23T11:20:00Z");
        assert_eq!(a.iter().map(|a| a.level).collect::<Vec<_>>(), vec![Level::Error, Level::Recovery]);
        assert_eq!(a[0].since.as_deref(), Some("2026-11-23T11:10:00.000Z"), "bad since the run before");
    }

    #[test]
    fn after_n_runs_and_no_recovery_for_what_was_never_said() {
        let (mut st, mut r) = (State::default(), Rates::default());
        let p = Policy { after: 3, ..policy() };
        for (i, now) in ["2026-11-23T10:00:00Z", "2026-11-23T10:05:00Z"].iter().enumerate() {
            let a = run(&mut st, &mut r, &[check("api", "down")], p, now);
            assert_eq!(a[0].suppressed, Some(Suppressed::Threshold), "run {i}");
        }
        let a = run(&mut st, &mut r, &[check("db", "down"), check("api", "up")], p, "2026-11-23T10:10:00Z");
        assert_eq!(a.len(), 1, "api was never announced: no recovery; {a:?}");
        let a = run(&mut st, &mut r, &[check("db", "down")], p, "2026-11-23T10:15:00Z");
        assert_eq!(a[0].suppressed, Some(Suppressed::Threshold));
        let a = run(&mut st, &mut r, &[check("db", "down")], p, "2026-11-23T10:20:00Z");
        assert_eq!(a[0].suppressed, None);
    }

    #[test]
    fn children_are_mentioned_under_their_parent() {
        let (mut st, mut r) = (State::default(), Rates::default());
        let mut worker = check("worker", "down");
        worker["suppressed_by"] = json!("gateway");
        let a = run(&mut st, &mut r, &[worker.clone(), check("gateway", "down")], policy(), "2026-11-23T10:00:00Z");
        assert_eq!(a[0].suppressed, Some(Suppressed::Inhibited));
        assert_eq!(a[1].also, vec!["worker"]);
        let a =
            run(&mut st, &mut r, &[check("gateway", "up"), check("worker", "down")], policy(), "2026-11-23T10:10:00Z");
        assert_eq!(a.len(), 2, "gateway recovered, worker is down on its own now: {a:?}");
        assert_eq!((a[0].level, a[1].level, a[1].suppressed), (Level::Recovery, Level::Error, None));
    }

    #[test]
    fn silences_hold_alerts_without_losing_them() {
        let (mut st, mut r) = (State::default(), Rates::default());
        let mut s = Silences::default();
        s.silences.push(super::super::silence::Silence {
            id: 1,
            matchers: vec![super::super::silence::Matcher::parse("name=api").unwrap()],
            starts_at: "2026-11-23T09:00:00Z".into(),
            ends_at: "2026-11-23T11:00:00Z".into(),
            why: String::new(),
            created_at: String::new(),
            created_by: String::new(),
            ..Default::default()
        });
        let a = run_with(&mut st, &mut r, &[check("api", "down")], policy(), "2026-11-23T10:00:00Z", &s);
        assert_eq!(a[0].suppressed, Some(Suppressed::Silenced));
        let a = run_with(&mut st, &mut r, &[check("api", "down")], policy(), "2026-11-23T11:00:00Z", &s);
        assert_eq!(a[0].suppressed, None, "the silence ended and api is still down");
        assert_eq!(a[0].since.as_deref(), Some("2026-11-23T10:00:00.000Z"));
    }

    #[test]
    fn stream_alerts_speak_for_their_subject_or_go_as_they_are() {
        let (mut st, mut r) = (State::default(), Rates::default());
        let rca = json!({"kind":"alert","topic":"agent-health","level":"critical","title":"RCA-AGENT: a","message":"m","subject":"tick:a:2026-11","labels":["rca-required"]});
        let tick = json!({"kind":"tick","agent":"a","month":"2026-11","status":"offline"});
        let a = run(&mut st, &mut r, &[rca.clone(), tick.clone()], policy(), "2026-11-23T10:00:00Z");
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].title, "RCA-AGENT: a");
        assert!(run(&mut st, &mut r, &[tick, rca], policy(), "2026-11-23T10:10:00Z").is_empty(), "announced already");
        let loose = json!({"kind":"alert","topic":"digest","level":"info","title":"Weekly","message":"all fine"});
        let a = run(&mut st, &mut r, &[loose.clone(), loose.clone()], policy(), "2026-11-23T10:00:00Z");
        assert_eq!((a[0].suppressed, a[1].suppressed), (None, Some(Suppressed::Duplicate)));
        let a = run(&mut st, &mut r, &[loose], policy(), "2026-11-23T10:01:00Z");
        assert_eq!(a[0].suppressed, Some(Suppressed::RateLimit));
        let firing = still_firing(&st, &HashSet::new());
        assert_eq!(firing.len(), 1);
        assert_eq!(firing[0].label_names(), vec!["rca-required"]);
    }

    #[test]
    fn kit_rate_file_is_read_and_pruned() {
        let dir = std::env::temp_dir().join(format!("pitcrew-rates-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("alert-rate.json");
        std::fs::write(&p, r#"{"health-check": 1000.5, "old": 10}"#).unwrap();
        let (r, warn) = Rates::load(&p);
        assert!(warn.is_none());
        assert!(r.limited("health-check", 1100.0, 300));
        assert!(!r.limited("health-check", 1400.0, 300));
        r.save(&p, 4000.0, 300).unwrap();
        let back: Map<String, Value> = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(back.len(), 1);
        std::fs::write(&p, "garbage").unwrap();
        assert!(Rates::load(&p).1.is_some());
    }

    #[test]
    fn the_state_is_bounded_in_strings_and_subjects() {
        let mut st = State::default();
        let huge = "é".repeat(10_000);
        for i in 0..10 {
            let subject = Subject {
                level: (i % 2 == 0).then_some(Level::Error),
                last_seen: format!("2026-11-{:02}T00:00:00.000Z", 10 + i),
                title: huge.clone(),
                message: huge.clone(),
                labels: Some(json!({ "big": huge })),
                ..Subject::default()
            };
            st.subjects.insert(format!("s{i}"), subject);
        }
        st.subjects.insert(format!("long-{huge}"), Subject::default());
        let cut = st.bound(5);
        // Five outstanding ones (the even ones) are kept before any quiet one.
        let kept: Vec<&str> = st.subjects.keys().map(String::as_str).collect();
        assert_eq!(kept, ["s0", "s2", "s4", "s6", "s8"]);
        assert_eq!(cut.subjects, 6);
        assert!(cut.strings >= 31, "{cut:?}");
        for s in st.subjects.values() {
            assert!(s.title.len() <= MAX_STORED_BYTES && s.message.len() <= MAX_STORED_BYTES);
            assert!(s.title.ends_with('…') && s.labels.is_none());
        }
        assert!(serde_json::to_vec(&st).unwrap().len() < 5 * 3 * MAX_STORED_BYTES);
        let msg = cut.message(Path::new("state/notify.json"), 5).unwrap();
        assert!(msg.starts_with("state/notify.json: ") && msg.contains("6 subject(s) over the limit of 5"), "{msg}");
        assert_eq!(st.bound(5), Cut::default(), "bounding twice cuts nothing more");
        assert_eq!(subject_key(&"x".repeat(5000)).len(), MAX_STORED_BYTES);
    }
}
