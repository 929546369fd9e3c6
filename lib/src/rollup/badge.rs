//! SVG badges of one service, in shields.io's flat style (drawn by the `shields` crate, whose
//! output is byte-for-byte shields.io's): `--format badge` shows the uptime over the window,
//! `--format badge-status` the latest check's status. Text is XML-escaped by the renderer.

use shields::BadgeStyle;
use shields::builder::Badge;

use super::report::Uptime;
use super::stats::py_round;

/// The colour of an uptime figure: brightgreen from 99.5 % (the page's "ok"), green from
/// 99 %, yellow from 95 % (the page's "warn"), orange from 90 %, red below.
pub(crate) fn uptime_color(pct: f64) -> &'static str {
    if pct >= 99.5 {
        "brightgreen"
    } else if pct >= 99.0 {
        "green"
    } else if pct >= 95.0 {
        "yellow"
    } else if pct >= 90.0 {
        "orange"
    } else {
        "red"
    }
}

/// `99.95%`, `100%`: two decimals at most, as the page writes it.
fn fmt_pct(pct: f64) -> String {
    let r = py_round(pct, 2);
    let s = format!("{r:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

fn draw(label: &str, message: &str, color: &str) -> String {
    Badge::style(BadgeStyle::Flat).label(label).message(message).message_color(color).build()
}

/// The uptime badge of `r` (`None`: the service has no check in the window: `no data`).
pub(crate) fn uptime(r: Option<&Uptime>, label: Option<&str>) -> String {
    let label = label.unwrap_or("uptime");
    match r.filter(|r| r.total_checks > 0) {
        Some(r) => draw(label, &fmt_pct(r.uptime_percent), uptime_color(r.uptime_percent)),
        None => draw(label, "no data", "lightgrey"),
    }
}

/// The status badge of service `name` from its latest check: up, degraded, down, or unknown.
pub(crate) fn status(name: &str, r: Option<&Uptime>, label: Option<&str>) -> String {
    let (message, color) = match r.and_then(|r| r.last_status) {
        Some("up") | Some("recovered") => ("up", "brightgreen"),
        Some("degraded") => ("degraded", "yellow"),
        Some("down") => ("down", "red"),
        _ => ("unknown", "lightgrey"),
    };
    draw(label.unwrap_or(name), message, color)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shields_flat_style_with_the_figure_and_its_colour() {
        let svg = draw("uptime", "99.95%", uptime_color(99.95));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
        assert!(svg.contains("<title>uptime: 99.95%</title>"), "{svg}");
        assert!(svg.contains("fill=\"#4c1\""), "brightgreen: {svg}");
        assert!(svg.contains("font-family=\"Verdana,Geneva,DejaVu Sans,sans-serif\""));
        for (pct, color) in
            [(100.0, "#4c1"), (99.2, "#97ca00"), (97.0, "#dfb317"), (91.0, "#fe7d37"), (42.0, "#e05d44")]
        {
            assert!(draw("uptime", &fmt_pct(pct), uptime_color(pct)).contains(color), "{pct} {color}");
        }
        assert_eq!(fmt_pct(100.0), "100%");
        assert_eq!(fmt_pct(99.949), "99.95%");
        assert_eq!(fmt_pct(99.5), "99.5%");
    }

    #[test]
    fn names_are_escaped() {
        let svg = status("<a & \"b\">", None, None);
        assert!(!svg.contains("<a &"), "{svg}");
        assert!(svg.contains("&lt;a &amp; &quot;b&quot;&gt;: unknown"), "{svg}");
    }
}
