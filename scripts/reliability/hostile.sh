# shellcheck shell=bash disable=SC2154,SC2016
# Hostile input at full size: a 100 MB line (and a 1 GB stream of them), 1 MB of '[', and the
# other classes of tests/hostile.rs, to every NDJSON tool, to rollup's metrics files and to
# cellscan's cell files and heartbeat endpoint, with peak memory measured; and the trust
# boundaries: planted links, FIFOs and /dev/zero where files are read, records that lie,
# clients that starve tickmon serve, state removed or a disk full under it, secrets, escapes.
# HOSTILE_PARTS picks some of them (default: "ndjson rollup cellscan trust").

# tool_cmd NAME: the command line that reads NDJSON from stdin.
tool_cmd() {
    case $1 in
        probe) echo "$bin/probe --services - --no-metrics" ;;
        recover) echo "$bin/recover" ;;
        notify) echo "$bin/notify" ;;
        board) echo "$bin/board ingest" ;;
        tickmon) echo "$bin/tickmon check --month 2026-11 --now 2026-11-02T00:00:00Z --registry $work/reg.json -" ;;
    esac
}

reliability_hostile() {
    local parts=" ${HOSTILE_PARTS:-ndjson rollup cellscan trust} "
    if [[ $parts == *" trust "* ]]; then hostile_trust; fi
    if [[ $parts == *" rollup "* ]]; then hostile_rollup; fi
    if [[ $parts == *" cellscan "* ]]; then hostile_cellscan; fi
    if [[ $parts != *" ndjson "* ]]; then return 0; fi
    heading "hostile input: every NDJSON tool, valid lines around each hostile one"
    export AGENT_OPS_HOME="$work/hostile-home"
    echo '{"agents":[{"id":"atlas"}]}' >"$work/reg.json"
    python3 - "$work" <<'PY'
import sys
w = sys.argv[1]
valid = lambda i: b'{"kind":"note","i":%d,"name":"n%d","type":"process","process_name":"x"}\n' % (i, i)
classes = {
    "line100m": [b'{"kind":"note","pad":"' + b"x" * (100 << 20) + b'"}'],
    "stream1g": [b"y" * (100 << 20)] * 10,
    "brackets1m": [b"[" * (1 << 20)],
    "deep65": [b'{"a":' + b"[" * 64 + b"1" + b"]" * 64 + b"}"],
    "utf8": [b'{"kind":"note","t":"\xff\xfe\xc0\x80"}', b"\xed\xa0\x80"],
    "nul": [b"\0" * 1000, b'{"kind":"note"}\0'],
    "numbers": [b'{"n":1e400}', b'{"n":-1e400}', b'{"n":' + b"9" * 100000 + b"}"],
}
for name, bad in classes.items():
    with open(f"{w}/in-{name}", "wb") as f:
        i = 0
        for b in bad:
            f.write(valid(i)); i += 1
            f.write(b + b"\n")
        f.write(valid(i))
    with open(f"{w}/in-{name}.n", "w") as f:
        f.write(f"{len(bad)} {len(bad) + 1}\n")
PY
    printf '| tool | input | exit | rejected lines | valid records out | peak RSS | wall |\n|---|---|---|---|---|---|---|\n'
    local t c
    for c in line100m stream1g brackets1m deep65 utf8 nul numbers; do
        local bad good
        read -r bad good <"$work/in-$c.n"
        for t in probe recover notify board tickmon; do
            local cmd out err code rss wall rejected kept
            cmd=$(tool_cmd "$t")
            out="$work/out-$t-$c" err="$work/err-$t-$c"
            code=0
            # shellcheck disable=SC2086
            /usr/bin/time -f '%M %e' -o "$work/time" $cmd <"$work/in-$c" >"$out" 2>"$err" || code=$?
            read -r rss wall < <(tail -1 "$work/time")
            rejected=$(grep -c 'stdin:[0-9]*: ' "$err" || true)
            if [ "$t" = probe ]; then
                kept=$(grep -c '"kind":"check"' "$out" || true)
            else
                kept=$(grep -c '"kind":"note"' "$out" || true)
            fi
            printf '| %s | %s | %s | %s of %s | %s of %s | %s MiB | %s s |\n' "$t" "$c" "$code" "$rejected" "$bad" \
                "$kept" "$good" "$((rss / 1024))" "$wall"
            [ "$rejected" -eq "$bad" ] || fail "$t on $c: $rejected of $bad hostile lines reported"
            [ "$kept" -eq "$good" ] || fail "$t on $c: $kept of $good valid records kept"
            [ "$code" -eq 3 ] || [ "$code" -eq 1 ] || fail "$t on $c: exit $code"
            [ "$rss" -lt 102400 ] || fail "$t on $c: peak RSS $((rss / 1024)) MiB"
            ! grep -q panicked "$err" || fail "$t on $c panicked"
        done
    done
    unset AGENT_OPS_HOME
}

