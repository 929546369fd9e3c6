//! Newline-delimited JSON: numbered line reading with a reused buffer, parsing with errors
//! that name `source:line`, and writing one value a line.
//!
//! The pipe contract (see the README): one JSON object a line, `\n` or `\r\n`, blank lines
//! skipped; a bad line is reported on stderr, counted, and skipped, unless `--strict` makes it
//! fatal. A line longer than the limit (16 MiB by default) is skipped without being held in
//! memory, so one hostile line cannot exhaust it. A line nested deeper than [`MAX_DEPTH`]
//! levels is rejected too: the state files that keep parts of records (notify's state and
//! outbox) nest them a few levels deeper, and must stay within what a JSON reader reads back.

pub mod follow;

use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::diag::Diag;
use crate::error::{Error, Result};
pub use crate::json::{
    MAX_DEPTH, depth, doc_error, from_value, json_error_message, parse_json_doc, parse_object, pass, to_line, write,
};

/// The longest line read by default; longer ones are skipped and reported.
pub const DEFAULT_MAX_LINE: usize = 16 << 20;

/// Where NDJSON comes from: standard input, a named file, or a JetStream subject read by a
/// durable consumer (`nats://…/SUBJECT?durable=NAME`, see [`crate::fleet::consume`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Stdin,
    File(PathBuf),
    /// A subject: in batch what is pending, with `follow` everything that comes.
    Nats {
        url: Box<crate::fleet::NatsUrl>,
        follow: bool,
    },
}

impl Source {
    /// The sources named by trailing arguments: none means stdin, `-` means stdin,
    /// `nats://` or `tls://` a subject. A NATS address that does not parse is an error.
    pub fn parse_args(args: &[PathBuf]) -> Result<Vec<Source>> {
        if args.is_empty() {
            return Ok(vec![Source::Stdin]);
        }
        args.iter()
            .map(|a| match a.to_str() {
                Some("-") => Ok(Source::Stdin),
                Some(s) if crate::fleet::url::is_nats(s) => {
                    Ok(Source::Nats { url: Box::new(crate::fleet::NatsUrl::parse(s)?), follow: false })
                }
                _ => Ok(Source::File(a.clone())),
            })
            .collect()
    }

    /// The sources named by trailing arguments, as [`Source::parse_args`]; an address that
    /// does not parse is kept as a file name, whose opening then fails.
    pub fn from_args(args: &[PathBuf]) -> Vec<Source> {
        Source::parse_args(args).unwrap_or_else(|_| {
            args.iter().map(|a| if a.as_os_str() == "-" { Source::Stdin } else { Source::File(a.clone()) }).collect()
        })
    }

    /// The same source read without end (the resident modes).
    pub fn following(self) -> Source {
        match self {
            Source::Nats { url, .. } => Source::Nats { url, follow: true },
            s => s,
        }
    }

    /// The name used in messages: `stdin`, the path, or the address without credentials.
    pub fn name(&self) -> String {
        match self {
            Source::Stdin => "stdin".to_string(),
            Source::File(p) => p.display().to_string(),
            Source::Nats { url, .. } => url.to_string(),
        }
    }

    /// Open the source for buffered reading. A named file must be a regular file (a FIFO or
    /// a device named as a file is refused: `-` is the way to stream).
    pub fn open(&self) -> Result<Box<dyn BufRead + Send>> {
        match self {
            Source::Stdin => Ok(Box::new(BufReader::with_capacity(64 * 1024, io::stdin()))),
            Source::File(p) => {
                let f = crate::store::read::open_stream(p, true).map_err(|e| Error::path("cannot open", p, e))?;
                Ok(Box::new(BufReader::with_capacity(64 * 1024, f)))
            }
            Source::Nats { url, follow } => Ok(Box::new(crate::fleet::consume::Reader::open(url, *follow)?)),
        }
    }
}

/// Options every NDJSON reader honours.
#[derive(Debug, Clone, Copy)]
pub struct ReadOpts {
    /// Make the first bad line fatal.
    pub strict: bool,
    /// Skip (and report) lines longer than this many bytes.
    pub max_line: usize,
}

impl Default for ReadOpts {
    fn default() -> Self {
        ReadOpts { strict: false, max_line: DEFAULT_MAX_LINE }
    }
}

