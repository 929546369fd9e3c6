//! `--publish nats://…/SUBJECT`: every record line a tool writes to stdout is also published
//! to the subject's JetStream stream, each with a `Nats-Msg-Id` made of the line's hash so a
//! line published twice within the stream's duplicate window is stored once.
//!
//! A line is published and its acknowledgement awaited before the next (tried again for up
//! to 8 s: a stream electing a leader answers "no stream found" meanwhile); what could not
//! be published (server down, no answer) is appended to a local outbox
//! (`STATE/publish/SUBJECT-HASH.jsonl`) and every later line after it, so order is kept. The
//! outbox is sent first, in order, by the next line that finds the server again (retried at
//! most once a second) or the next run. Publishing never fails the tool: its output, metrics
//! and exit status are the same with or without a server.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage};

use super::conn;
use super::url::NatsUrl;
use crate::diag::Diag;
use crate::error::Result;
use crate::store;

/// How often a publisher that failed tries the server again.
const RETRY: Duration = Duration::from_secs(1);

/// How long one line is tried before it goes to the outbox: past a leader election (5 to 7 s
/// measured on a 3-node cluster).
const RETRY_FOR: Duration = Duration::from_secs(8);

/// Publishes record lines; see the module docs.
pub struct Publisher {
    url: NatsUrl,
    outbox: PathBuf,
    diag: Diag,
    js: Option<jetstream::Context>,
    /// The outbox holds lines: new ones queue behind them.
    backlog: bool,
    last_try: Option<Instant>,
    warned: bool,
    name: String,
}

/// The `Nats-Msg-Id` of a line: FNV-1a of its bytes.
pub fn msg_id(line: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in line {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}-{}", line.len())
}

impl Publisher {
    /// A publisher to `url` whose outbox lives in `state_dir/publish/`. Connects at once and
    /// sends what the outbox holds; a server that is down is a warning, not an error.
    pub fn open(url: NatsUrl, state_dir: &Path, diag: Diag, name: &str) -> Result<Publisher> {
        let outbox = state_dir.join("publish").join(format!("{}.jsonl", url.file_stem()));
        let backlog = std::fs::metadata(&outbox).is_ok_and(|m| m.len() > 0);
        let mut p =
            Publisher { url, outbox, diag, js: None, backlog, last_try: None, warned: false, name: name.into() };
        p.reconnect();
        if p.backlog {
            p.drain();
        }
        Ok(p)
    }

    fn warn(&mut self, e: impl std::fmt::Display) {
        if !self.warned {
            self.diag.warn(format!("{e}; records go to the outbox {} until it answers", self.outbox.display()));
            self.warned = true;
        }
    }

    fn reconnect(&mut self) {
        self.last_try = Some(Instant::now());
        let (url, name) = (self.url.clone(), self.name.clone());
        let got = conn::runtime().and_then(|rt| {
            rt.block_on(async move {
                let client = conn::connect(&url, &name).await?;
                let js = conn::context(client);
                conn::stream(&js, &url).await?;
                Ok(js)
            })
        });
        match got {
            Ok(js) => self.js = Some(js),
            Err(e) => self.warn(e),
        }
    }

