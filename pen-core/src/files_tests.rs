use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::*;

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("pen-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn refused(e: &io::Error) -> Option<Refused> {
    e.get_ref()
        .and_then(|e| e.downcast_ref::<Refused>())
        .copied()
}

#[test]
fn reads_regular_files_up_to_the_cap() {
    let d = Dir::new("read");
    let p = d.0.join("a.cfg");
    std::fs::write(&p, "blacklist 5\n").unwrap();
    assert_eq!(read_regular(&p, 100, false).unwrap(), b"blacklist 5\n");
    let e = read_regular(&p, 4, false).unwrap_err();
    assert_eq!(refused(&e), Some(Refused::TooLarge(4)));
    assert!(e.to_string().contains("larger than 4 bytes"), "{e}");
}

#[test]
fn devices_fifos_directories_and_links_are_refused_unread() {
    let d = Dir::new("special");
    let e = read_regular(Path::new("/dev/zero"), MAX_CONFIG_BYTES, false).unwrap_err();
    assert_eq!(refused(&e), Some(Refused::NotRegular("character device")));
    let e = read_regular(&d.0, MAX_CONFIG_BYTES, false).unwrap_err();
    assert!(
        refused(&e).is_some() || e.kind() == io::ErrorKind::IsADirectory,
        "{e}"
    );
    // A FIFO with no writer: opening it blocking would hang this test.
    let fifo = d.0.join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let e = read_regular(&fifo, MAX_CONFIG_BYTES, true).unwrap_err();
    assert_eq!(refused(&e), Some(Refused::NotRegular("FIFO")));
    let target = d.0.join("target");
    std::fs::write(&target, "x").unwrap();
    let link = d.0.join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let e = read_regular(&link, MAX_CONFIG_BYTES, false).unwrap_err();
    assert_eq!(refused(&e), Some(Refused::Symlink));
    assert_eq!(read_regular(&link, MAX_CONFIG_BYTES, true).unwrap(), b"x");
}

#[test]
fn writes_replace_regular_files_and_refuse_links() {
    let d = Dir::new("write");
    let p = d.0.join("out.cfg");
    write_atomically(&p, b"one").unwrap();
    write_atomically(&p, b"two").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"two");
    let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & !FILE_MODE, 0, "mode {mode:o}");
    let secret = d.0.join("secret");
    std::fs::write(&secret, "keep").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = d.0.join("link");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    let e = write_atomically(&link, b"evil").unwrap_err();
    assert_eq!(refused(&e), Some(Refused::Symlink));
    assert_eq!(std::fs::read(&secret).unwrap(), b"keep");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let e = write_atomically(&d.0, b"x").unwrap_err();
    assert!(refused(&e).is_some() || e.kind() == io::ErrorKind::InvalidInput);
    // Nothing left behind.
    let names: Vec<_> = std::fs::read_dir(&d.0).unwrap().collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(write_atomically(&d.0.join("missing/x"), b"x").is_err());
}

#[test]
fn appends_refuse_links_and_create_mode_0640() {
    let d = Dir::new("append");
    let p = d.0.join("pen.log");
    let mut f = open_append(&p).unwrap();
    f.write_all(b"line\n").unwrap();
    let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & !FILE_MODE, 0, "mode {mode:o}");
    let link = d.0.join("link.log");
    std::os::unix::fs::symlink(&p, &link).unwrap();
    let e = open_append(&link).unwrap_err();
    assert_eq!(refused(&e), Some(Refused::Symlink));
    open_append(Path::new("/dev/null")).unwrap();
    let e = open_append(Path::new("/dev/zero")).unwrap_err();
    assert_eq!(refused(&e), Some(Refused::NotRegular("character device")));
}
