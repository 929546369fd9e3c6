#!/usr/bin/env bash
# pitcrew orchestrator: one run of everything a host needs, for cron or a systemd timer.
#
#   0. rollup stale | notify                        the monitor's own silence: when the last check of
#                                                   any service is older than three times the schedule
#                                                   (check_interval_seconds of services.json, when set),
#                                                   logged and told once
#   1. probe | recover | notify                     check every service, heal what can be healed, tell people
#                                                   (skipped while pitcrew-watch runs for the home)
#   2. board stalled | notify                       work stuck in progress
#   3. tickmon check | notify                       agents that missed their monthly tick (when a registry exists)
#   4. tickmon heartbeats | notify                  unhealthy and silent agents of the heartbeat endpoint (when
#                                                   its state, HOME/state/heartbeats.json, is in the home)
#   5. cellscan scan | cellscan revive | notify     mission cells with problems, failed agents revived as
#                                                   each cell's policy says and the tasks of those that cannot
#                                                   be handed off (when a missions dir exists); with
#                                                   PITCREW_HEARTBEAT_URL both ask the heartbeat endpoint, so
#                                                   agents it calls unhealthy are announced and revived; the
#                                                   gateways of services.json are checked once a run
#                                                   (skipped while pitcrew-watch runs its cells pipeline)
#   6. rollup prune                                 metrics past retention
#   7. log rotation                                 logs over 50 MiB are rotated and gzipped
#
# Runs under a lock so two runs never overlap (a second one exits at once, status 0; when runs
# keep being skipped, PITCREW_SKIP_ALERT_AFTER in a row (3), a critical alert goes out through
# `notify send`, once). Every phase runs under a time limit (PITCREW_PHASE_TIMEOUT seconds, 240;
# 0 for none): a phase that hangs is killed with its process group, logged as timed out and
# counts as a phase that could not run. A phase that fails is logged and the others still run. Each phase's records (what notify wrote) are
# kept as logs/last-PHASE.ndjson, and what probe saw as logs/last-probe.ndjson. The tools'
# messages go to logs/orchestrator.err, each line marked with the time and the phase; the
# first one of a phase that could not run is also in logs/orchestrator.log.
#
# Exit status: 0 all healthy (a service that recover brought back counts as healthy), 1
# something is down or failed (or some input was rejected), 2 a phase could not run.
#
# Environment: AGENT_OPS_HOME (default ~/.agent-ops), AGENT_OPS_CONFIG, AGENT_OPS_LOG_DIR and
# AGENT_OPS_METRICS_DIR (read by the tools themselves), AGENT_OPS_MISSIONS (or PITCREW_MISSIONS;
# default: the Lazarus Pit daemon's missions_path when its config is there, else
# $AGENT_OPS_HOME/missions), PITCREW_LAZARUS_CONFIG (the daemon's config.json, when it is not
# $HOME/.lazarus/config.json; handed to cellscan as --lazarus-config), PITCREW_BIN (a directory holding the binaries; default:
# found on PATH), PITCREW_PHASE_TIMEOUT (seconds a phase may take, 240; 0: no limit),
# PITCREW_SKIP_ALERT_AFTER (skipped runs in a row that raise the alert, 3; 0: never),
# PITCREW_HEARTBEAT_URL (tickmon serve's address, for the cells phase; AGENT_OPS_HEARTBEAT_TOKEN
# is its token), PITCREW_HEARTBEAT_TIMEOUT (seconds of silence that count as an agent's failure,
# as tickmon serve --timeout counts them, 300; 0: silence is not counted here). The
# paths are used as given: a value holding a $ or beginning with ~ is a variable nothing
# expanded (cron and launchd set their variables as written), and the run stops with exit 2
# before it creates anything.
set -euo pipefail

for var in AGENT_OPS_HOME AGENT_OPS_CONFIG AGENT_OPS_LOG_DIR AGENT_OPS_METRICS_DIR AGENT_OPS_MISSIONS \
    PITCREW_MISSIONS PITCREW_BIN PITCREW_LAZARUS_CONFIG; do
    case "${!var:-}" in
        *'$'* | '~'*)
            echo "pitcrew-orchestrator: $var is '${!var}': nothing expanded its \$ or ~ (cron and launchd" \
                "set variables as written); give an absolute path" >&2
            exit 2
            ;;
    esac
