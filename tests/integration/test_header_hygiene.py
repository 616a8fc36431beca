#!/usr/bin/env python3
"""test_header_hygiene.py - header hygiene against a real flexgate-dp (issue 5).

Raw sockets for what a client library would not send:
  * X-Forwarded-For/-Host/-Proto, Forwarded and X-Real-IP from a client are replaced by the
    gateway's own, not appended to; from a peer in security.trustedProxies, X-Forwarded-For
    is appended to and the proxy's other fields kept;
  * control bytes in a field value or name, a name that is not a token, and a value over
    8 KiB are refused (400) before anything reaches the upstream;
  * upstream response fields that could split the response (NUL and control bytes in
    values, a name with a space) are dropped with a log line; a response head with a bare LF
    is refused whole (502); Server and X-Powered-By never reach the client;
  * a route's requestHeaders / responseHeaders add and remove ops are applied;
  * error bodies are static JSON (the request is never echoed).
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

FORGED = (b"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil.test\r\n"
          b"X-Forwarded-Proto: https\r\nForwarded: for=6.6.6.6;proto=https\r\n"
          b"X-Real-IP: 6.6.6.6\r\n")
VALUE_MAX = 8192  # HTTP1_MAX_VALUE_SIZE


class HeaderHygiene(harness.SharedClusterTest):
    label = "hygiene"

    @classmethod
    def build(cls, c):
        cls.origin = c.start_origin("A")
        c.start_ctl()
        c.api_ok("POST", "/api/v1/upstreams", {"name": "a", "url": c.origin_url("A")},
                 expect=201)
        for route in ({"id": "plain", "path": "/p/*", "upstream": "a"},
                      {"id": "ops", "path": "/ops/*", "upstream": "a",
                       "requestHeaders": {"add": {"X-Gateway": "flexgate"},
                                          "remove": ["Cookie", "X-Secret"]},
                       "responseHeaders": {"add": {"X-Frame-Options": "DENY"},
                                           "remove": ["X-Origin"]}},
                      {"id": "raw", "path": "/*", "upstream": "a"}):
            c.api_ok("POST", "/api/v1/routes", route, expect=201)
        cls.dp = c.start_dp("dp-h")
        c.wait_dp_ready(cls.dp, version=c.config_version())

    def send(self, path, extra=b""):
        return harness.raw_request(self.dp.port, b"GET " + path + b" HTTP/1.1\r\nHost: gw.test\r\n"
                                   + extra + b"Connection: close\r\n\r\n")

    def origin_total(self):
        return harness.one_shot(self.origin.port, "GET", "/__stats").json()["total"]

    def fields(self, resp, name):
        """Every value of field `name` the origin received, in order."""
        return [v for n, v in resp.json()["header_list"] if n.lower() == name.lower()]

    def set_trusted(self, cidrs):
        self.c.api_ok("PUT", "/api/v1/settings/security", {"trustedProxies": cidrs}, expect=200)
        self.c.wait_dp_ready(self.dp, version=self.c.config_version())

    def test_forwarding_fields_replaced_for_clients(self):
        r = self.send(b"/p/x", FORGED)
        self.assertTrue(harness.is_origin_json(r, "A"), r)
        self.assertEqual(self.fields(r, "X-Forwarded-For"), ["127.0.0.1"])
        self.assertEqual(self.fields(r, "X-Forwarded-Host"), ["gw.test"])
        self.assertEqual(self.fields(r, "X-Forwarded-Proto"), ["http"])
        self.assertEqual(self.fields(r, "X-Real-IP"), ["127.0.0.1"])
        self.assertEqual(self.fields(r, "Forwarded"), [])

    def test_trusted_proxy_chain_appended(self):
        self.set_trusted(["127.0.0.0/8"])
        try:
            r = self.send(b"/p/x", FORGED + b"X-Forwarded-For: 10.0.0.9\r\n")
            self.assertTrue(harness.is_origin_json(r, "A"), r)
            self.assertEqual(self.fields(r, "X-Forwarded-For"),
                             ["6.6.6.6, 10.0.0.9, 127.0.0.1"])
            self.assertEqual(self.fields(r, "X-Forwarded-Host"), ["evil.test"])
            self.assertEqual(self.fields(r, "X-Forwarded-Proto"), ["https"])
            self.assertEqual(self.fields(r, "Forwarded"), ["for=6.6.6.6;proto=https"])
            self.assertEqual(self.fields(r, "X-Real-IP"), ["6.6.6.6"])
        finally:
            self.set_trusted([])
        r = self.send(b"/p/y", FORGED)
        self.assertEqual(self.fields(r, "X-Forwarded-For"), ["127.0.0.1"])

    def test_bad_request_fields_refused(self):
        cases = {
            "control byte in a value": b"X-A: a\x01b\r\n",
            "escape sequence in a value": b"X-A: \x1b[31mred\r\n",
            "DEL in a value": b"X-A: a\x7f\r\n",
            "control byte in a name": b"X\x01A: a\r\n",
            "non-token name": b"X(A): a\r\n",
            "space in a name": b"X A: a\r\n",
            "oversize value": b"X-Big: " + b"v" * (VALUE_MAX + 1) + b"\r\n",
        }
        for what, field in cases.items():
            before = self.origin_total()
            r = self.send(b"/p/x", field)
            self.assertEqual(r.status, 400, "%s: %r" % (what, r))
            self.assertEqual(r.json(), {"error": {"code": "bad_request",
                                                  "message": "the request is malformed"}}, what)
            self.assertEqual(self.origin_total(), before + 1, "%s reached the origin" % what)
        # At the limit, and tabs and obs-text in values, pass.
        r = self.send(b"/p/x", b"X-Big: " + b"v" * VALUE_MAX + b"\r\nX-T: a\tb \xe9\r\n")
        self.assertTrue(harness.is_origin_json(r, "A"), r)

    def test_unsafe_response_fields_dropped(self):
        mark = self.dp.log_mark()
        r = self.send(b"/unsafe-headers")
        self.assertEqual(r.status, 200, r)
        names = {n.lower() for n in r.headers.keys()}
        self.assertIn("x-safe", names)
        for gone in ("server", "x-powered-by", "x space", "x-nul", "x-ctl", "x-del"):
            self.assertNotIn(gone, names, "%s reached the client" % gone)
        self.assertEqual(json.loads(r.body)["path"], "/unsafe-headers")
        log = self.dp.read("stderr")[mark:]
        self.assertIn("upstream response header dropped", log)

    def test_bare_lf_response_refused(self):
        sock_resp = harness.raw_request(self.dp.port, b"GET /bare-lf HTTP/1.1\r\nHost: gw\r\n"
                                        b"Connection: close\r\n\r\n")
        self.assertEqual(sock_resp.status, 502, sock_resp)
        self.assertIsNone(sock_resp.header("Set-Cookie"))

    def test_server_header_stripped(self):
        r = self.send(b"/p/x")
        self.assertTrue(harness.is_origin_json(r, "A"), r)
        self.assertIsNone(r.header("Server"))  # the origin sends one on every response
        self.assertEqual(r.header("X-Origin"), "A")

    def test_route_header_ops(self):
        r = self.send(b"/ops/x", b"Cookie: session=1\r\nX-Secret: s\r\nx-gateway: forged\r\n"
                                 b"X-Keep: k\r\n")
        self.assertTrue(harness.is_origin_json(r, "A"), r)
        self.assertEqual(self.fields(r, "X-Gateway"), ["flexgate"])
        self.assertEqual(self.fields(r, "Cookie"), [])
        self.assertEqual(self.fields(r, "X-Secret"), [])
        self.assertEqual(self.fields(r, "X-Keep"), ["k"])
        self.assertEqual(r.header("X-Frame-Options"), "DENY")
        self.assertIsNone(r.header("X-Origin"))
        # Routes without ops are untouched.
        r = self.send(b"/p/x", b"Cookie: session=1\r\n")
        self.assertEqual(self.fields(r, "Cookie"), ["session=1"])
        self.assertIsNone(r.header("X-Frame-Options"))


if __name__ == "__main__":
    harness.main()
