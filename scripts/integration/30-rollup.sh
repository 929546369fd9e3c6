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

section "rollup: promtool accepts the Prometheus textfile"
"$bin/rollup" --metrics-dir "$rollup_dir/metrics" --now "$rollup_now" --days 30 --sla 99.9 \
    --format prometheus --output "$rollup_dir/textfile/pitcrew.prom" || [ $? -eq 1 ] || fail "rollup --format prometheus"
promtool check metrics < "$rollup_dir/textfile/pitcrew.prom" || fail "promtool check metrics"
grep -q 'pitcrew_uptime_ratio{service="checkout <api> & \\"co\\"",window="30d"}' "$rollup_dir/textfile/pitcrew.prom" \
    || fail "escaped label value"

section "rollup: jq reads the uptime records"
"$bin/rollup" --metrics-dir "$rollup_dir/metrics" --now "$rollup_now" --days 30 > "$rollup_dir/uptime.ndjson" \
    || fail "rollup ndjson"
jq -e -s 'length == 7 and all(.[]; .kind == "uptime" and (.uptime_percent | type) == "number")' \
    "$rollup_dir/uptime.ndjson" >/dev/null || fail "rollup output"
rec "$rollup_dir/uptime.ndjson" service-002 '.recent_incidents[-1].ongoing == true' || fail "ongoing incident"

section "rollup: the status page renders in headless Chromium"
"$bin/rollup" --metrics-dir "$rollup_dir/metrics" --now "$rollup_now" --format html --sla 99.5 \
    --output "$rollup_dir/status.html" || [ $? -eq 1 ] || fail "rollup --format html"
grep -q 'checkout &lt;api&gt; &amp;' "$rollup_dir/status.html" || fail "service name not escaped"
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
