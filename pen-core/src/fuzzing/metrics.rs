//! The metrics listener's request handling (`--metrics`): what it answers to the bytes a client
//! has sent so far, as its server loop asks after every read.

use crate::admin::oneshot::Protocol;

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
pub const MAX_INPUT: usize = crate::admin::metrics_http::MetricsHttp::MAX_INPUT;

/// What the metrics listener answers to `input` (`eof`: the client has finished sending).
pub fn answer(h: &Harness, input: &[u8], eof: bool) -> Answer {
    match crate::admin::metrics_http::MetricsHttp.answer(h.shared(), input, eof) {
        crate::admin::oneshot::Answer::Wait => Answer::Wait,
        crate::admin::oneshot::Answer::Reply(r) => Answer::Reply(r),
        crate::admin::oneshot::Answer::Leave => Answer::Leave,
    }
}
