//! notify's command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cli::{Common, ToolArgs};
use crate::record::Level;

/// Tell the right people once: turn records into alerts and send them through Telegram,
/// Slack, Discord, ntfy, email (SMTP), Gitea issues, Alertmanager, a JSON webhook, a command,
/// or the 90+ services Apprise reaches.
///
/// Reads any records (check, recovery, uptime, tick, heartbeat, agent, cell, task, finding,
/// alert) and keeps per-subject state in HOME/state/notify.json: a subject alerts when it
/// turns bad, when it stays bad past repeat_interval_seconds, and when it turns good again
/// (alert_on_recovery). The alerts of one run go out as one message per sink. Sinks are
/// configured in services.json's "alerting" object (or TELEGRAM_BOT_TOKEN, TELEGRAM_CHAT_ID,
/// GITEA_URL, GITEA_REPO, GITEA_TOKEN, ALERTMANAGER_URL, WEBHOOK_URL, SLACK_WEBHOOK_URL,
/// DISCORD_WEBHOOK_URL, NTFY_URL, NTFY_TOKEN, SMTP_URL, SMTP_USERNAME, SMTP_PASSWORD,
/// EMAIL_FROM, EMAIL_TO, APPRISE_URLS, APPRISE_CONFIG_PATH). What a sink did not
/// take waits in HOME/state/outbox.jsonl and is sent again at the start of the next run.
/// Writes `alert` records; records of kinds it does not read pass through unchanged.
///
/// With --follow it stays up and sends on Alertmanager's timing: a new group waits
/// --group-wait, later changes --group-interval after the last message, reminders follow
/// repeat_interval_seconds, and the outbox is retried with backoff; SIGTERM, SIGINT or SIGHUP
/// send or queue what is held, save, and exit 0.
///
/// Exit status: 0 done (always, with --follow), 1 some alert is still undelivered, 2 usage or
/// config error, 3 some input lines were malformed.
#[derive(Debug, Parser)]
#[command(
    name = "notify",
    version,
    after_help = "Examples:
  probe | recover | notify                      alert on what is down, once
  probe | notify --after 3                      only after 3 bad runs in a row
  tickmon check | notify --sink gitea           RCA issues to Gitea only
  rollup --days 7 --format text | notify send - --topic weekly-digest
  notify send \"Disk low on db1\" --level warning --topic disk
  notify silence add --match name=api --for 2h --why deploy
  notify silence add --match name=db --every 'sun 02:00-04:00' --tz Europe/Berlin
  notify silence list
  notify ack check:db --for 4h --by alice       no reminders or escalation for 4 hours
  notify state                                  incidents, acknowledgements, escalation
  probe | notify --dry-run --format text        show what would be sent
  probe --watch | recover --follow | notify --follow --group-wait 10
                                                resident: send as things fail"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,

    /// Show what would be sent, per sink, and send nothing; no state changes
    #[arg(long, global = true)]
    pub dry_run: bool,

    /// Send only through this sink (repeatable): telegram, gitea, alertmanager, webhook, exec,
    /// slack, discord, ntfy, email, apprise
    #[arg(long, value_name = "NAME", global = true, value_parser = super::sinks::NAMES.to_vec())]
    pub sink: Vec<String>,

    /// A service's check records from several hosts make one subject, down only when at
    /// least K hosts' latest records within --quorum-window say down (per service:
    /// `"quorum": K` in services.json)
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub quorum: Option<u32>,

    /// Share notify's memory (subject states, silences, outbox) in JetStream key-value
    /// buckets named BUCKET, and act only while this hub holds the lease there, so two or
    /// three hubs run the same notify and one acts (docs/fleet.md)
    #[arg(
        long,
        value_name = "nats://HOST:PORT/BUCKET",
        global = true,
        env = "PITCREW_NOTIFY_STATE",
        hide_env_values = true
    )]
    pub state: Option<String>,

    /// With --state: the lease's time to live; a standby takes over this long after the
    /// leader's last renewal
    #[arg(long, value_name = "SECS", default_value_t = super::hub::DEFAULT_LEASE_TTL_S, value_parser = clap::value_parser!(u64).range(3..=600))]
    pub lease_ttl: u64,

    /// How recent a host's latest record must be to count for the quorum, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400 * 7))]
    pub quorum_window: u64,

    /// Alert on a subject only after it has been bad in N consecutive runs (a flap guard)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub after: u32,

    /// Stay up: read records as they arrive and send on Alertmanager's timing (a new group
    /// after --group-wait, later changes after --group-interval, reminders every
    /// repeat_interval_seconds, the outbox retried with backoff); ends on SIGTERM, SIGINT or
    /// SIGHUP, at the end of the input, or when stdout is closed, sending or queueing what it holds
    #[arg(long)]
    pub follow: bool,

    /// With --follow: how long a new group waits for what fails with it before it is sent
    /// [default: alerting.group_wait_seconds, else 10]
    #[arg(long, value_name = "SECONDS", requires = "follow", value_parser = parse_seconds)]
    pub group_wait: Option<f64>,

    /// With --follow: how long after a message later changes of an open group wait
    /// [default: alerting.group_interval_seconds, else 300]
    #[arg(long, value_name = "SECONDS", requires = "follow", value_parser = parse_seconds)]
    pub group_interval: Option<f64>,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Ndjson, global = true)]
    pub format: Format,

    #[command(subcommand)]
    pub cmd: Option<Cmd>,

    /// NDJSON files of records (`-` for stdin; stdin when none)
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One record a line
    Ndjson,
    /// Lines for people (with --dry-run: the messages as they would be sent)
    Text,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Send one message now, like the Agent Ops Kit's alert script (rate-limited per topic)
    #[command(after_help = "Examples:
  notify send \"API down\" --topic api-health --level error
  notify send \"Recovered\" --level recovery --topic recovery-api
  rollup --days 7 --format text | notify send - --topic weekly-digest")]
    Send(SendArgs),

    /// Mute matching alerts for a while (maintenance windows); they are held, not lost
    #[command(subcommand)]
    Silence(SilenceCmd),

    /// Show, or drop, the alerts waiting in the outbox
    #[command(subcommand)]
    Outbox(OutboxCmd),

    /// Acknowledge alerts still firing: a person is on it, so no reminders and no escalation
    /// until it is back, worse, or the --for time ran out; the other sinks are told (the
    /// acknowledgement is kept in the alert history for `rollup incidents`)
    #[command(after_help = "Examples:
  notify ack check:db --for 4h --by alice
  notify ack db --why \"restoring from backup\"
  notify ack --match 'subject=check:db-*' --match team=data")]
    Ack(AckArgs),

    /// Show what notify remembers: per incident its level, since when, the acknowledgement (by,
    /// until) and the escalation level; per silence its next window
    State,
}

