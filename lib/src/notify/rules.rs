//! The rules: what a record says about its subject.
//!
//! Every record kind pitcrew knows is about a subject with a stable key (`check:api`,
//! `tick:atlas:2026-11`, ...), and says the subject is bad at some level, good, or nothing
//! (a restart in cooldown, a tick still pending). The table (also in docs/notify.md):
//!
//! | record | subject | bad when (level) | good when |
//! |---|---|---|---|
//! | check | `check:<name>` | down (error), degraded (warning) | up |
//! | recovery | `recovery:<name>` | failed (error), max_attempts (critical) | recovered |
//! | recovery | `flapping:<name>` | `flapping: true` (warning) | recovered and not flapping |
//! | uptime | `uptime:<name>` | status breach (warning); without status, under 99.5% (warning), under 95% (error) | status ok; without status, 99.5% and over |
//! | tick | `tick:<agent>:<month>` | missing (error), critical, offline (critical), degraded, invalid (warning) | healthy |
//! | heartbeat | `heartbeat:<agent>` | unhealthy (error), degraded (warning) | healthy |
//! | agent | `agent:<cell>/<agent>` | status failed (error) | any other status |
//! | cell | `cell:<cell>` | status failed (error) | any other status |
//! | task | `task:<id>` (`task:<cell>/<id>`) | `stalled_hours` (warning), status failed (error) | neither |
//! | finding | `finding:<source>:<subject>:<problem>` | level warning or worse (its level) | never |
//! | finding, problem `monitoring_gap` | `monitoring_gap:<start>` (`monitoring_gap:<host>:<start>`) | always, once: announced the first time, never again | never |
//!
//! Statuses, outcomes and levels are read in any letter case. A record of one of these kinds
//! that cannot be read (no name, a status outside the list, a field of the wrong type) is
//! rejected as a malformed line (`stdin:N: why`, exit 3), never dropped without a word.

use serde_json::Value;

use crate::record::{self, Kind, Level, str_field};

/// What one record says about one subject.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The stable key: `check:api`.
    pub(crate) subject: String,
    /// The record kind it came from: `check`.
    pub(crate) kind: &'static str,
    /// What people call it: `api`, `atlas (2026-11)`.
    pub(crate) name: String,
    /// The level when bad; `None` when good.
    pub(crate) bad: Option<Level>,
    /// The state in a word or three: `down`, `missing`, `could not be restarted`, `up`.
    pub(crate) state: String,
    /// The record's own explanation (a check's detail).
    pub(crate) detail: String,
    /// The incident's title, the same whatever the level (an issue tracker's title).
    pub(crate) title: String,
    /// The name of the parent this subject is down because of (a check's `suppressed_by`).
    pub(crate) parent: Option<String>,
    /// An event rather than a state (a monitoring gap): announced once, never repeated.
    pub(crate) once: bool,
    pub(crate) timestamp: String,
}

impl Observation {
    fn new(kind: &'static str, subject: String, name: String, title: String) -> Self {
        Observation {
            subject,
            kind,
            name,
            bad: None,
            state: String::new(),
            detail: String::new(),
            title,
            parent: None,
            once: false,
            timestamp: String::new(),
        }
    }

    fn bad(mut self, level: Level, state: &str) -> Self {
        self.bad = Some(level);
        self.state = state.to_string();
        self
    }

    fn good(mut self, state: &str) -> Self {
        self.bad = None;
        self.state = state.to_string();
        self
    }

    fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = d.into();
        self
    }
}

/// What one subject of a kind is called, singular and plural (`service`, `services`).
pub(crate) fn noun(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "check" | "recovery" | "uptime" => ("service", "services"),
        "tick" => ("agent tick", "agent ticks"),
        "heartbeat" => ("agent heartbeat", "agent heartbeats"),
        "agent" => ("agent", "agents"),
        "cell" => ("cell", "cells"),
        "task" => ("task", "tasks"),
        "finding" => ("problem", "problems"),
        _ => ("alert", "alerts"),
    }
}

