#!/usr/bin/env python3
"""fake_ctl.py - a second, independent implementation of the control plane's side of the
snapshot protocol (proto/PROTOCOL.md), for feeding a data plane arbitrary SNAPSHOTs.

Frames are `u32 big-endian payload length | u8 type | JSON payload`; types HELLO=1
SNAPSHOT=2 ACK=3 NACK=4 PING=5 PONG=6. This server accepts a data plane on a Unix socket,
records every frame it receives (HELLO, ACK, NACK, PING, PONG), answers PING with PONG, and
sends whatever SNAPSHOT payload a test hands it -- including ones a real flexgate-ctl never
would: a wrong checksum, or a config the validator refuses.

Valid payloads are copied verbatim from a real control plane's SQLite `snapshots` table
(version, checksum, created_at, config), read with sqlite3 (read-only when SQLite allows).

As a module (tests/integration/test_snapshot_nack.py):
    ctl = FakeCtl(sock_path); ctl.start()
    hello = ctl.wait_hello(timeout=10)
    row = latest_snapshot(db_path)
    ctl.send_snapshot(snapshot_payload(row.version, row.checksum, row.created_at, row.config))
    kind, msg = ctl.wait_reply(row.version, timeout=10)   # ("ACK", {...}) or ("NACK", {...})

From the shell (send the newest stored snapshot, or a broken variant, and print the reply):
    fake_ctl.py --socket /tmp/x.sock --db var/flexgate.db [--mode good|bad-checksum|bad-config]

Bulk configs for benchmarks (tests/bench/routes.sh): `bulk_config()` turns a stored snapshot
into one with N routes over realistic paths, as one snapshot, without the admin API. With
`--routes N --serve`, this serves that snapshot to every data plane that says HELLO, until
SIGTERM, and appends one JSON line per reply to `--report` (data plane pid, ACK/NACK, time
from sending the snapshot to its ACK -- decode, validation, checksum and generation build,
during which the data plane's single loop serves nothing else):
    fake_ctl.py --socket /tmp/x.sock --db ctl.db --routes 100000 --serve --report r.jsonl
"""

import argparse
import collections
import hashlib
import json
import os
import re
import signal
import socket
import sqlite3
import struct
import sys
import threading
import time

HELLO, SNAPSHOT, ACK, NACK, PING, PONG = 1, 2, 3, 4, 5, 6
TYPE_NAMES = {HELLO: "HELLO", SNAPSHOT: "SNAPSHOT", ACK: "ACK", NACK: "NACK",
              PING: "PING", PONG: "PONG"}
HEADER = struct.Struct(">IB")
MAX_PAYLOAD = 64 * 1024 * 1024
READ_CHUNK = 65536

Snapshot = collections.namedtuple("Snapshot", "version checksum created_at config")


# ---- payloads ------------------------------------------------------------------------

def sha256_hex(text):
    if isinstance(text, str):
        text = text.encode()
    return hashlib.sha256(text).hexdigest()


def snapshot_payload(version, checksum, created_at, config_text):
    """A SNAPSHOT payload with `config_text` embedded verbatim (the checksum covers exactly
    those bytes, so it must not be re-serialised)."""
    if isinstance(config_text, bytes):
        config_text = config_text.decode()
    head = '{"version":%d,"checksum":%s,"created_at":%s,"config":' % (
        int(version), json.dumps(checksum), json.dumps(created_at))
    return (head + config_text + "}").encode()


def encode_frame(msg_type, payload):
    if isinstance(payload, (dict, list)):
        payload = json.dumps(payload, separators=(",", ":")).encode()
    elif isinstance(payload, str):
        payload = payload.encode()
    return HEADER.pack(len(payload), msg_type) + payload


