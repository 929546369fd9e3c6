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
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag, fstatat};
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
use crate::store::kinds;
use crate::store::read::{self, Src};

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
    /// A cell of `dir` with nothing read yet: its id is the directory's name until cell.json
    /// says otherwise.
    pub fn new(dir: &Path) -> Cell {
        let dir_name = name_of(dir);
        Cell {
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
        }
    }

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

/// A directory opened once; the files of a cell are opened relative to it, so the kernel looks
/// up one name per file rather than walking the whole path again (most of a scan is opening
/// small files).
/// A sub-directory of a cell is opened without following a link: agents write in the cell,
/// and `agents/` pointing elsewhere is refused, not read.
fn open_dir(at: Option<&Dir>, path: &Path, name: &str) -> io::Result<Dir> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let dir = match at {
        Some(parent) => Dir::openat(parent.as_fd(), name, flags | OFlag::O_NOFOLLOW, Mode::empty()),
        None => Dir::open(path, flags, Mode::empty()),
    };
    dir.map_err(|e| match (e, at) {
        (Errno::ELOOP | Errno::ENOTDIR, Some(parent))
            if fstatat(parent.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
                .is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK) =>
        {
            io::Error::new(io::ErrorKind::InvalidData, "it is a symbolic link, which is not followed here")
        }
        (e, _) => io::Error::from(e),
    })
}

/// The names in a directory that are UTF-8, without `.` and `..`, each with whether it is a
/// directory (`None`: the entry does not say, as for a symbolic link).
fn entries(dir: &mut Dir) -> io::Result<Vec<(String, Option<bool>)>> {
    let mut out = Vec::new();
    for e in dir.iter() {
        let e = e.map_err(io::Error::from)?;
        let Ok(name) = e.file_name().to_str() else { continue };
        if name == "." || name == ".." {
            continue;
        }
        let is_dir = match e.file_type() {
            Some(Type::Directory) => Some(true),
            Some(Type::Symlink) | None => None,
            Some(_) => Some(false),
        };
        out.push((name.to_string(), is_dir));
    }
    Ok(out)
}

/// The `*.json` files of a directory (not hidden), sorted.
fn json_files(dir: &mut Dir) -> io::Result<Vec<String>> {
    let mut names: Vec<String> = entries(dir)?
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name.ends_with(".json") && !name.starts_with('.'))
        .collect();
    names.sort_unstable();
    Ok(names)
}

