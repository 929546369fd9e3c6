//! Hostile input to every tool: a line over the 16 MiB limit, deep nesting, invalid UTF-8,
//! NUL bytes, numbers past every type, path-traversal names, and peers that never answer or
//! answer garbage. Each must end in a clear message, in bounded time, with the valid records
//! around it kept. (scripts/reliability/hostile.sh does the same at 100 MB with memory
//! figures.)

use std::net::TcpListener;
use std::time::Instant;

use serde_json::{Value, json};

use crate::util::http::{Blackhole, Garbage, HttpServer, Reply};
use crate::util::{Run, Workdir, json as pretty, path_str};

/// The hostile lines, in order, each between two valid ones, and what the tool must say of
/// each (a piece of the message after `stdin:N:`).
fn hostile_lines() -> Vec<(Vec<u8>, &'static str)> {
    let mut long = b"{\"kind\":\"note\",\"pad\":\"".to_vec();
    long.resize(17 << 20, b'x');
    long.extend_from_slice(b"\"}");
    let deep_65 = format!("{{\"kind\":\"note\",\"a\":{}1{}}}", "[".repeat(64), "]".repeat(64));
    vec![
        (long, "longer than the limit of 16777216 bytes"),
        ("[".repeat(200_000).into_bytes(), "recursion limit exceeded"),
        (deep_65.into_bytes(), "nested deeper than 64 levels"),
        (b"{\"kind\":\"note\",\"text\":\"\xff\xfe\"}".to_vec(), "invalid unicode code point"),
        (b"{\"kind\":\"note\"}\0".to_vec(), "trailing characters"),
        (b"\0\0\0\0".to_vec(), "expected value"),
        (b"{\"kind\":\"note\",\"n\":1e400}".to_vec(), "number out of range"),
    ]
}

/// A valid line the tool passes through (or, for probe, a service it checks).
fn stream(valid: impl Fn(usize) -> String) -> (Vec<u8>, usize) {
    let mut input = Vec::new();
    let hostile = hostile_lines();
    let n = hostile.len();
    for (i, (bad, _)) in hostile.into_iter().enumerate() {
        input.extend_from_slice(valid(i).as_bytes());
        input.push(b'\n');
        input.extend_from_slice(&bad);
        input.push(b'\n');
    }
    input.extend_from_slice(valid(n).as_bytes());
    input.push(b'\n');
    (input, n + 1)
}

/// Every hostile line named by its number with the right reason, nothing panicked, in
/// bounded time.
#[track_caller]
fn assert_rejected_each(r: &Run, started: Instant) {
    for (i, (_, why)) in hostile_lines().iter().enumerate() {
        let line = 2 * i + 2;
        let said = r.stderr.lines().find(|l| l.contains(&format!("stdin:{line}: "))).unwrap_or("");
        assert!(said.contains(why), "line {line} should be rejected with {why:?}{r:?}");
    }
    assert!(!r.stderr.contains("panicked"), "{r:?}");
    assert!(started.elapsed() < crate::util::limit(30.0), "took {:?}", started.elapsed());
}

fn note(i: usize) -> String {
    json!({"kind": "note", "i": i, "big": 18446744073709551616u128 as f64, "nul": "a\u{0}b"}).to_string()
}

#[track_caller]
fn assert_notes_passed(r: &Run, n: usize) {
    let seen: Vec<Value> = r.kind("note");
    let got: Vec<u64> = seen.iter().filter_map(|v| v["i"].as_u64()).collect();
    assert_eq!(got, (0..n as u64).collect::<Vec<_>>(), "every valid record passes through{r:?}");
    assert_eq!(seen[0]["nul"], "a\u{0}b");
}

#[test]
fn hostile_lines_recover() {
    let w = Workdir::new("hostile-recover");
    let (input, n) = stream(note);
    let t = Instant::now();
    let r = w.tool("recover").stdin(input).run();
    r.code(3);
    assert_rejected_each(&r, t);
    assert_notes_passed(&r, n);
}

#[test]
fn hostile_lines_notify() {
    let w = Workdir::new("hostile-notify");
    let (input, n) = stream(note);
    let t = Instant::now();
    let r = w.tool("notify").stdin(input).run();
    r.code(3);
    assert_rejected_each(&r, t);
    assert_notes_passed(&r, n);
}

#[test]
fn hostile_lines_board_ingest() {
    let w = Workdir::new("hostile-board");
    let (input, n) = stream(note);
    let t = Instant::now();
    let r = w.tool("board").arg("ingest").stdin(input).run();
    r.code(3);
    assert_rejected_each(&r, t);
    assert_notes_passed(&r, n);
}

