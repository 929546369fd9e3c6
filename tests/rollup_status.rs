//! The status page's notes, its JSON twin and the badges, through the real `rollup` binary:
//! `rollup note add|list|rm` (concurrent adds lose nothing, a corrupt file is never replaced),
//! notes on the page by day and service, `status.json` beside the page and its schema, and the
//! SVG badges.

use serde_json::Value;

use crate::util::Workdir;

const NOW: &str = "2026-11-23T18:00:00Z";

/// Three days of `api` (down at noon on the 22nd) and `web` (down since 17:00 today), four
/// checks a day, and nothing between 00:00 and 17:00 on the 21st for either.
fn metrics(w: &Workdir) {
    for day in ["2026-11-21", "2026-11-22", "2026-11-23"] {
        let mut out = String::new();
        for hour in ["00", "06", "12", "17"] {
            if day == "2026-11-21" && (hour == "06" || hour == "12") {
                continue;
            }
            let api = if day == "2026-11-22" && hour == "12" { "down" } else { "up" };
            let web = if day == "2026-11-23" && hour == "17" { "down" } else { "up" };
            for (name, status) in [("api", api), ("web <edge>", web)] {
                out.push_str(&format!(
                    "{{\"name\":\"{name}\",\"status\":\"{status}\",\"latency_ms\":20,\"timestamp\":\"{day}T{hour}:00:00Z\"}}\n"
                ));
            }
        }
        w.write(&format!("home/metrics/{day}.jsonl"), out);
    }
}

fn note(w: &Workdir, args: &[&str]) -> crate::util::Run {
    w.tool("rollup").args(["note"]).args(args).args(["--now", NOW]).run()
}

