//! The `apprise` sink with the real `apprise` command (PyPI's, installed by
//! scripts/install-peers.sh) against loopback servers that speak each target's wire format:
//! `json://` to an HTTP receiver, `ntfy://` to the ntfy stand-in, `slack://` and `discord://`
//! (whose hosts are fixed in Apprise) through an HTTPS proxy that terminates their TLS with a
//! certificate from the test's CA, and `mailtos://` with STARTTLS and AUTH to aiosmtpd.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::chat::{self, DISCORD_PATH, SLACK_PATH, text_of};
use super::email::{PASSWORD, Smtpd, USER, header};
use super::{T0, alerts, all_files, at, check, notify, setup};
use crate::util::http::{Certs, HttpServer, Reply, TlsFront};
use crate::util::{Workdir, closed_port, path_str};

/// An HTTP receiver that keeps every JSON body.
fn receiver() -> (HttpServer, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let s = HttpServer::start(move |req| {
        g.lock().unwrap().push(serde_json::from_str(&req.body).unwrap_or(Value::Null));
        Reply::new(200, "")
    });
    (s, got)
}

#[test]
fn apprise_json_and_ntfy_get_title_body_and_type() {
    let (hook, got) = receiver();
    let n = chat::ntfy();
    let urls = [format!("json://{}/hook", hook.addr), format!("ntfy://{}/pitcrew-alerts", n.server.addr)];
    let w = setup("notify-apprise-json", json!({"apprise_urls": urls}));
    let r = notify(&w, T0).stdin(check("api", "down", "connection refused")).run();
    r.code(0);
    let j = got.lock().unwrap()[0].clone();
    // One alert: its own title; the level is Apprise's type.
    assert_eq!((j["title"].as_str(), j["type"].as_str()), (Some("api is failing"), Some("failure")));
    assert!(j["message"].as_str().unwrap().contains("1 service down: api\n• api: connection refused"), "{j}");
    let m = &n.accepted()[0];
    assert_eq!((m["topic"].as_str(), m["title"].as_str()), (Some("pitcrew-alerts"), Some("api is failing")));
    assert!(m["message"].as_str().unwrap().contains("• api: connection refused"));
    assert_eq!(alerts(&r)[0]["sinks"], json!([{"sink": "apprise", "delivered": true}]));
    // The recovery is a success; a warning a warning.
    notify(&w, &at(10)).stdin(check("api", "up", "HTTP 200")).run().code(0);
    w.tool("notify").args(["--now", &at(11), "send", "--level", "warning", "disk at 91%"]).run().code(0);
    let types: Vec<String> = got.lock().unwrap().iter().map(|j| j["type"].as_str().unwrap().to_string()).collect();
    assert_eq!(types, ["failure", "success", "warning"]);
    // The URLs went in on stdin, never on a command line.
    let dry = notify(&w, &at(12)).args(["--dry-run"]).stdin(check("db", "down", "x")).run();
    dry.code(0);
    assert_eq!(alerts(&dry)[0]["sinks"][0]["rendered"]["type"], "failure");
}

#[test]
fn apprise_slack_and_discord_through_an_https_proxy() {
    let (certs, _) = Certs::for_names(&["hooks.slack.com", "discord.com"], 30);
    let w0 = Workdir::new("notify-apprise-proxy");
    let ca = w0.write("ca.pem", &certs.ca_pem);
    let slack = chat::slack();
    let discord = chat::discord();
    let cases = [
        ("slack", format!("slack:/{}", SLACK_PATH.trim_start_matches("/services")), &slack),
        ("discord", format!("discord:/{}", DISCORD_PATH.trim_start_matches("/api/webhooks")), &discord),
    ];
    for (name, url, fake) in cases {
        let proxy = TlsFront::connect_proxy(&certs, fake.server.addr);
        let w = setup(&format!("notify-apprise-{name}"), json!({"apprise_urls": [url]}));
        let r = notify(&w, T0)
            .env("HTTPS_PROXY", format!("http://{}", proxy.addr))
            .env("REQUESTS_CA_BUNDLE", &ca)
            .env("NO_PROXY", "")
            .stdin(check("api", "down", "connection refused"))
            .run();
        r.code(0);
        let got = fake.accepted();
        assert_eq!(got.len(), 1, "{name}: {r:?}");
        let text = text_of(&got[0]);
        assert!(text.contains("api is failing") && text.contains("api: connection refused"), "{name}: {text}");
    }
    // A Slack that refuses: the alert waits in the outbox, the webhook's secret is nowhere.
    slack.script(Reply::new(404, "no_service"));
    let proxy = TlsFront::connect_proxy(&certs, slack.server.addr);
    let url = format!("slack:/{}", SLACK_PATH.trim_start_matches("/services"));
    let w = setup("notify-apprise-slack-404", json!({"apprise_urls": [url]}));
    let r = notify(&w, T0)
        .env("HTTPS_PROXY", format!("http://{}", proxy.addr))
        .env("REQUESTS_CA_BUNDLE", &ca)
        .env("NO_PROXY", "")
        .stdin(check("api", "down", "x"))
        .run();
    r.code(1);
    r.stderr_has("apprise: 1 alert(s) not delivered (apprise exit 1 (failed)");
    let secret = SLACK_PATH.rsplit('/').next().unwrap();
    assert!(!r.stderr.contains(secret) && !r.stdout.contains(secret) && !all_files(&w).contains(secret));
}

