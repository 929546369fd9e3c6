//! cellscan: mission cells — validate them, watch their agents and tasks, revive failed
//! agents by policy, and create and change cells with validated files.
//!
//! The pieces: [`model`] reads and validates each file of a cell, [`scan`] reads whole cells
//! (in parallel, results in directory order), checks them and makes records, [`heartbeat`]
//! asks tickmon serve for agent health, [`revive`] acts on failed agents with the restart
//! engine, [`create`] writes cells, [`watch`] repeats a scan writing only changes, and
//! [`revive_watch`] repeats revive passes (`revive --watch`).

#![warn(missing_docs)]

pub(crate) mod checkpoint;
pub(crate) mod cli;
pub(crate) mod create;
pub(crate) mod gateway;
pub(crate) mod handoff;
pub(crate) mod heartbeat;
pub(crate) mod lazarus;
pub mod model;
pub(crate) mod revive;
pub(crate) mod revive_watch;
pub mod scan;
pub(crate) mod status;
pub(crate) mod watch;

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use clap::CommandFactory;
use serde_json::Value;

use self::cli::{Cli, Command, Format, HeartbeatArgs, ReviveArgs, ScanArgs};
use self::heartbeat::Heartbeat;
use self::revive::ReviveCtx;
use self::scan::{DuplicateIds, Rec, ScanCtx};
use crate::clock::Clock;
use crate::config::{Env, Paths, Secret};
use crate::entry::{Ctx, Diag, Tool};
use crate::error::{Error, Result, Status};
use crate::ndjson::{self, Source};
use crate::record::{self, Kind, Level};
use crate::util::is_safe_id;

/// The `cellscan` tool, as its binary hands it to [`crate::entry::run`].
pub const TOOL: Tool = Tool { name: "cellscan", main, command };

/// cellscan's clap definition (for completions and man pages).
pub(crate) fn command() -> clap::Command {
    Cli::command()
}

/// The `cellscan` tool.
pub(crate) fn main(ctx: &mut Ctx, args: Vec<OsString>) -> Result<Status> {
    let (cli, set) = crate::cli::setup::<Cli>(&mut ctx.out, args)?;
    let (env, paths, clock) = (set.env, set.paths, set.clock);
    if let Command::Init(a) = &cli.command
        && a.example_config
    {
        return example_config(ctx, cli.lazarus_config.as_deref(), env, cli.dry_run);
    }
    let lz = lazarus::load(cli.lazarus_config.as_deref(), env)?.unwrap_or_default();
    if let Some(note) = lz.ignored_note() {
        ctx.diag.warn(note);
    }
    // The gateways, for the commands that check agents (the others never read services.json).
    let checks_agents =
        matches!(cli.command, Command::Scan(_) | Command::Status(_) | Command::Revive(_) | Command::Approve(_));
    let gws = if checks_agents { gateways_of(&paths, &lz, clock)? } else { gateway::Gateways::none(clock) };
    if let Some(note) = gws.unaddressed_note() {
        ctx.diag.warn(note);
    }
    let gws = &gws;
    let from_lazarus = lz.missions.as_deref();
    let missions =
        |dir: &Option<PathBuf>| missions_dir(dir.as_deref(), cli.missions.as_deref(), &paths, env, from_lazarus);
    match &cli.command {
        Command::Scan(a) => {
            ctx.out.escape_controls(a.format == Format::Text && a.watch.is_none());
            scan_cmd(ctx, a, &missions(&a.dir), &clock, env, &lz, gws)
        }
        Command::Status(a) => {
            let hb = heartbeat_of(&a.heartbeat, env)?;
            let sctx = ScanCtx {
                now: clock.now(),
                stamp: clock.stamp(),
                heartbeat: hb.as_ref(),
                defaults: lz.defaults,
                gateways: Some(gws),
            };
            let st = status::status(&missions(&a.dir), &sctx, &lz)?;
            status::write(&mut ctx.out, &st, a.format == Format::Text)?;
            Ok(Status::Ok)
        }
        Command::Revive(a) => match a.watch {
            Some(interval) => {
                let interval = if interval.is_zero() {
                    lz.poll_interval.unwrap_or(std::time::Duration::from_secs(30))
                } else {
                    interval
                };
                revive_watch_cmd(ctx, &cli, a, interval, &missions(&a.dir), &clock, env, lz.defaults, gws)
            }
            None => revive_cmd(ctx, &cli, a, &missions(&a.dir), &clock, env, lz.defaults, gws),
        },
        Command::MissionsDir => {
            writeln!(ctx.out, "{}", missions(&None).display())?;
            Ok(Status::Ok)
        }
        Command::Approve(a) => {
            let hb = heartbeat_of(&a.heartbeat, env)?;
            handoff::approve(ctx, a, &missions(&None), &clock, cli.dry_run, hb.as_ref(), lz.defaults, gws)
        }
        Command::Init(a) => {
            if let Some(w) = create::init_warnings(a) {
                ctx.diag.warn(w);
            }
            create::init(a, &missions(&a.dir), &clock, cli.dry_run, &mut ctx.out)
        }
        Command::AddAgent(a) => create::add_agent(a, &missions(&None), &clock, cli.dry_run, &mut ctx.out),
        Command::AddTask(a) => create::add_task(a, &missions(&None), &clock, cli.dry_run, &mut ctx.out),
        Command::SetAgent(a) => create::set_agent(a, &missions(&None), &clock, cli.dry_run, &mut ctx.out),
        Command::SetTask(a) => create::set_task(a, &missions(&None), &clock, cli.dry_run, &mut ctx.out),
    }
}

