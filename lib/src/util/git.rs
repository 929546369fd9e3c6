//! What a git checkout says about where it came from: the repository (`owner/name`) its
//! `origin` remote names. The Agent Tick Protocol files its RCA issues in the repository that
//! holds the ticks, so when no Gitea repository is configured, notify takes it from there.

use std::path::Path;
use std::time::Duration;

use super::proc::CommandLine;
use crate::util::proc;

/// The `owner/name` of the `origin` remote of the checkout holding `dir`, if there is one.
pub fn origin_repo(dir: &Path, timeout: Duration) -> Option<String> {
    let argv = ["git", "-C", &dir.display().to_string(), "config", "--get", "remote.origin.url"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let cmd = CommandLine::Argv(argv);
    let mut spec = proc::Spec::new(&cmd, timeout);
    spec.env = vec![("GIT_TERMINAL_PROMPT".into(), "0".into()), ("LC_ALL".into(), "C".into())];
    let out = proc::run(&spec).ok().filter(proc::Outcome::success)?;
    repo_of_url(out.stdout.trim())
}

/// `owner/name` from a remote URL: `https://host/owner/name.git`, `ssh://git@host:2222/owner/name`,
/// `git@host:owner/name.git`. A URL with more or fewer path segments names no Gitea repository.
pub fn repo_of_url(url: &str) -> Option<String> {
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map(|(_, p)| p)?,
        // scp-like: user@host:owner/name
        None => url.split_once(':').map(|(_, p)| p)?,
    };
    let path = path.split(['?', '#']).next().unwrap_or(path).trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    match path.split('/').collect::<Vec<_>>().as_slice() {
        [owner, name] if !owner.is_empty() && !name.is_empty() => Some(format!("{owner}/{name}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_urls_of_every_shape() {
        for (url, want) in [
            ("https://git.example.org/allegro/household-snapshots.git", Some("allegro/household-snapshots")),
            ("http://127.0.0.1:3000/ops/alerts", Some("ops/alerts")),
            ("ssh://git@git.example.org:2222/ops/ticks.git", Some("ops/ticks")),
            ("git@git.example.org:ops/ticks.git", Some("ops/ticks")),
            ("https://user:pw@host/ops/ticks.git/", Some("ops/ticks")),
            ("/srv/git/ticks.git", None),
            ("https://host/a/b/c.git", None),
            ("", None),
        ] {
            assert_eq!(repo_of_url(url).as_deref(), want, "{url}");
        }
    }
}
