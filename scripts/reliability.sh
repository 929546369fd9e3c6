#!/usr/bin/env bash
# The reliability evidence of docs/reliability.md, reproduced: fuzzing, crash loops, hostile
# input, load and the resident pipeline's soak. Long (about two hours in all); CI runs only the
# fast regression tests and the fuzz corpus replay.
#
#   scripts/reliability.sh              every section, in order
#   scripts/reliability.sh fuzz crash   only these sections
#
# Each section is scripts/reliability/NAME.sh defining reliability_NAME; it prints markdown
# tables of what was tried and what held, and exits non-zero when something did not hold.
# Settings: FUZZ_SECONDS (per target, default 180), CRASH_ROUNDS (default 50), SOAK_SECONDS (the
# resident pipeline's soak, default 3600) and SOAK_SERVICES (10); CRASH_PARTS and
# HOSTILE_PARTS pick parts of those two sections (see their files).
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

pitcrew_build release
pitcrew_workdir reliability

heading() { printf '\n### %s\n\n' "$*"; }
fail() { printf 'DID NOT HOLD: %s\n' "$*" >&2; failed=1; }
failed=0

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
