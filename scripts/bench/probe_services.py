#!/usr/bin/env python3
"""Write N mixed services as NDJSON lines for the probe benchmark.

Of every ten: one url to a listener that never answers (named hang-*), five urls that answer
200 (http-*), three ports (tcp-*), and a process or disk check (proc-*, disk-*); with
"network" as the fourth argument, a fourth port instead (blackbox_exporter checks no process
or disk). Targets spread over the fixture's ports.

Usage: probe_services.py N PORTS_JSON TIMEOUT [network]"""
import json
import sys

n = int(sys.argv[1])
ports = json.loads(sys.argv[2])
timeout = float(sys.argv[3])
network = len(sys.argv) > 4 and sys.argv[4] == "network"


def pick(kind, i):
    return ports[kind][i % len(ports[kind])]


for i in range(n):
    kind = i % 10
    if kind == 0:
        svc = {"name": f"hang-{i}", "type": "url", "target": f"http://127.0.0.1:{pick('hole', i // 10)}/health"}
    elif kind < 6:
        svc = {"name": f"http-{i}", "type": "url", "target": f"http://127.0.0.1:{pick('http', i)}/health"}
    elif kind < 9 or network:
        svc = {"name": f"tcp-{i}", "type": "port", "port": pick("tcp", i)}
    elif (i // 10) % 2 == 0:
        svc = {"name": f"proc-{i}", "type": "process", "process_name": "pitcrew-bench-fixture"}
    else:
        svc = {"name": f"disk-{i}", "type": "disk", "path": "/", "warning_gb": 0}
    svc["timeout_seconds"] = timeout
    print(json.dumps(svc))
