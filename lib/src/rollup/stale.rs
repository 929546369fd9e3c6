//! `rollup stale`: is the monitor itself running? Reads the newest daily metrics files until
//! one holds a check, and when the last check of any service is older than the limit (three
//! times the schedule by default) writes a `finding` (`problem: monitoring_gap`, ongoing)
//! that notify announces once, and exits 1. The orchestrator runs it first in every run, so a
//! host that slept, a crontab that was lost or a probe that stopped writing is said as soon
//! as anything runs again.

use std::io::Write;
use std::path::Path;

use super::report::gap_finding;
use super::scan::{self, Origin, ScanOpts, Scanner, day_number};
use crate::clock::{self, Clock};
use crate::entry::Diag;
use crate::error::{Error, Result, Status};
use crate::ndjson;

/// How many of the newest daily files are read at most to find the last check.
const FILES_LOOKED_AT: usize = 7;

/// Look at `dir`; `max_age_s` is the limit. Text or NDJSON on `out`.
pub fn stale(
    dir: &Path,
    max_age_s: u64,
    text: bool,
    out: &mut dyn Write,
    diag: &Diag,
    clock: &Clock,
) -> Result<Status> {
    let now = clock.now();
    let now_ms = now.unix_timestamp() * 1000 + i64::from(now.millisecond());
    let today = day_number(now.date());
    let mut sc = Scanner::new(ScanOpts { max_line: ndjson::DEFAULT_MAX_LINE, ..ScanOpts::default() });
    let days: Vec<scan::DayFile> =
        scan::list_days(dir)?.into_iter().filter(|f| day_number(f.date) <= today).rev().take(FILES_LOOKED_AT).collect();
    for f in &days {
        let reader = match scan::open_file(&f.path, false) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) if scan::is_refusal(&e) => {
                sc.refused.push(format!("cannot read {}: {e}; skipped", f.path.display()));
                continue;
            }
            Err(e) => return Err(Error::path("cannot open", &f.path, e)),
        };
        let mut day = Scanner::new(sc.opts);
        day.scan(
            reader,
            Origin { name: &f.path.display().to_string(), day: Some(day_number(f.date)) },
            &mut std::io::sink(),
        )?;
        let found = day.host.last.is_some();
        sc.absorb(day);
        if found {
            break;
        }
    }
    sc.report_rejects(diag);
    let Some(last) = sc.host.last.filter(|l| *l <= now_ms) else {
        if text {
            writeln!(out, "No checks recorded yet in {}.", dir.display())?;
        }
        return Ok(Status::Ok);
    };
    let age_s = ((now_ms - last) / 1000).max(0) as u64;
    let last_text = super::report::ts_of(Some(last)).unwrap_or_default();
    if age_s <= max_age_s {
        if text {
            writeln!(out, "The monitor is running: last check {last_text} ({} ago).", clock::human_duration(age_s))?;
        }
        return Ok(Status::Ok);
    }
    let why = format!("more than {}, the limit", clock::human_duration(max_age_s));
    let finding = gap_finding(last, None, age_s, &why, &clock.stamp());
    if text {
        writeln!(out, "Monitoring gap: {}", finding.detail)?;
    } else {
        ndjson::write(out, &finding)?;
    }
    Ok(Status::Failures)
}
