//! probe against real things: HTTP(S) servers, TCP ports, processes, the disk, plugins.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::http::{Blackhole, Certs, HttpServer, Reply, TlsFront};
use crate::util::{Workdir, closed_port, json as pretty};

/// A workdir with services.json holding `services`.
fn setup(name: &str, services: Value) -> (Workdir, String) {
    let w = Workdir::new(name);
    let cfg = w.write("services.json", pretty(&json!({ "services": services, "disk_check": false })));
    (w, cfg.display().to_string())
}

fn probe(w: &Workdir, cfg: &str) -> crate::util::Tool {
    w.tool("probe").args(["--config", cfg, "--no-metrics"])
}

fn web() -> HttpServer {
    HttpServer::start(|req| match req.url.as_str() {
        "/ok" => Reply::new(200, "all good"),
        "/fail" => Reply::new(500, "boom"),
        "/slow" => Reply::new(200, "eventually").delay(Duration::from_millis(600)),
        "/moved" => Reply::new(302, "").header("Location", "/ok"),
        "/health.json" => Reply::json(200, &json!({"status": "ok", "checks": {"db": [{"ok": true}]}})),
        "/echo" => {
            Reply::json(200, &json!({"method": req.method, "auth": req.header("authorization"), "body": req.body}))
        }
        _ => Reply::new(404, "no"),
    })
}

#[test]
fn url_checks_report_status_detail_and_latency() {
    let s = web();
    let (w, cfg) = setup(
        "url",
        json!([
            {"name": "ok", "type": "url", "target": s.url("/ok")},
            {"name": "fail", "type": "url", "target": s.url("/fail")},
            {"name": "missing", "type": "url", "target": s.url("/nope"), "expected_status": [404, 410]},
            {"name": "implicit-url", "target": s.url("/ok")}
        ]),
    );
    let r = probe(&w, &cfg).run();
    r.code(1);
    let ok = r.named("check", "ok");
    assert_eq!(
        (ok["status"].as_str(), ok["detail"].as_str(), ok["http_status"].as_u64()),
        (Some("up"), Some("HTTP 200"), Some(200))
    );
    assert_eq!(ok["type"], "url");
    assert!(ok["latency_ms"].is_u64());
    assert!(ok["timestamp"].as_str().unwrap().ends_with('Z'));
    let fail = r.named("check", "fail");
    assert_eq!((fail["status"].as_str(), fail["detail"].as_str()), (Some("down"), Some("HTTP 500 (expected 200)")));
    assert_eq!(r.named("check", "missing")["status"], "up");
    assert_eq!(r.named("check", "implicit-url")["status"], "up", "type defaults to url as in the Agent Ops Kit");
}

#[test]
fn url_extras_method_headers_body_and_json() {
    let s = web();
    let (w, cfg) = setup(
        "url-extras",
        json!([
            {"name": "post", "target": s.url("/echo"), "method": "POST", "headers": {"Authorization": "Bearer t0k"},
             "body": {"ping": 1}, "json_field": "auth", "json_equals": "Bearer t0k"},
            {"name": "contains", "target": s.url("/ok"), "body_contains": "good"},
            {"name": "lacks", "target": s.url("/ok"), "body_contains": "bad"},
            {"name": "json-ok", "target": s.url("/health.json"), "json_field": "checks.db.0.ok", "json_equals": true},
            {"name": "json-bad", "target": s.url("/health.json"), "json_field": "status", "json_equals": "green"},
            {"name": "not-json", "target": s.url("/ok"), "json_field": "status", "json_equals": "ok"}
        ]),
    );
    let r = probe(&w, &cfg).run();
    assert_eq!(r.named("check", "post")["status"], "up", "{r:?}");
    assert_eq!(r.named("check", "contains")["status"], "up", "{r:?}");
    let lacks = r.named("check", "lacks");
    assert_eq!(lacks["status"], "down");
    assert!(lacks["detail"].as_str().unwrap().contains("does not contain"));
    assert_eq!(r.named("check", "json-ok")["status"], "up");
    let bad = r.named("check", "json-bad");
    assert_eq!(bad["detail"], "HTTP 200, status = \"ok\" (expected \"green\")");
    assert!(r.named("check", "not-json")["detail"].as_str().unwrap().contains("not JSON"), "{r:?}");
}

