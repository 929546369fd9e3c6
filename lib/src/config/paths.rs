//! Where every file lives: the Agent Ops Kit's `~/.agent-ops` layout, resolved from the flags
//! and the environment.

use std::path::{Path, PathBuf};

use super::Env;

/// Where pitcrew's files live: the Agent Ops Kit's `~/.agent-ops` layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The home directory (`~/.agent-ops`).
    pub home: PathBuf,
    /// services.json.
    pub config: PathBuf,
    /// Where state files live (`HOME/state`).
    pub state: PathBuf,
    /// Where daily metrics files live.
    pub metrics: PathBuf,
    /// Where logs live.
    pub logs: PathBuf,
    /// True when the config path was named explicitly (flag or env), so its absence is an
    /// error rather than "no config yet".
    pub config_explicit: bool,
}

impl Paths {
    /// `--home` > `AGENT_OPS_HOME` > `$HOME/.agent-ops`; `--config` > `AGENT_OPS_CONFIG` >
    /// `HOME/config/services.json`; `AGENT_OPS_METRICS_DIR`, `AGENT_OPS_LOG_DIR` override
    /// `HOME/metrics` and `HOME/logs`; state is always `HOME/state`.
    pub fn resolve(home: Option<&Path>, config: Option<&Path>, env: Env<'_>) -> Paths {
        let home = match home {
            Some(h) => h.to_path_buf(),
            None => match env("AGENT_OPS_HOME") {
                Some(h) => PathBuf::from(h),
                None => PathBuf::from(env("HOME").unwrap_or_else(|| ".".into())).join(".agent-ops"),
            },
        };
        let (config, config_explicit) = match config {
            Some(c) => (c.to_path_buf(), true),
            None => match env("AGENT_OPS_CONFIG") {
                Some(c) => (PathBuf::from(c), true),
                None => (home.join("config").join("services.json"), false),
            },
        };
        let metrics = env("AGENT_OPS_METRICS_DIR").map(PathBuf::from).unwrap_or_else(|| home.join("metrics"));
        let logs = env("AGENT_OPS_LOG_DIR").map(PathBuf::from).unwrap_or_else(|| home.join("logs"));
        Paths { state: home.join("state"), home, config, metrics, logs, config_explicit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env_from;

    #[test]
    fn paths_follow_the_kit() {
        let env = env_from(&[("HOME", "/home/u"), ("AGENT_OPS_METRICS_DIR", "/m")]);
        let p = Paths::resolve(None, None, &env);
        assert_eq!(p.config, PathBuf::from("/home/u/.agent-ops/config/services.json"));
        assert_eq!(p.metrics, PathBuf::from("/m"));
        assert_eq!(p.state, PathBuf::from("/home/u/.agent-ops/state"));
        assert!(!p.config_explicit);
    }
}
