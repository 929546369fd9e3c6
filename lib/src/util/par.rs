//! One ordered parallel map: run a function over a slice on a bounded number of threads and
//! get the results back in the order of the slice, whatever the threads' timing.
//!
//! [`for_each_ordered`] hands each result to a sink as soon as it and all before it are done;
//! a worker does not start an item more than a window of items ahead of the sink, so memory
//! stays bounded by that window, not by the input ([`for_each_ordered_within`] sets the
//! window). [`map_ordered`] collects them. A worker that panics stops the run with an error naming the item; it never takes the
//! caller down with it.

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, mpsc};
use std::thread;

use crate::error::{Error, Result};

/// Results a worker may run ahead of the sink, per thread.
const AHEAD_PER_THREAD: usize = 32;

/// The number of threads to use by default: the available parallelism.
pub fn default_threads() -> usize {
    thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// `f(&items[i])`, a panic turned into an error naming item `i`.
fn run_one<T, R>(f: &(impl Fn(&T) -> R + Sync), items: &[T], i: usize) -> Result<R> {
    panic::catch_unwind(AssertUnwindSafe(|| f(&items[i]))).map_err(|p| {
        let why = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Error::other(format!("a worker thread failed on item {} of {}: {why}", i + 1, items.len()))
    })
}

/// Run `f` over `items` on at most `threads` threads and hand each result to `sink` in the
/// order of `items`. When `sink` fails, or `f` panics, the workers stop taking new items and
/// the error is returned.
pub fn for_each_ordered<T, R>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
    sink: impl FnMut(R) -> Result<()>,
) -> Result<()>
where
    T: Sync,
    R: Send,
{
    for_each_ordered_within(items, threads, threads.max(1) * AHEAD_PER_THREAD, f, sink)
}

/// How far the workers are: the items the sink has taken, and whether to stop.
struct Gate {
    state: Mutex<(usize, bool)>,
    moved: Condvar,
}

impl Gate {
    /// Wait until item `i` is fewer than `ahead` items past the sink; false when stopped.
    fn wait_for(&self, i: usize, ahead: usize) -> bool {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while !g.1 && i >= g.0 + ahead {
            g = self.moved.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        !g.1
    }

    fn set(&self, taken: Option<usize>, stop: bool) {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = taken {
            g.0 = n;
        }
        g.1 |= stop;
        self.moved.notify_all();
    }
}

/// [`for_each_ordered`], a worker starting item `i` only once fewer than `ahead` items wait
/// for the sink before it (at least one).
pub fn for_each_ordered_within<T, R>(
    items: &[T],
    threads: usize,
    ahead: usize,
    f: impl Fn(&T) -> R + Sync,
    mut sink: impl FnMut(R) -> Result<()>,
) -> Result<()>
where
    T: Sync,
    R: Send,
{
    if items.is_empty() {
        return Ok(());
    }
    let threads = threads.clamp(1, items.len());
    if threads == 1 {
        for i in 0..items.len() {
            sink(run_one(&f, items, i)?)?;
        }
        return Ok(());
    }
    let ahead = ahead.max(1);
    let next = AtomicUsize::new(0);
    let gate = Gate { state: Mutex::new((0, false)), moved: Condvar::new() };
    let (tx, rx) = mpsc::sync_channel::<(usize, Result<R>)>(ahead);
    thread::scope(|s| {
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, gate, f) = (&next, &gate, &f);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items.len() || !gate.wait_for(i, ahead) {
                        break;
                    }
                    if tx.send((i, run_one(f, items, i))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut pending: BTreeMap<usize, Result<R>> = BTreeMap::new();
        let mut want = 0;
        for (i, r) in rx {
            pending.insert(i, r);
            while let Some(r) = pending.remove(&want) {
                want += 1;
                if let Err(e) = r.and_then(&mut sink) {
                    gate.set(None, true);
                    return Err(e);
                }
                gate.set(Some(want), false);
            }
        }
        Ok(())
    })
}

/// `f` over `items` on at most `threads` threads, the results in the order of `items`.
pub fn map_ordered<T, R>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Result<Vec<R>>
where
    T: Sync,
    R: Send,
{
    let mut out = Vec::with_capacity(items.len());
    for_each_ordered(items, threads, f, |r| {
        out.push(r);
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_order_whatever_the_timing() {
        let items: Vec<u64> = (0..200).collect();
        let got = map_ordered(&items, 4, |&i| {
            if i % 7 == 0 {
                thread::sleep(std::time::Duration::from_millis(2));
            }
            i * 2
        })
        .unwrap();
        assert_eq!(got, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(map_ordered(&items[..3], 1, |&i| i + 1).unwrap(), vec![1, 2, 3]);
        assert!(map_ordered(&[] as &[u8], 4, |&i| i).unwrap().is_empty());
    }

    #[test]
    fn the_workers_stop_when_the_sink_fails() {
        let items: Vec<u64> = (0..10_000).collect();
        let done = AtomicUsize::new(0);
        let res = for_each_ordered(
            &items,
            2,
            |&i| {
                done.fetch_add(1, Ordering::Relaxed);
                i
            },
            |r| if r == 3 { Err(Error::other("reader gone")) } else { Ok(()) },
        );
        assert!(res.is_err());
        assert!(done.load(Ordering::Relaxed) < 10_000);
    }

    #[test]
    fn no_worker_runs_further_ahead_of_the_sink_than_the_window() {
        let items: Vec<usize> = (0..300).collect();
        let started = AtomicUsize::new(0);
        let mut taken = 0;
        for_each_ordered_within(
            &items,
            4,
            5,
            |&i| {
                started.fetch_max(i, Ordering::SeqCst);
                if i == 0 {
                    thread::sleep(std::time::Duration::from_millis(50));
                }
                i
            },
            |r| {
                // Item r is taken now: no item at or past r + 5 may have started.
                assert!(started.load(Ordering::SeqCst) < r + 5, "ran ahead at {r}");
                assert_eq!(r, taken);
                taken += 1;
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(taken, 300);
    }

    #[test]
    fn a_panicking_worker_is_an_error_not_a_crash() {
        let items: Vec<u64> = (0..50).collect();
        for threads in [1, 3] {
            let err = map_ordered(&items, threads, |&i| {
                assert!(i != 17, "item seventeen is bad");
                i
            })
            .unwrap_err()
            .to_string();
            assert!(err.contains("item 18 of 50") && err.contains("item seventeen is bad"), "{err}");
        }
    }
}
