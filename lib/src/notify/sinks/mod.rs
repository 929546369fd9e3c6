//! Where alerts go: Telegram, Gitea issues, Alertmanager, a JSON webhook, a command, Slack,
//! Discord, ntfy, email over SMTP, and the services Apprise reaches.
//!
//! A sink takes a batch (the alerts of one run it accepts, or those waiting for it in the
//! outbox) and says, per alert, delivered or why not. Grouped sinks (Telegram, Slack, Discord,
//! ntfy, email, Apprise, webhook, exec) send one message for the batch (split in pieces where
//! the service has a limit), so every alert shares its fate; Gitea works alert by
//! alert; Alertmanager takes the batch in one request. Every error text passes through the
//! alerting settings' redaction, so a token in a URL never reaches a message.

pub mod alertmanager;
pub mod apprise;
pub mod discord;
pub mod email;
pub mod gitea;
pub mod ntfy;
pub mod slack;
pub mod telegram;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::alert::Alert;
use super::render;
use crate::check::http::{BlockingClient, Request};
use crate::config::{Alerting, CommandLine};
use crate::record::Level;
use crate::util::{self, proc};

/// The most of a response body read.
const BODY_LIMIT: usize = 4 << 20;

/// One sink.
pub trait Sink {
    /// Its name (`telegram`), as in `--sink` and in alert records.
    fn name(&self) -> &'static str;

    /// The least level it is sent (a recovery goes where its alert went).
    fn min_level(&self) -> Level;

    /// Send a batch; one result per alert, in order.
    fn deliver(&mut self, batch: &[&Alert], delayed: bool) -> Vec<Result<(), String>>;

    /// What it would send, one value per alert (`--dry-run`).
    fn preview(&self, batch: &[&Alert]) -> Vec<Value>;

    /// Post again the incidents still firing (only Alertmanager needs it); `None` when the
    /// sink has nothing to do.
    fn refresh(&mut self, _firing: &[Alert]) -> Option<Result<(), String>> {
        None
    }

    /// Does this sink take the alert?
    fn accepts(&self, a: &Alert) -> bool {
        let level = if a.is_resolved() { a.was.unwrap_or(Level::Info) } else { a.level };
        level.severity() >= self.min_level().severity()
    }

    /// The acknowledgements people gave through the sink (a Telegram button or reply, a
    /// Gitea comment `/ack`) for the incidents `firing`, since `cursor` (the sink's own
    /// bookmark, kept in the state), which is moved past them. Sinks that take none: empty.
    fn poll_acks(&mut self, _cursor: &mut Value, _firing: &[Alert]) -> Result<Vec<Incoming>, String> {
        Ok(Vec::new())
    }

    /// Tell the person what came of their acknowledgement, where the sink can (Telegram
    /// answers the button).
    fn answer(&mut self, _incoming: &Incoming, _text: &str) {}
}

/// An acknowledgement given through a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// What it acknowledges.
    pub picks: Vec<Pick>,
    /// Who (`@alice`, a Gitea login).
    pub by: String,
    /// The sink's handle to answer it by (a Telegram callback query's id).
    pub reply: Option<String>,
}

/// One incident an [`Incoming`] names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// The short token of a subject (a Telegram button's `ack:<token>`).
    Token(String),
    /// The subject itself.
    Subject(String),
}

/// Every sink's name, in the order they are tried.
pub const NAMES: &[&str] =
    &["telegram", "gitea", "alertmanager", "webhook", "exec", "slack", "discord", "ntfy", "email", "apprise"];

/// An HTTP reply, whatever its status.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// The `Location` of a redirect.
    pub location: Option<String>,
    /// The rate-limit headers (`retry-after`, `x-ratelimit-*`), names in lower case.
    pub rate_limit: Vec<(String, String)>,
}

