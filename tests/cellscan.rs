//! cellscan against real cells on disk, a heartbeat endpoint that speaks tickmon serve's
//! API, and real revive commands.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::http::{Blackhole, HttpServer, Reply, Seen};
use crate::util::{Workdir, alive, closed_port, json as pretty, wait_until};

const NOW: &str = "2026-11-23T10:30:00Z";
const VALID: &str = "7d3c0a52-1e4b-4f7a-9c2d-5b8e6f1a2c3d";
const FAILED: &str = "0c4b1a7d-1e2f-4a3b-8c5d-8e9f0a1b2c3d";
const STALE: &str = "9b3a0f6c-0d1e-4f2a-9b4c-7d8e9f0a1b2c";

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/missions")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// A missions directory in the workdir holding copies of the example cells named.
fn missions(w: &Workdir, cells: &[&str]) -> PathBuf {
    let m = w.path("missions");
    std::fs::create_dir_all(&m).unwrap();
    for c in cells {
        copy_tree(&examples().join(c), &m.join(c));
    }
    m
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

/// Write a JSON file atomically, so that a watching scan never sees half of it.
fn write_json(p: &Path, v: &Value) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let tmp = p.with_file_name(format!(".{}.tmp", p.file_name().unwrap().to_string_lossy()));
    std::fs::write(&tmp, pretty(v)).unwrap();
    std::fs::rename(&tmp, p).unwrap();
}

/// Set a file's modification time to `secs` seconds before NOW.
fn set_mtime(p: &Path, secs_before_now: i64) {
    let now = time::OffsetDateTime::parse(NOW, &time::format_description::well_known::Rfc3339).unwrap();
    let t: std::time::SystemTime = (now - time::Duration::seconds(secs_before_now)).into();
    std::fs::File::options().write(true).open(p).unwrap().set_modified(t).unwrap();
}

