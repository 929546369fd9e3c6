//! The silences file (`state/silences.json`, written by `notify silence`) as recover and
//! rollup read it: which windows cover a service, when, and whether recover stands still in
//! them.
//!
//! A silence is one-off (`starts_at` .. `ends_at`) or recurring: `every` (`sun 02:00-04:00`)
//! or `cron` with `duration`, in `tz` (UTC when absent), from `starts_at` on and, once
//! `ends_at` is set, until then. `maintenance: {"recover": false}` on a silence makes recover
//! stand still for the services it matches while it is in force.

use std::path::Path;

use regex::Regex;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Schedule, Zone};
use crate::clock;
use crate::error::Result;
use crate::store;

/// The recurrence of a silence (all absent: a one-off window).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recurrence {
    /// Weekdays and times: `sun 02:00-04:00`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// A cron expression; each start opens a window of `duration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// With `cron`: how long each window lasts (`2h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// The time zone of `every` and `cron` (an IANA name; UTC when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
}

impl Recurrence {
    /// True when it recurs.
    pub fn recurs(&self) -> bool {
        self.every.is_some() || self.cron.is_some()
    }

    /// The schedule, when it recurs; an error says what is wrong with it.
    pub fn schedule(&self) -> std::result::Result<Option<Schedule>, String> {
        let zone = match &self.tz {
            Some(tz) => Zone::load(tz)?,
            None => Zone::utc(),
        };
        match (&self.every, &self.cron) {
            (Some(e), None) => Schedule::every(e, zone).map(Some),
            (None, Some(c)) => {
                let d = self.duration.as_deref().ok_or_else(|| format!("cron '{c}' needs a duration"))?;
                let d = clock::parse_duration(d)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| format!("'{d}' is not a duration (90s, 15m, 2h, 1d, 1h30m)"))?;
                Schedule::cron(c, d, zone).map(Some)
            }
            (Some(_), Some(_)) => Err("a window is either every or cron, not both".into()),
            (None, None) => Ok(None),
        }
    }
}

/// When a silence is in force, given its bounds and its schedule (none: one-off).
pub fn window_at_or_after(
    starts_at: &str,
    ends_at: &str,
    schedule: Option<&Schedule>,
    now: OffsetDateTime,
) -> Option<(OffsetDateTime, OffsetDateTime)> {
    let start = clock::parse_ts(starts_at)?;
    let end = if ends_at.is_empty() { None } else { Some(clock::parse_ts(ends_at)?) };
    match schedule {
        None => {
            let end = end?;
            (now < end).then_some((start, end))
        }
        Some(s) => {
            let (a, b) = s.window_at_or_after(now.max(start))?;
            match end {
                Some(e) if a >= e => None,
                Some(e) => Some((a.max(start), b.min(e))),
                None => Some((a.max(start), b)),
            }
        }
    }
}

/// What a silence says about recover.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintenance {
    /// false: recover does not restart what the silence matches while it is in force.
    #[serde(default = "yes")]
    pub recover: bool,
}

fn yes() -> bool {
    true
}

/// A whole-string regular expression for a `*`/`?` glob.
pub fn glob_regex(glob: &str) -> Option<Regex> {
    let mut re = String::with_capacity(glob.len() + 8);
    re.push('^');
    for c in glob.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(c.encode_utf8(&mut [0u8; 4]))),
        }
    }
    re.push('$');
    Regex::new(&re).ok()
}

#[derive(Debug, Clone, Deserialize)]
struct MatcherLite {
    key: String,
    value: String,
    #[serde(default)]
    negate: bool,
}

/// One silence as recover and rollup read it.
#[derive(Debug, Clone, Deserialize)]
pub struct Window {
    /// Its id.
    pub id: u64,
    matchers: Vec<MatcherLite>,
    starts_at: String,
    #[serde(default)]
    ends_at: String,
    /// Why it was made.
    #[serde(default)]
    pub why: String,
    #[serde(flatten)]
    recur: Recurrence,
    /// What it says about recover.
    #[serde(default)]
    pub maintenance: Option<Maintenance>,
    #[serde(skip)]
    schedule: Option<Schedule>,
}

