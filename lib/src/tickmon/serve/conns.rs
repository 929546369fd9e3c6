//! The connections of `tickmon serve`: how many, from whom, and which one gives way.
//!
//! A client that opens connections and sends nothing must not keep agents out. So:
//!
//! * each connection has a short time to send its request head (`--header-timeout`, which is
//!   also how long an idle keep-alive connection is kept);
//! * one peer address holds at most `--max-connections-per-peer` connections, and the
//!   server at most `--max-connections` (never more than its descriptor limit allows);
//! * when a limit is reached, the connection that has been idle the longest (one that never
//!   sent a request first) is closed to make room for the new one; a new connection is
//!   refused only when every connection is in the middle of a request;
//! * each eviction or refusal is *pressure*: the server says so once when it starts and once
//!   when it ends, counts it in `/metrics`, and does not count an agent's silence as a
//!   failure while the server itself could not be reached (see [`Conns::quiet_since`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::oneshot;

/// What one connection is doing, shared with its request handler.
#[derive(Debug)]
pub(crate) struct ConnState {
    /// Requests being handled (or responses being streamed) on it.
    busy: AtomicU32,
    /// When it last became idle, in milliseconds since the table's start.
    idle_since: AtomicU64,
    /// Requests it has completed.
    served: AtomicU64,
    epoch: Instant,
}

impl ConnState {
    fn new(epoch: Instant) -> ConnState {
        ConnState {
            busy: AtomicU32::new(0),
            idle_since: AtomicU64::new(epoch.elapsed().as_millis() as u64),
            served: AtomicU64::new(0),
            epoch,
        }
    }

    /// Mark the connection busy until the guard is dropped (after the response was handed
    /// over, or after a streamed body ended).
    pub(crate) fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }
}

/// A connection marked busy; idle again when dropped.
#[derive(Debug)]
pub(crate) struct Busy(Arc<ConnState>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.idle_since.store(self.0.epoch.elapsed().as_millis() as u64, Ordering::SeqCst);
        self.0.served.fetch_add(1, Ordering::Relaxed);
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Entry {
    peer: IpAddr,
    state: Arc<ConnState>,
    close: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
struct Table {
    next: u64,
    conns: HashMap<u64, Entry>,
    per_peer: HashMap<IpAddr, usize>,
}

impl Table {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let e = self.conns.remove(&id)?;
        if let Some(n) = self.per_peer.get_mut(&e.peer) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&e.peer);
            }
        }
        Some(e)
    }

    /// The connection to close for room: idle, never served first, then idle the longest
    /// (the older one when two went idle in the same millisecond).
    fn victim(&self, peer: Option<IpAddr>) -> Option<u64> {
        self.conns
            .iter()
            .filter(|(_, e)| peer.is_none_or(|p| e.peer == p) && e.state.busy.load(Ordering::SeqCst) == 0)
            .min_by_key(|(id, e)| {
                (e.state.served.load(Ordering::Relaxed) > 0, e.state.idle_since.load(Ordering::SeqCst), **id)
            })
            .map(|(id, _)| *id)
    }

    /// Close a connection (its task drops it).
    fn evict(&mut self, id: u64) {
        if let Some(mut e) = self.remove(id)
            && let Some(tx) = e.close.take()
        {
            let _ = tx.send(());
        }
    }
}

/// Pressure seen by the server: evictions and refusals, when, and whether it was said.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) evicted: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) accept_errors: AtomicU64,
}

/// The connection table.
pub(crate) struct Conns {
    table: Mutex<Table>,
    pub(crate) max: usize,
    pub(crate) per_peer: usize,
    epoch: Instant,
    pub(crate) counts: Counts,
    /// Unix time (milliseconds) of the last eviction or refusal; 0 when none yet.
    last_pressure_ms: AtomicU64,
}

