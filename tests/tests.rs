//! pitcrew's integration tests: one binary, one module per tool, real binaries and real peers
//! on loopback. See `util` for the harness.

// Test code asserts by panicking; unwrap is an assertion here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

mod board;
mod cellscan;
mod crash;
mod fleet;
mod fleet_hubs;
mod fuzz_corpus;
mod hostile;
mod layout;
mod lazarus;
mod notify;
mod pipe;
mod pipelines;
mod probe;
mod probe_watch;
mod recover;
mod rollup;
mod rollup_quorum;
mod rollup_status;
mod scenarios;
mod store;
mod tickmon;
