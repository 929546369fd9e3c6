//! The process table, read once per run and shared by every process check (a resident run
//! reads it again when its snapshot is older than a set age).
//!
//! A process matches like `pgrep -f`: the pattern (a regular expression; services.json's
//! reader refuses one that does not compile) is searched in the full command line, arguments joined by spaces, or
//! in the process name when the command line is empty (kernel threads). The probe's own
//! process never matches.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use regex::Regex;

use crate::store::{kinds, read};

/// One process: its pid and what `pgrep -f` would match against.
#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: u32,
    pub cmdline: String,
}

/// A lazily read snapshot of the process table.
#[derive(Default)]
pub struct ProcTable {
    /// How old a snapshot may be before it is read again; `None`: never read again.
    max_age: Option<Duration>,
    snapshot: Mutex<Option<(Instant, Snapshot)>>,
}

type Snapshot = Arc<Result<Vec<Proc>, String>>;

impl ProcTable {
    /// A table read once, on first use.
    pub fn new() -> ProcTable {
        ProcTable::default()
    }

    /// A table read on first use and again whenever its snapshot is older than `max_age`.
    pub fn refreshed(max_age: Duration) -> ProcTable {
        ProcTable { max_age: Some(max_age), snapshot: Mutex::new(None) }
    }

    /// The processes (read on first use, or when the snapshot is too old).
    pub fn procs(&self) -> Snapshot {
        let mut held = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
        match &*held {
            Some((at, snap)) if self.max_age.is_none_or(|max| at.elapsed() <= max) => snap.clone(),
            _ => {
                let snap = Arc::new(read_procs());
                *held = Some((Instant::now(), snap.clone()));
                snap
            }
        }
    }

    /// Pids whose command line matches `pattern`, excluding this process.
    pub fn matching(&self, pattern: &str) -> Result<Vec<u32>, String> {
        let re = Regex::new(pattern).map_err(|e| format!("process_name is not a valid regular expression: {e}"))?;
        let me = std::process::id();
        let snap = self.procs();
        let procs = snap.as_ref().as_ref().map_err(Clone::clone)?;
        Ok(procs.iter().filter(|p| p.pid != me && re.is_match(&p.cmdline)).map(|p| p.pid).collect())
    }
}

#[cfg(target_os = "linux")]
fn read_procs() -> Result<Vec<Proc>, String> {
    let dir = std::fs::read_dir("/proc").map_err(|e| format!("cannot read /proc: {e}"))?;
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let path = entry.path();
        // A process may exit between listing and reading: skip it.
        let Ok(raw) = read::read(&path.join("cmdline"), kinds::PROC) else { continue };
        let cmdline = if raw.is_empty() {
            match read::read_text(&path.join("comm"), kinds::PROC) {
                Ok(c) => c.trim_end().to_string(),
                Err(_) => continue,
            }
        } else {
            let trimmed = raw.strip_suffix(&[0]).unwrap_or(&raw);
            String::from_utf8_lossy(trimmed).replace('\0', " ")
        };
        out.push(Proc { pid, cmdline });
    }
    Ok(out)
}

#[cfg(not(target_os = "linux"))]
fn read_procs() -> Result<Vec<Proc>, String> {
    // Elsewhere, ask ps for pid and full command line.
    let out = std::process::Command::new("ps")
        .args(["-axww", "-o", "pid=,command="])
        .output()
        .map_err(|e| format!("cannot run ps: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let (pid, cmd) = l.split_once(' ')?;
            Some(Proc { pid: pid.parse().ok()?, cmdline: cmd.trim().to_string() })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_other_processes_but_never_itself() {
        let mut child = std::process::Command::new("sleep").arg("7.25").spawn().unwrap();
        // Between fork and exec the child still shows the test's own command line: wait.
        let mut found = Vec::new();
        for _ in 0..100 {
            found = ProcTable::new().matching("sleep 7\\.25").unwrap();
            if !found.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(found, vec![child.id()]);
        let t = ProcTable::new();
        let me = std::process::id();
        assert!(!t.matching(".").unwrap().contains(&me));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_refreshed_table_sees_a_process_started_after_its_first_read() {
        let once = ProcTable::new();
        let fresh = ProcTable::refreshed(std::time::Duration::from_millis(50));
        assert!(once.matching("sleep 7\\.375").unwrap().is_empty());
        assert!(fresh.matching("sleep 7\\.375").unwrap().is_empty());
        let mut child = std::process::Command::new("sleep").arg("7.375").spawn().unwrap();
        let mut found = Vec::new();
        for _ in 0..100 {
            std::thread::sleep(std::time::Duration::from_millis(60));
            found = fresh.matching("sleep 7\\.375").unwrap();
            if !found.is_empty() {
                break;
            }
        }
        assert_eq!(found, vec![child.id()]);
        assert!(once.matching("sleep 7\\.375").unwrap().is_empty(), "a run's snapshot stays as read");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn invalid_regex_is_an_error_not_a_substring() {
        let t = ProcTable::new();
        assert!(t.matching("no-such-process-[(").is_err());
    }
}
