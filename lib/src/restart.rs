//! The restart engine shared by `recover` (services) and `cellscan revive` (agents): the
//! Agent Ops Kit's rules for when to try again, a ledger of attempts, and the command run in
//! its own process group under a time limit.
//!
//! Rules, in the Agent Ops Kit's order: within `cooldown_seconds` of the last attempt, do nothing
//! (`cooldown`); after `reset_after_seconds` without an attempt, forget the count; at
//! `max_attempts`, give up (`max_attempts`) until that quiet period passes; otherwise run the
//! command and count the attempt. Restarts are also remembered with their times, so a
//! service restarted `flap_restarts` times within `flap_window_seconds` is called flapping
//! even when every restart "worked".
//!
//! The ledger is the Agent Ops Kit's `recovery.json` (`{name: {attempts, last_attempt,
//! last_success}}`, times in seconds since the epoch), plus `restarts`, the recent restart
//! times. Callers hold its lock for their whole run (see [`Ledger::open`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{CommandLine, Restart};
use crate::error::Result;
use crate::store::{self, Dir, Lock, LockGuard};
use crate::util::proc;

/// When and how often to restart.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub cooldown_seconds: u64,
    pub max_attempts: u32,
    pub timeout_seconds: u64,
    pub reset_after_seconds: u64,
    pub flap_restarts: u32,
    pub flap_window_seconds: u64,
}

impl Policy {
    /// The policy of a service's restart settings.
    pub fn of(r: &Restart) -> Policy {
        Policy {
            cooldown_seconds: r.cooldown_seconds,
            max_attempts: r.max_attempts,
            timeout_seconds: r.timeout_seconds,
            reset_after_seconds: r.reset_after_seconds,
            flap_restarts: r.flap_restarts,
            flap_window_seconds: r.flap_window_seconds,
        }
    }
}

impl Default for Policy {
    /// The Agent Ops Kit's defaults: 300 s cooldown, 3 attempts, 30 s timeout, reset after an hour;
    /// flapping at 3 restarts within an hour.
    fn default() -> Policy {
        Policy {
            cooldown_seconds: 300,
            max_attempts: 3,
            timeout_seconds: 30,
            reset_after_seconds: 3600,
            flap_restarts: 3,
            flap_window_seconds: 3600,
        }
    }
}

/// One subject's history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub last_attempt: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<f64>,
    /// Times of recent restart attempts (pruned to the flap window).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restarts: Vec<f64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What the rules say to do now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Run the command; this will be attempt number `attempt`.
    Run { attempt: u32 },
    /// Too soon after the last attempt.
    Cooldown { remaining_seconds: u64 },
    /// Attempts exhausted until a quiet period passes.
    MaxAttempts { attempts: u32 },
}

impl Entry {
    /// Apply the Agent Ops Kit's rules at time `now` (seconds since the epoch). Resets the attempt
    /// count after a quiet period, as the Agent Ops Kit did.
    ///
    /// A last attempt in the future (the clock was set back) counts as made `now`: the
    /// cooldown still holds, and ends, instead of lasting until the clock catches up. Callers
    /// save the entry when this changed it.
    pub fn decide(&mut self, policy: &Policy, now: f64) -> Decision {
        if self.last_attempt > now {
            self.last_attempt = now;
        }
        let since = now - self.last_attempt;
        if self.last_attempt > 0.0 && since < policy.cooldown_seconds as f64 {
            return Decision::Cooldown { remaining_seconds: (policy.cooldown_seconds as f64 - since).ceil() as u64 };
        }
        if since > policy.reset_after_seconds as f64 {
            self.attempts = 0;
        }
        if self.attempts >= policy.max_attempts {
            return Decision::MaxAttempts { attempts: self.attempts };
        }
        Decision::Run { attempt: self.attempts + 1 }
    }

    /// Count an attempt made at `now`, and whether it worked.
    pub fn record(&mut self, policy: &Policy, now: f64, success: bool) {
        self.begin(policy, now);
        if success {
            self.succeeded(now);
        }
    }

    /// Count an attempt starting at `now`, before its command runs: saved at once, it holds
    /// even if the run is killed while the command runs.
    pub fn begin(&mut self, policy: &Policy, now: f64) {
        self.attempts += 1;
        self.last_attempt = now;
        self.restarts.push(now);
        self.prune(policy, now);
    }

    /// Note that the attempt made at `now` worked.
    pub fn succeeded(&mut self, now: f64) {
        self.last_success = Some(now);
    }

    /// The attempts that count at `now`: none once the quiet period has passed.
    pub fn attempts_at(&self, policy: &Policy, now: f64) -> u32 {
        if now - self.last_attempt > policy.reset_after_seconds as f64 { 0 } else { self.attempts }
    }

    /// Forget restart times older than the flap window.
    pub fn prune(&mut self, policy: &Policy, now: f64) {
        let window = policy.flap_window_seconds as f64;
        self.restarts.retain(|t| now - t <= window);
    }

