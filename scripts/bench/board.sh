# shellcheck shell=bash disable=SC2154
# board: writers under contention, and writers killed at random points. Sourced by
# scripts/bench.sh.

# board_adds HOME SHELLS PER_SHELL: SHELLS shells at once, each running PER_SHELL
# `board add` processes one after the other.
board_adds() {
    local home=$1 shells=$2 per=$3 s
    for s in $(seq 1 "$shells"); do
        (
            for i in $(seq 1 "$per"); do
                AGENT_OPS_HOME="$home" "$bin/board" add "shell $s task $i" --tag bench >/dev/null
            done
        ) &
    done
    wait
}

# board_check FILE: "tasks unique_ids" of a board file, or "unreadable". (jq -s: plain jq
# takes an empty file for a valid one.)
board_check() {
    jq -r -s 'if length == 1 then "\(.[0].tasks | length) \([.[0].tasks[].id] | unique | length)"
              else "unreadable" end' "$1" 2>/dev/null || echo unreadable
}

# random_delay MAX_S: a random number of seconds in [0, MAX_S).
random_delay() {
    awk -v r="$RANDOM$RANDOM" -v m="$1" 'BEGIN { srand(r); printf "%.4f", rand() * m }'
}

bench_board() {
    heading "board: 800 adds, one shell vs 8 shells at once"
    local one="$work/board-one" eight="$work/board-eight" t0 t1 wall1 wall8
    "$bin/board" --version >/dev/null
    t0=$(date +%s.%N)
    board_adds "$one" 1 800
    t1=$(date +%s.%N)
    wall1=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    t0=$(date +%s.%N)
    board_adds "$eight" 8 100
    t1=$(date +%s.%N)
    wall8=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    local tp1 tp8 check1 check8
    tp1=$(awk -v w="$wall1" 'BEGIN { printf "%.0f", 800 / w }')
    tp8=$(awk -v w="$wall8" 'BEGIN { printf "%.0f", 800 / w }')
    check1=$(board_check "$one/state/board.json")
    check8=$(board_check "$eight/state/board.json")
    printf '| figure | value | target |\n|---|---|---|\n'
    printf '| 800 adds from 1 shell (baseline) | %ss, %s adds/s | |\n' "$wall1" "$tp1"
    printf '| 800 adds from 8 shells x 100 at once | %ss, %s adds/s | |\n' "$wall8" "$tp8"
    printf '| throughput under contention / 1 shell | %sx | >= 0.8 |\n' "$(ratio "$tp8" "$tp1")"
    printf '| tasks, unique ids after 8 x 100 (jq parses it) | %s | 800 800 |\n' "$check8"
    printf '| tasks, unique ids after 1 x 800 | %s | 800 800 |\n' "$check1"

    heading "board: writers killed with SIGKILL at random points, 200 times"
    # The board of 800 tasks above; kills are spread over an add's whole run.
    local home="$eight" per_add rounds=200 i pid unreadable=0 bak_bad=0 killed=0 acked=0
    per_add=$(awk -v w="$wall1" 'BEGIN { printf "%.4f", w / 800 * 1.3 }')
    : > "$work/acked"
    for i in $(seq 1 "$rounds"); do
        AGENT_OPS_HOME="$home" "$bin/board" add "killed $i" --format text > "$work/ack" 2>/dev/null &
        pid=$!
        sleep "$(random_delay "$per_add")"
        kill -9 "$pid" 2>/dev/null || true
        if wait "$pid" 2>/dev/null; then
            acked=$((acked + 1))
            sed -n 's/^Created: \(task-[0-9a-f]*\) .*/\1/p' "$work/ack" >> "$work/acked"
        else
            killed=$((killed + 1))
        fi
        [ "$(board_check "$home/state/board.json")" != unreadable ] || unreadable=$((unreadable + 1))
        [ "$(board_check "$home/state/board.json.bak")" != unreadable ] || bak_bad=$((bak_bad + 1))
    done
    local lost
    lost=$(jq -r '.tasks[].id' "$home/state/board.json" | sort > "$work/present"; sort "$work/acked" | comm -23 - "$work/present" | wc -l)

    # Baseline: the same kills on a writer that rewrites the file in place (no temporary
    # file, no rename), as a naive script would.
    local naive="$work/naive.json" naive_bad=0 naive_wall
    cp "$home/state/board.json" "$naive"
    cp "$naive" "$work/naive.good"
    t0=$(date +%s.%N)
    python3 - "$naive" <<'PY'
import json, sys
p = sys.argv[1]
d = json.load(open(p))
d["tasks"].append({"id": "x"})
with open(p, "w") as f:
    json.dump(d, f, indent=2)
PY
    t1=$(date +%s.%N)
    naive_wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) * 1.3 }')
    cp "$work/naive.good" "$naive"
    for i in $(seq 1 "$rounds"); do
        python3 -c 'import json, sys
p = sys.argv[1]
d = json.load(open(p))
d["tasks"].append({"id": "x"})
with open(p, "w") as f:
    json.dump(d, f, indent=2)' "$naive" 2>/dev/null &
        pid=$!
        sleep "$(random_delay "$naive_wall")"
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        if [ "$(board_check "$naive")" = unreadable ]; then
            naive_bad=$((naive_bad + 1))
            cp "$work/naive.good" "$naive"
        fi
    done
    printf '| figure | value | target |\n|---|---|---|\n'
    printf '| rounds: killed mid-run / finished | %s / %s | |\n' "$killed" "$acked"
    printf '| board.json unreadable after a kill | %s of %s | 0 |\n' "$unreadable" "$rounds"
    printf '| board.json.bak unreadable after a kill | %s of %s | 0 |\n' "$bak_bad" "$rounds"
    printf '| acknowledged adds missing from the board | %s of %s | 0 |\n' "$lost" "$acked"
    printf '| baseline: in-place rewrite killed the same way, unreadable | %s of %s | |\n' "$naive_bad" "$rounds"
}
