//! Tick files and months: `ticks/YYYY-MM/<agent>.json`, the grace window, and reading ticks
//! that other writers made (the Agent Tick Protocol's submitter, older versions, hand edits).
//!
//! A tick file holds at least `agent`, `month`, `status` (healthy, degraded, critical or
//! offline), `vitals` (`gateway_running`, `home_directory_accessible`, `config_valid`, all
//! booleans, plus any extra ones), `capabilities` (`{name: bool}`) and `timestamp`. Readers
//! also accept `agent_id` for the agent and `submitted_at` or `tick_time` for the time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};
use time::{Date, OffsetDateTime};

use crate::clock;
use crate::util::is_safe_id;

/// The three vitals every tick has.
pub(crate) const CORE_VITALS: [&str; 3] = ["gateway_running", "home_directory_accessible", "config_valid"];

/// The status an agent reports in its tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TickStatus {
    Healthy,
    Degraded,
    Critical,
    Offline,
}

impl TickStatus {
    pub(crate) fn parse(s: &str) -> Option<TickStatus> {
        match s.trim().to_ascii_lowercase().as_str() {
            "healthy" => Some(TickStatus::Healthy),
            "degraded" => Some(TickStatus::Degraded),
            "critical" => Some(TickStatus::Critical),
            "offline" => Some(TickStatus::Offline),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TickStatus::Healthy => "healthy",
            TickStatus::Degraded => "degraded",
            TickStatus::Critical => "critical",
            TickStatus::Offline => "offline",
        }
    }

    /// Critical and offline are failures that need an RCA; degraded is only watched.
    pub(crate) fn is_failure(self) -> bool {
        matches!(self, TickStatus::Critical | TickStatus::Offline)
    }
}

/// A calendar month, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    first: Date,
}

impl Month {
    /// `YYYY-MM`.
    pub fn parse(s: &str) -> Option<Month> {
        clock::parse_month(s).map(|first| Month { first })
    }

    /// The month `t` falls in (UTC).
    pub fn of(t: OffsetDateTime) -> Month {
        let d = t.to_offset(time::UtcOffset::UTC).date();
        Month { first: d.replace_day(1).unwrap_or(d) }
    }

    /// `YYYY-MM`.
    pub fn label(self) -> String {
        clock::fmt_month(self.first)
    }

    /// Midnight UTC of the first day.
    pub(crate) fn start(self) -> OffsetDateTime {
        self.first.midnight().assume_utc()
    }

    /// When the tick of this month is due: `grace` after the month starts.
    pub fn due(self, grace: Duration) -> OffsetDateTime {
        clock::add_or_latest(self.start(), grace)
    }

    /// The month before.
    pub fn previous(self) -> Month {
        match self.first.previous_day() {
            Some(d) => Month { first: d.replace_day(1).unwrap_or(d) },
            None => self,
        }
    }

    /// The month to check when none is named: the one whose grace window ended last. With
    /// the 72-hour window that is the Agent Tick Protocol's rule: the previous month on days 1 to 3, else
    /// the current month.
    pub fn default_for_check(now: OffsetDateTime, grace: Duration) -> Month {
        let this = Month::of(now);
        if now < this.due(grace) { this.previous() } else { this }
    }
}

/// `ticks/YYYY-MM/<agent>.json`. The agent id must have been validated with `is_safe_id`.
pub(crate) fn tick_path(ticks_dir: &Path, month: Month, agent: &str) -> PathBuf {
    ticks_dir.join(month.label()).join(format!("{agent}.json"))
}

/// A tick as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    /// The agent it is from, a usable file name.
    pub agent: String,
    pub(crate) month: String,
    pub(crate) status: TickStatus,
    pub(crate) vitals: Map<String, Value>,
    pub(crate) capabilities: Map<String, Value>,
    /// When it was submitted, as written.
    pub(crate) timestamp: Option<String>,
    /// The whole document.
    pub(crate) raw: Map<String, Value>,
}

impl Tick {
    /// When it was submitted, parsed.
    pub fn submitted(&self) -> Option<OffsetDateTime> {
        self.timestamp.as_deref().and_then(clock::parse_ts)
    }

    /// The names of vitals that are false.
    pub fn failed_vitals(&self) -> Vec<String> {
        self.vitals.iter().filter(|(_, v)| v.as_bool() == Some(false)).map(|(k, _)| k.clone()).collect()
    }

    /// The names of capabilities that are false.
    pub fn lost_capabilities(&self) -> Vec<String> {
        self.capabilities.iter().filter(|(_, v)| v.as_bool() == Some(false)).map(|(k, _)| k.clone()).collect()
    }
}

/// Read a tick file: `Ok(None)` when there is none, `Err(why)` when it cannot be used.
pub(crate) fn read_tick(path: &Path, agent: &str) -> Result<Option<Tick>, String> {
    let bytes = match crate::store::read::read(path, crate::store::kinds::TICK) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| crate::ndjson::doc_error(path, &e))?;
    parse_tick(value, Some(agent)).map(Some).map_err(|why| format!("{}: {why}", path.display()))
}

