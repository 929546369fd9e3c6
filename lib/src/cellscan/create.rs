//! Creating and changing cells: `init`, `add-agent`, `add-task`, `set-agent`, `set-task`.
//!
//! What the Lazarus Pit's mission-cell spec did with heredocs, validated first: ids are safe file names and
//! unique, an assignee is an agent of the cell, dependencies exist and close no cycle, the
//! cell's `max_agents` holds. A new cell is built in a hidden directory beside its final
//! place and renamed into it, so a scan never sees half a cell; every file is written
//! atomically, and every change to a cell holds the cell's lock (`.cell.lock`) from reading
//! to writing.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::cli::{AddAgentArgs, AddTaskArgs, InitArgs, SetAgentArgs, SetTaskArgs};
use super::model::{self, AutoRevive, Choice, FileCtx, TaskStatus};
use super::scan::{self, Cell, Rec, ScanCtx};
use crate::clock::Clock;
use crate::error::{Error, Result, Status};
use crate::ndjson;
use crate::store::{self, Lock};
use crate::util::is_safe_id;

/// The lock every change of a cell takes.
pub(crate) fn cell_lock(dir: &Path) -> Result<Lock> {
    Lock::open(&dir.join(".cell.lock"))
}

/// The cell named by `arg`: a cell directory, a directory name under the missions directory,
/// or the `cell_id` of a cell there.
pub(crate) fn resolve_cell(arg: &str, missions: &Path) -> Result<PathBuf> {
    let p = Path::new(arg);
    if p.join("cell.json").is_file() {
        return Ok(p.to_path_buf());
    }
    if is_safe_id(arg) {
        let under = missions.join(arg);
        if under.join("cell.json").is_file() {
            return Ok(under);
        }
        if let Ok(dirs) = scan::list_cells(missions) {
            for d in dirs {
                let Ok(bytes) = crate::store::read::read(&d.join("cell.json"), crate::store::kinds::CELL_FILE) else {
                    continue;
                };
                #[derive(serde::Deserialize)]
                struct Id {
                    cell_id: Option<String>,
                }
                if serde_json::from_slice::<Id>(&bytes).ok().and_then(|i| i.cell_id).as_deref() == Some(arg) {
                    return Ok(d);
                }
            }
        }
    }
    Err(Error::usage(format!(
        "CELL: '{arg}' is neither a cell directory nor the id of a cell in {}",
        missions.display()
    )))
}

fn load(dir: &Path) -> Result<Cell> {
    scan::load_cell(dir).ok_or_else(|| Error::usage(format!("{}: not a mission cell", dir.display())))
}

