//! The one bounded reader: every file pitcrew reads whole, and every file it streams, is
//! opened here.
//!
//! A file is opened without blocking (`O_NONBLOCK`, so a FIFO or a terminal cannot hold the
//! open), then `fstat` says what it is: anything but a regular file (a FIFO, a device such as
//! `/dev/zero`, a directory, a socket) is refused with an error that names the file and what
//! it is. A file read whole is read up to the cap of its [`Kind`] and no further: a larger
//! one is refused before a byte is read when its size says so, and at the cap when it grows
//! while being read (or lies about its size, as `/proc` files do). Files that others can
//! write (ticks, mission cells) and files pitcrew keeps itself (state, metrics) are opened
//! with `O_NOFOLLOW`: a symbolic link planted there is refused, never followed. Files the user
//! names (services.json, the registry, token files, file arguments) may be links.
//!
//! The caps, by kind of file, are in [`kinds`]; docs/reliability.md lists them.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use nix::fcntl::{FcntlArg, OFlag, fcntl, open, openat};
use nix::sys::stat::Mode;

use crate::error::{Error, Result};

/// A kind of file: what it is called in messages, how much of it is read at most, and
/// whether a symbolic link at its path is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// What the file is, for messages: `a tick file`.
    pub what: &'static str,
    /// The most bytes read of it.
    pub cap: u64,
    /// Follow a symbolic link at the path (files the user names); refuse one otherwise.
    pub follow: bool,
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// The kinds of files pitcrew reads, with their caps.
pub mod kinds {
    use super::{KIB, Kind, MIB};

    /// services.json: thousands of services fit in a few MiB.
    pub const CONFIG: Kind = Kind { what: "the configuration", cap: 16 * MIB, follow: true };
    /// config/agent-registry.json.
    pub const REGISTRY: Kind = Kind { what: "the agent registry", cap: 16 * MIB, follow: true };
    /// A bearer-token file.
    pub const TOKEN: Kind = Kind { what: "a token file", cap: 64 * KIB, follow: true };
    /// A CA certificate bundle named by `ca_file`.
    pub const CA_FILE: Kind = Kind { what: "a CA file", cap: 4 * MIB, follow: true };
    /// An agent's own config file, checked by `tickmon submit`.
    pub const AGENT_CONFIG: Kind = Kind { what: "an agent config file", cap: 16 * MIB, follow: true };
    /// A monthly tick (`ticks/YYYY-MM/AGENT.json`): other hosts push these through git, which
    /// stores symbolic links, so a link there is refused.
    pub const TICK: Kind = Kind { what: "a tick file", cap: MIB, follow: false };
    /// A heartbeat file named by a probe heartbeat check (its age is what counts).
    pub const HEARTBEAT_FILE: Kind = Kind { what: "a heartbeat file", cap: MIB, follow: false };
    /// A file of a mission cell (cell.json, agents/, tasks/, config/): agents write there.
    pub const CELL_FILE: Kind = Kind { what: "a mission cell file", cap: 16 * MIB, follow: false };
    /// A revival or restart ledger.
    pub const LEDGER: Kind = Kind { what: "a ledger", cap: 16 * MIB, follow: false };
    /// tickmon serve's state file: up to --max-agents agents of at most 64 KiB of metadata.
    pub const HEARTBEAT_STATE: Kind = Kind { what: "the heartbeat state", cap: 1024 * MIB, follow: false };
    /// tickmon serve's journal: folded into the state at 8 MiB, so this is a long crash loop.
    pub const HEARTBEAT_JOURNAL: Kind = Kind { what: "the heartbeat journal", cap: 1024 * MIB, follow: false };
    /// notify.json: at most `max_subjects` subjects of strings of at most 4 KiB.
    pub const NOTIFY_STATE: Kind = Kind { what: "notify's state", cap: 256 * MIB, follow: false };
    /// state/outbox.jsonl: alerts owed to sinks.
    pub const OUTBOX: Kind = Kind { what: "the outbox", cap: 256 * MIB, follow: false };
    /// Silences, and the kit's alert-rate.json.
    pub const NOTIFY_SMALL: Kind = Kind { what: "a notify state file", cap: 16 * MIB, follow: false };
    /// The task board and its backup.
    pub const BOARD: Kind = Kind { what: "the board", cap: 64 * MIB, follow: false };
    /// A file of `/proc` (process checks): its size says 0, the cap is what counts.
    pub const PROC: Kind = Kind { what: "a /proc file", cap: 4 * MIB, follow: true };
}

