#![warn(missing_docs)]
//! probe: check every service at once, in config order out.
//!
//! The check engine ([`crate::check`]) runs the checks, thousands at once, each under its own
//! timeout and a watchdog, so a run's wall time is about its slowest timeout, never the sum.
//! Results are then annotated with `suppressed_by` from `depends_on` and written in config
//! order, to stdout and to the day's metrics file.

pub(crate) mod cli;
pub(crate) mod watch;

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::CommandFactory;
use serde_json::Value;

use crate::check::{self, CheckEnv};
use crate::clock::{self, Clock};
use crate::config::{CheckSpec, Config, Service};
use crate::entry::{Ctx, Diag, Tool};
use crate::error::{Error, Result, Status};
use crate::ndjson::{self, Source};
use crate::record::{Check, CheckStatus, Finding, Level};
use crate::store;

/// What probe's HTTP requests say they are.
pub(crate) const USER_AGENT: &str = concat!("pitcrew-probe/", env!("CARGO_PKG_VERSION"));

/// The `probe` tool, as its binary hands it to [`crate::entry::run`].
pub const TOOL: Tool = Tool { name: "probe", main, command };

/// probe's clap definition (for completions and man pages).
pub fn command() -> clap::Command {
    cli::Cli::command()
}

/// The `probe` tool.
pub fn main(ctx: &mut Ctx, args: Vec<OsString>) -> Result<Status> {
    let (cli, set) = crate::cli::setup::<cli::Cli>(&mut ctx.out, args)?;
    let (paths, clock) = (&set.paths, set.clock);
    ctx.out.escape_controls(cli.format != cli::Format::Ndjson);
    let mut stream: Vec<PathBuf> = cli.services.clone();
    stream.extend(cli.files.iter().cloned());
    if cli.watch {
        // Before any other thread exists, so that every thread has the signals blocked.
        let (events, _keep) = crate::util::stop::events()?;
        let metrics = (!cli.no_metrics).then(|| cli.metrics_dir.clone().unwrap_or_else(|| paths.metrics.clone()));
        let opts = watch::Opts {
            only: cli.only.clone(),
            streams: stream,
            metrics,
            concurrency: cli.concurrency as usize,
            text: cli.format == cli::Format::Text,
        };
        return watch::run(&mut ctx.out, &ctx.diag, &set, opts, events);
    }
    let config_required = stream.is_empty();
    let config = set.load_config(config_required)?;
    let config_exists = paths.config.exists();

    let mut findings: Vec<Finding> = Vec::new();
    let stamp = clock.stamp();
    for p in &config.problems {
        ctx.diag.warn(p);
        findings.push(invalid_service(&p.subject(), p.to_string(), stamp.clone()));
    }
    let mut services = config.services.clone();
    if !stream.is_empty() {
        read_services(&stream, &config, &set, &stamp, &ctx.diag, &mut services, &mut findings)?;
    }
    if config_exists && wants_disk_check(&config) && !services.iter().any(|s| matches!(s.spec, CheckSpec::Disk { .. }))
    {
        services.push(disk_service(&config));
    }
    keep_only(&mut services, &cli.only)?;
    for f in dependency_findings(&services, &stamp) {
        ctx.diag.warn(format_args!("{}: {}", f.subject, f.detail));
        findings.push(f);
    }

    let env = Arc::new(CheckEnv::new(clock, USER_AGENT));
    let jobs = services.iter().map(Service::job).collect();
    let mut results = check::run_all(jobs, &env, cli.concurrency as usize, &ctx.diag);
    annotate_suppression(&services, &mut results);

    let metrics_err = if cli.no_metrics {
        None
    } else {
        let dir = cli.metrics_dir.clone().unwrap_or_else(|| paths.metrics.clone());
        append_metrics(&dir, &clock, &results).err()
    };

    write_results(&mut ctx.out, cli.format, &findings, &results)?;
    if let Some(e) = metrics_err {
        return Err(e);
    }
    let down = results.iter().any(|c| c.status == CheckStatus::Down);
    Ok(Status::failures_if(down || !findings.is_empty()))
}

