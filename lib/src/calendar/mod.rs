//! Maintenance calendars: recurring windows in a time zone, and the silences file as the tools
//! other than notify read it.
//!
//! A window is written two ways: weekdays and wall-clock times (`sun 02:00-04:00`,
//! `mon-fri 22:00-06:00`, `sat,sun 00:00-24:00`; an end at or before the start is on the next
//! day), or a cron expression with a duration ([`cron`]). Both are read in a time zone from the
//! system's zone files (`/usr/share/zoneinfo`, Debian's `tzdata`).
//!
//! Daylight saving time: a window is measured in wall-clock time, so it is an hour shorter or
//! longer on the night the clocks change. A wall-clock time that does not exist (02:30 on the
//! night the clocks go forward) moves forward by the gap (03:30); one that occurs twice (02:30
//! on the night they go back) is taken at its first occurrence.
//!
//! notify keeps the windows in `state/silences.json`; recover (`maintenance: {recover: false}`)
//! and rollup (`--exclude-maintenance`) read them through [`maintenance`].

pub mod cron;
pub mod maintenance;

use std::path::PathBuf;

use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset, Weekday};
use tz::TimeZone;

/// The directories zone files are looked for in (`TZDIR` first, when set).
const ZONE_DIRS: [&str; 3] = ["/usr/share/zoneinfo", "/share/zoneinfo", "/etc/zoneinfo"];

/// A time zone by its IANA name, read from the system's zone files.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    name: String,
    tz: TimeZone,
}

impl Zone {
    /// UTC.
    pub fn utc() -> Zone {
        Zone { name: "UTC".into(), tz: TimeZone::utc() }
    }

    /// Load a zone by name (`Europe/Berlin`, `UTC`).
    pub fn load(name: &str) -> Result<Zone, String> {
        let ok = !name.is_empty()
            && !name.starts_with('/')
            && !name.split('/').any(|p| p.is_empty() || p == "." || p == "..")
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+'));
        if !ok {
            return Err(format!("'{name}' is not a time zone name (like Europe/Berlin or UTC)"));
        }
        let mut dirs: Vec<PathBuf> = std::env::var_os("TZDIR").map(PathBuf::from).into_iter().collect();
        dirs.extend(ZONE_DIRS.iter().map(PathBuf::from));
        for d in &dirs {
            let path = d.join(name);
            if let Ok(bytes) = std::fs::read(&path) {
                let tz = TimeZone::from_tz_data(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
                return Ok(Zone { name: name.to_string(), tz });
            }
        }
        if matches!(name, "UTC" | "Etc/UTC" | "GMT" | "Z") {
            return Ok(Zone::utc());
        }
        Err(format!(
            "unknown time zone '{name}' (no such file under {}; is the tzdata package installed?)",
            ZONE_DIRS[0]
        ))
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The offset from UTC in seconds at a moment.
    fn offset_at(&self, unix: i64) -> i64 {
        self.tz.find_local_time_type(unix).map(|l| i64::from(l.ut_offset())).unwrap_or(0)
    }

    /// A moment as wall-clock time here.
    pub fn local(&self, t: OffsetDateTime) -> OffsetDateTime {
        let off = UtcOffset::from_whole_seconds(self.offset_at(t.unix_timestamp()) as i32).unwrap_or(UtcOffset::UTC);
        t.to_offset(off)
    }

    /// A wall-clock time here as a moment: a time in a gap moves forward by the gap, a time
    /// that occurs twice is its first occurrence.
    pub fn resolve(&self, local: PrimitiveDateTime) -> OffsetDateTime {
        let wall = local.assume_utc().unix_timestamp();
        let (before, after) = (self.offset_at(wall - 86_400), self.offset_at(wall + 86_400));
        let mut hits: Vec<i64> =
            [before, after].iter().map(|o| wall - o).filter(|&u| u + self.offset_at(u) == wall).collect();
        hits.sort_unstable();
        // No hit: a gap. The offset before it puts the time as far past the change as it was
        // into the gap.
        let unix = hits.first().copied().unwrap_or(wall - before);
        let t = OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        self.local(t)
    }
}

/// A weekly window: a set of weekdays, a start and an end in wall-clock time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Every {
    /// Monday first.
    days: [bool; 7],
    from: Time,
    /// `None`: 24:00, the end of the day.
    to: Option<Time>,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day_index(s: &str) -> Option<usize> {
    let s = s.to_ascii_lowercase();
    let long = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    DAYS.iter().position(|d| *d == s).or_else(|| long.iter().position(|d| *d == s))
}

fn parse_hhmm(s: &str) -> Option<Option<Time>> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u8, u8) = (h.parse().ok()?, m.parse().ok()?);
    if h == 24 && m == 0 {
        return Some(None);
    }
    if h > 23 || m > 59 || s.len() > 5 {
        return None;
    }
    Time::from_hms(h, m, 0).ok().map(Some)
}

