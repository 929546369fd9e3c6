//! `tickmon serve`: the heartbeat endpoint (hyper on a tokio runtime).
//!
//! Requests are answered by a pool of worker threads; one connection never holds a worker
//! while it is slow: a request head must arrive within `--header-timeout` (5 s), a body
//! within 10 s, and a body is read only up to `--max-body` (a larger declared length is
//! refused before a byte is read). Connections are admitted by [`conns`]: a limit per
//! peer and in all, the idle connection of longest standing closed to make room, and pressure
//! said once instead of counted against the agents.
//! Every change goes through [`Core::record`] under one mutex: it is appended to the journal
//! (one `write`) before it is applied, and answered after that, so an acknowledged heartbeat
//! survives `kill -9`. With `--fsync`, a syncing thread makes journal appends durable in
//! groups (one `fdatasync` for every request that arrived while the previous one ran) and
//! answers wait for it.
//!
//! A sweeper thread counts silence past `--timeout` as a failure (once per period, as the
//! Lazarus Pit's heartbeat endpoint's `check_timeouts` did) and folds the journal into the state file when it grows or
//! has waited a minute; it also checks that the journal and the state file are still the
//! ones the server writes (someone may delete or replace them) and saves the state when
//! not. The server holds a lock on its state directory, which cannot be unlinked from under
//! it. SIGTERM and SIGINT stop accepting, let requests in flight finish, and write a final
//! snapshot; when that cannot be written the server says so and exits 2 (the journal still
//! holds everything acknowledged). Status changes go to stdout as `heartbeat` records.
//!
//! `GET /health` is written in chunks of at most 256 KiB by a task, agents without their
//! metadata unless `?metadata=1` asks for it; at most [`RESPONSE_SLOTS`] such answers (and
//! `/metrics`) are built at once, so memory stays bounded whatever the number of readers.
//!
//! One job a file: this one starts and stops the server; [`app`] holds the shared state,
//! [`sync`] the group-commit thread, [`handlers`] the requests, [`answers`] and [`metrics`]
//! the large answers, [`accept`] the server loop, [`conns`] admission, [`stream`] bodies.

use std::fs::File;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::signal::unix::{Signal, SignalKind, signal};

mod accept;
pub(crate) mod answers;
mod app;
pub(crate) mod conns;
mod handlers;
mod metrics;
pub(crate) mod stream;
mod sync;

use super::beats::Core;
use crate::entry::{Diag, Out};
use crate::error::{Error, Result};
use crate::ndjson;
pub(crate) use answers::RESPONSE_SLOTS;
pub(crate) use app::pressure_finding;
use app::{App, Counters, Episode, stamp_now, unix_now};
use conns::Conns;
pub use handlers::{Beat, Refusal, Route, parse_beat, parse_failure, route_of};
use sync::Syncer;

/// What the server thread tells the main thread.
enum Msg {
    Record(Value),
    Warn(String),
}

/// The server's settings, validated.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) listen: SocketAddr,
    pub(crate) state: PathBuf,
    pub(crate) timeout: Duration,
    pub(crate) token: Option<Vec<u8>>,
    pub(crate) max_body: usize,
    pub(crate) max_agents: usize,
    pub(crate) heartbeat_interval: u64,
    pub(crate) fsync: bool,
    pub(crate) threads: usize,
    /// Connections at once, in all and per peer address.
    pub(crate) max_connections: usize,
    pub(crate) max_connections_per_peer: usize,
    /// Time a client has to send a request head (also the idle keep-alive limit).
    pub(crate) header_timeout: Duration,
}

/// Resolve `--listen`; refuse an address beyond loopback without a token.
pub(crate) fn listen_addr(spec: &str, has_token: bool) -> Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = spec
        .to_socket_addrs()
        .map_err(|e| Error::usage(format!("--listen: '{spec}' is not an address to listen on (HOST:PORT): {e}")))?
        .collect();
    let Some(first) = addrs.first().copied() else {
        return Err(Error::usage(format!("--listen: '{spec}' resolves to no address")));
    };
    if !has_token && addrs.iter().any(|a| !a.ip().is_loopback()) {
        return Err(Error::usage(format!(
            "--listen {spec}: refusing to listen beyond loopback without --token-file \
             (anyone who can reach it could report heartbeats and failures)"
        )));
    }
    Ok(first)
}

