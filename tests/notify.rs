//! notify against loopback stand-ins for the services on the internet it speaks to (Telegram's
//! Bot API, a remote Gitea; see `notify/telegram.rs` and `notify/gitea.rs`), a real HTTP
//! receiver for the webhook, and real commands for the exec sink.

pub mod apprise;
pub mod chat;
pub mod email;
pub mod gitea;
mod maintenance;
pub mod telegram;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use self::gitea::FakeGitea;
use self::telegram::{FakeTelegram, Next};
use crate::util::http::{HttpServer, Reply, Seen};
use crate::util::{Tool, Workdir, closed_port, json as pretty};

const T0: &str = "2026-11-23T10:00:00Z";

fn at(min: u32) -> String {
    format!("2026-11-23T{:02}:{:02}:00Z", 10 + min / 60, min % 60)
}

/// A workdir whose services.json has this `alerting` object.
fn setup(name: &str, alerting: Value) -> Workdir {
    let w = Workdir::new(name);
    w.write("home/config/services.json", pretty(&json!({ "services": [], "alerting": alerting })));
    w
}

fn notify(w: &Workdir, now: &str) -> Tool {
    w.tool("notify").args(["--now", now])
}

fn check(name: &str, status: &str, detail: &str) -> String {
    format!(
        "{}\n",
        json!({"kind": "check", "name": name, "type": "url", "status": status, "detail": detail, "latency_ms": 5, "timestamp": T0})
    )
}

fn tg_alerting(tg: &FakeTelegram) -> Value {
    json!({"telegram_bot_token": telegram::TOKEN, "telegram_chat_id": telegram::CHAT.to_string(),
           "telegram_api_url": tg.url(), "rate_limit_seconds": 300, "alert_on_recovery": true})
}

fn alerts(r: &crate::util::Run) -> Vec<Value> {
    r.kind("alert")
}