done

home="${AGENT_OPS_HOME:-$HOME/.agent-ops}"
export AGENT_OPS_HOME="$home"
logs="${AGENT_OPS_LOG_DIR:-$home/logs}"
state="$home/state"
missions="${PITCREW_MISSIONS:-${AGENT_OPS_MISSIONS:-$home/missions}}"
registry="$home/config/agent-registry.json"
heartbeat_state="$state/heartbeats.json"
heartbeat_url="${PITCREW_HEARTBEAT_URL:-}"
rotate_bytes=$((50 * 1024 * 1024))
if [ -n "${PITCREW_BIN:-}" ]; then
    PATH="$PITCREW_BIN:$PATH"
fi
mkdir -p "$logs" "$state"
log_file="$logs/orchestrator.log"
err="$logs/orchestrator.err"

stamp() { date -u '+%Y-%m-%d %H:%M:%S'; }
log() { printf '[%s] %s\n' "$(stamp)" "$*" >> "$log_file"; }

phase_timeout="${PITCREW_PHASE_TIMEOUT:-240}"
skip_alert_after="${PITCREW_SKIP_ALERT_AFTER:-3}"
heartbeat_timeout="${PITCREW_HEARTBEAT_TIMEOUT:-300}"
for setting in "PITCREW_PHASE_TIMEOUT=$phase_timeout" "PITCREW_SKIP_ALERT_AFTER=$skip_alert_after" \
    "PITCREW_HEARTBEAT_TIMEOUT=$heartbeat_timeout"; do
    case "${setting#*=}" in
        '' | *[!0-9]*)
            log "ERROR: ${setting%%=*} must be a whole number, not '${setting#*=}'"
            echo "pitcrew-orchestrator: ${setting%%=*} must be a whole number, not '${setting#*=}'" >&2
            exit 2
            ;;
    esac
done
case "$heartbeat_url" in
    '' | http://?* | https://?*) ;;
    *)
        log "ERROR: PITCREW_HEARTBEAT_URL must be an http:// or https:// URL, not '$heartbeat_url'"
        echo "pitcrew-orchestrator: PITCREW_HEARTBEAT_URL must be an http:// or https:// URL, not '$heartbeat_url'" >&2
        exit 2
        ;;
esac
# The heartbeat endpoint's arguments: silence counted as the server counts it; its URL for cellscan.
heartbeat_args=()
if [ "$heartbeat_timeout" -gt 0 ]; then
    heartbeat_args=(--timeout "$heartbeat_timeout")
fi
cells_args=()
if [ -n "$heartbeat_url" ]; then
    cells_args=(--heartbeat-url "$heartbeat_url")
fi
# The Lazarus Pit daemon's config: cellscan reads $HOME/.lazarus/config.json by itself, or the
# file named here.
lazarus_args=()
if [ -n "${PITCREW_LAZARUS_CONFIG:-}" ]; then
    lazarus_args=(--lazarus-config "$PITCREW_LAZARUS_CONFIG")
fi
# `timeout` (coreutils) kills a phase's process group at the limit; without it (macOS without
# coreutils) phases run unbounded, and the log says so.
timeout_bin=""
if command -v timeout >/dev/null 2>&1; then
    timeout_bin=timeout
elif command -v gtimeout >/dev/null 2>&1; then
    timeout_bin=gtimeout
fi
timeout_cmd=""
if [ "$phase_timeout" -gt 0 ]; then
    timeout_cmd=$timeout_bin
fi

for tool in probe recover notify rollup board tickmon cellscan; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        log "ERROR: $tool not found on PATH (set PITCREW_BIN)"
        echo "pitcrew-orchestrator: $tool not found on PATH (set PITCREW_BIN)" >&2
        exit 2
    fi
done

# Without PITCREW_MISSIONS or AGENT_OPS_MISSIONS, the missions directory is the one cellscan
# takes: the Lazarus config's missions_path, else HOME/missions. A config cellscan cannot read
# is left to the cells phase to report.
if [ -z "${PITCREW_MISSIONS:-}${AGENT_OPS_MISSIONS:-}" ]; then
    if from_cellscan="$(cellscan "${lazarus_args[@]}" missions-dir 2>/dev/null)" && [ -n "$from_cellscan" ]; then
        missions="$from_cellscan"
    fi
