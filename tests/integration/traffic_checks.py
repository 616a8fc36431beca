"""traffic_checks.py - shared setup for the traffic-control tests (balancing, retries, breakers,
health, overload); not a test itself.

TrafficTest starts named origins, a control plane and one single-process data plane, and
creates upstreams and routes through the admin API. Origins are told at run time how to
behave through origin.py's /__control (ok, fail, hang, slow, close); `hits` reads an origin's
request count ("served": requests other than /__stats and /__control) from /__stats.
"""

import json
import threading
import time

import harness
from harness import ClusterTest


class TrafficTest(ClusterTest):
    label = "traffic"

    def start(self, origins, dp=True):
        for name in origins:
            self.c.start_origin(name)
        self.c.start_ctl()
        self.dp = self.c.start_dp("dp-a") if dp else None

    def url(self, name):
        return self.c.origin_url(name)

    def upstream(self, name, origins, weights=None, **extra):
        """Create (or replace) upstream `name` over `origins`, and route /name/* to it."""
        targets = [{"url": self.url(o), "weight": (weights or {}).get(o, 1)} for o in origins]
        body = {"name": name, "targets": targets, "timeout": 5000}
        body.update(extra)
        r = self.c.api("GET", "/api/v1/upstreams/" + name)
        if r.status == 200:
            self.c.api_ok("PUT", "/api/v1/upstreams/" + name, body)
        else:
            self.c.api_ok("POST", "/api/v1/upstreams", body, expect=201)
            self.route(name, name)

    def route(self, rid, upstream, **extra):
        body = {"id": rid, "path": "/%s/*" % rid, "upstream": upstream, "stripPrefix": True}
        body.update(extra)
        self.c.api_ok("POST", "/api/v1/routes", body, expect=201)

    def settle(self):
        """Wait until the data plane applied the newest config version."""
        self.c.wait_dp_ready(self.dp, version=self.c.config_version())

    def control(self, origin, mode, **params):
        q = "&".join(["mode=" + mode] + ["%s=%s" % kv for kv in params.items()])
        r = harness.one_shot(self.c.origins[origin].port, "GET", "/__control?" + q)
        self.assertEqual(r.status, 200, r)

    def hits(self, origin):
        """Requests origin `origin` received (health checks included), not counting ours."""
        r = harness.one_shot(self.c.origins[origin].port, "GET", "/__stats")
        return r.json()["served"]

    def get(self, path, timeout=10.0, **kw):
        """One request on a fresh connection (a failed one may close it)."""
        return harness.one_shot(self.dp.port, "GET", path, timeout=timeout, **kw)

    def origin_of(self, resp):
        if resp.status != 200:
            return None
        try:
            return json.loads(resp.body)["origin"]
        except (ValueError, KeyError):
            return None

    def served_by(self, path, n, method="GET", **kw):
        """Send n requests one after another; the list of serving origins (None: failed)."""
        out = []
        for _ in range(n):
            r = harness.one_shot(self.dp.port, method, path, timeout=10.0, **kw)
            out.append(self.origin_of(r))
        return out

    def in_background(self, fn, *args):
        """Run fn(*args) in a thread; returns (thread, result list)."""
        result = []
        t = threading.Thread(target=lambda: result.append(fn(*args)), daemon=True)
        t.start()
        self.addCleanup(t.join, 30)
        return t, result

    def wait_in_flight(self, origin, n, timeout=10.0):
        """Poll until origin has n requests in progress."""
        def probe():
            r = harness.one_shot(self.c.origins[origin].port, "GET", "/__stats")
            return r.json()["in_flight"] >= n

        self.c.poll(probe, "origin %s to have %d requests in flight" % (origin, n), timeout)

    def elapsed(self, fn):
        t0 = time.monotonic()
        r = fn()
        return r, time.monotonic() - t0
