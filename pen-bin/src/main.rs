//! `pen`: command line -> `pen_core::Config` -> run.
//!
//! Start-up: parse -> root/`-C` check (as root without `-u`, `-C` is dropped with C pen's
//! warning) -> user lookup -> `Balancer::bind` (sockets, `-O`, `-F`) -> access log (`-l`),
//! unless chrooting -> detach unless `-f` -> chroot (`-j`) -> pid file and access log inside
//! the jail -> drop privileges (`-u`) -> `Bound::start` -> signal thread -> events thread ->
//! wait. Everything that can fail for a configuration reason happens before detaching (with
//! `-j`, the log and pid file are opened in the jail, after it); what fails after it is reported
//! to the waiting parent, so the launching command still prints the error and exits nonzero.
//!
//! Exit status: 0 after a clean exit, 1 on a runtime failure (bind, privileges, pid file),
//! 2 on a usage or configuration error (command line, `-O` command, `-F` file). Every error is
//! one line on stderr starting `pen: `; once detached, runtime messages go to syslog.

mod cli;
mod daemon;
mod privs;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use cli::{Cli, CliError, Run};
use pen_core::runtime::upgrade::{Inherited, UpgradeSpec};
use pen_core::{Balancer, Bound, StartError};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::Signals;

/// Exit status for runtime failures.
const EXIT_RUNTIME: u8 = 1;
/// Exit status for usage and configuration errors.
const EXIT_USAGE: u8 = 2;

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("pen: {msg}");
    ExitCode::from(code)
}

