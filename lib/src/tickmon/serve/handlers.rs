//! The requests of `tickmon serve`: routing by method and path, the bearer token, bodies
//! read within a limit and a deadline, and the answers to heartbeats, failures and agent
//! queries (`/health` and `/metrics` are in [`super::answers`] and [`super::metrics`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;

use super::app::{App, Resp, unix_now};
use super::conns::ConnState;
use super::stream::full;
use super::{answers, metrics};
use crate::tickmon::beats::{AgentState, Event, MAX_ERROR_CHARS, MAX_METADATA_DEPTH, Op};
use crate::util::{is_safe_id, truncate};

/// Time a client has to send a request's body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// A request refused: the status and the message of its `{"error": ...}` answer.
#[derive(Debug)]
pub struct Refusal(StatusCode, String);

impl Refusal {
    pub(super) fn new(code: StatusCode, msg: impl Into<String>) -> Refusal {
        Refusal(code, msg.into())
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        self.0.as_u16()
    }

    pub(super) fn response(self) -> Resp {
        error(self.0, &self.1)
    }
}

/// What a heartbeat body carries: metadata and a response time.
pub type Beat = (Option<Map<String, Value>>, Option<f64>);

fn json_response(code: StatusCode, v: &Value) -> Resp {
    let mut r = Response::new(full(v.to_string()));
    *r.status_mut() = code;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub(super) fn error(code: StatusCode, msg: &str) -> Resp {
    json_response(code, &json!({ "error": msg }))
}

fn method_not_allowed(allow: &'static str) -> Resp {
    let mut r = error(StatusCode::METHOD_NOT_ALLOWED, &format!("method not allowed (allowed: {allow})"));
    r.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

fn authorized(token: &[u8], req: &Request<Incoming>) -> bool {
    let Some(h) = req.headers().get(header::AUTHORIZATION) else { return false };
    let b = h.as_bytes();
    if b.len() < 7 || !b[..7].eq_ignore_ascii_case(b"bearer ") {
        return false;
    }
    let given = b[7..].trim_ascii();
    given.ct_eq(token).into()
}

fn valid_id(id: &str) -> std::result::Result<(), Refusal> {
    if is_safe_id(id) {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "invalid agent id (1-128 letters, digits, '-', '_', '.', not starting with '.')",
        ))
    }
}

async fn read_body(req: Request<Incoming>, max: usize) -> std::result::Result<(Bytes, bool), Refusal> {
    let too_large = || Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body larger than {max} bytes"));
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim().to_ascii_lowercase().starts_with("application/json"));
    let body = Limited::new(req.into_body(), max);
    match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
        Err(_) => Err(Refusal::new(StatusCode::REQUEST_TIMEOUT, "the request body did not arrive in time")),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(e)) => Err(Refusal::new(StatusCode::BAD_REQUEST, format!("cannot read the request body: {e}"))),
        Ok(Ok(c)) => Ok((c.to_bytes(), is_json)),
    }
}

fn bad_json(e: &serde_json::Error) -> Refusal {
    Refusal::new(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}"))
}

/// `{"metadata": {...}, "response_time": 0.2}`, every part optional; an empty body is fine.
pub fn parse_beat(body: &[u8]) -> std::result::Result<Beat, Refusal> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((None, None));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| bad_json(&e))?;
    let Value::Object(m) = v else {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "expected a JSON object like {\"metadata\": {...}}"));
    };
    let metadata = match m.get("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(md)) if md.values().any(|v| crate::ndjson::depth(v) >= MAX_METADATA_DEPTH) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("metadata: nested deeper than {MAX_METADATA_DEPTH} levels"),
            ));
        }
        Some(Value::Object(md)) => Some(md.clone()),
        Some(_) => return Err(Refusal::new(StatusCode::BAD_REQUEST, "metadata: expected a JSON object")),
    };
    let rt = match m.get("response_time") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() && f >= 0.0 => Some(f),
            _ => return Err(Refusal::new(StatusCode::BAD_REQUEST, "response_time: expected seconds (a number >= 0)")),
        },
        Some(_) => {
            return Err(Refusal::new(StatusCode::BAD_REQUEST, "response_time: expected seconds (a number >= 0)"));
        }
    };
    Ok((metadata, rt))
}

/// `{"error": "text"}`, a JSON string, or a plain-text body; empty means "failure reported".
pub fn parse_failure(body: &[u8], is_json: bool) -> std::result::Result<String, Refusal> {
    const DEFAULT: &str = "failure reported";
    let text = if body.iter().all(u8::is_ascii_whitespace) {
        DEFAULT.to_string()
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => match m.get("error") {
                None | Some(Value::Null) => DEFAULT.to_string(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            },
            Ok(Value::String(s)) => s,
            Ok(_) if is_json => {
                return Err(Refusal::new(StatusCode::BAD_REQUEST, "expected a JSON object like {\"error\": \"...\"}"));
            }
            Err(e) if is_json => return Err(bad_json(&e)),
            _ => match std::str::from_utf8(body) {
                Ok(s) => s.trim().to_string(),
                Err(_) => return Err(Refusal::new(StatusCode::BAD_REQUEST, "the error text is not UTF-8")),
            },
        }
    };
    let text = if text.trim().is_empty() { DEFAULT.to_string() } else { text };
    Ok(truncate(&text, MAX_ERROR_CHARS))
}

