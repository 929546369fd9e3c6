//! The store helpers against what actually goes wrong: writers killed with SIGKILL halfway,
//! and processes racing read-modify-write. The children are this test binary re-run with an
//! environment variable that turns one test into the worker.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use pitcrew::store;

use crate::util::Workdir;

const ROLE: &str = "PITCREW_STORE_CHILD";

fn child(test: &str, role: &str, path: &std::path::Path) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", test, "--nocapture", "--test-threads", "1"]).env(ROLE, role).env("PITCREW_STORE_PATH", path);
    c
}

/// Worker: rewrite the file forever with 1 MiB of one repeated letter, alternating.
#[test]
fn child_atomic_writer() {
    if std::env::var(ROLE).as_deref() != Ok("writer") {
        return;
    }
    let path = PathBuf::from(std::env::var("PITCREW_STORE_PATH").unwrap());
    for i in 0u64.. {
        let byte = b'A' + (i % 26) as u8;
        store::atomic_write(&path, &vec![byte; 1 << 20]).unwrap();
    }
}

/// Worker: add one to a counter, 200 times, each under the lock.
#[test]
fn child_counter() {
    if std::env::var(ROLE).as_deref() != Ok("counter") {
        return;
    }
    let path = PathBuf::from(std::env::var("PITCREW_STORE_PATH").unwrap());
    for _ in 0..200 {
        store::update_json(&path, store::kinds::LEDGER, store::Perm::Private, |n: &mut u64| {
            *n += 1;
            Ok(())
        })
        .unwrap();
    }
}

#[test]
fn a_writer_killed_halfway_leaves_a_whole_file() {
    let w = Workdir::new("sigkill-writer");
    let path = w.path("state.json");
    store::atomic_write(&path, &vec![b'Z'; 1 << 20]).unwrap();
    for round in 0..25u64 {
        let mut c = child("store::child_atomic_writer", "writer", &path).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(5 + (round * 7) % 40));
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
        let data = std::fs::read(&path).unwrap();
        assert_eq!(data.len(), 1 << 20, "round {round}: torn file");
        assert!(data.iter().all(|&b| b == data[0]), "round {round}: mixed contents");
    }
}

#[test]
fn racing_read_modify_writes_lose_no_update() {
    let w = Workdir::new("rmw");
    let path = w.path("counter.json");
    let kids: Vec<_> = (0..3).map(|_| child("store::child_counter", "counter", &path).spawn().unwrap()).collect();
    for mut k in kids {
        assert!(k.wait().unwrap().success());
    }
    let n: u64 = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(n, 600);
}
