//! A directory held open, and every write made in it: files are named relative to the
//! directory's descriptor (`openat`, `renameat`), so a directory swapped for a symbolic link
//! after it was opened changes nothing, and no write ever follows a link.
//!
//! * Temporaries are created with `O_CREAT | O_EXCL | O_NOFOLLOW` under a name no one can
//!   predict (`.NAME.PID.RANDOM.tmp`): a file or link planted in advance makes the create fail
//!   (and another name is tried), it is never written through.
//! * A target that is a symbolic link is refused, with an error that names it.
//! * Appends open with `O_NOFOLLOW` and refuse anything but a regular file (a FIFO would block
//!   the writer).
//! * [`Dir::sub`] opens a sub-directory with `O_NOFOLLOW`: inside a mission cell, whose files
//!   agents write, `logs/` being a link to elsewhere is refused rather than followed.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, open, openat, renameat};
use nix::sys::stat::{Mode, SFlag, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::read::{self, Kind, Src};
use crate::error::{Error, Result};

/// Who may read a file pitcrew creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perm {
    /// 0644: files meant to be read by others (metrics, boards, cells, ticks, reports).
    Shared,
    /// 0600: state that may hold what records carried (alerts, heartbeat metadata, ledgers).
    Private,
}

impl Perm {
    fn mode(self) -> Mode {
        Mode::from_bits_truncate(match self {
            Perm::Shared => 0o644,
            Perm::Private => 0o600,
        })
    }
}

/// How old a dead writer's temporary file must be before it is removed: a live write takes
/// milliseconds, and a writer in another PID namespace (a container sharing the directory)
/// looks dead from here.
pub const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// A directory held open.
#[derive(Debug)]
pub struct Dir {
    fd: File,
    path: PathBuf,
}

fn is_symlink_err(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(nix::libc::ELOOP) | Some(nix::libc::EMLINK))
}

/// A name of one path component: no `/`, not `.` or `..`, not empty.
fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("'{name}' is not a file name")));
    }
    Ok(())
}

/// The name of a temporary for `name`: hidden, unique to this process and unpredictable.
fn temp_name(name: &str) -> String {
    let mut r = [0u8; 8];
    // Without randomness the name is still unique per attempt (the create is exclusive).
    if getrandom::getrandom(&mut r).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        r = (t as u64).to_le_bytes();
    }
    format!(".{name}.{}.{:016x}.tmp", std::process::id(), u64::from_le_bytes(r))
}

/// The target and the writer's pid of a temporary's name (`.NAME.PID.RANDOM.tmp`, or the
/// older `.NAME.PID.tmp`).
pub fn parse_temp_name(file: &str) -> Option<(&str, i32)> {
    let rest = file.strip_prefix('.')?.strip_suffix(".tmp")?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (head, last) = rest.rsplit_once('.')?;
    if last.len() == 16 && last.bytes().all(|b| b.is_ascii_hexdigit()) {
        let (target, pid) = head.rsplit_once('.')?;
        if digits(pid) {
            return Some((target, pid.parse().ok()?));
        }
    }
    if digits(last) {
        return Some((head, last.parse().ok()?));
    }
    None
}

impl Dir {
    /// Open a directory by its path (a link on the way there is followed: the user chose
    /// where pitcrew's files live).
    pub fn open(path: &Path) -> Result<Dir> {
        let fd = open(path, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| Error::path("cannot open directory", path, e.into()))?;
        Ok(Dir { fd: File::from(fd), path: path.to_path_buf() })
    }

    /// Create a directory (and its parents) and open it.
    pub fn create(path: &Path) -> Result<Dir> {
        super::ensure_dir(path)?;
        Dir::open(path)
    }

    /// Another handle on the same directory.
    pub fn try_clone(&self) -> Result<Dir> {
        let fd = self.fd.try_clone().map_err(|e| Error::path("cannot open directory", &self.path, e))?;
        Ok(Dir { fd, path: self.path.clone() })
    }

