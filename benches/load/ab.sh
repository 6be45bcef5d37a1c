#!/usr/bin/env bash
# A/B load benchmark: two pen binaries (e.g. before and after a refactor) measured side by side
# in one run, in front of one nginx backend, with the proxy's CPU time per unit of work.
#
# Usage: benches/load/ab.sh A_BIN B_BIN
#
# For each round, A then B (B then A in every other round, so that neither always goes first),
# the binary is started fresh in the foreground (pen -f -x 10000 [--workers N], as run.sh starts
# our pen) on a free loopback port and measured as in run.sh:
#   RSS at start           VmRSS before any traffic
#   RSS with idle conns    VmRSS with IDLE_CONNS idle relayed keep-alive connections open
#                          (idle_conns.py; measured first, on the fresh process)
#   (a) keep-alive         wrk -tN -c64 -d${DURATION}s --latency: req/s, p99, CPU us per request
#   (b) new connections    the same with -H 'Connection: close': req/s, p99, CPU us per connection
# and, for (a) and (b), the proxy's context switches (voluntary + involuntary, every thread) per
# request or connection: its sleeps and wake-ups, which explain most of the CPU spread
#   (c) bulk               curl of the BULK_MIB body, median of 3: MB/s (10^6 B), CPU ms per MiB
# CPU is the proxy's run time (user + system, every thread, from the exact sum_exec_runtime of
# /proc/PID/task/TID/schedstat; utime + stime in clock ticks where schedstat is missing) over
# the phase, divided by the requests, connections or MiB the phase completed. Then the binary is
# stopped (by PID) before the other one starts.
#
# Output: a Markdown table (one row per binary and round, the median of the rounds per binary,
# the ratio B/A of the medians and each binary's spread over the rounds) on stdout and in
# benches/results/ab-latest.md (AB_OUT=path to write elsewhere), headed by the date, machine,
# kernel, load average at the start and end, the binaries and the exact command.
#
# Environment:
#   A_LABEL=A, B_LABEL=B  names of the two binaries in the table
#   ROUNDS=3              rounds (each measures both binaries once)
#   DURATION=5            seconds per wrk run (a 1 s warm-up precedes keep-alive when >= 5)
#   BULK_MIB=256          size of the bulk body
#   IDLE_CONNS=4000       idle connections for the RSS column
#   PEN_WORKERS=          if set, passed to both binaries as --workers N
#   WRK_THREADS=2         wrk's threads (-t) for keep-alive and new connections (1: the load
#                         shape of the peer comparison's first table)
#   PHASES="idle ka nc bulk"  the phases to measure (the others' cells are n/a): e.g. PHASES=ka
#                         for CPU per keep-alive request alone, PHASES="nc" per new connection
#   PEN_CMDS=             pen commands given to both binaries with -O, separated by ';'
#                         (e.g. PEN_CMDS='conn_per_client 1000;connect_on_data')
#   AB_OUT=               the report file (default benches/results/ab-latest.md)
#   KEEP_TMP=1            keep the temporary directory (logs, raw wrk and curl output)
#
# Every process this script starts is stopped by its own PID on exit, also on failure.

set -uo pipefail

usage() {
    echo "usage: [ROUNDS=3] [DURATION=5] [BULK_MIB=256] [IDLE_CONNS=4000] [PEN_WORKERS=N]" \
        "[A_LABEL=A] [B_LABEL=B] $0 A_BIN B_BIN" >&2
    exit 2
}
[ $# -eq 2 ] || usage

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
BULK_MIB=${BULK_MIB:-256}
IDLE_CONNS=${IDLE_CONNS:-4000}
PEN_WORKERS=${PEN_WORKERS:-}
PEN_CMDS=${PEN_CMDS:-}
WRK_THREADS=${WRK_THREADS:-2}
PHASES=${PHASES:-idle ka nc bulk}
# PEN_CMDS as -O words: each command one argv word, as pen reads -O.
PEN_O=()
IFS=';' read -r -a _cmds <<<"$PEN_CMDS"
for _c in "${_cmds[@]}"; do
    [ -n "${_c// /}" ] && PEN_O+=(-O "$_c")
done
A_LABEL=${A_LABEL:-A}
B_LABEL=${B_LABEL:-B}
for v in ROUNDS DURATION BULK_MIB IDLE_CONNS WRK_THREADS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "$0: $v must be a positive integer, not '${!v}'" >&2; exit 2; }
done
[ -z "$PEN_WORKERS" ] || [[ $PEN_WORKERS =~ ^[1-9][0-9]*$ ]] ||
    { echo "$0: PEN_WORKERS must be a positive integer" >&2; exit 2; }