/// Read a cell's files. `None` when the directory is not a cell at all (no cell.json and none
/// of agents/, tasks/, config/).
pub fn load_cell(dir: &Path) -> Option<Cell> {
    let mut cell = Cell::new(dir);
    let mut has_cell_json = false;
    let mut present = [false; SUBDIRS.len()];
    let listed = open_dir(None, dir, "").and_then(|mut d| entries(&mut d).map(|e| (d, e)));
    let (cell_dir, names) = match listed {
        Ok(x) => x,
        Err(e) => {
            cell.issue(Level::Error, "unreadable", None, format!("{}: {e}", dir.display()));
            return Some(cell);
        }
    };
    for (name, is_dir) in names {
        if name == "cell.json" {
            has_cell_json = true;
        } else if let Some(i) = SUBDIRS.iter().position(|s| name == *s) {
            present[i] = is_dir.unwrap_or_else(|| fs::metadata(dir.join(&name)).is_ok_and(|m| m.is_dir()));
        }
    }
    let [agents_dir, tasks_dir, _, _, _, config_dir] = present;
    if !has_cell_json && !agents_dir && !tasks_dir && !config_dir {
        return None;
    }
    if has_cell_json {
        let path = dir.join("cell.json");
        let at = At { dir: &cell_dir, name: "cell.json" };
        cell.doc = parse_file(&path, Some(at), "cell.json", &mut cell.issues, model::read_cell).flatten();
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
        read_config(&mut cell, &cell_dir);
    }
    if agents_dir {
        cell.agents = parse_dir(dir, &cell_dir, "agents", &mut cell.issues, model::read_agent);
    }
    if tasks_dir {
        cell.tasks = parse_dir(dir, &cell_dir, "tasks", &mut cell.issues, model::read_task);
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

/// Read a cell file through the bounded reader and hand its bytes to `f` (the reader reuses
/// one buffer per scanning thread: no allocation once it has grown).
pub fn with_file<R>(path: &Path, f: impl FnOnce(&[u8]) -> R) -> io::Result<R> {
    read::with_read(Src::Path(path), kinds::CELL_FILE, f)
}

/// Read a file of a cell by its path relative to the cell (`agents/a1.json`): each directory
/// on the way is opened relative to the one before, never through a link.
pub fn read_cell_file(cell_dir: &Path, rel: &str) -> Result<Vec<u8>> {
    let mut parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    let path = cell_dir.join(rel);
    let Some(name) = parts.pop() else {
        return Err(Error::path("cannot read", &path, io::Error::from(io::ErrorKind::InvalidInput)));
    };
    let mut dir = crate::store::Dir::open(cell_dir)?;
    for p in parts {
        dir = dir.sub(p)?;
    }
    dir.read(name, kinds::CELL_FILE)?
        .ok_or_else(|| Error::path("cannot read", &path, io::Error::from(io::ErrorKind::NotFound)))
}

/// Write a file of a cell atomically by its path relative to the cell, each directory on
/// the way opened relative to the one before (created when missing): a link on the way or
/// at the file is refused, never written through.
pub fn write_cell_file(cell_dir: &Path, rel: &str, bytes: &[u8]) -> Result<()> {
    let mut parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    let Some(name) = parts.pop() else {
        return Err(Error::path("cannot write", &cell_dir.join(rel), io::Error::from(io::ErrorKind::InvalidInput)));
    };
    let mut dir = crate::store::Dir::open(cell_dir)?;
    for p in parts {
        dir = dir.sub_create(p)?;
    }
    dir.atomic_write(name, bytes, crate::store::Perm::Shared)
}

/// A cell directory and a sub-directory path in it (`checkpoints/a1`), created as needed
/// relative to the cell, never through a link.
pub fn ensure_cell_dir(cell_dir: &Path, rel: &str) -> Result<()> {
    let mut dir = crate::store::Dir::open(cell_dir)?;
    for p in rel.split('/').filter(|p| !p.is_empty()) {
        dir = dir.sub_create(p)?;
    }
    Ok(())
}

/// A file named relative to an open directory.
#[derive(Clone, Copy)]
struct At<'a> {
    dir: &'a Dir,
    name: &'a str,
}

impl At<'_> {
    fn read<R>(self, f: impl FnOnce(&[u8]) -> R) -> io::Result<R> {
        read::with_read(Src::At(self.dir.as_fd(), self.name), kinds::CELL_FILE, f)
    }
}

