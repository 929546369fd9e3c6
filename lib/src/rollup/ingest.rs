//! `rollup ingest SOURCE...`: the hub's side of the fleet history. The check records of
//! other hosts (read from a JetStream subject, or any NDJSON) are appended to
//! `METRICS/<host>/YYYY-MM-DD.jsonl`, the day of each record's timestamp; records of this
//! host (no `host`, or this host's name) go to `METRICS/` itself, beside probe's own.
//!
//! One directory per host, not one file with `host` in it: each host's directory holds the
//! lines the host wrote to its own metrics, so `rollup --host NAME` on the hub reads the
//! same lines and computes the same numbers as `rollup` on that host, and `prune`,
//! `compact`, `stale` and the fast reader work on it unchanged. Records of other kinds are
//! passed through on stdout. From a `nats://` source the records are acknowledged after
//! they were appended (at the end of a batch run; in `--follow`, as each is handled).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::clock::{self, Clock};
use crate::diag::Diag;
use crate::error::{Error, Result, Status};
use crate::ndjson::{self, ReadOpts, Source};
use crate::record::{self, Kind};
use crate::store;

/// A host name usable as a directory name: letters, digits, `.`, `-`, `_`, not starting
/// with a dot, at most 253 bytes.
pub fn host_dir_ok(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && !h.starts_with('.')
        && h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Where a record of `host` goes.
fn dir_for(metrics: &Path, host: &str) -> PathBuf {
    match crate::util::host::get() {
        _ if host.is_empty() => metrics.to_path_buf(),
        Some(me) if me == host => metrics.to_path_buf(),
        _ => metrics.join(host),
    }
}

/// Take one record: a check goes to its host's metrics, anything else to `out`.
fn take(
    v: &Value,
    metrics: &Path,
    clock: &Clock,
    out: &mut dyn std::io::Write,
) -> Result<std::result::Result<(), String>> {
    if record::kind_of(v) != Kind::Check {
        ndjson::pass(out, v)?;
        return Ok(Ok(()));
    }
    let host = record::str_field(v, "host");
    if !host.is_empty() && !host_dir_ok(host) {
        return Ok(Err(format!("check: host '{host}' is not a usable name (letters, digits, '.', '-', '_')")));
    }
    let day = clock::parse_ts(record::str_field(v, "timestamp")).unwrap_or_else(|| clock.now()).date();
    let dir = dir_for(metrics, host);
    store::ensure_dir(&dir)?;
    store::append_line(&store::daily::day_path(&dir, day), &ndjson::to_line(v)?)?;
    Ok(Ok(()))
}

/// Run `rollup ingest`.
pub fn run(
    files: &[PathBuf],
    follow: bool,
    metrics: &Path,
    clock: &Clock,
    opts: ReadOpts,
    diag: &Diag,
    out: &mut crate::entry::Out,
) -> Result<Status> {
    let sources = Source::parse_args(files)?;
    if !follow {
        ndjson::for_each_line(&sources, opts, diag, |bytes, _| match ndjson::parse_object(bytes) {
            Ok(v) => take(&v, metrics, clock, &mut *out),
            Err(why) => Ok(Err(why)),
        })?;
        return Ok(Status::Ok);
    }
    out.set_line_buffered(true);
    let input = ndjson::follow::Follow::start(sources, opts)?;
    loop {
        match input.next(None) {
            Some(ndjson::follow::Msg::Record { value, source, line }) => {
                if let Err(why) = take(&value, metrics, clock, &mut *out)? {
                    ndjson::follow::reject(opts, diag, &source, line, why)?;
                }
            }
            Some(ndjson::follow::Msg::Bad { why, source, line }) => {
                ndjson::follow::reject(opts, diag, &source, line, why)?
            }
            Some(ndjson::follow::Msg::Failed(e)) => return Err(e),
            Some(ndjson::follow::Msg::End | ndjson::follow::Msg::Event(_)) | None => {
                input.commit()?;
                return Ok(Status::Ok);
            }
        }
    }
}

/// The metrics directory a report of `host` reads: `METRICS/<host>/` when the hub has one,
/// else the metrics directory itself (the host's own, on that host).
pub fn report_dir(metrics: &Path, host: Option<&str>) -> Result<PathBuf> {
    match host {
        Some(h) if !host_dir_ok(h) => Err(Error::usage(format!("--host '{h}': not a usable host name"))),
        Some(h) if metrics.join(h).is_dir() => Ok(metrics.join(h)),
        _ => Ok(metrics.to_path_buf()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_that_are_not_paths_are_refused() {
        assert!(host_dir_ok("web-1.example"));
        for bad in ["", "..", ".hidden", "a/b", "a b"] {
            assert!(!host_dir_ok(bad), "{bad}");
        }
    }
}