impl Reply {
    /// A 2xx answer. Sinks whose API names its success more narrowly (Gitea's 201 with a
    /// number, Alertmanager's 200) check that too.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A rate-limit header's value (`retry-after`, `x-ratelimit-remaining`, ...).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.rate_limit.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON (Null when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// `HTTP 422: <message>`, with the service's own message when it gave one.
    pub fn describe(&self) -> String {
        if (300..400).contains(&self.status) {
            return match &self.location {
                Some(l) => format!(
                    "HTTP {}: redirected to {} (not followed: point the URL at it)",
                    self.status,
                    util::truncate(l, 200)
                ),
                None => format!("HTTP {}: a redirect (not followed)", self.status),
            };
        }
        let j = self.json();
        let msg = j
            .get("message")
            .or_else(|| j.get("description"))
            .or_else(|| j.get("error"))
            .and_then(Value::as_str)
            .map(String::from)
            .or_else(|| j.as_str().map(String::from))
            .unwrap_or_else(|| util::first_line(&self.body).to_string());
        if msg.is_empty() {
            format!("HTTP {}", self.status)
        } else {
            format!("HTTP {}: {}", self.status, util::truncate(&msg, 300))
        }
    }
}

/// The HTTP client every sink shares (the check engine's set-up, [`crate::check::http`]),
/// with the secrets to scrub from its errors.
#[derive(Clone)]
pub struct Http {
    client: Option<Arc<BlockingClient>>,
    alerting: Alerting,
    timeout: Duration,
}

impl Http {
    pub fn new(alerting: &Alerting, timeout: Duration) -> Http {
        // A client that cannot start (no thread to be had) makes every request fail, said.
        let client = BlockingClient::new(concat!("pitcrew-notify/", env!("CARGO_PKG_VERSION"))).ok().map(Arc::new);
        Http { client, alerting: alerting.clone(), timeout }
    }

    /// Scrub every secret from a text.
    pub fn redact(&self, s: &str) -> String {
        self.alerting.redact(s)
    }

    /// Send a request; an error is a transport failure (no reply), already redacted.
    ///
    /// A redirect is never followed: a POST turned into a GET on 301/302 would pass for a
    /// delivery with the GET's 200. A 3xx is an answer like any other that is not the API's
    /// success, and the alert stays in the outbox with it.
    pub fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Reply, String> {
        let bytes = match body {
            Some(v) => Some(serde_json::to_vec(v).map_err(|e| format!("serializing the request: {e}"))?),
            None => None,
        };
        self.send(method, url, headers, bytes.as_deref().map(|b| ("application/json", b)))
    }

    /// [`Http::request`] with a body of any type: `(content type, bytes)`.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Result<Reply, String> {
        let client = self.client.as_ref().ok_or("cannot start the HTTP client")?;
        let mut all: Vec<(String, String)> = vec![("Accept".into(), "application/json".into())];
        all.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        if let Some((ctype, _)) = body {
            all.push(("Content-Type".into(), ctype.into()));
        }
        let mut req = Request::get(url, self.timeout);
        req.method = method;
        req.headers = &all;
        req.body = body.map(|(_, b)| b);
        req.follow_redirects = false;
        req.body_limit = Some(BODY_LIMIT);
        let resp = client.fetch(&req).map_err(|e| self.redact(&e))?;
        Ok(Reply {
            status: resp.status,
            body: resp.body.unwrap_or_default(),
            location: resp.location,
            rate_limit: resp.rate_limit,
        })
    }
}

/// `<sink>_max_wait_seconds` from the alerting settings (default 60): the longest a rate
/// limit's wait is waited out before the message goes to the outbox instead.
pub fn max_wait(alerting: &Alerting, sink: &str) -> Duration {
    let wait = alerting.raw.get(&format!("{sink}_max_wait_seconds")).and_then(Value::as_f64).filter(|w| *w >= 0.0);
    wait.and_then(|w| Duration::try_from_secs_f64(w).ok()).unwrap_or(Duration::from_secs(60))
}

/// Seconds as a service says them (`1.5`, `64.57`, `1e300`), as a duration ("as long as
/// possible" when too large, zero when negative or not a number).
pub fn seconds(s: f64) -> Duration {
    if s.is_nan() || s <= 0.0 { Duration::ZERO } else { Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX) }
}

/// Split a message for a service: its markup, its limit, at most `max` pieces.
pub(crate) fn pieces(batch: &[&Alert], delayed: bool, style: render::Style, limit: usize, max: usize) -> Vec<String> {
    render::fit_as(&render::compose(batch, delayed), style, limit, max).iter().map(|d| d.render(style)).collect()
}

/// The title of a batch: the one alert's title, else `[LEVEL] Agent Ops Alert`.
pub(crate) fn title(batch: &[&Alert]) -> String {
    match batch {
        [one] if !one.title.is_empty() => one.title.clone(),
        _ => format!("{} {}", render::head_level(batch).prefix(), render::HEAD),
    }
}

