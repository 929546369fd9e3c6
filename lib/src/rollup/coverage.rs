//! Coverage: how much of a window anyone watched, in memory that does not grow with the
//! history.
//!
//! Every check with a timestamp vouches for the time until the service's next check. The
//! time between two checks (a *spacing*) is **known** when it is at most twice the service's
//! cadence, and **unknown** when it is longer: nobody looked. The time from the window's start
//! to the first check and from the last check to the window's end are judged the same way.
//! Known time counts as down when the check that began it was down, else as up.
//!
//! The cadence is `interval_seconds` from services.json when configured, else the median of
//! the service's own spacings. Both the median and the split at twice the cadence come from
//! one histogram of spacings: its buckets are cut on a grid of 1/1024 s that is exact for
//! every whole second up to 1,024 s (and for 3,600, 21,600 and 86,400 s) and keeps 512
//! buckets per power of two above, so a bucket is at most 0.2% wide; and twice any grid value
//! is a grid value, so every spacing falls wholly on one side of twice the cadence. Each
//! bucket keeps its count, its time and its down time, exactly, in milliseconds; only the
//! buckets a service uses exist, a few for a steady schedule.

/// Grid units per second.
pub const UNITS_PER_S: u64 = 1024;
/// Buckets per power of two, as bits.
const SUB_BITS: u32 = 9;

/// The smallest grid value (in units of 1/1024 s) at or above `v`: every integer up to
/// 2^10, then 512 steps per power of two.
pub fn grid_ceil(v: u64) -> u64 {
    if v <= 1 << (SUB_BITS + 1) {
        return v;
    }
    let w = v - 1;
    let k = 63 - w.leading_zeros();
    let step = 1u64 << (k - SUB_BITS);
    (w / step + 1).saturating_mul(step)
}

/// A spacing in milliseconds as grid units, rounded up (exact: `ceil(ms * 1024 / 1000)`).
pub fn ms_to_units(ms: u64) -> u64 {
    let n = u128::from(ms) * 128;
    u64::try_from(n.div_ceil(125)).unwrap_or(u64::MAX)
}

/// Grid units as seconds.
pub fn units_to_s(u: u64) -> f64 {
    u as f64 / UNITS_PER_S as f64
}

/// A configured interval in seconds as a cadence on the grid (the next grid value at or
/// above it); `None` for an interval that is not a positive number.
pub fn cadence_of_seconds(s: f64) -> Option<u64> {
    if !(s.is_finite() && s > 0.0) {
        return None;
    }
    let u = (s * UNITS_PER_S as f64).ceil();
    if u >= 1e18 {
        return None;
    }
    Some(grid_ceil((u as u64).max(1)))
}

/// One bucket of spacings: those whose grid value (rounded up) is `key`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    pub key: u64,
    pub count: u64,
    /// Their time, and the part of it that began with a down check, in milliseconds.
    pub ms: u64,
    pub down_ms: u64,
}

/// Spacings by bucket, sorted by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spacings {
    pub buckets: Vec<Bucket>,
}

/// Time split by the cadence: known (up and down) and unknown, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Split {
    pub known_ms: u64,
    pub down_ms: u64,
    pub unknown_ms: u64,
}

impl Split {
    /// Count `ms` of a stretch whose whole length is `len_ms`, begun by a down check or not.
    pub fn add(&mut self, len_ms: u64, ms: u64, down: bool, cadence: u64) {
        if is_gap(len_ms, cadence) {
            self.unknown_ms += ms;
        } else {
            self.known_ms += ms;
            if down {
                self.down_ms += ms;
            }
        }
    }

    pub fn merge(&mut self, o: Split) {
        self.known_ms += o.known_ms;
        self.down_ms += o.down_ms;
        self.unknown_ms += o.unknown_ms;
    }
}

/// Is a stretch of `ms` longer than twice the cadence (grid units)?
pub fn is_gap(ms: u64, cadence: u64) -> bool {
    grid_ceil(ms_to_units(ms)) > cadence.saturating_mul(2)
}

impl Spacings {
    /// Count `ms` of time in the bucket of a spacing `len_ms` long (a day's cell counts the
    /// part of a spacing that falls in its day, in the bucket of the whole spacing).
    pub fn add(&mut self, len_ms: u64, ms: u64, down: bool) {
        if len_ms == 0 {
            return;
        }
        let key = grid_ceil(ms_to_units(len_ms));
        let i = match self.buckets.binary_search_by_key(&key, |b| b.key) {
            Ok(i) => i,
            Err(i) => {
                self.buckets.insert(i, Bucket { key, ..Bucket::default() });
                i
            }
        };
        let b = &mut self.buckets[i];
        b.count += 1;
        b.ms += ms;
        if down {
            b.down_ms += ms;
        }
    }

