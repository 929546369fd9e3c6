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
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

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

/// Revive the agents `targets` (indices into `cell.agents`, each with its health).
pub(crate) fn revive_cell(cell: &Cell, targets: &[(usize, AgentHealth)], ctx: &ReviveCtx<'_>) -> Revived {
    let mut done = Revived::default();
    if targets.is_empty() {
        return done;
    }
    let stamp = ctx.clock.stamp();
    let ledger_path = cell.dir.join("logs").join(LEDGER);
    let mut lock: Option<(Dir, store::Lock)> = None;
    for (i, h) in targets {
        let agent = &cell.agents[*i];
        let approval = ctx.approval(cell, &agent.id);
        if let (Some(k), Ok(mut used)) = (&approval, ctx.used.lock()) {
            used.insert(k.clone());
        }
        let policy = if approval.is_some() { AutoRevive::Yes } else { cell.auto_revive() };
        match policy {
            AutoRevive::No => {}
            AutoRevive::Ask => {
                done.records.push(Out::Alert(ask(cell, *i, h, &stamp)));
                done.unresolved += 1;
            }
            AutoRevive::Yes => {
                let Some(cmd) = &cell.policies.revive_command else {
                    done.records.push(Out::Finding(no_revive_command(cell, &agent.id, &stamp)));
                    done.unresolved += 1;
                    continue;
                };
                let rec = if ctx.dry_run {
                    dry_attempt(cell, *i, h, cmd, ctx)
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
                    held_attempt(cell, *i, h, cmd, logs, l, ctx)
                };
                let rec = match rec {
                    Ok(rec) => rec,
                    Err(e) => {
                        done.records.push(Out::Finding(revive_error(cell, &ledger_path, &e.to_string(), &stamp)));
                        done.unresolved += 1;
                        continue;
                    }
                };
                if !(rec.outcome == Outcome::Recovered && rec.verified) {
                    done.unresolved += 1;
                }
                done.records.push(Out::Recovery(rec));
            }
        }
    }
    done
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
fn peek_ledger(cell: &Cell) -> crate::error::Result<std::collections::BTreeMap<String, Entry>> {
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

/// One attempt (or the reason there is none) for one agent, under the held ledger.
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
    if ctx.dry_run {
        // Nothing ran: the outcome recover gives a dry run too, never a claimed effect.
        rec.outcome = Outcome::Skipped;
        rec.detail = format!("dry run: {why}; would run {}", cmd.display());
        return rec;
    }
    let spec_env = command_env(cell, a, rec.attempt, &why);
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
    match ran {
        Err(e) => rec.detail = format!("{why}; cannot start {}: {e}", cmd.display()),
        Ok(o) => ran_to_end(cell, i, h, ctx, &o, &why, &mut rec),
    }
    log_attempt(cell, &a.id, &rec, &stamp, ctx);
    rec
}

/// The environment the revive command runs with.
fn command_env(cell: &Cell, a: &Agent, attempt: u32, why: &str) -> Vec<(String, String)> {
    let dir = abs(&cell.dir);
    vec![
        ("CELL_ID".to_string(), cell.id.clone()),
        ("CELL_PATH".to_string(), dir.display().to_string()),
        ("AGENT_ID".to_string(), a.id.clone()),
        ("AGENT_FILE".to_string(), abs(&a.path).display().to_string()),
        ("AGENT_ROLE".to_string(), a.role.text.clone().unwrap_or_default()),
        ("CHECKPOINT_PATH".to_string(), format!("{}/", dir.join("checkpoints").join(&a.id).display())),
        ("MISSION_NAME".to_string(), cell.mission_name().unwrap_or_default().to_string()),
        ("REVIVE_ATTEMPT".to_string(), attempt.to_string()),
        ("REVIVE_REASON".to_string(), why.to_string()),
    ]
}

/// The record of a command that ran to its end: recovered and perhaps verified, or failed
/// with the first line it said.
fn ran_to_end(
    cell: &Cell,
    i: usize,
    h: &AgentHealth,
    ctx: &ReviveCtx<'_>,
    o: &proc::Outcome,
    why: &str,
    rec: &mut Recovery,
) {
    rec.exit_code = o.exit_code;
    rec.duration_ms = o.duration.as_millis().min(u128::from(u64::MAX)) as u64;
    if o.success() {
        rec.outcome = Outcome::Recovered;
        if cell.policies.verify_delay_seconds > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(cell.policies.verify_delay_seconds));
        }
        let (verified, how) = verify(cell, i, h, ctx.heartbeat);
        rec.verified = verified;
        rec.detail = format!("{why}; {} in {}; {how}", o.describe(), took(o.duration));
    } else {
        let said = util::first_line(if o.stderr.trim().is_empty() { &o.stdout } else { &o.stderr });
        rec.detail = format!("{why}; {}", o.describe());
        if !said.is_empty() {
            rec.detail.push_str(&format!(": {}", util::truncate(said, 200)));
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

/// Is the agent back? Its file no longer says failed; and when the heartbeat endpoint called
/// it unhealthy, the endpoint no longer does.
fn verify(cell: &Cell, i: usize, h: &AgentHealth, hb: Option<&Heartbeat>) -> (bool, String) {
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
    if let (true, Some(hb)) = (heartbeat_triggered, hb) {
        return match hb.agent(&a.heartbeat_id) {
            Answer::State(s) if s.status != "unhealthy" => {
                (true, format!("agent status now '{status}', heartbeat {}", s.status))
            }
            Answer::State(s) => (false, format!("agent status now '{status}', but heartbeat still {}", s.status)),
            Answer::Unknown => (false, "the heartbeat endpoint no longer knows the agent".to_string()),
            Answer::Failed(why) => (false, format!("cannot ask the heartbeat endpoint: {why}")),
        };
    }
    (true, format!("agent status now '{status}'"))
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
