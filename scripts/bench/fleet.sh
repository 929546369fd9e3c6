# shellcheck shell=bash disable=SC2154
# fleet: 10 hosts x 1,000 services through a 3-node JetStream cluster (replicas=3) into the
# hub's notify, beside the same records through a local pipe. Sourced by scripts/bench.sh.
# Needs nats-server (scripts/install-peers.sh puts it in /usr/local/bin).

fleet_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# fleet_elapsed T0: seconds since T0 (date +%s.%N).
fleet_elapsed() {
    awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'
}

bench_fleet() {
    heading "fleet: 10 hosts x 1,000 services into the hub's notify, replicas=3, beside a local pipe"
    local server=/usr/local/bin/nats-server
    [ -x "$server" ] || server=$(command -v nats-server || true)
    if [ -z "$server" ]; then
        echo "fleet: nats-server not found (scripts/install-peers.sh installs it); skipped"
        return
    fi
    local hosts=10 per=1000 total=10000 i
    local -a ports routes mons
    for i in 0 1 2; do
        ports[i]=$(fleet_free_port)
        routes[i]=$(fleet_free_port)
        mons[i]=$(fleet_free_port)
    done
    local routelist="nats-route://127.0.0.1:${routes[0]},nats-route://127.0.0.1:${routes[1]},nats-route://127.0.0.1:${routes[2]}"
    for i in 0 1 2; do
        "$server" -a 127.0.0.1 -p "${ports[i]}" -m "${mons[i]}" -js -sd "$work/nats$i" -n "n$i" \
            --cluster_name bench --cluster "nats://127.0.0.1:${routes[i]}" --routes "$routelist" \
            >"$work/nats$i.log" 2>&1 &
        pids+=("$!")
    done
    for _ in $(seq 1 200); do
        local ok=0
        for i in 0 1 2; do
            curl -sf "http://127.0.0.1:${mons[i]}/healthz" >/dev/null && ok=$((ok + 1))
        done
        [ "$ok" -eq 3 ] && break
        sleep 0.1
    done
    local servers="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"
    local url="nats://$servers/pitcrew.checks"
    for i in $(seq 1 "$hosts"); do
        python3 scripts/bench/fleet_gen.py "h$i" "$per" > "$work/fleet-h$i.ndjson"
    done
    local hub="$work/fleet-hub" pipe="$work/fleet-pipe" t0 pub read local_wall
    # Baseline: the same 10,000 records through a local pipe into notify.
    t0=$(date +%s.%N)
    cat "$work"/fleet-h*.ndjson | AGENT_OPS_HOME="$pipe" "$bin/notify" --host hub --quorum 2 >/dev/null
    local_wall=$(fleet_elapsed "$t0")
    # The fleet: 10 hosts publish at once (each line acknowledged by 2 of 3 servers), then the
    # hub's notify reads them all from its durable consumer.
    t0=$(date +%s.%N)
    for i in $(seq 1 "$hosts"); do
        AGENT_OPS_HOME="$work/fleet-host$i" "$bin/recover" --host "h$i" --publish "$url?replicas=3" \
            "$work/fleet-h$i.ndjson" >/dev/null 2>"$work/fleet-pub$i.err" &
    done
    wait_for_publishers() {
        local p
        for p in $(jobs -p); do
            case " ${pids[*]} " in *" $p "*) ;; *) wait "$p" || true ;; esac
        done
    }
    wait_for_publishers
    pub=$(fleet_elapsed "$t0")
    local t1
    t1=$(date +%s.%N)
    AGENT_OPS_HOME="$hub" "$bin/notify" --host hub --quorum 2 "$url?durable=hub" >"$work/fleet-hub.out"
    read=$(fleet_elapsed "$t1")
    local e2e
    e2e=$(fleet_elapsed "$t0")
    local got outboxed
    got=$(jq -s 'length' "$work/fleet-hub.out")
    outboxed=$(cat "$work"/fleet-host*/state/publish/*.jsonl 2>/dev/null | wc -l)
    # Lag: 10 hosts at 100 records/s each; the hub's recover --follow passes each record on
    # as it arrives. Beside: the same paced records through a local pipe.
    local lag_fleet lag_pipe
    lag_pipe=$( (for i in $(seq 1 "$hosts"); do python3 scripts/bench/fleet_gen.py "h$i" 300 100 & done; wait) \
        | AGENT_OPS_HOME="$work/lag-pipe" "$bin/recover" --follow --line-buffered - | python3 scripts/bench/fleet_lag.py 3000)
    AGENT_OPS_HOME="$work/lag-hub" "$bin/recover" --follow --line-buffered "nats://$servers/pitcrew.lag?durable=lag&replicas=3" \
        2>"$work/lag-hub.err" | python3 scripts/bench/fleet_lag.py 3000 >"$work/lag-fleet" &
    local lagpid=$!
    sleep 1
    for i in $(seq 1 "$hosts"); do
        python3 scripts/bench/fleet_gen.py "h$i" 300 100 | AGENT_OPS_HOME="$work/lag-host$i" \
            "$bin/recover" --host "h$i" --line-buffered --publish "nats://$servers/pitcrew.lag?replicas=3" - >/dev/null &
    done
    wait "$lagpid" || true
    lag_fleet=$(cat "$work/lag-fleet")
    wait_for_publishers
    local lp50 lp99 fp50 fp99 ln fn
    read -r lp50 lp99 ln <<<"$lag_pipe"
    read -r fp50 fp99 fn <<<"$lag_fleet"
    printf '| figure | local pipe (baseline) | fleet, 3 servers, replicas=3 | ratio |\n|---|---|---|---|\n'
    printf '| 10 x 1,000 records into notify --quorum 2 | %ss, %s rec/s | %ss end to end (publish %ss, hub read %ss), %s rec/s | %s |\n' \
        "$local_wall" "$(awk -v w="$local_wall" -v n="$total" 'BEGIN { printf "%.0f", n / w }')" \
        "$e2e" "$pub" "$read" "$(awk -v w="$e2e" -v n="$total" 'BEGIN { printf "%.0f", n / w }')" \
        "$(awk -v a="$e2e" -v b="$local_wall" 'BEGIN { printf "%.1fx the time", a / b }')"
    printf '| lag, 10 hosts x 100 rec/s, p50 / p99 | %s / %s ms | %s / %s ms | %s at p99 |\n' \
        "$lp50" "$lp99" "$fp50" "$fp99" "$(awk -v a="$fp99" -v b="$lp99" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "-" }')"
    printf '\nhub output lines: %s; records left in outboxes: %s; lag samples: %s local, %s fleet\n' \
        "$got" "$outboxed" "$ln" "$fn"
    grep -h -m1 'outbox' "$work"/fleet-pub*.err 2>/dev/null | head -3 || true
}
