#!/usr/bin/env bash
# Profiles a proxy under a keep-alive wrk run: perf samples the proxy process (cpu-clock, a
# software event, so it works in VMs without hardware counters) while wrk drives it, then
# the top symbols are printed (flat, self time), followed by the top shared objects and the
# system calls per request (perf stat on syscall tracepoints, counted during the same run).
#
# Environment:
#   DURATION=10        seconds of wrk (and of sampling)
#   TARGET=pen         pen (ours, target/release/pen), engine (benches/examples/engine.rs, the
#                      pen-core engine without the CLI) or cpen (/usr/bin/pen, for comparison)
#   NEWCONN=1          profile the 'Connection: close' run instead of keep-alive
#   CALLGRAPH=dwarf    call-graph mode for perf record -g (default fp; dwarf unwinds Rust
#                      frames without frame pointers, at a much larger perf.data)
#   TOP=30             how many symbols to print
#   PEN_WORKERS=       if set, passed to our pen as --workers N
#   WRK_THREADS=2      wrk's threads (-t); CONNS=64 its connections (-c)
#   PEN_BIN=           our pen's binary instead of target/release/pen
#   SKIP_BUILD=1       do not run cargo build
#   KEEP_TMP=1         keep the temporary directory with perf.data (for perf report -g)
#
# Every process this script starts is stopped by its own PID on exit.

set -uo pipefail

DURATION=${DURATION:-10}
TARGET=${TARGET:-pen}
CALLGRAPH=${CALLGRAPH:-fp}
TOP=${TOP:-30}
BULK_MIB=1 # the backend's big.bin is not used here

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_tools perf wrk nginx python3 ss
raise_nofile

read -r BPORT PPORT <<<"$(free_ports 2)"
start_backend

case $TARGET in
pen)
    build_pen pen || die "cannot profile our pen: the build failed"
    PID=$(start_pen_on "$PPORT")
    ;;
engine)
    build_pen engine || die "cannot profile the engine driver: the build failed"
    PID=$(start_pen_on "$PPORT" "$ENGINE_EXE" engine)
    ;;
cpen) PID=$(start_cpen_on "$PPORT") ;;
*) die "TARGET must be pen, engine or cpen" ;;
esac
PIDS+=("$PID")
wait_listening "$PID" "$PPORT" ||
    die "$TARGET did not start: $(tail -3 "$TMP/$TARGET.log" 2>/dev/null)"

WRK_ARGS=(-t"${WRK_THREADS:-2}" -c"${CONNS:-64}" -d"${DURATION}s")
[ -n "${NEWCONN:-}" ] && WRK_ARGS+=(-H 'Connection: close')

# A short warm-up so the profile shows the steady state, not start-up.
wrk -t2 -c64 -d1s "http://127.0.0.1:$PPORT/" >/dev/null 2>&1

DATA="$TMP/perf.data"
perf record -e cpu-clock -F 999 --call-graph "$CALLGRAPH" -p "$PID" -o "$DATA" \
    -- sleep "$DURATION" >"$TMP/perf-record.log" 2>&1 &
PERF_PID=$!
PIDS+=("$PERF_PID")
SYSCALLS=(read write readv writev recvfrom sendto recvmsg sendmsg splice epoll_wait epoll_pwait
    epoll_ctl accept accept4 connect close shutdown setsockopt getsockopt socket fcntl ioctl
    getsockname getpeername futex eventfd2 pipe2)
STAT_ARGS=(-x, -e raw_syscalls:sys_enter)
for sc in "${SYSCALLS[@]}"; do STAT_ARGS+=(-e "syscalls:sys_enter_$sc"); done
perf stat "${STAT_ARGS[@]}" -p "$PID" -o "$TMP/perf-stat.csv" -- sleep "$DURATION" \
    >"$TMP/perf-stat.log" 2>&1 &
STAT_PID=$!
PIDS+=("$STAT_PID")
sleep 0.2
log "profiling $TARGET (pid $PID) for ${DURATION}s under wrk ${WRK_ARGS[*]} ..."
CPU0=$(cpu_ns "$PID")
wrk "${WRK_ARGS[@]}" "http://127.0.0.1:$PPORT/" >"$TMP/wrk.txt" 2>&1
CPU1=$(cpu_ns "$PID")
wait "$PERF_PID" 2>/dev/null
forget_pid "$PERF_PID"
wait "$STAT_PID" 2>/dev/null
forget_pid "$STAT_PID"
[ -s "$DATA" ] || die "perf record failed: $(tail -3 "$TMP/perf-record.log")"

REQS=$(awk '/requests in/ {print $1}' "$TMP/wrk.txt")
echo "# $TARGET under wrk ${WRK_ARGS[*]} ($(awk '/^Requests\/sec:/ {print $2}' "$TMP/wrk.txt") req/s while sampled," \
    "$(awk -v c=$((CPU1 - CPU0)) -v n="${REQS:-0}" 'BEGIN { if (n > 0) printf "%.1f", c / 1e3 / n; else printf "n/a" }') µs CPU per request, sampling included)"
echo
echo "## top symbols (self)"
perf report -i "$DATA" --stdio --no-children --sort symbol -g none --percent-limit 0.3 2>/dev/null |
    grep -v "^#" | grep -v "^$" | sed -E "s/([[:space:]]+-)+[[:space:]]*$//" | head -n "$TOP"
echo
echo "## by shared object"
perf report -i "$DATA" --stdio --no-children --sort dso -g none 2>/dev/null |
    grep -v '^#' | grep -v '^$' | head -n 10
echo
if [ -s "$TMP/perf-stat.csv" ] && [ "${REQS:-0}" -gt 0 ]; then
    echo "## system calls per request ($REQS requests; counted over the sampling window)"
    awk -F, -v n="$REQS" '$1 ~ /^[0-9]+$/ && $1 > 0 {
        name = $3; sub(/^(raw_)?syscalls:sys_enter_?/, "", name); if (name == "") name = "(all)"
        printf "    %-12s %8.2f\n", name, $1 / n }' "$TMP/perf-stat.csv" | sort -k2 -rn
fi
[ -n "${KEEP_TMP:-}" ] && log "perf report -i $DATA --no-children   # for call graphs"
exit 0
