//! A Slack incoming webhook: `POST <webhook URL>` with `{"text": "<mrkdwn>"}`.
//!
//! Slack answers 200 with the plain-text body `ok`; anything else is an error whose body is
//! Slack's own word for it (`invalid_payload`, `channel_not_found`, `channel_is_archived`,
//! `no_service`, ...), kept in the alert's error. A 429 carries `Retry-After: <seconds>`: it
//! is waited out when that is at most `slack_max_wait_seconds` (60), then tried again; else
//! the message goes to the outbox. Messages are split at line ends under 4,000 characters
//! (Slack cuts a message's text at 40,000 and splits long ones itself at about 4,000).
//! The webhook URL is the secret: it never appears in output or errors.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Http, Sink, max_wait, min_level, pieces, seconds, send_pieces};
use crate::config::{Alerting, Secret};
use crate::notify::alert::Alert;
use crate::notify::render::{Markup, Style, Unit};
use crate::record::Level;

/// The most characters of one message.
pub const LIMIT: usize = 4000;

/// The most messages one batch is sent as.
pub const MAX_PIECES: usize = 8;

/// Tries of one message (429 waits included).
const TRIES: usize = 6;

const STYLE: Style = Style { markup: Markup::Slack, unit: Unit::Utf16 };

pub struct Slack {
    http: Http,
    url: Secret,
    max_wait: Duration,
    min: Level,
}

impl Slack {
    pub fn new(http: Http, alerting: &Alerting) -> Slack {
        Slack {
            http,
            url: alerting.channels.slack_webhook_url.clone(),
            max_wait: max_wait(alerting, "slack"),
            min: min_level(alerting, "slack", Level::Info),
        }
    }

    fn send(&self, text: &str) -> Result<(), String> {
        let body = json!({"text": text});
        for _ in 0..TRIES {
            let reply = self.http.request("POST", self.url.expose(), &[], Some(&body))?;
            if reply.status == 200 && reply.body.trim() == "ok" {
                return Ok(());
            }
            if reply.status == 429 {
                let after = reply.header("retry-after").and_then(|s| s.trim().parse::<f64>().ok()).unwrap_or(1.0);
                let wait = seconds(after);
                if wait > self.max_wait {
                    return Err(format!(
                        "HTTP 429: rate limited; Retry-After {after}s is past the {}s wait limit",
                        self.max_wait.as_secs()
                    ));
                }
                std::thread::sleep(wait);
                continue;
            }
            let word = crate::util::first_line(reply.body.trim());
            let why = if word.is_empty() {
                reply.describe()
            } else if reply.status == 200 {
                format!("HTTP 200 without 'ok': {}", crate::util::truncate(word, 300))
            } else {
                format!("HTTP {}: {}", reply.status, crate::util::truncate(word, 300))
            };
            return Err(self.http.redact(&why));
        }
        Err("gave up after repeated rate limiting".into())
    }
}

impl Sink for Slack {
    fn name(&self) -> &'static str {
        "slack"
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
