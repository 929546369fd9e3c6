#![warn(missing_docs)]
//! rollup: uptime, latency and SLA per service from the metrics history, in constant memory.
//!
//! The engine (`run`) streams the daily files of a window (or named files, or stdin) line
//! by line through a [`scan::Scanner`], which keeps a fixed amount of state per service
//! (`stats::ServiceStats`: the Agent Ops Kit's counters, a log-bucketed latency histogram, the most
//! recent incidents, the spacings of its checks for `coverage`), then renders one `uptime`
//! record per service (`report`), the status page (`html`) and its JSON twin (`status`), or
//! a badge (`badge`); `notes` keeps the incident notes the page shows. Files are read on as many threads as there are cores (up to four), each
//! into its own scanner, and the scanners are merged in file order, which joins an outage
//! that spans two files into one incident. With `--by day` over the metrics directory, each day is written and
//! dropped as soon as its file is read. `prune` and `compact` keep the metrics and the
//! histories in shape ([`crate::store::daily`]); `stale` says when the monitor itself went
//! silent (`stale`); `incidents` joins the metrics with the histories (`incidents`).

pub(crate) mod badge;
pub(crate) mod cli;
pub(crate) mod coverage;
pub mod fast;
pub(crate) mod html;
pub(crate) mod incidents;
pub(crate) mod ingest;
pub(crate) mod maintenance;
pub(crate) mod notes;
pub(crate) mod quorum;
pub(crate) mod report;
pub mod scan;
pub(crate) mod stale;
pub(crate) mod stats;
pub(crate) mod status;

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use time::Date;

use self::cli::{By, Cli, Command, Format, NoteCmd, UnknownAsArg, WindowArgs};
use self::report::{MonitoringGap, Scope, Style, UnknownAs, Uptime, Writer};
use self::scan::{Agg, Origin, ScanOpts, Scanner, day_date, day_number};
use crate::clock::{self, Clock};
use crate::entry::{Ctx, Diag, Tool};
use crate::error::{Error, Result, Status};
use crate::ndjson::{self, Source};
use crate::store::{self, daily};

/// The metrics are read 256 KiB at a time.
pub const READ_BLOCK: usize = 256 * 1024;

/// The window when none is given: the kit's 7 days, or 90 for the status page's bars.
pub(crate) const DEFAULT_DAYS: u32 = 7;
pub(crate) const DEFAULT_HTML_DAYS: u32 = 90;

/// The `rollup` tool, as its binary hands it to [`crate::entry::run`].
pub const TOOL: Tool = Tool { name: "rollup", main, command };

/// rollup's clap definition (for completions and man pages).
pub fn command() -> clap::Command {
    Cli::command()
}

/// The `rollup` tool.
pub fn main(ctx: &mut Ctx, args: Vec<OsString>) -> Result<Status> {
    let (cli, set) = crate::cli::setup::<Cli>(&mut ctx.out, args)?;
    let metrics_dir = cli.metrics_dir.clone().unwrap_or_else(|| set.paths.metrics.clone());
    if let Some(Command::Ingest(a)) = &cli.command {
        let (clock, opts) = (set.clock, set.read_opts);
        return ingest::run(&a.files, a.follow, &metrics_dir, &clock, opts, &ctx.diag, &mut ctx.out);
    }
    // A hub keeps each host's metrics in METRICS/<host>/ (rollup ingest): --host reads them.
    let root = metrics_dir;
    let metrics_dir = ingest::report_dir(&root, cli.common.host.as_deref())?;
    let format = cli.format.unwrap_or(Format::Ndjson);
    ctx.out.escape_controls(!format.is_json_or_prometheus());
    if cli.command.is_some() {
        refuse_report_options(&cli)?;
    }
    let mut run = Subcommand { ctx, set: &set, metrics_dir: &metrics_dir, root: &root, format };
    match &cli.command {
        Some(Command::Prune(a)) => run.prune(a),
        Some(Command::Incidents(a)) => run.incidents(a, cli.common.strict),
        Some(Command::Stale(a)) => run.stale(a),
        Some(Command::Compact(a)) => run.compact(a),
        Some(Command::Note(a)) => run.note(&a.command),
        Some(Command::Ingest(_)) => Ok(Status::Ok),
        None => run.report(&cli),
    }
}

/// The report's options are refused by the subcommands, which would not use them.
fn refuse_report_options(cli: &Cli) -> Result<()> {
    let report_only = [
        (cli.window.given(), "--days/--since/--until"),
        (cli.sla.is_some(), "--sla"),
        (cli.by.is_some(), "--by"),
        (cli.output.is_some(), "--output"),
        (!cli.files.is_empty(), "FILE arguments"),
        (cli.only.is_some(), "--only"),
        (cli.label.is_some(), "--label"),
        (cli.quorum.is_some(), "--quorum"),
    ];
    match report_only.iter().find(|(given, _)| *given) {
        Some((_, what)) => Err(Error::usage(format!(
            "{what}: not used by prune, compact and stale (incidents takes its window after its name: rollup incidents --days 7)"
        ))),
        None => Ok(()),
    }
}

/// One run of the tool, set up: what each subcommand (and the report) needs.
struct Subcommand<'a> {
    ctx: &'a mut Ctx,
    set: &'a crate::cli::Setup,
    metrics_dir: &'a Path,
    /// The metrics directory before `--host`: the hub's own metrics and each host's.
    root: &'a Path,
    format: Format,
}

