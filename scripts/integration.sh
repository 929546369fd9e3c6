#!/usr/bin/env bash
# pitcrew against the real programs people use, from Debian's packages. Each section says
# what it proves; the first failure stops the run with its name.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

need=(jq shellcheck)
plugins=/usr/lib/nagios/plugins
missing=0
for c in "${need[@]}"; do command -v "$c" >/dev/null || missing=1; done
[ -x "$plugins/check_tcp" ] || missing=1
if [ "$missing" -ne 0 ]; then
    scripts/install-peers.sh
fi

cargo build --release --quiet --bins
bin="$root/target/release"
work=$(mktemp -d "${TMPDIR:-/tmp}/pitcrew-integration.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
export AGENT_OPS_HOME="$work/home"

section() { printf '== %s\n' "$*"; }
# rec FILE NAME FILTER: the record named NAME in the NDJSON FILE satisfies the jq FILTER.
rec() { jq -e -s --arg n "$2" "map(select(.name == \$n))[0] | $3" "$1" >/dev/null; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

section "shellcheck passes every script"
mapfile -t scripts < <(git ls-files '*.sh' 'examples/checks/*' | sort -u)
shellcheck -x "${scripts[@]}"

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

echo "integration: all passed"
