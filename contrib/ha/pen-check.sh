#!/bin/sh
# keepalived's vrrp_script check for pen: succeeds (exit 0) when pen answers on its control
# socket and at least one of its servers takes new clients; fails (exit 1) otherwise, so the
# VRRP instance gives the service address up to the other pen.
#
# Usage: pen-check.sh CONTROL        CONTROL: pen's -C argument (a socket path or [HOST:]PORT)
# Environment: PENCTL (default: penctl), PEN_CHECK_TIMEOUT in seconds (default: 2).
#
# A server counts as taking clients when its `servers` line has a port and is not marked
# `state drain`, `state maint`, `check down` or `ejected` (lines C pen would print have none of
# these words). A blacklisted server is not shown as such by `servers`: it still counts.
ctl=${1:?usage: pen-check.sh CONTROL}
out=$(timeout "${PEN_CHECK_TIMEOUT:-2}" "${PENCTL:-penctl}" "$ctl" servers 2>/dev/null) || exit 1
printf '%s\n' "$out" |
    grep ' addr ' |
    grep -v -e ' port 0 ' -e ' state drain' -e ' state maint' -e ' check down' -e ' ejected ' |
    grep -q . || exit 1
exit 0
