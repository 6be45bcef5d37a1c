#!/usr/bin/env bash
# Load benchmark on loopback, in front of one nginx HTTP backend. By default (ONLY=peers) the
# peer comparison (peers.sh): C pen, HAProxy (tcp mode, nbthread CPUs and 1), nginx stream (1
# and CPUs workers) and our pen (one worker per CPU and --workers 1), each in ROUNDS interleaved
# rounds, in two load shapes (wrk -t1 and -t2):
#   keep-alive     wrk -c64 --latency on a small page: req/s, p99, proxy CPU us per request
#   new-conn       wrk -c32 with 'Connection: close': req/s, p99, proxy CPU us per connection
#   bulk           curl of a 256 MiB body: MiB/s, proxy CPU us per MiB
# the median of the rounds per cell, and the ratio of ours to the best peer per column. The
# proxy's CPU is the sum of every thread's run time (/proc/PID/task/TID/schedstat) of its
# processes (nginx: master and workers), read before and after each run.
#
# More tables, by name in ONLY:
#   direct cpen haproxy nginx pen http engine   the single-round TCP table: keep-alive and
#        new-conn req/s (wrk -t2 -c64), bulk MB/s, RSS with 4,000 idle connections and at start
#        (http: our pen with -H; engine: the pen-core engine of benches/examples/engine.rs)
#   udp  DNS-like queries per second (benches/examples/udp_load, 64 client sockets, one query
#        in flight each) against benches/examples/udp_echo, directly and through C pen -U,
#        nginx stream (udp, proxy_responses 1) and our pen -U
#   tls  TLS termination (one ECDSA P-256 certificate, generated here, for all): full and
#        resumed handshakes/s (benches/examples/tls_load), proxy CPU per connection, bulk and
#        keep-alive over TLS, through C pen (-E/-K), HAProxy, nginx stream and our pen
#
# Output: Markdown tables on stdout and in benches/results/latest.md (RESULTS=path elsewhere).
#
# Environment:
#   SMOKE=1         a smoke run: DURATION=2 and ROUNDS=1 unless set (a few minutes)
#   DURATION=10     seconds per wrk run
#   ROUNDS=3        rounds of the peer comparison
#   PEER_CONFIGS=   the peer comparison's configurations (default: cpen haproxy-t2 haproxy-t1
#                   nginx-w1 nginx-w2 pen pen-w1; also direct)
#   SHAPES="1 2"    wrk thread counts of the peer comparison
#   PEN_VARIANTS=   more rows of our pen in the peer comparison: 'NAME=ARGS;NAME=ARGS'
#   BULK_RUNS=2     downloads per configuration and round in the peer comparison
#   IDLE_CONNS=4000 idle connections for the RSS column
#   BULK_MIB=256    size of the bulk body
#   PEN_WORKERS=    if set, passed to our pen as --workers N (not in the peer comparison, which
#                   has its own rows for that)
#   PEN_BIN=        our pen's binary instead of target/release/pen (then not built here)
#   SKIP_BUILD=1    do not run cargo build (use the existing target/release/pen)
#   KEEP_TMP=1      keep the temporary directory (configs, logs, raw wrk output)
#   ONLY="a b"      the tables and rows: peers, direct cpen haproxy nginx pen http engine, udp, tls
#   UDP_ONLY="a b"  the rows of the UDP table: direct cpen nginx pen (all by default)
#   UDP_SOCKETS=64  client sockets of udp_load (distinct source ports)
#   TLS_ONLY="a b"  the rows of the TLS table: cpen haproxy nginx pen (all by default)
#   TLS_CONNS=16    connections in flight per tls_load thread (2 threads)
#   TLS_SUITE=TLS13_AES_256_GCM_SHA384  the only cipher suite tls_load and curl offer (empty:
#                   each client's defaults)
#   TLS_GROUP=secp256r1  the only key exchange tls_load and curl offer (C pen has only P-256;
#                   with X25519 first it would need a HelloRetryRequest; empty: defaults)
#
# Every process this script starts is stopped by its own PID on exit.

set -uo pipefail

