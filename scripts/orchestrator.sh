#!/usr/bin/env bash
# pitcrew orchestrator: one run of everything a host needs, for cron or a systemd timer.
#
#   1. probe | recover | notify        check every service, heal what can be healed, tell people
#   2. board stalled | notify          work stuck in progress
#   3. tickmon check | notify          agents that missed their monthly tick (when a registry exists)
#   4. cellscan scan | notify          mission cells with problems (when a missions dir exists)
#   5. rollup prune                    metrics past retention
#   6. log rotation                    logs over 50 MiB are rotated and gzipped
#
# Runs under a lock so two runs never overlap (a second one exits at once). A phase that
# fails is logged and the others still run. Exit status: 0 all healthy, 1 something is down
# or failed (or some input was rejected), 2 a phase could not run.
#
# Environment: AGENT_OPS_HOME (default ~/.agent-ops), AGENT_OPS_CONFIG, AGENT_OPS_LOG_DIR,
# PITCREW_MISSIONS (default $AGENT_OPS_HOME/missions), PITCREW_BIN (a directory holding the
# binaries; default: found on PATH).
set -euo pipefail

home="${AGENT_OPS_HOME:-$HOME/.agent-ops}"
export AGENT_OPS_HOME="$home"
config="${AGENT_OPS_CONFIG:-$home/config/services.json}"
logs="${AGENT_OPS_LOG_DIR:-$home/logs}"
state="$home/state"
missions="${PITCREW_MISSIONS:-$home/missions}"
registry="$home/config/agent-registry.json"
rotate_bytes=$((50 * 1024 * 1024))
if [ -n "${PITCREW_BIN:-}" ]; then
    PATH="$PITCREW_BIN:$PATH"
fi
mkdir -p "$logs" "$state"
log_file="$logs/orchestrator.log"

log() { printf '[%s] %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S')" "$*" >> "$log_file"; }

for tool in probe recover notify rollup board tickmon cellscan; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        log "ERROR: $tool not found on PATH (set PITCREW_BIN)"
        echo "pitcrew-orchestrator: $tool not found on PATH (set PITCREW_BIN)" >&2
        exit 2
    fi
done

# One run at a time: flock where it exists (Linux), a lock directory elsewhere (macOS).
lock="$state/orchestrator.lock"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$lock"
    if ! flock -n 9; then
        log "another run holds $lock; skipping"
        exit 0
    fi
else
    if ! mkdir "$lock.d" 2>/dev/null; then
        holder=$(cat "$lock.d/pid" 2>/dev/null || true)
        if [ -n "$holder" ] && kill -0 "$holder" 2>/dev/null; then
            log "another run ($holder) holds $lock.d; skipping"
            exit 0
        fi
        rm -rf "$lock.d"
        mkdir "$lock.d"
    fi
    echo $$ > "$lock.d/pid"
    trap 'rm -rf "$lock.d"' EXIT
fi

overall=0
# note STATUS...: fold the exit statuses of one pipeline into the run's status.
note() {
    local s
    for s in "$@"; do
        case "$s" in
            0) ;;
            1 | 3) [ "$overall" -ge 1 ] || overall=1 ;;
            *) overall=2 ;;
        esac
    done
}
# keep NAME: save a phase's records (from stdin) as logs/last-NAME.ndjson, atomically.
keep() {
    local tmp="$logs/.last-$1.ndjson.tmp"
    cat > "$tmp"
    mv -f "$tmp" "$logs/last-$1.ndjson"
}
# report NAME STATUS...: log a phase's outcome.
report() {
    local name=$1
    shift
    local s worst=0
    for s in "$@"; do
        if [ "$s" -gt "$worst" ]; then worst=$s; fi
    done
    case "$worst" in
        0) log "$name: ok" ;;
        1 | 3) log "$name: found problems (exit statuses $*)" ;;
        *) log "ERROR: $name could not run (exit statuses $*); see $logs/orchestrator.err" ;;
    esac
    note "$@"
}

err="$logs/orchestrator.err"
log "=== run starting (home $home) ==="

# 1. check, heal, tell
set +e
probe --config "$config" 2>>"$err" | recover --config "$config" 2>>"$err" | notify --config "$config" 2>>"$err" | keep health
st=("${PIPESTATUS[@]}")
set -e
report "health (probe | recover | notify)" "${st[@]:0:3}"

# 2. stalled tasks
set +e
board stalled 2>>"$err" | notify --config "$config" 2>>"$err" | keep stalled
st=("${PIPESTATUS[@]}")
set -e
report "stalled tasks (board stalled | notify)" "${st[@]:0:2}"

# 3. the Agent Tick Protocol
if [ -f "$registry" ]; then
    set +e
    tickmon check --registry "$registry" 2>>"$err" | notify --config "$config" 2>>"$err" | keep ticks
    st=("${PIPESTATUS[@]}")
    set -e
    report "ticks (tickmon check | notify)" "${st[@]:0:2}"
fi

# 4. mission cells
if [ -d "$missions" ]; then
    set +e
    cellscan scan "$missions" 2>>"$err" | notify --config "$config" 2>>"$err" | keep cells
    st=("${PIPESTATUS[@]}")
    set -e
    report "cells (cellscan scan | notify)" "${st[@]:0:2}"
fi

# 5. metrics retention (services.json's metrics_retention_days, 90 by default)
set +e
rollup prune --config "$config" > /dev/null 2>>"$err"
prune_status=$?
set -e
report "metrics retention (rollup prune)" "$prune_status"

# 6. log rotation
for f in "$logs"/*.log "$logs"/*.err; do
    [ -f "$f" ] || continue
    size=$(wc -c < "$f")
    if [ "$size" -gt "$rotate_bytes" ]; then
        rotated="$f.$(date -u +%Y%m%d%H%M%S)"
        mv "$f" "$rotated"
        gzip -f "$rotated" || true
        log "rotated $(basename "$f")"
    fi
done

log "=== run complete: exit $overall ==="
exit "$overall"