#[derive(Debug, Args)]
pub struct AckArgs {
    /// A subject (`check:db`) or a name (`db`); * and ? globs (repeatable)
    #[arg(value_name = "SUBJECT")]
    pub subjects: Vec<String>,

    /// KEY=VALUE or KEY!=VALUE (repeatable; all must hold), as for silences
    #[arg(long = "match", value_name = "KEY=VALUE", required_unless_present = "subjects")]
    pub matchers: Vec<String>,

    /// For how long (90s, 15m, 4h, 1d): reminders and escalation resume after it
    /// [default: until it is back or worse]
    #[arg(long = "for", value_name = "DURATION")]
    pub duration: Option<String>,

    /// Who is on it [default: $USER]
    #[arg(long, value_name = "WHO")]
    pub by: Option<String>,

    /// Why, or what is being done (kept with the acknowledgement)
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub why: String,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The message; `-` reads it from stdin
    #[arg(value_name = "MESSAGE|-", allow_hyphen_values = true)]
    pub message: String,

    /// Level: info, warning, error, critical, recovery
    #[arg(long, default_value = "info", value_parser = parse_level)]
    pub level: Level,

    /// Topic: one message per topic per rate_limit_seconds (none: no limit)
    #[arg(long, value_name = "T")]
    pub topic: Option<String>,

