#!/usr/bin/env python3
"""A slow webhook sink for the crash loops: answers 200 after DELAY seconds and appends the
title of every alert it received to LOG, one a line. Prints its port, serves until stdin
closes. Usage: sink.py DELAY LOG"""
import http.server
import json
import socketserver
import sys
import threading
import time

delay, log = float(sys.argv[1]), sys.argv[2]
lock = threading.Lock()


class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(delay)
        titles = [a.get("title", "") for a in json.loads(body).get("alerts", [])]
        with lock, open(log, "a") as f:
            f.writelines(t + "\n" for t in titles)
        try:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        except OSError:
            pass  # the sender was killed while it waited: what it sent still arrived

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


srv = Server(("127.0.0.1", 0), Sink)
print(srv.server_address[1], flush=True)
threading.Thread(target=srv.serve_forever, daemon=True).start()
sys.stdin.read()
