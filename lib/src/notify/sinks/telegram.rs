//! Telegram's Bot API: `POST {api}/bot<TOKEN>/sendMessage` with `{chat_id, text, parse_mode:
//! "HTML", disable_web_page_preview: true}`.
//!
//! The answer is `{"ok": true, "result": {...}}` or `{"ok": false, "error_code": N,
//! "description": "...", "parameters": {"retry_after": S, "migrate_to_chat_id": ID}}`. A 429
//! is waited out when `retry_after` is at most `telegram_max_wait_seconds` (60), then tried
//! again; a 400 "can't parse entities" is sent once more as plain text; a group that became a
//! supergroup (`migrate_to_chat_id`) is written to at its new id, with a word on stderr. The
//! token is part of the URL, so no error text leaves without redaction.
//!
//! With `telegram_acks: true`, a message announcing incidents carries an inline keyboard, one
//! "Acknowledge NAME" button per incident (`callback_data` `ack:<token>`), and each run reads
//! the bot's updates (`getUpdates`, from the offset kept in the state): a button pressed in
//! the chat (`callback_query`, answered with `answerCallbackQuery`), or a reply `/ack` to an
//! alert message (whose buttons name its incidents), acknowledges them. Opt-in, since a bot's
//! updates go to one reader only: another program polling the same bot would lose them.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Http, Incoming, Pick, Sink, min_level};
use crate::config::{Alerting, Secret};
use crate::entry::Diag;
use crate::notify::alert::Alert;
use crate::notify::render::{self, Doc, TELEGRAM_LIMIT};
use crate::record::Level;

/// Tries of one message (429 waits and fallbacks included).
const TRIES: usize = 6;

