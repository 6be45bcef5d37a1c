//! [ours] The status page (`status`, `web_stats`) parsed by a real HTML5 parser, and the
//! `metrics` text parsed by a strict Prometheus 0.0.4 parser, checked against what the test did.
//!
//! The exposition parser is written here rather than taken from a crate: `prometheus-parse`
//! is regex-based and lenient (it skips lines it cannot read and splits labels on `,` and `=`
//! without escapes), so it would not catch a malformed line; `openmetrics-parser` is strict but
//! LGPL-3.0. The format is small; this parser rejects anything outside it.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use scraper::{ElementRef, Html, Selector};

use super::backends::{Backend, Dormant};
use super::harness::{
    is_c_pen, peek, read_to_eof, wait_for, Peek, Pen, PenBuilder, ScratchDir, WAIT,
};

// ---- a strict Prometheus text format (0.0.4) parser ---------------------------------------

/// Label names and values.
type Labels = Vec<(String, String)>;

/// One series: metric name and its labels (sorted).
type Series = (String, Labels);

/// A parsed exposition.
#[derive(Debug, Default)]
struct Exposition {
    types: HashMap<String, String>,
    helps: HashMap<String, String>,
    samples: HashMap<Series, f64>,
}

impl Exposition {
    /// The value of `name{labels}` (labels in any order); panics when absent.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut l: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.sort();
        *self
            .samples
            .get(&(name.to_string(), l))
            .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
    }

    /// The value of an unlabelled sample.
    fn one(&self, name: &str) -> f64 {
        self.get(name, &[])
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

fn is_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if s
            .bytes()
            .all(|c| c.is_ascii_digit() || b"+-.eE".contains(&c)) =>
        {
            s.parse().map_err(|_| format!("bad value {s:?}"))
        }
        _ => Err(format!("bad value {s:?}")),
    }
}

/// Checks HELP escapes (only `\\` and `\n`).
fn check_help(s: &str) -> Result<(), String> {
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' && !matches!(it.next(), Some('\\' | 'n')) {
            return Err(format!("bad escape in HELP {s:?}"));
        }
    }
    Ok(())
}

/// Parses `{name="value",...}` starting after the `{`; returns labels and the rest after `}`.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let eq = s.find('=').ok_or("label without '='")?;
        let name = &s[..eq];
        if !is_label_name(name) || name.starts_with("__") {
            return Err(format!("bad label name {name:?}"));
        }
        s = s[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in label value")),
                },
                Some((_, '\n')) => return Err("raw newline in label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        if labels.iter().any(|(k, _)| k == name) {
            return Err(format!("duplicate label {name}"));
        }
        labels.push((name.to_string(), value));
        s = &s[end + 1..];
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err(format!("expected ',' or '}}' at {s:?}"));
        }
    }
}

