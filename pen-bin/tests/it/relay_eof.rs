//! The end of a server's stream: pen takes a short read after the server's FIN for the end of
//! file (issue 15, one read saved per direction), and must not when urgent data lies before
//! the FIN (a read stops short at its mark with more bytes after it).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::thread;
use std::time::Duration;

use super::harness::PenBuilder;

/// Connections per test: the server's bytes, urgent mark and FIN must sometimes all be in
/// before pen's first read, which depends on the scheduler; many connections make that sure.
const ROUNDS: usize = 40;

/// A backend that, on each connection, writes `before`, then (if `urgent`) one urgent byte
/// `!`, then `after`, and closes at once; pen is started in front of it.
fn run(urgent: bool, before: &[u8], after: &[u8]) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (b, a) = (before.to_vec(), after.to_vec());
    let server = thread::spawn(move || {
        for _ in 0..ROUNDS {
            let (s, _) = listener.accept().expect("accept");
            let mut s = socket2::Socket::from(s);
            s.write_all(&b).expect("write before");
            if urgent {
                s.send_out_of_band(b"!").expect("send urgent byte");
            }
            s.write_all(&a).expect("write after");
            let _ = s.shutdown(Shutdown::Write);
        }
    });
    let pen = PenBuilder::new().server(addr.to_string()).start();
    let want: Vec<u8> = [before, after].concat();
    for round in 0..ROUNDS {
        let mut c = pen.connect();
        c.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut got = Vec::new();
        c.read_to_end(&mut got).expect("read to the end of file");
        assert_eq!(
            got.len(),
            want.len(),
            "round {round}: bytes relayed (urgent byte excluded)"
        );
        assert!(got == want, "round {round}: the bytes relayed differ");
        // The client's direction is still open after the server's FIN.
        c.write_all(b"late").expect("write after the server's FIN");
    }
    server.join().expect("server thread");
}

#[test]
fn an_answer_and_its_fin_at_once_arrive_whole_with_the_end_of_file() {
    run(false, &[b'a'; 3000], &[b'b'; 100]);
}

#[test]
fn urgent_data_before_the_fin_does_not_end_the_stream_early() {
    run(true, &[b'a'; 3000], &[b'b'; 3000]);
}
