//! The chat and mail channels' settings: Slack, Discord, ntfy, email over SMTP, and Apprise,
//! with the environment overrides applied. Their URLs are secrets (a webhook URL is its own
//! password; an ntfy topic on a public server is read by whoever knows it), so they are kept
//! as [`Secret`]s and scrubbed, whole and in pieces, from every error text.

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::{Env, Secret};

/// The channels' settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Channels {
    /// A Slack incoming webhook (`SLACK_WEBHOOK_URL` first).
    pub slack_webhook_url: Secret,
    /// A Discord webhook (`DISCORD_WEBHOOK_URL` first).
    pub discord_webhook_url: Secret,
    /// An ntfy topic URL (`NTFY_URL` first).
    pub ntfy_url: Secret,
    /// An ntfy access token, sent as `Authorization: Bearer` (`NTFY_TOKEN` first).
    pub ntfy_token: Secret,
    /// The SMTP server, `smtp://host:port` (STARTTLS) or `smtps://host:port` (`SMTP_URL` first).
    pub smtp_url: Option<String>,
    /// The SMTP user (`SMTP_USERNAME` first).
    pub smtp_username: Option<String>,
    /// The SMTP password (`SMTP_PASSWORD` first).
    pub smtp_password: Secret,
    /// The mail's sender (`EMAIL_FROM` first).
    pub email_from: Option<String>,
    /// The mail's recipients (`EMAIL_TO` first, comma-separated).
    pub email_to: Vec<String>,
    /// Apprise URLs (`APPRISE_URLS` first, separated by spaces or commas).
    pub apprise_urls: Vec<Secret>,
    /// An Apprise configuration file (`APPRISE_CONFIG_PATH` first).
    pub apprise_config: Option<PathBuf>,
}

/// A list setting: a JSON list of strings, or one string split on commas (and, with
/// `spaces`, white space).
fn list(v: Option<&Value>, spaces: bool) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).flat_map(|s| split(s, spaces)).collect(),
        Some(Value::String(s)) => split(s, spaces),
        _ => Vec::new(),
    }
}

fn split(s: &str, spaces: bool) -> Vec<String> {
    s.split(|c: char| c == ',' || (spaces && c.is_whitespace()))
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

impl Channels {
    /// The settings from the `alerting` object, the environment first.
    pub fn from_map(raw: &Map<String, Value>, env: Env<'_>) -> Channels {
        let s = |k: &str| raw.get(k).and_then(Value::as_str).filter(|v| !v.is_empty()).map(String::from);
        let secret = |var: &str, key: &str| Secret::new(env(var).or_else(|| s(key)).unwrap_or_default());
        let apprise = match env("APPRISE_URLS") {
            Some(v) => split(&v, true),
            None => list(raw.get("apprise_urls"), true),
        };
        Channels {
            slack_webhook_url: secret("SLACK_WEBHOOK_URL", "slack_webhook_url"),
            discord_webhook_url: secret("DISCORD_WEBHOOK_URL", "discord_webhook_url"),
            ntfy_url: secret("NTFY_URL", "ntfy_url"),
            ntfy_token: secret("NTFY_TOKEN", "ntfy_token"),
            smtp_url: env("SMTP_URL").or_else(|| s("smtp_url")),
            smtp_username: env("SMTP_USERNAME").or_else(|| s("smtp_username")),
            smtp_password: secret("SMTP_PASSWORD", "smtp_password"),
            email_from: env("EMAIL_FROM").or_else(|| s("email_from")),
            email_to: match env("EMAIL_TO") {
                Some(v) => split(&v, false),
                None => list(raw.get("email_to"), false),
            },
            apprise_urls: apprise.into_iter().map(Secret::new).collect(),
            apprise_config: env("APPRISE_CONFIG_PATH").or_else(|| s("apprise_config")).map(PathBuf::from),
        }
    }

    /// The channels' keys of the `alerting` object that hold the wrong type of value, each
    /// said with its key: a setting that would be ignored must not silence a channel unsaid.
    pub fn problems(raw: &Map<String, Value>) -> Vec<String> {
        const TEXT: &[&str] = &[
            "slack_webhook_url",
            "discord_webhook_url",
            "discord_username",
            "ntfy_url",
            "ntfy_token",
            "smtp_url",
            "smtp_username",
            "smtp_password",
            "smtp_ca_file",
            "email_from",
            "apprise_config",
            "apprise_tag",
            "apprise_command",
        ];
        const LISTS: &[&str] = &["email_to", "apprise_urls"];
        const NUMBERS: &[&str] =
            &["slack_max_wait_seconds", "discord_max_wait_seconds", "ntfy_max_wait_seconds", "apprise_timeout_seconds"];
        let mut out = Vec::new();
        for (k, v) in raw {
            let k = k.as_str();
            let ok = if TEXT.contains(&k) {
                v.is_string()
            } else if LISTS.contains(&k) {
                v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
            } else if NUMBERS.contains(&k) {
                v.as_f64().is_some_and(|n| n >= 0.0)
            } else {
                true
            };
            if !ok {
                let want = if TEXT.contains(&k) {
                    "a string"
                } else if LISTS.contains(&k) {
                    "a list of strings, or one string"
                } else {
                    "a number of seconds, 0 or more"
                };
                let shown = if k.contains("password") || k.contains("token") || k.ends_with("_url") {
                    "a value".to_string()
                } else {
                    crate::util::truncate(&v.to_string(), 60)
                };
                out.push(format!("alerting.{k}: {shown} is not {want}"));
            }
        }
        out
    }

    /// Every secret of the channels.
    pub fn secrets(&self) -> Vec<&Secret> {
        [&self.slack_webhook_url, &self.discord_webhook_url, &self.ntfy_url, &self.ntfy_token, &self.smtp_password]
            .into_iter()
            .chain(&self.apprise_urls)
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Scrub the channels' secrets from `text`: each whole, then the pieces of the URLs that
    /// hold a secret ([`url_pieces`]), for messages that quote part of one.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in self.secrets() {
            out = s.redact(&out);
        }
        for s in self.secrets() {
            for piece in url_pieces(s.expose()) {
                out = out.replace(&piece, "***");
            }
        }
        out
    }
}

