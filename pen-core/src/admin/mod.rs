//! The admin servers: one-request servers on their own threads (the penctl control socket and
//! the metrics HTTP listener), and what they render: the status page and the Prometheus text.
//! They read the engine's shared state; commands are carried out by the runtime through a
//! callback, so this layer never names the runtime.

pub(crate) mod control;
pub(crate) mod metrics;
pub(crate) mod metrics_http;
pub(crate) mod oneshot;
pub(crate) mod stats;