impl Subcommand<'_> {
    /// prune and compact report in ndjson or text.
    fn maintenance_style(&self) -> Result<daily::Report> {
        match self.format {
            Format::Ndjson => Ok(daily::Report::Ndjson),
            Format::Text => Ok(daily::Report::Text),
            other => Err(Error::usage(format!(
                "--format {}: prune, compact, stale and note write ndjson or text",
                clap::ValueEnum::to_possible_value(&other).map(|v| v.get_name().to_string()).unwrap_or_default()
            ))),
        }
    }

    fn prune(&mut self, a: &cli::PruneArgs) -> Result<Status> {
        let style = self.maintenance_style()?;
        let days = match a.retention_days {
            Some(n) => n,
            None => {
                let cfg = self.set.load_config(false)?;
                u32::try_from(cfg.metrics_retention_days.max(1)).unwrap_or(u32::MAX)
            }
        };
        let now = self.set.clock.now();
        let mut status = Status::Ok;
        for (dir, family) in kept_dirs(self.metrics_dir, &self.set.paths.state) {
            let st = daily::prune(&dir, family, days, now, a.dry_run, style, &mut self.ctx.out, &self.ctx.diag)?;
            status = status.worst(st);
        }
        Ok(status)
    }

    fn compact(&mut self, a: &cli::CompactArgs) -> Result<Status> {
        let style = self.maintenance_style()?;
        let now = self.set.clock.now();
        let mut status = Status::Ok;
        for (dir, family) in kept_dirs(self.metrics_dir, &self.set.paths.state) {
            let st =
                daily::compact(&dir, family, now.date(), now, a.dry_run, style, &mut self.ctx.out, &self.ctx.diag)?;
            status = status.worst(st);
        }
        Ok(status)
    }

    fn incidents(&mut self, a: &cli::IncidentsArgs, strict: bool) -> Result<Status> {
        if !matches!(self.format, Format::Ndjson | Format::Text | Format::Csv | Format::Markdown) {
            return Err(Error::usage("--format: incidents are written as ndjson, text, csv or markdown"));
        }
        let clock = self.set.clock;
        let (from, to, days, rolling) = resolve_window(&a.window, clock.now().date(), DEFAULT_DAYS)?;
        let plan = incidents::Plan {
            metrics: self.metrics_dir.to_path_buf(),
            state: a.state_dir.clone().unwrap_or_else(|| self.set.paths.state.clone()),
            from,
            to,
            scope: Scope { window_days: days, rolling, from: Some(from), to: Some(to), day: None },
            format: self.format,
            strict,
            max_line: ndjson::DEFAULT_MAX_LINE,
        };
        incidents::run(&plan, &mut self.ctx.out, &self.ctx.diag, &clock)
    }

    fn stale(&mut self, a: &cli::StaleArgs) -> Result<Status> {
        let text = self.maintenance_style()? == daily::Report::Text;
        // Without --max-age: three times the schedule services.json gives; without one,
        // a silence cannot be told from a schedule, and nothing is judged.
        let max_age = match a.max_age {
            Some(s) => Some(s),
            None => match self.set.load_config(false).and_then(|c| c.interval_seconds("").map_err(Error::config)) {
                Ok(schedule) => schedule.map(|s| (s * 3.0).ceil().min(u64::MAX as f64) as u64),
                Err(e) => {
                    self.ctx.diag.warn(format_args!("{e}; no schedule to judge the last check by"));
                    None
                }
            },
        };
        let out = &mut self.ctx.out;
        match max_age {
            Some(max_age) => stale::stale(self.metrics_dir, max_age, text, out, &self.ctx.diag, &self.set.clock),
            None => {
                if text {
                    writeln!(
                        out,
                        "No schedule to judge by: set check_interval_seconds in services.json, or give --max-age."
                    )?;
                }
                Ok(Status::Ok)
            }
        }
    }

    /// `note add`, `note list`, `note rm`: one `note` record each (a line of text with
    /// `--format text`).
    fn note(&mut self, cmd: &NoteCmd) -> Result<Status> {
        let text = self.maintenance_style()? == daily::Report::Text;
        let path = notes::path(&self.set.paths.state);
        let now = self.set.clock.now();
        let shown = match cmd {
            NoteCmd::Add { name, text, at } => vec![notes::add(&path, name, text, at.unwrap_or(now), now)?],
            NoteCmd::List => notes::load(&path)?,
            NoteCmd::Rm { id } => vec![notes::remove(&path, *id)?],
        };
        let out = &mut self.ctx.out;
        for n in &shown {
            if text {
                writeln!(out, "#{} {} {}: {}", n.id, n.at, n.name, n.text.replace('\n', "\n    "))?;
            } else {
                ndjson::write(out, &n.record(now))?;
            }
        }
        if text && shown.is_empty() {
            writeln!(out, "No notes.")?;
        }
        Ok(Status::Ok)
    }

    /// The report: to stdout, or written atomically to `--output`.
    fn report(&mut self, cli: &Cli) -> Result<Status> {
        if cli.by == Some(By::Host) {
            return self.report_by_host(cli);
        }
        let clock = self.set.clock;
        let mut plan = Plan::from_cli(cli, self.format, self.metrics_dir, &clock)?;
        if matches!(self.format, Format::Html | Format::StatusJson) {
            plan.notes = match notes::load(&notes::path(&self.set.paths.state)) {
                Ok(n) => n,
                Err(e) => {
                    self.ctx.diag.warn(format_args!("{e}; the page is drawn without notes"));
                    Vec::new()
                }
            };
        }
        if cli.exclude_maintenance {
            let (from, to) = match plan.window {
                Some((f, t)) => (f.midnight().assume_utc(), t.next_day().unwrap_or(t).midnight().assume_utc()),
                None => (clock.now() - time::Duration::days(400), clock.now() + time::Duration::days(1)),
            };
            let m = maintenance::Maint::load(&self.set.paths.state, from, to, &self.ctx.diag)?;
            plan.maintenance = Some(std::sync::Arc::new(m));
        }
        let config = self.set.load_config(false);
        plan.cadences = match &config {
            Ok(cfg) => Cadences::of(cfg, &self.ctx.diag),
            Err(e) => {
                self.ctx.diag.warn(format_args!("{e}; cadences are taken from the checks"));
                Cadences::default()
            }
        };
        let report_dir = self.metrics_dir.to_path_buf();
        plan.quorum = self.quorum_figures(cli, config.as_ref().ok(), &plan, &[report_dir])?;
        let Some(path) = &cli.output else { return run(&plan, &mut self.ctx.out, &self.ctx.diag, &clock) };
        let mut buf = Vec::new();
        let status = run(&plan, &mut buf, &self.ctx.diag, &clock)?;
        if !self.format.is_json_or_prometheus() {
            buf = crate::util::text::Escaper::default().escape(&buf).into_owned();
        }
        store::atomic_write(path, &buf)?;
        Ok(status)
    }
}

