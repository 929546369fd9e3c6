//! Checking a cell's files against each other and the clock: duplicate ids, references
//! between agents, tasks, permissions and policies, dependency cycles, limits and timeouts.

use std::collections::{HashMap, HashSet};

use time::OffsetDateTime;

use super::{Cell, age, mtime};
use crate::cellscan::model::{AutoRevive, CellDoc, CellStatus, Task, TaskStatus};
use crate::clock;
use crate::record::Level;

/// An issue found by [`check`] before it is recorded: level, problem, file, detail, age.
type Found = (Level, &'static str, Option<String>, String, Option<u64>);

/// Check a cell's files against each other and the clock: ids, references, cycles,
/// limits, policies and timeouts.
pub fn check(cell: &mut Cell, now: OffsetDateTime) {
    let found = check_refs(cell, now);
    for (level, problem, file, detail, age_s) in found {
        cell.issue(level, problem, file.as_deref(), detail);
        if let Some(i) = cell.issues.last_mut() {
            i.age_s = age_s;
        }
    }
}

fn add(found: &mut Vec<Found>, level: Level, problem: &'static str, file: &str, detail: String) {
    found.push((level, problem, Some(file.to_string()), detail, None));
}

fn check_refs(cell: &Cell, now: OffsetDateTime) -> Vec<Found> {
    let mut found: Vec<Found> = Vec::new();
    let ids = unique_ids(cell, &mut found);
    if let Some(doc) = &cell.doc {
        check_doc(cell, doc, now, &mut found);
    }
    if cell.auto_revive() == AutoRevive::Yes && cell.policies.revive_command.is_none() {
        let from = if cell.policies.auto_revive.is_some() || cell.doc.as_ref().is_some_and(|d| d.auto_revive.is_some())
        {
            "auto_revive is yes"
        } else {
            "auto_revive is yes (from the Lazarus config)"
        };
        let detail = format!(
            "{from} but there is no revive_command, so failed agents are reported and never revived: add \
             \"revive_command\": \"CMD\" (a shell command, or a list of arguments; it gets CELL_ID, \
             CELL_PATH, AGENT_ID, CHECKPOINT_PATH and MISSION_NAME) to this file"
        );
        add(&mut found, Level::Warning, "missing_field", "config/policies.json", detail);
    }
    check_references(cell, &ids, &mut found);
    check_permissions(cell, &ids, &mut found);
    if cell.tasks.iter().any(|t| !t.dependencies.is_empty()) {
        for cycle in cycles(&cell.tasks) {
            let file = ids.tasks.get(cycle[0].as_str()).copied().unwrap_or_default();
            let detail = format!("dependency cycle: {} (each task waits for the next)", cycle.join(" -> "));
            add(&mut found, Level::Error, "dependency_cycle", file, detail);
        }
    }
    check_timeouts(cell, now, &mut found);
    found
}

/// The ids of a cell's agents and tasks, each with the file that first used it.
struct Ids<'a> {
    agents: HashMap<&'a str, &'a str>,
    tasks: HashMap<&'a str, &'a str>,
}

/// The ids of the cell's agents and tasks; an id used twice is a finding.
fn unique_ids<'a>(cell: &'a Cell, found: &mut Vec<Found>) -> Ids<'a> {
    let mut agents: HashMap<&str, &str> = HashMap::with_capacity(cell.agents.len());
    for a in &cell.agents {
        if let Some(first) = agents.get(a.id.as_str()) {
            let detail = format!("agent_id '{}' is also used by {first}", a.id);
            add(found, Level::Error, "duplicate_id", &a.file, detail);
        } else {
            agents.insert(&a.id, &a.file);
        }
    }
    let mut tasks: HashMap<&str, &str> = HashMap::with_capacity(cell.tasks.len());
    for t in &cell.tasks {
        if let Some(first) = tasks.get(t.id.as_str()) {
            let detail = format!("task_id '{}' is also used by {first}", t.id);
            add(found, Level::Error, "duplicate_id", &t.file, detail);
        } else {
            tasks.insert(&t.id, &t.file);
        }
    }
    Ids { agents, tasks }
}

/// cell.json against the clock and the config files: the agent limit, the mission's
/// timeout, and policies the two disagree on.
fn check_doc(cell: &Cell, doc: &CellDoc, now: OffsetDateTime, found: &mut Vec<Found>) {
    if let Some(max) = doc.max_agents
        && cell.agents.len() as u64 > max
    {
        let detail = format!("{} agents, more than max_agents ({max})", cell.agents.len());
        found.push((Level::Warning, "too_many_agents", None, detail, None));
    }
    if let (Some(CellStatus::Active), Some(timeout), Some(created)) = (doc.status.value, doc.timeout, doc.created_at) {
        let a = age(now, created);
        if a > timeout {
            let detail = format!(
                "mission active since {}, past its timeout of {}",
                clock::fmt_ts(created),
                clock::human_duration(timeout)
            );
            found.push((Level::Warning, "mission_timeout", Some("cell.json".into()), detail, Some(a)));
        }
    }
    if let (Some(from_cell), Some(from_policies)) = (doc.auto_revive, cell.policies.auto_revive)
        && from_cell != from_policies
    {
        let detail = format!(
            "cell.json says auto_revive '{from_cell}', config/policies.json says '{from_policies}' (policies.json wins)"
        );
        add(found, Level::Warning, "policy_conflict", "config/policies.json", detail);
    }
    if let (Some(level), Some(file_level)) = (doc.isolation.value, cell.isolation_file)
        && level != file_level
    {
        let detail = format!("cell.json says isolation_level '{level}', config/isolation.json says '{file_level}'");
        add(found, Level::Warning, "policy_conflict", "config/isolation.json", detail);
    }
}