    /// Open a sub-directory without following a link.
    pub fn sub(&self, name: &str) -> Result<Dir> {
        let path = self.path.join(name);
        let opened = check_name(name).and_then(|()| {
            openat(
                self.fd.as_fd(),
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(io::Error::from)
        });
        match opened {
            Ok(fd) => Ok(Dir { fd: File::from(fd), path }),
            // O_DIRECTORY|O_NOFOLLOW on a link fails with ENOTDIR on Linux.
            Err(e) if is_symlink_err(&e) || (e.raw_os_error() == Some(nix::libc::ENOTDIR) && self.is_link(name)) => {
                Err(Error::path("cannot open directory", &path, read::symlink_refused()))
            }
            Err(e) => Err(Error::path("cannot open directory", &path, e)),
        }
    }

    /// Open a sub-directory, creating it when missing (never through a link).
    pub fn sub_create(&self, name: &str) -> Result<Dir> {
        check_name(name).map_err(|e| Error::path("cannot create directory", &self.path.join(name), e))?;
        match mkdirat(self.fd.as_fd(), name, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(Error::path("cannot create directory", &self.path.join(name), e.into())),
        }
        self.sub(name)
    }

    /// The directory's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of a file in the directory, for messages.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The descriptor, for readers that open files in it.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn is_link(&self, name: &str) -> bool {
        fstatat(self.fd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK)
    }

    /// Refuse a target that is a symbolic link.
    fn refuse_link(&self, name: &str, what: &str) -> Result<()> {
        if self.is_link(name) {
            return Err(Error::path(what, &self.join(name), read::symlink_refused()));
        }
        Ok(())
    }

    /// fsync the directory so a rename or a create in it is durable.
    pub fn sync(&self) -> io::Result<()> {
        self.fd.sync_all()
    }

