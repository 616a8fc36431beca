#!/usr/bin/env python3
"""test_proxy.py - the data plane's HTTP/1.1 proxying (issue 2).

One control plane, two data planes and the test origin, shared by the tests of this file.
Bodies with Content-Length and chunked in both directions (checked by sha256 against what
the origin received or sent), keep-alive with the client and pooled connections to the
upstream, X-Forwarded-For/-Proto/-Host and the upstream Host, hop-by-hop headers dropped,
status codes passed through, HEAD, and the gateway's own errors: 404 no_route, 502
bad_gateway (upstream refused; upstream closing mid-body), 504 gateway_timeout.
"""

import hashlib
import http.client
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import error_code, is_origin_json  # noqa: E402
from origin import pattern_bytes  # noqa: E402  (tests/tools)

SHORT_TIMEOUT_MS = 500  # the "slowup" upstream's timeout


class Proxy(harness.SharedClusterTest):
    label = "proxy"
    expect_error_logs = False

    @classmethod
    def build(cls, c):
        c.start_origin("A")
        c.start_ctl()
        url = c.origin_url("A")
        cls.dead_port = harness.free_port()  # nothing listens there
        for up in ({"name": "backend", "url": url, "timeout": 10000},
                   {"name": "slowup", "url": url, "timeout": SHORT_TIMEOUT_MS},
                   {"name": "dead", "url": "http://127.0.0.1:%d" % cls.dead_port,
                    "timeout": 2000}):
            c.api_ok("POST", "/api/v1/upstreams", up, expect=201)
        for rid, path, up in (("api", "/api/*", "backend"), ("echo", "/echo", "backend"),
                              ("bytes", "/bytes", "backend"),
                              ("chunked", "/chunked", "backend"),
                              ("status", "/status/*", "backend"),
                              ("cmb", "/close-mid-body", "backend"),
                              ("eof", "/eof", "backend"),
                              ("hang", "/hang", "slowup"), ("slow", "/slow", "slowup"),
                              ("dead", "/dead/*", "dead")):
            c.api_ok("POST", "/api/v1/routes", {"id": rid, "path": path, "upstream": up},
                     expect=201)
        c.api_ok("POST", "/api/v1/upstreams", {"name": "based", "url": url + "/base"},
                 expect=201)
        for route in ({"id": "post-only", "path": "/m/*", "upstream": "backend",
                       "methods": ["POST", "PUT"]},
                      {"id": "hosted", "path": "/h/*", "upstream": "backend",
                       "hosts": ["a.example.test", "*.wild.test"]},
                      {"id": "strip", "path": "/strip/*", "upstream": "backend",
                       "stripPrefix": True},
                      {"id": "based", "path": "/based/*", "upstream": "based"}):
            c.api_ok("POST", "/api/v1/routes", route, expect=201)
        cls.ids = ["dp-a", "dp-b"]
        for i in cls.ids:
            c.start_dp(i)
        v = c.config_version()
        for i in cls.ids:
            c.wait_dp_ready(c.dps[i], version=v)

    def setUp(self):
        self.marks = self.c.log_marks()
        self.expect_error_logs = type(self).expect_error_logs

    def tearDown(self):
        self.c.assert_no_sanitizer_reports()
        if not self.expect_error_logs:
            self.c.assert_no_error_logs(self.marks)

    def client(self, dp="dp-a", **kw):
        cl = harness.Client(self.c.dps[dp].port, **kw)
        self.addCleanup(cl.close)
        return cl

    # ---- forwarding ------------------------------------------------------------------
    def test_get_with_query_reaches_origin_unchanged(self):
        for i in self.ids:
            path = "/api/things/1?a=1&b=%20x&c=%2F"
            r = self.client(i).get(path)
            self.assertTrue(is_origin_json(r, "A", path), r)
            body = r.json()
            self.assertEqual(body["method"], "GET")
            self.assertEqual(body["body_length"], 0)
            self.assertEqual(r.header("X-Origin"), "A", "origin's response headers reach the client")

    def test_methods_pass_through(self):
        cl = self.client()
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            r = cl.request(method, "/echo", body=b"m" if method in ("POST", "PUT", "PATCH") else None)
            self.assertTrue(is_origin_json(r, "A", "/echo"), (method, r))
            self.assertEqual(r.json()["method"], method)

    def test_request_body_content_length(self):
        cl = self.client()
        for size in (1, 1000, 300_000, 4 * 1024 * 1024):
            body = os.urandom(size)
            r = cl.request("POST", "/api/upload", body=body,
                           headers={"Content-Type": "application/octet-stream"})
            self.assertTrue(is_origin_json(r, "A"), r)
            got = r.json()
            self.assertEqual(got["body_length"], size)
            self.assertEqual(got["body_sha256"], hashlib.sha256(body).hexdigest())

    def test_request_body_chunked(self):
        cl = self.client()
        pieces = [os.urandom(n) for n in (1, 10, 4096, 65536, 7, 300_000, 2)]
        whole = b"".join(pieces)
        r = cl.request("POST", "/api/upload", body=(p for p in pieces), chunked=True,
                       headers={"Content-Type": "application/octet-stream"})
        self.assertTrue(is_origin_json(r, "A"), r)
        got = r.json()
        self.assertEqual(got["body_length"], len(whole))
        self.assertEqual(got["body_sha256"], hashlib.sha256(whole).hexdigest())
        # The same connection carries the next request.
        self.assertTrue(is_origin_json(cl.get("/api/after-chunked"), "A"))

    def test_response_body_content_length(self):
        cl = self.client()
        for n in (0, 1, 65536, 1_000_000, 5 * 1024 * 1024):
            r = cl.get("/bytes?n=%d" % n)
            self.assertEqual(r.status, 200)
            self.assertEqual(len(r.body), n)
            self.assertEqual(hashlib.sha256(r.body).hexdigest(), r.header("X-Body-Sha256"))
            self.assertEqual(r.body, pattern_bytes(n))

    def test_response_body_chunked(self):
        cl = self.client()
        for n, size in ((1, 1), (8, 1024), (64, 65536)):
            r = cl.get("/chunked?n=%d&size=%d" % (n, size))
            self.assertEqual(r.status, 200)
            self.assertEqual(len(r.body), n * size)
            self.assertEqual(hashlib.sha256(r.body).hexdigest(), r.header("X-Body-Sha256"))
        self.assertFalse(r.will_close)

    def test_response_body_delimited_by_close(self):
        # An upstream response with neither Content-Length nor chunking ends at EOF; the
        # client must get all of it, framed so that it can tell where it ends.
        for n in (0, 10, 300_000):
            r = self.client().get("/eof?n=%d" % n)
            self.assertEqual(r.status, 200)
            self.assertEqual(len(r.body), n)
            self.assertEqual(hashlib.sha256(r.body).hexdigest(), r.header("X-Body-Sha256"))

    def test_expect_100_continue(self):
        # curl sends `Expect: 100-continue` before bodies over 1 MB and waits up to 1 s for
        # the interim 100 (from the gateway itself, or relayed from the upstream).
        body = os.urandom(50_000)
        s = socket.create_connection(("127.0.0.1", self.c.dps["dp-a"].port), timeout=5)
        self.addCleanup(s.close)
        s.sendall(b"POST /api/expect HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n"
                  b"Expect: 100-continue\r\n\r\n" % len(body))
        f = s.makefile("rb")
        s.settimeout(2.0)
        try:
            line = f.readline()
        except socket.timeout:
            self.fail("no `100 Continue` within 2 s of a request with `Expect: 100-continue` "
                      "(curl stalls 1 s on every upload over 1 MB; nginx answers at once)")
        s.settimeout(10.0)
        if line.startswith(b"HTTP/1.1 100"):
            while f.readline() not in (b"\r\n", b""):
                pass
        else:
            self.fail("expected an interim 100 Continue, got %r" % line)
        s.sendall(body)
        head = f.readline()
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        length = None
        for _ in range(100):
            h = f.readline()
            if h in (b"\r\n", b""):
                break
            if h.lower().startswith(b"content-length:"):
                length = int(h.split(b":", 1)[1])
        self.assertIsNotNone(length, "Content-Length on the final response")
        got = json.loads(f.read(length))
        self.assertEqual(got["body_sha256"], hashlib.sha256(body).hexdigest())

    def test_response_streams_before_the_upstream_finishes(self):
        # 4 chunks 400 ms apart: the first bytes must reach the client long before the last
        # one leaves the origin (a buffering proxy would deliver everything at ~1.2 s).
        s = socket.create_connection(("127.0.0.1", self.c.dps["dp-a"].port), timeout=10)
        self.addCleanup(s.close)
        t0 = time.monotonic()
        s.sendall(b"GET /chunked?n=4&size=100&delay_ms=400 HTTP/1.1\r\nHost: gw\r\n\r\n")
        f = s.makefile("rb")
        head = b""
        for _ in range(100):
            line = f.readline()
            head += line
            if line in (b"\r\n", b""):
                break
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        first = f.read1(65536)
        t_first = time.monotonic() - t0
        self.assertTrue(first, "no body bytes")
        self.assertLess(t_first, 0.8, "first body bytes after %.2fs: response buffered?" % t_first)

    def test_request_streams_before_the_client_finishes(self):
        # The origin starts handling the request (it is in flight there) while the client
        # still holds back the second half of the body.
        origin = harness.Client(self.c.origins["A"].port)
        self.addCleanup(origin.close)
        for chunked in (False, True):
            with self.subTest(chunked=chunked):
                s = socket.create_connection(("127.0.0.1", self.c.dps["dp-a"].port), timeout=10)
                self.addCleanup(s.close)
                half = os.urandom(64 * 1024)
                if chunked:
                    s.sendall(b"POST /api/stream HTTP/1.1\r\nHost: gw\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(half), half))
                else:
                    s.sendall(b"POST /api/stream HTTP/1.1\r\nHost: gw\r\n"
                              b"Content-Length: %d\r\n\r\n%s" % (2 * len(half), half))
                self.c.poll(lambda: origin.get("/__stats").json()["in_flight"] >= 1,
                            "the request to reach the origin before its body is complete",
                            timeout=5)
                s.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(half), half) if chunked else half)
                r = harness.read_responses(s, ["POST"])[0]
                self.assertTrue(is_origin_json(r, "A"), r)
                self.assertEqual(r.json()["body_sha256"], hashlib.sha256(half + half).hexdigest())
                s.close()

    def test_head_has_no_body_and_keeps_the_connection(self):
        cl = self.client()
        r = cl.request("HEAD", "/bytes?n=5000")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Length"), "5000")
        self.assertEqual(r.body, b"")
        r2 = cl.get("/bytes?n=10")
        self.assertEqual(r2.body, pattern_bytes(10))

    def test_status_codes_pass_through(self):
        cl = self.client()
        for status in (201, 301, 404, 418, 500, 503):
            r = cl.get("/status/%d" % status)
            self.assertEqual(r.status, status, r)
            self.assertEqual(r.json()["origin"], "A", "the origin's body, not a gateway error")
        r = cl.get("/status/204")
        self.assertEqual((r.status, r.body), (204, b""))
        r = cl.get("/status/200")
        self.assertTrue(is_origin_json(r, "A"))

    def test_route_methods_hosts_strip_prefix_and_base_path(self):
        cl = self.client()
        self.assertEqual(cl.get("/m/x").status, 404, "GET on a POST/PUT-only route")
        self.assertTrue(is_origin_json(cl.request("POST", "/m/x", body=b"1"), "A", "/m/x"))
        self.assertTrue(is_origin_json(cl.request("PUT", "/m/x", body=b"1"), "A", "/m/x"))
        self.assertEqual(cl.get("/h/x").status, 404, "Host not in the route's hosts")
        for host in ("a.example.test", "A.Example.Test", "a.example.test:8080", "x.wild.test"):
            r = cl.get("/h/x", headers={"Host": host})
            self.assertTrue(is_origin_json(r, "A", "/h/x"), "Host %s: %r" % (host, r))
        self.assertEqual(cl.get("/h/x", headers={"Host": "wild.test.evil"}).status, 404)
        for path, seen in (("/strip/a/b?q=1", "/a/b?q=1"), ("/strip", "/"), ("/strip/", "/")):
            r = cl.get(path)
            self.assertTrue(is_origin_json(r, "A"), r)
            self.assertEqual(r.json()["path"], seen, "stripPrefix of %s" % path)
        r = cl.get("/based/x?y=1")
        self.assertTrue(is_origin_json(r, "A"), r)
        self.assertEqual(r.json()["path"], "/base/based/x?y=1", "upstream URL's base path")

    # ---- connections -----------------------------------------------------------------
    def test_client_keep_alive(self):
        cl = self.client()
        ports = set()
        for n in range(100):
            r = cl.get("/api/ka/%d" % n)
            self.assertTrue(is_origin_json(r, "A"), r)
            self.assertFalse(r.will_close, "request %d: data plane closed the connection" % n)
            ports.add(r.local_port)
        self.assertEqual(len(ports), 1, "100 requests over one client connection")

    def test_upstream_connections_are_pooled(self):
        cl = self.client("dp-b")
        peers, reuse = set(), 0
        for n in range(30):
            body = cl.get("/api/pool/%d" % n).json()
            peers.add(body["peer"])
            reuse = max(reuse, body["connection_requests"])
        self.assertLessEqual(len(peers), 5, "30 sequential requests should reuse upstream "
                             "connections, origin saw %d" % len(peers))
        self.assertGreater(reuse, 1)

    def test_pipelined_requests(self):
        s = socket.create_connection(("127.0.0.1", self.c.dps["dp-a"].port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(b"".join(b"GET /api/pipe/%d HTTP/1.1\r\nHost: gw\r\n\r\n" % n for n in range(3)))
        for n, r in enumerate(harness.read_responses(s, ["GET"] * 3)):
            self.assertTrue(is_origin_json(r, "A", "/api/pipe/%d" % n),
                            "response %d in request order: %r" % (n, r))

    # ---- headers ---------------------------------------------------------------------
    def test_forwarded_headers_and_upstream_host(self):
        r = self.client().get("/api/fwd", headers={"Host": "gw.example.test:8443",
                                                   "X-Custom": "kept"})
        self.assertTrue(is_origin_json(r, "A"), r)
        h = r.json()["headers"]
        self.assertEqual(h.get("x-forwarded-for"), "127.0.0.1")
        self.assertEqual(h.get("x-forwarded-proto"), "http")
        self.assertEqual(h.get("x-forwarded-host"), "gw.example.test:8443")
        self.assertEqual(h.get("host"), "127.0.0.1:%d" % self.c.origins["A"].port,
                         "Host sent upstream is the upstream URL's host:port")
        self.assertEqual(h.get("x-custom"), "kept")

    def test_hop_by_hop_headers_are_not_forwarded(self):
        r = self.client().get("/api/hop", headers={
            "Connection": "keep-alive, X-Hop", "X-Hop": "1", "Keep-Alive": "timeout=5",
            "Proxy-Connection": "keep-alive", "X-End-To-End": "yes"})
        self.assertTrue(is_origin_json(r, "A"), r)
        h = r.json()["headers"]
        for name in ("keep-alive", "proxy-connection", "x-hop"):
            self.assertNotIn(name, h, "hop-by-hop header %s forwarded" % name)
        self.assertEqual(h.get("x-end-to-end"), "yes")

    # ---- gateway errors --------------------------------------------------------------
    def test_no_route_is_404(self):
        cl = self.client()
        for path in ("/", "/nothing", "/apix", "/echo/more", "/hang/x"):
            r = cl.get(path)
            self.assertEqual(r.status, 404, "%s: %r" % (path, r))
            self.assertEqual(error_code(r), "no_route")
            self.assertIn("json", r.header("Content-Type", ""))
            self.assertTrue(r.json()["error"]["message"])
        self.assertTrue(is_origin_json(cl.get("/api/after-404"), "A"), "connection still usable")

    def test_upstream_refused_is_502(self):
        self.expect_error_logs = True
        cl = self.client()
        t0 = time.monotonic()
        r = cl.get("/dead/x")
        self.assertEqual(r.status, 502, r)
        self.assertEqual(error_code(r), "bad_gateway")
        self.assertLess(time.monotonic() - t0, 5)
        self.assertTrue(is_origin_json(self.client().get("/api/after-502"), "A"))

    def test_upstream_closing_mid_body_is_not_a_success(self):
        self.expect_error_logs = True
        conn = http.client.HTTPConnection("127.0.0.1", self.c.dps["dp-a"].port, timeout=10)
        self.addCleanup(conn.close)
        conn.request("GET", "/close-mid-body")
        r = conn.getresponse()
        if r.status == 502:
            self.assertEqual(error_code(harness.Resp(r.status, r.headers, r.read(), True, 0)),
                             "bad_gateway")
        else:
            # Headers already went out: the client must see a truncated body, not 1000 bytes.
            self.assertEqual(r.status, 200)
            with self.assertRaises((http.client.IncompleteRead, ConnectionError)):
                data = r.read()
                if len(data) < 1000:
                    raise http.client.IncompleteRead(data)
        self.assertTrue(is_origin_json(self.client().get("/api/after-broken"), "A"))

    def test_upstream_timeout_is_504(self):
        self.expect_error_logs = True
        cl = self.client()
        t0 = time.monotonic()
        r = cl.get("/hang")
        elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 504, r)
        self.assertEqual(error_code(r), "gateway_timeout")
        self.assertGreaterEqual(elapsed, SHORT_TIMEOUT_MS / 1000.0 * 0.9, "timed out too early")
        self.assertLess(elapsed, SHORT_TIMEOUT_MS / 1000.0 + 3, "timeout not enforced")
        # Inside the timeout a slow answer is fine.
        r = self.client().get("/slow?ms=50")
        self.assertTrue(is_origin_json(r, "A"), r)


if __name__ == "__main__":
    harness.main()
