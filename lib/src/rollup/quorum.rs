//! Uptime by quorum: for a service checked from several places (the hub's own metrics and
//! each `METRICS/<host>/` that `rollup ingest` keeps), the share of time it was up when it
//! counts as down only at moments when at least K of the places that check it had a `down`
//! latest record no older than the quorum window — notify's rule (`notify --quorum K`),
//! applied to every moment of the report's window.
//!
//! Time-weighted, as `uptime_known_percent` is: each place's latest record vouches for its
//! status from its time until the place's next record, or until it is older than the window.
//! A moment at which no place has such a record is unknown and left out, as time nobody
//! watched is left out of `uptime_known_percent`. So:
//!
//! ```text
//! quorum_uptime_percent = (known - down) / known * 100
//! ```
//!
//! Per service and place only the runs of one status are kept (a run ends when the status
//! changes or when two records are further apart than the window), not the records: memory
//! grows with the status changes, not with the history.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;
use std::path::PathBuf;

use serde::Serialize;

use super::scan::{NameHasher, Scanner};
use super::stats::py_round;
use super::{Inputs, Plan};
use crate::entry::Diag;
use crate::error::Result;

/// A run of one place's records of one service with the same status, no two consecutive
/// ones further apart than the window: `first` and `last` record (ms), down or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub first: i64,
    pub last: i64,
    pub down: bool,
}

/// One place's timeline of one service, as runs in time order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Track {
    pub runs: Vec<Run>,
}

impl Track {
    /// A record at `ms`, down or not. A record earlier than the previous one counts as at its
    /// time (as the coverage counts it).
    pub fn observe(&mut self, ms: i64, down: bool, window_ms: i64) {
        self.push(Run { first: ms, last: ms, down }, window_ms);
    }

    fn push(&mut self, run: Run, window_ms: i64) {
        match self.runs.last_mut() {
            Some(prev) => {
                let first = run.first.max(prev.last);
                let last = run.last.max(first);
                if prev.down == run.down && first - prev.last <= window_ms {
                    prev.last = last;
                } else {
                    self.runs.push(Run { first, last, down: run.down });
                }
            }
            None => self.runs.push(run),
        }
    }

    /// Continue with the timeline of the records that came right after.
    pub fn merge(&mut self, later: Track, window_ms: i64) {
        for run in later.runs {
            self.push(run, window_ms);
        }
    }
}

/// Each service's track in one scan.
pub type Tracks = HashMap<String, Track, BuildHasherDefault<NameHasher>>;

/// Who decides: `--quorum K` for every service, `"quorum": K` per service in services.json
/// (which wins), and the window (`--quorum-window`).
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub all: Option<usize>,
    pub per_service: HashMap<String, usize>,
    pub window_s: u64,
}

impl Rules {
    /// The quorum of `name`, if it has one.
    pub fn of(&self, name: &str) -> Option<usize> {
        self.per_service.get(name).copied().or(self.all)
    }

    /// True when any service has a quorum.
    pub fn any(&self) -> bool {
        self.all.is_some() || !self.per_service.is_empty()
    }

    pub fn window_ms(&self) -> i64 {
        i64::try_from(self.window_s.saturating_mul(1000)).unwrap_or(i64::MAX)
    }
}

/// The uptime by quorum of one service, as the `uptime` record carries it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    /// K.
    pub quorum: usize,
    /// The window a place's latest record counts for, in seconds.
    pub quorum_window_s: u64,
    /// The places that checked the service in the window.
    pub quorum_places: Vec<String>,
    /// Up time over known time by quorum, in percent, rounded to 2 decimals; `null` without
    /// known time.
    pub quorum_uptime_percent: Option<f64>,
    /// Time down by quorum, and time no place had a record within the window, in whole seconds.
    pub quorum_down_s: u64,
    pub quorum_unknown_s: u64,
    /// Stretches of time down by quorum.
    pub quorum_outages: u64,
    /// Up time over known time (0 to 1), unrounded.
    #[serde(skip)]
    pub ratio: Option<f64>,
}

/// Known, down-by-quorum and unknown time (ms), and the down stretches, of one service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Split {
    known: u64,
    down: u64,
    unknown: u64,
    outages: u64,
}

/// Sweep the places' tracks over `span` (ms): at each moment, the places whose latest record
/// is at most `window_ms` old are counted, and those of them whose latest record is down.
fn split(k: usize, window_ms: i64, tracks: &[&Track], span: (i64, i64)) -> Split {
    // (time, change of places counted, change of those down)
    let mut edges: Vec<(i64, i64, i64)> = Vec::new();
    for t in tracks {
        for (i, run) in t.runs.iter().enumerate() {
            let stale = run.last.saturating_add(window_ms);
            let end = t.runs.get(i + 1).map_or(stale, |next| stale.min(next.first));
            if end <= run.first {
                continue;
            }
            let d = i64::from(run.down);
            edges.push((run.first, 1, d));
            edges.push((end, -1, -d));
        }
    }
    edges.sort_unstable();
    let (start, end) = span;
    let mut s = Split::default();
    let (mut counted, mut down, mut at, mut was_down) = (0i64, 0i64, start, false);
    let mut close = |to: i64, counted: i64, down: i64, at: &mut i64, was_down: &mut bool| {
        let to = to.clamp(start, end);
        if to <= *at {
            return;
        }
        let len = (to - *at) as u64;
        let is_down = down >= k as i64;
        if counted == 0 {
            s.unknown += len;
        } else {
            s.known += len;
            if is_down {
                s.down += len;
                if !*was_down {
                    s.outages += 1;
                }
            }
        }
        *was_down = counted > 0 && is_down;
        *at = to;
    };
    for (t, dc, dd) in edges {
        close(t, counted, down, &mut at, &mut was_down);
        counted += dc;
        down += dd;
    }
    close(end, counted, down, &mut at, &mut was_down);
    s
}

