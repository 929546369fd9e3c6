#!/usr/bin/env bash
# pitcrew orchestrator: one run of everything a host needs, for cron or a systemd timer.
#
#   1. probe | recover | notify                     check every service, heal what can be healed, tell people
#   2. board stalled | notify                       work stuck in progress
#   3. tickmon check | notify                       agents that missed their monthly tick (when a registry exists)
#   4. cellscan scan | cellscan revive | notify     mission cells with problems, failed agents revived as
#                                                   each cell's policy says (when a missions dir exists)
#   5. rollup prune                                 metrics past retention
#   6. log rotation                                 logs over 50 MiB are rotated and gzipped
#
# Runs under a lock so two runs never overlap (a second one exits at once, status 0). A phase
# that fails is logged and the others still run. Each phase's records (what notify wrote) are
# kept as logs/last-PHASE.ndjson, and what probe saw as logs/last-probe.ndjson. The tools'
# messages go to logs/orchestrator.err, each line marked with the time and the phase; the
# first one of a phase that could not run is also in logs/orchestrator.log.
#
# Exit status: 0 all healthy (a service that recover brought back counts as healthy), 1
# something is down or failed (or some input was rejected), 2 a phase could not run.
#
# Environment: AGENT_OPS_HOME (default ~/.agent-ops), AGENT_OPS_CONFIG, AGENT_OPS_LOG_DIR and
# AGENT_OPS_METRICS_DIR (read by the tools themselves), AGENT_OPS_MISSIONS (or PITCREW_MISSIONS;
# default $AGENT_OPS_HOME/missions), PITCREW_BIN (a directory holding the binaries; default:
# found on PATH).
set -euo pipefail

home="${AGENT_OPS_HOME:-$HOME/.agent-ops}"
export AGENT_OPS_HOME="$home"
logs="${AGENT_OPS_LOG_DIR:-$home/logs}"
state="$home/state"
missions="${PITCREW_MISSIONS:-${AGENT_OPS_MISSIONS:-$home/missions}}"
registry="$home/config/agent-registry.json"
rotate_bytes=$((50 * 1024 * 1024))
if [ -n "${PITCREW_BIN:-}" ]; then
    PATH="$PITCREW_BIN:$PATH"
fi
mkdir -p "$logs" "$state"
log_file="$logs/orchestrator.log"
err="$logs/orchestrator.err"

stamp() { date -u '+%Y-%m-%d %H:%M:%S'; }
log() { printf '[%s] %s\n' "$(stamp)" "$*" >> "$log_file"; }

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

# run TOOL ARGS...: a tool, with the lock's descriptor closed. A service that a restart
# command starts in the background must not inherit it, or it would hold the lock for as long
# as it lives and every later run would skip.
run() { "$@" 9>&-; }

overall=0
# note STATUS...: fold the exit statuses of one phase into the run's status.
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
# The tools' stderr of the phase that runs: moved into orchestrator.err by report.
phase_err="$logs/.phase.err"
# report KEY NAME STATUS...: log a phase's outcome and keep its messages.
report() {
    local key=$1 name=$2
    shift 2
    local s worst=0 first=""
    for s in "$@"; do
        if [ "$s" -gt "$worst" ]; then worst=$s; fi
    done
    if [ -s "$phase_err" ]; then
        awk -v p="[$(stamp)] $key: " '{ print p $0 }' "$phase_err" >> "$err"
        first=$(head -n 1 "$phase_err")
    fi
    : > "$phase_err"
    case "$worst" in
        0) log "$name: ok" ;;
        1 | 3) log "$name: found problems (exit statuses $*)" ;;
        *) log "ERROR: $name could not run (exit statuses $*)${first:+: $first}; see $err" ;;
    esac
    note "$@"
}

: > "$phase_err"
log "=== run starting (home $home) ==="

# 1. check, heal, tell. probe exits 1 for a service it saw down; recover's status says
# whether one is still down after the restarts, so probe's 1 counts only when probe also
# reported a bad service entry (a finding).
set +e
run probe 2>>"$phase_err" | tee "$logs/.last-probe.ndjson.tmp" | run recover 2>>"$phase_err" \
    | tee "$logs/.last-recover.ndjson.tmp" | run notify 2>>"$phase_err" | keep health
st=("${PIPESTATUS[@]}")
set -e
mv -f "$logs/.last-probe.ndjson.tmp" "$logs/last-probe.ndjson"
mv -f "$logs/.last-recover.ndjson.tmp" "$logs/last-recover.ndjson"
probe_status=${st[0]}
if [ "$probe_status" -eq 1 ] && ! grep -q '"kind":"finding"' "$logs/last-probe.ndjson"; then
    probe_status=0
fi
report health "health (probe | recover | notify)" "$probe_status" "${st[2]}" "${st[4]}"

# 2. stalled tasks
set +e
run board stalled 2>>"$phase_err" | run notify 2>>"$phase_err" | keep stalled
st=("${PIPESTATUS[@]}")
set -e
report stalled "stalled tasks (board stalled | notify)" "${st[@]:0:2}"

# 3. the Agent Tick Protocol
if [ -f "$registry" ]; then
    set +e
    run tickmon check --registry "$registry" 2>>"$phase_err" | run notify 2>>"$phase_err" | keep ticks
    st=("${PIPESTATUS[@]}")
    set -e
    report ticks "ticks (tickmon check | notify)" "${st[@]:0:2}"
fi

# 4. mission cells
if [ -d "$missions" ]; then
    set +e
    run cellscan scan "$missions" 2>>"$phase_err" | run cellscan revive --from - "$missions" 2>>"$phase_err" \
        | run notify 2>>"$phase_err" | keep cells
    st=("${PIPESTATUS[@]}")
    set -e
    report cells "cells (cellscan scan | cellscan revive | notify)" "${st[@]:0:3}"
fi

# 5. metrics retention (services.json's metrics_retention_days, 90 by default)
set +e
run rollup prune > /dev/null 2>>"$phase_err"
prune_status=$?
set -e
report retention "metrics retention (rollup prune)" "$prune_status"

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
