//! Turning a run's alerts into one message: a document of lines of (bold or plain) text,
//! rendered as Telegram HTML (escaped with `html-escape`) or as plain text, and split into
//! pieces that fit Telegram's limit.
//!
//! The message keeps the Agent Ops Kit's head (`[ERROR] Agent Ops Alert`), then one section per kind
//! of trouble with a summary ("3 services down: api, db, web") and a line per subject,
//! children of a down parent listed under its line, alerts that came as they are with their
//! title and message, and the recoveries last.
//!
//! Telegram counts a message's length in UTF-16 code units after parsing entities; the
//! splitter counts the HTML itself (tags and escapes included), which is never shorter, and
//! cuts at line ends, or inside a line that alone is too long, but never inside a tag or an
//! escape: every piece is well-formed HTML on its own.

use super::alert::Alert;
use super::rules;
use crate::clock;
use crate::record::Level;

/// Telegram's limit on a message's text.
pub(crate) const TELEGRAM_LIMIT: usize = 4096;

/// The Agent Ops Kit's title line.
pub(crate) const HEAD: &str = "Agent Ops Alert";

/// A run of text, bold or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    pub text: String,
    pub bold: bool,
}

/// One line of a message, and how many subjects it names (for "and N more" when a message
/// does not fit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Line(pub Vec<Span>, pub usize);

impl Line {
    fn plain(text: impl Into<String>) -> Line {
        Line(vec![Span { text: text.into(), bold: false }], 0)
    }

    fn push(mut self, text: impl Into<String>, bold: bool) -> Line {
        let text = text.into();
        if !text.is_empty() {
            self.0.push(Span { text, bold });
        }
        self
    }

    /// The line names `n` subjects.
    fn naming(mut self, n: usize) -> Line {
        self.1 = n;
        self
    }

    fn html(&self) -> String {
        self.render(Style::TELEGRAM)
    }

    fn render(&self, style: Style) -> String {
        let mut s = String::new();
        for sp in &self.0 {
            let (open, close) = style.markup.bold(sp.bold);
            s.push_str(open);
            s.push_str(&style.markup.escape(&sp.text));
            s.push_str(close);
        }
        s
    }

    fn plain_text(&self) -> String {
        self.0.iter().map(|s| s.text.as_str()).collect()
    }

    fn is_blank(&self) -> bool {
        self.0.iter().all(|s| s.text.trim().is_empty())
    }
}

/// A message: lines of spans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Doc {
    pub(crate) lines: Vec<Line>,
}

/// Length as Telegram counts it: UTF-16 code units.
pub fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

impl Doc {
    fn line(&mut self, l: Line) {
        self.lines.push(l);
    }

    fn text(&mut self, text: &str) {
        for l in text.lines() {
            self.lines.push(Line::plain(l));
        }
    }

    /// As Telegram HTML (`parse_mode: HTML`).
    pub fn html(&self) -> String {
        self.lines.iter().map(Line::html).collect::<Vec<_>>().join("\n")
    }

    /// As plain text.
    pub(crate) fn plain(&self) -> String {
        self.lines.iter().map(Line::plain_text).collect::<Vec<_>>().join("\n")
    }

    /// Written in `style`'s markup.
    pub(crate) fn render(&self, style: Style) -> String {
        self.lines.iter().map(|l| l.render(style)).collect::<Vec<_>>().join("\n")
    }

    /// Split into documents whose HTML is at most `limit` UTF-16 units each, at line ends
    /// where possible; blank lines at the edges of a piece are dropped.
    pub fn split(&self, limit: usize) -> Vec<Doc> {
        self.split_as(Style::TELEGRAM, limit)
    }

