//! The status page's JSON twin, `status.json`: what the page shows, for other tools to read.
//! `rollup --format html --output DIR/PAGE.html` writes it beside the page as
//! `DIR/status.json`; `--format status-json` writes it alone. The schema (`pitcrew-status/1`)
//! is documented in docs/rollup.md; fields are only ever added to it.

use std::io::Write;

use serde_json::{Value, json};

use super::html::{self, Page};
use super::report::ts_of;
use super::stats::py_round;
use crate::clock;
use crate::error::{Error, Result};

/// The schema's name and version.
pub(crate) const SCHEMA: &str = "pitcrew-status/1";

/// The file written beside the page.
pub(crate) const FILE: &str = "status.json";

fn pct(v: Option<f64>) -> Value {
    v.map_or(Value::Null, |p| json!(py_round(p, 3)))
}

/// The document for `page`.
pub(crate) fn document(page: &Page<'_>) -> Value {
    let (_, state, summary) = html::overall(page.records);
    let services: Vec<Value> = page
        .records
        .iter()
        .map(|r| {
            let (dot, _) = html::current(r.last_status);
            let days: Vec<Value> = page
                .bar
                .map(|bar| html::day_views(page.agg, r, bar))
                .unwrap_or_default()
                .iter()
                .map(|v| {
                    let c = v.cell;
                    json!({
                        "date": v.date,
                        "state": v.state(),
                        "uptime_percent": pct(c.and_then(|c| c.uptime())),
                        "checks": c.map_or(0, |c| c.total()),
                        "down": c.map_or(0, |c| c.down),
                        "degraded": c.map_or(0, |c| c.degraded),
                        "unknown_s": v.split.unknown_ms.div_ceil(1000),
                        "avg_latency_ms": pct(c.and_then(|c| c.avg_latency())),
                    })
                })
                .collect();
            let mut service = json!({
                "name": r.name,
                "state": if dot.is_empty() { "unknown" } else { dot },
                "last_check": r.last_check,
                "uptime_percent": if r.total_checks == 0 { Value::Null } else { json!(r.uptime_percent) },
                "total_checks": r.total_checks,
                "failures": r.failures,
                "degraded": r.degraded,
                "coverage_percent": r.coverage_percent,
                "unknown_s": r.unknown_s,
                "p50_latency_ms": r.p50_latency_ms,
                "p95_latency_ms": r.p95_latency_ms,
                "sla_percent": r.sla_percent,
                "breach": r.breach,
                "incidents": r.incidents,
                "longest_outage_s": r.longest_outage_s,
                "days": days,
            });
            // With a quorum, for a service several places checked: its uptime by quorum.
            if let (Some(q), Value::Object(m)) = (&r.by_quorum, &mut service)
                && let Ok(Value::Object(fields)) = serde_json::to_value(q)
            {
                m.extend(fields);
            }
            service
        })
        .collect();
    let mut incidents: Vec<(&str, &super::report::IncidentOut)> =
        page.records.iter().flat_map(|r| r.recent_incidents.iter().map(move |i| (r.name.as_str(), i))).collect();
    incidents.sort_by(|a, b| b.1.start.cmp(&a.1.start).then(a.0.cmp(b.0)));
    let incidents: Vec<Value> = incidents
        .into_iter()
        .map(|(name, i)| {
            json!({
                "name": name,
                "start": i.start,
                "end": i.end,
                "duration_s": i.duration_s,
                "checks": i.checks,
                "ongoing": i.ongoing,
            })
        })
        .collect();
    let gaps: Vec<Value> = page
        .gaps
        .iter()
        .map(|g| {
            json!({
                "start": ts_of(Some(g.start)),
                "end": if g.ongoing { None } else { ts_of(Some(g.end)) },
                "duration_s": g.duration_s(),
                "ongoing": g.ongoing,
            })
        })
        .collect();
    let notes: Vec<Value> = page
        .notes
        .iter()
        .map(|n| json!({"id": n.id, "name": n.name, "at": n.at, "date": n.time().map(|t| clock::fmt_date(t.date())), "text": n.text}))
        .collect();
    json!({
        "schema": SCHEMA,
        "generated_at": page.stamp,
        "window": {
            "from": page.scope.from.map(clock::fmt_date),
            "to": page.scope.to.map(clock::fmt_date),
            "days": page.scope.window_days,
            "label": page.scope.label(),
        },
        "state": state,
        "summary": summary,
        "services": services,
        "incidents": incidents,
        "monitoring_gaps": gaps,
        "notes": notes,
    })
}

/// Write the document, pretty-printed, with a final newline.
pub(crate) fn render(out: &mut dyn Write, page: &Page<'_>) -> Result<()> {
    let mut buf = serde_json::to_vec_pretty(&document(page)).map_err(|e| Error::other(e.to_string()))?;
    buf.push(b'\n');
    out.write_all(&buf)?;
    Ok(())
}
