//! The controller: the one configuration transaction (snapshot, apply, prepare, commit) that
//! the control socket, `-O`, `-F`, `include` and reload all go through, and the execution of
//! every other command (queries and actions) with its reply (PEN-SPEC 4).
//!
//! A configuration change is applied to a [`Model`] snapshot of the running balancer through
//! the real [`Host`](crate::control::host::Host); only if every command of it succeeded is the
//! model committed, as a diff, to the engine's shared state. Changes are serialised by one
//! lock, taken only to commit: a change is built and prepared (TLS files read) without it and
//! committed if no other change came first, else built again under the lock. Nothing is
//! committed on error. Each change is reported as an event (applied or
//! refused, with its source), as are blacklistings and restorations by command.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::Arc;

use parking_lot::Mutex;

use super::host::{RealHost, StartDir};
use crate::control::command::Command;
use crate::control::host::Fetched;
use crate::control::model::{Model, Pending};
use crate::domain::event::{BlacklistReason, ConfigSource, Event, RestoreReason};
use crate::domain::server::{ServerId, Target};
use crate::engine::state::Shared;
use crate::error::ApplyError;

/// Owns configuration changes to one balancer.
pub(crate) struct Controller {
    shared: Arc<Shared>,
    /// The configuration before the `-F` file was applied (command line and `-O`):
    /// `reload_reset` starts from it.
    base: Mutex<Option<Model>>,
    /// Serialises configuration commits.
    lock: Mutex<()>,
    /// Commits so far: a change built without the lock commits only if this did not move.
    generation: AtomicU64,
    /// The `-F` config file (re-read on reload, default target of `write`).
    config_file: Option<PathBuf>,
    /// The directory pen was started from: relative file names point there.
    start: Option<StartDir>,
    /// The start-up options `write` shows (the parts that cannot change while running).
    start_line: crate::control::write::StartLine,
    /// The health checker's thread, started by the first change that configures a check.
    pub(crate) checker: Arc<super::checker::Gate>,
    /// The resolver thread (issue 14), started by the first change that names a server.
    pub(crate) resolver: Arc<super::dns::Gate>,
}

/// Where a transaction starts from.
enum Start {
    /// The running configuration.
    Running,
    /// The configuration before the `-F` file (the running one if there was no file), for
    /// `reload_reset`.
    Base,
}

impl Controller {
    /// A controller for the balancer behind `shared`, made at bind time: the current
    /// directory is recorded as the one relative file names point to.
    pub(crate) fn new(shared: Arc<Shared>, config_file: Option<PathBuf>) -> Self {
        Controller {
            shared,
            base: Mutex::new(None),
            lock: Mutex::new(()),
            generation: AtomicU64::new(0),
            config_file,
            start: StartDir::current(),
            start_line: crate::control::write::StartLine::default(),
            checker: Arc::default(),
            resolver: Arc::default(),
        }
    }

    /// Records the start-up options `write` shows in its second comment line (C pen's
    /// `-U -f -X -j -p -u`).
    pub(crate) fn with_start(mut self, config: &crate::runtime::config::Config) -> Self {
        // Reads the time zone now, before any chroot hides /etc/localtime (the C library
        // keeps it), so that `write` and the status page show local time after it too.
        let _ = crate::sys::process::utc_offset_secs(0);
        let shown = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        self.start_line = crate::control::write::StartLine {
            udp: config.udp,
            foreground: config.foreground,
            exit_enabled: config.exit_enabled,
            chroot: shown(&config.chroot),
            pid_file: shown(&config.pid_file),
            user: config.user.clone(),
            ..Default::default()
        };
        self
    }

    /// The `-F` config file, if any.
    pub(crate) fn config_file(&self) -> Option<&Path> {
        self.config_file.as_deref()
    }

