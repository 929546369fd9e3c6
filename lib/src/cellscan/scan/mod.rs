//! Scanning: find the cells of a missions directory, read each cell's files, check them
//! against each other and the clock, take agent health from the files or a heartbeat
//! endpoint, and turn it all into records.
//!
//! One job a file: [`files`] reads a cell's files (relative to the cell, never through a
//! link), [`refs`] checks them against each other and the clock, [`health`] assesses the
//! agents, [`records`] makes the records. Cells are independent: the caller scans them with
//! [`crate::util::par`], results in the order of the cell directories. A cell that cannot be
//! read is a cell with findings; it never stops the others.

pub(crate) mod files;
pub(crate) mod health;
pub(crate) mod records;
pub(crate) mod refs;

use std::fs;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

pub(crate) use self::files::{ensure_cell_dir, load_cell, read_cell_file, write_cell_file};
pub use self::health::{AgentHealth, assess};
pub use self::records::{AgentRecord, CellRecord, Rec, TaskRecord, records, worst};
pub(crate) use self::records::{DuplicateIds, Seen, finding};
pub use self::refs::{check, cycles};
use super::gateway::Gateways;
use super::heartbeat::Heartbeat;
pub use super::lazarus::Defaults;
use super::model::{self, Agent, AutoRevive, CellDoc, Isolation, Issue, Permission, Policies, Task};
use crate::error::{Error, Result};
use crate::record::Level;

/// The sub-directories of a cell, as the spec lays it out.
pub(crate) const SUBDIRS: [&str; 6] = ["agents", "tasks", "checkpoints", "logs", "artifacts", "config"];

/// One cell as read from its directory.
#[derive(Debug, Clone)]
pub struct Cell {
    /// The cell's directory.
    pub dir: PathBuf,
    /// The directory's name.
    pub(crate) dir_name: String,
    /// `cell_id` from cell.json, or the directory's name when it cannot be read.
    pub id: String,
    /// cell.json, when it could be read.
    pub doc: Option<CellDoc>,
    /// config/policies.json (the spec's defaults where it is missing).
    pub policies: Policies,
    /// The level of config/isolation.json, when it could be read.
    pub isolation_file: Option<Isolation>,
    /// config/permissions.json.
    pub permissions: Vec<Permission>,
    /// The agent files that could be read, in file-name order.
    pub agents: Vec<Agent>,
    /// The task files that could be read, in file-name order.
    pub tasks: Vec<Task>,
    /// Everything wrong with the cell, found so far.
    pub issues: Vec<Issue>,
    /// What the Lazarus config sets for what the cell's own files leave out.
    pub(crate) defaults: Defaults,
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
            defaults: Defaults::default(),
        }
    }

    /// The revival policy: config/policies.json, else cell.json's `policies`, else the
    /// Lazarus config's `auto_revive`, else `ask`.
    pub(crate) fn auto_revive(&self) -> AutoRevive {
        self.policies
            .auto_revive
            .or_else(|| self.doc.as_ref().and_then(|d| d.auto_revive))
            .or(self.defaults.auto_revive)
            .unwrap_or(AutoRevive::Ask)
    }

    /// Seconds an active agent may go without a checkpoint: cell.json's, else the Lazarus
    /// config's `timeout`, else 300.
    pub(crate) fn checkpoint_interval(&self) -> u64 {
        self.doc
            .as_ref()
            .and_then(|d| d.checkpoint_interval)
            .or(self.defaults.checkpoint_interval)
            .unwrap_or(model::DEFAULT_CHECKPOINT_INTERVAL)
    }

    /// Revival attempts: config/policies.json's `max_retries`, else the Lazarus config's,
    /// else 3.
    pub(crate) fn max_retries(&self) -> u32 {
        match (self.policies.max_retries_set, self.defaults.max_retries) {
            (false, Some(n)) => n,
            _ => self.policies.max_retries,
        }
    }

    pub(crate) fn mission_name(&self) -> Option<&str> {
        self.doc.as_ref().and_then(|d| d.mission_name.as_deref())
    }

    pub(crate) fn agent(&self, id: &str) -> Option<&Agent> {
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
        self.issues.push(Issue {
            level,
            problem,
            file: file.map(String::from),
            path,
            detail,
            age_s: None,
            suppressed_by: None,
        });
    }
}

/// What a scan works with.
pub struct ScanCtx<'a> {
    /// The time the scan judges timeouts and silence by.
    pub now: OffsetDateTime,
    /// `now` as the records' `timestamp`.
    pub stamp: String,
    /// tickmon serve's endpoint to take agent health from; from the files when None.
    pub heartbeat: Option<&'a Heartbeat>,
    /// What the Lazarus config sets for what a cell's files leave out.
    pub defaults: Defaults,
    /// The gateways agents name, checked once per run; none: not checked.
    pub gateways: Option<&'a Gateways>,
}

/// The cell directories of `dir`, sorted by name: `dir` itself when it is a cell (it has a
/// cell.json), else its sub-directories that do not start with a dot.
pub(crate) fn list_cells(dir: &Path) -> Result<Vec<PathBuf>> {
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

/// The modification time of a file, if it has one.
fn mtime(path: &Path) -> Option<OffsetDateTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok().map(OffsetDateTime::from)
}

/// Whole seconds from `then` to `now`, 0 when `then` is later.
fn age(now: OffsetDateTime, then: OffsetDateTime) -> u64 {
    (now - then).whole_seconds().max(0) as u64
}

/// Read, check and assess one cell; `None` when the directory is not a cell.
pub(crate) fn scan_cell(dir: &Path, ctx: &ScanCtx<'_>) -> Option<(Cell, Vec<AgentHealth>)> {
    let mut cell = load_cell(dir)?;
    cell.defaults = ctx.defaults;
    check(&mut cell, ctx.now);
    let health = assess(&mut cell, ctx);
    Some((cell, health))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cellscan::model::Picked;
    use crate::cellscan::model::{FileCtx, TaskStatus};
    use crate::cellscan::scan::records::{TaskCounts, Ts};
    use crate::clock;

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
        let ctx = ScanCtx { now, stamp: "s".into(), heartbeat: None, defaults: Defaults::default(), gateways: None };
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
}
