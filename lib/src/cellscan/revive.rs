//! Revival: what to do about an agent that failed (its file says `failed`, or the heartbeat
//! endpoint says an idle or active agent is `unhealthy`), as its cell's policy says.
//!
//! * `yes`: run the cell's `revive_command` (config/policies.json) with recover's engine
//!   ([`crate::restart`]): cooldown, `max_retries`, a time limit that kills the command's
//!   whole process group, and a ledger, `logs/revivals.json`, written atomically and locked
//!   from reading an agent's entry to writing it back. Each attempt also gets a line in
//!   `logs/mission.log`. After a command that succeeded the agent file is read again: the
//!   agent is `verified` revived when it no longer says `failed` (and, for a
//!   heartbeat-triggered revival, when the endpoint no longer calls it unhealthy). A dry run
//!   reads the ledger without locking it and writes nothing.
//! * `ask`: a `revival` alert asking a person to approve (`--approve CELL/AGENT`).
//! * `no`: nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::checkpoint::{self, Checkpoint};
use super::gateway::{self, Gateways};
use super::heartbeat::{Answer, Heartbeat};
use super::model::{self, Agent, AgentStatus, AutoRevive, FileCtx};
use super::scan::{AgentHealth, Cell};
use crate::clock::{self, Clock};
use crate::config::CommandLine;
use crate::entry::Diag;
use crate::record::{Finding, Level, Outcome, Recovery};
use crate::restart::{Decision, Entry, Ledger, Policy};
use crate::store::{self, Dir, Perm};
use crate::util::{self, proc};

/// The records revival writes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub(crate) enum Out {
    Recovery(Recovery),
    Alert(Alert),
    Finding(Finding),
    Handoff(super::handoff::Handoff),
}

/// A `revival` alert: a failed agent whose cell asks before reviving it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Alert {
    pub(crate) kind: &'static str,
    pub(crate) topic: &'static str,
    pub(crate) level: Level,
    pub(crate) title: String,
    pub(crate) message: String,
    pub(crate) subject: String,
    pub(crate) status: &'static str,
    pub(crate) sinks: Vec<Value>,
    pub(crate) labels: Vec<String>,
    pub(crate) cell: String,
    pub(crate) agent: String,
    pub(crate) timestamp: String,
}

/// What revival works with.
pub(crate) struct ReviveCtx<'a> {
    pub(crate) clock: &'a Clock,
    pub(crate) dry_run: bool,
    /// `CELL/AGENT` approvals (the cell by id or by directory name).
    pub(crate) approved: &'a HashSet<String>,
    /// Approvals that matched a failed agent.
    pub(crate) used: &'a Mutex<HashSet<String>>,
    pub(crate) heartbeat: Option<&'a Heartbeat>,
    pub(crate) gateways: Option<&'a Gateways>,
    pub(crate) diag: &'a Diag,
}

/// The records of one cell's revivals, and how many agents are still not revived.
#[derive(Debug, Default)]
pub(crate) struct Revived {
    pub(crate) records: Vec<Out>,
    pub(crate) unresolved: usize,
}

impl ReviveCtx<'_> {
    fn approval(&self, cell: &Cell, agent: &str) -> Option<String> {
        [format!("{}/{agent}", cell.id), format!("{}/{agent}", cell.dir_name)]
            .into_iter()
            .find(|k| self.approved.contains(k))
    }
}

/// Why an agent needs reviving, for messages and the command's environment.
fn reason(cell: &Cell, i: usize, h: &AgentHealth) -> String {
    if cell.agents[i].status.value == Some(AgentStatus::Failed) {
        "the agent file says failed".to_string()
    } else {
        let n = h.state.as_ref().map(|s| s.consecutive_failures).unwrap_or(0);
        format!("the heartbeat endpoint says unhealthy ({n} consecutive failures)")
    }
}

