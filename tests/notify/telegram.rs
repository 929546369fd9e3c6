//! A loopback Telegram Bot API that answers `sendMessage` the way api.telegram.org does:
//! `{"ok":true,"result":Message}`, or `{"ok":false,"error_code":N,"description":"..."}` with
//! `parameters.retry_after` on 429 and `parameters.migrate_to_chat_id` for a migrated group.
//! It parses HTML the way the Bot API's HTML mode does (its tags, `&lt;`/`&gt;`/`&amp;`/`&quot;`
//! and numeric entities; any other `<` is "can't parse entities"), and counts the text's
//! length after parsing in UTF-16 code units against the 4096 limit. It keeps an inline
//! keyboard (`reply_markup`) with the message, and answers `getUpdates` (the updates queued
//! with [`FakeTelegram::push_update`], each with its `update_id`; an `offset` confirms and drops
//! those before it, as the Bot API does) and `answerCallbackQuery` (`true` for a query it
//! delivered and not yet answered, else "query is too old ... or query ID is invalid").

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::util::http::{HttpServer, Reply, Seen};

pub const TOKEN: &str = "123456789:AAHtestTOKENsecretVALUE_xyz";
pub const CHAT: i64 = -1001234567890;

/// A message Telegram accepted.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The text as sent.
    pub raw: String,
    /// The text as shown (entities parsed).
    pub text: String,
    pub parse_mode: Option<String>,
    pub bold: Vec<String>,
    /// The inline keyboard sent with it.
    pub reply_markup: Option<Value>,
    pub message_id: i64,
}

/// A scripted answer for the next request.
#[derive(Debug, Clone)]
pub enum Next {
    TooMany(u64),
    BadGateway,
    /// Refuse the HTML (as if it could not be parsed).
    CantParse,
}

#[derive(Default)]
pub struct TgState {
    pub sent: Vec<Sent>,
    pub script: VecDeque<Next>,
    pub requests: usize,
    /// A chat id that answers "upgraded to a supergroup" with its new id.
    pub migrated: Option<(i64, i64)>,
    /// While set, every request is a 502 from the front (Telegram down).
    pub down: bool,
    /// Updates not confirmed yet, and the next update_id.
    pub updates: Vec<Value>,
    pub next_update: i64,
    /// Callback queries delivered and not answered; the answers given `(id, text)`.
    pub open_queries: Vec<String>,
    pub answers: Vec<(String, String)>,
    /// The `getUpdates` calls, with their `offset`.
    pub polls: Vec<Option<i64>>,
}

pub struct FakeTelegram {
    pub server: HttpServer,
    pub state: Arc<Mutex<TgState>>,
}

fn error(code: u16, description: &str, parameters: Option<Value>) -> Reply {
    let mut body = json!({"ok": false, "error_code": code, "description": description});
    if let Some(p) = parameters {
        body["parameters"] = p;
    }
    Reply::json(code, &body)
}

impl FakeTelegram {
    pub fn start() -> FakeTelegram {
        let state = Arc::new(Mutex::new(TgState::default()));
        let st = state.clone();
        let server = HttpServer::start(move |req| handle(&st, req));
        FakeTelegram { server, state }
    }

    pub fn url(&self) -> String {
        self.server.url("")
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.state.lock().unwrap().sent.clone()
    }

    /// Telegram is down (every request a 502) or back.
    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    /// Queue an update (`{"callback_query": ...}` or `{"message": ...}`); returns its id.
    pub fn push_update(&self, mut u: Value) -> i64 {
        let mut s = self.state.lock().unwrap();
        s.next_update += 1;
        let id = 700_000 + s.next_update;
        u["update_id"] = json!(id);
        s.updates.push(u);
        id
    }

    pub fn answers(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().answers.clone()
    }

    pub fn polls(&self) -> Vec<Option<i64>> {
        self.state.lock().unwrap().polls.clone()
    }

    pub fn script(&self, n: Next) {
        self.state.lock().unwrap().script.push_back(n);
    }
}

