#!/usr/bin/env python3
"""test_accesslog.py - the data plane's JSON access log.

One JSON object per line per request, on the process log's destination: the fields (ts in
RFC 3339 with ms, request id, method, path, route, upstream, target, status, durations,
bytes, client IP, retries); request data with quotes, backslashes, control bytes or invalid
UTF-8 can neither break nor forge a line; API keys sent by the client never appear;
logging.sampling.successRate drops successes while 5xx (errorRate 1) are always kept, and
both are counted; logging.level "warn" keeps only 5xx lines; a sink that stops reading
(a pipe nobody drains) costs dropped lines, counted, never a stalled data plane.
"""

import json
import os
import re
import signal
import subprocess
import time

import harness
from harness import ClusterTest, is_origin_json, main, poll

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
STALL_REQUESTS = 1500      # ~450 KB of lines: far past a pipe's 64 KiB plus our 64 KiB
STALL_DEADLINE_S = 20.0    # the requests must all be served within this while stalled


def access_lines(dp, since=0):
    """The access log lines (msg "request") the data plane wrote after byte `since`."""
    out = []
    for line in dp.read("stderr")[since:].splitlines():
        if '"msg":"request"' not in line:
            continue
        out.append(json.loads(line))  # every line must be one whole JSON object
    return out


def metric(c, dp, name):
    text = harness.one_shot(dp.status_port, "GET", "/metrics").body.decode()
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


