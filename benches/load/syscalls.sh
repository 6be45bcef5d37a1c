#!/usr/bin/env bash
# System calls per new connection: a proxy in front of the nginx backend, N relayed connections
# (each one HTTP request with 'Connection: close': accept, connect to the backend, relay both
# ways, close both), the proxy's system calls counted over them and divided by N.
#
#   benches/load/syscalls.sh                  our pen, 2,000 connections one at a time, strace -f -c
#   TARGET=cpen benches/load/syscalls.sh      the same for C pen
#   LOAD=1 benches/load/syscalls.sh           under load instead: wrk -t1 -c32 'Connection: close'
#                                             for DURATION s, counted with perf stat on the syscall
#                                             tracepoints (strace would slow the proxy tenfold)
#
# One at a time (the default) is the deterministic figure: every connection pays its own
# epoll_wait wake-ups, nothing is batched, the count repeats exactly from run to run. Under load
# several connections share a wake-up and a batch of accepts, so the figure is lower and moves a
# little with the machine.
#
# Environment:
#   TARGET=pen     pen (ours, target/release/pen or PEN_BIN) or cpen (/usr/bin/pen)
#   N=2000         connections (one at a time)
#   LOAD=1         count under wrk load instead (DURATION=5 seconds)
#   PEN_ARGS=      more arguments for the proxy (e.g. '--workers 1', '-O "source 127.0.0.1"')
#   PEN_BIN=       our pen's binary; SKIP_BUILD=1: do not build
#   KEEP_TMP=1     keep the temporary directory (strace output)
#
# Output: per system call, the calls per connection, and the total; on stdout.
# Every process this script starts is stopped by its own PID on exit.

set -uo pipefail

TARGET=${TARGET:-pen}
N=${N:-2000}
DURATION=${DURATION:-5}
export BULK_MIB=1 # start_backend's big.bin, not used here

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_tools nginx python3 ss
if [ -n "${LOAD:-}" ]; then need_tools perf wrk; else need_tools strace; fi
raise_nofile

read -r BPORT PPORT <<<"$(free_ports 2)"
start_backend

read -r -a EXTRA <<<"${PEN_ARGS:-}"
case $TARGET in
pen)
    build_pen pen || die "the build failed"
    PID=$(start_pen_on "$PPORT" "$PEN_EXE" pen "${EXTRA[@]}")
    ;;
cpen) PID=$(start_cpen_on "$PPORT" "${EXTRA[@]}") ;;
*) die "TARGET must be pen or cpen" ;;
esac
PIDS+=("$PID")
wait_listening "$PID" "$PPORT" || die "$TARGET did not start: $(tail -3 "$TMP/$TARGET.log" 2>/dev/null)"

# A few connections first, so that start-up work (buffers, pipes, lazy set-up) is not counted.
client() {
    python3 - "$PPORT" "$1" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
req = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
ok = 0
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(req)
    got = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    s.close()
    ok += got.startswith(b"HTTP/1.1 200")
print(ok)
PY
}
client 20 >/dev/null

if [ -z "${LOAD:-}" ]; then
    TIDS=()
    for t in /proc/"$PID"/task/*; do TIDS+=(-p "${t##*/}"); done
    strace -f -c -o "$TMP/strace.txt" "${TIDS[@]}" 2>"$TMP/strace.log" &
    STRACE_PID=$!
    PIDS+=("$STRACE_PID")
    sleep 1 # attached (strace prints nothing on attach with -o)
    log "$TARGET (pid $PID): $N connections, one at a time, under strace -f -c ..."
    OK=$(client "$N")
    sleep 0.5
    kill -INT "$STRACE_PID"
    wait "$STRACE_PID" 2>/dev/null
    forget_pid "$STRACE_PID"
    [ "$OK" = "$N" ] || log "warning: only $OK of $N requests answered 200"
    echo "# system calls per connection: $TARGET ${PEN_ARGS:-}, $N connections one at a time (strace -f -c)"
    echo
    echo "| system call | calls | per connection |"
    echo "|---|---:|---:|"
    # strace -c: "% time seconds usecs/call calls [errors] syscall", then a "total" line.
    awk -v n="$N" '$1 ~ /^[0-9.]+$/ && NF >= 5 {
            name = $NF; calls = $4
            if (name == "total") { total = calls; next }
            printf "| %s | %d | %.2f |\n", name, calls, calls / n
        }
        END { printf "| **total** | %d | **%.2f** |\n", total, total / n }' "$TMP/strace.txt" |
        sort -t'|' -k4 -rn
else
    SYSCALLS=(read write readv writev recvfrom sendto recvmsg sendmsg splice epoll_wait epoll_pwait
        epoll_ctl accept accept4 connect close shutdown setsockopt getsockopt socket fcntl ioctl
        getsockname getpeername futex pipe2 bind)
    STAT_ARGS=("-x," -e raw_syscalls:sys_enter)
    for sc in "${SYSCALLS[@]}"; do STAT_ARGS+=(-e "syscalls:sys_enter_$sc"); done
    perf stat "${STAT_ARGS[@]}" -p "$PID" -o "$TMP/perf-stat.csv" -- sleep "$((DURATION + 1))" \
        >"$TMP/perf-stat.log" 2>&1 &
    STAT_PID=$!
    PIDS+=("$STAT_PID")
    sleep 0.3
    log "$TARGET (pid $PID): wrk -t1 -c32 -d${DURATION}s 'Connection: close', under perf stat ..."
    wrk -t1 -c32 -d"${DURATION}s" -H 'Connection: close' "http://127.0.0.1:$PPORT/" >"$TMP/wrk.txt" 2>&1
    wait "$STAT_PID" 2>/dev/null
    forget_pid "$STAT_PID"
    REQS=$(awk '/requests in/ {print $1}' "$TMP/wrk.txt")
    [ "${REQS:-0}" -gt 0 ] || die "wrk completed no request: $(tail -3 "$TMP/wrk.txt")"
    echo "# system calls per connection: $TARGET ${PEN_ARGS:-}, wrk -t1 -c32 -d${DURATION}s, $REQS connections (perf stat)"
    echo
    echo "| system call | per connection |"
    echo "|---|---:|"
    awk -F, -v n="$REQS" '$1 ~ /^[0-9]+$/ && $1 > 0 {
        name = $3; sub(/^(raw_)?syscalls:sys_enter_?/, "", name); if (name == "") name = "**total**"
        printf "| %s | %.2f |\n", name, $1 / n }' "$TMP/perf-stat.csv" | sort -t'|' -k3 -rn
fi
