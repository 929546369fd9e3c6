# shellcheck shell=bash disable=SC2154
# Crash safety: tickmon serve, notify (outbox), board, recover (ledger) and rollup
# compact/prune killed with SIGKILL at random moments, CRASH_ROUNDS times each; after every
# kill every file must read, and at the end nothing acknowledged may be missing.
# CRASH_PARTS picks some of them (default: "tickmon notify board recover rollup").

# A random delay in seconds between $1 and $2 (milliseconds).
rand_s() { awk -v a="$1" -v b="$2" -v r="$RANDOM" 'BEGIN {printf "%.3f", (a + (b - a) * r / 32767) / 1000}'; }

reliability_crash() {
    local rounds=${CRASH_ROUNDS:-50} r
    local parts=" ${CRASH_PARTS:-tickmon notify board recover rollup} "
    command -v wrk >/dev/null || scripts/install-peers.sh
    . scripts/bench/tickmon.sh

    if [[ $parts == *" tickmon "* ]]; then
        heading "tickmon serve: kill -9 under 8 connections of heartbeats, $rounds rounds"
        local state="$work/crash-hb.json" acked=0 inflight_max=0 out
        for r in $(seq "$rounds"); do
            tickmon_start "$state"
            wrk -t 2 -c 8 -d 4s -s scripts/bench/tickmon.lua "http://$tm_addr" -- post >"$work/wrk.out" 2>&1 &
            local wrk_pid=$!
            sleep "$(rand_s 200 3000)"
            kill -9 "$tm_pid"
            wait "$tm_pid" 2>/dev/null || true
            wait "$wrk_pid" || true
            out=$(tail -1 "$work/wrk.out")
            acked=$((acked + $(jq '.requests - .non2xx' <<<"$out")))
            inflight_max=$((inflight_max + 8))
            "$bin/tickmon" heartbeats --state "$state" >/dev/null 2>&1 || [ $? -eq 1 ] \
                || fail "tickmon state unreadable after kill $r"
        done
        local kept
        kept=$("$bin/tickmon" heartbeats --state "$state" | jq -s 'map(.heartbeats) | add // 0')
        printf '| figure | value |\n|---|---|\n'
        printf '| rounds (server killed with SIGKILL mid-load) | %s |\n' "$rounds"
        printf '| heartbeats acknowledged (HTTP 200) | %s |\n' "$acked"
        printf '| heartbeats in the state after the last kill | %s (at most %s more: answers cut by the kill) |\n' \
            "$kept" "$inflight_max"
        [ "$kept" -ge "$acked" ] || fail "tickmon lost $((acked - kept)) acknowledged heartbeats"
        [ "$kept" -le $((acked + inflight_max)) ] || fail "tickmon counted heartbeats twice"
    fi

    if [[ $parts == *" notify "* ]]; then
        heading "notify: kill -9 while delivering the outbox to a slow sink, $rounds rounds"
        # Each round queues two alerts while the sink is unreachable (down.json), then runs
        # notify against the slow sink (up.json) and kills it at a random moment: before it
        # reads the outbox, while the sink holds the request, or while it rewrites the outbox.
        local home="$work/crash-notify" i
        mkdir -p "$home"
        printf '{"services":[],"alerting":{"webhook_url":"http://127.0.0.1:9/x","timeout_seconds":5}}\n' \
            >"$home/down.json"
        coproc SINK { exec python3 scripts/reliability/sink.py 0.2 "$work/sink.log"; }
        pids+=("$SINK_PID")
        local port
        read -r port <&"${SINK[0]}"
        printf '{"services":[],"alerting":{"webhook_url":"http://127.0.0.1:%s/x","timeout_seconds":5}}\n' "$port" \
            >"$home/up.json"
        : >"$work/sink.log"
        local killed=0 queued=0
        for r in $(seq "$rounds"); do
            for i in 1 2; do
                AGENT_OPS_HOME="$home" "$bin/notify" --config "$home/down.json" send "incident $r.$i" \
                    --topic "t$r.$i" --level error </dev/null >/dev/null 2>&1 || true
                queued=$((queued + 1))
            done
            AGENT_OPS_HOME="$home" "$bin/notify" --config "$home/up.json" </dev/null >/dev/null 2>&1 &
            local np=$!
            sleep "$(rand_s 0 400)"
            kill -9 "$np" 2>/dev/null && killed=$((killed + 1))
            wait "$np" 2>/dev/null || true
            jq -e -s 'all(.[]; .sinks | type == "array")' "$home/state/outbox.jsonl" >/dev/null 2>&1 \
                || fail "outbox unreadable after kill $r"
        done
        AGENT_OPS_HOME="$home" "$bin/notify" --config "$home/up.json" </dev/null >/dev/null 2>&1 || true
        AGENT_OPS_HOME="$home" "$bin/notify" --config "$home/up.json" </dev/null >/dev/null 2>&1 \
            || fail "the outbox did not drain"
        local missing dup left
        missing=$(for r in $(seq "$rounds"); do for i in 1 2; do
            grep -qx "incident $r.$i" "$work/sink.log" || echo x
        done; done | wc -l)
        dup=$(sort "$work/sink.log" | uniq -d | wc -l)
        left=$(grep -c . "$home/state/outbox.jsonl" || true)
        printf '| figure | value |\n|---|---|\n'
        printf '| alerts queued while the sink was down | %s |\n' "$queued"
        printf '| delivery runs killed with SIGKILL (the others finished first) | %s of %s |\n' "$killed" "$rounds"
        printf '| queued alerts never delivered | %s |\n' "$missing"
        printf '| alerts delivered twice (the sink had them when the kill came) | %s |\n' "$dup"
        printf '| entries left in the outbox after two clean runs | %s |\n' "$left"
        [ "$missing" -eq 0 ] || fail "notify lost $missing queued alerts"
        [ "$left" -eq 0 ] || fail "the outbox kept $left entries"
        kill "$SINK_PID" 2>/dev/null || true
    fi

    if [[ $parts == *" board "* ]]; then
        heading "board: 4 writers at once, one killed with SIGKILL, $rounds rounds"
        export AGENT_OPS_HOME="$work/crash-board"
        local ids="$work/board-acked"
        : >"$ids"
        for r in $(seq "$rounds"); do
            local bp=() k
            for k in 1 2 3 4; do
                "$bin/board" add "task $r-$k" >"$work/add-$k" 2>/dev/null &
                bp+=($!)
            done
            sleep "$(rand_s 0 30)"
            kill -9 "${bp[0]}" 2>/dev/null || true
            for k in 1 2 3 4; do
                if wait "${bp[$((k - 1))]}" 2>/dev/null; then jq -r .id "$work/add-$k" >>"$ids"; fi
            done
            jq -e '.tasks | type == "array"' "$AGENT_OPS_HOME/state/board.json" >/dev/null \
                || fail "board.json unreadable after kill $r"
        done
        local lost
        lost=$(jq -r '.tasks[].id' "$AGENT_OPS_HOME/state/board.json" | sort | comm -13 - <(sort "$ids") | wc -l)
        printf '| figure | value |\n|---|---|\n'
        printf '| adds acknowledged (exit 0, id printed) | %s |\n' "$(wc -l <"$ids")"
        printf '| acknowledged tasks missing from board.json | %s |\n' "$lost"
        printf '| board.json and board.json.bak read after every kill | %s |\n' \
            "$(jq -e . "$AGENT_OPS_HOME/state/board.json.bak" >/dev/null && echo yes || echo no)"
        [ "$lost" -eq 0 ] || fail "board lost $lost acknowledged tasks"
        unset AGENT_OPS_HOME
    fi

    if [[ $parts == *" recover "* ]]; then
        heading "recover: kill -9 while the restart command runs, $rounds rounds"
        export AGENT_OPS_HOME="$work/crash-recover"
        mkdir -p "$AGENT_OPS_HOME/config"
        printf '{"services":[{"name":"api","type":"port","port":9,"verify_delay_seconds":0,"restart_command":"echo $$ >> %s; sleep 0.2","restart_cooldown_seconds":0,"max_restart_attempts":1000000}]}\n' \
            "$work/restarts" >"$AGENT_OPS_HOME/config/services.json"
        : >"$work/restarts"
        for r in $(seq "$rounds"); do
            echo '{"kind":"check","name":"api","status":"down"}' | "$bin/recover" >/dev/null 2>&1 &
            local rp=$!
            sleep "$(rand_s 0 300)"
            kill -9 "$rp" 2>/dev/null || true
            wait "$rp" 2>/dev/null || true
            [ ! -e "$AGENT_OPS_HOME/state/recovery.json" ] || jq -e .api.attempts "$AGENT_OPS_HOME/state/recovery.json" \
                >/dev/null || fail "ledger unreadable after kill $r"
        done
        sleep 0.5
        local started counted
        started=$(wc -l <"$work/restarts")
        counted=$(jq .api.attempts "$AGENT_OPS_HOME/state/recovery.json")
        printf '| figure | value |\n|---|---|\n'
        printf '| restart commands started | %s |\n' "$started"
        printf '| attempts counted in the ledger | %s |\n' "$counted"
        [ "$counted" -ge "$started" ] || fail "recover ran $started restarts but counted $counted"
        unset AGENT_OPS_HOME
    fi

    if [[ $parts == *" rollup "* ]]; then
        crash_rollup "$rounds"
    fi
}

