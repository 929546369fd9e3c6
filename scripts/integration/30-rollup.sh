# shellcheck shell=bash disable=SC2154
# Sourced by scripts/integration.sh: needs $work, $bin, $root, fail, section.

rollup_dir="$work/rollup"
rollup_now="2026-11-23T18:00:00Z"
python3 "$root/scripts/bench/rollup_gen.py" "$rollup_dir/metrics" 90 6 30 2026-11-23 5
# A service that arrived 20 days ago (grey days before), with a name that needs escaping,
# and one that is down right now (an ongoing incident).
for back in $(seq 0 19); do
    day=$(date -u -d "2026-11-23 - $back days" +%F)
    for hour in 00 06 12 18; do
        printf '{"name": "checkout <api> & \\"co\\"", "status": "up", "latency_ms": %d, "timestamp": "%sT%s:00:00Z"}\n' \
            "$((40 + back))" "$day" "$hour"
    done >> "$rollup_dir/metrics/$day.jsonl"
done
for minute in 00 30; do
    printf '{"name": "service-002", "status": "down", "detail": "timeout", "latency_ms": 10000, "timestamp": "2026-11-23T17:%s:00Z"}\n' \
        "$minute" >> "$rollup_dir/metrics/2026-11-23.jsonl"
done
# Six hours in which nothing ran (06:00 to 12:00 on the 20th): unknown time for every service,
# and a gap in the monitoring itself.
python3 - "$rollup_dir/metrics/2026-11-20.jsonl" <<'PY'
import json, sys
path = sys.argv[1]
kept = [l for l in open(path) if not ("T06:00" <= json.loads(l)["timestamp"][10:16] < "T12:00")]
open(path, "w").writelines(kept)
PY

section "rollup: promtool accepts the Prometheus textfile"
"$bin/rollup" --metrics-dir "$rollup_dir/metrics" --now "$rollup_now" --days 30 --sla 99.9 \
    --format prometheus --output "$rollup_dir/textfile/pitcrew.prom" || [ $? -eq 1 ] || fail "rollup --format prometheus"
promtool check metrics < "$rollup_dir/textfile/pitcrew.prom" || fail "promtool check metrics"
grep -q 'pitcrew_uptime_ratio{service="checkout <api> & \\"co\\"",window="30d"}' "$rollup_dir/textfile/pitcrew.prom" \
    || fail "escaped label value"
grep -q '^pitcrew_uptime_coverage_ratio{service="service-000",window="30d"} 0\.99' "$rollup_dir/textfile/pitcrew.prom" \
    || fail "coverage in the textfile: $(grep coverage_ratio "$rollup_dir/textfile/pitcrew.prom" | head -3)"
grep -q '^pitcrew_monitoring_gaps{window="30d"} 1$' "$rollup_dir/textfile/pitcrew.prom" || fail "the monitoring gap"

section "rollup: promtool accepts a service name with a quote, a backslash and a line feed"
printf '%s\n' '{"name": "q\"b\\n\nl", "status": "up", "latency_ms": 12, "timestamp": "2026-11-23T10:00:00Z"}' \
    > "$rollup_dir/odd-name.jsonl"
"$bin/rollup" --format prometheus "$rollup_dir/odd-name.jsonl" > "$rollup_dir/odd-name.prom" \
    || fail "rollup --format prometheus with an odd name"
promtool check metrics < "$rollup_dir/odd-name.prom" || fail "promtool check metrics (odd name)"
grep -qF 'pitcrew_uptime_ratio{service="q\"b\\n\nl",window="2026-11-23..2026-11-23"} 1' "$rollup_dir/odd-name.prom" \
    || fail "odd name escaped: $(grep uptime_ratio "$rollup_dir/odd-name.prom")"

section "rollup: jq reads the uptime records"
"$bin/rollup" --metrics-dir "$rollup_dir/metrics" --now "$rollup_now" --days 30 > "$rollup_dir/uptime.ndjson" \
    || fail "rollup ndjson"
jq -e -s 'map(select(.kind == "uptime")) | length == 7 and all(.[]; (.uptime_percent | type) == "number")' \
    "$rollup_dir/uptime.ndjson" >/dev/null || fail "rollup output"
rec "$rollup_dir/uptime.ndjson" service-002 '.recent_incidents[-1].ongoing == true' || fail "ongoing incident"
rec "$rollup_dir/uptime.ndjson" service-000 '.unknown_s >= 21600 and .coverage_percent < 100 and (.cadence_s - 1800 | fabs) < 10' \
    || fail "the six-hour hole is unknown time"
jq -e -s 'map(select(.kind == "finding" and .problem == "monitoring_gap")) | length == 1' "$rollup_dir/uptime.ndjson" \
    >/dev/null || fail "one monitoring gap"

section "rollup: the status page, its notes and status.json render in headless Chromium"
# A note on a day of service-001: marked on its bar (in the note colour, #c2418a), listed.
"$bin/rollup" note add service-001 'Disk <full>, rotated the logs' --at 2026-11-21T09:15:00Z --now "$rollup_now" \
    >/dev/null || fail "rollup note add"
