#!/usr/bin/env python3
"""test_tracing.py - request correlation through the data plane.

X-Request-ID: a well-formed one is kept, forwarded upstream once (the client's copy is not
duplicated) and returned to the client; a missing, malformed, over-long or repeated one is
replaced by a generated id (32 hex digits, unique); the upstream's own X-Request-ID never
reaches the client beside ours. W3C trace context: a valid traceparent keeps its trace id
and flags while the parent id sent upstream is a new span id of this hop; tracestate passes
unchanged; an absent or invalid traceparent starts a new trace (and drops the tracestate
that came with an invalid one). Ids are unique across the workers of one data plane.
"""

import re

import harness
from harness import ClusterTest, is_origin_json, main

TP_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
CLIENT_TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
N_UNIQUE = 200


def upstream_headers(resp):
    """The header list the origin received, as [(lowercased name, value)]."""
    return [(n.lower(), v) for n, v in resp.json()["header_list"]]


def upstream_values(resp, name):
    return [v for n, v in upstream_headers(resp) if n == name]


class Tracing(ClusterTest):
    label = "tracing"

    def setUp(self):
        super().setUp()
        self.c.start_origin("A")
        self.c.start_ctl()
        self.c.route_all_to("A")
        self.dp = self.c.start_dp("dp-a")

    def get(self, path="/t", headers=None):
        r = self.c.through(self.dp, "GET", path, headers=headers or {})
        self.assertTrue(is_origin_json(r, "A"), r)
        return r

    def test_request_id_accepted_forwarded_returned(self):
        for rid in ("abc-123", "a" * 128, "Req.1:2/3+4=5@host_x"):
            r = self.get(headers={"X-Request-ID": rid})
            self.assertEqual(upstream_values(r, "x-request-id"), [rid])
            self.assertEqual(r.header("X-Request-ID"), rid)
        # The header name is matched without regard to case.
        r = self.get(headers={"x-request-id": "lower-case"})
        self.assertEqual(upstream_values(r, "x-request-id"), ["lower-case"])

    def test_request_id_generated_when_absent_or_malformed(self):
        seen = set()
        for headers in ({}, {"X-Request-ID": "has space"}, {"X-Request-ID": "a" * 129},
                        {"X-Request-ID": ""}, {"X-Request-ID": "semi;colon"},
                        {"X-Request-ID": "caf\u00e9".encode().decode("latin-1")}):
            r = self.get(headers=headers)
            rid = r.header("X-Request-ID")
            self.assertRegex(rid, r"^[0-9a-f]{32}$", headers)
            self.assertEqual(upstream_values(r, "x-request-id"), [rid])
            seen.add(rid)
        self.assertEqual(len(seen), 6)
        # Two request id fields: ambiguous, so neither is trusted.
        r = harness.raw_request(self.dp.port, b"GET /two HTTP/1.1\r\nHost: a\r\n"
                                b"X-Request-ID: one\r\nX-Request-ID: two\r\n"
                                b"Connection: close\r\n\r\n")
        self.assertRegex(r.header("X-Request-ID"), r"^[0-9a-f]{32}$")
        self.assertEqual(upstream_values(r, "x-request-id"), [r.header("X-Request-ID")])

    def test_generated_ids_unique_across_workers(self):
        dp = self.c.start_dp("dp-w", extra_args=["--workers", "2"], wait_ready=False)
        self.c.wait_in_sync(["dp-w-w1", "dp-w-w2"])
        ids, traces, peers = set(), set(), set()
        for i in range(N_UNIQUE):
            r = harness.one_shot(dp.port, "GET", "/u/%d" % i)
            self.assertTrue(is_origin_json(r, "A"), r)
            ids.add(r.header("X-Request-ID"))
            traces.add(TP_RE.match(upstream_values(r, "traceparent")[0]).group(1))
            peers.add(r.json()["peer"])
        self.assertGreater(len(peers), 1, "every request went through one worker")
        self.assertEqual(len(ids), N_UNIQUE)
        self.assertEqual(len(traces), N_UNIQUE)

    def test_upstream_request_id_not_duplicated(self):
        # The origin echoes nothing by itself; a second data plane in front of the first
        # makes the first one's response carry an X-Request-ID for the second to replace.
        # Both get the same config: the prefix is stripped so the inner hop routes the
        # request to the origin ("all"), not to itself again.
        front = self.c.start_dp("dp-front", wait_ready=False)
        self.c.api_ok("POST", "/api/v1/upstreams",
                      {"name": "inner", "url": "http://127.0.0.1:%d" % self.dp.port},
                      expect=201)
        self.c.api_ok("POST", "/api/v1/routes", {"id": "via-inner", "path": "/inner/*",
                                                 "upstream": "inner", "stripPrefix": True}, expect=201)
        self.c.wait_in_sync(["dp-a", "dp-front"])
        r = harness.one_shot(front.port, "GET", "/inner/x", headers={"X-Request-ID": "chain"})
        self.assertTrue(is_origin_json(r, "A"), r)
        self.assertEqual(r.headers.get_all("X-Request-ID"), ["chain"])
        self.assertEqual(upstream_values(r, "x-request-id"), ["chain"])
        # Each hop is a span: the origin's parent id is the inner hop's span, not the
        # front's, and the trace id runs through.
        tp = TP_RE.match(upstream_values(r, "traceparent")[0])
        self.assertIsNotNone(tp)

    def test_configured_request_id_header(self):
        self.c.api_ok("PUT", "/api/v1/settings/logging", {"requestIdHeader": "X-Correlation-ID"})
        self.c.wait_dp_ready(self.dp, self.c.config_version())
        r = self.get(headers={"X-Correlation-ID": "corr-1", "X-Request-ID": "other"})
        self.assertEqual(upstream_values(r, "x-correlation-id"), ["corr-1"])
        self.assertEqual(r.header("X-Correlation-ID"), "corr-1")
        # X-Request-ID is an ordinary header now: passed through, not returned.
        self.assertEqual(upstream_values(r, "x-request-id"), ["other"])
        self.assertIsNone(r.header("X-Request-ID"))
        bad = self.c.api("PUT", "/api/v1/settings/logging", {"requestIdHeader": "bad name"})
        self.assertEqual(bad.status, 422, bad.body)

    def test_errors_carry_the_request_id(self):
        dead = harness.free_port()  # nothing listens there: 502
        self.c.api_ok("POST", "/api/v1/upstreams",
                      {"name": "dead", "url": "http://127.0.0.1:%d" % dead}, expect=201)
        self.c.api_ok("POST", "/api/v1/routes", {"id": "dead", "path": "/dead/*",
                                                 "upstream": "dead"}, expect=201)
        self.c.wait_dp_ready(self.dp, self.c.config_version())
        r = self.c.through(self.dp, "GET", "/dead/x", headers={"X-Request-ID": "err-1"})
        self.assertEqual(r.status, 502)
        self.assertEqual(r.header("X-Request-ID"), "err-1")
        # Refused before the head was read whole: a generated id, returned all the same.
        r = harness.raw_request(self.dp.port, b"GET /x HTTP/1.1\r\nHost: a\r\n"
                                b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n")
        self.assertEqual(r.status, 400)
        self.assertRegex(r.header("X-Request-ID"), r"^[0-9a-f]{32}$")

    def test_traceparent_propagated_with_a_new_span(self):
        r = self.get(headers={"traceparent": CLIENT_TP, "tracestate": "vendor=abc,other=1"})
        tps = upstream_values(r, "traceparent")
        self.assertEqual(len(tps), 1)
        m = TP_RE.match(tps[0])
        self.assertIsNotNone(m, tps)
        self.assertEqual(m.group(1), "4bf92f3577b34da6a3ce929d0e0e4736")  # same trace
        self.assertNotEqual(m.group(2), "00f067aa0ba902b7")                # our span
        self.assertNotEqual(m.group(2), "0" * 16)
        self.assertEqual(m.group(3), "01")                                 # flags kept
        self.assertEqual(upstream_values(r, "tracestate"), ["vendor=abc,other=1"])
        # A later version's extra fields are ignored, its ids kept; we speak version 00.
        r = self.get(headers={"traceparent": "01-4bf92f3577b34da6a3ce929d0e0e4736-"
                                             "00f067aa0ba902b7-00-extra"})
        m = TP_RE.match(upstream_values(r, "traceparent")[0])
        self.assertEqual(m.group(1), "4bf92f3577b34da6a3ce929d0e0e4736")
        self.assertEqual(m.group(3), "00")

    def test_trace_started_when_absent_or_invalid(self):
        spans = set()
        for tp in (None, "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                   "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                   "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                   "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                   "garbage"):
            headers = {"tracestate": "vendor=abc"}
            if tp:
                headers["traceparent"] = tp
            r = self.get(headers=headers)
            tps = upstream_values(r, "traceparent")
            self.assertEqual(len(tps), 1, tp)
            m = TP_RE.match(tps[0])
            self.assertIsNotNone(m, tps)
            self.assertNotEqual(m.group(1), "4bf92f3577b34da6a3ce929d0e0e4736", tp)
            self.assertEqual(m.group(3), "00")
            # The state of a trace we could not read goes with it.
            self.assertEqual(upstream_values(r, "tracestate"), [], tp)
            spans.add(m.group(2))
        self.assertEqual(len(spans), 7)
        text = harness.one_shot(self.dp.status_port, "GET", "/metrics").body.decode()
        started = float(re.search(r"^flexgate_traces_started_total (\S+)$", text,
                                  re.M).group(1))
        self.assertGreaterEqual(started, 7)


if __name__ == "__main__":
    main()
