# shellcheck shell=bash disable=SC2154
# Sourced by scripts/integration.sh: needs $work, $bin, $root, $plugins, rec, fail, section.

section "monitoring-plugins run through probe's command check"
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$root/examples/site" >"$work/http.log" 2>&1 &
pids+=($!)
port=""
for _ in $(seq 1 50); do
    port=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$work/http.log" | head -1)
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || fail "test web server did not start"
cat > "$work/plugins.json" <<JSON
{"disk_check": false, "services": [
  {"name": "tcp", "type": "command", "command": ["$plugins/check_tcp", "-H", "127.0.0.1", "-p", "$port"]},
  {"name": "http", "type": "command", "command": ["$plugins/check_http", "-H", "127.0.0.1", "-p", "$port", "-u", "/health.json", "-s", "ok"]},
  {"name": "disk", "type": "command", "command": ["$plugins/check_disk", "-w", "1%", "-c", "0%", "-p", "/"]},
  {"name": "tcp-closed", "type": "command", "command": ["$plugins/check_tcp", "-H", "127.0.0.1", "-p", "1"]}
]}
JSON
"$bin/probe" --config "$work/plugins.json" --no-metrics > "$work/plugins.ndjson" || true

section "jq parses every tool's output"
jq -e -s 'length == 4 and all(.[]; .kind == "check")' "$work/plugins.ndjson" >/dev/null || fail "probe output"
