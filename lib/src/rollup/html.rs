//! The status page: one self-contained HTML file (inline CSS, no script, no external asset)
//! with the overall state, one row per service (current status, uptime over the window,
//! p50/p95 latency, a bar of one cell per day coloured by that day's uptime, and a line of
//! the daily mean latency), the recent incidents, and the incident notes (`rollup note`),
//! marked on their service's bar on their day and listed by day. Every name is escaped.
//! [`super::status`] writes the same page as JSON.

use std::fmt::Write as _;
use std::io::Write;

use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

use super::coverage::{self, Split};
use super::notes::Note;
use super::report::{IncidentOut, MonitoringGap, Scope, Uptime};
use super::scan::{Agg, day_date};
use super::stats::{DayCell, py_repr, py_round};
use crate::clock;
use crate::error::Result;

/// The most days a bar shows.
pub const BAR_DAYS: i32 = 90;
/// Incidents listed at the foot of the page.
const INCIDENTS_SHOWN: usize = 20;
/// Notes listed on the page (every note stays marked on its bar).
const NOTES_SHOWN: usize = 50;

/// What a page (or its JSON twin) is drawn from.
pub(crate) struct Page<'a> {
    pub agg: &'a Agg,
    pub records: &'a [Uptime],
    pub gaps: &'a [MonitoringGap],
    pub scope: &'a Scope,
    /// The epoch days of the bars (inclusive).
    pub bar: Option<(i32, i32)>,
    pub stamp: &'a str,
    /// The notes of the window, oldest first.
    pub notes: &'a [Note],
}

/// One day of one service's bar.
pub(crate) struct DayView<'a> {
    pub day: i32,
    pub date: String,
    pub cell: Option<&'a DayCell>,
    pub split: Split,
}

impl DayView<'_> {
    /// The day's class: `ok`, `warn`, `bad` by its uptime, `unknown` when no check covered
    /// any of it, `none` without data.
    pub fn state(&self) -> &'static str {
        match self.cell.and_then(DayCell::uptime) {
            _ if self.split.unknown_ms > 0 && self.split.known_ms == 0 => "unknown",
            Some(p) => level(p),
            None => "none",
        }
    }
}

/// The days `from..=to` of service `r`'s bar.
pub(crate) fn day_views<'a>(agg: &'a Agg, r: &Uptime, (from, to): (i32, i32)) -> Vec<DayView<'a>> {
    let stats = agg.services.iter().find(|(n, _)| **n == *r.name).map(|(_, s)| s);
    (from..=to)
        .map(|day| {
            let cell = stats.and_then(|s| s.days.binary_search_by_key(&day, |(k, _)| *k).ok().map(|i| &s.days[i].1));
            DayView {
                day,
                date: day_date(day).map(clock::fmt_date).unwrap_or_default(),
                cell,
                split: day_split(r, cell, day).unwrap_or_default(),
            }
        })
        .collect()
}

/// The overall state of the services: a class (`ok`, `warn`, `bad`, `none`), a machine
/// name and the headline.
pub(crate) fn overall(records: &[Uptime]) -> (&'static str, &'static str, String) {
    let down = records.iter().filter(|r| r.last_status == Some("down")).count();
    let degraded = records.iter().filter(|r| r.last_status == Some("degraded")).count();
    if records.is_empty() {
        ("none", "no_data", "No data in this window".to_string())
    } else if down == records.len() {
        ("bad", "major_outage", "Major outage".to_string())
    } else if down > 0 {
        ("bad", "partial_outage", format!("Partial outage: {down} of {} services down", records.len()))
    } else if degraded > 0 {
        ("warn", "degraded", format!("Degraded: {degraded} of {} services degraded", records.len()))
    } else {
        ("ok", "operational", "All systems operational".to_string())
    }
}

