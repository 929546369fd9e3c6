#!/usr/bin/env bash
# pitcrew-watch: the resident pipelines, for systemd, launchd or a terminal.
#
#   health:      probe --watch | recover --follow | notify --follow
#   heartbeats:  tickmon heartbeats --follow | notify --follow
#   cells:       cellscan revive --watch | notify --follow
#
# The heartbeats pipeline runs when the heartbeat endpoint's state (HOME/state/heartbeats.json)
# exists when pitcrew-watch starts, or when --heartbeats or PITCREW_WATCH_HEARTBEATS=1 says so
# (--no-heartbeats or PITCREW_WATCH_HEARTBEATS=0: never). The cells pipeline scans the mission
# cells and revives failed and unhealthy agents as each cell's policy says; it runs when the
# missions directory exists when pitcrew-watch starts (PITCREW_MISSIONS or AGENT_OPS_MISSIONS,
# else the Lazarus config's missions_path, else HOME/missions), or with --cells or
# PITCREW_WATCH_CELLS=1 (--no-cells or PITCREW_WATCH_CELLS=0: never). With
# PITCREW_HEARTBEAT_URL it takes agent health from the heartbeat endpoint (tickmon serve) too.
#
# Supervision: when any stage of a pipeline ends, the whole pipeline is stopped (its first
# stage gets SIGTERM and the others finish on the end of their input; what is left after
# PITCREW_WATCH_STOP_TIMEOUT seconds gets SIGTERM, then SIGKILL) and started again after a
# backoff: 1 s, doubling up to 60 s, back to 1 s once a pipeline has run for a minute. Every
# start, end and restart is logged to logs/watch.log; the tools' messages go to
# logs/watch.stderr; what each notify wrote goes to logs/watch-PIPELINE.ndjson. A file of these
# over 50 MiB is rotated (to FILE.1) by stopping and starting its pipeline, which loses nothing.
#
# Stopping: SIGTERM, SIGINT or SIGHUP stops both pipelines the same way and exits 0 once every
# stage has ended. One pitcrew-watch per home: a second one exits 1 at once, saying so. While
# it runs, pitcrew-orchestrator skips its own probe | recover | notify phase for the home (it
# looks at the same lock), and its cells phase when the cells pipeline runs (listed in
# state/watch.pipelines); its other phases run as before.
#
# Environment: AGENT_OPS_HOME (default ~/.agent-ops), AGENT_OPS_LOG_DIR, PITCREW_BIN (a
# directory holding the binaries; default: found on PATH), PITCREW_WATCH_HEARTBEATS (1, 0 or
# auto), PITCREW_WATCH_CELLS (1, 0 or auto), PITCREW_MISSIONS / AGENT_OPS_MISSIONS,
# PITCREW_LAZARUS_CONFIG (the Lazarus Pit daemon's config.json, for cellscan's
# --lazarus-config), PITCREW_HEARTBEAT_URL (tickmon serve's address, for cellscan;
# AGENT_OPS_HEARTBEAT_TOKEN is its token), PITCREW_HEARTBEAT_TIMEOUT (seconds of silence before
# an agent counts a failure; the --timeout of `tickmon serve`, 300), PITCREW_WATCH_STOP_TIMEOUT
# (seconds a stopping stage is given, 30). Needs bash 4.3 or later (macOS: Homebrew's bash).
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
    echo "Usage: pitcrew-watch [--heartbeats | --no-heartbeats] [--cells | --no-cells]"
}

heartbeats="${PITCREW_WATCH_HEARTBEATS:-auto}"
cells="${PITCREW_WATCH_CELLS:-auto}"
while [ $# -gt 0 ]; do
    case "$1" in
        --heartbeats) heartbeats=1 ;;
        --no-heartbeats) heartbeats=0 ;;
        --cells) cells=1 ;;
        --no-cells) cells=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "pitcrew-watch: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [ "${BASH_VERSINFO[0]}" -lt 4 ] || { [ "${BASH_VERSINFO[0]}" -eq 4 ] && [ "${BASH_VERSINFO[1]}" -lt 3 ]; }; then
    echo "pitcrew-watch: needs bash 4.3 or later, not $BASH_VERSION" >&2
    exit 2
fi
for var in AGENT_OPS_HOME AGENT_OPS_LOG_DIR PITCREW_BIN PITCREW_MISSIONS AGENT_OPS_MISSIONS PITCREW_LAZARUS_CONFIG; do
    case "${!var:-}" in
        *'$'* | '~'*)
            echo "pitcrew-watch: $var is '${!var}': nothing expanded its \$ or ~; give an absolute path" >&2
            exit 2
            ;;
    esac
