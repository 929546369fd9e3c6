//! recover against real things: a web server it brings back after a kill, restart commands
//! that fail, hang and fork, dependencies, concurrent runs, and the pipe contract.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use serde_json::{Value, json};

use crate::util::{Run, Workdir, alive, closed_port, json as pretty, wait_until};

/// services.json in the workdir, without the Agent Ops Kit's automatic disk check.
fn config(w: &Workdir, services: Value) -> String {
    w.write("services.json", pretty(&json!({ "services": services, "disk_check": false }))).display().to_string()
}

fn recover(w: &Workdir, cfg: &str) -> crate::util::Tool {
    w.tool("recover").args(["--config", cfg])
}

fn down(name: &str) -> String {
    format!("{}\n", json!({"kind": "check", "name": name, "type": "port", "status": "down", "detail": "refused"}))
}

fn q(p: &Path) -> String {
    format!("'{}'", p.display())
}

/// The lines of a file (none when it does not exist).
fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p).map(|s| s.lines().map(String::from).collect()).unwrap_or_default()
}

fn outcome(r: &Run, name: &str) -> String {
    r.named("recovery", name)["outcome"].as_str().unwrap_or("").to_string()
}

/// Kills the process whose pid is in a file, when the test ends however it ends.
struct KillOnDrop(PathBuf);

impl KillOnDrop {
    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.0).ok()?.trim().parse().ok()
    }

    fn kill(&self) {
        if let Some(pid) = self.pid() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            assert!(wait_until(10.0, || !alive(pid as u32)), "pid {pid} did not die");
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// A restart script that starts python's web server on `port` in the background (its output
/// to a file, its pid to web.pid) and returns once the server answers.
fn web_start_script(w: &Workdir, port: u16) -> PathBuf {
    w.write(
        "start-web.sh",
        format!(
            r#"#!/bin/sh
cd "$(dirname "$0")"
echo "${{PITCREW_SERVICE:-by hand}} ${{PITCREW_ATTEMPT:-0}}/${{PITCREW_MAX_ATTEMPTS:-0}}: ${{PITCREW_DETAIL:-}}" >> restarts.log
python3 -m http.server {port} --bind 127.0.0.1 >web.log 2>&1 &
echo $! > web.pid
exec python3 - {port} <<'PY'
import socket, sys, time
for _ in range(400):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.5).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.025)
sys.exit(1)
PY
"#
        ),
    )
}

