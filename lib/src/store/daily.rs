//! Directories of one file per UTC day (`YYYY-MM-DD.jsonl`, and `.jsonl.gz` once
//! compacted): the metrics probe appends to, and the alert and restart histories notify and
//! recover append to. [`append`] adds a line to a day's file; `prune` deletes daily files
//! past retention, `compact` gzips the files of closed days.
//!
//! Both are safe against a writer appending at the same moment: writers only ever append to
//! the current day's file (UTC), and neither touches today. `compact` compresses into a temporary file
//! in the same directory and renames it into place, so a reader sees the `.jsonl` or the
//! `.jsonl.gz`, never half of one; if the day's file changes while it is being compressed it
//! is compressed again, or left alone. Two maintenance runs exclude each other with a lock
//! file (`.rollup.lock`) in the directory.

use std::fs::{self, File, Metadata};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use serde::Serialize;
use time::{Date, OffsetDateTime};

use crate::clock;
use crate::diag::Diag;
use crate::error::{Error, Result, Status};
use crate::json;
use crate::store;

/// `YYYY-MM-DD.jsonl` or `YYYY-MM-DD.jsonl.gz`: the day, and whether it is compressed.
pub fn daily_name(name: &str) -> Option<(Date, bool)> {
    let (stem, gz) = match name.strip_suffix(".jsonl.gz") {
        Some(s) => (s, true),
        None => (name.strip_suffix(".jsonl")?, false),
    };
    if stem.len() != 10 {
        return None;
    }
    clock::parse_date(stem).map(|d| (d, gz))
}

/// The file of `day` in `dir`: `DIR/YYYY-MM-DD.jsonl`.
pub fn day_path(dir: &Path, day: Date) -> PathBuf {
    dir.join(format!("{}.jsonl", clock::fmt_date(day)))
}

/// Append `record` as one line to the file of `day` in `dir` (created with the directory),
/// in a single `write`, as probe appends to the metrics: concurrent writers never
/// interleave inside a line.
pub fn append<T: Serialize + ?Sized>(dir: &Path, day: Date, record: &T) -> Result<()> {
    let line = json::to_record_line(record)?;
    store::append_line(&day_path(dir, day), &line)
}

/// What a directory of daily files holds, for the records and messages of prune and compact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// The `kind` of the records: `metrics_file`, `history_file`.
    pub kind: &'static str,
    /// What the files are called in the text summaries: `metrics`, `alert history`.
    pub noun: &'static str,
}

/// The metrics directory's files (probe's checks).
pub const METRICS: Family = Family { kind: "metrics_file", noun: "metrics" };

/// What prune or compact did to one file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileRecord {
    pub kind: &'static str,
    /// `pruned`, `compacted`, `skipped` or `failed`.
    pub action: &'static str,
    pub path: String,
    pub date: String,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compressed_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    pub timestamp: String,
}

impl FileRecord {
    fn new(
        family: Family,
        action: &'static str,
        path: &Path,
        date: Date,
        bytes: u64,
        dry_run: bool,
        stamp: &str,
    ) -> FileRecord {
        FileRecord {
            kind: family.kind,
            action,
            path: path.display().to_string(),
            date: clock::fmt_date(date),
            bytes,
            compressed_bytes: None,
            detail: None,
            dry_run,
            timestamp: stamp.to_string(),
        }
    }

    fn file_name(&self) -> String {
        Path::new(&self.path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// One line of the text output.
    pub fn text_line(&self) -> String {
        let verb = match (self.action, self.dry_run) {
            ("pruned", true) => "would prune",
            ("compacted", true) => "would compact",
            (a, _) => a,
        };
        let mut line = format!("{verb} {} ({})", self.file_name(), human_bytes(self.bytes));
        if let Some(c) = self.compressed_bytes {
            line = format!("{verb} {}: {} -> {}", self.file_name(), human_bytes(self.bytes), human_bytes(c));
        }
        if let Some(d) = &self.detail {
            line.push_str(&format!(": {d}"));
        }
        line
    }
}

/// `512 B`, `12.3 KiB`, `4.0 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// How prune and compact report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Ndjson,
    Text,
}

/// The daily files of `dir` (both kinds), sorted by name.
fn daily_files(dir: &Path) -> Result<Vec<(PathBuf, Date, bool)>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::path("cannot read directory", dir, e)),
    };
    let mut v = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::path("cannot read directory", dir, e))?;
        if let Some((date, gz)) = entry.file_name().to_str().and_then(daily_name) {
            v.push((entry.path(), date, gz));
        }
    }
    v.sort();
    Ok(v)
}

