# shellcheck shell=bash disable=SC2154,SC2016
# Sourced by scripts/integration.sh: needs $work, $bin, fail, section.
#
# pitcrew-watch supervising its pipelines. The stages here are stand-ins that speak the
# command lines pitcrew-watch runs (probe --watch, recover --follow, notify --follow, tickmon
# heartbeats --follow --timeout N) and refuse any other, so that what is proven is the
# supervisor: a killed stage restarts its whole pipeline, SIGTERM ends everything with exit 0,
# one watch per home, and the orchestrator leaves the checks to a running watch.

section "pitcrew-watch restarts a pipeline whose stage dies, and SIGTERM ends it all with exit 0"
wh="$work/watch"
standins="$wh/bin"
mkdir -p "$standins"
# stand_in NAME EXPECTED-ARGS BODY: a stage that records its pid and checks its arguments.
stand_in() {
    cat > "$standins/$1" <<SH
#!/usr/bin/env bash
if [ "\$*" != "$2" ]; then echo "$1 stand-in: called as '\$*', not '$2'" >&2; exit 2; fi
echo \$\$ >> "$wh/$1.pids"
$3
SH
    chmod +x "$standins/$1"
}
# The first stage writes a record every 0.2 s until SIGTERM; the others pass lines on.
stand_in probe "--watch" 'trap "exit 0" TERM
i=0
while :; do i=$((i + 1)); printf "{\"kind\":\"check\",\"name\":\"s%d\",\"status\":\"up\"}\n" "$i"; sleep 0.2 & wait $!; done'
stand_in tickmon "heartbeats --follow --timeout 300" 'trap "exit 0" TERM
while :; do printf "{\"kind\":\"heartbeat\",\"agent\":\"a\",\"status\":\"healthy\"}\n"; sleep 0.2 & wait $!; done'
stand_in recover "--follow" 'while IFS= read -r l; do printf "%s\n" "$l"; done'
stand_in notify "--follow" 'while IFS= read -r l; do printf "%s\n" "$l"; done'

slow="${PITCREW_TEST_SLOWDOWN:-1}"
# eventually SECONDS CMD...: CMD succeeds within SECONDS (stretched by PITCREW_TEST_SLOWDOWN).
eventually() {
    local tries
    tries=$(awk -v s="$1" -v f="$slow" 'BEGIN { printf "%d", s * (f > 1 ? f : 1) * 10 }')
    shift
    for _ in $(seq 1 "$tries"); do
        if "$@"; then return 0; fi
        sleep 0.1
    done
    return 1
}
started() { [ "$(grep -c "$1: started" "$wh/home/logs/watch.log" 2>/dev/null)" -ge "$2" ]; }
lines() { [ "$({ wc -l < "$wh/home/logs/watch-$1.ndjson"; } 2>/dev/null || echo 0)" -ge "$2" ]; }
last_pid() { tail -n 1 "$wh/$1.pids"; }
ended() { ! kill -0 "$1" 2>/dev/null; }

AGENT_OPS_HOME="$wh/home" PITCREW_BIN="$standins" scripts/watch.sh 2> "$wh/watch.err" &
watch_pid=$!
pids+=("$watch_pid")
eventually 30 lines health 5 || fail "no records through the health pipeline: $(cat "$wh/home/logs/watch.log" "$wh/watch.err" "$wh/home/logs/watch.stderr")"
started health 1 || fail "watch.log does not say the pipeline started"
if grep -q "heartbeats: started" "$wh/home/logs/watch.log"; then fail "heartbeats pipeline without a heartbeat state"; fi

# One watch per home.
st=0
AGENT_OPS_HOME="$wh/home" PITCREW_BIN="$standins" scripts/watch.sh 2> "$wh/second.err" || st=$?
[ "$st" -eq 1 ] || fail "a second watch on the same home exited $st"
grep -q "another pitcrew-watch runs for" "$wh/second.err" || fail "second watch: $(cat "$wh/second.err")"

# The orchestrator (the real one, with the real tools) leaves the checks to the watch.
AGENT_OPS_HOME="$wh/home" PITCREW_BIN="$bin" scripts/orchestrator.sh > /dev/null 2>&1 || true
grep -q "health (probe | recover | notify): skipped: pitcrew-watch" "$wh/home/logs/orchestrator.log" \
    || fail "the orchestrator ran the checks beside a watch: $(cat "$wh/home/logs/orchestrator.log")"

