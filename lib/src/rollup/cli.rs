//! rollup's command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use time::Date;

use crate::cli::{Common, ToolArgs};

/// Uptime, latency and SLA per service from the metrics history, in constant memory.
///
/// Reads the daily metrics files probe appends to (HOME/metrics/YYYY-MM-DD.jsonl, and the
/// .jsonl.gz that `rollup compact` makes of them) for a window of days, or the files named as
/// arguments (`-` for stdin), and writes one `uptime` record per service: the Agent Ops Kit's
/// uptime_percent, total_checks, failures and avg_latency_ms (same arithmetic, same
/// rounding), plus degraded checks, p50/p95/p99 latency, incidents (runs of consecutive down
/// checks) and the longest outage, and coverage: time no check covered (a gap longer than
/// twice the service's cadence) is unknown, never uptime. Other formats: the kit's text
/// report, CSV, Markdown, Prometheus (for node_exporter's textfile collector) and a
/// self-contained HTML status page (with its JSON twin, status.json), and SVG badges.
/// `rollup note` keeps the incident notes the page shows. `rollup incidents` tells each incident's life from the
/// metrics and the alert and restart histories.
///
/// Exit status: 0 done, 1 a service is below --sla (or prune/compact could not handle a
/// file), 2 usage or I/O error, 3 malformed lines were skipped.
#[derive(Debug, Parser)]
#[command(
    name = "rollup",
    version,
    after_help = "Examples:
  rollup                                   the last 7 days, one uptime record per service
  rollup --days 1 --format text            the kit's daily report
  rollup --days 30 --sla 99.9              mark breaches (exit 1 when there is one)
  rollup --days 30 --sla 99.9 --unknown-as down   time nobody watched counts against the SLA
  rollup --by host --quorum 2              each place's uptime, and beside it the uptime by quorum
  rollup --since 2026-11-01 --until 2026-11-30 --by day --format csv
  rollup --format prometheus --output /var/lib/node_exporter/textfile/pitcrew.prom
  rollup --format html --output /var/www/status/index.html   (and status.json beside it)
  rollup --days 30 --format badge --only api --output uptime-api.svg
  rollup --format badge-status --only api --output status-api.svg
  rollup note add api 'Database failover, writes paused 4 minutes' --at 2026-11-20T10:30:00Z
  rollup --days 7 | notify                 uptime digest to the configured sinks
  zcat old/*.jsonl.gz | rollup - --format markdown
  rollup prune --retention-days 90         delete daily files past retention
  rollup compact                           gzip the files of closed days
  rollup stale | notify                    say once when the monitor itself stopped writing
  rollup incidents --days 7 --format text  each incident's life: MTTD, MTTA, MTTR, who fixed it"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,

    /// Directory of the daily metrics files [env: AGENT_OPS_METRICS_DIR] [default: HOME/metrics]
    #[arg(long, value_name = "DIR", global = true)]
    pub metrics_dir: Option<PathBuf>,

    #[command(flatten)]
    pub window: WindowArgs,

    /// Mark services whose uptime is below PCT (before rounding) as `breach`, and exit 1
    #[arg(long, value_name = "PCT", value_parser = parse_pct)]
    pub sla: Option<f64>,

    /// How --sla counts time no check covered: left out (the check-counted uptime), as
    /// down, or as up [default: excluded]
    #[arg(long, value_enum, value_name = "HOW")]
    pub unknown_as: Option<UnknownAsArg>,

    /// Report beside each uptime the uptime outside the service's maintenance windows (the
    /// silences of `notify silence add` covering it: uptime_outside_maintenance_percent,
    /// maintenance_checks)
    #[arg(long)]
    pub exclude_maintenance: bool,

    /// Report beside each place's uptime the uptime by quorum of the services checked from
    /// several places (the hub's own metrics and each METRICS/<host>/): down only while at
    /// least K of them had a down latest record within --quorum-window (per service:
    /// `"quorum": K` in services.json)
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub quorum: Option<u32>,

    /// How recent a place's latest record must be to count for the quorum, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400 * 7))]
    pub quorum_window: u64,

    /// One record per service per day, or per host (a hub's METRICS/<host>/ directories)
    #[arg(long, value_enum, value_name = "day|host")]
    pub by: Option<By>,

    /// Output format [default: ndjson]
    #[arg(long, value_enum, global = true)]
    pub format: Option<Format>,

    /// Write the output to PATH, replacing it atomically, instead of to stdout (with --format
    /// html, status.json is written beside it)
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// The service a badge is about (--format badge and badge-status)
    #[arg(long, value_name = "NAME")]
    pub only: Option<String>,

    /// The badge's left-hand text [default: "uptime" for badge, the service's name for badge-status]
    #[arg(long, value_name = "TEXT")]
    pub label: Option<String>,

    #[command(subcommand)]
    pub command: Option<Command>,

    /// Metrics files (.jsonl or .jsonl.gz) to read instead of the metrics directory; `-` is stdin
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Which days to report on.
#[derive(Debug, Clone, Default, Args)]
pub struct WindowArgs {
    /// Today and the N-1 days before it, UTC, as the kit counts [default: 7; 90 for html]
    #[arg(long, value_name = "N", conflicts_with = "since", value_parser = clap::value_parser!(u32).range(1..=36_600))]
    pub days: Option<u32>,

    /// First day of the window, inclusive (YYYY-MM-DD)
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub since: Option<Date>,

    /// Last day of the window, inclusive (YYYY-MM-DD) [default: today, UTC]
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub until: Option<Date>,
}

impl WindowArgs {
    /// True when any window option was given.
    pub fn given(&self) -> bool {
        self.days.is_some() || self.since.is_some() || self.until.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UnknownAsArg {
    /// Judge the SLA on the checks, which cover only the known time
    Excluded,
    /// Count unknown time as down
    Down,
    /// Count unknown time as up
    Up,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum By {
    /// One record per service per day
    Day,
    /// One record per service per host: the local metrics and each host's directory that
    /// `rollup ingest` keeps (METRICS/<host>/), each with its `host`
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One `uptime` record a line (prune and compact: one `metrics_file` record per file)
    Ndjson,
    /// The Agent Ops Kit's report: `[OK] name: 99.95% uptime (1 failures in 2016 checks, avg 145.2ms)`
    Text,
    /// A header row and one row per record
    Csv,
    /// A Markdown table
    Markdown,
    /// Prometheus text format, for node_exporter's textfile collector
    Prometheus,
    /// A self-contained status page: a bar of daily uptime per service, latency, incidents, notes
    Html,
    /// The status page's JSON twin (status.json): services, state, 90 days, incidents, notes
    StatusJson,
    /// An SVG uptime badge of one service (--only NAME), shields.io's flat style
    Badge,
    /// An SVG up/down badge of one service (--only NAME) from its latest check
    BadgeStatus,
}

impl Format {
    /// The formats whose text is JSON (escaped by JSON itself) or Prometheus's.
    pub fn is_json_or_prometheus(self) -> bool {
        matches!(self, Format::Ndjson | Format::Prometheus | Format::StatusJson)
    }

    /// The status page and its twin: 90 days by default, a bar of days per service.
    pub fn has_bars(self) -> bool {
        matches!(self, Format::Html | Format::StatusJson)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Delete daily metrics files older than the retention period
    #[command(after_help = "Examples:
  rollup prune                         keep metrics_retention_days of services.json (90)
  rollup prune --retention-days 30 --dry-run --format text")]
    Prune(PruneArgs),
    /// Gzip the daily files of closed days (every day before today, UTC)
    #[command(after_help = "Examples:
  rollup compact                       2026-11-22.jsonl -> 2026-11-22.jsonl.gz, and so on
  rollup compact --dry-run --format text")]
    Compact(CompactArgs),
    /// Say when the last check of any service is too old: the monitor itself stopped
    #[command(after_help = "Examples:
  rollup stale | notify                a finding (monitoring_gap) when nothing was checked for 3 x check_interval_seconds
  rollup stale --max-age 3600 --format text")]
    Stale(StaleArgs),
    /// Every incident of the window with its life: first failure, first alert, first
    /// acknowledgement, restarts, back; MTTD, MTTA, MTTR and how each ended
    #[command(after_help = "Examples:
  rollup incidents                     the last 7 days: incident records and summaries
  rollup incidents --days 30 --format text
  rollup incidents --since 2026-11-01 --until 2026-11-30 --format csv")]
    Incidents(IncidentsArgs),
    /// A hub's fleet history: append the check records of every host (from a JetStream
    /// subject or NDJSON) to METRICS/<host>/YYYY-MM-DD.jsonl; other records pass through
    #[command(after_help = "Examples:
  rollup ingest 'nats://hub:4222/pitcrew.checks?durable=history'     what is pending, then stop
  rollup ingest --follow 'nats://hub:4222/pitcrew.checks?durable=history'
  rollup --host web1 --days 7          then: web1's uptime, as web1 computes it")]
    Ingest(IngestArgs),
    /// Incident notes for the status page: add, list, remove
    #[command(after_help = "Examples:
  rollup note add api 'Database failover, writes paused 4 minutes' --at 2026-11-20T10:30:00Z
  rollup note list --format text
  rollup note rm 3")]
    Note(NoteArgs),
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Keep reading as records arrive (a resident hub)
    #[arg(long)]
    pub follow: bool,

    /// Where the records come from: nats://host:port/SUBJECT?durable=NAME, files, `-` for stdin
    #[arg(value_name = "SOURCE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct NoteArgs {
    #[command(subcommand)]
    pub command: NoteCmd,
}

#[derive(Debug, Subcommand)]
pub enum NoteCmd {
    /// Add a note about a service (shown on the status page by day and service)
    Add {
        /// The service the note is about
        #[arg(value_name = "NAME")]
        name: String,
        /// What happened, in up to 1000 characters
        #[arg(value_name = "TEXT")]
        text: String,
        /// When it applies: an RFC 3339 time or a date (YYYY-MM-DD, its midnight UTC) [default: now]
        #[arg(long, value_name = "TIME", value_parser = super::notes::parse_at)]
        at: Option<time::OffsetDateTime>,
    },
    /// List the notes, oldest first
    List,
    /// Remove a note by its id
    Rm {
        /// The note's id (see `rollup note list`)
        #[arg(value_name = "ID")]
        id: u64,
    },
}

#[derive(Debug, Args)]
pub struct IncidentsArgs {
    #[command(flatten)]
    pub window: WindowArgs,

    /// Where the alert and restart histories are (alerts/, restarts/) [default: HOME/state]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StaleArgs {
    /// The oldest the last check may be, in seconds [default: 3 x check_interval_seconds of services.json; without it nothing is judged]
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3_162_240_000))]
    pub max_age: Option<u64>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Keep this many days [default: metrics_retention_days of services.json, else 90]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=36_600))]
    pub retention_days: Option<u32>,

    /// Say what would be deleted, delete nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Say what would be compressed, change nothing
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_date(s: &str) -> Result<Date, String> {
    crate::clock::parse_date(s).ok_or_else(|| format!("'{s}' is not a date (YYYY-MM-DD)"))
}

fn parse_pct(s: &str) -> Result<f64, String> {
    match s.trim().trim_end_matches('%').parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not a percentage between 0 and 100")),
    }
}

impl ToolArgs for Cli {
    fn common(&self) -> &Common {
        &self.common
    }
}
