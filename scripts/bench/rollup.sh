# shellcheck shell=bash disable=SC2154
# rollup: 30 days x 100 services at one check per 5 minutes, against cat reading the same
# files in the same run; peak memory at 1x and 10x the data; and a year of 1,000 services
# (coverage, the status page and incidents in one pass each). Sourced by scripts/bench.sh.

bench_rollup() {
    heading "rollup: 30 days x 100 services, one check per 5 minutes"
    local dir="$work/rollup/metrics" now="2026-11-23T23:59:00Z"
    python3 scripts/bench/rollup_gen.py "$dir" 30 100 5 2026-11-23 42
    local files=("$dir"/*.jsonl) lines bytes
    lines=$(cat "${files[@]}" | wc -l)
    bytes=$(cat "${files[@]}" | wc -c)
    local copies=()
    for _ in $(seq 1 10); do copies+=("${files[@]}"); done

    hyperfine --warmup 2 --runs 10 --export-json "$work/rollup.json" \
        "cat ${files[*]} > /dev/null" \
        "$bin/rollup --metrics-dir $dir --now $now --days 30 > /dev/null" >/dev/null 2>&1
    local t_cat t_rollup
    t_cat=$(jq '.results[0].mean' "$work/rollup.json")
    t_rollup=$(jq '.results[1].mean' "$work/rollup.json")

    local rss rss10 wall10
    rss=$(peak_rss_mib "$bin/rollup" --metrics-dir "$dir" --now "$now" --days 30)
    rss10=$(peak_rss_mib "$bin/rollup" --now "$now" --days 30 "${copies[@]}")
    wall10=$(wall_s "$bin/rollup" --now "$now" --days 30 "${copies[@]}")

    # The same history compacted, against zcat.
    local gzdir="$work/rollup/gz"
    mkdir -p "$gzdir"
    cp "${files[@]}" "$gzdir/"
    "$bin/rollup" compact --metrics-dir "$gzdir" --now "$now" >/dev/null
    hyperfine --warmup 1 --runs 5 --export-json "$work/rollup-gz.json" \
        "zcat $gzdir/*.jsonl.gz > /dev/null" \
        "$bin/rollup --metrics-dir $gzdir --now $now --days 30 > /dev/null" >/dev/null 2>&1
    local t_zcat t_rollup_gz
    t_zcat=$(jq '.results[0].mean' "$work/rollup-gz.json")
    t_rollup_gz=$(jq '.results[1].mean' "$work/rollup-gz.json")

    printf '| figure | value | target |\n|---|---|---|\n'
    printf '| history | %s lines, %s MiB in %s daily files | ~865k lines, ~100 MB |\n' \
        "$lines" "$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')" "${#files[@]}"
    printf '| cat of the files, mean (baseline) | %.3f s = %.0f MB/s | |\n' "$t_cat" \
        "$(awk -v b="$bytes" -v t="$t_cat" 'BEGIN { print b / t / 1e6 }')"
    printf '| rollup --days 30, mean | %.3f s = %.0f MB/s | |\n' "$t_rollup" \
        "$(awk -v b="$bytes" -v t="$t_rollup" 'BEGIN { print b / t / 1e6 }')"
    printf '| rollup vs cat | %sx | <= 12x |\n' "$(ratio "$t_rollup" "$t_cat")"
    printf '| peak RSS, 1x | %s MiB | <= 32 MiB |\n' "$rss"
    printf '| peak RSS, 10x the data (files named 10 times) | %s MiB | same as 1x |\n' "$rss10"
    printf '| wall, 10x the data | %s s = %sx the 1x mean | ~10x |\n' "$wall10" "$(ratio "$wall10" "$t_rollup")"
    printf '| zcat of the compacted files, mean (baseline) | %.3f s | |\n' "$t_zcat"
    printf '| rollup over the compacted files, mean | %.3f s = %sx zcat | |\n' "$t_rollup_gz" \
        "$(ratio "$t_rollup_gz" "$t_zcat")"

    # A year of 1,000 services checked hourly (8.76 million lines, compacted): what per
    # service state costs (the latency histogram, the spacings behind coverage, incidents),
    # which does not grow with the number of lines.
    local ydir="$work/rollup/year" ynow="2026-11-23T23:59:00Z"
    python3 scripts/bench/rollup_gen.py "$ydir" 365 1000 60 2026-11-23 7 gz
    local ylines ybytes yrss ywall yhtml yinc
    ylines=$(zcat "$ydir"/*.jsonl.gz | wc -l)
    ybytes=$(zcat "$ydir"/*.jsonl.gz | wc -c)
    yrss=$(peak_rss_mib "$bin/rollup" --metrics-dir "$ydir" --now "$ynow" --days 365)
    ywall=$(wall_s "$bin/rollup" --metrics-dir "$ydir" --now "$ynow" --days 365)
    yhtml=$(peak_rss_mib "$bin/rollup" --metrics-dir "$ydir" --now "$ynow" --days 365 --format html)
    yinc=$(peak_rss_mib "$bin/rollup" incidents --metrics-dir "$ydir" --now "$ynow" --days 365)
    printf '| a year x 1,000 services, hourly | %s lines, %s MiB uncompressed, 365 .jsonl.gz | |\n' \
        "$ylines" "$(awk -v b="$ybytes" 'BEGIN { printf "%.0f", b / 1048576 }')"
    printf '| rollup --days 365 (coverage included): peak RSS, wall | %s MiB, %s s | <= 64 MiB |\n' "$yrss" "$ywall"
    printf '| rollup --days 365 --format html: peak RSS | %s MiB | <= 128 MiB |\n' "$yhtml"
    printf '| rollup incidents --days 365: peak RSS | %s MiB | |\n' "$yinc"
}