/// Parses the text format strictly: metric and label names, escapes, values, one HELP and one
/// TYPE per family and before its samples, a family's samples together, no duplicate series,
/// a final newline.
fn parse_prometheus(text: &str) -> Result<Exposition, String> {
    let mut e = Exposition::default();
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("no final newline".into());
    }
    let mut seen_families: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let err = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, [' ', '\t']);
            let kw = words.next().unwrap_or("");
            if kw != "HELP" && kw != "TYPE" {
                continue; // an ordinary comment
            }
            let name = words.next().unwrap_or("");
            let rest = words.next().unwrap_or("");
            if !is_metric_name(name) {
                return Err(err(format!("bad metric name {name:?}")));
            }
            if seen_families.contains(name) || current.as_deref() == Some(name) {
                return Err(err(format!("{kw} after the samples of {name}")));
            }
            if kw == "HELP" {
                check_help(rest).map_err(err)?;
                if e.helps.insert(name.into(), rest.into()).is_some() {
                    return Err(err("second HELP".into()));
                }
            } else {
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&rest) {
                    return Err(err(format!("bad type {rest:?}")));
                }
                if e.types.insert(name.into(), rest.into()).is_some() {
                    return Err(err("second TYPE".into()));
                }
            }
            continue;
        }
        let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(err(format!("bad metric name {name:?}")));
        }
        let (mut labels, rest) = match line[name_end..].strip_prefix('{') {
            Some(r) => parse_labels(r).map_err(err)?,
            None => (Vec::new(), &line[name_end..]),
        };
        if !rest.starts_with([' ', '\t']) {
            return Err(err("no blank before the value".into()));
        }
        let mut fields = rest.split_whitespace();
        let value = parse_value(fields.next().unwrap_or("")).map_err(err)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .map_err(|_| err(format!("bad timestamp {ts:?}")))?;
        }
        if fields.next().is_some() {
            return Err(err("trailing text".into()));
        }
        if current.as_deref() != Some(name) {
            if let Some(prev) = current.take() {
                seen_families.insert(prev);
            }
            if seen_families.contains(name) {
                return Err(err(format!("samples of {name} are not together")));
            }
            current = Some(name.to_string());
        }
        if e.types.get(name).is_some_and(|t| t == "counter") && (value < 0.0 || value.is_nan()) {
            return Err(err("negative counter".into()));
        }
        labels.sort();
        if e.samples
            .insert((name.to_string(), labels), value)
            .is_some()
        {
            return Err(err("duplicate series".into()));
        }
    }
    Ok(e)
}

#[test]
fn strict_parser_accepts_the_format_and_rejects_mistakes() {
    let good = "# HELP a_total Things, with \\\\ and \\n.\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\",y=\"\"} 3\na_total 1 1700000000000\n# a comment\nb +Inf\n";
    let e = parse_prometheus(good).unwrap();
    assert_eq!(e.get("a_total", &[("y", ""), ("x", "q\"\\\n")]), 3.0);
    assert_eq!(e.one("b"), f64::INFINITY);
    for bad in [
        "a 1",                                // no final newline
        "a{x=\"1\" 1\n",                      // unterminated labels
        "a{x=1} 1\n",                         // unquoted
        "a{x=\"\\t\"} 1\n",                   // bad escape
        "a{x=\"1\",x=\"2\"} 1\n",             // duplicate label
        "1a 1\n",                             // bad name
        "a one\n",                            // bad value
        "a 1\nb 1\na 2\n",                    // family split
        "a 1\na 1\n",                         // duplicate series
        "a 1\n# TYPE a counter\n",            // TYPE after samples
        "# TYPE a counter\n# TYPE a gauge\n", // second TYPE
        "# TYPE a counter\na -1\n",           // negative counter
        "# TYPE a countr\n",                  // bad type
        "a 1 2 3\n",                          // trailing text
    ] {
        assert!(parse_prometheus(bad).is_err(), "accepted {bad:?}");
    }
}

// ---- helpers ------------------------------------------------------------------------------

fn metrics(pen: &Pen) -> Exposition {
    let text = pen.ctl("metrics");
    let e = parse_prometheus(&text).unwrap_or_else(|m| panic!("{m}\n{text}"));
    // Every family is documented and typed.
    for (name, _) in e.samples.keys() {
        assert!(e.types.contains_key(name), "no TYPE for {name}");
        assert!(e.helps.contains_key(name), "no HELP for {name}");
    }
    e
}

