#!/usr/bin/env python3
"""test_breaker.py - circuit breakers per upstream target (issue 6), against an origin told
to fail and then to recover.

Past failureThreshold percent of minRequests failures the breaker opens: requests get a fast
503 `circuit_open` with Retry-After and never reach the origin; after openDuration one trial
goes through and, the origin healed, closes it. With a `fallback` upstream, requests go there
while the breaker is open. The open state survives a config swap that leaves the upstream as it
was, and starts over when its breaker settings change. Fallback is one level deep.
"""

import json
import time

from harness import error_code, main
from traffic_checks import TrafficTest

BREAKER = {"enabled": True, "failureThreshold": 50, "minRequests": 4, "windowMs": 10000,
           "openDuration": 1500, "halfOpenRequests": 1, "successThreshold": 1}
NO_HEALTH = {"enabled": False, "consecutiveFailures": 0}


class Breaker(TrafficTest):
    label = "breaker"

    def open_breaker(self, path, origin="A"):
        self.control(origin, "fail", status=500)
        got = [self.get(path).status for _ in range(4)]
        self.assertEqual(got, [500] * 4)

    def test_opens_fails_fast_and_closes_after_a_good_trial(self):
        self.start(["A"])
        self.upstream("cb", ["A"], circuitBreaker=BREAKER, healthCheck=NO_HEALTH)
        self.settle()
        self.open_breaker("/cb/x")
        seen = self.hits("A")
        r, took = self.elapsed(lambda: self.get("/cb/x"))
        self.assertEqual(r.status, 503)
        self.assertEqual(error_code(r), "circuit_open")
        self.assertEqual(r.header("retry-after"), "1")
        self.assertLess(took, 0.5)
        for _ in range(10):
            self.assertEqual(self.get("/cb/x").status, 503)
        self.assert_logged("cb", 503, "open")
        self.assertEqual(self.hits("A"), seen, "an open breaker let requests through")
        ready = self.c.status(self.dp, "/health/ready")
        self.assertEqual(ready.status, 200)  # reported, not a reason to leave rotation
        self.assertEqual(ready.json()["upstreams"],
                         {"targets": 1, "out_of_rotation": 0, "breakers_open": 1})
        # Healed origin: after openDuration a trial closes the breaker.
        self.control("A", "ok")
        t0 = time.monotonic()
        self.c.poll(lambda: self.get("/cb/x").status == 200, "breaker to close", timeout=10)
        self.assertGreaterEqual(time.monotonic() - t0, 1.0)  # not before openDuration
        self.assertEqual([self.get("/cb/x").status for _ in range(5)], [200] * 5)

    def test_failed_trial_reopens(self):
        self.start(["A"])
        self.upstream("cb", ["A"], circuitBreaker=BREAKER, healthCheck=NO_HEALTH)
        self.settle()
        self.open_breaker("/cb/x")
        seen = self.hits("A")
        self.c.poll(lambda: self.get("/cb/x").status == 500, "half-open trial", timeout=10)
        self.assertEqual(self.hits("A"), seen + 1)  # exactly one trial
        self.assertEqual(error_code(self.get("/cb/x")), "circuit_open")  # open again

    def test_open_breaker_sends_to_fallback(self):
        self.start(["A", "F"])
        self.upstream("spare", ["F"])
        self.upstream("main", ["A"], circuitBreaker=BREAKER, healthCheck=NO_HEALTH,
                      fallback="spare")
        self.settle()
        self.open_breaker("/main/x")
        self.assertEqual(self.served_by("/main/x", 5), ["F"] * 5)
        self.assert_logged("main", 200, "fallback")

    def assert_logged(self, route, status, outcome):
        """The access log names the breaker's outcome for a request to `route`."""
        def seen():
            for l in self.dp.read().splitlines():
                if l.startswith("{") and '"msg":"request"' in l:
                    d = json.loads(l)
                    if (d.get("route"), d.get("status"), d.get("breaker")) == (route, status,
                                                                               outcome):
                        return True
            return False
        self.c.poll(seen, "an access log line for route %s, %d, breaker %s" % (route, status,
                                                                                outcome))

    def test_fallback_is_one_level(self):
        self.start(["A", "F", "T"])
        self.upstream("third", ["T"])
        self.upstream("spare", ["F"], circuitBreaker=BREAKER, healthCheck=NO_HEALTH,
                      fallback="third")
        self.upstream("main", ["A"], circuitBreaker=BREAKER, healthCheck=NO_HEALTH,
                      fallback="spare")
        self.settle()
        self.open_breaker("/main/x")
        self.open_breaker("/spare/x", origin="F")
        self.assertEqual(self.served_by("/spare/x", 2), ["T"] * 2)  # spare's own fallback
        r = self.get("/main/x")  # main -> spare, both open: not on to spare's fallback
        self.assertEqual(error_code(r), "circuit_open")
        self.assertEqual(self.hits("T"), 2)

    def test_state_survives_a_swap_and_resets_when_settings_change(self):
        self.start(["A", "B"])
        self.upstream("cb", ["A"], circuitBreaker=BREAKER, healthCheck=NO_HEALTH)
        self.settle()
        self.open_breaker("/cb/x")
        seen = self.hits("A")
        # An unrelated change: a new generation, the same upstream.
        self.upstream("other", ["B"])
        self.settle()
        self.assertEqual(error_code(self.get("/cb/x")), "circuit_open")
        self.assertEqual(self.hits("A"), seen)
        # New breaker settings: the breaker starts closed.
        self.upstream("cb", ["A"], circuitBreaker=dict(BREAKER, openDuration=60000),
                      healthCheck=NO_HEALTH)
        self.settle()
        self.assertEqual(self.get("/cb/x").status, 500)
        self.assertEqual(self.hits("A"), seen + 1)


if __name__ == "__main__":
    main()
