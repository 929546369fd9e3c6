//! The fuzz targets' bodies: one function per parser that takes outside input.
//!
//! Each `fuzz_targets/<name>.rs` calls the function of the same name; `tests/fuzz_corpus.rs`
//! in the workspace includes this file and runs every committed corpus input through the same
//! functions, so CI replays the corpus without cargo-fuzz. A function panics only when an
//! invariant breaks (a parser panicked, or something pitcrew wrote cannot be read back).

use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use pitcrew::board::ingest::Rules;
use pitcrew::board::model::Board;
use pitcrew::cellscan::model::{self, FileCtx};
use pitcrew::cellscan::scan::{self, Cell, ScanCtx};
use pitcrew::check::plugin;
use pitcrew::clock::{self, Clock};
use pitcrew::config::{self, CheckSpec, Config, HeartbeatSpec};
use pitcrew::entry::Diag;
use pitcrew::ndjson::{self, Line, LineReader, ReadOpts};
use pitcrew::notify::alert::Alert;
use pitcrew::notify::outbox::{self, Queued};
use pitcrew::notify::render::{self, utf16_len};
use pitcrew::notify::rules;
use pitcrew::notify::silence::{Matcher, Silences};
use pitcrew::notify::state::{self, Input, Policy, Rates, State};
use pitcrew::record::{self, Check, Finding, Kind, Recovery};
use pitcrew::restart::{Decision, Entry, Policy as RestartPolicy};
use pitcrew::rollup::READ_BLOCK;
use pitcrew::rollup::fast::{self, Fields};
use pitcrew::rollup::scan::{Origin, ScanOpts, Scanner, slow_parse, ts_millis};
use pitcrew::tickmon::beats::{self, Event, Op, Snapshot};
use pitcrew::tickmon::registry::Registry;
use pitcrew::tickmon::serve::{self, Route};
use pitcrew::tickmon::tick::{self, Month};
use serde_json::{Map, Value};

/// A target: a name and the function that takes one input.
pub type Target = (&'static str, fn(&[u8]));

/// Every target by name, for the corpus replay.
pub const TARGETS: &[Target] = &[
    ("ndjson_lines", ndjson_lines),
    ("records", records),
    ("services_json", services_json),
    ("board_json", board_json),
    ("tick", tick),
    ("registry", registry),
    ("nagios_output", nagios_output),
    ("tickmon_request", tickmon_request),
    ("heartbeat_journal", heartbeat_journal),
    ("notify_outbox", notify_outbox),
    ("notify_state", notify_state),
    ("recover_ledger", recover_ledger),
    ("timestamps", timestamps),
    ("rollup_metrics", rollup_metrics),
    ("cell_file", cell_file),
    ("agent_file", agent_file),
    ("task_file", task_file),
];

fn now() -> time::OffsetDateTime {
    time::macros::datetime!(2026-11-23 10:30:00 UTC)
}

fn quiet() -> Diag {
    Diag::memory("fuzz").0
}

/// A value pitcrew wrote must read back.
fn reads_back<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> T {
    match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => panic!("{what} does not read back: {e}"),
    }
}

/// The NDJSON reader: numbered lines with a length limit, blank lines skipped, each line
/// parsed as an object; what is accepted writes out as a line that parses again.
pub fn ndjson_lines(data: &[u8]) {
    for max in [16usize, 4096] {
        let mut r = LineReader::new(Cursor::new(data), max);
        let mut last = 0;
        while let Ok(Some((n, line))) = r.next_line() {
            assert!(n > last, "line numbers must grow");
            last = n;
            match line {
                Line::Text(t) => {
                    assert!(t.len() <= max, "a kept line is within the limit");
                    assert!(!t.contains(&b'\n'), "a line has no newline");
                    if let Ok(v) = ndjson::parse_object(t) {
                        let out = ndjson::to_line(&v).unwrap_or_else(|e| panic!("cannot write: {e}"));
                        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1, "one line out");
                        let back = ndjson::parse_object(&out[..out.len() - 1]);
                        assert!(back.is_ok(), "a written line reads back: {back:?}");
                    }
                }
                Line::TooLong(len) => assert!(len as usize > max),
            }
        }
    }
    let (diag, _) = Diag::memory("fuzz");
    let mut taken = 0u64;
    let r = ndjson::read_lines(Cursor::new(data), "stdin", ReadOpts::default(), &diag, &mut |b, _| {
        Ok(ndjson::parse_object(b).map(|_| taken += 1))
    });
    assert!(r.is_ok());
}

