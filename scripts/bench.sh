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

bench_probe() {
    heading "probe: 1000 mixed services on loopback"
    coproc PEERS { python3 scripts/bench/servers.py 8; }
    pids+=("$PEERS_PID")
    local ports
    read -r ports <&"${PEERS[0]}"
    local timeout=2
    python3 scripts/bench/probe_services.py 1000 "$ports" "$timeout" > "$work/services.ndjson"
    head -100 "$work/services.ndjson" > "$work/services100.ndjson"
    # Warm up (page cache, first TLS config).
    "$bin/probe" --services "$work/services100.ndjson" --no-metrics >/dev/null || true
    local wall serial rss down
    wall=$(wall_s "$bin/probe" --services "$work/services.ndjson" --no-metrics)
    serial=$(wall_s "$bin/probe" --services "$work/services100.ndjson" --no-metrics --concurrency 1)
    rss=$(peak_rss_mib "$bin/probe" --services "$work/services.ndjson" --no-metrics)
    down=$("$bin/probe" --services "$work/services.ndjson" --no-metrics 2>/dev/null | jq -s '[.[] | select(.status == "down")] | length' || true)
    printf '| figure | value | target |\n|---|---|---|\n'
    printf '| wall, 1000 services (60 never answer, timeout %ss) | %ss = %sx the timeout | <= 1.5x |\n' "$timeout" "$wall" "$(ratio "$wall" "$timeout")"
    printf '| wall, 100 of them with --concurrency 1 (baseline) | %ss | |\n' "$serial"
    printf '| 1000 concurrent vs 100 serial | %sx the time for 10x the services | |\n' "$(ratio "$wall" "$serial")"
    printf '| peak RSS, 1000 services | %s MiB | <= 100 MiB |\n' "$rss"
    printf '| services reported down (expect 60) | %s | |\n' "$down"
    kill "$PEERS_PID" 2>/dev/null || true

    heading "probe --version: start-up"
    hyperfine --warmup 20 --runs 200 -N --export-json "$work/start.json" "$bin/probe --version" "/bin/true" >/dev/null 2>&1
    local t_probe t_true
    t_probe=$(jq '.results[0].mean * 1000' "$work/start.json")
    t_true=$(jq '.results[1].mean * 1000' "$work/start.json")
    printf '| figure | value | target |\n|---|---|---|\n'
    printf '| probe --version, mean | %.2f ms | < 5 ms |\n' "$t_probe"
    printf '| /bin/true, mean (baseline) | %.2f ms | |\n' "$t_true"
    printf '| ratio | %sx | |\n' "$(ratio "$t_probe" "$t_true")"
}

sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(probe rollup board tickmon cellscan)
for s in "${sections[@]}"; do
    if declare -F "bench_$s" >/dev/null; then
        "bench_$s"
    else
        printf '\n## %s: no benchmark yet\n' "$s"
    fi
done
