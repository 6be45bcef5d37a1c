#!/usr/bin/env bash
# Soak test: mixed, checksummed TCP and UDP traffic through our pen for DURATION while backends
# are stopped and started, the -F file is reloaded with SIGHUP and control commands are sent;
# reports what the clients saw and whether pen's RSS and descriptor count stay flat. The work
# is done by benches/examples/soak/ (see the header of its main.rs and benches/README.md). Not
# part of CI.
#
# Usage: benches/soak/run.sh [DURATION]      DURATION: 90, 90s, 10m (default), 1.5h
#
# Environment:
#   REPORT=path    where the Markdown report goes (default target/soak/soak-DATE.md); it is
#                  also printed on stdout. Progress lines go to stderr every 10 s.
#   SOAK_ARGS=".." more driver options, e.g. "--mix short=8,bulk=1 --toggle-every 30"
#   PEN_BIN=path   test this pen binary instead of building target/release/pen
#   SKIP_BUILD=1   use the binaries already in target/release
#   KEEP_TMP=1     keep the working directory (pen logs, -F files, events.log)
#
# Exit status: the driver's (0 = PASS), 2 on a build or usage error. Everything runs on
# loopback with ephemeral ports; every process started here is stopped by its PID on exit.

set -uo pipefail

DURATION=${1:-10m}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
REPORT=${REPORT:-$ROOT/target/soak/soak-$(date +%Y%m%d-%H%M%S).md}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pen-soak.XXXXXX")
DRIVER_PID=
DONE=

log() { printf '%s\n' "$*" >&2; }

# Writes the report: the header (machine, date, commit) and the driver's part, if any.
write_report() {
    [ -n "$DONE" ] && return
    DONE=1
    [ -s "$TMP/report.md" ] || return
    mkdir -p "$(dirname "$REPORT")"
    {
        cat "$TMP/header.md"
        cat "$TMP/report.md"
    } >"$REPORT"
    cat "$REPORT"
    log "report: $REPORT"
}

# Stops the driver (it then stops its pens and writes its report), then any pen it left behind
# (only if the PID in its pid file is still a pen started with our working directory).
cleanup() {
    if [ -n "$DRIVER_PID" ] && kill -0 "$DRIVER_PID" 2>/dev/null; then
        kill -TERM "$DRIVER_PID" 2>/dev/null
        for _ in $(seq 600); do
            kill -0 "$DRIVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$DRIVER_PID" 2>/dev/null
        wait "$DRIVER_PID" 2>/dev/null
    fi
    local f pid
    for f in "$TMP"/*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f" 2>/dev/null)
        [ -n "$pid" ] || continue
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$TMP"; then
            kill -TERM "$pid" 2>/dev/null
            sleep 1
            kill -KILL "$pid" 2>/dev/null
        fi
    done
    write_report
    if [ -n "${KEEP_TMP:-}" ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$ROOT" || exit 2
if [ -z "${SKIP_BUILD:-}" ]; then
    log "building pen, penctl and the soak driver (release) ..."
    # Two builds: `--example soak` would restrict every listed package to that example, and
    # no binary would be built.
    what=(-p penctl)
    [ -z "${PEN_BIN:-}" ] && what+=(-p pen-bin)
    if ! { cargo build --release "${what[@]}" && cargo build --release -p pen-benches --example soak; } \
        >"$TMP/build.log" 2>&1; then
        tail -20 "$TMP/build.log" >&2
        log "build failed"
        exit 2
    fi
fi
PEN=${PEN_BIN:-$ROOT/target/release/pen}
PENCTL=$ROOT/target/release/penctl
DRIVER=$ROOT/target/release/examples/soak
for f in "$PEN" "$PENCTL" "$DRIVER"; do
    [ -x "$f" ] || { log "missing $f"; exit 2; }
done

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD 2>/dev/null || commit="$commit (with local changes)"
{
    echo "# pen soak test, $DURATION"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC') (start)"
    echo "- command: \`benches/soak/run.sh $DURATION\`${SOAK_ARGS:+ with SOAK_ARGS=\"$SOAK_ARGS\"}"
    echo "- commit: $commit; pen: \`${PEN#"$ROOT"/}\` ($("$PEN" -V 2>&1 | head -1))"
    echo "- machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, Linux $(uname -r)"
    echo "- load before the start: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min); busiest other processes:" \
        "$(ps -eo pcpu=,comm= --sort=-pcpu | head -5 | awk '{printf "%s%s %s%%", (NR > 1 ? ", " : ""), $2, $1}')"
    echo
} >"$TMP/header.md"

log "soak run of $DURATION; progress every 10 s on stderr"
# shellcheck disable=SC2086 # SOAK_ARGS is split on purpose
"$DRIVER" --pen "$PEN" --penctl "$PENCTL" --duration "$DURATION" --dir "$TMP" ${SOAK_ARGS:-} \
    >"$TMP/report.md" &
DRIVER_PID=$!
wait "$DRIVER_PID"
rc=$?
DRIVER_PID=
write_report
exit "$rc"
