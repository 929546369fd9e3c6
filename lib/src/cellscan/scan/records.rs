//! The records of a scanned cell: `cell`, `agent`, `task` and `finding`, borrowing from the
//! cell, and what the writer keeps of a cell to find ids used by two cells.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;

use super::Cell;
use super::health::AgentHealth;
use crate::cellscan::heartbeat::AgentState;
use crate::cellscan::model::{Choice, Issue, TaskStatus};
use crate::clock;
use crate::record::{Finding, Level};

/// Tasks of a cell by status.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct TaskCounts {
    pub(crate) pending: usize,
    pub(crate) in_progress: usize,
    pub(crate) completed: usize,
    pub(crate) failed: usize,
}

/// A path written as text (lossily, should it not be UTF-8).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PathText<'a>(pub(crate) &'a Path);

impl Serialize for PathText<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string_lossy())
    }
}

/// A `cell` record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellRecord<'a> {
    pub(crate) kind: &'static str,
    pub(crate) cell: &'a str,
    pub(crate) mission_name: Option<&'a str>,
    pub(crate) status: Option<&'a str>,
    pub(crate) isolation_level: Option<&'a str>,
    pub(crate) auto_revive: &'static str,
    pub(crate) path: PathText<'a>,
    pub(crate) agents: usize,
    pub(crate) tasks: TaskCounts,
    /// Findings at warning or worse.
    pub(crate) problems: usize,
    pub(crate) timestamp: &'a str,
}

/// An `agent` record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentRecord<'a> {
    pub(crate) kind: &'static str,
    pub(crate) cell: &'a str,
    pub(crate) agent: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<&'a str>,
    pub(crate) role: Option<&'a str>,
    pub(crate) status: Option<&'a str>,
    pub(crate) current_task: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) gateway: Option<&'a str>,
    pub(crate) checkpoint_age_s: Option<u64>,
    pub(crate) health: &'a str,
    pub(crate) health_source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) gateway_status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) heartbeat: Option<&'a AgentState>,
    pub(crate) path: PathText<'a>,
    pub(crate) timestamp: &'a str,
}

/// A mission `task` record (board's tasks have `column`; these have `cell`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskRecord<'a> {
    pub(crate) kind: &'static str,
    pub(crate) cell: &'a str,
    pub(crate) id: &'a str,
    pub(crate) title: Option<&'a str>,
    pub(crate) status: Option<&'a str>,
    pub(crate) priority: Option<&'a str>,
    pub(crate) assigned_to: Option<&'a str>,
    pub(crate) dependencies: &'a [String],
    pub(crate) timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) created_at: Option<Ts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) started_at: Option<Ts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) completed_at: Option<Ts>,
    pub(crate) path: PathText<'a>,
    pub(crate) timestamp: &'a str,
}

/// Any record a scan writes; they borrow from the scanned cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Rec<'a> {
    /// A `cell` record: one per cell.
    Cell(CellRecord<'a>),
    /// An `agent` record: one per agent.
    Agent(AgentRecord<'a>),
    /// A `task` record: one per task.
    Task(TaskRecord<'a>),
    /// A `finding`: something wrong with the cell.
    Finding(Finding),
}

/// An issue as a `finding` record.
pub(crate) fn finding(cell_id: &str, issue: &Issue, stamp: &str) -> Finding {
    let subject = match &issue.file {
        Some(f) => format!("{cell_id}/{f}"),
        None => cell_id.to_string(),
    };
    let mut f = Finding::new("cellscan", &subject, issue.level, issue.problem, issue.detail.clone(), stamp.to_string());
    f.extra.insert("cell".into(), cell_id.into());
    f.extra.insert("path".into(), issue.path.display().to_string().into());
    if let Some(a) = issue.age_s {
        f.extra.insert("age_s".into(), a.into());
    }
    if let Some(p) = &issue.suppressed_by {
        f.extra.insert("suppressed_by".into(), p.clone().into());
    }
    f
}

/// A time written like every pitcrew timestamp (`2026-11-23T10:30:00.000Z`), without
/// allocating.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Ts(pub(crate) OffsetDateTime);

impl Serialize for Ts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        clock::with_ts(self.0, |t| s.serialize_str(t))
    }
}

fn ts(t: Option<OffsetDateTime>) -> Option<Ts> {
    t.map(Ts)
}

