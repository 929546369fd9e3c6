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

/// Every incident's life over a simulated morning, from what the real tools wrote: `web`
/// goes down and recover restarts it; `db` goes down, is acknowledged by hand and started
/// again by a person; `batch` is silenced, goes down and comes back by itself. Then the host
/// stops for six hours: the first run after it says so, once, and the weekly job's reports
/// do not say it again.
#[test]
fn incidents_have_a_lifecycle_and_the_monitors_silence_is_told_once() {
    let hook = Hook::start();
    let h = Host::new("sc-lifecycle");
    let (web, db, batch) = (Svc::new(&h.w, "web"), Svc::new(&h.w, "db"), Svc::new(&h.w, "batch"));
    for s in [&web, &db, &batch] {
        s.start();
    }
    h.services(json!({"disk_check": false, "check_interval_seconds": 300,
        "alerting": {"webhook_url": hook.url()},
        "services": [
            {"name": "web", "type": "port", "port": web.port, "restart_command": web.restart_command(), "verify_delay_seconds": 0},
            {"name": "db", "type": "port", "port": db.port},
            {"name": "batch", "type": "port", "port": batch.port}]}));
    let silence = h.command(
        "notify",
        &["silence", "add", "--match", "name=batch", "--for", "3h", "--why", "flaky"],
        &at(23, 10, 0),
    );
    h.run(silence, "notify silence add").code(0);
    for now in every((23, 10, 0), (23, 11, 0), 5) {
        match now.as_str() {
            "2026-11-23T10:10:00Z" => web.kill(),
            "2026-11-23T10:20:00Z" => db.kill(),
            "2026-11-23T10:40:00Z" => db.start(),
            "2026-11-23T10:45:00Z" => batch.kill(),
            "2026-11-23T10:55:00Z" => batch.start(),
            _ => {}
        }
        if now == "2026-11-23T10:30:00Z" {
            // Someone acknowledges db's alert at 10:27.
            let ack = h.command(
                "notify",
                &["ack", "--match", "name=db", "--by", "ops", "--why", "restoring"],
                &at(23, 10, 27),
            );
            let r = h.run(ack, "notify ack");
            r.code(0);
            assert_eq!(r.kind("alert_event")[0]["subject"], "check:db");
            let again = h.command("notify", &["ack", "--match", "name=db", "--by", "ops"], &at(23, 10, 28));
            h.run(again, "notify ack again").code(1);
        }
        let r = h.orchestrate(&now);
        assert!(matches!(r.code, 0 | 1), "{r:?}\n{}", h.log());
    }
    // Every event of the alerts' lives, with the sink that took each.
    let events: Vec<Value> =
        h.w.read("home/state/alerts/2026-11-23.jsonl").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let said: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| (e["timestamp"].as_str().unwrap(), e["subject"].as_str().unwrap(), e["event"].as_str().unwrap()))
        .collect();
    assert_eq!(
        said,
        [
            ("2026-11-23T10:10:00.000Z", "check:web", "fired"),
            ("2026-11-23T10:10:00.000Z", "check:web", "resolved"),
            ("2026-11-23T10:20:00.000Z", "check:db", "fired"),
            ("2026-11-23T10:27:00.000Z", "check:db", "acknowledged"),
            ("2026-11-23T10:40:00.000Z", "check:db", "resolved"),
            ("2026-11-23T10:45:00.000Z", "check:batch", "silenced"),
            ("2026-11-23T10:50:00.000Z", "check:batch", "silenced"),
        ]
    );
    assert_eq!(events[0]["sinks"], json!([{"sink": "webhook", "delivered": true, "at": "2026-11-23T10:10:00.000Z"}]));
    let restarts = h.w.read("home/state/restarts/2026-11-23.jsonl");
    let restart: Value = serde_json::from_str(restarts.lines().next().unwrap()).unwrap();
    assert_eq!(
        (restart["kind"].as_str(), restart["name"].as_str(), restart["outcome"].as_str()),
        (Some("restart"), Some("web"), Some("recovered"))
    );
    assert_eq!(restarts.lines().count(), 1);

    // The join, at 11:02.
    let run = |args: &[&str], now: &str| h.run(h.command("rollup", args, now), &format!("rollup {args:?}"));
    let r = run(&["incidents", "--days", "1"], &at(23, 11, 2));
    r.code(0);
    let incidents = r.kind("incident");
    let life: Vec<Value> = incidents
        .iter()
        .map(|i| {
            json!([
                i["name"],
                i["first_failure"],
                i["first_alert"],
                i["first_ack"],
                i["restarts"].as_array().unwrap().len(),
                i["first_good_check"],
                i["back"],
                i["ended_by"],
                i["mttd_s"],
                i["mtta_s"],
                i["mttr_s"]
            ])
        })
        .collect();
    assert_eq!(
        life,
        [
            json!([
                "web",
                "2026-11-23T10:10:00.000Z",
                "2026-11-23T10:10:00.000Z",
                null,
                1,
                "2026-11-23T10:15:00.000Z",
                "2026-11-23T10:10:00.000Z",
                "recover",
                0,
                null,
                0
            ]),
            json!([
                "db",
                "2026-11-23T10:20:00.000Z",
                "2026-11-23T10:20:00.000Z",
                "2026-11-23T10:27:00.000Z",
                0,
                "2026-11-23T10:40:00.000Z",
                "2026-11-23T10:40:00.000Z",
                "person",
                0,
                420,
                1200
            ]),
            json!([
                "batch",
                "2026-11-23T10:45:00.000Z",
                null,
                null,
                0,
                "2026-11-23T10:55:00.000Z",
                "2026-11-23T10:55:00.000Z",
                "itself",
                null,
                null,
                600
            ]),
        ]
    );
    let all = r.records().into_iter().find(|v| v["kind"] == "incident_summary" && v["scope"] == "all").unwrap();
    assert_eq!(
        [
            &all["incidents"],
            &all["mttd_s"],
            &all["mtta_s"],
            &all["mttr_s"],
            &all["recovered_by_recover"],
            &all["came_back_by_itself"],
            &all["fixed_by_a_person"]
        ],
        [&json!(3), &json!(0), &json!(420), &json!(600), &json!(1), &json!(1), &json!(1)],
        "MTTR: (0 + 1200 + 600) / 3"
    );
    run(&["incidents", "--days", "1", "--format", "text"], &at(23, 11, 2))
        .stdout_has("2026-11-23 10:20 db: down 20m (4 down checks); alerted after 0s, acknowledged after 7m; fixed by a person")
        .stdout_has("Overall: 3 incident(s), 0 ongoing; MTTD 0s, MTTA 7m, MTTR 10m; 1 recovered by recover, 1 came back by itself, 1 fixed by a person");
    run(&["incidents", "--days", "1", "--format", "csv"], &at(23, 11, 2))
        .stdout_has("incident,batch,2026-11-23T10:45:00.000Z,,,0,");
    run(&["incidents", "--days", "1", "--format", "markdown"], &at(23, 11, 2))
        .stdout_has("| **all** | 3 | 0 | 0s | 7m | 10m | 1 | 1 | 1 |");

    // Six hours without a run: the first run after it logs the gap and tells the webhook once.
    let before = hook.alerts().len();
    h.orchestrate(&at(23, 17, 0));
    assert!(
        h.log().contains("monitoring gap: no check of any service since 2026-11-23T11:00:00.000Z (6h so far; more than 15m, the limit); told through notify"),
        "{}",
        h.log()
    );
    h.orchestrate(&at(23, 17, 5));
    // The weekly job (the uptime report through notify, with the incidents) sees the gap closed.
    h.job("weekly-sla-digest", &at(23, 17, 10));
    let report = run(&["--days", "1"], &at(23, 17, 10));
    let gap = report.kind("finding");
    assert_eq!(
        (gap.len(), &gap[0]["start"], &gap[0]["end"]),
        (1, &json!("2026-11-23T11:00:00.000Z"), &json!("2026-11-23T17:00:00.000Z"))
    );
    let mut notify = h.command("notify", &["-"], &at(23, 18, 30));
    notify.stdin(Stdio::piped());
    let mut child = notify.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), report.stdout.as_bytes()).unwrap();
    drop(child.stdin.take());
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(0), "rollup | notify");
    let gaps: Vec<Value> = hook.alerts()[before..]
        .iter()
        .filter(|a| a["subject"].as_str().is_some_and(|s| s.starts_with("monitoring_gap:")))
        .cloned()
        .collect();
    assert_eq!(gaps.len(), 1, "told once: {gaps:?}");
    assert_eq!(gaps[0]["subject"], "monitoring_gap:2026-11-23T11:00:00.000Z");
    let weekly: Vec<Value> =
        hook.alerts()[before..].iter().filter(|a| a["topic"] == "weekly-digest").cloned().collect();
    assert!(
        weekly.iter().any(|a| a["message"].as_str().unwrap().contains("=== Incidents (last 7 days) ===")),
        "{weekly:?}"
    );
}

