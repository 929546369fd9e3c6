#!/bin/sh
# Run on each agent's host on the 1st: check this agent's vitals for real and commit the
# tick to the shared ticks repository, so every host reports through one repo.
set -eu
agent="${PITCREW_AGENT:?set PITCREW_AGENT to the agent id of this host}"
tickmon submit --agent "$agent" --status auto --git --push
