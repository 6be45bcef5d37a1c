//! The allow-list of the differential suite ([`super::differential`]): every difference
//! between C pen's and our output that a row of docs/compatibility.md declares, by session and
//! step, with how it is recognised.

/// How an allowed difference is recognised.
pub(super) enum Expect {
    /// C pen's and our outputs, exactly (after normalisation).
    Texts(&'static str, &'static str),
    /// A predicate on (C pen's, ours).
    Pred(fn(&str, &str) -> bool),
}

/// A declared difference: session, command (the step's label), the docs/compatibility.md row.
pub(super) struct Allowed {
    pub(super) session: &'static str,
    pub(super) command: &'static str,
    pub(super) row: &'static str,
    pub(super) expect: Expect,
}

const UNSUPPORTED_SSL: &str =
    "error: 'ssl_* commands without TLS (start pen with -E certfile)' is not supported yet\n";

/// An allow-list entry (see [`Allowed`]).
#[rustfmt::skip]
const fn al(session: &'static str, command: &'static str, row: &'static str, expect: Expect)
    -> Allowed {
    Allowed { session, command, row, expect }
}

use Expect::{Pred, Texts};

const DECLARED: &str = "declared differences";

#[rustfmt::skip]
pub(super) const ALLOWED: &[Allowed] = &[
    al("queries", "pending_max", "3.3 `pending_max`: README (reply the current value)",
        Texts("", "100\n")),
    al("queries", "tcp_fastclose", "3.3 `tcp_fastclose`: README",
        Texts("do_cmd: ignoring tcp_fastclose without argument\n", "off\n")),
    al("queries", "status", "3.3 `status` without `-w`: specification 4",
        Pred(|c, o| c == "Unable to create webstats\n" && o.contains("</html>"))),
    al("queries", "metrics", "3.3 `metrics`: ours only (README)",
        Pred(|c, o| c == "do_cmd: ignoring command starting with 'metrics'\n"
            && o.contains("# TYPE pen_"))),
    al("queries", "ssl_reload", "3.3 `ssl_reload`: ours only (README)",
        Texts("do_cmd: ignoring command starting with 'ssl_reload'\n", UNSUPPORTED_SSL)),
    al("scalar settings", "pending_max 50",
        "3.4 `pending_max 50`: commands that set a value print it (specification 4)",
        Texts("", "50\n")),
    al("server fields", "servers#2", "3.3 `servers` with a blacklisted server: README",
        Pred(|c, o| blacklisted_marker(c, o, "1"))),
    al("server past the end", "servers",
        "3.3 `servers` after `server 5 ...`: C pen prints a broken placeholder",
        Pred(placeholder_servers)),
    al("server past the end", "file w.cfg",
        "3.3 `servers` after `server 5 ...` (C pen's broken placeholder) and 4 `write` server lines",
        Pred(|c, o| same_written_state(&c.replace("address (unknown address family 0 port 0 ", ""), o))),
    al(DECLARED, "bogus", "3.5 unknown command: specification 4",
        Texts("do_cmd: ignoring command starting with 'bogus'\n", "error: unknown command 'bogus'\n")),
    al(DECLARED, "blacklist abc", "3.5 a malformed number: specification 4",
        Texts("0\n", "error: 'abc': expected a number of seconds\n")),
    al(DECLARED, "client_acl 10", "3.5 an ACL list out of range: specification 4",
        Texts("0\n", "error: '10': expected an ACL list number 0-9\n")),
    al(DECLARED, "timeout 0", "3.5 zero where it cannot work: specification 4",
        Texts("0\n", "error: '0': expected a connect timeout of at least 1 second\n")),
    al(DECLARED, "blacklist 5 6", "3.5 extra words: specification 4",
        Texts("5\n", "error: unexpected '6' after the command\n")),
    al(DECLARED, "source bogus", "3.5 `source bogus`: specification 4",
        Texts("unable to set source address to 'bogus'\n[no final newline]\n",
            "error: 'bogus': expected an IPv4 or IPv6 address\n")),
    al(DECLARED, "tcp_fastclose bogus", "3.5 `tcp_fastclose bogus`: specification 4",
        Texts("", "error: 'bogus': expected 'up', 'down', 'both' or 'off'\n")),
    al(DECLARED, "acl 1 allow 1.2.3.4", "3.5 a malformed ACL entry: specification 4",
        Texts("", "error: 'allow': expected 'permit' or 'deny'\n")),
    al(DECLARED, "server 99999 port 5", "3.5 `server 99999 port 5`: a bounded table",
        Texts("", "error: '99999': expected a server number below 65536\n")),
    al(DECLARED, "block", "3.5 obsolete `block`: C pen rejects them too",
        Texts("do_cmd: ignoring command starting with 'block'\n", "error: unknown command 'block'\n")),
    al("more commands", "ssl_ciphers X", "3.4 `ssl_*` without `-E`: an error instead of a setting \
        that can never apply", Texts("", UNSUPPORTED_SSL)),
    al("more commands", "acl 1 permit country SE", "3.4 `acl N permit country CC`: spec. 4",
        Texts("", "error: 'country SE': GeoIP country ACL entries are not supported\n")),
    al("more commands", "include", "3.5 `include` (no file): specification 4",
        Texts("", "error: 'include' needs a file name\n")),
    al("more commands", "write", "3.5 `write` with neither FILE nor `-F`: specification 4",
        Texts("", "error: 'write': needs a FILE (pen runs without -F)\n")),
    // C pen kept `blacklist 5` from `blacklist 5 6` and `timeout 0`; ours refused both lines.
    al(DECLARED, "blacklist", "3.5 extra words: specification 4 (ours changes nothing)",
        Texts("5\n", "30\n")),
    al(DECLARED, "timeout", "3.5 zero where it cannot work: specification 4 (ours changes nothing)",
        Texts("0\n", "3\n")),
    // The issue 12 audit (docs/compatibility.md 3.5, 4).
    al("include a bad line", "include {F}", "3.5 a bad line in a file read by `include`: \
        all or nothing (specification 4)",
        Texts("", "error: DIR/pen.cfg:2: unknown command (expected a penctl command, one per line)\n")),
    al("include a bad line", "blacklist", "3.5 a bad line in a file read by `include` \
        (ours changes nothing)", Texts("13\n", "30\n")),
    al("include a bad line", "timeout", "3.5 a bad line in a file read by `include` \
        (ours changes nothing)", Texts("4\n", "3\n")),
    al("include a bad line", "no idlers", "3.5 `no`, `no bogus`: specification 4",
        Pred(|c, o| c.is_empty() && o.starts_with("error: 'idlers': expected a command with a 'no' form"))),
    al("emergency and abuse by name", "file w.cfg",
        "4 `write`, second line: `-e`/`-B` given by name",
        Pred(|c, o| same_written_state(
            &c.replace("-e localhost:B0 -B localhost:B1", "-e 127.0.0.1:B0 -B 127.0.0.1:B1"), o))),
    // Issue 14 (docs/compatibility.md 10.3): a server given by name is written with its name.
    al("server fields", "file w.cfg", "10.3 `write` keeps a server's name (issue 14)",
        Pred(|c, o| same_written_state(c, &o.replace("address localhost ", "address 127.0.0.1 ")))),
];

/// `write` output compared as the state it describes: the lines ours writes after C pen's
/// ("reading the file back must reproduce the state") and the server lines' `acl 0`/`weight`/
/// `prio` words (same state) are declared in docs/compatibility.md section 4. The
/// command-line comment is compared as it is (C-8 is fixed).
pub(super) fn same_written_state(c: &str, o: &str) -> bool {
    written_state(c, false) == written_state(o, true)
}

#[rustfmt::skip]
const OURS_ONLY_WRITE: &[&str] = &[
    "idle_timeout ", "conn_max ", "clients_max ", "pending_max ", "source ", "transparent",
    "no transparent", "dummy", "no dummy", "abort_on_error", "no abort_on_error", "ssl_",
    // Issue 11's settings (docs/compatibility.md section 8).
    "metrics_acl ", "conn_per_client ", "handshake_timeout ", "request_timeout ",
    "connect_on_data", "no connect_on_data", "trusted_proxy_acl ",
];

fn written_state(text: &str, ours: bool) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        if ours && OURS_ONLY_WRITE.iter().any(|p| line.starts_with(p)) {
            continue;
        }
        if let Some(rest) = line.strip_prefix("server ") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let mut acl = "0";
            let mut kept = vec![words.first().copied().unwrap_or("")];
            for pair in words.get(1..).unwrap_or(&[]).chunks(2) {
                match pair {
                    ["acl", a] => acl = a,
                    ["weight" | "prio", _] => {}
                    [k, v] => kept.extend([*k, *v]),
                    _ => kept.extend(pair),
                }
            }
            out.push(format!("server {} acl {acl}", kept.join(" ")));
            continue;
        }
        out.push(line.to_string());
    }
    out
}

/// Ours appends ` blacklisted N` to the blacklisted server's line; the rest is the same.
fn blacklisted_marker(c: &str, o: &str, server: &str) -> bool {
    let mut ol = o.lines();
    c.lines().all(|cl| {
        let Some(l) = ol.next() else { return false };
        l == cl
            || (cl.starts_with(&format!("{server} addr "))
                && l.strip_prefix(cl)
                    .is_some_and(|rest| rest.starts_with(" blacklisted ")))
    }) && ol.next().is_none()
}

/// C pen prints `N addr (unknown address family 0 port 0 ...` for the servers `server 4 ...`
/// created below it; ours `N addr 0.0.0.0 port 0 ...`.
fn placeholder_servers(c: &str, o: &str) -> bool {
    let fixed: String = c
        .lines()
        .map(|l| {
            l.replace(
                "addr (unknown address family 0 port 0",
                "addr 0.0.0.0 port 0",
            ) + "\n"
        })
        .collect();
    fixed == o
}
