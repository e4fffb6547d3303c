//! Collections: how a folder is shared, and how its entry names are kept from escaping the output directory.
//!
//! A collection is a small blob (postcard, versioned) listing `(relative path, id, size)` for every regular
//! file of a folder; its own BLAKE3 hash is the folder's id. Only regular files are listed: a sharer's
//! symlinks are skipped, so a collection can never *be* a symlink. On the receiving side every name is
//! checked before anything is downloaded ([`safe_relative_path`]: no `..`, no absolute paths, no empty or `.`
//! components, no backslashes, NULs or control characters, no Windows device names or drive letters), and
//! every directory on the way to a file is created one component at a time, refusing any component that
//! already exists as a symlink ([`prepare_output`]), so a symlink planted in the output directory cannot
//! redirect a write either.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{ContentId, StoreError};

/// Largest collection blob accepted (about 100,000 entries).
pub const MAX_COLLECTION_BYTES: u64 = 16 * 1024 * 1024;
/// Longest relative path accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

/// One file of a collection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative path, `/`-separated.
    pub path: String,
    /// Content id of the file.
    pub id: ContentId,
    /// Size in bytes.
    pub size: u64,
}

#[derive(Serialize, Deserialize)]
enum Versioned {
    V1(Vec<Entry>),
}

/// A folder's listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Collection {
    /// Files, sorted by path.
    pub entries: Vec<Entry>,
}

/// Why an entry name was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathError {
    /// Empty, or too long.
    #[error("empty or over-long path")]
    Length,
    /// Starts at the root or a drive.
    #[error("absolute path {0:?}")]
    Absolute(String),
    /// Has a `..`, `.` or empty component.
    #[error("path {0:?} has a '..', '.' or empty component")]
    Traversal(String),
    /// Has a character no portable file name has.
    #[error("path {0:?} has a backslash, colon, NUL or control character")]
    BadCharacter(String),
    /// Names a Windows device.
    #[error("path {0:?} names a device (CON, NUL, COM1 ...)")]
    Device(String),
}

fn is_device_name(component: &str) -> bool {
    let stem = component.split('.').next().unwrap_or("").trim_end().to_ascii_uppercase();
    matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$")
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit())
}

/// Checks one entry name and returns it as a relative path that stays inside any directory it is joined to.
pub fn safe_relative_path(s: &str) -> Result<PathBuf, PathError> {
    if s.is_empty() || s.len() > MAX_PATH_BYTES {
        return Err(PathError::Length);
    }
    if s.starts_with('/') {
        return Err(PathError::Absolute(s.to_string()));
    }
    if s.chars().any(|c| c == '\\' || c == ':' || c.is_control()) {
        return Err(PathError::BadCharacter(s.to_string()));
    }
    let mut out = PathBuf::new();
    for part in s.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.len() > 255 {
            return Err(PathError::Traversal(s.to_string()));
        }
        if is_device_name(part) {
            return Err(PathError::Device(s.to_string()));
        }
        out.push(part);
    }
    // Belt and braces: what we built must be plain normal components.
    if !out.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(PathError::Traversal(s.to_string()));
    }
    Ok(out)
}

impl Collection {
    /// Encodes the collection (entries sorted by path).
    pub fn encode(&self) -> Vec<u8> {
        let mut entries = self.entries.clone();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        postcard::to_stdvec(&Versioned::V1(entries)).unwrap_or_default()
    }

