//! What ends (or reloads) a resident tool: SIGINT and SIGTERM, SIGHUP, and the reader of
//! stdout going away. [`events`] turns them into messages on a channel, so a loop that waits
//! for its next due time with `recv_timeout` wakes for them at once, and no signal handler
//! runs arbitrary code.

use std::os::fd::AsFd;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};

use crate::error::{Error, Result};

/// Something that happened to the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// SIGINT or SIGTERM: finish cleanly and exit.
    Terminate,
    /// SIGHUP: read the configuration again (tools without one treat it as [`Event::Terminate`]).
    Hangup,
    /// The reader of stdout went away (a pipe's read end closed, a terminal hung up).
    StdoutClosed,
}

/// A channel that receives an [`Event`] for every SIGINT, SIGTERM and SIGHUP, and once when
/// the reader of stdout goes away. Call it before starting any other thread: the signals are
/// blocked in this thread (and so in every thread started after) and taken by a thread of
/// their own. The sender is returned too, so that the channel never disconnects (and so that
/// the caller can wake its own loop).
pub fn events() -> Result<(Receiver<Event>, Sender<Event>)> {
    let (tx, rx) = mpsc::channel();
    let mut set = SigSet::empty();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(sig);
    }
    set.thread_block().map_err(|e| Error::other(format!("cannot block signals: {e}")))?;
    let on_signal = tx.clone();
    thread::Builder::new()
        .name("pitcrew-signals".into())
        .spawn(move || {
            while let Ok(sig) = set.wait() {
                let event = if sig == Signal::SIGHUP { Event::Hangup } else { Event::Terminate };
                if on_signal.send(event).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| Error::other(format!("cannot start a thread: {e}")))?;
    let on_close = tx.clone();
    thread::Builder::new()
        .name("pitcrew-stdout".into())
        .spawn(move || {
            if stdout_closed() {
                let _ = on_close.send(Event::StdoutClosed);
            }
        })
        .map_err(|e| Error::other(format!("cannot start a thread: {e}")))?;
    Ok((rx, tx))
}

/// Wait until stdout's reader goes away (a pipe's read end closed, a terminal hung up).
/// Returns false when that cannot be watched.
fn stdout_closed() -> bool {
    let stdout = std::io::stdout();
    let fd = stdout.as_fd();
    loop {
        // No events asked for: poll reports only errors and hang-ups, which is the point.
        let mut fds = [PollFd::new(fd, PollFlags::empty())];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {
                if fds[0].revents().is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP)) {
                    return true;
                }
                if fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLNVAL)) {
                    return false;
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
}
