//! The fleet on NATS JetStream (docs/fleet.md), against real nats-server processes on
//! loopback: hosts publishing with --publish, a hub reading with durable consumers, quorum,
//! the fleet history, a server that is down, and a 3-node cluster losing a node.
//!
//! The server is PITCREW_NATS_SERVER, else /usr/local/bin/nats-server (where
//! scripts/install-peers.sh installs it), else `nats-server` on PATH. Without it these tests say so loudly and do nothing (and fail under CI, where PITCREW_CI is set).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::util::{Workdir, limit, wait_until};

#[allow(clippy::print_stderr)]
pub(crate) fn server_bin() -> Option<PathBuf> {
    // scripts/install-peers.sh puts a current server in /usr/local/bin (Debian's is older).
    let installed = Path::new("/usr/local/bin/nats-server");
    let bin = std::env::var_os("PITCREW_NATS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| if installed.exists() { installed.to_path_buf() } else { PathBuf::from("nats-server") });
    let ok = Command::new(&bin).arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var_os("PITCREW_CI").is_none(), "nats-server is missing, and CI installs it");
        eprintln!("\n*** SKIPPED: nats-server not found (install it with scripts/install-peers.sh) ***\n");
    }
    ok.then_some(bin)
}

/// One plain JetStream server, ready; with its client port.
pub(crate) fn single(bin: &Path, w: &Workdir) -> (Node, u16) {
    let [port, http] = free_ports(2)[..] else { unreachable!() };
    let node = Node::start(bin, w, "n1", (port, http), None);
    node.wait_ready();
    (node, port)
}

fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct free ports: all bound at once, then released.
pub(crate) fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    held.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// One nats-server process, killed when dropped.
pub(crate) struct Node {
    name: String,
    child: Option<Child>,
    http: u16,
    args: Vec<String>,
    bin: PathBuf,
}

