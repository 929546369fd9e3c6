//! `rollup incidents`: every incident of the window with its life, joined from the metrics
//! and the histories notify and recover keep ([`crate::history`]).
//!
//! An incident is what the uptime report counts: a run of consecutive down checks of a
//! service, from its first down check (`first_failure`) to the next check that says the
//! service is back (`first_good_check`). The histories add the first alert notify raised
//! for the service (an `alert_event` `fired` whose subject is `check:NAME`, `recovery:NAME`
//! or `flapping:NAME`), the first acknowledgement (`acknowledged`), and recover's restarts
//! (`restart` records of NAME). The service is `back` at its first good check or at a
//! restart recover verified, whichever came first. From these: MTTD (first failure to first
//! alert), MTTA (first alert to first acknowledgement), MTTR (first failure to back), and
//! how it ended: `recover` (a verified restart), `person` (back after an acknowledgement, or
//! after a person was alerted with no restart that worked), `itself` (nobody was told, no
//! restart worked), or `ongoing`.
//!
//! The metrics are read in one stream in constant memory per service, except the incidents
//! themselves, which are kept (a few per service and day at most, in practice); the
//! histories of the window's days are read whole.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use time::Date;

use super::cli::Format;
use super::report::{Scope, md_escape, ts_of};
use super::scan::{self, Origin, ScanOpts, Scanner, day_number, ts_millis};
use super::stats::Incident;
use crate::clock::{self, Clock};
use crate::entry::Diag;
use crate::error::{Error, Result, Status};
use crate::history;
use crate::ndjson::LineReader;
use crate::ndjson::{self, Line};

/// A validated `rollup incidents` run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub metrics: PathBuf,
    /// The state directory: `alerts/` and `restarts/` are read from it.
    pub state: PathBuf,
    pub from: Date,
    pub to: Date,
    pub scope: Scope,
    pub format: Format,
    pub strict: bool,
    pub max_line: usize,
}

/// A restart recover ran, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestartOut {
    pub started: Option<String>,
    pub timestamp: String,
    pub outcome: String,
    pub attempt: Option<u64>,
    #[serde(skip)]
    at: i64,
}

/// What the histories say of one service, in time order.
#[derive(Debug, Default)]
struct Story {
    /// (time, event) of the service's alert events.
    alerts: Vec<(i64, history::Event)>,
    restarts: Vec<RestartOut>,
}

/// One incident, as written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentOut {
    pub kind: &'static str,
    pub name: String,
    pub first_failure: Option<String>,
    pub first_alert: Option<String>,
    pub first_ack: Option<String>,
    pub restarts: Vec<RestartOut>,
    pub first_good_check: Option<String>,
    pub back: Option<String>,
    /// `recover`, `person`, `itself` or `ongoing`.
    pub ended_by: &'static str,
    pub ongoing: bool,
    pub down_checks: u64,
    /// Alerts raised for it (fired and repeated).
    pub alerts: u64,
    pub mttd_s: Option<u64>,
    pub mtta_s: Option<u64>,
    pub mttr_s: Option<u64>,
    pub timestamp: String,
    #[serde(skip)]
    ms: Durations,
}

/// The three durations of an incident in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Durations {
    detect: Option<i64>,
    ack: Option<i64>,
    repair: Option<i64>,
}

/// Counts and means of a set of incidents (one service's, or all).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub kind: &'static str,
    /// `service` or `all`.
    pub scope: &'static str,
    pub name: Option<String>,
    pub from: String,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_days: Option<u32>,
    pub incidents: u64,
    pub ongoing: u64,
    pub mttd_s: Option<u64>,
    pub mtta_s: Option<u64>,
    pub mttr_s: Option<u64>,
    pub recovered_by_recover: u64,
    pub came_back_by_itself: u64,
    pub fixed_by_a_person: u64,
    pub timestamp: String,
}

