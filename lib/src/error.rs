//! The one error type of pitcrew and the exit-code table every tool follows.
//!
//! | code | meaning                                                                   |
//! |------|---------------------------------------------------------------------------|
//! | 0    | all healthy / done; also `--help`, `--version`, and stdout closed early    |
//! | 1    | ran fine but found failures: a service down, a missing tick, an alert      |
//! |      | that could not be delivered, a finding at warning or worse                 |
//! | 2    | usage, configuration or fatal I/O error                                    |
//! | 3    | some input lines were rejected, and nothing worse happened                 |
//!
//! Severity, from least to most: 0, 3, 1, 2. A run that rejected a line *and* found a service
//! down exits 1; a fatal error always exits 2. Engines return a [`Status`]; the entry point
//! combines it with the count of rejected input lines.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// What a run found, when it ran to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Status {
    /// Everything healthy, or the job is done.
    #[default]
    Ok,
    /// Some input lines were rejected (exit 3).
    Rejected,
    /// The run found failures (exit 1).
    Failures,
}

impl Status {
    /// The exit code of this status (see the module docs).
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Rejected => 3,
            Status::Failures => 1,
        }
    }

    /// `Failures` when `failed` is true, else `Ok`.
    pub fn failures_if(failed: bool) -> Status {
        if failed { Status::Failures } else { Status::Ok }
    }

    /// The more severe of two statuses.
    pub fn worst(self, other: Status) -> Status {
        self.max(other)
    }
}

/// Every error a tool can end with. All of them exit 2, except clap's help and version
/// displays, which exit 0.
#[derive(Debug)]
pub enum Error {
    /// Command-line parsing (clap formats it; help and version land here too).
    Clap(clap::Error),
    /// A usage error found after parsing: conflicting or invalid values.
    Usage(String),
    /// Invalid configuration; the message names the file and the place.
    Config(String),
    /// An I/O error with what was being done.
    Io { context: String, source: io::Error },
    /// A bad input line under `--strict`.
    Input { source: String, line: u64, message: String },
    /// Anything else that stops the run.
    Other(String),
}

/// The result type of pitcrew.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn usage(msg: impl Into<String>) -> Error {
        Error::Usage(msg.into())
    }

    pub fn config(msg: impl Into<String>) -> Error {
        Error::Config(msg.into())
    }

    pub fn other(msg: impl Into<String>) -> Error {
        Error::Other(msg.into())
    }

    /// An I/O error with context, e.g. `Error::io(format!("reading {}", p.display()), e)`.
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io { context: context.into(), source }
    }

    /// An I/O error on a path: `what PATH: why`.
    pub fn path(what: &str, path: &Path, source: io::Error) -> Error {
        Error::Io { context: format!("{what} {}", path.display()), source }
    }

    /// The exit code of this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Clap(e) => {
                if e.use_stderr() {
                    2
                } else {
                    0
                }
            }
            _ => 2,
        }
    }

    /// True when the error is (or wraps) a broken pipe on stdout: the reader went away, which
    /// is not an error for a filter.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Clap(e) => write!(f, "{e}"),
            Error::Usage(m) | Error::Config(m) | Error::Other(m) => f.write_str(m),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Input { source, line, message } => write!(f, "{source}:{line}: {message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Clap(e) => Some(e),
            _ => None,
        }
    }
}

impl From<clap::Error> for Error {
    fn from(e: clap::Error) -> Self {
        Error::Clap(e)
    }
}

/// Writing to stdout or stderr: the context is the stream.
impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io { context: "writing output".into(), source: e }
    }
}

/// A path-carrying I/O failure, for `map_err(at(path, "reading"))`.
pub fn at<'a>(what: &'a str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |e| Error::path(what, path, e)
}

/// Owned variant of [`at`] for closures that outlive the borrow.
pub fn at_owned(what: &'static str, path: PathBuf) -> impl FnOnce(io::Error) -> Error {
    move |e| Error::path(what, &path, e)
}
