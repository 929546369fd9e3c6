//! Newline-delimited JSON: numbered line reading with a reused buffer, parsing with errors
//! that name `source:line`, and writing one value a line.
//!
//! The pipe contract (see the README): one JSON object a line, `\n` or `\r\n`, blank lines
//! skipped; a bad line is reported on stderr, counted, and skipped, unless `--strict` makes it
//! fatal. A line longer than the limit (16 MiB by default) is skipped without being held in
//! memory, so one hostile line cannot exhaust it. A line nested deeper than [`MAX_DEPTH`]
//! levels is rejected too: the state files that keep parts of records (notify's state and
//! outbox) nest them a few levels deeper, and must stay within what a JSON reader reads back.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::entry::Diag;
use crate::error::{Error, Result};

/// The longest line read by default; longer ones are skipped and reported.
pub const DEFAULT_MAX_LINE: usize = 16 << 20;

/// The deepest nesting of arrays and objects a record may have (serde_json reads at most
/// 128; what pitcrew keeps of a record in its own files nests it a few levels deeper).
pub const MAX_DEPTH: usize = 64;

/// Where NDJSON comes from: standard input or a named file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Stdin,
    File(PathBuf),
}

impl Source {
    /// The sources named by trailing arguments: none means stdin, `-` means stdin.
    pub fn from_args(args: &[PathBuf]) -> Vec<Source> {
        if args.is_empty() {
            return vec![Source::Stdin];
        }
        args.iter().map(|a| if a.as_os_str() == "-" { Source::Stdin } else { Source::File(a.clone()) }).collect()
    }

    /// The name used in messages: `stdin` or the path.
    pub fn name(&self) -> String {
        match self {
            Source::Stdin => "stdin".to_string(),
            Source::File(p) => p.display().to_string(),
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

/// Reads numbered lines into one reused buffer.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    lineno: u64,
    max: usize,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R, max: usize) -> Self {
        LineReader { inner, buf: Vec::with_capacity(1024), lineno: 0, max }
    }

    /// The next non-blank line with its number, `None` at the end. A line without a final
    /// newline (a file being appended to) is returned as it is.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, Line<'_>)>> {
        loop {
            self.buf.clear();
            let n = (&mut self.inner).take(self.max as u64 + 1).read_until(b'\n', &mut self.buf)?;
            if n == 0 {
                return Ok(None);
            }
            self.lineno += 1;
            if self.buf.last() == Some(&b'\n') {
                self.buf.pop();
                if self.buf.last() == Some(&b'\r') {
                    self.buf.pop();
                }
            } else if self.buf.len() > self.max {
                // A line of exactly `max` bytes ending in "\r\n" fills the read up to its '\r'.
                let cr = self.buf.last() == Some(&b'\r');
                if cr && self.buf.len() == self.max + 1 && self.inner.fill_buf()?.first() == Some(&b'\n') {
                    self.inner.consume(1);
                    self.buf.pop();
                } else {
                    // The length of the line is without its "\r\n".
                    let (rest, crlf) = skip_line(&mut self.inner, cr)?;
                    let len = self.buf.len() as u64 + rest - u64::from(crlf);
                    return Ok(Some((self.lineno, Line::TooLong(len))));
                }
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some((self.lineno, Line::Text(&self.buf))));
        }
    }
}

/// Discard up to and including the next newline. Returns the bytes skipped, not counting
/// the newline, and whether the byte before the newline was a '\r' (`cr`: the byte before
/// these was one).
fn skip_line<R: BufRead>(r: &mut R, mut cr: bool) -> io::Result<(u64, bool)> {
    let mut skipped = 0u64;
    loop {
        let (done, used) = {
            let avail = r.fill_buf()?;
            if avail.is_empty() {
                return Ok((skipped, false));
            }
            match avail.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    if i > 0 {
                        cr = avail[i - 1] == b'\r';
                    }
                    (true, i + 1)
                }
                None => {
                    cr = avail.last() == Some(&b'\r');
                    (false, avail.len())
                }
            }
        };
        r.consume(used);
        if done {
            return Ok((skipped + used as u64 - 1, cr));
        }
        skipped += used as u64;
    }
}

/// A serde_json error as `why at column N` (the line is given by the caller).
pub fn json_error_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) if e.line() <= 1 => format!("{} at column {}", &s[..i], e.column()),
        _ => s,
    }
}

/// Parse one line as a JSON object.
pub fn parse_object(bytes: &[u8]) -> std::result::Result<Value, String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ Value::Object(_)) if depth(&v) > MAX_DEPTH => {
            Err(format!("nested deeper than {MAX_DEPTH} levels of arrays and objects"))
        }
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("expected a JSON object".to_string()),
        Err(e) => Err(json_error_message(&e)),
    }
}

/// How deep arrays and objects nest in `v` (a scalar is 0, `{}` is 1), without recursion.
pub fn depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Array(a) => {
                deepest = deepest.max(d + 1);
                stack.extend(a.iter().map(|x| (x, d + 1)));
            }
            Value::Object(m) => {
                deepest = deepest.max(d + 1);
                stack.extend(m.values().map(|x| (x, d + 1)));
            }
            _ => {}
        }
    }
    deepest
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
pub fn read_lines<R: BufRead>(
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

/// Deserialize a JSON value into a typed record, with a message fit for `source:line: ...`.
pub fn from_value<T: DeserializeOwned>(v: Value) -> std::result::Result<T, String> {
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// Write one value as a line of NDJSON.
pub fn write<W: Write + ?Sized, T: Serialize + ?Sized>(w: &mut W, value: &T) -> Result<()> {
    serde_json::to_writer(&mut *w, value).map_err(|e| Error::from(io::Error::from(e)))?;
    w.write_all(b"\n")?;
    Ok(())
}

/// Serialize a value to one NDJSON line (with the newline), for single-`write` appends.
pub fn to_line<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut v = serde_json::to_vec(value).map_err(|e| Error::other(format!("serializing: {e}")))?;
    v.push(b'\n');
    Ok(v)
}

/// Read a whole JSON document from a file of `kind` (through the bounded reader), with
/// errors naming `path:line:column`.
pub fn read_json_file<T: DeserializeOwned>(path: &Path, kind: crate::store::Kind) -> Result<T> {
    let bytes = crate::store::read::read(path, kind).map_err(|e| Error::path("cannot read", path, e))?;
    parse_json_doc(&bytes, path)
}

/// Parse a JSON document, with errors naming `path:line:column: why`.
pub fn parse_json_doc<T: DeserializeOwned>(bytes: &[u8], path: &Path) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::config(doc_error(path, &e)))
}

/// `path:line:column: why` for a JSON document error.
pub fn doc_error(path: &Path, e: &serde_json::Error) -> String {
    let s = e.to_string();
    let why = match s.rfind(" at line ") {
        Some(i) => &s[..i],
        None => s.as_str(),
    };
    format!("{}:{}:{}: {}", path.display(), e.line(), e.column(), why)
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
}
