//! A loopback Gitea that answers the part of the REST API notify uses, in Gitea's own shapes:
//! `GET/POST /api/v1/repos/{owner}/{repo}/labels` (paged, at most 50 a page), `GET
//! .../issues?state=&type=&q=&limit=`, `POST .../issues` (`labels` is a list of ids: names are
//! a 422 `{"message":"[]: json: cannot unmarshal string ...","url":...}` as Gitea's binding
//! answers), `POST .../issues/{n}/comments`, `GET .../issues/{n}/comments` (Gitea's comment
//! objects, with their author's `user.login`), `PATCH .../issues/{n}`. A wrong token is a 401
//! `{"message":"user does not exist ...","url":...}`, none on a write a 401 "token is
//! required", an unknown repository a 404.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::util::http::{HttpServer, Reply, Seen};

pub const TOKEN: &str = "9f8e7d6c5b4a39281706gitea-secret";
pub const REPO: &str = "ops/alerts";

#[derive(Debug, Clone)]
pub struct Issue {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub state: String,
    pub labels: Vec<u64>,
    pub comments: Vec<String>,
    /// Each comment's author (`ops-bot` for what notify wrote).
    pub authors: Vec<String>,
}

#[derive(Default)]
pub struct GiteaState {
    pub labels: Vec<(u64, String)>,
    pub issues: Vec<Issue>,
    pub next_id: u64,
    /// Refuse to create labels (a token without the right).
    pub no_label_create: bool,
    pub requests: Vec<String>,
}

pub struct FakeGitea {
    pub server: HttpServer,
    pub state: Arc<Mutex<GiteaState>>,
}

fn err(server: &str, status: u16, message: &str) -> Reply {
    Reply::json(status, &json!({"message": message, "url": format!("{server}/api/swagger")}))
}

impl FakeGitea {
    pub fn start(labels: &[&str]) -> FakeGitea {
        let state = Arc::new(Mutex::new(GiteaState { next_id: 1, ..Default::default() }));
        {
            let mut s = state.lock().unwrap();
            for name in labels {
                let id = s.next_id;
                s.next_id += 1;
                s.labels.push((id, name.to_string()));
            }
        }
        let st = state.clone();
        let server = HttpServer::start(move |req| handle(&st, req));
        FakeGitea { server, state }
    }

    pub fn url(&self) -> String {
        self.server.url("")
    }

    /// A person comments on issue `number` (in Gitea's web interface).
    pub fn comment_as(&self, number: u64, login: &str, body: &str) {
        let mut s = self.state.lock().unwrap();
        let i = s.issues.iter_mut().find(|i| i.number == number).unwrap();
        i.comments.push(body.to_string());
        i.authors.push(login.to_string());
    }

    pub fn issues(&self) -> Vec<Issue> {
        self.state.lock().unwrap().issues.clone()
    }

    pub fn label_name(&self, id: u64) -> String {
        self.state.lock().unwrap().labels.iter().find(|(i, _)| *i == id).map(|(_, n)| n.clone()).unwrap_or_default()
    }
}

fn label_json(id: u64, name: &str, server: &str) -> Value {
    json!({"id": id, "name": name, "exclusive": false, "is_archived": false, "color": "e11d21",
           "description": "", "url": format!("{server}/api/v1/repos/{REPO}/labels/{id}")})
}

fn issue_json(i: &Issue, s: &GiteaState, server: &str) -> Value {
    let labels: Vec<Value> = i
        .labels
        .iter()
        .filter_map(|id| s.labels.iter().find(|(l, _)| l == id).map(|(l, n)| label_json(*l, n, server)))
        .collect();
    json!({
        "id": 1000 + i.number, "url": format!("{server}/api/v1/repos/{REPO}/issues/{}", i.number),
        "html_url": format!("{server}/{REPO}/issues/{}", i.number), "number": i.number,
        "user": {"id": 1, "login": "ops-bot", "full_name": "", "email": "ops-bot@noreply.localhost"},
        "original_author": "", "original_author_id": 0, "title": i.title, "body": i.body, "ref": "",
        "assets": [], "labels": labels, "milestone": null, "assignee": null, "assignees": null,
        "state": i.state, "is_locked": false, "comments": i.comments.len(),
        "created_at": "2026-11-23T10:00:00Z", "updated_at": "2026-11-23T10:00:00Z",
        "closed_at": if i.state == "closed" { json!("2026-11-23T10:00:00Z") } else { Value::Null },
        "due_date": null, "pull_request": null,
        "repository": {"id": 7, "name": "alerts", "owner": "ops", "full_name": REPO}, "pin_order": 0
    })
}

fn query(url: &str) -> Vec<(String, String)> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec =
                |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
            (dec(k), dec(v))
        })
        .collect()
}

/// A comment as Gitea gives it; ids are unique in the repository.
fn comment_json(number: u64, k: usize, login: &str, body: &str, server: &str) -> Value {
    let id = number * 1000 + k as u64 + 1;
    json!({"id": id, "html_url": format!("{server}/{REPO}/issues/{number}#issuecomment-{id}"), "pull_request_url": "",
           "issue_url": format!("{server}/{REPO}/issues/{number}"), "user": {"id": 1, "login": login},
           "original_author": "", "original_author_id": 0, "body": body, "assets": [],
           "created_at": "2026-11-23T10:00:00Z", "updated_at": "2026-11-23T10:00:00Z"})
}