/// Every record kind: typed reads, what notify's rules and board's ingest make of it, the
/// alert message rendered and split for Telegram.
pub fn records(data: &[u8]) {
    let Ok(v) = ndjson::parse_object(data) else { return };
    let kind = record::kind_of(&v);
    match kind {
        Kind::Check => {
            if let Ok(c) = serde_json::from_value::<Check>(v.clone()) {
                let line = ndjson::to_line(&c).unwrap_or_default();
                let _: Check = reads_back(&line, "a check record");
                let _ = c.text_line();
            }
        }
        Kind::Recovery => {
            if let Ok(r) = serde_json::from_value::<Recovery>(v.clone()) {
                let _: Recovery = reads_back(&ndjson::to_line(&r).unwrap_or_default(), "a recovery record");
            }
        }
        Kind::Finding => {
            if let Ok(f) = serde_json::from_value::<Finding>(v.clone()) {
                let _: Finding = reads_back(&ndjson::to_line(&f).unwrap_or_default(), "a finding record");
            }
        }
        _ => {}
    }
    let mut input = Input::default();
    for o in rules::observe(&v).unwrap_or_default() {
        input.rule(o);
    }
    if kind == Kind::Alert
        && let Ok(a) = serde_json::from_value::<Alert>(v.clone())
    {
        input.alert(a);
    }
    let _ = Rules { below: 95.0, owner: "ops".into() }.wanted(&v);
    run_notify(State::default(), input);
}

/// One notify decision over `input`; the state and outbox it would write read back, and the
/// message splits within Telegram's limit.
fn run_notify(mut st: State, input: Input) {
    let mut rates = Rates::default();
    let policy =
        Policy { repeat_interval_s: 3600, rate_limit_s: 300, alert_on_recovery: true, after: 1, newest_wins: true };
    let silences = Silences::default();
    let d = state::evaluate(&mut st, &mut rates, input, &silences, policy, now());
    let saved = serde_json::to_vec_pretty(&st).unwrap_or_default();
    let _: State = reads_back(&saved, "notify's state");
    for a in &d.alerts {
        let q = Queued {
            alert: a.undelivered(),
            sinks: vec!["telegram".into()],
            attempts: 1,
            queued_at: String::new(),
            last_error: None,
            extra: Map::new(),
        };
        let line = ndjson::to_line(&q).unwrap_or_default();
        let back = outbox::parse(&line, "outbox", &quiet());
        assert!(
            matches!(back.as_slice(), [outbox::Line::Entry(_)]),
            "a queued alert reads back as one entry: {}",
            String::from_utf8_lossy(&line)
        );
    }
    let batch: Vec<&Alert> = d.alerts.iter().collect();
    if !batch.is_empty() {
        for piece in render::compose(&batch, false).split(200) {
            let n = utf16_len(&piece.html());
            assert!(n <= 200, "a message piece of {n} UTF-16 units is over the limit");
        }
    }
    let _ = state::still_firing(&st, &Default::default());
}

/// services.json: whatever the file says, loading ends in services and problems.
pub fn services_json(data: &[u8]) {
    let env = config::env_from(&[("AGENT_OPS_HOME", "/h")]);
    if let Ok(c) = Config::parse(data, Path::new("services.json"), &env) {
        for s in &c.services {
            let _ = (s.target(), s.type_name());
            if let CheckSpec::Heartbeat(HeartbeatSpec::Tick { agent, .. }) = &s.spec {
                assert!(pitcrew::util::is_safe_id(agent), "a tick agent is a file name: {agent:?}");
            }
            assert!(!s.timeout.is_zero());
            let back = c.parse_service_value(&Value::Object(s.raw.clone()), None);
            assert!(back.is_ok(), "a loaded service loads again: {back:?}");
        }
        for p in &c.problems {
            let _ = p.to_string();
        }
    }
    // The same bytes as a stream line of services.
    if let Ok(v) = ndjson::parse_object(data) {
        let c = Config::empty(Path::new("s.json"), &env);
        let _ = c.parse_service_value(&v, None);
    }
}

