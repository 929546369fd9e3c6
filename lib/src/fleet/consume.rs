//! Reading records from `nats://…/SUBJECT?durable=NAME` where a tool reads a file: a durable
//! pull consumer with explicit acknowledgement, as a [`std::io::BufRead`] of NDJSON lines.
//!
//! In batch, the reader hands out what is pending and then ends; with `--follow` it keeps
//! waiting for more. A message is acknowledged only after the tool has committed what it
//! caused: in batch when the tool has finished without an error ([`commit_all`], called by
//! the entry point), in the resident modes when the loop asks for the next record after
//! having handled the message's line ([`commit_through`]). A tool that fails or is killed
//! before that gets the messages again (at-least-once: after the consumer's ack wait, 30 s unless `?ack_wait=SECS` says).

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};
use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;

use super::conn;
use super::url::NatsUrl;
use crate::error::Result;

/// Messages fetched at a time.
const BATCH: usize = 500;

/// A message whose line(s) end at `last_line` of the source named `source`.
struct Held {
    source: String,
    last_line: u64,
    msg: jetstream::Message,
}

/// Messages handed out and not yet acknowledged, with the clients to flush.
static HELD: Mutex<(VecDeque<Held>, Vec<async_nats::Client>)> = Mutex::new((VecDeque::new(), Vec::new()));

fn ack(done: Vec<Held>, flush: bool) -> Result<()> {
    if done.is_empty() && !flush {
        return Ok(());
    }
    let clients = HELD.lock().map(|h| h.1.clone()).unwrap_or_default();
    conn::runtime()?.block_on(async move {
        for h in done {
            h.msg
                .ack()
                .await
                .map_err(|e| crate::error::Error::other(format!("cannot acknowledge a record of {}: {e}", h.source)))?;
        }
        if flush {
            for c in clients {
                let _ = tokio::time::timeout(Duration::from_secs(5), c.flush()).await;
            }
        }
        Ok(())
    })
}

/// Acknowledge every message handed out (the tool has finished and committed).
pub fn commit_all() -> Result<()> {
    let done: Vec<Held> = match HELD.lock() {
        Ok(mut h) if !h.1.is_empty() => h.0.drain(..).collect(),
        _ => return Ok(()),
    };
    ack(done, true)
}

/// Acknowledge the messages of `source` whose lines are all at or before `line` (the loop
/// has handled that line).
pub fn commit_through(source: &str, line: u64) -> Result<()> {
    let done: Vec<Held> = match HELD.lock() {
        Ok(mut h) if !h.0.is_empty() => {
            let (keep, done): (VecDeque<Held>, VecDeque<Held>) =
                h.0.drain(..).partition(|m| m.source != source || m.last_line > line);
            h.0 = keep;
            done.into()
        }
        _ => return Ok(()),
    };
    ack(done, false)
}

/// True when a replicated stream or consumer has a leader and every replica is current.
fn settled(cluster: Option<&jetstream::stream::ClusterInfo>) -> bool {
    match cluster {
        None => true,
        Some(c) => c.leader.is_some() && c.replicas.iter().all(|r| r.current && !r.offline),
    }
}

/// A durable consumer read as lines; see the module docs.
pub struct Reader {
    url: NatsUrl,
    name: String,
    follow: bool,
    consumer: consumer::PullConsumer,
    stream: jetstream::stream::Stream,
    /// `--follow`: the consumer's message stream, kept open between reads.
    live: Option<consumer::pull::Stream>,
    buf: Vec<u8>,
    pos: usize,
    line: u64,
    ended: bool,
}

