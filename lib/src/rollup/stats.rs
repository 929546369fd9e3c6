//! What rollup keeps per service, in memory that does not grow with the number of lines:
//! the Agent Ops Kit's counters, a log-bucketed latency histogram, the most recent incidents, and
//! (for the status page) one small cell per day.
//!
//! The arithmetic of the Agent Ops Kit's `calculate_uptime` is kept to the bit:
//! `up` and `down` are counted by status, `total = up + down`, `uptime = up / total * 100`
//! (0 without checks), the latency average is taken over *every* line of the name whatever
//! its status, and both are rounded with Python's `round` (the decimal nearest to the exact
//! binary value, ties to even). pitcrew's `degraded` counts as available and is also counted
//! on its own; other statuses (the kit's `recovered`, its disk line's `"45"`) count only in
//! the latency average, as the kit counts them.

use std::collections::VecDeque;

use super::coverage::{self, Coverage, Spacings};

/// How many of a service's most recent incidents are kept (with their count and the longest).
pub const RECENT_INCIDENTS: usize = 20;

/// A check's status as rollup sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Up,
    Degraded,
    Down,
    /// The kit's `recovered` line: the service is back, though it is not an `up` check.
    Recovered,
    /// Anything else (missing, a number, the disk line's free gigabytes).
    Other,
}

impl Seen {
    pub fn as_str(self) -> &'static str {
        match self {
            Seen::Up => "up",
            Seen::Degraded => "degraded",
            Seen::Down => "down",
            Seen::Recovered => "recovered",
            Seen::Other => "other",
        }
    }
}

/// A latency as written: the Agent Ops Kit's sum is exact over integers (Python ints), so integers
/// and fractions are summed apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    Int(i64),
    Float(f64),
}

impl Latency {
    pub fn as_f64(self) -> f64 {
        match self {
            Latency::Int(i) => i as f64,
            Latency::Float(f) => f,
        }
    }
}

/// A running latency sum: exact for integers, floating point once a fraction appears.
#[derive(Debug, Clone, Copy, Default)]
pub struct LatencySum {
    int: i128,
    float: f64,
    has_float: bool,
    pub count: u64,
}

impl LatencySum {
    pub fn add(&mut self, l: Latency) {
        self.count += 1;
        match l {
            Latency::Int(i) => self.int += i128::from(i),
            Latency::Float(f) => {
                self.float += f;
                self.has_float = true;
            }
        }
    }

    pub fn merge(&mut self, o: &LatencySum) {
        self.int += o.int;
        self.float += o.float;
        self.has_float |= o.has_float;
        self.count += o.count;
    }

    /// The sum of every latency.
    pub fn total(&self) -> f64 {
        if self.has_float { self.int as f64 + self.float } else { self.int as f64 }
    }

    /// The mean, as Python's `total / count` computes it (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.total() / self.count as f64 }
    }
}

/// Python's `round(x, ndigits)`: the decimal with `ndigits` places nearest to the exact
/// binary value of `x` (ties to even), read back as the nearest double. Rust's fixed
/// precision formatting is exact in the same way.
pub fn py_round(x: f64, ndigits: usize) -> f64 {
    if !x.is_finite() {
        return x;
    }
    format!("{x:.ndigits$}").parse().unwrap_or(x)
}

