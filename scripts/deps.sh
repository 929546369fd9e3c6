#!/usr/bin/env bash
# The dependency checks of CI (.ci/run), offline:
#   - no dependency declared and unused: cargo-machete reads every package's [dependencies]
#     (lib, the tools, fuzz/); the tests' [dev-dependencies], which it does not read, must each
#     be named in tests/ or in fuzz/src/lib.rs (which tests/fuzz_corpus.rs includes);
#   - cargo-deny's bans, licenses and sources, as deny.toml sets them (the advisories check
#     needs a database from the network and is not run).
# Needs cargo-machete and cargo-deny (.ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo machete --skip-target-dir

unused=()
in_dev=0
while IFS= read -r line; do
    case "$line" in
        '[dev-dependencies]') in_dev=1; continue ;;
        '['*) in_dev=0; continue ;;
    esac
    [ "$in_dev" -eq 1 ] || continue
    name=${line%%[ .=]*}
    [ -n "$name" ] || continue
    crate=${name//-/_}
    if ! grep -rqE "(^|[^:A-Za-z0-9_])$crate::|use $crate\b" tests fuzz/src; then
        unused+=("$name")
    fi
done < Cargo.toml
if [ ${#unused[@]} -gt 0 ]; then
    echo "deps: dev-dependencies no test uses: ${unused[*]}" >&2
    exit 1
fi

cargo deny --offline check bans licenses sources
