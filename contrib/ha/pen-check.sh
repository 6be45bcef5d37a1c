#!/bin/sh
# keepalived's vrrp_script check for pen: succeeds (exit 0) when pen answers on its control
# socket and at least one of its servers takes new clients (and, if LISTEN is given, pen
# accepts a TCP connection there); fails (exit 1) otherwise, so that the VRRP instance gives
# the service address up to the other pen.
#
# Usage: pen-check.sh CONTROL [LISTEN]
#   CONTROL  pen's -C argument (a socket path, or [HOST:]PORT)
#   LISTEN   HOST:PORT where pen listens (e.g. 127.0.0.1:80 when pen listens on every
#            address): catches a pen that stopped accepting (SIGQUIT, graceful shutdown) while
#            its control socket still answers. Each check then opens one client connection
#            (and pen one to a server).
# Environment: PENCTL (default: penctl), PEN_CHECK_TIMEOUT in seconds (default: 2).
#
# A server counts as taking clients when its `servers` line has a port and is not marked
# `state drain`, `state maint`, `check down` or `ejected` (lines C pen would print have none of
# these words). A blacklisted server is not shown as such by `servers`: it still counts.
ctl=${1:?usage: pen-check.sh CONTROL [LISTEN]}
t=${PEN_CHECK_TIMEOUT:-2}
out=$(timeout "$t" "${PENCTL:-penctl}" "$ctl" servers 2>/dev/null) || exit 1
printf '%s\n' "$out" |
    grep ' addr ' |
    grep -v -e ' port 0 ' -e ' state drain' -e ' state maint' -e ' check down' -e ' ejected ' |
    grep -q . || exit 1
if [ -n "${2:-}" ]; then
    host=${2%:*} port=${2##*:}
    timeout "$t" bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null || exit 1
fi
exit 0
