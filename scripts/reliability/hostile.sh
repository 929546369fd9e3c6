# shellcheck shell=bash disable=SC2154,SC2016
# Hostile input at full size: a 100 MB line (and a 1 GB stream of them), 1 MB of '[', and the
# other classes of tests/hostile.rs, to every NDJSON tool, to rollup's metrics files and to
# cellscan's cell files and heartbeat endpoint, with peak memory measured.
# HOSTILE_PARTS picks some of them (default: "ndjson rollup cellscan").

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
    local parts=" ${HOSTILE_PARTS:-ndjson rollup cellscan} "
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
