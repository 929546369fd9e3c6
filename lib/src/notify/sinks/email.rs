//! Email over SMTP (lettre): one mail per batch, `text/plain; charset=utf-8`, the subject the
//! batch's title with its level, a `Message-ID` of its own.
//!
//! `smtp_url` says how: `smtp://host[:587]` speaks STARTTLS and fails if the server does not
//! offer it; `smtps://host[:465]` is TLS from the first byte; `?tls=opportunistic` takes
//! STARTTLS when offered, `?tls=none` speaks plain SMTP (a relay on the same machine). The
//! certificate is checked against Mozilla's roots, or against `smtp_ca_file` (PEM) for a
//! private CA. `smtp_username` and `smtp_password` (`SMTP_USERNAME`, `SMTP_PASSWORD`) log in
//! with AUTH PLAIN or LOGIN, only over TLS unless `tls=none`. The password never appears in
//! output or errors. A refusal (535 bad credentials, 550 unknown recipient) and a failure to
//! connect leave the mail in the outbox with the server's words.

use std::time::Duration;

use lettre::Transport;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::SmtpTransport;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use serde_json::{Value, json};

use super::{Sink, min_level, title};
use crate::config::{Alerting, Secret};
use crate::notify::alert::Alert;
use crate::notify::render::{self, Markup, Style, Unit};
use crate::record::Level;

/// The most bytes of one mail's text (the rest is "… and N more").
pub const LIMIT: usize = 1 << 20;

const STYLE: Style = Style { markup: Markup::Plain, unit: Unit::Bytes };

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    StartTls,
    Opportunistic,
    Wrapper,
    Plain,
}

pub struct Email {
    host: String,
    port: u16,
    mode: Mode,
    ca: Option<Vec<u8>>,
    user: Option<String>,
    password: Secret,
    from: Mailbox,
    to: Vec<Mailbox>,
    timeout: Duration,
    min: Level,
    alerting: Alerting,
}