impl Node {
    pub(crate) fn start(
        bin: &Path,
        dir: &Workdir,
        name: &str,
        (port, http): (u16, u16),
        cluster: Option<(u16, &[u16])>,
    ) -> Node {
        let mut args = vec![
            "-a".to_string(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-m".into(),
            http.to_string(),
            "-js".into(),
            "-sd".into(),
            dir.path(&format!("nats-{name}")).display().to_string(),
            "-n".into(),
            name.into(),
            "-l".into(),
            dir.path(&format!("nats-{name}.log")).display().to_string(),
        ];
        if let Some((route, all)) = cluster {
            let routes: Vec<String> = all.iter().map(|p| format!("nats-route://127.0.0.1:{p}")).collect();
            args.extend([
                "--cluster_name".into(),
                "pitcrew".into(),
                "--cluster".into(),
                format!("nats://127.0.0.1:{route}"),
                "--routes".into(),
                routes.join(","),
            ]);
        }
        let mut n = Node { name: name.to_string(), child: None, http, args, bin: bin.to_path_buf() };
        n.spawn();
        n
    }

    pub(crate) fn spawn(&mut self) {
        let child =
            Command::new(&self.bin).args(&self.args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        self.child = Some(child);
    }

    /// Wait until it is ready (a failed test when it does not become so).
    pub(crate) fn wait_ready(&self) {
        assert!(
            wait_until(limit(20.0).as_secs_f64(), || self.healthy()),
            "nats-server {} did not become ready",
            self.name
        );
    }

    /// Ready: /healthz says ok (JetStream has a meta leader).
    pub(crate) fn healthy(&self) -> bool {
        ureq::get(&format!("http://127.0.0.1:{}/healthz", self.http)).call().is_ok()
    }

    /// The name of the node that leads `stream`, as this node sees it (`/jsz`).
    fn stream_leader(&self, stream: &str) -> Option<String> {
        let url = format!("http://127.0.0.1:{}/jsz?streams=true", self.http);
        let body = ureq::get(&url).call().ok()?.body_mut().read_to_string().ok()?;
        let v: Value = serde_json::from_str(&body).ok()?;
        v["account_details"]
            .as_array()?
            .iter()
            .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
            .find(|s| s["name"] == stream)
            .and_then(|s| s["cluster"]["leader"].as_str().map(String::from))
    }

    /// The monitoring endpoint's view of a durable consumer (`/jsz`).
    fn consumer(&self, name: &str) -> Option<Value> {
        let url = format!("http://127.0.0.1:{}/jsz?consumers=true", self.http);
        let body = ureq::get(&url).call().ok()?.body_mut().read_to_string().ok()?;
        let v: Value = serde_json::from_str(&body).ok()?;
        let accounts = v["account_details"].as_array()?;
        accounts
            .iter()
            .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
            .flat_map(|s| s["consumer_detail"].as_array().cloned().unwrap_or_default())
            .find(|c| c["name"] == name)
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn services(port: u16) -> String {
    format!(r#"{{"services":[{{"name":"web","type":"tcp","target":"127.0.0.1","port":{port}}}]}}"#)
}

/// A "host": its own home and services.json.
fn host(w: &Workdir, name: &str, port: u16) -> PathBuf {
    w.write(&format!("{name}/config/services.json"), services(port));
    w.path(name)
}

fn probe(w: &Workdir, home: &PathBuf, name: &str, publish: &str, now: &str) -> crate::util::Run {
    w.tool("probe").env("AGENT_OPS_HOME", home).args(["--host", name, "--publish", publish, "--now", now]).run()
}

fn records(s: &str) -> Vec<Value> {
    s.lines().filter(|l| !l.is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn hosts_publish_a_hub_reads_with_quorum_and_keeps_each_hosts_history() {
    let Some(bin) = server_bin() else { return };
    let w = Workdir::new("fleet-single");
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}/pitcrew.checks");
    // h3 publishes first, while no server is up: its records wait in its outbox.
    let up = TcpListener::bind("127.0.0.1:0").unwrap();
    let (open, closed) = (up.local_addr().unwrap().port(), crate::util::closed_port());
    let h1 = host(&w, "h1", closed);
    let h2 = host(&w, "h2", open);
    let h3 = host(&w, "h3", closed);
    let r = probe(&w, &h3, "h3", &url, "2026-12-06T07:00:00Z");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("outbox"), "{r:?}");
    assert_eq!(records(&r.stdout)[0]["host"], "h3", "local output keeps working");
    let outbox = h3.join("state/publish");
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), 2, "outbox and its lock");

    let node = Node::start(&bin, &w, "n1", (port, free_port()), None);
    node.wait_ready();
    for (home, name) in [(&h1, "h1"), (&h2, "h2"), (&h3, "h3")] {
        let r = probe(
            &w,
            home,
            name,
            &format!("nats://alice:s3cret@127.0.0.1:{port}/pitcrew.checks"),
            "2026-12-06T07:01:00Z",
        );
        assert!(!r.stderr.contains("s3cret"), "{r:?}");
        assert!(r.stderr.is_empty() || !r.stderr.contains("outbox"), "published: {r:?}");
    }
    let left: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .collect();
    assert!(left.is_empty(), "the outbox was sent and removed");

    // The hub: quorum 2 of the places that check web. h1 and h3 see it down, h2 up. Its sink
    // is a webhook receiver.
    let hub = w.path("hub");
    let posts = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = posts.clone();
    let hook = crate::util::http::HttpServer::start(move |s| {
        seen.lock().unwrap().push(s.body.clone());
        crate::util::http::Reply::new(200, "ok")
    });
    w.write(
        "hub/config/services.json",
        format!(r#"{{"services":[],"alerting":{{"webhook_url":"{}"}}}}"#, hook.url("/hook")),
    );
    let notify = |extra: &[&str]| {
        w.tool("notify")
            .env("AGENT_OPS_HOME", &hub)
            .args(["--host", "hub", "--now", "2026-12-06T07:02:00Z"])
            .args(extra)
            .arg(format!("{url}?durable=notify"))
            .run_within(limit(60.0).as_secs())
    };
    let r = notify(&["--quorum", "2"]);
    assert_eq!(r.code, 0, "{r:?}");
    let alerts: Vec<Value> = records(&r.stdout).into_iter().filter(|a| a["kind"] == "alert").collect();
    let web: Vec<&Value> = alerts.iter().filter(|a| a["subject"] == "check:web").collect();
    assert_eq!(web.len(), 1, "one alert for the service: {alerts:?}");
    let msg = web[0]["message"].as_str().unwrap();
    assert!(msg.contains("down from 2 of 3 places (h1, h3; quorum 2)"), "{msg}");
    let delivered = posts.lock().unwrap().clone();
    assert_eq!(delivered.len(), 1, "one message: {delivered:?}");
    assert!(delivered[0].contains("down from 2 of 3 places (h1, h3; quorum 2)"), "{delivered:?}");
    // Everything was acknowledged: a second run reads nothing.
    let again = notify(&["--quorum", "2"]);
    assert!(records(&again.stdout).iter().all(|a| a["kind"] != "alert"), "{again:?}");
    assert_eq!(posts.lock().unwrap().len(), 1, "nothing sent again");

    // Without a quorum each host's subject is its own.
    let r = w
        .tool("notify")
        .env("AGENT_OPS_HOME", w.path("hub2"))
        .args(["--host", "hub", "--now", "2026-12-06T07:02:00Z", &format!("{url}?durable=notify2")])
        .run_within(limit(60.0).as_secs());
    let subjects: Vec<String> = records(&r.stdout)
        .iter()
        .filter(|a| a["kind"] == "alert")
        .map(|a| a["subject"].as_str().unwrap().to_string())
        .collect();
    assert!(
        subjects.contains(&"check:web@h1".to_string()) && subjects.contains(&"check:web@h3".to_string()),
        "{subjects:?}"
    );
    assert!(!subjects.iter().any(|s| s == "check:web@h2" || s == "check:web"), "{subjects:?}");

    // The fleet history: each host's metrics on the hub give the numbers the host computes.
    let r = w
        .tool("rollup")
        .env("AGENT_OPS_HOME", &hub)
        .args(["--host", "hub", "ingest", &format!("{url}?durable=history")])
        .run_within(limit(60.0).as_secs());
    assert_eq!(r.code, 0, "{r:?}");
    for (home, name) in [(&h1, "h1"), (&h2, "h2"), (&h3, "h3")] {
        let day = "2026-12-06.jsonl";
        assert_eq!(
            std::fs::read_to_string(hub.join("metrics").join(name).join(day)).unwrap(),
            std::fs::read_to_string(home.join("metrics").join(day)).unwrap(),
            "{name}'s lines, as {name} wrote them"
        );
        let on_hub =
            w.tool("rollup").env("AGENT_OPS_HOME", &hub).args(["--host", name, "--now", "2026-12-06T08:00:00Z"]).run();
        let on_host =
            w.tool("rollup").env("AGENT_OPS_HOME", home).args(["--host", name, "--now", "2026-12-06T08:00:00Z"]).run();
        assert_eq!(on_hub.stdout, on_host.stdout, "{name}");
        assert!(on_hub.stdout.contains(&format!("\"host\":\"{name}\"")), "{on_hub:?}");
    }

    // --by host: every host's report in one run, each record with its host, the same numbers.
    let by_host = w
        .tool("rollup")
        .env("AGENT_OPS_HOME", &hub)
        .args(["--host", "hub", "--by", "host", "--now", "2026-12-06T08:00:00Z"])
        .run();
    assert_eq!(by_host.code, 0, "{by_host:?}");
    for name in ["h1", "h2", "h3"] {
        let own = w
            .tool("rollup")
            .env("AGENT_OPS_HOME", w.path(name))
            .args(["--host", name, "--now", "2026-12-06T08:00:00Z"])
            .run();
        let theirs: Vec<Value> = records(&by_host.stdout).into_iter().filter(|r| r["host"] == name).collect();
        assert_eq!(theirs, records(&own.stdout), "{name}");
    }

    // --follow: a resident reader hands each record on as it arrives, and acknowledges it
    // once handled, so a reader started again with the same name does not see it again.
    let follow = |hub: &PathBuf| {
        let mut child = w
            .tool("recover")
            .env("AGENT_OPS_HOME", hub)
            .args(["--follow", "--line-buffered", &format!("nats://127.0.0.1:{port}/pitcrew.live?durable=live")])
            .spawn();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
                if tx.send(line.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        (child, rx)
    };
    let live = format!("nats://127.0.0.1:{port}/pitcrew.live");
    let (mut reader, lines) = follow(&hub);
    let r = probe(&w, &h2, "h2", &live, "2026-12-06T07:05:00Z");
    let sent = records(&r.stdout);
    let mut got = Vec::new();
    while got.len() < sent.len() {
        let line = lines.recv_timeout(limit(30.0)).expect("a record within the limit");
        got.push(serde_json::from_str::<Value>(&line).unwrap());
    }
    assert_eq!(got, sent, "passed on as published");
    // The reader asks for the next record once it has handled the last: then it is acked.
    let acked = wait_until(limit(20.0).as_secs_f64(), || {
        node.consumer("live").is_some_and(|c| {
            c["num_ack_pending"] == 0 && c["ack_floor"]["stream_seq"].as_u64() == Some(sent.len() as u64)
        })
    });
    assert!(acked, "the records handled were acknowledged: {:?}", node.consumer("live"));
    let _ = reader.kill();
    let _ = reader.wait();
    let (mut again, lines) = follow(&hub);
    let r = probe(&w, &h2, "h2", &live, "2026-12-06T07:06:00Z");
    let next: Value = serde_json::from_str(&lines.recv_timeout(limit(30.0)).unwrap()).unwrap();
    assert_eq!(next, records(&r.stdout)[0], "the first record read again is the new one: the old were acknowledged");
    let _ = again.kill();
    let _ = again.wait();

    // A server that is down: an error naming it, without the password, exit 2.
    let r = w
        .tool("notify")
        .env("AGENT_OPS_HOME", &hub)
        .arg(format!("nats://alice:s3cret@127.0.0.1:{closed}/pitcrew.checks?durable=notify"))
        .run_within(limit(30.0).as_secs());
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains(&format!("nats://127.0.0.1:{closed}/pitcrew.checks")), "{r:?}");
    assert!(!r.stderr.contains("s3cret") && !r.stdout.contains("s3cret"), "{r:?}");
    drop(up);
}

#[test]
#[ignore = "slow: a 3-node JetStream cluster, a node killed while hosts publish"]
fn a_three_node_cluster_loses_a_node_and_nothing_acknowledged_is_lost_and_quorum_holds() {
    let Some(bin) = server_bin() else { return };
    let w = Workdir::new("fleet-cluster");
    let all = free_ports(9);
    let (ports, routes, https) = (&all[0..3], &all[3..6], &all[6..9]);
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| Node::start(&bin, &w, &format!("n{i}"), (ports[i], https[i]), Some((routes[i], routes))))
        .collect();
    assert!(
        wait_until(limit(60.0).as_secs_f64(), || nodes.iter().all(Node::healthy)),
        "the cluster did not become ready; logs in {}",
        w.path("").display()
    );
    let servers = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
    let publish = format!("nats://{servers}/pitcrew.checks?replicas=3");
    // web answers for h1 and h2; h3 is cut off from it (it sees web down): no quorum of 2.
    let up = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = up.local_addr().unwrap().port();
    let closed = crate::util::closed_port();
    let homes = [host(&w, "h1", open), host(&w, "h2", open), host(&w, "h3", closed)];
    let rounds = 8;
    let mut written = 0;
    let mut killed = 0;
    for round in 0..rounds {
        if round == 3 {
            // The stream's leader goes: publishes stall until the others elect a new one.
            let leader = nodes.iter().find_map(|n| n.stream_leader("PITCREW_CHECKS")).expect("a stream leader");
            killed = nodes.iter().position(|n| n.name == leader).expect("the leader is one of the nodes");
            nodes[killed].kill();
        }
        if round == 6 {
            nodes[killed].spawn();
        }
        for (i, home) in homes.iter().enumerate() {
            let now = format!("2026-12-06T07:{:02}:00Z", 10 + round);
            let r = probe(&w, home, &format!("h{}", i + 1), &publish, &now);
            written += records(&r.stdout).len();
        }
    }
    // Whatever waited in an outbox during the election goes out with the next run.
    for (i, home) in homes.iter().enumerate() {
        let r = w
            .tool("probe")
            .env("AGENT_OPS_HOME", home)
            .args(["--host", &format!("h{}", i + 1), "--publish", &publish, "--now", "2026-12-06T07:30:00Z"])
            .run();
        written += records(&r.stdout).len();
        let pending = std::fs::read_dir(home.join("state/publish"))
            .map(|d| d.filter_map(|e| e.ok()).filter(|e| e.path().extension().is_some_and(|x| x == "jsonl")).count())
            .unwrap_or(0);
        assert_eq!(pending, 0, "h{}'s outbox was sent", i + 1);
    }
    let hub = w.path("hub");
    let r = w
        .tool("rollup")
        .env("AGENT_OPS_HOME", &hub)
        .args(["--host", "hub", "ingest", &format!("nats://{servers}/pitcrew.checks?durable=history")])
        .run_within(limit(120.0).as_secs());
    assert_eq!(r.code, 0, "{r:?}");
    let stored: usize = ["h1", "h2", "h3"]
        .iter()
        .map(|h| {
            std::fs::read_to_string(hub.join("metrics").join(h).join("2026-12-06.jsonl"))
                .unwrap_or_default()
                .lines()
                .count()
        })
        .sum();
    let count = |hub: &PathBuf| -> usize {
        ["h1", "h2", "h3"]
            .iter()
            .map(|h| {
                std::fs::read_to_string(hub.join("metrics").join(h).join("2026-12-06.jsonl"))
                    .unwrap_or_default()
                    .lines()
                    .count()
            })
            .sum()
    };
    if stored != written {
        // Tell a reader that stopped early from a stream that lost records.
        let again = w.path("hub-again");
        let r = w
            .tool("rollup")
            .env("AGENT_OPS_HOME", &again)
            .args(["--host", "hub", "ingest", &format!("nats://{servers}/pitcrew.checks?durable=again")])
            .run_within(limit(120.0).as_secs());
        panic!("{stored} of {written} records read; a second consumer reads {} {r:?}", count(&again));
    }

    let r = w
        .tool("notify")
        .env("AGENT_OPS_HOME", &hub)
        .args(["--host", "hub", "--quorum", "2", "--now", "2026-12-06T07:31:00Z"])
        .arg(format!("nats://{servers}/pitcrew.checks?durable=notify"))
        .run_within(limit(120.0).as_secs());
    assert_eq!(r.code, 0, "{r:?}");
    let web: Vec<Value> =
        records(&r.stdout).into_iter().filter(|a| a["kind"] == "alert" && a["subject"] == "check:web").collect();
    assert!(web.is_empty(), "h3 alone sees web down: no alarm {web:?}");
    drop(up);
}

#[test]
fn credentials_reach_the_server_and_are_never_shown() {
    let Some(bin) = server_bin() else { return };
    let w = Workdir::new("fleet-auth");
    let [port, http] = free_ports(2)[..] else { unreachable!() };
    // A server that takes a user and password.
    let mut node = Node::start(&bin, &w, "auth", (port, http), None);
    node.kill();
    node.args.extend(["--user".into(), "alice".into(), "--pass".into(), "pw-s3cret".into()]);
    node.spawn();
    node.wait_ready();
    let home = host(&w, "h1", crate::util::closed_port());
    let good = probe(
        &w,
        &home,
        "h1",
        &format!("nats://alice:pw-s3cret@127.0.0.1:{port}/pitcrew.auth"),
        "2026-12-06T07:00:00Z",
    );
    assert!(!good.stderr.contains("outbox"), "published with the URL's user and password: {good:?}");
    let bad = probe(
        &w,
        &w.path("h2"),
        "h2",
        &format!("nats://alice:pw-wrong@127.0.0.1:{port}/pitcrew.auth"),
        "2026-12-06T07:00:00Z",
    );
    assert!(bad.stderr.contains("authorization violation") && bad.stderr.contains("outbox"), "{bad:?}");
    for r in [&good, &bad] {
        assert!(!r.stdout.contains("pw-") && !r.stderr.contains("pw-"), "no password is shown: {r:?}");
    }
    let r = w
        .tool("notify")
        .env("AGENT_OPS_HOME", w.path("hub"))
        .arg(format!("nats://alice:pw-s3cret@127.0.0.1:{port}/pitcrew.auth?durable=hub"))
        .run_within(limit(30.0).as_secs());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("\"subject\":\"check:web@h1\""), "read with the URL's credentials: {r:?}");

    // A server that takes a token, given in a file.
    node.kill();
    let at = node.args.iter().position(|a| a == "--user").unwrap();
    node.args.truncate(at);
    node.args.extend(["--auth".into(), "tok-s3cret".into()]);
    node.spawn();
    node.wait_ready();
    let token = w.write("token", "tok-s3cret\n");
    let url = format!("nats://127.0.0.1:{port}/pitcrew.auth");
    let without = probe(&w, &home, "h1", &url, "2026-12-06T07:01:00Z");
    assert!(without.stderr.contains("outbox"), "{without:?}");
    let with = w
        .tool("probe")
        .env("AGENT_OPS_HOME", &home)
        .args(["--host", "h1", "--publish", &url, "--nats-token-file"])
        .arg(&token)
        .run();
    assert!(!with.stderr.contains("outbox"), "published with the token file, the outbox sent: {with:?}");
    for r in [&without, &with] {
        assert!(!r.stdout.contains("tok-s3cret") && !r.stderr.contains("tok-s3cret"), "no token is shown: {r:?}");
    }
}

#[test]
fn records_carry_their_host_and_records_passed_through_keep_theirs() {
    let w = Workdir::new("fleet-host");
    w.write("home/config/services.json", services(crate::util::closed_port()));
    let from_env = w.tool("probe").env("PITCREW_HOST", "envhost").run();
    assert!(records(&from_env.stdout).iter().all(|r| r["host"] == "envhost"), "{from_env:?}");
    let flag = w.tool("probe").env("PITCREW_HOST", "envhost").args(["--host", "flaghost"]).run();
    assert!(records(&flag.stdout).iter().all(|r| r["host"] == "flaghost"), "{flag:?}");
    let system = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    let plain = w.tool("probe").run();
    assert!(records(&plain.stdout).iter().all(|r| r["host"] == system.as_str()), "{plain:?}");
    let metrics = std::fs::read_dir(w.path("home/metrics")).unwrap().next().unwrap().unwrap().path();
    let lines = std::fs::read_to_string(metrics).unwrap();
    assert!(records(&lines).iter().any(|r| r["host"] == "envhost"), "the metrics lines carry it too");
    // Passed through: as they came, with or without host.
    let input = "{\"kind\":\"check\",\"name\":\"x\",\"status\":\"up\"}\n{\"kind\":\"check\",\"name\":\"y\",\"status\":\"up\",\"host\":\"other\"}\n";
    let r = w.tool("recover").args(["--host", "me", "-"]).stdin(input).run();
    assert_eq!(r.stdout, input, "{r:?}");
}

/// The `.jsonl` outboxes in a home's `state/publish/`.
fn outboxes(home: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(home.join("state/publish"))
        .map(|d| {
            d.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "jsonl")).collect()
        })
        .unwrap_or_default()
}

