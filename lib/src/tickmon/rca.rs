//! Root-cause analysis issues for agents that failed the tick protocol: an `alert` record
//! whose title, body and labels notify's Gitea sink turns into an issue as they are.
//!
//! The body is a Markdown RCA form: a summary table, what happened (from the tick, or from
//! its absence and the last tick on record), the questions that find out why, recovery
//! steps, prevention, a timeline with deadlines, and a resolution checklist.

use std::path::Path;

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::registry::AgentEntry;
use super::tick::{Month, Tick};
use crate::clock::{fmt_ts, human_duration};

/// Labels every RCA issue carries.
pub(crate) const LABELS: [&str; 3] = ["agent-health", "rca-required", "auto-generated"];

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No tick by the deadline.
    Missing,
    /// The tick says critical.
    Critical,
    /// The tick says offline.
    Offline,
}

impl Failure {
    fn describe(self) -> &'static str {
        match self {
            Failure::Missing => "tick missing",
            Failure::Critical => "critical status",
            Failure::Offline => "offline status",
        }
    }
}

/// Everything an RCA issue is made from.
pub(crate) struct Input<'a> {
    pub(crate) agent: &'a AgentEntry,
    pub(crate) failure: Failure,
    pub(crate) month: Month,
    pub(crate) due: OffsetDateTime,
    pub(crate) now: OffsetDateTime,
    pub(crate) tick: Option<&'a Tick>,
    pub(crate) tick_file: &'a Path,
    /// The latest earlier tick, for a missing one.
    pub(crate) last_tick: Option<(Month, &'a Tick)>,
    /// The one-line summary of the `tick` record.
    pub(crate) detail: &'a str,
}

/// The issue title, as the Agent Tick Protocol's monitor wrote it (notify finds an open twin by it).
pub(crate) fn title(agent: &str, failure: Failure, month: Month) -> String {
    match failure {
        Failure::Missing => format!("RCA-AGENT: {agent} failed to submit monthly tick ({})", month.label()),
        Failure::Critical => format!("RCA-AGENT: {agent} reported critical status ({})", month.label()),
        Failure::Offline => format!("RCA-AGENT: {agent} reported offline status ({})", month.label()),
    }
}

/// The `alert` record.
pub(crate) fn alert(i: &Input<'_>) -> Value {
    let level = match i.failure {
        Failure::Missing => "error",
        Failure::Critical | Failure::Offline => "critical",
    };
    let who =
        if i.agent.name != i.agent.id { format!("{} ({})", i.agent.id, i.agent.name) } else { i.agent.id.clone() };
    json!({
        "kind": "alert",
        "topic": "agent-health",
        "level": level,
        "title": title(&i.agent.id, i.failure, i.month),
        "message": format!("{who}: {}", i.detail),
        "body": body(i),
        "labels": LABELS,
        "subject": format!("tick:{}:{}", i.agent.id, i.month.label()),
        "status": "firing",
        "agent": i.agent.id,
        "month": i.month.label(),
        "sinks": [],
        "timestamp": fmt_ts(i.now),
    })
}

fn yes_no(v: &Value) -> &'static str {
    match v.as_bool() {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "unknown",
    }
}

/// The Markdown body: [`BODY`] filled in by [`fill`]; the parts that depend on the failure
/// and the tick are made by the functions below it, each a run of whole lines.
pub(crate) fn body(i: &Input<'_>) -> String {
    let a = i.agent;
    let step = |d: time::Duration| fmt_ts(i.now.checked_add(d).unwrap_or(crate::clock::LATEST));
    let opt = |v: &Option<String>| v.as_deref().map(|v| format!(" `{v}`")).unwrap_or_default();
    let vars = [
        ("id", a.id.clone()),
        ("name", a.name.clone()),
        ("month", i.month.label()),
        ("due", fmt_ts(i.due)),
        ("now", fmt_ts(i.now)),
        ("summary", summary(i)),
        ("failure", i.failure.describe().to_string()),
        ("tick_file", i.tick_file.display().to_string()),
        ("rows", optional_rows(a)),
        ("happened", happened(i)),
        ("why_missing", if i.failure == Failure::Missing { WHY_MISSING.to_string() } else { String::new() }),
        ("gw", a.gateway.as_deref().map(|g| format!(" (`{g}`)")).unwrap_or_default()),
        ("home", opt(&a.home_dir)),
        ("cfg", opt(&a.config_path)),
        ("reported", reported(i)),
        ("ack_by", step(time::Duration::hours(1))),
        ("cause_by", step(time::Duration::hours(24))),
        ("fixed_by", step(time::Duration::days(7))),
    ];
    fill(BODY, &vars)
}