impl Subcommand<'_> {
    /// `--by host`: the report of each host's metrics, each record with its `host`: the
    /// local directory first (this host), then each `METRICS/<host>/` in name order.
    fn report_by_host(&mut self, cli: &Cli) -> Result<Status> {
        if self.format != Format::Ndjson || cli.output.is_some() || !cli.files.is_empty() {
            return Err(Error::usage("--by host: ndjson to stdout, from the metrics directory"));
        }
        let local = crate::util::host::get().unwrap_or("").to_string();
        let dirs = host_dirs(self.metrics_dir, local);
        let clock = self.set.clock;
        let mut status = Status::Ok;
        let config = self.set.load_config(false);
        let reported: Vec<PathBuf> = dirs.iter().map(|(_, d)| d.clone()).collect();
        let first = Plan::from_cli(cli, self.format, self.metrics_dir, &clock)?;
        let figures = self.quorum_figures(cli, config.as_ref().ok(), &first, &reported)?;
        for (host, dir) in dirs {
            let mut plan = Plan::from_cli(cli, self.format, &dir, &clock)?;
            plan.cadences = match &config {
                Ok(cfg) => Cadences::of(cfg, &self.ctx.diag),
                Err(_) => Cadences::default(),
            };
            plan.quorum = figures.clone();
            let mut buf = Vec::new();
            status = status.worst(run(&plan, &mut buf, &self.ctx.diag, &clock)?);
            for line in buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let mut v = ndjson::parse_object(line).map_err(Error::other)?;
                if let serde_json::Value::Object(m) = &mut v {
                    m.insert("host".into(), serde_json::Value::String(host.clone()));
                }
                ndjson::pass(&mut self.ctx.out, &v)?;
            }
        }
        Ok(status)
    }
}

impl Subcommand<'_> {
    /// The uptime by quorum of the services with a quorum (`--quorum K`, or `"quorum": K` in
    /// services.json) that several places checked: the hub's own metrics and each
    /// `METRICS/<host>/` are the places. `reported`: the directories whose report is written
    /// (their malformed lines are said by it). `None` when no service has a quorum, and
    /// when services.json alone asks for one but files are named or `--by day` is given.
    fn quorum_figures(
        &self,
        cli: &Cli,
        config: Option<&crate::config::Config>,
        plan: &Plan,
        reported: &[PathBuf],
    ) -> Result<Option<std::sync::Arc<QuorumFigures>>> {
        let per_service = match config {
            Some(cfg) => cfg.quorums()?,
            None => Default::default(),
        };
        let rules = quorum::Rules { all: cli.quorum.map(|k| k as usize), per_service, window_s: cli.quorum_window };
        if !rules.any() {
            return Ok(None);
        }
        let unusable = if !cli.files.is_empty() {
            Some("FILE arguments (the places are the metrics directory and each METRICS/<host>/)")
        } else if cli.by == Some(By::Day) {
            Some("--by day")
        } else {
            None
        };
        match (unusable, cli.quorum) {
            (Some(what), Some(_)) => return Err(Error::usage(format!("--quorum: not with {what}"))),
            (Some(_), None) => return Ok(None),
            (None, _) => {}
        }
        // The hub's own metrics are this host's; under `--host NAME` of a host the hub keeps
        // a directory for, they are the system's (or simply `local`).
        let taken = |h: &str| h.is_empty() || self.root.join(h).is_dir();
        let local = [crate::util::host::get().unwrap_or("").to_string(), crate::util::host::system()]
            .into_iter()
            .find(|h| !taken(h))
            .unwrap_or_else(|| "local".to_string());
        let places: Vec<quorum::Place> = host_dirs(self.root, local)
            .into_iter()
            .map(|(name, dir)| {
                let say_rejects = !reported.contains(&dir);
                quorum::Place { name, dir, say_rejects }
            })
            .collect();
        if places.len() < 2 {
            // A host's own metrics, no other place: nothing is checked from several.
            return Ok(Some(std::sync::Arc::new(QuorumFigures::default())));
        }
        let now = self.set.clock.now();
        let now_ms = now.unix_timestamp() * 1000 + i64::from(now.millisecond());
        let by_name = quorum::figures(&places, &rules, plan, now_ms, &self.ctx.diag)?;
        Ok(Some(std::sync::Arc::new(QuorumFigures { by_name })))
    }
}

