//! Durable files: atomic rewrites, exclusive locks, whole-line appends, and the one bounded
//! reader.
//!
//! * [`atomic_write`]: write a temporary file in the same directory, fsync it, rename it over
//!   the target, fsync the directory. A reader sees the old file or the new one, never a mix,
//!   even if the writer is killed at any instruction. Temporaries are created exclusively,
//!   never through a link, under names no one can predict; those of writers that were killed
//!   are removed by the next write of the same file. A target that is a symbolic link is
//!   refused. ([`dir`] has the details.)
//! * [`Lock`]: an exclusive `flock` (via fd-lock) on a sibling `.lock` file, held for the
//!   whole of a read-modify-write so concurrent runs never lose an update. The Agent Ops
//!   Kit's board used `board.lock` the same way, so old and new writers exclude each other.
//! * [`append_line`]: one `write` of a whole line with `O_APPEND`, so concurrent appenders
//!   never interleave inside a line; never through a link, never into a FIFO.
//! * [`read`]: every file read whole is read through [`read::read`] with a cap for its kind
//!   ([`kinds`]); regular files only.
//! * [`daily`]: directories of one file per day (the metrics, the alert and restart
//!   histories): append, prune, compact.
//! * [`Dir`]: the same operations relative to a directory held open, for places whose
//!   contents others write (mission cells).

pub mod daily;
pub mod dir;
pub mod read;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use fd_lock::{RwLock, RwLockWriteGuard};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

pub use dir::{Dir, Perm, parse_temp_name};
pub use read::{Kind, kinds};

/// Create `dir` and its parents.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::path("cannot create directory", dir, e))
}

/// The directory of `path` (created) held open, and the file's name in it.
fn place(path: &Path) -> Result<(Dir, String)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::other(format!("{}: not a file name pitcrew can write", path.display())))?;
    Ok((Dir::create(&parent_dir(path))?, name.to_string()))
}

/// Replace `path` with `data` atomically and durably (mode 0644).
pub fn atomic_write(path: &Path, data: &[u8]) -> Result<()> {
    atomic_write_as(path, data, Perm::Shared)
}

/// [`atomic_write`] with the given permissions for a new file.
pub fn atomic_write_as(path: &Path, data: &[u8], perm: Perm) -> Result<()> {
    let (dir, name) = place(path)?;
    dir.atomic_write(&name, data, perm)
}

/// Serialize `value` as pretty JSON (with a final newline) and write it atomically.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    write_json_as(path, value, Perm::Shared)
}

/// [`write_json`] with the given permissions for a new file.
pub fn write_json_as<T: Serialize + ?Sized>(path: &Path, value: &T, perm: Perm) -> Result<()> {
    let (dir, name) = place(path)?;
    dir.write_json(&name, value, perm)
}

/// Read a JSON file of `kind` through the bounded reader; `Ok(None)` when it does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path, kind: Kind) -> Result<Option<T>> {
    match read::read_optional(path, kind)? {
        Some(bytes) => crate::json::parse_json_doc(&bytes, path).map(Some),
        None => Ok(None),
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// fsync a directory so a rename in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Append one whole line (which must end in `\n`) with a single `write` call.
pub fn append_line(path: &Path, line: &[u8]) -> Result<()> {
    append_line_as(path, line, Perm::Shared)
}

/// [`append_line`] with the given permissions for a new file.
pub fn append_line_as(path: &Path, line: &[u8], perm: Perm) -> Result<()> {
    let (dir, name) = place(path)?;
    dir.append_line(&name, line, perm)
}

/// Open a file for appending, creating it and its directory (never through a link).
pub fn open_append(path: &Path) -> Result<File> {
    open_append_as(path, Perm::Shared)
}

/// [`open_append`] with the given permissions for a new file.
pub fn open_append_as(path: &Path, perm: Perm) -> Result<File> {
    let (dir, name) = place(path)?;
    dir.open_append(&name, perm)
}

/// Write a buffer in one `write` (O_APPEND files take it whole); a short write, which the
/// kernel only does on a full disk or a signal, is finished with further writes.
pub fn write_once(f: &mut File, buf: &[u8]) -> io::Result<()> {
    let n = f.write(buf)?;
    if n < buf.len() {
        f.write_all(&buf[n..])?;
    }
    Ok(())
}

/// An exclusive lock on `<path>.lock` (or a named lock file), released on drop.
pub struct Lock {
    lock: RwLock<File>,
    path: PathBuf,
    identity: Option<(u64, u64)>,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock").field("path", &self.path).finish()
    }
}

