//! Several pens, one service (issue 14, item 4): the recipes of `contrib/ha/` built for real in
//! network namespaces made by `contrib/ha/lab.sh` (client, router, pen1, pen2, servers; veth
//! pairs and two bridges; names unique to the test run) and deleted at the end, also on failure
//! and on panic (the [`Lab`] guard). Two pens with the same configuration (`-N -O maglev`):
//!
//! - send every client to the same server (10,000 addresses through `lookup`, a sample through
//!   real connections), and after a server is removed only that server's clients move;
//! - behind the router's ECMP route over a resilient next-hop group (kept by
//!   `contrib/ha/ecmp-health.sh`), stopping pen1 fails only the connections pen1 held and new
//!   connections succeed through pen2 as soon as the group drops pen1;
//! - as a keepalived VRRP pair (`contrib/ha/keepalived.conf` with `contrib/ha/pen-check.sh`),
//!   stopping pen1 moves the service address to pen2.
//!
//! The time without service after stopping pen1 is measured and printed, never asserted.
//! Skips (with a message) when not root, a tool is missing (`ip`, `python3`, `bash`;
//! `keepalived` for the VRRP test) or namespaces cannot be created, and against C pen (it has
//! none of `maglev`, `server N maint` and `lookup`).

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::backends::Backend;
use super::harness::{
    control, is_c_pen, pen_bin, penctl_bin, poll_until, running_as_root, wait_for, PenBuilder,
    ScratchDir,
};
use super::netns::{lines_of, servers_of, Client, LAB_SERVERS_PY};

/// The selection both pens use (the same on both: that is the point): Maglev, no tracking.
const POLICY: &[&str] = &["-N", "-O", "maglev"];
/// The four servers, in the order both pens list them.
const SERVERS: [&str; 4] = [
    "10.78.3.21:8080",
    "10.78.3.22:8080",
    "10.78.3.23:8080",
    "10.78.3.24:8080",
];
/// Where the pens' server-side connections come from: how a server tells the pens apart.
const PEN1_BACK: &str = "10.78.3.11";
const PEN2_BACK: &str = "10.78.3.12";
/// The pens' own addresses on the router's side, the ECMP and the VRRP service addresses.
const PEN1: &str = "10.78.2.11";
const PEN2: &str = "10.78.2.12";
const ECMP_VIP: &str = "10.78.50.1";
const VRRP_VIP: &str = "10.78.2.100";

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// The `contrib/ha` directory of this source tree.
fn contrib() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../contrib/ha")
}

