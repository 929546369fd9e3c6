//! The store helpers against what actually goes wrong: writers killed with SIGKILL halfway,
//! and processes racing read-modify-write. The children are the helper binary
//! `pitcrew-store-worker` (tests/helpers/store_worker.rs).

use std::process::Command;
use std::time::Duration;

use pitcrew::store;

use crate::util::{Workdir, bin};

fn worker(role: &str, path: &std::path::Path) -> Command {
    let mut c = Command::new(bin("pitcrew-store-worker"));
    c.arg(role).arg(path);
    c
}

#[test]
#[ignore = "slow: a kill loop (25 writers killed with SIGKILL); scripts/test.sh runs it"]
fn a_writer_killed_halfway_leaves_a_whole_file() {
    let w = Workdir::new("sigkill-writer");
    let path = w.path("state.json");
    store::atomic_write(&path, &vec![b'Z'; 1 << 20]).unwrap();
    for round in 0..25u64 {
        let mut c = worker("writer", &path).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(5 + (round * 7) % 40));
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
        let data = std::fs::read(&path).unwrap();
        assert_eq!(data.len(), 1 << 20, "round {round}: torn file");
        assert!(data.iter().all(|&b| b == data[0]), "round {round}: mixed contents");
    }
}

#[test]
#[ignore = "slow: a load run (3 processes racing 600 locked updates); scripts/test.sh runs it"]
fn racing_read_modify_writes_lose_no_update() {
    let w = Workdir::new("rmw");
    let path = w.path("counter.json");
    let kids: Vec<_> = (0..3).map(|_| worker("counter", &path).spawn().unwrap()).collect();
    for mut k in kids {
        assert!(k.wait().unwrap().success());
    }
    let n: u64 = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(n, 600);
}
