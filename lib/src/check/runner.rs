//! The runner: every check of a run at once, within bounds, results in the jobs' order.
//!
//! Network checks (url, port, tls) are futures on a multi-threaded runtime; blocking checks
//! (process, disk, command, heartbeat) run on the runtime's blocking pool, at most
//! [`Limits::blocking`] at a time. A check's time starts when it starts, never while it waits
//! for a slot, so a long queue cannot make a healthy service look timed out. At most
//! [`Limits::in_flight`] checks run at once: `--concurrency`, and never more than the
//! open-files limit leaves room for (the soft limit is raised to the hard one first).
//!
//! Every check is also under a watchdog of its timeout plus [`GRACE`]: one that overstays it
//! (a plugin stuck in the kernel, a file system that hangs) is reported down and its slot
//! freed, so a run's wall time is about its slowest timeout, never the sum.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::http::Client;
use super::procs::ProcTable;
use super::run;
use super::spec::CheckSpec;
use crate::clock::Clock;
use crate::diag::Diag;
use crate::record::{Check, CheckStatus};

/// Extra time a check gets beyond its timeout before the watchdog calls it hung.
pub const GRACE: Duration = Duration::from_millis(1500);

/// The most blocking checks (each perhaps a child process with three pipes) at once.
const BLOCKING_MAX: usize = 64;

/// File descriptors kept free of sockets: standard streams, metrics and config files, the
/// runtime's own.
const FD_RESERVE: u64 = 64;

/// One check to run: the service's name, what to check, and its time limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub name: String,
    pub spec: CheckSpec,
    pub timeout: Duration,
}

impl Job {
    pub fn new(name: impl Into<String>, spec: CheckSpec, timeout: Duration) -> Job {
        Job { name: name.into(), spec, timeout }
    }

    /// A `check` record of this job, without timestamp or latency yet.
    pub fn record(&self, status: CheckStatus, detail: String) -> Check {
        Check::new(&self.name, self.spec.type_name(), &self.spec.target(), status, detail)
    }

    /// Whether the check reads files or runs programs (and so runs on the blocking pool).
    pub fn is_blocking(&self) -> bool {
        !matches!(self.spec, CheckSpec::Url(_) | CheckSpec::Port { .. } | CheckSpec::Tls { .. })
    }
}

/// What every check of one run shares: the clock, the HTTP client (TLS configurations made
/// once), and one snapshot of the process table.
pub struct CheckEnv {
    pub clock: Clock,
    pub(crate) http: Client,
    procs: ProcTable,
}

impl CheckEnv {
    /// An environment whose HTTP requests say they come from `user_agent`.
    pub fn new(clock: Clock, user_agent: &str) -> CheckEnv {
        CheckEnv { clock, http: Client::new(user_agent), procs: ProcTable::new() }
    }

    /// An environment for a resident run: the process table is read again when its
    /// snapshot is more than a second old.
    pub fn resident(clock: Clock, user_agent: &str) -> CheckEnv {
        CheckEnv { clock, http: Client::new(user_agent), procs: ProcTable::refreshed(Duration::from_secs(1)) }
    }

    /// The process table (read on first use by a process check).
    pub fn procs(&self) -> &ProcTable {
        &self.procs
    }
}

/// The bounds of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Checks running at once (each holds at most one socket).
    pub in_flight: usize,
    /// Blocking checks running at once.
    pub blocking: usize,
}

impl Limits {
    /// `concurrency` checks at once, within `open_files` file descriptors: the reserve and
    /// the blocking checks' pipes come off first, the sockets get the rest.
    pub fn new(concurrency: usize, open_files: u64) -> Limits {
        let concurrency = concurrency.max(1);
        let blocking = concurrency.min(BLOCKING_MAX);
        let sockets = open_files.saturating_sub(FD_RESERVE + 4 * blocking as u64).max(1);
        let in_flight = concurrency.min(usize::try_from(sockets).unwrap_or(usize::MAX));
        Limits { in_flight, blocking: blocking.min(in_flight) }
    }
}

/// Raise the soft limit of open files to the hard limit (once per process); the soft limit
/// in force after.
pub fn raise_open_files_limit() -> u64 {
    static LIMIT: OnceLock<u64> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        match getrlimit(Resource::RLIMIT_NOFILE) {
            Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                Ok(()) => hard,
                Err(_) => soft,
            },
            Ok((soft, _)) => soft,
            Err(_) => 1024,
        }
    })
}

/// Run every job, at most `concurrency` at once, and return their records in the jobs' order.
pub fn run_all(jobs: Vec<Job>, env: &Arc<CheckEnv>, concurrency: usize, diag: &Diag) -> Vec<Check> {
    if jobs.is_empty() {
        return Vec::new();
    }
    let limits = Limits::new(concurrency, raise_open_files_limit());
    let rt = match runtime(jobs.len(), limits) {
        Ok(rt) => rt,
        Err(e) => {
            diag.warn(format_args!("cannot start the check runtime: {e}"));
            return jobs.iter().map(|j| not_run(j, env)).collect();
        }
    };
    let results = rt.block_on(drive(jobs.into_iter().map(Arc::new).collect(), env.clone(), limits, diag));
    // A blocking check past its watchdog may still be running: it is not waited for.
    rt.shutdown_background();
    results
}