/// Whether `prog ARG` runs and succeeds.
fn have(prog: &str, arg: &str) -> bool {
    Command::new(prog)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `ip ARGS`: its stdout, or `None` if it failed.
fn ip(args: &[&str]) -> Option<String> {
    let out = Command::new("ip").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The lab of `contrib/ha/lab.sh` under a prefix of its own, and every process started in it.
/// Dropping stops the processes (TERM, then KILL after 5 s) and deletes the namespaces.
struct Lab {
    prefix: String,
    dir: ScratchDir,
    procs: Vec<Child>,
}

impl Lab {
    /// Builds the lab, or says why the test must be skipped. Panics if namespaces can be
    /// created but `lab.sh` fails (the recipe is broken).
    fn up(test: &str) -> Result<Lab, String> {
        if is_c_pen() {
            return Err("ours only (maglev, server N maint, lookup)".into());
        }
        if !running_as_root() {
            return Err("needs root".into());
        }
        if !have("ip", "-V") || !have("python3", "-V") || !have("bash", "--version") {
            return Err("needs ip, python3 and bash".into());
        }
        let prefix = format!(
            "pha{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let lab = Lab {
            dir: ScratchDir::new(test),
            prefix,
            procs: Vec::new(),
        };
        let probe = lab.ns("probe");
        if ip(&["netns", "add", &probe]).is_none() {
            return Err("cannot create network namespaces".into());
        }
        let _ = ip(&["netns", "del", &probe]);
        let out = Command::new("sh")
            .arg(contrib().join("lab.sh"))
            .args(["up", &lab.prefix])
            .output()
            .expect("run lab.sh");
        assert!(
            out.status.success(),
            "contrib/ha/lab.sh up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(lab)
    }

    /// The name of a namespace of this lab: `client`, `router`, `pen1`, `pen2`, `servers`.
    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// Starts `prog ARGS` with `env` in namespace `role` (`ip netns exec` execs it: the child is
    /// the program itself), its output in a log of the scratch directory; kept for the guard.
    fn spawn(&mut self, role: &str, env: &[(&str, &str)], prog: &str, args: &[&str]) -> u32 {
        let log =
            std::fs::File::create(self.dir.0.join(format!("{role}-{}.log", self.procs.len())))
                .expect("create log");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(role), prog])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn in namespace");
        let pid = child.id();
        self.procs.push(child);
        pid
    }

    /// The four servers, started and listening.
    fn start_servers(&mut self) {
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns("servers"),
                "python3",
                "-c",
                LAB_SERVERS_PY,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn servers");
        let lines = lines_of(child.stdout.take().expect("servers' stdout"));
        self.procs.push(child);
        let ready = lines.recv_timeout(Duration::from_secs(10));
        assert_eq!(
            ready.ok().as_deref(),
            Some("ready"),
            "servers did not start"
        );
    }

    /// Pen `n` (1 or 2) in its namespace: the same configuration for both, listening on port
    /// 8000 of every address. Returns its control socket and its process id.
    fn start_pen(&mut self, n: u8) -> (String, u32) {
        let ctl = self.dir.0.join(format!("ctl{n}")).display().to_string();
        let pen = pen_bin().display().to_string();
        let mut args = vec!["-f", "-u", "root", "-C", &ctl];
        args.extend(POLICY);
        args.push("8000");
        args.extend(SERVERS);
        let pid = self.spawn(&format!("pen{n}"), &[], &pen, &args);
        let ready = poll_until(Duration::from_secs(10), || {
            std::os::unix::net::UnixStream::connect(&ctl).ok()
        });
        assert!(
            ready.is_some(),
            "pen{n} (pid {pid}) did not open its control socket"
        );
        (ctl, pid)
    }

    /// Sends TERM to a process of the lab and waits (at most 10 s) for it to exit.
    fn stop(&mut self, pid: u32) {
        let Some(c) = self.procs.iter_mut().rev().find(|c| c.id() == pid) else {
            panic!("no process {pid} in the lab");
        };
        assert!(
            matches!(c.try_wait(), Ok(None)),
            "process {pid} is not running"
        );
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let gone = poll_until(Duration::from_secs(10), || c.try_wait().ok().flatten());
        assert!(gone.is_some(), "process {pid} did not stop on TERM");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Only children not yet reaped: a reaped one's pid may belong to someone else now.
        for c in &mut self.procs {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = Command::new("kill")
                    .args(["-TERM", &c.id().to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let _ = poll_until(Duration::from_secs(5), || {
            self.procs
                .iter_mut()
                .all(|c| c.try_wait().ok().flatten().is_some())
                .then_some(())
        });
        for c in &mut self.procs {
            let _ = c.kill();
            let _ = c.wait();
        }
        for role in ["client", "router", "pen1", "pen2", "servers"] {
            let _ = ip(&["netns", "del", &self.ns(role)]);
        }
    }
}

/// Skips the test (with the reason) unless the lab could be built.
macro_rules! lab_or_skip {
    ($test:expr) => {
        match Lab::up($test) {
            Ok(lab) => lab,
            Err(why) => {
                eprintln!("SKIPPED {}: {why}", $test);
                return;
            }
        }
    };
}

/// Client `i` of the client driver: source address 10.78.128.0 + i.
fn client_addr(i: usize) -> Ipv4Addr {
    let i = u32::try_from(i).expect("client number");
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 78, 128, 0)) + i)
}

/// `lookup` for clients 0..n on one pen: the server each would get, by name (`sN`, N its
/// place in [`SERVERS`], which is also its number in both pens).
fn lookups(ctl: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let reply = control(ctl, &format!("lookup {}", client_addr(i)));
            let k: usize = reply
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("lookup {}: {reply:?}", client_addr(i)));
            format!("s{k}")
        })
        .collect()
}

/// How many clients each server has.
fn shares(names: &[String]) -> Vec<usize> {
    (0..SERVERS.len())
        .map(|s| names.iter().filter(|x| **x == format!("s{s}")).count())
        .collect()
}

