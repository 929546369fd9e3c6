# shellcheck shell=bash disable=SC2154
# soak: the resident pipeline (pitcrew-watch) for SOAK_SECONDS (default 3600) over SOAK_SERVICES
# (default 10) loopback web servers checked every second, while a chaos loop kills one at
# random every few seconds (never the same one within 30 s). What must hold: every kill is
# followed by exactly one restart (no double restart), a firing and a resolved alert for that
# service at the webhook (no lost alert), and each stage's memory after the first minute grows
# by less than 5 MiB. Sourced by scripts/reliability.sh.

# "SECONDS STAGE RSS_KIB FDS" for each stage of the pipeline of HOME (told apart from other
# pitcrew processes by the AGENT_OPS_HOME in their environment).
soak_sample() {
    local home=$1 t=$2 stage p
    for stage in probe recover notify; do
        for p in $(pgrep -x "$stage" || true); do
            if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qxF "AGENT_OPS_HOME=$home"; then
                echo "$t $stage $(awk '/VmRSS/ {print $2}' "/proc/$p/status") $(find "/proc/$p/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)"
            fi
        done
    done
}

reliability_soak() {
    local seconds="${SOAK_SECONDS:-3600}" n="${SOAK_SERVICES:-10}"
    local dir="$work/soak" home="$work/soak/home"
    heading "soak: pitcrew-watch for ${seconds} s, ${n} services at a 1 s interval, killed at random"
    mkdir -p "$home/config" "$dir/www"
    echo ok >"$dir/www/index.html"

    # The webhook: every alert it receives, one JSON line each.
    python3 scripts/reliability/hook.py "$dir/alerts.ndjson" >"$dir/hook.port" &
    pids+=("$!")
    local i
    for i in $(seq 50); do [ -s "$dir/hook.port" ] && break; sleep 0.1; done
    local hook_port
    hook_port=$(cat "$dir/hook.port")

    # The services: each a python web server started by its own script (the restart command).
    local ports=() services=""
    for i in $(seq "$n"); do
        local port
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        ports+=("$port")
        cat >"$dir/start-$i.sh" <<EOF
#!/usr/bin/env bash
python3 -m http.server $port --bind 127.0.0.1 --directory '$dir/www' >/dev/null 2>&1 &
echo \$! >'$dir/svc-$i.pid'
for _ in \$(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && exit 0; sleep 0.05; done
exit 1
EOF
        chmod +x "$dir/start-$i.sh"
        "$dir/start-$i.sh"
        services+="${services:+,}{\"name\":\"svc$i\",\"type\":\"port\",\"port\":$port,\"timeout_seconds\":2,\"restart_command\":\"$dir/start-$i.sh\",\"restart_cooldown_seconds\":5,\"max_restart_attempts\":100000,\"flap_restarts\":100000,\"verify_delay_seconds\":0.5}"
    done
    cat >"$home/config/services.json" <<EOF
{"interval_seconds": 1, "disk_check": false,
 "alerting": {"webhook_url": "http://127.0.0.1:$hook_port/hook", "rate_limit_seconds": 0,
              "group_wait_seconds": 2, "group_interval_seconds": 5, "repeat_interval_seconds": 86400},
 "services": [$services]}
EOF

    AGENT_OPS_HOME="$home" PITCREW_BIN="$bin" PITCREW_WATCH_HEARTBEATS=0 scripts/watch.sh &
    local watch=$!
    pids+=("$watch")

    # Chaos: kill a random service every 2 to 8 s, none twice within 30 s.
    local start now end=$((SECONDS + seconds)) kills=0
    start=$SECONDS
    declare -A last_kill=()
    : >"$dir/kills"
    : >"$dir/rss"
    local next_sample=$((SECONDS + 60))
    sleep 5
    while [ "$SECONDS" -lt "$end" ]; do
        i=$((RANDOM % n + 1))
        now=$SECONDS
        if [ $((now - ${last_kill[$i]:-0})) -ge 30 ] && [ $((end - now)) -gt 30 ] && [ -s "$dir/svc-$i.pid" ]; then
            kill -9 "$(cat "$dir/svc-$i.pid")" 2>/dev/null || true
            last_kill[$i]=$now
            echo "svc$i $(date -u +%s)" >>"$dir/kills"
            kills=$((kills + 1))
        fi
        if [ "$SECONDS" -ge "$next_sample" ]; then
            soak_sample "$home" "$((SECONDS - start))" >>"$dir/rss"
            next_sample=$((SECONDS + 60))
        fi
        sleep $((2 + RANDOM % 7))
    done
    sleep 25 # the last kills' restarts and alerts
    kill -TERM "$watch"
    local code=0
    wait "$watch" || code=$?

    python3 - "$dir" "$home" "$code" <<'EOF'
import collections, glob, json, sys
d, home, code = sys.argv[1], sys.argv[2], int(sys.argv[3])
kills = collections.Counter(l.split()[0] for l in open(f"{d}/kills"))
restarts = collections.Counter()
for f in glob.glob(f"{home}/state/restarts/*.jsonl"):
    for l in open(f):
        r = json.loads(l)
        if r.get("outcome") in ("recovered", "failed"):
            restarts[r["name"]] += 1
alerts = [json.loads(l) for l in open(f"{d}/alerts.ndjson")] if glob.glob(f"{d}/alerts.ndjson") else []
firing = collections.Counter(a["subject"].split(":", 1)[1] for a in alerts if a.get("subject", "").startswith("check:") and a.get("status") == "firing")
resolved = collections.Counter(a["subject"].split(":", 1)[1] for a in alerts if a.get("subject", "").startswith("check:") and a.get("status") == "resolved")
rss = collections.defaultdict(list)
for l in open(f"{d}/rss"):
    t, stage, kb, fds = l.split()
    rss[stage].append((int(t), int(kb), int(fds)))
print("| figure | value | held |")
print("|---|---|---|")
ok = code == 0
print(f"| pitcrew-watch at SIGTERM | exit {code} | {'yes' if code == 0 else 'NO'} |")
names = sorted(set(kills) | set(restarts))
double = [n for n in names if restarts[n] != kills[n]]
print(f"| kills / restarts | {sum(kills.values())} / {sum(restarts.values())} | {'yes' if not double else 'NO: ' + ', '.join(f'{n} {kills[n]}/{restarts[n]}' for n in double)} |")
lost = [n for n in kills if firing[n] < kills[n] or resolved[n] < kills[n]]
print(f"| firing / resolved alerts at the webhook | {sum(firing.values())} / {sum(resolved.values())} | {'yes' if not lost else 'NO: ' + ', '.join(f'{n} kills {kills[n]} firing {firing[n]} resolved {resolved[n]}' for n in lost)} |")
ok = ok and not double and not lost
for stage, xs in sorted(rss.items()):
    first, last = xs[0], xs[-1]
    grew = (last[1] - first[1]) / 1024
    held = grew < 5
    ok = ok and held
    print(f"| {stage}: RSS at {first[0]} s / at {last[0]} s; descriptors | {first[1]/1024:.1f} / {last[1]/1024:.1f} MiB; {first[2]} / {last[2]} | {'yes' if held else 'NO'} |")
sys.exit(0 if ok else 1)
EOF
    local held=$?
    for i in $(seq "$n"); do
        if [ -s "$dir/svc-$i.pid" ]; then kill -9 "$(cat "$dir/svc-$i.pid")" 2>/dev/null || true; fi
    done
    return "$held"
}
