#!/usr/bin/env python3
"""Drive Prometheus' blackbox_exporter through its /probe endpoint as probe checks: one probe
per service line (url -> module http_2xx, port -> tcp_connect), at most CONCURRENCY at once,
from one asyncio thread. Prints one JSON line: wall seconds, probes, successes, and the
healthy targets (not hang-*) that failed.

Usage: blackbox_drive.py EXPORTER_PORT SERVICES_NDJSON CONCURRENCY"""
import asyncio
import json
import sys
import time
import urllib.parse

port = int(sys.argv[1])
services = [json.loads(line) for line in open(sys.argv[2]) if line.strip()]
limit = int(sys.argv[3])


def path(svc):
    if svc["type"] == "url":
        q = {"module": "http_2xx", "target": svc["target"]}
    else:
        q = {"module": "tcp_connect", "target": f"127.0.0.1:{svc['port']}"}
    return "/probe?" + urllib.parse.urlencode(q)


async def one(svc, gate):
    async with gate:
        for attempt in range(20):
            try:
                r, w = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.05 * (attempt + 1))
        else:
            return svc["name"], False
        w.write(f"GET {path(svc)} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await w.drain()
        body = await r.read()
        w.close()
        return svc["name"], b"\nprobe_success 1" in body


async def main():
    gate = asyncio.Semaphore(limit)
    t0 = time.monotonic()
    results = await asyncio.gather(*(one(s, gate) for s in services))
    wall = time.monotonic() - t0
    ok = sum(1 for _, good in results if good)
    false_fail = sum(1 for name, good in results if not good and not name.startswith("hang-"))
    print(json.dumps({"wall": round(wall, 3), "probes": len(results), "success": ok, "healthy_failed": false_fail}))


asyncio.run(main())
