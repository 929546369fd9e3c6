//! `notify --state nats://…/BUCKET`: notify run by two or three hubs, one acting at a time.
//!
//! The hubs share notify's memory in JetStream key-value buckets ([`crate::fleet::kv`]): the
//! subject states, topic rates, outbox and quorum view in one value (`memory`), the
//! silences in another (`silences`, which people change from any hub). Each hub keeps a
//! local copy under `state/hub/BUCKET/` that the run works on as the batch works on
//! `state/`: a run reads the shared values into it first and writes them back when it has
//! saved, the memory by compare-and-set on the revision it read.
//!
//! Only the hub holding the lease runs: a batch run on a standby says who leads and ends; a
//! resident one (`--follow`) waits for the lease before it reads anything. A leader that
//! can no longer renew the lease stops before the server lets another hub take it, and
//! ends with an error (its supervisor starts it again, as a standby).
//!
//! Every alert raised under a hub carries an `id` that every hub computes alike from the
//! alert and the memory's revision it was decided on: the subject (or, for an alert
//! without one, its topic and text), firing or resolved, its level, a reminder or not, the
//! escalation step. Before a sink is given an alert, the hub claims (alert, sink) in the
//! claims bucket; after the sink took it, the claim says `sent`. A hub taking over decides
//! again from the same memory and the same records (they were not acknowledged), finds the
//! claims, and sends only what was not sent. The one case that sends twice: the leader dies
//! after the sink took an alert and before the claim said so (one round trip to the
//! server); the new leader sends it again. Nothing is lost.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::Files;
use super::ack::{Done, Request};
use super::alert::Alert;
use super::sinks::Sink;
use crate::entry::Diag;
use crate::error::{Error, Result};
use crate::fleet::NatsUrl;
use crate::fleet::kv::{Claim, Read, Shared, Wrote};
use crate::store;

/// The files that make up the `memory` value.
const MEMORY: [&str; 4] = ["notify.json", "alert-rate.json", "outbox.jsonl", "notify-quorum.json"];
const SILENCES: &str = "silences.json";
/// The key of the acknowledgements waiting for the leader.
const REQUESTS: &str = "requests";

/// The lease's TTL when `--lease-ttl` does not say.
pub const DEFAULT_LEASE_TTL_S: u64 = 15;

/// One hub of several running notify on shared memory.
pub(crate) struct Hub {
    shared: Shared,
    /// The local copy of the memory.
    dir: PathBuf,
    /// The revisions read last.
    memory_rev: Cell<u64>,
    silences_rev: Cell<u64>,
    /// The silences as read last (a run rewrites them only when it changed them).
    silences_read: RefCell<Option<Vec<u8>>>,
    /// The acknowledgements asked for from other machines that this run applied (taken
    /// off the list once the memory that holds them is written).
    applied: RefCell<Vec<Request>>,
    /// Whether the memory was read at least once (later reads skip what did not change:
    /// the local copy is then the newest, and holds what the loop saved since).
    pulled: Cell<bool>,
}

impl Hub {
    /// Connect to the buckets of `url` as the hub `host`, with a lease of `ttl`.
    pub fn open(url: &str, state_dir: &Path, host: &str, ttl: Duration) -> Result<Hub> {
        let url = NatsUrl::parse(url)?;
        if url.durable.is_some() {
            return Err(Error::usage(format!(
                "--state {url}: the shared memory is a bucket, not a consumer (no ?durable=)"
            )));
        }
        let me = format!("{host}/{}", std::process::id());
        let shared = Shared::open(&url, &me, ttl)?;
        let dir = state_dir.join("hub").join(&url.subject);
        store::ensure_dir(&dir)?;
        Ok(Hub {
            shared,
            dir,
            memory_rev: Cell::new(0),
            silences_rev: Cell::new(0),
            silences_read: RefCell::new(None),
            pulled: Cell::new(false),
            applied: RefCell::new(Vec::new()),
        })
    }

    /// The hub of `--state`, if given: this host (`--host`, else the system's name) with
    /// the lease of `--lease-ttl`.
    pub fn from_cli(cli: &super::cli::Cli, state_dir: &Path) -> Result<Option<Hub>> {
        let Some(url) = &cli.state else { return Ok(None) };
        let me = crate::util::host::get().map(String::from).unwrap_or_else(crate::util::host::system);
        Hub::open(url, state_dir, &me, Duration::from_secs(cli.lease_ttl)).map(Some)
    }

