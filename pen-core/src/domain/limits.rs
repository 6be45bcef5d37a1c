//! The largest value each time and count argument accepts, for penctl, `-O`, config files and
//! the command line alike (C pen reads them with `atoi` and wraps: `timeout
//! 18446744073709551615` became -1). A larger value is refused with an error naming the token
//! and the maximum, so no deadline computed from a setting can wrap, and no count can ask for
//! more than a process could hold.
//!
//! The maxima live in the domain (server specs on the command line are checked here too) and
//! are re-exported as `control::limits`. Each maximum comes with the text of its error (`EXPECTED_*`), which names the number; a unit
//! test keeps the two in step. Connection, close and socket numbers are indexes, not limits:
//! they stay unbounded (a number that names nothing is answered as C pen answers it).

/// Seconds in any time setting: one year. `blacklist`, `timeout`, `tracking`, `idle_timeout`,
/// `recent`, `handshake_timeout`, `request_timeout`, `server N blacklist T`, `-b`, `-t`, `-T`,
/// `shutdown_timeout` and `shutdown S` (issue 13).
/// A year in milliseconds (3.2e10) added to any monotonic clock reading stays far below
/// `u64::MAX`.
pub const SECONDS_MAX: u64 = 31_536_000;
/// The error text for a number of seconds above [`SECONDS_MAX`].
pub const EXPECTED_SECONDS: &str = "a number of seconds up to 31536000 (one year)";

/// Connections in any connection count: `conn_max`/`-x`, `pending_max`, `conn_per_client`,
/// `idlers`, `server N max`/`hard`, and `-m` (connections per accept). 2^20: more than a
/// process's usual descriptor limit allows.
pub const CONNECTIONS_MAX: u32 = 1_048_576;
/// The error text for a connection count above [`CONNECTIONS_MAX`].
pub const EXPECTED_CONNECTIONS: &str = "a number of connections up to 1048576";

/// Server numbers (`server N ...`): N is below this. C pen has no bound (10,000 servers load
/// in it); ours keeps one so that a typo cannot allocate millions of slots, but high enough for
/// a large pool (issue 15's scale run: 10,000 servers). Measured with 16,384 servers: reload
/// 0.16 s, `servers` 12 ms, 13.6 MiB (benches/results/scale.md).
pub const SERVERS_MAX: usize = 65_536;

/// The debug level (`debug`; `-d` counts up by one per use and stops here).
pub const DEBUG_MAX: u32 = 255;
/// The error text for a debug level above [`DEBUG_MAX`].
pub const EXPECTED_DEBUG: &str = "a debug level up to 255";

/// A server's weight (`server N weight W`) and priority (`server N prio P`).
pub const WEIGHT_MAX: u32 = 1_000_000;
/// The error text for a weight above [`WEIGHT_MAX`].
pub const EXPECTED_WEIGHT: &str = "a weight up to 1000000";
/// The error text for a priority above [`WEIGHT_MAX`].
pub const EXPECTED_PRIO: &str = "a priority up to 1000000";

/// Client table slots (`clients_max`, `-c`): the table's own bound.
pub const CLIENTS_MAX: usize = crate::domain::clients::MAX_CAPACITY;
/// The error text for a number of client slots above [`CLIENTS_MAX`].
pub const EXPECTED_CLIENTS: &str = "a number of client slots up to 4294967294";

/// Worker threads (`--workers`, `PEN_WORKERS`).
pub const WORKERS_MAX: usize = 1024;
/// The error text for a number of workers above [`WORKERS_MAX`].
pub const EXPECTED_WORKERS: &str = "a number of worker threads up to 1024 (0 = one per CPU)";

// ---- server states (issue 13) ----

/// Percentages: `panic_threshold P`, `outlier_max_percent P`.
pub const PERCENT_MAX: u32 = 100;
/// The text of the error for a percentage.
pub const EXPECTED_PERCENT: &str = "a percentage up to 100";
/// Failures in a row before passive detection ejects a server (`outlier_failures N`): more
/// than anyone would wait for, small enough that the count never wraps.
pub const OUTLIER_FAILURES_MAX: u32 = 1_000_000;
/// The text of the error for `outlier_failures`.
pub const EXPECTED_FAILURES: &str = "a number of failures up to 1000000";
/// Most milliseconds of `check_interval` and `check_timeout` (one hour; at least 10).
pub const CHECK_MS_MAX: u64 = crate::domain::check::CHECK_MS_MAX;
/// The error text for milliseconds above [`CHECK_MS_MAX`].
pub const EXPECTED_CHECK_MS: &str = "a number of milliseconds up to 3600000 (one hour)";
/// Most of `check_rise` and `check_fall`.
pub const CHECK_COUNT_MAX: u32 = crate::domain::check::CHECK_COUNT_MAX;
/// The error text for a count above [`CHECK_COUNT_MAX`].
pub const EXPECTED_CHECK_COUNT: &str = "a number of checks up to 1000";

// ---- policies (issue 14) ----

/// The largest Maglev table (`maglev_table M`): the largest prime below 2^20, 4 MiB of slots,
/// room for 10,000 servers at the paper's 100 slots per server.
pub const MAGLEV_TABLE_MAX: u32 = 1_048_573;
/// The error text for a table size that is not a prime or above [`MAGLEV_TABLE_MAX`].
pub const EXPECTED_MAGLEV_TABLE: &str = "a prime table size up to 1048573";

#[cfg(test)]
mod tests {
    use super::*;

    /// Each error text names its maximum.
    #[test]
    fn texts_name_their_maximum() {
        let pairs: [(&str, u64); 10] = [
            (EXPECTED_SECONDS, SECONDS_MAX),
            (EXPECTED_CONNECTIONS, u64::from(CONNECTIONS_MAX)),
            (EXPECTED_DEBUG, u64::from(DEBUG_MAX)),
            (EXPECTED_WEIGHT, u64::from(WEIGHT_MAX)),
            (EXPECTED_PRIO, u64::from(WEIGHT_MAX)),
            (EXPECTED_CLIENTS, CLIENTS_MAX as u64),
            (EXPECTED_WORKERS, WORKERS_MAX as u64),
            (EXPECTED_PERCENT, u64::from(PERCENT_MAX)),
            (EXPECTED_FAILURES, u64::from(OUTLIER_FAILURES_MAX)),
            (EXPECTED_MAGLEV_TABLE, u64::from(MAGLEV_TABLE_MAX)),
        ];
        for (text, max) in pairs {
            assert!(text.contains(&format!("up to {max}")), "{text} / {max}");
        }
    }

    /// A year of milliseconds on top of a clock that ran for a century cannot wrap.
    #[test]
    fn a_year_of_milliseconds_fits() {
        let century_ms = 100 * 366 * 86_400 * 1000u64;
        assert!(century_ms.checked_add(SECONDS_MAX * 1000).is_some());
    }
}
