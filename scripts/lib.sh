# shellcheck shell=bash
# The preamble the project's scripts share, sourced once at their top:
#
#   . "$(dirname "$0")/lib.sh"
#
# It moves to the repository's root (and sets root), and defines:
#
#   tools                     the tools, one per tools/NAME/main.rs (the tests read the same
#                             directory): adding a tool edits no script
#   pitcrew_build PROFILE     build every binary (debug or release); sets bin
#   pitcrew_workdir NAME      a private directory in $work, removed at exit unless KEEP is set;
#                             the processes in pids are killed and the functions in on_exit run
#                             first
#   peak_rss_mib CMD...       run CMD (stdout discarded), print its peak resident set in MiB
#   wall_s CMD...             run CMD (output discarded), print its wall time in seconds
#   ratio A B                 A / B with two decimals (n/a when B is 0)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export root

tools=()
for main in tools/*/main.rs; do
    tools+=("$(basename "$(dirname "$main")")")
done

pitcrew_build() {
    case "$1" in
        release) cargo build --release --quiet --bins ;;
        debug) cargo build --quiet --bins ;;
        *) echo "pitcrew_build: release or debug, not $1" >&2; return 2 ;;
    esac
    bin="$root/target/$1"
    export bin
}

pids=()
on_exit=()
work=""
pitcrew_cleanup() {
    local f p
    for f in "${on_exit[@]}"; do "$f" || true; done
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "$work" ] && [ -z "${KEEP:-}" ]; then rm -rf "$work"; fi
}
trap pitcrew_cleanup EXIT

pitcrew_workdir() {
    work=$(mktemp -d "${TMPDIR:-/tmp}/pitcrew-$1.XXXXXX")
    export work
    if [ -n "${KEEP:-}" ]; then echo "$1: keeping $work" >&2; fi
}

peak_rss_mib() {
    /usr/bin/time -f '%M' -o "$work/rss" "$@" >/dev/null 2>"$work/rss.err" || true
    tail -1 "$work/rss" | awk '{ printf "%.1f", $1 / 1024 }'
}

wall_s() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || true
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
