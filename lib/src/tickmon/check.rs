//! `tickmon check`: one `tick` record per active agent for a month, RCA alerts for the
//! failed ones, and the pass-through of whatever else is on the input.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::rca::{self, Failure};
use super::registry::{AgentEntry, Registry};
use super::tick::{Month, Tick, TickStatus, last_tick_before, parse_tick, read_tick, tick_path};
use crate::clock::{self, Clock, fmt_ts, human_duration};
use crate::entry::Diag;
use crate::error::{Result, Status};
use crate::ndjson;
use crate::record::{Finding, Kind, Level, kind_of};

/// How to check.
#[derive(Debug, Clone)]
pub struct Opts {
    pub month: Month,
    pub grace: Duration,
    pub rca: bool,
    pub text: bool,
    pub ticks_dir: PathBuf,
}

/// Ticks that arrived on the input, by agent: the newest one wins.
#[derive(Debug, Default)]
pub struct StreamTicks {
    ticks: HashMap<String, Tick>,
}

impl StreamTicks {
    /// Take `v` if it is a submitted tick of a registered agent for the checked month; give
    /// it back otherwise (to be passed through).
    pub fn offer(&mut self, v: Value, registry: &Registry, month: Month) -> Option<Value> {
        if kind_of(&v) != Kind::Tick || v.get("month").and_then(Value::as_str) != Some(month.label().as_str()) {
            return Some(v);
        }
        let Some(agent) = v.get("agent").and_then(Value::as_str).filter(|a| registry.find(a).is_some()) else {
            return Some(v);
        };
        let agent = agent.to_string();
        let status_ok = v.get("status").and_then(Value::as_str).and_then(TickStatus::parse).is_some();
        if !status_ok {
            return Some(v);
        }
        let mut doc = v.clone();
        if let Some(m) = doc.as_object_mut() {
            m.remove("kind");
        }
        match parse_tick(doc, Some(&agent)) {
            Ok(t) => {
                let newer = match self.ticks.get(&agent) {
                    Some(old) => t.submitted() >= old.submitted(),
                    None => true,
                };
                if newer {
                    self.ticks.insert(agent, t);
                }
                None
            }
            Err(_) => Some(v),
        }
    }
}

/// What one agent's check found.
struct Outcome<'a> {
    agent: &'a AgentEntry,
    /// healthy, degraded, critical, offline, missing, pending, or invalid (a tick file that
    /// cannot be read as a tick).
    status: &'static str,
    tick: Option<Tick>,
    detail: String,
    failure: Option<Failure>,
}

/// Counts for the summary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub total: usize,
    pub healthy: usize,
    pub degraded: usize,
    pub failed: usize,
    pub pending: usize,
    pub problems: usize,
}

/// Check every active agent and write the records (or the text summary).
pub fn run(
    registry: &Registry,
    opts: &Opts,
    stream: StreamTicks,
    clock: &Clock,
    diag: &Diag,
    out: &mut dyn Write,
) -> Result<(Status, Summary)> {
    let now = clock.now();
    let stamp = fmt_ts(now);
    let due = opts.month.due(opts.grace);
    let mut findings: Vec<Finding> = Vec::new();
    for p in &registry.problems {
        diag.warn(&p.message);
        let why = p.message.clone();
        findings.push(Finding::new("tickmon", &p.subject, Level::Error, "invalid_agent", why, stamp.clone()));
    }
    let mut stream = stream;
    let outcomes: Vec<Outcome<'_>> = registry
        .active()
        .map(|agent| outcome(agent, opts, &mut stream, now, due, &stamp, diag, &mut findings))
        .collect();
    let summary = Summary::of(&findings, &outcomes);

    let mut alerts = Vec::new();
    if opts.text {
        write_text(out, opts, due, &stamp, &outcomes, &findings, &summary)?;
    } else {
        for f in &findings {
            ndjson::write(out, f)?;
        }
    }
    for o in &outcomes {
        let file = tick_path(&opts.ticks_dir, opts.month, &o.agent.id);
        if !opts.text {
            ndjson::write(out, &tick_record(o, opts.month, due, &file, &stamp))?;
        }
        if let (true, Some(failure)) = (opts.rca, o.failure) {
            let alert = rca_alert(o, failure, opts, due, now, &file);
            if opts.text {
                alerts.push(alert);
            } else {
                ndjson::write(out, &alert)?;
            }
        }
    }
    if opts.text && !alerts.is_empty() {
        writeln!(out)?;
        for a in &alerts {
            writeln!(out, "RCA: {}", a["title"].as_str().unwrap_or(""))?;
        }
    }
    Ok((Status::failures_if(summary.failed > 0 || summary.problems > 0), summary))
}