#[test]
fn notes_are_added_listed_and_removed() {
    let w = Workdir::new("rollup-notes");
    let r = note(&w, &["add", "api", "Database failover", "--at", "2026-11-22T12:10:00Z"]);
    r.code(0);
    let rec = &r.kind("note")[0];
    assert_eq!(rec["id"], 1);
    assert_eq!(rec["at"], "2026-11-22T12:10:00.000Z");
    note(&w, &["add", "web <edge>", "Certificate renewed\nno downtime", "--at", "2026-11-21"]).code(0);
    let list = note(&w, &["list"]);
    let ids: Vec<u64> = list.code(0).kind("note").iter().map(|n| n["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [2, 1], "oldest first");
    note(&w, &["list", "--format", "text"]).code(0).stdout_has("#1 2026-11-22T12:10:00.000Z api: Database failover");
    note(&w, &["rm", "2"]).code(0);
    note(&w, &["rm", "2"]).code(2).stderr_has("no note with id 2");
    assert_eq!(note(&w, &["list"]).kind("note").len(), 1);
    note(&w, &["add", "api", "\u{1b}]0;pwned\u{7}"]).code(2).stderr_has("control character");
    note(&w, &["add", "api", &"x".repeat(1001)]).code(2).stderr_has("1001 characters; the most is 1000");
    note(&w, &["add", "api", "x", "--at", "yesterday"]).code(2).stderr_has("'yesterday' is neither");
    assert_eq!(note(&w, &["add", "api", "again"]).kind("note")[0]["id"], 3, "ids are never reused");
    note(&w, &["list", "--format", "csv"]).code(2).stderr_has("note write ndjson or text");
}

#[test]
fn concurrent_note_adds_lose_nothing() {
    let w = Workdir::new("rollup-notes-race");
    let children: Vec<_> = (0..8)
        .map(|i| w.tool("rollup").args(["note", "add", "api", &format!("note {i}"), "--now", NOW]).spawn())
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let mut ids: Vec<u64> = note(&w, &["list"]).kind("note").iter().map(|n| n["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=8).collect::<Vec<_>>());
}

#[test]
fn a_corrupt_notes_file_is_kept_and_the_page_is_drawn_without_notes() {
    let w = Workdir::new("rollup-notes-corrupt");
    metrics(&w);
    let file = w.write("home/state/status-notes.json", "{\"notes\": [");
    note(&w, &["add", "api", "x"]).code(2).stderr_has("status-notes.json");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "{\"notes\": [");
    let r = w.tool("rollup").args(["--format", "html", "--now", NOW]).run();
    r.code(0).stderr_has("the page is drawn without notes").stdout_has("Partial outage: 1 of 2 services down");
}

#[test]
fn the_page_shows_notes_by_day_and_service_and_status_json_lies_beside_it() {
    let w = Workdir::new("rollup-status-json");
    metrics(&w);
    note(&w, &["add", "api", "Failover <b>db</b>", "--at", "2026-11-22T12:10:00Z"]).code(0);
    note(&w, &["add", "web <edge>", "Outside the window", "--at", "2026-01-01"]).code(0);
    let page = w.path("www/index.html");
    let r = w.tool("rollup").args(["--format", "html", "--now", NOW, "--output"]).arg(&page).run();
    r.code(0);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<span class=\"bad noted\" title=\"2026-11-22: 75.00% uptime"), "the day's cell is marked");
    assert!(html.contains("Note (2026-11-22 12:10 UTC): Failover &lt;b&gt;db&lt;/b&gt;"));
    assert!(html.contains("<h2>Notes</h2>") && !html.contains("Outside the window"));
    assert!(!html.contains("<b>db</b>"));

    let twin: Value = serde_json::from_str(&w.read("www/status.json")).unwrap();
    assert_eq!(twin["schema"], "pitcrew-status/1");
    assert_eq!(twin["generated_at"], "2026-11-23T18:00:00.000Z");
    assert_eq!(twin["window"]["days"], 90);
    assert_eq!(twin["window"]["from"], "2026-08-26");
    assert_eq!(twin["state"], "partial_outage");
    let services = twin["services"].as_array().unwrap();
    assert_eq!(services.len(), 2);
    let api = &services[0];
    assert_eq!(api["name"], "api");
    assert_eq!(api["state"], "up");
    let days = api["days"].as_array().unwrap();
    assert_eq!(days.len(), 90);
    assert_eq!(days[0]["state"], "none");
    let d22 = &days[88];
    assert_eq!((d22["date"].as_str(), d22["state"].as_str()), (Some("2026-11-22"), Some("bad")));
    assert_eq!((d22["checks"].as_u64(), d22["down"].as_u64()), (Some(4), Some(1)));
    assert_eq!(d22["uptime_percent"], 75.0);
    assert!(days[87]["unknown_s"].as_u64().unwrap() > 0, "the hole on the 21st: {}", days[87]);
    let web = &services[1];
    assert_eq!((web["name"].as_str(), web["state"].as_str()), (Some("web <edge>"), Some("down")));
    let incidents = twin["incidents"].as_array().unwrap();
    assert_eq!(incidents[0]["name"], "web <edge>");
    assert_eq!(incidents[0]["ongoing"], true);
    assert_eq!(incidents[1]["name"], "api");
    let notes = twin["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "only the window's notes");
    assert_eq!(notes[0]["text"], "Failover <b>db</b>");
    assert_eq!(notes[0]["date"], "2026-11-22");

    // The twin alone, on stdout: the same document.
    let alone = w.tool("rollup").args(["--format", "status-json", "--now", NOW]).run();
    let alone: Value = serde_json::from_str(&alone.code(0).stdout).unwrap();
    assert_eq!(alone, twin);

    // A page named status.json would be overwritten by its twin.
    w.tool("rollup")
        .args(["--format", "html", "--now", NOW, "--output"])
        .arg(w.path("www/status.json"))
        .run()
        .code(2)
        .stderr_has("give the page another name");
}

fn svg(r: &crate::util::Run) -> &str {
    let s = r.stdout.as_str();
    assert!(s.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\"") && s.ends_with("</svg>\n"), "{s}");
    s
}

#[test]
fn badges_show_the_uptime_and_the_latest_status() {
    let w = Workdir::new("rollup-badges");
    metrics(&w);
    let tool = |args: &[&str]| w.tool("rollup").args(["--now", NOW, "--days", "3"]).args(args);
    let badge = |args: &[&str]| tool(args).run();
    // api: 1 down of 10 checks = 90%: orange.
    let r = badge(&["--format", "badge", "--only", "api"]);
    let s = svg(r.code(0));
    assert!(s.contains("<title>uptime: 90%</title>") && s.contains("fill=\"#fe7d37\""), "{s}");
    let r = w.tool("rollup").args(["--now", NOW, "--days", "1", "--format", "badge", "--only", "api"]).run();
    let s = svg(r.code(0));
    assert!(s.contains("<title>uptime: 100%</title>") && s.contains("fill=\"#4c1\""), "{s}");
    let r = badge(&["--format", "badge", "--only", "api", "--label", "api 3d"]);
    assert!(svg(r.code(0)).contains("<title>api 3d: 90%</title>"));

    let r = badge(&["--format", "badge-status", "--only", "web <edge>"]);
    let s = svg(r.code(0));
    assert!(s.contains("<title>web &lt;edge&gt;: down</title>") && s.contains("fill=\"#e05d44\""), "{s}");
    let r = badge(&["--format", "badge-status", "--only", "api"]);
    assert!(svg(r.code(0)).contains("<title>api: up</title>"));
    let r = badge(&["--format", "badge-status", "--only", "nothing"]);
    assert!(svg(r.code(0).stderr_has("no check of \"nothing\"")).contains("<title>nothing: unknown</title>"));
    let r = badge(&["--format", "badge", "--only", "nothing"]);
    assert!(svg(r.code(0)).contains("<title>uptime: no data</title>"));

    let out = w.path("badges/api.svg");
    tool(&["--format", "badge", "--only", "api", "--output"]).arg(&out).run().code(0);
    assert!(std::fs::read_to_string(&out).unwrap().contains("90%"));

    badge(&["--format", "badge"]).code(2).stderr_has("need --only NAME");
    badge(&["--only", "api"]).code(2).stderr_has("--only: used with --format badge");
}
