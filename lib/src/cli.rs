//! Options every tool shares (`--home`, `--config`, `--now`, `--strict`, `--line-buffered`),
//! and the set-up every tool does with them, once: [`setup`] parses the command line and
//! resolves the common options into a [`Setup`] (stdout's buffering, the environment, the file
//! locations, the clock, the read options, and services.json on demand), which the tool hands
//! to its engine. The engine never sees a raw option (ripgrep's `HiArgs`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::clock::Clock;
use crate::config::{self, Config, Env, Paths};
use crate::entry::Out;
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

    /// This host's name in the records written (`host`) [default: the system's hostname]
    #[arg(long, value_name = "NAME", global = true, env = "PITCREW_HOST")]
    pub host: Option<String>,

    /// Also publish every record written to a NATS JetStream subject:
    /// nats://[user:pass@]host:port[,host:port]/SUBJECT[?replicas=N]; what cannot be sent
    /// waits in a local outbox (see docs/fleet.md)
    #[arg(long, value_name = "URL", global = true, env = "PITCREW_PUBLISH", hide_env_values = true)]
    pub publish: Option<String>,

    /// NATS credentials file (JWT and NKey seed) for nats:// inputs and --publish
    #[arg(long, value_name = "FILE", global = true, env = "PITCREW_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,

    /// File holding a NATS token
    #[arg(long, value_name = "FILE", global = true, env = "PITCREW_NATS_TOKEN_FILE")]
    pub nats_token_file: Option<PathBuf>,

    /// PEM file of CA certificates to trust for NATS over TLS (turns TLS on)
    #[arg(long, value_name = "FILE", global = true, env = "PITCREW_NATS_CA")]
    pub nats_ca: Option<PathBuf>,
}

/// A tool's command line: a clap parser with the [`Common`] options flattened in.
pub trait ToolArgs: clap::Parser {
    /// The common options.
    fn common(&self) -> &Common;

    /// Refuse a combination of options before anything is resolved (a usage error).
    fn check(&self) -> Result<()> {
        Ok(())
    }
}

/// What every tool resolves from the common options before its engine starts.
pub struct Setup {
    /// The process environment (empty values count as unset).
    pub env: Env<'static>,
    /// Home, config, state, metrics and logs.
    pub paths: Paths,
    /// The clock: fixed by `--now` (or `PITCREW_NOW`), else the system's.
    pub clock: Clock,
    /// How NDJSON input is read (`--strict`).
    pub read_opts: ReadOpts,
}

impl Setup {
    /// Load services.json; a missing file is an error only when it was named explicitly or
    /// `required` is set.
    pub fn load_config(&self, required: bool) -> Result<Config> {
        // Defaults that depend on the home (a heartbeat check's ticks dir) follow --home too.
        let home = self.paths.home.display().to_string();
        let env = self.env;
        let env_with_home = |k: &str| if k == "AGENT_OPS_HOME" { Some(home.clone()) } else { env(k) };
        Config::load(&self.paths.config, required || self.paths.config_explicit, &env_with_home)
    }
}

/// Parse a tool's arguments and resolve the common options: the preamble of every tool.
pub fn setup<C: ToolArgs>(out: &mut Out, args: Vec<OsString>) -> Result<(C, Setup)> {
    let cli = C::try_parse_from(args)?;
    cli.check()?;
    let set = cli.common().setup(out)?;
    Ok((cli, set))
}

impl Common {
    /// Resolve the common options against the process environment: stdout's line buffering,
    /// paths, clock and read options.
    pub fn setup(&self, out: &mut Out) -> Result<Setup> {
        out.set_line_buffered(self.line_buffered);
        let env: Env<'static> = &config::process_env;
        let paths = self.paths(env);
        let clock = self.clock()?;
        crate::util::host::set(self.host.clone().unwrap_or_else(crate::util::host::system));
        crate::fleet::conn::configure(crate::fleet::conn::Auth {
            creds: self.nats_creds.clone(),
            token_file: self.nats_token_file.clone(),
            ca: self.nats_ca.clone(),
        });
        if let Some(url) = &self.publish {
            let url = crate::fleet::NatsUrl::parse(url)?;
            let diag = crate::diag::Diag::stderr(out.tool_name());
            out.publish_to(crate::fleet::publish::Publisher::open(url, &paths.state, diag, "pitcrew-publish")?);
        }
        Ok(Setup { env, paths, clock, read_opts: self.read_opts() })
    }

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
}

/// Resolve `p` against `base` unless it is absolute.
pub fn under(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}
