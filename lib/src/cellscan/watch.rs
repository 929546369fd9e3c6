//! `scan --watch`: scan again and again, writing only what changed.
//!
//! The first scan writes every record. Each later one writes the records that are new or
//! differ from the previous scan's, ignoring what changes on its own with the clock
//! (`timestamp`, `checkpoint_age_s`, `age_s`, `latency_ms`, the heartbeat's `last_heartbeat`),
//! and then one record for each thing that went away: a `cell`, `agent`, `task` or gateway
//! `check` with `"removed": true`, and a finding that no longer holds again, with
//! `"resolved": true` and level `info`. A gateway's check is the same thing from one scan to
//! the next, by its name: down after up is a change, written once.
//!
//! The loop ends cleanly on SIGINT, SIGTERM or SIGHUP, and when the reader of stdout goes
//! away, even while nothing changes.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::ndjson;

/// Fields that change with the clock alone.
const VOLATILE: [&str; 4] = ["timestamp", "checkpoint_age_s", "age_s", "latency_ms"];

struct Seen {
    hash: u64,
    /// What to write when it goes away.
    gone: Value,
}

/// The state of a watch: what the previous scan wrote.
#[derive(Default)]
pub(crate) struct Watch {
    prev: HashMap<String, Seen>,
}

fn stable(v: &Value) -> Value {
    let mut v = v.clone();
    if let Value::Object(m) = &mut v {
        for k in VOLATILE {
            m.remove(k);
        }
        if let Some(Value::Object(hb)) = m.get_mut("heartbeat") {
            hb.remove("last_heartbeat");
        }
    }
    v
}

fn hash_of(v: &Value) -> u64 {
    let mut h = DefaultHasher::new();
    v.to_string().hash(&mut h);
    h.finish()
}

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

/// The identity of a record (what it is about) and what to write when it goes away.
fn identity(v: &Value, stable: &Value, hash: u64) -> (String, Value) {
    let kind = s(v, "kind");
    let pick = |keys: &[&str]| {
        let mut m = Map::new();
        for k in keys {
            if let Some(x) = v.get(*k) {
                m.insert((*k).to_string(), x.clone());
            }
        }
        m.insert("removed".into(), true.into());
        Value::Object(m)
    };
    match kind.as_str() {
        "cell" => (format!("cell\0{}", s(v, "path")), pick(&["kind", "cell", "mission_name", "path"])),
        "agent" => (format!("agent\0{}", s(v, "path")), pick(&["kind", "cell", "agent", "path"])),
        "task" => (format!("task\0{}", s(v, "path")), pick(&["kind", "cell", "id", "title", "path"])),
        // A gateway's check, by its name: up after down is the same gateway, changed.
        "check" => {
            let mut gone = stable.clone();
            if let Value::Object(m) = &mut gone {
                m.insert("removed".into(), true.into());
            }
            (format!("check\0{}", s(v, "name")), gone)
        }
        _ => {
            let mut gone = stable.clone();
            if let Value::Object(m) = &mut gone {
                m.insert("level".into(), "info".into());
                m.insert("resolved".into(), true.into());
            }
            (format!("{kind}\0{hash:016x}"), gone)
        }
    }
}

impl Watch {
    /// The records of a new scan that should be written: the new and changed ones in scan
    /// order, then those that went away (stamped `stamp`).
    pub(crate) fn diff(&mut self, records: Vec<Value>, stamp: &str) -> Vec<Value> {
        let mut next: HashMap<String, Seen> = HashMap::with_capacity(records.len());
        let mut out = Vec::new();
        for v in records {
            let st = stable(&v);
            let hash = hash_of(&st);
            let (key, gone) = identity(&v, &st, hash);
            let changed = self.prev.get(&key).is_none_or(|p| p.hash != hash);
            if next.insert(key, Seen { hash, gone }).is_some() {
                // The same thing twice in one scan (a repeated finding): write it once.
                continue;
            }
            if changed {
                out.push(v);
            }
        }
        let mut gone: Vec<(&String, &Seen)> = self.prev.iter().filter(|(k, _)| !next.contains_key(*k)).collect();
        gone.sort_by(|a, b| a.0.cmp(b.0));
        for (_, seen) in gone {
            let mut g = seen.gone.clone();
            if let Value::Object(m) = &mut g {
                m.insert("timestamp".into(), stamp.into());
            }
            out.push(g);
        }
        self.prev = next;
        out
    }
}

