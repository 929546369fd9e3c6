//! From statistics to output: the `uptime` record, and the text (the Agent Ops Kit's report), CSV,
//! Markdown and Prometheus renderings of the same figures.

use std::io::Write;

use serde::Serialize;
use time::Date;

use super::coverage::{self, Figures};
use super::scan::day_date;
use super::stats::{Incident, ServiceStats, py_repr, py_round};
use crate::clock;
use crate::error::{Error, Result};
use crate::ndjson;
use crate::util::prom::{Prom, Type};

/// The span a set of records covers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope {
    /// `--days N` (and not a day of `--by day`).
    pub window_days: Option<u32>,
    /// The window ends today (`--days N` alone): the Agent Ops Kit's "last N days".
    pub rolling: bool,
    /// The first and last day (inclusive), when known.
    pub from: Option<Date>,
    pub to: Option<Date>,
    /// The day of a `--by day` record.
    pub day: Option<Date>,
}

impl Scope {
    /// The scope of one day of `--by day`.
    pub fn of_day(day: i32) -> Scope {
        let d = day_date(day);
        Scope { window_days: None, rolling: false, from: d, to: d, day: d }
    }

    /// How the text report's header names the span: the Agent Ops Kit's `last 7 days`, a day, or
    /// `2026-11-01 to 2026-11-07`.
    pub fn label(&self) -> String {
        match (self.window_days, self.from, self.to) {
            (Some(n), _, _) if self.rolling => format!("last {n} days"),
            (_, Some(f), Some(t)) if f == t => clock::fmt_date(f),
            (_, Some(f), Some(t)) => format!("{} to {}", clock::fmt_date(f), clock::fmt_date(t)),
            _ => "all input".to_string(),
        }
    }

    /// The `window` label of the Prometheus samples: `7d`, or `FROM..TO`.
    fn prom_window(&self) -> String {
        match (self.window_days, self.from, self.to) {
            (Some(n), _, _) if self.rolling => format!("{n}d"),
            (_, Some(f), Some(t)) => format!("{}..{}", clock::fmt_date(f), clock::fmt_date(t)),
            _ => "all".into(),
        }
    }
}

/// How the SLA treats time nobody watched (`--unknown-as`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnknownAs {
    /// Left out: the SLA is judged on the checks, which cover only the known time.
    #[default]
    Excluded,
    /// Counted as down.
    Down,
    /// Counted as up.
    Up,
}

impl UnknownAs {
    pub fn as_str(self) -> &'static str {
        match self {
            UnknownAs::Excluded => "excluded",
            UnknownAs::Down => "down",
            UnknownAs::Up => "up",
        }
    }
}

/// Below this coverage (percent) an SLA verdict says it was judged on little.
pub const LOW_COVERAGE: f64 = 90.0;

/// The longest unknown stretch of a service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GapOut {
    pub start: Option<String>,
    pub end: Option<String>,
    pub duration_s: u64,
}

/// A stretch in which no check of any service was written, longer than twice the monitor's
/// cadence: the monitor itself was silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitoringGap {
    /// The last line before the silence, and the first after it (or the window's end).
    pub start: i64,
    pub end: i64,
    /// Nothing was written since `start` up to now.
    pub ongoing: bool,
    /// The monitor's cadence (grid units).
    pub cadence: u64,
}

impl MonitoringGap {
    pub fn duration_s(&self) -> u64 {
        (((self.end - self.start).max(0) + 500) / 1000) as u64
    }

    /// The gap as a `finding` record (`problem: monitoring_gap`), which notify announces once.
    pub fn finding(&self, stamp: &str) -> crate::record::Finding {
        let limit = clock::human_duration((2 * self.cadence).div_ceil(coverage::UNITS_PER_S));
        let end = (!self.ongoing).then_some(self.end);
        gap_finding(
            self.start,
            end,
            self.duration_s(),
            &format!("more than {limit}, twice the monitor's cadence"),
            stamp,
        )
    }

    /// One line for people: `monitoring silent from ... to ... (6h 0m)`.
    pub fn text(&self) -> String {
        let start = ts_of(Some(self.start)).unwrap_or_default();
        let took = clock::human_duration(self.duration_s());
        if self.ongoing {
            format!("no check of any service since {start} ({took} so far)")
        } else {
            format!("no check of any service from {start} to {} ({took})", ts_of(Some(self.end)).unwrap_or_default())
        }
    }
}

