//! rollup against real metrics directories: the kit's arithmetic checked against a Python
//! reference, windows, gzip, every format, SLA, --by day, prune and compact, the pipe
//! contract.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::util::{Workdir, path_str};

const NOW: &str = "2026-11-23T12:00:00Z";

/// A small deterministic generator (64-bit LCG).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn line(name: &str, status: &str, latency: Value, ts: &str) -> String {
    format!("{}\n", json!({"name": name, "status": status, "detail": "x", "latency_ms": latency, "timestamp": ts}))
}

/// `days` daily files ending at 2026-11-23 with a mix of everything the kit and probe write:
/// outages, degraded stretches, `recovered` and disk lines, fractional latencies, escaped
/// names, probe's own records, a line without a name.
fn history(w: &Workdir, days: u32, seed: u64) -> std::path::PathBuf {
    let dir = w.path("home/metrics");
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = Rng(seed);
    let names = ["api", "db", "web \"edge\"", "café", "worker", "flaky"];
    let mut down_left = [0u64; 6];
    let last = time::Date::from_calendar_date(2026, time::Month::November, 23).unwrap();
    for back in (0..days).rev() {
        let day = last - time::Duration::days(i64::from(back));
        let date = format!("{:04}-{:02}-{:02}", day.year(), u8::from(day.month()), day.day());
        let mut out = String::new();
        for slot in 0..48u32 {
            let ts = format!("{date}T{:02}:{:02}:00Z", slot / 2, (slot % 2) * 30);
            for (i, name) in names.iter().enumerate() {
                let odds = if *name == "flaky" { 12 } else { 300 };
                if down_left[i] == 0 && rng.below(odds) == 0 {
                    down_left[i] = 1 + rng.below(6);
                }
                let (status, latency) = if down_left[i] > 0 {
                    down_left[i] -= 1;
                    ("down", json!(10_000))
                } else if rng.below(40) == 0 {
                    ("degraded", json!(900 + rng.below(300)))
                } else if rng.below(7) == 0 {
                    ("up", json!(f64::from(rng.below(4000) as u32) * 0.25))
                } else {
                    ("up", json!(5 + rng.below(200) + rng.below(200) * rng.below(3)))
                };
                if *name == "worker" {
                    out.push_str(&format!(
                        "{}\n",
                        json!({"kind": "check", "name": name, "type": "process", "target": "w", "status": status,
                               "detail": "", "latency_ms": latency, "timestamp": ts, "pids": [1, 2]})
                    ));
                } else {
                    out.push_str(&line(name, status, latency, &ts));
                }
                if status == "down" && down_left[i] == 0 && rng.below(2) == 0 {
                    out.push_str(&line(name, "recovered", json!(0), &ts));
                }
            }
            if slot % 12 == 0 {
                out.push_str(&line("disk_free_gb", "45", json!(0), &ts));
                out.push_str(&format!("{}\n", json!({"status": "up", "latency_ms": 3, "timestamp": ts})));
            }
        }
        std::fs::write(dir.join(format!("{date}.jsonl")), out).unwrap();
    }
    dir
}

fn rollup(w: &Workdir) -> crate::util::Tool {
    w.tool("rollup").args(["--now", NOW])
}