fi

# Runs skipped in a row because the lock was held: "COUNT SINCE" in state/orchestrator.skipped
# (SINCE: when the first of them was skipped), rewritten atomically under its own short lock.
skipped_file="$state/orchestrator.skipped"
# skipped_update add|reset: count one more skipped run, or start again; prints "COUNT SINCE"
# as it was before a reset, or as it is after an add.
skipped_update() {
    local count=0 since="" tmp="$skipped_file.tmp.$$"
    (
        if command -v flock >/dev/null 2>&1; then
            flock -w 10 8 || true
        fi
        if [ -f "$skipped_file" ]; then
            read -r count since < "$skipped_file" || true
        fi
        case "$count" in '' | *[!0-9]*) count=0 ;; esac
        if [ "$1" = add ]; then
            count=$((count + 1))
            [ -n "$since" ] || since=$(stamp)
            printf '%s %s\n' "$count" "$since" > "$tmp"
            mv -f "$tmp" "$skipped_file"
        elif [ -f "$skipped_file" ]; then
            rm -f "$skipped_file"
        fi
        printf '%s %s\n' "$count" "$since"
    ) 8>"$skipped_file.lock"
}
# send LEVEL MESSAGE: tell people through notify's sinks (it takes no orchestrator lock), bounded
# in time; its messages go to orchestrator.err marked "lock".
send() {
    local out st=0
    if [ -n "$timeout_bin" ]; then
        out=$("$timeout_bin" -k 10 60 notify send --level "$1" --topic orchestrator "$2" 2>&1 >/dev/null 9>&- </dev/null) || st=$?
    else
        out=$(notify send --level "$1" --topic orchestrator "$2" 2>&1 >/dev/null 9>&- </dev/null) || st=$?
    fi
    if [ -n "$out" ]; then
        printf '%s\n' "$out" | awk -v p="[$(stamp)] lock: " '{ print p $0 }' >> "$err"
    fi
    return "$st"
}
# skip HOLDER: this run finds the lock held: count it, alert once when the count reaches
# PITCREW_SKIP_ALERT_AFTER, and exit 0.
skip() {
    local count since alerted=""
    read -r count since < <(skipped_update add)
    if [ "$skip_alert_after" -gt 0 ] && [ "$count" -eq "$skip_alert_after" ]; then
        if send critical "pitcrew-orchestrator: $count runs in a row skipped since $since UTC: another run holds $1 (a phase that does not end?). Nothing is checked until it is released."; then
            alerted="; alerted through notify"
        else
            alerted="; the alert through notify failed (see $err)"
        fi
    fi
    log "another run holds $1; skipping ($count in a row$alerted)"
    exit 0
}

# One run at a time: flock where it exists (Linux), a lock directory elsewhere (macOS). A
# holder that dies releases it (flock, or a lock directory whose pid is gone); one that hangs
# is ended by the phase time limit.
lock="$state/orchestrator.lock"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$lock"
    if ! flock -n 9; then
        skip "$lock"
    fi
else
    if ! mkdir "$lock.d" 2>/dev/null; then
        holder=$(cat "$lock.d/pid" 2>/dev/null || true)
        if [ -n "$holder" ] && kill -0 "$holder" 2>/dev/null; then
            skip "$lock.d (pid $holder)"
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
# report_timeout KEY NAME: log a phase that the time limit ended; it counts as one that could
# not run.
report_timeout() {
    local key=$1 name=$2
    if [ -s "$phase_err" ]; then
        awk -v p="[$(stamp)] $key: " '{ print p $0 }' "$phase_err" >> "$err"
    fi
    : > "$phase_err"
    printf '[%s] %s: timed out after %s s; killed\n' "$(stamp)" "$key" "$phase_timeout" >> "$err"
    log "ERROR: $name timed out after $phase_timeout s (PITCREW_PHASE_TIMEOUT) and was killed; see $err"
    note 2
}