/// Make sense of a tick document. `agent` is the id the file name or the registry gives; a
/// document naming another agent is refused.
pub fn parse_tick(value: Value, agent: Option<&str>) -> Result<Tick, String> {
    let Value::Object(map) = value else {
        return Err("a tick must be a JSON object".into());
    };
    let named = ["agent", "agent_id"].iter().find_map(|k| map.get(*k).and_then(Value::as_str)).map(str::to_string);
    let agent = match (named, agent) {
        (Some(n), Some(a)) if n != a => return Err(format!("the tick names agent '{n}', not '{a}'")),
        (Some(n), _) => n,
        (None, Some(a)) => a.to_string(),
        (None, None) => return Err("agent: missing".into()),
    };
    if !is_safe_id(&agent) {
        return Err(format!("agent: '{agent}' is not a valid agent id"));
    }
    let status = match map.get("status") {
        Some(Value::String(s)) => TickStatus::parse(s)
            .ok_or_else(|| format!("status: '{s}' is not one of healthy, degraded, critical, offline"))?,
        Some(_) => return Err("status: expected a string".into()),
        None => return Err("status: missing".into()),
    };
    let object = |key: &str| -> Result<Map<String, Value>, String> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(o)) => Ok(o.clone()),
            Some(_) => Err(format!("{key}: expected an object")),
        }
    };
    let vitals = object("vitals")?;
    let capabilities = object("capabilities")?;
    let timestamp = ["timestamp", "submitted_at", "tick_time"]
        .iter()
        .find_map(|k| map.get(*k).and_then(Value::as_str))
        .map(String::from);
    let month = map.get("month").and_then(Value::as_str).unwrap_or("").to_string();
    Ok(Tick { agent, month, status, vitals, capabilities, timestamp, raw: map })
}

/// The latest tick of `agent` before `month`, looking back at most `months` months.
pub(crate) fn last_tick_before(ticks_dir: &Path, agent: &str, month: Month, months: u32) -> Option<(Month, Tick)> {
    let mut m = month;
    for _ in 0..months {
        m = m.previous();
        if let Ok(Some(t)) = read_tick(&tick_path(ticks_dir, m, agent), agent) {
            return Some((m, t));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> OffsetDateTime {
        clock::parse_ts(s).unwrap()
    }

    const GRACE: Duration = Duration::from_secs(72 * 3600);

    #[test]
    fn the_default_month_follows_the_tick_protocol_rule() {
        let m = |s| Month::default_for_check(at(s), GRACE).label();
        assert_eq!(m("2026-11-01T00:00:00Z"), "2026-10");
        assert_eq!(m("2026-11-03T23:59:59Z"), "2026-10");
        assert_eq!(m("2026-11-04T00:00:00Z"), "2026-11");
        assert_eq!(m("2026-01-02T12:00:00Z"), "2025-12");
        let short = Duration::from_secs(24 * 3600);
        assert_eq!(Month::default_for_check(at("2026-11-02T00:00:00Z"), short).label(), "2026-11");
    }

    #[test]
    fn months_and_deadlines() {
        let m = Month::parse("2026-03").unwrap();
        assert_eq!(m.previous().label(), "2026-02");
        assert_eq!(clock::fmt_ts(m.due(GRACE)), "2026-03-04T00:00:00.000Z");
        assert!(Month::parse("2026-3").is_none());
        // The last month of the calendar has a deadline too (no overflow).
        let last = Month::parse("9999-12").unwrap();
        assert_eq!(clock::fmt_ts(last.due(Duration::from_secs(744 * 3600))), "9999-12-31T23:59:59.999Z");
        assert_eq!(tick_path(Path::new("t"), m, "a1"), PathBuf::from("t/2026-03/a1.json"));
    }

    #[test]
    fn ticks_of_other_writers_are_read() {
        let t = parse_tick(
            json!({"agent_id":"atlas","status":"Critical","vitals":{"gateway_running":false,"config_valid":true},
                   "capabilities":{"code":true,"deploy":false},"submitted_at":"2026-11-01T09:00:00"}),
            Some("atlas"),
        )
        .unwrap();
        assert_eq!(t.status, TickStatus::Critical);
        assert_eq!(t.failed_vitals(), vec!["gateway_running".to_string()]);
        assert_eq!(t.lost_capabilities(), vec!["deploy".to_string()]);
        assert_eq!(clock::fmt_ts(t.submitted().unwrap()), "2026-11-01T09:00:00.000Z");
    }

    #[test]
    fn unusable_ticks_say_why() {
        let e = |v: Value| parse_tick(v, Some("a")).unwrap_err();
        assert!(e(json!([1])).contains("object"));
        assert!(e(json!({"status":"fine"})).contains("status: 'fine'"));
        assert!(e(json!({"agent":"b","status":"healthy"})).contains("names agent 'b'"));
        assert!(e(json!({"status":"healthy","vitals":[]})).contains("vitals: expected an object"));
        assert!(parse_tick(json!({"agent":"../x","status":"healthy"}), None).is_err());
    }
}
