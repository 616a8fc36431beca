#!/usr/bin/env python3
"""test_admin_api.py - the admin REST API's contract (issue 2).

Authentication (401 + WWW-Authenticate without the bearer token, the generated token file),
create/read/update/delete of upstreams and routes with X-Config-Version, and every refusal
(400 malformed JSON, 404, 405, 409 duplicate / in_use, 413 over 1 MiB, 422 naming the field)
leaving the config version and the stored entities unchanged; ETag/If-Match (412 on a stale
write); SQL metacharacters in every string field either refused by name or stored verbatim.
"""

import os
import re
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from admin_checks import MAX_BODY, AdminTest  # noqa: E402



class AdminApi(AdminTest):
    """start() and assert_error() come from admin_checks.AdminTest, shared with the other
    admin API tests."""

    def test_token_required_on_api_but_not_on_health(self):
        self.start()
        v = self.c.config_version()
        for method, path in (("GET", "/api/v1/upstreams"), ("GET", "/api/v1/routes"),
                             ("GET", "/api/v1/dataplanes"), ("GET", "/api/v1/upstreams/x"),
                             ("DELETE", "/api/v1/routes/x")):
            for token in (False, "wrong-" + self.c.token, self.c.token[:-1]):
                r = self.c.api(method, path, token=token)
                self.assert_error(r, 401, what="%s %s token=%r" % (method, path, token))
                self.assertTrue((r.header("WWW-Authenticate") or "").startswith("Bearer"),
                                "WWW-Authenticate on 401: %r" % r.headers.items())
            # The right token clears this address's failures before the lockout's limit.
            self.assertEqual(self.c.api("GET", "/api/v1/upstreams").status, 200)
        r = self.c.api("GET", "/api/v1/upstreams", headers={"Authorization": "Basic " + self.c.token},
                       token=False)
        self.assertEqual(r.status, 401, "Basic scheme is not a bearer token")
        r = self.c.api("POST", "/api/v1/upstreams", {"name": "x", "url": self.url}, token=False)
        self.assert_error(r, 401, what="POST without token")
        self.assertEqual(self.c.config_version(), v, "a refused POST changes nothing")
        self.assertEqual(self.c.api("GET", "/api/v1/upstreams/x").status, 404)
        for path in ("/health/live", "/health/ready"):
            self.assertEqual(self.c.api("GET", path, token=False).status, 200, path)

    def test_crud_bumps_version_once_per_mutation(self):
        self.start()
        v = self.c.config_version()
        lst = self.c.api_ok("GET", "/api/v1/upstreams", expect=200).json()
        self.assertEqual(lst["items"], [])

        r = self.c.api_ok("POST", "/api/v1/upstreams", {"name": "backend", "url": self.url},
                          expect=201)
        self.assertEqual(int(r.header("X-Config-Version")), v + 1)
        self.assertEqual(r.header("Location"), "/api/v1/upstreams/backend")
        up = r.json()
        self.assertEqual(up["name"], "backend")
        self.assertEqual(up["url"], self.url)
        self.assertIn("timeout", up, "canonical JSON writes defaults out")
        self.assertIn("retries", up)
        self.assertEqual(self.c.api_ok("GET", "/api/v1/upstreams/backend", expect=200).json(), up)

        r = self.c.api_ok("PUT", "/api/v1/upstreams/backend",
                          {"name": "backend", "url": self.url, "timeout": 7000, "retries": 2},
                          expect=200)
        self.assertEqual(int(r.header("X-Config-Version")), v + 2)
        self.assertEqual(r.json()["timeout"], 7000)
        self.assertEqual(r.json()["retries"], 2)
        # PUT without "name" takes it from the URL.
        r = self.c.api_ok("PUT", "/api/v1/upstreams/backend", {"url": self.url, "timeout": 6000},
                          expect=200)
        self.assertEqual(r.json()["name"], "backend")
        self.assertEqual(int(r.header("X-Config-Version")), v + 3)

        r = self.c.api_ok("POST", "/api/v1/routes", {"path": "/gen/*", "upstream": "backend"},
                          expect=201)
        self.assertEqual(int(r.header("X-Config-Version")), v + 4)
        rid = r.json()["id"]
        self.assertRegex(rid, r"^route-\d+$", "generated route id")
        self.assertEqual(r.header("Location"), "/api/v1/routes/" + rid)
        got = self.c.api_ok("GET", "/api/v1/routes/" + rid, expect=200).json()
        self.assertEqual(got["path"], "/gen/*")
        self.assertEqual(got["upstream"], "backend")
        r = self.c.api_ok("PUT", "/api/v1/routes/" + rid,
                          {"id": rid, "path": "/gen2/*", "upstream": "backend"}, expect=200)
        self.assertEqual(r.json()["path"], "/gen2/*")
        lst = self.c.api_ok("GET", "/api/v1/routes", expect=200).json()
        self.assertEqual([x["id"] for x in lst["items"]], [rid])
        self.assertEqual(lst["config_version"], v + 5)

        self.c.api_ok("DELETE", "/api/v1/routes/" + rid, expect=204)
        r = self.c.api_ok("DELETE", "/api/v1/upstreams/backend", expect=204)
        self.assertEqual(int(r.header("X-Config-Version")), v + 7)
        self.assertEqual(self.c.api_ok("GET", "/api/v1/upstreams", expect=200).json(),
                         {"items": [], "config_version": v + 7})

    def test_refusals_change_nothing(self):
        self.start()
        self.c.api_ok("POST", "/api/v1/upstreams", {"name": "backend", "url": self.url}, expect=201)
        self.c.api_ok("POST", "/api/v1/routes",
                      {"id": "users", "path": "/api/users/*", "upstream": "backend"}, expect=201)
        v = self.c.config_version()
        up_before = self.c.api_ok("GET", "/api/v1/upstreams/backend", expect=200).json()
        route_before = self.c.api_ok("GET", "/api/v1/routes/users", expect=200).json()
        url = self.url

        cases = [
            # (what, method, path, body, status, code, field)
            ("timeout of the wrong type", "POST", "/api/v1/upstreams",
             {"name": "u2", "url": url, "timeout": "soon"}, 422, None, "timeout"),
            ("negative retries", "POST", "/api/v1/upstreams",
             {"name": "u2", "url": url, "retries": -1}, 422, None, "retries"),
            ("missing url", "POST", "/api/v1/upstreams", {"name": "u2"}, 422, None, "url"),
            ("not an http url", "POST", "/api/v1/upstreams",
             {"name": "u2", "url": "ftp://127.0.0.1/"}, 422, None, "url"),
            ("bad name", "POST", "/api/v1/upstreams",
             {"name": "bad name!", "url": url}, 422, None, "name"),
            ("unknown key", "POST", "/api/v1/upstreams",
             {"name": "u2", "url": url, "colour": "red"}, 422, None, "colour"),
            ("route with an unknown upstream", "POST", "/api/v1/routes",
             {"id": "r2", "path": "/r2", "upstream": "nope"}, 422, None, "upstream"),
            ("route path without a slash", "POST", "/api/v1/routes",
             {"id": "r2", "path": "r2", "upstream": "backend"}, 422, None, "path"),
            ("PUT route to an unknown upstream", "PUT", "/api/v1/routes/users",
             {"id": "users", "path": "/api/users/*", "upstream": "nope"}, 422, None, "upstream"),
            ("PUT upstream with a bad timeout", "PUT", "/api/v1/upstreams/backend",
             {"name": "backend", "url": url, "timeout": "x"}, 422, None, "timeout"),
            ("delete an upstream a route uses", "DELETE", "/api/v1/upstreams/backend", None,
             409, "in_use", None),
            ("duplicate upstream name", "POST", "/api/v1/upstreams",
             {"name": "backend", "url": url}, 409, None, None),
            ("duplicate route id", "POST", "/api/v1/routes",
             {"id": "users", "path": "/other", "upstream": "backend"}, 409, None, None),
            ("malformed JSON", "POST", "/api/v1/upstreams", b'{"name": "u2", "url": ', 400,
             None, None),
            ("malformed JSON on PUT", "PUT", "/api/v1/routes/users", b"[", 400, None, None),
            ("empty body", "POST", "/api/v1/routes", b"", 400, None, None),
            ("unknown upstream", "GET", "/api/v1/upstreams/nope", None, 404, None, None),
            ("PUT unknown upstream", "PUT", "/api/v1/upstreams/nope",
             {"name": "nope", "url": url}, 404, None, None),
            ("DELETE unknown route", "DELETE", "/api/v1/routes/nope", None, 404, None, None),
            ("unknown resource", "GET", "/api/v1/nothing", None, 404, None, None),
            ("DELETE on a collection", "DELETE", "/api/v1/upstreams", None, 405, None, None),
            ("POST to dataplanes", "POST", "/api/v1/dataplanes", {}, 405, None, None),
        ]
        for what, method, path, body, status, code, field in cases:
            with self.subTest(what):
                headers = {"Content-Type": "application/json"} if isinstance(body, bytes) else None
                r = self.c.api(method, path, body, headers=headers)
                self.assert_error(r, status, code, field, what)
                self.assertEqual(self.c.config_version(), v, "%s changed the version" % what)

        with self.subTest("PUT whose body names another upstream"):
            r = self.c.api("PUT", "/api/v1/upstreams/backend", {"name": "other", "url": url})
            self.assertIn(r.status, (400, 422), r)
            self.assert_error(r, r.status, what="PUT name mismatch")
            self.assertEqual(self.c.config_version(), v)

        with self.subTest("body over 1 MiB"):
            body = b'{"name":"big","url":"%s","x":"' % url.encode()
            body += b"a" * (MAX_BODY + 16 - len(body) - 2) + b'"}'
            req = (b"POST /api/v1/upstreams HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\nConnection: close\r\n\r\n"
                   % (self.c.token.encode(), len(body))) + body
            r = harness.raw_request(self.c.ctl.admin_port, req)
            self.assert_error(r, 413, what="oversized body")
            self.assertEqual(self.c.config_version(), v)

        with self.subTest("a body just under the limit is read (and judged on content)"):
            body = b'{"name":"big","url":"%s","x":"' % url.encode()
            body += b"a" * (MAX_BODY - 64 - len(body)) + b'"}'
            r = self.c.api("POST", "/api/v1/upstreams", body,
                           headers={"Content-Type": "application/json"})
            self.assert_error(r, 422, field="x", what="1 MiB - 64 bytes with an unknown key")

        self.assertEqual(self.c.api_ok("GET", "/api/v1/upstreams/backend", expect=200).json(),
                         up_before)
        self.assertEqual(self.c.api_ok("GET", "/api/v1/routes/users", expect=200).json(),
                         route_before)
        self.assertEqual(self.c.api_ok("GET", "/api/v1/upstreams", expect=200).json()["items"],
                         [up_before])
        self.assertEqual(self.c.config_version(), v)

    def test_etag_and_if_match(self):
        """Every entity GET carries its revision as ETag; a PUT or DELETE with an older
        If-Match is refused with 412 and changes nothing; a matching one goes through."""
        self.start()
        self.c.api_ok("POST", "/api/v1/upstreams", {"name": "backend", "url": self.url}, expect=201)
        self.c.api_ok("POST", "/api/v1/routes", {"id": "r", "path": "/r", "upstream": "backend"},
                      expect=201)
        for path, body in (("/api/v1/upstreams/backend", {"url": self.url, "timeout": 1000}),
                           ("/api/v1/routes/r", {"path": "/r2", "upstream": "backend"})):
            with self.subTest(path):
                r = self.c.api_ok("GET", path, expect=200)
                self.assertEqual(r.header("ETag"), '"1"')
                r = self.c.api("PUT", path, body, headers={"If-Match": '"1"'})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.header("ETag"), '"2"')
                after = self.c.api_ok("GET", path, expect=200).body
                v = self.c.config_version()
                for method in ("PUT", "DELETE"):
                    r = self.c.api(method, path, body if method == "PUT" else None,
                                   headers={"If-Match": '"1"'})
                    self.assert_error(r, 412, "precondition_failed", what="stale " + method)
                    r = self.c.api(method, path, body if method == "PUT" else None,
                                   headers={"If-Match": "1"})
                    self.assert_error(r, 400, what="unquoted If-Match on " + method)
                self.assertEqual(self.c.config_version(), v)
                self.assertEqual(self.c.api_ok("GET", path, expect=200).body, after)
                self.assertEqual(self.c.api_ok("GET", path, expect=200).header("ETag"), '"2"')
        r = self.c.api("DELETE", "/api/v1/routes/r", headers={"If-Match": '"2"'})
        self.assertEqual(r.status, 204, r)
        r = self.c.api("DELETE", "/api/v1/upstreams/backend", headers={"If-Match": '"2"'})
        self.assertEqual(r.status, 204, r)

    def test_sql_metacharacters_in_string_fields(self):
        """Every string field of upstreams and routes, given text that would break a query
        pasted together from strings: either refused naming the field (version unchanged,
        nothing stored) or stored and read back byte for byte -- never anything else."""
        from admin_checks import SQL_METACHARS
        self.start()
        self.c.api_ok("POST", "/api/v1/upstreams", {"name": "backend", "url": self.url}, expect=201)
        self.c.api_ok("POST", "/api/v1/routes", {"id": "r", "path": "/r", "upstream": "backend"},
                      expect=201)
        reads = ["/api/v1/upstreams", "/api/v1/routes", "/api/v1/keys", "/api/v1/settings"]
        for sql in SQL_METACHARS:
            refused = [
                ("/api/v1/upstreams", {"name": sql, "url": self.url}, "name"),
                ("/api/v1/upstreams", {"name": "u", "url": sql}, "url"),
                ("/api/v1/upstreams", {"name": "u", "url": self.url, "fallback": sql}, "fallback"),
                ("/api/v1/upstreams", {"name": "u", "url": self.url, "loadBalancing": sql},
                 "loadBalancing"),
                ("/api/v1/upstreams", {"name": "u", "url": self.url, "hashOn": sql}, "hashOn"),
                ("/api/v1/routes", {"id": sql, "path": "/x", "upstream": "backend"}, "id"),
                ("/api/v1/routes", {"id": "x", "path": "/x", "upstream": sql}, "upstream"),
                ("/api/v1/routes", {"id": "x", "path": "/x", "upstream": "backend",
                                    "hosts": [sql]}, "hosts[0]"),
                ("/api/v1/routes", {"id": "x", "path": "/x", "upstream": "backend",
                                    "methods": [sql]}, "methods[0]"),
                ("/api/v1/routes", {"id": "x", "path": "/x", "upstream": "backend",
                                    "auth": sql}, "auth"),
                ("/api/v1/routes", {"id": "x", "path": "/x", "upstream": "backend",
                                    "requestHeaders": {"add": {sql: "v"}}},
                 "requestHeaders.add." + sql),
            ]
            v = self.c.config_version()
            before = {p: self.c.api_ok("GET", p, expect=200).body for p in reads}
            for path, body, field in refused:
                with self.subTest(sql=sql, field=field):
                    r = self.c.api("POST", path, body)
                    err = self.assert_error(r, 422, "validation_failed", what="%r in %s" % (sql, field))
                    self.assertTrue(err.get("field", "").startswith(field.split(".")[0]), err)
                    self.assertEqual(self.c.config_version(), v)
            for p in reads:
                self.assertEqual(self.c.api_ok("GET", p, expect=200).body, before[p], p)

        # Free-text fields take the text as data.
        for i, sql in enumerate(SQL_METACHARS):
            with self.subTest(stored=sql):
                body = {"id": "t%d" % i, "path": "/t%d" % i, "upstream": "backend",
                        "requestHeaders": {"add": {"X-Note": sql}},
                        "rateLimit": {"max": 1, "windowMs": 1000, "message": sql}}
                got = self.c.api_ok("POST", "/api/v1/routes", body, expect=201).json()
                again = self.c.api_ok("GET", "/api/v1/routes/t%d" % i, expect=200).json()
                for r in (got, again):
                    self.assertEqual(r["requestHeaders"]["add"]["X-Note"], sql)
                    self.assertEqual(r["rateLimit"]["message"], sql)
        ids = [r["id"] for r in self.c.api_ok("GET", "/api/v1/routes", expect=200).json()["items"]]
        self.assertEqual(ids, ["r"] + ["t%d" % i for i in range(len(SQL_METACHARS))])
        ups = self.c.api_ok("GET", "/api/v1/upstreams", expect=200).json()["items"]
        self.assertEqual([u["name"] for u in ups], ["backend"])

    def test_generated_token_file(self):
        c = self.c
        ctl = c.start_ctl(use_env_token=False, wait=False)
        token_path = os.path.join(os.path.dirname(ctl.db), "admin.token")
        # stdout is a file here, not a terminal: it says where the token is, never the token.
        line = c.poll(lambda: re.search(r"admin token generated and saved to (.+) \(mode 0600\)",
                                        ctl.read("stdout")),
                      "flexgate-ctl to print `admin token generated and saved to <path>`",
                      harness.START_TIMEOUT)
        self.assertEqual(os.path.realpath(line.group(1)), os.path.realpath(token_path))
        c.wait_ctl_ready()
        st = os.stat(token_path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600, "token file mode")
        with open(token_path) as f:
            token = f.read().strip()
        self.assertRegex(token, r"^[0-9a-f]{64}$")
        self.assertNotIn(token, ctl.read("stdout"), "the token must not be printed to a log")
        self.assertEqual(c.api("GET", "/api/v1/upstreams", token=token).status, 200)
        self.assertEqual(c.api("GET", "/api/v1/upstreams", token=token[::-1]).status, 401)
        self.assertEqual(c.api("GET", "/api/v1/upstreams", token=False).status, 401)
        self.assertNotIn(token, ctl.read("stderr"), "the token must not be logged")

        # Restart: the same token is read back, and not printed again.
        rc, killed = ctl.stop()
        self.assertEqual(rc, 0, "flexgate-ctl exit status on SIGTERM")
        self.assertFalse(killed)
        ctl2 = c.start_ctl(db=ctl.db, socket_path=ctl.socket_path, use_env_token=False,
                           name="ctl2")
        self.assertEqual(c.api("GET", "/api/v1/upstreams", token=token).status, 200)
        self.assertNotIn(token, ctl2.read("stdout"), "token printed only on first start")
        with open(token_path) as f:
            self.assertEqual(f.read().strip(), token)


if __name__ == "__main__":
    harness.main()
