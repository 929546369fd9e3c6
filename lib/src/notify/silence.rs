//! Silences and maintenance windows: `state/silences.json`, changed under its lock and
//! rewritten atomically.
//!
//! A silence is a set of matchers (`name=api`, `level!=critical`, `subject=check:*`), all of
//! which must hold, and a time window. Keys: `name`, `subject`, `topic`, `level`, `kind`,
//! `title`, `status`, `label` (any label name of the array form) or any label of the object
//! form. Values may use `*` (any run of characters) and `?` (one character). An alert a
//! silence matches is not sent; it comes out with `"suppressed":"silenced"`, and the subject's
//! state goes on counting, so a subject still bad when the silence ends is alerted then.

use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::alert::Alert;
use crate::calendar::Schedule;
pub use crate::calendar::maintenance::{Maintenance, Recurrence};
use crate::calendar::maintenance::{glob_regex, window_at_or_after};
use crate::clock;
use crate::error::{Error, Result};
use crate::store;

/// Expired silences are kept this long (for `silence list --all`), then forgotten.
const KEEP_EXPIRED_S: i64 = 7 * 86_400;

/// One `KEY=VALUE` or `KEY!=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matcher {
    pub(crate) key: String,
    pub(crate) value: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) negate: bool,
}

impl Matcher {
    /// Parse `KEY=VALUE` or `KEY!=VALUE`.
    pub fn parse(s: &str) -> std::result::Result<Matcher, String> {
        let (key, value, negate) = match s.split_once("!=") {
            Some((k, v)) if !k.contains('=') => (k, v, true),
            _ => match s.split_once('=') {
                Some((k, v)) => (k, v, false),
                None => return Err(format!("'{s}': expected KEY=VALUE (or KEY!=VALUE)")),
            },
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("'{s}': the key is empty"));
        }
        if !key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
            return Err(format!("'{s}': a key is letters, digits, '_', '-' or '.'"));
        }
        Ok(Matcher { key: key.to_string(), value: value.to_string(), negate })
    }

    /// Does the alert hold this matcher?
    pub fn matches(&self, a: &Alert) -> bool {
        let glob = glob_regex(&self.value);
        let hit = |v: &str| glob.as_ref().map(|re| re.is_match(v)).unwrap_or(false);
        let found = match self.key.as_str() {
            "name" => hit(a.name()),
            "subject" => hit(a.subject.as_deref().unwrap_or("")),
            "topic" => hit(&a.topic),
            "level" => hit(a.was.unwrap_or(a.level).as_str()) || hit(a.level.as_str()),
            "kind" => hit(a.source_kind()),
            "title" => hit(&a.title),
            "status" => hit(if a.is_resolved() { "resolved" } else { "firing" }),
            "label" => a.label_names().iter().any(|n| hit(n)),
            other => a.label_map().iter().any(|(k, v)| k == other && hit(v)),
        };
        found != self.negate
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}{}", self.key, if self.negate { "!=" } else { "=" }, self.value)
    }
}

/// One silence.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub(crate) id: u64,
    pub(crate) matchers: Vec<Matcher>,
    pub(crate) starts_at: String,
    pub(crate) ends_at: String,
    #[serde(default)]
    pub(crate) why: String,
    #[serde(default)]
    pub(crate) created_at: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) created_by: String,
    /// A recurring window (`every`, or `cron` with `duration`, in `tz`); `ends_at` is then
    /// empty until the calendar is ended.
    #[serde(flatten)]
    pub(crate) recur: Recurrence,
    /// `{"recover": false}`: recover stands still for what it matches while it is in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) maintenance: Option<Maintenance>,
    /// The reminders already sent about it (`ending`, `long`), each once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) reminded: Vec<String>,
    /// The schedule of a recurring window, read once ([`Silence::compile`]).
    #[serde(skip)]
    pub(crate) schedule: Option<Schedule>,
    /// Why a recurring window's schedule cannot be read (it then never applies).
    #[serde(skip)]
    pub(crate) invalid: Option<String>,
}

impl Silence {
    /// Read the schedule of a recurring window (once, after loading).
    pub(crate) fn compile(&mut self) {
        match self.recur.schedule() {
            Ok(s) => (self.schedule, self.invalid) = (s, None),
            Err(e) => (self.schedule, self.invalid) = (None, Some(e)),
        }
    }

