#!/usr/bin/env bash
# The scale run (issue 15 item 5): 100,000 concurrent relayed connections through our pen, and a
# 10,000-server table with a 1,000,000-slot client table.
#
# Phase 1 (crowd): one nginx listening on SERVER_PORTS ports (8 by default) answers everything;
# pen (-x/-c sized for the crowd) balances over those ports. First wrk -t1 -c64 measures the
# keep-alive rate through pen with no crowd ("absent"); then scale_crowd.py opens CROWD relayed
# keep-alive connections from CROWD/PER_SOURCE source addresses 127.1.x.y (each completes one
# request), and wrk runs again with the crowd held ("present"). Finally every crowd connection
# sends one more request (nothing was dropped). Reports time to establish, pen's RSS before and
# after (per connection), errors, and for both wrk runs the rate and pen's CPU per request.
#
# Phase 2 (table): a fresh pen with -c 1000000 and an -F file; the file is rewritten with
# SERVERS `server N address ... port ...` lines and pen gets SIGHUP; the time until `penctl
# servers` lists all of them is the reload time. Then penctl `servers` latency (median of 10)
# and wrk -t1 -c32 new-connection rate (each connection a selection over SERVERS servers).
#
# Environment: CROWD (100000), PER_SOURCE (10 connections per source address), SERVER_PORTS (8),
# SERVERS (10000), CLIENTS (1000000 slots), DURATION (10 s per wrk run), PEN_BIN, ONLY=table
# (phase 2 alone).
# Limits: raises the open-file limit of this shell and its children only (ulimit -n); changes
# no sysctl. Stops everything it started, by PID, on exit (lib.sh's trap).
set -uo pipefail
source "$(dirname "$0")/lib.sh"

CROWD=${CROWD:-100000}
PER_SOURCE=${PER_SOURCE:-10}
SERVER_PORTS=${SERVER_PORTS:-8}
SERVERS=${SERVERS:-10000}
CLIENTS=${CLIENTS:-1000000}
DURATION=${DURATION:-10}
need_tools nginx wrk python3 ss penctl

# pen holds 2 descriptors per relayed connection. Root may raise the hard open-file limit;
# where it may not (a container without CAP_SYS_RESOURCE), one pen holds at most
# (hard limit - 2000) / 2 connections and the crowd is spread over several pens (PER_PEN each).
ulimit -Hn $((CROWD * 2 + 20000)) 2>/dev/null || true
HARD=$(ulimit -Hn)
[ "$HARD" = unlimited ] && HARD=$((CROWD * 2 + 20000))
ulimit -n "$HARD"
PER_PEN=${PER_PEN:-$(((HARD - 2000) / 2))}
[ "$PER_PEN" -gt "$CROWD" ] && PER_PEN=$CROWD
NPENS=$(((CROWD + PER_PEN - 1) / PER_PEN))
# nginx workers share the ports by SO_REUSEPORT; each holds about CROWD / NGINX_WORKERS.
NGINX_WORKERS=$(((CROWD + HARD / 2 - 1) / (HARD / 2)))
[ "$NGINX_WORKERS" -lt "$NCPU" ] && NGINX_WORKERS=$NCPU

if [ ! -x "$PEN_EXE" ]; then
    (cd "$ROOT" && cargo build --release --locked -p pen-bin) >"$TMP/build.log" 2>&1 ||
        die "build failed: $(tail -3 "$TMP/build.log")"
fi

read -r -a PORTS <<<"$(free_ports $((SERVER_PORTS + NPENS + 2)))"
CTL_PORT=${PORTS[0]}
PEN2_PORT=${PORTS[1]}
BACKENDS=("${PORTS[@]:2:$SERVER_PORTS}")
PEN_PORTS=("${PORTS[@]:$((SERVER_PORTS + 2))}")
PEN_PORT=${PEN_PORTS[0]}

# ---- the backend: one nginx, SERVER_PORTS ports, room for the whole crowd -------------------
mkdir -p "$TMP/www" "$TMP/backend"
cat >"$TMP/www/index.html" <<'HTML'
<!doctype html>
<html><head><title>pen load benchmark</title></head>
<body><p>A small page for the keep-alive and new-connection runs.</p></body></html>
HTML
{
    echo "daemon off; master_process on; worker_processes $NGINX_WORKERS;"
    echo "worker_rlimit_nofile $HARD;"
    echo "pid $TMP/backend/nginx.pid; error_log $TMP/backend/error.log warn;"
    echo "events { worker_connections $((HARD - 1000)); }"
    echo "http { access_log off; keepalive_timeout 3600s; keepalive_requests 100000000;"
    echo "  client_header_timeout 3600s;"
    for d in client_body proxy fastcgi uwsgi scgi; do echo "  ${d}_temp_path $TMP/backend/tmp-$d;"; done
    echo "  server {"
    for p in "${BACKENDS[@]}"; do echo "    listen 127.0.0.1:$p reuseport backlog=4096;"; done
    echo "    root $TMP/www;"
    echo "    location = /ok { return 200 \"ok\\n\"; }"
    echo "  }"
    echo "}"
} >"$TMP/backend/nginx.conf"
nginx -p "$TMP/backend" -e "$TMP/backend/error.log" -c "$TMP/backend/nginx.conf" \
    >"$TMP/backend/stdout.log" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_listening "$NGINX_PID" "${BACKENDS[0]}" || die "nginx did not start: $(tail -3 "$TMP/backend/error.log")"