/// Add the services of the NDJSON `stream` (files, `-`) to `services`; a service that cannot
/// be read, or whose name is taken, is a finding.
fn read_services(
    stream: &[PathBuf],
    config: &Config,
    set: &crate::cli::Setup,
    stamp: &str,
    diag: &Diag,
    services: &mut Vec<Service>,
    findings: &mut Vec<Finding>,
) -> Result<()> {
    let sources = Source::from_args(stream);
    let home = Some(set.paths.home.clone());
    let mut names: HashSet<String> = services.iter().map(|s| s.name.clone()).collect();
    ndjson::for_each_value(&sources, set.read_opts, diag, |v, pos| {
        match config.parse_service_value(&v, home.clone()) {
            Ok(mut s) if !names.contains(&s.name) => {
                s.line = pos.line as usize;
                names.insert(s.name.clone());
                services.push(s);
            }
            Ok(s) => {
                let msg = format!("{pos}: service '{}': name: another service already has this name", s.name);
                diag.warn(&msg);
                findings.push(invalid_service(&s.name, msg, stamp.to_string()));
            }
            Err(why) => {
                let subject = v.get("name").and_then(Value::as_str).unwrap_or("service").to_string();
                let msg = format!("{pos}: {why}");
                diag.warn(&msg);
                findings.push(invalid_service(&subject, msg, stamp.to_string()));
            }
        }
        Ok(())
    })
}

/// With `--only`: keep the services named, each of which must exist.
fn keep_only(services: &mut Vec<Service>, only: &[String]) -> Result<()> {
    if only.is_empty() {
        return Ok(());
    }
    if let Some(name) = only.iter().find(|name| !services.iter().any(|s| &s.name == *name)) {
        return Err(Error::usage(format!("--only: no service named '{name}'")));
    }
    services.retain(|s| only.contains(&s.name));
    Ok(())
}

/// Write the findings, then the checks, as NDJSON or as the kit's text report.
fn write_results(out: &mut dyn Write, format: cli::Format, findings: &[Finding], results: &[Check]) -> Result<()> {
    match format {
        cli::Format::Ndjson => {
            for f in findings {
                ndjson::write(out, f)?;
            }
            for c in results {
                ndjson::write(out, c)?;
            }
        }
        cli::Format::Text => {
            for f in findings {
                writeln!(out, "[INVALID] {}", f.detail)?;
            }
            for c in results {
                writeln!(out, "{}", c.text_line())?;
            }
            let failed = results.iter().filter(|c| c.status == CheckStatus::Down).count();
            if failed > 0 {
                writeln!(out, "\n{failed} failure(s) detected.")?;
            } else {
                writeln!(out, "\nAll {} checks passed.", results.len())?;
            }
        }
    }
    Ok(())
}

/// The finding of a service entry or line that cannot be used.
fn invalid_service(subject: &str, detail: String, stamp: String) -> Finding {
    Finding::new("probe", subject, Level::Error, "invalid_service", detail, stamp)
}

/// The Agent Ops Kit always checked the root file system's free space; so does probe, unless the
/// config has its own disk service or says `"disk_check": false`.
fn wants_disk_check(config: &Config) -> bool {
    config.raw.get("disk_check").and_then(Value::as_bool).unwrap_or(true)
}

fn disk_service(config: &Config) -> Service {
    Service {
        name: "Disk Space".into(),
        line: 0,
        spec: CheckSpec::Disk { path: PathBuf::from("/"), warning_gb: config.disk_warning_gb },
        timeout: Duration::from_secs(5),
        depends_on: Vec::new(),
        restart: None,
        raw: serde_json::Map::new(),
    }
}

/// Unknown dependencies and dependency cycles, as findings.
pub(crate) fn dependency_findings(services: &[Service], stamp: &str) -> Vec<Finding> {
    let names: HashSet<&str> = services.iter().map(|s| s.name.as_str()).collect();
    let mut out = Vec::new();
    for s in services {
        for d in &s.depends_on {
            if !names.contains(d.as_str()) {
                out.push(Finding::new(
                    "probe",
                    &s.name,
                    Level::Warning,
                    "unknown_dependency",
                    format!("depends_on names '{d}', which is not a service"),
                    stamp.to_string(),
                ));
            }
        }
    }
    for cycle in cycles(services) {
        out.push(Finding::new(
            "probe",
            &cycle[0],
            Level::Warning,
            "dependency_cycle",
            format!("depends_on forms a cycle: {}", cycle.join(" -> ")),
            stamp.to_string(),
        ));
    }
    out
}