#[test]
fn apprise_mailto_with_starttls_and_auth_reaches_a_real_smtp_server() {
    let (certs, pem) = Certs::for_names(&["127.0.0.1"], 30);
    let w0 = Workdir::new("notify-apprise-mail-srv");
    let smtp = Smtpd::start(&w0, "mail", Some(&pem), true);
    let ca = w0.write("ca.pem", &certs.ca_pem);
    let url = format!(
        "mailtos://{USER}:{PASSWORD}@127.0.0.1:{}?mode=starttls&from=pitcrew@example.com&to=ops@example.com",
        smtp.port
    );
    let w = setup("notify-apprise-mail", json!({"apprise_urls": [url]}));
    let r = notify(&w, T0).env("SSL_CERT_FILE", &ca).stdin(check("api", "down", "connection refused")).run();
    r.code(0);
    let (eml, meta) = smtp.message(1);
    assert_eq!((meta["tls"].as_bool(), meta["auth"].as_str()), (Some(true), Some(USER)));
    assert_eq!(header(&eml, "Subject").as_deref(), Some("api is failing"));
    assert!(eml.contains("api: connection refused"), "{eml}");
    // A wrong password: exit 1 from apprise, the outbox, and no password anywhere.
    let bad = url.replace(PASSWORD, "wr0ng-Pa55word-9");
    let w = setup("notify-apprise-mail-535", json!({"apprise_urls": [bad]}));
    let r = notify(&w, T0).env("SSL_CERT_FILE", &ca).stdin(check("api", "down", "x")).run();
    r.code(1);
    for text in [&r.stdout, &r.stderr, &all_files(&w)] {
        assert!(!text.contains("wr0ng-Pa55word-9") && !text.contains(PASSWORD));
    }
    assert!(w.read("home/state/outbox.jsonl").contains("\"sinks\":[\"apprise\"]"));
    // Plain mailto:// to a server without TLS or AUTH (a relay on the machine).
    let relay = Smtpd::start(&w0, "relay", None, false);
    let url = format!("mailto://127.0.0.1:{}?from=pitcrew@example.com&to=ops@example.com", relay.port);
    let w = setup("notify-apprise-mailto", json!({"apprise_urls": [url]}));
    notify(&w, T0).stdin(check("api", "down", "connection refused")).run().code(0);
    let (eml, meta) = relay.message(1);
    assert_eq!((meta["tls"].as_bool(), &meta["to"]), (Some(false), &json!(["ops@example.com"])));
    assert!(eml.contains("api: connection refused"), "{eml}");
}

#[test]
fn apprise_errors_are_scrubbed_and_a_config_file_reaches_tagged_urls() {
    let (hook, got) = receiver();
    // An URL Apprise cannot parse (it prints it whole) and a receiver that is not there.
    let urls = [
        "nosuch://SECRETuser:SECRETpass@example.invalid/x".to_string(),
        format!("json://hookuser:HOOKsecret99@127.0.0.1:{}/h", closed_port()),
    ];
    let w = setup("notify-apprise-fail", json!({"apprise_urls": urls}));
    let r = notify(&w, T0).stdin(check("api", "down", "x")).run();
    r.code(1);
    r.stderr_has("apprise: 1 alert(s) not delivered (apprise exit");
    for text in [&r.stdout, &r.stderr, &all_files(&w)] {
        for secret in ["SECRETuser", "SECRETpass", "HOOKsecret99", "hookuser"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    // A configuration file of Apprise's own, with a tagged URL: reached (-g all).
    let w = Workdir::new("notify-apprise-config");
    let conf = w.write("apprise.yml", format!("urls:\n  - json://{}/tagged:\n      tag: ops\n", hook.addr));
    w.write(
        "home/config/services.json",
        crate::util::json(&json!({"services": [], "alerting": {"apprise_config": path_str(&conf)}})),
    );
    w.tool("notify").args(["--now", T0]).stdin(check("api", "down", "x")).run().code(0);
    assert_eq!(got.lock().unwrap().len(), 1);
    // And with a tag that matches nothing: exit 3, said.
    w.write(
        "home/config/services.json",
        crate::util::json(
            &json!({"services": [], "alerting": {"apprise_config": path_str(&conf), "apprise_tag": "nobody"}}),
        ),
    );
    let r = w.tool("notify").args(["--now", &at(1), "send", "hello"]).run();
    r.code(1);
    r.stderr_has("apprise exit 3 (no URL matched the tag 'nobody')");
}
