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
#   ROUTES=10000 tests/bench/proxy.sh build   (load that many extra routes before measuring)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${1:-$src/build}
[[ $# -gt 0 ]] && shift
[[ ${1:-} == -- ]] && shift
bench=${PROXY_BENCH:-$src/../shared/bench/proxy-bench.sh}
[[ -x $bench || -f $bench ]] || { echo "proxy.sh: $bench not found" >&2; exit 1; }
build=$(cd "$build" && pwd)

export ORIGIN_PORT=${ORIGIN_PORT:-18100}
admin_port=${ADMIN_PORT:-18190}
tmp=$(mktemp -d -t fg-bench.XXXXXX)
token=bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
ctl_pid=
cleanup() {
  [[ -n $ctl_pid ]] && kill "$ctl_pid" 2>/dev/null && wait "$ctl_pid" 2>/dev/null
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
for ((i = 0; i < ${ROUTES:-0}; i++)); do
  api -X POST "http://127.0.0.1:$admin_port/api/v1/routes" \
    -d "{\"id\":\"extra-$i\",\"path\":\"/extra/$i/items/*\",\"upstream\":\"origin\"}" >/dev/null
done
api -X POST "http://127.0.0.1:$admin_port/api/v1/routes" \
  -d '{"id":"all","path":"/*","upstream":"origin"}' >/dev/null

export CANDIDATE_NAME=${CANDIDATE_NAME:-flexgate-dp} CANDIDATE_PORT=${CANDIDATE_PORT:-18103}
export CANDIDATE_CMD="exec '$build/flexgate-dp' --control 'unix:$tmp/ctl.sock' --listen 127.0.0.1:\$CANDIDATE_PORT --status-listen 127.0.0.1:$((admin_port + 1)) --log-level warn --workers 1"
bash "$bench" "$@"