/// Both pens send every client to the same server (10,000 clients by `lookup`, the first
/// 1,000 also by real connections through each pen), and removing a server (`server 1 maint`
/// on both) moves only that server's clients, the same way on both.
#[test]
fn two_pens_agree_on_every_client_and_a_removed_server_moves_only_its_clients() {
    let test = "two_pens_agree_on_every_client_and_a_removed_server_moves_only_its_clients";
    let mut lab = lab_or_skip!(test);
    lab.start_servers();
    let ctl = [lab.start_pen(1).0, lab.start_pen(2).0];
    let mut client = Client::start(&lab.ns("client"));
    client.wait(PEN1);
    client.wait(PEN2);
    const CLIENTS: usize = 10_000;
    const SAMPLE: usize = 1000;
    // What each pen says, then what each pen does for the sample.
    let both = |client: &mut Client, when: &str| {
        let t0 = Instant::now();
        let said = [lookups(&ctl[0], CLIENTS), lookups(&ctl[1], CLIENTS)];
        let took = t0.elapsed();
        assert_eq!(said[0], said[1], "{when}: the pens' lookups disagree");
        for pen in [PEN1, PEN2] {
            let done = servers_of(&client.connect("map", pen, 0, SAMPLE), when);
            assert_eq!(
                done,
                said[0][..SAMPLE],
                "{when}: through {pen}, not as looked up"
            );
        }
        let [one, _] = said;
        (one, took)
    };
    let (before, took) = both(&mut client, "before");
    let counts = shares(&before);
    assert!(
        counts.iter().all(|&c| (2300..=2700).contains(&c)),
        "uneven shares of {CLIENTS} clients: {counts:?}"
    );
    for c in &ctl {
        assert_eq!(control(c, "server 1 maint"), "");
    }
    let (after, _) = both(&mut client, "after");
    let mut moved_to = [0usize; SERVERS.len()];
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        if b == "s1" {
            assert_ne!(a, "s1", "client {i} still on the removed server");
        } else {
            assert_eq!(a, b, "client {i} moved although its server {b} stayed");
        }
        if a != b {
            moved_to[a.trim_start_matches('s').parse::<usize>().unwrap_or(0)] += 1;
        }
    }
    let moved: usize = moved_to.iter().sum();
    assert_eq!(moved, counts[1], "every client of server 1 moved, no other");
    assert!(
        moved_to.iter().filter(|&&n| n > 0).count() >= 2,
        "server 1's clients should spread over the others: {moved_to:?}"
    );
    println!(
        "ha_netns: {CLIENTS} clients, the same server on both pens ({took:?} for 2 x {CLIENTS} \
         lookups; {SAMPLE} of them also by connections); shares {counts:?}; removing server 1 \
         moved {moved} ({:.1}%), to {moved_to:?}",
        moved as f64 * 100.0 / CLIENTS as f64
    );
}

