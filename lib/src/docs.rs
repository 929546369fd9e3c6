//! Man pages and shell completions, rendered from the clap definition a tool parses with, so
//! they cannot drift. Every tool answers the hidden `--generate KIND` (as ripgrep does): `man`
//! (roff on stdout), `complete-bash`, `complete-zsh`, `complete-fish`, `complete-elvish`.
//! [`crate::entry`] hands over the command of the tool's descriptor; nothing here knows a
//! tool. `scripts/install.sh` writes the results into place.

use std::io::Write;

use clap_complete::Shell;

use crate::error::{Error, Result};

/// The kinds `--generate` accepts.
pub const KINDS: &[&str] = &["man", "complete-bash", "complete-zsh", "complete-fish", "complete-elvish"];

/// Write the man page or completion script `kind` of the command `cmd` to `out`.
pub fn generate(mut cmd: clap::Command, kind: &str, out: &mut dyn Write) -> Result<()> {
    let shell = match kind {
        "man" => {
            return clap_mangen::Man::new(cmd).render(out).map_err(Error::from);
        }
        "complete-bash" => Shell::Bash,
        "complete-zsh" => Shell::Zsh,
        "complete-fish" => Shell::Fish,
        "complete-elvish" => Shell::Elvish,
        other => {
            return Err(Error::usage(format!("--generate: unknown kind '{other}' (one of: {})", KINDS.join(", "))));
        }
    };
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, &mut cmd, name, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> clap::Command {
        clap::Command::new("demo")
            .about("A demonstration")
            .arg(clap::Arg::new("concurrency").long("concurrency").help("How many at once"))
    }

    #[test]
    fn every_kind_renders_the_command_it_is_given() {
        for kind in KINDS {
            let mut out = Vec::new();
            generate(demo(), kind, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains("demo"), "{kind}");
            assert!(text.contains("concurrency"), "{kind} lacks an option");
        }
        let err = generate(demo(), "complete-cobol", &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("unknown kind 'complete-cobol'"), "{err}");
    }
}