/// A `finding` (`source: rollup`, `subject: monitoring`, `problem: monitoring_gap`) for a
/// silence of the monitor from `start` to `end` (`None`: still silent), `duration_s` long,
/// with `why` it counts (`more than 10m, twice the longest cadence`).
pub fn gap_finding(start: i64, end: Option<i64>, duration_s: u64, why: &str, stamp: &str) -> crate::record::Finding {
    let start = ts_of(Some(start)).unwrap_or_default();
    let took = clock::human_duration(duration_s);
    let detail = match end.and_then(|e| ts_of(Some(e))) {
        Some(end) => format!("no check of any service from {start} to {end} ({took}; {why})"),
        None => format!("no check of any service since {start} ({took} so far; {why})"),
    };
    let mut f = crate::record::Finding::new(
        "rollup",
        "monitoring",
        crate::record::Level::Warning,
        "monitoring_gap",
        detail,
        stamp.to_string(),
    );
    f.extra.insert("start".into(), start.into());
    f.extra.insert("end".into(), end.and_then(|e| ts_of(Some(e))).map_or(serde_json::Value::Null, Into::into));
    f.extra.insert("duration_s".into(), duration_s.into());
    f.extra.insert("ongoing".into(), end.is_none().into());
    f
}

/// One incident as written in `recent_incidents`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentOut {
    pub start: Option<String>,
    pub end: Option<String>,
    pub duration_s: Option<u64>,
    pub checks: u64,
    pub ongoing: bool,
}

pub fn ts_of(ms: Option<i64>) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms?) * 1_000_000).ok()?;
    Some(clock::fmt_ts(t))
}

/// The last check's time in pitcrew's form (as written when it cannot be read).
fn last_check(raw: &str) -> Option<String> {
    if raw.is_empty() {
        return None;
    }
    Some(ts_of(super::scan::ts_millis(raw)).unwrap_or_else(|| raw.to_string()))
}

impl IncidentOut {
    pub fn of(i: &Incident) -> IncidentOut {
        IncidentOut {
            start: ts_of(i.start),
            end: ts_of(i.end),
            duration_s: i.duration_ms().map(|ms| ((ms + 500) / 1000) as u64),
            checks: i.checks,
            ongoing: i.ongoing(),
        }
    }
}

/// The `uptime` record (design section 3).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Uptime {
    pub kind: &'static str,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub uptime_percent: f64,
    pub total_checks: u64,
    pub failures: u64,
    pub degraded: u64,
    pub avg_latency_ms: f64,
    pub p50_latency_ms: Option<f64>,
    pub p95_latency_ms: Option<f64>,
    pub p99_latency_ms: Option<f64>,
    pub incidents: u64,
    pub longest_outage_s: u64,
    pub recent_incidents: Vec<IncidentOut>,
    pub last_status: Option<&'static str>,
    pub last_check: Option<String>,
    /// The cadence unknown time is judged by (seconds), and where it came from:
    /// `interval_seconds` or `median`.
    pub cadence_s: Option<f64>,
    pub cadence_from: Option<&'static str>,
    /// Known time over the window's time, in percent; the unknown time in seconds; the
    /// longest unknown stretch.
    pub coverage_percent: Option<f64>,
    pub unknown_s: Option<u64>,
    pub longest_gap: Option<GapOut>,
    /// Up time over known time, in percent (time-weighted, beside the kit's check-counted
    /// `uptime_percent`).
    pub uptime_known_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sla_percent: Option<f64>,
    /// With `--sla`: how unknown time was counted, the uptime judged, and whether it was
    /// judged on less than [`LOW_COVERAGE`] percent coverage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_as: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sla_uptime_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low_coverage: Option<bool>,
    /// `breach` or `ok`, only with an SLA: without one, rollup judges nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    /// With `--exclude-maintenance`: the uptime of the checks outside maintenance windows,
    /// and how many checks fell inside one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_outside_maintenance_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance_checks: Option<u64>,
    /// With a quorum, for a service several places checked: its uptime by quorum.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub by_quorum: Option<super::quorum::Figure>,
    pub timestamp: String,
    /// Whether uptime is below the SLA, before rounding.
    #[serde(skip)]
    pub breach: bool,
    /// Sum and count of every latency of the name (Prometheus' summary).
    #[serde(skip)]
    pub latency_sum_ms: f64,
    #[serde(skip)]
    pub latency_count: u64,
    /// Up (and degraded) over all checks, unrounded (Prometheus' ratio).
    #[serde(skip)]
    pub uptime_ratio: Option<f64>,
    /// The coverage figures and the span they were taken over (ms), for the status page.
    #[serde(skip)]
    pub figures: Option<Figures>,
    #[serde(skip)]
    pub span: Option<(i64, i64)>,
    #[serde(skip)]
    pub first_last: Option<((i64, bool), (i64, bool))>,
}

