//! The entry point every tool shares: parse, run, report, flush, exit.
//!
//! A tool is a [`Tool`] descriptor (its name, its entry function, its clap definition) that
//! its module exports as `TOOL`; its binary's `main.rs` is one call:
//! `pitcrew::entry::run(&pitcrew::probe::TOOL)`. Nothing here knows any tool.
//!
//! The entry function receives a [`Ctx`] (stdout, the diagnostics channel on stderr, whether
//! stdin is a terminal) and its arguments; it parses and resolves them with
//! [`crate::cli::setup`] and returns a [`Status`]. [`run`] turns the outcome into an exit code
//! (see [`crate::error`]): help and version exit 0, a closed stdout exits 0 silently, any other
//! error prints `TOOL: why` on stderr and exits 2, and rejected input lines turn an `Ok` into 3.
//! The hidden `--generate KIND` renders the tool's clap definition with [`crate::docs`].

use std::ffi::OsString;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::process::ExitCode;

pub use crate::diag::{Diag, SharedBuf};
use crate::error::{Error, Result, Status};

/// What a tool's entry function gets: its output channels and what they are connected to.
pub struct Ctx {
    /// The tool's name, as used in messages (`probe: ...`).
    pub tool: &'static str,
    /// Standard output, block-buffered in a pipe, line-buffered on a terminal or on request.
    pub out: Out,
    /// Standard error: warnings, rejected lines, progress.
    pub diag: Diag,
    /// True when standard input is a terminal (nothing piped in).
    pub stdin_is_terminal: bool,
}

/// The signature of every tool's entry function.
pub type Main = fn(&mut Ctx, Vec<OsString>) -> Result<Status>;

/// What a binary hands to [`run`]: everything the shared code needs to know of a tool.
pub struct Tool {
    /// The binary's name, as used in messages (`probe: ...`).
    pub name: &'static str,
    /// The entry function: parses the arguments and runs the engine.
    pub main: Main,
    /// The clap definition it parses with, for man pages and completions.
    pub command: fn() -> clap::Command,
}

/// Run a tool and turn its outcome into the process exit code.
pub fn run(tool: &Tool) -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "--generate") {
        return generate(tool, args.get(2));
    }
    let (tool, main) = (tool.name, tool.main);
    let stdout_tty = io::stdout().is_terminal();
    let mut ctx = Ctx {
        tool,
        out: Out::stdout(stdout_tty).named(tool),
        diag: Diag::stderr(tool),
        stdin_is_terminal: io::stdin().is_terminal(),
    };
    let outcome = main(&mut ctx, args);
    // Records read from a JetStream consumer are acknowledged once the tool has finished
    // without an error: what they caused is committed.
    let outcome = match outcome {
        Ok(status) => crate::fleet::consume::commit_all().map(|()| status),
        Err(e) => Err(e),
    };
    let flushed = ctx.out.flush().map_err(Error::from);
    let code = match outcome.and_then(|status| flushed.map(|()| status)) {
        Ok(status) => {
            let status = if ctx.diag.rejected() > 0 { status.worst(Status::Rejected) } else { status };
            status.exit_code()
        }
        Err(e) if e.is_broken_pipe() => 0,
        Err(Error::Clap(e)) => {
            let text = e.render().to_string();
            let shown = if e.use_stderr() {
                write_all_stderr(text.as_bytes())
            } else {
                let mut out = io::stdout().lock();
                out.write_all(text.as_bytes()).and_then(|()| out.flush())
            };
            match shown {
                Err(err) if err.kind() == io::ErrorKind::BrokenPipe => 0,
                _ => Error::Clap(e).exit_code(),
            }
        }
        Err(e) => {
            ctx.diag.error(&e);
            e.exit_code()
        }
    };
    ExitCode::from(code)
}