/// The observations a record makes: none (not a kind the rules read, or a record that says
/// nothing, like a restart in cooldown), one, or two (a recovery record speaks for the
/// restarts and for flapping). A record of a kind the rules read whose fields cannot be
/// understood (a check without a name, a status no tool writes, a field of the wrong type) is
/// an error that says why: it is rejected as a malformed line, never dropped in silence.
/// Statuses and outcomes are read in any letter case.
pub fn observe(v: &Value) -> Result<Vec<Observation>, String> {
    let ts = str_field(v, "timestamp").to_string();
    let mut out = match record::kind_of(v) {
        Kind::Check => check(v)?.into_iter().collect(),
        Kind::Recovery => recovery(v)?,
        Kind::Uptime => uptime(v)?.into_iter().collect(),
        Kind::Tick => tick(v)?.into_iter().collect(),
        Kind::Heartbeat => heartbeat(v)?.into_iter().collect(),
        Kind::Agent => agent(v)?.into_iter().collect(),
        Kind::Cell => cell(v)?.into_iter().collect(),
        Kind::Task => task(v)?.into_iter().collect(),
        Kind::Finding => finding(v)?.into_iter().collect(),
        Kind::Alert | Kind::Unknown => Vec::new(),
    };
    for o in &mut out {
        o.timestamp.clone_from(&ts);
    }
    Ok(out)
}

/// True for the kinds the rules read (their records are consumed, not passed through).
pub(crate) fn reads(kind: Kind) -> bool {
    !matches!(kind, Kind::Alert | Kind::Unknown)
}

fn nonempty(s: &str) -> Option<&str> {
    let s = s.trim();
    if s.is_empty() { None } else { Some(s) }
}

/// What a JSON value is, for messages.
fn what(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A required, non-empty string field (the subject's name).
fn required<'a>(v: &'a Value, kind: &str, key: &str) -> Result<&'a str, String> {
    match v.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim()),
        Some(Value::String(_)) => Err(format!("{kind}: `{key}` is empty")),
        None | Some(Value::Null) => Err(format!("{kind}: no `{key}`")),
        Some(other) => Err(format!("{kind}: `{key}` is {}, not a string", what(other))),
    }
}

/// An optional string field: absent or null is "", a string is itself, anything else is an error.
fn optional<'a>(v: &'a Value, kind: &str, key: &str) -> Result<&'a str, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(s)) => Ok(s.trim()),
        Some(other) => Err(format!("{kind}: `{key}` is {}, not a string", what(other))),
    }
}

/// A status-like field, lower-cased, that must be one of `allowed`.
fn one_of(v: &Value, kind: &str, who: &str, key: &str, allowed: &[&str]) -> Result<String, String> {
    let s = match v.get(key) {
        Some(Value::String(s)) => s.trim().to_ascii_lowercase(),
        None | Some(Value::Null) => return Err(format!("{kind} '{who}': no `{key}` ({})", allowed.join(", "))),
        Some(other) => return Err(format!("{kind} '{who}': `{key}` is {}, not a string", what(other))),
    };
    if allowed.contains(&s.as_str()) {
        Ok(s)
    } else {
        Err(format!("{kind} '{who}': {key} '{s}' is not one of {}", allowed.join(", ")))
    }
}

fn check(v: &Value) -> Result<Option<Observation>, String> {
    let name = required(v, "check", "name")?;
    let status = one_of(v, "check", name, "status", &["up", "degraded", "down"])?;
    let o = Observation::new("check", format!("check:{name}"), name.into(), format!("{name} is failing"))
        .detail(optional(v, "check", "detail")?);
    let mut o = match status.as_str() {
        "down" => o.bad(Level::Error, "down"),
        "degraded" => o.bad(Level::Warning, "degraded"),
        _ => o.good("up"),
    };
    o.parent = nonempty(optional(v, "check", "suppressed_by")?).map(String::from);
    Ok(Some(o))
}