/// Change some fields of a JSON file.
fn edit(p: &Path, f: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let mut v = read_json(p);
    f(v.as_object_mut().unwrap());
    write_json(p, &v);
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn findings(r: &crate::util::Run) -> BTreeSet<(String, String, String)> {
    r.kind("finding")
        .iter()
        .map(|f| {
            (
                f["subject"].as_str().unwrap().to_string(),
                f["problem"].as_str().unwrap().to_string(),
                f["level"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn set(items: &[(&str, &str, &str)]) -> BTreeSet<(String, String, String)> {
    items.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect()
}

#[test]
fn cellscan_scan_finds_each_broken_kind_and_nothing_in_the_valid_cell() {
    let w = Workdir::new("cellscan-examples");
    let r = w.tool("cellscan").args(["scan", &s(&examples()), "--now", NOW]).run();
    r.code(1);
    assert!(r.stderr.is_empty(), "{r:?}");
    let f = |c: &str, file: &str| format!("{c}/{file}");
    let want = set(&[
        (&f(FAILED, "agents/agent_002.json"), "agent_failed", "error"),
        (&f("1a6f2e9b-3c4d-4e5f-8a7b-0c1d2e3f4a5b", "tasks/task_002.json"), "invalid_json", "error"),
        (&f("2b7a3f0c-4d5e-4f6a-9b8c-1d2e3f4a5b6c", "agents/agent_002.json"), "missing_field", "error"),
        (&f("2b7a3f0c-4d5e-4f6a-9b8c-1d2e3f4a5b6c", "tasks/task_001.json"), "missing_field", "error"),
        (&f("3c8b4a1d-5e6f-4a7b-8c9d-2e3f4a5b6c7d", "agents/agent_001.json"), "bad_value", "error"),
        (&f("3c8b4a1d-5e6f-4a7b-8c9d-2e3f4a5b6c7d", "tasks/task_001.json"), "bad_value", "error"),
        (&f("4d9c5b2e-6f7a-4b8c-9d0e-3f4a5b6c7d8e", "tasks/task_002.json"), "unknown_agent", "error"),
        (&f("5e0d6c3f-7a8b-4c9d-8e1f-4a5b6c7d8e9f", "tasks/task_002.json"), "unknown_dependency", "error"),
        (&f("6f1e7d4a-8b9c-4d0e-9f2a-5b6c7d8e9f0a", "tasks/task_001.json"), "dependency_cycle", "error"),
        (&f("8a2f9e5b-9c0d-4e1f-8a3b-6c7d8e9f0a1b", "tasks/task_001.json"), "task_timeout", "warning"),
        (&f(STALE, "agents/agent_001.json"), "stale_checkpoint", "warning"),
        ("ac5d2b8e-2f3a-4b4c-9d6e-9f0a1b2c3d4e", "too_many_agents", "warning"),
    ]);
    assert_eq!(findings(&r), want);
    // The valid cell: its records, no finding.
    assert!(r.kind("finding").iter().all(|f| f["cell"] != VALID));
    assert_eq!(r.kind("cell").len(), 11);
    let cell = r.kind("cell").into_iter().find(|c| c["cell"] == VALID).unwrap();
    assert_eq!(cell["problems"], 0);

    // The details say where and why.
    let detail = |problem: &str| {
        r.kind("finding").into_iter().find(|f| f["problem"] == problem).unwrap()["detail"].as_str().unwrap().to_string()
    };
    assert!(detail("invalid_json").ends_with("tasks/task_002.json:6:1: trailing comma"), "{}", detail("invalid_json"));
    assert!(detail("dependency_cycle").contains("task_001 -> task_003 -> task_002 -> task_001"));
    assert!(
        detail("task_timeout")
            .contains("in progress since 2026-11-23T08:30:00.000Z (started_at), past its timeout of 30m")
    );
    assert!(detail("stale_checkpoint").contains("last checkpointed at 2026-11-23T09:30:00.000Z"));
    assert!(detail("unknown_agent").contains("assigned to unknown agent 'agent_404'"));
    let bad: Vec<String> = r
        .kind("finding")
        .iter()
        .filter(|f| f["problem"] == "bad_value")
        .map(|f| f["detail"].as_str().unwrap().to_string())
        .collect();
    assert!(
        bad.iter().any(
            |d| d.ends_with("agent_001.json:4:11: role: unknown role 'boss' (expected lead, write, read or audit)")
        ),
        "{bad:?}"
    );
    assert!(bad.iter().any(|d| d.contains("priority: unknown priority 'urgent'")));
    let stale = r.kind("finding").into_iter().find(|f| f["problem"] == "stale_checkpoint").unwrap();
    assert_eq!(stale["age_s"], 3600);
    assert_eq!(stale["source"], "cellscan");
    assert_eq!(stale["cell"], STALE);
    assert!(stale["path"].as_str().unwrap().ends_with("agents/agent_001.json"));
    assert_eq!(stale["timestamp"], "2026-11-23T10:30:00.000Z");
}

#[test]
fn cellscan_the_valid_cell_alone_scans_clean_with_every_record() {
    let w = Workdir::new("cellscan-valid");
    let r = w.tool("cellscan").args(["scan", &s(&examples().join(VALID)), "--now", NOW]).run();
    r.code(0);
    let recs = r.records();
    let kinds: Vec<&str> = recs.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["cell", "agent", "agent", "agent", "task", "task", "task", "task"]);
    let cell = &recs[0];
    assert_eq!(cell["cell"], VALID);
    assert_eq!(cell["mission_name"], "Release notes for v2.4");
    assert_eq!(cell["status"], "active");
    assert_eq!(cell["isolation_level"], "level_1");
    assert_eq!(cell["auto_revive"], "ask");
    assert_eq!(cell["agents"], 3);
    assert_eq!(cell["tasks"], json!({"pending": 2, "in_progress": 1, "completed": 1, "failed": 0}));
    assert_eq!(cell["problems"], 0);
    let a1 = r.named("agent", "agent_001");
    assert_eq!(a1["cell"], VALID);
    assert_eq!((a1["role"].as_str(), a1["status"].as_str()), (Some("lead"), Some("active")));
    assert_eq!(a1["current_task"], "task_002");
    assert_eq!(a1["checkpoint_age_s"], 120);
    assert_eq!((a1["health"].as_str(), a1["health_source"].as_str()), (Some("healthy"), Some("file")));
    let a3 = r.named("agent", "agent_003");
    assert_eq!(a3["checkpoint_age_s"], Value::Null);
    let t2 = r.kind("task").into_iter().find(|t| t["id"] == "task_002").unwrap();
    assert_eq!(t2["cell"], VALID);
    assert_eq!(t2["title"], "Draft the release notes");
    assert_eq!(t2["status"], "in_progress");
    assert_eq!(t2["dependencies"], json!(["task_001"]));
    assert_eq!(t2["started_at"], "2026-11-23T09:45:00.000Z");
    assert!(t2.get("column").is_none(), "mission tasks are told from board tasks by having no column");
}

#[test]
fn cellscan_text_format_for_people() {
    let w = Workdir::new("cellscan-text");
    let r = w.tool("cellscan").args(["scan", &s(&examples()), "--now", NOW, "--format", "text"]).run();
    r.code(1);
    r.stdout_has("[OK] Release notes for v2.4 (7d3c0a52-1e4b-4f7a-9c2d-5b8e6f1a2c3d) active: 3 agent(s), 4 task(s)");
    r.stdout_has("[FAIL] Broken: failed agent");
    r.stdout_has("    agent agent_002: failed, unhealthy (file)");
    r.stdout_has("    [ERROR] agent_failed: ");
    r.stdout_has("11 cell(s), 10 with problems.");
}

#[test]
fn cellscan_one_broken_cell_never_hides_the_others() {
    let w = Workdir::new("cellscan-broken");
    let m = missions(&w, &[VALID]);
    // A cell whose agent "file" is a directory, a cell with no cell.json, an empty cell.json,
    // a stray file, a hidden directory and a directory that is no cell at all.
    copy_tree(&examples().join(VALID), &m.join("b-unreadable"));
    edit(&m.join("b-unreadable/cell.json"), |c| {
        c.insert("cell_id".into(), "b-unreadable".into());
    });
    std::fs::create_dir_all(m.join("b-unreadable/agents/agent_009.json")).unwrap();
    std::fs::create_dir_all(m.join("c-no-cell-json/agents")).unwrap();
    w.write("missions/d-empty/cell.json", "");
    w.write("missions/stray.json", "{}");
    std::fs::create_dir_all(m.join(".trash/agents")).unwrap();
    std::fs::create_dir_all(m.join("lost+found")).unwrap();
    let r = w.tool("cellscan").args(["scan", &s(&m), "--now", NOW, "--jobs", "3"]).run();
    r.code(1);
    let got = findings(&r);
    for want in [
        ("b-unreadable/agents/agent_009.json", "unreadable", "error"),
        ("c-no-cell-json/cell.json", "missing_file", "error"),
        ("d-empty/cell.json", "invalid_json", "error"),
    ] {
        assert!(got.contains(&(want.0.into(), want.1.into(), want.2.into())), "{want:?} not in {got:?}{r:?}");
    }
    let cells: Vec<String> = r.kind("cell").iter().map(|c| c["cell"].as_str().unwrap().to_string()).collect();
    assert_eq!(cells, ["7d3c0a52-1e4b-4f7a-9c2d-5b8e6f1a2c3d", "b-unreadable", "c-no-cell-json", "d-empty"]);
    let valid = r.kind("cell").into_iter().find(|c| c["cell"] == VALID).unwrap();
    assert_eq!(valid["problems"], 0);
    assert_eq!(r.kind("agent").iter().filter(|a| a["cell"] == VALID).count(), 3);
}

#[test]
fn cellscan_output_is_the_same_whatever_the_number_of_threads() {
    let w = Workdir::new("cellscan-order");
    let m = w.path("missions");
    for i in 0..40 {
        let name = format!("cell-{:02}", (i * 17) % 40);
        copy_tree(&examples().join(if i % 3 == 0 { FAILED } else { VALID }), &m.join(&name));
        edit(&m.join(&name).join("cell.json"), |c| {
            c.insert("cell_id".into(), name.clone().into());
        });
    }
    let one = w.tool("cellscan").args(["scan", &s(&m), "--now", NOW, "--jobs", "1"]).run();
    let many = w.tool("cellscan").args(["scan", &s(&m), "--now", NOW, "--jobs", "8"]).run();
    one.code(1);
    assert_eq!(one.stdout, many.stdout);
    let cells: Vec<String> = one.kind("cell").iter().map(|c| c["cell"].as_str().unwrap().to_string()).collect();
    let mut sorted = cells.clone();
    sorted.sort();
    assert_eq!(cells, sorted);
    assert_eq!(cells.len(), 40);
}

#[test]
fn cellscan_two_cells_with_one_id_are_a_finding() {
    let w = Workdir::new("cellscan-dup");
    let m = missions(&w, &[VALID]);
    copy_tree(&examples().join(VALID), &m.join("zz-copy"));
    let r = w.tool("cellscan").args(["scan", &s(&m), "--now", NOW]).run();
    r.code(1);
    let dup = r.kind("finding").into_iter().find(|f| f["problem"] == "duplicate_id").unwrap();
    assert_eq!(dup["subject"], format!("{VALID}/cell.json"));
    assert!(dup["path"].as_str().unwrap().ends_with("zz-copy/cell.json"));
}

#[test]
fn cellscan_task_start_falls_back_to_the_file_time() {
    let w = Workdir::new("cellscan-mtime");
    let m = missions(&w, &[VALID]);
    let t = m.join(VALID).join("tasks/task_002.json");
    edit(&t, |t| {
        t.remove("started_at");
        t.insert("timeout".into(), 60.into());
    });
    set_mtime(&t, 7200);
    let r = w.tool("cellscan").args(["scan", &s(&m), "--now", NOW]).run();
    r.code(1);
    let late =
        r.kind("finding").into_iter().find(|f| f["problem"] == "task_timeout").unwrap_or_else(|| panic!("{r:?}"));
    assert!(
        late["detail"].as_str().unwrap().ends_with(
            "task task_002 in progress since 2026-11-23T08:30:00.000Z (file last changed; no started_at), past its timeout of 1m"
        ),
        "{late}"
    );
    assert_eq!(late["age_s"], 7200);
}

#[test]
fn cellscan_checkpoint_falls_back_to_the_state_file() {
    let w = Workdir::new("cellscan-state");
    let m = missions(&w, &[VALID]);
    let cell = m.join(VALID);
    edit(&cell.join("agents/agent_002.json"), |a| {
        a.insert("checkpoint".into(), Value::Null);
    });
    let state = cell.join("checkpoints/agent_002/state.json");
    set_mtime(&state, 60);
    let r = w.tool("cellscan").args(["scan", &s(&m), "--now", NOW]).run();
    r.code(0);
    assert_eq!(r.named("agent", "agent_002")["checkpoint_age_s"], 60);
    set_mtime(&state, 3600);
    let r = w.tool("cellscan").args(["scan", &s(&m), "--now", NOW]).run();
    r.code(1);
    let f = r.kind("finding").into_iter().find(|f| f["problem"] == "stale_checkpoint").unwrap();
    assert!(f["detail"].as_str().unwrap().contains("(the time of checkpoints/agent_002/state.json)"), "{f}");
    assert_eq!(r.named("agent", "agent_002")["health"], "degraded");
    std::fs::remove_file(&state).unwrap();
    let r = w.tool("cellscan").args(["scan", &s(&m), "--now", NOW]).run();
    r.code(1);
    let f = r.kind("finding").into_iter().find(|f| f["problem"] == "stale_checkpoint").unwrap();
    assert!(f["detail"].as_str().unwrap().ends_with("agent agent_002 is active and has never checkpointed"));
    // A cell that does not require checkpoints.
    write_json(&cell.join("config/policies.json"), &json!({"auto_revive": "ask", "checkpoint_required": false}));
    w.tool("cellscan").args(["scan", &s(&m), "--now", NOW]).run().code(0);
}

#[test]
fn cellscan_missing_missions_directory_is_exit_2() {
    let w = Workdir::new("cellscan-nodir");
    let r = w.tool("cellscan").args(["scan", &s(&w.path("nope"))]).run();
    r.code(2);
    r.stderr_has("cellscan: cannot read missions directory");
    // The default is HOME/missions; AGENT_OPS_MISSIONS and --missions move it.
    let m = missions(&w, &[VALID]);
    std::fs::create_dir_all(w.path("home")).unwrap();
    w.tool("cellscan").args(["scan", "--now", NOW]).run().code(2).stderr_has("home/missions");
    let r = w.tool("cellscan").args(["scan", "--now", NOW]).env("AGENT_OPS_MISSIONS", &m).run();
    r.code(0);
    assert_eq!(r.kind("cell").len(), 1);
    w.tool("cellscan").args(["scan", "--now", NOW, "--missions", &s(&m)]).run().code(0);
}

// ---------------------------------------------------------------------------------------
// The heartbeat endpoint: a fake that speaks tickmon serve's API.

fn state(id: &str, status: &str, failures: u64, error: Option<&str>) -> Value {
    json!({
        "agent_id": id, "status": status, "last_heartbeat": 1795429800.0, "last_response": 1795429800.0,
        "consecutive_failures": failures, "response_time": 0.0, "error_message": error, "metadata": {},
        "heartbeats": 7, "last_heartbeat_at": "2026-11-23T10:30:00.000Z", "last_response_at": "2026-11-23T10:30:00.000Z"
    })
}

struct FakeHeartbeat {
    server: HttpServer,
    agents: Arc<Mutex<HashMap<String, Value>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeHeartbeat {
    fn start(token: Option<&'static str>) -> FakeHeartbeat {
        let agents: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (a, sn) = (agents.clone(), seen.clone());
        let server = HttpServer::start(move |req| {
            sn.lock().unwrap().push(req.clone());
            let err = |code: u16, why: &str| Reply::json(code, &json!({ "error": why }));
            if let Some(t) = token
                && req.header("authorization") != Some(&format!("Bearer {t}"))
            {
                return err(401, "missing or wrong bearer token");
            }
            let parts: Vec<&str> = req.url.trim_start_matches('/').split('/').collect();
            let mut agents = a.lock().unwrap();
            match (req.method.as_str(), parts.as_slice()) {
                ("GET", ["agent", id]) => match agents.get(*id) {
                    Some(st) => Reply::json(200, st),
                    None => err(404, "unknown agent"),
                },
                ("POST", ["heartbeat", id]) => {
                    // As tickmon serve does: the heartbeat is stamped when it arrives (here
                    // always later than the one before, whatever the machine's clock says).
                    let before = agents.get(*id).and_then(|s| s["last_heartbeat"].as_f64()).unwrap_or(0.0);
                    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
                    let mut st = state(id, "healthy", 0, None);
                    st["last_heartbeat"] = json!(now.max(before + 1.0));
                    agents.insert(id.to_string(), st);
                    Reply::json(
                        200,
                        &json!({"status": "ok", "agent_id": id, "timestamp": 1795429800.5, "next_heartbeat": 30}),
                    )
                }
                ("GET", ["health"]) => {
                    Reply::json(200, &json!({"timestamp": 1795429800.5, "total_agents": agents.len()}))
                }
                (_, ["agent" | "heartbeat" | "health", ..]) => err(405, "method not allowed"),
                _ => err(404, "not found"),
            }
        });
        FakeHeartbeat { server, agents, seen }
    }

    fn set(&self, id: &str, v: Value) {
        self.agents.lock().unwrap().insert(id.into(), v);
    }

    fn url(&self) -> String {
        self.server.url("")
    }
}

#[test]
fn cellscan_agent_health_comes_from_the_heartbeat_endpoint() {
    let hb = FakeHeartbeat::start(None);
    hb.set("agent_001", state("agent_001", "healthy", 0, None));
    hb.set("agent_002", state("agent_002", "unhealthy", 3, Some("No response for 400 seconds")));
    // agent_003 never sent a heartbeat: 404.
    let w = Workdir::new("cellscan-hb");
    let m = missions(&w, &[VALID]);
    let r = w.tool("cellscan").args(["scan", &s(&m), "--now", NOW, "--heartbeat-url", &hb.url()]).run();
    r.code(1);
    let a1 = r.named("agent", "agent_001");
    assert_eq!((a1["health"].as_str(), a1["health_source"].as_str()), (Some("healthy"), Some("heartbeat")));
    assert_eq!(a1["heartbeat"]["last_heartbeat"], "2026-11-23T10:30:00.000Z");
    let a2 = r.named("agent", "agent_002");
    assert_eq!((a2["health"].as_str(), a2["health_source"].as_str()), (Some("unhealthy"), Some("heartbeat")));
    assert_eq!(a2["heartbeat"]["consecutive_failures"], 3);
    let a3 = r.named("agent", "agent_003");
    assert_eq!((a3["health"].as_str(), a3["health_source"].as_str()), (Some("healthy"), Some("file")));
    assert_eq!(findings(&r), set(&[(&format!("{VALID}/agents/agent_002.json"), "agent_unhealthy", "error")]));
    let f = r.kind("finding").remove(0);
    assert!(f["detail"].as_str().unwrap().ends_with(
        "the heartbeat endpoint reports agent agent_002 unhealthy (3 consecutive failures: No response for 400 seconds)"
    ));
    let mut urls: Vec<String> = hb.seen.lock().unwrap().iter().map(|s| format!("{} {}", s.method, s.url)).collect();
    urls.sort();
    assert_eq!(urls, ["GET /agent/agent_001", "GET /agent/agent_002", "GET /agent/agent_003"]);
}

#[test]
fn cellscan_heartbeat_token_from_a_file_and_a_refused_token() {
    let hb = FakeHeartbeat::start(Some("s3cret-t0ken"));
    hb.set("agent_001", state("agent_001", "degraded", 1, Some("slow")));
    let w = Workdir::new("cellscan-hb-token");
    let m = missions(&w, &[VALID]);
    let tok = w.write("token", "s3cret-t0ken\n");
    let r = w
        .tool("cellscan")
        .args(["scan", &s(&m), "--now", NOW, "--heartbeat-url", &hb.url(), "--heartbeat-token-file", &s(&tok)])
        .run();
    r.code(1);
    assert_eq!(r.named("agent", "agent_001")["health"], "degraded");
    let f = r.kind("finding").into_iter().find(|f| f["problem"] == "agent_unhealthy").unwrap();
    assert_eq!(f["level"], "warning");
    // The wrong token: one warning for the cell, health from the files, the token never shown.
    let r = w
        .tool("cellscan")
        .args(["scan", &s(&m), "--now", NOW, "--heartbeat-url", &hb.url()])
        .env("AGENT_OPS_HEARTBEAT_TOKEN", "wr0ng-t0ken")
        .run();
    r.code(1);
    assert_eq!(findings(&r), set(&[(VALID, "heartbeat_unreachable", "warning")]));
    r.stdout_has("refused the token");
    assert!(!r.stdout.contains("wr0ng-t0ken") && !r.stderr.contains("wr0ng-t0ken"));
    assert!(r.kind("agent").iter().all(|a| a["health_source"] == "file"));
}

#[test]
fn cellscan_unreachable_heartbeat_is_one_warning_per_cell_within_the_timeout() {
    let w = Workdir::new("cellscan-hb-down");
    let m = missions(&w, &[VALID, FAILED, STALE]);
    let url = format!("http://127.0.0.1:{}", closed_port());
    let r = w.tool("cellscan").args(["scan", &s(&m), "--now", NOW, "--heartbeat-url", &url]).run();
    r.code(1);
    let unreachable: Vec<Value> =
        r.kind("finding").into_iter().filter(|f| f["problem"] == "heartbeat_unreachable").collect();
    assert_eq!(unreachable.len(), 3, "{r:?}");
    assert!(unreachable.iter().all(|f| f["level"] == "warning"));
    assert!(r.kind("agent").iter().all(|a| a["health_source"] == "file"));
    // A listener that never answers: bounded by --heartbeat-timeout, paid once, not per agent.
    let hole = Blackhole::start();
    let start = std::time::Instant::now();
    let r = w
        .tool("cellscan")
        .args(["scan", &s(&m), "--now", NOW, "--heartbeat-url", hole.url().as_str(), "--heartbeat-timeout", "0.5"])
        .run();
    assert!(start.elapsed() < crate::util::limit(10.0), "took {:?}", start.elapsed());
    assert_eq!(r.kind("finding").iter().filter(|f| f["problem"] == "heartbeat_unreachable").count(), 3, "{r:?}");
}

// ---------------------------------------------------------------------------------------
// Revival.

/// The failed-agent example in a workdir with the given policies.json.
fn failed_cell(w: &Workdir, policies: Value) -> (PathBuf, PathBuf) {
    let m = missions(w, &[FAILED]);
    write_json(&m.join(FAILED).join("config/policies.json"), &policies);
    (m.clone(), m.join(FAILED))
}

/// PATH with cellscan's own directory first, for revive commands that call it.
fn path_with_cellscan() -> String {
    let dir = crate::util::bin_dir().display().to_string();
    format!("{dir}:{}", std::env::var("PATH").unwrap_or_default())
}

#[test]
fn cellscan_revive_yes_runs_the_command_and_verifies() {
    let w = Workdir::new("cellscan-revive-yes");
    let cmd = "env | grep -E '^(CELL_ID|CELL_PATH|AGENT_ID|CHECKPOINT_PATH|MISSION_NAME|REVIVE_ATTEMPT)=' | sort > revived.env; \
               cellscan set-agent \"$CELL_PATH\" \"$AGENT_ID\" --status active --checkpoint > /dev/null";
    let (m, cell) = failed_cell(&w, json!({"auto_revive": "yes", "revive_command": cmd, "revive_timeout": 30}));
    let r = w.tool("cellscan").args(["revive", &s(&m), "--now", NOW]).env("PATH", path_with_cellscan()).run();
    r.code(0);
    let recs = r.records();
    assert_eq!(recs.len(), 1, "{r:?}");
    let rec = &recs[0];
    assert_eq!(rec["kind"], "recovery");
    assert_eq!(rec["name"], format!("{FAILED}/agent_002"));
    assert_eq!((rec["outcome"].as_str(), rec["verified"].as_bool()), (Some("recovered"), Some(true)));
    assert_eq!((rec["attempt"].as_u64(), rec["max_attempts"].as_u64()), (Some(1), Some(3)));
    assert_eq!(rec["exit_code"], 0);
    assert_eq!((rec["cell"].as_str(), rec["agent"].as_str()), (Some(FAILED), Some("agent_002")));
    assert!(rec["detail"].as_str().unwrap().contains("agent status now 'active'"), "{rec}");
    // The command ran in the cell with the cell, agent and checkpoint in its environment.
    let env = std::fs::read_to_string(cell.join("revived.env")).unwrap();
    let abs = std::fs::canonicalize(&cell).unwrap();
    assert!(env.contains("AGENT_ID=agent_002\n"), "{env}");
    assert!(env.contains(&format!("CELL_ID={FAILED}\n")));
    assert!(env.contains(&format!("CHECKPOINT_PATH={}/checkpoints/agent_002/\n", abs.display())));
    assert!(env.contains("MISSION_NAME=Broken: failed agent\n"));
    assert!(env.contains("REVIVE_ATTEMPT=1\n"));
    // The agent file, the ledger and the mission log.
    let agent = read_json(&cell.join("agents/agent_002.json"));
    assert_eq!(agent["status"], "active");
    assert!(agent["checkpoint"]["last_checkpoint"].is_string());
    assert_eq!(agent["checkpoint"]["context_hash"], "sha256:4f2a9c", "other fields are kept");
    let ledger = read_json(&cell.join("logs/revivals.json"));
    assert_eq!(ledger["agent_002"]["attempts"], 1);
    assert_eq!(ledger["agent_002"]["last_success"], ledger["agent_002"]["last_attempt"]);
    let log = std::fs::read_to_string(cell.join("logs/mission.log")).unwrap();
    assert!(log.starts_with("2026-11-23T10:30:00.000Z cellscan: revive agent_002 attempt 1/3: revived ("), "{log}");
    // Now active: a second run finds nothing to do.
    let again = w.tool("cellscan").args(["revive", &s(&m), "--now", NOW]).env("PATH", path_with_cellscan()).run();
    again.code(0);
    assert!(again.stdout.is_empty());
}

#[test]
fn cellscan_revive_cooldown_and_max_retries_follow_the_ledger() {
    let w = Workdir::new("cellscan-revive-fail");
    let (m, cell) = failed_cell(
        &w,
        json!({"auto_revive": "yes", "revive_command": "echo starting; echo 'gateway refused' >&2; exit 3", "max_retries": 2}),
    );
    let run = |now: &str| w.tool("cellscan").args(["revive", &s(&m), "--now", now]).run();
    let first = run("2026-11-23T10:30:00Z");
    first.code(1);
    let rec = &first.records()[0];
    assert_eq!(
        (rec["outcome"].as_str(), rec["exit_code"].as_i64(), rec["verified"].as_bool()),
        (Some("failed"), Some(3), Some(false))
    );
    assert!(rec["detail"].as_str().unwrap().ends_with("exit 3: gateway refused"), "{rec}");
    let rec = &run("2026-11-23T10:31:00Z").records()[0];
    assert_eq!((rec["outcome"].as_str(), rec["attempt"].as_u64()), (Some("cooldown"), Some(1)));
    assert!(rec["detail"].as_str().unwrap().contains("next one in 4m"), "{rec}");
    let rec = &run("2026-11-23T10:35:01Z").records()[0];
    assert_eq!((rec["outcome"].as_str(), rec["attempt"].as_u64()), (Some("failed"), Some(2)));
    let r = run("2026-11-23T10:40:02Z");
    r.code(1);
    let rec = &r.records()[0];
    assert_eq!((rec["outcome"].as_str(), rec["attempt"].as_u64()), (Some("max_attempts"), Some(2)));
    assert_eq!(read_json(&cell.join("logs/revivals.json"))["agent_002"]["attempts"], 2);
    // An hour without attempts forgets the count.
    let rec = &run("2026-11-23T11:40:00Z").records()[0];
    assert_eq!((rec["outcome"].as_str(), rec["attempt"].as_u64()), (Some("failed"), Some(1)));
    let log = std::fs::read_to_string(cell.join("logs/mission.log")).unwrap();
    assert_eq!(log.lines().count(), 3, "{log}");
}

#[test]
fn cellscan_revive_timeout_kills_the_whole_process_group() {
    let w = Workdir::new("cellscan-revive-timeout");
    let (m, cell) = failed_cell(
        &w,
        json!({"auto_revive": "yes", "revive_command": "sleep 60 & echo $! > child.pid; wait", "revive_timeout": 1}),
    );
    let start = std::time::Instant::now();
    let r = w.tool("cellscan").args(["revive", &s(&m), "--now", NOW]).run();
    r.code(1);
    assert!(start.elapsed() < crate::util::limit(20.0));
    let rec = &r.records()[0];
    assert_eq!(rec["outcome"], "failed");
    assert!(rec["detail"].as_str().unwrap().contains("timed out after"), "{rec}");
    let pid: u32 = std::fs::read_to_string(cell.join("child.pid")).unwrap().trim().parse().unwrap();
    assert!(wait_until(5.0, || !alive(pid)), "the command's child outlived the timeout");
}

#[test]
fn cellscan_revive_a_command_that_does_not_revive_is_not_verified() {
    let w = Workdir::new("cellscan-revive-unverified");
    let (m, _) = failed_cell(&w, json!({"auto_revive": "yes", "revive_command": "true"}));
    let r = w.tool("cellscan").args(["revive", &s(&m), "--now", NOW]).run();
    r.code(1);
    let rec = &r.records()[0];
    assert_eq!((rec["outcome"].as_str(), rec["verified"].as_bool()), (Some("recovered"), Some(false)));
    assert!(rec["detail"].as_str().unwrap().ends_with("the agent file still says failed"), "{rec}");
}

#[test]
fn cellscan_revive_ask_alerts_and_approve_runs() {
    let w = Workdir::new("cellscan-revive-ask");
    let (m, cell) = failed_cell(&w, json!({"auto_revive": "ask", "revive_command": "touch revived.mark"}));
    let r = w.tool("cellscan").args(["revive", &s(&m), "--now", NOW]).run();
    r.code(1);
    let alert = r.kind("alert").remove(0);
    assert_eq!(alert["topic"], "revival");
    assert_eq!(alert["level"], "warning");
    assert_eq!(alert["title"], "Revival pending approval: agent_002 in Broken: failed agent");
    assert_eq!(alert["subject"], format!("agent:{FAILED}/agent_002"));
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["sinks"], json!([]));
    assert_eq!(alert["labels"], json!(["revival", "mission-cell"]));
    assert_eq!(alert["timestamp"], "2026-11-23T10:30:00.000Z");
    let msg = alert["message"].as_str().unwrap();
    assert!(msg.contains("the agent file says failed"), "{msg}");
    assert!(msg.contains(&format!("--approve {FAILED}/agent_002")), "{msg}");
    assert!(!cell.join("revived.mark").exists());
    assert!(!cell.join("logs/revivals.json").exists());
    // Approved: the command runs although the policy says ask.
    let r = w
        .tool("cellscan")
        .args(["revive", &s(&m), "--now", NOW, "--approve", &format!("{FAILED}/agent_002"), "--approve", "x/y"])
        .run();
    r.stderr_has("cellscan: --approve x/y: no agent there needs reviving");
    assert_eq!(r.kind("recovery")[0]["attempt"], 1);
    assert!(cell.join("revived.mark").exists());
    w.tool("cellscan").args(["revive", &s(&m), "--approve", "nonsense"]).run().code(2);
}

#[test]
fn cellscan_revive_no_does_nothing_and_dry_run_runs_nothing() {
    let w = Workdir::new("cellscan-revive-no");
    let (m, cell) =
        failed_cell(&w, json!({"auto_revive": "no", "revive_command": "touch revived.mark", "handoff_allowed": false}));
    let r = w.tool("cellscan").args(["revive", &s(&m), "--now", NOW]).run();
    r.code(0);
    assert!(r.stdout.is_empty());
    write_json(
        &cell.join("config/policies.json"),
        &json!({"auto_revive": "yes", "revive_command": "touch revived.mark"}),
    );
    let r = w.tool("cellscan").args(["revive", &s(&m), "--now", NOW, "--dry-run"]).run();
    r.code(1);
    let rec = &r.records()[0];
    assert_eq!(rec["dry_run"], true);
    // A dry run claims no effect: `skipped`, as recover --dry-run says.
    assert_eq!((rec["outcome"].as_str(), rec["verified"].as_bool()), (Some("skipped"), Some(false)), "{rec}");
    assert_eq!(rec["attempt"], 1);
    assert!(rec["detail"].as_str().unwrap().starts_with("dry run: "), "{rec}");
    assert!(rec["detail"].as_str().unwrap().contains("would run touch revived.mark"), "{rec}");
    assert!(!cell.join("revived.mark").exists());
    assert!(!cell.join("logs/revivals.json").exists());
    assert!(!cell.join("logs/revivals.json.lock").exists());
    assert!(!cell.join("logs/mission.log").exists());
    // yes without a command: a finding, not a crash.
    write_json(&cell.join("config/policies.json"), &json!({"auto_revive": "yes"}));
    let r = w.tool("cellscan").args(["revive", &s(&m), "--now", NOW]).run();
    r.code(1);
    let f = r.kind("finding").remove(0);
    assert_eq!((f["problem"].as_str(), f["level"].as_str()), (Some("missing_field"), Some("error")));
}

#[test]
fn cellscan_revive_from_a_scan_passes_every_record_on() {
    let w = Workdir::new("cellscan-revive-from");
    let (m, cell) = failed_cell(&w, json!({"auto_revive": "yes", "revive_command": "touch revived.mark"}));
    copy_tree(&examples().join(VALID), &m.join(VALID));
    let scan = w.tool("cellscan").args(["scan", &s(&m), "--now", NOW]).run();
    let r = w.tool("cellscan").args(["revive", "--from", "-", &s(&m), "--now", NOW]).stdin(&scan.stdout).run();
    r.code(1);
    let recs = r.records();
    let scanned = scan.records();
    assert_eq!(recs.len(), scanned.len() + 1);
    // Everything read comes out unchanged, in order; the recovery follows its agent record.
    let passed: Vec<&Value> = recs.iter().filter(|r| r["kind"] != "recovery").collect();
    assert_eq!(passed, scanned.iter().collect::<Vec<_>>());
    let at = recs.iter().position(|r| r["kind"] == "recovery").unwrap();
    assert_eq!(recs[at - 1]["agent"], "agent_002");
    assert_eq!(recs[at]["outcome"], "recovered");
    assert!(cell.join("revived.mark").exists());
    // A record that names a cell that is not there.
    let bogus = json!({"kind": "agent", "cell": "nowhere", "agent": "a1", "status": "failed", "path": "/nonexistent/agents/a1.json"});
    let r = w.tool("cellscan").args(["revive", "--from", "-", &s(&m)]).stdin(format!("{bogus}\n")).run();
    r.code(1);
    assert_eq!(r.kind("finding")[0]["problem"], "unknown_agent");
}

#[test]
fn cellscan_revive_an_agent_the_heartbeat_calls_unhealthy() {
    let hb = FakeHeartbeat::start(None);
    hb.set("agent_001", state("agent_001", "unhealthy", 4, Some("no heartbeat")));
    hb.set("agent_002", state("agent_002", "healthy", 0, None));
    hb.set("agent_003", state("agent_003", "healthy", 0, None));
    let w = Workdir::new("cellscan-revive-hb");
    let m = missions(&w, &[VALID]);
    // The revive command restarts the agent, which sends a heartbeat.
    let cmd = format!("curl -fsS -X POST {}/heartbeat/$AGENT_ID > /dev/null", hb.url());
    write_json(&m.join(VALID).join("config/policies.json"), &json!({"auto_revive": "yes", "revive_command": cmd}));
    let r = w.tool("cellscan").args(["revive", &s(&m), "--now", NOW, "--heartbeat-url", &hb.url()]).run();
    r.code(0);
    let rec = r.kind("recovery").remove(0);
    assert_eq!(rec["name"], format!("{VALID}/agent_001"));
    assert_eq!((rec["outcome"].as_str(), rec["verified"].as_bool()), (Some("recovered"), Some(true)), "{rec}");
    assert!(rec["detail"].as_str().unwrap().contains("heartbeat endpoint says unhealthy (4 consecutive failures)"));
    assert!(rec["detail"].as_str().unwrap().ends_with("heartbeat healthy"));
    // The same through the pipe: scan with the heartbeat, revive --from.
    hb.set("agent_002", state("agent_002", "unhealthy", 3, None));
    let scan = w.tool("cellscan").args(["scan", &s(&m), "--now", NOW, "--heartbeat-url", &hb.url()]).run();
    let r = w
        .tool("cellscan")
        .args(["revive", "--from", "-", &s(&m), "--now", "2026-11-23T11:00:00Z", "--heartbeat-url", &hb.url()])
        .stdin(&scan.stdout)
        .run();
    r.code(0);
    assert_eq!(r.kind("recovery")[0]["name"], format!("{VALID}/agent_002"));
}

// ---------------------------------------------------------------------------------------
// Creating and changing cells.

#[test]
fn cellscan_init_creates_a_cell_per_the_spec() {
    let w = Workdir::new("cellscan-init");
    let m = w.path("missions");
    let r = w
        .tool("cellscan")
        .args(["init", &s(&m), "--name", "Nightly audit", "--isolation", "level_2", "--max-agents", "4"])
        .args(["--auto-revive", "yes", "--revive-command", "bin/revive", "--created-by", "ops", "--now", NOW])
        .run();
    r.code(0);
    let cell = r.kind("cell").remove(0);
    let id = cell["cell"].as_str().unwrap().to_string();
    let uuid = uuid_like(&id);
    assert!(uuid, "{id} is not a uuid v4");
    assert_eq!(cell["path"], s(&m.join(&id)));
    assert_eq!((cell["mission_name"].as_str(), cell["auto_revive"].as_str()), (Some("Nightly audit"), Some("yes")));
    let dir = m.join(&id);
    for sub in
        ["agents", "tasks", "checkpoints", "logs", "artifacts/code", "artifacts/docs", "artifacts/reports", "config"]
    {
        assert!(dir.join(sub).is_dir(), "{sub}");
    }
    let doc = read_json(&dir.join("cell.json"));
    assert_eq!(doc["cell_id"], id.as_str());
    assert_eq!(doc["created_at"], "2026-11-23T10:30:00.000Z");
    assert_eq!(doc["created_by"], "ops");
    assert_eq!(doc["isolation_level"], "level_2");
    assert_eq!(doc["max_agents"], 4);
    assert_eq!(doc["policies"]["checkpoint_interval"], 300);
    assert_eq!(read_json(&dir.join("config/isolation.json"))["level"], "level_2");
    let pol = read_json(&dir.join("config/policies.json"));
    assert_eq!((pol["auto_revive"].as_str(), pol["revive_command"].as_str()), (Some("yes"), Some("bin/revive")));
    assert_eq!(read_json(&dir.join("config/permissions.json")), json!({}));
    assert!(std::fs::read_dir(&m).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().starts_with('.')));
    // It scans clean.
    w.tool("cellscan").args(["scan", &s(&m), "--now", NOW]).run().code(0);
    // A given id that exists already is refused; a dry run writes nothing.
    w.tool("cellscan").args(["init", &s(&m), "--name", "x", "--id", &id]).run().code(2).stderr_has("already exists");
    let r = w.tool("cellscan").args(["init", &s(&m), "--name", "Dry", "--id", "dry-cell", "--dry-run"]).run();
    r.code(0);
    assert_eq!(r.kind("cell")[0]["cell"], "dry-cell");
    assert!(!m.join("dry-cell").exists());
    assert_eq!(std::fs::read_dir(&m).unwrap().count(), 1);
}

#[test]
fn cellscan_init_sets_no_mission_timeout_unless_given() {
    let w = Workdir::new("cellscan-init-timeout");
    let m = w.path("missions");
    let init = |id: &str, extra: &[&str]| {
        w.tool("cellscan")
            .args(["init", &s(&m), "--name", "Long haul", "--id", id, "--now", NOW])
            .args(extra)
            .run()
            .code(0);
        read_json(&m.join(id).join("cell.json"))
    };
    let open_ended = init("open-ended", &[]);
    assert!(open_ended.get("timeout").is_none(), "no timeout unless one is given: {open_ended}");
    let bounded = init("bounded", &["--timeout", "1800"]);
    assert_eq!(bounded["timeout"], 1800);
    // A day later only the cell that was given a time limit is overdue.
    let r = w.tool("cellscan").args(["scan", &s(&m), "--now", "2026-11-24T10:30:00Z"]).run();
    let overdue: Vec<String> = r
        .kind("finding")
        .iter()
        .filter(|f| f["problem"] == "mission_timeout")
        .map(|f| f["subject"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(overdue.len(), 1, "{r:?}");
    assert!(overdue[0].contains("bounded"), "{r:?}");
}

fn uuid_like(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts[2].starts_with('4')
        && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

#[test]
fn cellscan_add_agent_and_add_task_validate_before_writing() {
    let w = Workdir::new("cellscan-add");
    let m = w.path("missions");
    w.tool("cellscan")
        .args(["init", &s(&m), "--name", "Build", "--id", "build", "--max-agents", "2", "--now", NOW])
        .run()
        .code(0);
    let cs = |args: &[&str]| w.tool("cellscan").args(args).args(["--missions", &s(&m), "--now", NOW]).run();
    let r = cs(&[
        "add-agent",
        "build",
        "--id",
        "agent_001",
        "--role",
        "lead",
        "--name",
        "Lead",
        "--capability",
        "planning",
    ]);
    r.code(0);
    let a = r.named("agent", "agent_001");
    assert_eq!(
        (a["role"].as_str(), a["status"].as_str(), a["health"].as_str()),
        (Some("lead"), Some("idle"), Some("healthy"))
    );
    let doc = read_json(&m.join("build/agents/agent_001.json"));
    assert_eq!(doc["capabilities"], json!(["planning"]));
    assert_eq!(doc["checkpoint"], Value::Null);
    assert!(m.join("build/checkpoints/agent_001").is_dir());
    // By path too.
    cs(&["add-agent", &s(&m.join("build")), "--id", "agent_002", "--role", "write"]).code(0);
    for (args, why) in [
        (vec!["add-agent", "build", "--id", "agent_001", "--role", "read"], "already exists"),
        (vec!["add-agent", "build", "--id", "agent_003", "--role", "read"], "max_agents is 2"),
        (vec!["add-agent", "build", "--id", "../evil", "--role", "read"], "not a usable id"),
        (vec!["add-agent", "nowhere", "--id", "a", "--role", "read"], "neither a cell directory"),
        (vec!["add-task", "build", "--id", "t1", "--title", "T", "--assign", "agent_404"], "not an agent of the cell"),
        (vec!["add-task", "build", "--id", "t1", "--title", "T", "--depends-on", "t0"], "not a task of the cell"),
    ] {
        cs(&args).code(2).stderr_has(why);
    }
    assert!(!m.join("build/agents/agent_003.json").exists());
    let r = cs(&[
        "add-task",
        "build",
        "--id",
        "t1",
        "--title",
        "Compile",
        "--assign",
        "agent_001",
        "--priority",
        "high",
        "--timeout",
        "600",
    ]);
    r.code(0);
    let t = r.kind("task").remove(0);
    assert_eq!(
        (t["id"].as_str(), t["priority"].as_str(), t["timeout"].as_u64()),
        (Some("t1"), Some("high"), Some(600))
    );
    assert_eq!(t["created_at"], "2026-11-23T10:30:00.000Z");
    let r =
        cs(&["add-task", "build", "--id", "t2", "--title", "Test", "--depends-on", "t1", "--status", "in_progress"]);
    assert_eq!(r.kind("task")[0]["started_at"], "2026-11-23T10:30:00.000Z");
    // t3 already names t4 (an unknown dependency, written by hand); adding t4 after t3 would close a cycle.
    write_json(
        &m.join("build/tasks/t3.json"),
        &json!({"task_id": "t3", "title": "Ship", "status": "pending", "priority": "low", "dependencies": ["t4"]}),
    );
    cs(&["add-task", "build", "--id", "t4", "--title", "Tag", "--depends-on", "t3"])
        .code(2)
        .stderr_has("would close a dependency cycle: t3 -> t4 -> t3");
    cs(&["add-task", "build", "--id", "t4", "--title", "Tag"]).code(0);
    cs(&["add-task", "build", "--id", "t1", "--title", "Again"]).code(2).stderr_has("already exists");
    w.tool("cellscan").args(["scan", &s(&m), "--now", NOW]).run().code(0);
}

#[test]
fn cellscan_set_task_and_set_agent_stamp_their_times() {
    let w = Workdir::new("cellscan-set");
    let m = missions(&w, &[VALID]);
    let cs = |args: &[&str], now: &str| w.tool("cellscan").args(args).args(["--missions", &s(&m), "--now", now]).run();
    let r = cs(&["set-task", VALID, "task_003", "--status", "in_progress"], "2026-11-23T10:40:00Z");
    r.code(0);
    assert_eq!(r.kind("task")[0]["started_at"], "2026-11-23T10:40:00.000Z");
    let r = cs(&["set-task", VALID, "task_003", "--status", "completed"], "2026-11-23T10:50:00Z");
    let t = r.kind("task").remove(0);
    assert_eq!(
        (t["status"].as_str(), t["completed_at"].as_str()),
        (Some("completed"), Some("2026-11-23T10:50:00.000Z"))
    );
    let doc = read_json(&m.join(VALID).join("tasks/task_003.json"));
    assert_eq!(doc["description"], "Review the draft.", "fields the tool does not set are kept");
    cs(&["set-task", VALID, "task_003", "--assign", "agent_404"], NOW).code(2);
    cs(&["set-task", VALID, "task_003"], NOW).code(2).stderr_has("nothing to change");
    let r =
        cs(&["set-agent", VALID, "agent_003", "--status", "active", "--current-task", "task_003", "--checkpoint"], NOW);
    r.code(0);
    let a = r.named("agent", "agent_003");
    assert_eq!(
        (a["status"].as_str(), a["current_task"].as_str(), a["checkpoint_age_s"].as_u64()),
        (Some("active"), Some("task_003"), Some(0))
    );
    cs(&["set-agent", VALID, "agent_003", "--current-task", "task_404"], NOW).code(2);
    cs(&["set-agent", VALID, "agent_404", "--status", "idle"], NOW).code(2);
}

// ---------------------------------------------------------------------------------------
// --watch.

/// A child's stdout lines, read on a thread.
fn lines_of(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn next_records(rx: &mpsc::Receiver<String>, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let line = rx.recv_timeout(crate::util::limit(20.0)).unwrap_or_else(|e| panic!("record {i} of {n}: {e}"));
            serde_json::from_str(&line).unwrap()
        })
        .collect()
}

#[test]
fn cellscan_watch_writes_only_changes_and_stops_on_sigterm() {
    let w = Workdir::new("cellscan-watch");
    let m = missions(&w, &[VALID]);
    let mut child = w.tool("cellscan").args(["scan", &s(&m), "--watch", "0.2", "--now", NOW]).spawn();
    let rx = lines_of(&mut child);
    let first = next_records(&rx, 8);
    assert_eq!(first[0]["kind"], "cell");
    // Nothing changes: nothing is written.
    assert!(rx.recv_timeout(Duration::from_millis(700)).is_err());
    // The agent fails: its record, the cell's (one problem now) and the finding.
    let p = m.join(VALID).join("agents/agent_002.json");
    edit(&p, |a| {
        a.insert("status".into(), "failed".into());
    });
    let changed = next_records(&rx, 3);
    let kinds: BTreeSet<&str> = changed.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, BTreeSet::from(["agent", "cell", "finding"]), "{changed:?}");
    assert!(changed.iter().any(|r| r["kind"] == "agent" && r["status"] == "failed"));
    // It is revived: the finding resolves.
    edit(&p, |a| {
        a.insert("status".into(), "active".into());
    });
    let back = next_records(&rx, 3);
    let resolved = back.iter().find(|r| r["kind"] == "finding").unwrap_or_else(|| panic!("{back:?}"));
    assert_eq!((resolved["resolved"].as_bool(), resolved["level"].as_str()), (Some(true), Some("info")));
    // A task file removed: the cell's counts change, the permissions that name it are now a
    // finding, and the task is gone.
    std::fs::remove_file(m.join(VALID).join("tasks/task_004.json")).unwrap();
    let gone = next_records(&rx, 3);
    assert_eq!(gone[0]["kind"], "cell", "{gone:?}");
    assert_eq!((gone[1]["problem"].as_str(), gone[1]["level"].as_str()), (Some("unknown_task"), Some("warning")));
    assert_eq!(
        (gone[2]["kind"].as_str(), gone[2]["id"].as_str(), gone[2]["removed"].as_bool()),
        (Some("task"), Some("task_004"), Some(true))
    );
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn cellscan_watch_stops_when_its_reader_goes_away() {
    let w = Workdir::new("cellscan-watch-close");
    let m = missions(&w, &[VALID]);
    let mut child = w.tool("cellscan").args(["scan", &s(&m), "--watch", "30", "--now", NOW]).spawn();
    {
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        assert!(first.contains("\"kind\":\"cell\""));
    } // the reader goes away while nothing changes
    let pid = child.id();
    assert!(wait_until(10.0, || child.try_wait().unwrap().is_some()), "still watching");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "pid {pid}");
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

// ---------------------------------------------------------------------------------------
// The pipe contract (revive --from reads NDJSON; scan writes a lot of it).

#[test]
fn cellscan_empty_input_is_empty_output() {
    let w = Workdir::new("cellscan-empty");
    let r = w.tool("cellscan").args(["revive", "--from", "-", &s(&w.path("missions"))]).stdin("").run();
    r.code(0);
    assert!(r.stdout.is_empty() && r.stderr.is_empty(), "{r:?}");
}

#[test]
fn cellscan_malformed_line_is_named_and_skipped() {
    let w = Workdir::new("cellscan-bad-line");
    let input = "{\"kind\":\"check\",\"name\":\"a\",\"status\":\"up\"}\n{\"kind\": oops}\n{\"kind\":\"tick\",\"agent\":\"x\"}\n";
    let r = w.tool("cellscan").args(["revive", "--from", "-", &s(&w.path("m"))]).stdin(input).run();
    r.code(3);
    r.stderr_has("cellscan: stdin:2: expected value at column 10");
    assert_eq!(r.records().len(), 2);
    assert_eq!(r.records()[1], json!({"kind":"tick","agent":"x"}));
    let strict = w.tool("cellscan").args(["revive", "--from", "-", &s(&w.path("m")), "--strict"]).stdin(input).run();
    strict.code(2);
    strict.stderr_has("cellscan: stdin:2: expected value at column 10");
}

#[test]
fn cellscan_stdout_closed_early_is_silent_success() {
    let w = Workdir::new("cellscan-head");
    let input: String = (0..3000)
        .map(|i| {
            format!("{}\n", json!({"kind": "check", "name": format!("svc-{i:04}-{}", "x".repeat(60)), "status": "up"}))
        })
        .collect();
    let first = w.tool("cellscan").args(["revive", "--from", "-", &s(&w.path("m"))]).first_line_then_close(input);
    assert!(first.contains("svc-0000"), "{first}");

    // The same for a scan of many cells.
    let m = w.path("many");
    for i in 0..300 {
        copy_tree(&examples().join(VALID), &m.join(format!("c{i:03}")));
    }
    let mut child = w.tool("cellscan").args(["scan", &s(&m), "--now", NOW]).spawn();
    {
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        assert!(first.contains("\"kind\":\"cell\""));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
}

/// The Lazarus Pit daemon's config.json, as its `--create-config` wrote it.
fn lazarus_config(missions: &Path) -> Value {
    json!({
        "poll_interval": 30,
        "timeout": 300,
        "max_retries": 3,
        "auto_revive": true,
        "gateways": ["gateway_1", "gateway_2"],
        "missions_path": s(missions),
        "log_level": "INFO"
    })
}

#[test]
fn cellscan_reads_the_lazarus_config_from_home_and_flags_win() {
    let w = Workdir::new("cellscan-lazarus-home");
    let m = missions(&w, &[VALID]);
    write_json(&w.path(".lazarus/config.json"), &lazarus_config(&m));
    // missions_path is the missions directory; the ignored keys are said once, with why.
    let r = w.tool("cellscan").args(["scan", "--now", NOW]).run();
    r.code(0);
    assert_eq!(r.kind("cell").len(), 1, "{r:?}");
    assert_eq!(r.stderr.matches("ignoring").count(), 1, "{}", r.stderr);
    r.stderr_has("log_level (pitcrew has no log levels");
    r.stderr_has("gateways gateway_1, gateway_2: named without an address, not checked");
    // --missions and AGENT_OPS_MISSIONS win over missions_path.
    let empty = w.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let r = w.tool("cellscan").args(["scan", "--now", NOW, "--missions", &s(&empty)]).run();
    r.code(0);
    assert!(r.kind("cell").is_empty(), "{r:?}");
    let r = w.tool("cellscan").args(["scan", "--now", NOW]).env("AGENT_OPS_MISSIONS", &empty).run();
    r.code(0);
    assert!(r.kind("cell").is_empty(), "{r:?}");
}

#[test]
fn cellscan_lazarus_auto_revive_and_max_retries_fill_what_a_cell_leaves_out() {
    let w = Workdir::new("cellscan-lazarus-revive");
    // The cell says auto_revive ask in cell.json; policies.json says nothing of it.
    let (m, cell) = failed_cell(&w, json!({"revive_command": "exit 3"}));
    edit(&cell.join("cell.json"), |c| {
        c.get_mut("policies").unwrap().as_object_mut().unwrap().remove("auto_revive");
    });
    let conf = w.path("lazarus.json");
    let mut lz = lazarus_config(&m);
    lz["max_retries"] = json!(7);
    write_json(&conf, &lz);
    let r = w.tool("cellscan").args(["revive", "--now", NOW, "--lazarus-config", &s(&conf)]).run();
    r.code(1);
    let rec = &r.kind("recovery")[0];
    assert_eq!((rec["outcome"].as_str(), rec["max_attempts"].as_u64()), (Some("failed"), Some(7)), "{rec}");
    // The cell's own max_retries wins; auto_revive false is `no`: nothing is run (and no
    // handoff, which this cell's policies.json does not allow).
    write_json(
        &cell.join("config/policies.json"),
        &json!({"revive_command": "exit 3", "max_retries": 2, "handoff_allowed": false}),
    );
    std::fs::remove_dir_all(cell.join("logs")).unwrap();
    let r = w.tool("cellscan").args(["revive", "--now", NOW, "--lazarus-config", &s(&conf)]).run();
    assert_eq!(r.kind("recovery")[0]["max_attempts"], 2, "{r:?}");
    lz["auto_revive"] = json!(false);
    write_json(&conf, &lz);
    std::fs::remove_dir_all(cell.join("logs")).unwrap();
    let r = w.tool("cellscan").args(["revive", "--now", NOW, "--lazarus-config", &s(&conf)]).run();
    r.code(0);
    assert!(r.stdout.is_empty(), "{r:?}");
}

#[test]
fn cellscan_lazarus_timeout_is_the_default_checkpoint_interval() {
    let w = Workdir::new("cellscan-lazarus-timeout");
    let m = missions(&w, &[VALID]);
    let cell = m.join(VALID);
    edit(&cell.join("cell.json"), |c| {
        c.get_mut("policies").unwrap().as_object_mut().unwrap().remove("checkpoint_interval");
    });
    let conf = w.path("lazarus.json");
    let mut lz = lazarus_config(&m);
    let clean = w.tool("cellscan").args(["scan", "--now", NOW, "--lazarus-config", &s(&conf)]);
    write_json(&conf, &lz);
    clean.run().code(0);
    // Every checkpoint of the example is older than one second.
    lz["timeout"] = json!(1);
    write_json(&conf, &lz);
    let r = w.tool("cellscan").args(["scan", "--now", NOW, "--lazarus-config", &s(&conf)]).run();
    r.code(1);
    assert!(r.kind("finding").iter().any(|f| f["problem"] == "stale_checkpoint"), "{r:?}");
}

#[test]
fn cellscan_malformed_lazarus_config_names_path_line_and_column() {
    let w = Workdir::new("cellscan-lazarus-bad");
    let conf = w.write(".lazarus/config.json", "{\n  \"poll_interval\": 30,\n  \"timeout\": 300,\n}\n");
    let r = w.tool("cellscan").args(["scan", "--now", NOW]).run();
    r.code(2);
    r.stderr_has(&format!("{}:4:1", s(&conf)));
    w.write(".lazarus/config.json", "{\"auto_revive\": \"yes\"}");
    let r = w.tool("cellscan").args(["scan", "--now", NOW]).run();
    r.code(2);
    r.stderr_has(&format!("{}:1:", s(&conf))).stderr_has("expected a boolean");
    // A file named on the command line must exist.
    let r = w.tool("cellscan").args(["scan", "--lazarus-config", "nowhere.json"]).run();
    r.code(2);
    r.stderr_has("nowhere.json");
}

#[test]
fn cellscan_init_example_config_writes_the_daemons_file() {
    let w = Workdir::new("cellscan-lazarus-example");
    let r = w.tool("cellscan").args(["init", "--example-config"]).run();
    r.code(0);
    assert!(r.stdout.is_empty());
    let path = w.path(".lazarus/config.json");
    let v = read_json(&path);
    assert_eq!(v["poll_interval"], 30);
    assert_eq!(v["gateways"], json!(["gateway_1", "gateway_2"]));
    for key in ["poll_interval", "timeout", "max_retries", "auto_revive", "gateways", "missions_path", "log_level"] {
        assert!(v.get(key).is_some(), "{key}");
        assert!(r.stderr.contains(&format!("\ncellscan: {key} ")), "{key}: {}", r.stderr);
    }
    // Never over an existing file; the file it writes is one cellscan reads.
    let again = w.tool("cellscan").args(["init", "--example-config"]).run();
    again.code(2);
    again.stderr_has("exists");
    assert_eq!(read_json(&path), v);
    let other = w.path("elsewhere/lazarus.json");
    w.tool("cellscan").args(["init", "--example-config", "--lazarus-config", &s(&other)]).run().code(0);
    assert_eq!(read_json(&other), v);
    let m = missions(&w, &[VALID]);
    w.tool("cellscan").args(["scan", &s(&m), "--now", NOW, "--lazarus-config", &s(&other)]).run().code(0);
}

#[test]
fn cellscan_auto_revive_yes_without_a_command_says_what_to_add_once() {
    let w = Workdir::new("cellscan-yes-no-command");
    // The seed's policies.json: auto_revive yes, no revive_command.
    let (m, cell) = failed_cell(
        &w,
        json!({"auto_revive": "yes", "revive_timeout": 300, "substitute_agents": ["agent_003"],
               "handoff_allowed": true, "handoff_approval": "auto", "checkpoint_required": true, "max_retries": 3}),
    );
    let r = w.tool("cellscan").args(["scan", &s(&m), "--now", NOW]).run();
    r.code(1);
    let policies = s(&cell.join("config/policies.json"));
    let about: Vec<Value> =
        r.kind("finding").into_iter().filter(|f| f["detail"].as_str().unwrap().contains("revive_command")).collect();
    assert_eq!(about.len(), 1, "{r:?}");
    let detail = about[0]["detail"].as_str().unwrap();
    assert_eq!(about[0]["level"], "warning");
    assert!(detail.starts_with(&policies), "{detail}");
    assert!(detail.contains("add \"revive_command\""), "{detail}");
}

#[test]
fn cellscan_bare_watch_takes_the_lazarus_poll_interval() {
    let w = Workdir::new("cellscan-lazarus-watch");
    let m = missions(&w, &[VALID]);
    let mut lz = lazarus_config(&m);
    lz["poll_interval"] = json!(0.2);
    write_json(&w.path(".lazarus/config.json"), &lz);
    let mut child = w.tool("cellscan").args(["scan", "--watch", "--now", NOW]).spawn();
    let rx = lines_of(&mut child);
    assert_eq!(next_records(&rx, 8)[0]["kind"], "cell");
    edit(&m.join(VALID).join("agents/agent_002.json"), |a| {
        a.insert("status".into(), "failed".into());
    });
    // Rescanned within seconds, not the 30 s of a bare --watch without the config.
    let line = rx.recv_timeout(Duration::from_secs(10)).expect("a rescan within 10 s");
    assert!(line.contains(VALID), "{line}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn cellscan_status_counts_cells_agents_by_health_and_pending_revivals() {
    let w = Workdir::new("cellscan-status");
    let m = missions(&w, &[VALID, FAILED]);
    let r = w.tool("cellscan").args(["status", &s(&m), "--now", NOW]).run();
    r.code(0);
    let recs = r.records();
    assert_eq!(recs.len(), 1, "{r:?}");
    let st = &recs[0];
    assert_eq!((st["kind"].as_str(), st["cells"].as_u64(), st["agents"].as_u64()), (Some("status"), Some(2), Some(5)));
    assert_eq!(st["health"], json!({"healthy": 4, "degraded": 0, "unhealthy": 1, "unknown": 0}));
    // The failed agent's cell says ask: its revival waits for approval.
    assert_eq!(st["pending_revivals"], 1);
    assert_eq!(st["pending"], json!({"to_revive": 0, "awaiting_approval": 1, "not_revived": 0}));
    // With yes it is one the next revive runs; the Lazarus config is named.
    edit(&m.join(FAILED).join("config/policies.json"), |p| {
        p.insert("auto_revive".into(), "yes".into());
    });
    write_json(&w.path(".lazarus/config.json"), &json!({"missions_path": s(&m)}));
    let r = w.tool("cellscan").args(["status", "--now", NOW, "--format", "text"]).run();
    r.code(0);
    r.stdout_has("cells: 2\n")
        .stdout_has("agents: 5 (4 healthy, 0 degraded, 1 unhealthy, 0 unknown)\n")
        .stdout_has("pending revivals: 1 (1 to revive, 0 awaiting approval, 0 not revived by policy)\n")
        .stdout_has("pending handoffs: 0 (0 to hand off, 0 awaiting approval)\n")
        .stdout_has(&format!("config: {}\n", s(&w.path(".lazarus/config.json"))));
    assert_eq!(r.stdout.lines().count(), 6, "{r:?}");
    // Never revived (no): its pending task waits for a handoff, approved by hand by default.
    edit(&m.join(FAILED).join("config/policies.json"), |p| {
        p.insert("auto_revive".into(), "no".into());
    });
    let st = w.tool("cellscan").args(["status", "--now", NOW]).run().records().remove(0);
    assert_eq!(st["pending_handoffs"], 1, "{st}");
    assert_eq!(st["handoffs"], json!({"to_hand_off": 0, "awaiting_approval": 1}));
    // Revivals exhausted in the ledger count too; auto handoffs are the next revive's.
    edit(&m.join(FAILED).join("config/policies.json"), |p| {
        p.insert("auto_revive".into(), "yes".into());
        p.insert("max_retries".into(), 1.into());
        p.insert("handoff_approval".into(), "auto".into());
    });
    let st = w.tool("cellscan").args(["status", "--now", NOW]).run().records().remove(0);
    assert_eq!(st["pending_handoffs"], 0, "one attempt left: {st}");
    let at = 1795429800.0 - 60.0;
    write_json(
        &m.join(FAILED).join("logs/revivals.json"),
        &json!({"agent_002": {"attempts": 1, "last_attempt": at, "restarts": [at]}}),
    );
    let st = w.tool("cellscan").args(["status", "--now", NOW]).run().records().remove(0);
    assert_eq!(st["handoffs"], json!({"to_hand_off": 1, "awaiting_approval": 0}), "{st}");
}