/// The gateways of services.json's `gateways` and of the Lazarus config's.
fn gateways_of(paths: &Paths, lz: &lazarus::Lazarus, clock: Clock) -> Result<gateway::Gateways> {
    let doc: Option<Value> = match crate::store::read::read(&paths.config, crate::store::kinds::CONFIG) {
        Ok(bytes) => Some(crate::ndjson::parse_json_doc(&bytes, &paths.config)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !paths.config_explicit => None,
        Err(e) => return Err(Error::path("cannot read config", &paths.config, e)),
    };
    let from_config = doc.as_ref().and_then(|d| d.get("gateways")).map(|g| (paths.config.as_path(), g));
    let from_lazarus = lz.gateways.as_ref().map(|g| (lz.path.as_path(), g));
    gateway::Gateways::new(from_config, from_lazarus, clock)
}

/// The missions directory: the command's DIR, else `--missions`, else AGENT_OPS_MISSIONS,
/// else the Lazarus config's `missions_path`, else HOME/missions.
pub(crate) fn missions_dir(
    dir: Option<&Path>,
    flag: Option<&Path>,
    paths: &Paths,
    env: Env<'_>,
    lazarus: Option<&Path>,
) -> PathBuf {
    dir.or(flag)
        .map(Path::to_path_buf)
        .or_else(|| env("AGENT_OPS_MISSIONS").map(PathBuf::from))
        .or_else(|| lazarus.map(Path::to_path_buf))
        .unwrap_or_else(|| paths.home.join("missions"))
}

/// `cellscan init --example-config`: write the Lazarus Pit daemon's example config.json, as
/// the daemon's `--create-config` did, and say on stderr what each key does here.
fn example_config(ctx: &mut Ctx, flag: Option<&Path>, env: Env<'_>, dry_run: bool) -> Result<Status> {
    let Some((path, _)) = lazarus::locate(flag, env) else {
        return Err(Error::usage("--example-config: HOME is not set; name the file with --lazarus-config PATH"));
    };
    if path.exists() {
        return Err(Error::usage(format!("--example-config: {} exists; not overwriting it", path.display())));
    }
    if !dry_run {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::path("cannot create", dir, e))?;
        }
        // Written whole beside it, then linked into place: a file that appears meanwhile is
        // never overwritten (the link fails), and the file is never seen half written.
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let staged = path.with_file_name(format!(".{name}.example-{}", std::process::id()));
        crate::store::atomic_write(&staged, lazarus::EXAMPLE.as_bytes())?;
        let linked = std::fs::hard_link(&staged, &path);
        let _ = std::fs::remove_file(&staged);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::usage(format!("--example-config: {} exists; not overwriting it", path.display())));
            }
            Err(e) => return Err(Error::path("cannot write", &path, e)),
        }
    }
    ctx.diag.warn(format_args!(
        "{} the Lazarus Pit daemon's example config {} (JSON has no comments; what each key does here:)",
        if dry_run { "would write" } else { "wrote" },
        path.display(),
    ));
    for line in lazarus::EXAMPLE_NOTES.lines() {
        ctx.diag.warn(line);
    }
    Ok(Status::Ok)
}

