//! The client of a heartbeat endpoint (tickmon serve): `GET /agent/<id>` answers the agent's
//! state, 404 when the agent never sent a heartbeat.
//!
//! Every request is bounded by a timeout. The first transport failure (refused, timed out,
//! unresolvable) or refused token marks the endpoint down for the rest of the scan, so a
//! dead endpoint costs one timeout, not one per agent. Requests go through the check
//! engine's HTTP client ([`crate::check::http`]).

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::check::http::{BlockingClient, Request};
use crate::clock;
use crate::config::Secret;
use crate::error::{Error, Result};

/// The biggest agent state read.
const BODY_LIMIT: usize = 256 * 1024;

/// An agent's state as the endpoint knows it (the fields cellscan uses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct AgentState {
    /// healthy, degraded or unhealthy.
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) consecutive_failures: u64,
    /// The last heartbeat, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_heartbeat: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error_message: Option<String>,
    /// Seconds since the epoch of the last heartbeat (for verifying a revival).
    #[serde(skip)]
    pub(crate) last_heartbeat_unix: Option<f64>,
}

/// What the endpoint said of one agent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    State(AgentState),
    /// 404: the endpoint never heard from this agent.
    Unknown,
    /// The endpoint could not be asked, or answered nonsense.
    Failed(String),
}

#[derive(Deserialize)]
struct WireState {
    status: String,
    #[serde(default)]
    consecutive_failures: Option<f64>,
    #[serde(default)]
    last_heartbeat: Option<f64>,
    #[serde(default)]
    last_heartbeat_at: Option<String>,
    #[serde(default)]
    error_message: Option<String>,
}

/// A heartbeat endpoint.
pub struct Heartbeat {
    base: String,
    client: BlockingClient,
    timeout: Duration,
    token: Option<Secret>,
    down: Mutex<Option<String>>,
}

impl Heartbeat {
    /// An endpoint at `url` (`http://host:port`, perhaps with a path prefix).
    pub(crate) fn new(url: &str, token: Option<Secret>, timeout: Duration) -> Result<Heartbeat> {
        let base = url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.len() <= "https://".len() {
            return Err(Error::usage(format!("--heartbeat-url: '{url}' is not an http:// or https:// URL")));
        }
        let client = BlockingClient::new(concat!("pitcrew-cellscan/", env!("CARGO_PKG_VERSION")))
            .map_err(|e| Error::io("cannot start the HTTP client", e))?;
        Ok(Heartbeat { base, client, timeout, token, down: Mutex::new(None) })
    }

    /// Why the endpoint was given up on in this scan, if it was.
    pub(crate) fn down(&self) -> Option<String> {
        self.down.lock().ok().and_then(|d| d.clone())
    }

    fn mark_down(&self, why: &str) {
        if let Ok(mut d) = self.down.lock() {
            d.get_or_insert_with(|| why.to_string());
        }
    }

    /// Forget that the endpoint was down (before the next scan of a watch).
    pub(crate) fn reset(&self) {
        if let Ok(mut d) = self.down.lock() {
            *d = None;
        }
    }

    /// Ask for one agent's state. `id` must be a safe id (no characters to escape).
    pub(crate) fn agent(&self, id: &str) -> Answer {
        if let Some(why) = self.down() {
            return Answer::Failed(why);
        }
        let url = format!("{}/agent/{id}", self.base);
        let headers: Vec<(String, String)> = match &self.token {
            Some(t) => vec![("Authorization".into(), format!("Bearer {}", t.expose()))],
            None => Vec::new(),
        };
        let mut req = Request::get(&url, self.timeout);
        req.headers = &headers;
        req.body_limit = Some(BODY_LIMIT);
        let resp = match self.client.fetch(&req) {
            Ok(r) => r,
            Err(e) => {
                let why = match &self.token {
                    Some(t) => t.redact(&format!("{}: {e}", self.base)),
                    None => format!("{}: {e}", self.base),
                };
                self.mark_down(&why);
                return Answer::Failed(why);
            }
        };
        let code = resp.status;
        let (body, read) = match resp.body {
            Ok(b) => (b, Ok(())),
            Err(e) => (String::new(), Err(e)),
        };
        match code {
            200 => {}
            404 => return Answer::Unknown,
            401 | 403 => {
                let why = format!("{}: HTTP {code}: the endpoint refused the token", self.base);
                self.mark_down(&why);
                return Answer::Failed(why);
            }
            _ => return Answer::Failed(format!("GET {url}: HTTP {code}{}", error_text(&body))),
        }
        if let Err(e) = read {
            return Answer::Failed(format!("GET {url}: reading the answer: {e}"));
        }
        match serde_json::from_str::<WireState>(&body) {
            Ok(w) if matches!(w.status.as_str(), "healthy" | "degraded" | "unhealthy") => {
                let last_heartbeat = w
                    .last_heartbeat_at
                    .clone()
                    .or_else(|| w.last_heartbeat.and_then(clock::from_unix_f64).map(clock::fmt_ts));
                let last_heartbeat_unix = w
                    .last_heartbeat
                    .or_else(|| w.last_heartbeat_at.as_deref().and_then(clock::parse_ts).map(clock::unix_f64));
                Answer::State(AgentState {
                    status: w.status,
                    consecutive_failures: w.consecutive_failures.map(|f| f.max(0.0) as u64).unwrap_or(0),
                    last_heartbeat,
                    error_message: w.error_message,
                    last_heartbeat_unix,
                })
            }
            Ok(w) => Answer::Failed(format!("GET {url}: unknown agent status '{}'", w.status)),
            Err(e) => Answer::Failed(format!("GET {url}: the answer is not an agent state: {e}")),
        }
    }
}

/// `: why` from an `{"error": "why"}` body, or nothing.
fn error_text(body: &str) -> String {
    #[derive(Deserialize)]
    struct E {
        error: String,
    }
    match serde_json::from_str::<E>(body) {
        Ok(e) => format!(": {}", e.error),
        Err(_) => String::new(),
    }
}