impl ReadOpts {
    pub fn strict(strict: bool) -> ReadOpts {
        ReadOpts { strict, ..ReadOpts::default() }
    }
}

/// Where a line came from, for messages.
#[derive(Debug, Clone, Copy)]
pub struct Pos<'a> {
    pub source: &'a str,
    pub line: u64,
}

impl std::fmt::Display for Pos<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.source, self.line)
    }
}

/// What a line handler says of a line: `Ok(Ok(()))` taken, `Ok(Err(why))` rejected (reported,
/// or fatal under `--strict`), `Err(e)` stop the run.
pub type Verdict = Result<std::result::Result<(), String>>;

/// One line as read: its text, or the fact that it was too long to keep.
pub enum Line<'a> {
    Text(&'a [u8]),
    TooLong(u64),
}

/// How much is read at a time by default.
const BLOCK: usize = 64 * 1024;

/// Reads numbered lines out of large reads, without copying them: each line is handed out
/// as a slice of the block it was read into (split with `memchr`). `\n` or `\r\n` end a
/// line; blank lines are skipped but counted; a last line without a newline (a file being
/// appended to) is returned as it is; a line longer than the limit is skipped without being
/// held in memory, and said with its length. Each read returns what is there, so a line
/// that arrives on a pipe is handed out at once.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    lineno: u64,
    max: usize,
}

impl<R: Read> LineReader<R> {
    /// Lines of at most `max` bytes, read 64 KiB at a time.
    pub fn new(inner: R, max: usize) -> Self {
        Self::with_block(inner, max, BLOCK)
    }

    /// Lines of at most `max` bytes, read `block` bytes at a time (rollup reads the metrics
    /// in larger blocks).
    pub fn with_block(inner: R, max: usize, block: usize) -> Self {
        let block = block.max(1024);
        LineReader { inner, buf: vec![0; block], start: 0, end: 0, eof: false, lineno: 0, max }
    }

    /// Read more: keep the unfinished line, growing the buffer only for a long line.
    fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let grown = (self.buf.len() * 2).min(self.max.saturating_add(2).max(self.buf.len()));
            self.buf.resize(grown, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    if n == 0 {
                        self.eof = true;
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Skip the rest of a line that is too long; returns its total length.
    fn skip_long(&mut self) -> io::Result<u64> {
        let mut skipped = (self.end - self.start) as u64;
        let mut cr = self.end > self.start && self.buf[self.end - 1] == b'\r';
        self.start = 0;
        self.end = 0;
        loop {
            if self.fill()? == 0 {
                return Ok(skipped);
            }
            if let Some(k) = memchr::memchr(b'\n', &self.buf[..self.end]) {
                self.start = k + 1;
                // Without its "\r\n", even when the '\r' came in the read before.
                let crlf = if k > 0 { self.buf[k - 1] == b'\r' } else { cr };
                return Ok(skipped + k as u64 - u64::from(crlf));
            }
            skipped += self.end as u64;
            cr = self.buf[self.end - 1] == b'\r';
            self.end = 0;
        }
    }

    /// The next non-blank line with its number, `None` at the end.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, Line<'_>)>> {
        loop {
            let (a, b) = match memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                Some(k) => {
                    let a = self.start;
                    self.start += k + 1;
                    (a, a + k)
                }
                None if self.eof => {
                    if self.start == self.end {
                        return Ok(None);
                    }
                    // A last line without a newline is returned as it is, '\r' included.
                    let a = self.start;
                    self.start = self.end;
                    self.lineno += 1;
                    let line = &self.buf[a..self.end];
                    if line.len() > self.max {
                        return Ok(Some((self.lineno, Line::TooLong(line.len() as u64))));
                    }
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Ok(Some((self.lineno, Line::Text(&self.buf[a..self.end]))));
                }
                None => {
                    // Too long already, unless it is `max` bytes and the '\r' of its "\r\n".
                    let len = self.end - self.start;
                    if len > self.max + 1 || (len == self.max + 1 && self.buf[self.end - 1] != b'\r') {
                        self.lineno += 1;
                        let n = self.skip_long()?;
                        return Ok(Some((self.lineno, Line::TooLong(n))));
                    }
                    self.fill()?;
                    continue;
                }
            };
            self.lineno += 1;
            let b = if b > a && self.buf[b - 1] == b'\r' { b - 1 } else { b };
            let line = &self.buf[a..b];
            if line.len() > self.max {
                return Ok(Some((self.lineno, Line::TooLong(line.len() as u64))));
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some((self.lineno, Line::Text(&self.buf[a..b]))));
        }
    }
}