    pub fn merge(&mut self, o: &Spacings) {
        for b in &o.buckets {
            match self.buckets.binary_search_by_key(&b.key, |x| x.key) {
                Ok(i) => {
                    let x = &mut self.buckets[i];
                    x.count += b.count;
                    x.ms += b.ms;
                    x.down_ms += b.down_ms;
                }
                Err(i) => self.buckets.insert(i, *b),
            }
        }
    }

    /// The median spacing's bucket (the lower median, by count): the cadence when none is
    /// configured. `None` without spacings.
    pub fn median(&self) -> Option<u64> {
        let n: u64 = self.buckets.iter().map(|b| b.count).sum();
        if n == 0 {
            return None;
        }
        let rank = n.div_ceil(2);
        let mut seen = 0;
        for b in &self.buckets {
            seen += b.count;
            if seen >= rank {
                return Some(b.key);
            }
        }
        self.buckets.last().map(|b| b.key)
    }

    /// The spacing at which half of the spacings' time is in shorter or equal ones (its
    /// bucket): the rhythm of a timeline whose many short spacings cover little time.
    pub fn time_median(&self) -> Option<u64> {
        let total: u64 = self.buckets.iter().map(|b| b.ms).sum();
        if total == 0 {
            return None;
        }
        let half = total.div_ceil(2);
        let mut seen = 0;
        for b in &self.buckets {
            seen += b.ms;
            if seen >= half {
                return Some(b.key);
            }
        }
        self.buckets.last().map(|b| b.key)
    }

    /// The time of the spacings, split at twice `cadence`.
    pub fn split(&self, cadence: u64) -> Split {
        let mut s = Split::default();
        let limit = cadence.saturating_mul(2);
        for b in &self.buckets {
            if b.key > limit {
                s.unknown_ms += b.ms;
            } else {
                s.known_ms += b.ms;
                s.down_ms += b.down_ms;
            }
        }
        s
    }
}

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// Cut `[start, end)` at midnights (UTC): `(day, ms)` for each day it touches.
pub fn by_day(start: i64, end: i64, mut f: impl FnMut(i32, u64)) {
    let mut t = start;
    while t < end {
        let day = t.div_euclid(DAY_MS);
        let next = ((day + 1) * DAY_MS).min(end);
        f(day as i32, (next - t) as u64);
        t = next;
    }
}

/// What the coverage of one service keeps: its first and last check (time, and whether
/// down), its spacings, and the longest spacing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    pub first: Option<(i64, bool)>,
    pub last: Option<(i64, bool)>,
    pub spacings: Spacings,
    /// Start and end of the longest spacing (the earliest of equals).
    pub longest: Option<(i64, i64)>,
}

impl Coverage {
    /// A check at `ms`, down or not. Returns the spacing it closed (start, length, down),
    /// for the day cells. A check earlier than the previous one counts as at its time.
    pub fn observe(&mut self, ms: i64, down: bool) -> Option<(i64, u64, bool)> {
        let closed = match self.last {
            None => {
                self.first = Some((ms, down));
                self.last = Some((ms, down));
                return None;
            }
            Some((prev, was_down)) => {
                let end = ms.max(prev);
                self.last = Some((end, down));
                (prev, (end - prev) as u64, was_down)
            }
        };
        self.spacing(closed.0, closed.1, closed.2);
        Some(closed)
    }

    fn spacing(&mut self, start: i64, len: u64, down: bool) {
        if len == 0 {
            return;
        }
        self.spacings.add(len, len, down);
        let longer = match self.longest {
            None => true,
            Some((s, e)) => len > (e - s) as u64,
        };
        if longer {
            self.longest = Some((start, start + len as i64));
        }
    }

    /// Continue with the coverage of the checks that came right after. Returns the spacing
    /// that joins them, for the day cells.
    pub fn merge(&mut self, later: Coverage) -> Option<(i64, u64, bool)> {
        let joint = match (self.last, later.first) {
            (Some((prev, was_down)), Some((next, _))) => {
                let end = next.max(prev);
                self.spacing(prev, (end - prev) as u64, was_down);
                Some((prev, (end - prev) as u64, was_down))
            }
            _ => None,
        };
        if self.first.is_none() {
            self.first = later.first;
        }
        if let Some((t, d)) = later.last {
            let t = self.last.map_or(t, |(p, _)| t.max(p));
            self.last = Some((t, d));
        }
        self.spacings.merge(&later.spacings);
        if let Some((s, e)) = later.longest
            && self.longest.is_none_or(|(a, b)| e - s > b - a)
        {
            self.longest = Some((s, e));
        }
        joint
    }
}

/// How many of the host's longest silences are kept.
pub const HOST_GAPS_KEPT: usize = 100;

