//! board: the ops task board, safe under any number of concurrent writers.
//!
//! The board is the Agent Ops Kit's `state/board.json` (columns and tasks, camelCase dates),
//! loaded and written back unchanged apart from what a command changes ([`model`]). Every
//! change is one locked read-modify-write with a backup and an atomic write, and a corrupt
//! board is never replaced silently ([`file`]). The [`Engine`] runs the commands on a board
//! file, a clock and a writer, so unit tests drive it without a process; [`ingest`] turns
//! uptime breaches and alerts into tasks; [`render`] draws the views for people.

#![warn(missing_docs)]

pub(crate) mod cli;
pub(crate) mod file;
pub mod ingest;
pub mod model;
pub(crate) mod render;

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::CommandFactory;
use serde_json::{Map, Value};

use self::cli::{AddArgs, Command, EditArgs, FilterArgs, Format, IngestArgs, StalledArgs};
use self::file::BoardFile;
use self::model::{Board, TaskView, edit_tags, task_record};
use crate::clock::{self, Clock};
use crate::entry::{Ctx, Diag, Tool};
use crate::error::{Error, Result, Status};
use crate::ndjson::{self, ReadOpts, Source};

/// The `board` tool, as its binary hands it to [`crate::entry::run`].
pub const TOOL: Tool = Tool { name: "board", main, command };

/// board's clap definition (for completions and man pages).
pub(crate) fn command() -> clap::Command {
    cli::Cli::command()
}

/// The `board` tool.
pub(crate) fn main(ctx: &mut Ctx, args: Vec<OsString>) -> Result<Status> {
    let (cli, set) = crate::cli::setup::<cli::Cli>(&mut ctx.out, args)?;
    let (paths, clock) = (&set.paths, set.clock);
    let path = cli.board.clone().unwrap_or_else(|| paths.state.join("board.json"));
    let is_render = matches!(cli.command, Command::Render(_));
    let format = match (cli.format, is_render) {
        (None, false) => Format::Ndjson,
        (None, true) => Format::Text,
        (Some(Format::Markdown), false) => {
            return Err(Error::usage("--format markdown: only render writes markdown (list writes ndjson or text)"));
        }
        (Some(Format::Ndjson), true) => {
            return Err(Error::usage("--format ndjson: render draws text or markdown; list writes task records"));
        }
        (Some(f), _) => f,
    };
    ctx.out.escape_controls(format != Format::Ndjson);
    let engine = Engine {
        file: BoardFile::new(path, cli.lock_timeout),
        clock,
        diag: &ctx.diag,
        format,
        read_opts: set.read_opts,
    };
    let out = &mut ctx.out;
    match cli.command {
        Command::Add(a) => engine.add(&a, out),
        Command::Move { id, column } => engine.move_to(&id, &column, out),
        Command::Edit(a) => engine.edit(&a, out),
        Command::Done { ids } => engine.done(&ids, out),
        Command::Rm { ids } => engine.rm(&ids, out),
        Command::Show { ids } => engine.show(&ids, out),
        Command::List(a) => engine.list(&a.filter, out),
        Command::Stalled(a) => {
            let hours = match a.hours {
                Some(h) => h,
                None => set.load_config(false)?.stalled_task_hours,
            };
            engine.stalled(hours, &a, out)
        }
        Command::Ingest(a) => engine.ingest(&a, out),
        Command::Render(a) => {
            let width = match a.width {
                Some(w) => usize::from(w),
                None if std::io::stdout().is_terminal() => {
                    terminal_size::terminal_size().map_or(120, |(w, _)| usize::from(w.0)).max(20)
                }
                None => 120,
            };
            engine.render(&a.filter, width, out)
        }
    }
}

/// The commands, run on one board file.
pub(crate) struct Engine<'a> {
    pub(crate) file: BoardFile,
    pub(crate) clock: Clock,
    pub(crate) diag: &'a Diag,
    /// Output format (already checked against the command).
    pub(crate) format: Format,
    pub(crate) read_opts: ReadOpts,
}

/// A title is one line of text.
fn check_title(s: &str) -> Result<String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(Error::usage("a task needs a title"));
    }
    if t.chars().any(char::is_control) {
        return Err(Error::usage("a title is one line of text (no newlines or control characters)"));
    }
    Ok(t.to_string())
}

