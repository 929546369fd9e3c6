# shellcheck shell=bash disable=SC2154
# Sourced by scripts/integration.sh: every command of the README's `sh` blocks (but the first
# two, which CI runs itself) runs against the example, and none is a usage error.

section "every example command in the README runs"
readme_base="$work/readme"
mkdir -p "$readme_base"
(
    export AGENT_OPS_HOME="$readme_base/home"
    export HOME="$readme_base/user"
    export PATH="$bin:$PATH"
    examples/demo/start-site.sh
    examples/demo/start-worker.sh
    examples/demo/setup-home.sh > /dev/null
    # The commands, one a line, from every ```sh block after the first two.
    awk '/^```sh$/ { n++; inside = 1; next } /^```/ { inside = 0; next } inside && n > 2 && !/^[[:space:]]*(#|$)/' \
        README.md > "$readme_base/commands"
    [ "$(wc -l < "$readme_base/commands")" -ge 20 ] || fail "too few README commands found"
    count=0
    while IFS= read -r cmd; do
        count=$((count + 1))
        status=0
        (cd "$readme_base" && bash -o pipefail -c "$cmd") > "$readme_base/out" 2> "$readme_base/err" < /dev/null || status=$?
        # 0 and 1 (found something down) are answers; 2 is a usage error, 3 rejected input.
        if [ "$status" -gt 1 ] || grep -qE "^error: |panicked" "$readme_base/err"; then
            cat "$readme_base/err" >&2
            fail "README command exited $status: $cmd"
        fi
    done < "$readme_base/commands"
    echo "$count README commands ran"
    pkill -f 'http.server 18080 --bind 127.0.0.1' 2>/dev/null || true
    pkill -f 'pitcrew-example-worker' 2>/dev/null || true
)
