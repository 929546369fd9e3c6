# shellcheck shell=bash disable=SC2154
# failover: the leading notify hub killed at random moments while alerts keep coming;
# counts the alerts lost (must be none) and sent twice. The measurement is the slow test
# fleet_hubs::failover_at_random_moments_loses_no_alert_and_duplicates_are_counted, run
# with FAILOVER_TRIALS kills (20 unless said). Sourced by scripts/bench.sh.

bench_failover() {
    local trials=${FAILOVER_TRIALS:-20}
    heading "failover: $trials leading hubs killed at random moments (3-node cluster, sink answers in 50 ms)"
    local out="$work/failover.log"
    if PITCREW_FAILOVER_TRIALS="$trials" cargo test -q --test tests \
        fleet_hubs::failover_at_random_moments_loses_no_alert_and_duplicates_are_counted \
        -- --ignored --exact --nocapture >"$out" 2>&1; then
        grep '^failover:' "$out" || echo "failover: the test printed no figure (see $out)"
    else
        echo "failover: the measurement failed:"
        tail -20 "$out"
    fi
}
