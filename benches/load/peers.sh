# shellcheck shell=bash
# The peer comparison of run.sh (sourced by it, not executed): every proxy in its default and its
# tuned configuration, measured in ROUNDS interleaved rounds, in two load shapes (wrk -t1 and
# -t2), with the proxy's own CPU time per request, per connection and per MiB; the report gives
# the median of the rounds per cell and the ratio of ours to the best peer per column.
#
# Uses from run.sh / lib.sh: TMP, PIDS, BPORT, DURATION, BULK_MIB, PEN_EXE, free_ports,
# wait_listening, stop_pid, log, STREAM_MODULE, NCPU.
#
# Environment (read here):
#   ROUNDS=3          interleaved rounds (each measures every configuration once)
#   PEER_CONFIGS=     the configurations, by name (default: all of them, see peer_label)
#   SHAPES="1 2"      wrk thread counts (load shapes)
#   KA_CONNS=64       keep-alive connections of wrk
#   NC_CONNS=32       connections of wrk in the new-connection run (each request is a new one)
#   BULK_RUNS=2       downloads of the BULK_MIB body per configuration and round
#   PEN_VARIANTS=     more rows of our pen: 'NAME=ARGS;NAME=ARGS' (e.g. 'uring=--engine uring'),
#                     each measured with its ARGS as given, next to pen and pen-w1

ROUNDS=${ROUNDS:-3}
SHAPES=${SHAPES-1 2}
KA_CONNS=${KA_CONNS:-64}
NC_CONNS=${NC_CONNS:-32}
BULK_RUNS=${BULK_RUNS:-2}
PEN_VARIANTS=${PEN_VARIANTS:-}
PEER_CONFIGS=${PEER_CONFIGS:-cpen haproxy-t2 haproxy-t1 nginx-w1 nginx-w2 pen pen-w1}
PEER_TSV=$TMP/peers.tsv
PEER_DIR=$TMP/peers
mkdir -p "$PEER_DIR"

declare -A PEN_VARIANT_ARGS=()
IFS=';' read -r -a _variants <<<"$PEN_VARIANTS"
for _v in "${_variants[@]}"; do
    [ -n "${_v// /}" ] || continue
    PEN_VARIANT_ARGS["pen-${_v%%=*}"]=${_v#*=}
    PEER_CONFIGS+=" pen-${_v%%=*}"
done

HAPROXY_VERSION=$(haproxy -v 2>/dev/null | awk 'NR == 1 {print $3}' | sed 's/-.*//')
NGINX_VERSION=$(nginx -v 2>&1 | sed 's|.*/||')
CPEN_VERSION=$(dpkg-query -W -f '${Version}' pen 2>/dev/null | sed 's/-.*//')

# The row label of a configuration and whether it is the proxy's default or its tuning.
peer_label() {
    case $1 in
    direct) echo "direct to the backend (no proxy)|reference" ;;
    cpen) echo "C pen ${CPEN_VERSION:-0.34.1}|default (single-threaded, no tunables)" ;;
    haproxy-t2) echo "HAProxy ${HAPROXY_VERSION}, nbthread $NCPU|default (one thread per CPU)" ;;
    haproxy-t1) echo "HAProxy ${HAPROXY_VERSION}, nbthread 1|tuned" ;;
    nginx-w1) echo "nginx ${NGINX_VERSION} stream, 1 worker|default (worker_processes 1)" ;;
    nginx-w2) echo "nginx ${NGINX_VERSION} stream, $NCPU workers|tuned (worker_processes auto)" ;;
    pen) echo "pen (ours), $NCPU workers|default (one worker per CPU)" ;;
    pen-w1) echo "pen (ours), --workers 1|tuned" ;;
    pen-*) echo "pen (ours), ${PEN_VARIANT_ARGS[$1]:-?}|variant" ;;
    *) return 1 ;;
    esac
}