fn handle(st: &Mutex<TgState>, req: &Seen) -> Reply {
    let mut s = st.lock().unwrap();
    s.requests += 1;
    if s.down {
        return Reply::new(502, "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n</html>\r\n")
            .header("Content-Type", "text/html");
    }
    let path = req.url.split('?').next().unwrap_or("");
    let Some(rest) = path.strip_prefix("/bot") else { return error(404, "Not Found", None) };
    let Some((token, method)) = rest.split_once('/') else { return error(404, "Not Found", None) };
    if token != TOKEN {
        return error(401, "Unauthorized", None);
    }
    let body: Value = match serde_json::from_str(&req.body) {
        Ok(v) => v,
        Err(_) if method.eq_ignore_ascii_case("getUpdates") => json!({}),
        Err(_) => return error(400, "Bad Request: message text is empty", None),
    };
    if method.eq_ignore_ascii_case("getUpdates") {
        let offset = body["offset"].as_i64();
        s.polls.push(offset);
        if let Some(o) = offset {
            s.updates.retain(|u| u["update_id"].as_i64().unwrap_or(0) >= o);
        }
        let allowed: Option<Vec<String>> =
            body["allowed_updates"].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect());
        let result: Vec<Value> = s
            .updates
            .iter()
            .filter(|u| allowed.as_ref().is_none_or(|a| a.iter().any(|k| u.get(k.as_str()).is_some())))
            .cloned()
            .collect();
        for u in &result {
            if let Some(id) = u["callback_query"]["id"].as_str() {
                s.open_queries.push(id.to_string());
            }
        }
        return Reply::json(200, &json!({"ok": true, "result": result}));
    }
    if method.eq_ignore_ascii_case("answerCallbackQuery") {
        let id = body["callback_query_id"].as_str().unwrap_or("").to_string();
        if !s.open_queries.contains(&id) {
            return error(
                400,
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
                None,
            );
        }
        s.open_queries.retain(|q| *q != id);
        s.answers.push((id, body["text"].as_str().unwrap_or("").to_string()));
        return Reply::json(200, &json!({"ok": true, "result": true}));
    }
    if !method.eq_ignore_ascii_case("sendMessage") {
        return error(404, "Not Found", None);
    }
    let chat = match &body["chat_id"] {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse::<i64>().ok(),
        _ => None,
    };
    let Some(chat) = chat else { return error(400, "Bad Request: chat_id is empty", None) };
    if let Some((old, new)) = s.migrated
        && chat == old
    {
        return error(
            400,
            "Bad Request: group chat was upgraded to a supergroup chat",
            Some(json!({"migrate_to_chat_id": new})),
        );
    }
    let wanted = s.migrated.map(|(_, new)| new).unwrap_or(CHAT);
    if chat != wanted {
        return error(400, "Bad Request: chat not found", None);
    }
    let raw = body["text"].as_str().unwrap_or("").to_string();
    let parse_mode = body["parse_mode"].as_str().map(String::from);
    match s.script.pop_front() {
        Some(Next::TooMany(after)) => {
            return error(429, &format!("Too Many Requests: retry after {after}"), Some(json!({"retry_after": after})));
        }
        Some(Next::BadGateway) => {
            return Reply::new(502, "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n</html>\r\n")
                .header("Content-Type", "text/html");
        }
        Some(Next::CantParse) if parse_mode.is_some() => {
            return error(
                400,
                "Bad Request: can't parse entities: Unsupported start tag \"br\" at byte offset 3",
                None,
            );
        }
        _ => {}
    }
    let (text, bold) = match parse_mode.as_deref() {
        Some(m) if m.eq_ignore_ascii_case("html") => match parse_html(&raw) {
            Ok(p) => p,
            Err(why) => return error(400, &format!("Bad Request: can't parse entities: {why}"), None),
        },
        None => (raw.clone(), Vec::new()),
        Some(other) => return error(400, &format!("Bad Request: unsupported parse_mode \"{other}\""), None),
    };
    if text.trim().is_empty() {
        return error(400, "Bad Request: message text is empty", None);
    }
    if text.encode_utf16().count() > 4096 {
        return error(400, "Bad Request: message is too long", None);
    }
    let reply_markup = body.get("reply_markup").cloned();
    if let Some(m) = &reply_markup {
        let rows = m["inline_keyboard"].as_array();
        let ok = rows.is_some_and(|r| {
            r.iter().all(|row| {
                row.as_array().is_some_and(|b| {
                    b.iter().all(|b| {
                        b["text"].as_str().is_some_and(|t| !t.is_empty())
                            && b["callback_data"].as_str().is_some_and(|d| (1..=64).contains(&d.len()))
                    })
                })
            })
        });
        if !ok {
            return error(400, "Bad Request: BUTTON_DATA_INVALID", None);
        }
    }
    let id = s.sent.len() as i64 + 1;
    s.sent.push(Sent { raw, text: text.clone(), parse_mode, bold, reply_markup: reply_markup.clone(), message_id: id });
    let mut result = json!({
        "message_id": id,
        "from": {"id": 123456789, "is_bot": true, "first_name": "pitcrew", "username": "pitcrew_test_bot"},
        "chat": {"id": chat, "title": "ops", "type": "supergroup"},
        "date": 1_795_000_000,
        "text": text,
    });
    if let Some(m) = reply_markup {
        result["reply_markup"] = m;
    }
    Reply::json(200, &json!({"ok": true, "result": result}))
}

