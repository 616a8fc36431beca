#!/usr/bin/env python3
"""test_conformance.py - every http-desync-guardian case against a real flexgate-dp.

The cases (../shared/conformance/http-desync-guardian/*.yaml beside the checkout, or
FG_CONFORMANCE_DIR; the README beside them says what each tier requires) are request heads
with an expected tier.
Each runs as a subTest over a raw socket to a data plane whose one route ("/*") leads to the
test origin (tests/tools/origin.py, which echoes what it received):

  Severe                 400 (or 501 for an unknown transfer coding), the connection closed,
                         and the origin received nothing.
  Ambiguous              either refused like Severe, or forwarded *normalised*: the origin
                         received exactly one request, with the body the gateway framed, no
                         header a server could mistake for Content-Length/Transfer-Encoding,
                         and the connection stays usable for a follow-up request.
  Compliant, Acceptable  forwarded: 200 from the origin, which saw the same body.

A request is built from the YAML as written: the request line, each header as
"Name:" + value (a value not starting with whitespace gets one space), Host added when
absent. YAML escapes such as \\x11 become that byte; characters above U+00FF are sent as
UTF-8. A forwarded request with a body gets one: Content-Length bytes, or a small chunked body
when the message is chunked.

DEVIATIONS lists the few cases where the gateway deliberately does something stricter than
the tier asks, each with the RFC rule that requires it; those cases are asserted to be
refused (so the test still fails if the behaviour changes).
"""

import glob
import hashlib
import json
import os
import re
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

import yaml  # noqa: E402  (python3-yaml, deploy/install-deps.sh)

