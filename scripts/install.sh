#!/usr/bin/env bash
# Install pitcrew: the seven binaries, their man pages and shell completions.
#
#   scripts/install.sh                 into ~/.local (bin, share/man/man1, completions)
#   PREFIX=/usr/local scripts/install.sh
#   DESTDIR=/tmp/pkg PREFIX=/usr scripts/install.sh   staged, for packaging
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${PREFIX:-$HOME/.local}"
dest="${DESTDIR:-}$prefix"
tools=(probe recover notify rollup board tickmon cellscan)

cargo build --release --locked --quiet --bins
install -d "$dest/bin" "$dest/share/man/man1" \
    "$dest/share/bash-completion/completions" \
    "$dest/share/zsh/site-functions" \
    "$dest/share/fish/vendor_completions.d"
for t in "${tools[@]}"; do
    install -m 0755 "target/release/$t" "$dest/bin/$t"
    "target/release/$t" --generate man > "$dest/share/man/man1/$t.1"
    "target/release/$t" --generate complete-bash > "$dest/share/bash-completion/completions/$t"
    "target/release/$t" --generate complete-zsh > "$dest/share/zsh/site-functions/_$t"
    "target/release/$t" --generate complete-fish > "$dest/share/fish/vendor_completions.d/$t.fish"
done
install -m 0755 scripts/orchestrator.sh "$dest/bin/pitcrew-orchestrator"
echo "installed ${tools[*]} and pitcrew-orchestrator into $dest"