/// One cycle per group of services that depend on each other (a strongly connected
/// component with a cycle), as a path from its first service in config order back to it.
/// Linear in services and dependencies, and without recursion: a stream of thousands of
/// services chained by `depends_on` is as cheap as any other.
fn cycles(services: &[Service]) -> Vec<Vec<String>> {
    let index: HashMap<&str, usize> = services.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
    let edges: Vec<Vec<usize>> =
        services.iter().map(|s| s.depends_on.iter().filter_map(|d| index.get(d.as_str()).copied()).collect()).collect();
    let comp = components(&edges);
    let mut seen_comp = HashSet::new();
    let mut out = Vec::new();
    for start in 0..services.len() {
        let c = comp[start];
        if !seen_comp.insert(c) {
            continue;
        }
        // Shortest path back to `start` within its component (breadth first).
        let mut prev: HashMap<usize, usize> = HashMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut closing = None;
        while let Some(n) = queue.pop_front() {
            if edges[n].contains(&start) {
                closing = Some(n);
                break;
            }
            for &d in &edges[n] {
                if comp[d] == c && d != start && !prev.contains_key(&d) {
                    prev.insert(d, n);
                    queue.push_back(d);
                }
            }
        }
        let Some(mut n) = closing else { continue };
        let mut path = vec![start];
        let mut back = Vec::new();
        while n != start {
            back.push(n);
            n = prev[&n];
        }
        path.extend(back.into_iter().rev());
        path.push(start);
        out.push(path.into_iter().map(|i| services[i].name.clone()).collect());
    }
    out
}

/// Strongly connected components (Tarjan's algorithm, iterative): a component id per node.
fn components(edges: &[Vec<usize>]) -> Vec<usize> {
    let n = edges.len();
    let (mut index, mut low, mut comp) = (vec![usize::MAX; n], vec![0; n], vec![usize::MAX; n]);
    let (mut on_stack, mut stack, mut next_index, mut next_comp) = (vec![false; n], Vec::new(), 0, 0);
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some(&mut (v, ref mut i)) = work.last_mut() {
            if *i == 0 && index[v] == usize::MAX {
                index[v] = next_index;
                low[v] = next_index;
                next_index += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = edges[v].get(*i) {
                *i += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp[w] = next_comp;
                    if w == v {
                        break;
                    }
                }
                next_comp += 1;
            }
        }
    }
    comp
}

/// Mark every down service whose dependency is down with the root cause: the topmost down
/// service it depends on, following the first down parent of each. Roots found on the way
/// are remembered, so a long chain costs its length once, not once per member.
pub(crate) fn annotate_suppression(services: &[Service], results: &mut [Check]) {
    let index: HashMap<&str, usize> = services.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
    let down: Vec<bool> = results.iter().map(|c| c.status == CheckStatus::Down).collect();
    let next: Vec<Option<usize>> = (0..services.len())
        .map(|i| {
            services[i].depends_on.iter().filter_map(|d| index.get(d.as_str()).copied()).find(|&p| p != i && down[p])
        })
        .collect();
    // The top of the chain above a node (itself when nothing above it is down), once known.
    let mut top: Vec<Option<usize>> = vec![None; services.len()];
    for i in 0..services.len() {
        if !down[i] || next[i].is_none() {
            continue;
        }
        let mut path = vec![i];
        let mut on_path = HashSet::from([i]);
        let root = loop {
            let cur = path[path.len() - 1];
            if let Some(t) = top[cur] {
                break (t, true);
            }
            match next[cur] {
                None => break (cur, true),
                // A cycle: stop before going round; the root depends on where the walk began.
                Some(p) if on_path.contains(&p) => break (cur, false),
                Some(p) => {
                    path.push(p);
                    on_path.insert(p);
                }
            }
        };
        let (root, shared) = root;
        if shared {
            for &n in &path {
                top[n] = Some(root);
            }
        }
        if root != i {
            results[i].suppressed_by = Some(services[root].name.clone());
        }
    }
}

