//! Numbered lines out of large reads, without copying them: the metrics history is read in
//! 256 KiB blocks and split with `memchr`, and each line is handed out as a slice of the
//! block. Same contract as [`crate::ndjson::LineReader`]: `\n` or `\r\n`, blank lines
//! skipped but counted, a last line without a newline returned as it is, and a line longer
//! than the limit skipped without being held in memory.

use std::io::{self, Read};

use crate::ndjson::Line;

const BLOCK: usize = 256 * 1024;

pub struct Lines<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    lineno: u64,
    max: usize,
}

impl<R: Read> Lines<R> {
    pub fn new(inner: R, max: usize) -> Self {
        Lines { inner, buf: vec![0; BLOCK], start: 0, end: 0, eof: false, lineno: 0, max }
    }

    /// Read more: keep the unfinished line, growing the buffer only for a long line.
    fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let grown = (self.buf.len() * 2).min(self.max.saturating_add(2).max(BLOCK));
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

#[cfg(test)]
mod tests {
    use super::*;

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

    fn lines(input: &[u8], step: usize, max: usize) -> Vec<(u64, String)> {
        let mut r = Lines::new(Dribble(input, step), max);
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
    fn like_the_shared_line_reader() {
        for step in [1, 3, 1000] {
            let got = lines(b"a\r\n\n  \nb\nc", step, 100);
            assert_eq!(got, vec![(1, "a".into()), (4, "b".into()), (5, "c".into())], "step {step}");
            let got = lines(b"0123456789abc\nok\n", step, 5);
            assert_eq!(got, vec![(1, "<13>".into()), (2, "ok".into())], "step {step}");
        }
    }

    #[test]
    fn lines_of_the_limit_with_crlf_and_lengths_without_it() {
        for step in [1, 2, 3, 1000] {
            let got = lines(b"12345\r\n123456\r\nabc\r", step, 5);
            assert_eq!(got, vec![(1, "12345".into()), (2, "<6>".into()), (3, "abc\r".into())], "step {step}");
            let shared: Vec<(u64, String)> = {
                let mut r = crate::ndjson::LineReader::new(&b"12345\r\n123456\r\nabc\r"[..], 5);
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
            };
            assert_eq!(got, shared, "the shared reader agrees");
        }
    }

    #[test]
    fn long_lines_beyond_a_block() {
        let long = "x".repeat(BLOCK * 3 + 17);
        let input = format!("{long}\nshort\n{long}");
        assert_eq!(
            lines(input.as_bytes(), 70_000, 1 << 20),
            vec![(1, long.clone()), (2, "short".into()), (3, long.clone())]
        );
        assert_eq!(
            lines(input.as_bytes(), 70_000, 1000),
            vec![(1, format!("<{}>", long.len())), (2, "short".into()), (3, format!("<{}>", long.len()))]
        );
    }
}