/// The resident pipeline as shipped (`pitcrew-watch`), in real time: a web server is killed,
/// seen down within its interval, restarted, verified and announced with its recovery within
/// seconds; a service added to services.json while it runs is checked and announced without a
/// restart; SIGTERM ends every stage with exit 0.
#[test]
#[ignore = "slow: the resident pipeline in real time"]
fn the_resident_pipeline_restarts_and_tells_within_seconds_and_takes_edits() {
    let hook = Hook::start();
    let h = Host::new("sc-watch");
    let web = Svc::new(&h.w, "web");
    web.start();
    let config = |extra: Value| {
        let mut services = vec![json!({"name": "web", "type": "port", "port": web.port, "timeout_seconds": 2,
            "restart_command": web.restart_command(), "restart_cooldown_seconds": 5, "verify_delay_seconds": 0.5})];
        if !extra.is_null() {
            services.push(extra);
        }
        json!({"disk_check": false, "interval_seconds": 1,
               "alerting": {"webhook_url": hook.url(), "rate_limit_seconds": 0, "group_wait_seconds": 1,
                            "group_interval_seconds": 2},
               "services": services})
    };
    h.services(config(Value::Null));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/watch.sh");
    let mut cmd = h.command("bash", &[script, "--no-heartbeats"], "");
    cmd.env_remove("PITCREW_NOW")
        .env("PITCREW_BIN", crate::util::bin_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut watch = cmd.spawn().unwrap();
    let metrics = || {
        std::fs::read_dir(h.w.path("home/metrics"))
            .map(|d| d.filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok()).collect::<String>())
            .unwrap_or_default()
    };
    assert!(crate::util::wait_until(30.0, || metrics().contains("\"web\"")), "no check of web in the metrics");

    let killed = std::time::Instant::now();
    web.kill();
    let told =
        |subject: &str, status: &str| hook.alerts().iter().any(|a| a["subject"] == subject && a["status"] == status);
    assert!(
        crate::util::wait_until(40.0, || told("check:web", "resolved")),
        "no recovery of web at the webhook: {:?}\n{}",
        hook.alerts(),
        std::fs::read_to_string(h.w.path("home/logs/watch.stderr")).unwrap_or_default()
    );
    let took = killed.elapsed();
    assert!(web.answers(), "web was restarted");
    assert!(told("check:web", "firing"), "the outage was told too: {:?}", hook.alerts());
    // interval 1 s + timeout 2 s + restart + verify 0.5 s + group_wait 1 s, with room for a
    // loaded machine.
    assert!(took < crate::util::limit(15.0), "from the kill to the recovery at the webhook: {took:?}");
    let restarts: String = std::fs::read_dir(h.w.path("home/state/restarts"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(restarts.lines().count(), 1, "one restart: {restarts}");

    // A service added while it runs is checked and announced, without a restart of the watch.
    h.services(config(json!({"name": "api", "type": "port", "port": closed_port(), "timeout_seconds": 1})));
    assert!(
        crate::util::wait_until(30.0, || told("check:api", "firing")),
        "api was never announced: {:?}",
        hook.alerts()
    );
    assert!(watch.try_wait().unwrap().is_none(), "the watch still runs");

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(watch.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let ended = crate::util::wait_until(40.0, || watch.try_wait().unwrap().is_some());
    assert!(ended, "pitcrew-watch did not end after SIGTERM");
    assert_eq!(watch.wait().unwrap().code(), Some(0));
    let log = std::fs::read_to_string(h.w.path("home/logs/watch.log")).unwrap_or_default();
    eprintln!("kill to recovery at the webhook: {took:?}\n{log}");
}

/// The real clock, `minutes` from now, as the orchestrator's tools take it: the heartbeat
/// endpoint's times are real ones.
fn real_now(minutes: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::minutes(minutes);
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}

/// The heartbeat endpoint in the scheduled loop: a real `tickmon serve` on loopback, an agent
/// failing three heartbeats; the next orchestrator run announces it at the webhook, the run
/// after does not repeat it, and an agent that falls silent is announced too.
#[test]
fn an_agent_failing_its_heartbeats_is_announced_once_by_the_orchestrator() {
    use crate::tickmon::{Serve, post};
    let hook = Hook::start();
    let h = Host::new("sc-heartbeats");
    h.services(json!({"disk_check": false, "alerting": {"webhook_url": hook.url()}, "services": []}));
    let serve = Serve::start(&h.w, &[]);
    for agent in ["atlas", "beacon"] {
        assert_eq!(post(&serve.url(&format!("/heartbeat/{agent}")), "{}").0, 200);
    }
    h.orchestrate(&real_now(0)).code(0);
    assert!(h.log().contains("agents (tickmon heartbeats | notify): ok"), "{}", h.log());
    assert!(hook.alerts().is_empty(), "{:?}", hook.alerts());

    for _ in 0..3 {
        assert_eq!(post(&serve.url("/heartbeat/atlas/fail"), r#"{"error": "upstream API returned 503"}"#).0, 200);
    }
    let r = h.orchestrate(&real_now(0));
    r.code(1);
    let firing =
        |subject: &str| hook.alerts().iter().filter(|a| a["subject"] == subject && a["status"] == "firing").count();
    assert_eq!(firing("heartbeat:atlas"), 1, "{:?}\n{}", hook.alerts(), h.log());
    assert_eq!(firing("heartbeat:beacon"), 0);
    assert!(h.log().contains("agents (tickmon heartbeats | notify): found problems"), "{}", h.log());
    assert!(h.w.read("home/logs/last-agents.ndjson").contains("heartbeat:atlas"));
    // The next run does not repeat it (notify remembers the subject).
    h.orchestrate(&real_now(1)).code(1);
    assert_eq!(firing("heartbeat:atlas"), 1, "{:?}", hook.alerts());

    // A silent agent: beacon sent nothing for three periods of 300 s, as the server counts them.
    h.orchestrate(&real_now(16)).code(1);
    assert_eq!(firing("heartbeat:beacon"), 1, "{:?}", hook.alerts());
    assert_eq!(firing("heartbeat:atlas"), 1, "{:?}", hook.alerts());
}

/// With PITCREW_HEARTBEAT_URL the cells phase asks the endpoint: an agent of a cell that
/// failed three heartbeats is handed to revival (the cell's policy is `ask`: an approval
/// request at the webhook); without it the files alone say the agent is fine.
#[test]
fn the_orchestrator_hands_an_agent_the_endpoint_calls_unhealthy_to_revival() {
    use crate::tickmon::{Serve, post};
    const CELL: &str = "7d3c0a52-1e4b-4f7a-9c2d-5b8e6f1a2c3d";
    let hook = Hook::start();
    let mut h = Host::new("sc-heartbeat-revive");
    h.services(json!({"disk_check": false, "alerting": {"webhook_url": hook.url()}, "services": []}));
    std::fs::create_dir_all(h.w.path("home/missions")).unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/missions/7d3c0a52-1e4b-4f7a-9c2d-5b8e6f1a2c3d");
    let copied = Command::new("cp").args(["-R", example]).arg(h.w.path("home/missions")).status().unwrap();
    assert!(copied.success());
    let serve = Serve::start(&h.w, &[]);
    assert_eq!(post(&serve.url("/heartbeat/agent_002"), "{}").0, 200);
    for _ in 0..3 {
        assert_eq!(post(&serve.url("/heartbeat/agent_002/fail"), r#"{"error": "no response"}"#).0, 200);
    }
    let revival = |hook: &Hook| {
        hook.alerts()
            .iter()
            .filter(|a| a["subject"] == format!("agent:{CELL}/agent_002") && a["status"] == "firing")
            .count()
    };
    // Silence is not counted (0): only what the endpoint says decides.
    h.env("PITCREW_HEARTBEAT_TIMEOUT", "0");
    h.orchestrate(&real_now(0));
    assert_eq!(revival(&hook), 0, "without the URL the agent file decides: {:?}", hook.alerts());

    h.env("PITCREW_HEARTBEAT_URL", serve.url(""));
    h.orchestrate(&real_now(0)).code(1);
    assert_eq!(revival(&hook), 1, "{:?}\n{}", hook.alerts(), h.log());
    let cells = h.w.read("home/logs/last-cells.ndjson");
    assert!(cells.contains("agent_unhealthy"), "{cells}");
    h.orchestrate(&real_now(1)).code(1);
    assert_eq!(revival(&hook), 1, "asked once: {:?}", hook.alerts());

    // A URL that is not one stops the run before anything runs.
    h.env("PITCREW_HEARTBEAT_URL", "127.0.0.1:8080");
    h.orchestrate(&real_now(2)).code(2).stderr_has("PITCREW_HEARTBEAT_URL must be an http:// or https:// URL");
}