/// Read and parse one file with `parse` (opened by `at` when given, else by its path); a
/// file that cannot be read is an issue.
fn parse_file<T>(
    path: &Path,
    at: Option<At<'_>>,
    file: &str,
    issues: &mut Vec<Issue>,
    parse: impl FnOnce(&mut FileCtx<'_>) -> T,
) -> Option<T> {
    let mut found = Vec::new();
    let parse = |bytes: &[u8]| parse(&mut FileCtx::new(path, file, bytes, &mut found));
    let parsed = match at {
        Some(at) => at.read(parse),
        None => with_file(path, parse),
    };
    issues.append(&mut found);
    match parsed {
        Ok(t) => Some(t),
        Err(e) => {
            issues.push(unreadable(path, file, &e));
            None
        }
    }
}

/// Parse every `*.json` file of `dir/sub` with `parse`, in name order.
fn parse_dir<T>(
    dir: &Path,
    cell_dir: &Dir,
    sub: &str,
    issues: &mut Vec<Issue>,
    parse: impl Fn(&mut FileCtx<'_>) -> Option<T>,
) -> Vec<T> {
    let d = dir.join(sub);
    let listed = open_dir(Some(cell_dir), &d, sub).and_then(|mut sd| json_files(&mut sd).map(|n| (sd, n)));
    let (sub_dir, names) = match listed {
        Ok(x) => x,
        Err(e) => {
            issues.push(unreadable(&d, &format!("{sub}/"), &e));
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let file = format!("{sub}/{name}");
        let at = At { dir: &sub_dir, name: &name };
        if let Some(Some(t)) = parse_file(&d.join(&name), Some(at), &file, issues, &parse) {
            out.push(t);
        }
    }
    out
}

fn read_config(cell: &mut Cell, cell_dir: &Dir) {
    let dir = cell.dir.join("config");
    let config_dir = match open_dir(Some(cell_dir), &dir, "config") {
        Ok(d) => d,
        Err(e) => {
            cell.issues.push(unreadable(&dir, "config/", &e));
            return;
        }
    };
    let mut found = Vec::new();
    for name in ["policies.json", "isolation.json", "permissions.json"] {
        let path = dir.join(name);
        let file = format!("config/{name}");
        let parse = |bytes: &[u8]| {
            let mut cx = FileCtx::new(&path, &file, bytes, &mut found);
            match name {
                "policies.json" => cell.policies = model::read_policies(&mut cx),
                "isolation.json" => cell.isolation_file = model::read_isolation(&mut cx),
                _ => cell.permissions = model::read_permissions(&mut cx),
            }
        };
        match (At { dir: &config_dir, name }).read(parse) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => found.push(unreadable(&path, &file, &e)),
        }
    }
    cell.issues.append(&mut found);
}

/// The modification time of a file, if it has one.
fn mtime(path: &Path) -> Option<OffsetDateTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok().map(OffsetDateTime::from)
}

fn age(now: OffsetDateTime, then: OffsetDateTime) -> u64 {
    (now - then).whole_seconds().max(0) as u64
}

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
    let mut agents: HashMap<&str, &str> = HashMap::with_capacity(cell.agents.len());
    for a in &cell.agents {
        if let Some(first) = agents.get(a.id.as_str()) {
            add(
                &mut found,
                Level::Error,
                "duplicate_id",
                &a.file,
                format!("agent_id '{}' is also used by {first}", a.id),
            );
        } else {
            agents.insert(&a.id, &a.file);
        }
    }
    let mut tasks: HashMap<&str, &str> = HashMap::with_capacity(cell.tasks.len());
    for t in &cell.tasks {
        if let Some(first) = tasks.get(t.id.as_str()) {
            add(
                &mut found,
                Level::Error,
                "duplicate_id",
                &t.file,
                format!("task_id '{}' is also used by {first}", t.id),
            );
        } else {
            tasks.insert(&t.id, &t.file);
        }
    }

    if let Some(doc) = &cell.doc {
        if let Some(max) = doc.max_agents {
            if cell.agents.len() as u64 > max {
                let detail = format!("{} agents, more than max_agents ({max})", cell.agents.len());
                found.push((Level::Warning, "too_many_agents", None, detail, None));
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
                found.push((Level::Warning, "mission_timeout", Some("cell.json".into()), detail, Some(a)));
            }
        }
        if let (Some(from_cell), Some(from_policies)) = (doc.auto_revive, cell.policies.auto_revive) {
            if from_cell != from_policies {
                let detail = format!(
                    "cell.json says auto_revive '{from_cell}', config/policies.json says '{from_policies}' (policies.json wins)"
                );
                add(&mut found, Level::Warning, "policy_conflict", "config/policies.json", detail);
            }
        }
        if let (Some(level), Some(file_level)) = (doc.isolation.value, cell.isolation_file) {
            if level != file_level {
                let detail =
                    format!("cell.json says isolation_level '{level}', config/isolation.json says '{file_level}'");
                add(&mut found, Level::Warning, "policy_conflict", "config/isolation.json", detail);
            }
        }
    }
    if cell.auto_revive() == AutoRevive::Yes && cell.policies.revive_command.is_none() {
        let detail = "auto_revive is yes but there is no revive_command".to_string();
        add(&mut found, Level::Warning, "missing_field", "config/policies.json", detail);
    }

    // References between files.
    for t in &cell.tasks {
        if let Some(a) = &t.assigned_to {
            if !agents.contains_key(a.as_str()) {
                add(
                    &mut found,
                    Level::Error,
                    "unknown_agent",
                    &t.file,
                    format!("task {} is assigned to unknown agent '{a}'", t.id),
                );
            }
        }
        for d in &t.dependencies {
            if !tasks.contains_key(d.as_str()) {
                add(
                    &mut found,
                    Level::Error,
                    "unknown_dependency",
                    &t.file,
                    format!("task {} depends on unknown task '{d}'", t.id),
                );
            }
        }
    }
    for a in &cell.agents {
        if let Some(t) = &a.current_task {
            if !tasks.contains_key(t.as_str()) {
                let detail = format!("agent {}'s current_task '{t}' is not a task of the cell", a.id);
                add(&mut found, Level::Warning, "unknown_task", &a.file, detail);
            }
        }
    }
    let perms = "config/permissions.json";
    for p in &cell.permissions {
        if !agents.contains_key(p.agent.as_str()) {
            add(
                &mut found,
                Level::Warning,
                "unknown_agent",
                perms,
                format!("permissions are given to unknown agent '{}'", p.agent),
            );
        }
        for t in p.tasks.iter().filter(|t| !tasks.contains_key(t.as_str())) {
            add(
                &mut found,
                Level::Warning,
                "unknown_task",
                perms,
                format!("agent {}'s permissions name unknown task '{t}'", p.agent),
            );
        }
        for a in p.agents.iter().filter(|a| !agents.contains_key(a.as_str())) {
            let detail = format!("agent {}'s handoff permissions name unknown agent '{a}'", p.agent);
            add(&mut found, Level::Warning, "unknown_agent", perms, detail);
        }
    }
    for a in cell.policies.substitute_agents.iter().filter(|a| !agents.contains_key(a.as_str())) {
        let detail = format!("substitute_agents names unknown agent '{a}'");
        add(&mut found, Level::Warning, "unknown_agent", "config/policies.json", detail);
    }
    if cell.tasks.iter().any(|t| !t.dependencies.is_empty()) {
        for cycle in cycles(&cell.tasks) {
            let file = tasks.get(cycle[0].as_str()).copied().unwrap_or_default();
            let detail = format!("dependency cycle: {} (each task waits for the next)", cycle.join(" -> "));
            add(&mut found, Level::Error, "dependency_cycle", file, detail);
        }
    }

    // Tasks past their timeout.
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
    found
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
    pub health: &'static str,
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
            health: file_health,
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
                h.health = match s.status.as_str() {
                    "healthy" => "healthy",
                    "degraded" => "degraded",
                    _ => "unhealthy",
                };
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

/// A path written as text (lossily, should it not be UTF-8).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathText<'a>(pub &'a Path);

impl Serialize for PathText<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string_lossy())
    }
}

