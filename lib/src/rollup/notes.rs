//! Incident notes for the status page: short public texts about a service at a time
//! ("Database failover, writes paused for 4 minutes"), kept in `HOME/state/status-notes.json`.
//!
//! `rollup note add NAME TEXT [--at TIME]`, `rollup note list`, `rollup note rm ID`. Every
//! change is a read-modify-write under the file's lock, written atomically. The notes are
//! public text (they are printed on the page), so the file is not private; but they are
//! bounded: [`MAX_TEXT`] characters each, [`MAX_NAME`] for the service name, no control
//! character but the line feed, and at most [`MAX_NOTES`] in the file. A file that cannot be
//! read is never replaced: `add` and `rm` stop with its error, the page is drawn without notes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::clock;
use crate::error::{Error, Result};
use crate::store::{self, Kind, Perm};

/// The file under the state directory.
pub(crate) const FILE: &str = "status-notes.json";
/// The most characters of a note's text.
pub(crate) const MAX_TEXT: usize = 1000;
/// The most characters of a note's service name.
pub(crate) const MAX_NAME: usize = 200;
/// The most notes kept in the file.
pub(crate) const MAX_NOTES: usize = 1000;

/// How the notes file is read: MAX_NOTES notes of MAX_TEXT characters fit well within it.
const KIND: Kind = Kind { what: "the status notes", cap: 16 * 1024 * 1024, follow: false };

/// One note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Note {
    pub id: u64,
    /// The service it is about.
    pub name: String,
    /// When it applies (RFC 3339, UTC).
    pub at: String,
    pub text: String,
    #[serde(default)]
    pub created_at: String,
}

impl Note {
    /// When it applies, parsed.
    pub fn time(&self) -> Option<OffsetDateTime> {
        clock::parse_ts(&self.at)
    }

    /// The epoch day it applies to.
    pub fn day(&self) -> Option<i32> {
        self.time().map(|t| clock::epoch_day(t.date()))
    }

    /// The `note` record of `note add`, `note list` and `note rm`.
    pub fn record(&self, now: OffsetDateTime) -> serde_json::Value {
        serde_json::json!({
            "kind": "note",
            "id": self.id,
            "name": self.name,
            "at": self.at,
            "text": self.text,
            "created_at": self.created_at,
            "timestamp": clock::fmt_ts(now),
        })
    }
}

/// The notes file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Notes {
    #[serde(default)]
    pub next_id: u64,
    #[serde(default)]
    pub notes: Vec<Note>,
}

/// The notes file of a state directory.
pub(crate) fn path(state: &Path) -> PathBuf {
    state.join(FILE)
}

/// Read the file (none yet: no notes), sorted by time and id.
pub(crate) fn load(path: &Path) -> Result<Vec<Note>> {
    let mut notes = store::read_json::<Notes>(path, KIND)?.unwrap_or_default().notes;
    notes.sort_by(|a, b| a.time().cmp(&b.time()).then(a.id.cmp(&b.id)));
    Ok(notes)
}

/// Refuse what the page could not show as given: empty, too long, control characters.
fn check(what: &str, s: &str, max: usize, newlines: bool) -> Result<()> {
    if s.trim().is_empty() {
        return Err(Error::usage(format!("note add: the {what} is empty")));
    }
    let n = s.chars().count();
    if n > max {
        return Err(Error::usage(format!("note add: the {what} has {n} characters; the most is {max}")));
    }
    if let Some(c) = s.chars().find(|&c| c.is_control() && !(newlines && c == '\n')) {
        return Err(Error::usage(format!("note add: the {what} holds a control character ({:?})", c)));
    }
    Ok(())
}

/// The time of `--at`: an RFC 3339 timestamp, or a date (its midnight, UTC).
pub(crate) fn parse_at(s: &str) -> std::result::Result<OffsetDateTime, String> {
    clock::parse_ts(s)
        .or_else(|| clock::parse_date(s).map(|d| d.midnight().assume_utc()))
        .ok_or_else(|| format!("'{s}' is neither an RFC 3339 time nor a date (YYYY-MM-DD)"))
}

