//! probe's command line.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::cli::{Common, ToolArgs};

/// Check every configured service at once and write one `check` record per service.
///
/// Services come from services.json (the Agent Ops Kit schema: url, port, process, plus disk,
/// tls, command and heartbeat checks) and from NDJSON service lines given with --services or
/// as file arguments. Every check runs concurrently under its own timeout; records come out
/// in config order and are appended to HOME/metrics/YYYY-MM-DD.jsonl.
///
/// Exit status: 0 all up (or degraded), 1 something is down or a service entry is invalid,
/// 2 usage or config error, 3 some service lines were malformed.
#[derive(Debug, Parser)]
#[command(
    name = "probe",
    version,
    after_help = "Examples:
  probe                                  check everything in ~/.agent-ops/config/services.json
  probe --config examples/services.json --format text
  probe --only api --only db --no-metrics
  probe | recover | notify               check, heal, tell people
  probe --watch --only api               check api every interval_seconds until SIGTERM
  echo '{\"name\":\"web\",\"type\":\"port\",\"port\":80}' | probe --services - --no-metrics"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,

    /// Append records to this directory's daily files [env: AGENT_OPS_METRICS_DIR] [default: HOME/metrics]
    #[arg(long, value_name = "DIR")]
    pub metrics_dir: Option<PathBuf>,

    /// Do not append to the metrics files
    #[arg(long, conflicts_with = "metrics_dir")]
    pub no_metrics: bool,

    /// Run at most N checks at the same time (fewer when the open-files limit leaves room
    /// for fewer sockets)
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub concurrency: u32,

    /// Check only the named service (repeatable)
    #[arg(long, value_name = "NAME")]
    pub only: Vec<String>,

    /// Read extra services as NDJSON lines from FILE (`-` for stdin)
    #[arg(long, value_name = "FILE|-")]
    pub services: Vec<PathBuf>,

    /// Stay up: check each service every interval_seconds (its own, else services.json's
    /// top-level interval_seconds or check_interval_seconds, else 60; at least 1), write each
    /// record as it completes (with late_ms, and skipped when a check outlasted its
    /// interval), and read services.json again when it changes or on SIGHUP. SIGTERM or
    /// SIGINT ends it, exit 0
    #[arg(long)]
    pub watch: bool,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    pub format: Format,

    /// NDJSON files of service lines (`-` for stdin)
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One `check` record a line
    Ndjson,
    /// The Agent Ops Kit's `[OK] name - detail (12ms)` lines and a summary
    Text,
}

impl ToolArgs for Cli {
    fn common(&self) -> &Common {
        &self.common
    }
}
