#!/usr/bin/env python3
"""Generate a metrics history: daily YYYY-MM-DD.jsonl files as probe and the kit write them.

usage: rollup_gen.py DIR DAYS SERVICES INTERVAL_MINUTES LAST_DAY [SEED] [gz]

One line per service per interval, in time order, in the kit's metric-line shape (name,
status, detail, latency_ms, timestamp). Most checks are up with a skewed latency; each service
has a few outages (runs of down checks), some degraded stretches, and the odd `recovered`
line. Deterministic for a given SEED. With `gz`, each day is written compacted
(YYYY-MM-DD.jsonl.gz), as `rollup compact` leaves closed days.
"""

import datetime
import gzip
import os
import random
import sys


def main():
    out, days, services, interval = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    last = datetime.date.fromisoformat(sys.argv[5])
    rng = random.Random(int(sys.argv[6]) if len(sys.argv) > 6 else 7)
    os.makedirs(out, exist_ok=True)
    names = [f"service-{i:03d}" for i in range(services)]
    base = [rng.choice((8, 20, 45, 120, 300)) for _ in names]
    down_left = [0] * services
    slow_left = [0] * services
    per_day = 24 * 60 // interval
    for d in range(days - 1, -1, -1):
        day = last - datetime.timedelta(days=d)
        stamp = day.isoformat()
        lines = []
        for k in range(per_day):
            minute = k * interval
            ts = f"{stamp}T{minute // 60:02d}:{minute % 60:02d}:{rng.randrange(60):02d}.{rng.randrange(1000000):06d}Z"
            for i, name in enumerate(names):
                if down_left[i] == 0 and rng.random() < 0.0004:
                    down_left[i] = rng.randrange(1, 12)
                if slow_left[i] == 0 and rng.random() < 0.001:
                    slow_left[i] = rng.randrange(1, 20)
                recovered = False
                if down_left[i] > 0:
                    down_left[i] -= 1
                    status, detail, lat = "down", "HTTP 503", 10000 if rng.random() < 0.5 else rng.randrange(1, 50)
                    recovered = down_left[i] == 0 and rng.random() < 0.3
                elif slow_left[i] > 0:
                    slow_left[i] -= 1
                    status, detail, lat = "degraded", "HTTP 200 (slow)", base[i] * 10 + rng.randrange(500)
                else:
                    status, detail = "up", "HTTP 200"
                    lat = int(base[i] * (0.5 + rng.random() ** 3 * 4))
                lines.append(
                    f'{{"name": "{name}", "status": "{status}", "detail": "{detail}", '
                    f'"latency_ms": {lat}, "timestamp": "{ts}"}}\n'
                )
                if recovered:
                    lines.append(
                        f'{{"name": "{name}", "status": "recovered", "detail": "restarted", '
                        f'"latency_ms": 0, "timestamp": "{ts}"}}\n'
                    )
        if len(sys.argv) > 7 and sys.argv[7] == "gz":
            with gzip.open(os.path.join(out, f"{stamp}.jsonl.gz"), "wt", compresslevel=1) as f:
                f.writelines(lines)
        else:
            with open(os.path.join(out, f"{stamp}.jsonl"), "w") as f:
                f.writelines(lines)


if __name__ == "__main__":
    main()
