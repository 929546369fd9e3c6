#!/usr/bin/env bash
# Set up a pitcrew home from examples/ for the demo and the README's examples:
# services.json (paths made absolute), the agent registry and the agents' directories under
# $HOME/agents, this month's ticks, a mission cell made with cellscan, a task on the board.
# Needs AGENT_OPS_HOME and the binaries on PATH; the example services should be running.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
: "${AGENT_OPS_HOME:?set AGENT_OPS_HOME}"
missions="${AGENT_OPS_MISSIONS:-$AGENT_OPS_HOME/missions}"
mkdir -p "$AGENT_OPS_HOME/config" "$missions"
sed "s#\"examples/#\"$root/examples/#g" "$root/examples/services.json" > "$AGENT_OPS_HOME/config/services.json"
cp "$root/examples/agent-registry.json" "$AGENT_OPS_HOME/config/agent-registry.json"
for agent in atlas beacon cinder; do
    mkdir -p "$HOME/agents/$agent"
    printf '{"agent": "%s"}\n' "$agent" > "$HOME/agents/$agent/config.json"
    tickmon submit --agent "$agent" --status auto > /dev/null
done
cell=$(cellscan init --missions "$missions" --name "Release notes" --auto-revive ask | jq -r 'select(.kind == "cell") | .cell')
cellscan add-agent --missions "$missions" "$cell" --id agent_001 --role lead > /dev/null
cellscan add-task --missions "$missions" "$cell" --id task_001 --title "Draft the notes" --assign agent_001 > /dev/null
board add "Rotate the API keys" --owner ops --priority medium --tag security > /dev/null
echo "home ready: $AGENT_OPS_HOME (cell $cell)"
