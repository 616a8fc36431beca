#!/usr/bin/env bash
# callgrind.sh - instructions per proxied request in flexgate-dp, and where they go.
#
# Wall-clock figures on this shared machine swing by tens of percent between runs; the number
# of instructions the data plane executes per request does not. This runs flexgate-dp under
# valgrind --tool=callgrind behind the bench origin (nginx, 100-byte body, as proxy-bench.sh),
# with a generated snapshot of --routes routes pushed by tests/tools/fake_ctl.py, sends a
# warm-up, zeroes the counters, sends exactly -n requests over -c keep-alive connections
# (tests/bench/load_client.py), dumps the counters and divides. Start-up, snapshot apply and
# shutdown are outside the measured window. Prints Ir/request and the functions with the
# largest exclusive and inclusive shares; keeps the dump for callgrind_annotate.
#
# Usage: tests/bench/callgrind.sh [BUILD_DIR] [-- --routes 10 -n 20000 -c 16 --out DIR]
#   A Release (or RelWithDebInfo, for line-level detail) build is what should be measured.
#   --syscalls: instead of callgrind, run the data plane natively and count its system calls
#   per request with `strace -c` attached for exactly the measured requests; with
#   --syscalls-nginx, the same for proxy-bench's nginx proxy configuration (its one worker).
#   --nginx: the same callgrind count for proxy-bench's nginx proxy configuration (one process,
#   master_process off), on the same path and load, for a side-by-side instruction count.
# Knobs: ORIGIN_PORT (default 18300), KEEP_TMP=1. Installs nginx, valgrind, jq when missing.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${1:-$src/build}
[[ $# -gt 0 ]] && shift
[[ ${1:-} == -- ]] && shift
build=$(cd "$build" && pwd)

ROUTES=10 N=20000 C=16 WARM=2000 OUTDIR= SYSCALLS=0 NGINX=0
while (($#)); do
  case $1 in
    --routes) ROUTES=$2; shift ;;
    -n) N=$2; shift ;;
    -c) C=$2; shift ;;
    --warmup) WARM=$2; shift ;;
    --out) OUTDIR=$2; shift ;;
    --syscalls) SYSCALLS=1 ;;
    --syscalls-nginx) SYSCALLS=2 ;;
    --nginx) NGINX=1 ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "callgrind.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $ROUTES =~ ^[1-9][0-9]{0,5}$ && $N =~ ^[1-9][0-9]{0,6}$ && $C =~ ^[1-9][0-9]{0,3}$ &&
   $WARM =~ ^[0-9]{1,6}$ ]] || { echo "callgrind.sh: bad --routes/-n/-c/--warmup" >&2; exit 2; }

log() { printf '[callgrind] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ORIGIN_PORT=${ORIGIN_PORT:-18300}
source "$here/lib.sh"
bench_init callgrind

bench_need nginx valgrind strace jq curl
for t in nginx valgrind callgrind_control strace jq curl python3; do
  command -v "$t" >/dev/null || die "$t not found"
done
[[ -x $build/flexgate-dp && -x $build/flexgate-ctl ]] || die "no flexgate-dp/flexgate-ctl in $build"

bench_origin "$ORIGIN_PORT"
bench_template_db "$ORIGIN_PORT"
bench_fake_ctl fake "$ROUTES"
port=$(bench_free_port)
runner=(valgrind --tool=callgrind --callgrind-out-file="$T/callgrind.out")
((SYSCALLS || NGINX)) && runner=()
bench_start dp "${runner[@]}" \
  "$build/flexgate-dp" --control "unix:$T/fake.sock" --listen "127.0.0.1:$port" \
  --status-listen "127.0.0.1:$(bench_free_port)" --log-level warn --workers 1
dp_pid=$LAST_PID
bench_wait_applied fake "$dp_pid"
path=$(jq -r .bench_path "$T/fake.jsonl" | head -1)
log "$ROUTES routes applied in $(jq -r .apply_ms "$T/fake.jsonl" | head -1) ms; path $path"

client() { python3 -B "$here/load_client.py" --port "$port" --path "$path" -c "$C" -n "$1" --timeout 900; }
((WARM > 0)) && { client "$WARM" >/dev/null || die "warm-up requests failed"; }
traced=$dp_pid
if ((NGINX)); then
  port=$(bench_free_port)
  bench_nginx_proxy "$port" "$ORIGIN_PORT" valgrind --tool=callgrind --callgrind-out-file="$T/nginx.callgrind.out"
  [[ -n $NGINX_WORKER ]] || die "nginx under callgrind did not start"
  dp_pid=$NGINX_WORKER
  ((WARM > 0)) && { client "$WARM" >/dev/null || die "warm-up requests failed"; }
fi
if ((SYSCALLS == 2)); then
  port=$(bench_free_port)
  bench_nginx_proxy "$port" "$ORIGIN_PORT"
  traced=$NGINX_WORKER
  ((WARM > 0)) && { client "$WARM" >/dev/null || die "warm-up requests failed"; }
fi
if ((SYSCALLS)); then
  strace -c -p "$traced" -o "$T/strace.txt" 2>"$T/strace.err" &
  strace_pid=$!
  for ((i = 0; i < 50; i++)); do grep -q attached "$T/strace.err" 2>/dev/null && break; sleep 0.1; done
  result=$(client "$N") || die "measured requests failed: $result"
  kill -INT "$strace_pid" && wait "$strace_pid" || true
  echo "target=$( ((SYSCALLS == 2)) && echo nginx || echo flexgate-dp) routes=$ROUTES requests=$N conns=$C client=$result"
  echo "system calls per request (strace -c, attached for the measured requests only):"
  awk -v n="$N" '$1 ~ /^[0-9.]+$/ && NF >= 5 { calls = $4; name = $NF; if (name == "total") next
      printf "%10.3f  %s\n", calls / n, name; sum += calls }
    END { printf "%10.3f  total\n", sum / n }' "$T/strace.txt" | sort -rn
  exit 0
fi
callgrind_control -z "$dp_pid" >/dev/null || die "callgrind_control -z failed"
result=$(client "$N") || die "measured requests failed: $result"
callgrind_control -d "$dp_pid" >/dev/null || die "callgrind_control -d failed"
dump=$(ls -t "$T"/*callgrind.out.* 2>/dev/null | head -1)
[[ -n $dump ]] || die "no callgrind dump"
total=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
[[ $total =~ ^[0-9]+$ ]] || die "no instruction total in $dump"

ir=$((total / N))
if [[ -n $OUTDIR ]]; then
  mkdir -p "$OUTDIR"
  cp "$dump" "$OUTDIR/callgrind.out.routes-$ROUTES"
  log "dump kept: $OUTDIR/callgrind.out.routes-$ROUTES"
fi
echo "target=$( ((NGINX)) && echo nginx || echo flexgate-dp) routes=$ROUTES requests=$N conns=$C instructions=$total Ir/request=$ir client=$result"
echo
# callgrind_annotate 3.19 puts a dump's whole self cost on main(); cg_top.py reads the file.
python3 -B "$here/cg_top.py" "$dump" --per "$N" --top "${TOP:-30}" \
  --callers __memcpy_avx_unaligned_erms --callers malloc --callers event_add