/// Read the bearer token: the file's content, trimmed.
pub(crate) fn read_token(path: &Path, diag: &Diag) -> Result<Vec<u8>> {
    let bytes = crate::store::read::read(path, crate::store::kinds::TOKEN)
        .map_err(|e| Error::path("cannot read token file", path, e))?;
    let token = String::from_utf8(bytes)
        .map_err(|_| Error::config(format!("{}: the token is not text", path.display())))?
        .trim()
        .to_string();
    if token.is_empty() {
        return Err(Error::config(format!("{}: the token file is empty", path.display())));
    }
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path)
        && m.permissions().mode() & 0o077 != 0
    {
        diag.warn(format_args!("{}: the token file can be read by other users", path.display()));
    }
    Ok(token.into_bytes())
}

/// Run the server until SIGTERM or SIGINT. Status changes go to `out` as `heartbeat`
/// records; messages to `diag`.
pub(crate) fn run(settings: Settings, out: &mut Out, diag: &Diag) -> Result<()> {
    // The lock is held on the state directory itself, which cannot be unlinked from under
    // the server as a lock file can: one server per state directory.
    let state_dir = match settings.state.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = crate::store::Dir::create(&state_dir)?;
    let mut dir_lock = crate::store::Lock::from_file(
        File::from(dir.fd().try_clone_to_owned().map_err(|e| Error::path("cannot lock", &state_dir, e))?),
        state_dir.clone(),
    );
    let Some(_held_dir) = dir_lock.try_acquire()? else {
        return Err(Error::other(format!(
            "{}: another tickmon serve is using this state directory ({} is one server's)",
            state_dir.display(),
            settings.state.display()
        )));
    };
    // The lock file too, for servers of earlier versions.
    let mut lock = crate::store::Lock::for_file(&settings.state)?;
    let Some(_held) = lock.try_acquire()? else {
        return Err(Error::other(format!(
            "{}: another tickmon serve is using this state file",
            settings.state.display()
        )));
    };
    serve_locked(settings, out, diag)
}

/// The listening socket and the signals that stop the server, made on the runtime.
struct Bound {
    rt: tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
    local: SocketAddr,
    term: Signal,
    int: Signal,
}

/// Start the runtime, listen, and install the signal handlers.
fn bind(settings: &Settings) -> Result<Bound> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.threads)
        .thread_name("tickmon-serve")
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::io("starting the server runtime", e))?;
    let std_listener = std::net::TcpListener::bind(settings.listen)
        .map_err(|e| Error::io(format!("cannot listen on {}", settings.listen), e))?;
    std_listener.set_nonblocking(true).map_err(|e| Error::io("listening", e))?;
    let local = std_listener.local_addr().map_err(|e| Error::io("listening", e))?;
    let (listener, term, int) = {
        let _ctx = rt.enter();
        let l = tokio::net::TcpListener::from_std(std_listener).map_err(|e| Error::io("listening", e))?;
        let term = signal(SignalKind::terminate()).map_err(|e| Error::io("installing a SIGTERM handler", e))?;
        let int = signal(SignalKind::interrupt()).map_err(|e| Error::io("installing a SIGINT handler", e))?;
        (l, term, int)
    };
    Ok(Bound { rt, listener, local, term, int })
}

/// The group-commit thread's shared part, with `--fsync`.
fn syncer_for(core: &Core, fsync: bool) -> Option<Arc<Syncer>> {
    if !fsync {
        return None;
    }
    Some(Arc::new(Syncer::new(core.journal.handle(), core.snap.seq)))
}

