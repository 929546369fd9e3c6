//! A real SMTP server on loopback for the email sink and Apprise's `mailto://`: aiosmtpd
//! (Debian's python3-aiosmtpd) run by `tests/helpers/smtpd.py`, with STARTTLS on a
//! certificate from a CA the test makes, and AUTH; and the tests of notify's `email` sink.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use super::{T0, all_files, at, check, notify, setup};
use crate::util::http::{Certs, LeafPem};
use crate::util::{Workdir, path_str, wait_until};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "s3cret-SMTP-pa55word";

/// The server: its port and the directory its messages land in.
pub struct Smtpd {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
}

impl Smtpd {
    /// Start it: `tls` offers (and requires) STARTTLS with that leaf; `auth` requires AUTH.
    pub fn start(w: &Workdir, name: &str, tls: Option<&LeafPem>, auth: bool) -> Smtpd {
        let dir = w.path(name);
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/helpers/smtpd.py")).arg(&dir);
        if let Some(pem) = tls {
            let cert = w.write(&format!("{name}-leaf.pem"), &pem.cert);
            let key = w.write(&format!("{name}-leaf.key"), &pem.key);
            cmd.arg("--tls").arg(cert).arg(key);
        }
        if auth {
            cmd.args(["--auth", USER, PASSWORD]);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("python3 with aiosmtpd");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| panic!("smtpd.py said {line:?}"));
        Smtpd { port, dir, child }
    }

    /// Message `n` (from 1) and its envelope, once it is there.
    pub fn message(&self, n: usize) -> (String, Value) {
        let eml = self.dir.join(format!("{n}.eml"));
        assert!(wait_until(30.0, || eml.exists()), "no message {n} in {}", self.dir.display());
        let meta = std::fs::read_to_string(self.dir.join(format!("{n}.json"))).unwrap();
        (std::fs::read_to_string(&eml).unwrap(), serde_json::from_str(&meta).unwrap())
    }

