//! Telegram's Bot API: `POST {api}/bot<TOKEN>/sendMessage` with `{chat_id, text, parse_mode:
//! "HTML", disable_web_page_preview: true}`.
//!
//! The answer is `{"ok": true, "result": {...}}` or `{"ok": false, "error_code": N,
//! "description": "...", "parameters": {"retry_after": S, "migrate_to_chat_id": ID}}`. A 429
//! is waited out when `retry_after` is at most `telegram_max_wait_seconds` (60), then tried
//! again; a 400 "can't parse entities" is sent once more as plain text; a group that became a
//! supergroup (`migrate_to_chat_id`) is written to at its new id, with a word on stderr. The
//! token is part of the URL, so no error text leaves without redaction.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Http, Sink, min_level};
use crate::config::{Alerting, Secret};
use crate::entry::Diag;
use crate::notify::alert::Alert;
use crate::notify::render::{self, Doc, TELEGRAM_LIMIT};
use crate::record::Level;

/// Tries of one message (429 waits and fallbacks included).
const TRIES: usize = 6;

/// The most messages one batch is sent as: a record may carry megabytes of text, which
/// would otherwise go out as hundreds of messages (and meet Telegram's rate limits).
pub const MAX_PIECES: usize = 8;

pub struct Telegram<'d> {
    http: Http,
    api: String,
    token: Secret,
    chat_id: String,
    max_wait: Duration,
    min: Level,
    diag: &'d Diag,
}

enum Outcome {
    Sent,
    Retry,
    Failed(String),
}

impl<'d> Telegram<'d> {
    pub fn new(http: Http, alerting: &Alerting, chat_id: &str, diag: &'d Diag) -> Telegram<'d> {
        let wait = alerting.raw.get("telegram_max_wait_seconds").and_then(Value::as_f64).filter(|w| *w >= 0.0);
        Telegram {
            http,
            api: alerting.telegram_api_url.clone(),
            token: alerting.telegram_bot_token.clone(),
            chat_id: chat_id.to_string(),
            max_wait: wait.and_then(|w| Duration::try_from_secs_f64(w).ok()).unwrap_or(Duration::from_secs(60)),
            min: min_level(alerting, "telegram", Level::Info),
            diag,
        }
    }

    fn chat_id_value(&self) -> Value {
        match self.chat_id.parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) => json!(self.chat_id),
        }
    }

    /// Send one piece: HTML first, plain text if Telegram cannot parse the HTML.
    pub fn send_doc(&mut self, doc: &Doc) -> Result<(), String> {
        let mut html = true;
        for _ in 0..TRIES {
            let text = if html { doc.html() } else { doc.plain() };
            match self.send_once(&text, html) {
                Outcome::Sent => return Ok(()),
                Outcome::Retry => {}
                Outcome::Failed(why) if html && why.contains("can't parse entities") => {
                    self.diag.warn(format_args!("telegram: {why}; sending it again as plain text"));
                    html = false;
                }
                Outcome::Failed(why) => return Err(why),
            }
        }
        Err("gave up after repeated rate limiting".into())
    }

    fn send_once(&mut self, text: &str, html: bool) -> Outcome {
        let url = format!("{}/bot{}/sendMessage", self.api, self.token.expose());
        let mut body = json!({"chat_id": self.chat_id_value(), "text": text, "disable_web_page_preview": true});
        if html {
            body["parse_mode"] = json!("HTML");
        }
        let reply = match self.http.request("POST", &url, &[], Some(&body)) {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(e),
        };
        let j = reply.json();
        if reply.ok() && j.get("ok").and_then(Value::as_bool) == Some(true) {
            return Outcome::Sent;
        }
        let desc = j.get("description").and_then(Value::as_str).unwrap_or("").to_string();
        let params = j.get("parameters");
        if reply.status == 429 {
            let after = params.and_then(|p| p.get("retry_after")).and_then(Value::as_f64).unwrap_or(1.0).max(0.0);
            // Any number may come back, 1e300 included: past the limit is past the limit.
            let wait = Duration::try_from_secs_f64(after).unwrap_or(Duration::MAX);
            if wait > self.max_wait {
                return Outcome::Failed(format!(
                    "HTTP 429: {}; retry_after {after}s is past the {}s wait limit",
                    self.http.redact(&desc),
                    self.max_wait.as_secs()
                ));
            }
            std::thread::sleep(wait);
            return Outcome::Retry;
        }
        if let Some(new) = params.and_then(|p| p.get("migrate_to_chat_id")).and_then(Value::as_i64) {
            self.diag.warn(format_args!(
                "telegram: chat {} is now the supergroup {new}; sending there (set telegram_chat_id to {new})",
                self.chat_id
            ));
            self.chat_id = new.to_string();
            return Outcome::Retry;
        }
        let why = if desc.is_empty() { reply.describe() } else { format!("HTTP {}: {desc}", reply.status) };
        Outcome::Failed(self.http.redact(&why))
    }

    fn pieces(batch: &[&Alert], delayed: bool) -> Vec<Doc> {
        render::fit(&render::compose(batch, delayed), TELEGRAM_LIMIT, MAX_PIECES)
    }
}

impl Sink for Telegram<'_> {
    fn name(&self) -> &'static str {
        "telegram"
    }

    fn min_level(&self) -> Level {
        self.min
    }

    fn deliver(&mut self, batch: &[&Alert], delayed: bool) -> Vec<Result<(), String>> {
        let mut result = Ok(());
        for (i, piece) in Self::pieces(batch, delayed).iter().enumerate() {
            if let Err(e) = self.send_doc(piece) {
                result = Err(if i == 0 { e } else { format!("part {} of the message: {e}", i + 1) });
                break;
            }
        }
        vec![result; batch.len()]
    }

    fn preview(&self, batch: &[&Alert]) -> Vec<Value> {
        let parts: Vec<String> = Self::pieces(batch, false).iter().map(Doc::html).collect();
        vec![json!({"parse_mode": "HTML", "messages": parts}); batch.len()]
    }
}