/// A `cell` record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellRecord<'a> {
    pub kind: &'static str,
    pub cell: &'a str,
    pub mission_name: Option<&'a str>,
    pub status: Option<&'a str>,
    pub isolation_level: Option<&'a str>,
    pub auto_revive: &'static str,
    pub path: PathText<'a>,
    pub agents: usize,
    pub tasks: TaskCounts,
    /// Findings at warning or worse.
    pub problems: usize,
    pub timestamp: &'a str,
}

/// An `agent` record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentRecord<'a> {
    pub kind: &'static str,
    pub cell: &'a str,
    pub agent: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub role: Option<&'a str>,
    pub status: Option<&'a str>,
    pub current_task: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<&'a str>,
    pub checkpoint_age_s: Option<u64>,
    pub health: &'a str,
    pub health_source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<&'a AgentState>,
    pub path: PathText<'a>,
    pub timestamp: &'a str,
}

/// A mission `task` record (board's tasks have `column`; these have `cell`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskRecord<'a> {
    pub kind: &'static str,
    pub cell: &'a str,
    pub id: &'a str,
    pub title: Option<&'a str>,
    pub status: Option<&'a str>,
    pub priority: Option<&'a str>,
    pub assigned_to: Option<&'a str>,
    pub dependencies: &'a [String],
    pub timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Ts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Ts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Ts>,
    pub path: PathText<'a>,
    pub timestamp: &'a str,
}