    /// Before a run reads anything. A hub acts only while it leads: a resident standby
    /// waits for the lease, a batch one says who leads and ends (`Some(status)`); then the
    /// shared memory is read. `ack` and `state` take care of themselves.
    pub fn before_reading(
        &self,
        cli: &super::cli::Cli,
        files: &Files,
        diag: &Diag,
    ) -> Result<Option<crate::error::Status>> {
        use super::cli::Cmd;
        let batch_run = !cli.follow && !matches!(cli.cmd, Some(Cmd::Ack(_)) | Some(Cmd::State));
        if cli.follow {
            self.wait_to_lead(diag, poll_every(Duration::from_secs(cli.lease_ttl)))?;
        } else if batch_run
            && !cli.dry_run
            && let Err(holder) = self.try_lead()?
        {
            if matches!(cli.cmd, Some(Cmd::Send(_))) {
                return Err(Error::other(format!(
                    "hub {holder} leads: send the alert there, or put it on the stream the hubs read"
                )));
            }
            diag.warn(format_args!("standby: {holder} leads; this hub does nothing"));
            return Ok(Some(crate::error::Status::Ok));
        }
        if batch_run || cli.follow {
            self.pull(files)?;
        }
        Ok(None)
    }

    /// The directory of the local copy (notify's files live there under a hub).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Take the lease if it is free; `Err(holder)` names who has it.
    pub fn try_lead(&self) -> Result<std::result::Result<(), String>> {
        if self.shared.try_lead()? {
            return Ok(Ok(()));
        }
        Ok(Err(self.shared.holder()?.unwrap_or_else(|| "another hub".into())))
    }

    /// Wait until this hub leads (a resident standby), saying once who leads meanwhile. It
    /// outlives an outage of the servers: it says so once and asks again.
    pub fn wait_to_lead(&self, diag: &Diag, every: Duration) -> Result<()> {
        let mut said = None;
        loop {
            let (news, now) = match self.try_lead() {
                Ok(Ok(())) => {
                    diag.warn(format_args!("hub {}: leading", self.shared.me()));
                    return Ok(());
                }
                Ok(Err(holder)) => (format!("hub {}: standby while {holder} leads", self.shared.me()), holder),
                Err(e) => (format!("hub {}: standby, the lease cannot be read: {e}", self.shared.me()), e.to_string()),
            };
            if said.as_ref() != Some(&now) {
                diag.warn(news);
                said = Some(now);
            }
            std::thread::sleep(every);
        }
    }

    /// Give the lease up (the end of a batch run).
    pub fn release(&self) {
        self.shared.release();
    }

    /// An error when this hub may not act (it does not lead any more).
    pub fn check(&self) -> Result<()> {
        match self.shared.lost() {
            None => Ok(()),
            Some(why) => Err(Error::other(format!("hub {}: stepping down: {why}", self.shared.me()))),
        }
    }

    /// Read the shared memory and silences into the local copy (as `files` names them).
    pub fn pull(&self, files: &Files) -> Result<()> {
        let memory = self.shared.read("memory")?;
        if self.pulled.get() && memory.revision == self.memory_rev.get() {
            return self.pull_silences(files);
        }
        let parts: Map<String, Value> = match &memory.bytes {
            Some(b) => serde_json::from_slice(b)
                .map_err(|e| Error::other(format!("the shared memory is unreadable ({e}); not acting on it")))?,
            None => Map::new(),
        };
        for name in MEMORY {
            let path = self.path(files, name);
            match parts.get(name).and_then(Value::as_str) {
                Some(text) => store::atomic_write_as(&path, text.as_bytes(), store::Perm::Private)?,
                None => remove(&path)?,
            }
        }
        self.memory_rev.set(memory.revision);
        self.pulled.set(true);
        self.pull_silences(files)
    }

    /// [`Hub::pull`] for a command that only shows (`state`, `outbox list`, `silence
    /// list`): under the local lock, so a run of this hub is not written under.
    pub fn pull_locked(&self, files: &Files) -> Result<()> {
        let mut lock = store::Lock::for_file(&files.state)?;
        let _held = lock.acquire()?;
        self.pull(files)
    }

