//! Options every tool shares (`--home`, `--config`, `--now`, `--strict`, `--line-buffered`),
//! and how they become paths, a clock and read options.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::clock::Clock;
use crate::config::{Config, Env, Paths};
use crate::error::Result;
use crate::ndjson::ReadOpts;

/// The common options, flattened into every tool's command line.
#[derive(Debug, Clone, Default, Args)]
pub struct Common {
    /// Home of config, state, metrics and logs [env: AGENT_OPS_HOME] [default: ~/.agent-ops]
    #[arg(long, value_name = "DIR", global = true)]
    pub home: Option<PathBuf>,

    /// services.json to read [env: AGENT_OPS_CONFIG] [default: HOME/config/services.json]
    #[arg(long, value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,

    /// Take this as the current time (RFC 3339), for tests and replays; from the environment,
    /// it reaches every tool of a pipeline or a script (the orchestrator, the cron jobs)
    #[arg(long, value_name = "RFC3339", global = true, env = "PITCREW_NOW")]
    pub now: Option<String>,

    /// Make the first malformed input line fatal (exit 2) instead of skipping it (exit 3)
    #[arg(long, global = true)]
    pub strict: bool,

    /// Flush every output line (the default when stdout is a terminal)
    #[arg(long, global = true)]
    pub line_buffered: bool,
}

impl Common {
    /// Resolve file locations against the environment.
    pub fn paths(&self, env: Env<'_>) -> Paths {
        Paths::resolve(self.home.as_deref(), self.config.as_deref(), env)
    }

    /// The clock: fixed by `--now`, else the system clock.
    pub fn clock(&self) -> Result<Clock> {
        Clock::from_arg(self.now.as_deref())
    }

    /// NDJSON read options.
    pub fn read_opts(&self) -> ReadOpts {
        ReadOpts::strict(self.strict)
    }

    /// Load services.json; a missing file is an error only when it was named explicitly or
    /// `required` is set.
    pub fn load_config(&self, paths: &Paths, required: bool, env: Env<'_>) -> Result<Config> {
        // Defaults that depend on the home (a heartbeat check's ticks dir) follow --home too.
        let home = paths.home.display().to_string();
        let env_with_home = |k: &str| if k == "AGENT_OPS_HOME" { Some(home.clone()) } else { env(k) };
        Config::load(&paths.config, required || paths.config_explicit, &env_with_home)
    }
}

/// Resolve `p` against `base` unless it is absolute.
pub fn under(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}
