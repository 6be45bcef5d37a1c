//! Fuzzes the access-log line formatter (`-l`, `log FILE`): whatever a client sends, each chunk
//! gives exactly one line `CLIENT UNIX_TIME SERVER FIRST_LINE\n`, where FIRST_LINE is the
//! chunk up to its first CR or LF, at most 512 bytes, with every byte that is not printable
//! ASCII (or a space) replaced by `.`; an empty chunk gives nothing. So a client cannot forge
//! log lines or write control characters into the log.
//!
//! Input: a tag byte choosing the client and server addresses, then the chunk.
#![no_main]

use std::net::{IpAddr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use pen_core::fuzzing::accesslog::{record, MAX_LINE};

fuzz_target!(|data: &[u8]| {
    let Some((&tag, chunk)) = data.split_first() else {
        return;
    };
    let client: IpAddr = match tag % 3 {
        0 => "192.0.2.7".parse().unwrap(),
        1 => "2001:db8::7".parse().unwrap(),
        _ => "::ffff:192.0.2.7".parse().unwrap(),
    };
    let server: Option<SocketAddr> = match (tag / 3) % 3 {
        0 => None,
        1 => Some("10.0.0.1:80".parse().unwrap()),
        _ => Some("[2001:db8::1]:8080".parse().unwrap()),
    };
    let out = record(client, server, chunk);
    if chunk.is_empty() {
        assert!(out.is_empty());
        return;
    }
    assert_eq!(out.last(), Some(&b'\n'), "one whole line");
    let line = &out[..out.len() - 1];
    assert!(
        line.iter().all(|&b| b.is_ascii_graphic() || b == b' '),
        "control or non-ASCII byte in {line:?}"
    );
    let line = std::str::from_utf8(line).unwrap();
    let mut parts = line.splitn(4, ' ');
    assert_eq!(parts.next(), Some(client.to_string().as_str()));
    let time = parts.next().unwrap();
    assert!(
        !time.is_empty() && time.bytes().all(|b| b.is_ascii_digit()),
        "{time:?}"
    );
    let shown = server.map_or("0.0.0.0".to_string(), |s| s.ip().to_string());
    assert_eq!(parts.next(), Some(shown.as_str()));
    let first = parts.next().unwrap_or_default();
    let want: Vec<u8> = chunk
        .iter()
        .take_while(|&&b| b != b'\n' && b != b'\r')
        .take(MAX_LINE)
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b
            } else {
                b'.'
            }
        })
        .collect();
    assert_eq!(first.as_bytes(), &want[..]);
});