# Starts configuration NAME on 127.0.0.1:PORT in the foreground as our child; prints its PID.
peer_start() {
    local name=$1 port=$2 threads workers dir
    case $name in
    cpen)
        /usr/bin/pen -f -x 10000 "127.0.0.1:$port" "127.0.0.1:$BPORT" >"$PEER_DIR/$name.log" 2>&1 &
        ;;
    haproxy-t*)
        threads=${name#haproxy-t}
        [ "$threads" = 2 ] && threads=$NCPU
        haproxy_tcp_config "$port" "$BPORT" "$threads" >"$PEER_DIR/$name.cfg"
        haproxy -db -f "$PEER_DIR/$name.cfg" >"$PEER_DIR/$name.log" 2>&1 &
        ;;
    nginx-w*)
        workers=${name#nginx-w}
        [ "$workers" = 2 ] && workers=auto
        dir=$PEER_DIR/$name
        mkdir -p "$dir"
        cat >"$dir/nginx.conf" <<EOF
load_module $STREAM_MODULE;
daemon off;
master_process on;
worker_processes $workers;
worker_rlimit_nofile 20000;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 12000; }
stream {
    upstream be { server 127.0.0.1:$BPORT; }
    server {
        listen 127.0.0.1:$port backlog=4096;
        proxy_pass be;
        proxy_timeout 300s;
    }
}
EOF
        nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >"$PEER_DIR/$name.log" 2>&1 &
        ;;
    pen)
        env -u PEN_WORKERS "$PEN_EXE" -f -x 10000 "127.0.0.1:$port" "127.0.0.1:$BPORT" \
            >"$PEER_DIR/$name.log" 2>&1 &
        ;;
    pen-w1)
        env -u PEN_WORKERS "$PEN_EXE" -f -x 10000 --workers 1 "127.0.0.1:$port" "127.0.0.1:$BPORT" \
            >"$PEER_DIR/$name.log" 2>&1 &
        ;;
    pen-*)
        local extra
        read -r -a extra <<<"${PEN_VARIANT_ARGS[$name]}"
        env -u PEN_WORKERS "$PEN_EXE" -f -x 10000 "${extra[@]}" "127.0.0.1:$port" "127.0.0.1:$BPORT" \
            >"$PEER_DIR/$name.log" 2>&1 &
        ;;
    esac
    echo $!
}

# wrk's 99th percentile latency in ms (wrk prints us, ms, s or m).
peer_p99_ms() {
    awk '$1 == "99%" {
        v = $2; u = v; sub(/^[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
        f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1
        if (f > 0) printf "%.3f", v * f
        exit
    }' "$1"
}

# One wrk run against PORT, with the proxy's CPU over it; appends a TSV line:
# round config kind shape rate p99_ms cpu_us_per_unit errors units.
# Usage: peer_wrk ROUND NAME PID PORT KIND THREADS CONNS [WRK ARGS...]
peer_wrk() {
    local round=$1 name=$2 pid=$3 port=$4 kind=$5 threads=$6 conns=$7
    shift 7
    local out="$PEER_DIR/wrk-$name-$kind-t$threads-r$round.txt" c0 c1 n secs rate p99 errs cpu
    c0=$(cpu_ns "$pid")
    timeout --foreground -k 5 $((DURATION + 30)) wrk -t"$threads" -c"$conns" -d"${DURATION}s" \
        --latency "$@" "http://127.0.0.1:$port/" >"$out" 2>&1
    c1=$(cpu_ns "$pid")
    n=$(awk '/ requests in / {print $1; exit}' "$out")
    secs=$(awk '/ requests in / {v = $4; sub(/,$/, "", v); u = v; sub(/^[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
        print (u == "ms") ? v / 1000 : (u == "m") ? v * 60 : v; exit}' "$out")
    errs=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}
                /Non-2xx or 3xx responses:/ {print $5}' "$out" | awk '{s += $1} END {print s + 0}')
    p99=$(peer_p99_ms "$out")
    if [ -z "$n" ] || [ "$n" = 0 ] || [ -z "$secs" ]; then
        printf '%s\t%s\t%s\tt%s\t\t\t\t%s\t0\n' "$round" "$name" "$kind" "$threads" "${errs:-0}" >>"$PEER_TSV"
        return
    fi
    rate=$(awk -v n="$n" -v s="$secs" 'BEGIN { printf "%.1f", n / s }')
    cpu=$(awk -v a="$c0" -v b="$c1" -v n="$n" 'BEGIN { printf "%.3f", (b - a) / 1000 / n }')
    printf '%s\t%s\t%s\tt%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$kind" "$threads" "$rate" \
        "${p99:-}" "$cpu" "$errs" "$n" >>"$PEER_TSV"
}