    /// Split into documents whose text in `style` measures at most `limit` each, at line
    /// ends where possible; blank lines at the edges of a piece are dropped.
    pub(crate) fn split_as(&self, style: Style, limit: usize) -> Vec<Doc> {
        let mut out = Vec::new();
        let mut cur = Doc::default();
        let mut len = 0usize;
        for line in &self.lines {
            for piece in split_line(line, style, limit) {
                let l = style.measure(&piece.render(style));
                if !cur.lines.is_empty() && len + 1 + l > limit {
                    out.push(std::mem::take(&mut cur));
                    len = 0;
                }
                len = if cur.lines.is_empty() { l } else { len + 1 + l };
                cur.lines.push(piece);
            }
        }
        out.push(cur);
        out.into_iter()
            .filter_map(|mut d| {
                while d.lines.last().is_some_and(Line::is_blank) {
                    d.lines.pop();
                }
                let skip = d.lines.iter().take_while(|l| l.is_blank()).count();
                d.lines.drain(..skip);
                if d.lines.is_empty() { None } else { Some(d) }
            })
            .collect()
    }
}

/// The markup a service reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Markup {
    /// Telegram's HTML: `<b>`, and `&`, `<`, `>` escaped.
    Html,
    /// Text as it is (ntfy, email, Apprise).
    Plain,
    /// Slack's mrkdwn: `*bold*`, and `&`, `<`, `>` escaped as Slack asks.
    Slack,
    /// Discord's Markdown: `**bold**`, and its markup characters escaped with `\`.
    Discord,
}

impl Markup {
    fn bold(self, bold: bool) -> (&'static str, &'static str) {
        match (self, bold) {
            (_, false) | (Markup::Plain, true) => ("", ""),
            (Markup::Html, true) => ("<b>", "</b>"),
            (Markup::Slack, true) => ("*", "*"),
            (Markup::Discord, true) => ("**", "**"),
        }
    }

    fn escape(self, text: &str) -> String {
        match self {
            Markup::Html => html_escape::encode_text(text).into_owned(),
            Markup::Plain => text.to_string(),
            Markup::Slack => text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"),
            Markup::Discord => {
                let mut s = String::with_capacity(text.len());
                for c in text.chars() {
                    if matches!(c, '\\' | '*' | '_' | '~' | '`' | '|') {
                        s.push('\\');
                    }
                    s.push(c);
                }
                s
            }
        }
    }
}

/// How a service counts a message's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// UTF-16 code units (Telegram; never fewer than characters, so safe where characters
    /// are counted: Slack, Discord).
    Utf16,
    /// UTF-8 bytes (ntfy).
    Bytes,
}

/// A service's markup and unit of length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Style {
    pub markup: Markup,
    pub unit: Unit,
}

impl Style {
    pub(crate) const TELEGRAM: Style = Style { markup: Markup::Html, unit: Unit::Utf16 };

    fn measure(self, s: &str) -> usize {
        match self.unit {
            Unit::Utf16 => utf16_len(s),
            Unit::Bytes => s.len(),
        }
    }
}

/// Cut a line whose rendering is over `limit` into lines that fit, between characters.
fn split_line(line: &Line, style: Style, limit: usize) -> Vec<Line> {
    if style.measure(&line.render(style)) <= limit {
        return vec![line.clone()];
    }
    let mut out = Vec::new();
    let mut cur = Line::default();
    let mut len = 0usize;
    for sp in &line.0 {
        let (open, close) = style.markup.bold(sp.bold);
        let tags = style.measure(open) + style.measure(close);
        let mut text = String::new();
        for c in sp.text.chars() {
            let w = style.measure(&style.markup.escape(c.encode_utf8(&mut [0u8; 4])));
            let open = if text.is_empty() { tags } else { 0 };
            if len + open + w > limit && (len > 0 || !text.is_empty()) {
                if !text.is_empty() {
                    cur.0.push(Span { text: std::mem::take(&mut text), bold: sp.bold });
                }
                out.push(std::mem::take(&mut cur));
                len = 0;
            }
            if text.is_empty() {
                len += tags;
            }
            text.push(c);
            len += w;
        }
        if !text.is_empty() {
            cur.0.push(Span { text, bold: sp.bold });
        }
    }
    if !cur.0.is_empty() {
        out.push(cur);
    }
    if let Some(first) = out.first_mut() {
        first.1 = line.1;
    }
    out
}

/// Fit a message into at most `max_pieces` pieces of `limit`: split at line ends, and when it
/// is longer than that, keep as many whole lines as fit and end with "… and N more", N being
/// the subjects the left-out lines name. The whole text stays in the alert records.
pub(crate) fn fit(doc: &Doc, limit: usize, max_pieces: usize) -> Vec<Doc> {
    fit_as(doc, Style::TELEGRAM, limit, max_pieces)
}

