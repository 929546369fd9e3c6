//! Handoff: the tasks of an agent that cannot be revived go to a substitute.
//!
//! An agent cannot be revived when its cell's `auto_revive` is `no`, when its revivals are
//! exhausted (`max_attempts`), or when a checkpoint is required and it has none. When the
//! cell's policies allow handoff (`handoff_allowed`, in config/policies.json or cell.json's
//! `policies`), its `pending` and `in_progress` tasks go to the first agent of
//! `substitute_agents` that is healthy and that the permissions allow:
//!
//! * when config/permissions.json names the failed agent, its `handoff_to` must name the
//!   substitute; when it names the substitute, its `handoff_from` must name the failed agent
//!   (an agent the file does not name sets no limit);
//! * the substitute is given the failed agent's `read`, `write` and `execute` on each task it
//!   takes over.
//!
//! With `handoff_approval: auto` this happens at once; with `manual` (the default) a `handoff`
//! alert asks a person, and `cellscan approve CELL --handoff AGENT` does it. The task files
//! are rewritten under the cell's lock (`.cell.lock`), each atomically, with `assigned_to`,
//! `handoff_from` and `handoff_at`; a line goes to `logs/mission.log`.

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::cli::ApproveArgs;
use super::create::{cell_lock, pretty, read_object, resolve_cell};
use super::gateway::Gateways;
use super::heartbeat::Heartbeat;
use super::lazarus::Defaults;
use super::model::{self, Choice, HandoffApproval, Task, TaskStatus};
use super::revive::{Alert, Out, ReviveCtx, Revived};
use super::scan::{self, AgentHealth, Cell, ScanCtx};
use crate::clock::Clock;
use crate::entry::Ctx;
use crate::error::{Error, Result, Status};
use crate::ndjson;
use crate::record::{Finding, Level};
use crate::store::{Dir, Perm};

/// The `handoff` record: what became of a handoff.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Handoff {
    kind: &'static str,
    cell: String,
    /// The agent whose tasks are handed off.
    agent: String,
    /// The substitute, when there is one.
    to: Option<String>,
    tasks: Vec<String>,
    /// `handed_off`, `awaiting_approval`, `no_substitute`, or `skipped` (a dry run).
    pub(crate) outcome: &'static str,
    approval: &'static str,
    detail: String,
    path: String,
    timestamp: String,
}

/// Whether the cell's policies allow handoff: config/policies.json, else cell.json's
/// `policies`, else no.
pub(crate) fn allowed(cell: &Cell) -> bool {
    cell.policies.handoff_allowed.or_else(|| cell.doc.as_ref().and_then(|d| d.handoff_allowed)).unwrap_or(false)
}

/// `handoff_approval`, `manual` unless the cell says `auto`.
pub(crate) fn approval(cell: &Cell) -> HandoffApproval {
    cell.policies.handoff_approval.unwrap_or(HandoffApproval::Manual)
}

/// The agent's tasks that a handoff moves: assigned to it, pending or in progress.
pub(crate) fn tasks_of<'c>(cell: &'c Cell, agent: &str) -> Vec<&'c Task> {
    cell.tasks
        .iter()
        .filter(|t| t.assigned_to.as_deref() == Some(agent))
        .filter(|t| matches!(t.status.value, Some(TaskStatus::Pending | TaskStatus::InProgress)))
        .collect()
}

/// Whether permissions.json lets `from` hand its tasks to `to`.
fn permitted(cell: &Cell, from: &str, to: &str) -> std::result::Result<(), String> {
    let of = |a: &str| cell.permissions.iter().find(|p| p.agent == a);
    if let Some(p) = of(from)
        && !p.handoff_to.as_ref().is_some_and(|l| l.iter().any(|x| x == to))
    {
        return Err(format!("{to}: not in {from}'s handoff_to"));
    }
    if let Some(p) = of(to)
        && !p.handoff_from.as_ref().is_some_and(|l| l.iter().any(|x| x == from))
    {
        return Err(format!("{to}: its handoff_from does not name {from}"));
    }
    Ok(())
}