/// The records of a cell, in order: the cell, its agents, its tasks, its findings.
pub fn records<'a>(cell: &'a Cell, health: &'a [AgentHealth], stamp: &'a str) -> Vec<Rec<'a>> {
    let mut counts = TaskCounts::default();
    for t in &cell.tasks {
        match t.status.value {
            Some(TaskStatus::Pending) => counts.pending += 1,
            Some(TaskStatus::InProgress) => counts.in_progress += 1,
            Some(TaskStatus::Completed) => counts.completed += 1,
            Some(TaskStatus::Failed) => counts.failed += 1,
            None => {}
        }
    }
    let doc = cell.doc.as_ref();
    let mut out = Vec::with_capacity(1 + cell.agents.len() + cell.tasks.len() + cell.issues.len());
    out.push(Rec::Cell(CellRecord {
        kind: "cell",
        cell: &cell.id,
        mission_name: cell.mission_name(),
        status: doc.and_then(|d| d.status.text.as_deref()),
        isolation_level: doc.and_then(|d| d.isolation.text.as_deref()),
        auto_revive: cell.auto_revive().as_str(),
        path: PathText(&cell.dir),
        agents: cell.agents.len(),
        tasks: counts,
        problems: cell.issues.iter().filter(|i| i.level.is_bad()).count(),
        timestamp: stamp,
    }));
    for (a, h) in cell.agents.iter().zip(health) {
        out.push(Rec::Agent(AgentRecord {
            kind: "agent",
            cell: &cell.id,
            agent: &a.id,
            name: a.name.as_deref(),
            role: a.role.text.as_deref(),
            status: a.status.text.as_deref(),
            current_task: a.current_task.as_deref(),
            gateway: a.gateway.as_deref(),
            checkpoint_age_s: h.checkpoint_age_s,
            health: h.health,
            health_source: h.source,
            gateway_status: h.gateway_status,
            heartbeat: h.state.as_ref(),
            path: PathText(&a.path),
            timestamp: stamp,
        }));
    }
    for t in &cell.tasks {
        out.push(Rec::Task(TaskRecord {
            kind: "task",
            cell: &cell.id,
            id: &t.id,
            title: t.title.as_deref(),
            status: t.status.text.as_deref(),
            priority: t.priority.text.as_deref(),
            assigned_to: t.assigned_to.as_deref(),
            dependencies: &t.dependencies,
            timeout: t.timeout,
            created_at: ts(t.created_at),
            started_at: ts(t.started_at),
            completed_at: ts(t.completed_at),
            path: PathText(&t.path),
            timestamp: stamp,
        }));
    }
    for i in &cell.issues {
        out.push(Rec::Finding(finding(&cell.id, i, stamp)));
    }
    out
}

/// The worst level among a cell's issues.
pub fn worst(cell: &Cell) -> Option<Level> {
    cell.issues.iter().map(|i| i.level).filter(|l| *l != Level::Recovery).max()
}

/// Findings for cells that share a `cell_id`: every cell after the first with that id.
#[derive(Default)]
pub(crate) struct DuplicateIds {
    first: HashMap<String, PathBuf>,
    pub(crate) issues: Vec<(String, Issue)>,
}

impl DuplicateIds {
    pub(crate) fn see(&mut self, cell: &Cell) {
        self.see_seen(&Seen::of(cell));
    }

    /// [`DuplicateIds::see`] from what a worker kept of the cell.
    pub(crate) fn see_seen(&mut self, seen: &Seen) {
        if !seen.has_cell_id {
            return;
        }
        match self.first.get(&seen.id) {
            Some(first) => {
                let detail = format!("cell_id '{}' is also the id of {}", seen.id, first.display());
                let issue = Issue {
                    level: Level::Error,
                    problem: "duplicate_id",
                    file: Some("cell.json".into()),
                    path: seen.dir.join("cell.json"),
                    detail,
                    age_s: None,
                    suppressed_by: None,
                };
                self.issues.push((seen.id.clone(), issue));
            }
            None => {
                self.first.insert(seen.id.clone(), seen.dir.clone());
            }
        }
    }
}

/// What the writer needs of a scanned cell, so that the cell itself (hundreds of small
/// allocations) is freed by the thread that read it rather than the one that writes.
#[derive(Debug)]
pub(crate) struct Seen {
    pub(crate) id: String,
    pub(crate) dir: PathBuf,
    /// cell.json names the cell's id.
    pub(crate) has_cell_id: bool,
    pub(crate) worst: Option<Level>,
}

impl Seen {
    pub(crate) fn of(cell: &Cell) -> Seen {
        Seen {
            id: cell.id.clone(),
            dir: cell.dir.clone(),
            has_cell_id: cell.doc.as_ref().and_then(|d| d.cell_id.as_ref()).is_some(),
            worst: worst(cell),
        }
    }
}
