//! The board document: the Agent Ops Kit's `{"columns": [...], "tasks": [...]}`, kept as a
//! JSON map in its own key order so that fields pitcrew does not know survive every rewrite,
//! and written back byte for byte as the kit's `json.dump(data, f, indent=2)` wrote it.
//!
//! Tasks are JSON objects with the kit's fields (`id`, `title`, `column`, `owner`,
//! `priority`, `description`, `tags`, `createdAt`, `updatedAt`); [`TaskView`] reads them
//! leniently, and every change goes through [`Board`]'s methods, which remember that the
//! board has to be written.

use std::collections::HashSet;
use std::io;

use serde::Serialize;
use serde_json::ser::{Formatter, PrettyFormatter};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The kit's columns, used for a new board and for a board file without `columns`.
pub(crate) const DEFAULT_COLUMNS: [&str; 4] = ["open", "in-progress", "in-review", "done"];

/// The priorities `add` and `edit` accept, lowest first.
pub(crate) const PRIORITIES: [&str; 4] = ["low", "medium", "high", "critical"];

/// The board: the whole document, the columns it names, and whether it changed.
///
/// The tasks are held apart from the rest of the document (whose `tasks` slot keeps its
/// place in the key order) so that they are objects by construction.
#[derive(Debug, Clone)]
pub struct Board {
    doc: Map<String, Value>,
    tasks: Vec<Map<String, Value>>,
    columns: Vec<String>,
    /// The file ended with a newline (the kit's writer leaves none; a new board gets one).
    newline: bool,
    dirty: bool,
}

impl Default for Board {
    fn default() -> Self {
        Board::new()
    }
}

impl Board {
    /// A new, empty board with the kit's columns.
    pub(crate) fn new() -> Board {
        let columns: Vec<String> = DEFAULT_COLUMNS.iter().map(|c| c.to_string()).collect();
        let mut doc = Map::new();
        doc.insert("columns".into(), Value::from(columns.clone()));
        doc.insert("tasks".into(), Value::Null);
        Board { doc, tasks: Vec::new(), columns, newline: true, dirty: false }
    }

