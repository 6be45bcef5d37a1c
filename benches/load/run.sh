#!/usr/bin/env bash
# Load benchmark: one HTTP backend (nginx), reached directly and through TCP proxies
# (Debian's C pen, HAProxy in tcp mode, nginx's stream module, our pen, and our pen in HTTP
# mode with -H), measured side by side on loopback:
#   (a) keep-alive req/s   wrk -t2 -c64 -d${DURATION}s on a small page
#   (b) new-conn req/s     the same with 'Connection: close' (one TCP connection per request)
#   (c) bulk MB/s          curl downloading a 256 MiB body (median of 3, MB = 10^6 bytes)
#   (d) RSS                VmRSS of the proxy (master + workers summed) on a fresh process,
#                          then with 4,000 idle relayed keep-alive connections held open
# and a second table for UDP: DNS-like queries per second (benches/examples/udp_load, 64
# client sockets, one query in flight each) against a UDP responder (benches/examples/udp_echo),
# directly and through C pen -U, nginx stream (udp, proxy_responses 1) and our pen -U.
#
# Output: Markdown tables on stdout and in benches/results/latest.md.
#
# Environment:
#   DURATION=10     seconds per wrk run (DURATION=2 for a smoke run)
#   IDLE_CONNS=4000 idle connections for the RSS column
#   BULK_MIB=256    size of the bulk body
#   PEN_WORKERS=    if set, passed to our pen as --workers N (default: one per CPU)
#   PEN_BIN=        our pen's binary instead of target/release/pen (then not built here)
#   SKIP_BUILD=1    do not run cargo build (use the existing target/release/pen)
#   KEEP_TMP=1      keep the temporary directory (configs, logs, raw wrk output)
#   ONLY="a b"      only these rows: direct cpen haproxy nginx pen http udp engine
#                   (http: our pen with -H; udp: the UDP table; engine: the pen-core relay
#                   engine run by benches/examples/engine.rs, not by default)
#   UDP_ONLY="a b"  the rows of the UDP table: direct cpen nginx pen (all by default)
#   UDP_SOCKETS=64  client sockets of udp_load (distinct source ports)
#
# Every process this script starts is stopped by its own PID on exit.

set -uo pipefail

DURATION=${DURATION:-10}
IDLE_CONNS=${IDLE_CONNS:-4000}
BULK_MIB=${BULK_MIB:-256}
PEN_WORKERS=${PEN_WORKERS:-}
ONLY=${ONLY:-direct cpen haproxy nginx pen http udp}
UDP_ONLY=${UDP_ONLY:-direct cpen nginx pen}
UDP_SOCKETS=${UDP_SOCKETS:-64}

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RESULTS="$ROOT/benches/results/latest.md"

need_tools wrk curl nginx haproxy python3 ss
[ -x /usr/bin/pen ] || die "missing /usr/bin/pen (apt-get install pen)"
STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so
[ -f "$STREAM_MODULE" ] || die "missing $STREAM_MODULE (apt-get install libnginx-mod-stream)"
raise_nofile

