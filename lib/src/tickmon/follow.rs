//! `tickmon heartbeats --follow`: the heartbeat endpoint's state as a stream of changes.
//!
//! The state file and its journal are read again whenever either changes (checked every
//! [`POLL`]), and every agent's health is evaluated again at each moment its silence would
//! cross a period of the timeout: an agent that stops sending heartbeats is announced when its
//! silence passes the timeout, even when nothing writes the state (the server stopped, say).
//! The first output is every agent's current state; after that, one record per change of an
//! agent's health or of its silence (past the timeout or not).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use serde_json::Value;

use super::beats::{self, AgentState, Health, Snapshot};
use crate::clock::Clock;
use crate::entry::Diag;
use crate::error::{Result, Status};
use crate::ndjson;
use crate::util::stop::Event;

/// How often the state file and the journal are looked at for changes.
pub const POLL: Duration = Duration::from_secs(1);

/// What `--follow` watches.
pub struct Opts {
    pub state: PathBuf,
    /// Silence after which an agent counts a failure, once per period, in seconds.
    pub timeout: f64,
    /// Only these agents (all when empty).
    pub agents: Vec<String>,
}

/// What an agent's record says that a change is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    health: Health,
    silent: bool,
}

/// Identity, length and modification time of a file, to see that it changed.
type Stat = Option<(u64, u64, u64, i64, i64)>;

fn stat(path: &Path) -> Stat {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

/// Seconds since the epoch by the real clock: silence is measured in real time even when
/// `--now` fixes the stamps.
fn real_now() -> f64 {
    crate::clock::unix_f64(time::OffsetDateTime::now_utc())
}

/// True for an agent the options ask for.
fn wanted(opts: &Opts, agent: &str) -> bool {
    opts.agents.is_empty() || opts.agents.iter().any(|a| a == agent)
}

/// The state as last read, and what was said about it.
struct Follower<'a> {
    opts: &'a Opts,
    snap: Snapshot,
    files: (Stat, Stat),
    seen: BTreeMap<String, Seen>,
    warned: BTreeSet<String>,
    pressure_since: Option<f64>,
}

impl Follower<'_> {
    /// Read the state again when its files changed. An error the first time is fatal; later,
    /// it is said and the last state read is kept.
    fn refresh(&mut self, first: bool, diag: &Diag) -> Result<()> {
        let files = (stat(&self.opts.state), stat(&beats::journal_path(&self.opts.state)));
        if !first && files == self.files {
            return Ok(());
        }
        match beats::load(&self.opts.state) {
            Ok(loaded) => {
                // A bad journal line is said once, not at every read.
                let warnings: BTreeSet<String> = loaded.warnings.into_iter().collect();
                for w in warnings.difference(&self.warned) {
                    diag.warn(w);
                }
                self.warned = warnings;
                self.snap = loaded.snapshot;
                self.files = files;
                Ok(())
            }
            Err(e) if first => Err(e),
            Err(e) => {
                diag.warn(format_args!("{e}; the state read last is kept"));
                Ok(())
            }
        }
    }

    fn wanted(&self, agent: &str) -> bool {
        wanted(self.opts, agent)
    }

    /// Write a record for every agent whose health or silence changed (every agent the first
    /// time), and the server's pressure when a new period of it started.
    fn report(&mut self, now: f64, stamp: &str, out: &mut dyn Write) -> Result<()> {
        let quiet = beats::quiet_since(&self.snap);
        if let Some(p) = self.snap.pressure.as_ref().filter(|p| !p.over)
            && self.pressure_since != Some(p.since)
        {
            self.pressure_since = Some(p.since);
            ndjson::write(out, &super::serve::pressure_finding(p, &self.opts.state, stamp))?;
        }
        let opts = self.opts;
        for a in self.snap.agents.values().filter(|a| wanted(opts, &a.agent_id)) {
            let now_seen = Seen {
                health: beats::health_at(a, now, self.opts.timeout, quiet),
                silent: now - a.last_heartbeat.max(quiet) > self.opts.timeout,
            };
            let before = self.seen.get(&a.agent_id).copied();
            if before == Some(now_seen) {
                continue;
            }
            let mut shown: AgentState = a.clone();
            beats::count_silence(&mut shown, now, self.opts.timeout, quiet);
            let mut rec = shown.record(stamp);
            rec.insert("silent_s".into(), Value::from((now - a.last_heartbeat).max(0.0).round() as u64));
            rec.insert("silent".into(), Value::Bool(now_seen.silent));
            rec.insert("previous_status".into(), before.map(|b| Value::from(b.health.as_str())).unwrap_or(Value::Null));
            ndjson::write(out, &Value::Object(rec))?;
            self.seen.insert(a.agent_id.clone(), now_seen);
        }
        // Forgotten agents are forgotten here too (a record for them would say nothing true).
        let agents = &self.snap.agents;
        self.seen.retain(|id, _| agents.contains_key(id));
        out.flush()?;
        Ok(())
    }

    /// The next moment some agent's record would change by time passing alone.
    fn next_due(&self, now: f64) -> Option<f64> {
        let t = self.opts.timeout;
        let quiet = beats::quiet_since(&self.snap);
        self.snap
            .agents
            .values()
            .filter(|a| self.wanted(&a.agent_id))
            .filter_map(|a| {
                let silence_ends = a.last_heartbeat.max(quiet) + t;
                let silent_from = (silence_ends > now).then_some(silence_ends);
                let next_period = (beats::health_at(a, now, t, quiet) != Health::Unhealthy).then(|| {
                    let base = a.last_response.max(quiet);
                    base + f64::from(beats::silent_periods(a, now, t, quiet) + 1) * t
                });
                match (silent_from, next_period) {
                    (Some(x), Some(y)) => Some(x.min(y)),
                    (x, y) => x.or(y),
                }
            })
            .reduce(f64::min)
    }
}

