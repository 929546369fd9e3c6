//! The `alert` record: what notify raises, sends and writes, and what other tools (tickmon's
//! RCA issues) put on the stream for notify to send as they are.
//!
//! `{kind:"alert", topic, level, title, message, body?, labels?, subject?, status:
//! firing|resolved, sinks:[{sink, delivered, error?}], suppressed?, timestamp}`, plus the
//! fields notify adds to alerts raised by its rules: `state` (the subject's state word:
//! `down`, `missing`, ...), `since` (when the subject turned bad), `was` (on a resolved alert:
//! the level it had), `repeat` (a reminder of a subject still bad), `suppressed_by` (the
//! parent a child was mentioned under) and `also` (the children mentioned under a parent).
//! Unknown fields are kept.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::record::Level;

fn kind_alert() -> String {
    "alert".into()
}

/// Firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AlertStatus {
    #[default]
    Firing,
    Resolved,
}

/// Why an alert was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Suppressed {
    /// Its topic was sent within `rate_limit_seconds`.
    RateLimit,
    /// The same alert came twice in one run.
    Duplicate,
    /// The subject has not been bad for `--after` runs yet.
    Threshold,
    /// A silence matches it.
    Silenced,
    /// Its parent is down (`suppressed_by`); it is mentioned under the parent instead.
    Inhibited,
    /// A reminder that no sink wanted yet: each had one within its own repeat interval
    /// (`<sink>_repeat_interval_seconds`, a day for Gitea).
    Cadence,
}

impl Suppressed {
    pub fn as_str(self) -> &'static str {
        match self {
            Suppressed::RateLimit => "rate_limit",
            Suppressed::Duplicate => "duplicate",
            Suppressed::Threshold => "threshold",
            Suppressed::Silenced => "silenced",
            Suppressed::Inhibited => "inhibited",
            Suppressed::Cadence => "cadence",
        }
    }
}

/// What one sink did with an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SinkResult {
    pub sink: String,
    pub delivered: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Set by `--dry-run`: nothing was sent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Set by `--dry-run`: what the sink would have been sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendered: Option<Value>,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    #[serde(default = "kind_alert")]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) topic: String,
    pub(crate) level: Level,
    #[serde(default)]
    pub(crate) title: String,
    #[serde(default)]
    pub(crate) message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) body: Option<String>,
    /// An object of label names to values (Alertmanager labels), or an array of names (Gitea
    /// issue labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) labels: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) subject: Option<String>,
    #[serde(default)]
    pub(crate) status: AlertStatus,
    #[serde(default)]
    pub(crate) sinks: Vec<SinkResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) suppressed: Option<Suppressed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) was: Option<Level>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) repeat: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) suppressed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) also: Vec<String>,
    #[serde(default)]
    pub(crate) timestamp: String,
    #[serde(flatten)]
    pub(crate) extra: Map<String, Value>,
}

impl Alert {
    /// A new firing alert with the fields every alert has.
    pub fn new(topic: &str, level: Level, title: &str, message: &str, timestamp: &str) -> Alert {
        Alert {
            kind: kind_alert(),
            topic: topic.to_string(),
            level,
            title: title.to_string(),
            message: message.to_string(),
            body: None,
            labels: None,
            subject: None,
            status: AlertStatus::Firing,
            sinks: Vec::new(),
            suppressed: None,
            state: None,
            since: None,
            was: None,
            repeat: false,
            suppressed_by: None,
            also: Vec::new(),
            timestamp: timestamp.to_string(),
            extra: Map::new(),
        }
    }

    /// True for a resolved alert (status resolved, or level recovery).
    pub(crate) fn is_resolved(&self) -> bool {
        self.status == AlertStatus::Resolved || self.level == Level::Recovery
    }

    /// A string label (object form), or "".
    pub(crate) fn label(&self, key: &str) -> &str {
        match &self.labels {
            Some(Value::Object(m)) => m.get(key).and_then(Value::as_str).unwrap_or(""),
            _ => "",
        }
    }

    /// Label names of the array form (`["agent-health", ...]`), for issue trackers.
    pub(crate) fn label_names(&self) -> Vec<String> {
        match &self.labels {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(String::from).collect(),
            _ => Vec::new(),
        }
    }

    /// The object form of the labels, string values only.
    pub(crate) fn label_map(&self) -> Vec<(String, String)> {
        match &self.labels {
            Some(Value::Object(m)) => m
                .iter()
                .filter_map(|(k, v)| match v {
                    Value::String(s) => Some((k.clone(), s.clone())),
                    Value::Number(n) => Some((k.clone(), n.to_string())),
                    Value::Bool(b) => Some((k.clone(), b.to_string())),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The name of what the alert is about: the `name` label, else the subject, else the title.
    pub(crate) fn name(&self) -> &str {
        let n = self.label("name");
        if !n.is_empty() {
            return n;
        }
        match &self.subject {
            Some(s) if !s.is_empty() => s,
            _ => &self.title,
        }
    }

    /// The record kind the alert was raised from (`check`, `tick`, ...), or `alert`.
    pub(crate) fn source_kind(&self) -> &str {
        let k = self.label("kind");
        if k.is_empty() { "alert" } else { k }
    }

    /// True when it was raised by notify's rules (as opposed to sent as it came).
    pub(crate) fn raised_by_rules(&self) -> bool {
        self.state.is_some()
    }

    /// The same alert without delivery results, as queued and as sent to webhooks.
    pub fn undelivered(&self) -> Alert {
        let mut a = self.clone();
        a.sinks.clear();
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tickmons_rca_alerts_and_keeps_unknown_fields() {
        let line = r##"{"kind":"alert","topic":"agent-health","level":"critical","title":"RCA-AGENT: a failed","message":"m","body":"# RCA","labels":["agent-health","rca-required"],"subject":"tick:a:2026-11","status":"firing","sinks":[],"timestamp":"t","tick_file":"x"}"##;
        let a: Alert = serde_json::from_str(line).unwrap();
        assert_eq!(a.label_names(), vec!["agent-health", "rca-required"]);
        assert_eq!(a.name(), "tick:a:2026-11");
        assert!(!a.raised_by_rules());
        let back = serde_json::to_value(&a).unwrap();
        assert_eq!(back["tick_file"], "x");
        assert!(back.get("suppressed").is_none());
    }

    #[test]
    fn minimal_alerts_default_to_firing() {
        let a: Alert = serde_json::from_str(r#"{"level":"warning","title":"t"}"#).unwrap();
        assert_eq!((a.status, a.kind.as_str(), a.is_resolved()), (AlertStatus::Firing, "alert", false));
    }
}
