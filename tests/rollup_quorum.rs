//! rollup's uptime by quorum on a hub: three places (the hub's own metrics and two hosts'
//! `METRICS/<host>/`) written by hand, the real binary, every format, figures worked out by
//! hand below.

use serde_json::{Value, json};

use crate::util::Workdir;

const NOW: &str = "2026-12-06T02:00:00Z";

/// `2026-12-06T01:05:00Z` for minute 65 of the day.
fn ts(min: u32) -> String {
    format!("2026-12-06T{:02}:{:02}:00Z", min / 60, min % 60)
}

/// Check lines of `name` at `minutes`, down at those in `down`, up otherwise; 10 ms each.
fn checks(name: &str, minutes: impl Iterator<Item = u32>, down: &[u32]) -> String {
    minutes
        .map(|m| {
            let status = if down.contains(&m) { "down" } else { "up" };
            let detail = if status == "down" { "connection refused" } else { "" };
            format!(
                "{}\n",
                json!({"kind": "check", "name": name, "status": status, "detail": detail, "latency_ms": 10, "timestamp": ts(m)})
            )
        })
        .collect()
}

/// The fleet from 00:00 to 02:00, `web` checked every 5 minutes from three places:
///
/// - hub (the hub's own metrics): down at 10 and 15, at 50, and at 60, 65 and 70;
/// - web2: down at 60 and 65, and at 90;
/// - web3: up from 0 to 30, down at 35, and then silent (its host went away).
///
/// `solo` is checked from the hub alone.
fn fleet(w: &Workdir) {
    let every5 = |until: u32| (0..=until).step_by(5);
    let mut hub = checks("web", every5(115), &[10, 15, 50, 60, 65, 70]);
    hub.push_str(&checks("solo", every5(115), &[]));
    w.write("home/metrics/2026-12-06.jsonl", hub);
    w.write("home/metrics/web2/2026-12-06.jsonl", checks("web", every5(115), &[60, 65, 90]));
    w.write("home/metrics/web3/2026-12-06.jsonl", checks("web", every5(35), &[35]));
}

fn rollup(w: &Workdir, args: &[&str]) -> crate::util::Run {
    w.tool("rollup").args(["--host", "hub", "--days", "1", "--now", NOW]).args(args).run()
}

const QUORUM_KEYS: [&str; 7] = [
    "quorum",
    "quorum_window_s",
    "quorum_places",
    "quorum_uptime_percent",
    "quorum_down_s",
    "quorum_unknown_s",
    "quorum_outages",
];

fn without_quorum(mut r: Value) -> Value {
    let m = r.as_object_mut().unwrap();
    for k in QUORUM_KEYS {
        m.remove(k);
    }
    r
}

fn by_host(run: &crate::util::Run, host: &str, name: &str) -> Value {
    run.kind("uptime")
        .into_iter()
        .find(|r| r["host"] == host && r["name"] == name)
        .unwrap_or_else(|| panic!("no uptime of {name} from {host}{run:?}"))
}