#[test]
fn redirects_followed_or_not() {
    let s = web();
    let (w, cfg) = setup(
        "redirects",
        json!([
            {"name": "follow", "target": s.url("/moved")},
            {"name": "stay", "target": s.url("/moved"), "follow_redirects": false, "expected_status": 302},
            {"name": "stay-fails", "target": s.url("/moved"), "follow_redirects": false}
        ]),
    );
    let r = probe(&w, &cfg).run();
    assert_eq!(r.named("check", "follow")["status"], "up");
    assert_eq!(r.named("check", "stay")["status"], "up");
    assert_eq!(r.named("check", "stay-fails")["detail"], "HTTP 302 (expected 200)");
}

#[test]
fn slow_is_degraded_and_too_slow_is_down() {
    let s = web();
    let (w, cfg) = setup(
        "latency",
        json!([
            {"name": "slowish", "target": s.url("/slow"), "degraded_latency_ms": 300},
            {"name": "too-slow", "target": s.url("/slow"), "max_latency_ms": 300},
            {"name": "fast-enough", "target": s.url("/ok"), "degraded_latency_ms": 5000}
        ]),
    );
    let r = probe(&w, &cfg).run();
    r.code(1);
    assert_eq!(r.named("check", "slowish")["status"], "degraded");
    assert_eq!(r.named("check", "too-slow")["status"], "down");
    assert_eq!(r.named("check", "fast-enough")["status"], "up");
}

#[test]
fn a_server_that_never_answers_is_down_within_its_timeout() {
    let hole = Blackhole::start();
    let (w, cfg) = setup("hang", json!([{"name": "hang", "target": hole.url(), "timeout_seconds": 1}]));
    let t = Instant::now();
    let r = probe(&w, &cfg).run();
    let took = t.elapsed();
    r.code(1);
    assert_eq!(r.named("check", "hang")["status"], "down");
    assert!(took < crate::util::limit(4.0), "took {took:?}");
    // People read the detail: what timed out, and after how long (not `timeout: global`).
    assert_eq!(r.named("check", "hang")["detail"], "no answer within 1 s");
}

#[test]
fn checks_run_concurrently_and_come_out_in_config_order() {
    let s = web();
    let services: Vec<Value> = (0..8).map(|i| json!({"name": format!("slow-{i}"), "target": s.url("/slow")})).collect();
    let (w, cfg) = setup("concurrent", Value::Array(services));
    let t = Instant::now();
    let r = probe(&w, &cfg).run();
    let took = t.elapsed();
    r.code(0);
    let names: Vec<String> = r.kind("check").iter().map(|c| c["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, (0..8).map(|i| format!("slow-{i}")).collect::<Vec<_>>());
    assert!(took < crate::util::limit(8.0 * 0.6 / 2.0), "8 checks of 600ms took {took:?}: not concurrent");
    let serial = probe(&w, &cfg).args(["--concurrency", "1", "--only", "slow-0", "--only", "slow-1"]).run();
    assert_eq!(serial.kind("check").len(), 2);
}

#[test]
fn https_self_signed_verification_and_ca_file() {
    let s = web();
    let certs = Certs::new(90);
    let front = TlsFront::start(&certs, s.addr);
    let w = Workdir::new("https");
    let ca = w.write("ca.pem", &certs.ca_pem);
    let cfg = w.write(
        "services.json",
        pretty(&json!({"disk_check": false, "services": [
            {"name": "strict", "target": front.url("/ok"), "timeout_seconds": 5},
            {"name": "insecure", "target": front.url("/ok"), "tls_verify": false, "timeout_seconds": 5},
            {"name": "own-ca", "target": front.url("/ok"), "ca_file": ca.display().to_string(), "timeout_seconds": 5}
        ]})),
    );
    let r = w.tool("probe").args(["--config", cfg.to_str().unwrap(), "--no-metrics"]).run();
    let strict = r.named("check", "strict");
    assert_eq!(strict["status"], "down", "{r:?}");
    assert_eq!(r.named("check", "insecure")["status"], "up", "{r:?}");
    assert_eq!(r.named("check", "own-ca")["status"], "up", "{r:?}");
}

/// A self-signed certificate as `openssl req -x509` makes it (basicConstraints CA:TRUE) for
/// `san`, in `dir`: the PEM file's path, and the certificate and PKCS#8 key in DER to serve.
fn openssl_self_signed(w: &Workdir, name: &str, san: &str) -> (std::path::PathBuf, Certs) {
    let pem = w.path(&format!("{name}.pem"));
    let key = w.path(&format!("{name}.key"));
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    let (pem_s, key_s) = (pem.display().to_string(), key.display().to_string());
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &key_s,
        "-out",
        &pem_s,
        "-days",
        "30",
        "-subj",
        "/CN=pitcrew self-signed",
        "-addext",
        &format!("subjectAltName={san}"),
    ]);
    let text = String::from_utf8_lossy(&run(&["x509", "-in", &pem_s, "-noout", "-text"])).into_owned();
    assert!(text.contains("CA:TRUE"), "openssl req -x509 makes a CA certificate: {text}");
    let leaf_der = run(&["x509", "-in", &pem_s, "-outform", "DER"]);
    let key_der = run(&["pkcs8", "-topk8", "-nocrypt", "-in", &key_s, "-outform", "DER"]);
    let ca_pem = std::fs::read_to_string(&pem).unwrap();
    (pem, Certs { ca_pem, leaf_der, key_der })
}

