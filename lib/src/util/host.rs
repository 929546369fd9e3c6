//! The name of the host a record comes from: `--host NAME`, else `PITCREW_HOST`, else the
//! system's hostname. It is set once per process by [`crate::cli`] and stamped into every
//! record a tool writes ([`crate::json::write`]) that does not carry a `host` already, so
//! records read from other hosts keep theirs. A record without `host` is the local host's.

use std::sync::OnceLock;

use serde_json::Value;

static HOST: OnceLock<String> = OnceLock::new();

/// The system's hostname, or "" when it cannot be read.
pub fn system() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default()
}

/// Set this process's host name (the first call wins; an empty name stamps nothing).
pub fn set(name: String) {
    let _ = HOST.set(name);
}

/// This process's host name, once set and not empty.
pub fn get() -> Option<&'static str> {
    HOST.get().map(String::as_str).filter(|h| !h.is_empty())
}

/// True when `v` is a record: an object with a string `kind`, or the Agent Ops Kit's metric
/// line (`name` and `status`, no `kind`).
pub fn is_record(v: &Value) -> bool {
    match v.get("kind") {
        Some(k) => k.is_string(),
        None => v.get("name").is_some_and(Value::is_string) && v.get("status").is_some(),
    }
}

/// Add `host` to a record that has none (a no-op before [`set`], and on anything that is not
/// a record). True when it added it.
pub fn stamp(v: &mut Value) -> bool {
    let Some(host) = get() else { return false };
    if !is_record(v) {
        return false;
    }
    match v {
        Value::Object(m) if !m.contains_key("host") => {
            m.insert("host".to_string(), Value::String(host.to_string()));
            true
        }
        _ => false,
    }
}

/// The host a record comes from: its `host`, else `local` (the reading host's own name).
pub fn of<'a>(v: &'a Value, local: &'a str) -> &'a str {
    match v.get("host").and_then(Value::as_str) {
        Some(h) if !h.is_empty() => h,
        _ => local,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_only_and_an_existing_host_is_kept() {
        assert!(is_record(&json!({"kind": "check", "name": "a"})));
        assert!(is_record(&json!({"name": "a", "status": "up"})));
        assert!(!is_record(&json!({"name": "a"})));
        assert!(!is_record(&json!([1])));
        assert_eq!(of(&json!({"host": "web1"}), "me"), "web1");
        assert_eq!(of(&json!({"host": ""}), "me"), "me");
        assert_eq!(of(&json!({}), "me"), "me");
    }
}