# Ten closed days of metrics in $1, day N with 40000+N lines, and their checks per day.
rollup_days() {
    python3 - "$1" <<'PY'
import sys
d = sys.argv[1]
for day in range(10, 20):
    with open(f"{d}/2026-11-{day}.jsonl", "w") as f:
        for j in range(40000 + day):
            st = "down" if j % 7 == 0 else "up"
            f.write('{"timestamp":"2026-11-%dT%02d:%02d:%02dZ","name":"svc-%d","status":"%s","latency_ms":%d}\n'
                    % (day, j // 3600 % 24, j // 60 % 60, j % 60, j % 3, st, j))
PY
}

# Checks per day as rollup counts them (exit 0: every file read), as one sorted JSON object.
rollup_counts() {
    "$bin/rollup" --metrics-dir "$1" --since 2026-11-10 --until 2026-11-19 --by day --now 2026-11-20T12:00:00Z \
        | jq -S -s -c 'group_by(.day) | map({(.[0].day): (map(.total_checks) | add)}) | add // {}'
}

crash_rollup() {
    local rounds=$1 r dir="$work/crash-rollup" want got killed=0 temps=0 resumed=0 t0 t1 ms
    heading "rollup compact and prune: kill -9 at random moments, $rounds rounds each"
    mkdir -p "$dir"
    rollup_days "$dir"
    want=$(rollup_counts "$dir")
    local raw_mb
    raw_mb=$(du -sm --apparent-size "$dir" | cut -f1)
    t0=$(date +%s%N)
    "$bin/rollup" compact --metrics-dir "$dir" --now 2026-11-20T12:00:00Z >/dev/null
    t1=$(date +%s%N)
    ms=$(((t1 - t0) / 1000000))
    [ "$(rollup_counts "$dir")" = "$want" ] || fail "a clean compaction changed the checks"
    for r in $(seq "$rounds"); do
        if ! compgen -G "$dir/*.jsonl" >/dev/null; then
            rm -f "$dir"/*.jsonl.gz
            rollup_days "$dir"
        else
            resumed=$((resumed + 1))
        fi
        "$bin/rollup" compact --metrics-dir "$dir" --now 2026-11-20T12:00:00Z >/dev/null 2>&1 &
        local cp=$!
        sleep "$(rand_s 0 "$ms")"
        kill -9 "$cp" 2>/dev/null && killed=$((killed + 1))
        wait "$cp" 2>/dev/null || true
        temps=$((temps + $(find "$dir" -name '.*.tmp' | wc -l)))
        got=$(rollup_counts "$dir") || fail "rollup could not read the metrics after kill $r"
        [ "$got" = "$want" ] || fail "checks per day changed after kill $r: $got"
    done
    "$bin/rollup" compact --metrics-dir "$dir" --now 2026-11-20T12:00:00Z >/dev/null || fail "compaction after the kills"
    [ "$(rollup_counts "$dir")" = "$want" ] || fail "checks changed after the final compaction"
    local left plain
    left=$(find "$dir" -name '.*.tmp' | wc -l)
    plain=$(find "$dir" -name '*.jsonl' | wc -l)
    printf '| figure | value |\n|---|---|\n'
    printf '| metrics | 10 closed days, 400 145 lines, %s MB (%s MB gzipped) |\n' "$raw_mb" \
        "$(du -sm --apparent-size "$dir" | cut -f1)"
    printf '| one clean compaction of the 10 days | %s ms |\n' "$ms"
    printf '| compactions killed with SIGKILL (the others finished first) | %s of %s; %s started on what a killed one left |\n' \
        "$killed" "$rounds" "$resumed"
    printf '| days whose checks changed after a kill (lost, doubled or unreadable) | 0 of %s day-checks |\n' "$((rounds * 10))"
    printf '| temporary files seen after kills / left after the next run | %s / %s |\n' "$temps" "$left"
    printf '| .jsonl left beside its .gz after the next run | %s |\n' "$plain"
    [ "$left" -eq 0 ] || fail "compaction left $left temporary files"
    [ "$plain" -eq 0 ] || fail "compaction left $plain .jsonl files"

    local pruned_ok=0
    for r in $(seq "$rounds"); do
        rollup_days "$dir"
        "$bin/rollup" prune --retention-days 6 --metrics-dir "$dir" --now 2026-11-20T12:00:00Z >/dev/null 2>&1 &
        local pp=$!
        sleep "$(rand_s 0 5)"
        kill -9 "$pp" 2>/dev/null || true
        wait "$pp" 2>/dev/null || true
        got=$(rollup_counts "$dir") || fail "rollup could not read the metrics after prune kill $r"
        # Every day is whole or gone, and the days kept are all there.
        if jq -e -n --argjson w "$want" --argjson g "$got" \
            '($g | to_entries | all(.value == $w[.key])) and ([$w | keys[] | select(. >= "2026-11-15")] | all(. as $d | $g | has($d)))' \
            >/dev/null; then
            pruned_ok=$((pruned_ok + 1))
        else
            fail "prune kill $r: $got"
        fi
        rm -f "$dir"/*.jsonl "$dir"/*.jsonl.gz
    done
    printf '| prunes killed 0-5 ms in, after which every day was whole or gone and the kept days all there | %s of %s |\n' \
        "$pruned_ok" "$rounds"
}
