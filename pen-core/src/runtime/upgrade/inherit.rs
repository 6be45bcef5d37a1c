//! The new pen's side of an upgrade: the listening sockets and the running configuration
//! received from the pen it replaces, and the channel to tell that pen it is ready.

use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::Arc;

use super::handoff::{self, adopt_connections};
use super::{
    parse_manifest, DataKind, UpgradeError, CLOCK_LINE, CLOCK_MAX, CONFIG_HEAD, UPGRADE_FD_VAR,
};
use crate::domain::addr::ListenAddr;
use crate::sys::fdpass;

/// The listening sockets a new binary received from the pen it replaces, and the channel to
/// tell that pen it is ready.
#[derive(Debug)]
pub struct Inherited {
    channel: OwnedFd,
    kind: DataKind,
    data: Vec<OwnedFd>,
    control: Option<OwnedFd>,
    metrics: Option<OwnedFd>,
    running: String,
    clock_ms: u64,
}

impl Inherited {
    /// In a new binary started by an upgrade (`PEN_UPGRADE_FD` set): takes the channel,
    /// receives the sockets, and removes the variable (so nothing started later sees it).
    /// `Ok(None)` when this pen was not started by an upgrade.
    ///
    /// # Errors
    /// [`UpgradeError`] if the variable is bad or the message cannot be read.
    pub fn from_env() -> Result<Option<Inherited>, UpgradeError> {
        let Some(v) = std::env::var_os(UPGRADE_FD_VAR) else {
            return Ok(None);
        };
        std::env::remove_var(UPGRADE_FD_VAR);
        let n: RawFd = v
            .to_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| UpgradeError::Protocol(format!("{UPGRADE_FD_VAR}={v:?}")))?;
        let channel = fdpass::inherited_socket(n).map_err(|source| UpgradeError::Io {
            context: "cannot take the upgrade channel",
            source,
        })?;
        let (text, fds) =
            fdpass::recv_with_fds(&channel, 4096).map_err(|source| UpgradeError::Io {
                context: "cannot receive the listening sockets",
                source,
            })?;
        let text = String::from_utf8_lossy(&text).into_owned();
        let (kind, n_data, control, metrics) = parse_manifest(&text)?;
        let want = n_data + usize::from(control) + usize::from(metrics);
        if fds.len() != want {
            return Err(UpgradeError::Protocol(format!(
                "{} descriptors for '{}'",
                fds.len(),
                text.trim()
            )));
        }
        let (text, _) = fdpass::recv_with_fds(&channel, fdpass::MAX_TEXT).map_err(|source| {
            UpgradeError::Io {
                context: "cannot receive the running configuration",
                source,
            }
        })?;
        let running = String::from_utf8_lossy(&text)
            .strip_prefix(CONFIG_HEAD)
            .ok_or_else(|| UpgradeError::Protocol("no running configuration".into()))?
            .to_string();
        let clock_ms = (running.lines())
            .find_map(|l| l.strip_prefix(CLOCK_LINE))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&v| v <= CLOCK_MAX)
            .unwrap_or(0);
        let mut fds = fds.into_iter();
        let data = fds.by_ref().take(n_data).collect();
        let control = if control { fds.next() } else { None };
        let metrics = if metrics { fds.next() } else { None };
        Ok(Some(Inherited {
            channel,
            kind,
            data,
            control,
            metrics,
            running,
            clock_ms,
        }))
    }

    /// The old pen's running configuration as `write` renders it (applied on top of this
    /// one's command line and `-F` by [`Bound::apply_running`](crate::Bound::apply_running)).
    pub fn running(&self) -> &str {
        &self.running
    }

    /// The old pen's clock reading when it sent its configuration (0 if it did not say): this
    /// pen's clock continues from it.
    pub(crate) fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// Tells the old pen that this one serves: it stops accepting and drains.
    ///
    /// # Errors
    /// The OS error if the old pen is gone.
    pub fn ready(&self) -> io::Result<()> {
        fdpass::send_with_fds(&self.channel, b"ready", &[])
    }

    /// Tells the old pen why this one cannot start: it serves on and logs `msg`.
    pub fn failed(&self, msg: &str) {
        let text = format!("error {msg}");
        let _ = fdpass::send_with_fds(&self.channel, text.as_bytes(), &[]);
    }

    /// After [`Inherited::ready`]: takes in the old pen's live connections (on a thread of
    /// its own, until the old pen says `end` or exits) and gives them to `balancer`'s workers.
    pub fn adopt_connections(self, balancer: &crate::runtime::balancer::Balancer) {
        let shared = Arc::clone(&balancer.shared);
        if let Err(e) = fdpass::send_with_fds(&self.channel, handoff::ADOPTS, &[]) {
            log::warn!("upgrade: cannot ask for the connections ({e}); they finish there");
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("pen-adopt".into())
            .spawn(move || adopt_connections(&shared, &self.channel));
        if let Err(e) = spawned {
            log::error!("upgrade: cannot take the connections over ({e}); they are closed");
        }
    }

    /// The data listeners, if they are of the kind `listen` (and `udp`) asks for.
    pub(crate) fn take_data(&mut self, listen: &ListenAddr, udp: bool) -> Option<Vec<OwnedFd>> {
        let want = match (listen, udp) {
            (ListenAddr::Unix(_), _) => DataKind::Unix,
            (ListenAddr::Inet(_), true) => DataKind::Udp,
            (ListenAddr::Inet(_), false) => DataKind::Tcp,
        };
        if want != self.kind || self.data.is_empty() {
            return None;
        }
        Some(std::mem::take(&mut self.data))
    }

    /// The control socket, if one was handed over.
    pub(crate) fn take_control(&mut self) -> Option<OwnedFd> {
        self.control.take()
    }

    /// The metrics listener, if one was handed over.
    pub(crate) fn take_metrics(&mut self) -> Option<OwnedFd> {
        self.metrics.take()
    }
}
