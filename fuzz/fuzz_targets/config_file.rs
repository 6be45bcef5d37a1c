//! Fuzzes whole config files through the real `-F` path (`pen_core::fuzzing::config`): a
//! balancer is bound once (127.0.0.1, ephemeral port, one worker, no thread started) and every
//! input is written to temporary files and loaded exactly as `pen -F FILE` (and a reload)
//! loads one: read, each line parsed and applied to a model, `include` followed, checked as a
//! whole. This reaches the parser, the model (servers, ACLs, every setting, `include` depth and
//! errors, the commands refused in files), the commit into the running tables and `write`'s
//! renderer, which a parse-only target would not.
//!
//! Input: up to four file texts separated by lines `%%` (files f0..f3; f0 is loaded; `include
//! fN` refers to them). So that fuzzing touches nothing outside its directory and sends
//! nothing, an input is skipped if a line would resolve a host name (`server N address NAME`),
//! bind (`listen ADDR`), include anything but f0..f3, or log to a path that is not a plain
//! name (a plain name is logged to inside the directory; a `host:port` collector is allowed:
//! nothing is logged without traffic).
//!
//! Checked: never a panic; an error names f0 and a line of it (as `FILE:LINE`) and changes
//! nothing running; a file that loads, written back by `write`'s renderer and loaded again,
//! gives the same configuration (`write` then `-F` is the identity); committing it makes the
//! running configuration equal to it.
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use pen_core::addr::{split_host, Host};
use pen_core::control::{parse_line, Command};
use pen_core::fuzzing::config::Harness;
use pen_core::ApplyError;

const FILES: usize = 4;

thread_local! {
    static STATE: (Harness, PathBuf) = {
        let dir = std::env::temp_dir().join(format!("pen-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        (Harness::new().expect("bind the balancer"), dir)
    };
}

fn plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The line as it goes into the file (names made to point into `dir`), or `None` to skip the
/// input.
fn prepare(line: &str, dir: &Path) -> Option<String> {
    let t = line.trim();
    let Ok(cmd) = parse_line(t) else {
        return Some(line.to_string()); // comments, blank lines, errors: as they are
    };
    match cmd {
        Command::Include(f) => {
            let n = f.strip_prefix('f')?.parse::<usize>().ok()?;
            (n < FILES && f.len() == 2).then(|| format!("include {}", dir.join(&f).display()))
        }
        Command::Listen(Some(_)) => None,
        Command::Log(Some(spec)) => {
            if !spec.contains('/') && spec.parse::<std::net::SocketAddr>().is_ok() {
                Some(line.to_string())
            } else if plain_name(&spec) {
                Some(format!("log {}", dir.join(format!("log-{spec}")).display()))
            } else {
                None
            }
        }
        Command::Server { fields, .. } => {
            for f in &fields {
                if let pen_core::control::command::ServerField::Address(h) = f {
                    let bare = h.trim_start_matches('[').trim_end_matches(']');
                    if let Ok(Host::Name(_)) = split_host(bare) {
                        return None;
                    }
                }
            }
            Some(line.to_string())
        }
        _ => Some(line.to_string()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    STATE.with(|(h, dir)| run(h, dir, text));
});

fn run(h: &Harness, dir: &Path, text: &str) {
    let mut files: Vec<String> = vec![String::new()];
    for line in text.split_inclusive('\n') {
        if line.trim_end_matches(['\r', '\n']) == "%%" {
            if files.len() == FILES {
                return;
            }
            files.push(String::new());
            continue;
        }
        let end = &line[line.trim_end_matches(['\r', '\n']).len()..];
        let Some(l) = prepare(line.trim_end_matches(['\r', '\n']), dir) else {
            return;
        };
        let last = files.last_mut().unwrap();
        last.push_str(&l);
        last.push_str(end);
    }
    for i in 0..FILES {
        let p = dir.join(format!("f{i}"));
        match files.get(i) {
            Some(t) => std::fs::write(&p, t).expect("write f"),
            None => {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
    let f0 = dir.join("f0");
    let base = h.base();
    match h.load(&f0) {
        Err(e) => {
            let ApplyError::At { file, line, .. } = &e else {
                panic!("error without a position: {e}");
            };
            assert_eq!(Path::new(file), f0, "{e}");
            assert!(*line >= 1 && *line <= files[0].lines().count(), "{e}");
            assert_eq!(h.running(), base, "a failed load changed the running state");
        }
        Ok(loaded) => {
            assert_eq!(h.running(), base, "a load changed the running state");
            let w = dir.join("written");
            let rendered = h.render(&loaded, &w);
            std::fs::write(&w, &rendered).expect("write w");
            match h.load(&w) {
                Ok(again) => assert_eq!(again, loaded, "write then -F differs:\n{rendered}"),
                Err(e) => panic!("the written config does not load: {e}\n{rendered}"),
            }
            let want = format!("{loaded:?}");
            h.commit(loaded);
            let running = h.running();
            assert_eq!(
                format!("{running:?}"),
                want,
                "commit did not install the model"
            );
            h.reset();
            assert_eq!(h.running(), base, "reset");
        }
    }
}
