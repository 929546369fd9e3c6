//! `revive --watch`: the resident revival loop. Every interval, a revive pass over the
//! missions directory, as `cellscan revive` does it once.
//!
//! Each pass scans every cell (with the heartbeat endpoint and the gateways, as the batch
//! does) and revives the agents that need it, each cell's policy deciding. What it writes:
//!
//! * the scan's records through the change filter of `scan --watch` ([`super::watch`]): the
//!   first pass writes them all, later ones only what is new or changed, and then what went
//!   away (`removed` / `resolved`), so a reader announces each cell, agent, gateway and
//!   finding once;
//! * what revival did: a `recovery` record of an attempt that ran (`recovered` or `failed`)
//!   and a `handoff` that was done, every time they happen; a standing state (a cooldown, retries
//!   exhausted, a refusal, an `ask` alert, a handoff awaiting approval or without a
//!   substitute, a finding of revival) when it begins, not again while it lasts.
//!
//! The restart ledger (logs/revivals.json) is the batch's, so a failing agent is retried on its
//! policy's schedule (cooldown, `max_retries`), not every pass.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use serde_json::Value;

use super::gateway::Gateways;
use super::heartbeat::Heartbeat;
use super::lazarus::Defaults;
use super::revive::{self, ReviveCtx};
use super::scan::{self, DuplicateIds, ScanCtx};
use super::watch::Watch;
use super::{jobs_of, to_value};
use crate::clock::Clock;
use crate::entry::Diag;
use crate::error::{Error, Result};
use crate::ndjson;
use crate::util::stop::Event;

/// What a revive pass works with.
pub(crate) struct Loop<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) clock: &'a Clock,
    pub(crate) dry_run: bool,
    pub(crate) heartbeat: Option<&'a Heartbeat>,
    pub(crate) gateways: &'a Gateways,
    pub(crate) defaults: Defaults,
    pub(crate) jobs: Option<u32>,
    pub(crate) diag: &'a Diag,
}

/// One pass's records: the scan's, and what revival did.
struct Pass {
    scan: Vec<Value>,
    revival: Vec<Value>,
    stamp: String,
}

impl Loop<'_> {
    /// Scan every cell and revive what needs it.
    fn pass(&self) -> Result<Pass> {
        if let Some(h) = self.heartbeat {
            h.reset();
        }
        self.gateways.reset();
        let cells = scan::list_cells(self.dir)?;
        let sctx = ScanCtx {
            now: self.clock.now(),
            stamp: self.clock.stamp(),
            heartbeat: self.heartbeat,
            defaults: self.defaults,
            gateways: Some(self.gateways),
        };
        let (approved, used) = (HashSet::new(), Mutex::new(HashSet::new()));
        let rctx = ReviveCtx {
            clock: self.clock,
            dry_run: self.dry_run,
            approved: &approved,
            used: &used,
            heartbeat: self.heartbeat,
            gateways: Some(self.gateways),
            diag: self.diag,
        };
        let mut pass = Pass { scan: Vec::new(), revival: Vec::new(), stamp: sctx.stamp.clone() };
        let mut dups = DuplicateIds::default();
        let work = |d: &PathBuf| {
            let (cell, health) = scan::scan_cell(d, &sctx)?;
            let records: Result<Vec<Value>> = scan::records(&cell, &health, &sctx.stamp).iter().map(to_value).collect();
            let targets: Vec<usize> =
                health.iter().enumerate().filter(|(_, h)| h.needs_revival).map(|(i, _)| i).collect();
            let revived = revive::revive_cell(&cell, &targets, &health, &rctx);
            let revived: Result<Vec<Value>> = revived.records.iter().map(to_value).collect();
            Some((scan::Seen::of(&cell), records, revived))
        };
        crate::util::par::for_each_ordered(&cells, jobs_of(self.jobs), work, |r| {
            if let Some((seen, records, revived)) = r {
                dups.see_seen(&seen);
                pass.scan.extend(records?);
                pass.revival.extend(revived?);
            }
            Ok(())
        })?;
        for (id, issue) in &dups.issues {
            pass.scan.push(to_value(&scan::finding(id, issue, &sctx.stamp))?);
        }
        for c in self.gateways.checks() {
            pass.scan.push(to_value(&c)?);
        }
        Ok(pass)
    }
}

