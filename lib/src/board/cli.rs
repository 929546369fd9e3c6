//! board's command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cli::{Common, ToolArgs};

/// The ops task board: tasks in columns (open, in-progress, in-review, done) in the Agent Ops
/// Kit's board.json, safe under any number of concurrent writers.
///
/// Every change is one read-modify-write under an exclusive lock (the kit's board.lock, so the
/// kit's own scripts and board exclude each other), with the previous version kept as
/// board.json.bak and the new one written atomically. A corrupt board.json is never replaced
/// silently: it is kept aside, the backup is used, and board says so.
///
/// Output is NDJSON `task` records (`--format text` for people), so `board stalled | notify`
/// alerts on stuck work.
///
/// Exit status: 0 done, 1 `stalled` found stalled tasks, 2 usage error, unknown task or
/// column, or a board that cannot be read or written, 3 some input lines of `ingest` were
/// malformed.
#[derive(Debug, Parser)]
#[command(
    name = "board",
    version,
    subcommand_required = true,
    arg_required_else_help = true,
    after_help = "Examples:
  board add 'Fix API timeout' --owner ops-agent --priority high --tag ops --tag urgent
  board move 1a2b in-progress            ids may be shortened while unambiguous
  board done task-1a2b3c4d
  board list --owner ops-agent --format text
  board stalled --hours 4 | notify       alert on work stuck in progress
  rollup --days 1 | board ingest         a task for every service under 95% uptime, once
  board render                           the board as columns side by side"
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) common: Common,

    /// The board file; its lock and backup live beside it [default: HOME/state/board.json]
    #[arg(long, value_name = "PATH", global = true)]
    pub(crate) board: Option<PathBuf>,

    /// Output format [default: ndjson; text for render]
    #[arg(long, value_enum, global = true)]
    pub(crate) format: Option<Format>,

    /// How long a change waits for another writer's lock before giving up (seconds, or 2m)
    #[arg(long, value_name = "DURATION", default_value = "30", value_parser = parse_timeout, global = true)]
    pub(crate) lock_timeout: Duration,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Add a task to the first column (open)
    #[command(after_help = "Examples:
  board add 'Fix API timeout' --owner ops-agent --priority high --tag ops,urgent
  board add Rotate TLS certificates --description 'expires in 10 days' --format text")]
    Add(AddArgs),

    /// Move a task to another of the board's columns
    #[command(after_help = "Examples:
  board move task-1a2b3c4d in-progress
  board move 1a2b in-review")]
    Move {
        /// The task's id, or an unambiguous start of it (with or without `task-`)
        id: String,
        /// One of the board's columns
        column: String,
    },

    /// Change a task's title, owner, priority, description, tags or column
    #[command(after_help = "Examples:
  board edit 1a2b --owner alice --priority critical
  board edit 1a2b --tag blocked --untag urgent")]
    Edit(EditArgs),

    /// Move tasks to the last column (done)
    #[command(after_help = "Examples:
  board done 1a2b 9f3c")]
    Done {
        /// Task ids or unambiguous starts of them
        #[arg(required = true)]
        ids: Vec<String>,
    },

    /// Remove tasks from the board (the records of the removed tasks are written)
    #[command(after_help = "Examples:
  board rm 1a2b")]
    Rm {
        /// Task ids or unambiguous starts of them
        #[arg(required = true)]
        ids: Vec<String>,
    },

    /// Show tasks
    #[command(after_help = "Examples:
  board show 1a2b --format text")]
    Show {
        /// Task ids or unambiguous starts of them
        #[arg(required = true)]
        ids: Vec<String>,
    },

    /// List tasks, in board order, filtered
    #[command(after_help = "Examples:
  board list --active --owner ops-agent
  board list --tag ops --tag urgent --format text
  board list --column in-progress | jq -r .title")]
    List(ListArgs),

    /// Tasks in progress that have not changed for more than H hours (exit 1 when any)
    #[command(after_help = "Examples:
  board stalled                   hours from services.json's stalled_task_hours (24)
  board stalled --hours 4 --format text
  board stalled | notify")]
    Stalled(StalledArgs),

    /// Turn uptime breaches and alerts read as NDJSON into tasks, each once
    #[command(after_help = "Examples:
  rollup --days 1 | board ingest
  rollup --days 1 --sla 99.9 | board ingest | notify
  notify < checks.ndjson | board ingest --owner oncall")]
    Ingest(IngestArgs),

    /// Draw the board: columns side by side (text) or one section a column (markdown)
    #[command(after_help = "Examples:
  board render
  board render --width 200 --active
  board render --format markdown > BOARD.md")]
    Render(RenderArgs),
}