/// Sums for the means.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    n: u64,
    ongoing: u64,
    sums: [(i128, u64); 3],
    recover: u64,
    itself: u64,
    person: u64,
}

impl Tally {
    fn add(&mut self, i: &IncidentOut) {
        self.n += 1;
        match i.ended_by {
            "recover" => self.recover += 1,
            "person" => self.person += 1,
            "itself" => self.itself += 1,
            _ => self.ongoing += 1,
        }
        for (k, v) in [i.ms.detect, i.ms.ack, i.ms.repair].into_iter().enumerate() {
            if let Some(ms) = v {
                self.sums[k].0 += i128::from(ms);
                self.sums[k].1 += 1;
            }
        }
    }

    /// The mean of the k-th duration in whole seconds (from the milliseconds).
    fn mean_s(&self, k: usize) -> Option<u64> {
        let (sum, n) = self.sums[k];
        (n > 0).then(|| {
            let ms = sum / i128::from(n);
            u64::try_from((ms + 500) / 1000).unwrap_or(0)
        })
    }

    fn summary(&self, plan: &Plan, name: Option<&str>, stamp: &str) -> Summary {
        Summary {
            kind: "incident_summary",
            scope: if name.is_some() { "service" } else { "all" },
            name: name.map(String::from),
            from: clock::fmt_date(plan.from),
            to: clock::fmt_date(plan.to),
            window_days: plan.scope.window_days,
            incidents: self.n,
            ongoing: self.ongoing,
            mttd_s: self.mean_s(0),
            mtta_s: self.mean_s(1),
            mttr_s: self.mean_s(2),
            recovered_by_recover: self.recover,
            came_back_by_itself: self.itself,
            fixed_by_a_person: self.person,
            timestamp: stamp.to_string(),
        }
    }
}

fn secs(ms: Option<i64>) -> Option<u64> {
    ms.map(|ms| u64::try_from((ms.max(0) + 500) / 1000).unwrap_or(0))
}

/// The service an alert subject is about: `check:api`, `recovery:api`, `flapping:api`.
fn service_of(subject: &str) -> Option<&str> {
    let (kind, name) = subject.split_once(':')?;
    matches!(kind, "check" | "recovery" | "flapping").then_some(name)
}

/// Malformed lines of the histories: how many, and the first one's place.
#[derive(Debug, Default)]
struct Bad {
    count: u64,
    first: Option<String>,
}

impl Bad {
    fn note(&mut self, strict: bool, source: &str, line: u64, why: String) -> Result<()> {
        if strict {
            return Err(Error::Input { source: source.to_string(), line, message: why });
        }
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(format!("{source}:{line}: {why}"));
        }
        Ok(())
    }
}

/// Read the history directory `dir` over the window, handing each record to `take`, which
/// says why a record cannot be used.
fn read_history(
    plan: &Plan,
    dir: &Path,
    bad: &mut Bad,
    take: &mut dyn FnMut(&Value) -> std::result::Result<(), String>,
) -> Result<()> {
    let (from, to) = (day_number(plan.from), day_number(plan.to));
    for f in scan::list_days(dir)?.into_iter().filter(|f| (from..=to).contains(&day_number(f.date))) {
        let name = f.path.display().to_string();
        let reader = match scan::open_file(&f.path, false) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) if scan::is_refusal(&e) => {
                bad.note(plan.strict, &name, 0, format!("cannot read it: {e}; skipped"))?;
                continue;
            }
            Err(e) => return Err(Error::path("cannot open", &f.path, e)),
        };
        let mut lines = LineReader::with_block(reader, plan.max_line, super::READ_BLOCK);
        loop {
            let next = match lines.next_line() {
                Ok(n) => n,
                Err(e) => {
                    bad.note(plan.strict, &name, 0, format!("cannot read further: {e}"))?;
                    break;
                }
            };
            let Some((lineno, line)) = next else { break };
            let verdict = match line {
                Line::Text(bytes) => ndjson::parse_object(bytes).and_then(|v| take(&v)),
                Line::TooLong(n) => Err(format!("line of {n} bytes is longer than the limit")),
            };
            if let Err(why) = verdict {
                bad.note(plan.strict, &name, lineno, why)?;
            }
        }
    }
    Ok(())
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// The time of a history record, or why it has none.
fn time_of(v: &Value) -> std::result::Result<i64, String> {
    let ts = str_of(v, "timestamp");
    ts_millis(ts).ok_or_else(|| format!("timestamp: '{}' is not a time", crate::util::truncate(ts, 40)))
}

