//! Durable files: atomic rewrites, exclusive locks, whole-line appends.
//!
//! * [`atomic_write`]: write a temporary file in the same directory, fsync it, rename it over
//!   the target, fsync the directory. A reader sees the old file or the new one, never a mix,
//!   even if the writer is killed at any instruction. The temporary files of writers that
//!   were killed are removed by the next write of the same file.
//! * [`Lock`]: an exclusive `flock` (via fd-lock) on a sibling `.lock` file, held for the
//!   whole of a read-modify-write so concurrent runs never lose an update. The Agent Ops
//!   Kit's board used `board.lock` the same way, so old and new writers exclude each other.
//! * [`append_line`]: one `write` of a whole line with `O_APPEND`, so concurrent appenders
//!   never interleave inside a line.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use fd_lock::{RwLock, RwLockWriteGuard};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Create `dir` and its parents.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::path("cannot create directory", dir, e))
}

/// The temporary name used while rewriting `path`: hidden, in the same directory, unique to
/// this process, and not matching the target's extension (so globbing readers skip it).
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Replace `path` with `data` atomically and durably.
pub fn atomic_write(path: &Path, data: &[u8]) -> Result<()> {
    let dir = parent_dir(path);
    ensure_dir(&dir)?;
    let tmp = temp_path(path);
    let result = (|| -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o644).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| Error::path("cannot write", path, e))?;
    remove_stale_temps(path);
    Ok(())
}

/// How old a dead writer's temporary file must be before it is removed: a live write takes
/// milliseconds, and a writer in another PID namespace (a container sharing the directory)
/// looks dead from here.
const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// Remove `.NAME.PID.tmp` files of `path` left by writers that were killed mid-write: the
/// process is gone and the file is older than [`STALE_TEMP_AGE`]. Best effort.
pub fn remove_stale_temps(path: &Path) {
    let Some(name) = path.file_name().map(|n| format!(".{}.", n.to_string_lossy())) else { return };
    let Ok(entries) = fs::read_dir(parent_dir(path)) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let file = file.to_string_lossy();
        let Some(pid) = file.strip_prefix(name.as_str()).and_then(|r| r.strip_suffix(".tmp")) else { continue };
        let Ok(pid) = pid.parse::<i32>() else { continue };
        let dead = pid > 0
            && pid != std::process::id() as i32
            && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) == Err(nix::errno::Errno::ESRCH);
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= STALE_TEMP_AGE);
        if dead && old {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Serialize `value` as pretty JSON (with a final newline) and write it atomically.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let mut bytes =
        serde_json::to_vec_pretty(value).map_err(|e| Error::other(format!("serializing {}: {e}", path.display())))?;
    bytes.push(b'\n');
    atomic_write(path, &bytes)
}

/// Read a JSON file; `Ok(None)` when it does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => crate::ndjson::parse_json_doc(&bytes, path).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::path("cannot read", path, e)),
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
    let mut f = open_append(path)?;
    write_once(&mut f, line).map_err(|e| Error::path("cannot append to", path, e))
}

/// Open a file for appending, creating it and its directory.
pub fn open_append(path: &Path) -> Result<File> {
    ensure_dir(&parent_dir(path))?;
    OpenOptions::new().append(true).create(true).open(path).map_err(|e| Error::path("cannot open", path, e))
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
}

/// A held lock.
pub struct LockGuard<'a> {
    _guard: RwLockWriteGuard<'a, File>,
}

impl Lock {
    /// Open (creating) the lock file; [`Lock::acquire`] takes it.
    pub fn open(lock_path: &Path) -> Result<Lock> {
        ensure_dir(&parent_dir(lock_path))?;
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_path)
            .map_err(|e| Error::path("cannot open lock", lock_path, e))?;
        Ok(Lock { lock: RwLock::new(f), path: lock_path.to_path_buf() })
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

/// Read-modify-write a JSON state file under its lock: `f` gets the current value (the
/// default when the file does not exist), and the result is written atomically.
pub fn update_json<T, R>(path: &Path, f: impl FnOnce(&mut T) -> Result<R>) -> Result<R>
where
    T: DeserializeOwned + Serialize + Default,
{
    let mut lock = Lock::for_file(path)?;
    let _held = lock.acquire()?;
    let mut value: T = read_json(path)?.unwrap_or_default();
    let r = f(&mut value)?;
    write_json(path, &value)?;
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
            update_json(&p, |n: &mut u64| {
                *n += 1;
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(read_json::<u64>(&p).unwrap(), Some(3));
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
