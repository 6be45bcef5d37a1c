//! Issue 11, files named by commands and options: included files are regular files read
//! without blocking and never echoed, nothing slow happens under the configuration lock, the
//! pid file, the access log and `write` never go through a symbolic link and are created mode
//! 0640, and `ssl_ocsp_response` staples only a real OCSP response for the served certificate.
//! Every test here failed before that work.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::harness::{
    free_port, is_c_pen, peek, peer_has_read, pen_bin, run_bounded_full, running_as_root,
    wait_until, Peek, Pen, PenBuilder, ScratchDir, WAIT,
};
use super::tls_util::{put, Ca};

/// Sends one control line and reads the reply, giving up (None) after `within`.
fn ctl_within(pen: &Pen, line: &str, within: Duration) -> Option<String> {
    let addr = pen.control.parse().expect("control address");
    let mut s = TcpStream::connect_timeout(&addr, within).ok()?;
    s.set_read_timeout(Some(within)).ok()?;
    s.write_all(format!("{line}\n").as_bytes()).ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(ok.success(), "mkfifo {}", path.display());
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777
}

/// A root-owned-like secret: content and mode that must survive.
fn secret(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("secret");
    std::fs::write(&p, "do not touch\n").expect("write secret");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    p
}

fn untouched(secret: &Path) {
    assert_eq!(
        std::fs::read_to_string(secret).expect("read secret"),
        "do not touch\n"
    );
    assert_eq!(mode(secret), 0o600);
}

#[test]
fn include_errors_name_file_and_line_not_the_content() {
    if is_c_pen() {
        return; // [ours] C pen echoes the word
    }
    let dir = ScratchDir::new("sec-include-echo");
    let f = dir.0.join("passwd");
    std::fs::write(&f, "# users\nroot:x:0:0:SECRETWORD:/root:/bin/sh\n").expect("write");
    let pen = PenBuilder::new().start();
    let reply = pen.ctl(&format!("include {}", f.display()));
    assert!(reply.starts_with("error: "), "{reply:?}");
    assert!(reply.contains(&format!("{}:2:", f.display())), "{reply:?}");
    assert!(reply.contains("expected"), "{reply:?}");
    assert!(
        !reply.contains("SECRETWORD") && !reply.contains("root:x"),
        "{reply:?}"
    );
}

#[test]
fn include_of_a_fifo_or_device_is_refused_at_once_and_others_are_served() {
    if is_c_pen() {
        return; // [ours] C pen blocks on a FIFO and reads /dev/zero without end
    }
    let dir = ScratchDir::new("sec-include-fifo");
    let fifo = dir.0.join("fifo");
    mkfifo(&fifo);
    let pen = PenBuilder::new().start();
    let second = Duration::from_secs(1);
    for f in [fifo.display().to_string(), "/dev/zero".to_string()] {
        let t0 = Instant::now();
        let reply = ctl_within(&pen, &format!("include {f}"), second)
            .unwrap_or_else(|| panic!("include {f}: no answer within 1 s"));
        assert!(reply.starts_with("error: "), "{reply:?}");
        assert!(reply.contains("not a regular file"), "{reply:?}");
        assert!(t0.elapsed() < second);
        assert_eq!(
            ctl_within(&pen, "blacklist", second).as_deref(),
            Some("30\n"),
            "another command after include {f}"
        );
    }
    // And pen keeps answering afterwards.
    let reply = ctl_within(&pen, "mode", second).expect("mode answers");
    assert!(!reply.starts_with("error"), "{reply:?}");
}

#[test]
fn sigterm_stops_pen_while_a_fifo_is_included() {
    if is_c_pen() {
        return;
    }
    let dir = ScratchDir::new("sec-include-term");
    let fifo = dir.0.join("fifo");
    mkfifo(&fifo);
    let mut pen = PenBuilder::new().start();
    let line = format!("include {}\n", fifo.display());
    // The reply does not matter, only that pen is not held by the include.
    let mut s = TcpStream::connect(&pen.control).expect("connect to the control socket");
    s.write_all(line.as_bytes()).expect("send the include");
    // The include has started once pen has read its line (or already answered it).
    wait_until(WAIT, "pen to read the include line", || {
        peer_has_read(&s).is_some() || peek(&mut s, Duration::from_millis(1)) != Peek::Quiet
    });
    pen.signal("TERM");
    let status = pen.wait_exit(Duration::from_secs(3));
    assert!(status.is_some(), "pen did not stop on SIGTERM within 3 s");
}