/// Add a note under the file's lock; returns it.
pub(crate) fn add(path: &Path, name: &str, text: &str, at: OffsetDateTime, now: OffsetDateTime) -> Result<Note> {
    check("service name", name, MAX_NAME, false)?;
    check("text", text, MAX_TEXT, true)?;
    store::update_json(path, KIND, Perm::Shared, |file: &mut Notes| {
        if file.notes.len() >= MAX_NOTES {
            return Err(Error::usage(format!(
                "note add: {} already holds {MAX_NOTES} notes, the most it keeps; remove old ones with `rollup note rm ID`",
                path.display()
            )));
        }
        let max = file.notes.iter().map(|n| n.id).max().unwrap_or(0);
        let note = Note {
            id: file.next_id.max(max) + 1,
            name: name.to_string(),
            at: clock::fmt_ts(at),
            text: text.trim_end().to_string(),
            created_at: clock::fmt_ts(now),
        };
        file.next_id = note.id;
        file.notes.push(note.clone());
        Ok(note)
    })
}

/// Remove a note under the file's lock; returns it, or an error when there is none by that id.
pub(crate) fn remove(path: &Path, id: u64) -> Result<Note> {
    if !path.exists() {
        return Err(Error::usage(format!("note rm: no note with id {id} (there are no notes)")));
    }
    store::update_json(path, KIND, Perm::Shared, |file: &mut Notes| match file.notes.iter().position(|n| n.id == id) {
        Some(i) => Ok(file.notes.remove(i)),
        None => Err(Error::usage(format!("note rm: no note with id {id} (see `rollup note list`)"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> OffsetDateTime {
        clock::parse_ts(s).unwrap()
    }

    #[test]
    fn add_list_remove_with_ids_that_are_never_reused() {
        let dir = std::env::temp_dir().join(format!("pitcrew-notes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let p = path(&dir);
        let now = ts("2026-11-23T12:00:00Z");
        let a = add(&p, "api", "Failover", ts("2026-11-22T10:00:00Z"), now).unwrap();
        let b = add(&p, "db", "Slow disk\nreplaced", ts("2026-11-21T10:00:00Z"), now).unwrap();
        assert_eq!((a.id, b.id), (1, 2));
        let all = load(&p).unwrap();
        assert_eq!(all.iter().map(|n| n.id).collect::<Vec<_>>(), [2, 1], "sorted by time");
        assert_eq!(remove(&p, 2).unwrap().name, "db");
        assert!(remove(&p, 2).is_err());
        let c = add(&p, "api", "Again", now, now).unwrap();
        assert_eq!(c.id, 3, "an id is never given twice");
        assert_eq!(c.day(), Some(clock::epoch_day(now.date())));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_notes_are_refused_before_the_file_is_touched() {
        let dir = std::env::temp_dir().join(format!("pitcrew-notes-bad-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let p = path(&dir);
        let now = ts("2026-11-23T12:00:00Z");
        for (name, text) in [("", "x"), ("api", "  "), ("api", "\u{1b}[2J"), ("a\nb", "x")] {
            assert!(add(&p, name, text, now, now).is_err(), "{name:?} {text:?}");
        }
        let long = "x".repeat(MAX_TEXT + 1);
        let e = add(&p, "api", &long, now, now).unwrap_err().to_string();
        assert!(e.contains("1001 characters"), "{e}");
        assert!(!p.exists());
        assert_eq!(parse_at("2026-11-20").unwrap(), ts("2026-11-20T00:00:00Z"));
        assert!(parse_at("yesterday").is_err());
    }

    #[test]
    fn a_corrupt_file_is_never_replaced() {
        let dir = std::env::temp_dir().join(format!("pitcrew-notes-corrupt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = path(&dir);
        std::fs::write(&p, "{\"notes\": [oops").unwrap();
        let now = ts("2026-11-23T12:00:00Z");
        assert!(add(&p, "api", "x", now, now).is_err());
        assert!(load(&p).is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"notes\": [oops");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