/// A file to open: a path, or a name in a directory held open.
#[derive(Debug, Clone, Copy)]
pub enum Src<'a> {
    Path(&'a Path),
    At(BorrowedFd<'a>, &'a str),
}

/// What `fstat` says a non-regular file is.
fn what_it_is(ft: std::fs::FileType) -> &'static str {
    if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

fn refused(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// The error of an open that met a symbolic link with `O_NOFOLLOW`.
pub(crate) fn symlink_refused() -> io::Error {
    refused("it is a symbolic link, which is not followed here".into())
}

/// Open a regular file for reading, without blocking and (unless `follow`) without following
/// a symbolic link; `fstat` after the open refuses anything else. The file is back in
/// blocking mode when it is returned, with its size.
pub fn open_regular(src: Src<'_>, follow: bool) -> io::Result<(File, u64)> {
    let mut flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
    if !follow {
        flags |= OFlag::O_NOFOLLOW;
    }
    let opened = match src {
        Src::Path(p) => open(p, flags, Mode::empty()),
        Src::At(dir, name) => openat(dir, name, flags, Mode::empty()),
    };
    let opened = opened.map(File::from).map_err(io::Error::from);
    let file = match opened {
        Ok(f) => f,
        Err(e) if !follow && e.raw_os_error() == Some(nix::libc::ELOOP) => return Err(symlink_refused()),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        let it = what_it_is(meta.file_type());
        return Err(refused(if it == "not a regular file" { it.into() } else { format!("not a regular file ({it})") }));
    }
    fcntl(file.as_fd(), FcntlArg::F_SETFL(OFlag::empty())).map_err(io::Error::from)?;
    Ok((file, meta.len()))
}

/// Open a file to stream it (metrics, NDJSON file arguments): a regular file only.
pub fn open_stream(path: &Path, follow: bool) -> io::Result<File> {
    open_regular(Src::Path(path), follow).map(|(f, _)| f)
}

fn too_large(kind: Kind) -> io::Error {
    refused(format!("larger than {}, the limit for {}", human(kind.cap), kind.what))
}

/// `16 MiB`, `64 KiB`.
fn human(n: u64) -> String {
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

/// Read an open file into `buf` (kept at its full, zeroed length; the count used is
/// returned), up to the kind's cap. A read that leaves room in the buffer ends the file
/// (regular files read short only at their end), so a small file costs one read.
fn fill(buf: &mut Vec<u8>, mut file: File, size: u64, kind: Kind) -> io::Result<usize> {
    const CHUNK: usize = 64 * 1024;
    if size > kind.cap {
        return Err(too_large(kind));
    }
    let mut used = 0;
    loop {
        if buf.len() - used < CHUNK {
            buf.resize(used + CHUNK, 0);
        }
        let room = buf.len() - used;
        let n = match file.read(&mut buf[used..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        used += n;
        if used as u64 > kind.cap {
            return Err(too_large(kind));
        }
        if n == 0 || n < room {
            return Ok(used);
        }
    }
}

/// Read a whole file of `kind`. Errors are the open's (NotFound included) or the refusals
/// above; [`Error::path`] them with the path.
pub fn read_src(src: Src<'_>, kind: Kind) -> io::Result<Vec<u8>> {
    let (file, size) = open_regular(src, kind.follow)?;
    let mut buf = Vec::with_capacity((size.min(kind.cap) as usize).saturating_add(1).min(1 << 20));
    let n = fill(&mut buf, file, size, kind)?;
    buf.truncate(n);
    Ok(buf)
}

/// Read a whole file of `kind` by its path.
pub fn read(path: &Path, kind: Kind) -> io::Result<Vec<u8>> {
    read_src(Src::Path(path), kind)
}

/// Read a whole file; `Ok(None)` when it does not exist, else an error naming it.
pub fn read_optional(path: &Path, kind: Kind) -> Result<Option<Vec<u8>>> {
    match read(path, kind) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::path("cannot read", path, e)),
    }
}

/// Read a whole file as UTF-8 text (invalid bytes replaced).
pub fn read_text(path: &Path, kind: Kind) -> io::Result<String> {
    read(path, kind).map(|b| String::from_utf8_lossy(&b).into_owned())
}

thread_local! {
    /// Readers that parse many small files in a row (cellscan) reuse one buffer a thread.
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Read a whole file into the thread's reused buffer and hand its bytes to `f`: one open,
/// one `fstat`, one read for a small file, and no allocation once the buffer has grown.
pub fn with_read<R>(src: Src<'_>, kind: Kind, f: impl FnOnce(&[u8]) -> R) -> io::Result<R> {
    let (file, size) = open_regular(src, kind.follow)?;
    BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            let n = fill(&mut buf, file, size, kind)?;
            Ok(f(&buf[..n]))
        }
        Err(_) => {
            let mut buf = Vec::new();
            let n = fill(&mut buf, file, size, kind)?;
            Ok(f(&buf[..n]))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pitcrew-read-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const SMALL: Kind = Kind { what: "a test file", cap: 100, follow: false };

    #[test]
    fn regular_files_within_the_cap_are_read() {
        let d = tmpdir("ok");
        std::fs::write(d.join("a"), b"hello").unwrap();
        assert_eq!(read(&d.join("a"), SMALL).unwrap(), b"hello");
        std::fs::write(d.join("big"), vec![b'x'; 101]).unwrap();
        let e = read(&d.join("big"), SMALL).unwrap_err().to_string();
        assert_eq!(e, "larger than 100 bytes, the limit for a test file");
        assert!(read_optional(&d.join("none"), SMALL).unwrap().is_none());
    }

    #[test]
    fn fifos_devices_directories_and_links_are_refused_without_blocking() {
        let d = tmpdir("odd");
        nix::unistd::mkfifo(&d.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        let t = std::time::Instant::now();
        let e = read(&d.join("fifo"), SMALL).unwrap_err().to_string();
        assert_eq!(e, "not a regular file (a FIFO)");
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        let e = read(Path::new("/dev/zero"), Kind { follow: true, ..SMALL }).unwrap_err().to_string();
        assert_eq!(e, "not a regular file (a character device)");
        symlink("/dev/zero", d.join("zero")).unwrap();
        let e = read(&d.join("zero"), SMALL).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        let e = read(&d.join("zero"), Kind { follow: true, ..SMALL }).unwrap_err().to_string();
        assert_eq!(e, "not a regular file (a character device)");
        let e = read(&d, SMALL).unwrap_err().to_string();
        assert_eq!(e, "not a regular file (a directory)");
        let e = open_stream(&d.join("fifo"), true).unwrap_err().to_string();
        assert_eq!(e, "not a regular file (a FIFO)");
    }

    #[test]
    fn files_that_lie_about_their_size_stop_at_the_cap() {
        let e = read(Path::new("/proc/self/status"), Kind { what: "status", cap: 16, follow: true }).unwrap_err();
        assert!(e.to_string().starts_with("larger than 16 bytes"), "{e}");
        let s = read_text(Path::new("/proc/self/status"), kinds::PROC).unwrap();
        assert!(s.contains("Pid:"));
    }

    #[test]
    fn the_reused_buffer_reads_each_file_whole() {
        let d = tmpdir("reuse");
        std::fs::write(d.join("a"), vec![b'a'; 70_000]).unwrap();
        std::fs::write(d.join("b"), b"bb").unwrap();
        let big = Kind { cap: 1 << 20, ..SMALL };
        assert_eq!(with_read(Src::Path(&d.join("a")), big, <[u8]>::len).unwrap(), 70_000);
        assert_eq!(with_read(Src::Path(&d.join("b")), big, <[u8]>::to_vec).unwrap(), b"bb");
    }
}
