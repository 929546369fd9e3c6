//! Agent health: failed agents and stale checkpoints from the agent files, and health from
//! the heartbeat endpoint when one is given (its agents asked a few at a time).

use time::OffsetDateTime;

use super::{Cell, ScanCtx, age, mtime};
use crate::cellscan::gateway::{self, Gateways, Known};
use crate::cellscan::heartbeat::{AgentState, Answer, Heartbeat};
use crate::cellscan::model::{Agent, AgentStatus, CheckpointSource, Issue};
use crate::clock;
use crate::record::Level;

/// Questions to the heartbeat endpoint at once, per cell.
const ASK_THREADS: usize = 8;

/// An agent's health as the scan sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentHealth {
    /// healthy, degraded, unhealthy or unknown.
    pub(crate) health: &'static str,
    /// `heartbeat` or `file`.
    pub(crate) source: &'static str,
    pub(crate) state: Option<AgentState>,
    pub(crate) checkpoint_age_s: Option<u64>,
    /// True when the revive command should be run for it: its file says failed, or the
    /// heartbeat endpoint says an idle or active agent is unhealthy.
    pub(crate) needs_revival: bool,
    /// Its gateway's status (`up`, `degraded`, `down`) when the gateway was checked.
    pub(crate) gateway_status: Option<&'static str>,
}

