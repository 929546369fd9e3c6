# shellcheck shell=bash disable=SC2154
# tickmon serve: heartbeats from 8 concurrent loopback clients, each acknowledged one durable.
# Sourced by scripts/bench.sh.

# tickmon_start STATE [ARGS...]: start the server on a free port; sets tm_pid and tm_addr.
tickmon_start() {
    local state=$1
    shift
    "$bin/tickmon" serve --listen 127.0.0.1:0 --state "$state" --threads 2 "$@" \
        >/dev/null 2>"$state.log" &
    tm_pid=$!
    pids+=("$tm_pid")
    tm_addr=""
    for _ in $(seq 200); do
        tm_addr=$(sed -n 's/.*listening on http:\/\/\([^ ]*\).*/\1/p' "$state.log")
        [ -n "$tm_addr" ] && return 0
        sleep 0.05
    done
    echo "bench: tickmon serve did not start: $(cat "$state.log")" >&2
    return 1
}

# tickmon_wrk MODE URL: 8 connections for 10 s; prints wrk's JSON summary line.
tickmon_wrk() {
    wrk -t 2 -c 8 -d 10s --latency -s scripts/bench/tickmon.lua "$2" -- "$1" 2>/dev/null | tail -1
}

bench_tickmon() {
    heading "tickmon serve: heartbeats from 8 concurrent loopback clients"
    command -v wrk >/dev/null || scripts/install-peers.sh
    local state="$work/tickmon-hb.json" post get durable fsync
    tickmon_start "$state"
    # Warm up, then the measured runs: the endpoint's read-only baseline, then heartbeats.
    wrk -t 2 -c 8 -d 2s -s scripts/bench/tickmon.lua "http://$tm_addr" -- get >/dev/null 2>&1
    get=$(tickmon_wrk get "http://$tm_addr")
    post=$(tickmon_wrk post "http://$tm_addr")
    # Kill it the hard way, then count what the state holds.
    kill -9 "$tm_pid"
    wait "$tm_pid" 2>/dev/null || true
    durable=$("$bin/tickmon" heartbeats --state "$state" | jq -s 'map(.heartbeats) | add // 0')

    tickmon_start "$work/tickmon-fsync.json" --fsync
    fsync=$(tickmon_wrk post "http://$tm_addr")
    kill "$tm_pid"
    wait "$tm_pid" 2>/dev/null || true

    local acked rate get_rate fsync_rate
    acked=$(jq '.requests - .non2xx' <<<"$post")
    rate=$(jq '(.requests - .non2xx) / (.duration_us / 1e6) | floor' <<<"$post")
    get_rate=$(jq '(.requests - .non2xx) / (.duration_us / 1e6) | floor' <<<"$get")
    fsync_rate=$(jq '(.requests - .non2xx) / (.duration_us / 1e6) | floor' <<<"$fsync")
    local ok="no"
    # Requests in flight when wrk stopped may be journaled without being counted: at most 8.
    if [ "$durable" -ge "$acked" ] && [ "$durable" -le $((acked + 8)) ]; then ok="yes"; fi
    printf '| figure | value | target |\n|---|---|---|\n'
    printf '| POST /heartbeat, acknowledged/s | %s | >= 5000 |\n' "$rate"
    printf '| POST /heartbeat, latency p50 / p99 | %.2f ms / %.2f ms | |\n' \
        "$(jq '.p50_us / 1000' <<<"$post")" "$(jq '.p99_us / 1000' <<<"$post")"
    printf '| GET /health, same load (baseline, no journal) | %s/s, p99 %.2f ms | |\n' \
        "$get_rate" "$(jq '.p99_us / 1000' <<<"$get")"
    printf '| heartbeats vs read-only baseline | %sx the rate | |\n' "$(ratio "$rate" "$get_rate")"
    printf '| acknowledged, then kill -9: durable in the state | %s acknowledged, %s in the state: every one kept: %s | all |\n' \
        "$acked" "$durable" "$ok"
    printf '| non-2xx answers / socket errors | %s / %s | 0 / 0 |\n' \
        "$(jq .non2xx <<<"$post")" "$(jq .socket_errors <<<"$post")"
    printf '| with --fsync (group commit): acknowledged/s, p99 | %s, %.2f ms | |\n' \
        "$fsync_rate" "$(jq '.p99_us / 1000' <<<"$fsync")"
}