/// What the histories say, per service.
fn stories(plan: &Plan, bad: &mut Bad) -> Result<BTreeMap<String, Story>> {
    let mut by: BTreeMap<String, Story> = BTreeMap::new();
    read_history(plan, &history::alerts_dir(&plan.state), bad, &mut |v| {
        if str_of(v, "kind") != "alert_event" {
            return Ok(());
        }
        let event: history::Event = serde_json::from_value(v.get("event").cloned().unwrap_or(Value::Null))
            .map_err(|_| format!("event: '{}' is not an alert event", crate::util::truncate(str_of(v, "event"), 40)))?;
        let Some(name) = service_of(str_of(v, "subject")) else { return Ok(()) };
        let at = time_of(v)?;
        by.entry(name.to_string()).or_default().alerts.push((at, event));
        Ok(())
    })?;
    read_history(plan, &history::restarts_dir(&plan.state), bad, &mut |v| {
        if str_of(v, "kind") != "restart" {
            return Ok(());
        }
        let name = str_of(v, "name");
        if name.is_empty() {
            return Err("restart: no name".into());
        }
        let at = time_of(v)?;
        let r = RestartOut {
            started: v.get("started").and_then(Value::as_str).map(String::from),
            timestamp: ts_of(Some(at)).unwrap_or_default(),
            outcome: str_of(v, "outcome").to_string(),
            attempt: v.get("attempt").and_then(Value::as_u64),
            at,
        };
        by.entry(name.to_string()).or_default().restarts.push(r);
        Ok(())
    })?;
    for s in by.values_mut() {
        s.alerts.sort_by_key(|(t, _)| *t);
        s.restarts.sort_by_key(|r| r.at);
    }
    Ok(by)
}

/// Join one incident of `name` with what the histories say.
fn join(name: &str, i: &Incident, story: Option<&Story>, stamp: &str) -> Option<IncidentOut> {
    let t0 = i.start?;
    let good = i.end;
    let empty = Story::default();
    let story = story.unwrap_or(&empty);
    let horizon = good.unwrap_or(i64::MAX);
    let fixed =
        story.restarts.iter().filter(|r| r.at >= t0 && r.at <= horizon && r.outcome == "recovered").map(|r| r.at).min();
    let back = match (good, fixed) {
        (Some(g), Some(f)) => Some(g.min(f)),
        (g, f) => g.or(f),
    };
    let end = back.unwrap_or(i64::MAX);
    let during = |t: i64| t >= t0 && t <= end;
    let first = |e: history::Event| story.alerts.iter().find(|(t, k)| *k == e && during(*t)).map(|(t, _)| *t);
    let alert = first(history::Event::Fired);
    let ack = first(history::Event::Acknowledged);
    let alerts = story
        .alerts
        .iter()
        .filter(|(t, k)| {
            during(*t) && matches!(k, history::Event::Fired | history::Event::Repeated | history::Event::Escalated)
        })
        .count() as u64;
    let ended_by = match back {
        None => "ongoing",
        Some(b) if fixed == Some(b) => "recover",
        Some(_) if ack.is_some() || alert.is_some() => "person",
        Some(_) => "itself",
    };
    let ms = Durations {
        detect: alert.map(|a| a - t0),
        ack: alert.zip(ack).map(|(a, k)| k - a),
        repair: back.map(|b| b - t0),
    };
    Some(IncidentOut {
        kind: "incident",
        name: name.to_string(),
        first_failure: ts_of(Some(t0)),
        first_alert: ts_of(alert),
        first_ack: ts_of(ack),
        restarts: story.restarts.iter().filter(|r| during(r.at)).cloned().collect(),
        first_good_check: ts_of(good),
        back: ts_of(back),
        ended_by,
        ongoing: back.is_none(),
        down_checks: i.checks,
        alerts,
        mttd_s: secs(ms.detect),
        mtta_s: secs(ms.ack),
        mttr_s: secs(ms.repair),
        timestamp: stamp.to_string(),
        ms,
    })
}

