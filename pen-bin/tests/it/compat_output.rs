//! What pen shows and writes, compared with C pen 0.34.1 (issue 12, items 11, 12 and 18): the
//! status page's structure and text, `write`'s header and lines, and each pen loading the
//! other's `write` file. Run against both (`PEN_BIN=/usr/bin/pen PENCTL_BIN=/usr/bin/penctl`).

use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::backends::Backend;
use super::harness::{
    control, free_port, is_c_pen, pen_bin, poll_until, running_as_root, wait_for, wait_until,
    PenBuilder, ScratchDir, WAIT,
};

/// Replaces the value of every data cell (`<td>VALUE</td>`, not the green header cells) by `_`.
fn blank_cells(page: &str) -> String {
    let mut out = String::new();
    for line in page.lines() {
        if line.starts_with("<td>") && line.ends_with("</td>") {
            out.push_str("<td>_</td>");
        } else if let Some(rest) = line.strip_prefix("Time ") {
            // `Time DATE TIME, N servers, M current<p>`: keep N.
            let servers = rest.split(", ").nth(1).unwrap_or_default();
            out.push_str(&format!("Time _, {servers}, _ current<p>"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// C pen's page up to its connection table, with `servers` servers and `clients` client rows,
/// every data cell blanked (the layout captured from /usr/bin/pen 0.34.1).
fn c_skeleton(servers: usize, clients: usize, max_clients: usize) -> String {
    let head = |cols: &[&str]| {
        let mut h = String::from("<tr>\n");
        for c in cols {
            h.push_str(&format!("<td bgcolor=\"#80f080\">{c}</td>\n"));
        }
        h + "</tr>\n"
    };
    let rows = |n: usize, cols: usize| {
        let row = format!("<tr>\n{}</tr>\n", "<td>_</td>\n".repeat(cols));
        row.repeat(n)
    };
    let mut p = String::from(
        "<html>\n<head>\n<title>Pen status page</title>\n</head>\n\
         <body bgcolor=\"#ffffff\"><h1>Pen status page</h1>\n",
    );
    p.push_str(&format!("Time _, {servers} servers, _ current<p>\n"));
    p.push_str("<table bgcolor=\"#c0c0c0\">\n");
    p.push_str(&head(&[
        "server",
        "address",
        "status",
        "port",
        "connections",
        "max soft",
        "max hard",
        "sent",
        "received",
        "weight",
        "prio",
    ]));
    p.push_str(&rows(servers, 11));
    p.push_str("</table>\n");
    p.push_str(&format!("<h2>Active clients</h2>Max number of clients: {max_clients}<p><table bgcolor=\"#c0c0c0\">\n"));
    p.push_str(&head(&[
        "client",
        "address",
        "age(secs)",
        "last server",
        "connects",
        "sent",
        "received",
    ]));
    p.push_str(&rows(clients, 7));
    p.push_str("</table>\n");
    p
}

/// The page's first part, up to and including the third `</table>` (C pen's content), and
/// the rest.
fn split_c_part(page: &str) -> (&str, &str) {
    let mut at = 0;
    for _ in 0..3 {
        match page.get(at..).and_then(|r| r.find("</table>\n")) {
            Some(i) => at += i + "</table>\n".len(),
            None => return (page, ""),
        }
    }
    page.split_at(at)
}

#[test]
fn a_fresh_pens_status_shows_0_current_as_c_pen() {
    // C pen's "current" starts at 0 (checked: `Time ..., 2 servers, 0 current`); ours showed
    // the round-robin cursor's "nothing chosen yet" value, 18446744073709551615.
    let a = Backend::hold();
    let b = Backend::hold();
    let dir = ScratchDir::new("cstatus0");
    let file = dir.0.join("status.html");
    let pen = PenBuilder::new()
        .opts(&["-w", &file.display().to_string()])
        .server(a.spec())
        .server(b.spec())
        .start();
    let page = pen.ctl("status");
    assert!(page.contains(", 2 servers, 0 current<p>"), "{page}");
}

#[test]
fn status_page_has_c_pens_structure_and_text() {
    let a = Backend::hold();
    let b = Backend::hold();
    let dir = ScratchDir::new("cstatus");
    let file = dir.0.join("status.html");
    let pen = PenBuilder::new()
        .opts(&["-w", &file.display().to_string()])
        .server(a.spec())
        .server(b.spec())
        .start();
    // One open connection (so one tracked client).
    let _open = pen.connect();
    // Once pen has accepted it, chosen its server and tracked its client.
    let page = wait_for(
        WAIT,
        "the connection and its client in the status page",
        || {
            let p = pen.ctl("status");
            let tracked = (p.split("Active clients").nth(1))
                .is_some_and(|c| c.contains("<td>127.0.0.1</td>"));
            (p.contains(", 1 used, ") && tracked).then_some(p)
        },
    );
    assert_eq!(
        std::fs::read_to_string(&file).ok().as_deref(),
        Some(page.as_str()),
        "status writes the -w file"
    );
    let (c_part, rest) = split_c_part(&page);
    let skeleton = blank_cells(c_part);
    let want = c_skeleton(2, 1, 2048);
    assert!(
        skeleton.starts_with(&want),
        "{skeleton}\n---- wanted ----\n{want}"
    );
    let conns = skeleton.get(want.len()..).unwrap_or_default();
    assert!(
        conns.starts_with("<h2>Active connections</h2>Number of connections: 500 max, 1 used, "),
        "{conns}"
    );
    let conn_head =
        "<td bgcolor=\"#80f080\">connection</td>\n<td bgcolor=\"#80f080\">downfd</td>\n\
        <td bgcolor=\"#80f080\">upfd</td>\n<td bgcolor=\"#80f080\">pending data down</td>\n\
        <td bgcolor=\"#80f080\">pending data up</td>\n<td bgcolor=\"#80f080\">client</td>\n\
        <td bgcolor=\"#80f080\">server</td>\n</tr>\n";
    let one_row = format!("<tr>\n{}</tr>\n</table>\n", "<td>_</td>\n".repeat(7));
    assert!(conns.ends_with(&format!("{conn_head}{one_row}")), "{conns}");
    // The values: the servers' addresses and ports, the client's address.
    for s in [&a, &b] {
        let cells = format!(
            "<td>{}</td>\n<td>0</td>\n<td>{}</td>\n",
            s.addr.ip(),
            s.addr.port()
        );
        assert!(c_part.contains(&cells), "{cells} in\n{c_part}");
    }
    let clients = c_part.split("Active clients").nth(1).unwrap_or_default();
    assert!(
        clients.contains("<tr>\n<td>0</td>\n<td>127.0.0.1</td>\n"),
        "{c_part}"
    );
    // SIGUSR1 writes the same page to the -w file.
    std::fs::remove_file(&file).unwrap();
    pen.signal("USR1");
    let written = wait_for(WAIT, "SIGUSR1 to write the -w file", || {
        // C pen writes in place: wait for the whole page.
        std::fs::read_to_string(&file)
            .ok()
            .filter(|p| p.ends_with("</html>\n"))
    });
    assert!(
        blank_cells(split_c_part(&written).0).starts_with(&want),
        "{written}"
    );
    // C pen's page ends there; ours adds its details after C pen's content.
    if is_c_pen() {
        assert_eq!(rest, "</body>\n</html>\n");
    } else {
        assert!(rest.starts_with("<h2>"), "{rest}");
        assert!(rest.ends_with("</table>\n</body>\n</html>\n"), "{rest}");
    }
}

/// Reads the file `write` wrote.
fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `YYYY-MM-DD HH:MM:SS`.
fn is_c_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn write_header_names_the_start_options_as_c_pen_does() {
    let a = Backend::hold();
    let dir = ScratchDir::new("cwrite");
    let cfg = dir.0.join("w.cfg");
    std::fs::write(&cfg, "").unwrap();
    let pid = dir.0.join("p.pid");
    let (e, ab) = (free_port(), free_port());
    let pen = PenBuilder::new()
        .opts(&[
            "-X",
            "-c",
            "100",
            "-x",
            "600",
            "-e",
            &format!("127.0.0.1:{e}"),
            "-B",
            &format!("127.0.0.1:{ab}"),
            "-j",
            "/",
            "-p",
            &pid.display().to_string(),
            "-F",
            &cfg.display().to_string(),
        ])
        .server(a.spec())
        .start();
    assert_eq!(pen.ctl("write"), "");
    let text = read(&cfg);
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let time = first
        .strip_prefix("# Generated by pen ")
        .unwrap_or_default();
    assert!(is_c_time(time), "{first}");
    let user = if running_as_root() { " -u 'root'" } else { "" };
    assert_eq!(
        lines.next().unwrap_or_default(),
        format!(
            "# pen -f -X -c 100 -e 127.0.0.1:{e} -B 127.0.0.1:{ab} -j '/' -p '{}'{user} -x 600 -F '{}' -C {} {}",
            pid.display(),
            cfg.display(),
            pen.control,
            pen.addr()
        )
    );
    // C pen's server line: `acl A` (C pen: always, ours: when set), address, port, max, hard.
    let acl = if is_c_pen() { "acl 0 " } else { "" };
    let server = format!(
        "server 0 {acl}address {} port {} max 0 hard 0",
        a.addr.ip(),
        a.addr.port()
    );
    assert!(text.lines().any(|l| l == server), "{server} in\n{text}");
    // With weight mode on, C pen adds weight and prio.
    assert_eq!(pen.ctl("weight"), "");
    assert_eq!(pen.ctl("server 0 weight 3"), "");
    assert_eq!(pen.ctl("write"), "");
    // C pen writes `weight W` in weight mode and `prio P` in prio mode, each alone.
    let server = format!("{server} weight 3");
    let text = read(&cfg);
    assert!(text.lines().any(|l| l == server), "{server} in\n{text}");
}

#[test]
fn udp_write_header_starts_with_dash_u() {
    let dir = ScratchDir::new("cwriteu");
    let cfg = dir.0.join("w.cfg");
    let backend = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = backend.local_addr().unwrap().to_string();
    let mut pen = Spawned::start(&pen_bin(), &["-U"], &dir.0, &[&server]);
    let out = control(&pen.control, &format!("write {}", cfg.display()));
    assert_eq!(out, "");
    let text = read(&cfg);
    let second = text.lines().nth(1).unwrap_or_default();
    assert!(second.starts_with("# pen -U -f "), "{second}");
    pen.stop();
}

/// A pen started here (any binary) with `-f [-u root] -C CTRL OPTS LISTEN SERVERS`.
struct Spawned {
    child: Child,
    control: String,
    listen: String,
}

impl Spawned {
    fn start(bin: &Path, opts: &[&str], dir: &Path, servers: &[&str]) -> Spawned {
        Self::start_env(bin, opts, dir, servers, &[])
    }

    /// [`Spawned::start`] with environment variables set.
    fn start_env(
        bin: &Path,
        opts: &[&str],
        dir: &Path,
        servers: &[&str],
        env: &[(&str, &str)],
    ) -> Spawned {
        let mut last = String::new();
        for _ in 0..5 {
            let control = format!("127.0.0.1:{}", free_port());
            let listen = format!("127.0.0.1:{}", free_port());
            let mut args: Vec<String> = vec!["-f".into()];
            if running_as_root() {
                args.extend(["-u".into(), "root".into()]);
            }
            args.extend(["-C".into(), control.clone()]);
            args.extend(opts.iter().map(|o| o.to_string()));
            args.push(listen.clone());
            args.extend(servers.iter().map(|s| s.to_string()));
            let log = std::fs::File::create(dir.join("spawned.log")).unwrap();
            let mut child = Command::new(bin)
                .args(&args)
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
            // Up once the control socket answers; given up on if the child exits first.
            let up = poll_until(WAIT, || {
                if TcpStream::connect(&control).is_ok() {
                    return Some(true);
                }
                matches!(child.try_wait(), Ok(Some(_))).then_some(false)
            });
            if up == Some(true) {
                return Spawned {
                    child,
                    control,
                    listen,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last = std::fs::read_to_string(dir.join("spawned.log")).unwrap_or_default();
        }
        panic!("{} {opts:?} did not start: {last}", bin.display());
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The other program: C pen when ours is under test, ours when C pen is.
fn other_pen() -> Option<PathBuf> {
    if is_c_pen() {
        Some(PathBuf::from(env!("CARGO_BIN_EXE_pen")))
    } else {
        let c = PathBuf::from("/usr/bin/pen");
        c.exists().then_some(c)
    }
}

/// `servers` without the traffic figures (`sx`, `rx`, `conn`), which differ between runs.
fn server_lines(control_addr: &str) -> Vec<String> {
    control(control_addr, "servers")
        .lines()
        .map(|l| l.split(" sx ").next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn each_pen_loads_the_others_write_file() {
    let Some(other) = other_pen() else {
        return; // C pen is not installed
    };
    let dir = ScratchDir::new("cross");
    let (a, b) = (Backend::hold(), Backend::hold());
    let writer = Spawned::start(&pen_bin(), &["-H"], &dir.0, &[&a.spec(), &b.spec()]);
    for cmd in [
        "hash",
        "weight",
        "blacklist 20",
        "tracking 40",
        "timeout 4",
        "server 0 max 5 hard 9 weight 3",
        "server 1 weight 7",
        "acl 2 permit 127.0.0.0 255.0.0.0",
    ] {
        // Setters reply as C pen does (`blacklist 20` echoes the value): only run them.
        control(&writer.control, cmd);
    }
    let file = dir.0.join("cross.cfg");
    assert_eq!(
        control(&writer.control, &format!("write {}", file.display())),
        ""
    );
    let text = read(&file);
    // The reader starts from the file. C pen needs no server on its command line (and would
    // let one there override the file's); ours needs one, which the file's server 0 replaces.
    let placeholder = format!("127.0.0.1:{}", free_port());
    let servers: Vec<&str> = if is_c_pen() {
        vec![&placeholder]
    } else {
        Vec::new()
    };
    let reader = Spawned::start(
        &other,
        &["-F", &file.display().to_string()],
        &dir.0,
        &servers,
    );
    for query in ["mode", "blacklist", "tracking", "timeout"] {
        let (w, r) = (
            control(&writer.control, query),
            control(&reader.control, query),
        );
        assert_eq!(w, r, "{query} after loading\n{text}");
    }
    assert_eq!(
        server_lines(&writer.control),
        server_lines(&reader.control),
        "servers after loading\n{text}"
    );
}

/// The `recent` line of 127.0.0.1, if any.
fn recent_line(control_addr: &str) -> Option<String> {
    (control(control_addr, "recent").lines())
        .find(|l| l.starts_with("127.0.0.1 "))
        .map(str::to_string)
}

#[test]
fn recent_and_connects_carry_on_across_tracking_expiry() {
    let a = Backend::name("A");
    let b = Backend::name("B");
    let pen = PenBuilder::new()
        .opts(&["-T", "1"])
        .server(a.spec())
        .server(b.spec())
        .start();
    for _ in 0..2 {
        pen.fetch();
    }
    wait_for(WAIT, "two connects in recent", || {
        let l = recent_line(&pen.control)?;
        (l == "127.0.0.1 connects 2 sx 2 rx 0").then_some(())
    });
    // The tracking time passes: the next connect may go elsewhere, but the client's entry,
    // its connects and its bytes carry on (C pen: `connects 3`). `recent 1` lists the clients
    // seen within the last whole second (both pens compare whole seconds, `<=`): once it no
    // longer lists this one, more than the tracking time of 1 s has passed since its last
    // connect, so its tracking entry has expired.
    wait_until(Duration::from_secs(10), "the tracking time to pass", || {
        !control(&pen.control, "recent 1")
            .lines()
            .any(|l| l.starts_with("127.0.0.1 "))
    });
    pen.fetch();
    let line = wait_for(WAIT, "the third connect in recent", || {
        recent_line(&pen.control).filter(|l| l.contains(" sx 3 "))
    });
    assert_eq!(line, "127.0.0.1 connects 3 sx 3 rx 0");
}

#[test]
fn udp_recent_counts_the_clients_bytes_while_its_flow_lives() {
    let dir = ScratchDir::new("udprecent");
    let backend = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = backend.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = backend.recv_from(&mut buf) {
            let mut reply = b"reply:".to_vec();
            reply.extend_from_slice(buf.get(..n).unwrap_or_default());
            let _ = backend.send_to(&reply, from);
        }
    });
    let pen = Spawned::start(&pen_bin(), &["-U"], &dir.0, &[&server]);
    let listen = pen.listen.clone();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 64];
    for _ in 0..4 {
        client.send_to(b"ab", &listen).unwrap();
        let (n, _) = client.recv_from(&mut buf).expect("a reply through pen");
        assert_eq!(buf.get(..n), Some(&b"reply:ab"[..]));
    }
    // While the flow lives, `recent` counts the bytes received from the client (C pen: `rx 6`,
    // the first datagram left out; ours: `rx 8`), and `servers` the bytes sent to the server.
    // The worker may publish the counts a datagram at a time (seen under load: `rx 2` first),
    // so wait until they cover the datagrams sent after the first.
    let rx_of = |l: &str| -> u64 {
        (l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_default()
    };
    let line = wait_for(WAIT, "the client's bytes in recent", || {
        recent_line(&pen.control).filter(|l| rx_of(l) >= 6)
    });
    let rx = rx_of(&line);
    assert!((6..=8).contains(&rx), "{line}");
    assert!(line.starts_with("127.0.0.1 connects 1 sx "), "{line}");
    let sx_of = |servers: &str| -> u64 {
        (servers.split(" sx ").nth(1))
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_default()
    };
    let servers = poll_until(WAIT, || {
        let s = control(&pen.control, "servers");
        (sx_of(&s) == rx).then_some(s)
    });
    assert!(
        servers.is_some(),
        "sx never reached {rx}: {}",
        control(&pen.control, "servers")
    );
}

/// Seconds since the epoch of a `YYYY-MM-DD HH:MM:SS` read as UTC.
fn epoch_of(s: &str) -> Option<i64> {
    let n = |a: usize, b: usize| s.get(a..b).and_then(|x| x.parse::<i64>().ok());
    let (y, m, d) = (n(0, 4)?, n(5, 7)?, n(8, 10)?);
    let (hh, mm, ss) = (n(11, 13)?, n(14, 16)?, n(17, 19)?);
    // Days from civil (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[test]
fn write_and_status_show_local_time_as_c_pen_does() {
    if !Path::new("/usr/share/zoneinfo/Etc/GMT-9").exists() {
        return; // no time zone database here
    }
    let dir = ScratchDir::new("localtime");
    let file = dir.0.join("w.cfg");
    let stats = dir.0.join("s.html");
    let a = Backend::hold();
    // Nine hours east of UTC, no daylight saving time.
    let pen = Spawned::start_env(
        &pen_bin(),
        &["-w", &stats.display().to_string()],
        &dir.0,
        &[&a.spec()],
        &[("TZ", "Etc/GMT-9")],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_eq!(
        control(&pen.control, &format!("write {}", file.display())),
        ""
    );
    let text = read(&file);
    let first = text.lines().next().unwrap_or_default();
    let shown = first
        .strip_prefix("# Generated by pen ")
        .and_then(epoch_of)
        .unwrap_or_else(|| panic!("{first}"));
    assert!((shown - now - 9 * 3600).abs() <= 5, "{first} (now {now})");
    let page = control(&pen.control, "status");
    let line = page
        .lines()
        .find(|l| l.starts_with("Time "))
        .unwrap_or_default();
    let shown = line
        .get(5..24)
        .and_then(epoch_of)
        .unwrap_or_else(|| panic!("{line}"));
    assert!((shown - now - 9 * 3600).abs() <= 5, "{line} (now {now})");
}

#[test]
fn recent_counts_an_open_connections_bytes() {
    use std::io::{Read, Write};
    let echo = Backend::echo();
    let dir = ScratchDir::new("liverecent");
    // C pen's `status` needs -w.
    let stats = dir.0.join("s.html").display().to_string();
    let pen = PenBuilder::new()
        .opts(&["-w", &stats])
        .server(echo.spec())
        .start();
    let mut c = pen.connect();
    c.write_all(b"hello").unwrap();
    let mut buf = [0u8; 5];
    c.read_exact(&mut buf).unwrap();
    // Still open: C pen counts the bytes as they pass.
    let line = wait_for(WAIT, "the open connection's bytes in recent", || {
        recent_line(&pen.control).filter(|l| !l.ends_with(" rx 0"))
    });
    assert_eq!(line, "127.0.0.1 connects 1 sx 5 rx 5");
    // And the status page's client row.
    let page = pen.ctl("status");
    let clients = page.split("Active clients").nth(1).unwrap_or_default();
    assert!(
        clients.contains(
            "<td>127.0.0.1</td>\n<td>0</td>\n<td>0</td>\n<td>1</td>\n<td>5</td>\n<td>5</td>\n"
        ),
        "{clients}"
    );
    drop(c);
}

/// `recent` lists the client table in C pen's slot order: the order clients were first seen
/// in (not most recent first), a client that evicted another taking its place.
#[test]
fn recent_lists_clients_in_c_pens_slot_order() {
    let a = Backend::name("A");
    let pen = PenBuilder::new()
        .opts(&["-c", "3"])
        .server(a.spec())
        .start();
    let clients = |pen: &super::harness::Pen| -> Vec<String> {
        let recent = pen.ctl("recent");
        recent
            .lines()
            .filter_map(|l| l.split(' ').next().map(str::to_string))
            .collect()
    };
    for n in [2, 3, 4] {
        assert_eq!(pen.fetch_from(n), "A");
    }
    // C pen's clock has whole seconds and, of clients seen in the same second, evicts the
    // first slot's: the second must turn before .3 and .4 are seen again.
    let seen = unix_secs();
    poll_until(Duration::from_secs(3), || {
        (unix_secs() > seen).then_some(())
    })
    .expect("the wall clock's second turns");
    for n in [3, 4] {
        assert_eq!(pen.fetch_from(n), "A");
    }
    assert_eq!(clients(&pen), ["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
    assert_eq!(pen.fetch_from(5), "A");
    assert_eq!(
        clients(&pen),
        ["127.0.0.5", "127.0.0.3", "127.0.0.4"],
        ".5 evicted .2, the least recently seen, and took its slot"
    );
}

/// Whole seconds of the wall clock, the resolution of C pen's `time()`.
fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