fn reference(dir: &Path, days: u32) -> (Vec<Value>, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rollup/reference.py");
    let out = Command::new("python3").args([script, &path_str(dir), "2026-11-23", &days.to_string()]).output().unwrap();
    assert!(out.status.success(), "reference failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let (json_part, report) = text.split_once("---\n").unwrap();
    let recs = json_part.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (recs, report.to_string())
}

#[test]
fn rollup_agrees_with_the_reference_arithmetic() {
    let w = Workdir::new("rollup-reference");
    let dir = history(&w, 12, 11);
    for days in [1, 7, 30] {
        let (want, report) = reference(&dir, days);
        let r = rollup(&w).args(["--days", &days.to_string()]).run();
        r.code(0);
        let got = r.kind("uptime");
        assert_eq!(got.len(), want.len(), "{r:?}");
        for (g, e) in got.iter().zip(&want) {
            let name = e["name"].as_str().unwrap();
            assert_eq!(g["name"], e["name"]);
            for k in ["uptime_percent", "avg_latency_ms"] {
                assert_eq!(g[k].as_f64(), e[k].as_f64(), "{name} {k} over {days} days");
            }
            for k in ["total_checks", "failures", "degraded", "incidents", "longest_outage_s"] {
                assert_eq!(g[k], e[k], "{name} {k} over {days} days");
            }
            for (k, q) in [("p50_latency_ms", "p50"), ("p95_latency_ms", "p95"), ("p99_latency_ms", "p99")] {
                let exact = e[q].as_f64().unwrap();
                let got = g[k].as_f64().unwrap();
                assert!((got - exact).abs() <= exact * 0.01 + 0.05, "{name} {k}: {got} vs exact {exact}");
            }
            assert_eq!(g["window_days"], days);
        }
        let text = rollup(&w).args(["--days", &days.to_string(), "--format", "text"]).run();
        text.code(0);
        assert_eq!(text.stdout, report, "the kit's report, byte for byte");
    }
    let flaky = rollup(&w).args(["--days", "12"]).run().named("uptime", "flaky");
    assert!(flaky["incidents"].as_u64().unwrap() > 5, "{flaky}");
}

#[test]
fn rollup_text_report_layout_and_kit_quirks() {
    let w = Workdir::new("rollup-text");
    w.write(
        "home/metrics/2026-11-23.jsonl",
        [
            line("b", "up", json!(100), "2026-11-23T10:00:00Z"),
            line("b", "down", json!(51), "2026-11-23T10:05:00Z"),
            line("a", "up", json!(3), "2026-11-23T10:00:00Z"),
            line("disk_free_gb", "45", json!(0), "2026-11-23T10:00:00Z"),
        ]
        .concat(),
    );
    let r = rollup(&w).args(["--format", "text"]).run();
    r.code(0);
    assert_eq!(
        r.stdout,
        "=== Uptime Report (last 7 days) ===\n\n\
         [OK] a: 100.0% uptime (0 failures in 1 checks, avg 3.0ms)\n\
         [CRITICAL] b: 50.0% uptime (1 failures in 2 checks, avg 75.5ms)\n\
         [CRITICAL] disk_free_gb: 0% uptime (0 failures in 0 checks, avg 0ms)\n"
    );
}

#[test]
fn rollup_windows_count_days_as_the_kit_does() {
    let w = Workdir::new("rollup-window");
    for (date, status) in [("2026-11-16", "down"), ("2026-11-17", "up"), ("2026-11-23", "up"), ("2026-11-24", "down")] {
        w.write(&format!("home/metrics/{date}.jsonl"), line("a", status, json!(1), &format!("{date}T00:00:00Z")));
    }
    let total = |args: &[&str]| {
        let r = rollup(&w).args(args).run();
        r.code(0);
        r.named("uptime", "a")["total_checks"].as_u64().unwrap()
    };
    assert_eq!(total(&[]), 2, "today and the 6 days before: 17th..23rd");
    assert_eq!(total(&["--days", "8"]), 3);
    assert_eq!(total(&["--days", "1"]), 1);
    assert_eq!(total(&["--since", "2026-11-16", "--until", "2026-11-17"]), 2);
    assert_eq!(total(&["--since", "2026-11-20"]), 1);
    assert_eq!(total(&["--days", "2", "--until", "2026-11-17"]), 2);
    let r = rollup(&w).args(["--since", "2026-11-16", "--until", "2026-11-17"]).run();
    let rec = r.named("uptime", "a");
    assert_eq!((rec["from"].as_str(), rec["to"].as_str()), (Some("2026-11-16"), Some("2026-11-17")));
    assert!(rec.get("window_days").is_none());
    rollup(&w).args(["--since", "2026-11-20", "--until", "2026-11-19"]).run().code(2).stderr_has("is after");
    rollup(&w).args(["--days", "3", "--since", "2026-11-20"]).run().code(2);
    rollup(&w).args(["--days", "0"]).run().code(2);
}

#[test]
fn rollup_reads_gzip_and_prefers_the_whole_day() {
    let w = Workdir::new("rollup-gz");
    let day = |n: u32| line("a", "up", json!(n), "2026-11-22T00:00:00Z").repeat(n as usize);
    let gz = |path: &str, text: &str| {
        w.write(path, flate2_like_gzip(text.as_bytes()));
    };
    gz("home/metrics/2026-11-21.jsonl.gz", &day(2));
    // Both kinds for the 22nd (a compaction that stopped half-way): the .jsonl is the day.
    gz("home/metrics/2026-11-22.jsonl.gz", &day(3));
    w.write("home/metrics/2026-11-22.jsonl", day(3));
    let r = rollup(&w).run();
    r.code(0);
    assert_eq!(r.named("uptime", "a")["total_checks"], 5);
    // A gzip file named as an argument, and gzip on stdin.
    let r = rollup(&w).arg(w.path("home/metrics/2026-11-21.jsonl.gz")).run();
    assert_eq!(r.named("uptime", "a")["total_checks"], 2);
    let r = rollup(&w).arg("-").stdin(flate2_like_gzip(day(4).as_bytes())).run();
    assert_eq!(r.named("uptime", "a")["total_checks"], 4);
    // A truncated archive counts as a bad line; what was read still counts.
    let whole = flate2_like_gzip(day(50).as_bytes());
    w.write("cut.jsonl.gz", &whole[..whole.len() - 20]);
    let r = rollup(&w).arg(w.path("cut.jsonl.gz")).run();
    r.code(3).stderr_has("1 malformed line(s) skipped").stderr_has("corrupt compressed data");
}

/// gzip through the system's gzip (the format other tools write).
fn flate2_like_gzip(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let t = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let out = child.wait_with_output().unwrap();
    t.join().unwrap();
    out.stdout
}

#[test]
fn rollup_records_incidents_percentiles_and_sla() {
    let w = Workdir::new("rollup-record");
    let mut lines = String::new();
    let seq = ["up", "down", "down", "down", "up", "up", "down", "degraded", "up", "down"];
    for (k, st) in seq.iter().enumerate() {
        lines.push_str(&line("svc", st, json!(10 * (k + 1)), &format!("2026-11-23T10:{:02}:00Z", k * 5)));
    }
    w.write("home/metrics/2026-11-23.jsonl", lines);
    let r = rollup(&w).args(["--sla", "99.9"]).run();
    r.code(1);
    let u = r.named("uptime", "svc");
    assert_eq!(u["kind"], "uptime");
    assert_eq!(
        (u["total_checks"].as_u64(), u["failures"].as_u64(), u["degraded"].as_u64()),
        (Some(10), Some(5), Some(1))
    );
    assert_eq!(u["uptime_percent"], 50.0);
    assert_eq!(u["incidents"], 3);
    assert_eq!(u["longest_outage_s"], 900, "10:05 to 10:20");
    let inc = u["recent_incidents"].as_array().unwrap();
    assert_eq!(inc[0]["start"], "2026-11-23T10:05:00.000Z");
    assert_eq!(inc[0]["end"], "2026-11-23T10:20:00.000Z");
    assert_eq!(inc[0]["checks"], 3);
    assert_eq!(inc[2]["ongoing"], true);
    assert_eq!(inc[2]["end"], Value::Null);
    assert_eq!(u["p50_latency_ms"], 50.0);
    assert_eq!(u["p99_latency_ms"], 100.0);
    assert_eq!((u["sla_percent"].as_f64(), u["status"].as_str()), (Some(99.9), Some("breach")));
    assert_eq!(u["last_status"], "down");
    assert!(u["timestamp"].as_str().unwrap().starts_with("2026-11-23T12:00:00"));
    let ok = rollup(&w).args(["--sla", "40"]).run();
    ok.code(0);
    assert_eq!(ok.named("uptime", "svc")["status"], "ok");
}

#[test]
fn rollup_by_day_gives_one_record_per_service_per_day() {
    let w = Workdir::new("rollup-byday");
    let dir = history(&w, 3, 5);
    let r = rollup(&w).args(["--days", "3", "--by", "day"]).run();
    r.code(0);
    let recs = r.kind("uptime");
    assert_eq!(recs.len(), 3 * 8, "6 services, the disk line and the nameless line, 3 days");
    let days: Vec<&str> = recs.iter().map(|r| r["day"].as_str().unwrap()).collect();
    assert!(days.windows(2).all(|p| p[0] <= p[1]), "in day order");
    // Each day is what a one-day window says.
    let one = rollup(&w).args(["--since", "2026-11-22", "--until", "2026-11-22"]).run();
    for rec in one.kind("uptime") {
        let same = recs.iter().find(|r| r["day"] == "2026-11-22" && r["name"] == rec["name"]).unwrap();
        for k in ["uptime_percent", "total_checks", "avg_latency_ms", "p95_latency_ms", "incidents"] {
            assert_eq!(same[k], rec[k], "{k}");
        }
    }
    // The same from the files named as arguments.
    let files: Vec<String> =
        ["2026-11-23", "2026-11-21", "2026-11-22"].iter().map(|d| path_str(&dir.join(format!("{d}.jsonl")))).collect();
    let named = rollup(&w).args(["--by", "day"]).args(&files).run();
    assert_eq!(named.kind("uptime").len(), recs.len());
    let csv = rollup(&w).args(["--days", "3", "--by", "day", "--format", "csv"]).run();
    csv.code(0);
    assert_eq!(csv.stdout.lines().count(), 1 + 24);
    rollup(&w).args(["--by", "day", "--format", "html"]).run().code(2);
}

#[test]
fn rollup_formats() {
    let w = Workdir::new("rollup-formats");
    history(&w, 2, 3);
    let md = rollup(&w).args(["--format", "markdown", "--sla", "99"]).run();
    md.stdout_has("## Uptime report (last 7 days)").stdout_has(" | api | ").stdout_has("web \"edge\"");
    let csv = rollup(&w).args(["--format", "csv"]).run();
    csv.code(0);
    assert!(csv.stdout.contains("\"web \"\"edge\"\"\""), "{csv:?}");
    let prom = rollup(&w).args(["--format", "prometheus", "--sla", "99"]).run();
    prom.stdout_has("# TYPE pitcrew_uptime_ratio gauge")
        .stdout_has("pitcrew_uptime_ratio{service=\"web \\\"edge\\\"\",window=\"7d\"}")
        .stdout_has("pitcrew_uptime_latency_seconds{service=\"api\",window=\"7d\",quantile=\"0.95\"}")
        .stdout_has("pitcrew_uptime_sla_breach{");
    let html = rollup(&w).args(["--format", "html"]).run();
    html.code(0);
    assert!(html.stdout.starts_with("<!DOCTYPE html>"));
    assert!(html.stdout.contains("web &quot;edge&quot;") || html.stdout.contains("web \"edge\""));
    assert!(html.stdout.contains("Uptime over last 90 days"));
    for external in ["http://", "https://", "<script", "<link", "src="] {
        assert!(!html.stdout.contains(external), "{external}");
    }
    // --output replaces the file atomically and writes nothing on stdout.
    let out = w.path("textfile/pitcrew.prom");
    for _ in 0..2 {
        let r = rollup(&w).args(["--format", "prometheus", "--sla", "99", "--output"]).arg(&out).run();
        r.code(prom.code);
        assert!(r.stdout.is_empty());
        assert_eq!(std::fs::read_to_string(&out).unwrap(), prom.stdout);
    }
    let names: Vec<_> = std::fs::read_dir(w.path("textfile")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
}

#[test]
fn rollup_finds_the_metrics_dir_like_the_kit() {
    let w = Workdir::new("rollup-dirs");
    w.write("elsewhere/2026-11-23.jsonl", line("env", "up", json!(1), "2026-11-23T00:00:00Z"));
    w.write("flag/2026-11-23.jsonl", line("flag", "up", json!(1), "2026-11-23T00:00:00Z"));
    let r = rollup(&w).env("AGENT_OPS_METRICS_DIR", w.path("elsewhere")).run();
    r.named("uptime", "env");
    let r = rollup(&w).env("AGENT_OPS_METRICS_DIR", w.path("elsewhere")).arg("--metrics-dir").arg(w.path("flag")).run();
    r.named("uptime", "flag");
    let missing = rollup(&w).run();
    missing.code(0).stderr_has("does not exist");
    assert!(missing.stdout.is_empty());
    rollup(&w).arg("--metrics-dir").arg(w.path("flag")).arg("x.jsonl").run().code(2);
    rollup(&w).arg(w.path("nope.jsonl")).run().code(2).stderr_has("cannot open");
}

#[test]
fn rollup_empty_input_is_empty_output() {
    let w = Workdir::new("rollup-empty");
    let r = rollup(&w).arg("-").stdin("").run();
    r.code(0);
    assert!(r.stdout.is_empty() && r.stderr.is_empty(), "{r:?}");
}

#[test]
fn rollup_malformed_lines_are_counted_and_reported_once() {
    let w = Workdir::new("rollup-bad");
    let input = format!(
        "{}{{\"name\": oops}}\n{}{{\"name\":\"a\",\"status\":\"up\"\n",
        line("a", "up", json!(1), "2026-11-23T00:00:00Z"),
        line("a", "down", json!(1), "2026-11-23T00:05:00Z")
    );
    let r = rollup(&w).arg("-").stdin(&input).run();
    r.code(3);
    r.stderr_has("rollup: 2 malformed line(s) skipped (first: stdin:2: expected value at column 10)");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert_eq!(r.named("uptime", "a")["total_checks"], 2);
    let strict = rollup(&w).args(["-", "--strict"]).stdin(&input).run();
    strict.code(2);
    strict.stderr_has("rollup: stdin:2: expected value at column 10");
    // A breach outranks rejected lines.
    rollup(&w).args(["-", "--sla", "99"]).stdin(&input).run().code(1);
}

#[test]
fn rollup_latencies_that_are_no_number_or_negative_are_malformed_lines() {
    let w = Workdir::new("rollup-bad-latency");
    let file = w.write(
        "home/metrics/2026-11-23.jsonl",
        format!(
            "{}{}{}{}",
            line("api", "up", json!(100), "2026-11-23T00:00:00Z"),
            line("api", "up", json!("abc"), "2026-11-23T00:05:00Z"),
            line("api", "up", json!(-5), "2026-11-23T00:10:00Z"),
            line("api", "down", json!("300"), "2026-11-23T00:15:00Z"),
        ),
    );
    let r = rollup(&w).args(["--days", "1"]).run();
    r.code(3);
    r.stderr_has(&format!(
        "rollup: 2 malformed line(s) skipped (first: {}:2: latency_ms: \"abc\" is not a number)",
        file.display()
    ));
    let api = r.named("uptime", "api");
    // Neither counted as 0 nor averaged: the two good lines only (the numeric string is a number).
    assert_eq!((api["total_checks"].as_u64(), api["avg_latency_ms"].as_f64()), (Some(2), Some(200.0)), "{api}");
    let strict = rollup(&w).args(["--days", "1", "--strict"]).run();
    strict.code(2).stderr_has(&format!("{}:2: latency_ms: \"abc\" is not a number", file.display()));
    let negative = rollup(&w).args(["-"]).stdin(line("api", "up", json!(-5), "2026-11-23T00:10:00Z")).run();
    negative.code(3).stderr_has("(first: stdin:1: latency_ms: -5 is negative)");
    assert!(negative.kind("uptime").is_empty(), "{negative:?}");
}

#[test]
fn rollup_passes_other_records_through() {
    let w = Workdir::new("rollup-pass");
    let alert =
        r#"{"kind":"alert","topic":"t","level":"info","title":"x","message":"m","sinks":[],"timestamp":"t","zz":[1]}"#;
    let input = format!("{alert}\n{}", line("a", "up", json!(1), "2026-11-23T00:00:00Z"));
    let r = rollup(&w).arg("-").stdin(&input).run();
    r.code(0);
    assert_eq!(r.stdout.lines().next(), Some(alert), "unchanged, first");
    assert_eq!(r.kind("uptime").len(), 1);
    let text = rollup(&w).args(["-", "--format", "text"]).stdin(&input).run();
    assert!(!text.stdout.contains("alert"));
}

#[test]
fn rollup_stdout_closed_early_is_silent_success() {
    let w = Workdir::new("rollup-head");
    let input: String = (0..3000)
        .map(|i| line(&format!("svc-{i:04}-{}", "x".repeat(60)), "up", json!(i), "2026-11-23T00:00:00Z"))
        .collect();
    let first = rollup(&w).arg("-").first_line_then_close(input);
    assert!(first.contains("\"kind\":\"uptime\""), "{first}");
}

#[test]
fn rollup_prune_and_compact() {
    let w = Workdir::new("rollup-maint");
    let dir = w.path("home/metrics");
    for date in ["2026-08-20", "2026-08-25", "2026-08-26", "2026-11-22", "2026-11-23"] {
        w.write(&format!("home/metrics/{date}.jsonl"), line("a", "up", json!(1), &format!("{date}T00:00:00Z")));
    }
    w.write("home/config/services.json", r#"{"services": [], "metrics_retention_days": 89}"#);
    let before = rollup(&w).args(["--days", "120"]).run();
    // Dry runs change nothing.
    let dry = rollup(&w).args(["prune", "--dry-run", "--format", "text"]).run();
    dry.code(0).stdout_has("would prune 2026-08-20.jsonl").stdout_has("Would clean up 3 old metrics file(s).");
    assert!(dir.join("2026-08-20.jsonl").exists());
    // metrics_retention_days from services.json: 89 days before 2026-11-23T12:00 is 08-26T12:00.
    let pruned = rollup(&w).arg("prune").run();
    pruned.code(0);
    let files: Vec<String> =
        pruned.kind("metrics_file").iter().map(|r| r["date"].as_str().unwrap().to_string()).collect();
    assert_eq!(files, ["2026-08-20", "2026-08-25", "2026-08-26"]);
    assert!(pruned.kind("metrics_file").iter().all(|r| r["action"] == "pruned"));
    assert!(dir.join("2026-11-22.jsonl").exists());
    rollup(&w).args(["prune", "--retention-days", "0"]).run().code(2);

    let compact = rollup(&w).arg("compact").run();
    compact.code(0);
    let recs = compact.kind("metrics_file");
    assert_eq!(recs.len(), 1);
    assert_eq!((recs[0]["action"].as_str(), recs[0]["date"].as_str()), (Some("compacted"), Some("2026-11-22")));
    assert!(dir.join("2026-11-22.jsonl.gz").exists() && !dir.join("2026-11-22.jsonl").exists());
    assert!(dir.join("2026-11-23.jsonl").exists(), "today stays with probe");
    let after = rollup(&w).args(["--days", "120"]).run();
    assert_eq!(after.named("uptime", "a")["total_checks"], 2);
    assert_eq!(before.named("uptime", "a")["total_checks"], 5);
    rollup(&w).args(["compact", "--format", "html"]).run().code(2);
    let again = rollup(&w).args(["compact", "--format", "text"]).run();
    again.code(0).stdout_has("No closed days to compact.");
}

#[test]
fn rollup_compact_while_probe_appends_today() {
    let w = Workdir::new("rollup-race");
    let dir = w.path("home/metrics");
    for day in 1..=20 {
        let date = format!("2026-11-{day:02}");
        let body = line("a", "up", json!(1), &format!("{date}T00:00:00Z")).repeat(2000);
        w.write(&format!("home/metrics/{date}.jsonl"), body);
    }
    let today = dir.join("2026-11-23.jsonl");
    let appender = {
        let today = today.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&today).unwrap();
            for _ in 0..3000 {
                f.write_all(line("a", "down", json!(2), "2026-11-23T01:00:00Z").as_bytes()).unwrap();
            }
        })
    };
    let r = rollup(&w).arg("compact").run();
    appender.join().unwrap();
    r.code(0);
    assert_eq!(r.kind("metrics_file").len(), 20);
    let all = rollup(&w).args(["--days", "30"]).run();
    all.code(0);
    let a = all.named("uptime", "a");
    assert_eq!((a["total_checks"].as_u64(), a["failures"].as_u64()), (Some(40_000 + 3000), Some(3000)));
}