#[test]
fn a_killed_web_server_is_brought_back_by_probe_piped_into_recover() {
    let w = Workdir::new("recover-web");
    let port = closed_port();
    let script = web_start_script(&w, port);
    let server = KillOnDrop(w.path("web.pid"));
    let cfg = config(
        &w,
        json!([{
            "name": "web", "type": "url", "target": format!("http://127.0.0.1:{port}/"), "timeout_seconds": 5,
            "restart_command": format!("sh {}", q(&script)), "restart_timeout_seconds": 30, "verify_delay_seconds": 0.2
        }]),
    );
    let started = std::process::Command::new("sh").arg(&script).status().unwrap();
    assert!(started.success(), "the web server did not start");
    let probe = || w.tool("probe").args(["--config", &cfg, "--no-metrics"]).run();
    assert_eq!(probe().named("check", "web")["status"], "up");

    server.kill();
    assert_eq!(probe().code(1).named("check", "web")["status"], "down");

    // probe | recover: two real processes joined by a pipe.
    let mut p = w.tool("probe").args(["--config", &cfg, "--no-metrics"]);
    p.cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut probe_child = p.cmd.spawn().unwrap();
    let mut r = recover(&w, &cfg);
    r.cmd.stdin(probe_child.stdout.take().unwrap()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = r.cmd.spawn().unwrap().wait_with_output().unwrap();
    assert_eq!(probe_child.wait().unwrap().code(), Some(1));
    let run = Run {
        display: "probe | recover".into(),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    run.code(0);
    let checks = run.kind("check");
    assert_eq!(checks.len(), 2, "{run:?}");
    assert_eq!(checks[0]["status"], "down", "probe's record passes through first");
    assert_eq!((checks[1]["status"].as_str(), checks[1]["http_status"].as_u64()), (Some("up"), Some(200)));
    let rec = run.named("recovery", "web");
    assert_eq!(rec["outcome"], "recovered", "{run:?}");
    assert_eq!(
        (rec["attempt"].as_u64(), rec["verified"].as_bool(), rec["exit_code"].as_i64()),
        (Some(1), Some(true), Some(0))
    );
    assert!(rec["duration_ms"].as_u64().is_some());
    assert!(run.stderr.is_empty(), "{run:?}");

    assert_eq!(probe().code(0).named("check", "web")["status"], "up", "and it stays up");
    let restarts = lines(&w.path("restarts.log"));
    assert_eq!(restarts, ["by hand 0/0: ".to_string(), format!("web 1/3: {}", checks[0]["detail"].as_str().unwrap())]);
    let log = w.read("home/logs/recovery.log");
    assert!(log.contains("] RESTART OK: web (attempt 1/3, "), "{log}");
    let ledger: Value = serde_json::from_str(&w.read("home/state/recovery.json")).unwrap();
    assert_eq!(ledger["web"]["attempts"], 1);
    assert!(ledger["web"]["last_success"].as_f64().is_some());
}

#[test]
fn cooldown_max_attempts_and_the_quiet_hour_follow_now() {
    let w = Workdir::new("recover-rules");
    let count = w.path("restarts");
    let cfg = config(
        &w,
        json!([{
            "name": "api", "type": "port", "port": closed_port(), "verify_delay_seconds": 0,
            "restart_command": format!("echo restarted >> {}", q(&count))
        }]),
    );
    let at = |t: &str| recover(&w, &cfg).args(["--now", t]).stdin(down("api")).run();

    let r = at("2026-11-23T10:00:00Z");
    r.code(1);
    let rec = r.named("recovery", "api");
    assert_eq!(
        (rec["outcome"].as_str(), rec["attempt"].as_u64(), rec["verified"].as_bool()),
        (Some("failed"), Some(1), Some(false))
    );
    assert!(rec["detail"].as_str().unwrap().starts_with("restart command succeeded but the service is still down"));
    assert_eq!(r.kind("check").len(), 2, "the input record and the fresh check");

    let r = at("2026-11-23T10:04:59Z");
    r.code(1);
    assert_eq!(outcome(&r, "api"), "cooldown");
    assert!(r.named("recovery", "api")["detail"].as_str().unwrap().contains("next attempt allowed in 1s"));

    assert_eq!(outcome(&at("2026-11-23T10:05:00Z"), "api"), "failed");
    let r = at("2026-11-23T10:10:00Z");
    let rec = r.named("recovery", "api");
    assert_eq!(
        (rec["attempt"].as_u64(), rec["flapping"].as_bool(), rec["restarts_in_window"].as_u64()),
        (Some(3), Some(true), Some(3))
    );

    let r = at("2026-11-23T10:15:00Z");
    r.code(1);
    let rec = r.named("recovery", "api");
    assert_eq!((rec["outcome"].as_str(), rec["attempt"].as_u64()), (Some("max_attempts"), Some(3)));
    assert!(rec["detail"].as_str().unwrap().contains("resets at 2026-11-23T11:10:00.000Z"), "{r:?}");
    assert_eq!(outcome(&at("2026-11-23T11:10:00Z"), "api"), "max_attempts", "an hour is not yet more than an hour");

    // A quiet hour forgets the count.
    let r = at("2026-11-23T11:10:01Z");
    let rec = r.named("recovery", "api");
    assert_eq!((rec["outcome"].as_str(), rec["attempt"].as_u64()), (Some("failed"), Some(1)));
    assert_eq!(lines(&count).len(), 4);

    // So does --reset, at once.
    assert_eq!(outcome(&at("2026-11-23T11:20:00Z"), "api"), "failed");
    assert_eq!(outcome(&at("2026-11-23T11:30:00Z"), "api"), "failed");
    assert_eq!(outcome(&at("2026-11-23T11:40:00Z"), "api"), "max_attempts");
    let reset = w.tool("recover").args(["--reset", "api", "--format", "text", "--now", "2026-11-23T11:41:00Z"]).run();
    reset.code(0);
    reset.stdout_has("reset api: 3 attempt(s)");
    let r = at("2026-11-23T11:42:00Z");
    assert_eq!((outcome(&r, "api"), r.named("recovery", "api")["attempt"].as_u64()), ("failed".to_string(), Some(1)));
    w.tool("recover")
        .args(["--reset", "nobody"])
        .run()
        .code(0)
        .stderr_has("recover: nobody: no restart history to reset");

    let log = w.read("home/logs/recovery.log");
    for want in [
        "[2026-11-23 10:00:00] RESTART UNVERIFIED: api (attempt 1/3, ",
        "[2026-11-23 10:04:59] COOLDOWN: api — 1s remaining",
        "[2026-11-23 10:15:00] MAX_ATTEMPTS: api — 3 attempts exhausted",
        "; FLAPPING: 3 restarts within 1h",
        "[2026-11-23 11:41:00] RESET: api — 3 attempt(s) forgotten",
    ] {
        assert!(log.contains(want), "log lacks {want:?}:\n{log}");
    }
}

#[test]
fn a_flapping_service_is_flagged_even_when_every_restart_works() {
    let w = Workdir::new("recover-flap");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cfg = config(
        &w,
        json!([{
            "name": "api", "type": "port", "port": port, "verify_delay_seconds": 0, "restart_command": "true",
            "restart_cooldown_seconds": 60, "max_restart_attempts": 10, "flap_restarts": 3, "flap_window_seconds": 600
        }]),
    );
    let at = |t: &str| recover(&w, &cfg).args(["--now", t]).stdin(down("api")).run();
    let flags: Vec<(String, Option<bool>, u64)> = ["10:00:00", "10:02:00", "10:04:00", "10:11:00"]
        .iter()
        .map(|t| {
            let r = at(&format!("2026-11-23T{t}Z"));
            r.code(0);
            let rec = r.named("recovery", "api");
            (
                rec["outcome"].as_str().unwrap().to_string(),
                rec["flapping"].as_bool(),
                rec["restarts_in_window"].as_u64().unwrap(),
            )
        })
        .collect();
    let want = |f: Option<bool>, n: u64| ("recovered".to_string(), f, n);
    // The fourth restart is 11 minutes after the first: that one has left the window.
    assert_eq!(flags, vec![want(None, 1), want(None, 2), want(Some(true), 3), want(Some(true), 3)]);
    drop(listener);
}

#[test]
fn a_hanging_restart_command_is_killed_with_the_child_it_forked() {
    let w = Workdir::new("recover-hang");
    let pidfile = w.path("child.pid");
    let cfg = config(
        &w,
        json!([{
            "name": "api", "type": "port", "port": closed_port(), "verify_delay_seconds": 0, "restart_timeout_seconds": 1,
            "restart_command": format!("sleep 60 & echo $! > {}; sleep 60", q(&pidfile))
        }]),
    );
    let t = Instant::now();
    let r = recover(&w, &cfg).stdin(down("api")).run();
    assert!(t.elapsed() < crate::util::limit(10.0), "took {:?}", t.elapsed());
    r.code(1);
    let rec = r.named("recovery", "api");
    assert_eq!(rec["outcome"], "failed");
    assert!(rec.get("exit_code").is_none(), "{rec}");
    assert!(
        rec["detail"].as_str().unwrap().starts_with("restart command timed out after 1s (process group killed)"),
        "{rec}"
    );
    let child: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert!(wait_until(5.0, || !alive(child)), "the forked child must die with the command");
    assert!(w.read("home/logs/recovery.log").contains("RESTART TIMEOUT: api (attempt 1/3, timed out after 1s)"));
}

#[test]
fn a_daemon_left_on_the_output_pipes_is_warned_about() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let w = Workdir::new("recover-held");
    let daemon = KillOnDrop(w.path("daemon.pid"));
    let cfg = config(
        &w,
        json!([{"name": "api", "type": "port", "port": port, "verify_delay_seconds": 0,
                "restart_command": format!("sleep 30 & echo $! > {}", q(&daemon.0))}]),
    );
    let r = recover(&w, &cfg).stdin(down("api")).run();
    r.code(0);
    assert_eq!(outcome(&r, "api"), "recovered");
    r.stderr_has("recover: api: the restart command left a process holding its output open");
    assert!(daemon.pid().is_some_and(|p| alive(p as u32)), "a successful restart leaves what it started running");
    daemon.kill();
}

#[test]
fn a_failing_restart_command_says_why() {
    let w = Workdir::new("recover-fail");
    let cfg = config(
        &w,
        json!([{"name": "api", "type": "port", "port": closed_port(), "verify_delay_seconds": 0,
                "restart_command": "echo 'Job for api.service failed.' >&2; exit 5"}]),
    );
    let r = recover(&w, &cfg).stdin(down("api")).run();
    r.code(1);
    let rec = r.named("recovery", "api");
    assert_eq!((rec["outcome"].as_str(), rec["exit_code"].as_i64()), (Some("failed"), Some(5)));
    assert!(
        rec["detail"]
            .as_str()
            .unwrap()
            .starts_with("restart command failed: exit 5: Job for api.service failed.; check down: "),
        "{rec}"
    );
}

/// A recover run started with `input` on its stdin, closed after.
fn start_with_input(w: &Workdir, cfg: &str, input: &str) -> std::process::Child {
    let mut c = recover(w, cfg).spawn();
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    c
}

/// Wait for the runs and return the outcome of each one's recovery record, sorted.
fn recovery_outcomes(children: Vec<std::process::Child>) -> Vec<String> {
    let mut outcomes: Vec<String> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let rec =
                text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|v| v["kind"] == "recovery");
            rec.unwrap_or_else(|| panic!("no recovery record in {text}"))["outcome"].as_str().unwrap().to_string()
        })
        .collect();
    outcomes.sort();
    outcomes
}