/// [`fit`] for a service with its own markup and unit of length.
pub(crate) fn fit_as(doc: &Doc, style: Style, limit: usize, max_pieces: usize) -> Vec<Doc> {
    let pieces = doc.split_as(style, limit);
    if pieces.len() <= max_pieces.max(1) {
        return pieces;
    }
    let with = |keep: usize| {
        let left: usize = doc.lines[keep..].iter().map(|l| l.1).sum();
        let mut d = Doc { lines: doc.lines[..keep].to_vec() };
        let more = if left > 0 { format!("… and {left} more") } else { "… and more".to_string() };
        d.line(Line::default());
        let n = max_pieces.max(1);
        let what = if n == 1 { "one message".to_string() } else { format!("{n} messages") };
        d.line(Line::plain(format!(
            "{more} (not sent, to keep within {what}; the full list is in notify's alert records)"
        )));
        d.split_as(style, limit)
    };
    // The most whole lines that fit with the note after them.
    let (mut lo, mut hi) = (0usize, doc.lines.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if with(mid).len() <= max_pieces.max(1) { lo = mid } else { hi = mid - 1 }
    }
    with(lo)
}

/// The worst level of the firing alerts; `recovery` when all are resolved.
pub(crate) fn head_level(alerts: &[&Alert]) -> Level {
    alerts.iter().filter(|a| !a.is_resolved()).map(|a| a.level).max_by_key(|l| l.severity()).unwrap_or(Level::Recovery)
}

fn clock_time(ts: &str) -> String {
    match clock::parse_ts(ts) {
        Some(t) => {
            format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
        }
        None => ts.to_string(),
    }
}

/// The Agent Ops Kit's message for `notify send`: `[LEVEL] *Agent Ops Alert*`, a blank line, the
/// message.
pub(crate) fn kit_message(level: Level, message: &str) -> Doc {
    let mut d = Doc::default();
    d.line(Line::plain(format!("{} ", level.prefix())).push(HEAD, true));
    d.line(Line::default());
    d.text(message);
    d
}

/// One message for a batch of alerts. `delayed` marks alerts sent from the outbox, which
/// then carry the time they were raised.
pub fn compose(alerts: &[&Alert], delayed: bool) -> Doc {
    let level = head_level(alerts);
    if let [only] = alerts
        && !only.raised_by_rules()
        && (only.title.is_empty() || only.title == HEAD || only.message.starts_with(&only.title))
    {
        let mut d = kit_message(only.level, &only.message);
        if delayed {
            d.line(Line::default());
            d.line(Line::plain(format!("(raised {}, delivered late)", clock_time(&only.timestamp))));
        }
        return d;
    }
    let mut d = Doc::default();
    let head = Line::plain(format!("{} ", level.prefix())).push(HEAD, true);
    d.line(if delayed { head.push(" (delivered late)", false) } else { head });
    let raised = |a: &Alert| if delayed { format!(" [raised {}]", clock_time(&a.timestamp)) } else { String::new() };

    // Firing alerts raised by the rules, grouped by kind and state in order of appearance.
    let mut groups: Vec<((String, String), Vec<&Alert>)> = Vec::new();
    for a in alerts.iter().copied().filter(|a| !a.is_resolved() && a.raised_by_rules()) {
        let key = (a.source_kind().to_string(), a.state.clone().unwrap_or_default());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(a),
            None => groups.push((key, vec![a])),
        }
    }
    for ((kind, state), members) in &groups {
        let (one, many) = rules::noun(kind);
        let names: Vec<&str> = members.iter().map(|a| a.name()).collect();
        let noun = if members.len() == 1 { one } else { many };
        d.line(Line::default());
        if members.len() > STORM {
            storm(&mut d, members, noun, state);
            continue;
        }
        d.line(Line::default().push(format!("{} {noun} {state}: {}", members.len(), names.join(", ")), true));
        for a in members {
            member(&mut d, a, state, &raised(a));
        }
    }
    // Alerts that came as they are.
    for a in alerts.iter().copied().filter(|a| !a.is_resolved() && !a.raised_by_rules()) {
        d.line(Line::default());
        d.line(Line::default().push(&a.title, true).push(raised(a), false).naming(1));
        d.text(&a.message);
    }
    recoveries(&mut d, alerts, &raised);
    d
}

