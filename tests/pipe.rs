//! The pipe contract, for every tool: empty input, a malformed line among good ones, a reader
//! that goes away early, and --strict.

use serde_json::json;

use crate::util::{Workdir, json as pretty};

fn port_line(name: &str, port: u16) -> String {
    format!("{}\n", json!({"name": name, "type": "port", "port": port}))
}

#[test]
fn probe_empty_input_is_empty_output() {
    let w = Workdir::new("pipe-probe-empty");
    let r = w.tool("probe").args(["--services", "-", "--no-metrics"]).stdin("").run();
    r.code(0);
    assert!(r.stdout.is_empty() && r.stderr.is_empty(), "{r:?}");
}

#[test]
fn probe_malformed_line_is_named_and_skipped() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let w = Workdir::new("pipe-probe-bad");
    let input = format!("{}{{\"name\": oops}}\n\n{}", port_line("a", port), port_line("b", port));
    let r = w.tool("probe").args(["--services", "-", "--no-metrics"]).stdin(&input).run();
    r.code(3);
    r.stderr_has("probe: stdin:2: expected value at column 10");
    assert_eq!(r.kind("check").len(), 2);
    let strict = w.tool("probe").args(["--services", "-", "--no-metrics", "--strict"]).stdin(&input).run();
    strict.code(2);
    strict.stderr_has("probe: stdin:2: expected value at column 10");
}

#[test]
fn probe_stdout_closed_early_is_silent_success() {
    let w = Workdir::new("pipe-probe-head");
    let input: String = (0..3000)
        .map(|i| {
            format!("{}\n", json!({"name": format!("svc-{i:04}-{}", "x".repeat(60)), "type": "disk", "warning_gb": 0}))
        })
        .collect();
    let first = w.tool("probe").args(["--services", "-", "--no-metrics"]).first_line_then_close(input);
    assert!(first.contains("\"kind\":\"check\""), "{first}");
}

/// The tools, for the contract tests every one of them must pass.
const TOOLS: &[&str] = &["probe", "recover", "notify", "rollup", "board", "tickmon", "cellscan"];

#[test]
fn every_tool_has_help_and_version() {
    for &tool in TOOLS {
        let w = Workdir::new("help");
        let r = w.tool(tool).arg("--help").run();
        r.code(0);
        r.stdout_has("Examples:");
        w.tool(tool).arg("--version").run().code(0).stdout_has(tool);
        w.tool(tool).arg("--no-such-flag").run().code(2);
    }
    let _ = pretty(&json!({}));
}