    fn window(&self) -> Option<(OffsetDateTime, OffsetDateTime)> {
        Some((clock::parse_ts(&self.starts_at)?, clock::parse_ts(&self.ends_at)?))
    }

    /// The window in force at `now`, else the next one (none: it is over, or unreadable).
    pub(crate) fn next_window(&self, now: OffsetDateTime) -> Option<(OffsetDateTime, OffsetDateTime)> {
        if self.recur.recurs() && self.schedule.is_none() {
            return None;
        }
        window_at_or_after(&self.starts_at, &self.ends_at, self.schedule.as_ref(), now)
    }

    /// In force at `now`.
    pub(crate) fn active(&self, now: OffsetDateTime) -> bool {
        self.next_window(now).is_some_and(|(s, e)| s <= now && now < e)
    }

    /// Over at `now`.
    pub(crate) fn expired(&self, now: OffsetDateTime) -> bool {
        if self.recur.recurs() {
            return !self.ends_at.is_empty() && clock::parse_ts(&self.ends_at).is_none_or(|e| e <= now);
        }
        self.window().is_none_or(|(_, e)| e <= now)
    }

    /// In force and matching every matcher.
    pub(crate) fn mutes(&self, a: &Alert, now: OffsetDateTime) -> bool {
        self.active(now) && !self.matchers.is_empty() && self.matchers.iter().all(|m| m.matches(a))
    }

    /// The `silence` record of `silence list` and `silence add`.
    pub(crate) fn record(&self, now: OffsetDateTime) -> serde_json::Value {
        let next = self.next_window(now);
        let in_force = next.is_some_and(|(s, e)| s <= now && now < e);
        let state = if self.invalid.is_some() {
            "invalid"
        } else if in_force {
            "active"
        } else if self.expired(now) {
            "expired"
        } else if self.recur.recurs() {
            "scheduled"
        } else {
            "pending"
        };
        let mut r = serde_json::json!({
            "kind": "silence",
            "id": self.id,
            "matchers": self.matchers.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "why": self.why,
            "state": state,
            "created_at": self.created_at,
        });
        let m = r.as_object_mut();
        if let Some(m) = m {
            for (k, v) in [
                ("every", &self.recur.every),
                ("cron", &self.recur.cron),
                ("duration", &self.recur.duration),
                ("tz", &self.recur.tz),
            ] {
                if let Some(v) = v {
                    m.insert(k.into(), serde_json::json!(v));
                }
            }
            if (self.recur.recurs() || !in_force)
                && let Some((s, e)) = next
            {
                let zone = self.schedule.as_ref().map(Schedule::zone);
                let local = |t: OffsetDateTime| match zone {
                    Some(z) => z.local(t).format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
                    None => clock::fmt_ts(t),
                };
                m.insert("next_starts_at".into(), serde_json::json!(local(s)));
                m.insert("next_ends_at".into(), serde_json::json!(local(e)));
            }
            m.insert("in_force".into(), serde_json::json!(in_force));
            if let Some(mt) = &self.maintenance {
                m.insert("maintenance".into(), serde_json::json!({"recover": mt.recover}));
            }
            if let Some(e) = &self.invalid {
                m.insert("error".into(), serde_json::json!(e));
            }
            m.insert("timestamp".into(), serde_json::json!(clock::fmt_ts(now)));
        }
        r
    }
}

/// The silences file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Silences {
    #[serde(default)]
    pub(crate) next_id: u64,
    #[serde(default)]
    pub(crate) silences: Vec<Silence>,
}

impl Silences {
    /// Read the file (none yet: no silences).
    pub(crate) fn load(path: &Path) -> Result<Silences> {
        let mut file: Silences = store::read_json(path, store::kinds::NOTIFY_SMALL)?.unwrap_or_default();
        file.silences.iter_mut().for_each(Silence::compile);
        Ok(file)
    }

    /// The first silence that mutes the alert.
    pub fn muting(&self, a: &Alert, now: OffsetDateTime) -> Option<&Silence> {
        self.silences.iter().find(|s| s.mutes(a, now))
    }

