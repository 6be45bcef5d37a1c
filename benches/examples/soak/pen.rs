//! The pen child processes ([`Pen`]: started with a control socket, a `-F` file and a pid
//! file, signalled, stopped) and talking to them: control commands on the socket or through
//! penctl, and a metric from the `metrics` reply.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::procfs::{proc_sample, ProcSample};

/// One pen child process.
pub(crate) struct Pen {
    pub(crate) name: &'static str,
    child: Child,
    pub(crate) pid: u32,
    pub(crate) ctl: SocketAddrV4,
    pub(crate) cfg: PathBuf,
    pub(crate) cmdline: String,
    pub(crate) log: PathBuf,
    exited: Option<String>,
}

impl Pen {
    pub(crate) fn spawn(
        name: &'static str,
        exe: &Path,
        dir: &Path,
        opts: &[String],
        listen: SocketAddrV4,
        servers: &[u16],
        cfg_text: &str,
    ) -> Result<Pen, String> {
        let ctl = free_tcp_port().map_err(|e| format!("free port: {e}"))?;
        let ctl = SocketAddrV4::new(Ipv4Addr::LOCALHOST, ctl);
        let cfg = dir.join(format!("{name}.cfg"));
        let log = dir.join(format!("{name}.log"));
        let pidfile = dir.join(format!("{name}.pid"));
        fs::write(&cfg, cfg_text).map_err(|e| format!("{}: {e}", cfg.display()))?;
        let mut args: Vec<String> = opts.to_vec();
        args.extend([
            "-C".into(),
            ctl.to_string(),
            "-F".into(),
            cfg.display().to_string(),
            "-p".into(),
            pidfile.display().to_string(),
            listen.to_string(),
        ]);
        args.extend(servers.iter().map(|p| format!("127.0.0.1:{p}")));
        let logf = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let errf = logf.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(exe)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(logf)
            .stderr(errf)
            .spawn()
            .map_err(|e| format!("{}: {e}", exe.display()))?;
        let pid = child.id();
        let mut pen = Pen {
            name,
            child,
            pid,
            ctl,
            cfg,
            cmdline: format!("pen {}", args.join(" ")),
            log,
            exited: None,
        };
        // Ready when the control socket answers.
        let t = Instant::now();
        loop {
            if !pen.alive() {
                return Err(format!(
                    "{name} pen exited at start ({}): {}",
                    pen.exited.clone().unwrap_or_default(),
                    fs::read_to_string(&pen.log).unwrap_or_default().trim()
                ));
            }
            if control(ctl, "pid").is_ok_and(|r| r.trim() == pid.to_string()) {
                return Ok(pen);
            }
            if t.elapsed() > Duration::from_secs(10) {
                return Err(format!("{name} pen did not answer on {ctl} within 10 s"));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn alive(&mut self) -> bool {
        if self.exited.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(None) => true,
            Ok(Some(st)) => {
                self.exited = Some(st.to_string());
                false
            }
            Err(e) => {
                self.exited = Some(e.to_string());
                false
            }
        }
    }

    pub(crate) fn signal(&self, sig: &str) -> bool {
        Command::new("kill")
            .args([sig, &self.pid.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// SIGTERM, then SIGKILL after 10 s; returns the exit status as text.
    pub(crate) fn stop(&mut self) -> String {
        if !self.alive() {
            return format!("had exited: {}", self.exited.clone().unwrap_or_default());
        }
        self.signal("-TERM");
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if !self.alive() {
                return self.exited.clone().unwrap_or_default();
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.exited = Some("killed (did not exit within 10 s of SIGTERM)".into());
        self.exited.clone().unwrap_or_default()
    }

    pub(crate) fn sample(&self) -> Option<ProcSample> {
        proc_sample(self.pid)
    }
}

impl Drop for Pen {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(crate) fn free_tcp_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(crate) fn free_udp_port() -> io::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Sends one control command on pen's control socket and returns the reply.
pub(crate) fn control(addr: SocketAddrV4, cmd: &str) -> io::Result<String> {
    let mut s = TcpStream::connect_timeout(&SocketAddr::V4(addr), Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("{cmd}\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// The same through the penctl binary; an error if it exits with a nonzero status.
pub(crate) fn penctl(exe: &Path, addr: SocketAddrV4, cmd: &str) -> io::Result<String> {
    let out = Command::new(exe)
        .arg(addr.to_string())
        .args(cmd.split_whitespace())
        .stdin(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(io::Error::other(format!(
            "penctl {}: {} {}",
            out.status,
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A metric without labels, or the sum over its labelled series.
pub(crate) fn metric(text: &str, name: &str) -> Option<u64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let value = if let Some(v) = rest.strip_prefix(' ') {
            v
        } else if rest.starts_with('{') {
            rest.rsplit(' ').next().unwrap_or("")
        } else {
            continue;
        };
        if let Ok(v) = value.trim().parse::<f64>() {
            *found.get_or_insert(0) += v as u64;
        }
    }
    found
}
