//! No single monitor (docs/fleet.md): two hubs run the same `notify --follow --state
//! nats://…` against a 3-node JetStream cluster on loopback; one leads, the other waits. The
//! leader is killed in the middle of a send and later between sends; the other takes over
//! within the lease's TTL, announces nothing twice that was announced before, keeps the
//! silences, and each alert reaches the sink once (the one it was giving the sink when it
//! died may arrive twice: it is counted).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fleet::{Node, free_ports, server_bin, single};
use crate::util::http::{HttpServer, Reply};
use crate::util::{Workdir, limit, wait_until};

/// The lease's TTL the hubs run with, in seconds.
const TTL: u64 = 4;

/// A hub: a resident notify whose stderr lines are collected.
struct Hub {
    child: Child,
    /// Its stderr lines, with when each came.
    err: Arc<Mutex<Vec<(Instant, String)>>>,
    out: Arc<Mutex<Vec<String>>>,
}

impl Hub {
    /// `notify --follow` as the hub `name`, its home at `home`, with a lease of `ttl` s.
    fn start(w: &Workdir, (home, name): (&str, &str), read: &str, state: &str, ttl: u64, more: &[&str]) -> Hub {
        let mut child = w
            .tool("notify")
            .env("AGENT_OPS_HOME", w.path(home))
            .args(["--host", name, "--follow", "--state", state, "--lease-ttl", &ttl.to_string()])
            .args(more)
            .arg(read)
            .spawn();
        let err = Arc::new(Mutex::new(Vec::new()));
        let lines = err.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push((Instant::now(), l));
            }
        });
        let out = Arc::new(Mutex::new(Vec::new()));
        let records = out.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                records.lock().unwrap().push(l);
            }
        });
        Hub { child, err, out }
    }

    /// True when its alert record for `subject` says the sink took it.
    fn delivered(&self, subject: &str) -> bool {
        self.out.lock().unwrap().iter().any(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or(Value::Null);
            v["subject"] == subject && v["sinks"][0]["delivered"] == true
        })
    }

    fn said(&self, what: &str) -> bool {
        self.when(what).is_some()
    }

    /// When it first said `what`.
    fn when(&self, what: &str) -> Option<Instant> {
        self.err.lock().unwrap().iter().find(|(_, l)| l.contains(what)).map(|(t, _)| *t)
    }

    fn stderr(&self) -> String {
        self.err.lock().unwrap().iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("\n")
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the sink received: every alert of every message, in order, as (id, subject).
type Inbox = Arc<Mutex<Vec<(String, String)>>>;

/// One host with services s01..s10: those in `down` refuse connections, the others listen.
fn services(open: u16, closed: u16, down: usize) -> String {
    let list: Vec<String> = (1..=10)
        .map(|i| {
            let port = if i <= down { closed } else { open };
            format!(r#"{{"name":"s{i:02}","type":"tcp","target":"127.0.0.1","port":{port}}}"#)
        })
        .collect();
    format!(r#"{{"services":[{}]}}"#, list.join(","))
}

/// A 3-node JetStream cluster on loopback, ready; with its client addresses.
fn cluster(bin: &std::path::Path, w: &Workdir) -> (Vec<Node>, String) {
    let all = free_ports(9);
    let (ports, routes, https) = (&all[0..3], &all[3..6], &all[6..9]);
    let nodes: Vec<Node> = (0..3)
        .map(|i| Node::start(bin, w, &format!("n{i}"), (ports[i], https[i]), Some((routes[i], routes))))
        .collect();
    assert!(wait_until(60.0, || nodes.iter().all(Node::healthy)), "the cluster did not become ready");
    (nodes, ports.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(","))
}

/// A webhook receiver that keeps (id, subject) of every alert it is given and answers after
/// `delay`; with the services.json of a hub that sends to it.
fn sink(delay: Duration, alerting: &str) -> (HttpServer, Inbox, String) {
    let inbox: Inbox = Arc::new(Mutex::new(Vec::new()));
    let got = inbox.clone();
    let hook = HttpServer::start(move |s| {
        let v: Value = serde_json::from_str(&s.body).unwrap_or(Value::Null);
        for a in v["alerts"].as_array().cloned().unwrap_or_default() {
            let id = a["id"].as_str().unwrap_or("").to_string();
            got.lock().unwrap().push((id, a["subject"].as_str().unwrap_or("").to_string()));
        }
        Reply::new(200, "ok").delay(delay)
    });
    let config = format!(r#"{{"services":[],"alerting":{{"webhook_url":"{}"{alerting}}}}}"#, hook.url("/hook"));
    (hook, inbox, config)
}

/// A port that takes connections (and closes them), however many checks come.
fn listener() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || l.incoming().for_each(drop));
    port
}

/// At once, in one group each: what a resident hub reads is run as it comes.
const AT_ONCE: &str = r#","rate_limit_seconds":0,"group_wait_seconds":0,"group_interval_seconds":0"#;

#[test]
#[ignore = "slow: a 3-node JetStream cluster, two hubs, the leader killed mid-send and between sends"]
fn two_hubs_one_acts_a_standby_takes_over_and_each_alert_reaches_the_sink_once() {
    let Some(bin) = server_bin() else { return };
    let w = Workdir::new("fleet-hubs");
    let (_nodes, servers) = cluster(&bin, &w);
    let publish = format!("nats://{servers}/pitcrew.checks?replicas=3");
    let read = format!("nats://{servers}/pitcrew.checks?durable=hubs&ack_wait=5");
    let state = format!("nats://{servers}/pitcrew-notify?replicas=3");

    // The sink takes a moment to answer, so a hub can die while it is being given an alert
    // (after the receiver has it, before the answer).
    let (_hook, inbox, alerting) = sink(Duration::from_millis(1500), AT_ONCE);
    for hub in ["hub-a", "hub-b", "hub-c", "ops"] {
        w.write(&format!("{hub}/config/services.json"), &alerting);
    }
    let (open, closed) = (listener(), crate::util::closed_port());
    // Three places check s01..s10. Wave k: h1 and h2 see s01..s0k down, h3 (cut off from
    // the outage) sees them up; under a quorum of 2 each wave is one new alert, and the ones
    // before stay down.
    let wave = |k: usize| {
        for (place, down) in [("h1", k), ("h2", k), ("h3", 0)] {
            w.write(&format!("{place}/config/services.json"), services(open, closed, down));
            let r = w
                .tool("probe")
                .env("AGENT_OPS_HOME", w.path(place))
                .args(["--host", place, "--publish", &publish])
                .run_within(limit(60.0).as_secs());
            assert!(!r.stderr.contains("outbox"), "published: {r:?}");
        }
    };
    let received = |n: usize| wait_until(60.0, || inbox.lock().unwrap().len() >= n);

    let mut a = Hub::start(&w, ("hub-a", "hub-a"), &read, &state, TTL, &["--quorum", "2"]);
    assert!(wait_until(30.0, || a.said("leading")), "hub-a leads: {}", a.stderr());
    let mut b = Hub::start(&w, ("hub-b", "hub-b"), &read, &state, TTL, &["--quorum", "2"]);
    assert!(wait_until(30.0, || b.said("standby while hub-a/")), "hub-b waits: {}", b.stderr());

    for k in 1..=3 {
        wave(k);
        assert!(received(k), "wave {k} reached the sink: {}", a.stderr());
    }
    // Wave 4: hub-a dies while the receiver has the alert and has not answered.
    wave(4);
    assert!(received(4), "wave 4 reached the sink");
    a.kill();
    let killed = Instant::now();
    assert!(wait_until(30.0, || b.said("hub-b/") && b.said(": leading")), "hub-b took over: {}", b.stderr());
    let takeover = b.when(": leading").unwrap() - killed;
    assert!(
        takeover <= Duration::from_secs(TTL) + limit(3.0),
        "hub-b led {takeover:?} after hub-a died (TTL {TTL} s): {}",
        b.stderr()
    );
    // A silence set while hub-b leads, from a third place: the next leader keeps it.
    let r = w
        .tool("notify")
        .env("AGENT_OPS_HOME", w.path("ops"))
        .args(["--state", &state, "silence", "add", "--for", "1h", "--match", "name=s07", "--why", "test"])
        .run_within(limit(30.0).as_secs());
    assert_eq!(r.code, 0, "{r:?}");
    for k in 5..=6 {
        wave(k);
    }
    // The records of wave 4 come back to hub-b after the consumer's ack wait; s04 may be
    // given again (hub-a died before it could say it was sent), s05 and s06 once.
    assert!(
        wait_until(60.0, || {
            let seen = inbox.lock().unwrap();
            ["s05", "s06"].iter().all(|s| seen.iter().any(|(_, subj)| subj.contains(s)))
        }),
        "hub-b sent waves 5 and 6: {}",
        b.stderr()
    );

    assert!(wait_until(30.0, || b.delivered("check:s06")), "the sink answered: {}", b.stderr());
    let said = b.out.lock().unwrap().join("\n");
    assert!(said.contains("down from 2 of 3 places (h1, h2; quorum 2)"), "the alert names the places: {said}");
    // hub-a comes back as a standby; hub-b dies between sends.
    let a2 = Hub::start(&w, ("hub-a", "hub-a"), &read, &state, TTL, &["--quorum", "2"]);
    assert!(wait_until(30.0, || a2.said("standby while hub-b/")), "hub-a waits: {}", a2.stderr());
    let before = inbox.lock().unwrap().len();
    b.kill();
    assert!(wait_until(30.0, || a2.said(": leading")), "hub-a took over again: {}", a2.stderr());
    wave(7);
    wave(8);
    assert!(
        wait_until(60.0, || inbox.lock().unwrap().iter().any(|(_, s)| s.contains("s08"))),
        "hub-a sent wave 8: {}",
        a2.stderr()
    );
    // Nothing more comes: everything announced stays announced.
    std::thread::sleep(limit(8.0));
    drop(a2);

    let seen = inbox.lock().unwrap().clone();
    let mut per: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, subject) in &seen {
        per.entry(subject.clone()).or_default().push(id.clone());
    }
    let want: Vec<String> = (1..=8).filter(|&i| i != 7).map(|i| format!("check:s{i:02}")).collect();
    let subjects: Vec<&String> = per.keys().collect();
    assert_eq!(subjects, want.iter().collect::<Vec<_>>(), "one alert per service down, s07 silenced: {seen:?}");
    let twice: Vec<&String> = per.iter().filter(|(_, ids)| ids.len() > 1).map(|(s, _)| s).collect();
    assert!(
        twice.is_empty() || twice == [&"check:s04".to_string()],
        "only the alert in flight when hub-a died may come twice: {seen:?}"
    );
    for (s, ids) in &per {
        assert!(ids.iter().all(|i| i.len() == 24 && *i == ids[0]), "{s}: one id, whoever sent it: {ids:?}");
    }
    assert!(seen.len() > before, "hub-a sent after hub-b died");
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "hubs: took over {takeover:?} after the leader died (TTL {TTL} s); {} message(s) for {} alert(s), {} sent twice",
            seen.len(),
            per.len(),
            twice.len()
        );
    }
}