impl Every {
    /// Parse `DAYS HH:MM-HH:MM` (`sun 02:00-04:00`, `mon-fri 22:00-06:00`, `sat,sun
    /// 00:00-24:00`, `daily 03:00-03:30`; no days: every day).
    pub fn parse(s: &str) -> Result<Every, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let (days_word, times) = match words.as_slice() {
            [t] => (None, *t),
            [d, t] => (Some(*d), *t),
            _ => return Err(format!("'{s}': expected DAYS HH:MM-HH:MM, like 'sun 02:00-04:00'")),
        };
        let mut days = [false; 7];
        match days_word.map(str::to_ascii_lowercase).as_deref() {
            None | Some("daily" | "*" | "every" | "day") => days = [true; 7],
            Some(list) => {
                for part in list.split(',') {
                    let bad = || format!("'{s}': '{part}' is not a weekday or a range of them (mon, tue-fri, sat,sun)");
                    match part.split_once('-') {
                        Some((a, b)) => {
                            let (a, b) = (day_index(a).ok_or_else(bad)?, day_index(b).ok_or_else(bad)?);
                            let mut i = a;
                            loop {
                                days[i] = true;
                                if i == b {
                                    break;
                                }
                                i = (i + 1) % 7;
                            }
                        }
                        None => days[day_index(part).ok_or_else(bad)?] = true,
                    }
                }
            }
        }
        let (from, to) = times
            .split_once('-')
            .ok_or_else(|| format!("'{s}': expected the times as HH:MM-HH:MM, like 02:00-04:00"))?;
        let from = match parse_hhmm(from) {
            Some(Some(t)) => t,
            _ => return Err(format!("'{s}': '{from}' is not a time of day (00:00 to 23:59)")),
        };
        let to = parse_hhmm(to).ok_or_else(|| format!("'{s}': '{to}' is not a time of day (00:00 to 24:00)"))?;
        if to == Some(from) {
            return Err(format!("'{s}': the window is empty (it ends when it starts)"));
        }
        Ok(Every { days, from, to })
    }

    /// The windows starting on the local day `d`, when it is one of the days.
    fn on(&self, zone: &Zone, d: Date) -> Option<(OffsetDateTime, OffsetDateTime)> {
        if !self.days[d.weekday().number_days_from_monday() as usize] {
            return None;
        }
        let start = zone.resolve(PrimitiveDateTime::new(d, self.from));
        let end = match self.to {
            Some(t) if t > self.from => PrimitiveDateTime::new(d, t),
            Some(t) => PrimitiveDateTime::new(d.next_day()?, t),
            None => PrimitiveDateTime::new(d.next_day()?, Time::MIDNIGHT),
        };
        Some((start, zone.resolve(end)))
    }
}

/// A recurring window in a zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    what: What,
    zone: Zone,
}

