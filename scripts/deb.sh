#!/usr/bin/env bash
# Build the Debian package: target/debian/pitcrew_VERSION-1_ARCH.deb.
#
#   scripts/deb.sh          the release build (shared with scripts/demo.sh), the generated
#                           assets, then `cargo deb --no-build --strip`
#
# Needs cargo-deb (`cargo install --locked cargo-deb --version 3.8.0`). The package holds the
# seven tools, pitcrew-orchestrator and pitcrew-watch in /usr/bin, their man pages and
# bash/zsh/fish completions, the systemd units of examples/systemd with /usr/bin paths, and
# the README, docs and examples under /usr/share/doc/pitcrew (the executable examples stay
# executable). Prints the path of the .deb.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"  # sets tools

cargo deb --version >/dev/null 2>&1 || {
    echo "deb.sh: cargo-deb is missing: cargo install --locked cargo-deb --version 3.8.0" >&2
    exit 2
}
pitcrew_build release

# What the binaries generate about themselves, and what is rewritten for the package's paths.
assets="$root/target/deb-assets"
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/bash" "$assets/zsh" "$assets/fish" "$assets/systemd" \
    "$assets/examples-644" "$assets/examples-755"
for t in "${tools[@]}"; do
    "$bin/$t" --generate man | gzip -9n > "$assets/man/$t.1.gz"
    "$bin/$t" --generate complete-bash > "$assets/bash/$t"
    "$bin/$t" --generate complete-zsh > "$assets/zsh/_$t"
    "$bin/$t" --generate complete-fish > "$assets/fish/$t.fish"
done
# The example units run /usr/local/bin (scripts/install.sh's PREFIX=/usr/local) and put it
# first on PATH; the package's programs are in /usr/bin.
for u in examples/systemd/*; do
    sed -e 's#/usr/local/bin/#/usr/bin/#g' -e 's#^Environment=PATH=/usr/local/bin:#Environment=PATH=#' \
        "$u" > "$assets/systemd/$(basename "$u")"
done
# cargo deb gives every file of an asset line one mode: the examples go in two trees, by
# whether they are executable here.
while IFS= read -r -d '' f; do
    if [ -x "$f" ]; then mode=755; else mode=644; fi
    mkdir -p "$assets/examples-$mode/$(dirname "${f#examples/}")"
    cp "$f" "$assets/examples-$mode/${f#examples/}"
done < <(git ls-files -z examples)
# A glob matching nothing stops cargo deb: keep the executable tree non-empty in any case.
[ -n "$(ls -A "$assets/examples-755")" ] || { echo "deb.sh: no executable example" >&2; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
deb="$root/target/debian/pitcrew_${version}-1_$(dpkg --print-architecture).deb"
mkdir -p "$root/target/debian"
cargo deb --no-build --strip --quiet -p pitcrew-tools --output "$deb" >&2
echo "$deb"