/// The uptime by quorum of the services several places checked, by name.
#[derive(Debug, Default)]
pub(crate) struct QuorumFigures {
    pub by_name: std::collections::HashMap<String, quorum::Figure>,
}

/// The places of a hub: its own metrics directory (named `local`, this host), then each
/// `METRICS/<host>/` that `rollup ingest` keeps, in name order.
fn host_dirs(metrics: &Path, local: String) -> Vec<(String, PathBuf)> {
    let mut dirs = vec![(local, metrics.to_path_buf())];
    let mut hosts: Vec<(String, PathBuf)> = match std::fs::read_dir(metrics) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok().map(|n| (n, e.path())))
            .filter(|(n, _)| ingest::host_dir_ok(n))
            .collect(),
        Err(_) => Vec::new(),
    };
    hosts.sort();
    dirs.extend(hosts);
    dirs
}

/// The directories of daily files prune and compact keep in shape: the metrics, and the
/// alert and restart histories under the state directory when they exist.
fn kept_dirs(metrics: &Path, state: &Path) -> Vec<(PathBuf, daily::Family)> {
    let mut v = vec![(metrics.to_path_buf(), daily::METRICS)];
    for (dir, family) in [
        (crate::history::alerts_dir(state), crate::history::ALERTS),
        (crate::history::restarts_dir(state), crate::history::RESTARTS),
    ] {
        if dir.is_dir() {
            v.push((dir, family));
        }
    }
    v
}

/// Where the lines come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Inputs {
    /// The daily files of a metrics directory within the window.
    Dir(PathBuf),
    /// Named files and stdin, in the order given (by date when all are daily files).
    Sources(Vec<Source>),
}

/// A validated report run.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub inputs: Inputs,
    /// First and last day taken (inclusive): always for a directory, when asked for files.
    pub window: Option<(Date, Date)>,
    /// How the window was asked for.
    pub scope: Scope,
    pub format: Format,
    pub by_day: bool,
    pub sla: Option<f64>,
    pub unknown_as: UnknownAs,
    /// Configured cadences (services.json's `interval_seconds`).
    pub cadences: Cadences,
    pub strict: bool,
    pub max_line: usize,
    /// The service of a badge, and its label.
    pub only: Option<String>,
    pub label: Option<String>,
    /// The incident notes the page shows (all of them; the page keeps those of its window).
    pub notes: Vec<notes::Note>,
    /// Where the page's JSON twin goes (`--format html --output`).
    pub twin: Option<PathBuf>,
    /// With `--exclude-maintenance`: the maintenance windows.
    pub maintenance: Option<std::sync::Arc<maintenance::Maint>>,
    /// With a quorum: the uptime by quorum of the services several places checked.
    pub quorum: Option<std::sync::Arc<QuorumFigures>>,
}

/// The cadences services.json configures, in coverage grid units: per service, and for the
/// others (the top-level `interval_seconds` or `check_interval_seconds`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Cadences {
    pub by_name: std::collections::HashMap<String, u64>,
    pub default: Option<u64>,
}

impl Cadences {
    /// Read them from the configuration; a value that is no interval is said once and the
    /// service's cadence is then taken from its checks.
    pub(crate) fn of(cfg: &crate::config::Config, diag: &Diag) -> Cadences {
        let mut c = Cadences::default();
        let read = |name: &str| match cfg.interval_seconds(name) {
            Ok(v) => v.and_then(coverage::cadence_of_seconds),
            Err(e) => {
                diag.warn(format_args!("{e}; the cadence is taken from the checks"));
                None
            }
        };
        c.default = read("");
        for s in &cfg.services {
            if let Some(u) = read(&s.name) {
                c.by_name.insert(s.name.clone(), u);
            }
        }
        c
    }

    fn get(&self, name: &str) -> Option<u64> {
        self.by_name.get(name).copied().or(self.default)
    }
}

/// What the records are judged with, and the span (ms) of the window they cover.
struct Judge<'a> {
    plan: &'a Plan,
    span: Option<(i64, i64)>,
}

