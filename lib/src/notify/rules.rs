//! The rules: what a record says about its subject.
//!
//! Every record kind pitcrew knows is about a subject with a stable key (`check:api`,
//! `tick:atlas:2026-11`, ...), and says the subject is bad at some level, good, or nothing
//! (a restart in cooldown, a tick still pending). The table (also in docs/notify.md):
//!
//! | record | subject | bad when (level) | good when |
//! |---|---|---|---|
//! | check | `check:<name>` | down (error), degraded (warning) | up |
//! | recovery | `recovery:<name>` | failed, max_attempts (error) | recovered |
//! | recovery | `flapping:<name>` | `flapping: true` (warning) | recovered and not flapping |
//! | uptime | `uptime:<name>` | status breach (warning); without status, under 99.5% (warning), under 95% (error) | status ok; without status, 99.5% and over |
//! | tick | `tick:<agent>:<month>` | missing (error), critical, offline (critical), degraded (warning) | healthy |
//! | heartbeat | `heartbeat:<agent>` | unhealthy (error), degraded (warning) | healthy |
//! | agent | `agent:<cell>/<agent>` | status failed (error) | any other status |
//! | cell | `cell:<cell>` | status failed (error) | any other status |
//! | task | `task:<id>` (`task:<cell>/<id>`) | `stalled_hours` (warning), status failed (error) | neither |
//! | finding | `finding:<source>:<subject>:<problem>` | level warning or worse (its level) | never |

use serde_json::Value;

use crate::record::{self, Kind, Level, str_field};