impl Reader {
    /// Connect and bind (creating them when absent) the stream and the durable consumer.
    pub fn open(url: &NatsUrl, follow: bool) -> Result<Reader> {
        let Some(durable) = url.durable.clone() else {
            return Err(conn::failed("reading needs ?durable=NAME:", url, "no consumer name"));
        };
        let u = url.clone();
        let (consumer, stream) = conn::runtime()?.block_on(async move {
            let client = conn::connect(&u, &format!("pitcrew-{durable}")).await?;
            let js = conn::context(client.clone());
            let stream = conn::stream(&js, &u).await?;
            let cfg = consumer::pull::Config {
                durable_name: Some(durable.clone()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(u.ack_wait),
                deliver_policy: consumer::DeliverPolicy::All,
                max_ack_pending: 20_000,
                ..Default::default()
            };
            // Right after a node (re)starts the request can time out: try for a few seconds.
            let mut tries = 0;
            let c = loop {
                match stream.get_or_create_consumer(&durable, cfg.clone()).await {
                    Ok(c) => break c,
                    Err(e) if tries >= 5 => return Err(conn::failed("cannot open the consumer of", &u, e)),
                    Err(_) => tries += 1,
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            };
            if let Ok(mut h) = HELD.lock() {
                h.1.push(client);
            }
            Ok::<_, crate::error::Error>((c, stream))
        })?;
        Ok(Reader {
            url: url.clone(),
            name: url.to_string(),
            follow,
            consumer,
            stream,
            live: None,
            buf: Vec::new(),
            pos: 0,
            line: 0,
            ended: false,
        })
    }

    /// `--follow`: wait for the next message, then take those already there (up to a
    /// batch), so each is handed on as soon as it arrives.
    fn follow_fetch(&mut self) -> Result<Vec<jetstream::Message>> {
        let rt = conn::runtime()?;
        let url = self.url.clone();
        if self.live.is_none() {
            let c = self.consumer.clone();
            let live = rt.block_on(async move {
                c.stream()
                    .max_messages_per_batch(BATCH)
                    .heartbeat(Duration::from_secs(2))
                    .expires(Duration::from_secs(10))
                    .messages()
                    .await
            });
            self.live = Some(live.map_err(|e| conn::failed("cannot read", &url, e))?);
        }
        let Some(live) = self.live.as_mut() else { return Ok(Vec::new()) };
        rt.block_on(async move {
            let mut msgs = Vec::new();
            let mut errors = 0;
            loop {
                match live.next().await {
                    Some(Ok(m)) => {
                        msgs.push(m);
                        break;
                    }
                    // A missed heartbeat (a node went away) is not the end: the client
                    // reconnects and the pull goes on.
                    Some(Err(e)) => {
                        errors += 1;
                        if errors > 60 {
                            return Err(conn::failed("cannot read", &url, e));
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    None => return Ok(msgs),
                }
            }
            while msgs.len() < BATCH {
                match futures_util::FutureExt::now_or_never(live.next()) {
                    Some(Some(Ok(m))) => msgs.push(m),
                    _ => break,
                }
            }
            Ok(msgs)
        })
    }

    /// Fetch the next messages into the buffer; false at the end (batch: nothing pending).
    fn fetch(&mut self) -> io::Result<bool> {
        if self.follow {
            let msgs = self.follow_fetch().map_err(io::Error::other)?;
            return self.hold(msgs);
        }
        let (consumer, stream, url) = (self.consumer.clone(), self.stream.clone(), self.url.clone());
        let rt = conn::runtime().map_err(io::Error::other)?;
        let got = rt.block_on(async move {
            let mut waits = 0;
            loop {
                let batch = consumer.fetch().max_messages(BATCH).messages().await;
                let mut batch = batch.map_err(|e| conn::failed("cannot read", &url, e))?;
                let mut msgs = Vec::new();
                while let Some(m) = batch.next().await {
                    msgs.push(m.map_err(|e| conn::failed("cannot read", &url, e))?);
                }
                if !msgs.is_empty() {
                    return Ok(msgs);
                }
                // An empty answer ends the input only once the consumer has been
                // handed the stream's last message, as the stream's leader knows it. The
                // consumer's leader can sit on a replica that is still catching up after a
                // restart: it answers empty, and counts nothing pending, while messages wait.
                let (mut c, mut s) = (consumer.clone(), stream.clone());
                let info = c.info().await.map_err(|e| conn::failed("cannot read", &url, e))?;
                let delivered = info.delivered.stream_sequence;
                let consumer_current = settled(info.cluster.as_ref());
                let sinfo = s.info().await.map_err(|e| conn::failed("cannot read", &url, e))?;
                let last = sinfo.state.last_sequence;
                // A replica that rejoins answers from what it had until it has caught up:
                // the end counts only when every replica is current.
                if delivered >= last && consumer_current && settled(sinfo.cluster.as_ref()) {
                    return Ok(msgs);
                }
                waits += 1;
                if waits > 150 {
                    let why = format!("the consumer stays behind the stream (message {delivered} of {last})");
                    return Err(conn::failed("cannot read all of", &url, why));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        let msgs = got.map_err(io::Error::other)?;
        self.hold(msgs)
    }

    /// Put the messages' lines in the buffer and hold the messages for acknowledgement.
    fn hold(&mut self, msgs: Vec<jetstream::Message>) -> io::Result<bool> {
        if msgs.is_empty() {
            return Ok(false);
        }
        self.buf.clear();
        self.pos = 0;
        let mut held = Vec::with_capacity(msgs.len());
        for m in msgs {
            let payload = m.payload.strip_suffix(b"\n").unwrap_or(&m.payload);
            self.buf.extend_from_slice(payload);
            self.buf.push(b'\n');
            self.line += 1 + payload.iter().filter(|b| **b == b'\n').count() as u64;
            held.push(Held { source: self.name.clone(), last_line: self.line, msg: m });
        }
        if let Ok(mut h) = HELD.lock() {
            h.0.extend(held);
        }
        Ok(true)
    }
}

impl Read for Reader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Reader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.buf.len() && !self.ended && !self.fetch()? {
            self.ended = true;
            self.buf.clear();
            self.pos = 0;
        }
        Ok(&self.buf[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }
}