/// A held lock.
pub struct LockGuard<'a> {
    _guard: RwLockWriteGuard<'a, File>,
}

impl Lock {
    /// Open (creating) the lock file, never through a link; [`Lock::acquire`] takes it.
    pub fn open(lock_path: &Path) -> Result<Lock> {
        let (dir, name) = place(lock_path)?;
        dir.lock(&name)
    }

    /// A lock on a file (or directory) already open.
    pub fn from_file(file: File, path: PathBuf) -> Lock {
        let identity = dir::identity_of(&file);
        Lock { lock: RwLock::new(file), path, identity }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Device and inode of the file locked, to compare with what is at its path now.
    pub fn identity(&self) -> Option<(u64, u64)> {
        self.identity
    }

    /// The lock file conventionally used for `path`: `path` with `.lock` appended.
    pub fn for_file(path: &Path) -> Result<Lock> {
        let mut p = path.as_os_str().to_owned();
        p.push(".lock");
        Lock::open(Path::new(&p))
    }

    /// Block until the lock is ours.
    pub fn acquire(&mut self) -> Result<LockGuard<'_>> {
        let path = self.path.clone();
        let guard = self.lock.write().map_err(|e| Error::path("cannot lock", &path, e))?;
        Ok(LockGuard { _guard: guard })
    }

    /// Take the lock if it is free; `Ok(None)` when another process holds it.
    pub fn try_acquire(&mut self) -> Result<Option<LockGuard<'_>>> {
        let path = self.path.clone();
        match self.lock.try_write() {
            Ok(guard) => Ok(Some(LockGuard { _guard: guard })),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(Error::path("cannot lock", &path, e)),
        }
    }
}

/// Read-modify-write a JSON state file of `kind` under its lock: `f` gets the current value
/// (the default when the file does not exist), and the result is written atomically.
pub fn update_json<T, R>(path: &Path, kind: Kind, perm: Perm, f: impl FnOnce(&mut T) -> Result<R>) -> Result<R>
where
    T: DeserializeOwned + Serialize + Default,
{
    let mut lock = Lock::for_file(path)?;
    let _held = lock.acquire()?;
    let mut value: T = read_json(path, kind)?.unwrap_or_default();
    let r = f(&mut value)?;
    write_json_as(path, &value, perm)?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pitcrew-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let d = tmpdir("aw");
        let p = d.join("x.json");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
    }

    #[test]
    fn temporary_files_of_killed_writers_are_removed_once_old() {
        let d = tmpdir("stale");
        let p = d.join("state.json");
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        // No process has a pid this high (pid_max is at most 2^22).
        for (name, age) in
            [(".state.json.99999999.tmp", old), (".state.json.99999998.tmp", std::time::SystemTime::now())]
        {
            let f = File::create(d.join(name)).unwrap();
            f.set_modified(age).unwrap();
        }
        let other = d.join(".other.json.99999999.tmp");
        File::create(&other).unwrap().set_modified(old).unwrap();
        atomic_write(&p, b"{}").unwrap();
        assert!(!d.join(".state.json.99999999.tmp").exists(), "dead and old: removed");
        assert!(d.join(".state.json.99999998.tmp").exists(), "dead but fresh: kept");
        assert!(other.exists(), "another file's temporary: kept");
    }

    #[test]
    fn update_json_starts_from_default() {
        let d = tmpdir("upd");
        let p = d.join("state.json");
        for _ in 0..3 {
            update_json(&p, kinds::LEDGER, Perm::Private, |n: &mut u64| {
                *n += 1;
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(read_json::<u64>(&p, kinds::LEDGER).unwrap(), Some(3));
    }

    #[test]
    fn try_acquire_sees_a_held_lock() {
        let d = tmpdir("lock");
        let mut a = Lock::open(&d.join("l")).unwrap();
        let mut b = Lock::open(&d.join("l")).unwrap();
        let held = a.acquire().unwrap();
        assert!(b.try_acquire().unwrap().is_none());
        drop(held);
        assert!(b.try_acquire().unwrap().is_some());
    }
}
