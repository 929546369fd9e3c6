//! Run a command in its own process group, with a time limit that kills the whole group.
//!
//! Used for restart commands (recover, cellscan revive), monitoring-plugins checks (probe),
//! and the `exec` sink (notify). Output is captured up to a limit while the pipes are kept
//! drained, so a chatty child never blocks; at the time limit the group gets SIGTERM, then
//! SIGKILL after a short grace, which takes any children the command forked with it.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::os::unix::process::{CommandExt, ExitStatusExt};

/// A command: a shell line (`sh -c`) or an argument vector.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandLine {
    Shell(String),
    Argv(Vec<String>),
}

impl CommandLine {
    pub fn display(&self) -> String {
        match self {
            CommandLine::Shell(s) => s.clone(),
            CommandLine::Argv(v) => v.join(" "),
        }
    }
}

/// How long [`run`] waits, after the command exited, for its output pipes to close. A
/// process it started in the background that keeps them open (a daemon whose output was not
/// redirected) costs this much, and its output after that is not captured.
pub const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// How to run a command.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    pub command: &'a CommandLine,
    pub timeout: Duration,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Bytes for the command's stdin (closed after), or none (stdin is /dev/null).
    pub stdin: Option<Vec<u8>>,
    /// Keep at most this many bytes of stdout and of stderr.
    pub capture_limit: usize,
    /// Working directory.
    pub cwd: Option<&'a std::path::Path>,
}

