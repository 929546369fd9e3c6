//! Man pages and shell completions, generated from the same clap definitions the tools parse
//! with, so they cannot drift. Every tool answers the hidden `--generate KIND` (as ripgrep
//! does): `man` (roff on stdout), `complete-bash`, `complete-zsh`, `complete-fish`,
//! `complete-elvish`. `scripts/install.sh` writes them into place.

use std::io::Write;

use clap_complete::Shell;

use crate::error::{Error, Result};

/// The kinds `--generate` accepts.
pub const KINDS: &[&str] = &["man", "complete-bash", "complete-zsh", "complete-fish", "complete-elvish"];

/// The clap definition of a tool by name.
pub fn command_for(tool: &str) -> Option<clap::Command> {
    match tool {
        "probe" => Some(crate::probe::command()),
        "recover" => Some(crate::recover::command()),
        "notify" => Some(crate::notify::command()),
        "rollup" => Some(crate::rollup::command()),
        "board" => Some(crate::board::command()),
        "tickmon" => Some(crate::tickmon::command()),
        "cellscan" => Some(crate::cellscan::command()),
        _ => None,
    }
}

/// Write the man page or completion script `kind` of `tool` to `out`.
pub fn generate(tool: &str, kind: &str, out: &mut dyn Write) -> Result<()> {
    let mut cmd = command_for(tool).ok_or_else(|| Error::usage(format!("--generate: no definition for {tool}")))?;
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

    #[test]
    fn every_kind_renders_for_probe() {
        for kind in KINDS {
            let mut out = Vec::new();
            generate("probe", kind, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains("probe"), "{kind}");
            assert!(text.contains("concurrency"), "{kind} lacks an option");
        }
        assert!(generate("probe", "complete-cobol", &mut Vec::new()).is_err());
    }
}
