//! The one lenient field reader: the type checks every validator of pitcrew's JSON shares
//! (services.json in `config`, the check specs, tickmon's agent registry, cellscan's cell
//! files) and the one wording of a value that is not what a field wants ("expected a number,
//! found a string").
//!
//! Values come in two forms behind one trait, [`Json`]: a parsed [`Value`] (services.json,
//! the registry), or a borrowed [`RawValue`] that still points into its file, so a caller that
//! knows the file (cellscan's `FileCtx`) adds `file:line:column` to the message. [`Fields`]
//! reads an object's fields leniently and remembers the first problem: numbers that may be
//! written as strings (`"18901"`), whole numbers, ports, booleans, strings and lists.

use std::borrow::Cow;
use std::fmt;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// What a field wants, as messages say it.
pub mod want {
    /// A string.
    pub const STRING: &str = "a string";
    /// A boolean.
    pub const BOOLEAN: &str = "true or false";
    /// A JSON number.
    pub const NUMBER: &str = "a number";
    /// A JSON object.
    pub const OBJECT: &str = "an object";
    /// A list whose items are all strings.
    pub const STRING_LIST: &str = "a list of strings";
    /// One string or a list of them.
    pub const STRING_OR_STRINGS: &str = "a string or an array of strings";
    /// A number of at least 0, numeric strings included.
    pub const NON_NEGATIVE: &str = "a non-negative number";
    /// A TCP port.
    pub const PORT: &str = "a port number from 1 to 65535";
}

/// A value that is not what a field wants: `expected WANT, found FOUND` (its `Display`), or
/// just `expected WANT` ([`Mismatch::brief`]) where the message does not show the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// What the field wants (`a string`, `true or false`).
    pub want: Cow<'static, str>,
    /// What was found: a kind (`a number`) or a short rendering of the value (`"http"`).
    pub found: String,
}

impl Mismatch {
    /// A mismatch between `want` and `found`.
    pub fn new(want: impl Into<Cow<'static, str>>, found: impl Into<String>) -> Mismatch {
        Mismatch { want: want.into(), found: found.into() }
    }

    /// `want` against the kind of `v` (`a number`).
    pub fn of_kind<J: Json + ?Sized>(want: impl Into<Cow<'static, str>>, v: &J) -> Mismatch {
        Mismatch::new(want, v.kind())
    }

    /// `want` against the value itself, shortened (`"http"`, `-1`, `an array`).
    pub fn of_value(want: impl Into<Cow<'static, str>>, v: &Value) -> Mismatch {
        Mismatch::new(want, found(v))
    }

    /// `expected WANT`, without what was found.
    pub fn brief(&self) -> String {
        format!("expected {}", self.want)
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected {}, found {}", self.want, self.found)
    }
}

/// A JSON value a field reader can check: a parsed [`Value`] or a borrowed [`RawValue`].
pub trait Json {
    /// Its kind as messages name it (`a string`, `null`).
    fn kind(&self) -> &'static str;
    /// Its text, when it is a string.
    fn string(&self) -> Option<String>;
    /// Its value, when it is a boolean.
    fn boolean(&self) -> Option<bool>;
    /// Its value, when it is a JSON number a double can hold (no numeric strings).
    fn number(&self) -> Option<f64>;
    /// Its items, when it is a list of strings.
    fn string_list(&self) -> Option<Vec<String>>;
}

impl Json for Value {
    fn kind(&self) -> &'static str {
        json_type(self)
    }
    fn string(&self) -> Option<String> {
        self.as_str().map(String::from)
    }
    fn boolean(&self) -> Option<bool> {
        self.as_bool()
    }
    fn number(&self) -> Option<f64> {
        self.as_f64()
    }
    fn string_list(&self) -> Option<Vec<String>> {
        match self {
            Value::Array(a) if a.iter().all(Value::is_string) => {
                Some(a.iter().filter_map(Value::as_str).map(String::from).collect())
            }
            _ => None,
        }
    }
}