/// One firing member of a group: its name, detail, how long it has been so, and the children
/// mentioned under it.
fn member(d: &mut Doc, a: &Alert, state: &str, raised: &str) {
    let detail = a.message.strip_prefix(state).map(|m| m.trim_start_matches(':').trim()).unwrap_or(&a.message);
    let mut l = Line::plain("• ").push(a.name(), true);
    l = l.push(if detail.is_empty() { String::new() } else { format!(": {detail}") }, false);
    if a.repeat {
        let how_long = a
            .since
            .as_deref()
            .and_then(clock::parse_ts)
            .zip(clock::parse_ts(&a.timestamp))
            .map(|(s, n)| clock::human_duration((n - s).whole_seconds().max(0) as u64));
        l = l.push(
            match how_long {
                Some(h) => format!(" (still {state} after {h})"),
                None => format!(" (still {state})"),
            },
            false,
        );
    }
    d.line(l.push(raised, false).naming(1));
    if !a.also.is_empty() {
        d.line(
            Line::plain(format!("   ↳ also down because of {}: {}", a.name(), a.also.join(", "))).naming(a.also.len()),
        );
    }
}

/// The recoveries of a batch: each with its message, or a count and the names in a storm.
fn recoveries(d: &mut Doc, alerts: &[&Alert], raised: &dyn Fn(&Alert) -> String) {
    let resolved: Vec<&Alert> = alerts.iter().copied().filter(|a| a.is_resolved()).collect();
    if !resolved.is_empty() {
        d.line(Line::default());
        let names: Vec<&str> = resolved.iter().map(|a| a.name()).collect();
        if resolved.len() > STORM {
            d.line(Line::default().push(format!("Recovered: {}", resolved.len()), true));
            for chunk in wrap_names(&names) {
                let n = chunk.1;
                d.line(Line::plain(format!("   {}", chunk.0)).naming(n));
            }
        } else {
            d.line(Line::default().push(format!("Recovered: {}", names.join(", ")), true));
            for a in resolved {
                let text = if a.raised_by_rules() { a.message.clone() } else { format!("{}: {}", a.title, a.message) };
                d.line(
                    Line::plain("• ")
                        .push(a.name(), true)
                        .push(format!(" {text}"), false)
                        .push(raised(a), false)
                        .naming(1),
                );
            }
        }
    }
}

/// Past this many subjects in one group a message is a storm: a headline with counts, then
/// the subjects by root cause, each named once, instead of a line per subject.
pub(crate) const STORM: usize = 10;

/// The width names are wrapped to in a storm.
const WRAP: usize = 240;

/// A storm of one kind and state: "300 services down (250 new, 50 still down)", then per root
/// cause (the detail, less a leading `port N: `) its count and the names, wrapped on name
/// boundaries, with the children each one took down.
fn storm(d: &mut Doc, members: &[&Alert], noun: &str, state: &str) {
    let new = members.iter().filter(|a| !a.repeat).count();
    let mut head = format!("{} {noun} {state}", members.len());
    if new > 0 && new < members.len() {
        head.push_str(&format!(" ({new} new, {} still {state})", members.len() - new));
    }
    d.line(Line::default().push(head, true));
    let mut causes: Vec<(String, Vec<&Alert>)> = Vec::new();
    for a in members.iter().copied() {
        let detail =
            a.message.strip_prefix(state).map(|m| m.trim_start_matches(':').trim()).unwrap_or(&a.message).to_string();
        let c = cause(&detail);
        match causes.iter_mut().find(|(k, _)| *k == c) {
            Some((_, v)) => v.push(a),
            None => causes.push((c, vec![a])),
        }
    }
    causes.sort_by_key(|c| std::cmp::Reverse(c.1.len()));
    for (c, list) in causes {
        let c = if c.is_empty() { state.to_string() } else { c };
        d.line(Line::plain("• ").push(format!("{c} ({}):", list.len()), true));
        let names: Vec<&str> = list.iter().map(|a| a.name()).collect();
        for (text, n) in wrap_names(&names) {
            d.line(Line::plain(format!("   {text}")).naming(n));
        }
        for a in list.iter().filter(|a| !a.also.is_empty()) {
            d.line(
                Line::plain(format!("   ↳ also down because of {}: {}", a.name(), a.also.join(", ")))
                    .naming(a.also.len()),
            );
        }
    }
}