/// The host's own timeline: when any check of any service was written. Its silences
/// (spacings between consecutive lines of the whole input) go into a histogram, for its
/// rhythm, and the [`HOST_GAPS_KEPT`] longest are kept exactly, with their place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    pub first: Option<i64>,
    pub last: Option<i64>,
    pub spacings: Spacings,
    /// (length, start, end), shortest first.
    pub longest: Vec<(u64, i64, i64)>,
    /// Silences that fell off the list (so the list may not hold every gap).
    pub dropped: u64,
}

impl Host {
    /// A line at `ms`.
    pub fn observe(&mut self, ms: i64) {
        match self.last {
            None => {
                self.first = Some(ms);
                self.last = Some(ms);
            }
            Some(prev) if ms > prev => {
                self.silence(prev, ms);
                self.last = Some(ms);
            }
            Some(_) => {}
        }
    }

    fn silence(&mut self, start: i64, end: i64) {
        let len = (end - start) as u64;
        self.spacings.add(len, len, false);
        self.keep(len, start, end);
    }

    fn keep(&mut self, len: u64, start: i64, end: i64) {
        if self.longest.len() == HOST_GAPS_KEPT {
            if self.longest[0].0 >= len {
                self.dropped += 1;
                return;
            }
            self.longest.remove(0);
            self.dropped += 1;
        }
        let i = self.longest.partition_point(|x| (x.0, -x.1) <= (len, -start));
        self.longest.insert(i, (len, start, end));
    }

    /// Continue with the lines that came right after.
    pub fn merge(&mut self, later: Host) {
        if let (Some(prev), Some(next)) = (self.last, later.first)
            && next > prev
        {
            self.silence(prev, next);
        }
        if self.first.is_none() {
            self.first = later.first;
        }
        if let Some(l) = later.last {
            self.last = Some(self.last.map_or(l, |p| p.max(l)));
        }
        self.dropped += later.dropped;
        self.spacings.merge(&later.spacings);
        for (len, s, e) in later.longest {
            self.keep(len, s, e);
        }
    }

    /// The silences longer than twice `cadence` (grid units), in time order, and whether
    /// some may be missing (more silences than kept were that long).
    pub fn gaps(&self, cadence: u64) -> (Vec<(i64, i64)>, bool) {
        let mut v: Vec<(i64, i64)> = self.longest.iter().filter(|x| is_gap(x.0, cadence)).map(|x| (x.1, x.2)).collect();
        v.sort_unstable();
        let maybe_more = self.dropped > 0 && v.len() == self.longest.len();
        (v, maybe_more)
    }
}

/// The figures of one service over a span.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    /// The cadence used, in grid units, and whether it was configured.
    pub cadence: u64,
    pub configured: bool,
    pub split: Split,
    /// The longest unknown stretch (start, end), if any.
    pub longest_gap: Option<(i64, i64)>,
}

impl Figures {
    /// Known time over known and unknown, in percent (unrounded); `None` for no time.
    pub fn coverage(&self) -> Option<f64> {
        let all = self.split.known_ms + self.split.unknown_ms;
        (all > 0).then(|| self.split.known_ms as f64 / all as f64 * 100.0)
    }

    /// Up time over known time, in percent (unrounded); `None` without known time.
    pub fn uptime_known(&self) -> Option<f64> {
        let k = self.split.known_ms;
        (k > 0).then(|| (k - self.split.down_ms) as f64 / k as f64 * 100.0)
    }
}