    /// Parse a board file. The error says what is wrong, to follow the file's name:
    /// `is not valid JSON (line 3, column 7: expected value)`.
    pub fn parse(bytes: &[u8]) -> std::result::Result<Board, String> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err("is empty".into());
        }
        let doc: Value = serde_json::from_slice(bytes).map_err(|e| {
            let s = e.to_string();
            let why = s.rfind(" at line ").map_or(s.as_str(), |i| &s[..i]);
            format!("is not valid JSON (line {}, column {}: {why})", e.line(), e.column())
        })?;
        let Value::Object(mut doc) = doc else {
            return Err("is not a board (expected a JSON object with columns and tasks)".into());
        };
        let columns = match doc.get("columns") {
            None => DEFAULT_COLUMNS.iter().map(|c| c.to_string()).collect(),
            Some(Value::Array(cols)) => {
                let mut names = Vec::with_capacity(cols.len());
                for (i, c) in cols.iter().enumerate() {
                    match c.as_str() {
                        Some(s) if !s.trim().is_empty() => names.push(s.to_string()),
                        _ => return Err(format!("is not a board (columns[{i}]: expected a column name)")),
                    }
                }
                if names.is_empty() {
                    return Err("is not a board (columns: the list is empty)".into());
                }
                names
            }
            Some(_) => return Err("is not a board (columns: expected an array of column names)".into()),
        };
        let mut tasks = Vec::new();
        match doc.get_mut("tasks") {
            None => {}
            Some(slot @ Value::Array(_)) => {
                if let Value::Array(values) = std::mem::take(slot) {
                    tasks.reserve(values.len());
                    for (i, t) in values.into_iter().enumerate() {
                        match t {
                            Value::Object(m) => tasks.push(m),
                            _ => return Err(format!("is not a board (tasks[{i}]: expected an object)")),
                        }
                    }
                }
            }
            Some(_) => return Err("is not a board (tasks: expected an array of task objects)".into()),
        }
        let newline = bytes.last() == Some(&b'\n');
        Ok(Board { doc, tasks, columns, newline, dirty: false })
    }

    /// The file's bytes, as the kit wrote them: indent 2, `": "`, non-ASCII escaped.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(4096);
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, KitFormatter::new());
        self.serialize(&mut ser).map_err(|e| Error::other(format!("serializing the board: {e}")))?;
        if self.newline {
            buf.push(b'\n');
        }
        Ok(buf)
    }

    /// True once a change has been made.
    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The board's columns, in order.
    pub(crate) fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The last column: where `done` moves a task, and what is not "open" for ingest.
    pub(crate) fn last_column(&self) -> &str {
        self.columns.last().map_or("done", String::as_str)
    }

    /// The first column: where new tasks go.
    pub(crate) fn first_column(&self) -> &str {
        self.columns.first().map_or("open", String::as_str)
    }

    /// The board's columns, then any column that only tasks name (a hand-edited board).
    pub fn all_columns(&self) -> Vec<String> {
        let mut cols = self.columns.clone();
        for t in self.tasks() {
            let c = t.column();
            if !cols.iter().any(|x| x == c) {
                cols.push(c.to_string());
            }
        }
        cols
    }

    /// Check that `column` is one of the board's columns.
    pub(crate) fn check_column(&self, column: &str) -> Result<()> {
        if self.columns.iter().any(|c| c == column) {
            Ok(())
        } else {
            Err(Error::usage(format!(
                "unknown column '{column}': this board's columns are {}",
                self.columns.join(", ")
            )))
        }
    }

    /// The tasks, in board order.
    pub fn tasks(&self) -> impl ExactSizeIterator<Item = TaskView<'_>> + Clone {
        self.tasks.iter().map(TaskView)
    }

    /// The task at `index`.
    pub(crate) fn task(&self, index: usize) -> Option<TaskView<'_>> {
        self.tasks.get(index).map(TaskView)
    }

    /// Change the task at `index`; the board will be written.
    pub(crate) fn task_mut(&mut self, index: usize) -> Option<&mut Map<String, Value>> {
        self.dirty = true;
        self.tasks.get_mut(index)
    }

    /// Append a task.
    pub(crate) fn push(&mut self, task: Map<String, Value>) {
        self.dirty = true;
        self.tasks.push(task);
    }

    /// Remove the task at `index` and return it.
    pub(crate) fn remove(&mut self, index: usize) -> Option<Map<String, Value>> {
        if index < self.tasks.len() {
            self.dirty = true;
            Some(self.tasks.remove(index))
        } else {
            None
        }
    }

    /// A fresh id in the kit's form, `task-` and 8 hex digits from the system's random
    /// source, different from every id on the board.
    pub(crate) fn new_id(&self) -> Result<String> {
        self.ids().fresh()
    }

    /// The ids on the board, to draw several fresh ids from.
    pub(crate) fn ids(&self) -> Ids {
        Ids { taken: self.tasks().map(|t| t.id().to_string()).collect() }
    }

    /// The index of the task that `arg` names: its id, or an unambiguous prefix of it, with or
    /// without the `task-` part.
    pub fn resolve(&self, arg: &str) -> Result<usize> {
        let arg = arg.trim();
        if arg.is_empty() {
            return Err(Error::usage("a task id is empty"));
        }
        let exact: Vec<usize> = self.tasks().enumerate().filter(|(_, t)| t.id() == arg).map(|(i, _)| i).collect();
        match exact.len() {
            1 => return Ok(exact[0]),
            0 => {}
            n => {
                return Err(Error::usage(format!(
                    "{n} tasks have the id '{arg}'; give them different ids in the board file"
                )));
            }
        }
        let long = if arg.starts_with("task-") { None } else { Some(format!("task-{arg}")) };
        let hits: Vec<(usize, &str)> = self
            .tasks()
            .enumerate()
            .filter(|(_, t)| {
                let id = t.id();
                !id.is_empty() && (id.starts_with(arg) || long.as_deref().is_some_and(|l| id.starts_with(l)))
            })
            .map(|(i, t)| (i, t.id()))
            .collect();
        match hits.len() {
            0 => Err(Error::usage(format!("no task matches '{arg}'"))),
            1 => Ok(hits[0].0),
            n => {
                let shown: Vec<&str> = hits.iter().take(5).map(|(_, id)| *id).collect();
                let more = if n > 5 { format!(", and {} more", n - 5) } else { String::new() };
                Err(Error::usage(format!("'{arg}' is ambiguous: it matches {}{more}", shown.join(", "))))
            }
        }
    }
}