const TAGS: &[&str] = &[
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "code",
    "pre",
    "a",
    "span",
    "tg-spoiler",
    "blockquote",
];

/// Parse Telegram's HTML: returns the plain text and the bold runs.
fn parse_html(s: &str) -> Result<(String, Vec<String>), String> {
    let mut text = String::new();
    let mut bold = Vec::new();
    let mut stack: Vec<(String, usize)> = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'<' => {
                if !b.get(i + 1).is_some_and(|c| c.is_ascii_alphabetic() || *c == b'/') {
                    return Err(format!("Unsupported start tag \"\" at byte offset {i}"));
                }
                let end = s[i..].find('>').map(|e| i + e).ok_or(format!("Unclosed start tag at byte offset {i}"))?;
                let inner = &s[i + 1..end];
                if let Some(name) = inner.strip_prefix('/') {
                    let name = name.trim().to_ascii_lowercase();
                    match stack.pop() {
                        Some((open, start)) if open == name => {
                            if open == "b" || open == "strong" {
                                bold.push(text[start..].to_string());
                            }
                        }
                        Some((open, _)) => {
                            return Err(format!(
                                "Unmatched end tag at byte offset {i}, expected \"</{open}>\", found \"</{name}>\""
                            ));
                        }
                        None => return Err(format!("Unexpected end tag at byte offset {i}")),
                    }
                } else {
                    let name = inner.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
                    if !TAGS.contains(&name.as_str()) {
                        return Err(format!("Unsupported start tag \"{name}\" at byte offset {i}"));
                    }
                    stack.push((name, text.len()));
                }
                i = end + 1;
            }
            b'&' => {
                let semi = s[i..].find(';').map(|e| i + e);
                match semi.filter(|e| e - i <= 10) {
                    Some(e) => {
                        let decoded = html_escape::decode_html_entities(&s[i..=e]);
                        text.push_str(&decoded);
                        i = e + 1;
                    }
                    None => {
                        text.push('&');
                        i += 1;
                    }
                }
            }
            _ => {
                let next = s[i..].find(['<', '&']).map(|e| i + e).unwrap_or(b.len());
                text.push_str(&s[i..next]);
                i = next;
            }
        }
    }
    if let Some((open, _)) = stack.pop() {
        return Err(format!("Can't find end tag corresponding to start tag \"{open}\""));
    }
    Ok((text, bold))
}

#[test]
fn the_fake_parses_html_like_telegram() {
    assert_eq!(
        parse_html("a &lt;b&gt; <b>c &amp; d</b>").unwrap(),
        ("a <b> c & d".to_string(), vec!["c & d".to_string()])
    );
    assert!(parse_html("1 < 2").unwrap_err().starts_with("Unsupported start tag \"\""));
    assert!(parse_html("<b>x</i>").unwrap_err().starts_with("Unmatched end tag"));
    assert!(parse_html("<br>").is_err());
}
