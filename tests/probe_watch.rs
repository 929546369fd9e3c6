//! `probe --watch` against real services on loopback: intervals, a slow service, services.json
//! edited while it runs, SIGHUP, SIGTERM with checks in flight, metrics, stdout closed.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::util::http::{HttpServer, Reply};
use crate::util::{Workdir, json as pretty, limit};

/// A running `probe --watch` and the records it wrote, each with when it arrived.
struct Watching {
    child: Child,
    rx: mpsc::Receiver<(Instant, Value)>,
    seen: Vec<(Instant, Value)>,
}

impl Watching {
    fn start(t: crate::util::Tool) -> Watching {
        let mut child = t.spawn();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
                if tx.send((Instant::now(), v)).is_err() {
                    break;
                }
            }
        });
        Watching { child, rx, seen: Vec::new() }
    }

    /// Read records until `done` holds of all seen so far; panics after `secs` (scaled).
    #[track_caller]
    fn until(&mut self, secs: f64, what: &str, done: impl Fn(&[(Instant, Value)]) -> bool) {
        let deadline = Instant::now() + limit(secs);
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(r) => self.seen.push(r),
                Err(_) => panic!("waiting for {what}: {:#?}", self.seen.iter().map(|r| &r.1).collect::<Vec<_>>()),
            }
        }
    }

    /// Everything that arrives within `d`.
    fn for_a_while(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while let Ok(r) = self.rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
            self.seen.push(r);
        }
    }

    fn signal(&self, s: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), s).unwrap();
    }

    /// SIGTERM, and the exit status, stderr and how long it took to exit (within `secs`,
    /// scaled); every record written is in `seen` after.
    fn terminate(&mut self, secs: f64) -> (Option<i32>, String, Duration) {
        let t = Instant::now();
        self.signal(Signal::SIGTERM);
        let ok = crate::util::wait_until(limit(secs).as_secs_f64(), || self.child.try_wait().unwrap().is_some());
        let took = t.elapsed();
        if !ok {
            let _ = self.child.kill();
        }
        let status = self.child.wait().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut self.child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(ok, "still running {took:?} after SIGTERM; stderr: {stderr}");
        while let Ok(r) = self.rx.recv_timeout(limit(5.0)) {
            self.seen.push(r);
        }
        (status.code(), stderr, took)
    }
}

fn checks_of<'a>(seen: &'a [(Instant, Value)], name: &str) -> Vec<&'a (Instant, Value)> {
    seen.iter().filter(|(_, v)| v["kind"] == "check" && v["name"] == name).collect()
}

fn count(seen: &[(Instant, Value)], name: &str) -> usize {
    checks_of(seen, name).len()
}

/// Write services.json whole, by a rename, so the watch never reads half of it.
fn write_config(w: &Workdir, doc: &Value) -> String {
    let tmp = w.write("services.json.tmp", pretty(doc));
    let path = w.path("services.json");
    std::fs::rename(tmp, &path).unwrap();
    path.display().to_string()
}

/// A loopback port whose connections are accepted and closed.
fn open_port() -> (u16, Arc<AtomicBool>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    thread::spawn(move || {
        while !st.load(Ordering::Relaxed) {
            if l.accept().is_err() {
                thread::sleep(Duration::from_millis(10));
            }
        }
    });
    (port, stop)
}

#[test]
fn watch_checks_each_service_on_its_interval_and_appends_metrics() {
    let web = HttpServer::start(|_| Reply::new(200, "ok"));
    let w = Workdir::new("watch-intervals");
    let cfg = write_config(
        &w,
        &json!({"disk_check": false, "interval_seconds": 3, "services": [
            {"name": "fast", "target": web.url("/fast"), "interval_seconds": 1},
            {"name": "slow", "target": web.url("/slow")}
        ]}),
    );
    let metrics = w.path("metrics");
    let mut p = Watching::start(w.tool("probe").args(["--watch", "--config", &cfg, "--metrics-dir"]).arg(&metrics));
    // Three checks of the 3 s service are 6 s apart; the 1 s service has 6 checks between.
    p.until(20.0, "three checks of the 3 s service", |s| count(s, "slow") >= 3);
    let slow = checks_of(&p.seen, "slow");
    let (from, to) = (slow[0].0, slow[2].0);
    let gap = to - from;
    assert!(gap > Duration::from_millis(5000) && gap < Duration::from_millis(7500), "{gap:?}");
    let fast_between = checks_of(&p.seen, "fast").iter().filter(|(t, _)| *t > from && *t <= to).count();
    assert!((5..=7).contains(&fast_between), "{fast_between} checks of the 1 s service in {gap:?}");
    for (_, c) in &p.seen {
        assert_eq!((c["status"].as_str(), c["detail"].as_str()), (Some("up"), Some("HTTP 200")), "{c}");
        assert!(c["late_ms"].as_u64().is_some_and(|l| l < 1000), "{c}");
        assert!(c.get("skipped").is_none(), "{c}");
    }
    let (code, stderr, _) = p.terminate(5.0);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    // Every record written reached the day's metrics file, as in the batch.
    let files: Vec<_> = std::fs::read_dir(&metrics).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let lines = std::fs::read_to_string(&files[0]).unwrap();
    let stored: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(stored.len(), p.seen.len(), "every record written is stored");
    assert!(stored.iter().all(|c| c["kind"] == "check" && c["late_ms"].is_u64()));
}