/// Whether a record of revival says something happened (an attempt ran, tasks were handed
/// off): written every time. Anything else is a standing state.
fn happened(v: &Value) -> bool {
    let outcome = v.get("outcome").and_then(Value::as_str).unwrap_or("");
    match v.get("kind").and_then(Value::as_str) {
        Some("recovery") => {
            let refused = v
                .get("steps")
                .and_then(Value::as_array)
                .is_some_and(|s| s.iter().any(|st| st.get("outcome").and_then(Value::as_str) == Some("refused")));
            matches!(outcome, "recovered" | "failed") && !refused
        }
        Some("handoff") => outcome == "handed_off",
        _ => false,
    }
}

/// What a standing state is about, and what it is: the same key in consecutive passes is
/// the same state, written once.
fn standing_key(v: &Value) -> String {
    let f = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    [f("kind"), f("name"), f("cell"), f("agent"), f("subject"), f("outcome"), f("problem"), f("topic"), f("status")]
        .join("\0")
}

/// The standing states of the previous pass.
#[derive(Default)]
pub(crate) struct Standing {
    prev: HashSet<String>,
}

impl Standing {
    /// The records of a pass's revival that should be written.
    pub(crate) fn filter(&mut self, records: Vec<Value>) -> Vec<Value> {
        let mut next = HashSet::new();
        let mut out = Vec::new();
        for v in records {
            if happened(&v) {
                out.push(v);
                continue;
            }
            let key = standing_key(&v);
            if !self.prev.contains(&key) && !next.contains(&key) {
                out.push(v);
            }
            next.insert(key);
        }
        self.prev = next;
        out
    }
}

/// Run a revive pass every `interval` until `stop` says so. A pass that fails after the first
/// is reported through `warn` and tried again next time.
pub(crate) fn run(
    out: &mut dyn std::io::Write,
    interval: Duration,
    stop: &Receiver<Event>,
    lp: &Loop<'_>,
    warn: &dyn Fn(&Error),
) -> Result<()> {
    let mut watch = Watch::default();
    let mut standing = Standing::default();
    super::watch::every(
        interval,
        stop,
        warn,
        || lp.pass(),
        |pass| {
            for v in watch.diff(pass.scan, &pass.stamp) {
                ndjson::write(out, &v)?;
            }
            for v in standing.filter(pass.revival) {
                ndjson::write(out, &v)?;
            }
            Ok(out.flush()?)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn recovery(outcome: &str, attempt: u32) -> Value {
        json!({"kind":"recovery","name":"c/a1","cell":"c","agent":"a1","outcome":outcome,"attempt":attempt,"detail":format!("d{attempt}")})
    }

    #[test]
    fn attempts_are_written_each_time_standing_states_when_they_begin() {
        let mut s = Standing::default();
        assert_eq!(s.filter(vec![recovery("failed", 1)]), vec![recovery("failed", 1)]);
        assert_eq!(s.filter(vec![recovery("cooldown", 1)]).len(), 1, "a cooldown begins");
        assert!(s.filter(vec![recovery("cooldown", 1)]).is_empty(), "and lasts");
        assert_eq!(s.filter(vec![recovery("failed", 2)]).len(), 1);
        assert_eq!(s.filter(vec![recovery("failed", 2)]).len(), 1, "an attempt that ran is always said");
        assert_eq!(s.filter(vec![recovery("cooldown", 2)]).len(), 1, "a new cooldown");
        let ask =
            json!({"kind":"alert","topic":"revival","subject":"agent:c/a2","status":"firing","cell":"c","agent":"a2"});
        assert_eq!(s.filter(vec![ask.clone()]).len(), 1);
        assert!(s.filter(vec![ask.clone()]).is_empty());
        assert!(s.filter(vec![]).is_empty());
        assert_eq!(s.filter(vec![ask]).len(), 1, "asked again after it went away");
        let refused = json!({"kind":"recovery","name":"c/a3","outcome":"failed","steps":[{"step":"restore","outcome":"refused"}]});
        assert_eq!(s.filter(vec![refused.clone()]).len(), 1);
        assert!(s.filter(vec![refused]).is_empty(), "a refusal is a standing state");
        let handed = json!({"kind":"handoff","cell":"c","agent":"a4","outcome":"handed_off"});
        assert_eq!(s.filter(vec![handed.clone()]).len(), 1);
        assert_eq!(s.filter(vec![handed]).len(), 1);
    }
}
