//! Connecting: one small tokio runtime per process that carries every NATS connection, and
//! the credentials given on the command line (`--nats-creds`, `--nats-token-file`,
//! `--nats-ca`) or in the URL. The client is given addresses without credentials and the
//! credentials through its options, so they never reach a message or a log line.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use async_nats::jetstream::{self, stream};

use super::url::NatsUrl;
use crate::error::{Error, Result};

/// Credentials and TLS settings from the command line.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// A NATS credentials file (JWT and NKey seed).
    pub creds: Option<PathBuf>,
    /// A file holding a token.
    pub token_file: Option<PathBuf>,
    /// A PEM file of CA certificates to trust (turns TLS on).
    pub ca: Option<PathBuf>,
}

static AUTH: OnceLock<Auth> = OnceLock::new();
static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();

/// Set the command line's credentials (once per process).
pub fn configure(auth: Auth) {
    let _ = AUTH.set(auth);
}

/// The runtime every NATS connection of the process runs on: one worker thread, whose
/// signals are blocked so that the resident tools' signal handling keeps them.
pub fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("pitcrew-nats")
                .enable_all()
                .on_thread_start(|| {
                    let mut set = nix::sys::signal::SigSet::empty();
                    for s in [
                        nix::sys::signal::Signal::SIGINT,
                        nix::sys::signal::Signal::SIGTERM,
                        nix::sys::signal::Signal::SIGHUP,
                        nix::sys::signal::Signal::SIGPIPE,
                    ] {
                        set.add(s);
                    }
                    let _ = set.thread_block();
                })
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::other(format!("cannot start the NATS runtime: {e}")))
}

/// An error about `url` (shown redacted): `what nats://host:port/SUBJECT: why`.
pub fn failed(what: &str, url: &NatsUrl, e: impl std::fmt::Display) -> Error {
    Error::other(format!("{what} {url}: {e}"))
}

/// Connect to the servers of `url` (each tried once, 2 s each), with its credentials.
pub async fn connect(url: &NatsUrl, name: &str) -> Result<async_nats::Client> {
    let auth = AUTH.get().cloned().unwrap_or_default();
    let scheme = if url.tls { "tls" } else { "nats" };
    let addrs = url
        .servers
        .iter()
        .map(|s| format!("{scheme}://{s}").parse::<async_nats::ServerAddr>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| failed("bad address", url, e))?;
    let mut opts = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(2))
        .max_reconnects(Some(120))
        .request_timeout(Some(Duration::from_secs(5)));
    if let Some((u, p)) = &url.user {
        opts = opts.user_and_password(u.clone(), p.clone());
    }
    if let Some(t) = &url.token {
        opts = opts.token(t.clone());
    }
    if let Some(f) = &auth.token_file {
        let t = crate::store::read::read_text(f, crate::store::kinds::TOKEN)
            .map_err(|e| failed("cannot read the token file for", url, e))?;
        opts = opts.token(t.trim().to_string());
    }
    if let Some(f) = &auth.creds {
        opts = opts.credentials_file(f).await.map_err(|e| failed("cannot load the credentials file for", url, e))?;
    }
    if let Some(ca) = &auth.ca {
        opts = opts.require_tls(true).add_root_certificates(ca.clone());
    }
    opts.connect(addrs).await.map_err(|e| failed("cannot connect to", url, e))
}

/// A JetStream context with bounded waits (5 s for API calls and acks).
pub fn context(client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new().timeout(Duration::from_secs(5)).build(client)
}

/// The stream of `url`'s subject, created when it does not exist (file storage, the URL's
/// replicas, 7 days or 1 GiB, a 2-minute duplicate window).
pub async fn stream(js: &jetstream::Context, url: &NatsUrl) -> Result<stream::Stream> {
    let cfg = stream::Config {
        name: url.stream(),
        subjects: vec![url.subject.clone()],
        num_replicas: url.replicas,
        retention: stream::RetentionPolicy::Limits,
        max_age: Duration::from_secs(7 * 86_400),
        max_bytes: 1 << 30,
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    // Right after a node (re)starts a create can time out once: try for a few seconds.
    let mut last = None;
    for _ in 0..5 {
        match js.get_or_create_stream(cfg.clone()).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(failed("cannot open the stream of", url, last.unwrap_or_default()))
}