# The exact command, as it can be pasted again, with the settings in effect spelled out.
COMMAND="ROUNDS=$ROUNDS DURATION=$DURATION BULK_MIB=$BULK_MIB IDLE_CONNS=$IDLE_CONNS"
[ -n "$PEN_WORKERS" ] && COMMAND+=" PEN_WORKERS=$PEN_WORKERS"
[ "$WRK_THREADS" != 2 ] && COMMAND+=" WRK_THREADS=$WRK_THREADS"
[ "$PHASES" != "idle ka nc bulk" ] && COMMAND+=" PHASES=$(printf '%q' "$PHASES")"
[ -n "$PEN_CMDS" ] && COMMAND+=" PEN_CMDS=$(printf '%q' "$PEN_CMDS")"
[ "$A_LABEL" != A ] && COMMAND+=" A_LABEL=$(printf '%q' "$A_LABEL")"
[ "$B_LABEL" != B ] && COMMAND+=" B_LABEL=$(printf '%q' "$B_LABEL")"
COMMAND+=" $(printf '%q ' "$0" "$@")"
COMMAND=${COMMAND% }

# Binaries as absolute paths (relative ones are taken from the current directory).
abs_path() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
declare -A BIN LABEL
BIN[A]=$(abs_path "$1")
BIN[B]=$(abs_path "$2")
LABEL[A]=$A_LABEL
LABEL[B]=$B_LABEL
for k in A B; do
    if [ ! -f "${BIN[$k]}" ] || [ ! -x "${BIN[$k]}" ]; then
        echo "$0: ${BIN[$k]} is not an executable file" >&2
        exit 2
    fi
done

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT=${AB_OUT:-$ROOT/benches/results/ab-latest.md}
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
START_EPOCH=$(date +%s)

need_tools wrk curl nginx python3 ss timeout
raise_nofile

read -r BPORT <<<"$(free_ports 1)"
log "backend nginx on 127.0.0.1:$BPORT (a ${BULK_MIB} MiB body) ..."
start_backend

# ---------------------------------------------------------------------------------------------
# Measurements. V[KEY,ROUND,COLUMN] holds the raw number (or nothing if it could not be measured).

COLS=(ka ka_p99 ka_cpu ka_cs nc nc_p99 nc_cpu nc_cs bulk bulk_cpu rss0 rss_idle)
declare -A V
NOTES=()
ORDER=() # "KEY ROUND" in the order measured

# Requests completed by a wrk run (from its "N requests in Xs" line).
wrk_requests() { awk '/ requests in / {print $1; exit}' "$1"; }

