//! Files replaced whole or not at all, even across a crash: the new contents go to a temporary file with a
//! random name in the same directory (so two writers never share one, as they did with a fixed `.tmp`), are
//! synced, renamed over the old file, and then the directory is synced so that the rename itself is
//! durable (without that, a power loss can bring back the old name, or neither).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Replaces `path` with `bytes`, readable and writable as `mode` says (e.g. 0o600 for secrets), and makes
/// the new name durable.
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    replace(path, bytes, mode)?;
    sync_dir(parent(path))
}

/// [`write`] without the directory sync, for many files in one directory: the caller syncs the directory
/// once ([`sync_dir`]) before it records anything that needs them (a share of 10,000 files pays one
/// directory sync, not 10,000).
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    put(path, bytes, mode, true)
}

/// [`replace`] without even the file's own sync, for a caller that syncs the whole file system afterwards
/// (`syncfs`) before anything depends on the file.
pub fn replace_unsynced(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    put(path, bytes, mode, false)
}

fn put(path: &Path, bytes: &[u8], mode: u32, sync: bool) -> std::io::Result<()> {
    let mut tmp = tempfile::Builder::new().prefix(".shoal-").suffix(".tmp").tempfile_in(parent(path))?;
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.write_all(bytes)?;
    if sync {
        tmp.as_file().sync_data()?;
    }
    tmp.persist(path).map(|_| ()).map_err(|e| e.error)
}

fn parent(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Makes the names in `dir` durable (a rename, a link, a new file).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_with_the_mode_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("api.token");
        write(&p, b"first", 0o600).unwrap();
        write(&p, b"second", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "a temporary file was left behind");
    }

    #[test]
    fn writers_at_once_never_mix_contents() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::thread::scope(|s| {
            for i in 0..8u8 {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..20 {
                        write(p, &[i; 4096], 0o644).unwrap();
                    }
                });
            }
        });
        let got = std::fs::read(&p).unwrap();
        assert_eq!(got.len(), 4096);
        assert!(got.iter().all(|b| *b == got[0]), "contents of two writers mixed");
    }
}
