//! Whole pipelines: the real binaries connected by OS pipes, each stage's stdout the next
//! one's stdin as a shell connects them, with the peers they talk to on loopback: services a
//! restart script starts (python3's http.server), a webhook receiver, the Telegram and Gitea
//! stand-ins of `notify/`, `tickmon serve`; and `scripts/orchestrator.sh` running every phase.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::notify::gitea::{self, FakeGitea};
use crate::notify::telegram::{self, FakeTelegram};
use crate::util::http::{HttpServer, Reply};
use crate::util::{Run, SCRUBBED, Tool, Workdir, alive, bin, closed_port, json as pretty, wait_until};

const T0: &str = "2026-11-23T10:00:00Z";

/// `T0` plus `min` minutes.
fn at(min: u32) -> String {
    format!("2026-11-23T{:02}:{:02}:00Z", 10 + min / 60, min % 60)
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

// ---------------------------------------------------------------------------------------
// The harness: a pipeline of real processes

/// What one run of a pipeline did: each stage's exit status and stderr, the last one's stdout.
pub(crate) struct Piped {
    display: String,
    codes: Vec<i32>,
    stderr: Vec<String>,
    stdout: String,
}

impl std::fmt::Debug for Piped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\npipeline: {}\nstatuses: {:?}\n--- stdout ---\n{}\n", self.display, self.codes, self.stdout)?;
        for (i, e) in self.stderr.iter().enumerate() {
            write!(f, "--- stderr of stage {} ---\n{e}\n", i + 1)?;
        }
        Ok(())
    }
}

impl Piped {
    /// Assert every stage's exit status.
    #[track_caller]
    pub(crate) fn codes(&self, want: &[i32]) -> &Piped {
        assert_eq!(self.codes, want, "unexpected exit statuses{self:?}");
        self
    }

    /// The last stage as a `Run` (stderr: every stage's), for the harness' record helpers.
    pub(crate) fn run(&self) -> Run {
        Run {
            display: self.display.clone(),
            code: self.codes.last().copied().unwrap_or(-1),
            stdout: self.stdout.clone(),
            stderr: self.stderr.join(""),
        }
    }

    pub(crate) fn kind(&self, kind: &str) -> Vec<Value> {
        self.run().kind(kind)
    }

    #[track_caller]
    fn stderr_has(&self, stage: usize, needle: &str) -> &Piped {
        assert!(self.stderr[stage].contains(needle), "stderr of stage {} lacks {needle:?}{self:?}", stage + 1);
        self
    }
}

/// Run `stages` connected by pipes, the first one reading `input` (or nothing).
fn pipe_in(stages: Vec<Tool>, input: Option<&str>) -> Piped {
    let display = stages
        .iter()
        .map(|t| {
            let args: Vec<String> = t.cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
            format!("{} {}", t.name, args.join(" "))
        })
        .collect::<Vec<_>>()
        .join(" | ");
    let mut children: Vec<Child> = Vec::new();
    let mut errs = Vec::new();
    let mut feeder = None;
    for (i, t) in stages.into_iter().enumerate() {
        let mut cmd = t.cmd;
        match children.last_mut().and_then(|c| c.stdout.take()) {
            Some(out) => cmd.stdin(Stdio::from(out)),
            None if input.is_some() => cmd.stdin(Stdio::piped()),
            None => cmd.stdin(Stdio::null()),
        };
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {}: {e}", t.name));
        if let (0, Some(data)) = (i, input) {
            let mut stdin = child.stdin.take().unwrap();
            let data = data.to_string();
            feeder = Some(std::thread::spawn(move || {
                let _ = stdin.write_all(data.as_bytes());
            }));
        }
        let mut err = child.stderr.take().unwrap();
        errs.push(std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        }));
        children.push(child);
    }
    let mut stdout = String::new();
    children.last_mut().unwrap().stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    let codes = children.iter_mut().map(|c| c.wait().unwrap().code().unwrap_or(-1)).collect();
    if let Some(f) = feeder {
        f.join().unwrap();
    }
    let stderr = errs.into_iter().map(|h| h.join().unwrap()).collect();
    Piped { display, codes, stderr, stdout }
}

pub(crate) fn pipe(stages: Vec<Tool>) -> Piped {
    pipe_in(stages, None)
}

/// A webhook receiver: every body posted to it, parsed.
pub(crate) struct Hook {
    server: HttpServer,
    posts: Arc<Mutex<Vec<Value>>>,
}

impl Hook {
    pub(crate) fn start() -> Hook {
        let posts = Arc::new(Mutex::new(Vec::new()));
        let p = posts.clone();
        let server = HttpServer::start(move |req| {
            if req.method != "POST" {
                return Reply::new(405, "");
            }
            p.lock().unwrap().push(serde_json::from_str(&req.body).unwrap_or(Value::String(req.body.clone())));
            Reply::json(200, &json!({"ok": true}))
        });
        Hook { server, posts }
    }

    pub(crate) fn url(&self) -> String {
        self.server.url("/hook")
    }

    pub(crate) fn posts(&self) -> Vec<Value> {
        self.posts.lock().unwrap().clone()
    }
}

/// A real HTTP service (python3's http.server serving a directory) that only its restart
/// script starts, in the background, as an operator's script does: what recover heals. The
/// script refuses while the file `<name>.broken` exists. Killed when dropped.
struct WebService {
    port: u16,
    pidfile: PathBuf,
    script: PathBuf,
    broken: PathBuf,
}