/// The most buttons a message carries.
const MAX_BUTTONS: usize = 8;

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
    /// `telegram_acks`: buttons on alerts, and updates read each run.
    acks: bool,
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
            acks: alerting.raw.get("telegram_acks").and_then(Value::as_bool).unwrap_or(false),
        }
    }

    fn chat_id_value(&self) -> Value {
        match self.chat_id.parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) => json!(self.chat_id),
        }
    }

    /// Send one piece: HTML first, plain text if Telegram cannot parse the HTML.
    pub fn send_doc(&mut self, doc: &Doc, markup: Option<&Value>) -> Result<(), String> {
        let mut html = true;
        for _ in 0..TRIES {
            let text = if html { doc.html() } else { doc.plain() };
            match self.send_once(&text, html, markup) {
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

    fn send_once(&mut self, text: &str, html: bool, markup: Option<&Value>) -> Outcome {
        let url = format!("{}/bot{}/sendMessage", self.api, self.token.expose());
        let mut body = json!({"chat_id": self.chat_id_value(), "text": text, "disable_web_page_preview": true});
        if html {
            body["parse_mode"] = json!("HTML");
        }
        if let Some(m) = markup {
            body["reply_markup"] = m.clone();
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

    /// The inline keyboard of a batch: a button per incident still firing (at most 8).
    fn keyboard(&self, batch: &[&Alert]) -> Option<Value> {
        if !self.acks {
            return None;
        }
        let mut rows: Vec<Value> = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for a in batch {
            let Some(subject) = a.subject.as_deref() else { continue };
            if a.is_resolved() || !a.level.is_bad() || seen.contains(&subject) || a.extra.contains_key("acknowledged") {
                continue;
            }
            seen.push(subject);
            let name = if a.name().is_empty() { subject } else { a.name() };
            let label = format!("Acknowledge {}", crate::util::truncate(name, 40));
            rows.push(json!([{"text": label, "callback_data": format!("ack:{}", crate::notify::ack::token(subject))}]));
            if rows.len() == MAX_BUTTONS {
                break;
            }
        }
        (!rows.is_empty()).then(|| json!({"inline_keyboard": rows}))
    }

    /// One Bot API call; its `result`, or why not.
    fn call(&self, method: &str, body: &Value) -> Result<Value, String> {
        let url = format!("{}/bot{}/{method}", self.api, self.token.expose());
        let reply = self.http.request("POST", &url, &[], Some(body)).map_err(|e| self.http.redact(&e))?;
        let j = reply.json();
        if reply.ok() && j.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(j.get("result").cloned().unwrap_or(Value::Null));
        }
        let desc = j.get("description").and_then(Value::as_str).unwrap_or("");
        let why = if desc.is_empty() { reply.describe() } else { format!("HTTP {}: {desc}", reply.status) };
        Err(self.http.redact(&why))
    }

    fn in_our_chat(&self, chat: &Value) -> bool {
        let id = match chat.get("id") {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            _ => return false,
        };
        id == self.chat_id
    }
}

/// Who pressed or wrote: `@username`, else the first name, else the user id.
fn who(from: &Value) -> String {
    if let Some(u) = from.get("username").and_then(Value::as_str).filter(|u| !u.is_empty()) {
        return format!("@{u}");
    }
    if let Some(n) = from.get("first_name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
        return n.to_string();
    }
    from.get("id").map(|i| format!("telegram user {i}")).unwrap_or_else(|| "telegram".into())
}

/// The incidents a message's buttons name.
fn buttons(markup: Option<&Value>) -> Vec<Pick> {
    let rows = markup.and_then(|m| m.get("inline_keyboard")).and_then(Value::as_array);
    rows.into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|b| b.get("callback_data").and_then(Value::as_str))
        .filter_map(|d| d.strip_prefix("ack:"))
        .map(|t| Pick::Token(t.to_string()))
        .collect()
}

/// Is this text an acknowledgement (`/ack`, `/ack@bot`, `ack`)?
fn says_ack(text: &str) -> bool {
    let first = text.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
    let first = first.split('@').next().unwrap_or("");
    matches!(first, "/ack" | "ack")
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
        let pieces = Self::pieces(batch, delayed);
        let keyboard = self.keyboard(batch);
        let last = pieces.len().saturating_sub(1);
        for (i, piece) in pieces.iter().enumerate() {
            let markup = if i == last { keyboard.as_ref() } else { None };
            if let Err(e) = self.send_doc(piece, markup) {
                result = Err(if i == 0 { e } else { format!("part {} of the message: {e}", i + 1) });
                break;
            }
        }
        vec![result; batch.len()]
    }

    fn preview(&self, batch: &[&Alert]) -> Vec<Value> {
        let parts: Vec<String> = Self::pieces(batch, false).iter().map(Doc::html).collect();
        let mut v = json!({"parse_mode": "HTML", "messages": parts});
        if let Some(k) = self.keyboard(batch) {
            v["reply_markup"] = k;
        }
        vec![v; batch.len()]
    }

    fn poll_acks(&mut self, cursor: &mut Value, _firing: &[Alert]) -> Result<Vec<Incoming>, String> {
        if !self.acks {
            return Ok(Vec::new());
        }
        let mut body = json!({"timeout": 0, "allowed_updates": ["message", "callback_query"]});
        if let Some(o) = cursor.get("offset").and_then(Value::as_i64) {
            body["offset"] = json!(o);
        }
        let result = self.call("getUpdates", &body)?;
        let mut out = Vec::new();
        let mut next = cursor.get("offset").and_then(Value::as_i64);
        for u in result.as_array().into_iter().flatten() {
            if let Some(id) = u.get("update_id").and_then(Value::as_i64) {
                next = Some(next.map_or(id + 1, |n| n.max(id + 1)));
            }
            if let Some(q) = u.get("callback_query") {
                let data = q.get("data").and_then(Value::as_str).unwrap_or("");
                let chat = q.get("message").and_then(|m| m.get("chat")).unwrap_or(&Value::Null);
                let Some(token) = data.strip_prefix("ack:").filter(|_| self.in_our_chat(chat)) else { continue };
                out.push(Incoming {
                    picks: vec![Pick::Token(token.to_string())],
                    by: who(q.get("from").unwrap_or(&Value::Null)),
                    reply: q.get("id").and_then(Value::as_str).map(String::from),
                });
            } else if let Some(m) = u.get("message") {
                let text = m.get("text").and_then(Value::as_str).unwrap_or("");
                if !self.in_our_chat(m.get("chat").unwrap_or(&Value::Null)) || !says_ack(text) {
                    continue;
                }
                let picks = buttons(m.get("reply_to_message").and_then(|r| r.get("reply_markup")));
                if !picks.is_empty() {
                    out.push(Incoming { picks, by: who(m.get("from").unwrap_or(&Value::Null)), reply: None });
                }
            }
        }
        if let Some(n) = next {
            cursor["offset"] = json!(n);
        }
        Ok(out)
    }

    fn answer(&mut self, incoming: &Incoming, text: &str) {
        let Some(id) = &incoming.reply else { return };
        if let Err(e) = self.call("answerCallbackQuery", &json!({"callback_query_id": id, "text": text})) {
            self.diag.warn(format_args!("telegram: answering a button: {e}"));
        }
    }
}
