//! Maintenance calendars, acknowledgements with a time limit, and escalation levels: the real
//! notify walked through simulated time (`--now`), one process per run (each run a restart).

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::telegram::FakeTelegram;
use super::{check, notify, setup, tg_alerting};
use crate::util::Workdir;
use crate::util::http::{HttpServer, Reply};

/// A webhook that keeps the bodies it was sent.
fn hook() -> (HttpServer, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Default::default();
    let g2 = got.clone();
    let server = HttpServer::start(move |req| {
        g2.lock().unwrap().push(serde_json::from_str(&req.body).unwrap_or(Value::Null));
        Reply::new(204, "")
    });
    (server, got)
}

/// The subjects and flags of the alerts a webhook body carried.
fn subjects(body: &Value) -> Vec<String> {
    body["alerts"].as_array().unwrap().iter().map(|a| a["subject"].as_str().unwrap_or("-").to_string()).collect()
}

fn silenced(r: &crate::util::Run) -> Vec<Option<String>> {
    r.kind("alert").iter().map(|a| a["suppressed"].as_str().map(String::from)).collect()
}

#[test]
fn a_weekly_window_in_berlin_holds_alerts_through_both_dst_weekends() {
    let (server, got) = hook();
    let w = setup("notify-cal-dst", json!({"webhook_url": server.url("/"), "rate_limit_seconds": 0}));
    let add = notify(&w, "2026-03-25T12:00:00Z")
        .args(["silence", "add", "--match", "name=db*", "--every", "sun 02:00-04:00", "--tz", "Europe/Berlin"])
        .args(["--why", "backup"])
        .run();
    add.code(0);
    let s = &add.kind("silence")[0];
    // Spring forward: 02:00 does not exist that night and moves to 03:00 CEST; 60 minutes.
    assert_eq!(
        (s["state"].as_str(), s["next_starts_at"].as_str(), s["next_ends_at"].as_str()),
        (Some("scheduled"), Some("2026-03-29T03:00:00+02:00"), Some("2026-03-29T04:00:00+02:00"))
    );
    let run = |now: &str, name: &str| notify(&w, now).stdin(check(name, "down", "refused")).run();
    // 00:59Z is 01:59 CET, before the window: alerted.
    assert_eq!(silenced(&run("2026-03-29T00:59:00Z", "db-a")), [None]);
    // 01:00Z is 03:00 CEST: the window; 01:59Z still in it.
    assert_eq!(silenced(&run("2026-03-29T01:00:00Z", "db-b")), [Some("silenced".into())]);
    assert_eq!(silenced(&run("2026-03-29T01:59:00Z", "db-b")), [Some("silenced".into())]);
    // 02:00Z is 04:00 CEST: over, and db-b, still down, is alerted now.
    assert_eq!(silenced(&run("2026-03-29T02:00:00Z", "db-b")), [None]);
    let list = notify(&w, "2026-10-21T12:00:00Z").args(["silence", "list"]).run();
    let s = &list.kind("silence")[0];
    // Fall back: 02:00 is taken at its first occurrence (CEST), 04:00 is CET; 180 minutes.
    assert_eq!(
        (s["next_starts_at"].as_str(), s["next_ends_at"].as_str(), s["in_force"].as_bool()),
        (Some("2026-10-25T02:00:00+02:00"), Some("2026-10-25T04:00:00+01:00"), Some(false))
    );
    assert_eq!(silenced(&run("2026-10-25T00:00:00Z", "db-c")), [Some("silenced".into())]);
    let during = notify(&w, "2026-10-25T01:30:00Z").args(["silence", "list", "--format", "text"]).run();
    during.stdout_has("active").stdout_has("every 'sun 02:00-04:00' Europe/Berlin");
    assert_eq!(silenced(&run("2026-10-25T02:59:00Z", "db-c")), [Some("silenced".into())]);
    assert_eq!(silenced(&run("2026-10-25T03:00:00Z", "db-c")), [None]);
    let sent: Vec<Vec<String>> = got.lock().unwrap().iter().map(subjects).collect();
    assert_eq!(sent, [vec!["check:db-a".to_string()], vec!["check:db-b".into()], vec!["check:db-c".into()]]);
}

