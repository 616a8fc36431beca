#!/usr/bin/env python3
"""test_ratelimit.py - token-bucket rate limits: local buckets and a shared real Redis.

Local: the three levels (rateLimit.global: one bucket for the gateway; rateLimit.perRoute:
one bucket per entry for every client; routes[].rateLimit: one bucket per route and client
IP), each refusing with 429, Retry-After, RateLimit-Limit/-Remaining/-Reset and the
configured message; routes without limits never see a RateLimit header.

Redis (a redis-server started here on a free loopback port): two data planes share one
limit within +-5%; Redis killed under load costs no request (zero 5xx, no connection error)
while the limits hold locally at max / fallbackDivisor, /health/ready says "fallback" and
the switch is logged once; Redis restarted: the data planes go back to it and share again.
Redis stopped (SIGSTOP): every decision still completes within the timeout.

Windows are long (10 minutes) so refill during a test is a fraction of a token: counts are
exact up to the stated slack.
"""

import json
import http.client
import socket
import struct
import subprocess
import sys
import threading
import time

import harness
from harness import ClusterTest, error_code, main

WINDOW_MS = 600000
TEST_TIMEOUT_MS = 500  # rateLimit.redis.timeoutMs: generous for a loaded test machine
LOAD_THREADS = 4
LOAD_MAX_REQUESTS = 600
LOAD_DEADLINE_S = 60.0


def get_from(port, path, src="127.0.0.1", conn=None):
    """GET `path` from source address `src` (127.0.0.x are all loopback); returns Resp."""
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=harness.HTTP_TIMEOUT,
                                           source_address=(src, 0))
    try:
        c.request("GET", path)
        r = c.getresponse()
        return harness.Resp(r.status, r.headers, r.read(), r.will_close, None)
    finally:
        if conn is None:
            c.close()


def rl_headers(resp):
    return {h: resp.header(h) for h in ("RateLimit-Limit", "RateLimit-Remaining",
                                        "RateLimit-Reset", "Retry-After")}


class RateLimitCase(ClusterTest):
    def setup_gateway(self, rate_limit, routes, n_dps=1, dp_args=()):
        self.c.start_origin("A")
        self.c.start_ctl()
        self.c.api_ok("POST", "/api/v1/upstreams",
                      {"name": "backend", "url": self.c.origin_url("A"), "timeout": 5000},
                      expect=201)
        for r in routes:
            body = {"upstream": "backend"}
            body.update(r)
            self.c.api_ok("POST", "/api/v1/routes", body, expect=201)
        self.c.api_ok("PUT", "/api/v1/settings/rateLimit", rate_limit)
        version = self.c.config_version()
        dps = [self.c.start_dp("dp-" + chr(ord("a") + i), extra_args=dp_args)
               for i in range(n_dps)]
        for dp in dps:
            self.c.wait_dp_ready(dp, version=version)
        return dps

    def ready_field(self, dp, field="redis"):
        return self.c.status(dp, "/health/ready").json()["checks"].get(field)

    # ratelimit_redis_state() as /health/ready reports it (the seed's UP/DOWN words)
    READY_WORD = {"ok": "UP", "fallback": "DOWN", "disabled": "DISABLED"}

    def wait_redis_state(self, dps, state):
        state = self.READY_WORD[state]
        for dp in dps:
            self.c.poll(lambda: self.ready_field(dp) == state,
                        "%s /health/ready checks.redis = %s" % (dp.dp_id, state))

    def assert_limited(self, resp, limit, message=None):
        self.assertEqual(resp.status, 429, resp)
        self.assertEqual(error_code(resp), "rate_limited")
        h = rl_headers(resp)
        self.assertEqual(h["RateLimit-Limit"], str(limit), h)
        self.assertEqual(h["RateLimit-Remaining"], "0", h)
        # One token every WINDOW_MS / limit ms; the bucket is full after WINDOW_MS.
        self.assertTrue(WINDOW_MS / limit / 1000 - 10 <= int(h["Retry-After"])
                        <= WINDOW_MS / limit / 1000, h)
        self.assertTrue(WINDOW_MS / 1000 - 10 <= int(h["RateLimit-Reset"]) <= WINDOW_MS / 1000,
                        h)
        if message is not None:
            self.assertEqual(resp.json()["error"]["message"], message)


