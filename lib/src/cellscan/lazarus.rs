//! The Lazarus Pit daemon's own config file (`~/.lazarus/config.json`), read unchanged: each
//! key it sets becomes the matching cellscan setting, under the command line and environment.
//!
//! | key             | cellscan setting                                                     |
//! |-----------------|----------------------------------------------------------------------|
//! | `missions_path` | the missions directory (under DIR, `--missions`, AGENT_OPS_MISSIONS) |
//! | `poll_interval` | the interval of `scan --watch` and `revive --watch` without SECONDS |
//! | `timeout`       | a cell's checkpoint interval when its cell.json sets none            |
//! | `max_retries`   | a cell's `max_retries` when its config/policies.json sets none       |
//! | `auto_revive`   | a cell's `auto_revive` (true: yes, false: no) when its files set none |
//! | `gateways`      | the gateways agents name: a list of names, or an object of name: address |
//! | `log_level`     | ignored: pitcrew has no log levels (stderr carries warnings and errors) |

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::model::AutoRevive;
use crate::config::Env;
use crate::error::{Error, Result};

/// The settings a cell takes from the Lazarus config when its own files say nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Defaults {
    /// `auto_revive`: true is `yes`, false is `no`.
    pub(crate) auto_revive: Option<AutoRevive>,
    /// `timeout`, in seconds.
    pub(crate) checkpoint_interval: Option<u64>,
    /// `max_retries`.
    pub(crate) max_retries: Option<u32>,
}

/// The Lazarus config as cellscan uses it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lazarus {
    /// The file it was read from.
    pub(crate) path: PathBuf,
    pub(crate) missions: Option<PathBuf>,
    pub(crate) poll_interval: Option<Duration>,
    pub(crate) defaults: Defaults,
    /// `gateways`: the daemon's list of names, or an object of name: address.
    pub(crate) gateways: Option<Value>,
    /// The keys present that cellscan does not use, each with why.
    pub(crate) ignored: Vec<(String, &'static str)>,
}

/// The daemon's file, key for key (the daemon's types: seconds as numbers, a bool).
#[derive(Deserialize)]
struct Raw {
    poll_interval: Option<f64>,
    timeout: Option<f64>,
    max_retries: Option<u32>,
    auto_revive: Option<bool>,
    gateways: Option<Value>,
    missions_path: Option<String>,
    log_level: Option<String>,
    #[serde(flatten)]
    other: serde_json::Map<String, Value>,
}

/// The file to read: `--lazarus-config PATH` (must exist), else `$HOME/.lazarus/config.json`
/// when it exists.
pub(crate) fn locate(flag: Option<&Path>, env: Env<'_>) -> Option<(PathBuf, bool)> {
    if let Some(p) = flag {
        return Some((p.to_path_buf(), true));
    }
    let home = env("HOME").filter(|h| !h.is_empty())?;
    Some((Path::new(&home).join(".lazarus").join("config.json"), false))
}

/// Read the Lazarus config: `None` when there is none to read. A file named on the command
/// line must exist; a malformed file is an error naming path:line:column.
pub(crate) fn load(flag: Option<&Path>, env: Env<'_>) -> Result<Option<Lazarus>> {
    let Some((path, required)) = locate(flag, env) else { return Ok(None) };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
        Err(e) => return Err(Error::path("cannot read the Lazarus config", &path, e)),
    };
    parse(&path, &text).map(Some)
}

