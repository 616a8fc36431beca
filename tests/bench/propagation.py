#!/usr/bin/env python3
"""propagation.py - how long a REST change takes to reach every data plane (issue 4).

Not a test: a measurement. For each route count it starts one flexgate-ctl with that many
routes, N data planes (Unix socket, or tcp:// with mutual TLS), then makes CHANGES route
updates one after the other (PUT /api/v1/routes/<id> with a new path; each waits for the
previous one to land everywhere, so none is coalesced with another) and reports, per change,
the time from the REST response to the last data plane's ACK.

How it is measured. The REST response time is taken with time.time() as soon as the response
is read. The ACK time is the "ts" of the control plane's "data plane applied snapshot" log
line for that version and data plane: the moment the control plane read the ACK, i.e. after
the data plane verified, built and swapped the config in. Both clocks are this host's wall
clock. The log's ts has millisecond resolution (truncated), so each figure is exact to
about -1/+1 ms (plus the few tens of microseconds Python takes to note the response);
nothing is polled on the data planes, so polling adds no error. The control plane's log is
read until all N ACKs of the version are there (bounded by a deadline).

Loading the routes: `flexgate-ctl import FILE` (YAML, all or nothing) when this build has it,
before the data planes start; otherwise one REST POST per route (each rebuilds the whole
config: O(n^2), fine for 1,000, slow for 10,000; --max-rest-routes caps it).

Usage:
  tests/bench/propagation.py [--build DIR] [--routes 1000,10000] [--dps 8] [--changes 100]
                             [--transport unix|tcp] [--out FILE.json]
                             [--save-db DIR] [--reuse-db DIR]   (load 10,000 routes once)
"""

import argparse
import datetime
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))

ACK_DEADLINE = 30.0     # s: one change must reach every data plane within this
ACK_POLL = 0.0005       # s: between reads of the control plane's log
LOAD_DEADLINE = 600.0   # s: loading the routes and starting the data planes


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.environ.get("FG_BUILD_DIR", os.path.join(SRC, "build")))
    ap.add_argument("--routes", default="1000", help="comma-separated route counts")
    ap.add_argument("--dps", type=int, default=8)
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--transport", choices=("unix", "tcp"), default="unix")
    ap.add_argument("--max-rest-routes", type=int, default=2000,
                    help="without `flexgate-ctl import`, refuse larger counts")
    ap.add_argument("--out", help="also write the results as JSON here")
    ap.add_argument("--save-db", metavar="DIR",
                    help="after loading, copy the database to DIR/routes-N.db (load once)")
    ap.add_argument("--reuse-db", metavar="DIR",
                    help="start from DIR/routes-N.db when it exists instead of loading")
    return ap.parse_args()