/// The coverage figures of `c` over `span` (window start and end, ms; `None` for the input's
/// own span), with the cadence configured (grid units) or else the median spacing. `None`
/// without a check, or without a cadence (a single check and nothing configured).
pub fn figures(c: &Coverage, span: Option<(i64, i64)>, configured: Option<u64>) -> Option<Figures> {
    let (first, first_down) = c.first?;
    let (last, last_down) = c.last?;
    let cadence = configured.or_else(|| c.spacings.median())?;
    let mut split = c.spacings.split(cadence);
    let mut longest_gap = c.longest.filter(|(s, e)| is_gap((e - s) as u64, cadence));
    let mut edge = |from: i64, to: i64, down: bool| {
        if to <= from {
            return;
        }
        let len = (to - from) as u64;
        split.add(len, len, down, cadence);
        if is_gap(len, cadence) && longest_gap.is_none_or(|(s, e)| len > (e - s) as u64) {
            longest_gap = Some((from, to));
        }
    };
    if let Some((start, end)) = span {
        edge(start, first.min(end), first_down);
        edge(last.max(start), end, last_down);
    }
    Some(Figures { cadence, configured: configured.is_some(), split, longest_gap })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_is_exact_for_common_cadences_and_closed_under_doubling() {
        for s in [1u64, 5, 10, 30, 60, 300, 600, 900, 1000, 1800, 3600, 21_600, 86_400] {
            let u = s * UNITS_PER_S;
            assert_eq!(grid_ceil(u), u, "{s} s is on the grid");
            assert_eq!(grid_ceil(2 * u), 2 * u);
        }
        let mut v = 1u64;
        while v < 1 << 40 {
            let e = grid_ceil(v);
            assert!(e >= v && e - v <= v / 512 + 1, "{v} -> {e}");
            assert_eq!(grid_ceil(e), e);
            assert_eq!(grid_ceil(2 * e), 2 * e, "twice a grid value is one: {e}");
            v = v * 3 / 2 + 1;
        }
        assert_eq!(ms_to_units(1000), 1024);
        assert_eq!(ms_to_units(1), 2, "rounded up");
        assert_eq!(cadence_of_seconds(300.0), Some(300 * 1024));
        assert_eq!(cadence_of_seconds(0.0), None);
        assert_eq!(cadence_of_seconds(f64::NAN), None);
    }

    #[test]
    fn a_gap_is_more_than_twice_the_cadence() {
        let c = 300 * UNITS_PER_S;
        assert!(!is_gap(600_000, c));
        assert!(is_gap(600_001, c));
        assert!(!is_gap(1, c));
    }

    #[test]
    fn a_six_hour_hole_is_unknown_and_the_rest_is_known() {
        let mut c = Coverage::default();
        // Every 5 minutes for a day, but nothing from 06:00 to 12:00; down 10:00..10:10 never
        // seen, down 13:00..13:10 seen.
        let mut t = 0i64;
        while t < DAY_MS {
            let hole = (6 * 3_600_000..12 * 3_600_000).contains(&t);
            if !hole || t == 6 * 3_600_000 {
                let down = (13 * 3_600_000..13 * 3_600_000 + 600_000).contains(&t);
                c.observe(t, down);
            }
            t += 300_000;
        }
        let f = figures(&c, Some((0, DAY_MS)), None).unwrap();
        assert_eq!(f.cadence, 300 * UNITS_PER_S);
        // 06:00 to 12:00 is one spacing of 6 h: unknown. The tail after 23:55 is 5 min: known.
        assert_eq!(f.split.unknown_ms, 6 * 3_600_000);
        assert_eq!(f.split.known_ms, 18 * 3_600_000);
        assert_eq!(f.split.down_ms, 600_000);
        assert_eq!(f.longest_gap, Some((6 * 3_600_000, 12 * 3_600_000)));
        assert_eq!(f.coverage(), Some(75.0));
        let up = f.uptime_known().unwrap();
        assert!((up - (1.0 - 600_000.0 / (18.0 * 3_600_000.0)) * 100.0).abs() < 1e-9);
    }

    #[test]
    fn a_configured_cadence_wins_and_edges_count() {
        let mut c = Coverage::default();
        for k in 0..10 {
            c.observe(3_600_000 + k * 60_000, false);
        }
        // Median 60 s; configured 5 s makes every spacing a gap.
        let f = figures(&c, Some((0, 2 * 3_600_000)), None).unwrap();
        assert_eq!(f.split.unknown_ms, 3_600_000 + (3_600_000 - 9 * 60_000));
        assert_eq!(f.longest_gap, Some((0, 3_600_000)));
        let g = figures(&c, None, cadence_of_seconds(5.0)).unwrap();
        assert_eq!((g.split.known_ms, g.split.unknown_ms), (0, 9 * 60_000));
        assert!(figures(&Coverage::default(), None, None).is_none());
    }

    #[test]
    fn merged_stretches_equal_one_read() {
        let times: Vec<(i64, bool)> =
            (0..500).map(|k| (k * 7_000 + (k % 13) * 911 + (k / 97) * 50_000, k % 17 == 3)).collect();
        let mut whole = Coverage::default();
        for &(t, d) in &times {
            whole.observe(t, d);
        }
        for cut in [1usize, 50, 97, 250, 499] {
            let mut a = Coverage::default();
            let mut b = Coverage::default();
            for &(t, d) in &times[..cut] {
                a.observe(t, d);
            }
            for &(t, d) in &times[cut..] {
                b.observe(t, d);
            }
            a.merge(b);
            assert_eq!(a, whole, "cut at {cut}");
        }
    }

    #[test]
    fn stretches_are_cut_at_midnight() {
        let mut days = Vec::new();
        by_day(DAY_MS - 1000, 2 * DAY_MS + 500, |d, ms| days.push((d, ms)));
        assert_eq!(days, [(0, 1000), (1, DAY_MS as u64), (2, 500)]);
    }
}
