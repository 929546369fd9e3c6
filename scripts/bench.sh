#!/usr/bin/env bash
# pitcrew's benchmarks. Reports figures, never fails on timings. Every figure is given beside
# a baseline measured in the same run, as a ratio.
#
#   scripts/bench.sh            all sections
#   scripts/bench.sh probe      one section (probe, rollup, board, tickmon, cellscan)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
for c in hyperfine jq python3; do
    command -v "$c" >/dev/null || scripts/install-peers.sh
done
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time is needed (apt-get install time)" >&2; exit 2; }
cargo build --release --quiet --bins
bin="$root/target/release"
export root bin  # used by the sourced parts
work=$(mktemp -d "${TMPDIR:-/tmp}/pitcrew-bench.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
export AGENT_OPS_HOME="$work/home"

heading() { printf '\n## %s\n' "$*"; }
# peak_rss_mib CMD...: run CMD, print its peak resident set in MiB (stdout discarded).
peak_rss_mib() {
    /usr/bin/time -f '%M' -o "$work/rss" "$@" >/dev/null 2>"$work/rss.err" || true
    tail -1 "$work/rss" | awk '{ printf "%.1f", $1 / 1024 }'
}
# wall_s CMD...: seconds of wall time of one run.
wall_s() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || true
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# Each section is a function bench_<name> in scripts/bench/<name>.sh.
for f in scripts/bench/*.sh; do
    # shellcheck source=/dev/null
    . "$f"
done

sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(probe rollup board tickmon cellscan)
for s in "${sections[@]}"; do
    if declare -F "bench_$s" >/dev/null; then
        "bench_$s"
    else
        printf '\n## %s: no benchmark yet\n' "$s"
    fi
done