/// Print the scan records (no heartbeat) of a cell that `pick` picks: what was made or
/// changed.
fn print(mut cell: Cell, clock: &Clock, out: &mut dyn Write, pick: impl Fn(&Rec<'_>) -> bool) -> Result<()> {
    let ctx = ScanCtx {
        now: clock.now(),
        stamp: clock.stamp(),
        heartbeat: None,
        defaults: Default::default(),
        gateways: None,
    };
    scan::check(&mut cell, ctx.now);
    let health = scan::assess(&mut cell, &ctx);
    for r in scan::records(&cell, &health, &ctx.stamp).iter().filter(|r| pick(r)) {
        ndjson::write(out, r)?;
    }
    Ok(())
}

/// `cellscan init`.
pub(crate) fn init(
    args: &InitArgs,
    missions: &Path,
    clock: &Clock,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<Status> {
    if args.name.trim().is_empty() {
        return Err(Error::usage("--name: must not be empty"));
    }
    let id = new_cell_id(args)?;
    let target = missions.join(&id);
    if target.exists() {
        return Err(Error::usage(format!("{}: a cell with this id already exists", target.display())));
    }
    let cell = cell_doc(args, &id, &clock.stamp());
    let policies = policies_doc(args)?;
    let cell = place_new_cell(args, missions, &id, &target, (&cell, &policies), dry_run)?;
    print(cell, clock, out, |r| matches!(r, Rec::Cell(_)))?;
    Ok(Status::Ok)
}

/// The id of a new cell: `--id` when it is usable as a directory name, else a fresh UUID.
fn new_cell_id(args: &InitArgs) -> Result<String> {
    match &args.id {
        Some(id) if is_safe_id(id) => Ok(id.clone()),
        Some(id) => Err(Error::usage(format!("--id: '{id}' is not a usable id (letters, digits, '-', '_', '.')"))),
        None => Ok(uuid::Uuid::new_v4().to_string()),
    }
}

/// A new cell's `cell.json`.
fn cell_doc(args: &InitArgs, id: &str, stamp: &str) -> Value {
    let created_by = args
        .created_by
        .clone()
        .or_else(|| crate::config::process_env("USER"))
        .unwrap_or_else(|| "cellscan".to_string());
    let mut cell = Map::new();
    for (k, v) in [
        ("cell_id", json!(id)),
        ("mission_name", json!(args.name)),
        ("created_at", json!(stamp)),
        ("created_by", json!(created_by)),
        ("status", json!("active")),
        ("isolation_level", json!(args.isolation.as_str())),
        ("max_agents", json!(args.max_agents)),
    ] {
        cell.insert(k.into(), v);
    }
    // No timeout unless one is given: the spec's field is optional, and a mission without it
    // is never overdue.
    if let Some(t) = args.timeout {
        cell.insert("timeout".into(), json!(t));
    }
    cell.insert(
        "policies".into(),
        json!({
            "auto_revive": args.auto_revive.as_str(),
            "handoff_allowed": true,
            "checkpoint_interval": args.checkpoint_interval,
        }),
    );
    Value::Object(cell)
}

/// A new cell's `config/policies.json`: the revive policy of the command line and the
/// defaults of the rest.
fn policies_doc(args: &InitArgs) -> Result<Value> {
    let mut policies = Map::new();
    policies.insert("auto_revive".into(), args.auto_revive.as_str().into());
    if let Some(cmd) = &args.revive_command {
        if cmd.trim().is_empty() {
            return Err(Error::usage("--revive-command: must not be empty"));
        }
        policies.insert("revive_command".into(), cmd.clone().into());
    }
    for (k, v) in [
        ("revive_timeout", json!(model::DEFAULT_REVIVE_TIMEOUT)),
        ("revive_cooldown_seconds", json!(model::DEFAULT_REVIVE_COOLDOWN)),
        ("max_retries", json!(model::DEFAULT_MAX_RETRIES)),
        ("substitute_agents", json!([])),
        ("handoff_allowed", json!(true)),
        ("handoff_approval", json!("manual")),
        ("checkpoint_required", json!(true)),
    ] {
        policies.insert(k.into(), v);
    }
    Ok(Value::Object(policies))
}

/// Build the cell in a hidden directory beside `target`, read it back, and rename it into
/// place (a dry run removes it instead): a cell appears whole or not at all.
fn place_new_cell(
    args: &InitArgs,
    missions: &Path,
    id: &str,
    target: &Path,
    (cell, policies): (&Value, &Value),
    dry_run: bool,
) -> Result<Cell> {
    store::ensure_dir(missions)?;
    let tmp = missions.join(format!(".{id}.init-{}", std::process::id()));
    let built = build_cell(&tmp, cell, policies, args);
    let result = built.and_then(|()| {
        let mut cell = load(&tmp)?;
        if dry_run {
            let _ = fs::remove_dir_all(&tmp);
        } else {
            fs::rename(&tmp, target).map_err(|e| Error::path("cannot create", target, e))?;
            store::sync_dir(missions).map_err(|e| Error::path("cannot sync", missions, e))?;
        }
        cell.dir = target.to_path_buf();
        Ok(cell)
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

fn build_cell(dir: &Path, cell: &Value, policies: &Value, args: &InitArgs) -> Result<()> {
    store::ensure_dir(dir)?;
    for sub in scan::SUBDIRS {
        store::ensure_dir(&dir.join(sub))?;
    }
    for sub in ["code", "docs", "reports"] {
        store::ensure_dir(&dir.join("artifacts").join(sub))?;
    }
    store::write_json(&dir.join("config/isolation.json"), &json!({ "level": args.isolation.as_str() }))?;
    store::write_json(&dir.join("config/policies.json"), policies)?;
    store::write_json(&dir.join("config/permissions.json"), &json!({}))?;
    store::write_json(&dir.join("cell.json"), cell)
}

/// Read an object file the tool is going to rewrite, keeping every field and its order.
pub(crate) fn read_object(path: &Path) -> Result<Map<String, Value>> {
    let bytes = crate::store::read::read(path, crate::store::kinds::CELL_FILE)
        .map_err(|e| Error::path("cannot read", path, e))?;
    match model::parse_owned::<Value>(&bytes, path)? {
        Value::Object(m) => Ok(m),
        _ => Err(Error::config(format!("{}: expected a JSON object", path.display()))),
    }
}

fn check_id(what: &str, id: &str) -> Result<()> {
    if is_safe_id(id) {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "{what}: '{id}' is not a usable id (letters, digits, '-', '_', '.', not starting with '.')"
        )))
    }
}

/// `cellscan add-agent`.
pub(crate) fn add_agent(
    args: &AddAgentArgs,
    missions: &Path,
    clock: &Clock,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<Status> {
    check_id("--id", &args.id)?;
    let dir = resolve_cell(&args.cell, missions)?;
    let mut lock = cell_lock(&dir)?;
    let _held = lock.acquire()?;
    let mut cell = load(&dir)?;
    let file = format!("agents/{}.json", args.id);
    let path = dir.join(&file);
    if let Some(a) = cell.agent(&args.id) {
        return Err(Error::usage(format!("--id: agent '{}' already exists ({})", args.id, a.file)));
    }
    if path.exists() {
        return Err(Error::usage(format!("--id: {} already exists", path.display())));
    }
    if let Some(max) = cell.doc.as_ref().and_then(|d| d.max_agents)
        && cell.agents.len() as u64 >= max
    {
        return Err(Error::usage(format!(
            "the cell already has {} agents, its max_agents is {max}",
            cell.agents.len()
        )));
    }
    let doc = json!({
        "agent_id": args.id,
        "name": args.name.clone().unwrap_or_else(|| args.id.clone()),
        "role": args.role.as_str(),
        "capabilities": args.capabilities,
        "gateway": args.gateway,
        "status": args.status.as_str(),
        "current_task": null,
        "checkpoint": null,
    });
    let bytes = pretty(&doc)?;
    let mut issues = Vec::new();
    let agent = model::read_agent(&mut FileCtx::new(&path, &file, &bytes, &mut issues))
        .ok_or_else(|| Error::other("the new agent file does not read back"))?;
    if !dry_run {
        scan::ensure_cell_dir(&dir, &format!("checkpoints/{}", args.id))?;
        scan::write_cell_file(&dir, &file, &bytes)?;
    }
    cell.agents.push(agent);
    print(cell, clock, out, |r| matches!(r, Rec::Agent(a) if a.agent == args.id))?;
    Ok(Status::Ok)
}

pub(crate) fn pretty(v: &Value) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(v).map_err(|e| Error::other(format!("serializing: {e}")))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// A cycle through `id` among `tasks`, if there is one.
fn cycle_through(tasks: &[model::Task], id: &str) -> Option<Vec<String>> {
    scan::cycles(tasks).into_iter().find(|c| c.iter().any(|t| t == id))
}

/// `cellscan add-task`.
pub(crate) fn add_task(
    args: &AddTaskArgs,
    missions: &Path,
    clock: &Clock,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<Status> {
    check_id("--id", &args.id)?;
    if args.title.trim().is_empty() {
        return Err(Error::usage("--title: must not be empty"));
    }
    let dir = resolve_cell(&args.cell, missions)?;
    let mut lock = cell_lock(&dir)?;
    let _held = lock.acquire()?;
    let mut cell = load(&dir)?;
    let file = format!("tasks/{}.json", args.id);
    let path = dir.join(&file);
    if let Some(t) = cell.tasks.iter().find(|t| t.id == args.id) {
        return Err(Error::usage(format!("--id: task '{}' already exists ({})", args.id, t.file)));
    }
    if path.exists() {
        return Err(Error::usage(format!("--id: {} already exists", path.display())));
    }
    if let Some(a) = &args.assign
        && cell.agent(a).is_none()
    {
        return Err(Error::usage(format!("--assign: '{a}' is not an agent of the cell")));
    }
    for d in &args.depends_on {
        if !cell.tasks.iter().any(|t| &t.id == d) {
            return Err(Error::usage(format!("--depends-on: '{d}' is not a task of the cell")));
        }
    }
    let stamp = clock.stamp();
    let mut doc = Map::new();
    doc.insert("task_id".into(), args.id.clone().into());
    doc.insert("title".into(), args.title.clone().into());
    doc.insert("description".into(), args.description.clone().into());
    doc.insert("assigned_to".into(), args.assign.clone().into());
    doc.insert("status".into(), args.status.as_str().into());
    doc.insert("priority".into(), args.priority.as_str().into());
    doc.insert("dependencies".into(), args.depends_on.clone().into());
    doc.insert("timeout".into(), args.timeout.into());
    doc.insert("artifacts".into(), json!([]));
    doc.insert("created_at".into(), stamp.clone().into());
    stamp_status(&mut doc, None, args.status, &stamp);
    let bytes = pretty(&Value::Object(doc))?;
    let mut issues = Vec::new();
    let task = model::read_task(&mut FileCtx::new(&path, &file, &bytes, &mut issues))
        .ok_or_else(|| Error::other("the new task file does not read back"))?;
    cell.tasks.push(task);
    if let Some(c) = cycle_through(&cell.tasks, &args.id) {
        return Err(Error::usage(format!("--depends-on: the task would close a dependency cycle: {}", c.join(" -> "))));
    }
    if !dry_run {
        scan::write_cell_file(&dir, &file, &bytes)?;
    }
    print(cell, clock, out, |r| matches!(r, Rec::Task(t) if t.id == args.id))?;
    Ok(Status::Ok)
}

/// Stamp the times a status change implies: `started_at` on entering in_progress,
/// `completed_at` on completed or failed.
fn stamp_status(doc: &mut Map<String, Value>, before: Option<&str>, now: TaskStatus, stamp: &str) {
    if before == Some(now.as_str()) {
        return;
    }
    match now {
        TaskStatus::InProgress => {
            doc.insert("started_at".into(), stamp.into());
            doc.remove("completed_at");
        }
        TaskStatus::Completed | TaskStatus::Failed => {
            doc.insert("completed_at".into(), stamp.into());
        }
        TaskStatus::Pending => {
            doc.remove("started_at");
            doc.remove("completed_at");
        }
    }
}

/// `cellscan set-agent`.
pub(crate) fn set_agent(
    args: &SetAgentArgs,
    missions: &Path,
    clock: &Clock,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<Status> {
    if args.status.is_none() && args.current_task.is_none() && !args.no_current_task && !args.checkpoint {
        return Err(Error::usage(
            "nothing to change: give --status, --current-task, --no-current-task or --checkpoint",
        ));
    }
    let dir = resolve_cell(&args.cell, missions)?;
    let mut lock = cell_lock(&dir)?;
    let _held = lock.acquire()?;
    let cell = load(&dir)?;
    let agent =
        cell.agent(&args.agent).ok_or_else(|| Error::usage(format!("no agent '{}' in the cell", args.agent)))?;
    if let Some(t) = &args.current_task
        && !cell.tasks.iter().any(|x| &x.id == t)
    {
        return Err(Error::usage(format!("--current-task: '{t}' is not a task of the cell")));
    }
    let path = agent.path.clone();
    let mut doc = read_object(&path)?;
    if let Some(s) = args.status {
        doc.insert("status".into(), s.as_str().into());
    }
    if let Some(t) = &args.current_task {
        doc.insert("current_task".into(), t.clone().into());
    }
    if args.no_current_task {
        doc.insert("current_task".into(), Value::Null);
    }
    if args.checkpoint {
        let cp = doc.entry("checkpoint").or_insert(Value::Null);
        if !cp.is_object() {
            *cp = Value::Object(Map::new());
        }
        if let Value::Object(m) = cp {
            m.insert("last_checkpoint".into(), clock.stamp().into());
        }
    }
    rewrite(&dir, &path, doc, dry_run, clock, out, |r| matches!(r, Rec::Agent(a) if a.agent == args.agent))
}

/// `cellscan set-task`.
pub(crate) fn set_task(
    args: &SetTaskArgs,
    missions: &Path,
    clock: &Clock,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<Status> {
    if args.status.is_none() && args.assign.is_none() {
        return Err(Error::usage("nothing to change: give --status or --assign"));
    }
    let dir = resolve_cell(&args.cell, missions)?;
    let mut lock = cell_lock(&dir)?;
    let _held = lock.acquire()?;
    let cell = load(&dir)?;
    let task = cell
        .tasks
        .iter()
        .find(|t| t.id == args.task)
        .ok_or_else(|| Error::usage(format!("no task '{}' in the cell", args.task)))?;
    if let Some(a) = &args.assign
        && cell.agent(a).is_none()
    {
        return Err(Error::usage(format!("--assign: '{a}' is not an agent of the cell")));
    }
    let path = task.path.clone();
    let mut doc = read_object(&path)?;
    if let Some(s) = args.status {
        let before = doc.get("status").and_then(Value::as_str).map(String::from);
        doc.insert("status".into(), s.as_str().into());
        stamp_status(&mut doc, before.as_deref(), s, &clock.stamp());
    }
    if let Some(a) = &args.assign {
        doc.insert("assigned_to".into(), a.clone().into());
    }
    rewrite(&dir, &path, doc, dry_run, clock, out, |r| matches!(r, Rec::Task(t) if t.id == args.task))
}

/// Write a changed file (unless dry), then print the record that shows it.
fn rewrite(
    dir: &Path,
    path: &Path,
    doc: Map<String, Value>,
    dry_run: bool,
    clock: &Clock,
    out: &mut dyn Write,
    pick: impl Fn(&Rec<'_>) -> bool,
) -> Result<Status> {
    let bytes = pretty(&Value::Object(doc))?;
    if dry_run {
        let mut cell = load(dir)?;
        let mut issues = Vec::new();
        let file = path.strip_prefix(dir).map(|p| p.display().to_string()).unwrap_or_default();
        let mut cx = FileCtx::new(path, &file, &bytes, &mut issues);
        if file.starts_with("agents/") {
            if let (Some(a), Some(slot)) = (model::read_agent(&mut cx), cell.agents.iter_mut().find(|a| a.path == path))
            {
                *slot = a;
            }
        } else if let (Some(t), Some(slot)) =
            (model::read_task(&mut cx), cell.tasks.iter_mut().find(|t| t.path == path))
        {
            *slot = t;
        }
        print(cell, clock, out, pick)?;
    } else {
        let rel = path.strip_prefix(dir).map(|p| p.display().to_string()).unwrap_or_default();
        scan::write_cell_file(dir, &rel, &bytes)?;
        print(load(dir)?, clock, out, pick)?;
    }
    Ok(Status::Ok)
}

/// Warn about a policy that cannot do what it says.
pub(crate) fn init_warnings(args: &InitArgs) -> Option<String> {
    (args.auto_revive == AutoRevive::Yes && args.revive_command.is_none()).then(|| {
        "--auto-revive yes without --revive-command: failed agents will be reported, not revived, until \
         config/policies.json has a revive_command"
            .to_string()
    })
}
