#!/bin/sh
# A one-machine lab for the two HA recipes of this directory, in network namespaces:
#
#   client --- router ===(bridge, 10.78.2.0/24)=== pen1, pen2 ===(bridge, 10.78.3.0/24)=== servers
#
# client  10.78.1.2, plus every address of 10.78.128.0/17 (a local route) to act as many clients
# router  10.78.1.1 and 10.78.2.1; ECMP route 10.78.50.1 -> resilient group {pen1, pen2}
# pen1    10.78.2.11 and 10.78.3.11; 10.78.50.1 on lo (the ECMP service address)
# pen2    10.78.2.12 and 10.78.3.12; 10.78.50.1 on lo
#         10.78.2.100 (the VRRP service address) lives on whichever pen keepalived makes master
# servers 10.78.3.21 .. 10.78.3.24
#
# Usage: lab.sh up|down [PREFIX]   (PREFIX names the namespaces: PREFIX-client, ...; default penha)
# Root only. Touches nothing outside the namespaces it creates; `down` deletes them.
set -eu

cmd=${1:?usage: lab.sh up|down [PREFIX]}
p=${2:-penha}
case $p in *[!A-Za-z0-9_-]*|'') echo "lab.sh: PREFIX: letters, digits, - and _ only" >&2; exit 2 ;; esac
C=$p-client R=$p-router P1=$p-pen1 P2=$p-pen2 S=$p-servers

down() {
    for ns in "$C" "$R" "$P1" "$P2" "$S"; do ip netns del "$ns" 2>/dev/null || true; done
}

up() {
    for ns in "$C" "$R" "$P1" "$P2" "$S"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    # client <-> router
    ip link add eth0 netns "$C" type veth peer name c0 netns "$R"
    ip -n "$C" addr add 10.78.1.2/24 dev eth0
    ip -n "$C" link set eth0 up
    ip -n "$C" route add default via 10.78.1.1
    # Every address of 10.78.128.0/17 is local to the client (it may bind any of them).
    ip -n "$C" route add local 10.78.128.0/17 dev lo
    ip -n "$R" addr add 10.78.1.1/24 dev c0
    ip -n "$R" link set c0 up
    ip -n "$R" route add 10.78.128.0/17 via 10.78.1.2
    # router <-> pens: one bridge, so VRRP's multicast reaches both pens
    ip -n "$R" link add br0 type bridge
    ip -n "$R" addr add 10.78.2.1/24 dev br0
    ip -n "$R" link set br0 up
    # pens <-> servers: one bridge in the servers' namespace
    ip -n "$S" link add br0 type bridge
    for a in 21 22 23 24; do ip -n "$S" addr add 10.78.3.$a/24 dev br0; done
    ip -n "$S" link set br0 up
    i=1
    for ns in "$P1" "$P2"; do
        ip link add front netns "$ns" type veth peer name p$i netns "$R"
        ip link add back netns "$ns" type veth peer name p$i netns "$S"
        ip -n "$R" link set p$i master br0 up
        ip -n "$S" link set p$i master br0 up
        ip -n "$ns" addr add 10.78.2.1$i/24 dev front
        ip -n "$ns" addr add 10.78.3.1$i/24 dev back
        ip -n "$ns" link set front up
        ip -n "$ns" link set back up
        ip -n "$ns" route add default via 10.78.2.1
        # The ECMP service address: local on every pen.
        ip -n "$ns" addr add 10.78.50.1/32 dev lo
        i=$((i + 1))
    done
    # The router: forward, hash flows on the 5-tuple, route the service address over a
    # resilient next-hop group of the two pens. Two next hops per pen (1 and 11 for pen1, 2
    # and 12 for pen2): with a single member left the kernel stops marking buckets busy, and
    # a pen coming back would then take half the buckets at once, active flows included.
    ip netns exec "$R" sysctl -qw net.ipv4.ip_forward=1
    ip netns exec "$R" sysctl -qw net.ipv4.fib_multipath_hash_policy=1
    ip -n "$R" nexthop add id 1 via 10.78.2.11 dev br0
    ip -n "$R" nexthop add id 11 via 10.78.2.11 dev br0
    ip -n "$R" nexthop add id 2 via 10.78.2.12 dev br0
    ip -n "$R" nexthop add id 12 via 10.78.2.12 dev br0
    ip -n "$R" nexthop add id 100 group 1/11/2/12 type resilient buckets 64 idle_timer 10
    ip -n "$R" route add 10.78.50.1/32 nhid 100
}

case $cmd in
up) trap down EXIT; down; up; trap - EXIT ;;  # a failed step leaves nothing behind
down) down ;;
*) echo "usage: lab.sh up|down [PREFIX]" >&2; exit 2 ;;
esac