/// board.json: a board that loads writes out as bytes that load to the same bytes.
pub fn board_json(data: &[u8]) {
    let Ok(b) = Board::parse(data) else { return };
    let bytes = b.to_bytes().unwrap_or_else(|e| panic!("cannot write the board: {e}"));
    let again = Board::parse(&bytes).unwrap_or_else(|e| panic!("a written board does not load: {e}"));
    assert_eq!(again.to_bytes().ok(), Some(bytes), "writing is stable");
    let _ = b.all_columns();
    for t in b.tasks() {
        let _ = (t.id(), t.tags(), t.priority_rank(), t.last_change());
        let _ = b.resolve(t.id());
    }
}

/// A tick file.
pub fn tick(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    for agent in [None, Some("atlas")] {
        if let Ok(t) = tick::parse_tick(v.clone(), agent) {
            assert!(pitcrew::util::is_safe_id(&t.agent));
            let _ = (t.submitted(), t.failed_vitals(), t.lost_capabilities());
        }
    }
}

/// The agent registry.
pub fn registry(data: &[u8]) {
    if let Ok(r) = Registry::parse(data, Path::new("agent-registry.json")) {
        for a in &r.agents {
            assert!(pitcrew::util::is_safe_id(&a.id), "registry ids are safe file names");
        }
    }
}

/// Nagios plugin output: the summary, long text and perfdata, and the check record that
/// carries them reads back.
pub fn nagios_output(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let o = plugin::parse_output(&text);
    for p in &o.perf {
        assert!(p.value.is_finite() && !p.label.is_empty());
        assert!(p.min.is_none_or(f64::is_finite) && p.max.is_none_or(f64::is_finite), "{p:?}");
    }
    let mut c = Check::new("x", "command", "", record::CheckStatus::Up, o.summary.clone());
    c.perfdata = Some(o.perf.clone());
    let line = ndjson::to_line(&c).unwrap_or_default();
    let back: Check = reads_back(&line, "a check with perfdata");
    assert_eq!(back.perfdata, c.perfdata, "perfdata survives the pipe");
}

