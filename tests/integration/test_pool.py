#!/usr/bin/env python3
"""test_pool.py - upstream keep-alive pools: the upstream's `keepalive` settings.

maxIdle caps the idle connections kept per target (nginx `keepalive N`): after a burst of
concurrent requests, only that many connections are reused by the next burst. maxIdle 0 closes
every connection after its response. idleTimeout closes an idle pooled connection (seen from
the origin's side of the socket in /proc/net/tcp), and the next request opens a new one.
"""

import threading
import time

import harness
from harness import ClusterTest, is_origin_json, main

BURST = 5
SLOW_MS = 600  # long enough for a whole burst to be in flight at once


def established(local_port, remote_port):
    """True when a loopback TCP connection local_port <-> remote_port is ESTABLISHED."""
    want_l, want_r = "%04X" % local_port, "%04X" % remote_port
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if (parts[1].endswith(":" + want_l) and parts[2].endswith(":" + want_r)
                            and parts[3] == "01"):
                        return True
        except FileNotFoundError:
            pass
    return False


class PoolTest(ClusterTest):
    label = "pool"

    def setUp(self):
        super().setUp()
        self.c.start_origin("A")
        self.c.start_ctl()
        self.dp = self.c.start_dp("dp-a")

    def add(self, name, **extra):
        body = {"name": name, "url": self.c.origin_url("A"), "timeout": 5000}
        body.update(extra)
        self.c.api_ok("POST", "/api/v1/upstreams", body, expect=201)
        self.c.api_ok("POST", "/api/v1/routes", {"id": name, "path": "/%s/*" % name,
                                                  "upstream": name, "stripPrefix": True},
                      expect=201)
        self.c.wait_served(["dp-a"], "/%s/ready" % name, lambda r: is_origin_json(r, "A"),
                           "route %s served" % name)

    def burst(self, name):
        """BURST concurrent slow requests on separate client connections; their JSON."""
        out, errors = [None] * BURST, []

        def one(i):
            try:
                out[i] = harness.one_shot(self.dp.port, "GET", "/%s/slow?ms=%d" % (name, SLOW_MS),
                                          timeout=10).json()
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(BURST)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        self.assertEqual(errors, [])
        return out

    def test_max_idle_caps_the_pool(self):
        self.add("capped", keepalive={"maxIdle": 2})
        self.add("default")
        for name, kept in (("capped", 2), ("default", BURST)):
            first = self.burst(name)
            self.assertEqual(len({r["peer"] for r in first}), BURST, "one connection each")
            second = self.burst(name)
            reused = [r for r in second if r["connection_requests"] > 1]
            self.assertEqual(len(reused), kept, (name, second))

    def test_max_idle_zero_closes_after_each_response(self):
        self.add("nopool", keepalive={"maxIdle": 0})
        a = self.c.through(self.dp, "GET", "/nopool/1").json()
        b = self.c.through(self.dp, "GET", "/nopool/2").json()
        self.assertEqual((a["connection_requests"], b["connection_requests"]), (1, 1))
        self.assertNotEqual(a["peer"], b["peer"])

    def test_idle_timeout_closes_idle_connections(self):
        self.add("short", keepalive={"idleTimeout": 300})
        origin_port = self.c.origins["A"].port
        r = self.c.through(self.dp, "GET", "/short/1").json()
        peer_port = int(r["peer"].rsplit(":", 1)[1])
        t0 = time.monotonic()
        self.assertTrue(established(origin_port, peer_port), "pooled right after the response")
        self.c.poll(lambda: not established(origin_port, peer_port),
                    "the idle upstream connection to be closed", timeout=5)
        self.assertGreaterEqual(time.monotonic() - t0, 0.25, "closed before its idle timeout")
        r2 = self.c.through(self.dp, "GET", "/short/2").json()
        self.assertEqual(r2["connection_requests"], 1)
        self.assertNotEqual(r2["peer"], r["peer"])


if __name__ == "__main__":
    main()
