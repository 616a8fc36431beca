"""configured_dp.py - a data plane running a configuration the admin API cannot express yet
(the `proxy` section: limits and timeouts), for the HTTP hardening tests (not a test itself).

A real flexgate-ctl stores the upstreams and routes (so the config is valid and canonical);
it is then stopped, its newest snapshot is edited (the `proxy` section), re-serialised in the
same compact key order, and fed to a data plane by tests/tools/fake_ctl.py with the sha256 of
the new text. The data plane re-encodes canonically and checks that hash, so an edit that
were not canonical would be NACKed, and the helper would fail saying so.
"""

import json
import os

import harness
import fake_ctl


def merge(dst, src):
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            merge(dst[k], v)
        else:
            dst[k] = v


def start(test, c, upstreams, routes, proxy=None, dp_id="dp-h", dp_args=()):
    """Start ctl, create `upstreams` and `routes` (admin API bodies), stop ctl, then start a
    data plane fed by a fake control plane with `proxy` merged into the config. Returns
    (dp, fake)."""
    ctl = c.start_ctl()
    for u in upstreams:
        c.api_ok("POST", "/api/v1/upstreams", u, expect=201)
    for r in routes:
        c.api_ok("POST", "/api/v1/routes", r, expect=201)
    version = c.config_version()
    rc, killed = ctl.stop()
    if (rc, killed) != (0, False):
        raise AssertionError("flexgate-ctl did not exit cleanly: %r" % ((rc, killed),))
    snap = fake_ctl.latest_snapshot(ctl.db)
    cfg = json.loads(snap.config)
    merge(cfg, {"proxy": proxy or {}})
    text = json.dumps(cfg, separators=(",", ":"), ensure_ascii=False)
    fake = fake_ctl.FakeCtl(os.path.join(c.tmp, "fake-%s.sock" % dp_id)).start()
    test.addCleanup(fake.close)
    dp = c.start_dp(dp_id, socket_path=fake.socket_path, wait_ready=False,
                    extra_args=list(dp_args))
    fake.wait_hello(timeout=harness.START_TIMEOUT)
    fake.send_snapshot(fake_ctl.snapshot_payload(version, fake_ctl.sha256_hex(text),
                                                 snap.created_at, text))
    kind, body = fake.wait_reply(version)
    if kind != "ACK":
        raise AssertionError("data plane refused the edited config: %r\n%s" % (body, text))
    c.wait_dp_ready(dp, version=version)
    return dp, fake