#[test]
fn cron_windows_and_bad_calendars() {
    let w = setup("notify-cal-cron", json!({}));
    let r = notify(&w, "2026-03-25T12:00:00Z")
        .args(["silence", "add", "--match", "name=x", "--cron", "30 2 * * sun", "--duration", "1h"])
        .args(["--tz", "Europe/Berlin", "--no-recover"])
        .run();
    r.code(0);
    let s = &r.kind("silence")[0];
    // 02:30 does not exist on 29 March: moved forward by the gap.
    assert_eq!(s["next_starts_at"], "2026-03-29T03:30:00+02:00");
    assert_eq!(s["maintenance"], json!({"recover": false}));
    let bad = |args: &[&str], err: &str| {
        let r = notify(&w, "2026-03-25T12:00:00Z").args(["silence", "add", "--match", "name=x"]).args(args).run();
        r.code(2);
        r.stderr_has(err);
    };
    bad(&["--every", "sun 02:00-04:00", "--tz", "Europe/Berln"], "unknown time zone 'Europe/Berln'");
    bad(&["--every", "funday 02:00-04:00"], "'funday' is not a weekday");
    bad(&["--cron", "61 * * * *", "--duration", "1h"], "minute '61' is not a number from 0 to 59");
    bad(&["--cron", "0 * * * *"], "--duration");
    bad(&["--for", "1h", "--tz", "UTC"], "--tz goes with --every or --cron");
    // Old files (one-off silences only) are read as they are; the calendar sits beside them.
    let file: Value = serde_json::from_str(&w.read("home/state/silences.json")).unwrap();
    assert_eq!(file["silences"][0]["cron"], "30 2 * * sun");
}

#[test]
fn an_acknowledgement_for_a_while_runs_out_and_is_announced() {
    let (server, got) = hook();
    let w = setup("notify-ack-for", json!({"webhook_url": server.url("/"), "rate_limit_seconds": 0}));
    notify(&w, "2026-11-23T10:00:00Z").stdin(check("db", "down", "refused")).run().code(0);
    let ack = notify(&w, "2026-11-23T10:05:00Z").args(["ack", "check:db", "--for", "2h", "--by", "alice"]).run();
    ack.code(0);
    let e = &ack.kind("alert_event")[0];
    assert_eq!((e["by"].as_str(), e["until"].as_str()), (Some("alice"), Some("2026-11-23T12:05:00.000Z")));
    {
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 2, "the alert, then the acknowledgement: {got:?}");
        assert!(got[1]["text"].as_str().unwrap().contains("acknowledged by alice until 2026-11-23T12:05:00.000Z"));
    }
    let state = notify(&w, "2026-11-23T10:06:00Z").args(["state"]).run();
    let s = &state.kind("notify_state")[0];
    assert_eq!((s["acked_by"].as_str(), s["acknowledged"].as_bool()), (Some("alice"), Some(true)));
    // No reminder while acknowledged (the repeat interval is an hour) ...
    let r = notify(&w, "2026-11-23T11:10:00Z").stdin(check("db", "down", "refused")).run();
    assert!(r.kind("alert").is_empty(), "{r:?}");
    // ... and one once the two hours ran out.
    let r = notify(&w, "2026-11-23T12:06:00Z").stdin(check("db", "down", "refused")).run();
    assert_eq!(r.kind("alert")[0]["repeat"], true);
    assert_eq!(got.lock().unwrap().len(), 3);
    let again = notify(&w, "2026-11-23T12:07:00Z").args(["ack", "nothing-like-it", "--by", "alice"]).run();
    again.code(1);
}