/// Parse the text of a Lazarus config read from `path`.
pub(crate) fn parse(path: &Path, text: &str) -> Result<Lazarus> {
    let bad =
        |line: usize, column: usize, why: String| Error::config(format!("{}:{line}:{column}: {why}", path.display()));
    let raw: Raw = serde_json::from_str(text).map_err(|e| bad(e.line(), e.column(), e.to_string()))?;
    let seconds = |key: &str, v: Option<f64>| -> Result<Option<f64>> {
        match v {
            Some(s) if !(s.is_finite() && s > 0.0) => {
                Err(Error::config(format!("{}: {key}: must be a positive number of seconds, not {s}", path.display())))
            }
            other => Ok(other),
        }
    };
    let mut lz = Lazarus { path: path.to_path_buf(), ..Lazarus::default() };
    lz.poll_interval = seconds("poll_interval", raw.poll_interval)?.map(|s| Duration::from_secs_f64(s.max(0.01)));
    lz.defaults.checkpoint_interval = seconds("timeout", raw.timeout)?.map(|s| s.ceil() as u64);
    lz.defaults.max_retries = raw.max_retries;
    lz.defaults.auto_revive = raw.auto_revive.map(|b| if b { AutoRevive::Yes } else { AutoRevive::No });
    lz.missions = raw.missions_path.filter(|m| !m.is_empty()).map(PathBuf::from);
    lz.gateways = raw.gateways;
    if raw.log_level.is_some() {
        lz.ignored.push(("log_level".into(), "pitcrew has no log levels: stderr carries warnings and errors"));
    }
    for k in raw.other.keys() {
        lz.ignored.push((k.clone(), "not a key of the Lazarus Pit daemon"));
    }
    Ok(lz)
}

impl Lazarus {
    /// The one stderr line that says which keys are ignored and why, if any are.
    pub(crate) fn ignored_note(&self) -> Option<String> {
        if self.ignored.is_empty() {
            return None;
        }
        let keys: Vec<String> = self.ignored.iter().map(|(k, why)| format!("{k} ({why})")).collect();
        Some(format!("{}: ignoring {}", self.path.display(), keys.join("; ")))
    }
}

/// The example config `cellscan init --example-config` writes: the daemon's keys and values.
pub(crate) const EXAMPLE: &str = r#"{
  "poll_interval": 30,
  "timeout": 300,
  "max_retries": 3,
  "auto_revive": true,
  "gateways": ["gateway_1", "gateway_2"],
  "missions_path": "/var/missions",
  "log_level": "INFO"
}
"#;

/// What each key of [`EXAMPLE`] does in cellscan (JSON has no comments: this goes to stderr).
pub(crate) const EXAMPLE_NOTES: &str = "\
poll_interval  seconds between passes of `cellscan scan --watch` and `revive --watch` given without SECONDS
timeout        seconds an active agent may go without a checkpoint, where cell.json sets none
max_retries    revival attempts, where a cell's config/policies.json sets none
auto_revive    true: revive failed agents (policy yes), false: never (no), where a cell sets none
gateways       the gateways agents name (their files' `gateway`); give each an address
               (\"gateway_1\": \"http://127.0.0.1:8001/health\", or host:port) in services.json's
               gateways, or make this an object of name: address, and each is checked once a scan
missions_path  the missions directory, under DIR, --missions and AGENT_OPS_MISSIONS
log_level      ignored: pitcrew has no log levels";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemons_example_maps_every_key() {
        let lz = parse(Path::new("c.json"), EXAMPLE).unwrap();
        assert_eq!(lz.poll_interval, Some(Duration::from_secs(30)));
        assert_eq!(lz.missions.as_deref(), Some(Path::new("/var/missions")));
        assert_eq!(
            lz.defaults,
            Defaults { auto_revive: Some(AutoRevive::Yes), checkpoint_interval: Some(300), max_retries: Some(3) }
        );
        let ignored: Vec<&str> = lz.ignored.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(ignored, ["log_level"]);
        assert_eq!(lz.gateways, Some(serde_json::json!(["gateway_1", "gateway_2"])));
    }

    #[test]
    fn malformed_names_line_and_column() {
        let e = parse(Path::new("c.json"), "{\n  \"timeout\": 300,\n  oops\n}").unwrap_err().to_string();
        assert!(e.contains("c.json:3:3"), "{e}");
        let e = parse(Path::new("c.json"), "{\n  \"auto_revive\": \"yes\"\n}").unwrap_err().to_string();
        assert!(e.contains("c.json:2:"), "{e}");
    }
}