if [ -n "${SMOKE:-}" ]; then
    DURATION=${DURATION:-2}
    ROUNDS=${ROUNDS:-1}
fi
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
IDLE_CONNS=${IDLE_CONNS:-4000}
BULK_MIB=${BULK_MIB:-256}
PEN_WORKERS=${PEN_WORKERS:-}
ONLY=${ONLY:-peers}
UDP_ONLY=${UDP_ONLY:-direct cpen nginx pen}
UDP_SOCKETS=${UDP_SOCKETS:-64}
TLS_ONLY=${TLS_ONLY:-cpen haproxy nginx pen}
TLS_CONNS=${TLS_CONNS:-16}
TLS_SUITE=${TLS_SUITE-TLS13_AES_256_GCM_SHA384}
TLS_GROUP=${TLS_GROUP-secp256r1}

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RESULTS=${RESULTS:-$ROOT/benches/results/latest.md}
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
# The command as it can be pasted again, with the settings that shape the figures spelled out.
COMMAND="DURATION=$DURATION ROUNDS=$ROUNDS BULK_MIB=$BULK_MIB ONLY=$(printf '%q' "$ONLY")"
for _v in PEER_CONFIGS SHAPES BULK_RUNS PEN_VARIANTS PEN_WORKERS PEN_BIN; do
    [ -n "${!_v:-}" ] && COMMAND+=" $_v=$(printf '%q' "${!_v}")"
done
COMMAND+=" benches/load/run.sh"

need_tools wrk curl nginx haproxy python3 ss openssl
[ -x /usr/bin/pen ] || die "missing /usr/bin/pen (apt-get install pen)"
STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so
[ -f "$STREAM_MODULE" ] || die "missing $STREAM_MODULE (apt-get install libnginx-mod-stream)"
raise_nofile

# ---------------------------------------------------------------------------------------------
# Backend: nginx serving a small page and a BULK_MIB file.

read -r BPORT P_CPEN P_HAPROXY P_NGINX P_PEN P_ENGINE P_HTTP <<<"$(free_ports 7)"
# The TLS table's ports are picked just before each proxy starts (tls_measure).
T_CPEN="" T_HAPROXY="" T_NGINX="" T_PEN=""
read -r U_BACKEND U_CPEN U_NGINX U_PEN <<<"$(free_ports 4 udp)"
mkdir -p "$TMP/nginx-stream" "$TMP/nginx-udp" "$TMP/nginx-tls" "$TMP/tls"
start_backend

# ---------------------------------------------------------------------------------------------
# Proxies: each gets its own config in TMP and runs in the foreground as our child.

start_cpen() { start_cpen_on "$P_CPEN"; }