/// Runs pen in the foreground with `opts`; it must refuse to start within 5 s.
fn refused_at_start(opts: &[String]) -> (String, i32) {
    let mut args: Vec<String> = vec!["-f".into()];
    if running_as_root() {
        args.extend(["-u".into(), "root".into()]);
    }
    args.extend(["-C".into(), format!("127.0.0.1:{}", free_port())]);
    args.extend(opts.iter().cloned());
    args.push(format!("127.0.0.1:{}", free_port()));
    args.push("127.0.0.1:9".into());
    let (_out, err, code) = run_bounded_full(&pen_bin(), &args, Duration::from_secs(5));
    (err, code)
}

#[test]
fn a_symlinked_pid_file_is_refused_and_its_target_untouched() {
    if is_c_pen() {
        return; // [ours] C pen writes through the link
    }
    let dir = ScratchDir::new("sec-pid-link");
    let target = secret(&dir.0);
    let link = dir.0.join("pen.pid");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let (err, code) = refused_at_start(&["-p".into(), link.display().to_string()]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("symbolic link"), "{err}");
    untouched(&target);
    assert!(std::fs::symlink_metadata(&link)
        .expect("link")
        .file_type()
        .is_symlink());
}

#[test]
fn a_symlinked_access_log_is_refused_and_its_target_untouched() {
    if is_c_pen() {
        return; // [ours] C pen appends through the link
    }
    let dir = ScratchDir::new("sec-log-link");
    let target = secret(&dir.0);
    let link = dir.0.join("pen.log");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let (err, code) = refused_at_start(&["-l".into(), link.display().to_string()]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("symbolic link"), "{err}");
    untouched(&target);
    // And over the control socket.
    let pen = PenBuilder::new().start();
    let reply = pen.ctl(&format!("log {}", link.display()));
    assert!(reply.contains("symbolic link"), "{reply:?}");
    untouched(&target);
}

#[test]
fn write_onto_a_symlink_is_refused_and_new_files_are_0640() {
    if is_c_pen() {
        return; // [ours] C pen writes through the link
    }
    let dir = ScratchDir::new("sec-write");
    let target = secret(&dir.0);
    let link = dir.0.join("pen.cfg");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let pen = PenBuilder::new().pid_file().start();
    let reply = pen.ctl(&format!("write {}", link.display()));
    assert!(reply.contains("symbolic link"), "{reply:?}");
    untouched(&target);
    assert!(std::fs::symlink_metadata(&link)
        .expect("link")
        .file_type()
        .is_symlink());
    let web = dir.0.join("web.html");
    std::os::unix::fs::symlink(&target, &web).expect("symlink");
    let _ = pen.ctl(&format!("web_stats {}", web.display()));
    let _ = pen.ctl("status");
    untouched(&target);
    // New files: no access for others, whatever the umask lets through.
    let written = dir.0.join("new.cfg");
    assert_eq!(pen.ctl(&format!("write {}", written.display())), "");
    let log = dir.0.join("access.log");
    assert_eq!(
        pen.ctl(&format!("log {}", log.display())),
        format!("{}\n", log.display())
    );
    for f in [written, log, pen.pid_path()] {
        let m = mode(&f);
        assert_eq!(m & 0o007, 0, "{} has mode {m:o}", f.display());
        assert_eq!(m & 0o600, 0o600, "{} has mode {m:o}", f.display());
    }
}

#[test]
fn a_der_key_or_other_der_is_not_stapled_as_ocsp() {
    if is_c_pen() {
        return; // [ours] C pen staples any file
    }
    let dir = ScratchDir::new("sec-ocsp");
    let ca = Ca::root("pen test CA");
    let leaf = ca.server(&["localhost"]);
    let cert = put(&dir.0, "cert.pem", &leaf.cert_pem);
    let key = put(&dir.0, "key.pem", leaf.key_pem());
    let pen = PenBuilder::new()
        .opts(&["-E", &cert, "-K", &key])
        .server("127.0.0.1:9")
        .start();
    let f = dir.0.join("ocsp.der");
    let staple = |bytes: &[u8]| {
        std::fs::write(&f, bytes).expect("write");
        pen.ctl(&format!("ssl_ocsp_response {}", f.display()))
    };
    // A PKCS#8 private key (DER): it starts with 0x30 as an OCSP response does.
    let private = rcgen::KeyPair::generate().expect("key").serialize_der();
    let reply = staple(&private);
    assert!(reply.starts_with("error: "), "{reply:?}");
    assert!(reply.contains("OCSP"), "{reply:?}");
    assert!(staple(&ca.der).starts_with("error: "), "a certificate");
    // A successful response for another certificate (the CA's serial).
    let reply = staple(&ocsp::response_for(&ca.der, &ca.der, 1));
    assert!(
        reply.contains("not for the served certificate"),
        "{reply:?}"
    );
    // The real thing is accepted.
    assert_eq!(staple(&ocsp::response_for(&leaf.der, &ca.der, 1)), "");
}

