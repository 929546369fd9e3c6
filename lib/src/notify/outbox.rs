//! `state/outbox.jsonl`: alerts a sink did not take, waiting to be sent again.
//!
//! One line per alert: `{alert, sinks: [names still owed], attempts, queued_at, last_error}`.
//! New entries are appended, one `write` per whole line; at the start of every run the
//! waiting alerts are sent again, sink by sink, and the file is rewritten atomically without
//! what was delivered. Both happen under notify's state lock. A line that cannot be read is
//! kept as it is (and reported), never dropped.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::alert::Alert;
use crate::entry::Diag;
use crate::error::Result;
use crate::ndjson;
use crate::store;

/// One waiting alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queued {
    /// The alert, as it is to be sent.
    pub alert: Alert,
    /// The sinks it is still owed to.
    pub sinks: Vec<String>,
    /// How many times sending it was tried.
    #[serde(default)]
    pub attempts: u32,
    /// When it was first queued.
    #[serde(default)]
    pub queued_at: String,
    /// Why the last try failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Fields this version does not know, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A line of the file: an entry, or text that is not one (kept verbatim).
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// An alert waiting.
    Entry(Box<Queued>),
    /// A line that is no entry, as it was.
    Unreadable(String),
}

/// Read the outbox (none yet: empty). Unreadable lines are reported and kept.
pub(crate) fn load(path: &Path, diag: &Diag) -> Result<Vec<Line>> {
    match store::read::read_optional(path, store::kinds::OUTBOX)? {
        Some(b) => Ok(parse(&b, &path.display().to_string(), diag)),
        None => Ok(Vec::new()),
    }
}

/// The lines of an outbox's bytes; `name` is for messages. Unreadable lines are reported and
/// kept.
pub fn parse(bytes: &[u8], name: &str, diag: &Diag) -> Vec<Line> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Queued>(l) {
            Ok(q) => out.push(Line::Entry(Box::new(q))),
            Err(e) => {
                diag.warn(format_args!(
                    "{name}:{}: {}; the line is kept as it is",
                    i + 1,
                    ndjson::json_error_message(&e)
                ));
                out.push(Line::Unreadable(l.to_string()));
            }
        }
    }
    out
}

/// Append entries, one write per line.
pub(crate) fn append(path: &Path, entries: &[Queued]) -> Result<()> {
    for q in entries {
        store::append_line_as(path, &ndjson::to_line(q)?, store::Perm::Private)?;
    }
    Ok(())
}

/// Replace the outbox with `lines`, atomically (an empty outbox is an empty file).
pub(crate) fn rewrite(path: &Path, lines: &[Line]) -> Result<()> {
    let mut bytes = Vec::new();
    for l in lines {
        match l {
            Line::Entry(q) => bytes.extend(ndjson::to_line(q.as_ref())?),
            Line::Unreadable(s) => {
                bytes.extend_from_slice(s.as_bytes());
                bytes.push(b'\n');
            }
        }
    }
    store::atomic_write_as(path, &bytes, store::Perm::Private)
}

/// How many alerts are still owed to someone.
pub fn pending(lines: &[Line]) -> usize {
    lines
        .iter()
        .filter(|l| match l {
            Line::Entry(q) => !q.sinks.is_empty(),
            Line::Unreadable(_) => true,
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Level;

    #[test]
    fn append_load_rewrite_keeps_what_it_cannot_read() {
        let dir = std::env::temp_dir().join(format!("pitcrew-outbox-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let p = dir.join("outbox.jsonl");
        let q = Queued {
            alert: Alert::new("t", Level::Error, "api is failing", "down", "2026-11-23T10:00:00.000Z"),
            sinks: vec!["telegram".into()],
            attempts: 1,
            queued_at: "2026-11-23T10:00:00.000Z".into(),
            last_error: Some("HTTP 502".into()),
            extra: Map::new(),
        };
        append(&p, &[q.clone(), q.clone()]).unwrap();
        store::append_line(&p, b"{torn\n").unwrap();
        let (diag, buf) = Diag::memory("notify");
        let lines = load(&p, &diag).unwrap();
        assert_eq!(lines.len(), 3);
        assert!(buf.text().contains("outbox.jsonl:3:"), "{}", buf.text());
        assert_eq!(pending(&lines), 3);
        rewrite(&p, &lines[1..]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.ends_with("{torn\n"));
        assert_eq!(load(&p, &diag).unwrap().len(), 2);
    }
}