fn main() -> ExitCode {
    // Started by an upgrade: the listening sockets of the pen being replaced arrive first.
    let inherited = match Inherited::from_env() {
        Ok(i) => i,
        Err(e) => return fail(EXIT_RUNTIME, format_args!("upgrade: {e}")),
    };
    // Taken now, before any chdir: how a later upgrade starts the binary again.
    let spec = UpgradeSpec {
        exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe")),
        args: std::env::args_os().skip(1).collect(),
        cwd: std::env::current_dir().ok(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env_workers = std::env::var("PEN_WORKERS").ok();
    match cli::parse_args_env(&args, env_workers.as_deref()) {
        Ok(Cli::Help) => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Ok(Cli::Version) => {
            println!("pen {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Cli::Run(run)) => run_balancer(*run, inherited, spec),
        // No listen address (no arguments at all, or only options): the usage, as C pen.
        Err(CliError::NoListen) => {
            eprint!("{}", cli::USAGE);
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => fail(EXIT_USAGE, e),
    }
}

/// The exit status for a failed `Balancer::bind`: configuration errors are usage errors.
fn start_error_code(e: &StartError) -> u8 {
    match e {
        StartError::Io { .. } => EXIT_RUNTIME,
        StartError::Command { .. }
        | StartError::Config(_)
        | StartError::ConfigFile(_)
        | StartError::Tls(_) => EXIT_USAGE,
    }
}

/// `path` made absolute against the current directory (the daemon's is `/`).
fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    match std::env::current_dir() {
        Ok(cwd) => cwd.join(path),
        Err(_) => path.to_path_buf(),
    }
}

/// True if the `-l` argument names a remote log collector (`host:port`) rather than a file.
fn is_remote_log(log: &str) -> bool {
    !log.contains('/') && log.contains(':')
}

fn run_balancer(mut run: Run, mut inherited: Option<Inherited>, spec: UpgradeSpec) -> ExitCode {
    // In a new binary started by an upgrade, every start-up failure is also told to the old
    // pen, which serves on and logs it.
    let tell = |inherited: &Option<Inherited>, msg: &str| {
        if let Some(i) = inherited {
            i.failed(msg);
        }
    };
    daemon::install_logger();
    // C pen: as root, no control socket without -u; it says so (in the log: syslog once
    // detached, so the warning is logged after detaching) and balances on.
    let no_control = cli::drop_root_control(&mut run, pen_core::os::euid());
    // Look the user up before starting, so a typo fails before anything is bound.
    let user = match run.user.as_deref().map(privs::lookup).transpose() {
        Ok(u) => u,
        Err(e) => {
            tell(&inherited, &e.to_string());
            return fail(EXIT_USAGE, e);
        }
    };
    let Run {
        mut config,
        foreground,
        chroot,
        user: user_name,
        ..
    } = run;
    // Shown by `write` (C pen's second comment line).
    (config.foreground, config.chroot, config.user) = (foreground, chroot.clone(), user_name);
    // A Unix control socket belongs to the user pen runs as once privileges are dropped.
    config.control_owner = user.as_ref().map(|u| (u.uid(), u.gid()));
    if !foreground {
        // The daemon's working directory is `/`: keep relative names meaning what they meant
        // on the command line (the pid file, reload of -F, the -w and -l files). With -j the
        // pid file and the -w and -l files are inside the jail, relative to its root.
        config.config_file = config.config_file.as_deref().map(absolute);
    }
    if !foreground && chroot.is_none() {
        config.pid_file = config.pid_file.as_deref().map(absolute);
        let st = &mut config.settings;
        st.web_stats = st
            .web_stats
            .as_deref()
            .map(|w| absolute(Path::new(w)).display().to_string());
        st.log = st.log.as_deref().map(|l| {
            if is_remote_log(l) {
                l.to_string()
            } else {
                absolute(Path::new(l)).display().to_string()
            }
        });
    }
    let pid_file = config.pid_file.clone();
    // Everything that can fail for a reason the operator should see happens here, while the
    // process is still attached to the terminal and has a single thread.
    let bound = match inherited.as_mut() {
        Some(i) => Balancer::bind_inherited(config, i),
        None => Balancer::bind(config),
    };
    let mut bound = match bound {
        Ok(b) => b,
        Err(e) => {
            tell(&inherited, &e.to_string());
            return fail(start_error_code(&e), e);
        }
    };
    // The old pen's running configuration on top: penctl changes survive an upgrade.
    if let Some(i) = &inherited {
        if let Err(e) = bound.apply_running(i.running()) {
            tell(&inherited, &e.to_string());
            return fail(start_error_code(&e), e);
        }
    }
    // Without -j the access log opens now, while errors still reach the terminal; with -j it
    // opens inside the jail (see `launch`), as with C pen.
    if chroot.is_none() {
        if let Err(e) = bound.open_log() {
            tell(&inherited, &e.to_string());
            return fail(start_error_code(&e), e);
        }
    }
    let report = if foreground {
        None
    } else if inherited.is_some() {
        // The pen being replaced was a daemon already: same session, no second detach; the
        // working directory becomes `/` as a daemon's is (it was started in the old one's).
        let _ = std::env::set_current_dir("/");
        daemon::open_syslog();
        None
    } else {
        match daemon::detach() {
            Ok(r) => {
                daemon::open_syslog();
                Some(r)
            }
            Err(e) => return fail(EXIT_RUNTIME, format_args!("cannot detach: {e}")),
        }
    };
    if no_control {
        daemon::log_warning(cli::ROOT_CONTROL_WARNING);
    }
    // Privileges were dropped by the pen being replaced: only root drops them again.
    let user = user.filter(|_| inherited.is_none() || pen_core::os::euid() == 0);
    let launched = launch(bound, pid_file.as_deref(), chroot.as_deref(), user.as_ref());
    let (balancer, pid_handle) = match launched {
        Ok(b) => b,
        Err((code, msg)) => {
            tell(&inherited, &msg);
            return match report {
                Some(r) => {
                    r.failed(code, &msg);
                    ExitCode::from(code)
                }
                None => fail(code, msg),
            };
        }
    };
    if let Some(r) = report {
        r.started();
    }
    if chroot.is_none() {
        balancer.set_upgrade(spec);
    }
    if let Some(i) = inherited {
        // Serving (sockets, workers, pid file): the old pen stops accepting and drains.
        if let Err(e) = i.ready() {
            daemon::log_error(&format!("upgrade: cannot tell the old pen: {e}"));
        }
        // Then its live connections arrive (until it says `end`).
        i.adopt_connections(&balancer);
    }
    balancer.wait();
    // The balancer removed the pid file if it still could. If it could not (it belongs to root
    // in /run, or lies outside the chroot), empty it through the descriptor opened before, so
    // no stale pid is left behind; if it was removed this only touches the unlinked file.
    if let Some(f) = pid_handle {
        let _ = f.set_len(0);
    }
    ExitCode::SUCCESS
}

/// After binding (and detaching): chroot, pid file, access log (with a chroot), privileges,
/// threads, signals. Returns the balancer and the open pid file. On error the pid file is
/// removed again (best effort) and the balancer, if started, stopped.
fn launch(
    mut bound: Bound,
    pid_file: Option<&Path>,
    chroot: Option<&Path>,
    user: Option<&pen_core::os::User>,
) -> Result<(Arc<Balancer>, Option<File>), (u8, String)> {
    // Registered before anything runs, so a TERM from now on is a clean stop; the thread that
    // acts on them starts with the balancer (signal-hook: no work inside a handler).
    let signals = Signals::new([SIGHUP, SIGUSR1, SIGTERM, SIGINT, SIGQUIT, SIGUSR2])
        .map_err(|e| (EXIT_RUNTIME, format!("cannot handle signals: {e}")))?;
    if let Some(dir) = chroot {
        pen_core::os::chroot(dir).map_err(|e| {
            (
                EXIT_RUNTIME,
                format!("cannot chroot to {}: {e}", dir.display()),
            )
        })?;
    }
    // Written after the chroot (so inside the jail, as C pen writes it), before dropping
    // privileges (so it can live in /run), and after detaching (so it holds the daemon's
    // pid). The balancer removes it when it stops (best effort once unprivileged).
    let pid_handle = match pid_file {
        Some(path) => Some(write_pid_file(path).map_err(|e| {
            (
                EXIT_RUNTIME,
                format!("cannot write pid file {}: {e}", path.display()),
            )
        })?),
        None => None,
    };
    let remove_pid = || {
        if let Some(p) = pid_file {
            let _ = std::fs::remove_file(p);
        }
    };
    if chroot.is_some() {
        // The jail's file, opened before dropping privileges (as without -j).
        if let Err(e) = bound.open_log() {
            remove_pid();
            return Err((start_error_code(&e), e.to_string()));
        }
    }
    if let Some(user) = user {
        if let Err(e) = privs::drop_to(user) {
            remove_pid();
            return Err((EXIT_RUNTIME, e.to_string()));
        }
    }
    let balancer = match bound.start() {
        Ok(b) => Arc::new(b),
        Err(e) => {
            remove_pid();
            return Err((EXIT_RUNTIME, e.to_string()));
        }
    };
    if let Err(e) = handle_signals(signals, Arc::clone(&balancer)) {
        balancer.stop();
        return Err((EXIT_RUNTIME, format!("cannot handle signals: {e}")));
    }
    // Events are logged only when pen starts with -d: subscribing costs two threads (the
    // logger and the balancer's once-a-second blacklist-expiry watcher) that a quiet pen
    // should not carry (measured: VmRSS 3.2 -> 3.7 MiB at start with them).
    if balancer.settings().debug > 0 {
        if let Err(e) = log_events(Arc::clone(&balancer)) {
            balancer.stop();
            return Err((EXIT_RUNTIME, format!("cannot log events: {e}")));
        }
    }
    Ok((balancer, pid_handle))
}

/// The events thread (started when pen starts with `-d`): each of the balancer's events
/// (blacklistings, failovers, configuration changes, worker errors) is logged as one line
/// (stderr, or syslog once detached) while `debug` is on (`penctl debug 0` silences it).
fn log_events(balancer: Arc<Balancer>) -> std::io::Result<()> {
    let events = balancer.subscribe();
    std::thread::Builder::new()
        .name("pen-log".into())
        .spawn(move || {
            for event in events {
                if balancer.settings().debug > 0 {
                    log::info!("{event}");
                }
            }
        })?;
    Ok(())
}

/// Writes the pid to `path`, without a newline (as C pen writes it), and keeps the file open
/// (see [`run_balancer`]'s exit). A new file renamed into place, never written through a
/// symbolic link: a link or a non-regular file at `path` is refused (pen may run as root).
fn write_pid_file(path: &Path) -> std::io::Result<File> {
    pen_core::os::replace_file(path, std::process::id().to_string().as_bytes())
}

/// The signal thread: HUP re-reads `-F` (all or nothing), the TLS certificates and keys, and
/// reopens the access log, USR1
/// writes the `-w` status file, TERM and INT stop cleanly (exit 0, pid file removed). Failures
/// are logged (stderr, or syslog once detached) and pen keeps running as it was.
fn handle_signals(mut signals: Signals, balancer: Arc<Balancer>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("pen-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                match sig {
                    SIGHUP => {
                        let tls = balancer.reload_tls();
                        if let Err(e) = &tls {
                            daemon::log_error(&format!(
                                "SIGHUP: certificates not reloaded, the old ones stay: {e}"
                            ));
                        }
                        // Without -F there is nothing else to reload, and nothing to say: HUP
                        // is also how logs are rotated (C pen is silent too).
                        if balancer.has_config_file() {
                            if let Err(e) = balancer.reload() {
                                daemon::log_error(&format!(
                                    "SIGHUP: config not reloaded, the running one stays: {e}"
                                ));
                            }
                        }
                        if let Err(e) = balancer.reopen_log() {
                            daemon::log_error(&format!("SIGHUP: cannot reopen the log: {e}"));
                        }
                    }
                    SIGUSR1 => {
                        // PEN-SPEC 6: the -w file, and a summary to the log (or stderr).
                        if let Err(e) = balancer.write_stats() {
                            daemon::log_error(&format!("SIGUSR1: cannot write statistics: {e}"));
                        }
                        daemon::log_info(&balancer.summary());
                    }
                    SIGQUIT => {
                        if let Err(e) = balancer.shutdown(None) {
                            daemon::log_error(&format!("SIGQUIT: {e}"));
                        }
                    }
                    SIGUSR2 => upgrade_in_background(&balancer),
                    _ => balancer.request_stop(),
                }
            }
        })?;
    Ok(())
}

/// SIGUSR2: the upgrade runs on its own thread (it waits up to 10 s for the new binary), so
/// a TERM meanwhile still stops pen at once. A failure is logged; pen serves on.
fn upgrade_in_background(balancer: &Arc<Balancer>) {
    let b = Arc::clone(balancer);
    let spawned = std::thread::Builder::new()
        .name("pen-upgrade".into())
        .spawn(move || match b.upgrade() {
            Ok(pid) => daemon::log_info(&format!("upgrade: pid {pid} serves; draining")),
            Err(e) => daemon::log_error(&format!("upgrade failed, serving on: {e}")),
        });
    if let Err(e) = spawned {
        daemon::log_error(&format!("SIGUSR2: cannot start the upgrade: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_log_or_file() {
        assert!(is_remote_log("10.0.0.5:514"));
        assert!(is_remote_log("loghost:514"));
        assert!(!is_remote_log("pen.log"));
        assert!(!is_remote_log("/var/log/pen.log"));
        assert!(!is_remote_log("./a:b.log"));
    }

    #[test]
    fn relative_paths_become_absolute() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(absolute(Path::new("pen.pid")), cwd.join("pen.pid"));
        assert_eq!(
            absolute(Path::new("/run/pen.pid")),
            PathBuf::from("/run/pen.pid")
        );
    }

    #[test]
    fn exit_status_of_start_errors() {
        let io = StartError::Io {
            context: "cannot listen on '127.0.0.1:80'".into(),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        assert_eq!(start_error_code(&io), EXIT_RUNTIME);
        assert_eq!(
            start_error_code(&StartError::Config("f:1: bad".into())),
            EXIT_USAGE
        );
        let at = pen_core::ApplyError::At {
            file: "f".into(),
            line: 1,
            source: Box::new(pen_core::ApplyError::NotSupported("x".into())),
        };
        let file = StartError::ConfigFile(at);
        assert_eq!(file.to_string(), "f:1: 'x' is not supported yet");
        assert_eq!(start_error_code(&file), EXIT_USAGE);
    }
}