/// The heartbeat endpoint of the command line, if any.
fn heartbeat_of(a: &HeartbeatArgs, env: Env<'_>) -> Result<Option<Heartbeat>> {
    let Some(url) = &a.heartbeat_url else { return Ok(None) };
    let token = match &a.heartbeat_token_file {
        Some(p) => {
            let t = crate::store::read::read_text(p, crate::store::kinds::TOKEN)
                .map_err(|e| Error::path("cannot read token file", p, e))?;
            let t = t.trim();
            if t.is_empty() {
                return Err(Error::usage(format!("--heartbeat-token-file: {} is empty", p.display())));
            }
            Some(Secret::new(t))
        }
        None => env("AGENT_OPS_HEARTBEAT_TOKEN").map(Secret::new),
    };
    Heartbeat::new(url, token, a.heartbeat_timeout).map(Some)
}

fn jobs_of(jobs: Option<u32>) -> usize {
    jobs.map(|j| j as usize).unwrap_or_else(crate::util::par::default_threads)
}

/// `cellscan scan`.
fn scan_cmd(
    ctx: &mut Ctx,
    args: &ScanArgs,
    dir: &Path,
    clock: &Clock,
    env: Env<'_>,
    lz: &lazarus::Lazarus,
    gws: &gateway::Gateways,
) -> Result<Status> {
    let jobs = jobs_of(args.jobs);
    let defaults = lz.defaults;
    if let Some(interval) = args.watch {
        let interval =
            if interval.is_zero() { lz.poll_interval.unwrap_or(std::time::Duration::from_secs(30)) } else { interval };
        return watch_cmd(ctx, args, interval, dir, clock, env, defaults, gws);
    }

    let hb = heartbeat_of(&args.heartbeat, env)?;
    let cells = scan::list_cells(dir)?;
    let sctx =
        ScanCtx { now: clock.now(), stamp: clock.stamp(), heartbeat: hb.as_ref(), defaults, gateways: Some(gws) };
    let format = args.format;
    let Ctx { out, diag, .. } = ctx;
    let mut worst: Option<Level> = None;
    let mut dups = DuplicateIds::default();
    let (mut scanned, mut troubled, mut seen) = (0usize, 0usize, 0usize);
    let total = cells.len();
    let work = |d: &PathBuf| {
        scan::scan_cell(d, &sctx).map(|(c, h)| {
            let recs = scan::records(&c, &h, &sctx.stamp);
            let bytes = match format {
                Format::Ndjson => render_ndjson(&recs),
                Format::Text => Ok(render_text(&recs)),
            };
            (scan::Seen::of(&c), bytes)
        })
    };
    crate::util::par::for_each_ordered(&cells, jobs, work, |r| {
        seen += 1;
        if seen % 500 == 0 {
            diag.progress(format_args!("scanned {seen}/{total} directories"));
        }
        let Some((seen, bytes)) = r else { return Ok(()) };
        scanned += 1;
        dups.see_seen(&seen);
        let w = seen.worst;
        if w.is_some_and(Level::is_bad) {
            troubled += 1;
        }
        worst = worst.max(w);
        out.write_all(&bytes?)?;
        Ok(())
    })?;
    diag.clear_progress();
    for (id, issue) in &dups.issues {
        worst = worst.max(Some(issue.level));
        let f = scan::finding(id, issue, &sctx.stamp);
        match format {
            Format::Ndjson => ndjson::write(out, &f)?,
            Format::Text => writeln!(out, "[{}] {}: {}", tag(Some(f.level)), f.problem, f.detail)?,
        }
    }
    for c in gws.checks() {
        if gateway::is_down(&c) {
            worst = worst.max(Some(Level::Error));
        }
        match format {
            Format::Ndjson => ndjson::write(out, &c)?,
            Format::Text => writeln!(out, "{}", c.text_line())?,
        }
    }
    if format == Format::Text {
        if troubled == 0 {
            writeln!(out, "\n{scanned} cell(s), no problems.")?;
        } else {
            writeln!(out, "\n{scanned} cell(s), {troubled} with problems.")?;
        }
    }
    Ok(Status::failures_if(worst.is_some_and(Level::is_bad)))
}

