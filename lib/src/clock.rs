//! Time: the clock every tool takes (`--now` fixes it for tests and replays), timestamps in
//! RFC 3339 UTC with milliseconds, and lenient parsing of the timestamps other tools wrote
//! (the Agent Ops Kit's `2025-01-15T10:30:00.123456Z`, offsets, or naive ISO times taken as UTC).

use std::time::{Duration, SystemTime};

use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::error::{Error, Result};

/// The latest time pitcrew can write (the end of year 9999): where arithmetic that would run
/// past the calendar stops.
pub const LATEST: OffsetDateTime = time::macros::datetime!(9999-12-31 23:59:59.999 UTC);

/// The longest duration [`parse_duration`] takes: a hundred years.
pub const MAX_DURATION_SECS: u64 = 100 * 366 * 86_400;

/// `t + d`, or [`LATEST`] when that is past the end of the calendar.
pub fn add_or_latest(t: OffsetDateTime, d: std::time::Duration) -> OffsetDateTime {
    time::Duration::try_from(d).ok().and_then(|d| t.checked_add(d)).unwrap_or(LATEST)
}

/// The source of "now". Fixed by `--now`, otherwise the system clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    fixed: Option<OffsetDateTime>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock { fixed: None }
    }

    /// A clock stopped at `t`.
    pub fn fixed(t: OffsetDateTime) -> Clock {
        Clock { fixed: Some(t.to_offset(UtcOffset::UTC)) }
    }

    /// From a `--now` argument: fixed when given, the system clock otherwise.
    pub fn from_arg(now: Option<&str>) -> Result<Clock> {
        match now {
            None => Ok(Clock::system()),
            Some(s) => parse_ts(s).map(Clock::fixed).ok_or_else(|| {
                Error::usage(format!("--now: '{s}' is not an RFC 3339 time (e.g. 2026-11-23T10:30:00Z)"))
            }),
        }
    }

    pub fn is_fixed(&self) -> bool {
        self.fixed.is_some()
    }

    /// The current time, in UTC.
    pub fn now(&self) -> OffsetDateTime {
        self.fixed.unwrap_or_else(|| OffsetDateTime::from(SystemTime::now()))
    }

    /// The current time as a timestamp string.
    pub fn stamp(&self) -> String {
        fmt_ts(self.now())
    }

    /// The current time in seconds since the epoch, as a float.
    pub fn unix(&self) -> f64 {
        unix_f64(self.now())
    }
}

/// How every pitcrew timestamp is written.
const TS_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// `2026-11-23T10:30:00.123Z`.
pub fn fmt_ts(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    t.format(TS_FORMAT).unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// `f` of the timestamp [`fmt_ts`] writes, formatted on the stack: the fast path for
/// writers of many records (no allocation for any year of four digits).
pub fn with_ts<R>(t: OffsetDateTime, f: impl FnOnce(&str) -> R) -> R {
    let t = t.to_offset(UtcOffset::UTC);
    let mut buf = [0u8; 32];
    let mut w: &mut [u8] = &mut buf;
    let written = t.format_into(&mut w, TS_FORMAT).ok();
    match written.and_then(|n| std::str::from_utf8(&buf[..n]).ok()) {
        Some(s) => f(s),
        None => f(&fmt_ts(t)),
    }
}

/// `2026-11-23`.
pub fn fmt_date(d: Date) -> String {
    let fmt = format_description!("[year]-[month]-[day]");
    d.format(&fmt).unwrap_or_default()
}

/// `2026-11`.
pub fn fmt_month(d: Date) -> String {
    format!("{:04}-{:02}", d.year(), u8::from(d.month()))
}

/// Seconds since the epoch as a float (milliseconds kept).
pub fn unix_f64(t: OffsetDateTime) -> f64 {
    t.unix_timestamp() as f64 + f64::from(t.millisecond()) / 1000.0
}

/// From seconds since the epoch (as stored in state files).
pub fn from_unix_f64(secs: f64) -> Option<OffsetDateTime> {
    if !secs.is_finite() {
        return None;
    }
    let nanos = (secs * 1e9) as i128;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

/// Parse a timestamp leniently: RFC 3339 (any offset, any fraction), the Agent Ops Kit's
/// `...isoformat() + "Z"` forms (`+00:00Z`), a naive `YYYY-MM-DDTHH:MM:SS[.fff]` taken as
/// UTC, a space instead of `T`, or a bare date (midnight UTC).
pub fn parse_ts(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.to_offset(UtcOffset::UTC));
    }
    let mut norm = s.replace(' ', "T");
    if norm.ends_with("+00:00Z") {
        norm.truncate(norm.len() - 1);
    }
    if let Ok(t) = OffsetDateTime::parse(&norm, &Rfc3339) {
        return Some(t.to_offset(UtcOffset::UTC));
    }
    let naive = norm.trim_end_matches('Z');
    let with_frac = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]");
    let no_frac = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let minutes = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    for fmt in [with_frac, no_frac, minutes] {
        if let Ok(t) = PrimitiveDateTime::parse(naive, fmt) {
            return Some(t.assume_utc());
        }
    }
    parse_date(naive).map(|d| d.midnight().assume_utc())
}

/// Milliseconds since the epoch of a timestamp, as [`parse_ts`] reads it: a fast path (for
/// every line of the metrics) for `YYYY-MM-DDTHH:MM:SS[.f]` with `Z`, `+HH:MM`, the Agent
/// Ops Kit's `+00:00Z` or no zone (UTC), and [`parse_ts`] for everything else.
pub fn parse_millis(s: &str) -> Option<i64> {
    fast_millis(s.as_bytes()).or_else(|| parse_ts(s).map(|t| t.unix_timestamp() * 1000 + i64::from(t.millisecond())))
}