/// An HTTP server whose every answer takes `delay`; counts the requests in flight at once.
fn slow_server(delay: Duration) -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", l.local_addr().unwrap());
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let seen_most = most.clone();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let (now, most) = (now.clone(), most.clone());
            thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                while r.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                thread::sleep(delay);
                now.fetch_sub(1, Ordering::SeqCst);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nslow");
            });
        }
    });
    (url, seen_most)
}

#[test]
fn a_check_slower_than_its_interval_never_piles_up_and_sigterm_abandons_it() {
    let (url, most) = slow_server(Duration::from_millis(2500));
    let w = Workdir::new("watch-slow");
    let cfg = write_config(
        &w,
        &json!({"disk_check": false, "services": [
            {"name": "slow", "target": url, "interval_seconds": 1, "timeout_seconds": 10}
        ]}),
    );
    let mut p = Watching::start(w.tool("probe").args(["--watch", "--no-metrics", "--config", &cfg]));
    p.until(30.0, "three checks", |s| count(s, "slow") >= 3);
    assert_eq!(most.load(Ordering::SeqCst), 1, "two checks of one service were in flight at once");
    let c = checks_of(&p.seen, "slow");
    // Each check after the first starts as the one before ends, for the latest scheduled time
    // that passed (less than an interval before), and passes over the ones before that.
    for (_, r) in &c[1..] {
        assert_eq!(r["status"], "up", "{r}");
        assert!(r["late_ms"].as_u64().is_some_and(|l| l < 1000), "{r}");
        assert!(r["skipped"].as_u64().is_some_and(|n| (1..=2).contains(&n)), "{r}");
    }
    // SIGTERM while the fourth check is in flight: probe does not wait for its answer.
    let (code, stderr, took) = p.terminate(5.0);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(took < limit(1.5), "SIGTERM took {took:?}");
    assert_eq!(stderr.matches("longer than its 1 s interval").count(), 1, "{stderr}");
    assert!(stderr.starts_with("probe: slow: a check took 2."), "{stderr}");
}

#[test]
fn services_json_edits_and_sighup_take_effect_and_a_broken_edit_is_kept_out() {
    let (a, _sa) = open_port();
    let (b, _sb) = open_port();
    let closed = crate::util::closed_port();
    let w = Workdir::new("watch-edits");
    let port = |name: &str, p: u16| json!({"name": name, "type": "port", "host": "127.0.0.1", "port": p});
    let doc = |services: Vec<Value>| json!({"disk_check": false, "interval_seconds": 1, "services": services});
    let cfg = write_config(&w, &doc(vec![port("a", a), port("b", b)]));
    let mut p = Watching::start(w.tool("probe").args(["--watch", "--no-metrics", "--config", &cfg]));
    p.until(10.0, "a and b up", |s| {
        ["a", "b"].iter().all(|n| checks_of(s, n).iter().any(|(_, r)| r["status"] == "up"))
    });

    // b removed, c added, a's port changed to one nobody listens on.
    write_config(&w, &doc(vec![port("a", closed), port("c", b)]));
    p.until(10.0, "c checked and a down", |s| {
        count(s, "c") > 0 && checks_of(s, "a").iter().any(|(_, r)| r["status"] == "down")
    });
    let applied = p.seen.len();
    p.for_a_while(Duration::from_millis(2500));
    assert_eq!(count(&p.seen[applied..], "b"), 0, "b was removed");
    assert!(count(&p.seen[applied..], "c") >= 1 && count(&p.seen[applied..], "a") >= 1);
    for (_, r) in checks_of(&p.seen[applied..], "a") {
        assert_eq!((r["status"].as_str(), r["target"].as_str()), (Some("down"), Some(&*format!("127.0.0.1:{closed}"))));
    }

    // A broken edit: the last good configuration stays, and stderr says so once.
    let tmp = w.write("broken.tmp", "{\"services\": [\n  {\"name\": \"a\",\n");
    std::fs::rename(tmp, &cfg).unwrap();
    let broken = p.seen.len();
    p.for_a_while(Duration::from_millis(3000));
    assert!(count(&p.seen[broken..], "a") >= 2 && count(&p.seen[broken..], "c") >= 2, "still watching");

    // A change made behind the poll's back (same size, inode and time): SIGHUP reads it.
    let good = pretty(&doc(vec![port("a", closed), port("d", b)]));
    write_config(&w, &doc(vec![port("a", closed), port("c", b)]));
    p.for_a_while(Duration::from_millis(1500));
    {
        let f = std::fs::OpenOptions::new().write(true).open(&cfg).unwrap();
        let m = std::fs::metadata(&cfg).unwrap().modified().unwrap();
        assert_eq!(std::fs::metadata(&cfg).unwrap().len() as usize, good.len());
        (&f).write_all(good.as_bytes()).unwrap();
        f.set_modified(m).unwrap();
    }
    let hup = p.seen.len();
    p.for_a_while(Duration::from_millis(1500));
    assert_eq!(count(&p.seen[hup..], "d"), 0, "d seen without SIGHUP");
    p.signal(Signal::SIGHUP);
    p.until(10.0, "d after SIGHUP", |s| count(&s[hup..], "d") > 0);

    // A wrong field in one entry: a finding, and that service keeps its last good definition.
    let mut bad = doc(vec![port("a", closed), port("d", b)]);
    bad["services"][1]["port"] = json!("eighty");
    write_config(&w, &bad);
    p.until(10.0, "the finding", |s| s.iter().any(|(_, r)| r["kind"] == "finding"));
    let f = p.seen.iter().map(|(_, r)| r).find(|r| r["kind"] == "finding").unwrap().clone();
    assert_eq!((f["problem"].as_str(), f["subject"].as_str()), (Some("invalid_service"), Some("d")), "{f}");
    let found = p.seen.len();
    p.until(10.0, "d checked as before", |s| count(&s[found..], "d") >= 2);
    assert!(checks_of(&p.seen[found..], "d").iter().all(|(_, r)| r["status"] == "up"));

    let (code, stderr, _) = p.terminate(5.0);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr.matches("the last good configuration stays in force").count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("{cfg}:")), "names the file: {stderr}");
}

