//! What the hubs share in JetStream key-value buckets: notify's memory, the lease that says
//! which hub acts, and the claims that keep an alert from being sent twice (docs/fleet.md).
//!
//! Three buckets per name `B` (the path of `--state nats://…/B`):
//!
//! - `B`: the memory, one gzip-compressed value per key (`memory`, `silences`), each
//!   rewritten by compare-and-set on the revision that was read, so a writer that read an
//!   older value fails instead of overwriting.
//! - `B-lease`: the key `leader`, whose bucket's age limit is the lease's TTL. A hub takes it
//!   with `create` (only when absent: expired or released) and keeps it by `update` on its
//!   revision every third of the TTL; it counts itself leader only until TTL − margin after
//!   the last renewal it *sent*, so it has stopped acting before the server lets another
//!   hub take the key.
//! - `B-sent`: one claim per (alert, sink), kept two days: `sending` before the sink is
//!   given the alert (`create`, so two hubs cannot both claim it), `sent` once it took it.
//!
//! The streams behind the buckets are made here the way the client makes them, with direct
//! gets off: every read goes to the stream's leader, never to a replica that lags.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use serde_json::{Value, json};

use super::conn;
use super::url::NatsUrl;
use crate::error::{Error, Result};

/// How long claims are kept: long past any failover.
const CLAIM_AGE: Duration = Duration::from_secs(2 * 86_400);

/// The key of the lease in its bucket.
const LEASE_KEY: &str = "leader";

/// One key's value as read: the bytes and the revision to compare against when writing.
#[derive(Debug, Clone, Default)]
pub struct Read {
    pub bytes: Option<Vec<u8>>,
    /// The revision read; 0 when the key was absent.
    pub revision: u64,
}

/// What a compare-and-set write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrote {
    /// Written; the new revision.
    Done(u64),
    /// Someone wrote the key after it was read: nothing was written.
    Conflict,
}

/// What a claim on (alert, sink) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Ours: send, then [`Shared::settle`] with this revision.
    Go(u64),
    /// Sent already (by this hub or another).
    Sent,
    /// Another hub has claimed it and is still at it.
    Busy(String),
    /// The claim could not be made (the bucket is unreachable): sending anyway, as
    /// at-least-once asks, with the reason.
    Unchecked(String),
}

/// The lease as this hub holds it.
#[derive(Debug)]
struct LeaseState {
    revision: u64,
    /// This hub acts only before this instant.
    deadline: Instant,
    /// Why it was lost, once it was.
    lost: Option<String>,
}

/// The hubs' shared buckets, on one connection.
pub struct Shared {
    url: NatsUrl,
    memory: kv::Store,
    lease: kv::Store,
    claims: kv::Store,
    /// The largest value the server takes.
    max_value: usize,
    ttl: Duration,
    me: String,
    held: Arc<Mutex<Option<LeaseState>>>,
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).and_then(|()| e.finish()).map_err(|e| Error::other(format!("cannot compress: {e}")))
}

fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

