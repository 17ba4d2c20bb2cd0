//! Files only their owner may read: the CLI's token file and a generated signing key.

use std::io::Write as _;
use std::path::Path;

/// Creates `path` (it must not exist: never an existing file, never through a symbolic link)
/// with `bytes`, readable and writable by the owner only (mode `0600` on Unix), and syncs it.
pub(crate) fn write_new_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