#[test]
fn rollup_reading_days_in_parallel_matches_one_stream() {
    let w = Workdir::new("rollup-parallel");
    let dir = history(&w, 20, 29);
    // An outage across every midnight of one service.
    for day in 4..=23 {
        let p = dir.join(format!("2026-11-{day:02}.jsonl"));
        let mut text = line("night", "down", json!(5), &format!("2026-11-{day:02}T00:00:00Z"));
        text.push_str(&line("night", "up", json!(5), &format!("2026-11-{day:02}T00:30:00Z")));
        text.push_str(&std::fs::read_to_string(&p).unwrap());
        text.push_str(&line("night", "down", json!(5), &format!("2026-11-{day:02}T23:30:00Z")));
        std::fs::write(&p, text).unwrap();
    }
    let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    let stream: String = names.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
    let from_dir = rollup(&w).args(["--days", "30"]).run();
    let from_stdin = rollup(&w).arg("-").stdin(&stream).run();
    from_dir.code(0);
    from_stdin.code(0);
    let strip = |mut v: Value| {
        for k in ["from", "to", "window_days"] {
            v.as_object_mut().unwrap().remove(k);
        }
        v
    };
    let a: Vec<Value> = from_dir.kind("uptime").into_iter().map(strip).collect();
    let b: Vec<Value> = from_stdin.kind("uptime").into_iter().map(strip).collect();
    assert_eq!(a, b);
    let night = from_dir.named("uptime", "night");
    // The first morning, 19 nights joined across files, and tonight's, still going.
    assert_eq!(night["incidents"], 21, "{night}");
    assert_eq!(night["longest_outage_s"], 3600, "23:30 to the next day's first up at 00:30");
    let by_day_dir = rollup(&w).args(["--days", "30", "--by", "day"]).run();
    let by_day_stdin = rollup(&w).args(["-", "--by", "day"]).stdin(&stream).run();
    assert_eq!(by_day_dir.kind("uptime"), by_day_stdin.kind("uptime"));
}

