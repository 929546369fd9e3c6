#!/usr/bin/env bash
# pitcrew's main job on the shipped example, end to end, in a private home:
#
#   1. start the example services on loopback (a web site on 127.0.0.1:18080 and a worker);
#   2. set up a home from examples/: services.json, the agent registry (and the agents'
#      directories), a mission cell made with cellscan, a task on the board, this month's ticks;
#   3. run the orchestrator: everything is healthy;
#   4. kill the example site and run the orchestrator again: probe sees it down, recover
#      restarts it and verifies it, notify announces the outage and the recovery;
#   5. show the uptime report and where the status page is.
#
# KEEP=1 keeps the home afterwards (the path is printed). Exit 0 when the final run is healthy.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
cargo build --release --quiet --bins
export PITCREW_BIN="$root/target/release"
PATH="$PITCREW_BIN:$PATH"

base=$(mktemp -d "${TMPDIR:-/tmp}/pitcrew-demo.XXXXXX")
export AGENT_OPS_HOME="$base/home"
export AGENT_OPS_MISSIONS="$AGENT_OPS_HOME/missions"
# The registry's agents live under ~/agents: give the demo a home of its own for them.
export HOME="$base/user"
cleanup() {
    pkill -f 'http.server 18080 --bind 127.0.0.1' 2>/dev/null || true
    pkill -f 'pitcrew-example-worker' 2>/dev/null || true
    if [ -n "${KEEP:-}" ]; then
        echo "demo home kept in $base"
    else
        rm -rf "$base"
    fi
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Starting the example services on loopback"
examples/demo/start-site.sh
examples/demo/start-worker.sh
echo "example site on http://127.0.0.1:18080/, worker 'pitcrew-example-worker' running"

step "Setting up a home in $AGENT_OPS_HOME"
examples/demo/setup-home.sh
board list --format text

step "Run 1: the orchestrator, everything healthy"
status=0
scripts/orchestrator.sh || status=$?
echo "orchestrator exit status: $status"
probe --format text --no-metrics || true

step "Breaking the example site (kill it)"
pkill -f 'http.server 18080 --bind 127.0.0.1'
sleep 0.5
echo "site stopped"

step "Run 2: probe sees it down, recover restarts it, notify tells people"
status=0
scripts/orchestrator.sh || status=$?
echo "orchestrator exit status: $status"
echo "-- what probe saw:"
jq -r 'select(.kind == "check") | "\(.name): \(.status) - \(.detail)"' "$AGENT_OPS_HOME/logs/last-probe.ndjson"
echo "-- what recover did:"
jq -r 'select(.kind == "recovery") | "\(.name): \(.outcome) (attempt \(.attempt)/\(.max_attempts), verified: \(.verified)) - \(.detail)"' \
    "$AGENT_OPS_HOME/logs/last-recover.ndjson"
echo "-- what notify raised (no sink is configured here, so the alerts are records in the pipe):"
jq -r 'select(.kind == "alert") | "[\(.level)] \(.title): \(.message | split("\n")[0])\(if .suppressed then " (held: \(.suppressed))" else "" end)"' \
    "$AGENT_OPS_HOME/logs/last-health.ndjson"

step "Run 3: healthy again"
status=0
scripts/orchestrator.sh || status=$?
echo "orchestrator exit status: $status"
tail -n 8 "$AGENT_OPS_HOME/logs/orchestrator.log"

step "Uptime so far"
rollup --days 1 --format text
rollup --days 1 --format html --output "$AGENT_OPS_HOME/status.html"
echo "status page: $AGENT_OPS_HOME/status.html (KEEP=1 to keep it)"
exit "$status"