# Runs wrk and prints "req/s" (with " (N errors)" appended if any), or "n/a".
run_wrk() {
    local port=$1 name=$2
    shift 2
    local out="$TMP/wrk-$name.txt"
    wrk -t2 -c64 -d"${DURATION}s" "$@" "http://127.0.0.1:$port/" >"$out" 2>&1
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

# Median bulk download speed in MB/s over 3 runs, or "n/a".
run_bulk() {
    local port=$1 speeds=() i line code size speed
    local want=$((BULK_MIB * 1024 * 1024))
    for i in 1 2 3; do
        line=$(curl -s -o /dev/null --max-time 60 -w '%{http_code} %{size_download} %{speed_download}' \
            "http://127.0.0.1:$port/big.bin") || true
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

# ---------------------------------------------------------------------------------------------
# Backend: nginx serving a small page and a BULK_MIB file.

read -r BPORT P_CPEN P_HAPROXY P_NGINX P_PEN P_ENGINE P_HTTP <<<"$(free_ports 7)"
read -r U_BACKEND U_CPEN U_NGINX U_PEN <<<"$(free_ports 4 udp)"
mkdir -p "$TMP/nginx-stream" "$TMP/nginx-udp"
start_backend

# ---------------------------------------------------------------------------------------------
# Proxies: each gets its own config in TMP and runs in the foreground as our child.

start_cpen() { start_cpen_on "$P_CPEN"; }

start_haproxy() {
    cat >"$TMP/haproxy.cfg" <<EOF
global
    # Each connection is two descriptors; 9,000 fits the usual 20,000 hard limit.
    maxconn 9000
    nbthread $NCPU
defaults
    mode tcp
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    maxconn 9000
frontend fe
    bind 127.0.0.1:$P_HAPROXY
    default_backend be
backend be
    server s1 127.0.0.1:$BPORT maxconn 9000
EOF
    haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 &
    echo $!
}

start_nginx_stream() {
    cat >"$TMP/nginx-stream/nginx.conf" <<EOF
load_module $STREAM_MODULE;
daemon off;
master_process on;
worker_processes auto;
worker_rlimit_nofile 20000;
pid $TMP/nginx-stream/nginx.pid;
error_log $TMP/nginx-stream/error.log warn;
events { worker_connections 12000; }
stream {
    upstream be { server 127.0.0.1:$BPORT; }
    server {
        listen 127.0.0.1:$P_NGINX backlog=4096;
        proxy_pass be;
        proxy_timeout 300s;
    }
}
EOF
    nginx -p "$TMP/nginx-stream" -e "$TMP/nginx-stream/error.log" \
        -c "$TMP/nginx-stream/nginx.conf" >"$TMP/nginx-stream/stdout.log" 2>&1 &
    echo $!
}

start_pen() { start_pen_on "$P_PEN"; }
start_http() { start_pen_on "$P_HTTP" "$PEN_EXE" http -H; }
start_engine() { start_pen_on "$P_ENGINE" "$ENGINE_EXE" engine; }

# UDP: the responder and the three proxies in front of it.
UDP_BACKEND=127.0.0.1:$U_BACKEND
start_udp_cpen() { BACKEND=$UDP_BACKEND start_cpen_on "$U_CPEN" -U; }
start_udp_pen() { BACKEND=$UDP_BACKEND start_pen_on "$U_PEN" "$PEN_EXE" udp-pen -U; }
start_udp_nginx() {
    cat >"$TMP/nginx-udp/nginx.conf" <<EOF
load_module $STREAM_MODULE;
daemon off;
master_process on;
worker_processes auto;
worker_rlimit_nofile 20000;
pid $TMP/nginx-udp/nginx.pid;
error_log $TMP/nginx-udp/error.log warn;
events { worker_connections 12000; }
stream {
    upstream be { server $UDP_BACKEND; }
    server {
        listen 127.0.0.1:$U_NGINX udp;
        proxy_pass be;
        proxy_responses 1;
        proxy_timeout 5s;
    }
}
EOF
    nginx -p "$TMP/nginx-udp" -e "$TMP/nginx-udp/error.log" \
        -c "$TMP/nginx-udp/nginx.conf" >"$TMP/nginx-udp/stdout.log" 2>&1 &
    echo $!
}

# ---------------------------------------------------------------------------------------------
# Measurements.

ROWS=()
NOTES=()

# measure NAME LABEL PORT START_FN: one table row. START_FN is empty for the direct row.
# The http row also checks that the proxy inserted X-Forwarded-For (the backend's /xff echoes it).
measure() {
    local name=$1 label=$2 port=$3 start=$4 pid="" rss0="-" idle="-" ka nc bulk
    if [ -n "$start" ]; then
        pid=$($start)
        PIDS+=("$pid")
        if ! wait_listening "$pid" "$port"; then
            log "$label did not start; its log says: $(tail -qn3 "$TMP/$name.log" "$TMP/$name/error.log" 2>/dev/null | tr "\n" " ")"
            NOTES+=("$label did not start; its log says: $(tail -qn1 "$TMP/$name.log" "$TMP/$name/error.log" 2>/dev/null | head -1)")
            ROWS+=("| $label | n/a | n/a | n/a | n/a | n/a |")
            stop_pid "$pid"
            return
        fi
        sleep 0.3
        rss0=$(mib "$(rss_kib "$pid")")
        if [ "$name" = http ]; then
            local xff
            xff=$(curl -s --max-time 5 "http://127.0.0.1:$port/xff")
            [ "$xff" = 127.0.0.1 ] ||
                NOTES+=("$label: X-Forwarded-For not inserted (the backend saw '$xff'); HTTP mode may be a pass-through stub in this commit.")
        fi
        log "$label: $IDLE_CONNS idle connections ..."
        idle=$(idle_rss "$pid" "$port")
    fi
    if [ "$DURATION" -ge 5 ]; then
        wrk -t2 -c64 -d1s "http://127.0.0.1:$port/" >/dev/null 2>&1 # warm-up
    fi
    log "$label: keep-alive ..."
    ka=$(run_wrk "$port" "$name-keepalive")
    log "$label: new connections ..."
    nc=$(run_wrk "$port" "$name-close" -H 'Connection: close')
    log "$label: bulk ..."
    bulk=$(run_bulk "$port")
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
        NOTES+=("$label exited during the run.")
    fi
    ROWS+=("| $label | $ka | $nc | $bulk | $idle | $rss0 |")
    [ -n "$pid" ] && stop_pid "$pid"
}

for row in $ONLY; do
    case $row in
    direct) measure direct "direct to backend" "$BPORT" "" ;;
    cpen) measure cpen "C pen $(dpkg-query -W -f '${Version}' pen 2>/dev/null)" "$P_CPEN" start_cpen ;;
    haproxy) measure haproxy "HAProxy $(haproxy -v | awk 'NR == 1 {print $3}')" "$P_HAPROXY" start_haproxy ;;
    nginx) measure nginx-stream "nginx stream $(nginx -v 2>&1 | sed 's|.*/||')" "$P_NGINX" start_nginx_stream ;;
    udp) ;; # the UDP table, measured below
    pen | http | engine)
        if [ "$row" = pen ]; then
            exe=$PEN_EXE label=$PEN_LABEL port=$P_PEN
        elif [ "$row" = http ]; then
            exe=$PEN_EXE label="$PEN_LABEL, -H" port=$P_HTTP
        else
            exe=$ENGINE_EXE label=$ENGINE_LABEL port=$P_ENGINE
        fi
        if build_pen "$row" && [ -x "$exe" ]; then
            measure "$row" "$label" "$port" "start_$row"
        else
            NOTES+=("$label: build failed or $exe missing.")
            ROWS+=("| $label | n/a | n/a | n/a | n/a | n/a |")
        fi
        ;;
    *) die "unknown row '$row' in ONLY" ;;
    esac