fn handle(st: &Mutex<GiteaState>, req: &Seen) -> Reply {
    let mut s = st.lock().unwrap();
    let server = format!("http://{}", req.header("host").unwrap_or("localhost"));
    s.requests.push(format!("{} {}", req.method, req.url));
    let path = req.url.split('?').next().unwrap_or("").to_string();
    let q = query(&req.url);
    let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let token =
        req.header("authorization").and_then(|a| a.strip_prefix("token ").or_else(|| a.strip_prefix("Bearer ")));
    match token {
        Some(t) if t != TOKEN => return err(&server, 401, "user does not exist [uid: 0, name: , keyid: 0]"),
        None if req.method != "GET" => return err(&server, 401, "token is required"),
        _ => {}
    }
    let prefix = format!("/api/v1/repos/{REPO}");
    let Some(rest) = path.strip_prefix(&prefix) else {
        return Reply::json(
            404,
            &json!({"errors": ["user redirect does not exist [name: nobody]"], "message": "The target couldn't be found.", "url": format!("{server}/api/swagger")}),
        );
    };
    let body: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
    let segs: Vec<&str> = rest.trim_matches('/').split('/').collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["labels"]) => {
            let limit = param("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(30).clamp(1, 50);
            let page = param("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).max(1);
            let all: Vec<Value> = s.labels.iter().map(|(id, n)| label_json(*id, n, &server)).collect();
            let items: Vec<Value> = all.into_iter().skip((page - 1) * limit).take(limit).collect();
            Reply::json(200, &Value::Array(items)).header("X-Total-Count", &s.labels.len().to_string())
        }
        ("POST", ["labels"]) => {
            if s.no_label_create {
                return err(&server, 403, "user should have specific permission or be a site admin");
            }
            let Some(name) = body["name"].as_str().filter(|n| !n.is_empty()) else {
                return err(&server, 422, "[Name]: Required");
            };
            if body["color"].as_str().is_none_or(|c| c.is_empty()) {
                return err(&server, 422, "[Color]: Required");
            }
            let id = s.next_id;
            s.next_id += 1;
            s.labels.push((id, name.to_string()));
            Reply::json(201, &label_json(id, name, &server))
        }
        ("GET", ["issues"]) => {
            let state = param("state").unwrap_or_else(|| "open".into());
            let words: Vec<String> =
                param("q").unwrap_or_default().to_lowercase().split_whitespace().map(String::from).collect();
            let limit = param("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(30).clamp(1, 50);
            let found: Vec<Value> = s
                .issues
                .iter()
                .filter(|i| state == "all" || i.state == state)
                .filter(|i| {
                    let hay = format!("{} {}", i.title, i.body).to_lowercase();
                    words.iter().all(|w| hay.contains(w.as_str()))
                })
                .rev()
                .take(limit)
                .map(|i| issue_json(i, &s, &server))
                .collect();
            Reply::json(200, &Value::Array(found))
        }
        ("POST", ["issues"]) => {
            if let Some(labels) = body["labels"].as_array()
                && labels.iter().any(Value::is_string)
            {
                return err(
                    &server,
                    422,
                    "[]: json: cannot unmarshal string into Go struct field CreateIssueOption.labels of type int64",
                );
            }
            let Some(title) = body["title"].as_str().filter(|t| !t.is_empty()) else {
                return err(&server, 422, "[Title]: Required");
            };
            let mut ids = Vec::new();
            for l in body["labels"].as_array().into_iter().flatten() {
                let id = l.as_u64().unwrap_or(0);
                if !s.labels.iter().any(|(i, _)| *i == id) {
                    return err(&server, 422, &format!("label does not exist [label_id: {id}]"));
                }
                ids.push(id);
            }
            let number = s.issues.len() as u64 + 1;
            let issue = Issue {
                number,
                title: title.to_string(),
                body: body["body"].as_str().unwrap_or("").to_string(),
                state: "open".into(),
                labels: ids,
                comments: Vec::new(),
                authors: Vec::new(),
            };
            let v = issue_json(&issue, &s, &server);
            s.issues.push(issue);
            Reply::json(201, &v)
        }
        ("POST", ["issues", n, "comments"]) => {
            let Some(text) = body["body"].as_str().filter(|b| !b.is_empty()) else {
                return err(&server, 422, "[Body]: Required");
            };
            let Some(i) = s.issues.iter_mut().find(|i| n.parse() == Ok(i.number)) else {
                return err(&server, 404, "The target couldn't be found.");
            };
            i.comments.push(text.to_string());
            i.authors.push("ops-bot".into());
            let (number, k) = (i.number, i.comments.len() - 1);
            Reply::json(201, &comment_json(number, k, "ops-bot", text, &server))
        }
        ("GET", ["issues", n, "comments"]) => {
            let Some(i) = s.issues.iter().find(|i| n.parse() == Ok(i.number)) else {
                return err(&server, 404, "The target couldn't be found.");
            };
            let list: Vec<Value> = i
                .comments
                .iter()
                .zip(&i.authors)
                .enumerate()
                .map(|(k, (body, who))| comment_json(i.number, k, who, body, &server))
                .collect();
            Reply::json(200, &Value::Array(list))
        }
        ("PATCH", ["issues", n]) => {
            let Some(idx) = s.issues.iter().position(|i| n.parse() == Ok(i.number)) else {
                return err(&server, 404, "The target couldn't be found.");
            };
            if let Some(state) = body["state"].as_str() {
                s.issues[idx].state = state.to_string();
            }
            let v = issue_json(&s.issues[idx], &s, &server);
            Reply::json(201, &v)
        }
        _ => err(&server, 404, "The target couldn't be found."),
    }
}
