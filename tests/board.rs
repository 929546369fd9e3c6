//! board against real processes: the kit's board file round-trips, concurrent writers lose
//! nothing, writers killed at random points never leave an unreadable board, a corrupt board
//! is kept aside, and the pipe contract of `ingest`.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::{Run, Workdir};

const KIT_BOARD: &str = include_str!("fixtures/board/kit-board.json");

/// A work dir whose home has the kit's board.
fn with_kit_board(name: &str) -> Workdir {
    let w = Workdir::new(name);
    w.write("home/state/board.json", KIT_BOARD);
    w
}

fn board_json(w: &Workdir) -> Value {
    let text = w.read("home/state/board.json");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("board.json is not JSON ({e}):\n{text}"))
}

fn ids(board: &Value) -> Vec<String> {
    board["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_string()).collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn board(w: &Workdir, args: &[&str]) -> Run {
    w.tool("board").args(args).run()
}

#[test]
fn board_the_kits_file_round_trips_byte_for_byte() {
    let w = with_kit_board("board-roundtrip");
    let r = board(&w, &["list"]);
    r.code(0);
    let tasks = r.kind("task");
    assert_eq!(tasks.len(), 3);
    let cafe = &tasks[1];
    assert_eq!(cafe["title"], "Café menu — 日本");
    assert_eq!(cafe["estimate_hours"], 3.5);
    assert_eq!(cafe["links"][0]["rel"], "runbook");
    assert_eq!(cafe["createdAt"], "2025-01-14T08:00:00.123456Z", "the kit's timestamps are kept as written");

    let added = board(&w, &["add", "Temporary"]);
    added.code(0);
    let id = added.records()[0]["id"].as_str().unwrap().to_string();
    assert_eq!(w.read("home/state/board.json.bak"), KIT_BOARD, "the backup is the previous version");
    let after = board_json(&w);
    assert_eq!(after["team"], "sre");
    assert_eq!(after["settings"], json!({"wip_limit": 5, "archived": null}));
    board(&w, &["rm", &id]).code(0);
    assert_eq!(w.read("home/state/board.json"), KIT_BOARD, "add then rm gives the kit's bytes back");
    assert_eq!(files_in(&w.path("home/state")), ["board.json", "board.json.bak", "board.lock"]);
}

#[test]
fn board_add_writes_the_record_and_the_kits_line() {
    let w = Workdir::new("board-add");
    let r = board(
        &w,
        &["add", "Fix", "API", "timeout", "--owner", "ops-agent", "--priority", "high", "--tag", "ops,urgent"],
    );
    r.code(0);
    let t = &r.records()[0];
    assert_eq!(t["kind"], "task");
    assert_eq!(t["title"], "Fix API timeout");
    assert_eq!(t["column"], "open");
    assert_eq!(t["tags"], json!(["ops", "urgent"]));
    let id = t["id"].as_str().unwrap();
    assert!(id.len() == 13 && id.starts_with("task-"), "{id}");
    let text = board(&w, &["add", "Rotate certs", "--format", "text"]);
    text.code(0);
    let line = text.stdout.trim_end();
    assert!(line.starts_with("Created: task-") && line.ends_with(" — Rotate certs"), "{line}");
    let b = board_json(&w);
    assert_eq!(b["columns"], json!(["open", "in-progress", "in-review", "done"]));
    assert_eq!(ids(&b).len(), 2);
    board(&w, &["add", " "]).code(2).stderr_has("board: a task needs a title");
    board(&w, &["add", "x", "--priority", "urgent"]).code(2);
}

#[test]
fn board_move_done_edit_rm_by_id_prefix() {
    let w = with_kit_board("board-move");
    let r = board(&w, &["move", "abc", "in-review", "--format", "text", "--now", "2026-11-23T10:00:00Z"]);
    r.code(0);
    assert_eq!(r.stdout, "Moved: task-abc123 — Investigate high latency on API (open → in-review)\n");
    let b = board_json(&w);
    assert_eq!(b["tasks"][0]["column"], "in-review");
    assert_eq!(b["tasks"][0]["updatedAt"], "2026-11-23T10:00:00.000Z");
    assert_eq!(b["tasks"][0]["createdAt"], "2025-01-15T10:30:00Z");

    board(&w, &["move", "ab", "done"]).code(2).stderr_has("'ab' is ambiguous: it matches task-abc123, task-abd999");
    board(&w, &["show", "zzz"]).code(2).stderr_has("board: no task matches 'zzz'");
    board(&w, &["move", "abc", "doing"])
        .code(2)
        .stderr_has("unknown column 'doing': this board's columns are open, in-progress, in-review, done");

    let d = board(&w, &["done", "task-abd", "0f1e"]);
    d.code(0);
    assert_eq!(d.kind("task").iter().map(|t| t["column"].as_str().unwrap()).collect::<Vec<_>>(), ["done", "done"]);

    let e = board(&w, &["edit", "abc", "--owner", "alice", "--priority", "critical", "--untag", "performance"]);
    e.code(0);
    let t = &e.records()[0];
    assert_eq!((t["owner"].as_str(), t["priority"].as_str()), (Some("alice"), Some("critical")));
    assert_eq!(t["tags"], json!(["ops"]));
    board(&w, &["edit", "abc"]).code(2).stderr_has("nothing to change");

    let gone = board(&w, &["rm", "abc", "--format", "text"]);
    gone.code(0);
    assert_eq!(gone.stdout, "Removed: task-abc123 — Investigate high latency on API\n");
    assert_eq!(ids(&board_json(&w)), ["task-abd999", "task-0f1e2d3c"]);
    // A failed command writes nothing.
    let before = w.read("home/state/board.json");
    board(&w, &["done", "abd", "nope"]).code(2);
    assert_eq!(w.read("home/state/board.json"), before);
}

#[test]
fn board_columns_are_the_boards_own() {
    let w = Workdir::new("board-columns");
    w.write("team.json", r#"{"columns": ["todo", "doing", "shipped"], "tasks": []}"#);
    let r = w.tool("board").args(["--board", "team.json", "add", "Write docs"]).run();
    r.code(0);
    let id = r.records()[0]["id"].as_str().unwrap().to_string();
    assert_eq!(r.records()[0]["column"], "todo");
    let d = w.tool("board").args(["--board", "team.json", "done", &id]).run();
    d.code(0);
    assert_eq!(d.records()[0]["column"], "shipped");
    w.tool("board")
        .args(["--board", "team.json", "move", &id, "in-progress"])
        .run()
        .code(2)
        .stderr_has("this board's columns are todo, doing, shipped");
    assert_eq!(files_in(&w.root), ["team.json", "team.json.bak", "team.lock"]);
}

#[test]
fn board_list_filters() {
    let w = with_kit_board("board-list");
    let titles = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["list"];
        a.extend_from_slice(args);
        let r = board(&w, &a);
        r.code(0);
        r.kind("task").iter().map(|t| t["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(titles(&["--column", "open"]), ["task-abc123"]);
    assert_eq!(titles(&["--owner", "ops-agent", "--owner", "agent-1"]), ["task-abc123", "task-abd999"]);
    assert_eq!(titles(&["--tag", "ops", "--tag", "performance"]), ["task-abc123"]);
    assert!(titles(&["--tag", "ops", "--tag", "tls"]).is_empty());
    assert_eq!(titles(&["--priority", "low"]), ["task-0f1e2d3c"]);
    assert_eq!(titles(&["--active"]), ["task-abc123", "task-abd999"]);
    assert_eq!(titles(&["--search", "CAFÉ"]), ["task-abd999"]);
    board(&w, &["list", "--column", "Open"]).code(2).stderr_has("unknown column 'Open'");
    let text = board(&w, &["list", "--format", "text"]);
    text.code(0);
    assert!(
        text.stdout.lines().next().unwrap().starts_with("task-abc123    open         high      agent-1    Investigate"),
        "{}",
        text.stdout
    );
}

#[test]
fn board_stalled_uses_the_config_and_exits_1() {
    let w = with_kit_board("board-stalled");
    // task-abd999 is in progress, last changed 2025-01-15T09:00:00.654321Z.
    let r = board(&w, &["stalled", "--now", "2025-01-16T10:00:00Z"]);
    r.code(1);
    let t = &r.kind("task")[0];
    assert_eq!(t["id"], "task-abd999");
    assert_eq!(t["stalled_hours"], 25.0);
    board(&w, &["stalled", "--now", "2025-01-15T12:00:00Z"]).code(0);
    w.write("home/config/services.json", r#"{"services": [], "stalled_task_hours": 2}"#);
    let r = board(&w, &["stalled", "--now", "2025-01-15T12:00:00Z", "--format", "text"]);
    r.code(1);
    assert_eq!(
        r.stdout,
        "STALLED: ops-agent: Café menu — 日本 (since 2025-01-15T09:00:00.654321Z) [task-abd999, 3h]\n"
    );
    board(&w, &["stalled", "--hours", "4", "--now", "2025-01-15T12:00:00Z"]).code(0);
    let r = board(&w, &["stalled", "--hours", "1", "--column", "open", "--now", "2025-01-15T12:00:00Z"]);
    r.code(1);
    assert_eq!(r.kind("task")[0]["id"], "task-abc123");
}

fn uptime(name: &str, pct: f64) -> String {
    format!(
        "{}\n",
        json!({"kind":"uptime","name":name,"window_days":1,"uptime_percent":pct,"total_checks":288,"failures":29,
               "avg_latency_ms":143.2,"status":"ok","timestamp":"2026-11-23T00:00:00.000Z"})
    )
}

#[test]
fn board_ingest_makes_each_task_once() {
    let w = Workdir::new("board-ingest");
    let alert = json!({"kind":"alert","topic":"health-check","level":"critical","title":"db is down","message":"refused",
                       "sinks":[],"timestamp":"2026-11-23T00:00:00.000Z"});
    let input = format!("{}{}{}{alert}\n", uptime("API", 90.0), uptime("Web", 99.9), uptime("Queue", 94.99));
    let r = w.tool("board").args(["ingest", "--tasks-only"]).stdin(&input).run();
    r.code(0);
    let made = r.kind("task");
    let titles: Vec<&str> = made.iter().map(|t| t["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Investigate: API at 90.0% uptime", "Investigate: Queue at 94.99% uptime", "db is down"]);
    assert_eq!(made[0]["description"], "29 failures in 288 checks. Avg latency: 143.2ms");
    assert_eq!(made[0]["tags"], json!(["auto-generated", "ops", "uptime"]));
    assert_eq!((made[0]["owner"].as_str(), made[0]["priority"].as_str()), (Some("ops-agent"), Some("high")));
    assert_eq!(made[2]["priority"], "critical");

    let again = w.tool("board").args(["ingest", "--verbose", "--tasks-only"]).stdin(&input).run();
    again.code(0);
    assert!(again.stdout.is_empty(), "{again:?}");
    again.stderr_has("board: already open as task-");
    assert_eq!(ids(&board_json(&w)).len(), 3);

    // By default the input passes through, each record followed by the task it made.
    let pass = w.tool("board").arg("ingest").stdin(uptime("Cache", 50.0)).run();
    pass.code(0);
    let kinds: Vec<String> = pass.records().iter().map(|r| r["kind"].as_str().unwrap().to_string()).collect();
    assert_eq!(kinds, ["uptime", "task"]);
    assert_eq!(pass.kind("task")[0]["subject"], "uptime:Cache");
    // The same service at another percentage is the same open problem: no second task.
    let moved = w.tool("board").args(["ingest", "--tasks-only"]).stdin(uptime("Cache", 61.5)).run();
    moved.code(0);
    assert!(moved.stdout.is_empty(), "{moved:?}");
    let text = w.tool("board").args(["ingest", "--format", "text"]).stdin(uptime("Mail", 10.0)).run();
    text.code(0);
    assert_eq!(text.stdout, "Created task: Investigate: Mail at 10.0% uptime\n");
}

#[test]
fn board_ingest_empty_input_is_empty_output() {
    let w = Workdir::new("board-ingest-empty");
    let r = w.tool("board").arg("ingest").stdin("").run();
    r.code(0);
    assert!(r.stdout.is_empty() && r.stderr.is_empty(), "{r:?}");
    assert!(!w.path("home/state/board.json").exists(), "nothing to make, nothing written");
}

#[test]
fn board_ingest_malformed_line_is_named_and_skipped() {
    let w = Workdir::new("board-ingest-bad");
    let input = format!("{}{{\"kind\": oops}}\n\n{}", uptime("A", 1.0), uptime("B", 2.0));
    let r = w.tool("board").arg("ingest").stdin(&input).run();
    r.code(3);
    r.stderr_has("board: stdin:2: expected value at column 10");
    assert_eq!(r.kind("task").len(), 2);
    let w2 = Workdir::new("board-ingest-strict");
    let strict = w2.tool("board").args(["ingest", "--strict"]).stdin(&input).run();
    strict.code(2);
    strict.stderr_has("board: stdin:2: expected value at column 10");
    assert!(!w2.path("home/state/board.json").exists(), "a fatal input error writes nothing");
    let unreadable = w.tool("board").arg("ingest").stdin("{\"kind\":\"uptime\",\"uptime_percent\":3}\n").run();
    unreadable.code(3);
    unreadable.stderr_has("board: stdin:1: uptime record without a name");
}

/// Read one line of the tool's stdout, then close it, like `| head -1`.
fn read_one_line_then_close(w: &Workdir, args: &[&str], input: String) {
    let first = w.tool("board").args(args).first_line_then_close(input);
    assert!(first.starts_with("{\"kind\":"), "{first}");
}

#[test]
fn board_stdout_closed_early_is_silent_success() {
    let w = Workdir::new("board-head");
    let input: String = (0..3000).map(|i| uptime(&format!("service-{i:04}-{}", "x".repeat(40)), 50.0)).collect();
    read_one_line_then_close(&w, &["ingest"], input);
    assert_eq!(ids(&board_json(&w)).len(), 3000, "the board was written before the output");
    read_one_line_then_close(&w, &["list"], String::new());
}

#[test]
fn board_a_corrupt_board_is_kept_aside_and_the_backup_used() {
    let w = with_kit_board("board-corrupt");
    board(&w, &["add", "second version"]).code(0);
    let good = w.read("home/state/board.json");
    board(&w, &["add", "third version"]).code(0);
    assert_eq!(w.read("home/state/board.json.bak"), good);
    w.write("home/state/board.json", "{\n  \"columns\": [\n    \"open\",,\n");
    let state = w.path("home/state");

    let r = board(&w, &["list"]);
    r.code(0);
    r.stderr_has("state/board.json is not valid JSON (line 3, column 12: expected value); using the backup ");
    assert_eq!(r.kind("task").len(), 4, "the backup's tasks");
    assert_eq!(files_in(&state), ["board.json", "board.json.bak", "board.lock"], "readers move nothing");

    let r = board(&w, &["add", "after the crash", "--now", "2026-11-23T10:30:00.123Z"]);
    r.code(0);
    r.stderr_has("is not valid JSON (line 3, column 12: expected value); kept it as ");
    r.stderr_has("board.json.corrupt-20261123T103000.123Z; using the backup ");
    assert_eq!(w.read("home/state/board.json.corrupt-20261123T103000.123Z"), "{\n  \"columns\": [\n    \"open\",,\n");
    let b = board_json(&w);
    assert_eq!(ids(&b).len(), 5);
    assert_eq!(b["tasks"][4]["title"], "after the crash");
    assert_eq!(w.read("home/state/board.json.bak"), good, "the backup stays the good version");
    let quiet = board(&w, &["list"]);
    quiet.code(0);
    assert!(quiet.stderr.is_empty(), "{quiet:?}");
}

#[test]
fn board_with_no_usable_backup_refuses_to_write() {
    let w = Workdir::new("board-nobackup");
    w.write("home/state/board.json", "{\"tasks\": [1, 2]}");
    let r = board(&w, &["add", "x"]);
    r.code(2);
    r.stderr_has("is not a board (tasks[0]: expected an object), and there is no backup");
    r.stderr_has("nothing was changed");
    w.write("home/state/board.json.bak", "[]");
    board(&w, &["add", "x"]).code(2).stderr_has("board.json.bak is not a board");
    board(&w, &["list"]).code(2);
    assert_eq!(w.read("home/state/board.json"), "{\"tasks\": [1, 2]}");
    assert_eq!(files_in(&w.path("home/state")), ["board.json", "board.json.bak", "board.lock"]);
}

#[test]
fn board_waits_for_the_kits_lock_and_gives_up_after_the_timeout() {
    let w = Workdir::new("board-lock");
    std::fs::create_dir_all(w.path("home/state")).unwrap();
    // The kit's writers flock state/board.lock; hold it the same way.
    let mut lock = pitcrew::store::Lock::open(&w.path("home/state/board.lock")).unwrap();
    let held = lock.acquire().unwrap();
    let r = board(&w, &["add", "x", "--lock-timeout", "0.3"]);
    r.code(2);
    r.stderr_has("board.lock: another writer still holds the lock after 0.3s; giving up");
    assert!(!w.path("home/state/board.json").exists());

    let child = w.tool("board").args(["add", "waited"]).spawn();
    let lock_path = w.path("home/state/board.lock");
    assert!(
        crate::util::wait_until(10.0, || crate::util::lock_waiters(&lock_path) == 1),
        "the writer blocks on the lock"
    );
    assert!(!w.path("home/state/board.json").exists(), "the writer waits for the lock");
    drop(held);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(ids(&board_json(&w)).len(), 1);
}

#[test]
#[ignore = "slow: a load run (6 writers x 25 adds); scripts/test.sh runs it"]
fn board_concurrent_writers_lose_nothing_and_ids_never_collide() {
    let w = Workdir::new("board-concurrent");
    let threads: Vec<_> = (0..6)
        .map(|n| {
            let w_root = w.root.clone();
            std::thread::spawn(move || {
                let mut made = Vec::new();
                for i in 0..20 {
                    // Same title, same (fixed) time, from every writer.
                    let out = crate::util::Tool::new("board")
                        .env("AGENT_OPS_HOME", w_root.join("home"))
                        .args(["add", "same title", "--now", "2026-11-23T10:30:00.123Z", "--format", "text"])
                        .run();
                    out.code(0);
                    made.push((n, i, out.stdout));
                }
                made
            })
        })
        .collect();
    let lines: Vec<String> = threads.into_iter().flat_map(|t| t.join().unwrap()).map(|(_, _, s)| s).collect();
    let b = board_json(&w);
    let all = ids(&b);
    assert_eq!(all.len(), 120);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 120, "ids are unique");
    for l in lines {
        let id = l.trim_start_matches("Created: ").split(' ').next().unwrap().to_string();
        assert!(all.contains(&id), "acknowledged {id} is on the board");
    }
}

/// A small random generator for kill delays (the assertions hold whatever it yields).
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[test]
#[ignore = "slow: a kill loop; scripts/test.sh runs it"]
fn board_writers_killed_at_random_points_never_leave_an_unreadable_board() {
    let w = Workdir::new("board-sigkill");
    let home = w.path("home");
    let state = home.join("state");
    // A board of some size, so that a write takes a while.
    let input: String = (0..60).map(|i| uptime(&format!("svc-{i}"), 1.0)).collect();
    w.tool("board").arg("ingest").stdin(input).run().code(0);
    let add = |title: &str| {
        crate::util::Tool::new("board").env("AGENT_OPS_HOME", &home).args(["add", title, "--format", "text"]).spawn()
    };
    // How long an add takes here, to spread the kills over its whole run.
    let t0 = Instant::now();
    for i in 0..5 {
        assert!(add(&format!("warm-{i}")).wait().unwrap().success());
    }
    let span_us = (t0.elapsed().as_micros() as u64 / 5).max(1000) * 5 / 4;
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id()));
    let mut acknowledged: Vec<String> = Vec::new();
    let (mut killed, mut finished) = (0, 0);
    for round in 0..200 {
        let mut child = add(&format!("round-{round}"));
        std::thread::sleep(Duration::from_micros(rng.below(span_us)));
        let _ = child.kill(); // SIGKILL
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            finished += 1;
            let line = String::from_utf8_lossy(&out.stdout);
            if let Some(id) = line.strip_prefix("Created: ").and_then(|l| l.split(' ').next()) {
                acknowledged.push(id.to_string());
            }
        } else {
            killed += 1;
        }
        let text = std::fs::read(state.join("board.json")).unwrap();
        let b: Value = serde_json::from_slice(&text).unwrap_or_else(|e| {
            panic!("round {round}: board.json is unreadable ({e}): {}", String::from_utf8_lossy(&text))
        });
        let on_board: HashSet<&str> =
            b["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
        for id in &acknowledged {
            assert!(on_board.contains(id.as_str()), "round {round}: acknowledged {id} was lost");
        }
        let bak = std::fs::read(state.join("board.json.bak")).unwrap();
        assert!(serde_json::from_slice::<Value>(&bak).is_ok(), "round {round}: the backup is unreadable");
    }
    assert!(killed > 0, "no writer was killed ({finished} finished)");
    // Whatever the killed writers left is cleaned up by the next one.
    assert!(add("last").wait().unwrap().success());
    assert_eq!(files_in(&state), ["board.json", "board.json.bak", "board.lock"]);
}

#[test]
fn board_render_draws_columns_and_markdown() {
    let w = with_kit_board("board-render");
    let r = board(&w, &["render", "--width", "80"]);
    r.code(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].starts_with("open (1)") && lines[0].contains("│ done (1)"), "{}", r.stdout);
    assert!(lines.iter().all(|l| l.chars().count() <= 80), "{}", r.stdout);
    assert!(r.stdout.contains("Café menu — 日本"), "{}", r.stdout);
    let md = board(&w, &["render", "--format", "markdown", "--active"]);
    md.code(0);
    assert!(
        md.stdout.starts_with("## open (1)\n\n- **Investigate high latency on API** `task-abc123` — high"),
        "{}",
        md.stdout
    );
    assert!(!md.stdout.contains("## done"));
    board(&w, &["render", "--format", "ndjson"]).code(2);
    board(&w, &["list", "--format", "markdown"]).code(2);
    board(&w, &["add", "--help"]).code(0).stdout_has("Examples:");
}