/// Python's `repr` of a float: the shortest text that reads back to it, `.0` on whole
/// numbers, and exponent form below 1e-4 or from 1e16.
pub fn py_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = x.abs();
    if a == 0.0 || (1e-4..1e16).contains(&a) {
        let s = format!("{x}");
        return if s.contains('.') { s } else { format!("{s}.0") };
    }
    let s = format!("{x:e}");
    match s.split_once('e') {
        Some((mant, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mant}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// Latencies in constant memory: each power of two is cut into 64 equal buckets (read
/// straight off the bits of the double, no logarithm), so the value reported for a
/// percentile is within 0.8% of the true one. Small buckets keep the histograms of a hundred
/// services in a core's cache, which is what makes them cheap. The exact zero of port and process checks has
/// a bucket of its own. Only the range of buckets a service uses is allocated.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Set once a value with a fraction is seen; until then a narrow bucket's answer is
    /// the one whole number in it, exact.
    fractions: bool,
    zeros: u64,
    lo: usize,
    counts: Vec<u32>,
    n: u64,
    min: f64,
    max: f64,
}

/// Buckets per power of two, as bits of the mantissa.
const SUB_BITS: u32 = 6;
/// Latencies below 2^-10 ms share the first bucket; from 2^40 ms (35 years) the last.
const MIN_EXP: i32 = -10;
const MAX_EXP: i32 = 40;
const BUCKETS: usize = ((MAX_EXP - MIN_EXP) as usize) << SUB_BITS;

fn bucket_of(v: f64) -> usize {
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32 - 1023;
    if exp < MIN_EXP {
        return 0;
    }
    if exp >= MAX_EXP {
        return BUCKETS - 1;
    }
    let sub = ((bits >> (52 - SUB_BITS)) & ((1 << SUB_BITS) - 1)) as usize;
    (((exp - MIN_EXP) as usize) << SUB_BITS) | sub
}

/// The value a bucket stands for: its middle, within 1/128 of anything in it; or, when
/// every value is a whole number and the bucket is at most 1 wide, the one whole number in it
/// (latencies under 128 ms come out exact).
fn bucket_value(i: usize, whole: bool) -> f64 {
    let exp = (i >> SUB_BITS) as i32 + MIN_EXP;
    let step = 2f64.powi(exp) / f64::from(1u32 << SUB_BITS);
    let lo = 2f64.powi(exp) + step * (i & ((1 << SUB_BITS) - 1)) as f64;
    if whole && step <= 1.0 { lo.ceil() } else { lo + step / 2.0 }
}

impl Histogram {
    /// Count a latency; negative or NaN ones (which no checker writes) count as 0.
    pub fn add(&mut self, v: f64) {
        let v = if v > 0.0 { v } else { 0.0 };
        self.fractions |= v.fract() != 0.0;
        if self.n == 0 {
            self.min = v;
            self.max = v;
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.n += 1;
        if v == 0.0 {
            self.zeros += 1;
            return;
        }
        self.add_to_bucket(bucket_of(v), 1);
    }

    /// Add `c` to bucket `b`, growing the kept range of buckets to take it in.
    fn add_to_bucket(&mut self, b: usize, c: u32) {
        if self.counts.is_empty() {
            self.lo = b;
            self.counts.push(0);
        } else if b < self.lo {
            let grow = self.lo - b;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.lo = b;
        } else if b >= self.lo + self.counts.len() {
            self.counts.resize(b - self.lo + 1, 0);
        }
        let slot = &mut self.counts[b - self.lo];
        *slot = slot.saturating_add(c);
    }

    pub fn merge(&mut self, o: &Histogram) {
        if o.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = o.clone();
            return;
        }
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.fractions |= o.fractions;
        self.n += o.n;
        self.zeros += o.zeros;
        for (k, &c) in o.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            self.add_to_bucket(o.lo + k, c);
        }
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    /// The nearest-rank quantile `q` (0 < q <= 1); `None` without values.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        if rank <= self.zeros {
            return Some(0.0);
        }
        let mut seen = self.zeros;
        for (k, &c) in self.counts.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                return Some(bucket_value(self.lo + k, !self.fractions).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }
}

/// One run of consecutive `down` checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// Milliseconds since the epoch of the first down check (None when it had no timestamp).
    pub start: Option<i64>,
    /// When the service was next seen up (or degraded, or recovered); None while ongoing.
    pub end: Option<i64>,
    /// The last down check of the run.
    pub last_down: Option<i64>,
    /// Down checks in the run.
    pub checks: u64,
}

impl Incident {
    pub fn ongoing(&self) -> bool {
        self.end.is_none()
    }

    /// Seconds from the first down check to recovery, or to the last down check while the
    /// incident is ongoing.
    pub fn duration_ms(&self) -> Option<i64> {
        let start = self.start?;
        let end = self.end.or(self.last_down)?;
        Some((end - start).max(0))
    }
}

/// What a stretch of lines began with, as far as incidents go: what a stretch read before it
/// needs to know to be continued by it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Lead {
    /// No up, degraded, recovered or down line yet.
    #[default]
    Nothing,
    /// A line saying the service is back (up, degraded, recovered), at this time.
    Back(Option<i64>),
    /// A down line: the stretch's first incident may continue an earlier one.
    Down,
}