impl Json for RawValue {
    fn kind(&self) -> &'static str {
        match self.get().as_bytes().first() {
            Some(b'"') => "a string",
            Some(b'{') => "an object",
            Some(b'[') => "an array",
            Some(b't' | b'f') => "a boolean",
            Some(b'n') => "null",
            _ => "a number",
        }
    }
    fn string(&self) -> Option<String> {
        serde_json::from_str(self.get()).ok()
    }
    fn boolean(&self) -> Option<bool> {
        serde_json::from_str(self.get()).ok()
    }
    fn number(&self) -> Option<f64> {
        serde_json::from_str(self.get()).ok()
    }
    fn string_list(&self) -> Option<Vec<String>> {
        serde_json::from_str(self.get()).ok()
    }
}

/// A string, else a mismatch naming the kind found.
pub fn string<J: Json + ?Sized>(v: &J) -> Result<String, Mismatch> {
    v.string().ok_or_else(|| Mismatch::of_kind(want::STRING, v))
}

/// A boolean, else a mismatch naming the kind found.
pub fn boolean<J: Json + ?Sized>(v: &J) -> Result<bool, Mismatch> {
    v.boolean().ok_or_else(|| Mismatch::of_kind(want::BOOLEAN, v))
}

/// A JSON number, else a mismatch naming the kind found. A number past any double (`1e400`)
/// is a mismatch too, of kind `a number`: callers that say "out of range" check the kind.
pub fn number<J: Json + ?Sized>(v: &J) -> Result<f64, Mismatch> {
    v.number().ok_or_else(|| Mismatch::of_kind(want::NUMBER, v))
}

/// A list of strings, else a mismatch naming the kind found.
pub fn string_list<J: Json + ?Sized>(v: &J) -> Result<Vec<String>, Mismatch> {
    v.string_list().ok_or_else(|| Mismatch::of_kind(want::STRING_LIST, v))
}

/// The kind `want` (`a string`, `an object`), else a mismatch naming the kind found.
pub fn kind<J: Json + ?Sized>(v: &J, want: &'static str) -> Result<(), Mismatch> {
    if v.kind() == want { Ok(()) } else { Err(Mismatch::of_kind(want, v)) }
}

/// A number past any double (`1e400`), as a message shows it.
pub fn out_of_range(text: &str) -> String {
    format!("{} is out of range", crate::util::truncate(text, 40))
}

/// A number in services.json: a JSON number, or a string that holds one (`"18901"`,
/// `"2.5"`). Numeric strings are accepted in every numeric field, the top-level ones included;
/// infinities and NaN are not numbers here.
pub fn number_value(v: &Value) -> Option<f64> {
    let f = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    f.is_finite().then_some(f)
}

/// A whole number of at least 0 in services.json, as [`number_value`] reads it.
pub fn uint_value(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    if let Some(n) = v.as_str().and_then(|s| s.trim().parse::<u64>().ok()) {
        return Some(n);
    }
    // Past u64 (1e30 seconds) saturates, as a limit that large means "no limit".
    number_value(v).filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64)
}

/// A value as a message shows what was found instead of what a field wants.
pub fn found(v: &Value) -> String {
    match v {
        Value::String(_) | Value::Number(_) => crate::util::truncate(&v.to_string(), 40),
        other => json_type(other).to_string(),
    }
}

/// The kind of a value as messages name it (`a string`, `null`).
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Typed access to an object's fields that remembers the first problem.
pub struct Fields<'a> {
    /// The object read.
    pub obj: &'a Map<String, Value>,
    /// The first problem, as `field: why`.
    pub error: Option<String>,
}