/// The window of `w` (inclusive first and last day), with `--days` and whether it ends today.
pub(crate) fn resolve_window(
    w: &WindowArgs,
    today: Date,
    default_days: u32,
) -> Result<(Date, Date, Option<u32>, bool)> {
    let to = w.until.unwrap_or(today);
    match w.since {
        Some(from) if from > to => {
            Err(Error::usage(format!("--since {} is after --until {}", clock::fmt_date(from), clock::fmt_date(to))))
        }
        Some(from) => Ok((from, to, None, false)),
        None => {
            let n = w.days.unwrap_or(default_days);
            let from = to
                .checked_sub(time::Duration::days(i64::from(n) - 1))
                .ok_or_else(|| Error::usage(format!("--days {n}: reaches before the calendar starts")))?;
            Ok((from, to, Some(n), w.until.is_none()))
        }
    }
}

impl Plan {
    pub(crate) fn from_cli(cli: &Cli, format: Format, metrics_dir: &Path, clock: &Clock) -> Result<Plan> {
        let by_day = cli.by == Some(By::Day);
        let badge = matches!(format, Format::Badge | Format::BadgeStatus);
        if by_day && !matches!(format, Format::Ndjson | Format::Text | Format::Csv | Format::Markdown) {
            return Err(Error::usage(
                "--by day: not available with --format html, status-json, prometheus, badge or badge-status",
            ));
        }
        match (badge, &cli.only, &cli.label) {
            (true, None, _) => return Err(Error::usage("--format badge and badge-status need --only NAME")),
            (false, Some(_), _) => return Err(Error::usage("--only: used with --format badge or badge-status")),
            (false, _, Some(_)) => return Err(Error::usage("--label: used with --format badge or badge-status")),
            _ => {}
        }
        let twin = match (&cli.output, format) {
            (Some(out), Format::Html) => {
                let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
                let twin = dir.join(status::FILE);
                if out.file_name() == twin.file_name() {
                    return Err(Error::usage(format!(
                        "--output {}: the page's JSON twin is written to {}; give the page another name",
                        out.display(),
                        status::FILE
                    )));
                }
                Some(twin)
            }
            _ => None,
        };
        if !cli.files.is_empty() && cli.metrics_dir.is_some() {
            return Err(Error::usage("--metrics-dir: not used when files are named; give one or the other"));
        }
        let default_days = if format.has_bars() { DEFAULT_HTML_DAYS } else { DEFAULT_DAYS };
        let today = clock.now().date();
        let (inputs, window) = if cli.files.is_empty() {
            (Inputs::Dir(metrics_dir.to_path_buf()), Some(resolve_window(&cli.window, today, default_days)?))
        } else {
            let mut sources = Source::from_args(&cli.files);
            sort_by_day(&mut sources);
            let window =
                if cli.window.given() { Some(resolve_window(&cli.window, today, default_days)?) } else { None };
            (Inputs::Sources(sources), window)
        };
        let scope = match window {
            Some((from, to, days, rolling)) => {
                Scope { window_days: days, rolling, from: Some(from), to: Some(to), day: None }
            }
            None => Scope::default(),
        };
        Ok(Plan {
            inputs,
            window: window.map(|(f, t, _, _)| (f, t)),
            scope,
            format,
            by_day,
            sla: cli.sla,
            unknown_as: match cli.unknown_as {
                None | Some(UnknownAsArg::Excluded) => UnknownAs::Excluded,
                Some(UnknownAsArg::Down) => UnknownAs::Down,
                Some(UnknownAsArg::Up) => UnknownAs::Up,
            },
            cadences: Cadences::default(),
            strict: cli.common.strict,
            max_line: ndjson::DEFAULT_MAX_LINE,
            only: cli.only.clone(),
            label: cli.label.clone(),
            notes: Vec::new(),
            twin,
            maintenance: None,
            quorum: None,
        })
    }
}

/// Named daily files are read in day order (incidents need time order); anything else is
/// read as given.
fn sort_by_day(sources: &mut [Source]) {
    let day = |s: &Source| match s {
        Source::File(p) => scan::daily_path(p).map(|(d, _)| d),
        Source::Stdin | Source::Nats { .. } => None,
    };
    if sources.iter().all(|s| day(s).is_some()) {
        sources.sort_by_key(|s| day(s));
    }
}

fn style_of(format: Format) -> Style {
    match format {
        Format::Ndjson | Format::Html | Format::StatusJson | Format::Badge | Format::BadgeStatus => Style::Ndjson,
        Format::Text => Style::Text,
        Format::Csv => Style::Csv,
        Format::Markdown => Style::Markdown,
        Format::Prometheus => Style::Prometheus,
    }
}

/// Records for the services of `agg`, sorted by name.
fn records(agg: &Agg, scope: &Scope, judge: &Judge<'_>, stamp: &str) -> Vec<Uptime> {
    let plan = judge.plan;
    agg.sorted()
        .into_iter()
        .map(|(name, s)| {
            Uptime::build(name, s, scope, plan.sla, stamp)
                .with_coverage(s, judge.span, plan.cadences.get(name), plan.unknown_as)
                .with_maintenance(s, plan.maintenance.is_some())
                .with_quorum(plan.quorum.as_ref().and_then(|q| q.by_name.get(name)))
        })
        .collect()
}

/// The span of epoch days `from..=to` in milliseconds, beginning no earlier than the
/// input's first line (`first`: before it the monitor was not running yet, or its history
/// is gone) and ending at `now` at the latest.
fn day_span(from: i32, to: i32, now_ms: i64, first: Option<i64>) -> (i64, i64) {
    let end = (i64::from(to) + 1) * coverage::DAY_MS;
    let start = (i64::from(from) * coverage::DAY_MS).max(first.unwrap_or(i64::MIN)).min(end);
    (start, end.min(now_ms).max(start))
}

