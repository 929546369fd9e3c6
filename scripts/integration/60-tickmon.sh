# shellcheck shell=bash disable=SC2154
# Sourced by scripts/integration.sh: needs $work, $bin, fail, section.

section "tickmon serve answers curl, its /metrics passes promtool, kill -9 loses nothing acknowledged"
command -v promtool >/dev/null || scripts/install-peers.sh
hb_state="$work/tickmon/heartbeats.json"
mkdir -p "$work/tickmon"
# The log exists before the server's shell opens it: the loop below reads it at once, and a
# missing file would end the script (set -e) before the server had said a word.
: >"$work/tickmon/err.log"
"$bin/tickmon" serve --listen 127.0.0.1:0 --state "$hb_state" >"$work/tickmon/out.ndjson" 2>"$work/tickmon/err.log" &
hb_pid=$!
pids+=("$hb_pid")
hb_addr=""
for _ in $(seq 1 100); do
    hb_addr=$(sed -n 's/.*listening on http:\/\/\([^ ]*\).*/\1/p' "$work/tickmon/err.log")
    [ -n "$hb_addr" ] && break
    sleep 0.05
done
[ -n "$hb_addr" ] || fail "tickmon serve did not start: $(cat "$work/tickmon/err.log")"
acked=0
for i in $(seq 1 50); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$hb_addr/heartbeat/curl-agent" \
        -H 'Content-Type: application/json' -d "{\"metadata\": {\"seq\": $i}}")
    [ "$code" = 200 ] && acked=$((acked + 1))
done
curl -sf -X POST "http://$hb_addr/heartbeat/flaky/fail" -d 'disk full' >/dev/null || fail "fail endpoint"
curl -sf "http://$hb_addr/agent/flaky" | jq -e '.status == "degraded" and .error_message == "disk full"' >/dev/null \
    || fail "agent state after a failure"
curl -sf "http://$hb_addr/metrics" > "$work/tickmon/metrics.prom" || fail "GET /metrics"
promtool check metrics < "$work/tickmon/metrics.prom" || fail "promtool rejects /metrics"
kill -9 "$hb_pid"
wait "$hb_pid" 2>/dev/null || true
"$bin/tickmon" heartbeats --state "$hb_state" > "$work/tickmon/state.ndjson" || true
jq -e -s --argjson n "$acked" 'map(select(.agent == "curl-agent"))[0] | .heartbeats == $n and .metadata.seq == 50' \
    "$work/tickmon/state.ndjson" >/dev/null || fail "acknowledged heartbeats lost after kill -9"