/// The hidden `--generate KIND`: a man page or a completion script on stdout.
fn generate(tool: &Tool, kind: Option<&OsString>) -> ExitCode {
    let kind = kind.and_then(|k| k.to_str()).unwrap_or("");
    let mut buf = Vec::new();
    let result = crate::docs::generate((tool.command)(), kind, &mut buf).and_then(|()| {
        let mut out = io::stdout().lock();
        out.write_all(&buf).and_then(|()| out.flush()).map_err(Error::from)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            Diag::stderr(tool.name).error(&e);
            ExitCode::from(e.exit_code())
        }
    }
}

fn write_all_stderr(bytes: &[u8]) -> io::Result<()> {
    let mut err = io::stderr().lock();
    err.write_all(bytes)?;
    err.flush()
}

/// Standard output with a switchable buffering policy.
///
/// Block-buffered (64 KiB) in a pipe; with line buffering on, every write that ends a line is
/// flushed, so a long-running producer's records reach the next tool as they happen.
pub struct Out {
    inner: Box<dyn Write + Send>,
    line_buffered: bool,
    /// Escape control characters (human formats): see [`Out::escape_controls`].
    escape: Option<crate::util::text::Escaper>,
    /// `--publish`: record lines also go to a JetStream subject; see [`Out::publish_to`].
    tee: Option<Tee>,
    /// The tool's name, for the publisher's warnings.
    tool: &'static str,
}

/// The publisher of `--publish` and the part of a line written so far.
struct Tee {
    publisher: crate::fleet::publish::Publisher,
    partial: Vec<u8>,
}

impl Tee {
    fn write(&mut self, buf: &[u8]) {
        let mut rest = buf;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            self.partial.extend_from_slice(&rest[..i]);
            let line = std::mem::take(&mut self.partial);
            // Only JSON objects are records; the human formats are not published.
            if line.first() == Some(&b'{') {
                self.publisher.line(&line);
            }
            rest = &rest[i + 1..];
        }
        self.partial.extend_from_slice(rest);
    }
}

impl Out {
    /// Standard output; line-buffered when it is a terminal.
    pub fn stdout(is_terminal: bool) -> Out {
        Out {
            inner: Box::new(BufWriter::with_capacity(64 * 1024, io::stdout())),
            line_buffered: is_terminal,
            escape: None,
            tee: None,
            tool: "pitcrew",
        }
    }

    /// Any writer (tests, or output redirected to a file).
    pub fn new(inner: Box<dyn Write + Send>, line_buffered: bool) -> Out {
        Out { inner, line_buffered, escape: None, tee: None, tool: "pitcrew" }
    }

    /// Escape control characters in everything written from now on (`\x1b` for ESC, `\r`,
    /// `\u{9b}` for C1 controls; newlines and tabs stay): the human formats show text that
    /// agents, records and files supplied, and a terminal must not take it as commands (a
    /// title change, a cleared screen). NDJSON is escaped by JSON itself.
    pub fn escape_controls(&mut self, on: bool) {
        self.escape = on.then(crate::util::text::Escaper::default);
    }

    /// Turn line buffering on (`--line-buffered`); never turns it off on a terminal.
    pub fn set_line_buffered(&mut self, on: bool) {
        self.line_buffered |= on;
    }

    /// The tool's name, for messages (`probe: ...`).
    pub fn named(mut self, tool: &'static str) -> Out {
        self.tool = tool;
        self
    }

    /// The tool's name given with [`Out::named`].
    pub fn tool_name(&self) -> &'static str {
        self.tool
    }

    /// Publish every record line written from now on (`--publish`); see
    /// [`crate::fleet::publish`].
    pub fn publish_to(&mut self, publisher: crate::fleet::publish::Publisher) {
        self.tee = Some(Tee { publisher, partial: Vec::new() });
    }

    pub fn is_line_buffered(&self) -> bool {
        self.line_buffered
    }
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(t) = &mut self.tee {
            t.write(buf);
        }
        match &mut self.escape {
            Some(e) => self.inner.write_all(&e.escape(buf))?,
            None => self.inner.write_all(buf)?,
        }
        if self.line_buffered && buf.last() == Some(&b'\n') {
            self.inner.flush()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(t) = &mut self.tee {
            t.publisher.flush();
        }
        self.inner.flush()
    }
}