class LocalLimitTest(RateLimitCase):
    label = "rl-local"

    def setUp(self):
        super().setUp()
        (self.dp,) = self.setup_gateway(
            {"backend": "local",
             "perRoute": [{"path": "/shared/*", "max": 4, "windowMs": WINDOW_MS,
                           "message": "This endpoint is heavily rate limited"}]},
            [{"id": "free", "path": "/free/*"},
             {"id": "ident", "path": "/ident/*",
              "rateLimit": {"max": 3, "windowMs": WINDOW_MS, "message": "ident \"limit\""}},
             {"id": "shared", "path": "/shared/*"}])

    def test_identity_level_per_client_ip(self):
        for i in range(3):
            r = get_from(self.dp.port, "/ident/x")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("RateLimit-Limit"), "3")
            self.assertEqual(r.header("RateLimit-Remaining"), str(2 - i))
            self.assertIsNone(r.header("Retry-After"))
        self.assert_limited(get_from(self.dp.port, "/ident/x"), 3, 'ident "limit"')
        # Another client has its own bucket; the first stays refused.
        self.assertEqual(get_from(self.dp.port, "/ident/x", src="127.0.0.2").status, 200)
        self.assertEqual(get_from(self.dp.port, "/ident/y").status, 429)
        # A route without a limit is never limited and carries no RateLimit headers.
        for _ in range(20):
            r = get_from(self.dp.port, "/free/x")
            self.assertEqual(r.status, 200, r)
            self.assertIsNone(r.header("RateLimit-Limit"))
        # The access log says what the limiter decided, and only where it decided.
        def outcomes():
            lines = [json.loads(l) for l in self.dp.read().splitlines()
                     if l.startswith("{") and '"msg":"request"' in l]
            return {(l["path"], l["status"], l.get("ratelimit")) for l in lines}
        self.c.poll(lambda: {("/ident/x", 200, "allowed"), ("/ident/x", 429, "limited")}
                    <= outcomes(), "access log lines with the rate-limit outcome")
        self.assertNotIn(("/free/x", 200, "allowed"), outcomes())

    def test_route_level_shared_by_clients(self):
        got = [get_from(self.dp.port, "/shared/x", src=src).status
               for src in ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")]
        self.assertEqual(got, [200] * 4)
        r = get_from(self.dp.port, "/shared/other", src="127.0.0.5")
        self.assert_limited(r, 4, "This endpoint is heavily rate limited")
        self.assertEqual(get_from(self.dp.port, "/free/x", src="127.0.0.5").status, 200)

    def test_global_level_for_the_whole_gateway(self):
        self.c.api_ok("PUT", "/api/v1/settings/rateLimit",
                      {"backend": "local", "global": {"max": 5, "windowMs": WINDOW_MS}})
        self.c.wait_dp_ready(self.dp, version=self.c.config_version())
        got = [get_from(self.dp.port, "/free/%d" % i, src="127.0.0.%d" % (i + 1)).status
               for i in range(5)]
        self.assertEqual(got, [200] * 5)
        r = get_from(self.dp.port, "/ident/x", src="127.0.0.9")
        self.assert_limited(r, 5, "too many requests")
        # The limit survives a config change that leaves it as it was.
        self.c.api_ok("POST", "/api/v1/routes", {"id": "more", "path": "/more/*",
                                                  "upstream": "backend"}, expect=201)
        self.c.wait_dp_ready(self.dp, version=self.c.config_version())
        self.assertEqual(get_from(self.dp.port, "/more/x").status, 429)


class WorkersShareLocalLimitTest(RateLimitCase):
    """`--workers 2`: both workers decide against one local table (shared memory), so a
    client gets the limit once per data plane, not once per worker."""
    label = "rl-workers"
    LIMIT = 6
    REQUESTS = 30

    def test_one_limit_across_workers(self):
        (dp,) = self.setup_gateway(
            {"backend": "local"},
            [{"id": "ident", "path": "/ident/*",
              "rateLimit": {"max": self.LIMIT, "windowMs": WINDOW_MS}}],
            dp_args=("--workers", "2"))
        self.c.wait_in_sync(["dp-a-w1", "dp-a-w2"])  # both workers, not whichever answers
        # A fresh connection each: the kernel spreads them over both workers' sockets.
        got = [get_from(dp.port, "/ident/%d" % i).status for i in range(self.REQUESTS)]
        self.assertEqual(got.count(200), self.LIMIT, got)
        self.assertEqual(got.count(429), self.REQUESTS - self.LIMIT, got)

        def workers_seen():
            lines = [json.loads(l) for l in dp.read().splitlines()
                     if l.startswith("{") and '"msg":"request"' in l]
            return {l["worker"] for l in lines if l["path"].startswith("/ident/")}
        # Both workers answered (else this would not test sharing at all).
        self.c.poll(lambda: len(workers_seen()) == 2, "requests served by both workers")


class Load:
    """LOAD_THREADS clients alternating between data planes, at most LOAD_MAX_REQUESTS in
    all and LOAD_DEADLINE_S; each result is (phase, status or exception name)."""

    def __init__(self, dps, path):
        self.dps, self.path = dps, path
        self.phase = "before"
        self.results = []
        self.lock = threading.Lock()
        self.stop = False
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(LOAD_THREADS)]

    def run(self, i):
        clients = [harness.Client(dp.port) for dp in self.dps]
        deadline = time.monotonic() + LOAD_DEADLINE_S
        n = 0
        try:
            while not self.stop and time.monotonic() < deadline:
                with self.lock:
                    if len(self.results) >= LOAD_MAX_REQUESTS:
                        return
                phase = self.phase
                try:
                    out = clients[(i + n) % len(clients)].get(self.path).status
                except Exception as e:  # counted as a failure
                    out = type(e).__name__
                n += 1
                with self.lock:
                    self.results.append((phase, out))
        finally:
            for c in clients:
                c.close()

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def done(self):
        return len(self.results)

    def join(self):
        for t in self.threads:
            t.join(LOAD_DEADLINE_S + 10)

    def count(self, phase, what):
        return sum(1 for p, s in self.results if p == phase and s == what)

    def failures(self, phase):
        return [s for p, s in self.results if p == phase and s not in (200, 429)]


