# shellcheck shell=bash disable=SC2154
# The timeline of an outage under the resident pipeline as shipped (pitcrew-watch): a loopback
# web server with a restart command, checked every second, is killed TIMELINE_ROUNDS times
# (default 5); each round reads when probe saw it down (the metrics), when recover began the
# restart and verified it (the restart history), and when the recovery reached a webhook (the
# webhook's clock), and reports the medians beside the bound interval + timeout + settle +
# restart + verify + group_wait. Sourced by scripts/bench.sh.

# How many resolved alerts the webhook's log holds.
timeline_resolved() {
    if [ -f "$1" ]; then grep -c '"resolved"' "$1" || true; else echo 0; fi
}

bench_timeline() {
    local rounds=${TIMELINE_ROUNDS:-5} dir="$work/timeline"
    local home="$dir/home" interval=1 timeout=2 settle=2 verify=0.5 group_wait=1
    heading "resident pipeline: from a service's death to the recovery at the sink ($rounds rounds)"
    mkdir -p "$home/config" "$dir/www"
    echo ok >"$dir/www/index.html"
    python3 scripts/reliability/hook.py "$dir/hook.ndjson" >"$dir/hook.port" &
    pids+=("$!")

    for _ in $(seq 50); do [ -s "$dir/hook.port" ] && break; sleep 0.1; done
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat >"$dir/start.sh" <<EOF
#!/usr/bin/env bash
python3 -m http.server $port --bind 127.0.0.1 --directory '$dir/www' >/dev/null 2>&1 &
echo \$! >'$dir/web.pid'
for _ in \$(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && exit 0; sleep 0.05; done
exit 1
EOF
    chmod +x "$dir/start.sh"
    "$dir/start.sh"
    cat >"$home/config/services.json" <<EOF
{"interval_seconds": $interval, "disk_check": false,
 "alerting": {"webhook_url": "http://127.0.0.1:$(cat "$dir/hook.port")/hook", "rate_limit_seconds": 0,
              "group_wait_seconds": $group_wait, "group_interval_seconds": 2},
 "services": [{"name": "web", "type": "port", "port": $port, "timeout_seconds": $timeout,
               "restart_command": "$dir/start.sh", "restart_cooldown_seconds": 1,
               "max_restart_attempts": 1000, "flap_restarts": 1000, "verify_delay_seconds": $verify}]}
EOF
    AGENT_OPS_HOME="$home" PITCREW_BIN="$bin" PITCREW_WATCH_HEARTBEATS=0 scripts/watch.sh >/dev/null 2>&1 &
    local watch=$!
    pids+=("$watch")
    sleep 4
    : >"$dir/kills"

    for _ in $(seq "$rounds"); do
        local before
        before=$(timeline_resolved "$dir/hook.ndjson")
        python3 -c 'import time; print(time.time())' >>"$dir/kills"
        kill -9 "$(cat "$dir/web.pid")"
        for _ in $(seq 300); do
            [ "$(timeline_resolved "$dir/hook.ndjson")" -gt "$before" ] && break
            sleep 0.1
        done
        sleep 3
    done
    kill -TERM "$watch"
    wait "$watch" || true
    python3 - "$dir" "$home" "$interval" "$timeout" "$settle" "$verify" "$group_wait" <<'EOF'
import datetime, glob, json, statistics, sys
d, home = sys.argv[1], sys.argv[2]
interval, timeout, settle, verify, group_wait = map(float, sys.argv[3:])
def ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
kills = [float(l) for l in open(f"{d}/kills")]
checks = []
for f in glob.glob(f"{home}/metrics/*.jsonl"):
    for l in open(f):
        c = json.loads(l)
        if c.get("name") == "web":
            checks.append((ts(c["timestamp"]), c.get("status")))
restarts = []
for f in glob.glob(f"{home}/state/restarts/*.jsonl"):
    for l in open(f):
        r = json.loads(l)
        if r.get("name") == "web":
            restarts.append((ts(r["started"]), ts(r["timestamp"]), r.get("outcome")))
told = [json.loads(l) for l in open(f"{d}/hook.ndjson")]
resolved = sorted(a["received_at"] for a in told if a["subject"] == "check:web" and a["status"] == "resolved")
rows = {"seen": [], "began": [], "verified": [], "told": []}
for k in kills:
    seen = min((t for t, s in checks if t >= k and s == "down"), default=None)
    r = min((x for x in restarts if x[0] >= k), default=None)
    t = min((x for x in resolved if x >= k), default=None)
    if None in (seen, r, t):
        continue
    rows["seen"].append(seen - k); rows["began"].append(r[0] - k)
    rows["verified"].append(r[1] - k); rows["told"].append(t - k)
n = len(rows["told"])
med = {k: statistics.median(v) for k, v in rows.items() if v}
restart = (med["verified"] - med["began"] - verify) if n else 0
bound = interval + timeout + settle + max(restart, 0) + verify + group_wait
print(f"| moment (median of {n} of {len(kills)} rounds) | after the kill | bound |")
print("|---|---|---|")
if n:
    print(f"| seen down by probe --watch | {med['seen']:.2f} s | interval + timeout = {interval + timeout:.1f} s |")
    print(f"| restart begins (after the settle) | {med['began']:.2f} s | + settle = {interval + timeout + settle:.1f} s |")
    print(f"| verified up | {med['verified']:.2f} s | + restart ({restart:.2f} s) + verify = {interval + timeout + settle + restart + verify:.2f} s |")
    print(f"| recovery at the webhook | {med['told']:.2f} s = {med['told'] / bound:.2f}x the bound | + group_wait = {bound:.2f} s |")
EOF
    [ -s "$dir/web.pid" ] && kill -9 "$(cat "$dir/web.pid")" 2>/dev/null
    return 0
}
