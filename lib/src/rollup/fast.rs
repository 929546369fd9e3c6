//! A validating fast path for one metrics line: a single pass over the bytes that checks
//! the whole line is valid JSON (RFC 8259) and picks out the raw text of the five top-level
//! fields rollup reads. It gives up (returns `None`) on anything it does not handle simply:
//! invalid JSON, escaped keys, a wanted field given twice, nesting deeper than the limit.
//! The caller then asks serde_json, which either reads the line or says precisely what is
//! wrong with it, so the fast path changes speed, never answers or messages.

/// The raw JSON text of the fields rollup reads (as `RawValue::get` would give it).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fields<'a> {
    /// `kind`.
    pub kind: Option<&'a str>,
    /// `name`.
    pub name: Option<&'a str>,
    /// `status`.
    pub status: Option<&'a str>,
    /// `latency_ms`.
    pub latency_ms: Option<&'a str>,
    /// `timestamp`.
    pub timestamp: Option<&'a str>,
    /// True when none of these fields is a string with escapes (so their text between the
    /// quotes is the string itself).
    pub plain: bool,
}

const MAX_DEPTH: usize = 64;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Bytes from the start of `b` before the first `"`, `\\` or control character.
#[inline]
fn plain_run(b: &[u8]) -> usize {
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let w = u64::from_le_bytes(w);
        // The lowest flagged byte of each test is exact (borrows only run upwards).
        let quote = w ^ (ONES * u64::from(b'"'));
        let slash = w ^ (ONES * u64::from(b'\\'));
        let mask = (quote.wrapping_sub(ONES) & !quote)
            | (slash.wrapping_sub(ONES) & !slash)
            | (w.wrapping_sub(ONES * 0x20) & !w);
        let mask = mask & HIGHS;
        if mask != 0 {
            return i + (mask.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        i += 1;
    }
    i
}

struct P<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> P<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// A string starting at the current `"`; returns whether it had escapes. The bytes are
    /// already known to be UTF-8 (checked once per line). Plain runs are skipped eight bytes
    /// at a time.
    #[inline]
    fn string(&mut self) -> Option<bool> {
        self.i += 1;
        let mut escaped = false;
        loop {
            self.i += plain_run(&self.b[self.i.min(self.b.len())..]);
            let c = *self.b.get(self.i)?;
            self.i += 1;
            match c {
                b'"' => return Some(escaped),
                b'\\' => {
                    escaped = true;
                    match *self.b.get(self.i)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                        b'u' => {
                            let hex = self.b.get(self.i + 1..self.i + 5)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            // Lone surrogates are left to serde_json to judge.
                            let v = u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                            if (0xD800..0xE000).contains(&v) {
                                return None;
                            }
                            self.i += 5;
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
    }

    #[inline]
    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + word.len())? == word {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' => self.container(b'}', depth),
            b'[' => self.container(b']', depth),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// A nested object or array, validated and skipped.
    fn container(&mut self, close: u8, depth: usize) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.i += 1;
        self.ws();
        if self.peek()? == close {
            self.i += 1;
            return Some(());
        }
        loop {
            if close == b'}' {
                if self.peek()? != b'"' {
                    return None;
                }
                self.string()?;
                self.ws();
                if self.peek()? != b':' {
                    return None;
                }
                self.i += 1;
                self.ws();
            }
            self.value(depth + 1)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.ws();
                }
                c if c == close => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// Read one line; `None` sends it to serde_json.
pub fn parse(line: &[u8]) -> Option<Fields<'_>> {
    let text = std::str::from_utf8(line).ok()?;
    let mut p = P { b: line, i: 0 };
    let mut f = Fields::default();
    let mut escapes = false;
    p.ws();
    if p.peek()? != b'{' {
        return None;
    }
    p.i += 1;
    p.ws();
    if p.peek()? == b'}' {
        p.i += 1;
    } else {
        loop {
            if p.peek()? != b'"' {
                return None;
            }
            let kstart = p.i + 1;
            if p.string()? {
                return None;
            }
            let key = &line[kstart..p.i - 1];
            p.ws();
            if p.peek()? != b':' {
                return None;
            }
            p.i += 1;
            p.ws();
            let vstart = p.i;
            let escaped = if p.peek()? == b'"' { p.string()? } else { p.value(1).map(|()| false)? };
            let slot = match key {
                b"kind" => Some(&mut f.kind),
                b"name" => Some(&mut f.name),
                b"status" => Some(&mut f.status),
                b"latency_ms" => Some(&mut f.latency_ms),
                b"timestamp" => Some(&mut f.timestamp),
                _ => None,
            };
            if let Some(slot) = slot {
                if slot.is_some() {
                    return None;
                }
                *slot = Some(&text[vstart..p.i]);
                escapes |= escaped;
            }
            p.ws();
            match p.peek()? {
                b',' => {
                    p.i += 1;
                    p.ws();
                }
                b'}' => {
                    p.i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    p.ws();
    if p.i != line.len() {
        return None;
    }
    f.plain = !escapes;
    // serde reads `null` into an absent Option.
    for slot in [&mut f.kind, &mut f.name, &mut f.status, &mut f.latency_ms, &mut f.timestamp] {
        if *slot == Some("null") {
            *slot = None;
        }
    }
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_fields() {
        let f = parse(
            br#" {"name": "My App", "status": "up", "detail": "a \"q\" \u00e9", "x": {"y": [1, -2.5e3, true, null, {}]}, "latency_ms": 145, "timestamp": "2025-01-15T10:30:00Z"} "#,
        )
        .unwrap();
        assert_eq!(f.name, Some("\"My App\""));
        assert_eq!(f.status, Some("\"up\""));
        assert_eq!(f.latency_ms, Some("145"));
        assert_eq!(f.timestamp, Some("\"2025-01-15T10:30:00Z\""));
        assert_eq!(f.kind, None);
        assert!(f.plain, "the escapes are in a field rollup does not read");
        let plain = Fields { plain: true, ..Fields::default() };
        assert_eq!(parse(b"{}"), Some(plain));
        assert_eq!(parse(br#"{"name":null}"#), Some(plain));
        assert!(!parse(br#"{"name":"a\nb"}"#).unwrap().plain);
    }

    #[test]
    fn gives_up_on_what_serde_must_judge() {
        for bad in [
            &br#"{"name":"a",}"#[..],
            br#"{"name":"a"} x"#,
            br#"{"name":"a""#,
            br#"{"name":01}"#,
            br#"{"name":1.}"#,
            br#"{"name":-}"#,
            br#"{"name":tru}"#,
            br#"{"n\u0061me":"a"}"#,
            br#"{"name":"a","name":"b"}"#,
            br#"{"a":"\x"}"#,
            br#"{"a":"\ud800"}"#,
            b"{\"a\":\"\x01\"}",
            b"{\"a\":\"\xff\"}",
            br#"[1]"#,
            br#"{"a":[1,]}"#,
            br#"{"a":{"b"}}"#,
        ] {
            assert_eq!(parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert_eq!(parse(deep.as_bytes()), None);
    }

    #[test]
    fn plain_runs_stop_at_the_first_special_byte() {
        for (s, n) in [
            (&b"abcdefghij\"k"[..], 10),
            (b"abc\\defghijkl", 3),
            (b"abcdefg\x01hij", 7),
            (b"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"", 10),
            (b"abcdefgh", 8),
            (b"", 0),
            (b"\x7f\x80\xff\x1f", 3),
        ] {
            assert_eq!(plain_run(s), n, "{}", String::from_utf8_lossy(s));
        }
    }

    #[test]
    fn agrees_with_serde_on_validity() {
        // Every line the fast path accepts, serde_json accepts too.
        let lines = [
            r#"{"kind":"check","name":"a","type":"url","status":"down","detail":"","latency_ms":0.5,"timestamp":"t","perfdata":[{"label":"x","value":1e-3}]}"#,
            r#"{"name":"b","status":"45","latency_ms":"0"}"#,
            r#"{ "a" : [ ] , "b" : { } }"#,
        ];
        for l in lines {
            assert!(parse(l.as_bytes()).is_some(), "{l}");
            assert!(serde_json::from_str::<serde_json::Value>(l).is_ok(), "{l}");
        }
    }
}
