//! The layers' dependency rule, checked on the sources (as `sys/unsafe_audit.rs` checks the
//! `unsafe` rule): dependencies point one way, runtime -> {admin, control, engine} -> domain.
//!
//! - `domain/` names no other layer, no shared runtime state, no socket and no clock source:
//!   it is handed `now`.
//! - `control/` names neither the engine, the admin servers nor the runtime, and opens no
//!   socket or file itself: its I/O goes through `control::host::Host`.
//! - `engine/` names neither control, admin nor the runtime.
//! - `admin/` and `tls/` do not name the runtime; `tls/` names no engine either.
//!
//! Test-only files (`*_tests.rs`, `*_props.rs`) and `#[cfg(test)] mod` blocks are exempt.

use std::fs;
use std::path::{Path, PathBuf};

/// What files under a layer's directory must not contain (as code, not comments).
const RULES: &[(&str, &[&str])] = &[
    (
        "domain",
        &[
            "crate::engine",
            "crate::runtime",
            "crate::admin",
            "crate::control",
            "crate::tls",
            "crate::sys",
            "crate::poll",
            "Shared",
            "TcpStream",
            "TcpListener",
            "UdpSocket",
            "socket2",
            "Instant::now",
            "SystemTime::now",
            "clock::now_ms",
            "thread::sleep",
        ],
    ),
    (
        "control",
        &[
            "crate::engine",
            "crate::runtime",
            "crate::admin",
            "crate::sys",
            "crate::poll",
            "Shared",
            "std::fs",
            "TcpStream",
            "TcpListener",
            "UdpSocket",
            "to_socket_addrs",
            "Instant::now",
            "SystemTime::now",
        ],
    ),
    (
        "engine",
        &["crate::control", "crate::runtime", "crate::admin"],
    ),
    ("admin", &["crate::runtime", "crate::control::model"]),
    (
        "tls",
        &[
            "crate::engine",
            "crate::runtime",
            "crate::admin",
            "crate::control",
        ],
    ),
];

/// The `.rs` files under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Whether the file holds tests only.
fn test_only(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string());
    name.is_some_and(|n| n.ends_with("_tests.rs") || n.ends_with("_props.rs"))
}

/// The code of `text`: comments dropped, and everything from a `#[cfg(test)]` module on.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if t == "#[cfg(test)]" && lines.peek().is_some_and(|n| n.contains("mod ")) {
            break;
        }
        let c = line.split_once("//").map_or(line, |(c, _)| c);
        out.push_str(c);
        out.push('\n');
    }
    out
}

/// Every (file, forbidden name) pair found under `src`.
fn violations(src: &Path) -> Vec<(PathBuf, &'static str)> {
    let mut found = Vec::new();
    for (layer, forbidden) in RULES {
        let mut files = Vec::new();
        rust_files(&src.join(layer), &mut files);
        for f in files.into_iter().filter(|f| !test_only(f)) {
            let text = code(&fs::read_to_string(&f).unwrap());
            for word in forbidden.iter() {
                if text.contains(word) {
                    found.push((f.clone(), *word));
                }
            }
        }
    }
    found
}

#[test]
fn layers_depend_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(found.is_empty(), "layering violations: {found:?}");
}

#[test]
fn the_audit_finds_a_violation() {
    let dir = std::env::temp_dir().join(format!("pen-layering-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("domain")).unwrap();
    fs::create_dir_all(dir.join("control")).unwrap();
    // A comment and a test module may name anything; code may not.
    fs::write(
        dir.join("domain/ok.rs"),
        "// uses crate::engine::state::Shared in a comment\n#[cfg(test)]\nmod tests { use crate::engine::state::Shared; }\n",
    )
    .unwrap();
    fs::write(
        dir.join("control/bad.rs"),
        "use crate::runtime::x;\nfn f() { std::fs::read(\"a\"); }\n",
    )
    .unwrap();
    let found = violations(&dir);
    let words: Vec<&str> = found.iter().map(|(_, w)| *w).collect();
    assert_eq!(words, vec!["crate::runtime", "std::fs"], "{found:?}");
    fs::remove_dir_all(&dir).unwrap();
}