/// Incidents of one service: the count, the most recent few, and the longest.
#[derive(Debug, Clone, Default)]
pub struct Incidents {
    pub count: u64,
    pub open: Option<Incident>,
    pub recent: VecDeque<Incident>,
    pub longest: Option<Incident>,
    /// How the lines began, and the first incident once it closed (for [`Incidents::merge`]).
    pub lead: Lead,
    pub first_closed: Option<Incident>,
    /// Every closed incident, in order, when asked for (`rollup incidents`, which reads its
    /// lines in one stream and never merges).
    pub all: Option<Vec<Incident>>,
}

/// Is `a` strictly longer than `b` (so that the earlier of two equal ones stays longest)?
fn longer(a: &Incident, b: Option<&Incident>) -> bool {
    match b {
        None => true,
        Some(b) => a.duration_ms().unwrap_or(0) > b.duration_ms().unwrap_or(0),
    }
}

impl Incidents {
    /// Continue these incidents with those of the lines that came right after: the same
    /// result as reading all the lines in one go. A run of downs open at the end of `self`
    /// is closed by the first line of `later` that says the service is back, or joined with
    /// `later`'s first incident when `later` begins with a down.
    pub fn merge(&mut self, mut later: Incidents) {
        if self.lead == Lead::Nothing {
            self.lead = later.lead;
        }
        let Some(a) = self.open.take() else {
            self.append(later);
            return;
        };
        match later.lead {
            Lead::Nothing => {
                self.open = Some(a);
                self.append(later);
            }
            Lead::Back(ts) => {
                let mut a = a;
                a.end = ts.or(a.last_down);
                self.keep(a);
                self.append(later);
            }
            Lead::Down => {
                let first = match (&later.first_closed, &later.open) {
                    (Some(f), _) => f.clone(),
                    (None, Some(o)) => o.clone(),
                    (None, None) => {
                        self.open = Some(a);
                        self.append(later);
                        return;
                    }
                };
                let joined = Incident {
                    start: a.start.or(first.start),
                    end: first.end,
                    last_down: first.last_down.or(a.last_down),
                    checks: a.checks + first.checks,
                };
                if later.first_closed.is_some() {
                    let closed = later.count - u64::from(later.open.is_some());
                    if closed as usize <= RECENT_INCIDENTS
                        && let Some(slot) = later.recent.front_mut()
                    {
                        *slot = joined.clone();
                    }
                    let keep_later = later.longest.as_ref().is_some_and(|l| longer(l, Some(&joined)));
                    if !keep_later {
                        later.longest = Some(joined.clone());
                    }
                    later.first_closed = Some(joined);
                } else {
                    later.open = Some(joined);
                }
                // The joined incident was counted once already, as `a`.
                later.count -= 1;
                self.append(later);
            }
        }
    }

    /// Add the incidents of later lines when nothing is left open to continue.
    fn append(&mut self, later: Incidents) {
        self.count += later.count;
        if self.first_closed.is_none() {
            self.first_closed = later.first_closed;
        }
        for i in later.recent {
            if self.recent.len() == RECENT_INCIDENTS {
                self.recent.pop_front();
            }
            self.recent.push_back(i);
        }
        if let Some(l) = later.longest
            && longer(&l, self.longest.as_ref())
        {
            self.longest = Some(l);
        }
        if later.open.is_some() {
            self.open = later.open;
        }
    }

    fn down(&mut self, ts: Option<i64>) {
        match &mut self.open {
            Some(i) => {
                i.checks += 1;
                if ts.is_some() {
                    i.last_down = ts;
                }
                if i.start.is_none() {
                    i.start = ts;
                }
            }
            None => {
                self.count += 1;
                self.open = Some(Incident { start: ts, end: None, last_down: ts, checks: 1 });
            }
        }
    }

    fn back(&mut self, ts: Option<i64>) {
        if let Some(mut i) = self.open.take() {
            i.end = ts.or(i.last_down);
            self.keep(i);
        }
    }

    fn keep(&mut self, i: Incident) {
        if let Some(all) = &mut self.all {
            all.push(i.clone());
        }
        if longer(&i, self.longest.as_ref()) {
            self.longest = Some(i.clone());
        }
        if self.first_closed.is_none() {
            self.first_closed = Some(i.clone());
        }
        if self.recent.len() == RECENT_INCIDENTS {
            self.recent.pop_front();
        }
        self.recent.push_back(i);
    }

