#!/usr/bin/env python3
"""origin.py - a real HTTP/1.1 origin server for FlexGate's demo (`make run`) and tests.

Threaded, keep-alive (HTTP/1.1), Python standard library only. Every response carries a
Content-Length except /chunked and /eof, which on purpose are chunked and close-delimited.

    origin.py --listen 127.0.0.1:8081 --name demo

Prints `listening 127.0.0.1:PORT name=NAME` on stdout (flushed) once it accepts connections
(`--listen 127.0.0.1:0` picks a free port; the line says which). SIGTERM/SIGINT: exit 0.

Behaviour by path (query strings are parsed; the raw target is echoed):
  any other path       200 JSON {"origin","method","path","headers","header_list",
                       "body_length","body_sha256","peer","connection_requests"}; in
                       "headers" names are lowercased and repeated headers joined with ", ",
                       "header_list" is every [name, value] as received, in order; "peer" is
                       the client's ip:port and
                       "connection_requests" how many requests this connection has carried
                       (tests use both to see upstream keep-alive)
  /status/NNN          that status (200..599), with the JSON above as body (none for 204/304)
  /slow?ms=N           sleeps N ms (capped at 60 s), then the JSON above
  /chunked?n=K&size=S&delay_ms=D
                       K chunks of S bytes (default 8 x 1024), Transfer-Encoding: chunked,
                       D ms pause before each chunk after the first (default 0)
  /bytes?n=N           N bytes of a fixed pattern (Content-Length)
  /close-mid-body      promises Content-Length 1000, sends 100 bytes, closes the connection
  /eof?n=N             N pattern bytes with neither Content-Length nor chunking: the body
                       ends when the origin closes the connection (RFC 9112 6.3 rule 8)
  /hang                reads the request and never answers (until the client goes or 10 min)
  /__control?mode=M&status=N&ms=T
                       switches how every OTHER path answers from now on (traffic-control
                       tests tell a running origin to fail): mode `ok` (normal, the default),
                       `fail` (status N, default 503, with the JSON below), `hang` (as /hang),
                       `slow` (T ms, default 1000, then normal), `close` (close the connection
                       without answering). Answers {"mode","status","ms"}. /__stats and
                       /__control itself are never affected.
  /unsafe-headers      200 JSON with, besides its own fields, X-Powered-By, a field whose name
                       holds a space, fields whose values hold NUL / \x01 / DEL, and
                       X-Safe: kept (header hygiene tests: the gateway drops the unsafe ones)
  /bare-lf             200 whose head has a bare LF inside a field ("X-A: a\nSet-Cookie: ..."):
                       a response a careless proxy would split
  /__stats             {"in_flight": requests being handled now (not counting this one),
                       "total": requests received so far, "complete": requests whose body
                       was read whole (not counting this one), "served": requests to paths
                       other than /__stats and /__control} -- lets a test see that a
                       request reached the origin and is still in progress

/bytes and /chunked send `X-Body-Sha256: <hex>` of the body they send, so a client behind a
proxy can check it received exactly what the origin sent. Every response has
`X-Origin: NAME`. Request bodies are read whole, with Content-Length or chunked.

TLS: `--tls-cert FILE --tls-key FILE` serves HTTPS instead (TLS 1.2+); `--tls-client-ca FILE`
also requires a client certificate signed by that CA (mutual TLS). The handshake runs in the
connection's thread, so a client that never completes it blocks nobody. JSON responses then
carry `X-TLS-Session-Reused: 1|0` (whether the client resumed a TLS session).
"""

import argparse
import hashlib
import json
import signal
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SLOW_MAX_MS = 60_000
HANG_MAX_S = 600
BYTES_MAX = 1 << 30
CHUNKS_MAX = 100_000
CHUNK_SIZE_MAX = 1 << 20
CHUNK_LINE_MAX = 1024
CONTROL_MODES = ("ok", "fail", "hang", "slow", "close")
PATTERN = bytes(range(256)) * 256  # 64 KiB block repeated for /bytes and /chunked


def pattern_bytes(n, offset=0):
    """The first n bytes of the /bytes pattern starting at offset (also used by tests)."""
    out = bytearray()
    pos = offset % len(PATTERN)
    while len(out) < n:
        take = min(n - len(out), len(PATTERN) - pos)
        out += PATTERN[pos:pos + take]
        pos = 0
    return bytes(out)