/// One input of a report.
#[derive(Debug, Clone)]
enum Job {
    Stdin,
    /// A JetStream subject (`nats://…?durable=NAME`).
    Nats(Source),
    File(PathBuf),
    Day(scan::DayFile),
}

impl Job {
    /// The epoch day of the lines, for a daily file.
    fn day(&self) -> Option<i32> {
        match self {
            Job::Stdin | Job::Nats(_) => None,
            Job::File(p) => scan::daily_path(p).map(|(d, _)| day_number(d)),
            Job::Day(f) => Some(day_number(f.date)),
        }
    }

    fn name(&self) -> String {
        match self {
            Job::Stdin => "stdin".into(),
            Job::Nats(s) => s.name(),
            Job::File(p) => p.display().to_string(),
            Job::Day(f) => f.path.display().to_string(),
        }
    }

    /// Read the input into `sc`; records of other kinds go to `out`.
    fn scan(&self, sc: &mut Scanner, out: &mut dyn Write) -> Result<()> {
        let (reader, name) = match self {
            Job::Stdin => (scan::decoded(io::stdin()).map_err(|e| Error::io("reading stdin", e))?, "stdin".to_string()),
            Job::Nats(s) => (Box::new(s.open()?) as Box<dyn io::Read + Send>, s.name()),
            Job::File(p) => match scan::open_file(p, true) {
                Ok(r) => (r, self.name()),
                Err(e) if scan::is_refusal(&e) => {
                    sc.refused.push(format!("cannot read {}: {e}; skipped", p.display()));
                    return Ok(());
                }
                Err(e) => return Err(Error::path("cannot open", p, e)),
            },
            Job::Day(f) => match open_day(f) {
                Ok(Some((r, path))) => (r, path.display().to_string()),
                Ok(None) => return Ok(()),
                Err((path, e)) if scan::is_refusal(&e) => {
                    sc.refused.push(format!("cannot read {}: {e}; skipped", path.display()));
                    return Ok(());
                }
                Err((path, e)) => return Err(Error::path("cannot open", &path, e)),
            },
        };
        sc.scan(reader, Origin { name: &name, day: self.day() }, out)
    }
}

/// What one input gave: its scanner, and the records of other kinds it passed through.
type Part = (Scanner, Vec<u8>);

/// How many inputs are read at once.
fn threads_for(jobs: &[Job]) -> usize {
    if jobs.len() < 2 || jobs.iter().any(|j| matches!(j, Job::Stdin | Job::Nats(_))) {
        return 1;
    }
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 4).min(jobs.len())
}

/// Read the inputs on `threads` threads, each into its own scanner, handing each one's part
/// to `apply` in input order (so incidents join up across files and output keeps its order).
/// A thread does not start an input more than two per thread ahead of `apply`, which bounds
/// memory; the first error in input order stops the run.
fn scan_parallel(
    jobs: &[Job],
    opts: ScanOpts,
    maint: Option<&std::sync::Arc<maintenance::Maint>>,
    threads: usize,
    apply: &mut dyn FnMut(usize, Part) -> Result<()>,
) -> Result<()> {
    let read = |job: &Job| -> Result<Part> {
        let mut sc = Scanner::new(opts);
        sc.maintenance = maintenance::Lookup::new(maint.cloned());
        let mut pass = Vec::new();
        job.scan(&mut sc, &mut pass).map(|()| (sc, pass))
    };
    let mut k = 0;
    crate::util::par::for_each_ordered_within(jobs, threads, threads * 2, read, |part| {
        apply(k, part?)?;
        k += 1;
        Ok(())
    })
}

/// Run a report: read, aggregate, write. Returns `Failures` when a service is below the SLA.
pub(crate) fn run(plan: &Plan, out: &mut dyn Write, diag: &Diag, clock: &Clock) -> Result<Status> {
    let window_days = plan.window.map(|(f, t)| (day_number(f), day_number(t)));
    let opts = scan_opts(plan, window_days);
    let jobs = jobs_of(plan, window_days, diag)?;
    let mut sc = Scanner::new(opts);
    sc.maintenance = maintenance::Lookup::new(plan.maintenance.clone());
    let mut emit = Emit {
        plan,
        writer: Writer::new(style_of(plan.format)).with_quorum(plan.quorum.is_some()),
        stamp: clock.stamp(),
        now_ms: clock.now().unix_timestamp() * 1000 + i64::from(clock.now().millisecond()),
        breach: false,
    };
    // Over the metrics directory each day is complete once its file is read.
    let stream_days = plan.by_day && !matches!(plan.inputs, Inputs::Sources(_));
    let threads = threads_for(&jobs);
    if threads == 1 {
        for (k, job) in jobs.iter().enumerate() {
            diag.progress(format_args!("reading {} ({}/{})", job.name(), k + 1, jobs.len()));
            job.scan(&mut sc, out)?;
            if let (true, Some(day)) = (stream_days, job.day()) {
                emit.days(&mut sc, out, day)?;
            }
        }
    } else {
        scan_parallel(&jobs, opts, plan.maintenance.as_ref(), threads, &mut |k, (part, pass)| {
            diag.progress(format_args!("read {} ({}/{})", jobs[k].name(), k + 1, jobs.len()));
            out.write_all(&pass)?;
            sc.absorb(part);
            if let (true, Some(day)) = (stream_days, jobs[k].day()) {
                emit.days(&mut sc, out, day)?;
            }
            Ok(())
        })?;
    }
    diag.clear_progress();
    if plan.by_day {
        emit.days(&mut sc, out, i32::MAX)?;
        emit.writer.finish(out, &plan.scope)?;
    } else {
        emit.window(&sc, out, window_days, diag)?;
    }
    sc.report_rejects(diag);
    Ok(Status::failures_if(emit.breach))
}

