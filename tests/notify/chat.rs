//! Loopback stand-ins for Slack's incoming webhooks, Discord's webhooks and an ntfy server,
//! answering as the real services do (their documented answers, errors included), and the
//! tests of notify's native `slack`, `discord` and `ntfy` sinks against them.
//!
//! - Slack: `POST /services/T/B/X` with JSON `{"text"}` → 200 `ok` (plain text); errors are
//!   plain-text words: 400 `invalid_payload` / `missing_text_or_fallback_or_attachments`, 403 `invalid_token`, 404
//!   `no_service`, 410 `channel_is_archived`; 429 with `Retry-After: <seconds>`.
//! - Discord: `POST /api/webhooks/{id}/{token}[?wait=true]` → 200 with the message object
//!   (with `wait=true`) or 204; `content` over 2000 characters → 400 `{"code": 50035,
//!   "message": "Invalid Form Body", "errors": ...}`; a wrong token → 401 `{"code": 50027}`; a
//!   deleted webhook → 404 `{"code": 10015, "message": "Unknown Webhook"}`; 429 with
//!   `{"message", "retry_after": <float seconds>, "global"}` and the `X-RateLimit-*` headers.
//! - ntfy: `POST /<topic>` with the message as body and `Title`/`Priority`/`Tags` headers (or
//!   JSON to `POST /` with `topic`, as Apprise sends it) → 200 with the message as JSON; errors
//!   are JSON `{"code", "http", "error", "link"}`: 42901 too many requests, 42908 daily quota,
//!   40101 unauthorized, 40007 invalid priority; a body over 4096 bytes would become an
//!   attachment, which this server (like one without an attachment cache) refuses with 41301.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use super::{T0, alerts, all_files, at, check, notify, setup};
use crate::util::http::{HttpServer, Reply, Seen};

/// What a fake was sent and what it will answer next.
#[derive(Default)]
pub struct Log {
    pub requests: Vec<Seen>,
    /// Messages accepted (Slack's text, Discord's content, ntfy's message).
    pub accepted: Vec<Value>,
    /// Answers to give instead of the normal one, in order.
    pub script: VecDeque<Reply>,
}

pub struct Fake {
    pub server: HttpServer,
    pub log: Arc<Mutex<Log>>,
}

impl Fake {
    fn start(handle: fn(&Seen, &mut Log) -> Reply) -> Fake {
        let log = Arc::new(Mutex::new(Log::default()));
        let l2 = log.clone();
        let server = HttpServer::start(move |req| {
            let mut l = l2.lock().unwrap();
            l.requests.push(req.clone());
            match l.script.pop_front() {
                Some(r) => r,
                None => handle(req, &mut l),
            }
        });
        Fake { server, log }
    }

    pub fn script(&self, r: Reply) {
        self.log.lock().unwrap().script.push_back(r);
    }

    pub fn accepted(&self) -> Vec<Value> {
        self.log.lock().unwrap().accepted.clone()
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.log.lock().unwrap().requests.clone()
    }
}

// ------------------------------------------------------------------------------- Slack

pub const SLACK_PATH: &str = "/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ";

pub fn slack() -> Fake {
    Fake::start(|req, log| {
        let word = |status: u16, w: &str| Reply::new(status, w).header("Content-Type", "text/plain");
        if req.method != "POST" {
            return word(405, "invalid_method");
        }
        if req.url != SLACK_PATH {
            return word(404, "no_service");
        }
        let Ok(body) = serde_json::from_str::<Value>(&req.body) else { return word(400, "invalid_payload") };
        // A message needs text, blocks or attachments (Apprise sends attachments).
        let text = body.get("text").and_then(Value::as_str).filter(|t| !t.is_empty());
        let attached = body.get("attachments").and_then(Value::as_array).filter(|a| !a.is_empty());
        match (text, attached) {
            (Some(t), _) => log.accepted.push(json!(t)),
            (None, Some(a)) => log.accepted.push(json!(format!(
                "{}\n{}",
                a[0]["title"].as_str().unwrap_or(""),
                a[0]["text"].as_str().unwrap_or("")
            ))),
            (None, None) => return word(400, "missing_text_or_fallback_or_attachments"),
        }
        Reply::new(200, "ok").header("Content-Type", "text/html")
    })
}

pub fn slack_429(secs: u64) -> Reply {
    Reply::new(429, "rate limited").header("Retry-After", &secs.to_string()).header("Content-Type", "text/plain")
}

