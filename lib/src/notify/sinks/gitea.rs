//! Gitea issues through its REST API (`/api/v1`, header `Authorization: token <TOKEN>`).
//!
//! An alert becomes an issue titled by the alert's title, labelled with `gitea_labels` and
//! the alert's own label names. Gitea takes label *ids* when creating an issue (names are a
//! 422), so names are resolved once per run from `GET /repos/{owner}/{repo}/labels` (paged),
//! and a missing label is created (or, when that is refused, reported and left off). Before
//! creating, `GET /repos/{owner}/{repo}/issues?state=open&type=issues&q=<title>` looks for an
//! open issue with exactly that title: a later alert of the same incident is a comment on it,
//! not a twin. A recovery is a comment on the open issue, which is closed (`PATCH ... {state:
//! "closed"}`) with `gitea_close_on_recovery`. An agent's tick opens an issue only when the
//! Agent Tick Protocol asks for an RCA (missing, critical, offline), never for `degraded`.
//!
//! With `gitea_acks: true`, each run reads the comments of the open issue of every incident
//! still firing (`GET /repos/{owner}/{repo}/issues/{n}/comments`): a comment whose first word
//! is `/ack` acknowledges the incident, by the comment's author. The last comment read per
//! issue is kept in the state, so each comment counts once.
//!
//! A request counts as done only on the answer Gitea's API gives for it: 201 with the new
//! issue's `number` or comment's `id`. A redirect is not followed (it would turn the POST into
//! a GET that answers 200): it is an error, and the alert stays in the outbox.

use std::collections::{HashMap, HashSet};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use super::{Http, Incoming, Pick, Reply, Sink, min_level};
use crate::config::{Alerting, Secret};
use crate::entry::Diag;
use crate::notify::alert::Alert;
use crate::notify::render;
use crate::record::Level;

/// Labels per page (Gitea's maximum page size is 50 by default).
const PAGE: usize = 50;

/// The colour of labels notify creates.
const LABEL_COLOR: &str = "#e11d21";

pub struct Gitea<'d> {
    http: Http,
    base: String,
    owner: String,
    repo: String,
    token: Secret,
    labels: Vec<String>,
    close_on_recovery: bool,
    min: Level,
    host: String,
    label_ids: Option<HashMap<String, u64>>,
    reported: HashSet<String>,
    /// Set when a request got no answer at all: the rest of the batch is not tried, so a
    /// Gitea that does not answer costs one timeout per run, not one per alert.
    unreachable: Option<String>,
    diag: &'d Diag,
    /// `gitea_acks`: read `/ack` comments on the incidents' issues.
    acks: bool,
}