/// Send the pieces of a message one by one; the first failure stops it, naming the piece.
pub(crate) fn send_pieces(pieces: &[String], mut send: impl FnMut(&str) -> Result<(), String>) -> Result<(), String> {
    for (i, p) in pieces.iter().enumerate() {
        if let Err(e) = send(p) {
            return Err(if i == 0 { e } else { format!("part {} of {} of the message: {e}", i + 1, pieces.len()) });
        }
    }
    Ok(())
}

/// A level from the alerting settings (`<sink>_min_level`), or the default.
pub fn min_level(alerting: &Alerting, sink: &str, default: Level) -> Level {
    alerting.raw.get(&format!("{sink}_min_level")).and_then(Value::as_str).and_then(Level::parse).unwrap_or(default)
}

/// The JSON webhook: `POST {alerts: [...], text}`.
pub struct Webhook {
    http: Http,
    url: String,
    headers: Vec<(String, String)>,
    min: Level,
}

impl Webhook {
    pub fn new(http: Http, alerting: &Alerting, url: &str) -> Webhook {
        let headers = match alerting.raw.get("webhook_headers") {
            Some(Value::Object(m)) => {
                m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect()
            }
            _ => Vec::new(),
        };
        Webhook { http, url: url.to_string(), headers, min: min_level(alerting, "webhook", Level::Info) }
    }

    fn payload(batch: &[&Alert], delayed: bool) -> Value {
        let alerts: Vec<Alert> = batch.iter().map(|a| a.undelivered()).collect();
        json!({"alerts": alerts, "text": render::compose(batch, delayed).plain()})
    }
}

impl Sink for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn min_level(&self) -> Level {
        self.min
    }

    fn deliver(&mut self, batch: &[&Alert], delayed: bool) -> Vec<Result<(), String>> {
        let headers: Vec<(&str, &str)> = self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let r = match self.http.request("POST", &self.url, &headers, Some(&Self::payload(batch, delayed))) {
            Ok(reply) if reply.ok() => Ok(()),
            Ok(reply) => Err(self.http.redact(&reply.describe())),
            Err(e) => Err(e),
        };
        vec![r; batch.len()]
    }

    fn preview(&self, batch: &[&Alert]) -> Vec<Value> {
        let text = render::compose(batch, false).plain();
        vec![json!({"url": self.http.redact(&self.url), "text": text}); batch.len()]
    }
}

/// A command that reads the message on its stdin (`sendmail -t`, a chat CLI, ...).
pub struct Exec {
    command: CommandLine,
    timeout: Duration,
    min: Level,
}

impl Exec {
    pub fn new(alerting: &Alerting, command: &CommandLine) -> Exec {
        let secs =
            alerting.raw.get("exec_timeout_seconds").and_then(Value::as_f64).filter(|s| *s > 0.0).unwrap_or(30.0);
        Exec {
            command: command.clone(),
            timeout: Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX),
            min: min_level(alerting, "exec", Level::Info),
        }
    }
}

impl Sink for Exec {
    fn name(&self) -> &'static str {
        "exec"
    }

    fn min_level(&self) -> Level {
        self.min
    }

    fn deliver(&mut self, batch: &[&Alert], delayed: bool) -> Vec<Result<(), String>> {
        let doc = render::compose(batch, delayed);
        let mut text = doc.plain();
        text.push('\n');
        let mut spec = proc::Spec::new(&self.command, self.timeout);
        spec.stdin = Some(text.into_bytes());
        let level = render::head_level(batch);
        let title = title(batch);
        spec.env = vec![
            ("NOTIFY_LEVEL".into(), level.as_str().into()),
            ("NOTIFY_TITLE".into(), title),
            ("NOTIFY_COUNT".into(), batch.len().to_string()),
        ];
        let r = match proc::run(&spec) {
            Ok(o) if o.success() => Ok(()),
            Ok(o) => {
                let why = util::first_line(&o.stderr);
                Err(if why.is_empty() { o.describe() } else { format!("{}: {why}", o.describe()) })
            }
            Err(e) => Err(format!("cannot run {}: {e}", self.command.display())),
        };
        vec![r; batch.len()]
    }

    fn preview(&self, batch: &[&Alert]) -> Vec<Value> {
        let text = render::compose(batch, false).plain();
        vec![json!({"command": self.command.display(), "stdin": text}); batch.len()]
    }
}
