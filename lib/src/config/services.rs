//! One service entry of services.json: its check, dependencies and restart settings, or the
//! problem that kept it out, naming `file:line`, the service and the field.

use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::check::Job;
use crate::check::spec::{self, CheckSpec, Defaults};
use crate::util::fields::Fields;

/// A service entry that could not be used.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceProblem {
    /// The file, as shown in messages.
    pub file: String,
    /// Line where the entry starts (0 when unknown).
    pub line: usize,
    /// Its index in `services`.
    pub index: usize,
    /// Its name, when it has a readable one.
    pub name: Option<String>,
    /// What is wrong, naming the field.
    pub message: String,
}

impl ServiceProblem {
    /// What it is about: the service name, or `services[i]`.
    pub fn subject(&self) -> String {
        self.name.clone().unwrap_or_else(|| format!("services[{}]", self.index))
    }
}

impl fmt::Display for ServiceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.name {
            Some(n) => format!("service '{n}'"),
            None => format!("services[{}]", self.index),
        };
        if self.line > 0 {
            write!(f, "{}:{}: {}: {}", self.file, self.line, what, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, what, self.message)
        }
    }
}

/// One service to check (and perhaps restart).
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Its unique name.
    pub name: String,
    /// Line of services.json where the entry starts (0 when it came from a stream).
    pub line: usize,
    /// What to check.
    pub spec: CheckSpec,
    /// The check's own time limit.
    pub timeout: Duration,
    /// Services it needs up first (`depends_on`).
    pub depends_on: Vec<String>,
    /// How to restart it, when it has a `restart_command`.
    pub restart: Option<Restart>,
    /// The entry as written, for tool-specific keys.
    pub raw: Map<String, Value>,
}

impl Service {
    /// The check type's name as it appears in `check` records.
    pub fn type_name(&self) -> &'static str {
        self.spec.type_name()
    }

    /// The target as shown in `check` records.
    pub fn target(&self) -> String {
        self.spec.target()
    }

    /// The service's check, as the engine runs it.
    pub fn job(&self) -> Job {
        Job::new(self.name.clone(), self.spec.clone(), self.timeout)
    }
}

/// Restart settings of a service with a `restart_command`.
#[derive(Debug, Clone, PartialEq)]
pub struct Restart {
    /// The shell command (`restart_command`).
    pub command: String,
    /// Seconds between two restarts (`restart_cooldown_seconds`, default 300).
    pub cooldown_seconds: u64,
    /// Restarts before giving up (`max_restart_attempts`, default 3).
    pub max_attempts: u32,
    /// The command's time limit (`restart_timeout_seconds`, default 30).
    pub timeout_seconds: u64,
    /// Seconds to wait before checking again (default 2).
    pub verify_delay_seconds: f64,
    /// Restarts within the flap window that mark it flapping (default 3).
    pub flap_restarts: u32,
    /// The flap window (default 3600).
    pub flap_window_seconds: u64,
    /// Healthy seconds after which attempts reset (`restart_reset_seconds`, default 3600).
    pub reset_after_seconds: u64,
}

/// One service entry: its name, its check (read by [`crate::check::spec`]), dependencies and
/// restart settings. The first problem found is the error, naming its field.
pub(super) fn parse_service(v: &Value, defaults: &Defaults) -> std::result::Result<Service, String> {
    let Value::Object(obj) = v else {
        return Err("expected a JSON object".into());
    };
    let mut f = Fields::new(obj);
    let name = f.required_string("name");
    let type_name = f.string("type").unwrap_or_else(|| "url".into());
    let timeout_s = f.number("timeout_seconds").unwrap_or(spec::default_timeout(&type_name));
    let spec = spec::parse(&mut f, &type_name, defaults);
    let depends_on = f.strings("depends_on");
    let restart = match f.string("restart_command") {
        Some(cmd) if !cmd.trim().is_empty() => Some(Restart {
            command: cmd,
            cooldown_seconds: f.uint("restart_cooldown_seconds", u64::MAX).unwrap_or(300),
            max_attempts: f.uint("max_restart_attempts", u32::MAX as u64).unwrap_or(3) as u32,
            timeout_seconds: f.uint("restart_timeout_seconds", u64::MAX).unwrap_or(30),
            verify_delay_seconds: f.number("verify_delay_seconds").unwrap_or(2.0),
            flap_restarts: f.uint("flap_restarts", u32::MAX as u64).unwrap_or(3) as u32,
            flap_window_seconds: f.uint("flap_window_seconds", u64::MAX).unwrap_or(3600),
            reset_after_seconds: f.uint("restart_reset_seconds", u64::MAX).unwrap_or(3600),
        }),
        _ => None,
    };
    if let Some(e) = f.error {
        return Err(e);
    }
    if !(timeout_s > 0.0 && timeout_s < 1e7) {
        return Err("timeout_seconds: expected a positive number of seconds".into());
    }
    Ok(Service {
        name,
        line: 0,
        spec,
        timeout: Duration::from_secs_f64(timeout_s),
        depends_on,
        restart,
        raw: obj.clone(),
    })
}
