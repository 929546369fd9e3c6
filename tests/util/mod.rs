//! The harness: a `Tool` builder that runs a real binary with arguments, stdin, environment
//! and a private work directory, and a `Run` that shows everything when an assertion fails.

#![allow(dead_code)]

pub mod http;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

/// Environment variables that would leak the developer's setup into a test.
pub const SCRUBBED: &[&str] = &[
    "AGENT_OPS_HOME",
    "AGENT_OPS_CONFIG",
    "AGENT_OPS_LOG_DIR",
    "AGENT_OPS_METRICS_DIR",
    "AGENT_OPS_MISSIONS",
    "AGENT_OPS_HEARTBEAT_TOKEN",
    "PITCREW_MISSIONS",
    "PITCREW_BIN",
    "PITCREW_NOW",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_CHAT_ID",
    "TELEGRAM_API_URL",
    "GITEA_URL",
    "CLAW_CODE_GITEA_URL",
    "GITEA_REPO",
    "GITEA_TOKEN",
    "ALERTMANAGER_URL",
    "WEBHOOK_URL",
    "SLACK_WEBHOOK_URL",
    "DISCORD_WEBHOOK_URL",
    "NTFY_URL",
    "NTFY_TOKEN",
    "SMTP_URL",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "EMAIL_FROM",
    "EMAIL_TO",
    "APPRISE_URLS",
    "APPRISE_CONFIG_PATH",
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
];

/// The directory the binaries of this package were built into: where the test helper binary
/// is, so that no tool has to be named here.
pub fn bin_dir() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pitcrew-store-worker")).parent().expect("the binaries' directory")
}

/// The path of a binary of this package (a tool, or a test helper) by name.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(p.is_file(), "no binary named {name} in {}", bin_dir().display());
    p
}

/// The tools, by name: one directory each under `tools/` (its `main.rs` hands the tool's
/// descriptor to `entry::run`). scripts/lib.sh reads the same directory.
pub fn tools() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("main.rs").is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no tools under {}", dir.display());
    names
}

/// How many times slower than a developer's machine this one runs the tests:
/// `PITCREW_TEST_SLOWDOWN` (a factor, default 1; a loaded CI machine might set 3).
pub fn slowdown() -> f64 {
    std::env::var("PITCREW_TEST_SLOWDOWN").ok().and_then(|v| v.parse::<f64>().ok()).filter(|f| *f >= 1.0).unwrap_or(1.0)
}

/// A wall-clock limit of `secs` seconds, scaled by [`slowdown`]: every deadline and every
/// "took less than" of a test goes through here.
pub fn limit(secs: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64(secs * slowdown())
}

