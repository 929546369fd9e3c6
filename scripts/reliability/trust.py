#!/usr/bin/env python3
"""Clients for the trust-boundary cases of scripts/reliability/hostile.sh.

    trust.py starve ADDR CONNECTIONS SECONDS   CONNECTIONS idle connections held, 100 more
                                               every 50 ms, while an agent beats every 0.5 s
                                               and another is silent; prints a JSON summary
    trust.py fill ADDR AGENTS BYTES            AGENTS agents, each with BYTES of metadata
    trust.py readers ADDR READERS PATH         READERS parallel GETs of PATH; bytes read
    trust.py beats ADDR AGENT N                N heartbeats of AGENT; how many were answered 200

Only the Python standard library: it runs wherever the other sections do.
"""
import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request


def post(addr, path, body=b"", timeout=10):
    req = urllib.request.Request(f"http://{addr}{path}", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    t = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            return r.status, time.monotonic() - t
    except urllib.error.HTTPError as e:
        return e.code, time.monotonic() - t
    except OSError:
        return 0, time.monotonic() - t


def get(addr, path, timeout=60):
    try:
        with urllib.request.urlopen(f"http://{addr}{path}", timeout=timeout) as r:
            n = 0
            while True:
                b = r.read(1 << 16)
                if not b:
                    return r.status, n
                n += len(b)
    except urllib.error.HTTPError as e:
        return e.code, 0
    except OSError:
        return 0, 0


def metrics(addr):
    try:
        with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith("tickmon_") and "{" not in line:
            k, v = line.split(" ", 1)
            out[k] = float(v)
    return out


def starve(addr, total, seconds):
    """Hold `total` idle connections for `seconds`, opening 100 every 50 ms (the oldest
    closed once `total` are held), while one agent beats every 0.5 s and another is silent."""
    host, port = addr.rsplit(":", 1)
    held, stop = [], threading.Event()
    counts = {"opened": 0, "connect_failures": 0}

    def flood():
        while not stop.is_set():
            for _ in range(100):
                s = socket.socket()
                s.settimeout(2)
                try:
                    s.connect((host, int(port)))
                    held.append(s)
                    counts["opened"] += 1
                except OSError:
                    counts["connect_failures"] += 1
                    s.close()
                while len(held) > total:
                    held.pop(0).close()
            time.sleep(0.05)

    post(addr, "/heartbeat/real")
    post(addr, "/heartbeat/quiet")
    t = threading.Thread(target=flood)
    t.start()
    start, codes, slowest, peak = time.monotonic(), {}, 0.0, 0
    while time.monotonic() - start < seconds:
        code, took = post(addr, "/heartbeat/real", timeout=20)
        codes[code] = codes.get(code, 0) + 1
        slowest = max(slowest, took)
        peak = max(peak, int(metrics(addr).get("tickmon_connections", 0)))
        time.sleep(0.5)
    with urllib.request.urlopen(f"http://{addr}/agent/quiet", timeout=10) as r:
        quiet = json.load(r)["status"]
    stop.set()
    t.join()
    m = metrics(addr)
    for s in held:
        s.close()
    print(json.dumps({
        "opened": counts["opened"], "connect_failures": counts["connect_failures"], "answers": codes,
        "slowest_ms": round(slowest * 1000), "peak_open": peak, "quiet": quiet,
        "evicted": m.get("tickmon_connections_evicted_total"), "refused": m.get("tickmon_connections_refused_total"),
        "under_pressure": m.get("tickmon_server_under_pressure"),
    }))


def fill(addr, agents, size):
    body = json.dumps({"metadata": {"blob": "m" * size}}).encode()
    ok = 0
    for i in range(agents):
        ok += post(addr, f"/heartbeat/agent-{i}", body)[0] == 200
    print(ok)


def readers(addr, n, path):
    results = []

    def one():
        results.append(get(addr, path))

    ts = [threading.Thread(target=one) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(json.dumps({"ok": sum(1 for c, _ in results if c == 200), "bytes": max(b for _, b in results)}))


def beats(addr, agent, n):
    print(sum(1 for _ in range(n) if post(addr, f"/heartbeat/{agent}")[0] == 200))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "starve":
        starve(args[0], int(args[1]), float(args[2]))
    elif cmd == "fill":
        fill(args[0], int(args[1]), int(args[2]))
    elif cmd == "readers":
        readers(args[0], int(args[1]), args[2])
    elif cmd == "beats":
        beats(args[0], args[1], int(args[2]))
    else:
        sys.exit(f"trust.py: unknown command {cmd}")