    fn prune(&mut self, now: OffsetDateTime) {
        self.silences.retain(|s| {
            if s.recur.recurs() && s.ends_at.is_empty() {
                return true;
            }
            match clock::parse_ts(&s.ends_at) {
                Some(end) => (now - end).whole_seconds() < KEEP_EXPIRED_S,
                None => false,
            }
        });
    }
}

/// A silence about to end is reminded of this long before its end (once)...
pub(crate) const REMIND_BEFORE_END_S: i64 = 15 * 60;
/// ... when it lasts at least this long.
const REMIND_MIN_LENGTH_S: i64 = 3600;
/// A silence in force this long is reminded of (once): it may have been forgotten.
pub(crate) const REMIND_LONG_S: i64 = 7 * 86_400;

/// Which reminder a one-off silence is due at `now`, if any: `ending` (it ends within 15
/// minutes, and lasts an hour or more) or `long` (in force for 7 days).
fn reminder_due(s: &Silence, now: OffsetDateTime) -> Option<&'static str> {
    if s.recur.recurs() || !s.active(now) {
        return None;
    }
    let (start, end) = s.window()?;
    let (left, length, age) =
        ((end - now).whole_seconds(), (end - start).whole_seconds(), (now - start).whole_seconds());
    if age >= REMIND_LONG_S && !s.reminded.iter().any(|r| r == "long") {
        return Some("long");
    }
    if left <= REMIND_BEFORE_END_S && length >= REMIND_MIN_LENGTH_S && !s.reminded.iter().any(|r| r == "ending") {
        return Some("ending");
    }
    None
}

/// The reminders due at `now` about silences (each once), as `info` alerts; unless
/// `dry_run`, marked as sent in the file (under its lock).
pub(crate) fn reminders(path: &Path, file: &Silences, now: OffsetDateTime, dry_run: bool) -> Result<Vec<Alert>> {
    if !file.silences.iter().any(|s| reminder_due(s, now).is_some()) {
        return Ok(Vec::new());
    }
    let stamp = clock::fmt_ts(now);
    let make = |s: &Silence, what: &str| -> Alert {
        let ms: Vec<String> = s.matchers.iter().map(ToString::to_string).collect();
        let why = if s.why.is_empty() { String::new() } else { format!(" ({})", s.why) };
        let left = s.window().map(|(_, e)| clock::human_duration((e - now).whole_seconds().max(0) as u64));
        let (title, message) = match what {
            "ending" => (
                format!("Silence {} ends soon", s.id),
                format!(
                    "silence {} [{}]{why} ends at {} (in {}): what it holds will alert again",
                    s.id,
                    ms.join(" "),
                    s.ends_at,
                    left.unwrap_or_default()
                ),
            ),
            _ => (
                format!("Silence {} in force for 7 days", s.id),
                format!(
                    "silence {} [{}]{why} has held alerts since {} and runs until {}: is it still wanted? (notify silence expire {})",
                    s.id,
                    ms.join(" "),
                    s.starts_at,
                    s.ends_at,
                    s.id
                ),
            ),
        };
        let mut a =
            Alert::new(&format!("silence:{}:{what}", s.id), crate::record::Level::Info, &title, &message, &stamp);
        a.extra.insert("silence".into(), serde_json::json!({"id": s.id, "reminder": what}));
        a
    };
    if dry_run {
        return Ok(file.silences.iter().filter_map(|s| reminder_due(s, now).map(|w| make(s, w))).collect());
    }
    store::update_json(path, store::kinds::NOTIFY_SMALL, store::Perm::Private, |f: &mut Silences| {
        let mut out = Vec::new();
        for s in &mut f.silences {
            if let Some(what) = reminder_due(s, now) {
                out.push(make(s, what));
                s.reminded.push(what.to_string());
            }
        }
        Ok(out)
    })
}

/// Add a silence under the file's lock; returns it.
pub(crate) fn add(path: &Path, mut s: Silence, now: OffsetDateTime) -> Result<Silence> {
    store::update_json(path, store::kinds::NOTIFY_SMALL, store::Perm::Private, |file: &mut Silences| {
        file.prune(now);
        let max = file.silences.iter().map(|s| s.id).max().unwrap_or(0);
        s.id = file.next_id.max(max) + 1;
        file.next_id = s.id;
        file.silences.push(s.clone());
        s.compile();
        Ok(s)
    })
}

