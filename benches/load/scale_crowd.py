#!/usr/bin/env python3
"""Open a crowd of concurrent relayed HTTP keep-alive connections through a proxy, fast.

Non-blocking connects driven by epoll, at most MAX_INFLIGHT at a time. Connection i binds to
source address 127.1.0.1 + (FIRST + i) // PER_SOURCE (port chosen at connect time with
IP_BIND_ADDRESS_NO_PORT), so the crowd comes from COUNT / PER_SOURCE loopback addresses. Each
connection sends one `GET /ok` and must read back a complete 200 response ending in "ok\\n":
that proves the proxy connected it to a backend and relayed both ways. Then it sits idle.

When all are established (or failed), writes one line to STATUS_FILE:
    established=N errors=E seconds=S first_errors=errno:count,...
and waits until HOLD_FILE is removed. Then it checks the crowd again: one more request on
every held connection, and appends to STATUS_FILE:
    verified=N verify_errors=E verify_seconds=S
then closes everything and exits.

Usage: scale_crowd.py HOST PORT COUNT STATUS_FILE HOLD_FILE [PER_SOURCE [MAX_INFLIGHT [FIRST]]]
Python standard library only.
"""

import errno
import ipaddress
import os
import resource
import select
import socket
import sys
import time

REQUEST = b"GET /ok HTTP/1.1\r\nHost: scale\r\n\r\n"
IP_BIND_ADDRESS_NO_PORT = 24
FIRST_SOURCE = int(ipaddress.IPv4Address("127.1.0.0"))


def raise_fd_limit(need):
    """Raise the soft open-file limit so COUNT sockets fit (the hard limit too, as root)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need + 256
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def complete(buf):
    """True once BUF holds a whole response to GET /ok (a 200 whose body is "ok\\n")."""
    return buf.endswith(b"\r\n\r\nok\n")


class Crowd:
    """The held connections and the error tally."""

    def __init__(self, host, port, count, per_source, max_inflight, first):
        self.first = first
        self.dest = (host, port)
        self.count = count
        self.per_source = per_source
        self.max_inflight = max_inflight
        self.ep = select.epoll()
        self.held = []
        self.errors = {}

    def fail(self, code):
        name = errno.errorcode.get(code, str(code))
        self.errors[name] = self.errors.get(name, 0) + 1

    def source(self, i):
        return str(ipaddress.IPv4Address(FIRST_SOURCE + 1 + (self.first + i) // self.per_source))

    def start(self, i, pending):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((self.source(i), 0))
            code = s.connect_ex(self.dest)
        except OSError as e:
            s.close()
            self.fail(e.errno or 0)
            return
        if code not in (0, errno.EINPROGRESS):
            s.close()
            self.fail(code)
            return
        pending[s.fileno()] = [s, False, b""]
        self.ep.register(s.fileno(), select.EPOLLOUT)

    def drive(self, pending, timeout):
        """One epoll round over PENDING ({fd: [sock, sent, buf]})."""
        for fd, ev in self.ep.poll(timeout, 4096):
            entry = pending.get(fd)
            if entry is None:
                continue
            s, sent, buf = entry
            try:
                if not sent:
                    code = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if code:
                        raise OSError(code, os.strerror(code))
                    s.send(REQUEST)
                    entry[1] = True
                    self.ep.modify(fd, select.EPOLLIN)
                    continue
                chunk = s.recv(4096)
                if not chunk:
                    raise OSError(errno.ECONNRESET, "closed by peer")
                buf += chunk
                entry[2] = buf
                if complete(buf):
                    self.ep.unregister(fd)
                    del pending[fd]
                    self.held.append(s)
            except OSError as e:
                self.ep.unregister(fd)
                del pending[fd]
                s.close()
                self.fail(e.errno or 0)

    def establish(self, deadline):
        pending = {}
        i = 0
        while (i < self.count or pending) and time.monotonic() < deadline:
            while i < self.count and len(pending) < self.max_inflight:
                self.start(i, pending)
                i += 1
            self.drive(pending, 0.5)
        for s, _, _ in pending.values():
            self.fail(errno.ETIMEDOUT)
            s.close()

    def verify(self, deadline):
        """Sends one more request on every held connection; returns (ok, errors)."""
        pending = {}
        bad = 0
        for s in self.held:
            try:
                s.send(REQUEST)
            except OSError:
                bad += 1
                continue
            pending[s.fileno()] = [s, True, b""]
            self.ep.register(s.fileno(), select.EPOLLIN)
        self.held = []
        while pending and time.monotonic() < deadline:
            self.drive(pending, 0.5)
        bad += len(pending)
        return len(self.held), bad


def main():
    if len(sys.argv) not in (6, 7, 8, 9):
        sys.stderr.write(__doc__)
        return 2
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    status_file, hold_file = sys.argv[4], sys.argv[5]
    per_source = int(sys.argv[6]) if len(sys.argv) > 6 else 10
    max_inflight = int(sys.argv[7]) if len(sys.argv) > 7 else 2000
    first = int(sys.argv[8]) if len(sys.argv) > 8 else 0
    raise_fd_limit(count)
    crowd = Crowd(host, port, count, per_source, max_inflight, first)

    t0 = time.monotonic()
    crowd.establish(t0 + 600)
    took = time.monotonic() - t0
    errs = ",".join("%s:%d" % kv for kv in sorted(crowd.errors.items())) or "none"
    with open(status_file + ".tmp", "w") as f:
        f.write("established=%d errors=%d seconds=%.2f first_errors=%s\n"
                % (len(crowd.held), sum(crowd.errors.values()), took, errs))
    os.rename(status_file + ".tmp", status_file)

    hold_until = time.monotonic() + 3600
    while os.path.exists(hold_file) and time.monotonic() < hold_until:
        time.sleep(0.1)
    crowd.errors = {}
    t0 = time.monotonic()
    ok, bad = crowd.verify(t0 + 120)
    with open(status_file, "a") as f:
        f.write("verified=%d verify_errors=%d verify_seconds=%.2f\n"
                % (ok, bad + sum(crowd.errors.values()), time.monotonic() - t0))
    for s in crowd.held:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
