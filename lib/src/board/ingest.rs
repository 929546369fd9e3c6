//! ingest: the kit's "create ops tasks from failures" recipe as a pipe. An `uptime` record
//! in breach (or under the threshold, 95% as in the kit) becomes the kit's
//! `Investigate: NAME at PCT% uptime` task; a firing `alert` of level warning or worse
//! becomes a task titled by the alert. A task whose title is already open on the board (or
//! made earlier in the same run) is not made again, nor is one for a subject that already has
//! an open task: made tasks carry the `subject` they are about (`uptime:NAME`, or the alert's
//! subject), so a service whose uptime keeps changing gets one task, not one per percentage.

use serde_json::Value;

use crate::record::{self, Kind, Level};

/// The fields of a task to make (from a record, or from `add`).
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    pub(crate) title: String,
    pub(crate) owner: String,
    pub(crate) priority: &'static str,
    pub(crate) description: String,
    pub(crate) tags: Vec<String>,
    /// What the task is about, for recognising a twin whose title differs.
    pub(crate) subject: Option<String>,
}

/// How records become tasks.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Uptime under this percentage makes a task.
    pub below: f64,
    /// Owner of the tasks made.
    pub owner: String,
}

/// An uptime percentage as the kit's recipe prints it: `round(pct, 2)` of a float whenever
/// there were checks (`97.5`, `90.0`, `100.0`), and the int `0` when there were none.
fn kit_percent(pct: &Value, total_checks: Option<u64>) -> String {
    match pct {
        _ if total_checks == Some(0) => "0".to_string(),
        // An integer in the record (another producer's) is still Python's float.
        Value::Number(n) if !n.is_f64() => format!("{n}.0"),
        other => num(Some(other)),
    }
}

/// A JSON number as the kit's f-strings print it (`97.5`, `90.0`, `12`); other values as
/// their JSON text, a missing one as `?`.
fn num(v: Option<&Value>) -> String {
    match v {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "?".to_string(),
        Some(other) => other.to_string(),
    }
}

impl Rules {
    /// The task a record asks for: `Ok(None)` when it asks for none, `Err(why)` when it is an
    /// uptime or alert record that cannot be read.
    pub fn wanted(&self, v: &Value) -> Result<Option<Wanted>, String> {
        match record::kind_of(v) {
            Kind::Uptime => self.for_uptime(v),
            Kind::Alert => self.for_alert(v),
            _ => Ok(None),
        }
    }

    fn for_uptime(&self, v: &Value) -> Result<Option<Wanted>, String> {
        let name = record::str_field(v, "name");
        if name.is_empty() {
            return Err("uptime record without a name".into());
        }
        let pct = v.get("uptime_percent");
        let pct_f = match pct {
            Some(p) => p.as_f64().ok_or_else(|| format!("uptime record '{name}': uptime_percent is not a number"))?,
            None => return Err(format!("uptime record '{name}' without uptime_percent")),
        };
        let breach = record::str_field(v, "status") == "breach";
        let total_checks = v.get("total_checks").and_then(Value::as_u64);
        // A name without a single check in the window has no uptime to investigate (rollup
        // calls it met); its 0% is no evidence of an outage.
        if !breach && (pct_f >= self.below || total_checks == Some(0)) {
            return Ok(None);
        }
        Ok(Some(Wanted {
            title: format!("Investigate: {name} at {}% uptime", kit_percent(pct.unwrap_or(&Value::Null), total_checks)),
            owner: self.owner.clone(),
            priority: "high",
            description: format!(
                "{} failures in {} checks. Avg latency: {}ms",
                num(v.get("failures")),
                num(v.get("total_checks")),
                num(v.get("avg_latency_ms"))
            ),
            tags: ["auto-generated", "ops", "uptime"].iter().map(|s| s.to_string()).collect(),
            subject: Some(format!("uptime:{name}")),
        }))
    }