start_haproxy() {
    haproxy_tcp_config "$P_HAPROXY" "$BPORT" "$NCPU" >"$TMP/haproxy.cfg"
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

# TLS: the same ECDSA P-256 certificate for every proxy (HAProxy wants certificate and key in
# one file). Generated only when the TLS table is on.
TLS_DIR=$TMP/tls
make_tls_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=localhost -addext subjectAltName=DNS:localhost \
        -addext basicConstraints=critical,CA:FALSE -addext keyUsage=critical,digitalSignature \
        -addext extendedKeyUsage=serverAuth \
        -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" >"$TLS_DIR/openssl.log" 2>&1 &&
        cat "$TLS_DIR/cert.pem" "$TLS_DIR/key.pem" >"$TLS_DIR/haproxy.pem"
}
start_tls_cpen() { start_cpen_on "$T_CPEN" -E "$TLS_DIR/cert.pem" -K "$TLS_DIR/key.pem"; }
start_tls_pen() {
    start_pen_on "$T_PEN" "$PEN_EXE" tls-pen -E "$TLS_DIR/cert.pem" -K "$TLS_DIR/key.pem"
}
start_tls_haproxy() {
    cat >"$TMP/haproxy-tls.cfg" <<EOF
global
    maxconn 9000
    nbthread $NCPU
defaults
    mode tcp
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    maxconn 9000
frontend fe
    bind 127.0.0.1:$T_HAPROXY ssl crt $TLS_DIR/haproxy.pem
    default_backend be
backend be
    server s1 127.0.0.1:$BPORT maxconn 9000
EOF
    haproxy -db -f "$TMP/haproxy-tls.cfg" >"$TMP/haproxy-tls.log" 2>&1 &
    echo $!
}
start_tls_nginx() {
    cat >"$TMP/nginx-tls/nginx.conf" <<EOF
load_module $STREAM_MODULE;
daemon off;
master_process on;
worker_processes auto;
worker_rlimit_nofile 20000;
pid $TMP/nginx-tls/nginx.pid;
error_log $TMP/nginx-tls/error.log warn;
events { worker_connections 12000; }
stream {
    upstream be { server 127.0.0.1:$BPORT; }
    server {
        listen 127.0.0.1:$T_NGINX ssl backlog=4096;
        ssl_protocols TLSv1.2 TLSv1.3; # 1.22's default lacks TLSv1.3
        ssl_certificate $TLS_DIR/cert.pem;
        ssl_certificate_key $TLS_DIR/key.pem;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;
        proxy_pass be;
        proxy_timeout 300s;
    }
}
EOF
    nginx -p "$TMP/nginx-tls" -e "$TMP/nginx-tls/error.log" \
        -c "$TMP/nginx-tls/nginx.conf" >"$TMP/nginx-tls/stdout.log" 2>&1 &
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

PEERS_DONE=""
for row in $ONLY; do
    case $row in
    peers)
        if build_pen pen && [ -x "$PEN_EXE" ]; then
            # shellcheck source=peers.sh
            . "$HERE/peers.sh"
            peers_run
            PEERS_DONE=1
        else
            NOTES+=("peer comparison: build failed or $PEN_EXE missing.")
        fi
        ;;
    direct) measure direct "direct to backend" "$BPORT" "" ;;
    cpen) measure cpen "C pen $(dpkg-query -W -f '${Version}' pen 2>/dev/null)" "$P_CPEN" start_cpen ;;
    haproxy) measure haproxy "HAProxy $(haproxy -v | awk 'NR == 1 {print $3}')" "$P_HAPROXY" start_haproxy ;;
    nginx) measure nginx-stream "nginx stream $(nginx -v 2>&1 | sed 's|.*/||')" "$P_NGINX" start_nginx_stream ;;
    udp | tls) ;; # the UDP and TLS tables, measured below
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
# TLS: the proxies terminate TLS; tls_load, curl and wrk are the clients.

TLS_ROWS=()
TLS_LOAD=$ROOT/target/release/examples/tls_load

# Prints the value of KEY=VALUE in LINE. Usage: field KEY LINE.
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }

# Runs tls_load against PORT for SECS seconds (more arguments are passed on); prints its
# result line, or nothing. Its output is kept in TMP/tls_load-NAME.txt.
run_tls_load() {
    local port=$1 secs=$2 name=$3
    shift 3
    local extra=()
    [ -n "$TLS_SUITE" ] && extra+=(--suite "$TLS_SUITE")
    [ -n "$TLS_GROUP" ] && extra+=(--group "$TLS_GROUP")
    timeout $((secs + 30)) "$TLS_LOAD" --addr "127.0.0.1:$port" --seconds "$secs" --threads 2 \
        --conns-per-thread "$TLS_CONNS" --ca "$TLS_DIR/cert.pem" "${extra[@]}" "$@" \
        >"$TMP/tls_load-$name.txt" 2>&1
    grep '^handshakes_per_sec=' "$TMP/tls_load-$name.txt"
}

# The proxy's CPU time per completed connection of a tls_load line, in microseconds, given the
# clock ticks it used during the run; "-" without connections. Usage: cpu_per_conn TICKS LINE.
cpu_per_conn() {
    local n
    n=$(field connections "$2")
    if [ "${n:-0}" -gt 0 ]; then
        awk -v t="$1" -v hz="$CLK_TCK" -v n="$n" 'BEGIN { printf "%.0f", t / hz * 1e6 / n }'
    else
        echo "-"
    fi
}

