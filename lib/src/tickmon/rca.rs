//! Root-cause analysis issues for agents that failed the tick protocol: an `alert` record
//! whose title, body and labels notify's Gitea sink turns into an issue as they are.
//!
//! The body is a Markdown RCA form: a summary table, what happened (from the tick, or from
//! its absence and the last tick on record), the questions that find out why, recovery
//! steps, prevention, a timeline with deadlines, and a resolution checklist.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::registry::AgentEntry;
use super::tick::{Month, Tick};
use crate::clock::{fmt_ts, human_duration};

/// Labels every RCA issue carries.
pub const LABELS: [&str; 3] = ["agent-health", "rca-required", "auto-generated"];

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
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
pub struct Input<'a> {
    pub agent: &'a AgentEntry,
    pub failure: Failure,
    pub month: Month,
    pub due: OffsetDateTime,
    pub now: OffsetDateTime,
    pub tick: Option<&'a Tick>,
    pub tick_file: &'a Path,
    /// The latest earlier tick, for a missing one.
    pub last_tick: Option<(Month, &'a Tick)>,
    /// The one-line summary of the `tick` record.
    pub detail: &'a str,
}

/// The issue title, as the Agent Tick Protocol's monitor wrote it (notify finds an open twin by it).
pub fn title(agent: &str, failure: Failure, month: Month) -> String {
    match failure {
        Failure::Missing => format!("RCA-AGENT: {agent} failed to submit monthly tick ({})", month.label()),
        Failure::Critical => format!("RCA-AGENT: {agent} reported critical status ({})", month.label()),
        Failure::Offline => format!("RCA-AGENT: {agent} reported offline status ({})", month.label()),
    }
}

