#!/usr/bin/env python3
"""test_paths.py - request path normalisation against a real flexgate-dp (issue 5).

Raw sockets throughout (a client library would clean the paths up first). Two origins stand
behind two routes, /public/* and /admin/*, so a test sees which route a request reached and
the exact path the upstream received:
  * dot segments (also percent-encoded ones) and duplicate slashes are resolved BEFORE
    routing, and the path matched is the path forwarded: "/public/../admin/x" is an /admin
    request and reaches the admin origin as "/admin/x", never the public one;
  * encoded '/' and '\\' (%2F, %5C, any case) and a raw '\\' are refused (400) so that
    "/public/..%2Fadmin" cannot reach /admin through an upstream that decodes it; a route
    with allowEncodedSlashes passes them through undecoded; %00 and malformed escapes are
    always 400;
  * unreserved characters are decoded (%7E -> ~), other escapes kept; the query is untouched;
  * error bodies are static JSON: nothing from the request is echoed.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class Paths(harness.SharedClusterTest):
    label = "paths"

    @classmethod
    def build(cls, c):
        for name in ("pub", "adm", "enc"):
            c.start_origin(name)
        c.start_ctl()
        for name in ("pub", "adm", "enc"):
            c.api_ok("POST", "/api/v1/upstreams", {"name": name, "url": c.origin_url(name)},
                     expect=201)
        for route in ({"id": "public", "path": "/public/*", "upstream": "pub"},
                      {"id": "admin", "path": "/admin/*", "upstream": "adm"},
                      {"id": "enc", "path": "/enc/*", "upstream": "enc",
                       "allowEncodedSlashes": True}):
            c.api_ok("POST", "/api/v1/routes", route, expect=201)
        cls.dp = c.start_dp("dp-p")
        c.wait_dp_ready(cls.dp, version=c.config_version())

    def send(self, target):
        return harness.raw_request(self.dp.port, b"GET " + target +
                                   b" HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")

    def totals(self):
        out = {}
        for name, o in self.c.origins.items():
            r = harness.one_shot(o.port, "GET", "/__stats")
            out[name] = r.json()["total"]
        return out

    def assert_reaches(self, target, origin, path):
        r = self.send(target)
        self.assertTrue(harness.is_origin_json(r, origin),
                        "%r: want origin %s, got %r" % (target, origin, r))
        self.assertEqual(r.json()["path"], path, target)

    def assert_refused(self, target):
        before = self.totals()
        r = self.send(target)
        self.assertEqual(r.status, 400, "%r: %r" % (target, r))
        self.assertEqual(harness.error_code(r), "bad_request", target)
        after = self.totals()
        # Each origin got exactly our own /__stats call, nothing from the refused request.
        self.assertEqual({k: v - before[k] for k, v in after.items()},
                         {k: 1 for k in after}, "%r reached an origin" % target)

    def test_dot_segments_resolved_before_routing(self):
        self.assert_reaches(b"/public/../admin/x", "adm", "/admin/x")
        self.assert_reaches(b"/public/%2e%2e/admin/x", "adm", "/admin/x")
        self.assert_reaches(b"/public/%2E%2e/%2e/admin/y", "adm", "/admin/y")
        self.assert_reaches(b"/admin/../public/z", "pub", "/public/z")
        self.assert_reaches(b"/../../public/etc", "pub", "/public/etc")
        self.assert_reaches(b"/public/./a/b/../c", "pub", "/public/a/c")

    def test_duplicate_slashes_and_unreserved(self):
        self.assert_reaches(b"//public///x//y", "pub", "/public/x/y")
        self.assert_reaches(b"/public/%7Euser/%41%2d", "pub", "/public/~user/A-")
        self.assert_reaches(b"/public/a%20b%3a", "pub", "/public/a%20b%3A")
        self.assert_reaches(b"/public/x?a=%2F&b=../..//", "pub", "/public/x?a=%2F&b=../..//")
        self.assert_reaches(b"http://evil.test/public/abs", "pub", "/public/abs")

    def test_encoded_slashes_refused(self):
        for target in (b"/public/..%2Fadmin", b"/public/..%2fadmin/x", b"/public/..%5Cadmin",
                       b"/public/..%5cadmin", b"/public/..\\admin", b"/public/a%2Fb"):
            self.assert_refused(target)

    def test_nul_and_malformed_escapes_refused(self):
        for target in (b"/public/a%00b", b"/public/%zz", b"/public/a%4", b"/public/a%",
                       b"/enc/a%00b"):
            self.assert_refused(target)

    def test_route_opt_in_passes_encoded_slashes_undecoded(self):
        self.assert_reaches(b"/enc/a%2Fb", "enc", "/enc/a%2Fb")
        self.assert_reaches(b"/enc/..%2F..%2Fadmin", "enc", "/enc/..%2F..%2Fadmin")
        self.assert_reaches(b"/enc/a%5cb", "enc", "/enc/a%5Cb")

    def test_error_bodies_do_not_echo_the_request(self):
        for target, status in ((b"/nowhere/%3Cscript%3Ealert(1)%3C/script%3E", 404),
                               (b"/nowhere/<script>x</script>", 404),
                               (b"/public/<script>%2F", 400)):
            r = self.send(target)
            if r.status == 400 and status == 404:
                continue  # refused by the parser first: also static
            self.assertEqual(r.status, status, target)
            self.assertNotIn(b"script", r.body.lower(), target)
            self.assertEqual(r.header("Content-Type"), "application/json")
            self.assertEqual(set(r.json()["error"]), {"code", "message"})


if __name__ == "__main__":
    harness.main()
