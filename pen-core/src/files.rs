//! Files pen reads or writes because a command, an option or a config line named them. Anyone
//! allowed to name a file (penctl at level `admin`, a config file) must not be able to make pen
//! block, exhaust memory, or write through a link planted by someone else:
//!
//! - Reads ([`read_regular`]) open without blocking (a FIFO does not stall the opener), check
//!   the opened descriptor is a regular file (FIFOs, devices, directories and sockets are
//!   refused at once, never read), and stop at a size cap. Config files are also opened without
//!   following a symbolic link as their last component.
//! - Writes ([`write_atomically`], [`replace_keeping`]) go to a new temporary file in the same
//!   directory (created exclusively, never through a link, mode 0640 before the umask), synced,
//!   then renamed over the target, so a reader never sees half a file, a failed write leaves the
//!   old one untouched, and nothing is ever written through a link. A target that is a symbolic
//!   link or not a regular file is refused rather than replaced.
//! - Appends ([`open_append`], the access log) open without following a link, mode 0640, and
//!   refuse anything but a regular file (or `/dev/null`).

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Largest config file (`-F`, `include`) read: a config of a few thousand lines is tens of KiB.
pub(crate) const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Mode of the files pen creates (before the umask): the owner and its group may read them;
/// logs hold client addresses and request lines, so others may not.
pub(crate) const FILE_MODE: u32 = 0o640;

/// Why a named file was refused before anything was read or written.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The last component is a symbolic link.
    #[error(
        "a symbolic link (refused: pen does not follow links for the files it is told to open)"
    )]
    Symlink,
    /// A FIFO, device, directory or socket.
    #[error("a {0}, not a regular file (refused)")]
    NotRegular(&'static str),
    /// Larger than the cap for its kind.
    #[error("larger than {0} bytes (the limit for this kind of file)")]
    TooLarge(u64),
}

impl From<Refused> for io::Error {
    fn from(r: Refused) -> io::Error {
        let kind = match r {
            Refused::TooLarge(_) => io::ErrorKind::InvalidData,
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, r)
    }
}

/// What kind of non-regular file `t` is, for the error.
fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else if t.is_symlink() {
        "symbolic link"
    } else {
        "special file"
    }
}

/// `Ok` for a regular file, the refusal otherwise.
fn regular(t: std::fs::FileType) -> Result<(), Refused> {
    if t.is_file() {
        Ok(())
    } else if t.is_symlink() {
        Err(Refused::Symlink)
    } else {
        Err(Refused::NotRegular(kind_of(t)))
    }
}

/// An open error, with `ELOOP` from `O_NOFOLLOW` named as the refused link it is.
fn open_error(e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        Refused::Symlink.into()
    } else {
        e
    }
}

/// Reads the whole of `path`, a regular file of at most `cap` bytes. Opened non-blocking (so a
/// FIFO cannot stall the caller) and, unless `follow`, without following a symbolic link as
/// the last component; the opened descriptor is checked (fstat), so what is read is what was
/// checked.
///
/// # Errors
/// The open or read error, or a [`Refused`] (as an `io::Error`) for a link, a non-regular file
/// or a file over the cap.
pub(crate) fn read_regular(path: &Path, cap: u64, follow: bool) -> io::Result<Vec<u8>> {
    let flags = libc::O_NONBLOCK | if follow { 0 } else { libc::O_NOFOLLOW };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(open_error)?;
    let meta = file.metadata()?;
    regular(meta.file_type())?;
    if meta.len() > cap {
        return Err(Refused::TooLarge(cap).into());
    }
    let mut out = Vec::new();
    // The size may grow after the fstat: the cap still holds.
    file.take(cap.saturating_add(1)).read_to_end(&mut out)?;
    if u64::try_from(out.len()).unwrap_or(u64::MAX) > cap {
        return Err(Refused::TooLarge(cap).into());
    }
    Ok(out)
}

/// Opens `path` for appending (the access log): created with mode [`FILE_MODE`] if missing,
/// never through a symbolic link, a regular file only.
///
/// # Errors
/// The open error, or a [`Refused`] for a link or a non-regular file.
pub(crate) fn open_append(path: &Path) -> io::Result<File> {
    // `/dev/null` (logs discarded) is the one device allowed; any other is refused before it
    // is opened (appending to a disk device as root would destroy it).
    let null = path == Path::new("/dev/null");
    let device_ok = |t: std::fs::FileType| null && t.is_char_device();
    match std::fs::symlink_metadata(path) {
        Ok(m) if !device_ok(m.file_type()) => regular(m.file_type())?,
        _ => {}
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(open_error)?;
    let t = file.metadata()?.file_type();
    if !device_ok(t) {
        regular(t)?;
    }
    Ok(file)
}

/// Refuses a target that exists and is a symbolic link or not a regular file.
fn check_target(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(regular(m.file_type())?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Replaces `path` with `bytes` atomically (temporary file, sync, rename), mode [`FILE_MODE`].
///
/// # Errors
/// [`Refused`] when the target is a symbolic link or not a regular file (it is left alone), or
/// the I/O error of creating, writing or renaming (the temporary file is then removed).
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace_keeping(path, bytes).map(drop)
}

/// [`write_atomically`], returning the new file still open (the pid file keeps it, to empty it
/// at exit when it can no longer be removed: the descriptor is the file pen created, never
/// what a link points to).
///
/// # Errors
/// As [`write_atomically`].
pub(crate) fn replace_keeping(path: &Path, bytes: &[u8]) -> io::Result<File> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    check_target(path)?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    // A leftover of an earlier crash with this pid: ours to remove (unlink never follows).
    let _ = std::fs::remove_file(&tmp);
    let created = OpenOptions::new()
        .write(true)
        .create_new(true) // O_CREAT | O_EXCL: never an existing file or a link
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp);
    let mut f = created.map_err(open_error)?;
    let result = (|| {
        f.write_all(bytes)?;
        f.sync_all()?;
        // Renaming replaces the directory entry: a link put there meanwhile is replaced, never
        // written through.
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(f)
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;