/// The `alert` record.
pub fn alert(i: &Input<'_>) -> Value {
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

/// The Markdown body.
pub fn body(i: &Input<'_>) -> String {
    let a = i.agent;
    let m = i.month.label();
    let now = fmt_ts(i.now);
    let due = fmt_ts(i.due);
    let mut b = String::new();
    let _ = writeln!(b, "## Agent health failure: {}\n", a.id);
    let summary = match i.failure {
        Failure::Missing => format!(
            "`{}` did not submit its tick for {m}. It was due by {due}; this check ran {} after that.",
            a.id,
            human_duration((i.now - i.due).whole_seconds().max(0) as u64)
        ),
        Failure::Critical | Failure::Offline => format!(
            "`{}` submitted its tick for {m} and reported itself **{}**.",
            a.id,
            i.tick.map(|t| t.status.as_str()).unwrap_or("failed")
        ),
    };
    let _ = writeln!(b, "{summary}\n");
    let _ = writeln!(b, "| | |\n|---|---|");
    let _ = writeln!(b, "| Agent | `{}` ({}) |", a.id, a.name);
    let _ = writeln!(b, "| Month | {m} |");
    let _ = writeln!(b, "| Failure | {} |", i.failure.describe());
    let _ = writeln!(b, "| Tick due | {due} |");
    let _ = writeln!(b, "| Detected | {now} |");
    let _ = writeln!(b, "| Tick file | `{}` |", i.tick_file.display());
    if let Some(h) = &a.home_dir {
        let _ = writeln!(b, "| Agent home | `{h}` |");
    }
    if let Some(c) = &a.config_path {
        let _ = writeln!(b, "| Agent config | `{c}` |");
    }
    if let Some(g) = &a.gateway {
        let _ = writeln!(b, "| Gateway | `{g}` |");
    }

    let _ = writeln!(b, "\n### What happened\n");
    match (i.failure, i.tick) {
        (Failure::Missing, _) => {
            let _ = writeln!(b, "- No tick for {m} was found in the ticks repository when the window closed at {due}.");
            match i.last_tick {
                Some((lm, t)) => {
                    let when = t.timestamp.as_deref().unwrap_or("an unknown time");
                    let _ = writeln!(
                        b,
                        "- The last tick on record is for {}: status **{}**, submitted {when}.",
                        lm.label(),
                        t.status.as_str()
                    );
                    let failed = t.failed_vitals();
                    if !failed.is_empty() {
                        let _ = writeln!(b, "- That tick already had failing vitals: {}.", failed.join(", "));
                    }
                }
                None => {
                    let _ = writeln!(b, "- There is no earlier tick from this agent in the last twelve months.");
                }
            }
        }
        (_, Some(t)) => {
            let when = t.timestamp.as_deref().unwrap_or("an unknown time");
            let from = t.raw.get("host").and_then(Value::as_str).map(|h| format!(" from `{h}`")).unwrap_or_default();
            let _ = writeln!(b, "- The tick was submitted {when}{from} with status **{}**.", t.status.as_str());
            let details = t.raw.get("vitals_detail").and_then(Value::as_object);
            if t.vitals.is_empty() {
                let _ = writeln!(b, "- The tick carries no vitals.");
            } else {
                let _ = writeln!(b, "- Vitals:");
                for (k, v) in &t.vitals {
                    let d = details.and_then(|d| d.get(k)).and_then(Value::as_str).map(|d| format!(" ({d})"));
                    let _ = writeln!(b, "  - {k}: {}{}", yes_no(v), d.unwrap_or_default());
                }
            }
            let lost = t.lost_capabilities();
            if lost.is_empty() {
                let _ = writeln!(b, "- No capability was reported lost.");
            } else {
                let _ = writeln!(b, "- Capabilities lost: {}.", lost.join(", "));
            }
            if let Some(note) = t.raw.get("note").and_then(Value::as_str) {
                let _ = writeln!(b, "- The agent's note: {note}");
            }
        }
        (_, None) => {
            let _ = writeln!(b, "- {}", i.detail);
        }
    }

    let _ = writeln!(b, "\n### Why it happened (answer each)\n");
    if i.failure == Failure::Missing {
        let _ =
            writeln!(b, "- [ ] Did the tick job run on the agent's host at all? (cron or timer logs, its exit status)");
        let _ = writeln!(b, "- [ ] Did it run but fail to write or push the tick? (git errors, permissions, network)");
    }
    let _ = writeln!(b, "- [ ] Was the gateway running? If not, when did it stop, and what did it log last?");
    let _ = writeln!(b, "- [ ] Was the home directory mounted and writable, with space left on its disk?");
    let _ = writeln!(b, "- [ ] Did the config change since the last healthy tick? (diff it against the last good one)");
    let _ = writeln!(
        b,
        "- [ ] Did something the agent depends on fail: the host, the network, credentials, an upstream API?"
    );
    let _ = writeln!(b, "- [ ] Did a deploy, upgrade or reboot happen shortly before?");

    let _ = writeln!(b, "\n### Recovery steps\n");
    let gw = a.gateway.as_deref().map(|g| format!(" (`{g}`)")).unwrap_or_default();
    let _ = writeln!(b, "1. On the agent's host, look at the gateway{gw} and its logs; restart it if it is down.");
    let home = a.home_dir.as_deref().map(|h| format!(" `{h}`")).unwrap_or_default();
    let cfg = a.config_path.as_deref().map(|c| format!(" `{c}`")).unwrap_or_default();
    let _ =
        writeln!(b, "2. Check that the home directory{home} is there and writable and that the config{cfg} is valid.");
    let _ = writeln!(b, "3. Bring the agent back and watch it stay up for a while.");
    let _ = writeln!(b, "4. Submit a fresh tick: `tickmon submit --agent {} --month {m} --git --push`", a.id);
    let _ = writeln!(b, "5. Confirm: `tickmon check --month {m}` reports `{}` healthy.", a.id);

    let _ = writeln!(b, "\n### Prevention\n");
    let _ = writeln!(
        b,
        "- [ ] Watch the agent continuously, not once a month: heartbeats to `tickmon serve`, or a process, port or url check in `probe`."
    );
    let _ = writeln!(b, "- [ ] Give it a `restart_command` so `recover` can bring it back on its own.");
    let _ = writeln!(b, "- [ ] Run the tick job early in the month, leaving time for a retry before the deadline.");
    let _ = writeln!(b, "- [ ] Tune alerts so a failure like this one is seen within hours.");

    let _ = writeln!(b, "\n### Timeline\n");
    if let Some(ts) = i.tick.and_then(|t| t.timestamp.as_deref()) {
        let _ = writeln!(b, "- [x] {ts}: the agent reported {}", i.tick.map(|t| t.status.as_str()).unwrap_or(""));
    }
    let _ = writeln!(b, "- [x] {due}: tick deadline for {m}");
    let _ = writeln!(b, "- [x] {now}: failure detected, this issue opened");
    let step = |d: time::Duration| fmt_ts(i.now.checked_add(d).unwrap_or(crate::clock::LATEST));
    let _ = writeln!(b, "- [ ] by {}: the owner acknowledges", step(time::Duration::hours(1)));
    let _ = writeln!(b, "- [ ] by {}: the root cause is written down here", step(time::Duration::hours(24)));
    let _ =
        writeln!(b, "- [ ] by {}: the fix is verified and a healthy tick is on record", step(time::Duration::days(7)));

    let _ = writeln!(b, "\n### Resolution checklist\n");
    let _ = writeln!(b, "- [ ] Root cause identified and written down");
    let _ = writeln!(b, "- [ ] Fix applied");
    let _ = writeln!(b, "- [ ] Agent healthy again");
    let _ = writeln!(b, "- [ ] A tick for {m} submitted");
    let _ = writeln!(b, "- [ ] Monitoring improved so this is caught sooner");
    let _ = writeln!(b, "- [ ] Issue closed with a short summary");
    let _ = writeln!(b, "\n---\n_Opened by `tickmon check --rca` (Agent Tick Protocol); subject `tick:{}:{m}`._", a.id);
    b
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
