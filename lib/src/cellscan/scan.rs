//! Scanning: find the cells of a missions directory, read each cell's files, check them
//! against each other and the clock, take agent health from the files or a heartbeat
//! endpoint, and turn it all into records.
//!
//! Cells are independent: [`in_order`] scans them on worker threads and hands the results
//! back in the order of the cell directories, whatever the threads' timing. A cell that
//! cannot be read is a cell with findings; it never stops the others.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;

use serde::Serialize;
use time::OffsetDateTime;

use super::heartbeat::{AgentState, Answer, Heartbeat};
use super::model::{
    self, Agent, AgentStatus, AutoRevive, CellDoc, CellStatus, CheckpointSource, Choice, FileCtx, Isolation, Issue,
    Permission, Policies, Task, TaskStatus,
};
use crate::clock;
use crate::error::{Error, Result};
use crate::record::{Finding, Level};

/// The sub-directories of a cell, as the spec lays it out.
pub const SUBDIRS: [&str; 6] = ["agents", "tasks", "checkpoints", "logs", "artifacts", "config"];

/// One cell as read from its directory.
#[derive(Debug, Clone)]
pub struct Cell {
    pub dir: PathBuf,
    /// The directory's name.
    pub dir_name: String,
    /// `cell_id` from cell.json, or the directory's name when it cannot be read.
    pub id: String,
    pub doc: Option<CellDoc>,
    pub policies: Policies,
    pub isolation_file: Option<Isolation>,
    pub permissions: Vec<Permission>,
    pub agents: Vec<Agent>,
    pub tasks: Vec<Task>,
    pub issues: Vec<Issue>,
}

impl Cell {
    /// The revival policy: config/policies.json, else cell.json's `policies`, else `ask`.
    pub fn auto_revive(&self) -> AutoRevive {
        self.policies.auto_revive.or_else(|| self.doc.as_ref().and_then(|d| d.auto_revive)).unwrap_or(AutoRevive::Ask)
    }

    /// Seconds an active agent may go without a checkpoint.
    pub fn checkpoint_interval(&self) -> u64 {
        self.doc.as_ref().and_then(|d| d.checkpoint_interval).unwrap_or(model::DEFAULT_CHECKPOINT_INTERVAL)
    }

    pub fn mission_name(&self) -> Option<&str> {
        self.doc.as_ref().and_then(|d| d.mission_name.as_deref())
    }

    pub fn agent(&self, id: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.id == id)
    }

    /// Record an issue; one about a file gets the file's path in front of its detail.
    fn issue(&mut self, level: Level, problem: &'static str, file: Option<&str>, detail: String) {
        let (path, detail) = match file {
            Some(f) => {
                let path = self.dir.join(f);
                let detail = format!("{}: {detail}", path.display());
                (path, detail)
            }
            None => (self.dir.clone(), detail),
        };
        self.issues.push(Issue { level, problem, file: file.map(String::from), path, detail, age_s: None });
    }
}

/// What a scan works with.
pub struct ScanCtx<'a> {
    pub now: OffsetDateTime,
    pub stamp: String,
    pub heartbeat: Option<&'a Heartbeat>,
}

/// The cell directories of `dir`, sorted by name: `dir` itself when it is a cell (it has a
/// cell.json), else its sub-directories that do not start with a dot.
pub fn list_cells(dir: &Path) -> Result<Vec<PathBuf>> {
    if dir.join("cell.json").exists() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let rd = fs::read_dir(dir).map_err(|e| Error::path("cannot read missions directory", dir, e))?;
    let mut cells = Vec::new();
    for e in rd {
        let e = e.map_err(|e| Error::path("cannot read missions directory", dir, e))?;
        if e.file_name().as_encoded_bytes().first() == Some(&b'.') {
            continue;
        }
        if is_dir(&e) {
            cells.push(e.path());
        }
    }
    cells.sort();
    Ok(cells)
}

fn is_dir(e: &fs::DirEntry) -> bool {
    match e.file_type() {
        Ok(t) if t.is_dir() => true,
        Ok(t) if t.is_symlink() => fs::metadata(e.path()).is_ok_and(|m| m.is_dir()),
        _ => false,
    }
}

fn name_of(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| p.display().to_string())
}