/// Every file under the home, as text, for looking for secrets.
fn all_files(w: &Workdir) -> String {
    fn walk(p: &std::path::Path, out: &mut String) {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if !p.ends_with("services.json") {
                out.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    let mut s = String::new();
    walk(&w.path("home"), &mut s);
    s
}

// ---------------------------------------------------------------- the pipe contract

#[test]
fn notify_empty_input_is_empty_output() {
    let w = setup("notify-empty", json!({}));
    let r = notify(&w, T0).stdin("").run();
    r.code(0);
    assert!(r.stdout.is_empty() && r.stderr.is_empty(), "{r:?}");
}

#[test]
fn notify_malformed_line_is_named_and_the_rest_processed() {
    let w = setup("notify-bad-line", json!({}));
    let input = format!("{}{{\"kind\": nope}}\n{}", check("api", "down", "HTTP 500"), check("db", "down", "refused"));
    let r = notify(&w, T0).stdin(&input).run();
    r.code(3);
    r.stderr_has("notify: stdin:2: expected ident at column 11");
    assert_eq!(alerts(&r).len(), 2);
    let w = setup("notify-bad-line-strict", json!({}));
    let strict = notify(&w, T0).arg("--strict").stdin(&input).run();
    strict.code(2);
    strict.stderr_has("notify: stdin:2: expected ident at column 11");
}

#[test]
fn notify_stdout_closed_early_is_silent_success() {
    let w = setup("notify-head", json!({}));
    let input: String =
        (0..4000).map(|i| format!("{}\n", json!({"kind": "other", "n": i, "pad": "x".repeat(80)}))).collect();
    let first = notify(&w, T0).first_line_then_close(input);
    assert!(first.contains("\"kind\":\"other\""), "{first}");
}

#[test]
fn unknown_kinds_pass_through_unchanged_and_in_order() {
    let w = setup("notify-pass", json!({}));
    let input = "{\"kind\":\"zeta\",\"b\":1,\"a\":[2]}\n{\"kind\":\"alpha\"}\n";
    let r = notify(&w, T0).stdin(input).run();
    r.code(0);
    assert_eq!(r.stdout, input);
}

// ---------------------------------------------------------------- rules and state

#[test]
fn without_sinks_alerts_still_come_out_once_and_recoveries_follow() {
    let w = setup("notify-nosink", json!({}));
    let r = notify(&w, T0).stdin(check("api", "down", "HTTP 500")).run();
    r.code(0);
    assert!(r.stderr.is_empty(), "{r:?}");
    let a = alerts(&r);
    assert_eq!(a.len(), 1);
    assert_eq!(
        (a[0]["level"].as_str(), a[0]["title"].as_str(), a[0]["message"].as_str(), a[0]["subject"].as_str()),
        (Some("error"), Some("api is failing"), Some("down: HTTP 500"), Some("check:api"))
    );
    assert_eq!((a[0]["status"].as_str(), a[0]["sinks"].as_array().map(Vec::len)), (Some("firing"), Some(0)));
    assert!(notify(&w, &at(5)).stdin(check("api", "down", "HTTP 500")).run().stdout.is_empty(), "said once");
    let again = notify(&w, &at(61)).stdin(check("api", "down", "HTTP 500")).run();
    assert_eq!(alerts(&again)[0]["repeat"], true, "a reminder after repeat_interval_seconds (3600)");
    let up = notify(&w, &at(70)).stdin(check("api", "up", "HTTP 200")).run();
    let a = alerts(&up);
    assert_eq!((a[0]["level"].as_str(), a[0]["status"].as_str()), (Some("recovery"), Some("resolved")));
    assert_eq!(a[0]["message"], "recovered after 1h 10m: HTTP 200");
    let state: Value = serde_json::from_str(&w.read("home/state/notify.json")).unwrap();
    assert!(state["subjects"].as_object().unwrap().is_empty(), "{state}");
}

#[test]
fn every_kind_of_record_has_its_rule() {
    let w = setup("notify-kinds", json!({}));
    let lines = [
        json!({"kind":"recovery","name":"api","outcome":"max_attempts","attempt":3,"max_attempts":3,"detail":"gave up"}),
        json!({"kind":"recovery","name":"web","outcome":"recovered","flapping":true,"restarts_in_window":4}),
        json!({"kind":"uptime","name":"api","uptime_percent":98.1,"sla_percent":99.9,"status":"breach"}),
        json!({"kind":"tick","agent":"atlas","month":"2026-11","status":"missing","due":"2026-11-04T00:00:00.000Z"}),
        json!({"kind":"heartbeat","agent":"beacon","status":"unhealthy","consecutive_failures":3,"error":"timeout"}),
        json!({"kind":"agent","cell":"c1","agent":"a1","status":"failed"}),
        json!({"kind":"cell","cell":"c1","status":"failed"}),
        json!({"kind":"task","id":"t7","title":"Ship it","column":"in_progress","stalled_hours":30}),
        json!({"kind":"finding","source":"probe","subject":"db","level":"error","problem":"invalid_service","detail":"port"}),
        json!({"kind":"finding","source":"probe","subject":"x","level":"info","problem":"note","detail":""}),
    ];
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let r = notify(&w, T0).stdin(input).run();
    r.code(0);
    let got: Vec<(String, String)> = alerts(&r)
        .iter()
        .map(|a| (a["subject"].as_str().unwrap().to_string(), a["level"].as_str().unwrap().to_string()))
        .collect();
    let want = [
        ("recovery:api", "critical"),
        ("flapping:web", "warning"),
        ("uptime:api", "warning"),
        ("tick:atlas:2026-11", "error"),
        ("heartbeat:beacon", "error"),
        ("agent:c1/a1", "error"),
        ("cell:c1", "error"),
        ("task:t7", "warning"),
        ("finding:probe:db:invalid_service", "error"),
    ];
    let want: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    assert_eq!(got, want);
}

#[test]
fn after_n_runs_holds_the_first_ones() {
    let w = setup("notify-after", json!({}));
    for (i, now) in [T0.to_string(), at(5)].iter().enumerate() {
        let r = notify(&w, now).args(["--after", "3"]).stdin(check("api", "down", "x")).run();
        assert_eq!(alerts(&r)[0]["suppressed"], "threshold", "run {i}");
    }
    let r = notify(&w, &at(10)).args(["--after", "3"]).stdin(check("api", "down", "x")).run();
    assert!(alerts(&r)[0].get("suppressed").is_none(), "{r:?}");
}

// ---------------------------------------------------------------- Telegram

#[test]
fn telegram_gets_one_grouped_escaped_message_per_run() {
    let tg = FakeTelegram::start();
    let w = setup("notify-tg-group", tg_alerting(&tg));
    let mut worker: Value = serde_json::from_str(check("worker", "down", "refused").trim()).unwrap();
    worker["suppressed_by"] = json!("gateway");
    let input = format!(
        "{}{}\n{}{}",
        check("gateway", "down", "connection refused"),
        worker,
        check("db <primary>", "down", "port 5432: a < b & c"),
        check("web", "degraded", "slow")
    );
    let r = notify(&w, T0).stdin(&input).run();
    r.code(0);
    let sent = tg.sent();
    assert_eq!(sent.len(), 1, "one message for the run");
    let m = &sent[0];
    assert_eq!(m.parse_mode.as_deref(), Some("HTML"));
    assert!(m.raw.contains("db &lt;primary&gt;") && m.raw.contains("a &lt; b &amp; c"), "{}", m.raw);
    let want = "[ERROR] Agent Ops Alert\n\n\
2 services down: gateway, db <primary>\n\
• gateway: connection refused\n\
\x20  ↳ also down because of gateway: worker\n\
• db <primary>: port 5432: a < b & c\n\n\
1 service degraded: web\n\
• web: slow";
    assert_eq!(m.text, want);
    assert!(m.bold.contains(&"Agent Ops Alert".to_string()));
    let a = alerts(&r);
    let worker = a.iter().find(|a| a["subject"] == "check:worker").unwrap();
    assert_eq!((worker["suppressed"].as_str(), worker["sinks"].as_array().unwrap().len()), (Some("inhibited"), 0));
    let gw = a.iter().find(|a| a["subject"] == "check:gateway").unwrap();
    assert_eq!(gw["sinks"], json!([{"sink": "telegram", "delivered": true}]));
    // Nothing new: nothing sent. Recovery: one message.
    notify(&w, &at(2)).stdin(&input).run().code(0);
    assert_eq!(tg.sent().len(), 1);
    notify(&w, &at(20)).stdin(check("gateway", "up", "HTTP 200")).run().code(0);
    let sent = tg.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[1].text,
        "[RECOVERED] Agent Ops Alert\n\nRecovered: gateway\n• gateway recovered after 20m: HTTP 200"
    );
}

#[test]
fn telegram_429_is_waited_out_with_retry_after() {
    let tg = FakeTelegram::start();
    tg.script(Next::TooMany(1));
    let w = setup("notify-tg-429", tg_alerting(&tg));
    let t = Instant::now();
    let r = notify(&w, T0).stdin(check("api", "down", "x")).run();
    r.code(0);
    assert!(t.elapsed() >= Duration::from_secs(1), "waited retry_after");
    assert_eq!(tg.sent().len(), 1);
    assert_eq!(tg.state.lock().unwrap().requests, 2);
}

#[test]
fn telegram_too_long_a_wait_goes_to_the_outbox_and_the_next_run_delivers_it() {
    let tg = FakeTelegram::start();
    tg.script(Next::TooMany(600));
    let w = setup("notify-tg-outbox", tg_alerting(&tg));
    let r = notify(&w, T0).stdin(check("api", "down", "HTTP 500")).run();
    r.code(1);
    r.stderr_has("telegram: 1 alert(s) not delivered (HTTP 429: Too Many Requests: retry after 600");
    let a = &alerts(&r)[0];
    assert_eq!(a["sinks"][0]["delivered"], false);
    assert!(w.read("home/state/outbox.jsonl").contains("\"sinks\":[\"telegram\"]"));
    // Nothing new to say, but the outbox is sent at the start of the next run.
    let r = notify(&w, &at(1)).stdin(check("api", "down", "HTTP 500")).run();
    r.code(0);
    let sent = tg.sent();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].text.contains("(delivered late)") && sent[0].text.contains("[raised 2026-11-23 10:00 UTC]"),
        "{}",
        sent[0].text
    );
    let retried = &alerts(&r)[0];
    assert_eq!((retried["sinks"][0]["delivered"].as_bool(), retried["attempts"].as_u64()), (Some(true), Some(2)));
    assert_eq!(w.read("home/state/outbox.jsonl"), "");
    notify(&w, &at(2)).stdin("").run().code(0);
    assert_eq!(tg.sent().len(), 1);
}

