//! Reading metrics lines fast and in constant memory.
//!
//! A line is never turned into a generic JSON value: it is deserialized into `RawLine`,
//! which borrows the five fields rollup needs (`kind`, `name`, `status`, `latency_ms`,
//! `timestamp`) from the reused line buffer as raw JSON text and skips the rest. Timestamps
//! are parsed only when an incident or a day needs them, by a fast path for the forms probe
//! and the Agent Ops Kit write, falling back to the lenient [`clock::parse_ts`].
//!
//! Malformed and torn lines are counted and reported once, at the end, with the first one's
//! place; `--strict` makes the first one fatal.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use serde::Deserialize;
use serde_json::value::RawValue;
use time::Date;

use super::coverage::Host;
use super::fast::{self, Fields};
use super::stats::{Latency, Seen, ServiceStats};
use crate::clock;
use crate::entry::Diag;
use crate::error::{Error, Result};
use crate::ndjson::LineReader;
use crate::ndjson::{self, Line};

/// The fields of a metrics line rollup reads, as raw JSON text borrowed from the line (the
/// slow path, for lines [`fast::parse`] leaves to serde_json).
#[derive(Deserialize)]
struct RawLine<'a> {
    #[serde(borrow, default)]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    status: Option<&'a RawValue>,
    #[serde(borrow, default)]
    latency_ms: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
}

/// The text between the quotes of a JSON string literal without escapes.
fn unquote(raw: &str) -> Option<&str> {
    raw.strip_prefix('"')?.strip_suffix('"')
}

/// The text of a JSON string literal (raw, quotes included), borrowed when it has no
/// escapes; None for other JSON values.
fn json_str(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

fn seen_of(raw: Option<&str>) -> Seen {
    let Some(raw) = raw else { return Seen::Other };
    match raw {
        "\"up\"" => Seen::Up,
        "\"down\"" => Seen::Down,
        "\"degraded\"" => Seen::Degraded,
        "\"recovered\"" => Seen::Recovered,
        s if s.contains('\\') => match json_str(raw).as_deref() {
            Some("up") => Seen::Up,
            Some("down") => Seen::Down,
            Some("degraded") => Seen::Degraded,
            Some("recovered") => Seen::Recovered,
            _ => Seen::Other,
        },
        _ => Seen::Other,
    }
}

/// A line's `latency_ms` (its raw JSON text), validated: the one place that decides whether a
/// latency can be counted. A number as the Agent Ops Kit's Python would add it: integers
/// exactly, anything with a fraction or exponent as a float. Numeric strings are read as
/// numbers (as every numeric field of pitcrew's input), booleans as 1 and 0 (as Python adds
/// them), a missing or null one as 0. Anything else makes the line malformed, never a 0 in
/// the average: a string that is no number (`"abc"`), an array or object, a negative
/// latency, or one past any double (`1e400`, `"inf"`, `"nan"`).
fn latency_of(raw: Option<&str>) -> Result<Latency, String> {
    let Some(s) = raw else { return Ok(Latency::Int(0)) };
    let value = match s.as_bytes().first() {
        Some(b'"') => json_str(s).and_then(|t| number(t.trim())),
        Some(b't') if s == "true" => Some(Latency::Int(1)),
        Some(b'f') if s == "false" => Some(Latency::Int(0)),
        Some(b'n') if s == "null" => Some(Latency::Int(0)),
        _ => number(s),
    };
    let shown = || short(s);
    match value {
        None => Err(format!("latency_ms: {} is not a number", shown())),
        Some(Latency::Float(f)) if !f.is_finite() => Err(format!("latency_ms: {} is not a finite number", shown())),
        Some(l) if l.as_f64() < 0.0 => Err(format!("latency_ms: {} is negative", shown())),
        // A few near the largest double would overflow the window's sum.
        Some(l) if l.as_f64() > MAX_LATENCY_MS => {
            Err(format!("latency_ms: {} is more than {MAX_LATENCY_MS:.0} ms (11.6 days)", shown()))
        }
        Some(l) => Ok(l),
    }
}

/// A JSON number's text as a latency; `None` when it is not one.
fn number(s: &str) -> Option<Latency> {
    if !s.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'))
        && let Ok(i) = s.parse::<i64>()
    {
        return Some(Latency::Int(i));
    }
    s.parse::<f64>().ok().map(Latency::Float)
}

/// The largest latency a line may have: a billion milliseconds, eleven and a half days. More
/// is not a measurement, and a few such numbers would overflow a window's sum.
pub(crate) const MAX_LATENCY_MS: f64 = 1e9;

/// The epoch day (days since 1970-01-01) of a date.
pub(crate) fn day_number(d: Date) -> i32 {
    clock::epoch_day(d)
}

/// The date of an epoch day.
pub(crate) fn day_date(n: i32) -> Option<Date> {
    clock::epoch_date(n)
}

/// Milliseconds since the epoch of a timestamp ([`clock::parse_millis`]).
pub fn ts_millis(s: &str) -> Option<i64> {
    clock::parse_millis(s)
}

/// The UTC day of a timestamp.
pub(crate) fn ts_day(s: &str) -> Option<i32> {
    ts_millis(s).map(|ms| ms.div_euclid(86_400_000) as i32)
}

/// A fast hash for service names (the multiply-rotate hash of rustc's FxHasher): names come
/// from the operator's own metrics, so resistance to crafted collisions is not needed, and
/// the lookup is on every line.
#[derive(Default, Clone, Copy)]
pub(crate) struct NameHasher(u64);

impl Hasher for NameHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Services by name, in first-seen order, with their statistics.
#[derive(Debug, Default)]
pub struct Agg {
    index: HashMap<Box<str>, usize, BuildHasherDefault<NameHasher>>,
    pub(crate) services: Vec<(Box<str>, ServiceStats)>,
}

impl Agg {
    pub(crate) fn get(&mut self, name: &str) -> &mut ServiceStats {
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => {
                let i = self.services.len();
                self.index.insert(name.into(), i);
                self.services.push((name.into(), ServiceStats::default()));
                i
            }
        };
        &mut self.services[i].1
    }

    /// Continue with the services of lines that came right after.
    pub(crate) fn merge(&mut self, later: Agg) {
        for (name, stats) in later.services {
            self.get(&name).merge(stats);
        }
    }

    /// The services sorted by name (the Agent Ops Kit's report order).
    pub fn sorted(&self) -> Vec<(&str, &ServiceStats)> {
        let mut v: Vec<(&str, &ServiceStats)> = self.services.iter().map(|(n, s)| (&**n, s)).collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }
}