/// The `*.json` files of a directory (not hidden), sorted; `None` when it does not exist.
fn json_files(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".json") && !name.starts_with('.') {
            names.push(name.to_string());
        }
    }
    names.sort_unstable();
    Ok(names)
}

/// Read a cell's files. `None` when the directory is not a cell at all (no cell.json and none
/// of agents/, tasks/, config/).
pub fn load_cell(dir: &Path) -> Option<Cell> {
    let dir_name = name_of(dir);
    let mut cell = Cell {
        dir: dir.to_path_buf(),
        id: dir_name.clone(),
        dir_name,
        doc: None,
        policies: Policies::default(),
        isolation_file: None,
        permissions: Vec::new(),
        agents: Vec::new(),
        tasks: Vec::new(),
        issues: Vec::new(),
    };
    let mut has_cell_json = false;
    let mut present = [false; SUBDIRS.len()];
    match fs::read_dir(dir) {
        Ok(rd) => {
            for e in rd.flatten() {
                let name = e.file_name();
                if name == "cell.json" {
                    has_cell_json = true;
                } else if let Some(i) = SUBDIRS.iter().position(|s| name == *s) {
                    present[i] = is_dir(&e);
                }
            }
        }
        Err(e) => {
            cell.issue(Level::Error, "unreadable", None, format!("{}: {e}", dir.display()));
            return Some(cell);
        }
    }
    let [agents_dir, tasks_dir, _, _, _, config_dir] = present;
    if !has_cell_json && !agents_dir && !tasks_dir && !config_dir {
        return None;
    }
    if has_cell_json {
        let path = dir.join("cell.json");
        if let Some(bytes) = read_file(&path, "cell.json", &mut cell.issues) {
            cell.doc = model::read_cell(&mut FileCtx::new(&path, "cell.json", &bytes, &mut cell.issues));
        }
        if let Some(id) = cell.doc.as_ref().and_then(|d| d.cell_id.clone()) {
            cell.id = id;
        }
    } else {
        cell.issue(Level::Error, "missing_file", Some("cell.json"), "the cell has no cell.json".into());
    }
    for (i, sub) in SUBDIRS.iter().enumerate() {
        if !present[i] {
            let detail = format!("{}: the {sub}/ directory is missing", dir.display());
            cell.issue(Level::Info, "missing_directory", None, detail);
        }
    }
    if config_dir {
        read_config(&mut cell);
    }
    if agents_dir {
        for (file, path, bytes) in read_dir_files(dir, "agents", &mut cell.issues) {
            if let Some(a) = model::read_agent(&mut FileCtx::new(&path, &file, &bytes, &mut cell.issues)) {
                cell.agents.push(a);
            }
        }
    }
    if tasks_dir {
        for (file, path, bytes) in read_dir_files(dir, "tasks", &mut cell.issues) {
            if let Some(t) = model::read_task(&mut FileCtx::new(&path, &file, &bytes, &mut cell.issues)) {
                cell.tasks.push(t);
            }
        }
    }
    Some(cell)
}

fn unreadable(path: &Path, file: &str, e: &io::Error) -> Issue {
    Issue {
        level: Level::Error,
        problem: "unreadable",
        file: Some(file.to_string()),
        path: path.to_path_buf(),
        detail: format!("{}: {e}", path.display()),
        age_s: None,
    }
}

fn read_file(path: &Path, file: &str, issues: &mut Vec<Issue>) -> Option<Vec<u8>> {
    match fs::read(path) {
        Ok(b) => Some(b),
        Err(e) => {
            issues.push(unreadable(path, file, &e));
            None
        }
    }
}

/// Every `*.json` file of `dir/sub`, read: `(sub/name, path, bytes)`.
fn read_dir_files(dir: &Path, sub: &str, issues: &mut Vec<Issue>) -> Vec<(String, PathBuf, Vec<u8>)> {
    let d = dir.join(sub);
    let names = match json_files(&d) {
        Ok(n) => n,
        Err(e) => {
            issues.push(unreadable(&d, &format!("{sub}/"), &e));
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let file = format!("{sub}/{name}");
        let path = d.join(&name);
        if let Some(bytes) = read_file(&path, &file, issues) {
            out.push((file, path, bytes));
        }
    }
    out
}

fn read_config(cell: &mut Cell) {
    let dir = cell.dir.join("config");
    for name in ["policies.json", "isolation.json", "permissions.json"] {
        let path = dir.join(name);
        let file = format!("config/{name}");
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                cell.issues.push(unreadable(&path, &file, &e));
                continue;
            }
        };
        let mut cx = FileCtx::new(&path, &file, &bytes, &mut cell.issues);
        match name {
            "policies.json" => cell.policies = model::read_policies(&mut cx),
            "isolation.json" => cell.isolation_file = model::read_isolation(&mut cx),
            _ => cell.permissions = model::read_permissions(&mut cx),
        }
    }
}