/// `--tag a,b --tag c` → a, b, c (trimmed, empty ones and repeats dropped).
fn split_tags(args: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in args.iter().flat_map(|a| a.split(',')).map(str::trim).filter(|t| !t.is_empty()) {
        if !out.iter().any(|x| x == t) {
            out.push(t.to_string());
        }
    }
    out
}

/// A new task with the kit's fields, in the kit's order.
fn new_task(id: String, w: &ingest::Wanted, column: &str, stamp: &str) -> Map<String, Value> {
    let mut t = Map::with_capacity(9);
    t.insert("id".into(), Value::from(id));
    t.insert("title".into(), Value::from(w.title.as_str()));
    t.insert("column".into(), Value::from(column));
    t.insert("owner".into(), Value::from(w.owner.as_str()));
    t.insert("priority".into(), Value::from(w.priority));
    t.insert("description".into(), Value::from(w.description.as_str()));
    t.insert("tags".into(), Value::from(w.tags.clone()));
    t.insert("createdAt".into(), Value::from(stamp));
    t.insert("updatedAt".into(), Value::from(stamp));
    if let Some(subject) = &w.subject {
        t.insert("subject".into(), Value::from(subject.as_str()));
    }
    t
}

/// The indexes `ids` name, each once, in the order given.
fn resolve_all(board: &Board, ids: &[String]) -> Result<Vec<usize>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for id in ids {
        let i = board.resolve(id)?;
        if seen.insert(i) {
            out.push(i);
        }
    }
    Ok(out)
}

/// A task's field as a string, for messages.
fn field<'a>(t: &'a Map<String, Value>, k: &str) -> &'a str {
    t.get(k).and_then(Value::as_str).unwrap_or("")
}

/// A value with its place in ingest's input: the number of records read before the one it
/// came from.
type Placed<T> = (usize, T);

/// A task ingest made, placed after the record that wanted it.
type MadeTask = Placed<Map<String, Value>>;

/// A task ingest did not make: its title and the id of the open task it would repeat.
type Twin = (String, String);

/// Add the wanted tasks to the board in order, skipping each whose title, or the subject it
/// is about, is already open (or made earlier in the run). Gives the tasks made and, for
/// each one skipped, its title and the id of its open twin.
fn add_wanted(b: &mut Board, wanted: &[Placed<ingest::Wanted>], stamp: &str) -> Result<(Vec<MadeTask>, Vec<Twin>)> {
    let last = b.last_column().to_string();
    // Open tasks by title, and by the subject ingest recorded on them.
    let mut open: HashMap<String, String> = HashMap::new();
    for t in b.tasks().filter(|t| t.column() != last) {
        open.insert(format!("title:{}", t.title()), t.id().to_string());
        if let Some(Value::String(s)) = t.0.get("subject") {
            open.insert(format!("subject:{s}"), t.id().to_string());
        }
    }
    let first = b.first_column().to_string();
    let mut ids = b.ids();
    let (mut made, mut skipped) = (Vec::new(), Vec::new());
    for (at, w) in wanted {
        let by_title = format!("title:{}", w.title);
        let by_subject = w.subject.as_ref().map(|s| format!("subject:{s}"));
        let twin = open.get(&by_title).or_else(|| by_subject.as_ref().and_then(|k| open.get(k)));
        if let Some(id) = twin {
            skipped.push((w.title.clone(), id.clone()));
            continue;
        }
        let id = ids.fresh()?;
        let t = new_task(id.clone(), w, &first, stamp);
        b.push(t.clone());
        open.insert(by_title, id.clone());
        if let Some(k) = by_subject {
            open.insert(k, id);
        }
        made.push((*at, t));
    }
    Ok((made, skipped))
}

/// Which tasks a filter lets through, checked against the board.
struct Filter<'f> {
    args: &'f FilterArgs,
    last: String,
    search: Option<String>,
    tags: Vec<String>,
}