impl Figure {
    fn of(k: usize, window_s: u64, places: Vec<String>, s: Split) -> Figure {
        let ratio = (s.known > 0).then(|| (s.known - s.down) as f64 / s.known as f64);
        Figure {
            quorum: k,
            quorum_window_s: window_s,
            quorum_places: places,
            quorum_uptime_percent: ratio.map(|r| py_round(r * 100.0, 2)),
            quorum_down_s: (s.down + 500) / 1000,
            quorum_unknown_s: (s.unknown + 500) / 1000,
            quorum_outages: s.outages,
            ratio,
        }
    }
}

/// One place: its name, its metrics directory, and whether its malformed lines are said
/// here (those of a place the report covers are said by the report).
pub(crate) struct Place {
    pub name: String,
    pub dir: PathBuf,
    pub say_rejects: bool,
}

/// The uptime by quorum of every service with a quorum that more than one place checked in
/// `plan`'s window, by name.
pub(crate) fn figures(
    places: &[Place],
    rules: &Rules,
    plan: &Plan,
    now_ms: i64,
    diag: &Diag,
) -> Result<HashMap<String, Figure>> {
    let window_ms = rules.window_ms();
    let window_days = plan.window.map(|(f, t)| (super::day_number(f), super::day_number(t)));
    // service → (place name, track)
    let mut by_service: BTreeMap<String, Vec<(String, Track)>> = BTreeMap::new();
    let mut first: Option<i64> = None;
    for place in places {
        let mut p = plan.clone();
        p.inputs = Inputs::Dir(place.dir.clone());
        let mut opts = super::scan_opts(&p, window_days);
        opts.day_cells_from = None;
        opts.pass_through = false;
        opts.quorum_window_ms = Some(window_ms);
        let jobs = super::jobs_of(&p, window_days, diag)?;
        let mut sc = Scanner::new(opts);
        let threads = super::threads_for(&jobs);
        super::scan_parallel(&jobs, opts, None, threads, &mut |_, (part, _)| {
            sc.absorb(part);
            Ok(())
        })?;
        if place.say_rejects {
            sc.report_rejects(diag);
        }
        first = match (first, sc.host.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        for (name, track) in std::mem::take(&mut sc.tracks) {
            if rules.of(&name).is_some() && !track.runs.is_empty() {
                by_service.entry(name).or_default().push((place.name.clone(), track));
            }
        }
    }
    let span = match window_days {
        Some((f, t)) => super::day_span(f, t, now_ms, first),
        None => return Ok(HashMap::new()),
    };
    let mut out = HashMap::new();
    for (name, seen) in by_service {
        let Some(k) = rules.of(&name) else { continue };
        if seen.len() < 2 {
            continue;
        }
        let tracks: Vec<&Track> = seen.iter().map(|(_, t)| t).collect();
        let s = split(k, window_ms, &tracks, span);
        let names = seen.iter().map(|(p, _)| p.clone()).collect();
        out.insert(name, Figure::of(k, rules.window_s, names, s));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn track(points: &[(i64, bool)]) -> Track {
        let mut t = Track::default();
        for &(m, down) in points {
            t.observe(m * MIN, down, 10 * MIN);
        }
        t
    }

    #[test]
    fn runs_break_on_a_change_and_on_a_silence_longer_than_the_window() {
        let t = track(&[(0, false), (5, false), (10, true), (30, true), (29, false)]);
        assert_eq!(
            t.runs,
            vec![
                Run { first: 0, last: 5 * MIN, down: false },
                Run { first: 10 * MIN, last: 10 * MIN, down: true },
                Run { first: 30 * MIN, last: 30 * MIN, down: true },
                // Earlier than the one before: counted at its time.
                Run { first: 30 * MIN, last: 30 * MIN, down: false },
            ]
        );
        // Merging the halves of a timeline gives the whole.
        let mut a = track(&[(0, false), (5, false)]);
        a.merge(track(&[(10, true), (30, true), (29, false)]), 10 * MIN);
        assert_eq!(a, t);
    }

    #[test]
    fn one_place_down_is_no_quorum_two_are_and_stale_ones_do_not_count() {
        // Three places checking every 5 minutes over an hour. a is down from 10 to 30;
        // b is down from 20 to 40; c is down at 0 and then silent.
        let every5 = |down: &dyn Fn(i64) -> bool| track(&(0..12).map(|i| (i * 5, down(i * 5))).collect::<Vec<_>>());
        let a = every5(&|m| (10..30).contains(&m));
        let b = every5(&|m| (20..40).contains(&m));
        let c = track(&[(0, true)]);
        let s = split(2, 10 * MIN, &[&a, &b, &c], (0, 60 * MIN));
        // Down by quorum while a and b both are: 20 to 30; c's down record counts only to 10,
        // when only it was down.
        let m = |x: i64| (x * MIN) as u64;
        assert_eq!(s, Split { known: m(60), down: m(10), unknown: 0, outages: 1 });
        // A quorum of 3 is never met; of 1, any down place is enough: 0-10 (c), 10-40.
        assert_eq!(split(3, 10 * MIN, &[&a, &b, &c], (0, 60 * MIN)).down, 0);
        assert_eq!(split(1, 10 * MIN, &[&a, &b, &c], (0, 60 * MIN)).down, m(40));
        // After the last records (55) plus the window (10): unknown.
        let s = split(2, 10 * MIN, &[&a, &b, &c], (0, 90 * MIN));
        assert_eq!((s.known, s.unknown), (m(65), m(25)));
    }
}