/// A connection let in; it leaves the table when dropped.
pub(crate) struct Ticket {
    conns: Arc<Conns>,
    id: u64,
    pub(crate) state: Arc<ConnState>,
    /// Fires when the connection is evicted.
    pub(crate) closed: oneshot::Receiver<()>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.conns.lock().remove(self.id);
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Conns {
    pub(crate) fn new(max: usize, per_peer: usize) -> Conns {
        Conns {
            table: Mutex::new(Table::default()),
            max: max.max(1),
            per_peer: per_peer.clamp(1, max.max(1)),
            epoch: Instant::now(),
            counts: Counts::default(),
            last_pressure_ms: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pressure(&self) {
        self.last_pressure_ms.store(unix_ms(), Ordering::SeqCst);
    }

    /// Let a connection from `peer` in, closing an idle one when a limit is reached; `None`
    /// when every connection that could give way is busy (the new one is then refused).
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Ticket> {
        let mut t = self.lock();
        if t.per_peer.get(&peer).copied().unwrap_or(0) >= self.per_peer {
            match t.victim(Some(peer)) {
                Some(id) => {
                    t.evict(id);
                    self.counts.evicted.fetch_add(1, Ordering::Relaxed);
                    self.pressure();
                }
                None => {
                    self.counts.refused.fetch_add(1, Ordering::Relaxed);
                    self.pressure();
                    return None;
                }
            }
        }
        if t.conns.len() >= self.max {
            match t.victim(None) {
                Some(id) => {
                    t.evict(id);
                    self.counts.evicted.fetch_add(1, Ordering::Relaxed);
                    self.pressure();
                }
                None => {
                    self.counts.refused.fetch_add(1, Ordering::Relaxed);
                    self.pressure();
                    return None;
                }
            }
        }
        let id = t.next;
        t.next += 1;
        let state = Arc::new(ConnState::new(self.epoch));
        let (tx, rx) = oneshot::channel();
        t.conns.insert(id, Entry { peer, state: state.clone(), close: Some(tx) });
        *t.per_peer.entry(peer).or_default() += 1;
        drop(t);
        Some(Ticket { conns: self.clone(), id, state, closed: rx })
    }

    /// Out of descriptors: close the connection idle the longest, if any. True when one was.
    pub(crate) fn shed(&self) -> bool {
        self.counts.accept_errors.fetch_add(1, Ordering::Relaxed);
        self.pressure();
        let mut t = self.lock();
        match t.victim(None) {
            Some(id) => {
                t.evict(id);
                self.counts.evicted.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.lock().conns.len()
    }

    /// The peer holding the most connections, and how many.
    pub(crate) fn top_peer(&self) -> Option<(IpAddr, usize)> {
        self.lock().per_peer.iter().max_by_key(|(_, n)| **n).map(|(p, n)| (*p, *n))
    }

    /// Unix time (seconds) of the last eviction or refusal, if any. An agent's silence is
    /// counted from the later of its last word and this moment: while the server itself
    /// could not be reached, silence says nothing about the agent.
    pub(crate) fn quiet_since(&self) -> Option<f64> {
        match self.last_pressure_ms.load(Ordering::SeqCst) {
            0 => None,
            ms => Some(ms as f64 / 1000.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_full_table_closes_the_idle_connection_of_longest_standing() {
        let c = Arc::new(Conns::new(3, 3));
        let mut a = c.admit(ip("10.0.0.1")).unwrap();
        let b = c.admit(ip("10.0.0.2")).unwrap();
        let busy = b.state.busy();
        let _c2 = c.admit(ip("10.0.0.3")).unwrap();
        // Full: the oldest idle one (a) gives way, not the busy one (b).
        let _d = c.admit(ip("10.0.0.4")).unwrap();
        assert!(a.closed.try_recv().is_ok(), "a was closed");
        assert_eq!(c.counts.evicted.load(Ordering::Relaxed), 1);
        assert_eq!(c.open(), 3);
        assert!(c.quiet_since().is_some());
        drop(busy);
    }

    #[test]
    fn one_peer_gives_way_to_itself_and_is_refused_only_when_all_its_connections_are_busy() {
        let c = Arc::new(Conns::new(100, 2));
        let first = c.admit(ip("10.0.0.9")).unwrap();
        let _guard = first.state.busy();
        let second = c.admit(ip("10.0.0.9")).unwrap();
        let third = c.admit(ip("10.0.0.9")).unwrap();
        assert_eq!(c.open(), 2, "the idle second one made room");
        drop(second);
        let _g3 = third.state.busy();
        assert!(c.admit(ip("10.0.0.9")).is_none(), "both busy: refused");
        assert_eq!(c.counts.refused.load(Ordering::Relaxed), 1);
        assert!(c.admit(ip("10.0.0.10")).is_some(), "another peer is not held back");
        assert_eq!(c.top_peer(), Some((ip("10.0.0.9"), 2)));
    }

    #[test]
    fn connections_that_served_requests_outlast_those_that_never_did() {
        let c = Arc::new(Conns::new(2, 2));
        let agent = c.admit(ip("10.0.0.1")).unwrap();
        drop(agent.state.busy());
        std::thread::sleep(std::time::Duration::from_millis(5));
        let mut silent = c.admit(ip("10.0.0.2")).unwrap();
        let mut agent = agent;
        let _new = c.admit(ip("10.0.0.3")).unwrap();
        assert!(silent.closed.try_recv().is_ok(), "the one that never spoke went first");
        assert!(agent.closed.try_recv().is_err());
    }
}