/// The RCA form; `{name}` is filled in by [`fill`] from [`body`]'s table.
const BODY: &str = "## Agent health failure: {id}

{summary}

| | |
|---|---|
| Agent | `{id}` ({name}) |
| Month | {month} |
| Failure | {failure} |
| Tick due | {due} |
| Detected | {now} |
| Tick file | `{tick_file}` |
{rows}
### What happened

{happened}
### Why it happened (answer each)

{why_missing}- [ ] Was the gateway running? If not, when did it stop, and what did it log last?
- [ ] Was the home directory mounted and writable, with space left on its disk?
- [ ] Did the config change since the last healthy tick? (diff it against the last good one)
- [ ] Did something the agent depends on fail: the host, the network, credentials, an upstream API?
- [ ] Did a deploy, upgrade or reboot happen shortly before?

### Recovery steps

1. On the agent's host, look at the gateway{gw} and its logs; restart it if it is down.
2. Check that the home directory{home} is there and writable and that the config{cfg} is valid.
3. Bring the agent back and watch it stay up for a while.
4. Submit a fresh tick: `tickmon submit --agent {id} --month {month} --git --push`
5. Confirm: `tickmon check --month {month}` reports `{id}` healthy.

### Prevention

- [ ] Watch the agent continuously, not once a month: heartbeats to `tickmon serve`, or a process, port or url check in `probe`.
- [ ] Give it a `restart_command` so `recover` can bring it back on its own.
- [ ] Run the tick job early in the month, leaving time for a retry before the deadline.
- [ ] Tune alerts so a failure like this one is seen within hours.

### Timeline

{reported}- [x] {due}: tick deadline for {month}
- [x] {now}: failure detected, this issue opened
- [ ] by {ack_by}: the owner acknowledges
- [ ] by {cause_by}: the root cause is written down here
- [ ] by {fixed_by}: the fix is verified and a healthy tick is on record

### Resolution checklist

- [ ] Root cause identified and written down
- [ ] Fix applied
- [ ] Agent healthy again
- [ ] A tick for {month} submitted
- [ ] Monitoring improved so this is caught sooner
- [ ] Issue closed with a short summary

---
_Opened by `tickmon check --rca` (Agent Tick Protocol); subject `tick:{id}:{month}`._
";

/// The questions asked first when the tick is missing.
const WHY_MISSING: &str = "- [ ] Did the tick job run on the agent's host at all? (cron or timer logs, its exit status)
- [ ] Did it run but fail to write or push the tick? (git errors, permissions, network)
";