/// Priorities a task may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Priority {
    Low,
    Medium,
    High,
    Critical,
}

impl Priority {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// The title (several words are joined with spaces)
    #[arg(required = true, value_name = "TITLE")]
    pub(crate) title: Vec<String>,

    /// Who owns it
    #[arg(long, value_name = "O", default_value = "")]
    pub(crate) owner: String,

    /// How urgent it is
    #[arg(long, value_enum, default_value_t = Priority::Medium)]
    pub(crate) priority: Priority,

    /// A tag (repeatable; commas separate several)
    #[arg(long, value_name = "T")]
    pub(crate) tag: Vec<String>,

    /// What it is about
    #[arg(long, value_name = "D", default_value = "")]
    pub(crate) description: String,

    /// Start in this column instead of the first
    #[arg(long, value_name = "C")]
    pub(crate) column: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct EditArgs {
    /// The task's id, or an unambiguous start of it
    pub(crate) id: String,

    /// New title
    #[arg(long, value_name = "TITLE")]
    pub(crate) title: Option<String>,

    /// New owner ('' for none)
    #[arg(long, value_name = "O")]
    pub(crate) owner: Option<String>,

    /// New priority
    #[arg(long, value_enum)]
    pub(crate) priority: Option<Priority>,

    /// New description ('' for none)
    #[arg(long, value_name = "D")]
    pub(crate) description: Option<String>,

    /// Add a tag (repeatable; commas separate several)
    #[arg(long, value_name = "T")]
    pub(crate) tag: Vec<String>,

    /// Remove a tag (repeatable; commas separate several)
    #[arg(long, value_name = "T")]
    pub(crate) untag: Vec<String>,

    /// Move to this column
    #[arg(long, value_name = "C")]
    pub(crate) column: Option<String>,
}

/// Which tasks to show.
#[derive(Debug, Args, Default, Clone)]
pub(crate) struct FilterArgs {
    /// Only tasks in this column (repeatable: any of them)
    #[arg(long, value_name = "C")]
    pub(crate) column: Vec<String>,

    /// Only tasks not in the last column (not done)
    #[arg(long)]
    pub(crate) active: bool,

    /// Only tasks of this owner (repeatable: any of them)
    #[arg(long, value_name = "O")]
    pub(crate) owner: Vec<String>,

    /// Only tasks with this tag (repeatable: all of them)
    #[arg(long, value_name = "T")]
    pub(crate) tag: Vec<String>,

    /// Only tasks of this priority (repeatable: any of them)
    #[arg(long, value_enum)]
    pub(crate) priority: Vec<Priority>,

    /// Only tasks whose title or description contains TEXT (ignoring case)
    #[arg(long, value_name = "TEXT")]
    pub(crate) search: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
}

#[derive(Debug, Args)]
pub(crate) struct StalledArgs {
    /// Hours without a change after which a task is stalled [default: services.json's stalled_task_hours, 24]
    #[arg(long, value_name = "H")]
    pub(crate) hours: Option<f64>,

    /// The column whose tasks can stall (repeatable) [default: in-progress]
    #[arg(long, value_name = "C")]
    pub(crate) column: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct IngestArgs {
    /// An uptime record below this percentage makes a task, as does one with status breach
    #[arg(long, value_name = "PCT", default_value_t = 95.0)]
    pub(crate) below: f64,

    /// Owner of the tasks made
    #[arg(long, value_name = "O", default_value = "ops-agent")]
    pub(crate) owner: String,

    /// Write only the tasks made; by default every input record also passes through,
    /// unchanged, each followed by the task it made (so `ingest` can sit mid-pipe)
    #[arg(long)]
    pub(crate) tasks_only: bool,

    /// Say on stderr which records made no task because the same title is already open
    #[arg(long, short)]
    pub(crate) verbose: bool,

    /// NDJSON files of uptime and alert records (`-` for stdin) [default: stdin]
    #[arg(value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct RenderArgs {
    /// Total width of the text board [default: the terminal's, or 120]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(20..))]
    pub(crate) width: Option<u16>,

    #[command(flatten)]
    pub(crate) filter: FilterArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// One `task` record a line
    Ndjson,
    /// For people: the kit's lines, aligned lists, the board as columns
    Text,
    /// Markdown (render only)
    Markdown,
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.trim().parse::<f64>()
        && (0.0..1e9).contains(&secs)
    {
        return Ok(Duration::from_secs_f64(secs));
    }
    crate::clock::parse_duration(s).ok_or_else(|| format!("'{s}' is not a duration (30, 2.5, 2m, 1h)"))
}

impl ToolArgs for Cli {
    fn common(&self) -> &Common {
        &self.common
    }
}