/// Remove the temporary files of compactions killed while writing
/// (`.YYYY-MM-DD.jsonl.gz.PID.RANDOM.tmp`, each a part of a day's gzip). Called under the
/// directory's maintenance lock: no other compaction is running, so every one is dead.
fn remove_dead_temps(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some((target, _pid)) = name.to_str().and_then(store::parse_temp_name) else { continue };
        if daily_name(target).is_some_and(|(_, gz)| gz) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Run `work` holding the directory's maintenance lock (when the directory exists), after
/// removing what compactions killed while writing left behind (not in a dry run).
fn maintaining(dir: &Path, dry_run: bool, work: impl FnOnce() -> Result<Status>) -> Result<Status> {
    if !dir.is_dir() {
        return work();
    }
    let mut lock = store::Lock::open(&dir.join(".rollup.lock"))?;
    let _held = lock.acquire()?;
    if !dry_run {
        remove_dead_temps(dir);
    }
    work()
}

fn emit(out: &mut dyn Write, style: Report, r: &FileRecord) -> Result<()> {
    match style {
        Report::Ndjson => json::write(out, r),
        Report::Text => Ok(writeln!(out, "{}", r.text_line())?),
    }
}

/// Delete the daily files whose day began more than `retention_days` before `now` (the
/// kit's rule: `file_date < now - retention`). Today's file is never one of them.
#[allow(clippy::too_many_arguments)]
pub fn prune(
    dir: &Path,
    family: Family,
    retention_days: u32,
    now: OffsetDateTime,
    dry_run: bool,
    style: Report,
    out: &mut dyn Write,
    diag: &Diag,
) -> Result<Status> {
    maintaining(dir, dry_run, || prune_locked(dir, family, retention_days, now, dry_run, style, out, diag))
}

#[allow(clippy::too_many_arguments)]
fn prune_locked(
    dir: &Path,
    family: Family,
    retention_days: u32,
    now: OffsetDateTime,
    dry_run: bool,
    style: Report,
    out: &mut dyn Write,
    diag: &Diag,
) -> Result<Status> {
    let cutoff = now - time::Duration::days(i64::from(retention_days.max(1)));
    let stamp = clock::fmt_ts(now);
    let mut status = Status::Ok;
    let mut removed = 0u64;
    for (path, date, _) in daily_files(dir)? {
        if date.midnight().assume_utc() >= cutoff {
            continue;
        }
        let bytes = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut rec = FileRecord::new(family, "pruned", &path, date, bytes, dry_run, &stamp);
        if !dry_run {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    diag.warn(format_args!("cannot remove {}: {e}", path.display()));
                    rec.action = "failed";
                    rec.detail = Some(e.to_string());
                    status = Status::Failures;
                }
            }
        }
        if rec.action == "pruned" {
            removed += 1;
        }
        emit(out, style, &rec)?;
    }
    if removed > 0 && !dry_run {
        let _ = store::sync_dir(dir);
    }
    if style == Report::Text {
        let (days, noun) = (retention_days, family.noun);
        match (removed, dry_run) {
            (0, _) => writeln!(out, "No {noun} files older than {days} days.")?,
            (n, true) => writeln!(out, "Would clean up {n} old {noun} file(s).")?,
            (n, false) => writeln!(out, "Cleaned up {n} old {noun} file(s).")?,
        }
    }
    Ok(status)
}

/// Gzip every `.jsonl` of a day before `today` into `.jsonl.gz`, then remove the `.jsonl`.
#[allow(clippy::too_many_arguments)]
pub fn compact(
    dir: &Path,
    family: Family,
    today: Date,
    now: OffsetDateTime,
    dry_run: bool,
    style: Report,
    out: &mut dyn Write,
    diag: &Diag,
) -> Result<Status> {
    maintaining(dir, dry_run, || compact_locked(dir, family, today, now, dry_run, style, out, diag))
}

