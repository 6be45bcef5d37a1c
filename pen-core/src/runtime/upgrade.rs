//! Graceful shutdown (SIGQUIT) and the binary upgrade (SIGUSR2).
//!
//! Shutdown: every worker closes its listener (new clients are refused), open connections
//! finish, and the balancer stops when the last one is done or at `shutdown_timeout`.
//!
//! Upgrade: the running pen starts the binary at the path it was started from (so a replaced
//! file is picked up) with the same arguments and environment plus `PEN_UPGRADE_FD=N`, the
//! new process's end of a `SOCK_SEQPACKET` pair. Over it the old pen sends one message: a
//! manifest line naming the roles, with the listening sockets (data, control, metrics) as
//! `SCM_RIGHTS`. The new pen binds nothing it inherited, reads its own configuration, starts,
//! writes the pid file and answers `ready` (or `error REASON`); the old pen then hands its
//! established plain connections over on the same channel (`handoff`), drains the rest as in
//! a shutdown and exits. If the new one fails, exits or is not ready within
//! [`READY_WITHIN`], the old one keeps serving and reports why.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::addr::ListenAddr;
use crate::engine::state::{ListenFds, Shared};
use crate::sys::fdpass;

mod drain;
mod handoff;
mod inherit;
mod state;
use drain::{drain, shutdown, shutdown_timeout, stop_accepting};
use handoff::send_connections;
pub use inherit::Inherited;

/// The environment variable naming the inherited upgrade channel's descriptor.
pub const UPGRADE_FD_VAR: &str = "PEN_UPGRADE_FD";
/// How long the new binary has to say it is ready.
pub const READY_WITHIN: Duration = Duration::from_secs(10);
/// The manifest's first word and version.
const MAGIC: &str = "pen-upgrade 1";
/// The first line of the second message, the running configuration.
const CONFIG_HEAD: &str = "pen-upgrade-config\n";
/// A comment line at the end of the running configuration (a pen that does not know it skips
/// it as any comment): the old pen's clock reading, which the new pen's clock continues from,
/// so that the times carried over (a client seen minutes ago) fit on its scale.
const CLOCK_LINE: &str = "# pen-upgrade-clock ";
/// The largest clock reading taken from [`CLOCK_LINE`] (about 285 years of milliseconds).
const CLOCK_MAX: u64 = 1 << 53;

/// Why an upgrade did not happen (the running pen serves on).
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// Another upgrade, or a shutdown, is under way.
    #[error("an upgrade or shutdown is already under way")]
    Busy,
    /// Nothing to start: the program did not say how it was started.
    #[error("upgrade is not available (no binary to start: pen runs in a chroot, or is embedded)")]
    Unavailable,
    /// The new binary could not be started.
    #[error("cannot start {exe}: {source}")]
    Spawn {
        /// The binary.
        exe: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The channel to the new process failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The new process exited before it was ready.
    #[error("the new process exited before it was ready ({0})")]
    Exited(String),
    /// The new process did not answer in time (it was killed).
    #[error("the new process was not ready within {0} s; it was stopped")]
    NotReady(u64),
    /// The new process reported a start-up error.
    #[error("the new process failed: {0}")]
    Failed(String),
    /// A malformed message on the channel.
    #[error("bad upgrade message: {0}")]
    Protocol(String),
}

pub use crate::engine::state::UpgradeSpec;

/// What kind of data listener was handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataKind {
    Tcp,
    Udp,
    Unix,
}

impl DataKind {
    fn word(self) -> &'static str {
        match self {
            DataKind::Tcp => "tcp",
            DataKind::Udp => "udp",
            DataKind::Unix => "unix",
        }
    }
}