    /// The configuration transaction: `change` is applied to a model taken from `start`, the
    /// model is checked as a whole, and only then committed. On any error nothing changes.
    ///
    /// The files and names the change needs were fetched before (`fetched`, see
    /// [`Controller::fetch`]), and the change is built and prepared (which may read TLS
    /// files) without the configuration lock; the lock is held only to commit. If another
    /// change committed in between, this one is built again from the state that change left,
    /// under the lock (rare: two changes at the same moment), so no change is lost. `change`
    /// may therefore run twice.
    fn transact<R>(
        &self,
        start: Start,
        fetched: &Fetched,
        mut change: impl for<'h> FnMut(
            &mut Model,
            &RealHost<'h>,
            &mut Pending<RealHost<'h>>,
        ) -> Result<R, ApplyError>,
    ) -> Result<R, ApplyError> {
        let host = RealHost {
            fetched: Some(fetched),
            ..self.host()
        };
        let seen = self.generation.load(Acquire);
        let (model, pending, out) = self.build(&start, &host, &mut change)?;
        let _guard = self.lock.lock();
        if self.generation.load(Acquire) == seen {
            commit(&self.shared, model, pending);
            self.generation.fetch_add(1, Release);
            self.checker.ensure(&self.shared);
            self.resolver.ensure(&self.shared);
            return Ok(out);
        }
        // Built on a state that is gone: let go of what it opened or bound, build again.
        drop((model, pending));
        let (model, pending, out) = self.build(&start, &host, &mut change)?;
        commit(&self.shared, model, pending);
        self.generation.fetch_add(1, Release);
        self.checker.ensure(&self.shared);
        self.resolver.ensure(&self.shared);
        Ok(out)
    }

    /// Builds a change: the model from `start` with `change` applied and prepared, ready to
    /// commit.
    #[allow(clippy::type_complexity)]
    fn build<'h, R>(
        &self,
        start: &Start,
        host: &RealHost<'h>,
        change: &mut impl FnMut(
            &mut Model,
            &RealHost<'h>,
            &mut Pending<RealHost<'h>>,
        ) -> Result<R, ApplyError>,
    ) -> Result<(Model, Pending<RealHost<'h>>, R), ApplyError> {
        let mut model = match start {
            Start::Base => self.base.lock().clone(),
            Start::Running => None,
        }
        .unwrap_or_else(|| snapshot(&self.shared));
        let mut pending = Pending::default();
        let out = change(&mut model, host, &mut pending)?;
        // Stored file names keep pointing where they did when given (a daemon is in `/`).
        if let Some(start) = &self.start {
            let s = &mut model.settings;
            s.log = s.log.take().map(|l| start.resolve_log(&l));
            s.web_stats = s.web_stats.take().map(|w| start.resolve(&w));
        }
        model.prepare(host, &mut pending)?;
        Ok((model, pending, out))
    }

    /// The real host, without anything fetched.
    fn host(&self) -> RealHost<'_> {
        RealHost {
            shared: &self.shared,
            start: self.start.as_ref(),
            fetched: None,
            config_file: self.config_file.as_deref(),
        }
    }

    /// Reads the files and resolves the names `cmd` needs, without the configuration lock
    /// (reads are bounded and never wait on a FIFO; lookups time out).
    fn fetch(&self, cmd: &Command) -> Fetched {
        let mut fetched = Fetched::default();
        let dns = self.shared.settings.read().dns.server;
        crate::control::file::prefetch(&self.host(), cmd, &mut fetched, dns);
        fetched
    }

    /// Parses and executes one line (penctl, `-O`), from `source`. A line that does not
    /// parse is reported as a refused change (it may have been one).
    pub(crate) fn apply_line(
        &self,
        line: &str,
        source: ConfigSource,
    ) -> Result<String, ApplyError> {
        let cmd = match crate::control::parse_line(line) {
            Ok(cmd) => cmd,
            Err(e) => {
                let e = ApplyError::from(e);
                self.report(source, Some(line.to_string()), &Err::<(), _>(&e));
                return Err(e);
            }
        };
        self.run(cmd, source)
    }

    /// Executes a parsed command from the embedding program and returns its reply.
    pub(crate) fn execute(&self, cmd: Command) -> Result<String, ApplyError> {
        self.run(cmd, ConfigSource::Api)
    }

    /// Executes a parsed command from `source` and returns its reply: a configuration change
    /// through the transaction (reported as an event), anything else directly.
    fn run(&self, cmd: Command, source: ConfigSource) -> Result<String, ApplyError> {
        if Model::is_config(&cmd) {
            let what = self.shared.events.wanted().then(|| cmd.to_string());
            let fetched = self.fetch(&cmd);
            let out = self.transact(Start::Running, &fetched, |model, host, pending| {
                model.apply(host, cmd.clone(), pending, 0)
            });
            self.report(source, what, &out.as_ref());
            return out;
        }
        if let Command::Write(file) = cmd {
            return self.write(file.as_deref());
        }
        if cmd == Command::Dns {
            return Ok(self.resolver.status(&self.shared));
        }
        if cmd == Command::ReloadReset {
            return self.reload_reset().map(|()| String::new());
        }
        if matches!(cmd, Command::Shutdown(_) | Command::Upgrade) {
            let running = self.render(std::path::Path::new("upgrade"));
            return Ok(super::upgrade::execute(&self.shared, &cmd, running));
        }
        super::queries::execute(&self.shared, cmd)
    }

    /// Reports a configuration change from `source` (`what`: the command or file, when
    /// someone listens) as applied or refused.
    fn report<T>(&self, source: ConfigSource, what: Option<String>, out: &Result<T, &ApplyError>) {
        self.shared.events.emit(|| {
            let what = what.unwrap_or_default();
            match out {
                Ok(_) => Event::ConfigApplied { source, what },
                Err(e) => Event::ConfigRefused {
                    source,
                    what,
                    error: e.to_string(),
                },
            }
        });
    }

    /// Applies the `-F` file at start, after the command line and `-O`; the configuration
    /// before it is kept as the base that `reload_reset` starts from.
    pub(crate) fn apply_file(&self, file: &Path) -> Result<(), ApplyError> {
        let name = file.to_string_lossy();
        let mut base = None;
        let fetched = self.fetch(&Command::Include(name.to_string()));
        let out = self.transact(Start::Running, &fetched, |model, host, pending| {
            base = Some(model.clone());
            pending.quote_lines = true; // the operator's own file
            crate::control::file::include(host, model, pending, &name, 0)
        });
        self.report(
            ConfigSource::ConfigFile,
            Some(name.to_string()),
            &out.as_ref(),
        );
        out?;
        *self.base.lock() = base;
        Ok(())
    }

    /// Re-reads the `-F` file (SIGHUP), as C pen does: the file is applied on top of the running
    /// configuration, so what penctl changed since start stays unless the file sets it again.
    /// All or nothing: on any error the running configuration stays exactly as it was.
    pub(crate) fn reload(&self) -> Result<(), ApplyError> {
        self.reapply(Start::Running)
    }

    /// `reload_reset` \[ours\]: the running configuration becomes the command line plus the
    /// `-F` file as it is now, applied as a diff; what penctl or an older version of the file
    /// set and the file does not is undone. All or nothing, as [`Controller::reload`].
    pub(crate) fn reload_reset(&self) -> Result<(), ApplyError> {
        self.reapply(Start::Base)
    }

    /// Applies the `-F` file to a model taken from `start`, as one transaction.
    fn reapply(&self, start: Start) -> Result<(), ApplyError> {
        let Some(file) = self.config_file.as_deref() else {
            let token = match start {
                Start::Running => "reload",
                Start::Base => "reload_reset",
            };
            return Err(ApplyError::Invalid {
                token: token.to_string(),
                reason: "no config file (-F) to reload".to_string(),
            });
        };
        let name = file.to_string_lossy();
        let fetched = self.fetch(&Command::Include(name.to_string()));
        let out = self.transact(start, &fetched, |model, host, pending| {
            pending.quote_lines = true; // the operator's own file
            crate::control::file::include(host, model, pending, &name, 0)
        });
        self.report(ConfigSource::Reload, Some(name.to_string()), &out.as_ref());
        out.map(drop)
    }

    /// `write [FILE]`: renders the running configuration to `file`, or to the `-F` file.
    fn write(&self, file: Option<&str>) -> Result<String, ApplyError> {
        let path: PathBuf = match file {
            Some(f) => PathBuf::from(super::host::resolve(self.start.as_ref(), f)),
            None => self
                .config_file
                .clone()
                .ok_or_else(|| ApplyError::Invalid {
                    token: "write".to_string(),
                    reason: "needs a FILE (pen runs without -F)".to_string(),
                })?,
        };
        let text = self.render(&path);
        crate::files::write_atomically(&path, text.as_bytes()).map_err(|source| {
            ApplyError::Io {
                context: format!("cannot write '{}'", path.display()),
                source,
            }
        })?;
        Ok(String::new())
    }

    /// The running configuration as `write` renders it for `path`.
    pub(crate) fn render(&self, path: &std::path::Path) -> String {
        let model = snapshot(&self.shared);
        let mut start = self.start_line.clone();
        start.control = self.shared.control.lock().clone();
        {
            let t = self.shared.servers.read();
            let shown = |s: Option<&crate::domain::server::Server>| {
                s.and_then(|s| s.addr).map(|a| a.to_string())
            };
            start.emergency = shown(t.emergency.as_ref());
            start.abuse = shown(t.abuse.as_ref());
        }
        // Local time, as C pen writes it.
        let wall = self.shared.clock.wall_secs();
        let local = wall.saturating_add_signed(crate::sys::process::utc_offset_secs(wall));
        let time = crate::domain::clock::format_utc(local);
        crate::control::write::render(&model, &start, path, time)
    }
}