/// `HH:MM:SS` of 2026-11-DD as a metrics timestamp.
fn at_s(day: u32, secs: u32) -> String {
    format!("2026-11-{day:02}T{:02}:{:02}:{:02}.000Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Two days as probe writes them: `api` every 5 minutes with a six-hour hole in which
/// nothing at all ran (06:00 to 12:00 on the 22nd) and two down checks at 13:00; `ticker`
/// every second from 00:00 to 01:00 and from 12:00 to 13:00 on the 22nd (its interval is
/// 1 s in services.json), down for ten seconds at 00:30; on the 23rd the host stops
/// entirely after 03:00.
fn gappy_history(w: &Workdir) {
    w.write(
        "home/config/services.json",
        r#"{"services": [{"name": "ticker", "type": "port", "port": 9, "interval_seconds": 1},
                         {"name": "api", "type": "url", "target": "http://127.0.0.1:9/"}]}"#,
    );
    let mut day22 = String::new();
    for s in 0..86_400u32 {
        let ticker = s < 3600 || (12 * 3600..13 * 3600).contains(&s);
        if ticker {
            let down = (1800..1810).contains(&s);
            day22.push_str(&line("ticker", if down { "down" } else { "up" }, json!(1), &at_s(22, s)));
        }
        if s % 300 == 0 && !(6 * 3600 + 1..12 * 3600).contains(&s) {
            let down = s == 13 * 3600 || s == 13 * 3600 + 300;
            day22.push_str(&line("api", if down { "down" } else { "up" }, json!(20), &at_s(22, s)));
        }
    }
    w.write("home/metrics/2026-11-22.jsonl", day22);
    let day23: String = (0..=36u32).map(|k| line("api", "up", json!(20), &at_s(23, k * 300))).collect();
    w.write("home/metrics/2026-11-23.jsonl", day23);
}