def _snapshot_columns(conn):
    cols = [r[1] for r in conn.execute("PRAGMA table_info(snapshots)")]
    if not cols:
        raise RuntimeError("database has no `snapshots` table")

    def pick(*names):
        for n in names:
            if n in cols:
                return n
        raise RuntimeError("snapshots table lacks any of %s (has %s)" % (names, cols))

    return (pick("version", "config_version", "id"), pick("checksum", "sha256"),
            pick("created_at", "created"), pick("config", "config_json", "payload", "body"))


def load_snapshots(db_path):
    """Every stored snapshot, oldest first, as Snapshot tuples (config as text)."""
    try:
        conn = sqlite3.connect("file:%s?mode=ro" % os.path.abspath(db_path), uri=True, timeout=5)
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1")
    except sqlite3.Error:
        # A WAL database may need its -shm file created, which read-only mode cannot do.
        conn = sqlite3.connect(db_path, timeout=5)
    try:
        v, c, t, cfg = _snapshot_columns(conn)
        rows = conn.execute('SELECT "%s","%s","%s","%s" FROM snapshots ORDER BY "%s"'
                            % (v, c, t, cfg, v)).fetchall()
    finally:
        conn.close()
    out = []
    for version, checksum, created_at, config in rows:
        if isinstance(config, bytes):
            config = config.decode()
        if isinstance(created_at, (int, float)):
            created_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created_at))
        out.append(Snapshot(int(version), str(checksum), str(created_at), config))
    return out


def latest_snapshot(db_path):
    rows = load_snapshots(db_path)
    if not rows:
        raise RuntimeError("no snapshot stored in %s" % db_path)
    return rows[-1]


def with_bad_checksum(snap, version):
    """`snap` renumbered to `version`, with a checksum that is valid hex but wrong."""
    good = snap.checksum.lower()
    bad = ("0" if good[0] != "0" else "1") + good[1:]
    return snapshot_payload(version, bad, snap.created_at, snap.config)


def with_unknown_upstream(snap, version, missing="no-such-upstream"):
    """`snap` renumbered to `version`, with every route's upstream renamed to one that does
    not exist, and the correct sha256 of the edited config text. The edit keeps the text
    canonical (same key order, compact), so only the validator can refuse it."""
    config, n = re.subn(r'("upstream":)"[^"]*"', r'\1"%s"' % missing, snap.config)
    if n == 0:
        raise RuntimeError("snapshot %d has no route to break" % snap.version)
    return snapshot_payload(version, sha256_hex(config), snap.created_at, config)


def renumbered(snap, version):
    """`snap` as a valid snapshot of another version (the checksum covers only config)."""
    return snapshot_payload(version, snap.checksum, snap.created_at, snap.config)


# ---- bulk configs (benchmarks) --------------------------------------------------------

BULK_RESOURCES = ("users", "orders", "items", "carts", "invoices", "products", "payments",
                  "sessions", "reviews", "search")
BULK_ROUTES_PER_SERVICE = 20   # routes per generated service (and upstream)