/// `pen-upgrade 1 KIND N control=0|1 metrics=0|1`.
fn parse_manifest(text: &str) -> Result<(DataKind, usize, bool, bool), UpgradeError> {
    let bad = || UpgradeError::Protocol(format!("manifest '{}'", text.trim()));
    let rest = text.trim().strip_prefix(MAGIC).ok_or_else(bad)?;
    let w: Vec<&str> = rest.split_whitespace().collect();
    let [kind, n, control, metrics] = w.as_slice() else {
        return Err(bad());
    };
    let kind = match *kind {
        "tcp" => DataKind::Tcp,
        "udp" => DataKind::Udp,
        "unix" => DataKind::Unix,
        _ => return Err(bad()),
    };
    let n: usize = n.parse().map_err(|_| bad())?;
    let flag = |w: &str, key: &str| match w.strip_prefix(key) {
        Some("1") => Ok(true),
        Some("0") => Ok(false),
        _ => Err(bad()),
    };
    Ok((
        kind,
        n,
        flag(control, "control=")?,
        flag(metrics, "metrics=")?,
    ))
}

/// The manifest for `fds`.
fn manifest(fds: &ListenFds, kind: DataKind) -> String {
    format!(
        "{MAGIC} {} {} control={} metrics={}\n",
        kind.word(),
        fds.data.len(),
        u8::from(fds.control.is_some()),
        u8::from(fds.metrics.is_some())
    )
}

/// Starts the new binary, hands it the listening sockets and waits for its `ready`. Returns
/// its pid and the channel (for the live connections); the caller then drains. On error the
/// new process, if it still runs, is killed.
pub(crate) fn hand_over(
    shared: &Shared,
    spec: &UpgradeSpec,
    running: &str,
) -> Result<(u32, OwnedFd), UpgradeError> {
    let io = |context: &'static str| move |source| UpgradeError::Io { context, source };
    let kind = match &*shared.listen.lock() {
        ListenAddr::Unix(_) => DataKind::Unix,
        ListenAddr::Inet(_) if shared.udp => DataKind::Udp,
        ListenAddr::Inet(_) => DataKind::Tcp,
    };
    let (ours, theirs) = fdpass::seqpacket_pair().map_err(io("cannot create the channel"))?;
    fdpass::set_cloexec(&theirs, false).map_err(io("cannot pass the channel"))?;
    let mut cmd = std::process::Command::new(&spec.exe);
    cmd.args(&spec.args)
        .env(UPGRADE_FD_VAR, theirs.as_raw_fd().to_string());
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    let spawned = cmd.spawn();
    drop(theirs);
    let mut child = spawned.map_err(|source| UpgradeError::Spawn {
        exe: spec.exe.display().to_string(),
        source,
    })?;
    let result = talk(shared, &ours, kind, running);
    match result {
        Ok(()) => Ok((child.id(), ours)),
        Err(e) => {
            // It is ours: reaped either way. One that failed or closed the channel is exiting
            // (a failed one exits within a second); any other is stopped first.
            if !matches!(e, UpgradeError::Exited(_) | UpgradeError::Failed(_)) {
                let _ = child.kill();
            }
            let status = child.wait();
            Err(match (e, status) {
                (UpgradeError::Exited(_), Ok(s)) => UpgradeError::Exited(s.to_string()),
                (e, _) => e,
            })
        }
    }
}

/// The old pen's side of the channel: the sockets out, the verdict in.
fn talk(
    shared: &Shared,
    ours: &OwnedFd,
    kind: DataKind,
    running: &str,
) -> Result<(), UpgradeError> {
    {
        let fds = shared.handover.lock();
        let raw: Vec<RawFd> = fds
            .data
            .iter()
            .chain(fds.control.iter())
            .chain(fds.metrics.iter())
            .map(AsRawFd::as_raw_fd)
            .collect();
        if raw.len() > fdpass::MAX_FDS {
            return Err(UpgradeError::Protocol(format!(
                "{} listening sockets, at most {}",
                raw.len(),
                fdpass::MAX_FDS
            )));
        }
        fdpass::send_with_fds(ours, manifest(&fds, kind).as_bytes(), &raw).map_err(|source| {
            if gone(&source) {
                return UpgradeError::Exited(String::new());
            }
            UpgradeError::Io {
                context: "cannot send the listening sockets",
                source,
            }
        })?;
    }
    // The running configuration, applied by the new pen on top of its own (penctl changes
    // survive the upgrade).
    let text = format!("{CONFIG_HEAD}{running}");
    if text.len() > fdpass::MAX_TEXT {
        return Err(UpgradeError::Protocol(format!(
            "the running configuration is over {} bytes",
            fdpass::MAX_TEXT
        )));
    }
    fdpass::send_with_fds(ours, text.as_bytes(), &[]).map_err(|source| {
        if gone(&source) {
            return UpgradeError::Exited(String::new());
        }
        UpgradeError::Io {
            context: "cannot send the running configuration",
            source,
        }
    })?;
    let sock = socket2::SockRef::from(ours);
    sock.set_read_timeout(Some(READY_WITHIN))
        .map_err(|source| UpgradeError::Io {
            context: "cannot wait for the new process",
            source,
        })?;
    match fdpass::recv_with_fds(ours, 4096) {
        Ok((text, _)) if text.is_empty() => Err(UpgradeError::Exited(String::new())),
        // Gone with our messages unread: the kernel says reset rather than end of file.
        Err(e) if gone(&e) => Err(UpgradeError::Exited(String::new())),
        Ok((text, _)) if text == b"ready" => Ok(()),
        Ok((text, _)) => {
            let text = String::from_utf8_lossy(&text).into_owned();
            match text.strip_prefix("error ") {
                Some(msg) => Err(UpgradeError::Failed(msg.to_string())),
                None => Err(UpgradeError::Protocol(text)),
            }
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Err(UpgradeError::NotReady(READY_WITHIN.as_secs()))
        }
        Err(source) => Err(UpgradeError::Io {
            context: "cannot hear from the new process",
            source,
        }),
    }
}