/// Ids in use; [`Ids::fresh`] draws a new one and counts it as used.
pub(crate) struct Ids {
    taken: HashSet<String>,
}

impl Ids {
    /// `task-` and 8 hex digits from the system's random source, unlike every id in use.
    pub(crate) fn fresh(&mut self) -> Result<String> {
        for _ in 0..64 {
            let mut b = [0u8; 4];
            getrandom::getrandom(&mut b).map_err(|e| Error::other(format!("no random source for a task id: {e}")))?;
            let id = format!("task-{:08x}", u32::from_be_bytes(b));
            if self.taken.insert(id.clone()) {
                return Ok(id);
            }
        }
        Err(Error::other("could not find a free task id"))
    }
}

/// A read-only view of one task, lenient about missing or mistyped fields.
#[derive(Debug, Clone, Copy)]
pub struct TaskView<'a>(pub &'a Map<String, Value>);

impl<'a> TaskView<'a> {
    fn s(&self, key: &str) -> &'a str {
        self.0.get(key).and_then(Value::as_str).unwrap_or("")
    }

    /// The task's `id`.
    pub fn id(&self) -> &'a str {
        self.s("id")
    }

    pub(crate) fn title(&self) -> &'a str {
        self.s("title")
    }

    pub(crate) fn column(&self) -> &'a str {
        self.s("column")
    }

    pub(crate) fn owner(&self) -> &'a str {
        self.s("owner")
    }

    pub(crate) fn priority(&self) -> &'a str {
        self.s("priority")
    }

    pub(crate) fn description(&self) -> &'a str {
        self.s("description")
    }

    pub(crate) fn created(&self) -> &'a str {
        self.s("createdAt")
    }

    pub(crate) fn updated(&self) -> &'a str {
        self.s("updatedAt")
    }

    /// The tags (strings only).
    pub fn tags(&self) -> Vec<&'a str> {
        match self.0.get("tags") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// The rank of the priority, for sorting: critical 3 ... low 0, anything else 1 (medium).
    pub fn priority_rank(&self) -> usize {
        PRIORITIES.iter().position(|p| *p == self.priority()).unwrap_or(1)
    }

    /// When the task last changed: `updatedAt`, or `createdAt` when that is missing.
    pub fn last_change(&self) -> &'a str {
        let u = self.updated();
        if u.is_empty() { self.created() } else { u }
    }
}

/// Change a task's `tags` (a missing or mistyped `tags` becomes a list, in its place).
pub(crate) fn edit_tags(task: &mut Map<String, Value>, f: impl FnOnce(&mut Vec<Value>)) {
    let mut tags = match task.get_mut("tags").map(std::mem::take) {
        Some(Value::Array(v)) => v,
        _ => Vec::new(),
    };
    f(&mut tags);
    task.insert("tags".into(), Value::Array(tags));
}