# rollup: each hostile class in a daily metrics file, between valid check lines; the first
# is named with file:line, all are counted, every valid line is counted.
hostile_rollup() {
    heading "hostile input: rollup's metrics files, valid check lines around each hostile one"
    python3 - "$work" <<'PY'
import gzip, sys
w = sys.argv[1]
valid = lambda i: b'{"name":"svc","status":"up","latency_ms":%d,"timestamp":"2026-11-19T10:00:00Z"}\n' % i
classes = {
    "line100m": [b'{"name":"svc","status":"up","pad":"' + b"x" * (100 << 20) + b'"}'],
    "stream1g": [b"y" * (100 << 20)] * 10,
    "brackets1m": [b"[" * (1 << 20)],
    "deep_name": [b'{"name":' + b"[" * 100000 + b"1" + b"]" * 100000 + b',"status":"up"}'],
    "utf8": [b'{"name":"\xff\xfe\xc0\x80","status":"up"}', b"\xed\xa0\x80"],
    "nul": [b"\0" * 1000, b'{"name":"svc","status":"up"}\0'],
    "numbers": [b'{"name":"svc","status":"up","latency_ms":1e400}', b'{"name":"svc","status":"up","latency_ms":-1e400}',
                b'{"name":"svc","status":"up","latency_ms":' + b"9" * 100000 + b"}"],
}
for name, bad in classes.items():
    with open(f"{w}/m-{name}.jsonl", "wb") as f:
        i = 0
        for b in bad:
            f.write(valid(i)); i += 1
            f.write(b + b"\n")
        f.write(valid(i))
    with open(f"{w}/m-{name}.n", "w") as f:
        f.write(f"{len(bad)} {len(bad) + 1}\n")
# A gigabyte of one line, gzipped to about a megabyte (as rollup compact writes).
with open(f"{w}/m-stream1g.jsonl", "rb") as src, gzip.open(f"{w}/m-gz1g.jsonl.gz", "wb") as dst:
    while chunk := src.read(1 << 24):
        dst.write(chunk)
with open(f"{w}/m-gz1g.n", "w") as f:
    f.write("10 11\n")
PY
    printf '| input | exit | first reported | rejected (counted) | valid lines counted | peak RSS | wall |\n|---|---|---|---|---|---|---|\n'
    local c f
    for c in line100m stream1g gz1g brackets1m deep_name utf8 nul numbers; do
        local bad good code=0 rss wall counted kept first
        read -r bad good <"$work/m-$c.n"
        f="$work/m-$c.jsonl"
        [ -e "$f" ] || f="$f.gz"
        /usr/bin/time -f '%M %e' -o "$work/time" "$bin/rollup" "$f" --now 2026-11-20T00:00:00Z \
            >"$work/out-rollup-$c" 2>"$work/err-rollup-$c" || code=$?
        read -r rss wall < <(tail -1 "$work/time")
        counted=$(grep -o '[0-9]* malformed line' "$work/err-rollup-$c" | cut -d' ' -f1)
        first=$(grep -o 'first: [^)]*' "$work/err-rollup-$c" | sed "s|$work/||" | cut -c8-200)
        kept=$(jq -s 'map(select(.name == "svc") | .total_checks) | add // 0' "$work/out-rollup-$c")
        printf '| %s | %s | `%s` | %s of %s | %s of %s | %s MiB | %s s |\n' "$c" "$code" "$first" "${counted:-0}" "$bad" \
            "$kept" "$good" "$((rss / 1024))" "$wall"
        [ "${counted:-0}" -eq "$bad" ] || fail "rollup on $c: ${counted:-0} of $bad hostile lines counted"
        [ "$kept" -eq "$good" ] || fail "rollup on $c: $kept of $good valid lines counted"
        [ "$code" -eq 3 ] || fail "rollup on $c: exit $code"
        [ "$rss" -lt 102400 ] || fail "rollup on $c: peak RSS $((rss / 1024)) MiB"
        ! grep -q panicked "$work/err-rollup-$c" || fail "rollup on $c panicked"
    done
}