    pub fn count(&self) -> usize {
        std::fs::read_dir(&self.dir)
            .map(|d| d.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "eml")).count())
            .unwrap_or(0)
    }
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A header's value in a mail (unfolded).
pub fn header(eml: &str, name: &str) -> Option<String> {
    let head = eml.split("\r\n\r\n").next().unwrap_or(eml).replace("\r\n ", " ").replace("\r\n\t", " ");
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

fn email_alerting(port: u16, ca: Option<&Path>, query: &str) -> Value {
    let mut a = json!({"smtp_url": format!("smtp://127.0.0.1:{port}{query}"),
                       "email_from": "pitcrew <pitcrew@example.com>",
                       "email_to": ["ops@example.com", "oncall@example.com"]});
    if let Some(ca) = ca {
        a["smtp_ca_file"] = json!(path_str(ca));
    }
    a
}

#[test]
fn email_over_starttls_with_auth_reaches_a_real_smtp_server() {
    let (certs, pem) = Certs::for_names(&["127.0.0.1"], 30);
    let w0 = Workdir::new("notify-email-srv");
    let smtp = Smtpd::start(&w0, "mail", Some(&pem), true);
    let ca = w0.write("ca.pem", &certs.ca_pem);
    let w = setup("notify-email", email_alerting(smtp.port, Some(&ca), ""));
    let input = format!("{}{}", check("api", "down", "connection refused"), check("db", "down", "port 5432: refused"));
    let r = notify(&w, T0).env("SMTP_USERNAME", USER).env("SMTP_PASSWORD", PASSWORD).stdin(&input).run();
    r.code(0);
    let (eml, meta) = smtp.message(1);
    assert_eq!(meta["tls"], true, "STARTTLS before the mail");
    assert_eq!(meta["auth"], USER);
    assert_eq!(meta["from"], "pitcrew@example.com");
    assert_eq!(meta["to"], json!(["ops@example.com", "oncall@example.com"]));
    assert_eq!(header(&eml, "Subject").as_deref(), Some("[ERROR] Agent Ops Alert"));
    let id = header(&eml, "Message-ID").expect("a Message-ID");
    assert!(id.starts_with('<') && id.ends_with('>') && id.contains('@'), "{id}");
    assert!(header(&eml, "Content-Type").unwrap().starts_with("text/plain; charset=utf-8"));
    // The text is quoted-printable ("•" is =E2=80=A2); its ASCII reads as it is.
    assert!(eml.contains("2 services down: api, db") && eml.contains(" db: port 5432: refused"), "{eml}");
    assert_eq!(r.kind("alert")[0]["sinks"], json!([{"sink": "email", "delivered": true}]));
    // A critical alert of its own, with a title that is not ASCII.
    let r = w
        .tool("notify")
        .args(["--now", &at(5), "send", "--level", "critical", "--title", "Disque plein — ünïcode", "sda1 at 99%"])
        .env("SMTP_USERNAME", USER)
        .env("SMTP_PASSWORD", PASSWORD)
        .run();
    r.code(0);
    let (eml2, _) = smtp.message(2);
    let subject = header(&eml2, "Subject").unwrap();
    // The words that are not ASCII are RFC 2047 encoded.
    assert!(subject.starts_with("[CRITICAL] Disque plein =?utf-8?b?"), "{subject}");
    assert_ne!(header(&eml2, "Message-ID"), Some(id), "a Message-ID per mail");
    for text in [&r.stdout, &r.stderr, &all_files(&w)] {
        assert!(!text.contains(PASSWORD));
    }
}

#[test]
fn email_refusals_are_the_servers_words_and_wait_in_the_outbox() {
    let (certs, pem) = Certs::for_names(&["127.0.0.1"], 30);
    let w0 = Workdir::new("notify-email-refused-srv");
    let smtp = Smtpd::start(&w0, "mail", Some(&pem), true);
    let ca = w0.write("ca.pem", &certs.ca_pem);
    // A wrong password: 535, and the password is not in the error.
    let w = setup("notify-email-535", email_alerting(smtp.port, Some(&ca), ""));
    let r = notify(&w, T0)
        .env("SMTP_USERNAME", USER)
        .env("SMTP_PASSWORD", "wrong-PASSWORD-1")
        .stdin(check("api", "down", "x"))
        .run();
    r.code(1);
    r.stderr_has("email: 1 alert(s) not delivered (smtp 127.0.0.1:");
    r.stderr_has("535");
    assert!(!r.stderr.contains("wrong-PASSWORD-1") && !all_files(&w).contains("wrong-PASSWORD-1"));
    assert!(w.read("home/state/outbox.jsonl").contains("\"sinks\":[\"email\"]"));
    // The right one: the outbox goes out.
    notify(&w, &at(1)).env("SMTP_USERNAME", USER).env("SMTP_PASSWORD", PASSWORD).stdin("").run().code(0);
    assert_eq!(smtp.count(), 1);
    // A certificate from a CA nobody named: refused.
    let w = setup("notify-email-unknown-ca", email_alerting(smtp.port, None, ""));
    let r =
        notify(&w, T0).env("SMTP_USERNAME", USER).env("SMTP_PASSWORD", PASSWORD).stdin(check("api", "down", "x")).run();
    r.code(1);
    r.stderr_has("invalid peer certificate");
    // A server without STARTTLS: refused unless the URL says tls=none.
    let plain = Smtpd::start(&w0, "plain", None, false);
    let w = setup("notify-email-no-starttls", email_alerting(plain.port, None, ""));
    let r = notify(&w, T0).stdin(check("api", "down", "x")).run();
    r.code(1);
    r.stderr_has("STARTTLS");
    assert_eq!(plain.count(), 0);
    let w = setup("notify-email-plain", email_alerting(plain.port, None, "?tls=none"));
    notify(&w, T0).stdin(check("api", "down", "x")).run().code(0);
    assert_eq!(plain.message(1).1["tls"], false);
}

#[test]
fn email_settings_are_checked_and_named() {
    let w = setup("notify-email-config", json!({"smtp_url": "smtp://127.0.0.1:25", "email_to": "ops@example.com"}));
    let r = notify(&w, T0).stdin(check("api", "down", "x")).run();
    r.code(2);
    r.stderr_has("alerting: email: email_from (EMAIL_FROM) is missing");
    let w = setup(
        "notify-email-config2",
        json!({"smtp_url": "smtp://bob:hunter2-pw@127.0.0.1:25", "email_from": "a@example.com", "email_to": "ops@example.com"}),
    );
    let r = notify(&w, T0).stdin(check("api", "down", "x")).run();
    r.code(2);
    r.stderr_has("not in the URL");
    assert!(!r.stderr.contains("hunter2-pw"));
    let w = setup("notify-email-config3", json!({"email_to": "ops@example.com", "email_from": "a@example.com"}));
    notify(&w, T0).stdin(check("api", "down", "x")).run().code(2).stderr_has("smtp_url (SMTP_URL) is missing");
    let w = setup(
        "notify-email-config4",
        json!({"smtp_url": "smtp://127.0.0.1:25", "email_from": "not an address", "email_to": "ops@example.com"}),
    );
    notify(&w, T0).stdin(check("api", "down", "x")).run().code(2).stderr_has("email_from: 'not an address'");
    // A setting of the wrong type is said, not ignored (a secret's value is not shown).
    let w = setup("notify-channels-types", json!({"apprise_urls": 5, "slack_webhook_url": ["x"]}));
    let r = notify(&w, T0).stdin(check("api", "down", "x")).run();
    r.code(2);
    r.stderr_has("alerting.apprise_urls: 5 is not a list of strings, or one string");
    let w = setup("notify-channels-types2", json!({"smtp_password": 1234567, "ntfy_max_wait_seconds": "soon"}));
    let r = notify(&w, T0).stdin(check("api", "down", "x")).run();
    r.code(2);
    r.stderr_has("alerting.smtp_password: a value is not a string");
    assert!(!r.stderr.contains("1234567"));
}