    fn pull_silences(&self, files: &Files) -> Result<()> {
        let Read { bytes, revision } = self.shared.read("silences")?;
        if self.pulled.get() && revision != 0 && revision == self.silences_rev.get() {
            return Ok(());
        }
        match &bytes {
            Some(b) => store::atomic_write_as(&files.silences, b, store::Perm::Private)?,
            None => remove(&files.silences)?,
        }
        self.silences_rev.set(revision);
        *self.silences_read.borrow_mut() = bytes;
        Ok(())
    }

    fn path(&self, files: &Files, name: &str) -> PathBuf {
        match name {
            "notify.json" => files.state.clone(),
            "alert-rate.json" => files.rates.clone(),
            "outbox.jsonl" => files.outbox.clone(),
            SILENCES => files.silences.clone(),
            other => self.dir.join(other),
        }
    }

    /// Write the local copy back: the silences when the run changed them (a person who
    /// changed them meanwhile wins; the run's change waits for the next run), then the
    /// memory, which only the leader writes.
    pub fn push(&self, files: &Files, diag: &Diag) -> Result<()> {
        self.check()?;
        self.push_silences(files, diag)?;
        let mut parts = Map::new();
        for name in MEMORY {
            let path = self.path(files, name);
            match std::fs::read(&path) {
                Ok(b) => {
                    parts.insert(name.to_string(), Value::String(String::from_utf8_lossy(&b).into_owned()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::path("cannot read", &path, e)),
            }
        }
        let bytes = serde_json::to_vec(&parts).map_err(|e| Error::other(format!("cannot encode the memory: {e}")))?;
        match self.shared.write("memory", &bytes, self.memory_rev.get())? {
            Wrote::Done(rev) => {
                self.memory_rev.set(rev);
                self.forget_applied();
                Ok(())
            }
            Wrote::Conflict => Err(Error::other(format!(
                "hub {}: stepping down: another hub wrote the shared memory meanwhile; this run's changes are not saved",
                self.shared.me()
            ))),
        }
    }

    fn push_silences(&self, files: &Files, diag: &Diag) -> Result<()> {
        let now = match std::fs::read(&files.silences) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::path("cannot read", &files.silences, e)),
        };
        if now == *self.silences_read.borrow() {
            return Ok(());
        }
        let Some(bytes) = now else { return Ok(()) };
        match self.shared.write("silences", &bytes, self.silences_rev.get())? {
            Wrote::Done(rev) => {
                self.silences_rev.set(rev);
                *self.silences_read.borrow_mut() = Some(bytes);
            }
            Wrote::Conflict => {
                diag.warn("the silences were changed meanwhile; this run's change to them waits for the next run");
                self.pull_silences(files)?;
            }
        }
        Ok(())
    }