# The phases. Each runs in a shell of its own (see limited) and prints the exit statuses of
# its stages.
phase_watch() {
    local found s=0
    found=$(run rollup stale 2>>"$phase_err") || s=$?
    if [ -z "$found" ]; then
        echo "$s"
        return
    fi
    printf '%s\n' "$found" | keep stale
    printf '%s\n' "$found" | run notify 2>>"$phase_err" | keep watch
    echo "$s ${PIPESTATUS[1]}"
}
phase_health() {
    run probe 2>>"$phase_err" | tee "$logs/.last-probe.ndjson.tmp" | run recover 2>>"$phase_err" \
        | tee "$logs/.last-recover.ndjson.tmp" | run notify 2>>"$phase_err" | keep health
    echo "${PIPESTATUS[*]}"
}
phase_stalled() {
    run board stalled 2>>"$phase_err" | run notify 2>>"$phase_err" | keep stalled
    echo "${PIPESTATUS[*]}"
}
phase_ticks() {
    run tickmon check --registry "$registry" 2>>"$phase_err" | run notify 2>>"$phase_err" | keep ticks
    echo "${PIPESTATUS[*]}"
}
phase_agents() {
    run tickmon heartbeats --state "$heartbeat_state" "${heartbeat_args[@]}" 2>>"$phase_err" \
        | run notify 2>>"$phase_err" | keep agents
    echo "${PIPESTATUS[*]}"
}
phase_cells() {
    run cellscan "${lazarus_args[@]}" scan "${cells_args[@]}" "$missions" 2>>"$phase_err" \
        | run cellscan "${lazarus_args[@]}" revive "${cells_args[@]}" --from - "$missions" 2>>"$phase_err" \
        | run notify 2>>"$phase_err" | keep cells
    echo "${PIPESTATUS[*]}"
}
phase_retention() {
    run rollup prune > /dev/null 2>>"$phase_err"
    echo "$?"
}

# limited PHASE: run a phase function in a bash of its own (stdin /dev/null, the lock's
# descriptor closed) under the time limit, and set `st` to the exit statuses of its stages.
# Returns 1 when the limit passed: `timeout` then sends TERM to the phase's whole process
# group (every stage of its pipeline), and KILL 10 s later to what is left.
phase_status="$logs/.phase.status"
limited() {
    local script code=0
    script="$(declare -p logs phase_err registry missions heartbeat_state heartbeat_args cells_args lazarus_args)"
    script="$script; $(declare -f run keep "$1"); $1"
    : > "$phase_status"
    if [ -n "$timeout_cmd" ]; then
        "$timeout_cmd" -k 10 "$phase_timeout" bash -c "$script" > "$phase_status" < /dev/null 9>&- || code=$?
        if [ "$code" -eq 124 ] || [ "$code" -eq 137 ]; then
            return 1
        fi
    else
        bash -c "$script" > "$phase_status" < /dev/null 9>&- || code=$?
    fi
    st=()
    read -r -a st < "$phase_status" || true
    # A shell that could not even start its pipeline: the phase could not run.
    [ "${#st[@]}" -gt 0 ] || st=(2)
}

: > "$phase_err"
log "=== run starting (home $home) ==="
if [ "$phase_timeout" -gt 0 ] && [ -z "$timeout_cmd" ]; then
    log "no timeout command (coreutils): phases run without a time limit"
fi
read -r was_skipped since < <(skipped_update reset)
if [ "$was_skipped" -gt 0 ]; then
    log "the lock is free again after $was_skipped skipped run(s) since $since"
fi

# 0. the monitor's own silence: no check of any service for three times the schedule
# (check_interval_seconds; without it there is no schedule to judge by and nothing is said)
# is a gap in the monitoring itself: the host slept, cron stopped, probe could not write. It is
# logged here and told through notify once (notify keys it by when the silence began); a
# running monitor says nothing.
if limited phase_watch; then
    if [ "${st[0]}" -eq 1 ]; then
        gap=$(sed -n 's/.*"detail":"\([^"]*\)".*/\1/p' "$logs/last-stale.ndjson" | head -n 1)
        if [ "${st[1]:-2}" -eq 0 ]; then told="told through notify"; else told="notify exit ${st[1]:-2}, see $err"; fi
        log "monitoring gap: ${gap:-the last check is too old}; $told"
        note 1 "${st[1]:-2}"
    elif [ "${st[0]}" -ne 0 ]; then
        report watch "monitoring gap check (rollup stale)" "${st[@]}"
    fi
    if [ -s "$phase_err" ]; then
        awk -v p="[$(stamp)] watch: " '{ print p $0 }' "$phase_err" >> "$err"
        : > "$phase_err"
    fi