/// What a detail says went wrong, without what differs from service to service (`port 8080: `).
fn cause(detail: &str) -> String {
    let d = detail.trim();
    if let Some(rest) = d.strip_prefix("port ")
        && let Some((num, why)) = rest.split_once(": ")
        && num.bytes().all(|b| b.is_ascii_digit())
    {
        return why.trim().to_string();
    }
    d.to_string()
}

/// Names joined with ", " into lines of about [`WRAP`] characters, cut only between names;
/// each with the number of names it holds.
fn wrap_names(names: &[&str]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let (mut cur, mut n) = (String::new(), 0usize);
    for (i, name) in names.iter().enumerate() {
        let piece = if i + 1 < names.len() { format!("{name},") } else { (*name).to_string() };
        if !cur.is_empty() && cur.chars().count() + 1 + piece.chars().count() > WRAP {
            out.push((std::mem::take(&mut cur), n));
            n = 0;
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(&piece);
        n += 1;
    }
    if !cur.is_empty() {
        out.push((cur, n));
    }
    out
}

/// The Markdown body of an issue for one alert: the alert's own body when it has one.
pub(crate) fn issue_body(a: &Alert, host: &str) -> String {
    if let Some(b) = a.body.as_deref().filter(|b| !b.trim().is_empty()) {
        return b.to_string();
    }
    let mut s = format!("**{}**: {}\n", md(a.name()), md(&a.message));
    if !a.also.is_empty() {
        s.push_str(&format!("\nAlso down because of it: {}\n", md(&a.also.join(", "))));
    }
    s.push_str("\n| | |\n|---|---|\n");
    if let Some(subj) = &a.subject {
        s.push_str(&format!("| subject | `{subj}` |\n"));
    }
    s.push_str(&format!("| level | {} |\n", a.level.as_str()));
    if let Some(since) = &a.since {
        s.push_str(&format!("| since | {since} |\n"));
    }
    s.push_str(&format!("| raised | {} |\n", a.timestamp));
    if !host.is_empty() {
        s.push_str(&format!("| host | {} |\n", md(host)));
    }
    s.push_str("\n_Raised by pitcrew notify._\n");
    s
}

/// A comment on an open issue for a later alert of the same incident.
pub(crate) fn issue_comment(a: &Alert) -> String {
    if a.is_resolved() {
        return format!("**Recovered** ({}): {}\n", a.timestamp, md(&a.message));
    }
    let what = if a.repeat { "Still failing" } else { "Alerted again" };
    let mut s = format!("**{what}** ({}, level {}): {}\n", a.timestamp, a.level.as_str(), md(&a.message));
    if let Some(b) = a.body.as_deref().filter(|b| !b.trim().is_empty()) {
        s.push('\n');
        s.push_str(b);
        s.push('\n');
    }
    s
}

/// Escape the characters Markdown would take as formatting.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::alert::AlertStatus;
    use serde_json::json;

    fn rule(name: &str, state: &str, level: Level, detail: &str) -> Alert {
        let mut a = Alert::new(
            &format!("check:{name}"),
            level,
            &format!("{name} is failing"),
            &format!("{state}: {detail}"),
            "2026-11-23T10:30:00.000Z",
        );
        a.subject = Some(format!("check:{name}"));
        a.labels = Some(json!({"kind": "check", "name": name}));
        a.state = Some(state.into());
        a
    }

    #[test]
    fn the_kit_head_and_escaped_message() {
        let d = kit_message(Level::Error, "a < b && c > d\nline 2");
        assert_eq!(d.html(), "[ERROR] <b>Agent Ops Alert</b>\n\na &lt; b &amp;&amp; c &gt; d\nline 2");
        assert_eq!(d.plain(), "[ERROR] Agent Ops Alert\n\na < b && c > d\nline 2");
    }

    #[test]
    fn grouped_with_children_and_recoveries() {
        let mut gw = rule("gateway", "down", Level::Error, "connection refused");
        gw.also = vec!["api".into(), "web".into()];
        let db = rule("db<1>", "down", Level::Error, "port 5432: refused");
        let slow = rule("web", "degraded", Level::Warning, "slow");
        let mut back = rule("cache", "up", Level::Recovery, "x");
        back.status = AlertStatus::Resolved;
        back.message = "recovered after 5m: HTTP 200".into();
        let d = compose(&[&gw, &db, &slow, &back], false);
        let want = "[ERROR] <b>Agent Ops Alert</b>\n\n\
<b>2 services down: gateway, db&lt;1&gt;</b>\n\
• <b>gateway</b>: connection refused\n\
\x20  ↳ also down because of gateway: api, web\n\
• <b>db&lt;1&gt;</b>: port 5432: refused\n\n\
<b>1 service degraded: web</b>\n\
• <b>web</b>: slow\n\n\
<b>Recovered: cache</b>\n\
• <b>cache</b> recovered after 5m: HTTP 200";
        assert_eq!(d.html(), want);
    }

    #[test]
    fn splitting_respects_the_limit_lines_and_tags() {
        let lines: Vec<String> = (0..400).map(|i| format!("line {i} with <angle> & ampersand")).collect();
        let mut a = Alert::new("t", Level::Error, "Big", &lines.join("\n"), "t");
        a.title = "Big report".into();
        let doc = compose(&[&a], false);
        let parts = doc.split(TELEGRAM_LIMIT);
        assert!(parts.len() > 3);
        let mut joined = Vec::new();
        for p in &parts {
            let html = p.html();
            assert!(utf16_len(&html) <= TELEGRAM_LIMIT);
            assert!(!html.starts_with('\n') && !html.ends_with('\n'));
            joined.push(p.plain());
        }
        assert_eq!(joined.join("\n").replace("\n\n", "\n"), doc.plain().replace("\n\n", "\n"));
    }

    #[test]
    fn one_huge_line_is_cut_between_characters_never_inside_an_escape() {
        let text = "é&<".repeat(3000) + "😀".repeat(3000).as_str();
        let mut d = Doc::default();
        d.line(Line::default().push(&text, true));
        let parts = d.split(100);
        let mut back = String::new();
        for p in &parts {
            let h = p.html();
            assert!(utf16_len(&h) <= 100, "{h}");
            assert!(h.starts_with("<b>") && h.ends_with("</b>"), "{h}");
            back.push_str(&p.plain());
        }
        assert_eq!(back, text);
    }

    #[test]
    fn each_markup_escapes_its_own_and_splits_in_its_own_unit() {
        let mut d = Doc::default();
        d.line(Line::plain("a <b> & *c* _d_ `e` |f| ~g~ \\h ").push("bold", true));
        let slack = Style { markup: Markup::Slack, unit: Unit::Utf16 };
        let discord = Style { markup: Markup::Discord, unit: Unit::Utf16 };
        let plain = Style { markup: Markup::Plain, unit: Unit::Bytes };
        assert_eq!(d.render(slack), "a &lt;b&gt; &amp; *c* _d_ `e` |f| ~g~ \\h *bold*");
        assert_eq!(d.render(discord), "a <b> & \\*c\\* \\_d\\_ \\`e\\` \\|f\\| \\~g\\~ \\\\h **bold**");
        assert_eq!(d.render(plain), "a <b> & *c* _d_ `e` |f| ~g~ \\h bold");
        // Bytes: three a character here, so 100 bytes hold 33 of them; bold marks count.
        let mut d = Doc::default();
        d.line(Line::default().push("警".repeat(100), true));
        for (style, limit) in [(plain, 100), (discord, 100)] {
            let parts = d.split_as(style, limit);
            let back: String = parts.iter().map(Doc::plain).collect();
            assert_eq!(back, "警".repeat(100));
            for p in &parts {
                let r = p.render(style);
                let n = if style.unit == Unit::Bytes { r.len() } else { utf16_len(&r) };
                assert!(n <= limit, "{n}: {r}");
            }
        }
        assert_eq!(d.split_as(plain, 100).len(), 4);
    }
}