/// How lines are read and grouped.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScanOpts {
    /// Group by day (`--by day`) instead of one window.
    pub by_day: bool,
    /// Keep per-day cells from this epoch day on (the status page).
    pub day_cells_from: Option<i32>,
    /// Take only lines of these epoch days (inclusive); files named by date outside are not
    /// even opened.
    pub filter: Option<(i32, i32)>,
    /// Copy records of other kinds to the output (NDJSON only).
    pub pass_through: bool,
    /// Track the first and last day seen (no window to report otherwise).
    pub track_range: bool,
    /// Keep every incident of every service (`rollup incidents`; one stream, never merged).
    pub log_incidents: bool,
    /// Stop at the first malformed line (an error) instead of counting it.
    pub strict: bool,
    /// The longest line read, in bytes; longer ones are malformed.
    pub max_line: usize,
    /// Keep each service's timeline for the uptime by quorum, with this window (ms).
    pub quorum_window_ms: Option<i64>,
}

/// The malformed lines: how many, and the first one's place and reason.
#[derive(Debug, Default)]
pub struct Rejects {
    /// How many lines were malformed.
    pub count: u64,
    pub(crate) first: Option<String>,
}

/// The state of a scan: the window's services, or one set per day.
#[derive(Debug, Default)]
pub struct Scanner {
    pub(crate) opts: ScanOpts,
    /// The services of the whole window (when not by day).
    pub window: Agg,
    pub(crate) days: BTreeMap<i32, Agg>,
    /// The malformed lines.
    pub rejects: Rejects,
    /// Files refused by the bounded reader (a FIFO, a device, a link in the metrics
    /// directory): each is said and counted, the others are read.
    pub(crate) refused: Vec<String>,
    /// First and last day seen, when tracked.
    pub(crate) range: Option<(i32, i32)>,
    /// The check records taken.
    pub lines: u64,
    /// When any check was written: the monitor's own silences.
    pub(crate) host: Host,
    /// With `--exclude-maintenance`: the services' maintenance windows.
    pub(crate) maintenance: super::maintenance::Lookup,
    /// With a quorum: each service's timeline (`quorum_window_ms`).
    pub(crate) tracks: super::quorum::Tracks,
}

