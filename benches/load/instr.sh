#!/usr/bin/env bash
# User-space instructions per request and per connection of two pen binaries, counted by
# valgrind (callgrind) and minus a run of the same binary that serves nothing: a figure that a
# loaded machine does not move the way it moves rates and CPU time (ab.sh), for hot-path changes
# too small for ab.sh's noise. Kernel work (most of a relay's cost) is not counted.
#
# Usage: benches/load/instr.sh A_BIN B_BIN [PEN_OPTION...]
#   e.g. benches/load/instr.sh /tmp/pen-main target/release/pen -O 'conn_per_client 1000'
# Each binary runs under valgrind with `-f -x 10000 --workers 1 PEN_OPTION...` in front of one
# nginx backend (lib.sh's), three times: idle (start, one request to see it is up, stop),
# keep-alive (wrk -t1 -c4 -d5s) and new connections (the same with 'Connection: close'). Prints
# one line per binary and shape. Every process it starts is stopped by its PID.
set -uo pipefail
[ $# -ge 2 ] || { echo "usage: $0 A_BIN B_BIN [PEN_OPTION...]" >&2; exit 2; }
A_BIN=$1 B_BIN=$2
shift 2
DURATION=5
BULK_MIB=1 # the backend's bulk file (lib.sh), unused here
export BULK_MIB
PIDS=()
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_tools valgrind wrk nginx curl
raise_nofile
BPORT=$(free_ports 1)
start_backend

# ir_run BIN SHAPE(none|ka|nc) [PEN_OPTION...]: prints "INSTRUCTIONS REQUESTS".
ir_run() {
    local bin=$1 shape=$2
    shift 2
    local port pid out="$TMP/vg.log" n=1 hdr=()
    port=$(free_ports 1)
    valgrind --tool=callgrind --callgrind-out-file=/dev/null --log-file="$out" \
        "$bin" -f -x 10000 --workers 1 "$@" "127.0.0.1:$port" "127.0.0.1:$BPORT" >/dev/null 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 200); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" && break
        sleep 0.1
    done
    if [ "$shape" != none ]; then
        [ "$shape" = nc ] && hdr=(-H 'Connection: close')
        wrk -t1 -c4 -d${DURATION}s "${hdr[@]}" "http://127.0.0.1:$port/" >"$TMP/wrk.txt" 2>&1
        n=$(awk '/requests in/ {print $1}' "$TMP/wrk.txt")
    fi
    stop_pid "$pid"
    echo "$(awk '/Collected :/ {print $4}' "$out") $n"
}

for bin in "$A_BIN" "$B_BIN"; do
    read -r idle _ < <(ir_run "$bin" none "$@")
    for shape in ka nc; do
        read -r ir n < <(ir_run "$bin" "$shape" "$@")
        awk -v b="$bin" -v s="$shape" -v ir="$ir" -v idle="$idle" -v n="$n" -v o="$*" \
            'BEGIN { printf "%s %s%s: %d requests, %.0f user instructions per request\n",
                     b, (s == "ka" ? "keep-alive" : "new-conn"), (o == "" ? "" : " [" o "]"),
                     n, (ir - idle) / n }'
    done
done