/// Builds OCSP responses for test certificates (no signature check is made by pen; clients
/// make it).
pub(crate) mod ocsp {
    /// One DER element off the front: (tag, body, rest).
    fn next(d: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = d[0];
        let (len, start) = if d[1] < 0x80 {
            (d[1] as usize, 2)
        } else {
            let n = (d[1] & 0x7f) as usize;
            (
                d[2..2 + n].iter().fold(0, |a, b| (a << 8) | *b as usize),
                2 + n,
            )
        };
        (tag, &d[start..start + len], &d[start + len..])
    }

    /// The first element whole (tag and length included).
    fn whole(d: &[u8]) -> &[u8] {
        let (_, _, rest) = next(d);
        &d[..d.len() - rest.len()]
    }

    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let n = body.len();
        if n < 0x80 {
            out.push(n as u8);
        } else if n < 0x100 {
            out.extend([0x81, n as u8]);
        } else {
            out.extend([0x82, (n >> 8) as u8, n as u8]);
        }
        out.extend_from_slice(body);
        out
    }

    fn sha256(d: &[u8]) -> Vec<u8> {
        let suite = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256;
        let rustls::SupportedCipherSuite::Tls13(s) = suite else {
            unreachable!()
        };
        s.common.hash_provider.hash(d).as_ref().to_vec()
    }

    /// (serial contents, issuer Name DER, subjectPublicKey bits) of a certificate.
    fn parts(cert: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let (_, c, _) = next(cert);
        let (_, tbs, _) = next(c);
        let (_, _version, r) = next(tbs);
        let (_, serial, r) = next(r);
        let (_, _alg, r) = next(r);
        let issuer = whole(r).to_vec();
        let (_, _, r) = next(r);
        let (_, _validity, r) = next(r);
        let (_, _subject, r) = next(r);
        let (_, spki, _) = next(r);
        let (_, _alg, r) = next(spki);
        let (_, bits, _) = next(r);
        (serial.to_vec(), issuer, bits[1..].to_vec())
    }

    /// A successful basic response (SHA-256 CertID) for `cert`: its serial, the issuer name
    /// hash from `cert`, the issuer key hash from `issuer`; `seq` varies producedAt so two
    /// responses differ.
    pub(crate) fn response_for(cert: &[u8], issuer: &[u8], seq: u8) -> Vec<u8> {
        let (serial, name, _) = parts(cert);
        let (_, _, key) = parts(issuer);
        let sha256_oid = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
        let cert_id = tlv(
            0x30,
            &[
                tlv(0x30, &[tlv(0x06, &sha256_oid), vec![0x05, 0x00]].concat()),
                tlv(0x04, &sha256(&name)),
                tlv(0x04, &sha256(&key)),
                tlv(0x02, &serial),
            ]
            .concat(),
        );
        let time = tlv(0x18, format!("202601010000{:02}Z", seq % 60).as_bytes());
        let single = tlv(0x30, &[cert_id, vec![0x80, 0x00], time.clone()].concat());
        let tbs = tlv(
            0x30,
            &[tlv(0xa2, &tlv(0x04, &[0u8; 20])), time, tlv(0x30, &single)].concat(),
        );
        let ecdsa_sha256 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
        let basic = tlv(
            0x30,
            &[
                tbs,
                tlv(0x30, &tlv(0x06, &ecdsa_sha256)),
                tlv(0x03, &[0, 1, 2, 3]),
            ]
            .concat(),
        );
        let ocsp_basic = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01];
        let bytes = tlv(
            0xa0,
            &tlv(0x30, &[tlv(0x06, &ocsp_basic), tlv(0x04, &basic)].concat()),
        );
        tlv(0x30, &[tlv(0x0a, &[0]), bytes].concat())
    }
}

#[test]
fn the_config_file_may_be_a_link_but_what_it_includes_may_not() {
    let dir = ScratchDir::new("sec-f-link");
    let real = dir.0.join("real.cfg");
    let inc = dir.0.join("inc.cfg");
    let inc_link = dir.0.join("inc-link.cfg");
    std::fs::write(&inc, "timeout 4\n").expect("write");
    std::os::unix::fs::symlink(&inc, &inc_link).expect("symlink");
    std::fs::write(&real, format!("blacklist 9\ninclude {}\n", inc.display())).expect("write");
    let link = dir.0.join("pen.cfg");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let pen = PenBuilder::new()
        .opts(&["-F", &link.display().to_string()])
        .start();
    assert_eq!(pen.ctl("blacklist"), "9\n");
    assert_eq!(pen.ctl("timeout"), "4\n");
    if is_c_pen() {
        return;
    }
    let reply = pen.ctl(&format!("include {}", inc_link.display()));
    assert!(reply.contains("symbolic link"), "{reply:?}");
}
