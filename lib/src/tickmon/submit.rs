//! `tickmon submit`: check an agent's vitals, write its tick for the month atomically, and
//! optionally commit (and push) it.
//!
//! What to check comes from the flags first and the agent's registry entry second. The home
//! or the config vital that can be neither checked (nothing names it) nor was stated with
//! `--vital` stops the submission: a tick never claims what nobody checked. An agent without
//! a gateway (the Agent Tick Protocol's own registry has no `gateway` key) still ticks: its
//! `gateway_running` is `null`, "no gateway configured", and counts neither for nor against
//! its status.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::cli::{Format, SubmitArgs, SubmitStatus};
use super::git::{Pushed, Repo};
use super::registry::{Registry, expand_home};
use super::tick::{CORE_VITALS, Month, TickStatus, tick_path};
use super::vitals::{self, Vital};
use crate::clock::{self, Clock};
use crate::config::Env;
use crate::entry::Diag;
use crate::error::{Error, Result, Status};
use crate::ndjson;
use crate::store;
use crate::util::is_safe_id;

/// The detail of `gateway_running` when nothing names a gateway.
const NO_GATEWAY: &str = "no gateway configured: not checked";

/// Everything a submission needs, resolved from flags and registry.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) agent: String,
    pub(crate) name: Option<String>,
    pub(crate) month: Month,
    pub(crate) status: SubmitStatus,
    pub(crate) gateway: Option<String>,
    pub(crate) home: Option<PathBuf>,
    pub(crate) config: Option<PathBuf>,
    pub(crate) stated: Vec<(String, bool)>,
    pub(crate) capabilities: Vec<(String, bool)>,
    pub(crate) note: Option<String>,
    pub(crate) ticks_dir: PathBuf,
    pub(crate) vital_timeout: Duration,
}

/// The vitals as checked (or stated), with a line about each.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Vitals {
    pub(crate) values: Map<String, Value>,
    pub(crate) details: Map<String, Value>,
}

impl Plan {
    /// Resolve the flags against the registry entry of the agent.
    pub(crate) fn resolve(
        args: &SubmitArgs,
        registry: Option<&Registry>,
        ticks_dir: PathBuf,
        clock: &Clock,
        env: Env<'_>,
        diag: &Diag,
    ) -> Result<Plan> {
        if !is_safe_id(&args.agent) {
            return Err(Error::usage(format!(
                "--agent: '{}' is not a valid agent id (1-128 letters, digits, '-', '_', '.', not starting with '.')",
                crate::util::truncate(&args.agent, 64)
            )));
        }
        let entry = registry.and_then(|r| r.find(&args.agent));
        if let (Some(r), None) = (registry, entry) {
            diag.warn(format_args!(
                "agent '{}' is not in {}; `tickmon check` will not report it",
                args.agent,
                r.path.display()
            ));
        }
        let month = match &args.month {
            Some(m) => Month::parse(m).ok_or_else(|| Error::usage(format!("--month: '{m}' is not YYYY-MM")))?,
            None => Month::of(clock.now()),
        };
        let from_entry = |f: fn(&super::registry::AgentEntry) -> Option<&String>| entry.and_then(f).cloned();
        Ok(Plan {
            agent: args.agent.clone(),
            name: entry.map(|e| e.name.clone()),
            month,
            status: args.status,
            gateway: args.gateway.clone().or_else(|| from_entry(|e| e.gateway.as_ref())),
            home: args.agent_home.clone().or_else(|| from_entry(|e| e.home_dir.as_ref()).map(|h| expand_home(&h, env))),
            config: args
                .agent_config
                .clone()
                .or_else(|| from_entry(|e| e.config_path.as_ref()).map(|c| expand_home(&c, env))),
            stated: args.vitals.clone(),
            capabilities: args.capabilities.clone(),
            note: args.note.clone(),
            ticks_dir,
            vital_timeout: args.vital_timeout,
        })
    }

