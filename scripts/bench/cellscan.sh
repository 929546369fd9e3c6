# shellcheck shell=bash disable=SC2154
# cellscan: 10,000 mission cells of 5 agents and 10 tasks (plus cell.json and the three config
# files: 190,000 files), page cache warm, beside reading every one of those files with cat.
# Sourced by scripts/bench.sh.

bench_cellscan() {
    heading "cellscan: 10,000 cells of 5 agents and 10 tasks, page cache warm"
    local dir="$work/missions" now="2026-11-23T10:30:00Z"
    python3 scripts/bench/cellscan_cells.py 10000 "$dir"
    local files
    files=$(find "$dir" -type f | wc -l)
    # Warm the page cache and the dentry cache.
    find "$dir" -type f -exec cat {} + >/dev/null
    # The scan exits 1: the generated cells include failed agents and overdue tasks.
    hyperfine --warmup 1 --runs 5 --ignore-failure --export-json "$work/cellscan.json" \
        -n scan "$bin/cellscan scan $dir --now $now >/dev/null" \
        -n cat "find $dir -type f -exec cat {} + >/dev/null" >/dev/null 2>&1
    local t_scan t_cat records findings rss cpu load
    t_scan=$(jq '.results[0].mean' "$work/cellscan.json")
    t_cat=$(jq '.results[1].mean' "$work/cellscan.json")
    records=$("$bin/cellscan" scan "$dir" --now "$now" 2>/dev/null | wc -l || true)
    findings=$("$bin/cellscan" scan "$dir" --now "$now" 2>/dev/null | jq -s '[.[] | select(.kind == "finding")] | length' || true)
    rss=$(peak_rss_mib "$bin/cellscan" scan "$dir" --now "$now")
    /usr/bin/time -f '%U %S' -o "$work/cpu" "$bin/cellscan" scan "$dir" --now "$now" >/dev/null 2>&1 || true
    cpu=$(tail -1 "$work/cpu" | awk '{ printf "%.2f", $1 + $2 }')
    load=$(cut -d' ' -f1 /proc/loadavg)
    printf '| figure | value | target |\n|---|---|---|\n'
    printf '| cellscan scan, %s files, mean of 5 | %.2f s | <= 2 s |\n' "$files" "$t_scan"
    printf '| cat of every file (baseline) | %.2f s | |\n' "$t_cat"
    printf '| scan vs cat | %sx | |\n' "$(ratio "$t_scan" "$t_cat")"
    printf '| CPU time of one scan (user + sys, %s cores) | %s s | |\n' "$(nproc)" "$cpu"
    printf '| records written (expect 160,300) / findings (expect 300) | %s / %s | |\n' "$records" "$findings"
    printf '| peak RSS | %s MiB | |\n' "$rss"
    printf '| load average during the run | %s | |\n' "$load"
    rm -rf "$dir"
}