    /// True while a run of downs is open (the next up check closes it).
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// The recent incidents, the ongoing one last; and the longest, ongoing included.
    pub fn finished(&self) -> (Vec<Incident>, Option<Incident>) {
        let mut recent: Vec<Incident> = self.recent.iter().cloned().collect();
        let mut longest = self.longest.clone();
        if let Some(o) = &self.open {
            if recent.len() == RECENT_INCIDENTS {
                recent.remove(0);
            }
            recent.push(o.clone());
            if longer(o, longest.as_ref()) {
                longest = Some(o.clone());
            }
        }
        (recent, longest)
    }

    /// The longest outage in whole seconds (0 without incidents).
    pub fn longest_s(&self) -> u64 {
        let (_, longest) = self.finished();
        longest.and_then(|l| l.duration_ms()).map(|ms| ((ms + 500) / 1000) as u64).unwrap_or(0)
    }
}

/// A day of one service, for the status page's bars and latency line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayCell {
    pub up: u64,
    pub degraded: u64,
    pub down: u64,
    pub latency_sum: f64,
    pub lines: u64,
    /// The part of each spacing that falls in this day, in the bucket of the whole spacing
    /// (so that the day's unknown time agrees with the window's).
    pub spacings: Spacings,
}

impl DayCell {
    pub fn total(&self) -> u64 {
        self.up + self.degraded + self.down
    }

    /// Uptime of the day in percent (None without up/down checks).
    pub fn uptime(&self) -> Option<f64> {
        let t = self.total();
        if t == 0 { None } else { Some((self.up + self.degraded) as f64 / t as f64 * 100.0) }
    }

    pub fn avg_latency(&self) -> Option<f64> {
        if self.lines == 0 { None } else { Some(self.latency_sum / self.lines as f64) }
    }
}

/// Everything kept about one service over one window (or one day with `--by day`).
#[derive(Debug, Clone, Default)]
pub struct ServiceStats {
    pub up: u64,
    pub degraded: u64,
    pub down: u64,
    pub other: u64,
    pub latency: LatencySum,
    pub hist: Histogram,
    pub incidents: Incidents,
    /// The status of the last line read, and its timestamp as written.
    pub last_status: Option<Seen>,
    pub last_ts: String,
    /// Day number (days since 1970-01-01) and cell, in day order; kept only for the page.
    pub days: Vec<(i32, DayCell)>,
    /// Which time anyone watched: the spacings of the checks.
    pub coverage: Coverage,
    /// Keep day cells from this day on (the status page): spacings are cut into them.
    pub cells_from: Option<i32>,
    /// Up (and degraded) and down checks that fell in a maintenance window
    /// (`--exclude-maintenance`).
    pub maintenance: (u64, u64),
}

impl ServiceStats {
    /// Count one line. `ts` is asked for (once) when the line says up, degraded, down or
    /// recovered: for incidents and coverage.
    pub fn add(&mut self, status: Seen, latency: Latency, ts: &mut dyn FnMut() -> Option<i64>) {
        match status {
            Seen::Up => self.up += 1,
            Seen::Degraded => self.degraded += 1,
            Seen::Down => self.down += 1,
            Seen::Recovered | Seen::Other => self.other += 1,
        }
        self.latency.add(latency);
        self.hist.add(latency.as_f64());
        let ts = if status == Seen::Other { None } else { ts() };
        match status {
            Seen::Down => {
                if self.incidents.lead == Lead::Nothing {
                    self.incidents.lead = Lead::Down;
                }
                self.incidents.down(ts)
            }
            Seen::Up | Seen::Degraded | Seen::Recovered if self.incidents.is_open() => self.incidents.back(ts),
            Seen::Up | Seen::Degraded | Seen::Recovered if self.incidents.lead == Lead::Nothing => {
                self.incidents.lead = Lead::Back(ts);
            }
            _ => {}
        }
        if let Some(ms) = ts
            && let Some(closed) = self.coverage.observe(ms, status == Seen::Down)
        {
            self.cut_into_days(closed);
        }
        self.last_status = Some(status);
    }

    /// Count a check that fell in a maintenance window (it was counted by [`Self::add`] too).
    pub fn in_maintenance(&mut self, status: Seen) {
        match status {
            Seen::Up | Seen::Degraded => self.maintenance.0 += 1,
            Seen::Down => self.maintenance.1 += 1,
            Seen::Recovered | Seen::Other => {}
        }
    }