    /// Restarts within the flap window, and whether that many means flapping.
    pub fn flapping(&self, policy: &Policy, now: f64) -> (bool, u32) {
        let window = policy.flap_window_seconds as f64;
        let n = self.restarts.iter().filter(|t| now - **t <= window).count() as u32;
        (policy.flap_restarts > 0 && n >= policy.flap_restarts, n)
    }
}

/// The ledger file, locked for as long as this value lives.
pub struct Ledger {
    dir: Dir,
    name: String,
    pub entries: BTreeMap<String, Entry>,
}

/// An open, locked ledger. Keep the guard alive for the whole run.
pub struct Held<'a> {
    pub ledger: Ledger,
    _guard: LockGuard<'a>,
}

/// The directory of a ledger path (created) and the ledger's name in it.
fn place(path: &Path) -> Result<(Dir, String)> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("recovery.json").to_string();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Ok((Dir::create(dir)?, name))
}

impl Ledger {
    /// Take the ledger's lock (`<path>.lock`), waiting for another run to finish, then read
    /// it. A ledger that is not valid JSON is an error: it is never silently replaced.
    pub fn open<'a>(path: &Path, lock: &'a mut Lock) -> Result<Held<'a>> {
        let (dir, name) = place(path)?;
        Ledger::open_in(dir, &name, lock)
    }

    /// [`Ledger::open`] for a ledger `name` in a directory held open (a mission cell's
    /// `logs/`): the ledger is read and written relative to it, never through a link.
    pub fn open_in<'a>(dir: Dir, name: &str, lock: &'a mut Lock) -> Result<Held<'a>> {
        let guard = lock.acquire()?;
        let entries: BTreeMap<String, Entry> = dir.read_json(name, store::kinds::LEDGER)?.unwrap_or_default();
        Ok(Held { ledger: Ledger { dir, name: name.to_string(), entries }, _guard: guard })
    }

    /// The lock for a ledger path.
    pub fn lock(path: &Path) -> Result<Lock> {
        Lock::for_file(path)
    }

    /// The lock of a ledger `name` in a directory held open: `NAME.lock` beside it.
    pub fn lock_in(dir: &Dir, name: &str) -> Result<Lock> {
        dir.lock(&format!("{name}.lock"))
    }

    /// Read a ledger without locking it (dry runs); empty when it does not exist.
    pub fn peek(path: &Path) -> Result<BTreeMap<String, Entry>> {
        Ok(store::read_json(path, store::kinds::LEDGER)?.unwrap_or_default())
    }

    /// Write the ledger atomically (0600: it is the service user's record).
    pub fn save(&self) -> Result<()> {
        self.dir.write_json(&self.name, &self.entries, store::Perm::Private)
    }

    pub fn entry(&mut self, name: &str) -> &mut Entry {
        self.entries.entry(name.to_string()).or_default()
    }
}

/// Run a restart command through `sh -c` in its own process group, killing the group at the
/// time limit. `env` is added to the command's environment.
pub fn run(
    command: &str,
    timeout: Duration,
    env: Vec<(String, String)>,
    cwd: Option<&Path>,
) -> std::io::Result<proc::Outcome> {
    let cmd = CommandLine::Shell(command.to_string());
    let mut spec = proc::Spec::new(&cmd, timeout);
    spec.env = env;
    spec.cwd = cwd;
    spec.capture_limit = 16 * 1024;
    proc::run(&spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kits_rules() {
        let p = Policy::default();
        let mut e = Entry::default();
        let t0 = 1_000_000.0;
        assert_eq!(e.decide(&p, t0), Decision::Run { attempt: 1 });
        e.record(&p, t0, false);
        assert_eq!(e.decide(&p, t0 + 10.0), Decision::Cooldown { remaining_seconds: 290 });
        assert_eq!(e.decide(&p, t0 + 301.0), Decision::Run { attempt: 2 });
        e.record(&p, t0 + 301.0, true);
        e.record(&p, t0 + 602.0, true);
        assert_eq!(e.decide(&p, t0 + 903.0), Decision::MaxAttempts { attempts: 3 });
        assert_eq!(e.flapping(&p, t0 + 903.0), (true, 3));
        // A clock set back does not stretch the cooldown.
        let mut skewed = e.clone();
        assert_eq!(skewed.decide(&p, t0 - 86_400.0), Decision::Cooldown { remaining_seconds: 300 });
        assert_eq!(skewed.decide(&p, t0 - 86_400.0 + 301.0), Decision::MaxAttempts { attempts: 3 });
        // A quiet hour forgets the count.
        assert_eq!(e.decide(&p, t0 + 602.0 + 3601.0), Decision::Run { attempt: 1 });
        assert_eq!(e.flapping(&p, t0 + 602.0 + 3601.0), (false, 0));
    }

    #[test]
    fn reads_the_kits_ledger() {
        let kit = r#"{"Web Server": {"attempts": 2, "last_attempt": 1736937000.5, "last_success": 1736937000.5}}"#;
        let l: BTreeMap<String, Entry> = serde_json::from_str(kit).unwrap();
        assert_eq!(l["Web Server"].attempts, 2);
        assert!(l["Web Server"].restarts.is_empty());
    }
}