#[allow(clippy::too_many_arguments)]
fn compact_locked(
    dir: &Path,
    family: Family,
    today: Date,
    now: OffsetDateTime,
    dry_run: bool,
    style: Report,
    out: &mut dyn Write,
    diag: &Diag,
) -> Result<Status> {
    let stamp = clock::fmt_ts(now);
    let mut status = Status::Ok;
    let mut done = 0u64;
    let mut saved: i128 = 0;
    for (path, date, gz) in daily_files(dir)? {
        if gz || date >= today {
            continue;
        }
        let bytes = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if dry_run {
            emit(out, style, &FileRecord::new(family, "compacted", &path, date, bytes, true, &stamp))?;
            done += 1;
            continue;
        }
        let rec = match compact_one(family, &path, date, &stamp) {
            Ok(rec) => rec,
            Err(e) => {
                diag.warn(&e);
                let mut rec = FileRecord::new(family, "failed", &path, date, bytes, false, &stamp);
                rec.detail = Some(e.to_string());
                rec
            }
        };
        match rec.action {
            "compacted" => {
                done += 1;
                saved += i128::from(rec.bytes) - i128::from(rec.compressed_bytes.unwrap_or(0));
            }
            _ => status = Status::Failures,
        }
        if rec.action == "skipped" {
            diag.warn(format_args!("{}: {}", path.display(), rec.detail.as_deref().unwrap_or("skipped")));
        }
        emit(out, style, &rec)?;
    }
    if style == Report::Text {
        // The metrics keep the Agent Ops Kit's words; other families are named.
        let (of, noun) = if family == METRICS {
            (String::new(), String::new())
        } else {
            (format!(" of {}", family.noun), format!(" {}", family.noun))
        };
        match (done, dry_run) {
            (0, _) => writeln!(out, "No closed days{of} to compact.")?,
            (n, true) => writeln!(out, "Would compact {n}{noun} file(s).")?,
            (n, false) => {
                writeln!(out, "Compacted {n}{noun} file(s), {} saved.", human_bytes(saved.max(0) as u64))?;
            }
        }
    }
    Ok(status)
}

/// The `.jsonl.gz` next to a `.jsonl`.
fn gz_path(plain: &Path) -> PathBuf {
    let mut s = plain.as_os_str().to_owned();
    s.push(".gz");
    PathBuf::from(s)
}

fn same_file_state(a: &Metadata, b: &Metadata) -> bool {
    a.len() == b.len() && a.modified().ok() == b.modified().ok()
}

/// How a day's `.jsonl` relates to the `.jsonl.gz` already there.
#[derive(Debug, PartialEq, Eq)]
enum Relation {
    /// The `.gz` holds every line of the `.jsonl` (a compaction stopped before removing it).
    Same,
    /// The `.jsonl` holds everything the `.gz` does, and more.
    Extends,
    /// Different lines: both are kept, the `.gz`'s first.
    Differs,
}

