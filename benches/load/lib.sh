# Shared helpers for run.sh, ab.sh and profile.sh (sourced, not executed).
#
# Provides: log/die, a temporary directory TMP removed on exit (kept with KEEP_TMP=1), the PID
# list PIDS whose processes are stopped by PID on exit, stop_pid, free_ports, wait_listening,
# rss_kib, cpu_ticks, cpu_ns, ctx_switches, mib, raise_nofile, start_backend (nginx serving index.html and big.bin),
# start_pen_on, start_cpen_on, and the measurements run_wrk, run_wrk_url, run_bulk and idle_rss.

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NCPU=$(nproc)
SCRIPT=$(basename "$0")

log() { printf '%s\n' "$*" >&2; }
die() { log "$SCRIPT: $*"; exit 1; }

# Requires each named command to be on PATH.
need_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "missing tool: $tool"
    done
}

# Raises the open-file limit to the hard limit: 4,000 relayed connections are 8,000
# descriptors in a proxy. Children (proxies, helpers) inherit it.
raise_nofile() {
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    [ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 12000 ] ||
        log "warning: open-file limit $(ulimit -n) is low for thousands of connections"
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pen-load.XXXXXX")
chmod 755 "$TMP" # nginx workers started by root run as nobody and must read www/
PIDS=()

# Stops every process we started, by PID (TERM, then KILL after a grace period).
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    PIDS=()
    if [ -n "${KEEP_TMP:-}" ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Removes PID from PIDS (after it has been reaped, so cleanup never signals a reused PID).
forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# Stops one process we started (TERM, then KILL), reaps it and forgets it.
stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    forget_pid "$pid"
}

# Prints N distinct free loopback ports (all bound at once, so they differ); TCP ports, or UDP
# ports with a second argument "udp". Usage: free_ports N [udp].
free_ports() {
    python3 - "$1" "${2:-tcp}" <<'PY'
import socket, sys
kind = socket.SOCK_DGRAM if sys.argv[2] == "udp" else socket.SOCK_STREAM
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# Waits until PID listens on 127.0.0.1:PORT (up to 5 s); fails if it exits or never listens.
wait_listening() {
    local pid=$1 port=$2
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || return 1
        if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then return 0; fi
        sleep 0.05
    done
    return 1
}

# Waits until PID has a UDP socket bound to PORT (up to 5 s); fails if it exits or never binds.
wait_udp_bound() {
    local pid=$1 port=$2
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || return 1
        if ss -Hlun "sport = :$port" 2>/dev/null | grep -q .; then return 0; fi
        sleep 0.05
    done
    return 1
}

# Sums VmRSS (KiB) over PID and its direct children (nginx workers).
rss_kib() {
    local total=0 p v
    for p in "$1" $(ps -o pid= --ppid "$1" 2>/dev/null); do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# Sums the CPU time (user + system, in clock ticks, all threads) used so far by PID and its
# direct children (nginx workers).
cpu_ticks() {
    local total=0 p v
    for p in "$1" $(ps -o pid= --ppid "$1" 2>/dev/null); do
        # Fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends the command name.
        v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}')
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)

# CPU time used so far, in nanoseconds, by PID and its direct children (nginx workers): the sum
# of every thread's sum_exec_runtime, the first field of /proc/PID/task/TID/schedstat (exact,
# unlike utime/stime, which are sampled at clock ticks). Falls back to utime + stime of
# /proc/PID/stat (in ticks, converted) where schedstat is missing.
cpu_ns() {
    local pids p
    read -r -a pids <<<"$1 $(ps -o pid= --ppid "$1" 2>/dev/null | tr '\n' ' ')"
    if [ -r "/proc/$1/task/$1/schedstat" ]; then
        for p in "${pids[@]}"; do cat /proc/"$p"/task/*/schedstat 2>/dev/null; done |
            awk '{ s += $1 } END { printf "%.0f\n", s }'
    else
        for p in "${pids[@]}"; do sed 's/.*) //' "/proc/$p/stat" 2>/dev/null; done |
            awk -v hz="$CLK_TCK" '{ s += $12 + $13 } END { printf "%.0f\n", s * 1e9 / hz }'
    fi
}

# Context switches so far (voluntary + involuntary, every thread) of PID and its direct
# children: each is a sleep and a wake-up (or a preemption), the main cost per request beside
# the system calls themselves on a shared machine.
ctx_switches() {
    local pids p
    read -r -a pids <<<"$1 $(ps -o pid= --ppid "$1" 2>/dev/null | tr '\n' ' ')"
    for p in "${pids[@]}"; do cat /proc/"$p"/task/*/status 2>/dev/null; done |
        awk '/^(non)?voluntary_ctxt_switches:/ { s += $2 } END { printf "%.0f\n", s }'
}

# KiB -> "12.3 MiB".
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

# The HAProxy configuration of every run (tcp mode, one backend server), on stdout:
# haproxy_tcp_config PORT BACKEND_PORT THREADS. Each connection is two descriptors; 9,000 fits
# the usual 20,000 hard limit.
haproxy_tcp_config() {
    cat <<EOF
global
    maxconn 9000
    nbthread $3
defaults
    mode tcp
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    maxconn 9000
frontend fe
    bind 127.0.0.1:$1
    default_backend be
backend be
    server s1 127.0.0.1:$2 maxconn 9000
EOF
}

# Starts the backend nginx on 127.0.0.1:BPORT (BPORT must be set) serving TMP/www: a small
# index.html and a BULK_MIB MiB big.bin. Sets BACKEND_PID.
start_backend() {
    mkdir -p "$TMP/www" "$TMP/backend"
    cat >"$TMP/www/index.html" <<'HTML'
<!doctype html>
<html><head><title>pen load benchmark</title></head>
<body><p>A small page for the keep-alive and new-connection runs.</p></body></html>
HTML
    fallocate -l "${BULK_MIB}M" "$TMP/www/big.bin" 2>/dev/null ||
        head -c "$((BULK_MIB * 1024 * 1024))" /dev/zero >"$TMP/www/big.bin"
    cat >"$TMP/backend/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes auto;
worker_rlimit_nofile 20000;
pid $TMP/backend/nginx.pid;
error_log $TMP/backend/error.log warn;
events { worker_connections 12000; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 300s;
    keepalive_requests 10000000;
    client_header_timeout 300s;
    client_body_temp_path $TMP/backend/tmp-body;
    proxy_temp_path $TMP/backend/tmp-proxy;
    fastcgi_temp_path $TMP/backend/tmp-fcgi;
    uwsgi_temp_path $TMP/backend/tmp-uwsgi;
    scgi_temp_path $TMP/backend/tmp-scgi;
    server {
        listen 127.0.0.1:$BPORT backlog=4096;
        root $TMP/www;
        # Echoes the X-Forwarded-For it received: run.sh checks that pen -H inserts it.
        location = /xff { return 200 "\$http_x_forwarded_for\n"; }
    }
}
CONF
    nginx -p "$TMP/backend" -e "$TMP/backend/error.log" -c "$TMP/backend/nginx.conf" \
        >"$TMP/backend/stdout.log" 2>&1 &
    BACKEND_PID=$!
    PIDS+=("$BACKEND_PID")
    wait_listening "$BACKEND_PID" "$BPORT" ||
        die "backend nginx did not start: $(tail -3 "$TMP/backend/error.log" 2>/dev/null)"
}

# Our pen: target/release/pen, or the binary named by PEN_BIN.
PEN_EXE=${PEN_BIN:-$ROOT/target/release/pen}
PEN_LABEL="pen (ours)"
[ -n "${PEN_BIN:-}" ] && PEN_LABEL="pen (ours, $PEN_BIN)"
# The benchmark driver benches/examples/engine.rs: the pen-core engine without the real CLI.
ENGINE_EXE="$ROOT/target/release/examples/engine"
ENGINE_LABEL="pen-core engine (examples/engine)"

# Builds our pen (what = pen) or the engine driver (what = engine) in release mode, unless
# SKIP_BUILD is set or PEN_BIN names the binary; fails (status 1) if the build fails.
build_pen() {
    local what=(-p pen-bin)
    [ -n "${SKIP_BUILD:-}" ] && return 0
    if [ "$1" = engine ]; then
        what=(-p pen-benches --example engine)
    elif [ -n "${PEN_BIN:-}" ]; then
        return 0
    fi
    log "building ${what[*]} ..."
    if ! (cd "$ROOT" && cargo build --release "${what[@]}") >"$TMP/build-$1.log" 2>&1; then
        log "cargo build failed: $(tail -3 "$TMP/build-$1.log")"
        return 1
    fi
}

# Starts EXE (our pen or the engine driver) in the foreground, as a child, on 127.0.0.1:PORT
# -> backend (BACKEND, default 127.0.0.1:$BPORT), with pen's command line and any EXTRA
# options (e.g. -H, -U); prints its PID. PEN_WORKERS, if set, is passed as --workers N.
# Usage: start_pen_on PORT [EXE [LOGNAME [EXTRA...]]].
start_pen_on() {
    local args=(-f -x 10000) port=$1 exe=${2:-$PEN_EXE} name=${3:-pen}
    shift $(($# < 3 ? $# : 3))
    args+=("$@")
    [ -n "${PEN_WORKERS:-}" ] && args+=(--workers "$PEN_WORKERS")
    "$exe" "${args[@]}" "127.0.0.1:$port" "${BACKEND:-127.0.0.1:$BPORT}" >"$TMP/$name.log" 2>&1 &
    echo $!
}

# Starts C pen (single process, single-threaded) on 127.0.0.1:$1 -> backend (BACKEND, default
# 127.0.0.1:$BPORT) with any EXTRA options; prints its PID. Usage: start_cpen_on PORT [EXTRA...].
start_cpen_on() {
    local port=$1
    shift
    /usr/bin/pen "$@" -f -x 10000 "127.0.0.1:$port" "${BACKEND:-127.0.0.1:$BPORT}" >"$TMP/cpen.log" 2>&1 &
    echo $!
}

# ---------------------------------------------------------------------------------------------
# Measurements shared by run.sh and ab.sh (they use DURATION, BULK_MIB and IDLE_CONNS).

# Runs wrk and prints "req/s" (with " (N errors)" appended if any), or "n/a".
run_wrk() {
    local port=$1 name=$2
    shift 2
    run_wrk_url "http://127.0.0.1:$port/" "$name" "$@"
}

# The same for any URL (https://localhost:PORT/ for the TLS table). Usage: run_wrk_url URL NAME [ARGS...].
run_wrk_url() {
    local url=$1 name=$2
    shift 2
    local out="$TMP/wrk-$name.txt"
    timeout --foreground -k 5 $((DURATION + 30)) wrk -t"${WRK_THREADS:-2}" -c64 -d"${DURATION}s" "$@" "$url" >"$out" 2>&1
    local rps errs
    rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
    errs=$(awk '/Socket errors:/ {gsub(",", ""); s = $4 + $6 + $8 + $10; print s}
                /Non-2xx or 3xx responses:/ {print $5}' "$out" | awk '{s += $1} END {print s + 0}')
    if [ -z "$rps" ] || [ "$rps" = 0 ]; then
        echo "n/a"
    elif [ "$errs" -gt 0 ]; then
        echo "$rps ($errs errors)"
    else
        echo "$rps"
    fi
}

# Median bulk download speed in MB/s over 3 runs, or "n/a". Extra arguments go to curl before
# the URL, which is http://127.0.0.1:PORT/big.bin unless BULK_URL is set. curl's lines
# ("code size speed", one per run) are kept in TMP/bulk-PORT.txt.
run_bulk() {
    local port=$1 speeds=() i line code size speed
    shift
    local want=$((BULK_MIB * 1024 * 1024)) raw="$TMP/bulk-$port.txt"
    : >"$raw"
    for i in 1 2 3; do
        line=$(curl -s -o /dev/null --max-time 60 -w '%{http_code} %{size_download} %{speed_download}' \
            "$@" "${BULK_URL:-http://127.0.0.1:$port/big.bin}") || true
        echo "$line" >>"$raw"
        read -r code size speed <<<"$line"
        if [ "${code:-}" = 200 ] && [ "${size%.*}" = "$want" ]; then
            speeds+=("$(awk -v s="$speed" 'BEGIN { printf "%.0f", s / 1e6 }')")
        fi
    done
    if [ "${#speeds[@]}" -eq 0 ]; then echo "n/a"; return; fi
    printf '%s\n' "${speeds[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# Opens IDLE_CONNS idle relayed connections through PORT and prints the RSS of PID with them
# held, e.g. "12.3 MiB", or "12.3 MiB (3,990 of 4,000)" when some failed, or "n/a".
idle_rss() {
    local pid=$1 port=$2 status="$TMP/idle.status" hold="$TMP/idle.hold" helper opened failed rss
    rm -f "$status"
    : >"$hold"
    python3 "$HERE/idle_conns.py" 127.0.0.1 "$port" "$IDLE_CONNS" "$status" "$hold" 120 \
        >"$TMP/idle-$port.log" 2>&1 &
    helper=$!
    PIDS+=("$helper")
    for _ in $(seq 1200); do
        [ -f "$status" ] && break
        kill -0 "$helper" 2>/dev/null || break
        sleep 0.05
    done
    if [ ! -f "$status" ]; then
        rm -f "$hold"
        stop_pid "$helper"
        echo "n/a"
        return
    fi
    sleep 0.5 # let the proxy settle (lazy frees, worker bookkeeping)
    rss=$(rss_kib "$pid")
    read -r opened failed <"$status"
    rm -f "$hold"
    for _ in $(seq 100); do kill -0 "$helper" 2>/dev/null || break; sleep 0.05; done
    stop_pid "$helper"
    if ! kill -0 "$pid" 2>/dev/null || [ "$opened" -eq 0 ]; then
        echo "n/a"
    elif [ "$opened" -lt "$IDLE_CONNS" ]; then
        echo "$(mib "$rss") ($opened of $IDLE_CONNS)"
    else
        mib "$rss"
    fi
}