/// `template` with each `{name}` replaced by its value in `vars`, in one pass: a value is
/// copied as it is, never searched for placeholders itself. A `{` that starts no known
/// placeholder is kept.
fn fill(template: &str, vars: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len() + 1024);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let known = after.find('}').and_then(|close| {
            let name = &after[..close];
            vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (v, close))
        });
        match known {
            Some((v, close)) => {
                out.push_str(v);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The sentence under the heading.
fn summary(i: &Input<'_>) -> String {
    let (id, m) = (&i.agent.id, i.month.label());
    match i.failure {
        Failure::Missing => format!(
            "`{id}` did not submit its tick for {m}. It was due by {}; this check ran {} after that.",
            fmt_ts(i.due),
            human_duration((i.now - i.due).whole_seconds().max(0) as u64)
        ),
        Failure::Critical | Failure::Offline => format!(
            "`{id}` submitted its tick for {m} and reported itself **{}**.",
            i.tick.map(|t| t.status.as_str()).unwrap_or("failed")
        ),
    }
}

/// The table rows of what the registry says of the agent, when it says it.
fn optional_rows(a: &AgentEntry) -> String {
    let rows = [("Agent home", &a.home_dir), ("Agent config", &a.config_path), ("Gateway", &a.gateway)];
    rows.iter().filter_map(|(k, v)| v.as_deref().map(|v| format!("| {k} | `{v}` |\n"))).collect()
}

/// The lines of "What happened".
fn happened(i: &Input<'_>) -> String {
    let mut lines = Vec::new();
    match (i.failure, i.tick) {
        (Failure::Missing, _) => {
            let (m, due) = (i.month.label(), fmt_ts(i.due));
            lines.push(format!("- No tick for {m} was found in the ticks repository when the window closed at {due}."));
            match i.last_tick {
                Some((lm, t)) => {
                    let when = t.timestamp.as_deref().unwrap_or("an unknown time");
                    let (lm, status) = (lm.label(), t.status.as_str());
                    lines
                        .push(format!("- The last tick on record is for {lm}: status **{status}**, submitted {when}."));
                    let failed = t.failed_vitals();
                    if !failed.is_empty() {
                        lines.push(format!("- That tick already had failing vitals: {}.", failed.join(", ")));
                    }
                }
                None => lines.push("- There is no earlier tick from this agent in the last twelve months.".into()),
            }
        }
        (_, Some(t)) => tick_lines(t, &mut lines),
        (_, None) => lines.push(format!("- {}", i.detail)),
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// What a failed tick says: when and whence, its vitals, lost capabilities, its note.
fn tick_lines(t: &Tick, lines: &mut Vec<String>) {
    let when = t.timestamp.as_deref().unwrap_or("an unknown time");
    let from = t.raw.get("host").and_then(Value::as_str).map(|h| format!(" from `{h}`")).unwrap_or_default();
    lines.push(format!("- The tick was submitted {when}{from} with status **{}**.", t.status.as_str()));
    let details = t.raw.get("vitals_detail").and_then(Value::as_object);
    if t.vitals.is_empty() {
        lines.push("- The tick carries no vitals.".into());
    } else {
        lines.push("- Vitals:".into());
        for (k, v) in &t.vitals {
            let d = details.and_then(|d| d.get(k)).and_then(Value::as_str).map(|d| format!(" ({d})"));
            lines.push(format!("  - {k}: {}{}", yes_no(v), d.unwrap_or_default()));
        }
    }
    let lost = t.lost_capabilities();
    if lost.is_empty() {
        lines.push("- No capability was reported lost.".into());
    } else {
        lines.push(format!("- Capabilities lost: {}.", lost.join(", ")));
    }
    if let Some(note) = t.raw.get("note").and_then(Value::as_str) {
        lines.push(format!("- The agent's note: {note}"));
    }
}

/// The first line of the timeline, when the tick says when the agent reported.
fn reported(i: &Input<'_>) -> String {
    match i.tick.and_then(|t| t.timestamp.as_deref().map(|ts| (ts, t.status.as_str()))) {
        Some((ts, status)) => format!("- [x] {ts}: the agent reported {status}\n"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::parse_ts;
    use crate::tickmon::tick::parse_tick;
    use serde_json::Map;
    use std::time::Duration;

    fn agent() -> AgentEntry {
        AgentEntry {
            id: "atlas".into(),
            name: "Atlas".into(),
            active: true,
            home_dir: Some("/srv/atlas".into()),
            config_path: Some("/srv/atlas/config.json".into()),
            gateway: None,
            raw: Map::new(),
        }
    }

    #[test]
    fn a_missing_tick_gets_the_kits_title_and_a_full_form() {
        let a = agent();
        let m = Month::parse("2026-11").unwrap();
        let last = parse_tick(json!({"status":"healthy","timestamp":"2026-10-01T08:00:00Z"}), Some("atlas")).unwrap();
        let i = Input {
            agent: &a,
            failure: Failure::Missing,
            month: m,
            due: m.due(Duration::from_secs(72 * 3600)),
            now: parse_ts("2026-11-23T10:30:00Z").unwrap(),
            tick: None,
            tick_file: Path::new("ticks/2026-11/atlas.json"),
            last_tick: Some((m.previous(), &last)),
            detail: "no tick",
        };
        let v = alert(&i);
        assert_eq!(v["title"], "RCA-AGENT: atlas failed to submit monthly tick (2026-11)");
        assert_eq!((v["level"].as_str(), v["subject"].as_str()), (Some("error"), Some("tick:atlas:2026-11")));
        assert_eq!(v["labels"], json!(["agent-health", "rca-required", "auto-generated"]));
        let body = v["body"].as_str().unwrap();
        for section in [
            "### What happened",
            "### Why it happened",
            "### Recovery steps",
            "### Prevention",
            "### Timeline",
            "### Resolution checklist",
        ] {
            assert!(body.contains(section), "{section} missing:\n{body}");
        }
        assert!(body.contains("19d 10h after that"), "{body}");
        assert!(body.contains("The last tick on record is for 2026-10: status **healthy**"), "{body}");
        assert!(body.contains("- [ ] by 2026-11-24T10:30:00.000Z: the root cause is written down here"), "{body}");
        assert!(body.contains("`ticks/2026-11/atlas.json`"));
    }

    #[test]
    fn a_critical_tick_shows_its_vitals() {
        let a = agent();
        let m = Month::parse("2026-11").unwrap();
        let t = parse_tick(
            json!({"status":"critical","timestamp":"2026-11-01T09:00:00.000Z","host":"edge-1",
                   "vitals":{"gateway_running":false,"home_directory_accessible":true,"config_valid":true},
                   "vitals_detail":{"gateway_running":"no process matches 'agent-gateway'"},
                   "capabilities":{"code":true,"deploy":false}}),
            Some("atlas"),
        )
        .unwrap();
        let i = Input {
            agent: &a,
            failure: Failure::Critical,
            month: m,
            due: m.due(Duration::from_secs(72 * 3600)),
            now: parse_ts("2026-11-23T10:30:00Z").unwrap(),
            tick: Some(&t),
            tick_file: Path::new("t.json"),
            last_tick: None,
            detail: "critical",
        };
        let v = alert(&i);
        assert_eq!(v["title"], "RCA-AGENT: atlas reported critical status (2026-11)");
        assert_eq!(v["level"], "critical");
        assert_eq!(v["message"], "atlas (Atlas): critical");
        let body = v["body"].as_str().unwrap();
        assert!(body.contains("  - gateway_running: **no** (no process matches 'agent-gateway')"), "{body}");
        assert!(body.contains("Capabilities lost: deploy."), "{body}");
        assert!(body.contains("from `edge-1`"), "{body}");
        assert!(body.contains("- [x] 2026-11-01T09:00:00.000Z: the agent reported critical"), "{body}");
    }
}
#[cfg(test)]
mod golden {
    use super::*;
    use crate::clock::parse_ts;
    use crate::tickmon::tick::parse_tick;
    use serde_json::Map;
    use std::time::Duration;
    /// Every failure, with and without the optional parts, and values that look like
    /// placeholders (they are copied, never filled in).
    #[test]
    fn the_body_is_the_form_byte_for_byte() {
        let full = AgentEntry {
            id: "atlas".into(),
            name: "Atlas {now} {m}".into(),
            active: true,
            home_dir: Some("/srv/atlas".into()),
            config_path: Some("/srv/atlas/config.json".into()),
            gateway: Some("127.0.0.1:8642".into()),
            raw: Map::new(),
        };
        let bare = AgentEntry {
            id: "b".into(),
            name: "b".into(),
            active: true,
            home_dir: None,
            config_path: None,
            gateway: None,
            raw: Map::new(),
        };
        let m = Month::parse("2026-11").unwrap();
        let last = parse_tick(
            json!({"status":"degraded","timestamp":"2026-10-01T08:00:00Z","vitals":{"gateway_running":false}}),
            Some("atlas"),
        )
        .unwrap();
        let t = parse_tick(
            json!({"status":"critical","timestamp":"2026-11-01T09:00:00.000Z","host":"edge-1","note":"it {due} broke",
                   "vitals":{"gateway_running":false,"home_directory_accessible":true,"config_valid":"x"},
                   "vitals_detail":{"gateway_running":"no process matches 'agent-gateway'"},
                   "capabilities":{"code":true,"deploy":false}}),
            Some("atlas"),
        )
        .unwrap();
        let t2 = parse_tick(json!({"status":"offline"}), Some("b")).unwrap();
        let now = parse_ts("2026-11-23T10:30:00Z").unwrap();
        let due = m.due(Duration::from_secs(72 * 3600));
        let cases: Vec<Input<'_>> = vec![
            Input {
                agent: &full,
                failure: Failure::Missing,
                month: m,
                due,
                now,
                tick: None,
                tick_file: Path::new("ticks/x.json"),
                last_tick: Some((m.previous(), &last)),
                detail: "no tick",
            },
            Input {
                agent: &bare,
                failure: Failure::Missing,
                month: m,
                due,
                now,
                tick: None,
                tick_file: Path::new("ticks/y.json"),
                last_tick: None,
                detail: "no tick",
            },
            Input {
                agent: &full,
                failure: Failure::Critical,
                month: m,
                due,
                now,
                tick: Some(&t),
                tick_file: Path::new("t.json"),
                last_tick: None,
                detail: "critical",
            },
            Input {
                agent: &bare,
                failure: Failure::Offline,
                month: m,
                due,
                now,
                tick: Some(&t2),
                tick_file: Path::new("t.json"),
                last_tick: None,
                detail: "offline",
            },
            Input {
                agent: &bare,
                failure: Failure::Offline,
                month: m,
                due,
                now: clock_late(),
                tick: None,
                tick_file: Path::new("t.json"),
                last_tick: None,
                detail: "the {detail}",
            },
        ];
        let want = [
            include_str!("../../../tests/fixtures/rca/body_0.md"),
            include_str!("../../../tests/fixtures/rca/body_1.md"),
            include_str!("../../../tests/fixtures/rca/body_2.md"),
            include_str!("../../../tests/fixtures/rca/body_3.md"),
            include_str!("../../../tests/fixtures/rca/body_4.md"),
        ];
        for (i, want) in cases.iter().zip(want) {
            assert_eq!(body(i), want);
        }
    }
    fn clock_late() -> OffsetDateTime {
        parse_ts("9999-12-30T10:30:00Z").unwrap()
    }
}
