//! tickmon: the Agent Tick Protocol (monthly ticks, checked against a registry, with RCA
//! issues for failures) and the heartbeat endpoint (live health from agents' heartbeats).
//!
//! * [`submit`]: check an agent's vitals ([`vitals`]) and write its tick ([`tick`]), optionally
//!   committing and pushing it ([`git`]).
//! * [`check`]: one `tick` record per active agent of the [`registry`], and [`rca`] alerts.
//! * [`serve`]: the HTTP endpoint; [`beats`] holds its state, journal and replay, which
//!   `tickmon heartbeats` reads too; [`follow`] is `heartbeats --follow`.

#![warn(missing_docs)]

pub mod beats;
pub(crate) mod check;
pub(crate) mod cli;
pub(crate) mod follow;
pub(crate) mod git;
pub(crate) mod rca;
pub mod registry;
pub mod serve;
pub(crate) mod submit;
pub mod tick;
pub(crate) mod vitals;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::CommandFactory;
use serde_json::Value;

use crate::clock::Clock;
use crate::config::Paths;
use crate::entry::{Ctx, Diag, Tool};
use crate::error::{Error, Result, Status};
use crate::ndjson::{self, Source};
use cli::{CheckArgs, Cli, Command, Format, HeartbeatsArgs, ServeArgs};
use registry::Registry;
use tick::Month;

/// The `tickmon` tool, as its binary hands it to [`crate::entry::run`].
pub const TOOL: Tool = Tool { name: "tickmon", main, command };

/// tickmon's clap definition (for completions and man pages).
pub(crate) fn command() -> clap::Command {
    Cli::command()
}

/// The `tickmon` tool.
pub(crate) fn main(ctx: &mut Ctx, args: Vec<OsString>) -> Result<Status> {
    let (cli, set) = crate::cli::setup::<Cli>(&mut ctx.out, args)?;
    let (env, paths, clock) = (set.env, set.paths, set.clock);
    let format = match &cli.command {
        Command::Submit(a) => a.format,
        Command::Check(a) => a.format,
        Command::Heartbeats(a) => a.format,
        Command::Serve(_) => Format::Ndjson,
    };
    ctx.out.escape_controls(format != Format::Ndjson);
    match &cli.command {
        Command::Submit(a) => {
            let (registry_path, explicit) = registry_path(a.registry.as_deref(), &paths);
            let registry =
                if explicit { Some(Registry::load(&registry_path)?) } else { Registry::load_optional(&registry_path)? };
            let ticks_dir = ticks_dir(a.ticks_dir.as_deref(), &paths);
            submit::run(a, registry.as_ref(), ticks_dir, &clock, env, &ctx.diag, &mut ctx.out)
        }
        Command::Check(a) => run_check(a, &paths, &clock, set.read_opts, &ctx.diag, &mut ctx.out),
        Command::Serve(a) => {
            // --now was refused by the command line's check: heartbeats are timed by the real clock.
            let settings = serve_settings(a, &paths, &ctx.diag)?;
            serve::run(settings, &mut ctx.out, &ctx.diag)?;
            Ok(Status::Ok)
        }
        Command::Heartbeats(a) if a.follow => run_follow(a, &paths, &clock, ctx),
        Command::Heartbeats(a) => run_heartbeats(a, &paths, &clock, &ctx.diag, &mut ctx.out),
    }
}

/// `--registry`, or `HOME/config/agent-registry.json`; true when named explicitly.
fn registry_path(arg: Option<&Path>, paths: &Paths) -> (PathBuf, bool) {
    match arg {
        Some(p) => (p.to_path_buf(), true),
        None => (paths.home.join("config").join("agent-registry.json"), false),
    }
}

fn ticks_dir(arg: Option<&Path>, paths: &Paths) -> PathBuf {
    arg.map(Path::to_path_buf).unwrap_or_else(|| paths.home.join("ticks"))
}

fn state_path(arg: Option<&Path>, paths: &Paths) -> PathBuf {
    arg.map(Path::to_path_buf).unwrap_or_else(|| paths.state.join("heartbeats.json"))
}

fn run_check(
    a: &CheckArgs,
    paths: &Paths,
    clock: &Clock,
    read_opts: ndjson::ReadOpts,
    diag: &Diag,
    out: &mut dyn Write,
) -> Result<Status> {
    let (registry_path, _) = registry_path(a.registry.as_deref(), paths);
    let registry = Registry::load(&registry_path)?;
    let grace = Duration::from_secs_f64(a.grace_hours * 3600.0);
    let month = match &a.month {
        Some(m) => Month::parse(m).ok_or_else(|| Error::usage(format!("--month: '{m}' is not YYYY-MM")))?,
        None => Month::default_for_check(clock.now(), grace),
    };
    let text = a.format == Format::Text;
    let mut stream = check::StreamTicks::default();
    if !a.files.is_empty() {
        ndjson::for_each_value(&Source::from_args(&a.files), read_opts, diag, |v, _| {
            if let Some(passed) = stream.offer(v, &registry, month) {
                // The human view shows tickmon's own findings only.
                if !text {
                    ndjson::pass(out, &passed)?;
                }
            }
            Ok(())
        })?;
    }
    let opts = check::Opts { month, grace, rca: !a.no_rca, text, ticks_dir: ticks_dir(a.ticks_dir.as_deref(), paths) };
    let (status, _) = check::run(&registry, &opts, stream, clock, diag, out)?;
    Ok(status)
}