// ----------------------------------------------------------------------------- Discord

pub const DISCORD_PATH: &str = "/api/webhooks/417429632418316298/JHZ7pitcrewSECRETwebhookTOKEN";

fn discord_error(status: u16, code: u64, message: &str) -> Reply {
    Reply::json(status, &json!({"message": message, "code": code}))
}

pub fn discord() -> Fake {
    Fake::start(|req, log| {
        let (path, query) = req.url.split_once('?').unwrap_or((&req.url, ""));
        let Some(rest) = path.strip_prefix("/api/webhooks/") else { return discord_error(404, 0, "404: Not Found") };
        let (id, token) = rest.split_once('/').unwrap_or((rest, ""));
        if format!("/api/webhooks/{id}/{token}") != DISCORD_PATH {
            return if DISCORD_PATH.contains(id) {
                discord_error(401, 50027, "Invalid Webhook Token")
            } else {
                discord_error(404, 10015, "Unknown Webhook")
            };
        }
        let Ok(body) = serde_json::from_str::<Value>(&req.body) else {
            return discord_error(400, 50109, "The request body contains invalid JSON.");
        };
        let content = body.get("content").and_then(Value::as_str).unwrap_or("");
        if content.is_empty() {
            return discord_error(400, 50006, "Cannot send an empty message");
        }
        if content.chars().count() > 2000 {
            return Reply::json(
                400,
                &json!({"code": 50035, "message": "Invalid Form Body", "errors": {"content": {"_errors": [
                    {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]}}}),
            );
        }
        log.accepted.push(body.clone());
        let limits = |r: Reply| {
            r.header("X-RateLimit-Limit", "5")
                .header("X-RateLimit-Remaining", "4")
                .header("X-RateLimit-Reset-After", "1.0")
                .header("X-RateLimit-Bucket", "abcd1234")
        };
        if query.split('&').any(|kv| kv == "wait=true") {
            limits(Reply::json(
                200,
                &json!({"id": format!("11{:016}", log.accepted.len()), "type": 0, "content": content,
                        "channel_id": "199737254929760256", "webhook_id": "417429632418316298",
                        "mentions": [], "mention_everyone": false}),
            ))
        } else {
            limits(Reply::new(204, ""))
        }
    })
}

pub fn discord_429(retry_after: f64) -> Reply {
    Reply::json(429, &json!({"message": "You are being rate limited.", "retry_after": retry_after, "global": false}))
        .header("Retry-After", &(retry_after.ceil() as u64).to_string())
        .header("X-RateLimit-Limit", "5")
        .header("X-RateLimit-Remaining", "0")
        .header("X-RateLimit-Reset-After", &retry_after.to_string())
        .header("X-RateLimit-Scope", "user")
}

// -------------------------------------------------------------------------------- ntfy

pub const NTFY_TOKEN: &str = "tk_pitcrewntfysecrettoken0001";

pub fn ntfy_error(http: u16, code: u64, error: &str) -> Reply {
    Reply::json(http, &json!({"code": code, "http": http, "error": error, "link": "https://ntfy.sh/docs/publish/"}))
}

/// RFC 2047 `=?UTF-8?B?...?=` decoded, as ntfy does; anything else as it is.
fn decode_header(v: &str) -> String {
    match v.strip_prefix("=?UTF-8?B?").and_then(|r| r.strip_suffix("?=")) {
        Some(b) => String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).unwrap()).unwrap(),
        None => v.to_string(),
    }
}