/// `scan --watch`: scan every interval until a signal, writing what changed.
#[allow(clippy::too_many_arguments)]
fn watch_cmd(
    ctx: &mut Ctx,
    args: &ScanArgs,
    interval: std::time::Duration,
    dir: &Path,
    clock: &Clock,
    env: Env<'_>,
    defaults: lazarus::Defaults,
    gws: &gateway::Gateways,
) -> Result<Status> {
    let jobs = jobs_of(args.jobs);
    // Before any other thread exists, so that every thread has the signals blocked.
    let (stop, _keep) = crate::util::stop::events()?;
    let hb = heartbeat_of(&args.heartbeat, env)?;
    let Ctx { out, diag, .. } = ctx;
    out.set_line_buffered(true);
    let diag: &Diag = diag;
    let scan_once = || -> Result<(Vec<Value>, String)> {
        if let Some(h) = &hb {
            h.reset();
        }
        gws.reset();
        let cells = scan::list_cells(dir)?;
        let sctx =
            ScanCtx { now: clock.now(), stamp: clock.stamp(), heartbeat: hb.as_ref(), defaults, gateways: Some(gws) };
        let mut all = Vec::new();
        let mut dups = DuplicateIds::default();
        let work = |d: &PathBuf| {
            scan::scan_cell(d, &sctx).map(|(c, h)| {
                let values: Result<Vec<Value>> = scan::records(&c, &h, &sctx.stamp).iter().map(to_value).collect();
                (c, values)
            })
        };
        crate::util::par::for_each_ordered(&cells, jobs, work, |r| {
            if let Some((c, values)) = r {
                dups.see(&c);
                all.extend(values?);
            }
            Ok(())
        })?;
        for (id, issue) in &dups.issues {
            all.push(to_value(&scan::finding(id, issue, &sctx.stamp))?);
        }
        for c in gws.checks() {
            all.push(to_value(&c)?);
        }
        Ok((all, sctx.stamp))
    };
    watch::run(out, interval, &stop, scan_once, &|e| diag.error(e))?;
    Ok(Status::Ok)
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::other(format!("serializing a record: {e}")))
}

fn render_ndjson(recs: &[Rec]) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(recs.len() * 320);
    for r in recs {
        ndjson::write(&mut buf, r)?;
    }
    Ok(buf)
}

fn tag(level: Option<Level>) -> &'static str {
    match level {
        Some(Level::Error | Level::Critical) => "FAIL",
        Some(Level::Warning) => "WARN",
        _ => "OK",
    }
}

/// One line a cell, its unhealthy agents and its findings indented under it.
fn render_text(recs: &[Rec]) -> Vec<u8> {
    let mut s = String::new();
    let Some(Rec::Cell(c)) = recs.first() else { return Vec::new() };
    let worst = recs.iter().filter_map(|r| if let Rec::Finding(f) = r { Some(f.level) } else { None }).max();
    let t = &c.tasks;
    s.push_str(&format!(
        "[{}] {} ({}) {}: {} agent(s), {} task(s): {} pending, {} in progress, {} completed, {} failed",
        tag(worst),
        c.mission_name.unwrap_or("?"),
        c.cell,
        c.status.unwrap_or("?"),
        c.agents,
        t.pending + t.in_progress + t.completed + t.failed,
        t.pending,
        t.in_progress,
        t.completed,
        t.failed,
    ));
    if c.problems > 0 {
        s.push_str(&format!("; {} problem(s)", c.problems));
    }
    s.push('\n');
    for r in recs {
        match r {
            Rec::Agent(a) if a.health != "healthy" => s.push_str(&format!(
                "    agent {}: {}, {} ({})\n",
                a.agent,
                a.status.unwrap_or("?"),
                a.health,
                a.health_source
            )),
            Rec::Finding(f) => {
                s.push_str(&format!("    [{}] {}: {}\n", f.level.as_str().to_uppercase(), f.problem, f.detail))
            }
            _ => {}
        }
    }
    s.into_bytes()
}