/// tickmon serve's request handling: routing, ids, bodies; what it accepts is journaled
/// and saved in a state file that reads back.
pub fn tickmon_request(data: &[u8]) {
    let (head, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let (method, path) = head.split_once(' ').unwrap_or(("POST", &head));
    let route = serve::route_of(method, path);
    let mut snap = Snapshot::default();
    let event = |op: Op, id: &str| Event { seq: snap.seq + 1, ..Event::new(op, id, 1.8e9) };
    let ev = match route {
        Route::Heartbeat(id) if pitcrew::util::is_safe_id(id) => match serve::parse_beat(body) {
            Ok((metadata, response_time)) => {
                let mut e = event(Op::Beat, id);
                e.metadata = metadata;
                e.response_time = response_time;
                Some(e)
            }
            Err(r) => {
                assert!((400..500).contains(&r.status()));
                None
            }
        },
        Route::Failure(id) if pitcrew::util::is_safe_id(id) => {
            serve::parse_failure(body, body.first() == Some(&b'{')).ok().map(|text| {
                let mut e = event(Op::Fail, id);
                e.error = Some(text);
                e
            })
        }
        _ => None,
    };
    if let Some(ev) = ev {
        let line = beats::event_line(&ev);
        let (loaded, gap) = beats::replay(Snapshot::default(), &line, Path::new("journal"));
        assert!(!gap && loaded.replayed == 1, "a journaled event replays: {:?}", loaded.warnings);
        snap.apply(&ev);
        let saved = serde_json::to_vec(&snap).unwrap_or_default();
        let back: Snapshot = reads_back(&saved, "the heartbeat state");
        assert_eq!(back.agents.len(), 1);
        for a in back.agents.values() {
            let _ = (a.api(), a.record("t"));
        }
    }
}

/// The heartbeat journal: replayed over an empty state, whatever its lines, into a state
/// that saves and reads back.
pub fn heartbeat_journal(data: &[u8]) {
    let (loaded, _) = beats::replay(Snapshot::default(), data, Path::new("journal"));
    for a in loaded.snapshot.agents.values() {
        assert!(pitcrew::util::is_safe_id(&a.agent_id));
        let _ = (a.api(), a.record("t"));
    }
    let saved = serde_json::to_vec(&loaded.snapshot).unwrap_or_default();
    let back: Snapshot = reads_back(&saved, "the heartbeat state");
    assert_eq!(back.agents.len(), loaded.snapshot.agents.len());
    let _ = beats::with_timeouts(&loaded.snapshot, 2.0e9, 300.0);
}

/// notify's outbox: every line is an entry or kept verbatim; rewriting keeps them all.
pub fn notify_outbox(data: &[u8]) {
    let lines = outbox::parse(data, "outbox.jsonl", &quiet());
    let mut bytes = Vec::new();
    for l in &lines {
        match l {
            outbox::Line::Entry(q) => bytes.extend(ndjson::to_line(q.as_ref()).unwrap_or_default()),
            outbox::Line::Unreadable(s) => {
                bytes.extend_from_slice(s.as_bytes());
                bytes.push(b'\n');
            }
        }
    }
    let again = outbox::parse(&bytes, "outbox.jsonl", &quiet());
    assert_eq!(again.len(), lines.len(), "rewriting the outbox keeps every line");
    assert_eq!(outbox::pending(&again), outbox::pending(&lines), "and every alert owed");
}

/// notify's state (first line) and a run's records (the other lines): the decision, twice,
/// and what it saves reads back. Silences come from `--match` words of the first line too.
pub fn notify_state(data: &[u8]) {
    let (first, rest) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let st: State = serde_json::from_slice(first).unwrap_or_default();
    if let Ok(s) = serde_json::from_slice::<Silences>(first) {
        let a = Alert::new("t", record::Level::Error, "x", "y", "");
        let _ = s.muting(&a, now());
    }
    for word in String::from_utf8_lossy(first).split_whitespace() {
        if let Ok(m) = Matcher::parse(word) {
            let _ = m.matches(&Alert::new("t", record::Level::Error, word, word, ""));
        }
    }
    for _run in 0..2 {
        let mut input = Input::default();
        let (diag, _) = Diag::memory("fuzz");
        let _ = ndjson::read_lines(Cursor::new(rest), "stdin", ReadOpts::default(), &diag, &mut |b, _| {
            Ok(ndjson::parse_object(b).map(|v| {
                for o in rules::observe(&v).unwrap_or_default() {
                    input.rule(o);
                }
                if record::kind_of(&v) == Kind::Alert
                    && let Ok(a) = serde_json::from_value::<Alert>(v)
                {
                    input.alert(a);
                }
            }))
        });
        run_notify(st.clone(), input);
    }
}

/// recover's ledger (`recovery.json`): the restart rules over whatever it holds.
pub fn recover_ledger(data: &[u8]) {
    let Ok(ledger) = serde_json::from_slice::<std::collections::BTreeMap<String, Entry>>(data) else { return };
    let policies = [
        RestartPolicy::default(),
        RestartPolicy {
            cooldown_seconds: u64::MAX,
            max_attempts: u32::MAX,
            timeout_seconds: u64::MAX,
            reset_after_seconds: u64::MAX,
            flap_restarts: u32::MAX,
            flap_window_seconds: u64::MAX,
        },
        RestartPolicy { cooldown_seconds: 0, max_attempts: 0, reset_after_seconds: 0, ..RestartPolicy::default() },
    ];
    for (_, e) in ledger {
        for p in &policies {
            for now in [0.0, 1.8e9, f64::MAX] {
                let mut e = e.clone();
                if let Decision::Run { .. } = e.decide(p, now) {
                    e.begin(p, now);
                    e.succeeded(now);
                }
                let _ = (e.flapping(p, now), e.attempts_at(p, now));
                let saved = serde_json::to_vec(&e).unwrap_or_default();
                let _: Entry = reads_back(&saved, "a ledger entry");
            }
        }
    }
}

/// Timestamps, durations and months as other tools and people write them.
pub fn timestamps(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    if let Some(t) = clock::parse_ts(&s) {
        let shown = clock::fmt_ts(t);
        let again = clock::parse_ts(&shown).unwrap_or_else(|| panic!("{shown} does not parse"));
        assert_eq!(clock::fmt_ts(again), shown);
        let _ = Clock::fixed(t).stamp();
        let m = Month::of(t);
        let _ = (m.label(), m.previous(), Month::default_for_check(t, Duration::from_secs(72 * 3600)));
    }
    if let Some(d) = clock::parse_duration(&s) {
        let _ = clock::human_duration(d.as_secs());
    }
    if let Some(m) = Month::parse(&s) {
        for hours in [0u64, 72, 744] {
            let _ = clock::fmt_ts(m.due(Duration::from_secs(hours * 3600)));
        }
    }
    let _ = clock::from_unix_f64(s.trim().parse::<f64>().unwrap_or(0.0));
}

/// A metrics line as rollup reads it. The fast path ([`fast::parse`]) must give, on every line
/// it does not leave to serde_json, exactly what serde_json's reading ([`slow_parse`]) gives;
/// a string field it calls plain must be the text between its quotes. rollup's line reader
/// splits the same lines in large reads as in small ones, and a whole scan of the bytes does not panic.
pub fn rollup_metrics(data: &[u8]) {
    /// Hands out at most 7 bytes a read, to split lines across reads.
    struct Dribble<'a>(&'a [u8]);
    impl std::io::Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(7);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    for max in [64usize, 16384] {
        // Lines split alike whether they come in large reads or a few bytes at a time.
        let mut ours = LineReader::with_block(Cursor::new(data), max, READ_BLOCK);
        let mut shared = LineReader::with_block(Dribble(data), max, 1024);
        loop {
            let (a, b) = (ours.next_line(), shared.next_line());
            let (a, b) = match (a, b) {
                (Ok(a), Ok(b)) => (a, b),
                (a, b) => panic!("read errors differ: {:?} / {:?}", a.err(), b.err()),
            };
            let a = a.map(|(n, l)| (n, line_bytes(l)));
            let b = b.map(|(n, l)| (n, line_bytes(l)));
            assert_eq!(a, b, "large reads and small reads split differently (limit {max})");
            let Some((_, Ok(line))) = a else {
                if a.is_none() {
                    break;
                }
                continue;
            };
            fast_agrees_with_serde(&line);
        }
    }
    fast_agrees_with_serde(data);
    for (by_day, pass_through) in [(false, true), (true, false)] {
        let opts = ScanOpts { by_day, pass_through, track_range: true, max_line: 4096, ..ScanOpts::default() };
        let mut sc = Scanner::new(opts);
        let mut out = Vec::new();
        let r = sc.scan(Cursor::new(data), Origin { name: "2026-11-23.jsonl", day: None }, &mut out);
        assert!(r.is_ok(), "a scan that is not strict takes any bytes: {r:?}");
        assert!(sc.lines + sc.rejects.count <= data.iter().filter(|b| **b == b'\n').count() as u64 + 1);
        for (name, stats) in sc.window.sorted() {
            let _ = (name, stats.total(), stats.latency.mean());
        }
    }
}

