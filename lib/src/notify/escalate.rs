//! Escalation: `alerting.escalate`, a list of levels `{after, to}`. An incident announced and
//! still bad, not acknowledged and not silenced, is sent to the sinks of each level once, in
//! order, when it has been bad for the level's `after`. A sink named in some level is kept
//! for escalations: it is sent an incident only from the level that names it on (then its
//! reminders, a worse level and its recovery too); the other sinks are sent everything as
//! usual. The level reached is kept in the state (`escalation`), so each level is sent once,
//! across runs and restarts.

use std::collections::HashSet;

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::alert::Alert;
use super::silence::Silences;
use super::sinks;
use super::state::{self, State};
use crate::clock::{self, human_duration};

/// One level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    /// Seconds since the incident began.
    pub after_s: u64,
    /// Sink names.
    pub to: Vec<String>,
}

/// The policy (no levels: no escalation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Escalation {
    pub steps: Vec<Step>,
}

impl Escalation {
    /// Read `alerting.escalate` (absent: none). `place` names the file for errors.
    pub fn from_config(raw: &serde_json::Map<String, Value>, place: &str) -> Result<Escalation, String> {
        let Some(v) = raw.get("escalate") else { return Ok(Escalation::default()) };
        let Some(list) = v.as_array() else {
            return Err(format!(
                "{place}: alerting.escalate: expected a list of {{\"after\": \"15m\", \"to\": [sinks]}}"
            ));
        };
        let mut steps: Vec<Step> = Vec::new();
        for (i, s) in list.iter().enumerate() {
            let at = format!("{place}: alerting.escalate[{i}]");
            let after_s = match s.get("after") {
                Some(Value::String(t)) => clock::parse_duration(t)
                    .map(|d| d.as_secs())
                    .ok_or_else(|| format!("{at}.after: '{t}' is not a duration (90s, 15m, 2h, 1d)"))?,
                Some(n) if n.as_u64().is_some() => n.as_u64().unwrap_or(0),
                _ => return Err(format!("{at}.after: expected a duration like \"15m\" (or seconds)")),
            };
            let to: Vec<String> = match s.get("to") {
                Some(Value::String(one)) => vec![one.clone()],
                Some(Value::Array(many)) => many.iter().filter_map(|n| n.as_str().map(String::from)).collect(),
                _ => return Err(format!("{at}.to: expected a sink name or a list of them")),
            };
            if to.is_empty() {
                return Err(format!("{at}.to: no sink named"));
            }
            if let Some(bad) = to.iter().find(|n| !sinks::NAMES.contains(&n.as_str())) {
                return Err(format!("{at}.to: '{bad}' is not a sink (one of {})", sinks::NAMES.join(", ")));
            }
            if steps.last().is_some_and(|p| p.after_s > after_s) {
                return Err(format!("{at}.after: the levels must come in order of their 'after'"));
            }
            steps.push(Step { after_s, to });
        }
        Ok(Escalation { steps })
    }

    /// The first level (from 1) naming the sink; `None` when no level does.
    pub fn level_of(&self, sink: &str) -> Option<u32> {
        self.steps.iter().position(|s| s.to.iter().any(|n| n == sink)).map(|i| i as u32 + 1)
    }

    /// May this sink be sent this alert? An escalation goes only to its level's sinks; a sink
    /// kept for a level is sent an incident's alerts once the incident reached that level; an
    /// acknowledgement's announcement goes to every sink but the one it came from.
    pub fn routes(&self, a: &Alert, sink: &str) -> bool {
        if let Some(to) = a.extra.get("escalate_to").and_then(Value::as_array) {
            return to.iter().any(|n| n.as_str() == Some(sink));
        }
        if a.extra.get("ack_from").and_then(Value::as_str) == Some(sink) {
            return false;
        }
        match self.level_of(sink) {
            None => true,
            Some(n) => a.extra.get("escalation").and_then(Value::as_u64).is_some_and(|l| l >= u64::from(n)),
        }
    }

    /// When the next level of an incident is due (for `notify state` and `--follow`).
    pub fn next_due(&self, e: &state::Subject) -> Option<(u32, OffsetDateTime)> {
        let step = self.steps.get(e.escalation as usize)?;
        let since = clock::parse_ts(&e.since)?;
        Some((e.escalation + 1, clock::add_or_latest(since, std::time::Duration::from_secs(step.after_s))))
    }

    /// The escalations due at `now`: each incident bad, announced, not acknowledged, not
    /// silenced, and bad for a level's `after`, is sent that level (every level it passed, in
    /// order, once each). The state is updated as if they were sent (what a sink does not
    /// take waits in the outbox).
    pub fn due(&self, st: &mut State, silences: &Silences, now: OffsetDateTime) -> Vec<Alert> {
        if self.steps.is_empty() {
            return Vec::new();
        }
        let stamp = clock::fmt_ts(now);
        let mut out = Vec::new();
        for a in state::still_firing(st, &HashSet::new()) {
            let Some(key) = a.subject.clone() else { continue };
            let Some(e) = st.subjects.get_mut(&key) else { continue };
            if e.acked(now) || silences.muting(&a, now).is_some() {
                continue;
            }
            let Some(since) = clock::parse_ts(&e.since) else { continue };
            let bad_for = (now - since).whole_seconds().max(0) as u64;
            let message = a.message.clone();
            for (i, step) in self.steps.iter().enumerate() {
                let n = i as u32 + 1;
                if n <= e.escalation {
                    continue;
                }
                if bad_for < step.after_s {
                    break;
                }
                let mut x = a.clone();
                x.timestamp.clone_from(&stamp);
                x.message = format!("not acknowledged after {}: {message}", human_duration(bad_for));
                x.extra.insert("escalation".into(), json!(n));
                x.extra.insert("escalate_to".into(), json!(step.to));
                e.escalation = n;
                e.escalated_at = Some(stamp.clone());
                out.push(x);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_read_and_checked() {
        let raw = |v: Value| v.as_object().cloned().unwrap();
        let e = Escalation::from_config(
            &raw(json!({"escalate": [{"after": "15m", "to": ["telegram"]}, {"after": 3600, "to": "gitea"}]})),
            "s.json",
        )
        .unwrap();
        assert_eq!(e.steps[1], Step { after_s: 3600, to: vec!["gitea".into()] });
        assert_eq!(e.level_of("gitea"), Some(2));
        assert_eq!(e.level_of("webhook"), None);
        let err = |v: Value| Escalation::from_config(&raw(v), "s.json").unwrap_err();
        assert!(err(json!({"escalate": [{"after": "soon", "to": ["gitea"]}]})).contains("escalate[0].after"));
        assert!(err(json!({"escalate": [{"after": "1m", "to": ["pager"]}]})).contains("'pager' is not a sink"));
        assert!(
            err(json!({"escalate": [{"after": "1h", "to": "gitea"}, {"after": "1m", "to": "exec"}]}))
                .contains("in order")
        );
    }
}