fn relation(gz: &Path, plain: &Path) -> io::Result<Relation> {
    let mut a = BufReader::new(MultiGzDecoder::new(BufReader::new(open(gz)?)));
    let mut b = BufReader::new(open(plain)?);
    let mut ba = vec![0u8; 64 * 1024];
    let mut bb = vec![0u8; 64 * 1024];
    loop {
        let na = read_full(&mut a, &mut ba)?;
        let nb = read_full(&mut b, &mut bb[..na.max(1)])?;
        if na == 0 {
            return Ok(if nb == 0 { Relation::Same } else { Relation::Extends });
        }
        if ba[..nb] != bb[..nb] {
            return Ok(Relation::Differs);
        }
        if nb < na {
            // The .jsonl ended inside the .gz's lines: all of it is there already.
            return Ok(Relation::Same);
        }
    }
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Compress one closed day. A day whose `.jsonl` changes while it is compressed is tried
/// once more, then left alone (`skipped`).
fn compact_one(family: Family, plain: &Path, date: Date, stamp: &str) -> Result<FileRecord> {
    let gz = gz_path(plain);
    let fail = |what: &'static str| move |e: io::Error| Error::path(what, plain, e);
    let before = fs::metadata(plain).map_err(fail("cannot stat"))?;
    let mut rec = FileRecord::new(family, "compacted", plain, date, before.len(), false, stamp);
    let relation = if gz.exists() { Some(relation(&gz, plain).map_err(fail("cannot compare"))?) } else { None };
    if relation == Some(Relation::Same) {
        fs::remove_file(plain).map_err(fail("cannot remove"))?;
        store::sync_dir(parent(plain)).map_err(fail("cannot sync the directory of"))?;
        rec.compressed_bytes = fs::metadata(&gz).ok().map(|m| m.len());
        rec.detail = Some("finished an interrupted compaction".into());
        return Ok(rec);
    }
    let merge = relation == Some(Relation::Differs);
    let dir = store::Dir::open(parent(plain))?;
    let gz_name = gz.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    for _attempt in 0..2 {
        let start = fs::metadata(plain).map_err(fail("cannot stat"))?;
        // Created exclusively under a name no one can predict; removed unless committed.
        let mut tmp = dir.temp(&gz_name, store::Perm::Shared)?;
        let file = tmp.take_file().ok_or_else(|| Error::other("the temporary is closed"))?;
        let written = write_gz(file, plain, if merge { Some(&gz) } else { None });
        let (read, size) = written.map_err(|e| Error::path("cannot compress", plain, e))?;
        let after = fs::metadata(plain).map_err(fail("cannot stat"))?;
        if !same_file_state(&start, &after) || read != start.len() {
            continue;
        }
        tmp.commit(&gz_name)?;
        let last = fs::metadata(plain).map_err(fail("cannot stat"))?;
        if !same_file_state(&after, &last) {
            rec.action = "skipped";
            rec.detail = Some("changed while compressing; the .jsonl is kept and stays authoritative".into());
            return Ok(rec);
        }
        fs::remove_file(plain).map_err(fail("cannot remove"))?;
        store::sync_dir(parent(plain)).map_err(fail("cannot sync the directory of"))?;
        rec.bytes = start.len();
        rec.compressed_bytes = Some(size);
        if merge {
            rec.detail = Some("merged with the lines already in the .jsonl.gz".into());
        }
        return Ok(rec);
    }
    rec.action = "skipped";
    rec.detail = Some("changed while compressing, twice; left as it is".into());
    Ok(rec)
}

fn parent(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// A metrics file opened to read it: a regular file, never through a link.
fn open(p: &Path) -> io::Result<File> {
    store::read::open_stream(p, false)
}

/// Write `file` (a temporary) as the gzip of (the old `.gz`'s lines, then) `plain`; durable
/// before it returns. Returns the bytes read from `plain` and the compressed size.
fn write_gz(file: File, plain: &Path, prefix: Option<&Path>) -> io::Result<(u64, u64)> {
    let mut enc = GzEncoder::new(BufWriter::with_capacity(256 * 1024, file), Compression::default());
    if let Some(old) = prefix {
        let mut r = MultiGzDecoder::new(BufReader::new(open(old)?));
        let mut last = [0u8; 1];
        let n = copy_tracking_last(&mut r, &mut enc, &mut last)?;
        if n > 0 && last[0] != b'\n' {
            enc.write_all(b"\n")?;
        }
    }
    let mut src = open(plain)?;
    let read = io::copy(&mut src, &mut enc)?;
    let buf = enc.finish()?;
    let file = buf.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let size = file.metadata()?.len();
    Ok((read, size))
}

fn copy_tracking_last(r: &mut dyn Read, w: &mut dyn Write, last: &mut [u8; 1]) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        last[0] = buf[n - 1];
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Diag;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pitcrew-rollup-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn gunzip(p: &Path) -> String {
        let mut s = String::new();
        MultiGzDecoder::new(File::open(p).unwrap()).read_to_string(&mut s).unwrap();
        s
    }

    fn now() -> OffsetDateTime {
        clock::parse_ts("2026-11-23T10:00:00Z").unwrap()
    }

    #[test]
    fn prune_follows_the_kits_cutoff() {
        let d = tmpdir("prune");
        for name in ["2026-08-24.jsonl", "2026-08-25.jsonl.gz", "2026-08-26.jsonl", "2026-11-23.jsonl", "notes.txt"] {
            fs::write(d.join(name), "{}\n").unwrap();
        }
        let (diag, _) = Diag::memory("rollup");
        let mut out = Vec::new();
        // cutoff = 2026-08-25T10:00: the 25th began before it, the 26th after.
        let st = prune(&d, METRICS, 90, now(), false, Report::Text, &mut out, &diag).unwrap();
        assert_eq!(st, Status::Ok);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("pruned 2026-08-24.jsonl (3 B)"), "{text}");
        assert!(text.contains("Cleaned up 2 old metrics file(s)."), "{text}");
        assert!(!d.join("2026-08-25.jsonl.gz").exists());
        assert!(d.join("2026-08-26.jsonl").exists());
        assert!(d.join("notes.txt").exists());
    }

    #[test]
    fn compact_gzips_closed_days_only() {
        let d = tmpdir("compact");
        fs::write(d.join("2026-11-21.jsonl"), "{\"name\":\"a\",\"status\":\"up\"}\n").unwrap();
        fs::write(d.join("2026-11-23.jsonl"), "{\"name\":\"a\",\"status\":\"up\"}\n").unwrap();
        let (diag, _) = Diag::memory("rollup");
        let mut out = Vec::new();
        let today = now().date();
        let st = compact(&d, METRICS, today, now(), false, Report::Ndjson, &mut out, &diag).unwrap();
        assert_eq!(st, Status::Ok);
        assert!(!d.join("2026-11-21.jsonl").exists());
        assert_eq!(gunzip(&d.join("2026-11-21.jsonl.gz")), "{\"name\":\"a\",\"status\":\"up\"}\n");
        assert!(d.join("2026-11-23.jsonl").exists(), "today is left to probe");
        let rec: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(rec["action"], "compacted");
        let names: Vec<String> =
            fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    }

    #[test]
    fn compact_finishes_or_merges_what_a_stopped_run_left() {
        let d = tmpdir("compact-both");
        let (diag, _) = Diag::memory("rollup");
        // Stopped after the rename: the same lines in both.
        fs::write(d.join("2026-11-20.jsonl"), "a\n").unwrap();
        write_gz(File::create(d.join("2026-11-20.jsonl.gz")).unwrap(), &d.join("2026-11-20.jsonl"), None).unwrap();
        // A .jsonl that grew after an earlier compaction.
        fs::write(d.join("2026-11-21.jsonl"), "b\n").unwrap();
        write_gz(File::create(d.join("2026-11-21.jsonl.gz")).unwrap(), &d.join("2026-11-21.jsonl"), None).unwrap();
        fs::write(d.join("2026-11-21.jsonl"), "b\nc\n").unwrap();
        // Different lines in each.
        fs::write(d.join("2026-11-22.jsonl"), "old").unwrap();
        write_gz(File::create(d.join("2026-11-22.jsonl.gz")).unwrap(), &d.join("2026-11-22.jsonl"), None).unwrap();
        fs::write(d.join("2026-11-22.jsonl"), "new\n").unwrap();
        let mut out = Vec::new();
        compact(&d, METRICS, now().date(), now(), false, Report::Text, &mut out, &diag).unwrap();
        assert_eq!(gunzip(&d.join("2026-11-20.jsonl.gz")), "a\n");
        assert_eq!(gunzip(&d.join("2026-11-21.jsonl.gz")), "b\nc\n");
        assert_eq!(gunzip(&d.join("2026-11-22.jsonl.gz")), "old\nnew\n");
        for day in ["20", "21", "22"] {
            assert!(!d.join(format!("2026-11-{day}.jsonl")).exists());
        }
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("finished an interrupted compaction"), "{text}");
        assert!(text.contains("Compacted 3 file(s)"), "{text}");
    }

    #[test]
    fn dry_runs_change_nothing() {
        let d = tmpdir("dry");
        fs::write(d.join("2026-01-01.jsonl"), "x\n").unwrap();
        let (diag, _) = Diag::memory("rollup");
        let mut out = Vec::new();
        compact(&d, METRICS, now().date(), now(), true, Report::Text, &mut out, &diag).unwrap();
        prune(&d, METRICS, 90, now(), true, Report::Text, &mut out, &diag).unwrap();
        assert!(d.join("2026-01-01.jsonl").exists());
        assert!(!d.join("2026-01-01.jsonl.gz").exists());
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("would compact 2026-01-01.jsonl"), "{text}");
        assert!(text.contains("would prune 2026-01-01.jsonl"), "{text}");
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 20), "5.0 MiB");
    }
}