fn serve_settings(a: &ServeArgs, paths: &Paths, diag: &Diag) -> Result<serve::Settings> {
    let token = match &a.token_file {
        Some(p) => Some(serve::read_token(p, diag)?),
        None => None,
    };
    let listen = serve::listen_addr(&a.listen, token.is_some())?;
    let threads = match a.threads {
        Some(n) => n as usize,
        None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).min(8),
    };
    Ok(serve::Settings {
        listen,
        state: state_path(a.state.as_deref(), paths),
        timeout: a.timeout,
        token,
        max_body: a.max_body as usize,
        max_agents: a.max_agents as usize,
        heartbeat_interval: a.heartbeat_interval,
        fsync: a.fsync,
        threads,
        max_connections: a.max_connections as usize,
        max_connections_per_peer: a
            .max_connections_per_peer
            .map(|n| n as usize)
            .unwrap_or((a.max_connections as usize / 4).max(1)),
        header_timeout: a.header_timeout,
    })
}

/// Serve's default silence timeout, the default of `heartbeats --follow`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

fn run_follow(a: &HeartbeatsArgs, paths: &Paths, clock: &Clock, ctx: &mut Ctx) -> Result<Status> {
    if a.format != Format::Ndjson {
        return Err(Error::usage("--follow writes records: use it with --format ndjson"));
    }
    check_agent_ids(&a.agent)?;
    // Before any other thread exists, so that every thread has the signals blocked.
    let (stop, _keep) = crate::util::stop::events()?;
    ctx.out.set_line_buffered(true);
    let opts = follow::Opts {
        state: state_path(a.state.as_deref(), paths),
        timeout: a.timeout.unwrap_or(DEFAULT_TIMEOUT).as_secs_f64(),
        agents: a.agent.clone(),
    };
    follow::run(&opts, &stop, clock, &ctx.diag, &mut ctx.out)
}

fn check_agent_ids(ids: &[String]) -> Result<()> {
    for id in ids {
        if !crate::util::is_safe_id(id) {
            return Err(Error::usage(format!("--agent: '{id}' is not a valid agent id")));
        }
    }
    Ok(())
}

fn run_heartbeats(
    a: &HeartbeatsArgs,
    paths: &Paths,
    clock: &Clock,
    diag: &Diag,
    out: &mut dyn Write,
) -> Result<Status> {
    check_agent_ids(&a.agent)?;
    let state = state_path(a.state.as_deref(), paths);
    let loaded = beats::load(&state)?;
    for w in &loaded.warnings {
        diag.warn(w);
    }
    let snap = match a.timeout {
        Some(t) => beats::with_timeouts(&loaded.snapshot, clock.unix(), t.as_secs_f64()),
        None => loaded.snapshot,
    };
    let stamp = clock.stamp();
    let agents: Vec<&beats::AgentState> =
        snap.agents.values().filter(|s| a.agent.is_empty() || a.agent.contains(&s.agent_id)).collect();
    for id in &a.agent {
        if !snap.agents.contains_key(id) {
            diag.warn(format_args!("{}: no heartbeat from agent '{id}'", state.display()));
        }
    }
    let now = clock.unix();
    // The server was hard to reach: said once, before the agents (their silence then says
    // little about them, and the server did not count it).
    let pressure = snap.pressure.as_ref().filter(|p| !p.over);
    match (pressure, a.format) {
        (Some(p), Format::Ndjson) => {
            ndjson::write(out, &serve::pressure_finding(p, &state, &stamp))?;
        }
        (Some(p), Format::Text) => writeln!(out, "NOTE: {}", p.describe())?,
        (None, _) => {}
    }
    match a.format {
        Format::Ndjson => {
            for s in &agents {
                let mut rec = s.record(&stamp);
                // Seconds since the last heartbeat: a failure (reported, or counted for silence by
                // the server or by --timeout) is no sign of life and does not restart it.
                rec.insert("silent_s".into(), Value::from((now - s.last_heartbeat).max(0.0).round() as u64));
                ndjson::write(out, &Value::Object(rec))?;
            }
        }
        Format::Text => {
            let w = agents.iter().map(|s| s.agent_id.len()).max().unwrap_or(5).max(5);
            writeln!(
                out,
                "{:<w$}  {:<9}  {:>8}  {:<24}  {:>10}  ERROR",
                "AGENT", "STATUS", "FAILURES", "LAST HEARTBEAT", "HEARTBEATS"
            )?;
            for s in &agents {
                let line = format!(
                    "{:<w$}  {:<9}  {:>8}  {:<24}  {:>10}  {}",
                    s.agent_id,
                    s.status.as_str(),
                    s.consecutive_failures,
                    beats::ts(s.last_heartbeat),
                    s.heartbeats,
                    s.error_message.as_deref().unwrap_or("")
                );
                writeln!(out, "{}", line.trim_end())?;
            }
        }
    }
    let unhealthy = agents.iter().any(|s| s.status == beats::Health::Unhealthy);
    let missing = a.agent.iter().any(|id| !snap.agents.contains_key(id));
    Ok(Status::failures_if(unhealthy || missing))
}
