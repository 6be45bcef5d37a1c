//! The status page's renderer and file writing.

use super::page::{duration, esc, utc};
use super::*;
use std::net::Ipv4Addr;

pub(crate) fn sample() -> Status {
    let addr = |p| Some(SocketAddr::from((Ipv4Addr::LOCALHOST, p)));
    Status {
        wall_secs: 1_700_000_000,
        utc_offset_secs: 0,
        uptime_ms: 90_061_000,
        listen: "127.0.0.1:8080".into(),
        control: Some("127.0.0.1:10080".into()),
        settings: Settings::default(),
        active: 3,
        conn_max: 500,
        workers: 2,
        servers: vec![
            ServerStatus {
                addr: addr(81),
                has_address: true,
                conns: 2,
                total: 10,
                sent: 100,
                received: 2000,
                ..ServerStatus::default()
            },
            ServerStatus {
                addr: addr(82),
                has_address: true,
                blacklist_left: Some(17),
                acl: Some(3),
                state: "drain",
                ..ServerStatus::default()
            },
            ServerStatus::default(),
        ],
        emergency: Some(ServerStatus {
            addr: addr(99),
            has_address: true,
            ..ServerStatus::default()
        }),
        clients: vec![ClientStatus {
            addr: IpAddr::from(Ipv4Addr::new(127, 0, 0, 2)),
            age_secs: 5,
            server: 0,
            connects: 4,
            sent: 7,
            received: 8,
        }],
        clients_tracked: 1,
        clients_capacity: 2048,
        counters: CounterValues::default(),
        tls: None,
        current: 1,
        panic: false,
        connections: vec![ConnectionStatus {
            number: 2,
            downfd: 11,
            upfd: 12,
            pending_down: 0,
            pending_up: 5,
            client: IpAddr::from(Ipv4Addr::new(127, 0, 0, 2)),
            target: Target::Server(crate::domain::server::ServerId(0)),
        }],
    }
}

#[test]
fn time_and_duration_formats() {
    assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
    assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    assert_eq!(duration(90_061_000), "1d 01:01:01");
    assert_eq!(duration(59_999), "00:00:59");
}

#[test]
fn escapes_markup_and_controls() {
    assert_eq!(
        esc("<a href=\"x\">'&'</a>\u{1}"),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;\u{fffd}"
    );
}

