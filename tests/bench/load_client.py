#!/usr/bin/env python3
"""load_client.py - a small, bounded HTTP/1.1 keep-alive load client for the benchmarks.

Sends exactly N GET requests over C keep-alive connections (one request in flight per
connection), checks each response is a 200 with a Content-Length body, and prints one JSON
line: {"requests", "ok", "errors", "seconds"}. Used where the count matters more than the
rate (tests/bench/callgrind.sh divides instruction counts by it); wrk is the rate tool.

    load_client.py --port 18203 --path /api/v1/svc-0/products/42 -n 20000 -c 8

Exit status 0 when every request got its 200, 1 otherwise. Bounded: --timeout seconds in all.
"""

import argparse
import json
import selectors
import socket
import sys
import time


class Conn:
    def __init__(self, port, request):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.request = request
        self.buf = b""

    def send(self):
        self.sock.sendall(self.request)  # tiny: fits the socket buffer

    def take_response(self):
        """One complete response from the buffer: its status, or None if incomplete."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self.buf[:end].decode("latin-1").split("\r\n")
        length = None
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length is None:
            raise RuntimeError("response without Content-Length: %r" % head[:3])
        if len(self.buf) < end + 4 + length:
            return None
        self.buf = self.buf[end + 4 + length:]
        return int(head[0].split()[1])


def run(port, path, total, conns, timeout):
    request = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: fg-load\r\n\r\n" % path).encode()
    sel = selectors.DefaultSelector()
    sent = ok = errors = 0
    deadline = time.monotonic() + timeout
    t0 = time.monotonic()
    pool = [Conn(port, request) for _ in range(min(conns, total))]
    for c in pool:
        sel.register(c.sock, selectors.EVENT_READ, c)
        c.send()
        sent += 1
    done = 0
    while done < total:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("%d of %d responses within %.0f s" % (done, total, timeout))
        for key, _ in sel.select(min(left, 1.0)):
            c = key.data
            data = c.sock.recv(65536)
            if not data:
                raise RuntimeError("connection closed by the server after %d responses" % done)
            c.buf += data
            while True:
                status = c.take_response()
                if status is None:
                    break
                done += 1
                if status == 200:
                    ok += 1
                else:
                    errors += 1
                if sent < total:
                    c.send()
                    sent += 1
    for c in pool:
        c.sock.close()
    return {"requests": done, "ok": ok, "errors": errors,
            "seconds": round(time.monotonic() - t0, 3)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/")
    ap.add_argument("-n", type=int, default=10000, help="requests in all")
    ap.add_argument("-c", type=int, default=8, help="keep-alive connections")
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    if args.n < 1 or args.c < 1:
        ap.error("-n and -c must be at least 1")
    result = run(args.port, args.path, args.n, args.c, args.timeout)
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] == args.n else 1


if __name__ == "__main__":
    sys.exit(main())
