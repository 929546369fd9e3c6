//! Committing ticks in the git repository that holds the ticks directory, and pushing them,
//! so that agents on many hosts report through one repository.
//!
//! Every git command runs in its own process group under a time limit, with prompts off (a
//! push that would ask for a password fails instead of hanging a cron job). A push that is
//! rejected because another host pushed first is retried after `pull --rebase`: ticks of
//! different agents are different files, so the rebase never conflicts; when it does (two
//! hosts submitting for the same agent and month), it is aborted and reported.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::CommandLine;
use crate::error::{Error, Result};
use crate::util::proc;

/// How often a rejected push is retried after rebasing.
const PUSH_ATTEMPTS: u32 = 5;

/// The repository seen from a directory inside it.
#[derive(Debug)]
pub(crate) struct Repo {
    /// Where git runs (`git -C`); paths given to it are relative to this directory.
    pub(crate) cwd: PathBuf,
    /// The working tree's top level.
    pub(crate) root: PathBuf,
    /// The `.git` directory (for tickmon's lock).
    pub(crate) git_dir: PathBuf,
    timeout: Duration,
    env: Vec<(String, String)>,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// The repository has no remote.
    NoRemote,
    /// Pushed to this remote, after this many rebases onto others' pushes.
    To { remote: String, rebases: u32 },
}

impl Repo {
    /// The repository holding `dir`; an error when there is none.
    pub(crate) fn discover(dir: &Path, timeout: Duration, host: &str) -> Result<Repo> {
        let mut repo = Repo {
            cwd: dir.to_path_buf(),
            root: PathBuf::new(),
            git_dir: PathBuf::new(),
            timeout,
            env: vec![("GIT_TERMINAL_PROMPT".into(), "0".into()), ("LC_ALL".into(), "C".into())],
        };
        let root = repo
            .ok(&["rev-parse", "--show-toplevel"])
            .map_err(|e| Error::other(format!("--git: {} is not in a git repository ({e})", dir.display())))?;
        repo.root = PathBuf::from(root.trim());
        repo.git_dir = PathBuf::from(repo.ok(&["rev-parse", "--absolute-git-dir"])?.trim());
        // A host that never configured an identity still commits, as tickmon@host.
        let has = |key: &str| repo.run(&["config", "--get", key]).map(|o| o.success()).unwrap_or(false);
        if !has("user.email") || !has("user.name") {
            for (k, v) in [
                ("GIT_AUTHOR_NAME", "tickmon".to_string()),
                ("GIT_COMMITTER_NAME", "tickmon".to_string()),
                ("GIT_AUTHOR_EMAIL", format!("tickmon@{host}")),
                ("GIT_COMMITTER_EMAIL", format!("tickmon@{host}")),
            ] {
                repo.env.push((k.into(), v));
            }
        }
        Ok(repo)
    }

    /// Run git with these arguments.
    fn run(&self, args: &[&str]) -> Result<proc::Outcome> {
        let mut argv = vec!["git".to_string(), "-C".to_string(), self.cwd.display().to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        let cmd = CommandLine::Argv(argv);
        let mut spec = proc::Spec::new(&cmd, self.timeout);
        spec.env = self.env.clone();
        let out = proc::run(&spec).map_err(|e| Error::other(format!("cannot run git: {e}")))?;
        if out.timed_out {
            return Err(Error::other(format!("git {}: {}", args.join(" "), out.describe())));
        }
        Ok(out)
    }

    /// Run git; its stdout when it succeeds, else an error with its message.
    fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args)?;
        if out.success() { Ok(out.stdout) } else { Err(failure(args, &out)) }
    }

    /// Stage and commit one file (`rel`, relative to `cwd`). `Ok(None)` when it did not change.
    pub(crate) fn commit_file(&self, rel: &Path, message: &str) -> Result<Option<String>> {
        let rel = rel.display().to_string();
        self.ok(&["add", "--", &rel])?;
        let diff = self.run(&["diff", "--cached", "--quiet", "--", &rel])?;
        if diff.exit_code == Some(0) {
            return Ok(None);
        }
        self.ok(&["commit", "-q", "--no-verify", "-m", message, "--", &rel])?;
        self.head().map(Some)
    }

    /// The commit HEAD points at.
    pub(crate) fn head(&self) -> Result<String> {
        Ok(self.ok(&["rev-parse", "HEAD"])?.trim().to_string())
    }

    /// Push the current branch, rebasing onto what others pushed when the push is rejected.
    pub(crate) fn push(&self) -> Result<Pushed> {
        let remotes: Vec<String> =
            self.ok(&["remote"])?.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
        if remotes.is_empty() {
            return Ok(Pushed::NoRemote);
        }
        let branch = self
            .ok(&["symbolic-ref", "--short", "-q", "HEAD"])
            .map_err(|_| Error::other("--push: the ticks repository is not on a branch"))?
            .trim()
            .to_string();
        let upstream = self.run(&["rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{u}"])?;
        let (remote, remote_branch) = match upstream.success().then(|| upstream.stdout.trim().to_string()) {
            Some(u) => match u.split_once('/') {
                Some((r, b)) if remotes.iter().any(|x| x == r) => (r.to_string(), b.to_string()),
                _ => (default_remote(&remotes), branch.clone()),
            },
            None => (default_remote(&remotes), branch.clone()),
        };
        let refspec = format!("HEAD:refs/heads/{remote_branch}");
        for rebases in 0..PUSH_ATTEMPTS {
            let push_args = ["push", "-q", remote.as_str(), refspec.as_str()];
            let out = self.run(&push_args)?;
            if out.success() {
                return Ok(Pushed::To { remote, rebases });
            }
            if !is_rejection(&out.stderr) {
                return Err(failure(&push_args, &out));
            }
            let pull_args = ["pull", "-q", "--rebase", "--autostash", remote.as_str(), remote_branch.as_str()];
            let pulled = self.run(&pull_args)?;
            if !pulled.success() {
                let _ = self.run(&["rebase", "--abort"]);
                return Err(failure(&pull_args, &pulled));
            }
        }
        Err(Error::other(format!("git push {remote}: still rejected after {PUSH_ATTEMPTS} attempts")))
    }
}

fn default_remote(remotes: &[String]) -> String {
    if remotes.iter().any(|r| r == "origin") { "origin".into() } else { remotes[0].clone() }
}

fn is_rejection(stderr: &str) -> bool {
    ["[rejected]", "fetch first", "non-fast-forward", "failed to update ref", "cannot lock ref"]
        .iter()
        .any(|s| stderr.contains(s))
}

/// `git ARGS: first line of what git said`.
fn failure(args: &[&str], out: &proc::Outcome) -> Error {
    let said = [out.stderr.as_str(), out.stdout.as_str()]
        .iter()
        .flat_map(|s| s.lines())
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("hint:"))
        .unwrap_or("")
        .to_string();
    let why = if said.is_empty() { out.describe() } else { said };
    Error::other(format!("git {}: {why}", args.join(" ")))
}