impl Uptime {
    pub fn build(name: &str, s: &ServiceStats, scope: &Scope, sla: Option<f64>, stamp: &str) -> Uptime {
        let breach = match sla {
            Some(pct) => s.total() > 0 && s.uptime_raw() < pct,
            None => false,
        };
        let (recent, _) = s.incidents.finished();
        Uptime {
            kind: "uptime",
            name: name.to_string(),
            window_days: scope.window_days,
            day: scope.day.map(clock::fmt_date),
            from: scope.from.map(clock::fmt_date),
            to: scope.to.map(clock::fmt_date),
            uptime_percent: s.uptime_percent(),
            total_checks: s.total(),
            failures: s.down,
            degraded: s.degraded,
            avg_latency_ms: s.avg_latency_ms(),
            p50_latency_ms: s.percentile(0.50),
            p95_latency_ms: s.percentile(0.95),
            p99_latency_ms: s.percentile(0.99),
            incidents: s.incidents.count,
            longest_outage_s: s.incidents.longest_s(),
            recent_incidents: recent.iter().map(IncidentOut::of).collect(),
            last_status: s.last_status.map(|st| st.as_str()),
            last_check: last_check(&s.last_ts),
            cadence_s: None,
            cadence_from: None,
            coverage_percent: None,
            unknown_s: None,
            longest_gap: None,
            uptime_known_percent: None,
            sla_percent: sla,
            unknown_as: None,
            sla_uptime_percent: None,
            low_coverage: None,
            status: sla.map(|_| if breach { "breach" } else { "ok" }),
            uptime_outside_maintenance_percent: None,
            maintenance_checks: None,
            by_quorum: None,
            timestamp: stamp.to_string(),
            breach,
            latency_sum_ms: s.latency.total(),
            latency_count: s.latency.count,
            uptime_ratio: if s.total() == 0 { None } else { Some((s.up + s.degraded) as f64 / s.total() as f64) },
            figures: None,
            span: None,
            first_last: None,
        }
    }

    /// With `--exclude-maintenance`: the uptime outside maintenance windows beside the raw one.
    pub fn with_maintenance(mut self, s: &ServiceStats, on: bool) -> Uptime {
        if on {
            self.uptime_outside_maintenance_percent = s.uptime_outside_maintenance().map(|u| py_round(u, 2));
            self.maintenance_checks = Some(s.maintenance.0 + s.maintenance.1);
        }
        self
    }

    /// With a quorum: the uptime by quorum of the service, when several places checked it.
    pub fn with_quorum(mut self, figure: Option<&super::quorum::Figure>) -> Uptime {
        self.by_quorum = figure.cloned();
        self
    }

    /// `by quorum 2 of 3 places: 99.93%` (`unknown` without known time).
    pub fn quorum_text(&self) -> Option<String> {
        let q = self.by_quorum.as_ref()?;
        let pct = q.quorum_uptime_percent.map_or_else(|| "unknown".to_string(), |u| format!("{}%", py_repr(u)));
        Some(format!("by quorum {} of {} places: {pct}", q.quorum, q.quorum_places.len()))
    }