const STYLE: &str = r#"
:root { --bg: #f6f7f9; --card: #ffffff; --fg: #1c2024; --muted: #60646c; --line: #e3e5e8;
  --ok: #2e9e5b; --warn: #e0a030; --bad: #dc3e42; --none: #d5d8dd; --accent: #3b6fd8; --unknown: #8e7cc3;
  --note: #c2418a; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #111315; --card: #1a1d21; --fg: #eceef0; --muted: #9ba1a8; --line: #2b2f35; --none: #3a3f46;
    --unknown: #7564a8; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 980px; margin: 0 auto; padding: 28px 20px 40px; }
header { display: flex; justify-content: space-between; align-items: baseline; gap: 16px; flex-wrap: wrap; }
h1 { font-size: 26px; margin: 0; letter-spacing: -0.01em; }
h2 { font-size: 17px; margin: 30px 0 10px; }
.sub { color: var(--muted); font-size: 13px; }
.banner { margin: 18px 0 22px; padding: 14px 18px; border-radius: 10px; color: #fff; font-weight: 600;
  font-size: 17px; display: flex; justify-content: space-between; align-items: center; gap: 12px; }
.banner small { font-weight: 400; opacity: .9; font-size: 13px; }
.banner.ok { background: var(--ok); } .banner.warn { background: var(--warn); }
.banner.bad { background: var(--bad); } .banner.none { background: var(--muted); }
.services { background: var(--card); border: 1px solid var(--line); border-radius: 10px; }
.svc { padding: 16px 18px 12px; border-top: 1px solid var(--line); }
.svc:first-child { border-top: 0; }
.head { display: flex; justify-content: space-between; align-items: baseline; gap: 12px; flex-wrap: wrap; }
.name { font-weight: 600; font-size: 15.5px; overflow-wrap: anywhere; }
.dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 8px;
  vertical-align: 1px; background: var(--none); }
.dot.up { background: var(--ok); } .dot.degraded { background: var(--warn); } .dot.down { background: var(--bad); }
.state { font-size: 12.5px; color: var(--muted); margin-left: 6px; font-weight: 400; }
.figs { font-size: 13px; color: var(--muted); white-space: nowrap; }
.figs b { color: var(--fg); font-size: 15px; font-variant-numeric: tabular-nums; }
.figs .pct.ok { color: var(--ok); } .figs .pct.warn { color: var(--warn); } .figs .pct.bad { color: var(--bad); }
.breach { color: #fff; background: var(--bad); border-radius: 4px; padding: 1px 6px; font-size: 11.5px;
  margin-left: 6px; font-weight: 600; }
.bar { display: flex; gap: 2px; height: 34px; margin: 10px 0 4px; }
.bar span { flex: 1 1 0; min-width: 2px; border-radius: 2px; background: var(--none); }
.bar span.ok { background: var(--ok); } .bar span.warn { background: var(--warn); }
.bar span.bad { background: var(--bad); } .bar span.unknown { background: var(--unknown); }
.cov { color: var(--unknown); font-weight: 600; }
.bar span:hover { opacity: .7; }
.bar span.noted { box-shadow: inset 0 5px 0 var(--note); }
.notes td.text { white-space: pre-line; overflow-wrap: anywhere; }
.axis { display: flex; justify-content: space-between; font-size: 11.5px; color: var(--muted); }
.spark { display: block; width: 100%; height: 22px; margin-top: 6px; }
.spark path { fill: none; stroke: var(--accent); stroke-width: 1.5; vector-effect: non-scaling-stroke; }
table { width: 100%; border-collapse: collapse; background: var(--card); border: 1px solid var(--line);
  border-radius: 10px; overflow: hidden; font-size: 13.5px; }
th, td { text-align: left; padding: 9px 14px; border-top: 1px solid var(--line); }
th { font-weight: 600; color: var(--muted); border-top: 0; font-size: 12.5px; }
td.num { font-variant-numeric: tabular-nums; }
.tag { border-radius: 4px; padding: 1px 7px; font-size: 12px; font-weight: 600; }
.tag.open { background: var(--bad); color: #fff; } .tag.closed { background: var(--line); color: var(--muted); }
.empty { padding: 18px; color: var(--muted); background: var(--card); border: 1px solid var(--line); border-radius: 10px; }
footer { margin-top: 26px; font-size: 12px; color: var(--muted); }
.legend span { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin: 0 4px 0 12px;
  vertical-align: -1px; }
"#;

/// The class of an uptime figure: the Agent Ops Kit's OK (>= 99.5), WARN (>= 95), CRITICAL.
pub(crate) fn level(pct: f64) -> &'static str {
    if pct >= 99.5 {
        "ok"
    } else if pct >= 95.0 {
        "warn"
    } else {
        "bad"
    }
}