#[test]
fn watch_reads_service_lines_from_stdin_and_keeps_watching_when_they_end() {
    let web = HttpServer::start(|_| Reply::new(200, "ok"));
    let w = Workdir::new("watch-stdin");
    let line = json!({"name": "streamed", "target": web.url("/"), "interval_seconds": 1});
    let mut p = Watching::start(w.tool("probe").args(["--watch", "--no-metrics", "--services", "-"]));
    {
        let mut stdin = p.child.stdin.take().unwrap();
        writeln!(stdin, "{line}").unwrap();
    } // the stream of services ends
    p.until(10.0, "three checks", |s| count(s, "streamed") >= 3);
    let (code, stderr, _) = p.terminate(5.0);
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
}

#[test]
fn watch_ends_when_its_reader_goes_away() {
    let web = HttpServer::start(|_| Reply::new(200, "ok"));
    let w = Workdir::new("watch-close");
    let cfg = write_config(
        &w,
        // "edge": a name whose first check comes early (0.085 of the first 10 s).
        &json!({"disk_check": false, "services": [{"name": "edge", "target": web.url("/"), "interval_seconds": 60}]}),
    );
    let mut child = w.tool("probe").args(["--watch", "--no-metrics", "--config", &cfg]).spawn();
    {
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        assert!(first.contains("\"name\":\"edge\""), "{first}");
    } // the reader goes away; the next check is a minute off
    assert!(
        crate::util::wait_until(limit(5.0).as_secs_f64(), || child.try_wait().unwrap().is_some()),
        "still watching"
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_down_child_of_a_down_parent_is_suppressed_as_in_the_batch() {
    let closed = crate::util::closed_port();
    let w = Workdir::new("watch-deps");
    let port = |name: &str, deps: &[&str]| json!({"name": name, "type": "port", "host": "127.0.0.1", "port": closed, "depends_on": deps, "interval_seconds": 1});
    let cfg = write_config(&w, &json!({"disk_check": false, "services": [port("db", &[]), port("api", &["db"])]}));
    let mut p = Watching::start(w.tool("probe").args(["--watch", "--no-metrics", "--config", &cfg]));
    // Once db's latest check is down, api's down records name it.
    p.until(10.0, "api after db", |s| {
        let first_db = s.iter().position(|(_, r)| r["name"] == "db");
        first_db.is_some_and(|i| count(&s[i..], "api") >= 1)
    });
    let i = p.seen.iter().position(|(_, r)| r["name"] == "db").unwrap();
    for (_, r) in checks_of(&p.seen[i..], "api") {
        assert_eq!((r["status"].as_str(), r["suppressed_by"].as_str()), (Some("down"), Some("db")), "{r}");
    }
    for (_, r) in checks_of(&p.seen, "db") {
        assert!(r.get("suppressed_by").is_none(), "{r}");
    }
    let (code, _, _) = p.terminate(5.0);
    assert_eq!(code, Some(0));
}
