//! The workspace's rule for `unsafe`, checked on the sources (CI runs the tests, not clippy):
//! the keyword appears in code only under `pen-core/src/sys/`, `unsafe_code` is allowed only on
//! `mod sys` in `lib.rs`, and every `unsafe` there follows a `// SAFETY:` comment. (clippy's
//! `undocumented_unsafe_blocks`, enabled for the workspace, checks the last point exactly.)

use std::fs;
use std::path::{Path, PathBuf};

/// The `.rs` files under `dir`, recursively (none if it does not exist).
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "target") {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a line, without its `//` comment (strings holding `//` are cut too, which can
/// only hide code, never invent a match).
fn code(line: &str) -> &str {
    line.split_once("//").map_or(line, |(c, _)| c)
}

/// Whether `text` holds `word` as a whole identifier.
fn has_word(text: &str, word: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).any(|(i, _)| {
        let before = text.get(..i).and_then(|s| s.chars().next_back());
        let after = text.get(i + word.len()..).and_then(|s| s.chars().next());
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// Whether the `unsafe` on line `at` is preceded by a `// SAFETY:` comment: going up over
/// comments and over the earlier lines of the same statement, a SAFETY line is met before
/// the end of the previous statement or block.
fn documented(lines: &[&str], at: usize) -> bool {
    for line in lines.iter().take(at).rev() {
        let t = line.trim();
        if t.starts_with("// SAFETY:") {
            return true;
        }
        if t.starts_with("//") {
            continue;
        }
        if t.is_empty() || t.ends_with(';') || t.ends_with('{') || t.ends_with('}') {
            return false;
        }
    }
    false
}

#[test]
fn unsafe_lives_only_in_sys_and_is_documented() {
    let core = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = core.parent().unwrap_or(core);
    let mut files = Vec::new();
    for member in ["pen-core", "pen-bin", "penctl", "benches"] {
        rust_files(&root.join(member), &mut files);
    }
    let sys = core.join("src").join("sys");
    let (mut blocks, mut problems) = (0, Vec::new());
    // This file names what it looks for.
    let me = sys.join("unsafe_audit.rs");
    for file in files.iter().filter(|&f| f != &me) {
        let text = fs::read_to_string(file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let in_sys = file.starts_with(&sys);
        for (i, line) in lines.iter().enumerate() {
            let c = code(line);
            let at = format!("{}:{}", file.display(), i + 1);
            if c.contains("allow(unsafe_code)") {
                let next = lines.get(i + 1).map(|l| l.trim());
                if !(file == &core.join("src").join("lib.rs") && next == Some("mod sys;")) {
                    problems.push(format!("{at}: unsafe_code allowed outside `mod sys`"));
                }
            }
            if !has_word(c, "unsafe") {
                continue;
            }
            if !in_sys {
                problems.push(format!("{at}: `unsafe` outside pen-core/src/sys"));
            } else if !documented(&lines, i) {
                problems.push(format!("{at}: `unsafe` without a `// SAFETY:` comment"));
            } else {
                blocks += 1;
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The scan found the sources: sys holds the workspace's unsafe code.
    assert!(
        blocks >= 10,
        "only {blocks} unsafe blocks found in {}",
        sys.display()
    );
}

#[test]
fn the_audit_sees_what_it_should() {
    assert!(has_word("let x = unsafe { f() };", "unsafe"));
    assert!(!has_word("#[allow(unsafe_code)]", "unsafe"));
    assert!(!has_word("not_unsafe()", "unsafe"));
    let ok = [
        "    // SAFETY: fine.",
        "    let n =",
        "        unsafe { f() };",
    ];
    assert!(documented(&ok, 2));
    let bad = [
        "    // SAFETY: fine.",
        "    g();",
        "    let n = unsafe { f() };",
    ];
    assert!(!documented(&bad, 2));
    assert!(!documented(&["", "unsafe { f() }"], 1));
}