#[test]
fn batch_hubs_share_one_memory_a_standby_does_nothing_and_silences_are_shared() {
    let Some(bin) = server_bin() else { return };
    let w = Workdir::new("fleet-hubs-batch");
    let (_node, port) = single(&bin, &w);
    let state = format!("nats://127.0.0.1:{port}/pitcrew-notify");
    let (_hook, inbox, alerting) = sink(Duration::ZERO, "");
    for hub in ["hub-a", "hub-b"] {
        w.write(&format!("{hub}/config/services.json"), &alerting);
    }
    let down = |name: &str| {
        format!(r#"{{"kind":"check","name":"{name}","status":"down","timestamp":"2026-12-06T10:00:00Z"}}"#)
    };
    let notify = |hub: &str, args: &[&str], input: String| {
        w.tool("notify")
            .env("AGENT_OPS_HOME", w.path(hub))
            .args(["--host", hub, "--state", &state])
            .args(args)
            .stdin(input)
            .run_within(limit(30.0).as_secs())
    };
    // hub-a announces api; hub-b, on the same records, knows it was announced.
    let r = notify("hub-a", &[], down("api"));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(inbox.lock().unwrap().len(), 1, "{r:?}");
    let r = notify("hub-b", &[], down("api"));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(inbox.lock().unwrap().len(), 1, "not announced again by the other hub: {r:?}");
    // A silence made on hub-b holds on hub-a.
    let r = notify("hub-b", &["silence", "add", "--for", "1h", "--match", "name=db"], String::new());
    assert_eq!(r.code, 0, "{r:?}");
    let r = notify("hub-a", &[], format!("{}\n{}", down("api"), down("db")));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(r#""suppressed":"silenced""#), "{r:?}");
    assert_eq!(inbox.lock().unwrap().len(), 1, "db is silenced: {r:?}");
    // While a resident hub leads, a batch run on another hub does nothing, and a command
    // that would change the memory says who leads.
    let mut lead = w
        .tool("notify")
        .env("AGENT_OPS_HOME", w.path("hub-a"))
        .args(["--host", "hub-a", "--state", &state, "--follow"])
        .spawn();
    let err = lead.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let line = rx.recv_timeout(limit(20.0)).expect("the resident hub says it leads");
    assert!(line.contains("hub-a/") && line.contains("leading"), "{line}");
    let r = notify("hub-b", &[], down("web"));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("standby: hub-a/") && r.stdout.is_empty(), "{r:?}");
    // An acknowledgement asked for on another machine waits for the leader, which applies
    // it at its next run (every 10 s when nothing else comes) and tells the sinks.
    let r = notify("hub-b", &["ack", "check:api", "--by", "alice"], String::new());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("hub-a/") && r.stderr.contains("applies this acknowledgement"), "{r:?}");
    let acked = || notify("hub-b", &["state"], String::new()).stdout.contains(r#""acknowledged":true"#);
    assert!(wait_until(30.0, acked), "the leader applied it");
    assert_eq!(inbox.lock().unwrap().len(), 2, "and announced it: {:?}", inbox.lock().unwrap());
    // A clean end hands the lease on at once: a batch run leads again.
    drop(lead.stdin.take());
    assert!(lead.wait().unwrap().success());
    let r = notify("hub-b", &[], down("api"));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("standby"), "{r:?}");
    let r = notify("hub-a", &["state"], String::new());
    assert!(r.stdout.contains(r#""acknowledged":true"#), "the acknowledgement is shared: {r:?}");
    assert!(!r.stdout.contains("127.0.0.1:"), "{r:?}");
}

/// Kill the leading hub at a random moment while alerts keep coming, `PITCREW_FAILOVER_TRIALS`
/// times (3 unless said; `scripts/bench.sh failover` runs 20), and count: no alert may be
/// lost; an alert the sink has while its hub dies before the claim says so comes twice.
#[test]
#[ignore = "slow: leader hubs killed at random moments, duplicates counted"]
fn failover_at_random_moments_loses_no_alert_and_duplicates_are_counted() {
    let Some(bin) = server_bin() else { return };
    let trials: usize = std::env::var("PITCREW_FAILOVER_TRIALS").ok().and_then(|t| t.parse().ok()).unwrap_or(3);
    let w = Workdir::new("fleet-failover");
    let (_nodes, servers) = cluster(&bin, &w);
    // A sink that answers in 50 ms, as a chat API far away does.
    let (_hook, inbox, alerting) = sink(Duration::from_millis(50), AT_ONCE);
    let (open, closed) = (listener(), crate::util::closed_port());
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    let (mut alerts, mut twice, mut lost, mut takeovers) = (0usize, 0usize, 0usize, Vec::new());
    for t in 0..trials {
        inbox.lock().unwrap().clear();
        let (a_home, b_home, host) = (format!("t{t}/hub-a"), format!("t{t}/hub-b"), format!("t{t}/h1"));
        w.write(&format!("{a_home}/config/services.json"), &alerting);
        w.write(&format!("{b_home}/config/services.json"), &alerting);
        let publish = format!("nats://{servers}/pitcrew.ft{t}?replicas=3");
        let read = format!("nats://{servers}/pitcrew.ft{t}?durable=hubs&ack_wait=3");
        let state = format!("nats://{servers}/pitcrew-ft{t}?replicas=3");
        let mut a = Hub::start(&w, (&a_home, "hub-a"), &read, &state, 3, &[]);
        assert!(wait_until(30.0, || a.said("leading")), "hub-a leads: {}", a.stderr());
        let mut b = Hub::start(&w, (&b_home, "hub-b"), &read, &state, 3, &[]);
        assert!(wait_until(30.0, || b.said("standby")), "hub-b waits: {}", b.stderr());
        // Ten waves, one new service down in each. The leader dies at a random moment, from a
        // thread of its own, so the moment has nothing to do with the waves.
        let kill_after = Duration::from_millis(300 + (seed.wrapping_mul(t as u64 + 7) >> 7) % 2500);
        let pid = nix::unistd::Pid::from_raw(a.child.id() as i32);
        let killer = std::thread::spawn(move || {
            std::thread::sleep(kill_after);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            Instant::now()
        });
        for k in 1..=10 {
            w.write(&format!("{host}/config/services.json"), services(open, closed, k));
            let r = w
                .tool("probe")
                .env("AGENT_OPS_HOME", w.path(&host))
                .args(["--host", "h1", "--publish", &publish])
                .run_within(limit(60.0).as_secs());
            assert!(!r.stderr.contains("outbox"), "published: {r:?}");
            std::thread::sleep(Duration::from_millis(150));
        }
        let killed = Some(killer.join().unwrap());
        a.kill();
        assert!(wait_until(30.0, || b.said(": leading")), "hub-b took over: {}", b.stderr());
        takeovers.push(b.when(": leading").zip(killed).map(|(l, k)| l - k).unwrap_or_default());
        let complete = wait_until(60.0, || {
            let seen = inbox.lock().unwrap();
            (1..=10).all(|i| seen.iter().any(|(_, s)| *s == format!("check:s{i:02}@h1")))
        });
        std::thread::sleep(Duration::from_millis(500));
        b.kill();
        let seen = inbox.lock().unwrap().clone();
        let mut per: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, s) in &seen {
            per.entry(s.clone()).or_default().push(id.clone());
        }
        alerts += 10;
        lost += 10 - per.len();
        twice += per.values().map(|ids| ids.len() - 1).sum::<usize>();
        for (s, ids) in &per {
            assert!(ids.iter().all(|i| *i == ids[0]), "trial {t}: {s} was decided twice, not resent: {ids:?}");
        }
        assert!(complete, "trial {t}: every alert reached the sink: {seen:?}\n{}", b.stderr());
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "failover: {trials} leader(s) killed at random moments; {alerts} alerts, {lost} lost, {twice} sent twice; \
             took over after {:?}",
            takeovers
        );
    }
    assert_eq!(lost, 0);
    assert!(twice <= trials, "at most the alert in flight at each kill comes twice");
}