/// C pen 0.34.1's page for two servers (the second blacklisted), one tracked client and one
/// open connection, as captured from /usr/bin/pen (values set to the sample's).
const C_PAGE: &str = "<html>
<head>
<title>Pen status page</title>
</head>
<body bgcolor=\"#ffffff\"><h1>Pen status page</h1>
Time 2023-11-14 22:13:20, 3 servers, 1 current<p>
<table bgcolor=\"#c0c0c0\">
<tr>
<td bgcolor=\"#80f080\">server</td>
<td bgcolor=\"#80f080\">address</td>
<td bgcolor=\"#80f080\">status</td>
<td bgcolor=\"#80f080\">port</td>
<td bgcolor=\"#80f080\">connections</td>
<td bgcolor=\"#80f080\">max soft</td>
<td bgcolor=\"#80f080\">max hard</td>
<td bgcolor=\"#80f080\">sent</td>
<td bgcolor=\"#80f080\">received</td>
<td bgcolor=\"#80f080\">weight</td>
<td bgcolor=\"#80f080\">prio</td>
</tr>
<tr>
<td>0</td>
<td>127.0.0.1</td>
<td>0</td>
<td>81</td>
<td>2</td>
<td>0</td>
<td>0</td>
<td>100</td>
<td>2000</td>
<td>0</td>
<td>0</td>
</tr>
<tr>
<td>1</td>
<td>127.0.0.1</td>
<td>1699999987</td>
<td>82</td>
<td>0</td>
<td>0</td>
<td>0</td>
<td>0</td>
<td>0</td>
<td>0</td>
<td>0</td>
</tr>
<tr>
<td>2</td>
<td></td>
<td>0</td>
<td>0</td>
<td>0</td>
<td>0</td>
<td>0</td>
<td>0</td>
<td>0</td>
<td>0</td>
<td>0</td>
</tr>
</table>
<h2>Active clients</h2>Max number of clients: 2048<p><table bgcolor=\"#c0c0c0\">
<tr>
<td bgcolor=\"#80f080\">client</td>
<td bgcolor=\"#80f080\">address</td>
<td bgcolor=\"#80f080\">age(secs)</td>
<td bgcolor=\"#80f080\">last server</td>
<td bgcolor=\"#80f080\">connects</td>
<td bgcolor=\"#80f080\">sent</td>
<td bgcolor=\"#80f080\">received</td>
</tr>
<tr>
<td>0</td>
<td>127.0.0.2</td>
<td>5</td>
<td>0</td>
<td>4</td>
<td>7</td>
<td>8</td>
</tr>
</table>
<h2>Active connections</h2>Number of connections: 500 max, 3 used, 2 last<p><table bgcolor=\"#c0c0c0\">
<tr>
<td bgcolor=\"#80f080\">connection</td>
<td bgcolor=\"#80f080\">downfd</td>
<td bgcolor=\"#80f080\">upfd</td>
<td bgcolor=\"#80f080\">pending data down</td>
<td bgcolor=\"#80f080\">pending data up</td>
<td bgcolor=\"#80f080\">client</td>
<td bgcolor=\"#80f080\">server</td>
</tr>
<tr>
<td>2</td>
<td>11</td>
<td>12</td>
<td>0</td>
<td>5</td>
<td>0</td>
<td>0</td>
</tr>
</table>
";

#[test]
fn page_starts_with_c_pens_page() {
    let page = render_page(&sample());
    assert!(page.starts_with(C_PAGE), "{page}");
    assert!(page.ends_with("</table>\n</body>\n</html>\n"), "{page}");
}

#[test]
fn time_line_shows_local_time() {
    let mut s = sample();
    s.utc_offset_secs = 9 * 3600;
    let page = render_page(&s);
    assert!(
        page.contains("\nTime 2023-11-15 07:13:20, 3 servers, 1 current<p>\n"),
        "{page}"
    );
    // Our details keep UTC, named as such.
    assert!(page.contains("2023-11-14 22:13:20 UTC"));
}

#[test]
fn our_details_follow_c_pens_content() {
    let page = render_page(&sample());
    let ours = page.get(C_PAGE.len()..).unwrap_or_default();
    assert!(ours.starts_with("<h2>Emergency server</h2>"), "{ours}");
    assert!(ours.contains("<td>emergency</td>\n<td>127.0.0.1</td>\n<td>0</td>\n<td>99</td>"));
    assert!(ours.contains("blacklisted, 17 s left"));
    assert!(ours.contains("no address"));
    assert!(ours.contains("1d 01:01:01"));
    assert!(ours.contains("no hash no roundrobin"));
    assert!(ours.contains("2023-11-14 22:13:20 UTC"));
    assert!(!ours.contains("most recently seen"));
}

#[test]
fn long_client_list_is_capped_with_a_note() {
    let mut s = sample();
    s.clients = vec![s.clients[0].clone(); MAX_CLIENT_ROWS];
    s.clients_tracked = 5000;
    let page = render_page(&s);
    assert!(page.contains("<p>Showing the 1000 most recently seen of 5000 clients.</p>"));
}

#[test]
fn atomic_write_replaces_the_file_and_leaves_no_temporary() {
    let dir = std::env::temp_dir().join(format!("pen-stats-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("status.html");
    write_atomically(&p, "one").unwrap();
    write_atomically(&p, "two").unwrap();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(names.len(), 1, "temporary file left behind");
    let err = write_atomically(&dir.join("missing/x.html"), "x").unwrap_err();
    assert!(err.to_string().contains("missing/x.html"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