done
hb_timeout="${PITCREW_HEARTBEAT_TIMEOUT:-300}"
stop_timeout="${PITCREW_WATCH_STOP_TIMEOUT:-30}"
for setting in "PITCREW_HEARTBEAT_TIMEOUT=$hb_timeout" "PITCREW_WATCH_STOP_TIMEOUT=$stop_timeout"; do
    case "${setting#*=}" in
        '' | *[!0-9]* | 0)
            echo "pitcrew-watch: ${setting%%=*} must be a whole number of seconds, not '${setting#*=}'" >&2
            exit 2
            ;;
    esac
done
case "$heartbeats" in
    0 | 1 | auto) ;;
    *) echo "pitcrew-watch: PITCREW_WATCH_HEARTBEATS must be 1, 0 or auto, not '$heartbeats'" >&2; exit 2 ;;
esac
case "$cells" in
    0 | 1 | auto) ;;
    *) echo "pitcrew-watch: PITCREW_WATCH_CELLS must be 1, 0 or auto, not '$cells'" >&2; exit 2 ;;
esac
heartbeat_url="${PITCREW_HEARTBEAT_URL:-}"
case "$heartbeat_url" in
    *[[:space:]\|]*)
        echo "pitcrew-watch: PITCREW_HEARTBEAT_URL must be an http:// or https:// URL, not '$heartbeat_url'" >&2
        exit 2
        ;;
    '' | http://?* | https://?*) ;;
    *)
        echo "pitcrew-watch: PITCREW_HEARTBEAT_URL must be an http:// or https:// URL, not '$heartbeat_url'" >&2
        exit 2
        ;;
esac
# A stage's command line is split on spaces: the Lazarus config's path goes on it, so it must
# have none (the missions directory goes through the environment and may have any).
case "${PITCREW_LAZARUS_CONFIG:-}" in
    *[[:space:]\|]*)
        echo "pitcrew-watch: PITCREW_LAZARUS_CONFIG '$PITCREW_LAZARUS_CONFIG' has a space or a |; give a path without" >&2
        exit 2
        ;;
esac

home="${AGENT_OPS_HOME:-$HOME/.agent-ops}"
export AGENT_OPS_HOME="$home"
logs="${AGENT_OPS_LOG_DIR:-$home/logs}"
state="$home/state"
if [ -n "${PITCREW_BIN:-}" ]; then
    PATH="$PITCREW_BIN:$PATH"
fi
mkdir -p "$logs" "$state"
log_file="$logs/watch.log"
err="$logs/watch.stderr"
rotate_bytes=$((50 * 1024 * 1024))

stamp() { date -u '+%Y-%m-%d %H:%M:%S'; }
log() { printf '[%s] %s\n' "$(stamp)" "$*" >> "$log_file"; }

needed=(probe recover notify)
if [ "$heartbeats" = auto ]; then
    if [ -f "$state/heartbeats.json" ]; then heartbeats=1; else heartbeats=0; fi
fi
[ "$heartbeats" = 0 ] || needed+=(tickmon)
# The missions directory, as the orchestrator finds it: the environment, else the one cellscan
# takes (the Lazarus config's missions_path, else HOME/missions). cellscan gets it through
# AGENT_OPS_MISSIONS.
lazarus_args=""
if [ -n "${PITCREW_LAZARUS_CONFIG:-}" ]; then
    lazarus_args=" --lazarus-config $PITCREW_LAZARUS_CONFIG"
fi
missions="${PITCREW_MISSIONS:-${AGENT_OPS_MISSIONS:-}}"
if [ -z "$missions" ] && [ "$cells" != 0 ] && command -v cellscan >/dev/null 2>&1; then
    # shellcheck disable=SC2086  # no spaces (checked above)
    missions="$(cellscan $lazarus_args missions-dir 2>/dev/null)" || missions=""
fi
missions="${missions:-$home/missions}"
if [ "$cells" = auto ]; then
    if [ -d "$missions" ]; then cells=1; else cells=0; fi
fi
[ "$cells" = 0 ] || needed+=(cellscan)
for tool in "${needed[@]}"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        log "ERROR: $tool not found on PATH (set PITCREW_BIN)"
        echo "pitcrew-watch: $tool not found on PATH (set PITCREW_BIN)" >&2
        exit 2
    fi
done