#[test]
fn telegram_behind_a_failing_gateway_is_queued() {
    let tg = FakeTelegram::start();
    tg.script(Next::BadGateway);
    let w = setup("notify-tg-502", tg_alerting(&tg));
    let r = notify(&w, T0).stdin(check("api", "down", "x")).run();
    r.code(1);
    r.stderr_has("telegram: 1 alert(s) not delivered (HTTP 502: <html>)");
    notify(&w, &at(1)).stdin("").run().code(0);
    assert_eq!(tg.sent().len(), 1);
}

#[test]
fn telegram_html_it_cannot_parse_is_sent_again_as_plain_text() {
    let tg = FakeTelegram::start();
    tg.script(Next::CantParse);
    let w = setup("notify-tg-plain", tg_alerting(&tg));
    let r = notify(&w, T0).stdin(check("a&b", "down", "<weird>")).run();
    r.code(0);
    r.stderr_has("can't parse entities");
    let sent = tg.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].parse_mode, None);
    assert!(sent[0].raw.contains("• a&b: <weird>"), "plain text is not escaped: {}", sent[0].raw);
}

#[test]
fn telegram_messages_over_4096_are_split_at_lines() {
    let tg = FakeTelegram::start();
    let w = setup("notify-tg-split", tg_alerting(&tg));
    // Ten services, each with its own long story: a line each, over several messages.
    let input: String = (0..10).map(|i| check(&format!("service-{i:03}-<&>"), "down", &"x".repeat(900))).collect();
    let r = notify(&w, T0).stdin(&input).run();
    r.code(0);
    let sent = tg.sent();
    assert!(sent.len() >= 3, "{} messages", sent.len());
    let all: String = sent.iter().map(|m| m.text.clone()).collect::<Vec<_>>().join("\n");
    for i in 0..10 {
        assert!(all.contains(&format!("• service-{i:03}-<&>: {}", "x".repeat(900))), "service {i} missing");
    }
    for m in &sent {
        assert!(m.raw.encode_utf16().count() <= 4096);
    }
}

/// A mass outage: a headline with counts, every service named once, grouped by what went
/// wrong, messages cut between lines; what does not fit in the message budget is "and N
/// more", and the whole list is in the alert records and the webhook's body.
#[test]
#[ignore = "slow: a load run (300 services); scripts/test.sh runs it"]
fn a_storm_of_300_services_reads_well() {
    let tg = FakeTelegram::start();
    let bodies = Arc::new(Mutex::new(Vec::<Value>::new()));
    let b2 = bodies.clone();
    let hook = HttpServer::start(move |req| {
        b2.lock().unwrap().push(serde_json::from_str(&req.body).unwrap());
        Reply::new(200, "ok")
    });
    let mut alerting = tg_alerting(&tg);
    alerting["webhook_url"] = json!(hook.url("/"));
    let w = setup("notify-storm", alerting);
    let why = ["connection refused", "no answer within 2 s", "HTTP 502 (expected 200)"];
    let input: String = (0..300).map(|i| check(&format!("svc-{i:03}"), "down", why[i % 3])).collect();
    let r = notify(&w, T0).stdin(&input).run();
    r.code(0);
    let sent = tg.sent();
    assert!(sent.len() <= 8, "{} messages", sent.len());
    let all: String = sent.iter().map(|m| m.text.clone()).collect::<Vec<_>>().join("\n");
    assert!(all.starts_with("[ERROR] Agent Ops Alert\n\n300 services down\n"), "{all}");
    for (i, c) in why.iter().enumerate() {
        assert!(all.contains(&format!("• {c} (100):")), "cause {i}: {all}");
    }
    for i in 0..300 {
        let name = format!("svc-{i:03}");
        assert_eq!(all.matches(&name).count(), 1, "{name} is named once: {all}");
    }
    for m in &sent {
        assert!(m.raw.encode_utf16().count() <= 4096);
        for line in m.text.lines() {
            assert!(!line.ends_with("svc-") && !line.starts_with("vc-"), "cut inside a name: {line}");
        }
    }
    // The webhook has all 300, one alert each.
    let b = bodies.lock().unwrap();
    assert_eq!(b[0]["alerts"].as_array().unwrap().len(), 300);
    assert_eq!(alerts(&r).len(), 300);

    // Three thousand do not fit in eight messages: the rest is counted, never cut mid-line.
    let tg2 = FakeTelegram::start();
    let w2 = setup("notify-storm-big", tg_alerting(&tg2));
    let input: String =
        (0..3000).map(|i| check(&format!("service-with-a-long-name-{i:04}"), "down", why[i % 3])).collect();
    notify(&w2, T0).stdin(&input).run().code(0);
    let sent = tg2.sent();
    assert_eq!(sent.len(), 8);
    let all: String = sent.iter().map(|m| m.text.clone()).collect::<Vec<_>>().join("\n");
    let shown = (0..3000).filter(|i| all.contains(&format!("service-with-a-long-name-{i:04}"))).count();
    let more = format!("… and {} more", 3000 - shown);
    assert!(sent[7].text.contains(&more), "{more} in: {}", sent[7].text);
    assert!(shown > 1000, "the budget is used: {shown} shown");
}

#[test]
fn telegram_migrated_group_is_followed() {
    let tg = FakeTelegram::start();
    tg.state.lock().unwrap().migrated = Some((telegram::CHAT, -1009999));
    let w = setup("notify-tg-migrate", tg_alerting(&tg));
    let r = notify(&w, T0).stdin(check("api", "down", "x")).run();
    r.code(0);
    r.stderr_has("set telegram_chat_id to -1009999");
    assert_eq!(tg.sent().len(), 1);
}