pub fn ntfy() -> Fake {
    Fake::start(|req, log| {
        if let Some(auth) = req.header("Authorization")
            && auth != format!("Bearer {NTFY_TOKEN}")
            && !auth.starts_with("Basic ")
        {
            return ntfy_error(401, 40101, "unauthorized");
        }
        let path = req.url.split('?').next().unwrap_or("");
        let topic = path.trim_start_matches('/');
        // The JSON form: POST / with the topic in the body.
        let (topic, message, title, priority, tags) = if topic.is_empty() {
            let Ok(b) = serde_json::from_str::<Value>(&req.body) else {
                return ntfy_error(400, 40024, "invalid request: request body must be message JSON");
            };
            let tags: Vec<String> = b["tags"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
                .or_else(|| req.header("X-Tags").map(|t| t.split(',').map(String::from).collect()))
                .unwrap_or_default();
            (
                b["topic"].as_str().unwrap_or("").to_string(),
                b["message"].as_str().unwrap_or("").to_string(),
                b["title"].as_str().unwrap_or("").to_string(),
                req.header("X-Priority").map(String::from).or_else(|| b["priority"].as_u64().map(|p| p.to_string())),
                tags,
            )
        } else {
            let h = |n: &str| req.header(n).or_else(|| req.header(&format!("X-{n}")));
            (
                topic.to_string(),
                req.body.clone(),
                h("Title").map(decode_header).unwrap_or_default(),
                h("Priority").map(String::from),
                h("Tags").map(|t| t.split(',').map(String::from).collect()).unwrap_or_default(),
            )
        };
        let topic_ok = !topic.is_empty()
            && topic.len() <= 64
            && topic.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !topic_ok {
            return ntfy_error(400, 40009, "invalid request: topic invalid");
        }
        let priority = match priority.as_deref() {
            None | Some("3") | Some("default") => 3,
            Some("1") | Some("min") => 1,
            Some("2") | Some("low") => 2,
            Some("4") | Some("high") => 4,
            Some("5") | Some("max") | Some("urgent") => 5,
            Some(_) => return ntfy_error(400, 40007, "invalid request: priority invalid"),
        };
        if message.len() > 4096 {
            return ntfy_error(413, 41301, "attachment too large, or bandwidth limit reached");
        }
        let m = json!({"id": format!("m{}", log.accepted.len()), "time": 1764979200, "event": "message",
                       "topic": topic, "title": title, "message": message, "priority": priority, "tags": tags});
        log.accepted.push(m.clone());
        Reply::json(200, &m)
    })
}

// ------------------------------------------------------------------------------- tests

pub fn text_of(v: &Value) -> String {
    v.as_str().map(String::from).unwrap_or_else(|| v["content"].as_str().unwrap_or("").to_string())
}

fn three_down() -> String {
    format!(
        "{}{}{}",
        check("gateway", "down", "connection refused"),
        check("db <primary>", "down", "port 5432: a < b & c *bold* _it_"),
        check("web", "degraded", "slow")
    )
}

#[test]
fn slack_gets_one_mrkdwn_message_escaped_as_slack_asks() {
    let s = slack();
    let w = setup("notify-slack", json!({"slack_webhook_url": s.server.url(SLACK_PATH)}));
    let r = notify(&w, T0).stdin(three_down()).run();
    r.code(0);
    let got = s.accepted();
    assert_eq!(got.len(), 1, "one message for the run");
    let text = text_of(&got[0]);
    assert!(text.starts_with("[ERROR] *Agent Ops Alert*\n\n*2 services down: gateway, db &lt;primary&gt;*"), "{text}");
    assert!(text.contains("• *db &lt;primary&gt;*: port 5432: a &lt; b &amp; c"), "{text}");
    assert_eq!(alerts(&r)[0]["sinks"], json!([{"sink": "slack", "delivered": true}]));
    assert!(!r.stdout.contains("TIiajkdnlazkcOXrIdevi7FQ") && !r.stderr.contains("TIiajkdnlazkcOXrIdevi7FQ"));
}

#[test]
fn slack_429_is_waited_out_for_retry_after_then_sent() {
    let s = slack();
    s.script(slack_429(1));
    let w = setup("notify-slack-429", json!({"slack_webhook_url": s.server.url(SLACK_PATH)}));
    let t = Instant::now();
    notify(&w, T0).stdin(check("api", "down", "x")).run().code(0);
    assert!(t.elapsed() >= Duration::from_secs(1), "waited Retry-After");
    assert_eq!((s.requests().len(), s.accepted().len()), (2, 1));
}

#[test]
fn slack_refusals_keep_slacks_word_and_wait_in_the_outbox() {
    let s = slack();
    s.script(slack_429(600));
    let w = setup("notify-slack-refused", json!({"slack_webhook_url": s.server.url(SLACK_PATH)}));
    let r = notify(&w, T0).stdin(check("api", "down", "x")).run();
    r.code(1);
    r.stderr_has(
        "slack: 1 alert(s) not delivered (HTTP 429: rate limited; Retry-After 600s is past the 60s wait limit)",
    );
    s.script(Reply::new(410, "channel_is_archived"));
    let r = notify(&w, &at(1)).stdin("").run();
    r.code(1);
    r.stderr_has("HTTP 410: channel_is_archived");
    assert!(w.read("home/state/outbox.jsonl").contains("channel_is_archived"));
    // A webhook that is gone: Slack's word for it.
    let gone = setup("notify-slack-gone", json!({"slack_webhook_url": s.server.url("/services/T0/B0/revoked000")}));
    let r = notify(&gone, T0).stdin(check("api", "down", "x")).run();
    r.code(1);
    r.stderr_has("HTTP 404: no_service");
    assert!(!r.stderr.contains("revoked000"), "the webhook URL is a secret: {}", r.stderr);
    // Back: the outbox is delivered, late.
    let r = notify(&w, &at(2)).stdin("").run();
    r.code(0);
    let got = s.accepted();
    assert_eq!(got.len(), 1);
    assert!(text_of(&got[0]).contains("delivered late"), "{}", text_of(&got[0]));
    assert_eq!(w.read("home/state/outbox.jsonl"), "");
    assert!(!all_files(&w).contains("TIiajkdnlazkcOXrIdevi7FQ"));
}

#[test]
fn slack_long_messages_are_split_at_lines_under_4000() {
    let s = slack();
    let w = setup("notify-slack-split", json!({"slack_webhook_url": s.server.url(SLACK_PATH)}));
    let input: String = (0..10).map(|i| check(&format!("svc-{i:02}-<&>"), "down", &"é".repeat(900))).collect();
    notify(&w, T0).stdin(input).run().code(0);
    let got: Vec<String> = s.accepted().iter().map(text_of).collect();
    assert!(got.len() >= 3, "{} messages", got.len());
    for m in &got {
        assert!(m.encode_utf16().count() <= 4000, "{} units", m.encode_utf16().count());
    }
    let all = got.join("\n");
    for i in 0..10 {
        assert!(all.contains(&format!("• *svc-{i:02}-&lt;&amp;&gt;*: {}", "é".repeat(900))), "service {i}");
    }
}

#[test]
fn discord_gets_markdown_with_wait_true_and_pings_nobody() {
    let d = discord();
    let w = setup("notify-discord", json!({"discord_webhook_url": d.server.url(DISCORD_PATH)}));
    let input = format!("{}{}", three_down(), check("@everyone", "down", "<@&1234> hello"));
    let r = notify(&w, T0).stdin(input).run();
    r.code(0);
    let reqs = d.requests();
    assert_eq!(reqs.len(), 1);
    assert!(reqs[0].url.ends_with("?wait=true"), "{}", reqs[0].url);
    let got = d.accepted();
    assert_eq!(got[0]["allowed_mentions"], json!({"parse": []}));
    let text = text_of(&got[0]);
    assert!(text.starts_with("[ERROR] **Agent Ops Alert**"), "{text}");
    assert!(text.contains("port 5432: a < b & c \\*bold\\* \\_it\\_"), "markup in alerts is escaped: {text}");
    assert_eq!(alerts(&r)[0]["sinks"], json!([{"sink": "discord", "delivered": true}]));
}

#[test]
fn discord_splits_under_2000_and_waits_out_a_429s_retry_after() {
    let d = discord();
    d.script(discord_429(0.6));
    let w = setup("notify-discord-split", json!({"discord_webhook_url": d.server.url(DISCORD_PATH)}));
    let input: String = (0..6).map(|i| check(&format!("svc-{i}"), "down", &"x".repeat(700))).collect();
    let t = Instant::now();
    let r = notify(&w, T0).stdin(input).run();
    r.code(0);
    assert!(t.elapsed() >= Duration::from_millis(600), "waited retry_after");
    let got: Vec<String> = d.accepted().iter().map(text_of).collect();
    assert!(got.len() >= 3, "{} messages", got.len());
    assert!(got.iter().all(|m| m.chars().count() <= 2000));
    assert_eq!(d.requests().len(), got.len() + 1, "the 429 once, then every piece");
    // Too long a wait: the outbox.
    d.script(discord_429(300.5));
    let r = notify(&w, &at(1)).stdin(check("api", "down", "x")).run();
    r.code(1);
    r.stderr_has(
        "discord: 1 alert(s) not delivered (HTTP 429: rate limited; retry_after 300.5s is past the 60s wait limit)",
    );
}

#[test]
fn discord_404_stops_the_webhook_for_the_run() {
    let d = discord();
    let url = d.server.url("/api/webhooks/999/deletedTOKENdeleted");
    let w = setup("notify-discord-404", json!({"discord_webhook_url": url}));
    // Enough text for several pieces: only the first is tried.
    let input: String = (0..6).map(|i| check(&format!("svc-{i}"), "down", &"x".repeat(700))).collect();
    let r = notify(&w, T0).stdin(&input).run();
    r.code(1);
    r.stderr_has("HTTP 404: Unknown Webhook (code 10015); the webhook is gone");
    assert_eq!(d.requests().len(), 1);
    assert!(!r.stderr.contains("deletedTOKENdeleted"), "{}", r.stderr);
    // The next run: the outbox is tried once; the new alert is not sent to a dead webhook.
    let r = notify(&w, &at(1)).stdin(check("other", "down", "x")).run();
    r.code(1);
    assert_eq!(d.requests().len(), 2);
    assert!(!all_files(&w).contains("deletedTOKENdeleted"));
}

#[test]
fn ntfy_gets_title_priority_tags_and_the_token() {
    let n = ntfy();
    let w = setup("notify-ntfy", json!({"ntfy_url": n.server.url("/pitcrew-alerts"), "ntfy_token": NTFY_TOKEN}));
    let r = notify(&w, T0).stdin(three_down()).run();
    r.code(0);
    let reqs = n.requests();
    assert_eq!(reqs[0].header("Authorization"), Some(format!("Bearer {NTFY_TOKEN}").as_str()));
    let got = n.accepted();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0]["topic"].as_str(), got[0]["title"].as_str(), got[0]["priority"].as_u64()),
        (Some("pitcrew-alerts"), Some("[ERROR] Agent Ops Alert"), Some(4))
    );
    assert_eq!(got[0]["tags"], json!(["rotating_light", "pitcrew"]));
    assert!(got[0]["message"].as_str().unwrap().contains("• db <primary>: port 5432: a < b & c"), "plain text");
    // A title that is not ASCII goes RFC 2047 encoded, and reads back as it was.
    let r = w
        .tool("notify")
        .args(["--now", &at(1), "send", "--level", "warning", "--title", "Disque plein — ünïcode", "sda1 at 99%"])
        .run();
    r.code(0);
    let got = n.accepted();
    assert_eq!((got[1]["title"].as_str(), got[1]["priority"].as_u64()), (Some("Disque plein — ünïcode"), Some(3)));
    assert!(n.requests()[1].header("Title").unwrap().starts_with("=?UTF-8?B?"));
}

