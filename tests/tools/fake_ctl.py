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
"""

import argparse
import collections
import hashlib
import json
import os
import re
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


# ---- the server ----------------------------------------------------------------------

class FakeCtl:
    """Listens on a Unix socket; talks to the most recent data plane that connected."""

    def __init__(self, socket_path):
        self.socket_path = socket_path
        self.listener = None
        self.conn = None
        self.frames = []          # (monotonic time, type name, dict or raw bytes), all received
        self.cond = threading.Condition()
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
                conn.sendall(encode_frame(PONG, {"applied_version": self.applied_version}))
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

    def send_raw(self, data):
        """Bytes as they are (a bad header, half a frame...) to the current connection."""
        with self.cond:
            conn = self.conn
        if conn is None:
            raise RuntimeError("fake ctl: no data plane connected")
        conn.sendall(data)

    def send(self, msg_type, payload):
        with self.cond:
            conn = self.conn
        if conn is None:
            raise RuntimeError("fake ctl: no data plane connected")
        conn.sendall(encode_frame(msg_type, payload))

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


def main(argv=None):
    ap = argparse.ArgumentParser(description="send a data plane one SNAPSHOT and print its reply")
    ap.add_argument("--socket", required=True, help="Unix socket path to listen on")
    ap.add_argument("--db", required=True, help="a flexgate-ctl database to copy snapshots from")
    ap.add_argument("--mode", choices=("good", "bad-checksum", "bad-config"), default="good")
    ap.add_argument("--version", type=int, help="version number to send (default: stored one, +1 for bad modes)")
    ap.add_argument("--timeout", type=float, default=30)
    args = ap.parse_args(argv)
    snap = latest_snapshot(args.db)
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