impl<'d> Gitea<'d> {
    /// The sink for `gitea_url`, `gitea_repo` (`owner/name`) and `gitea_token`.
    pub fn new(
        http: Http,
        alerting: &Alerting,
        url: &str,
        repo: &str,
        host: &str,
        diag: &'d Diag,
    ) -> Result<Gitea<'d>, String> {
        let (owner, name) = match repo.trim().trim_matches('/').split_once('/') {
            Some((o, n)) if !o.is_empty() && !n.is_empty() && !n.contains('/') => (o.to_string(), n.to_string()),
            _ => return Err(format!("gitea_repo: '{repo}' is not owner/name")),
        };
        let base = url.trim_end_matches('/').trim_end_matches("/api/v1").to_string();
        Ok(Gitea {
            http,
            base,
            owner,
            repo: name,
            token: alerting.gitea_token.clone(),
            labels: alerting.gitea_labels.clone(),
            close_on_recovery: alerting.gitea_close_on_recovery,
            min: min_level(alerting, "gitea", Level::Warning),
            host: host.to_string(),
            label_ids: None,
            reported: HashSet::new(),
            unreachable: None,
            diag,
            acks: alerting.raw.get("gitea_acks").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    fn url(&self, rest: &str) -> String {
        format!("{}/api/v1/repos/{}/{}{rest}", self.base, enc(&self.owner), enc(&self.repo))
    }

    fn call(&mut self, method: &str, url: &str, body: Option<&Value>) -> Result<Reply, String> {
        let auth = format!("token {}", self.token.expose());
        let reply = match self.http.request(method, url, &[("Authorization", &auth)], body) {
            Ok(r) => r,
            Err(e) => {
                self.unreachable = Some(e.clone());
                return Err(e);
            }
        };
        if reply.ok() {
            Ok(reply)
        } else if (300..400).contains(&reply.status) {
            // Every later request would be redirected the same way: the batch stops here.
            let why = format!("{method} {}: {}", path_of(url), self.http.redact(&reply.describe()));
            self.unreachable = Some(why.clone());
            Err(why)
        } else {
            let mut why = self.http.redact(&reply.describe());
            if reply.status == 401 {
                why.push_str(" (check gitea_token)");
            }
            Err(format!("{method} {}: {why}", path_of(url)))
        }
    }

    /// Label name -> id, read once per run.
    fn resolve_labels(&mut self, names: &[String]) -> Result<Vec<u64>, String> {
        if self.label_ids.is_none() {
            let mut ids = HashMap::new();
            for page in 1..=100 {
                let url = self.url(&format!("/labels?page={page}&limit={PAGE}"));
                let got = self.call("GET", &url, None)?.json();
                let Some(list) = got.as_array() else {
                    return Err(format!("GET {}: not a list of labels", path_of(&url)));
                };
                for l in list {
                    if let (Some(n), Some(id)) =
                        (l.get("name").and_then(Value::as_str), l.get("id").and_then(Value::as_u64))
                    {
                        ids.insert(n.to_string(), id);
                    }
                }
                if list.len() < PAGE {
                    break;
                }
            }
            self.label_ids = Some(ids);
        }
        let mut out = Vec::new();
        for name in names {
            if let Some(id) = self.label_ids.as_ref().and_then(|m| m.get(name)) {
                out.push(*id);
                continue;
            }
            if self.reported.contains(name) {
                continue;
            }
            let body = json!({"name": name, "color": LABEL_COLOR, "description": "Added by pitcrew notify"});
            match self.call("POST", &self.url("/labels"), Some(&body)) {
                Ok(r) => match r.json().get("id").and_then(Value::as_u64) {
                    Some(id) => {
                        self.label_ids.get_or_insert_with(HashMap::new).insert(name.clone(), id);
                        out.push(id);
                    }
                    None => {
                        self.diag.warn(format_args!("gitea: label '{name}': created, but the answer has no id"));
                        self.reported.insert(name.clone());
                    }
                },
                Err(e) => {
                    self.diag.warn(format_args!(
                        "gitea: label '{name}' does not exist and cannot be created ({e}); issues go without it"
                    ));
                    self.reported.insert(name.clone());
                }
            }
        }
        Ok(out)
    }

    /// The number of the open issue with exactly this title.
    fn find_open(&mut self, title: &str) -> Result<Option<u64>, String> {
        let url = format!("{}?state=open&type=issues&limit=50&q={}", self.url("/issues"), enc(title));
        let got = self.call("GET", &url, None)?.json();
        Ok(got
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| {
                i.get("title").and_then(Value::as_str) == Some(title)
                    && i.get("pull_request").is_none_or(Value::is_null)
            })
            .and_then(|i| i.get("number").and_then(Value::as_u64)))
    }

    fn title(a: &Alert) -> String {
        let t = a.title.trim();
        if t.is_empty() || t == render::HEAD {
            crate::util::truncate(crate::util::first_line(&a.message), 120)
        } else {
            t.to_string()
        }
    }

    fn label_names(&self, a: &Alert) -> Vec<String> {
        let mut names = self.labels.clone();
        for n in a.label_names() {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        names
    }

    /// Comment on issue `n`; Gitea answers 201 with the comment's id.
    fn comment(&mut self, n: u64, a: &Alert) -> Result<(), String> {
        let url = self.url(&format!("/issues/{n}/comments"));
        let reply = self.call("POST", &url, Some(&json!({"body": render::issue_comment(a)})))?;
        created(&reply, &url, "id")
    }

    fn one(&mut self, a: &Alert) -> Result<(), String> {
        let title = Self::title(a);
        let open = self.find_open(&title)?;
        if a.is_resolved() {
            let Some(n) = open else { return Ok(()) };
            self.comment(n, a)?;
            if self.close_on_recovery {
                self.call("PATCH", &self.url(&format!("/issues/{n}")), Some(&json!({"state": "closed"})))?;
            }
            return Ok(());
        }
        match open {
            Some(n) => self.comment(n, a)?,
            None => {
                let names = self.label_names(a);
                let labels = self.resolve_labels(&names)?;
                let body = json!({"title": title, "body": render::issue_body(a, &self.host), "labels": labels});
                let url = self.url("/issues");
                let reply = self.call("POST", &url, Some(&body))?;
                created(&reply, &url, "number")?;
            }
        }
        Ok(())
    }
}

impl Sink for Gitea<'_> {
    fn name(&self) -> &'static str {
        "gitea"
    }