done

# ---------------------------------------------------------------------------------------------
# UDP: queries per second through each proxy, against examples/udp_echo.

UDP_ROWS=()
UDP_ECHO=$ROOT/target/release/examples/udp_echo
UDP_LOAD=$ROOT/target/release/examples/udp_load

# Runs udp_load against PORT for SECONDS; prints its result line (or nothing).
run_udp_load() {
    local port=$1 secs=$2
    "$UDP_LOAD" -c "$UDP_SOCKETS" -t 2 -d "$secs" --timeout 500 "127.0.0.1:$port" 2>&1 | grep '^qps='
}

# udp_measure NAME LABEL PORT START_FN: one UDP table row; START_FN is empty for the direct row.
udp_measure() {
    local name=$1 label=$2 port=$3 start=$4 pid="" rss="-" line qps lost errs rtt
    if [ -n "$start" ]; then
        pid=$($start)
        PIDS+=("$pid")
        if ! wait_udp_bound "$pid" "$port"; then
            log "$label (UDP) did not start; its log says: $(tail -qn3 "$TMP/$name.log" "$TMP/$name/error.log" 2>/dev/null | tr "\n" " ")"
            NOTES+=("UDP, $label did not start; its log says: $(tail -qn1 "$TMP/$name.log" "$TMP/$name/error.log" 2>/dev/null | head -1)")
            UDP_ROWS+=("| $label | n/a | n/a | n/a | n/a |")
            stop_pid "$pid"
            return
        fi
        sleep 0.3
    fi
    [ "$DURATION" -ge 5 ] && run_udp_load "$port" 1 >/dev/null # warm-up
    log "$label: UDP queries ..."
    line=$(run_udp_load "$port" "$DURATION")
    qps=$(sed -n 's/.*qps=\([0-9]*\).*/\1/p' <<<"$line")
    lost=$(sed -n 's/.*lost=\([0-9]*\).*/\1/p' <<<"$line")
    errs=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' <<<"$line")
    rtt=$(sed -n 's/.*avg_us=\([0-9]*\).*/\1/p' <<<"$line")
    [ -n "$pid" ] && rss=$(mib "$(rss_kib "$pid")")
    if [ -z "$qps" ] || [ "$qps" = 0 ]; then
        qps=n/a rtt=n/a
    else
        rtt="$rtt us"
    fi
    [ "${errs:-0}" -gt 0 ] && lost="${lost:-0} ($errs ICMP/send errors)"
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
        NOTES+=("UDP, $label exited during the run.")
    fi
    UDP_ROWS+=("| $label | $qps | ${lost:-n/a} | $rtt | $rss |")
    [ -n "$pid" ] && stop_pid "$pid"
}

