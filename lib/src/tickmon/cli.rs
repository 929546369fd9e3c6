//! tickmon's command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cli::{Common, ToolArgs};

/// The Agent Tick Protocol and the heartbeat endpoint.
///
/// Every agent submits one tick a month (`ticks/YYYY-MM/<agent>.json`: its status, vitals and
/// capabilities) within the grace window at the start of the month; `check` reports every
/// active agent of the registry and opens a root-cause analysis for each agent that missed
/// its tick or reported itself critical or offline. `serve` is the live side: an
/// HTTP endpoint agents send heartbeats to, whose state `heartbeats` prints for the pipe.
///
/// Exit status: 0 all well, 1 an agent is missing, critical, offline or unhealthy, 2 usage,
/// configuration or fatal I/O error, 3 some input lines were malformed.
#[derive(Debug, Parser)]
#[command(
    name = "tickmon",
    version,
    after_help = "Examples:
  tickmon submit --agent atlas --git --push        check the vitals, write and share this month's tick
  tickmon check                                      one `tick` record per active agent
  tickmon check | notify                             open an RCA issue for every failed agent
  tickmon check --month 2026-10 --format text        the summary of one month, for people
  tickmon serve --listen 127.0.0.1:8080              the heartbeat endpoint
  curl -X POST localhost:8080/heartbeat/atlas -d '{\"metadata\":{\"load\":0.4}}'
  tickmon heartbeats | notify                        tell people about unhealthy agents"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check an agent's vitals and write its tick for the month (atomically; --git commits it)
    Submit(SubmitArgs),
    /// Report every active agent's tick for a month, with an RCA alert per failed agent
    Check(CheckArgs),
    /// Serve the heartbeat endpoint: POST /heartbeat/<agent>, GET /health, /agent/<agent>, /metrics
    Serve(ServeArgs),
    /// Print the heartbeat endpoint's saved state as `heartbeat` records
    Heartbeats(HeartbeatsArgs),
}

/// Check an agent's vitals for real and write its tick for the month.
///
/// The vitals are the gateway (a process pattern, `host:port` or a URL, from --gateway or the
/// registry's `gateway`), the home directory (it exists and a file can be created and removed
/// in it) and the config file (it exists and, if it is `.json`, parses). --vital K=V states a
/// vital instead of checking it, or adds one. With --status auto (the default) the status
/// follows from the vitals and capabilities: all true is healthy; a false extra vital or
/// capability is degraded; a false gateway, home or config vital is critical; all three false
/// is offline.
///
/// Exit status: 0 the tick is written, 1 it is written and says critical or offline, 2 it
/// could not be written, committed or pushed.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  tickmon submit --agent atlas
  tickmon submit --agent atlas --capability code=true --capability deploy=false --git --push
  tickmon submit --agent beacon --status offline --note 'host decommissioned for maintenance'
  tickmon submit --agent cinder --gateway 127.0.0.1:8642 --agent-home /srv/cinder --agent-config /srv/cinder/config.json")]
pub struct SubmitArgs {
    /// The agent's id (letters, digits, `-`, `_`, `.`)
    #[arg(long, value_name = "ID")]
    pub agent: String,

    /// The status to report, or `auto` to derive it from the vitals and capabilities
    #[arg(long, value_name = "STATUS", default_value = "auto")]
    pub status: SubmitStatus,

    /// Directory of the ticks [default: HOME/ticks]
    #[arg(long, value_name = "DIR")]
    pub ticks_dir: Option<PathBuf>,

    /// Agent registry, for the agent's name, home, config and gateway [default: HOME/config/agent-registry.json]
    #[arg(long, value_name = "PATH")]
    pub registry: Option<PathBuf>,

    /// The month the tick is for [default: the current month]
    #[arg(long, value_name = "YYYY-MM", value_parser = parse_month_arg)]
    pub month: Option<String>,

    /// State a vital instead of checking it, or add one (repeatable; V is true or false)
    #[arg(long = "vital", value_name = "K=V", value_parser = parse_flag_pair)]
    pub vitals: Vec<(String, bool)>,

    /// A capability and whether it works (repeatable)
    #[arg(long = "capability", value_name = "K=BOOL", value_parser = parse_flag_pair)]
    pub capabilities: Vec<(String, bool)>,

    /// The gateway to check: a process pattern, `host:port`, or an http(s) URL [default: the registry's]
    #[arg(long, value_name = "SPEC")]
    pub gateway: Option<String>,

    /// The agent's home directory [default: the registry's `home_dir`]
    #[arg(long, value_name = "DIR")]
    pub agent_home: Option<PathBuf>,

