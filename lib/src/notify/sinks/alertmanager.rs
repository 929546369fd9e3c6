//! Alertmanager's v2 API: `POST {alertmanager_url}/api/v2/alerts` with a list of
//! `{labels, annotations, startsAt, endsAt, generatorURL?}`.
//!
//! Alertmanager knows an alert by its label set, and forgets (resolves) one whose `endsAt`
//! has passed, so: the labels of an incident never change while it lasts (`alertname` from
//! the subject's kind, `subject`, `severity` as first announced... or as last announced,
//! `host`, and the alert's own labels); a firing alert is posted with `endsAt` a while ahead
//! (`alertmanager_resolve_timeout_seconds`, 3 × `check_interval_seconds` or 15 minutes) and
//! every run posts again the incidents still firing, as Prometheus does; a recovery posts the
//! same labels with `endsAt` = now. When an incident changes level, the alert of the old
//! severity is resolved as the new one fires.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::{Http, Sink, min_level};
use crate::clock;
use crate::config::Alerting;
use crate::notify::alert::Alert;
use crate::record::Level;

pub struct Alertmanager {
    http: Http,
    url: String,
    host: String,
    horizon_s: i64,
    generator_url: Option<String>,
    min: Level,
    now: OffsetDateTime,
}

impl Alertmanager {
    pub fn new(
        http: Http,
        alerting: &Alerting,
        url: &str,
        host: &str,
        check_interval_s: Option<u64>,
        now: OffsetDateTime,
    ) -> Alertmanager {
        let horizon = alerting
            .raw
            .get("alertmanager_resolve_timeout_seconds")
            .and_then(Value::as_u64)
            .unwrap_or_else(|| check_interval_s.map(|c| c.saturating_mul(3)).unwrap_or(900).max(300));
        Alertmanager {
            http,
            url: format!("{}/api/v2/alerts", url.trim_end_matches('/').trim_end_matches("/api/v2/alerts")),
            host: host.to_string(),
            horizon_s: horizon.min(i64::MAX as u64 / 2) as i64,
            generator_url: alerting.raw.get("alertmanager_generator_url").and_then(Value::as_str).map(String::from),
            min: min_level(alerting, "alertmanager", Level::Warning),
            now,
        }
    }

    /// The postable alerts for one alert (two when it changed level: the old one resolved).
    pub fn postable(&self, a: &Alert) -> Vec<Value> {
        let now = clock::fmt_ts(self.now);
        let starts = a.since.clone().filter(|s| clock::parse_ts(s).is_some()).unwrap_or_else(|| a.timestamp.clone());
        let mut annotations = Map::new();
        annotations.insert("summary".into(), json!(a.title));
        annotations.insert("description".into(), json!(a.message));
        if let Some(b) = a.body.as_deref().filter(|b| !b.trim().is_empty()) {
            annotations.insert("details".into(), json!(b));
        }
        let one = |severity: Level, ends: &str| {
            let mut p = json!({
                "labels": self.labels(a, severity),
                "annotations": annotations,
                "startsAt": starts,
                "endsAt": ends,
            });
            if let Some(g) = &self.generator_url {
                p["generatorURL"] = json!(g);
            }
            p
        };
        if a.is_resolved() {
            return vec![one(a.was.unwrap_or(Level::Warning), &now)];
        }
        // A horizon past the calendar's end (a huge resolve timeout) ends at its last moment.
        let ends = self.now.checked_add(time::Duration::seconds(self.horizon_s)).unwrap_or(clock::LATEST);
        let ends = clock::fmt_ts(ends);
        let mut out = Vec::new();
        if let Some(old) = a.was.filter(|w| *w != a.level) {
            out.push(one(old, &now));
        }
        out.push(one(a.level, &ends));
        out
    }

    fn labels(&self, a: &Alert, severity: Level) -> Value {
        let mut m = Map::new();
        for (k, v) in a.label_map() {
            m.insert(label_name(&k), json!(v));
        }
        let alertname = match a.label("alertname") {
            "" => alertname(a),
            given => given.to_string(),
        };
        m.insert("alertname".into(), json!(alertname));
        if let Some(s) = &a.subject {
            m.insert("subject".into(), json!(s));
        }
        if !a.topic.is_empty() {
            m.entry("topic").or_insert_with(|| json!(a.topic));
        }
        m.insert("severity".into(), json!(severity.as_str()));
        if !self.host.is_empty() {
            m.entry("host").or_insert_with(|| json!(self.host));
        }
        Value::Object(m)
    }

