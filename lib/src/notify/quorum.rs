//! Records from several hosts: `(host, name)` subjects and quorum.
//!
//! A record whose `host` is another host's (the records a hub reads from a JetStream
//! subject) is about that host's subject: its name becomes `name@host` before the rules
//! read it, so `web` seen from `h1` and from `h2` are two subjects (`check:web@h1`,
//! `check:web@h2`). A record without `host`, or with this host's, is unchanged: a single
//! host's alerts are what they always were.
//!
//! With a quorum (`notify --quorum K`, or `"quorum": K` on the service in services.json) a
//! service's check records from all hosts make one subject, `check:web`: it is down only when
//! at least K hosts' latest records within the window (`--quorum-window`, 10 minutes by
//! default) say down, and the alert names the places that see it down. The latest record of
//! each (service, host) is kept in `state/notify-quorum.json`, so the hosts' records may
//! arrive in different runs.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::clock;
use crate::config::Config;
use crate::error::Result;
use crate::record::str_field;
use crate::store;

/// What one host said last about one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Place {
    status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    detail: String,
    timestamp: String,
}

/// The quorum rules and the places' latest records; see the module docs.
pub(crate) struct Quorum {
    local: String,
    all: Option<usize>,
    per_service: HashMap<String, usize>,
    window_s: i64,
    path: PathBuf,
    /// service → host → latest record.
    places: BTreeMap<String, BTreeMap<String, Place>>,
    dirty: bool,
    read_only: bool,
}

impl Quorum {
    /// The rules from the command line and services.json, and the places from `state_dir`.
    pub fn load(state_dir: &std::path::Path, all: Option<usize>, window_s: u64, config: &Config) -> Result<Quorum> {
        let per_service = config.quorums()?;
        let path = state_dir.join("notify-quorum.json");
        let places = if all.is_some() || !per_service.is_empty() {
            store::read_json(&path, store::kinds::NOTIFY_SMALL)?.unwrap_or_default()
        } else {
            BTreeMap::new()
        };
        let local = crate::util::host::get().unwrap_or("").to_string();
        Ok(Quorum { local, all, per_service, window_s: window_s as i64, path, places, dirty: false, read_only: false })
    }

    fn quorum_of(&self, name: &str) -> Option<usize> {
        self.per_service.get(name).copied().or(self.all)
    }

    /// The record the rules read in place of `v`: `v` itself, `name@host` for another
    /// host's, or the service's quorum verdict for a check under a quorum.
    pub fn rewrite(&mut self, mut v: Value, now: OffsetDateTime) -> Value {
        let host = str_field(&v, "host").to_string();
        let kind = crate::record::kind_of(&v);
        let name = str_field(&v, "name").to_string();
        if kind == crate::record::Kind::Check
            && !name.is_empty()
            && let Some(k) = self.quorum_of(&name)
        {
            let place = if host.is_empty() { self.local.clone() } else { host };
            return self.verdict(&v, name, place, k, now);
        }
        if host.is_empty() || host == self.local {
            return v;
        }
        let renamed = ["name", "subject", "agent"].into_iter().find(|k| v.get(*k).is_some_and(Value::is_string));
        if let (Some(key), Value::Object(m)) = (renamed, &mut v) {
            let n = m.get(key).and_then(Value::as_str).unwrap_or("").to_string();
            m.insert(key.to_string(), Value::String(format!("{n}@{host}")));
        }
        v
    }

    fn verdict(&mut self, v: &Value, name: String, place: String, k: usize, now: OffsetDateTime) -> Value {
        let status = str_field(v, "status").to_ascii_lowercase();
        let ts = str_field(v, "timestamp").to_string();
        let entry = Place { status, detail: str_field(v, "detail").to_string(), timestamp: ts.clone() };
        let places = self.places.entry(name.clone()).or_default();
        let newer = places.get(&place).is_none_or(|p| clock::parse_ts(&p.timestamp) <= clock::parse_ts(&ts));
        if newer {
            places.insert(place, entry);
            self.dirty = true;
        }
        let since = now - time::Duration::seconds(self.window_s);
        let recent: Vec<(&String, &Place)> =
            places.iter().filter(|(_, p)| clock::parse_ts(&p.timestamp).is_some_and(|t| t >= since)).collect();
        let newest = recent
            .iter()
            .filter_map(|(_, p)| clock::parse_ts(&p.timestamp).map(|t| (t, &p.timestamp)))
            .max_by_key(|(t, _)| *t)
            .filter(|(t, _)| clock::parse_ts(&ts).is_none_or(|own| *t > own))
            .map(|(_, s)| s.clone());
        let down: Vec<&(&String, &Place)> = recent.iter().filter(|(_, p)| p.status == "down").collect();
        let names = down.iter().map(|(h, _)| h.as_str()).collect::<Vec<_>>().join(", ");
        let (status, detail) = if down.len() >= k {
            let why = down.first().map(|(_, p)| p.detail.as_str()).unwrap_or("");
            ("down", format!("down from {} of {} places ({names}; quorum {k}): {why}", down.len(), recent.len()))
        } else if down.is_empty() {
            ("up", format!("up from {} places (quorum {k})", recent.len()))
        } else {
            ("up", format!("down from {} of {} places only ({names}; quorum {k})", down.len(), recent.len()))
        };
        let mut out = serde_json::json!({
            "kind": "check",
            "name": name,
            "status": status,
            "detail": detail,
            "quorum": k,
            "places_down": down.iter().map(|(h, _)| h.as_str()).collect::<Vec<_>>(),
            "places": recent.len(),
            // The newest of the places' records: a host whose clock lags, or a record a
            // stream delivers again late, never makes the verdict look older than the last
            // one (notify leaves out records older than the newest of a subject).
            "timestamp": newest.unwrap_or(ts),
        });
        if let (Some(t), Value::Object(m)) = (v.get("type"), &mut out) {
            m.insert("type".into(), t.clone());
        }
        out
    }