/// Run `scan` every `interval` until `stop` says so, writing what changed. A scan that fails
/// after the first is reported on stderr (through `warn`) and tried again next time.
pub(crate) fn run(
    out: &mut dyn Write,
    interval: Duration,
    stop: &Receiver<crate::util::stop::Event>,
    scan: impl FnMut() -> Result<(Vec<Value>, String)>,
    warn: &dyn Fn(&Error),
) -> Result<()> {
    let mut watch = Watch::default();
    every(interval, stop, warn, scan, |(records, stamp)| {
        for v in watch.diff(records, &stamp) {
            ndjson::write(out, &v)?;
        }
        Ok(out.flush()?)
    })
}

/// The loop of every watch: `pass` every `interval` until `stop` says so, what it found handed
/// to `emit`. The first pass's error ends the loop; a later one is reported through `warn` and
/// the pass tried again next time. An error of `emit` (the reader went away) ends it at once.
pub(crate) fn every<T>(
    interval: Duration,
    stop: &Receiver<crate::util::stop::Event>,
    warn: &dyn Fn(&Error),
    mut pass: impl FnMut() -> Result<T>,
    mut emit: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    let mut first = true;
    loop {
        match pass() {
            Ok(found) => emit(found)?,
            Err(e) if first => return Err(e),
            Err(e) => warn(&e),
        }
        first = false;
        match stop.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(_) | Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_changes_and_disappearances_are_written() {
        let mut w = Watch::default();
        let agent = |status: &str, age: u64, t: &str| json!({"kind":"agent","cell":"c","agent":"a1","status":status,"checkpoint_age_s":age,"path":"m/c/agents/a1.json","timestamp":t});
        let finding = |t: &str| json!({"kind":"finding","source":"cellscan","subject":"c/agents/a1.json","level":"error","problem":"agent_failed","detail":"agent a1 (lead) is failed","timestamp":t});
        let cell = |t: &str| json!({"kind":"cell","cell":"c","path":"m/c","problems":0,"timestamp":t});
        let first = w.diff(vec![cell("t1"), agent("active", 10, "t1")], "t1");
        assert_eq!(first.len(), 2);
        // Only the clock moved: nothing to say.
        assert!(w.diff(vec![cell("t2"), agent("active", 40, "t2")], "t2").is_empty());
        // The agent failed: its record and the new finding.
        let got = w.diff(vec![cell("t3"), agent("failed", 70, "t3"), finding("t3")], "t3");
        assert_eq!(got, vec![agent("failed", 70, "t3"), finding("t3")]);
        // The agent file went away: the finding resolves, the agent is removed.
        let got = w.diff(vec![cell("t4")], "t4");
        assert_eq!(
            got,
            vec![
                json!({"kind":"agent","cell":"c","agent":"a1","path":"m/c/agents/a1.json","removed":true,"timestamp":"t4"}),
                json!({"kind":"finding","source":"cellscan","subject":"c/agents/a1.json","level":"info","problem":"agent_failed","detail":"agent a1 (lead) is failed","resolved":true,"timestamp":"t4"}),
            ]
        );
    }

    #[test]
    fn a_gateway_going_down_is_one_changed_check() {
        let mut w = Watch::default();
        let check = |status: &str, ms: u64, t: &str| json!({"kind":"check","name":"gateway:g","status":status,"latency_ms":ms,"timestamp":t});
        assert_eq!(w.diff(vec![check("up", 3, "t1")], "t1").len(), 1);
        assert!(w.diff(vec![check("up", 9, "t2")], "t2").is_empty(), "only the latency moved");
        assert_eq!(w.diff(vec![check("down", 1, "t3")], "t3"), vec![check("down", 1, "t3")]);
        assert_eq!(
            w.diff(vec![], "t4"),
            vec![json!({"kind":"check","name":"gateway:g","status":"down","removed":true,"timestamp":"t4"})]
        );
    }

    #[test]
    fn the_loop_stops_when_told() {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut out = Vec::new();
        let mut n = 0;
        run(
            &mut out,
            Duration::from_secs(60),
            &rx,
            || {
                n += 1;
                tx.send(crate::util::stop::Event::Terminate).unwrap();
                Ok((vec![json!({"kind":"cell","cell":"c","path":"p","timestamp":"t"})], "t".into()))
            },
            &|_| {},
        )
        .unwrap();
        assert_eq!(n, 1);
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 1);
    }
}
