//! Apprise: the `apprise` command reaches 90+ services from one URL each (`slack://`,
//! `discord://`, `mailto://`, `ntfys://`, `matrix://`, `msteams://`, `pagerduty://`, `json://`, ...).
//!
//! One run of `apprise -v -t TITLE -b BODY -n TYPE -g TAG --config /dev/stdin [--config FILE]`
//! per batch: the URLs (`apprise_urls`, `APPRISE_URLS`) go in on stdin, one per line, never
//! on the command line where `ps` would show them; `apprise_config` (`APPRISE_CONFIG_PATH`) is
//! an Apprise configuration file of its own (text or YAML). The notification type follows the
//! level: info → `info`, recovery → `success`, warning → `warning`, error and critical →
//! `failure`. `-g all` (or `apprise_tag`) reaches tagged URLs too. Exit 0 is delivered; any
//! other exit (1 failed, 3 no URL matched the tag, 4 some services failed, 5 timed out) leaves
//! the batch in the outbox, so a partial failure is sent again to every URL. Apprise prints
//! whole URLs in some of its errors: what it says (on stdout or stderr) is scrubbed of every configured URL, of each
//! secret-looking piece of one, and of anything shaped like a URL, before a word of it is kept.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use regex::Regex;
use serde_json::{Value, json};

use super::{Sink, min_level, title};
use crate::config::{Alerting, CommandLine, Secret, url_pieces};
use crate::notify::alert::Alert;
use crate::notify::render::{self, Markup, Style, Unit};
use crate::record::Level;
use crate::util::proc;

/// The most bytes of the body (one argument of the command line).
pub const LIMIT: usize = 60_000;

const STYLE: Style = Style { markup: Markup::Plain, unit: Unit::Bytes };

pub struct Apprise {
    command: String,
    urls: Vec<Secret>,
    config: Option<PathBuf>,
    tag: String,
    timeout: Duration,
    min: Level,
    /// What is scrubbed from apprise's words: every URL and its secret-looking pieces.
    scrub: Vec<String>,
}

/// Apprise's notification type for a level.
pub fn kind(l: Level) -> &'static str {
    match l {
        Level::Info => "info",
        Level::Recovery => "success",
        Level::Warning => "warning",
        Level::Error | Level::Critical => "failure",
    }
}

/// Anything shaped like a URL (`scheme://` up to white space or a quote).
fn url_shape() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"([A-Za-z][A-Za-z0-9+.-]*)://[^\s'\x22]+").ok()).as_ref()
}

impl Apprise {
    /// The sink, or what is wrong with its settings.
    pub fn new(alerting: &Alerting) -> Result<Apprise, String> {
        let c = &alerting.channels;
        for (i, u) in c.apprise_urls.iter().enumerate() {
            if !u.expose().contains("://") {
                return Err(format!("apprise_urls[{i}]: not a URL (scheme://...)"));
            }
        }
        let mut scrub: Vec<String> = Vec::new();
        let mut add = |u: &str| {
            scrub.push(u.to_string());
            scrub.extend(url_pieces(u));
        };
        for u in &c.apprise_urls {
            add(u.expose());
        }
        if let Some(p) = &c.apprise_config {
            let text =
                std::fs::read_to_string(p).map_err(|e| format!("apprise_config: cannot read {}: {e}", p.display()))?;
            for m in url_shape().into_iter().flat_map(|re| re.find_iter(&text)) {
                add(m.as_str());
            }
        }
        scrub.retain(|s| s.len() >= 5);
        scrub.sort_by_key(|s| std::cmp::Reverse(s.len()));
        scrub.dedup();
        let secs = alerting.raw.get("apprise_timeout_seconds").and_then(Value::as_f64).filter(|s| *s > 0.0);
        Ok(Apprise {
            command: alerting.raw.get("apprise_command").and_then(Value::as_str).unwrap_or("apprise").to_string(),
            urls: c.apprise_urls.clone(),
            config: c.apprise_config.clone(),
            tag: alerting.raw.get("apprise_tag").and_then(Value::as_str).unwrap_or("all").to_string(),
            timeout: Duration::try_from_secs_f64(secs.unwrap_or(60.0)).unwrap_or(Duration::MAX),
            min: min_level(alerting, "apprise", Level::Info),
            scrub,
        })
    }