/// Active/active: the router spreads flows over both pens; stopping pen1 fails exactly the
/// connections pen1 held, and new connections succeed through pen2 once `ecmp-health.sh` has
/// taken pen1 out of the resilient group.
#[test]
fn ecmp_stopping_one_pen_fails_only_its_connections() {
    let test = "ecmp_stopping_one_pen_fails_only_its_connections";
    let mut lab = lab_or_skip!(test);
    lab.start_servers();
    let (_, pen1) = lab.start_pen(1);
    lab.start_pen(2);
    let health = contrib().join("ecmp-health.sh").display().to_string();
    // Next hops 1 and 11 lead to pen1, 2 and 12 to pen2 (lab.sh).
    let members = [format!("1,11={PEN1}"), format!("2,12={PEN2}")];
    lab.spawn(
        "router",
        &[("INTERVAL", "0.2"), ("PROBE_TIMEOUT", "0.5")],
        "bash",
        &[&health, "100", "8000", &members[0], &members[1]],
    );
    let mut client = Client::start(&lab.ns("client"));
    client.wait(PEN1);
    client.wait(PEN2);
    const HELD: usize = 200;
    let held = client.connect("hold", ECMP_VIP, 2000, 2000 + HELD);
    let via: Vec<&str> = held
        .iter()
        .enumerate()
        .map(|(i, c)| match c {
            Some((_, p)) => p.as_str(),
            None => panic!("held connection {i} failed"),
        })
        .collect();
    let on_pen1 = via.iter().filter(|p| **p == PEN1_BACK).count();
    assert!(
        on_pen1 > 0 && on_pen1 < HELD,
        "ECMP did not spread the flows: {on_pen1} of {HELD} on pen1"
    );
    // Whichever pen a flow reached, its client got the server pen2 alone would give it.
    let direct = servers_of(&client.connect("map", PEN2, 2000, 2000 + HELD), "direct");
    assert_eq!(servers_of(&held, "held"), direct);

    let t0 = Instant::now();
    lab.stop(pen1);
    let stopped = t0.elapsed().as_secs_f64();
    let (gap, failed) = client.probe(ECMP_VIP, 5000, 16);
    println!(
        "ha_netns: ECMP: {:.3} s from TERM to pen1 until a whole round of 16 new connections \
         succeeds ({stopped:.3} s until pen1 exited; {failed} new connections failed \
         meanwhile); pen1 held {on_pen1} of {HELD} connections",
        stopped + gap
    );
    let alive = client.ask("check");
    for (i, (a, p)) in alive.split(' ').zip(&via).enumerate() {
        let expect = if *p == PEN1_BACK { "0" } else { "1" };
        assert_eq!(a, expect, "held connection {i} through {p}");
    }
    let after = client.connect("map", ECMP_VIP, 6000, 6100);
    assert!(
        after
            .iter()
            .all(|c| c.as_ref().is_some_and(|(_, p)| p == PEN2_BACK)),
        "new connections after the failover: {after:?}"
    );
    let direct = servers_of(&client.connect("map", PEN2, 6000, 6100), "direct");
    assert_eq!(servers_of(&after, "after"), direct);

    // pen1 comes back: the group takes it in again, but no established flow moves to it (only
    // buckets idle for the group's idle_timer do), so every connection pen2 holds survives.
    let more = client.connect("hold", ECMP_VIP, 7000, 7050);
    assert!(more
        .iter()
        .all(|c| c.as_ref().is_some_and(|(_, p)| p == PEN2_BACK)));
    let mut expect: Vec<&str> = via
        .iter()
        .map(|p| if *p == PEN1_BACK { "0" } else { "1" })
        .collect();
    expect.extend(vec!["1"; more.len()]);
    assert_eq!(
        client.ask("check"),
        expect.join(" "),
        "before pen1 came back"
    );
    lab.start_pen(1);
    let group = || ip(&["-n", &lab.ns("router"), "nexthop", "show", "id", "100"]);
    let back = poll_until(Duration::from_secs(10), || {
        group().filter(|g| g.contains("group 1/11/2/12 "))
    });
    assert!(back.is_some(), "pen1 never rejoined: {:?}", group());
    assert_eq!(
        client.ask("check"),
        expect.join(" "),
        "after pen1 came back"
    );
}