    /// Title (an issue's title in Gitea; the summary in Alertmanager) [default: the first line]
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
}

fn parse_level(s: &str) -> Result<Level, String> {
    Level::parse(s).ok_or_else(|| format!("'{s}' is not one of info, warning, error, critical, recovery"))
}

#[derive(Debug, Subcommand)]
pub enum SilenceCmd {
    /// Add a silence: alerts matching every --match are held until it ends. One-off (--for),
    /// or a recurring maintenance window (--every, or --cron with --duration, in --tz)
    #[command(after_help = "Examples:
  notify silence add --match name=api --for 2h --why deploy
  notify silence add --match 'subject=check:db-*' --match level!=critical --for 30m
  notify silence add --match kind=tick --starts 2026-12-01T22:00:00Z --for 4h --why migration
  notify silence add --match name=db --every 'sun 02:00-04:00' --tz Europe/Berlin --no-recover
  notify silence add --match name=backup --cron '30 1 * * mon-fri' --duration 1h --tz UTC

A window is measured in wall-clock time: on the nights the clocks change it is an hour shorter
or longer. A start that does not exist (02:30 when the clocks go forward) moves forward by the
gap (03:30); one that occurs twice (when they go back) is taken at its first occurrence.")]
    Add {
        /// KEY=VALUE or KEY!=VALUE (repeatable; all must hold). Keys: name, subject, topic,
        /// level, kind, title, status, label, or any label; VALUE may use * and ? globs
        #[arg(long = "match", value_name = "KEY=VALUE", required = true)]
        matchers: Vec<String>,

        /// How long, for a one-off silence: 90s, 15m, 2h, 1d, 1h30m
        #[arg(long = "for", value_name = "DURATION", required_unless_present_any = ["every", "cron"], conflicts_with_all = ["every", "cron"])]
        duration: Option<String>,

        /// A weekly window: DAYS HH:MM-HH:MM, like 'sun 02:00-04:00', 'mon-fri 22:00-06:00'
        /// (an end at or before the start is on the next day), 'sat,sun 00:00-24:00'
        #[arg(long, value_name = "'DAYS HH:MM-HH:MM'", conflicts_with = "cron")]
        every: Option<String>,

        /// A cron expression (minute hour day month weekday); each start opens a window of
        /// --duration
        #[arg(long, value_name = "EXPR", requires = "window_length")]
        cron: Option<String>,

        /// With --cron: how long each window lasts (90s, 15m, 2h, 1d)
        #[arg(long = "duration", id = "window_length", value_name = "DURATION", requires = "cron")]
        window_length: Option<String>,

        /// The time zone of --every and --cron (an IANA name, like Europe/Berlin) [default: UTC]
        #[arg(long, value_name = "ZONE")]
        tz: Option<String>,

        /// When it starts (RFC 3339) [default: now]; for a recurring window, the calendar
        /// applies from then on
        #[arg(long, value_name = "RFC3339")]
        starts: Option<String>,

        /// Recover does not restart what it matches while it is in force
        /// (maintenance: {recover: false})
        #[arg(long)]
        no_recover: bool,

        /// Why (shown by silence list)
        #[arg(long, value_name = "TEXT", default_value = "")]
        why: String,
    },

    /// List silences in force or still to come, with the next window of each (--all: expired
    /// ones too)
    List {
        /// Include expired silences
        #[arg(long)]
        all: bool,
    },

    /// End a silence now
    Expire {
        /// The silence's id (see silence list)
        id: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCmd {
    /// List the alerts waiting to be sent again
    List,
    /// Give up on waiting alerts (all of them, or those owed to the --sink named)
    Drop,
}

impl ToolArgs for Cli {
    fn common(&self) -> &Common {
        &self.common
    }
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not a number of seconds from 0 to 86400")),
    }
}