#[test]
fn escalation_levels_go_out_in_order_once_each_across_restarts() {
    let (server, got) = hook();
    let tg = FakeTelegram::start();
    let w = Workdir::new("notify-escalate");
    let pages = w.path("pages.txt");
    let mut alerting = tg_alerting(&tg);
    alerting["webhook_url"] = json!(server.url("/"));
    alerting["exec"] = json!(["sh", "-c", format!("cat >> '{}'; echo ---- >> '{}'", pages.display(), pages.display())]);
    alerting["rate_limit_seconds"] = json!(0);
    alerting["escalate"] = json!([{"after": "15m", "to": ["exec"]}, {"after": "1h", "to": "telegram"}]);
    w.write("home/config/services.json", crate::util::json(&json!({"services": [], "alerting": alerting})));
    let at = |m: u32| format!("2026-11-23T{:02}:{:02}:00Z", 10 + m / 60, m % 60);
    let run = |m: u32, input: String| {
        let r = notify(&w, &at(m)).stdin(input).run();
        r.code(0);
        r
    };
    let both = || format!("{}{}", check("db", "down", "refused"), check("api", "down", "refused"));
    run(0, both());
    notify(&w, &at(5)).args(["ack", "api", "--by", "bob"]).run().code(0);
    assert_eq!(tg.sent().len(), 0, "telegram is kept for the second level");
    let pages_now = || std::fs::read_to_string(&pages).unwrap_or_default();
    // exec is kept for the first level: the acknowledgement's announcement went to the
    // webhook only.
    assert_eq!(pages_now(), "");
    assert!(got.lock().unwrap().last().unwrap()["text"].as_str().unwrap().contains("acknowledged by bob"));
    run(10, both());
    assert_eq!(pages_now(), "", "not yet: 15 minutes");
    let r = run(16, both());
    let alerts = r.kind("alert");
    let paged: Vec<&Value> = alerts.iter().filter(|a| a["escalation"] == 1).collect();
    assert_eq!(paged.len(), 1, "{r:?}");
    assert_eq!(paged[0]["subject"], "check:db", "api was acknowledged");
    assert!(pages_now().contains("not acknowledged after 16m"), "{}", pages_now());
    assert_eq!(pages_now().matches("----").count(), 1);
    run(20, both());
    run(40, both());
    assert_eq!(pages_now().matches("----").count(), 1, "once per level");
    assert_eq!(tg.sent().len(), 0);
    let r = run(61, both());
    assert_eq!(tg.sent().len(), 1, "the second level");
    assert!(tg.sent()[0].text.contains("not acknowledged after 1h 1m"), "{}", tg.sent()[0].text);
    assert!(r.kind("alert").iter().any(|a| a["escalation"] == 2));
    let state = notify(&w, &at(62)).arg("state").run();
    let db = state.kind("notify_state").into_iter().find(|s| s["subject"] == "check:db").unwrap();
    assert_eq!((db["escalation"].as_u64(), db.get("next_escalation")), (Some(2), None));
    run(70, both());
    assert_eq!(tg.sent().len(), 1, "once per level, across restarts");
    // Recovered: the levels it reached hear of it too.
    run(80, format!("{}{}", check("db", "up", "ok"), check("api", "down", "refused")));
    assert_eq!(tg.sent().len(), 2);
    assert!(
        tg.sent()[1].text.contains("RECOVERED") || tg.sent()[1].text.contains("Recovered"),
        "{}",
        tg.sent()[1].text
    );
    let history = std::fs::read_to_string(w.path("home/state/alerts/2026-11-23.jsonl")).unwrap();
    let events: Vec<String> = history
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["subject"] == "check:db")
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events.iter().filter(|e| *e == "paged").count(), 2, "{events:?}");
}

