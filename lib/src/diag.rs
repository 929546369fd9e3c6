//! The diagnostics channel every tool writes to: `TOOL: message` lines on stderr, the count
//! of rejected input lines, and progress that only a terminal sees. Below everything that
//! reports (the line reader, the store, the check engine, the tools); [`crate::entry`] makes
//! one per run.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::Error;

/// The diagnostics channel: `TOOL: message` lines on stderr, the count of rejected input
/// lines, and progress that only a terminal sees. Shared by reference across threads.
pub struct Diag {
    tool: &'static str,
    sink: Mutex<Box<dyn Write + Send>>,
    rejected: AtomicU64,
    terminal: bool,
    progress_shown: AtomicBool,
}

impl Diag {
    /// Diagnostics on the process's stderr.
    pub fn stderr(tool: &'static str) -> Diag {
        let terminal = io::stderr().is_terminal();
        Diag::new(tool, Box::new(io::stderr()), terminal)
    }

    pub fn new(tool: &'static str, sink: Box<dyn Write + Send>, terminal: bool) -> Diag {
        Diag {
            tool,
            sink: Mutex::new(sink),
            rejected: AtomicU64::new(0),
            terminal,
            progress_shown: AtomicBool::new(false),
        }
    }

    /// Diagnostics captured in memory, for unit tests: the buffer fills as messages arrive.
    pub fn memory(tool: &'static str) -> (Diag, SharedBuf) {
        let buf = SharedBuf::default();
        (Diag::new(tool, Box::new(buf.clone()), false), buf)
    }

    pub fn tool(&self) -> &'static str {
        self.tool
    }

    /// Write `TOOL: message` on stderr. A failing stderr is ignored: there is nowhere left to
    /// report it.
    pub fn warn(&self, msg: impl std::fmt::Display) {
        self.clear_progress();
        let msg = msg.to_string();
        let line = format!("{}: {}\n", self.tool, crate::util::text::escape_controls(&msg, true));
        if let Ok(mut sink) = self.sink.lock() {
            let _ = sink.write_all(line.as_bytes());
            let _ = sink.flush();
        }
    }

    /// Report the error a run ends with.
    pub fn error(&self, e: &Error) {
        self.warn(e);
    }

    /// Report a rejected input line (`TOOL: source:line: why`) and count it.
    pub fn reject(&self, source: &str, line: u64, msg: impl std::fmt::Display) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        self.warn(format_args!("{source}:{line}: {msg}"));
    }

    /// Count rejected lines that were reported some other way (a summary line).
    pub fn count_rejected(&self, n: u64) {
        self.rejected.fetch_add(n, Ordering::Relaxed);
    }

    /// How many input lines were rejected so far.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// True when stderr is a terminal: only then is progress shown.
    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    /// Show a progress line on a terminal (overwritten by the next one); nothing in a pipe.
    pub fn progress(&self, msg: impl std::fmt::Display) {
        if !self.terminal {
            return;
        }
        if let Ok(mut sink) = self.sink.lock() {
            let _ = write!(sink, "\r\x1b[2K{}: {msg}", self.tool);
            let _ = sink.flush();
            self.progress_shown.store(true, Ordering::Relaxed);
        }
    }

    /// Erase the progress line, if one is showing.
    pub fn clear_progress(&self) {
        if self.progress_shown.swap(false, Ordering::Relaxed)
            && let Ok(mut sink) = self.sink.lock()
        {
            let _ = sink.write_all(b"\r\x1b[2K");
            let _ = sink.flush();
        }
    }
}

/// A cloneable in-memory writer (tests, captured diagnostics).
#[derive(Clone, Default)]
pub struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    /// The bytes written so far, as text.
    pub fn text(&self) -> String {
        match self.0.lock() {
            Ok(v) => String::from_utf8_lossy(&v).into_owned(),
            Err(_) => String::new(),
        }
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.lock() {
            Ok(mut v) => {
                v.extend_from_slice(buf);
                Ok(buf.len())
            }
            Err(_) => Err(io::Error::other("buffer poisoned")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
