# shellcheck shell=bash disable=SC2154
# probe --watch: 1,000 loopback services at a 1 s interval for WATCH_MINUTES minutes (default
# 10): resident memory after the first minute, open descriptors, lateness of the checks
# against their schedule, CPU per check. Sourced by scripts/bench.sh.
#
# The targets come from pitcrew-bench-fixture (scripts/bench/fixture.rs); every one answers at
# once (700 urls, 300 ports), so a check late or down is probe's doing.

# "rss_kib fds cpu_ticks" of PID now.
watch_sample() {
    local pid=$1 rss fds ticks
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
    fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    # utime and stime: fields 14 and 15, counted after the command name's closing parenthesis.
    ticks=$(sed 's/.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }')
    printf '%s %s %s\n' "$rss" "$fds" "$ticks"
}

bench_watch() {
    local minutes=${WATCH_MINUTES:-10} n=1000
    heading "probe --watch: $n loopback services at a 1 s interval for $minutes min"
    ulimit -n "$(ulimit -Hn)"
    coproc WPEERS { "$bin/pitcrew-bench-fixture" --http 16 --hole 1 --tcp 16 2>"$work/wfixture.err"; }
    pids+=("$WPEERS_PID")
    local ports
    read -r ports <&"${WPEERS[0]}"
    jq -c --argjson n "$n" '. as $p | range(0; $n) | . as $i
        | if $i % 10 < 7
          then {name: "http-\($i)", type: "url", target: "http://127.0.0.1:\($p.http[$i % ($p.http | length)])/health"}
          else {name: "tcp-\($i)", type: "port", port: $p.tcp[$i % ($p.tcp | length)]} end
        | . + {interval_seconds: 1, timeout_seconds: 2}' <<<"$ports" >"$work/watch.ndjson"

    "$bin/probe" --watch --services "$work/watch.ndjson" --metrics-dir "$work/wmetrics" \
        >"$work/watch.out" 2>"$work/watch.err" &
    local pid=$! t=0 end=$((minutes * 60)) tick
    pids+=("$pid")
    tick=$(getconf CLK_TCK)
    : >"$work/samples"
    while [ "$t" -lt "$end" ]; do
        sleep 5
        t=$((t + 5))
        printf '%s %s\n' "$t" "$(watch_sample "$pid")" >>"$work/samples"
    done
    kill -TERM "$pid"
    local t0 code=0
    t0=$(date +%s.%N)
    wait "$pid" || code=$?
    local stop_s
    stop_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    kill "$WPEERS_PID" 2>/dev/null || true

    # Memory and descriptors: at one minute, then the most and least after it.
    local rss60 rss_end rss_max fd60 fd_min fd_max ticks_end
    read -r rss60 fd60 < <(awk '$1 == 60 { print $2, $3 }' "$work/samples")
    read -r rss_end ticks_end < <(tail -1 "$work/samples" | awk '{ print $2, $4 }')
    read -r rss_max fd_min fd_max < <(awk '$1 >= 60 { if ($2 > r) r = $2; if (m == "" || $3 < m) m = $3; if ($3 > x) x = $3 }
        END { print r, m, x }' "$work/samples")
    # Lateness of every check against its scheduled time, from the records.
    local checks not_up skipped p50 p99 max
    jq -r 'select(.kind == "check") | "\(.late_ms) \(.status) \(.skipped // 0)"' "$work/watch.out" >"$work/late"
    checks=$(wc -l <"$work/late")
    not_up=$(awk '$2 != "up"' "$work/late" | wc -l)
    skipped=$(awk '{ s += $3 } END { print s + 0 }' "$work/late")
    read -r p50 p99 max < <(cut -d' ' -f1 "$work/late" | sort -n | awk '{ v[NR] = $1 }
        END { print v[int(NR * 0.5) + 1], v[int(NR * 0.99) + 1], v[NR] }')
    local cpu_s
    cpu_s=$(awk -v t="$ticks_end" -v h="$tick" 'BEGIN { printf "%.1f", t / h }')

    printf 'open-files limit %s, %s cores\n\n' "$(ulimit -n)" "$(nproc)"
    printf '| figure | measured | target |\n|---|---|---|\n'
    printf '| checks written | %s in %s min (%s expected), %s not up, %s scheduled times skipped | |\n' \
        "$checks" "$minutes" "$((n * minutes * 60))" "$not_up" "$skipped"
    printf '| RSS growth after the first minute | %s MiB (%s MiB at 1 min, %s MiB at the end, %s MiB at most) | < 5 MiB |\n' \
        "$(awk -v a="$rss60" -v b="$rss_end" 'BEGIN { printf "%.1f", (b - a) / 1024 }')" \
        "$(awk -v a="$rss60" 'BEGIN { printf "%.1f", a / 1024 }')" \
        "$(awk -v a="$rss_end" 'BEGIN { printf "%.1f", a / 1024 }')" \
        "$(awk -v a="$rss_max" 'BEGIN { printf "%.1f", a / 1024 }')"
    printf '| open descriptors after the first minute | %s to %s (%s at 1 min) | flat |\n' "$fd_min" "$fd_max" "$fd60"
    printf '| lateness against the schedule | p50 %s ms, p99 %s ms, max %s ms | p99 < 100 ms |\n' "$p50" "$p99" "$max"
    printf '| CPU per check | %s µs (%s CPU s in all) | |\n' \
        "$(awk -v c="$cpu_s" -v n="$checks" 'BEGIN { if (n > 0) printf "%.0f", c * 1e6 / n; else print "n/a" }')" "$cpu_s"
    printf '| SIGTERM to exit | %s s, exit %s | <= 1 s, 0 |\n' "$stop_s" "$code"
    rm -f "$work/watch.out" "$work/late"
    rm -rf "$work/wmetrics"
}