    /// Decodes and validates a collection: every name must pass [`safe_relative_path`], no name may appear
    /// twice, and no file may sit where another entry needs a directory.
    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        if bytes.len() as u64 > MAX_COLLECTION_BYTES {
            return Err(StoreError::Collection(format!("{} bytes is over the limit", bytes.len())));
        }
        let Versioned::V1(entries) =
            postcard::from_bytes(bytes).map_err(|e| StoreError::Collection(format!("undecodable: {e}")))?;
        let mut files = BTreeSet::new();
        for e in &entries {
            safe_relative_path(&e.path).map_err(|err| StoreError::Collection(err.to_string()))?;
            if !files.insert(e.path.as_str()) {
                return Err(StoreError::Collection(format!("{:?} listed twice", e.path)));
            }
        }
        for e in &entries {
            let mut prefix = String::new();
            for part in e.path.split('/').collect::<Vec<_>>().split_last().map_or(&[][..], |(_, dirs)| dirs) {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(part);
                if files.contains(prefix.as_str()) {
                    return Err(StoreError::Collection(format!("{prefix:?} is both a file and a directory")));
                }
            }
        }
        Ok(Self { entries })
    }

    /// Sum of the entry sizes.
    pub fn total_size(&self) -> u64 {
        self.entries.iter().map(|e| e.size).fold(0, u64::saturating_add)
    }
}

/// Creates the directories leading to `out_dir/rel` (refusing to pass through any symlink) and returns the
/// final path, which must not exist yet.
pub fn prepare_output(out_dir: &Path, rel: &Path) -> Result<PathBuf, StoreError> {
    let mut cur = out_dir.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    let Some((last, dirs)) = comps.split_last() else {
        return Err(StoreError::Collection("empty entry name".into()));
    };
    for c in dirs {
        let Component::Normal(c) = c else {
            return Err(StoreError::Collection(format!("refusing path {}", rel.display())));
        };
        cur.push(c);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(StoreError::Collection(format!(
                    "{} is a symlink; refusing to write through it",
                    cur.display()
                )));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(StoreError::Collection(format!("{} exists and is not a directory", cur.display())));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&cur).map_err(StoreError::io("creating directory", &cur))?;
            }
            Err(e) => return Err(StoreError::io("checking", &cur)(e)),
        }
    }
    let Component::Normal(last) = last else {
        return Err(StoreError::Collection(format!("refusing path {}", rel.display())));
    };
    cur.push(last);
    if std::fs::symlink_metadata(&cur).is_ok() {
        return Err(StoreError::Exists(cur));
    }
    Ok(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "./a",
            "a/.",
            "",
            "C:/x",
            "a\\..\\b",
            "CON",
            "nul.txt",
            "dir/COM1",
            "lpt9.log",
            "a\0b",
            "new\nline",
        ] {
            assert!(safe_relative_path(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "a/b/c.txt", "Holiday Photos 2024.zip", "console/x", "COM10", ".hidden", "..dots"] {
            assert!(safe_relative_path(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn decode_rejects_hostile_collections() {
        let id = ContentId::of(b"x");
        for paths in [vec!["../x"], vec!["/etc/x"], vec!["a", "a"], vec!["a", "a/b"]] {
            let c = Collection { entries: paths.iter().map(|p| Entry { path: p.to_string(), id, size: 1 }).collect() };
            assert!(Collection::decode(&c.encode()).is_err(), "{paths:?} accepted");
        }
        assert!(Collection::decode(b"\x07garbage").is_err());
    }

    #[test]
    fn prepare_output_refuses_symlinks() {
        let out = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), out.path().join("evil")).unwrap();
        assert!(prepare_output(out.path(), Path::new("evil/x")).is_err());
        std::os::unix::fs::symlink(outside.path().join("t"), out.path().join("t")).unwrap();
        assert!(prepare_output(out.path(), Path::new("t")).is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        let ok = prepare_output(out.path(), Path::new("d/e/f")).unwrap();
        assert_eq!(ok, out.path().join("d/e/f"));
        assert!(out.path().join("d/e").is_dir());
    }

    proptest! {
        #[test]
        fn accepted_paths_stay_inside(s in "[a-z./\\\\:]{0,12}") {
            if let Ok(p) = safe_relative_path(&s) {
                prop_assert!(p.is_relative());
                prop_assert!(p.components().all(|c| matches!(c, Component::Normal(_))));
            }
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Collection::decode(&bytes);
        }
    }
}