# cellscan: hostile cell, agent and task files beside a sound cell; then a heartbeat endpoint
# that never answers, one that sends random bytes and one that answers garbage JSON.
hostile_cellscan() {
    heading "hostile input: cellscan's cell files and heartbeat endpoint"
    local m="$work/missions"
    mkdir -p "$m/good/agents" "$m/evil/agents" "$m/evil/tasks"
    echo '{"cell_id":"good","mission_name":"m","status":"active","isolation_level":"level_1"}' >"$m/good/cell.json"
    for i in $(seq 200); do
        echo "{\"agent_id\":\"a$i\",\"role\":\"read\",\"status\":\"idle\",\"checkpoint\":null}" >"$m/good/agents/a$i.json"
    done
    python3 - "$m/evil" <<'PY'
import sys
d = sys.argv[1]
files = {
    "cell.json": b'{"cell_id":"../../etc","mission_name":"x","status":"active","isolation_level":"level_1","max_agents":1e400,"timeout":18446744073709551616}',
    "agents/traversal.json": b'{"agent_id":"../../etc/passwd","role":"lead","status":"failed","heartbeat_id":"..%2F.."}',
    "agents/nul.json": b'{"agent_id":"b","role":"lead","status":"idle","name":"\xff\x00"}',
    "agents/brackets.json": b"[" * (1 << 20),
    "agents/giant.json": b'{"agent_id":"g","role":"lead","status":"idle","name":"' + b"x" * (100 << 20) + b'"}',
    "tasks/traversal.json": b'{"task_id":"../t","title":"T","status":"pending","priority":"low","dependencies":["../../x"]}',
    "tasks/deep.json": b'{"task_id":"t4","title":"T","status":"pending","priority":"low","x":' + b"[" * 1000000 + b"]" * 1000000 + b"}",
}
for name, data in files.items():
    with open(f"{d}/{name}", "wb") as f:
        f.write(data)
PY
    local code=0 rss wall
    /usr/bin/time -f '%M %e' -o "$work/time" "$bin/cellscan" scan "$m" >"$work/out-cellscan" 2>"$work/err-cellscan" || code=$?
    read -r rss wall < <(tail -1 "$work/time")
    local findings healthy
    findings=$(jq -s 'map(select(.kind == "finding" and .cell == "evil" and .level == "error")) | length' "$work/out-cellscan")
    healthy=$(jq -s 'map(select(.kind == "agent" and .cell == "good" and .health == "healthy")) | length' "$work/out-cellscan")
    printf '| input | exit | what cellscan said | sound agents reported | peak RSS | wall |\n|---|---|---|---|---|---|\n'
    printf '| 7 hostile files (../ ids, 1e400, NUL, 1 MiB of `[`, 2 million brackets, 100 MB) beside a sound cell of 200 agents | %s | %s error findings: %s | %s of 200 | %s MiB | %s s |\n' \
        "$code" "$findings" "$(jq -r -s 'map(select(.kind == "finding" and .cell == "evil" and .level == "error") | .problem) | group_by(.) | map("\(.[0]) \(length)") | join(", ")' "$work/out-cellscan")" \
        "$healthy" "$((rss / 1024))" "$wall"
    [ "$healthy" -eq 200 ] || fail "cellscan reported $healthy of 200 sound agents"
    [ "$code" -eq 1 ] || fail "cellscan on hostile files: exit $code"
    [ "$rss" -lt 102400 ] || fail "cellscan on hostile files: peak RSS $((rss / 1024)) MiB"
    [ ! -e "$work/etc" ] || fail "cellscan wrote outside the missions directory"
    ! grep -q panicked "$work/err-cellscan" || fail "cellscan panicked"

    rm -rf "$m/evil"
    coproc PEERS { exec python3 -u - <<'PY'
import os, socket, threading
def serve(kind):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(512)
    print(s.getsockname()[1], flush=True)
    held = []
    def loop():
        while True:
            c, _ = s.accept()
            if kind == "silent":
                held.append(c)
            elif kind == "random":
                try: c.sendall(os.urandom(4096)); c.close()
                except OSError: pass
            else:
                try:
                    c.recv(65536)
                    body = b"[" * 100000
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body); c.close()
                except OSError: pass
    threading.Thread(target=loop, daemon=True).start()
for k in ("silent", "random", "json"):
    serve(k)
threading.Event().wait()
PY
    }
    pids+=("$PEERS_PID")
    local port kind
    for kind in "never answers" "sends 4 KiB of random bytes" "answers 200 with 100 000 brackets"; do
        read -r port <&"${PEERS[0]}"
        code=0
        /usr/bin/time -f '%M %e' -o "$work/time" "$bin/cellscan" scan "$m" --heartbeat-url "http://127.0.0.1:$port" \
            --heartbeat-timeout 2 >"$work/out-hb" 2>"$work/err-hb" || code=$?
        read -r rss wall < <(tail -1 "$work/time")
        local agents said
        agents=$(jq -s 'map(select(.kind == "agent")) | length' "$work/out-hb")
        said=$(jq -r -s 'map(select(.kind == "finding" and .level != "info") | .problem) | group_by(.) | map("\(.[0]) \(length)") | join(", ")' "$work/out-hb")
        printf '| heartbeat endpoint that %s, 200 agents, timeout 2 s | %s | %s | %s of 200 | %s MiB | %s s |\n' \
            "$kind" "$code" "${said:-none}" "$agents" "$((rss / 1024))" "$wall"
        [ "$agents" -eq 200 ] || fail "cellscan against a peer that $kind: $agents of 200 agents"
        awk -v w="$wall" 'BEGIN {exit !(w < 10)}' || fail "cellscan against a peer that $kind took $wall s"
        ! grep -q panicked "$work/err-hb" || fail "cellscan panicked against a peer that $kind"
    done
    kill "$PEERS_PID" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------
