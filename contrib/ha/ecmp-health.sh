#!/bin/bash
# Router-side health for the active/active recipe (README.md, "Active/active"): keeps a
# resilient next-hop group made of the pens that accept TCP connections on the service port.
#
# Usage: ecmp-health.sh GROUP PORT NHID[,NHID...]=ADDRESS...
#   GROUP    the id of the resilient group the service route uses (ip route ... nhid GROUP)
#   PORT     pen's listening port
#   NHID[,NHID...]=ADDRESS  one per pen: the ids of its next hops (two per pen, see README.md)
#            and the address to probe (its own address on the router's side)
# Environment: INTERVAL (seconds between rounds, default 1; fractions allowed),
#              PROBE_TIMEOUT (seconds per probe, default 1), ONCE=1 (one round, then exit).
#
# A pen that fails a probe leaves the group at once: the kernel moves only the buckets that
# pointed to it, so flows on the other pens keep their pen. A pen that answers again rejoins;
# buckets move to it only once idle for the group's idle_timer, so established flows are not
# sent to a pen that has no state for them. When every probe fails the group is left as it
# is (better a partly working route than none).
set -u
usage="usage: ecmp-health.sh GROUP PORT NHID[,NHID...]=ADDRESS..."
group=${1:?$usage}
port=${2:?$usage}
shift 2
[ $# -gt 0 ] || { echo "$usage" >&2; exit 2; }

probe() { # ADDRESS: whether a TCP connection to ADDRESS:PORT opens in time
    timeout "${PROBE_TIMEOUT:-1}" bash -c "exec 3<>/dev/tcp/$1/$port" 2>/dev/null
}

current=$(ip nexthop show id "$group" | sed -n 's/.* group \([0-9/]*\) .*/\1/p')
while :; do
    live=
    for member in "$@"; do
        ids=${member%%=*}
        if probe "${member#*=}"; then live=${live:+$live/}${ids//,//}; fi
    done
    if [ -n "$live" ] && [ "$live" != "$current" ]; then
        if ip nexthop replace id "$group" group "$live" type resilient; then
            echo "ecmp-health: group $group now $live (was $current)"
            current=$live
        fi
    fi
    [ "${ONCE:-0}" = 1 ] && exit 0
    sleep "${INTERVAL:-1}"
done
