#!/usr/bin/env python3
"""test_http_hardening.py - malformed and hostile HTTP against a real flexgate-dp (issue 3).

Raw sockets throughout, so the requests are exactly the bytes written here:
  * every request-smuggling form is answered 400 (501 for an unknown coding), the connection
    is closed, and the origin receives nothing;
  * 431 for an oversized request line or header section and for too many headers; 413 for a
    chunked body that passes maxBodySize mid-stream;
  * slowloris (408 after proxy.timeout.header), keep-alive idle timeout (closed);
  * a client that stops reading while the origin sends 48 MiB: the data plane's RSS stays
    bounded and the connection is closed by the upstream timeout;
  * an upstream that dies mid-body: the client sees the connection end early, promptly;
  * upstream connect timeout, response-header timeout and whole-request (route) timeout: 504;
  * past proxy.maxConnections: 503 with Retry-After, and service again once under the cap.

The proxy limits are set through configured_dp (an edited snapshot via fake_ctl), since the
admin API has no endpoint for the `proxy` section yet.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest

# Under AddressSanitizer freed memory sits in a quarantine (256 MiB by default), which would
# make RSS measure ASan rather than the data plane: keep it small for the processes started
# here. No effect on a normal build.
os.environ["ASAN_OPTIONS"] = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                   "quarantine_size_mb=4"]))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import configured_dp  # noqa: E402

IO_TIMEOUT = 5.0
HEADER_TIMEOUT_MS = 800
IDLE_TIMEOUT_MS = 800
CONNECT_TIMEOUT_MS = 500
UPSTREAM_TIMEOUT_MS = 600   # "slowup": response-header timeout
STALL_TIMEOUT_MS = 1500     # "stallup": how long a client that stops reading is kept
ROUTE_TIMEOUT_MS = 700      # route "slow": whole-request deadline
MAX_HEADER_SIZE = 4096
MAX_HEADERS = 20
MAX_BODY = 1000
RSS_GROWTH_MAX = 16 << 20   # bytes the data plane may grow while a client stalls
STALL_BODY = 48 << 20       # what the origin tries to send to the stalled client


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for pid %d" % pid)


TCP_ESTABLISHED = 1  # /proc/net/tcp "st"


def tcp_state(local_port, remote_port):
    """State of the IPv4 socket local_port -> remote_port, from /proc/net/tcp (None: gone)."""
    want = ":%04X" % local_port, ":%04X" % remote_port
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1].endswith(want[0]) and fields[2].endswith(want[1]):
                return int(fields[3], 16)
    return None


def http_counters(dp):
    """The counters the data plane logs when it stops ("http counters"), as ints."""
    for line in reversed(dp.read("stderr").splitlines()):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if obj.get("msg") == "http counters":
            return {k: int(v) for k, v in obj.items() if k not in ("ts", "level", "component",
                                                                  "msg")}
    raise AssertionError("no \"http counters\" line in %s's log" % dp.name)


def read_head(f):
    """Status and lowercased headers of one response from a buffered reader."""
    line = f.readline(65536)
    if not line:
        return None, {}
    status = int(line.split()[1])
    headers = {}
    while True:
        h = f.readline(65536)
        if h in (b"\r\n", b"\n", b""):
            return status, headers
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()


def wait_eof(sock, timeout):
    """Read and drop until the peer closes; True on EOF within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    for _ in range(100000):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            if sock.recv(65536) == b"":
                return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
    return False


class TunnelOrigin:
    """An upstream that answers any request with 101 and then pushes bytes into the tunnel
    as fast as it is allowed, never reading; records how many bytes it got out."""

    CHUNK = 65536

    def __init__(self, limit):
        self.limit = limit
        self.sent = 0
        self.done = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        conn.settimeout(IO_TIMEOUT)
        try:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                data = conn.recv(4096)
                if not data:
                    return
                head += data
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\n\r\n")
            block = b"w" * self.CHUNK
            while self.sent < self.limit and not self.stopping:
                self.sent += conn.send(block)
        except OSError:
            pass
        finally:
            conn.close()
            self.done.set()

    def close(self):
        self.stopping = True
        self.sock.close()