/// End a silence now, under the file's lock; returns it, or an error when there is none by
/// that id.
pub(crate) fn expire(path: &Path, id: u64, now: OffsetDateTime) -> Result<Silence> {
    store::update_json(path, store::kinds::NOTIFY_SMALL, store::Perm::Private, |file: &mut Silences| {
        let stamp = clock::fmt_ts(now);
        let found = file.silences.iter_mut().find(|s| s.id == id);
        let Some(s) = found else {
            return Err(Error::usage(format!(
                "silence expire: no silence with id {id} (see `notify silence list --all`)"
            )));
        };
        if !s.expired(now) {
            s.ends_at = stamp.clone();
            if clock::parse_ts(&s.starts_at).is_none_or(|t| t > now) {
                s.starts_at = stamp;
            }
        }
        let mut out = s.clone();
        out.compile();
        file.prune(now);
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Level;

    fn alert(name: &str, level: Level) -> Alert {
        let mut a = Alert::new(&format!("check:{name}"), level, &format!("{name} is failing"), "down: x", "t");
        a.subject = Some(format!("check:{name}"));
        a.labels = Some(serde_json::json!({"kind": "check", "name": name, "team": "web"}));
        a
    }

    fn m(s: &str) -> Matcher {
        Matcher::parse(s).unwrap()
    }

    #[test]
    fn matchers_with_globs_labels_and_negation() {
        let a = alert("api-eu", Level::Error);
        assert!(m("name=api-*").matches(&a));
        assert!(m("name=api-??").matches(&a));
        assert!(!m("name=api").matches(&a));
        assert!(m("subject=check:*").matches(&a));
        assert!(m("kind=check").matches(&a));
        assert!(m("team=web").matches(&a));
        assert!(m("level!=critical").matches(&a));
        assert!(!m("level!=error").matches(&a));
        assert!(m("title=*(x)*").matches(&alert("(x)", Level::Error)), "regex characters are literal");
        assert!(Matcher::parse("nokey").is_err());
        assert!(Matcher::parse("=v").is_err());
        assert_eq!(m("a!=b").to_string(), "a!=b");
        assert_eq!(m("url=http://x?a=b").value, "http://x?a=b");
    }

    #[test]
    fn windows_and_ids() {
        let dir = std::env::temp_dir().join(format!("pitcrew-silence-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("silences.json");
        let now = clock::parse_ts("2026-11-23T10:00:00Z").unwrap();
        let mk = |start: &str, end: &str| Silence {
            id: 0,
            matchers: vec![m("name=api*")],
            starts_at: start.into(),
            ends_at: end.into(),
            why: "deploy".into(),
            created_at: clock::fmt_ts(now),
            created_by: String::new(),
            recur: Recurrence::default(),
            maintenance: None,
            reminded: Vec::new(),
            schedule: None,
            invalid: None,
        };
        let s1 = add(&path, mk("2026-11-23T09:00:00Z", "2026-11-23T11:00:00Z"), now).unwrap();
        let s2 = add(&path, mk("2026-11-23T12:00:00Z", "2026-11-23T13:00:00Z"), now).unwrap();
        assert_eq!((s1.id, s2.id), (1, 2));
        let file = Silences::load(&path).unwrap();
        let a = alert("api", Level::Error);
        assert_eq!(file.muting(&a, now).map(|s| s.id), Some(1));
        let later = clock::parse_ts("2026-11-23T12:30:00Z").unwrap();
        assert_eq!(file.muting(&a, later).map(|s| s.id), Some(2), "a maintenance window starts later");
        let e = expire(&path, 1, now).unwrap();
        assert!(e.expired(now));
        assert!(Silences::load(&path).unwrap().muting(&a, now).is_none());
        assert!(expire(&path, 9, now).is_err());
        let s3 = add(&path, mk("2026-11-23T09:00:00Z", "2026-11-23T11:00:00Z"), now).unwrap();
        assert_eq!(s3.id, 3, "ids are never reused");
    }
}
