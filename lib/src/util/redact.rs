//! Credentials out of what is written: a URL's userinfo and the values of query parameters
//! whose names look like credentials are replaced with `***` wherever a URL is shown (a
//! check's `target`, its detail, the metrics file). The request itself still uses the URL
//! as configured.

use std::borrow::Cow;

/// The environment variables that hold pitcrew's secrets: read by pitcrew, removed from the
/// environment of every command it runs (restart and revive commands, monitoring plugins,
/// the exec sink, git).
pub const SECRET_ENV: &[&str] = &[
    "TELEGRAM_BOT_TOKEN",
    "GITEA_TOKEN",
    "AGENT_OPS_HEARTBEAT_TOKEN",
    "SLACK_WEBHOOK_URL",
    "DISCORD_WEBHOOK_URL",
    "NTFY_URL",
    "NTFY_TOKEN",
    "SMTP_PASSWORD",
    "APPRISE_URLS",
];

/// Query parameter names (compared in lower case, `-` read as `_`) whose values are secrets.
const SECRET_NAMES: &[&str] = &[
    "api_key",
    "apikey",
    "key",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "private_token",
    "auth",
    "auth_token",
    "authorization",
    "secret",
    "client_secret",
    "password",
    "passwd",
    "pwd",
    "pass",
    "sig",
    "signature",
    "session",
    "sessionid",
    "credential",
    "credentials",
];

/// True for a query parameter name that carries a credential: one of [`SECRET_NAMES`], or a
/// name ending in one of `_key`, `_token`, `_secret`, `_password`.
fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace('-', "_");
    SECRET_NAMES.contains(&n.as_str())
        || ["_key", "_token", "_secret", "_password", "_pwd"].iter().any(|s| n.ends_with(s))
}

/// `url` with its userinfo and its credential-looking query values replaced by `***`.
/// Text that is not a URL comes back as it is.
pub fn redact_url(url: &str) -> Cow<'_, str> {
    let Some(scheme_end) = url.find("://") else { return Cow::Borrowed(url) };
    let after = scheme_end + 3;
    let rest = &url[after..];
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..auth_end];
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..after]);
    let mut changed = false;
    match authority.rfind('@') {
        Some(at) => {
            out.push_str("***");
            out.push_str(&authority[at..]);
            changed = true;
        }
        None => out.push_str(authority),
    }
    let tail = &rest[auth_end..];
    let (before_frag, frag) = match tail.find('#') {
        Some(i) => (&tail[..i], &tail[i..]),
        None => (tail, ""),
    };
    match before_frag.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let mut first = true;
            for pair in query.split('&') {
                if !first {
                    out.push('&');
                }
                first = false;
                match pair.split_once('=') {
                    Some((k, v)) if is_secret_name(k) && !v.is_empty() => {
                        out.push_str(k);
                        out.push_str("=***");
                        changed = true;
                    }
                    _ => out.push_str(pair),
                }
            }
        }
        None => out.push_str(before_frag),
    }
    out.push_str(frag);
    if changed { Cow::Owned(out) } else { Cow::Borrowed(url) }
}

/// `text` with every occurrence of `url` replaced by its redacted form (an error message
/// that quotes the URL it was about).
pub fn redact_in(text: &str, url: &str) -> String {
    let red = redact_url(url);
    if red == url || url.is_empty() { text.to_string() } else { text.replace(url, &red) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_and_credential_values_are_hidden() {
        assert_eq!(
            redact_url("http://admin:pw@host:8080/x?api_key=abc&page=2&Access-Token=t#top"),
            "http://***@host:8080/x?api_key=***&page=2&Access-Token=***#top"
        );
        assert_eq!(redact_url("https://h/?token=&x=1"), "https://h/?token=&x=1");
        assert_eq!(redact_url("https://h/p?stripe_secret=s"), "https://h/p?stripe_secret=***");
        assert!(matches!(redact_url("https://example.com/health"), Cow::Borrowed(_)));
        assert_eq!(redact_url("127.0.0.1:80"), "127.0.0.1:80");
        assert_eq!(redact_url("http://u@h?password=p"), "http://***@h?password=***");
        assert_eq!(redact_in("GET http://a:b@h/ failed", "http://a:b@h/"), "GET http://***@h/ failed");
    }
}