#[test]
fn tokens_never_show_in_output_errors_or_files() {
    // A Telegram that is down, a Telegram that refuses the token, a Gitea that refuses its.
    let down = closed_port();
    let gitea = FakeGitea::start(&[]);
    let w = setup(
        "notify-secrets",
        json!({"telegram_bot_token": telegram::TOKEN, "telegram_chat_id": "1",
               "telegram_api_url": format!("http://127.0.0.1:{down}"),
               "gitea_url": gitea.url(), "gitea_repo": gitea::REPO, "gitea_token": "wrong-token-value-123"}),
    );
    let r = notify(&w, T0).stdin(check("api", "down", "x")).run();
    r.code(1);
    r.stderr_has("gitea: 1 alert(s) not delivered (GET /api/v1/repos/ops/alerts/issues: HTTP 401: user does not exist");
    r.stderr_has("(check gitea_token)");
    let tg = FakeTelegram::start();
    let w2 = setup(
        "notify-secrets-401",
        json!({"telegram_bot_token": "999:WRONGtokenVALUE", "telegram_chat_id": telegram::CHAT.to_string(),
               "telegram_api_url": tg.url()}),
    );
    let r2 = notify(&w2, T0).stdin(check("api", "down", "x")).run();
    r2.code(1);
    r2.stderr_has("HTTP 401: Unauthorized");
    for (w, r) in [(&w, &r), (&w2, &r2)] {
        let everything = format!("{}{}{}", r.stdout, r.stderr, all_files(w));
        for secret in [telegram::TOKEN, "wrong-token-value-123", "999:WRONGtokenVALUE", "WRONGtokenVALUE"] {
            assert!(!everything.contains(secret), "{secret} leaked{r:?}");
        }
    }
}

// ---------------------------------------------------------------- Gitea

fn gitea_alerting(g: &FakeGitea, close: bool) -> Value {
    json!({"gitea_url": g.url(), "gitea_repo": gitea::REPO, "gitea_token": gitea::TOKEN,
           "gitea_labels": ["ops", "auto-generated"], "gitea_close_on_recovery": close})
}

#[test]
fn gitea_issue_with_label_ids_then_comments_then_closed_on_recovery() {
    let g = FakeGitea::start(&["bug", "ops"]);
    let w = setup("notify-gitea", gitea_alerting(&g, true));
    let r = notify(&w, T0).stdin(check("api", "down", "HTTP 500")).run();
    r.code(0);
    let issues = g.issues();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].title, "api is failing");
    let names: Vec<String> = issues[0].labels.iter().map(|id| g.label_name(*id)).collect();
    assert_eq!(names, ["ops", "auto-generated"], "names resolved to ids; the missing one created");
    assert!(issues[0].body.contains("| subject | `check:api` |"), "{}", issues[0].body);
    // Still down past the chat's repeat interval (an hour): Gitea's own cadence is a day, so
    // the reminder is held for it.
    let r = notify(&w, &at(61)).stdin(check("api", "down", "HTTP 503")).run();
    r.code(0);
    assert_eq!(alerts(&r)[0]["suppressed"], "cadence", "{}", r.stdout);
    assert_eq!(g.issues()[0].comments.len(), 0);
    // A day after the issue was opened: a comment, not a twin.
    notify(&w, "2026-11-24T10:00:00Z").stdin(check("api", "down", "HTTP 503")).run().code(0);
    let issues = g.issues();
    assert_eq!((issues.len(), issues[0].comments.len()), (1, 1));
    assert!(issues[0].comments[0].contains("Still failing") && issues[0].comments[0].contains("HTTP 503"));
    notify(&w, "2026-11-24T10:10:00Z").stdin(check("api", "up", "HTTP 200")).run().code(0);
    let issues = g.issues();
    assert_eq!(issues[0].state, "closed");
    assert!(issues[0].comments[1].starts_with("**Recovered**"));
    // The next incident opens a new issue (the old one is closed).
    notify(&w, "2026-11-24T10:20:00Z").stdin(check("api", "down", "HTTP 500")).run().code(0);
    assert_eq!(g.issues().len(), 2);
}

#[test]
fn gitea_sends_rca_alerts_as_they_are_and_reports_labels_it_cannot_create() {
    let g = FakeGitea::start(&["agent-health"]);
    g.state.lock().unwrap().no_label_create = true;
    let w = setup(
        "notify-gitea-rca",
        json!({"gitea_url": g.url(), "gitea_repo": gitea::REPO, "gitea_token": gitea::TOKEN}),
    );
    let rca = json!({"kind":"alert","topic":"agent-health","level":"critical",
        "title":"RCA-AGENT: atlas failed to submit monthly tick (2026-11)","message":"no tick by the deadline",
        "body":"## What happened\n\nNo tick.\n","labels":["agent-health","rca-required"],
        "subject":"tick:atlas:2026-11","status":"firing","sinks":[],"timestamp":T0});
    let tick = json!({"kind":"tick","agent":"atlas","month":"2026-11","status":"missing"});
    let r = notify(&w, T0).stdin(format!("{tick}\n{rca}\n")).run();
    r.code(0);
    r.stderr_has("gitea: label 'rca-required' does not exist and cannot be created (POST /api/v1/repos/ops/alerts/labels: HTTP 403");
    let issues = g.issues();
    assert_eq!(issues.len(), 1, "the alert record speaks for the tick");
    assert_eq!(issues[0].title, "RCA-AGENT: atlas failed to submit monthly tick (2026-11)");
    assert_eq!(issues[0].body, "## What happened\n\nNo tick.\n");
    assert_eq!(issues[0].labels.iter().map(|i| g.label_name(*i)).collect::<Vec<_>>(), ["agent-health"]);
    // The same RCA the next day: already announced, nothing new.
    notify(&w, &at(30)).stdin(format!("{tick}\n{rca}\n")).run().code(0);
    assert_eq!(g.issues().len(), 1);
    // An alert already through a notify passes on untouched.
    let mut done = rca.clone();
    done["sinks"] = json!([{"sink": "gitea", "delivered": true}]);
    let r = notify(&w, &at(31)).stdin(format!("{done}\n")).run();
    assert_eq!(r.records(), vec![done]);
}

#[test]
fn gitea_info_alerts_stay_out_of_the_tracker() {
    let g = FakeGitea::start(&[]);
    let w = setup("notify-gitea-info", gitea_alerting(&g, false));
    let r = w.tool("notify").args(["send", "weekly digest: all fine", "--topic", "digest"]).run();
    r.code(0);
    assert!(g.issues().is_empty(), "gitea_min_level is warning by default");
    assert_eq!(alerts(&r)[0]["sinks"], json!([]));
}