/// The parts of a URL that may be secret and could be quoted alone: its user information
/// (and password), its path and each path segment, its query and each query value. Pieces
/// shorter than 5 characters (`/`, `api`, `true`) and the fixed words of the services' paths
/// (`services`, `webhooks`) are left, as they would scrub ordinary words.
pub fn url_pieces(url: &str) -> Vec<String> {
    let Some((_, rest)) = url.split_once("://") else { return Vec::new() };
    let mut out: Vec<String> = Vec::new();
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if let Some((info, _)) = authority.rsplit_once('@') {
        out.push(info.to_string());
        out.extend(info.split(':').map(String::from));
    }
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    let path = path.split('#').next().unwrap_or("");
    out.push(path.to_string());
    out.extend(path.split('/').map(String::from));
    out.push(query.to_string());
    out.extend(query.split('&').map(|kv| kv.split_once('=').map_or(kv, |(_, v)| v).to_string()));
    const PUBLIC: &[&str] = &["/services", "services", "/api/webhooks", "webhooks", "hooks"];
    out.retain(|p| p.chars().count() >= 5 && !PUBLIC.contains(&p.as_str()));
    // The longest first, so that a path is scrubbed whole before its segments.
    out.sort_by_key(|p| std::cmp::Reverse(p.len()));
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env_from;

    #[test]
    fn lists_environment_and_redaction() {
        let raw = serde_json::json!({
            "apprise_urls": ["json://127.0.0.1:9/a", "ntfy://user:s3cretpw@ntfy.example/alerts-topic"],
            "email_to": "a@example.com, b@example.com",
            "slack_webhook_url": "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXX",
        });
        let Value::Object(raw) = raw else { unreachable!() };
        let env = env_from(&[("DISCORD_WEBHOOK_URL", "https://discord.com/api/webhooks/1234567/tokenTOKENtoken")]);
        let c = Channels::from_map(&raw, &env);
        assert_eq!(c.apprise_urls.len(), 2);
        assert_eq!(c.email_to, ["a@example.com", "b@example.com"]);
        assert_eq!(c.discord_webhook_url.expose(), "https://discord.com/api/webhooks/1234567/tokenTOKENtoken");
        let text = "failed: https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXX; path /services/T000/B000/XXXXXXXXXXXX; \
                    token tokenTOKENtoken; topic 'alerts-topic'; pw s3cretpw";
        let red = c.redact(text);
        for secret in ["XXXXXXXXXXXX", "tokenTOKENtoken", "alerts-topic", "s3cretpw"] {
            assert!(!red.contains(secret), "{secret} left in {red}");
        }
        let env = env_from(&[("APPRISE_URLS", "json://h/a, json://h/b json://h/c")]);
        assert_eq!(Channels::from_map(&raw, &env).apprise_urls.len(), 3);
    }
}
