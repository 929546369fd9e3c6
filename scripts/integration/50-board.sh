# shellcheck shell=bash disable=SC2154
# Sourced by scripts/integration.sh: needs $work, $bin, fail, section.

board_home="$work/board-home"
board_file="$board_home/state/board.json"
mkdir -p "$board_home/state"

# A writer that follows the Agent Ops Kit's board protocol: flock on state/board.lock, read,
# append, write board.json.tmp, os.replace, json.dump(indent=2).
cat > "$work/kit_writer.py" <<'PY'
import fcntl, json, os, sys
state, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
path = os.path.join(state, "board.json")
for i in range(count):
    with open(os.path.join(state, "board.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        board = {"columns": ["open", "in-progress", "in-review", "done"], "tasks": []}
        if os.path.exists(path):
            with open(path) as f:
                board = json.load(f)
        board["tasks"].append({"id": "kit-%s-%d" % (name, i), "title": "from the kit %s %d" % (name, i),
                               "column": "open", "owner": "", "priority": "medium", "description": "",
                               "tags": [], "createdAt": "2025-01-15T10:30:00.000000Z",
                               "updatedAt": "2025-01-15T10:30:00.000000Z"})
        with open(path + ".tmp", "w") as f:
            json.dump(board, f, indent=2)
        os.replace(path + ".tmp", path)
PY

section "board and the kit's own Python writers exclude each other through board.lock"
writers=()
for s in 1 2 3 4; do
    python3 "$work/kit_writer.py" "$board_home/state" "$s" 50 &
    writers+=($!)
    (for i in $(seq 1 50); do AGENT_OPS_HOME="$board_home" "$bin/board" add "board $s $i" >/dev/null; done) &
    writers+=($!)
done
# Wait for these writers only: other parts leave servers running in the background.
for w in "${writers[@]}"; do wait "$w"; done
jq -e -s 'length == 1 and (.[0].tasks | length) == 400 and ([.[0].tasks[].id] | unique | length) == 400' "$board_file" >/dev/null \
    || fail "400 tasks with unique ids expected: $(jq -c '[(.tasks | length), ([.tasks[].id] | unique | length)]' "$board_file")"
python3 -c 'import json, sys; b = json.load(open(sys.argv[1])); assert len(b["tasks"]) == 400' "$board_file" \
    || fail "Python cannot read board's board.json"

section "board waits for a lock held by flock(1) and gives up after --lock-timeout"
flock "$board_home/state/board.lock" sleep 1 &
holder=$!
sleep 0.2
if AGENT_OPS_HOME="$board_home" "$bin/board" add "too soon" --lock-timeout 0.2 2>"$work/board-lock.err"; then
    fail "board wrote while flock(1) held board.lock"
fi
grep -q "another writer still holds the lock" "$work/board-lock.err" || fail "lock timeout message: $(cat "$work/board-lock.err")"
AGENT_OPS_HOME="$board_home" "$bin/board" add "after the holder" >/dev/null || fail "board add after the lock was released"
wait "$holder"
jq -e -s 'length == 1 and (.[0].tasks | length) == 401' "$board_file" >/dev/null || fail "the waiting add is on the board"

section "a board written by Python's json.dump round-trips byte for byte"
python3 - "$work/py-board.json" <<'PY'
import json, sys
board = {"columns": ["open", "in-progress", "in-review", "done"],
         "tasks": [{"id": "task-abc123", "title": "Caf\u00e9 \u2014 \U0001F680", "column": "open", "owner": "agent-1",
                    "priority": "high", "description": "", "createdAt": "2025-01-15T10:30:00.123456Z",
                    "updatedAt": "2025-01-15T10:30:00.123456Z", "tags": ["ops"], "estimate": 2.5}],
         "team": {"name": "sre", "oncall": None}}
with open(sys.argv[1], "w") as f:
    json.dump(board, f, indent=2)
PY
cp "$work/py-board.json" "$work/py-board.orig"
id=$("$bin/board" --board "$work/py-board.json" add "temporary" | jq -r .id)
"$bin/board" --board "$work/py-board.json" rm "$id" >/dev/null
cmp -s "$work/py-board.json" "$work/py-board.orig" || fail "board changed the bytes of a Python-written board"