/// The records of `subject` on the server at `port`, read by a fresh durable consumer.
fn stream_records(w: &Workdir, port: u16, subject: &str, durable: &str) -> Vec<Value> {
    let r = w
        .tool("recover")
        .env("AGENT_OPS_HOME", w.path(durable))
        .arg(format!("nats://127.0.0.1:{port}/{subject}?durable={durable}"))
        .run_within(limit(60.0).as_secs());
    assert_eq!(r.code, 0, "{r:?}");
    records(&r.stdout)
}

#[test]
fn a_line_is_tried_again_while_the_server_restarts_and_reaches_it_without_the_outbox() {
    use std::io::{BufRead, Write};
    let Some(bin) = server_bin() else { return };
    let w = Workdir::new("fleet-retry");
    let [port, http] = free_ports(2)[..] else { unreachable!() };
    let mut node = Node::start(&bin, &w, "retry", (port, http), None);
    node.wait_ready();
    let url = format!("nats://127.0.0.1:{port}/pitcrew.retry");
    let home = w.path("h1");
    let mut tool = w
        .tool("recover")
        .env("AGENT_OPS_HOME", &home)
        .args(["--host", "h1", "--follow", "--line-buffered", "--publish", &url, "-"])
        .spawn();
    let mut stdin = tool.stdin.take().unwrap();
    let stdout = tool.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let rec = |i: u32| format!("{{\"kind\":\"check\",\"name\":\"svc-{i}\",\"status\":\"up\",\"host\":\"h1\"}}\n");
    // A line is written to stdout once it is published: the first one is in the stream.
    stdin.write_all(rec(1).as_bytes()).unwrap();
    assert_eq!(lines.recv_timeout(limit(30.0)).unwrap() + "\n", rec(1));
    // The server goes away for 6 s: longer than one try waits for its acknowledgement (the
    // client's 5 s), shorter than a line is tried (8 s). The outage is what is tested, so it
    // is a fixed time, not a deadline: the line must wait it out and reach the server.
    node.kill();
    stdin.write_all(rec(2).as_bytes()).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(6));
    node.spawn();
    assert!(wait_until(limit(20.0).as_secs_f64(), || node.healthy()), "nats-server did not come back");
    assert_eq!(lines.recv_timeout(limit(30.0)).unwrap() + "\n", rec(2));
    stdin.write_all(rec(3).as_bytes()).unwrap();
    drop(stdin);
    assert_eq!(lines.recv_timeout(limit(30.0)).unwrap() + "\n", rec(3));
    let out = tool.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("outbox"), "no line went to the outbox: {stderr}");
    assert!(outboxes(&home).is_empty(), "nothing left in the outbox: {:?}", outboxes(&home));
    let got = stream_records(&w, port, "pitcrew.retry", "check");
    let want: Vec<Value> = (1..=3).map(|i| serde_json::from_str(&rec(i)).unwrap()).collect();
    assert_eq!(got, want, "the server has every line, once, in order");
}

