//! tickmon against real things: real directories and config files for the vitals, a real TCP
//! listener as a gateway, real git repositories (two clones pushing to one bare repository),
//! and the real server on loopback, killed with SIGKILL to prove what it acknowledged is kept.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::{Workdir, json as pretty, path_str, wait_until};

// ---------------------------------------------------------------------------------------
// Fixtures

const NOW: &str = "2026-11-23T10:30:00Z";

/// A registry of agents under the workdir's home.
fn registry(w: &Workdir, agents: Value) -> PathBuf {
    w.write("home/config/agent-registry.json", pretty(&json!({ "agents": agents })))
}

/// A tick file for November 2026.
fn tick(w: &Workdir, agent: &str, body: Value) {
    w.write(&format!("home/ticks/2026-11/{agent}.json"), pretty(&body));
}

/// An agent with a real home directory and config file; its gateway is a TCP listener.
struct LiveAgent {
    home: PathBuf,
    config: PathBuf,
    gateway: std::net::TcpListener,
}

impl LiveAgent {
    fn new(w: &Workdir, id: &str) -> LiveAgent {
        let home = w.path(&format!("agents/{id}"));
        std::fs::create_dir_all(&home).unwrap();
        let config = w.write(&format!("agents/{id}/config.json"), r#"{"model": "m1"}"#);
        LiveAgent { home, config, gateway: std::net::TcpListener::bind("127.0.0.1:0").unwrap() }
    }

    fn entry(&self, id: &str) -> Value {
        json!({
            "id": id, "name": id.to_uppercase(), "active": true,
            "home_dir": path_str(&self.home), "config_path": path_str(&self.config),
            "gateway": format!("127.0.0.1:{}", self.gateway.local_addr().unwrap().port()),
        })
    }
}

// ---------------------------------------------------------------------------------------
// submit

#[test]
fn tickmon_submit_checks_the_vitals_for_real_and_writes_the_tick() {
    let w = Workdir::new("tickmon-submit");
    let a = LiveAgent::new(&w, "atlas");
    registry(&w, json!([a.entry("atlas")]));
    let r = w
        .tool("tickmon")
        .args(["submit", "--agent", "atlas", "--capability", "code=true", "--now", "2026-11-01T09:00:00Z"])
        .run();
    r.code(0);
    let rec = r.named("tick", "atlas");
    assert_eq!(rec["status"], "healthy");
    assert_eq!(
        rec["vitals"],
        json!({"gateway_running": true, "home_directory_accessible": true, "config_valid": true})
    );
    assert_eq!(rec["due"], "2026-11-04T00:00:00.000Z");
    let file: Value = serde_json::from_str(&w.read("home/ticks/2026-11/atlas.json")).unwrap();
    assert_eq!(file["agent"], "atlas");
    assert_eq!(file["name"], "ATLAS");
    assert_eq!(file["month"], "2026-11");
    assert_eq!(file["status"], "healthy");
    assert_eq!(file["capabilities"], json!({"code": true}));
    assert_eq!(file["timestamp"], "2026-11-01T09:00:00.000Z");
    assert!(file["vitals_detail"]["gateway_running"].as_str().unwrap().contains("accepts connections"));
    // Nothing is left behind by the home-directory probe.
    let left: Vec<_> = std::fs::read_dir(&a.home).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 1, "{left:?}");

    // A broken config is found, not assumed: the status follows.
    std::fs::write(&a.config, "{\"model\": ").unwrap();
    let r = w.tool("tickmon").args(["submit", "--agent", "atlas", "--now", "2026-11-01T10:00:00Z"]).run();
    r.code(1);
    let rec = r.named("tick", "atlas");
    assert_eq!(rec["status"], "critical");
    assert_eq!(rec["vitals"]["config_valid"], false);
    assert!(rec["vitals_detail"]["config_valid"].as_str().unwrap().contains("invalid JSON"), "{rec}");

    // Everything down is offline.
    let port = a.gateway.local_addr().unwrap().port();
    drop(a.gateway);
    std::fs::remove_dir_all(&a.home).unwrap();
    let r = w.tool("tickmon").args(["submit", "--agent", "atlas", "--now", "2026-11-01T11:00:00Z"]).run();
    r.code(1);
    let rec = r.named("tick", "atlas");
    assert_eq!(rec["status"], "offline", "{rec}");
    assert!(rec["vitals_detail"]["gateway_running"].as_str().unwrap().contains(&format!("127.0.0.1:{port}")));
}