    /// Text with every URL and secret piece scrubbed.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.scrub {
            out = out.replace(s.as_str(), "***");
        }
        match url_shape() {
            Some(re) => re.replace_all(&out, "$1://***").into_owned(),
            None => out,
        }
    }

    fn body(batch: &[&Alert], delayed: bool) -> String {
        let doc = render::fit_as(&render::compose(batch, delayed), STYLE, LIMIT, 1);
        doc.iter().map(|d| d.render(STYLE)).collect::<Vec<_>>().join("\n")
    }

    fn argv(&self, title: &str, body: &str, level: Level) -> Vec<String> {
        let mut argv: Vec<String> = [&self.command, "-v", "-t", title, "-b", body, "-n", kind(level), "-g", &self.tag]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if !self.urls.is_empty() {
            argv.extend(["--config".to_string(), "/dev/stdin".to_string()]);
        }
        if let Some(p) = &self.config {
            argv.extend(["--config".to_string(), p.display().to_string()]);
        }
        argv
    }

    fn send(&self, batch: &[&Alert], delayed: bool) -> Result<(), String> {
        let level = render::head_level(batch);
        let title = crate::util::truncate(&title(batch), 250);
        let command = CommandLine::Argv(self.argv(&title, &Self::body(batch, delayed), level));
        let mut spec = proc::Spec::new(&command, self.timeout);
        let mut urls: String = self.urls.iter().map(|u| format!("{}\n", u.expose())).collect();
        spec.stdin = Some(std::mem::take(&mut urls).into_bytes());
        let out = proc::run(&spec).map_err(|e| format!("cannot run {}: {e}", self.command))?;
        if out.success() {
            return Ok(());
        }
        let what = match out.exit_code {
            Some(1) => "apprise exit 1 (failed)".to_string(),
            Some(2) => "apprise exit 2 (a usage error)".to_string(),
            Some(3) => format!("apprise exit 3 (no URL matched the tag '{}')", self.tag),
            Some(4) => "apprise exit 4 (some services failed; all are tried again)".to_string(),
            Some(5) => "apprise exit 5 (timed out)".to_string(),
            _ => out.describe(),
        };
        // Apprise logs to stdout when it is not a terminal, and to stderr otherwise.
        let said = self.said(&format!("{}\n{}", out.stderr, out.stdout));
        Err(if said.is_empty() { what } else { format!("{what}: {said}") })
    }

    /// The last words of apprise's log, scrubbed, without its time stamps.
    fn said(&self, stderr: &str) -> String {
        let clean = self.redact(stderr);
        let lines: Vec<&str> = clean
            .lines()
            .map(|l| {
                // "2026-12-06 06:52:22,275 - ERROR - Unparseable URL ..." → "ERROR - ..."
                match l.split_once(" - ") {
                    Some((stamp, rest)) if stamp.starts_with(|c: char| c.is_ascii_digit()) => rest,
                    _ => l,
                }
                .trim()
            })
            .filter(|l| !l.is_empty() && !l.starts_with("Try '"))
            .collect();
        let tail = &lines[lines.len().saturating_sub(3)..];
        crate::util::truncate(&tail.join("; "), 600)
    }
}

impl Sink for Apprise {
    fn name(&self) -> &'static str {
        "apprise"
    }

    fn min_level(&self) -> Level {
        self.min
    }

    fn deliver(&mut self, batch: &[&Alert], delayed: bool) -> Vec<Result<(), String>> {
        vec![self.send(batch, delayed); batch.len()]
    }

    fn preview(&self, batch: &[&Alert]) -> Vec<Value> {
        let level = render::head_level(batch);
        let urls: Vec<String> = self.urls.iter().map(|u| self.redact(u.expose())).collect();
        vec![
            json!({"title": title(batch), "type": kind(level), "urls": urls, "text": Self::body(batch, false)});
            batch.len()
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env_from;

    #[test]
    fn stderr_is_scrubbed_of_urls_and_their_pieces() {
        let Value::Object(raw) = json!({"apprise_urls": ["ntfy://user:pa55word@ntfy.example/team-topic"]}) else {
            unreachable!()
        };
        let a = Alerting::from_map(raw, &env_from(&[]));
        let s = Apprise::new(&a).unwrap();
        let said = s.said(
            "2026-12-06 06:52:22,275 - ERROR - Unparseable URL nosuch://SECRET@x\n\
             2026-12-06 06:52:22,276 - WARNING - Failed to send ntfy notification to topic 'team-topic': \
             limit reached, error=42901.\nTry 'apprise --help' for more information.\n",
        );
        assert_eq!(
            said,
            "ERROR - Unparseable URL nosuch://***; WARNING - Failed to send ntfy notification to topic '***': \
             limit reached, error=42901."
        );
        assert_eq!(kind(Level::Critical), "failure");
        assert_eq!(kind(Level::Recovery), "success");
    }
}