/// The stream behind bucket `name`, made as the client makes it (its `create_key_value`
/// asks the server for account details nats-server 2.9 does not give), direct gets off.
async fn bucket(
    js: &jetstream::Context,
    url: &NatsUrl,
    name: &str,
    max_age: Duration,
) -> Result<(kv::Store, Duration)> {
    let cfg = stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage: stream::StorageType::File,
        num_replicas: url.replicas,
        allow_rollup: true,
        deny_delete: true,
        deny_purge: false,
        allow_direct: false,
        discard: stream::DiscardPolicy::New,
        duplicate_window: max_age.min(Duration::from_secs(120)),
        ..Default::default()
    };
    let mut last = String::new();
    for _ in 0..5 {
        match js.get_or_create_stream(cfg.clone()).await {
            // A bucket made earlier keeps its own age limit: that one is the lease's TTL.
            Ok(mut st) => match js.get_key_value(name).await {
                Ok(s) => {
                    let age = st.info().await.map(|i| i.config.max_age).ok().filter(|a| !a.is_zero());
                    return Ok((s, age.unwrap_or(max_age)));
                }
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(conn::failed(&format!("cannot open the bucket {name} of"), url, last))
}

impl Shared {
    /// Connect and open (making them when absent) the three buckets of `url`'s name; `me`
    /// names this hub in the lease and the claims; `ttl` is the lease's.
    pub fn open(url: &NatsUrl, me: &str, ttl: Duration) -> Result<Shared> {
        let name = url.subject.clone();
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')) {
            return Err(Error::usage(format!(
                "{url}: '{name}' is not a bucket name (letters, digits, - and _; no dots)"
            )));
        }
        let u = url.clone();
        let (memory, lease, claims, max_value, ttl) = conn::runtime()?.block_on(async move {
            let client = conn::connect(&u, "pitcrew-hub").await?;
            let max_value = client.server_info().max_payload;
            let js = conn::context(client);
            let (memory, _) = bucket(&js, &u, &name, Duration::ZERO).await?;
            let (lease, ttl) = bucket(&js, &u, &format!("{name}-lease"), ttl).await?;
            let (claims, _) = bucket(&js, &u, &format!("{name}-sent"), CLAIM_AGE).await?;
            Ok::<_, Error>((memory, lease, claims, max_value, ttl))
        })?;
        Ok(Shared {
            url: url.clone(),
            memory,
            lease,
            claims,
            max_value,
            ttl,
            me: me.to_string(),
            held: Arc::new(Mutex::new(None)),
        })
    }

    /// This hub's name in the lease and the claims.
    pub fn me(&self) -> &str {
        &self.me
    }

    fn failed(&self, what: &str, e: impl std::fmt::Display) -> Error {
        conn::failed(what, &self.url, e)
    }

    /// Read `key` of the memory.
    pub fn read(&self, key: &str) -> Result<Read> {
        let store = self.memory.clone();
        let k = key.to_string();
        let entry = conn::runtime()?
            .block_on(async move { store.entry(k).await })
            .map_err(|e| self.failed(&format!("cannot read '{key}' from"), e))?;
        match entry {
            Some(e) if e.operation == Operation::Put => {
                let bytes = gunzip(&e.value).map_err(|err| self.failed(&format!("'{key}' is unreadable in"), err))?;
                Ok(Read { bytes: Some(bytes), revision: e.revision })
            }
            Some(e) => Ok(Read { bytes: None, revision: e.revision }),
            None => Ok(Read::default()),
        }
    }

    /// Write `key` of the memory if it is still at `revision` (0: absent or deleted).
    pub fn write(&self, key: &str, bytes: &[u8], revision: u64) -> Result<Wrote> {
        let value = gzip(bytes)?;
        if value.len() + 512 > self.max_value {
            return Err(self.failed(
                &format!("cannot write '{key}' to"),
                format!(
                    "{} bytes compressed, over the server's max_payload of {} (raise max_payload in the \
                     server's configuration, or keep fewer subjects with alerting.max_subjects)",
                    value.len(),
                    self.max_value
                ),
            ));
        }
        let store = self.memory.clone();
        let k = key.to_string();
        let r = conn::runtime()?.block_on(async move {
            if revision == 0 {
                match store.create(&k, Bytes::from(value)).await {
                    Ok(rev) => Ok(Wrote::Done(rev)),
                    Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(Wrote::Conflict),
                    Err(e) => Err(e.to_string()),
                }
            } else {
                match store.update(&k, Bytes::from(value), revision).await {
                    Ok(rev) => Ok(Wrote::Done(rev)),
                    Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(Wrote::Conflict),
                    Err(e) => Err(e.to_string()),
                }
            }
        });
        r.map_err(|e| self.failed(&format!("cannot write '{key}' to"), e))
    }

    /// Who holds the lease, if anyone: their name.
    pub fn holder(&self) -> Result<Option<String>> {
        let store = self.lease.clone();
        let entry = conn::runtime()?
            .block_on(async move { store.entry(LEASE_KEY).await })
            .map_err(|e| self.failed("cannot read the lease from", e))?;
        Ok(entry.filter(|e| e.operation == Operation::Put).map(|e| {
            serde_json::from_slice::<Value>(&e.value)
                .ok()
                .and_then(|v| v.get("holder").and_then(Value::as_str).map(String::from))
                .unwrap_or_else(|| "another hub".into())
        }))
    }

    fn lease_value(&self) -> Bytes {
        Bytes::from(json!({"holder": self.me, "pid": std::process::id()}).to_string())
    }

    /// The margin kept before the lease's TTL: a third of it, at most 5 s.
    fn margin(&self) -> Duration {
        (self.ttl / 3).min(Duration::from_secs(5))
    }

    /// Take the lease if nobody holds it; true when this hub now leads. A hub that leads
    /// keeps the lease renewed in the background until [`Shared::release`] or the process
    /// ends.
    pub fn try_lead(&self) -> Result<bool> {
        if self.leads() {
            return Ok(true);
        }
        let store = self.lease.clone();
        let value = self.lease_value();
        let sent = Instant::now();
        let r = conn::runtime()?.block_on(async move { store.create(LEASE_KEY, value).await });
        let revision = match r {
            Ok(rev) => rev,
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(self.failed("cannot take the lease in", e)),
        };
        let deadline = sent + self.ttl - self.margin();
        if let Ok(mut h) = self.held.lock() {
            *h = Some(LeaseState { revision, deadline, lost: None });
        }
        self.keep_renewed();
        Ok(true)
    }

    /// Renew the lease every third of the TTL until it is lost or released.
    fn keep_renewed(&self) {
        let (store, held, value, ttl, margin) =
            (self.lease.clone(), self.held.clone(), self.lease_value(), self.ttl, self.margin());
        let Ok(rt) = conn::runtime() else { return };
        rt.spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                let revision = match held.lock().ok().and_then(|h| h.as_ref().map(|s| (s.revision, s.lost.is_some()))) {
                    Some((rev, false)) => rev,
                    _ => return,
                };
                let sent = Instant::now();
                let r = tokio::time::timeout(ttl / 3, store.update(LEASE_KEY, value.clone(), revision)).await;
                // (renewed at this revision, still ours at this revision, lost)
                let (renewed, ours, lost) = match r {
                    Ok(Ok(rev)) => (Some(rev), None, false),
                    Ok(Err(e)) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                        // A renewal that timed out here may have been applied there: the
                        // lease is still ours when the key names this hub.
                        match tokio::time::timeout(ttl / 3, store.entry(LEASE_KEY)).await {
                            Ok(Ok(Some(e))) if e.operation == Operation::Put && e.value == value => {
                                (None, Some(e.revision), false)
                            }
                            _ => (None, None, true),
                        }
                    }
                    // Unreachable for now: the deadline is not moved; past it this hub
                    // stops acting by itself.
                    Ok(Err(_)) | Err(_) => (None, None, false),
                };
                let Ok(mut h) = held.lock() else { return };
                let Some(s) = h.as_mut() else { return };
                if let Some(rev) = renewed {
                    s.revision = rev;
                    s.deadline = sent + ttl - margin;
                } else if let Some(rev) = ours {
                    s.revision = rev;
                } else if lost {
                    s.lost = Some("another hub took the lease".into());
                    return;
                }
            }
        });
    }

    /// True while this hub leads: it took the lease and its deadline has not passed.
    pub fn leads(&self) -> bool {
        self.lost().is_none()
    }

    /// Why this hub does not lead (it never took the lease, lost it, or could not renew it
    /// in time); `None` while it leads.
    pub fn lost(&self) -> Option<String> {
        let h = self.held.lock().ok()?;
        match h.as_ref() {
            None => Some("this hub does not hold the lease".into()),
            Some(s) if s.lost.is_some() => s.lost.clone(),
            Some(s) if Instant::now() >= s.deadline => {
                Some(format!("the lease could not be renewed within {} s", (self.ttl - self.margin()).as_secs()))
            }
            Some(_) => None,
        }
    }

    /// Give the lease up (a batch run that has finished), so a standby may act at once.
    pub fn release(&self) {
        let revision = match self.held.lock() {
            Ok(mut h) => match h.take() {
                Some(s) if s.lost.is_none() => s.revision,
                _ => return,
            },
            Err(_) => return,
        };
        let store = self.lease.clone();
        if let Ok(rt) = conn::runtime() {
            let _ = rt.block_on(async move {
                tokio::time::timeout(Duration::from_secs(5), store.delete_expect_revision(LEASE_KEY, Some(revision)))
                    .await
            });
        }
    }

    /// Claim each key (one per alert and sink) for this hub; see [`Claim`].
    pub fn claim(&self, keys: &[String]) -> Vec<Claim> {
        let rt = match conn::runtime() {
            Ok(rt) => rt,
            Err(e) => return keys.iter().map(|_| Claim::Unchecked(e.to_string())).collect(),
        };
        let store = self.claims.clone();
        let me = self.me.clone();
        let keys = keys.to_vec();
        let grace = self.ttl;
        rt.block_on(async move {
            let each = keys.iter().map(|k| claim_one(&store, k, &me, grace));
            futures_util::future::join_all(each).await
        })
    }

    /// Say what became of claimed keys, each at the revision its claim was made: `sent`
    /// when the sink took the alert, else the claim is given back so the next attempt may
    /// make it. Both by compare-and-set: a claim another hub has taken over since is left
    /// to it.
    pub fn settle(&self, done: &[(String, u64, bool)]) -> Result<()> {
        let store = self.claims.clone();
        let value = Bytes::from(json!({"state": "sent", "holder": self.me}).to_string());
        let done = done.to_vec();
        let errors: Vec<String> = conn::runtime()?.block_on(async move {
            let each = done.iter().map(|(k, rev, delivered)| {
                let (store, value) = (store.clone(), value.clone());
                async move {
                    if *delivered {
                        match store.update(k, value, *rev).await {
                            Ok(_) => None,
                            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => None,
                            Err(e) => Some(e.to_string()),
                        }
                    } else {
                        // Given back; a claim taken over meanwhile is not ours to give, and
                        // one that cannot be given back is taken over after the grace.
                        let _ = store.delete_expect_revision(k, Some(*rev)).await;
                        None
                    }
                }
            });
            futures_util::future::join_all(each).await.into_iter().flatten().collect()
        });
        match errors.first() {
            None => Ok(()),
            Some(e) => Err(self.failed(&format!("cannot record {} sent alert(s) in", errors.len()), e)),
        }
    }
}