/// Where a reader's lines come from: its name for messages and, for a daily file, its day.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The name messages give the input (its path, or `stdin`).
    pub name: &'a str,
    /// The epoch day of a daily file, when the input is one.
    pub day: Option<i32>,
}

impl Scanner {
    /// A scanner that has read nothing yet.
    pub fn new(opts: ScanOpts) -> Scanner {
        Scanner { opts, ..Scanner::default() }
    }

    fn reject(&mut self, origin: Origin<'_>, line: u64, why: String) -> Result<()> {
        if self.opts.strict {
            return Err(Error::Input { source: origin.name.to_string(), line, message: why });
        }
        self.rejects.count += 1;
        if self.rejects.first.is_none() {
            self.rejects.first = Some(format!("{}:{line}: {why}", origin.name));
        }
        Ok(())
    }

    /// Read every line of `reader`. Records of other kinds go to `out` when passing through.
    /// A gzip stream that turns out corrupt or truncated counts as one bad line and ends
    /// that input; other read errors are fatal.
    pub fn scan<R: Read>(&mut self, reader: R, origin: Origin<'_>, out: &mut dyn Write) -> Result<()> {
        let mut lines = LineReader::with_block(reader, self.opts.max_line, super::READ_BLOCK);
        let mut last = 0u64;
        loop {
            let next = match lines.next_line() {
                Ok(n) => n,
                Err(e) if is_corrupt(&e) => {
                    return self.reject(origin, last + 1, format!("corrupt compressed data: {e}"));
                }
                Err(e) => return Err(Error::io(format!("reading {}", origin.name), e)),
            };
            let Some((lineno, line)) = next else { return Ok(()) };
            last = lineno;
            let verdict = match line {
                Line::Text(bytes) => self.line(bytes, origin, out)?,
                Line::TooLong(n) => {
                    Err(format!("line of {n} bytes is longer than the limit of {} bytes", self.opts.max_line))
                }
            };
            if let Err(why) = verdict {
                self.reject(origin, lineno, why)?;
            }
        }
    }

