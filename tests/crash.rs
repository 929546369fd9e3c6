//! Crash safety: tools killed with SIGKILL at changing moments while they write their state.
//! After every kill each file must read, and nothing the tool acknowledged may be lost.
//! (tickmon serve's loop is in tickmon.rs; scripts/reliability/crash.sh runs longer loops.)

use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::http::{HttpServer, Reply};
use crate::util::{Workdir, closed_port, json as pretty, path_str};

/// A fixed sequence of kill delays, different each time, the same each run.
fn delays(n: usize, from_ms: u64, spread_ms: u64) -> Vec<Duration> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Duration::from_millis(from_ms + x % spread_ms)
        })
        .collect()
}

fn kill9(mut child: Child) -> Option<i32> {
    let _ = child.kill();
    child.wait().ok().and_then(|s| s.code())
}

#[test]
#[ignore = "slow: a kill loop; scripts/test.sh runs it"]
fn crash_board_writers_killed_at_random_keep_every_acknowledged_task() {
    let w = Workdir::new("crash-board");
    let board = w.path("home/state/board.json");
    let mut acked = BTreeSet::new();
    for (round, delay) in delays(12, 1, 25).into_iter().enumerate() {
        // Three writers at once; one is killed, the others finish.
        let kids: Vec<Child> = (0..3)
            .map(|k| w.tool("board").args(["add", &format!("task {round}-{k}"), "--owner", "ops"]).spawn())
            .collect();
        std::thread::sleep(delay);
        let mut kids = kids.into_iter();
        kill9(kids.next().unwrap());
        for k in kids {
            let out = k.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let rec: Value = serde_json::from_slice(&out.stdout).unwrap();
            acked.insert(rec["id"].as_str().unwrap().to_string());
        }
        let doc: Value = serde_json::from_slice(&std::fs::read(&board).unwrap()).unwrap_or_else(|e| {
            panic!("board.json does not read after a kill in round {round}: {e}");
        });
        let ids: BTreeSet<String> =
            doc["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_string()).collect();
        let lost: Vec<&String> = acked.difference(&ids).collect();
        assert!(lost.is_empty(), "round {round}: acknowledged tasks lost: {lost:?}");
    }
    // The backup reads too, and no temporary file outlives the next writer.
    let bak: Value = serde_json::from_slice(&std::fs::read(w.path("home/state/board.json.bak")).unwrap()).unwrap();
    assert!(bak["tasks"].is_array());
    w.tool("board").args(["add", "last"]).run().code(0);
    let temps: Vec<String> = std::fs::read_dir(w.path("home/state"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(temps.is_empty(), "{temps:?}");
}

#[test]
#[ignore = "slow: a kill loop; scripts/test.sh runs it"]
fn crash_notify_killed_while_delivering_the_outbox_loses_no_alert() {
    let w = Workdir::new("crash-notify");
    let config = |url: String| {
        w.write(
            "home/config/services.json",
            pretty(&json!({"services": [], "alerting": {"webhook_url": url, "timeout_seconds": 5}})),
        );
    };
    // Queue alerts while the sink is down.
    config(format!("http://127.0.0.1:{}/hook", closed_port()));
    let titles: Vec<String> = (0..6).map(|i| format!("incident {i}")).collect();
    for (i, t) in titles.iter().enumerate() {
        let r = w.tool("notify").args(["send", t, "--topic", &format!("topic-{i}"), "--level", "error"]).run();
        r.code(1);
    }
    let outbox = w.path("home/state/outbox.jsonl");
    assert_eq!(std::fs::read_to_string(&outbox).unwrap().lines().count(), titles.len());

    // A slow sink that remembers what reached it; notify is killed while it waits.
    let got: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let seen = got.clone();
    let sink = HttpServer::start(move |req| {
        let v: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
        for a in v["alerts"].as_array().into_iter().flatten() {
            *seen.lock().unwrap().entry(a["title"].as_str().unwrap_or("").to_string()).or_default() += 1;
        }
        Reply::new(200, "ok").delay(Duration::from_millis(150))
    });
    config(sink.url("/hook"));
    let started = Instant::now();
    let mut kills = 0;
    for delay in delays(8, 20, 300) {
        let child = w.tool("notify").spawn();
        std::thread::sleep(delay);
        if kill9(child).is_none() {
            kills += 1;
        }
        // The outbox reads after every kill: each line an entry.
        for line in std::fs::read_to_string(&outbox).unwrap_or_default().lines() {
            let q: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("outbox line {line:?}: {e}"));
            assert!(q["sinks"].is_array(), "{line}");
        }
    }
    assert!(kills > 0, "some runs were killed mid-way");
    // Runs that finish empty the outbox.
    let r = w.tool("notify").run();
    assert!(r.code == 0 || r.code == 1, "{r:?}");
    w.tool("notify").run().code(0);
    assert_eq!(std::fs::read_to_string(&outbox).unwrap_or_default().trim(), "");
    let got = got.lock().unwrap();
    for t in &titles {
        assert!(got.get(t).copied().unwrap_or(0) >= 1, "'{t}' was never delivered: {got:?}");
    }
    assert!(started.elapsed() < crate::util::limit(30.0));
}

#[test]
fn crash_recover_killed_mid_restart_still_honours_the_attempt() {
    let w = Workdir::new("crash-recover");
    let pidfile = w.path("restart.pid");
    w.write(
        "home/config/services.json",
        pretty(&json!({"services": [{
            "name": "api", "type": "port", "port": closed_port(), "verify_delay_seconds": 0,
            "restart_command": format!("echo $$ > {}; sleep 20", path_str(&pidfile)),
            "restart_timeout_seconds": 30}]})),
    );
    let down = json!({"kind": "check", "name": "api", "status": "down", "detail": "refused"}).to_string();
    let mut child = w.tool("recover").spawn();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(format!("{down}\n").as_bytes()).unwrap();
    }
    assert!(crate::util::wait_until(10.0, || pidfile.exists()), "the restart command started");
    let _ = child.kill();
    let _ = child.wait();
    // The command's own process group outlives recover; stop it.
    if let Ok(pid) = std::fs::read_to_string(&pidfile).unwrap_or_default().trim().parse::<i32>() {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    let ledger: Value = serde_json::from_str(&w.read("home/state/recovery.json")).unwrap();
    assert_eq!(ledger["api"]["attempts"], 1, "the attempt was saved before the command ran");
    let r = w.tool("recover").stdin(format!("{down}\n")).run();
    r.code(1);
    assert_eq!(r.kind("recovery")[0]["outcome"], "cooldown", "{r:?}");
}

/// A metrics directory of ten closed days, each day a different number of lines.
fn metrics_days(w: &Workdir) -> BTreeMap<String, u64> {
    let mut want = BTreeMap::new();
    for d in 10..20u64 {
        let day = format!("2026-11-{d}");
        let n = 4000 + 37 * d;
        let mut text = String::new();
        for j in 0..n {
            let status = if j % 7 == 0 { "down" } else { "up" };
            let (h, m, s) = (j / 3600 % 24, j / 60 % 60, j % 60);
            text.push_str(&format!(
                "{{\"timestamp\":\"{day}T{h:02}:{m:02}:{s:02}Z\",\"name\":\"svc-{}\",\"status\":\"{status}\",\"latency_ms\":{j}}}\n",
                j % 3
            ));
        }
        w.write(&format!("m/{day}.jsonl"), text);
        want.insert(day, n);
    }
    want
}

/// Checks per day as rollup counts them; every file must read (exit 0: no corrupt data).
fn checks_per_day(w: &Workdir) -> BTreeMap<String, u64> {
    let dir = w.path("m");
    let run = w
        .tool("rollup")
        .args(["--metrics-dir", &path_str(&dir), "--since", "2026-11-10", "--until", "2026-11-19", "--by", "day"])
        .args(["--now", "2026-11-20T12:00:00Z"])
        .run();
    run.code(0);
    let mut got = BTreeMap::new();
    for r in run.records() {
        *got.entry(r["day"].as_str().unwrap().to_string()).or_insert(0) += r["total_checks"].as_u64().unwrap();
    }
    got
}

fn metrics_files(w: &Workdir) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(w.path("m"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
#[ignore = "slow: a kill loop; scripts/test.sh runs it"]
fn crash_rollup_compact_and_prune_killed_at_random_keep_every_day_whole() {
    let w = Workdir::new("crash-rollup");
    let want = metrics_days(&w);
    let dir = path_str(&w.path("m"));
    let now = "2026-11-20T12:00:00Z";
    let mut killed = 0;
    // The first kill comes at once, so at least one round is always a killed one, whatever
    // the machine's speed; the others land anywhere in the run.
    let mut at = vec![Duration::ZERO];
    at.extend(delays(8, 0, 300));
    for (round, delay) in at.into_iter().enumerate() {
        if !metrics_files(&w).iter().any(|f| f.ends_with(".jsonl")) {
            metrics_days(&w);
            for f in metrics_files(&w).iter().filter(|f| f.ends_with(".gz")) {
                std::fs::remove_file(w.path(&format!("m/{f}"))).unwrap();
            }
        }
        let child = w.tool("rollup").args(["compact", "--metrics-dir", &dir, "--now", now]).spawn();
        std::thread::sleep(delay);
        if kill9(child).is_none() {
            killed += 1;
        }
        assert_eq!(checks_per_day(&w), want, "round {round}: a day changed after compact was killed");
    }
    assert!(killed > 0, "no compaction was killed mid-way");
    // A clean run finishes what the killed ones left: one .gz a day, the same checks, and
    // no temporary file of a killed compaction (a part of a day's gzip each). Whether a
    // random kill left one depends on timing, so one is also left here as a killed writer
    // leaves it: the start of a gzip under the name of a process that is gone.
    w.write("m/.2026-11-12.jsonl.gz.4194303.tmp", [0x1f, 0x8b, 0x08, 0x00]);
    w.tool("rollup").args(["compact", "--metrics-dir", &dir, "--now", now]).run().code(0);
    assert_eq!(checks_per_day(&w), want);
    let files = metrics_files(&w);
    assert_eq!(files.iter().filter(|f| f.ends_with(".jsonl.gz")).count(), 10, "{files:?}");
    assert!(!files.iter().any(|f| f.ends_with(".jsonl") || f.ends_with(".tmp")), "{files:?}");
    // Prune: a day is whole or gone, never part of one; days kept are untouched.
    for (round, delay) in delays(6, 0, 20).into_iter().enumerate() {
        let child =
            w.tool("rollup").args(["prune", "--retention-days", "6", "--metrics-dir", &dir, "--now", now]).spawn();
        std::thread::sleep(delay);
        kill9(child);
        let got = checks_per_day(&w);
        for (day, n) in &want {
            match got.get(day) {
                Some(k) => assert_eq!(k, n, "round {round}: {day} changed"),
                None => assert!(day.as_str() < "2026-11-15", "round {round}: {day} is within retention and gone"),
            }
        }
    }
    w.tool("rollup").args(["prune", "--retention-days", "6", "--metrics-dir", &dir, "--now", now]).run().code(0);
    let kept: BTreeMap<String, u64> = want.into_iter().filter(|(d, _)| d.as_str() >= "2026-11-15").collect();
    assert_eq!(checks_per_day(&w), kept);
}

#[test]
#[ignore = "slow: a kill loop; scripts/test.sh runs it"]
fn crash_cellscan_revive_killed_while_reviving_keeps_every_attempt_in_its_ledger() {
    let w = Workdir::new("crash-cellscan");
    let started = w.path("started");
    w.write(
        "missions/c1/cell.json",
        pretty(&json!({"cell_id": "c1", "mission_name": "m", "status": "active", "isolation_level": "level_1"})),
    );
    w.write(
        "missions/c1/config/policies.json",
        pretty(&json!({
            "auto_revive": "yes",
            "revive_command": format!("echo x >> '{}'; sleep 0.2", path_str(&started)),
            "revive_cooldown_seconds": 0,
            "max_retries": 1_000_000,
            // The agent has no checkpoint: none is needed to revive it here.
            "checkpoint_required": false,
        })),
    );
    w.write(
        "missions/c1/agents/a1.json",
        pretty(&json!({"agent_id": "a1", "role": "lead", "status": "failed", "checkpoint": null})),
    );
    let ledger = w.path("missions/c1/logs/revivals.json");
    for (round, delay) in delays(10, 0, 300).into_iter().enumerate() {
        let child = w.tool("cellscan").args(["revive", &path_str(&w.path("missions"))]).spawn();
        std::thread::sleep(delay);
        kill9(child);
        if ledger.exists() {
            let doc: Value = serde_json::from_slice(&std::fs::read(&ledger).unwrap())
                .unwrap_or_else(|e| panic!("revivals.json does not read after the kill in round {round}: {e}"));
            assert!(doc["a1"]["attempts"].is_u64(), "{doc}");
        }
    }
    // The commands run on in their own process group; let the last one end.
    std::thread::sleep(Duration::from_millis(500));
    let ran = std::fs::read_to_string(&started).unwrap_or_default().lines().count() as u64;
    let doc: Value = serde_json::from_slice(&std::fs::read(&ledger).unwrap()).unwrap();
    let counted = doc["a1"]["attempts"].as_u64().unwrap();
    assert!(ran > 0 && counted >= ran, "{ran} revive commands ran, {counted} attempts counted");
}