#[test]
fn concurrent_runs_restart_a_service_once() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    for round in 0..3 {
        let w = Workdir::new(&format!("recover-race-{round}"));
        let count = w.path("restarts");
        let cfg = config(
            &w,
            json!([{"name": "api", "type": "port", "port": port, "verify_delay_seconds": 0,
                    "restart_command": format!("echo $$ >> {}; sleep 0.2", q(&count))}]),
        );
        // Both get their input before either is waited for: they run at the same time.
        let children: Vec<_> = (0..2).map(|_| start_with_input(&w, &cfg, &down("api"))).collect();
        let outcomes = recovery_outcomes(children);
        assert_eq!(outcomes, ["cooldown", "recovered"]);
        assert_eq!(lines(&count).len(), 1, "exactly one restart");
    }
    drop(listener);
}

#[test]
fn a_run_waits_for_the_ledger_lock() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let w = Workdir::new("recover-lock");
    let count = w.path("restarts");
    let cfg = config(
        &w,
        json!([{"name": "api", "type": "port", "port": port, "verify_delay_seconds": 0,
                "restart_command": format!("echo $$ >> {}", q(&count))}]),
    );
    std::fs::create_dir_all(w.path("home/state")).unwrap();
    let lock_file = std::fs::File::create(w.path("home/state/recovery.json.lock")).unwrap();
    let mut lock = fd_lock::RwLock::new(lock_file);
    let held = lock.write().unwrap();
    let children: Vec<_> = (0..2).map(|_| start_with_input(&w, &cfg, &down("api"))).collect();
    let lock_path = w.path("home/state/recovery.json.lock");
    assert!(wait_until(10.0, || crate::util::lock_waiters(&lock_path) == 2), "both runs block on the ledger's lock");
    assert!(!count.exists(), "no restart while another holder has the ledger");
    for c in &children {
        assert!(alive(c.id()), "both runs wait");
    }
    drop(held);
    let outcomes = recovery_outcomes(children);
    assert_eq!(outcomes, ["cooldown", "recovered"]);
    assert_eq!(lines(&count).len(), 1);
}