    /// The agent's config file [default: the registry's `config_path`]
    #[arg(long, value_name = "PATH")]
    pub agent_config: Option<PathBuf>,

    /// A note stored with the tick
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,

    /// Commit the tick in the git repository that holds the ticks directory
    #[arg(long)]
    pub git: bool,

    /// After committing, push to the remote (rebasing onto ticks other hosts pushed)
    #[arg(long, requires = "git")]
    pub push: bool,

    /// Time limit of each git command
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration_arg)]
    pub git_timeout: Duration,

    /// Time limit of each vital check
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration_arg)]
    pub vital_timeout: Duration,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    pub format: Format,
}

/// Report every active agent's tick for a month.
///
/// An agent with a tick is reported with the tick's status; one without is `pending` until
/// the grace window (the first --grace-hours of the month) ends and `missing` after. The
/// default month is the one whose window ended last: the previous month during the first
/// --grace-hours of a month, else the current one. Records on the input (files, `-` for
/// stdin) pass through unchanged, except `tick` records of registered agents for the checked
/// month with a submitted status: those count as the agent's tick, like a tick file.
///
/// Exit status: 0 no agent failed, 1 an agent is missing, critical or offline or the registry
/// has a bad entry, 2 usage or configuration error, 3 some input lines were malformed.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  tickmon check
  tickmon check --month 2026-10 --format text
  tickmon check | notify                    RCA issues through notify's Gitea sink
  tickmon check --no-rca --format text
  ssh edge-1 tickmon submit --agent edge --vital gateway_running=true | tickmon check -")]
pub struct CheckArgs {
    /// Agent registry [default: HOME/config/agent-registry.json]
    #[arg(long, value_name = "PATH")]
    pub registry: Option<PathBuf>,

    /// Directory of the ticks [default: HOME/ticks]
    #[arg(long, value_name = "DIR")]
    pub ticks_dir: Option<PathBuf>,

    /// The month to check [default: the month whose grace window ended last]
    #[arg(long, value_name = "YYYY-MM", value_parser = parse_month_arg)]
    pub month: Option<String>,

    /// Hours after the month starts by which a tick is due
    #[arg(long, value_name = "HOURS", default_value_t = 72.0, value_parser = parse_hours)]
    pub grace_hours: f64,

    /// Add an `alert` with an RCA issue (title, body, labels) for every missing, critical or
    /// offline agent (the default; the flag is kept for scripts that name it)
    #[arg(long, overrides_with = "no_rca")]
    pub rca: bool,

    /// Leave the RCA alerts out: only the `tick` records
    #[arg(long)]
    pub no_rca: bool,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    pub format: Format,

    /// NDJSON files to pass through (`-` for stdin); `tick` records in them count as ticks
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Serve the heartbeat endpoint.
///
/// Agents POST /heartbeat/<agent> (optional JSON `{"metadata": {...}}`) and POST
/// /heartbeat/<agent>/fail (`{"error": "..."}` or plain text); GET /health, /agent/<agent> and
/// /metrics (Prometheus) read the state; DELETE /agent/<agent> forgets an agent. One failure
/// makes an agent degraded, three unhealthy; silence longer than --timeout counts as a
/// failure, once per period; a heartbeat heals it. Every change is appended to a journal
/// before it is acknowledged, so an acknowledged heartbeat survives a crash of the server;
/// the journal is folded into the state file from time to time and at exit.
///
/// A `heartbeat` record is written to stdout whenever an agent's status changes. SIGTERM or
/// SIGINT stops the server after the requests in flight.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  tickmon serve
  tickmon serve --listen 0.0.0.0:8080 --token-file /etc/pitcrew/heartbeat.token
  tickmon serve --timeout 2m --fsync | notify --line-buffered")]
pub struct ServeArgs {
    /// Address to listen on; beyond loopback only with --token-file
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// State file; the journal is STATE.journal [default: HOME/state/heartbeats.json]
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,

    /// Silence after which an agent counts a failure (seconds, or 90s, 5m, 1h)
    #[arg(long, value_name = "SECONDS", default_value = "300", value_parser = parse_duration_arg)]
    pub timeout: Duration,

    /// Require `Authorization: Bearer <token>` with the token in this file
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,

    /// Largest request body accepted, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 65536, value_parser = clap::value_parser!(u64).range(64..=16 << 20))]
    pub max_body: u64,

    /// Most agents tracked at once; heartbeats from further new agents are refused
    #[arg(long, value_name = "N", default_value_t = 10000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_agents: u64,

    /// Interval agents are told to send heartbeats at (`next_heartbeat`), in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub heartbeat_interval: u64,

