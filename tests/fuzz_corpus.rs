//! The fuzz corpus, replayed: every input under `fuzz/corpus/<target>/` and
//! `fuzz/seeds/<target>/` (the hand-written seeds, and `regression-*` inputs of bugs the
//! fuzzers found) goes through the same function its fuzz target calls (`fuzz/src/lib.rs`),
//! so CI checks in seconds, without cargo-fuzz, that nothing the fuzzers once found or
//! reached breaks again.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod targets;

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = Vec::new();
    for kind in ["corpus", "seeds"] {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(kind).join(target);
        if let Ok(rd) = std::fs::read_dir(&dir) {
            files.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_file()));
        }
    }
    files.sort();
    files
}

#[test]
#[ignore = "slow: replays the whole fuzz corpus (thousands of inputs); scripts/test.sh runs it"]
fn every_fuzz_target_has_a_corpus_and_replays_it() {
    let mut empty = Vec::new();
    for (name, run) in targets::TARGETS {
        let files = corpus(name);
        if files.is_empty() {
            empty.push(*name);
        }
        for f in files {
            let data = std::fs::read(&f).unwrap();
            let caught = std::panic::catch_unwind(|| run(&data));
            assert!(caught.is_ok(), "fuzz target {name} fails on {}", f.display());
        }
    }
    assert!(empty.is_empty(), "no corpus for {empty:?}");
}

#[test]
fn every_target_file_is_listed() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("fuzz_targets");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.path().file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = targets::TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}