/// A JWT of the NATS decentralized auth, signed with `signer` (header and claims base64url,
/// the signature an ed25519 nkey's).
fn nats_jwt(signer: &nkeys::KeyPair, claims: Value) -> String {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let head = b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let body = b64(claims.to_string().as_bytes());
    let sig = signer.sign(format!("{head}.{body}").as_bytes()).unwrap();
    format!("{head}.{body}.{}", b64(&sig))
}

/// Operator mode, made afresh for each run: the server's configuration (an operator, a system
/// account and one account with JetStream, preloaded in a memory resolver), and a credentials
/// file for a user of that account: `(config, creds, the user's JWT and seed, one a line)`.
/// The seed is a throwaway test value, made here and never kept.
fn operator_mode(account: &nkeys::KeyPair, operator: &nkeys::KeyPair) -> (String, String, String) {
    let user = nkeys::KeyPair::new_user();
    let claims = |sub: String, name: &str, nats: Value| serde_json::json!({"jti": format!("{name}-jti"), "iat": 1_796_500_000, "iss": "", "sub": sub, "name": name, "nats": nats});
    let signed = |signer: &nkeys::KeyPair, mut c: Value| {
        c["iss"] = signer.public_key().into();
        nats_jwt(signer, c)
    };
    let unlimited = serde_json::json!({"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1});
    // JetStream for the account (the system account may not have it).
    let mut jetstream = unlimited.clone();
    for k in ["mem_storage", "disk_storage", "streams", "consumer"] {
        jetstream[k] = (-1).into();
    }
    let sys = nkeys::KeyPair::new_account();
    let op_jwt =
        signed(operator, claims(operator.public_key(), "op", serde_json::json!({"type": "operator", "version": 2})));
    let acc_jwt = signed(
        operator,
        claims(
            account.public_key(),
            "fleet",
            serde_json::json!({"type": "account", "version": 2, "limits": jetstream}),
        ),
    );
    let sys_jwt = signed(
        operator,
        claims(sys.public_key(), "SYS", serde_json::json!({"type": "account", "version": 2, "limits": unlimited})),
    );
    let user_jwt = signed(
        account,
        claims(
            user.public_key(),
            "h1",
            serde_json::json!({"type": "user", "version": 2, "pub": {}, "sub": {},
            "subs": -1, "data": -1, "payload": -1}),
        ),
    );
    let conf = format!(
        "operator: {op_jwt}\nsystem_account: {}\nresolver: MEMORY\nresolver_preload: {{ {}: {acc_jwt}, {}: {sys_jwt} }}\n",
        sys.public_key(),
        account.public_key(),
        sys.public_key()
    );
    let seed = user.seed().unwrap();
    let creds = format!(
        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    );
    (conf, creds, format!("{user_jwt}\n{seed}"))
}

#[test]
fn a_creds_file_reaches_an_operator_mode_server_and_is_never_shown() {
    let Some(bin) = server_bin() else { return };
    let w = Workdir::new("fleet-creds");
    let [port, http] = free_ports(2)[..] else { unreachable!() };
    let (operator, account) = (nkeys::KeyPair::new_operator(), nkeys::KeyPair::new_account());
    let (conf, creds, good_secrets) = operator_mode(&account, &operator);
    // A user of an account this server does not know: signed by a key it never saw.
    let (_, wrong, wrong_secrets) = operator_mode(&nkeys::KeyPair::new_account(), &operator);
    let conf = w.write("operator.conf", conf);
    let good = w.write("h1.creds", creds);
    let wrong = w.write("wrong.creds", wrong);
    let mut node = Node::start(&bin, &w, "creds", (port, http), None);
    node.kill();
    node.args.extend(["-c".into(), conf.display().to_string()]);
    node.spawn();
    node.wait_ready();
    let url = format!("nats://127.0.0.1:{port}/pitcrew.creds");
    let shown = format!("nats://127.0.0.1:{port}/pitcrew.creds");
    let publish = |name: &str, creds: &Path| {
        w.tool("probe")
            .env("AGENT_OPS_HOME", host(&w, name, crate::util::closed_port()))
            .args(["--host", name, "--publish", &url, "--nats-creds"])
            .arg(creds)
            .run_within(limit(60.0).as_secs())
    };
    let ok = publish("h1", &good);
    assert_eq!(ok.code, 1, "probe's own status (web is down): {ok:?}");
    assert!(!ok.stderr.contains("outbox"), "published with the creds file: {ok:?}");
    assert!(outboxes(&w.path("h1")).is_empty());
    let bad = publish("h2", &wrong);
    assert_eq!(bad.code, 1, "publishing never changes the status: {bad:?}");
    assert!(
        bad.stderr.contains(&format!("cannot connect to {shown}"))
            && bad.stderr.contains("authorization violation")
            && bad.stderr.contains("outbox"),
        "{bad:?}"
    );
    assert_eq!(outboxes(&w.path("h2")).len(), 1, "the records wait in the outbox");
    // Reading: the good file reads what h1 published; the wrong one is an error, exit 2.
    let read = |creds: &Path| {
        w.tool("notify")
            .env("AGENT_OPS_HOME", w.path("hub"))
            .args(["--host", "hub", "--nats-creds"])
            .arg(creds)
            .arg(format!("{url}?durable=hub"))
            .run_within(limit(60.0).as_secs())
    };
    let hub = read(&good);
    assert_eq!(hub.code, 0, "{hub:?}");
    assert!(hub.stdout.contains("\"subject\":\"check:web@h1\""), "read with the creds file: {hub:?}");
    let refused = read(&wrong);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused.stderr.contains(&format!("cannot connect to {shown}?durable=hub"))
            && refused.stderr.contains("authorization violation"),
        "{refused:?}"
    );
    for r in [&ok, &bad, &hub, &refused] {
        for secret in good_secrets.lines().chain(wrong_secrets.lines()) {
            assert!(!r.stdout.contains(secret) && !r.stderr.contains(secret), "a JWT or seed is shown: {r:?}");
        }
    }
}

#[test]
fn tls_with_a_private_ca_is_trusted_with_nats_ca_and_refused_without() {
    let Some(bin) = server_bin() else { return };
    let w = Workdir::new("fleet-tls");
    let [port, http] = free_ports(2)[..] else { unreachable!() };
    let (certs, leaf) = crate::util::http::Certs::for_names(&["localhost", "127.0.0.1"], 30);
    let ca = w.write("ca.pem", &certs.ca_pem);
    let cert = w.write("server.pem", &leaf.cert);
    let key = w.write("server.key", &leaf.key);
    // A server that requires TLS, and a user and password inside it.
    let mut node = Node::start(&bin, &w, "tls", (port, http), None);
    node.kill();
    node.args.extend(["--tls".into(), "--tlscert".into(), cert.display().to_string(), "--tlskey".into()]);
    node.args.extend([key.display().to_string(), "--user".into(), "alice".into(), "--pass".into(), "pw-s3cret".into()]);
    node.spawn();
    node.wait_ready();
    let publish = |name: &str, scheme: &str, ca: Option<&Path>| {
        let mut t = w.tool("probe").env("AGENT_OPS_HOME", host(&w, name, crate::util::closed_port())).args([
            "--host",
            name,
            "--publish",
            &format!("{scheme}://alice:pw-s3cret@127.0.0.1:{port}/pitcrew.tls"),
        ]);
        if let Some(ca) = ca {
            t = t.arg("--nats-ca").arg(ca);
        }
        t.run_within(limit(60.0).as_secs())
    };
    let tls = publish("h1", "tls", Some(&ca));
    assert!(!tls.stderr.contains("outbox") && outboxes(&w.path("h1")).is_empty(), "tls:// and the CA: {tls:?}");
    let nats = publish("h2", "nats", Some(&ca));
    assert!(!nats.stderr.contains("outbox") && outboxes(&w.path("h2")).is_empty(), "nats:// and the CA: {nats:?}");
    let without = publish("h3", "tls", None);
    assert_eq!(without.code, 1, "publishing never changes the status: {without:?}");
    assert!(
        without.stderr.contains(&format!("cannot connect to tls://127.0.0.1:{port}/pitcrew.tls"))
            && without.stderr.contains("UnknownIssuer")
            && without.stderr.contains("outbox"),
        "the server's certificate is not trusted without the CA: {without:?}"
    );
    assert_eq!(outboxes(&w.path("h3")).len(), 1, "the records wait in the outbox");
    let read = |ca: Option<&Path>| {
        let mut t = w.tool("notify").env("AGENT_OPS_HOME", w.path("hub")).args(["--host", "hub"]);
        if let Some(ca) = ca {
            t = t.arg("--nats-ca").arg(ca);
        }
        t.arg(format!("tls://alice:pw-s3cret@127.0.0.1:{port}/pitcrew.tls?durable=hub"))
            .run_within(limit(60.0).as_secs())
    };
    let refused = read(None);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused.stderr.contains(&format!("cannot connect to tls://127.0.0.1:{port}/pitcrew.tls?durable=hub"))
            && refused.stderr.contains("UnknownIssuer"),
        "{refused:?}"
    );
    let hub = read(Some(&ca));
    assert_eq!(hub.code, 0, "{hub:?}");
    assert!(
        hub.stdout.contains("\"subject\":\"check:web@h1\"") && hub.stdout.contains("\"subject\":\"check:web@h2\""),
        "read over TLS: {hub:?}"
    );
    for r in [&tls, &nats, &without, &refused, &hub] {
        assert!(!r.stdout.contains("pw-s3cret") && !r.stderr.contains("pw-s3cret"), "no password is shown: {r:?}");
        assert!(!r.stderr.contains("PRIVATE KEY"), "{r:?}");
    }
}