    /// A change people make to the silences from any hub (`notify silence …`): read them,
    /// let `change` edit the local copy, write them back; again when someone else wrote them
    /// meanwhile.
    pub fn edit_silences<T>(&self, files: &Files, mut change: impl FnMut() -> Result<T>) -> Result<T> {
        for _ in 0..10 {
            self.pull_silences(files)?;
            let r = change()?;
            let bytes = match std::fs::read(&files.silences) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(r),
                Err(e) => return Err(Error::path("cannot read", &files.silences, e)),
            };
            if Some(&bytes) == self.silences_read.borrow().as_ref() {
                return Ok(r);
            }
            if let Wrote::Done(rev) = self.shared.write("silences", &bytes, self.silences_rev.get())? {
                self.silences_rev.set(rev);
                return Ok(r);
            }
        }
        Err(Error::other("the silences keep changing under this command; try again"))
    }

    /// Hand `notify ack` to the hub that leads: it waits in the shared memory (`requests`)
    /// and is applied by the leader's next run.
    pub fn queue_ack(&self, r: &Request) -> Result<()> {
        for _ in 0..10 {
            let Read { bytes, revision } = self.shared.read(REQUESTS)?;
            let mut list: Vec<Request> = bytes.and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
            list.push(r.clone());
            let bytes = serde_json::to_vec(&list).map_err(|e| Error::other(e.to_string()))?;
            if let Wrote::Done(_) = self.shared.write(REQUESTS, &bytes, revision)? {
                return Ok(());
            }
        }
        Err(Error::other("the requests for the leading hub keep changing; try again"))
    }

    /// Apply the acknowledgements other machines asked for (see [`Hub::queue_ack`]): the
    /// history events and the announcements, as the sinks' acknowledgements give.
    pub fn apply_requests(&self, st: &mut super::state::State, now: time::OffsetDateTime, diag: &Diag) -> Done {
        let mut all = Done::default();
        let list: Vec<Request> = match self.shared.read(REQUESTS) {
            Ok(Read { bytes: Some(b), .. }) => serde_json::from_slice(&b).unwrap_or_default(),
            Ok(_) => Vec::new(),
            Err(e) => {
                diag.warn(format_args!("{e}; acknowledgements asked for elsewhere wait for the next run"));
                Vec::new()
            }
        };
        for r in &list {
            match r.wanted() {
                Ok(wanted) => {
                    let done = super::ack::acknowledge(st, &wanted, &r.ack(), now);
                    all.events.extend(done.events);
                    all.announcements.extend(done.announcements);
                }
                Err(e) => diag.warn(format_args!("an acknowledgement asked for by {} is left out: {e}", r.by)),
            }
        }
        *self.applied.borrow_mut() = list;
        all
    }

    /// Take the applied requests off the list (those asked for meanwhile stay).
    fn forget_applied(&self) {
        let applied = std::mem::take(&mut *self.applied.borrow_mut());
        if applied.is_empty() {
            return;
        }
        for _ in 0..10 {
            let Ok(Read { bytes, revision }) = self.shared.read(REQUESTS) else { return };
            let list: Vec<Request> = bytes.and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
            let left: Vec<&Request> = list.iter().filter(|r| !applied.contains(r)).collect();
            if left.len() == list.len() {
                return;
            }
            let Ok(bytes) = serde_json::to_vec(&left) else { return };
            if let Ok(Wrote::Done(_)) = self.shared.write(REQUESTS, &bytes, revision) {
                return;
            }
        }
    }

    /// Give every alert its `id` (see the module docs).
    pub fn name_alerts(&self, alerts: &mut [Alert]) {
        let generation = self.memory_rev.get();
        for a in alerts.iter_mut().filter(|a| !a.extra.contains_key("id")) {
            let id = alert_id(a, generation);
            a.extra.insert("id".into(), json!(id));
        }
    }

    /// Give `sink` the alerts of `batch` that no hub has given it yet; one result per
    /// alert, in order (an alert sent before counts as delivered).
    pub fn deliver(
        &self,
        sink: &mut dyn Sink,
        batch: &[&Alert],
        delayed: bool,
        diag: &Diag,
    ) -> Vec<std::result::Result<(), String>> {
        if let Err(e) = self.check() {
            return vec![Err(e.to_string()); batch.len()];
        }
        let keys: Vec<String> = batch.iter().map(|a| claim_key(a, sink.name())).collect();
        let claims = self.shared.claim(&keys);
        let mut results: Vec<Option<std::result::Result<(), String>>> = vec![None; batch.len()];
        let mut go = Vec::new();
        let mut unchecked = None;
        for (i, c) in claims.iter().enumerate() {
            match c {
                Claim::Go(_) => go.push(i),
                Claim::Sent => results[i] = Some(Ok(())),
                Claim::Busy(holder) => {
                    results[i] = Some(Err(format!("{holder} is sending it (kept in the outbox until that is known)")))
                }
                Claim::Unchecked(why) => {
                    unchecked.get_or_insert((0, why)).0 += 1;
                    go.push(i);
                }
            }
        }
        // Said once per batch: a bucket that cannot be reached fails every claim alike.
        if let Some((n, why)) = unchecked {
            diag.warn(format_args!(
                "{}: sending {n} alert(s) without a claim ({why}): a failover may repeat them",
                sink.name()
            ));
        }
        if !go.is_empty() {
            let send: Vec<&Alert> = go.iter().map(|&i| batch[i]).collect();
            let sent = sink.deliver(&send, delayed);
            let mut done = Vec::new();
            for (&i, r) in go.iter().zip(sent) {
                if let Claim::Go(rev) = claims[i] {
                    done.push((keys[i].clone(), rev, r.is_ok()));
                }
                results[i] = Some(r);
            }
            if let Err(e) = self.shared.settle(&done) {
                diag.warn(format_args!("{e}: a failover now may repeat them"));
            }
        }
        results.into_iter().map(|r| r.unwrap_or_else(|| Err("not sent".into()))).collect()
    }
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::path("cannot remove", path, e)),
    }
}

