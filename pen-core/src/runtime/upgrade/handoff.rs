//! Live connection handoff, the last step of a binary upgrade: the old pen's established
//! plain connections go to the new one over the upgrade channel, each as one message (a
//! record, `engine::reactor::handoff::Record`, with the client and server descriptors), then
//! `end`. What cannot move drains in the old pen.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::mpsc;
use std::time::Duration;

use crate::engine::reactor::handoff::{Moved, Record};
use crate::engine::state::{Shared, WorkerMsg};
use crate::sys::fdpass;

/// How long the old pen waits for a worker to give up its connections, and for the new pen to
/// take each one off the channel.
const HANDOFF_WITHIN: Duration = Duration::from_secs(5);
/// The end of the live connections on the channel.
const HANDOFF_END: &[u8] = b"end";
/// What a new pen that takes connections says after `ready` (an older binary says nothing
/// more: its predecessor's connections then drain there rather than be sent to nobody).
pub(super) const ADOPTS: &[u8] = b"adopt 1";
/// How long the old pen waits for [`ADOPTS`] (the new pen sends it right after `ready`).
const ADOPTS_WITHIN: Duration = Duration::from_secs(2);

/// Whether the new pen said it takes connections ([`ADOPTS`]) on `channel`.
fn peer_adopts(channel: &OwnedFd) -> bool {
    let sock = socket2::SockRef::from(channel);
    if sock.set_read_timeout(Some(ADOPTS_WITHIN)).is_err() {
        return false;
    }
    matches!(fdpass::recv_with_fds(channel, 64), Ok((text, _)) if text == ADOPTS)
}

/// The longest connection record: the fixed fields and a relay buffer each way (a state
/// message is shorter).
const RECORD_MAX: usize = 2 * crate::engine::relay::BUF_SIZE + 256;
const _: () = assert!(super::state::CHUNK <= RECORD_MAX);

/// After the new pen is ready and the listeners are closed: every worker gives up its movable
/// connections (see `engine::reactor::handoff`), each goes to the new pen as one message (its
/// record with the client and server descriptors), then `end`. The others drain here. A
/// connection that cannot be sent is closed (the new pen is gone). Nothing moves to a new pen
/// that did not say [`ADOPTS`].
pub(super) fn send_connections(shared: &Shared, channel: &OwnedFd) {
    if !peer_adopts(channel) {
        log::info!("upgrade: the new pen does not take connections; they finish here");
        return;
    }
    let _ = socket2::SockRef::from(channel).set_write_timeout(Some(HANDOFF_WITHIN));
    // The runtime state first (the listeners are closed: nothing new is counted here), so
    // that the new pen knows its clients' servers and its servers' health from now on.
    for msg in super::state::export(shared) {
        if let Err(e) = fdpass::send_with_fds(channel, &msg, &[]) {
            log::warn!("upgrade: cannot hand the runtime state over ({e})");
            break;
        }
    }
    if shared.udp {
        let _ = fdpass::send_with_fds(channel, HANDOFF_END, &[]);
        return;
    }
    let replies: Vec<_> = (shared.workers.iter())
        .filter_map(|link| {
            let (tx, rx) = mpsc::channel();
            link.send(WorkerMsg::HandOff(tx)).then_some(rx)
        })
        .collect();
    let (mut moved, mut lost) = (0usize, 0usize);
    for rx in replies {
        for m in rx.recv_timeout(HANDOFF_WITHIN).unwrap_or_default() {
            let fds = [m.client.as_raw_fd(), m.server.as_raw_fd()];
            match fdpass::send_with_fds(channel, &m.record().encode(), &fds) {
                Ok(()) => moved += 1,
                Err(e) => {
                    lost += 1;
                    log::warn!("upgrade: cannot hand a connection over ({e}); it is closed");
                }
            }
        }
    }
    let _ = fdpass::send_with_fds(channel, HANDOFF_END, &[]);
    log::info!("upgrade: {moved} connection(s) handed over, {lost} lost");
}

/// The new pen's side: takes the live connections off the channel until `end` and gives them
/// to the workers in turn.
pub(super) fn adopt_connections(shared: &Shared, channel: &OwnedFd) {
    let _ = socket2::SockRef::from(channel).set_read_timeout(Some(HANDOFF_WITHIN * 2));
    let n = shared.workers.len();
    let mut adopted = 0usize;
    let mut state = super::state::Importer::default();
    loop {
        let (text, fds) = match fdpass::recv_with_fds(channel, RECORD_MAX) {
            Ok(got) => got,
            Err(e) => {
                log::warn!("upgrade: handed-over connections: {e}");
                break;
            }
        };
        if text.is_empty() || text == HANDOFF_END {
            break;
        }
        if text.starts_with(super::state::STATE_HEAD) {
            state.absorb(shared, &text);
            continue;
        }
        let rec = Record::decode(&text);
        let mut fds = fds.into_iter();
        let (Some(rec), Some(client), Some(server), None) =
            (rec, fds.next(), fds.next(), fds.next())
        else {
            log::warn!("upgrade: a malformed handed-over connection was closed");
            continue;
        };
        let m = Moved::new(rec, client, server);
        let link = (n > 0).then(|| shared.workers.get(adopted % n)).flatten();
        if let Some(link) = link {
            link.send(WorkerMsg::Adopt(Box::new(m)));
        }
        adopted += 1;
    }
    let st = state.done;
    log::info!(
        "upgrade: {adopted} connection(s) taken over; state of {} server(s) and {} client(s) \
         taken over, {} line(s) skipped",
        st.servers,
        st.clients,
        st.skipped
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_new_pen_that_says_so_gets_connections() {
        let (old, new) = fdpass::seqpacket_pair().unwrap();
        fdpass::send_with_fds(&new, ADOPTS, &[]).unwrap();
        assert!(peer_adopts(&old));
        // An older binary: `ready`, then nothing more (its channel closes).
        drop(new);
        assert!(!peer_adopts(&old));
        let (old, new) = fdpass::seqpacket_pair().unwrap();
        fdpass::send_with_fds(&new, b"something else", &[]).unwrap();
        assert!(!peer_adopts(&old));
    }
}