# BULK_RUNS downloads of the BULK_MIB body through PORT, each with the proxy's CPU over it;
# appends one TSV line per download: round config bulk - MiB/s - cpu_us_per_MiB errors MiB.
peer_bulk() {
    local round=$1 name=$2 pid=$3 port=$4 i c0 c1 line code size secs
    local want=$((BULK_MIB * 1024 * 1024))
    for i in $(seq "$BULK_RUNS"); do
        c0=$(cpu_ns "$pid")
        line=$(curl -s -o /dev/null --max-time 120 -w '%{http_code} %{size_download} %{time_total}' \
            "http://127.0.0.1:$port/big.bin") || true
        c1=$(cpu_ns "$pid")
        read -r code size secs <<<"$line"
        if [ "${code:-}" = 200 ] && [ "${size%.*}" = "$want" ]; then
            awk -v r="$round" -v name="$name" -v m="$BULK_MIB" -v s="$secs" -v a="$c0" -v b="$c1" \
                'BEGIN { printf "%s\t%s\tbulk\t-\t%.1f\t\t%.3f\t0\t%s\n", r, name, m / s, (b - a) / 1000 / m, m }' \
                >>"$PEER_TSV"
        else
            printf '%s\t%s\tbulk\t-\t\t\t\t1\t0\n' "$round" "$name" >>"$PEER_TSV"
        fi
    done
}

# Measures configuration NAME once (round ROUND): start, warm up, keep-alive and new-connection
# runs in every shape, bulk, stop.
peer_measure() {
    local round=$1 name=$2 port pid="" try threads
    for try in 1 2; do
        port=$(free_ports 1)
        if [ "$name" = direct ]; then
            port=$BPORT
            break
        fi
        pid=$(peer_start "$name" "$port")
        PIDS+=("$pid")
        wait_listening "$pid" "$port" && break
        log "$name did not start on port $port (try $try): $(tail -qn2 "$PEER_DIR/$name.log" 2>/dev/null | tr '\n' ' ')"
        stop_pid "$pid"
        pid=""
    done
    if [ "$name" != direct ] && [ -z "$pid" ]; then
        printf '%s\t%s\tstart\t-\t\t\t\t1\t0\n' "$round" "$name" >>"$PEER_TSV"
        return
    fi
    [ "$name" = direct ] && pid=$BACKEND_PID
    sleep 0.3
    [ "$DURATION" -ge 5 ] && wrk -t2 -c"$KA_CONNS" -d1s "http://127.0.0.1:$port/" >/dev/null 2>&1
    for threads in $SHAPES; do
        log "round $round, $name: keep-alive, wrk -t$threads ..."
        peer_wrk "$round" "$name" "$pid" "$port" ka "$threads" "$KA_CONNS"
        log "round $round, $name: new connections, wrk -t$threads ..."
        peer_wrk "$round" "$name" "$pid" "$port" nc "$threads" "$NC_CONNS" -H 'Connection: close'
    done
    log "round $round, $name: bulk ..."
    peer_bulk "$round" "$name" "$pid" "$port"
    if [ "$name" != direct ]; then
        kill -0 "$pid" 2>/dev/null ||
            printf '%s\t%s\texited\t-\t\t\t\t1\t0\n' "$round" "$name" >>"$PEER_TSV"
        stop_pid "$pid"
    fi
}

# All rounds; in round r the order starts r-1 places further along, so that no configuration
# always runs first (or right after the same neighbour's leftovers).
peers_run() {
    local configs n r i k
    read -r -a configs <<<"$PEER_CONFIGS"
    : >"$PEER_TSV"
    n=${#configs[@]}
    for r in $(seq "$ROUNDS"); do
        for i in $(seq 0 $((n - 1))); do
            k=$(((i + r - 1) % n))
            peer_measure "$r" "${configs[$k]}"
        done
    done
}

# The Markdown report of the rounds (medians, ratios, raw values).
peers_report() {
    local labels=() name
    for name in $PEER_CONFIGS; do labels+=("$name|$(peer_label "$name")"); done
    python3 "$HERE/peers_report.py" "$PEER_TSV" "$DURATION" "$ROUNDS" "$KA_CONNS" "$NC_CONNS" \
        "$BULK_MIB" "$BULK_RUNS" "$(cpu_source)" "${labels[@]}"
}

# Which CPU clock cpu_ns reads (for the report).
cpu_source() {
    if [ -r "/proc/$$/task/$$/schedstat" ]; then
        echo "schedstat"
    else
        echo "ticks"
    fi
}
