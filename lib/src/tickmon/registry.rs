//! The agent registry, `config/agent-registry.json`, in the Agent Tick Protocol's format:
//! `{"agents": [{"id", "name", "active", "home_dir", "config_path", ...}]}`, plus an optional
//! `gateway` per agent (a process pattern, `host:port` or URL) for the gateway vital.
//!
//! Keys tickmon does not know are kept. An entry that cannot be used (no id, an id that is
//! not a safe file name, a duplicate, a field of the wrong type) is a problem reported by
//! name and place; the other entries still load. An entry without `active` counts as active,
//! so a forgotten flag never hides an agent from monitoring.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::util::fields::{Fields, Mismatch, want};
use crate::util::is_safe_id;

/// One agent of the registry.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentEntry {
    /// The agent's id, a usable file name.
    pub id: String,
    pub(crate) name: String,
    pub(crate) active: bool,
    pub(crate) home_dir: Option<String>,
    pub(crate) config_path: Option<String>,
    pub(crate) gateway: Option<String>,
    /// The entry as written.
    pub(crate) raw: Map<String, Value>,
}

/// The loaded registry.
#[derive(Debug, Clone, PartialEq)]
pub struct Registry {
    pub(crate) path: PathBuf,
    /// The usable entries, in the file's order.
    pub agents: Vec<AgentEntry>,
    /// Entries that could not be used, as `file: agents[i] (id): why`.
    pub(crate) problems: Vec<Problem>,
}

/// An unusable registry entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Problem {
    /// The entry's id when it has a readable one, else `agents[i]`.
    pub(crate) subject: String,
    pub(crate) message: String,
}

impl Registry {
    /// Read the registry; a missing or unparsable file is an error.
    pub(crate) fn load(path: &Path) -> Result<Registry> {
        let bytes = crate::store::read::read(path, crate::store::kinds::REGISTRY)
            .map_err(|e| Error::path("cannot read agent registry", path, e))?;
        Registry::parse(&bytes, path)
    }

    /// Read the registry if it exists.
    pub(crate) fn load_optional(path: &Path) -> Result<Option<Registry>> {
        match crate::store::read::read(path, crate::store::kinds::REGISTRY) {
            Ok(bytes) => Registry::parse(&bytes, path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::path("cannot read agent registry", path, e)),
        }
    }

    /// Parse registry bytes; `path` is for messages.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Registry> {
        let doc: Value = crate::ndjson::parse_json_doc(bytes, path)?;
        let file = path.display().to_string();
        let list = match doc.get("agents") {
            Some(Value::Array(a)) => a.clone(),
            Some(_) => return Err(Error::config(format!("{file}: agents: expected an array of agent objects"))),
            None if doc.is_object() => {
                return Err(Error::config(format!("{file}: agents: missing (expected {{\"agents\": [...]}})")));
            }
            None => return Err(Error::config(format!("{file}: expected a JSON object with an \"agents\" array"))),
        };
        let mut agents = Vec::new();
        let mut problems = Vec::new();
        let mut seen = HashSet::new();
        for (i, v) in list.into_iter().enumerate() {
            match parse_entry(v) {
                Ok(a) if !seen.insert(a.id.clone()) => problems.push(Problem {
                    subject: a.id.clone(),
                    message: format!("{file}: agents[{i}] ({}): another agent already has this id", a.id),
                }),
                Ok(a) => agents.push(a),
                Err((subject, why)) => {
                    let label = match &subject {
                        Some(s) => format!("agents[{i}] ({s})"),
                        None => format!("agents[{i}]"),
                    };
                    problems.push(Problem {
                        subject: subject.unwrap_or_else(|| format!("agents[{i}]")),
                        message: format!("{file}: {label}: {why}"),
                    });
                }
            }
        }
        Ok(Registry { path: path.to_path_buf(), agents, problems })
    }

    pub(crate) fn find(&self, id: &str) -> Option<&AgentEntry> {
        self.agents.iter().find(|a| a.id == id)
    }

    /// The agents to monitor, in registry order.
    pub(crate) fn active(&self) -> impl Iterator<Item = &AgentEntry> {
        self.agents.iter().filter(|a| a.active)
    }
}

type EntryError = (Option<String>, String);

