//! `dummy` mode (C pen's built-in test target): every client gets the same small web page
//! instead of being relayed. As in C pen, the page is sent once the client has sent anything
//! (one read), then the connection is closed; a client that closes without sending gets
//! nothing. No server is chosen or connected to.

use std::io::{self, Read, Write};

use super::{Conn, Worker};
use crate::domain::server::Target;
use crate::engine::lifecycle::Lifecycle;
use crate::engine::net::{Peer, Stream};

/// C pen's dummy reply, byte for byte.
const PAGE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\nContent-Type: text/html\r\n\r\nUlric was here.";

impl Worker {
    /// A new client while `dummy` is on: waits (in the connecting phase, with no server) for
    /// its first bytes.
    pub(super) fn start_dummy(&mut self, client: Stream, peer: Peer, now: u64, per_client: bool) {
        let mut conn = Conn::new(
            client,
            peer,
            Target::Abuse,
            None,
            Lifecycle::connecting(now),
        );
        conn.dummy = true;
        conn.per_client = per_client;
        if let Some(slot) = self.install(conn) {
            // The request may be in already: try now rather than wait for the first event.
            if let Some(c) = self.slots.get_mut(slot) {
                c.c.read = true;
            }
            self.dummy_turn(slot);
        }
    }

    /// The dummy connection's client is readable: on its first bytes answer with the page
    /// and close; on end of file or an error close; otherwise wait.
    pub(super) fn dummy_turn(&mut self, slot: usize) {
        let Some(conn) = self.slots.get_mut(slot) else {
            return;
        };
        if !conn.c.read {
            return;
        }
        let mut buf = [0u8; 1024];
        let mut read = (&conn.client).read(&mut buf);
        while matches!(&read, Err(e) if e.kind() == io::ErrorKind::Interrupted) {
            read = (&conn.client).read(&mut buf);
        }
        match read {
            Ok(0) => {}
            Ok(_) => {
                // A fresh socket's send buffer takes the 80 bytes at once; best effort.
                let _ = (&conn.client).write_all(PAGE);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                conn.c.read = false;
                return;
            }
            Err(_) => {}
        }
        self.close(slot);
    }
}
