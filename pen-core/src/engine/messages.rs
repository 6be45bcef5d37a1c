//! The control plane's requests to a worker ([`WorkerMsg`](crate::engine::state::WorkerMsg)),
//! handled by one loop for both engines: each engine says how it does the four things asked of
//! it ([`Engine`]), and [`dispatch`] carries each message out (the worker's loop drains its
//! channel: `while let Ok(msg) = self.rx.try_recv() { dispatch(msg, self) }`).

use std::net::IpAddr;
use std::os::fd::RawFd;

use crate::domain::server::Target;
use crate::engine::net::Listener;
use crate::engine::reactor::handoff::Moved;
use crate::engine::state::WorkerMsg;

/// One open connection (or UDP flow) as its worker reports it: a row of the status page's
/// connection table.
#[derive(Clone, Debug)]
pub(crate) struct ConnRow {
    /// Its slot in the worker.
    pub(crate) slot: usize,
    /// The client side's descriptor.
    pub(crate) downfd: RawFd,
    /// The server side's descriptor (-1 before there is one).
    pub(crate) upfd: RawFd,
    /// Bytes waiting to be written to the client.
    pub(crate) pending_down: usize,
    /// Bytes waiting to be written to the server.
    pub(crate) pending_up: usize,
    /// The client's address.
    pub(crate) client: IpAddr,
    /// Where it goes.
    pub(crate) target: Target,
    /// Bytes sent to the client and not yet added to its entry in the client table.
    pub(crate) to_client: u64,
    /// Bytes received from the client and not yet added to its entry in the client table.
    pub(crate) from_client: u64,
}

/// What a worker (TCP or UDP) does for the control plane.
pub(crate) trait Engine {
    /// Replaces the listener (`None`: no listener for this worker).
    fn listen(&mut self, listener: Option<Listener>);
    /// Closes the connection or flow in `slot`, if there is one.
    fn close_slot(&mut self, slot: usize);
    /// `connection N`'s text for `slot`, if it is in use.
    fn describe(&self, slot: usize) -> Option<String>;
    /// The slot whose connection or flow owns the descriptor `fd`.
    fn find_socket(&self, fd: RawFd) -> Option<usize>;
    /// The open connections or flows.
    fn connections(&self) -> Vec<ConnRow>;
    /// Gives up the connections that can move to a new binary (none by default: UDP flows
    /// are not handed over).
    fn hand_off(&mut self) -> Vec<Moved> {
        Vec::new()
    }
    /// Takes in a connection handed over by the pen this one replaced (dropped, so closed,
    /// by default).
    fn adopt(&mut self, moved: Moved) {
        drop(moved);
    }
}

/// Carries out one message.
pub(crate) fn dispatch(msg: WorkerMsg, engine: &mut impl Engine) {
    {
        match msg {
            WorkerMsg::Listen(l, done) => {
                engine.listen(l);
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            WorkerMsg::Close(slot) => engine.close_slot(slot),
            WorkerMsg::Describe(slot, reply) => {
                let _ = reply.send(engine.describe(slot));
            }
            WorkerMsg::FindSocket(fd, reply) => {
                let _ = reply.send(engine.find_socket(fd));
            }
            WorkerMsg::List(reply) => {
                let _ = reply.send(engine.connections());
            }
            WorkerMsg::HandOff(reply) => {
                let _ = reply.send(engine.hand_off());
            }
            WorkerMsg::Adopt(moved) => engine.adopt(*moved),
        }
    }
}
