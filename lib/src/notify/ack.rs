//! Acknowledgements: a person says they are on an incident (`notify ack`, a Telegram button
//! or reply, a Gitea comment `/ack`). The incident gets no reminders and no escalation until
//! it is back, worse, or the time given with `--for` ran out; the acknowledgement is an
//! `acknowledged` event in the alert history, and it is announced (one `info` alert,
//! "acknowledged by X") to the sinks other than the one it came from.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

use super::alert::Alert;
use super::sinks::Pick;
use super::state::{self, State};
use crate::clock;
use crate::history::{AlertEvent, Event};
use crate::record::Level;

/// Who acknowledges, why, until when, and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Ack {
    pub by: String,
    pub why: String,
    pub until: Option<OffsetDateTime>,
    /// The sink it came from (`telegram`, `gitea`); none: the command line.
    pub origin: Option<String>,
}

/// `notify ack` as asked on the command line, in a form that can wait in the hubs' shared
/// memory for the hub that leads (`notify --state … ack` while a resident hub leads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Request {
    pub subjects: Vec<String>,
    pub matchers: Vec<String>,
    pub by: String,
    #[serde(default)]
    pub why: String,
    /// Until when (RFC 3339), from `--for`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// When it was asked.
    pub at: String,
}

/// What picks the incidents a request names.
pub(crate) type Wanted = Box<dyn Fn(&Alert) -> bool>;

impl Request {
    /// The command line's request, checked: who (`--by`, else `$USER`), until when.
    pub fn from_args(args: &super::cli::AckArgs, now: OffsetDateTime) -> crate::error::Result<Request> {
        use crate::error::Error;
        let by = args
            .by
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .map(|b| b.trim().to_string())
            .filter(|b| !b.is_empty())
            .ok_or_else(|| Error::usage("ack: say who is on it with --by (USER is not set)"))?;
        let until = match &args.duration {
            None => None,
            Some(d) => {
                let d = clock::parse_duration(d)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| Error::usage(format!("--for: '{d}' is not a duration (90s, 15m, 4h, 1d, 1h30m)")))?;
                Some(clock::fmt_ts(clock::add_or_latest(now, d)))
            }
        };
        let r = Request {
            subjects: args.subjects.clone(),
            matchers: args.matchers.clone(),
            by,
            why: args.why.clone(),
            until,
            at: clock::fmt_ts(now),
        };
        drop(r.wanted()?);
        Ok(r)
    }

    /// The incidents it names: every matcher holds, and one of the subjects (globs) is the
    /// subject or the name.
    pub fn wanted(&self) -> crate::error::Result<Wanted> {
        use crate::error::Error;
        let matchers: Vec<super::silence::Matcher> = self
            .matchers
            .iter()
            .map(|m| super::silence::Matcher::parse(m))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::usage(format!("--match {e}")))?;
        let subjects: Vec<regex::Regex> = self
            .subjects
            .iter()
            .map(|s| {
                crate::calendar::maintenance::glob_regex(s)
                    .ok_or_else(|| Error::usage(format!("ack: '{s}' is not a subject")))
            })
            .collect::<crate::error::Result<_>>()?;
        Ok(Box::new(move |a: &Alert| {
            let key = a.subject.as_deref().unwrap_or("");
            matchers.iter().all(|m| m.matches(a))
                && (subjects.is_empty() || subjects.iter().any(|re| re.is_match(key) || re.is_match(a.name())))
        }))
    }

    /// The acknowledgement it gives.
    pub fn ack(&self) -> Ack {
        Ack {
            by: self.by.clone(),
            why: self.why.clone(),
            until: self.until.as_deref().and_then(clock::parse_ts),
            origin: None,
        }
    }
}

/// What acknowledging did: the history events, the announcements to send, and the subjects
/// that were acknowledged already (with by whom).
#[derive(Debug, Default)]
pub(crate) struct Done {
    pub events: Vec<AlertEvent>,
    pub announcements: Vec<Alert>,
    pub already: Vec<(String, String)>,
}