/// Run `rollup incidents`.
pub fn run(plan: &Plan, out: &mut dyn Write, diag: &Diag, clock: &Clock) -> Result<Status> {
    let opts = ScanOpts { log_incidents: true, strict: plan.strict, max_line: plan.max_line, ..ScanOpts::default() };
    let mut sc = Scanner::new(opts);
    let (from, to) = (day_number(plan.from), day_number(plan.to));
    if !plan.metrics.exists() {
        diag.warn(format_args!("metrics directory {} does not exist", plan.metrics.display()));
    }
    for f in scan::list_days(&plan.metrics)?.into_iter().filter(|f| (from..=to).contains(&day_number(f.date))) {
        let reader = match scan::open_file(&f.path, false) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) if scan::is_refusal(&e) => {
                sc.refused.push(format!("cannot read {}: {e}; skipped", f.path.display()));
                continue;
            }
            Err(e) => return Err(Error::path("cannot open", &f.path, e)),
        };
        let name = f.path.display().to_string();
        sc.scan(reader, Origin { name: &name, day: Some(day_number(f.date)) }, &mut std::io::sink())?;
    }
    let mut bad = Bad::default();
    let stories = stories(plan, &mut bad)?;
    let stamp = clock.stamp();
    let mut incidents = Vec::new();
    for (name, s) in sc.window.sorted() {
        let mut all: Vec<Incident> = s.incidents.all.clone().unwrap_or_default();
        all.extend(s.incidents.open.clone());
        incidents.extend(all.iter().filter_map(|i| join(name, i, stories.get(name), &stamp)));
    }
    incidents.sort_by(|a, b| a.first_failure.cmp(&b.first_failure).then_with(|| a.name.cmp(&b.name)));
    let mut per: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut total = Tally::default();
    for i in &incidents {
        per.entry(i.name.as_str()).or_default().add(i);
        total.add(i);
    }
    let services: Vec<Summary> = per.iter().map(|(n, t)| t.summary(plan, Some(n), &stamp)).collect();
    let overall = total.summary(plan, None, &stamp);
    match plan.format {
        Format::Text => text(out, plan, &incidents, &services, &overall)?,
        Format::Csv => csv_out(out, &incidents, &services, &overall)?,
        Format::Markdown => markdown(out, plan, &incidents, &services, &overall)?,
        _ => {
            for i in &incidents {
                ndjson::write(out, i)?;
            }
            for s in &services {
                ndjson::write(out, s)?;
            }
            ndjson::write(out, &overall)?;
        }
    }
    sc.report_rejects(diag);
    if bad.count > 0 {
        diag.count_rejected(bad.count);
        diag.warn(format_args!(
            "{} unusable history line(s) skipped (first: {})",
            bad.count,
            bad.first.as_deref().unwrap_or("?")
        ));
    }
    Ok(Status::Ok)
}

fn dur(s: Option<u64>) -> String {
    s.map(clock::human_duration).unwrap_or_else(|| "-".into())
}

/// `2026-11-23 10:05` of an RFC 3339 time.
fn when(ts: &Option<String>) -> String {
    match ts.as_deref().and_then(clock::parse_ts) {
        Some(t) => format!("{} {:02}:{:02}", clock::fmt_date(t.date()), t.hour(), t.minute()),
        None => "-".into(),
    }
}