// ---- DNS-driven servers (issue 14) ----
impl Controller {
    /// Applies a new answer for `name` to the servers that have it (runtime/dns/), through
    /// the configuration transaction as `server N address ...` would be: nothing is done, and
    /// nothing reported, when they already match it.
    pub(crate) fn apply_dns(
        &self,
        name: &str,
        answer: &[std::net::IpAddr],
    ) -> Result<bool, ApplyError> {
        let mut probe: Vec<_> = self
            .shared
            .servers
            .read()
            .iter()
            .map(|(_, s)| s.conf())
            .collect();
        if !crate::control::dns::apply_resolved(&mut probe, name, answer) {
            return Ok(false);
        }
        let what = self.shared.events.wanted().then(|| {
            let shown: Vec<String> = answer.iter().map(ToString::to_string).collect();
            format!("{name} resolved to {}", shown.join(","))
        });
        let none = Fetched::default();
        let out = self.transact(Start::Running, &none, |model, _host, _pending| {
            Ok(crate::control::dns::apply_resolved(
                &mut model.servers,
                name,
                answer,
            ))
        });
        self.report(ConfigSource::Resolver, what, &out.as_ref());
        out
    }
}

/// The running configuration as a model.
pub(crate) fn snapshot(shared: &Shared) -> Model {
    Model {
        settings: shared.settings.read().clone(),
        acls: shared.acls.read().clone(),
        servers: shared
            .servers
            .read()
            .iter()
            .map(|(_, s)| s.conf())
            .collect(),
        conn_max: shared.conn_max.load(Relaxed),
        clients_max: shared.clients.lock().capacity(),
        listen: shared.listen.lock().clone(),
        tls: shared.tls.as_ref().map(|t| t.options.lock().clone()),
        target_checks: {
            let t = shared.servers.read();
            let check = |s: Option<&crate::domain::server::Server>| s.and_then(|s| s.check.clone());
            crate::control::model::TargetChecks {
                emergency: check(t.emergency.as_ref()),
                abuse: check(t.abuse.as_ref()),
            }
        },
    }
}