    /// Add the coverage figures of `s` over `span` (with the cadence `configured`, in grid
    /// units, when services.json sets one), and judge the SLA with unknown time counted as
    /// `unknown_as`: left out (the check-counted uptime, which only covers known time), or as
    /// down or up (`uptime × coverage`, plus the unknown share when up).
    pub fn with_coverage(
        mut self,
        s: &ServiceStats,
        span: Option<(i64, i64)>,
        configured: Option<u64>,
        unknown_as: UnknownAs,
    ) -> Uptime {
        let fig = coverage::figures(&s.coverage, span, configured);
        self.span = span;
        self.first_last = s.coverage.first.zip(s.coverage.last);
        let cov = fig.as_ref().and_then(Figures::coverage);
        if let Some(f) = &fig {
            self.cadence_s = Some(coverage::units_to_s(f.cadence));
            self.cadence_from = Some(if f.configured { "interval_seconds" } else { "median" });
            self.coverage_percent = cov.map(|c| py_round(c, 2));
            self.unknown_s = Some((f.split.unknown_ms + 500) / 1000);
            self.longest_gap = f.longest_gap.map(|(a, b)| GapOut {
                start: ts_of(Some(a)),
                end: ts_of(Some(b)),
                duration_s: (((b - a).max(0) + 500) / 1000) as u64,
            });
            self.uptime_known_percent = f.uptime_known().map(|u| py_round(u, 2));
        }
        self.figures = fig;
        if let Some(pct) = self.sla_percent {
            let raw = s.uptime_raw();
            let basis = match (unknown_as, cov) {
                (UnknownAs::Excluded, _) | (_, None) => raw,
                (UnknownAs::Down, Some(c)) => raw * c / 100.0,
                (UnknownAs::Up, Some(c)) => raw * c / 100.0 + (100.0 - c),
            };
            self.breach = s.total() > 0 && basis < pct;
            self.status = Some(if self.breach { "breach" } else { "ok" });
            self.unknown_as = Some(unknown_as.as_str());
            self.sla_uptime_percent = (s.total() > 0).then(|| py_round(basis, 2));
            self.low_coverage = cov.map(|c| c < LOW_COVERAGE);
        }
        self
    }

    /// The Agent Ops Kit's indicator: OK from 99.5%, WARN from 95%, CRITICAL below.
    pub fn indicator(&self) -> &'static str {
        if self.uptime_percent >= 99.5 {
            "OK"
        } else if self.uptime_percent >= 95.0 {
            "WARN"
        } else {
            "CRITICAL"
        }
    }

    /// A figure as the Agent Ops Kit's Python prints it: `0` (an int) without checks, else the float.
    fn kit_number(&self, x: f64) -> String {
        if self.total_checks == 0 { "0".to_string() } else { py_repr(x) }
    }

    /// The Agent Ops Kit's report line, with the SLA verdict appended when `--sla` is given.
    pub fn text_line(&self) -> String {
        let mut line = format!(
            "[{}] {}: {}% uptime ({} failures in {} checks, avg {}ms)",
            self.indicator(),
            self.name,
            self.kit_number(self.uptime_percent),
            self.failures,
            self.total_checks,
            self.kit_number(self.avg_latency_ms),
        );
        if let Some(n) = self.maintenance_checks {
            match self.uptime_outside_maintenance_percent {
                Some(u) => line.push_str(&format!(", {}% outside maintenance ({n} checks in windows)", py_repr(u))),
                None => line.push_str(&format!(", all {n} checks in maintenance windows")),
            }
        }
        if let Some(q) = self.quorum_text() {
            line.push_str(&format!(", {q}"));
        }
        if let Some(sla) = self.sla_percent {
            let verdict = if self.breach { "BREACH" } else { "met" };
            line.push_str(&format!(" SLA {}%: {verdict}", py_repr(sla).trim_end_matches(".0")));
            let notes = self.sla_notes();
            if !notes.is_empty() {
                line.push_str(&format!(" ({})", notes.join("; ")));
            }
        }
        line
    }

    /// What an SLA verdict needs said beside it: unknown time counted as down or up, and a
    /// coverage under [`LOW_COVERAGE`].
    pub fn sla_notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let unknown = self.unknown_s.unwrap_or(0) > 0;
        match self.unknown_as {
            Some(how @ ("down" | "up")) if unknown => notes.push(format!("unknown time counted as {how}")),
            _ => {}
        }
        if let (Some(true), Some(c)) = (self.low_coverage, self.coverage_percent) {
            notes.push(format!("judged on {}% coverage", py_repr(c).trim_end_matches(".0")));
        }
        notes
    }
}

/// The output formats of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Ndjson,
    Text,
    Csv,
    Markdown,
    Prometheus,
}

/// Writes batches of records in one format, keeping what a format writes only once.
pub struct Writer {
    style: Style,
    started: bool,
    /// The CSV and Markdown tables have the uptime by quorum's columns.
    quorum: bool,
}

const CSV_HEADER: &[&str] = &[
    "name",
    "day",
    "from",
    "to",
    "window_days",
    "uptime_percent",
    "total_checks",
    "failures",
    "degraded",
    "avg_latency_ms",
    "p50_latency_ms",
    "p95_latency_ms",
    "p99_latency_ms",
    "incidents",
    "longest_outage_s",
    "last_status",
    "last_check",
    "sla_percent",
    "status",
    "cadence_s",
    "coverage_percent",
    "unknown_s",
    "uptime_known_percent",
    "longest_gap_start",
    "longest_gap_end",
    "longest_gap_s",
    "unknown_as",
    "sla_uptime_percent",
    "low_coverage",
];

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