#[derive(Debug, Clone, PartialEq)]
enum What {
    Every(Every),
    Cron(cron::Cron, Duration),
}

/// How far [`Schedule::window_at_or_after`] looks ahead, in days (a cron on the 29th of
/// February needs four years).
const HORIZON_DAYS: i64 = 4 * 366 + 7;

impl Schedule {
    /// A weekly window in a zone.
    pub fn every(spec: &str, zone: Zone) -> Result<Schedule, String> {
        Ok(Schedule { what: What::Every(Every::parse(spec)?), zone })
    }

    /// A cron expression's starts, each the beginning of a window of `duration`.
    pub fn cron(expr: &str, duration: std::time::Duration, zone: Zone) -> Result<Schedule, String> {
        let d = Duration::try_from(duration).map_err(|e| e.to_string())?;
        if d <= Duration::ZERO {
            return Err("the duration is zero".into());
        }
        Ok(Schedule { what: What::Cron(cron::Cron::parse(expr)?, d), zone })
    }

    /// The zone.
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// The first window that has not ended at `now` (it may be in force): start and end.
    pub fn window_at_or_after(&self, now: OffsetDateTime) -> Option<(OffsetDateTime, OffsetDateTime)> {
        match &self.what {
            What::Every(e) => {
                let today = self.zone.local(now).date();
                let mut d = today.previous_day()?;
                for _ in 0..9 {
                    if let Some((s, end)) = e.on(&self.zone, d)
                        && end > now
                    {
                        return Some((s, end));
                    }
                    d = d.next_day()?;
                }
                None
            }
            What::Cron(c, len) => {
                // A window in force now started within its length before now.
                let mut after = now - *len;
                for _ in 0..4 {
                    let start = c.next_after(&self.zone, after, HORIZON_DAYS)?;
                    let end = self.end_of(start, *len);
                    if end > now {
                        return Some((start, end));
                    }
                    after = start;
                }
                None
            }
        }
    }

    /// A window's end: its length later in wall-clock time.
    fn end_of(&self, start: OffsetDateTime, len: Duration) -> OffsetDateTime {
        let local = self.zone.local(start);
        let wall = PrimitiveDateTime::new(local.date(), local.time());
        match wall.checked_add(len) {
            Some(w) => self.zone.resolve(w).max(start + Duration::SECOND),
            None => start + len,
        }
    }

    /// The window in force at `now`, if one is.
    pub fn in_force(&self, now: OffsetDateTime) -> Option<(OffsetDateTime, OffsetDateTime)> {
        self.window_at_or_after(now).filter(|(s, _)| *s <= now)
    }

    /// Every window that overlaps `[from, to)`, in order (at most `max`).
    pub fn windows_between(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        max: usize,
    ) -> Vec<(OffsetDateTime, OffsetDateTime)> {
        let mut out: Vec<(OffsetDateTime, OffsetDateTime)> = Vec::new();
        let mut at = from;
        while out.len() < max {
            let Some((s, e)) = self.window_at_or_after(at) else { break };
            if s >= to {
                break;
            }
            if out.last() != Some(&(s, e)) {
                out.push((s, e));
            }
            // The next one: from the end of this one (windows of a weekday list may touch).
            at = if e > at { e } else { at + Duration::MINUTE };
        }
        out
    }
}