/// One agent's outcome: its tick from the file or the stream (the newer), judged; a tick file
/// that cannot be read is also a finding.
#[allow(clippy::too_many_arguments)]
fn outcome<'a>(
    agent: &'a AgentEntry,
    opts: &Opts,
    stream: &mut StreamTicks,
    now: OffsetDateTime,
    due: OffsetDateTime,
    stamp: &str,
    diag: &Diag,
    findings: &mut Vec<Finding>,
) -> Outcome<'a> {
    let file = tick_path(&opts.ticks_dir, opts.month, &agent.id);
    let mut unusable = None;
    let from_file = match read_tick(&file, &agent.id) {
        Ok(t) => t,
        Err(why) => {
            diag.warn(&why);
            findings.push(Finding::new("tickmon", &agent.id, Level::Error, "invalid_tick", why.clone(), stamp.into()));
            unusable = Some(why);
            None
        }
    };
    let tick = match (from_file, stream.ticks.remove(&agent.id)) {
        (Some(f), Some(s)) => Some(if s.submitted() > f.submitted() { s } else { f }),
        (f, s) => f.or(s),
    };
    match (tick, unusable) {
        // A tick is there but says nothing the protocol knows: the agent did submit, so
        // it is neither missing nor a reason for an RCA; the finding says what to fix.
        (None, Some(why)) => Outcome { agent, status: "invalid", tick: None, detail: why, failure: None },
        (tick, _) => judge(agent, tick, now, due),
    }
}

/// The RCA alert for an agent that failed.
fn rca_alert(
    o: &Outcome<'_>,
    failure: Failure,
    opts: &Opts,
    due: OffsetDateTime,
    now: OffsetDateTime,
    file: &std::path::Path,
) -> Value {
    let last =
        if failure == Failure::Missing { last_tick_before(&opts.ticks_dir, &o.agent.id, opts.month, 12) } else { None };
    rca::alert(&rca::Input {
        agent: o.agent,
        failure,
        month: opts.month,
        due,
        now,
        tick: o.tick.as_ref(),
        tick_file: file,
        last_tick: last.as_ref().map(|(m, t)| (*m, t)),
        detail: &o.detail,
    })
}

impl Summary {
    /// The counts of a run's outcomes and findings.
    fn of(findings: &[Finding], outcomes: &[Outcome<'_>]) -> Summary {
        let mut summary = Summary { problems: findings.len(), ..Summary::default() };
        for o in outcomes {
            summary.total += 1;
            match o.status {
                "healthy" => summary.healthy += 1,
                "degraded" => summary.degraded += 1,
                "pending" => summary.pending += 1,
                _ => summary.failed += 1,
            }
        }
        summary
    }
}

fn judge(agent: &AgentEntry, tick: Option<Tick>, now: OffsetDateTime, due: OffsetDateTime) -> Outcome<'_> {
    let Some(t) = tick else {
        let (status, detail, failure) = if now >= due {
            let late = human_duration((now - due).whole_seconds().max(0) as u64);
            ("missing", format!("no tick; it was due {} ({late} ago)", fmt_ts(due)), Some(Failure::Missing))
        } else {
            let left = human_duration((due - now).whole_seconds().max(0) as u64);
            ("pending", format!("no tick yet; due {} (in {left})", fmt_ts(due)), None)
        };
        return Outcome { agent, status, tick: None, detail, failure };
    };
    let when = t.timestamp.clone().unwrap_or_else(|| "at an unknown time".into());
    let mut detail = match t.status {
        TickStatus::Healthy => format!("submitted {when}"),
        _ => {
            let mut bad: Vec<String> = t.failed_vitals().into_iter().map(|v| format!("{v} false")).collect();
            bad.extend(t.lost_capabilities().into_iter().map(|c| format!("capability {c} lost")));
            if bad.is_empty() {
                format!("{} (submitted {when})", t.status.as_str())
            } else {
                format!("{}: {} (submitted {when})", t.status.as_str(), bad.join(", "))
            }
        }
    };
    if let Some(s) = t.submitted().filter(|s| *s > due) {
        detail
            .push_str(&format!("; submitted {} after the deadline", human_duration((s - due).whole_seconds() as u64)));
    }
    let failure = match t.status {
        TickStatus::Critical => Some(Failure::Critical),
        TickStatus::Offline => Some(Failure::Offline),
        _ => None,
    };
    Outcome { agent, status: t.status.as_str(), tick: Some(t), detail, failure }
}

