#!/usr/bin/env python3
"""test_overload.py - priority shedding past proxy.maxPending (issue 6).

maxPending 4, routes of priority 0 (low) and 10 (high), both to an origin whose /slow keeps
requests pending. With 4 low-priority requests pending, the next low one is shed (503
`overloaded`, Retry-After) and never reaches the origin, while a high-priority one is served;
once the pending requests finish, low-priority requests are served again.
"""

import json

from harness import error_code, main
from traffic_checks import TrafficTest

SLOW = "/low/slow?ms=2500"
OVERLOAD_PAIRS = 24  # shed-then-served pairs; about 1.5 of 24 successes are expected logged
PENDING = 4


class Overload(TrafficTest):
    label = "overload"

    def test_lowest_priority_is_shed_first(self):
        self.start(["A"])
        self.c.api_ok("PUT", "/api/v1/settings/proxy", {"maxPending": PENDING})
        self.upstream("low", ["A"])
        self.route("high", "low", priority=10)
        self.settle()
        threads = [self.in_background(self.get, SLOW) for _ in range(PENDING)]
        self.wait_in_flight("A", PENDING)
        seen = self.hits("A")
        r = self.get("/low/x")
        self.assertEqual(r.status, 503)
        self.assertEqual(error_code(r), "overloaded")
        self.assertEqual(r.header("retry-after"), "1")
        self.assertEqual(self.hits("A"), seen)  # shed before reaching the origin
        self.assertEqual(self.get("/high/x").status, 200)
        # While it sheds, the data plane logs successes at 1/DP_ACCESSLOG_OVERLOAD_KEEP of the
        # configured rate (errors all): each high-priority request below follows a shed.
        mark = self.dp.log_mark()
        for _ in range(OVERLOAD_PAIRS):
            self.assertEqual(self.get("/low/x").status, 503)
            self.assertEqual(self.get("/high/x").status, 200)
        # (the access log is buffered: wait for every 503's line)
        lines = self.c.poll(lambda: (lambda ls: ls if sum(1 for l in ls if l["status"] == 503)
                                     >= OVERLOAD_PAIRS else None)(self.access_lines(mark)),
                            "the 503s' access lines")
        kept = sum(1 for l in lines if l["status"] == 200)
        self.assertLess(kept, OVERLOAD_PAIRS // 2, "successes not sampled down under overload")
        for t, result in threads:
            t.join(10)
            self.assertEqual(result[0].status, 200)
        self.assertEqual(self.get("/low/x").status, 200)
        # Once nothing has been shed for a while, every success is logged again.
        mark = self.dp.log_mark()
        self.c.poll(lambda: self.get("/high/x").status == 200 and any(
            l["status"] == 200 for l in self.access_lines(mark)), "successes logged again")

    def access_lines(self, mark):
        return [json.loads(l) for l in self.dp.read()[mark:].splitlines()
                if l.startswith("{") and '"msg":"request"' in l]

    def test_zero_turns_shedding_off(self):
        self.start(["A"])
        self.c.api_ok("PUT", "/api/v1/settings/proxy", {"maxPending": 0})
        self.upstream("low", ["A"])
        self.settle()
        threads = [self.in_background(self.get, SLOW) for _ in range(PENDING)]
        self.wait_in_flight("A", PENDING)
        self.assertEqual(self.get("/low/x").status, 200)
        for t, _ in threads:
            t.join(10)


if __name__ == "__main__":
    main()