impl Serialize for Board {
    /// The document in its key order, the tasks in their slot (at the end when the file had
    /// none and tasks were added).
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let extra = !self.doc.contains_key("tasks") && !self.tasks.is_empty();
        let mut m = s.serialize_map(Some(self.doc.len() + usize::from(extra)))?;
        for (k, v) in &self.doc {
            if k == "tasks" {
                m.serialize_entry(k, &self.tasks)?;
            } else {
                m.serialize_entry(k, v)?;
            }
        }
        if extra {
            m.serialize_entry("tasks", &self.tasks)?;
        }
        m.end()
    }
}

/// The `task` record of a task: `kind` first, the task's own fields in their order, then
/// `extra` fields and the `timestamp` of the run.
pub(crate) fn task_record(task: &Map<String, Value>, extra: &[(&str, Value)], timestamp: &str) -> Value {
    let mut rec = Map::with_capacity(task.len() + extra.len() + 2);
    rec.insert("kind".into(), Value::from("task"));
    for (k, v) in task {
        if k != "kind" && k != "timestamp" {
            rec.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in extra {
        rec.insert((*k).to_string(), v.clone());
    }
    rec.insert("timestamp".into(), Value::from(timestamp));
    Value::Object(rec)
}

/// serde_json's pretty printer with two changes that make its output the kit's: strings
/// escape every character outside printable ASCII as `\uXXXX` (surrogate pairs above the
/// BMP), as Python's `json.dump` does by default.
struct KitFormatter<'a> {
    pretty: PrettyFormatter<'a>,
}

impl KitFormatter<'_> {
    fn new() -> Self {
        KitFormatter { pretty: PrettyFormatter::with_indent(b"  ") }
    }
}

