//! Five-field cron expressions (`minute hour day-of-month month day-of-week`), as Vixie cron
//! reads them: lists (`1,15`), ranges (`1-5`), steps (`*/15`, `0-30/10`), `*`, month and day
//! names (`jan`, `mon`), 0 and 7 both Sunday. When both the day of the month and the day of
//! the week are restricted, a day matching either runs. `@hourly`, `@daily`, `@weekly`,
//! `@monthly` and `@yearly` are shorthands.

use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, Time};

use super::Zone;

/// A parsed expression: the allowed values of each field as bit sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    dom: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, Sunday 0.
    dow: u8,
    dom_star: bool,
    dow_star: bool,
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// One field's allowed values between `lo` and `hi` as a bit set.
fn field(text: &str, what: &str, lo: u32, hi: u32, names: &[&str], base: u32) -> Result<u64, String> {
    let value = |s: &str| -> Result<u32, String> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| *n == lower) {
            return Ok(i as u32 + base);
        }
        match s.parse::<u32>() {
            Ok(v) if (lo..=hi).contains(&v) => Ok(v),
            _ => Err(format!("{what} '{s}' is not a number from {lo} to {hi}")),
        }
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => match s.parse::<u32>() {
                Ok(n) if n > 0 => (r, n),
                _ => return Err(format!("{what} '{part}': the step '{s}' is not a number above 0")),
            },
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            // `5/15`: from 5 to the end, every 15.
            (v, if part.contains('/') { hi } else { v })
        };
        if a > b {
            return Err(format!("{what} '{part}': the range runs backwards"));
        }
        let mut v = a;
        while v <= b {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

impl Cron {
    /// Parse an expression.
    pub fn parse(expr: &str) -> Result<Cron, String> {
        let expanded = match expr.trim() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            other => other,
        };
        let f: Vec<&str> = expanded.split_whitespace().collect();
        let [m, h, dom, mon, dow] = f.as_slice() else {
            return Err(format!("'{expr}': a cron expression has 5 fields (minute hour day month weekday)"));
        };
        let wrap = |e: String| format!("'{expr}': {e}");
        let mut dow_bits = field(dow, "weekday", 0, 7, &WEEKDAYS, 0).map_err(wrap)?;
        if dow_bits & (1 << 7) != 0 {
            dow_bits = (dow_bits | 1) & 0x7f;
        }
        Ok(Cron {
            minutes: field(m, "minute", 0, 59, &[], 0).map_err(wrap)?,
            hours: field(h, "hour", 0, 23, &[], 0).map_err(wrap)? as u32,
            dom: field(dom, "day of month", 1, 31, &[], 0).map_err(wrap)? as u32,
            months: field(mon, "month", 1, 12, &MONTHS, 1).map_err(wrap)? as u16,
            dow: dow_bits as u8,
            dom_star: dom.starts_with('*'),
            dow_star: dow.starts_with('*'),
        })
    }

    fn day_matches(&self, d: Date) -> bool {
        if self.months & (1 << u8::from(d.month())) == 0 {
            return false;
        }
        let dom = self.dom & (1 << d.day()) != 0;
        let dow = self.dow & (1 << d.weekday().number_days_from_sunday()) != 0;
        match (self.dom_star, self.dow_star) {
            (false, false) => dom || dow,
            _ => dom && dow,
        }
    }

    /// The first start strictly after `after`, in `zone`, looking at most `horizon_days` ahead.
    pub fn next_after(&self, zone: &Zone, after: OffsetDateTime, horizon_days: i64) -> Option<OffsetDateTime> {
        // From the day before (a resolved time may move across midnight).
        let mut d = zone.local(after).date().previous_day()?;
        for _ in 0..horizon_days {
            if self.day_matches(d) {
                let mut best: Option<OffsetDateTime> = None;
                for h in (0..24u8).filter(|h| self.hours & (1 << h) != 0) {
                    for m in (0..60u8).filter(|m| self.minutes & (1 << m) != 0) {
                        let Ok(t) = Time::from_hms(h, m, 0) else { continue };
                        let s = zone.resolve(PrimitiveDateTime::new(d, t));
                        if s > after && best.is_none_or(|b| s < b) {
                            best = Some(s);
                        }
                    }
                }
                if best.is_some() {
                    return best;
                }
            }
            d = d.checked_add(Duration::DAY)?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock;

    #[test]
    fn fields_lists_ranges_steps_and_names() {
        let c = Cron::parse("*/15 2-4 * jan-mar mon,wed,7").unwrap();
        assert_eq!(c.minutes, 1 | 1 << 15 | 1 << 30 | 1 << 45);
        assert_eq!(c.hours, 0b11100);
        assert_eq!(c.months, 0b1110);
        assert_eq!(c.dow, 0b1011, "sunday as 7 is 0");
        assert!(Cron::parse("* * *").unwrap_err().contains("5 fields"));
        assert!(Cron::parse("60 * * * *").unwrap_err().contains("minute '60'"));
        assert!(Cron::parse("5-1 * * * *").unwrap_err().contains("backwards"));
        assert!(Cron::parse("*/0 * * * *").is_err());
        assert_eq!(Cron::parse("@daily").unwrap(), Cron::parse("0 0 * * *").unwrap());
    }

    #[test]
    fn next_start() {
        let z = Zone::utc();
        let c = Cron::parse("0 0 29 2 *").unwrap();
        let t = c.next_after(&z, clock::parse_ts("2026-03-01T00:00:00Z").unwrap(), 4 * 366).unwrap();
        assert_eq!(clock::fmt_ts(t), "2028-02-29T00:00:00.000Z");
        let c = Cron::parse("30 * * * *").unwrap();
        let t = c.next_after(&z, clock::parse_ts("2026-03-01T10:30:00Z").unwrap(), 3).unwrap();
        assert_eq!(clock::fmt_ts(t), "2026-03-01T11:30:00.000Z", "strictly after");
    }
}
