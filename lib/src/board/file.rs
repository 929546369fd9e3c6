//! board.json on disk: where it and its lock and backup live, how it is read (from the backup
//! when it is corrupt, saying so), and how it is changed: one read-modify-write under an
//! exclusive `flock` held for the whole span, the previous version saved as the backup, the
//! new one written atomically (temporary file, fsync, rename, fsync of the directory).
//!
//! The lock is the kit's `board.lock`, so the kit's Python writers and pitcrew exclude each
//! other. A writer killed at any instruction leaves board.json whole (the old version or the
//! new one) and the backup whole; its temporary file is removed by the next writer.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use super::model::Board;
use crate::clock::{self, Clock};
use crate::entry::Diag;
use crate::error::{Error, Result};
use crate::store;

/// A board file and its companions.
#[derive(Debug, Clone)]
pub(crate) struct BoardFile {
    /// The board itself.
    pub(crate) path: PathBuf,
    /// The lock file: `board.json` → `board.lock` (the kit's name); other names get `.lock`
    /// in place of `.json`, or appended.
    pub(crate) lock: PathBuf,
    /// The previous version: `board.json.bak`.
    pub(crate) backup: PathBuf,
    /// How long a writer waits for the lock before giving up.
    pub(crate) lock_timeout: Duration,
}

/// Where the board came from.
#[derive(Debug)]
enum Origin {
    /// No board file yet.
    New,
    /// board.json, as these bytes.
    Main(Vec<u8>),
    /// board.json was unusable (`problem`); the backup was read instead.
    Backup { problem: String, saved: String },
}

impl BoardFile {
    pub(crate) fn new(path: PathBuf, lock_timeout: Duration) -> BoardFile {
        let lock = match path.extension() {
            Some(e) if e == "json" => path.with_extension("lock"),
            _ => with_suffix(&path, ".lock"),
        };
        let backup = with_suffix(&path, ".bak");
        BoardFile { path, lock, backup, lock_timeout }
    }

    /// Read the board for looking only: no lock is needed, since every writer replaces the
    /// file atomically. A corrupt board.json is reported and the backup is read in its place;
    /// nothing is moved.
    pub(crate) fn read(&self, diag: &Diag) -> Result<Board> {
        let (board, origin) = self.load()?;
        if let Origin::Backup { problem, saved } = &origin {
            diag.warn(format_args!(
                "{} {problem}; using the backup {} ({saved})",
                self.path.display(),
                self.backup.display()
            ));
        }
        Ok(board)
    }

    /// Change the board: `f` gets it under the lock; when it made a change, the previous
    /// version becomes the backup and the new one is written atomically before the lock is
    /// released. A board.json that is corrupt is kept aside as `board.json.corrupt-STAMP`
    /// and the change is made to the backup; with no usable backup nothing is written.
    pub(crate) fn update<R>(&self, clock: &Clock, diag: &Diag, f: impl FnOnce(&mut Board) -> Result<R>) -> Result<R> {
        let dir = parent(&self.path);
        store::ensure_dir(&dir)?;
        with_lock(&self.lock, self.lock_timeout, || {
            self.remove_stale_temps(&dir);
            let (mut board, origin) = self.load()?;
            let result = f(&mut board);
            let written = match (&result, board.is_dirty()) {
                (Ok(_), true) => Some(self.commit(&board, &origin, clock)?),
                _ => None,
            };
            if let Origin::Backup { problem, saved } = &origin {
                let kept = match &written {
                    Some(Some(aside)) => format!("kept it as {}; ", aside.display()),
                    _ => String::new(),
                };
                diag.warn(format_args!(
                    "{} {problem}; {kept}using the backup {} ({saved})",
                    self.path.display(),
                    self.backup.display()
                ));
            }
            result
        })
    }

    /// Write `board`: back up what it was read from, then replace board.json. Returns where a
    /// corrupt board.json was kept.
    fn commit(&self, board: &Board, origin: &Origin, clock: &Clock) -> Result<Option<PathBuf>> {
        let bytes = board.to_bytes()?;
        let aside = match origin {
            Origin::New => None,
            Origin::Main(previous) => {
                store::atomic_write(&self.backup, previous)?;
                None
            }
            // The backup is what the board was read from: it stays as it is.
            Origin::Backup { .. } => Some(self.keep_corrupt(clock)?),
        };
        store::atomic_write(&self.path, &bytes)?;
        Ok(aside)
    }

