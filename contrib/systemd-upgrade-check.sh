#!/bin/bash
# Emulates what systemd does with contrib/pen.service (Type=forking, PIDFile=) across a binary
# upgrade, for machines where systemd itself cannot be run (a container without it as pid 1).
# It does not run systemd; it does the same steps, in the same order, and checks what systemd
# would need:
#
#  1. ExecStart: start pen as a daemon with a pid file; systemd waits for the started process
#     to exit, then reads the pid file: that pid is the service's main pid (MAINPID).
#  2. The upgrade: `systemctl kill -s USR2 --kill-whom=main pen` is kill -USR2 MAINPID.
#  3. When the main pid exits, systemd reads the pid file again ("Trying to read PID file ... in
#     case it changed") and takes the pid found there as the new main pid if it is alive and
#     belongs to the service's control group. A process's children inherit its control group:
#     the new pen qualifies if it descends from the service's first process, which the check
#     sees as its being in the session that first daemon made. If the file still named the old
#     pid, or a dead one, systemd would consider the service stopped and kill what remains.
#  4. The service serves on: a request through the listening port is answered, and penctl's
#     `pid` says the new pid.
#
# Usage: contrib/systemd-upgrade-check.sh [PEN] [PENCTL] [UPGRADES]
#   (defaults: target/debug/pen, target/debug/penctl, 3). Needs python3 (the backend).
# Exit status 0 when every step held; otherwise the step that failed is printed.
set -euo pipefail

PEN=$(realpath "${1:-target/debug/pen}")
PENCTL=$(realpath "${2:-target/debug/penctl}")
UPGRADES=${3:-3}

dir=$(mktemp -d /tmp/pen-systemd-check.XXXXXX)
pids_to_stop=()
cleanup() {
    for p in "${pids_to_stop[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -s "$dir/pen.pid" ]; then kill "$(cat "$dir/pen.pid")" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

alive() { # not gone, not a zombie
    [ -r "/proc/$1/stat" ] && ! awk '{ exit ($3 == "Z") ? 0 : 1 }' "/proc/$1/stat" 2>/dev/null
}

backend_port=$(free_port)
listen_port=$(free_port)
control_port=$(free_port)

# The backend: answers every connection with "ok".
python3 - "$backend_port" <<'EOF' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
while True:
    c, _ = s.accept()
    c.sendall(b"ok\n")
    c.close()
EOF
pids_to_stop+=($!)
for _ in $(seq 1 500); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $backend_port), timeout=1)" \
        2>/dev/null && break
    sleep 0.01
done

request() {
    python3 - "$listen_port" <<'EOF'
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
print(c.recv(64).decode().strip())
EOF
}

# 1. ExecStart (Type=forking): the started process must exit once the daemon serves, with the
#    pid file written.
# As root, pen (as C pen) opens a control socket only with -u (the unit runs it as User=pen).
user=()
if [ "$(id -u)" = 0 ]; then user=(-u root); fi
"$PEN" -p "$dir/pen.pid" "${user[@]}" -C "127.0.0.1:$control_port" "127.0.0.1:$listen_port" \
    "127.0.0.1:$backend_port" || fail "ExecStart: pen exited with $?"
[ -s "$dir/pen.pid" ] || fail "ExecStart: no pid file when the started process exited"
main=$(cat "$dir/pen.pid")
alive "$main" || fail "ExecStart: the pid file names $main, which is not running"
[ "$(request)" = ok ] || fail "ExecStart: no answer through pen"
sid=$(ps -o sid= -p "$main" | tr -d ' ')
echo "started: MAINPID=$main (session $sid)"

for k in $(seq 1 "$UPGRADES"); do
    # 2. The upgrade.
    kill -USR2 "$main"
    # While the old pen runs, the new one appears in the pid file.
    new=
    for _ in $(seq 1 1500); do
        p=$(cat "$dir/pen.pid" 2>/dev/null || true)
        if [ -n "$p" ] && [ "$p" != "$main" ] && alive "$p"; then new=$p; break; fi
        alive "$main" || break
        sleep 0.01
    done
    [ -n "$new" ] || fail "upgrade $k: no new pid in the pid file while the old pen ($main) ran"
    # Descended from the service's first process: the new pen is in the session the first
    # daemon made (a process joins a session only by being forked from a member, and forked
    # processes inherit their parent's control group).
    sid_new=$(ps -o sid= -p "$new" | tr -d ' ')
    [ "$sid_new" = "$sid" ] || fail "upgrade $k: new pen $new is in session $sid_new, not the service's $sid: not in the service's control group"
    # 3. The main pid exits; systemd re-reads the pid file then.
    for _ in $(seq 1 1000); do alive "$main" || break; sleep 0.01; done
    alive "$main" && fail "upgrade $k: the old pen $main still runs 10 s after the upgrade"
    reread=$(cat "$dir/pen.pid")
    [ "$reread" = "$new" ] || fail "upgrade $k: after the old pen exited the pid file says '$reread', not $new"
    alive "$reread" || fail "upgrade $k: the pid file names $reread, which is not running"
    # 4. It serves, and it is the pen the pid file names.
    [ "$(request)" = ok ] || fail "upgrade $k: no answer through pen"
    said=$("$PENCTL" "127.0.0.1:$control_port" pid)
    [ "$said" = "$new" ] || fail "upgrade $k: penctl pid says '$said', the pid file $new"
    echo "upgrade $k: MAINPID $main -> $new (same session; the pid file named it when the old one exited)"
    main=$new
done
echo "PASS: $UPGRADES upgrade(s); systemd (not run here) would have followed each new main pid"
