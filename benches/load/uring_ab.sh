#!/usr/bin/env bash
# io_uring engine vs epoll engine of one pen binary, side by side in one run: ab.sh with two
# thin wrappers that exec the same binary with `--engine epoll` and `--engine uring` (exec
# keeps the PID, so the CPU time measured is pen's own). Same columns as ab.sh: keep-alive
# req/s and CPU us per request, new connections and CPU us per connection, bulk MB/s and CPU
# ms per MiB, RSS; medians of ROUNDS interleaved rounds.
#
# Usage: benches/load/uring_ab.sh [PEN_BIN]     (default: target/release/pen)
# Environment: as ab.sh (ROUNDS, DURATION, BULK_MIB, IDLE_CONNS, PEN_WORKERS, PEN_CMDS);
# the report goes to benches/results/uring-ab-latest.md unless AB_OUT says otherwise.

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PEN=${1:-$ROOT/target/release/pen}
case $PEN in /*) ;; *) PEN=$PWD/$PEN ;; esac
[ -x "$PEN" ] || { echo "$0: $PEN is not an executable file (cargo build --release?)" >&2; exit 2; }
WRAP=$(mktemp -d /tmp/pen-uring-ab.XXXXXX)
trap 'rm -rf "$WRAP"' EXIT
for engine in epoll uring; do
    printf '#!/bin/sh\nexec %q --engine %s "$@"\n' "$PEN" "$engine" >"$WRAP/pen-$engine"
    chmod +x "$WRAP/pen-$engine"
done
export A_LABEL=${A_LABEL:-epoll} B_LABEL=${B_LABEL:-uring}
export AB_OUT=${AB_OUT:-$ROOT/benches/results/uring-ab-latest.md}
"$ROOT/benches/load/ab.sh" "$WRAP/pen-epoll" "$WRAP/pen-uring"
# The wrappers' own lines in the report name the scripts: say which binary they ran.
{
    echo
    echo "- both wrappers exec \`$PEN\` (sha256 $(sha256sum "$PEN" | cut -c1-16)," \
        "built $(date -u -r "$PEN" '+%Y-%m-%d %H:%M UTC')) with \`--engine epoll\` (A) and \`--engine uring\` (B)"
} >>"$AB_OUT"