/// Seconds since the epoch, as the claims say when they were made.
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

async fn claim_one(store: &kv::Store, key: &str, me: &str, grace: Duration) -> Claim {
    let sending = Bytes::from(json!({"state": "sending", "holder": me, "at": unix_now()}).to_string());
    match store.create(key, sending.clone()).await {
        Ok(rev) => return Claim::Go(rev),
        Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {}
        Err(e) => return Claim::Unchecked(e.to_string()),
    }
    let entry = match store.entry(key).await {
        Ok(Some(e)) => e,
        Ok(None) => return Claim::Unchecked("the claim vanished".into()),
        Err(e) => return Claim::Unchecked(e.to_string()),
    };
    let v: Value = serde_json::from_slice(&entry.value).unwrap_or(Value::Null);
    let holder = v.get("holder").and_then(Value::as_str).unwrap_or("").to_string();
    let given_back = entry.operation != Operation::Put;
    if !given_back && v.get("state").and_then(Value::as_str) == Some("sent") {
        return Claim::Sent;
    }
    if !given_back && holder == me {
        return Claim::Go(entry.revision);
    }
    // Claimed by a hub that has not said it was sent. A claim younger than the grace may
    // be a hub still at it (one that believes it leads, a slow sink): it is left to it, and
    // the alert waits in the outbox until that is known. An older one is from a hub that
    // died while sending (this hub leads now): taken over; a hub that races for it too
    // loses the compare-and-set.
    let at = v.get("at").and_then(Value::as_u64).unwrap_or(0);
    if !given_back && unix_now().saturating_sub(at) < grace.as_secs() {
        return Claim::Busy(holder);
    }
    match store.update(key, sending, entry.revision).await {
        Ok(rev) => Claim::Go(rev),
        Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Claim::Busy(holder),
        Err(e) => Claim::Unchecked(e.to_string()),
    }
}
