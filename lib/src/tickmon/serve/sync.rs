//! Group commit of journal appends (`--fsync`): a syncing thread makes appends durable in
//! groups, one `fdatasync` for every request that arrived while the previous one ran, and
//! answers wait for the sequence number they need.

use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// Group commit of journal appends (`--fsync`).
pub(super) struct Syncer {
    file: Arc<Mutex<Arc<File>>>,
    state: Mutex<SyncState>,
    wake: Condvar,
    synced: tokio::sync::watch::Sender<u64>,
    failed: AtomicBool,
}

#[derive(Default)]
struct SyncState {
    written: u64,
    synced: u64,
    stop: bool,
}

impl Syncer {
    /// A syncer of the journal `file`, everything up to `seq` already durable.
    pub(super) fn new(file: Arc<Mutex<Arc<File>>>, seq: u64) -> Syncer {
        let (synced, _) = tokio::sync::watch::channel(seq);
        Syncer {
            file,
            state: Mutex::new(SyncState { written: seq, synced: seq, stop: false }),
            wake: Condvar::new(),
            synced,
            failed: AtomicBool::new(false),
        }
    }

    pub(super) fn note_written(&self, seq: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.written = s.written.max(seq);
            self.wake.notify_one();
        }
    }

    /// The part of the journal below `seq` is already durable (a snapshot holds it).
    pub(super) fn note_durable(&self, seq: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.written = s.written.max(seq);
            s.synced = s.synced.max(seq);
        }
        self.synced.send_modify(|v| *v = (*v).max(seq));
    }

    /// The syncing thread: one fdatasync covers every append made before it started.
    pub(super) fn run(&self) {
        loop {
            let target = {
                let Ok(mut s) = self.state.lock() else { return };
                while s.written <= s.synced && !s.stop {
                    s = match self.wake.wait(s) {
                        Ok(s) => s,
                        Err(_) => return,
                    };
                }
                if s.written <= s.synced {
                    return;
                }
                s.written
            };
            let file = self.file.lock().map(|f| f.clone());
            if file.map_or(true, |f| f.sync_data().is_err()) {
                self.failed.store(true, Ordering::Relaxed);
            }
            if let Ok(mut s) = self.state.lock() {
                s.synced = s.synced.max(target);
            }
            self.synced.send_modify(|v| *v = (*v).max(target));
        }
    }

    pub(super) fn stop(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.stop = true;
            self.wake.notify_all();
        }
    }

    /// Wait until `seq` is durable; false when syncing failed.
    pub(super) async fn wait(&self, seq: u64) -> bool {
        let mut rx = self.synced.subscribe();
        let ok = rx.wait_for(|v| *v >= seq).await.is_ok();
        ok && !self.failed.load(Ordering::Relaxed)
    }
}
