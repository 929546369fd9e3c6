#!/usr/bin/env bash
# The reliability evidence of docs/reliability.md, reproduced: fuzzing, crash loops, hostile
# input and load. Long (tens of minutes in all); CI runs only the fast regression tests and
# the fuzz corpus replay.
#
#   scripts/reliability.sh              every section, in order
#   scripts/reliability.sh fuzz crash   only these sections
#
# Each section is scripts/reliability/NAME.sh defining reliability_NAME; it prints markdown
# tables of what was tried and what held, and exits non-zero when something did not hold.
# Settings: FUZZ_SECONDS (per target, default 180), CRASH_ROUNDS (default 50); CRASH_PARTS and
# HOSTILE_PARTS pick parts of those two sections (see their files).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
export root

cargo build --release --quiet --bins
bin="$root/target/release"
work=$(mktemp -d "${TMPDIR:-/tmp}/pitcrew-reliability.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
export bin work

heading() { printf '\n### %s\n\n' "$*"; }
fail() { printf 'DID NOT HOLD: %s\n' "$*" >&2; failed=1; }
failed=0
# Peak resident memory of a command, in MiB (GNU time).
peak_rss_mib() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1 | awk '{printf "%.1f", $1/1024}'; }

sections=("$@")
if [ ${#sections[@]} -eq 0 ]; then
    for f in scripts/reliability/*.sh; do sections+=("$(basename "$f" .sh)"); done
fi
for s in "${sections[@]}"; do
    # shellcheck source=/dev/null
    . "scripts/reliability/$s.sh"
    "reliability_$s" || fail "section $s stopped early"
done
if [ "$failed" -ne 0 ]; then
    echo "reliability: something did not hold (see above)" >&2
    exit 1
fi
echo
echo "reliability: everything held"
