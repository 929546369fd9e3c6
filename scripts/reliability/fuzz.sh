# shellcheck shell=bash disable=SC2154
# Fuzzing: every target of fuzz/ for FUZZ_SECONDS from the committed corpus and the seeds,
# then the corpus minimized back into fuzz/corpus/TARGET. Needs cargo-fuzz
# (cargo install cargo-fuzz --locked); runs without a sanitizer, so a stable toolchain does.

reliability_fuzz() {
    heading "fuzzing (${FUZZ_SECONDS:-180} s per target, no sanitizer)"
    if ! cargo fuzz --version >/dev/null 2>&1; then
        fail "cargo-fuzz is not installed (cargo install cargo-fuzz --locked)"
        return
    fi
    local targets
    targets=${FUZZ_TARGETS:-$(find fuzz/fuzz_targets -name '*.rs' -printf '%f\n' | sed 's|\.rs$||' | sort)}
    (cd fuzz && cargo fuzz build -s none -O >/dev/null 2>&1) || { fail "fuzz build"; return; }
    printf '| target | runs | exec/s | coverage (cov / ft) | corpus after cmin | crashes |\n|---|---|---|---|---|---|\n'
    local t
    for t in $targets; do
        local wd="$work/fuzz-$t" log="$work/fuzz-$t.log"
        mkdir -p "$wd"
        cp fuzz/corpus/"$t"/* fuzz/seeds/"$t"/* "$wd"/ 2>/dev/null || true
        local crashed=0
        (cd fuzz && cargo fuzz run -s none -O "$t" "$wd" -- -max_total_time="${FUZZ_SECONDS:-180}" \
            -rss_limit_mb=2048 -max_len=16384 -timeout=10 -print_final_stats=1) >"$log" 2>&1 || crashed=1
        local runs cov ft eps
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
        eps=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
        cov=$(grep -o 'cov: [0-9][0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
        ft=$(grep -o 'ft: [0-9][0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
        if [ "$crashed" -eq 0 ]; then
            (cd fuzz && cargo fuzz cmin -s none -O "$t" "$wd" -- -use_counters=0) >"$log.cmin" 2>&1 || true
            rm -rf "fuzz/corpus/$t"
            mkdir -p "fuzz/corpus/$t"
            cp "$wd"/* "fuzz/corpus/$t"/
        else
            fail "fuzz target $t crashed: see fuzz/artifacts/$t and $log"
            [ -n "${KEEP:-}" ] || cp "$log" "fuzz/artifacts/$t.log" 2>/dev/null || true
        fi
        local n
        n=$(find "fuzz/corpus/$t" -type f | wc -l)
        printf '| %s | %s | %s | %s / %s | %s | %s |\n' "$t" "${runs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "$n" "$crashed"
    done
}
