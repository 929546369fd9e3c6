#!/usr/bin/env bash
# pitcrew's benchmarks. Reports figures, never fails on timings. Every figure is given beside
# a baseline measured in the same run, as a ratio.
#
#   scripts/bench.sh            all sections
#   scripts/bench.sh probe      one section (probe, watch, rollup, board, tickmon, cellscan, fleet, failover)
#   WATCH_MINUTES=2 scripts/bench.sh watch    probe --watch for 2 minutes instead of 10
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
for c in hyperfine jq python3; do
    command -v "$c" >/dev/null || scripts/install-peers.sh
done
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time is needed (apt-get install time)" >&2; exit 2; }
pitcrew_build release
pitcrew_workdir bench
export AGENT_OPS_HOME="$work/home"

heading() { printf '\n## %s\n' "$*"; }

# Each section is a function bench_<name> in scripts/bench/<name>.sh.
for f in scripts/bench/*.sh; do
    # shellcheck source=/dev/null
    . "$f"
done

sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(probe watch timeline rollup board tickmon cellscan fleet failover)
for s in "${sections[@]}"; do
    if declare -F "bench_$s" >/dev/null; then
        "bench_$s"
    else
        printf '\n## %s: no benchmark yet\n' "$s"
    fi
done