else
    report_timeout watch "monitoring gap check (rollup stale)"
fi

# 1. check, heal, tell. probe exits 1 for a service it saw down; recover's status says
# whether one is still down after the restarts, so probe's 1 counts only when probe also
# reported a bad service entry (a finding). When pitcrew-watch runs for this home (it holds
# state/watch.lock), the checks are its, continuously: the phase is skipped.
watch_running() {
    local holder
    if command -v flock >/dev/null 2>&1; then
        [ -f "$state/watch.lock" ] && ! flock -n "$state/watch.lock" true
    else
        holder=$(cat "$state/watch.lock.d/pid" 2>/dev/null || true)
        [ -n "$holder" ] && kill -0 "$holder" 2>/dev/null
    fi
}
if watch_running; then
    log "health (probe | recover | notify): skipped: pitcrew-watch runs it continuously for this home"
elif limited phase_health; then
    mv -f "$logs/.last-probe.ndjson.tmp" "$logs/last-probe.ndjson"
    mv -f "$logs/.last-recover.ndjson.tmp" "$logs/last-recover.ndjson"
    probe_status=${st[0]}
    if [ "$probe_status" -eq 1 ] && ! grep -q '"kind":"finding"' "$logs/last-probe.ndjson"; then
        probe_status=0
    fi
    report health "health (probe | recover | notify)" "$probe_status" "${st[2]:-2}" "${st[4]:-2}"
else
    rm -f "$logs/.last-probe.ndjson.tmp" "$logs/.last-recover.ndjson.tmp"
    report_timeout health "health (probe | recover | notify)"
fi

# 2. stalled tasks
if limited phase_stalled; then
    report stalled "stalled tasks (board stalled | notify)" "${st[@]:0:2}"
else
    report_timeout stalled "stalled tasks (board stalled | notify)"
fi

# 3. the Agent Tick Protocol
if [ -f "$registry" ]; then
    if limited phase_ticks; then
        report ticks "ticks (tickmon check | notify)" "${st[@]:0:2}"
    else
        report_timeout ticks "ticks (tickmon check | notify)"
    fi
fi

# 4. agent health from the heartbeat endpoint (tickmon serve): its state is read as
# `tickmon heartbeats` reads it (the journal too, without a lock), so this works while the
# server runs and after it died. notify announces unhealthy and degraded agents once (subject
# heartbeat:<agent>) and their recovery.
if [ -f "$heartbeat_state" ] || [ -f "$heartbeat_state.journal" ]; then
    if limited phase_agents; then
        report agents "agents (tickmon heartbeats | notify)" "${st[@]:0:2}"
    else
        report_timeout agents "agents (tickmon heartbeats | notify)"
    fi
fi

# 5. mission cells (with PITCREW_HEARTBEAT_URL, health from the endpoint too: cellscan revive
# revives the agents it calls unhealthy, as each cell's policy says). When pitcrew-watch runs
# its cells pipeline (cellscan revive --watch) for this home, the cells are its: skipped.
if [ -d "$missions" ]; then
    if watch_running && grep -qx cells "$state/watch.pipelines" 2>/dev/null; then
        log "cells (cellscan scan | cellscan revive | notify): skipped: pitcrew-watch runs it continuously for this home"
    elif limited phase_cells; then
        report cells "cells (cellscan scan | cellscan revive | notify)" "${st[@]:0:3}"
    else
        report_timeout cells "cells (cellscan scan | cellscan revive | notify)"
    fi
fi

# 6. metrics retention (services.json's metrics_retention_days, 90 by default)
if limited phase_retention; then
    report retention "metrics retention (rollup prune)" "${st[0]}"
else
    report_timeout retention "metrics retention (rollup prune)"
fi

# 7. log rotation
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
