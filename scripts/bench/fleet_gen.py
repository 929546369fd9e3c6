#!/usr/bin/env python3
"""fleet_gen.py HOST N [RATE [KIND]]: N check records of host HOST (services svc-0 .. svc-N-1,
a tenth of them down), each with `sent`, the time it was written (seconds since the epoch).
With RATE, at most RATE records a second, flushed one by one, the first after 2 s, when the
tools at both ends are up (the lag runs); without it, as fast as the pipe takes them. KIND replaces `check` (the lag runs use a kind notify passes on
at once). Used by scripts/bench/fleet.sh."""
import json
import sys
import time

host, n = sys.argv[1], int(sys.argv[2])
rate = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
kind = sys.argv[4] if len(sys.argv) > 4 else "check"
if rate:
    time.sleep(2)
start = time.time()
out = sys.stdout
for i in range(n):
    if rate:
        due = start + i / rate
        now = time.time()
        if due > now:
            time.sleep(due - now)
    rec = {
        "kind": kind, "name": f"svc-{i}", "type": "tcp", "status": "down" if i % 10 == 0 else "up",
        "detail": "bench", "latency_ms": 1, "timestamp": "2026-12-06T07:00:00.000Z", "host": host,
        "sent": time.time(),
    }
    out.write(json.dumps(rec, separators=(",", ":")) + "\n")
    if rate:
        out.flush()