# Trust boundaries: one row per case, by area, with the figure measured.

trust_row() { printf '| %s | %s | %s | %s | %s |\n' "$@"; }
# held CASE CONDITION...: "yes", or "NO" and the run fails.
held() {
    local what=$1
    shift
    if "$@"; then echo yes; else fail "$what"; echo NO; fi
}
untouched() { [ "$(cat "$1")" = precious ]; }
# peak_wall CMD...: run CMD (output to $work/pw.out, $work/pw.err); "RSS_MiB WALL_s EXIT".
peak_wall() {
    local code=0
    /usr/bin/time -f '%M %e' -o "$work/time" "$@" >"$work/pw.out" 2>"$work/pw.err" || code=$?
    awk -v c="$code" '{printf "%.1f %s %s", $1/1024, $2, c}' <(tail -1 "$work/time")
}
# tm_serve NAME ARGS...: a server on a free port with state under $work/NAME; sets tm_pid, tm_addr.
tm_serve() {
    local dir="$work/$1"
    shift
    mkdir -p "$dir"
    "$bin/tickmon" serve --listen 127.0.0.1:0 --state "$dir/hb.json" "$@" >"$dir/out" 2>"$dir/err" &
    tm_pid=$!
    pids+=("$tm_pid")
    tm_addr=""
    for _ in $(seq 200); do
        tm_addr=$(sed -n 's/.*listening on http:\/\/\([^ ]*\).*/\1/p' "$dir/err")
        [ -n "$tm_addr" ] && return 0
        sleep 0.05
    done
    fail "tickmon serve did not start: $(cat "$dir/err")"
    return 1
}
vmhwm_mib() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