    fn for_alert(&self, v: &Value) -> Result<Option<Wanted>, String> {
        let level_s = record::str_field(v, "level");
        let Some(level) = Level::parse(level_s) else {
            return Err(format!("alert record with an unknown level '{level_s}'"));
        };
        let suppressed = v.get("suppressed").is_some_and(|s| !s.is_null() && s != &Value::Bool(false));
        if !level.is_bad() || suppressed {
            return Ok(None);
        }
        let message = record::str_field(v, "message");
        let title = match record::str_field(v, "title").trim() {
            "" => crate::util::first_line(message).to_string(),
            t => crate::util::first_line(t).to_string(),
        };
        if title.is_empty() {
            return Err("alert record without a title or message".into());
        }
        let body = record::str_field(v, "body");
        let description = if message.trim().is_empty() { body } else { message };
        let mut tags: Vec<String> = ["auto-generated", "ops", "alert"].iter().map(|s| s.to_string()).collect();
        let topic = record::str_field(v, "topic").trim();
        if !topic.is_empty() && !tags.iter().any(|t| t == topic) {
            tags.push(topic.to_string());
        }
        Ok(Some(Wanted {
            title,
            owner: self.owner.clone(),
            priority: match level {
                Level::Critical => "critical",
                Level::Error => "high",
                _ => "medium",
            },
            description: description.trim().to_string(),
            tags,
            subject: Some(record::str_field(v, "subject").trim()).filter(|s| !s.is_empty()).map(String::from),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> Rules {
        Rules { below: 95.0, owner: "ops-agent".into() }
    }

    #[test]
    fn uptime_under_95_is_the_kits_task() {
        let v = json!({"kind":"uptime","name":"API","uptime_percent":90.0,"total_checks":288,"failures":29,"avg_latency_ms":143.2,"status":"ok"});
        let w = rules().wanted(&v).unwrap().unwrap();
        assert_eq!(w.title, "Investigate: API at 90.0% uptime");
        assert_eq!(w.description, "29 failures in 288 checks. Avg latency: 143.2ms");
        assert_eq!((w.owner.as_str(), w.priority), ("ops-agent", "high"));
        assert_eq!(w.tags, ["auto-generated", "ops", "uptime"]);
        let fine = json!({"kind":"uptime","name":"API","uptime_percent":99.0,"status":"ok"});
        assert_eq!(rules().wanted(&fine).unwrap(), None);
        let breach = json!({"kind":"uptime","name":"API","uptime_percent":99.5,"status":"breach"});
        assert_eq!(rules().wanted(&breach).unwrap().unwrap().title, "Investigate: API at 99.5% uptime");
        assert!(rules().wanted(&json!({"kind":"uptime","uptime_percent":1})).is_err());
        assert!(rules().wanted(&json!({"kind":"uptime","name":"x","uptime_percent":"n/a"})).is_err());
    }

    #[test]
    fn the_title_prints_the_percentage_as_the_kit_does_and_no_checks_make_no_task() {
        let up = |pct: Value, total: u64, status: &str| json!({"kind":"uptime","name":"API","uptime_percent":pct,"total_checks":total,"failures":0,"status":status});
        let title = |v: &Value| rules().wanted(v).unwrap().map(|w| w.title);
        // rollup writes 0.0 for a name with no checks, and calls it met: no task.
        assert_eq!(title(&up(json!(0.0), 0, "ok")), None);
        assert_eq!(title(&json!({"kind":"uptime","name":"API","uptime_percent":0.0,"total_checks":0})), None);
        // Should a producer call it a breach, the title is the kit's: the int 0.
        assert_eq!(title(&up(json!(0.0), 0, "breach")).as_deref(), Some("Investigate: API at 0% uptime"));
        // With checks, Python's float: 0.0 when all were down, 90.0, never 90.
        assert_eq!(title(&up(json!(0.0), 12, "breach")).as_deref(), Some("Investigate: API at 0.0% uptime"));
        assert_eq!(title(&up(json!(90), 10, "ok")).as_deref(), Some("Investigate: API at 90.0% uptime"));
        assert_eq!(title(&up(json!(33.33), 3, "ok")).as_deref(), Some("Investigate: API at 33.33% uptime"));
        assert_eq!(title(&up(json!(99.5), 200, "breach")).as_deref(), Some("Investigate: API at 99.5% uptime"));
    }

    #[test]
    fn firing_alerts_become_tasks() {
        let v = json!({"kind":"alert","topic":"health-check","level":"error","title":"2 services down: api, db","message":"api: timeout\ndb: refused"});
        let w = rules().wanted(&v).unwrap().unwrap();
        assert_eq!(w.title, "2 services down: api, db");
        assert_eq!(w.priority, "high");
        assert_eq!(w.description, "api: timeout\ndb: refused");
        assert_eq!(w.tags, ["auto-generated", "ops", "alert", "health-check"]);
        let crit = json!({"kind":"alert","level":"critical","message":"disk full\nmore"});
        let w = rules().wanted(&crit).unwrap().unwrap();
        assert_eq!((w.title.as_str(), w.priority), ("disk full", "critical"));
        for quiet in [
            json!({"kind":"alert","level":"recovery","title":"api is back"}),
            json!({"kind":"alert","level":"info","title":"digest"}),
            json!({"kind":"alert","level":"error","title":"x","suppressed":"silenced"}),
        ] {
            assert_eq!(rules().wanted(&quiet).unwrap(), None, "{quiet}");
        }
        assert!(rules().wanted(&json!({"kind":"alert","level":"loud","title":"x"})).is_err());
        assert!(rules().wanted(&json!({"kind":"alert","level":"error"})).is_err());
    }

    #[test]
    fn other_records_ask_for_nothing() {
        for v in [json!({"kind":"check","name":"a","status":"down"}), json!({"name":"a","status":"down"}), json!({})] {
            assert_eq!(rules().wanted(&v).unwrap(), None);
        }
    }
}