# One watch per home: flock where it exists (Linux), a lock directory elsewhere (macOS).
# pitcrew-orchestrator reads the same lock to leave the checks to this watch.
lock="$state/watch.lock"
lockdir=""
if command -v flock >/dev/null 2>&1; then
    exec 9>"$lock"
    if ! flock -n 9; then
        echo "pitcrew-watch: another pitcrew-watch runs for $home (it holds $lock)" >&2
        exit 1
    fi
else
    lockdir="$lock.d"
    if ! mkdir "$lock.d" 2>/dev/null; then
        holder=$(cat "$lock.d/pid" 2>/dev/null || true)
        if [ -n "$holder" ] && kill -0 "$holder" 2>/dev/null; then
            echo "pitcrew-watch: another pitcrew-watch (pid $holder) runs for $home" >&2
            exit 1
        fi
        rm -rf "$lock.d"
        mkdir "$lock.d"
    fi
    echo $$ > "$lock.d/pid"
fi

# The pipes between stages, private to this run.
fifos=$(mktemp -d "${TMPDIR:-/tmp}/pitcrew-watch.XXXXXX")
# Only in this shell: a child between its fork and its exec may run the traps too.
trap '[ "$BASHPID" != "$$" ] || rm -rf "$fifos" ${lockdir:+"$lockdir"}' EXIT

# The pipelines, by name: their stages (one command line each, split on |), their stage pids
# (empty when stopped), when they started, their next backoff, when they may start again.
names=(health)
declare -A stages=([health]="probe --watch|recover --follow|notify --follow")
if [ "$heartbeats" = 1 ]; then
    names+=(heartbeats)
    stages[heartbeats]="tickmon heartbeats --follow --timeout $hb_timeout|notify --follow"
fi
if [ "$cells" = 1 ]; then
    names+=(cells)
    export AGENT_OPS_MISSIONS="$missions"
    stages[cells]="cellscan$lazarus_args revive --watch${heartbeat_url:+ --heartbeat-url $heartbeat_url}|notify --follow"
fi
# Which pipelines run, for pitcrew-orchestrator (it skips its cells phase when this one has
# the cells pipeline), written whole.
printf '%s\n' "${names[@]}" > "$state/.watch.pipelines.$$"
mv -f "$state/.watch.pipelines.$$" "$state/watch.pipelines"
declare -A running=() started=() backoff=() due=()
for n in "${names[@]}"; do
    running[$n]=""
    backoff[$n]=1
    due[$n]=0
done

# start NAME: start the pipeline's stages, connected by named pipes; the last one writes to
# logs/watch-NAME.ndjson. Descriptor 9 (the lock) is closed for them.
start() {
    local n=$1 i=0 cmd in out pids="" argv
    local -a cmds
    IFS='|' read -r -a cmds <<< "${stages[$n]}"
    rotate_if_large "$logs/watch-$n.ndjson"
    in=/dev/null
    for cmd in "${cmds[@]}"; do
        i=$((i + 1))
        if [ "$i" -lt "${#cmds[@]}" ]; then
            out="$fifos/$n.$i"
            rm -f "$out"
            mkfifo "$out"
        else
            out="$logs/watch-$n.ndjson"
        fi
        read -r -a argv <<< "$cmd"
        "${argv[@]}" < "$in" >> "$out" 2>> "$err" 9>&- &
        pids="$pids $!"
        in=$out
    done
    running[$n]="${pids# }"
    started[$n]=$SECONDS
    log "$n: started (${stages[$n]//|/ | }; pids ${running[$n]})"
}

# alive PIDS...: the pids of those still running.
# A stage that has exited but that bash has not reaped yet (a zombie) still answers kill -0:
# it counts as ended, or a stage killed a moment before its neighbour ended would go unnamed.
alive() {
    local p out=""
    for p in "$@"; do
        if kill -0 "$p" 2>/dev/null && [ "$(ps -o stat= -p "$p" 2>/dev/null | cut -c1)" != Z ]; then
            out="$out $p"
        fi
    done
    echo "${out# }"
}