/// Run one job on its own.
pub fn run_one(job: Job, env: &Arc<CheckEnv>) -> Check {
    let diag = Diag::new("check", Box::new(std::io::sink()), false);
    let fallback = not_run(&job, env);
    run_all(vec![job], env, 1, &diag).pop().unwrap_or(fallback)
}

/// The runtime for `jobs` checks within `limits`: one thread for a single check, else a
/// worker per core (at most 8). `probe --watch` runs on it too.
pub(crate) fn runtime(jobs: usize, limits: Limits) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = if jobs == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(cores.min(jobs).clamp(1, 8));
        b
    };
    // Room beyond the blocking checks for name lookups and for checks past their watchdog.
    b.max_blocking_threads(limits.blocking * 2 + 16).thread_name("pitcrew-check").enable_all().build()
}

/// Feed the jobs to the runtime in order, a slot each, and gather the records.
async fn drive(jobs: Arc<[Arc<Job>]>, env: Arc<CheckEnv>, limits: Limits, diag: &Diag) -> Vec<Check> {
    let n = jobs.len();
    let slots = Arc::new(Semaphore::new(limits.in_flight));
    let pool = Arc::new(Semaphore::new(limits.blocking));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Check)>();
    let feed = {
        let (jobs, env) = (jobs.clone(), env.clone());
        async move {
            for i in 0..n {
                let Ok(slot) = slots.clone().acquire_owned().await else { break };
                let (jobs, env, pool, tx) = (jobs.clone(), env.clone(), pool.clone(), tx.clone());
                tokio::spawn(async move {
                    let c = run_job(jobs[i].clone(), &env, &pool).await;
                    drop(slot);
                    let _ = tx.send((i, c));
                });
            }
        }
    };
    let mut results: Vec<Option<Check>> = vec![None; n];
    let gather = async {
        let mut done = 0;
        while let Some((i, c)) = rx.recv().await {
            results[i] = Some(c);
            done += 1;
            diag.progress(format_args!("checked {done}/{n}"));
        }
    };
    tokio::join!(feed, gather);
    diag.clear_progress();
    results.into_iter().zip(jobs.iter()).map(|(r, j)| r.unwrap_or_else(|| not_run(j, &env))).collect()
}

/// One job under its watchdog: on the runtime, or on the blocking pool (`pool`: a place per
/// blocking check that may run at once) once a place is free.
pub(crate) async fn run_job(job: Arc<Job>, env: &Arc<CheckEnv>, pool: &Semaphore) -> Check {
    let job = &job;
    if !job.is_blocking() {
        // Boxed: a task holds only what its kind of check needs, and moving it is cheap.
        return watchdog(job, env, Box::pin(run::network(job, env))).await;
    }
    let _place = pool.acquire().await.ok();
    let (own, shared) = (job.clone(), env.clone());
    let task = tokio::task::spawn_blocking(move || run::blocking(&own, &shared));
    watchdog(job, env, async {
        task.await.unwrap_or_else(|e| {
            let mut c = job.record(CheckStatus::Down, format!("check failed: {e}"));
            c.timestamp = env.clock.stamp();
            c
        })
    })
    .await
}

/// `check` under the watchdog: past the job's timeout and [`GRACE`], the job is reported down
/// and the check dropped (a blocking one is left to finish on its own).
async fn watchdog(job: &Job, env: &CheckEnv, check: impl std::future::Future<Output = Check>) -> Check {
    tokio::time::timeout(job.timeout + GRACE, check).await.unwrap_or_else(|_| overdue(job, env))
}

/// The watchdog's record of a check that overstayed its timeout and grace.
fn overdue(job: &Job, env: &CheckEnv) -> Check {
    let mut c = job
        .record(CheckStatus::Down, format!("check did not finish within its {}s timeout", job.timeout.as_secs_f64()));
    c.latency_ms = (job.timeout + GRACE).as_millis() as u64;
    c.timestamp = env.clock.stamp();
    c
}

