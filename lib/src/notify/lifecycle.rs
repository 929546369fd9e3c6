//! The alert history notify keeps: every alert of a run becomes an event of its incident's
//! life in `state/alerts/DAY.jsonl` ([`crate::history`]): `fired`, `repeated`, `resolved` for
//! what was raised, `escalated` for an incident announced again at a worse level, `paged` for one sent to
//! the next level of the escalation policy,
//! `acknowledged` for what a person took on (`notify ack`), `silenced` for what a silence held, and `delivered` for what a sink took
//! from the outbox later; each with the sinks that took it (or not) and when. Alerts held
//! back for another reason (rate limit, `--after`, a parent down, a duplicate) told nobody
//! and are not events.

use super::alert::{Alert, Suppressed};
use crate::history::{AlertEvent, Event, SinkTook};

/// The events of one run: the alerts raised or held (`alerts`), and those sent again from
/// the outbox (`retried`), stamped `stamp`.
pub fn events(retried: &[Alert], alerts: &[Alert], stamp: &str) -> Vec<AlertEvent> {
    let mut out = Vec::new();
    for a in retried {
        let took: Vec<SinkTook> = took(a, stamp).into_iter().filter(|s| s.delivered).collect();
        if !took.is_empty() {
            let mut e = event(a, Event::Delivered, stamp);
            e.sinks = took;
            out.push(e);
        }
    }
    for a in alerts {
        // An acknowledgement's announcement: its `acknowledged` event is written where it is taken.
        if a.extra.contains_key("acknowledged") {
            continue;
        }
        let kind = match a.suppressed {
            Some(Suppressed::Silenced) => Event::Silenced,
            Some(_) => continue,
            None if a.is_resolved() => Event::Resolved,
            None if a.repeat => Event::Repeated,
            None if a.extra.contains_key("escalate_to") => Event::Paged,
            // Worse than the level already announced in the incident.
            None if a.was.is_some() => Event::Escalated,
            None => Event::Fired,
        };
        let mut e = event(a, kind, stamp);
        e.sinks = took(a, stamp);
        out.push(e);
    }
    out
}

fn event(a: &Alert, kind: Event, stamp: &str) -> AlertEvent {
    let mut e = AlertEvent::new(kind, a.subject.as_deref().unwrap_or(""), a.name(), stamp);
    e.topic.clone_from(&a.topic);
    e.level = Some(a.level);
    e.title.clone_from(&a.title);
    e.since.clone_from(&a.since);
    e
}

fn took(a: &Alert, stamp: &str) -> Vec<SinkTook> {
    a.sinks
        .iter()
        .filter(|s| !s.dry_run)
        .map(|s| SinkTook { sink: s.sink.clone(), delivered: s.delivered, error: s.error.clone(), at: stamp.into() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::alert::{AlertStatus, SinkResult};
    use crate::record::Level;

    fn alert(subject: &str, level: Level) -> Alert {
        let mut a = Alert::new("t", level, "api is down", "down", "x");
        a.subject = Some(subject.into());
        a.labels = Some(serde_json::json!({"kind": "check", "name": "api"}));
        a
    }

    #[test]
    fn each_alert_is_one_event_with_its_sinks() {
        let mut fired = alert("check:api", Level::Error);
        fired.sinks = vec![
            SinkResult { sink: "webhook".into(), delivered: true, error: None, dry_run: false, rendered: None },
            SinkResult {
                sink: "telegram".into(),
                delivered: false,
                error: Some("HTTP 502".into()),
                dry_run: false,
                rendered: None,
            },
        ];
        let mut repeat = alert("check:db", Level::Error);
        repeat.repeat = true;
        let mut resolved = alert("check:web", Level::Recovery);
        resolved.status = AlertStatus::Resolved;
        let mut silenced = alert("check:x", Level::Error);
        silenced.suppressed = Some(Suppressed::Silenced);
        let mut limited = alert("check:y", Level::Error);
        limited.suppressed = Some(Suppressed::RateLimit);
        let mut late = alert("check:z", Level::Error);
        late.sinks =
            vec![SinkResult { sink: "webhook".into(), delivered: true, error: None, dry_run: false, rendered: None }];
        let ev = events(&[late], &[fired, repeat, resolved, silenced, limited], "2026-11-23T10:00:00.000Z");
        let kinds: Vec<Event> = ev.iter().map(|e| e.event).collect();
        assert_eq!(kinds, [Event::Delivered, Event::Fired, Event::Repeated, Event::Resolved, Event::Silenced]);
        assert_eq!(ev[1].name, "api");
        assert_eq!(ev[1].sinks.len(), 2);
        assert_eq!((ev[1].sinks[1].delivered, ev[1].sinks[1].at.as_str()), (false, "2026-11-23T10:00:00.000Z"));
    }
}