impl WebService {
    fn new(w: &Workdir, name: &str, files: &[&str]) -> WebService {
        let port = closed_port();
        let www = w.path(&format!("{name}-www"));
        std::fs::create_dir_all(&www).unwrap();
        for f in files {
            std::fs::write(www.join(f), format!("{f} ok\n")).unwrap();
        }
        let pidfile = w.path(&format!("{name}.pid"));
        let broken = w.path(&format!("{name}.broken"));
        let log = w.path(&format!("{name}.log"));
        let script = w.write(
            &format!("{name}-start.sh"),
            format!(
                r#"#!/bin/bash
# Start {name} in the background and wait until it takes connections.
if [ -e "{broken}" ]; then echo "{name}: will not start: $(cat "{broken}")" >&2; exit 1; fi
python3 -m http.server {port} --bind 127.0.0.1 --directory "{www}" > "{log}" 2>&1 &
echo $! > "{pidfile}"
for _ in $(seq 200); do
    (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && exit 0
    sleep 0.05
done
echo "{name} did not come up" >&2
exit 1
"#,
                broken = s(&broken),
                www = s(&www),
                log = s(&log),
                pidfile = s(&pidfile),
            ),
        );
        WebService { port, pidfile, script, broken }
    }

    fn restart_command(&self) -> String {
        format!("bash '{}'", s(&self.script))
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn answers(&self) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }

    /// Kill it (as a crash would) and wait until the port refuses.
    fn kill(&self) {
        if let Some(pid) = std::fs::read_to_string(&self.pidfile).ok().and_then(|p| p.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            assert!(wait_until(10.0, || !alive(pid as u32)), "{pid} still alive");
            let _ = std::fs::remove_file(&self.pidfile);
        }
        assert!(wait_until(10.0, || !self.answers()), "port {} still answers", self.port);
    }

    fn break_it(&self, why: &str) {
        std::fs::write(&self.broken, why).unwrap();
    }

    fn fix_it(&self) {
        let _ = std::fs::remove_file(&self.broken);
    }
}

impl Drop for WebService {
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(&self.pidfile).ok().and_then(|p| p.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

fn levels(alerts: &[Value]) -> Vec<(&str, &str, Option<&str>)> {
    alerts
        .iter()
        .map(|a| (a["subject"].as_str().unwrap_or(""), a["level"].as_str().unwrap_or(""), a["suppressed"].as_str()))
        .collect()
}

/// The sinks an alert was delivered to.
pub(crate) fn delivered(a: &Value) -> Vec<&str> {
    let mut v: Vec<&str> = a["sinks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["delivered"] == true)
        .filter_map(|s| s["sink"].as_str())
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------
// 0. The pipe contract across stages

#[test]
fn pipeline_a_bad_line_is_named_by_the_stage_that_read_it_and_the_rest_flows_on() {
    let w = Workdir::new("pl-contract");
    let hook = Hook::start();
    w.write("home/config/services.json", pretty(&json!({"services": [], "alerting": {"webhook_url": hook.url()}})));
    let stages = || {
        vec![
            w.tool("recover").args(["--now", T0]),
            w.tool("board").args(["ingest", "--now", T0]),
            w.tool("notify").args(["--now", T0]),
        ]
    };
    let input = format!(
        "{}\n{{\"kind\": \"check\", oops}}\n{}\n",
        json!({"kind": "check", "name": "api", "status": "up", "detail": "HTTP 200", "timestamp": T0}),
        json!({"kind": "uptime", "name": "api", "uptime_percent": 91.5, "total_checks": 288, "failures": 24,
               "avg_latency_ms": 212.4, "sla_percent": 99.9, "status": "breach", "timestamp": T0})
    );
    let r = pipe_in(stages(), Some(&input));
    r.codes(&[3, 0, 0]).stderr_has(0, "recover: stdin:2: key must be a string at column 19");
    assert!(r.stderr[1].is_empty() && r.stderr[2].is_empty(), "the later stages saw only good lines{r:?}");
    assert_eq!(levels(&r.kind("alert")), vec![("uptime:api", "warning", None)]);
    let board: Value = serde_json::from_str(&w.read("home/state/board.json")).unwrap();
    assert_eq!(board["tasks"][0]["title"], "Investigate: api at 91.5% uptime");
    // Nothing in, nothing out, every stage content.
    let w2 = Workdir::new("pl-contract-empty");
    let r = pipe_in(
        vec![
            w2.tool("probe").args(["--services", "-", "--no-metrics"]),
            w2.tool("recover"),
            w2.tool("board").arg("ingest"),
            w2.tool("notify"),
        ],
        Some(""),
    );
    r.codes(&[0, 0, 0, 0]);
    assert!(r.stdout.is_empty() && r.stderr.iter().all(String::is_empty), "{r:?}");
}

// ---------------------------------------------------------------------------------------
// 1. probe | recover | notify

#[test]
fn pipeline_probe_recover_notify_heals_a_service_and_says_so_once() {
    let w = Workdir::new("pl-heal");
    let web = WebService::new(&w, "web", &["index.html"]);
    let hook = Hook::start();
    let tg = FakeTelegram::start();
    let g = FakeGitea::start(&[]);
    w.write(
        "home/config/services.json",
        pretty(&json!({
            "disk_check": false,
            "services": [{"name": "web", "type": "url", "target": web.url("/"), "timeout_seconds": 5,
                          "restart_command": web.restart_command(), "verify_delay_seconds": 0,
                          "restart_cooldown_seconds": 600}],
            "alerting": {"webhook_url": hook.url(), "telegram_bot_token": telegram::TOKEN,
                         "telegram_chat_id": telegram::CHAT.to_string(), "telegram_api_url": tg.url(),
                         "gitea_url": g.url(), "gitea_repo": gitea::REPO, "gitea_token": gitea::TOKEN,
                         "gitea_close_on_recovery": true}
        })),
    );
    let run = |now: &str| {
        pipe(vec![
            w.tool("probe").args(["--now", now]),
            w.tool("recover").args(["--now", now]),
            w.tool("notify").args(["--now", now]),
        ])
    };

    // The service is down; recover starts it; notify tells of the outage and the recovery in
    // one message per sink.
    assert!(!web.answers());
    let r = run(T0);
    r.codes(&[1, 0, 0]);
    assert!(web.answers(), "recover started the service{r:?}");
    let alerts = r.kind("alert");
    assert_eq!(levels(&alerts), vec![("check:web", "error", None), ("check:web", "recovery", None)], "{r:?}");
    assert_eq!((alerts[0]["status"].as_str(), alerts[1]["status"].as_str()), (Some("firing"), Some("resolved")));
    assert_eq!(alerts[0]["message"], "down: connection refused");
    assert_eq!(alerts[0]["since"], "2026-11-23T10:00:00.000Z", "since probe saw it down");
    assert!(alerts[1]["message"].as_str().unwrap().starts_with("recovered after "), "{r:?}");
    for a in &alerts {
        assert_eq!(delivered(a), vec!["gitea", "telegram", "webhook"], "{a}");
    }
    let issues = g.issues();
    assert_eq!(issues.len(), 1, "one issue for the incident: {issues:?}");
    assert_eq!((issues[0].title.as_str(), issues[0].state.as_str()), ("web is failing", "closed"));
    assert_eq!(issues[0].comments.len(), 1);
    assert!(issues[0].comments[0].starts_with("**Recovered**"), "{}", issues[0].comments[0]);
    let posts = hook.posts();
    assert_eq!(posts.len(), 1, "one message for the webhook: {posts:?}");
    assert_eq!(posts[0]["alerts"].as_array().unwrap().len(), 2);
    let text = posts[0]["text"].as_str().unwrap();
    assert!(text.starts_with("[ERROR] Agent Ops Alert"), "{text}");
    assert!(text.contains("1 service down: web\n• web: connection refused"), "{text}");
    assert!(text.contains("Recovered: web\n• web recovered after "), "{text}");
    let sent = tg.sent();
    assert_eq!(sent.len(), 1, "one Telegram message");
    assert!(
        sent[0].text.contains("1 service down: web") && sent[0].text.contains("Recovered: web"),
        "{}",
        sent[0].text
    );
    assert_eq!(sent[0].bold[0], "Agent Ops Alert");
    let log = w.read("home/logs/recovery.log");
    assert!(log.contains("RESTART OK: web (attempt 1/3"), "{log}");

    // A minute later all is well: nothing new to say.
    let r = run(&at(1));
    r.codes(&[0, 0, 0]);
    assert!(r.kind("alert").is_empty(), "{r:?}");
    assert_eq!((hook.posts().len(), tg.sent().len()), (1, 1));

    // It dies again; past the cooldown recover restarts it, and notify tells again.
    web.kill();
    let r = run(&at(12));
    r.codes(&[1, 0, 0]);
    assert!(web.answers());
    assert_eq!(levels(&r.kind("alert")), vec![("check:web", "error", None), ("check:web", "recovery", None)]);
    assert_eq!((hook.posts().len(), tg.sent().len()), (2, 2));
    assert_eq!(g.issues().len(), 2, "the first incident's issue was closed: a new one");
    let ledger: Value = serde_json::from_str(&w.read("home/state/recovery.json")).unwrap();
    assert_eq!(ledger["web"]["attempts"], 2);

    // And again, within the cooldown: recover leaves it down, notify says it is down.
    web.kill();
    let r = run(&at(18));
    r.codes(&[1, 1, 0]);
    assert!(!web.answers());
    let alerts = r.kind("alert");
    assert_eq!(levels(&alerts), vec![("check:web", "error", None)], "{r:?}");
    assert_eq!(delivered(&alerts[0]), vec!["gitea", "telegram", "webhook"]);
    let issues = g.issues();
    assert_eq!((issues.len(), issues[2].state.as_str()), (3, "open"), "{issues:?}");
    assert!(hook.posts()[2]["text"].as_str().unwrap().contains("1 service down: web"));
    assert!(w.read("home/logs/recovery.log").contains("COOLDOWN: web"));
}

// ---------------------------------------------------------------------------------------
// 2. depends_on end to end

#[test]
fn pipeline_gateway_outage_is_one_message_with_the_children_under_it() {
    let w = Workdir::new("pl-gateway");
    let gw = WebService::new(&w, "gateway", &["api", "web", "worker"]);
    let hook = Hook::start();
    let marker = w.path("child-restarted");
    let child = |name: &str| {
        json!({"name": name, "type": "url", "target": gw.url(&format!("/{name}")), "depends_on": ["gateway"],
               "timeout_seconds": 5, "restart_command": format!("echo {name} >> '{}'", s(&marker))})
    };
    w.write(
        "home/config/services.json",
        pretty(&json!({
            "disk_check": false,
            "services": [child("api"), child("web"), child("worker"),
                         {"name": "gateway", "type": "port", "port": gw.port, "restart_command": gw.restart_command(),
                          "verify_delay_seconds": 0, "restart_cooldown_seconds": 300}],
            "alerting": {"webhook_url": hook.url()}
        })),
    );
    let run = |now: &str| {
        pipe(vec![
            w.tool("probe").args(["--now", now]),
            w.tool("recover").args(["--now", now]),
            w.tool("notify").args(["--now", now]),
        ])
    };

    // The gateway cannot start yet: everything stays down, and the message names the gateway
    // with the services behind it listed under it.
    gw.break_it("certificate missing");
    let r = run(T0);
    r.codes(&[1, 1, 0]);
    let alerts = r.kind("alert");
    assert_eq!(
        levels(&alerts),
        vec![
            ("check:api", "error", Some("inhibited")),
            ("check:web", "error", Some("inhibited")),
            ("check:worker", "error", Some("inhibited")),
            ("check:gateway", "error", None),
            ("recovery:gateway", "error", None),
        ],
        "{r:?}"
    );
    for a in &alerts[..3] {
        assert_eq!(a["suppressed_by"], "gateway");
        assert!(a["sinks"].as_array().unwrap().is_empty(), "held, not sent: {a}");
    }
    assert_eq!(alerts[3]["also"], json!(["api", "web", "worker"]));
    let posts = hook.posts();
    assert_eq!(posts.len(), 1);
    let text = posts[0]["text"].as_str().unwrap();
    assert!(
        text.contains(
            "1 service down: gateway\n• gateway: port {P}: connection refused\n   ↳ also down because of gateway: api, web, worker"
                .replace("{P}", &gw.port.to_string())
                .as_str()
        ),
        "{text}"
    );
    assert!(text.contains("gateway: will not start: certificate missing"), "the restart's failure: {text}");
    assert!(!text.contains("• api") && !text.contains("• web:") && !text.contains("• worker"), "{text}");
    assert!(!marker.exists(), "no child was restarted while its gateway was down");
    let log = w.read("home/logs/recovery.log");
    assert!(log.contains("RESTART FAIL: gateway") && log.contains("SKIPPED: api"), "{log}");

    // Fixed, past the cooldown: recover restarts the gateway first, the services behind it
    // come back with it (none is restarted), and notify says the gateway recovered.
    gw.fix_it();
    let r = run(&at(6));
    r.codes(&[1, 0, 0]);
    let log = w.read("home/logs/recovery.log");
    assert!(log.contains("RESTART OK: gateway (attempt 2/3"), "{log}");
    for name in ["api", "web", "worker"] {
        assert!(log.contains(&format!("BACK: {name}")), "{name} came back with its gateway: {log}");
    }
    assert!(!marker.exists(), "no child was restarted: {}", std::fs::read_to_string(&marker).unwrap_or_default());
    let alerts = r.kind("alert");
    assert_eq!(
        levels(&alerts),
        vec![
            ("check:api", "error", Some("inhibited")),
            ("check:web", "error", Some("inhibited")),
            ("check:worker", "error", Some("inhibited")),
            ("check:gateway", "recovery", None),
            ("recovery:gateway", "recovery", None),
        ],
        "the children were never announced, so they recover quietly{r:?}"
    );
    let text = hook.posts()[1]["text"].as_str().unwrap().to_string();
    assert!(text.starts_with("[RECOVERED] Agent Ops Alert"), "{text}");
    assert!(text.contains("• gateway recovered after 6m"), "{text}");

    // It all goes down at once and comes back in the same run: still one message, the gateway
    // with its children under it, and its recovery (and, three restarts within the hour, a
    // word that it is flapping).
    gw.kill();
    let r = run(&at(20));
    r.codes(&[1, 0, 0]);
    let alerts = r.kind("alert");
    assert_eq!(
        levels(&alerts),
        vec![
            ("check:api", "error", Some("inhibited")),
            ("check:web", "error", Some("inhibited")),
            ("check:worker", "error", Some("inhibited")),
            ("check:gateway", "error", None),
            ("check:gateway", "recovery", None),
            ("flapping:gateway", "warning", None),
        ],
        "{r:?}"
    );
    assert_eq!(alerts[3]["also"], json!(["api", "web", "worker"]));
    let posts = hook.posts();
    assert_eq!(posts.len(), 3);
    let text = posts[2]["text"].as_str().unwrap();
    assert!(text.contains("↳ also down because of gateway: api, web, worker"), "{text}");
    assert!(text.contains("Recovered: gateway"), "{text}");
    assert!(text.contains("1 service flapping: gateway\n• gateway: 3 restarts within the flap window"), "{text}");
}

// ---------------------------------------------------------------------------------------
// 3. rollup into notify and board

/// A week of hourly checks: `api` down for six hours on the 22nd (96.43%), `db` always up.
fn write_week_of_metrics(w: &Workdir) {
    for day in 17..=23 {
        let mut lines = String::new();
        for hour in 0..24 {
            for name in ["api", "db"] {
                let down = name == "api" && day == 22 && hour < 6;
                lines.push_str(&format!(
                    "{}\n",
                    json!({"kind": "check", "name": name, "type": "url", "target": format!("http://127.0.0.1:9/{name}"),
                           "status": if down { "down" } else { "up" }, "detail": if down { "HTTP 502" } else { "HTTP 200" },
                           "latency_ms": 10 + hour, "timestamp": format!("2026-11-{day}T{hour:02}:00:00.000Z")})
                ));
            }
        }
        w.write(&format!("home/metrics/2026-11-{day}.jsonl"), lines);
    }
}

const WEEK_END: &str = "2026-11-23T23:30:00Z";

#[test]
fn pipeline_rollup_notify_tells_of_a_bad_week() {
    let w = Workdir::new("pl-rollup-notify");
    let hook = Hook::start();
    w.write("home/config/services.json", pretty(&json!({"services": [], "alerting": {"webhook_url": hook.url()}})));
    write_week_of_metrics(&w);
    let r = pipe(vec![
        w.tool("rollup").args(["--days", "7", "--now", WEEK_END]),
        w.tool("notify").args(["--now", WEEK_END]),
    ]);
    r.codes(&[0, 0]);
    let alerts = r.kind("alert");
    assert_eq!(levels(&alerts), vec![("uptime:api", "warning", None)], "{r:?}");
    assert_eq!(
        (alerts[0]["title"].as_str(), alerts[0]["state"].as_str()),
        (Some("api uptime is low"), Some("under 99.5% uptime"))
    );
    assert_eq!(delivered(&alerts[0]), vec!["webhook"]);
    let posts = hook.posts();
    assert_eq!(posts.len(), 1);
    assert!(
        posts[0]["text"].as_str().unwrap().contains("1 service under 99.5% uptime: api\n• api: 96.43% uptime"),
        "{posts:?}"
    );
    // Next week's digest says nothing new about it.
    let r = pipe(vec![
        w.tool("rollup").args(["--days", "7", "--now", WEEK_END]),
        w.tool("notify").args(["--now", "2026-11-23T23:45:00Z"]),
    ]);
    r.codes(&[0, 0]);
    assert!(r.kind("alert").is_empty(), "{r:?}");
}

#[test]
fn pipeline_rollup_sla_board_ingest_notify_makes_one_task_and_one_alert() {
    let w = Workdir::new("pl-rollup-board");
    let hook = Hook::start();
    w.write("home/config/services.json", pretty(&json!({"services": [], "alerting": {"webhook_url": hook.url()}})));
    write_week_of_metrics(&w);
    let run = |now: &str| {
        pipe(vec![
            w.tool("rollup").args(["--days", "7", "--sla", "99.9", "--now", WEEK_END]),
            w.tool("board").args(["ingest", "--now", now]),
            w.tool("notify").args(["--now", now]),
        ])
    };
    let r = run(WEEK_END);
    r.codes(&[1, 0, 0]);
    let alerts = r.kind("alert");
    assert_eq!(levels(&alerts), vec![("uptime:api", "warning", None)], "{r:?}");
    assert_eq!(alerts[0]["message"], "below SLA: 96.43% uptime (SLA 99.9%)");
    assert!(r.kind("task").is_empty(), "notify reads the tasks ingest passes on: {r:?}");
    let board: Value = serde_json::from_str(&w.read("home/state/board.json")).unwrap();
    let tasks = board["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 1, "{board}");
    assert_eq!(tasks[0]["title"], "Investigate: api at 96.43% uptime");
    assert_eq!(tasks[0]["description"], "6 failures in 168 checks. Avg latency: 21.5ms");
    assert_eq!(hook.posts().len(), 1);
    assert!(hook.posts()[0]["text"].as_str().unwrap().contains("1 service below SLA: api"));

    // The next run: the task is open already, the breach announced already.
    let r = run("2026-11-23T23:50:00Z");
    r.codes(&[1, 0, 0]);
    assert!(r.kind("alert").is_empty(), "{r:?}");
    let board: Value = serde_json::from_str(&w.read("home/state/board.json")).unwrap();
    assert_eq!(board["tasks"].as_array().unwrap().len(), 1, "{board}");
    assert_eq!(hook.posts().len(), 1);
}

#[test]
fn pipeline_rollup_sla_board_ingest_makes_no_task_for_a_name_without_checks() {
    let w = Workdir::new("pl-rollup-board-nochecks");
    write_week_of_metrics(&w);
    // A line whose status is neither up nor down (the kit's disk figure): a name with 0 checks.
    let mut day = w.read("home/metrics/2026-11-23.jsonl");
    day.push_str(
        &json!({"name": "disk_free_gb", "status": "45", "latency_ms": 0, "timestamp": "2026-11-23T10:00:00.000Z"})
            .to_string(),
    );
    day.push('\n');
    w.write("home/metrics/2026-11-23.jsonl", day);
    let r = pipe(vec![
        w.tool("rollup").args(["--days", "7", "--sla", "99.9", "--now", WEEK_END]),
        w.tool("board").args(["ingest", "--tasks-only", "--now", WEEK_END]),
    ]);
    r.codes(&[1, 0]);
    let text = w.tool("rollup").args(["--days", "7", "--sla", "99.9", "--now", WEEK_END, "--format", "text"]).run();
    text.stdout_has("disk_free_gb: 0% uptime (0 failures in 0 checks, avg 0ms) SLA 99.9%: met");
    let titles: Vec<String> = r.kind("task").iter().map(|t| t["title"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(titles, ["Investigate: api at 96.43% uptime"], "{r:?}");
}

#[test]
fn pipeline_rollup_text_digest_through_notify_send_is_rate_limited() {
    let w = Workdir::new("pl-digest");
    let tg = FakeTelegram::start();
    let hook = Hook::start();
    w.write(
        "home/config/services.json",
        pretty(&json!({"services": [], "alerting": {
            "webhook_url": hook.url(), "telegram_bot_token": telegram::TOKEN,
            "telegram_chat_id": telegram::CHAT.to_string(), "telegram_api_url": tg.url(), "rate_limit_seconds": 300}})),
    );
    write_week_of_metrics(&w);
    let send = |now: &str| {
        pipe(vec![
            w.tool("rollup").args(["--days", "7", "--format", "text", "--now", WEEK_END]),
            w.tool("notify").args(["send", "-", "--topic", "weekly-digest", "--now", now]),
        ])
    };
    let report = "=== Uptime Report (last 7 days) ===\n\n\
                  [WARN] api: 96.43% uptime (6 failures in 168 checks, avg 21.5ms)\n\
                  [OK] db: 100.0% uptime (0 failures in 168 checks, avg 21.5ms)";
    let r = send(WEEK_END);
    r.codes(&[0, 0]);
    let alerts = r.kind("alert");
    assert_eq!(alerts.len(), 1, "{r:?}");
    assert_eq!((alerts[0]["topic"].as_str(), alerts[0]["level"].as_str()), (Some("weekly-digest"), Some("info")));
    assert_eq!(delivered(&alerts[0]), vec!["telegram", "webhook"]);
    let sent = tg.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].text,
        format!("[INFO] Agent Ops Alert\n\n{report}"),
        "the Agent Ops Kit's message, the report whole"
    );
    assert_eq!(hook.posts()[0]["text"], format!("[INFO] Agent Ops Alert\n\n{report}"));

    // Sent again four minutes later: within rate_limit_seconds, held back (exit 0, as the Agent Ops Kit).
    let r = send("2026-11-23T23:34:00Z");
    r.codes(&[0, 0]);
    r.stderr_has(1, "notify: rate limited: topic 'weekly-digest' was sent within the last 300s; not sent");
    let alerts = r.kind("alert");
    assert_eq!(alerts[0]["suppressed"], "rate_limit");
    assert!(alerts[0]["sinks"].as_array().unwrap().is_empty());
    assert_eq!((tg.sent().len(), hook.posts().len()), (1, 1));
    // Past the limit it goes out again.
    send("2026-11-23T23:36:00Z").codes(&[0, 0]);
    assert_eq!((tg.sent().len(), hook.posts().len()), (2, 2));
}

// ---------------------------------------------------------------------------------------
// 4. board stalled | notify

#[test]
fn pipeline_board_stalled_notify_alerts_once() {
    let w = Workdir::new("pl-stalled");
    let hook = Hook::start();
    w.write(
        "home/config/services.json",
        pretty(&json!({"services": [], "stalled_task_hours": 24, "alerting": {"webhook_url": hook.url()}})),
    );
    let add = w.tool("board").args([
        "add",
        "Rotate the TLS certificates",
        "--owner",
        "alice",
        "--now",
        "2026-11-22T08:00:00Z",
    ]);
    let task = add.run().code(0).kind("task").remove(0);
    let id = task["id"].as_str().unwrap().to_string();
    w.tool("board").args(["move", &id, "in-progress", "--now", "2026-11-22T08:00:00Z"]).run().code(0);
    w.tool("board").args(["add", "Fresh work", "--now", "2026-11-23T11:00:00Z"]).run().code(0);
    let run =
        |now: &str| pipe(vec![w.tool("board").args(["stalled", "--now", now]), w.tool("notify").args(["--now", now])]);

    // Not stalled yet at 20 hours.
    let r = run("2026-11-23T04:00:00Z");
    r.codes(&[0, 0]);
    assert!(r.kind("alert").is_empty());
    // Stalled at 28 hours: one alert.
    let r = run("2026-11-23T12:00:00Z");
    r.codes(&[1, 0]);
    let alerts = r.kind("alert");
    assert_eq!(levels(&alerts), vec![(format!("task:{id}").as_str(), "warning", None)], "{r:?}");
    assert_eq!(alerts[0]["message"], "stalled: in progress for 28h, owner alice");
    let posts = hook.posts();
    assert_eq!(posts.len(), 1);
    assert!(posts[0]["text"].as_str().unwrap().contains("1 task stalled: Rotate the TLS certificates"), "{posts:?}");
    // Still stalled half an hour later: nothing new.
    let r = run("2026-11-23T12:30:00Z");
    r.codes(&[1, 0]);
    assert!(r.kind("alert").is_empty(), "{r:?}");
    assert_eq!(hook.posts().len(), 1);
}

// ---------------------------------------------------------------------------------------
// 5. tickmon check --rca | notify --sink gitea

#[test]
fn pipeline_tickmon_rca_becomes_one_gitea_issue_then_comments() {
    let w = Workdir::new("pl-rca");
    let g = FakeGitea::start(&["agent-health", "bug"]);
    let tg = FakeTelegram::start();
    w.write(
        "home/config/services.json",
        pretty(&json!({"services": [], "alerting": {
            "gitea_url": g.url(), "gitea_repo": gitea::REPO, "gitea_token": gitea::TOKEN,
            "telegram_bot_token": telegram::TOKEN, "telegram_chat_id": telegram::CHAT.to_string(),
            "telegram_api_url": tg.url()}})),
    );
    w.write(
        "home/config/agent-registry.json",
        pretty(&json!({"agents": [{"id": "atlas", "name": "Atlas"}, {"id": "cinder", "name": "Cinder"},
                                  {"id": "dusk", "active": false}]})),
    );
    w.tool("tickmon")
        .args(["submit", "--agent", "atlas", "--status", "healthy", "--now", "2026-11-01T09:00:00Z"])
        .args([
            "--vital",
            "gateway_running=true",
            "--vital",
            "home_directory_accessible=true",
            "--vital",
            "config_valid=true",
        ])
        .run()
        .code(0);
    let run = |now: &str| {
        pipe(vec![
            w.tool("tickmon").args(["check", "--rca", "--now", now]),
            w.tool("notify").args(["--sink", "gitea", "--now", now]),
        ])
    };

    let r = run(T0);
    r.codes(&[1, 0]);
    let title = "RCA-AGENT: cinder failed to submit monthly tick (2026-11)";
    let alerts = r.kind("alert");
    assert_eq!(levels(&alerts), vec![("tick:cinder:2026-11", "error", None)], "{r:?}");
    assert_eq!((alerts[0]["title"].as_str(), delivered(&alerts[0])), (Some(title), vec!["gitea"]));
    let issues = g.issues();
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].title, title);
    assert!(issues[0].body.starts_with("## Agent health failure: cinder"), "the RCA body: {}", issues[0].body);
    let mut labels: Vec<String> = issues[0].labels.iter().map(|id| g.label_name(*id)).collect();
    labels.sort();
    assert_eq!(labels, ["agent-health", "auto-generated", "rca-required"]);
    assert!(tg.sent().is_empty(), "--sink gitea only");

    // Ten minutes later: announced already, Gitea is left alone.
    run(&at(10)).codes(&[1, 0]);
    assert_eq!(g.issues()[0].comments.len(), 0);

    // Past repeat_interval_seconds the reminder is raised, but Gitea's cadence is a day.
    let r = run(&at(130));
    r.codes(&[1, 0]);
    assert_eq!(
        (r.kind("alert")[0]["repeat"].as_bool(), r.kind("alert")[0]["suppressed"].as_str()),
        (Some(true), Some("cadence")),
        "{r:?}"
    );
    assert_eq!(g.issues()[0].comments.len(), 0);
    // A day later the reminder comments on the open issue: no twin.
    let r = run("2026-11-24T10:00:00Z");
    r.codes(&[1, 0]);
    assert_eq!(r.kind("alert")[0]["repeat"], true, "{r:?}");
    let issues = g.issues();
    assert_eq!(issues.len(), 1, "no twin: {issues:?}");
    assert_eq!(issues[0].comments.len(), 1);
    assert!(issues[0].comments[0].starts_with("**Still failing**"), "{}", issues[0].comments[0]);

    // Another host, with no memory of it, also finds the open issue and comments.
    let other = w.tool("tickmon").args(["check", "--rca", "--now", "2026-11-24T10:10:00Z"]);
    let notify2 = w
        .tool("notify")
        .args(["--sink", "gitea", "--now", "2026-11-24T10:10:00Z", "--home"])
        .arg(w.path("host2"))
        .arg("--config")
        .arg(w.path("home/config/services.json"));
    let r = pipe(vec![other, notify2]);
    r.codes(&[1, 0]);
    let issues = g.issues();
    assert_eq!((issues.len(), issues[0].comments.len()), (1, 2), "{issues:?}");
}

// ---------------------------------------------------------------------------------------
// 6. tickmon serve + cellscan

/// A running `tickmon serve` on 127.0.0.1, port 0.
pub(crate) struct Serve {
    child: Child,
    addr: String,
}

impl Serve {
    pub(crate) fn start(w: &Workdir) -> Serve {
        Serve::start_with(w, &[])
    }

    fn start_with(w: &Workdir, extra: &[&str]) -> Serve {
        let mut child = w
            .tool("tickmon")
            .args(["serve", "--listen", "127.0.0.1:0", "--state"])
            .arg(w.path("heartbeats.json"))
            .args(extra)
            .spawn();
        drop(child.stdin.take());
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
            }
        });
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut BufReader::new(out), &mut std::io::sink());
        });
        let addr = rx.recv_timeout(crate::util::limit(30.0)).expect("tickmon serve did not start");
        Serve { child, addr }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POST with ureq; the status and the answer.
    pub(crate) fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(crate::util::limit(20.0)))
            .build()
            .new_agent();
        let mut resp = agent
            .post(&self.url(path))
            .header("Content-Type", "application/json")
            .send(body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let code = resp.status().as_u16();
        (code, serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap())
    }

    /// GET with curl, the other client agents use.
    pub(crate) fn curl(&self, path: &str) -> Value {
        let out = Command::new("curl").args(["-sS", &self.url(path)]).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{path}: {e}: {out:?}"))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A cell made with cellscan itself; its directory.
fn make_cell(w: &Workdir, name: &str, auto_revive: &str, revive_command: Option<&str>, agents: &[&str]) -> PathBuf {
    let mut init = w.tool("cellscan").args(["init", "missions", "--name", name, "--auto-revive", auto_revive]);
    if let Some(c) = revive_command {
        init = init.args(["--revive-command", c]);
    }
    let cell = init.run().code(0).kind("cell").remove(0);
    let dir = w.path(&format!("missions/{}", cell["cell"].as_str().unwrap()));
    for a in agents {
        w.tool("cellscan")
            .args(["add-agent", &s(&dir), "--id", a, "--role", "write", "--status", "active"])
            .run()
            .code(0);
        w.tool("cellscan").args(["set-agent", &s(&dir), a, "--checkpoint"]).run().code(0);
    }
    dir
}

fn agent_health(r: &Run, agent: &str) -> (String, String) {
    let a = r.named("agent", agent);
    (a["health"].as_str().unwrap_or("").to_string(), a["health_source"].as_str().unwrap_or("").to_string())
}

#[test]
fn pipeline_tickmon_serve_heartbeats_drive_cellscan_health_and_revival() {
    let w = Workdir::new("pl-heartbeat");
    let hook = Hook::start();
    w.write("home/config/services.json", pretty(&json!({"services": [], "alerting": {"webhook_url": hook.url()}})));
    let hb = Serve::start(&w);
    let ask = make_cell(&w, "Release notes", "ask", None, &["scout", "quill"]);
    let revive = format!("curl -fsS -X POST {}/heartbeat/$AGENT_ID -o /dev/null", hb.url(""));
    let yes = make_cell(&w, "Nightly build", "yes", Some(&revive), &["forge"]);
    let scan = |dir: &Path| w.tool("cellscan").args(["scan", &s(dir), "--heartbeat-url", &hb.url("")]).run();

    // Heartbeats and failures, from ureq and curl as agents send them.
    assert_eq!(hb.post("/heartbeat/scout", r#"{"metadata": {"cell": "release"}}"#).0, 200);
    assert_eq!(hb.post("/heartbeat/forge", "").0, 200);
    let out = Command::new("curl")
        .args(["-fsS", "-X", "POST", &hb.url("/heartbeat/quill"), "-d", r#"{"metadata": {"task": "draft"}}"#])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let r = scan(&ask);
    r.code(0);
    assert_eq!(agent_health(&r, "scout"), ("healthy".into(), "heartbeat".into()));
    assert_eq!(agent_health(&r, "quill"), ("healthy".into(), "heartbeat".into()));
    assert_eq!(r.named("agent", "quill")["heartbeat"]["consecutive_failures"], 0);

    // Two failures: degraded, a warning; the third: unhealthy, an error.
    for n in 1..=3 {
        let (code, st) = hb.post("/heartbeat/quill/fail", r#"{"error": "model endpoint timed out"}"#);
        assert_eq!((code, st["consecutive_failures"].as_u64()), (200, Some(n)));
        if n == 2 {
            let r = scan(&ask);
            r.code(1);
            assert_eq!(agent_health(&r, "quill").0, "degraded");
            let f = r.kind("finding");
            assert_eq!(
                (f.len(), f[0]["problem"].as_str(), f[0]["level"].as_str()),
                (1, Some("agent_unhealthy"), Some("warning"))
            );
        }
    }
    assert_eq!(hb.curl("/agent/quill")["status"], "unhealthy", "the server's own view");
    let r = scan(&ask);
    r.code(1);
    assert_eq!(agent_health(&r, "quill"), ("unhealthy".into(), "heartbeat".into()));
    let q = r.named("agent", "quill");
    assert_eq!(
        (q["heartbeat"]["consecutive_failures"].as_u64(), q["heartbeat"]["error_message"].as_str()),
        (Some(3), Some("model endpoint timed out"))
    );
    assert_eq!(agent_health(&r, "scout").0, "healthy");
    let f = r.kind("finding");
    assert_eq!((f.len(), f[0]["level"].as_str()), (1, Some("error")), "{r:?}");

    // tickmon's own view for the pipe agrees.
    let hbs = w.tool("tickmon").args(["heartbeats", "--state"]).arg(w.path("heartbeats.json")).run();
    assert_eq!(hbs.named("heartbeat", "quill")["status"], "unhealthy", "{hbs:?}");

    // ask: scan | revive --from - | notify gives the pending-approval alert, sent once.
    let run = |dir: &Path| {
        pipe(vec![
            w.tool("cellscan").args(["scan", &s(dir), "--heartbeat-url", &hb.url("")]),
            // The same directory: revive acts only on cells under it.
            w.tool("cellscan").args(["revive", "--from", "-", &s(dir), "--heartbeat-url", &hb.url("")]),
            w.tool("notify"),
        ])
    };
    let r = run(&ask);
    r.codes(&[1, 1, 0]);
    let alerts = r.kind("alert");
    let cell_id = ask.file_name().unwrap().to_str().unwrap().to_string();
    let revival = alerts.iter().find(|a| a["topic"] == "revival").unwrap_or_else(|| panic!("no revival alert{r:?}"));
    assert_eq!(revival["title"], "Revival pending approval: quill in Release notes");
    assert_eq!(revival["subject"], format!("agent:{cell_id}/quill"));
    assert!(revival["message"].as_str().unwrap().contains(&format!("--approve {cell_id}/quill")), "{revival}");
    assert_eq!(delivered(revival), vec!["webhook"]);
    let text = hook.posts()[0]["text"].as_str().unwrap().to_string();
    assert!(text.contains("Revival pending approval: quill in Release notes"), "{text}");
    assert_eq!(hb.curl("/agent/quill")["status"], "unhealthy", "nothing was run");

    // yes: the cell's revive command runs (it sends the heartbeat the agent would), and the
    // revival is verified against the endpoint.
    for _ in 0..3 {
        hb.post("/heartbeat/forge/fail", r#"{"error": "OOM killed"}"#);
    }
    let r = run(&yes);
    r.codes(&[1, 0, 0]);
    assert_eq!(hb.curl("/agent/forge")["status"], "healthy", "the revive command ran{r:?}");
    let log = std::fs::read_to_string(yes.join("logs/mission.log")).unwrap();
    assert!(log.contains("forge"), "{log}");
    let ledger: Value =
        serde_json::from_str(&std::fs::read_to_string(yes.join("logs/revivals.json")).unwrap()).unwrap();
    assert_eq!(ledger["forge"]["attempts"], 1, "{ledger}");
    let r = scan(&yes);
    r.code(0);
    assert_eq!(agent_health(&r, "forge"), ("healthy".into(), "heartbeat".into()));
}

#[test]
fn pipeline_tickmon_serve_token_is_the_one_cellscan_sends() {
    let w = Workdir::new("pl-heartbeat-token");
    let token = "hb-7f3a9c1e5d2b8046-token";
    let tok = w.write("heartbeat.token", format!("{token}\n"));
    std::fs::set_permissions(&tok, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let hb = Serve::start_with(&w, &["--token-file", &s(&tok)]);
    let cell = make_cell(&w, "Guarded", "ask", None, &["lumen"]);
    let out = Command::new("curl")
        .args(["-fsS", "-X", "POST", &hb.url("/heartbeat/lumen"), "-H", &format!("Authorization: Bearer {token}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let scan = |env: Option<&str>, extra: &[&str]| {
        let mut t = w.tool("cellscan").args(["scan", &s(&cell), "--heartbeat-url", &hb.url("")]).args(extra);
        if let Some(v) = env {
            t = t.env("AGENT_OPS_HEARTBEAT_TOKEN", v);
        }
        t.run()
    };

    // Without the token the endpoint refuses: one warning, health from the file.
    let r = scan(None, &[]);
    r.code(1);
    let f = r.kind("finding");
    assert_eq!((f.len(), f[0]["problem"].as_str()), (1, Some("heartbeat_unreachable")), "{r:?}");
    assert_eq!(agent_health(&r, "lumen").1, "file");
    // With it, from the file tickmon reads or from the environment: health from the endpoint.
    for r in [scan(None, &["--heartbeat-token-file", &s(&tok)]), scan(Some(token), &[])] {
        r.code(0);
        assert_eq!(agent_health(&r, "lumen"), ("healthy".into(), "heartbeat".into()));
        assert!(!r.stdout.contains(token) && !r.stderr.contains(token), "the token is never shown{r:?}");
    }
}

// ---------------------------------------------------------------------------------------
// 7. The orchestrator

fn orchestrator_cmd(w: &Workdir) -> Command {
    let mut c = Command::new("bash");
    c.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/orchestrator.sh"));
    for k in SCRUBBED {
        c.env_remove(k);
    }
    let bin_dir = crate::util::bin_dir();
    c.env("HOME", &w.root).env("AGENT_OPS_HOME", w.path("home")).env("PITCREW_BIN", bin_dir).current_dir(&w.root);
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn orchestrate(w: &Workdir) -> Run {
    let out = orchestrator_cmd(w).output().unwrap();
    Run {
        display: "orchestrator.sh".into(),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The lines of one run in orchestrator.log (the last one), without their times.
fn last_run_log(w: &Workdir) -> Vec<String> {
    let log = w.read("home/logs/orchestrator.log");
    let lines: Vec<String> =
        log.lines().map(|l| l.split_once("] ").map(|(_, r)| r.to_string()).unwrap_or_default()).collect();
    let start = lines.iter().rposition(|l| l.starts_with("=== run starting")).unwrap();
    lines[start..].to_vec()
}

/// An API whose health endpoint says ok until told otherwise.
struct Api {
    server: HttpServer,
    ok: Arc<std::sync::atomic::AtomicBool>,
}

impl Api {
    fn start() -> Api {
        let ok = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let o = ok.clone();
        let server = HttpServer::start(move |_| {
            if o.load(std::sync::atomic::Ordering::SeqCst) {
                Reply::json(200, &json!({"status": "ok"}))
            } else {
                Reply::json(503, &json!({"status": "database unreachable"}))
            }
        });
        Api { server, ok }
    }

    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    fn fail(&self) {
        self.ok.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A host: services on loopback (one that a restart script starts), an agent registry with
/// this month's and last month's ticks, a missions dir with one valid cell.
fn orchestrated_host(name: &str) -> (Workdir, Api, WebService, Hook) {
    let w = Workdir::new(name);
    let api = Api::start();
    let web = WebService::new(&w, "web", &["index.html"]);
    let hook = Hook::start();
    w.write(
        "home/config/services.json",
        pretty(&json!({
            "disk_check": false,
            "services": [
                {"name": "api", "type": "url", "target": api.url("/health"), "json_field": "status", "json_equals": "ok"},
                {"name": "web", "type": "port", "port": web.port, "restart_command": web.restart_command(),
                 "verify_delay_seconds": 0}
            ],
            "alerting": {"webhook_url": hook.url()}
        })),
    );
    w.write("home/config/agent-registry.json", pretty(&json!({"agents": [{"id": "atlas", "name": "Atlas"}]})));
    let now = time::OffsetDateTime::now_utc();
    let last_month = now.replace_day(1).unwrap() - time::Duration::days(1);
    for month in [
        format!("{:04}-{:02}", now.year(), u8::from(now.month())),
        format!("{:04}-{:02}", last_month.year(), u8::from(last_month.month())),
    ] {
        w.tool("tickmon")
            .args(["submit", "--agent", "atlas", "--status", "healthy", "--month", &month])
            .args([
                "--vital",
                "gateway_running=true",
                "--vital",
                "home_directory_accessible=true",
                "--vital",
                "config_valid=true",
            ])
            .run()
            .code(0);
    }
    let cell = w
        .tool("cellscan")
        .args(["init", "home/missions", "--name", "Docs refresh"])
        .run()
        .code(0)
        .kind("cell")
        .remove(0);
    let cell = format!("home/missions/{}", cell["cell"].as_str().unwrap());
    w.tool("cellscan").args(["add-agent", &cell, "--id", "scribe", "--role", "lead"]).run().code(0);
    w.tool("cellscan")
        .args(["add-task", &cell, "--id", "task_001", "--title", "Outline", "--assign", "scribe"])
        .run()
        .code(0);
    (w, api, web, hook)
}

#[test]
fn orchestrator_runs_every_phase_heals_and_says_what_is_down() {
    let (w, api, web, hook) = orchestrated_host("pl-orch");
    // web is down; the run restarts it and is healthy at its end.
    let r = orchestrate(&w);
    r.code(0);
    assert!(r.stdout.is_empty() && r.stderr.is_empty(), "cron mails whatever it prints{r:?}");
    assert!(web.answers(), "recover restarted web");
    assert_eq!(
        last_run_log(&w)[1..],
        [
            "health (probe | recover | notify): ok",
            "stalled tasks (board stalled | notify): ok",
            "ticks (tickmon check | notify): ok",
            "cells (cellscan scan | cellscan revive | notify): ok",
            "metrics retention (rollup prune): ok",
            "=== run complete: exit 0 ===",
        ],
        "{}",
        w.read("home/logs/orchestrator.log")
    );
    for phase in ["health", "stalled", "ticks", "cells", "probe"] {
        assert!(w.path(&format!("home/logs/last-{phase}.ndjson")).exists(), "last-{phase}.ndjson");
    }
    let probe_saw: Vec<Value> =
        w.read("home/logs/last-probe.ndjson").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        probe_saw.iter().map(|c| (c["name"].as_str(), c["status"].as_str())).collect::<Vec<_>>(),
        vec![(Some("api"), Some("up")), (Some("web"), Some("down"))]
    );
    let health: Vec<Value> =
        w.read("home/logs/last-health.ndjson").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(levels(&health), vec![("check:web", "error", None), ("check:web", "recovery", None)]);
    assert_eq!(hook.posts().len(), 1);
    assert!(w.read("home/logs/recovery.log").contains("RESTART OK: web"));

    // The second run finds everything healthy. The service the first run started does not
    // hold the run's lock: the run is not skipped.
    let r = orchestrate(&w);
    r.code(0);
    let log = last_run_log(&w);
    assert_eq!(log[1], "health (probe | recover | notify): ok", "{log:?}");
    assert_eq!(hook.posts().len(), 1, "nothing new to say");

    // api goes wrong (no restart command): exit 1, one alert, the phase's verdict in the log.
    api.fail();
    let r = orchestrate(&w);
    r.code(1);
    let log = last_run_log(&w);
    assert_eq!(log[1], "health (probe | recover | notify): found problems (exit statuses 0 1 0)", "{log:?}");
    assert_eq!(log.last().unwrap(), "=== run complete: exit 1 ===");
    let posts = hook.posts();
    assert_eq!(posts.len(), 2);
    assert!(posts[1]["text"].as_str().unwrap().contains("1 service down: api"), "{posts:?}");
}

#[test]
fn orchestrator_reports_a_phase_that_cannot_run_with_its_message() {
    let (w, _api, _web, _hook) = orchestrated_host("pl-orch-broken");
    w.write("home/config/services.json", "{\"services\": [,]}\n");
    let r = orchestrate(&w);
    r.code(2);
    let log = last_run_log(&w);
    assert!(
        log[1].starts_with("ERROR: health (probe | recover | notify) could not run (exit statuses 2 2 2): "),
        "{log:?}"
    );
    assert!(log[1].contains("services.json:1:"), "the first message says why: {log:?}");
    assert_eq!(log.last().unwrap(), "=== run complete: exit 2 ===");
    let err = w.read("home/logs/orchestrator.err");
    assert!(err.lines().all(|l| l.starts_with('[')), "every line marked with its time: {err}");
    assert!(err.contains("] health: probe: "), "{err}");
}

#[test]
fn orchestrator_second_overlapping_run_exits_at_once() {
    let w = Workdir::new("pl-orch-lock");
    let started = w.path("restart-started");
    let release = w.path("restart-release");
    // A restart that holds the first run until the test lets it go.
    let restart = format!(
        "touch '{}'; for _ in $(seq 400); do [ -e '{}' ] && exit 0; sleep 0.05; done; exit 1",
        s(&started),
        s(&release)
    );
    w.write(
        "home/config/services.json",
        pretty(&json!({"disk_check": false, "services": [
            {"name": "slow", "type": "port", "port": closed_port(), "restart_command": restart, "verify_delay_seconds": 0}]})),
    );
    let first = orchestrator_cmd(&w).spawn().unwrap();
    assert!(wait_until(20.0, || started.exists()), "the first run reached its restart");
    let t = Instant::now();
    let second = orchestrate(&w);
    second.code(0);
    assert!(t.elapsed() < crate::util::limit(5.0), "the second run waited {:?}", t.elapsed());
    std::fs::write(&release, "").unwrap();
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "slow is still down after its restart: {out:?}");
    let log = w.read("home/logs/orchestrator.log");
    assert_eq!(log.matches("=== run starting").count(), 1, "{log}");
    assert!(log.contains("holds") && log.contains("skipping"), "{log}");
    let lines: usize = std::fs::read_dir(w.path("home/metrics"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .map(|p| std::fs::read_to_string(p).unwrap().lines().count())
        .sum();
    assert_eq!(lines, 1, "the second run probed nothing");
}

#[test]
fn orchestrator_refuses_a_variable_that_cron_left_unexpanded() {
    // cron sets `AGENT_OPS_HOME=$HOME/.agent-ops` as written; taken as given it is a relative
    // directory named `$HOME` under wherever the job runs.
    let w = Workdir::new("pl-orch-literal");
    for (var, value) in [("AGENT_OPS_HOME", "$HOME/.agent-ops"), ("PITCREW_BIN", "~/.local/bin")] {
        let out = orchestrator_cmd(&w).env(var, value).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}: {stderr}");
        assert!(stderr.contains(&format!("{var} is '{value}'")) && stderr.contains("absolute path"), "{stderr}");
        let made: Vec<_> = std::fs::read_dir(&w.root).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(made.is_empty(), "{var}: the run created {made:?}");
    }
}

/// Processes whose command line starts with the binary `tool` and whose environment names
/// `home` as AGENT_OPS_HOME: what is left of a run in that home.
fn tools_left(tool: &str, home: &Path) -> Vec<String> {
    let want_env = format!("AGENT_OPS_HOME={}", home.display());
    let mut left = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let p = entry.path();
        let Ok(cmdline) = std::fs::read(p.join("cmdline")) else { continue };
        let Ok(environ) = std::fs::read(p.join("environ")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let in_home = environ.split(|b| *b == 0).any(|e| e == want_env.as_bytes());
        let pid: u32 = entry.file_name().to_string_lossy().parse().unwrap_or(0);
        if in_home && cmdline.starts_with(&*bin(tool).to_string_lossy()) && alive(pid) {
            left.push(format!("{pid}: {cmdline}"));
        }
    }
    left
}

/// Kills the pids listed in a file (one a line) when dropped.
struct KillListed(PathBuf);

impl Drop for KillListed {
    fn drop(&mut self) {
        for pid in std::fs::read_to_string(&self.0).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

#[test]
#[ignore = "slow: waits out a phase time limit; scripts/test.sh runs it"]
fn orchestrator_a_phase_that_hangs_is_killed_at_its_time_limit_and_the_next_run_is_not_skipped() {
    let w = Workdir::new("pl-orch-hang");
    let pids = w.path("plugin.pids");
    let _cleanup = KillListed(pids.clone());
    // A monitoring plugin that hangs far past the phase's limit: its own timeout is longer
    // still, so only the phase limit can end the run's wait for it.
    let plugin = format!("echo $$ >> '{}'; exec sleep 120", s(&pids));
    w.write(
        "home/config/services.json",
        pretty(&json!({"disk_check": false, "services": [
            {"name": "stuck", "type": "command", "command": plugin, "timeout_seconds": 600}]})),
    );
    let limit = 3;
    let orchestrate_limited = || {
        let t = Instant::now();
        let out = orchestrator_cmd(&w).env("PITCREW_PHASE_TIMEOUT", limit.to_string()).output().unwrap();
        (out, t.elapsed())
    };
    for run in 1..=2 {
        let (out, took) = orchestrate_limited();
        assert_eq!(out.status.code(), Some(2), "run {run}: a phase that timed out could not run: {out:?}");
        assert!(
            took >= Duration::from_secs(limit) && took < crate::util::limit((limit + 30) as f64),
            "run {run} took {took:?} with a limit of {limit} s"
        );
        let log = last_run_log(&w);
        assert!(
            log[1].starts_with(
                "ERROR: health (probe | recover | notify) timed out after 3 s (PITCREW_PHASE_TIMEOUT) and was killed; see "
            ),
            "run {run}: {log:?}"
        );
        assert_eq!(
            log[2..],
            [
                "stalled tasks (board stalled | notify): ok",
                "metrics retention (rollup prune): ok",
                "=== run complete: exit 2 ==="
            ],
            "run {run}: the other phases still ran: {log:?}"
        );
        // The phase's process group is gone with it: no probe, recover or notify is left
        // (the plugin made a process group of its own, as probe runs plugins, and lives on).
        for tool in ["probe", "recover", "notify"] {
            assert!(
                wait_until(15.0, || tools_left(tool, &w.path("home")).is_empty()),
                "run {run}: {tool} left behind: {:?}",
                tools_left(tool, &w.path("home"))
            );
        }
    }
    let log = w.read("home/logs/orchestrator.log");
    assert_eq!(log.matches("=== run starting").count(), 2, "the second run was not skipped: {log}");
    assert!(!log.contains("skipping"), "{log}");
    assert_eq!(std::fs::read_to_string(&pids).unwrap().lines().count(), 2, "each run started the plugin");
    let err = w.read("home/logs/orchestrator.err");
    assert_eq!(err.matches("] health: timed out after 3 s; killed").count(), 2, "{err}");
}

#[test]
fn orchestrator_runs_skipped_three_times_in_a_row_alert_once() {
    let w = Workdir::new("pl-orch-skips");
    let hook = Hook::start();
    w.write(
        "home/config/services.json",
        pretty(&json!({"disk_check": false, "services": [], "alerting": {"webhook_url": hook.url()}})),
    );
    std::fs::create_dir_all(w.path("home/state")).unwrap();
    // Another process holds the orchestrator's lock (one process: killing it releases it).
    let ready = w.path("holder-ready");
    let _cleanup = KillListed(ready.clone());
    let mut holder = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 9>'{}'; flock 9; echo $$ > '{}'; exec sleep 600",
            s(&w.path("home/state/orchestrator.lock")),
            s(&ready)
        ))
        .spawn()
        .unwrap();
    assert!(wait_until(20.0, || ready.exists()), "the holder took the lock");
    let skipped = |n: usize| {
        let r = orchestrate(&w);
        r.code(0);
        assert!(r.stdout.is_empty() && r.stderr.is_empty(), "{r:?}");
        let log = w.read("home/logs/orchestrator.log");
        let last = log.lines().last().unwrap_or_default().to_string();
        assert!(last.contains(&format!("orchestrator.lock; skipping ({n} in a row")), "run {n}: {log}");
        last
    };
    skipped(1);
    skipped(2);
    assert!(hook.posts().is_empty(), "two skipped runs say nothing yet");
    let third = skipped(3);
    assert!(third.ends_with("(3 in a row; alerted through notify)"), "{third}");
    let posts = hook.posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    let text = posts[0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("3 runs in a row skipped") && text.contains("orchestrator.lock"), "{posts:?}");
    assert_eq!(posts[0]["alerts"][0]["level"], "critical", "{posts:?}");
    assert_eq!(posts[0]["alerts"][0]["topic"], "orchestrator", "{posts:?}");
    let fourth = skipped(4);
    assert!(fourth.ends_with("(4 in a row)"), "{fourth}");
    assert_eq!(hook.posts().len(), 1, "alerted once for the whole streak");

    // The holder goes away: the next run gets the lock, says so, and starts counting again.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let r = orchestrate(&w);
    r.code(0);
    let log = last_run_log(&w);
    assert!(log[1].starts_with("the lock is free again after 4 skipped run(s) since "), "{log:?}");
    assert!(!w.path("home/state/orchestrator.skipped").exists());
    assert_eq!(hook.posts().len(), 1);
}
