//! Nagios / monitoring-plugins output: the status line, long text, and performance data.
//!
//! The format (Nagios plugin API): the first line is `TEXT | PERFDATA`; following lines are
//! long text, and from the first of them that contains `|` on, everything after the `|` is
//! more perfdata. Perfdata items are space-separated `'label'=value[UOM];warn;crit;min;max`,
//! labels quoted with `'` when they contain spaces (`''` is a literal quote).

use crate::record::{CheckStatus, Perf};

/// Plugin exit codes to check status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
pub(crate) fn status_of_exit(code: Option<i32>, warning_is_down: bool) -> CheckStatus {
    match code {
        Some(0) => CheckStatus::Up,
        Some(1) if !warning_is_down => CheckStatus::Degraded,
        _ => CheckStatus::Down,
    }
}

/// The parts of a plugin's output.
#[derive(Debug, Default, PartialEq)]
pub struct PluginOutput {
    /// The status line's text, before any `|`, trimmed.
    pub summary: String,
    /// The lines after the status line that are not perfdata, trailing space trimmed.
    pub long_text: Vec<String>,
    /// Every well-formed perfdata item, of the status line and of the long text.
    pub perf: Vec<Perf>,
}

/// Split a plugin's output into status line, long text and perfdata.
pub fn parse_output(out: &str) -> PluginOutput {
    let mut lines = out.lines();
    let first = lines.next().unwrap_or("");
    let (summary, perf1) = match first.split_once('|') {
        Some((t, p)) => (t.trim(), p),
        None => (first.trim(), ""),
    };
    let mut perf_text = perf1.to_string();
    let mut long_text = Vec::new();
    let mut in_perf = false;
    for line in lines {
        if in_perf {
            perf_text.push(' ');
            perf_text.push_str(line);
        } else if let Some((t, p)) = line.split_once('|') {
            if !t.trim().is_empty() {
                long_text.push(t.trim_end().to_string());
            }
            perf_text.push(' ');
            perf_text.push_str(p);
            in_perf = true;
        } else {
            long_text.push(line.trim_end().to_string());
        }
    }
    PluginOutput { summary: summary.to_string(), long_text, perf: parse_perfdata(&perf_text) }
}

/// Parse perfdata items; malformed items are skipped.
pub(crate) fn parse_perfdata(s: &str) -> Vec<Perf> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        // Label: quoted or up to '='.
        let mut label = String::new();
        if chars[i] == '\'' {
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        label.push('\'');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                label.push(chars[i]);
                i += 1;
            }
        } else {
            while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
                label.push(chars[i]);
                i += 1;
            }
        }
        if chars.get(i) != Some(&'=') {
            // Not an item: skip to the next space.
            while i < chars.len() && !chars[i].is_whitespace() {
                i += 1;
            }
            continue;
        }
        i += 1;
        let mut rest = String::new();
        while i < chars.len() && !chars[i].is_whitespace() {
            rest.push(chars[i]);
            i += 1;
        }
        if let Some(p) = parse_item(label, &rest) {
            out.push(p);
        }
    }
    out
}

fn parse_item(label: String, rest: &str) -> Option<Perf> {
    if label.is_empty() {
        return None;
    }
    let mut fields = rest.split(';');
    let vu = fields.next()?;
    let split =
        vu.find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))).unwrap_or(vu.len());
    // "1e3" is fine, but "5MB"'s E-less tail is the unit; a trailing 'e'/'E' belongs to the unit.
    let (mut num, mut uom) = vu.split_at(split);
    while num.ends_with(['e', 'E']) {
        let cut = num.len() - 1;
        uom = &vu[cut..];
        num = &vu[..cut];
    }
    let value: f64 = num.parse().ok().filter(|v: &f64| v.is_finite())?;
    let opt = |s: Option<&str>| s.map(str::trim).filter(|s| !s.is_empty()).map(String::from);
    let warn = opt(fields.next());
    let crit = opt(fields.next());
    // Rust reads "inf" and "NaN" as numbers; JSON cannot carry them (they would come out null).
    let bound = |s: Option<&str>| s.and_then(|s| s.trim().parse::<f64>().ok()).filter(|v| v.is_finite());
    let min = bound(fields.next());
    let max = bound(fields.next());
    Some(Perf { label, value, uom: uom.to_string(), warn, crit, min, max })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_tcp_style_output() {
        let o = parse_output(
            "TCP OK - 0.000 second response time on 127.0.0.1 port 22|time=0.000123s;;;0.000000;10.000000\n",
        );
        assert_eq!(o.summary, "TCP OK - 0.000 second response time on 127.0.0.1 port 22");
        assert_eq!(o.perf.len(), 1);
        let p = &o.perf[0];
        assert_eq!((p.label.as_str(), p.value, p.uom.as_str()), ("time", 0.000123, "s"));
        assert_eq!((p.warn.clone(), p.crit.clone(), p.min, p.max), (None, None, Some(0.0), Some(10.0)));
    }

    #[test]
    fn quoted_labels_long_text_and_more_perfdata() {
        let out = "DISK OK | '/ usage'=40%;80;90 'it''s'=3MB\nline two\nline three | x=1;2;3;0;10\ny=2c\n";
        let o = parse_output(out);
        assert_eq!(o.summary, "DISK OK");
        assert_eq!(o.long_text, vec!["line two", "line three"]);
        let labels: Vec<_> = o.perf.iter().map(|p| (p.label.as_str(), p.value, p.uom.as_str())).collect();
        assert_eq!(labels, vec![("/ usage", 40.0, "%"), ("it's", 3.0, "MB"), ("x", 1.0, ""), ("y", 2.0, "c")]);
        assert_eq!(o.perf[0].warn.as_deref(), Some("80"));
    }

    #[test]
    fn garbage_is_skipped() {
        assert!(parse_perfdata("nonsense ===  a=U b= =3").is_empty());
        assert_eq!(parse_perfdata("a=1e3ms")[0].value, 1000.0);
        let p = &parse_perfdata("a=1;;;NaN;inf b=1e400")[0];
        assert_eq!((p.min, p.max), (None, None));
        assert_eq!(parse_perfdata("b=1e400").len(), 0);
    }

    #[test]
    fn exit_codes() {
        assert_eq!(status_of_exit(Some(0), false), CheckStatus::Up);
        assert_eq!(status_of_exit(Some(1), false), CheckStatus::Degraded);
        assert_eq!(status_of_exit(Some(1), true), CheckStatus::Down);
        assert_eq!(status_of_exit(Some(3), false), CheckStatus::Down);
        assert_eq!(status_of_exit(None, false), CheckStatus::Down);
    }
}