/// How the scanners read for `plan` (`window_days`: its window as epoch days).
fn scan_opts(plan: &Plan, window_days: Option<(i32, i32)>) -> ScanOpts {
    let sources_mode = matches!(plan.inputs, Inputs::Sources(_));
    ScanOpts {
        by_day: plan.by_day,
        day_cells_from: if plan.format.has_bars() {
            Some(window_days.map(|(f, t)| html::bar_days(f, t).0).unwrap_or(i32::MIN))
        } else {
            None
        },
        filter: if sources_mode { window_days } else { None },
        pass_through: plan.format == Format::Ndjson,
        track_range: sources_mode && window_days.is_none(),
        log_incidents: false,
        strict: plan.strict,
        max_line: plan.max_line,
        quorum_window_ms: None,
    }
}

/// The inputs of `plan` within its window, in the order they are read.
fn jobs_of(plan: &Plan, window_days: Option<(i32, i32)>, diag: &Diag) -> Result<Vec<Job>> {
    Ok(match &plan.inputs {
        Inputs::Dir(dir) => {
            let (from, to) = window_days.unwrap_or((i32::MIN, i32::MAX));
            if !dir.exists() {
                diag.warn(format_args!("metrics directory {} does not exist", dir.display()));
            }
            scan::list_days(dir)?
                .into_iter()
                .filter(|f| (from..=to).contains(&day_number(f.date)))
                .map(Job::Day)
                .collect()
        }
        Inputs::Sources(sources) => sources
            .iter()
            .map(|s| match s {
                Source::Stdin => Job::Stdin,
                Source::Nats { .. } => Job::Nats(s.clone()),
                Source::File(p) => Job::File(p.clone()),
            })
            // Daily files outside the window are not even opened.
            .filter(|j| match (j.day(), window_days) {
                (Some(d), Some((from, to))) => d >= from && d <= to,
                _ => true,
            })
            .collect(),
    })
}

/// Writes the records of a report, and remembers whether one breached the SLA.
struct Emit<'a> {
    plan: &'a Plan,
    writer: Writer,
    stamp: String,
    now_ms: i64,
    breach: bool,
}

impl Emit<'_> {
    /// Write the days of `sc` up to `through` (epoch day), and drop them.
    fn days(&mut self, sc: &mut Scanner, out: &mut dyn Write, through: i32) -> Result<()> {
        for (day, agg) in sc.take_days_through(through) {
            let scope = Scope::of_day(day);
            let judge = Judge { plan: self.plan, span: Some(day_span(day, day, self.now_ms, sc.host.first)) };
            let recs = records(&agg, &scope, &judge, &self.stamp);
            self.breach |= recs.iter().any(|r| r.breach);
            self.writer.batch(out, &scope, &recs)?;
        }
        Ok(())
    }

    /// Write the whole window: its records (or the status page), its monitoring gaps.
    fn window(
        &mut self,
        sc: &Scanner,
        out: &mut dyn Write,
        window_days: Option<(i32, i32)>,
        diag: &Diag,
    ) -> Result<()> {
        let plan = self.plan;
        let mut scope = plan.scope.clone();
        if let Some((f, t)) = sc.range {
            scope.from = day_date(f);
            scope.to = day_date(t);
        }
        // The span the coverage is judged over: the window's days up to now, or without a
        // window the input's own first and last line; never before the input's first line.
        let span = match window_days {
            Some((f, t)) => Some(day_span(f, t, self.now_ms, sc.host.first)),
            None => sc.host.first.zip(sc.host.last),
        };
        let judge = Judge { plan, span };
        let recs = records(&sc.window, &scope, &judge, &self.stamp);
        self.breach |= recs.iter().any(|r| r.breach);
        let gaps = monitoring_gaps(sc, plan, window_days.and(span), self.now_ms, diag);
        if plan.format.has_bars() {
            let bar = match (scope.from, scope.to) {
                (Some(f), Some(t)) => Some(html::bar_days(day_number(f), day_number(t))),
                _ => None,
            };
            // The notes of the window (all of them without one).
            let (from, to) = (scope.from.map(day_number), scope.to.map(day_number));
            let notes: Vec<notes::Note> = plan
                .notes
                .iter()
                .filter(|n| n.day().is_some_and(|d| from.is_none_or(|f| d >= f) && to.is_none_or(|t| d <= t)))
                .cloned()
                .collect();
            let page = html::Page {
                agg: &sc.window,
                records: &recs,
                gaps: &gaps,
                scope: &scope,
                bar,
                stamp: &self.stamp,
                notes: &notes,
            };
            if plan.format == Format::StatusJson {
                return status::render(out, &page);
            }
            if let Some(twin) = &plan.twin {
                let mut buf = Vec::new();
                status::render(&mut buf, &page)?;
                store::atomic_write(twin, &buf)?;
            }
            html::render(out, &page)?;
        } else if let (Format::Badge | Format::BadgeStatus, Some(name)) = (plan.format, &plan.only) {
            let r = recs.iter().find(|r| r.name == *name);
            if r.is_none() {
                diag.warn(format_args!("no check of {name:?} in the window"));
            }
            let svg = match plan.format {
                Format::Badge => badge::uptime(r, plan.label.as_deref()),
                _ => badge::status(name, r, plan.label.as_deref()),
            };
            out.write_all(svg.as_bytes())?;
            out.write_all(b"\n")?;
            return Ok(());
        } else if !recs.is_empty() {
            self.writer.batch(out, &scope, &recs)?;
        }
        self.writer.gaps(out, &scope, &gaps, &self.stamp)?;
        self.writer.finish(out, &scope)
    }
}

