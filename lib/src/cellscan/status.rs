//! `cellscan status`: what the Lazarus Pit daemon's `--status` printed, from a scan of the
//! missions directory: how many cells, the agents by health, and the revivals pending.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::handoff;
use super::lazarus::Lazarus;
use super::model::{AutoRevive, HandoffApproval};
use super::revive;
use super::scan::{self, Cell, ScanCtx};
use crate::error::Result;
use crate::ndjson;

/// Agents by health.
#[derive(Debug, Default, Serialize, PartialEq)]
pub(crate) struct ByHealth {
    pub(crate) healthy: u64,
    pub(crate) degraded: u64,
    pub(crate) unhealthy: u64,
    pub(crate) unknown: u64,
}

/// Agents that need reviving, by what their cell's policy does about it.
#[derive(Debug, Default, Serialize, PartialEq)]
pub(crate) struct Pending {
    /// `auto_revive: yes`: the next `cellscan revive` runs the revive command.
    pub(crate) to_revive: u64,
    /// `auto_revive: ask`: waiting for `cellscan revive --approve CELL/AGENT`.
    pub(crate) awaiting_approval: u64,
    /// `auto_revive: no`: nobody revives them.
    pub(crate) not_revived: u64,
}

/// Handoffs waiting: agents that cannot be revived, whose cell allows handoff, with tasks
/// to hand, by what happens next.
#[derive(Debug, Default, Serialize, PartialEq)]
pub(crate) struct Handoffs {
    /// `handoff_approval: auto`: the next `cellscan revive` hands the tasks off.
    pub(crate) to_hand_off: u64,
    /// `handoff_approval: manual`: waiting for `cellscan approve CELL --handoff AGENT`.
    pub(crate) awaiting_approval: u64,
}

/// The `status` record.
#[derive(Debug, Serialize)]
pub(crate) struct Status {
    kind: &'static str,
    source: &'static str,
    missions: PathBuf,
    /// The Lazarus config read, if any.
    lazarus_config: Option<PathBuf>,
    cells: u64,
    agents: u64,
    health: ByHealth,
    pending_revivals: u64,
    pending: Pending,
    pending_handoffs: u64,
    handoffs: Handoffs,
    timestamp: String,
}

/// Scan every cell of `dir` and count.
pub(crate) fn status(dir: &Path, sctx: &ScanCtx<'_>, lz: &Lazarus) -> Result<Status> {
    let mut st = Status {
        kind: "status",
        source: "cellscan",
        missions: dir.to_path_buf(),
        lazarus_config: (!lz.path.as_os_str().is_empty()).then(|| lz.path.clone()),
        cells: 0,
        agents: 0,
        health: ByHealth::default(),
        pending_revivals: 0,
        pending: Pending::default(),
        pending_handoffs: 0,
        handoffs: Handoffs::default(),
        timestamp: sctx.stamp.clone(),
    };
    for d in scan::list_cells(dir)? {
        let Some((cell, health)) = scan::scan_cell(&d, sctx) else { continue };
        st.cells += 1;
        for (i, h) in health.iter().enumerate() {
            st.agents += 1;
            match h.health {
                "healthy" => st.health.healthy += 1,
                "degraded" => st.health.degraded += 1,
                "unhealthy" => st.health.unhealthy += 1,
                _ => st.health.unknown += 1,
            }
            if h.needs_revival {
                st.pending_revivals += 1;
                match cell.auto_revive() {
                    AutoRevive::Yes => st.pending.to_revive += 1,
                    AutoRevive::Ask => st.pending.awaiting_approval += 1,
                    AutoRevive::No => st.pending.not_revived += 1,
                }
                if handoff_pending(&cell, i, crate::clock::unix_f64(sctx.now)) {
                    st.pending_handoffs += 1;
                    match handoff::approval(&cell) {
                        HandoffApproval::Auto => st.handoffs.to_hand_off += 1,
                        HandoffApproval::Manual => st.handoffs.awaiting_approval += 1,
                    }
                }
            }
        }
    }
    Ok(st)
}

/// Whether agent `i` (which needs reviving) waits for a handoff: its cell allows handoff, it
/// has tasks to hand, and it cannot be revived (policy `no`, or its revivals are exhausted
/// in the cell's ledger).
fn handoff_pending(cell: &Cell, i: usize, now: f64) -> bool {
    let a = &cell.agents[i];
    if !handoff::allowed(cell) || handoff::tasks_of(cell, &a.id).is_empty() {
        return false;
    }
    match cell.auto_revive() {
        AutoRevive::No => true,
        AutoRevive::Ask => false,
        AutoRevive::Yes => {
            let policy = revive::policy_of(cell);
            let ledger = revive::peek_ledger(cell).unwrap_or_default();
            let entry = ledger.get(&a.id).cloned().unwrap_or_default();
            entry.attempts_at(&policy, now) >= policy.max_attempts
        }
    }
}

/// Write the record, or the lines for people.
pub(crate) fn write(out: &mut impl Write, st: &Status, text: bool) -> Result<()> {
    if !text {
        return ndjson::write(out, st);
    }
    let (h, p) = (&st.health, &st.pending);
    writeln!(out, "missions: {}", st.missions.display())?;
    if let Some(c) = &st.lazarus_config {
        writeln!(out, "config: {}", c.display())?;
    }
    writeln!(out, "cells: {}", st.cells)?;
    writeln!(
        out,
        "agents: {} ({} healthy, {} degraded, {} unhealthy, {} unknown)",
        st.agents, h.healthy, h.degraded, h.unhealthy, h.unknown
    )?;
    writeln!(
        out,
        "pending revivals: {} ({} to revive, {} awaiting approval, {} not revived by policy)",
        st.pending_revivals, p.to_revive, p.awaiting_approval, p.not_revived
    )?;
    writeln!(
        out,
        "pending handoffs: {} ({} to hand off, {} awaiting approval)",
        st.pending_handoffs, st.handoffs.to_hand_off, st.handoffs.awaiting_approval
    )?;
    Ok(())
}
