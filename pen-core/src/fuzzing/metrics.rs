//! The metrics listener's request handling (`--metrics`): what it answers to the bytes a client
//! has sent so far, as its server loop asks after every read.

use crate::oneshot::Protocol;

use super::config::Harness;

/// The reply to the input so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Read more.
    Wait,
    /// Send this, then close.
    Reply(Vec<u8>),
    /// Close without a reply.
    Leave,
}

/// The longest input the server loop reads before it needs an answer.
pub const MAX_INPUT: usize = crate::metrics_http::MetricsHttp::MAX_INPUT;

/// What the metrics listener answers to `input` (`eof`: the client has finished sending).
pub fn answer(h: &Harness, input: &[u8], eof: bool) -> Answer {
    match crate::metrics_http::MetricsHttp.answer(h.shared(), input, eof) {
        crate::oneshot::Answer::Wait => Answer::Wait,
        crate::oneshot::Answer::Reply(r) => Answer::Reply(r),
        crate::oneshot::Answer::Leave => Answer::Leave,
    }
}