    /// Publish one line and wait for the stream's acknowledgement.
    fn send(&mut self, line: &[u8]) -> Result<()> {
        let Some(js) = self.js.clone() else {
            return Err(conn::failed("not connected to", &self.url, "no server answered"));
        };
        let (subject, payload, id) = (self.url.subject.clone(), line.to_vec(), msg_id(line));
        let url = self.url.clone();
        conn::runtime()?.block_on(async move {
            // A stream just created, or one electing a new leader, answers "no stream found"
            // for a few seconds: the same line (same message id) is tried again meanwhile.
            let start = tokio::time::Instant::now();
            let mut wait = Duration::from_millis(50);
            loop {
                let msg = PublishMessage::build().payload(payload.clone().into()).message_id(id.clone());
                let tried = match js.send_publish(subject.clone(), msg).await {
                    Ok(ack) => ack.await.map(|_| ()).map_err(|e| conn::failed("no acknowledgement from", &url, e)),
                    Err(e) => Err(conn::failed("cannot publish to", &url, e)),
                };
                match tried {
                    Ok(()) => return Ok(()),
                    Err(e) if start.elapsed() + wait > RETRY_FOR => return Err(e),
                    Err(_) => {
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(1));
                    }
                }
            }
        })
    }

    /// Send the outbox in order; stop at the first line that fails, keeping it and the rest.
    fn drain(&mut self) {
        let Ok(mut lock) = store::Lock::for_file(&self.outbox) else { return };
        let Ok(_held) = lock.acquire() else { return };
        let bytes = match store::read::read(&self.outbox, store::kinds::OUTBOX) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return self.diag.warn(format!("cannot read the outbox {}: {e}", self.outbox.display())),
        };
        let mut done = 0;
        for line in bytes.split_inclusive(|b| *b == b'\n') {
            let body = line.strip_suffix(b"\n").unwrap_or(line);
            if !body.is_empty()
                && let Err(e) = self.send(body)
            {
                self.js = None;
                self.warn(e);
                break;
            }
            done += line.len();
        }
        let rest = &bytes[done..];
        let kept = if rest.is_empty() {
            std::fs::remove_file(&self.outbox)
                .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
                .map_err(crate::error::Error::from)
        } else {
            store::atomic_write_as(&self.outbox, rest, store::Perm::Private)
        };
        if let Err(e) = kept {
            self.diag.warn(format!("cannot rewrite the outbox {}: {e}", self.outbox.display()));
        }
        self.backlog = !rest.is_empty();
        if !self.backlog && self.warned {
            self.diag.warn(format!("{} answers again; the outbox is sent", self.url));
            self.warned = false;
        }
    }

    fn queue(&mut self, line: &[u8]) {
        let mut l = line.to_vec();
        l.push(b'\n');
        let done = store::ensure_dir(self.outbox.parent().unwrap_or(Path::new("."))).and_then(|()| {
            let mut lock = store::Lock::for_file(&self.outbox)?;
            let _held = lock.acquire()?;
            store::append_line_as(&self.outbox, &l, store::Perm::Private)
        });
        if let Err(e) = done {
            self.diag
                .warn(format!("cannot append to the outbox {}: {e}; a record is not published", self.outbox.display()));
        }
        self.backlog = true;
    }

    /// Publish a record line (without its newline), or queue it behind the outbox.
    pub fn line(&mut self, line: &[u8]) {
        if self.backlog || self.js.is_none() {
            if self.last_try.is_none_or(|t| t.elapsed() >= RETRY) {
                if self.js.is_none() {
                    self.reconnect();
                }
                if self.js.is_some() && self.backlog {
                    self.drain();
                }
            }
            if self.backlog || self.js.is_none() {
                return self.queue(line);
            }
        }
        if let Err(e) = self.send(line) {
            self.js = None;
            self.last_try = Some(Instant::now());
            self.warn(e);
            self.queue(line);
        }
    }

    /// Before the tool exits or waits: one more try to send the outbox.
    pub fn flush(&mut self) {
        if self.backlog && self.last_try.is_none_or(|t| t.elapsed() >= RETRY) {
            if self.js.is_none() {
                self.reconnect();
            }
            if self.js.is_some() {
                self.drain();
            }
        }
        if let (Some(js), Ok(rt)) = (&self.js, conn::runtime()) {
            let client = js.client();
            let _ = rt.block_on(async move { tokio::time::timeout(Duration::from_secs(2), client.flush()).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_id_is_the_lines_own() {
        assert_eq!(msg_id(b"{\"a\":1}"), msg_id(b"{\"a\":1}"));
        assert_ne!(msg_id(b"{\"a\":1}"), msg_id(b"{\"a\":2}"));
    }
}
