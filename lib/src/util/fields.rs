//! Reading services.json's fields leniently and remembering the first problem: numbers that
//! may be written as strings (`"18901"`), whole numbers, ports, booleans, strings and lists,
//! each refused with a message naming the field and what was found.

use serde_json::{Map, Value};

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
    pub obj: &'a Map<String, Value>,
    pub error: Option<String>,
}

impl<'a> Fields<'a> {
    /// The fields of `obj`, no problem yet.
    pub fn new(obj: &'a Map<String, Value>) -> Fields<'a> {
        Fields { obj, error: None }
    }

    pub fn fail(&mut self, key: &str, why: &str) {
        if self.error.is_none() {
            self.error = Some(format!("{key}: {why}"));
        }
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        match self.obj.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    pub fn string(&mut self, key: &str) -> Option<String> {
        match self.get(key) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.fail(key, "expected a string");
                None
            }
        }
    }

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

    pub fn uint(&mut self, key: &str, max: u64) -> Option<u64> {
        match self.get(key) {
            None => None,
            Some(v) => match uint_value(v) {
                Some(n) if n <= max => Some(n),
                _ => {
                    self.fail(key, &format!("expected a whole number from 0 to {max}, found {}", found(v)));
                    None
                }
            },
        }
    }

    pub fn number(&mut self, key: &str) -> Option<f64> {
        match self.get(key) {
            None => None,
            Some(v) => match number_value(v) {
                Some(f) if f >= 0.0 => Some(f),
                _ => {
                    self.fail(key, &format!("expected a non-negative number, found {}", found(v)));
                    None
                }
            },
        }
    }

    pub fn boolean(&mut self, key: &str) -> Option<bool> {
        match self.get(key) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.fail(key, "expected true or false");
                None
            }
        }
    }

    pub fn strings(&mut self, key: &str) -> Vec<String> {
        match self.get(key) {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
                a.iter().filter_map(Value::as_str).map(String::from).collect()
            }
            Some(_) => {
                self.fail(key, "expected a string or an array of strings");
                Vec::new()
            }
        }
    }

    pub fn port(&mut self, key: &str) -> Option<u16> {
        match self.get(key) {
            None => None,
            Some(v) => match uint_value(v) {
                Some(n) if (1..=65535).contains(&n) => Some(n as u16),
                _ => {
                    self.fail(key, &format!("expected a port number from 1 to 65535, found {}", found(v)));
                    None
                }
            },
        }
    }
}