#[test]
fn https_ca_file_accepts_an_openssl_self_signed_certificate_as_curl_does() {
    let s = web();
    let w = Workdir::new("https-self-signed");
    let (own, own_certs) = openssl_self_signed(&w, "own", "DNS:localhost,IP:127.0.0.1");
    let (other, _) = openssl_self_signed(&w, "other", "DNS:localhost,IP:127.0.0.1");
    let (elsewhere, elsewhere_certs) = openssl_self_signed(&w, "elsewhere", "DNS:elsewhere.example");
    let front = TlsFront::start(&own_certs, s.addr);
    let front_elsewhere = TlsFront::start(&elsewhere_certs, s.addr);
    // An expired self-signed CA certificate (rcgen): its own ca_file does not make it valid.
    let expired_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(60);
    params.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let expired_cert = params.self_signed(&expired_key).unwrap();
    let expired_pem = w.write("expired.pem", expired_cert.pem());
    let front_expired = TlsFront::start(
        &Certs { ca_pem: String::new(), leaf_der: expired_cert.der().to_vec(), key_der: expired_key.serialize_der() },
        s.addr,
    );
    let localhost = format!("https://localhost:{}/ok", front.addr.port());
    let svc = |name: &str, url: &str, ca: &std::path::Path| json!({"name": name, "target": url, "ca_file": ca.display().to_string(), "timeout_seconds": 5});
    let cfg = w.write(
        "services.json",
        pretty(&json!({"disk_check": false, "services": [
            svc("by-ip", &front.url("/ok"), &own),
            svc("by-name", &localhost, &own),
            svc("other-cert", &front.url("/ok"), &other),
            svc("wrong-name", &format!("https://127.0.0.1:{}/ok", front_elsewhere.addr.port()), &elsewhere),
            svc("expired", &front_expired.url("/ok"), &expired_pem),
            {"name": "no-ca-file", "target": front.url("/ok"), "timeout_seconds": 5}
        ]})),
    );
    // curl is the reference: it takes the certificate its --cacert names.
    let curl = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&own)
        .arg(front.url("/ok"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "200", "curl: {}", String::from_utf8_lossy(&curl.stderr));
    let r = w.tool("probe").args(["--config", cfg.to_str().unwrap(), "--no-metrics"]).run();
    r.code(1);
    for name in ["by-ip", "by-name"] {
        let c = r.named("check", name);
        assert_eq!((c["status"].as_str(), c["http_status"].as_u64()), (Some("up"), Some(200)), "{c}");
    }
    // Anything else is still refused: another certificate, a name the certificate does not
    // cover, one out of its validity, and no ca_file at all.
    for (name, why) in [
        ("other-cert", "invalid peer certificate"),
        ("wrong-name", "not valid for name \"127.0.0.1\""),
        ("expired", "invalid peer certificate: expired"),
        ("no-ca-file", "invalid peer certificate"),
    ] {
        let c = r.named("check", name);
        assert_eq!(c["status"], "down", "{c}");
        assert!(c["detail"].as_str().unwrap().to_lowercase().contains(why), "{name}: {c}");
    }
}