fn fmt_pct(pct: f64) -> String {
    let r = py_round(pct, 2);
    if r == 100.0 { "100%".into() } else { format!("{r:.2}%") }
}

fn fmt_ms(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(x) if x >= 10_000.0 => format!("{:.1} s", x / 1000.0),
        Some(x) if x >= 100.0 => format!("{x:.0} ms"),
        Some(x) => format!("{} ms", py_repr(py_round(x, 1)).trim_end_matches(".0")),
    }
}

/// `2026-11-23 10:30 UTC` from an RFC 3339 timestamp (as written when unparseable).
fn fmt_when(ts: &str) -> String {
    match clock::parse_ts(ts) {
        Some(t) => format!("{} {:02}:{:02} UTC", clock::fmt_date(t.date()), t.hour(), t.minute()),
        None => ts.to_string(),
    }
}

/// What the status dot says of the last check.
pub(crate) fn current(status: Option<&str>) -> (&'static str, &'static str) {
    match status {
        Some("up") | Some("recovered") => ("up", "operational"),
        Some("degraded") => ("degraded", "degraded"),
        Some("down") => ("down", "down"),
        _ => ("", "no status"),
    }
}

/// The days a bar shows: the last [`BAR_DAYS`] of the scope (epoch days, inclusive).
pub fn bar_days(from: i32, to: i32) -> (i32, i32) {
    (from.max(to - (BAR_DAYS - 1)), to)
}

fn cell_title(date: &str, c: Option<&DayCell>) -> String {
    match c {
        Some(c) if c.total() > 0 => {
            let pct = c.uptime().unwrap_or(0.0);
            let mut t = format!("{date}: {} uptime, {} of {} checks down", fmt_pct(pct), c.down, c.total());
            if c.degraded > 0 {
                let _ = write!(t, ", {} degraded", c.degraded);
            }
            if let Some(avg) = c.avg_latency() {
                let _ = write!(t, ", avg {}", fmt_ms(Some(avg)));
            }
            t
        }
        _ => format!("{date}: no data"),
    }
}

