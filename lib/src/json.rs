//! One JSON value at a time: an NDJSON line's object (with the nesting limit every record
//! keeps), a whole document with errors naming `path:line:column`, and the writing of a value
//! as one line. Below [`crate::store`] and [`crate::ndjson`], which both use it.

use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};

/// The deepest nesting of arrays and objects a record may have (serde_json reads at most
/// 128; what pitcrew keeps of a record in its own files nests it a few levels deeper).
pub const MAX_DEPTH: usize = 64;

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

/// Deserialize a JSON value into a typed record, with a message fit for `source:line: ...`.
pub fn from_value<T: DeserializeOwned>(v: Value) -> std::result::Result<T, String> {
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// Write one value as a line of NDJSON; a record gets this host's `host` when it has none
/// (see [`crate::util::host`]).
pub fn write<W: Write + ?Sized, T: Serialize + ?Sized>(w: &mut W, value: &T) -> Result<()> {
    match stamped(value)? {
        Some(v) => serde_json::to_writer(&mut *w, &v),
        None => serde_json::to_writer(&mut *w, value),
    }
    .map_err(|e| Error::from(io::Error::from(e)))?;
    w.write_all(b"\n")?;
    Ok(())
}

/// Write a record read from the input as one NDJSON line, as it is: records passed through
/// keep their fields, and a record without `host` stays the local host's.
pub fn pass<W: Write + ?Sized>(w: &mut W, value: &Value) -> Result<()> {
    serde_json::to_writer(&mut *w, value).map_err(|e| Error::from(io::Error::from(e)))?;
    w.write_all(b"\n")?;
    Ok(())
}

/// A record as one NDJSON line with this host's `host` added when it has none: the lines
/// appended to the metrics and the histories.
pub fn to_record_line<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    match stamped(value)? {
        Some(v) => to_line(&v),
        None => to_line(value),
    }
}

/// `value` as a JSON value with `host` added, or None when nothing is to be added (no host
/// set, not a record, or one that has its `host`).
fn stamped<T: Serialize + ?Sized>(value: &T) -> Result<Option<Value>> {
    if crate::util::host::get().is_none() {
        return Ok(None);
    }
    let mut v = serde_json::to_value(value).map_err(|e| Error::other(format!("serializing: {e}")))?;
    Ok(crate::util::host::stamp(&mut v).then_some(v))
}

/// Serialize a value to one NDJSON line (with the newline), for single-`write` appends.
pub fn to_line<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut v = serde_json::to_vec(value).map_err(|e| Error::other(format!("serializing: {e}")))?;
    v.push(b'\n');
    Ok(v)
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
