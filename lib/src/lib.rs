//! pitcrew: seven small Unix tools that keep services and agents alive.
//!
//! Every tool reads and writes newline-delimited JSON. This crate holds all of their logic;
//! the binaries under `tools/` only hand their tool's descriptor ([`entry::Tool`]) to
//! [`entry::run`], and [`cli::setup`] resolves what every tool needs before its engine starts.
//!
//! Shared pieces: [`entry`] (argument parsing, exit codes, broken pipes), [`error`] (the one
//! error type and the exit-code table), [`ndjson`] (numbered line reading and writing),
//! [`record`] (the record kinds of the pipe), [`config`] (services.json and the environment),
//! [`store`] (atomic writes, locks, appends, daily files), [`clock`] (`--now` and timestamps),
//! [`history`] (the alert and restart histories), [`check`] (the check engine probe, recover,
//! tickmon and cellscan share).

pub mod calendar;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod diag;
pub mod docs;
pub mod entry;
pub mod error;
pub mod fleet;
pub mod history;
pub mod json;
pub mod ndjson;
pub mod record;
pub mod restart;
pub mod store;
pub mod util;

pub mod board;
pub mod cellscan;
pub mod notify;
pub mod probe;
pub mod recover;
pub mod rollup;
pub mod tickmon;

pub use error::{Error, Result, Status};
