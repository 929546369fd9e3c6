# shellcheck shell=bash disable=SC2154
# Hostile input at full size: a 100 MB line (and a 1 GB stream of them), 1 MB of '[', and the
# other classes of tests/hostile.rs, to every NDJSON tool, with peak memory measured.

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