fn ending(e: &str) -> &'static str {
    match e {
        "recover" => "recovered by recover",
        "person" => "fixed by a person",
        "itself" => "came back by itself",
        _ => "ongoing",
    }
}

/// One incident in words.
fn line(i: &IncidentOut) -> String {
    let mut parts = Vec::new();
    parts.push(match i.mttd_s {
        Some(s) => format!("alerted after {}", clock::human_duration(s)),
        None => "no alert".to_string(),
    });
    if let Some(s) = i.mtta_s {
        parts.push(format!("acknowledged after {}", clock::human_duration(s)));
    }
    if !i.restarts.is_empty() {
        let ok = i.restarts.iter().filter(|r| r.outcome == "recovered").count();
        parts.push(format!("{} restart(s), {ok} verified", i.restarts.len()));
    }
    let how_long = match (i.ongoing, i.mttr_s) {
        (false, Some(s)) => format!("down {}", clock::human_duration(s)),
        _ => "down, ongoing".to_string(),
    };
    format!(
        "{} {}: {how_long} ({} down checks); {}; {}",
        when(&i.first_failure),
        i.name,
        i.down_checks,
        parts.join(", "),
        ending(i.ended_by)
    )
}

/// A summary in words.
fn summary_line(s: &Summary) -> String {
    format!(
        "{} incident(s), {} ongoing; MTTD {}, MTTA {}, MTTR {}; {} recovered by recover, {} came back by itself, {} fixed by a person",
        s.incidents,
        s.ongoing,
        dur(s.mttd_s),
        dur(s.mtta_s),
        dur(s.mttr_s),
        s.recovered_by_recover,
        s.came_back_by_itself,
        s.fixed_by_a_person
    )
}

fn text(out: &mut dyn Write, plan: &Plan, inc: &[IncidentOut], per: &[Summary], all: &Summary) -> Result<()> {
    write!(out, "=== Incidents ({}) ===\n\n", plan.scope.label())?;
    if inc.is_empty() {
        writeln!(out, "No incidents.")?;
        return Ok(());
    }
    for i in inc {
        writeln!(out, "{}", line(i))?;
    }
    writeln!(out, "\nPer service:")?;
    for s in per {
        writeln!(out, "  {}: {}", s.name.as_deref().unwrap_or(""), summary_line(s))?;
    }
    writeln!(out, "Overall: {}", summary_line(all))?;
    Ok(())
}

fn markdown(out: &mut dyn Write, plan: &Plan, inc: &[IncidentOut], per: &[Summary], all: &Summary) -> Result<()> {
    writeln!(out, "## Incidents ({})\n", md_escape(&plan.scope.label()))?;
    if inc.is_empty() {
        writeln!(out, "No incidents.")?;
        return Ok(());
    }
    writeln!(out, "| service | failed | alerted after | acknowledged after | restarts | back after | ended |")?;
    writeln!(out, "|---|---|--:|--:|--:|--:|---|")?;
    for i in inc {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            md_escape(&i.name),
            when(&i.first_failure),
            dur(i.mttd_s),
            dur(i.mtta_s),
            i.restarts.len(),
            if i.ongoing { "ongoing".to_string() } else { dur(i.mttr_s) },
            ending(i.ended_by)
        )?;
    }
    writeln!(out, "\n| service | incidents | ongoing | MTTD | MTTA | MTTR | by recover | by itself | by a person |")?;
    writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|--:|")?;
    for s in per.iter().chain(std::iter::once(all)) {
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.name.as_deref().map(md_escape).unwrap_or_else(|| "**all**".into()),
            s.incidents,
            s.ongoing,
            dur(s.mttd_s),
            dur(s.mtta_s),
            dur(s.mttr_s),
            s.recovered_by_recover,
            s.came_back_by_itself,
            s.fixed_by_a_person
        )?;
    }
    Ok(())
}