/// The modification time of a file, if it has one.
fn mtime(path: &Path) -> Option<OffsetDateTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok().map(OffsetDateTime::from)
}

fn age(now: OffsetDateTime, then: OffsetDateTime) -> u64 {
    (now - then).whole_seconds().max(0) as u64
}

/// Check a cell's files against each other and the clock: ids, references, cycles,
/// limits, policies and timeouts.
pub fn check(cell: &mut Cell, now: OffsetDateTime) {
    let mut agent_files: HashMap<String, String> = HashMap::new();
    let mut dup = Vec::new();
    for a in &cell.agents {
        if let Some(first) = agent_files.get(&a.id) {
            dup.push((a.file.clone(), format!("agent_id '{}' is also used by {first}", a.id)));
        } else {
            agent_files.insert(a.id.clone(), a.file.clone());
        }
    }
    let mut task_files: HashMap<String, String> = HashMap::new();
    for t in &cell.tasks {
        if let Some(first) = task_files.get(&t.id) {
            dup.push((t.file.clone(), format!("task_id '{}' is also used by {first}", t.id)));
        } else {
            task_files.insert(t.id.clone(), t.file.clone());
        }
    }
    for (file, why) in dup {
        cell.issue(Level::Error, "duplicate_id", Some(&file), why);
    }

    if let Some(doc) = cell.doc.clone() {
        if let Some(max) = doc.max_agents {
            if cell.agents.len() as u64 > max {
                let detail = format!("{} agents, more than max_agents ({max})", cell.agents.len());
                cell.issue(Level::Warning, "too_many_agents", None, detail);
            }
        }
        if let (Some(CellStatus::Active), Some(timeout), Some(created)) =
            (doc.status.value, doc.timeout, doc.created_at)
        {
            let a = age(now, created);
            if a > timeout {
                let detail = format!(
                    "mission active since {}, past its timeout of {}",
                    clock::fmt_ts(created),
                    clock::human_duration(timeout)
                );
                cell.issue(Level::Warning, "mission_timeout", Some("cell.json"), detail);
                if let Some(i) = cell.issues.last_mut() {
                    i.age_s = Some(a);
                }
            }
        }
        if let (Some(from_cell), Some(from_policies)) = (doc.auto_revive, cell.policies.auto_revive) {
            if from_cell != from_policies {
                let detail = format!(
                    "cell.json says auto_revive '{from_cell}', config/policies.json says '{from_policies}' (policies.json wins)"
                );
                cell.issue(Level::Warning, "policy_conflict", Some("config/policies.json"), detail);
            }
        }
        if let (Some(level), Some(file_level)) = (doc.isolation.value, cell.isolation_file) {
            if level != file_level {
                let detail =
                    format!("cell.json says isolation_level '{level}', config/isolation.json says '{file_level}'");
                cell.issue(Level::Warning, "policy_conflict", Some("config/isolation.json"), detail);
            }
        }
    }
    if cell.auto_revive() == AutoRevive::Yes && cell.policies.revive_command.is_none() {
        let detail = "auto_revive is yes but there is no revive_command".to_string();
        cell.issue(Level::Warning, "missing_field", Some("config/policies.json"), detail);
    }

    // References between files.
    let mut found = Vec::new();
    for t in &cell.tasks {
        if let Some(a) = &t.assigned_to {
            if !agent_files.contains_key(a) {
                found.push((
                    Level::Error,
                    "unknown_agent",
                    t.file.clone(),
                    format!("task {} is assigned to unknown agent '{a}'", t.id),
                ));
            }
        }
        for d in &t.dependencies {
            if !task_files.contains_key(d) {
                found.push((
                    Level::Error,
                    "unknown_dependency",
                    t.file.clone(),
                    format!("task {} depends on unknown task '{d}'", t.id),
                ));
            }
        }
    }
    for a in &cell.agents {
        if let Some(t) = &a.current_task {
            if !task_files.contains_key(t) {
                found.push((
                    Level::Warning,
                    "unknown_task",
                    a.file.clone(),
                    format!("agent {}'s current_task '{t}' is not a task of the cell", a.id),
                ));
            }
        }
    }
    for p in &cell.permissions {
        let file = "config/permissions.json".to_string();
        if !agent_files.contains_key(&p.agent) {
            found.push((
                Level::Warning,
                "unknown_agent",
                file.clone(),
                format!("permissions are given to unknown agent '{}'", p.agent),
            ));
        }
        for t in p.tasks.iter().filter(|t| !task_files.contains_key(*t)) {
            found.push((
                Level::Warning,
                "unknown_task",
                file.clone(),
                format!("agent {}'s permissions name unknown task '{t}'", p.agent),
            ));
        }
        for a in p.agents.iter().filter(|a| !agent_files.contains_key(*a)) {
            found.push((
                Level::Warning,
                "unknown_agent",
                file.clone(),
                format!("agent {}'s handoff permissions name unknown agent '{a}'", p.agent),
            ));
        }
    }
    for a in cell.policies.substitute_agents.iter().filter(|a| !agent_files.contains_key(*a)) {
        found.push((
            Level::Warning,
            "unknown_agent",
            "config/policies.json".into(),
            format!("substitute_agents names unknown agent '{a}'"),
        ));
    }
    for cycle in cycles(&cell.tasks) {
        let file = task_files.get(&cycle[0]).cloned().unwrap_or_default();
        found.push((
            Level::Error,
            "dependency_cycle",
            file,
            format!("dependency cycle: {} (each task waits for the next)", cycle.join(" -> ")),
        ));
    }
    for (level, problem, file, detail) in found {
        cell.issue(level, problem, Some(&file), detail);
    }

    // Tasks past their timeout.
    let mut late = Vec::new();
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
            late.push((t.file.clone(), detail, a));
        }
    }
    for (file, detail, a) in late {
        cell.issue(Level::Warning, "task_timeout", Some(&file), detail);
        if let Some(i) = cell.issues.last_mut() {
            i.age_s = Some(a);
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

/// An agent's health as the scan sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentHealth {
    /// healthy, degraded, unhealthy or unknown.
    pub health: String,
    /// `heartbeat` or `file`.
    pub source: &'static str,
    pub state: Option<AgentState>,
    pub checkpoint_age_s: Option<u64>,
    /// True when the revive command should be run for it: its file says failed, or the
    /// heartbeat endpoint says an idle or active agent is unhealthy.
    pub needs_revival: bool,
}

/// Assess every agent: failed agents, stale checkpoints, and health from the files or from
/// the heartbeat endpoint (queried for the cell's agents concurrently).
pub fn assess(cell: &mut Cell, ctx: &ScanCtx<'_>) -> Vec<AgentHealth> {
    let interval = cell.checkpoint_interval();
    let checkpoint_required = cell.policies.checkpoint_required;
    let answers: Vec<Option<Answer>> = match ctx.heartbeat {
        Some(hb) if !cell.agents.is_empty() => ask_all(hb, &cell.agents),
        _ => vec![None; cell.agents.len()],
    };
    let mut issues = Vec::new();
    let mut out = Vec::with_capacity(cell.agents.len());
    let mut endpoint_failure: Option<String> = None;
    for (a, answer) in cell.agents.iter_mut().zip(answers) {
        let status = a.status.value;
        if status == Some(AgentStatus::Active) && checkpoint_required && a.last_checkpoint.is_none() {
            let state = cell.dir.join("checkpoints").join(&a.id).join("state.json");
            a.last_checkpoint = mtime(&state).map(|t| (t, CheckpointSource::StateMtime));
        }
        let checkpoint_age_s = a.last_checkpoint.map(|(t, _)| age(ctx.now, t));
        let mut stale = false;
        if status == Some(AgentStatus::Active) && checkpoint_required {
            match (a.last_checkpoint, checkpoint_age_s) {
                (Some((t, how)), Some(age_s)) if age_s > interval => {
                    stale = true;
                    let how = match how {
                        CheckpointSource::File => String::new(),
                        CheckpointSource::StateMtime => format!(" (the time of checkpoints/{}/state.json)", a.id),
                    };
                    issues.push(agent_issue(
                        a,
                        Level::Warning,
                        "stale_checkpoint",
                        format!(
                            "agent {} last checkpointed at {}{how}, longer ago than the checkpoint interval of {}",
                            a.id,
                            clock::fmt_ts(t),
                            clock::human_duration(interval)
                        ),
                        Some(age_s),
                    ));
                }
                (None, _) => {
                    stale = true;
                    issues.push(agent_issue(
                        a,
                        Level::Warning,
                        "stale_checkpoint",
                        format!("agent {} is active and has never checkpointed", a.id),
                        None,
                    ));
                }
                _ => {}
            }
        }
        if status == Some(AgentStatus::Failed) {
            issues.push(agent_issue(
                a,
                Level::Error,
                "agent_failed",
                format!("agent {} ({}) is failed", a.id, a.role.text.as_deref().unwrap_or("no role")),
                None,
            ));
        }
        let file_health = match status {
            Some(AgentStatus::Failed) => "unhealthy",
            Some(_) if stale => "degraded",
            Some(_) => "healthy",
            None => "unknown",
        };
        let alive = matches!(status, Some(AgentStatus::Active | AgentStatus::Idle));
        let mut h = AgentHealth {
            health: file_health.to_string(),
            source: "file",
            state: None,
            checkpoint_age_s,
            needs_revival: status == Some(AgentStatus::Failed),
        };
        match answer {
            Some(Answer::State(s)) => {
                if alive && s.status != "healthy" {
                    let (level, why) = if s.status == "unhealthy" {
                        (Level::Error, "unhealthy")
                    } else {
                        (Level::Warning, "degraded")
                    };
                    let mut detail = format!(
                        "the heartbeat endpoint reports agent {} {why} ({} consecutive failures",
                        a.id, s.consecutive_failures
                    );
                    if let Some(e) = &s.error_message {
                        detail.push_str(&format!(": {e}"));
                    }
                    detail.push(')');
                    issues.push(agent_issue(a, level, "agent_unhealthy", detail, None));
                    h.needs_revival |= s.status == "unhealthy";
                }
                h.health = s.status.clone();
                h.source = "heartbeat";
                h.state = Some(s);
            }
            Some(Answer::Unknown) if status == Some(AgentStatus::Active) => {
                let detail =
                    format!("the heartbeat endpoint has never heard from agent {} (as '{}')", a.id, a.heartbeat_id);
                issues.push(agent_issue(a, Level::Info, "no_heartbeat", detail, None));
            }
            Some(Answer::Failed(why)) => {
                endpoint_failure.get_or_insert(why);
            }
            _ => {}
        }
        out.push(h);
    }
    if let Some(why) = endpoint_failure {
        let detail = format!("heartbeat endpoint unreachable ({why}); agent health taken from the agent files");
        cell.issue(Level::Warning, "heartbeat_unreachable", None, detail);
    }
    cell.issues.extend(issues);
    out
}

fn agent_issue(a: &Agent, level: Level, problem: &'static str, detail: String, age_s: Option<u64>) -> Issue {
    let detail = format!("{}: {detail}", a.path.display());
    Issue { level, problem, file: Some(a.file.clone()), path: a.path.clone(), detail, age_s }
}

/// Ask the endpoint about every agent, a few at a time.
fn ask_all(hb: &Heartbeat, agents: &[Agent]) -> Vec<Option<Answer>> {
    let n = agents.len();
    let next = AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Answer>>> = (0..n).map(|_| std::sync::Mutex::new(None)).collect();
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            let answer = hb.agent(&agents[i].heartbeat_id);
            if let Ok(mut slot) = results[i].lock() {
                *slot = Some(answer);
            }
        }
    };
    let threads = n.min(8);
    thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(work);
        }
        work();
    });
    results.into_iter().map(|m| m.into_inner().ok().flatten()).collect()
}