    /// The uptime outside maintenance windows, before rounding (`None` when every check
    /// fell in one).
    pub fn uptime_outside_maintenance(&self) -> Option<f64> {
        let up = (self.up + self.degraded).saturating_sub(self.maintenance.0);
        let total = self.total().saturating_sub(self.maintenance.0 + self.maintenance.1);
        (total > 0).then(|| up as f64 / total as f64 * 100.0)
    }

    /// Count the part of a spacing that falls in each day cell kept (the status page).
    fn cut_into_days(&mut self, (start, len, down): (i64, u64, bool)) {
        let Some(from) = self.cells_from else { return };
        if len == 0 {
            return;
        }
        let end = start.saturating_add(i64::try_from(len).unwrap_or(i64::MAX));
        let from_ms = i64::from(from) * coverage::DAY_MS;
        coverage::by_day(start.max(from_ms), end, |day, ms| {
            self.cell(day).spacings.add(len, ms, down);
        });
    }

    /// The cell of `day`, made when missing.
    fn cell(&mut self, day: i32) -> &mut DayCell {
        let idx = match self.days.last() {
            Some((d, _)) if *d == day => self.days.len() - 1,
            _ => match self.days.binary_search_by_key(&day, |(d, _)| *d) {
                Ok(i) => i,
                Err(i) => {
                    self.days.insert(i, (day, DayCell::default()));
                    i
                }
            },
        };
        &mut self.days[idx].1
    }

    /// Continue these statistics with those of the lines that came right after.
    pub fn merge(&mut self, later: ServiceStats) {
        self.up += later.up;
        self.degraded += later.degraded;
        self.down += later.down;
        self.other += later.other;
        self.maintenance.0 += later.maintenance.0;
        self.maintenance.1 += later.maintenance.1;
        self.latency.merge(&later.latency);
        self.hist.merge(&later.hist);
        self.incidents.merge(later.incidents);
        if self.cells_from.is_none() {
            self.cells_from = later.cells_from;
        }
        if let Some(joint) = self.coverage.merge(later.coverage) {
            self.cut_into_days(joint);
        }
        if later.last_status.is_some() {
            self.last_status = later.last_status;
            self.last_ts = later.last_ts;
        }
        for (day, cell) in later.days {
            match self.days.binary_search_by_key(&day, |(d, _)| *d) {
                Ok(i) => {
                    let c = &mut self.days[i].1;
                    c.up += cell.up;
                    c.degraded += cell.degraded;
                    c.down += cell.down;
                    c.latency_sum += cell.latency_sum;
                    c.lines += cell.lines;
                    c.spacings.merge(&cell.spacings);
                }
                Err(i) => self.days.insert(i, (day, cell)),
            }
        }
    }

    /// Count the line in its day's cell (the status page).
    pub fn add_day(&mut self, day: i32, status: Seen, latency: Latency) {
        let cell = self.cell(day);
        match status {
            Seen::Up => cell.up += 1,
            Seen::Degraded => cell.degraded += 1,
            Seen::Down => cell.down += 1,
            Seen::Recovered | Seen::Other => {}
        }
        cell.latency_sum += latency.as_f64();
        cell.lines += 1;
    }

    /// The Agent Ops Kit's `total_checks`: up and down (pitcrew's degraded counts as up).
    pub fn total(&self) -> u64 {
        self.up + self.degraded + self.down
    }

    /// The Agent Ops Kit's uptime before rounding: `up / total * 100`, 0 without checks.
    pub fn uptime_raw(&self) -> f64 {
        let total = self.total();
        if total == 0 { 0.0 } else { (self.up + self.degraded) as f64 / total as f64 * 100.0 }
    }

    /// `round(uptime, 2)`.
    pub fn uptime_percent(&self) -> f64 {
        py_round(self.uptime_raw(), 2)
    }

    /// The Agent Ops Kit's average: over every line of the name, but 0 when there are no up/down
    /// checks at all; `round(avg, 1)`.
    pub fn avg_latency_ms(&self) -> f64 {
        if self.total() == 0 { 0.0 } else { py_round(self.latency.mean(), 1) }
    }

