//! services.json (the Agent Ops Kit's schema, unchanged, plus pitcrew's optional keys), the
//! environment overrides, and where every file lives.
//!
//! Loading never gives up on the whole file because one service is wrong: a service with a
//! missing or mistyped field becomes a [`ServiceProblem`] naming `file:line`, the service and
//! the field, and the others are loaded. A file that is not JSON at all is an error naming
//! `file:line:column`.
//!
//! The jobs live in their own files: [`paths`] (where files live), [`secrets`] (tokens),
//! [`services`] (one service entry), [`alerting`] (the sinks' settings); this file holds the
//! document, its loading and the environment helpers.

#![warn(missing_docs)]

mod alerting;
mod channels;
mod paths;
mod quorum;
mod secrets;
mod services;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

pub use self::alerting::Alerting;
pub use self::channels::{Channels, url_pieces};
pub use self::paths::Paths;
pub use self::secrets::{SECRET_ENV, Secret};
use self::services::parse_service;
pub use self::services::{Restart, Service, ServiceProblem};
use crate::check::spec::Defaults;
pub use crate::check::spec::{CheckSpec, HeartbeatSpec, UrlSpec};
use crate::error::{Error, Result};
use crate::util::fields::{Mismatch, number_value, uint_value};
pub use crate::util::proc::CommandLine;

/// An environment lookup (the process environment in binaries, a map in tests). Empty values
/// count as unset.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, empty values treated as unset.
pub fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

/// The loaded configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (for messages).
    pub path: PathBuf,
    /// The services that could be read, in file order.
    pub services: Vec<Service>,
    /// Services that could not be read; the others are in `services`.
    pub problems: Vec<ServiceProblem>,
    /// The alerting settings, environment applied.
    pub alerting: Alerting,
    /// The Agent Ops Kit's check schedule, when set.
    pub check_interval_seconds: Option<u64>,
    /// Free disk below which a warning is due (default 5).
    pub disk_warning_gb: f64,
    /// Hours after which a task counts as stalled (default 24).
    pub stalled_task_hours: f64,
    /// Days of daily metrics files to keep (default 90).
    pub metrics_retention_days: u64,
    /// The whole document, for tool-specific keys.
    pub raw: Map<String, Value>,
}

#[derive(Deserialize)]
struct RawDoc<'a> {
    #[serde(borrow, default)]
    services: Option<Vec<&'a RawValue>>,
}

impl Config {
    /// An empty configuration (no file yet): defaults everywhere, the environment applied.
    pub fn empty(path: &Path, env: Env<'_>) -> Config {
        Config::from_doc(path, Map::new(), Vec::new(), Vec::new(), env)
    }