/// Read, check and assess one cell; `None` when the directory is not a cell.
pub fn scan_cell(dir: &Path, ctx: &ScanCtx<'_>) -> Option<(Cell, Vec<AgentHealth>)> {
    let mut cell = load_cell(dir)?;
    check(&mut cell, ctx.now);
    let health = assess(&mut cell, ctx);
    Some((cell, health))
}

// ---------------------------------------------------------------------------------------
// Records.

/// Tasks of a cell by status.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TaskCounts {
    pub pending: usize,
    pub in_progress: usize,
    pub completed: usize,
    pub failed: usize,
}

/// A `cell` record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellRecord {
    pub kind: &'static str,
    pub cell: String,
    pub mission_name: Option<String>,
    pub status: Option<String>,
    pub isolation_level: Option<String>,
    pub auto_revive: &'static str,
    pub path: String,
    pub agents: usize,
    pub tasks: TaskCounts,
    /// Findings at warning or worse.
    pub problems: usize,
    pub timestamp: String,
}

/// An `agent` record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentRecord {
    pub kind: &'static str,
    pub cell: String,
    pub agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub role: Option<String>,
    pub status: Option<String>,
    pub current_task: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    pub checkpoint_age_s: Option<u64>,
    pub health: String,
    pub health_source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<AgentState>,
    pub path: String,
    pub timestamp: String,
}