/// Parses a page, failing on any HTML5 parse error but the missing DOCTYPE (C pen's page,
/// which ours begins with, has none).
fn parse_html(page: &str) -> Html {
    assert!(page.starts_with("<html>\n"), "{page}");
    let doc = Html::parse_document(&format!("<!DOCTYPE html>\n{page}"));
    assert!(
        doc.errors.is_empty(),
        "HTML parse errors {:?} in\n{page}",
        doc.errors
    );
    doc
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

/// The tables of the page, in order, each as the text of the cells of its data rows (the
/// first row, C pen's green header, left out).
fn tables(doc: &Html) -> Vec<Vec<Vec<String>>> {
    let (tr, td) = (sel("tr"), sel("td"));
    doc.select(&sel("table"))
        .map(|t: ElementRef| {
            t.select(&tr)
                .skip(1)
                .map(|row| {
                    row.select(&td)
                        .map(|c| c.text().collect::<String>())
                        .collect()
                })
                .collect()
        })
        .collect()
}

fn ip_port(addr: SocketAddr) -> (String, String) {
    (addr.ip().to_string(), addr.port().to_string())
}

/// Checks the page is a self-contained status page with C pen's title.
fn check_page(page: &str) -> Html {
    let doc = parse_html(page);
    let title: Vec<String> = (doc.select(&sel("head > title")))
        .map(|t| t.text().collect())
        .collect();
    assert_eq!(title, ["Pen status page"]);
    assert!(doc
        .select(&sel("script, link, img, [src], [href]"))
        .next()
        .is_none());
    doc
}

// ---- status page --------------------------------------------------------------------------

#[test]
fn status_page_parses_and_lists_every_server() {
    if is_c_pen() {
        return; // [ours] C pen needs -w for `status`, and our details follow C pen's content
    }
    let a = Backend::name("A");
    let b = Backend::name("B");
    let dead = Dormant::new();
    let emergency = Backend::name("E");
    let pen = PenBuilder::new()
        .opts(&["-e", &emergency.spec()])
        .server(a.spec())
        .server(b.spec())
        .server(dead.spec())
        .start();
    assert_eq!(pen.ctl("server 1 blacklist 60"), "");
    // Server 4 (and 3 below it) exist without an address.
    assert_eq!(pen.ctl("server 4 max 7"), "");
    assert!(["A", "B"].contains(&pen.fetch().as_str()));

    // pen closes its side a moment after the client has read everything: wait for that.
    let page = wait_for(WAIT, "the connection to close", || {
        let p = pen.ctl("status");
        p.contains(" 0 used, ").then_some(p)
    });
    let doc = check_page(&page);
    let t = tables(&doc);
    // C pen's three (servers, clients, connections), the emergency server, our details.
    assert_eq!(t.len(), 5, "{t:?}");
    let servers = &t[0];
    assert_eq!(servers.len(), 5, "{servers:?}");
    for (i, addr) in [a.addr, b.addr, dead.addr].into_iter().enumerate() {
        let (ip, port) = ip_port(addr);
        let row = &servers[i];
        assert_eq!(
            (row[0].as_str(), row[1].as_str(), row[3].as_str()),
            (i.to_string().as_str(), ip.as_str(), port.as_str()),
            "{row:?}"
        );
    }
    // C pen's status column: 0, or when blacklisted a time (seconds since the epoch).
    assert_eq!(servers[0][2], "0", "{:?}", servers[0]);
    let since: u64 = servers[1][2].parse().unwrap();
    assert!(since > 1_000_000_000, "{:?}", servers[1]);
    assert_eq!(servers[4][5], "7", "max soft of server 4");

    let em = &t[3];
    let (eip, eport) = ip_port(emergency.addr);
    assert_eq!(em.len(), 1);
    assert_eq!(
        (em[0][0].as_str(), &em[0][1], &em[0][3]),
        ("emergency", &eip, &eport)
    );

    let clients = &t[1];
    assert_eq!(clients.len(), 1, "{clients:?}");
    assert_eq!(clients[0][1], "127.0.0.1");
    assert_eq!(clients[0][4], "1", "connects");
    assert!(t[2].is_empty(), "no open connection: {:?}", t[2]);

    // Our details: states, version, addresses, modes.
    let details: HashMap<String, String> = (t[4].iter())
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    assert!(details["server 0"].starts_with("up;"), "{details:?}");
    let state = &details["server 1"];
    let left: u64 = state
        .strip_prefix("blacklisted, ")
        .and_then(|r| r.split(" s left").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("server 1 state {state:?}"));
    assert!((1..=60).contains(&left), "{left}");
    assert!(details["server 3"].starts_with("no address;"));
    assert!(details["server 4"].starts_with("no address;"));
    assert_eq!(
        details["version"],
        format!("pen {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(details["listening on"], pen.addr());
    assert_eq!(details["control socket"], pen.control);
    assert!(
        details["modes"].starts_with("no hash no roundrobin"),
        "modes"
    );
    // Penctl gets the same page.
    let (out, code) = pen.penctl(&["status"]);
    assert_eq!(code, 0);
    check_page(&out);
}

#[test]
fn web_stats_file_is_written_on_status() {
    if is_c_pen() {
        return; // [ours] C pen's `status` needs -w at start
    }
    let dir = ScratchDir::new("webstats");
    let file = dir.0.join("status.html");
    let a = Backend::name("A");
    // Set at start (as -w will), then the status command writes it.
    let pen = PenBuilder::new()
        .opts(&["-O", &format!("web_stats {}", file.display())])
        .server(a.spec())
        .start();
    assert_eq!(pen.ctl("web_stats"), format!("{}\n", file.display()));
    assert!(!file.exists(), "written before any status");
    assert_eq!(pen.fetch(), "A");
    // The client may see the answer before pen has counted its bytes: ask until it has.
    let (page, doc) = wait_for(WAIT, "the answer's byte counted", || {
        let page = pen.ctl("status");
        let doc = check_page(&page);
        let counted = tables(&doc)
            .first()
            .and_then(|t| t.first())
            .and_then(|row| row.get(8))
            .is_some_and(|v| v == "1");
        counted.then_some((page, doc))
    });
    let written = std::fs::read_to_string(&file).expect("status wrote the file");
    assert_eq!(written, page, "the file holds the page status returned");
    let servers = &tables(&doc)[0];
    let (ip, port) = ip_port(a.addr);
    assert_eq!((&servers[0][1], &servers[0][3]), (&ip, &port));
    assert_eq!(servers[0][8], "1", "bytes received from the server");
    // Only the file itself in the directory: the temporary was renamed over it.
    let names: Vec<_> = std::fs::read_dir(&dir.0).unwrap().flatten().collect();
    assert_eq!(names.len(), 1, "{names:?}");

    // A file that cannot be written does not fail the command.
    let bad = dir.0.join("no-such-dir").join("status.html");
    pen.ctl(&format!("web_stats {}", bad.display()));
    check_page(&pen.ctl("status"));
    assert!(!bad.exists());
    // `no web_stats`: status no longer touches the file.
    pen.ctl("no web_stats");
    assert_eq!(pen.fetch(), "A");
    pen.ctl("status");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), written);
}

// ---- metrics ------------------------------------------------------------------------------

#[test]
fn metrics_count_connections_bytes_failover_and_control() {
    if is_c_pen() {
        return; // [ours]
    }
    let dead = Dormant::new();
    let echo = Backend::echo();
    let pen = PenBuilder::new()
        .opts(&["-r"])
        .server(dead.spec())
        .server(echo.spec())
        .start();
    let m0 = metrics(&pen);
    assert_eq!(m0.one("pen_connections_accepted_total"), 0.0);
    assert_eq!(m0.one("pen_connection_limit"), 500.0);

    // N echoed connections with different payloads; the first also fails over from the dead
    // server (round robin starts there), which is then blacklisted and skipped.
    let n = 5;
    let mut total = 0usize;
    for i in 0..n {
        let payload = vec![b'a' + i as u8; 1000 * (i + 1)];
        total += payload.len();
        let mut c = pen.connect();
        c.write_all(&payload).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_eof(&mut c).len(), payload.len(), "connection {i}");
    }
    let total = total as f64;
    let (d, e) = (dead.addr.to_string(), echo.addr.to_string());
    let s0 = [("server", "0"), ("address", d.as_str())];
    let s1 = [("server", "1"), ("address", e.as_str())];
    // Counters are added as the relay moves bytes; the client may see them a moment earlier.
    let m = wait_for(Duration::from_secs(5), "counters to settle", || {
        let m = metrics(&pen);
        (m.get("pen_bytes_total", &[("direction", "to_clients")]) == total
            && m.one("pen_connections_active") == 0.0)
            .then_some(m)
    });
    assert_eq!(m.one("pen_connections_accepted_total"), n as f64);
    assert_eq!(m.get("pen_server_connections_total", &s1), n as f64);
    assert_eq!(m.get("pen_server_connections_total", &s0), 0.0);
    assert_eq!(m.get("pen_server_connections", &s1), 0.0);
    assert_eq!(m.get("pen_server_bytes_sent_total", &s1), total);
    assert_eq!(m.get("pen_server_bytes_received_total", &s1), total);
    assert_eq!(m.get("pen_server_bytes_sent_total", &s0), 0.0);
    assert_eq!(
        m.get("pen_bytes_total", &[("direction", "to_servers")]),
        total
    );
    assert_eq!(m.get("pen_server_blacklisted", &s0), 1.0);
    assert_eq!(m.get("pen_server_blacklisted", &s1), 0.0);
    assert_eq!(m.one("pen_failovers_total"), 1.0);
    assert_eq!(m.one("pen_blacklistings_total"), 1.0);
    assert_eq!(m.one("pen_connect_timeouts_total"), 0.0);
    assert_eq!(
        m.get("pen_connections_refused_total", &[("reason", "acl")]),
        0.0
    );
    assert_eq!(
        m.get("pen_connections_refused_total", &[("reason", "no_server")]),
        0.0
    );
    assert_eq!(m.one("pen_clients_tracked"), 1.0);
    assert_eq!(m.one("pen_accept_pauses_total"), 0.0);

    // Control commands: each `metrics` counts itself; an unknown command is an error.
    let c1 = m.one("pen_control_commands_total");
    let e1 = m.one("pen_control_errors_total");
    assert!(pen.ctl("no_such_command").starts_with("error: "));
    assert!(pen.ctl("timeout soon").starts_with("error: "));
    pen.ctl("servers");
    let m2 = metrics(&pen);
    assert_eq!(m2.one("pen_control_commands_total"), c1 + 4.0);
    assert_eq!(m2.one("pen_control_errors_total"), e1 + 2.0);
}