fn tick_record(o: &Outcome<'_>, month: Month, due: OffsetDateTime, file: &std::path::Path, stamp: &str) -> Value {
    let mut m = Map::new();
    m.insert("kind".into(), json!("tick"));
    m.insert("agent".into(), json!(o.agent.id));
    m.insert("name".into(), json!(o.agent.name));
    m.insert("month".into(), json!(month.label()));
    m.insert("status".into(), json!(o.status));
    let (vitals, caps) = match &o.tick {
        Some(t) => (Value::Object(t.vitals.clone()), Value::Object(t.capabilities.clone())),
        None => (json!({}), json!({})),
    };
    m.insert("vitals".into(), vitals);
    m.insert("capabilities".into(), caps);
    m.insert("due".into(), json!(fmt_ts(due)));
    if let Some(t) = &o.tick {
        let submitted = t.submitted().map(clock::fmt_ts).or_else(|| t.timestamp.clone());
        m.insert("submitted_at".into(), json!(submitted));
        if let Some(h) = t.raw.get("host") {
            m.insert("host".into(), h.clone());
        }
    }
    m.insert("file".into(), json!(file.display().to_string()));
    m.insert("detail".into(), json!(o.detail));
    m.insert("timestamp".into(), json!(stamp));
    Value::Object(m)
}

