#![warn(missing_docs)]
//! The check engine: what a check is (`spec`), how each type is checked (`run`), and the
//! runner that checks thousands of services at once (`runner`). probe, recover, tickmon (an
//! agent's gateway) and cellscan (its heartbeat endpoint) all check through it; it imports no
//! tool.
//!
//! * `spec`: the check types and their specs, and the reading of a service's check fields
//!   from services.json.
//! * `runner`: a run's jobs on an async runtime, at most `--concurrency` at once and never
//!   more sockets than the open-files limit allows; network checks (url, port, tls) on the
//!   runtime, blocking ones (process, disk, command, heartbeat) on a bounded blocking pool;
//!   results in the jobs' order.
//! * `http`: the one HTTP client set-up (hyper, rustls on ring, redirects, timeouts that say
//!   what timed out); `net`: the one connect-with-deadline; `tls`: the tls check's
//!   handshake; `cafile`: `ca_file` read as curl reads it.
//! * `procs`: the process table, read once per run (at most once a second in a resident one);
//!   [`plugin`]: monitoring-plugins output.

pub(crate) mod cafile;
pub(crate) mod http;
pub(crate) mod net;
pub mod plugin;
pub(crate) mod procs;
pub(crate) mod run;
pub(crate) mod runner;
pub(crate) mod spec;
pub(crate) mod tls;

pub(crate) use runner::{CheckEnv, Job, run_all, run_one};
pub(crate) use spec::{CheckSpec, UrlSpec};
