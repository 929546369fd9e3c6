//! The pipe contract, for every tool: empty input, a malformed line among good ones, a reader
//! that goes away early, and --strict.

use serde_json::json;

use std::path::Path;

use crate::util::{Workdir, json as pretty, tools};

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

#[test]
fn every_tool_has_help_and_version() {
    for tool in &tools() {
        let w = Workdir::new("help");
        let r = w.tool(tool).arg("--help").run();
        r.code(0);
        r.stdout_has("Examples:");
        w.tool(tool).arg("--version").run().code(0).stdout_has(tool);
        w.tool(tool).arg("--no-such-flag").run().code(2);
    }
    let _ = pretty(&json!({}));
}

/// The hidden `--generate KIND` renders the command the tool's descriptor carries: its own
/// name, the common options and its own, for every kind; an unknown kind is a usage error.
#[test]
fn every_tool_generates_its_man_page_and_completions() {
    for tool in &tools() {
        let w = Workdir::new("generate");
        let man = w.tool(tool).args(["--generate", "man"]).run();
        man.code(0).stdout_has(&format!(".TH {tool} 1")).stdout_has("\\-\\-home");
        for (kind, needle) in [
            ("complete-bash", format!("complete -F _{tool}")),
            ("complete-zsh", format!("#compdef {tool}")),
            ("complete-fish", format!("complete -c {tool}")),
            ("complete-elvish", format!("edit:completion:arg-completer[{tool}]")),
        ] {
            w.tool(tool).args(["--generate", kind]).run().code(0).stdout_has(&needle).stdout_has("line-buffered");
        }
        let bad = w.tool(tool).args(["--generate", "complete-cobol"]).run();
        bad.code(2).stderr_has(&format!("{tool}: --generate: unknown kind 'complete-cobol'"));
    }
}

/// The tools are the directories under tools/; Cargo.toml builds one binary of each, and no
/// other binary but the helpers of the tests and benchmarks (`pitcrew-*`, never installed).
#[test]
fn the_tools_are_the_binaries_cargo_builds() {
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let mut bins: Vec<String> = manifest
        .split("[[bin]]")
        .skip(1)
        .filter_map(|b| {
            b.lines().find_map(|l| l.trim().strip_prefix("name = ")).map(|n| n.trim_matches('"').to_string())
        })
        .filter(|n| !n.starts_with("pitcrew-"))
        .collect();
    bins.sort();
    assert_eq!(bins, tools());
    for tool in &tools() {
        assert!(manifest.contains(&format!("path = \"tools/{tool}/main.rs\"")), "{tool}");
    }
}