/// Revive the agents `targets` (indices into `cell.agents`; `health` is every agent's), then
/// hand off the tasks of those that cannot be revived, as the cell's policies allow.
pub(crate) fn revive_cell(cell: &Cell, targets: &[usize], health: &[AgentHealth], ctx: &ReviveCtx<'_>) -> Revived {
    let mut done = Revived::default();
    if targets.is_empty() {
        return done;
    }
    let stamp = ctx.clock.stamp();
    let ledger_path = cell.dir.join("logs").join(LEDGER);
    let mut lock: Option<(Dir, store::Lock)> = None;
    let mut cannot = Vec::new();
    for &i in targets {
        let Some(h) = health.get(i) else { continue };
        let agent = &cell.agents[i];
        let approval = ctx.approval(cell, &agent.id);
        if let (Some(k), Ok(mut used)) = (&approval, ctx.used.lock()) {
            used.insert(k.clone());
        }
        let policy = if approval.is_some() { AutoRevive::Yes } else { cell.auto_revive() };
        match policy {
            AutoRevive::No => cannot.push((i, false)),
            AutoRevive::Ask => {
                done.records.push(Out::Alert(ask(cell, i, h, &stamp)));
                done.unresolved += 1;
            }
            AutoRevive::Yes => {
                let Some(cmd) = &cell.policies.revive_command else {
                    done.records.push(Out::Finding(no_revive_command(cell, &agent.id, &stamp)));
                    done.unresolved += 1;
                    continue;
                };
                let rec = if ctx.dry_run {
                    dry_attempt(cell, i, h, cmd, ctx)
                } else {
                    if lock.is_none() {
                        match cell_logs(cell).and_then(|logs| Ok((Ledger::lock_in(&logs, LEDGER)?, logs))) {
                            Ok((l, logs)) => lock = Some((logs, l)),
                            Err(e) => {
                                let why = e.to_string();
                                done.records.push(Out::Finding(revive_error(cell, &ledger_path, &why, &stamp)));
                                done.unresolved += targets.len();
                                return done;
                            }
                        }
                    }
                    let Some((logs, l)) = lock.as_mut() else { continue };
                    held_attempt(cell, i, h, cmd, logs, l, ctx)
                };
                let rec = match rec {
                    Ok(rec) => rec,
                    Err(e) => {
                        done.records.push(Out::Finding(revive_error(cell, &ledger_path, &e.to_string(), &stamp)));
                        done.unresolved += 1;
                        continue;
                    }
                };
                let refused = refused(&rec);
                if refused {
                    done.records.push(Out::Finding(no_checkpoint(cell, &agent.id, &stamp)));
                }
                // Exhausted: no attempt left (also while the last one's cooldown runs).
                let exhausted = rec.outcome == Outcome::MaxAttempts
                    || (rec.outcome == Outcome::Cooldown && rec.attempt >= rec.max_attempts);
                if exhausted || refused {
                    cannot.push((i, true));
                }
                if !(rec.outcome == Outcome::Recovered && rec.verified) {
                    done.unresolved += 1;
                }
                done.records.push(Out::Recovery(rec));
            }
        }
    }
    drop(lock);
    for (i, counted) in cannot {
        let r = super::handoff::after_revival(cell, i, health, ctx);
        // Its tasks have a new owner: the agent no longer counts as left unrevived.
        let handed = r.records.iter().any(|o| matches!(o, Out::Handoff(h) if h.outcome == "handed_off"));
        if handed && counted {
            done.unresolved = done.unresolved.saturating_sub(1);
        }
        done.records.extend(r.records);
        done.unresolved += r.unresolved;
    }
    done
}

/// Whether revival refused to start (a checkpoint is required and there is none).
fn refused(rec: &Recovery) -> bool {
    rec.extra.get("steps").and_then(Value::as_array).is_some_and(|s| s.iter().any(|st| st["outcome"] == "refused"))
}

/// The finding for an agent that cannot be revived because it has no checkpoint.
fn no_checkpoint(cell: &Cell, agent: &str, stamp: &str) -> Finding {
    let path = cell.dir.join("config/policies.json");
    let detail = format!(
        "{}: agent {agent} needs reviving, checkpoint_required is true, and it has no checkpoint \
         (no checkpoints/{agent}/state.json, no checkpoint in its agent file): not revived",
        path.display()
    );
    let issue = model::Issue {
        level: Level::Error,
        problem: "no_checkpoint",
        file: Some(format!("agents/{agent}.json")),
        path,
        detail,
        age_s: None,
        suppressed_by: None,
    };
    super::scan::finding(&cell.id, &issue, stamp)
}