/// Follow the state until SIGTERM, SIGINT or the reader of stdout going away (exit 0).
pub fn run(opts: &Opts, stop: &Receiver<Event>, clock: &Clock, diag: &Diag, out: &mut dyn Write) -> Result<Status> {
    let mut f = Follower {
        opts,
        snap: Snapshot::default(),
        files: (None, None),
        seen: BTreeMap::new(),
        warned: BTreeSet::new(),
        pressure_since: None,
    };
    f.refresh(true, diag)?;
    for id in &opts.agents {
        if !f.snap.agents.contains_key(id) {
            diag.warn(format_args!("{}: no heartbeat from agent '{id}' yet", opts.state.display()));
        }
    }
    loop {
        let now = real_now();
        f.report(now, &clock.stamp(), out)?;
        // Sleep until the next poll, or sooner when an agent's silence crosses a period;
        // a little past it, so that the crossing is seen.
        let mut wait = POLL;
        if let Some(due) = f.next_due(now) {
            let until = Duration::from_secs_f64((due - now).max(0.0) + 0.01);
            wait = wait.min(until);
        }
        match stop.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => f.refresh(false, diag)?,
            // SIGHUP: read the state again at once.
            Ok(Event::Hangup) => {
                f.files = (None, None);
                f.refresh(false, diag)?;
            }
            Ok(Event::Terminate | Event::StdoutClosed) | Err(RecvTimeoutError::Disconnected) => {
                out.flush()?;
                return Ok(Status::Ok);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickmon::beats::{Event as BeatEvent, Op};

    fn follower(opts: &Opts) -> Follower<'_> {
        Follower {
            opts,
            snap: Snapshot::default(),
            files: (None, None),
            seen: BTreeMap::new(),
            warned: BTreeSet::new(),
            pressure_since: None,
        }
    }

    fn lines(out: &[u8]) -> Vec<Value> {
        String::from_utf8_lossy(out).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[test]
    fn one_record_per_change_and_silence_is_seen_by_time_alone() {
        let opts = Opts { state: PathBuf::from("hb.json"), timeout: 10.0, agents: vec![] };
        let mut f = follower(&opts);
        f.snap.apply(&BeatEvent::new(Op::Beat, "a", 1000.0));
        let mut out = Vec::new();
        f.report(1001.0, "t", &mut out).unwrap();
        f.report(1005.0, "t", &mut out).unwrap();
        let got = lines(&out);
        assert_eq!(got.len(), 1, "the first state, then nothing until a change");
        assert_eq!((got[0]["status"].as_str(), got[0]["previous_status"].clone()), (Some("healthy"), Value::Null));
        assert_eq!(f.next_due(1005.0), Some(1010.0));
        out.clear();
        f.report(1010.5, "t", &mut out).unwrap();
        let got = lines(&out);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0]["status"].as_str(), got[0]["silent"].as_bool()), (Some("degraded"), Some(true)));
        assert_eq!(got[0]["previous_status"], "healthy");
        assert!(got[0]["error"].as_str().unwrap().starts_with("no heartbeat for 11 seconds"), "{}", got[0]);
        out.clear();
        f.report(1025.0, "t", &mut out).unwrap();
        assert!(out.is_empty(), "still degraded, still silent");
        f.report(1031.0, "t", &mut out).unwrap();
        assert_eq!(lines(&out)[0]["status"], "unhealthy");
        assert_eq!(f.next_due(1031.0), None, "nothing more can change by time alone");
        out.clear();
        f.snap.apply(&BeatEvent::new(Op::Beat, "a", 1032.0));
        f.report(1032.0, "t", &mut out).unwrap();
        let got = lines(&out);
        assert_eq!((got[0]["status"].as_str(), got[0]["silent"].as_bool()), (Some("healthy"), Some(false)));
        assert_eq!(got[0]["previous_status"], "unhealthy");
    }

    #[test]
    fn only_the_agents_asked_for() {
        let opts = Opts { state: PathBuf::from("hb.json"), timeout: 10.0, agents: vec!["b".into()] };
        let mut f = follower(&opts);
        f.snap.apply(&BeatEvent::new(Op::Beat, "a", 1000.0));
        f.snap.apply(&BeatEvent::new(Op::Beat, "b", 1000.0));
        let mut out = Vec::new();
        f.report(1001.0, "t", &mut out).unwrap();
        let got = lines(&out);
        assert_eq!((got.len(), got[0]["agent"].as_str()), (1, Some("b")));
    }
}
