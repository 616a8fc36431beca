#!/usr/bin/env python3
"""test_dns_ttl.py - upstream names are re-resolved on the TTL of their DNS records (issue 6).

A real DNS server (tests/tools/dns_server.py, UDP on loopback) answers svc.test with
127.0.0.1 and a 1 s TTL; the data plane reads it through --resolv-conf. Origin A listens on
127.0.0.1:P, origin B on 127.0.0.2:P. Requests reach A; once the record says 127.0.0.2 they
reach B within a few seconds (a fixed 30 s cache would keep A). With a long TTL the data
plane does not ask again. When the server stops answering, the last addresses stay in use and
requests do not wait for the failing lookups.
"""

import os

import harness
from dns_server import DnsServer
from harness import main
from traffic_checks import TrafficTest


class DnsTtl(TrafficTest):
    label = "dns"

    def setUp(self):
        super().setUp()
        self.dns = DnsServer().start()
        self.addCleanup(self.dns.close)
        self.resolv = os.path.join(self.c.tmp, "resolv.conf")
        with open(self.resolv, "w") as f:
            f.write("nameserver 127.0.0.1:%d\noptions timeout:1 attempts:1\n" % self.dns.port)

    def start_two(self, ttl):
        a = self.c.start_origin("A")
        self.c.start_origin("B", port=a.port, host="127.0.0.2")
        self.dns.set("svc.test", "127.0.0.1", ttl)
        self.c.start_ctl()
        self.dp = self.c.start_dp("dp-a", extra_args=["--resolv-conf", self.resolv])
        self.c.api_ok("POST", "/api/v1/upstreams",
                      {"name": "svc", "url": "http://svc.test:%d" % a.port}, expect=201)
        self.route("svc", "svc")
        self.settle()

    def test_record_change_is_followed_on_its_ttl(self):
        self.start_two(ttl=1)
        self.assertEqual(self.served_by("/svc/x", 3), ["A"] * 3)
        self.dns.set("svc.test", "127.0.0.2", 1)
        self.c.poll(lambda: self.served_by("/svc/x", 1) == ["B"], "requests to follow the record",
                    timeout=8)
        self.assertGreaterEqual(self.dns.count("svc.test"), 2)

    def test_long_ttl_is_kept(self):
        self.start_two(ttl=3600)
        self.assertEqual(self.served_by("/svc/x", 2), ["A"] * 2)
        # The first answer's TTL is unknown (getaddrinfo): one refresh a second later learns it.
        self.c.poll(lambda: self.served_by("/svc/x", 1) and self.dns.count("svc.test") >= 2,
                    "the first refresh", timeout=8)
        asked = self.dns.count("svc.test")
        self.dns.set("svc.test", "127.0.0.2", 3600)
        for _ in range(5):
            self.assertEqual(self.served_by("/svc/x", 1), ["A"])
        self.assertEqual(self.dns.count("svc.test"), asked)  # 3600 s: not asked again

    def test_dead_name_server_keeps_the_last_addresses(self):
        self.start_two(ttl=1)
        self.assertEqual(self.served_by("/svc/x", 2), ["A"] * 2)
        self.dns.close()
        # Refreshes fail from now on (1 s timeout); requests never wait for them.
        for _ in range(4):
            r, took = self.elapsed(lambda: self.get("/svc/x"))
            self.assertEqual(self.origin_of(r), "A")
            self.assertLess(took, 0.5)


if __name__ == "__main__":
    main()
