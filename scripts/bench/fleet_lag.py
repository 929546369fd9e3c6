#!/usr/bin/env python3
"""fleet_lag.py N: read records from stdin until N have come, and print "p50_ms p99_ms": the
time from each record's `sent` to its arrival here. Used by scripts/bench/fleet.sh."""
import json
import sys
import time

want = int(sys.argv[1])
lags = []
for line in sys.stdin:
    try:
        sent = json.loads(line).get("sent")
    except ValueError:
        continue
    if isinstance(sent, (int, float)):
        lags.append((time.time() - sent) * 1000)
    if len(lags) >= want:
        break
lags.sort()
if not lags:
    print("- -")
else:
    print(f"{lags[len(lags) // 2]:.1f} {lags[min(len(lags) - 1, int(len(lags) * 0.99))]:.1f} {len(lags)}")