/// Every outcome recover writes.
const OUTCOMES: &[&str] = &["recovered", "failed", "cooldown", "max_attempts", "skipped"];

fn recovery(v: &Value) -> Result<Vec<Observation>, String> {
    let name = required(v, "recovery", "name")?;
    let outcome = one_of(v, "recovery", name, "outcome", OUTCOMES)?;
    if v.get("dry_run").and_then(Value::as_bool) == Some(true) {
        return Ok(Vec::new());
    }
    let detail = optional(v, "recovery", "detail")?;
    let mut out = Vec::new();
    let restarts =
        Observation::new("recovery", format!("recovery:{name}"), name.into(), format!("{name} cannot be restarted"))
            .detail(detail);
    match outcome.as_str() {
        "failed" => out.push(restarts.bad(Level::Error, "could not be restarted")),
        // The restarts are used up: a person has to act. Critical, so that it is said even
        // when the failed attempts before it were announced already.
        "max_attempts" => out.push(restarts.bad(Level::Critical, "needs manual intervention")),
        "recovered" => out.push(restarts.good("restarted")),
        _ => {}
    }
    let flapping = v.get("flapping").and_then(Value::as_bool) == Some(true);
    let fl = Observation::new("recovery", format!("flapping:{name}"), name.into(), format!("{name} is flapping"));
    if flapping {
        let n = v.get("restarts_in_window").and_then(Value::as_u64);
        let why = match n {
            Some(n) => format!("{n} restarts within the flap window"),
            None => "restarted too often".to_string(),
        };
        out.push(fl.bad(Level::Warning, "flapping").detail(why));
    } else if outcome == "recovered" {
        out.push(fl.good("stable").detail(detail));
    }
    Ok(out)
}

/// The Agent Ops Kit's uptime report: OK at 99.5% and over, WARN from 95%, CRITICAL below.
const KIT_OK_PERCENT: f64 = 99.5;
const KIT_WARN_PERCENT: f64 = 95.0;

fn number(v: &Value, kind: &str, who: &str, key: &str) -> Result<Option<f64>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(other) => Err(format!("{kind} '{who}': `{key}` is {}, not a number", what(other))),
    }
}

fn uptime(v: &Value) -> Result<Option<Observation>, String> {
    let name = required(v, "uptime", "name")?;
    let pct = number(v, "uptime", name, "uptime_percent")?;
    let sla = number(v, "uptime", name, "sla_percent")?;
    let detail = match (pct, sla) {
        (Some(p), Some(s)) => format!("{p}% uptime (SLA {s}%)"),
        (Some(p), None) => format!("{p}% uptime"),
        _ => String::new(),
    };
    let sla_o = |title: String| Observation::new("uptime", format!("uptime:{name}"), name.into(), title);
    if !matches!(v.get("status"), None | Some(Value::Null)) {
        let o = sla_o(format!("{name} is below its SLA")).detail(detail);
        return Ok(match one_of(v, "uptime", name, "status", &["ok", "breach"])?.as_str() {
            "breach" => Some(o.bad(Level::Warning, "below SLA")),
            _ => Some(o.good("within SLA")),
        });
    }
    // Without --sla rollup judges nothing: the kit's report thresholds do, so that
    // `rollup --days 7 | notify` tells of services the kit's report marks WARN or CRITICAL.
    // A service without checks says nothing (it never breaches).
    let Some(pct) = pct else { return Ok(None) };
    if v.get("total_checks").and_then(Value::as_u64) == Some(0) {
        return Ok(None);
    }
    let o = sla_o(format!("{name} uptime is low")).detail(detail);
    Ok(Some(if pct < KIT_WARN_PERCENT {
        o.bad(Level::Error, "under 95% uptime")
    } else if pct < KIT_OK_PERCENT {
        o.bad(Level::Warning, "under 99.5% uptime")
    } else {
        o.good("uptime ok")
    }))
}

