//! The usage text of `pen --help` (and of a command line without a listen address).

/// The usage text: printed on stdout for `--help` (exit 0), and on stderr when there is no
/// listen address (no arguments at all, or only options; exit 2). It lists C pen's options with
/// C pen's argument forms, then ours.
pub(crate) const USAGE: &str = "\
usage: pen [-C [host:]port|path] [-X] [-b sec] [-c N] [-e host[:port]] [-t sec]
           [-x N] [-w file] [-UHPWadfhrs] [-O option] [-o option] [-E certfile]
           [-K keyfile] [-G cacertfile] [-A cacertdir] [-Z] [-R] [-L protocol]
           [other options below] [host:]port|/path/to/socket
           [h1[:p1[:maxc1[:hard1[:weight1[:prio1]]]]] [h2[:p2[:maxc2...]]] ...]

  listen address: port (all IPv4 addresses), host:port, [v6addr]:port,
                  :::port (all IPv6 addresses), ::1:port, or a Unix socket path
  server:         host[:port[:max[:hard[:weight[:prio]]]]] or [v6addr]:port:...
                  missing port = the listen port; ports may be service names (smtp)
  The servers may be left out: -F, -O or penctl add them later
  ('server N address HOST port PORT').

options:
  -B host:port  abuse server: where clients denied by the client ACL go
  -C [host:]port|path
                control socket for penctl (a bare port: 127.0.0.1 only); as
                root it also needs -u (without -u pen says so and runs without
                it)
  -T sec        client tracking time, 0 = forever [0]
  -H            HTTP mode: add X-Forwarded-For and X-Forwarded-Proto to requests
  -U            UDP: one flow per client address, ended after idle_timeout
                seconds (60 when idle_timeout is 0); -x bounds the flows
  -N            hash without remembering the server (as -h, never tracked)
  -O option     run a penctl command at start (repeatable, in order)
  -P            accepted and ignored (pen picks its own event mechanism)
  -Q            accepted and ignored (the same)
  -W            weight-based selection
  -X            enable the 'exit' control command
  -a            ASCII rather than hex in traffic dumps
  -b sec        blacklist time for a failed server [30]
  -c N          client table slots [2048]
  -d            more debug output (repeat: -dd)
  -e host:port  emergency server, used when no other server is available
  -f            stay in the foreground (else run as a daemon, log to syslog)
  -h            hash the client address for the initial choice
  -j dir        chroot to dir after binding; the -p, -l and -w files and later
                'write' and SIGHUP -F paths are inside it
  -F file       config file (penctl commands, one per line), read after the
                command line and again on SIGHUP
  -l file       access log: a file, or host:port of a remote log collector
  -r            round robin, no client tracking
  -s            stubborn: if the first choice fails, close, do not fail over
  -t sec        connect timeout [3]
  -u user       run as this user after binding
  -p file       write the process id to file (removed at exit)
  -x N          max simultaneous connections [500]
  -w file       HTML status file, written on SIGUSR1 and on 'status'
  -o option     the same as -O
  -E certfile   TLS: terminate TLS with this certificate chain (PEM, leaf first)
  -K keyfile    TLS: private key (PEM) [in the -E file]
  -G cacertfile TLS: CA certificates (PEM) trusted for client certificates
  -A cacertdir  TLS: directory of such CA files
  -Z            accepted and ignored (no OpenSSL workarounds to turn on)
  -R            TLS: require a valid client certificate (needs -G or -A)
  -L protocol   TLS: ssl23 = TLS 1.2 and 1.3 [ssl23], tls1.2, tls1.3 (SSLv2/3
                and TLS 1.0/1.1 are refused: rustls does not speak them)
  -m N          accept up to N connections per readiness event [100]
  -q N          listen backlog [500]
  --metrics addr
                Prometheus /metrics HTTP endpoint on [host:]port (a bare port:
                127.0.0.1 only); scrapers are checked against metrics_acl
  --control-level read|operate|admin
                what -C accepts: read = queries only, operate = runtime
                changes too, admin = everything, including commands that
                name files, sockets or hosts [admin on a Unix socket or a
                loopback address, else operate]
  --control-group group
                a Unix -C socket is mode 0660 for this group (else 0600 for
                the user pen runs as)
  --workers N   worker threads, 0 = one per CPU [0]; also env PEN_WORKERS
  --splice M    zero-copy relay (Linux splice): auto (only towards non-loopback
                servers, where it pays), always, never [auto]
  --engine E    TCP relay engine: epoll, or uring (io_uring, Linux; plain TCP
                only: epoll runs instead with TLS, UDP, -H, dummy,
                connect_on_data or -l) [epoll]
  -V, --version print the version
  -?, --help    print this text

  Also accepted and ignored: -D -n -S N.

signals: SIGHUP re-reads -F, reopens the log and re-reads the TLS certificates
and keys, SIGUSR1 writes the -w file,
SIGTERM and SIGINT exit cleanly (removing the pid file).

exit status: 0 after a clean exit, 1 on a runtime failure (e.g. cannot bind),
2 on a usage or configuration error (bad option, number, address or server
spec, -O command or -F file, no listen address). Without -f, pen exits once the
daemon has started, with the daemon's start-up status.

example: pen -C 127.0.0.1:10080 80 www1:8000:10 www2:80:10 www3
";
