//! The record kinds that travel through the pipe, as serde types.
//!
//! Every record has `kind` and `timestamp`; field names are snake_case except board tasks,
//! which keep the Agent Ops Kit's `createdAt`/`updatedAt`. A line without `kind` that has
//! `name` and `status` is the kit's metric line and is read as a `check`. Each type keeps the
//! fields it does not know in `extra`, so a record read and written again loses nothing.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// The kinds of record pitcrew knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Check,
    Recovery,
    Uptime,
    Task,
    Tick,
    Heartbeat,
    Cell,
    Agent,
    Finding,
    Alert,
    /// A record of a kind pitcrew does not know (passed through untouched).
    Unknown,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Check => "check",
            Kind::Recovery => "recovery",
            Kind::Uptime => "uptime",
            Kind::Task => "task",
            Kind::Tick => "tick",
            Kind::Heartbeat => "heartbeat",
            Kind::Cell => "cell",
            Kind::Agent => "agent",
            Kind::Finding => "finding",
            Kind::Alert => "alert",
            Kind::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Kind {
        match s {
            "check" => Kind::Check,
            "recovery" => Kind::Recovery,
            "uptime" => Kind::Uptime,
            "task" => Kind::Task,
            "tick" => Kind::Tick,
            "heartbeat" => Kind::Heartbeat,
            "cell" => Kind::Cell,
            "agent" => Kind::Agent,
            "finding" => Kind::Finding,
            "alert" => Kind::Alert,
            _ => Kind::Unknown,
        }
    }
}

/// The kind of a parsed line. The Agent Ops Kit's metric line (`name` and `status`, no `kind`) is a
/// check.
pub fn kind_of(v: &Value) -> Kind {
    match v.get("kind") {
        Some(Value::String(k)) => Kind::parse(k),
        Some(_) => Kind::Unknown,
        None if v.get("name").is_some_and(Value::is_string) && v.get("status").is_some() => Kind::Check,
        None => Kind::Unknown,
    }
}

/// A string field of a JSON object, or "".
pub fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Health of a check. Read in any letter case (`DOWN` is `down`), written in lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Up,
    Degraded,
    Down,
}

impl<'de> Deserialize<'de> for CheckStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CheckStatus, D::Error> {
        let s = String::deserialize(d)?;
        CheckStatus::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("status '{s}' is not up, degraded or down")))
    }
}

impl CheckStatus {
    /// `up`, `degraded` or `down`, in any letter case.
    pub fn parse(s: &str) -> Option<CheckStatus> {
        let s = s.trim();
        [CheckStatus::Up, CheckStatus::Degraded, CheckStatus::Down]
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Up => "up",
            CheckStatus::Degraded => "degraded",
            CheckStatus::Down => "down",
        }
    }

    /// The Agent Ops Kit's text-report tag: `[OK]`, `[WARN]`, `[FAIL]`.
    pub fn tag(self) -> &'static str {
        match self {
            CheckStatus::Up => "OK",
            CheckStatus::Degraded => "WARN",
            CheckStatus::Down => "FAIL",
        }
    }
}

fn kind_check() -> String {
    "check".into()
}

/// One check of one service: the Agent Ops Kit's metric line plus kind, type, target and
/// type-specific fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    #[serde(default = "kind_check")]
    pub kind: String,
    pub name: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub check_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub status: CheckStatus,
    #[serde(default)]
    pub detail: String,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub latency_ms: u64,
    #[serde(default)]
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_left: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_gb: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perfdata: Option<Vec<Perf>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_s: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Check {
    /// A new check record with the fields every check has.
    pub fn new(name: &str, check_type: &str, target: &str, status: CheckStatus, detail: String) -> Check {
        Check {
            kind: kind_check(),
            name: name.to_string(),
            check_type: Some(check_type.to_string()),
            target: if target.is_empty() { None } else { Some(target.to_string()) },
            status,
            detail,
            latency_ms: 0,
            timestamp: String::new(),
            suppressed_by: None,
            http_status: None,
            days_left: None,
            not_after: None,
            free_gb: None,
            pids: None,
            exit_code: None,
            perfdata: None,
            age_s: None,
            extra: Map::new(),
        }
    }

    /// The Agent Ops Kit's text line: `[OK] name - detail (12ms)`.
    pub fn text_line(&self) -> String {
        let detail = if self.detail.is_empty() { String::new() } else { format!(" - {}", self.detail) };
        let lat = if self.latency_ms > 0 { format!(" ({}ms)", self.latency_ms) } else { String::new() };
        let sup = match &self.suppressed_by {
            Some(p) => format!(" [suppressed: {p} is down]"),
            None => String::new(),
        };
        format!("[{}] {}{}{}{}", self.status.tag(), self.name, detail, lat, sup)
    }
}

/// One Nagios performance-data item: `label=value[UOM];[warn];[crit];[min];[max]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Perf {
    pub label: String,
    pub value: f64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uom: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// Outcome of a restart attempt: the Agent Ops Kit's four outcomes, and `skipped` (not attempted: a
/// dependency is still down, or a dry run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Recovered,
    Failed,
    Cooldown,
    MaxAttempts,
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Recovered => "recovered",
            Outcome::Failed => "failed",
            Outcome::Cooldown => "cooldown",
            Outcome::MaxAttempts => "max_attempts",
            Outcome::Skipped => "skipped",
        }
    }
}

