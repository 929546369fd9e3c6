#!/usr/bin/env python3
"""A webhook that records every alert it receives: one JSON line each in LOG, the alert as
sent with "received_at" (this machine's clock, seconds since the epoch) added. Prints its
port, serves until killed. Usage: hook.py LOG"""
import http.server
import json
import sys
import threading
import time

log = sys.argv[1]
lock = threading.Lock()


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        now = time.time()
        with lock, open(log, "a") as f:
            for a in json.loads(body).get("alerts", []):
                f.write(json.dumps(dict(a, received_at=now)) + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
print(server.server_address[1], flush=True)
server.serve_forever()
