//! Alerting settings: the Agent Ops Kit's keys plus pitcrew's sinks, with the environment
//! overrides applied.

use serde_json::{Map, Value};

use super::{Channels, CommandLine, Env, Secret};
use crate::util::fields::uint_value;

/// Alerting settings: the Agent Ops Kit's keys plus pitcrew's sinks, after the environment
/// overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct Alerting {
    /// The Telegram bot token (`TELEGRAM_BOT_TOKEN` first).
    pub telegram_bot_token: Secret,
    /// The Telegram chat to send to (`TELEGRAM_CHAT_ID` first).
    pub telegram_chat_id: Option<String>,
    /// The Telegram API base URL, without a trailing `/`.
    pub telegram_api_url: String,
    /// Seconds between two alerts about one service (default 300).
    pub rate_limit_seconds: u64,
    /// Whether a recovery is announced (default true).
    pub alert_on_recovery: bool,
    /// Seconds after which a standing alert is repeated (default 3600).
    pub repeat_interval_seconds: u64,
    /// The Gitea base URL, without a trailing `/`.
    pub gitea_url: Option<String>,
    /// The Gitea repository (`owner/name`) issues are filed in.
    pub gitea_repo: Option<String>,
    /// The Gitea token (`GITEA_TOKEN` first).
    pub gitea_token: Secret,
    /// Labels put on every Gitea issue.
    pub gitea_labels: Vec<String>,
    /// Whether a recovery closes the Gitea issue (default false).
    pub gitea_close_on_recovery: bool,
    /// A URL every alert is POSTed to as JSON.
    pub webhook_url: Option<String>,
    /// An Alertmanager base URL, without a trailing `/`.
    pub alertmanager_url: Option<String>,
    /// A command every alert is handed to on stdin.
    pub exec: Option<CommandLine>,
    /// Slack, Discord, ntfy, email and Apprise.
    pub channels: Channels,
    /// The `alerting` object as written, for keys a sink adds.
    pub raw: Map<String, Value>,
}

impl Alerting {
    /// Every secret, for scrubbing text that may have picked one up (error messages).
    pub fn secrets(&self) -> Vec<&Secret> {
        [&self.telegram_bot_token, &self.gitea_token]
            .into_iter()
            .filter(|s| !s.is_empty())
            .chain(self.channels.secrets())
            .collect()
    }

    /// Scrub every secret from `text`.
    pub fn redact(&self, text: &str) -> String {
        let t = self.secrets().iter().fold(text.to_string(), |t, s| s.redact(&t));
        self.channels.redact(&t)
    }
}

impl Alerting {
    /// The `alerting` object with the environment overrides applied.
    pub fn from_map(raw: Map<String, Value>, env: Env<'_>) -> Alerting {
        let s = |k: &str| raw.get(k).and_then(Value::as_str).filter(|v| !v.is_empty()).map(String::from);
        let chat_id = raw.get("telegram_chat_id").and_then(|v| match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        let labels = match raw.get("gitea_labels") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(String::from).collect(),
            Some(Value::String(s)) => s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect(),
            _ => Vec::new(),
        };
        let exec = match raw.get("exec") {
            Some(Value::String(c)) if !c.trim().is_empty() => Some(CommandLine::Shell(c.clone())),
            Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => {
                Some(CommandLine::Argv(a.iter().filter_map(Value::as_str).map(String::from).collect()))
            }
            _ => None,
        };
        let placeholder = |v: Option<String>| v.filter(|t| !t.starts_with("YOUR_"));
        Alerting {
            telegram_bot_token: Secret::new(
                env("TELEGRAM_BOT_TOKEN").or_else(|| placeholder(s("telegram_bot_token"))).unwrap_or_default(),
            ),
            telegram_chat_id: env("TELEGRAM_CHAT_ID").or_else(|| placeholder(chat_id)),
            telegram_api_url: env("TELEGRAM_API_URL")
                .or_else(|| s("telegram_api_url"))
                .unwrap_or_else(|| "https://api.telegram.org".into())
                .trim_end_matches('/')
                .to_string(),
            rate_limit_seconds: raw.get("rate_limit_seconds").and_then(uint_value).unwrap_or(300),
            alert_on_recovery: raw.get("alert_on_recovery").and_then(Value::as_bool).unwrap_or(true),
            repeat_interval_seconds: raw.get("repeat_interval_seconds").and_then(uint_value).unwrap_or(3600),
            gitea_url: env("GITEA_URL")
                .or_else(|| env("CLAW_CODE_GITEA_URL"))
                .or_else(|| s("gitea_url"))
                .map(|u| u.trim_end_matches('/').to_string()),
            gitea_repo: env("GITEA_REPO").or_else(|| s("gitea_repo")),
            gitea_token: Secret::new(env("GITEA_TOKEN").or_else(|| placeholder(s("gitea_token"))).unwrap_or_default()),
            gitea_labels: labels,
            gitea_close_on_recovery: raw.get("gitea_close_on_recovery").and_then(Value::as_bool).unwrap_or(false),
            webhook_url: env("WEBHOOK_URL").or_else(|| s("webhook_url")),
            alertmanager_url: env("ALERTMANAGER_URL")
                .or_else(|| s("alertmanager_url"))
                .map(|u| u.trim_end_matches('/').to_string()),
            exec,
            channels: Channels::from_map(&raw, env),
            raw,
        }
    }
}
