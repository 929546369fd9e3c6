//! cellscan's command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::model::{AgentStatus, AutoRevive, Isolation, Priority, Role, TaskStatus};
use crate::cli::{Common, ToolArgs};

/// Watch over mission cells: validate them, check their agents and tasks, revive failed agents.
///
/// A missions directory holds one directory per cell (the mission-cell spec: cell.json,
/// agents/, tasks/, checkpoints/, logs/, artifacts/, config/{isolation,policies,permissions}.json).
/// `scan` writes `cell`, `agent` and `task` records, a `check` per gateway (services.json's
/// `gateways`: a URL, host:port or command, checked once a run) and a `finding` per problem;
/// `revive` acts on failed agents as each cell's policy says (restart, restore from the
/// checkpoint, re-register with the gateway, verify) and hands the tasks of those that cannot
/// be revived to a substitute, once or (`--watch`) every interval; `approve` does a handoff a person approved; `status` counts
/// agents by health, pending revivals and handoffs; `init`, `add-agent`, `add-task`,
/// `set-agent` and `set-task` create and change cells with validated, atomically written files.
///
/// The missions directory is DIR when a command takes one, else --missions, else
/// AGENT_OPS_MISSIONS, else missions_path of the Lazarus Pit daemon's config.json
/// ($HOME/.lazarus/config.json or --lazarus-config), else HOME/missions.
///
/// Exit status: 0 no problems, 1 findings at warning or worse or a gateway down (scan), agents
/// left unrevived (revive), no substitute (approve), 2 usage, config or I/O error, 3 some input
/// lines were malformed (revive --from).
#[derive(Debug, Parser)]
#[command(
    name = "cellscan",
    version,
    after_help = "Examples:
  cellscan scan /var/missions                      every cell, as NDJSON
  cellscan scan --format text                      the cells under HOME/missions, for people
  cellscan scan --heartbeat-url http://127.0.0.1:8080 | notify
  cellscan scan --watch 30                         rescan every 30 s, print only what changed
  cellscan scan --lazarus-config ~/.lazarus/config.json --watch   the daemon's settings
  cellscan init --example-config                   the daemon's example config.json
  cellscan revive --dry-run                        what revival would do
  cellscan revive --watch | notify --follow        resident: revive every poll_interval
  cellscan status --format text                    cells, agents by health, pending revivals
  cellscan scan --heartbeat-url URL | cellscan revive --from - --heartbeat-url URL | notify
  cellscan revive --approve 7d3c0a52-1e4b-4f7a-9c2d-5b8e6f1a2c3d/agent_003
  cellscan approve 7d3c0a52-1e4b-4f7a-9c2d-5b8e6f1a2c3d --handoff agent_002
  cellscan init --name 'Release notes' --auto-revive yes --revive-command bin/revive-agent
  cellscan add-agent 7d3c0a52-1e4b-4f7a-9c2d-5b8e6f1a2c3d --id agent_001 --role lead
  cellscan add-task CELL --id task_002 --title 'Review' --assign agent_001 --depends-on task_001
  cellscan set-agent \"$CELL_PATH\" \"$AGENT_ID\" --status active --checkpoint"
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) common: Common,

    /// The missions directory [env: AGENT_OPS_MISSIONS] [default: HOME/missions]
    #[arg(long, value_name = "DIR", global = true)]
    pub(crate) missions: Option<PathBuf>,

    /// Say what would be done; run no command, write no file
    #[arg(long, global = true)]
    pub(crate) dry_run: bool,

    /// Read the Lazarus Pit daemon's config from PATH [default: $HOME/.lazarus/config.json
    /// when it exists]; the command line and environment win over it
    #[arg(long, value_name = "PATH", global = true)]
    pub(crate) lazarus_config: Option<PathBuf>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Validate every cell and report cells, agents, tasks and findings
    #[command(after_help = "Examples:
  cellscan scan /var/missions
  cellscan scan /var/missions/7d3c0a52-1e4b-4f7a-9c2d-5b8e6f1a2c3d     one cell
  cellscan scan --heartbeat-url http://127.0.0.1:8080 --format text
  cellscan scan --watch 30 | notify")]
    Scan(ScanArgs),
    /// Revive failed agents as each cell's policy says (yes: restore, restart, re-register,
    /// verify; ask: alert), then hand off the tasks of those that cannot be revived
    #[command(after_help = "Examples:
  cellscan revive /var/missions --dry-run
  cellscan revive --approve 7d3c0a52-1e4b-4f7a-9c2d-5b8e6f1a2c3d/agent_003
  cellscan scan --heartbeat-url URL | cellscan revive --from - --heartbeat-url URL | notify
  cellscan revive --watch 30 --heartbeat-url URL | notify --follow    resident")]
    Revive(ReviveArgs),
    /// Print the missions directory the other commands use (for scripts: the orchestrator)
    #[command(after_help = "The first of: --missions, AGENT_OPS_MISSIONS, the Lazarus config's missions_path,
