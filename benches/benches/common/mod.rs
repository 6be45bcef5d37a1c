//! Settings shared by the benchmark files.

use std::time::Duration;

use criterion::Criterion;

/// Short runs: the whole `cargo bench -p pen-benches` should finish in a couple of minutes.
pub(crate) fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}