impl<'f> Filter<'f> {
    fn new(args: &'f FilterArgs, board: &Board) -> Result<Filter<'f>> {
        let known = board.all_columns();
        for c in &args.column {
            if !known.iter().any(|k| k == c) {
                return Err(Error::usage(format!(
                    "unknown column '{c}': this board's columns are {}",
                    board.columns().join(", ")
                )));
            }
        }
        Ok(Filter {
            args,
            last: board.last_column().to_string(),
            search: args.search.as_ref().map(|s| s.to_lowercase()),
            tags: split_tags(&args.tag),
        })
    }

    fn keeps(&self, t: &TaskView<'_>) -> bool {
        let a = self.args;
        (a.column.is_empty() || a.column.iter().any(|c| c == t.column()))
            && (!a.active || t.column() != self.last)
            && (a.owner.is_empty() || a.owner.iter().any(|o| o == t.owner()))
            && (a.priority.is_empty() || a.priority.iter().any(|p| p.as_str() == t.priority()))
            && {
                let tags = t.tags();
                self.tags.iter().all(|want| tags.contains(&want.as_str()))
            }
            && self.search.as_ref().is_none_or(|s| {
                t.title().to_lowercase().contains(s.as_str()) || t.description().to_lowercase().contains(s.as_str())
            })
    }
}

impl Engine<'_> {
    fn text(&self) -> bool {
        self.format == Format::Text
    }

    /// Write a task as a record, or `line` in text.
    fn emit(&self, out: &mut dyn Write, task: &Map<String, Value>, line: impl FnOnce() -> String) -> Result<()> {
        if self.text() {
            writeln!(out, "{}", line())?;
            Ok(())
        } else {
            ndjson::write(out, &task_record(task, &[], &self.clock.stamp()))
        }
    }

    /// `add TITLE`: a new task in the first column (or `--column`).
    pub(crate) fn add(&self, a: &AddArgs, out: &mut dyn Write) -> Result<Status> {
        let wanted = ingest::Wanted {
            title: check_title(&a.title.join(" "))?,
            owner: a.owner.trim().to_string(),
            priority: a.priority.as_str(),
            description: a.description.clone(),
            tags: split_tags(&a.tag),
            subject: None,
        };
        let stamp = self.clock.stamp();
        let task = self.file.update(&self.clock, self.diag, |b| {
            let column = match &a.column {
                Some(c) => {
                    b.check_column(c)?;
                    c.clone()
                }
                None => b.first_column().to_string(),
            };
            let t = new_task(b.new_id()?, &wanted, &column, &stamp);
            b.push(t.clone());
            Ok(t)
        })?;
        self.emit(out, &task, || format!("Created: {} — {}", field(&task, "id"), field(&task, "title")))?;
        Ok(Status::Ok)
    }

    /// `move ID COLUMN`.
    pub(crate) fn move_to(&self, id: &str, column: &str, out: &mut dyn Write) -> Result<Status> {
        let stamp = self.clock.stamp();
        let (task, from) = self.file.update(&self.clock, self.diag, |b| {
            b.check_column(column)?;
            let i = b.resolve(id)?;
            let t = b.task_mut(i).ok_or_else(|| Error::other("task vanished"))?;
            let from = field(t, "column").to_string();
            t.insert("column".into(), Value::from(column));
            t.insert("updatedAt".into(), Value::from(stamp.as_str()));
            Ok((t.clone(), from))
        })?;
        self.emit(out, &task, || {
            format!("Moved: {} — {} ({from} → {column})", field(&task, "id"), field(&task, "title"))
        })?;
        Ok(Status::Ok)
    }