#[test]
fn ntfy_splits_under_4096_bytes() {
    let n = ntfy();
    let w = setup("notify-ntfy-split", json!({"ntfy_url": n.server.url("/alerts")}));
    // Three bytes a character: 1,000 characters is 3,000 bytes, under any character limit.
    let input: String = (0..5).map(|i| check(&format!("svc-{i}"), "down", &"警".repeat(1000))).collect();
    notify(&w, T0).stdin(input).run().code(0);
    let got = n.accepted();
    assert!(got.len() >= 4, "{} messages", got.len());
    assert!(got.iter().all(|m| m["message"].as_str().unwrap().len() <= 4096));
}

#[test]
fn ntfy_42901_is_backed_off_and_a_quota_goes_to_the_outbox() {
    let n = ntfy();
    n.script(ntfy_error(429, 42901, "limit reached: too many requests"));
    let w = setup("notify-ntfy-429", json!({"ntfy_url": n.server.url("/alerts")}));
    let t = Instant::now();
    notify(&w, T0).stdin(check("api", "down", "x")).run().code(0);
    assert!(t.elapsed() >= Duration::from_secs(5), "backed off 5 s");
    assert_eq!((n.requests().len(), n.accepted().len()), (2, 1));
    // A daily quota is not backed off: it waits in the outbox.
    n.script(ntfy_error(429, 42908, "limit reached: daily message quota reached"));
    let t = Instant::now();
    let r = notify(&w, &at(1)).stdin(check("db", "down", "x")).run();
    r.code(1);
    assert!(t.elapsed() < Duration::from_secs(5));
    r.stderr_has("ntfy: 1 alert(s) not delivered (HTTP 429: limit reached: daily message quota reached (code 42908))");
    // With no wait allowed, a 42901 goes to the outbox too.
    let w0 = setup("notify-ntfy-nowait", json!({"ntfy_url": n.server.url("/alerts"), "ntfy_max_wait_seconds": 0}));
    n.script(ntfy_error(429, 42901, "limit reached: too many requests"));
    let r = notify(&w0, T0).stdin(check("api", "down", "x")).run();
    r.code(1);
    r.stderr_has("(code 42901); backed off 0s in all");
}