/// The id of an alert decided on the memory's revision `generation`: the same on every
/// hub that decides it from the same memory and records.
pub(crate) fn alert_id(a: &Alert, generation: u64) -> String {
    let text = |k: &str| if a.subject.is_some() { Value::Null } else { a.extra.get(k).cloned().unwrap_or(Value::Null) };
    let what = json!({
        "generation": generation,
        "subject": a.subject,
        "topic": if a.subject.is_some() { Value::Null } else { json!(a.topic) },
        "title": if a.subject.is_some() { Value::Null } else { json!(a.title) },
        "message": if a.subject.is_some() { Value::Null } else { json!(a.message) },
        "body": text("body"),
        "status": a.status,
        "level": a.level,
        "repeat": a.repeat,
        "escalation": a.extra.get("escalation"),
        "escalate_to": a.extra.get("escalate_to"),
        "acknowledged": a.extra.get("acknowledged").is_some(),
    });
    let digest = Sha256::digest(what.to_string().as_bytes());
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// The claim of (alert, sink): the alert's id and the sink.
fn claim_key(a: &Alert, sink: &str) -> String {
    let id = a.extra.get("id").and_then(Value::as_str).map(String::from).unwrap_or_else(|| alert_id(a, 0));
    format!("{id}.{sink}")
}

/// How often a resident standby asks for the lease.
pub(crate) fn poll_every(ttl: Duration) -> Duration {
    (ttl / 10).clamp(Duration::from_millis(200), Duration::from_secs(2))
}

/// A command that changes the shared memory (`notify outbox drop`, `notify ack` while no
/// hub leads): under a hub it acts as the leader for a moment (an error names the hub that
/// leads), on the memory as shared, and writes it back; without a hub it is just run.
pub(crate) fn with_lease<T>(hub: Option<&Hub>, files: &Files, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let Some(h) = hub else { return f() };
    if let Err(holder) = h.try_lead()? {
        return Err(Error::other(format!(
            "{what}: hub {holder} leads and keeps the shared memory; run it while no hub leads"
        )));
    }
    let r = h.pull(files).and_then(|()| f()).and_then(|v| h.push(files, &Diag::stderr("notify")).map(|()| v));
    h.release();
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Level;

    #[test]
    fn an_alert_id_ignores_what_differs_between_hubs_and_keeps_what_makes_it_another_alert() {
        let mut a =
            Alert::new("check:api", Level::Critical, "api is down", "down: timeout after 5.0s", "2026-12-06T10:00:00Z");
        a.subject = Some("check:api".into());
        let mut b = a.clone();
        b.message = "down: timeout after 5.1s".into();
        b.timestamp = "2026-12-06T10:00:03Z".into();
        b.since = Some("2026-12-06T10:00:03Z".into());
        assert_eq!(alert_id(&a, 7), alert_id(&b, 7), "decided by another hub a moment later");
        assert_ne!(alert_id(&a, 7), alert_id(&a, 8), "decided on another memory");
        let mut r = a.clone();
        r.repeat = true;
        assert_ne!(alert_id(&a, 7), alert_id(&r, 7), "a reminder");
        let mut w = a.clone();
        w.level = Level::Warning;
        assert_ne!(alert_id(&a, 7), alert_id(&w, 7));
        let loose = Alert::new("backup", Level::Error, "backup failed", "disk full", "2026-12-06T10:00:00Z");
        let mut other = loose.clone();
        other.message = "no route".into();
        assert_ne!(alert_id(&loose, 7), alert_id(&other, 7), "alerts without a subject differ by their text");
        assert_eq!(alert_id(&a, 7).len(), 24);
    }
}
