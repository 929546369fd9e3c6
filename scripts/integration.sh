#!/usr/bin/env bash
# pitcrew against the real programs people use, from Debian's packages. Each section says
# what it proves; the first failure stops the run with its name.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

need=(jq shellcheck curl prometheus-alertmanager cron)
plugins=/usr/lib/nagios/plugins
missing=0
for c in "${need[@]}"; do command -v "$c" >/dev/null || missing=1; done
[ -x "$plugins/check_tcp" ] || missing=1
if [ "$missing" -ne 0 ]; then
    scripts/install-peers.sh
fi

# The debug binaries the tests already built: correctness, not speed, is checked here.
pitcrew_build debug
# Parts register in on_exit the functions that undo what they set up outside $work (an
# account, a daemon), and in pids the processes they start.
pitcrew_workdir integration
export AGENT_OPS_HOME="$work/home"

section() { printf '== %s\n' "$*"; }
# rec FILE NAME FILTER: the record named NAME in the NDJSON FILE satisfies the jq FILTER.
rec() { jq -e -s --arg n "$2" "map(select(.name == \$n))[0] | $3" "$1" >/dev/null; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

# Each part is scripts/integration/NN-name.sh, run in order in this shell.
for part in scripts/integration/*.sh; do
    # shellcheck source=/dev/null
    . "$part"
done

echo "integration: all passed"