"$bin/rollup" --metrics-dir "$rollup_dir/metrics" --now "$rollup_now" --format html --sla 99.5 \
    --output "$rollup_dir/status.html" || [ $? -eq 1 ] || fail "rollup --format html"
grep -q 'checkout &lt;api&gt; &amp;' "$rollup_dir/status.html" || fail "service name not escaped"
grep -q 'var(--unknown)' "$rollup_dir/status.html" || fail "the status page draws no unknown time"
grep -q 'Disk &lt;full&gt;, rotated the logs' "$rollup_dir/status.html" || fail "the note is not on the page"
if grep -Eq '(src|href)="|url\(|@import' "$rollup_dir/status.html"; then fail "status page loads something"; fi
jq -e --arg n 'checkout <api> & "co"' '.schema == "pitcrew-status/1" and .state == "partial_outage"
    and (.services | length == 7) and all(.services[]; .days | length == 90)
    and (.services[] | select(.name == $n) | .days[-21].state == "unknown" and .days[-1].state == "ok")
    and (.services[] | select(.name == "service-002") | .state == "down")
    and (.incidents[0] | .name == "service-002" and .ongoing)
    and (.notes | length == 1 and .[0].date == "2026-11-21" and .[0].name == "service-001")' \
    "$rollup_dir/status.json" >/dev/null || fail "status.json: $(head -c 600 "$rollup_dir/status.json")"
chromium_shot() { # URL PNG WIDTH HEIGHT
    timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$(mktemp -d "$work/chromium.XXXXXX")" --screenshot="$2" \
        --window-size="$3,$4" "$1" >"$work/chromium.log" 2>&1 || true
    [ -s "$2" ] || { cat "$work/chromium.log" >&2; fail "no screenshot of $1"; }
}
chromium_shot "file://$rollup_dir/status.html" "$rollup_dir/status.png" 1200 900
# Unknown time (#8e7cc3): the six-hour hole and the days before checkout arrived; the note's
# mark (#c2418a) above its day.
python3 "$root/scripts/integration/png-check.py" "$rollup_dir/status.png" 1200 900 --rows 50 \
    --color 8e7cc3:200 --color c2418a:20 || fail "status page screenshot"

section "rollup: SVG badges render in headless Chromium"
"$bin/rollup" --metrics-dir "$rollup_dir/metrics" --now "$rollup_now" --days 30 --format badge \
    --only service-002 --output "$rollup_dir/uptime.svg" || fail "rollup --format badge"
# The figure of the uptime record (jq writes 99.5 and 100 as the badge does).
pct=$(jq -r 'select(.kind == "uptime" and .name == "service-002") | .uptime_percent' "$rollup_dir/uptime.ndjson")
grep -qF "<title>uptime: $pct%</title>" "$rollup_dir/uptime.svg" || fail "uptime badge ($pct%): $(cat "$rollup_dir/uptime.svg")"
"$bin/rollup" --metrics-dir "$rollup_dir/metrics" --now "$rollup_now" --format badge-status \
    --only service-002 --output "$rollup_dir/status-002.svg" || fail "rollup --format badge-status"
grep -q '<title>service-002: down</title>' "$rollup_dir/status-002.svg" || fail "status badge"
python3 -c 'import sys, xml.etree.ElementTree as E; [E.parse(f) for f in sys.argv[1:]]' \
    "$rollup_dir/uptime.svg" "$rollup_dir/status-002.svg" || fail "a badge is not well-formed XML"
chromium_shot "file://$rollup_dir/status-002.svg" "$rollup_dir/badge.png" 300 100
# The red of shields' "down" (#e05d44) and the grey of its label (#555555), under the
# badge's light gradient.
python3 "$root/scripts/integration/png-check.py" "$rollup_dir/badge.png" 300 100 --rows 5 \
    --color e05d44:50:16 --color 555555:50:16 || fail "badge screenshot"
echo "status page: $rollup_dir/status.png ($(stat -c %s "$rollup_dir/status.png") bytes), badge: $rollup_dir/badge.png"

section "rollup: prune and compact keep the directory in shape"
"$bin/rollup" compact --metrics-dir "$rollup_dir/metrics" --now "$rollup_now" > "$rollup_dir/compact.ndjson" \
    || fail "rollup compact"
jq -e -s 'length == 89 and all(.[]; .action == "compacted")' "$rollup_dir/compact.ndjson" >/dev/null \
    || fail "compact records"
gzip -t "$rollup_dir"/metrics/*.jsonl.gz || fail "compacted files are not valid gzip"
"$bin/rollup" --metrics-dir "$rollup_dir/metrics" --now "$rollup_now" --days 30 > "$rollup_dir/after.ndjson" \
    || fail "rollup after compact"
cmp -s "$rollup_dir/uptime.ndjson" "$rollup_dir/after.ndjson" || fail "compaction changed the figures"
"$bin/rollup" prune --retention-days 30 --metrics-dir "$rollup_dir/metrics" --now "$rollup_now" --format text \
    | grep -q 'Cleaned up 60 old metrics file(s).' || fail "rollup prune"
