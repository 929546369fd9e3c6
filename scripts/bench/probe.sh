# shellcheck shell=bash disable=SC2154
# probe: mixed services on loopback at 1,000 to 100,000, beside blackbox_exporter, and
# start-up time. Sourced by scripts/bench.sh.
#
# The targets come from pitcrew-bench-fixture (scripts/bench/fixture.rs): one thread serving
# every listener, so the fixture is not what is measured. A tenth of the services are urls to
# listeners that accept and never answer; every other target answers at once, so any of them
# reported down is a false failure (a false timeout when its detail says it timed out).

# One probe run over FILE at CONCURRENCY: "wall rss_mib cpu_s hang_down healthy_down false_timeouts".
probe_run() {
    local file=$1 conc=$2 out="$work/out.ndjson"
    /usr/bin/time -f '%e %M %U %S' -o "$work/time" \
        "$bin/probe" --services "$file" --no-metrics --concurrency "$conc" >"$out" 2>/dev/null || true
    local wall rss user sys
    read -r wall rss user sys < <(tail -1 "$work/time")
    jq -rs --arg wall "$wall" --arg rss "$rss" --arg cpu "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" '
        [.[] | select(.kind == "check")] as $c
        | ($c | map(select(.name | startswith("hang-")))) as $hang
        | ($c | map(select((.name | startswith("hang-")) | not))) as $healthy
        | [$wall, ($rss | tonumber / 1024 | floor), $cpu,
           ($hang | map(select(.status == "down")) | length),
           ($healthy | map(select(.status != "up")) | length),
           ($healthy | map(select(.detail | test("within|timed out"))) | length)]
        | map(tostring) | join(" ")' "$out"
}

bench_probe() {
    heading "probe: mixed services on loopback (10% never answer, timeout 2 s)"
    ulimit -n "$(ulimit -Hn)"
    coproc PEERS { "$bin/pitcrew-bench-fixture" --http 16 --hole 8 --tcp 16 2>"$work/fixture.err"; }
    pids+=("$PEERS_PID")
    local ports timeout=2
    read -r ports <&"${PEERS[0]}"
    printf 'open-files limit %s, %s cores\n\n' "$(ulimit -n)" "$(nproc)"
    printf '| services | --concurrency | wall | x the timeout | peak RSS | CPU | checks/s per core | never-answering down | healthy not up | false timeouts | target |\n'
    printf '|---|---|---|---|---|---|---|---|---|---|---|\n'
    local n conc target wall rss cpu hang healthy false
    for n in 1000 10000 50000 100000; do
        python3 scripts/bench/probe_services.py "$n" "$ports" "$timeout" > "$work/s$n.ndjson"
        case $n in
            1000) conc=256; target="<= 1.15x" ;;
            10000) conc=4096; target="<= 1.3x, <= 128 MiB, 0 false" ;;
            *) conc=16384; target="(scale curve)" ;;
        esac
        # Warm up (page cache, first TLS configuration) once.
        [ "$n" != 1000 ] || "$bin/probe" --services "$work/s$n.ndjson" --no-metrics >/dev/null 2>&1 || true
        read -r wall rss cpu hang healthy false < <(probe_run "$work/s$n.ndjson" "$conc")
        printf '| %s | %s | %ss | %sx | %s MiB | %ss | %s | %s of %s | %s | %s | %s |\n' "$n" "$conc" "$wall" \
            "$(ratio "$wall" "$timeout")" "$rss" "$cpu" \
            "$(awk -v n="$n" -v w="$wall" -v c="$(nproc)" 'BEGIN { if (w > 0) printf "%.0f", n / w / c; else print "n/a" }')" \
            "$hang" "$((n / 10))" "$healthy" "$false" "$target"
    done

    if command -v prometheus-blackbox-exporter >/dev/null; then
        bench_blackbox "$ports" "$timeout"
    else
        printf '\nblackbox_exporter: not installed (apt-get install prometheus-blackbox-exporter)\n'
    fi
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

# The same network services (url and port; blackbox_exporter has no process or disk probe)
# through probe and through blackbox_exporter's /probe endpoint, at the same concurrency.
bench_blackbox() {
    local ports=$1 timeout=$2
    heading "probe beside blackbox_exporter (url and port only, same targets, same concurrency)"
    cat > "$work/blackbox.yml" <<YML
modules:
  http_2xx: {prober: http, timeout: ${timeout}s, http: {preferred_ip_protocol: ip4}}
  tcp_connect: {prober: tcp, timeout: ${timeout}s, tcp: {preferred_ip_protocol: ip4}}
YML
    local bport
    bport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    prometheus-blackbox-exporter --config.file="$work/blackbox.yml" --web.listen-address="127.0.0.1:$bport" \
        --log.level=error >/dev/null 2>&1 &
    local bpid=$!
    pids+=("$bpid")
    local up=0
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$bport/metrics" >/dev/null 2>&1 && { up=1; break; }
        sleep 0.05
    done
    if [ "$up" = 0 ]; then
        printf 'blackbox_exporter did not come up on port %s within 5 s\n' "$bport"
        kill "$bpid" 2>/dev/null || true
        return 0
    fi
    printf '| services | concurrency | probe wall | blackbox wall | wall ratio | probe CPU | blackbox CPU | CPU ratio | probe peak RSS | blackbox peak RSS | healthy failed (probe / blackbox) |\n'
    printf '|---|---|---|---|---|---|---|---|---|---|---|\n'
    local n conc wall rss cpu hang healthy false b bwall bcpu brss bfail ticks t0 t1
    ticks=$(getconf CLK_TCK)
    for n in 1000 10000; do
        conc=$([ "$n" = 1000 ] && echo 256 || echo 4096)
        python3 scripts/bench/probe_services.py "$n" "$ports" "$timeout" network > "$work/n$n.ndjson"
        read -r wall rss cpu hang healthy false < <(probe_run "$work/n$n.ndjson" "$conc")
        t0=$(awk '{ print $14 + $15 }' "/proc/$bpid/stat")
        b=$(python3 scripts/bench/blackbox_drive.py "$bport" "$work/n$n.ndjson" "$conc")
        t1=$(awk '{ print $14 + $15 }' "/proc/$bpid/stat")
        bwall=$(jq -r .wall <<<"$b")
        bfail=$(jq -r .healthy_failed <<<"$b")
        bcpu=$(awk -v a="$t0" -v b="$t1" -v t="$ticks" 'BEGIN { printf "%.2f", (b - a) / t }')
        brss=$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$bpid/status")
        printf '| %s | %s | %ss | %ss | %sx | %ss | %ss | %sx | %s MiB | %s MiB | %s / %s |\n' "$n" "$conc" "$wall" "$bwall" \
            "$(ratio "$wall" "$bwall")" "$cpu" "$bcpu" "$(ratio "$cpu" "$bcpu")" "$rss" "$brss" "$healthy" "$bfail"
    done
    kill "$bpid" 2>/dev/null || true
}