    /// One line: `Ok(Err(why))` when it is malformed.
    fn line<'b>(
        &mut self,
        bytes: &'b [u8],
        origin: Origin<'_>,
        out: &mut dyn Write,
    ) -> Result<std::result::Result<(), String>> {
        let raw = match fast::parse(bytes) {
            Some(f) => f,
            None => match slow_parse(bytes) {
                Ok(f) => f,
                Err(why) => return Ok(Err(why)),
            },
        };
        if let Some(kind) = raw.kind
            && kind != "\"check\""
            && json_str(kind).as_deref() != Some("check")
        {
            if self.opts.pass_through {
                out.write_all(bytes)?;
                out.write_all(b"\n")?;
            }
            return Ok(Ok(()));
        }
        let text = |raw_str: &'b str| -> Option<Cow<'b, str>> {
            if raw.plain { unquote(raw_str).map(Cow::Borrowed) } else { json_str(raw_str) }
        };
        let name: Cow<'_, str> = match raw.name {
            None => Cow::Borrowed("unknown"),
            Some(n) => match text(n) {
                Some(s) => s,
                None => return Ok(Err(format!("name: expected a string, found {}", short(n)))),
            },
        };
        let status = seen_of(raw.status);
        let latency = match latency_of(raw.latency_ms) {
            Ok(l) => l,
            Err(why) => return Ok(Err(why)),
        };
        let ts: Option<Cow<'_, str>> = raw.timestamp.and_then(text);
        let day = match self.place(origin, ts.as_deref()) {
            Ok(Some(day)) => day,
            Ok(None) => return Ok(Ok(())),
            Err(why) => return Ok(Err(why)),
        };
        Ok(self.count(&name, status, latency, ts.as_deref(), day))
    }

    /// The epoch day of a line, when anything needs it, with the window filter and the range
    /// applied: `Ok(None)` when the line falls outside the window.
    #[inline]
    fn place(&mut self, origin: Origin<'_>, ts: Option<&str>) -> std::result::Result<Option<Option<i32>>, String> {
        let needs_day = self.opts.by_day
            || self.opts.filter.is_some()
            || self.opts.track_range
            || self.opts.day_cells_from.is_some();
        let day = if needs_day { origin.day.or_else(|| ts.and_then(ts_day)) } else { origin.day };
        if let Some((from, to)) = self.opts.filter {
            match day {
                Some(d) if d >= from && d <= to => {}
                Some(_) => return Ok(None),
                None => return Err("no valid timestamp to place the line in the window".into()),
            }
        }
        if self.opts.track_range
            && let Some(d) = day
        {
            self.range = Some(match self.range {
                None => (d, d),
                Some((a, b)) => (a.min(d), b.max(d)),
            });
        }
        Ok(Some(day))
    }

    /// Count a check of `name` in the aggregate of its day (or of the window).
    #[inline]
    fn count(
        &mut self,
        name: &str,
        status: Seen,
        latency: Latency,
        ts: Option<&str>,
        day: Option<i32>,
    ) -> std::result::Result<(), String> {
        let agg = if self.opts.by_day {
            match day {
                Some(d) => self.days.entry(d).or_default(),
                None => return Err("no valid timestamp to place the line in a day".into()),
            }
        } else {
            &mut self.window
        };
        let ms = ts.and_then(ts_millis);
        if let Some(ms) = ms {
            self.host.observe(ms);
        }
        if let (Some(window_ms), Some(ms)) = (self.opts.quorum_window_ms, ms)
            && status != Seen::Other
        {
            let track = match self.tracks.get_mut(name) {
                Some(t) => t,
                None => self.tracks.entry(name.to_string()).or_default(),
            };
            track.observe(ms, status == Seen::Down, window_ms);
        }
        let stats = agg.get(name);
        stats.cells_from = self.opts.day_cells_from;
        if self.opts.log_incidents && stats.incidents.all.is_none() {
            stats.incidents.all = Some(Vec::new());
        }
        stats.add(status, latency, &mut || ms);
        if let Some(ms) = ms.filter(|_| self.maintenance.maint.is_some())
            && self.maintenance.covers(name, ms)
        {
            stats.in_maintenance(status);
        }
        if let (Some(from), Some(d)) = (self.opts.day_cells_from, day)
            && d >= from
        {
            stats.add_day(d, status, latency);
        }
        stats.last_ts.clear();
        if let Some(t) = ts {
            stats.last_ts.push_str(t);
        }
        self.lines += 1;
        Ok(())
    }

    /// Continue with what another scanner read of the lines that came right after.
    pub(crate) fn absorb(&mut self, later: Scanner) {
        self.window.merge(later.window);
        for (day, agg) in later.days {
            self.days.entry(day).or_default().merge(agg);
        }
        self.rejects.count += later.rejects.count;
        if self.rejects.first.is_none() {
            self.rejects.first = later.rejects.first;
        }
        self.refused.extend(later.refused);
        if let Some((a, b)) = later.range {
            self.range = Some(match self.range {
                None => (a, b),
                Some((x, y)) => (x.min(a), y.max(b)),
            });
        }
        self.lines += later.lines;
        self.host.merge(later.host);
        if let Some(window_ms) = self.opts.quorum_window_ms {
            for (name, track) in later.tracks {
                self.tracks.entry(name).or_default().merge(track, window_ms);
            }
        }
    }

    /// Take the days up to and including `day` (`--by day` over the daily files, which come
    /// in day order: a finished day leaves memory).
    pub(crate) fn take_days_through(&mut self, day: i32) -> Vec<(i32, Agg)> {
        let later = match day.checked_add(1) {
            Some(next) => self.days.split_off(&next),
            None => BTreeMap::new(),
        };
        std::mem::replace(&mut self.days, later).into_iter().collect()
    }

    /// Report the malformed lines once, on stderr, and count them for the exit status.
    pub(crate) fn report_rejects(&self, diag: &Diag) {
        for r in &self.refused {
            diag.count_rejected(1);
            diag.warn(r);
        }
        if self.rejects.count > 0 {
            diag.count_rejected(self.rejects.count);
            diag.warn(format_args!(
                "{} malformed line(s) skipped (first: {})",
                self.rejects.count,
                self.rejects.first.as_deref().unwrap_or("?")
            ));
        }
    }
}

/// serde_json's reading of a line the fast path gave up on: the fields, or what is wrong.
/// Public so that the fuzzer can hold [`fast::parse`] to the same answers.
pub fn slow_parse(bytes: &[u8]) -> std::result::Result<Fields<'_>, String> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Ok(_) => "expected a JSON object".to_string(),
            Err(e) => ndjson::json_error_message(&e),
        });
    }
    let raw: RawLine<'_> = serde_json::from_slice(bytes).map_err(|e| ndjson::json_error_message(&e))?;
    Ok(Fields {
        kind: raw.kind.map(RawValue::get),
        name: raw.name.map(RawValue::get),
        status: raw.status.map(RawValue::get),
        latency_ms: raw.latency_ms.map(RawValue::get),
        timestamp: raw.timestamp.map(RawValue::get),
        plain: false,
    })
}