# stop NAME: end the pipeline: SIGTERM to its first stage, the others finish on the end of
# their input; after PITCREW_WATCH_STOP_TIMEOUT seconds, SIGTERM to what is left, then
# SIGKILL 5 s later. Waits for every stage.
stop() {
    local n=$1 waited=0 left p
    local -a pids
    read -r -a pids <<< "${running[$n]}"
    [ "${#pids[@]}" -gt 0 ] || return 0
    kill -TERM "${pids[0]}" 2>/dev/null || true
    left=$(alive "${pids[@]}")
    while [ -n "$left" ] && [ "$waited" -lt $((stop_timeout * 10)) ]; do
        sleep 0.1
        waited=$((waited + 1))
        left=$(alive "${pids[@]}")
    done
    if [ -n "$left" ]; then
        log "$n: still running after ${stop_timeout}s: pids $left; sending SIGTERM"
        # shellcheck disable=SC2086  # a list of pids
        kill -TERM $left 2>/dev/null || true
        sleep 5
        left=$(alive "${pids[@]}")
        if [ -n "$left" ]; then
            log "$n: killing pids $left"
            # shellcheck disable=SC2086
            kill -KILL $left 2>/dev/null || true
        fi
    fi
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    running[$n]=""
}

# rotate_if_large FILE: keep one older copy (FILE.1) of a file over 50 MiB. Only for files
# nothing holds open (the pipeline writing it is stopped).
rotate_if_large() {
    if [ -f "$1" ] && [ "$(wc -c < "$1")" -gt "$rotate_bytes" ]; then
        mv -f "$1" "$1.1"
        log "rotated $(basename "$1")"
    fi
}

stopping=""
on_signal() { stopping=$1; }
trap 'on_signal TERM' TERM
trap 'on_signal INT' INT
trap 'on_signal HUP' HUP

log "=== pitcrew-watch starting (home $home, pid $$) ==="
if [ "$cells" = 1 ]; then log "cells: missions directory $missions"; fi
# The hourly look at the sizes of the files the pipelines write.
tick=""
next_size_check=$((SECONDS + 3600))
while [ -z "$stopping" ]; do
    for n in "${names[@]}"; do
        if [ -z "${running[$n]}" ] && [ "$SECONDS" -ge "${due[$n]}" ]; then
            start "$n"
        fi
    done
    # Sleep until a stage ends, a signal comes, a pipeline is due to start again or the size
    # check is due: a sleep in the background is the timer.
    wake=$next_size_check
    for n in "${names[@]}"; do
        if [ -z "${running[$n]}" ] && [ "${due[$n]}" -lt "$wake" ]; then wake=${due[$n]}; fi
    done
    sleep $((wake > SECONDS ? wake - SECONDS : 1)) &
    tick=$!
    wait -n 2>/dev/null || true
    # SIGKILL: a SIGTERM caught between the fork and the exec would leave the sleep running.
    kill -KILL "$tick" 2>/dev/null || true
    wait "$tick" 2>/dev/null || true
    tick=""
    [ -z "$stopping" ] || break
    for n in "${names[@]}"; do
        [ -n "${running[$n]}" ] || continue
        read -r -a pids <<< "${running[$n]}"
        left=$(alive "${pids[@]}")
        if [ "$left" != "${running[$n]}" ]; then
            # A stage ended: say which, with its status, and start the pipeline again.
            ended=""
            for p in "${pids[@]}"; do
                case " $left " in
                    *" $p "*) ;;
                    *) s=0; wait "$p" 2>/dev/null || s=$?; ended="$ended; pid $p exit $s" ;;
                esac
            done
            ran=$((SECONDS - started[$n]))
            stop "$n"
            if [ "$ran" -ge 60 ]; then backoff[$n]=1; fi
            due[$n]=$((SECONDS + backoff[$n]))
            log "$n: a stage ended after ${ran}s (${ended#; }); restarting in ${backoff[$n]}s"
            backoff[$n]=$((backoff[$n] * 2 > 60 ? 60 : backoff[$n] * 2))
        fi
    done
    if [ "$SECONDS" -ge "$next_size_check" ]; then
        next_size_check=$((SECONDS + 3600))
        for n in "${names[@]}"; do
            if [ -n "${running[$n]}" ] && [ "$(wc -c < "$logs/watch-$n.ndjson")" -gt "$rotate_bytes" ]; then
                log "$n: restarting to rotate watch-$n.ndjson"
                stop "$n"
            fi
        done
        if [ -f "$err" ] && [ "$(wc -c < "$err")" -gt "$rotate_bytes" ]; then
            log "restarting every pipeline to rotate watch.stderr"
            for n in "${names[@]}"; do stop "$n"; done
            rotate_if_large "$err"
        fi
        rotate_if_large "$log_file"
    fi
done

log "SIG$stopping: stopping"
for n in "${names[@]}"; do stop "$n"; done
if [ -n "$tick" ]; then kill -KILL "$tick" 2>/dev/null || true; fi
log "=== pitcrew-watch stopped ==="
exit 0
