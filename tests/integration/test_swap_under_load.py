#!/usr/bin/env python3
"""test_swap_under_load.py - 1,000 configuration swaps under keep-alive load, no request fails
(issue 3).

Client threads keep sending requests over keep-alive connections to one data plane while its
configuration is replaced 1,000 times. Every request must come back 200 from an origin; none
may fail, hang or see a half-applied config.

1. Through the real control plane: each REST PUT flips the catch-all route between upstreams
   "a" and "b" (two origins). The publisher coalesces bursts, so the test waits for the data
   plane to report each new version before the next PUT, and at the end counts the distinct
   versions the data plane logged as applied ("config applied"): at least 1,000.
2. Through tests/tools/fake_ctl.py, back to back: 1,000 snapshots, each waited for only by its
   ACK, while some requests are slow (/slow at the origin), so many old generations are held
   by in-flight requests at once and freed as those finish.

Bounded: every loop has a count and a deadline; clients stop when the swaps are done.
"""

import json
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ClusterTest  # noqa: E402
import fake_ctl  # noqa: E402  (tests/tools, put on sys.path by harness)

SWAPS = 1000
CLIENT_THREADS = 4
SWAP_DEADLINE = 45.0          # s for all swaps of one test (ASan builds included)
APPLY_TIMEOUT = 10.0          # s for one version to be applied
MAX_REQUESTS_PER_THREAD = 200_000
MIN_REQUESTS_PER_SWAP = 1     # the load must actually overlap the swaps
SLOW_EVERY = 16               # fake_ctl test: every 16th request asks the origin to wait
SLOW_MS = 30

APPLIED_RE = re.compile(r'"msg":"config applied".*?"version":"(\d+)"')


class LoadThread(threading.Thread):
    """GETs over one keep-alive connection until told to stop; records every failure."""

    def __init__(self, port, index, slow_every=0):
        super().__init__(name="load-%d" % index, daemon=True)
        self.client = harness.Client(port, timeout=harness.HTTP_TIMEOUT)
        self.index = index
        self.slow_every = slow_every
        self.stop = threading.Event()
        self.ok = 0
        self.failures = []
        self.origins = set()
        self.connections = set()

    def path_for(self, n):
        if self.slow_every and n % self.slow_every == self.slow_every - 1:
            return "/slow?ms=%d&t=%d" % (SLOW_MS, self.index)
        return "/load/%d/%d" % (self.index, n)

    def run(self):
        try:
            for n in range(MAX_REQUESTS_PER_THREAD):
                if self.stop.is_set():
                    break
                path = self.path_for(n)
                try:
                    r = self.client.get(path)
                except Exception as e:  # noqa: BLE001 - every failure is recorded
                    self.failures.append("%s: %s: %s" % (path, type(e).__name__, e))
                    continue
                self.connections.add(r.local_port)
                body = None
                try:
                    body = json.loads(r.body)
                except ValueError:
                    pass
                if r.status != 200 or not isinstance(body, dict) or "origin" not in body:
                    self.failures.append("%s: %d %r" % (path, r.status, r.body[:200]))
                    continue
                self.origins.add(body["origin"])
                self.ok += 1
        finally:
            self.client.close()