fn short(s: &str) -> String {
    crate::util::truncate(s, 40)
}

/// Errors a gzip decoder gives on corrupt or truncated data.
fn is_corrupt(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::UnexpectedEof)
}

pub(crate) use crate::store::daily::daily_name;

/// The day of a file named by date, from its path.
pub(crate) fn daily_path(p: &Path) -> Option<(Date, bool)> {
    daily_name(p.file_name()?.to_str()?)
}

/// One daily file of a metrics directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DayFile {
    pub date: Date,
    pub path: PathBuf,
    /// The day's other file: the `.jsonl.gz` when `path` is the `.jsonl`.
    pub alt: Option<PathBuf>,
}

/// The daily files of `dir` in day order, one per day: the `.jsonl` when a day has both (a
/// compaction that stopped half-way leaves both, and the `.jsonl` is then the whole day).
/// A directory that does not exist has none.
pub(crate) fn list_days(dir: &Path) -> Result<Vec<DayFile>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::path("cannot read directory", dir, e)),
    };
    let mut by_day: BTreeMap<Date, (Option<PathBuf>, Option<PathBuf>)> = BTreeMap::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::path("cannot read directory", dir, e))?;
        let name = entry.file_name();
        let Some((date, gz)) = name.to_str().and_then(daily_name) else { continue };
        let slot = by_day.entry(date).or_default();
        if gz {
            slot.1 = Some(entry.path());
        } else {
            slot.0 = Some(entry.path());
        }
    }
    Ok(by_day
        .into_iter()
        .filter_map(|(date, files)| match files {
            (Some(plain), gz) => Some(DayFile { date, path: plain, alt: gz }),
            (None, Some(gz)) => Some(DayFile { date, path: gz, alt: None }),
            (None, None) => None,
        })
        .collect())
}

/// A reader of a file or stdin that decompresses gzip when the data starts with its magic
/// bytes (whatever the name says).
pub(crate) fn decoded<R: Read + Send + 'static>(inner: R) -> io::Result<Box<dyn Read + Send>> {
    let mut br = BufReader::with_capacity(64 * 1024, inner);
    let magic = br.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    if magic { Ok(Box::new(MultiGzDecoder::new(br))) } else { Ok(Box::new(br)) }
}

/// Open a file for [`Scanner::scan`] through the bounded reader: a regular file only (a FIFO
/// or a link to `/dev/zero` is refused, never read), a link followed only when `follow`
/// (files the user named; not those found in the metrics directory).
pub(crate) fn open_file(path: &Path, follow: bool) -> io::Result<Box<dyn Read + Send>> {
    decoded(crate::store::read::open_stream(path, follow)?)
}