# A handshakes/s cell from a tls_load line: "1234", "1234 (5 errors)" or "n/a".
handshake_cell() {
    local rate errs
    rate=$(field handshakes_per_sec "$1")
    errs=$(field errors "$1")
    if [ -z "$rate" ] || [ "$rate" = 0 ]; then
        echo "n/a"
    elif [ "${errs:-0}" -gt 0 ]; then
        echo "$rate ($errs errors)"
    else
        echo "$rate"
    fi
}

# Sets TLS_CURL, curl's options for https://localhost:PORT/: the generated certificate as the
# only trust anchor, localhost pinned to 127.0.0.1, TLS_SUITE if it is a TLS 1.3 suite and
# TLS_GROUP (rustls's names turned into OpenSSL's).
tls_curl_opts() {
    TLS_CURL=(--cacert "$TLS_DIR/cert.pem" --resolve "localhost:$1:127.0.0.1")
    if [[ "$TLS_SUITE" == TLS13_* ]]; then
        TLS_CURL+=(--tlsv1.3 --tls13-ciphers "TLS_${TLS_SUITE#TLS13_}")
    fi
    case $TLS_GROUP in
    "") ;;
    secp256r1) TLS_CURL+=(--curves P-256) ;;
    secp384r1) TLS_CURL+=(--curves P-384) ;;
    *) TLS_CURL+=(--curves "$TLS_GROUP") ;;
    esac
}

# tls_measure NAME LABEL PORT_VAR START_FN: one TLS table row. PORT_VAR names the variable
# START_FN listens on; it gets a free port just before the start, and another for a second try
# if the proxy does not come up (on a busy machine something else may have taken the port).
tls_measure() {
    local name=$1 label=$2 port_var=$3 start=$4 port pid="" try probe full resumed frac share="-"
    local bulk ka proto="-" t0 t1 t2 cpu
    for try in 1 2; do
        printf -v "$port_var" '%s' "$(free_ports 1)"
        port=${!port_var}
        pid=$($start)
        PIDS+=("$pid")
        wait_listening "$pid" "$port" && break
        log "$label did not start on port $port (try $try); its log says: $(tail -qn3 "$TMP/$name.log" "$TMP/$name/error.log" 2>/dev/null | tr "\n" " ")"
        stop_pid "$pid"
        pid=""
    done
    if [ -z "$pid" ]; then
        NOTES+=("TLS, $label did not start; its log says: $(tail -qn1 "$TMP/$name.log" "$TMP/$name/error.log" 2>/dev/null | head -1)")
        TLS_ROWS+=("| $label | n/a | n/a | - | - | n/a | n/a | - |")
        return
    fi
    sleep 0.3
    tls_curl_opts "$port"
    # One request first: a proxy that listens but does not speak TLS gets n/a, not a long run.
    probe=$(curl -sS -o /dev/null --max-time 5 -w '%{http_code}' "${TLS_CURL[@]}" \
        "https://localhost:$port/" 2>&1)
    if [ "$probe" != 200 ]; then
        log "$label: no HTTPS answer: $probe"
        NOTES+=("TLS, $label listens but gave no HTTPS answer: $(tr '\n' ' ' <<<"$probe")")
        TLS_ROWS+=("| $label | n/a | n/a | - | - | n/a | n/a | - |")
        stop_pid "$pid"
        return
    fi
    [ "$DURATION" -ge 5 ] && run_tls_load "$port" 1 "$name-warm" >/dev/null # warm-up
    log "$label: full handshakes ..."
    t0=$(cpu_ticks "$pid")
    full=$(run_tls_load "$port" "$DURATION" "$name-full")
    t1=$(cpu_ticks "$pid")
    log "$label: resumed handshakes ..."
    resumed=$(run_tls_load "$port" "$DURATION" "$name-resume" --resume)
    t2=$(cpu_ticks "$pid")
    cpu="$(cpu_per_conn $((t1 - t0)) "$full") / $(cpu_per_conn $((t2 - t1)) "$resumed")"
    log "$label: bulk over TLS ..."
    bulk=$(BULK_URL="https://localhost:$port/big.bin" run_bulk "$port" "${TLS_CURL[@]}")
    log "$label: keep-alive over TLS ..."
    ka=$(run_wrk_url "https://localhost:$port/" "$name-tls-keepalive")
    if [ -n "$full" ]; then
        proto="$(field protocol "$full" | sed 's/^TLSv1_/TLS 1./') $(field suite "$full") $(field group "$full")"
        [ "$(field unclean_closes "$full")" -gt 0 ] &&
            NOTES+=("TLS, $label: $(field unclean_closes "$full") of $(field connections "$full") full-handshake connections ended without a close_notify (response complete; counted).")
    fi
    full=$(handshake_cell "$full")
    frac=$(field resumed_fraction "$resumed")
    resumed=$(handshake_cell "$resumed")
    if [ "$resumed" != n/a ]; then
        share="$(awk -v f="$frac" 'BEGIN { printf "%.1f", f * 100 }')%"
        if awk -v f="$frac" 'BEGIN { exit !(f < 0.9) }'; then
            resumed="$resumed (not resumed: only $share)"
            NOTES+=("TLS, $label: only $share of the --resume connections resumed a session.")
        fi
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        NOTES+=("TLS, $label exited during the run.")
    fi
    TLS_ROWS+=("| $label | $full | $resumed | $share | $cpu | $bulk | $ka | $proto |")
    stop_pid "$pid"
}

