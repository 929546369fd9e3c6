#!/usr/bin/env python3
"""Loopback peers for the probe benchmark.

Starts a threaded HTTP server that answers 200, a listener that accepts and never answers,
and N plain TCP listeners, then prints their ports as JSON on one line and serves until
stdin closes.
"""
import http.server
import json
import socket
import socketserver
import sys
import threading


class Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b'{"status":"ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 4096

    def handle_error(self, request, client_address):
        pass  # probes hang up without reading; that is not news


def listener():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(4096)
    return s


def accept_forever(s, answer):
    held = []
    while True:
        c, _ = s.accept()
        if answer:
            c.close()
        else:
            held.append(c)


def main():
    tcp_count = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    web = Server(("127.0.0.1", 0), Quiet)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    hole = listener()
    threading.Thread(target=accept_forever, args=(hole, False), daemon=True).start()
    tcps = []
    for _ in range(tcp_count):
        t = listener()
        threading.Thread(target=accept_forever, args=(t, True), daemon=True).start()
        tcps.append(t.getsockname()[1])
    print(json.dumps({"http": web.server_address[1], "hole": hole.getsockname()[1], "tcp": tcps}), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