# kill -9 the middle stage: the whole pipeline is restarted, and records flow again.
old_probe=$(last_pid probe)
old_recover=$(last_pid recover)
kill -9 "$old_recover"
eventually 30 started health 2 || fail "not restarted: $(cat "$wh/home/logs/watch.log")"
grep -q "health: a stage ended after .*pid $old_recover exit 137.*restarting in 1s" "$wh/home/logs/watch.log" \
    || fail "the restart is not logged with the stage that died: $(cat "$wh/home/logs/watch.log")"
eventually 10 ended "$old_probe" || fail "the old probe stage still runs"
[ "$(last_pid recover)" != "$old_recover" ] || fail "recover was not started again"
before=$(wc -l < "$wh/home/logs/watch-health.ndjson")
eventually 30 lines health $((before + 5)) || fail "no records after the restart"

# SIGTERM: every stage ends, the watch exits 0.
stages_now="$(last_pid probe) $(last_pid recover) $(last_pid notify)"
kill -TERM "$watch_pid"
st=0
wait "$watch_pid" || st=$?
[ "$st" -eq 0 ] || fail "pitcrew-watch exited $st on SIGTERM: $(cat "$wh/watch.err")"
for p in $stages_now; do ended "$p" || fail "stage $p outlived the watch"; done
grep -q "=== pitcrew-watch stopped ===" "$wh/home/logs/watch.log" || fail "the stop is not logged"

section "pitcrew-watch runs the heartbeats pipeline when tickmon's state exists"
mkdir -p "$wh/home/state"
echo '{}' > "$wh/home/state/heartbeats.json"
AGENT_OPS_HOME="$wh/home" PITCREW_BIN="$standins" scripts/watch.sh 2> "$wh/watch.err" &
watch_pid=$!
pids+=("$watch_pid")
eventually 30 lines heartbeats 3 || fail "no records through the heartbeats pipeline: $(cat "$wh/home/logs/watch.log" "$wh/home/logs/watch.stderr")"
grep -q "heartbeats: started (tickmon heartbeats --follow --timeout 300 | notify --follow" "$wh/home/logs/watch.log" \
    || fail "$(cat "$wh/home/logs/watch.log")"
kill -TERM "$watch_pid"
st=0
wait "$watch_pid" || st=$?
[ "$st" -eq 0 ] || fail "pitcrew-watch exited $st on SIGTERM"
for p in $(last_pid tickmon) $(last_pid probe); do ended "$p" || fail "stage $p outlived the watch"; done
# --no-heartbeats leaves it out, whatever the state.
AGENT_OPS_HOME="$wh/home" PITCREW_BIN="$standins" scripts/watch.sh --no-heartbeats 2> "$wh/watch.err" &
watch_pid=$!
pids+=("$watch_pid")
eventually 30 started health 4 || fail "$(cat "$wh/home/logs/watch.log")"
kill -TERM "$watch_pid"
wait "$watch_pid" || fail "pitcrew-watch --no-heartbeats did not exit 0"
[ "$(grep -c "heartbeats: started" "$wh/home/logs/watch.log")" -eq 1 ] || fail "--no-heartbeats ran the heartbeats pipeline"