class SwapUnderLoad(ClusterTest):
    label = "swap"

    def start_load(self, dp, slow_every=0):
        threads = [LoadThread(dp.port, i, slow_every) for i in range(CLIENT_THREADS)]
        for t in threads:
            t.start()
        self.addCleanup(self.stop_load, threads)
        # The load is running before the first swap: every thread has had a success.
        self.c.poll(lambda: all(t.ok > 0 or t.failures for t in threads), "load threads started")
        return threads

    def stop_load(self, threads):
        for t in threads:
            t.stop.set()
        for t in threads:
            t.join(timeout=harness.HTTP_TIMEOUT + 5)

    def check_load(self, threads, swaps):
        self.stop_load(threads)
        for t in threads:
            self.assertFalse(t.is_alive(), "%s stopped" % t.name)
        failures = [f for t in threads for f in t.failures]
        total = sum(t.ok for t in threads)
        self.assertEqual(failures, [], "%d of %d requests failed during %d swaps; first: %s"
                         % (len(failures), total + len(failures), swaps, failures[:5]))
        self.assertGreaterEqual(total, MIN_REQUESTS_PER_SWAP * swaps,
                                "the load overlapped the swaps (%d requests)" % total)
        self.assertEqual(set().union(*(t.origins for t in threads)), {"A", "B"},
                         "requests reached both upstreams as the route flipped")
        # Keep-alive held: far fewer client connections than requests.
        conns = sum(len(t.connections) for t in threads)
        self.assertLessEqual(conns, CLIENT_THREADS * 4, "keep-alive connections were kept")
        return total

    def applied_versions(self, dp):
        return {int(v) for v in APPLIED_RE.findall(dp.read("stderr"))}

    def test_rest_swaps_under_keepalive_load(self):
        c = self.c
        c.start_origin("A")
        c.start_origin("B")
        c.start_ctl()
        c.api_ok("POST", "/api/v1/upstreams", {"name": "a", "url": c.origin_url("A")}, expect=201)
        c.api_ok("POST", "/api/v1/upstreams", {"name": "b", "url": c.origin_url("B")}, expect=201)
        c.api_ok("POST", "/api/v1/routes", {"id": "all", "path": "/*", "upstream": "a"},
                 expect=201)
        # What is measured is the swap path (a SQLite commit per swap). An access line per
        # request of the load (tens of MB of log on the same disk) turns each commit's fsync
        # into a flush of that log on ext4 and measures the disk instead: only 5xx lines.
        c.api_ok("PUT", "/api/v1/settings/logging", {"level": "warn"})
        dp = c.start_dp("dp-a")
        v0 = c.config_version()
        c.wait_dp_ready(dp, version=v0)
        status = harness.Client(dp.status_port)
        self.addCleanup(status.close)

        threads = self.start_load(dp)
        deadline = time.monotonic() + SWAP_DEADLINE
        t0 = time.monotonic()
        want = v0
        for i in range(SWAPS):
            self.assertLess(time.monotonic(), deadline,
                            "%d swaps within %.0f s\n%s" % (SWAPS, SWAP_DEADLINE, c.context()))
            route = {"id": "all", "path": "/*", "upstream": "b" if i % 2 == 0 else "a"}
            r = c.api_ok("PUT", "/api/v1/routes/all", route, expect=200)
            want = int(r.header("X-Config-Version"))
            self.wait_version(status, dp, want)
        elapsed = time.monotonic() - t0
        total = self.check_load(threads, SWAPS)

        applied = {v for v in self.applied_versions(dp) if v0 < v <= want}
        self.assertGreaterEqual(len(applied), SWAPS,
                                "distinct generations applied by the data plane")
        sys.stderr.write("\nswap-under-load (REST): %d swaps in %.1f s, %d requests, "
                         "%d generations applied\n" % (SWAPS, elapsed, total, len(applied)))

    def test_snapshot_pushes_under_load_with_slow_requests(self):
        c = self.c
        configs = self.two_stored_configs()
        fake = fake_ctl.FakeCtl(os.path.join(c.tmp, "fake.sock")).start()
        self.addCleanup(fake.close)
        dp = c.start_dp("dp-a", socket_path=fake.socket_path, wait_ready=False)
        fake.wait_hello(timeout=harness.START_TIMEOUT)
        base = max(s.version for s in configs) + 1
        self.push(fake, configs[0], base)
        c.wait_dp_ready(dp, version=base)

        threads = self.start_load(dp, slow_every=SLOW_EVERY)
        deadline = time.monotonic() + SWAP_DEADLINE
        t0 = time.monotonic()
        for i in range(1, SWAPS + 1):
            self.assertLess(time.monotonic(), deadline,
                            "%d swaps within %.0f s\n%s" % (SWAPS, SWAP_DEADLINE, c.context()))
            self.push(fake, configs[i % 2], base + i)
            self.wait_progress(threads)
        elapsed = time.monotonic() - t0
        total = self.check_load(threads, SWAPS)

        applied = {v for v in self.applied_versions(dp) if base < v <= base + SWAPS}
        self.assertEqual(len(applied), SWAPS, "every pushed snapshot became a generation")
        r = c.status(dp, "/health/ready")
        self.assertEqual(r.json().get("config_version"), base + SWAPS)
        sys.stderr.write("\nswap-under-load (fake_ctl): %d swaps in %.1f s, %d requests\n"
                         % (SWAPS, elapsed, total))

    def two_stored_configs(self):
        """Snapshots from a real control plane: the catch-all route to upstream "a" (origin
        A), then to "b" (origin B). The control plane is stopped afterwards."""
        c = self.c
        c.start_origin("A")
        c.start_origin("B")
        ctl = c.start_ctl()
        c.api_ok("POST", "/api/v1/upstreams", {"name": "a", "url": c.origin_url("A")}, expect=201)
        c.api_ok("POST", "/api/v1/upstreams", {"name": "b", "url": c.origin_url("B")}, expect=201)
        c.api_ok("POST", "/api/v1/routes", {"id": "all", "path": "/*", "upstream": "a"},
                 expect=201)
        c.api_ok("PUT", "/api/v1/routes/all", {"id": "all", "path": "/*", "upstream": "b"},
                 expect=200)
        rc, killed = ctl.stop()
        self.assertEqual((rc, killed), (0, False), "flexgate-ctl exits 0 on SIGTERM")
        snaps = fake_ctl.load_snapshots(ctl.db)[-2:]
        self.assertIn('"upstream":"a"', snaps[0].config)
        self.assertIn('"upstream":"b"', snaps[1].config)
        return snaps

    def push(self, fake, snap, version):
        mark = fake.mark()
        fake.send_snapshot(fake_ctl.renumbered(snap, version))
        kind, body = fake.wait_reply(version, timeout=APPLY_TIMEOUT, since=mark)
        self.assertEqual(kind, "ACK", "snapshot %d: %r" % (version, body))

    def wait_progress(self, threads):
        """Wait until the load has completed at least one more request (pushes are faster
        than Python clients: this keeps every generation serving some requests)."""
        before = sum(t.ok + len(t.failures) for t in threads)
        deadline = time.monotonic() + APPLY_TIMEOUT
        while sum(t.ok + len(t.failures) for t in threads) <= before:
            if time.monotonic() > deadline:
                raise AssertionError("no request completed within %.0f s\n%s"
                                     % (APPLY_TIMEOUT, self.c.context()))
            time.sleep(0.0005)

    def wait_version(self, status, dp, version):
        """Poll the data plane's /health/ready (one keep-alive connection) until it serves
        `version` or later; a tight loop since each swap waits for it."""
        deadline = time.monotonic() + APPLY_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            r = status.get("/health/ready")
            last = r.json().get("config_version") if r.status == 200 else r.status
            if r.status == 200 and isinstance(last, int) and last >= version:
                return
            time.sleep(0.001)
        raise AssertionError("data plane did not apply version %d within %.0f s (last %r)\n%s"
                             % (version, APPLY_TIMEOUT, last, self.c.context()))


if __name__ == "__main__":
    harness.main()