// ---------------------------------------------------------------- webhook and exec

#[test]
fn webhook_gets_the_alerts_and_the_text() {
    let got: std::sync::Arc<std::sync::Mutex<Vec<Seen>>> = Default::default();
    let g2 = got.clone();
    let hook = HttpServer::start(move |req| {
        g2.lock().unwrap().push(req.clone());
        Reply::new(204, "")
    });
    let w = setup("notify-webhook", json!({"webhook_url": hook.url("/hook"), "webhook_headers": {"X-Team": "ops"}}));
    let r =
        notify(&w, T0).stdin(format!("{}{}", check("api", "down", "HTTP 500"), check("db", "down", "refused"))).run();
    r.code(0);
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].method.as_str(), got[0].url.as_str(), got[0].header("x-team")), ("POST", "/hook", Some("ops")));
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["alerts"].as_array().unwrap().len(), 2);
    assert_eq!(body["alerts"][0]["subject"], "check:api");
    assert!(body["text"].as_str().unwrap().starts_with("[ERROR] Agent Ops Alert\n\n2 services down: api, db"));
}

#[test]
fn webhook_refusing_is_queued() {
    let hook = HttpServer::start(|_| Reply::new(500, "oops"));
    let w = setup("notify-webhook-500", json!({"webhook_url": hook.url("/hook")}));
    let r = notify(&w, T0).stdin(check("api", "down", "x")).run();
    r.code(1);
    r.stderr_has("webhook: 1 alert(s) not delivered (HTTP 500: oops)");
}

#[test]
fn exec_gets_the_message_on_stdin() {
    let w = Workdir::new("notify-exec");
    let out = w.path("mail.txt");
    let cmd = format!("printf '%s|%s\\n' \"$NOTIFY_LEVEL\" \"$NOTIFY_COUNT\" > '{0}'; cat >> '{0}'", out.display());
    w.write("home/config/services.json", pretty(&json!({"alerting": {"exec": cmd}})));
    let r = notify(&w, T0).stdin(check("api", "down", "HTTP 500")).run();
    r.code(0);
    assert_eq!(w.read("mail.txt"), "error|1\n[ERROR] Agent Ops Alert\n\n1 service down: api\n• api: HTTP 500\n");
    let w = setup("notify-exec-fail", json!({"exec": ["sh", "-c", "echo 'mailer broke' >&2; exit 3"]}));
    let r = notify(&w, T0).stdin(check("api", "down", "HTTP 500")).run();
    r.code(1);
    r.stderr_has("exec: 1 alert(s) not delivered (exit 3: mailer broke)");
}

// ---------------------------------------------------------------- send, silences, dry run

#[test]
fn send_is_the_kits_alert_script_with_its_rate_file() {
    let tg = FakeTelegram::start();
    let w = setup("notify-send", tg_alerting(&tg));
    let r = w.tool("notify").args(["send", "API down <now> & then", "--topic", "api-health", "--level", "error"]).run();
    r.code(0);
    let sent = tg.sent();
    assert_eq!(sent[0].raw, "[ERROR] <b>Agent Ops Alert</b>\n\nAPI down &lt;now&gt; &amp; then");
    let rate: Value = serde_json::from_str(&w.read("home/state/alert-rate.json")).unwrap();
    assert!(rate["api-health"].as_f64().unwrap() > 1.7e9, "the Agent Ops Kit's {{topic: epoch seconds}}: {rate}");
    let again = w.tool("notify").args(["send", "API down again", "--topic", "api-health"]).run();
    again.code(0);
    again.stderr_has("rate limited: topic 'api-health' was sent within the last 300s");
    assert_eq!(alerts(&again)[0]["suppressed"], "rate_limit");
    assert_eq!(tg.sent().len(), 1);
    // A rate entry written by the Agent Ops Kit's script is honoured as well.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    w.write("home/state/alert-rate.json", format!("{{\"daily-uptime\": {}}}", now - 60.0));
    let r = w.tool("notify").args(["send", "report", "--topic", "daily-uptime"]).run();
    assert_eq!(alerts(&r)[0]["suppressed"], "rate_limit");
    // A message from stdin, as a digest.
    let r =
        w.tool("notify").args(["send", "-", "--topic", "weekly-digest"]).stdin("Uptime report\n  api 99.9%\n").run();
    r.code(0);
    assert_eq!(tg.sent().last().unwrap().text, "[INFO] Agent Ops Alert\n\nUptime report\n  api 99.9%");
}

#[test]
fn send_undelivered_is_exit_1_and_queued() {
    let w = setup(
        "notify-send-down",
        json!({"telegram_bot_token": telegram::TOKEN, "telegram_chat_id": "1",
               "telegram_api_url": format!("http://127.0.0.1:{}", closed_port())}),
    );
    let r = w.tool("notify").args(["send", "hello"]).run();
    r.code(1);
    assert!(w.read("home/state/outbox.jsonl").contains("\"message\":\"hello\""));
    let list = w.tool("notify").args(["outbox", "list"]).run();
    list.code(0);
    assert_eq!(list.kind("queued")[0]["sinks"], json!(["telegram"]));
    let drop = w.tool("notify").args(["outbox", "drop", "--sink", "telegram"]).run();
    drop.code(0);
    assert_eq!(w.read("home/state/outbox.jsonl"), "");
    w.tool("notify").arg("--now").arg(T0).stdin("").run().code(0);
}

