//! The peer's persistent identity: an ed25519 key in the data directory, readable by its owner only.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use libp2p::identity::Keypair;

use crate::NetError;

/// Loads the key at `path`, or creates one (mode 0600) if there is none.
pub fn load_or_create(path: &Path) -> Result<Keypair, NetError> {
    let err = |source| NetError::Identity { path: path.to_owned(), source };
    match std::fs::read(path) {
        Ok(bytes) => {
            let mode = std::fs::metadata(path).map_err(err)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "identity key is readable by others; setting mode 0600");
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
            }
            Keypair::from_protobuf_encoding(&bytes)
                .map_err(|e| NetError::BadIdentity { path: path.to_owned(), why: e.to_string() })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(e) => Err(err(e)),
    }
}

/// Writes a new key under a temporary name and links it to `path` only if nobody else did first: two
/// commands started at once on a fresh data directory then agree on one identity (the loser loads the
/// winner's). The directory is synced so that the name survives a power loss.
fn create(path: &Path) -> Result<Keypair, NetError> {
    let err = |source| NetError::Identity { path: path.to_owned(), source };
    let key = Keypair::generate_ed25519();
    let bytes =
        key.to_protobuf_encoding().map_err(|e| NetError::BadIdentity { path: path.to_owned(), why: e.to_string() })?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut tmp = tempfile::Builder::new().prefix(".identity-").tempfile_in(dir).map_err(err)?;
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    tmp.write_all(&bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    match tmp.persist_noclobber(path) {
        Ok(_) => {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
            Ok(key)
        }
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => load_or_create(path),
        Err(e) => Err(err(e.error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_mode_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("identity.key");
        let a = load_or_create(&p).unwrap();
        let b = load_or_create(&p).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::write(&p, b"garbage").unwrap();
        assert!(matches!(load_or_create(&p), Err(NetError::BadIdentity { .. })));
    }

    #[test]
    fn commands_started_at_once_on_a_fresh_home_agree_on_one_identity() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("home").join("identity.key");
            let ids: Vec<_> = std::thread::scope(|s| {
                let hs: Vec<_> =
                    (0..6).map(|_| s.spawn(|| load_or_create(&p).map(|k| k.public().to_peer_id()))).collect();
                hs.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
            });
            assert!(ids.iter().all(|i| *i == ids[0]), "two identities were made: {ids:?}");
            assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1, "a temporary file was left");
        }
    }
}
