//! An agent's latest checkpoint, the one revival restores it from.
//!
//! The spec keeps an agent's checkpoint in `checkpoints/<agent>/` (`state.json`,
//! `context.json`, `artifacts/`). The latest checkpoint is that directory when it holds a
//! `state.json`, or the newest of its sub-directories that holds one (an agent that keeps
//! several checkpoints, `checkpoints/<agent>/<stamp>/state.json`), by the time of the
//! `state.json`. Without any `state.json`, the agent file's `checkpoint` record (its
//! `last_checkpoint`) still names one: the command then gets `checkpoints/<agent>/` to
//! restore from. Every path is taken relative to the cell, never through a link.

use std::fs;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::model::{Agent, CheckpointSource};
use super::scan::Cell;

/// A checkpoint to restore from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Checkpoint {
    /// The directory to restore from.
    pub(crate) dir: PathBuf,
    /// Its `state.json`, when it has one.
    pub(crate) state: Option<PathBuf>,
    /// When it was taken: the time of `state.json`, else the agent file's `last_checkpoint`.
    pub(crate) at: Option<OffsetDateTime>,
}

/// A real directory (not a link) at `p`.
fn real_dir(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

/// The time of a real file (not a link) at `p`.
fn real_file_time(p: &Path) -> Option<OffsetDateTime> {
    let m = fs::symlink_metadata(p).ok().filter(|m| m.is_file())?;
    m.modified().ok().map(OffsetDateTime::from)
}

/// The agent's latest checkpoint, if it has one.
pub(crate) fn latest(cell: &Cell, agent: &Agent) -> Option<Checkpoint> {
    let base = cell.dir.join("checkpoints").join(&agent.id);
    let mut best: Option<Checkpoint> = None;
    if real_dir(&cell.dir.join("checkpoints")) && real_dir(&base) {
        let mut candidates = vec![base.clone()];
        if let Ok(rd) = fs::read_dir(&base) {
            let mut subs: Vec<PathBuf> = rd
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().as_encoded_bytes().first() != Some(&b'.'))
                .map(|e| e.path())
                .filter(|p| real_dir(p))
                .collect();
            subs.sort();
            candidates.extend(subs);
        }
        for dir in candidates {
            let state = dir.join("state.json");
            if let Some(t) = real_file_time(&state)
                && best.as_ref().and_then(|b| b.at).is_none_or(|bt| t >= bt)
            {
                best = Some(Checkpoint { dir, state: Some(state), at: Some(t) });
            }
        }
    }
    if best.is_some() {
        return best;
    }
    match agent.last_checkpoint {
        Some((t, CheckpointSource::File)) => Some(Checkpoint { dir: base, state: None, at: Some(t) }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cellscan::model::Picked;

    fn agent(id: &str, last: Option<OffsetDateTime>) -> Agent {
        Agent {
            file: format!("agents/{id}.json"),
            path: PathBuf::from(format!("agents/{id}.json")),
            id: id.into(),
            name: None,
            role: Picked::default(),
            status: Picked::default(),
            gateway: None,
            current_task: None,
            last_checkpoint: last.map(|t| (t, CheckpointSource::File)),
            heartbeat_id: id.into(),
        }
    }

    #[test]
    fn the_newest_state_json_wins_and_the_agent_file_stands_in() {
        let dir = std::env::temp_dir().join(format!("pitcrew-checkpoint-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let base = dir.join("checkpoints/a1");
        fs::create_dir_all(base.join("0001")).unwrap();
        fs::create_dir_all(base.join("0002")).unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(600);
        for (p, t) in [("state.json", old), ("0001/state.json", std::time::SystemTime::now())] {
            fs::write(base.join(p), "{}").unwrap();
            fs::File::options().write(true).open(base.join(p)).unwrap().set_modified(t).unwrap();
        }
        let cell = Cell::new(&dir);
        let cp = latest(&cell, &agent("a1", None)).unwrap();
        assert_eq!(cp.dir, base.join("0001"));
        assert_eq!(cp.state, Some(base.join("0001/state.json")));
        assert!(latest(&cell, &agent("a2", None)).is_none());
        let t = crate::clock::parse_ts("2026-11-23T10:05:00Z");
        let cp = latest(&cell, &agent("a2", t)).unwrap();
        assert_eq!((cp.dir, cp.state, cp.at), (dir.join("checkpoints/a2"), None, t));
        let _ = fs::remove_dir_all(&dir);
    }
}