/// The revival ledger's name in the cell's `logs/`.
const LEDGER: &str = "revivals.json";

/// The finding for an agent that needs reviving in a cell without a `revive_command`.
fn no_revive_command(cell: &Cell, agent: &str, stamp: &str) -> Finding {
    let detail = format!(
        "{}: agent {agent} needs reviving but config/policies.json has no revive_command",
        cell.dir.join("config/policies.json").display(),
    );
    let issue = model::Issue {
        level: Level::Error,
        problem: "missing_field",
        file: Some("config/policies.json".into()),
        path: cell.dir.join("config/policies.json"),
        detail,
        age_s: None,
        suppressed_by: None,
    };
    super::scan::finding(&cell.id, &issue, stamp)
}

/// A dry run's attempt: the ledger read as it is, no lock, nothing created.
fn dry_attempt(
    cell: &Cell,
    i: usize,
    h: &AgentHealth,
    cmd: &CommandLine,
    ctx: &ReviveCtx<'_>,
) -> crate::error::Result<Recovery> {
    let entries = peek_ledger(cell)?;
    let mut entry = entries.get(&cell.agents[i].id).cloned().unwrap_or_default();
    Ok(attempt(cell, i, h, cmd, &mut entry, ctx, &mut |_| {}))
}

/// An attempt under the cell's ledger lock, the agent's entry held from reading it to writing
/// it back after the command.
fn held_attempt(
    cell: &Cell,
    i: usize,
    h: &AgentHealth,
    cmd: &CommandLine,
    logs: &Dir,
    lock: &mut store::Lock,
    ctx: &ReviveCtx<'_>,
) -> crate::error::Result<Recovery> {
    let agent = &cell.agents[i];
    let mut held = logs.try_clone().and_then(|d| Ledger::open_in(d, LEDGER, lock))?;
    let mut entry = held.ledger.entry(&agent.id).clone();
    let diag = ctx.diag;
    Ok(attempt(cell, i, h, cmd, &mut entry, ctx, &mut |e| {
        *held.ledger.entry(&agent.id) = e.clone();
        if let Err(err) = held.ledger.save() {
            diag.warn(format_args!("{}: {err}", cell.id));
        }
    }))
}

/// The cell's `logs/`, opened relative to the cell directory (created when missing). Agents
/// write in their cell: `logs/` being a link to elsewhere is refused, never followed.
fn cell_logs(cell: &Cell) -> crate::error::Result<Dir> {
    Dir::open(&cell.dir)?.sub_create("logs")
}

/// The ledger as it is, without a lock and without creating anything (dry runs).
pub(crate) fn peek_ledger(cell: &Cell) -> crate::error::Result<std::collections::BTreeMap<String, Entry>> {
    let dir = Dir::open(&cell.dir)?;
    if dir.identity("logs").is_none() {
        return Ok(Default::default());
    }
    Ok(dir.sub("logs")?.read_json(LEDGER, store::kinds::LEDGER)?.unwrap_or_default())
}

fn revive_error(cell: &Cell, path: &Path, why: &str, stamp: &str) -> Finding {
    let issue = model::Issue {
        level: Level::Error,
        problem: "revive_error",
        file: Some("logs/revivals.json".into()),
        path: path.to_path_buf(),
        detail: format!("cannot use the revival ledger: {why}"),
        age_s: None,
        suppressed_by: None,
    };
    super::scan::finding(&cell.id, &issue, stamp)
}