#[test]
fn silences_hold_alerts_until_they_end() {
    let tg = FakeTelegram::start();
    let w = setup("notify-silence", tg_alerting(&tg));
    let add = notify(&w, T0).args(["silence", "add", "--match", "name=api*", "--for", "1h", "--why", "deploy"]).run();
    add.code(0);
    let s = &add.kind("silence")[0];
    assert_eq!(
        (s["id"].as_u64(), s["state"].as_str(), s["ends_at"].as_str()),
        (Some(1), Some("active"), Some("2026-11-23T11:00:00.000Z"))
    );
    assert_eq!(s["matchers"], json!(["name=api*"]));
    let r = notify(&w, &at(10)).stdin(format!("{}{}", check("api-eu", "down", "x"), check("db", "down", "y"))).run();
    r.code(0);
    let a = alerts(&r);
    assert_eq!((a[0]["suppressed"].as_str(), a[1].get("suppressed")), (Some("silenced"), None));
    assert_eq!(tg.sent().len(), 1);
    assert!(!tg.sent()[0].text.contains("api-eu"));
    let list = notify(&w, &at(20)).args(["silence", "list"]).run();
    assert_eq!(list.kind("silence").len(), 1);
    notify(&w, &at(20)).args(["silence", "expire", "1"]).run().code(0);
    assert!(notify(&w, &at(21)).args(["silence", "list"]).run().stdout.is_empty());
    assert_eq!(notify(&w, &at(21)).args(["silence", "list", "--all"]).run().kind("silence")[0]["state"], "expired");
    let r = notify(&w, &at(25)).stdin(format!("{}{}", check("api-eu", "down", "x"), check("db", "down", "y"))).run();
    assert_eq!(alerts(&r).len(), 1, "api-eu, still down, is alerted now{r:?}");
    assert!(tg.sent()[1].text.contains("api-eu"));
    notify(&w, T0).args(["silence", "expire", "7"]).run().code(2).stderr_has("no silence with id 7");
    notify(&w, T0).args(["silence", "add", "--match", "oops", "--for", "1h"]).run().code(2).stderr_has("KEY=VALUE");
    notify(&w, T0).args(["silence", "add", "--match", "a=b", "--for", "soon"]).run().code(2);
}

#[test]
fn dry_run_renders_and_sends_nothing() {
    let tg = FakeTelegram::start();
    let g = FakeGitea::start(&[]);
    let mut alerting = tg_alerting(&tg);
    alerting["gitea_url"] = json!(g.url());
    alerting["gitea_repo"] = json!(gitea::REPO);
    alerting["gitea_token"] = json!(gitea::TOKEN);
    let w = setup("notify-dry", alerting);
    let r = notify(&w, T0).arg("--dry-run").stdin(check("api", "down", "HTTP 500")).run();
    r.code(0);
    let a = &alerts(&r)[0];
    assert_eq!(a["sinks"][0]["dry_run"], true);
    assert_eq!(
        a["sinks"][0]["rendered"]["messages"][0],
        "[ERROR] <b>Agent Ops Alert</b>\n\n<b>1 service down: api</b>\n• <b>api</b>: HTTP 500"
    );
    assert_eq!(a["sinks"][1]["rendered"]["issue"], "api is failing");
    assert!(tg.sent().is_empty() && g.state.lock().unwrap().requests.is_empty());
    assert!(!w.path("home/state/notify.json").exists(), "no state written");
    let text = notify(&w, T0).args(["--dry-run", "--format", "text"]).stdin(check("api", "down", "HTTP 500")).run();
    text.stdout_has("== telegram\n[ERROR] <b>Agent Ops Alert</b>");
    text.stdout_has("== gitea\n");
}

#[test]
fn sink_selection() {
    let tg = FakeTelegram::start();
    let got: std::sync::Arc<std::sync::Mutex<usize>> = Default::default();
    let g2 = got.clone();
    let hook = HttpServer::start(move |_| {
        *g2.lock().unwrap() += 1;
        Reply::new(200, "ok")
    });
    let mut alerting = tg_alerting(&tg);
    alerting["webhook_url"] = json!(hook.url("/"));
    let w = setup("notify-sinks", alerting);
    let r = notify(&w, T0).args(["--sink", "webhook"]).stdin(check("api", "down", "x")).run();
    r.code(0);
    assert_eq!((*got.lock().unwrap(), tg.sent().len()), (1, 0));
    notify(&w, T0).args(["--sink", "gitea"]).stdin("").run().code(2).stderr_has("--sink gitea: not configured");
    notify(&w, T0).args(["--sink", "pager"]).stdin("").run().code(2);
}

#[test]
fn half_a_configuration_is_said() {
    let w = setup("notify-half", json!({"telegram_bot_token": "123:abc-def"}));
    // Half a sink would drop every alert without a word: it is a configuration error.
    notify(&w, T0)
        .stdin(check("api", "down", "x"))
        .run()
        .code(2)
        .stderr_has("the telegram sink is configured in part: telegram_chat_id (TELEGRAM_CHAT_ID) is missing");
}

#[test]
fn env_overrides_configure_the_sinks() {
    let tg = FakeTelegram::start();
    let w = Workdir::new("notify-env");
    let r = notify(&w, T0)
        .env("TELEGRAM_BOT_TOKEN", telegram::TOKEN)
        .env("TELEGRAM_CHAT_ID", telegram::CHAT.to_string())
        .env("TELEGRAM_API_URL", tg.url())
        .stdin(check("api", "down", "x"))
        .run();
    r.code(0);
    assert_eq!(tg.sent().len(), 1);
}

#[test]
fn overlapping_runs_announce_once() {
    let tg = FakeTelegram::start();
    let w = setup("notify-overlap", tg_alerting(&tg));
    let input = check("api", "down", "x");
    let kids: Vec<_> = (0..4)
        .map(|_| {
            let mut c = notify(&w, T0).spawn();
            let mut stdin = c.stdin.take().unwrap();
            let data = input.clone();
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = stdin.write_all(data.as_bytes());
            });
            c
        })
        .collect();
    for c in kids {
        assert_eq!(c.wait_with_output().unwrap().status.code(), Some(0));
    }
    assert_eq!(tg.sent().len(), 1);
}

// ---------------------------------------------------------------- the seams (issue: records, sinks, state)