/// Every status `tickmon check` writes.
const TICK_STATUSES: &[&str] = &["healthy", "degraded", "critical", "offline", "missing", "pending", "invalid"];

/// The title of a tick's incident: the Agent Tick Protocol's RCA title for the failures that
/// need one (tickmon's RCA alerts carry the same title, so an issue tracker sees one issue).
pub(crate) fn tick_title(agent: &str, month: &str, status: &str) -> String {
    let m = if month.is_empty() { String::new() } else { format!(" ({month})") };
    match status {
        "missing" => format!("RCA-AGENT: {agent} failed to submit monthly tick{m}"),
        "critical" | "offline" => format!("RCA-AGENT: {agent} reported {status} status{m}"),
        _ if month.is_empty() => format!("Agent {agent} tick needs attention"),
        _ => format!("Agent {agent} tick for {month} needs attention"),
    }
}

fn tick(v: &Value) -> Result<Option<Observation>, String> {
    let agent = required(v, "tick", "agent")?;
    let month = optional(v, "tick", "month")?;
    let status = one_of(v, "tick", agent, "status", TICK_STATUSES)?;
    let (subject, name) = if month.is_empty() {
        (format!("tick:{agent}"), agent.to_string())
    } else {
        (format!("tick:{agent}:{month}"), format!("{agent} ({month})"))
    };
    let due = optional(v, "tick", "due")?;
    let own = optional(v, "tick", "detail")?;
    let detail = match status.as_str() {
        _ if !own.is_empty() => own.to_string(),
        "missing" if !due.is_empty() => format!("no tick by {due}"),
        "missing" => "no tick submitted".to_string(),
        s => format!("tick reports {s}"),
    };
    let o = Observation::new("tick", subject, name, tick_title(agent, month, &status)).detail(detail);
    Ok(match status.as_str() {
        "missing" => Some(o.bad(Level::Error, "missing")),
        "critical" => Some(o.bad(Level::Critical, "critical")),
        "offline" => Some(o.bad(Level::Critical, "offline")),
        "degraded" => Some(o.bad(Level::Warning, "degraded")),
        "invalid" => Some(o.bad(Level::Warning, "invalid")),
        "healthy" => Some(o.good("healthy")),
        _ => None,
    })
}

fn heartbeat(v: &Value) -> Result<Option<Observation>, String> {
    let agent = required(v, "heartbeat", "agent")?;
    let status = one_of(v, "heartbeat", agent, "status", &["healthy", "degraded", "unhealthy"])?;
    let mut detail = optional(v, "heartbeat", "error")?.to_string();
    if let Some(n) = v.get("consecutive_failures").and_then(Value::as_u64).filter(|n| *n > 0) {
        let f = format!("{n} consecutive failure(s)");
        detail = if detail.is_empty() { f } else { format!("{detail} ({f})") };
    }
    let o = Observation::new(
        "heartbeat",
        format!("heartbeat:{agent}"),
        agent.into(),
        format!("Agent {agent} heartbeat is failing"),
    )
    .detail(detail);
    Ok(match status.as_str() {
        "unhealthy" => Some(o.bad(Level::Error, "unhealthy")),
        "degraded" => Some(o.bad(Level::Warning, "degraded")),
        _ => Some(o.good("healthy")),
    })
}

fn agent(v: &Value) -> Result<Option<Observation>, String> {
    let agent = required(v, "agent", "agent")?;
    let cell = optional(v, "agent", "cell")?;
    let (subject, name, title) = if cell.is_empty() {
        (format!("agent:{agent}"), agent.to_string(), format!("Agent {agent} failed"))
    } else {
        (format!("agent:{cell}/{agent}"), format!("{cell}/{agent}"), format!("Agent {agent} in cell {cell} failed"))
    };
    let status = optional(v, "agent", "status")?.to_ascii_lowercase();
    let task = optional(v, "agent", "current_task")?;
    let detail = if task.is_empty() { String::new() } else { format!("current task {task}") };
    let o = Observation::new("agent", subject, name, title).detail(detail);
    Ok(match status.as_str() {
        "failed" => Some(o.bad(Level::Error, "failed")),
        "" => None,
        s => Some(o.good(s)),
    })
}