/// A weekday's short name.
pub fn weekday_name(w: Weekday) -> &'static str {
    DAYS[w.number_days_from_monday() as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock;

    fn berlin() -> Zone {
        Zone::load("Europe/Berlin").unwrap()
    }

    fn rfc(t: OffsetDateTime) -> String {
        t.format(&time::format_description::well_known::Rfc3339).unwrap()
    }

    fn next(s: &Schedule, after: &str) -> (String, String) {
        let (a, b) = s.window_at_or_after(clock::parse_ts(after).unwrap()).unwrap();
        (rfc(a), rfc(b))
    }

    #[test]
    fn weekly_windows_across_the_dst_changes() {
        let s = Schedule::every("sun 02:00-04:00", berlin()).unwrap();
        // Spring forward: 02:00 does not exist and moves to 03:00 CEST; a 60-minute window.
        assert_eq!(
            next(&s, "2026-03-25T12:00:00Z"),
            ("2026-03-29T03:00:00+02:00".into(), "2026-03-29T04:00:00+02:00".into())
        );
        // Fall back: 02:00 is taken at its first occurrence (CEST); a 180-minute window.
        assert_eq!(
            next(&s, "2026-10-21T12:00:00Z"),
            ("2026-10-25T02:00:00+02:00".into(), "2026-10-25T04:00:00+01:00".into())
        );
        assert_eq!(
            next(&s, "2026-12-06T01:30:00Z"),
            ("2026-12-06T02:00:00+01:00".into(), "2026-12-06T04:00:00+01:00".into())
        );
        // In force: the window running now is the one returned.
        let now = clock::parse_ts("2026-12-06T02:00:00Z").unwrap();
        assert!(s.in_force(now).is_some());
        assert!(s.in_force(clock::parse_ts("2026-12-06T03:00:00Z").unwrap()).is_none());
    }

    #[test]
    fn weekday_lists_ranges_and_midnight() {
        let s = Schedule::every("fri-mon 22:00-06:00", Zone::utc()).unwrap();
        // 2026-12-03 is a Thursday: the next window starts Friday 22:00 and ends Saturday 06:00.
        assert_eq!(next(&s, "2026-12-03T12:00:00Z"), ("2026-12-04T22:00:00Z".into(), "2026-12-05T06:00:00Z".into()));
        // Tuesday 03:00 is in Monday's window.
        assert!(s.in_force(clock::parse_ts("2026-12-08T03:00:00Z").unwrap()).is_some());
        assert!(s.in_force(clock::parse_ts("2026-12-09T03:00:00Z").unwrap()).is_none());
        let all = Schedule::every("sat,sun 00:00-24:00", Zone::utc()).unwrap();
        let w = all.windows_between(
            clock::parse_ts("2026-12-01T00:00:00Z").unwrap(),
            clock::parse_ts("2026-12-08T00:00:00Z").unwrap(),
            10,
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(Every::parse("sun 02:00").is_err());
        assert!(Every::parse("funday 02:00-03:00").is_err());
        assert!(Every::parse("sun 25:00-26:00").is_err());
        assert!(Every::parse("sun 02:00-02:00").is_err());
        assert!(Every::parse("02:00-03:00").is_ok());
    }

    #[test]
    fn cron_windows_and_their_dst_policy() {
        let h2 = std::time::Duration::from_secs(7200);
        let s = Schedule::cron("30 2 * * 0", h2, berlin()).unwrap();
        assert_eq!(next(&s, "2026-03-25T12:00:00Z").0, "2026-03-29T03:30:00+02:00");
        assert_eq!(next(&s, "2026-10-21T12:00:00Z").0, "2026-10-25T02:30:00+02:00");
        let s = Schedule::cron("0 9 1-7 * 1", h2, berlin()).unwrap();
        assert_eq!(next(&s, "2026-12-06T00:00:00Z").0, "2026-12-06T09:00:00+01:00", "dom or dow");
        // A window in force is found from inside it.
        let s = Schedule::cron("0 3 * * *", h2, Zone::utc()).unwrap();
        assert_eq!(next(&s, "2026-12-06T04:00:00Z").0, "2026-12-06T03:00:00Z");
    }

    #[test]
    fn zones_are_named_and_checked() {
        assert!(Zone::load("Europe/Berln").unwrap_err().contains("unknown time zone"));
        assert!(Zone::load("../etc/passwd").is_err());
        assert!(Zone::load("/etc/localtime").is_err());
        assert_eq!(Zone::load("UTC").unwrap().name(), "UTC");
    }
}