/// Active/standby: keepalived gives the service address to pen1, and to pen2 once
/// `pen-check.sh` finds pen1 stopped; new connections then succeed through pen2.
#[test]
fn vrrp_stopping_the_active_pen_moves_the_address_to_the_standby() {
    let test = "vrrp_stopping_the_active_pen_moves_the_address_to_the_standby";
    if !have("keepalived", "--version") {
        eprintln!("SKIPPED {test}: needs keepalived");
        return;
    }
    let mut lab = lab_or_skip!(test);
    lab.start_servers();
    let mut pens = Vec::new();
    for n in [1, 2] {
        let (ctl, pid) = lab.start_pen(n);
        pens.push(pid);
        // The recipe's file, with this lab's check command.
        let check = format!(
            "$CHECK=/usr/bin/env PENCTL={} {} {ctl} 127.0.0.1:8000",
            penctl_bin().display(),
            contrib().join("pen-check.sh").display()
        );
        let conf = std::fs::read_to_string(contrib().join("keepalived.conf"))
            .expect("read contrib/ha/keepalived.conf");
        let conf: String = conf
            .lines()
            .map(|l| {
                if l.starts_with("$CHECK=") {
                    check.as_str()
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let path = |f: &str| lab.dir.0.join(format!("{f}{n}")).display().to_string();
        std::fs::write(path("keepalived.conf"), conf).expect("write keepalived.conf");
        let (conf, pid, vrrp_pid) = (path("keepalived.conf"), path("k.pid"), path("kv.pid"));
        let id = format!("pen{n}");
        let args = [
            "-n", "-l", "-D", "--vrrp", "-f", &conf, "-i", &id, "-p", &pid, "-r", &vrrp_pid,
        ];
        lab.spawn(&id, &[], "keepalived", &args);
    }
    let has_vip = |ns: &str| {
        ip(&["-n", ns, "-br", "addr", "show", "dev", "front"])
            .is_some_and(|a| a.contains(&format!("{VRRP_VIP}/")))
    };
    let (ns1, ns2) = (lab.ns("pen1"), lab.ns("pen2"));
    let elected = poll_until(Duration::from_secs(20), || has_vip(&ns1).then_some(()));
    assert!(
        elected.is_some(),
        "keepalived never gave {VRRP_VIP} to pen1"
    );
    let mut client = Client::start(&lab.ns("client"));
    client.wait(VRRP_VIP);
    let held = client.connect("hold", VRRP_VIP, 3000, 3020);
    assert!(
        held.iter()
            .all(|c| c.as_ref().is_some_and(|(_, p)| p == PEN1_BACK)),
        "before the failover, not all through pen1: {held:?}"
    );

    let t0 = Instant::now();
    lab.stop(pens[0]);
    let stopped = t0.elapsed().as_secs_f64();
    let (gap, failed) = client.probe(VRRP_VIP, 5000, 1);
    println!(
        "ha_netns: VRRP: {:.3} s from TERM to pen1 until a new connection succeeds through \
         pen2 ({stopped:.3} s until pen1 exited; {failed} attempts failed meanwhile)",
        stopped + gap
    );
    assert!(
        has_vip(&ns2) && !has_vip(&ns1),
        "{VRRP_VIP} is not on pen2 alone"
    );
    assert_eq!(client.ask("check"), vec!["0"; held.len()].join(" "));
    let after = client.connect("map", VRRP_VIP, 6000, 6050);
    assert!(
        after
            .iter()
            .all(|c| c.as_ref().is_some_and(|(_, p)| p == PEN2_BACK)),
        "new connections after the failover: {after:?}"
    );
}

/// keepalived's check, `contrib/ha/pen-check.sh`, on loopback: it fails when no server takes
/// clients, and a pen draining after `shutdown` (control socket answering, listener closed)
/// fails it only when the check is given pen's listening address.
#[test]
fn pen_check_follows_the_servers_and_catches_a_draining_pen() {
    let test = "pen_check_follows_the_servers_and_catches_a_draining_pen";
    if is_c_pen() || !have("bash", "--version") {
        eprintln!("SKIPPED {test}: ours only, needs bash");
        return;
    }
    let backend = Backend::hold();
    let mut pen = PenBuilder::new()
        .control_unix()
        .server(backend.spec())
        .start();
    let (ctl, addr) = (pen.control.clone(), pen.addr().to_string());
    let check = |listen: bool| {
        let mut cmd = Command::new("sh");
        cmd.arg(contrib().join("pen-check.sh"))
            .arg(&ctl)
            .env("PENCTL", penctl_bin());
        if listen {
            cmd.arg(&addr);
        }
        // Bounded: every step of the script runs under timeout(1), 2 s.
        let st = cmd
            .stderr(Stdio::null())
            .status()
            .expect("run pen-check.sh");
        st.code().unwrap_or(-1)
    };
    assert_eq!(check(false), 0, "a healthy pen");
    assert_eq!(control(&ctl, "server 0 maint"), "");
    assert_eq!(check(false), 1, "no server takes clients");
    assert_eq!(control(&ctl, "server 0 ready"), "");
    assert_eq!(check(true), 0, "a healthy pen, listener included");
    // A client connection through pen, open while pen drains.
    let before = backend.held().len();
    let mut client = std::net::TcpStream::connect(&addr).expect("connect");
    client.write_all(b"x").expect("send");
    wait_for(Duration::from_secs(5), "the connection held", || {
        (backend.held().len() > before).then_some(())
    });
    assert_eq!(control(&ctl, "shutdown 30"), "");
    assert_eq!(
        check(false),
        0,
        "the draining pen still answers on its control socket"
    );
    assert_eq!(check(true), 1, "but no longer accepts");
    drop(client);
    for s in backend.held() {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    assert!(
        pen.wait_exit(Duration::from_secs(10)).is_some(),
        "pen exits"
    );
    assert_eq!(check(false), 1, "a stopped pen");
}