#[test]
fn tls_check_counts_days_to_expiry() {
    let s = web();
    let (c90, c5, cold) = (Certs::new(90), Certs::new(5), Certs::new(-3));
    let (f90, f5, fold) = (TlsFront::start(&c90, s.addr), TlsFront::start(&c5, s.addr), TlsFront::start(&cold, s.addr));
    let (w, cfg) = setup(
        "tls",
        json!([
            {"name": "fresh", "type": "tls", "target": format!("127.0.0.1:{}", f90.addr.port())},
            {"name": "soon", "type": "tls", "host": "127.0.0.1", "port": f5.addr.port(), "warning_days": 14},
            {"name": "expired", "type": "tls", "target": format!("https://localhost:{}/", fold.addr.port())},
            {"name": "nobody", "type": "tls", "target": format!("127.0.0.1:{}", closed_port())}
        ]),
    );
    let r = probe(&w, &cfg).run();
    r.code(1);
    let fresh = r.named("check", "fresh");
    assert_eq!(fresh["status"], "up", "{r:?}");
    assert_eq!(fresh["days_left"], 90);
    let soon = r.named("check", "soon");
    assert_eq!((soon["status"].as_str(), soon["days_left"].as_i64()), (Some("degraded"), Some(5)));
    let expired = r.named("check", "expired");
    assert_eq!(expired["status"], "down");
    assert!(expired["detail"].as_str().unwrap().contains("expired"));
    assert_eq!(r.named("check", "nobody")["status"], "down");
    // With --now two months on, the fresh certificate is close to expiry.
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(80);
    let stamp = later.format(&time::format_description::well_known::Rfc3339).unwrap();
    let r = probe(&w, &cfg).args(["--only", "fresh", "--now", &stamp]).run();
    assert_eq!(r.named("check", "fresh")["status"], "degraded");
}

#[test]
fn port_checks_open_and_closed() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open = l.local_addr().unwrap().port();
    let closed = closed_port();
    let (w, cfg) = setup(
        "port",
        json!([
            {"name": "open", "type": "port", "port": open},
            {"name": "closed", "type": "port", "host": "127.0.0.1", "port": closed}
        ]),
    );
    let r = probe(&w, &cfg).run();
    r.code(1);
    assert_eq!(r.named("check", "open")["detail"], format!("port {open} open"));
    let c = r.named("check", "closed");
    assert_eq!(c["status"], "down");
    assert!(c["detail"].as_str().unwrap().starts_with(&format!("port {closed}: ")));
}

