//! Files pen writes on command (`write`, `web_stats`): written whole to a temporary file in the
//! same directory, synced, then renamed over the target, so a reader never sees half a file
//! and a failed write leaves the old one untouched. One function for every such file.

use std::io::Write as _;
use std::path::Path;

/// Replaces `path` with `bytes` atomically (temporary file, sync, rename).
///
/// # Errors
/// The I/O error of creating, writing or renaming; the temporary file is then removed.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