/// References between files: tasks to agents and to other tasks, agents to their task.
fn check_references(cell: &Cell, ids: &Ids<'_>, found: &mut Vec<Found>) {
    for t in &cell.tasks {
        if let Some(a) = &t.assigned_to
            && !ids.agents.contains_key(a.as_str())
        {
            let detail = format!("task {} is assigned to unknown agent '{a}'", t.id);
            add(found, Level::Error, "unknown_agent", &t.file, detail);
        }
        for d in t.dependencies.iter().filter(|d| !ids.tasks.contains_key(d.as_str())) {
            let detail = format!("task {} depends on unknown task '{d}'", t.id);
            add(found, Level::Error, "unknown_dependency", &t.file, detail);
        }
    }
    for a in &cell.agents {
        if let Some(t) = &a.current_task
            && !ids.tasks.contains_key(t.as_str())
        {
            let detail = format!("agent {}'s current_task '{t}' is not a task of the cell", a.id);
            add(found, Level::Warning, "unknown_task", &a.file, detail);
        }
    }
}

/// permissions.json and the policies' substitutes name agents and tasks of the cell.
fn check_permissions(cell: &Cell, ids: &Ids<'_>, found: &mut Vec<Found>) {
    let perms = "config/permissions.json";
    for p in &cell.permissions {
        if !ids.agents.contains_key(p.agent.as_str()) {
            let detail = format!("permissions are given to unknown agent '{}'", p.agent);
            add(found, Level::Warning, "unknown_agent", perms, detail);
        }
        for t in p.tasks.iter().filter(|t| !ids.tasks.contains_key(t.as_str())) {
            let detail = format!("agent {}'s permissions name unknown task '{t}'", p.agent);
            add(found, Level::Warning, "unknown_task", perms, detail);
        }
        for a in p.agents.iter().filter(|a| !ids.agents.contains_key(a.as_str())) {
            let detail = format!("agent {}'s handoff permissions name unknown agent '{a}'", p.agent);
            add(found, Level::Warning, "unknown_agent", perms, detail);
        }
    }
    for a in cell.policies.substitute_agents.iter().filter(|a| !ids.agents.contains_key(a.as_str())) {
        let detail = format!("substitute_agents names unknown agent '{a}'");
        add(found, Level::Warning, "unknown_agent", "config/policies.json", detail);
    }
}

/// Tasks in progress past their timeout (from `started_at`, else the file's last change).
fn check_timeouts(cell: &Cell, now: OffsetDateTime, found: &mut Vec<Found>) {
    for t in &cell.tasks {
        let (Some(TaskStatus::InProgress), Some(timeout)) = (t.status.value, t.timeout) else { continue };
        let (start, how) = match t.started_at {
            Some(s) => (Some(s), "started_at"),
            None => (mtime(&t.path), "file last changed; no started_at"),
        };
        let Some(start) = start else { continue };
        let a = age(now, start);
        if a > timeout {
            let detail = format!(
                "task {} in progress since {} ({how}), past its timeout of {}",
                t.id,
                clock::fmt_ts(start),
                clock::human_duration(timeout)
            );
            found.push((Level::Warning, "task_timeout", Some(t.file.clone()), detail, Some(a)));
        }
    }
}

/// Every dependency cycle among the tasks, each once, starting at its smallest id, closed
/// (`[a, b, c, a]`).
pub fn cycles(tasks: &[Task]) -> Vec<Vec<String>> {
    let index: HashMap<&str, usize> = tasks.iter().enumerate().rev().map(|(i, t)| (t.id.as_str(), i)).collect();
    let deps: Vec<Vec<usize>> =
        tasks.iter().map(|t| t.dependencies.iter().filter_map(|d| index.get(d.as_str()).copied()).collect()).collect();
    // 0 unseen, 1 on the stack, 2 done.
    let mut color = vec![0u8; tasks.len()];
    let mut seen: HashSet<Vec<usize>> = HashSet::new();
    let mut out = Vec::new();
    for root in 0..tasks.len() {
        if color[root] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        color[root] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&d) = deps[node].get(*next) {
                *next += 1;
                match color[d] {
                    0 => {
                        color[d] = 1;
                        stack.push((d, 0));
                    }
                    1 => {
                        let from = stack.iter().position(|&(n, _)| n == d).unwrap_or(0);
                        let mut cyc: Vec<usize> = stack[from..].iter().map(|&(n, _)| n).collect();
                        let min = (0..cyc.len()).min_by_key(|&i| tasks[cyc[i]].id.as_str()).unwrap_or(0);
                        cyc.rotate_left(min);
                        if seen.insert(cyc.clone()) {
                            let mut names: Vec<String> = cyc.iter().map(|&i| tasks[i].id.clone()).collect();
                            names.push(names[0].clone());
                            out.push(names);
                        }
                    }
                    _ => {}
                }
            } else {
                color[node] = 2;
                stack.pop();
            }
        }
    }
    out
}