#[test]
fn uptime_by_quorum_beside_each_places_uptime() {
    let w = Workdir::new("rollup-quorum");
    fleet(&w);

    // By hand, over the window 00:00 to 02:00 (now), with a quorum of 2 and a window of 10
    // minutes (a place's latest record counts for 10 minutes, until its next one):
    //   10-20  hub down alone                                    up by quorum
    //   35-45  web3 down alone (its record at 35 counts to 45)  up
    //   50-55  hub down; web3's record of 35 is 15 minutes old:
    //          stale, it does not count                          up
    //   60-70  hub and web2 down: two of three                   DOWN (10 minutes)
    //   70-75  hub down alone                                    up
    //   90-95  web2 down alone                                   up
    // hub's and web2's records cover the whole two hours (the last, at 115, counts to 02:00),
    // so nothing is unknown: 110 of 120 minutes up, 91.67%, one outage of 600 s.
    let run = rollup(&w, &["--by", "host", "--quorum", "2"]);
    run.code(0);
    let places = json!(["hub", "web2", "web3"]);
    for host in ["hub", "web2", "web3"] {
        let r = by_host(&run, host, "web");
        assert_eq!(r["quorum"], 2, "{r}");
        assert_eq!(r["quorum_window_s"], 600, "{r}");
        assert_eq!(r["quorum_places"], places, "{r}");
        assert_eq!(r["quorum_uptime_percent"], 91.67, "{r}");
        assert_eq!(r["quorum_down_s"], 600, "{r}");
        assert_eq!(r["quorum_unknown_s"], 0, "{r}");
        assert_eq!(r["quorum_outages"], 1, "{r}");
    }
    // Beside them, each place's own uptime, as without a quorum. The kit's check-counted
    // uptime: hub 6 of 24 checks down (75.0%), web2 3 of 24 (87.5%), web3 1 of 8 (87.5%).
    // Time-weighted: hub down 10-20, 50-55, 60-75 (30 of 120 minutes: 75.0%); web2 down
    // 60-70 and 90-95 (15 of 120: 87.5%); web3 watched 0-35 only, all of it up (100.0%,
    // coverage 35 of 120 minutes).
    let own = [("hub", 75.0, 6, 24, 75.0), ("web2", 87.5, 3, 24, 87.5), ("web3", 87.5, 1, 8, 100.0)];
    for (host, uptime, failures, checks, known) in own {
        let r = by_host(&run, host, "web");
        assert_eq!(
            (r["uptime_percent"].as_f64(), r["failures"].as_u64(), r["total_checks"].as_u64()),
            (Some(uptime), Some(failures), Some(checks)),
            "{r}"
        );
        assert_eq!(r["uptime_known_percent"], known, "{r}");
    }
    assert_eq!(by_host(&run, "web3", "web")["coverage_percent"], 29.17);
    // A service checked from one place is as it was: no quorum fields.
    let solo = by_host(&run, "hub", "solo");
    assert!(QUORUM_KEYS.iter().all(|k| solo.get(k).is_none()), "{solo}");
    // The quorum only adds fields: every record is the same without them.
    let plain = rollup(&w, &["--by", "host"]);
    plain.code(0);
    let strip = |v: Vec<Value>| v.into_iter().map(without_quorum).collect::<Vec<_>>();
    assert_eq!(strip(run.records()), plain.records());

    // The hub's own report, in the other formats: the same figures.
    let text = rollup(&w, &["--quorum", "2", "--format", "text"]);
    text.code(0);
    text.stdout_has(
        "[CRITICAL] web: 75.0% uptime (6 failures in 24 checks, avg 10.0ms), by quorum 2 of 3 places: 91.67%\n",
    );
    text.stdout_has("[OK] solo: 100.0% uptime (0 failures in 24 checks, avg 10.0ms)\n");
    let csv = rollup(&w, &["--quorum", "2", "--format", "csv"]);
    csv.code(0);
    let header = csv.stdout.lines().next().unwrap();
    assert!(
        header.ends_with(
            ",low_coverage,quorum,quorum_places,quorum_uptime_percent,quorum_down_s,quorum_unknown_s,quorum_outages"
        ),
        "{header}"
    );
    let web_row = csv.stdout.lines().find(|l| l.starts_with("web,")).unwrap();
    assert!(web_row.ends_with(",2,hub web2 web3,91.67,600,0,1"), "{web_row}");
    let solo_row = csv.stdout.lines().find(|l| l.starts_with("solo,")).unwrap();
    assert!(solo_row.ends_with(",,,,,,"), "{solo_row}");
    let md = rollup(&w, &["--quorum", "2", "--format", "markdown"]);
    md.code(0).stdout_has(" uptime by quorum |").stdout_has("| 75% | 91.67% (2 of 3) |");
    let prom = rollup(&w, &["--quorum", "2", "--format", "prometheus"]);
    prom.code(0).stdout_has("pitcrew_uptime_quorum_ratio{service=\"web\",window=\"1d\"} 0.9166666666666666\n");
    assert!(!prom.stdout.contains("pitcrew_uptime_quorum_ratio{service=\"solo\""), "{prom:?}");
    let html = rollup(&w, &["--quorum", "2", "--format", "html"]);
    html.code(0).stdout_has("91.67%</b> by quorum 2 of 3");
    let status = rollup(&w, &["--quorum", "2", "--format", "status-json"]);
    status.code(0);
    let doc: Value = serde_json::from_str(&status.stdout).unwrap();
    let svc = |name: &str| doc["services"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap().clone();
    assert_eq!(svc("web")["quorum_uptime_percent"], 91.67);
    assert_eq!(svc("web")["quorum_places"], places);
    assert!(svc("solo").get("quorum").is_none());
    // --host web2 on the hub: web2's report, the same uptime by quorum beside web2's own;
    // the hub's own metrics are still a place, under the system's name.
    let run = w.tool("rollup").args(["--host", "web2", "--days", "1", "--now", NOW, "--quorum", "2"]).run();
    run.code(0);
    let r = run.named("uptime", "web");
    assert_eq!((&r["uptime_percent"], &r["quorum_uptime_percent"]), (&json!(87.5), &json!(91.67)), "{r}");
    let names = r["quorum_places"].as_array().unwrap();
    assert_eq!((names.len(), &names[1..]), (3, &[json!("web2"), json!("web3")][..]), "{r}");
    assert!(names[0] != "web2" && names[0] != "web3", "{r}");
    // Without --quorum nothing changes.
    let text_plain = rollup(&w, &["--format", "text"]);
    text_plain.code(0);
    assert!(!text_plain.stdout.contains("quorum"), "{text_plain:?}");
}

#[test]
fn the_quorum_of_a_service_in_services_json_and_the_window() {
    let w = Workdir::new("rollup-quorum-config");
    fleet(&w);
    // "quorum": 1 on web: any place down within the window is enough. By hand: 10-20 (hub),
    // 35-45 (web3), 50-55 (hub), 60-75 (hub, web2 to 70), 90-95 (web2): 45 of 120 minutes
    // down in 5 outages, 62.5% up. It wins over --quorum 2 for web, as in notify.
    w.write(
        "home/config/services.json",
        r#"{"services":[{"name":"web","type":"tcp","target":"127.0.0.1","port":9,"quorum":1}]}"#,
    );
    for args in [&["--by", "host"][..], &["--by", "host", "--quorum", "2"][..]] {
        let run = rollup(&w, args);
        run.code(0);
        let r = by_host(&run, "web2", "web");
        assert_eq!(
            (&r["quorum"], &r["quorum_uptime_percent"], &r["quorum_down_s"], &r["quorum_outages"]),
            (&json!(1), &json!(62.5), &json!(2700), &json!(5)),
            "{r}"
        );
    }
    // A window of 30 minutes: web3's down record of 35 now counts until 65, when hub is down
    // at 50 (two of three: 50-55) and at 60-65 (all three); with hub and web2 that makes the
    // quorum outage 50-55 and 60-70: 15 minutes. web3 also keeps its place known to 65.
    w.write("home/config/services.json", r#"{"services":[]}"#);
    let run = rollup(&w, &["--by", "host", "--quorum", "2", "--quorum-window", "1800"]);
    run.code(0);
    let r = by_host(&run, "hub", "web");
    assert_eq!(
        (&r["quorum_window_s"], &r["quorum_down_s"], &r["quorum_outages"], &r["quorum_uptime_percent"]),
        (&json!(1800), &json!(900), &json!(2), &json!(87.5)),
        "{r}"
    );
}

#[test]
fn a_quorum_that_cannot_be_is_a_clear_error() {
    let w = Workdir::new("rollup-quorum-errors");
    fleet(&w);
    rollup(&w, &["--quorum", "0"]).code(2).stderr_has("--quorum").stderr_has("0");
    rollup(&w, &["--quorum", "2", "--quorum-window", "10m"]).code(2).stderr_has("--quorum-window");
    rollup(&w, &["--quorum", "2", "--quorum-window", "0"]).code(2).stderr_has("--quorum-window");
    rollup(&w, &["--quorum", "2", "--by", "day"]).code(2).stderr_has("--quorum: not with --by day");
    let file = w.path("home/metrics/2026-12-06.jsonl");
    w.tool("rollup")
        .args(["--quorum", "2", "--now", NOW])
        .arg(&file)
        .run()
        .code(2)
        .stderr_has("--quorum: not with FILE");
    w.tool("rollup").args(["prune", "--quorum", "2"]).run().code(2).stderr_has("--quorum");
    // A quorum of 0 in services.json names the file, the line and the service.
    w.write(
        "home/config/services.json",
        "{\"services\":[\n  {\"name\":\"web\",\"type\":\"tcp\",\"target\":\"127.0.0.1\",\"port\":9,\"quorum\":0}\n]}",
    );
    rollup(&w, &[])
        .code(2)
        .stderr_has("services.json:2: service 'web': quorum: 0 is not a number of hosts (1 or more)");
}

/// A small deterministic generator (64-bit LCG).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Three days of eight services from three places (the hub's own metrics, h2, h3), each
/// place checking each service every 1 to 3 minutes, with outages, degraded checks and
/// silences of 5 to 40 minutes, nothing at all from 16:40 to 18:20 on the first day, and
/// nothing from h3 after 09:20 on the second; `only-hub` is checked from the hub alone.
fn generated(w: &Workdir, seed: u64) {
    let mut rng = Rng(seed);
    for dir in ["home/metrics", "home/metrics/h2", "home/metrics/h3"] {
        let mut days = vec![String::new(); 3];
        let names = ["a", "b", "c", "d", "e", "f", "g", "only-hub"];
        for name in names {
            if name == "only-hub" && dir != "home/metrics" {
                continue;
            }
            let every = 1 + rng.below(3);
            let (mut t, mut down_left) = (0u64, 0u64);
            while t < 3 * 1440 {
                if (1000..1100).contains(&t) {
                    t = 1100; // nobody checked anything: unknown time
                    continue;
                }
                if dir.ends_with("h3") && t >= 2000 {
                    break; // h3 went away
                }
                if rng.below(200) == 0 {
                    t += 5 + rng.below(36); // silent: the host slept, cron stopped
                    continue;
                }
                if down_left == 0 && rng.below(60) == 0 {
                    down_left = 1 + rng.below(12);
                }
                let status = if down_left > 0 {
                    down_left -= 1;
                    "down"
                } else if rng.below(30) == 0 {
                    "degraded"
                } else {
                    "up"
                };
                let (day, min) = (t / 1440, t % 1440);
                let ts = format!("2026-12-0{}T{:02}:{:02}:00Z", 4 + day, min / 60, min % 60);
                days[day as usize].push_str(&format!(
                    "{}\n",
                    json!({"kind": "check", "name": name, "status": status, "latency_ms": 5, "timestamp": ts})
                ));
                t += every;
            }
        }
        for (i, text) in days.iter().enumerate() {
            w.write(&format!("{dir}/2026-12-0{}.jsonl", 4 + i), text);
        }
    }
}

fn reference(w: &Workdir, k: u32, window_min: u32) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rollup/quorum_reference.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(w.path("home/metrics"))
        .args(["hub", &k.to_string(), &window_min.to_string(), "2026-12-04T00:00:00Z", "2026-12-06T18:00:00Z"])
        .output()
        .unwrap();
    assert!(out.status.success(), "reference failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn uptime_by_quorum_agrees_with_a_minute_by_minute_reference() {
    let w = Workdir::new("rollup-quorum-reference");
    generated(&w, 19);
    for (k, window_min) in [(2, 10), (1, 3), (3, 10), (2, 45)] {
        let want = reference(&w, k, window_min);
        assert_eq!(want.len(), 7, "{want:?}");
        let run = w
            .tool("rollup")
            .args(["--host", "hub", "--since", "2026-12-04", "--now", "2026-12-06T18:00:00Z", "--by", "host"])
            .args(["--quorum", &k.to_string(), "--quorum-window", &(window_min * 60).to_string()])
            .run();
        run.code(0);
        for e in &want {
            let name = e["name"].as_str().unwrap();
            for host in ["hub", "h2", "h3"] {
                let g = by_host(&run, host, name);
                for key in
                    ["quorum_places", "quorum_uptime_percent", "quorum_down_s", "quorum_unknown_s", "quorum_outages"]
                {
                    assert_eq!(g[key], e[key], "{name} from {host}: {key} with quorum {k}, window {window_min}m");
                }
            }
        }
        let solo = by_host(&run, "hub", "only-hub");
        assert!(solo.get("quorum").is_none(), "{solo}");
    }
}
