//! One client exchange on a TCP connection through pen, checked byte for byte: a sequential
//! request-reply (`gen`, `half`, small `echo`) or a full-duplex `echo`.

use std::io::Read;
use std::net::{Shutdown, TcpStream};
use std::thread;

use crate::backends::TCP_BACKENDS;
use crate::checksum::stream_sum;
use crate::context::{Done, Fail};
use crate::rng::Rng;
use crate::stats::ErrKind;
use crate::wire::{
    dec_rep, enc_req, get_u32, read_header, recv_sum, send_stream, Op, Rep, Req, CHUNK, DOWN_SALT,
    HDR,
};

/// One request-reply, sequential (the upload is written before the reply is read): `gen`,
/// `half` and small `echo` requests.
pub(crate) fn exchange(s: &mut TcpStream, req: Req, buf: &mut [u8]) -> Result<Done, Fail> {
    let sent = send_stream(s, &enc_req(&req), req.seed, req.up, buf, false)?;
    if req.op == Op::Half {
        s.shutdown(Shutdown::Write)?;
    }
    let rep = read_reply(s)?;
    let (want_down, expect) = match req.op {
        Op::Echo => (req.up, sent),
        Op::Gen | Op::Half => {
            if rep.up_sum != sent || rep.up_len != req.up {
                return Err(Fail::Corrupt(format!(
                    "upload as received by server {}: {} bytes, checksum {:016x}; sent {} bytes, {:016x}",
                    rep.server, rep.up_len, rep.up_sum, req.up, sent
                )));
            }
            (req.down, 0)
        }
    };
    if rep.down != want_down || rep.server as usize >= TCP_BACKENDS {
        return Err(Fail::Corrupt(format!("bad reply header {rep:?}")));
    }
    let got = recv_sum(s, rep.down, buf)?;
    let expect = if req.op == Op::Echo {
        expect
    } else {
        stream_sum(req.seed ^ DOWN_SALT, req.down, buf)
    };
    if got != expect {
        return Err(Fail::Corrupt(format!(
            "download of {} bytes from server {}: checksum {got:016x}, expected {expect:016x}",
            rep.down, rep.server
        )));
    }
    if req.op == Op::Half {
        match s.read(&mut buf[..1]) {
            Ok(0) => {}
            Ok(_) => return Err(Fail::Corrupt("bytes after the reply before EOF".into())),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Done {
        server: rep.server,
        up: req.up,
        down: rep.down,
    })
}

fn read_reply(s: &mut TcpStream) -> Result<Rep, Fail> {
    let mut h = [0u8; HDR];
    if !read_header(s, &mut h)? {
        return Err(Fail::Io(ErrKind::Eof, "EOF before the reply header".into()));
    }
    dec_rep(&h).ok_or_else(|| Fail::Corrupt(format!("bad reply magic {:08x}", get_u32(&h, 0))))
}

/// A full-duplex `echo`: a second thread writes while this one reads.
pub(crate) fn duplex_echo(s: &mut TcpStream, req: Req, buf: &mut [u8]) -> Result<Done, Fail> {
    let mut w = s.try_clone()?;
    let writer = thread::Builder::new()
        .name("soak-duplex".into())
        .spawn(move || {
            let mut wbuf = vec![0u8; CHUNK];
            send_stream(&mut w, &enc_req(&req), req.seed, req.up, &mut wbuf, false)
        })?;
    let got = read_reply(s).and_then(|rep| {
        if rep.down != req.up || rep.server as usize >= TCP_BACKENDS {
            return Err(Fail::Corrupt(format!("bad echo reply header {rep:?}")));
        }
        Ok((rep.server, recv_sum(s, req.up, buf)?))
    });
    if got.is_err() {
        // Unblock the writer if it is stuck on a full buffer.
        let _ = s.shutdown(Shutdown::Both);
    }
    let sent = writer
        .join()
        .map_err(|_| Fail::Io(ErrKind::Other, "writer thread panicked".into()))?;
    let (server, got) = got?;
    let sent = sent?;
    if got != sent {
        return Err(Fail::Corrupt(format!(
            "duplex echo of {} bytes from server {server}: checksum {got:016x}, sent {sent:016x}",
            req.up
        )));
    }
    Ok(Done {
        server,
        up: req.up,
        down: req.up,
    })
}

pub(crate) fn describe(req: &Req) -> String {
    format!(
        "{:?} up {} down {} seed {:016x}",
        req.op, req.up, req.down, req.seed
    )
}

pub(crate) fn small_req(rng: &mut Rng, max: u64) -> Req {
    let op = if rng.chance(1, 2) { Op::Gen } else { Op::Echo };
    let up = rng.size(max);
    let down = if op == Op::Echo { up } else { rng.size(max) };
    Req {
        op,
        seed: rng.next(),
        up,
        down,
    }
}