#[test]
fn rollup_counts_time_nobody_watched_as_unknown() {
    let w = Workdir::new("rollup-coverage");
    gappy_history(&w);
    let day = |args: &[&str]| {
        w.tool("rollup")
            .args(["--now", "2026-11-23T00:00:00Z", "--days", "1", "--until", "2026-11-22"])
            .args(args)
            .run()
    };
    let r = day(&[]);
    r.code(0);
    let api = r.named("uptime", "api");
    // The kit's figures, as they always were: 217 checks, 2 down.
    assert_eq!(
        (api["uptime_percent"].as_f64(), api["total_checks"].as_u64(), api["failures"].as_u64()),
        (Some(99.08), Some(217), Some(2))
    );
    // The median spacing is 300 s; the 6 h spacing is unknown, the rest (with the last 5
    // minutes to midnight) known: 64,800 s of 86,400; 600 s of it down.
    assert_eq!(api["cadence_s"], 300.0);
    assert_eq!(api["cadence_from"], "median");
    assert_eq!(api["coverage_percent"], 75.0);
    assert_eq!(api["unknown_s"], 21_600);
    assert_eq!(api["uptime_known_percent"], 99.07);
    assert_eq!(
        api["longest_gap"],
        json!({"start": "2026-11-22T06:00:00.000Z", "end": "2026-11-22T12:00:00.000Z", "duration_s": 21_600})
    );
    let ticker = r.named("uptime", "ticker");
    // Configured at 1 s: two hours of 1 s spacings known (3,599 s each), the rest unknown.
    assert_eq!((ticker["cadence_s"].as_f64(), ticker["cadence_from"].as_str()), (Some(1.0), Some("interval_seconds")));
    assert_eq!(ticker["unknown_s"], 39_601 + 39_601);
    assert_eq!(ticker["coverage_percent"], 8.33, "7,198 s of 86,400");
    assert_eq!(ticker["uptime_known_percent"], 99.86, "10 s down of 7,198");
    assert_eq!(ticker["longest_gap"]["duration_s"], 39_601);
    // The hole is a gap in the monitoring itself, once.
    let gaps = r.kind("finding");
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(
        (&gaps[0]["problem"], &gaps[0]["start"], &gaps[0]["end"], &gaps[0]["duration_s"], &gaps[0]["ongoing"]),
        (
            &json!("monitoring_gap"),
            &json!("2026-11-22T06:00:00.000Z"),
            &json!("2026-11-22T12:00:00.000Z"),
            &json!(21_600),
            &json!(false)
        )
    );

    // The SLA: unknown time left out (the checks), as down, as up.
    let sla = |how: &str| day(&["--sla", "99", "--unknown-as", how]).named("uptime", "api");
    let (excluded, down, up) = (sla("excluded"), sla("down"), sla("up"));
    assert_eq!((excluded["status"].as_str(), excluded["sla_uptime_percent"].as_f64()), (Some("ok"), Some(99.08)));
    assert_eq!((down["status"].as_str(), down["sla_uptime_percent"].as_f64()), (Some("breach"), Some(74.31)));
    assert_eq!((up["status"].as_str(), up["sla_uptime_percent"].as_f64()), (Some("ok"), Some(99.31)));
    assert_eq!(excluded["low_coverage"], true);
    // The kit's report stays the kit's; with --sla the verdict says what it stood on.
    let text = day(&["--format", "text"]);
    assert_eq!(
        text.stdout,
        "=== Uptime Report (2026-11-22) ===\n\n\
         [WARN] api: 99.08% uptime (2 failures in 217 checks, avg 20.0ms)\n\
         [OK] ticker: 99.86% uptime (10 failures in 7200 checks, avg 1.0ms)\n"
    );
    day(&["--format", "text", "--sla", "99", "--unknown-as", "down"])
        .stdout_has("SLA 99%: BREACH (unknown time counted as down; judged on 75% coverage)");
    day(&["--format", "markdown"]).stdout_has("| 75% | 6h | 99.07% |").stdout_has("### Monitoring gaps");
    let csv = day(&["--format", "csv"]);
    assert!(csv.stdout.lines().next().unwrap().ends_with(",cadence_s,coverage_percent,unknown_s,uptime_known_percent,longest_gap_start,longest_gap_end,longest_gap_s,unknown_as,sla_uptime_percent,low_coverage"));
    assert!(
        csv.stdout.contains(",300,75,21600,99.07,2026-11-22T06:00:00.000Z,2026-11-22T12:00:00.000Z,21600,,,"),
        "{}",
        csv.stdout
    );
    day(&["--format", "prometheus"])
        .stdout_has("pitcrew_uptime_coverage_ratio{service=\"api\",window=\"2026-11-22..2026-11-22\"} 0.75")
        .stdout_has("pitcrew_uptime_unknown_seconds{service=\"api\",window=\"2026-11-22..2026-11-22\"} 21600")
        .stdout_has("pitcrew_monitoring_gaps{window=\"2026-11-22..2026-11-22\"} 1");

    // The host stops after 03:00 on the 23rd; at 09:00 that is a gap still going on.
    let r = w.tool("rollup").args(["--now", "2026-11-23T09:00:00Z", "--days", "2"]).run();
    let api = r.named("uptime", "api");
    assert_eq!((api["unknown_s"].as_u64(), api["coverage_percent"].as_f64()), (Some(43_200), Some(63.64)));
    assert_eq!(api["longest_gap"]["start"], "2026-11-22T06:00:00.000Z", "the earlier of two equal gaps");
    assert_eq!(r.named("uptime", "ticker")["unknown_s"], 39_601 + 72_001);
    let gaps = r.kind("finding");
    assert_eq!(gaps.len(), 2, "{gaps:?}");
    assert_eq!(
        (&gaps[1]["start"], &gaps[1]["end"], &gaps[1]["ongoing"]),
        (&json!("2026-11-23T03:00:00.000Z"), &Value::Null, &json!(true))
    );
    assert_eq!(gaps[1]["duration_s"], 21_600);
    // What stdin gives equals what the directory gives.
    let all = w.read("home/metrics/2026-11-22.jsonl") + &w.read("home/metrics/2026-11-23.jsonl");
    let piped = w.tool("rollup").args(["--now", "2026-11-23T09:00:00Z", "--days", "2", "-"]).stdin(all).run();
    assert_eq!(piped.named("uptime", "api")["coverage_percent"], api["coverage_percent"]);
    // The status page paints the unknown time in its own colour.
    let page = w.tool("rollup").args(["--now", "2026-11-23T09:00:00Z", "--days", "2", "--format", "html"]).run();
    assert!(
        page.stdout.contains("<span class=\"unknown\" title=\"2026-11-23: unknown, no check covered it\">"),
        "ticker's 23rd"
    );
    assert!(page.stdout.contains("var(--unknown) 75.0%)"), "api's 22nd: a quarter unknown on top");
    assert!(page.stdout.contains("<h2>Monitoring gaps</h2>"));
    // And `rollup stale` says at once that nothing ran since 03:00.
    let stale = w.tool("rollup").args(["--now", "2026-11-23T09:00:00Z", "stale", "--max-age", "900"]).run();
    stale.code(1);
    assert_eq!(stale.kind("finding")[0]["start"], "2026-11-23T03:00:00.000Z");
    let fresh =
        w.tool("rollup").args(["--now", "2026-11-23T03:10:00Z", "stale", "--max-age", "900", "--format", "text"]).run();
    fresh.code(0).stdout_has("The monitor is running: last check 2026-11-23T03:00:00.000Z (10m ago).");
}

