#!/usr/bin/env python3
"""dns_server.py - a tiny authoritative DNS server over UDP for tests (standard library only).

Answers A queries for the names it holds with the address and TTL set for them, AAAA queries
for those names with no records (NOERROR, empty), and anything else with NXDOMAIN. Tests run
it in-process (DnsServer(...).start(), set(name, ip, ttl)) and point a data plane at it with a
resolv.conf naming `nameserver 127.0.0.1:PORT`. It counts the A queries per name, so a test can
see when the data plane re-resolved.

    dns_server.py --listen 127.0.0.1:5353 --record svc.test=127.0.0.2:1   (standalone)
"""

import argparse
import socket
import struct
import threading

MAX_PACKET = 512


class DnsServer:
    def __init__(self, host="127.0.0.1", port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.records = {}        # lowercased name without the final dot -> (ip, ttl)
        self.queries = {}        # name -> A queries answered
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def set(self, name, ip, ttl):
        with self.lock:
            self.records[name.lower().rstrip(".")] = (ip, ttl)

    def count(self, name):
        with self.lock:
            return self.queries.get(name.lower().rstrip("."), 0)

    def start(self):
        self.thread.start()
        return self

    def close(self):
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()

    def serve(self):
        while not self.stopping.is_set():
            try:
                data, peer = self.sock.recvfrom(MAX_PACKET)
            except socket.timeout:
                continue
            except OSError:
                return
            reply = self.answer(data)
            if reply:
                self.sock.sendto(reply, peer)

    def answer(self, data):
        if len(data) < 12:
            return None
        qid, flags, qdcount = struct.unpack("!HHH", data[:6])
        if qdcount != 1 or flags & 0x8000:
            return None
        labels, pos = [], 12
        while pos < len(data) and data[pos] != 0:
            n = data[pos]
            labels.append(data[pos + 1:pos + 1 + n].decode("ascii", "replace"))
            pos += 1 + n
        if pos + 5 > len(data):
            return None
        qtype, qclass = struct.unpack("!HH", data[pos + 1:pos + 5])
        question = data[12:pos + 5]
        name = ".".join(labels).lower()
        with self.lock:
            rec = self.records.get(name)
            if rec and qtype == 1:
                self.queries[name] = self.queries.get(name, 0) + 1
        rd = flags & 0x0100
        if rec is None:
            return struct.pack("!HHHHHH", qid, 0x8080 | rd | 3, 1, 0, 0, 0) + question
        if qtype != 1:  # AAAA and the rest: the name exists, no such records
            return struct.pack("!HHHHHH", qid, 0x8480 | rd, 1, 0, 0, 0) + question
        ip, ttl = rec
        rr = struct.pack("!HHHIH", 0xC00C, 1, 1, ttl, 4) + socket.inet_aton(ip)
        return struct.pack("!HHHHHH", qid, 0x8480 | rd, 1, 1, 0, 0) + question + rr


def main():
    ap = argparse.ArgumentParser(description="tiny test DNS server (A records)")
    ap.add_argument("--listen", default="127.0.0.1:5353")
    ap.add_argument("--record", action="append", default=[], help="NAME=IP:TTL")
    args = ap.parse_args()
    host, _, port = args.listen.rpartition(":")
    srv = DnsServer(host, int(port))
    for r in args.record:
        name, _, rest = r.partition("=")
        ip, _, ttl = rest.partition(":")
        srv.set(name, ip, int(ttl or 1))
    print("listening %s:%d" % (host, srv.port), flush=True)
    try:
        srv.serve()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