#[test]
fn metrics_count_refusals() {
    if is_c_pen() {
        return; // [ours]
    }
    let a = Backend::name("A");
    let pen = PenBuilder::new().server(a.spec()).start();
    pen.ctl("acl 1 deny 127.0.0.2");
    pen.ctl("client_acl 1");
    let mut denied = pen.connect_from(2);
    assert_eq!(peek(&mut denied, Duration::from_secs(5)), Peek::Closed);
    assert_eq!(pen.fetch_from(1), "A");
    pen.ctl("server 0 blacklist 60");
    assert_eq!(pen.fetch_from(3), "", "no server: closed at once");
    let m = wait_for(Duration::from_secs(5), "refusals to be counted", || {
        let m = metrics(&pen);
        (m.one("pen_connections_active") == 0.0).then_some(m)
    });
    assert_eq!(m.one("pen_connections_accepted_total"), 3.0);
    assert_eq!(
        m.get("pen_connections_refused_total", &[("reason", "acl")]),
        1.0
    );
    assert_eq!(
        m.get("pen_connections_refused_total", &[("reason", "no_server")]),
        1.0
    );
    let addr = a.addr.to_string();
    let s0 = [("server", "0"), ("address", addr.as_str())];
    assert_eq!(m.get("pen_server_connections_total", &s0), 1.0);
    assert_eq!(m.get("pen_server_blacklisted", &s0), 1.0);
    // Blacklisting by command is not a failure-driven blacklisting.
    assert_eq!(m.one("pen_blacklistings_total"), 0.0);
}