# wrk's 99th percentile latency in ms (wrk prints us, ms, s or m).
wrk_p99_ms() {
    awk '$1 == "99%" {
        v = $2; u = v; sub(/^[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
        f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1
        if (f > 0) printf "%.3f", v * f
        exit }' "$1"
}

# CPU time of NS nanoseconds per unit of N, scaled by SCALE (1e6: us, 1e3: ms); empty if N is 0.
per_unit() {
    awk -v t="$1" -v n="${2:-0}" -v s="$3" 'BEGIN { if (n > 0) printf "%.4f", t / 1e9 * s / n }'
}

# Whether PHASE is one of PHASES.
phase() { [[ " $PHASES " == *" $1 "* ]]; }

# Stores the number of a run_wrk cell ("1234", "1234 (5 errors)" or "n/a") in V[KEY,ROUND,COL]
# and adds a note for errors. Usage: wrk_rate CELL KEY ROUND COL WHAT.
wrk_rate() {
    local cell=$1
    [[ $cell == *errors* ]] && NOTES+=("$5: wrk saw ${cell#* }")
    [[ ${cell%% *} =~ ^[0-9]+$ ]] && V[$2,$3,$4]=${cell%% *}
}

# measure KEY ROUND: one binary, one round.
measure() {
    local key=$1 round=$2 bin=${BIN[$1]} label=${LABEL[$1]} name="pen-$1-r$2" port pid="" try
    local idle t0 t1 t2 t3 ka nc bulk n ok tag="round $round, ${LABEL[$1]}"
    ORDER+=("$key $round")
    for try in 1 2; do
        port=$(free_ports 1)
        pid=$(start_pen_on "$port" "$bin" "$name" "${PEN_O[@]}")
        PIDS+=("$pid")
        wait_listening "$pid" "$port" && break
        log "$label did not start on port $port (try $try); its log says: $(tail -n3 "$TMP/$name.log" 2>/dev/null | tr '\n' ' ')"
        stop_pid "$pid"
        pid=""
    done
    if [ -z "$pid" ]; then
        NOTES+=("$tag: did not start; its log says: $(tail -n1 "$TMP/$name.log" 2>/dev/null | grep . || echo nothing)")
        return
    fi
    sleep 0.3
    V[$key,$round,rss0]=$(awk -v k="$(rss_kib "$pid")" 'BEGIN { printf "%.1f", k / 1024 }')
    if phase idle; then
        log "$tag: $IDLE_CONNS idle connections ..."
        idle=$(idle_rss "$pid" "$port")
        if [[ $idle =~ ^([0-9.]+)\ MiB ]]; then
            V[$key,$round,rss_idle]=${BASH_REMATCH[1]}
            [[ $idle == *" of "* ]] && NOTES+=("$tag: only ${idle#*(} idle connections opened")
        else
            NOTES+=("$tag: idle connections could not be opened")
        fi
        sleep 0.3 # the proxy closes the idle connections before the CPU counts start
    fi
    if [ "$DURATION" -ge 5 ]; then
        timeout --foreground -k 5 30 wrk -t2 -c64 -d1s "http://127.0.0.1:$port/" >/dev/null 2>&1 # warm-up
    fi

    if phase ka; then
        log "$tag: keep-alive ..."
        t0=$(cpu_ns "$pid") s0=$(ctx_switches "$pid")
        ka=$(run_wrk "$port" "$name-keepalive" --latency)
        t1=$(cpu_ns "$pid") s1=$(ctx_switches "$pid")
        wrk_rate "$ka" "$key" "$round" ka "$tag, keep-alive"
        V[$key,$round,ka_p99]=$(wrk_p99_ms "$TMP/wrk-$name-keepalive.txt")
        n=$(wrk_requests "$TMP/wrk-$name-keepalive.txt")
        V[$key,$round,ka_cpu]=$(per_unit $((t1 - t0)) "$n" 1e6)
        V[$key,$round,ka_cs]=$(per_unit $((s1 - s0)) "$n" 1e9)
    fi
    if phase nc; then
        log "$tag: new connections ..."
        t1=$(cpu_ns "$pid") s1=$(ctx_switches "$pid")
        nc=$(run_wrk "$port" "$name-close" --latency -H 'Connection: close')
        t2=$(cpu_ns "$pid") s2=$(ctx_switches "$pid")
        wrk_rate "$nc" "$key" "$round" nc "$tag, new connections"
        V[$key,$round,nc_p99]=$(wrk_p99_ms "$TMP/wrk-$name-close.txt")
        n=$(wrk_requests "$TMP/wrk-$name-close.txt")
        V[$key,$round,nc_cpu]=$(per_unit $((t2 - t1)) "$n" 1e6)
        V[$key,$round,nc_cs]=$(per_unit $((s2 - s1)) "$n" 1e9)
    fi
    if phase bulk; then
        log "$tag: bulk ..."
        t2=$(cpu_ns "$pid")
        bulk=$(run_bulk "$port")
        t3=$(cpu_ns "$pid")
        [ "$bulk" != n/a ] && V[$key,$round,bulk]=$bulk
        # MiB that arrived whole (run_bulk keeps curl's "code size speed" lines).
        ok=$(awk -v want=$((BULK_MIB * 1024 * 1024)) '$1 == 200 && int($2) == want' "$TMP/bulk-$port.txt" | wc -l)
        [ "$ok" -lt 3 ] && NOTES+=("$tag: $((3 - ok)) of 3 bulk downloads failed")
        V[$key,$round,bulk_cpu]=$(per_unit $((t3 - t2)) $((ok * BULK_MIB)) 1e3)
    fi

    kill -0 "$pid" 2>/dev/null || NOTES+=("$tag: pen exited during the run (see its log)")
    stop_pid "$pid"
}

log "A = ${LABEL[A]}: ${BIN[A]}"
log "B = ${LABEL[B]}: ${BIN[B]}"
for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then order="A B"; else order="B A"; fi
    for key in $order; do measure "$key" "$round"; done
done

# ---------------------------------------------------------------------------------------------
# Report.

# Prints the values of COLUMN for KEY over the rounds, one per line (numbers only).
values() {
    local key=$1 col=$2 r
    for r in $(seq "$ROUNDS"); do
        [ -n "${V[$key,$r,$col]:-}" ] && echo "${V[$key,$r,$col]}"
    done
}
median() { values "$1" "$2" | sort -g | awk '{ v[NR] = $1 } END { if (NR) printf "%.6g", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# (max - min) / median over the rounds, in percent; "-" with fewer than two values.
spread() {
    local m
    m=$(median "$1" "$2")
    values "$1" "$2" | sort -g | awk -v m="$m" '{ v[NR] = $1 } END { if (NR < 2 || m == 0) print "-"; else printf "%.0f%%", (v[NR] - v[1]) / m * 100 }'
}
# Formats a number for COLUMN (empty: n/a).
fmt() {
    local col=$1 v=$2 f
    [ -z "$v" ] && { echo "n/a"; return; }
    case $col in
    ka | nc | bulk) f="%.0f" ;;
    ka_p99 | nc_p99 | bulk_cpu | ka_cs | nc_cs) f="%.2f" ;;
    *) f="%.1f" ;;
    esac
    awk -v v="$v" -v f="$f" 'BEGIN { printf f, v }'
}
row() {
    local first=$1 key=$2 round=$3 cells="" col
    for col in "${COLS[@]}"; do cells+=" $(fmt "$col" "${V[$key,$round,$col]:-}") |"; done
    echo "| $first | ${LABEL[$key]} |$cells"
}
median_row() {
    local key=$1 cells="" col
    for col in "${COLS[@]}"; do cells+=" **$(fmt "$col" "$(median "$key" "$col")")** |"; done
    echo "| median of $ROUNDS | ${LABEL[$key]} |$cells"
}
ratio_row() {
    local cells="" col a b
    for col in "${COLS[@]}"; do
        a=$(median A "$col") b=$(median B "$col")
        if [ -n "$a" ] && [ -n "$b" ] && awk -v a="$a" 'BEGIN { exit !(a > 0) }'; then
            cells+=" $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / a }') |"
        else
            cells+=" - |"
        fi
    done
    echo "| ratio B/A | ${LABEL[B]} / ${LABEL[A]} |$cells"
}
spread_row() {
    local key=$1 cells="" col
    for col in "${COLS[@]}"; do cells+=" $(spread "$key" "$col") |"; done
    echo "| spread | ${LABEL[$key]} |$cells"
}
bin_line() {
    local key=$1 f=${BIN[$1]} ver
    ver=$(timeout 5 "$f" --version 2>/dev/null | head -1)
    local name=$key
    [ "${LABEL[$key]}" != "$key" ] && name="$key = ${LABEL[$key]}"
    echo "- $name: \`$f\`, ${ver:-no --version}, $(stat -c %s "$f") bytes," \
        "sha256 $(sha256sum "$f" | cut -c1-16), built $(date -u -r "$f" '+%Y-%m-%d %H:%M UTC')"
}