/// Whether `e` says the other end of the channel is gone (the new process exited).
fn gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}

/// Binary upgrade: see [`Balancer::upgrade`](crate::Balancer::upgrade).
pub(crate) fn upgrade(shared: &Arc<Shared>, running: String) -> Result<u32, UpgradeError> {
    let spec = shared
        .upgrade_spec
        .lock()
        .clone()
        .ok_or(UpgradeError::Unavailable)?;
    if shared.lifecycle_busy.swap(true, Relaxed) {
        return Err(UpgradeError::Busy);
    }
    let running = format!(
        "{running}{}{CLOCK_LINE}{}\n",
        blacklist_lines(shared),
        shared.now_ms()
    );
    let (pid, channel) = match hand_over(shared, &spec, &running) {
        Ok(done) => done,
        Err(e) => {
            shared.lifecycle_busy.store(false, Relaxed);
            return Err(e);
        }
    };
    shared.handed_over.store(true, Relaxed);
    let (sh, timeout) = (Arc::clone(shared), shutdown_timeout(shared));
    let started = std::thread::Builder::new()
        .name("pen-drain".into())
        .spawn(move || {
            stop_accepting(&sh);
            send_connections(&sh, &channel);
            drop(channel);
            drain(&sh, timeout);
        });
    if let Err(source) = started {
        // The new process serves: stop here at once rather than accept alongside it.
        log::error!("upgrade: cannot drain ({source}); stopping now");
        stop_accepting(shared);
        shared.request_stop();
    }
    Ok(pid)
}

/// `server N blacklist T` for each server blacklisted now, T its seconds left: appended to
/// the running configuration so blacklistings survive an upgrade.
fn blacklist_lines(shared: &Shared) -> String {
    let status = crate::admin::stats::Status::take(shared, 0);
    let mut out = String::new();
    for (id, s) in status.servers.iter().enumerate() {
        if let Some(left) = s.blacklist_left.filter(|l| *l > 0) {
            out.push_str(&format!("server {id} blacklist {left}\n"));
        }
    }
    out
}

/// The replies of `shutdown [S]` and `upgrade` (empty, or what went wrong).
pub(crate) fn execute(
    shared: &Arc<Shared>,
    cmd: &crate::control::Command,
    running: String,
) -> String {
    use crate::control::Command;
    match cmd {
        Command::Shutdown(t) => match shutdown(shared, t.map(Duration::from_secs)) {
            Ok(()) => String::new(),
            Err(e) => format!("shutdown: {e}\n"),
        },
        Command::Upgrade => match upgrade(shared, running) {
            Ok(pid) => format!("upgrade: pid {pid} serves\n"),
            Err(e) => format!("upgrade failed, serving on: {e}\n"),
        },
        _ => String::new(),
    }
}

