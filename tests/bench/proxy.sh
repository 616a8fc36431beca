#!/usr/bin/env bash
# proxy.sh - benchmark flexgate-dp against nginx and HAProxy with ../shared/bench/proxy-bench.sh.
#
# proxy-bench.sh starts the origin (nginx, 100-byte body) on ORIGIN_PORT and loads nginx,
# HAProxy and our candidate in interleaved rounds. Our data plane needs a configuration, so
# this script first starts a flexgate-ctl on a scratch database with one upstream pointing at
# the bench origin and a catch-all route, then hands proxy-bench a candidate command that is
# the data plane alone (subscribed to that control plane), so only flexgate-dp's own CPU and
# RSS are measured.
#
# Usage: tests/bench/proxy.sh [BUILD_DIR] [-- proxy-bench options]
#   e.g. tests/bench/proxy.sh build -- --rounds 3 --duration 10 --conns 50,200 --out /tmp/bench.json
#   ROUTES=10000 tests/bench/proxy.sh build   (load that many generated routes first)
#   OBSERVE=off tests/bench/proxy.sh build     (metrics and access log off, issue 7)
#
# With ROUTES=N the control plane only writes the template (one upstream, one route) and is
# stopped; tests/tools/fake_ctl.py then serves the data plane one snapshot holding N routes:
# N-1 generated ones (see tests/bench/routes.sh) and, last, the catch-all "/*" that
# proxy-bench's "GET /" hits. The catch-all is then the only route matching "/", so this measures
# the cost of a large config around the request, not a deep match; routes.sh measures that.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${1:-$src/build}
[[ $# -gt 0 ]] && shift
[[ ${1:-} == -- ]] && shift
# PROXY_BENCH, else ../shared/bench beside the checkout (or beside a worktree's parent).
bench=${PROXY_BENCH:-$src/../shared/bench/proxy-bench.sh}
[[ -n ${PROXY_BENCH:-} || -f $bench ]] || bench=$src/../../shared/bench/proxy-bench.sh
[[ -x $bench || -f $bench ]] || { echo "proxy.sh: $bench not found" >&2; exit 1; }
build=$(cd "$build" && pwd)

export ORIGIN_PORT=${ORIGIN_PORT:-18100}
admin_port=${ADMIN_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
tmp=$(mktemp -d -t fg-bench.XXXXXX)
token=bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
ctl_pid= fake_pid=
cleanup() {
  [[ -n $ctl_pid ]] && kill "$ctl_pid" 2>/dev/null && wait "$ctl_pid" 2>/dev/null
  [[ -n $fake_pid ]] && kill "$fake_pid" 2>/dev/null && wait "$fake_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

FLEXGATE_ADMIN_TOKEN=$token "$build/flexgate-ctl" serve --db "$tmp/ctl.db" \
  --admin-listen "127.0.0.1:$admin_port" --socket "unix:$tmp/ctl.sock" --log-level warn \
  >"$tmp/ctl.log" 2>&1 &
ctl_pid=$!
api() { curl -fsS -m 10 -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }
for ((i = 0; i < 100; i++)); do
  curl -fsS -m 1 "http://127.0.0.1:$admin_port/health/ready" >/dev/null 2>&1 && break
  kill -0 "$ctl_pid" || { cat "$tmp/ctl.log" >&2; exit 1; }
  sleep 0.1
done
api -X POST "http://127.0.0.1:$admin_port/api/v1/upstreams" \
  -d "{\"name\":\"origin\",\"url\":\"http://127.0.0.1:$ORIGIN_PORT\"}" >/dev/null
api -X POST "http://127.0.0.1:$admin_port/api/v1/routes" \
  -d '{"id":"all","path":"/*","upstream":"origin"}' >/dev/null
# OBSERVE=off: per-request metrics and the access log off (the default config has both on,
# the access log at sampling 1, written to proxy-bench's log file for the candidate).
if [[ ${OBSERVE:-on} == off ]]; then
  api -X PUT "http://127.0.0.1:$admin_port/api/v1/settings/metrics" -d '{"enabled":false}' >/dev/null
  api -X PUT "http://127.0.0.1:$admin_port/api/v1/settings/logging" -d '{"level":"error"}' >/dev/null
fi
control="unix:$tmp/ctl.sock"
if ((${ROUTES:-0} > 0)); then
  kill "$ctl_pid" && wait "$ctl_pid"
  ctl_pid=
  python3 -B "$src/tests/tools/fake_ctl.py" --socket "$tmp/fake.sock" --db "$tmp/ctl.db" \
    --routes "$ROUTES" --catch-all --serve --report "$tmp/fake.jsonl" --timeout 120 >"$tmp/fake.log" 2>&1 &
  fake_pid=$!
  for ((i = 0; i < 300; i++)); do [[ -S $tmp/fake.sock ]] && break; sleep 0.1; done
  [[ -S $tmp/fake.sock ]] || { cat "$tmp/fake.log" >&2; exit 1; }
  control="unix:$tmp/fake.sock"
  export CANDIDATE_START_TIMEOUT=${CANDIDATE_START_TIMEOUT:-120}
fi

export CANDIDATE_NAME=${CANDIDATE_NAME:-flexgate-dp} CANDIDATE_PORT=${CANDIDATE_PORT:-18103}
# The control plane generated $tmp/dp.secret (beside its database); it refuses a data plane
# without it. (The fake control plane ignores it.)
export CANDIDATE_CMD="exec '$build/flexgate-dp' --control '$control' --dp-secret-file '$tmp/dp.secret' --listen 127.0.0.1:\$CANDIDATE_PORT --status-listen 127.0.0.1:$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') --log-level warn --workers 1"
bash "$bench" "$@"
if [[ -s $tmp/fake.jsonl ]]; then
  echo "snapshot of $ROUTES routes (the last one the catch-all): $(head -1 "$tmp/fake.jsonl")"
fi