    fn stated(&self, key: &str) -> Option<bool> {
        self.stated.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// Check the core vitals that were not stated (at the same time), then add the stated
    /// ones. An error names the home and config vitals that can be neither checked nor were
    /// stated; a gateway nothing names is recorded as not configured (`null`).
    pub(crate) fn gather_vitals(&self) -> Result<Vitals> {
        let mut unknown = Vec::new();
        let needs = |key: &str, target: bool, how: &str, unknown: &mut Vec<String>| {
            if self.stated(key).is_none() && !target {
                unknown.push(format!("{key} (give {how} or state it with --vital {key}=true|false)"));
            }
        };
        needs(CORE_VITALS[1], self.home.is_some(), "--agent-home or the registry's \"home_dir\"", &mut unknown);
        needs(CORE_VITALS[2], self.config.is_some(), "--agent-config or the registry's \"config_path\"", &mut unknown);
        if !unknown.is_empty() {
            return Err(Error::usage(format!(
                "cannot check the vitals of '{}': nothing names {}",
                self.agent,
                unknown.join("; ")
            )));
        }
        let t = self.vital_timeout;
        let (gw, home, cfg) = std::thread::scope(|s| {
            let gw = s.spawn(|| match (self.stated(CORE_VITALS[0]), &self.gateway) {
                (None, Some(g)) => Some(vitals::check_gateway(g, t)),
                _ => None,
            });
            let home = s.spawn(|| match (self.stated(CORE_VITALS[1]), &self.home) {
                (None, Some(h)) => Some(vitals::check_home(h, t)),
                _ => None,
            });
            let cfg = s.spawn(|| match (self.stated(CORE_VITALS[2]), &self.config) {
                (None, Some(c)) => Some(vitals::check_config(c, t)),
                _ => None,
            });
            let join = |h: std::thread::ScopedJoinHandle<'_, Option<Vital>>| {
                h.join().unwrap_or_else(|_| Some(Vital::failed("the check failed unexpectedly")))
            };
            (join(gw), join(home), join(cfg))
        });
        let mut out = Vitals::default();
        for (key, checked) in CORE_VITALS.iter().zip([gw, home, cfg]) {
            let v = match (self.stated(key), checked) {
                (Some(b), _) => Vital { ok: b, detail: "stated with --vital".into() },
                (None, Some(v)) => v,
                // Only the gateway gets here (the others were required above).
                (None, None) => {
                    out.values.insert(key.to_string(), Value::Null);
                    out.details.insert(key.to_string(), Value::String(NO_GATEWAY.into()));
                    continue;
                }
            };
            out.values.insert(key.to_string(), Value::Bool(v.ok));
            out.details.insert(key.to_string(), Value::String(v.detail));
        }
        for (k, v) in &self.stated {
            if !CORE_VITALS.contains(&k.as_str()) {
                out.values.insert(k.clone(), Value::Bool(*v));
                out.details.insert(k.clone(), Value::String("stated with --vital".into()));
            }
        }
        Ok(out)
    }

    /// The tick document and its status.
    pub(crate) fn tick_document(&self, vitals: &Vitals, clock: &Clock, host: &str) -> (TickStatus, Map<String, Value>) {
        let mut caps = Map::new();
        for (k, v) in &self.capabilities {
            caps.insert(k.clone(), Value::Bool(*v));
        }
        let status = match self.status {
            SubmitStatus::Auto => vitals::derive_status(&vitals.values, &caps),
            SubmitStatus::Healthy => TickStatus::Healthy,
            SubmitStatus::Degraded => TickStatus::Degraded,
            SubmitStatus::Critical => TickStatus::Critical,
            SubmitStatus::Offline => TickStatus::Offline,
        };
        let mut doc = Map::new();
        doc.insert("agent".into(), json!(self.agent));
        if let Some(n) = &self.name {
            doc.insert("name".into(), json!(n));
        }
        doc.insert("month".into(), json!(self.month.label()));
        doc.insert("status".into(), json!(status.as_str()));
        doc.insert("vitals".into(), Value::Object(vitals.values.clone()));
        doc.insert("capabilities".into(), Value::Object(caps));
        doc.insert("timestamp".into(), json!(clock.stamp()));
        doc.insert("vitals_detail".into(), Value::Object(vitals.details.clone()));
        doc.insert("host".into(), json!(host));
        if let Some(n) = &self.note {
            doc.insert("note".into(), json!(n));
        }
        doc.insert("submitted_by".into(), json!(concat!("tickmon ", env!("CARGO_PKG_VERSION"))));
        (status, doc)
    }
}