pub(super) async fn handle(
    app: Arc<App>,
    conn: Arc<ConnState>,
    req: Request<Incoming>,
) -> std::result::Result<Resp, Infallible> {
    // Busy while the request is handled; a streamed answer keeps its own mark until it ends.
    let busy = conn.busy();
    let resp = route(&app, &conn, req).await;
    app.count(resp.status().as_u16());
    drop(busy);
    Ok(resp)
}

/// What a request asks for, from its method and path alone (ids not yet validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// `GET /health`: every agent's health.
    Health,
    /// `GET /metrics`: Prometheus metrics.
    Metrics,
    /// `POST /heartbeat/ID`: a heartbeat.
    Heartbeat(&'a str),
    /// `POST /heartbeat/ID/fail`: a failure reported.
    Failure(&'a str),
    /// `GET /agent/ID`: one agent's state.
    Agent(&'a str),
    /// `DELETE /agent/ID`: forget the agent.
    Forget(&'a str),
    /// A known path with a method it does not take: the methods it does.
    NotAllowed(&'static str),
    /// Any other path.
    NotFound,
}

/// Route a request by its method and path.
pub fn route_of<'a>(method: &str, path: &'a str) -> Route<'a> {
    let parts: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let read = method == "GET" || method == "HEAD";
    let post = method == "POST";
    match parts.as_slice() {
        ["health"] if read => Route::Health,
        ["health"] => Route::NotAllowed("GET, HEAD"),
        ["metrics"] if read => Route::Metrics,
        ["metrics"] => Route::NotAllowed("GET, HEAD"),
        ["heartbeat", id] if post => Route::Heartbeat(id),
        ["heartbeat", _] => Route::NotAllowed("POST"),
        ["heartbeat", id, "fail"] if post => Route::Failure(id),
        ["heartbeat", _, "fail"] => Route::NotAllowed("POST"),
        ["agent", id] if read => Route::Agent(id),
        ["agent", id] if method == "DELETE" => Route::Forget(id),
        ["agent", _] => Route::NotAllowed("GET, HEAD, DELETE"),
        _ => Route::NotFound,
    }
}

async fn route(app: &Arc<App>, conn: &Arc<ConnState>, req: Request<Incoming>) -> Resp {
    if let Some(token) = &app.settings.token
        && !authorized(token, &req)
    {
        let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match route_of(method.as_str(), &path) {
        Route::Health => answers::health(app, conn, answers::wants_metadata(req.uri().query())).await,
        Route::Metrics => metrics::metrics(app).await,
        Route::Heartbeat(id) => heartbeat(app, id, req).await,
        Route::Failure(id) => failure(app, id, req).await,
        Route::Agent(id) => agent(app, id),
        Route::Forget(id) => forget(app, id).await,
        Route::NotAllowed(allow) => method_not_allowed(allow),
        Route::NotFound => error(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn heartbeat(app: &App, id: &str, req: Request<Incoming>) -> Resp {
    if let Err(r) = valid_id(id) {
        return r.response();
    }
    let (body, _) = match read_body(req, app.settings.max_body).await {
        Ok(b) => b,
        Err(r) => return r.response(),
    };
    let (metadata, response_time) = match parse_beat(&body) {
        Ok(p) => p,
        Err(r) => return r.response(),
    };
    let now = unix_now();
    let mut ev = Event::new(Op::Beat, id, now);
    ev.metadata = metadata;
    ev.response_time = response_time;
    match app.record(ev, true, false).await {
        Ok(_) => json_response(
            StatusCode::OK,
            &json!({"status": "ok", "agent_id": id, "timestamp": now, "next_heartbeat": app.settings.heartbeat_interval}),
        ),
        Err(r) => r.response(),
    }
}

async fn failure(app: &App, id: &str, req: Request<Incoming>) -> Resp {
    if let Err(r) = valid_id(id) {
        return r.response();
    }
    let (body, is_json) = match read_body(req, app.settings.max_body).await {
        Ok(b) => b,
        Err(r) => return r.response(),
    };
    let text = match parse_failure(&body, is_json) {
        Ok(t) => t,
        Err(r) => return r.response(),
    };
    let mut ev = Event::new(Op::Fail, id, unix_now());
    ev.error = Some(text);
    match app.record(ev, true, true).await {
        Ok(state) => json_response(StatusCode::OK, &state.map(|a| a.api()).unwrap_or(Value::Null)),
        Err(r) => r.response(),
    }
}

fn agent(app: &App, id: &str) -> Resp {
    if let Err(r) = valid_id(id) {
        return r.response();
    }
    let state = app.lock().snap.agents.get(id).map(AgentState::api);
    match state {
        Some(v) => json_response(StatusCode::OK, &v),
        None => error(StatusCode::NOT_FOUND, "unknown agent"),
    }
}

async fn forget(app: &App, id: &str) -> Resp {
    if let Err(r) = valid_id(id) {
        return r.response();
    }
    match app.record(Event::new(Op::Forget, id, unix_now()), false, false).await {
        Ok(_) => json_response(StatusCode::OK, &json!({"status": "forgotten", "agent_id": id})),
        Err(r) => r.response(),
    }
}