/// The first substitute of `substitute_agents` that is healthy and permitted, or why none is.
pub(crate) fn substitute(cell: &Cell, from: &str, health: &[AgentHealth]) -> std::result::Result<String, String> {
    let mut why = Vec::new();
    for s in &cell.policies.substitute_agents {
        if s == from {
            continue;
        }
        let Some(i) = cell.agents.iter().position(|a| &a.id == s) else {
            why.push(format!("{s}: not an agent of the cell"));
            continue;
        };
        let h = health.get(i).map(|h| h.health).unwrap_or("unknown");
        if h != "healthy" {
            why.push(format!("{s}: {h}"));
            continue;
        }
        match permitted(cell, from, s) {
            Ok(()) => return Ok(s.clone()),
            Err(w) => why.push(w),
        }
    }
    if cell.policies.substitute_agents.is_empty() {
        why.push("config/policies.json names no substitute_agents".into());
    }
    Err(why.join("; "))
}

fn record(
    cell: &Cell,
    agent: &str,
    to: Option<&str>,
    tasks: &[&Task],
    outcome: &'static str,
    detail: String,
    stamp: &str,
) -> Handoff {
    Handoff {
        kind: "handoff",
        cell: cell.id.clone(),
        agent: agent.to_string(),
        to: to.map(String::from),
        tasks: tasks.iter().map(|t| t.id.clone()).collect(),
        outcome,
        approval: approval(cell).as_str(),
        detail,
        path: cell.dir.display().to_string(),
        timestamp: stamp.to_string(),
    }
}

fn ids(tasks: &[&Task]) -> String {
    tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>().join(", ")
}

fn alert(
    cell: &Cell,
    agent: &str,
    level: Level,
    status: &'static str,
    title: String,
    message: String,
    stamp: &str,
) -> Alert {
    Alert {
        kind: "alert",
        topic: "handoff",
        level,
        title,
        message,
        subject: format!("handoff:{}/{agent}", cell.id),
        status,
        sinks: Vec::new(),
        labels: vec!["handoff".into(), "mission-cell".into()],
        cell: cell.id.clone(),
        agent: agent.to_string(),
        timestamp: stamp.to_string(),
    }
}

fn issue_finding(
    cell: &Cell,
    agent: &str,
    level: Level,
    problem: &'static str,
    detail: String,
    stamp: &str,
) -> Finding {
    let issue = model::Issue {
        level,
        problem,
        file: Some(format!("agents/{agent}.json")),
        path: cell.dir.join("agents").join(format!("{agent}.json")),
        detail,
        age_s: None,
        suppressed_by: None,
    };
    scan::finding(&cell.id, &issue, stamp)
}

/// After revival gave up on agent `i`: hand its tasks off, or ask, as the cell says.
pub(crate) fn after_revival(cell: &Cell, i: usize, health: &[AgentHealth], ctx: &ReviveCtx<'_>) -> Revived {
    let mut done = Revived::default();
    let agent = &cell.agents[i].id;
    let tasks = tasks_of(cell, agent);
    if !allowed(cell) || tasks.is_empty() {
        return done;
    }
    let stamp = ctx.clock.stamp();
    let mission = cell.mission_name().unwrap_or(&cell.id).to_string();
    let to = match substitute(cell, agent, health) {
        Ok(to) => to,
        Err(why) => {
            let detail = format!(
                "agent {agent} cannot be revived and no substitute can take its tasks ({}): {why}",
                ids(&tasks)
            );
            done.records.push(Out::Finding(issue_finding(
                cell,
                agent,
                Level::Error,
                "no_substitute",
                detail.clone(),
                &stamp,
            )));
            done.records.push(Out::Handoff(record(cell, agent, None, &tasks, "no_substitute", detail, &stamp)));
            done.unresolved += 1;
            return done;
        }
    };
    if approval(cell) == HandoffApproval::Manual {
        let message = format!(
            "Agent {agent} of mission \"{mission}\" (cell {}) cannot be revived. Its tasks {} can go to {to}. \
             The cell's policy is to ask first.\nApprove with: cellscan approve {} --handoff {agent}",
            cell.id,
            ids(&tasks),
            cell.dir.display()
        );
        let title = format!("Handoff pending approval: {agent} to {to} in {mission}");
        done.records.push(Out::Alert(alert(cell, agent, Level::Warning, "firing", title, message, &stamp)));
        let detail = format!("awaiting approval: cellscan approve {} --handoff {agent}", cell.dir.display());
        done.records.push(Out::Handoff(record(cell, agent, Some(&to), &tasks, "awaiting_approval", detail, &stamp)));
        done.unresolved += 1;
        return done;
    }
    let (recs, ok) = perform(cell, agent, &to, &tasks, ctx.dry_run, &stamp, false);
    done.records.extend(recs);
    if !ok {
        done.unresolved += 1;
    }
    done
}