class BadRequest(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "flexgate-test-origin/1"
    # Head and body leave in one write, and small writes are not held back by Nagle: with
    # the defaults every response waits ~40 ms for the peer's delayed ACK, which would
    # swamp the latencies the tests measure through the gateway.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        self.requests_on_connection = 0

    def log_message(self, fmt, *args):  # quiet: tests read their own logs, not ours
        if self.server.verbose:
            sys.stderr.write("origin %s: %s\n" % (self.server.name, fmt % args))

    # -- request body -------------------------------------------------------------------
    def read_body(self):
        """Read the request body (Content-Length or chunked); return (length, sha256)."""
        digest = hashlib.sha256()
        total = 0
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            for _ in range(10_000_000):
                line = self.rfile.readline(CHUNK_LINE_MAX)
                if not line.endswith(b"\n"):
                    raise BadRequest("bad chunk size line")
                size = int(line.split(b";", 1)[0].strip() or b"x", 16)
                if size == 0:
                    # Trailer section: lines until an empty one.
                    for _ in range(1000):
                        t = self.rfile.readline(CHUNK_LINE_MAX)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                left = size
                while left > 0:
                    data = self.rfile.read(min(left, 65536))
                    if not data:
                        raise BadRequest("body ended early")
                    digest.update(data)
                    total += len(data)
                    left -= len(data)
                if self.rfile.read(2) not in (b"\r\n",):
                    raise BadRequest("chunk not followed by CRLF")
            return total, digest.hexdigest()
        length = self.headers.get("Content-Length")
        if length is None:
            return 0, digest.hexdigest()
        left = int(length)
        while left > 0:
            data = self.rfile.read(min(left, 65536))
            if not data:
                raise BadRequest("body ended early")
            digest.update(data)
            total += len(data)
            left -= len(data)
        return total, digest.hexdigest()

    # -- responses ----------------------------------------------------------------------
    def describe(self, body_length, body_sha):
        headers = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = headers[key] + ", " + value if key in headers else value
        return {
            "origin": self.server.name,
            "method": self.command,
            "path": self.path,
            "headers": headers,
            "header_list": [[n, v] for n, v in self.headers.items()],
            "body_length": body_length,
            "body_sha256": body_sha,
            "peer": "%s:%d" % self.client_address[:2],
            "connection_requests": self.requests_on_connection,
        }

    def send_bytes(self, status, body, content_type="application/json", extra=None):
        self.send_response(status)
        self.send_header("X-Origin", self.server.name)
        if isinstance(self.connection, ssl.SSLSocket):
            self.send_header("X-TLS-Session-Reused", "1" if self.connection.session_reused else "0")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        no_body = status < 200 or status in (204, 304)
        if not no_body:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not no_body and self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def send_json(self, status, obj):
        self.send_bytes(status, (json.dumps(obj, sort_keys=True) + "\n").encode())

    def handle_any(self):
        self.requests_on_connection += 1
        with self.server.lock:
            self.server.in_flight += 1
            self.server.total += 1
            if not self.path.startswith(("/__stats", "/__control")):
                self.server.served += 1
        try:
            self.respond()
        finally:
            with self.server.lock:
                self.server.in_flight -= 1

    def respond(self):
        try:
            length, sha = self.read_body()
            with self.server.lock:
                self.server.complete += 1
        except (BadRequest, ValueError) as e:
            self.close_connection = True
            self.send_json(400, {"origin": self.server.name, "error": str(e)})
            return
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        path = url.path

        def qint(name, default, hi):
            try:
                return max(0, min(int(query.get(name, [default])[0]), hi))
            except ValueError:
                return default

        info = self.describe(length, sha)
        if path == "/__control":
            self.control(query, qint)
            return
        mode = self.server.mode
        if path != "/__stats" and mode["mode"] != "ok":
            if mode["mode"] == "fail":
                self.send_json(mode["status"], info)
                return
            if mode["mode"] == "hang":
                self.hang()
                return
            if mode["mode"] == "close":
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if mode["mode"] == "slow":
                time.sleep(mode["ms"] / 1000.0)
        if path.startswith("/status/"):
            try:
                status = int(path[len("/status/"):].split("/")[0])
            except ValueError:
                status = 400
            if not 100 <= status <= 599 or status < 200:
                status = 400
            self.send_json(status, info)
        elif path == "/slow":
            ms = qint("ms", 1000, SLOW_MAX_MS)
            time.sleep(ms / 1000.0)
            self.send_json(200, info)
        elif path == "/chunked":
            self.send_chunked(qint("n", 8, CHUNKS_MAX), qint("size", 1024, CHUNK_SIZE_MAX),
                              qint("delay_ms", 0, SLOW_MAX_MS))
        elif path == "/bytes":
            body = pattern_bytes(qint("n", 1024, BYTES_MAX))
            self.send_bytes(200, body, "application/octet-stream",
                            {"X-Body-Sha256": hashlib.sha256(body).hexdigest()})
        elif path == "/close-mid-body":
            self.close_mid_body()
        elif path == "/eof":
            self.send_until_close(qint("n", 1024, BYTES_MAX))
        elif path == "/hang":
            self.hang()
        elif path in ("/unsafe-headers", "/bare-lf"):
            self.send_raw_head(path)
        elif path == "/__stats":
            with self.server.lock:
                stats = {"in_flight": self.server.in_flight - 1, "total": self.server.total,
                         "complete": self.server.complete - 1, "served": self.server.served}
            self.send_json(200, stats)
        else:
            self.send_json(200, info)

    def control(self, query, qint):
        mode = query.get("mode", ["ok"])[0]
        if mode not in CONTROL_MODES:
            self.send_json(400, {"error": "mode must be one of %s" % ", ".join(CONTROL_MODES)})
            return
        status = qint("status", 503, 599)
        self.server.mode = {"mode": mode, "status": status if status >= 200 else 503,
                            "ms": qint("ms", 1000, SLOW_MAX_MS)}
        self.send_json(200, self.server.mode)

    def send_chunked(self, n, size, delay_ms=0):
        body = pattern_bytes(n * size)
        self.send_response(200)
        self.send_header("X-Origin", self.server.name)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Body-Sha256", hashlib.sha256(body).hexdigest())
        self.end_headers()
        if self.command != "HEAD":
            for i in range(n):
                if i and delay_ms:
                    time.sleep(delay_ms / 1000.0)
                chunk = body[i * size:(i + 1) * size]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def close_mid_body(self):
        self.send_response(200)
        self.send_header("X-Origin", self.server.name)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(pattern_bytes(100))
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def send_until_close(self, n):
        body = pattern_bytes(n)
        self.send_response(200)
        self.send_header("X-Origin", self.server.name)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Connection", "close")
        self.send_header("X-Body-Sha256", hashlib.sha256(body).hexdigest())
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def send_raw_head(self, path):
        """A head written byte for byte (BaseHTTPRequestHandler would refuse these fields)."""
        body = (json.dumps({"origin": self.server.name, "path": path}) + "\n").encode()
        if path == "/bare-lf":
            fields = b"X-A: a\nSet-Cookie: split=1\r\n"
        else:
            fields = (b"X-Powered-By: PHP/8.1\r\nX Space: v\r\nX-Nul: a\x00b\r\n"
                      b"X-Ctl: a\x01b\r\nX-Del: a\x7fb\r\nX-Safe: kept\r\n")
        self.wfile.write(b"HTTP/1.1 200 OK\r\nServer: origin-secret/1.0\r\nX-Origin: "
                         + self.server.name.encode() + b"\r\n" + fields
                         + b"Content-Type: application/json\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
        self.wfile.flush()

    def hang(self):
        # Never answer; return (and close) when the client goes away or after HANG_MAX_S.
        self.close_connection = True
        self.connection.settimeout(1.0)
        deadline = time.monotonic() + HANG_MAX_S
        while time.monotonic() < deadline and not self.server.stopping.is_set():
            try:
                if self.connection.recv(65536) == b"":
                    return
            except socket.timeout:
                continue
            except OSError:
                return

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = handle_any


class OriginServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, name, verbose=False):
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6  # --listen [::1]:0
        super().__init__(addr, Handler)
        self.name = name
        self.verbose = verbose
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.total = 0
        self.complete = 0
        self.mode = {"mode": "ok", "status": 503, "ms": 1000}  # set by /__control
        self.served = 0


def parse_listen(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % text)
    return host.strip("[]"), int(port)


def main(argv=None):
    ap = argparse.ArgumentParser(description="FlexGate test/demo origin (HTTP/1.1)")
    ap.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 8081),
                    help="HOST:PORT to listen on (port 0: pick a free one)")
    ap.add_argument("--name", default="origin", help="reported as \"origin\" in responses")
    ap.add_argument("--verbose", action="store_true", help="log each request on stderr")
    ap.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate chain")
    ap.add_argument("--tls-key", help="the private key of --tls-cert")
    ap.add_argument("--tls-client-ca", help="require client certificates signed by this CA")
    args = ap.parse_args(argv)

    server = OriginServer(args.listen, args.name, args.verbose)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(args.tls_client_ca)
        server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)

    def on_signal(signum, frame):
        server.stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    host, port = server.server_address[:2]
    print("listening %s:%d name=%s" % (host, port, args.name), flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
