//! Small shared helpers: running commands in their own process group, identifiers, text.

pub mod fields;
pub mod git;
pub mod host;
pub mod http;
pub mod par;
pub mod proc;
pub mod prom;
pub mod redact;
pub mod stop;
pub mod text;

/// True for an identifier safe to use as a file name: 1-128 characters of letters, digits,
/// `-`, `_`, `.`, not starting with `.`.
pub fn is_safe_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Cut `s` to at most `max` characters (on a character boundary), adding `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

/// The first line of `s`, trimmed.
pub fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("").trim()
}

/// A wall-clock limit of `secs` seconds for a unit test, scaled by `PITCREW_TEST_SLOWDOWN`
/// as tests/util's `limit` scales the integration tests' (which unit tests cannot reach).
#[cfg(test)]
pub(crate) fn test_limit(secs: f64) -> std::time::Duration {
    let factor = std::env::var("PITCREW_TEST_SLOWDOWN").ok().and_then(|v| v.parse::<f64>().ok());
    std::time::Duration::from_secs_f64(secs * factor.filter(|f| *f >= 1.0).unwrap_or(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(is_safe_id("agent_001"));
        assert!(is_safe_id("a.b-c"));
        for bad in ["", "..", "../x", "a/b", ".hidden", "a b", "a\0b"] {
            assert!(!is_safe_id(bad), "{bad:?}");
        }
        assert!(!is_safe_id(&"x".repeat(129)));
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hi", 5), "hi");
    }
}
