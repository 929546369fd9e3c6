//! The large answers of `tickmon serve`: `/health`, written in chunks as the agents are read,
//! and (in [`super::metrics`]) `/metrics`. At most [`RESPONSE_SLOTS`] of them are built at
//! once, so memory stays bounded whatever the number of readers.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::json;

use super::app::{App, Resp, unix_now};
use super::conns::ConnState;
use super::handlers::error;
use super::stream::{Chunks, RespBody};
use crate::tickmon::beats::{AgentState, Health};

/// Large answers (`/health`, `/metrics`) built at once; more wait for a slot.
pub(crate) const RESPONSE_SLOTS: usize = 8;
/// How long a request waits for a response slot before it is answered 503.
const SLOT_WAIT: Duration = Duration::from_secs(10);
/// A chunk of a streamed `/health` is cut after this many bytes.
const HEALTH_CHUNK: usize = 256 * 1024;

/// `?metadata=1` (or `true`, `yes`): `/health` with each agent's metadata.
pub(crate) fn wants_metadata(query: Option<&str>) -> bool {
    query.unwrap_or("").split('&').any(|kv| match kv.split_once('=') {
        Some((k, v)) => k == "metadata" && matches!(v, "1" | "true" | "yes"),
        None => kv == "metadata",
    })
}

/// A slot to build a large answer in, waiting a while for one; `None` when none came free.
pub(super) async fn slot(app: &App) -> Option<tokio::sync::OwnedSemaphorePermit> {
    tokio::time::timeout(SLOT_WAIT, app.slots.clone().acquire_owned()).await.ok().and_then(|p| p.ok())
}

pub(super) fn busy_answer() -> Resp {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, "too many large answers at once; try again");
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// `/health`, written in chunks by a task (the agents are read a page at a time, the state
/// lock held only for a page): memory is a few chunks per answer, whatever the agents.
pub(super) async fn health(app: &Arc<App>, conn: &Arc<ConnState>, with_metadata: bool) -> Resp {
    let Some(permit) = slot(app).await else { return busy_answer() };
    let head = {
        let core = app.lock();
        let counts = core.snap.counts();
        let n = |h: Health| counts.get(&h).copied().unwrap_or(0);
        let mut server = json!({
            "connections": app.conns.open(),
            "max_connections": app.conns.max,
            "under_pressure": app.pressure.lock().map(|p| p.note.is_some()).unwrap_or(false),
        });
        if let Ok(p) = app.pressure.lock()
            && let Some(note) = &p.note
        {
            server["pressure"] = json!(note.describe());
        }
        let v = json!({
            "timestamp": unix_now(),
            "total_agents": core.snap.agents.len(),
            "healthy": n(Health::Healthy),
            "degraded": n(Health::Degraded),
            "unhealthy": n(Health::Unhealthy),
            "server": server,
        });
        // `{...,"server":{...}` and then the agents.
        let mut head = v.to_string();
        head.pop();
        head.push_str(",\"agents\":{");
        head
    };
    let (tx, body) = Chunks::new(Some(conn.busy()));
    let app = app.clone();
    tokio::spawn(async move {
        let _permit = permit;
        if tx.send(Bytes::from(head)).await.is_err() {
            return;
        }
        let mut after: Option<String> = None;
        let mut first = true;
        loop {
            let mut chunk = Vec::with_capacity(HEALTH_CHUNK + 4096);
            let done = {
                let core = app.lock();
                let range: Box<dyn Iterator<Item = (&String, &AgentState)>> = match &after {
                    None => Box::new(core.snap.agents.iter()),
                    Some(k) => Box::new(
                        core.snap.agents.range::<String, _>((std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded)),
                    ),
                };
                let mut done = true;
                for (id, a) in range {
                    if chunk.len() >= HEALTH_CHUNK {
                        done = false;
                        break;
                    }
                    if !first {
                        chunk.push(b',');
                    }
                    first = false;
                    let _ = serde_json::to_writer(&mut chunk, id);
                    chunk.push(b':');
                    let _ = serde_json::to_writer(&mut chunk, &a.api_view(with_metadata));
                    after = Some(id.clone());
                }
                done
            };
            if done {
                chunk.extend_from_slice(b"}}");
            }
            if tx.send(Bytes::from(chunk)).await.is_err() || done {
                return;
            }
        }
    });
    let mut r = Response::new(RespBody::Right(body));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