    /// Create a fresh temporary for `name`, exclusively, under an unpredictable name.
    pub fn temp(&self, name: &str, perm: Perm) -> Result<Temp<'_>> {
        check_name(name).map_err(|e| Error::path("cannot write", &self.join(name), e))?;
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mut last = io::Error::other("no temporary name was free");
        for _ in 0..8 {
            let tmp = temp_name(name);
            match openat(self.fd.as_fd(), tmp.as_str(), flags, perm.mode()) {
                Ok(fd) => return Ok(Temp { dir: self, name: tmp, file: Some(File::from(fd)) }),
                Err(Errno::EEXIST) => last = io::Error::from(Errno::EEXIST),
                Err(e) => return Err(Error::path("cannot write", &self.join(name), e.into())),
            }
        }
        Err(Error::path("cannot write", &self.join(name), last))
    }

    /// Replace `name` with `data` atomically and durably: write a temporary, fsync it, rename
    /// it over the target, fsync the directory. A reader sees the old file or the new one.
    pub fn atomic_write(&self, name: &str, data: &[u8], perm: Perm) -> Result<()> {
        self.refuse_link(name, "cannot write")?;
        let mut tmp = self.temp(name, perm)?;
        let written = tmp.file().and_then(|f| {
            f.write_all(data)?;
            f.sync_all()
        });
        written.map_err(|e| Error::path("cannot write", &self.join(name), e))?;
        tmp.commit(name)?;
        self.remove_stale_temps(name);
        Ok(())
    }

    /// Serialize `value` as pretty JSON (with a final newline) and write it atomically.
    pub fn write_json<T: serde::Serialize + ?Sized>(&self, name: &str, value: &T, perm: Perm) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(value)
            .map_err(|e| Error::other(format!("serializing {}: {e}", self.join(name).display())))?;
        bytes.push(b'\n');
        self.atomic_write(name, &bytes, perm)
    }

    /// Open `name` for appending (creating it), never through a link, and only a regular file.
    pub fn open_append(&self, name: &str, perm: Perm) -> Result<File> {
        let path = self.join(name);
        check_name(name).map_err(|e| Error::path("cannot open", &path, e))?;
        let flags = OFlag::O_WRONLY
            | OFlag::O_APPEND
            | OFlag::O_CREAT
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC
            | OFlag::O_NOCTTY;
        let file = match openat(self.fd.as_fd(), name, flags, perm.mode()) {
            Ok(fd) => File::from(fd),
            Err(Errno::ELOOP) => return Err(Error::path("cannot open", &path, read::symlink_refused())),
            // A FIFO without a reader.
            Err(Errno::ENXIO) => {
                return Err(Error::path("cannot open", &path, io::Error::other("not a regular file (a FIFO)")));
            }
            Err(e) => return Err(Error::path("cannot open", &path, e.into())),
        };
        let meta = file.metadata().map_err(|e| Error::path("cannot open", &path, e))?;
        let ft = meta.file_type();
        if !ft.is_file() {
            let what = if ft.is_fifo() {
                "a FIFO"
            } else if ft.is_char_device() {
                "a character device"
            } else {
                "not a regular file"
            };
            return Err(Error::path("cannot open", &path, io::Error::other(format!("not a regular file ({what})"))));
        }
        nix::fcntl::fcntl(file.as_fd(), nix::fcntl::FcntlArg::F_SETFL(OFlag::O_APPEND))
            .map_err(|e| Error::path("cannot open", &path, e.into()))?;
        Ok(file)
    }

    /// Append one whole line (which must end in `\n`) with a single `write` call.
    pub fn append_line(&self, name: &str, line: &[u8], perm: Perm) -> Result<()> {
        let mut f = self.open_append(name, perm)?;
        super::write_once(&mut f, line).map_err(|e| Error::path("cannot append to", &self.join(name), e))
    }

    /// Read a whole file of `kind`; `Ok(None)` when it does not exist.
    pub fn read(&self, name: &str, kind: Kind) -> Result<Option<Vec<u8>>> {
        let path = self.join(name);
        check_name(name).map_err(|e| Error::path("cannot read", &path, e))?;
        match read::read_src(Src::At(self.fd.as_fd(), name), kind) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::path("cannot read", &path, e)),
        }
    }

    /// Read a JSON file; `Ok(None)` when it does not exist.
    pub fn read_json<T: serde::de::DeserializeOwned>(&self, name: &str, kind: Kind) -> Result<Option<T>> {
        match self.read(name, kind)? {
            Some(bytes) => crate::json::parse_json_doc(&bytes, &self.join(name)).map(Some),
            None => Ok(None),
        }
    }

    /// Open (creating) a lock file in the directory; [`super::Lock::acquire`] takes it.
    pub fn lock(&self, name: &str) -> Result<super::Lock> {
        let path = self.join(name);
        check_name(name).map_err(|e| Error::path("cannot open lock", &path, e))?;
        let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let file = match openat(self.fd.as_fd(), name, flags, Mode::from_bits_truncate(0o644)) {
            Ok(fd) => File::from(fd),
            Err(Errno::ELOOP) => return Err(Error::path("cannot open lock", &path, read::symlink_refused())),
            Err(e) => return Err(Error::path("cannot open lock", &path, e.into())),
        };
        if !file.metadata().is_ok_and(|m| m.file_type().is_file()) {
            return Err(Error::path("cannot open lock", &path, io::Error::other("not a regular file")));
        }
        Ok(super::Lock::from_file(file, path))
    }

    /// Remove a file (not a directory); a missing one is fine.
    pub fn remove(&self, name: &str) -> Result<()> {
        match unlinkat(self.fd.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(Error::path("cannot remove", &self.join(name), e.into())),
        }
    }

    /// Remove the temporaries of `name` left by writers that were killed mid-write: the
    /// process is gone and the file is older than [`STALE_TEMP_AGE`]. Best effort.
    pub fn remove_stale_temps(&self, name: &str) {
        let Ok(dup) = self.fd.try_clone() else { return };
        let Ok(mut listing) = nix::dir::Dir::from_fd(dup.into()) else { return };
        let mut stale = Vec::new();
        for entry in listing.iter().flatten() {
            let Ok(file) = entry.file_name().to_str() else { continue };
            let Some((target, pid)) = parse_temp_name(file) else { continue };
            if target != name {
                continue;
            }
            let dead = pid > 0
                && pid != std::process::id() as i32
                && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) == Err(Errno::ESRCH);
            if dead && self.older_than(file, STALE_TEMP_AGE) {
                stale.push(file.to_string());
            }
        }
        for f in stale {
            let _ = unlinkat(self.fd.as_fd(), f.as_str(), UnlinkatFlags::NoRemoveDir);
        }
    }

    fn older_than(&self, name: &str, age: std::time::Duration) -> bool {
        let Ok(st) = fstatat(self.fd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) else { return false };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        (now as i64).saturating_sub(st.st_mtime) >= age.as_secs() as i64
    }

    /// Device and inode of `name` (not following a link), if it exists.
    pub fn identity(&self, name: &str) -> Option<(u64, u64)> {
        fstatat(self.fd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW).ok().map(|st| (st.st_dev, st.st_ino))
    }
}

/// Device and inode of an open file.
pub fn identity_of(f: &File) -> Option<(u64, u64)> {
    f.metadata().ok().map(|m| (m.dev(), m.ino()))
}

/// A temporary file being written; removed unless committed.
pub struct Temp<'a> {
    dir: &'a Dir,
    name: String,
    file: Option<File>,
}