fn cell(v: &Value) -> Result<Option<Observation>, String> {
    let cell = required(v, "cell", "cell")?;
    let mission = optional(v, "cell", "mission_name")?;
    let name = if mission.is_empty() { cell.to_string() } else { format!("{cell} ({mission})") };
    let o = Observation::new("cell", format!("cell:{cell}"), name, format!("Cell {cell} failed"));
    Ok(match optional(v, "cell", "status")?.to_ascii_lowercase().as_str() {
        "failed" => Some(o.bad(Level::Error, "failed")),
        "" => None,
        s => Some(o.good(s)),
    })
}

fn task(v: &Value) -> Result<Option<Observation>, String> {
    let id = match v.get("id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        None | Some(Value::Null) => return Err("task: no `id`".into()),
        Some(Value::String(_)) => return Err("task: `id` is empty".into()),
        Some(other) => return Err(format!("task: `id` is {}, not a string or number", what(other))),
    };
    let cell = optional(v, "task", "cell")?;
    let subject = if cell.is_empty() { format!("task:{id}") } else { format!("task:{cell}/{id}") };
    let title_text = nonempty(optional(v, "task", "title")?).unwrap_or(&id).to_string();
    let owner = nonempty(optional(v, "task", "owner")?).or(nonempty(optional(v, "task", "assigned_to")?));
    let o = Observation::new("task", subject, title_text.clone(), format!("Task {id} needs attention: {title_text}"));
    if let Some(h) = number(v, "task", &id, "stalled_hours")? {
        let mut d = format!("in progress for {}h", h.round() as i64);
        if let Some(owner) = owner {
            d.push_str(&format!(", owner {owner}"));
        }
        return Ok(Some(o.bad(Level::Warning, "stalled").detail(d)));
    }
    if optional(v, "task", "status")?.eq_ignore_ascii_case("failed") {
        let d = owner.map(|o| format!("assigned to {o}")).unwrap_or_default();
        return Ok(Some(o.bad(Level::Error, "failed").detail(d)));
    }
    Ok(Some(o.good("not stalled")))
}

fn finding(v: &Value) -> Result<Option<Observation>, String> {
    let source = optional(v, "finding", "source")?;
    let subject = optional(v, "finding", "subject")?;
    let problem = optional(v, "finding", "problem")?;
    if subject.is_empty() && problem.is_empty() {
        return Err("finding: neither `subject` nor `problem`".into());
    }
    let who = if subject.is_empty() { problem } else { subject };
    let level_text = one_of(v, "finding", who, "level", &["info", "warning", "error", "critical"])?;
    let Some(level) = Level::parse(&level_text).filter(|l| l.is_bad()) else { return Ok(None) };
    if problem == "monitoring_gap" {
        return monitoring_gap(v, level).map(Some);
    }
    let name = if problem.is_empty() { subject.to_string() } else { format!("{subject} ({problem})") };
    let title = [source, subject, problem].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join(": ");
    let o = Observation::new("finding", format!("finding:{source}:{subject}:{problem}"), name, title)
        .detail(optional(v, "finding", "detail")?);
    let mut o = o.bad(level, "found");
    // A problem that follows from a check (cellscan's agent behind a gateway that is down):
    // mentioned under that check's alert, as a check's dependants are.
    o.parent = nonempty(optional(v, "finding", "suppressed_by")?).map(String::from);
    Ok(Some(o))
}