#[test]
fn recover_stands_still_in_a_maintenance_window_and_says_why() {
    let w = setup("recover-maintenance", json!({}));
    let log = w.path("restarts.txt");
    let svc = |name: &str, extra: Value| {
        let mut s = json!({"name": name, "type": "port", "port": crate::util::closed_port(),
            "verify_delay_seconds": 0, "restart_command": format!("echo {name} >> '{}'", log.display())});
        if let (Some(s), Some(e)) = (s.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        s
    };
    let services =
        json!([svc("db", json!({})), svc("web", json!({"maintenance": {"recover": false}})), svc("api", json!({}))]);
    w.write("home/config/services.json", crate::util::json(&json!({"services": services, "disk_check": false})));
    let add =
        |now: &str, args: &[&str]| notify(&w, now).args(["silence", "add"]).args(args).run().code(0).stdout.clone();
    add(
        "2026-12-01T00:00:00Z",
        &[
            "--match",
            "name=db",
            "--every",
            "sun 02:00-04:00",
            "--tz",
            "Europe/Berlin",
            "--no-recover",
            "--why",
            "backup",
        ],
    );
    // A plain silence: recover stands still for it only where the service says so (web).
    add("2026-12-06T01:00:00Z", &["--match", "name=api", "--for", "1h"]);
    add("2026-12-06T01:00:00Z", &["--match", "name=web", "--for", "1h"]);
    let down = |n: &str| {
        format!("{}\n", json!({"kind": "check", "name": n, "type": "port", "status": "down", "detail": "refused"}))
    };
    let input = format!("{}{}{}", down("db"), down("web"), down("api"));
    // 01:30Z is 02:30 in Berlin: in the window.
    let r = w.tool("recover").args(["--now", "2026-12-06T01:30:00Z"]).stdin(&input).run();
    let db = r.named("recovery", "db");
    assert_eq!(db["outcome"], "skipped");
    assert_eq!(
        db["detail"],
        "in a maintenance window (silence 1 (backup)) until 2026-12-06T03:00:00.000Z; not restarted"
    );
    assert_eq!(r.named("recovery", "web")["outcome"], "skipped");
    assert_ne!(r.named("recovery", "api")["outcome"], "skipped", "api's silence does not stop recover");
    assert_eq!(std::fs::read_to_string(&log).unwrap_or_default(), "api\n");
    // After the windows: restarted as usual.
    let r = w.tool("recover").args(["--now", "2026-12-06T03:00:00Z"]).stdin(&input).run();
    assert_ne!(r.named("recovery", "db")["outcome"], "skipped", "{r:?}");
    assert_ne!(r.named("recovery", "web")["outcome"], "skipped", "{r:?}");
    let restarted = std::fs::read_to_string(&log).unwrap();
    assert!(restarted.contains("db") && restarted.contains("web"), "{restarted}");
}

#[test]
fn rollup_leaves_maintenance_windows_out_beside_the_raw_uptime() {
    let w = setup("rollup-maintenance", json!({}));
    notify(&w, "2026-12-01T00:00:00Z")
        .args(["silence", "add", "--match", "name=db", "--every", "sun 02:00-04:00", "--tz", "UTC"])
        .run()
        .code(0);
    // Sunday 6 December, a check every 30 minutes from 00:00 to 05:30: db down from 02:00 to
    // 03:30, in its window; api down at 01:00, outside any.
    let mut lines = String::new();
    for i in 0..12u32 {
        let ts = format!("2026-12-06T{:02}:{:02}:00Z", i / 2, (i % 2) * 30);
        let db = if (4..8).contains(&i) { "down" } else { "up" };
        let api = if i == 2 { "down" } else { "up" };
        for (name, status) in [("db", db), ("api", api)] {
            lines.push_str(&format!(
                "{}\n",
                json!({"kind": "check", "name": name, "status": status, "latency_ms": 5, "timestamp": ts})
            ));
        }
    }
    w.write("checks.jsonl", &lines);
    let file = w.path("checks.jsonl");
    let r = w.tool("rollup").args(["--now", "2026-12-07T00:00:00Z", "--exclude-maintenance"]).arg(&file).run();
    r.code(0);
    let db = r.named("uptime", "db");
    assert_eq!(
        (
            db["uptime_percent"].as_f64(),
            db["uptime_outside_maintenance_percent"].as_f64(),
            db["maintenance_checks"].as_u64()
        ),
        (Some(66.67), Some(100.0), Some(4))
    );
    let api = r.named("uptime", "api");
    assert_eq!(
        (api["uptime_outside_maintenance_percent"].as_f64(), api["maintenance_checks"].as_u64()),
        (Some(91.67), Some(0))
    );
    let text = w
        .tool("rollup")
        .args(["--now", "2026-12-07T00:00:00Z", "--exclude-maintenance", "--format", "text"])
        .arg(&file)
        .run();
    text.stdout_has(
        "db: 66.67% uptime (4 failures in 12 checks, avg 5.0ms), 100.0% outside maintenance (4 checks in windows)",
    );
    // Without the flag the record is the kit's, unchanged.
    let plain = w.tool("rollup").args(["--now", "2026-12-07T00:00:00Z"]).arg(&file).run();
    assert!(plain.named("uptime", "db").get("maintenance_checks").is_none());
}

#[test]
fn a_silence_about_to_end_or_in_force_for_a_week_is_reminded_once() {
    let (server, got) = hook();
    let w = setup("notify-silence-remind", json!({"webhook_url": server.url("/")}));
    let add = |args: &[&str]| {
        notify(&w, "2026-11-23T10:00:00Z").args(["silence", "add"]).args(args).run().code(0).stdout.clone()
    };
    add(&["--match", "name=api", "--for", "2h", "--why", "deploy"]);
    add(&["--match", "name=old", "--for", "10d"]);
    let texts = || -> Vec<String> {
        got.lock().unwrap().iter().map(|b| b["text"].as_str().unwrap_or("").to_string()).collect()
    };
    let tick = |now: &str| notify(&w, now).stdin("").run().code(0).stdout.clone();
    tick("2026-11-23T11:40:00Z");
    assert!(texts().is_empty(), "20 minutes left: not yet");
    let out = tick("2026-11-23T11:46:00Z");
    assert!(out.contains("\"reminder\":\"ending\""), "{out}");
    assert_eq!(texts().len(), 1);
    assert!(
        texts()[0].contains("silence 1 [name=api] (deploy) ends at 2026-11-23T12:00:00.000Z (in 14m)"),
        "{:?}",
        texts()
    );
    tick("2026-11-23T11:50:00Z");
    assert_eq!(texts().len(), 1, "once");
    tick("2026-11-30T10:00:00Z");
    assert_eq!(texts().len(), 2);
    assert!(
        texts()[1].contains("silence 2 [name=old] has held alerts since 2026-11-23T10:00:00.000Z"),
        "{:?}",
        texts()
    );
    tick("2026-11-30T11:00:00Z");
    assert_eq!(texts().len(), 2, "once");
}

#[test]
fn a_telegram_button_or_reply_acknowledges_and_the_other_sinks_are_told() {
    let (server, got) = hook();
    let tg = FakeTelegram::start();
    let w = Workdir::new("notify-tg-ack");
    let mut alerting = tg_alerting(&tg);
    alerting["telegram_acks"] = json!(true);
    alerting["webhook_url"] = json!(server.url("/"));
    alerting["rate_limit_seconds"] = json!(0);
    w.write("home/config/services.json", crate::util::json(&json!({"services": [], "alerting": alerting})));
    let both = format!("{}{}", check("db", "down", "refused"), check("api", "down", "refused"));
    notify(&w, "2026-11-23T10:00:00Z").stdin(&both).run().code(0);
    let first = tg.sent()[0].clone();
    let markup = first.reply_markup.clone().expect("the alert carries buttons");
    let rows = markup["inline_keyboard"].as_array().unwrap().clone();
    let labels: Vec<&str> = rows.iter().map(|r| r[0]["text"].as_str().unwrap()).collect();
    assert_eq!(labels, ["Acknowledge db", "Acknowledge api"]);
    let chat = json!({"id": super::telegram::CHAT, "title": "ops", "type": "supergroup"});
    let bot = json!({"id": 123456789, "is_bot": true, "first_name": "pitcrew", "username": "pitcrew_test_bot"});
    let message = json!({"message_id": first.message_id, "from": bot, "chat": chat, "date": 1_795_000_000,
        "text": first.text, "reply_markup": markup});
    // Alice presses db's button; someone in another chat presses one too; Bob replies /ack.
    tg.push_update(json!({"callback_query": {"id": "4242", "chat_instance": "-77",
        "from": {"id": 77, "is_bot": false, "first_name": "Alice", "username": "alice"},
        "message": message, "data": rows[0][0]["callback_data"]}}));
    let mut elsewhere = message.clone();
    elsewhere["chat"]["id"] = json!(-100999);
    tg.push_update(json!({"callback_query": {"id": "4343", "chat_instance": "-78",
        "from": {"id": 78, "is_bot": false, "first_name": "Mallory"}, "message": elsewhere, "data": rows[1][0]["callback_data"]}}));
    let last = tg.push_update(json!({"message": {"message_id": 90, "date": 1_795_000_100, "chat": chat,
        "from": {"id": 79, "is_bot": false, "first_name": "Bob"}, "text": "/ack", "reply_to_message": message}}));
    let r = notify(&w, "2026-11-23T10:05:00Z").stdin(&both).run();
    r.code(0);
    assert_eq!(tg.answers(), [("4242".to_string(), "Acknowledged: db".to_string())]);
    let texts: Vec<String> = got.lock().unwrap().iter().map(|b| b["text"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(texts[1].contains("acknowledged by @alice") && texts[1].contains("acknowledged by Bob"), "{texts:?}");
    assert_eq!(tg.sent().len(), 1, "Telegram, where it came from, is not told again");
    // An hour later: no reminders for either.
    let r = notify(&w, "2026-11-23T11:05:00Z").stdin(&both).run();
    assert!(r.kind("alert").is_empty(), "{r:?}");
    assert_eq!(tg.polls().last().unwrap(), &Some(last + 1), "updates are confirmed");
    let state = notify(&w, "2026-11-23T11:06:00Z").arg("state").run();
    let by: Vec<(String, String)> = state
        .kind("notify_state")
        .iter()
        .map(|s| (s["subject"].as_str().unwrap().to_string(), s["acked_by"].as_str().unwrap_or("").to_string()))
        .collect();
    assert_eq!(by, [("check:api".to_string(), "Bob".to_string()), ("check:db".into(), "@alice".into())]);
    let history = std::fs::read_to_string(w.path("home/state/alerts/2026-11-23.jsonl")).unwrap();
    assert_eq!(history.matches("\"via\":\"telegram\"").count(), 2);
}

#[test]
fn a_gitea_comment_ack_on_the_incident_issue_acknowledges_it() {
    let (server, got) = hook();
    let g = super::gitea::FakeGitea::start(&[]);
    let mut alerting = super::gitea_alerting(&g, false);
    alerting["gitea_acks"] = json!(true);
    alerting["webhook_url"] = json!(server.url("/"));
    alerting["rate_limit_seconds"] = json!(0);
    let w = setup("notify-gitea-ack", alerting);
    let db = check("db", "down", "refused");
    notify(&w, "2026-11-23T10:00:00Z").stdin(&db).run().code(0);
    assert_eq!(g.issues().len(), 1);
    g.comment_as(1, "dave", "looking at the graphs");
    g.comment_as(1, "carol", "/ack restoring from backup");
    let r = notify(&w, "2026-11-23T10:05:00Z").stdin(&db).run();
    r.code(0);
    let texts: Vec<String> = got.lock().unwrap().iter().map(|b| b["text"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(texts[1].contains("db is failing: acknowledged by carol"), "{texts:?}");
    // An hour later: no reminder; the comment is not read as a new acknowledgement again.
    let r = notify(&w, "2026-11-23T11:05:00Z").stdin(&db).run();
    assert!(r.kind("alert").is_empty(), "{r:?}");
    assert_eq!(got.lock().unwrap().len(), 2);
    let history = std::fs::read_to_string(w.path("home/state/alerts/2026-11-23.jsonl")).unwrap();
    assert_eq!(history.matches("\"via\":\"gitea\"").count(), 1, "{history}");
    assert!(history.contains("\"by\":\"carol\""));
}

#[test]
#[ignore = "slow: waits for the resident poll and the escalation timer (about 12 s)"]
fn follow_reads_telegram_buttons_and_escalates_on_its_own() {
    let (server, got) = hook();
    let tg = FakeTelegram::start();
    let w = Workdir::new("notify-follow-escalate");
    let pages = w.path("pages.txt");
    let mut alerting = tg_alerting(&tg);
    alerting["telegram_acks"] = json!(true);
    alerting["webhook_url"] = json!(server.url("/"));
    alerting["exec"] = json!(["sh", "-c", format!("cat >> '{}'; echo ---- >> '{}'", pages.display(), pages.display())]);
    alerting["rate_limit_seconds"] = json!(0);
    alerting["escalate"] = json!([{"after": "2s", "to": "exec"}]);
    w.write("home/config/services.json", crate::util::json(&json!({"services": [], "alerting": alerting})));
    let mut f = crate::recover::Follower::start(w.tool("notify").args(["--follow", "--group-wait", "0.5"]));
    let live = |n: &str| {
        format!("{}\n", json!({"kind": "check", "name": n, "type": "url", "status": "down", "detail": "refused"}))
    };
    f.send(&format!("{}{}", live("db"), live("api")));
    f.until(20.0, |v| v["kind"] == "alert" && v["subject"] == "check:api");
    let first = tg.sent()[0].clone();
    let markup = first.reply_markup.clone().unwrap();
    let api = markup["inline_keyboard"][1][0]["callback_data"].clone();
    let chat = json!({"id": super::telegram::CHAT, "type": "supergroup"});
    tg.push_update(json!({"callback_query": {"id": "77", "chat_instance": "-1",
        "from": {"id": 5, "is_bot": false, "first_name": "Eve", "username": "eve"},
        "message": {"message_id": first.message_id, "chat": chat, "date": 1_795_000_000, "text": first.text}, "data": api}}));
    // The resident notify reads the button on its own, and pages db (not api) on its own.
    let paged = f.until(40.0, |v| v["kind"] == "alert" && v["escalation"] == 1);
    assert_eq!(paged.last().unwrap()["subject"], "check:db");
    assert_eq!(tg.answers(), [("77".to_string(), "Acknowledged: api".to_string())]);
    assert!(crate::util::wait_until(10.0, || std::fs::read_to_string(&pages).is_ok_and(|p| p.contains("----"))));
    f.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, err) = f.wait(10.0);
    assert_eq!(code, Some(0), "{err}");
    let p = std::fs::read_to_string(&pages).unwrap();
    assert_eq!(p.matches("----").count(), 1, "{p}");
    assert!(p.contains("db") && !p.contains("api"), "{p}");
    assert!(got.lock().unwrap().iter().any(|b| b["text"].as_str().unwrap_or("").contains("acknowledged by @eve")));
}

#[test]
fn a_bad_escalation_policy_or_calendar_is_named_and_loses_nothing() {
    let w = setup("notify-bad-escalate", json!({"escalate": [{"after": "15m", "to": ["pager"]}]}));
    let r = notify(&w, "2026-11-23T10:00:00Z").stdin(check("db", "down", "x")).run();
    r.code(2);
    r.stderr_has("alerting.escalate[0].to: 'pager' is not a sink");
    // A calendar whose zone is gone: said, holds nothing, and the one-off silence beside it works.
    let w = setup("notify-bad-calendar", json!({}));
    w.write(
        "home/state/silences.json",
        crate::util::json(&json!({"next_id": 2, "silences": [
            {"id": 1, "matchers": [{"key": "name", "value": "db"}], "starts_at": "2026-11-01T00:00:00Z", "ends_at": "",
             "every": "daily 00:00-24:00", "tz": "Mars/Olympus_Mons"},
            {"id": 2, "matchers": [{"key": "name", "value": "api"}], "starts_at": "2026-11-01T00:00:00Z",
             "ends_at": "2026-12-01T00:00:00Z"}]})),
    );
    let list = notify(&w, "2026-11-23T10:00:00Z").args(["silence", "list"]).run();
    let bad = list.kind("silence").into_iter().find(|s| s["id"] == 1).unwrap();
    assert_eq!(bad["state"], "invalid");
    assert!(bad["error"].as_str().unwrap().contains("unknown time zone 'Mars/Olympus_Mons'"), "{bad}");
    let r = notify(&w, "2026-11-23T10:00:00Z")
        .stdin(format!("{}{}", check("db", "down", "x"), check("api", "down", "x")))
        .run();
    r.code(0);
    r.stderr_has("silence 1: unknown time zone 'Mars/Olympus_Mons'");
    let held: Vec<(String, Option<String>)> = r
        .kind("alert")
        .iter()
        .filter(|a| a["subject"].is_string())
        .map(|a| (a["subject"].as_str().unwrap().to_string(), a["suppressed"].as_str().map(String::from)))
        .collect();
    assert_eq!(held, [("check:db".to_string(), None), ("check:api".into(), Some("silenced".into()))]);
    let db = json!({"name": "db", "type": "port", "port": crate::util::closed_port(), "verify_delay_seconds": 0,
        "restart_command": "true"});
    w.write("home/config/services.json", crate::util::json(&json!({"services": [db], "disk_check": false})));
    let rec = w.tool("recover").args(["--now", "2026-11-23T10:00:00Z"]).stdin(check("db", "down", "x")).run();
    rec.stderr_has("silence 1: unknown time zone 'Mars/Olympus_Mons'").stderr_has("; left out");
    assert_ne!(rec.named("recovery", "db")["outcome"], "skipped", "a broken calendar stops no restart");
}