impl<'a> Spec<'a> {
    pub fn new(command: &'a CommandLine, timeout: Duration) -> Spec<'a> {
        Spec { command, timeout, env: Vec::new(), stdin: None, capture_limit: 64 * 1024, cwd: None }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The exit code, when the command exited on its own.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// True when the time limit ended it.
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }

    /// A short description: `exit 1`, `killed by signal 9`, `timed out after 30s`.
    pub fn describe(&self) -> String {
        if self.timed_out {
            format!("timed out after {}s", self.duration.as_secs_f64().round() as u64)
        } else if let Some(c) = self.exit_code {
            format!("exit {c}")
        } else if let Some(s) = self.signal {
            format!("killed by signal {s}")
        } else {
            "ended".into()
        }
    }
}

fn build(spec: &Spec<'_>) -> Command {
    let mut cmd = match spec.command {
        CommandLine::Shell(s) => {
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(s);
            c
        }
        CommandLine::Argv(v) => {
            let mut c = Command::new(v.first().map(String::as_str).unwrap_or("false"));
            c.args(v.iter().skip(1));
            c
        }
    };
    cmd.process_group(0)
        .stdin(if spec.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // pitcrew's own secrets are not the command's business.
    for k in super::redact::SECRET_ENV {
        cmd.env_remove(k);
    }
    for (k, v) in &spec.env {
        cmd.env(k, env_value(v));
    }
    if let Some(dir) = spec.cwd {
        cmd.current_dir(dir);
    }
    cmd
}

/// The longest environment value passed on (Linux refuses a single string over 128 KiB,
/// and the whole environment over a quarter of the stack limit).
pub const MAX_ENV_VALUE: usize = 32 * 1024;

/// An environment value as it can be passed: values come from records (a check's detail, an
/// alert's title), and a NUL byte or an oversized value would keep the command from starting
/// at all. NULs are dropped and the value is cut to [`MAX_ENV_VALUE`] bytes.
pub fn env_value(v: &str) -> String {
    let mut s: String = v.chars().filter(|c| *c != '\0').collect();
    if s.len() > MAX_ENV_VALUE {
        let mut end = MAX_ENV_VALUE;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Output drained from a pipe on a thread: what was kept so far, and a signal when the pipe
/// closed. Partial output stays readable even when a forked process holds the pipe open.
struct Drained {
    kept: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl Drained {
    /// Wait for the pipe to close until `deadline`, then take what was kept.
    fn take(self, deadline: Instant) -> String {
        let _ = self.done.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        let bytes = self.kept.lock().map(|v| v.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Drain a pipe on a thread, keeping the first `limit` bytes.
fn drain<R: Read + Send + 'static>(r: Option<R>, limit: usize) -> Drained {
    let (tx, done) = mpsc::channel();
    let kept = Arc::new(Mutex::new(Vec::new()));
    if let Some(mut r) = r {
        let k = kept.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if let Ok(mut v) = k.lock() {
                            let room = limit.saturating_sub(v.len());
                            v.extend_from_slice(&buf[..n.min(room)]);
                        }
                    }
                }
            }
            let _ = tx.send(());
        });
    } else {
        let _ = tx.send(());
    }
    Drained { kept, done }
}

/// Signal the whole process group of `child`.
pub fn signal_group(child: &Child, sig: Signal) {
    let _ = killpg(Pid::from_raw(child.id() as i32), sig);
}

/// Run the command to completion or to its time limit. An error means it could not start.
pub fn run(spec: &Spec<'_>) -> std::io::Result<Outcome> {
    let start = Instant::now();
    let mut child = build(spec).spawn()?;
    if let (Some(data), Some(mut stdin)) = (spec.stdin.clone(), child.stdin.take()) {
        thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
    }
    let out_rx = drain(child.stdout.take(), spec.capture_limit);
    let err_rx = drain(child.stderr.take(), spec.capture_limit);
    // A time limit too far away to represent is no limit.
    let deadline = start.checked_add(spec.timeout).unwrap_or_else(|| start + Duration::from_secs(100 * 366 * 86_400));
    let mut timed_out = false;
    let mut pause = Duration::from_millis(1);
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        let now = Instant::now();
        if now >= deadline {
            timed_out = true;
            signal_group(&child, Signal::SIGTERM);
            let grace = Instant::now() + Duration::from_millis(500);
            loop {
                if child.try_wait()?.is_some() {
                    // The leader is gone; make sure nothing it forked outlives it.
                    signal_group(&child, Signal::SIGKILL);
                    break;
                }
                if Instant::now() >= grace {
                    signal_group(&child, Signal::SIGKILL);
                    break;
                }
                thread::sleep(Duration::from_millis(10));
            }
            break child.wait()?;
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    let duration = start.elapsed();
    // A grandchild that left the group may hold the pipes open: wait briefly (one deadline
    // for both pipes), not forever, and keep what arrived.
    let grace = if timed_out { Duration::from_millis(200) } else { OUTPUT_GRACE };
    let until = Instant::now() + grace;
    Ok(Outcome {
        exit_code: if timed_out { None } else { status.code() },
        signal: status.signal(),
        timed_out,
        stdout: out_rx.take(until),
        stderr: err_rx.take(until),
        duration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(s: &str) -> CommandLine {
        CommandLine::Shell(s.into())
    }

    #[test]
    fn captures_output_and_exit_code() {
        let c = sh("echo out; echo err >&2; exit 3");
        let o = run(&Spec::new(&c, Duration::from_secs(5))).unwrap();
        assert_eq!((o.exit_code, o.stdout.as_str(), o.stderr.as_str()), (Some(3), "out\n", "err\n"));
    }

    #[test]
    fn passes_stdin_and_env() {
        let c = sh("read x; echo \"$x $GREETING\"");
        let mut spec = Spec::new(&c, Duration::from_secs(5));
        spec.stdin = Some(b"hello\n".to_vec());
        spec.env.push(("GREETING".into(), "world".into()));
        assert_eq!(run(&spec).unwrap().stdout, "hello world\n");
    }

    #[test]
    fn hostile_environment_values_and_huge_limits_still_run() {
        let c = sh("printf '%s' \"$DETAIL\" | wc -c");
        let mut spec = Spec::new(&c, Duration::from_secs(u64::MAX));
        spec.env.push(("DETAIL".into(), format!("a\0b{}", "x".repeat(1 << 20))));
        let o = run(&spec).unwrap();
        assert!(o.success(), "{o:?}");
        assert_eq!(o.stdout.trim(), MAX_ENV_VALUE.to_string());
        assert_eq!(env_value("a\0é"), "aé");
    }

    #[test]
    fn timeout_kills_the_group_including_children() {
        let dir = std::env::temp_dir().join(format!("pitcrew-proc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("child.pid");
        let c = sh(&format!("sleep 30 & echo $! > {}; wait", pidfile.display()));
        let o = run(&Spec::new(&c, Duration::from_millis(300))).unwrap();
        assert!(o.timed_out);
        assert!(o.duration < crate::util::test_limit(5.0));
        let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        let alive =
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| !s.contains(") Z ")).unwrap_or(false);
        let end = std::time::Instant::now() + crate::util::test_limit(5.0);
        while alive() && std::time::Instant::now() < end {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(!alive(), "the forked child must die with the group");
    }
}