impl Formatter for KitFormatter<'_> {
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.pretty.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.pretty.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_object_value(w)
    }

    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if (c as u32) < 0x7f {
                continue;
            }
            w.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                write!(w, "\\u{u:04x}")?;
            }
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Python's `json.dump(board, f, indent=2)` writes for this board (no final newline).
    const KIT: &str = "{\n  \"columns\": [\n    \"open\",\n    \"in-progress\",\n    \"in-review\",\n    \"done\"\n  ],\n  \"tasks\": [\n    {\n      \"id\": \"task-abc123\",\n      \"title\": \"Caf\\u00e9 \\ud83d\\ude80 \\\"q\\\" \\u007f\\n\",\n      \"column\": \"open\",\n      \"tags\": [],\n      \"meta\": {},\n      \"n\": 1.5,\n      \"zone\": null\n    }\n  ],\n  \"team\": \"sre\"\n}";

    #[test]
    fn round_trips_the_kit_bytes() {
        let b = Board::parse(KIT.as_bytes()).unwrap();
        assert_eq!(b.task(0).unwrap().title(), "Café 🚀 \"q\" \u{7f}\n");
        assert_eq!(String::from_utf8(b.to_bytes().unwrap()).unwrap(), KIT);
        let with_nl = format!("{KIT}\n");
        let b = Board::parse(with_nl.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(b.to_bytes().unwrap()).unwrap(), with_nl);
    }

    #[test]
    fn numbers_do_not_drift_from_one_rewrite_to_the_next() {
        // Found by fuzzing: a number past u64 is a float, and floats must read back exactly.
        for doc in [r#"{"":12112111234512322323455}"#, r#"{"tasks":[{"id":"t","n":0.30000000000000004,"m":1e-310}]}"#] {
            let once = Board::parse(doc.as_bytes()).unwrap().to_bytes().unwrap();
            let twice = Board::parse(&once).unwrap().to_bytes().unwrap();
            assert_eq!(String::from_utf8(twice).unwrap(), String::from_utf8(once).unwrap());
        }
    }

    #[test]
    fn says_what_is_wrong() {
        let bad = |s: &str| Board::parse(s.as_bytes()).unwrap_err();
        assert_eq!(bad(""), "is empty");
        assert_eq!(bad("{\n  \"tasks\": [\n    {,"), "is not valid JSON (line 3, column 6: key must be a string)");
        assert!(bad("[1]").starts_with("is not a board"));
        assert_eq!(bad(r#"{"tasks": {}}"#), "is not a board (tasks: expected an array of task objects)");
        assert_eq!(bad(r#"{"tasks": [{}, 3]}"#), "is not a board (tasks[1]: expected an object)");
        assert_eq!(bad(r#"{"columns": []}"#), "is not a board (columns: the list is empty)");
        assert_eq!(bad(r#"{"columns": ["a", 2]}"#), "is not a board (columns[1]: expected a column name)");
    }

    #[test]
    fn missing_columns_and_tasks_are_defaults_and_are_not_written() {
        let mut b = Board::parse(br#"{"x": 1}"#).unwrap();
        assert_eq!(b.columns().len(), 4);
        assert_eq!(b.tasks().len(), 0);
        assert_eq!(b.to_bytes().unwrap(), b"{\n  \"x\": 1\n}");
        assert!(!b.is_dirty());
        let mut t = Map::new();
        t.insert("id".into(), "task-1".into());
        b.push(t);
        assert!(b.is_dirty());
        let v: Value = serde_json::from_slice(&b.to_bytes().unwrap()).unwrap();
        assert_eq!(v["tasks"][0]["id"], "task-1");
        assert!(v.get("columns").is_none());
    }

    fn board_with(ids: &[&str]) -> Board {
        let mut b = Board::new();
        for id in ids {
            let mut t = Map::new();
            t.insert("id".into(), Value::from(*id));
            b.push(t);
        }
        b
    }

    #[test]
    fn ids_resolve_by_unambiguous_prefix() {
        let b = board_with(&["task-abc123", "task-abd999", "task-ff00aa11", "legacy"]);
        assert_eq!(b.resolve("task-abc123").unwrap(), 0);
        assert_eq!(b.resolve("abc").unwrap(), 0);
        assert_eq!(b.resolve("task-abd").unwrap(), 1);
        assert_eq!(b.resolve("ff").unwrap(), 2);
        assert_eq!(b.resolve("leg").unwrap(), 3);
        let e = b.resolve("ab").unwrap_err().to_string();
        assert_eq!(e, "'ab' is ambiguous: it matches task-abc123, task-abd999");
        assert_eq!(b.resolve("zz").unwrap_err().to_string(), "no task matches 'zz'");
        assert!(b.resolve(" ").is_err());
        let dup = board_with(&["task-1", "task-1"]);
        assert!(dup.resolve("task-1").unwrap_err().to_string().starts_with("2 tasks have the id"));
    }

    #[test]
    fn new_ids_are_the_kit_form_and_free() {
        let b = board_with(&[]);
        let id = b.new_id().unwrap();
        assert!(id.starts_with("task-") && id.len() == 13, "{id}");
        assert!(id[5..].bytes().all(|c| c.is_ascii_hexdigit()));
        let ids: HashSet<String> = (0..1000).map(|_| b.new_id().unwrap()).collect();
        assert!(ids.len() > 990);
    }

    #[test]
    fn records_put_kind_first_and_timestamp_last() {
        let mut t = Map::new();
        t.insert("id".into(), "task-1".into());
        t.insert("kind".into(), "weird".into());
        let r = task_record(&t, &[("stalled_hours", Value::from(2.5))], "T");
        let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["kind", "id", "stalled_hours", "timestamp"]);
        assert_eq!(r["kind"], "task");
    }

    #[test]
    fn unknown_columns_come_after_the_boards() {
        let mut b = board_with(&["a"]);
        b.task_mut(0).unwrap().insert("column".into(), "blocked".into());
        assert_eq!(b.all_columns(), ["open", "in-progress", "in-review", "done", "blocked"]);
        assert!(b.check_column("blocked").unwrap_err().to_string().contains("open, in-progress, in-review, done"));
    }
}
