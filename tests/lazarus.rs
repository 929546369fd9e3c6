//! The Lazarus Pit's daemon, done by pitcrew: gateways checked for real, revival in its four
//! steps (restart, restore, re-register, verify), handoff of an unrevivable agent's tasks,
//! and the whole of it against a real `tickmon serve`, gateways on loopback and a webhook.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::pipelines::{Hook, Serve, delivered, pipe};
use crate::util::Run;
use crate::util::http::{HttpServer, Reply, Seen};
use crate::util::{Workdir, json as pretty};

const NOW: &str = "2026-11-23T10:30:00Z";

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

fn write_json(p: &Path, v: &Value) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let tmp = p.with_file_name(format!(".{}.tmp", p.file_name().unwrap().to_string_lossy()));
    std::fs::write(&tmp, pretty(v)).unwrap();
    std::fs::rename(&tmp, p).unwrap();
}

/// A cell made with cellscan itself: agents `(id, gateway)`, active and checkpointed (in the
/// agent file) unless listed in `no_checkpoint`; then `policies` as its policies.json.
fn make_cell(w: &Workdir, name: &str, agents: &[(&str, &str)], no_checkpoint: &[&str], policies: Value) -> PathBuf {
    let policy = policies["auto_revive"].as_str().unwrap_or("ask");
    let init = w.tool("cellscan").args(["init", "missions", "--name", name, "--auto-revive", policy]);
    let cell = init.run().code(0).kind("cell").remove(0);
    let dir = w.path(&format!("missions/{}", cell["cell"].as_str().unwrap()));
    for (a, gw) in agents {
        w.tool("cellscan")
            .args(["add-agent", &s(&dir), "--id", a, "--role", "write", "--status", "active", "--gateway", gw])
            .run()
            .code(0);
        if !no_checkpoint.contains(a) {
            w.tool("cellscan").args(["set-agent", &s(&dir), a, "--checkpoint"]).run().code(0);
        }
    }
    write_json(&dir.join("config/policies.json"), &policies);
    dir
}

fn add_task(w: &Workdir, cell: &Path, id: &str, agent: &str, status: &str) {
    w.tool("cellscan")
        .args(["add-task", &s(cell), "--id", id, "--title", id, "--assign", agent, "--status", status])
        .run()
        .code(0);
}

/// services.json with these gateways and a webhook sink.
fn services(w: &Workdir, gateways: Value, hook: Option<&Hook>) {
    let mut v = json!({"services": [], "gateways": gateways});
    if let Some(h) = hook {
        v["alerting"] = json!({"webhook_url": h.url()});
    }
    w.write("home/config/services.json", pretty(&v));
}

/// An HTTP gateway that answers 200 while `up`, 503 after; counts GETs, keeps POSTs.
struct WebGateway {
    server: HttpServer,
    up: Arc<AtomicBool>,
    gets: Arc<AtomicUsize>,
    posts: Arc<Mutex<Vec<Seen>>>,
}

impl WebGateway {
    fn start() -> WebGateway {
        let up = Arc::new(AtomicBool::new(true));
        let gets = Arc::new(AtomicUsize::new(0));
        let posts: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (u, g, p) = (up.clone(), gets.clone(), posts.clone());
        let server = HttpServer::start(move |req| {
            if !u.load(Ordering::SeqCst) {
                return Reply::new(503, "gateway down");
            }
            if req.method == "POST" {
                p.lock().unwrap().push(req.clone());
                return Reply::json(200, &json!({"registered": true}));
            }
            g.fetch_add(1, Ordering::SeqCst);
            Reply::json(200, &json!({"status": "ok"}))
        });
        WebGateway { server, up, gets, posts }
    }
}

fn text_posts(hook: &Hook) -> Vec<String> {
    hook.posts().iter().map(|p| p["text"].as_str().unwrap_or(&p.to_string()).to_string()).collect()
}