    /// Keep the corrupt board.json as `board.json.corrupt-STAMP` (a second name for the same
    /// file, so it is never missing; a copy where links are not possible).
    fn keep_corrupt(&self, clock: &Clock) -> Result<PathBuf> {
        let stamp = clock::fmt_ts(clock.now()).replace(['-', ':'], "");
        for n in 1..1000 {
            let suffix = if n == 1 { format!(".corrupt-{stamp}") } else { format!(".corrupt-{stamp}-{n}") };
            let aside = with_suffix(&self.path, &suffix);
            if fs::symlink_metadata(&aside).is_ok() {
                continue;
            }
            return match fs::hard_link(&self.path, &aside) {
                Ok(()) => Ok(aside),
                Err(_) => {
                    // A copy through the store: a fresh file, never written through a link.
                    let bytes = crate::store::read::read(&self.path, crate::store::kinds::BOARD)
                        .map_err(|e| Error::path("cannot keep the corrupt board as", &aside, e))?;
                    store::atomic_write(&aside, &bytes)?;
                    Ok(aside)
                }
            };
        }
        Err(Error::other(format!("cannot find a free name to keep the corrupt {} as", self.path.display())))
    }

    /// Read board.json, or the backup when board.json is unusable.
    fn load(&self) -> Result<(Board, Origin)> {
        let bytes = match crate::store::read::read(&self.path, crate::store::kinds::BOARD) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Board::new(), Origin::New)),
            Err(e) => return Err(Error::path("cannot read", &self.path, e)),
        };
        let problem = match Board::parse(&bytes) {
            Ok(board) => return Ok((board, Origin::Main(bytes))),
            Err(p) => p,
        };
        let refuse = |why: String| {
            Error::other(format!(
                "{} {problem}, and {why}; nothing was changed: repair {} or move it away",
                self.path.display(),
                self.path.display()
            ))
        };
        let backup = match crate::store::read::read(&self.backup, crate::store::kinds::BOARD) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(refuse(format!("there is no backup {}", self.backup.display())));
            }
            Err(e) => return Err(refuse(format!("its backup {} cannot be read: {e}", self.backup.display()))),
        };
        match Board::parse(&backup) {
            Ok(board) => {
                let saved = match fs::metadata(&self.backup).and_then(|m| m.modified()) {
                    Ok(t) => format!("saved {}", clock::fmt_ts(OffsetDateTime::from(t))),
                    Err(_) => "saved at an unknown time".to_string(),
                };
                Ok((board, Origin::Backup { problem, saved }))
            }
            Err(p) => Err(refuse(format!("its backup {} {p}", self.backup.display()))),
        }
    }

    /// Remove temporary files that killed writers left (`.board.json.PID.RANDOM.tmp` and
    /// `.board.json.bak.PID.RANDOM.tmp`). Only called under the lock, when no writer is running.
    fn remove_stale_temps(&self, dir: &Path) {
        let names: Vec<String> = [&self.path, &self.backup]
            .iter()
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into())
            .collect();
        let Ok(entries) = fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let stale = store::parse_temp_name(&name).is_some_and(|(target, _)| names.iter().any(|n| n == target));
            if stale {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Run `f` holding the exclusive lock on `lock_path`, waiting at most `timeout` for it.
///
/// The lock is first tried without waiting. When another writer holds it, a helper thread
/// waits for it with a blocking `flock` (woken by the kernel the moment it is free, which
/// polling would not be) while this thread watches the clock; the helper holds the lock until
/// `f` has returned. A `flock` belongs to the open file, not to a thread, so the lock covers
/// the whole process.
pub(crate) fn with_lock<R>(lock_path: &Path, timeout: Duration, f: impl FnOnce() -> Result<R>) -> Result<R> {
    let mut lock = store::Lock::open(lock_path)?;
    if let Some(_held) = lock.try_acquire()? {
        return f();
    }
    drop(lock);
    let holder = Holder::wait(lock_path, timeout)?;
    let result = f();
    drop(holder);
    result
}

/// A helper thread that holds a lock until dropped.
struct Holder {
    release: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Holder {
    fn wait(lock_path: &Path, timeout: Duration) -> Result<Holder> {
        let (acquired_tx, acquired_rx) = mpsc::channel::<Result<()>>();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let path = lock_path.to_path_buf();
        let started = SystemTime::now();
        let thread = thread::Builder::new()
            .name("board-lock".into())
            .spawn(move || {
                let mut lock = match store::Lock::open(&path) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = acquired_tx.send(Err(e));
                        return;
                    }
                };
                let guard = match lock.acquire() {
                    Ok(g) => g,
                    Err(e) => {
                        let _ = acquired_tx.send(Err(e));
                        return;
                    }
                };
                // Nobody waits any more (timed out): let go at once.
                if acquired_tx.send(Ok(())).is_ok() {
                    let _ = release_rx.recv();
                }
                drop(guard);
            })
            .map_err(|e| Error::io("starting the lock thread", e))?;
        match acquired_rx.recv_timeout(timeout) {
            Ok(Ok(())) => Ok(Holder { release: Some(release_tx), thread: Some(thread) }),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                let waited = started.elapsed().map(|d| d.as_secs_f64()).unwrap_or(timeout.as_secs_f64());
                Err(Error::other(format!(
                    "{}: another writer still holds the lock after {waited:.1}s; giving up (see --lock-timeout)",
                    lock_path.display()
                )))
            }
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value};

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pitcrew-board-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn add(board: &mut Board, title: &str) -> Result<String> {
        let id = board.new_id()?;
        let mut t = Map::new();
        t.insert("id".into(), Value::from(id.clone()));
        t.insert("title".into(), Value::from(title));
        t.insert("column".into(), Value::from("open"));
        board.push(t);
        Ok(id)
    }

    fn clock() -> Clock {
        Clock::from_arg(Some("2026-11-23T10:30:00.123Z")).unwrap()
    }

    #[test]
    fn names_follow_the_kit() {
        let f = BoardFile::new(PathBuf::from("/h/state/board.json"), Duration::ZERO);
        assert_eq!(f.lock, Path::new("/h/state/board.lock"));
        assert_eq!(f.backup, Path::new("/h/state/board.json.bak"));
        let f = BoardFile::new(PathBuf::from("team"), Duration::ZERO);
        assert_eq!((f.lock.as_path(), f.backup.as_path()), (Path::new("team.lock"), Path::new("team.bak")));
    }

    #[test]
    fn every_write_backs_up_the_previous_version() {
        let d = tmpdir("backup");
        let f = BoardFile::new(d.join("board.json"), Duration::from_secs(5));
        let (diag, msgs) = Diag::memory("board");
        f.update(&clock(), &diag, |b| add(b, "one")).unwrap();
        assert!(!f.backup.exists(), "a new board has nothing to back up");
        let first = fs::read(&f.path).unwrap();
        f.update(&clock(), &diag, |b| add(b, "two")).unwrap();
        assert_eq!(fs::read(&f.backup).unwrap(), first);
        // A change that changes nothing writes nothing.
        let second = fs::read(&f.path).unwrap();
        f.update(&clock(), &diag, |_| Ok(())).unwrap();
        assert_eq!(fs::read(&f.backup).unwrap(), first);
        assert_eq!(fs::read(&f.path).unwrap(), second);
        // A failed change writes nothing either.
        let e = f.update(&clock(), &diag, |b| {
            add(b, "three")?;
            Err::<(), _>(Error::usage("no"))
        });
        assert!(e.is_err());
        assert_eq!(fs::read(&f.path).unwrap(), second);
        assert_eq!(msgs.text(), "");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 3, "board, backup, lock");
    }

    #[test]
    fn a_corrupt_board_is_kept_aside_and_the_backup_used() {
        let d = tmpdir("corrupt");
        let f = BoardFile::new(d.join("board.json"), Duration::from_secs(5));
        let (diag, msgs) = Diag::memory("board");
        f.update(&clock(), &diag, |b| add(b, "one")).unwrap();
        f.update(&clock(), &diag, |b| add(b, "two")).unwrap();
        fs::write(&f.path, b"{\"tasks\": [\n  {\"id\": ").unwrap();

        // Readers use the backup and move nothing.
        let b = f.read(&diag).unwrap();
        assert_eq!(b.tasks().len(), 1);
        let text = msgs.text();
        assert!(text.contains("board.json is not valid JSON (line 2, column"), "{text}");
        assert!(text.contains("using the backup") && !text.contains("kept it as"), "{text}");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 3);

        // A writer keeps the corrupt file, works from the backup, and says so.
        f.update(&clock(), &diag, |b| add(b, "three")).unwrap();
        let aside = d.join("board.json.corrupt-20261123T103000.123Z");
        assert_eq!(fs::read(&aside).unwrap(), b"{\"tasks\": [\n  {\"id\": ");
        let b = f.read(&diag).unwrap();
        let titles: Vec<&str> = b.tasks().map(|t| t.title()).collect();
        assert_eq!(titles, ["one", "three"]);
        assert!(msgs.text().contains(&format!("kept it as {}", aside.display())), "{}", msgs.text());
    }

    #[test]
    fn with_no_usable_backup_nothing_is_written() {
        let d = tmpdir("nobackup");
        let f = BoardFile::new(d.join("board.json"), Duration::from_secs(5));
        let (diag, _) = Diag::memory("board");
        fs::write(&f.path, b"garbage").unwrap();
        let e = f.update(&clock(), &diag, |b| add(b, "x")).unwrap_err().to_string();
        assert!(e.contains("is not valid JSON") && e.contains("there is no backup"), "{e}");
        fs::write(&f.backup, b"").unwrap();
        let e = f.update(&clock(), &diag, |b| add(b, "x")).unwrap_err().to_string();
        assert!(e.contains("board.json.bak is empty"), "{e}");
        assert!(f.read(&diag).is_err());
        assert_eq!(fs::read(&f.path).unwrap(), b"garbage");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 3, "board, backup, lock: nothing kept aside");
    }

    #[test]
    fn stale_temporary_files_are_removed() {
        let d = tmpdir("temps");
        let f = BoardFile::new(d.join("board.json"), Duration::from_secs(5));
        for junk in [".board.json.123.tmp", ".board.json.bak.77.tmp"] {
            fs::write(d.join(junk), b"half").unwrap();
        }
        fs::write(d.join(".board.json.x.tmp"), b"not ours").unwrap();
        let (diag, _) = Diag::memory("board");
        f.update(&clock(), &diag, |b| add(b, "x")).unwrap();
        assert!(!d.join(".board.json.123.tmp").exists() && !d.join(".board.json.bak.77.tmp").exists());
        assert!(d.join(".board.json.x.tmp").exists());
    }

    #[test]
    fn a_held_lock_is_waited_for_and_a_timeout_gives_up() {
        let d = tmpdir("lockwait");
        let f = BoardFile::new(d.join("board.json"), Duration::from_millis(200));
        let mut other = store::Lock::open(&f.lock).unwrap();
        let held = other.acquire().unwrap();
        let (diag, _) = Diag::memory("board");
        let e = f.update(&clock(), &diag, |b| add(b, "x")).unwrap_err().to_string();
        assert!(e.contains("another writer still holds the lock"), "{e}");
        drop(held);
        // Held now, released while the writer waits.
        let mut other = store::Lock::open(&f.lock).unwrap();
        let (tx, rx) = mpsc::channel();
        let t = thread::spawn(move || {
            let _g = other.acquire().unwrap();
            tx.send(()).unwrap();
            thread::sleep(Duration::from_millis(100));
        });
        rx.recv().unwrap();
        let f = BoardFile::new(d.join("board.json"), Duration::from_secs(10));
        f.update(&clock(), &diag, |b| add(b, "x")).unwrap();
        t.join().unwrap();
        assert_eq!(f.read(&diag).unwrap().tasks().len(), 1);
    }
}
