//! A Discord webhook: `POST <webhook URL>?wait=true` with `{"content": "<markdown>",
//! "allowed_mentions": {"parse": []}}`.
//!
//! `wait=true` makes Discord answer 200 with the message it saved (without it, 204 comes back
//! even for a message that was not saved). `allowed_mentions: {parse: []}` keeps an alert's
//! text from pinging `@everyone` or anyone else. `content` holds at most 2,000 characters, so
//! messages are split at line ends under that. A 429 says how long to wait in its JSON body
//! (`retry_after`, seconds as a float): waited out when at most `discord_max_wait_seconds`
//! (60), else the message goes to the outbox. `X-RateLimit-Remaining: 0` with
//! `X-RateLimit-Reset-After` is waited out before the next piece. A 404 means the webhook was
//! deleted: the sink stops using it for the rest of the run (Discord bans clients that keep
//! sending invalid requests), and the alert waits in the outbox until the URL is fixed.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Http, Sink, max_wait, min_level, pieces, seconds, send_pieces};
use crate::config::{Alerting, Secret};
use crate::notify::alert::Alert;
use crate::notify::render::{Markup, Style, Unit};
use crate::record::Level;

/// Discord's limit on `content`.
pub const LIMIT: usize = 2000;

/// The most messages one batch is sent as.
pub const MAX_PIECES: usize = 8;

/// Tries of one message (429 waits included).
const TRIES: usize = 6;

const STYLE: Style = Style { markup: Markup::Discord, unit: Unit::Utf16 };

pub struct Discord {
    http: Http,
    url: Secret,
    username: Option<String>,
    max_wait: Duration,
    min: Level,
    /// Why the webhook is not used any more this run (it answered 404).
    gone: Option<String>,
    /// Wait this long before the next request (the bucket is empty).
    pause: Duration,
}

impl Discord {
    pub fn new(http: Http, alerting: &Alerting) -> Discord {
        Discord {
            http,
            url: alerting.channels.discord_webhook_url.clone(),
            username: alerting.raw.get("discord_username").and_then(Value::as_str).map(String::from),
            max_wait: max_wait(alerting, "discord"),
            min: min_level(alerting, "discord", Level::Info),
            gone: None,
            pause: Duration::ZERO,
        }
    }

    fn url(&self) -> String {
        let u = self.url.expose();
        let sep = if u.contains('?') { '&' } else { '?' };
        format!("{u}{sep}wait=true")
    }

    fn send(&mut self, text: &str) -> Result<(), String> {
        if let Some(why) = &self.gone {
            return Err(why.clone());
        }
        let mut body = json!({"content": text, "allowed_mentions": {"parse": []}});
        if let Some(u) = &self.username {
            body["username"] = json!(u);
        }
        for _ in 0..TRIES {
            if !self.pause.is_zero() {
                std::thread::sleep(std::mem::take(&mut self.pause));
            }
            let reply = self.http.request("POST", &self.url(), &[], Some(&body))?;
            if reply.header("x-ratelimit-remaining").map(str::trim) == Some("0") {
                let after = reply.header("x-ratelimit-reset-after").and_then(|s| s.trim().parse::<f64>().ok());
                self.pause = after.map(seconds).unwrap_or_default().min(self.max_wait);
            }
            if reply.status == 200 || reply.status == 204 {
                return Ok(());
            }
            let j = reply.json();
            if reply.status == 429 {
                let after = j
                    .get("retry_after")
                    .and_then(Value::as_f64)
                    .or_else(|| reply.header("retry-after").and_then(|s| s.trim().parse().ok()))
                    .unwrap_or(1.0);
                let wait = seconds(after);
                let scope = if j.get("global").and_then(Value::as_bool) == Some(true) { " (global)" } else { "" };
                if wait > self.max_wait {
                    return Err(format!(
                        "HTTP 429: rate limited{scope}; retry_after {after}s is past the {}s wait limit",
                        self.max_wait.as_secs()
                    ));
                }
                std::thread::sleep(wait);
                self.pause = Duration::ZERO;
                continue;
            }
            let mut why = reply.describe();
            if let Some(code) = j.get("code").and_then(Value::as_i64) {
                why.push_str(&format!(" (code {code})"));
            }
            let why = self.http.redact(&why);
            if reply.status == 404 {
                let why =
                    format!("{why}; the webhook is gone: no more requests to it this run (fix discord_webhook_url)");
                self.gone = Some(why.clone());
                return Err(why);
            }
            return Err(why);
        }
        Err("gave up after repeated rate limiting".into())
    }
}

impl Sink for Discord {
    fn name(&self) -> &'static str {
        "discord"
    }

    fn min_level(&self) -> Level {
        self.min
    }

    fn deliver(&mut self, batch: &[&Alert], delayed: bool) -> Vec<Result<(), String>> {
        let parts = pieces(batch, delayed, STYLE, LIMIT, MAX_PIECES);
        vec![send_pieces(&parts, |p| self.send(p)); batch.len()]
    }

    fn preview(&self, batch: &[&Alert]) -> Vec<Value> {
        let parts = pieces(batch, false, STYLE, LIMIT, MAX_PIECES);
        vec![json!({"messages": parts}); batch.len()]
    }
}