class RedisLimitTest(RateLimitCase):
    label = "rl-redis"

    def setUp(self):
        super().setUp()
        self.redis = harness.start_redis(self.c)
        # A host name: resolved through evdns (the hosts file), never blocking the loop.
        self.url = "redis://localhost:%d/0" % self.redis.port
        self.dps = self.setup_gateway(
            {"backend": "redis",
             "redis": {"url": self.url, "timeoutMs": TEST_TIMEOUT_MS,
                       "fallbackDivisor": 2},
             "global": {"max": 100, "windowMs": WINDOW_MS}},
            [{"id": "api", "path": "/api/*"}], n_dps=2)
        self.wait_redis_state(self.dps, "ok")

    def alternate(self, n, path="/api/x"):
        """n sequential requests alternating between the data planes: {status: count}."""
        out = {}
        for i in range(n):
            r = self.c.through(self.dps[i % 2], "GET", path)
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def assert_shared(self, got, what):
        self.assertEqual(set(got) - {200, 429}, set(), got)
        self.assertTrue(95 <= got.get(200, 0) <= 105,
                        "%s: %r allowed, want 100 +-5%% across two data planes" % (what, got))

    def test_two_data_planes_share_one_limit(self):
        marks = [len(dp.read()) for dp in self.dps]
        self.alternate(10)
        # Redis forgets the script (a restart keeps the connection's view, SCRIPT FLUSH):
        # the next decisions get NOSCRIPT, send the script itself (EVAL), and stay shared.
        self.assertIn("OK", self.redis.command("SCRIPT", "FLUSH"))
        got = self.alternate(230)
        got[200] = got.get(200, 0) + 10
        self.assert_shared(got, "shared limit")
        for dp, mark in zip(self.dps, marks):
            self.assertNotIn("Redis unavailable", dp.read()[mark:], "NOSCRIPT is not a failure")
        self.assertIn("fg:rl:g:100/%d/0" % WINDOW_MS, self.redis.command("KEYS", "fg:rl:*"))
        r = self.c.through(self.dps[0], "GET", "/api/x")
        self.assert_limited(r, 100)

    def test_redis_killed_under_load_then_back(self):
        marks = [len(dp.read()) for dp in self.dps]  # count log lines from here on
        load = Load(self.dps, "/api/k").start()
        self.c.poll(lambda: load.done() >= 150, "150 requests before the kill", 30)
        load.phase = "after"
        self.redis.kill()
        load.join()
        before, after = [r for r in load.results if r[0] == "before"], \
                        [r for r in load.results if r[0] == "after"]
        failed = load.failures("before") + load.failures("after")
        sys.stderr.write("\nredis killed under load: %d/%d requests failed after the kill "
                         "(%d before it); after: %d allowed, %d limited\n"
                         % (len(load.failures("after")), len(after), len(before),
                            load.count("after", 200), load.count("after", 429)))
        self.assertEqual(failed, [], "requests failed because Redis did")
        self.assertTrue(len(after) >= 200, "too little load after the kill: %d" % len(after))
        # Shared before the kill (the requests in flight at the kill may be decided locally:
        # one per load thread); afterwards each data plane allows max / 2 locally.
        self.assertLessEqual(load.count("before", 200), 100 + LOAD_THREADS + 1)
        self.assertLessEqual(load.count("after", 200), 2 * 50 + 2)
        self.assertGreater(load.count("after", 429), 0)
        self.wait_redis_state(self.dps, "fallback")
        for dp, mark in zip(self.dps, marks):
            self.assertEqual(dp.read()[mark:].count("Redis unavailable, deciding locally"), 1,
                             "the switch is logged once")
        # Redis comes back (empty): the data planes reconnect and share a fresh limit.
        self.redis.start()
        self.wait_redis_state(self.dps, "ok")
        self.assert_shared(self.alternate(240, "/api/back"), "after Redis came back")
        for dp, mark in zip(self.dps, marks):
            self.assertEqual(dp.read()[mark:].count("Redis is back"), 1)

    def test_redis_stalled_decisions_time_out_locally(self):
        self.redis.signal(19)  # SIGSTOP: connected, but never answers
        self.addCleanup(self.redis.signal, 18)
        t0 = time.monotonic()
        got = self.alternate(20, "/api/s")
        elapsed = time.monotonic() - t0
        self.assertEqual(set(got) - {200, 429}, set(), got)
        # One decision waits for timeoutMs, the rest are local at once.
        self.assertLess(elapsed, 20 * TEST_TIMEOUT_MS / 1000.0, got)
        self.wait_redis_state(self.dps, "fallback")
        self.redis.signal(18)  # SIGCONT
        self.wait_redis_state(self.dps, "ok")

    def test_late_answers_for_gone_requests_are_dropped(self):
        """Requests waiting on a stopped Redis whose clients reset the connection end there;
        when Redis resumes, its answers for them are dropped, and the requests that reused
        their connection structs get their own answers (ASan checks the memory)."""
        self.c.api_ok("PUT", "/api/v1/settings/rateLimit",
                      {"backend": "redis", "redis": {"url": self.url, "timeoutMs": 10000},
                       "global": {"max": 100, "windowMs": WINDOW_MS}})
        version = self.c.config_version()
        for dp in self.dps:
            self.c.wait_dp_ready(dp, version=version)
        dp = self.dps[0]
        req = b"GET /api/late HTTP/1.1\r\nHost: x\r\n\r\n"
        self.redis.signal(19)  # SIGSTOP
        self.addCleanup(self.redis.signal, 18)
        gone = [socket.create_connection(("127.0.0.1", dp.port), timeout=5) for _ in range(20)]
        for s in gone:
            s.sendall(req)
        # The status listener runs on the same event loop: once it answers, the loop has
        # read the requests above (sent before it was even asked).
        self.assertEqual(self.c.status(dp, "/health/live").status, 200)
        for s in gone:  # RST: the data plane sees an error, not a half-close
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        self.assertEqual(self.c.status(dp, "/health/live").status, 200)
        waiting = [socket.create_connection(("127.0.0.1", dp.port), timeout=10)
                   for _ in range(20)]
        for s in waiting:
            s.sendall(req)
        self.assertEqual(self.c.status(dp, "/health/live").status, 200)
        self.redis.signal(18)  # SIGCONT: 40 answers arrive, the first 20 for nobody
        for s in waiting:
            r = http.client.HTTPResponse(s, method="GET")
            r.begin()
            r.read()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.getheader("RateLimit-Limit"), "100")
            s.close()
        self.assertEqual(self.ready_field(dp), "UP")  # answered in time: no fallback
        # 20 tokens were taken for the requests that left (Redis decided them), 20 for these.
        r = self.c.through(dp, "GET", "/api/after")
        self.assertEqual(r.header("RateLimit-Remaining"), str(100 - 41))

    def test_password_and_database_from_the_url(self):
        """redis://:password@host:port/db: AUTH and SELECT before the script is loaded; a
        wrong password is a Redis failure (local fallback), never a failed request."""
        locked = harness.start_redis(self.c, name="redis-locked",
                                     args=["--requirepass", "s3cret"])
        cli = ["redis-cli", "-p", str(locked.port), "--no-auth-warning", "-a", "s3cret",
               "-n", "3"]
        for url, state in (("redis://:wrong@127.0.0.1:%d/3" % locked.port, "fallback"),
                           ("redis://:s3cret@127.0.0.1:%d/3" % locked.port, "ok")):
            self.c.api_ok("PUT", "/api/v1/settings/rateLimit",
                          {"backend": "redis", "redis": {"url": url},
                           "global": {"max": 100, "windowMs": WINDOW_MS}})
            version = self.c.config_version()
            for dp in self.dps:
                self.c.wait_dp_ready(dp, version=version)
            self.wait_redis_state(self.dps, state)
            r = self.c.through(self.dps[0], "GET", "/api/x")
            self.assertEqual(r.status, 200)
        keys = subprocess.run(cli + ["KEYS", "fg:rl:*"], capture_output=True, text=True,
                              timeout=10).stdout.split()
        self.assertEqual(keys, ["fg:rl:g:100/%d/0" % WINDOW_MS])
        for dp in self.dps:
            self.assertNotIn("s3cret", dp.read(), "a password reached the log")
            self.assertIn("redis://:***@127.0.0.1", dp.read())


if __name__ == "__main__":
    main()