def _cases_dir():
    """FG_CONFORMANCE_DIR, else ../shared beside the checkout (where CI puts it), else the
    workplace's /work/shared. A missing directory fails the test; it never skips."""
    if os.environ.get("FG_CONFORMANCE_DIR"):
        return os.environ["FG_CONFORMANCE_DIR"]
    src = os.environ.get("FG_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
    beside = os.path.join(os.path.abspath(src), "..", "shared", "conformance",
                          "http-desync-guardian")
    return beside if os.path.isdir(beside) else "/work/shared/conformance/http-desync-guardian"


CASES_DIR = _cases_dir()
IO_TIMEOUT = 5.0
CHUNKED_BODY = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
CHUNKED_PAYLOAD = b"hello world"
FRAMING = ("contentlength", "transferencoding")

# (file, case name) -> why the gateway refuses a case its tier would let through.
_WS_COLON = "RFC 9112 5.1: a server MUST reject whitespace between a field name and its colon"
_NAME_TOKEN = ("RFC 9110 5.1: a field name is a token; llhttp cannot parse a name with a "
               "control byte, so the gateway cannot forward it (nginx drops such fields)")
_TE_PARAM = ("`chunked` takes no parameters (RFC 9112 7); a coding the gateway cannot frame "
             "by is refused, as nginx does")
_CTL_VALUE = ("header hygiene (issue 5): a control byte in a field value is refused (400), so "
              "no upstream or log ever receives one")
_VERSION = "HTTP/0.9 is not served: 505 (nginx answers 0.9 without headers only)"
DEVIATIONS = {
    ("acceptable.yaml", "No TE/CL headers, some others are non-compliant"): _WS_COLON,
    ("acceptable.yaml", "TE and some others are non-compliant"): _WS_COLON,
    ("acceptable.yaml", "CL and some others are non-compliant"): _WS_COLON,
    ("acceptable.yaml", "A non-essential header with a non-printable character (x01)"):
        _NAME_TOKEN,
    ("bad-header-characters.yaml", "Some-Header\\x01"): _NAME_TOKEN,
    ("bad-header-characters.yaml", "\\x01Some-Header"): _NAME_TOKEN,
    ("bad-header-characters.yaml", "Some-Header: \\x01value"): _CTL_VALUE,
    ("bad-header-characters.yaml", "Some-Header: value\\x01"): _CTL_VALUE,
    ("acceptable.yaml", "Non-RFC, but OK HTTP/0.9"): _VERSION,
    ("acceptable.yaml", "Empty version, which means HTTP/0.9"): _VERSION,
    ("more-compliant-tests.yaml", "TE with custom parameters OK"): _TE_PARAM,
    ("rfc-compliant.yaml", "Transfer-Encoding with a param: chunked;custom_param"): _TE_PARAM,
    ("rfc-compliant.yaml", "Empty URI"):
        "RFC 9112 3.2: the request-target is never empty; 400",
}


def load_cases():
    files = sorted(glob.glob(os.path.join(CASES_DIR, "*.yaml")))
    if not files:
        raise AssertionError("no conformance cases in %s (set FG_CONFORMANCE_DIR)" % CASES_DIR)
    out = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            for case in yaml.safe_load(f) or []:
                out.append((os.path.basename(path), case))
    return out


def to_bytes(text):
    text = "" if text is None else str(text)
    try:
        return text.encode("latin-1")  # \x01, \xa0: the byte itself
    except UnicodeEncodeError:
        return text.encode("utf-8")


def squash(name):
    """A header name reduced to its letters, lowercased: what a lax server might match."""
    return re.sub(r"[^a-z]", "", name.lower())


def build_request(case, host):
    method = to_bytes(case.get("method"))
    uri = to_bytes(case.get("uri"))
    version = to_bytes(case.get("version"))
    line = method + b" " + uri + (b" " + version if version else b"")
    lines = [line]
    has_host = False
    cl = None
    te = []
    for h in case.get("headers") or []:
        name, value = to_bytes(h.get("name")), to_bytes(h.get("value"))
        if name.lower() == b"host":
            has_host = True
        if name.lower() == b"content-length":
            cl = value.strip()
        if name.lower() == b"transfer-encoding":
            te.append(value.strip().lower())
        sep = b":" if value[:1] in (b" ", b"\t") else b": "
        lines.append(name + sep + value)
    if not has_host:
        lines.append(b"Host: " + host)
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    # The body a strict reader frames: chunked when the last coding is chunked, else CL.
    body = b""
    payload = b""
    codings = [c.strip() for v in te for c in v.split(b",") if c.strip()]
    if codings and codings[-1].split(b";")[0].strip() == b"chunked":
        body, payload = CHUNKED_BODY, CHUNKED_PAYLOAD
    elif cl is not None and cl.isdigit() and int(cl) <= (8 << 20):
        payload = body = bytes((i * 7) & 0xFF for i in range(int(cl)))
    return head, body, payload, [c.decode("latin-1") for c in codings]


def read_response(sock, method=b"GET"):
    """(status, headers dict lowercased, body, closed_after, reader)."""
    f = sock.makefile("rb")
    status_line = f.readline(65536)
    if not status_line:
        return None, {}, b"", True, f
    parts = status_line.split(None, 2)
    status = int(parts[1])
    headers = {}
    while True:
        line = f.readline(65536)
        if line in (b"\r\n", b"\n", b""):
            break
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    body = b""
    if method == b"HEAD" or status in (204, 304):
        pass
    elif "content-length" in headers:
        body = f.read(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int(f.readline(1024).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while f.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                break
            body += f.read(size)
            f.read(2)
    closed = headers.get("connection", "").lower() == "close"
    return status, headers, body, closed, f


def peer_closed(sock, f):
    """True when the server closed the connection (EOF) within IO_TIMEOUT."""
    try:
        return f.read(1) == b""
    except (ConnectionResetError, socket.timeout):
        return False


class Conformance(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        c = cls.c = harness.Cluster("conformance")
        try:
            cls.origin = c.start_origin("A")
            c.start_ctl()
            c.route_all_to("A")
            cls.dp = c.start_dp("dp-c")
            c.wait_dp_ready(cls.dp, version=c.config_version())
        except BaseException:
            c.close()
            raise
        cls.cases = load_cases()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.c.stop_all_checked()
        finally:
            cls.c.close()

    probes = 0

    def origin_total(self):
        """Requests the origin has received, not counting these /__stats probes."""
        r = harness.one_shot(self.origin.port, "GET", "/__stats")
        type(self).probes += 1
        return r.json()["total"] - type(self).probes

    def exchange(self, head, body):
        s = socket.create_connection(("127.0.0.1", self.dp.port), timeout=IO_TIMEOUT)
        try:
            s.sendall(head + body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return s

    def assert_refused(self, what, head, body):
        before = self.origin_total()
        s = self.exchange(head, body)
        try:
            status, headers, rbody, _, f = read_response(s)
            self.assertIn(status, (400, 501, 505), "%s: want 400/501/505, got %r %r"
                          % (what, status, rbody[:200]))
            self.assertEqual(headers.get("connection", "").lower(), "close",
                             "%s: a refusal must close the connection" % what)
            self.assertTrue(peer_closed(s, f), "%s: connection not closed" % what)
        finally:
            s.close()
        self.assertEqual(self.origin_total(), before, "%s: the origin received it" % what)

    def assert_forwarded(self, what, head, body, payload, may_refuse=False, method=b"GET",
                         codings=()):
        """Forwarded with the body the gateway framed; returns False when refused and
        may_refuse (Ambiguous), after checking the refusal was clean."""
        before = self.origin_total()
        s = self.exchange(head, body)
        try:
            status, headers, rbody, closed, f = read_response(s, method)
            if may_refuse and status in (400, 501, 505):
                self.assertEqual(headers.get("connection", "").lower(), "close", what)
                if method == b"HEAD":
                    # Refused before its method was parsed (a control byte, issue 5): the
                    # error carries its JSON body, then the connection closes.
                    f.read(int(headers.get("content-length", "0")))
                self.assertTrue(peer_closed(s, f), "%s: refused but not closed" % what)
                self.assertEqual(self.origin_total(), before,
                                 "%s: refused, yet the origin received it" % what)
                return False
            self.assertEqual(status, 200, "%s: want 200 from the origin, got %r %r"
                             % (what, status, rbody[:300]))
            if method == b"HEAD":
                # No body to read the origin's report from: ask what it last received.
                self.assertIn("x-origin", headers, what)
                return True
            info = json.loads(rbody)
            self.assertIn("origin", info, what)
            self.assertEqual(info["body_length"], len(payload),
                             "%s: origin body length" % what)
            self.assertEqual(info["body_sha256"], hashlib.sha256(payload).hexdigest(),
                             "%s: origin body" % what)
            names = [n for n, _ in info["header_list"]]
            framing = [n for n in names if n.lower() in ("content-length",
                                                         "transfer-encoding")]
            self.assertLessEqual(len(framing), 1, "%s: origin saw %r" % (what, framing))
            te = [v for n, v in info["header_list"] if n.lower() == "transfer-encoding"]
            if body is CHUNKED_BODY:
                # The codings travel unchanged, on one line, still ending in chunked.
                self.assertEqual([[c.strip().lower() for c in v.split(",")] for v in te],
                                 [[c.lower() for c in codings]], what)
            elif payload:
                cl = [v for n, v in info["header_list"] if n.lower() == "content-length"]
                self.assertEqual(cl, [str(len(payload))], what)
                self.assertEqual(te, [], what)
            lookalike = [n for n in names if squash(n) in FRAMING
                         and n.lower() not in ("content-length", "transfer-encoding")]
            self.assertEqual(lookalike, [], "%s: framing look-alike forwarded" % what)
            if not closed:
                # The connection must still be at a request boundary: a follow-up works.
                s.sendall(b"GET /follow-up HTTP/1.1\r\nHost: x\r\n\r\n")
                st2, _, b2, _, _ = read_response(s)
                self.assertEqual(st2, 200, "%s: follow-up on the same connection" % what)
                self.assertEqual(json.loads(b2)["path"], "/follow-up", what)
        finally:
            s.close()
        self.assertGreaterEqual(self.origin_total() - before, 1, what)
        return True

    def test_cases(self):
        host = ("127.0.0.1:%d" % self.dp.port).encode()
        counts = {}
        for fname, case in self.cases:
            tier = case["expected"]["tier"]
            name = case.get("name", "?")
            what = "%s: %s [%s]" % (fname, name, tier)
            head, body, payload, codings = build_request(case, host)
            method = to_bytes(case.get("method"))
            with self.subTest(case=what):
                if (fname, name) in DEVIATIONS or tier == "Severe":
                    self.assert_refused(what, head, body)
                    outcome = "refused"
                elif tier == "Ambiguous":
                    outcome = ("forwarded" if self.assert_forwarded(what, head, body, payload,
                                                                    may_refuse=True,
                                                                    method=method,
                                                                    codings=codings)
                               else "refused")
                elif tier in ("Compliant", "Acceptable"):
                    self.assert_forwarded(what, head, body, payload, method=method,
                                          codings=codings)
                    outcome = "forwarded"
                else:
                    self.fail("%s: unknown tier %r" % (what, tier))
                counts[(tier, outcome)] = counts.get((tier, outcome), 0) + 1
        sys.stderr.write("conformance: %s\n" % ", ".join(
            "%s %s: %d" % (t, o, n) for (t, o), n in sorted(counts.items())))
        self.assertEqual(sum(counts.values()), len(self.cases))
        self.assertTrue(self.dp.alive())


if __name__ == "__main__":
    harness.main()