fn fast_millis(b: &[u8]) -> Option<i64> {
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |n, c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))
    };
    let month = time::Month::try_from(u8::try_from(num(5..7)?).ok()?).ok()?;
    let date =
        Date::from_calendar_date(i32::try_from(num(0..4)?).ok()?, month, u8::try_from(num(8..10)?).ok()?).ok()?;
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut ms = 0i64;
    if let Some(r) = rest.strip_prefix(b".") {
        let n = r.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        for k in 0..3 {
            ms = ms * 10 + r.get(k).filter(|_| k < n).map_or(0, |c| i64::from(c - b'0'));
        }
        rest = &r[n..];
    }
    let offset_min = match rest {
        b"" | b"Z" | b"z" | b"+00:00Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digit = |c: &u8| c.is_ascii_digit().then(|| i64::from(c - b'0'));
            let v = (digit(h1)? * 10 + digit(h2)?) * 60 + digit(m1)? * 10 + digit(m2)?;
            if *sign == b'+' { v } else { -v }
        }
        _ => return None,
    };
    let days = i64::from(date.to_julian_day() - UNIX_EPOCH_JULIAN_DAY);
    Some(((days * 86_400 + h * 3600 + mi * 60 + se) - offset_min * 60) * 1000 + ms)
}

/// The Julian day of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

/// The epoch day (days since 1970-01-01) of a date.
pub fn epoch_day(d: Date) -> i32 {
    d.to_julian_day() - UNIX_EPOCH_JULIAN_DAY
}

/// The date of an epoch day.
pub fn epoch_date(n: i32) -> Option<Date> {
    Date::from_julian_day(n + UNIX_EPOCH_JULIAN_DAY).ok()
}

/// Parse `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<Date> {
    let fmt = format_description!("[year]-[month]-[day]");
    Date::parse(s.trim(), &fmt).ok()
}

/// Parse `YYYY-MM` into the first day of that month.
pub fn parse_month(s: &str) -> Option<Date> {
    let (y, m) = s.trim().split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    let y: i32 = y.parse().ok()?;
    let m: u8 = m.parse().ok()?;
    Date::from_calendar_date(y, time::Month::try_from(m).ok()?, 1).ok()
}

/// Parse a duration: `90`, `90s`, `15m`, `2h`, `1d`, `1w`, or combinations like `1h30m`; at
/// most a hundred years (longer ones are refused: deadlines computed from them would run past
/// the calendar).
pub fn parse_duration(s: &str) -> Option<Duration> {
    parse_duration_unbounded(s).filter(|d| d.as_secs() <= MAX_DURATION_SECS)
}

fn parse_duration_unbounded(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<u64>() {
        return Some(Duration::from_secs(n));
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    if !num.is_empty() {
        return None;
    }
    Some(Duration::from_secs(total))
}

/// A duration for people: `2h 5m`, `45s`, `3d 4h`.
pub fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    let parts: Vec<String> = [(d, "d"), (h, "h"), (m, "m"), (s, "s")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .take(2)
        .map(|(n, u)| format!("{n}{u}"))
        .collect();
    if parts.is_empty() { "0s".to_string() } else { parts.join(" ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_formatter_writes_what_fmt_ts_writes() {
        for s in ["2026-11-23T10:30:00.123Z", "0999-01-02T03:04:05.006Z", "9999-12-31T23:59:59.999Z"] {
            let t = parse_ts(s).unwrap();
            assert_eq!(with_ts(t, |s| s.to_string()), s);
            assert_eq!(fmt_ts(t), s);
        }
        let east = parse_ts("2026-11-23T12:30:00.5+02:00").unwrap().to_offset(UtcOffset::from_hms(2, 0, 0).unwrap());
        assert_eq!(with_ts(east, |s| s.to_string()), "2026-11-23T10:30:00.500Z");
    }

    #[test]
    fn formats_with_milliseconds() {
        let t = parse_ts("2026-11-23T10:30:00.1234Z").unwrap();
        assert_eq!(fmt_ts(t), "2026-11-23T10:30:00.123Z");
    }

    #[test]
    fn parses_what_other_tools_wrote() {
        let want = parse_ts("2025-01-15T10:30:00Z").unwrap();
        for s in [
            "2025-01-15T10:30:00",
            "2025-01-15T10:30:00.000000Z",
            "2025-01-15T11:30:00+01:00",
            "2025-01-15 10:30:00",
            "2025-01-15T10:30:00+00:00Z",
        ] {
            assert_eq!(parse_ts(s), Some(want), "{s}");
        }
        assert_eq!(parse_ts("2025-01-15").unwrap().hour(), 0);
        assert!(parse_ts("yesterday").is_none());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("45"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration("2x"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(human_duration(7500), "2h 5m");
        assert_eq!(parse_duration("36600d"), Some(Duration::from_secs(MAX_DURATION_SECS)));
        assert_eq!(parse_duration("36601d"), None);
        assert_eq!(parse_duration("18446744073709551615"), None);
    }

    #[test]
    fn arithmetic_stops_at_the_end_of_the_calendar() {
        let t = parse_ts("9999-12-31T00:00:00Z").unwrap();
        assert_eq!(add_or_latest(t, Duration::from_secs(86_400 * 2)), LATEST);
        assert_eq!(add_or_latest(t, Duration::from_secs(u64::MAX)), LATEST);
        assert_eq!(fmt_ts(add_or_latest(t, Duration::from_secs(60))), "9999-12-31T00:01:00.000Z");
    }

    #[test]
    fn months() {
        assert_eq!(fmt_month(parse_month("2026-02").unwrap()), "2026-02");
        assert!(parse_month("2026-13").is_none());
    }
}