#[test]
fn lazarus_gateways_are_checked_once_a_run_and_a_dead_one_is_announced_once() {
    let w = Workdir::new("lz-gateways");
    let hook = Hook::start();
    let web = WebGateway::start();
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_addr = format!("127.0.0.1:{}", tcp.local_addr().unwrap().port());
    w.write("gw_cmd.up", "");
    services(
        &w,
        json!({"gw_web": web.server.url("/health"), "gw_tcp": tcp_addr, "gw_cmd": {"command": "test -e gw_cmd.up"}}),
        Some(&hook),
    );
    let cell = make_cell(
        &w,
        "Gateways",
        &[("a1", "gw_web"), ("a2", "gw_web"), ("a3", "gw_tcp"), ("a4", "gw_cmd")],
        &[],
        json!({"auto_revive": "no"}),
    );
    let scan = || w.tool("cellscan").args(["scan", &s(&w.path("missions"))]);
    let r = scan().run();
    r.code(0);
    let checks = r.kind("check");
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["gateway:gw_cmd", "gateway:gw_tcp", "gateway:gw_web"], "{r:?}");
    assert!(checks.iter().all(|c| c["status"] == "up" && c["source"] == "cellscan"), "{checks:?}");
    assert_eq!(checks[2]["type"], "url");
    assert_eq!(web.gets.load(Ordering::SeqCst), 1, "two agents behind gw_web, one check a run");
    for a in ["a1", "a2", "a3", "a4"] {
        assert_eq!(r.named("agent", a)["gateway_status"], "up", "{a}");
    }

    // Every gateway dies: each agent is unhealthy and names its gateway; notify announces each
    // gateway once and mentions its agents under it.
    web.up.store(false, Ordering::SeqCst);
    drop(tcp);
    std::fs::remove_file(w.path("gw_cmd.up")).unwrap();
    let r = pipe(vec![scan(), w.tool("notify")]);
    r.codes(&[1, 0]);
    let r2 = scan().run();
    r2.code(1);
    let f = r2.kind("finding");
    assert_eq!(f.len(), 4, "{r2:?}");
    for (a, gw) in [("a1", "gw_web"), ("a2", "gw_web"), ("a3", "gw_tcp"), ("a4", "gw_cmd")] {
        let rec = r2.named("agent", a);
        assert_eq!((rec["health"].as_str(), rec["gateway_status"].as_str()), (Some("unhealthy"), Some("down")), "{a}");
        let mine = f.iter().find(|f| f["subject"].as_str().unwrap().ends_with(&format!("agents/{a}.json"))).unwrap();
        assert_eq!((mine["problem"].as_str(), mine["level"].as_str()), (Some("gateway_down"), Some("error")));
        assert_eq!(mine["suppressed_by"], format!("gateway:{gw}"));
        assert!(mine["detail"].as_str().unwrap().contains(&format!("agent {a}'s gateway {gw} (")), "{mine}");
    }
    assert!(r2.kind("check").iter().all(|c| c["status"] == "down"));
    // One message (notify groups what one run found), each gateway once with its agents
    // under it, no alert of an agent's own.
    let sent = text_posts(&hook);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert!(sent[0].contains("3 services down: gateway:gw_cmd, gateway:gw_tcp, gateway:gw_web"), "{sent:#?}");
    assert!(sent[0].contains("gateway:gw_web: HTTP 503 (expected 200-299)"), "{sent:#?}");
    let id = cell.file_name().unwrap().to_str().unwrap();
    assert!(
        sent[0].contains(&format!(
            "also down because of gateway:gw_web: {id}/agents/a1.json (gateway_down), {id}/agents/a2.json (gateway_down)"
        )),
        "{sent:#?}"
    );
    let gateways: Vec<Value> =
        r.kind("alert").into_iter().filter(|a| a["subject"].as_str().unwrap().starts_with("check:gateway:")).collect();
    assert_eq!(gateways.len(), 3, "{r:?}");
    assert!(gateways.iter().all(|a| delivered(a) == ["webhook"]));
    let inhibited: Vec<Value> = r.kind("alert").into_iter().filter(|a| a["suppressed"] == "inhibited").collect();
    assert_eq!(inhibited.len(), 4, "{r:?}");
    assert!(inhibited.iter().all(|a| delivered(a).is_empty()));
    assert_eq!(web.gets.load(Ordering::SeqCst), 1, "a gateway answering 503 is not counted as a GET served");

    // A name that none of the configured gateways has: a warning; a bad address: exit 2.
    w.tool("cellscan").args(["add-agent", &s(&cell), "--id", "a5", "--role", "read", "--gateway", "gw_nowhere"]).run();
    let r = scan().run();
    let unknown: Vec<Value> = r.kind("finding").into_iter().filter(|f| f["problem"] == "unknown_gateway").collect();
    assert_eq!(unknown.len(), 1, "{r:?}");
    assert_eq!(unknown[0]["level"], "warning");
    services(&w, json!({"gw_web": "not an address"}), None);
    let r = scan().run();
    r.code(2).stderr_has("services.json: gateways.gw_web: 'not an address' is neither an http(s):// URL nor host:port");
    // The Lazarus config's gateways, as an object, give addresses too.
    services(&w, json!({}), None);
    write_json(&w.path(".lazarus/config.json"), &json!({"gateways": {"gw_web": web.server.url("/health")}}));
    let r = scan().run();
    r.code(1);
    let names: Vec<Value> = r.kind("check").iter().map(|c| c["name"].clone()).collect();
    assert_eq!(names, [json!("gateway:gw_web")], "{r:?}");
    assert_eq!(r.named("agent", "a1")["gateway_status"], "down");
}