report() {
    local cpu_clock="sum_exec_runtime of /proc/PID/task/TID/schedstat, exact"
    [ -r "/proc/$$/task/$$/schedstat" ] || cpu_clock="utime + stime of /proc/PID/stat, ${CLK_TCK} ticks/s"
    echo "# A/B load benchmark: ${LABEL[A]} vs ${LABEL[B]}"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); the run took $(($(date +%s) - START_EPOCH)) s"
    echo "- machine: $NCPU CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r)"
    echo "- load average (1, 5, 15 min): $LOADAVG_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
    echo "- command: \`$COMMAND\` (in $ROOT, commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown))"
    bin_line A
    bin_line B
    echo "- each binary: \`-f -x 10000${PEN_O[*]:+ ${PEN_O[*]}}${PEN_WORKERS:+ --workers $PEN_WORKERS}\` 127.0.0.1:PORT -> one nginx backend" \
        "(worker_processes auto); started fresh for each round, order A B, then B A, alternating"
    echo "- keep-alive: wrk -t$WRK_THREADS -c64 -d${DURATION}s --latency on a $(stat -c %s "$TMP/www/index.html")-byte page;" \
        "new-conn: the same with -H 'Connection: close' (one client and one backend connection per request);" \
        "bulk: curl, ${BULK_MIB} MiB body, median of 3 (MB = 10^6 B); p99 from wrk's latency distribution"
    echo "- CPU: run time of the proxy (user + system, all threads, $cpu_clock) over the phase," \
        "per request (keep-alive), per connection (new-conn) and per MiB (bulk, the 3 downloads); phases measured: $PHASES"
    echo "- switches: the proxy's context switches (voluntary + involuntary, all threads, /proc/PID/task/TID/status)" \
        "over the phase per request or connection: each is a sleep and a wake-up (or a preemption)"
    echo "- RSS: VmRSS before any traffic, and with $IDLE_CONNS idle relayed connections (each has done one request)" \
        "on the fresh process"
    echo "- ratio B/A of the medians: above 1 is better for req/s and MB/s, below 1 is better for p99, CPU and RSS;" \
        "spread: (max - min) / median over the rounds, the noise to compare a ratio with"
    echo
    echo "| round | binary | keep-alive req/s | keep-alive p99 ms | keep-alive CPU µs/req | keep-alive switches/req" \
        "| new-conn req/s | new-conn p99 ms | new-conn CPU µs/conn | new-conn switches/conn | bulk MB/s | bulk CPU ms/MiB" \
        "| RSS at start MiB | RSS with $IDLE_CONNS idle MiB |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    local e
    for e in "${ORDER[@]}"; do
        # shellcheck disable=SC2086 # "KEY ROUND"
        set -- $e
        row "$2" "$1" "$2"
    done
    median_row A
    median_row B
    ratio_row
    if [ "$ROUNDS" -ge 2 ]; then
        spread_row A
        spread_row B
    fi
    if [ "${#NOTES[@]}" -gt 0 ]; then
        echo
        printf -- '- %s\n' "${NOTES[@]}"
    fi
}

mkdir -p "$(dirname "$OUT")"
report | tee "$OUT"
log "written to $OUT"