/// The pending-approval alert.
fn ask(cell: &Cell, i: usize, h: &AgentHealth, stamp: &str) -> Alert {
    let a = &cell.agents[i];
    let mission = cell.mission_name().unwrap_or(&cell.id);
    let role = a.role.text.as_deref().unwrap_or("no role");
    Alert {
        kind: "alert",
        topic: "revival",
        level: Level::Warning,
        title: format!("Revival pending approval: {} in {mission}", a.id),
        message: format!(
            "Agent {} ({role}) of mission \"{mission}\" (cell {}) needs reviving: {}. The cell's policy is to ask first.\n\
             Approve with: cellscan revive {} --approve {}/{}",
            a.id,
            cell.id,
            reason(cell, i, h),
            cell.dir.display(),
            cell.id,
            a.id
        ),
        subject: format!("agent:{}/{}", cell.id, a.id),
        status: "firing",
        sinks: Vec::new(),
        labels: vec!["revival".into(), "mission-cell".into()],
        cell: cell.id.clone(),
        agent: a.id.clone(),
        timestamp: stamp.to_string(),
    }
}

/// `850ms`, `2.4s`.
fn took(d: Duration) -> String {
    if d < Duration::from_secs(1) { format!("{}ms", d.as_millis()) } else { format!("{:.1}s", d.as_secs_f64()) }
}