/// Makes the running balancer match `model`, changing only what differs, and carries out the
/// pending actions.
pub(crate) fn commit(shared: &Shared, model: Model, pending: Pending<RealHost<'_>>) {
    if let (Some(tls), Some(options), Some(config)) =
        (shared.tls.as_ref(), model.tls.clone(), pending.tls)
    {
        tls.install(options, config);
    }
    let log_changed = {
        let mut settings = shared.settings.write();
        let changed = settings.log != model.settings.log;
        *settings = model.settings;
        changed
    };
    match pending.log {
        Some(target) => shared.log.set(target),
        // A reload dropped or changed the log without a `log` line of its own.
        None if log_changed => {
            let spec = shared.settings.read().log.clone();
            if let Err(e) = shared.log.reopen(spec.as_deref()) {
                log::warn!("{e}");
            }
        }
        None => {}
    }
    *shared.acls.write() = model.acls;
    if shared.conn_max.swap(model.conn_max, Relaxed) < model.conn_max {
        shared.wake_all(); // workers paused at the old limit may accept again
    }
    shared.clients.lock().grow(model.clients_max);
    // Clients tracked to a server whose address changed stay with it (as in C pen); those of
    // a server that is gone (`reload_reset`) choose afresh.
    let removed = {
        let mut t = shared.servers.write();
        // Issue 13: the emergency and abuse servers' checks (kept even while there is no such
        // server: `write` keeps them).
        if let Some(s) = t.emergency.as_mut() {
            s.check.clone_from(&model.target_checks.emergency);
        }
        if let Some(s) = t.abuse.as_mut() {
            s.check.clone_from(&model.target_checks.abuse);
        }
        t.reconfigure(&model.servers)
    };
    if !removed.is_empty() {
        let mut clients = shared.clients.lock();
        for id in removed {
            clients.forget_server(id);
        }
    }
    let now = shared.now_ms();
    {
        let servers = shared.servers.read();
        // Issue 13: `server N drain|maint|ready`, one event per change.
        for (id, state) in servers.apply_states(&model.servers, now) {
            let server = Target::Server(id);
            shared.events.emit(|| Event::ServerState { server, state });
        }
        for (id, secs) in pending.blacklist {
            if let Some(s) = servers.get(ServerId(id)) {
                let was = s.is_blacklisted(now);
                s.blacklist(now, secs);
                let server = Target::Server(ServerId(id));
                if secs > 0 {
                    shared.events.emit(|| Event::ServerBlacklisted {
                        server,
                        seconds: secs,
                        reason: BlacklistReason::Command,
                    });
                } else if was {
                    shared.events.emit(|| Event::ServerRestored {
                        server,
                        reason: RestoreReason::Command,
                    });
                }
            }
        }
    }
    if let Some((listeners, bound)) = pending.listen {
        super::listeners::install_listeners(shared, listeners, bound);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::clock::ManualClock;
    use crate::domain::settings::Settings;

    fn controller() -> Controller {
        let clock = Arc::new(ManualClock::new(1_000, 1_800_000_000));
        let shared = Shared::for_tests(&[], None, Settings::default(), clock);
        Controller::new(Arc::new(shared), None)
    }

    /// The files a change includes and the names it resolves are fetched while the
    /// configuration lock is held by someone else (so fetching never takes it), and the
    /// transaction then uses what was fetched, not the disk.
    #[test]
    fn files_and_names_are_fetched_outside_the_lock() {
        let dir = std::env::temp_dir().join(format!("pen-ctl-fetch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let inner = dir.join("inner.cfg");
        let outer = dir.join("outer.cfg");
        std::fs::write(&inner, "blacklist 7\nserver 0 address localhost\n").unwrap();
        std::fs::write(&outer, format!("include {}\ntimeout 4\n", inner.display())).unwrap();
        let c = controller();
        let cmd = Command::Include(outer.display().to_string());
        let fetched = {
            let _held = c.lock.lock(); // a change in progress elsewhere
            c.fetch(&cmd)
        };
        assert_eq!(fetched.len(), (2, 1));
        // The files change on disk after the fetch: the transaction sees what was fetched.
        std::fs::write(&inner, "bogus\n").unwrap();
        c.transact(Start::Running, &fetched, |model, host, pending| {
            model.apply(host, cmd.clone(), pending, 0)
        })
        .unwrap();
        let s = c.shared.settings.read().clone();
        assert_eq!((s.blacklist_secs, s.connect_timeout_secs), (7, 4));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A change is built (and its TLS files read) without the configuration lock, and a
    /// change committed while it was being built is not lost: the slower one is built again
    /// on top of it.
    #[test]
    fn changes_are_built_without_the_lock_and_none_is_lost() {
        let c = controller();
        let none = Fetched::default();
        let mut calls = 0;
        c.transact(Start::Running, &none, |model, host, pending| {
            calls += 1;
            if calls == 1 {
                assert!(c.lock.try_lock().is_some(), "built under the lock");
                // Another change commits meanwhile.
                c.transact(Start::Running, &none, |m, h, p| {
                    m.apply(h, Command::Timeout(Some(9)), p, 0)
                })
                .unwrap();
            }
            model.apply(host, Command::Blacklist(Some(5)), pending, 0)
        })
        .unwrap();
        assert_eq!(calls, 2, "built again after the other commit");
        let s = c.shared.settings.read().clone();
        assert_eq!((s.blacklist_secs, s.connect_timeout_secs), (5, 9));
    }
}