/// What one record says about one subject.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The stable key: `check:api`.
    pub subject: String,
    /// The record kind it came from: `check`.
    pub kind: &'static str,
    /// What people call it: `api`, `atlas (2026-11)`.
    pub name: String,
    /// The level when bad; `None` when good.
    pub bad: Option<Level>,
    /// The state in a word or three: `down`, `missing`, `could not be restarted`, `up`.
    pub state: String,
    /// The record's own explanation (a check's detail).
    pub detail: String,
    /// The incident's title, the same whatever the level (an issue tracker's title).
    pub title: String,
    /// The name of the parent this subject is down because of (a check's `suppressed_by`).
    pub parent: Option<String>,
    pub timestamp: String,
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
pub fn noun(kind: &str) -> (&'static str, &'static str) {
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
/// restarts and for flapping).
pub fn observe(v: &Value) -> Vec<Observation> {
    let ts = str_field(v, "timestamp").to_string();
    let mut out = match record::kind_of(v) {
        Kind::Check => check(v).into_iter().collect(),
        Kind::Recovery => recovery(v),
        Kind::Uptime => uptime(v).into_iter().collect(),
        Kind::Tick => tick(v).into_iter().collect(),
        Kind::Heartbeat => heartbeat(v).into_iter().collect(),
        Kind::Agent => agent(v).into_iter().collect(),
        Kind::Cell => cell(v).into_iter().collect(),
        Kind::Task => task(v).into_iter().collect(),
        Kind::Finding => finding(v).into_iter().collect(),
        Kind::Alert | Kind::Unknown => Vec::new(),
    };
    for o in &mut out {
        o.timestamp.clone_from(&ts);
    }
    out
}

/// True for the kinds the rules read (their records are consumed, not passed through).
pub fn reads(kind: Kind) -> bool {
    !matches!(kind, Kind::Alert | Kind::Unknown)
}

fn nonempty(s: &str) -> Option<&str> {
    let s = s.trim();
    if s.is_empty() { None } else { Some(s) }
}

fn check(v: &Value) -> Option<Observation> {
    let name = nonempty(str_field(v, "name"))?;
    let o = Observation::new("check", format!("check:{name}"), name.into(), format!("{name} is failing"))
        .detail(str_field(v, "detail"));
    let mut o = match str_field(v, "status") {
        "down" => o.bad(Level::Error, "down"),
        "degraded" => o.bad(Level::Warning, "degraded"),
        "up" => o.good("up"),
        _ => return None,
    };
    o.parent = nonempty(str_field(v, "suppressed_by")).map(String::from);
    Some(o)
}

fn recovery(v: &Value) -> Vec<Observation> {
    let Some(name) = nonempty(str_field(v, "name")) else { return Vec::new() };
    if v.get("dry_run").and_then(Value::as_bool) == Some(true) {
        return Vec::new();
    }
    let detail = str_field(v, "detail");
    let outcome = str_field(v, "outcome");
    let mut out = Vec::new();
    let restarts =
        Observation::new("recovery", format!("recovery:{name}"), name.into(), format!("{name} cannot be restarted"))
            .detail(detail);
    match outcome {
        "failed" => out.push(restarts.bad(Level::Error, "could not be restarted")),
        "max_attempts" => out.push(restarts.bad(Level::Error, "needs manual recovery")),
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
    out
}

/// The Agent Ops Kit's uptime report: OK at 99.5% and over, WARN from 95%, CRITICAL below.
const KIT_OK_PERCENT: f64 = 99.5;
const KIT_WARN_PERCENT: f64 = 95.0;

fn uptime(v: &Value) -> Option<Observation> {
    let name = nonempty(str_field(v, "name"))?;
    let pct = v.get("uptime_percent").and_then(Value::as_f64);
    let sla = v.get("sla_percent").and_then(Value::as_f64);
    let detail = match (pct, sla) {
        (Some(p), Some(s)) => format!("{p}% uptime (SLA {s}%)"),
        (Some(p), None) => format!("{p}% uptime"),
        _ => String::new(),
    };
    let sla_o = |title: String| Observation::new("uptime", format!("uptime:{name}"), name.into(), title);
    match v.get("status") {
        None | Some(Value::Null) => {}
        Some(_) => {
            let o = sla_o(format!("{name} is below its SLA")).detail(detail);
            return match str_field(v, "status") {
                "breach" => Some(o.bad(Level::Warning, "below SLA")),
                "ok" => Some(o.good("within SLA")),
                _ => None,
            };
        }
    }
    // Without --sla rollup judges nothing: the kit's report thresholds do, so that
    // `rollup --days 7 | notify` tells of services the kit's report marks WARN or CRITICAL.
    // A service without checks says nothing (it never breaches).
    let pct = pct?;
    if v.get("total_checks").and_then(Value::as_u64) == Some(0) {
        return None;
    }
    let o = sla_o(format!("{name} uptime is low")).detail(detail);
    Some(if pct < KIT_WARN_PERCENT {
        o.bad(Level::Error, "under 95% uptime")
    } else if pct < KIT_OK_PERCENT {
        o.bad(Level::Warning, "under 99.5% uptime")
    } else {
        o.good("uptime ok")
    })
}

fn tick(v: &Value) -> Option<Observation> {
    let agent = nonempty(str_field(v, "agent"))?;
    let month = str_field(v, "month");
    let (subject, name) = if month.is_empty() {
        (format!("tick:{agent}"), agent.to_string())
    } else {
        (format!("tick:{agent}:{month}"), format!("{agent} ({month})"))
    };
    let title = if month.is_empty() {
        format!("Agent {agent} tick needs attention")
    } else {
        format!("Agent {agent} tick for {month} needs attention")
    };
    let due = str_field(v, "due");
    let status = str_field(v, "status");
    let detail = match status {
        "missing" if !due.is_empty() => format!("no tick by {due}"),
        "missing" => "no tick submitted".to_string(),
        s => format!("tick reports {s}"),
    };
    let o = Observation::new("tick", subject, name, title).detail(detail);
    match status {
        "missing" => Some(o.bad(Level::Error, "missing")),
        "critical" => Some(o.bad(Level::Critical, "critical")),
        "offline" => Some(o.bad(Level::Critical, "offline")),
        "degraded" => Some(o.bad(Level::Warning, "degraded")),
        "healthy" => Some(o.good("healthy")),
        _ => None,
    }
}

fn heartbeat(v: &Value) -> Option<Observation> {
    let agent = nonempty(str_field(v, "agent"))?;
    let mut detail = str_field(v, "error").to_string();
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
    match str_field(v, "status") {
        "unhealthy" => Some(o.bad(Level::Error, "unhealthy")),
        "degraded" => Some(o.bad(Level::Warning, "degraded")),
        "healthy" => Some(o.good("healthy")),
        _ => None,
    }
}

fn agent(v: &Value) -> Option<Observation> {
    let agent = nonempty(str_field(v, "agent"))?;
    let cell = str_field(v, "cell");
    let (subject, name, title) = if cell.is_empty() {
        (format!("agent:{agent}"), agent.to_string(), format!("Agent {agent} failed"))
    } else {
        (format!("agent:{cell}/{agent}"), format!("{cell}/{agent}"), format!("Agent {agent} in cell {cell} failed"))
    };
    let status = str_field(v, "status");
    let task = str_field(v, "current_task");
    let detail = if task.is_empty() { String::new() } else { format!("current task {task}") };
    let o = Observation::new("agent", subject, name, title).detail(detail);
    match status {
        "failed" => Some(o.bad(Level::Error, "failed")),
        "" => None,
        s => Some(o.good(s)),
    }
}

fn cell(v: &Value) -> Option<Observation> {
    let cell = nonempty(str_field(v, "cell"))?;
    let mission = str_field(v, "mission_name");
    let name = if mission.is_empty() { cell.to_string() } else { format!("{cell} ({mission})") };
    let o = Observation::new("cell", format!("cell:{cell}"), name, format!("Cell {cell} failed"));
    match str_field(v, "status") {
        "failed" => Some(o.bad(Level::Error, "failed")),
        "" => None,
        s => Some(o.good(s)),
    }
}

fn task(v: &Value) -> Option<Observation> {
    let id = match v.get("id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return None,
    };
    let cell = str_field(v, "cell");
    let subject = if cell.is_empty() { format!("task:{id}") } else { format!("task:{cell}/{id}") };
    let title_text = nonempty(str_field(v, "title")).unwrap_or(&id).to_string();
    let owner = nonempty(str_field(v, "owner")).or_else(|| nonempty(str_field(v, "assigned_to")));
    let o = Observation::new("task", subject, title_text.clone(), format!("Task {id} needs attention: {title_text}"));
    let stalled = v.get("stalled_hours").and_then(Value::as_f64);
    if let Some(h) = stalled {
        let mut d = format!("in progress for {}h", h.round() as i64);
        if let Some(owner) = owner {
            d.push_str(&format!(", owner {owner}"));
        }
        return Some(o.bad(Level::Warning, "stalled").detail(d));
    }
    if str_field(v, "status") == "failed" {
        let d = owner.map(|o| format!("assigned to {o}")).unwrap_or_default();
        return Some(o.bad(Level::Error, "failed").detail(d));
    }
    Some(o.good("not stalled"))
}

fn finding(v: &Value) -> Option<Observation> {
    let source = str_field(v, "source");
    let subject = str_field(v, "subject");
    let problem = str_field(v, "problem");
    if subject.is_empty() && problem.is_empty() {
        return None;
    }
    let level = Level::parse(str_field(v, "level"))?;
    if !level.is_bad() {
        return None;
    }
    let name = if problem.is_empty() { subject.to_string() } else { format!("{subject} ({problem})") };
    let title = [source, subject, problem].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join(": ");
    let o = Observation::new("finding", format!("finding:{source}:{subject}:{problem}"), name, title)
        .detail(str_field(v, "detail"));
    Some(o.bad(level, "found"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(v: Value) -> Observation {
        let mut o = observe(&v);
        assert_eq!(o.len(), 1, "{v}: {o:?}");
        o.remove(0)
    }

    #[test]
    fn checks_and_the_kits_metric_lines() {
        let o = one(json!({"kind":"check","name":"api","status":"down","detail":"HTTP 500","suppressed_by":"gw"}));
        assert_eq!((o.subject.as_str(), o.bad, o.state.as_str()), ("check:api", Some(Level::Error), "down"));
        assert_eq!(o.parent.as_deref(), Some("gw"));
        assert_eq!(one(json!({"name":"api","status":"degraded"})).bad, Some(Level::Warning));
        assert_eq!(one(json!({"name":"api","status":"up"})).bad, None);
        assert!(
            observe(&json!({"name":"Disk","status":"45"})).is_empty(),
            "the Agent Ops Kit's odd statuses say nothing"
        );
    }

    #[test]
    fn recovery_speaks_for_restarts_and_flapping() {
        let v = json!({"kind":"recovery","name":"api","outcome":"recovered","flapping":true,"restarts_in_window":4});
        let o = observe(&v);
        assert_eq!(o.len(), 2);
        assert_eq!((o[0].subject.as_str(), o[0].bad), ("recovery:api", None));
        assert_eq!((o[1].subject.as_str(), o[1].bad), ("flapping:api", Some(Level::Warning)));
        assert_eq!(o[1].detail, "4 restarts within the flap window");
        let o = observe(&json!({"kind":"recovery","name":"api","outcome":"max_attempts"}));
        assert_eq!((o.len(), o[0].bad), (1, Some(Level::Error)));
        assert!(observe(&json!({"kind":"recovery","name":"api","outcome":"cooldown"})).is_empty());
    }

    #[test]
    fn uptime_by_sla_or_else_by_the_kits_report_thresholds() {
        let up = |extra: Value| {
            let mut v = json!({"kind":"uptime","name":"api","uptime_percent":96.43,"total_checks":168});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            observe(&v)
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
        assert!(observe(&json!({"kind":"tick","agent":"a","month":"m","status":"pending"})).is_empty());
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
        assert!(observe(&json!({"kind":"finding","source":"s","subject":"x","level":"info","problem":"p"})).is_empty());
    }
}