/// Hand `tasks` of `from` to `to` (unless a dry run); the records that say so, and whether
/// it was done.
fn perform(
    cell: &Cell,
    from: &str,
    to: &str,
    tasks: &[&Task],
    dry_run: bool,
    stamp: &str,
    approved: bool,
) -> (Vec<Out>, bool) {
    let mission = cell.mission_name().unwrap_or(&cell.id).to_string();
    if dry_run {
        let detail = format!("dry run: would hand {} of {from} to {to}", ids(tasks));
        return (vec![Out::Handoff(record(cell, from, Some(to), tasks, "skipped", detail, stamp))], true);
    }
    match write_handoff(cell, from, to, tasks, stamp) {
        Ok(moved) => {
            let moved_refs: Vec<&Task> = tasks.iter().copied().filter(|t| moved.contains(&t.id)).collect();
            let detail = format!("tasks {} of {from} handed to {to}", ids(&moved_refs));
            let title = format!("Tasks of {from} handed to {to} in {mission}");
            let message = format!(
                "Agent {from} of mission \"{mission}\" (cell {}) could not be revived; its tasks {} now belong to {to}{}.",
                cell.id,
                ids(&moved_refs),
                if approved { " (approved)" } else { "" }
            );
            let a = if approved {
                alert(cell, from, Level::Recovery, "resolved", title, message, stamp)
            } else {
                alert(cell, from, Level::Info, "firing", title, message, stamp)
            };
            (
                vec![
                    Out::Handoff(record(cell, from, Some(to), &moved_refs, "handed_off", detail, stamp)),
                    Out::Alert(a),
                ],
                true,
            )
        }
        Err(e) => {
            let detail = format!("cannot hand the tasks of {from} to {to}: {e}");
            (vec![Out::Finding(issue_finding(cell, from, Level::Error, "handoff_error", detail, stamp))], false)
        }
    }
}

/// Rewrite the task files under the cell's lock: each task still assigned to `from` and
/// still pending or in progress goes to `to`; the substitute gets `from`'s permissions on
/// them. The ids of the tasks moved.
fn write_handoff(cell: &Cell, from: &str, to: &str, tasks: &[&Task], stamp: &str) -> Result<Vec<String>> {
    let mut lock = cell_lock(&cell.dir)?;
    let _held = lock.acquire()?;
    let mut moved = Vec::new();
    for t in tasks {
        let mut doc = read_object(&t.path)?;
        let still = doc.get("assigned_to").and_then(Value::as_str) == Some(from)
            && matches!(doc.get("status").and_then(Value::as_str), Some("pending" | "in_progress"));
        if !still {
            continue;
        }
        doc.insert("assigned_to".into(), to.into());
        doc.insert("handoff_from".into(), from.into());
        doc.insert("handoff_at".into(), stamp.into());
        scan::write_cell_file(&cell.dir, &t.file, &pretty(&Value::Object(doc))?)?;
        moved.push(t.id.clone());
    }
    grant(cell, from, to, &moved)?;
    let line = format!("{stamp} cellscan: handoff {from} -> {to}: {}\n", moved.join(", "));
    Dir::open(&cell.dir)?.sub_create("logs")?.append_line("mission.log", line.as_bytes(), Perm::Shared)?;
    Ok(moved)
}