/// Any record a scan writes; they borrow from the scanned cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Rec<'a> {
    Cell(CellRecord<'a>),
    Agent(AgentRecord<'a>),
    Task(TaskRecord<'a>),
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

/// A time written like every pitcrew timestamp (`2026-11-23T10:30:00.000Z`), without
/// allocating.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ts(pub OffsetDateTime);

impl Serialize for Ts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let t = self.0.to_offset(time::UtcOffset::UTC);
        let Ok(year) = u32::try_from(t.year()) else { return s.serialize_str(&clock::fmt_ts(t)) };
        if year > 9999 {
            return s.serialize_str(&clock::fmt_ts(t));
        }
        // YYYY-MM-DDTHH:MM:SS.mmmZ
        let mut b = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut n: u32| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, u32::from(u8::from(t.month())));
        put(8, 2, u32::from(t.day()));
        put(11, 2, u32::from(t.hour()));
        put(14, 2, u32::from(t.minute()));
        put(17, 2, u32::from(t.second()));
        put(20, 3, u32::from(t.millisecond()));
        s.serialize_str(std::str::from_utf8(&b).unwrap_or_default())
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
pub struct DuplicateIds {
    first: HashMap<String, PathBuf>,
    pub issues: Vec<(String, Issue)>,
}

impl DuplicateIds {
    pub fn see(&mut self, cell: &Cell) {
        self.see_seen(&Seen::of(cell));
    }

    /// [`DuplicateIds::see`] from what a worker kept of the cell.
    pub fn see_seen(&mut self, seen: &Seen) {
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
pub struct Seen {
    pub id: String,
    pub dir: PathBuf,
    /// cell.json names the cell's id.
    pub has_cell_id: bool,
    pub worst: Option<Level>,
}

impl Seen {
    pub fn of(cell: &Cell) -> Seen {
        Seen {
            id: cell.id.clone(),
            dir: cell.dir.clone(),
            has_cell_id: cell.doc.as_ref().and_then(|d| d.cell_id.as_ref()).is_some(),
            worst: worst(cell),
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

    /// A cell built from file texts, without touching the disk.
    fn cell_of(agents: &[&str], tasks: &[&str]) -> Cell {
        let mut cell = Cell::new(Path::new("m/c"));
        for (i, text) in agents.iter().enumerate() {
            let file = format!("agents/a{i}.json");
            let path = cell.dir.join(&file);
            let a = model::read_agent(&mut FileCtx::new(&path, &file, text.as_bytes(), &mut cell.issues));
            cell.agents.push(a.unwrap());
        }
        for (i, text) in tasks.iter().enumerate() {
            let file = format!("tasks/t{i}.json");
            let path = cell.dir.join(&file);
            let t = model::read_task(&mut FileCtx::new(&path, &file, text.as_bytes(), &mut cell.issues));
            cell.tasks.push(t.unwrap());
        }
        cell
    }

    #[test]
    fn checks_and_health_of_a_cell_in_memory() {
        let now = clock::parse_ts("2026-11-23T10:30:00Z").unwrap();
        let mut cell = cell_of(
            &[
                r#"{"agent_id":"a1","role":"lead","status":"active","checkpoint":{"last_checkpoint":"2026-11-23T10:00:00Z"}}"#,
                r#"{"agent_id":"a2","role":"write","status":"failed","current_task":"t9"}"#,
                r#"{"agent_id":"a3","role":"read","status":"idle","checkpoint":null}"#,
            ],
            &[
                r#"{"task_id":"t1","title":"T","status":"in_progress","priority":"high","assigned_to":"a4","timeout":60,
                   "started_at":"2026-11-23T10:00:00Z","dependencies":["t2"]}"#,
                r#"{"task_id":"t2","title":"U","status":"pending","priority":"low","dependencies":["t1"]}"#,
            ],
        );
        check(&mut cell, now);
        let ctx = ScanCtx { now, stamp: "s".into(), heartbeat: None };
        let health = assess(&mut cell, &ctx);
        let got: Vec<(&str, Option<&str>, Option<u64>)> =
            cell.issues.iter().map(|i| (i.problem, i.file.as_deref(), i.age_s)).collect();
        assert_eq!(
            got,
            vec![
                ("unknown_agent", Some("tasks/t0.json"), None),
                ("unknown_task", Some("agents/a1.json"), None),
                ("dependency_cycle", Some("tasks/t0.json"), None),
                ("task_timeout", Some("tasks/t0.json"), Some(1800)),
                ("stale_checkpoint", Some("agents/a0.json"), Some(1800)),
                ("agent_failed", Some("agents/a1.json"), None),
            ]
        );
        assert!(cell.issues[2].detail.ends_with("dependency cycle: t1 -> t2 -> t1 (each task waits for the next)"));
        let h: Vec<(&str, bool, Option<u64>)> =
            health.iter().map(|h| (h.health, h.needs_revival, h.checkpoint_age_s)).collect();
        assert_eq!(h, vec![("degraded", false, Some(1800)), ("unhealthy", true, None), ("healthy", false, None)]);
        let recs = records(&cell, &health, "s");
        let Rec::Cell(c) = &recs[0] else { panic!("the cell comes first") };
        assert_eq!((c.agents, c.problems, c.auto_revive), (3, 6, "ask"));
        assert_eq!(c.tasks, TaskCounts { pending: 1, in_progress: 1, completed: 0, failed: 0 });
        assert_eq!(recs.len(), 1 + 3 + 2 + 6);
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
    #[ignore = "slow: a load run (a very long dependency chain); scripts/test.sh runs it"]
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
    fn timestamps_are_written_like_every_pitcrew_timestamp() {
        for s in ["2026-11-23T10:30:00.123Z", "0999-01-02T03:04:05.006Z", "2026-11-23T23:59:59.999Z"] {
            let t = clock::parse_ts(s).unwrap();
            assert_eq!(serde_json::to_value(Ts(t)).unwrap(), s);
            assert_eq!(clock::fmt_ts(t), s);
        }
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