/// Read every line of every source, handing each to `f` with its position. `f` returns
/// `Err(message)` to reject the line; that is reported (or fatal under `--strict`). Errors
/// `f` wants to stop the run with are returned through `Ok(Err(..))` of its outer result.
pub fn for_each_line(
    sources: &[Source],
    opts: ReadOpts,
    diag: &Diag,
    mut f: impl FnMut(&[u8], Pos<'_>) -> Verdict,
) -> Result<()> {
    for src in sources {
        let name = src.name();
        let reader = src.open()?;
        read_lines(reader, &name, opts, diag, &mut f)?;
    }
    Ok(())
}

/// Like [`for_each_line`] for one already-open reader.
pub fn read_lines<R: Read>(
    reader: R,
    name: &str,
    opts: ReadOpts,
    diag: &Diag,
    f: &mut dyn FnMut(&[u8], Pos<'_>) -> Verdict,
) -> Result<()> {
    let mut lines = LineReader::new(reader, opts.max_line);
    loop {
        let next = lines.next_line().map_err(|e| Error::io(format!("reading {name}"), e))?;
        let Some((lineno, line)) = next else { break };
        let pos = Pos { source: name, line: lineno };
        let verdict = match line {
            Line::Text(bytes) => f(bytes, pos)?,
            Line::TooLong(n) => Err(format!("line of {n} bytes is longer than the limit of {} bytes", opts.max_line)),
        };
        if let Err(msg) = verdict {
            if opts.strict {
                return Err(Error::Input { source: name.to_string(), line: lineno, message: msg });
            }
            diag.reject(name, lineno, msg);
        }
    }
    Ok(())
}

/// Read every line as a JSON object, handing each valid one to `f`.
pub fn for_each_value(
    sources: &[Source],
    opts: ReadOpts,
    diag: &Diag,
    mut f: impl FnMut(Value, Pos<'_>) -> Result<()>,
) -> Result<()> {
    for_each_line(sources, opts, diag, |bytes, pos| match parse_object(bytes) {
        Ok(v) => f(v, pos).map(Ok),
        Err(msg) => Ok(Err(msg)),
    })
}

/// Read all objects of the sources into memory (for tools that need the whole stream).
pub fn read_values(sources: &[Source], opts: ReadOpts, diag: &Diag) -> Result<Vec<Value>> {
    let mut all = Vec::new();
    for_each_value(sources, opts, diag, |v, _| {
        all.push(v);
        Ok(())
    })?;
    Ok(all)
}

/// Read a whole JSON document from a file of `kind` (through the bounded reader), with
/// errors naming `path:line:column`.
pub fn read_json_file<T: DeserializeOwned>(path: &Path, kind: crate::store::Kind) -> Result<T> {
    let bytes = crate::store::read::read(path, kind).map_err(|e| Error::path("cannot read", path, e))?;
    parse_json_doc(&bytes, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &str, max: usize) -> Vec<(u64, String)> {
        let mut r = LineReader::new(input.as_bytes(), max);
        let mut out = Vec::new();
        while let Some((n, l)) = r.next_line().unwrap() {
            out.push((
                n,
                match l {
                    Line::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    Line::TooLong(k) => format!("<{k}>"),
                },
            ));
        }
        out
    }

    #[test]
    fn numbers_lines_and_skips_blanks() {
        let got = lines("a\r\n\n  \nb\nc", 100);
        assert_eq!(got, vec![(1, "a".into()), (4, "b".into()), (5, "c".into())]);
    }

    #[test]
    fn too_long_lines_are_skipped_whole() {
        let got = lines("0123456789abc\nok\n", 5);
        assert_eq!(got, vec![(1, "<13>".into()), (2, "ok".into())]);
    }

    #[test]
    fn error_messages_name_the_column() {
        let e = parse_object(b"{\"a\": }").unwrap_err();
        assert_eq!(e, "expected value at column 7");
        assert_eq!(parse_object(b"[1]").unwrap_err(), "expected a JSON object");
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        let line = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n - 1), "]".repeat(n - 1));
        assert!(parse_object(line(MAX_DEPTH).as_bytes()).is_ok());
        let e = parse_object(line(MAX_DEPTH + 1).as_bytes()).unwrap_err();
        assert_eq!(e, "nested deeper than 64 levels of arrays and objects");
        assert!(parse_object(line(100_000).as_bytes()).unwrap_err().contains("recursion limit"));
        assert_eq!(depth(&serde_json::json!({"a": [{}], "b": 1})), 3);
    }

    #[test]
    fn bad_lines_are_reported_and_counted() {
        let (diag, buf) = Diag::memory("t");
        let mut seen = Vec::new();
        read_lines(&b"{\"a\":1}\nnope\n{\"a\":2}\n"[..], "stdin", ReadOpts::default(), &diag, &mut |b, _| {
            seen.push(parse_object(b).map(|v| v["a"].clone()));
            Ok(Ok(()))
        })
        .unwrap();
        assert_eq!(seen.len(), 3);
        let mut got = Vec::new();
        let res = read_lines(&b"{\"a\":1}\nnope\n{\"a\":2}\n"[..], "stdin", ReadOpts::default(), &diag, &mut |b, _| {
            Ok(parse_object(b).map(|v| got.push(v)))
        });
        assert!(res.is_ok());
        assert_eq!(got.len(), 2);
        assert_eq!(diag.rejected(), 1);
        assert!(buf.text().starts_with("t: stdin:2: expected ident at column 2"), "{}", buf.text());
    }

    #[test]
    fn strict_makes_the_first_bad_line_fatal() {
        let (diag, _) = Diag::memory("t");
        let res = read_lines(&b"{}\n{\n"[..], "in.jsonl", ReadOpts::strict(true), &diag, &mut |b, _| {
            Ok(parse_object(b).map(|_| ()))
        });
        match res {
            Err(Error::Input { source, line, .. }) => assert_eq!((source.as_str(), line), ("in.jsonl", 2)),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// A reader that hands out at most `n` bytes a call, to split lines across reads.
    struct Dribble<'a>(&'a [u8], usize);

    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn dribbled(input: &[u8], step: usize, max: usize) -> Vec<(u64, String)> {
        let mut r = LineReader::with_block(Dribble(input, step), max, 1024);
        let mut out = Vec::new();
        while let Some((n, l)) = r.next_line().unwrap() {
            out.push((
                n,
                match l {
                    Line::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    Line::TooLong(k) => format!("<{k}>"),
                },
            ));
        }
        out
    }

    #[test]
    fn lines_split_alike_whatever_the_reads() {
        for step in [1, 3, 1000] {
            let got = dribbled(b"a\r\n\n  \nb\nc", step, 100);
            assert_eq!(got, vec![(1, "a".into()), (4, "b".into()), (5, "c".into())], "step {step}");
            let got = dribbled(b"0123456789abc\nok\n", step, 5);
            assert_eq!(got, vec![(1, "<13>".into()), (2, "ok".into())], "step {step}");
        }
    }

    #[test]
    fn lines_of_the_limit_with_crlf_and_lengths_without_it() {
        for step in [1, 2, 3, 1000] {
            let got = dribbled(b"12345\r\n123456\r\nabc\r", step, 5);
            assert_eq!(got, vec![(1, "12345".into()), (2, "<6>".into()), (3, "abc\r".into())], "step {step}");
        }
    }

    #[test]
    fn long_lines_beyond_a_block() {
        let long = "x".repeat(BLOCK * 3 + 17);
        let input = format!("{long}\nshort\n{long}");
        assert_eq!(
            dribbled(input.as_bytes(), 70_000, 1 << 20),
            vec![(1, long.clone()), (2, "short".into()), (3, long.clone())]
        );
        assert_eq!(
            dribbled(input.as_bytes(), 70_000, 1000),
            vec![(1, format!("<{}>", long.len())), (2, "short".into()), (3, format!("<{}>", long.len()))]
        );
    }
}