/// This machine's name, for the tick and for commits.
pub(crate) fn hostname() -> String {
    crate::store::read::read_text(std::path::Path::new("/proc/sys/kernel/hostname"), crate::store::kinds::PROC)
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Run `tickmon submit`.
pub(crate) fn run(
    args: &SubmitArgs,
    registry: Option<&Registry>,
    ticks_dir: PathBuf,
    clock: &Clock,
    env: Env<'_>,
    diag: &Diag,
    out: &mut dyn Write,
) -> Result<Status> {
    let plan = Plan::resolve(args, registry, ticks_dir, clock, env, diag)?;
    let host = hostname();
    // Find the repository before anything is written: --git outside one changes nothing.
    let repo = if args.git {
        store::ensure_dir(&plan.ticks_dir)?;
        Some(Repo::discover(&plan.ticks_dir, args.git_timeout, &host)?)
    } else {
        None
    };
    let vitals = plan.gather_vitals()?;
    let (status, doc) = plan.tick_document(&vitals, clock, &host);
    let path = tick_path(&plan.ticks_dir, plan.month, &plan.agent);
    let mut record = tick_record(&plan, &doc, &path);
    let doc = Value::Object(doc);

    let git_error = match &repo {
        None => {
            store::write_json(&path, &doc)?;
            None
        }
        Some(repo) => {
            // One submitter at a time per clone: git's own index lock would fail the second.
            let mut lock = store::Lock::open(&repo.git_dir.join("tickmon.lock"))?;
            let _held = lock.acquire()?;
            store::write_json(&path, &doc)?;
            commit_and_push(repo, &plan, status, args.push, &mut record, diag)?
        }
    };
    record.insert("timestamp".into(), json!(clock.stamp()));

    match args.format {
        Format::Ndjson => ndjson::write(out, &Value::Object(record.clone()))?,
        Format::Text => write_text(out, &plan, status, &vitals, &record)?,
    }
    if let Some(e) = git_error {
        return Err(e);
    }
    Ok(Status::failures_if(status.is_failure()))
}

/// The `tick` record of a submission (before git and its timestamp): the tick's fields, when
/// it is due and the file it went to.
fn tick_record(plan: &Plan, doc: &Map<String, Value>, path: &Path) -> Map<String, Value> {
    let mut record = Map::new();
    record.insert("kind".into(), json!("tick"));
    for key in ["agent", "name", "month", "status", "vitals", "capabilities"] {
        if let Some(v) = doc.get(key) {
            record.insert(key.into(), v.clone());
        }
    }
    record.insert("due".into(), json!(clock::fmt_ts(plan.month.due(Duration::from_secs(72 * 3600)))));
    record.insert("file".into(), json!(path.display().to_string()));
    for key in ["vitals_detail", "host", "note"] {
        if let Some(v) = doc.get(key) {
            record.insert(key.into(), v.clone());
        }
    }
    record
}

/// Commit the written tick (and push it when asked), noting the commit and the push on the
/// record. A failed commit or push is given back, to fail the run once the record is out;
/// other errors end it at once.
fn commit_and_push(
    repo: &Repo,
    plan: &Plan,
    status: TickStatus,
    push: bool,
    record: &mut Map<String, Value>,
    diag: &Diag,
) -> Result<Option<Error>> {
    let rel = Path::new(&plan.month.label()).join(format!("{}.json", plan.agent));
    let message = format!("tick: {} {} {}", plan.agent, plan.month.label(), status.as_str());
    let commit = match repo.commit_file(&rel, &message) {
        Ok(commit) => commit,
        Err(e) => return Ok(Some(e)),
    };
    record.insert("commit".into(), commit.map(Value::String).unwrap_or(Value::Null));
    if !push {
        return Ok(None);
    }
    match repo.push() {
        Ok(Pushed::NoRemote) => {
            record.insert("pushed".into(), json!(false));
            diag.warn("--push: the ticks repository has no remote; committed only");
        }
        Ok(Pushed::To { remote, rebases }) => {
            if rebases > 0 {
                record.insert("commit".into(), json!(repo.head()?));
            }
            record.insert("pushed".into(), json!(true));
            record.insert("remote".into(), json!(remote));
        }
        Err(e) => {
            record.insert("pushed".into(), json!(false));
            return Ok(Some(e));
        }
    }
    Ok(None)
}

fn write_text(
    out: &mut dyn Write,
    plan: &Plan,
    status: TickStatus,
    v: &Vitals,
    rec: &Map<String, Value>,
) -> Result<()> {
    let file = rec.get("file").and_then(Value::as_str).unwrap_or("");
    writeln!(out, "{} {}: {} -> {file}", plan.agent, plan.month.label(), status.as_str().to_uppercase())?;
    for (k, ok) in &v.values {
        let detail = v.details.get(k).and_then(Value::as_str).unwrap_or("");
        let yes = match ok.as_bool() {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        writeln!(out, "{}", format!("  {k:<28} {yes:<3}  {detail}").trim_end())?;
    }
    for (k, ok) in &plan.capabilities {
        writeln!(out, "  {:<28} {}", format!("capability {k}"), if *ok { "yes" } else { "NO" })?;
    }
    match (rec.get("commit"), rec.get("pushed")) {
        (Some(Value::String(c)), Some(Value::Bool(true))) => {
            let remote = rec.get("remote").and_then(Value::as_str).unwrap_or("");
            writeln!(out, "  committed {} and pushed to {remote}", &c[..c.len().min(10)])?
        }
        (Some(Value::String(c)), _) => writeln!(out, "  committed {}", &c[..c.len().min(10)])?,
        (Some(Value::Null), _) => writeln!(out, "  unchanged: nothing to commit")?,
        _ => {}
    }
    Ok(())
}