#[test]
fn the_lease_and_the_claims_against_a_real_server() {
    use pitcrew::fleet::NatsUrl;
    use pitcrew::fleet::kv::{Claim, Shared};
    let Some(bin) = server_bin() else { return };
    let w = Workdir::new("fleet-kv");
    let (node, port) = single(&bin, &w);
    let url = NatsUrl::parse(&format!("nats://127.0.0.1:{port}/pitcrew-kv")).unwrap();
    let ttl = Duration::from_secs(3);
    let a = Shared::open(&url, "a/1", ttl).unwrap();
    let b = Shared::open(&url, "b/2", ttl).unwrap();

    // One leads; the other is refused while the leader renews, past several TTLs.
    assert!(a.try_lead().unwrap() && a.leads());
    let until = Instant::now() + Duration::from_secs(7);
    while Instant::now() < until {
        assert!(!b.try_lead().unwrap(), "b took the lease while a renews it");
        assert!(a.leads(), "a renews: {:?}", a.lost());
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(b.holder().unwrap().as_deref(), Some("a/1"));
    // Given back, it is b's at once.
    a.release();
    assert!(!a.leads());
    assert!(b.try_lead().unwrap() && b.leads());

    // Claims: one hub's claim; sent; asked again, it is sent.
    let k = vec!["0123456789abcdef01234567.webhook".to_string()];
    let Claim::Go(rev) = a.claim(&k)[0] else { panic!("a claims a fresh alert") };
    assert!(matches!(&b.claim(&k)[0], Claim::Busy(h) if h == "a/1"), "a fresh claim of a live hub is left to it");
    a.settle(&[(k[0].clone(), rev, true)]).unwrap();
    assert_eq!(b.claim(&k)[0], Claim::Sent);
    // Given back after a failure: the next claim goes.
    let k2 = vec!["0123456789abcdef01234567.telegram".to_string()];
    let Claim::Go(rev) = a.claim(&k2)[0] else { panic!() };
    a.settle(&[(k2[0].clone(), rev, false)]).unwrap();
    assert!(matches!(b.claim(&k2)[0], Claim::Go(_)), "given back");
    // A claim left `sending` by a hub that died is taken over once older than the grace,
    // and the dead hub's late word does not undo it.
    let k3 = vec!["0123456789abcdef01234567.slack".to_string()];
    let Claim::Go(old) = a.claim(&k3)[0] else { panic!() };
    assert!(matches!(b.claim(&k3)[0], Claim::Busy(_)));
    std::thread::sleep(ttl + Duration::from_millis(1100));
    let Claim::Go(rev) = b.claim(&k3)[0] else { panic!("b takes over a stale claim") };
    a.settle(&[(k3[0].clone(), old, false)]).unwrap();
    b.settle(&[(k3[0].clone(), rev, true)]).unwrap();
    assert_eq!(a.claim(&k3)[0], Claim::Sent);

    // A leader whose server goes away stops leading by itself before the TTL is out.
    drop(node);
    let lost = wait_until(10.0, || !b.leads());
    assert!(lost, "b still leads without a server");
    assert!(b.lost().unwrap().contains("could not be renewed"), "{:?}", b.lost());
}

#[test]
fn help_never_shows_the_nats_addresses_of_the_environment() {
    let w = Workdir::new("fleet-help");
    for tool in ["notify", "probe"] {
        let r = w
            .tool(tool)
            .env("PITCREW_NOTIFY_STATE", "nats://alice:pw-s3cret@127.0.0.1:4222/pitcrew-notify")
            .env("PITCREW_PUBLISH", "nats://tok-s3cret@127.0.0.1:4222/pitcrew.checks")
            .arg("--help")
            .run();
        assert_eq!(r.code, 0, "{r:?}");
        assert!(r.stdout.contains("PITCREW_PUBLISH"), "{r:?}");
        assert!(!r.stdout.contains("s3cret") && !r.stderr.contains("s3cret"), "{tool} --help: {r:?}");
    }
}