impl crate::runtime::balancer::Balancer {
    /// Graceful shutdown (SIGQUIT, `shutdown`): stops accepting now (new clients are
    /// refused), lets open connections finish for `timeout` (default: the `shutdown_timeout`
    /// setting), then closes the rest and stops; [`Balancer::wait`](Self::wait) returns then.
    /// Returns at once.
    ///
    /// # Errors
    /// [`UpgradeError::Busy`] if a shutdown or upgrade is already under way;
    /// [`UpgradeError::Io`] if the thread cannot start.
    pub fn shutdown(&self, timeout: Option<Duration>) -> Result<(), UpgradeError> {
        shutdown(&self.shared, timeout)
    }

    /// Says how to start a new binary for [`Balancer::upgrade`](crate::Balancer::upgrade) (and the `upgrade` command).
    pub fn set_upgrade(&self, spec: UpgradeSpec) {
        *self.shared.upgrade_spec.lock() = Some(spec);
    }

    /// Binary upgrade (SIGUSR2, `upgrade`): starts the new binary, hands it the listening
    /// sockets and, once it says it is ready, stops accepting and drains as
    /// [`Balancer::shutdown`](crate::Balancer::shutdown) does. Blocks until the new process is ready or has failed (at
    /// most [`READY_WITHIN`]); returns its pid.
    ///
    /// # Errors
    /// [`UpgradeError`] saying why; this balancer then serves on as before, and a later
    /// upgrade may try again.
    pub fn upgrade(&self) -> Result<u32, UpgradeError> {
        upgrade(
            &self.shared,
            self.ctl.render(std::path::Path::new("upgrade")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A balancer's state with no socket, and a spec running `script` in bash (which can
    /// write to the channel: `>&"$PEN_UPGRADE_FD"`).
    fn setup(script: &str) -> (Shared, UpgradeSpec) {
        let clock = Arc::new(crate::runtime::clock::SystemClock::new());
        let shared = Shared::for_tests(&[], None, crate::Settings::default(), clock);
        let spec = UpgradeSpec {
            exe: "/bin/bash".into(),
            args: vec!["-c".into(), script.into()],
            cwd: None,
        };
        (shared, spec)
    }

    #[test]
    fn a_new_process_that_exits_is_reported_with_its_status() {
        let (shared, spec) = setup("exit 3");
        match hand_over(&shared, &spec, "") {
            Err(UpgradeError::Exited(s)) => assert!(s.contains('3'), "{s}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_new_process_that_fails_says_why() {
        let (shared, spec) = setup(r#"printf 'error bad config' >&"$PEN_UPGRADE_FD"; sleep 0.1"#);
        match hand_over(&shared, &spec, "") {
            Err(UpgradeError::Failed(s)) => assert_eq!(s, "bad config"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_ready_new_process_gets_the_configuration_and_its_pid_is_returned() {
        let (shared, spec) = setup(r#"printf ready >&"$PEN_UPGRADE_FD"; exec sleep 0.2"#);
        let (pid, _) = hand_over(&shared, &spec, "blacklist 5\n").expect("ready");
        assert!(pid > 0);
    }

    #[test]
    fn a_missing_binary_is_a_spawn_error() {
        let (shared, mut spec) = setup("");
        spec.exe = "/nonexistent/pen".into();
        let err = hand_over(&shared, &spec, "").expect_err("no binary");
        assert!(
            err.to_string()
                .starts_with("cannot start /nonexistent/pen: "),
            "{err}"
        );
    }

    #[test]
    fn manifest_round_trip() {
        let (a, b) = fdpass::seqpacket_pair().unwrap();
        let fds = ListenFds {
            data: vec![a],
            control: Some(b),
            metrics: None,
        };
        let text = manifest(&fds, DataKind::Tcp);
        assert_eq!(text, "pen-upgrade 1 tcp 1 control=1 metrics=0\n");
        let (k, n, c, m) = parse_manifest(&text).unwrap();
        assert_eq!((k, n, c, m), (DataKind::Tcp, 1, true, false));
        for bad in [
            "",
            "pen-upgrade 2 tcp 1 control=1 metrics=0",
            "pen-upgrade 1 tcp x",
        ] {
            assert!(parse_manifest(bad).is_err(), "{bad}");
        }
    }
}