    /// `edit ID --field ...`.
    pub(crate) fn edit(&self, a: &EditArgs, out: &mut dyn Write) -> Result<Status> {
        let title = a.title.as_deref().map(check_title).transpose()?;
        let (add, remove) = (split_tags(&a.tag), split_tags(&a.untag));
        if title.is_none()
            && a.owner.is_none()
            && a.priority.is_none()
            && a.description.is_none()
            && add.is_empty()
            && remove.is_empty()
            && a.column.is_none()
        {
            return Err(Error::usage(
                "edit: nothing to change (give --title, --owner, --priority, --description, --tag, --untag or --column)",
            ));
        }
        let stamp = self.clock.stamp();
        let (task, changed) = self.file.update(&self.clock, self.diag, |b| {
            if let Some(c) = &a.column {
                b.check_column(c)?;
            }
            let i = b.resolve(&a.id)?;
            let t = b.task_mut(i).ok_or_else(|| Error::other("task vanished"))?;
            let mut changed: Vec<&str> = Vec::new();
            let mut set = |t: &mut Map<String, Value>, k: &'static str, v: &str| {
                t.insert(k.into(), Value::from(v));
                changed.push(k);
            };
            if let Some(v) = &title {
                set(t, "title", v);
            }
            if let Some(v) = &a.owner {
                set(t, "owner", v.trim());
            }
            if let Some(v) = a.priority {
                set(t, "priority", v.as_str());
            }
            if let Some(v) = &a.description {
                set(t, "description", v);
            }
            if let Some(v) = &a.column {
                set(t, "column", v);
            }
            if !add.is_empty() || !remove.is_empty() {
                edit_tags(t, |tags| {
                    tags.retain(|g| !g.as_str().is_some_and(|g| remove.iter().any(|r| r == g)));
                    for g in &add {
                        if !tags.iter().any(|x| x.as_str() == Some(g)) {
                            tags.push(Value::from(g.as_str()));
                        }
                    }
                });
                changed.push("tags");
            }
            t.insert("updatedAt".into(), Value::from(stamp.as_str()));
            Ok((t.clone(), changed.join(", ")))
        })?;
        self.emit(out, &task, || format!("Edited: {} — {} ({changed})", field(&task, "id"), field(&task, "title")))?;
        Ok(Status::Ok)
    }

    /// `done ID...`: to the last column.
    pub(crate) fn done(&self, ids: &[String], out: &mut dyn Write) -> Result<Status> {
        let stamp = self.clock.stamp();
        let tasks = self.file.update(&self.clock, self.diag, |b| {
            let idx = resolve_all(b, ids)?;
            let last = b.last_column().to_string();
            let mut done = Vec::with_capacity(idx.len());
            for i in idx {
                let t = b.task_mut(i).ok_or_else(|| Error::other("task vanished"))?;
                t.insert("column".into(), Value::from(last.as_str()));
                t.insert("updatedAt".into(), Value::from(stamp.as_str()));
                done.push(t.clone());
            }
            Ok(done)
        })?;
        for t in &tasks {
            self.emit(out, t, || format!("Done: {} — {}", field(t, "id"), field(t, "title")))?;
        }
        Ok(Status::Ok)
    }

    /// `rm ID...`: the removed tasks' records are written.
    pub(crate) fn rm(&self, ids: &[String], out: &mut dyn Write) -> Result<Status> {
        let removed = self.file.update(&self.clock, self.diag, |b| {
            let idx = resolve_all(b, ids)?;
            let mut order: Vec<usize> = idx.clone();
            order.sort_unstable_by(|x, y| y.cmp(x));
            let mut taken: HashMap<usize, Map<String, Value>> = HashMap::new();
            for i in order {
                if let Some(t) = b.remove(i) {
                    taken.insert(i, t);
                }
            }
            Ok(idx.iter().filter_map(|i| taken.remove(i)).collect::<Vec<_>>())
        })?;
        for t in &removed {
            self.emit(out, t, || format!("Removed: {} — {}", field(t, "id"), field(t, "title")))?;
        }
        Ok(Status::Ok)
    }

    /// `show ID...`.
    pub(crate) fn show(&self, ids: &[String], out: &mut dyn Write) -> Result<Status> {
        let board = self.file.read(self.diag)?;
        let idx = resolve_all(&board, ids)?;
        for (n, i) in idx.into_iter().enumerate() {
            let Some(t) = board.task(i) else { continue };
            if self.text() {
                if n > 0 {
                    writeln!(out)?;
                }
                write!(out, "{}", render::show_text(&t))?;
            } else {
                ndjson::write(out, &task_record(t.0, &[], &self.clock.stamp()))?;
            }
        }
        Ok(Status::Ok)
    }

    /// `list`: the tasks the filter keeps, in board order.
    pub(crate) fn list(&self, f: &FilterArgs, out: &mut dyn Write) -> Result<Status> {
        let board = self.file.read(self.diag)?;
        let filter = Filter::new(f, &board)?;
        let tasks: Vec<TaskView<'_>> = board.tasks().filter(|t| filter.keeps(t)).collect();
        if self.text() {
            write!(out, "{}", render::list_text(&tasks))?;
        } else {
            let stamp = self.clock.stamp();
            for t in &tasks {
                ndjson::write(out, &task_record(t.0, &[], &stamp))?;
            }
        }
        Ok(Status::Ok)
    }

    /// `stalled`: tasks in the stalling columns whose last change is more than `hours` ago,
    /// most stalled first, with `stalled_hours`. Exit 1 when there are any.
    pub(crate) fn stalled(&self, hours: f64, a: &StalledArgs, out: &mut dyn Write) -> Result<Status> {
        if !hours.is_finite() || hours < 0.0 {
            return Err(Error::usage(format!("--hours: {hours} is not a number of hours")));
        }
        let board = self.file.read(self.diag)?;
        let columns: Vec<String> = if a.column.is_empty() { vec!["in-progress".to_string()] } else { a.column.clone() };
        let known = board.all_columns();
        if let Some(c) = a.column.iter().find(|c| !known.contains(c)) {
            return Err(Error::usage(format!(
                "unknown column '{c}': this board's columns are {}",
                board.columns().join(", ")
            )));
        }
        let now = self.clock.now();
        let mut stalled: Vec<(f64, TaskView<'_>)> = Vec::new();
        for t in board.tasks().filter(|t| columns.iter().any(|c| c == t.column())) {
            let since = t.last_change();
            if since.is_empty() {
                continue;
            }
            let Some(ts) = clock::parse_ts(since) else {
                self.diag.warn(format_args!("{}: '{since}' is not a time; skipped", t.id()));
                continue;
            };
            let age = (now - ts).as_seconds_f64() / 3600.0;
            if age > hours {
                stalled.push(((age * 10.0).round() / 10.0, t));
            }
        }
        stalled.sort_by(|x, y| y.0.total_cmp(&x.0));
        let stamp = self.clock.stamp();
        for (h, t) in &stalled {
            if self.text() {
                let owner = if t.owner().is_empty() { "?" } else { t.owner() };
                writeln!(out, "STALLED: {owner}: {} (since {}) [{}, {h}h]", t.title(), t.last_change(), t.id())?;
            } else {
                ndjson::write(out, &task_record(t.0, &[("stalled_hours", Value::from(*h))], &stamp))?;
            }
        }
        Ok(Status::failures_if(!stalled.is_empty()))
    }

    /// `ingest`: every uptime breach and firing alert of the input becomes a task, unless a
    /// task with the same title is open. The input is read whole first, so the lock is held
    /// only for the one read-modify-write.
    pub(crate) fn ingest(&self, a: &IngestArgs, out: &mut dyn Write) -> Result<Status> {
        let pass_through = !a.tasks_only && !self.text();
        if !a.below.is_finite() {
            return Err(Error::usage("--below: expected a percentage"));
        }
        let rules = ingest::Rules { below: a.below, owner: a.owner.trim().to_string() };
        let (records, wanted) = self.read_wanted(&a.files, &rules, pass_through)?;
        let made = if wanted.is_empty() { Vec::new() } else { self.make_tasks(&wanted, a.verbose)? };
        self.write_ingested(&records, &made, pass_through, out)?;
        Ok(Status::Ok)
    }

    /// Read the whole input: its records (kept only to pass them through) and the tasks they
    /// want, each with the number of records before it.
    fn read_wanted(
        &self,
        files: &[PathBuf],
        rules: &ingest::Rules,
        pass_through: bool,
    ) -> Result<(Vec<Value>, Vec<Placed<ingest::Wanted>>)> {
        let mut records: Vec<Value> = Vec::new();
        let mut wanted: Vec<Placed<ingest::Wanted>> = Vec::new();
        ndjson::for_each_line(&Source::from_args(files), self.read_opts, self.diag, |bytes, _pos| {
            let v = match ndjson::parse_object(bytes) {
                Ok(v) => v,
                Err(why) => return Ok(Err(why)),
            };
            match rules.wanted(&v) {
                Ok(w) => {
                    if let Some(w) = w {
                        wanted.push((records.len(), w));
                    }
                    if pass_through {
                        records.push(v);
                    }
                    Ok(Ok(()))
                }
                Err(why) => Ok(Err(why)),
            }
        })?;
        Ok((records, wanted))
    }

    /// One locked read-modify-write that makes the wanted tasks with no open twin; with
    /// `verbose`, a warning for each one already open.
    fn make_tasks(&self, wanted: &[Placed<ingest::Wanted>], verbose: bool) -> Result<Vec<MadeTask>> {
        let stamp = self.clock.stamp();
        let (made, skipped) = self.file.update(&self.clock, self.diag, |b| add_wanted(b, wanted, &stamp))?;
        if verbose {
            for (title, id) in skipped {
                self.diag.warn(format_args!("already open as {id}: {title}"));
            }
        }
        Ok(made)
    }

    /// What ingest writes: the made tasks as text, or as task records (after the record that
    /// made each, when records pass through).
    fn write_ingested(
        &self,
        records: &[Value],
        made: &[MadeTask],
        pass_through: bool,
        out: &mut dyn Write,
    ) -> Result<()> {
        let stamp = self.clock.stamp();
        if self.text() {
            for (_, t) in made {
                writeln!(out, "Created task: {}", field(t, "title"))?;
            }
        } else if pass_through {
            let mut made = made.iter().peekable();
            for (i, r) in records.iter().enumerate() {
                ndjson::write(out, r)?;
                while let Some((_, t)) = made.next_if(|(at, _)| *at == i) {
                    ndjson::write(out, &task_record(t, &[], &stamp))?;
                }
            }
        } else {
            for (_, t) in made {
                ndjson::write(out, &task_record(t, &[], &stamp))?;
            }
        }
        Ok(())
    }

    /// `render`: the board for people, text columns side by side in `width` cells, or
    /// markdown.
    pub(crate) fn render(&self, f: &FilterArgs, width: usize, out: &mut dyn Write) -> Result<Status> {
        let board = self.file.read(self.diag)?;
        let filter = Filter::new(f, &board)?;
        let names: Vec<String> =
            board.all_columns().into_iter().filter(|c| f.column.is_empty() || f.column.contains(c)).collect();
        let names: Vec<String> = if f.active {
            let last = board.last_column().to_string();
            names.into_iter().filter(|c| *c != last).collect()
        } else {
            names
        };
        let cols = render::Columns::group(&names, board.tasks().filter(|t| filter.keeps(t)));
        match self.format {
            Format::Markdown => write!(out, "{}", render::board_markdown(&cols))?,
            _ => write!(out, "{}", render::board_text(&cols, width))?,
        }
        Ok(Status::Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::SharedBuf;
    use std::path::PathBuf;
    use std::time::Duration;

    struct T {
        dir: PathBuf,
        diag: Diag,
        msgs: SharedBuf,
    }

    impl T {
        fn new(name: &str) -> T {
            let dir = std::env::temp_dir().join(format!("pitcrew-board-engine-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let (diag, msgs) = Diag::memory("board");
            T { dir, diag, msgs }
        }

        fn engine(&self, now: &str, format: Format) -> Engine<'_> {
            Engine {
                file: BoardFile::new(self.dir.join("board.json"), Duration::from_secs(5)),
                clock: Clock::from_arg(Some(now)).unwrap(),
                diag: &self.diag,
                format,
                read_opts: ReadOpts::default(),
            }
        }

        fn board(&self) -> Value {
            serde_json::from_slice(&std::fs::read(self.dir.join("board.json")).unwrap()).unwrap()
        }
    }

    fn records(buf: &[u8]) -> Vec<Value> {
        buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect()
    }

    fn add(e: &Engine<'_>, title: &str, extra: impl FnOnce(&mut AddArgs)) -> Value {
        let mut a = AddArgs {
            title: vec![title.to_string()],
            owner: String::new(),
            priority: cli::Priority::Medium,
            tag: vec![],
            description: String::new(),
            column: None,
        };
        extra(&mut a);
        let mut out = Vec::new();
        e.add(&a, &mut out).unwrap();
        records(&out).remove(0)
    }

    const NOW: &str = "2026-11-23T10:30:00.123Z";

    #[test]
    fn add_move_edit_done_rm() {
        let t = T::new("flow");
        let e = t.engine(NOW, Format::Ndjson);
        let r = add(&e, "Fix API timeout", |a| {
            a.owner = "ops-agent".into();
            a.priority = cli::Priority::High;
            a.tag = vec!["ops,urgent".into(), "ops".into()];
        });
        assert_eq!(r["kind"], "task");
        assert_eq!(r["column"], "open");
        assert_eq!(r["tags"], serde_json::json!(["ops", "urgent"]));
        assert_eq!(r["createdAt"], NOW);
        let id = r["id"].as_str().unwrap().to_string();
        let keys: Vec<String> = t.board()["tasks"][0].as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            ["id", "title", "column", "owner", "priority", "description", "tags", "createdAt", "updatedAt"]
        );

        let later = t.engine("2026-11-23T11:00:00Z", Format::Text);
        let mut out = Vec::new();
        later.move_to(&id[5..9], "in-progress", &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), format!("Moved: {id} — Fix API timeout (open → in-progress)\n"));
        assert_eq!(t.board()["tasks"][0]["updatedAt"], "2026-11-23T11:00:00.000Z");
        assert_eq!(t.board()["tasks"][0]["createdAt"], NOW);

        let err = later.move_to(&id, "doing", &mut Vec::new()).unwrap_err().to_string();
        assert_eq!(err, "unknown column 'doing': this board's columns are open, in-progress, in-review, done");

        let mut out = Vec::new();
        let ea = EditArgs {
            id: id.clone(),
            title: None,
            owner: Some("alice".into()),
            priority: None,
            description: None,
            tag: vec!["blocked".into()],
            untag: vec!["urgent".into()],
            column: None,
        };
        later.edit(&ea, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), format!("Edited: {id} — Fix API timeout (owner, tags)\n"));
        assert_eq!(t.board()["tasks"][0]["tags"], serde_json::json!(["ops", "blocked"]));

        let mut out = Vec::new();
        e.done(std::slice::from_ref(&id), &mut out).unwrap();
        assert_eq!(records(&out)[0]["column"], "done");

        let mut out = Vec::new();
        e.rm(&[id.clone(), id.clone()], &mut out).unwrap();
        assert_eq!(records(&out).len(), 1);
        assert_eq!(t.board()["tasks"], serde_json::json!([]));
        assert_eq!(t.msgs.text(), "");
    }

    #[test]
    fn stalled_counts_hours_since_the_last_change() {
        let t = T::new("stalled");
        let e = t.engine("2026-11-20T00:00:00Z", Format::Ndjson);
        let a = add(&e, "stuck", |a| a.column = Some("in-progress".into()));
        add(&e, "waiting", |a| a.column = Some("open".into()));
        let b = t.engine("2026-11-21T06:00:00Z", Format::Ndjson);
        add(&b, "fresh", |a| a.column = Some("in-progress".into()));
        let now = t.engine("2026-11-21T12:00:00Z", Format::Ndjson);
        let sa = StalledArgs { hours: None, column: vec![] };
        let mut out = Vec::new();
        assert_eq!(now.stalled(24.0, &sa, &mut out).unwrap(), Status::Failures);
        let recs = records(&out);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0]["id"], a["id"]);
        assert_eq!(recs[0]["stalled_hours"], 36.0);
        let mut out = Vec::new();
        assert_eq!(now.stalled(48.0, &sa, &mut out).unwrap(), Status::Ok);
        assert!(out.is_empty());
        let mut out = Vec::new();
        now.stalled(4.0, &sa, &mut out).unwrap();
        assert_eq!(records(&out).iter().map(|r| r["title"].as_str().unwrap()).collect::<Vec<_>>(), ["stuck", "fresh"]);
    }

    #[test]
    fn ingest_makes_each_task_once() {
        let t = T::new("ingest");
        let input = t.dir.join("in.ndjson");
        let lines = [
            r#"{"kind":"uptime","name":"API","uptime_percent":90.0,"total_checks":10,"failures":1,"avg_latency_ms":5,"status":"ok"}"#,
            r#"{"kind":"uptime","name":"Web","uptime_percent":99.9,"status":"ok"}"#,
            r#"{"kind":"alert","level":"error","title":"db down","message":"refused"}"#,
            r#"{"kind":"uptime","name":"API","uptime_percent":90.0,"status":"ok"}"#,
        ];
        std::fs::write(&input, lines.join("\n")).unwrap();
        let e = t.engine(NOW, Format::Ndjson);
        let args = |pass: bool| IngestArgs {
            below: 95.0,
            owner: "ops-agent".into(),
            tasks_only: !pass,
            verbose: true,
            files: vec![input.clone()],
        };
        let mut out = Vec::new();
        e.ingest(&args(false), &mut out).unwrap();
        let made = records(&out);
        let titles: Vec<&str> = made.iter().map(|r| r["title"].as_str().unwrap()).collect();
        assert_eq!(titles, ["Investigate: API at 90.0% uptime", "db down"]);
        assert!(t.msgs.text().contains("already open as"), "{}", t.msgs.text());

        // Again: nothing new, nothing written.
        let before = std::fs::read(t.dir.join("board.json")).unwrap();
        let mut out = Vec::new();
        e.ingest(&args(true), &mut out).unwrap();
        assert_eq!(records(&out).len(), 4, "the input passes through, no tasks");
        assert_eq!(std::fs::read(t.dir.join("board.json")).unwrap(), before);

        // Done tasks are not open: the same breach makes a new task.
        let ids: Vec<String> = made.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
        e.done(&ids[..1], &mut Vec::new()).unwrap();
        let mut out = Vec::new();
        e.ingest(&args(true), &mut out).unwrap();
        let recs = records(&out);
        let kinds: Vec<&str> = recs.iter().map(|r| r["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["uptime", "task", "uptime", "alert", "uptime"]);
    }

    #[test]
    fn list_filters_and_render_draws() {
        let t = T::new("list");
        let e = t.engine(NOW, Format::Ndjson);
        add(&e, "a", |a| {
            a.owner = "x".into();
            a.tag = vec!["ops".into(), "db".into()];
        });
        add(&e, "b", |a| {
            a.owner = "y".into();
            a.tag = vec!["ops".into()];
            a.priority = cli::Priority::Critical;
        });
        let c = add(&e, "c needle", |a| a.column = Some("done".into()));
        let titles = |f: FilterArgs| {
            let mut out = Vec::new();
            e.list(&f, &mut out).unwrap();
            records(&out).iter().map(|r| r["title"].as_str().unwrap().to_string()).collect::<Vec<_>>()
        };
        assert_eq!(titles(FilterArgs::default()), ["a", "b", "c needle"]);
        assert_eq!(titles(FilterArgs { tag: vec!["ops".into(), "db".into()], ..Default::default() }), ["a"]);
        assert_eq!(titles(FilterArgs { owner: vec!["y".into(), "x".into()], ..Default::default() }), ["a", "b"]);
        assert_eq!(titles(FilterArgs { active: true, ..Default::default() }), ["a", "b"]);
        assert_eq!(titles(FilterArgs { search: Some("NEEDLE".into()), ..Default::default() }), ["c needle"]);
        assert_eq!(titles(FilterArgs { priority: vec![cli::Priority::Critical], ..Default::default() }), ["b"]);
        assert!(e.list(&FilterArgs { column: vec!["nope".into()], ..Default::default() }, &mut Vec::new()).is_err());

        let r = t.engine(NOW, Format::Text);
        let mut out = Vec::new();
        r.render(&FilterArgs::default(), 100, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("open (2)"), "{text}");
        assert!(text.contains(c["id"].as_str().unwrap()), "{text}");
        let m = t.engine(NOW, Format::Markdown);
        let mut out = Vec::new();
        m.render(&FilterArgs { active: true, ..Default::default() }, 100, &mut out).unwrap();
        let md = String::from_utf8(out).unwrap();
        assert!(md.starts_with("## open (2)") && !md.contains("## done"), "{md}");
    }
}