#[test]
fn parents_are_restarted_first_and_children_wait_for_them() {
    let w = Workdir::new("recover-deps");
    let order = w.path("order");
    let gw = w.path("gateway.up");
    let allow = w.path("allow");
    let test_file = |p: &Path| format!("test -f {} || exit 2", q(p));
    let cfg = config(
        &w,
        json!([
            {"name": "gateway", "type": "command", "command": test_file(&gw), "verify_delay_seconds": 0,
             "restart_command": format!("echo gateway >> {o}; test -f {a} && touch {g}", o = q(&order), a = q(&allow), g = q(&gw))},
            {"name": "api", "type": "command", "command": test_file(&gw), "depends_on": ["gateway"], "verify_delay_seconds": 0,
             "restart_command": format!("echo api >> {}", q(&order))},
            {"name": "worker", "type": "command", "command": test_file(&w.path("worker.up")), "depends_on": ["api"],
             "verify_delay_seconds": 0,
             "restart_command": format!("echo worker >> {}; touch {}", q(&order), q(&w.path("worker.up")))},
            {"name": "plain", "type": "command", "command": test_file(&gw), "depends_on": ["gateway"]}
        ]),
    );
    // probe's own records, with suppressed_by on the children.
    let probed = w.tool("probe").args(["--config", &cfg, "--no-metrics"]).run();
    probed.code(1);
    assert_eq!(probed.named("check", "worker")["suppressed_by"], "gateway");

    let r = recover(&w, &cfg).args(["--now", "2026-11-23T10:00:00Z"]).stdin(&probed.stdout).run();
    r.code(1);
    assert_eq!(outcome(&r, "gateway"), "failed");
    let api = r.named("recovery", "api");
    assert_eq!(
        (api["outcome"].as_str(), api["detail"].as_str()),
        (Some("skipped"), Some("depends on 'gateway', which is still down; not restarted"))
    );
    assert_eq!(r.named("recovery", "worker")["detail"], "depends on 'api', which is still down; not restarted");
    assert_eq!(lines(&order), ["gateway"]);
    assert!(
        r.stdout.find("\"name\":\"gateway\",\"outcome\"").unwrap()
            < r.stdout.find("\"name\":\"api\",\"outcome\"").unwrap()
    );

    // Once the gateway can start, api and plain come back with it; worker is restarted.
    std::fs::write(&allow, "").unwrap();
    let r = recover(&w, &cfg).args(["--now", "2026-11-23T10:10:00Z"]).stdin(&probed.stdout).run();
    r.code(0);
    let acted: Vec<String> = r.records()[4..]
        .iter()
        .map(|v| {
            format!(
                "{}:{}:{}",
                v["kind"].as_str().unwrap(),
                v["name"].as_str().unwrap(),
                v["status"].as_str().or(v["outcome"].as_str()).unwrap()
            )
        })
        .collect();
    assert_eq!(
        acted,
        [
            "check:gateway:up",
            "recovery:gateway:recovered",
            "check:api:up",
            "check:worker:up",
            "recovery:worker:recovered",
            "check:plain:up"
        ]
    );
    assert_eq!(lines(&order), ["gateway", "gateway", "worker"]);
}