fn not_run(job: &Job, env: &CheckEnv) -> Check {
    let mut c = job.record(CheckStatus::Down, "check was not run".into());
    c.timestamp = env.clock.stamp();
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::proc::CommandLine;
    use std::time::Instant;

    fn env() -> Arc<CheckEnv> {
        Arc::new(CheckEnv::new(Clock::system(), "pitcrew-test"))
    }

    fn quiet() -> Diag {
        Diag::new("test", Box::new(std::io::sink()), false)
    }

    #[test]
    fn limits_leave_room_for_files_and_pipes() {
        assert_eq!(Limits::new(256, 1_048_576), Limits { in_flight: 256, blocking: 64 });
        assert_eq!(Limits::new(4, 1_048_576), Limits { in_flight: 4, blocking: 4 });
        // 1024 files: 64 kept, 4 for each of 64 blocking checks, the rest for sockets.
        assert_eq!(Limits::new(4096, 1024), Limits { in_flight: 1024 - 64 - 256, blocking: 64 });
        assert_eq!(Limits::new(0, 10), Limits { in_flight: 1, blocking: 1 });
    }

    #[test]
    fn the_soft_open_files_limit_is_raised_to_the_hard_one() {
        let soft = raise_open_files_limit();
        let (now, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!((soft, now), (hard, hard));
    }

    #[test]
    fn the_blocking_pool_is_bounded_and_time_starts_when_a_check_does() {
        // Six commands of 300 ms each, at most two at a time: three rounds. None is late,
        // though the last waited 600 ms for a place, because its time starts when it starts.
        let dir = std::env::temp_dir().join(format!("pitcrew-pool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("running");
        let script = format!(
            "echo + >> {0}; n=$(grep -c + {0}); m=$(grep -c - {0} || true); echo $((n - m)) >> {0}.max; sleep 0.3; echo - >> {0}",
            log.display()
        );
        let jobs: Vec<Job> = (0..6)
            .map(|i| {
                let spec = CheckSpec::Command { command: CommandLine::Shell(script.clone()), degraded_is_down: false };
                Job::new(format!("c{i}"), spec, Duration::from_millis(700))
            })
            .collect();
        let started = Instant::now();
        let env = env();
        let limits = Limits { in_flight: 6, blocking: 2 };
        let rt = runtime(jobs.len(), limits).unwrap();
        let out = rt.block_on(drive(jobs.into_iter().map(Arc::new).collect(), env.clone(), limits, &quiet()));
        let took = started.elapsed();
        assert!(out.iter().all(|c| c.status == CheckStatus::Up), "{out:?}");
        let most: u32 = std::fs::read_to_string(format!("{}.max", log.display()))
            .unwrap()
            .lines()
            .map(|l| l.trim().parse::<u32>().unwrap())
            .max()
            .unwrap();
        assert!(most <= 2, "{most} ran at once");
        assert!(took >= Duration::from_millis(850), "three rounds of 300 ms took {took:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_watchdog_reports_a_check_that_hangs() {
        let env = env();
        let job = Job::new("hung", CheckSpec::Process { pattern: "x".into() }, Duration::from_millis(100));
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let started = Instant::now();
        let (stuck, sleeping) = rt.block_on(async {
            let sleeper = tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_secs(5)));
            tokio::join!(
                watchdog(&job, &env, std::future::pending()),
                watchdog(&job, &env, async {
                    let _ = sleeper.await;
                    job.record(CheckStatus::Up, "woke".into())
                })
            )
        });
        let took = started.elapsed();
        rt.shutdown_background();
        for c in [stuck, sleeping] {
            assert_eq!(c.status, CheckStatus::Down);
            assert_eq!(c.detail, "check did not finish within its 0.1s timeout");
            assert_eq!(c.latency_ms, 1600);
        }
        assert!(took >= Duration::from_millis(1600) && took < crate::util::test_limit(4.0), "{took:?}");
    }

    #[test]
    fn a_command_past_its_timeout_is_down_and_the_next_check_runs() {
        let hang = CheckSpec::Command { command: CommandLine::Shell("sleep 30".into()), degraded_is_down: false };
        let mut jobs = vec![Job::new("hung", hang, Duration::from_millis(200))];
        jobs.push(Job::new(
            "after",
            CheckSpec::Process { pattern: "no-such-process-q7".into() },
            Duration::from_secs(5),
        ));
        let started = Instant::now();
        let out = run_all(jobs, &env(), 1, &quiet());
        assert_eq!(out.len(), 2);
        // The plugin runner kills a command at its timeout; the watchdog is the backstop.
        assert_eq!(out[0].status, CheckStatus::Down);
        assert_eq!((out[1].name.as_str(), out[1].detail.as_str()), ("after", "not running"));
        assert!(started.elapsed() < crate::util::test_limit(5.0), "{:?}", started.elapsed());
    }

    #[test]
    fn records_come_back_in_job_order() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let jobs: Vec<Job> = (0..50)
            .map(|i| {
                let spec = if i % 2 == 0 {
                    CheckSpec::Port { host: "127.0.0.1".into(), port: closed }
                } else {
                    CheckSpec::Process { pattern: format!("no-such-process-{i}") }
                };
                Job::new(format!("j{i}"), spec, Duration::from_secs(2))
            })
            .collect();
        let names: Vec<String> = jobs.iter().map(|j| j.name.clone()).collect();
        let out = run_all(jobs, &env(), 7, &quiet());
        assert_eq!(out.iter().map(|c| c.name.clone()).collect::<Vec<_>>(), names);
        assert!(out.iter().all(|c| c.status == CheckStatus::Down && !c.timestamp.is_empty()));
    }
}