    /// Also fsync the journal before acknowledging (survives power loss, not only a crash)
    #[arg(long)]
    pub fsync: bool,

    /// Worker threads [default: the number of CPUs, at most 8]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=256))]
    pub threads: Option<u64>,

    /// Connections served at once (fitted to the descriptor limit); when full, the connection
    /// idle the longest is closed to make room
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,

    /// Connections one peer address may hold at once [default: a quarter of --max-connections]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections_per_peer: Option<u64>,

    /// Time a client has to send its request head (also how long an idle connection is kept)
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = parse_duration_arg)]
    pub header_timeout: Duration,
}

/// Print the heartbeat endpoint's saved state as `heartbeat` records.
///
/// Reads the state file and its journal without locking them, so it works while `serve`
/// runs. With --timeout, agents silent for longer are shown as the server would count them
/// (one failure per period), without changing anything.
///
/// With --follow it stays up: first every agent's current state, then one record whenever an
/// agent's health changes (healthy, degraded, unhealthy) or its silence passes the timeout
/// (`silent`) or ends. The state is read again when it changes (looked at every second) and
/// silence is measured by the real clock, so an agent that stops sending heartbeats is
/// reported once its timeout passes, even when the server itself is down. Each record is
/// written and flushed at once. SIGTERM, SIGINT or the reader of stdout going away end it
/// (exit 0); SIGHUP reads the state again.
///
/// Exit status: 0 no agent is unhealthy (always, with --follow, when stopped), 1 some agent is
/// unhealthy, 2 the state cannot be read.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  tickmon heartbeats
  tickmon heartbeats --timeout 5m --format text
  tickmon heartbeats --agent atlas | jq .status
  tickmon heartbeats --follow --timeout 2m | notify --follow   resident: announce a dead agent in 2 minutes")]
pub struct HeartbeatsArgs {
    /// State file of `tickmon serve` [default: HOME/state/heartbeats.json]
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,

    /// Count silence longer than this as failures, as the server would [default with
    /// --follow: 300, serve's default]
    #[arg(long, value_name = "SECONDS", value_parser = parse_duration_arg)]
    pub timeout: Option<Duration>,

    /// Stay up and write a record whenever an agent's health or silence changes
    #[arg(long)]
    pub follow: bool,

    /// Only this agent (repeatable)
    #[arg(long, value_name = "ID")]
    pub agent: Vec<String>,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One record a line
    Ndjson,
    /// A summary for people
    Text,
}

/// The status `submit` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SubmitStatus {
    /// Derived from the vitals and capabilities
    Auto,
    Healthy,
    Degraded,
    Critical,
    Offline,
}

fn parse_month_arg(s: &str) -> Result<String, String> {
    match crate::clock::parse_month(s) {
        Some(d) => Ok(crate::clock::fmt_month(d)),
        None => Err(format!("'{s}' is not a month (YYYY-MM)")),
    }
}

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    match crate::clock::parse_duration(s) {
        Some(d) if !d.is_zero() => Ok(d),
        Some(_) => Err("must be more than zero".into()),
        None => Err(format!("'{s}' is not a duration (e.g. 300, 90s, 5m, 1h)")),
    }
}

fn parse_hours(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(h) if h.is_finite() && (0.0..=24.0 * 31.0).contains(&h) => Ok(h),
        _ => Err(format!("'{s}' is not a number of hours between 0 and 744")),
    }
}

/// `K=V` where V is a boolean (true/false, yes/no, on/off, 1/0).
pub fn parse_flag_pair(s: &str) -> Result<(String, bool), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("'{s}' is not KEY=true|false"))?;
    let k = k.trim();
    if k.is_empty() || k.len() > 64 || !k.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(format!("'{k}' is not a name (letters, digits, _, -, .; at most 64)"));
    }
    let b = match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => true,
        "false" | "no" | "off" | "0" => false,
        other => return Err(format!("'{other}' is not true or false")),
    };
    Ok((k.to_string(), b))
}

impl ToolArgs for Cli {
    fn common(&self) -> &Common {
        &self.common
    }

    fn check(&self) -> crate::Result<()> {
        if matches!(self.command, Command::Serve(_)) && self.common.now.is_some() {
            return Err(crate::Error::usage("--now does not apply to serve: heartbeats are timed by the real clock"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flag_pairs() {
        assert_eq!(parse_flag_pair("code=true"), Ok(("code".into(), true)));
        assert_eq!(parse_flag_pair("gateway_running=No"), Ok(("gateway_running".into(), false)));
        assert!(parse_flag_pair("code").is_err());
        assert!(parse_flag_pair("code=maybe").is_err());
        assert!(parse_flag_pair("a b=true").is_err());
    }
}