#[test]
fn commands_in_the_stream_are_never_run() {
    let w = Workdir::new("recover-stream-cmd");
    let pwned = w.path("pwned");
    let cfg = config(&w, json!([{"name": "plain", "type": "port", "port": closed_port()}]));
    let evil = format!("touch {}", q(&pwned));
    let input: String = [
        json!({"kind": "check", "name": "plain", "status": "down", "restart_command": evil}),
        json!({"kind": "check", "name": "ghost", "status": "down", "restart_command": evil, "command": evil}),
        json!({"name": "kit-line", "status": "down", "restart_command": evil}),
    ]
    .iter()
    .map(|v| format!("{v}\n"))
    .collect();
    let r = recover(&w, &cfg).stdin(&input).run();
    r.code(1);
    let want: Vec<Value> = input.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(r.records(), want, "passed through unchanged, nothing added");
    assert!(!pwned.exists());
    assert!(!w.path("home/state").exists());
}

#[test]
fn dry_run_says_what_it_would_do_and_changes_nothing() {
    let w = Workdir::new("recover-dry");
    let ran = w.path("ran");
    let cfg = config(
        &w,
        json!([
            {"name": "api", "type": "port", "port": closed_port(), "restart_command": format!("touch {}", q(&ran))},
            {"name": "worker", "type": "port", "port": closed_port(), "depends_on": ["api"], "restart_command": "true"}
        ]),
    );
    let r = recover(&w, &cfg).arg("--dry-run").stdin(format!("{}{}", down("worker"), down("api"))).run();
    r.code(1);
    let api = r.named("recovery", "api");
    assert_eq!(
        (api["outcome"].as_str(), api["dry_run"].as_bool(), api["attempt"].as_u64()),
        (Some("skipped"), Some(true), Some(1))
    );
    assert_eq!(api["detail"], format!("dry run: would run the restart command: touch {}", q(&ran)));
    let worker = r.named("recovery", "worker");
    assert_eq!(worker["detail"], "dry run: depends on 'api', which is still down; not restarted");
    assert!(!ran.exists());
    assert!(!w.path("home/state").exists() && !w.path("home/logs").exists(), "no ledger, no log");
}

#[test]
fn text_format_for_people() {
    let w = Workdir::new("recover-text");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cfg = config(
        &w,
        json!([
            {"name": "api", "type": "port", "port": port, "verify_delay_seconds": 0, "restart_command": "true"},
            {"name": "db", "type": "port", "port": closed_port()}
        ]),
    );
    let input = format!("{}{}", down("api"), down("db"));
    let r = recover(&w, &cfg).args(["--format", "text"]).stdin(&input).run();
    r.code(1);
    let out: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(out[0], "[FAIL] api - refused");
    assert_eq!(out[1], "[FAIL] db - refused");
    // The latency, "(Nms)", is there when the connect took a millisecond or more.
    assert!(out[2].starts_with(&format!("[OK] api - port {port} open")), "{r:?}");
    assert!(
        out[3].starts_with(&format!("[RECOVERED] api - restarted; check up: port {port} open; attempt 1/3")),
        "{r:?}"
    );
    assert_eq!(out.last(), Some(&"1 recovered; 1 still down."));
    drop(listener);
}

