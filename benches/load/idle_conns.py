#!/usr/bin/env python3
"""Hold many idle, relayed HTTP keep-alive connections open through a proxy.

Each connection sends one complete `GET /` and reads the whole response, which proves the
proxy has connected it to the backend and relayed bytes both ways; then it sits idle. Once
all are open the helper writes "<opened> <failed>" to the status file and waits until the
hold file is removed (or the hold time runs out), then closes everything and exits.

Usage: idle_conns.py HOST PORT COUNT STATUS_FILE HOLD_FILE [MAX_HOLD_SECONDS]
Python standard library only.
"""

import os
import resource
import socket
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: idle_conns\r\n\r\n"


def raise_fd_limit(need):
    """Raise the soft open-file limit towards the hard limit so COUNT sockets fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need + 64
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


def read_response(sock):
    """Read one HTTP/1.1 response with a Content-Length body; True if it was a 200."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        body += chunk
    return head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200")


def open_one(host, port):
    """One relayed connection that has completed a request, or None on failure."""
    sock = socket.create_connection((host, port), timeout=5)
    try:
        sock.sendall(REQUEST)
        if read_response(sock):
            return sock
    except OSError:
        pass
    sock.close()
    return None


def main():
    if len(sys.argv) not in (6, 7):
        sys.stderr.write(__doc__)
        return 2
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    status_file, hold_file = sys.argv[4], sys.argv[5]
    max_hold = float(sys.argv[6]) if len(sys.argv) == 7 else 120.0
    raise_fd_limit(count)

    held, failed = [], 0
    for _ in range(count):
        try:
            sock = open_one(host, port)
        except OSError:
            sock = None
        if sock is None:
            failed += 1
            # A proxy that is refusing or at its limit will keep failing; stop early.
            if failed >= 50 and failed > len(held):
                break
        else:
            held.append(sock)

    tmp = status_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d\n" % (len(held), failed))
    os.rename(tmp, status_file)

    deadline = time.monotonic() + max_hold
    while os.path.exists(hold_file) and time.monotonic() < deadline:
        time.sleep(0.05)
    for sock in held:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