/// `cellscan revive`.
#[allow(clippy::too_many_arguments)]
fn revive_cmd(
    ctx: &mut Ctx,
    cli: &Cli,
    args: &ReviveArgs,
    dir: &Path,
    clock: &Clock,
    env: Env<'_>,
    defaults: lazarus::Defaults,
    gws: &gateway::Gateways,
) -> Result<Status> {
    let mut approved = HashSet::new();
    for a in &args.approve {
        match a.split_once('/') {
            Some((c, g)) if is_safe_id(c) && is_safe_id(g) => {
                approved.insert(a.clone());
            }
            _ => return Err(Error::usage(format!("--approve: '{a}' is not CELL/AGENT"))),
        }
    }
    let hb = heartbeat_of(&args.heartbeat, env)?;
    let used = Mutex::new(HashSet::new());
    let jobs = jobs_of(args.jobs);
    let Ctx { out, diag, .. } = ctx;
    let diag: &Diag = diag;
    let rctx = ReviveCtx {
        clock,
        dry_run: cli.dry_run,
        approved: &approved,
        used: &used,
        heartbeat: hb.as_ref(),
        gateways: Some(gws),
        diag,
    };
    let mut unresolved = 0usize;
    if args.from.is_empty() {
        let cells = scan::list_cells(dir)?;
        let sctx =
            ScanCtx { now: clock.now(), stamp: clock.stamp(), heartbeat: hb.as_ref(), defaults, gateways: Some(gws) };
        let work = |d: &PathBuf| {
            let (cell, health) = scan::scan_cell(d, &sctx)?;
            let targets: Vec<usize> =
                health.iter().enumerate().filter(|(_, h)| h.needs_revival).map(|(i, _)| i).collect();
            Some(revive::revive_cell(&cell, &targets, &health, &rctx))
        };
        crate::util::par::for_each_ordered(&cells, jobs, work, |r| {
            if let Some(r) = r {
                for rec in &r.records {
                    ndjson::write(out, rec)?;
                }
                unresolved += r.unresolved;
            }
            Ok(())
        })?;
    } else {
        let sources = Source::from_args(&args.from);
        ndjson::for_each_value(&sources, cli.common.read_opts(), diag, |v, _pos| {
            ndjson::pass(out, &v)?;
            if record::kind_of(&v) == Kind::Agent {
                let r = revive_from_record(&v, dir, clock, &rctx, defaults);
                for rec in &r.records {
                    ndjson::write(out, rec)?;
                }
                unresolved += r.unresolved;
            }
            Ok(())
        })?;
    }
    let used = used.into_inner().unwrap_or_default();
    let mut unused: Vec<&String> = approved.iter().filter(|a| !used.contains(*a)).collect();
    unused.sort();
    for a in unused {
        diag.warn(format_args!("--approve {a}: no agent there needs reviving"));
    }
    Ok(Status::failures_if(unresolved > 0))
}

/// `revive --watch`: a revive pass every interval until a signal or the reader goes away.
#[allow(clippy::too_many_arguments)]
fn revive_watch_cmd(
    ctx: &mut Ctx,
    cli: &Cli,
    args: &ReviveArgs,
    interval: std::time::Duration,
    dir: &Path,
    clock: &Clock,
    env: Env<'_>,
    defaults: lazarus::Defaults,
    gws: &gateway::Gateways,
) -> Result<Status> {
    // Before any other thread exists, so that every thread has the signals blocked.
    let (stop, _keep) = crate::util::stop::events()?;
    let hb = heartbeat_of(&args.heartbeat, env)?;
    let Ctx { out, diag, .. } = ctx;
    out.set_line_buffered(true);
    let diag: &Diag = diag;
    let lp = revive_watch::Loop {
        dir,
        clock,
        dry_run: cli.dry_run,
        heartbeat: hb.as_ref(),
        gateways: gws,
        defaults,
        jobs: args.jobs,
        diag,
    };
    revive_watch::run(out, interval, &stop, &lp, &|e| diag.error(e))?;
    Ok(Status::Ok)
}