#[test]
fn a_corrupt_ledger_stops_the_run_before_any_restart() {
    let w = Workdir::new("recover-corrupt");
    let ran = w.path("ran");
    let cfg = config(
        &w,
        json!([{"name": "api", "type": "port", "port": closed_port(), "restart_command": format!("touch {}", q(&ran))}]),
    );
    w.write("home/state/recovery.json", "{\"api\": {\"attempts\": 2,");
    let r = recover(&w, &cfg).stdin(down("api")).run();
    r.code(2);
    r.stderr_has("recover: ").stderr_has("recovery.json:1:");
    assert!(!ran.exists());
    assert_eq!(r.kind("check").len(), 1, "the input still passed through");
    assert_eq!(w.read("home/state/recovery.json"), "{\"api\": {\"attempts\": 2,", "never silently replaced");
}

#[test]
fn state_dir_and_log_dir_can_move_and_the_kits_ledger_reads() {
    let w = Workdir::new("recover-dirs");
    let cfg = config(
        &w,
        json!([{"name": "Web Server", "type": "port", "port": closed_port(), "verify_delay_seconds": 0, "restart_command": "true"}]),
    );
    // The Agent Ops Kit's ledger: two attempts, the last at 2025-01-15T10:30:00Z.
    w.write("elsewhere/recovery.json", r#"{"Web Server": {"attempts": 2, "last_attempt": 1736937000.0}}"#);
    let run = |t: &str| {
        recover(&w, &cfg)
            .args(["--state-dir", &w.path("elsewhere").display().to_string(), "--now", t])
            .env("AGENT_OPS_LOG_DIR", w.path("mylogs"))
            .stdin(down("Web Server"))
            .run()
    };
    assert_eq!(outcome(&run("2025-01-15T10:31:00Z"), "Web Server"), "cooldown");
    let r = run("2025-01-15T10:36:00Z");
    assert_eq!(r.named("recovery", "Web Server")["attempt"], 3);
    let ledger: Value = serde_json::from_str(&w.read("elsewhere/recovery.json")).unwrap();
    assert_eq!(ledger["Web Server"]["attempts"], 3);
    assert!(w.read("mylogs/recovery.log").contains("RESTART UNVERIFIED: Web Server (attempt 3/3"));
    assert!(!w.path("home/state").exists() && !w.path("home/logs").exists());
}

#[test]
fn without_services_json_nothing_is_restarted_and_it_says_so() {
    let w = Workdir::new("recover-noconfig");
    let r = w.tool("recover").stdin(down("api")).run();
    r.code(1);
    r.stderr_has("services.json: no such file; nothing can be restarted (1 down: api)");
    assert_eq!(r.records().len(), 1);
    let up = json!({"kind": "check", "name": "api", "status": "up"}).to_string();
    let r = w.tool("recover").stdin(format!("{up}\n")).run();
    r.code(0);
    assert!(r.stderr.is_empty());
}

// The pipe contract.

#[test]
fn empty_input_is_empty_output() {
    let w = Workdir::new("recover-empty");
    let cfg = config(&w, json!([{"name": "api", "type": "port", "port": 1, "restart_command": "true"}]));
    let r = recover(&w, &cfg).stdin("").run();
    r.code(0);
    assert!(r.stdout.is_empty() && r.stderr.is_empty(), "{r:?}");
}

#[test]
fn a_malformed_line_is_named_and_the_rest_is_processed() {
    let w = Workdir::new("recover-bad");
    let ran = w.path("ran");
    let cfg = config(
        &w,
        json!([{"name": "api", "type": "port", "port": closed_port(), "verify_delay_seconds": 0,
                "restart_command": format!("touch {}", q(&ran))}]),
    );
    let input =
        format!("{{\"kind\":\"check\",\"name\":\"db\",\"status\":\"up\"}}\n{{\"name\": oops}}\n{}", down("api"));
    let r = recover(&w, &cfg).stdin(&input).run();
    r.code(1); // a service is still down: worse than a rejected line
    r.stderr_has("recover: stdin:2: expected value at column 10");
    assert_eq!(r.kind("check").len(), 3);
    assert!(ran.exists(), "the valid line after the bad one was acted on");

    let up = "{\"kind\":\"check\",\"name\":\"db\",\"status\":\"up\"}\n{\"name\": oops}\n";
    recover(&w, &cfg).stdin(up).run().code(3).stderr_has("recover: stdin:2: expected value at column 10");
    let strict = recover(&w, &cfg).arg("--strict").stdin(&input).run();
    strict.code(2);
    strict.stderr_has("recover: stdin:2: expected value at column 10");
}

#[test]
fn stdout_closed_early_is_silent_success() {
    let w = Workdir::new("recover-head");
    let cfg = config(&w, json!([]));
    let input: String = (0..4000)
        .map(|i| {
            format!(
                "{}\n",
                json!({"kind": "check", "name": format!("svc-{i:04}"), "status": "up", "detail": "x".repeat(80)})
            )
        })
        .collect();
    let first = recover(&w, &cfg).first_line_then_close(input);
    assert!(first.contains("\"name\":\"svc-0000\""), "{first}");
}

#[test]
fn records_pass_through_as_they_are_read() {
    let w = Workdir::new("recover-stream");
    let cfg = config(&w, json!([]));
    let mut child = recover(&w, &cfg).arg("--line-buffered").spawn();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    for i in 0..3 {
        let line =
            format!("{}\n", json!({"kind": "check", "name": format!("s{i}"), "status": "up", "extra": {"k": i}}));
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.flush().unwrap();
        let mut got = String::new();
        out.read_line(&mut got).unwrap(); // before the input ends
        assert_eq!(serde_json::from_str::<Value>(&got).unwrap(), serde_json::from_str::<Value>(&line).unwrap());
    }
    drop(stdin);
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

// ---------------------------------------------------------------- recover --follow

/// The records a resident tool writes, read by a thread as they come.
pub(crate) struct Follower {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<Value>,
}

impl Follower {
    pub(crate) fn start(mut tool: crate::util::Tool) -> Follower {
        tool.cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = tool.cmd.spawn().unwrap();
        let stdin = child.stdin.take();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                if tx.send(serde_json::from_str(&l).unwrap()).is_err() {
                    return;
                }
            }
        });
        Follower { child, stdin, lines }
    }

    pub(crate) fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// The next record, within `secs` (scaled).
    pub(crate) fn next(&self, secs: f64) -> Option<Value> {
        self.lines.recv_timeout(crate::util::limit(secs)).ok()
    }

    /// Records until one satisfies `f` (which is returned last), within `secs`.
    pub(crate) fn until(&self, secs: f64, f: impl Fn(&Value) -> bool) -> Vec<Value> {
        let end = Instant::now() + crate::util::limit(secs);
        let mut got = Vec::new();
        while let Ok(v) = self.lines.recv_timeout(end.saturating_duration_since(Instant::now())) {
            let done = f(&v);
            got.push(v);
            if done {
                return got;
            }
        }
        panic!("nothing matched within {secs} s; got {got:?}");
    }

    pub(crate) fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// Wait for the exit (within `secs`); the status code and stderr.
    pub(crate) fn wait(mut self, secs: f64) -> (Option<i32>, String) {
        drop(self.stdin.take());
        let pid = self.child.id();
        assert!(wait_until(secs, || self.child.try_wait().unwrap().is_some()), "pid {pid} did not exit");
        let mut err = String::new();
        std::io::Read::read_to_string(&mut self.child.stderr.take().unwrap(), &mut err).unwrap();
        (self.child.wait().unwrap().code(), err)
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_recovery(v: &Value, name: &str) -> bool {
    v["kind"] == "recovery" && v["name"] == name
}

#[test]
fn follow_brings_a_killed_web_server_back_once_and_passes_records_at_once() {
    let w = Workdir::new("recover-follow-web");
    let port = closed_port();
    let script = web_start_script(&w, port);
    let server = KillOnDrop(w.path("web.pid"));
    let cfg = config(
        &w,
        json!([{
            "name": "web", "type": "url", "target": format!("http://127.0.0.1:{port}/"), "timeout_seconds": 5,
            "restart_command": format!("sh {}", q(&script)), "restart_timeout_seconds": 30, "verify_delay_seconds": 0.2
        }]),
    );
    assert!(std::process::Command::new("sh").arg(&script).status().unwrap().success());
    server.kill();

    let mut f = Follower::start(recover(&w, &cfg).args(["--follow", "--settle", "1"]));
    let first = json!({"kind": "check", "name": "web", "type": "url", "status": "down", "detail": "refused", "n": 0});
    let t0 = Instant::now();
    f.send(&format!("{first}\n"));
    // Passed on at once, before anything else is written and before the restart.
    assert_eq!(f.next(10.0), Some(first));
    let got = f.until(40.0, |v| is_recovery(v, "web"));
    let took = t0.elapsed();
    let rec = got.last().unwrap();
    assert_eq!((rec["outcome"].as_str(), rec["verified"].as_bool()), (Some("recovered"), Some(true)), "{got:?}");
    let fresh = &got[got.len() - 2];
    assert_eq!((fresh["kind"].as_str(), fresh["status"].as_str()), (Some("check"), Some("up")));
    assert!(took >= std::time::Duration::from_secs(1), "the settle window is waited: {took:?}");
    eprintln!("down record to recovery record: {took:?}");

    // The stale down records a watching probe keeps sending pass through; no second restart.
    for n in 1..=5 {
        let again =
            json!({"kind": "check", "name": "web", "type": "url", "status": "down", "detail": "refused", "n": n});
        f.send(&format!("{again}\n"));
        assert_eq!(f.next(10.0), Some(again));
    }
    assert!(f.next(2.0).is_none(), "nothing more: no restart, no cooldown record");
    f.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, err) = f.wait(10.0);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(lines(&w.path("restarts.log")).len(), 2, "started by hand, then once by recover");
    let ledger: Value = serde_json::from_str(&w.read("home/state/recovery.json")).unwrap();
    assert_eq!(ledger["web"]["attempts"], 1);
}

