//! recover's command line.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::cli::{Common, ToolArgs};

/// Restart what failed, verify that it came back, and never make things worse.
///
/// Reads check records (probe's output), passes every record through unchanged, and when the
/// input ends, restarts each down service that has a restart_command in services.json: the
/// command runs through `sh -c` in its own process group under restart_timeout_seconds, then
/// the service's check runs again after verify_delay_seconds. For each service it acted on,
/// recover writes the fresh `check` record and a `recovery` record (recovered, failed,
/// cooldown, max_attempts or skipped). Parents are restarted before the services that
/// depend on them, and a service whose dependency is still down is not restarted.
///
/// Cooldowns, attempt counts and recent restarts live in STATE_DIR/recovery.json, locked for
/// the run and rewritten atomically. Commands come only from services.json, never from the
/// input. Every action is logged to HOME/logs/recovery.log [env: AGENT_OPS_LOG_DIR].
///
/// With --follow it stays up: every record is passed on at once, and the services that failed
/// within a settle window (--settle) are acted on as above; a service acted on is left alone
/// while its cooldown holds. SIGTERM, SIGINT or SIGHUP finish a restart in progress, then exit.
///
/// Exit status: 0 everything seen is up or was recovered (always, with --follow), 1 something
/// is still down, 2 usage, config or state error, 3 some input lines were malformed.
#[derive(Debug, Parser)]
#[command(
    name = "recover",
    version,
    after_help = "Examples:
  probe | recover | notify               check, restart what is down, tell people
  probe | recover --format text          the same, for people
  probe | recover --dry-run              say what would be restarted; run nothing
  recover --config services.json checks.ndjson
  recover --reset api                    forget api's attempts after fixing it by hand
  probe --watch | recover --follow | notify --follow
                                         resident: restart each failure as it is seen"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,

    /// Keep the restart ledger (recovery.json) in DIR [default: HOME/state]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Say what would be done: run no command, change no file
    #[arg(long)]
    pub dry_run: bool,

    /// Forget the named service's attempts and restart history, then exit (repeatable)
    #[arg(long, value_name = "NAME", conflicts_with_all = ["dry_run", "files", "follow"])]
    pub reset: Vec<String>,

    /// Stay up: pass every record on at once and act on down records as they arrive, each
    /// failure after a settle window (see --settle); ends on SIGTERM, SIGINT or SIGHUP (after
    /// finishing a restart in progress), at the end of the input, or when stdout is closed
    #[arg(long)]
    pub follow: bool,

    /// With --follow: after the first failure, wait this long for what fails with it, then
    /// restart them parents first
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0, requires = "follow", value_parser = parse_settle)]
    pub settle: f64,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    pub format: Format,

    /// NDJSON files of check records (`-` for stdin) [default: stdin]
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Every input record, then the fresh `check` and a `recovery` record per action
    Ndjson,
    /// `[FAIL] name - detail` lines for checks, `[RECOVERED] name - ...` per action, a summary
    Text,
}

impl ToolArgs for Cli {
    fn common(&self) -> &Common {
        &self.common
    }
}

fn parse_settle(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not a number of seconds from 0 to 3600")),
    }
}