impl Temp<'_> {
    /// The open file, to write.
    pub fn file(&mut self) -> io::Result<&mut File> {
        self.file.as_mut().ok_or_else(|| io::Error::other("the temporary is closed"))
    }

    /// Take the open file (to wrap it in an encoder); the temporary is still removed unless
    /// committed.
    pub fn take_file(&mut self) -> Option<File> {
        self.file.take()
    }

    /// Rename the temporary over `target` (refused when `target` is a link) and make that
    /// durable.
    pub fn commit(mut self, target: &str) -> Result<()> {
        let path = self.dir.join(target);
        check_name(target).map_err(|e| Error::path("cannot write", &path, e))?;
        self.dir.refuse_link(target, "cannot write")?;
        drop(self.file.take());
        renameat(self.dir.fd.as_fd(), self.name.as_str(), self.dir.fd.as_fd(), target)
            .map_err(|e| Error::path("cannot write", &path, e.into()))?;
        self.name.clear();
        self.dir.sync().map_err(|e| Error::path("cannot sync the directory of", &path, e))
    }
}

impl Drop for Temp<'_> {
    fn drop(&mut self) {
        if !self.name.is_empty() {
            let _ = unlinkat(self.dir.fd.as_fd(), self.name.as_str(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pitcrew-dir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn temporary_names_are_unpredictable_and_parse_back() {
        let a = temp_name("state.json");
        let b = temp_name("state.json");
        assert_ne!(a, b);
        assert_eq!(parse_temp_name(&a), Some(("state.json", std::process::id() as i32)));
        assert_eq!(parse_temp_name(".state.json.123.tmp"), Some(("state.json", 123)));
        assert_eq!(parse_temp_name(".x.json.1.0123456789abcdef.tmp"), Some(("x.json", 1)));
        assert_eq!(parse_temp_name(".x.json.tmp"), None);
        assert_eq!(parse_temp_name("x.json"), None);
    }

    #[test]
    fn links_are_refused_as_targets_appends_and_sub_directories() {
        let d = tmpdir("links");
        let outside = d.join("outside");
        std::fs::write(&outside, b"precious").unwrap();
        std::fs::create_dir(d.join("cell")).unwrap();
        symlink(&outside, d.join("cell/state.json")).unwrap();
        symlink(&outside, d.join("cell/mission.log")).unwrap();
        symlink(&d, d.join("cell/logs")).unwrap();
        let cell = Dir::open(&d.join("cell")).unwrap();
        let e = cell.atomic_write("state.json", b"{}", Perm::Private).unwrap_err().to_string();
        assert!(e.contains("cell/state.json") && e.contains("symbolic link"), "{e}");
        let e = cell.append_line("mission.log", b"x\n", Perm::Shared).unwrap_err().to_string();
        assert!(e.contains("cell/mission.log") && e.contains("symbolic link"), "{e}");
        let e = cell.sub("logs").unwrap_err().to_string();
        assert!(e.contains("cell/logs") && e.contains("symbolic link"), "{e}");
        let e = cell.lock("mission.log").unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read(&outside).unwrap(), b"precious");
        assert!(cell.read("state.json", crate::store::kinds::LEDGER).is_err());
    }

    #[test]
    fn fifos_are_refused_as_append_targets_without_blocking() {
        let d = tmpdir("fifo");
        nix::unistd::mkfifo(&d.join("metrics.jsonl"), Mode::from_bits_truncate(0o600)).unwrap();
        let e = Dir::open(&d).unwrap().append_line("metrics.jsonl", b"x\n", Perm::Shared).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
    }

    #[test]
    fn private_files_are_created_0600() {
        let d = tmpdir("perm");
        let dir = Dir::open(&d).unwrap();
        dir.atomic_write("a", b"x", Perm::Private).unwrap();
        dir.append_line("b", b"x\n", Perm::Private).unwrap();
        dir.atomic_write("c", b"x", Perm::Shared).unwrap();
        let mode = |n: &str| std::fs::metadata(d.join(n)).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode("a"), mode("b")), (0o600, 0o600));
        assert_eq!(mode("c") & 0o600, 0o600);
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 3, "no temporary left");
    }

    #[test]
    fn a_planted_temporary_name_is_never_written_through() {
        let d = tmpdir("planted");
        let outside = d.join("outside");
        std::fs::write(&outside, b"precious").unwrap();
        // The old, predictable name of this process's temporary.
        symlink(&outside, d.join(format!(".state.json.{}.tmp", std::process::id()))).unwrap();
        crate::store::atomic_write(&d.join("state.json"), b"new").unwrap();
        assert_eq!(std::fs::read(&outside).unwrap(), b"precious");
        assert_eq!(std::fs::read(d.join("state.json")).unwrap(), b"new");
    }
}