#[test]
fn process_checks_see_a_real_process_come_and_go() {
    // A name no other process on the machine has: argv[0] set by bash's exec -a.
    let marker = format!("pitcrew-proc-marker-{}", std::process::id());
    let w = Workdir::new("process");
    let cfg = w.write(
        "services.json",
        pretty(&json!({"disk_check": false, "services": [
            {"name": "worker", "type": "process", "process_name": format!("^{marker} 6[0]$")}
        ]})),
    );
    let mut child =
        std::process::Command::new("bash").arg("-c").arg(format!("exec -a {marker} sleep 60")).spawn().unwrap();
    assert!(crate::util::wait_until(5.0, || std::fs::read_to_string(format!("/proc/{}/cmdline", child.id()))
        .is_ok_and(|c| c.starts_with(&marker))));
    let run = || w.tool("probe").args(["--config", cfg.to_str().unwrap(), "--no-metrics"]).run();
    let up = run();
    let rec = up.named("check", "worker");
    assert_eq!(rec["status"], "up", "{up:?}");
    assert!(rec["pids"].as_array().unwrap().contains(&json!(child.id())));
    child.kill().unwrap();
    child.wait().unwrap();
    let down = run();
    down.code(1);
    let pids_after: Vec<u64> = down.named("check", "worker")["pids"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    assert!(!pids_after.contains(&u64::from(child.id())));
}

#[test]
fn the_probe_never_matches_itself() {
    // The pattern appears in probe's own command line (via --only), and nowhere else.
    let name = format!("self-{}-zz9q", std::process::id());
    let w = Workdir::new("self");
    let cfg = w.write(
        "services.json",
        pretty(&json!({"disk_check": false, "services": [
            {"name": name, "type": "process", "process_name": name}
        ]})),
    );
    let r = w.tool("probe").args(["--config", cfg.to_str().unwrap(), "--no-metrics", "--only", &name]).run();
    assert_eq!(r.named("check", &name)["status"], "down", "{r:?}");
}

#[test]
fn disk_check_on_the_real_disk() {
    let (w, cfg) = setup(
        "disk",
        json!([
            {"name": "roomy", "type": "disk", "path": "/", "warning_gb": 0},
            {"name": "greedy", "type": "disk", "path": "/", "warning_gb": 1.0e9}
        ]),
    );
    let r = probe(&w, &cfg).run();
    r.code(1);
    let roomy = r.named("check", "roomy");
    assert_eq!(roomy["status"], "up");
    assert!(roomy["free_gb"].as_f64().unwrap() > 0.0);
    assert!(roomy["detail"].as_str().unwrap().ends_with("GB free"));
    assert_eq!(r.named("check", "greedy")["status"], "down");
}

#[test]
fn the_kit_disk_check_is_added_unless_disabled() {
    let w = Workdir::new("kit-disk");
    let cfg = w.write("services.json", r#"{"services": [], "disk_warning_gb": 0}"#);
    let r = w.tool("probe").args(["--config", cfg.to_str().unwrap(), "--no-metrics"]).run();
    r.code(0);
    assert_eq!(r.named("check", "Disk Space")["type"], "disk");
}

#[test]
fn nagios_plugin_exit_codes_and_perfdata() {
    let w = Workdir::new("plugin");
    let plugin = w.write(
        "check_fake",
        "#!/bin/sh\ncase \"$1\" in\n  ok) echo 'FAKE OK - all fine | load=0.5;1;2;0 time=12ms'; exit 0 ;;\n  warn) echo 'FAKE WARNING - getting hot|temp=71C;70;90'; echo 'sensor 2 fine'; exit 1 ;;\n  crit) echo 'FAKE CRITICAL - on fire'; exit 2 ;;\n  unknown) echo 'FAKE UNKNOWN - no idea' >&2; exit 3 ;;\n  hang) sleep 30 ;;\nesac\n",
    );
    std::process::Command::new("chmod").arg("+x").arg(&plugin).status().unwrap();
    let p = plugin.display().to_string();
    let (w2, cfg) = setup(
        "plugin-cfg",
        json!([
            {"name": "ok", "type": "command", "command": format!("{p} ok")},
            {"name": "warn", "type": "command", "command": [p.clone(), "warn"]},
            {"name": "crit", "type": "command", "command": format!("{p} crit")},
            {"name": "unknown", "type": "command", "command": format!("{p} unknown")},
            {"name": "hang", "type": "command", "command": format!("{p} hang"), "timeout_seconds": 1}
        ]),
    );
    let r = probe(&w2, &cfg).run();
    r.code(1);
    let ok = r.named("check", "ok");
    assert_eq!(
        (ok["status"].as_str(), ok["detail"].as_str(), ok["exit_code"].as_i64()),
        (Some("up"), Some("FAKE OK - all fine"), Some(0))
    );
    assert_eq!(
        ok["perfdata"],
        json!([{"label": "load", "value": 0.5, "warn": "1", "crit": "2", "min": 0.0}, {"label": "time", "value": 12.0, "uom": "ms"}])
    );
    let warn = r.named("check", "warn");
    assert_eq!(warn["status"], "degraded");
    assert_eq!(warn["perfdata"][0]["uom"], "C");
    assert_eq!(warn["long_output"], "sensor 2 fine");
    assert_eq!(r.named("check", "crit")["status"], "down");
    let unknown = r.named("check", "unknown");
    assert_eq!(
        (unknown["status"].as_str(), unknown["detail"].as_str()),
        (Some("down"), Some("FAKE UNKNOWN - no idea"))
    );
    let hang = r.named("check", "hang");
    assert_eq!(hang["status"], "down");
    assert!(hang["detail"].as_str().unwrap().contains("timed out"), "{hang}");
}

#[test]
fn heartbeat_file_age() {
    let w = Workdir::new("heartbeat");
    let beat = w.write("beat", "");
    let cfg = w.write(
        "services.json",
        pretty(&json!({"disk_check": false, "services": [
            {"name": "beat", "type": "heartbeat", "path": beat.display().to_string(), "max_age_seconds": 600},
            {"name": "never", "type": "heartbeat", "path": w.path("missing").display().to_string()}
        ]})),
    );
    let r = w.tool("probe").args(["--config", cfg.to_str().unwrap(), "--no-metrics"]).run();
    assert_eq!(r.named("check", "beat")["status"], "up");
    assert_eq!(r.named("check", "never")["status"], "down");
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(2);
    let stamp = later.format(&time::format_description::well_known::Rfc3339).unwrap();
    let r = w
        .tool("probe")
        .args(["--config", cfg.to_str().unwrap(), "--no-metrics", "--now", &stamp, "--only", "beat"])
        .run();
    let beat = r.named("check", "beat");
    assert_eq!(beat["status"], "down");
    assert!(beat["age_s"].as_u64().unwrap() >= 7199);
}

#[test]
fn children_of_a_down_parent_are_suppressed() {
    let s = web();
    let dead = closed_port();
    let (w, cfg) = setup(
        "depends",
        json!([
            {"name": "gateway", "type": "port", "port": dead},
            {"name": "api", "target": format!("http://127.0.0.1:{dead}/"), "depends_on": ["gateway"]},
            {"name": "worker", "target": format!("http://127.0.0.1:{dead}/x"), "depends_on": "api"},
            {"name": "site", "target": s.url("/ok"), "depends_on": ["gateway"]}
        ]),
    );
    let r = probe(&w, &cfg).run();
    r.code(1);
    assert!(r.named("check", "gateway").get("suppressed_by").is_none());
    assert_eq!(r.named("check", "api")["suppressed_by"], "gateway");
    assert_eq!(r.named("check", "worker")["suppressed_by"], "gateway");
    assert!(r.named("check", "site").get("suppressed_by").is_none());
}

#[test]
fn text_format_is_the_kits() {
    let s = web();
    let (w, cfg) =
        setup("text", json!([{"name": "ok", "target": s.url("/ok")}, {"name": "fail", "target": s.url("/fail")}]));
    let r = probe(&w, &cfg).args(["--format", "text"]).run();
    r.code(1);
    let lines: Vec<&str> = r.stdout.lines().collect();
    // The latency is shown as the kit shows it: "(12ms)", and nothing when it rounds to 0 ms
    // (a loopback answer can).
    let latency = lines[0].strip_prefix("[OK] ok - HTTP 200").unwrap_or_else(|| panic!("{r:?}"));
    assert!(
        latency.is_empty()
            || latency
                .strip_prefix(" (")
                .and_then(|l| l.strip_suffix("ms)"))
                .is_some_and(|n| n.parse::<u64>().is_ok_and(|n| n > 0)),
        "{r:?}"
    );
    assert!(lines[1].starts_with("[FAIL] fail - HTTP 500 (expected 200)"));
    assert_eq!(lines.last(), Some(&"1 failure(s) detected."));
}

#[test]
fn metrics_files_get_whole_lines_even_from_concurrent_probes() {
    let s = web();
    let services: Vec<Value> = (0..40)
        .map(|i| json!({"name": format!("svc-{i}"), "target": s.url("/ok"), "detail_pad": "x".repeat(3000)}))
        .collect();
    let (w, cfg) = setup("metrics", Value::Array(services));
    let metrics = w.path("metrics");
    let spawn = || {
        w.tool("probe")
            .args(["--config", &cfg, "--metrics-dir", metrics.to_str().unwrap(), "--now", "2026-11-23T10:30:00Z"])
            .spawn()
    };
    let kids: Vec<_> = (0..4).map(|_| spawn()).collect();
    for k in kids {
        let out = k.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let text = std::fs::read_to_string(metrics.join("2026-11-23.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 160);
    for l in lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line ({e}): {l:.80}"));
        // The Agent Ops Kit's uptime calculator reads exactly these fields.
        assert!(
            v["name"].is_string() && v["status"].is_string() && v["latency_ms"].is_u64() && v["timestamp"].is_string()
        );
    }
}

#[test]
fn invalid_services_json_is_exit_2_naming_the_place() {
    let w = Workdir::new("badjson");
    let cfg = w.write("services.json", "{\n  \"services\": [\n    {\"name\": \"a\",}\n  ]\n}\n");
    let r = w.tool("probe").args(["--config", cfg.to_str().unwrap()]).run();
    r.code(2);
    r.stderr_has(&format!("probe: {}:3:18: trailing comma", cfg.display()));
    assert!(r.stdout.is_empty());
}

#[test]
fn one_bad_service_is_a_finding_and_the_rest_still_run() {
    let s = web();
    let (w, cfg) = setup(
        "badsvc",
        json!([
            {"name": "good", "target": s.url("/ok")},
            {"name": "bad", "type": "port"},
            {"name": "weird", "type": "carrier-pigeon"}
        ]),
    );
    let r = probe(&w, &cfg).run();
    r.code(1);
    r.stderr_has("service 'bad': port: missing (required)");
    r.stderr_has("service 'weird': type: unknown check type 'carrier-pigeon'");
    let findings = r.kind("finding");
    assert_eq!(findings.len(), 2);
    assert_eq!(findings[0]["subject"], "bad");
    assert_eq!(findings[0]["level"], "error");
    assert_eq!(r.named("check", "good")["status"], "up");
}

#[test]
fn numeric_strings_null_services_and_bad_regexes_in_services_json() {
    let s = web();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (w, cfg) = setup(
        "numeric-strings",
        json!([
            {"name": "web", "target": s.url("/ok"), "expected_status": "200", "timeout_seconds": "5"},
            {"name": "db", "type": "port", "port": port.to_string()},
            {"name": "worker", "type": "process", "process_name": "worker-[("}
        ]),
    );
    let r = probe(&w, &cfg).run();
    r.code(1);
    // Numeric strings are numbers, in expected_status as in port.
    assert_eq!(r.named("check", "web")["status"], "up", "{r:?}");
    assert_eq!(r.named("check", "db")["status"], "up", "{r:?}");
    // A pattern that is no regular expression is a finding with its place, not a substring.
    let findings = r.kind("finding");
    assert_eq!(findings.len(), 1, "{r:?}");
    assert_eq!(
        (findings[0]["subject"].as_str(), findings[0]["problem"].as_str()),
        (Some("worker"), Some("invalid_service"))
    );
    let detail = findings[0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!("{cfg}:"))
            && detail.contains(": service 'worker': process_name: not a valid regular expression: "),
        "{detail}"
    );
    assert!(r.kind("check").iter().all(|c| c["name"] != "worker"), "{r:?}");
    // A string that is not a number is named, with what was found.
    w.write(
        "services.json",
        pretty(&json!({"disk_check": false, "services": [
        {"name": "web", "target": s.url("/ok"), "expected_status": "OK"}]})),
    );
    let r = probe(&w, &cfg).run();
    r.code(1).stderr_has("service 'web': expected_status: expected an HTTP status code (100-599), found \"OK\"");
    // "services": null is a configuration error, not a run that checks nothing.
    w.write("services.json", r#"{"services": null}"#);
    let r = probe(&w, &cfg).run();
    r.code(2).stderr_has(&format!("{cfg}: services: expected an array of service objects, found null"));
    assert!(r.stdout.is_empty(), "{r:?}");
}

#[test]
fn services_from_stdin_and_only() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let w = Workdir::new("stdin");
    let lines = format!(
        "{{\"name\":\"a\",\"type\":\"port\",\"port\":{port}}}\n{{\"name\":\"b\",\"type\":\"port\",\"port\":{port}}}\n"
    );
    let r = w.tool("probe").args(["--services", "-", "--no-metrics", "--only", "b"]).stdin(lines).run();
    r.code(0);
    let checks = r.kind("check");
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0]["name"], "b");
    let r = w.tool("probe").args(["--services", "-", "--no-metrics", "--only", "zzz"]).stdin("").run();
    r.code(2);
    r.stderr_has("no service named 'zzz'");
}

#[test]
fn metrics_go_to_home_by_default() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let w = Workdir::new("home-metrics");
    w.write(
        "home/config/services.json",
        pretty(&json!({"disk_check": false, "services": [{"name": "p", "type": "port", "port": port}]})),
    );
    w.tool("probe").args(["--now", "2026-01-02T03:04:05Z"]).run().code(0);
    let text = w.read("home/metrics/2026-01-02.jsonl");
    let v: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!((v["name"].as_str(), v["timestamp"].as_str()), (Some("p"), Some("2026-01-02T03:04:05.000Z")));
}