fn parse_entry(v: Value) -> std::result::Result<AgentEntry, EntryError> {
    let Value::Object(map) = v else {
        return Err((None, "expected an agent object".into()));
    };
    let mut f = Fields::new(&map);
    match map.get("id") {
        None => f.fail("id", "missing (required)"),
        // null is no string here, not an absent field.
        Some(Value::Null) => f.fail("id", &Mismatch::of_kind(want::STRING, &Value::Null).brief()),
        Some(_) => {}
    }
    let Some(id) = f.string("id") else {
        return Err((None, f.error.unwrap_or_else(|| "id: missing (required)".into())));
    };
    if !is_safe_id(&id) {
        let why = "id: not a valid agent id (1-128 letters, digits, '-', '_', '.', not starting with '.')";
        return Err((Some(crate::util::truncate(&id, 64)), why.into()));
    }
    // Blank strings count as not given.
    let opt_string = |f: &mut Fields<'_>, key: &str| f.string(key).filter(|s| !s.trim().is_empty());
    let name = opt_string(&mut f, "name");
    let active = f.boolean("active").unwrap_or(true);
    let home_dir = opt_string(&mut f, "home_dir");
    let config_path = opt_string(&mut f, "config_path");
    let gateway = opt_string(&mut f, "gateway");
    if let Some(why) = f.error {
        return Err((Some(id), why));
    }
    let name = name.unwrap_or_else(|| id.clone());
    Ok(AgentEntry { home_dir, config_path, gateway, name, id, active, raw: map })
}

/// Expand a leading `~` or `~/` with the user's home directory.
pub(crate) fn expand_home(p: &str, env: crate::config::Env<'_>) -> PathBuf {
    if p == "~" {
        if let Some(h) = env("HOME") {
            return PathBuf::from(h);
        }
    } else if let Some(rest) = p.strip_prefix("~/")
        && let Some(h) = env("HOME")
    {
        return PathBuf::from(h).join(rest);
    }
    PathBuf::from(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Registry> {
        Registry::parse(s.as_bytes(), Path::new("agent-registry.json"))
    }

    #[test]
    fn the_tick_protocol_registry_loads_and_keeps_unknown_keys() {
        let r = parse(
            r#"{"agents":[
              {"id":"atlas","name":"Atlas","active":true,"home_dir":"/srv/agents/atlas","config_path":"/srv/agents/atlas/config.yaml","role":"lead"},
              {"id":"beacon","name":"Beacon","active":false,"home_dir":"/srv/agents/beacon","config_path":"x"},
              {"id":"cinder","gateway":"127.0.0.1:8642"}]}"#,
        )
        .unwrap();
        assert!(r.problems.is_empty());
        assert_eq!(r.active().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["atlas", "cinder"]);
        assert_eq!(r.find("atlas").unwrap().raw["role"], "lead");
        let t = r.find("cinder").unwrap();
        assert_eq!(
            (t.name.as_str(), t.gateway.as_deref(), t.home_dir.as_deref()),
            ("cinder", Some("127.0.0.1:8642"), None)
        );
    }

    #[test]
    fn bad_entries_are_problems_not_fatal() {
        let r = parse(r#"{"agents":[{"id":"../etc"},{"name":"x"},{"id":"a","active":"yes"},{"id":"b"},{"id":"b"},7]}"#)
            .unwrap();
        assert_eq!(r.agents.len(), 1);
        let msgs: Vec<&str> = r.problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(msgs.len(), 5, "{msgs:?}");
        assert!(msgs[0].starts_with("agent-registry.json: agents[0] (../etc): id: not a valid agent id"), "{msgs:?}");
        assert!(msgs[1].contains("agents[1]: id: missing"));
        assert!(msgs[2].contains("agents[2] (a): active: expected true or false"));
        assert!(msgs[3].contains("agents[4] (b): another agent already has this id"));
        assert!(msgs[4].contains("agents[5]: expected an agent object"));
    }

    #[test]
    fn each_problem_is_worded_as_before_and_the_first_one_wins() {
        let r = parse(
            r#"{"agents":[{"id":null},{"id":7},{"id":"c","name":3},{"id":"d","active":1,"home_dir":[]},
                          {"id":"e","home_dir":{},"gateway":false},{"id":"f","name":"  ","gateway":" "}]}"#,
        )
        .unwrap();
        let msgs: Vec<&str> = r.problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            msgs,
            [
                "agent-registry.json: agents[0]: id: expected a string",
                "agent-registry.json: agents[1]: id: expected a string",
                "agent-registry.json: agents[2] (c): name: expected a string",
                "agent-registry.json: agents[3] (d): active: expected true or false",
                "agent-registry.json: agents[4] (e): home_dir: expected a string",
            ]
        );
        let f = r.find("f").unwrap();
        assert_eq!((f.name.as_str(), f.gateway.as_deref()), ("f", None));
    }

    #[test]
    fn a_registry_that_is_not_one_is_an_error() {
        assert!(parse("[]").is_err());
        assert!(parse(r#"{"agent":[]}"#).unwrap_err().to_string().contains("agents: missing"));
        assert!(parse(r#"{"agents":{}}"#).is_err());
        assert!(parse("{").unwrap_err().to_string().starts_with("agent-registry.json:1:"));
    }

    #[test]
    fn tilde_expands() {
        let env = |k: &str| (k == "HOME").then(|| "/home/op".to_string());
        assert_eq!(expand_home("~/agents/a", &env), PathBuf::from("/home/op/agents/a"));
        assert_eq!(expand_home("/srv/a", &env), PathBuf::from("/srv/a"));
    }
}