const CSV_HEADER: &[&str] = &[
    "kind",
    "name",
    "first_failure",
    "first_alert",
    "first_ack",
    "restarts",
    "first_good_check",
    "back",
    "ended_by",
    "mttd_s",
    "mtta_s",
    "mttr_s",
    "incidents",
    "ongoing",
    "recovered_by_recover",
    "came_back_by_itself",
    "fixed_by_a_person",
];

fn csv_out(out: &mut dyn Write, inc: &[IncidentOut], per: &[Summary], all: &Summary) -> Result<()> {
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    let n = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_default();
    let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    let err = |e: csv::Error| Error::other(format!("writing CSV: {e}"));
    w.write_record(CSV_HEADER).map_err(err)?;
    for i in inc {
        w.write_record([
            i.kind.to_string(),
            i.name.clone(),
            o(&i.first_failure),
            o(&i.first_alert),
            o(&i.first_ack),
            i.restarts.len().to_string(),
            o(&i.first_good_check),
            o(&i.back),
            i.ended_by.to_string(),
            n(i.mttd_s),
            n(i.mtta_s),
            n(i.mttr_s),
            String::new(),
            i.ongoing.to_string(),
            String::new(),
            String::new(),
            String::new(),
        ])
        .map_err(err)?;
    }
    for s in per.iter().chain(std::iter::once(all)) {
        w.write_record([
            s.kind.to_string(),
            s.name.clone().unwrap_or_default(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            n(s.mttd_s),
            n(s.mtta_s),
            n(s.mttr_s),
            s.incidents.to_string(),
            s.ongoing.to_string(),
            s.recovered_by_recover.to_string(),
            s.came_back_by_itself.to_string(),
            s.fixed_by_a_person.to_string(),
        ])
        .map_err(err)?;
    }
    let bytes = w.into_inner().map_err(|e| Error::other(format!("writing CSV: {e}")))?;
    out.write_all(&bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn story(alerts: &[(i64, history::Event)], restarts: &[(i64, &str)]) -> Story {
        Story {
            alerts: alerts.to_vec(),
            restarts: restarts
                .iter()
                .map(|(at, o)| RestartOut {
                    started: None,
                    timestamp: String::new(),
                    outcome: o.to_string(),
                    attempt: Some(1),
                    at: *at,
                })
                .collect(),
        }
    }

    fn incident(start: i64, end: Option<i64>) -> Incident {
        Incident { start: Some(start), end, last_down: Some(start), checks: 2 }
    }

    #[test]
    fn how_an_incident_ended() {
        use history::Event::{Acknowledged, Fired, Repeated};
        let s = story(&[(60_000, Fired)], &[(120_000, "failed"), (180_000, "recovered")]);
        let i = join("api", &incident(0, Some(600_000)), Some(&s), "t").unwrap();
        assert_eq!((i.ended_by, i.mttd_s, i.mttr_s, i.restarts.len()), ("recover", Some(60), Some(180), 2));
        let s = story(&[(30_000, Fired), (90_000, Acknowledged), (4_000_000, Repeated)], &[]);
        let i = join("api", &incident(0, Some(900_000)), Some(&s), "t").unwrap();
        assert_eq!((i.ended_by, i.mttd_s, i.mtta_s, i.mttr_s, i.alerts), ("person", Some(30), Some(60), Some(900), 1));
        let i = join("api", &incident(0, Some(300_000)), None, "t").unwrap();
        assert_eq!((i.ended_by, i.mttd_s, i.mttr_s), ("itself", None, Some(300)));
        let i = join("api", &incident(0, None), Some(&story(&[(5_000, Fired)], &[(9_000, "failed")])), "t").unwrap();
        assert_eq!((i.ended_by, i.ongoing, i.mttr_s), ("ongoing", true, None));
        assert_eq!(service_of("recovery:api"), Some("api"));
        assert_eq!(service_of("uptime:api"), None);
    }
}