impl<'a> Fields<'a> {
    /// The fields of `obj`, no problem yet.
    pub fn new(obj: &'a Map<String, Value>) -> Fields<'a> {
        Fields { obj, error: None }
    }

    /// Remember `key: why` unless a problem is already known.
    pub fn fail(&mut self, key: &str, why: &str) {
        if self.error.is_none() {
            self.error = Some(format!("{key}: {why}"));
        }
    }

    /// The field's value; absent and null are both none.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        match self.obj.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// A string field.
    pub fn string(&mut self, key: &str) -> Option<String> {
        let v = self.get(key)?;
        string(v).map_err(|m| self.fail(key, &m.brief())).ok()
    }

    /// A string field that must be there and not blank.
    pub fn required_string(&mut self, key: &str) -> String {
        match self.string(key) {
            Some(s) if !s.trim().is_empty() => s,
            Some(_) => {
                self.fail(key, "must not be empty");
                String::new()
            }
            None => {
                if self.obj.get(key).is_none() {
                    self.fail(key, "missing (required)");
                }
                String::new()
            }
        }
    }

    /// A whole number from 0 to `max`, numeric strings included.
    pub fn uint(&mut self, key: &str, max: u64) -> Option<u64> {
        let v = self.get(key)?;
        match uint_value(v) {
            Some(n) if n <= max => Some(n),
            _ => self.mismatch(key, Mismatch::of_value(format!("a whole number from 0 to {max}"), v)),
        }
    }

    /// A number of at least 0, numeric strings included.
    pub fn number(&mut self, key: &str) -> Option<f64> {
        let v = self.get(key)?;
        match number_value(v) {
            Some(f) if f >= 0.0 => Some(f),
            _ => self.mismatch(key, Mismatch::of_value(want::NON_NEGATIVE, v)),
        }
    }

    /// A boolean.
    pub fn boolean(&mut self, key: &str) -> Option<bool> {
        let v = self.get(key)?;
        boolean(v).map_err(|m| self.fail(key, &m.brief())).ok()
    }

    /// One string or a list of them, as a list.
    pub fn strings(&mut self, key: &str) -> Vec<String> {
        let Some(v) = self.get(key) else { return Vec::new() };
        match (v.as_str(), string_list(v)) {
            (Some(s), _) => vec![s.to_string()],
            (None, Ok(list)) => list,
            (None, Err(_)) => {
                self.fail(key, &Mismatch::of_kind(want::STRING_OR_STRINGS, v).brief());
                Vec::new()
            }
        }
    }

    /// A TCP port, numeric strings included.
    pub fn port(&mut self, key: &str) -> Option<u16> {
        let v = self.get(key)?;
        match uint_value(v) {
            Some(n) if (1..=65535).contains(&n) => Some(n as u16),
            _ => self.mismatch(key, Mismatch::of_value(want::PORT, v)),
        }
    }

    /// Remember `key: expected WANT, found FOUND`; none, for the caller to return.
    fn mismatch<T>(&mut self, key: &str, m: Mismatch) -> Option<T> {
        self.fail(key, &m.to_string());
        None
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_string()).unwrap()
    }

    #[test]
    fn parsed_and_raw_values_get_the_same_wording() {
        for (v, r) in [(json!(5), raw("5")), (json!(null), raw("null")), (json!([1]), raw("[1]"))] {
            assert_eq!(string(&v).unwrap_err().to_string(), string(&*r).unwrap_err().to_string());
        }
        assert_eq!(string(&*raw("5")).unwrap_err().to_string(), "expected a string, found a number");
        assert_eq!(boolean(&json!("yes")).unwrap_err().to_string(), "expected true or false, found a string");
        assert_eq!(number(&*raw("{}")).unwrap_err().to_string(), "expected a number, found an object");
        assert_eq!(string_list(&*raw("[1]")).unwrap_err().brief(), "expected a list of strings");
        assert_eq!(kind(&*raw("\"x\""), want::STRING), Ok(()));
        assert_eq!(out_of_range("1e400"), "1e400 is out of range");
        assert_eq!(string_list(&json!(["a", "b"])).unwrap(), ["a", "b"]);
    }

    #[test]
    fn fields_remember_the_first_problem_with_the_value_found() {
        let obj = json!({"port": "http", "on": 1, "n": -1, "list": [1]});
        let Value::Object(map) = obj else { unreachable!() };
        let mut f = Fields::new(&map);
        assert_eq!(f.port("port"), None);
        assert_eq!(f.boolean("on"), None);
        assert_eq!(f.error.as_deref(), Some("port: expected a port number from 1 to 65535, found \"http\""));
        let mut f = Fields::new(&map);
        assert_eq!((f.boolean("on"), f.number("n")), (None, None));
        assert_eq!(f.error.as_deref(), Some("on: expected true or false"));
        let mut f = Fields::new(&map);
        assert!(f.strings("list").is_empty());
        assert_eq!(f.error.as_deref(), Some("list: expected a string or an array of strings"));
        let mut f = Fields::new(&map);
        assert_eq!(f.uint("n", 10), None);
        assert_eq!(f.error.as_deref(), Some("n: expected a whole number from 0 to 10, found -1"));
    }
}