def percentile(sorted_values, p):
    """Nearest-rank percentile of a sorted list."""
    k = max(0, min(len(sorted_values) - 1, int(-(-p * len(sorted_values) // 100)) - 1))
    return sorted_values[k]


def ts_to_epoch(ts):
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


class AckLog:
    """Incremental reader of the control plane's log: ACK times per (version, dp_id)."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.partial = b""
        self.acks = {}

    def read(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            if b"data plane applied snapshot" not in line:
                continue
            obj = json.loads(line)
            self.acks.setdefault(int(obj["version"]), {})[obj["dp_id"]] = ts_to_epoch(obj["ts"])

    def wait_all(self, version, n, deadline):
        while True:
            self.read()
            got = self.acks.get(version, {})
            if len(got) >= n:
                return max(got.values())
            if time.monotonic() > deadline:
                raise RuntimeError("version %d: %d of %d ACKs after %.0fs"
                                   % (version, len(got), n, ACK_DEADLINE))
            time.sleep(ACK_POLL)


def have_import(ctl_bin):
    try:
        p = subprocess.run([ctl_bin, "import", "--help"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return p.returncode == 0


def route_yaml(n, origin_url):
    lines = ["upstreams:", '  - name: "backend"', '    url: "%s"' % origin_url, "", "routes:"]
    for i in range(n):
        lines += ['  - id: "r%d"' % i, '    path: "/svc%d/*"' % i, '    upstream: "backend"']
    return "\n".join(lines) + "\n"


def load_routes(c, harness, n, use_import, max_rest):
    """Returns how the routes were loaded."""
    if use_import:
        path = os.path.join(c.tmp, "routes.yaml")
        with open(path, "w") as f:
            f.write(route_yaml(n, c.origin_url("A")))
        p = subprocess.run([harness.CTL_BIN, "import", "--db", c.ctl.db, path],
                           capture_output=True, timeout=LOAD_DEADLINE)
        if p.returncode == 0:
            return "flexgate-ctl import"
        sys.stderr.write("propagation: import failed (%d): %s; using REST\n"
                         % (p.returncode, p.stderr.decode(errors="replace")[-500:]))
    if n > max_rest:
        raise SystemExit("propagation: %d routes need `flexgate-ctl import` (REST loading is "
                         "O(n^2)); raise --max-rest-routes to insist" % n)
    c.api_ok("POST", "/api/v1/upstreams", {"name": "backend", "url": c.origin_url("A")},
             expect=201)
    for i in range(n):
        c.api_ok("POST", "/api/v1/routes",
                 {"id": "r%d" % i, "path": "/svc%d/*" % i, "upstream": "backend"}, expect=201)
    return "REST, one POST per route"


def run_one(harness, n_routes, args, use_import):
    c = harness.Cluster("bench-prop")
    try:
        c.start_origin("A")
        extra = []
        certs = None
        if args.transport == "tcp":
            certs = os.path.join(c.tmp, "pki")
            subprocess.run(["sh", os.path.join(SRC, "deploy", "make-certs.sh"), certs],
                           check=True, stdout=subprocess.DEVNULL, timeout=60)
            tcp_port = harness.free_port()
            extra = ["--dp-listen", "tcp://127.0.0.1:%d" % tcp_port,
                     "--dp-tls-ca", os.path.join(certs, "ca.crt"),
                     "--dp-tls-cert", os.path.join(certs, "ctl.crt"),
                     "--dp-tls-key", os.path.join(certs, "ctl.key")]
        template = args.reuse_db and os.path.join(args.reuse_db, "routes-%d.db" % n_routes)
        db = os.path.join(c.tmp, "ctl", "flexgate.db")
        if template and os.path.exists(template):
            os.makedirs(os.path.dirname(db), exist_ok=True)
            shutil.copyfile(template, db)
        c.start_ctl(db=db, extra_args=extra)
        t0 = time.monotonic()
        if template and os.path.exists(template):
            how = "a saved database (%s)" % template
        else:
            how = load_routes(c, harness, n_routes, use_import, args.max_rest_routes)
        load_s = time.monotonic() - t0
        if args.save_db:
            os.makedirs(args.save_db, exist_ok=True)
            c.api_ok("GET", "/api/v1/routes", expect=200)  # the API has committed everything
            src = sqlite3.connect(db)
            dst = sqlite3.connect(os.path.join(args.save_db, "routes-%d.db" % n_routes))
            src.backup(dst)  # consistent even while the control plane has it open
            src.close()
            # Loading one route per REST call stored one full snapshot per call (10,000
            # routes: ~11 GB of history); the template needs the newest only.
            dst.execute("DELETE FROM snapshots WHERE version < (SELECT max(version) FROM "
                        "snapshots)")
            dst.commit()
            dst.execute("VACUUM")
            dst.close()
        ids = ["dp-%d" % i for i in range(args.dps)]
        for i in ids:
            dp_extra = []
            if certs:
                dp_extra = ["--control", "tcp://127.0.0.1:%d" % tcp_port,
                            "--control-ca", os.path.join(certs, "ca.crt"),
                            "--control-cert", os.path.join(certs, "dp.crt"),
                            "--control-key", os.path.join(certs, "dp.key")]
            c.start_dp(i, wait_ready=False, extra_args=dp_extra)
        doc = c.wait_in_sync(ids, timeout=LOAD_DEADLINE)
        n_cfg = len(c.api_ok("GET", "/api/v1/routes", expect=200).json()["items"])
        if n_cfg != n_routes:
            raise SystemExit("propagation: expected %d routes, the control plane has %d"
                             % (n_routes, n_cfg))

        acks = AckLog(c.ctl.stderr_path)
        load_before = os.getloadavg()[0]
        samples = []
        for k in range(args.changes):
            rid = "r%d" % (k % n_routes)
            r = c.api("PUT", "/api/v1/routes/" + rid,
                      {"id": rid, "path": "/svc%d/v%d/*" % (k % n_routes, k),
                       "upstream": "backend"})
            t_resp = time.time()
            if r.status != 200:
                raise SystemExit("PUT %s -> %d %r" % (rid, r.status, r.body[:300]))
            version = int(r.header("X-Config-Version"))
            t_ack = acks.wait_all(version, len(ids), time.monotonic() + ACK_DEADLINE)
            samples.append(max(0.0, t_ack - t_resp) * 1000.0)
        c.wait_in_sync(ids)
        s = sorted(samples)
        result = {
            "routes": n_routes, "dataplanes": len(ids), "changes": len(s),
            "transport": args.transport, "loaded_with": how, "load_seconds": round(load_s, 2),
            "p50_ms": round(percentile(s, 50), 2), "p90_ms": round(percentile(s, 90), 2),
            "p99_ms": round(percentile(s, 99), 2), "max_ms": round(s[-1], 2),
            "min_ms": round(s[0], 2),
            # The data planes share this host's CPUs: say how busy it was.
            "cpus": os.cpu_count(), "loadavg_1m_before": round(load_before, 2),
            "loadavg_1m_after": round(os.getloadavg()[0], 2),
        }
        return result
    finally:
        c.close()


def main():
    args = parse_args()
    os.environ["FG_BUILD_DIR"] = os.path.abspath(args.build)
    os.environ["FG_SOURCE_DIR"] = SRC
    sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
    import harness  # noqa: E402  (reads FG_BUILD_DIR at import)

    use_import = have_import(harness.CTL_BIN)
    results = []
    for n in [int(x) for x in args.routes.split(",") if x]:
        res = run_one(harness, n, args, use_import)
        results.append(res)
        print("routes=%(routes)d dataplanes=%(dataplanes)d transport=%(transport)s "
              "changes=%(changes)d  p50=%(p50_ms).1f ms  p90=%(p90_ms).1f ms  "
              "p99=%(p99_ms).1f ms  max=%(max_ms).1f ms  (loaded with %(loaded_with)s in "
              "%(load_seconds).1f s; %(cpus)d CPUs, load %(loadavg_1m_before).1f -> "
              "%(loadavg_1m_after).1f)" % res, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