/// Append the records to `DIR/YYYY-MM-DD.jsonl`, one `write` per line.
pub(crate) fn append_metrics(dir: &Path, clock: &Clock, results: &[Check]) -> Result<()> {
    if results.is_empty() {
        return Ok(());
    }
    let path = dir.join(format!("{}.jsonl", clock::fmt_date(clock.now().date())));
    let mut f = store::open_append(&path)?;
    for c in results {
        let line = crate::json::to_record_line(c)?;
        store::write_once(&mut f, &line).map_err(|e| Error::path("cannot append to", &path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, deps: &[&str]) -> Service {
        Service {
            name: name.into(),
            line: 0,
            spec: CheckSpec::Process { pattern: "x".into() },
            timeout: Duration::from_secs(1),
            depends_on: deps.iter().map(|s| s.to_string()).collect(),
            restart: None,
            raw: serde_json::Map::new(),
        }
    }

    fn check(name: &str, status: CheckStatus) -> Check {
        Check::new(name, "process", "x", status, String::new())
    }

    #[test]
    fn suppression_names_the_root_cause() {
        let s =
            vec![svc("worker", &["api"]), svc("api", &["gateway"]), svc("gateway", &[]), svc("cache", &["gateway"])];
        let mut r = vec![
            check("worker", CheckStatus::Down),
            check("api", CheckStatus::Down),
            check("gateway", CheckStatus::Down),
            check("cache", CheckStatus::Up),
        ];
        annotate_suppression(&s, &mut r);
        let by: Vec<_> = r.iter().map(|c| c.suppressed_by.as_deref()).collect();
        assert_eq!(by, vec![Some("gateway"), Some("gateway"), None, None]);
    }

    #[test]
    #[ignore = "slow: a load run (a 100,000-service dependency chain); scripts/test.sh runs it"]
    fn long_dependency_chains_cost_their_length() {
        // 100 000 services, each depending on the one before, the first on the last: once a
        // minutes-long quadratic walk (and a recursion as deep as the chain).
        let n = 100_000;
        let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
        let s: Vec<Service> = (0..n)
            .map(|i| svc(&names[i], &[if i == 0 { names[n - 1].as_str() } else { names[i - 1].as_str() }]))
            .collect();
        let started = std::time::Instant::now();
        let f = dependency_findings(&s, "t");
        assert_eq!(f.len(), 1);
        assert!(f[0].detail.starts_with("depends_on forms a cycle: s0 -> s99999 -> s99998"), "{}", &f[0].detail[..80]);
        let mut chain = s.clone();
        chain[0].depends_on.clear();
        assert!(dependency_findings(&chain, "t").is_empty());
        let mut r: Vec<Check> = names.iter().map(|n| check(n, CheckStatus::Down)).collect();
        annotate_suppression(&chain, &mut r);
        assert!(r[0].suppressed_by.is_none());
        assert!(r[1..].iter().all(|c| c.suppressed_by.as_deref() == Some("s0")));
        assert!(started.elapsed() < crate::util::test_limit(20.0), "{:?}", started.elapsed());
    }

    #[test]
    fn cycles_and_unknown_dependencies_are_findings() {
        let s = vec![svc("a", &["b"]), svc("b", &["a"]), svc("c", &["nope"])];
        let f = dependency_findings(&s, "t");
        let problems: Vec<_> = f.iter().map(|f| f.problem.as_str()).collect();
        assert_eq!(problems, vec!["unknown_dependency", "dependency_cycle"]);
        assert!(f[1].detail.contains("a -> b -> a"), "{}", f[1].detail);
        let mut r = vec![check("a", CheckStatus::Down), check("b", CheckStatus::Down), check("c", CheckStatus::Down)];
        annotate_suppression(&s, &mut r);
        assert!(r[2].suppressed_by.is_none());
    }
}
