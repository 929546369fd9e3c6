//! The server loop: accept connections (each admitted by [`super::conns`]) and serve each
//! on a task until it ends or is evicted; at SIGTERM or SIGINT, stop accepting and let
//! requests in flight finish for a while.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;

use super::app::App;
use super::handlers::handle;
use crate::entry::Diag;

/// Descriptors kept for the server's own files (state, journal, lock, stdio, runtime) when
/// the connection limit is fitted to the descriptor limit.
const RESERVED_FDS: u64 = 64;
/// How long requests in flight get to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(5);

/// The connection limit, fitted to the descriptor limit (raised to its hard limit first):
/// a server that runs out of descriptors cannot even accept the connection that would evict
/// an idle one.
pub(super) fn fit_to_descriptors(wanted: usize, diag: &Diag) -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return wanted };
    let soft = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() { hard } else { soft };
    let room = usize::try_from(soft.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX).max(16);
    if room < wanted {
        diag.warn(format_args!(
            "at most {room} connections at once: the descriptor limit is {soft} (raise it, e.g. LimitNOFILE=, for --max-connections {wanted})"
        ));
        room
    } else {
        wanted
    }
}

pub(super) async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(app.settings.header_timeout)
        .keep_alive(true)
        .max_buf_size(64 * 1024);
    let mut said = Instant::now() - Duration::from_secs(1);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => serve_one(&app, &builder, &graceful, stream, peer.ip()),
                Err(e) => {
                    // Out of descriptors and the like: close the connection idle the longest
                    // and go on; said at most once a second.
                    let shed = app.conns.shed();
                    if said.elapsed() >= Duration::from_secs(1) {
                        said = Instant::now();
                        app.warn(format!("accept: {e}{}", if shed { "; closed an idle connection" } else { "" }));
                    }
                    if !shed {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN) => {}
    }
}

/// Admit one connection (perhaps closing an idle one for it) and serve it on a task until
/// it ends or is evicted.
fn serve_one(
    app: &Arc<App>,
    builder: &http1::Builder,
    graceful: &GracefulShutdown,
    stream: tokio::net::TcpStream,
    peer: IpAddr,
) {
    let Some(mut ticket) = app.conns.admit(peer) else {
        drop(stream);
        return;
    };
    let _ = stream.set_nodelay(true);
    let (app, state) = (app.clone(), ticket.state.clone());
    let conn =
        builder.serve_connection(TokioIo::new(stream), service_fn(move |req| handle(app.clone(), state.clone(), req)));
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        tokio::select! {
            _ = conn => {}
            _ = &mut ticket.closed => {}
        }
        drop(ticket);
    });
}