/// Serve with the state directory locked: load the state, listen, and run the threads.
fn serve_locked(settings: Settings, out: &mut Out, diag: &Diag) -> Result<()> {
    let max_connections = accept::fit_to_descriptors(settings.max_connections, diag);
    let (core, loaded) = Core::open(&settings.state, &stamp_now())?;
    for w in &loaded.warnings {
        diag.warn(w);
    }
    let syncer = syncer_for(&core, settings.fsync);
    let bound = bind(&settings)?;
    let (tx, rx) = mpsc::channel::<Msg>();
    let agents = core.snap.agents.len();
    let app = Arc::new(App {
        core: Mutex::new(core),
        settings: settings.clone(),
        events: Mutex::new(Some(tx)),
        syncer,
        counters: Counters::default(),
        started: unix_now(),
        conns: Arc::new(Conns::new(max_connections, settings.max_connections_per_peer)),
        slots: Arc::new(tokio::sync::Semaphore::new(RESPONSE_SLOTS)),
        pressure: Mutex::new(Episode::default()),
    });
    diag.warn(format_args!(
        "listening on http://{} (state {}, {agents} agent(s), {} replayed from the journal)",
        bound.local,
        settings.state.display(),
        loaded.replayed
    ));
    let saved = run_threads(&app, bound, rx, out, diag)?;
    saved.map_err(|why| {
        Error::other(format!(
            "stopped; the state was NOT saved ({why}); the journal {} still holds every acknowledged \
             heartbeat and the next start replays it",
            super::beats::journal_path(&settings.state).display()
        ))
    })?;
    diag.warn("stopped; state saved");
    Ok(())
}

/// The sweeper: pressure, timeouts, the server's files and compaction, every `every` until
/// told to stop.
fn sweeper(app: &App, every: Duration, stop: &mpsc::Receiver<()>) {
    let mut last = Instant::now();
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        app.watch_pressure();
        app.sweep();
        app.check_files();
        let _ = app.compact(false, &mut last);
    }
}

/// The server thread: serve until a signal, then let what is still running finish briefly
/// and save everything. The error, when the state could not be saved.
fn server(app: &Arc<App>, bound: Bound, stop_sweeper: mpsc::Sender<()>) -> std::result::Result<(), String> {
    let Bound { rt, listener, term, int, .. } = bound;
    rt.block_on(accept::accept_loop(listener, app.clone(), term, int));
    rt.shutdown_timeout(Duration::from_secs(1));
    let _ = stop_sweeper.send(());
    let mut last = Instant::now();
    app.check_files();
    let saved = app.compact(true, &mut last);
    if let Some(sync) = &app.syncer {
        sync.stop();
    }
    if let Ok(mut ev) = app.events.lock() {
        ev.take();
    }
    saved
}

/// Run the syncing, sweeping and serving threads, writing what they tell to `out` and
/// `diag` on this one until the server stops.
fn run_threads(
    app: &Arc<App>,
    bound: Bound,
    rx: mpsc::Receiver<Msg>,
    out: &mut Out,
    diag: &Diag,
) -> Result<std::result::Result<(), String>> {
    std::thread::scope(|s| {
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        if let Some(sync) = &app.syncer {
            s.spawn(move || sync.run());
        }
        let every = (app.settings.timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(30));
        s.spawn(move || sweeper(app, every, &stop_rx));
        let server = s.spawn(move || server(app, bound, stop_tx));
        let mut writing = true;
        for msg in rx {
            match msg {
                Msg::Warn(w) => diag.warn(w),
                Msg::Record(v) if writing => {
                    if let Err(e) =
                        ndjson::write(out, &v).and_then(|()| std::io::Write::flush(out).map_err(Error::from))
                    {
                        // A reader that went away does not stop the server.
                        if !e.is_broken_pipe() {
                            diag.warn(format_args!("cannot write a record: {e}"));
                        }
                        writing = false;
                    }
                }
                Msg::Record(_) => {}
            }
        }
        server.join().map_err(|_| Error::other("the server thread failed"))
    })
}
