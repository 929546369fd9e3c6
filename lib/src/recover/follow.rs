//! `recover --follow`: the batch's engine, acting as records arrive.
//!
//! Every record is passed on (and flushed) as it arrives. A `down` check of a service starts a
//! settle window (`--settle`, 2 s) unless one is running; when it ends, the services that
//! failed in it are handed to the batch's walk ([`Recover::act`]): parents first, a child
//! whose parent was restarted checked again first, the ledger locked for the walk, cooldowns,
//! attempts, reset window and flapping as in the batch. A restart runs to its end (or to its
//! timeout, when its process group is killed) before anything else is read.
//!
//! A service that was acted on is quiet until the ledger would let it be restarted again
//! (its cooldown, or the quiet period after its last attempt): its down records pass through
//! without starting another restart or another `cooldown` record. A service skipped because
//! what it depends on is down is quiet as long as that one is. An `up` record ends the
//! quiet of the service, and of the services skipped because of it.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::Recover;
use crate::entry::{Diag, Out};
use crate::error::{Result, Status};
use crate::ndjson::ReadOpts;
use crate::ndjson::follow::{self, Follow, Msg};
use crate::record::{self, CheckStatus, Kind, Outcome};
use crate::restart::{Decision, Ledger, Policy};
use crate::util::stop::Event;

/// Until when a service's down records start nothing, and the service it waits for.
struct Quiet {
    until: Instant,
    behind: Option<String>,
}

/// Run until the input ends or a signal says stop. Always `Ok` on a clean end.
pub fn run(
    engine: &mut Recover<'_>,
    input: &Follow,
    settle: Duration,
    opts: ReadOpts,
    out: &mut Out,
    diag: &Diag,
) -> Result<Status> {
    let mut due: Option<Instant> = None;
    let mut failed: HashSet<String> = HashSet::new();
    let mut quiet: HashMap<String, Quiet> = HashMap::new();
    loop {
        let Some(msg) = input.next(due) else {
            act(engine, &mut failed, &mut quiet, out, diag)?;
            due = None;
            continue;
        };
        match msg {
            Msg::Record { value, .. } => {
                let name = (record::kind_of(&value) == Kind::Check)
                    .then(|| value.get("name").and_then(|v| v.as_str()).map(String::from))
                    .flatten();
                let down = CheckStatus::parse(record::str_field(&value, "status")) == Some(CheckStatus::Down);
                engine.take(value, out)?;
                std::io::Write::flush(out)?;
                let Some(name) = name else { continue };
                if !down {
                    quiet.remove(&name);
                    quiet.retain(|_, q| q.behind.as_deref() != Some(name.as_str()));
                    failed.remove(&name);
                    continue;
                }
                if quiet.get(&name).is_some_and(|q| q.until > Instant::now()) {
                    continue;
                }
                quiet.remove(&name);
                let restartable = engine.config.service(&name).is_some_and(|s| s.restart.is_some());
                failed.insert(name);
                if due.is_none() && restartable {
                    due = Some(Instant::now() + settle);
                }
            }
            Msg::Bad { why, source, line } => follow::reject(opts, diag, &source, line, why)?,
            Msg::Failed(e) => {
                act(engine, &mut failed, &mut quiet, out, diag)?;
                return Err(e);
            }
            Msg::End => {
                act(engine, &mut failed, &mut quiet, out, diag)?;
                std::io::Write::flush(out)?;
                return Ok(Status::Ok);
            }
            Msg::Event(Event::Terminate | Event::Hangup | Event::StdoutClosed) => {
                std::io::Write::flush(out)?;
                return Ok(Status::Ok);
            }
        }
    }
}

/// Act on what failed in the window, then make the services acted on quiet.
fn act(
    engine: &mut Recover<'_>,
    failed: &mut HashSet<String>,
    quiet: &mut HashMap<String, Quiet>,
    out: &mut Out,
    diag: &Diag,
) -> Result<()> {
    if failed.is_empty() {
        return Ok(());
    }
    engine.focus = Some(std::mem::take(failed));
    engine.acted.clear();
    let done = engine.act(out, diag);
    engine.focus = None;
    let acted = std::mem::take(&mut engine.acted);
    std::io::Write::flush(out)?;
    done?;
    let entries = match engine.settings.dry_run {
        true => Default::default(),
        false => Ledger::peek(&engine.settings.ledger).unwrap_or_default(),
    };
    let now = engine.clock.unix();
    let mut skipped = Vec::new();
    for (name, outcome) in acted {
        let Some(svc) = engine.config.service(&name) else { continue };
        if outcome == Outcome::Skipped {
            skipped.push(name);
            continue;
        }
        let policy = svc.restart.as_ref().map(Policy::of).unwrap_or_default();
        let wait = match entries.get(&name).cloned().unwrap_or_default().decide(&policy, now) {
            _ if engine.settings.dry_run => policy.cooldown_seconds,
            Decision::Cooldown { remaining_seconds } => remaining_seconds,
            Decision::MaxAttempts { .. } => {
                let last = entries.get(&name).map_or(now, |e| e.last_attempt);
                (last + policy.reset_after_seconds as f64 - now).max(1.0).ceil() as u64
            }
            Decision::Run { .. } => continue,
        };
        quiet.insert(name, Quiet { until: Instant::now() + Duration::from_secs(wait), behind: None });
    }
    // Skipped: quiet for as long as what it waits for.
    for name in skipped {
        let Some(svc) = engine.config.service(&name) else { continue };
        let behind = engine.blockers(svc).into_iter().next();
        let until = behind.as_ref().and_then(|b| quiet.get(b)).map(|q| q.until);
        if let (Some(until), Some(behind)) = (until, behind) {
            quiet.insert(name, Quiet { until, behind: Some(behind) });
        } else if let Some((_, end)) = engine.maintenance(svc, diag) {
            // In a maintenance window: quiet until it ends.
            let left = (end - engine.clock.now()).whole_seconds().max(1) as u64;
            quiet.insert(name, Quiet { until: Instant::now() + Duration::from_secs(left), behind: None });
        }
    }
    Ok(())
}