if [[ " $ONLY " == *" tls "* ]]; then
    built=1
    if [ -z "${SKIP_BUILD:-}" ]; then
        log "building pen-benches example tls_load ..."
        (cd "$ROOT" && cargo build --release -p pen-benches --example tls_load) \
            >"$TMP/build-tls.log" 2>&1 || built=0
    fi
    [ -x "$TLS_LOAD" ] || built=0
    if [ "$built" = 0 ]; then
        NOTES+=("TLS: building examples/tls_load failed; no TLS table.")
    elif ! make_tls_cert; then
        NOTES+=("TLS: openssl could not make the certificate: $(tail -1 "$TLS_DIR/openssl.log")")
    else
        for row in $TLS_ONLY; do
            case $row in
            cpen) tls_measure cpen "C pen $(dpkg-query -W -f '${Version}' pen 2>/dev/null) -E/-K" T_CPEN start_tls_cpen ;;
            haproxy) tls_measure haproxy-tls "HAProxy $(haproxy -v | awk 'NR == 1 {print $3}') ssl" T_HAPROXY start_tls_haproxy ;;
            nginx) tls_measure nginx-tls "nginx stream $(nginx -v 2>&1 | sed 's|.*/||') ssl" T_NGINX start_tls_nginx ;;
            pen)
                if [[ " $ONLY " == *" pen "* || " $ONLY " == *" http "* ]] || build_pen pen; then
                    tls_measure tls-pen "$PEN_LABEL -E/-K" T_PEN start_tls_pen
                else
                    NOTES+=("TLS, $PEN_LABEL: build failed or $PEN_EXE missing.")
                    TLS_ROWS+=("| $PEN_LABEL -E/-K | n/a | n/a | - | - | n/a | n/a | - |")
                fi
                ;;
            *) die "unknown row '$row' in TLS_ONLY" ;;
            esac
        done
    fi
fi

# ---------------------------------------------------------------------------------------------
# Report.