    fn post(&self, alerts: Vec<Value>) -> Result<(), String> {
        match self.http.request("POST", &self.url, &[], Some(&Value::Array(alerts))) {
            // Alertmanager's API answers 200 for alerts it took; anything else (a redirect,
            // a 202 from a proxy in front) did not reach it.
            Ok(r) if r.status == 200 => Ok(()),
            Ok(r) if r.ok() => Err(format!("HTTP {}: not Alertmanager's answer (200) to posted alerts", r.status)),
            Ok(r) => Err(self.http.redact(&r.describe())),
            Err(e) => Err(e),
        }
    }
}

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn label_name(k: &str) -> String {
    let mut s: String = k.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// The alert's name, by what its subject is.
fn alertname(a: &Alert) -> String {
    let prefix = a.subject.as_deref().and_then(|s| s.split_once(':')).map(|(p, _)| p).unwrap_or("");
    let name = match prefix {
        "check" => "ServiceFailing",
        "recovery" => "ServiceRestartFailing",
        "flapping" => "ServiceFlapping",
        "uptime" => "SlaBreach",
        "tick" => "AgentTickProblem",
        "heartbeat" => "AgentHeartbeatFailing",
        "agent" => "AgentFailed",
        "cell" => "CellFailed",
        "task" => "TaskNeedsAttention",
        "finding" => "Finding",
        _ => "",
    };
    if !name.is_empty() {
        return name.to_string();
    }
    if a.topic.is_empty() { "PitcrewAlert".into() } else { a.topic.clone() }
}

impl Sink for Alertmanager {
    fn name(&self) -> &'static str {
        "alertmanager"
    }

    fn min_level(&self) -> Level {
        self.min
    }

    fn deliver(&mut self, batch: &[&Alert], delayed: bool) -> Vec<Result<(), String>> {
        let mut posts: Vec<Value> = Vec::new();
        for a in batch {
            for p in self.postable(a) {
                // From the outbox, the latest word on an alert wins.
                if delayed {
                    posts.retain(|q| q["labels"] != p["labels"]);
                }
                posts.push(p);
            }
        }
        let r = self.post(posts);
        vec![r; batch.len()]
    }

    fn preview(&self, batch: &[&Alert]) -> Vec<Value> {
        batch.iter().map(|a| json!({"url": self.url, "alerts": self.postable(a)})).collect()
    }

    /// Post again the incidents still firing; a failure is only reported (the next run posts
    /// them again).
    fn refresh(&mut self, firing: &[Alert]) -> Option<Result<(), String>> {
        let posts: Vec<Value> = firing.iter().filter(|a| self.accepts(a)).flat_map(|a| self.postable(a)).collect();
        if posts.is_empty() { None } else { Some(self.post(posts)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::alert::AlertStatus;

    fn am() -> Alertmanager {
        let a = crate::config::Alerting::from_map(Map::new(), &|_: &str| None);
        let now = clock::parse_ts("2026-11-23T10:00:00Z").unwrap();
        Alertmanager::new(Http::new(&a, std::time::Duration::from_secs(1)), &a, "http://am:9093/", "h1", None, now)
    }

    #[test]
    fn firing_resolved_and_level_changes() {
        let am = am();
        let mut a =
            Alert::new("check:api", Level::Error, "api is failing", "down: HTTP 500", "2026-11-23T10:00:00.000Z");
        a.subject = Some("check:api".into());
        a.labels = Some(json!({"kind": "check", "name": "api", "team.name": "web"}));
        a.since = Some("2026-11-23T09:50:00.000Z".into());
        let p = am.postable(&a);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0]["labels"]["alertname"], "ServiceFailing");
        assert_eq!(p[0]["labels"]["severity"], "error");
        assert_eq!(p[0]["labels"]["team_name"], "web");
        assert_eq!(p[0]["labels"]["host"], "h1");
        assert_eq!(p[0]["startsAt"], "2026-11-23T09:50:00.000Z");
        assert_eq!(p[0]["endsAt"], "2026-11-23T10:15:00.000Z");
        a.was = Some(Level::Warning);
        let p = am.postable(&a);
        assert_eq!(
            (p.len(), &p[0]["labels"]["severity"], &p[0]["endsAt"]),
            (2, &json!("warning"), &json!("2026-11-23T10:00:00.000Z"))
        );
        a.status = AlertStatus::Resolved;
        a.level = Level::Recovery;
        a.was = Some(Level::Error);
        let p = am.postable(&a);
        assert_eq!((p.len(), &p[0]["labels"]["severity"]), (1, &json!("error")));
        assert_eq!(am.url, "http://am:9093/api/v2/alerts");
    }
}