/// True for an error of the bounded reader refusing a file (what it is, not a failed read).
pub(crate) fn is_refusal(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidData
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_str(sc: &mut Scanner, input: &str) -> Vec<u8> {
        let mut out = Vec::new();
        sc.scan(input.as_bytes(), Origin { name: "stdin", day: None }, &mut out).unwrap();
        out
    }

    #[test]
    fn timestamps_fast_and_slow() {
        let want = 1_736_937_000_000; // 2025-01-15T10:30:00Z
        for s in [
            "2025-01-15T10:30:00Z",
            "2025-01-15T10:30:00",
            "2025-01-15T10:30:00.000000Z",
            "2025-01-15T10:30:00+00:00Z",
            "2025-01-15T11:30:00+01:00",
            "2025-01-15T10:30:00.0004Z",
        ] {
            assert_eq!(ts_millis(s), Some(want), "{s}");
        }
        assert_eq!(ts_millis("2025-01-15T10:30:00.123Z"), Some(want + 123));
        assert_eq!(ts_millis("2025-01-15T10:30:00.5"), Some(want + 500));
        assert_eq!(ts_millis("2025-02-29T00:00:00Z"), None);
        assert_eq!(ts_millis("2024-02-29T00:00:00Z").map(|m| m / 86_400_000), Some(19_782));
        assert_eq!(ts_millis("2025-01-15T10:30Z"), Some(want), "slow path");
        assert_eq!(ts_millis("never"), None);
        assert_eq!(ts_day("2025-01-15T23:30:00-01:00"), ts_day("2025-01-16T00:30:00Z"));
        // Every fast-path answer agrees with the general parser.
        for s in ["1999-12-31T23:59:59.999Z", "2026-11-23T10:30:00.123Z", "2000-03-01T00:00:00-05:30"] {
            let t = clock::parse_ts(s).unwrap();
            assert_eq!(ts_millis(s), Some(t.unix_timestamp() * 1000 + i64::from(t.millisecond())), "{s}");
        }
    }

    #[test]
    fn day_numbers() {
        let d = clock::parse_date("2025-01-15").unwrap();
        assert_eq!(day_number(d), 20_103);
        assert_eq!(day_date(20_103), Some(d));
    }

    #[test]
    fn fields_are_read_as_the_kit_reads_them() {
        let mut sc = Scanner::new(ScanOpts { max_line: 1 << 20, ..ScanOpts::default() });
        let input = concat!(
            r#"{"name": "a", "status": "up", "latency_ms": 100, "timestamp": "2025-01-15T10:30:00Z"}"#,
            "\n",
            r#"{"name": "a", "status": "d\u006fwn", "latency_ms": 50.5, "extra": {"x": [1, 2]}}"#,
            "\n",
            r#"{"status": "up", "latency_ms": "7"}"#,
            "\n",
            r#"{"name": "disk_free_gb", "status": "45", "latency_ms": true}"#,
            "\n",
            r#"{"kind": "check", "name": "caf\u00e9", "status": "degraded"}"#,
            "\n"
        );
        scan_str(&mut sc, input);
        assert_eq!(sc.rejects.count, 0);
        let a = sc.window.get("a");
        assert_eq!((a.up, a.down, a.latency.count), (1, 1, 2));
        assert_eq!(a.latency.mean(), 75.25);
        let u = sc.window.get("unknown");
        assert_eq!((u.up, u.latency.mean()), (1, 7.0));
        let d = sc.window.get("disk_free_gb");
        assert_eq!((d.other, d.total(), d.latency.mean()), (1, 0, 1.0));
        assert_eq!(sc.window.get("café").degraded, 1);
    }

    #[test]
    fn bad_lines_are_counted_with_the_first_place() {
        let mut sc = Scanner::new(ScanOpts { max_line: 1 << 20, ..ScanOpts::default() });
        scan_str(&mut sc, "{\"name\":\"a\",\"status\":\"up\"}\n[1]\n{\"name\": 5}\n{\"name\":\"a\",\"sta");
        assert_eq!(sc.rejects.count, 3);
        assert_eq!(sc.rejects.first.as_deref(), Some("stdin:2: expected a JSON object"));
        assert_eq!(sc.window.get("a").up, 1);
        let mut strict = Scanner::new(ScanOpts { max_line: 1 << 20, strict: true, ..ScanOpts::default() });
        let err = strict.scan(&b"{}\nnope\n"[..], Origin { name: "x.jsonl", day: None }, &mut Vec::new());
        assert!(matches!(err, Err(Error::Input { line: 2, .. })), "{err:?}");
    }

    #[test]
    fn latencies_past_any_double_are_refused_not_averaged() {
        let mut sc = Scanner::new(ScanOpts { max_line: 1 << 20, ..ScanOpts::default() });
        let input = "{\"name\":\"a\",\"status\":\"up\",\"latency_ms\":10}\n\
            {\"name\":\"a\",\"status\":\"up\",\"latency_ms\":1e400}\n\
            {\"name\":\"a\",\"status\":\"up\",\"latency_ms\":\"-inf\"}\n\
            {\"name\":\"a\",\"status\":\"up\",\"latency_ms\":\"nan\"}\n\
            {\"name\":\"a\",\"status\":\"down\",\"latency_ms\":1e300}\n\
            {\"name\":\"a\",\"status\":\"down\",\"latency_ms\":1.7976931348623157e308}\n\
            {\"name\":\"a\",\"status\":\"down\",\"latency_ms\":-1e308}\n\
            {\"name\":\"a\",\"status\":\"down\",\"latency_ms\":-5}\n\
            {\"name\":\"a\",\"status\":\"down\",\"latency_ms\":1000000001}\n\
            {\"name\":\"a\",\"status\":\"down\",\"latency_ms\":1000000000}\n";
        scan_str(&mut sc, input);
        assert_eq!(sc.rejects.count, 8);
        assert_eq!(sc.rejects.first.as_deref(), Some("stdin:2: latency_ms: 1e400 is not a finite number"));
        let a = sc.window.get("a");
        assert_eq!((a.up, a.down), (1, 1));
        assert_eq!(a.latency.mean(), (10.0 + 1e9) / 2.0);
    }

    #[test]
    fn latencies_that_are_no_number_or_negative_make_the_line_malformed() {
        let mut sc = Scanner::new(ScanOpts { max_line: 1 << 20, ..ScanOpts::default() });
        let input = "{\"name\":\"a\",\"status\":\"up\",\"latency_ms\":10}\n\
            {\"name\":\"a\",\"status\":\"up\",\"latency_ms\":\"abc\"}\n\
            {\"name\":\"a\",\"status\":\"up\",\"latency_ms\":-5}\n\
            {\"name\":\"a\",\"status\":\"up\",\"latency_ms\":\"-0.5\"}\n\
            {\"name\":\"a\",\"status\":\"up\",\"latency_ms\":[1]}\n\
            {\"name\":\"a\",\"status\":\"up\",\"latency_ms\":{}}\n\
            {\"name\":\"a\",\"status\":\"down\",\"latency_ms\":\" 20 \"}\n\
            {\"name\":\"a\",\"status\":\"up\",\"latency_ms\":null}\n";
        scan_str(&mut sc, input);
        assert_eq!(sc.rejects.count, 5);
        assert_eq!(sc.rejects.first.as_deref(), Some("stdin:2: latency_ms: \"abc\" is not a number"));
        let a = sc.window.get("a");
        assert_eq!((a.up, a.down, a.latency.count), (2, 1, 3));
        assert_eq!(a.latency.mean(), 10.0);
        for (raw, why) in [("-5", "latency_ms: -5 is negative"), ("[1]", "latency_ms: [1] is not a number")] {
            assert_eq!(latency_of(Some(raw)).unwrap_err(), why);
        }
    }

    #[test]
    fn other_kinds_pass_through_untouched() {
        let mut sc = Scanner::new(ScanOpts { max_line: 1 << 20, pass_through: true, ..ScanOpts::default() });
        let alert = r#"{"kind":"alert","topic":"t","name":"a","status":"down","z":1}"#;
        let out = scan_str(&mut sc, &format!("{alert}\n{{\"kind\":\"check\",\"name\":\"a\",\"status\":\"up\"}}\n"));
        assert_eq!(String::from_utf8(out).unwrap(), format!("{alert}\n"));
        assert_eq!(sc.window.get("a").total(), 1);
    }

    #[test]
    fn windows_and_days_come_from_timestamps() {
        let day = |s: &str| day_number(clock::parse_date(s).unwrap());
        let opts = ScanOpts {
            max_line: 1 << 20,
            by_day: true,
            filter: Some((day("2025-01-15"), day("2025-01-16"))),
            ..ScanOpts::default()
        };
        let mut sc = Scanner::new(opts);
        scan_str(
            &mut sc,
            concat!(
                "{\"name\":\"a\",\"status\":\"up\",\"timestamp\":\"2025-01-14T23:59:59Z\"}\n",
                "{\"name\":\"a\",\"status\":\"up\",\"timestamp\":\"2025-01-15T00:00:00Z\"}\n",
                "{\"name\":\"a\",\"status\":\"down\",\"timestamp\":\"2025-01-16T12:00:00Z\"}\n",
                "{\"name\":\"a\",\"status\":\"down\"}\n",
            ),
        );
        assert_eq!(sc.rejects.count, 1, "the line without a timestamp cannot be placed");
        assert_eq!(sc.days.len(), 2);
        let first = sc.take_days_through(day("2025-01-15"));
        assert_eq!(first.len(), 1);
        assert_eq!(sc.days.len(), 1);
    }

    #[test]
    fn daily_names() {
        assert_eq!(daily_name("2026-11-23.jsonl").map(|(_, gz)| gz), Some(false));
        assert_eq!(daily_name("2026-11-23.jsonl.gz").map(|(_, gz)| gz), Some(true));
        for bad in ["2026-11-23.json", "x2026-11-23.jsonl", "2026-13-01.jsonl", ".2026-11-23.jsonl.gz.1.tmp"] {
            assert!(daily_name(bad).is_none(), "{bad}");
        }
    }
}