#[test]
fn hostile_lines_tickmon_check() {
    let w = Workdir::new("hostile-tickmon");
    let reg = w.write("registry.json", r#"{"agents": [{"id": "atlas"}]}"#);
    let (input, n) = stream(note);
    let t = Instant::now();
    let r = w
        .tool("tickmon")
        .args(["check", "--month", "2026-11", "--now", "2026-11-02T00:00:00Z", "--registry"])
        .arg(&reg)
        .arg("-")
        .stdin(input)
        .run();
    r.code(3);
    assert_rejected_each(&r, t);
    assert_notes_passed(&r, n);
    assert_eq!(r.named("tick", "atlas")["status"], "pending");
}

#[test]
fn hostile_lines_probe() {
    let w = Workdir::new("hostile-probe");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let svc = |i: usize| json!({"name": format!("svc-{i}"), "type": "port", "port": port}).to_string();
    let (input, n) = stream(svc);
    let t = Instant::now();
    let r = w.tool("probe").args(["--services", "-", "--no-metrics"]).stdin(input).run();
    r.code(3);
    assert_rejected_each(&r, t);
    let up: Vec<Value> = r.kind("check").into_iter().filter(|c| c["status"] == "up").collect();
    assert_eq!(up.len(), n, "every valid service is checked{r:?}");
}

#[test]
fn hostile_numbers_are_read_leniently_or_refused_clearly() {
    let w = Workdir::new("hostile-numbers");
    let huge = r#"{"kind":"check","name":"a","status":"down","latency_ms":18446744073709551616,"detail":"x"}
{"kind":"check","name":"b","status":"down","latency_ms":-1e308,"http_status":70000}
{"kind":"uptime","name":"c","uptime_percent":1e308,"status":"breach","failures":1e300,"total_checks":-5}
{"kind":"recovery","name":"d","outcome":"failed","attempt":99999999999,"max_attempts":-1,"flapping":true,"restarts_in_window":1e30}
"#;
    let r = w.tool("notify").stdin(huge).run();
    r.code(0);
    let titles: Vec<String> = r.kind("alert").iter().map(|a| a["title"].as_str().unwrap_or("").to_string()).collect();
    assert!(titles.iter().any(|t| t.contains('a')), "{r:?}");
    let r = w.tool("board").arg("ingest").stdin(huge).run();
    r.code(0);
    assert!(w.read("home/state/board.json").contains("Investigate: c at 1e+308% uptime"), "{r:?}");
    let r = w.tool("recover").stdin(huge).run();
    r.code(1);
    assert_eq!(r.kind("check").len(), 2);
}

// ------------------------------------------------------------------ names that are paths

#[test]
fn hostile_path_names_never_become_paths() {
    let w = Workdir::new("hostile-paths");
    w.write("home/ticks/2026-11/x.json", "{}");
    // A heartbeat check's agent names a file under the ticks directory.
    let line = json!({"name": "sneaky", "type": "heartbeat", "agent": "../../../../etc/passwd"}).to_string();
    let r = w.tool("probe").args(["--services", "-", "--no-metrics"]).stdin(line).run();
    r.code(1).stderr_has("agent: not a valid agent id");
    assert_eq!(r.kind("finding")[0]["problem"], "invalid_service");
    assert!(r.kind("check").is_empty());
    // tickmon submit writes ticks/MONTH/<agent>.json.
    for bad in ["../evil", "a/b", ".hidden", ""] {
        let r = w
            .tool("tickmon")
            .args(["submit", "--agent", bad, "--status", "healthy", "--month", "2026-11"])
            .args(["--vital", "gateway_running=true", "--vital", "home_directory_accessible=true"])
            .args(["--vital", "config_valid=true"])
            .run();
        assert_eq!(r.code, 2, "agent {bad:?}{r:?}");
    }
    assert!(!w.path("home/evil.json").exists() && !w.path("home/ticks/evil.json").exists());
    // The registry refuses such ids, and the others still load.
    let reg = w.write("reg.json", r#"{"agents": [{"id": "../../etc/x"}, {"id": "ok"}]}"#);
    let r = w
        .tool("tickmon")
        .args(["check", "--month", "2026-11", "--now", "2026-11-02T00:00:00Z", "--registry"])
        .arg(&reg)
        .run();
    r.code(1).stderr_has("not a valid agent id");
    assert_eq!(r.kind("tick").len(), 1);
}

// ------------------------------------------------------------ times past the calendar

#[test]
fn hostile_times_at_the_end_of_the_calendar_do_not_panic() {
    let w = Workdir::new("hostile-times");
    let reg = w.write("reg.json", r#"{"agents": [{"id": "atlas"}]}"#);
    let r = w
        .tool("tickmon")
        .args(["check", "--rca", "--month", "9999-12", "--grace-hours", "744", "--registry"])
        .arg(&reg)
        .args(["--now", "9999-12-31T23:00:00Z"])
        .run();
    r.code(0);
    assert_eq!(r.named("tick", "atlas")["due"], "9999-12-31T23:59:59.999Z");
    let r = w
        .tool("tickmon")
        .args(["check", "--rca", "--month", "9999-11", "--registry"])
        .arg(&reg)
        .args(["--now", "9999-12-31T23:00:00Z"])
        .run();
    r.code(1);
    assert!(r.kind("alert")[0]["body"].as_str().unwrap().contains("9999-12-31T23:59:59.999Z"), "{r:?}");
    let r = w
        .tool("notify")
        .args(["silence", "add", "--match", "name=api", "--for", "30d", "--starts", "9999-12-31T00:00:00Z"])
        .args(["--now", "9999-12-30T00:00:00Z"])
        .run();
    r.code(0);
    assert_eq!(r.records()[0]["ends_at"], "9999-12-31T23:59:59.999Z");
    w.tool("notify")
        .args(["silence", "add", "--match", "name=api", "--for", "18446744073709551615"])
        .run()
        .code(2)
        .stderr_has("is not a duration");
    w.tool("tickmon").args(["serve", "--timeout", "99999999999999d"]).run().code(2).stderr_has("is not a duration");
}

// ------------------------------------------------------------------- hostile peers

fn alerting(w: &Workdir, alerting: Value) {
    w.write("home/config/services.json", pretty(&json!({"services": [], "alerting": alerting})));
}

fn down(name: &str) -> String {
    format!("{}\n", json!({"kind": "check", "name": name, "status": "down", "detail": "HTTP 500"}))
}

#[test]
fn hostile_peers_notify_queues_what_garbage_or_silence_did_not_take() {
    let garbage = Garbage::start();
    let hole = Blackhole::start();
    for (name, url) in [("garbage", garbage.url()), ("blackhole", hole.url())] {
        let w = Workdir::new(&format!("hostile-notify-{name}"));
        alerting(&w, json!({"webhook_url": url, "timeout_seconds": 1}));
        let t = Instant::now();
        let r = w.tool("notify").stdin(down("api")).run();
        r.code(1).stderr_has("webhook: 1 alert(s) not delivered");
        assert!(t.elapsed() < crate::util::limit(10.0), "{name}: {:?}", t.elapsed());
        let outbox = w.read("home/state/outbox.jsonl");
        assert_eq!(outbox.lines().count(), 1, "{name}: {outbox}");
        let q: Value = serde_json::from_str(outbox.lines().next().unwrap()).unwrap();
        assert_eq!(q["sinks"], json!(["webhook"]));
    }
}

#[test]
fn hostile_peers_telegram_retry_after_past_any_duration_is_a_clear_failure() {
    let tg = HttpServer::start(|_| {
        Reply::json(
            429,
            &json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1e300",
                    "parameters": {"retry_after": 1e300}}),
        )
    });
    let w = Workdir::new("hostile-telegram");
    alerting(
        &w,
        json!({"telegram_bot_token": "123:secret-token", "telegram_chat_id": "42", "telegram_api_url": tg.url(""),
               "telegram_max_wait_seconds": 1e300, "timeout_seconds": 1e300, "exec_timeout_seconds": 1e300,
               "exec": "cat >/dev/null", "alertmanager_url": tg.url(""),
               "alertmanager_resolve_timeout_seconds": 9_000_000_000_000_000_000u64}),
    );
    let r = w.tool("notify").stdin(down("api")).run();
    r.code(1).stderr_has("past the");
    assert!(!r.stderr.contains("panicked") && !r.stderr.contains("secret-token"), "{r:?}");
}

#[test]
fn hostile_peers_probe_reports_garbage_and_silence_as_down_in_time() {
    let garbage = Garbage::start();
    let hole = Blackhole::start();
    let w = Workdir::new("hostile-probe-peers");
    let lines = [
        json!({"name": "garbage", "target": garbage.url(), "timeout_seconds": 2}),
        json!({"name": "hole", "target": hole.url(), "timeout_seconds": 1}),
        json!({"name": "tls-hole", "type": "tls", "target": hole.addr.to_string(), "timeout_seconds": 1}),
        json!({"name": "tls-garbage", "type": "tls", "target": garbage.addr.to_string(), "timeout_seconds": 2}),
    ];
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let t = Instant::now();
    let r = w.tool("probe").args(["--services", "-", "--no-metrics"]).stdin(input).run();
    r.code(1);
    assert!(t.elapsed() < crate::util::limit(8.0), "{:?}", t.elapsed());
    for name in ["garbage", "hole", "tls-hole", "tls-garbage"] {
        let c = r.named("check", name);
        assert_eq!(c["status"], "down", "{c}");
        assert!(!c["detail"].as_str().unwrap().is_empty());
    }
}

// ------------------------------------------------------- records that reach commands

#[test]
fn hostile_details_do_not_keep_a_restart_command_from_running() {
    let w = Workdir::new("hostile-restart-env");
    let marker = w.path("restarted");
    w.write(
        "home/config/services.json",
        pretty(&json!({"services": [{
            "name": "api", "type": "port", "port": crate::util::closed_port(),
            "restart_command": format!("printf %s \"$PITCREW_DETAIL\" | wc -c > {}", path_str(&marker)),
            "restart_timeout_seconds": 1e30, "verify_delay_seconds": 0}]})),
    );
    let detail = format!("nul \u{0} and {}", "x".repeat(1 << 20));
    let line = json!({"kind": "check", "name": "api", "status": "down", "detail": detail}).to_string();
    let r = w.tool("recover").stdin(line).run();
    r.code(1);
    let rec = &r.kind("recovery")[0];
    assert_eq!(rec["exit_code"], 0, "the command ran{r:?}");
    let n: usize = std::fs::read_to_string(&marker).unwrap().trim().parse().unwrap();
    assert_eq!(n, 32 * 1024, "the detail reaches the command, cut to 32 KiB");
}

#[test]
fn hostile_alert_titles_do_not_keep_the_exec_sink_from_running() {
    let w = Workdir::new("hostile-exec-env");
    let out = w.path("mail");
    alerting(&w, json!({"exec": format!("wc -c > {}", path_str(&out))}));
    let title = format!("t\u{0}{}", "y".repeat(300_000));
    let line = json!({"kind": "alert", "level": "error", "title": title, "message": "m"}).to_string();
    w.tool("notify").stdin(line).run().code(0);
    assert!(out.exists());
}

#[test]
#[ignore = "slow: waits out sink timeouts; scripts/test.sh runs it"]
fn hostile_peers_a_silent_gitea_costs_one_timeout_per_run_not_one_per_alert() {
    let hole = Blackhole::start();
    let w = Workdir::new("hostile-gitea-silent");
    alerting(
        &w,
        json!({"gitea_url": format!("http://{}", hole.addr), "gitea_repo": "ops/alerts", "gitea_token": "tok-123456",
               "timeout_seconds": 1}),
    );
    let input: String = (0..6).map(|i| down(&format!("svc-{i}"))).collect();
    let t = Instant::now();
    let r = w.tool("notify").stdin(input).run();
    r.code(1).stderr_has("gitea: 6 alert(s) not delivered");
    assert!(t.elapsed() < crate::util::limit(4.0), "took {:?}{r:?}", t.elapsed());
    assert_eq!(w.read("home/state/outbox.jsonl").lines().count(), 6);
    // The next run tries the outbox once, then gives up on the rest just as fast.
    let t = Instant::now();
    w.tool("notify").run().code(1);
    assert!(t.elapsed() < crate::util::limit(4.0), "took {:?}", t.elapsed());
}

#[test]
fn hostile_sizes_a_megabyte_alert_is_a_few_telegram_messages_not_hundreds() {
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = sent.clone();
    let tg = HttpServer::start(move |_| {
        n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Reply::json(200, &json!({"ok": true, "result": {"message_id": 1}}))
    });
    let w = Workdir::new("hostile-telegram-size");
    alerting(&w, json!({"telegram_bot_token": "123:tok", "telegram_chat_id": "42", "telegram_api_url": tg.url("")}));
    let message: String = (0..20_000).map(|i| format!("line {i} of a very long alert body\n")).collect();
    let line = json!({"kind": "alert", "level": "error", "title": "huge", "message": message}).to_string();
    let r = w.tool("notify").stdin(line).run();
    r.code(0);
    assert_eq!(sent.load(std::sync::atomic::Ordering::Relaxed), 8, "{r:?}");
    assert_eq!(r.kind("alert")[0]["message"].as_str().unwrap().len(), message.len(), "the record keeps it all");
}

#[test]
fn hostile_sizes_notify_send_reads_at_most_a_mebibyte_of_message() {
    let w = Workdir::new("hostile-send-size");
    let mut stdin = b"first line \xff\xfe not UTF-8\n".to_vec();
    stdin.resize(5 << 20, b'z');
    let r = w.tool("notify").args(["send", "-", "--level", "warning"]).stdin(stdin).run();
    r.code(0).stderr_has("the rest is cut");
    let a = &r.kind("alert")[0];
    assert!(a["message"].as_str().unwrap().len() <= (1 << 20) + 8, "{}", a["message"].as_str().unwrap().len());
    assert!(a["title"].as_str().unwrap().starts_with("first line \u{fffd}\u{fffd} not UTF-8"), "{}", a["title"]);
}

// ------------------------------------------------------------- rollup and cellscan

fn metric(i: usize) -> String {
    format!(r#"{{"name":"svc","status":"up","latency_ms":{i},"timestamp":"2026-11-19T10:00:{:02}Z"}}"#, i % 60)
}

/// Hostile metrics lines and what rollup says of each (it names the first, counts the rest).
fn hostile_metrics() -> Vec<(Vec<u8>, &'static str)> {
    let mut long = br#"{"name":"svc","status":"up","pad":""#.to_vec();
    long.resize(17 << 20, b'x');
    long.extend_from_slice(b"\"}");
    let deep_name = format!(r#"{{"name":{}1{},"status":"up"}}"#, "[".repeat(100_000), "]".repeat(100_000));
    vec![
        (long, "longer than the limit of 16777216 bytes"),
        ("[".repeat(200_000).into_bytes(), "EOF while parsing a list"),
        (deep_name.into_bytes(), "name: expected a string"),
        (b"{\"name\":\"\xff\xfe\",\"status\":\"up\"}".to_vec(), "invalid unicode code point"),
        (b"{\"name\":\"svc\",\"status\":\"up\"}\0".to_vec(), "trailing characters"),
        (b"\0\0\0\0".to_vec(), "expected value"),
        (br#"{"name":"svc","status":"up","latency_ms":1e400}"#.to_vec(), "1e400 is not a finite number"),
    ]
}

#[test]
fn hostile_lines_rollup() {
    let w = Workdir::new("hostile-rollup");
    let hostile = hostile_metrics();
    let mut file = Vec::new();
    for (i, (bad, _)) in hostile.iter().enumerate() {
        file.extend_from_slice(format!("{}\n", metric(i)).as_bytes());
        file.extend_from_slice(bad);
        file.push(b'\n');
    }
    file.extend_from_slice(format!("{}\n", metric(hostile.len())).as_bytes());
    let path = w.write("m/2026-11-19.jsonl", &file);
    let t = Instant::now();
    let r = w.tool("rollup").args([&path_str(&path), "--now", "2026-11-20T00:00:00Z"]).run();
    r.code(3).stderr_has(&format!(
        "rollup: {} malformed line(s) skipped (first: {}:2: line of",
        hostile.len(),
        path_str(&path)
    ));
    let u = r.named("uptime", "svc");
    assert_eq!(u["total_checks"], hostile.len() + 1, "every valid line counted{r:?}");
    assert_eq!(u["avg_latency_ms"], 3.5);
    assert!(t.elapsed() < crate::util::limit(30.0) && !r.stderr.contains("panicked"), "{r:?}");
    // Each class on its own, from stdin: the reason is named with the line.
    for (bad, why) in hostile.into_iter().skip(1) {
        let mut input = format!("{}\n", metric(0)).into_bytes();
        input.extend_from_slice(&bad);
        input.extend_from_slice(format!("\n{}\n", metric(1)).as_bytes());
        let r = w.tool("rollup").args(["-", "--now", "2026-11-20T00:00:00Z"]).stdin(input).run();
        r.code(3).stderr_has("(first: stdin:2: ").stderr_has(why);
        assert_eq!(r.named("uptime", "svc")["total_checks"], 2);
    }
}

/// A missions directory with one sound cell and one full of hostile files.
fn hostile_missions(w: &Workdir) {
    w.write(
        "missions/good/cell.json",
        pretty(&json!({"cell_id": "good", "mission_name": "m", "status": "active", "isolation_level": "level_1"})),
    );
    w.write(
        "missions/good/agents/a1.json",
        pretty(&json!({"agent_id": "a1", "role": "lead", "status": "idle", "checkpoint": null})),
    );
    w.write(
        "missions/evil/cell.json",
        r#"{"cell_id":"../../etc","mission_name":"x","status":"active","isolation_level":"level_1","max_agents":1e400,"timeout":18446744073709551616}"#,
    );
    w.write(
        "missions/evil/agents/a.json",
        r#"{"agent_id":"../../etc/passwd","role":"lead","status":"failed","heartbeat_id":"..%2F.."}"#,
    );
    w.write(
        "missions/evil/agents/b.json",
        b"{\"agent_id\":\"b\",\"role\":\"lead\",\"status\":\"idle\",\"name\":\"\xff\x00\"}",
    );
    w.write("missions/evil/agents/c.json", format!("{}{}", "[".repeat(200_000), "]".repeat(200_000)));
    let mut giant = br#"{"task_id":"t2","title":""#.to_vec();
    giant.resize(20 << 20, b'x');
    giant.extend_from_slice(b"\"}");
    w.write("missions/evil/tasks/giant.json", giant);
    w.write(
        "missions/evil/tasks/t3.json",
        r#"{"task_id":"../t3","title":"T","status":"pending","priority":"low","dependencies":["../../x"]}"#,
    );
    w.write(
        "missions/evil/tasks/t4.json",
        format!(
            r#"{{"task_id":"t4","title":"T","status":"pending","priority":"low","x":{}{}}}"#,
            "[".repeat(200_000),
            "]".repeat(200_000)
        ),
    );
}

#[test]
fn hostile_cell_files_are_findings_and_the_other_cells_are_scanned() {
    let w = Workdir::new("hostile-cellscan");
    hostile_missions(&w);
    let t = Instant::now();
    let r = w.tool("cellscan").args(["scan", &path_str(&w.path("missions"))]).run();
    r.code(1);
    assert!(t.elapsed() < crate::util::limit(20.0) && !r.stderr.contains("panicked"), "{r:?}");
    let findings: Vec<String> = r
        .kind("finding")
        .iter()
        .filter(|f| f["cell"] == "evil")
        .map(|f| format!("{} {}", f["problem"].as_str().unwrap(), f["detail"].as_str().unwrap()))
        .collect();
    for want in [
        "cell.json:1:12: cell_id: '../../etc' is not a usable id",
        "max_agents: 1e400 is out of range",
        "agent_id: '../../etc/passwd' is not a usable id",
        "heartbeat_id: '..%2F..' is not a usable id",
        "invalid_json", // b.json: a NUL in a string
        "bad_value",    // c.json: an array, not an object
        "unreadable",
        "tasks/giant.json: larger than 16 MiB",
        "task_id: '../t3' is not a usable id",
    ] {
        assert!(findings.iter().any(|f| f.contains(want)), "no finding says {want:?}: {findings:#?}");
    }
    // The sound cell is reported as usual, and nothing was written anywhere.
    assert_eq!(r.named("agent", "a1")["health"], "healthy", "{r:?}");
    assert!(!w.path("etc").exists() && !w.path("missions/etc").exists());
}

#[test]
fn hostile_peers_cellscan_heartbeat_endpoints_that_are_silent_or_speak_garbage() {
    let w = Workdir::new("hostile-cellscan-peers");
    w.write(
        "missions/c1/cell.json",
        pretty(&json!({"cell_id": "c1", "mission_name": "m", "status": "active", "isolation_level": "level_1"})),
    );
    for i in 0..20 {
        w.write(
            &format!("missions/c1/agents/a{i}.json"),
            pretty(&json!({"agent_id": format!("a{i}"), "role": "read", "status": "idle", "checkpoint": null})),
        );
    }
    let garbage = Garbage::start();
    let hole = Blackhole::start();
    for url in [hole.url(), garbage.url()] {
        let t = Instant::now();
        let r = w
            .tool("cellscan")
            .args(["scan", &path_str(&w.path("missions")), "--heartbeat-url", &url, "--heartbeat-timeout", "1"])
            .run();
        assert!(t.elapsed() < crate::util::limit(6.0), "20 agents behind {url} took {:?}", t.elapsed());
        assert!(!r.stderr.contains("panicked"), "{r:?}");
        let warned: Vec<Value> =
            r.kind("finding").into_iter().filter(|f| f["problem"] == "heartbeat_unreachable").collect();
        assert_eq!(warned.len(), 1, "one warning for the cell{r:?}");
        assert!(!warned[0]["detail"].as_str().unwrap().is_empty());
        // Health falls back to the files.
        assert_eq!(r.kind("agent").len(), 20);
        assert!(r.kind("agent").iter().all(|a| a["health_source"] == "file"), "{r:?}");
    }
    // An endpoint that speaks HTTP but answers garbage: a clear finding per agent or the
    // state read leniently, never a panic, the scan complete.
    for body in [
        "not json {{",
        &"[".repeat(100_000),
        r#"{"status":"healthy","consecutive_failures":-1e300,"last_heartbeat":1e300}"#,
    ] {
        let body = body.to_string();
        let server = HttpServer::start(move |_| Reply::new(200, body.as_str()));
        let t = Instant::now();
        let r = w
            .tool("cellscan")
            .args([
                "scan",
                &path_str(&w.path("missions")),
                "--heartbeat-url",
                &server.url(""),
                "--heartbeat-timeout",
                "1",
            ])
            .run();
        assert!(t.elapsed() < crate::util::limit(6.0) && !r.stderr.contains("panicked"), "{r:?}");
        assert_eq!(r.kind("agent").len(), 20, "{r:?}");
    }
}

// ------------------------------------------------------- trust boundaries: writes

/// A file outside every tree a tool may write, with contents that must not change.
fn precious(w: &Workdir) -> std::path::PathBuf {
    w.write("outside/precious", "precious\n")
}

#[track_caller]
fn assert_untouched(p: &std::path::Path) {
    assert_eq!(std::fs::read_to_string(p).unwrap(), "precious\n", "{} was written through a link", p.display());
}

#[test]
fn trust_appends_never_follow_a_link_planted_in_metrics() {
    let w = Workdir::new("trust-metrics-link");
    let target = precious(&w);
    std::fs::create_dir_all(w.path("home/metrics")).unwrap();
    std::os::unix::fs::symlink(&target, w.path("home/metrics/2026-11-23.jsonl")).unwrap();
    let port = crate::util::closed_port();
    let svc = json!({"name": "p", "type": "port", "port": port}).to_string();
    let r = w.tool("probe").args(["--services", "-", "--now", "2026-11-23T10:00:00Z"]).stdin(svc).run();
    assert_untouched(&target);
    r.stderr_has("2026-11-23.jsonl").stderr_has("symbolic link");
}

/// A mission cell with one failed agent whose policy revives it with `command`.
fn failed_cell(w: &Workdir, dir: &str, command: &str) {
    w.write(
        &format!("{dir}/cell.json"),
        pretty(&json!({"cell_id": "c1", "mission_name": "m", "status": "active", "isolation_level": "level_1"})),
    );
    w.write(
        &format!("{dir}/agents/a1.json"),
        pretty(&json!({"agent_id": "a1", "role": "lead", "status": "failed", "checkpoint": null})),
    );
    w.write(
        &format!("{dir}/config/policies.json"),
        // No checkpoint, and none required: the command runs.
        pretty(&json!({"auto_revive": "yes", "revive_command": command, "revive_timeout": 5, "checkpoint_required": false})),
    );
}

#[test]
fn trust_a_cell_whose_logs_are_links_cannot_make_cellscan_write_elsewhere() {
    let w = Workdir::new("trust-cell-links");
    let target = precious(&w);
    // mission.log planted as a link to a file outside the cell.
    failed_cell(&w, "missions/c1", "true");
    std::fs::create_dir_all(w.path("missions/c1/logs")).unwrap();
    std::os::unix::fs::symlink(&target, w.path("missions/c1/logs/mission.log")).unwrap();
    let r = w.tool("cellscan").args(["revive", &path_str(&w.path("missions"))]).run();
    assert_untouched(&target);
    r.stderr_has("mission.log").stderr_has("symbolic link");
    // logs/ itself a link to a directory outside: neither the ledger nor the log lands there.
    std::fs::remove_dir_all(w.path("missions/c1/logs")).unwrap();
    std::fs::create_dir_all(w.path("outside/dir")).unwrap();
    std::os::unix::fs::symlink(w.path("outside/dir"), w.path("missions/c1/logs")).unwrap();
    let r = w.tool("cellscan").args(["revive", &path_str(&w.path("missions"))]).run();
    assert_eq!(std::fs::read_dir(w.path("outside/dir")).unwrap().count(), 0, "written through logs/{r:?}");
    let f = r.kind("finding");
    assert!(f.iter().any(|f| f["detail"].as_str().unwrap().contains("symbolic link")), "{r:?}");
}

#[test]
fn trust_state_files_that_are_links_are_refused_not_written_through() {
    let w = Workdir::new("trust-state-link");
    let target = precious(&w);
    std::fs::create_dir_all(w.path("home/state")).unwrap();
    std::os::unix::fs::symlink(&target, w.path("home/state/recovery.json")).unwrap();
    w.write(
        "home/config/services.json",
        pretty(&json!({"services": [{"name": "api", "type": "port", "port": crate::util::closed_port(),
            "restart_command": "true", "verify_delay_seconds": 0}]})),
    );
    let line = json!({"kind": "check", "name": "api", "status": "down"}).to_string();
    let r = w.tool("recover").stdin(line).run();
    r.code(2).stderr_has("recovery.json").stderr_has("symbolic link");
    assert_untouched(&target);
}

// ------------------------------------------------------- trust boundaries: reads

#[test]
fn trust_a_fifo_in_a_mission_cell_is_a_finding_not_a_hang() {
    let w = Workdir::new("trust-cell-fifo");
    failed_cell(&w, "missions/c1", "true");
    w.write("missions/c1/agents/a2.json", pretty(&json!({"agent_id": "a2", "role": "read", "status": "idle"})));
    nix::unistd::mkfifo(&w.path("missions/c1/agents/agent_009.json"), nix::sys::stat::Mode::from_bits_truncate(0o644))
        .unwrap();
    let t = Instant::now();
    let r = w.tool("cellscan").args(["scan", &path_str(&w.path("missions"))]).run_within(30);
    let took = t.elapsed();
    let f = r.kind("finding");
    let fifo = f.iter().find(|f| f["detail"].as_str().unwrap().contains("agent_009.json")).unwrap_or_else(|| {
        panic!("no finding names the FIFO{r:?}");
    });
    assert_eq!(fifo["problem"], "unreadable");
    assert!(fifo["detail"].as_str().unwrap().contains("not a regular file (a FIFO)"), "{fifo}");
    assert_eq!(r.named("agent", "a2")["health"], "healthy", "the rest of the cell is read");
    assert!(took < crate::util::limit(10.0), "{took:?}");
}

#[test]
fn trust_rollup_skips_a_fifo_and_a_link_to_dev_zero_and_counts_the_rest() {
    let w = Workdir::new("trust-rollup-fifo");
    w.write("home/metrics/2026-11-18.jsonl", format!("{}\n", metric(1)));
    nix::unistd::mkfifo(&w.path("home/metrics/2026-11-19.jsonl"), nix::sys::stat::Mode::from_bits_truncate(0o644))
        .unwrap();
    std::os::unix::fs::symlink("/dev/zero", w.path("home/metrics/2026-11-17.jsonl")).unwrap();
    let r = w.tool("rollup").args(["--days", "7", "--now", "2026-11-20T00:00:00Z"]).run_within(30);
    r.code(3);
    r.stderr_has("2026-11-19.jsonl: not a regular file (a FIFO); skipped");
    r.stderr_has("2026-11-17.jsonl: it is a symbolic link");
    assert_eq!(r.named("uptime", "svc")["total_checks"], 1, "{r:?}");
    // Named as files, a link is followed, and /dev/zero is still not a regular file.
    let r = w
        .tool("rollup")
        .arg(w.path("home/metrics/2026-11-17.jsonl"))
        .arg(w.path("home/metrics/2026-11-18.jsonl"))
        .run_within(30);
    r.code(3).stderr_has("2026-11-17.jsonl: not a regular file (a character device); skipped");
    assert_eq!(r.named("uptime", "svc")["total_checks"], 1);
}

#[test]
fn trust_a_tick_linked_to_dev_zero_is_refused_at_once() {
    let w = Workdir::new("trust-tick-zero");
    let reg = w.write("reg.json", r#"{"agents":[{"id":"atlas"},{"id":"beacon"}]}"#);
    w.write(
        "home/ticks/2026-11/beacon.json",
        pretty(&json!({"agent": "beacon", "month": "2026-11", "status": "healthy",
            "submitted_at": "2026-11-01T00:00:00Z"})),
    );
    std::fs::create_dir_all(w.path("home/ticks/2026-11")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", w.path("home/ticks/2026-11/atlas.json")).unwrap();
    let r = w
        .tool("tickmon")
        .args(["check", "--month", "2026-11", "--now", "2026-11-20T00:00:00Z", "--registry"])
        .arg(&reg)
        .run_within(30);
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(said.contains("atlas.json") && said.contains("symbolic link"), "{r:?}");
    assert_eq!(r.named("tick", "beacon")["status"], "healthy", "{r:?}");
    // probe's heartbeat check of the same tick.
    let svc = json!({"name": "hb", "type": "heartbeat", "agent": "atlas", "max_age_seconds": 60,
        "ticks_dir": path_str(&w.path("home/ticks"))});
    let r = w
        .tool("probe")
        .args(["--services", "-", "--no-metrics", "--now", "2026-11-20T00:00:00Z"])
        .stdin(svc.to_string())
        .run_within(30);
    let c = r.named("check", "hb");
    assert_eq!(c["status"], "down", "{r:?}");
    assert!(c["detail"].as_str().unwrap().contains("atlas.json: it is a symbolic link"), "{c}");
}

#[test]
fn trust_a_fifo_named_as_an_input_file_is_refused_stdin_stays_a_stream() {
    let w = Workdir::new("trust-ndjson-fifo");
    let fifo = w.path("in.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    for args in [&["notify", "--dry-run"][..], &["recover", "--dry-run"], &["board", "ingest"], &["rollup"]] {
        let r = w.tool(args[0]).args(&args[1..]).arg(&fifo).run_within(30);
        if args[0] == "rollup" {
            r.code(3).stderr_has("in.fifo: not a regular file (a FIFO); skipped");
            continue;
        }
        r.code(2).stderr_has("in.fifo: not a regular file (a FIFO)");
    }
    let r = w.tool("recover").arg("-").stdin(note(1)).run_within(30);
    assert_eq!(r.kind("note").len(), 1, "{r:?}");
}

// ------------------------------------------------------- trust boundaries: the stream

#[test]
fn trust_revive_from_a_record_runs_nothing_outside_the_missions_directory() {
    let w = Workdir::new("trust-revive-from");
    let pwned = w.path("pwned");
    // A cell outside the missions directory, with a command the record would like run.
    failed_cell(&w, "elsewhere/c1", &format!("id > {}", path_str(&pwned)));
    std::fs::create_dir_all(w.path("missions")).unwrap();
    let record = json!({"kind": "agent", "cell": "c1", "agent": "a1", "status": "failed", "health": "unhealthy",
        "path": path_str(&w.path("elsewhere/c1/agents/a1.json"))});
    let r = w
        .tool("cellscan")
        .args(["revive", "--from", "-", &path_str(&w.path("missions"))])
        .stdin(record.to_string())
        .run();
    assert!(!pwned.exists(), "a command of a cell outside the missions directory ran{r:?}");
    let f = r.kind("finding");
    assert!(f.iter().any(|f| f["problem"] == "outside_missions"), "{r:?}");
    // A link under the missions directory to that cell is resolved, and refused the same.
    std::os::unix::fs::symlink(w.path("elsewhere/c1"), w.path("missions/c1")).unwrap();
    let record = json!({"kind": "agent", "cell": "c1", "agent": "a1", "status": "failed",
        "path": path_str(&w.path("missions/c1/agents/a1.json"))});
    let r = w
        .tool("cellscan")
        .args(["revive", "--from", "-", &path_str(&w.path("missions"))])
        .stdin(record.to_string())
        .run();
    assert!(!pwned.exists(), "{r:?}");
}

#[test]
fn trust_revive_from_a_record_that_claims_unhealthy_does_not_revive_an_active_agent() {
    let w = Workdir::new("trust-revive-claim");
    let ran = w.path("ran");
    failed_cell(&w, "missions/c1", &format!("touch {}", path_str(&ran)));
    // The agent's own file says active.
    w.write(
        "missions/c1/agents/a1.json",
        pretty(&json!({"agent_id": "a1", "role": "lead", "status": "active", "checkpoint": "2026-11-23T10:00:00Z"})),
    );
    let record = json!({"kind": "agent", "cell": "c1", "agent": "a1", "status": "active", "health": "unhealthy",
        "health_source": "heartbeat", "heartbeat": {"agent_id": "a1", "status": "unhealthy", "consecutive_failures": 9},
        "path": path_str(&w.path("missions/c1/agents/a1.json"))});
    let r = w
        .tool("cellscan")
        .args(["revive", "--from", "-", &path_str(&w.path("missions")), "--now", "2026-11-23T10:05:00Z"])
        .stdin(record.to_string())
        .run();
    assert!(!ran.exists(), "revived on the record's word alone{r:?}");
    assert!(r.kind("recovery").is_empty(), "{r:?}");
}

// ------------------------------------------------------- trust boundaries: memory

#[test]
fn trust_notify_state_stays_bounded_whatever_the_input() {
    let w = Workdir::new("trust-notify-bounded");
    w.write("home/config/services.json", pretty(&json!({"alerting": {"max_subjects": 50}})));
    let detail = "d".repeat(20_000);
    let input: String = (0..300)
        .map(|i| format!("{}\n", json!({"kind": "check", "name": format!("svc-{i}-{}", "n".repeat(6000)), "status": "down", "detail": detail})))
        .collect();
    let r = w.tool("notify").stdin(input).run();
    r.stderr_has("notify.json: ").stderr_has("cut to 4096 bytes").stderr_has("250 subject(s) over the limit of 50");
    let size = std::fs::metadata(w.path("home/state/notify.json")).unwrap().len();
    // Five strings of at most 4 KiB per subject here (key, title, name, message, topic).
    assert!(size < 50 * 8 * 4096, "notify.json is {size} bytes for 50 subjects");
    // The next run with nothing new loads the bounded state.
    let again = w.tool("notify").stdin("").run();
    again.code(0);
}

// ------------------------------------------------------- trust boundaries: secrets

#[test]
fn trust_secrets_stay_out_of_commands_targets_metrics_and_others_reach() {
    let w = Workdir::new("trust-secrets");
    let env_file = w.path("env-seen");
    let site = HttpServer::start(|_| Reply::new(200, "ok"));
    let url = site.url("/?api_key=KEY-s3cr3t&page=2").replacen("http://", "http://admin:pw-s3cr3t@", 1);
    w.write(
        "home/config/services.json",
        pretty(&json!({"services": [
            {"name": "site", "type": "url", "target": url},
            {"name": "api", "type": "port", "port": crate::util::closed_port(),
             "restart_command": format!("env > {}", path_str(&env_file)), "verify_delay_seconds": 0}]})),
    );
    let r = w.tool("probe").args(["--now", "2026-11-23T10:00:00Z"]).run();
    let site_check = r.named("check", "site");
    assert_eq!(site_check["status"], "up", "the request still carries its credentials{r:?}");
    let metrics = w.read("home/metrics/2026-11-23.jsonl");
    for text in [&r.stdout, &metrics] {
        assert!(!text.contains("s3cr3t"), "a credential was written: {text}");
    }
    assert!(site_check["target"].as_str().unwrap().contains("http://***@127.0.0.1"), "{site_check}");
    assert!(site_check["target"].as_str().unwrap().contains("api_key=***&page=2"), "{site_check}");
    // The restart command does not inherit pitcrew's tokens.
    let down = json!({"kind": "check", "name": "api", "status": "down"}).to_string();
    let r = w
        .tool("recover")
        .env("TELEGRAM_BOT_TOKEN", "tg-s3cr3t")
        .env("GITEA_TOKEN", "gt-s3cr3t")
        .env("AGENT_OPS_HEARTBEAT_TOKEN", "hb-s3cr3t")
        .stdin(down)
        .run();
    let seen = std::fs::read_to_string(&env_file).unwrap_or_else(|e| panic!("the command did not run ({e}){r:?}"));
    assert!(!seen.contains("s3cr3t"), "{seen}");
    assert!(seen.contains("PITCREW_"), "the command's own variables are there: {seen}");
    // State that keeps what records carried is for the service user only.
    use std::os::unix::fs::PermissionsExt;
    w.tool("notify").stdin(format!("{}\n", json!({"kind": "check", "name": "x", "status": "down"}))).run();
    for f in ["home/state/notify.json", "home/state/recovery.json"] {
        let mode = std::fs::metadata(w.path(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
}

// ------------------------------------------------------- trust boundaries: terminals

#[test]
fn trust_terminal_escapes_in_records_are_shown_escaped() {
    let w = Workdir::new("trust-escapes");
    let evil = "evil\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}31m\r";
    let line = json!({"kind": "check", "name": evil, "status": "down", "detail": evil}).to_string();
    for args in [&["recover", "--format", "text"][..], &["notify", "--dry-run", "--format", "text"]] {
        let r = w.tool(args[0]).args(&args[1..]).stdin(line.clone()).run();
        assert!(!r.stdout.contains('\u{1b}') && !r.stdout.contains('\u{9b}') && !r.stdout.contains('\r'), "{r:?}");
        assert!(!r.stderr.contains('\u{1b}'), "{r:?}");
    }
    let r = w.tool("recover").args(["--format", "text"]).stdin(line).run();
    r.stdout_has("evil\\x1b]0;owned\\x07\\x1b[2J\\u{9b}31m\\r");
    let metric = json!({"name": evil, "status": "up", "latency_ms": 1, "timestamp": "2026-11-19T10:00:00Z"});
    for format in ["text", "markdown", "csv"] {
        let r = w
            .tool("rollup")
            .args(["-", "--format", format, "--now", "2026-11-20T00:00:00Z"])
            .stdin(metric.to_string())
            .run();
        assert!(!r.stdout.contains('\u{1b}') && r.stdout.contains("\\x1b"), "{format}{r:?}");
    }
}

// ------------------------------------------------------- trust boundaries: numbers

#[test]
fn trust_rollup_refuses_latencies_that_are_negative_or_absurd() {
    let w = Workdir::new("trust-latency");
    let line = |l: &str| {
        format!("{{\"name\":\"svc\",\"status\":\"up\",\"latency_ms\":{l},\"timestamp\":\"2026-11-19T10:00:00Z\"}}\n")
    };
    let input = [
        line("10"),
        line("1.7976931348623157e308"),
        line("1.7976931348623157e308"),
        line("-1e308"),
        line("-5"),
        line("1e10"),
    ]
    .concat();
    let r = w.tool("rollup").args(["-", "--now", "2026-11-20T00:00:00Z"]).stdin(input).run();
    r.code(3).stderr_has("5 malformed line(s)").stderr_has("latency_ms: 1.7976931348623157e308 is more than");
    let u = r.named("uptime", "svc");
    assert_eq!((u["total_checks"].as_u64(), u["avg_latency_ms"].as_f64()), (Some(1), Some(10.0)), "{r:?}");
}
