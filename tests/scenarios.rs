//! Scenarios: the shipped orchestrator and cron jobs played over simulated time
//! (`PITCREW_NOW` reaches every tool they run), against loopback stand-ins for Telegram and
//! Gitea that speak those services' APIs, with assertions on every message and issue each
//! sink received. A month of five-minute runs is 8,640 runs; each scenario steps through the
//! hours where something happens, at the cadence the crontab would run them there.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::notify::gitea::{self, FakeGitea};
use crate::notify::telegram::{self, FakeTelegram};
use crate::util::http::{HttpServer, Reply};
use crate::util::{Run, SCRUBBED, Workdir, closed_port, json as pretty, path_str};

/// `2026-11-DDTHH:MM:00Z`.
fn at(day: u32, hour: u32, min: u32) -> String {
    format!("2026-11-{day:02}T{hour:02}:{min:02}:00Z")
}

/// Every `step` minutes from `(day, hour, min)` up to and including `until`.
fn every(from: (u32, u32, u32), until: (u32, u32, u32), step: u32) -> Vec<String> {
    let mins = |(d, h, m): (u32, u32, u32)| (d * 24 + h) * 60 + m;
    (mins(from)..=mins(until)).step_by(step as usize).map(|t| at(t / (24 * 60), t / 60 % 24, t % 60)).collect()
}

/// A receiver of JSON webhooks.
struct Hook {
    server: HttpServer,
    posts: Arc<Mutex<Vec<Value>>>,
}

impl Hook {
    fn start() -> Hook {
        let posts = Arc::new(Mutex::new(Vec::new()));
        let p = posts.clone();
        let server = HttpServer::start(move |req| {
            p.lock().unwrap().push(serde_json::from_str(&req.body).unwrap_or(Value::String(req.body.clone())));
            Reply::json(200, &json!({"ok": true}))
        });
        Hook { server, posts }
    }

    fn url(&self) -> String {
        self.server.url("/hook")
    }

    /// Every alert the webhook received, in order.
    fn alerts(&self) -> Vec<Value> {
        self.posts.lock().unwrap().iter().flat_map(|p| p["alerts"].as_array().cloned().unwrap_or_default()).collect()
    }
}

/// One host under cron: a home, the environment cron gives the jobs, and the sinks.
struct Host {
    w: Workdir,
    env: Vec<(String, String)>,
}

impl Host {
    fn new(name: &str) -> Host {
        let w = Workdir::new(name);
        std::fs::create_dir_all(w.path("home/config")).unwrap();
        Host { w, env: Vec::new() }
    }

    fn env(&mut self, k: &str, v: impl Into<String>) {
        self.env.push((k.into(), v.into()));
    }

    fn services(&self, doc: Value) {
        self.w.write("home/config/services.json", pretty(&doc));
    }

    fn command(&self, program: &str, args: &[&str], now: &str) -> Command {
        let mut c = Command::new(program);
        c.args(args);
        for k in SCRUBBED {
            c.env_remove(k);
        }
        let bins = crate::util::bin_dir();
        let path = format!("{}:{}", path_str(bins), std::env::var("PATH").unwrap_or_default());
        c.env("HOME", &self.w.root)
            .env("AGENT_OPS_HOME", self.w.path("home"))
            .env("PATH", path)
            .env("PITCREW_NOW", now)
            .current_dir(&self.w.root);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }

    fn run(&self, mut c: Command, display: &str) -> Run {
        let out = c.output().unwrap();
        Run {
            display: display.into(),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// One run of the orchestrator, as the crontab's five-minute line runs it.
    fn orchestrate(&self, now: &str) -> Run {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/orchestrator.sh");
        self.run(self.command("bash", &[script], now), &format!("orchestrator at {now}"))
    }

    /// One of the shipped jobs (`examples/jobs/NAME.sh`), as cron runs it.
    fn job(&self, name: &str, now: &str) -> Run {
        let script = format!("{}/examples/jobs/{name}.sh", env!("CARGO_MANIFEST_DIR"));
        self.run(self.command("sh", &[&script], now), &format!("{name} at {now}"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.w.path("home/logs/orchestrator.log")).unwrap_or_default()
    }
}

/// A tick file for November or October.
fn tick(h: &Host, month: &str, agent: &str, status: &str) {
    h.w.write(
        &format!("home/ticks/{month}/{agent}.json"),
        pretty(&json!({"agent": agent, "month": month, "status": status,
                       "vitals": {"gateway_running": status != "critical", "home_directory_accessible": true, "config_valid": true},
                       "capabilities": {}, "timestamp": format!("{month}-01T06:00:00Z")})),
    );
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git").arg("-C").arg(dir).args(args).status().unwrap().success();
    assert!(ok, "git {args:?}");
}

/// The Agent Tick Protocol over a month: the orchestrator every five minutes around the
/// deadline, hourly and daily after it, and the monthly job on the 4th (twice, as a person
/// re-running it would). Only the protocol's own settings are given: `CLAW_CODE_GITEA_URL`
/// and `GITEA_TOKEN`, with the repository taken from the ticks repository's remote.
fn rca_month(job_first: bool) {
    let g = FakeGitea::start(&[]);
    let tg = FakeTelegram::start();
    let mut h = Host::new(if job_first { "sc-rca-job-first" } else { "sc-rca" });
    h.env("CLAW_CODE_GITEA_URL", g.url());
    h.env("GITEA_TOKEN", gitea::TOKEN);
    h.env("TELEGRAM_BOT_TOKEN", telegram::TOKEN);
    h.env("TELEGRAM_CHAT_ID", telegram::CHAT.to_string());
    h.env("TELEGRAM_API_URL", tg.url());
    h.services(json!({"disk_check": false, "services": []}));
    h.w.write(
        "home/config/agent-registry.json",
        pretty(&json!({"agents": [
            {"id": "atlas", "name": "Atlas"}, {"id": "beacon"}, {"id": "cinder"}, {"id": "dusk"}, {"id": "echo"}
        ]})),
    );
    for a in ["atlas", "beacon", "cinder", "dusk", "echo"] {
        tick(&h, "2026-10", a, "healthy");
    }
    tick(&h, "2026-11", "atlas", "healthy");
    tick(&h, "2026-11", "beacon", "degraded");
    tick(&h, "2026-11", "dusk", "critical");
    tick(&h, "2026-11", "echo", "unknown");
    // The home is the ticks repository; its remote names the repository of the issues.
    let home = h.w.path("home");
    git(&home, &["init", "-q"]);
    git(&home, &["remote", "add", "origin", &format!("{}/{}.git", g.url(), gitea::REPO)]);

    let mut runs: Vec<(String, bool)> = Vec::new();
    if job_first {
        runs.push((at(4, 0, 10), true));
        runs.extend(every((4, 0, 15), (4, 1, 15), 5).into_iter().map(|t| (t, false)));
    } else {
        runs.extend(every((1, 0, 0), (3, 12, 0), 12 * 60).into_iter().map(|t| (t, false)));
        runs.extend(every((3, 23, 30), (4, 0, 30), 5).into_iter().map(|t| (t, false)));
        runs.extend(every((4, 1, 0), (4, 9, 0), 60).into_iter().map(|t| (t, false)));
        runs.push((at(4, 9, 0), true));
        runs.push((at(4, 9, 30), true));
    }
    for (now, job) in &runs {
        let r = if *job { h.job("monthly-tick-check", now) } else { h.orchestrate(now) };
        assert!(matches!(r.code, 0 | 1), "{r:?}\n{}", h.log());
    }
    let rca = |g: &FakeGitea| -> Vec<gitea::Issue> {
        g.issues().into_iter().filter(|i| i.title.starts_with("RCA-AGENT:")).collect()
    };
    let issues = rca(&g);
    let titles: Vec<&str> = issues.iter().map(|i| i.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "RCA-AGENT: cinder failed to submit monthly tick (2026-11)",
            "RCA-AGENT: dusk reported critical status (2026-11)"
        ],
        "one RCA issue per failed agent, whichever job ran first; {:?}",
        g.issues().iter().map(|i| &i.title).collect::<Vec<_>>()
    );
    for i in &issues {
        let mut labels: Vec<String> = i.labels.iter().map(|id| g.label_name(*id)).collect();
        labels.sort();
        assert_eq!(labels, ["agent-health", "auto-generated", "rca-required"], "{}", i.title);
        assert!(i.body.starts_with("## Agent health failure:"), "the protocol's RCA body: {}", i.body);
        assert!(i.comments.is_empty(), "nothing to add within the day: {:?}", i.comments);
    }
    for i in g.issues() {
        assert!(!i.title.contains("needs attention"), "no generic twin: {}", i.title);
        assert!(!i.title.contains("beacon"), "degraded needs no RCA: {}", i.title);
        assert!(!i.title.contains("echo failed to submit"), "echo's tick is there: {}", i.title);
    }
    if job_first {
        return;
    }
    // Ten more days, the orchestrator and the monthly job each morning: one comment a day.
    for day in 5..=14 {
        h.orchestrate(&at(day, 9, 0));
        h.job("monthly-tick-check", &at(day, 9, 5));
    }
    for i in rca(&g) {
        assert_eq!(i.comments.len(), 10, "a daily reminder on {}: {:?}", i.title, i.comments);
        assert!(i.comments.iter().all(|c| c.starts_with("**Still failing**")), "{:?}", i.comments);
    }
    // Telegram: the chat heard of cinder when it turned missing and then at most hourly.
    let about_cinder = tg.sent().iter().filter(|m| m.text.contains("cinder")).count();
    assert!((1..=20).contains(&about_cinder), "{about_cinder} chat messages about cinder");
    // cinder submits late: the issue hears of the recovery.
    tick(&h, "2026-11", "cinder", "healthy");
    h.orchestrate(&at(15, 9, 0));
    let cinder = rca(&g).into_iter().find(|i| i.title.contains("cinder")).unwrap();
    assert!(cinder.comments.last().unwrap().starts_with("**Recovered**"), "{:?}", cinder.comments);
}

#[test]
#[ignore = "slow: plays a month of cron runs; scripts/test.sh runs it"]
fn the_rca_month_opens_one_issue_per_failed_agent_and_comments_daily() {
    rca_month(false);
}

#[test]
#[ignore = "slow: plays a month of cron runs; scripts/test.sh runs it"]
fn the_rca_month_with_the_monthly_job_first() {
    rca_month(true);
}

/// A real service on a loopback port (python3's http.server) that only its start script
/// starts, in the background, as an operator's script would; killed when dropped.
struct Svc {
    port: u16,
    pidfile: std::path::PathBuf,
    script: std::path::PathBuf,
}

impl Svc {
    fn new(w: &Workdir, name: &str) -> Svc {
        let port = closed_port();
        let pidfile = w.path(&format!("{name}.pid"));
        let www = w.path(&format!("{name}-www"));
        std::fs::create_dir_all(&www).unwrap();
        let script = w.write(
            &format!("{name}-start.sh"),
            format!(
                "#!/bin/bash\npython3 -m http.server {port} --bind 127.0.0.1 --directory '{}' >/dev/null 2>&1 &\n\
                 echo $! > '{}'\nfor _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && exit 0; sleep 0.05; done\nexit 1\n",
                path_str(&www),
                path_str(&pidfile)
            ),
        );
        Svc { port, pidfile, script }
    }

    fn restart_command(&self) -> String {
        format!("bash '{}'", path_str(&self.script))
    }

    fn start(&self) {
        assert!(Command::new("bash").arg(&self.script).status().unwrap().success());
    }

    fn answers(&self) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }

    fn kill(&self) {
        if let Some(pid) = std::fs::read_to_string(&self.pidfile).ok().and_then(|p| p.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        assert!(crate::util::wait_until(10.0, || !self.answers()), "port {} still answers", self.port);
    }
}

impl Drop for Svc {
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(&self.pidfile).ok().and_then(|p| p.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Telegram, Gitea and a webhook, all configured in services.json.
fn all_sinks(tg: &FakeTelegram, g: &FakeGitea, hook: &Hook) -> Value {
    json!({"telegram_bot_token": telegram::TOKEN, "telegram_chat_id": telegram::CHAT.to_string(),
           "telegram_api_url": tg.url(), "gitea_url": g.url(), "gitea_repo": gitea::REPO,
           "gitea_token": gitea::TOKEN, "webhook_url": hook.url()})
}

#[test]
fn an_outage_that_recover_heals_is_told_once_with_its_recovery() {
    let (tg, g, hook) = (FakeTelegram::start(), FakeGitea::start(&[]), Hook::start());
    let h = Host::new("sc-heal");
    let web = Svc::new(&h.w, "web");
    web.start();
    h.services(json!({"disk_check": false, "alerting": all_sinks(&tg, &g, &hook),
        "services": [{"name": "web", "type": "port", "port": web.port, "restart_command": web.restart_command(),
                      "verify_delay_seconds": 0}]}));
    h.orchestrate(&at(23, 10, 0)).code(0);
    assert!(tg.sent().is_empty() && hook.alerts().is_empty() && g.issues().is_empty());
    web.kill();
    let r = h.orchestrate(&at(23, 10, 5));
    r.code(0);
    assert!(web.answers(), "restarted");
    let sent = tg.sent();
    assert_eq!(sent.len(), 1, "one message: {:?}", sent.iter().map(|m| &m.text).collect::<Vec<_>>());
    assert!(
        sent[0].text.contains("1 service down: web") && sent[0].text.contains("Recovered: web"),
        "{}",
        sent[0].text
    );
    let levels: Vec<String> = hook.alerts().iter().map(|a| a["level"].as_str().unwrap().to_string()).collect();
    assert_eq!(levels, ["error", "recovery"], "the webhook: the outage and its end");
    let issues = g.issues();
    assert_eq!(issues.len(), 1);
    assert_eq!((issues[0].title.as_str(), issues[0].comments.len()), ("web is failing", 1));
    assert!(issues[0].comments[0].starts_with("**Recovered**"));
    // Quiet afterwards.
    h.orchestrate(&at(23, 10, 10)).code(0);
    h.orchestrate(&at(23, 11, 30)).code(0);
    assert_eq!((tg.sent().len(), hook.alerts().len(), g.issues()[0].comments.len()), (1, 2, 1));
}

#[test]
#[ignore = "slow: plays hours of cron runs; scripts/test.sh runs it"]
fn restarts_used_up_are_critical_once_to_every_sink_then_on_the_cadence() {
    let (tg, g, hook) = (FakeTelegram::start(), FakeGitea::start(&[]), Hook::start());
    let h = Host::new("sc-exhaust");
    let port = closed_port();
    h.services(json!({"disk_check": false, "alerting": all_sinks(&tg, &g, &hook),
        "services": [{"name": "web", "type": "port", "port": port, "verify_delay_seconds": 0,
                      "restart_command": "echo 'web: /etc/web.conf: no such file' >&2; exit 1"}]}));
    for now in every((23, 10, 0), (23, 12, 0), 5) {
        let r = h.orchestrate(&now);
        r.code(1);
    }
    let recovery_log = std::fs::read_to_string(h.w.path("home/logs/recovery.log")).unwrap();
    assert!(recovery_log.contains("MAX_ATTEMPTS: web"), "{recovery_log}");
    let critical: Vec<String> =
        tg.sent().iter().filter(|m| m.text.starts_with("[CRITICAL]")).map(|m| m.text.clone()).collect();
    assert_eq!(critical.len(), 1, "{critical:?}");
    assert!(critical[0].contains("web") && critical[0].contains("manual intervention"), "{}", critical[0]);
    let hooked: Vec<Value> = hook.alerts().into_iter().filter(|a| a["level"] == "critical").collect();
    assert_eq!(hooked.len(), 1, "{hooked:?}");
    assert_eq!(hooked[0]["subject"], "recovery:web");
    let issue = g.issues().into_iter().find(|i| i.title == "web cannot be restarted").expect("an issue");
    let critical_comments = issue.comments.iter().filter(|c| c.contains("level critical")).count();
    assert_eq!(critical_comments, 1, "{:?}", issue.comments);
    // Two hours of runs: besides the outage, the flapping and the critical word, Telegram
    // heard only the hourly reminders (each saying "still").
    let texts: Vec<String> = tg.sent().iter().map(|m| m.text.clone()).collect();
    assert_eq!(texts.len(), 7, "{texts:?}");
    assert!(texts[3..].iter().all(|t| t.contains("(still ")), "{texts:?}");
}

#[test]
#[ignore = "slow: plays hours of cron runs; scripts/test.sh runs it"]
fn a_flapping_service_is_said_to_flap_once() {
    let (tg, g, hook) = (FakeTelegram::start(), FakeGitea::start(&[]), Hook::start());
    let h = Host::new("sc-flap");
    let web = Svc::new(&h.w, "web");
    h.services(json!({"disk_check": false, "alerting": all_sinks(&tg, &g, &hook),
        "services": [{"name": "web", "type": "port", "port": web.port, "restart_command": web.restart_command(),
                      "verify_delay_seconds": 0, "restart_cooldown_seconds": 60, "max_restart_attempts": 10}]}));
    for now in every((23, 10, 0), (23, 10, 40), 5) {
        h.orchestrate(&now);
        assert!(web.answers(), "restarted at {now}");
        web.kill();
    }
    let flapping = tg.sent().iter().filter(|m| m.text.contains("flapping")).count();
    assert_eq!(flapping, 1, "{:?}", tg.sent().iter().map(|m| &m.text).collect::<Vec<_>>());
    let hooked =
        hook.alerts().into_iter().filter(|a| a["subject"] == "flapping:web" && a["level"] == "warning").count();
    assert_eq!(hooked, 1);
}

#[test]
#[ignore = "slow: a load run (300 services); scripts/test.sh runs it"]
fn a_storm_of_300_services_reaches_telegram_in_a_few_readable_messages() {
    let (tg, g, hook) = (FakeTelegram::start(), FakeGitea::start(&[]), Hook::start());
    let h = Host::new("sc-storm");
    let port = closed_port();
    let services: Vec<Value> =
        (0..300).map(|i| json!({"name": format!("svc-{i:03}"), "type": "port", "port": port})).collect();
    let mut alerting = all_sinks(&tg, &g, &hook);
    alerting["gitea_min_level"] = json!("critical");
    h.services(json!({"disk_check": false, "alerting": alerting, "services": services}));
    h.orchestrate(&at(23, 10, 0)).code(1);
    let sent = tg.sent();
    assert!(sent.len() <= 3, "{} messages", sent.len());
    let all: String = sent.iter().map(|m| m.text.clone()).collect::<Vec<_>>().join("\n");
    assert!(all.starts_with("[ERROR] Agent Ops Alert\n\n300 services down\n• connection refused (300):"), "{all}");
    for i in 0..300 {
        assert_eq!(all.matches(&format!("svc-{i:03}")).count(), 1, "svc-{i:03} once");
    }
    assert_eq!(hook.alerts().len(), 300, "the webhook has every service");
    h.orchestrate(&at(23, 10, 5)).code(1);
    assert_eq!(tg.sent().len(), sent.len(), "said once");
}

#[test]
fn a_sink_that_redirects_keeps_its_alerts_in_the_outbox() {
    let moved = Arc::new(Mutex::new(true));
    let m2 = moved.clone();
    let gets = Arc::new(Mutex::new(0usize));
    let g2 = gets.clone();
    let hook = HttpServer::start(move |req| {
        if req.method == "GET" {
            *g2.lock().unwrap() += 1;
            return Reply::json(200, &json!({"ok": true}));
        }
        if *m2.lock().unwrap() {
            Reply::new(301, "").header("Location", "https://hooks.example.org/hook")
        } else {
            Reply::json(200, &json!({"ok": true}))
        }
    });
    let g = FakeGitea::start(&[]);
    let gitea_front = {
        let base = g.url();
        HttpServer::start(move |req| Reply::new(307, "").header("Location", &format!("{base}{}", req.url)))
    };
    let h = Host::new("sc-redirect");
    h.services(json!({"disk_check": false,
        "alerting": {"webhook_url": hook.url("/hook"), "gitea_url": gitea_front.url(""), "gitea_repo": gitea::REPO,
                     "gitea_token": gitea::TOKEN},
        "services": [{"name": "web", "type": "port", "port": closed_port()}]}));
    h.orchestrate(&at(23, 10, 0)).code(1);
    assert_eq!(*gets.lock().unwrap(), 0, "a redirect is never followed as a GET");
    assert!(g.issues().is_empty());
    let outbox = std::fs::read_to_string(h.w.path("home/state/outbox.jsonl")).unwrap();
    assert!(outbox.contains("HTTP 301: redirected to https://hooks.example.org/hook"), "{outbox}");
    assert!(outbox.contains("HTTP 307: redirected to"), "{outbox}");
    let err = std::fs::read_to_string(h.w.path("home/logs/orchestrator.err")).unwrap();
    assert!(err.contains("webhook: 1 alert(s) not delivered (HTTP 301"), "{err}");
    // The webhook is fixed: the next run delivers from the outbox.
    *moved.lock().unwrap() = false;
    h.orchestrate(&at(23, 10, 5)).code(1);
    let outbox = std::fs::read_to_string(h.w.path("home/state/outbox.jsonl")).unwrap();
    assert!(!outbox.contains("\"webhook\""), "delivered: {outbox}");
}

#[test]
#[ignore = "slow: plays a day of cron runs; scripts/test.sh runs it"]
fn a_sink_down_for_a_day_gets_the_incident_once_when_it_is_back() {
    let tg = FakeTelegram::start();
    let h = Host::new("sc-tg-down");
    h.services(json!({"disk_check": false,
        "alerting": {"telegram_bot_token": telegram::TOKEN, "telegram_chat_id": telegram::CHAT.to_string(),
                     "telegram_api_url": tg.url()},
        "services": [{"name": "web", "type": "port", "port": closed_port()}]}));
    tg.set_down(true);
    for now in every((23, 10, 0), (24, 9, 0), 60) {
        h.orchestrate(&now).code(1);
    }
    let outbox = std::fs::read_to_string(h.w.path("home/state/outbox.jsonl")).unwrap();
    assert_eq!(outbox.lines().count(), 1, "one incident waits, not one line per reminder: {outbox}");
    tg.set_down(false);
    h.orchestrate(&at(24, 10, 0)).code(1);
    let sent = tg.sent();
    assert_eq!(sent.len(), 1, "{:?}", sent.iter().map(|m| &m.text).collect::<Vec<_>>());
    assert!(sent[0].text.contains("(delivered late)") && sent[0].text.contains("web"), "{}", sent[0].text);
    let outbox = std::fs::read_to_string(h.w.path("home/state/outbox.jsonl")).unwrap_or_default();
    assert!(outbox.trim().is_empty(), "{outbox}");
    // The hourly reminders go on from there.
    h.orchestrate(&at(24, 11, 0)).code(1);
    assert_eq!(tg.sent().len(), 2);
    assert!(tg.sent()[1].text.contains("still down"), "{}", tg.sent()[1].text);
}

/// A FIFO planted in a mission cell (an agent file that never ends) once kept the cells phase
/// reading forever, the run held its lock, and every later run skipped: a service that went
/// down afterwards was never announced. Now the FIFO is a finding, the run ends, and the next
/// run checks and tells as usual.
#[test]
fn a_fifo_in_a_cell_silences_nothing() {
    let hook = Hook::start();
    let h = Host::new("sc-fifo");
    let web = Svc::new(&h.w, "web");
    web.start();
    h.services(json!({"disk_check": false, "alerting": {"webhook_url": hook.url()},
        "services": [{"name": "web", "type": "port", "port": web.port}]}));
    let cell =
        h.w.tool("cellscan").args(["init", "home/missions", "--name", "Docs"]).run().code(0).kind("cell").remove(0);
    let cell = h.w.path(&format!("home/missions/{}", cell["cell"].as_str().unwrap()));
    let fifo = cell.join("agents/agent_009.json");
    std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let started = std::time::Instant::now();
    let r = h.orchestrate(&at(23, 10, 0));
    assert!(started.elapsed() < crate::util::limit(60.0), "the run ended: {:?}", started.elapsed());
    assert!(matches!(r.code, 0 | 1), "{r:?}\n{}", h.log());
    let cells = std::fs::read_to_string(h.w.path("home/logs/last-cells.ndjson")).unwrap_or_default();
    assert!(cells.contains("agent_009.json") && cells.contains("not a regular file"), "{cells}");
    // The service goes down after: the next run is not skipped and says so.
    web.kill();
    let r = h.orchestrate(&at(23, 10, 5));
    r.code(1);
    assert!(!h.log().contains("skipping"), "{}", h.log());
    assert!(hook.alerts().iter().any(|a| a["subject"] == "check:web" && a["level"] == "error"), "{:?}", hook.alerts());
}