fn kind_recovery() -> String {
    "recovery".into()
}

/// What recover did about one down service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    #[serde(default = "kind_recovery")]
    pub kind: String,
    pub name: String,
    pub outcome: Outcome,
    pub attempt: u32,
    pub max_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub verified: bool,
    #[serde(default)]
    pub detail: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flapping: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts_in_window: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    #[serde(default)]
    pub timestamp: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Recovery {
    /// A `recovery` record of attempt `attempt` (of at most `max_attempts`) for `name`: no
    /// exit code, no time taken, not verified, no detail yet.
    pub fn new(
        name: &str,
        outcome: Outcome,
        attempt: u32,
        max_attempts: u32,
        dry_run: bool,
        timestamp: String,
    ) -> Recovery {
        Recovery {
            kind: kind_recovery(),
            name: name.to_string(),
            outcome,
            attempt,
            max_attempts,
            exit_code: None,
            duration_ms: 0,
            verified: false,
            detail: String::new(),
            flapping: false,
            restarts_in_window: None,
            dry_run,
            timestamp,
            extra: Map::new(),
        }
    }
}

/// A validation problem: a service that could not be read, a broken cell, a bad file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    #[serde(default = "kind_finding")]
    pub kind: String,
    /// The tool or file family that found it (`probe`, `cellscan`, ...).
    pub source: String,
    /// What it is about: a service name, a file, a cell id.
    pub subject: String,
    pub level: Level,
    /// A short machine-friendly problem name (`invalid_service`, `dependency_cycle`, ...).
    pub problem: String,
    pub detail: String,
    #[serde(default)]
    pub timestamp: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn kind_finding() -> String {
    "finding".into()
}

impl Finding {
    pub fn new(source: &str, subject: &str, level: Level, problem: &str, detail: String, timestamp: String) -> Finding {
        Finding {
            kind: kind_finding(),
            source: source.into(),
            subject: subject.into(),
            level,
            problem: problem.into(),
            detail,
            timestamp,
            extra: Map::new(),
        }
    }
}

/// Severity of findings and alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warning,
    Error,
    Critical,
    /// Something bad turned good again (alerts only).
    Recovery,
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Level, D::Error> {
        let s = String::deserialize(d)?;
        Level::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("level '{s}' is not info, warning, error, critical or recovery"))
        })
    }
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
            Level::Critical => "critical",
            Level::Recovery => "recovery",
        }
    }

    /// A level's name in any letter case (`warn` and `recovered` too).
    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().as_str() {
            "info" => Some(Level::Info),
            "warning" | "warn" => Some(Level::Warning),
            "error" => Some(Level::Error),
            "critical" => Some(Level::Critical),
            "recovery" | "recovered" => Some(Level::Recovery),
            _ => None,
        }
    }

    /// The Agent Ops Kit's message prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            Level::Info => "[INFO]",
            Level::Warning => "[WARNING]",
            Level::Error => "[ERROR]",
            Level::Critical => "[CRITICAL]",
            Level::Recovery => "[RECOVERED]",
        }
    }

    /// Severity, for ordering: recovery 0, info 1, warning 2, error 3, critical 4.
    pub fn severity(self) -> u8 {
        match self {
            Level::Recovery => 0,
            Level::Info => 1,
            Level::Warning => 2,
            Level::Error => 3,
            Level::Critical => 4,
        }
    }

    /// True for warning and worse (not recovery).
    pub fn is_bad(self) -> bool {
        matches!(self, Level::Warning | Level::Error | Level::Critical)
    }
}

/// Accept integers, floats (rounded) and numeric strings where an integer is meant, since
/// other writers of metrics lines are not always careful.
pub fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(value_as_u64(&v).unwrap_or(0))
}

/// A JSON number or numeric string as a non-negative integer.
pub fn value_as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => {
            n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0 && f.is_finite()).map(|f| f.round() as u64))
        }
        Value::String(s) => {
            s.trim().parse::<f64>().ok().filter(|f| *f >= 0.0 && f.is_finite()).map(|f| f.round() as u64)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kit_metric_lines_are_checks() {
        let v: Value = serde_json::from_str(
            r#"{"name":"My App","status":"up","latency_ms":145,"timestamp":"2025-01-15T10:30:00Z"}"#,
        )
        .unwrap();
        assert_eq!(kind_of(&v), Kind::Check);
        let c: Check = serde_json::from_value(v).unwrap();
        assert_eq!((c.kind.as_str(), c.latency_ms, c.status), ("check", 145, CheckStatus::Up));
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let line = r#"{"kind":"check","name":"a","status":"down","detail":"x","latency_ms":1.6,"timestamp":"t","zone":"eu","n":[1]}"#;
        let c: Check = serde_json::from_str(line).unwrap();
        assert_eq!(c.latency_ms, 2);
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["zone"], "eu");
        assert_eq!(back["n"][0], 1);
    }

    #[test]
    fn text_line_matches_the_kit() {
        let mut c = Check::new("API", "url", "http://x", CheckStatus::Up, "HTTP 200".into());
        c.latency_ms = 12;
        assert_eq!(c.text_line(), "[OK] API - HTTP 200 (12ms)");
        c.latency_ms = 0;
        c.detail.clear();
        assert_eq!(c.text_line(), "[OK] API");
    }
}
