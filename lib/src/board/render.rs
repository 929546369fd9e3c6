//! The views for people: the board as columns side by side, as markdown, tasks as aligned
//! lines, one task in full. Widths are measured in terminal cells (wide characters count
//! two), so a title in Japanese or with an emoji does not push its neighbours out of line.

use std::fmt::Write as _;

use serde_json::Value;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::model::TaskView;

/// Tasks grouped by column, for the board views.
pub(crate) struct Columns<'a> {
    pub(crate) columns: Vec<(String, Vec<TaskView<'a>>)>,
}

impl<'a> Columns<'a> {
    /// Group `tasks` into `names` (in that order), most urgent first within a column, the
    /// board's order otherwise.
    pub(crate) fn group(names: &[String], tasks: impl Iterator<Item = TaskView<'a>>) -> Columns<'a> {
        let mut columns: Vec<(String, Vec<TaskView<'a>>)> = names.iter().map(|n| (n.clone(), Vec::new())).collect();
        for t in tasks {
            if let Some((_, list)) = columns.iter_mut().find(|(n, _)| n == t.column()) {
                list.push(t);
            }
        }
        for (_, list) in &mut columns {
            list.sort_by_key(|t| std::cmp::Reverse(t.priority_rank()));
        }
        Columns { columns }
    }
}

/// Control characters (a newline in a title) would break a line-oriented view.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Display width in terminal cells.
pub(crate) fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// `s` cut to at most `max` cells, ending in `…` when cut.
pub(crate) fn fit(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out = prefix_within(s, max - 1, false);
    out.push('…');
    out
}

/// The longest start of `s` at most `cells` cells wide (with `at_least_one`, one character
/// even when it alone is wider). Characters are added by their own widths, then the result
/// is cut until the whole fits: a sequence can be wider than its characters (an emoji
/// presentation selector makes a one-cell heart two cells). A run of zero-width characters
/// counts against a bound, so a hostile title cannot make this quadratic in its length.
fn prefix_within(s: &str, cells: usize, at_least_one: bool) -> String {
    let limit = 4 * cells + 16;
    let mut out = String::new();
    let (mut used, mut n) = (0, 0);
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if (used + w > cells || n >= limit) && !(at_least_one && out.is_empty()) {
            break;
        }
        out.push(c);
        used += w;
        n += 1;
    }
    while width(&out) > cells && out.chars().nth(usize::from(at_least_one)).is_some() {
        out.pop();
    }
    out
}

/// `s` padded with spaces to `cells` cells (cut first if longer).
pub(crate) fn pad(s: &str, cells: usize) -> String {
    let s = fit(s, cells);
    let w = width(&s);
    format!("{s}{}", " ".repeat(cells.saturating_sub(w)))
}

/// Word-wrap `s` into at most `max_lines` lines of `cells` cells; the last line ends in `…`
/// when the text goes on. A word longer than a line is split.
pub(crate) fn wrap(s: &str, cells: usize, max_lines: usize) -> Vec<String> {
    let cells = cells.max(1);
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for mut word in s.split_whitespace() {
        loop {
            let (cw, ww) = (width(&cur), width(word));
            let sep = usize::from(!cur.is_empty());
            if cw + sep + ww <= cells {
                if sep == 1 {
                    cur.push(' ');
                }
                cur.push_str(word);
                break;
            }
            if !cur.is_empty() {
                lines.push(std::mem::take(&mut cur));
                continue;
            }
            let head = fit_exact(word, cells);
            word = &word[head.len()..];
            lines.push(head);
            if word.is_empty() {
                break;
            }
        }
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    if lines.len() > max_lines {
        lines.truncate(max_lines);
        if let Some(last) = lines.last_mut() {
            *last = if width(last) < cells { format!("{last}…") } else { fit(&format!("{last}…"), cells) };
        }
    }
    lines
}

/// The longest start of `s` that fits in `cells` cells (at least one character).
fn fit_exact(s: &str, cells: usize) -> String {
    prefix_within(s, cells, true)
}

/// The lines of one card in a text column of `cells` cells.
fn card(t: &TaskView<'_>, cells: usize) -> Vec<String> {
    let mut lines = wrap(&one_line(t.title()), cells, 2);
    if lines.is_empty() {
        lines.push("(no title)".into());
    }
    lines.push(fit(&format!("{} · {}", t.id(), t.priority()), cells));
    let mut who: Vec<String> = Vec::new();
    if !t.owner().is_empty() {
        who.push(format!("@{}", one_line(t.owner())));
    }
    who.extend(t.tags().iter().map(|g| format!("#{}", one_line(g))));
    if !who.is_empty() {
        lines.push(fit(&who.join(" "), cells));
    }
    lines
}

/// The board as columns side by side in `total` cells.
pub(crate) fn board_text(cols: &Columns<'_>, total: usize) -> String {
    const SEP: &str = " │ ";
    let n = cols.columns.len().max(1);
    let cells = (total.saturating_sub(3 * (n - 1)) / n).max(12);
    let mut cells_lines: Vec<Vec<String>> = Vec::with_capacity(n);
    for (_, tasks) in &cols.columns {
        let mut lines = Vec::new();
        for (i, t) in tasks.iter().enumerate() {
            if i > 0 {
                lines.push(String::new());
            }
            lines.extend(card(t, cells));
        }
        cells_lines.push(lines);
    }
    let mut out = String::new();
    let header: Vec<String> =
        cols.columns.iter().map(|(name, tasks)| pad(&format!("{} ({})", one_line(name), tasks.len()), cells)).collect();
    let _ = writeln!(out, "{}", header.join(SEP).trim_end());
    let rule: Vec<String> = cols.columns.iter().map(|_| "─".repeat(cells)).collect();
    let _ = writeln!(out, "{}", rule.join("─┼─"));
    let rows = cells_lines.iter().map(Vec::len).max().unwrap_or(0);
    for r in 0..rows {
        let row: Vec<String> = cells_lines.iter().map(|c| pad(c.get(r).map_or("", String::as_str), cells)).collect();
        let _ = writeln!(out, "{}", row.join(SEP).trim_end());
    }
    out
}

/// CommonMark: a backslash before any ASCII punctuation makes it literal.
pub(crate) fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in one_line(s).chars() {
        if c.is_ascii_punctuation() && !matches!(c, '-' | '.' | ',' | ':' | ';' | '/' | '\'' | '"' | '?' | '=' | '@') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The board in markdown: a section per column, a list item per task.
pub(crate) fn board_markdown(cols: &Columns<'_>) -> String {
    let mut out = String::new();
    for (i, (name, tasks)) in cols.columns.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "## {} ({})\n", md_escape(name), tasks.len());
        if tasks.is_empty() {
            out.push_str("_none_\n");
        }
        for t in tasks {
            let mut meta = vec![t.priority().to_string()];
            if !t.owner().is_empty() {
                meta.push(format!("@{}", md_escape(t.owner())));
            }
            let tags: Vec<String> = t.tags().iter().map(|g| format!("`{}`", g.replace('`', "'"))).collect();
            if !tags.is_empty() {
                meta.push(tags.join(" "));
            }
            let title = if t.title().is_empty() { "(no title)".to_string() } else { md_escape(t.title()) };
            let _ = writeln!(out, "- **{title}** `{}` — {}", t.id().replace('`', "'"), meta.join(", "));
            let desc = one_line(t.description());
            if !desc.trim().is_empty() {
                let _ = writeln!(out, "  {}", md_escape(desc.trim()));
            }
        }
    }
    out
}

/// Tasks as aligned lines: id, column, priority, owner, title, tags.
pub(crate) fn list_text(tasks: &[TaskView<'_>]) -> String {
    let idw = tasks.iter().map(|t| width(t.id())).max().unwrap_or(0).max(2);
    let colw = tasks.iter().map(|t| width(t.column())).max().unwrap_or(0).max(6);
    let prw = tasks.iter().map(|t| width(t.priority())).max().unwrap_or(0).max(8);
    let ow = tasks.iter().map(|t| width(t.owner())).max().unwrap_or(0).clamp(5, 20);
    let mut out = String::new();
    for t in tasks {
        let tags: String = t.tags().iter().map(|g| format!(" #{}", one_line(g))).collect();
        let line = format!(
            "{}  {}  {}  {}  {}{}",
            pad(t.id(), idw),
            pad(t.column(), colw),
            pad(t.priority(), prw),
            pad(&one_line(t.owner()), ow),
            one_line(t.title()),
            tags
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// One task in full, unknown fields included.
pub(crate) fn show_text(t: &TaskView<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}  {}", t.id(), one_line(t.title()));
    let field = |out: &mut String, k: &str, v: &str| {
        let _ = writeln!(out, "  {:<12} {}", format!("{k}:"), v);
    };
    field(&mut out, "column", t.column());
    field(&mut out, "priority", t.priority());
    field(&mut out, "owner", t.owner());
    field(&mut out, "tags", &t.tags().join(", "));
    field(&mut out, "created", t.created());
    field(&mut out, "updated", t.updated());
    const KNOWN: [&str; 9] =
        ["id", "title", "column", "owner", "priority", "description", "tags", "createdAt", "updatedAt"];
    for (k, v) in t.0 {
        if !KNOWN.contains(&k.as_str()) {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            field(&mut out, k, &one_line(&v));
        }
    }
    if !t.description().is_empty() {
        let _ = writeln!(out, "  description:");
        for l in t.description().lines() {
            let _ = writeln!(out, "    {l}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};

    #[test]
    fn fitting_counts_cells() {
        assert_eq!(fit("hello", 5), "hello");
        assert_eq!(fit("hello world", 6), "hello…");
        assert_eq!(fit("日本語テキスト", 7), "日本語…");
        assert_eq!(width(&fit("日本語テキスト", 7)), 7);
        // Sequences wider than their characters, and runs of zero-width ones (from a
        // hand-edited or hostile board.json) still fit.
        for s in ["\u{2764}\u{FE0F}xx", "a\u{2764}\u{FE0F}\u{2764}\u{FE0F}b", "e\u{301}\u{301}xyz", "🇺🇸🇺🇸xx"]
        {
            for n in 1..8 {
                assert!(width(&fit(s, n)) <= n, "fit({s:?}, {n}) = {:?}", fit(s, n));
                assert!(wrap(s, n, 3).iter().all(|l| width(l) <= n.max(2)), "wrap({s:?}, {n})");
            }
        }
        let hostile = format!("x{}", "\u{FE0F}".repeat(1 << 20));
        let t = std::time::Instant::now();
        assert!(width(&fit(&hostile, 10)) <= 10 && wrap(&hostile, 10, 3).len() <= 3);
        assert!(t.elapsed() < crate::util::test_limit(5.0), "{:?}", t.elapsed());
        assert_eq!(pad("日本", 6), "日本  ");
    }

    #[test]
    fn wrapping_keeps_words_and_marks_the_cut() {
        assert_eq!(wrap("fix the api timeout issue", 10, 2), ["fix the", "api…"]);
        assert_eq!(wrap("short", 10, 2), ["short"]);
        assert_eq!(wrap("abcdefghijklmnop", 6, 2), ["abcdef", "ghijk…"]);
        assert_eq!(wrap("a b", 10, 2), ["a b"]);
        for l in wrap("日本語のとても長いタイトルです ok", 8, 3) {
            assert!(width(&l) <= 8, "{l}");
        }
    }

    fn task(v: serde_json::Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_text_board_lines_up() {
        let a = task(
            json!({"id":"task-00000001","title":"Fix API timeout issue on the gateway","column":"open","owner":"ops","priority":"high","tags":["ops"]}),
        );
        let b = task(
            json!({"id":"task-00000002","title":"日本語のタイトル","column":"done","owner":"","priority":"low","tags":[]}),
        );
        let c = task(json!({"id":"task-00000003","title":"Urgent","column":"open","priority":"critical"}));
        let names: Vec<String> = ["open", "in-progress", "done"].iter().map(|s| s.to_string()).collect();
        let tasks = [TaskView(&a), TaskView(&b), TaskView(&c)];
        let cols = Columns::group(&names, tasks.iter().copied());
        let text = board_text(&cols, 60);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("open (2)"), "{text}");
        assert!(lines[2].starts_with("Urgent "), "most urgent first:\n{text}");
        let bar = lines[0].find('│').unwrap();
        for l in &lines[2..] {
            if let Some(i) = l.find('│') {
                let cells = width(&l[..i]);
                assert_eq!(cells, width(&lines[0][..bar]), "misaligned:\n{text}");
            }
        }
        assert!(text.contains("日本語のタイトル"));
        assert!(lines.iter().all(|l| width(l) <= 60), "{text}");
    }

    #[test]
    fn markdown_escapes_titles() {
        let a =
            task(json!({"id":"task-1","title":"*bold* [link](x) <b>","column":"open","priority":"high","tags":["a"]}));
        let names = vec!["open".to_string(), "done".to_string()];
        let md = board_markdown(&Columns::group(&names, [TaskView(&a)].into_iter()));
        assert!(md.contains(r"- **\*bold\* \[link\]\(x\) \<b\>** `task-1` — high, `a`"), "{md}");
        assert!(md.contains("## done (0)\n\n_none_"), "{md}");
    }
}
