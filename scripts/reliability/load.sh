# shellcheck shell=bash disable=SC2154
# Load: tickmon serve under sustained load with malformed requests mixed in, and probe
# against thousands of loopback targets, with memory and open descriptors sampled.

# rss_fd PID: "RSS_KiB FDS" of a live process.
rss_fd() {
    local rss fds
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || true)
    fds=$(find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    printf '%s %s\n' "${rss:-0}" "${fds:-0}"
}

reliability_load() {
    command -v wrk >/dev/null || scripts/install-peers.sh
    . scripts/bench/tickmon.sh
    local secs=${LOAD_SECONDS:-60}
    heading "tickmon serve: ${secs} s of 64 connections, 30% of requests malformed"
    local state="$work/load-hb.json"
    tickmon_start "$state" --max-body 65536
    local samples="$work/load-samples"
    : >"$samples"
    wrk -t 2 -c 64 -d "${secs}s" --latency -s scripts/reliability/load.lua "http://$tm_addr" \
        >"$work/load-wrk.txt" 2>&1 &
    local wrk_pid=$!
    local i
    for i in $(seq "$secs"); do
        sleep 1
        echo "$i $(rss_fd "$tm_pid")" >>"$samples"
    done
    wait "$wrk_pid" || true
    local summary first_rss last_rss max_rss max_fd end_fd health
    summary=$(tail -1 "$work/load-wrk.txt")
    first_rss=$(awk 'NR==5 {print $2}' "$samples")
    last_rss=$(awk 'END {print $2}' "$samples")
    max_rss=$(awk 'BEGIN {m=0} $2>m {m=$2} END {print m}' "$samples")
    max_fd=$(awk 'BEGIN {m=0} $3>m {m=$3} END {print m}' "$samples")
    sleep 2
    end_fd=$(rss_fd "$tm_pid" | awk '{print $2}')
    health=$(curl -s -o /dev/null -w '%{http_code}' "http://$tm_addr/health")
    printf '| figure | value |\n|---|---|\n'
    printf '| wrk summary | %s |\n' "$summary"
    printf '| RSS after 5 s / at the end / peak | %s / %s / %s KiB |\n' "$first_rss" "$last_rss" "$max_rss"
    printf '| open descriptors, peak under load / 2 s after | %s / %s |\n' "$max_fd" "$end_fd"
    printf '| GET /health after the load | %s |\n' "$health"
    [ "$health" = 200 ] || fail "tickmon serve stopped answering after the load"
    [ "$end_fd" -lt 40 ] || fail "tickmon serve kept $end_fd descriptors open after the load"
    # Memory must level off: the last sample within 1.5x of the one at 5 s (plus 8 MiB).
    awk -v a="$first_rss" -v b="$last_rss" 'BEGIN {exit !(b <= a * 1.5 + 8192)}' \
        || fail "tickmon serve memory grew from $first_rss to $last_rss KiB"
    kill "$tm_pid"
    wait "$tm_pid" 2>/dev/null || true
    "$bin/tickmon" heartbeats --state "$state" >/dev/null 2>&1 || [ $? -eq 1 ] \
        || fail "the state does not read after the load"

    local n=${PROBE_TARGETS:-5000}
    heading "probe: $n loopback targets (url, port), default --concurrency 256"
    coproc PEERS { exec python3 scripts/bench/servers.py 16; }
    pids+=("$PEERS_PID")
    local ports
    read -r ports <&"${PEERS[0]}"
    python3 scripts/bench/probe_services.py "$n" "$ports" 2 >"$work/many.ndjson"
    "$bin/probe" --services "$work/many.ndjson" --no-metrics >"$work/many.out" 2>"$work/many.err" &
    local ppid=$! peak_fd=0 peak_rss=0 s
    while kill -0 "$ppid" 2>/dev/null; do
        s=$(rss_fd "$ppid")
        peak_rss=$(( ${s% *} > peak_rss ? ${s% *} : peak_rss ))
        peak_fd=$(( ${s#* } > peak_fd ? ${s#* } : peak_fd ))
        sleep 0.2
    done
    wait "$ppid" || true
    local records wall
    records=$(wc -l <"$work/many.out")
    /usr/bin/time -f %e -o "$work/probe-time" "$bin/probe" --services "$work/many.ndjson" --no-metrics \
        >/dev/null 2>&1 || true
    wall=$(tail -1 "$work/probe-time")
    printf '| figure | value |\n|---|---|\n'
    printf '| check records out | %s of %s |\n' "$records" "$n"
    printf '| wall time | %s s |\n' "$wall"
    printf '| peak RSS (sampled every 0.2 s) | %s KiB |\n' "$peak_rss"
    printf '| peak open descriptors | %s |\n' "$peak_fd"
    [ "$records" -eq "$n" ] || fail "probe wrote $records records for $n services"
    [ "$peak_fd" -le 600 ] || fail "probe held $peak_fd descriptors"
    kill "$PEERS_PID" 2>/dev/null || true
}