#[test]
fn follow_restarts_parents_first_within_the_settle_window() {
    let w = Workdir::new("recover-follow-deps");
    let order = w.path("order");
    let gw = w.path("gw.up");
    let cfg = config(
        &w,
        json!([
            {"name": "api", "type": "command", "command": format!("test -f {} || exit 2", q(&gw)),
             "depends_on": ["gateway"], "verify_delay_seconds": 0,
             "restart_command": format!("echo api >> {}", q(&order))},
            {"name": "gateway", "type": "command", "command": format!("test -f {} || exit 2", q(&gw)),
             "verify_delay_seconds": 0, "restart_command": format!("echo gateway >> {}; touch {}", q(&order), q(&gw))}
        ]),
    );
    let mut f = Follower::start(recover(&w, &cfg).args(["--follow", "--settle", "1.5"]));
    // The child's failure comes first; its parent's a little later, in the same window.
    f.send(&down("api"));
    assert_eq!(f.next(10.0).unwrap()["name"], "api");
    std::thread::sleep(std::time::Duration::from_millis(300));
    f.send(&down("gateway"));
    let got = f.until(30.0, |v| v["kind"] == "check" && v["name"] == "api");
    let names: Vec<String> =
        got.iter().map(|r| format!("{}:{}", r["kind"].as_str().unwrap(), r["name"].as_str().unwrap())).collect();
    assert_eq!(names, ["check:gateway", "check:gateway", "recovery:gateway", "check:api"], "{got:?}");
    assert_eq!(got[3]["status"], "up", "the child came back with its parent: checked again, not restarted");
    let (code, err) = f.wait(10.0);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(lines(&order), ["gateway"]);
}