    /// Load services.json. A missing file is an error only when `required`.
    pub fn load(path: &Path, required: bool, env: Env<'_>) -> Result<Config> {
        let bytes = match crate::store::read::read(path, crate::store::kinds::CONFIG) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(Config::empty(path, env)),
            Err(e) => return Err(Error::path("cannot read config", path, e)),
        };
        Config::parse(&bytes, path, env)
    }

    /// Parse services.json from bytes; `path` is for messages.
    pub fn parse(bytes: &[u8], path: &Path, env: Env<'_>) -> Result<Config> {
        let doc: Value = crate::ndjson::parse_json_doc(bytes, path)?;
        let Value::Object(map) = doc else {
            return Err(Error::config(format!("{}:1:1: expected a JSON object at the top level", path.display())));
        };
        let file = path.display().to_string();
        let mut services = Vec::new();
        let mut problems = Vec::new();
        check_numbers(&map, &file)?;
        match map.get("services") {
            None => {}
            Some(Value::Array(_)) => {
                let raw: RawDoc<'_> =
                    serde_json::from_slice(bytes).map_err(|e| Error::config(crate::ndjson::doc_error(path, &e)))?;
                let home = env("AGENT_OPS_HOME").map(PathBuf::from);
                let ctx = Defaults::from_top(&map, home);
                let mut seen = HashSet::new();
                for (index, rv) in raw.services.unwrap_or_default().into_iter().enumerate() {
                    let line = line_of(bytes, rv.get());
                    let value: Value = serde_json::from_str(rv.get()).unwrap_or(Value::Null);
                    match parse_service(&value, &ctx) {
                        Ok(mut s) => {
                            s.line = line;
                            if seen.insert(s.name.clone()) {
                                services.push(s);
                            } else {
                                problems.push(ServiceProblem {
                                    file: file.clone(),
                                    line,
                                    index,
                                    name: Some(s.name.clone()),
                                    message: "name: another service already has this name".into(),
                                });
                            }
                        }
                        Err(message) => problems.push(ServiceProblem {
                            file: file.clone(),
                            line,
                            index,
                            name: value.get("name").and_then(Value::as_str).map(String::from),
                            message,
                        }),
                    }
                }
            }
            Some(other) => {
                let m = Mismatch::of_kind("an array of service objects", other);
                return Err(Error::config(format!("{file}: services: {m}")));
            }
        }
        Ok(Config::from_doc(path, map, services, problems, env))
    }

    fn from_doc(
        path: &Path,
        map: Map<String, Value>,
        services: Vec<Service>,
        problems: Vec<ServiceProblem>,
        env: Env<'_>,
    ) -> Config {
        let num = |k: &str| map.get(k).and_then(number_value);
        let alerting_raw = match map.get("alerting") {
            Some(Value::Object(a)) => a.clone(),
            _ => Map::new(),
        };
        Config {
            path: path.to_path_buf(),
            services,
            problems,
            alerting: Alerting::from_map(alerting_raw, env),
            check_interval_seconds: map.get("check_interval_seconds").and_then(uint_value),
            disk_warning_gb: num("disk_warning_gb").unwrap_or(5.0),
            stalled_task_hours: num("stalled_task_hours").unwrap_or(24.0),
            metrics_retention_days: map.get("metrics_retention_days").and_then(uint_value).unwrap_or(90),
            raw: map,
        }
    }

    /// The service of that name.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// How often a service is meant to be checked, in seconds: its own `interval_seconds`,
    /// else the top-level `interval_seconds`, else `check_interval_seconds` (the Agent Ops
    /// Kit's schedule); `Ok(None)` when none is set. A value that is not a number of seconds
    /// above 0 is an error naming the field.
    pub fn interval_seconds(&self, name: &str) -> std::result::Result<Option<f64>, String> {
        // From the document itself, so that a service whose check cannot be read still has
        // its interval.
        let entry = match self.raw.get("services") {
            Some(Value::Array(list)) => list.iter().find(|s| s.get("name").and_then(Value::as_str) == Some(name)),
            _ => None,
        };
        let own = entry.and_then(|s| s.get("interval_seconds")).map(|v| (v, true));
        let top = || self.raw.get("interval_seconds").or_else(|| self.raw.get("check_interval_seconds"));
        let Some((v, own)) = own.or_else(|| top().map(|v| (v, false))) else { return Ok(None) };
        match number_value(v) {
            Some(n) if n > 0.0 && n.is_finite() => Ok(Some(n)),
            _ if v.is_null() => Ok(None),
            _ => Err(format!(
                "{}: {}interval_seconds: {}",
                self.path.display(),
                if own { format!("services[{name}].") } else { String::new() },
                Mismatch::of_value("a number of seconds above 0", v)
            )),
        }
    }

    /// Parse one service object (a line of a service stream).
    pub fn parse_service_value(&self, v: &Value, home: Option<PathBuf>) -> std::result::Result<Service, String> {
        parse_service(v, &Defaults::from_top(&self.raw, home))
    }
}