HOME/missions.

Examples:
  cellscan missions-dir
  cellscan --lazarus-config /etc/lazarus/config.json missions-dir")]
    MissionsDir,
    /// Approve what a cell's policy asks a person for: a handoff of an agent's tasks
    #[command(after_help = "Examples:
  cellscan approve 7d3c0a52-1e4b-4f7a-9c2d-5b8e6f1a2c3d --handoff agent_002
  cellscan approve /var/missions/7d3c0a52-1e4b-4f7a-9c2d-5b8e6f1a2c3d --handoff agent_002 --dry-run")]
    Approve(ApproveArgs),
    /// Count cells, agents by health, pending revivals and handoffs (the Lazarus Pit's --status)
    #[command(after_help = "Examples:
  cellscan status --format text
  cellscan status /var/missions --heartbeat-url http://127.0.0.1:8080")]
    Status(StatusArgs),
    /// Create a cell: a new uuid, cell.json, config files and the sub-directories
    #[command(after_help = "Examples:
  cellscan init --name 'Release notes'
  cellscan init /var/missions --name Audit --isolation level_2 --max-agents 4 --auto-revive ask")]
    Init(InitArgs),
    /// Add an agent file to a cell
    #[command(after_help = "Examples:
  cellscan add-agent 7d3c0a52-1e4b-4f7a-9c2d-5b8e6f1a2c3d --id agent_001 --role lead --name 'Lead Agent'
  cellscan add-agent /var/missions/7d3c0a52-1e4b-4f7a-9c2d-5b8e6f1a2c3d --id agent_002 --role write --capability coding")]
    AddAgent(AddAgentArgs),
    /// Add a task file to a cell
    #[command(after_help = "Examples:
  cellscan add-task CELL --id task_001 --title 'Code review' --assign agent_001 --priority high --timeout 1800
  cellscan add-task CELL --id task_002 --title Deploy --depends-on task_001")]
    AddTask(AddTaskArgs),
    /// Change an agent's status, current task or checkpoint time (for revive commands and agents)
    #[command(after_help = "Examples:
  cellscan set-agent CELL agent_003 --status active --checkpoint
  cellscan set-agent \"$CELL_PATH\" \"$AGENT_ID\" --status active")]
    SetAgent(SetAgentArgs),
    /// Change a task's status or assignee (in_progress stamps started_at, completed completed_at)
    #[command(after_help = "Examples:
  cellscan set-task CELL task_001 --status in_progress
  cellscan set-task CELL task_001 --status completed")]
    SetTask(SetTaskArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ScanArgs {
    /// The missions directory, or one cell directory
    #[arg(value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,

    #[command(flatten)]
    pub(crate) heartbeat: HeartbeatArgs,

    /// Scan again every SECONDS (or 30s, 5m), printing only records that changed; `--watch`
    /// alone: the Lazarus config's poll_interval, else 30 s
    #[arg(long, value_name = "SECONDS", value_parser = parse_watch, num_args = 0..=1,
          default_missing_value = "0")]
    pub(crate) watch: Option<std::time::Duration>,

    /// Scan N cells at a time [default: the number of CPUs]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub(crate) jobs: Option<u32>,

    /// Output format (--watch always writes NDJSON)
    #[arg(long, value_enum, default_value_t = Format::Ndjson, conflicts_with = "watch")]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct ApproveArgs {
    /// The cell: its directory, its directory name or its cell_id under the missions directory
    #[arg(value_name = "CELL")]
    pub(crate) cell: String,

    /// Hand the pending and in-progress tasks of AGENT (which cannot be revived) to the first
    /// healthy substitute the cell's policies and permissions allow
    #[arg(long, value_name = "AGENT", required = true)]
    pub(crate) handoff: String,

    #[command(flatten)]
    pub(crate) heartbeat: HeartbeatArgs,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The missions directory, or one cell directory
    #[arg(value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,

    #[command(flatten)]
    pub(crate) heartbeat: HeartbeatArgs,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct ReviveArgs {
    /// The missions directory, or one cell directory
    #[arg(value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,

    #[command(flatten)]
    pub(crate) heartbeat: HeartbeatArgs,

    /// Act on the `agent` records of a scan read from FILE (`-` for stdin) instead of scanning
    /// DIR; every record read is passed on. A record only nominates: its cell must lie under
    /// DIR, and health is assessed afresh from the cell's files (and --heartbeat-url)
    #[arg(long, value_name = "FILE|-")]
    pub(crate) from: Vec<PathBuf>,

    /// Revive this agent now even though its cell's policy is `ask` (CELL is the cell id)
    #[arg(long, value_name = "CELL/AGENT")]
    pub(crate) approve: Vec<String>,

    /// Work on N cells at a time [default: the number of CPUs]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub(crate) jobs: Option<u32>,

    /// Stay resident: a revive pass every SECONDS (or 30s, 5m; `--watch` alone: the Lazarus
    /// config's poll_interval, else 30 s), writing the scan's records only when new or changed
    /// (as scan --watch), every attempt and handoff as it happens, and a cooldown, an ask or
    /// a refusal when it begins. Retries keep each cell's cooldown and max_retries
    #[arg(long, value_name = "SECONDS", value_parser = parse_watch, num_args = 0..=1,
          default_missing_value = "0", conflicts_with_all = ["from", "approve"])]
    pub(crate) watch: Option<std::time::Duration>,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct HeartbeatArgs {
    /// Take agent health from this heartbeat endpoint (tickmon serve): GET URL/agent/ID
    #[arg(long, value_name = "URL")]
    pub(crate) heartbeat_url: Option<String>,

    /// Send the bearer token in this file to the heartbeat endpoint (or the token itself in
    /// AGENT_OPS_HEARTBEAT_TOKEN)
    #[arg(long, value_name = "PATH", requires = "heartbeat_url")]
    pub(crate) heartbeat_token_file: Option<PathBuf>,

    /// Give up on one heartbeat request after SECONDS
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = parse_interval)]
    pub(crate) heartbeat_timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The missions directory to create the cell in
    #[arg(value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,

    /// The mission's name
    #[arg(long, default_value = "", required_unless_present = "example_config")]
    pub(crate) name: String,

    /// Create no cell: write an example of the Lazarus Pit daemon's config.json (to PATH of
    /// --lazarus-config, else $HOME/.lazarus/config.json; never over an existing file) and
    /// say on stderr what each key does in cellscan
    #[arg(long, conflicts_with_all = ["name", "id"])]
    pub(crate) example_config: bool,

    /// The cell id (and directory name) [default: a new uuid v4]
    #[arg(long, value_name = "ID")]
    pub(crate) id: Option<String>,

    /// Isolation level
    #[arg(long, value_enum, default_value_t = Isolation::Level1)]
    pub(crate) isolation: Isolation,

    /// Most agents the cell may have
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub(crate) max_agents: u64,

    /// The mission's time limit, in seconds from its creation [default: none: the mission
    /// may run as long as it takes]
    #[arg(long, value_name = "SECONDS")]
    pub(crate) timeout: Option<u64>,

    /// What to do about a failed agent: run the revive command, ask first, or nothing
    #[arg(long, value_enum, default_value_t = AutoRevive::Ask)]
    pub(crate) auto_revive: AutoRevive,

    /// Shell command that revives an agent (gets CELL_ID, CELL_PATH, AGENT_ID, CHECKPOINT_PATH, MISSION_NAME)
    #[arg(long, value_name = "CMD")]
    pub(crate) revive_command: Option<String>,

    /// Longest time an active agent may go without a checkpoint, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub(crate) checkpoint_interval: u64,

    /// Who creates the cell [default: $USER]
    #[arg(long, value_name = "WHO")]
    pub(crate) created_by: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct AddAgentArgs {
    /// The cell: its directory, or its id under the missions directory
    #[arg(value_name = "CELL")]
    pub(crate) cell: String,

    /// The agent id (also its file name: agents/ID.json)
    #[arg(long, value_name = "ID")]
    pub(crate) id: String,

    /// The agent's role
    #[arg(long, value_enum)]
    pub(crate) role: Role,

    /// A name for people [default: the id]
    #[arg(long)]
    pub(crate) name: Option<String>,

    /// A capability (repeatable)
    #[arg(long = "capability", value_name = "C")]
    pub(crate) capabilities: Vec<String>,

    /// The gateway the agent runs on
    #[arg(long, value_name = "G")]
    pub(crate) gateway: Option<String>,

    /// Initial status
    #[arg(long, value_enum, default_value_t = AgentStatus::Idle)]
    pub(crate) status: AgentStatus,
}