#[test]
fn follow_acts_on_what_is_pending_when_the_input_ends() {
    let w = Workdir::new("recover-follow-eof");
    let flag = w.path("up");
    let cfg = config(
        &w,
        json!([{"name": "api", "type": "command", "command": format!("test -f {} || exit 2", q(&flag)),
                "verify_delay_seconds": 0, "restart_command": format!("touch {}", q(&flag))}]),
    );
    let mut f = Follower::start(recover(&w, &cfg).args(["--follow", "--settle", "600"]));
    f.send(&down("api"));
    assert_eq!(f.next(10.0).unwrap()["status"], "down");
    drop(f.stdin.take());
    let got = f.until(20.0, |v| is_recovery(v, "api"));
    assert_eq!(got.last().unwrap()["outcome"], "recovered");
    let (code, err) = f.wait(10.0);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn follow_sigterm_during_a_slow_restart_finishes_it_writes_its_record_and_exits_0() {
    let w = Workdir::new("recover-follow-term");
    let (flag, began) = (w.path("up"), w.path("began"));
    let cfg = config(
        &w,
        json!([{"name": "api", "type": "command", "command": format!("test -f {} || exit 2", q(&flag)),
                "verify_delay_seconds": 0, "restart_timeout_seconds": 30,
                "restart_command": format!("touch {}; sleep 2; touch {}", q(&began), q(&flag))}]),
    );
    let mut f = Follower::start(recover(&w, &cfg).args(["--follow", "--settle", "0.2"]));
    f.send(&down("api"));
    assert_eq!(f.next(10.0).unwrap()["status"], "down");
    assert!(wait_until(20.0, || began.exists()), "the restart did not start");
    f.signal(nix::sys::signal::Signal::SIGTERM);
    let got = f.until(20.0, |v| is_recovery(v, "api"));
    assert_eq!(got.last().unwrap()["outcome"], "recovered", "{got:?}");
    let (code, err) = f.wait(10.0);
    assert_eq!(code, Some(0), "{err}");
    let ledger: Value = serde_json::from_str(&w.read("home/state/recovery.json")).unwrap();
    assert!(ledger["api"]["last_success"].as_f64().is_some());
}