impl Writer {
    pub fn new(style: Style) -> Writer {
        Writer { style, started: false, quorum: false }
    }

    /// Give the tables the uptime by quorum's columns (a quorum was asked for).
    pub fn with_quorum(mut self, on: bool) -> Writer {
        self.quorum = on;
        self
    }

    /// Write one batch: the window's records, or one day's.
    pub fn batch(&mut self, out: &mut dyn Write, scope: &Scope, records: &[Uptime]) -> Result<()> {
        let first = !self.started;
        self.started = true;
        match self.style {
            Style::Ndjson => {
                for r in records {
                    ndjson::write(out, r)?;
                }
            }
            Style::Text => {
                if !first {
                    out.write_all(b"\n")?;
                }
                write!(out, "=== Uptime Report ({}) ===\n\n", scope.label())?;
                for r in records {
                    writeln!(out, "{}", r.text_line())?;
                }
            }
            Style::Csv => csv_batch(out, records, first, self.quorum)?,
            Style::Markdown => markdown_batch(out, scope, records, first, self.quorum)?,
            Style::Prometheus => prometheus(out, scope, records)?,
        }
        Ok(())
    }

    /// Write the monitor's own silences: `finding` records (NDJSON), a list (Markdown), two
    /// gauges (Prometheus). The Agent Ops Kit's text report and the CSV rows stay as they are.
    pub fn gaps(&mut self, out: &mut dyn Write, scope: &Scope, gaps: &[MonitoringGap], stamp: &str) -> Result<()> {
        match self.style {
            Style::Ndjson => {
                for g in gaps {
                    ndjson::write(out, &g.finding(stamp))?;
                }
            }
            Style::Markdown if !gaps.is_empty() => {
                out.write_all(b"\n### Monitoring gaps\n\n")?;
                for g in gaps {
                    writeln!(out, "- {}", md_escape(&g.text()))?;
                }
            }
            Style::Prometheus => {
                let window = scope.prom_window();
                let labels = [("window", window.as_str())];
                let silent: u64 = gaps.iter().map(MonitoringGap::duration_s).sum();
                let mut prom = Prom::default();
                let gaps_help = "Stretches of the window in which no check of any service was written.";
                prom.family("pitcrew_monitoring_gaps", Type::Gauge, gaps_help);
                prom.sample("pitcrew_monitoring_gaps", &labels, gaps.len());
                let silent_help = "Time of the window in which no check of any service was written.";
                prom.family("pitcrew_monitoring_gap_seconds", Type::Gauge, silent_help);
                prom.sample("pitcrew_monitoring_gap_seconds", &labels, silent);
                write_prom(out, prom)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Finish: formats that must say something even without records do so here.
    pub fn finish(&mut self, out: &mut dyn Write, scope: &Scope) -> Result<()> {
        if !self.started && self.style != Style::Ndjson {
            self.batch(out, scope, &[])?;
        }
        Ok(())
    }
}

/// The uptime by quorum's CSV columns, after the others.
const CSV_QUORUM_HEADER: &[&str] =
    &["quorum", "quorum_places", "quorum_uptime_percent", "quorum_down_s", "quorum_unknown_s", "quorum_outages"];

fn csv_quorum(r: &Uptime) -> Vec<String> {
    match &r.by_quorum {
        None => vec![String::new(); CSV_QUORUM_HEADER.len()],
        Some(q) => vec![
            q.quorum.to_string(),
            q.quorum_places.join(" "),
            opt(&q.quorum_uptime_percent),
            q.quorum_down_s.to_string(),
            q.quorum_unknown_s.to_string(),
            q.quorum_outages.to_string(),
        ],
    }
}

fn csv_batch(out: &mut dyn Write, records: &[Uptime], header: bool, quorum: bool) -> Result<()> {
    let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    let err = |e: csv::Error| Error::other(format!("writing CSV: {e}"));
    if header {
        let mut h: Vec<&str> = CSV_HEADER.to_vec();
        if quorum {
            h.extend_from_slice(CSV_QUORUM_HEADER);
        }
        w.write_record(h).map_err(err)?;
    }
    for r in records {
        let mut row = vec![
            r.name.clone(),
            opt(&r.day),
            opt(&r.from),
            opt(&r.to),
            opt(&r.window_days),
            r.uptime_percent.to_string(),
            r.total_checks.to_string(),
            r.failures.to_string(),
            r.degraded.to_string(),
            r.avg_latency_ms.to_string(),
            opt(&r.p50_latency_ms),
            opt(&r.p95_latency_ms),
            opt(&r.p99_latency_ms),
            r.incidents.to_string(),
            r.longest_outage_s.to_string(),
            opt(&r.last_status),
            opt(&r.last_check),
            opt(&r.sla_percent),
            opt(&r.status),
            opt(&r.cadence_s),
            opt(&r.coverage_percent),
            opt(&r.unknown_s),
            opt(&r.uptime_known_percent),
            opt(&r.longest_gap.as_ref().and_then(|g| g.start.clone())),
            opt(&r.longest_gap.as_ref().and_then(|g| g.end.clone())),
            opt(&r.longest_gap.as_ref().map(|g| g.duration_s)),
            opt(&r.unknown_as),
            opt(&r.sla_uptime_percent),
            opt(&r.low_coverage),
        ];
        if quorum {
            row.extend(csv_quorum(r));
        }
        w.write_record(row).map_err(err)?;
    }
    let bytes = w.into_inner().map_err(|e| Error::other(format!("writing CSV: {e}")))?;
    out.write_all(&bytes)?;
    Ok(())
}

/// Escape text for a Markdown table cell: no markup, no HTML, no column breaks.
pub fn md_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '|' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '#' | '~' | '&' => {
                o.push('\\');
                o.push(c);
            }
            '\n' | '\r' | '\t' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

fn ms(v: Option<f64>) -> String {
    v.map(|x| format!("{} ms", py_repr(x).trim_end_matches(".0"))).unwrap_or_else(|| "-".into())
}

fn pct_cell(v: Option<f64>) -> String {
    v.map(|p| format!("{}%", py_repr(p).trim_end_matches(".0"))).unwrap_or_else(|| "-".into())
}

fn markdown_batch(out: &mut dyn Write, scope: &Scope, records: &[Uptime], first: bool, quorum: bool) -> Result<()> {
    if !first {
        out.write_all(b"\n")?;
    }
    writeln!(out, "## Uptime report ({})\n", md_escape(&scope.label()))?;
    let sla = records.iter().any(|r| r.sla_percent.is_some());
    out.write_all(
        b"| | service | uptime | checks | failures | degraded | avg | p50 | p95 | p99 | incidents | longest outage | coverage | unknown | uptime (known time) |",
    )?;
    if quorum {
        out.write_all(b" uptime by quorum |")?;
    }
    out.write_all(if sla { b" SLA |\n" } else { b"\n" })?;
    out.write_all(b"|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")?;
    if quorum {
        out.write_all(b"--:|")?;
    }
    out.write_all(if sla { b"---|\n" } else { b"\n" })?;
    for r in records {
        write!(
            out,
            "| {} | {} | {}% | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.indicator(),
            md_escape(&r.name),
            r.kit_number(r.uptime_percent),
            r.total_checks,
            r.failures,
            r.degraded,
            ms(Some(r.avg_latency_ms)),
            ms(r.p50_latency_ms),
            ms(r.p95_latency_ms),
            ms(r.p99_latency_ms),
            r.incidents,
            if r.incidents == 0 { "-".to_string() } else { clock::human_duration(r.longest_outage_s) },
            pct_cell(r.coverage_percent),
            match r.unknown_s {
                None | Some(0) => "-".to_string(),
                Some(s) => clock::human_duration(s),
            },
            pct_cell(r.uptime_known_percent),
        )?;
        if quorum {
            match &r.by_quorum {
                Some(q) => {
                    write!(out, " {} ({} of {}) |", pct_cell(q.quorum_uptime_percent), q.quorum, q.quorum_places.len())?
                }
                None => out.write_all(b" - |")?,
            }
        }
        if let Some(pct) = r.sla_percent {
            write!(out, " {} {}%", if r.breach { "**breach**" } else { "met" }, py_repr(pct).trim_end_matches(".0"))?;
            let notes = r.sla_notes();
            if !notes.is_empty() {
                write!(out, " ({})", notes.join("; "))?;
            }
            out.write_all(b" |")?;
        }
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// A sample value in the Prometheus text format.
fn prom_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v}")
    }
}

/// A sample of a metric family: the suffix of its name (`_sum`, or empty), its `quantile`
/// label (empty for none), and its value, if any.
type Sample = (&'static str, &'static str, Option<f64>);
/// A metric family: name, type, help, and its samples for one record.
type Family = (&'static str, Type, &'static str, fn(&Uptime) -> Vec<Sample>);

/// The metric families of the uptime records, in the order they are written.
fn uptime_families() -> [Family; 14] {
    [
        ("pitcrew_uptime_ratio", Type::Gauge, "Share of checks up or degraded in the window (0 to 1).", |r| {
            vec![("", "", r.uptime_ratio)]
        }),
        (
            "pitcrew_uptime_checks",
            Type::Gauge,
            "Checks counted for uptime in the window (up, degraded and down).",
            |r| vec![("", "", Some(r.total_checks as f64))],
        ),
        ("pitcrew_uptime_failed_checks", Type::Gauge, "Checks that were down in the window.", |r| {
            vec![("", "", Some(r.failures as f64))]
        }),
        ("pitcrew_uptime_degraded_checks", Type::Gauge, "Checks that were degraded in the window.", |r| {
            vec![("", "", Some(r.degraded as f64))]
        }),
        (
            "pitcrew_uptime_latency_seconds",
            Type::Summary,
            "Check latency over the window: quantiles (within 1%), sum and count of every line.",
            |r| {
                vec![
                    ("", "0.5", r.p50_latency_ms.map(|v| v / 1000.0)),
                    ("", "0.95", r.p95_latency_ms.map(|v| v / 1000.0)),
                    ("", "0.99", r.p99_latency_ms.map(|v| v / 1000.0)),
                    ("_sum", "", Some(r.latency_sum_ms / 1000.0)),
                    ("_count", "", Some(r.latency_count as f64)),
                ]
            },
        ),
        ("pitcrew_uptime_incidents", Type::Gauge, "Runs of consecutive down checks in the window.", |r| {
            vec![("", "", Some(r.incidents as f64))]
        }),
        ("pitcrew_uptime_longest_outage_seconds", Type::Gauge, "The longest run of down checks in the window.", |r| {
            vec![("", "", Some(r.longest_outage_s as f64))]
        }),
        ("pitcrew_uptime_sla_breach", Type::Gauge, "1 when uptime is below the SLA given with --sla, else 0.", |r| {
            vec![("", "", r.sla_percent.map(|_| if r.breach { 1.0 } else { 0.0 }))]
        }),
        (
            "pitcrew_uptime_coverage_ratio",
            Type::Gauge,
            "Share of the window's time that checks covered (0 to 1).",
            |r| vec![("", "", r.figures.as_ref().and_then(Figures::coverage).map(|c| c / 100.0))],
        ),
        ("pitcrew_uptime_unknown_seconds", Type::Gauge, "Time in the window that no check covered.", |r| {
            vec![("", "", r.figures.map(|f| f.split.unknown_ms as f64 / 1000.0))]
        }),
        ("pitcrew_uptime_known_ratio", Type::Gauge, "Share of the covered time the service was up (0 to 1).", |r| {
            vec![("", "", r.figures.as_ref().and_then(Figures::uptime_known).map(|u| u / 100.0))]
        }),
        (
            "pitcrew_uptime_longest_gap_seconds",
            Type::Gauge,
            "The longest stretch of the window no check covered.",
            |r| vec![("", "", r.figures.map(|f| f.longest_gap.map_or(0.0, |(a, b)| (b - a) as f64 / 1000.0)))],
        ),
        (
            "pitcrew_uptime_quorum_ratio",
            Type::Gauge,
            "Share of the known time the service was up by quorum (0 to 1), for a service checked from several places.",
            |r| vec![("", "", r.by_quorum.as_ref().and_then(|q| q.ratio))],
        ),
        (
            "pitcrew_uptime_cadence_seconds",
            Type::Gauge,
            "The cadence unknown time is judged by (configured or the median spacing).",
            |r| vec![("", "", r.cadence_s)],
        ),
    ]
}

fn prometheus(out: &mut dyn Write, scope: &Scope, records: &[Uptime]) -> Result<()> {
    let window = scope.prom_window();
    let mut prom = Prom::default();
    for (metric, kind, help, samples) in uptime_families() {
        let rows: Vec<(&Uptime, &str, &str, f64)> = records
            .iter()
            .flat_map(|r| samples(r).into_iter().filter_map(move |(suffix, q, v)| Some((r, suffix, q, v?))))
            .collect();
        if rows.is_empty() {
            continue;
        }
        prom.family(metric, kind, help);
        for (r, suffix, q, v) in rows {
            let mut labels = vec![("service", r.name.as_str()), ("window", window.as_str())];
            if !q.is_empty() {
                labels.push(("quantile", q));
            }
            prom.sample(&format!("{metric}{suffix}"), &labels, prom_value(v));
        }
    }
    write_prom(out, prom)
}

/// Write a finished metrics text; a name the format does not allow is the program's mistake.
fn write_prom(out: &mut dyn Write, prom: Prom) -> Result<()> {
    let text = prom.finish().map_err(|why| Error::other(format!("writing Prometheus metrics: {why}")))?;
    out.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::stats::{Latency, Seen};

    fn stats(up: u64, down: u64, lat: i64) -> ServiceStats {
        let mut s = ServiceStats::default();
        for _ in 0..up {
            s.add(Seen::Up, Latency::Int(lat), &mut || None);
        }
        for _ in 0..down {
            s.add(Seen::Down, Latency::Int(lat), &mut || None);
        }
        s
    }

    fn scope() -> Scope {
        Scope { window_days: Some(7), rolling: true, ..Scope::default() }
    }

    #[test]
    fn text_lines_match_the_kit() {
        let r = Uptime::build("api", &stats(2015, 1, 145), &scope(), None, "t");
        assert_eq!(r.text_line(), "[OK] api: 99.95% uptime (1 failures in 2016 checks, avg 145.0ms)");
        let r = Uptime::build("db", &stats(0, 0, 0), &scope(), None, "t");
        assert_eq!(r.text_line(), "[CRITICAL] db: 0% uptime (0 failures in 0 checks, avg 0ms)");
        let r = Uptime::build("w", &stats(96, 4, 0), &scope(), Some(99.9), "t");
        assert_eq!(r.text_line(), "[WARN] w: 96.0% uptime (4 failures in 100 checks, avg 0.0ms) SLA 99.9%: BREACH");
        assert!(r.breach);
        assert_eq!(r.status, Some("breach"));
    }

    #[test]
    fn the_kit_report_layout() {
        let mut out = Vec::new();
        let mut w = Writer::new(Style::Text);
        let recs = vec![Uptime::build("a", &stats(1, 0, 3), &scope(), None, "t")];
        w.batch(&mut out, &scope(), &recs).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "=== Uptime Report (last 7 days) ===\n\n[OK] a: 100.0% uptime (0 failures in 1 checks, avg 3.0ms)\n"
        );
        let mut empty = Vec::new();
        Writer::new(Style::Text).finish(&mut empty, &scope()).unwrap();
        assert_eq!(String::from_utf8(empty).unwrap(), "=== Uptime Report (last 7 days) ===\n\n");
    }

    #[test]
    fn escaping() {
        assert_eq!(md_escape("a|b_<c>"), "a\\|b\\_\\<c\\>");
    }

    #[test]
    fn prometheus_label_values_are_escaped() {
        let mut out = Vec::new();
        let recs = vec![Uptime::build("a\"b\\c\nd", &stats(3, 1, 2000), &scope(), Some(99.0), "t")];
        let mut w = Writer::new(Style::Prometheus);
        w.batch(&mut out, &scope(), &recs).unwrap();
        w.gaps(&mut out, &scope(), &[], "t").unwrap();
        let text = String::from_utf8(out).unwrap();
        let service = "service=\"a\\\"b\\\\c\\nd\",window=\"7d\"";
        assert!(text.contains(&format!("pitcrew_uptime_ratio{{{service}}} 0.75\n")), "{text}");
        assert!(text.contains(&format!("pitcrew_uptime_latency_seconds{{{service},quantile=\"0.5\"}} 2")), "{text}");
        assert!(text.contains("# TYPE pitcrew_uptime_latency_seconds summary\n"), "{text}");
        assert!(text.ends_with("pitcrew_monitoring_gap_seconds{window=\"7d\"} 0\n"), "{text}");
        // Every line is a comment or one sample: no raw line feed splits a sample.
        assert!(text.lines().all(|l| l.starts_with('#') || l.starts_with("pitcrew_")), "{text}");
    }

    #[test]
    fn csv_quotes_names() {
        let mut out = Vec::new();
        let recs = vec![Uptime::build("a, \"b\"", &stats(1, 0, 3), &scope(), None, "t")];
        Writer::new(Style::Csv).batch(&mut out, &scope(), &recs).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("name,day,from,to,window_days,uptime_percent"));
        assert!(text.contains("\"a, \"\"b\"\"\",,,,7,100,1,0,0,3,"), "{text}");
    }
}
