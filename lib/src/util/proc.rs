//! Run a command in its own process group, with a time limit that kills the whole group.
//!
//! Used for restart commands (recover, cellscan revive), monitoring-plugins checks (probe),
//! and the `exec` sink (notify). Output is captured up to a limit while the pipes are kept
//! drained, so a chatty child never blocks; at the time limit the group gets SIGTERM, then
//! SIGKILL after a short grace, which takes any children the command forked with it.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::os::unix::process::{CommandExt, ExitStatusExt};

use crate::config::CommandLine;

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
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    if let Some(dir) = spec.cwd {
        cmd.current_dir(dir);
    }
    cmd
}

/// Drain a pipe on a thread, keeping the first `limit` bytes.
fn drain<R: Read + Send + 'static>(r: Option<R>, limit: usize) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut r) = r {
        thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let room = limit.saturating_sub(kept.len());
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                }
            }
            let _ = tx.send(kept);
        });
    } else {
        let _ = tx.send(Vec::new());
    }
    rx
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
    let deadline = start + spec.timeout;
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
    // A grandchild that left the group may hold the pipes open: wait briefly, not forever.
    let collect = |rx: mpsc::Receiver<Vec<u8>>| {
        let wait = if timed_out { Duration::from_millis(200) } else { OUTPUT_GRACE };
        String::from_utf8_lossy(&rx.recv_timeout(wait).unwrap_or_default()).into_owned()
    };
    Ok(Outcome {
        exit_code: if timed_out { None } else { status.code() },
        signal: status.signal(),
        timed_out,
        stdout: collect(out_rx),
        stderr: collect(err_rx),
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
    fn timeout_kills_the_group_including_children() {
        let dir = std::env::temp_dir().join(format!("pitcrew-proc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("child.pid");
        let c = sh(&format!("sleep 30 & echo $! > {}; wait", pidfile.display()));
        let o = run(&Spec::new(&c, Duration::from_millis(300))).unwrap();
        assert!(o.timed_out);
        assert!(o.duration < Duration::from_secs(5));
        let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        thread::sleep(Duration::from_millis(100));
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| !s.contains(") Z ")).unwrap_or(false);
        assert!(!alive, "the forked child must die with the group");
    }
}
