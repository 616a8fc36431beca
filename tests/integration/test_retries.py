#!/usr/bin/env python3
"""test_retries.py - retries to another target (issue 6), against origins told to fail.

A GET that gets a 5xx from one target is retried on the other; a POST that reached a failing
target is not (its 5xx is relayed), but a POST whose connect failed is; the global retry budget
caps retries at a share of traffic; the whole-request timeout bounds every attempt together.
Passive ejection is off here (consecutiveFailures 0) so only retries are at work.
"""

import time

from harness import main
from traffic_checks import TrafficTest

NO_EJECT = {"enabled": False, "consecutiveFailures": 0}  # passive off, no active checks


class Retries(TrafficTest):
    label = "retries"

    def test_get_5xx_is_retried_on_the_other_target(self):
        self.start(["A", "B"])
        self.upstream("r", ["A", "B"], retries=1, healthCheck=NO_EJECT)
        self.upstream("n", ["A", "B"], retries=0, healthCheck=NO_EJECT)
        self.settle()
        self.control("A", "fail", status=503)
        self.assertEqual(self.served_by("/r/x", 20), ["B"] * 20)
        self.assertGreaterEqual(self.hits("A"), 5)  # A was tried, and its 503 never relayed
        # Without retries, round-robin hands A's 503 to the client half the time.
        got = self.served_by("/n/x", 10)
        self.assertEqual(got.count(None), 5, got)

    def test_post_that_reached_the_upstream_is_not_retried(self):
        self.start(["A", "B"])
        self.upstream("p", ["A", "B"], retries=2, healthCheck=NO_EJECT)
        self.settle()
        self.control("A", "fail", status=502)
        got = self.served_by("/p/x", 10, method="POST", body=b"payload")
        self.assertEqual(got.count(None), 5, got)
        self.assertEqual(self.hits("A"), 5, (got, self.c.context()))

    def test_connect_failure_is_retried_even_for_post(self):
        self.start(["A", "B"])
        self.upstream("c", ["A", "B"], retries=1, healthCheck=NO_EJECT)
        self.settle()
        self.c.origins["A"].kill()
        got = self.served_by("/c/x", 10, method="POST", body=b"payload")
        self.assertEqual(got, ["B"] * 10)

    def test_retry_budget_caps_retries(self):
        """retryBudget 0: only the reserve of 10 retries a second is left. 60 failing GETs with
        retries 3 would make 240 attempts without a budget."""
        self.start(["A"])
        self.c.api_ok("PUT", "/api/v1/settings/proxy", {"retryBudget": 0})
        self.upstream("b", ["A"], retries=3)
        self.settle()
        self.control("A", "fail", status=503)
        t0 = time.monotonic()
        got = self.served_by("/b/x", 60)
        elapsed = time.monotonic() - t0
        self.assertEqual(got, [None] * 60)
        retries = self.hits("A") - 60
        self.assertGreater(retries, 0)
        self.assertLessEqual(retries, 10 + 10 * elapsed + 1, (retries, elapsed))

    def test_whole_request_timeout_bounds_all_attempts(self):
        """Both targets hang; each attempt times out after the upstream's 800 ms, and retries
        5 would take 4.8 s; the route's 2 s timeout ends the request."""
        self.start(["A", "B"])
        self.upstream("t", ["A", "B"], retries=5, timeout=800, healthCheck=NO_EJECT)
        self.c.api_ok("DELETE", "/api/v1/routes/t")
        self.route("t", "t", timeout=2000)
        self.settle()
        self.control("A", "hang")
        self.control("B", "hang")
        r, took = self.elapsed(lambda: self.get("/t/x", timeout=10))
        self.assertEqual(r.status, 504)
        self.assertGreater(took, 1.5)
        self.assertLess(took, 3.0)
        self.assertGreaterEqual(self.hits("A") + self.hits("B"), 2)  # it did retry


if __name__ == "__main__":
    main()