SERVER_ARGS=()
for p in "${BACKENDS[@]}"; do SERVER_ARGS+=("127.0.0.1:$p"); done

# Runs wrk -t1 against pen and prints "req/s cpu_us_per_req errors" (pen's user+system CPU).
# Usage: wrk_cpu PID PORT CONNS NAME [WRK ARGS...]
wrk_cpu() {
    local pid=$1 port=$2 conns=$3 name=$4
    shift 4
    local out="$TMP/wrk-$name.txt" t0 t1 reqs rps errs
    t0=$(cpu_ticks "$pid")
    timeout --foreground -k 5 $((DURATION + 30)) wrk -t1 -c"$conns" -d"${DURATION}s" "$@" \
        "http://127.0.0.1:$port/" >"$out" 2>&1 || true
    t1=$(cpu_ticks "$pid")
    reqs=$(awk '/requests in/ {print $1}' "$out")
    rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
    errs=$(awk '/Socket errors:/ {gsub(",", ""); s = $4 + $6 + $8 + $10; print s}
                /Non-2xx or 3xx responses:/ {print $5}' "$out" | awk '{s += $1} END {print s + 0}')
    awk -v r="${reqs:-0}" -v rps="${rps:-0}" -v e="$errs" -v t=$((t1 - t0)) -v hz="$CLK_TCK" \
        'BEGIN { printf "%s %.1f %d\n", rps, (r > 0 ? t / hz * 1e6 / r : 0), e }'
}

pen_sockets() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }

# ---- phase 1: the crowd ----------------------------------------------------------------------
if [ "${ONLY:-}" != table ]; then
PEN_X=$((PER_PEN + 1000))
log "phase 1: $NPENS pen(s) -x $PEN_X -c $CLIENTS over ${#BACKENDS[@]} nginx ports ($NGINX_WORKERS workers), crowd of $CROWD (open-file limit $HARD)"
PEN_PIDS=()
for k in $(seq 0 $((NPENS - 1))); do
    "$PEN_EXE" -f -q 4096 -x "$PEN_X" -c "$CLIENTS" "127.0.0.1:${PEN_PORTS[$k]}" "${SERVER_ARGS[@]}" \
        >"$TMP/pen-$k.log" 2>&1 &
    PEN_PIDS+=($!)
    PIDS+=($!)
done
for k in $(seq 0 $((NPENS - 1))); do
    wait_listening "${PEN_PIDS[$k]}" "${PEN_PORTS[$k]}" || die "pen $k did not start: $(tail -3 "$TMP/pen-$k.log")"
done
PEN_PID=${PEN_PIDS[0]}
sum_over_pens() {
    local f=$1 total=0 p
    for p in "${PEN_PIDS[@]}"; do total=$((total + $($f "$p"))); done
    echo "$total"
}
sleep 0.5
RSS0=$(sum_over_pens rss_kib)
read -r RPS_ABSENT CPU_ABSENT ERR_ABSENT <<<"$(wrk_cpu "$PEN_PID" "$PEN_PORT" 64 absent)"
RSS1=$(sum_over_pens rss_kib)
log "  crowd absent: $RPS_ABSENT req/s, $CPU_ABSENT us CPU/req, $ERR_ABSENT errors; RSS $RSS0 -> $RSS1 KiB"

HOLD="$TMP/crowd.hold"
: >"$HOLD"
CROWD_PIDS=()
CROWD_CPU0=$(sum_over_pens cpu_ticks)
T0=$(date +%s.%N)
for k in $(seq 0 $((NPENS - 1))); do
    n=$(((CROWD - k * PER_PEN) < PER_PEN ? CROWD - k * PER_PEN : PER_PEN))
    python3 "$HERE/scale_crowd.py" 127.0.0.1 "${PEN_PORTS[$k]}" "$n" "$TMP/crowd-$k.status" "$HOLD" \
        "$PER_SOURCE" 2000 $((k * PER_PEN)) >"$TMP/crowd-$k.log" 2>&1 &
    CROWD_PIDS+=($!)
    PIDS+=($!)