/// Acknowledge every incident still firing that `wanted` picks.
pub(crate) fn acknowledge(st: &mut State, wanted: &dyn Fn(&Alert) -> bool, ack: &Ack, now: OffsetDateTime) -> Done {
    let stamp = clock::fmt_ts(now);
    let mut done = Done::default();
    for a in state::still_firing(st, &HashSet::new()) {
        let Some(key) = a.subject.as_deref() else { continue };
        if !wanted(&a) {
            continue;
        }
        let Some(entry) = st.subjects.get_mut(key) else { continue };
        if entry.acked(now) {
            done.already.push((key.to_string(), entry.acked_by.clone().unwrap_or_default()));
            continue;
        }
        entry.acked_by = Some(ack.by.clone());
        entry.acked_at = Some(stamp.clone());
        entry.acked_until = ack.until.map(clock::fmt_ts);
        let mut e = AlertEvent::new(Event::Acknowledged, key, a.name(), &stamp);
        e.topic.clone_from(&a.topic);
        e.level = Some(a.level);
        e.title.clone_from(&a.title);
        e.since.clone_from(&a.since);
        e.by = Some(ack.by.clone());
        if !ack.why.is_empty() {
            e.extra.insert("why".into(), json!(ack.why));
        }
        if let Some(u) = &entry.acked_until {
            e.extra.insert("until".into(), json!(u));
        }
        if let Some(o) = &ack.origin {
            e.extra.insert("via".into(), json!(o));
        }
        done.events.push(e);
        let mut n = announcement(&a, key, ack, &stamp);
        entry.mark(&mut n);
        done.announcements.push(n);
    }
    done
}

/// A subject's short token, for a Telegram button's `callback_data` (64 bytes at most):
/// 16 hex digits of the subject's FNV-1a hash, stable across versions and restarts.
pub(crate) fn token(subject: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in subject.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The `info` alert that tells the other sinks.
fn announcement(a: &Alert, key: &str, ack: &Ack, stamp: &str) -> Alert {
    let until = ack.until.map(|u| format!(" until {}", clock::fmt_ts(u))).unwrap_or_default();
    let why = if ack.why.is_empty() { String::new() } else { format!(": {}", ack.why) };
    let title = if a.title.is_empty() { key } else { &a.title };
    let mut n = Alert::new(
        &format!("ack:{key}"),
        Level::Info,
        &format!("{title}: acknowledged by {}", ack.by),
        &format!("acknowledged by {}{until}{why}", ack.by),
        stamp,
    );
    n.extra.insert("acknowledged".into(), json!({"subject": key, "by": ack.by, "until": ack.until.map(clock::fmt_ts)}));
    if let Some(o) = &ack.origin {
        n.extra.insert("ack_from".into(), json!(o));
    }
    n
}

impl super::Engine<'_> {
    /// Read the acknowledgements people gave through the sinks since the last run (a
    /// Telegram button or reply, a Gitea comment `/ack`), apply them to the state, answer
    /// them where the sink can, and return the history events and the announcements (for the
    /// other sinks). Each sink's bookmark is kept in the state (`ack_cursors`).
    pub(crate) fn take_acks(&mut self, st: &mut State, now: OffsetDateTime) -> (Vec<AlertEvent>, Vec<Alert>) {
        // Under a hub, first those asked for on other machines (`notify --state … ack`).
        let asked = self.hub.map(|h| h.apply_requests(st, now, self.diag)).unwrap_or_default();
        let (mut events, mut notes) = (asked.events, asked.announcements);
        if !self.polls_acks {
            return (events, notes);
        }
        let firing = state::still_firing(st, &HashSet::new());
        let mut cursors = match st.extra.remove("ack_cursors") {
            Some(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        for sink in &mut self.sinks {
            let name = sink.name();
            let mut cursor = cursors.get(name).cloned().unwrap_or_else(|| json!({}));
            let incoming = match sink.poll_acks(&mut cursor, &firing) {
                Ok(i) => i,
                Err(e) => {
                    self.diag.warn(format_args!("{name}: reading acknowledgements: {e}"));
                    continue;
                }
            };
            if cursor.as_object().is_some_and(|c| !c.is_empty()) {
                cursors.insert(name.to_string(), cursor);
            }
            for inc in incoming {
                let keys: HashSet<&str> = st
                    .subjects
                    .keys()
                    .filter(|k| {
                        inc.picks.iter().any(|p| match p {
                            Pick::Token(t) => token(k) == *t,
                            Pick::Subject(s) => *k == s,
                        })
                    })
                    .map(String::as_str)
                    .collect();
                let keys: HashSet<String> = keys.into_iter().map(String::from).collect();
                let ack = Ack { by: inc.by.clone(), why: String::new(), until: None, origin: Some(name.to_string()) };
                let wanted = |a: &Alert| a.subject.as_deref().is_some_and(|s| keys.contains(s));
                let done = acknowledge(st, &wanted, &ack, now);
                let text = if !done.events.is_empty() {
                    let names: Vec<&str> = done.events.iter().map(|e| e.name.as_str()).collect();
                    format!("Acknowledged: {}", names.join(", "))
                } else if let Some((_, who)) = done.already.first() {
                    format!("Acknowledged already by {who}")
                } else {
                    "Nothing to acknowledge: it is no longer firing".to_string()
                };
                sink.answer(&inc, &text);
                events.extend(done.events);
                notes.extend(done.announcements);
            }
        }
        if !cursors.is_empty() {
            st.extra.insert("ack_cursors".into(), serde_json::Value::Object(cursors));
        }
        (events, notes)
    }
}