fn write_text(
    out: &mut dyn Write,
    opts: &Opts,
    due: OffsetDateTime,
    stamp: &str,
    outcomes: &[Outcome<'_>],
    findings: &[Finding],
    s: &Summary,
) -> Result<()> {
    writeln!(out, "Agent ticks for {} (due {}), checked {stamp}", opts.month.label(), fmt_ts(due))?;
    writeln!(out)?;
    let width = outcomes.iter().map(|o| o.agent.id.len()).max().unwrap_or(0).max(5);
    for o in outcomes {
        writeln!(out, "  {:<width$}  {:<9} {}", o.agent.id, o.status.to_uppercase(), o.detail)?;
    }
    for f in findings {
        writeln!(out, "  [INVALID] {}", f.detail)?;
    }
    if !outcomes.is_empty() || !findings.is_empty() {
        writeln!(out)?;
    }
    writeln!(
        out,
        "{} agent(s): {} healthy, {} degraded, {} failed, {} pending",
        s.total, s.healthy, s.degraded, s.failed, s.pending
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::parse_ts;
    use std::path::Path;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pitcrew-check-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn registry() -> Registry {
        Registry::parse(
            br#"{"agents":[{"id":"atlas","name":"Atlas"},{"id":"beacon"},{"id":"cinder"},{"id":"old","active":false}]}"#,
            Path::new("r.json"),
        )
        .unwrap()
    }

    fn run_at(now: &str, dir: &Path, rca: bool, stream: StreamTicks) -> (Status, Vec<Value>, String) {
        let clock = Clock::fixed(parse_ts(now).unwrap());
        let opts = Opts {
            month: Month::parse("2026-11").unwrap(),
            grace: Duration::from_secs(72 * 3600),
            rca,
            text: false,
            ticks_dir: dir.to_path_buf(),
        };
        let (diag, err) = Diag::memory("tickmon");
        let mut out = Vec::new();
        let (st, _) = run(&registry(), &opts, stream, &clock, &diag, &mut out).unwrap();
        let recs = String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        (st, recs, err.text())
    }

    fn write_tick(dir: &Path, agent: &str, body: Value) {
        let p = dir.join("2026-11").join(format!("{agent}.json"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body.to_string()).unwrap();
    }

    #[test]
    fn pending_inside_the_window_missing_after_it() {
        let d = tmpdir("window");
        write_tick(&d, "atlas", json!({"agent":"atlas","status":"healthy","timestamp":"2026-11-01T09:00:00Z"}));
        let (st, recs, _) = run_at("2026-11-02T00:00:00Z", &d, false, StreamTicks::default());
        assert_eq!(st, Status::Ok);
        let status: Vec<&str> = recs.iter().map(|r| r["status"].as_str().unwrap()).collect();
        assert_eq!(status, ["healthy", "pending", "pending"]);
        assert_eq!(recs[1]["due"], "2026-11-04T00:00:00.000Z");
        let (st, recs, _) = run_at("2026-11-04T00:00:00Z", &d, false, StreamTicks::default());
        assert_eq!(st, Status::Failures);
        assert_eq!(recs[1]["status"], "missing");
        assert_eq!(recs[1]["detail"], "no tick; it was due 2026-11-04T00:00:00.000Z (0s ago)");
        assert!(recs.iter().all(|r| r["agent"] != "old"), "inactive agents are skipped");
    }

    #[test]
    fn failed_ticks_get_rca_alerts_and_degraded_ones_do_not() {
        let d = tmpdir("rca");
        write_tick(&d, "atlas", json!({"agent":"atlas","status":"degraded","capabilities":{"deploy":false}}));
        write_tick(&d, "beacon", json!({"agent":"beacon","status":"offline","timestamp":"2026-11-05T00:00:00Z"}));
        let (st, recs, _) = run_at("2026-11-23T10:30:00Z", &d, true, StreamTicks::default());
        assert_eq!(st, Status::Failures);
        let kinds: Vec<String> =
            recs.iter().map(|r| format!("{}:{}", r["kind"].as_str().unwrap(), r["status"].as_str().unwrap())).collect();
        assert_eq!(kinds, ["tick:degraded", "tick:offline", "alert:firing", "tick:missing", "alert:firing"]);
        assert_eq!(recs[0]["detail"], "degraded: capability deploy lost (submitted at an unknown time)");
        assert!(recs[1]["detail"].as_str().unwrap().ends_with("submitted 1d after the deadline"), "{}", recs[1]);
        assert_eq!(recs[2]["title"], "RCA-AGENT: beacon reported offline status (2026-11)");
        assert_eq!(recs[4]["title"], "RCA-AGENT: cinder failed to submit monthly tick (2026-11)");
    }

    #[test]
    fn a_corrupt_tick_is_a_finding_and_does_not_count() {
        let d = tmpdir("corrupt");
        let p = d.join("2026-11").join("atlas.json");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "{\"status\":").unwrap();
        let (st, recs, err) = run_at("2026-11-23T10:30:00Z", &d, false, StreamTicks::default());
        assert_eq!(st, Status::Failures);
        assert_eq!(recs[0]["kind"], "finding");
        assert_eq!(recs[0]["problem"], "invalid_tick");
        assert!(err.contains("atlas.json:1:"), "{err}");
        assert_eq!(recs[1]["status"], "invalid", "a tick is there: not missing");
        assert!(recs.iter().all(|r| r["kind"] != "alert" || r["agent"] != "atlas"), "no RCA for a tick that is there");
    }

    #[test]
    fn a_tick_with_a_status_the_protocol_does_not_know_is_not_missing() {
        let d = tmpdir("unknown-status");
        write_tick(&d, "atlas", json!({"agent":"atlas","status":"unknown","timestamp":"2026-11-01T09:00:00Z"}));
        let (st, recs, err) = run_at("2026-11-23T10:30:00Z", &d, true, StreamTicks::default());
        assert_eq!(st, Status::Failures);
        assert!(err.contains("status: 'unknown' is not one of"), "{err}");
        let atlas: Vec<&Value> = recs.iter().filter(|r| r["agent"] == "atlas" || r["subject"] == "atlas").collect();
        let kinds: Vec<String> = atlas
            .iter()
            .map(|r| format!("{}:{}", r["kind"].as_str().unwrap(), r["status"].as_str().unwrap_or("")))
            .collect();
        assert_eq!(kinds, ["finding:", "tick:invalid"], "{atlas:?}");
        assert!(atlas[1]["detail"].as_str().unwrap().contains("'unknown'"), "{}", atlas[1]);
        assert!(!recs.iter().any(|r| r["title"].as_str().is_some_and(|t| t.contains("atlas failed to submit"))));
    }

    #[test]
    fn ticks_on_the_stream_count_and_others_pass() {
        let d = tmpdir("stream");
        let reg = registry();
        let m = Month::parse("2026-11").unwrap();
        let mut s = StreamTicks::default();
        let tick = json!({"kind":"tick","agent":"beacon","month":"2026-11","status":"healthy","timestamp":"2026-11-01T00:00:00Z"});
        assert!(s.offer(tick, &reg, m).is_none());
        let other_month = json!({"kind":"tick","agent":"beacon","month":"2026-10","status":"healthy"});
        assert!(s.offer(other_month, &reg, m).is_some());
        let missing = json!({"kind":"tick","agent":"cinder","month":"2026-11","status":"missing"});
        assert!(s.offer(missing, &reg, m).is_some());
        let stranger = json!({"kind":"tick","agent":"zed","month":"2026-11","status":"healthy"});
        assert!(s.offer(stranger, &reg, m).is_some());
        assert!(s.offer(json!({"kind":"check","name":"x","status":"up"}), &reg, m).is_some());
        let (_, recs, _) = run_at("2026-11-23T10:30:00Z", &d, false, s);
        assert_eq!(recs[1]["agent"], "beacon");
        assert_eq!(recs[1]["status"], "healthy");
        assert_eq!(recs[1]["submitted_at"], "2026-11-01T00:00:00.000Z");
    }
}