fn sparkline(cells: &[Option<&DayCell>]) -> String {
    let vals: Vec<Option<f64>> = cells.iter().map(|c| c.and_then(DayCell::avg_latency)).collect();
    let max = vals.iter().flatten().fold(0.0f64, |a, &b| a.max(b));
    let n = vals.len();
    if max <= 0.0 || n == 0 {
        return String::new();
    }
    let mut d = String::new();
    let mut pen_down = false;
    for (i, v) in vals.iter().enumerate() {
        match v {
            Some(v) => {
                let x = (i as f64 + 0.5) / n as f64 * 1000.0;
                let y = 20.0 - v / max * 18.0;
                let _ = write!(d, "{}{x:.1},{y:.1} ", if pen_down { "L" } else { "M" });
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    format!(
        "<svg class=\"spark\" viewBox=\"0 0 1000 22\" preserveAspectRatio=\"none\" role=\"img\" \
         aria-label=\"daily mean latency, up to {}\"><path d=\"{}\"/></svg>",
        attr(&fmt_ms(Some(max))),
        d.trim_end()
    )
}

/// The known and unknown time of one service on one day: the day's part of its spacings,
/// and of the stretches before its first and after its last check in the window.
fn day_split(r: &Uptime, cell: Option<&DayCell>, day: i32) -> Option<Split> {
    let f = r.figures?;
    let mut split = cell.map(|c| c.spacings.split(f.cadence)).unwrap_or_default();
    if let (Some((start, end)), Some(((first, first_down), (last, last_down)))) = (r.span, r.first_last) {
        for (from, to, down) in [(start, first.min(end), first_down), (last.max(start), end, last_down)] {
            if to > from {
                let len = (to - from) as u64;
                coverage::by_day(from, to, |d, ms| {
                    if d == day {
                        split.add(len, ms, down, f.cadence);
                    }
                });
            }
        }
    }
    Some(split)
}

/// Write the page.
pub(crate) fn render(out: &mut dyn Write, page: &Page<'_>) -> Result<()> {
    let Page { records, gaps, scope, stamp, .. } = *page;
    let mut h = String::with_capacity(64 * 1024);
    let (class, _, headline) = overall(records);
    let breaches = records.iter().filter(|r| r.breach).count();
    let silent =
        gaps.iter().find(|g| g.ongoing).map(|g| format!("no checks for {}", clock::human_duration(g.duration_s())));
    let small = [if breaches > 0 { Some(format!("{breaches} below SLA")) } else { None }, silent]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" · ");
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"pitcrew rollup\">\n<title>Service status</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n<main>\n<header><h1>Service status</h1>\
         <div class=\"sub\">Uptime over {} &middot; updated {}</div></header>\n\
         <div class=\"banner {class}\"><span>{}</span><small>{}</small></div>\n",
        text(&scope.label()),
        text(&fmt_when(stamp)),
        text(&headline),
        text(&small),
    );
    if records.is_empty() {
        h.push_str("<div class=\"empty\">No checks were recorded in this window.</div>\n");
    } else {
        h.push_str("<section class=\"services\">\n");
        for r in records {
            service_row(&mut h, page, r);
        }
        h.push_str("</section>\n");
    }
    monitoring_gaps(&mut h, gaps);
    incidents(&mut h, records);
    notes(&mut h, page.notes);
    let _ = write!(
        h,
        "<footer><div class=\"legend\">Each cell is one day (UTC):\
         <span style=\"background:var(--ok)\"></span>99.5% and up\
         <span style=\"background:var(--warn)\"></span>95% and up\
         <span style=\"background:var(--bad)\"></span>below 95%\
         <span style=\"background:var(--unknown)\"></span>unknown (no check covered it)\
         <span style=\"background:var(--none)\"></span>no data\
         <span style=\"background:var(--note)\"></span>a note (above the day)</div>\
         <p>Latency line: the daily mean. Generated {} by rollup.</p></footer>\n</main>\n</body>\n</html>\n",
        text(stamp)
    );
    out.write_all(h.as_bytes())?;
    Ok(())
}

fn service_row(h: &mut String, page: &Page<'_>, r: &Uptime) {
    let (dot, state) = current(r.last_status);
    let last = r.last_check.as_deref().map(|t| format!(", last check {}", fmt_when(t))).unwrap_or_default();
    let pct_class = if r.total_checks == 0 { "" } else { level(r.uptime_percent) };
    let _ = write!(
        h,
        "<div class=\"svc\">\n<div class=\"head\"><div class=\"name\"><span class=\"dot {dot}\" title=\"{}\"></span>{}\
         <span class=\"state\">{}</span>{}</div>\
         <div class=\"figs\">p50 <b>{}</b> &middot; p95 <b>{}</b> &middot; \
         <b class=\"pct {pct_class}\">{}</b> uptime{}{}</div></div>\n",
        attr(&format!("{state}{last}")),
        text(&r.name),
        text(state),
        if r.breach {
            format!("<span class=\"breach\">below SLA {}%</span>", r.sla_percent.map(py_repr).unwrap_or_default())
        } else {
            String::new()
        },
        text(&fmt_ms(r.p50_latency_ms)),
        text(&fmt_ms(r.p95_latency_ms)),
        if r.total_checks == 0 { "–".to_string() } else { fmt_pct(r.uptime_percent) },
        match r.coverage_percent {
            Some(c) if c < 100.0 => format!(" &middot; <b class=\"cov\">{}</b> covered", text(&fmt_pct(c))),
            _ => String::new(),
        },
        match &r.by_quorum {
            Some(q) => format!(
                " &middot; <b class=\"pct {}\">{}</b> by quorum {} of {}",
                q.quorum_uptime_percent.map_or("", level),
                q.quorum_uptime_percent.map_or_else(|| "–".to_string(), fmt_pct),
                q.quorum,
                q.quorum_places.len()
            ),
            None => String::new(),
        },
    );
    let Some((from, to)) = page.bar else {
        h.push_str("</div>\n");
        return;
    };
    let views = day_views(page.agg, r, (from, to));
    let cells: Vec<Option<&DayCell>> = views.iter().map(|v| v.cell).collect();
    let _ =
        write!(h, "<div class=\"bar\" role=\"img\" aria-label=\"{}\">", attr(&format!("daily uptime of {}", r.name)));
    for v in &views {
        let (c, date, split) = (&v.cell, &v.date, v.split);
        let mut title = cell_title(date, *c);
        let (class, style) = match c.and_then(|c| c.uptime()) {
            _ if split.unknown_ms > 0 && split.known_ms == 0 => {
                title = format!("{date}: unknown, no check covered it");
                ("unknown", String::new())
            }
            Some(p) if split.unknown_ms > 0 => {
                // The day's unknown share on top, in its own colour.
                let known = split.known_ms as f64 / (split.known_ms + split.unknown_ms) as f64 * 100.0;
                let _ = write!(title, "; {} unknown", clock::human_duration((split.unknown_ms + 500) / 1000));
                let fill = format!("var(--{})", level(p));
                (
                    level(p),
                    format!(
                        " style=\"background:linear-gradient(to top,{fill} {known:.1}%,var(--unknown) {known:.1}%)\""
                    ),
                )
            }
            Some(p) => (level(p), String::new()),
            None => ("", String::new()),
        };
        let mut class = class.to_string();
        for n in page.notes.iter().filter(|n| n.name == r.name && n.day() == Some(v.day)) {
            if !class.ends_with("noted") {
                class.push_str(if class.is_empty() { "noted" } else { " noted" });
            }
            let _ = write!(title, "\nNote ({}): {}", fmt_when(&n.at), n.text);
        }
        let _ = write!(h, "<span class=\"{class}\"{style} title=\"{}\"></span>", attr(&title));
    }
    let _ = write!(
        h,
        "</div>\n<div class=\"axis\"><span>{}</span><span>{} incident{} &middot; longest {}</span><span>{}</span></div>\n{}\n</div>\n",
        text(&day_date(from).map(clock::fmt_date).unwrap_or_default()),
        r.incidents,
        if r.incidents == 1 { "" } else { "s" },
        if r.incidents == 0 { "–".to_string() } else { clock::human_duration(r.longest_outage_s) },
        text(&day_date(to).map(clock::fmt_date).unwrap_or_default()),
        sparkline(&cells),
    );
}

fn monitoring_gaps(h: &mut String, gaps: &[MonitoringGap]) {
    if gaps.is_empty() {
        return;
    }
    h.push_str("<h2>Monitoring gaps</h2>\n<table>\n<thead><tr><th>No check of any service</th><th>Duration</th><th>State</th></tr></thead>\n<tbody>\n");
    for g in gaps.iter().rev().take(INCIDENTS_SHOWN) {
        let start = super::report::ts_of(Some(g.start)).map(|t| fmt_when(&t)).unwrap_or_default();
        let end = super::report::ts_of(Some(g.end)).map(|t| fmt_when(&t)).unwrap_or_default();
        let when = if g.ongoing { format!("since {start}") } else { format!("{start} to {end}") };
        let (tag, state) = if g.ongoing { ("open", "ongoing") } else { ("closed", "over") };
        let _ = writeln!(
            h,
            "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td><span class=\"tag {tag}\">{state}</span></td></tr>",
            text(&when),
            text(&clock::human_duration(g.duration_s())),
        );
    }
    h.push_str("</tbody>\n</table>\n");
}

fn incidents(h: &mut String, records: &[Uptime]) {
    let mut all: Vec<(&str, &IncidentOut)> =
        records.iter().flat_map(|r| r.recent_incidents.iter().map(move |i| (r.name.as_str(), i))).collect();
    all.sort_by(|a, b| b.1.start.cmp(&a.1.start).then(a.0.cmp(b.0)));
    all.truncate(INCIDENTS_SHOWN);
    h.push_str("<h2>Recent incidents</h2>\n");
    if all.is_empty() {
        h.push_str("<div class=\"empty\">No incidents in this window.</div>\n");
        return;
    }
    h.push_str(
        "<table>\n<thead><tr><th>Service</th><th>Started</th><th>Duration</th><th>Down checks</th><th>State</th></tr></thead>\n<tbody>\n",
    );
    for (name, i) in all {
        let started = i.start.as_deref().map(fmt_when).unwrap_or_else(|| "–".into());
        let duration = i.duration_s.map(clock::human_duration).unwrap_or_else(|| "–".into());
        let (tag, state) = if i.ongoing { ("open", "ongoing") } else { ("closed", "resolved") };
        let ended = i.end.as_deref().map(|e| format!("resolved {}", fmt_when(e))).unwrap_or_default();
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}{}</td><td class=\"num\">{}</td>\
             <td><span class=\"tag {tag}\" title=\"{}\">{state}</span></td></tr>",
            text(name),
            text(&started),
            text(&duration),
            if i.ongoing { " so far" } else { "" },
            i.checks,
            attr(&ended),
        );
    }
    h.push_str("</tbody>\n</table>\n");
}