PEN_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
# The rustls version tls_load was built with (from Cargo.lock).
rustls_version() { awk '/^name = "rustls"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' "$ROOT/Cargo.lock"; }
report() {
    echo "# Load benchmark"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $NCPU CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r)"
    echo "- pen commit: $PEN_REV"
    [ "${#ROWS[@]}" -gt 0 ] &&
        echo "- load: wrk -t2 -c64 -d${DURATION}s on a $(stat -c %s "$TMP/www/index.html")-byte page;" \
            "new-conn adds -H 'Connection: close'; bulk: curl, ${BULK_MIB} MiB body, median of 3 (MB = 10^6 B)"
    echo "- backend: nginx, worker_processes auto ($NCPU), sendfile, access_log off; one backend per proxy"
    [ "${#ROWS[@]}" -gt 0 ] || [ "${#UDP_ROWS[@]}" -gt 0 ] || [ "${#TLS_ROWS[@]}" -gt 0 ] &&
        echo "- workers (tables other than the peer comparison): C pen 1 (single-threaded); HAProxy nbthread $NCPU;" \
            "nginx stream worker_processes auto ($NCPU); pen (ours) and the engine driver ${PEN_WORKERS:-default, one per CPU ($NCPU)}"
    echo "- command: $COMMAND"
    echo "- everything (wrk, curl, backend, proxy) shares the same $NCPU CPUs on loopback;" \
        "load average (1, 5, 15 min) at the start $LOADAVG_START (other work on the machine), at the end" \
        "$(cut -d' ' -f1-3 /proc/loadavg)"
    [ "${#ROWS[@]}" -gt 0 ] &&
        echo "- RSS: VmRSS summed over the proxy's processes; \"with idle\" holds $IDLE_CONNS relayed keep-alive" \
            "connections (each has done one request) on a fresh process; \"at start\" is before any traffic"
    if [ -n "$PEERS_DONE" ]; then
        echo
        echo "## Peer comparison"
        echo
        peers_report
    fi
    echo
    if [ "${#ROWS[@]}" -gt 0 ]; then
        echo "## Single-round TCP table"
        echo
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
    if [ "${#TLS_ROWS[@]}" -gt 0 ]; then
        [ "${#ROWS[@]}" -gt 0 ] || [ "${#UDP_ROWS[@]}" -gt 0 ] && echo
        echo "## TLS termination"
        echo
        echo "- the proxy terminates TLS and relays plain HTTP to the nginx backend; every proxy has the same" \
            "self-signed ECDSA P-256 certificate (SAN DNS:localhost), generated by openssl for the run"
        echo "- full / resumed handshakes/s: examples/tls_load (rustls $(rustls_version), ring), 2 threads x" \
            "$TLS_CONNS connections in flight, ${DURATION}s each; a connection is TCP connect, TLS handshake," \
            "one GET of the small page with 'Connection: close', the response read to its end, close;" \
            "the certificate is verified against the generated one; offered: cipher suite" \
            "${TLS_SUITE:-the rustls defaults}, key exchange ${TLS_GROUP:-the rustls defaults, X25519 first}"
        echo "- resumed: one session store per tls_load thread, so each connection after the first few" \
            "resumes a session (TLS 1.3: a ticket from an earlier connection; still an ECDHE, no certificate" \
            "or signature); \"resumed share\" is the share that really resumed (the cell says so below 90%)"
        tls_curl_opts PORT
        echo "- bulk: curl ${TLS_CURL[*]//$TLS_DIR\//}," \
            "${BULK_MIB} MiB body, median of 3 (MB = 10^6 B); keep-alive: wrk -t2 -c64 -d${DURATION}s" \
            "https://localhost:PORT/ (wrk's OpenSSL defaults, no certificate check)"
        echo "- workers as above: C pen 1; HAProxy nbthread $NCPU; nginx stream worker_processes auto ($NCPU);" \
            "pen (ours) ${PEN_WORKERS:-one per CPU ($NCPU)}"
        echo "- proxy CPU: user + system time of the proxy (all threads and worker processes) during the" \
            "full and the resumed run, divided by the connections completed (handshake + request +" \
            "backend connection); a measure of cost that does not depend on how the shared CPUs were split"
        echo "- negotiated: protocol, cipher suite and key exchange of tls_load's full-handshake run"
        echo
        echo "| TLS target | full handshakes/s | resumed handshakes/s | resumed share | proxy CPU µs per conn, full / resumed | bulk MB/s | keep-alive req/s | negotiated |"
        echo "|---|---:|---:|---:|---:|---:|---:|---|"
        printf '%s\n' "${TLS_ROWS[@]}"
    fi
    if [ "${#NOTES[@]}" -gt 0 ]; then
        echo
        printf -- '- %s\n' "${NOTES[@]}"
    fi
}
mkdir -p "$(dirname "$RESULTS")"
report | tee "$RESULTS"