impl Window {
    /// Does it cover the service `name` (its check and its restarts, at level `error`)?
    /// Matchers on keys a service does not have (labels) hold only when negated.
    pub fn covers(&self, name: &str) -> bool {
        let subjects = [format!("check:{name}"), format!("recovery:{name}")];
        !self.matchers.is_empty()
            && self.matchers.iter().all(|m| {
                let Some(re) = glob_regex(&m.value) else { return false };
                let hit = match m.key.as_str() {
                    "name" => re.is_match(name),
                    "subject" | "topic" => subjects.iter().any(|s| re.is_match(s)),
                    "kind" => re.is_match("check") || re.is_match("recovery"),
                    "status" => re.is_match("firing"),
                    "level" => re.is_match("error"),
                    _ => false,
                };
                hit != m.negate
            })
    }

    /// The window in force at `now`, if any.
    pub fn in_force(&self, now: OffsetDateTime) -> Option<(OffsetDateTime, OffsetDateTime)> {
        window_at_or_after(&self.starts_at, &self.ends_at, self.schedule.as_ref(), now).filter(|(s, _)| *s <= now)
    }

    /// Its windows overlapping `[from, to)`.
    pub fn between(&self, from: OffsetDateTime, to: OffsetDateTime) -> Vec<(OffsetDateTime, OffsetDateTime)> {
        let mut out = Vec::new();
        let mut at = from;
        // A window a minute long every minute for a year is 525 600 windows: bounded.
        while out.len() < 100_000 {
            let Some((s, e)) = window_at_or_after(&self.starts_at, &self.ends_at, self.schedule.as_ref(), at) else {
                break;
            };
            if s >= to {
                break;
            }
            out.push((s.max(from), e.min(to)));
            if e <= at {
                break;
            }
            at = e;
        }
        out
    }

    /// A line for people: `silence 3 (deploy)`.
    pub fn label(&self) -> String {
        if self.why.is_empty() { format!("silence {}", self.id) } else { format!("silence {} ({})", self.id, self.why) }
    }
}

#[derive(Debug, Default, Deserialize)]
struct FileLite {
    #[serde(default)]
    silences: Vec<serde_json::Value>,
}

/// The windows of `state_dir/silences.json` (none when there is no file). A silence that
/// cannot be read, or whose schedule is wrong, is left out and said in the warnings.
pub fn load(state_dir: &Path) -> Result<(Vec<Window>, Vec<String>)> {
    let path = state_dir.join("silences.json");
    let file: FileLite = store::read_json(&path, store::kinds::NOTIFY_SMALL)?.unwrap_or_default();
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for (i, v) in file.silences.into_iter().enumerate() {
        match serde_json::from_value::<Window>(v) {
            Ok(mut w) => match w.recur.schedule() {
                Ok(s) => {
                    w.schedule = s;
                    out.push(w);
                }
                Err(e) => warnings.push(format!("{}: silence {}: {e}; left out", path.display(), w.id)),
            },
            Err(e) => warnings.push(format!("{}: silences[{i}]: {e}; left out", path.display())),
        }
    }
    Ok((out, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(v: serde_json::Value) -> Window {
        let mut w: Window = serde_json::from_value(v).unwrap();
        w.schedule = w.recur.schedule().unwrap();
        w
    }

    #[test]
    fn covers_services_by_their_keys() {
        let w = window(serde_json::json!({"id": 1, "matchers": [{"key": "name", "value": "db-*"},
            {"key": "level", "value": "critical", "negate": true}], "starts_at": "2026-12-01T00:00:00Z",
            "ends_at": "2026-12-02T00:00:00Z"}));
        assert!(w.covers("db-1"));
        assert!(!w.covers("api"));
        let team = window(serde_json::json!({"id": 2, "matchers": [{"key": "team", "value": "x"}],
            "starts_at": "2026-12-01T00:00:00Z", "ends_at": "2026-12-02T00:00:00Z"}));
        assert!(!team.covers("db-1"), "a label a service does not have");
    }

    #[test]
    fn recurring_windows_within_their_bounds() {
        let w = window(serde_json::json!({"id": 1, "matchers": [{"key": "name", "value": "db"}],
            "starts_at": "2026-12-01T00:00:00Z", "ends_at": "", "every": "sun 02:00-04:00", "tz": "Europe/Berlin"}));
        let t = |s: &str| clock::parse_ts(s).unwrap();
        assert!(w.in_force(t("2026-12-06T01:30:00Z")).is_some());
        assert!(w.in_force(t("2026-12-06T03:30:00Z")).is_none());
        let all = w.between(t("2026-12-01T00:00:00Z"), t("2026-12-31T00:00:00Z"));
        assert_eq!(all.len(), 4, "{all:?}");
    }
}