#[test]
fn tickmon_submit_process_gateway_and_text_view() {
    let w = Workdir::new("tickmon-submit-proc");
    let a = LiveAgent::new(&w, "cinder");
    let mut gateway = Command::new("sleep").arg("31.4159").spawn().unwrap();
    let mut entry = a.entry("cinder");
    entry["gateway"] = json!("process:sleep 31\\.4159");
    registry(&w, json!([entry]));
    let mut found = false;
    // Between fork and exec the child still shows the test's command line: give it a moment.
    for _ in 0..50 {
        let r = w.tool("tickmon").args(["submit", "--agent", "cinder", "--format", "text"]).run();
        if r.code == 0 {
            r.stdout_has("cinder ").stdout_has(": HEALTHY -> ");
            r.stdout_has(&format!("running (pid {})", gateway.id()));
            found = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(found, "the gateway process was never found");
    gateway.kill().unwrap();
    gateway.wait().unwrap();
    // The command line of tickmon itself names the pattern; it must not count as the gateway.
    let r = w.tool("tickmon").args(["submit", "--agent", "cinder", "--gateway", "process:sleep 31\\.4159"]).run();
    r.code(1);
    assert_eq!(r.named("tick", "cinder")["vitals"]["gateway_running"], false);
}

#[test]
fn tickmon_submit_never_claims_what_nobody_checked() {
    let w = Workdir::new("tickmon-submit-unknown");
    registry(&w, json!([{"id": "beacon", "name": "Beacon"}]));
    let r = w.tool("tickmon").args(["submit", "--agent", "beacon"]).run();
    r.code(2);
    r.stderr_has("cannot check the vitals of 'beacon'")
        .stderr_has("home_directory_accessible")
        .stderr_has("config_valid");
    assert!(!r.stderr.contains("gateway_running"), "a gateway is not required: {}", r.stderr);
    assert!(!w.path("home/ticks").exists());
    // Stated vitals are recorded as stated; extra vitals and capabilities count.
    let r = w
        .tool("tickmon")
        .args([
            "submit",
            "--agent",
            "beacon",
            "--vital",
            "gateway_running=true",
            "--vital",
            "home_directory_accessible=yes",
        ])
        .args(["--vital", "config_valid=1", "--vital", "disk_ok=false", "--capability", "deploy=true"])
        .args(["--note", "maintenance window", "--now", NOW])
        .run();
    r.code(0);
    let rec = r.named("tick", "beacon");
    assert_eq!(rec["status"], "degraded");
    assert_eq!(rec["vitals"]["disk_ok"], false);
    assert_eq!(rec["vitals_detail"]["gateway_running"], "stated with --vital");
    assert_eq!(rec["note"], "maintenance window");
    // An explicit status wins over the vitals.
    let r = w
        .tool("tickmon")
        .args(["submit", "--agent", "beacon", "--status", "offline", "--vital", "gateway_running=true"])
        .args(["--vital", "home_directory_accessible=true", "--vital", "config_valid=true", "--month", "2026-10"])
        .run();
    r.code(1);
    assert_eq!(r.named("tick", "beacon")["month"], "2026-10");
    assert!(w.path("home/ticks/2026-10/beacon.json").exists());
}

/// The Agent Tick Protocol's own registry names no gateway: a tick is still taken, of the
/// vitals that can be checked, with the gateway marked as not configured.
#[test]
fn tickmon_submit_the_tick_protocol_registry_without_gateway() {
    let w = Workdir::new("tickmon-submit-no-gateway");
    let home = w.path("agents/allegro");
    std::fs::create_dir_all(&home).unwrap();
    let config = w.write("agents/allegro/config.json", r#"{"model": "m1"}"#);
    // The seed's exact shape: id, name, active, home_dir, config_path; no gateway.
    registry(
        &w,
        json!([{"id": "allegro", "name": "Allegro", "active": true,
                "home_dir": path_str(&home), "config_path": path_str(&config)}]),
    );
    let r = w
        .tool("tickmon")
        .args(["submit", "--agent", "allegro", "--capability", "code=true", "--now", "2026-11-01T09:00:00Z"])
        .run();
    r.code(0);
    let rec = r.named("tick", "allegro");
    assert_eq!(rec["status"], "healthy", "{rec}");
    assert_eq!(
        rec["vitals"],
        json!({"gateway_running": null, "home_directory_accessible": true, "config_valid": true})
    );
    assert_eq!(rec["vitals_detail"]["gateway_running"], "no gateway configured: not checked");
    let file: Value = serde_json::from_str(&w.read("home/ticks/2026-11/allegro.json")).unwrap();
    assert_eq!(file["vitals"]["gateway_running"], Value::Null);
    assert_eq!(file["status"], "healthy");
    // The monitor reads it as any other tick.
    w.tool("tickmon").args(["check", "--month", "2026-11", "--now", NOW]).run().code(0);

    // The vitals it can take still decide: a broken config is critical, exit 1 ...
    std::fs::write(&config, "{\"model\": ").unwrap();
    let r = w.tool("tickmon").args(["submit", "--agent", "allegro", "--format", "text"]).run();
    r.code(1);
    r.stdout_has(": CRITICAL -> ").stdout_has("gateway_running              -    no gateway configured");
    // ... and both down is offline.
    std::fs::remove_dir_all(&home).unwrap();
    let r = w.tool("tickmon").args(["submit", "--agent", "allegro"]).run();
    r.code(1);
    assert_eq!(r.named("tick", "allegro")["status"], "offline");
}

#[test]
fn tickmon_submit_rejects_bad_ids_and_values() {
    let w = Workdir::new("tickmon-submit-bad");
    for bad in ["../etc/passwd", "a/b", ".hidden", ""] {
        let r = w.tool("tickmon").args(["submit", "--agent", bad, "--vital", "gateway_running=true"]).run();
        r.code(2);
        r.stderr_has("is not a valid agent id");
    }
    w.tool("tickmon").args(["submit", "--agent", "a", "--capability", "x=maybe"]).run().code(2).stderr_has("maybe");
    w.tool("tickmon").args(["submit", "--agent", "a", "--month", "2026-13"]).run().code(2);
    w.tool("tickmon").args(["submit", "--agent", "a", "--status", "fine"]).run().code(2);
    w.tool("tickmon").args(["submit", "--agent", "a", "--push"]).run().code(2).stderr_has("--git");
    assert!(!w.path("home/ticks").exists());
}

// ---------------------------------------------------------------------------------------
// git

fn git(w: &Workdir, dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("HOME", &w.root)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CEILING_DIRECTORIES", &w.root)
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn submit_stated(w: &Workdir, agent: &str, ticks: &Path, extra: &[&str]) -> crate::util::Run {
    w.tool("tickmon")
        .args(["submit", "--agent", agent, "--ticks-dir"])
        .arg(ticks)
        .args(["--vital", "gateway_running=true", "--vital", "home_directory_accessible=true"])
        .args(["--vital", "config_valid=true", "--now", "2026-11-01T09:00:00Z"])
        .args(extra)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        // The workdir lives inside the project's own repository: never look above it.
        .env("GIT_CEILING_DIRECTORIES", &w.root)
        .run()
}

#[test]
fn tickmon_submit_git_commits_in_the_ticks_repository() {
    let w = Workdir::new("tickmon-git");
    let repo = w.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&w, &repo, &["-c", "init.defaultBranch=main", "init", "-q"]);
    let ticks = repo.join("ticks");
    let r = submit_stated(&w, "atlas", &ticks, &["--git"]);
    r.code(0);
    let rec = r.named("tick", "atlas");
    let head = git(&w, &repo, &["rev-parse", "HEAD"]);
    assert_eq!(rec["commit"].as_str().unwrap(), head.trim());
    assert_eq!(git(&w, &repo, &["log", "-1", "--format=%s%n%an"]), "tick: atlas 2026-11 healthy\ntickmon\n");
    assert_eq!(git(&w, &repo, &["ls-files"]), "ticks/2026-11/atlas.json\n");
    // --push without a remote commits and says so.
    let r = submit_stated(&w, "beacon", &ticks, &["--git", "--push"]);
    r.code(0).stderr_has("no remote");
    assert_eq!(r.named("tick", "beacon")["pushed"], false);
    // The same tick again: nothing to commit.
    let r = submit_stated(&w, "beacon", &ticks, &["--git"]);
    r.code(0);
    assert_eq!(r.named("tick", "beacon")["commit"], Value::Null);
    // Outside a repository, --git changes nothing.
    let r = submit_stated(&w, "atlas", &w.path("loose"), &["--git"]);
    r.code(2).stderr_has("not in a git repository");
    assert!(!w.path("loose/2026-11/atlas.json").exists());
}

#[test]
fn tickmon_two_hosts_report_through_one_bare_repository() {
    let w = Workdir::new("tickmon-git-hosts");
    let hub = w.path("hub.git");
    git(&w, &w.root, &["-c", "init.defaultBranch=main", "init", "-q", "--bare", &path_str(&hub)]);
    for host in ["host-a", "host-b"] {
        git(&w, &w.root, &["-c", "init.defaultBranch=main", "clone", "-q", &path_str(&hub), host]);
    }
    let ticks_a = w.path("host-a/ticks");
    let ticks_b = w.path("host-b/ticks");
    // Host A pushes first; host B, an empty clone, is rejected, rebases and pushes.
    let a = submit_stated(&w, "atlas", &ticks_a, &["--git", "--push"]);
    a.code(0);
    assert_eq!(a.named("tick", "atlas")["pushed"], true);
    let b = submit_stated(&w, "beacon", &ticks_b, &["--git", "--push"]);
    b.code(0);
    assert_eq!(b.named("tick", "beacon")["pushed"], true);
    assert_eq!(b.named("tick", "beacon")["remote"], "origin");
    // Host A is now behind; its next tick rebases over B's.
    let a2 = submit_stated(&w, "cinder", &ticks_a, &["--git", "--push"]);
    a2.code(0);
    // A fresh clone sees every tick and every commit.
    git(&w, &w.root, &["clone", "-q", &path_str(&hub), "reader"]);
    let log = git(&w, &w.path("reader"), &["log", "--format=%s"]);
    let mut subjects: Vec<&str> = log.lines().collect();
    subjects.sort();
    assert_eq!(
        subjects,
        ["tick: atlas 2026-11 healthy", "tick: beacon 2026-11 healthy", "tick: cinder 2026-11 healthy"]
    );
    registry(&w, json!([{"id": "atlas"}, {"id": "beacon"}, {"id": "cinder"}]));
    let r = w.tool("tickmon").args(["check", "--ticks-dir"]).arg(w.path("reader/ticks")).args(["--now", NOW]).run();
    r.code(0);
    for agent in ["atlas", "beacon", "cinder"] {
        assert_eq!(r.named("tick", agent)["status"], "healthy");
    }
}

// ---------------------------------------------------------------------------------------
// check

fn four_agents(w: &Workdir) {
    registry(
        w,
        json!([
            {"id": "atlas", "name": "Atlas", "active": true, "home_dir": "/srv/atlas", "config_path": "/srv/atlas/c.json"},
            {"id": "beacon", "name": "Beacon", "active": true},
            {"id": "cinder", "name": "Cinder", "active": true},
            {"id": "retired", "name": "Retired", "active": false}
        ]),
    );
    tick(
        w,
        "atlas",
        json!({"agent": "atlas", "month": "2026-11", "status": "healthy", "timestamp": "2026-11-01T09:00:00Z",
        "vitals": {"gateway_running": true, "home_directory_accessible": true, "config_valid": true}, "capabilities": {"code": true}}),
    );
    tick(
        w,
        "cinder",
        json!({"agent": "cinder", "month": "2026-11", "status": "critical", "timestamp": "2026-11-02T09:00:00Z",
        "vitals": {"gateway_running": false, "home_directory_accessible": true, "config_valid": true}, "capabilities": {"code": false}}),
    );
}

#[test]
fn tickmon_check_reports_every_active_agent() {
    let w = Workdir::new("tickmon-check");
    four_agents(&w);
    let r = w.tool("tickmon").args(["check", "--now", NOW]).run();
    r.code(1);
    let ticks = r.kind("tick");
    assert_eq!(ticks.iter().map(|t| t["agent"].as_str().unwrap()).collect::<Vec<_>>(), ["atlas", "beacon", "cinder"]);
    let atlas = r.named("tick", "atlas");
    assert_eq!(atlas["status"], "healthy");
    assert_eq!(atlas["month"], "2026-11");
    assert_eq!(atlas["due"], "2026-11-04T00:00:00.000Z");
    assert_eq!(atlas["capabilities"], json!({"code": true}));
    assert_eq!(atlas["timestamp"], "2026-11-23T10:30:00.000Z");
    assert_eq!(r.named("tick", "beacon")["status"], "missing");
    let cinder = r.named("tick", "cinder");
    assert_eq!(cinder["status"], "critical");
    assert_eq!(
        cinder["detail"],
        "critical: gateway_running false, capability code lost (submitted 2026-11-02T09:00:00Z)"
    );
    // RCA alerts are the default: one for the missing agent, one for the critical one.
    let titles: Vec<String> = r.kind("alert").iter().map(|a| a["title"].as_str().unwrap().to_string()).collect();
    assert_eq!(
        titles,
        [
            "RCA-AGENT: beacon failed to submit monthly tick (2026-11)",
            "RCA-AGENT: cinder reported critical status (2026-11)"
        ]
    );
    let r = w.tool("tickmon").args(["check", "--no-rca", "--now", NOW]).run();
    r.code(1);
    assert!(r.kind("alert").is_empty(), "--no-rca: only the tick records");

    // All well: exit 0.
    tick(&w, "beacon", json!({"agent": "beacon", "status": "degraded"}));
    tick(&w, "cinder", json!({"agent": "cinder", "status": "healthy"}));
    w.tool("tickmon").args(["check", "--now", NOW]).run().code(0);
}

#[test]
fn tickmon_check_rca_alerts_go_to_notify_as_they_are() {
    let w = Workdir::new("tickmon-rca");
    four_agents(&w);
    w.write(
        "home/ticks/2026-10/beacon.json",
        pretty(&json!({"agent": "beacon", "status": "degraded", "timestamp": "2026-10-01T08:00:00Z"})),
    );
    let r = w.tool("tickmon").args(["check", "--rca", "--now", NOW]).run();
    r.code(1);
    let alerts = r.kind("alert");
    assert_eq!(alerts.len(), 2);
    let missing = r.named("alert", "RCA-AGENT: beacon failed to submit monthly tick (2026-11)");
    assert_eq!(missing["topic"], "agent-health");
    assert_eq!(missing["level"], "error");
    assert_eq!(missing["status"], "firing");
    assert_eq!(missing["subject"], "tick:beacon:2026-11");
    assert_eq!(missing["labels"], json!(["agent-health", "rca-required", "auto-generated"]));
    assert_eq!(missing["sinks"], json!([]));
    let body = missing["body"].as_str().unwrap();
    assert!(body.contains("The last tick on record is for 2026-10: status **degraded**"), "{body}");
    assert!(body.contains("tickmon submit --agent beacon --month 2026-11 --git --push"), "{body}");
    let critical = r.named("alert", "RCA-AGENT: cinder reported critical status (2026-11)");
    assert_eq!(critical["level"], "critical");
    assert!(critical["body"].as_str().unwrap().contains("  - gateway_running: **no**"));
    // Each alert follows its agent's tick record.
    let kinds: Vec<String> = r.records().iter().map(|v| v["kind"].as_str().unwrap().to_string()).collect();
    assert_eq!(kinds, ["tick", "tick", "alert", "tick", "alert"]);
}

#[test]
fn tickmon_check_window_default_month_and_text() {
    let w = Workdir::new("tickmon-window");
    four_agents(&w);
    // Inside the window of November nothing is missing yet.
    let r = w.tool("tickmon").args(["check", "--month", "2026-11", "--now", "2026-11-02T12:00:00Z"]).run();
    r.code(1); // cinder reported critical
    assert_eq!(r.named("tick", "beacon")["status"], "pending");
    // On the 2nd of December the default month is still November (the Agent Tick Protocol's rule)...
    let r = w.tool("tickmon").args(["check", "--now", "2026-12-02T00:00:00Z"]).run();
    assert_eq!(r.named("tick", "atlas")["month"], "2026-11");
    // ...and from the 4th it is December, with a shorter window earlier.
    let r = w.tool("tickmon").args(["check", "--now", "2026-12-04T00:00:00Z"]).run();
    assert_eq!(r.named("tick", "atlas")["month"], "2026-12");
    assert_eq!(r.named("tick", "atlas")["status"], "missing");
    let r = w.tool("tickmon").args(["check", "--grace-hours", "12", "--now", "2026-12-01T13:00:00Z"]).run();
    assert_eq!(r.named("tick", "atlas")["month"], "2026-12");
    // The people's view.
    let r = w.tool("tickmon").args(["check", "--format", "text", "--rca", "--now", NOW]).run();
    r.code(1);
    r.stdout_has("Agent ticks for 2026-11 (due 2026-11-04T00:00:00.000Z)");
    r.stdout_has("  beacon  MISSING   no tick; it was due 2026-11-04T00:00:00.000Z (19d 10h ago)");
    r.stdout_has("3 agent(s): 1 healthy, 0 degraded, 2 failed, 0 pending");
    r.stdout_has("RCA: RCA-AGENT: cinder reported critical status (2026-11)");
}

#[test]
fn tickmon_check_bad_registry_and_ticks() {
    let w = Workdir::new("tickmon-check-bad");
    w.tool("tickmon").args(["check"]).run().code(2).stderr_has("cannot read agent registry");
    w.write("home/config/agent-registry.json", "{\"agents\": [");
    w.tool("tickmon").args(["check"]).run().code(2).stderr_has("agent-registry.json:1:");
    registry(&w, json!([{"id": "ok"}, {"id": "../../etc"}, {"name": "no id"}]));
    tick(&w, "ok", json!({"agent": "ok", "status": "healthy"}));
    let r = w.tool("tickmon").args(["check", "--now", NOW]).run();
    r.code(1);
    r.stderr_has("agents[1] (../../etc): id: not a valid agent id");
    let findings = r.kind("finding");
    assert_eq!(findings.len(), 2);
    assert_eq!(findings[0]["problem"], "invalid_agent");
    assert_eq!(r.named("tick", "ok")["status"], "healthy");
    // A tick file that is not a tick is a finding, and the tick is invalid: not missing.
    tick(&w, "ok", json!({"agent": "ok", "status": "splendid"}));
    let r = w.tool("tickmon").args(["check", "--now", NOW]).run();
    r.code(1).stderr_has("status: 'splendid'");
    assert_eq!(r.named("tick", "ok")["status"], "invalid");
    assert!(r.kind("alert").is_empty(), "no RCA for a tick that was submitted");
    assert!(r.kind("finding").iter().any(|f| f["problem"] == "invalid_tick"));
}

// ---------------------------------------------------------------------------------------
// The pipe contract (check reads NDJSON files or stdin when named)

#[test]
fn tickmon_empty_input_is_empty_output() {
    let w = Workdir::new("tickmon-pipe-empty");
    registry(&w, json!([]));
    let r = w.tool("tickmon").args(["check", "-", "--now", NOW]).stdin("").run();
    r.code(0);
    assert!(r.stdout.is_empty() && r.stderr.is_empty(), "{r:?}");
}

#[test]
fn tickmon_malformed_line_is_named_and_skipped() {
    let w = Workdir::new("tickmon-pipe-bad");
    registry(&w, json!([{"id": "a1"}]));
    tick(&w, "a1", json!({"agent": "a1", "status": "healthy"}));
    let input = "{\"kind\":\"check\",\"name\":\"web\",\"status\":\"up\",\"zone\":\"eu\"}\n{\"name\": oops}\n\n{\"kind\":\"uptime\",\"name\":\"web\"}\n";
    let r = w.tool("tickmon").args(["check", "-", "--now", NOW]).stdin(input).run();
    r.code(3);
    r.stderr_has("tickmon: stdin:2: expected value at column 10");
    let recs = r.records();
    assert_eq!(
        recs[0],
        json!({"kind": "check", "name": "web", "status": "up", "zone": "eu"}),
        "passed through unchanged"
    );
    assert_eq!(recs[1], json!({"kind": "uptime", "name": "web"}));
    assert_eq!(r.named("tick", "a1")["status"], "healthy");
    let strict = w.tool("tickmon").args(["check", "-", "--strict", "--now", NOW]).stdin(input).run();
    strict.code(2);
    strict.stderr_has("tickmon: stdin:2: expected value at column 10");
}

#[test]
fn tickmon_ticks_on_the_stream_count() {
    let w = Workdir::new("tickmon-pipe-ticks");
    registry(&w, json!([{"id": "edge"}]));
    // A tick submitted on another host, carried over ssh, counts like a tick file.
    let input = format!(
        "{}\n",
        json!({"kind": "tick", "agent": "edge", "month": "2026-11", "status": "degraded", "timestamp": "2026-11-01T00:00:00Z",
               "vitals": {"gateway_running": true}, "capabilities": {"gpu": false}})
    );
    let r = w.tool("tickmon").args(["check", "-", "--now", NOW]).stdin(&input).run();
    r.code(0);
    assert_eq!(r.records().len(), 1, "{r:?}");
    assert_eq!(r.named("tick", "edge")["status"], "degraded");
}

#[test]
fn tickmon_stdout_closed_early_is_silent_success() {
    let w = Workdir::new("tickmon-pipe-head");
    registry(&w, json!([{"id": "a1"}]));
    let input: String = (0..3000)
        .map(|i| {
            format!("{}\n", json!({"kind": "check", "name": format!("svc-{i:04}-{}", "x".repeat(60)), "status": "up"}))
        })
        .collect();
    let first = w.tool("tickmon").args(["check", "-", "--now", NOW]).first_line_then_close(input);
    assert!(first.contains("\"kind\":\"check\""), "{first}");
}

// ---------------------------------------------------------------------------------------
// serve

/// A running `tickmon serve` on 127.0.0.1, port 0.
pub(crate) struct Serve {
    child: Child,
    addr: String,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    /// The threads reading stdout and stderr: joined once the server has ended, so that what
    /// it said last is in the buffers before a test reads them.
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Serve {
    pub(crate) fn start(w: &Workdir, extra: &[&str]) -> Serve {
        Serve::try_start(w, extra).unwrap_or_else(|e| panic!("serve did not start: {e}"))
    }

    fn try_start(w: &Workdir, extra: &[&str]) -> Result<Serve, String> {
        let mut t = w.tool("tickmon").arg("serve");
        if !extra.contains(&"--listen") {
            t = t.args(["--listen", "127.0.0.1:0"]);
        }
        Serve::from_child(t.args(extra).spawn())
    }

    /// A server started some other way (under `sh` with limits set, say).
    fn from_child(mut child: Child) -> Result<Serve, String> {
        drop(child.stdin.take());
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let (err_pipe, err_buf) = (child.stderr.take().unwrap(), stderr.clone());
        let err_reader = std::thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines().map_while(Result::ok) {
                err_buf.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
            }
        });
        let (out_pipe, out_buf) = (child.stdout.take().unwrap(), stdout.clone());
        let out_reader = std::thread::spawn(move || {
            for line in BufReader::new(out_pipe).lines().map_while(Result::ok) {
                out_buf.lock().unwrap().push(line);
            }
        });
        match rx.recv_timeout(crate::util::limit(30.0)) {
            Ok(addr) => Ok(Serve { child, addr, stdout, stderr, readers: vec![err_reader, out_reader] }),
            Err(_) => {
                let status = child.wait().map(|s| format!("{s}")).unwrap_or_default();
                std::thread::sleep(Duration::from_millis(100));
                Err(format!("{status}: {}", stderr.lock().unwrap()))
            }
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The `heartbeat` records written so far.
    fn records(&self) -> Vec<Value> {
        self.stdout.lock().unwrap().iter().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.drain();
    }

    fn terminate(&mut self) -> Option<i32> {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::Signal::SIGTERM)
            .unwrap();
        let code = self.child.wait().unwrap().code();
        self.drain();
        code
    }

    /// Wait for the readers to reach the end of the server's output (it has exited).
    fn drain(&mut self) {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent(token: Option<&str>) -> (ureq::Agent, Option<String>) {
    let a = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(crate::util::limit(20.0)))
        .build()
        .new_agent();
    (a, token.map(|t| format!("Bearer {t}")))
}

/// Send a request; the status and the body (parsed when it is JSON).
fn call(method: &str, url: &str, body: Option<(&str, &str)>, auth: Option<&str>) -> (u16, Value) {
    let (a, _) = agent(None);
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    if let Some(h) = auth {
        req = req.header("Authorization", h);
    }
    let resp = match body {
        Some((ct, b)) => a.run(req.header("Content-Type", ct).body(b.to_string()).unwrap()),
        None => a.run(req.body(()).unwrap()),
    };
    let mut resp = resp.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let code = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (code, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

pub(crate) fn post(url: &str, body: &str) -> (u16, Value) {
    call("POST", url, Some(("application/json", body)), None)
}

fn get(url: &str) -> (u16, Value) {
    call("GET", url, None, None)
}

/// Raw bytes to the server; what it answered (until it closes or goes quiet).
fn raw(addr: &str, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.windows(4).any(|w| w == b"\r\n\r\n") && String::from_utf8_lossy(&out).contains("}") {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn tickmon_serve_speaks_the_heartbeat_api() {
    let w = Workdir::new("tickmon-serve-api");
    let s = Serve::start(&w, &[]);
    let (code, v) = post(&s.url("/heartbeat/a1"), r#"{"metadata": {"role": "lead", "cell": "c1"}}"#);
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        (v["status"].as_str(), v["agent_id"].as_str(), v["next_heartbeat"].as_u64()),
        (Some("ok"), Some("a1"), Some(30))
    );
    assert!(v["timestamp"].as_f64().unwrap() > 1.7e9);
    // An empty body is a heartbeat too.
    assert_eq!(call("POST", &s.url("/heartbeat/a2"), None, None).0, 200);

    let (code, st) = get(&s.url("/agent/a1"));
    assert_eq!(code, 200);
    let keys: Vec<&str> = st.as_object().unwrap().keys().map(String::as_str).collect();
    for k in [
        "agent_id",
        "status",
        "last_heartbeat",
        "last_response",
        "consecutive_failures",
        "response_time",
        "error_message",
        "metadata",
        "heartbeats",
        "last_heartbeat_at",
        "last_response_at",
    ] {
        assert!(keys.contains(&k), "{k} missing from {st}");
    }
    assert_eq!((st["status"].as_str(), st["heartbeats"].as_u64()), (Some("healthy"), Some(1)));
    assert_eq!(st["metadata"], json!({"role": "lead", "cell": "c1"}));
    assert_eq!(st["error_message"], Value::Null);
    assert!(st["last_heartbeat_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(get(&s.url("/agent/nobody")), (404, json!({"error": "unknown agent"})));

    // One failure degrades, three make unhealthy, a heartbeat heals.
    let (code, st) = post(&s.url("/heartbeat/a1/fail"), r#"{"error": "gateway timeout"}"#);
    assert_eq!(
        (code, st["status"].as_str(), st["error_message"].as_str()),
        (200, Some("degraded"), Some("gateway timeout"))
    );
    let (_, st) = call("POST", &s.url("/heartbeat/a1/fail"), Some(("text/plain", "disk full\n")), None);
    assert_eq!((st["consecutive_failures"].as_u64(), st["error_message"].as_str()), (Some(2), Some("disk full")));
    let (_, st) = call("POST", &s.url("/heartbeat/a1/fail"), None, None);
    assert_eq!((st["status"].as_str(), st["consecutive_failures"].as_u64()), (Some("unhealthy"), Some(3)));
    let (_, health) = get(&s.url("/health"));
    assert_eq!(
        (health["total_agents"].as_u64(), health["unhealthy"].as_u64(), health["healthy"].as_u64()),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!(health["agents"]["a1"]["status"], "unhealthy");
    assert_eq!(post(&s.url("/heartbeat/a1"), r#"{"metadata": {"cell": "c2"}}"#).0, 200);
    let (_, st) = get(&s.url("/agent/a1"));
    assert_eq!(
        (st["status"].as_str(), st["consecutive_failures"].as_u64(), st["heartbeats"].as_u64()),
        (Some("healthy"), Some(0), Some(2))
    );
    assert_eq!(st["metadata"], json!({"role": "lead", "cell": "c2"}), "metadata merges");

    // Metrics in the Prometheus text format.
    let (code, m) = get(&s.url("/metrics"));
    assert_eq!(code, 200);
    let m = m.as_str().unwrap();
    assert!(m.contains("# TYPE tickmon_agent_heartbeats_total counter\n"), "{m}");
    assert!(m.contains("tickmon_agent_heartbeats_total{agent=\"a1\"} 2\n"), "{m}");
    assert!(m.contains("tickmon_agents{status=\"healthy\"} 2\n"), "{m}");
    assert!(m.contains("tickmon_agent_failures_total{agent=\"a1\"} 3\n"), "{m}");

    // Forgetting an agent.
    assert_eq!(
        call("DELETE", &s.url("/agent/a2"), None, None),
        (200, json!({"status": "forgotten", "agent_id": "a2"}))
    );
    assert_eq!(get(&s.url("/agent/a2")).0, 404);
    assert_eq!(call("DELETE", &s.url("/agent/a2"), None, None).0, 404);

    // Every status change went to stdout as a heartbeat record.
    assert!(wait_until(10.0, || s.records().len() >= 5));
    let changes: Vec<String> = s
        .records()
        .iter()
        .filter(|r| r["agent"] == "a1")
        .map(|r| format!("{}>{}", r["previous_status"].as_str().unwrap_or("new"), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(changes, ["new>healthy", "healthy>degraded", "degraded>unhealthy", "unhealthy>healthy"]);
    assert!(s.records().iter().all(|r| r["kind"] == "heartbeat"));
}

#[test]
fn tickmon_serve_refuses_malformed_requests_and_keeps_serving() {
    let w = Workdir::new("tickmon-serve-bad");
    let s = Serve::start(&w, &["--max-body", "1024"]);
    let long = "a".repeat(129);
    for path in ["/heartbeat/..%2Fetc", "/heartbeat/a%20b", &format!("/heartbeat/{long}"), "/heartbeat/.hidden"] {
        let (code, v) = post(&s.url(path), "{}");
        assert_eq!(code, 400, "{path}: {v}");
        assert!(v["error"].as_str().unwrap().contains("invalid agent id"), "{v}");
    }
    assert_eq!(post(&s.url("/heartbeat/a1"), "{\"metadata\": ").0, 400);
    assert_eq!(post(&s.url("/heartbeat/a1"), "[1, 2]").0, 400);
    assert_eq!(post(&s.url("/heartbeat/a1"), r#"{"metadata": "x"}"#).0, 400);
    assert_eq!(post(&s.url("/heartbeat/a1"), r#"{"response_time": -1}"#).0, 400);
    assert_eq!(post(&s.url("/heartbeat/a1/fail"), "{nope").0, 400);
    let (code, v) = post(&s.url("/heartbeat/a1"), &format!("{{\"metadata\": {{\"x\": \"{}\"}}}}", "y".repeat(2000)));
    assert_eq!((code, v["error"].as_str()), (413, Some("request body larger than 1024 bytes")));
    let (code, v) = get(&s.url("/heartbeat/a1"));
    assert_eq!((code, v["error"].as_str()), (405, Some("method not allowed (allowed: POST)")));
    assert_eq!(call("PUT", &s.url("/health"), None, None).0, 405);
    assert_eq!(get(&s.url("/nowhere")).0, 404);
    assert_eq!(get(&s.url("/agent/a1/extra")).0, 404);

    // A declared length far beyond memory, a chunked body past the limit, a slowloris that
    // never sends its body, garbage instead of HTTP: each refused, none takes the server down.
    let huge = raw(&s.addr, b"POST /heartbeat/a1 HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999\r\n\r\nabc");
    assert!(huge.starts_with("HTTP/1.1 413"), "{huge}");
    let mut chunked = b"POST /heartbeat/a1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        chunked.extend_from_slice(format!("400\r\n{}\r\n", "z".repeat(1024)).as_bytes());
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert!(raw(&s.addr, &chunked).starts_with("HTTP/1.1 413"));
    let mut slow = TcpStream::connect(&s.addr).unwrap();
    slow.write_all(b"POST /heartbeat/a1 HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{").unwrap();
    let garbage = raw(&s.addr, b"\x16\x03\x01\x02\x00 nonsense\r\n\r\n");
    assert!(garbage.is_empty() || garbage.starts_with("HTTP/1.1 400"), "{garbage}");

    let (code, _) = post(&s.url("/heartbeat/a1"), r#"{"metadata": {"ok": true}}"#);
    assert_eq!(code, 200, "the server keeps serving: {}", s.stderr());
    let (_, st) = get(&s.url("/agent/a1"));
    assert_eq!(st["heartbeats"], 1, "nothing refused was recorded");
    drop(slow);
}

#[test]
fn tickmon_serve_acknowledged_heartbeats_survive_kill_9() {
    let w = Workdir::new("tickmon-serve-kill");
    let state = w.path("state/hb.json");
    let mut s = Serve::start(&w, &["--state", &path_str(&state)]);
    let per_agent = 150;
    let acked: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|n| {
                let url = s.url(&format!("/heartbeat/agent-{n}"));
                scope.spawn(move || {
                    let (a, _) = agent(None);
                    let mut ok = 0u64;
                    for i in 0..per_agent {
                        let body = json!({"metadata": {"seq": i}}).to_string();
                        let resp = a.post(&url).header("Content-Type", "application/json").send(body).unwrap();
                        if resp.status().as_u16() == 200 {
                            ok += 1;
                        }
                    }
                    ok
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(acked, vec![per_agent; 4]);
    s.kill9();

    // Read while nothing runs: what was acknowledged is there, counted once.
    let r = w.tool("tickmon").args(["heartbeats", "--state"]).arg(&state).run();
    r.code(0);
    for n in 0..4 {
        let rec = r.named("heartbeat", &format!("agent-{n}"));
        assert_eq!(rec["heartbeats"], per_agent, "{rec}");
        assert_eq!(rec["metadata"]["seq"], per_agent - 1);
        assert_eq!(rec["status"], "healthy");
    }
    // A new server picks the state up, and again after being killed mid-life.
    let mut s2 = Serve::start(&w, &["--state", &path_str(&state)]);
    assert!(s2.stderr().contains("4 agent(s)"), "{}", s2.stderr());
    let (_, st) = post(&s2.url("/heartbeat/agent-0/fail"), r#"{"error": "oom"}"#);
    assert_eq!(st["heartbeats"], per_agent);
    s2.kill9();
    let s3 = Serve::start(&w, &["--state", &path_str(&state)]);
    let (_, st) = get(&s3.url("/agent/agent-0"));
    assert_eq!((st["status"].as_str(), st["error_message"].as_str()), (Some("degraded"), Some("oom")));
}

#[test]
#[ignore = "slow: waits out heartbeat timeouts; scripts/test.sh runs it"]
fn tickmon_serve_silence_counts_as_failure_and_a_heartbeat_heals() {
    let w = Workdir::new("tickmon-serve-timeout");
    let s = Serve::start(&w, &["--timeout", "1"]);
    assert_eq!(post(&s.url("/heartbeat/quiet"), "").0, 200);
    assert!(
        wait_until(20.0, || get(&s.url("/agent/quiet")).1["status"] == "degraded"),
        "never degraded: {}",
        get(&s.url("/agent/quiet")).1
    );
    let (_, st) = get(&s.url("/agent/quiet"));
    assert!(st["error_message"].as_str().unwrap().starts_with("no heartbeat for "), "{st}");
    assert!(wait_until(20.0, || get(&s.url("/agent/quiet")).1["status"] == "unhealthy"));
    assert_eq!(post(&s.url("/heartbeat/quiet"), "").0, 200);
    assert_eq!(get(&s.url("/agent/quiet")).1["consecutive_failures"], 0);
    assert!(wait_until(10.0, || s.records().iter().any(|r| r["status"] == "unhealthy")));
}

#[test]
fn tickmon_serve_stops_gracefully_and_saves_its_state() {
    let w = Workdir::new("tickmon-serve-term");
    let state = w.path("home/state/heartbeats.json");
    let mut s = Serve::start(&w, &["--fsync"]);
    for i in 0..20 {
        assert_eq!(post(&s.url("/heartbeat/a1"), &json!({"metadata": {"n": i}}).to_string()).0, 200);
    }
    assert_eq!(s.terminate(), Some(0));
    assert!(wait_until(5.0, || s.stderr().contains("stopped; state saved")), "{}", s.stderr());
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["agents"]["a1"]["heartbeats"], 20);
    assert_eq!(std::fs::metadata(w.path("home/state/heartbeats.json.journal")).unwrap().len(), 0);
}

#[test]
fn tickmon_serve_one_server_per_state_and_loopback_without_token() {
    let w = Workdir::new("tickmon-serve-guard");
    let _s = Serve::start(&w, &[]);
    let second = Serve::try_start(&w, &[]).err().expect("a second server on the same state must refuse");
    assert!(second.contains("another tickmon serve"), "{second}");
    let r = w.tool("tickmon").args(["serve", "--listen", "0.0.0.0:0", "--state"]).arg(w.path("other.json")).run();
    r.code(2).stderr_has("refusing to listen beyond loopback without --token-file");
    let r = w.tool("tickmon").args(["serve", "--now", NOW]).run();
    r.code(2).stderr_has("--now does not apply to serve");
    // Refused before the set-up reads it: an invalid time gets the same answer.
    let r = w.tool("tickmon").args(["serve"]).env("PITCREW_NOW", "yesterday").run();
    r.code(2).stderr_has("--now does not apply to serve");
}

#[test]
fn tickmon_serve_token_is_required_when_given() {
    let w = Workdir::new("tickmon-serve-token");
    let token_file = w.write("token", "s3cret-token-value\n");
    let s = Serve::start(&w, &["--token-file", &path_str(&token_file)]);
    let body = Some(("application/json", "{}"));
    let (code, v) = call("POST", &s.url("/heartbeat/a1"), body, None);
    assert_eq!((code, v["error"].as_str()), (401, Some("missing or wrong bearer token")));
    assert_eq!(call("POST", &s.url("/heartbeat/a1"), body, Some("Bearer s3cret-token-valuX")).0, 401);
    assert_eq!(call("POST", &s.url("/heartbeat/a1"), body, Some("Basic czNjcmV0")).0, 401);
    assert_eq!(call("GET", &s.url("/health"), None, None).0, 401);
    assert_eq!(call("POST", &s.url("/heartbeat/a1"), body, Some("Bearer s3cret-token-value")).0, 200);
    assert_eq!(call("GET", &s.url("/agent/a1"), None, Some("bearer s3cret-token-value")).0, 200);
    assert!(s.stderr().contains("can be read by other users"), "{}", s.stderr());
    // With a token, listening beyond loopback is allowed.
    let open =
        Serve::try_start(&w, &["--listen", "0.0.0.0:0", "--token-file", &path_str(&token_file), "--state", "x.json"]);
    assert!(open.is_ok(), "{:?}", open.err());
}

// ---------------------------------------------------------------------------------------
// heartbeats

#[test]
fn tickmon_heartbeats_prints_the_state_for_the_pipe() {
    let w = Workdir::new("tickmon-heartbeats");
    let state = w.path("home/state/heartbeats.json");
    {
        let mut s = Serve::start(&w, &[]);
        post(&s.url("/heartbeat/ok"), r#"{"metadata": {"v": 1}}"#);
        post(&s.url("/heartbeat/sick"), "");
        for _ in 0..3 {
            call("POST", &s.url("/heartbeat/sick/fail"), Some(("text/plain", "crash loop")), None);
        }
        // Read while the server runs.
        let r = w.tool("tickmon").args(["heartbeats"]).run();
        r.code(1);
        let sick = r.named("heartbeat", "sick");
        assert_eq!((sick["status"].as_str(), sick["consecutive_failures"].as_u64()), (Some("unhealthy"), Some(3)));
        assert_eq!(sick["error"], "crash loop");
        assert_eq!(r.named("heartbeat", "ok")["metadata"], json!({"v": 1}));
        s.kill9();
    }
    assert!(state.exists());
    let r = w.tool("tickmon").args(["heartbeats", "--agent", "ok"]).run();
    r.code(0);
    assert_eq!(r.records().len(), 1);
    // Silence, as the server would count it, without changing anything.
    let later = "2099-01-01T00:00:00Z";
    let r = w.tool("tickmon").args(["heartbeats", "--agent", "ok", "--timeout", "5m", "--now", later]).run();
    r.code(1);
    assert_eq!(r.named("heartbeat", "ok")["status"], "unhealthy");
    assert_eq!(
        w.tool("tickmon").args(["heartbeats", "--agent", "ok"]).run().named("heartbeat", "ok")["status"],
        "healthy"
    );
    let r = w.tool("tickmon").args(["heartbeats", "--format", "text"]).run();
    r.code(1).stdout_has("AGENT").stdout_has("unhealthy").stdout_has("crash loop");
    w.tool("tickmon")
        .args(["heartbeats", "--agent", "ghost"])
        .run()
        .code(1)
        .stderr_has("no heartbeat from agent 'ghost'");
    // No state yet: nothing to say, all well.
    let empty = Workdir::new("tickmon-heartbeats-none");
    let r = empty.tool("tickmon").args(["heartbeats"]).run();
    r.code(0);
    assert!(r.stdout.is_empty());
}

#[test]
#[ignore = "slow: waits out heartbeat timeouts; scripts/test.sh runs it"]
fn tickmon_heartbeats_silent_s_counts_from_the_last_heartbeat() {
    let w = Workdir::new("tickmon-silent");
    let started = std::time::Instant::now();
    let s = Serve::start(&w, &["--timeout", "1"]);
    assert_eq!(post(&s.url("/heartbeat/quiet"), "").0, 200);
    // The server counts a failure for every second of silence; each one moves the agent's
    // last response, never its last heartbeat.
    assert!(
        wait_until(30.0, || get(&s.url("/agent/quiet")).1["consecutive_failures"].as_u64() >= Some(3)),
        "{}",
        get(&s.url("/agent/quiet")).1
    );
    let r = w.tool("tickmon").arg("heartbeats").run();
    let rec = r.named("heartbeat", "quiet");
    let silent = rec["silent_s"].as_u64().unwrap();
    assert!(silent >= 3 && silent <= started.elapsed().as_secs() + 1, "silent for 3 s at least: {rec}");
    // At a fixed time: 11 s after the heartbeat, with --timeout 5 (two periods of silence).
    let last = time::OffsetDateTime::parse(
        rec["last_heartbeat"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let later = (last + time::Duration::seconds(11)).format(&time::format_description::well_known::Rfc3339).unwrap();
    drop(s);
    let r = w.tool("tickmon").args(["heartbeats", "--timeout", "5", "--now", &later]).run();
    let rec = r.named("heartbeat", "quiet");
    assert_eq!(rec["silent_s"], 11, "{rec}");
}

#[test]
fn tickmon_the_example_registry_loads() {
    let w = Workdir::new("tickmon-example");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/agent-registry.json");
    let r =
        w.tool("tickmon").args(["check", "--registry"]).arg(&example).args(["--month", "2026-11", "--now", NOW]).run();
    r.code(1);
    let agents: Vec<String> = r.kind("tick").iter().map(|t| t["agent"].as_str().unwrap().to_string()).collect();
    assert_eq!(agents, ["atlas", "beacon", "cinder"]);
    assert!(r.kind("tick").iter().all(|t| t["status"] == "missing"));
    assert!(r.stderr.is_empty(), "{r:?}");
}

// ---------------------------------------------------------------------------------------
// reliability: hostile requests and kill -9 under load

#[test]
fn tickmon_serve_deep_metadata_is_refused_and_the_state_stays_loadable() {
    let w = Workdir::new("tickmon-serve-deep");
    let state = w.path("state/hb.json");
    let mut s = Serve::start(&w, &["--state", &path_str(&state)]);
    // Deep enough to be valid JSON in a request, too deep once the state file nests it.
    let nested = |n: usize| format!("{{\"metadata\":{{\"k\":{}1{}}}}}", "[".repeat(n), "]".repeat(n));
    for n in [40, 125] {
        let (code, body) = post(&s.url("/heartbeat/deep"), &nested(n));
        assert_eq!(code, 400, "{body}");
        assert!(body["error"].as_str().unwrap().contains("nested deeper than 32"), "{body}");
    }
    assert_eq!(post(&s.url("/heartbeat/deep"), &nested(30)).0, 200);
    assert_eq!(s.terminate(), Some(0));
    let _again = Serve::start(&w, &["--state", &path_str(&state)]);
    let r = w.tool("tickmon").args(["heartbeats", "--state"]).arg(&state).run();
    r.code(0);
    assert_eq!(r.named("heartbeat", "deep")["heartbeats"], 1);
}

#[test]
#[ignore = "slow: a kill loop under load; scripts/test.sh runs it"]
fn tickmon_serve_kill_9_under_load_loses_nothing_acknowledged() {
    let w = Workdir::new("tickmon-serve-kill-load");
    let state = w.path("state/hb.json");
    let clients = 3;
    let mut acked = vec![0u64; clients];
    let mut sent = vec![0u64; clients];
    for round in 0..4u64 {
        let mut s = Serve::start(&w, &["--state", &path_str(&state)]);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let counts: Vec<(u64, u64)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..clients)
                .map(|n| {
                    let url = s.url(&format!("/heartbeat/load-{n}"));
                    let stop = stop.clone();
                    scope.spawn(move || {
                        let (a, _) = agent(None);
                        let (mut ok, mut tried) = (0u64, 0u64);
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            tried += 1;
                            match a.post(&url).header("Content-Type", "application/json").send("{}") {
                                Ok(r) if r.status().as_u16() == 200 => ok += 1,
                                _ => break,
                            }
                        }
                        (ok, tried)
                    })
                })
                .collect();
            // Kill at a different moment each round, while requests are in flight.
            std::thread::sleep(Duration::from_millis(150 + 97 * round));
            s.kill9();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (n, (ok, tried)) in counts.into_iter().enumerate() {
            acked[n] += ok;
            sent[n] += tried;
        }
    }
    let r = w.tool("tickmon").args(["heartbeats", "--state"]).arg(&state).run();
    r.code(0);
    for n in 0..clients {
        let got = r.named("heartbeat", &format!("load-{n}"))["heartbeats"].as_u64().unwrap();
        assert!(acked[n] > 0, "the load ran");
        assert!(
            got >= acked[n] && got <= sent[n],
            "agent {n}: {got} kept, {} acknowledged, {} sent",
            acked[n],
            sent[n]
        );
    }
}

/// Sentences (of prose wrapped over lines) that credit the Agent Ops Kit with a part of the
/// Agent Tick Protocol (registry, ticks, RCA) or of the Lazarus Pit (heartbeat endpoint,
/// mission cells, revival daemon).
fn misattributed(text: &str) -> Vec<String> {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let parts = ["heartbeat", "mission", "cell", "daemon", "tick", "registry", "rca", "reviv"];
    joined
        .split(". ")
        .filter(|s| s.contains("Agent Ops Kit"))
        .filter(|s| parts.iter().any(|p| s.to_lowercase().contains(p)))
        .map(String::from)
        .collect()
}

#[test]
fn tickmon_and_cellscan_name_the_seed_systems_they_follow() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("docs/tickmon.md"), root.join("docs/cellscan.md")];
    let mut dirs = vec![root.join("lib/src/tickmon"), root.join("lib/src/cellscan")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { dirs.push(p) } else { files.push(p) }
        }
    }
    let mut wrong = Vec::new();
    for f in &files {
        for s in misattributed(&std::fs::read_to_string(f).unwrap()) {
            wrong.push(format!("{}: {s}", f.display()));
        }
    }
    for tool in ["tickmon", "cellscan"] {
        let help = crate::util::Tool::new(tool).arg("--help").run();
        for s in misattributed(&help.stdout) {
            wrong.push(format!("{tool} --help: {s}"));
        }
    }
    assert!(wrong.is_empty(), "credited to the Agent Ops Kit:\n{}", wrong.join("\n"));
}

// ---------------------------------------------------------------------------------------
// serve against hostile clients and a hostile file system

/// Open `n` connections that send nothing, in bursts.
fn idle_connections(addr: &str, n: usize) -> Vec<TcpStream> {
    (0..n).filter_map(|_| TcpStream::connect(addr).ok()).collect()
}

fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn tickmon_serve_idle_connections_do_not_starve_agents_or_make_them_unhealthy() {
    let w = Workdir::new("tickmon-serve-starve");
    let s = Serve::start(
        &w,
        &["--max-connections", "64", "--max-connections-per-peer", "48", "--header-timeout", "2", "--timeout", "2"],
    );
    assert_eq!(post(&s.url("/heartbeat/busy"), "").0, 200);
    assert_eq!(post(&s.url("/heartbeat/quiet"), "").0, 200);
    // 300 idle connections at once, then more every 300 ms (each burst outlives the header
    // timeout's sweep only if it keeps coming); the agent keeps beating through it.
    let mut held = idle_connections(&s.addr, 300);
    let start = std::time::Instant::now();
    let mut slowest = Duration::ZERO;
    while start.elapsed() < Duration::from_secs(6) {
        held.extend(idle_connections(&s.addr, 40));
        let t = std::time::Instant::now();
        let (code, _) = post(&s.url("/heartbeat/busy"), "");
        slowest = slowest.max(t.elapsed());
        assert_eq!(code, 200, "an agent was refused under 300 idle connections: {}", s.stderr());
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(slowest < crate::util::limit(2.0), "a heartbeat took {slowest:?}");
    // `quiet` said nothing for 6 s (three timeouts), but the server was under pressure all
    // along: its silence is not counted.
    let (_, q) = get(&s.url("/agent/quiet"));
    assert_eq!(q["status"], "healthy", "{q}");
    let (_, m) = call("GET", &s.url("/metrics"), None, None);
    let m = m.as_str().unwrap().to_string();
    assert!(metric_value(&m, "tickmon_connections_evicted_total") > 200.0, "{m}");
    assert_eq!(metric_value(&m, "tickmon_server_under_pressure"), 1.0);
    assert!(metric_value(&m, "tickmon_connections") <= 64.0);
    let err = s.stderr();
    assert_eq!(err.matches("under pressure").count(), 1, "said once: {err}");
    let findings: Vec<Value> = s.records().into_iter().filter(|r| r["kind"] == "finding").collect();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(
        (findings[0]["problem"].as_str(), findings[0]["level"].as_str()),
        (Some("server_under_pressure"), Some("warning"))
    );
    assert!(s.records().iter().all(|r| r["status"] != "unhealthy" && r["status"] != "degraded"), "{:?}", s.records());
    drop(held);
}

#[test]
fn tickmon_serve_a_deleted_journal_or_lock_loses_nothing_acknowledged() {
    let w = Workdir::new("tickmon-serve-rm");
    let state = w.path("state/hb.json");
    let mut s = Serve::start(&w, &["--state", &path_str(&state)]);
    assert_eq!(post(&s.url("/heartbeat/a1"), "").0, 200);
    std::fs::remove_file(w.path("state/hb.json.journal")).unwrap();
    for _ in 0..13 {
        assert_eq!(post(&s.url("/heartbeat/a2"), "").0, 200);
    }
    s.kill9();
    let r = w.tool("tickmon").args(["heartbeats", "--state"]).arg(&state).run();
    assert_eq!(r.named("heartbeat", "a1")["heartbeats"], 1, "{r:?}");
    assert_eq!(r.named("heartbeat", "a2")["heartbeats"], 13, "{r:?}");
    // The lock file removed: a second server still cannot start on the same state.
    let s = Serve::start(&w, &["--state", &path_str(&state)]);
    std::fs::remove_file(w.path("state/hb.json.lock")).unwrap();
    let second = Serve::try_start(&w, &["--state", &path_str(&state)]).err().expect("a second server started");
    assert!(second.contains("another tickmon serve"), "{second}");
    assert_eq!(post(&s.url("/heartbeat/a2"), "").0, 200);
}

/// GET an answer larger than ureq's default limit of 10 MB.
fn get_large(url: &str) -> (u16, Value) {
    let (a, _) = agent(None);
    let mut resp = a.get(url).call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let code = resp.status().as_u16();
    let text = resp.body_mut().with_config().limit(256 << 20).read_to_string().unwrap();
    (code, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn tickmon_serve_health_leaves_metadata_out_and_bounds_memory_under_parallel_readers() {
    let w = Workdir::new("tickmon-serve-health");
    let s = Serve::start(&w, &["--max-body", "131072"]);
    let meta = "m".repeat(60_000);
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (url, meta) = (s.url(""), &meta);
            scope.spawn(move || {
                for i in 0..50 {
                    let body = json!({"metadata": {"blob": meta}}).to_string();
                    assert_eq!(post(&format!("{url}/heartbeat/agent-{t}-{i}"), &body).0, 200);
                }
            });
        }
    });
    let (code, h) = get_large(&s.url("/health"));
    assert_eq!((code, h["total_agents"].as_u64()), (200, Some(200)));
    assert!(h["agents"]["agent-0-0"].get("metadata").is_none(), "no metadata unless asked");
    assert_eq!(h["agents"]["agent-0-0"]["status"], "healthy");
    let (_, full) = get_large(&s.url("/health?metadata=1"));
    assert_eq!(full["agents"].as_object().unwrap().len(), 200);
    assert_eq!(full["agents"]["agent-3-49"]["metadata"]["blob"].as_str().map(str::len), Some(60_000));
    // Eight readers of 12 MB answers at once: the server holds a few chunks each.
    let before = peak_rss_kib(s.child.id());
    std::thread::scope(|scope| {
        for _ in 0..8 {
            let url = s.url("/health?metadata=1");
            scope.spawn(move || {
                let (a, _) = agent(None);
                let mut resp = a.get(&url).call().unwrap();
                let mut n = 0u64;
                let mut buf = vec![0u8; 1 << 16];
                let mut r = resp.body_mut().as_reader();
                while let Ok(k) = r.read(&mut buf) {
                    if k == 0 {
                        break;
                    }
                    n += k as u64;
                }
                assert!(n > 12_000_000, "{n} bytes");
            });
        }
    });
    let peak = peak_rss_kib(s.child.id());
    assert!(peak < before + 64 * 1024, "peak RSS went from {before} to {peak} KiB");
}

#[test]
fn tickmon_serve_that_cannot_save_its_state_says_so_and_exits_2() {
    let w = Workdir::new("tickmon-serve-full");
    let state = w.path("state/hb.json");
    // A first life writes a state of about 60 KB.
    let mut s = Serve::start(&w, &["--state", &path_str(&state)]);
    let big = json!({"metadata": {"blob": "x".repeat(60_000)}}).to_string();
    assert_eq!(post(&s.url("/heartbeat/a1"), &big).0, 200);
    assert_eq!(s.terminate(), Some(0));
    // The second may not write a file past 100 KB (`ulimit -f 200`, in blocks of 512
    // bytes; SIGXFSZ ignored, so the write fails with EFBIG as it would with ENOSPC): the
    // state of two such agents no longer fits when it stops.
    let script = format!(
        "trap '' XFSZ; ulimit -f 200; exec {} serve --listen 127.0.0.1:0 --state {}",
        crate::util::bin("tickmon").display(),
        path_str(&state)
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]).env("HOME", &w.root).env("AGENT_OPS_HOME", w.path("home"));
    cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut s = Serve::from_child(cmd.spawn().unwrap()).unwrap();
    assert_eq!(post(&s.url("/heartbeat/a2"), &big).0, 200);
    let code = s.terminate();
    let err = s.stderr();
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("the state was NOT saved") && err.contains("hb.json.journal"), "{err}");
    assert!(!err.contains("state saved"), "{err}");
    // The journal had it: the next start (no limit) replays it.
    let s = Serve::start(&w, &["--state", &path_str(&state)]);
    assert!(s.stderr().contains("2 agent(s)"), "{}", s.stderr());
}

// ---------------------------------------------------------------------------------------
// heartbeats --follow

/// A running `tickmon heartbeats --follow`: its records as they arrive, with when.
struct Follow {
    child: Child,
    lines: Arc<Mutex<Vec<(std::time::Instant, Value)>>>,
    stderr: Arc<Mutex<String>>,
}

impl Follow {
    fn start(w: &Workdir, extra: &[&str]) -> Follow {
        let mut child = w.tool("tickmon").args(["heartbeats", "--follow"]).args(extra).spawn();
        drop(child.stdin.take());
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (out_pipe, buf) = (child.stdout.take().unwrap(), lines.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out_pipe).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                buf.lock().unwrap().push((std::time::Instant::now(), v));
            }
        });
        let (err_pipe, err_buf) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(err_pipe).read_to_string(&mut s);
            err_buf.lock().unwrap().push_str(&s);
        });
        Follow { child, lines, stderr }
    }

    /// The records of one agent so far, with when they arrived.
    fn of(&self, agent: &str) -> Vec<(std::time::Instant, Value)> {
        self.lines.lock().unwrap().iter().filter(|(_, v)| v["agent"] == agent).cloned().collect()
    }

    fn statuses(&self, agent: &str) -> Vec<String> {
        self.of(agent).iter().map(|(_, v)| v["status"].as_str().unwrap_or("").to_string()).collect()
    }

    /// When the first record of the agent with this status arrived.
    fn seen(&self, agent: &str, status: &str, secs: f64) -> Option<std::time::Instant> {
        let mut at = None;
        wait_until(secs, || {
            at = self.of(agent).iter().find(|(_, v)| v["status"] == status).map(|(t, _)| *t);
            at.is_some()
        });
        at
    }

    fn terminate(&mut self) -> Option<i32> {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::Signal::SIGTERM)
            .unwrap();
        let deadline = std::time::Instant::now() + crate::util::limit(5.0);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            assert!(std::time::Instant::now() < deadline, "did not stop within 5 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn tickmon_heartbeats_follow_starts_with_every_agent_and_stops_cleanly() {
    let w = Workdir::new("tickmon-follow-basics");
    {
        let mut s = Serve::start(&w, &[]);
        assert_eq!(post(&s.url("/heartbeat/atlas"), "").0, 200);
        assert_eq!(post(&s.url("/heartbeat/beacon"), "").0, 200);
        s.kill9();
    }
    // The first output is every agent's state; then it waits (nothing changes), until SIGTERM.
    let mut f = Follow::start(&w, &["--timeout", "1h"]);
    assert!(wait_until(20.0, || f.lines.lock().unwrap().len() == 2), "{:?}", f.lines.lock().unwrap());
    for agent in ["atlas", "beacon"] {
        let (_, rec) = &f.of(agent)[0];
        assert_eq!((rec["status"].as_str(), rec["silent"].as_bool()), (Some("healthy"), Some(false)), "{rec}");
        assert_eq!(rec["previous_status"], Value::Null);
    }
    assert_eq!(f.terminate(), Some(0));
    assert!(f.stderr.lock().unwrap().is_empty(), "{}", f.stderr.lock().unwrap());
    // The reader going away ends it too, silently, with 0.
    let first =
        w.tool("tickmon").args(["heartbeats", "--follow", "--agent", "beacon"]).first_line_then_close(String::new());
    assert!(first.contains("\"agent\":\"beacon\""), "{first}");
    // The human view is for the batch.
    w.tool("tickmon")
        .args(["heartbeats", "--follow", "--format", "text"])
        .run_within(30)
        .code(2)
        .stderr_has("--follow writes records");
}

#[test]
#[ignore = "slow: waits out heartbeat timeouts; scripts/test.sh runs it"]
fn tickmon_heartbeats_follow_announces_a_silent_agent_within_its_timeout() {
    let w = Workdir::new("tickmon-follow");
    let timeout = 2.0;
    let mut s = Serve::start(&w, &["--timeout", "2"]);
    assert_eq!(post(&s.url("/heartbeat/steady"), "").0, 200);
    assert_eq!(post(&s.url("/heartbeat/quiet"), "").0, 200);
    // `steady` keeps beating twice a second until told to stop.
    let beating = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let beater = {
        let (beating, url) = (beating.clone(), s.url("/heartbeat/steady"));
        std::thread::spawn(move || {
            while beating.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = post(&url, "");
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    let mut f = Follow::start(&w, &["--timeout", "2"]);
    assert!(f.seen("quiet", "healthy", 20.0).is_some(), "no first record: {}", f.stderr.lock().unwrap());
    // `quiet` beats once more, then falls silent: announced once its silence passes the timeout.
    assert_eq!(post(&s.url("/heartbeat/quiet"), "").0, 200);
    let last_beat = std::time::Instant::now();
    let degraded = f.seen("quiet", "degraded", 30.0).expect("the silent agent was never reported");
    let after = degraded.duration_since(last_beat).as_secs_f64();
    let slack = crate::util::limit(2.5).as_secs_f64();
    assert!(after >= timeout - 0.2 && after <= timeout + slack, "reported {after:.2} s after its last heartbeat");
    let rec = f.of("quiet").iter().find(|(_, v)| v["status"] == "degraded").unwrap().1.clone();
    assert_eq!((rec["silent"].as_bool(), rec["previous_status"].as_str()), (Some(true), Some("healthy")), "{rec}");
    assert!(rec["error"].as_str().unwrap_or("").starts_with("no heartbeat for "), "{rec}");
    assert!(f.seen("quiet", "unhealthy", 30.0).is_some(), "never unhealthy: {:?}", f.statuses("quiet"));
    // Back when it beats again.
    assert_eq!(post(&s.url("/heartbeat/quiet"), "").0, 200);
    assert!(wait_until(20.0, || f.statuses("quiet").len() == 4), "{:?}", f.statuses("quiet"));
    assert_eq!(f.statuses("quiet"), ["healthy", "degraded", "unhealthy", "healthy"], "one record per change");
    assert_eq!(f.of("quiet")[3].1["previous_status"], "unhealthy");
    assert_eq!(f.statuses("steady"), ["healthy"], "a beating agent has nothing to say");
    // With the server gone nothing writes the state: silence is still seen, by time alone.
    beating.store(false, std::sync::atomic::Ordering::SeqCst);
    beater.join().unwrap();
    s.kill9();
    let gone = std::time::Instant::now();
    let degraded = f.seen("steady", "degraded", 30.0).expect("silence with no server was never reported");
    assert!(degraded.duration_since(gone).as_secs_f64() <= timeout + slack);
    assert_eq!(f.terminate(), Some(0));
}