#[derive(Debug, Args)]
pub(crate) struct AddTaskArgs {
    /// The cell: its directory, or its id under the missions directory
    #[arg(value_name = "CELL")]
    pub(crate) cell: String,

    /// The task id (also its file name: tasks/ID.json)
    #[arg(long, value_name = "ID")]
    pub(crate) id: String,

    /// The task's title
    #[arg(long)]
    pub(crate) title: String,

    /// What the task is about
    #[arg(long, default_value = "")]
    pub(crate) description: String,

    /// The agent that does it
    #[arg(long, value_name = "AGENT")]
    pub(crate) assign: Option<String>,

    /// Priority
    #[arg(long, value_enum, default_value_t = Priority::Medium)]
    pub(crate) priority: Priority,

    /// A task that must be done first (repeatable)
    #[arg(long = "depends-on", value_name = "ID")]
    pub(crate) depends_on: Vec<String>,

    /// Longest time the task may stay in progress, in seconds
    #[arg(long, value_name = "SECONDS")]
    pub(crate) timeout: Option<u64>,

    /// Initial status (in_progress stamps started_at)
    #[arg(long, value_enum, default_value_t = TaskStatus::Pending)]
    pub(crate) status: TaskStatus,
}

#[derive(Debug, Args)]
pub(crate) struct SetAgentArgs {
    /// The cell: its directory, or its id under the missions directory
    #[arg(value_name = "CELL")]
    pub(crate) cell: String,