if [[ " $ONLY " == *" udp "* ]]; then
    built=1
    if [ -z "${SKIP_BUILD:-}" ]; then
        log "building pen-benches examples udp_echo, udp_load ..."
        (cd "$ROOT" && cargo build --release -p pen-benches --example udp_echo --example udp_load) \
            >"$TMP/build-udp.log" 2>&1 || built=0
    fi
    [ -x "$UDP_ECHO" ] && [ -x "$UDP_LOAD" ] || built=0
    if [ "$built" = 0 ]; then
        NOTES+=("UDP: building examples/udp_echo and udp_load failed; no UDP table.")
    else
        "$UDP_ECHO" --threads 2 "$UDP_BACKEND" >"$TMP/udp-echo.log" 2>&1 &
        UDP_ECHO_PID=$!
        PIDS+=("$UDP_ECHO_PID")
        wait_udp_bound "$UDP_ECHO_PID" "$U_BACKEND" || die "udp_echo did not start: $(cat "$TMP/udp-echo.log")"
        for row in $UDP_ONLY; do
            case $row in
            direct) udp_measure udp-direct "direct to responder" "$U_BACKEND" "" ;;
            cpen) udp_measure cpen "C pen $(dpkg-query -W -f '${Version}' pen 2>/dev/null) -U" "$U_CPEN" start_udp_cpen ;;
            nginx) udp_measure nginx-udp "nginx stream $(nginx -v 2>&1 | sed 's|.*/||') udp" "$U_NGINX" start_udp_nginx ;;
            pen)
                if [[ " $ONLY " == *" pen "* || " $ONLY " == *" http "* ]] || build_pen pen; then
                    udp_measure udp-pen "$PEN_LABEL -U" "$U_PEN" start_udp_pen
                else
                    UDP_ROWS+=("| $PEN_LABEL -U | n/a | n/a | n/a | n/a |")
                fi
                ;;
            *) die "unknown row '$row' in UDP_ONLY" ;;
            esac
        done
        stop_pid "$UDP_ECHO_PID"
    fi
fi

# ---------------------------------------------------------------------------------------------
# Report.

PEN_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
report() {
    echo "# Load benchmark"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $NCPU CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r)"
    echo "- pen commit: $PEN_REV"
    echo "- load: wrk -t2 -c64 -d${DURATION}s on a $(stat -c %s "$TMP/www/index.html")-byte page;" \
        "new-conn adds -H 'Connection: close'; bulk: curl, ${BULK_MIB} MiB body, median of 3 (MB = 10^6 B)"
    echo "- backend: nginx, worker_processes auto ($NCPU), sendfile, access_log off; one backend per proxy"
    echo "- workers: C pen 1 (single-threaded); HAProxy nbthread $NCPU; nginx stream worker_processes auto ($NCPU);" \
        "pen (ours) and the engine driver ${PEN_WORKERS:-default, one per CPU ($NCPU)}"
    echo "- everything (wrk, curl, backend, proxy) shares the same $NCPU CPUs on loopback"
    echo "- RSS: VmRSS summed over the proxy's processes; \"with idle\" holds $IDLE_CONNS relayed keep-alive" \
        "connections (each has done one request) on a fresh process; \"at start\" is before any traffic"
    echo
    if [ "${#ROWS[@]}" -gt 0 ]; then
        echo "| target | keep-alive req/s | new-conn req/s | bulk MB/s | RSS with $IDLE_CONNS idle conns | RSS at start |"
        echo "|---|---:|---:|---:|---:|---:|"
        printf '%s\n' "${ROWS[@]}"
    fi
    if [ "${#UDP_ROWS[@]}" -gt 0 ]; then
        [ "${#ROWS[@]}" -gt 0 ] && echo
        echo "UDP: examples/udp_load, $UDP_SOCKETS client sockets (one query in flight each, 500 ms timeout)" \
            "on 2 threads, ${DURATION}s, 32-byte queries and 48-byte answers, against examples/udp_echo (2 threads)."
        echo
        echo "| UDP target | queries/s | lost | mean round trip | RSS after the run |"
        echo "|---|---:|---:|---:|---:|"
        printf '%s\n' "${UDP_ROWS[@]}"
    fi
    if [ "${#NOTES[@]}" -gt 0 ]; then
        echo
        printf -- '- %s\n' "${NOTES[@]}"
    fi
}
mkdir -p "$(dirname "$RESULTS")"
report | tee "$RESULTS"