/// Assess every agent: failed agents, stale checkpoints, and health from the files or from
/// the heartbeat endpoint (queried for the cell's agents concurrently).
pub fn assess(cell: &mut Cell, ctx: &ScanCtx<'_>) -> Vec<AgentHealth> {
    let rules = Rules { interval: cell.checkpoint_interval(), checkpoint_required: cell.policies.checkpoint_required };
    let answers: Vec<Option<Answer>> = match ctx.heartbeat {
        Some(hb) if !cell.agents.is_empty() => ask_all(hb, &cell.agents),
        _ => vec![None; cell.agents.len()],
    };
    let mut issues = Vec::new();
    let mut out = Vec::with_capacity(cell.agents.len());
    let mut endpoint_failure: Option<String> = None;
    for (a, answer) in cell.agents.iter_mut().zip(answers) {
        if a.status.value == Some(AgentStatus::Active) && rules.checkpoint_required && a.last_checkpoint.is_none() {
            let state = cell.dir.join("checkpoints").join(&a.id).join("state.json");
            a.last_checkpoint = mtime(&state).map(|t| (t, CheckpointSource::StateMtime));
        }
        let mut h = from_file(a, &rules, ctx.now, &mut issues);
        match answer {
            Some(Answer::State(s)) => from_endpoint(a, s, &mut h, &mut issues),
            Some(Answer::Unknown) if a.status.value == Some(AgentStatus::Active) => {
                let detail =
                    format!("the heartbeat endpoint has never heard from agent {} (as '{}')", a.id, a.heartbeat_id);
                issues.push(agent_issue(a, Level::Info, "no_heartbeat", detail, None));
            }
            Some(Answer::Failed(why)) => {
                endpoint_failure.get_or_insert(why);
            }
            _ => {}
        }
        if let (Some(gws), Some(name)) = (ctx.gateways, a.gateway.as_deref()) {
            from_gateway(a, name, gws, &mut h, &mut issues);
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

/// What a cell asks of its agents' checkpoints.
struct Rules {
    /// Seconds an active agent may go without a checkpoint.
    interval: u64,
    checkpoint_required: bool,
}

/// An agent's health from its file: failed, or active with a stale checkpoint (degraded).
fn from_file(a: &Agent, rules: &Rules, now: OffsetDateTime, issues: &mut Vec<Issue>) -> AgentHealth {
    let status = a.status.value;
    let checkpoint_age_s = a.last_checkpoint.map(|(t, _)| age(now, t));
    let mut stale = false;
    if status == Some(AgentStatus::Active) && rules.checkpoint_required {
        match (a.last_checkpoint, checkpoint_age_s) {
            (Some((t, how)), Some(age_s)) if age_s > rules.interval => {
                stale = true;
                let how = match how {
                    CheckpointSource::File => String::new(),
                    CheckpointSource::StateMtime => format!(" (the time of checkpoints/{}/state.json)", a.id),
                };
                let detail = format!(
                    "agent {} last checkpointed at {}{how}, longer ago than the checkpoint interval of {}",
                    a.id,
                    clock::fmt_ts(t),
                    clock::human_duration(rules.interval)
                );
                issues.push(agent_issue(a, Level::Warning, "stale_checkpoint", detail, Some(age_s)));
            }
            (None, _) => {
                stale = true;
                let detail = format!("agent {} is active and has never checkpointed", a.id);
                issues.push(agent_issue(a, Level::Warning, "stale_checkpoint", detail, None));
            }
            _ => {}
        }
    }
    if status == Some(AgentStatus::Failed) {
        let detail = format!("agent {} ({}) is failed", a.id, a.role.text.as_deref().unwrap_or("no role"));
        issues.push(agent_issue(a, Level::Error, "agent_failed", detail, None));
    }
    let health = match status {
        Some(AgentStatus::Failed) => "unhealthy",
        Some(_) if stale => "degraded",
        Some(_) => "healthy",
        None => "unknown",
    };
    AgentHealth {
        health,
        source: "file",
        state: None,
        checkpoint_age_s,
        needs_revival: status == Some(AgentStatus::Failed),
        gateway_status: None,
    }
}

/// The endpoint's word on an agent replaces the file's; an idle or active agent it calls
/// unhealthy needs reviving.
fn from_endpoint(a: &Agent, s: AgentState, h: &mut AgentHealth, issues: &mut Vec<Issue>) {
    let alive = matches!(a.status.value, Some(AgentStatus::Active | AgentStatus::Idle));
    if alive && s.status != "healthy" {
        let (level, why) =
            if s.status == "unhealthy" { (Level::Error, "unhealthy") } else { (Level::Warning, "degraded") };
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

/// An agent whose gateway is down is unhealthy, with a finding naming the gateway that
/// follows from the gateway's own check (`suppressed_by`); reviving the agent would not help,
/// so it does not need reviving for that. A gateway nobody configured is not checked.
fn from_gateway(a: &Agent, name: &str, gws: &Gateways, h: &mut AgentHealth, issues: &mut Vec<Issue>) {
    match gws.status(name) {
        Known::Checked(c) => {
            h.gateway_status = Some(c.status.as_str());
            if gateway::is_down(&c) && matches!(a.status.value, Some(AgentStatus::Active | AgentStatus::Idle)) {
                let detail = format!(
                    "agent {}'s gateway {name} ({}) is down: {}",
                    a.id,
                    c.target.as_deref().unwrap_or(""),
                    c.detail
                );
                let mut issue = agent_issue(a, Level::Error, "gateway_down", detail, None);
                issue.suppressed_by = Some(c.name.clone());
                issues.push(issue);
                h.health = "unhealthy";
            }
        }
        Known::Unknown => {
            let detail = format!("agent {}'s gateway '{name}' is not among the configured gateways", a.id);
            issues.push(agent_issue(a, Level::Warning, "unknown_gateway", detail, None));
        }
        // Named without an address (said once on stderr), or no gateway configured at all.
        Known::NoAddress | Known::NotConfigured => {}
    }
}

fn agent_issue(a: &Agent, level: Level, problem: &'static str, detail: String, age_s: Option<u64>) -> Issue {
    let detail = format!("{}: {detail}", a.path.display());
    Issue { level, problem, file: Some(a.file.clone()), path: a.path.clone(), detail, age_s, suppressed_by: None }
}

/// Ask the endpoint about every agent, a few at a time; should asking fail unexpectedly, the
/// endpoint counts as unreachable.
fn ask_all(hb: &Heartbeat, agents: &[Agent]) -> Vec<Option<Answer>> {
    let threads = agents.len().min(ASK_THREADS);
    match crate::util::par::map_ordered(agents, threads, |a| hb.agent(&a.heartbeat_id)) {
        Ok(answers) => answers.into_iter().map(Some).collect(),
        Err(e) => vec![Some(Answer::Failed(e.to_string())); agents.len()],
    }
}
