//! The lifecycle history: every event of an alert's life as notify raised, held, sent and
//! resolved it (`state/alerts/`), and every restart recover ran (`state/restarts/`).
//!
//! Both are directories of one NDJSON file per UTC day, exactly like the metrics
//! ([`crate::store::daily`]): writers only append whole lines to the current day's file, so
//! concurrent runs never interleave; `rollup compact` gzips closed days and `rollup prune`
//! deletes days past retention, with the same code that keeps the metrics. `rollup incidents`
//! joins them with the metrics into incidents (first failing check, first alert, first
//! acknowledgement, restarts, first good check).
//!
//! An alert event: `{kind: "alert_event", event, subject, name, topic, level, title, since?,
//! sinks: [{sink, delivered, error?, at}], by?, timestamp}`. A restart: recover's `recovery`
//! record with `kind: "restart"` and `started` (when the command began).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::error::Result;
use crate::record::Level;
use crate::store::daily::{self, Family};

/// The alert history's directory, under the state directory.
pub const ALERTS_DIR: &str = "alerts";
/// The restart history's directory, under the state directory.
pub const RESTARTS_DIR: &str = "restarts";

/// The alert history, for prune and compact.
pub const ALERTS: Family = Family { kind: "history_file", noun: "alert history" };
/// The restart history, for prune and compact.
pub const RESTARTS: Family = Family { kind: "history_file", noun: "restart history" };

/// `STATE/alerts`.
pub fn alerts_dir(state: &Path) -> PathBuf {
    state.join(ALERTS_DIR)
}

/// `STATE/restarts`.
pub fn restarts_dir(state: &Path) -> PathBuf {
    state.join(RESTARTS_DIR)
}

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// Raised: the first word of an incident (or of a level worse than the one announced),
    /// sent or queued for the sinks.
    Fired,
    /// A reminder of a subject still bad.
    Repeated,
    /// A person said they are on it (`notify ack`).
    Acknowledged,
    /// Announced again at a worse level than the incident's first word (an error that became
    /// critical, a restart that ran out of attempts).
    Escalated,
    /// Held back by a silence (nobody was told).
    Silenced,
    /// The subject is good again, and that was announced.
    Resolved,
    /// A sink took an alert from the outbox, later than it was raised.
    Delivered,
    /// Sent to the next level of the escalation policy (`alerting.escalate`): nobody had
    /// acknowledged it.
    Paged,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Fired => "fired",
            Event::Repeated => "repeated",
            Event::Acknowledged => "acknowledged",
            Event::Escalated => "escalated",
            Event::Silenced => "silenced",
            Event::Resolved => "resolved",
            Event::Delivered => "delivered",
            Event::Paged => "paged",
        }
    }
}

/// Which sink took an alert (or did not), and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkTook {
    pub sink: String,
    pub delivered: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub at: String,
}

/// One event of an alert's life, a line of `state/alerts/DAY.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub kind: String,
    pub event: Event,
    /// notify's subject key: `check:api`, `recovery:api`, `monitoring_gap:...`; empty for
    /// an alert sent as it came.
    #[serde(default)]
    pub subject: String,
    /// What the alert is about: the service, agent, task.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub topic: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    #[serde(default)]
    pub title: String,
    /// When the subject turned bad, as notify remembers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sinks: Vec<SinkTook>,
    /// Who acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    pub timestamp: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl AlertEvent {
    pub fn new(event: Event, subject: &str, name: &str, timestamp: &str) -> AlertEvent {
        AlertEvent {
            kind: "alert_event".into(),
            event,
            subject: subject.to_string(),
            name: name.to_string(),
            topic: String::new(),
            level: None,
            title: String::new(),
            since: None,
            sinks: Vec::new(),
            by: None,
            timestamp: timestamp.to_string(),
            extra: Map::new(),
        }
    }
}

/// Append `records` to the file of `now`'s day (UTC) in `dir`, one whole line each.
pub fn append<T: Serialize>(dir: &Path, now: OffsetDateTime, records: &[T]) -> Result<()> {
    let day = now.to_offset(time::UtcOffset::UTC).date();
    for r in records {
        daily::append(dir, day, r)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_land_in_the_day_file() {
        let dir = std::env::temp_dir().join(format!("pitcrew-history-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let now = crate::clock::parse_ts("2026-11-23T23:59:59.500Z").unwrap();
        let mut e = AlertEvent::new(Event::Acknowledged, "check:api", "api", "2026-11-23T23:59:59.500Z");
        e.by = Some("ops".into());
        append(&dir, now, &[e.clone()]).unwrap();
        let text = std::fs::read_to_string(dir.join("2026-11-23.jsonl")).unwrap();
        assert!(text.starts_with("{\"kind\":\"alert_event\",\"event\":\"acknowledged\""), "{text}");
        let back: AlertEvent = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(back, e);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