/// The monitor's own silences in the window: stretches without a line of any service longer
/// than twice the monitor's cadence, and (with a window) the silence from the last line to
/// the window's end. The monitor's cadence is `check_interval_seconds` (the schedule it runs
/// on) when services.json sets it, else the time-weighted median of its silences: the
/// spacing between consecutive lines (of any service) that half of the time is spent in.
/// A silence before the first line is not one: the window may simply begin before the
/// monitor was set up.
fn monitoring_gaps(
    sc: &Scanner,
    plan: &Plan,
    window_span: Option<(i64, i64)>,
    now_ms: i64,
    diag: &Diag,
) -> Vec<MonitoringGap> {
    let Some(cadence) = plan.cadences.default.or_else(|| sc.host.spacings.time_median()) else { return Vec::new() };
    let (closed, maybe_more) = sc.host.gaps(cadence);
    if maybe_more {
        diag.warn(format_args!(
            "more than {} monitoring gaps in the window: the longest {} are reported",
            coverage::HOST_GAPS_KEPT,
            coverage::HOST_GAPS_KEPT
        ));
    }
    let mut gaps: Vec<MonitoringGap> =
        closed.into_iter().map(|(start, end)| MonitoringGap { start, end, ongoing: false, cadence }).collect();
    if let (Some(last), Some((_, end))) = (sc.host.last, window_span)
        && end > last
        && coverage::is_gap((end - last) as u64, cadence)
    {
        gaps.push(MonitoringGap { start: last, end, ongoing: end >= now_ms, cadence });
    }
    gaps
}

/// Open a day's file; the `.jsonl` may have been compacted away since the listing (then its
/// `.gz` is read), or pruned (then the day is skipped).
type Opened = (Box<dyn io::Read + Send>, PathBuf);

fn open_day(f: &scan::DayFile) -> std::result::Result<Option<Opened>, (PathBuf, io::Error)> {
    match scan::open_file(&f.path, false) {
        Ok(r) => Ok(Some((r, f.path.clone()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => match &f.alt {
            Some(alt) => match scan::open_file(alt, false) {
                Ok(r) => Ok(Some((r, alt.clone()))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err((alt.clone(), e)),
            },
            None => Ok(None),
        },
        Err(e) => Err((f.path.clone(), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> Date {
        clock::parse_date(s).unwrap()
    }

    #[test]
    fn windows_as_the_kit_counts_them() {
        let today = date("2026-11-23");
        let w = WindowArgs::default();
        assert_eq!(resolve_window(&w, today, 7).unwrap(), (date("2026-11-17"), today, Some(7), true));
        let w = WindowArgs { days: Some(1), ..WindowArgs::default() };
        assert_eq!(resolve_window(&w, today, 7).unwrap(), (today, today, Some(1), true));
        let w = WindowArgs { days: Some(3), until: Some(date("2026-11-10")), ..WindowArgs::default() };
        assert_eq!(resolve_window(&w, today, 7).unwrap(), (date("2026-11-08"), date("2026-11-10"), Some(3), false));
        let w = WindowArgs { since: Some(date("2026-11-01")), ..WindowArgs::default() };
        assert_eq!(resolve_window(&w, today, 7).unwrap(), (date("2026-11-01"), today, None, false));
        let w = WindowArgs { since: Some(date("2026-12-01")), ..WindowArgs::default() };
        assert!(resolve_window(&w, today, 7).is_err());
    }

    #[test]
    fn named_daily_files_are_read_in_day_order() {
        let mut s = Source::from_args(&[
            PathBuf::from("m/2026-11-21.jsonl.gz"),
            PathBuf::from("m/2026-11-20.jsonl"),
            PathBuf::from("x/2026-11-20.jsonl"),
        ]);
        sort_by_day(&mut s);
        assert_eq!(s[0], Source::File(PathBuf::from("m/2026-11-20.jsonl")));
        assert_eq!(s[2], Source::File(PathBuf::from("m/2026-11-21.jsonl.gz")));
        let mut mixed = Source::from_args(&[PathBuf::from("b.jsonl"), PathBuf::from("2026-01-01.jsonl")]);
        sort_by_day(&mut mixed);
        assert_eq!(mixed[0], Source::File(PathBuf::from("b.jsonl")));
    }
}