def bulk_route_path(i):
    """The path of generated route i: services of 20 routes, each an API version (v1, v2) x
    ten resources; three routes in four are prefix routes ("/api/v1/svc-7/orders/*"), the
    fourth exact ("/api/v2/svc-7/carts"). Paths are unique and 3-4 segments deep."""
    svc, j = divmod(i, BULK_ROUTES_PER_SERVICE)
    base = "/api/v%d/svc-%d/%s" % (1 + j // 10, svc, BULK_RESOURCES[j % 10])
    return base if i % 4 == 3 else base + "/*"


def bulk_bench_route(n_routes):
    """Index of the route a benchmark requests through: the middle one, rounded down to a
    prefix route, so it is never the first and the path depth is the same for every N."""
    i = n_routes // 2
    return i - 1 if i % 4 == 3 else i


def bulk_config(template_text, n_routes, catch_all=False):
    """Canonical config text with `n_routes` generated routes (bulk_route_path) over
    ceil(n / 20) upstreams "svc-K", all copies of the template's first upstream (same URL),
    and the template's first route as the pattern of every route. `catch_all` makes the last
    of the n routes a "/*" (the benchmark of tests/bench/proxy.sh requests "/"), so n up to
    FG_MAX_ROUTES stays a valid config. Returns
    (config_text, path of the benchmarked route).

    The text is the template's, re-serialised compactly in key order, which is the canonical
    form as long as the template round-trips unchanged -- checked here, so a change of the
    canonical encoding fails loudly instead of producing snapshots the data plane NACKs."""
    cfg = json.loads(template_text, object_pairs_hook=collections.OrderedDict)
    if _compact(cfg) != template_text:
        raise RuntimeError("template config is not in the compact form this generator writes")
    if not cfg.get("upstreams") or not cfg.get("routes"):
        raise RuntimeError("template config needs at least one upstream and one route")
    if n_routes < (2 if catch_all else 1):
        raise RuntimeError("n_routes must be at least %d" % (2 if catch_all else 1))
    up_t, route_t = cfg["upstreams"][0], cfg["routes"][0]
    if catch_all:
        n_routes -= 1  # the catch-all is one of the n
    n_up = (n_routes + BULK_ROUTES_PER_SERVICE - 1) // BULK_ROUTES_PER_SERVICE
    upstreams = []
    for k in range(n_up):
        u = collections.OrderedDict(up_t)
        u["name"] = "svc-%d" % k
        upstreams.append(u)
    routes = []
    for i in range(n_routes):
        r = collections.OrderedDict(route_t)
        r["id"] = "r-%d" % i
        r["path"] = bulk_route_path(i)
        r["upstream"] = "svc-%d" % (i // BULK_ROUTES_PER_SERVICE)
        routes.append(r)
    if catch_all:
        r = collections.OrderedDict(route_t)
        r["id"], r["path"], r["upstream"] = "catch-all", "/*", "svc-0"
        routes.append(r)
    cfg["upstreams"], cfg["routes"] = upstreams, routes
    path = bulk_route_path(bulk_bench_route(n_routes))
    return _compact(cfg), path[:-2] + "/42" if path.endswith("/*") else path


def _compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# ---- the server ----------------------------------------------------------------------

class FakeCtl:
    """Listens on a Unix socket; talks to the most recent data plane that connected."""

    def __init__(self, socket_path):
        self.socket_path = socket_path
        self.listener = None
        self.conn = None
        self.frames = []          # (monotonic time, type name, dict or raw bytes), all received
        self.cond = threading.Condition()
        # One writer at a time: a PONG from the reader thread must never land in the middle
        # of a large SNAPSHOT being written by the test's thread.
        self.send_lock = threading.Lock()
        self.send_timeout = 60.0  # s for one whole frame (a 25 MB snapshot to a busy peer)
        self.stopping = False
        self.threads = []
        self.connections = 0
        self.applied_version = 0  # what we answer in PONG: the last version ACKed to us
        self.answer_pings = True  # False: stay silent (to test the peer's liveness timeout)

    def start(self):
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.socket_path)
        self.listener.listen(8)
        self.listener.settimeout(0.2)
        t = threading.Thread(target=self._accept_loop, name="fake-ctl-accept", daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def _accept_loop(self):
        while not self.stopping:
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(0.2)
            with self.cond:
                old, self.conn = self.conn, conn
                self.connections += 1
                self.cond.notify_all()
            if old is not None:
                _close_quietly(old)
            t = threading.Thread(target=self._read_loop, args=(conn,), daemon=True,
                                 name="fake-ctl-read")
            t.start()
            self.threads.append(t)

    def _read_loop(self, conn):
        buf = b""
        while not self.stopping:
            try:
                data = conn.recv(READ_CHUNK)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            buf += data
            while len(buf) >= HEADER.size:
                length, msg_type = HEADER.unpack_from(buf)
                if length > MAX_PAYLOAD:
                    self._record("OVERSIZE", {"length": length})
                    _close_quietly(conn)
                    return
                if len(buf) < HEADER.size + length:
                    break
                payload = buf[HEADER.size:HEADER.size + length]
                buf = buf[HEADER.size + length:]
                self._on_frame(conn, msg_type, payload)
        self._record("CLOSED", {})

    def _on_frame(self, conn, msg_type, payload):
        name = TYPE_NAMES.get(msg_type, "TYPE_%d" % msg_type)
        try:
            body = json.loads(payload.decode())
        except (UnicodeDecodeError, ValueError):
            body = {"_raw": payload}
        if name == "ACK" and isinstance(body, dict) and isinstance(body.get("version"), int):
            self.applied_version = body["version"]
        if name == "PING" and self.answer_pings:
            try:
                self._send_all(conn, encode_frame(PONG, {"applied_version": self.applied_version}))
            except OSError:
                pass
        self._record(name, body)

    def _record(self, name, body):
        with self.cond:
            self.frames.append((time.monotonic(), name, body))
            self.cond.notify_all()

    # -- what tests call ---------------------------------------------------------------
    def mark(self):
        """How many frames have arrived so far; pass as wait_for(since=...)."""
        with self.cond:
            return len(self.frames)

    def wait_for(self, predicate, timeout, what, since=0):
        """Wait until predicate(type name, body) holds for a frame received after the first
        `since` ones; return that frame's (type name, body). Besides message types, the
        recorded names include "CLOSED" (the data plane's connection ended) and "OVERSIZE".
        Raises TimeoutError naming `what` and listing what did arrive."""
        deadline = time.monotonic() + timeout
        seen = since
        with self.cond:
            while True:
                for frame in self.frames[seen:]:
                    if predicate(frame[1], frame[2]):
                        return frame[1], frame[2]
                seen = max(seen, len(self.frames))
                left = deadline - time.monotonic()
                if left <= 0:
                    got = [(n, b) for _, n, b in self.frames]
                    raise TimeoutError("fake ctl: no %s within %.1fs; received %r"
                                       % (what, timeout, got[-10:]))
                self.cond.wait(min(left, 0.2))

    def wait_hello(self, timeout=10):
        return self.wait_for(lambda n, b: n == "HELLO", timeout, "HELLO")[1]

    def wait_reply(self, version, timeout=10, since=0):
        """The ACK or NACK for `version`: ("ACK"|"NACK", body)."""
        return self.wait_for(
            lambda n, b: n in ("ACK", "NACK") and isinstance(b, dict) and b.get("version") == version,
            timeout, "ACK/NACK for version %d" % version, since)

    def _send_all(self, conn, data):
        """All of `data`, under the send lock. The connection's 0.2 s timeout serves the
        reader's polling; sendall() would count it against the whole frame, so write in a
        loop with our own deadline instead."""
        view = memoryview(data)
        deadline = time.monotonic() + self.send_timeout
        with self.send_lock:
            while view:
                try:
                    view = view[conn.send(view):]
                except socket.timeout:
                    if time.monotonic() > deadline:
                        raise
                except InterruptedError:
                    continue

    def send_raw(self, data):
        """Bytes as they are (a bad header, half a frame...) to the current connection."""
        with self.cond:
            conn = self.conn
        if conn is None:
            raise RuntimeError("fake ctl: no data plane connected")
        self._send_all(conn, data)

    def send(self, msg_type, payload):
        with self.cond:
            conn = self.conn
        if conn is None:
            raise RuntimeError("fake ctl: no data plane connected")
        self._send_all(conn, encode_frame(msg_type, payload))

    def send_snapshot(self, payload):
        self.send(SNAPSHOT, payload)

    def received(self, name=None):
        with self.cond:
            return [(n, b) for _, n, b in self.frames if name is None or n == name]

    def close(self):
        self.stopping = True
        with self.cond:
            conn, self.conn = self.conn, None
        if conn is not None:
            _close_quietly(conn)
        if self.listener is not None:
            _close_quietly(self.listener)
        for t in self.threads:
            t.join(timeout=2)
        try:
            os.unlink(self.socket_path)
        except OSError:
            pass


def _close_quietly(s):
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass


def serve_bulk(args, snap):
    """--routes N --serve: send the generated snapshot to every data plane that connects
    without it already applied (a HELLO with that applied_version gets nothing, as from a
    real control plane), report each reply, until SIGTERM/SIGINT."""
    config, path = bulk_config(snap.config, args.routes, catch_all=args.catch_all)
    version = args.version or snap.version + 1
    payload = snapshot_payload(version, sha256_hex(config), snap.created_at, config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    ctl = FakeCtl(args.socket).start()
    print("serving %d routes (%d bytes, version %d, bench path %s) on %s"
          % (args.routes, len(payload), version, path, args.socket), flush=True)
    seen = 0
    try:
        while not stop.is_set():
            try:
                _, hello = ctl.wait_for(lambda n, b: n == "HELLO", 0.5, "HELLO", seen)
            except TimeoutError:
                continue
            seen = ctl.mark()
            if hello.get("applied_version") == version:
                continue  # as a real control plane: nothing to send to an up-to-date peer
            t0 = time.monotonic()
            ctl.send_snapshot(payload)
            kind, body = ctl.wait_reply(version, args.timeout, since=seen)
            apply_ms = (time.monotonic() - t0) * 1000
            seen = ctl.mark()
            line = json.dumps({"routes": args.routes, "version": version, "reply": kind,
                               "error": body.get("error"), "pid": hello.get("pid"),
                               "apply_ms": round(apply_ms, 1), "payload_bytes": len(payload),
                               "bench_path": path})
            print(line, flush=True)
            if args.report:
                with open(args.report, "a") as f:
                    f.write(line + "\n")
    finally:
        ctl.close()
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description="send a data plane one SNAPSHOT and print its reply")
    ap.add_argument("--socket", required=True, help="Unix socket path to listen on")
    ap.add_argument("--db", required=True, help="a flexgate-ctl database to copy snapshots from")
    ap.add_argument("--mode", choices=("good", "bad-checksum", "bad-config"), default="good")
    ap.add_argument("--version", type=int, help="version number to send (default: stored one, +1 for bad modes)")
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--routes", type=int, help="send a generated config with this many routes "
                    "(bulk_config), built from the stored snapshot's first upstream and route")
    ap.add_argument("--catch-all", action="store_true", help="with --routes: add a route /*")
    ap.add_argument("--serve", action="store_true", help="with --routes: keep serving every "
                    "data plane that connects until SIGTERM")
    ap.add_argument("--report", help="with --serve: append one JSON line per reply here")
    args = ap.parse_args(argv)
    snap = latest_snapshot(args.db)
    if args.routes is not None:
        if args.mode != "good":
            ap.error("--routes sends good snapshots only")
        if args.serve:
            return serve_bulk(args, snap)
        config, _ = bulk_config(snap.config, args.routes, catch_all=args.catch_all)
        snap = Snapshot(snap.version, sha256_hex(config), snap.created_at, config)
    version = args.version or (snap.version if args.mode == "good" else snap.version + 1)
    payload = {"good": lambda: renumbered(snap, version),
               "bad-checksum": lambda: with_bad_checksum(snap, version),
               "bad-config": lambda: with_unknown_upstream(snap, version)}[args.mode]()
    ctl = FakeCtl(args.socket).start()
    try:
        print("waiting for a data plane on %s" % args.socket, flush=True)
        print("HELLO %s" % json.dumps(ctl.wait_hello(args.timeout)), flush=True)
        ctl.send_snapshot(payload)
        kind, body = ctl.wait_reply(version, args.timeout)
        print("%s %s" % (kind, json.dumps(body)), flush=True)
        return 0 if (kind == "ACK") == (args.mode == "good") else 1
    finally:
        ctl.close()


if __name__ == "__main__":
    sys.exit(main())
