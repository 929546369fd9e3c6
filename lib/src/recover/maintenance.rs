//! Standing still in maintenance windows: a silence in force (`state/silences.json`, made by
//! `notify silence add`) that covers a service and says `maintenance: {"recover": false}`,
//! or any silence in force covering a service whose own settings say
//! `"maintenance": {"recover": false}`, keeps recover from restarting it: the service gets a
//! `skipped` recovery record saying which window and until when.

use std::io::Write;

use time::OffsetDateTime;

use super::{Book, Outcome, Recover};
use crate::calendar::maintenance::{self, Window};
use crate::clock;
use crate::config::Service;
use crate::entry::Diag;
use crate::error::Result;
use crate::restart::Policy;

/// Does the service's own setting say recover stands still in its silences?
fn service_says_still(svc: &Service) -> bool {
    svc.raw.get("maintenance").and_then(|m| m.get("recover")).and_then(serde_json::Value::as_bool).is_some_and(|r| !r)
}

impl Recover<'_> {
    /// The maintenance windows (read once per walk; a file that cannot be read is said and
    /// stops no restart).
    pub(super) fn windows(&self, diag: &Diag) -> Vec<Window> {
        let Some(dir) = self.settings.silences_dir.as_ref() else { return Vec::new() };
        match maintenance::load(dir) {
            Ok((windows, warnings)) => {
                for w in warnings {
                    diag.warn(w);
                }
                windows
            }
            Err(e) => {
                diag.warn(format_args!("{e}; maintenance windows are not known"));
                Vec::new()
            }
        }
    }

    /// The window recover stands still in for this service now, of `windows`: why, and until
    /// when.
    pub(super) fn standing_still(&self, windows: &[Window], svc: &Service) -> Option<(String, OffsetDateTime)> {
        let now = self.clock.now();
        let own = service_says_still(svc);
        windows.iter().filter(|w| w.covers(&svc.name)).find_map(|w| {
            let still = own || w.maintenance.is_some_and(|m| !m.recover);
            let (_, end) = w.in_force(now).filter(|_| still)?;
            Some((format!("in a maintenance window ({}) until {}", w.label(), clock::fmt_ts(end)), end))
        })
    }

    /// The window recover stands still in for this service now (the file read afresh).
    pub(super) fn maintenance(&self, svc: &Service, diag: &Diag) -> Option<(String, OffsetDateTime)> {
        self.standing_still(&self.windows(diag), svc)
    }

    /// Report a service left alone in a maintenance window.
    pub(super) fn stand_still(
        &mut self,
        svc: &Service,
        policy: &Policy,
        why: &str,
        book: &mut Book<'_>,
        out: &mut dyn Write,
        diag: &Diag,
    ) -> Result<()> {
        let now = self.clock.unix();
        let entry = book.entries().get(&svc.name).cloned().unwrap_or_default();
        let mut rec = self.recovery(&svc.name, Outcome::Skipped, entry.attempts_at(policy, now), policy);
        rec.detail = format!("{}{why}; not restarted", self.dry_prefix());
        self.log(diag, &format!("SKIPPED: {} — {why}", svc.name));
        self.emit_recovery(out, &rec)
    }
}