fn abs(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// One step of a revival, as the `recovery` record lists it.
fn step(name: &str, outcome: &str, detail: impl Into<String>, ms: u64) -> Value {
    serde_json::json!({"step": name, "outcome": outcome, "detail": detail.into(), "ms": ms})
}

fn ms_since(t: Instant) -> u64 {
    t.elapsed().as_millis().min(u128::from(u64::MAX)) as u64
}

/// How a checkpoint is described in steps and details.
fn describe_checkpoint(cell: &Cell, cp: &Checkpoint) -> String {
    let rel = cp.dir.strip_prefix(&cell.dir).unwrap_or(&cp.dir).display().to_string();
    let at = cp.at.map(clock::fmt_ts).unwrap_or_default();
    match &cp.state {
        Some(_) => format!("{rel}/ (state.json of {at})"),
        None => format!("{rel}/ (the agent file's checkpoint of {at}; no state.json)"),
    }
}

/// One attempt (or the reason there is none) for one agent, under the held ledger: the
/// restore step finds the checkpoint (and refuses when one is required and there is none),
/// the restart step runs the revive command with the checkpoint to restore from, the
/// re-register step posts to the gateway's `register_url`, and the verify step waits for
/// proof that the agent is back. Each step's outcome goes into the record's `steps`.
fn attempt(
    cell: &Cell,
    i: usize,
    h: &AgentHealth,
    cmd: &CommandLine,
    entry: &mut Entry,
    ctx: &ReviveCtx<'_>,
    persist: &mut dyn FnMut(&Entry),
) -> Recovery {
    let a = &cell.agents[i];
    let policy = policy_of(cell);
    let now = ctx.clock.unix();
    let stamp = ctx.clock.stamp();
    let name = format!("{}/{}", cell.id, a.id);
    let mut rec = Recovery::new(&name, Outcome::Failed, 0, policy.max_attempts, ctx.dry_run, stamp.clone());
    rec.extra.insert("cell".into(), cell.id.clone().into());
    rec.extra.insert("agent".into(), a.id.clone().into());
    rec.extra.insert("path".into(), a.path.display().to_string().into());
    let why = reason(cell, i, h);
    match entry.decide(&policy, now) {
        Decision::Cooldown { remaining_seconds } => {
            rec.outcome = Outcome::Cooldown;
            rec.attempt = entry.attempts;
            rec.detail =
                format!("{why}; last attempt too recent, next one in {}", clock::human_duration(remaining_seconds));
            return rec;
        }
        Decision::MaxAttempts { attempts } => {
            rec.outcome = Outcome::MaxAttempts;
            rec.attempt = attempts;
            rec.detail = format!(
                "{why}; gave up after {attempts} attempts, until {} pass without one",
                clock::human_duration(policy.reset_after_seconds)
            );
            return rec;
        }
        Decision::Run { attempt } => rec.attempt = attempt,
    }
    let cp = checkpoint::latest(cell, a);
    if cp.is_none() && cell.policies.checkpoint_required {
        let no = format!("checkpoint_required is true and agent {} has no checkpoint", a.id);
        if ctx.dry_run {
            rec.outcome = Outcome::Skipped;
            rec.detail = format!("dry run: {why}; would refuse: {no}");
        } else {
            rec.attempt = entry.attempts;
            rec.detail = format!("{why}; refused: {no}");
            rec.extra.insert("steps".into(), Value::Array(vec![step("restore", "refused", no, 0)]));
        }
        return rec;
    }
    if ctx.dry_run {
        // Nothing ran: the outcome recover gives a dry run too, never a claimed effect.
        rec.outcome = Outcome::Skipped;
        let from = cp.as_ref().map(|c| format!(" restoring from {}", describe_checkpoint(cell, c))).unwrap_or_default();
        rec.detail = format!("dry run: {why}; would run {}{from}", cmd.display());
        return rec;
    }
    let spec_env = command_env(cell, a, rec.attempt, &why, cp.as_ref());
    let dir = abs(&cell.dir);
    let mut spec = proc::Spec::new(cmd, Duration::from_secs(policy.timeout_seconds));
    spec.env = spec_env;
    spec.cwd = Some(&dir);
    spec.capture_limit = 16 * 1024;
    // The attempt is saved before the command starts: if cellscan is killed while it runs
    // (the command runs on in its own process group), the next run still sees the attempt
    // and holds the cooldown and the retry limit instead of reviving again at once.
    entry.begin(&policy, now);
    persist(entry);
    // By the tool's clock: real time, or `--now` (then a heartbeat at or after it is fresh).
    let started_unix = now;
    let ran = proc::run(&spec);
    if matches!(&ran, Ok(o) if o.success()) {
        entry.succeeded(now);
    }
    let (flapping, n) = entry.flapping(&policy, now);
    if flapping {
        rec.flapping = true;
        rec.restarts_in_window = Some(n);
    }
    persist(entry);
    let mut steps = Vec::new();
    match ran {
        Err(e) => {
            rec.detail = format!("{why}; cannot start {}: {e}", cmd.display());
            steps.push(step("restart", "failed", format!("cannot start {}: {e}", cmd.display()), 0));
        }
        Ok(o) => {
            let ms = o.duration.as_millis().min(u128::from(u64::MAX)) as u64;
            steps.push(step("restart", if o.success() { "ok" } else { "failed" }, o.describe(), ms));
            if o.success() {
                steps.push(match &cp {
                    Some(c) => step("restore", "ok", format!("RESTORE_FROM={}", describe_checkpoint(cell, c)), 0),
                    None => step("restore", "skipped", "no checkpoint (checkpoint_required is false)", 0),
                });
            }
            ran_to_end(cell, i, h, ctx, &o, &why, started_unix, &mut rec, &mut steps);
        }
    }
    rec.extra.insert("steps".into(), Value::Array(steps));
    log_attempt(cell, &a.id, &rec, &stamp, ctx);
    rec
}

/// The environment the revive command runs with.
fn command_env(cell: &Cell, a: &Agent, attempt: u32, why: &str, cp: Option<&Checkpoint>) -> Vec<(String, String)> {
    let dir = abs(&cell.dir);
    let (from, state, at) = match cp {
        Some(c) => (
            format!("{}/", abs(&c.dir).display()),
            c.state.as_deref().map(|p| abs(p).display().to_string()).unwrap_or_default(),
            c.at.map(clock::fmt_ts).unwrap_or_default(),
        ),
        None => Default::default(),
    };
    vec![
        ("CELL_ID".to_string(), cell.id.clone()),
        ("CELL_PATH".to_string(), dir.display().to_string()),
        ("AGENT_ID".to_string(), a.id.clone()),
        ("AGENT_FILE".to_string(), abs(&a.path).display().to_string()),
        ("AGENT_ROLE".to_string(), a.role.text.clone().unwrap_or_default()),
        ("CHECKPOINT_PATH".to_string(), format!("{}/", dir.join("checkpoints").join(&a.id).display())),
        ("RESTORE_FROM".to_string(), from),
        ("RESTORE_STATE".to_string(), state),
        ("RESTORE_CHECKPOINT_AT".to_string(), at),
        ("GATEWAY".to_string(), a.gateway.clone().unwrap_or_default()),
        ("HEARTBEAT_ID".to_string(), a.heartbeat_id.clone()),
        ("MISSION_NAME".to_string(), cell.mission_name().unwrap_or_default().to_string()),
        ("REVIVE_ATTEMPT".to_string(), attempt.to_string()),
        ("REVIVE_REASON".to_string(), why.to_string()),
    ]
}

/// The record of a command that ran to its end: recovered, re-registered and verified (or
/// not), or failed with the first line it said.
#[allow(clippy::too_many_arguments)]
fn ran_to_end(
    cell: &Cell,
    i: usize,
    h: &AgentHealth,
    ctx: &ReviveCtx<'_>,
    o: &proc::Outcome,
    why: &str,
    started_unix: f64,
    rec: &mut Recovery,
    steps: &mut Vec<Value>,
) {
    rec.exit_code = o.exit_code;
    rec.duration_ms = o.duration.as_millis().min(u128::from(u64::MAX)) as u64;
    if !o.success() {
        let said = util::first_line(if o.stderr.trim().is_empty() { &o.stdout } else { &o.stderr });
        rec.detail = format!("{why}; {}", o.describe());
        if !said.is_empty() {
            rec.detail.push_str(&format!(": {}", util::truncate(said, 200)));
        }
        return;
    }
    rec.outcome = Outcome::Recovered;
    let registered = reregister(cell, i, ctx, steps);
    if cell.policies.verify_delay_seconds > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(cell.policies.verify_delay_seconds));
    }
    let t = Instant::now();
    let (verified, how) = verify(cell, i, h, ctx, started_unix);
    steps.push(step("verify", if verified { "ok" } else { "failed" }, how.clone(), ms_since(t)));
    rec.verified = verified && registered;
    rec.detail = format!("{why}; {} in {}; {how}", o.describe(), took(o.duration));
    if !registered {
        rec.detail.push_str("; not registered with its gateway");
    }
}