/// tickmon serve's idea of an agent: a heartbeat, then `fails` failures.
fn beat(hb: &Serve, agent: &str, fails: usize) {
    assert_eq!(hb.post(&format!("/heartbeat/{agent}"), "{}").0, 200);
    for _ in 0..fails {
        assert_eq!(hb.post(&format!("/heartbeat/{agent}/fail"), r#"{"error": "process exited"}"#).0, 200);
    }
}

fn steps(rec: &Value) -> Vec<(String, String)> {
    rec["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps: {rec}"))
        .iter()
        .map(|s| (s["step"].as_str().unwrap().to_string(), s["outcome"].as_str().unwrap().to_string()))
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn lazarus_revival_restores_from_the_checkpoint_re_registers_and_waits_for_a_fresh_heartbeat() {
    let w = Workdir::new("lz-revive-steps");
    let hb = Serve::start(&w);
    let gw = WebGateway::start();
    services(&w, json!({"gw": {"url": gw.server.url("/health"), "register_url": gw.server.url("/register")}}), None);
    // The command restarts the agent, which restores its state and, once up, heartbeats.
    let cmd = format!(
        "env | grep -E '^(RESTORE_FROM|RESTORE_STATE|RESTORE_CHECKPOINT_AT|GATEWAY|HEARTBEAT_ID)=' | sort > \"restored-$AGENT_ID.env\"; \
         ( sleep 0.5; curl -fsS -X POST {}/heartbeat/$HEARTBEAT_ID -o /dev/null ) > /dev/null 2>&1 &",
        hb.url("")
    );
    let policies = json!({"auto_revive": "yes", "revive_command": cmd, "revive_cooldown_seconds": 0, "verify_timeout_seconds": 30});
    let cell = make_cell(&w, "Steps", &[("scout", "gw"), ("quill", "gw")], &["quill"], policies.clone());
    write_json(&cell.join("checkpoints/scout/state.json"), &json!({"step": 41}));
    beat(&hb, "scout", 3);
    beat(&hb, "quill", 3);
    let revive = || w.tool("cellscan").args(["revive", &s(&w.path("missions")), "--heartbeat-url", &hb.url("")]);
    let r = revive().run();
    r.code(1);
    let recs = r.kind("recovery");
    let scout = recs.iter().find(|r| r["agent"] == "scout").unwrap();
    assert_eq!((scout["outcome"].as_str(), scout["verified"].as_bool()), (Some("recovered"), Some(true)), "{scout}");
    assert_eq!(steps(scout), pairs(&[("restart", "ok"), ("restore", "ok"), ("register", "ok"), ("verify", "ok")]));
    let st = scout["steps"].as_array().unwrap();
    assert!(
        st[1]["detail"].as_str().unwrap().starts_with("RESTORE_FROM=checkpoints/scout/ (state.json of "),
        "{scout}"
    );
    assert!(st[3]["detail"].as_str().unwrap().ends_with("heartbeat healthy"), "{scout}");
    assert!(st[3]["ms"].as_u64().unwrap() >= 300, "the fresh heartbeat came after the command: {scout}");
    let abs = std::fs::canonicalize(&cell).unwrap();
    let env = std::fs::read_to_string(cell.join("restored-scout.env")).unwrap();
    assert!(env.contains(&format!("RESTORE_FROM={}/checkpoints/scout/\n", abs.display())), "{env}");
    assert!(env.contains(&format!("RESTORE_STATE={}/checkpoints/scout/state.json\n", abs.display())), "{env}");
    assert!(env.contains("GATEWAY=gw\n") && env.contains("HEARTBEAT_ID=scout\n"), "{env}");
    let posts = gw.posts.lock().unwrap().clone();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].url, "/register");
    let body: Value = serde_json::from_str(&posts[0].body).unwrap();
    assert_eq!((body["agent_id"].as_str(), body["gateway"].as_str()), (Some("scout"), Some("gw")));
    assert_eq!(body["cell_id"], cell.file_name().unwrap().to_str().unwrap());
    assert_eq!(hb.curl("/agent/scout")["status"], "healthy");

    // No checkpoint and one required: refused before anything runs, with a finding.
    let quill = recs.iter().find(|r| r["agent"] == "quill").unwrap();
    assert_eq!(quill["outcome"], "failed");
    assert_eq!(steps(quill), pairs(&[("restore", "refused")]));
    let f = r.kind("finding");
    assert_eq!((f.len(), f[0]["problem"].as_str()), (1, Some("no_checkpoint")), "{r:?}");
    assert!(!cell.join("restored-quill.env").exists(), "the command never ran for quill");

    // An agent that does not come back: no fresh heartbeat within the limit, not verified;
    // a gateway that refuses the registration: not verified either.
    let mut p = policies.clone();
    p["revive_command"] = json!("true");
    p["verify_timeout_seconds"] = json!(1);
    p["checkpoint_required"] = json!(false);
    write_json(&cell.join("config/policies.json"), &p);
    beat(&hb, "scout", 3);
    let r = revive().run();
    r.code(1);
    let scout = r.kind("recovery").into_iter().find(|r| r["agent"] == "scout").unwrap();
    assert_eq!((scout["outcome"].as_str(), scout["verified"].as_bool()), (Some("recovered"), Some(false)));
    let verify = &scout["steps"][3];
    assert_eq!(verify["outcome"], "failed");
    assert!(verify["detail"].as_str().unwrap().contains("no fresh heartbeat within 1s"), "{scout}");
    let quill = r.kind("recovery").into_iter().find(|r| r["agent"] == "quill").unwrap();
    assert_eq!(steps(&quill)[1], ("restore".to_string(), "skipped".to_string()), "{quill}");
}

