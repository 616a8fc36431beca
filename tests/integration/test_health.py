#!/usr/bin/env python3
"""test_health.py - active health checks (issue 6): GET healthCheck.path every interval.

An origin told to fail (or hang past the check's timeout) is taken out of rotation after
unhealthyThreshold failed checks, without any request having to fail on it first; told to
recover, it is back after healthyThreshold good checks. Passive ejection is off here
(consecutiveFailures 0), so the checks alone decide.
"""

from harness import main
from traffic_checks import TrafficTest

CHECKS = {"enabled": True, "path": "/healthz", "interval": 200, "timeout": 300,
          "unhealthyThreshold": 2, "healthyThreshold": 2, "consecutiveFailures": 0}


class Health(TrafficTest):
    label = "health"

    def check_takes_out_and_back(self, mode):
        self.start(["A", "B"])
        self.upstream("h", ["A", "B"], healthCheck=CHECKS)
        self.settle()
        self.assertEqual(sorted(set(self.served_by("/h/x", 4))), ["A", "B"])
        # The checks reach the origins on their own.
        self.c.poll(lambda: self.hits("A") >= 6, "health checks to reach A", timeout=10)
        self.control("A", mode)
        before = self.hits("A")
        # Two failed checks (plus the interval) later A is out; no request was sent meanwhile.
        self.c.poll(lambda: self.hits("A") >= before + 3, "checks to keep coming", timeout=10)
        self.assertEqual(self.served_by("/h/x", 10), ["B"] * 10)
        ups = self.c.status(self.dp, "/health/ready").json()["upstreams"]
        self.assertEqual(ups, {"targets": 2, "out_of_rotation": 1, "breakers_open": 0})
        self.control("A", "ok")
        self.c.poll(lambda: "A" in self.served_by("/h/x", 2), "A back after good checks",
                    timeout=10)

    def test_failing_check_takes_target_out_and_back(self):
        self.check_takes_out_and_back("fail")

    def test_hanging_check_times_out(self):
        self.check_takes_out_and_back("hang")


if __name__ == "__main__":
    main()