/// A gap in the monitoring itself (rollup's report, rollup stale): one subject per gap, keyed
/// by when the silence began, announced once. The same gap seen again (the next report, or
/// the report after the orchestrator told of it while it lasted) says nothing new.
fn monitoring_gap(v: &Value, level: Level) -> Result<Observation, String> {
    let start = optional(v, "finding", "start")?;
    if start.is_empty() {
        return Err("finding: monitoring_gap without `start`".into());
    }
    let start = crate::clock::parse_ts(start).map(crate::clock::fmt_ts).unwrap_or_else(|| start.to_string());
    // The local host's own gap is keyed as it always was (every record carries `host`).
    let host = optional(v, "finding", "host")?;
    let host = if crate::util::host::get() == Some(host) { "" } else { host };
    let key =
        if host.is_empty() { format!("monitoring_gap:{start}") } else { format!("monitoring_gap:{host}:{start}") };
    let title = if host.is_empty() {
        format!("Monitoring gap: no checks since {start}")
    } else {
        format!("Monitoring gap on {host}: no checks since {start}")
    };
    let mut o = Observation::new("finding", key, "monitoring".into(), title).detail(optional(v, "finding", "detail")?);
    o.once = true;
    Ok(o.bad(level, "silent"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(v: Value) -> Observation {
        let mut o = observe(&v).unwrap();
        assert_eq!(o.len(), 1, "{v}: {o:?}");
        o.remove(0)
    }

    #[test]
    fn a_finding_that_follows_from_a_check_names_it_as_its_parent() {
        let o = one(json!({"kind":"finding","source":"cellscan","subject":"c1/agents/a1.json","level":"error",
                           "problem":"gateway_down","detail":"d","suppressed_by":"gateway:gw1"}));
        assert_eq!((o.bad, o.parent.as_deref()), (Some(Level::Error), Some("gateway:gw1")));
        let o = one(json!({"kind":"finding","source":"cellscan","subject":"c1","level":"error","problem":"p"}));
        assert_eq!(o.parent, None);
    }

    #[test]
    fn checks_and_the_kits_metric_lines() {
        let o = one(json!({"kind":"check","name":"api","status":"down","detail":"HTTP 500","suppressed_by":"gw"}));
        assert_eq!((o.subject.as_str(), o.bad, o.state.as_str()), ("check:api", Some(Level::Error), "down"));
        assert_eq!(o.parent.as_deref(), Some("gw"));
        assert_eq!(one(json!({"name":"api","status":"degraded"})).bad, Some(Level::Warning));
        assert_eq!(one(json!({"name":"api","status":"up"})).bad, None);
        assert_eq!(one(json!({"name":"api","status":"DOWN"})).bad, Some(Level::Error), "any letter case");
        for (bad, why) in [
            (
                json!({"name":"api","status":"critical"}),
                "check 'api': status 'critical' is not one of up, degraded, down",
            ),
            (json!({"kind":"check","name":"api","status":["down"]}), "check 'api': `status` is a list, not a string"),
            (json!({"kind":"check","status":"down"}), "check: no `name`"),
            (json!({"kind":"check","name":5,"status":"down"}), "check: `name` is a number, not a string"),
            (json!({"kind":"check","name":" ","status":"down"}), "check: `name` is empty"),
        ] {
            assert_eq!(observe(&bad).unwrap_err(), why, "{bad}");
        }
    }

    #[test]
    fn recovery_speaks_for_restarts_and_flapping() {
        let v = json!({"kind":"recovery","name":"api","outcome":"recovered","flapping":true,"restarts_in_window":4});
        let o = observe(&v).unwrap();
        assert_eq!(o.len(), 2);
        assert_eq!((o[0].subject.as_str(), o[0].bad), ("recovery:api", None));
        assert_eq!((o[1].subject.as_str(), o[1].bad), ("flapping:api", Some(Level::Warning)));
        assert_eq!(o[1].detail, "4 restarts within the flap window");
        let o = observe(&json!({"kind":"recovery","name":"api","outcome":"max_attempts"})).unwrap();
        assert_eq!((o.len(), o[0].bad), (1, Some(Level::Critical)), "used-up restarts are critical");
        assert!(observe(&json!({"kind":"recovery","name":"api","outcome":"Cooldown"})).unwrap().is_empty());
        assert_eq!(
            observe(&json!({"kind":"recovery","name":"api","outcome":"exploded"})).unwrap_err(),
            "recovery 'api': outcome 'exploded' is not one of recovered, failed, cooldown, max_attempts, skipped"
        );
    }

    #[test]
    fn uptime_by_sla_or_else_by_the_kits_report_thresholds() {
        let up = |extra: Value| {
            let mut v = json!({"kind":"uptime","name":"api","uptime_percent":96.43,"total_checks":168});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            observe(&v).unwrap()
        };
        let o = up(json!({"sla_percent": 99.9, "status": "breach"}));
        assert_eq!((o[0].bad, o[0].title.as_str()), (Some(Level::Warning), "api is below its SLA"));
        assert_eq!(o[0].detail, "96.43% uptime (SLA 99.9%)");
        assert_eq!(up(json!({"uptime_percent": 99.0, "sla_percent": 98.0, "status": "ok"}))[0].bad, None);
        let o = up(json!({}));
        assert_eq!(
            (o[0].bad, o[0].state.as_str(), o[0].title.as_str()),
            (Some(Level::Warning), "under 99.5% uptime", "api uptime is low")
        );
        assert_eq!(up(json!({"uptime_percent": 91.2}))[0].bad, Some(Level::Error));
        assert_eq!(up(json!({"uptime_percent": 99.5}))[0].bad, None);
        assert!(up(json!({"uptime_percent": 0.0, "total_checks": 0})).is_empty(), "no checks: nothing to say");
    }

    #[test]
    fn ticks_heartbeats_agents_tasks_findings() {
        let t = one(
            json!({"kind":"tick","agent":"atlas","month":"2026-11","status":"missing","due":"2026-11-04T00:00:00.000Z"}),
        );
        assert_eq!((t.subject.as_str(), t.bad), ("tick:atlas:2026-11", Some(Level::Error)));
        assert_eq!(one(json!({"kind":"tick","agent":"a","month":"m","status":"offline"})).bad, Some(Level::Critical));
        assert!(observe(&json!({"kind":"tick","agent":"a","month":"m","status":"pending"})).unwrap().is_empty());
        assert_eq!(
            observe(&json!({"kind":"tick","agent":5,"status":"missing"})).unwrap_err(),
            "tick: `agent` is a number, not a string"
        );
        assert_eq!(t.title, "RCA-AGENT: atlas failed to submit monthly tick (2026-11)", "the protocol's title");
        assert_eq!(one(json!({"kind":"heartbeat","agent":"a","status":"unhealthy"})).bad, Some(Level::Error));
        let a = one(json!({"kind":"agent","cell":"c1","agent":"a","status":"failed"}));
        assert_eq!((a.subject.as_str(), a.bad), ("agent:c1/a", Some(Level::Error)));
        let task = one(json!({"kind":"task","id":"t-1","title":"Fix it","stalled_hours":30.2,"owner":"ops"}));
        assert_eq!(
            (task.subject.as_str(), task.bad, task.detail.as_str()),
            ("task:t-1", Some(Level::Warning), "in progress for 30h, owner ops")
        );
        let f = one(
            json!({"kind":"finding","source":"probe","subject":"db","level":"error","problem":"invalid_service","detail":"x"}),
        );
        assert_eq!(f.subject, "finding:probe:db:invalid_service");
        assert!(
            observe(&json!({"kind":"finding","source":"s","subject":"x","level":"info","problem":"p"}))
                .unwrap()
                .is_empty()
        );
    }
}
