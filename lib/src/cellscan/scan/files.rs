//! The files of a cell, opened relative to the cell's directory (`openat`), never through a
//! link: listing, reading each document through the bounded reader with [`FileCtx`], and
//! reading and writing a cell file by its path relative to the cell.

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag, fstatat};

use super::{Cell, SUBDIRS};
use crate::cellscan::model::{self, FileCtx, Issue};
use crate::error::{Error, Result};
use crate::record::Level;
use crate::store::kinds;
use crate::store::read::{self, Src};

/// A directory opened once; the files of a cell are opened relative to it, so the kernel looks
/// up one name per file rather than walking the whole path again (most of a scan is opening
/// small files).
/// A sub-directory of a cell is opened without following a link: agents write in the cell,
/// and `agents/` pointing elsewhere is refused, not read.
fn open_dir(at: Option<&Dir>, path: &Path, name: &str) -> io::Result<Dir> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let dir = match at {
        Some(parent) => Dir::openat(parent.as_fd(), name, flags | OFlag::O_NOFOLLOW, Mode::empty()),
        None => Dir::open(path, flags, Mode::empty()),
    };
    dir.map_err(|e| match (e, at) {
        (Errno::ELOOP | Errno::ENOTDIR, Some(parent))
            if fstatat(parent.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
                .is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK) =>
        {
            io::Error::new(io::ErrorKind::InvalidData, "it is a symbolic link, which is not followed here")
        }
        (e, _) => io::Error::from(e),
    })
}

/// The names in a directory that are UTF-8, without `.` and `..`, each with whether it is a
/// directory (`None`: the entry does not say, as for a symbolic link).
fn entries(dir: &mut Dir) -> io::Result<Vec<(String, Option<bool>)>> {
    let mut out = Vec::new();
    for e in dir.iter() {
        let e = e.map_err(io::Error::from)?;
        let Ok(name) = e.file_name().to_str() else { continue };
        if name == "." || name == ".." {
            continue;
        }
        let is_dir = match e.file_type() {
            Some(Type::Directory) => Some(true),
            Some(Type::Symlink) | None => None,
            Some(_) => Some(false),
        };
        out.push((name.to_string(), is_dir));
    }
    Ok(out)
}

/// The `*.json` files of a directory (not hidden), sorted.
fn json_files(dir: &mut Dir) -> io::Result<Vec<String>> {
    let mut names: Vec<String> = entries(dir)?
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name.ends_with(".json") && !name.starts_with('.'))
        .collect();
    names.sort_unstable();
    Ok(names)
}

/// Read a cell's files. `None` when the directory is not a cell at all (no cell.json and none
/// of agents/, tasks/, config/).
pub(crate) fn load_cell(dir: &Path) -> Option<Cell> {
    let mut cell = Cell::new(dir);
    let mut has_cell_json = false;
    let mut present = [false; SUBDIRS.len()];
    let listed = open_dir(None, dir, "").and_then(|mut d| entries(&mut d).map(|e| (d, e)));
    let (cell_dir, names) = match listed {
        Ok(x) => x,
        Err(e) => {
            cell.issue(Level::Error, "unreadable", None, format!("{}: {e}", dir.display()));
            return Some(cell);
        }
    };
    for (name, is_dir) in names {
        if name == "cell.json" {
            has_cell_json = true;
        } else if let Some(i) = SUBDIRS.iter().position(|s| name == *s) {
            present[i] = is_dir.unwrap_or_else(|| fs::metadata(dir.join(&name)).is_ok_and(|m| m.is_dir()));
        }
    }
    let [agents_dir, tasks_dir, _, _, _, config_dir] = present;
    if !has_cell_json && !agents_dir && !tasks_dir && !config_dir {
        return None;
    }
    if has_cell_json {
        let path = dir.join("cell.json");
        let at = At { dir: &cell_dir, name: "cell.json" };
        cell.doc = parse_file(&path, Some(at), "cell.json", &mut cell.issues, model::read_cell).flatten();
        if let Some(id) = cell.doc.as_ref().and_then(|d| d.cell_id.clone()) {
            cell.id = id;
        }
    } else {
        cell.issue(Level::Error, "missing_file", Some("cell.json"), "the cell has no cell.json".into());
    }
    for (i, sub) in SUBDIRS.iter().enumerate() {
        if !present[i] {
            let detail = format!("{}: the {sub}/ directory is missing", dir.display());
            cell.issue(Level::Info, "missing_directory", None, detail);
        }
    }
    if config_dir {
        read_config(&mut cell, &cell_dir);
    }
    if agents_dir {
        cell.agents = parse_dir(dir, &cell_dir, "agents", &mut cell.issues, model::read_agent);
    }
    if tasks_dir {
        cell.tasks = parse_dir(dir, &cell_dir, "tasks", &mut cell.issues, model::read_task);
    }
    Some(cell)
}

fn unreadable(path: &Path, file: &str, e: &io::Error) -> Issue {
    Issue {
        level: Level::Error,
        problem: "unreadable",
        file: Some(file.to_string()),
        path: path.to_path_buf(),
        detail: format!("{}: {e}", path.display()),
        age_s: None,
        suppressed_by: None,
    }
}

