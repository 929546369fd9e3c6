//! `notify state`: what notify remembers, for people and scripts. One `notify_state` record
//! per incident (bad or announced): its level, since when, what was announced and when, the
//! acknowledgement (by, at, until) and the escalation level reached with the next one due;
//! then one `silence` record per silence in force or to come, with its next window.

use std::io::Write;

use serde_json::{Map, Value, json};

use super::cli::{Cli, Format};
use super::silence::Silences;
use super::state::State;
use super::{Engine, ndjson};
use crate::clock;
use crate::error::{Result, Status};

impl Engine<'_> {
    /// `notify state`.
    pub(crate) fn state_cmd(&mut self, cli: &Cli, out: &mut dyn Write) -> Result<Status> {
        let now = self.clock.now();
        let stamp = clock::fmt_ts(now);
        let state = State::load(&self.files.state)?;
        for (key, e) in state.subjects.iter().filter(|(_, e)| e.level.is_some() || e.notified.is_some()) {
            let mut r = Map::new();
            r.insert("kind".into(), json!("notify_state"));
            r.insert("subject".into(), json!(key));
            r.insert("name".into(), json!(e.name));
            let opt = |r: &mut Map<String, Value>, k: &str, v: Option<Value>| {
                if let Some(v) = v {
                    r.insert(k.into(), v);
                }
            };
            opt(&mut r, "level", e.level.map(|l| json!(l.as_str())));
            r.insert("since".into(), json!(e.since));
            opt(&mut r, "notified", e.notified.map(|l| json!(l.as_str())));
            opt(&mut r, "last_sent", e.last_sent.as_ref().map(|t| json!(t)));
            r.insert("acknowledged".into(), json!(e.acked(now)));
            opt(&mut r, "acked_by", e.acked_by.as_ref().map(|t| json!(t)));
            opt(&mut r, "acked_at", e.acked_at.as_ref().map(|t| json!(t)));
            opt(&mut r, "acked_until", e.acked_until.as_ref().map(|t| json!(t)));
            r.insert("escalation".into(), json!(e.escalation));
            opt(&mut r, "escalated_at", e.escalated_at.as_ref().map(|t| json!(t)));
            if e.level.is_some()
                && e.notified.is_some()
                && !e.once
                && let Some((n, at)) = self.escalation.next_due(e)
            {
                let to = self.escalation.steps.get(n as usize - 1).map(|s| s.to.clone()).unwrap_or_default();
                r.insert("next_escalation".into(), json!({"level": n, "at": clock::fmt_ts(at), "to": to}));
            }
            r.insert("timestamp".into(), json!(stamp));
            match cli.format {
                Format::Ndjson => ndjson::write(out, &Value::Object(r))?,
                Format::Text => {
                    let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    let mut line = format!("{key}  {} since {}", s("level"), s("since"));
                    if e.acked(now) {
                        line.push_str(&format!("  acknowledged by {}", s("acked_by")));
                        if let Some(u) = &e.acked_until {
                            line.push_str(&format!(" until {u}"));
                        }
                    }
                    if e.escalation > 0 {
                        line.push_str(&format!("  escalation level {}", e.escalation));
                    }
                    if let Some(n) = r.get("next_escalation") {
                        line.push_str(&format!("  next level {} at {}", n["level"], n["at"].as_str().unwrap_or("")));
                    }
                    writeln!(out, "{line}")?;
                }
            }
        }
        let silences = match Silences::load(&self.files.silences) {
            Ok(s) => s,
            Err(e) => {
                self.diag.warn(e);
                Silences::default()
            }
        };
        for s in silences.silences.iter().filter(|s| !s.expired(now)) {
            let r = s.record(now);
            match cli.format {
                Format::Ndjson => ndjson::write(out, &r)?,
                Format::Text => {
                    let next = match (r["next_starts_at"].as_str(), r["next_ends_at"].as_str()) {
                        (Some(a), Some(b)) => format!(" next {a} .. {b}"),
                        _ => String::new(),
                    };
                    let ms: Vec<String> = s.matchers.iter().map(ToString::to_string).collect();
                    writeln!(out, "silence {} {}{next}  {}", s.id, r["state"].as_str().unwrap_or(""), ms.join(" "))?;
                }
            }
        }
        Ok(Status::Ok)
    }
}
