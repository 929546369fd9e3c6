//! Input for the resident (`--follow`) modes: records as they arrive, and the signals, on one
//! channel. A reader thread reads the sources line by line ([`crate::ndjson::LineReader`]
//! hands out each line as soon as it is on the pipe) and parses each into a JSON object; the
//! events of [`crate::util::stop`] are forwarded into the same channel. The tool's loop waits
//! on [`Follow::next`] until its next due time, so it sleeps until there is input, a signal,
//! or something to do.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::Instant;

use serde_json::Value;

use super::{Line, LineReader, ReadOpts, Source};
use crate::error::{Error, Result};
use crate::util::stop::{self, Event};

/// Lines read ahead of the loop at most: a slow loop makes the reader wait instead of
/// holding an unbounded backlog in memory.
const BACKLOG: usize = 1024;

/// What the loop is woken for.
#[derive(Debug)]
pub enum Msg {
    /// A record (a JSON object), with where it came from.
    Record { value: Value, source: String, line: u64 },
    /// A line that is not a record: why, and where.
    Bad { why: String, source: String, line: u64 },
    /// A source could not be opened or read; the reader stops.
    Failed(Error),
    /// Every source has ended.
    End,
    /// A signal, or stdout's reader went away.
    Event(Event),
}

/// The follow-input channel; see the module docs.
pub struct Follow {
    rx: Receiver<Msg>,
    /// Keeps the signal channel connected for as long as the loop runs.
    _events: Sender<Event>,
    /// The last record handed out: when the loop asks again it has handled it, and a
    /// message it came in from a JetStream consumer is acknowledged.
    handled: std::sync::Mutex<Option<(String, u64)>>,
    /// The loop acknowledges itself, with [`Follow::commit`], once it has saved what the
    /// records caused (notify holds records for a group wait before it runs them).
    on_commit: std::sync::atomic::AtomicBool,
}

impl Follow {
    /// Start watching the signals and reading `sources`. Call it before any other thread is
    /// started (see [`stop::events`]).
    pub fn start(sources: Vec<Source>, opts: ReadOpts) -> Result<Follow> {
        let (events, keep) = stop::events()?;
        let (tx, rx) = mpsc::sync_channel::<Msg>(BACKLOG);
        let on_event = tx.clone();
        spawn("pitcrew-events", move || {
            while let Ok(e) = events.recv() {
                if on_event.send(Msg::Event(e)).is_err() {
                    return;
                }
            }
        })?;
        let sources = sources.into_iter().map(Source::following).collect();
        spawn("pitcrew-input", move || read(sources, opts, &tx))?;
        Ok(Follow {
            rx,
            _events: keep,
            handled: std::sync::Mutex::new(None),
            on_commit: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The next message, waiting at most until `due` (forever without one). `None` when
    /// `due` has come (at once when it is past, even with input waiting).
    pub fn next(&self, due: Option<Instant>) -> Option<Msg> {
        if !self.on_commit.load(std::sync::atomic::Ordering::Relaxed)
            && let Err(e) = self.commit()
        {
            return Some(Msg::Failed(e));
        }
        let msg = self.wait(due);
        if let Some(Msg::Record { source, line, .. } | Msg::Bad { source, line, .. }) = &msg
            && let Ok(mut h) = self.handled.lock()
        {
            *h = Some((source.clone(), *line));
        }
        msg
    }

    /// Acknowledge, to a JetStream source, every record handed out so far: the loop has
    /// committed what they caused. Without [`Follow::ack_on_commit`] it is done each time
    /// the loop asks for the next message.
    pub fn commit(&self) -> Result<()> {
        let handled = self.handled.lock().ok().and_then(|h| h.clone());
        match handled {
            Some((source, line)) => crate::fleet::consume::commit_through(&source, line),
            None => Ok(()),
        }
    }

    /// The loop calls [`Follow::commit`] itself.
    pub fn ack_on_commit(&self) {
        self.on_commit.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn wait(&self, due: Option<Instant>) -> Option<Msg> {
        match due {
            None => self.rx.recv().ok().or(Some(Msg::End)),
            // A due time that has come goes first, however much input is waiting: a steady
            // stream must not starve the timers.
            Some(t) if t <= Instant::now() => None,
            Some(t) => match self.rx.recv_timeout(t.saturating_duration_since(Instant::now())) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(Msg::End),
            },
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
    thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(|_| ())
        .map_err(|e| Error::other(format!("cannot start a thread: {e}")))
}

/// The reader thread: every line of every source, then [`Msg::End`].
fn read(sources: Vec<Source>, opts: ReadOpts, tx: &mpsc::SyncSender<Msg>) {
    for src in sources {
        let source = src.name();
        let reader = match src.open() {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Msg::Failed(e));
                return;
            }
        };
        let mut lines = LineReader::new(reader, opts.max_line);
        loop {
            let msg = match lines.next_line() {
                Ok(None) => break,
                Ok(Some((line, Line::Text(bytes)))) => match super::parse_object(bytes) {
                    Ok(value) => Msg::Record { value, source: source.clone(), line },
                    Err(why) => Msg::Bad { why, source: source.clone(), line },
                },
                Ok(Some((line, Line::TooLong(n)))) => Msg::Bad {
                    why: format!("line of {n} bytes is longer than the limit of {} bytes", opts.max_line),
                    source: source.clone(),
                    line,
                },
                Err(e) => {
                    let _ = tx.send(Msg::Failed(Error::io(format!("reading {source}"), e)));
                    return;
                }
            };
            if tx.send(msg).is_err() {
                return;
            }
        }
    }
    let _ = tx.send(Msg::End);
}

/// What a loop does with a line that is not a record, or a record its reader rejected:
/// fatal under `--strict`, else said on stderr and counted.
pub fn reject(opts: ReadOpts, diag: &crate::diag::Diag, source: &str, line: u64, why: String) -> Result<()> {
    if opts.strict {
        return Err(Error::Input { source: source.to_string(), line, message: why });
    }
    diag.reject(source, line, why);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_due_time_that_has_come_wins_over_waiting_input() {
        let (tx, rx) = mpsc::sync_channel::<Msg>(BACKLOG);
        let (keep, _events) = mpsc::channel::<Event>();
        let follow = Follow {
            rx,
            _events: keep,
            handled: std::sync::Mutex::new(None),
            on_commit: std::sync::atomic::AtomicBool::new(false),
        };
        for line in 1..=3 {
            tx.send(Msg::Record { value: serde_json::json!({"kind": "check"}), source: "-".into(), line }).unwrap();
        }
        // Input waits, but the timer is due: the timer goes first.
        let past = Instant::now() - Duration::from_millis(1);
        assert!(follow.next(Some(past)).is_none(), "a steady stream must not starve the timers");
        // Not due yet: the input.
        let later = Instant::now() + Duration::from_secs(60);
        assert!(matches!(follow.next(Some(later)), Some(Msg::Record { line: 1, .. })));
        assert!(matches!(follow.next(None), Some(Msg::Record { line: 2, .. })));
        drop(tx);
        assert!(matches!(follow.next(Some(later)), Some(Msg::Record { line: 3, .. })));
        assert!(matches!(follow.next(Some(later)), Some(Msg::End)), "the reader gone is the end");
    }
}