done
for k in $(seq 0 $((NPENS - 1))); do
    for _ in $(seq 6000); do
        [ -f "$TMP/crowd-$k.status" ] && break
        kill -0 "${CROWD_PIDS[$k]}" 2>/dev/null || die "crowd client $k exited: $(tail -3 "$TMP/crowd-$k.log")"
        sleep 0.05
    done
    [ -f "$TMP/crowd-$k.status" ] || die "crowd $k was not established within 600 s"
done
T1=$(date +%s.%N)
CROWD_CPU1=$(sum_over_pens cpu_ticks)
EST_S=$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.2f", b - a }')
field() { sed -n "${3:-1}p" "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}'; }
EST=0
CROWD_ERR=0
for k in $(seq 0 $((NPENS - 1))); do
    EST=$((EST + $(field "$TMP/crowd-$k.status" established)))
    CROWD_ERR=$((CROWD_ERR + $(field "$TMP/crowd-$k.status" errors)))
done
CROWD_LINE="established=$EST errors=$CROWD_ERR seconds=$EST_S over $NPENS pen(s); per client: $(cat "$TMP"/crowd-*.status | tr '\n' ';')"
log "  crowd: $CROWD_LINE"
sleep 1
RSS2=$(sum_over_pens rss_kib)
FDS2=$(sum_over_pens pen_sockets)
NGINX_RSS=$(rss_kib "$NGINX_PID")
read -r RPS_PRESENT CPU_PRESENT ERR_PRESENT <<<"$(wrk_cpu "$PEN_PID" "$PEN_PORT" 64 present)"
log "  crowd present: $RPS_PRESENT req/s, $CPU_PRESENT us CPU/req, $ERR_PRESENT errors"
rm -f "$HOLD"
VERIFIED=0
VERIFY_ERR=0
for k in $(seq 0 $((NPENS - 1))); do
    for _ in $(seq 1500); do
        [ "$(wc -l <"$TMP/crowd-$k.status")" -ge 2 ] && break
        kill -0 "${CROWD_PIDS[$k]}" 2>/dev/null || break
        sleep 0.1
    done
    VERIFIED=$((VERIFIED + $(field "$TMP/crowd-$k.status" verified 2)))
    VERIFY_ERR=$((VERIFY_ERR + $(field "$TMP/crowd-$k.status" verify_errors 2)))
done
VERIFY_LINE="verified=$VERIFIED verify_errors=$VERIFY_ERR"
log "  crowd check: $VERIFY_LINE"
PEN_ALIVE=yes
for k in $(seq 0 $((NPENS - 1))); do
    kill -0 "${PEN_PIDS[$k]}" 2>/dev/null || PEN_ALIVE="no: pen $k: $(tail -5 "$TMP/pen-$k.log")"
done
for p in "${CROWD_PIDS[@]}"; do stop_pid "$p"; done
for p in "${PEN_PIDS[@]}"; do stop_pid "$p"; done
fi

# ---- phase 2: 10,000 servers, 1,000,000 client slots ----------------------------------------
log "phase 2: pen -c $CLIENTS, $SERVERS servers by SIGHUP"
CFG="$TMP/pen.cfg"
: >"$CFG"
"$PEN_EXE" -f -u nobody -q 4096 -x 10000 -c "$CLIENTS" -S "$SERVERS" -C "127.0.0.1:$CTL_PORT" -F "$CFG" \
    "127.0.0.1:$PEN2_PORT" "${SERVER_ARGS[0]}" >"$TMP/pen2.log" 2>&1 &
PEN2_PID=$!
PIDS+=("$PEN2_PID")
wait_listening "$PEN2_PID" "$CTL_PORT" || die "pen did not start: $(tail -3 "$TMP/pen2.log")"
RSS_TABLE=$(rss_kib "$PEN2_PID")
server_count() { penctl "127.0.0.1:$CTL_PORT" servers 2>/dev/null | wc -l; }
BEFORE=$(server_count)
python3 - "$CFG" "$SERVERS" "${BACKENDS[@]}" <<'PY'
import sys
path, n, ports = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
with open(path + ".tmp", "w") as f:
    for i in range(n):
        f.write("server %d address 127.0.0.1 port %s\n" % (i, ports[i % len(ports)]))
import os
os.rename(path + ".tmp", path)
PY
T0=$(date +%s.%N)
kill -HUP "$PEN2_PID"
N=0
RELOAD_ERROR=none
for _ in $(seq 6000); do
    N=$(server_count)
    [ "$N" -ge "$SERVERS" ] && break
    kill -0 "$PEN2_PID" 2>/dev/null || die "pen died on reload: $(tail -5 "$TMP/pen2.log")"
    if grep -q "not reloaded" "$TMP/pen2.log"; then
        RELOAD_ERROR=$(grep -m1 "not reloaded" "$TMP/pen2.log")
        break
    fi
done
T1=$(date +%s.%N)
RELOAD_S=$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.3f", b - a }')
log "  reload: $BEFORE -> $N servers in $RELOAD_S s (polling penctl servers); error: $RELOAD_ERROR"
# Time of a second SIGHUP with the same 10,000 lines (pen replays the file on top).
T0=$(date +%s.%N)
kill -HUP "$PEN2_PID"
sleep 0.05
penctl "127.0.0.1:$CTL_PORT" servers >/dev/null
T1=$(date +%s.%N)
REHUP_S=$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.3f", b - a }')
LAT=()
for _ in $(seq 10); do
    T0=$(date +%s%N)
    penctl "127.0.0.1:$CTL_PORT" servers >/dev/null
    T1=$(date +%s%N)
    LAT+=($(((T1 - T0) / 1000)))
done
LAT_MED=$(printf '%s\n' "${LAT[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
LAT1=()
for _ in $(seq 10); do
    T0=$(date +%s%N)
    penctl "127.0.0.1:$CTL_PORT" server 1 >/dev/null 2>&1 || true
    T1=$(date +%s%N)
    LAT1+=($(((T1 - T0) / 1000)))
done
LAT1_MED=$(printf '%s\n' "${LAT1[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
RSS_TABLE2=$(rss_kib "$PEN2_PID")
read -r RPS_NEW CPU_NEW ERR_NEW <<<"$(wrk_cpu "$PEN2_PID" "$PEN2_PORT" 32 newconn -H 'Connection: close')"
log "  penctl servers: median $LAT_MED us; new connections over $SERVERS servers: $RPS_NEW req/s, $CPU_NEW us CPU/conn, $ERR_NEW errors"
PEN2_ALIVE=yes
kill -0 "$PEN2_PID" 2>/dev/null || PEN2_ALIVE="no: $(tail -5 "$TMP/pen2.log")"

# ---- report ----------------------------------------------------------------------------------
cat <<EOF
# scale run $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
command: ONLY=${ONLY:-} CROWD=$CROWD PER_SOURCE=$PER_SOURCE SERVER_PORTS=$SERVER_PORTS SERVERS=$SERVERS CLIENTS=$CLIENTS DURATION=$DURATION benches/load/scale.sh
EOF
if [ "${ONLY:-}" != table ]; then
    PER_CONN=$(awk -v a="$RSS1" -v b="$RSS2" -v n="$EST" 'BEGIN { printf "%.0f", (n > 0 ? (b - a) * 1024 / n : 0) }')
    cat <<EOF
open-file limit per process: $HARD; $NPENS pen(s), each: $PEN_EXE -f -q 4096 -x $PEN_X -c $CLIENTS 127.0.0.1:PORT <${#BACKENDS[@]} nginx ports>; nginx $NGINX_WORKERS workers

crowd: $CROWD_LINE
pen CPU while establishing: $(awk -v t=$((CROWD_CPU1 - CROWD_CPU0)) -v hz="$CLK_TCK" -v n="$EST" 'BEGIN { printf "%.2f s (%.1f us per connection)", t / hz, (n > 0 ? t / hz * 1e6 / n : 0) }')
pen RSS (sum over the pens): start $(mib "$RSS0"), after wrk $(mib "$RSS1"), crowd held $(mib "$RSS2") => $PER_CONN bytes per relayed connection; pen descriptors with the crowd: $FDS2
nginx RSS with the crowd: $(mib "$NGINX_RSS")
keep-alive wrk -t1 -c64, crowd absent: $RPS_ABSENT req/s, $CPU_ABSENT us CPU/req, $ERR_ABSENT errors
keep-alive wrk -t1 -c64, crowd present: $RPS_PRESENT req/s, $CPU_PRESENT us CPU/req, $ERR_PRESENT errors
crowd after the runs: $VERIFY_LINE
pen alive at the end of phase 1: $PEN_ALIVE
EOF
fi
cat <<EOF

table: -c $CLIENTS -S $SERVERS; pen RSS with the empty table $(mib "$RSS_TABLE"), with $N servers $(mib "$RSS_TABLE2")
reload (SIGHUP, -F with $SERVERS server lines) until penctl servers lists $N: $RELOAD_S s (from $BEFORE); reload error: $RELOAD_ERROR
second SIGHUP with the same file, then one penctl servers: $REHUP_S s
penctl servers ($N lines) latency, median of 10: $LAT_MED us (all: ${LAT[*]})
penctl server 1 latency, median of 10: $LAT1_MED us
new connections wrk -t1 -c32 Connection: close over $N servers: $RPS_NEW req/s, $CPU_NEW us CPU/conn, $ERR_NEW errors
pen alive at the end of phase 2: $PEN2_ALIVE
EOF
