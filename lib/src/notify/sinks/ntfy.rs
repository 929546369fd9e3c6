//! ntfy: `POST <topic URL>` with the message as the body and the headers `Title`, `Priority`
//! and `Tags` (ntfy's publish-as-text form), plus `Authorization: Bearer <ntfy_token>` when a
//! token is set (a URL's `user:password@` is sent as Basic).
//!
//! The priority follows the level (critical 5, error 4, warning and recovery 3, info 2); the
//! tags are an emoji of the level and `pitcrew`. A title that is not ASCII is sent RFC 2047
//! encoded, which ntfy decodes. ntfy turns a message over 4,096 bytes into an attachment, so
//! messages are split at line ends under that. Errors are JSON (`{"code": 42901, "http": 429,
//! "error": "limit reached: too many requests"}`); a 429 with code 42901 (too many requests)
//! carries no Retry-After, so the sink backs off itself (5 s, then 10 s, ...) for as long as
//! `ntfy_max_wait_seconds` (60) allows in all; any other refusal (a daily quota, 401, 403,
//! 413) goes to the outbox at once with ntfy's words and code.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use super::{Http, Sink, max_wait, min_level, pieces, send_pieces, title};
use crate::config::{Alerting, Secret};
use crate::notify::alert::Alert;
use crate::notify::render::{self, Markup, Style, Unit};
use crate::record::Level;

/// ntfy's limit on a message (bytes) before it becomes an attachment.
pub const LIMIT: usize = 4096;

/// The most messages one batch is sent as.
pub const MAX_PIECES: usize = 8;

/// The first back-off after a 42901.
const BACKOFF: Duration = Duration::from_secs(5);

const STYLE: Style = Style { markup: Markup::Plain, unit: Unit::Bytes };

pub struct Ntfy {
    http: Http,
    url: Secret,
    token: Secret,
    max_wait: Duration,
    min: Level,
}

/// ntfy's priority (1-5) for a level.
fn priority(l: Level) -> &'static str {
    match l {
        Level::Critical => "5",
        Level::Error => "4",
        Level::Warning | Level::Recovery => "3",
        Level::Info => "2",
    }
}

/// The emoji tag of a level (ntfy shows it before the title).
fn emoji(l: Level) -> &'static str {
    match l {
        Level::Critical | Level::Error => "rotating_light",
        Level::Warning => "warning",
        Level::Recovery => "white_check_mark",
        Level::Info => "information_source",
    }
}

/// A header value ntfy reads: ASCII as it is, else RFC 2047 (`=?UTF-8?B?...?=`).
fn header_text(s: &str) -> String {
    let one_line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if one_line.is_ascii() {
        one_line
    } else {
        format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(one_line.as_bytes()))
    }
}

impl Ntfy {
    pub fn new(http: Http, alerting: &Alerting) -> Ntfy {
        Ntfy {
            http,
            url: alerting.channels.ntfy_url.clone(),
            token: alerting.channels.ntfy_token.clone(),
            max_wait: max_wait(alerting, "ntfy"),
            min: min_level(alerting, "ntfy", Level::Info),
        }
    }

    fn send(&self, title: &str, level: Level, text: &str) -> Result<(), String> {
        let title = header_text(&crate::util::truncate(title, 250));
        let tags = format!("{},pitcrew", emoji(level));
        let bearer = format!("Bearer {}", self.token.expose());
        let mut headers: Vec<(&str, &str)> = vec![("Title", &title), ("Priority", priority(level)), ("Tags", &tags)];
        if !self.token.is_empty() {
            headers.push(("Authorization", &bearer));
        }
        let (mut waited, mut backoff) = (Duration::ZERO, BACKOFF);
        loop {
            let reply = self.http.send(
                "POST",
                self.url.expose(),
                &headers,
                Some(("text/plain; charset=utf-8", text.as_bytes())),
            )?;
            if reply.ok() {
                return Ok(());
            }
            let j = reply.json();
            let code = j.get("code").and_then(Value::as_i64);
            if reply.status == 429 && code == Some(42901) && waited + backoff <= self.max_wait {
                std::thread::sleep(backoff);
                waited += backoff;
                backoff *= 2;
                continue;
            }
            let mut why = reply.describe();
            if let Some(c) = code {
                why.push_str(&format!(" (code {c})"));
            }
            if reply.status == 429 && code == Some(42901) {
                why.push_str(&format!("; backed off {}s in all, the ntfy_max_wait_seconds limit", waited.as_secs()));
            }
            return Err(self.http.redact(&why));
        }
    }
}

impl Sink for Ntfy {
    fn name(&self) -> &'static str {
        "ntfy"
    }

    fn min_level(&self) -> Level {
        self.min
    }

    fn deliver(&mut self, batch: &[&Alert], delayed: bool) -> Vec<Result<(), String>> {
        let parts = pieces(batch, delayed, STYLE, LIMIT, MAX_PIECES);
        let (t, level) = (title(batch), render::head_level(batch));
        vec![send_pieces(&parts, |p| self.send(&t, level, p)); batch.len()]
    }

    fn preview(&self, batch: &[&Alert]) -> Vec<Value> {
        let level = render::head_level(batch);
        let parts = pieces(batch, false, STYLE, LIMIT, MAX_PIECES);
        vec![json!({"title": title(batch), "priority": priority(level), "messages": parts}); batch.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_ascii_or_rfc2047() {
        assert_eq!(header_text("disk full"), "disk full");
        assert_eq!(header_text("a\nb"), "a b");
        assert_eq!(header_text("ünï"), "=?UTF-8?B?w7xuw68=?=");
    }
}
