# shellcheck shell=bash disable=SC2154
# probe: 1000 mixed services on loopback, and start-up time. Sourced by scripts/bench.sh.

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