/// Records notify consumes but cannot read are rejected with the place and the reason, never
/// dropped in silence; statuses in another case are the same status.
#[test]
fn records_notify_cannot_read_are_rejected_not_dropped() {
    let w = setup("notify-unreadable", json!({}));
    let lines = [
        json!({"kind":"check","name":"api","status":"DOWN","detail":"HTTP 500"}),
        json!({"kind":"check","name":"db","status":"critical"}),
        json!({"kind":"check","name":"web","status":["down"]}),
        json!({"kind":"check","status":"down"}),
        json!({"kind":"check","name":5,"status":"down"}),
        json!({"kind":"heartbeat","agent":5,"status":"unhealthy"}),
        json!({"kind":"recovery","name":"api","outcome":"exploded"}),
        json!({"kind":"tick","agent":"atlas","month":"2026-11","status":"Missing"}),
    ];
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let r = notify(&w, T0).stdin(&input).run();
    r.code(3);
    for (n, why) in [
        (2, "check 'db': status 'critical' is not one of up, degraded, down"),
        (3, "check 'web': `status` is a list, not a string"),
        (4, "check: no `name`"),
        (5, "check: `name` is a number, not a string"),
        (6, "heartbeat: `agent` is a number, not a string"),
        (7, "recovery 'api': outcome 'exploded' is not one of recovered, failed, cooldown, max_attempts, skipped"),
    ] {
        r.stderr_has(&format!("notify: stdin:{n}: {why}"));
    }
    let subjects: Vec<String> = alerts(&r).iter().map(|a| a["subject"].as_str().unwrap().to_string()).collect();
    assert_eq!(subjects, ["check:api", "tick:atlas:2026-11"], "DOWN is down, Missing is missing");
}

/// Only the Tick Protocol's own variables and its ticks repository: the Gitea sink takes the
/// repository from the repository's remote; without one, it is a configuration error.
#[test]
fn gitea_takes_the_repository_from_the_ticks_repository_or_says_it_is_missing() {
    let g = FakeGitea::start(&[]);
    let w = Workdir::new("notify-gitea-protocol");
    w.write("home/ticks/.keep", "");
    let rca = json!({"kind":"alert","topic":"agent-health","level":"error","title":"RCA-AGENT: cinder failed to submit monthly tick (2026-11)",
                     "message":"cinder: no tick","body":"## Agent health failure: cinder","labels":["agent-health","rca-required","auto-generated"],
                     "subject":"tick:cinder:2026-11","status":"firing","sinks":[]});
    let run = |w: &Workdir| {
        notify(w, T0)
            .env("CLAW_CODE_GITEA_URL", g.url())
            .env("GITEA_TOKEN", gitea::TOKEN)
            .stdin(format!("{rca}\n"))
            .run()
    };
    // No remote to take it from: exit 2, saying what is missing; nothing silently dropped.
    let r = run(&w);
    r.code(2);
    r.stderr_has("the gitea sink is configured in part: gitea_repo (GITEA_REPO; the ticks repository");
    assert!(g.issues().is_empty());
    let home = w.path("home");
    for args in [vec!["init", "-q"], vec!["remote", "add", "origin", &format!("{}/{}.git", g.url(), gitea::REPO)]] {
        assert!(std::process::Command::new("git").arg("-C").arg(&home).args(&args).status().unwrap().success());
    }
    run(&w).code(0);
    let issues = g.issues();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].title, "RCA-AGENT: cinder failed to submit monthly tick (2026-11)");
}

/// A Gitea whose create answers 200 without an issue (a proxy's page, a GET that a redirect
/// made of the POST) created nothing: the alert stays in the outbox.
#[test]
fn gitea_counts_only_its_own_answer_to_a_create() {
    let fake = HttpServer::start(|req| {
        if req.method == "GET" {
            Reply::json(200, &json!([]))
        } else {
            Reply::new(200, "<html>Welcome to nginx!</html>")
        }
    });
    let w = setup(
        "notify-gitea-200",
        json!({"gitea_url": fake.url(""), "gitea_repo": gitea::REPO, "gitea_token": gitea::TOKEN}),
    );
    let r = notify(&w, T0).stdin(check("api", "down", "x")).run();
    r.code(1);
    r.stderr_has("POST /api/v1/repos/ops/alerts/issues: HTTP 200 without the created object's number");
    assert!(w.read("home/state/outbox.jsonl").contains("\"gitea\""));
}

/// State that cannot be locked or written does not keep alerts from people: they are
/// delivered without the dedup memory, the run says so and exits 2. The lock is made
/// unopenable (a directory where the lock file goes) as a read-only or full disk makes it;
/// where this machine lets the test mount, a read-only bind mount of the home is tried too.
#[test]
fn a_home_that_cannot_be_written_still_delivers_and_exits_2() {
    let got: Arc<Mutex<Vec<Value>>> = Default::default();
    let g2 = got.clone();
    let hook = HttpServer::start(move |req| {
        g2.lock().unwrap().push(serde_json::from_str(&req.body).unwrap());
        Reply::json(200, &json!({"ok": true}))
    });
    let w = setup("notify-ro", json!({"webhook_url": hook.url("/hook")}));
    std::fs::create_dir_all(w.path("home/state/notify.json.lock")).unwrap();
    let r = notify(&w, T0).stdin(check("api", "down", "x")).run();
    r.code(2);
    r.stderr_has("delivering anyway, without the memory that keeps alerts from repeating");
    assert_eq!(got.lock().unwrap().len(), 1, "the working webhook got the alert");
    assert_eq!(alerts(&r)[0]["sinks"][0]["delivered"], true);
    let r = notify(&w, T0).args(["send", "deploy finished", "--level", "info"]).run();
    r.code(2);
    assert_eq!(got.lock().unwrap().len(), 2, "notify send too");

    // A real read-only file system, where this machine allows a bind mount.
    let ro = Workdir::new("notify-ro-mount");
    let src = setup("notify-ro-src", json!({"webhook_url": hook.url("/hook")}));
    std::fs::create_dir_all(src.path("home/state")).unwrap();
    let mnt = ro.path("home");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["--bind", "-o", "ro"])
        .arg(src.path("home"))
        .arg(&mnt)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if mounted {
        let r = notify(&ro, T0).stdin(check("db", "down", "x")).run();
        let _ = std::process::Command::new("umount").arg(&mnt).status();
        r.code(2);
        r.stderr_has("Read-only file system");
        assert_eq!(got.lock().unwrap().len(), 3);
    }
}

// ---------------------------------------------------------------- notify --follow

/// What a webhook was sent: when, the body, and the status it answered.
type Received = Arc<Mutex<Vec<(Instant, Value, u16)>>>;