#[test]
fn rollup_prune_and_compact_keep_the_alert_and_restart_histories_like_the_metrics() {
    let w = Workdir::new("rollup-history-maint");
    for date in ["2026-08-20", "2026-11-22", "2026-11-23"] {
        let ev = json!({"kind": "alert_event", "event": "fired", "subject": "check:a", "timestamp": format!("{date}T10:00:00.000Z")});
        w.write(&format!("home/state/alerts/{date}.jsonl"), format!("{ev}\n"));
        let r = json!({"kind": "restart", "name": "a", "outcome": "recovered", "timestamp": format!("{date}T10:00:00.000Z")});
        w.write(&format!("home/state/restarts/{date}.jsonl"), format!("{r}\n"));
    }
    w.write("home/metrics/2026-11-23.jsonl", line("a", "up", json!(1), "2026-11-23T00:00:00Z"));
    let compact = rollup(&w).arg("compact").run();
    compact.code(0);
    let files: Vec<(String, String)> = compact
        .kind("history_file")
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().rsplit('/').nth(1).unwrap().to_string(),
                r["date"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        files,
        [
            ("alerts".into(), "2026-08-20".into()),
            ("alerts".into(), "2026-11-22".into()),
            ("restarts".into(), "2026-08-20".into()),
            ("restarts".into(), "2026-11-22".into())
        ]
    );
    assert!(
        w.path("home/state/alerts/2026-11-22.jsonl.gz").exists()
            && !w.path("home/state/alerts/2026-11-22.jsonl").exists()
    );
    assert!(w.path("home/state/alerts/2026-11-23.jsonl").exists(), "today stays with notify");
    let pruned = rollup(&w).args(["prune", "--retention-days", "30", "--format", "text"]).run();
    pruned
        .code(0)
        .stdout_has("No metrics files older than 30 days.")
        .stdout_has("Cleaned up 1 old alert history file(s).")
        .stdout_has("Cleaned up 1 old restart history file(s).");
    assert!(!w.path("home/state/restarts/2026-08-20.jsonl.gz").exists());
    // The compacted history still reads; a torn line is said, with its place, and skipped.
    let inc = rollup(&w).args(["incidents", "--days", "2"]).run();
    inc.code(0);
    assert_eq!(inc.kind("incident_summary").last().unwrap()["incidents"], 0);
    let today = w.path("home/state/alerts/2026-11-23.jsonl");
    std::fs::OpenOptions::new().append(true).open(&today).unwrap().write_all(b"{\"kind\":\"alert_ev\n").unwrap();
    let torn = rollup(&w).args(["incidents", "--days", "2"]).run();
    torn.code(3).stderr_has("1 unusable history line(s) skipped (first: ").stderr_has("2026-11-23.jsonl:2: ");
}