/// A mission `task` record (board's tasks have `column`; these have `cell`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskRecord {
    pub kind: &'static str,
    pub cell: String,
    pub id: String,
    pub title: Option<String>,
    pub status: Option<String>,
    pub priority: Option<String>,
    pub assigned_to: Option<String>,
    pub dependencies: Vec<String>,
    pub timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    pub path: String,
    pub timestamp: String,
}

/// Any record a scan writes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Rec {
    Cell(CellRecord),
    Agent(AgentRecord),
    Task(TaskRecord),
    Finding(Finding),
}

/// An issue as a `finding` record.
pub fn finding(cell_id: &str, issue: &Issue, stamp: &str) -> Finding {
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
    f
}

fn ts(t: Option<OffsetDateTime>) -> Option<String> {
    t.map(clock::fmt_ts)
}

/// The records of a cell, in order: the cell, its agents, its tasks, its findings.
pub fn records(cell: &Cell, health: &[AgentHealth], stamp: &str) -> Vec<Rec> {
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
        cell: cell.id.clone(),
        mission_name: cell.mission_name().map(String::from),
        status: doc.and_then(|d| d.status.text.clone()),
        isolation_level: doc.and_then(|d| d.isolation.text.clone()),
        auto_revive: cell.auto_revive().as_str(),
        path: cell.dir.display().to_string(),
        agents: cell.agents.len(),
        tasks: counts,
        problems: cell.issues.iter().filter(|i| i.level.is_bad()).count(),
        timestamp: stamp.to_string(),
    }));
    for (a, h) in cell.agents.iter().zip(health) {
        out.push(Rec::Agent(AgentRecord {
            kind: "agent",
            cell: cell.id.clone(),
            agent: a.id.clone(),
            name: a.name.clone(),
            role: a.role.text.clone(),
            status: a.status.text.clone(),
            current_task: a.current_task.clone(),
            gateway: a.gateway.clone(),
            checkpoint_age_s: h.checkpoint_age_s,
            health: h.health.clone(),
            health_source: h.source,
            heartbeat: h.state.clone(),
            path: a.path.display().to_string(),
            timestamp: stamp.to_string(),
        }));
    }
    for t in &cell.tasks {
        out.push(Rec::Task(TaskRecord {
            kind: "task",
            cell: cell.id.clone(),
            id: t.id.clone(),
            title: t.title.clone(),
            status: t.status.text.clone(),
            priority: t.priority.text.clone(),
            assigned_to: t.assigned_to.clone(),
            dependencies: t.dependencies.clone(),
            timeout: t.timeout,
            created_at: ts(t.created_at),
            started_at: ts(t.started_at),
            completed_at: ts(t.completed_at),
            path: t.path.display().to_string(),
            timestamp: stamp.to_string(),
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
pub struct DuplicateIds {
    first: HashMap<String, PathBuf>,
    pub issues: Vec<(String, Issue)>,
}

impl DuplicateIds {
    pub fn see(&mut self, cell: &Cell) {
        if cell.doc.as_ref().and_then(|d| d.cell_id.as_ref()).is_none() {
            return;
        }
        match self.first.get(&cell.id) {
            Some(first) => {
                let detail = format!("cell_id '{}' is also the id of {}", cell.id, first.display());
                let issue = Issue {
                    level: Level::Error,
                    problem: "duplicate_id",
                    file: Some("cell.json".into()),
                    path: cell.dir.join("cell.json"),
                    detail,
                    age_s: None,
                };
                self.issues.push((cell.id.clone(), issue));
            }
            None => {
                self.first.insert(cell.id.clone(), cell.dir.clone());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Parallel, in order.

/// Run `work` over `items` on `jobs` threads and hand each result to `sink` in the order of
/// `items`, as soon as it and all before it are done. When `sink` fails, the workers stop
/// taking new items and the error is returned.
pub fn in_order<T, R>(
    items: &[T],
    jobs: usize,
    work: impl Fn(&T) -> R + Sync,
    mut sink: impl FnMut(R) -> Result<()>,
) -> Result<()>
where
    T: Sync,
    R: Send,
{
    if items.is_empty() {
        return Ok(());
    }
    let jobs = jobs.clamp(1, items.len());
    if jobs == 1 {
        for item in items {
            sink(work(item))?;
        }
        return Ok(());
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::sync_channel::<(usize, R)>(jobs * 32);
    thread::scope(|s| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let (next, stop, work) = (&next, &stop, &work);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items.len() {
                        break;
                    }
                    if tx.send((i, work(&items[i]))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut pending: BTreeMap<usize, R> = BTreeMap::new();
        let mut want = 0;
        for (i, r) in rx {
            pending.insert(i, r);
            while let Some(r) = pending.remove(&want) {
                want += 1;
                if let Err(e) = sink(r) {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(())
    })
}

/// The number of threads to use by default.
pub fn default_jobs() -> usize {
    thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cellscan::model::Picked;

    fn task(id: &str, deps: &[&str]) -> Task {
        Task {
            file: format!("tasks/{id}.json"),
            path: PathBuf::from(format!("c/tasks/{id}.json")),
            id: id.into(),
            title: Some(id.into()),
            description: None,
            status: Picked { text: Some("pending".into()), value: Some(TaskStatus::Pending) },
            priority: Picked::default(),
            assigned_to: None,
            dependencies: deps.iter().map(|s| s.to_string()).collect(),
            timeout: None,
            created_at: None,
            started_at: None,
            completed_at: None,
        }
    }

    #[test]
    fn cycles_are_found_once_and_named_from_the_smallest_id() {
        let tasks = vec![
            task("t3", &["t1"]),
            task("t1", &["t2"]),
            task("t2", &["t3"]),
            task("t4", &["t4"]),
            task("t5", &["t1", "missing"]),
        ];
        let got = cycles(&tasks);
        assert_eq!(got, vec![vec!["t1", "t2", "t3", "t1"], vec!["t4", "t4"]]);
        assert!(cycles(&[task("a", &["b"]), task("b", &[])]).is_empty());
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let n = 200_000;
        let tasks: Vec<Task> = (0..n)
            .map(|i| {
                let next = format!("t{}", (i + 1) % n);
                task(&format!("t{i}"), &[next.as_str()])
            })
            .collect();
        let got = cycles(&tasks);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].len(), n + 1);
    }

    #[test]
    fn in_order_keeps_the_order_whatever_the_timing() {
        let items: Vec<u64> = (0..200).collect();
        let mut got = Vec::new();
        in_order(
            &items,
            4,
            |&i| {
                if i % 7 == 0 {
                    thread::sleep(std::time::Duration::from_millis(2));
                }
                i * 2
            },
            |r| {
                got.push(r);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got, items.iter().map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn in_order_stops_when_the_sink_fails() {
        let items: Vec<u64> = (0..10_000).collect();
        let done = AtomicUsize::new(0);
        let res = in_order(
            &items,
            2,
            |&i| {
                done.fetch_add(1, Ordering::Relaxed);
                i
            },
            |r| if r == 3 { Err(Error::other("reader gone")) } else { Ok(()) },
        );
        assert!(res.is_err());
        assert!(done.load(Ordering::Relaxed) < 10_000);
    }
}