    /// Never save (`--dry-run`).
    pub fn read_only(&mut self) {
        self.read_only = true;
    }

    /// Save the places when they changed.
    pub fn save(&mut self) -> Result<()> {
        if !self.dirty || self.read_only {
            return Ok(());
        }
        store::write_json_as(&self.path, &self.places, store::Perm::Private)?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(all: Option<usize>) -> Quorum {
        Quorum {
            local: "hub".into(),
            all,
            per_service: HashMap::new(),
            window_s: 600,
            path: PathBuf::from("/nonexistent/q.json"),
            places: BTreeMap::new(),
            dirty: false,
            read_only: true,
        }
    }

    fn check(host: &str, status: &str, ts: &str) -> Value {
        json!({"kind":"check","name":"web","status":status,"detail":"refused","timestamp":ts,"host":host})
    }

    #[test]
    fn another_hosts_subject_is_its_own_and_the_local_one_unchanged() {
        let now = clock::parse_ts("2026-12-06T07:00:00Z").unwrap();
        let mut q = q(None);
        let v = q.rewrite(check("h1", "down", "2026-12-06T07:00:00Z"), now);
        assert_eq!(v["name"], "web@h1");
        let v = q.rewrite(check("hub", "down", "2026-12-06T07:00:00Z"), now);
        assert_eq!(v["name"], "web");
        let v = q.rewrite(json!({"kind":"check","name":"web","status":"up"}), now);
        assert_eq!(v["name"], "web");
    }

    #[test]
    fn down_only_from_k_places_within_the_window() {
        let now = clock::parse_ts("2026-12-06T07:00:00Z").unwrap();
        let mut q = q(Some(2));
        let v = q.rewrite(check("h1", "down", "2026-12-06T06:59:00Z"), now);
        assert_eq!((v["name"].as_str(), v["status"].as_str()), (Some("web"), Some("up")));
        // An old record of h2 is outside the window: it does not count.
        let v = q.rewrite(check("h2", "down", "2026-12-06T06:40:00Z"), now);
        assert_eq!(v["status"], "up");
        let v = q.rewrite(check("h3", "down", "2026-12-06T06:59:30Z"), now);
        assert_eq!(v["status"], "down");
        assert_eq!(v["places_down"], json!(["h1", "h3"]));
        assert!(v["detail"].as_str().unwrap().starts_with("down from 2 of 2 places (h1, h3; quorum 2)"));
        // An older record never replaces a newer one.
        q.rewrite(check("h1", "up", "2026-12-06T06:58:00Z"), now);
        let v = q.rewrite(check("h1", "up", "2026-12-06T06:59:59Z"), now);
        assert_eq!(v["status"], "up");
    }

    #[test]
    fn the_verdict_carries_the_newest_places_time_so_a_lagging_clock_is_not_left_out() {
        // h2's clock is a minute behind: its record, written after h1's, says 06:59:00.
        // The verdict it brings is as new as the newest record it rests on.
        let now = clock::parse_ts("2026-12-06T07:00:30Z").unwrap();
        let mut q = q(Some(2));
        let v = q.rewrite(check("h1", "down", "2026-12-06T07:00:00Z"), now);
        assert_eq!((v["status"].as_str(), v["timestamp"].as_str()), (Some("up"), Some("2026-12-06T07:00:00Z")));
        let v = q.rewrite(check("h2", "down", "2026-12-06T06:59:00Z"), now);
        assert_eq!((v["status"].as_str(), v["timestamp"].as_str()), (Some("down"), Some("2026-12-06T07:00:00Z")));
        // Through notify: the lagging host's record makes the alert, not nothing.
        let mut st = super::super::state::State::default();
        let mut input = super::super::state::Input::default();
        for line in [check("h1", "down", "2026-12-06T07:00:00Z"), check("h2", "down", "2026-12-06T06:59:00Z")] {
            for o in super::super::rules::observe(&q.rewrite(line, now)).unwrap() {
                input.rule(o);
            }
        }
        let p = super::super::state::Policy {
            repeat_interval_s: 3600,
            rate_limit_s: 0,
            alert_on_recovery: true,
            after: 1,
            newest_wins: true,
        };
        let mut rates = super::super::state::Rates::default();
        let d = super::super::state::evaluate(&mut st, &mut rates, input, &Default::default(), p, now);
        assert_eq!(d.alerts.len(), 1, "{:?}", d.alerts);
    }
}
