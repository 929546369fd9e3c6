//! A child process for the store's integration tests (tests/store.rs), built with the tools
//! so the tests find it next to them. It is no tool: scripts/install.sh never installs it.
//!
//!   pitcrew-store-worker writer PATH    rewrite PATH with 1 MiB of one letter, the next letter
//!                                       each time, until killed
//!   pitcrew-store-worker counter PATH   add one to the JSON number in PATH, 200 times, each
//!                                       time under the store's lock

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use pitcrew::store;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.as_slice() {
        [role, path] if role == "writer" => writer(PathBuf::from(path)),
        [role, path] if role == "counter" => counter(PathBuf::from(path)),
        _ => Err(pitcrew::Error::usage("usage: pitcrew-store-worker writer|counter PATH")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "pitcrew-store-worker: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn writer(path: PathBuf) -> pitcrew::Result<()> {
    for i in 0u64.. {
        let byte = b'A' + (i % 26) as u8;
        store::atomic_write(&path, &vec![byte; 1 << 20])?;
    }
    Ok(())
}

fn counter(path: PathBuf) -> pitcrew::Result<()> {
    for _ in 0..200 {
        store::update_json(&path, store::kinds::LEDGER, store::Perm::Private, |n: &mut u64| {
            *n += 1;
            Ok(())
        })?;
    }
    Ok(())
}