hostile_trust() {
    heading "trust boundaries: files, the stream and the network, by area"
    local t="$work/trust" py="$root/scripts/reliability/trust.py"
    mkdir -p "$t"
    printf '| area | hostile case | what pitcrew did | figure | held |\n|---|---|---|---|---|\n'
    export AGENT_OPS_HOME="$t/home"
    mkdir -p "$t/home/state" "$t/home/metrics" "$t/outside"
    echo precious >"$t/outside/precious"

    # --- writes: links planted where pitcrew writes
    local day r m pw_code code=0
    day=$(date -u +%F)
    ln -sf "$t/outside/precious" "$t/home/metrics/$day.jsonl"
    echo '{"name":"p","type":"port","port":9}' | "$bin/probe" --services - >/dev/null 2>"$t/err" || true
    trust_row "writes" "metrics/$day.jsonl a link to a file outside" "$(grep -o 'symbolic link' "$t/err" | head -1): refused, said" \
        "-" "$(held "metrics link followed" untouched "$t/outside/precious")"
    rm -f "$t/home/metrics/$day.jsonl"
    # Links at the names a writer of the old scheme would use: .NAME.PID.tmp for the next 300 pids.
    local next
    next=$(cat /proc/sys/kernel/ns_last_pid 2>/dev/null || echo 1000)
    for p in $(seq $((next + 1)) $((next + 300))); do ln -sf "$t/outside/precious" "$t/home/state/.notify.json.$p.tmp"; done
    echo '{"kind":"check","name":"x","status":"down"}' | "$bin/notify" --dry-run >/dev/null 2>&1 || true
    echo '{"kind":"check","name":"x","status":"down"}' | "$bin/notify" >/dev/null 2>&1 || true
    trust_row "writes" "links planted at .notify.json.PID.tmp for the next 300 pids" "temporaries created O_EXCL under unpredictable names" \
        "$(find "$t/home/state" -maxdepth 1 -name '.notify.json.*.tmp' | wc -l) links left alone" "$(held "planted temporary followed" untouched "$t/outside/precious")"
    rm -f "$t/home/state"/.notify.json.*.tmp
    local cell="$t/missions/c1"
    mkdir -p "$cell/agents" "$cell/config" "$cell/logs"
    echo '{"cell_id":"c1","mission_name":"m","status":"active","isolation_level":"level_1"}' >"$cell/cell.json"
    echo '{"agent_id":"a1","role":"lead","status":"failed","checkpoint":null}' >"$cell/agents/a1.json"
    echo "{\"auto_revive\":\"yes\",\"revive_command\":\"true\",\"revive_timeout\":5}" >"$cell/config/policies.json"
    ln -sf "$t/outside/precious" "$cell/logs/mission.log"
    "$bin/cellscan" revive "$t/missions" >/dev/null 2>"$t/err" || true
    trust_row "writes" "a cell's logs/mission.log a link outside (agents write in cells)" "refused, named on stderr" "-" \
        "$(held "mission.log link followed" untouched "$t/outside/precious")"
    rm -rf "$cell/logs" && mkdir -p "$t/outside/dir" && ln -s "$t/outside/dir" "$cell/logs"
    "$bin/cellscan" revive "$t/missions" >"$t/out" 2>&1 || true
    trust_row "writes" "a cell's logs/ a link to a directory outside" "revive_error finding: symbolic link" \
        "$(find "$t/outside/dir" -type f | wc -l) files written outside" "$(held "logs/ link followed" test -z "$(ls -A "$t/outside/dir")")"
    rm -f "$cell/logs"
    ln -sf "$t/outside/precious" "$t/home/state/recovery.json"
    echo '{"services":[{"name":"api","type":"port","port":9,"restart_command":"true","verify_delay_seconds":0}]}' >"$t/rec.json"
    code=0
    echo '{"kind":"check","name":"api","status":"down"}' | "$bin/recover" --config "$t/rec.json" >/dev/null 2>"$t/err" || code=$?
    trust_row "writes" "state/recovery.json a link to a file outside" "$(grep -o 'it is a symbolic link' "$t/err" | head -1): refused (exit $code)" "-" \
        "$(held "state link followed" untouched "$t/outside/precious")"
    rm -f "$t/home/state/recovery.json"

    # --- reads: FIFOs, /dev/zero and giant files where pitcrew reads
    mkdir -p "$t/home/ticks/$(date -u +%Y-%m)"
    echo '{"agents":[{"id":"atlas"}]}' >"$t/reg.json"
    ln -sf /dev/zero "$t/home/ticks/$(date -u +%Y-%m)/atlas.json"
    read -r m r pw_code < <(peak_wall timeout 60 "$bin/tickmon" check --registry "$t/reg.json")
    trust_row "reads" "a tick linked to /dev/zero (git stores links), tickmon check" "invalid_tick finding: symbolic link, not followed" \
        "peak RSS $m MiB, $r s" "$(held "tick /dev/zero" awk -v m="$m" 'BEGIN {exit !(m < 100)}')"
    read -r m r pw_code < <(echo '{"name":"hb","type":"heartbeat","agent":"atlas"}' | peak_wall timeout 60 "$bin/probe" --services - --no-metrics)
    trust_row "reads" "the same tick, probe's heartbeat check" "down: cannot read …: symbolic link" "peak RSS $m MiB, $r s" \
        "$(held "probe tick /dev/zero" awk -v m="$m" 'BEGIN {exit !(m < 100)}')"
    rm -f "$t/home/ticks/$(date -u +%Y-%m)/atlas.json"
    head -c 1073741824 /dev/zero | tr '\0' ' ' >"$t/home/ticks/$(date -u +%Y-%m)/atlas.json"
    read -r m r pw_code < <(peak_wall timeout 60 "$bin/tickmon" check --registry "$t/reg.json")
    trust_row "reads" "a 1 GiB tick file" "refused by its size before a byte is read (cap 1 MiB)" "peak RSS $m MiB, $r s" \
        "$(held "1 GiB tick" awk -v m="$m" 'BEGIN {exit !(m < 100)}')"
    rm -f "$t/home/ticks/$(date -u +%Y-%m)/atlas.json"
    mkfifo "$cell/agents/agent_009.json"
    read -r m r pw_code < <(peak_wall timeout 60 "$bin/cellscan" scan "$t/missions")
    trust_row "reads" "a FIFO at <cell>/agents/agent_009.json, cellscan scan" \
        "$(jq -r 'select(.kind == "finding" and (.detail | contains("agent_009"))) | .problem' "$work/pw.out" | head -1): not a regular file (a FIFO)" \
        "$r s" "$(held "cellscan FIFO" test "$pw_code" -ne 124)"
    rm -f "$cell/agents/agent_009.json"
    mkdir -p "$t/m"
    echo '{"name":"svc","status":"up","latency_ms":1,"timestamp":"2026-11-18T10:00:00Z"}' >"$t/m/2026-11-18.jsonl"
    mkfifo "$t/m/2026-11-19.jsonl"
    ln -sf /dev/zero "$t/m/2026-11-17.jsonl"
    read -r m r pw_code < <(peak_wall timeout 60 "$bin/rollup" --metrics-dir "$t/m" --days 7 --now 2026-11-20T00:00:00Z)
    trust_row "reads" "a FIFO metrics file and one linked to /dev/zero, rollup" "both named and skipped (exit $pw_code), the third day counted: $(jq -s 'map(.total_checks) | add' "$work/pw.out") check" \
        "peak RSS $m MiB, $r s" "$(held "rollup FIFO" test "$pw_code" -eq 3)"
    mkfifo "$t/in.fifo"
    read -r m r pw_code < <(peak_wall timeout 60 "$bin/notify" --dry-run "$t/in.fifo")
    trust_row "reads" "a FIFO named as an NDJSON file argument, notify" "exit $pw_code: not a regular file (a FIFO); \`-\` stays a stream" "$r s" \
        "$(held "notify FIFO argument" test "$pw_code" -eq 2)"

    # --- the stream: records only nominate
    mkdir -p "$t/elsewhere/c2/agents" "$t/elsewhere/c2/config"
    echo '{"cell_id":"c2","mission_name":"m","status":"active","isolation_level":"level_1"}' >"$t/elsewhere/c2/cell.json"
    echo '{"agent_id":"a1","role":"lead","status":"failed","checkpoint":null}' >"$t/elsewhere/c2/agents/a1.json"
    echo "{\"auto_revive\":\"yes\",\"revive_command\":\"id > $t/pwned\"}" >"$t/elsewhere/c2/config/policies.json"
    jq -nc --arg p "$t/elsewhere/c2/agents/a1.json" '{kind:"agent",cell:"c2",agent:"a1",status:"failed",health:"unhealthy",path:$p}' |
        "$bin/cellscan" revive --from - "$t/missions" >"$t/out" 2>&1 || true
    trust_row "stream" "cellscan revive --from: a record whose path is outside --missions" "$(jq -r 'select(.kind == "finding") | .problem' "$t/out" | head -1) finding" \
        "revive command ran: $([ -e "$t/pwned" ] && echo yes || echo no)" "$(held "revive outside" test ! -e "$t/pwned")"
    echo '{"agent_id":"a1","role":"lead","status":"active","checkpoint":"2099-01-01T00:00:00Z"}' >"$cell/agents/a1.json"
    echo "{\"auto_revive\":\"yes\",\"revive_command\":\"touch $t/revived\"}" >"$cell/config/policies.json"
    jq -nc --arg p "$cell/agents/a1.json" '{kind:"agent",cell:"c1",agent:"a1",status:"active",health:"unhealthy",health_source:"heartbeat",path:$p}' |
        "$bin/cellscan" revive --from - "$t/missions" >/dev/null 2>&1 || true
    trust_row "stream" "a record that claims health unhealthy for an agent whose file says active" "assessed from the files (and the endpoint, when given): nothing to do" \
        "revived: $([ -e "$t/revived" ] && echo yes || echo no)" "$(held "revive on a claim" test ! -e "$t/revived")"

    # --- the network: tickmon serve starved, emptied, read in parallel
    local s
    tm_serve starve --timeout 3
    s=$( (ulimit -n 10000; python3 "$py" starve "$tm_addr" 4300 20) )
    kill "$tm_pid" 2>/dev/null; wait "$tm_pid" 2>/dev/null || true
    trust_row "network" "4,300 idle connections held, 100 more every 50 ms, for 20 s (no token); an agent beating every 0.5 s, another silent; --timeout 3s" \
        "answers $(jq -c .answers <<<"$s"), $(jq .evicted <<<"$s") of $(jq .opened <<<"$s") idle connections evicted, $(jq .refused <<<"$s") refused; the silent agent stays $(jq -r .quiet <<<"$s"); 'under pressure' said $(grep -c 'under pressure' "$work/starve/err") time(s)" \
        "slowest heartbeat $(jq .slowest_ms <<<"$s") ms; connections held at most $(jq .peak_open <<<"$s") of 4096" \
        "$(held "starvation" test "$(jq '(.answers | keys) == ["200"] and .quiet == "healthy"' <<<"$s")" = true)"
    (ulimit -n 1024; exec "$bin/tickmon" serve --listen 127.0.0.1:0 --state "$work/starve1024/hb.json" --timeout 3 >/dev/null 2>"$work/starve1024.err") &
    tm_pid=$!
    pids+=("$tm_pid")
    mkdir -p "$work/starve1024"
    for _ in $(seq 200); do
        tm_addr=$(sed -n 's/.*listening on http:\/\/\([^ ]*\).*/\1/p' "$work/starve1024.err")
        [ -n "$tm_addr" ] && break
        sleep 0.05
    done
    s=$( (ulimit -n 10000; python3 "$py" starve "$tm_addr" 1100 10) )
    kill "$tm_pid" 2>/dev/null; wait "$tm_pid" 2>/dev/null || true
    trust_row "network" "the same with the server under ulimit -n 1024 and 1,100 connections held" \
        "answers $(jq -c .answers <<<"$s"); the limit fitted to $(grep -o 'at most [0-9]* connections' "$work/starve1024.err" | head -1 || echo '?'); silent agent $(jq -r .quiet <<<"$s")" \
        "slowest heartbeat $(jq .slowest_ms <<<"$s") ms; held at most $(jq .peak_open <<<"$s")" \
        "$(held "starvation at 1024 fds" test "$(jq '(.answers | keys) == ["200"] and .quiet == "healthy"' <<<"$s")" = true)"

    tm_serve rm
    python3 "$py" beats "$tm_addr" a1 1 >/dev/null
    rm -f "$work/rm/hb.json.journal"
    local acked kept
    acked=$(python3 "$py" beats "$tm_addr" a2 13)
    kill -9 "$tm_pid"; wait "$tm_pid" 2>/dev/null || true
    kept=$("$bin/tickmon" heartbeats --state "$work/rm/hb.json" | jq -s 'map(.heartbeats) | add')
    trust_row "state" "rm heartbeats.json.journal under tickmon serve, 13 heartbeats, kill -9" "a new journal started and the state saved before the next acknowledgement" \
        "$acked acknowledged after the rm, $kept of 14 kept" "$(held "deleted journal" test "$kept" -eq 14)"
    tm_serve rm
    local first=$tm_pid
    rm -f "$work/rm/hb.json.lock"
    "$bin/tickmon" serve --listen 127.0.0.1:0 --state "$work/rm/hb.json" >/dev/null 2>"$work/rm/second.err" &
    local second=$!
    sleep 1
    local started=no
    kill -0 "$second" 2>/dev/null && started=yes
    kill "$second" "$first" 2>/dev/null; wait "$second" "$first" 2>/dev/null || true
    trust_row "state" "rm heartbeats.json.lock, then a second server on the same state" "$(grep -o 'another tickmon serve is using this state directory' "$work/rm/second.err" | head -1)" \
        "second server started: $started" "$(held "second server after rm lock" test "$started" = no)"

    tm_serve health --max-agents 3000
    python3 "$py" fill "$tm_addr" 2000 60000 >/dev/null
    local before bare full
    before=$(vmhwm_mib "$tm_pid")
    bare=$(python3 "$py" readers "$tm_addr" 1 /health | jq .bytes)
    full=$(python3 "$py" readers "$tm_addr" 16 '/health?metadata=1')
    local peak
    peak=$(vmhwm_mib "$tm_pid")
    kill "$tm_pid"; wait "$tm_pid" 2>/dev/null || true
    trust_row "network" "2,000 agents with 60 KB of metadata; 16 parallel GET /health?metadata=1 (120 MB answers)" \
        "streamed in 256 KiB chunks, 8 at once; /health without metadata: $((bare / 1024)) KiB" \
        "$(jq .ok <<<"$full") of 16 answered; peak RSS $before MiB before, $peak MiB after" \
        "$(held "/health memory" awk -v a="$before" -v b="$peak" 'BEGIN {exit !(b - a < 200)}')"

    # A full disk: a 2 MiB tmpfs when this runs as root, else a file size limit (EFBIG).
    tm_serve full
    python3 "$py" fill "$tm_addr" 1 60000 >/dev/null
    kill "$tm_pid"; wait "$tm_pid" 2>/dev/null || true
    local how
    code=0
    if [ "$(id -u)" = 0 ] && mkdir -p "$work/tmpfs" && mount -t tmpfs -o size=2m tmpfs "$work/tmpfs" 2>/dev/null; then
        how="a 2 MiB tmpfs filled while it runs"
        cp "$work/full/hb.json" "$work/tmpfs/hb.json"
        tm_serve_at() { "$bin/tickmon" serve --listen 127.0.0.1:0 --state "$work/tmpfs/hb.json" >/dev/null 2>"$work/full/err2" & tm_pid=$!; }
    else
        how="ulimit -f 200 (EFBIG, as ENOSPC)"
        cp "$work/full/hb.json" "$work/full2.json"
        tm_serve_at() { (trap '' XFSZ; ulimit -f 200; exec "$bin/tickmon" serve --listen 127.0.0.1:0 --state "$work/full2.json" >/dev/null 2>"$work/full/err2") & tm_pid=$!; }
    fi
    tm_serve_at
    pids+=("$tm_pid")
    for _ in $(seq 200); do
        tm_addr=$(sed -n 's/.*listening on http:\/\/\([^ ]*\).*/\1/p' "$work/full/err2")
        [ -n "$tm_addr" ] && break
        sleep 0.05
    done
    python3 "$py" fill "$tm_addr" 20 60000 >/dev/null
    [ -d "$work/tmpfs" ] && mountpoint -q "$work/tmpfs" && { dd if=/dev/zero of="$work/tmpfs/fill" bs=64k 2>/dev/null || true; }
    kill "$tm_pid"; wait "$tm_pid" || code=$?
    mountpoint -q "$work/tmpfs" 2>/dev/null && umount "$work/tmpfs"
    trust_row "state" "tickmon serve stopped on a full disk ($how)" "$(grep -o 'the state was NOT saved' "$work/full/err2" | head -1); the journal named" \
        "exit $code" "$(held "full disk" test "$code" -eq 2)"

    # --- notify's memory
    python3 - "$t/notify-in" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(2000):
        f.write(json.dumps({"kind": "check", "name": f"svc-{i}-" + "n" * 1000, "status": "down", "detail": "d" * 43000}) + "\n")
PY
    read -r m r pw_code < <(peak_wall "$bin/notify" --dry-run "$t/notify-in")
    local m2 size
    "$bin/notify" "$t/notify-in" >/dev/null 2>&1 || true
    size=$(stat -c %s "$t/home/state/notify.json")
    read -r m2 _ pw_code < <(peak_wall "$bin/notify" </dev/null)
    trust_row "memory" "notify fed 88 MB of records (2,000 subjects, 43 KB details)" "strings kept at most 4 KiB, subjects at most 10 000" \
        "run: peak RSS $m MiB; notify.json $((size / 1024)) KiB; next run, empty input: peak RSS $m2 MiB" \
        "$(held "notify state bounded" test "$size" -lt 50000000)"

    # --- secrets
    cat >"$t/home/config.json" <<JSON
{"services": [{"name": "site", "type": "url", "target": "http://admin:pw-S3CRET@127.0.0.1:9/?api_key=K-S3CRET"},
  {"name": "api", "type": "port", "port": 9, "restart_command": "env > $t/env-seen", "verify_delay_seconds": 0}]}
JSON
    "$bin/probe" --config "$t/home/config.json" >"$t/out" 2>&1 || true
    TELEGRAM_BOT_TOKEN=tg-S3CRET GITEA_TOKEN=gt-S3CRET "$bin/recover" --config "$t/home/config.json" <"$t/out" >/dev/null 2>&1 || true
    local leaks
    leaks=$(cat "$t/out" "$t/home/metrics"/*.jsonl "$t/env-seen" 2>/dev/null | grep -c S3CRET || true)
    trust_row "secrets" "a check URL with userinfo and api_key; a restart command run with TELEGRAM_BOT_TOKEN and GITEA_TOKEN set" \
        "target shown as $(jq -r 'select(.name == "site") | .target' "$t/out" | head -1); tokens removed from the command's environment" \
        "$leaks occurrences in output, metrics and the command's env; notify.json mode $(stat -c %a "$t/home/state/notify.json")" \
        "$(held "secrets" test "$leaks" -eq 0)"

    # --- terminals
    tm_serve esc
    python3 - "$tm_addr" <<'PY'
import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(f"http://{sys.argv[1]}/heartbeat/a1/fail", data=b"boom\x1b]0;owned\x07\x1b[2J", method="POST"))
PY
    kill "$tm_pid"; wait "$tm_pid" 2>/dev/null || true
    local raw
    raw=$("$bin/tickmon" heartbeats --state "$work/esc/hb.json" --format text | tr -cd '\033' | wc -c)
    trust_row "terminals" "an agent's failure text with a title change and a screen clear, tickmon heartbeats --format text" \
        "shown as $("$bin/tickmon" heartbeats --state "$work/esc/hb.json" --format text | grep -o 'boom[^ ]*' | head -1)" "$raw raw ESC bytes" "$(held "escapes" test "$raw" -eq 0)"

    # --- numbers
    printf '%s\n' '{"name":"svc","status":"up","latency_ms":1.7976931348623157e308,"timestamp":"2026-11-19T10:00:00Z"}' \
        '{"name":"svc","status":"up","latency_ms":1.7976931348623157e308,"timestamp":"2026-11-19T10:00:00Z"}' \
        '{"name":"svc","status":"up","latency_ms":-1e308,"timestamp":"2026-11-19T10:00:00Z"}' \
        '{"name":"svc","status":"up","latency_ms":12,"timestamp":"2026-11-19T10:00:00Z"}' >"$t/lat.jsonl"
    code=0
    "$bin/rollup" "$t/lat.jsonl" --now 2026-11-20T00:00:00Z >"$t/out" 2>"$t/err" || code=$?
    trust_row "numbers" "latencies 1.7976931348623157e308 (twice) and -1e308" "$(grep -o '[0-9]* malformed line(s)' "$t/err") (exit $code)" \
        "avg_latency_ms $(jq .avg_latency_ms "$t/out")" "$(held "latencies" test "$code" -eq 3)"
    unset AGENT_OPS_HOME
}
