#!/usr/bin/env python3
"""test_propagation.py - REST changes reach every data plane (issue 2).

A route created over the admin API is served by both data planes, both report the new
version in /api/v1/dataplanes; a deleted route gives 404 on both. Also measures the time
from a REST mutation's response to both data planes serving it, prints it, and writes it to
$FG_BUILD_DIR/propagation.txt.
"""

import json
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ClusterTest, error_code, is_origin_json  # noqa: E402

PROPAGATION_ROUNDS = 20
PROPAGATION_DEADLINE = 10.0   # s per round
PROPAGATION_MAX_REQUESTS = 200_000
MEDIAN_BOUND = 1.0            # s: the median must stay under this (DESIGN: a few ms)

USERS = {"id": "users", "path": "/api/users/*", "upstream": "backend", "auth": "none"}


class Propagation(ClusterTest):
    label = "prop"

    def test_route_created_over_rest_is_served_by_both_data_planes(self):
        ids = self.start_standard()
        v0 = self.c.config_version()
        for i in ids:
            r = self.c.through(i, "GET", "/api/users/42")
            self.assertEqual(r.status, 404, "%s before the route exists: %r" % (i, r))
            self.assertEqual(error_code(r), "no_route")

        r = self.c.api_ok("POST", "/api/v1/routes", USERS, expect=201)
        v1 = int(r.header("X-Config-Version"))
        self.assertEqual(v1, v0 + 1, "one mutation bumps the version by one")
        self.assertEqual(r.header("Location"), "/api/v1/routes/users")
        created = r.json()
        for k, v in USERS.items():
            self.assertEqual(created.get(k), v, "created route echoes %s" % k)

        path = "/api/users/42?expand=1&x=%2F"
        self.c.wait_served(ids, path, lambda resp: is_origin_json(resp, "A", path),
                           "the new route served by origin A")
        doc = self.c.wait_in_sync(ids, v1)
        self.assertEqual(doc["config_version"], v1)
        by_id = {d["id"]: d for d in doc["items"]}
        for i in ids:
            d = by_id[i]
            self.assertEqual(d["pid"], self.c.dps[i].pid, "pid reported for %s" % i)
            self.assertIsInstance(d["hostname"], str)
            self.assertTrue(d["hostname"])
            self.assertIsInstance(d["software_version"], str)
            self.assertTrue(d["connected_since"])
            self.assertTrue(d["last_seen"])
            self.assertIsNone(d["last_error"])
            ready = self.c.status(self.c.dps[i], "/health/ready").json()
            self.assertEqual(ready["status"], "UP")
            self.assertEqual(ready["config_version"], v1)

        # Prefix semantics of "/api/users/*": /api/users, /api/users/ and below, nothing else.
        for i in ids:
            for p in ("/api/users", "/api/users/", "/api/users/1/2/3"):
                self.assertTrue(is_origin_json(self.c.through(i, "GET", p), "A", p),
                                "%s should serve %s" % (i, p))
            for p in ("/api/usersX", "/api/user", "/api"):
                r = self.c.through(i, "GET", p)
                self.assertEqual(r.status, 404, "%s must not serve %s: %r" % (i, p, r))

    def test_deleted_route_gives_404_on_both_data_planes(self):
        ids = self.start_standard()
        self.c.api_ok("POST", "/api/v1/routes", USERS, expect=201)
        self.c.wait_served(ids, "/api/users/7", lambda r: is_origin_json(r, "A"), "route served")
        v = self.c.config_version()

        r = self.c.api_ok("DELETE", "/api/v1/routes/users", expect=204)
        self.assertEqual(int(r.header("X-Config-Version")), v + 1)
        self.assertEqual(r.body, b"")
        self.c.wait_served(ids, "/api/users/7",
                           lambda r: r.status == 404 and error_code(r) == "no_route",
                           "404 no_route after the delete")
        self.c.wait_in_sync(ids, v + 1)
        self.assertEqual(self.c.api("GET", "/api/v1/routes/users").status, 404)
        self.assertEqual(self.c.api("DELETE", "/api/v1/routes/users").status, 404)
        self.assertEqual(self.c.config_version(), v + 1)

    def test_upstream_url_change_moves_pooled_traffic(self):
        """PUT an upstream to another origin: both data planes switch, even on client and
        upstream connections kept alive from before the change."""
        ids = self.start_standard()
        c = self.c
        c.start_origin("B")
        c.api_ok("POST", "/api/v1/routes", USERS, expect=201)
        for i in ids:  # warm the keep-alive pools towards origin A
            c.wait_served([i], "/api/users/1", lambda r: is_origin_json(r, "A"), "via A")
            for _ in range(5):
                self.assertTrue(is_origin_json(c.through(i, "GET", "/api/users/2"), "A"))
        r = c.api_ok("PUT", "/api/v1/upstreams/backend",
                     {"name": "backend", "url": c.origin_url("B"), "timeout": 5000}, expect=200)
        v = int(r.header("X-Config-Version"))
        c.wait_served(ids, "/api/users/3", lambda r: is_origin_json(r, "B"), "via B after PUT")
        c.wait_in_sync(ids, v)
        for i in ids:
            for n in range(10):
                r = c.through(i, "GET", "/api/users/%d" % n)
                self.assertTrue(is_origin_json(r, "B"), "%s request %d after the switch: %r"
                                % (i, n, r))

    def test_propagation_time_rest_to_both_data_planes(self):
        ids = self.start_standard()
        clients = {i: harness.Client(self.c.dps[i].port) for i in ids}
        for cl in clients.values():
            self.addCleanup(cl.close)
        samples = []
        for n in range(PROPAGATION_ROUNDS):
            path = "/m/%d/x" % n
            for i in ids:
                self.assertEqual(clients[i].get(path).status, 404)
            self.c.api_ok("POST", "/api/v1/routes",
                          {"id": "m%d" % n, "path": "/m/%d/*" % n, "upstream": "backend"},
                          expect=201)
            t0 = time.monotonic()
            pending = set(ids)
            for _ in range(PROPAGATION_MAX_REQUESTS):
                for i in list(pending):
                    if clients[i].get(path).status == 200:
                        pending.discard(i)
                if not pending or time.monotonic() - t0 > PROPAGATION_DEADLINE:
                    break
            elapsed = time.monotonic() - t0
            self.assertFalse(pending, "round %d: %s not serving %s after %.2fs\n%s"
                             % (n, sorted(pending), path, elapsed, self.c.context()))
            samples.append(elapsed)
        samples.sort()
        stats = {
            "rounds": len(samples),
            "min_ms": round(samples[0] * 1000, 2),
            "median_ms": round(statistics.median(samples) * 1000, 2),
            "p90_ms": round(samples[int(len(samples) * 0.9) - 1] * 1000, 2),
            "max_ms": round(samples[-1] * 1000, 2),
            "what": "REST POST /api/v1/routes response -> both data planes answer 200 (tight poll)",
        }
        line = "propagation REST -> 2 data planes: " + json.dumps(stats)
        print("\n" + line, flush=True)
        sys.stderr.write(line + "\n")
        try:
            with open(os.path.join(harness.BUILD_DIR, "propagation.txt"), "w") as f:
                f.write(line + "\n")
        except OSError:
            pass
        self.assertLess(statistics.median(samples), MEDIAN_BOUND,
                        "median propagation %.3fs" % statistics.median(samples))

    def test_config_swaps_never_fail_a_request(self):
        """Requests in flight and on keep-alive connections survive generation swaps: a
        slow request started before its route is deleted still completes, and clients
        hammering a stable route see no error while 20 other changes go by."""
        ids = self.start_standard()
        c = self.c
        c.api_ok("POST", "/api/v1/routes", {"id": "slow", "path": "/slow", "upstream": "backend"},
                 expect=201)
        c.api_ok("POST", "/api/v1/routes", USERS, expect=201)
        c.wait_served(ids, "/api/users/1", lambda r: is_origin_json(r, "A"), "route served")
        c.wait_in_sync(ids)

        stop = threading.Event()
        failures, counts = [], {}

        def hammer(dp_id, n):
            cl = harness.Client(c.dps[dp_id].port)
            done = 0
            try:
                for k in range(100_000):
                    if stop.is_set():
                        break
                    path = "/api/users/%d/%d" % (n, k)
                    try:
                        r = cl.get(path)
                    except Exception as e:
                        failures.append("%s: %s %r" % (dp_id, path, e))
                        continue
                    if not is_origin_json(r, "A", path):
                        failures.append("%s: %s -> %r" % (dp_id, path, r))
                    done += 1
            finally:
                cl.close()
                counts[(dp_id, n)] = done

        slow = {}

        def slow_call():
            try:
                slow["r"] = harness.one_shot(c.dps["dp-a"].port, "GET", "/slow?ms=700", timeout=10)
            except Exception as e:
                slow["e"] = e

        threads = [threading.Thread(target=hammer, args=(i, n), daemon=True)
                   for i in ids for n in range(3)]
        threads.append(threading.Thread(target=slow_call, daemon=True))
        for t in threads:
            t.start()
        origin = harness.Client(c.origins["A"].port)
        self.addCleanup(origin.close)
        c.poll(lambda: origin.get("/__stats").json()["in_flight"] >= 1, "slow request at origin")
        try:
            c.api_ok("DELETE", "/api/v1/routes/slow", expect=204)
            for n in range(20):
                c.api_ok("POST", "/api/v1/routes",
                         {"id": "churn%d" % n, "path": "/churn/%d/*" % n, "upstream": "backend"},
                         expect=201)
            c.wait_in_sync(ids)
            c.wait_served(ids, "/slow?ms=0", lambda r: r.status == 404, "the deleted route gone")
        finally:
            stop.set()
            for t in threads:
                t.join(harness.HTTP_TIMEOUT)
        self.assertIn("r", slow, "in-flight request across the delete failed: %r" % slow.get("e"))
        self.assertTrue(is_origin_json(slow["r"], "A"), slow["r"])
        self.assertEqual(failures, [], "requests failed during swaps")
        self.assertTrue(all(v > 0 for v in counts.values()), counts)


if __name__ == "__main__":
    harness.main()