impl Email {
    /// The sink, or what is wrong with its settings (named by key).
    pub fn new(alerting: &Alerting, url: &str, timeout: Duration) -> Result<Email, String> {
        let c = &alerting.channels;
        let u = url::Url::parse(url).map_err(|e| format!("smtp_url: '{}' is not a URL: {e}", redacted(url)))?;
        let tls = u.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
        let (mode, default_port) = match (u.scheme(), tls.as_deref()) {
            ("smtps", None | Some("wrapper")) => (Mode::Wrapper, 465),
            ("smtp", None | Some("required")) => (Mode::StartTls, 587),
            ("smtp", Some("opportunistic")) => (Mode::Opportunistic, 587),
            ("smtp", Some("none")) => (Mode::Plain, 25),
            (s, t) => {
                return Err(format!(
                    "smtp_url: scheme '{s}'{} is not smtp:// (STARTTLS; ?tls=opportunistic or ?tls=none) or smtps://",
                    t.map(|t| format!(" with tls={t}")).unwrap_or_default()
                ));
            }
        };
        let host = u.host_str().filter(|h| !h.is_empty()).ok_or("smtp_url: no host")?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        if !u.username().is_empty() || u.password().is_some() {
            return Err("smtp_url: put the user and password in smtp_username and smtp_password \
                        (SMTP_USERNAME, SMTP_PASSWORD), not in the URL"
                .into());
        }
        let ca = match alerting.raw.get("smtp_ca_file").and_then(Value::as_str) {
            Some(p) => {
                let bytes = std::fs::read(p).map_err(|e| format!("smtp_ca_file: cannot read {p}: {e}"))?;
                Certificate::from_pem(&bytes).map_err(|e| format!("smtp_ca_file: {p}: {e}"))?;
                Some(bytes)
            }
            None => None,
        };
        let user = c.smtp_username.clone();
        let password = !c.smtp_password.is_empty();
        if user.is_some() != password {
            return Err(if user.is_some() {
                "smtp_password (SMTP_PASSWORD) is missing: smtp_username is set".into()
            } else {
                "smtp_username (SMTP_USERNAME) is missing: smtp_password is set".into()
            });
        }
        let from = c.email_from.as_deref().ok_or("email_from (EMAIL_FROM) is missing")?;
        let from: Mailbox = from.parse().map_err(|e| format!("email_from: '{from}': {e}"))?;
        if c.email_to.is_empty() {
            return Err("email_to (EMAIL_TO) is missing".into());
        }
        let to = c
            .email_to
            .iter()
            .map(|t| t.parse::<Mailbox>().map_err(|e| format!("email_to: '{t}': {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Email {
            host,
            port: u.port().unwrap_or(default_port),
            mode,
            ca,
            user,
            password: c.smtp_password.clone(),
            from,
            to,
            timeout,
            min: min_level(alerting, "email", Level::Warning),
            alerting: alerting.clone(),
        })
    }

    fn transport(&self) -> Result<SmtpTransport, String> {
        let tls = || -> Result<TlsParameters, String> {
            let mut b = TlsParameters::builder(self.host.clone());
            if let Some(pem) = &self.ca {
                b = b.add_root_certificate(Certificate::from_pem(pem).map_err(|e| e.to_string())?);
            }
            b.build_rustls().map_err(|e| format!("TLS set-up: {e}"))
        };
        let tls = match self.mode {
            Mode::StartTls => Tls::Required(tls()?),
            Mode::Opportunistic => Tls::Opportunistic(tls()?),
            Mode::Wrapper => Tls::Wrapper(tls()?),
            Mode::Plain => Tls::None,
        };
        let mut b =
            SmtpTransport::builder_dangerous(self.host.as_str()).port(self.port).tls(tls).timeout(Some(self.timeout));
        if let Some(user) = &self.user {
            b = b.credentials(Credentials::new(user.clone(), self.password.expose().to_string()));
        }
        Ok(b.build())
    }

    fn subject(batch: &[&Alert]) -> String {
        let t = title(batch);
        let level = render::head_level(batch);
        if t.starts_with('[') { t } else { format!("{} {t}", level.prefix()) }
    }

    fn message(&self, batch: &[&Alert], delayed: bool) -> Result<Message, String> {
        let doc = render::fit_as(&render::compose(batch, delayed), STYLE, LIMIT, 1);
        let text: String = doc.iter().map(|d| d.render(STYLE)).collect::<Vec<_>>().join("\n");
        let mut m = Message::builder().from(self.from.clone()).subject(Self::subject(batch)).message_id(None);
        for t in &self.to {
            m = m.to(t.clone());
        }
        m.header(ContentType::TEXT_PLAIN).body(format!("{text}\n")).map_err(|e| format!("building the mail: {e}"))
    }

    fn send(&self, batch: &[&Alert], delayed: bool) -> Result<(), String> {
        let msg = self.message(batch, delayed)?;
        let t = self.transport()?;
        match t.send(&msg) {
            Ok(_) => Ok(()),
            Err(e) => {
                let mut why = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    let more = s.to_string();
                    if !why.contains(&more) {
                        why.push_str(&format!(": {more}"));
                    }
                    src = s.source();
                }
                Err(self.alerting.redact(&format!("smtp {}:{}: {why}", self.host, self.port)))
            }
        }
    }
}

/// A URL as it may be shown.
fn redacted(url: &str) -> String {
    crate::util::redact::redact_url(url).into_owned()
}

impl Sink for Email {
    fn name(&self) -> &'static str {
        "email"
    }

    fn min_level(&self) -> Level {
        self.min
    }

    fn deliver(&mut self, batch: &[&Alert], delayed: bool) -> Vec<Result<(), String>> {
        vec![self.send(batch, delayed); batch.len()]
    }

    fn preview(&self, batch: &[&Alert]) -> Vec<Value> {
        let doc = render::fit_as(&render::compose(batch, false), STYLE, LIMIT, 1);
        let text: Vec<String> = doc.iter().map(|d| d.render(STYLE)).collect();
        let to: Vec<String> = self.to.iter().map(ToString::to_string).collect();
        vec![
            json!({"from": self.from.to_string(), "to": to, "subject": Self::subject(batch), "text": text.join("\n")});
            batch.len()
        ]
    }
}
