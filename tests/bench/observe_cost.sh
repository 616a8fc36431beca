#!/usr/bin/env bash
# observe_cost.sh - what metrics and the access log cost, in CPU time per request.
#
# On a busy machine requests/s swing by tens of percent from one round to the next; the CPU
# time a process spends per request moves much less. This starts two data planes side by
# side behind the bench origin (nginx, 100-byte body): "on" with the default config
# (per-request metrics, access log at sampling 1 written to a file) and "off" (metrics.enabled
# false, logging.level error), each fed its snapshot by tests/tools/fake_ctl.py. Then, for
# --rounds rounds in alternating order, it sends exactly -n requests over -c keep-alive
# connections (tests/bench/load_client.py) to each and reads the data plane's user+system CPU
# time from /proc before and after. Prints CPU µs/request per round and the medians, and the
# on/off ratio per round.
#
# Usage: tests/bench/observe_cost.sh [BUILD_DIR] [-- --rounds 5 -n 30000 -c 16]
# Knobs: ORIGIN_PORT (default 18400), KEEP_TMP=1. Installs nginx, jq when missing.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${1:-$src/build}
[[ $# -gt 0 ]] && shift
[[ ${1:-} == -- ]] && shift
build=$(cd "$build" && pwd)

ROUNDS=5 N=30000 C=16
while (($#)); do
  case $1 in
    --rounds) ROUNDS=$2; shift ;;
    -n) N=$2; shift ;;
    -c) C=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "observe_cost.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $ROUNDS =~ ^[1-9][0-9]?$ && $N =~ ^[1-9][0-9]{0,6}$ && $C =~ ^[1-9][0-9]{0,3}$ ]] ||
  { echo "observe_cost.sh: bad --rounds/-n/-c" >&2; exit 2; }

log() { printf '[observe_cost] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ORIGIN_PORT=${ORIGIN_PORT:-18400}
source "$here/lib.sh"
bench_init observe
bench_need nginx jq curl
[[ -x $build/flexgate-dp && -x $build/flexgate-ctl ]] || die "no flexgate-dp/flexgate-ctl in $build"

bench_origin "$ORIGIN_PORT"
declare -A PORT PID
for mode in on off; do
  OBSERVE=$mode bench_template_db "$ORIGIN_PORT"
  mv "$T/ctl.db" "$T/ctl-$mode.db"
done
for mode in on off; do
  cp "$T/ctl-$mode.db" "$T/ctl.db"
  bench_fake_ctl "fake-$mode" 10
  PORT[$mode]=$(bench_free_port)
  bench_start "dp-$mode" "$build/flexgate-dp" --control "unix:$T/fake-$mode.sock" \
    --listen "127.0.0.1:${PORT[$mode]}" --status-listen "127.0.0.1:$(bench_free_port)" \
    --log-level warn --workers 1 --log-file "$T/dp-$mode.access.log"
  PID[$mode]=$LAST_PID
  bench_wait_applied "fake-$mode" "$LAST_PID"
done
path=$(jq -r .bench_path "$T/fake-on.jsonl" | head -1)
tick=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
client() {
  python3 -B "$here/load_client.py" --port "$1" --path "$path" -c "$C" -n "$2" --timeout 900 \
    >/dev/null || die "requests to $1 failed"
}
for mode in on off; do client "${PORT[$mode]}" 2000; done # warm-up

declare -A US
for ((r = 1; r <= ROUNDS; r++)); do
  order=(on off)
  ((r % 2 == 0)) && order=(off on)
  for mode in "${order[@]}"; do
    t0=$(cpu_ticks "${PID[$mode]}")
    client "${PORT[$mode]}" "$N"
    t1=$(cpu_ticks "${PID[$mode]}")
    US[$mode,$r]=$(awk -v d=$((t1 - t0)) -v hz="$tick" -v n="$N" 'BEGIN { printf "%.2f", d * 1e6 / hz / n }')
  done
  log "round $r: on ${US[on,$r]} us/req, off ${US[off,$r]} us/req"
done
lines=$(grep -c '"msg":"request"' "$T/dp-on.access.log" || true)
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
on=$(for ((r = 1; r <= ROUNDS; r++)); do echo "${US[on,$r]}"; done | median)
off=$(for ((r = 1; r <= ROUNDS; r++)); do echo "${US[off,$r]}"; done | median)
ratios=$(for ((r = 1; r <= ROUNDS; r++)); do awk -v a="${US[on,$r]}" -v b="${US[off,$r]}" 'BEGIN { printf "%.3f ", a / b }'; done)
echo "requests=$N x $ROUNDS conns=$C cpu_us_per_request on=$on off=$off (medians); on/off per round: $ratios"
echo "access log lines written by 'on': $lines"
