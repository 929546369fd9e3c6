#!/usr/bin/env python3
"""Write N mixed services as NDJSON lines: 60% http (a tenth of them to a server that never
answers), 30% tcp, 10% process. Usage: probe_services.py N PORTS_JSON TIMEOUT"""
import json
import sys

n = int(sys.argv[1])
ports = json.loads(sys.argv[2])
timeout = float(sys.argv[3])
for i in range(n):
    kind = i % 10
    if kind < 6:
        hang = ((i // 10) * 6 + kind) % 10 == 0
        port = ports["hole"] if hang else ports["http"]
        svc = {"name": f"http-{i}", "type": "url", "target": f"http://127.0.0.1:{port}/health", "timeout_seconds": timeout}
    elif kind < 9:
        port = ports["tcp"][i % len(ports["tcp"])]
        svc = {"name": f"tcp-{i}", "type": "port", "port": port, "timeout_seconds": timeout}
    else:
        svc = {"name": f"proc-{i}", "type": "process", "process_name": "servers\\.py"}
    print(json.dumps(svc))