    /// A latency percentile, rounded to 0.1 ms.
    pub fn percentile(&self, q: f64) -> Option<f64> {
        self.hist.quantile(q).map(|v| py_round(v, 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_rounding_and_repr() {
        // Values whose decimal expansion sits on or near a tie.
        assert_eq!(py_round(0.125, 2), 0.12);
        assert_eq!(py_round(0.375, 2), 0.38);
        assert_eq!(py_round(2.675, 2), 2.67);
        assert_eq!(py_round(12.125, 2), 12.12);
        assert_eq!(py_round(0.25, 1), 0.2);
        assert_eq!(py_round(99.995, 2), 100.0);
        assert_eq!(py_repr(100.0), "100.0");
        assert_eq!(py_repr(99.95), "99.95");
        assert_eq!(py_repr(0.0), "0.0");
        assert_eq!(py_repr(145.2), "145.2");
        assert_eq!(py_repr(1e16), "1e+16");
        assert_eq!(py_repr(1.5e-5), "1.5e-05");
        assert_eq!(py_repr(123456789012.5), "123456789012.5");
    }

    #[test]
    fn kit_arithmetic() {
        let mut s = ServiceStats::default();
        let mut no_ts = || None;
        for _ in 0..2015 {
            s.add(Seen::Up, Latency::Int(145), &mut no_ts);
        }
        s.add(Seen::Down, Latency::Int(10_000), &mut no_ts);
        s.add(Seen::Recovered, Latency::Int(0), &mut no_ts);
        assert_eq!((s.total(), s.down), (2016, 1));
        assert_eq!(s.uptime_percent(), 99.95);
        // (2015*145 + 10000 + 0) / 2017 = 149.8066...
        assert_eq!(s.avg_latency_ms(), 149.8);
        let mut only_other = ServiceStats::default();
        only_other.add(Seen::Other, Latency::Int(0), &mut no_ts);
        assert_eq!((only_other.uptime_percent(), only_other.avg_latency_ms()), (0.0, 0.0));
    }

    #[test]
    fn latency_sum_is_exact_over_integers() {
        let mut l = LatencySum::default();
        for _ in 0..3 {
            l.add(Latency::Int(1));
        }
        assert_eq!(l.mean(), 1.0);
        l.add(Latency::Float(0.5));
        assert_eq!(l.mean(), 3.5 / 4.0);
    }

    #[test]
    fn percentiles_within_one_percent() {
        // A skewed, deterministic sample (a linear congruential generator).
        let mut x: u64 = 42;
        let mut values = Vec::new();
        let mut h = Histogram::default();
        for i in 0..100_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            let v = if i % 7 == 0 { 0.0 } else { (1.0 + 5000.0 * u * u * u).round() };
            values.push(v);
            h.add(v);
        }
        values.sort_by(f64::total_cmp);
        for q in [0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
            let exact = values[rank - 1];
            let got = h.quantile(q).unwrap();
            let err = if exact == 0.0 { got.abs() } else { ((got - exact) / exact).abs() };
            assert!(err <= 0.01, "q={q}: exact {exact} got {got}");
        }
        let mut one = Histogram::default();
        one.add(145.0);
        assert_eq!(one.quantile(0.5), Some(145.0), "a single value is exact (clamped to min/max)");
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn merged_histograms_answer_like_one() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        let mut all = Histogram::default();
        for v in 1..500 {
            let v = f64::from(v * 7 % 997);
            if v < 300.0 {
                a.add(v)
            } else {
                b.add(v)
            }
            all.add(v);
        }
        a.merge(&b);
        for q in [0.5, 0.95, 0.99] {
            assert_eq!(a.quantile(q), all.quantile(q));
        }
    }

    #[test]
    fn incidents_are_runs_of_downs() {
        let mut s = ServiceStats::default();
        let seq = [
            (Seen::Up, 0),
            (Seen::Down, 300),
            (Seen::Down, 600),
            (Seen::Up, 900),
            (Seen::Other, 1000),
            (Seen::Down, 1200),
            (Seen::Recovered, 1260),
            (Seen::Down, 1500),
        ];
        for (st, t) in seq {
            let ms = t * 1000;
            s.add(st, Latency::Int(1), &mut || Some(ms));
        }
        assert_eq!(s.incidents.count, 3);
        let (recent, longest) = s.incidents.finished();
        assert_eq!(recent.len(), 3);
        assert_eq!((recent[0].start, recent[0].end, recent[0].checks), (Some(300_000), Some(900_000), 2));
        assert_eq!(recent[1].duration_ms(), Some(60_000));
        assert!(recent[2].ongoing());
        assert_eq!(recent[2].duration_ms(), Some(0));
        assert_eq!(longest.unwrap().start, Some(300_000));
        assert_eq!(s.incidents.longest_s(), 600);
    }

    #[test]
    fn only_the_most_recent_incidents_are_kept() {
        let mut s = ServiceStats::default();
        for k in 0..100i64 {
            s.add(Seen::Down, Latency::Int(0), &mut || Some(k * 10_000));
            s.add(Seen::Up, Latency::Int(0), &mut || Some(k * 10_000 + 1000 + k));
        }
        assert_eq!(s.incidents.count, 100);
        assert_eq!(s.incidents.recent.len(), RECENT_INCIDENTS);
        assert_eq!(s.incidents.recent.back().unwrap().start, Some(990_000));
        assert_eq!(s.incidents.longest.as_ref().unwrap().start, Some(990_000));
    }

    /// Statuses at one-minute steps with long and short outages, some lines without time.
    fn random_lines(seed: u64, n: usize) -> Vec<(Seen, Option<i64>)> {
        let mut x = seed;
        let mut next = move || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            x >> 33
        };
        let mut down_left = 0;
        (0..n)
            .map(|k| {
                if down_left == 0 && next() % 9 == 0 {
                    down_left = 1 + next() % 5;
                }
                let st = if down_left > 0 {
                    down_left -= 1;
                    Seen::Down
                } else {
                    match next() % 10 {
                        0 => Seen::Degraded,
                        1 => Seen::Recovered,
                        2 => Seen::Other,
                        _ => Seen::Up,
                    }
                };
                let ts = if next() % 17 == 0 { None } else { Some(k as i64 * 600_000 + (next() % 7) as i64 * 1000) };
                (st, ts)
            })
            .collect()
    }

    fn read(lines: &[(Seen, Option<i64>)]) -> ServiceStats {
        // Day cells from the epoch on: spacings cut at midnight (the lines span a few days).
        let mut s = ServiceStats { cells_from: Some(0), ..ServiceStats::default() };
        for &(st, ts) in lines {
            s.add(st, Latency::Int(ts.unwrap_or(0) % 1000), &mut || ts);
        }
        s
    }

    type Summary = (u64, u64, u64, Vec<Incident>, Option<i64>, u64, Option<Seen>, Coverage, Vec<(i32, DayCell)>);

    fn summary(s: &ServiceStats) -> Summary {
        let (recent, longest) = s.incidents.finished();
        (
            s.total(),
            s.down,
            s.incidents.count,
            recent,
            longest.and_then(|l| l.duration_ms()),
            s.hist.count(),
            s.last_status,
            s.coverage.clone(),
            s.days.clone(),
        )
    }

    #[test]
    fn merged_stretches_equal_one_read() {
        for seed in 0..300u64 {
            let lines = random_lines(seed, 40 + (seed as usize % 500));
            let whole = read(&lines);
            // Cut into 1 to 6 stretches, some of them empty or a single line.
            let mut cuts: Vec<usize> =
                (0..(seed % 6)).map(|k| (seed as usize * 7919 + k as usize * 104_729) % lines.len()).collect();
            cuts.push(0);
            cuts.push(lines.len());
            cuts.sort_unstable();
            let mut merged = ServiceStats { cells_from: Some(0), ..ServiceStats::default() };
            for w in cuts.windows(2) {
                merged.merge(read(&lines[w[0]..w[1]]));
            }
            assert_eq!(summary(&merged), summary(&whole), "seed {seed}, cuts {cuts:?}");
        }
    }

    #[test]
    fn a_run_of_downs_across_a_cut_is_one_incident() {
        let lines: Vec<(Seen, Option<i64>)> =
            (0..60).map(|k| (if (10..50).contains(&k) { Seen::Down } else { Seen::Up }, Some(k * 1000))).collect();
        let mut merged = ServiceStats::default();
        for chunk in lines.chunks(7) {
            merged.merge(read(chunk));
        }
        assert_eq!(merged.incidents.count, 1);
        assert_eq!(merged.incidents.longest_s(), 40);
    }

    #[test]
    fn day_cells_stay_in_order() {
        let mut s = ServiceStats::default();
        for d in [3, 1, 3, 2, 1] {
            s.add_day(d, Seen::Up, Latency::Int(10));
        }
        s.add_day(2, Seen::Down, Latency::Int(10));
        let days: Vec<i32> = s.days.iter().map(|(d, _)| *d).collect();
        assert_eq!(days, vec![1, 2, 3]);
        assert_eq!(s.days[1].1.uptime(), Some(50.0));
    }
}