/// The re-register step: POST the agent to its gateway's `register_url`. False when it was
/// tried and failed.
fn reregister(cell: &Cell, i: usize, ctx: &ReviveCtx<'_>, steps: &mut Vec<Value>) -> bool {
    let a = &cell.agents[i];
    let Some(gw) = a.gateway.as_deref() else {
        steps.push(step("register", "skipped", "the agent names no gateway", 0));
        return true;
    };
    let Some(url) = ctx.gateways.and_then(|g| g.spec(gw)).and_then(|s| s.register_url.map(|u| (u, s.timeout))) else {
        steps.push(step("register", "skipped", format!("gateway {gw} has no register_url"), 0));
        return true;
    };
    let (url, timeout) = url;
    let body = serde_json::json!({
        "agent_id": a.id, "cell_id": cell.id, "heartbeat_id": a.heartbeat_id, "role": a.role.text,
        "gateway": gw, "mission_name": cell.mission_name(), "timestamp": ctx.clock.stamp(),
    });
    let t = Instant::now();
    match gateway::register(&url, &body, timeout) {
        Ok(said) => {
            steps.push(step("register", "ok", format!("gateway {gw}: {said}"), ms_since(t)));
            true
        }
        Err(why) => {
            steps.push(step("register", "failed", format!("gateway {gw}: {why}"), ms_since(t)));
            false
        }
    }
}

/// A line in the cell's mission.log about the attempt.
fn log_attempt(cell: &Cell, agent: &str, rec: &Recovery, stamp: &str, ctx: &ReviveCtx<'_>) {
    let line = format!(
        "{stamp} cellscan: revive {agent} attempt {}/{}: {} ({})\n",
        rec.attempt,
        rec.max_attempts,
        match (rec.outcome, rec.verified) {
            (Outcome::Recovered, true) => "revived",
            (Outcome::Recovered, false) => "command succeeded, not verified",
            _ => "failed",
        },
        rec.detail
    );
    if let Err(e) = cell_logs(cell).and_then(|logs| logs.append_line("mission.log", line.as_bytes(), Perm::Shared)) {
        ctx.diag.warn(format_args!("{}: {e}", cell.id));
    }
}