/// A private directory for one test, under cargo's target tmp dir.
pub struct Workdir {
    pub root: PathBuf,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Workdir {
    pub fn new(name: &str) -> Workdir {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let root =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("it").join(format!("{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        Workdir { root }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Write a file (creating its directory) and return its path.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&p, contents).unwrap();
        p
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    /// A tool whose home, HOME and working directory are this directory.
    pub fn tool(&self, name: &str) -> Tool {
        let mut t = Tool::new(name);
        t.cmd.env("HOME", &self.root).env("AGENT_OPS_HOME", self.path("home")).current_dir(&self.root);
        t
    }
}

/// A command line to run one of the binaries.
pub struct Tool {
    pub name: String,
    pub cmd: Command,
    stdin: Option<Vec<u8>>,
}

impl Tool {
    pub fn new(name: &str) -> Tool {
        let mut cmd = Command::new(bin(name));
        for k in SCRUBBED {
            cmd.env_remove(k);
        }
        Tool { name: name.to_string(), cmd, stdin: None }
    }

    pub fn arg(mut self, a: impl AsRef<std::ffi::OsStr>) -> Tool {
        self.cmd.arg(a);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Tool
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Tool {
        self.cmd.env(k, v);
        self
    }

    pub fn stdin(mut self, data: impl AsRef<[u8]>) -> Tool {
        self.stdin = Some(data.as_ref().to_vec());
        self
    }

    /// Run to completion. stdin is the given bytes, or empty.
    pub fn run(mut self) -> Run {
        let display = format!("{:?}", self.cmd);
        self.cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = self.cmd.spawn().unwrap_or_else(|e| panic!("spawning {display}: {e}"));
        let data = self.stdin.take().unwrap_or_default();
        let mut stdin = child.stdin.take().unwrap();
        // Write from a thread so a tool that writes before reading cannot deadlock the test.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        let out = child.wait_with_output().unwrap();
        let _ = writer.join();
        Run {
            display,
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Run to completion within `secs`; a tool still running then is killed and the test
    /// fails, saying so (a hang must fail the test, not hold the suite).
    #[track_caller]
    pub fn run_within(mut self, secs: u64) -> Run {
        let display = format!("{:?}", self.cmd);
        self.cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = self.cmd.spawn().unwrap_or_else(|e| panic!("spawning {display}: {e}"));
        let data = self.stdin.take().unwrap_or_default();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let out = child.wait_with_output();
            let _ = tx.send(());
            out
        });
        let finished = rx.recv_timeout(std::time::Duration::from_secs(secs)).is_ok();
        if !finished {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
        }
        let out = waiter.join().unwrap().unwrap();
        let _ = writer.join();
        let run = Run {
            display,
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(finished, "did not finish within {secs} s (killed){run:?}");
        run
    }

    /// Start without waiting; stdin, stdout and stderr are pipes.
    pub fn spawn(mut self) -> Child {
        self.cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        self.cmd.spawn().unwrap()
    }

    /// Feed `input` and read one line of the output, then close the pipe as `| head -1`
    /// does; the tool must then end at once, exit 0 and say nothing. The line is returned.
    #[track_caller]
    pub fn first_line_then_close(self, input: String) -> String {
        use std::io::{BufRead, BufReader};
        let mut child = self.spawn();
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let mut first = String::new();
        {
            let mut out = BufReader::new(child.stdout.take().unwrap());
            out.read_line(&mut first).unwrap();
        } // the reader goes away
        feeder.join().unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "exit status with stdout closed early");
        assert!(out.stderr.is_empty(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
        first
    }
}

/// What a run did.
pub struct Run {
    pub display: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "\ncommand: {}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n",
            self.display, self.code, self.stdout, self.stderr
        )
    }
}

impl Run {
    /// Assert the exit code, showing everything when it differs.
    #[track_caller]
    pub fn code(&self, want: i32) -> &Run {
        assert_eq!(self.code, want, "unexpected exit status{self:?}");
        self
    }

    /// The stdout lines parsed as JSON objects (every line must parse).
    #[track_caller]
    pub fn records(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}{self:?}")))
            .collect()
    }

    /// Records of one kind.
    #[track_caller]
    pub fn kind(&self, kind: &str) -> Vec<Value> {
        self.records().into_iter().filter(|r| r["kind"] == kind).collect()
    }

    /// The record of a kind with the given `name` (or agent, or title).
    #[track_caller]
    pub fn named(&self, kind: &str, name: &str) -> Value {
        self.kind(kind)
            .into_iter()
            .find(|r| r["name"] == name || r["agent"] == name || r["title"] == name)
            .unwrap_or_else(|| panic!("no {kind} record named {name}{self:?}"))
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Run {
        assert!(self.stderr.contains(needle), "stderr lacks {needle:?}{self:?}");
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Run {
        assert!(self.stdout.contains(needle), "stdout lacks {needle:?}{self:?}");
        self
    }
}

/// A free TCP port on loopback that nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// JSON for a file.
pub fn json(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap()
}

/// Wait until `f` is true or the [`limit`] of `secs` passes.
pub fn wait_until(secs: f64, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + limit(secs);
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    f()
}

/// Is `pid` a live (not zombie) process?
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')).unwrap_or(false),
        Err(_) => false,
    }
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// How many processes are blocked waiting to `flock` the file at `path` (the `->` lines of
/// /proc/locks for its device and inode): the sign that a run waits for a lock another holds.
pub fn lock_waiters(path: &Path) -> usize {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::metadata(path) else { return 0 };
    let dev = m.dev();
    let (major, minor) = (((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff), (dev & 0xff) | ((dev >> 12) & !0xff));
    let id = format!("{major:02x}:{minor:02x}:{}", m.ino());
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    locks.lines().filter(|l| l.contains("->") && l.split_whitespace().any(|f| f == id)).count()
}