/// Read a cell file through the bounded reader and hand its bytes to `f` (the reader reuses
/// one buffer per scanning thread: no allocation once it has grown).
pub(crate) fn with_file<R>(path: &Path, f: impl FnOnce(&[u8]) -> R) -> io::Result<R> {
    read::with_read(Src::Path(path), kinds::CELL_FILE, f)
}

/// Read a file of a cell by its path relative to the cell (`agents/a1.json`): each directory
/// on the way is opened relative to the one before, never through a link.
pub(crate) fn read_cell_file(cell_dir: &Path, rel: &str) -> Result<Vec<u8>> {
    let mut parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    let path = cell_dir.join(rel);
    let Some(name) = parts.pop() else {
        return Err(Error::path("cannot read", &path, io::Error::from(io::ErrorKind::InvalidInput)));
    };
    let mut dir = crate::store::Dir::open(cell_dir)?;
    for p in parts {
        dir = dir.sub(p)?;
    }
    dir.read(name, kinds::CELL_FILE)?
        .ok_or_else(|| Error::path("cannot read", &path, io::Error::from(io::ErrorKind::NotFound)))
}

/// Write a file of a cell atomically by its path relative to the cell, each directory on
/// the way opened relative to the one before (created when missing): a link on the way or
/// at the file is refused, never written through.
pub(crate) fn write_cell_file(cell_dir: &Path, rel: &str, bytes: &[u8]) -> Result<()> {
    let mut parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    let Some(name) = parts.pop() else {
        return Err(Error::path("cannot write", &cell_dir.join(rel), io::Error::from(io::ErrorKind::InvalidInput)));
    };
    let mut dir = crate::store::Dir::open(cell_dir)?;
    for p in parts {
        dir = dir.sub_create(p)?;
    }
    dir.atomic_write(name, bytes, crate::store::Perm::Shared)
}

/// A cell directory and a sub-directory path in it (`checkpoints/a1`), created as needed
/// relative to the cell, never through a link.
pub(crate) fn ensure_cell_dir(cell_dir: &Path, rel: &str) -> Result<()> {
    let mut dir = crate::store::Dir::open(cell_dir)?;
    for p in rel.split('/').filter(|p| !p.is_empty()) {
        dir = dir.sub_create(p)?;
    }
    Ok(())
}

/// A file named relative to an open directory.
#[derive(Clone, Copy)]
struct At<'a> {
    dir: &'a Dir,
    name: &'a str,
}

impl At<'_> {
    fn read<R>(self, f: impl FnOnce(&[u8]) -> R) -> io::Result<R> {
        read::with_read(Src::At(self.dir.as_fd(), self.name), kinds::CELL_FILE, f)
    }
}

/// Read and parse one file with `parse` (opened by `at` when given, else by its path); a
/// file that cannot be read is an issue.
fn parse_file<T>(
    path: &Path,
    at: Option<At<'_>>,
    file: &str,
    issues: &mut Vec<Issue>,
    parse: impl FnOnce(&mut FileCtx<'_>) -> T,
) -> Option<T> {
    let mut found = Vec::new();
    let parse = |bytes: &[u8]| parse(&mut FileCtx::new(path, file, bytes, &mut found));
    let parsed = match at {
        Some(at) => at.read(parse),
        None => with_file(path, parse),
    };
    issues.append(&mut found);
    match parsed {
        Ok(t) => Some(t),
        Err(e) => {
            issues.push(unreadable(path, file, &e));
            None
        }
    }
}

/// Parse every `*.json` file of `dir/sub` with `parse`, in name order.
fn parse_dir<T>(
    dir: &Path,
    cell_dir: &Dir,
    sub: &str,
    issues: &mut Vec<Issue>,
    parse: impl Fn(&mut FileCtx<'_>) -> Option<T>,
) -> Vec<T> {
    let d = dir.join(sub);
    let listed = open_dir(Some(cell_dir), &d, sub).and_then(|mut sd| json_files(&mut sd).map(|n| (sd, n)));
    let (sub_dir, names) = match listed {
        Ok(x) => x,
        Err(e) => {
            issues.push(unreadable(&d, &format!("{sub}/"), &e));
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let file = format!("{sub}/{name}");
        let at = At { dir: &sub_dir, name: &name };
        if let Some(Some(t)) = parse_file(&d.join(&name), Some(at), &file, issues, &parse) {
            out.push(t);
        }
    }
    out
}

fn read_config(cell: &mut Cell, cell_dir: &Dir) {
    let dir = cell.dir.join("config");
    let config_dir = match open_dir(Some(cell_dir), &dir, "config") {
        Ok(d) => d,
        Err(e) => {
            cell.issues.push(unreadable(&dir, "config/", &e));
            return;
        }
    };
    let mut found = Vec::new();
    for name in ["policies.json", "isolation.json", "permissions.json"] {
        let path = dir.join(name);
        let file = format!("config/{name}");
        let parse = |bytes: &[u8]| {
            let mut cx = FileCtx::new(&path, &file, bytes, &mut found);
            match name {
                "policies.json" => cell.policies = model::read_policies(&mut cx),
                "isolation.json" => cell.isolation_file = model::read_isolation(&mut cx),
                _ => cell.permissions = model::read_permissions(&mut cx),
            }
        };
        match (At { dir: &config_dir, name }).read(parse) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => found.push(unreadable(&path, &file, &e)),
        }
    }
    cell.issues.append(&mut found);
}