/// The notes of the window, newest first: when, which service, what.
fn notes(h: &mut String, notes: &[Note]) {
    if notes.is_empty() {
        return;
    }
    h.push_str(
        "<h2>Notes</h2>\n<table class=\"notes\">\n<thead><tr><th>When</th><th>Service</th><th>Note</th></tr></thead>\n<tbody>\n",
    );
    for n in notes.iter().rev().take(NOTES_SHOWN) {
        let _ = writeln!(
            h,
            "<tr id=\"note-{}\"><td class=\"num\">{}</td><td>{}</td><td class=\"text\">{}</td></tr>",
            n.id,
            text(&fmt_when(&n.at)),
            text(&n.name),
            text(&n.text),
        );
    }
    h.push_str("</tbody>\n</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::scan::{Origin, ScanOpts, Scanner, day_number};

    #[test]
    fn names_are_escaped_and_the_page_is_self_contained() {
        let mut sc = Scanner::new(ScanOpts { max_line: 1 << 20, day_cells_from: Some(0), ..ScanOpts::default() });
        let input = concat!(
            "{\"name\":\"<script>alert(1)</script>\",\"status\":\"up\",\"latency_ms\":12,\"timestamp\":\"2026-11-22T10:00:00Z\"}\n",
            "{\"name\":\"<script>alert(1)</script>\",\"status\":\"down\",\"latency_ms\":12,\"timestamp\":\"2026-11-23T10:00:00Z\"}\n",
            "{\"name\":\"a \\\"quoted\\\" & <b>\",\"status\":\"up\",\"latency_ms\":3,\"timestamp\":\"2026-11-23T10:00:00Z\"}\n",
        );
        sc.scan(input.as_bytes(), Origin { name: "stdin", day: None }, &mut Vec::new()).unwrap();
        let to = day_number(clock::parse_date("2026-11-23").unwrap());
        let scope = Scope { from: day_date(to - 1), to: day_date(to), ..Scope::default() };
        let records: Vec<Uptime> = sc
            .window
            .sorted()
            .iter()
            .map(|(n, s)| Uptime::build(n, s, &scope, None, "2026-11-23T12:00:00.000Z"))
            .collect();
        let notes = [Note {
            id: 7,
            name: "<script>alert(1)</script>".into(),
            at: "2026-11-22T10:30:00.000Z".into(),
            text: "Rolled back </td><script>x</script>\nsecond line".into(),
            created_at: String::new(),
        }];
        let mut out = Vec::new();
        let page = Page {
            agg: &sc.window,
            records: &records,
            gaps: &[],
            scope: &scope,
            bar: Some(bar_days(to - 1, to)),
            stamp: "2026-11-23T12:00:00.000Z",
            notes: &notes,
        };
        render(&mut out, &page).unwrap();
        let page = String::from_utf8(out).unwrap();
        assert_eq!(page.matches("<span class=\"ok noted\" title=\"2026-11-22: 100% uptime").count(), 1, "{page}");
        assert!(page.contains(
            "Note (2026-11-22 10:30 UTC): Rolled back &lt;/td&gt;&lt;script&gt;x&lt;/script&gt;\nsecond line"
        ));
        assert!(page.contains("<tr id=\"note-7\"><td class=\"num\">2026-11-22 10:30 UTC</td>"));
        assert!(
            page.contains("<td class=\"text\">Rolled back &lt;/td&gt;&lt;script&gt;x&lt;/script&gt;\nsecond line</td>")
        );
        assert!(!page.contains("<script>"), "names are escaped");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("a \"quoted\" &amp; &lt;b&gt;") || page.contains("a &quot;quoted&quot; &amp; &lt;b&gt;"));
        for external in ["http://", "https://", "src=", "<link", "@import", "url("] {
            assert!(!page.contains(external), "no external asset: {external}");
        }
        assert!(page.contains("Partial outage: 1 of 2 services down"));
        assert_eq!(page.matches("<span class=\"ok").count(), 2, "two good days");
        assert_eq!(page.matches("<span class=\"bad\" title=").count(), 1, "one bad day");
        assert!(page.contains("ongoing"));
    }
}