class AccessLog(ClusterTest):
    label = "accesslog"

    def setup_cluster(self):
        self.c.start_origin("A")
        self.c.start_ctl()
        self.c.route_all_to("A")
        return self.c.start_dp("dp-a")

    def wait_lines(self, dp, since, pred, what):
        return self.c.poll(lambda: (lambda ls: ls if pred(ls) else None)(access_lines(dp, since)),
                           what)

    def test_path_is_the_clients_under_strip_prefix(self):
        """stripPrefix changes what the upstream is asked for, not what the log says the
        client asked for (as nginx's $uri before a rewrite)."""
        dp = self.setup_cluster()
        self.c.api_ok("POST", "/api/v1/routes", {"id": "api", "path": "/api/*",
                                                  "upstream": "backend", "stripPrefix": True},
                      expect=201)
        self.c.wait_dp_ready(dp, version=self.c.config_version())
        mark = dp.log_mark()
        r = self.c.through(dp, "GET", "/api/users/7?x=1", headers={"X-Request-ID": "strip-1"})
        self.assertTrue(is_origin_json(r, "A"), r)
        self.assertEqual(r.json()["path"], "/users/7?x=1")  # what the origin was asked
        lines = self.wait_lines(dp, mark, lambda ls: any(l.get("request_id") == "strip-1"
                                                         for l in ls), "the access line")
        line = [l for l in lines if l.get("request_id") == "strip-1"][0]
        self.assertEqual(line["path"], "/api/users/7")
        self.assertEqual(line["route"], "api")

    def test_fields(self):
        dp = self.setup_cluster()
        mark = dp.log_mark()
        r = self.c.through(dp, "POST", "/orders/7?q=1", body=b"hello",
                           headers={"X-Request-ID": "acc-1"})
        self.assertTrue(is_origin_json(r, "A"), r)
        lines = self.wait_lines(dp, mark, lambda ls: any(l.get("request_id") == "acc-1"
                                                         for l in ls), "the access line")
        line = [l for l in lines if l.get("request_id") == "acc-1"][0]
        self.assertRegex(line["ts"], TS_RE)
        self.assertEqual(line["level"], "info")
        self.assertEqual(line["method"], "POST")
        self.assertEqual(line["path"], "/orders/7")  # the query is never logged
        self.assertEqual(line["route"], "all")
        self.assertEqual(line["upstream"], "backend")
        self.assertEqual(line["target"], self.c.origin_url("A"))
        self.assertEqual(line["status"], 200)
        self.assertIsInstance(line["duration_ms"], float)
        self.assertGreater(line["upstream_ms"], 0)
        self.assertGreaterEqual(line["duration_ms"], line["upstream_ms"])
        self.assertEqual(line["bytes_in"], 5)
        self.assertEqual(line["bytes_out"], len(r.body))
        self.assertEqual(line["client_ip"], "127.0.0.1")
        self.assertEqual(line["retries"], 0)
        self.assertRegex(line["trace_id"], r"^[0-9a-f]{32}$")
        self.assertRegex(line["span_id"], r"^[0-9a-f]{16}$")
        # A request refused before routing is logged too, with a generated id.
        bad = harness.raw_request(dp.port, b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1"
                                           b"\r\nContent-Length: 2\r\n\r\n")
        self.assertEqual(bad.status, 400)
        lines = self.wait_lines(dp, mark, lambda ls: any(l["status"] == 400 for l in ls),
                                "the 400's access line")
        line = [l for l in lines if l["status"] == 400][0]
        self.assertRegex(line["request_id"], r"^[0-9a-f]{32}$")

    def test_request_data_cannot_forge_lines(self):
        dp = self.setup_cluster()
        mark = dp.log_mark()
        targets = [b'/q"uo\\te', b"/ctl\x01\x1f\x7f", b"/bad-utf8-\xff\xfe",
                   b'/x","status":999,"y":"', b"/nl%0a{%22forged%22:1}"]
        sent = 0
        for t in targets:
            resp = harness.raw_request(dp.port, b"GET " + t + b" HTTP/1.1\r\nHost: a\r\n"
                                       b"Connection: close\r\n\r\n")
            self.assertIn(resp.status, (200, 400), t)
            sent += 1
        lines = self.wait_lines(dp, mark, lambda ls: len(ls) >= sent, "%d access lines" % sent)
        # Every line written since the mark is one JSON object: nothing was split or forged.
        raw = dp.read("stderr")[mark:].splitlines()
        for l in raw:
            json.loads(l)
        paths = [l.get("path") for l in lines]
        self.assertNotIn(999, [l["status"] for l in lines])
        self.assertFalse(any(l.get("forged") for l in lines))
        self.assertIn('/q"uo\\te', paths)
        self.assertIn("/bad-utf8-\ufffd\ufffd", paths)
        self.assertIn('/x","status":999,"y":"', paths)
        # never decoded for the log (the path is the normalised one: escapes in upper case)
        self.assertIn("/nl%0A{%22forged%22:1}", paths)
        # Control bytes in the target are refused (400) before routing; the 400 is logged,
        # without the target.
        self.assertEqual(len([l for l in lines if l["status"] == 400 and "path" not in l]), 1)

        # A request id carrying control bytes is refused with the whole request (400, header
        # hygiene); one carrying quotes is not accepted as an id: a generated one replaces it.
        # Neither reaches the log.
        mark = dp.log_mark()
        r = harness.raw_request(dp.port, b"GET /rid HTTP/1.1\r\nHost: a\r\nX-Request-ID: "
                                b"evil\x1b[31m\x01\r\nConnection: close\r\n\r\n")
        self.assertEqual(r.status, 400)
        self.assertRegex(r.header("X-Request-ID"), r"^[0-9a-f]{32}$")
        evil = b'evil","status":1,"x":"'
        r = harness.raw_request(dp.port, b"GET /rid HTTP/1.1\r\nHost: a\r\nX-Request-ID: " +
                                evil + b"\r\nConnection: close\r\n\r\n")
        self.assertEqual(r.status, 200)
        self.assertRegex(r.header("X-Request-ID"), r"^[0-9a-f]{32}$")
        lines = self.wait_lines(dp, mark, lambda ls: len(ls) >= 2, "the access lines")
        self.assertEqual(lines[1]["request_id"], r.header("X-Request-ID"))
        text = dp.read("stderr")[mark:]
        self.assertNotIn("\x1b", text)
        self.assertNotIn("evil", text)
        for l in text.splitlines():
            json.loads(l)

    def test_keys_never_logged(self):
        dp = self.setup_cluster()
        mark = dp.log_mark()
        secret = "sk-live-0123456789abcdef"
        r = self.c.through(dp, "GET", "/k", headers={"X-API-Key": secret,
                                                     "Authorization": "Bearer " + secret,
                                                     "X-Request-ID": "key-test"})
        self.assertTrue(is_origin_json(r, "A"), r)
        self.wait_lines(dp, mark, lambda ls: any(l.get("request_id") == "key-test" for l in ls),
                        "the access line")
        self.assertNotIn(secret, dp.read("stderr"))

    def test_sampling_and_level(self):
        dp = self.setup_cluster()
        self.c.api_ok("PUT", "/api/v1/settings/logging",
                      {"sampling": {"successRate": 0, "errorRate": 1}})
        self.c.wait_dp_ready(dp, self.c.config_version())
        mark = dp.log_mark()
        out0 = metric(self.c, dp, "flexgate_accesslog_sampled_out_total")
        for i in range(20):
            self.assertTrue(is_origin_json(self.c.through(dp, "GET", "/s/%d" % i), "A"))
        for i in range(3):
            self.assertEqual(self.c.through(dp, "GET", "/status/500").status, 500)
        lines = self.wait_lines(dp, mark, lambda ls: len(ls) >= 3, "the three 5xx lines")
        self.assertEqual(sorted(l["status"] for l in lines), [500, 500, 500])
        self.assertEqual([l["level"] for l in lines], ["warn"] * 3)
        self.assertEqual(metric(self.c, dp, "flexgate_accesslog_sampled_out_total") - out0, 20)

        # Half of the successes: some, not all (200 draws: both extremes are ~1e-60).
        self.c.api_ok("PUT", "/api/v1/settings/logging",
                      {"sampling": {"successRate": 0.5, "errorRate": 1}})
        self.c.wait_dp_ready(dp, self.c.config_version())
        mark = dp.log_mark()
        for i in range(200):
            self.assertTrue(is_origin_json(self.c.through(dp, "GET", "/h/%d" % i), "A"))
        self.assertEqual(self.c.through(dp, "GET", "/status/503").status, 503)
        lines = self.wait_lines(dp, mark, lambda ls: any(l["status"] == 503 for l in ls),
                                "the 503 line")
        ok = [l for l in lines if l["status"] == 200]
        self.assertTrue(0 < len(ok) < 200, len(ok))

        # level warn: successes are below it, 5xx lines stay.
        self.c.api_ok("PUT", "/api/v1/settings/logging",
                      {"level": "warn", "sampling": {"successRate": 1, "errorRate": 1}})
        self.c.wait_dp_ready(dp, self.c.config_version())
        mark = dp.log_mark()
        for i in range(5):
            self.assertTrue(is_origin_json(self.c.through(dp, "GET", "/w/%d" % i), "A"))
        self.assertEqual(self.c.through(dp, "GET", "/status/502").status, 502)
        lines = self.wait_lines(dp, mark, lambda ls: any(l["status"] == 502 for l in ls),
                                "the 502 line")
        self.assertEqual([l["status"] for l in lines], [502])

    def test_log_file_reopened_on_sighup(self):
        """--log-file with two workers: access lines of both go to the file, and after a
        logrotate-style rename and SIGHUP, new lines go to a new file of that name."""
        self.c.start_origin("A")
        self.c.start_ctl()
        self.c.route_all_to("A")
        log = os.path.join(self.c.tmp, "dp.log")
        dp = self.c.start_dp("dp", extra_args=["--workers", "2", "--log-file", log],
                             wait_ready=False)
        self.c.wait_in_sync(["dp-w1", "dp-w2"])

        def lines_in(path, rid):
            try:
                with open(path) as f:
                    return [json.loads(x) for x in f if '"msg":"request"' in x and rid in x]
            except FileNotFoundError:
                return []
        for i in range(20):
            r = harness.one_shot(dp.port, "GET", "/before/%d" % i,
                                 headers={"X-Request-ID": "before-%d" % i})
            self.assertTrue(is_origin_json(r, "A"), r)
        got = self.c.poll(lambda: (lambda ls: ls if len(ls) == 20 else None)(
            lines_in(log, "before-")), "20 access lines in --log-file")
        self.assertEqual(len({l["worker"] for l in got}), 2, "both workers log to the file")
        os.rename(log, log + ".1")
        dp.signal(signal.SIGHUP)
        self.c.poll(lambda: os.path.exists(log), "a new log file after SIGHUP")

        def after():
            r = harness.one_shot(dp.port, "GET", "/after", headers={"X-Request-ID": "after-1"})
            self.assertTrue(is_origin_json(r, "A"), r)
            return lines_in(log, "after-1") or None
        # Each worker re-opens on its own signal; poll until one answered with the new file.
        self.c.poll(after, "an access line in the re-opened file")
        self.assertEqual(lines_in(log, "before-"), [])
        self.assertEqual(len(lines_in(log + ".1", "before-")), 20)

    def test_stalled_sink_drops_lines_and_never_blocks(self):
        self.c.start_origin("A")
        self.c.start_ctl()
        self.c.route_all_to("A")
        port, status_port = harness.free_port(), harness.free_port()
        argv = [harness.DP_BIN, "--control", "unix:" + self.c.ctl.socket_path, "--listen",
                "127.0.0.1:%d" % port, "--status-listen", "127.0.0.1:%d" % status_port,
                "--id", "stalled", "--workers", "1", "--dp-secret-file", self.c.dp_secret_file]
        # stderr is a pipe nobody reads until the end: once it is full, the sink stalls.
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             preexec_fn=harness._set_pdeathsig)
        self.addCleanup(lambda: (p.poll() is None and p.kill(), p.wait(), p.stderr.close()))

        def ready():
            try:
                return harness.one_shot(status_port, "GET", "/health/ready").status == 200
            except OSError:
                return None
        self.c.poll(ready, "the stalled data plane ready")
        client = harness.Client(port)
        self.addCleanup(client.close)
        t0 = time.monotonic()
        for i in range(STALL_REQUESTS):
            r = client.request("GET", "/stall/%d" % i)
            self.assertEqual(r.status, 200)
            self.assertLess(time.monotonic() - t0, STALL_DEADLINE_S,
                            "the data plane slowed down behind its log sink")
        text = harness.one_shot(status_port, "GET", "/metrics").body.decode()
        dropped = float(re.search(r"^flexgate_accesslog_dropped_lines_total (\S+)$", text,
                                  re.M).group(1))
        written = float(re.search(r"^flexgate_accesslog_lines_total (\S+)$", text,
                                  re.M).group(1))
        self.assertGreater(dropped, 0)
        self.assertEqual(dropped + written, STALL_REQUESTS)
        p.terminate()
        data = p.stderr.read()
        p.wait(timeout=10)
        # What did get through is whole lines only.
        for line in data.decode(errors="replace").splitlines():
            json.loads(line)


if __name__ == "__main__":
    main()
