//! The process table, read once per run and shared by every process check.
//!
//! A process matches like `pgrep -f`: the pattern (a regular expression; services.json's
//! reader refuses one that does not compile) is searched in the full command line, arguments joined by spaces, or
//! in the process name when the command line is empty (kernel threads). The probe's own
//! process never matches.

use std::sync::OnceLock;

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
    snapshot: OnceLock<Result<Vec<Proc>, String>>,
}

impl ProcTable {
    pub fn new() -> ProcTable {
        ProcTable::default()
    }

    /// The processes (read on first use).
    pub fn procs(&self) -> Result<&[Proc], String> {
        match self.snapshot.get_or_init(read_procs) {
            Ok(v) => Ok(v),
            Err(e) => Err(e.clone()),
        }
    }

    /// Pids whose command line matches `pattern`, excluding this process.
    pub fn matching(&self, pattern: &str) -> Result<Vec<u32>, String> {
        let re = Regex::new(pattern).map_err(|e| format!("process_name is not a valid regular expression: {e}"))?;
        let me = std::process::id();
        Ok(self.procs()?.iter().filter(|p| p.pid != me && re.is_match(&p.cmdline)).map(|p| p.pid).collect())
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
    fn invalid_regex_is_an_error_not_a_substring() {
        let t = ProcTable::new();
        assert!(t.matching("no-such-process-[(").is_err());
    }
}
