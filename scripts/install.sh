#!/usr/bin/env bash
# Install pitcrew: the seven binaries, their man pages and shell completions, and the
# scripts pitcrew-orchestrator (one batch run) and pitcrew-watch (resident mode).
#
#   scripts/install.sh                 into ~/.local (bin, share/man/man1, completions)
#   PREFIX=/usr/local scripts/install.sh
#   DESTDIR=/tmp/pkg PREFIX=/usr scripts/install.sh   staged, for packaging
#   PITCREW_PROFILE=debug scripts/install.sh          the debug build (the tests use it)
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"  # sets tools
prefix="${PREFIX:-$HOME/.local}"
dest="${DESTDIR:-}$prefix"

profile="${PITCREW_PROFILE:-release}"
case "$profile" in
    release) cargo build --release --locked --quiet --bins ;;
    debug) cargo build --locked --quiet --bins ;;
    *) echo "install.sh: PITCREW_PROFILE must be release or debug" >&2; exit 2 ;;
esac
install -d "$dest/bin" "$dest/share/man/man1" \
    "$dest/share/bash-completion/completions" \
    "$dest/share/zsh/site-functions" \
    "$dest/share/fish/vendor_completions.d"
for t in "${tools[@]}"; do
    install -m 0755 "target/$profile/$t" "$dest/bin/$t"
    "target/$profile/$t" --generate man > "$dest/share/man/man1/$t.1"
    "target/$profile/$t" --generate complete-bash > "$dest/share/bash-completion/completions/$t"
    "target/$profile/$t" --generate complete-zsh > "$dest/share/zsh/site-functions/_$t"
    "target/$profile/$t" --generate complete-fish > "$dest/share/fish/vendor_completions.d/$t.fish"
done
install -m 0755 scripts/orchestrator.sh "$dest/bin/pitcrew-orchestrator"
install -m 0755 scripts/watch.sh "$dest/bin/pitcrew-watch"
echo "installed ${tools[*]}, pitcrew-orchestrator and pitcrew-watch into $dest"
