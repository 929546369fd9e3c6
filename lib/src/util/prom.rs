//! One writer of the Prometheus text exposition format (version 0.0.4): a family is its
//! `# HELP` and `# TYPE` lines followed by its samples; label values are escaped as the
//! format says (backslash, double quote, line feed), HELP text too (backslash, line feed),
//! and metric and label names are checked against the format's grammar.
//!
//! A name the format does not allow is a mistake of the program, not of its input: the
//! writer keeps going (the family or sample is left out) and [`Prom::finish`] names it.

use std::fmt::{Display, Write as _};

/// The type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// A value that goes up and down.
    Gauge,
    /// A value that only goes up.
    Counter,
    /// Quantiles (a `quantile` label), with `_sum` and `_count` samples.
    Summary,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::Gauge => "gauge",
            Type::Counter => "counter",
            Type::Summary => "summary",
        }
    }
}

/// A metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__` (reserved).
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    !name.starts_with("__")
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `s` escaped for a label value: `\` as `\\`, `"` as `\"`, a line feed as `\n`.
fn push_label_value(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `s` escaped for HELP text: `\` as `\\`, a line feed as `\n`.
fn push_help(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A metrics text being written.
#[derive(Debug, Default)]
pub struct Prom {
    out: String,
    /// The first name the format does not allow.
    bad_name: Option<String>,
}

impl Prom {
    /// An empty text with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Prom {
        Prom { out: String::with_capacity(capacity), bad_name: None }
    }

    fn refuse(&mut self, what: &str, name: &str) {
        if self.bad_name.is_none() {
            self.bad_name = Some(format!("{what} '{}' is not allowed by the exposition format", name.escape_debug()));
        }
    }

    /// Start a family: its HELP and TYPE lines.
    pub fn family(&mut self, name: &str, kind: Type, help: &str) {
        if !valid_metric_name(name) {
            return self.refuse("metric name", name);
        }
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        push_help(&mut self.out, help);
        let _ = writeln!(self.out, "\n# TYPE {name} {}", kind.as_str());
    }

    /// One sample: `name{label="value",...} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        if !valid_metric_name(name) {
            return self.refuse("metric name", name);
        }
        if let Some((bad, _)) = labels.iter().find(|(l, _)| !valid_label_name(l)) {
            return self.refuse("label name", bad);
        }
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(label);
                self.out.push_str("=\"");
                push_label_value(&mut self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// The text; an error naming the first name the format does not allow.
    pub fn finish(self) -> std::result::Result<String, String> {
        match self.bad_name {
            None => Ok(self.out),
            Some(why) => Err(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_samples_are_written_as_the_format_says() {
        let mut p = Prom::default();
        p.family("up_total", Type::Counter, "Things.\nWith a back\\slash.");
        p.sample("up_total", &[], 3);
        p.sample("up_total", &[("agent", "a\"b\\c\nd"), ("code", "200")], "1.500");
        assert_eq!(
            p.finish().unwrap(),
            "# HELP up_total Things.\\nWith a back\\\\slash.\n# TYPE up_total counter\nup_total 3\n\
             up_total{agent=\"a\\\"b\\\\c\\nd\",code=\"200\"} 1.500\n"
        );
    }

    #[test]
    fn names_the_format_does_not_allow_are_left_out_and_named() {
        assert!(valid_metric_name("a:b_c9") && !valid_metric_name("9a") && !valid_metric_name("a-b"));
        assert!(valid_label_name("_a9") && !valid_label_name("__a") && !valid_label_name("a:b"));
        let mut p = Prom::default();
        p.family("ok", Type::Gauge, "fine");
        p.sample("ok", &[("bad-label", "x")], 1);
        p.sample("bad name", &[], 1);
        assert_eq!(p.finish().unwrap_err(), "label name 'bad-label' is not allowed by the exposition format");
    }
}