/// Give `to` the `read`, `write` and `execute` that `from` has on `tasks` in
/// config/permissions.json (when the file names `from`), keeping everything else.
fn grant(cell: &Cell, from: &str, to: &str, tasks: &[String]) -> Result<()> {
    let path = cell.dir.join("config/permissions.json");
    if !path.is_file() || tasks.is_empty() {
        return Ok(());
    }
    let mut doc = read_object(&path)?;
    let Some(Value::Object(theirs)) = doc.get(from).cloned() else { return Ok(()) };
    let mut changed = false;
    let mine = doc.entry(to.to_string()).or_insert_with(|| Value::Object(Default::default()));
    let Value::Object(mine) = mine else {
        return Err(Error::config(format!("{}: {to}: expected an object", path.display())));
    };
    for right in ["read", "write", "execute"] {
        let had: Vec<&str> =
            theirs.get(right).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        for t in tasks.iter().filter(|t| had.contains(&t.as_str())) {
            let list = mine.entry(right.to_string()).or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(l) = list
                && !l.iter().any(|x| x == t.as_str())
            {
                l.push(t.clone().into());
                changed = true;
            }
        }
    }
    if changed {
        scan::write_cell_file(&cell.dir, "config/permissions.json", &pretty(&Value::Object(doc))?)?;
    }
    Ok(())
}

/// `cellscan approve CELL --handoff AGENT`: do the handoff a person approved.
#[allow(clippy::too_many_arguments)]
pub(crate) fn approve(
    ctx: &mut Ctx,
    args: &ApproveArgs,
    missions: &Path,
    clock: &Clock,
    dry_run: bool,
    hb: Option<&Heartbeat>,
    defaults: Defaults,
    gws: &Gateways,
) -> Result<Status> {
    let dir = resolve_cell(&args.cell, missions)?;
    let sctx = ScanCtx { now: clock.now(), stamp: clock.stamp(), heartbeat: hb, defaults, gateways: Some(gws) };
    let (cell, health) =
        scan::scan_cell(&dir, &sctx).ok_or_else(|| Error::usage(format!("{}: not a mission cell", dir.display())))?;
    let agent = &args.handoff;
    let Some(i) = cell.agents.iter().position(|a| &a.id == agent) else {
        return Err(Error::usage(format!("--handoff: no agent '{agent}' in the cell")));
    };
    if !allowed(&cell) {
        return Err(Error::usage(format!(
            "--handoff: the cell's policies do not allow handoff (handoff_allowed is not true in {})",
            cell.dir.join("config/policies.json").display()
        )));
    }
    if health[i].health == "healthy" {
        return Err(Error::usage(format!("--handoff: agent {agent} is healthy; nothing to hand off")));
    }
    let tasks = tasks_of(&cell, agent);
    if tasks.is_empty() {
        return Err(Error::usage(format!("--handoff: agent {agent} has no pending or in-progress task")));
    }
    let stamp = clock.stamp();
    let (recs, ok) = match substitute(&cell, agent, &health) {
        Ok(to) => perform(&cell, agent, &to, &tasks, dry_run, &stamp, true),
        Err(why) => {
            let detail = format!("no substitute can take the tasks of {agent} ({}): {why}", ids(&tasks));
            (vec![Out::Handoff(record(&cell, agent, None, &tasks, "no_substitute", detail, &stamp))], false)
        }
    };
    for r in &recs {
        ndjson::write(&mut ctx.out, r)?;
    }
    ctx.out.flush()?;
    Ok(Status::failures_if(!ok))
}
