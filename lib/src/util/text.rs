//! Text shown to people: control characters escaped, so that what an agent, a record or a
//! file supplied cannot drive the terminal (change its title, clear the screen, move the
//! cursor, hide a line with `\r`).
//!
//! C0 controls other than newline and tab become `\xNN` (`\r` stays readable as `\r`), DEL
//! becomes `\x7f`, and the C1 controls U+0080 to U+009F (some terminals take U+009B as CSI)
//! become `\u{NN}`. Everything else, UTF-8 included, is left as it is.

use std::borrow::Cow;

fn needs_escape(b: u8) -> bool {
    (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f || b == 0xc2
}

fn push_escape(out: &mut Vec<u8>, b: u8) {
    match b {
        b'\r' => out.extend_from_slice(b"\\r"),
        _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
    }
}

/// Escape control characters in `s`; with `keep_newlines` false, newlines and tabs are
/// escaped too (a value that must stay on one line).
pub fn escape_controls(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    let bad = |c: char| {
        (c.is_control() && !(keep_newlines && (c == '\n' || c == '\t'))) || ('\u{80}'..='\u{9f}').contains(&c)
    };
    if !s.chars().any(bad) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if !bad(c) {
            out.push(c);
        } else if c == '\r' {
            out.push_str("\\r");
        } else if c == '\n' {
            out.push_str("\\n");
        } else if c == '\t' {
            out.push_str("\\t");
        } else if (c as u32) < 0x80 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    Cow::Owned(out)
}

/// Escapes a byte stream written in pieces (a two-byte C1 character may be split between
/// two writes).
#[derive(Debug, Default)]
pub struct Escaper {
    /// A 0xC2 lead byte held back from the end of the last piece.
    pending: bool,
}

impl Escaper {
    /// The escaped form of the next piece.
    pub fn escape<'a>(&mut self, buf: &'a [u8]) -> Cow<'a, [u8]> {
        if !self.pending && !buf.iter().any(|&b| needs_escape(b)) {
            return Cow::Borrowed(buf);
        }
        let mut out = Vec::with_capacity(buf.len() + 16);
        let mut i = 0;
        if self.pending {
            self.pending = false;
            match buf.first() {
                Some(&n @ 0x80..=0x9f) => {
                    out.extend_from_slice(format!("\\u{{{n:x}}}").as_bytes());
                    i = 1;
                }
                _ => out.push(0xc2),
            }
        }
        while i < buf.len() {
            let b = buf[i];
            if b == 0xc2 {
                match buf.get(i + 1) {
                    Some(&n @ 0x80..=0x9f) => {
                        out.extend_from_slice(format!("\\u{{{n:x}}}").as_bytes());
                        i += 2;
                        continue;
                    }
                    Some(_) => out.push(b),
                    None => self.pending = true,
                }
            } else if needs_escape(b) {
                push_escape(&mut out, b);
            } else {
                out.push(b);
            }
            i += 1;
        }
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_text_is_kept() {
        assert_eq!(escape_controls("plain é ✓\nnext\tcol", true), "plain é ✓\nnext\tcol");
        assert_eq!(escape_controls("\x1b]0;owned\x07\x1b[2J", true), "\\x1b]0;owned\\x07\\x1b[2J");
        assert_eq!(escape_controls("a\rb\u{9b}c\u{7f}", true), "a\\rb\\u{9b}c\\x7f");
        assert_eq!(escape_controls("one\ntwo", false), "one\\ntwo");
    }

    #[test]
    fn a_stream_is_escaped_the_same_however_it_is_cut() {
        let text = "ok \x1b[31mred\u{9b}2J é\r\n".as_bytes();
        let whole = escape_controls(std::str::from_utf8(text).unwrap(), true).into_owned();
        for cut in 0..=text.len() {
            let mut e = Escaper::default();
            let mut out = e.escape(&text[..cut]).into_owned();
            out.extend_from_slice(&e.escape(&text[cut..]));
            assert_eq!(String::from_utf8(out).unwrap(), whole, "cut at {cut}");
        }
    }
}