/// Revive the agent an `agent` record of a scan names. The record only nominates: the cell
/// must lie under the missions directory (its path resolved, links included), and whether
/// the agent needs reviving is decided afresh from the cell's own files and, when a
/// heartbeat endpoint is configured, from the endpoint asked now; the record's `status`,
/// `health` and `heartbeat` fields decide nothing. The command still comes only from the
/// cell's own config/policies.json.
fn revive_from_record(
    v: &Value,
    missions: &Path,
    clock: &Clock,
    rctx: &ReviveCtx<'_>,
    defaults: lazarus::Defaults,
) -> revive::Revived {
    let mut done = revive::Revived::default();
    let status = record::str_field(v, "status");
    let health = record::str_field(v, "health");
    if status != "failed" && health != "unhealthy" {
        return done;
    }
    let cell_id = record::str_field(v, "cell");
    let agent_id = record::str_field(v, "agent");
    let stamp = clock.stamp();
    let refuse = |problem: &'static str, detail: String| {
        let issue = model::Issue {
            level: Level::Warning,
            problem,
            file: None,
            path: missions.to_path_buf(),
            detail,
            age_s: None,
            suppressed_by: None,
        };
        let mut f = scan::finding(cell_id, &issue, &stamp);
        f.subject = format!("{cell_id}/{agent_id}");
        revive::Out::Finding(f)
    };
    let found = match locate(v, cell_id, missions) {
        Ok(c) => c.and_then(|c| c.agents.iter().position(|a| a.id == agent_id).map(|i| (c, i))),
        Err(why) => {
            done.records.push(refuse("outside_missions", why));
            done.unresolved += 1;
            return done;
        }
    };
    let Some((mut cell, i)) = found else {
        done.records.push(refuse(
            "unknown_agent",
            format!(
                "an agent record names agent '{agent_id}' of cell '{cell_id}', which is not in {} or at its path",
                missions.display()
            ),
        ));
        done.unresolved += 1;
        return done;
    };
    let sctx = ScanCtx {
        now: clock.now(),
        stamp: clock.stamp(),
        heartbeat: rctx.heartbeat,
        defaults,
        gateways: rctx.gateways,
    };
    cell.defaults = defaults;
    scan::check(&mut cell, sctx.now);
    let health = scan::assess(&mut cell, &sctx);
    if !health.get(i).is_some_and(|h| h.needs_revival) {
        return done;
    }
    revive::revive_cell(&cell, &[i], &health, rctx)
}

/// The cell an agent record belongs to: the cell directory of its `path`, else the cell
/// named by its `cell` under the missions directory. Either must resolve (links followed)
/// to a directory under the missions directory: a path elsewhere is refused with the reason.
fn locate(v: &Value, cell_id: &str, missions: &Path) -> std::result::Result<Option<scan::Cell>, String> {
    let root = std::fs::canonicalize(missions)
        .map_err(|e| format!("the missions directory {} cannot be resolved: {e}", missions.display()))?;
    let by_path = v
        .get("path")
        .and_then(Value::as_str)
        .and_then(|p| Path::new(p).parent().and_then(Path::parent).map(Path::to_path_buf));
    let by_id = if is_safe_id(cell_id) { create::resolve_cell(cell_id, missions).ok() } else { None };
    let mut outside = None;
    for d in [by_path, by_id].into_iter().flatten() {
        let Ok(real) = std::fs::canonicalize(&d) else { continue };
        if !real.starts_with(&root) {
            outside = Some(format!(
                "an agent record names the cell {}, which is not under the missions directory {}; ignored",
                d.display(),
                missions.display()
            ));
            continue;
        }
        if let Some(c) = scan::load_cell(&real).filter(|c| c.id == cell_id) {
            return Ok(Some(c));
        }
    }
    match outside {
        Some(why) => Err(why),
        None => Ok(None),
    }
}