/// The line (1-based) of `inner`, a slice of `whole`.
fn line_of(whole: &[u8], inner: &str) -> usize {
    let start = inner.as_ptr() as usize;
    let base = whole.as_ptr() as usize;
    if start < base || start > base + whole.len() {
        return 0;
    }
    let off = start - base;
    whole[..off].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The top-level numbers and alerting's: a value there that is not a number (or a numeric
/// string) is a configuration error naming the file and the field, never a quiet default.
fn check_numbers(map: &Map<String, Value>, file: &str) -> Result<()> {
    let alerting = match map.get("alerting") {
        Some(Value::Object(a)) => Some(a),
        _ => None,
    };
    let fields = [
        ("", "check_interval_seconds", map.get("check_interval_seconds"), true),
        ("", "metrics_retention_days", map.get("metrics_retention_days"), true),
        ("", "disk_warning_gb", map.get("disk_warning_gb"), false),
        ("", "stalled_task_hours", map.get("stalled_task_hours"), false),
        ("alerting.", "rate_limit_seconds", alerting.and_then(|a| a.get("rate_limit_seconds")), true),
        ("alerting.", "repeat_interval_seconds", alerting.and_then(|a| a.get("repeat_interval_seconds")), true),
    ];
    for (parent, key, v, whole) in fields {
        let Some(v) = v.filter(|v| !v.is_null()) else { continue };
        let ok = if whole { uint_value(v).is_some() } else { number_value(v).is_some_and(|f| f >= 0.0) };
        if !ok {
            let want = if whole { "a whole number of at least 0" } else { "a number of at least 0" };
            return Err(Error::config(format!("{file}: {parent}{key}: {}", Mismatch::of_value(want, v))));
        }
    }
    Ok(())
}

/// A map-backed environment for tests.
pub fn env_from(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k: &str| map.get(k).filter(|v| !v.is_empty()).cloned()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const KIT_SERVICES: &str = r#"{
  "services": [
    {
      "name": "My Web App",
      "type": "url",
      "target": "https://example.com",
      "expected_status": 200,
      "timeout_seconds": 10
    },
    {
      "name": "Local Dev Server",
      "type": "port",
      "host": "127.0.0.1",
      "port": 3000
    },
    {
      "name": "Background Worker",
      "type": "process",
      "process_name": "celery",
      "restart_command": "systemctl restart celery"
    },
    { "name": "Broken", "type": "port", "port": "http" },
    { "type": "url", "target": "http://x" }
  ],
  "alerting": {
    "telegram_bot_token": "YOUR_BOT_TOKEN",
    "telegram_chat_id": "YOUR_CHAT_ID",
    "rate_limit_seconds": 300,
    "alert_on_recovery": true
  },
  "check_interval_seconds": 300,
  "disk_warning_gb": 5,
  "stalled_task_hours": 24,
  "metrics_retention_days": 90
}"#;

    #[test]
    fn loads_the_kit_schema_and_reports_bad_services_by_line() {
        let env = env_from(&[]);
        let c = Config::parse(KIT_SERVICES.as_bytes(), Path::new("services.json"), &env).unwrap();
        let names: Vec<_> = c.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["My Web App", "Local Dev Server", "Background Worker"]);
        assert_eq!(c.services[1].line, 10);
        assert_eq!(c.services[1].timeout, Duration::from_secs(3));
        let r = c.services[2].restart.as_ref().unwrap();
        assert_eq!((r.cooldown_seconds, r.max_attempts, r.timeout_seconds), (300, 3, 30));
        assert_eq!(c.problems.len(), 2);
        assert_eq!(
            c.problems[0].to_string(),
            "services.json:22: service 'Broken': port: expected a port number from 1 to 65535, found \"http\""
        );
        assert_eq!(c.problems[1].to_string(), "services.json:23: services[4]: name: missing (required)");
        assert!(c.alerting.telegram_bot_token.is_empty(), "placeholders are not tokens");
        assert_eq!(c.metrics_retention_days, 90);
    }

    #[test]
    fn numeric_strings_are_numbers_everywhere_and_other_values_are_named() {
        let env = env_from(&[]);
        let doc = br#"{"disk_warning_gb": "2.5", "metrics_retention_days": "30",
  "alerting": {"rate_limit_seconds": "120", "repeat_interval_seconds": 600},
  "services": [
    {"name": "web", "target": "http://x/", "expected_status": "204", "timeout_seconds": "5"},
    {"name": "api", "target": "http://x/", "expected_status": ["200", 301]},
    {"name": "db", "type": "port", "port": "18901", "restart_command": "true", "restart_cooldown_seconds": "60",
     "verify_delay_seconds": "0.5"},
    {"name": "bad-status", "target": "http://x/", "expected_status": "abc"},
    {"name": "bad-list", "target": "http://x/", "expected_status": [200, "ok"]},
    {"name": "bad-timeout", "type": "port", "port": 1, "timeout_seconds": "soon"},
    {"name": "bad-regex", "type": "process", "process_name": "worker-[("}
  ]}"#;
        let c = Config::parse(doc, Path::new("services.json"), &env).unwrap();
        assert_eq!(c.services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["web", "api", "db"]);
        let CheckSpec::Url(web) = &c.services[0].spec else { panic!() };
        assert_eq!((web.expected_status.as_slice(), c.services[0].timeout), (&[204u16][..], Duration::from_secs(5)));
        let CheckSpec::Url(api) = &c.services[1].spec else { panic!() };
        assert_eq!(api.expected_status, [200, 301]);
        assert!(matches!(c.services[2].spec, CheckSpec::Port { port: 18901, .. }));
        let r = c.services[2].restart.as_ref().unwrap();
        assert_eq!((r.cooldown_seconds, r.verify_delay_seconds), (60, 0.5));
        assert_eq!((c.disk_warning_gb, c.metrics_retention_days, c.alerting.rate_limit_seconds), (2.5, 30, 120));
        let problems: Vec<String> = c.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            problems,
            [
                "services.json:8: service 'bad-status': expected_status: expected an HTTP status code (100-599), found \"abc\"",
                "services.json:9: service 'bad-list': expected_status: expected HTTP status codes (100-599), found \"ok\"",
                "services.json:10: service 'bad-timeout': timeout_seconds: expected a non-negative number, found \"soon\"",
                "services.json:11: service 'bad-regex': process_name: not a valid regular expression: unclosed character class",
            ]
        );
    }

    #[test]
    fn services_null_and_numbers_that_are_not_are_configuration_errors() {
        let env = env_from(&[]);
        let e = Config::parse(br#"{"services": null}"#, Path::new("s.json"), &env).unwrap_err();
        assert_eq!(e.to_string(), "s.json: services: expected an array of service objects, found null");
        assert_eq!(e.exit_code(), 2);
        let e =
            Config::parse(br#"{"services": [], "disk_warning_gb": "lots"}"#, Path::new("s.json"), &env).unwrap_err();
        assert_eq!(e.to_string(), "s.json: disk_warning_gb: expected a number of at least 0, found \"lots\"");
        let e = Config::parse(br#"{"alerting": {"rate_limit_seconds": -1}}"#, Path::new("s.json"), &env).unwrap_err();
        assert_eq!(
            e.to_string(),
            "s.json: alerting.rate_limit_seconds: expected a whole number of at least 0, found -1"
        );
        // Absent, or null for a number, is the default.
        let c = Config::parse(br#"{"disk_warning_gb": null}"#, Path::new("s.json"), &env).unwrap();
        assert_eq!((c.services.len(), c.disk_warning_gb), (0, 5.0));
    }

    #[test]
    fn invalid_json_names_file_line_and_column() {
        let env = env_from(&[]);
        let e = Config::parse(b"{\n  \"services\": [\n    {,}\n  ]\n}", Path::new("s.json"), &env).unwrap_err();
        assert_eq!(e.to_string(), "s.json:3:6: key must be a string");
    }

    #[test]
    fn environment_overrides_alerting() {
        let env = env_from(&[
            ("TELEGRAM_BOT_TOKEN", "123:abc"),
            ("CLAW_CODE_GITEA_URL", "http://g/"),
            ("GITEA_TOKEN", "tok"),
        ]);
        let c = Config::parse(KIT_SERVICES.as_bytes(), Path::new("s.json"), &env).unwrap();
        assert_eq!(c.alerting.telegram_bot_token.expose(), "123:abc");
        assert_eq!(c.alerting.gitea_url.as_deref(), Some("http://g"));
        assert_eq!(format!("{:?}", c.alerting.gitea_token), "Secret(***)");
        assert_eq!(c.alerting.redact("url http://x/bot123:abc/send tok"), "url http://x/bot***/send tok");
    }

    #[test]
    fn heartbeat_agents_cannot_name_paths() {
        let env = env_from(&[]);
        let doc = br#"{"services":[{"name":"a","type":"heartbeat","agent":"../../etc/passwd"},
            {"name":"b","type":"heartbeat","agent":"atlas"}]}"#;
        let c = Config::parse(doc, Path::new("s.json"), &env).unwrap();
        assert_eq!(c.services.len(), 1);
        assert!(c.problems[0].message.starts_with("agent: not a valid agent id"), "{:?}", c.problems);
    }
}