    fn min_level(&self) -> Level {
        self.min
    }

    /// The sink's level, and for agent ticks the Agent Tick Protocol's rule: an issue (an
    /// RCA) only for a missing, critical or offline tick; a degraded one is watched in chat.
    fn accepts(&self, a: &Alert) -> bool {
        let level = if a.is_resolved() { a.was.unwrap_or(Level::Info) } else { a.level };
        let tick = a.subject.as_deref().is_some_and(|s| s.starts_with("tick:"));
        level.severity() >= self.min.severity() && (!tick || level.severity() >= Level::Error.severity())
    }

    fn deliver(&mut self, batch: &[&Alert], _delayed: bool) -> Vec<Result<(), String>> {
        batch
            .iter()
            .map(|a| match &self.unreachable {
                Some(e) => Err(format!("not tried, Gitea did not answer: {e}")),
                None => self.one(a),
            })
            .collect()
    }

    fn poll_acks(&mut self, cursor: &mut Value, firing: &[Alert]) -> Result<Vec<Incoming>, String> {
        if !self.acks {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        if !cursor.get("seen").is_some_and(Value::is_object) {
            cursor["seen"] = json!({});
        }
        let mine: Vec<&Alert> = firing.iter().filter(|a| self.accepts(a)).collect();
        for a in mine {
            let Some(subject) = a.subject.clone() else { continue };
            let Some(n) = self.find_open(&Self::title(a))? else { continue };
            let seen = cursor["seen"].get(n.to_string()).and_then(Value::as_u64).unwrap_or(0);
            let url = self.url(&format!("/issues/{n}/comments"));
            let list = self.call("GET", &url, None)?.json();
            let Some(list) = list.as_array() else {
                return Err(format!("GET {}: not a list of comments", path_of(&url)));
            };
            let mut last = seen;
            for c in list {
                let id = c.get("id").and_then(Value::as_u64).unwrap_or(0);
                if id <= seen {
                    continue;
                }
                last = last.max(id);
                let body = c.get("body").and_then(Value::as_str).unwrap_or("");
                let first = body.split_whitespace().next().unwrap_or("");
                if first.eq_ignore_ascii_case("/ack") {
                    let by = c.get("user").and_then(|u| u.get("login")).and_then(Value::as_str).unwrap_or("gitea");
                    out.push(Incoming { picks: vec![Pick::Subject(subject.clone())], by: by.to_string(), reply: None });
                }
            }
            cursor["seen"][n.to_string()] = json!(last);
        }
        Ok(out)
    }

    fn preview(&self, batch: &[&Alert]) -> Vec<Value> {
        batch
            .iter()
            .map(|a| {
                if a.is_resolved() {
                    json!({"issue": Self::title(a), "comment": render::issue_comment(a), "close": self.close_on_recovery})
                } else {
                    json!({"issue": Self::title(a), "body": render::issue_body(a, &self.host), "labels": self.label_names(a),
                           "comment_if_open": render::issue_comment(a)})
                }
            })
            .collect()
    }
}

/// Gitea's answer to a create: 201 with the new object's `key` (an issue's `number`, a
/// comment's `id`). Any other 2xx (a proxy's page, a GET that a redirect made of the POST)
/// created nothing.
fn created(reply: &Reply, url: &str, key: &str) -> Result<(), String> {
    if reply.status == 201 && reply.json().get(key).and_then(Value::as_u64).is_some() {
        Ok(())
    } else {
        Err(format!(
            "POST {}: HTTP {} without the created object's {key}: nothing was created",
            path_of(url),
            reply.status
        ))
    }
}

/// Everything but the unreserved characters of RFC 3986 is escaped.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Percent-encode a path segment or query value.
fn enc(s: &str) -> String {
    utf8_percent_encode(s, ESCAPED).to_string()
}

/// The path of a URL, for messages (no host, no query).
fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let path = rest.find('/').map(|i| &rest[i..]).unwrap_or("/");
    path.split('?').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_and_paths() {
        assert_eq!(enc("api is failing: 50% <x>"), "api%20is%20failing%3A%2050%25%20%3Cx%3E");
        assert_eq!(enc("é"), "%C3%A9");
        assert_eq!(path_of("http://h:1/api/v1/repos/o/r/issues?q=x"), "/api/v1/repos/o/r/issues");
    }
}