/// A webhook that records each request with when it came, answering `status()`.
fn timed_hook(status: impl Fn() -> u16 + Send + Sync + 'static) -> (HttpServer, Received) {
    let got: Received = Default::default();
    let g2 = got.clone();
    let hook = HttpServer::start(move |req| {
        let code = status();
        g2.lock().unwrap().push((Instant::now(), serde_json::from_str(&req.body).unwrap(), code));
        Reply::new(code, "")
    });
    (hook, got)
}

fn follow(w: &Workdir, args: &[&str]) -> crate::recover::Follower {
    crate::recover::Follower::start(w.tool("notify").arg("--follow").args(args))
}

fn live_check(name: &str, status: &str) -> String {
    format!("{}\n", json!({"kind": "check", "name": name, "type": "url", "status": status, "detail": "refused"}))
}

/// A record notify passes through: once it is out, everything before it has been read.
fn marker(f: &mut crate::recover::Follower, n: u32) {
    f.send(&format!("{}\n", json!({"kind": "note", "n": n})));
    assert_eq!(f.until(10.0, |v| v["kind"] == "note")[..].last().unwrap()["n"], n);
}

#[test]
fn follow_groups_what_fails_within_group_wait_and_sends_changes_after_group_interval() {
    let (hook, got) = timed_hook(|| 200);
    let w = setup("notify-follow-group", json!({"webhook_url": hook.url("/")}));
    let mut f = follow(&w, &["--group-wait", "3", "--group-interval", "4"]);
    let t0 = Instant::now();
    f.send(&live_check("api", "down"));
    marker(&mut f, 1);
    std::thread::sleep(Duration::from_secs(1));
    f.send(&live_check("db", "down"));
    let alerts = f.until(20.0, |v| v["kind"] == "alert" && v["subject"] == "check:db");
    assert_eq!(alerts.iter().filter(|v| v["kind"] == "alert").count(), 2, "{alerts:?}");
    {
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 1, "one message for both: {got:?}");
        let waited = got[0].0 - t0;
        assert!(waited >= Duration::from_millis(2900), "group_wait is waited: {waited:?}");
        assert!(got[0].1["text"].as_str().unwrap().contains("2 services down: api, db"), "{:?}", got[0].1);
    }
    // A recovery right after the message waits for group_interval after it.
    f.send(&live_check("api", "up"));
    let rec = f.until(20.0, |v| v["kind"] == "alert");
    assert_eq!(rec.last().unwrap()["status"], "resolved", "{rec:?}");
    {
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        let gap = got[1].0 - got[0].0;
        assert!(gap >= Duration::from_millis(3900), "group_interval is waited: {gap:?}");
        assert_eq!(got[1].1["alerts"].as_array().unwrap().len(), 1, "only the change: {:?}", got[1].1);
    }
    f.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, err) = f.wait(10.0);
    assert_eq!(code, Some(0), "{err}");
    let state: Value = serde_json::from_str(&w.read("home/state/notify.json")).unwrap();
    assert!(state["subjects"]["check:db"]["notified"].is_string(), "{state}");
    assert!(state["subjects"].get("check:api").is_none_or(|a| a.get("level").is_none()), "{state}");
}

#[test]
fn follow_delivers_from_the_outbox_once_when_the_sink_is_back() {
    let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let u2 = up.clone();
    let (hook, got) = timed_hook(move || if u2.load(std::sync::atomic::Ordering::SeqCst) { 200 } else { 503 });
    let w = setup("notify-follow-outbox", json!({"webhook_url": hook.url("/")}));
    let mut f = follow(&w, &["--group-wait", "0.5"]);
    f.send(&live_check("api", "down"));
    let first = f.until(20.0, |v| v["kind"] == "alert");
    assert_eq!(first.last().unwrap()["sinks"][0]["delivered"], false);
    assert!(w.read("home/state/outbox.jsonl").contains("check:api"));
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    // Retried while running (after 10 s), without new input.
    let retried = f.until(40.0, |v| v["kind"] == "alert");
    assert_eq!(retried.last().unwrap()["sinks"][0]["delivered"], true, "{retried:?}");
    assert!(f.next(3.0).is_none(), "delivered once, not again");
    let got = got.lock().unwrap();
    assert_eq!(got.iter().filter(|(_, _, code)| *code == 200).count(), 1, "{got:?}");
    drop(got);
    assert!(!w.read("home/state/outbox.jsonl").contains("check:api"), "the outbox is empty again");
    let (code, err) = f.wait(10.0);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn follow_sigterm_sends_what_it_holds_and_saves() {
    let (hook, got) = timed_hook(|| 200);
    let w = setup("notify-follow-term", json!({"webhook_url": hook.url("/")}));
    let mut f = follow(&w, &["--group-wait", "600"]);
    f.send(&live_check("api", "down"));
    marker(&mut f, 1);
    assert!(got.lock().unwrap().is_empty(), "held for group_wait");
    f.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, err) = f.wait(10.0);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(got.lock().unwrap().len(), 1, "sent on the way out");
    let state: Value = serde_json::from_str(&w.read("home/state/notify.json")).unwrap();
    assert_eq!(state["subjects"]["check:api"]["notified"], "error", "{state}");
}

#[test]
fn follow_reminds_on_the_repeat_cadence_without_new_input() {
    let (hook, got) = timed_hook(|| 200);
    let w = setup(
        "notify-follow-repeat",
        json!({"webhook_url": hook.url("/"), "repeat_interval_seconds": 2, "rate_limit_seconds": 0}),
    );
    let mut f = follow(&w, &["--group-wait", "0.5"]);
    f.send(&live_check("api", "down"));
    let first = f.until(20.0, |v| v["kind"] == "alert");
    assert_eq!(first.last().unwrap()["repeat"], Value::Null, "{first:?}");
    // Nothing more comes in; the state knows api is still bad, so the timer reminds.
    let again = f.until(20.0, |v| v["kind"] == "alert");
    assert_eq!(again.last().unwrap()["repeat"], true, "{again:?}");
    {
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 2, "{got:?}\n{again:?}");
        let gap = got[1].0 - got[0].0;
        assert!(gap >= Duration::from_millis(1900), "the repeat interval is waited: {gap:?}");
        assert!(got[1].1["text"].as_str().unwrap().contains("still"), "{:?}", got[1].1);
    }
    f.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, err) = f.wait(10.0);
    assert_eq!(code, Some(0), "{err}");
}