fn fields<'a>(x: &Fields<'a>) -> [Option<&'a str>; 5] {
    [x.kind, x.name, x.status, x.latency_ms, x.timestamp]
}

fn line_bytes(l: Line<'_>) -> Result<Vec<u8>, u64> {
    match l {
        Line::Text(t) => Ok(t.to_vec()),
        Line::TooLong(n) => Err(n),
    }
}

fn fast_agrees_with_serde(line: &[u8]) {
    let Some(f) = fast::parse(line) else { return };
    let slow = match slow_parse(line) {
        Ok(s) => s,
        Err(why) => panic!("the fast path read a line serde_json refuses ({why})"),
    };
    assert_eq!(fields(&f), fields(&slow), "the fast path read other values than serde_json");
    for raw in fields(&f).into_iter().flatten() {
        assert!(serde_json::from_str::<serde::de::IgnoredAny>(raw).is_ok(), "a field is one JSON value: {raw}");
        if f.plain && raw.starts_with('"') {
            let text: String = serde_json::from_str(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(Some(text.as_str()), raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')), "plain");
        }
    }
    // Timestamps: the fast parse agrees with the shared one wherever that one reads it.
    if let Some(ts) = f.timestamp.and_then(|t| serde_json::from_str::<String>(t).ok())
        && let (Some(ms), Some(t)) = (ts_millis(&ts), clock::parse_ts(&ts))
    {
        assert_eq!(ms, t.unix_timestamp() * 1000 + i64::from(t.millisecond()), "{ts}");
    }
}

/// A cell in memory, with no file behind it.
fn empty_cell() -> Cell {
    Cell::new(Path::new("missions/c"))
}

/// The files of one kind in `data`, separated by NUL bytes.
fn files(data: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    data.split(|b| *b == 0).enumerate().take(16)
}

/// Check a cell built from fuzzed files, assess its agents from the files, and write its
/// records: every record is one line that reads back, every id that names a file is safe.
fn check_cell(mut cell: Cell) {
    let now = now();
    scan::check(&mut cell, now);
    for cyc in scan::cycles(&cell.tasks) {
        assert!(cyc.len() >= 2 && cyc.first() == cyc.last(), "a cycle is closed: {cyc:?}");
    }
    let ctx = ScanCtx { now, stamp: clock::fmt_ts(now), heartbeat: None, defaults: Default::default(), gateways: None };
    let health = scan::assess(&mut cell, &ctx);
    assert_eq!(health.len(), cell.agents.len());
    for a in &cell.agents {
        assert!(pitcrew::util::is_safe_id(&a.id) && pitcrew::util::is_safe_id(&a.heartbeat_id), "{:?}", a.id);
    }
    for t in &cell.tasks {
        assert!(pitcrew::util::is_safe_id(&t.id), "{:?}", t.id);
    }
    for r in scan::records(&cell, &health, &ctx.stamp) {
        let line = ndjson::to_line(&r).unwrap_or_else(|e| panic!("cannot write a record: {e}"));
        let back = ndjson::parse_object(&line[..line.len() - 1]);
        assert!(back.is_ok(), "a cell record reads back: {back:?}");
    }
    let _ = scan::worst(&cell);
}

/// cell.json, then (after NUL bytes) config/policies.json, isolation.json, permissions.json.
pub fn cell_file(data: &[u8]) {
    let mut cell = empty_cell();
    for (i, bytes) in files(data) {
        let names = ["cell.json", "config/policies.json", "config/isolation.json", "config/permissions.json"];
        let Some(file) = names.get(i) else { break };
        let path = cell.dir.join(file);
        let mut cx = FileCtx::new(&path, file, bytes, &mut cell.issues);
        match i {
            0 => cell.doc = model::read_cell(&mut cx),
            1 => cell.policies = model::read_policies(&mut cx),
            2 => cell.isolation_file = model::read_isolation(&mut cx),
            _ => cell.permissions = model::read_permissions(&mut cx),
        }
    }
    if let Some(id) = cell.doc.as_ref().and_then(|d| d.cell_id.clone()) {
        assert!(pitcrew::util::is_safe_id(&id), "a cell id is a file name: {id:?}");
        cell.id = id;
    }
    check_cell(cell);
}

/// Agent files (`agents/*.json`), separated by NUL bytes, in one cell.
pub fn agent_file(data: &[u8]) {
    let mut cell = empty_cell();
    for (i, bytes) in files(data) {
        let file = format!("agents/a{i}.json");
        let path = cell.dir.join(&file);
        if let Some(a) = model::read_agent(&mut FileCtx::new(&path, &file, bytes, &mut cell.issues)) {
            cell.agents.push(a);
        }
    }
    check_cell(cell);
}

/// Task files (`tasks/*.json`), separated by NUL bytes, in one cell: references, cycles,
/// timeouts.
pub fn task_file(data: &[u8]) {
    let mut cell = empty_cell();
    for (i, bytes) in files(data) {
        let file = format!("tasks/t{i}.json");
        let path = cell.dir.join(&file);
        if let Some(t) = model::read_task(&mut FileCtx::new(&path, &file, bytes, &mut cell.issues)) {
            cell.tasks.push(t);
        }
    }
    check_cell(cell);
}
