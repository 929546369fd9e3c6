//! `--exclude-maintenance`: the checks that fell in a maintenance window of their service (a
//! silence of `state/silences.json` covering it, one-off or recurring) are left out of a
//! second uptime figure, `uptime_outside_maintenance_percent`, reported beside the kit's
//! `uptime_percent`, with how many checks were left out (`maintenance_checks`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::calendar::maintenance::{self, Window};
use crate::entry::Diag;
use crate::error::Result;

/// The windows, and the span they are laid out over.
#[derive(Debug)]
pub(crate) struct Maint {
    windows: Vec<Window>,
    from: OffsetDateTime,
    to: OffsetDateTime,
}

/// A service's windows as sorted, merged millisecond spans.
pub(crate) type Spans = Arc<Vec<(i64, i64)>>;

impl Maint {
    /// Read the silences file under `state_dir`; `from..to` is the report's span.
    pub fn load(state_dir: &Path, from: OffsetDateTime, to: OffsetDateTime, diag: &Diag) -> Result<Maint> {
        let (windows, warnings) = maintenance::load(state_dir)?;
        for w in warnings {
            diag.warn(w);
        }
        Ok(Maint { windows, from, to })
    }

    /// The windows covering service `name` (merged, in order).
    pub fn spans(&self, name: &str) -> Spans {
        let ms = |t: OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
        let mut v: Vec<(i64, i64)> = self
            .windows
            .iter()
            .filter(|w| w.covers(name))
            .flat_map(|w| w.between(self.from, self.to))
            .map(|(a, b)| (ms(a), ms(b)))
            .collect();
        v.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(v.len());
        for (a, b) in v {
            match merged.last_mut() {
                Some((_, e)) if a <= *e => *e = (*e).max(b),
                _ => merged.push((a, b)),
            }
        }
        Arc::new(merged)
    }
}

/// Per scanner: the spans of each service met so far.
#[derive(Debug, Default)]
pub(crate) struct Lookup {
    pub maint: Option<Arc<Maint>>,
    cache: HashMap<String, Spans>,
}

impl Lookup {
    /// For a scanner of this report.
    pub fn new(maint: Option<Arc<Maint>>) -> Lookup {
        Lookup { maint, cache: HashMap::new() }
    }

    /// Was a check of `name` at `ms` in one of its windows?
    pub fn covers(&mut self, name: &str, ms: i64) -> bool {
        let Some(m) = &self.maint else { return false };
        let spans = match self.cache.get(name) {
            Some(s) => s,
            None => self.cache.entry(name.to_string()).or_insert_with(|| m.spans(name)),
        };
        let i = spans.partition_point(|(a, _)| *a <= ms);
        i > 0 && ms < spans[i - 1].1
    }
}