class Hardening(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        c = cls.c = harness.Cluster("hardening")
        try:
            cls.origin = c.start_origin("A")
            # An upstream whose accept queue is full: connects to it never complete.
            cls.blackhole = socket.socket()
            cls.blackhole.bind(("127.0.0.1", 0))
            cls.blackhole.listen(0)
            cls.filler = socket.create_connection(cls.blackhole.getsockname(), timeout=2)
            bh_url = "http://127.0.0.1:%d" % cls.blackhole.getsockname()[1]
            cls.tunnel = TunnelOrigin(STALL_BODY)
            url = c.origin_url("A")
            ups = [{"name": "backend", "url": url, "timeout": 5000},
                   {"name": "slowup", "url": url, "timeout": UPSTREAM_TIMEOUT_MS},
                   {"name": "stallup", "url": url, "timeout": STALL_TIMEOUT_MS},
                   {"name": "blackhole", "url": bh_url, "timeout": 5000},
                   {"name": "tunnel", "url": "http://127.0.0.1:%d" % cls.tunnel.port}]
            routes = [{"id": "all", "path": "/*", "upstream": "backend"},
                      {"id": "hang", "path": "/hang", "upstream": "slowup"},
                      {"id": "slow", "path": "/slow", "upstream": "backend",
                       "timeout": ROUTE_TIMEOUT_MS},
                      {"id": "stall", "path": "/chunked", "upstream": "stallup"},
                      {"id": "bh", "path": "/bh/*", "upstream": "blackhole"},
                      {"id": "ws", "path": "/ws", "upstream": "tunnel", "websocket": True}]
            proxy = {"timeout": {"header": HEADER_TIMEOUT_MS, "idle": IDLE_TIMEOUT_MS,
                                 "connect": CONNECT_TIMEOUT_MS},
                     "maxHeaderSize": MAX_HEADER_SIZE, "maxHeaders": MAX_HEADERS,
                     "maxBodySize": MAX_BODY}
            cls.dp, cls.fake = configured_dp.start(cls, c, ups, routes, proxy)
        except BaseException:
            c.close()
            raise

    @classmethod
    def addCleanup(cls, fn, *a, **kw):  # configured_dp registers the fake ctl's close
        cls._class_cleanups_fns = getattr(cls, "_class_cleanups_fns", []) + [(fn, a, kw)]

    expected = {}

    def expect_count(self, name, n=1):
        """This test makes counter `name` grow by at least n (checked at shutdown)."""
        type(self).expected[name] = type(self).expected.get(name, 0) + n

    @classmethod
    def tearDownClass(cls):
        try:
            cls.c.stop_all_checked()
            got = http_counters(cls.dp)
            sys.stderr.write("dp counters: %s\n" % json.dumps(got, sort_keys=True))
            short = {k: (got.get(k), n) for k, n in cls.expected.items() if got.get(k, 0) < n}
            if short:
                raise AssertionError("counters below what the tests caused (got, want): %r"
                                     % short)
        finally:
            for fn, a, kw in getattr(cls, "_class_cleanups_fns", []):
                fn(*a, **kw)
            cls.filler.close()
            cls.blackhole.close()
            cls.tunnel.close()
            cls.c.close()

    # -- helpers -----------------------------------------------------------------------
    probes = 0

    def origin_counts(self):
        """(requests the origin received, requests whose body it read whole), not counting
        these /__stats probes."""
        r = harness.one_shot(self.origin.port, "GET", "/__stats").json()
        type(self).probes += 1
        return r["total"] - type(self).probes, r["complete"] - (type(self).probes - 1)

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.dp.port), timeout=IO_TIMEOUT)

    def send_and_read(self, data):
        """Send raw bytes; return (status, headers, sock, reader) of the first response."""
        s = self.connect()
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        f = s.makefile("rb")
        status, headers = read_head(f)
        return status, headers, s, f

    def assert_refused(self, data, statuses=(400,), what="", in_body=False):
        """Refused and closed; the origin saw nothing - or, for an error inside the body
        (the head went up before the body arrived), never a complete request."""
        before = self.origin_counts()
        status, headers, s, f = self.send_and_read(data)
        try:
            self.assertIn(status, statuses, "%s: %r" % (what, data[:200]))
            self.assertEqual(headers.get("connection"), "close", what)
            n = int(headers.get("content-length", "0"))
            f.read(n)
            self.assertEqual(f.read(1), b"", "%s: connection must be closed" % what)
        finally:
            s.close()
        after = self.origin_counts()
        if in_body:
            self.assertEqual(after[1], before[1], "%s: origin got a whole request" % what)
        else:
            self.assertEqual(after, before, "%s: origin received it" % what)

    # -- smuggling ---------------------------------------------------------------------
    def test_smuggling_forms_refused(self):
        H = b"POST /echo HTTP/1.1\r\nHost: x\r\n"
        cases = {
            "CL and TE": H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"0\r\n\r\n",
            "TE and CL": H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
                         b"0\r\n\r\n",
            "two differing CL": H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            "two equal CL": H + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
            "CL list": H + b"Content-Length: 5, 5\r\n\r\nhello",
            "CL sign": H + b"Content-Length: +5\r\n\r\nhello",
            "CL hex": H + b"Content-Length: 0x5\r\n\r\nhello",
            "TE not final chunked": H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
            "TE gzip only": H + b"Transfer-Encoding: gzip\r\n\r\nabc",
            "TE chunked twice": H + b"Transfer-Encoding: chunked\r\n"
                                b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "TE with a control byte": H + b"Transfer-Encoding: chunked\x0b\r\n\r\n0\r\n\r\n",
            "TE in HTTP/1.0": b"POST /echo HTTP/1.0\r\nHost: x\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "TE look-alike": H + b"Transfer_Encoding: chunked\r\n\r\n0\r\n\r\n",
            "obs-fold": H + b"X-A: a\r\n b\r\nContent-Length: 0\r\n\r\n",
            "obs-fold tab": H + b"X-A: a\r\n\tTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "bare CR in value": H + b"X-A: a\rContent-Length: 5\r\n\r\nhello",
            "bare CR line end": H + b"X-A: a\r\rContent-Length: 0\r\n\r\n",
            "bare LF line end": H + b"X-A: a\nContent-Length: 0\r\n\r\n",
            "bare LF head end": H + b"Content-Length: 0\n\n",
            "bare CR in request line": b"POST /echo\rX HTTP/1.1\r\nHost: x\r\n\r\n",
            "NUL in value": H + b"X-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
            "space before colon": H + b"Content-Length : 5\r\n\r\nhello",
            "tab before colon": H + b"Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n",
            "leading space header": H + b" Content-Length: 5\r\n\r\nhello",
        }
        body_cases = {
            "bad chunk size": H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            "chunk size overflow": H + b"Transfer-Encoding: chunked\r\n\r\n"
                                   b"fffffffffffffffff\r\nhello\r\n0\r\n\r\n",
            "chunk size with space": H + b"Transfer-Encoding: chunked\r\n\r\n"
                                     b"5 5\r\nhello\r\n0\r\n\r\n",
            "chunk missing CRLF": H + b"Transfer-Encoding: chunked\r\n\r\n"
                                  b"5\r\nhelloXX0\r\n\r\n",
            "chunk CR without LF": H + b"Transfer-Encoding: chunked\r\n\r\n"
                                   b"5\r\nhello\rX0\r\n\r\n",
        }
        cases["two Host"] = H + b"Host: y\r\nContent-Length: 0\r\n\r\n"
        self.expect_count("bad_requests", len(cases) + len(body_cases))
        self.expect_count("not_implemented")
        self.expect_count("version_refused")
        for what, data in cases.items():
            with self.subTest(what):
                self.assert_refused(data, (400,), what)
        for what, data in body_cases.items():
            with self.subTest(what):
                self.assert_refused(data, (400,), what, in_body=True)
        with self.subTest("unknown coding"):
            self.assert_refused(H + b"Transfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n",
                                (501,), "unknown coding")
        with self.subTest("HTTP/2.0 request line"):
            self.assert_refused(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", (505, 400), "version")
        self.assertTrue(self.dp.alive())

    def test_pipelined_request_after_body_is_seen_at_our_boundary(self):
        # A CL body that "contains" a second request: the origin must see one POST whose
        # body is those bytes, then the real second request - never the smuggled one.
        inner = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        data = (b"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(inner)
                + inner + b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
        s = self.connect()
        try:
            s.sendall(data)
            r = harness.read_responses(s, ["POST", "GET"])
        finally:
            s.close()
        self.assertEqual([x.status for x in r], [200, 200])
        self.assertEqual(r[0].json()["path"], "/first")
        self.assertEqual(r[0].json()["body_length"], len(inner))
        self.assertEqual(r[1].json()["path"], "/second")

    def test_transfer_codings_forwarded_on_one_line(self):
        data = (b"POST /te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        s = self.connect()
        try:
            s.sendall(data)
            r = harness.read_responses(s, ["POST"])[0]
        finally:
            s.close()
        self.assertEqual(r.status, 200)
        info = r.json()
        te = [v for n, v in info["header_list"] if n.lower() == "transfer-encoding"]
        self.assertEqual(te, ["gzip, chunked"])
        self.assertEqual(info["body_length"], 3)

    # -- limits ------------------------------------------------------------------------
    def test_request_line_too_long_431(self):
        self.expect_count("head_too_large")
        path = b"/" + b"a" * (MAX_HEADER_SIZE + 10)
        self.assert_refused(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n", (431,), "line")

    def test_header_section_too_large_431(self):
        self.expect_count("head_too_large")
        hdrs = b"".join(b"X-Fill-%d: %s\r\n" % (i, b"v" * 600) for i in range(10))
        self.assert_refused(b"GET / HTTP/1.1\r\nHost: x\r\n" + hdrs + b"\r\n", (431,), "size")

    def test_too_many_headers_431(self):
        self.expect_count("head_too_large")
        ok = b"".join(b"X-N-%d: 1\r\n" % i for i in range(MAX_HEADERS - 1))  # + Host
        status, _, s, _ = self.send_and_read(b"GET / HTTP/1.1\r\nHost: x\r\n" + ok + b"\r\n")
        s.close()
        self.assertEqual(status, 200, "exactly maxHeaders fields are accepted")
        many = b"".join(b"X-N-%d: 1\r\n" % i for i in range(MAX_HEADERS))
        self.assert_refused(b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n", (431,), "count")

    def test_body_over_limit_413(self):
        self.expect_count("body_too_large", 2)
        self.assert_refused(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                            % (MAX_BODY + 1), (413,), "announced")
        # Chunked: only known mid-stream; the origin may already have the head, so only the
        # client side is asserted: 413 and the connection closed, the body never completed.
        s = self.connect()
        try:
            s.sendall(b"POST /chunk413 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"%x\r\n%s\r\n" % (600, b"x" * 600)
            try:
                s.sendall(chunk + chunk + b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            f = s.makefile("rb")
            status, headers = read_head(f)
            self.assertEqual(status, 413)
            self.assertEqual(headers.get("connection"), "close")
            f.read(int(headers.get("content-length", "0")))
            self.assertEqual(f.read(1), b"")
        finally:
            s.close()

    # -- client timeouts ---------------------------------------------------------------
    def test_slowloris_header_timeout_408(self):
        self.expect_count("header_timeouts")
        s = self.connect()
        try:
            t0 = time.monotonic()
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            f = s.makefile("rb")
            status, headers = read_head(f)
            elapsed = time.monotonic() - t0
            self.assertEqual(status, 408)
            self.assertEqual(headers.get("connection"), "close")
            self.assertGreaterEqual(elapsed, HEADER_TIMEOUT_MS / 1000.0 * 0.9)
            self.assertLess(elapsed, IO_TIMEOUT)
        finally:
            s.close()

    def test_slowloris_trickle_does_not_extend_header_timeout(self):
        self.expect_count("header_timeouts")
        s = self.connect()
        try:
            t0 = time.monotonic()
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            s.settimeout(0.1)
            status = None
            for i in range(200):  # one header byte per 100 ms poll, until answered
                try:
                    data = s.recv(4096)
                    status = int(data.split()[1]) if data else "closed"
                    break
                except socket.timeout:
                    try:
                        s.sendall(b"X")
                    except OSError:
                        break
            self.assertEqual(status, 408)
            self.assertLess(time.monotonic() - t0, HEADER_TIMEOUT_MS / 1000.0 + 2.5)
        finally:
            s.close()

    def test_idle_keepalive_closed(self):
        self.expect_count("idle_timeouts")
        s = self.connect()
        try:
            s.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            r = harness.read_responses(s, ["GET"])[0]
            self.assertEqual(r.status, 200)
            t0 = time.monotonic()
            self.assertTrue(wait_eof(s, IO_TIMEOUT), "idle connection not closed")
            self.assertGreaterEqual(time.monotonic() - t0, IDLE_TIMEOUT_MS / 1000.0 * 0.8)
        finally:
            s.close()

    # -- backpressure ------------------------------------------------------------------
    def test_client_that_stops_reading_keeps_memory_bounded(self):
        self.expect_count("client_timeouts")
        base = rss_bytes(self.dp.pid)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.settimeout(IO_TIMEOUT)
        s.connect(("127.0.0.1", self.dp.port))
        try:
            s.sendall(b"GET /chunked?n=%d&size=65536 HTTP/1.1\r\nHost: x\r\n\r\n"
                      % (STALL_BODY // 65536))
            peak = base
            t0 = time.monotonic()
            deadline = t0 + STALL_TIMEOUT_MS / 1000.0 + IO_TIMEOUT
            closed = False
            received = 0
            # Sample the data plane's RSS, without reading, until it closes the connection
            # (its end leaves ESTABLISHED: our full receive window holds its FIN back, so
            # our end cannot tell yet); then drain what was buffered and check that the body
            # was cut short (nothing near 48 MiB).
            local = s.getsockname()[1]

            def cut():
                nonlocal peak
                peak = max(peak, rss_bytes(self.dp.pid))
                return tcp_state(self.dp.port, local) != TCP_ESTABLISHED

            self.c.poll(cut, "the data plane to close the stalled connection",
                        timeout=deadline - t0)
            self.assertGreaterEqual(time.monotonic() - t0, STALL_TIMEOUT_MS / 1000.0 * 0.9)
            s.settimeout(0.5)
            for _ in range(100000):
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    if time.monotonic() > deadline:
                        break
                    continue
                except ConnectionResetError:
                    closed = True
                    break
                if not data:
                    closed = True
                    break
                received += len(data)
            sys.stderr.write("stalled client: dp RSS %d KiB -> peak %d KiB (+%d KiB), client "
                             "got %d of %d bytes\n" % (base >> 10, peak >> 10,
                                                       (peak - base) >> 10, received, STALL_BODY))
            self.assertTrue(closed, "the stalled connection was never closed")
            self.assertLess(received, STALL_BODY // 2, "the body was not held back")
            self.assertLess(peak - base, RSS_GROWTH_MAX,
                            "dp RSS grew %d bytes for one stalled client" % (peak - base))
        finally:
            s.close()
        self.assertTrue(self.dp.alive())

    def test_websocket_tunnel_backpressure(self):
        # The upstream pushes 48 MiB into a tunnel whose client reads nothing: the data plane
        # stops reading the upstream, its RSS stays bounded, and after proxy.timeout.idle of
        # no progress it closes both ends.
        self.expect_count("idle_timeouts")
        base = rss_bytes(self.dp.pid)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.settimeout(IO_TIMEOUT)
        s.connect(("127.0.0.1", self.dp.port))
        try:
            s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\n\r\n")
            f = s.makefile("rb")
            status, headers = read_head(f)
            self.assertEqual(status, 101)
            self.assertEqual(headers.get("upgrade"), "websocket")
            peak = base
            local = s.getsockname()[1]

            def cut():
                nonlocal peak
                peak = max(peak, rss_bytes(self.dp.pid))
                return tcp_state(self.dp.port, local) != TCP_ESTABLISHED

            self.c.poll(cut, "the data plane to close the stalled tunnel",
                        timeout=IDLE_TIMEOUT_MS / 1000.0 + IO_TIMEOUT)
            self.assertTrue(self.tunnel.done.wait(IO_TIMEOUT), "upstream side not closed")
            sys.stderr.write("stalled tunnel: dp RSS +%d KiB, upstream got %d of %d bytes out\n"
                             % ((peak - base) >> 10, self.tunnel.sent, STALL_BODY))
            self.assertLess(self.tunnel.sent, STALL_BODY // 2, "the tunnel was not held back")
            self.assertLess(peak - base, RSS_GROWTH_MAX,
                            "dp RSS grew %d bytes for one stalled tunnel" % (peak - base))
        finally:
            s.close()

    def test_upstream_dies_mid_body(self):
        s = self.connect()
        try:
            t0 = time.monotonic()
            s.sendall(b"GET /close-mid-body HTTP/1.1\r\nHost: x\r\n\r\n")
            f = s.makefile("rb")
            status, headers = read_head(f)
            self.assertEqual(status, 200)
            self.assertEqual(headers.get("content-length"), "1000")
            body = b""
            for _ in range(1000):
                b = f.read1(65536) if hasattr(f, "read1") else f.read(65536)
                if not b:
                    break
                body += b
            self.assertLess(len(body), 1000, "a truncated body must not look complete")
            self.assertLess(time.monotonic() - t0, IO_TIMEOUT - 1)
        finally:
            s.close()
        self.assertTrue(self.dp.alive())
        status, _, s, _ = self.send_and_read(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        s.close()
        self.assertEqual(status, 200)

    # -- upstream timeouts -------------------------------------------------------------
    def timed_status(self, path):
        t0 = time.monotonic()
        status, headers, s, _ = self.send_and_read(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
        s.close()
        return status, time.monotonic() - t0

    def assert_timeout_504(self, counter, path, timeout_ms, why=""):
        """`path` is answered 504 after about `timeout_ms` (never early, well before the
        other timeouts), and counted under `counter`."""
        self.expect_count(counter)
        status, elapsed = self.timed_status(path)
        self.assertEqual(status, 504)
        self.assertGreaterEqual(elapsed, timeout_ms / 1000.0 * 0.9)
        self.assertLess(elapsed, 4.0, why)

    def test_upstream_connect_timeout_504(self):
        self.assert_timeout_504("connect_timeouts", b"/bh/x", CONNECT_TIMEOUT_MS)

    def test_upstream_response_header_timeout_504(self):
        self.assert_timeout_504("upstream_timeouts", b"/hang", UPSTREAM_TIMEOUT_MS)

    def test_whole_request_timeout_504(self):
        self.assert_timeout_504("request_timeouts", b"/slow?ms=3000", ROUTE_TIMEOUT_MS,
                                "the route timeout, not the upstream's 5 s")


class ConnectionCap(harness.ClusterTest):
    label = "conncap"
    CAP = 3

    def fill_to_cap(self, dp, held):
        """Open CAP served keep-alive connections, appending each to `held` (closed by the
        caller)."""
        for _ in range(self.CAP):
            s = socket.create_connection(("127.0.0.1", dp.port), timeout=IO_TIMEOUT)
            held.append(s)
            s.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(harness.read_responses(s, ["GET"])[0].status, 200)

    def test_over_cap_503_retry_after(self):
        c = self.c
        c.start_origin("A")
        dp, _ = configured_dp.start(
            self, c, [{"name": "backend", "url": c.origin_url("A")}],
            [{"id": "all", "path": "/*", "upstream": "backend"}],
            {"maxConnections": self.CAP})
        held = []
        try:
            self.fill_to_cap(dp, held)
            for _ in range(3):
                r = harness.raw_request(dp.port, b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n",
                                        timeout=IO_TIMEOUT)
                self.assertEqual(r.status, 503)
                self.assertEqual(r.header("Retry-After"), "1")
                self.assertTrue(r.will_close)
            gone = held.pop()
            gone.shutdown(socket.SHUT_RDWR)  # the response reader still holds the fd open
            gone.close()
            c.poll(lambda: harness.raw_request(
                dp.port, b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                timeout=IO_TIMEOUT).status == 200, "a connection under the cap is served")
        finally:
            for s in held:
                s.close()
        rc, forced = dp.stop()
        self.assertEqual((rc, forced), (0, False))
        got = http_counters(dp)
        # 3, plus any probe that arrived before the data plane saw the freed connection go.
        self.assertGreaterEqual(got["connections_shed"], 3, got)
        self.assertGreaterEqual(got["connections_accepted"], self.CAP + 1, got)

    def test_over_cap_on_tls_listener_closes_without_plaintext(self):
        """A 503 on the TLS port would be plaintext to a TLS client (and answering it properly
        takes a handshake, the work shedding exists to avoid): close, count, say nothing."""
        c = self.c
        c.start_origin("A")
        certs = os.path.join(c.tmp, "certs")
        subprocess.run([os.path.join(harness.SOURCE_DIR, "deploy", "make-certs.sh"), certs],
                       check=True, stdout=subprocess.DEVNULL, timeout=60)
        tls_port = harness.free_port()
        dp, _ = configured_dp.start(
            self, c, [{"name": "backend", "url": c.origin_url("A")}],
            [{"id": "all", "path": "/*", "upstream": "backend"}],
            {"maxConnections": self.CAP},
            dp_args=["--tls-listen", "127.0.0.1:%d" % tls_port,
                     "--tls-cert", os.path.join(certs, "server.crt"),
                     "--tls-key", os.path.join(certs, "server.key")])
        held = []
        try:
            self.fill_to_cap(dp, held)
            raw = socket.create_connection(("127.0.0.1", tls_port), timeout=IO_TIMEOUT)
            try:
                got = raw.recv(4096)
            except ConnectionResetError:
                got = b""
            finally:
                raw.close()
            self.assertEqual(got, b"", "no plaintext on the TLS port: %r" % got[:80])
        finally:
            for s in held:
                s.close()
        rc, forced = dp.stop()
        self.assertEqual((rc, forced), (0, False))
        self.assertGreaterEqual(http_counters(dp)["connections_shed"], 1)


if __name__ == "__main__":
    harness.main()
