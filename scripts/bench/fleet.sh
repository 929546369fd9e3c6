# shellcheck shell=bash disable=SC2154
# fleet: 10 hosts x 1,000 services through a 3-node JetStream cluster (replicas=3) into the
# hub's notify, beside the same records through a local pipe. Sourced by scripts/bench.sh.
# Needs nats-server (scripts/install-peers.sh puts it in /usr/local/bin).
#
# Each host is `recover --publish`, passing its records on as a host's tool does; the hub is
# `notify --quorum 2`. The local pipe runs the same tools with a pipe where NATS was.

fleet_pids=()

fleet_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# fleet_elapsed T0: seconds since T0 (date +%s.%N).
fleet_elapsed() {
    awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'
}

# The servers and the resident hub this section started: stopped, and waited for.
fleet_stop() {
    local p
    for p in "${fleet_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${fleet_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    fleet_pids=()
}

# fleet_settled MON STREAM [CONSUMER]: wait (up to 30 s) until the server with monitoring port
# MON sees the stream (or its consumer) with a leader and every replica current.
# shellcheck disable=SC2016 # $s and $c are jq's variables
fleet_settled() {
    local q='[.account_details[]?.stream_detail[]? | select(.name == $s)]'
    [ $# -lt 3 ] || q='[.account_details[]?.stream_detail[]? | select(.name == $s) | .consumer_detail[]? | select(.name == $c)]'
    for _ in $(seq 1 300); do
        if curl -sf "http://127.0.0.1:$1/jsz?streams=true&consumers=true" | jq -e --arg s "$2" --arg c "${3:-}" \
            "$q | map(select(.cluster.leader != null and ((.cluster.replicas // []) | all(.current)))) | length > 0" >/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# fleet_handled HOME: the (service, host) pairs notify's quorum state holds.
fleet_handled() {
    jq '[.[] | length] | add // 0' "$1/state/notify-quorum.json" 2>/dev/null || echo 0
}

bench_fleet() {
    heading "fleet: 10 hosts x 1,000 services into the hub's notify, replicas=3, beside a local pipe"
    local server=/usr/local/bin/nats-server
    [ -x "$server" ] || server=$(command -v nats-server || true)
    if [ -z "$server" ]; then
        echo "fleet: nats-server not found (scripts/install-peers.sh installs it); skipped"
        return
    fi
    on_exit+=(fleet_stop)
    local hosts=10 per=1000 total=10000 lag_per=300 lag_rate=100 now=2026-12-06T07:01:00Z i
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
        fleet_pids+=("$!")
    done
    local ready=0
    for _ in $(seq 1 300); do
        ready=0
        for i in 0 1 2; do
            if curl -sf "http://127.0.0.1:${mons[i]}/healthz" >/dev/null; then ready=$((ready + 1)); fi
        done
        [ "$ready" -lt 3 ] || break
        sleep 0.1
    done
    if [ "$ready" -lt 3 ]; then
        echo "fleet: the 3-node cluster did not become ready within 30 s; skipped"
        fleet_stop
        return
    fi
    local servers="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"
    local url="nats://$servers/pitcrew.checks"
    for i in $(seq 1 "$hosts"); do
        python3 scripts/bench/fleet_gen.py "h$i" "$per" >"$work/fleet-h$i.ndjson"
    done

    # Throughput. The local pipe: the 10 hosts' recover into one notify.
    local t0 local_wall pub hubread fleet_wall
    t0=$(date +%s.%N)
    (for i in $(seq 1 "$hosts"); do
        AGENT_OPS_HOME="$work/pipe-host$i" "$bin/recover" --host "h$i" --line-buffered "$work/fleet-h$i.ndjson" 2>/dev/null &
    done; wait) | AGENT_OPS_HOME="$work/pipe-hub" "$bin/notify" --host hub --quorum 2 --now "$now" >/dev/null 2>"$work/pipe-hub.err" || true
    local_wall=$(fleet_elapsed "$t0")
    # The fleet: the stream is made beforehand and settled, as in a fleet that runs (a host
    # that publishes nothing makes it). Then the 10 hosts publish at once (each line
    # acknowledged by the stream, stored on 2 of 3 servers), then the hub's notify reads them
    # all from its durable consumer.
    AGENT_OPS_HOME="$work/fleet-host0" "$bin/recover" --publish "$url?replicas=3" - </dev/null >/dev/null 2>&1 || true
    fleet_settled "${mons[0]}" PITCREW_CHECKS || echo "fleet: the stream did not settle within 30 s"
    local -a pubs=()
    t0=$(date +%s.%N)
    for i in $(seq 1 "$hosts"); do
        AGENT_OPS_HOME="$work/fleet-host$i" "$bin/recover" --host "h$i" --publish "$url?replicas=3" \
            "$work/fleet-h$i.ndjson" >/dev/null 2>"$work/fleet-pub$i.err" &
        pubs+=("$!")
    done
    for i in "${pubs[@]}"; do wait "$i" || true; done
    pub=$(fleet_elapsed "$t0")
    local t1
    t1=$(date +%s.%N)
    AGENT_OPS_HOME="$work/fleet-hub" "$bin/notify" --host hub --quorum 2 --now "$now" "$url?durable=hub" \
        >/dev/null 2>"$work/fleet-hub.err" || true
    hubread=$(fleet_elapsed "$t1")
    fleet_wall=$(fleet_elapsed "$t0")
    local handled_pipe handled_fleet outboxed
    handled_pipe=$(fleet_handled "$work/pipe-hub")
    handled_fleet=$(fleet_handled "$work/fleet-hub")

    # Lag: 10 hosts at 100 records/s each, a kind notify passes on at once, so the moment
    # notify --follow has handled each record shows on its stdout. The local pipe: each host's
    # recover --follow into one notify --follow.
    local lag_pipe lag_fleet
    lag_pipe=$( (for i in $(seq 1 "$hosts"); do
        python3 scripts/bench/fleet_gen.py "h$i" "$lag_per" "$lag_rate" bench \
            | AGENT_OPS_HOME="$work/lagpipe-host$i" "$bin/recover" --host "h$i" --follow --line-buffered - 2>/dev/null &
    done; wait) | AGENT_OPS_HOME="$work/lagpipe-hub" "$bin/notify" --host hub --follow --line-buffered - 2>/dev/null \
        | python3 scripts/bench/fleet_lag.py $((hosts * lag_per)))
    # The fleet: the hub's notify --follow reads its durable consumer, made beforehand by a
    # batch run (which finds nothing) and settled (a leader, every replica current), as a hub
    # that has been running has it.
    local lagurl="nats://$servers/pitcrew.lag"
    AGENT_OPS_HOME="$work/lag-hub" "$bin/notify" --host hub "$lagurl?durable=lag&replicas=3" >/dev/null 2>&1 || true
    fleet_settled "${mons[0]}" PITCREW_LAG lag || echo "fleet: the consumer did not settle within 30 s"
    mkfifo "$work/lag.fifo"
    timeout 120 python3 scripts/bench/fleet_lag.py $((hosts * lag_per)) <"$work/lag.fifo" >"$work/lag-fleet" &
    local lagpid=$!
    AGENT_OPS_HOME="$work/lag-hub" "$bin/notify" --host hub --follow --line-buffered "$lagurl?durable=lag&replicas=3" \
        >"$work/lag.fifo" 2>"$work/lag-hub.err" &
    fleet_pids+=("$!")
    pubs=()
    for i in $(seq 1 "$hosts"); do
        python3 scripts/bench/fleet_gen.py "h$i" "$lag_per" "$lag_rate" bench \
            | AGENT_OPS_HOME="$work/lag-host$i" "$bin/recover" --host "h$i" --follow --line-buffered \
                --publish "$lagurl?replicas=3" - >/dev/null 2>"$work/lag-pub$i.err" &
        pubs+=("$!")
    done
    wait "$lagpid" || true
    for i in "${pubs[@]}"; do wait "$i" || true; done
    lag_fleet=$(cat "$work/lag-fleet")
    fleet_stop
    [ -n "$lag_fleet" ] || lag_fleet="- - 0"
    outboxed=$(find "$work" -path '*/state/publish/*.jsonl' -exec cat {} + | wc -l)

    local lp50 lp99 ln fp50 fp99 fn
    read -r lp50 lp99 ln <<<"$lag_pipe"
    read -r fp50 fp99 fn <<<"$lag_fleet"
    printf '| figure | local pipe (baseline) | fleet: 3 servers, replicas=3 | ratio |\n|---|---|---|---|\n'
    printf '| 10 x 1,000 records into notify --quorum 2 | %ss, %s rec/s | %ss end to end (publish %ss, hub read %ss), %s rec/s | %sx the records per second |\n' \
        "$local_wall" "$(awk -v w="$local_wall" -v n="$total" 'BEGIN { printf "%.0f", n / w }')" \
        "$fleet_wall" "$pub" "$hubread" "$(awk -v w="$fleet_wall" -v n="$total" 'BEGIN { printf "%.0f", n / w }')" \
        "$(ratio "$local_wall" "$fleet_wall")"
    printf '| lag p50 / p99, 10 hosts x %s rec/s, publication to notify --follow | %s / %s ms | %s / %s ms | %sx at p99 |\n' \
        "$lag_rate" "$lp50" "$lp99" "$fp50" "$fp99" "$(ratio "$fp99" "$lp99")"
    printf '\nrecords notify handled (service, host): %s local, %s fleet, of %s; lag samples: %s local, %s fleet, of %s; lines left in outboxes: %s\n' \
        "$handled_pipe" "$handled_fleet" "$total" "$ln" "$fn" $((hosts * lag_per)) "$outboxed"
}