#[test]
fn a_missing_config_is_a_clear_error() {
    let w = Workdir::new("noconfig");
    let r = w.tool("probe").run();
    r.code(2);
    r.stderr_has("probe: cannot read config");
    r.stderr_has("services.json");
}

#[test]
#[ignore = "slow: 2,000 loopback services at once; scripts/test.sh runs it"]
fn two_thousand_services_at_once_and_not_one_false_timeout() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    // The benchmark's fixture: one thread serving every listener, so it is never the reason a
    // check is late. A tenth of the services are urls to listeners that never answer.
    let mut fixture = Command::new(env!("CARGO_BIN_EXE_pitcrew-bench-fixture"))
        .args(["--http", "4", "--hole", "2", "--tcp", "4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(fixture.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let ports: Value = serde_json::from_str(&line).unwrap();
    let port = |kind: &str, i: usize| {
        let list = ports[kind].as_array().unwrap();
        list[i % list.len()].as_u64().unwrap()
    };
    let n = 2000;
    let lines: String = (0..n)
        .map(|i| {
            let svc = match i % 10 {
                0 => json!({"name": format!("hang-{i}"), "target": format!("http://127.0.0.1:{}/", port("hole", i))}),
                1..=5 => {
                    json!({"name": format!("http-{i}"), "target": format!("http://127.0.0.1:{}/", port("http", i))})
                }
                6..=8 => json!({"name": format!("tcp-{i}"), "type": "port", "port": port("tcp", i)}),
                _ => json!({"name": format!("proc-{i}"), "type": "process", "process_name": "pitcrew-bench-fixture"}),
            };
            let mut svc = svc;
            svc["timeout_seconds"] = json!(2);
            format!("{svc}\n")
        })
        .collect();
    let w = Workdir::new("two-thousand");
    let t = Instant::now();
    let r = w.tool("probe").args(["--services", "-", "--no-metrics", "--concurrency", "2000"]).stdin(lines).run();
    let took = t.elapsed();
    drop(fixture.stdin.take());
    let _ = fixture.wait();
    r.code(1);
    let checks = r.kind("check");
    assert_eq!(checks.len(), n);
    let mut late = Vec::new();
    for c in &checks {
        let name = c["name"].as_str().unwrap();
        if name.starts_with("hang-") {
            assert_eq!(
                (c["status"].as_str(), c["detail"].as_str()),
                (Some("down"), Some("no answer within 2 s")),
                "{c}"
            );
        } else if c["status"] != "up" {
            late.push(c.to_string());
        }
    }
    assert!(late.is_empty(), "{} healthy services reported down, first: {}", late.len(), late[0]);
    assert!(took < crate::util::limit(1.5 * 2.0), "2,000 services with a 2 s timeout took {took:?}");
}