#[test]
fn lazarus_handoff_moves_the_tasks_to_the_first_permitted_healthy_substitute() {
    let w = Workdir::new("lz-handoff");
    let policies = json!({
        "auto_revive": "no", "handoff_allowed": true, "handoff_approval": "auto",
        "substitute_agents": ["scribe", "ghost", "sick", "lead", "spare"]
    });
    let cell =
        make_cell(&w, "Handoff", &[("lead", "g"), ("scribe", "g"), ("sick", "g"), ("spare", "g")], &[], policies);
    w.tool("cellscan").args(["set-agent", &s(&cell), "scribe", "--status", "failed"]).run().code(0);
    w.tool("cellscan").args(["set-agent", &s(&cell), "sick", "--status", "failed"]).run().code(0);
    add_task(&w, &cell, "t1", "scribe", "in_progress");
    add_task(&w, &cell, "t2", "scribe", "pending");
    add_task(&w, &cell, "t3", "scribe", "completed");
    add_task(&w, &cell, "t4", "lead", "pending");
    write_json(
        &cell.join("config/permissions.json"),
        &json!({
            "scribe": {"read": ["t1", "t2"], "write": ["t1"], "execute": ["t1"], "handoff_to": ["spare", "sick"]},
            "lead": {"read": ["t4"], "write": ["t4"], "handoff_from": []},
            "spare": {"read": [], "handoff_from": ["scribe"]}
        }),
    );
    let originals: Vec<(PathBuf, String)> = ["t1", "t2", "t3"]
        .iter()
        .map(|t| {
            let p = cell.join(format!("tasks/{t}.json"));
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    let perms = std::fs::read_to_string(cell.join("config/permissions.json")).unwrap();
    let restore = || {
        for (p, t) in &originals {
            std::fs::write(p, t).unwrap();
        }
        std::fs::write(cell.join("config/permissions.json"), &perms).unwrap();
    };
    let revive = || w.tool("cellscan").args(["revive", &s(&w.path("missions")), "--now", NOW]);
    // auto: at once. ghost is no agent, sick is failed, lead's handoff_from does not name
    // scribe: spare takes t1 and t2 (t3 is done), with scribe's rights on them.
    let r = revive().run();
    r.code(0);
    let h = r.kind("handoff");
    let scribe = h.iter().find(|h| h["agent"] == "scribe").unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!((scribe["outcome"].as_str(), scribe["to"].as_str()), (Some("handed_off"), Some("spare")), "{scribe}");
    assert_eq!(scribe["tasks"], json!(["t1", "t2"]));
    for t in ["t1", "t2"] {
        let doc = read_json(&cell.join(format!("tasks/{t}.json")));
        assert_eq!(
            (doc["assigned_to"].as_str(), doc["handoff_from"].as_str(), doc["handoff_at"].as_str()),
            (Some("spare"), Some("scribe"), Some("2026-11-23T10:30:00.000Z")),
            "{doc}"
        );
        assert_eq!(doc["title"], t, "the other fields are kept");
    }
    assert_eq!(read_json(&cell.join("tasks/t3.json"))["assigned_to"], "scribe");
    assert_eq!(read_json(&cell.join("tasks/t4.json"))["assigned_to"], "lead");
    let p = read_json(&cell.join("config/permissions.json"));
    assert_eq!(
        p["spare"],
        json!({"read": ["t1", "t2"], "write": ["t1"], "execute": ["t1"], "handoff_from": ["scribe"]})
    );
    let alert = r.kind("alert").into_iter().find(|a| a["topic"] == "handoff").unwrap();
    assert_eq!(
        (alert["level"].as_str(), alert["title"].as_str()),
        (Some("info"), Some("Tasks of scribe handed to spare in Handoff"))
    );
    let log = std::fs::read_to_string(cell.join("logs/mission.log")).unwrap();
    assert!(log.contains("cellscan: handoff scribe -> spare: t1, t2\n"), "{log}");
    // sick could not be handed anything: it has no task. Done once: the next run has nothing.
    let again = revive().run();
    again.code(0);
    assert!(again.kind("handoff").is_empty(), "{again:?}");

    // manual: an alert asks; approve does it.
    restore();
    let mut pol = read_json(&cell.join("config/policies.json"));
    pol["handoff_approval"] = json!("manual");
    write_json(&cell.join("config/policies.json"), &pol);
    let r = revive().run();
    r.code(1);
    let ask = r.kind("alert").into_iter().find(|a| a["topic"] == "handoff").unwrap();
    assert_eq!((ask["level"].as_str(), ask["status"].as_str()), (Some("warning"), Some("firing")));
    let cell_id = cell.file_name().unwrap().to_str().unwrap();
    assert_eq!(ask["subject"], format!("handoff:{cell_id}/scribe"));
    assert!(
        ask["message"]
            .as_str()
            .unwrap()
            .ends_with(&format!("Approve with: cellscan approve {} --handoff scribe", s(&cell))),
        "{ask}"
    );
    assert_eq!(r.kind("handoff")[0]["outcome"], "awaiting_approval");
    assert_eq!(read_json(&cell.join("tasks/t1.json"))["assigned_to"], "scribe", "nothing moved yet");
    let st = w.tool("cellscan").args(["status", &s(&w.path("missions")), "--now", NOW]).run().records().remove(0);
    assert_eq!((st["pending_handoffs"].as_u64(), st["handoffs"]["awaiting_approval"].as_u64()), (Some(1), Some(1)));
    let approve = |extra: &[&str]| {
        // The cell by its id, under --missions.
        w.tool("cellscan")
            .args(["approve", cell_id, "--handoff", "scribe", "--now", NOW, "--missions", "missions"])
            .args(extra)
            .run()
    };
    let dry = approve(&["--dry-run"]);
    dry.code(0);
    assert_eq!(dry.kind("handoff")[0]["outcome"], "skipped");
    assert_eq!(read_json(&cell.join("tasks/t1.json"))["assigned_to"], "scribe", "a dry run writes nothing");
    let r = approve(&[]);
    r.code(0);
    assert_eq!(r.kind("handoff")[0]["outcome"], "handed_off");
    let done = r.kind("alert").remove(0);
    assert_eq!((done["status"].as_str(), done["level"].as_str()), (Some("resolved"), Some("recovery")));
    assert_eq!(done["subject"], format!("handoff:{cell_id}/scribe"));
    assert_eq!(read_json(&cell.join("tasks/t2.json"))["assigned_to"], "spare");
    approve(&[]).code(2).stderr_has("agent scribe has no pending or in-progress task");
    w.tool("cellscan").args(["approve", &s(&cell), "--handoff", "lead"]).run().code(2).stderr_has("lead is healthy");

    // Nobody permitted: a finding that says why each substitute could not take them.
    restore();
    let mut p = read_json(&cell.join("config/permissions.json"));
    p["scribe"]["handoff_to"] = json!(["sick"]);
    write_json(&cell.join("config/permissions.json"), &p);
    let r = revive().run();
    r.code(1);
    let f = r.kind("finding").into_iter().find(|f| f["problem"] == "no_substitute").unwrap_or_else(|| panic!("{r:?}"));
    let d = f["detail"].as_str().unwrap();
    for why in [
        "ghost: not an agent of the cell",
        "sick: unhealthy",
        "lead: not in scribe's handoff_to",
        "spare: not in scribe's handoff_to",
    ] {
        assert!(d.contains(why), "{why}: {d}");
    }
    // Not allowed by the cell: nothing at all.
    pol["handoff_allowed"] = json!(false);
    write_json(&cell.join("config/policies.json"), &pol);
    let r = revive().run();
    r.code(0);
    assert!(r.stdout.is_empty(), "{r:?}");
}

/// The whole daemon: a mission with three agents behind two gateways on loopback, agents that
/// heartbeat to a real tickmon serve, `scan | revive --from - | notify` to a webhook as the
/// orchestrator runs it. scout dies and is revived from its checkpoint, verified by a fresh
/// heartbeat; forge's gateway dies; scribe cannot be revived and its tasks go to scout.
#[test]
fn lazarus_the_whole_pit_revives_announces_and_hands_off() {
    let w = Workdir::new("lz-whole");
    let hook = Hook::start();
    let hb = Serve::start(&w);
    let gw_a = WebGateway::start();
    let gw_b = TcpListener::bind("127.0.0.1:0").unwrap();
    services(
        &w,
        json!({
            "gw_a": {"url": gw_a.server.url("/health"), "register_url": gw_a.server.url("/register")},
            "gw_b": format!("127.0.0.1:{}", gw_b.local_addr().unwrap().port())
        }),
        Some(&hook),
    );
    // scout's revival restores it and it heartbeats again; scribe's process cannot be started.
    let cmd = format!(
        "case $AGENT_ID in scribe) echo 'scribe: no such binary' >&2; exit 1;; esac; \
         test -f \"$RESTORE_STATE\" || exit 3; cp \"$RESTORE_STATE\" \"restored-$AGENT_ID.json\"; \
         ( sleep 0.5; curl -fsS -X POST {}/heartbeat/$HEARTBEAT_ID -o /dev/null ) > /dev/null 2>&1 &",
        hb.url("")
    );
    let cell = make_cell(
        &w,
        "Release",
        &[("scout", "gw_a"), ("forge", "gw_b"), ("scribe", "gw_a")],
        &[],
        json!({
            "auto_revive": "yes", "revive_command": cmd, "revive_cooldown_seconds": 0, "max_retries": 1,
            "verify_timeout_seconds": 30, "handoff_allowed": true, "handoff_approval": "auto",
            "substitute_agents": ["forge", "scout"]
        }),
    );
    for a in ["scout", "scribe"] {
        write_json(&cell.join(format!("checkpoints/{a}/state.json")), &json!({"agent": a, "step": 7}));
    }
    add_task(&w, &cell, "draft", "scribe", "in_progress");
    add_task(&w, &cell, "review", "scribe", "pending");
    add_task(&w, &cell, "build", "forge", "in_progress");
    let missions = w.path("missions");
    // The orchestrator's phase, stage by stage: each stage's output is kept to look at.
    struct Ran {
        scan: Run,
        revive: Run,
        notify: Run,
    }
    let run = || {
        let scan = w.tool("cellscan").args(["scan", &s(&missions), "--heartbeat-url", &hb.url("")]).run();
        let revive = w
            .tool("cellscan")
            .args(["revive", "--from", "-", &s(&missions), "--heartbeat-url", &hb.url("")])
            .stdin(&scan.stdout)
            .run();
        let notify = w.tool("notify").stdin(&revive.stdout).run();
        notify.code(0);
        Ran { scan, revive, notify }
    };
    let sent_since = |n: usize| text_posts(&hook).split_off(n);
    for a in ["scout", "forge", "scribe"] {
        beat(&hb, a, 0);
    }
    let r = run();
    r.scan.code(0);
    r.revive.code(0);
    assert!(hook.posts().is_empty(), "all well, nothing said: {:?}", r.notify);

    // 1. scout dies; revived from its checkpoint and verified by its fresh heartbeat.
    beat(&hb, "scout", 3);
    let r = run();
    r.scan.code(1);
    r.revive.code(0);
    let rec = r.revive.kind("recovery").into_iter().find(|x| x["agent"] == "scout").unwrap();
    assert_eq!((rec["outcome"].as_str(), rec["verified"].as_bool()), (Some("recovered"), Some(true)), "{rec}");
    assert_eq!(steps(&rec), pairs(&[("restart", "ok"), ("restore", "ok"), ("register", "ok"), ("verify", "ok")]));
    assert_eq!(read_json(&cell.join("restored-scout.json")), json!({"agent": "scout", "step": 7}));
    assert_eq!(hb.curl("/agent/scout")["status"], "healthy");
    let sent = sent_since(0);
    assert!(sent.iter().any(|t| t.contains("scout") && t.contains("agent_unhealthy")), "{sent:#?}");
    let n = sent.len();

    // 2. forge's gateway dies: one alert for the gateway, forge mentioned under it, no revival.
    drop(gw_b);
    let r = run();
    r.scan.code(1);
    r.revive.code(0);
    assert!(r.revive.kind("recovery").is_empty(), "{:?}", r.revive);
    let sent = sent_since(n);
    assert_eq!(sent.iter().filter(|t| t.contains("gateway:gw_b")).count(), 1, "{sent:#?}");
    assert!(!sent.iter().any(|t| t.contains("gateway:gw_a")), "{sent:#?}");
    let n = n + sent.len();

    // 3. scribe fails: one attempt, which fails; the next run gives up and hands its tasks to
    // the first healthy substitute: forge is behind a dead gateway, scout is back.
    beat(&hb, "scribe", 3);
    let r = run();
    r.revive.code(1);
    let rec = r.revive.kind("recovery").into_iter().find(|x| x["agent"] == "scribe").unwrap();
    assert_eq!(rec["outcome"], "failed");
    assert!(rec["detail"].as_str().unwrap().contains("scribe: no such binary"), "{rec}");
    let r = run();
    r.revive.code(0);
    assert_eq!(r.revive.kind("recovery")[0]["outcome"], "max_attempts");
    let h = r.revive.kind("handoff");
    assert_eq!(h.len(), 1, "{:?}", r.revive);
    assert_eq!((h[0]["outcome"].as_str(), h[0]["to"].as_str()), (Some("handed_off"), Some("scout")));
    for t in ["draft", "review"] {
        let doc = read_json(&cell.join(format!("tasks/{t}.json")));
        assert_eq!((doc["assigned_to"].as_str(), doc["handoff_from"].as_str()), (Some("scout"), Some("scribe")));
        assert!(doc["handoff_at"].is_string());
    }
    assert_eq!(read_json(&cell.join("tasks/build.json"))["assigned_to"], "forge");
    let sent = sent_since(n);
    assert!(sent.iter().any(|t| t.contains("Tasks of scribe handed to scout in Release")), "{sent:#?}");
    let log = std::fs::read_to_string(cell.join("logs/mission.log")).unwrap();
    assert!(log.contains("revive scout attempt 1/1: revived"), "{log}");
    assert!(log.contains("handoff scribe -> scout: draft, review"), "{log}");
    let st = w.tool("cellscan").args(["status", &s(&missions), "--heartbeat-url", &hb.url("")]).run();
    let st = st.records().remove(0);
    assert_eq!(st["pending_handoffs"], 0, "{st}");
}

/// The orchestrator, as cron runs it, with this workdir as HOME.
fn orchestrate(w: &Workdir, env: &[(&str, &str)]) -> Run {
    let mut c = std::process::Command::new("bash");
    c.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/orchestrator.sh"));
    for k in crate::util::SCRUBBED {
        c.env_remove(k);
    }
    c.env("HOME", &w.root).env("AGENT_OPS_HOME", w.path("home")).env("PITCREW_BIN", crate::util::bin_dir());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.current_dir(&w.root).stdin(std::process::Stdio::null()).output().unwrap();
    Run {
        display: "orchestrator.sh".into(),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn lazarus_the_orchestrator_takes_the_missions_of_the_daemons_config() {
    let w = Workdir::new("lz-orchestrator");
    let hook = Hook::start();
    w.write(
        "home/config/services.json",
        pretty(&json!({"disk_check": false, "services": [], "alerting": {"webhook_url": hook.url()}})),
    );
    // Two missions directories, neither HOME/missions: the daemon's config names one.
    let mut cells = Vec::new();
    for dir in ["pit-a", "pit-b"] {
        let c = w.tool("cellscan").args(["init", dir, "--name", dir]).run().code(0).kind("cell").remove(0);
        let cell = w.path(&format!("{dir}/{}", c["cell"].as_str().unwrap()));
        w.tool("cellscan")
            .args(["add-agent", &s(&cell), "--id", "scout", "--role", "lead", "--status", "failed"])
            .run();
        cells.push(cell);
    }
    let lazarus =
        |missions: &str| json!({"poll_interval": 30, "missions_path": s(&w.path(missions)), "log_level": "INFO"});
    write_json(&w.path(".lazarus/config.json"), &lazarus("pit-a"));
    // What reached the webhook about each pit's failed agent.
    let told = |pit: &str| {
        let needle = format!("/{pit}/");
        text_posts(&hook).iter().filter(|t| t.contains(&needle) && t.contains("scout")).count()
    };
    let r = orchestrate(&w, &[]);
    r.code(1);
    let log = w.read("home/logs/orchestrator.log");
    assert!(log.contains("cells (cellscan scan | cellscan revive | notify): found problems"), "{log}");
    assert_eq!((told("pit-a"), told("pit-b")), (1, 0), "{:#?}", text_posts(&hook));
    assert!(text_posts(&hook)[0].contains("Revival pending approval: scout in pit-a"), "{:#?}", text_posts(&hook));
    // PITCREW_LAZARUS_CONFIG names another file; AGENT_OPS_MISSIONS still wins over both.
    let other = w.path("etc/lazarus.json");
    write_json(&other, &lazarus("pit-b"));
    orchestrate(&w, &[("PITCREW_LAZARUS_CONFIG", &s(&other))]).code(1);
    assert_eq!((told("pit-a"), told("pit-b")), (1, 1), "{:#?}", text_posts(&hook));
    assert!(w.read("home/logs/last-cells.ndjson").contains("Revival pending approval: scout in pit-b"));
    std::fs::create_dir_all(w.path("empty")).unwrap();
    let env = [("PITCREW_LAZARUS_CONFIG", s(&other)), ("AGENT_OPS_MISSIONS", s(&w.path("empty")))];
    orchestrate(&w, &env.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).code(0);
    assert_eq!((told("pit-a"), told("pit-b")), (1, 1));
    // missions-dir says which it is.
    let r = w.tool("cellscan").args(["missions-dir"]).run();
    r.code(0);
    assert_eq!(r.stdout, format!("{}\n", s(&w.path("pit-a"))));
}

/// A resident tool's stdout, line by line as records, read on a thread.
fn records_of(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<Value> {
    use std::io::BufRead;
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    rx
}

/// The first record read so far that matches `want`, else read records until one does
/// (within `secs`, scaled); every record read is kept in `seen`.
fn until(
    rx: &std::sync::mpsc::Receiver<Value>,
    seen: &mut Vec<Value>,
    secs: f64,
    want: impl Fn(&Value) -> bool,
) -> Value {
    if let Some(v) = seen.iter().find(|v| want(v)) {
        return v.clone();
    }
    let deadline = std::time::Instant::now() + crate::util::limit(secs);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let v = rx.recv_timeout(left).unwrap_or_else(|e| panic!("{e}: none came; seen: {seen:#?}"));
        seen.push(v.clone());
        if want(&v) {
            return v;
        }
    }
}

fn attempt_of(v: &Value, agent: &str, outcome: &str) -> bool {
    v["kind"] == "recovery" && v["agent"] == agent && v["outcome"] == outcome
}

#[test]
#[ignore = "slow: waits out a revival cooldown twice; scripts/test.sh runs it"]
fn lazarus_revive_watch_revives_in_later_passes_keeps_the_cooldown_and_stops_on_sigterm() {
    let w = Workdir::new("lz-revive-watch");
    let hb = Serve::start(&w);
    // The command "restarts" the agent: its file says active again and it heartbeats. flaky
    // never starts.
    let cmd = format!(
        "if [ \"$AGENT_ID\" = flaky ]; then echo 'flaky will not start' >&2; exit 1; fi; \
         sed -i 's/\"status\": *\"failed\"/\"status\": \"active\"/' \"$AGENT_FILE\" && \
         curl -fsS -X POST {}/heartbeat/$HEARTBEAT_ID -o /dev/null",
        hb.url("")
    );
    let policies = json!({"auto_revive": "yes", "revive_command": cmd, "revive_cooldown_seconds": 3,
                          "max_retries": 2, "verify_timeout_seconds": 20});
    let cell = make_cell(&w, "Resident", &[("scout", "g"), ("quill", "g"), ("flaky", "g")], &[], policies);
    for a in ["scout", "quill", "flaky"] {
        beat(&hb, a, 0);
    }
    w.tool("cellscan").args(["set-agent", &s(&cell), "scout", "--status", "failed"]).run().code(0);
    w.tool("cellscan").args(["set-agent", &s(&cell), "flaky", "--status", "failed"]).run().code(0);
    let mut child = w
        .tool("cellscan")
        .args(["revive", &s(&w.path("missions")), "--watch", "1", "--heartbeat-url", &hb.url("")])
        .spawn();
    let rx = records_of(&mut child);
    let mut seen = Vec::new();

    // The first pass: the scan's records, then scout revived and verified by a fresh heartbeat.
    let scout = until(&rx, &mut seen, 60.0, |v| attempt_of(v, "scout", "recovered"));
    assert_eq!(scout["verified"], true, "{scout}");
    assert_eq!(steps(&scout).last().unwrap(), &("verify".to_string(), "ok".to_string()), "{scout}");
    assert_eq!(read_json(&cell.join("agents/scout.json"))["status"], "active");
    let first_flaky = until(&rx, &mut seen, 60.0, |v| attempt_of(v, "flaky", "failed"));
    assert_eq!(first_flaky["attempt"], 1, "{first_flaky}");
    assert!(first_flaky["detail"].as_str().unwrap().contains("flaky will not start"), "{first_flaky}");

    // A second agent fails later: a later pass revives it, the process still the same.
    w.tool("cellscan").args(["set-agent", &s(&cell), "quill", "--status", "failed"]).run().code(0);
    let quill = until(&rx, &mut seen, 60.0, |v| attempt_of(v, "quill", "recovered"));
    assert_eq!(quill["verified"], true, "{quill}");
    assert_eq!(read_json(&cell.join("agents/quill.json"))["status"], "active");

    // flaky is retried on its policy's schedule: a second attempt no sooner than the cooldown
    // (3 s, the passes 1 s apart), then retries exhausted, said once.
    let second = until(&rx, &mut seen, 60.0, |v| attempt_of(v, "flaky", "failed") && v["attempt"] == 2);
    let at = |v: &Value| {
        let t = time::OffsetDateTime::parse(
            v["timestamp"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        t.unix_timestamp_nanos() as f64 / 1e9
    };
    assert!(at(&second) - at(&first_flaky) >= 2.9, "retried within the cooldown: {first_flaky} then {second}");
    until(&rx, &mut seen, 60.0, |v| attempt_of(v, "flaky", "max_attempts"));
    // Two more passes: nothing new about flaky.
    let quiet_from = seen.len();
    let passes = std::time::Instant::now();
    while passes.elapsed() < std::time::Duration::from_millis(2500) {
        if let Ok(v) = rx.recv_timeout(std::time::Duration::from_millis(100)) {
            seen.push(v);
        }
    }
    let later: Vec<&Value> = seen[quiet_from..].iter().filter(|v| v["agent"] == "flaky").collect();
    assert!(later.is_empty(), "standing states are said once: {later:#?}");
    let flaky_attempts = seen.iter().filter(|v| attempt_of(v, "flaky", "failed")).count();
    assert_eq!(flaky_attempts, 2, "{seen:#?}");
    let cooldowns = seen.iter().filter(|v| attempt_of(v, "flaky", "cooldown")).count();
    assert!((1..=2).contains(&cooldowns), "a cooldown is said when it begins: {seen:#?}");
    // Each finding once, though every pass sees it.
    let failed_findings = seen
        .iter()
        .filter(|v| {
            v["problem"] == "agent_failed" && v["subject"].as_str().unwrap_or("").ends_with("agents/flaky.json")
        })
        .count();
    assert_eq!(failed_findings, 1, "{seen:#?}");
    // scout's finding resolved once it was revived.
    assert!(
        seen.iter().any(|v| v["problem"] == "agent_failed"
            && v["resolved"] == true
            && v["subject"].as_str().unwrap_or("").ends_with("agents/scout.json")),
        "{seen:#?}"
    );

    // SIGTERM: exit 0, at once.
    let t = std::time::Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(t.elapsed() < crate::util::limit(5.0), "took {:?} to stop", t.elapsed());
}

#[test]
fn lazarus_revive_watch_survives_a_failing_pass_and_stops_when_its_reader_goes_away() {
    use std::io::BufRead;
    let w = Workdir::new("lz-revive-watch-pass");
    let cell = make_cell(&w, "Passes", &[("scout", "g")], &[], json!({"auto_revive": "no"}));
    let missions = w.path("missions");
    let mut child = w.tool("cellscan").args(["revive", &s(&missions), "--watch", "0.2"]).spawn();
    let err = child.stderr.take().unwrap();
    let (etx, erx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            let _ = etx.send(line);
        }
    });
    {
        // Read here, not on a thread, so that dropping the reader closes the pipe.
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut next_until = |want: &dyn Fn(&Value) -> bool| loop {
            let line = out.next().expect("the output ended").unwrap();
            let v: Value = serde_json::from_str(&line).unwrap();
            if want(&v) {
                return v;
            }
        };
        next_until(&|v| v["kind"] == "agent" && v["agent"] == "scout");
        // The missions directory goes away: the pass fails, said on stderr, the loop goes on.
        let away = w.path("missions.away");
        std::fs::rename(&missions, &away).unwrap();
        let said = std::iter::from_fn(|| erx.recv_timeout(crate::util::limit(30.0)).ok())
            .find(|l| l.contains("cannot read missions directory"));
        assert!(said.is_some(), "nothing said of the failing pass");
        std::fs::rename(&away, &missions).unwrap();
        w.tool("cellscan").args(["set-agent", &s(&cell), "scout", "--status", "failed"]).run().code(0);
        let f = next_until(&|v| v["problem"] == "agent_failed");
        assert_eq!(f["level"], "error", "{f}");
        assert!(crate::util::alive(child.id()), "the loop ended");
    } // the reader goes away while nothing changes: exit 0
    assert!(crate::util::wait_until(20.0, || child.try_wait().unwrap().is_some()), "still running without a reader");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