section "pitcrew-watch backs off a pipeline that keeps dying, and still stops with exit 0"
crashing="$wh/crashing"
mkdir -p "$crashing"
cp "$standins"/* "$crashing/"
printf '#!/bin/sh\necho "probe stand-in: cannot start" >&2\nexit 3\n' > "$crashing/probe"
rm -f "$wh/home/logs/watch.log"
AGENT_OPS_HOME="$wh/home" PITCREW_BIN="$crashing" scripts/watch.sh --heartbeats 2> "$wh/watch.err" &
watch_pid=$!
pids+=("$watch_pid")
eventually 40 grep -qs "health: a stage ended .*restarting in 4s" "$wh/home/logs/watch.log" \
    || fail "no backoff: $(cat "$wh/home/logs/watch.log" "$wh/watch.err")"
grep -q "health: a stage ended .*exit 3.*restarting in 1s" "$wh/home/logs/watch.log" || fail "$(cat "$wh/home/logs/watch.log")"
grep -q "health: a stage ended .*restarting in 2s" "$wh/home/logs/watch.log" || fail "$(cat "$wh/home/logs/watch.log")"
# The other pipeline is left alone while this one crashes.
[ "$(grep -c "heartbeats: started" "$wh/home/logs/watch.log")" -eq 1 ] || fail "the heartbeats pipeline was restarted too"
grep -q "probe stand-in: cannot start" "$wh/home/logs/watch.stderr" || fail "the stage's message is not in watch.stderr"
kill -TERM "$watch_pid"
st=0
wait "$watch_pid" || st=$?
[ "$st" -eq 0 ] || fail "pitcrew-watch exited $st on SIGTERM after restarts: $(cat "$wh/watch.err")"
[ ! -s "$wh/watch.err" ] || fail "pitcrew-watch said: $(cat "$wh/watch.err")"

section "pitcrew-watch runs the cells pipeline when the missions directory exists; the orchestrator leaves the cells to it"
cells_dir="$wh/missions dir"
mkdir -p "$cells_dir"
# Its records carry the missions directory it was given (through AGENT_OPS_MISSIONS).
stand_in cellscan "revive --watch --heartbeat-url http://127.0.0.1:9" 'trap "exit 0" TERM
while :; do printf "{\"kind\":\"cell\",\"cell\":\"c\",\"path\":\"%s\"}\n" "$AGENT_OPS_MISSIONS"; sleep 0.2 & wait $!; done'
rm -f "$wh/home/logs/watch.log"
PITCREW_MISSIONS="$cells_dir" PITCREW_HEARTBEAT_URL=http://127.0.0.1:9 AGENT_OPS_HOME="$wh/home" \
    PITCREW_BIN="$standins" scripts/watch.sh --no-heartbeats 2> "$wh/watch.err" &
watch_pid=$!
pids+=("$watch_pid")
eventually 30 lines cells 3 || fail "no records through the cells pipeline: $(cat "$wh/home/logs/watch.log" "$wh/watch.err" "$wh/home/logs/watch.stderr")"
grep -q "cells: started (cellscan revive --watch --heartbeat-url http://127.0.0.1:9 | notify --follow" "$wh/home/logs/watch.log" \
    || fail "$(cat "$wh/home/logs/watch.log")"
grep -qF "\"path\":\"$cells_dir\"" "$wh/home/logs/watch-cells.ndjson" || fail "cellscan was not given the missions directory: $(head -n 1 "$wh/home/logs/watch-cells.ndjson")"
grep -qx cells "$wh/home/state/watch.pipelines" || fail "watch.pipelines: $(cat "$wh/home/state/watch.pipelines")"
# The orchestrator (the real one) skips its cells phase, and says so.
PITCREW_MISSIONS="$cells_dir" AGENT_OPS_HOME="$wh/home" PITCREW_BIN="$bin" scripts/orchestrator.sh > /dev/null 2>&1 || true
grep -q "cells (cellscan scan | cellscan revive | notify): skipped: pitcrew-watch" "$wh/home/logs/orchestrator.log" \
    || fail "the orchestrator ran the cells phase beside the watch's: $(cat "$wh/home/logs/orchestrator.log")"
cells_stage=$(last_pid cellscan)
kill -TERM "$watch_pid"
st=0
wait "$watch_pid" || st=$?
[ "$st" -eq 0 ] || fail "pitcrew-watch exited $st on SIGTERM: $(cat "$wh/watch.err")"
ended "$cells_stage" || fail "the cellscan stage outlived the watch"
# No watch: the orchestrator runs the cells phase itself.
PITCREW_MISSIONS="$cells_dir" AGENT_OPS_HOME="$wh/home" PITCREW_BIN="$bin" scripts/orchestrator.sh > /dev/null 2>&1 || true
[ "$(grep -c "cells (cellscan scan | cellscan revive | notify): skipped" "$wh/home/logs/orchestrator.log")" -eq 1 ] \
    || fail "the cells phase was skipped without a watch: $(cat "$wh/home/logs/orchestrator.log")"
# --no-cells leaves it out though the directory exists; a watch without the cells pipeline
# leaves the orchestrator its cells phase.
PITCREW_MISSIONS="$cells_dir" AGENT_OPS_HOME="$wh/home" PITCREW_BIN="$standins" scripts/watch.sh --no-cells --no-heartbeats 2> "$wh/watch.err" &
watch_pid=$!
pids+=("$watch_pid")
eventually 30 started health 2 || fail "$(cat "$wh/home/logs/watch.log")"
! grep -qx cells "$wh/home/state/watch.pipelines" || fail "--no-cells still lists cells: $(cat "$wh/home/state/watch.pipelines")"
PITCREW_MISSIONS="$cells_dir" AGENT_OPS_HOME="$wh/home" PITCREW_BIN="$bin" scripts/orchestrator.sh > /dev/null 2>&1 || true
[ "$(grep -c "cells (cellscan scan | cellscan revive | notify): skipped" "$wh/home/logs/orchestrator.log")" -eq 1 ] \
    || fail "the cells phase was skipped beside a watch without cells: $(cat "$wh/home/logs/orchestrator.log")"
kill -TERM "$watch_pid"
wait "$watch_pid" || fail "pitcrew-watch --no-cells did not exit 0"
[ "$(grep -c "cells: started" "$wh/home/logs/watch.log")" -eq 1 ] || fail "--no-cells ran the cells pipeline"