/// Is the agent back? Its file no longer says failed; and then, when the heartbeat endpoint
/// knows the agent (or called it unhealthy), a fresh heartbeat: one after the revival
/// started (or newer than the one seen before), from an agent the endpoint does not call
/// unhealthy, waited for up to `verify_timeout_seconds`; else, when its gateway has an
/// address, the gateway answering now.
fn verify(cell: &Cell, i: usize, h: &AgentHealth, ctx: &ReviveCtx<'_>, started_unix: f64) -> (bool, String) {
    let a = &cell.agents[i];
    let status = match super::scan::read_cell_file(&cell.dir, &a.file) {
        Ok(bytes) => {
            let mut issues = Vec::new();
            model::read_agent(&mut FileCtx::new(&a.path, &a.file, &bytes, &mut issues)).and_then(|a| a.status.text)
        }
        Err(_) => None,
    };
    let Some(status) = status else {
        return (false, "the agent file cannot be read back".to_string());
    };
    if status == "failed" {
        return (false, "the agent file still says failed".to_string());
    }
    let heartbeat_triggered = a.status.value != Some(AgentStatus::Failed) && h.source == "heartbeat";
    if let (true, Some(hb)) = (heartbeat_triggered || h.state.is_some(), ctx.heartbeat) {
        let before = h.state.as_ref().and_then(|s| s.last_heartbeat_unix);
        return fresh_heartbeat(hb, &a.heartbeat_id, before, started_unix, cell.policies.verify_timeout_seconds)
            .map_or_else(
                |why| (false, format!("agent status now '{status}', but {why}")),
                |said| (true, format!("agent status now '{status}', {said}")),
            );
    }
    if let (Some(gw), Some(gws)) = (a.gateway.as_deref(), ctx.gateways)
        && let Some(spec) = gws.spec(gw)
    {
        let c = gws.check_now(gw, &spec);
        return if gateway::is_down(&c) {
            (false, format!("agent status now '{status}', but gateway {gw} is down: {}", c.detail))
        } else {
            (true, format!("agent status now '{status}', gateway {gw} {}", c.status.as_str()))
        };
    }
    (true, format!("agent status now '{status}'"))
}

/// Poll the endpoint until it has a fresh heartbeat of the agent, or `timeout_s` pass.
fn fresh_heartbeat(
    hb: &Heartbeat,
    id: &str,
    before: Option<f64>,
    started_unix: f64,
    timeout_s: u64,
) -> std::result::Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(timeout_s);
    let mut last_said;
    loop {
        match hb.agent(id) {
            Answer::State(s) => {
                let at = s.last_heartbeat_unix.unwrap_or(0.0);
                let fresh = at >= started_unix || before.is_some_and(|b| at > b);
                if fresh && s.status != "unhealthy" {
                    return Ok(format!("heartbeat {}", s.status));
                }
                last_said = if fresh {
                    format!("heartbeat still {}", s.status)
                } else {
                    format!(
                        "no fresh heartbeat within {} (the last at {})",
                        clock::human_duration(timeout_s),
                        s.last_heartbeat.unwrap_or_else(|| "?".into())
                    )
                };
            }
            Answer::Unknown => {
                last_said = format!(
                    "no heartbeat within {} (the endpoint never heard from it)",
                    clock::human_duration(timeout_s)
                )
            }
            Answer::Failed(why) => return Err(format!("cannot ask the heartbeat endpoint: {why}")),
        }
        if Instant::now() >= deadline {
            return Err(last_said);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The restart engine's policy for a cell's revivals: `max_retries` attempts, `revive_timeout`,
/// `revive_cooldown_seconds`, `reset_after_seconds` from config/policies.json.
pub(crate) fn policy_of(cell: &Cell) -> Policy {
    let p = &cell.policies;
    Policy {
        cooldown_seconds: p.cooldown_seconds,
        max_attempts: cell.max_retries(),
        timeout_seconds: p.revive_timeout,
        reset_after_seconds: p.reset_after_seconds,
        ..Policy::default()
    }
}