    /// The agent id
    #[arg(value_name = "AGENT")]
    pub(crate) agent: String,

    /// New status
    #[arg(long, value_enum)]
    pub(crate) status: Option<AgentStatus>,

    /// The task the agent now works on
    #[arg(long, value_name = "TASK", conflicts_with = "no_current_task")]
    pub(crate) current_task: Option<String>,

    /// The agent works on no task now
    #[arg(long)]
    pub(crate) no_current_task: bool,

    /// Record a checkpoint now (checkpoint.last_checkpoint)
    #[arg(long)]
    pub(crate) checkpoint: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SetTaskArgs {
    /// The cell: its directory, or its id under the missions directory
    #[arg(value_name = "CELL")]
    pub(crate) cell: String,

    /// The task id
    #[arg(value_name = "TASK")]
    pub(crate) task: String,

    /// New status (in_progress stamps started_at; completed and failed stamp completed_at)
    #[arg(long, value_enum)]
    pub(crate) status: Option<TaskStatus>,

    /// Assign the task to this agent
    #[arg(long, value_name = "AGENT")]
    pub(crate) assign: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// One record a line
    Ndjson,
    /// One line a cell, its problems indented under it
    Text,
}

/// `--watch`'s interval; `0` (what `--watch` alone gives) stands for "the default interval".
fn parse_watch(s: &str) -> Result<std::time::Duration, String> {
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    parse_interval(s)
}

/// `30`, `2.5`, `30s`, `5m`, `1h30m`.
fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    let d = match s.trim().parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 0.0 => std::time::Duration::from_secs_f64(f),
        Ok(_) => return Err("must be a positive number of seconds".into()),
        Err(_) => crate::clock::parse_duration(s).ok_or("expected seconds, or a duration like 30s, 5m, 1h")?,
    };
    if d < std::time::Duration::from_millis(10) {
        return Err("must be at least 0.01 seconds".into());
    }
    Ok(d)
}

impl ToolArgs for Cli {
    fn common(&self) -> &Common {
        &self.common
    }
}
