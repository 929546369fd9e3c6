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

section "rollup: the status page renders in headless Chromium"
"$bin/rollup" --metrics-dir "$rollup_dir/metrics" --now "$rollup_now" --format html --sla 99.5 \
    --output "$rollup_dir/status.html" || [ $? -eq 1 ] || fail "rollup --format html"
grep -q 'checkout &lt;api&gt; &amp;' "$rollup_dir/status.html" || fail "service name not escaped"
grep -q 'var(--unknown)' "$rollup_dir/status.html" || fail "the status page draws no unknown time"
if grep -Eq '(src|href)="|url\(|@import' "$rollup_dir/status.html"; then fail "status page loads something"; fi
timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$(mktemp -d "$work/chromium.XXXXXX")" --screenshot="$rollup_dir/status.png" \
    --window-size=1200,900 "file://$rollup_dir/status.html" >"$work/chromium.log" 2>&1 || true
[ -s "$rollup_dir/status.png" ] || { cat "$work/chromium.log" >&2; fail "no screenshot"; }
python3 - "$rollup_dir/status.png" <<'PY' || fail "status page screenshot looks empty"
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n"
width, height = struct.unpack(">II", data[16:24])
assert (width, height) == (1200, 900), (width, height)
# Decompress the image and count distinct pixel rows: a blank page has one.
idat = b"".join(data[i + 8:i + 8 + struct.unpack(">I", data[i:i + 4])[0]]
                for i in range(8, len(data)) if data[i + 4:i + 8] == b"IDAT")
raw = zlib.decompress(idat)
stride = len(raw) // height
rows = {raw[r * stride + 1:(r + 1) * stride] for r in range(height)}
assert len(rows) > 50, len(rows)
# Undo the PNG row filters and count the pixels of the unknown colour (#8e7cc3): the six-hour
# hole and the days before checkout arrived are drawn in it.
ctype = data[25]
bpp = {2: 3, 6: 4}[ctype]
prev = bytearray(stride - 1)
unknown = 0
for r in range(height):
    f, line = raw[r * stride], bytearray(raw[r * stride + 1:(r + 1) * stride])
    for i in range(len(line)):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    prev = line
    for x in range(0, len(line), bpp):
        if abs(line[x] - 0x8e) < 6 and abs(line[x + 1] - 0x7c) < 6 and abs(line[x + 2] - 0xc3) < 6:
            unknown += 1
assert unknown > 200, f"{unknown} pixels of unknown time"
print(f"unknown time on the page: {unknown} pixels")
PY
echo "status page: $rollup_dir/status.png ($(stat -c %s "$rollup_dir/status.png") bytes)"

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
