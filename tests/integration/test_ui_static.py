#!/usr/bin/env python3
"""test_ui_static.py - how flexgate-ctl serves the console's files under /ui/.

Content types by extension, the security headers (a Content-Security-Policy without inline
script, frame-ancestors 'none', nosniff, Referrer-Policy), caching (no-cache plus ETag and
Last-Modified for pages and modules, 304 on a matching validator, a max-age for images), 404
for anything that is not a served file, and no way out of the UI directory: "..", its
percent-encoded forms, empty segments, dot-files, backslashes and symlinks (to a file or to a
directory on the way) are all refused. Also checks that the shipped ui/ needs no inline
script or style and references only files that are served.
"""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import ClusterTest  # noqa: E402

SECRET = b"top secret, outside the UI directory\n"


def raw_get(port, target, extra=b""):
    """GET with the request target sent byte for byte (no client-side normalisation)."""
    return harness.raw_request(port, b"GET " + target.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1"
                               b"\r\nConnection: close\r\n" + extra + b"\r\n")


class StaticServing(ClusterTest):
    label = "uistatic"

    def make_tree(self):
        root = os.path.join(self.c.tmp, "ui")
        outside = os.path.join(self.c.tmp, "outside")
        os.makedirs(os.path.join(root, "sub"))
        os.makedirs(os.path.join(root, "empty"))
        os.makedirs(outside)
        files = {
            "index.html": b"<!doctype html><title>t</title>",
            "app.js": b"export const x = 1;\n",
            "style.css": b"body{}\n",
            "icon.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
            "data.json": b"{}",
            "notes.xyz": b"unknown extension",
            ".hidden.js": b"dot-file",
            "sub/index.html": b"<!doctype html><title>sub</title>",
            "sub/mod.mjs": b"export {};\n",
        }
        for name, body in files.items():
            with open(os.path.join(root, name), "wb") as f:
                f.write(body)
        for name in ("secret.js", "passwd.js"):
            with open(os.path.join(outside, name), "wb") as f:
                f.write(SECRET)
        os.symlink(os.path.join(outside, "secret.js"), os.path.join(root, "link.js"))
        os.symlink(outside, os.path.join(root, "linkdir"))
        return root, files

    def test_headers_caching_and_confinement(self):
        root, files = self.make_tree()
        self.c.start_ctl(extra_args=("--ui-dir", root))
        port = self.c.ctl.admin_port
        get = lambda target, **kw: raw_get(port, target, **kw)  # noqa: E731

        # content types, bodies and the security headers
        types = {"/ui/": "text/html; charset=utf-8", "/ui/app.js": "text/javascript; charset=utf-8",
                 "/ui/style.css": "text/css; charset=utf-8", "/ui/icon.svg": "image/svg+xml",
                 "/ui/data.json": "application/json", "/ui/sub/": "text/html; charset=utf-8",
                 "/ui/sub/mod.mjs": "text/javascript; charset=utf-8"}
        for target, ctype in types.items():
            r = get(target)
            self.assertEqual(r.status, 200, target)
            self.assertEqual(r.header("Content-Type"), ctype, target)
            name = target[len("/ui/"):] or "index.html"
            name = name + "index.html" if name.endswith("/") else name
            self.assertEqual(r.body, files[name], target)
            csp = r.header("Content-Security-Policy")
            self.assertIsNotNone(csp, target)
            directives = dict((d.strip().split(" ", 1) + [""])[:2] for d in csp.split(";"))
            self.assertEqual(directives.get("default-src"), "'self'")
            self.assertEqual(directives.get("frame-ancestors"), "'none'")
            self.assertEqual(directives.get("object-src"), "'none'")
            self.assertNotIn("unsafe-inline", csp)
            self.assertNotIn("unsafe-eval", csp)
            for d in ("script-src", "style-src", "connect-src"):
                self.assertEqual(directives.get(d), "'self'", d)
            self.assertEqual(r.header("X-Content-Type-Options"), "nosniff", target)
            self.assertEqual(r.header("Referrer-Policy"), "no-referrer", target)
            self.assertEqual(r.header("X-Frame-Options"), "DENY", target)
            self.assertRegex(r.header("ETag") or "", r'^"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+"$', target)
            self.assertRegex(r.header("Last-Modified") or "",
                             r"^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$")
            want_cache = "public, max-age=86400" if target.endswith(".svg") else "no-cache"
            self.assertEqual(r.header("Cache-Control"), want_cache, target)
        self.assertEqual(harness.one_shot(port, "HEAD", "/ui/app.js").body, b"")

        # revalidation: 304 with the same validators and no body; a changed file is re-sent
        r = get("/ui/app.js")
        etag, lm = r.header("ETag"), r.header("Last-Modified")
        for extra in (b"If-None-Match: " + etag.encode(), b"If-None-Match: W/" + etag.encode(),
                      b'If-None-Match: "nope", ' + etag.encode(), b"If-None-Match: *",
                      b"If-Modified-Since: " + lm.encode()):
            r304 = get("/ui/app.js", extra=extra + b"\r\n")
            self.assertEqual(r304.status, 304, extra)
            self.assertEqual(r304.body, b"", extra)
            self.assertEqual(r304.header("ETag"), etag, extra)
            self.assertEqual(r304.header("Cache-Control"), "no-cache", extra)
        for extra in (b'If-None-Match: "0-0-0"', b"If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT",
                      b'If-None-Match: "nope"\r\nIf-Modified-Since: ' + lm.encode()):
            self.assertEqual(get("/ui/app.js", extra=extra + b"\r\n").status, 200, extra)
        with open(os.path.join(root, "app.js"), "wb") as f:
            f.write(b"export const x = 2; // changed\n")
        r = get("/ui/app.js", extra=b"If-None-Match: " + etag.encode() + b"\r\n")
        self.assertEqual(r.status, 200, "a changed file must not be answered 304")
        self.assertNotEqual(r.header("ETag"), etag)
        self.assertEqual(r.body, b"export const x = 2; // changed\n")

        # redirects, methods
        for target in ("/", "/ui"):
            r = get(target)
            self.assertEqual((r.status, r.header("Location")), (302, "/ui/"), target)
        r = harness.one_shot(port, "POST", "/ui/app.js", body=b"x")
        self.assertEqual((r.status, r.header("Allow")), (405, "GET"))

        # 404 for what is not a served file, and for every way out of the directory
        refused = ["/ui/missing.js", "/ui/notes.xyz", "/ui/.hidden.js", "/ui/empty/", "/ui/sub",
                   "/ui/link.js", "/ui/linkdir/secret.js", "/ui/linkdir/passwd.js",
                   "/ui/../outside/secret.js", "/ui/sub/../app.js", "/ui/./app.js",
                   "/ui/%2e%2e/outside/secret.js", "/ui/%2E%2E/outside/secret.js",
                   "/ui/..%2foutside%2fsecret.js", "/ui/..%2Foutside/secret.js",
                   "/ui/sub/..%2f..%2foutside/secret.js", "/ui/%2e%2e%2f%2e%2e%2fetc/passwd",
                   "/ui/%252e%252e/outside/secret.js", "/ui//etc/passwd", "/ui/%2fetc/passwd",
                   "/ui/..%5coutside%5csecret.js", "/ui/..\\outside\\secret.js",
                   "/ui/%2e/app.js", "/ui/" + "a/" * 3000 + "x.js"]
        for target in refused:
            r = get(target)
            self.assertIn(r.status, (400, 404), target)
            self.assertNotIn(SECRET.strip(), r.body, target)
            if r.status == 404:
                self.assertEqual(r.header("X-Content-Type-Options"), "nosniff", target)
        self.assertEqual(get("/ui/missing.js").json()["error"]["code"], "not_found")
        # libmicrohttpd decodes %00 and the path ends there: at most the file before it
        r = get("/ui/app.js%00.html")
        if r.status != 404:
            self.assertEqual((r.status, r.header("Content-Type")),
                             (200, "text/javascript; charset=utf-8"))
            self.assertEqual(r.body, b"export const x = 2; // changed\n")

    def test_shipped_console_has_no_inline_code_and_no_dangling_reference(self):
        """CSP forbids inline script and style: the pages must not need them; every file the
        pages and modules load is in ui/ and is served with its type."""
        ui = os.path.join(harness.SOURCE_DIR, "ui")
        self.c.start_ctl(extra_args=("--ui-dir", ui))
        port = self.c.ctl.admin_port
        served = set()
        for dirpath, _, names in os.walk(ui):
            for name in names:
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, ui)
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                if name.endswith(".html"):
                    self.assertNotRegex(text, r"<script(?![^>]*\bsrc=)", "inline script in " + rel)
                    self.assertNotRegex(text, r"<style|\sstyle=|\son[a-z]+=", "inline style/handler in " + rel)
                    refs = re.findall(r'(?:src|href)="([^"#:]+)"', text)
                elif name.endswith(".js"):
                    self.assertNotRegex(text, r"\.innerHTML\b|\.outerHTML\b|insertAdjacentHTML|\beval\(|new Function\(|"
                                        r"setAttribute\('style'",
                                        "markup or code built from strings in " + rel)
                    refs = re.findall(r"^import .* from '([^']+)';", text, re.M)
                else:
                    continue
                for ref in refs:
                    target = os.path.normpath(os.path.join(os.path.dirname(rel), ref))
                    served.add(target)
        self.assertIn("js/app.js", served)
        for rel in sorted(served):
            r = harness.one_shot(port, "GET", "/ui/" + rel)
            self.assertEqual(r.status, 200, rel)
            self.assertNotEqual(r.header("Content-Type"), "application/octet-stream", rel)


if __name__ == "__main__":
    harness.main()
