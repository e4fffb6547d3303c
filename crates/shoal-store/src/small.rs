//! Small blobs (a folder's many small files): each arrives whole in one answer, is verified whole, and is
//! written in *batches* that share their syncs. Writing 10,000 files of 4 KiB one by one through
//! [`crate::Partial`] costs a lock, a catalog row, a preallocation, two `fsync`s and a catalog commit per
//! file; here a batch of files costs one `syncfs` before their names appear, one after, and one catalog
//! transaction, and is exactly as durable.
//!
//! Order, so that a crash at any point leaves the old state or the new:
//! 1. every file's data goes to `STAGING/ID.N.partial` (the download's staging folder, beside the output
//!    folder) and its outboard, if it has one, to `blobs/` under a temporary name renamed into place;
//! 2. `syncfs` of the output's and the store's file systems: every byte is on disk;
//! 3. each file is linked to its final name (a link never replaces an existing file), then `syncfs` again:
//!    the names are on disk;
//! 4. one transaction records every blob complete at its final name; the staging names are removed.
//!
//! A crash before 4 leaves final names that the catalog does not know: [`crate::Store::adopt_small`] finds
//! them on the next run by hashing the file (small, so cheap) and records what matches.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use bao_tree::io::BaoContentItem;
use bao_tree::io::sync::DecodeResponseIter;
use bao_tree::{BaoTree, ChunkNum, ChunkRanges};
use shoal_proto::transfer::CHUNK;

use crate::blobs::{self, BlobRow, BlobState};
use crate::outboard::BLOCK_SIZE;
use crate::{ContentId, PieceError, Store, StoreError};

/// The largest blob fetched whole in one answer (one `Get` of at most 1,024 chunks).
pub const MAX_SMALL: u64 = 1024 * CHUNK;

/// A small blob, verified whole, not yet written.
#[derive(Debug)]
pub struct SmallBlob {
    /// Its id.
    pub id: ContentId,
    data: Vec<u8>,
    outboard: Vec<u8>,
}

impl SmallBlob {
    /// Its size.
    pub fn len(&self) -> u64 {
        self.data.len() as u64
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Verifies `encoded`, a provider's answer to a `Get` of all of blob `id` (`size` bytes, at most
/// [`MAX_SMALL`]), and keeps its data and outboard. Nothing is written.
pub fn verify_small(id: &ContentId, size: u64, encoded: &[u8]) -> Result<SmallBlob, PieceError> {
    if size > MAX_SMALL {
        return Err(PieceError::Corrupt(format!("{size} bytes is over the small-blob limit")));
    }
    let tree = BaoTree::new(size, BLOCK_SIZE);
    let mut data = vec![0u8; size as usize];
    let mut outboard = vec![0u8; tree.outboard_size() as usize];
    if size == 0 {
        return if *id == ContentId::of(b"") {
            Ok(SmallBlob { id: *id, data, outboard })
        } else {
            Err(PieceError::Corrupt("the id is not the empty blob's".into()))
        };
    }
    let ranges = ChunkRanges::from(ChunkNum(0)..ChunkNum(size.div_ceil(CHUNK)));
    let mut reader = encoded;
    let mut filled = 0u64;
    for item in DecodeResponseIter::new(id.hash(), tree, &mut reader, &ranges) {
        match item.map_err(|e| PieceError::Corrupt(e.to_string()))? {
            BaoContentItem::Parent(p) => {
                let Some(off) = tree.pre_order_offset(p.node) else { continue };
                let at = (off * 64) as usize;
                let Some(slot) = outboard.get_mut(at..at + 64) else {
                    return Err(PieceError::Corrupt("a hash pair outside the outboard".into()));
                };
                slot[..32].copy_from_slice(p.pair.0.as_bytes());
                slot[32..].copy_from_slice(p.pair.1.as_bytes());
            }
            BaoContentItem::Leaf(l) => {
                let at = l.offset as usize;
                let Some(dst) = data.get_mut(at..at + l.data.len()) else {
                    return Err(PieceError::Corrupt(format!("leaf at {} is outside the blob", l.offset)));
                };
                dst.copy_from_slice(&l.data);
                filled += l.data.len() as u64;
            }
        }
    }
    if !reader.is_empty() || filled != size {
        return Err(PieceError::Corrupt(format!("answer covers {filled} of {size} bytes")));
    }
    Ok(SmallBlob { id: *id, data, outboard })
}

/// Flushes every file system that `dirs` live on (Linux `syncfs`; elsewhere each directory's `fsync`
/// would not cover the files, so the caller has synced them).
fn sync_fs(dirs: &[&Path]) -> Result<(), StoreError> {
    for d in dirs {
        let f = std::fs::File::open(d).map_err(StoreError::io("opening", *d))?;
        // SAFETY: `syncfs` on a descriptor `f` owns and keeps open for the call.
        if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
            return Err(StoreError::io("syncing", *d)(std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

impl Store {
    /// Writes a batch of verified small blobs to their final paths (`targets`, which must not exist),
    /// through `staging` (a folder on the same file system), durably and in the order of the module docs.
    pub fn finish_small(&self, batch: Vec<(SmallBlob, PathBuf)>, staging: &Path) -> Result<(), StoreError> {
        let mut staged = Vec::with_capacity(batch.len());
        for (n, (blob, target)) in batch.into_iter().enumerate() {
            // Numbered: a folder may hold the same content under two names, in one batch.
            let part = staging.join(format!("{}.{n}.partial", blob.id));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&part)
                .map_err(StoreError::io("creating", &part))?;
            f.write_all(&blob.data).map_err(StoreError::io("writing", &part))?;
            if !blob.outboard.is_empty() {
                let ob = self.outboard_path(&blob.id);
                crate::atomic::replace_unsynced(&ob, &blob.outboard, 0o644).map_err(StoreError::io("writing", &ob))?;
            }
            staged.push((blob.id, blob.len(), part, target));
        }
        sync_fs(&[staging, self.blobs_dir()])?;
        let mut rows = Vec::with_capacity(staged.len());
        for (id, size, part, target) in &staged {
            match std::fs::hard_link(part, target) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(StoreError::Exists(target.clone()));
                }
                Err(e) => return Err(StoreError::io("linking", target)(e)),
            }
            let m = std::fs::metadata(target).map_err(StoreError::io("reading metadata of", target))?;
            rows.push(BlobRow {
                id: *id,
                size: *size,
                data_path: target.clone(),
                mtime_ns: crate::store::mtime_ns(&m),
                state: BlobState::Complete,
                verified: Vec::new(),
            });
        }
        sync_fs(&[staging])?;
        crate::crash::point("small-before-commit");
        self.catalog.tx(|c| rows.iter().try_for_each(|r| blobs::put(c, r)))?;
        for (_, _, part, _) in &staged {
            std::fs::remove_file(part).map_err(StoreError::io("removing", part))?;
        }
        Ok(())
    }

    /// A small blob's final name already holds it (a crash before its batch was recorded, or the same folder
    /// fetched again): checks the bytes against `id` and records it. `Ok(false)`, touching nothing, if
    /// `target` does not exist; `Err(Exists)` if it holds something else.
    pub fn adopt_small(&self, id: &ContentId, size: u64, target: &Path) -> Result<bool, StoreError> {
        let Ok(m) = std::fs::symlink_metadata(target) else { return Ok(false) };
        if !m.is_file() || m.len() != size || size > MAX_SMALL {
            return Err(StoreError::Exists(target.to_owned()));
        }
        let bytes = std::fs::read(target).map_err(StoreError::io("reading", target))?;
        let (root, ob) = crate::outboard::compute(&bytes[..], size).map_err(StoreError::io("hashing", target))?;
        if ContentId(*root.as_bytes()) != *id {
            return Err(StoreError::Exists(target.to_owned()));
        }
        if !ob.is_empty() {
            let path = self.outboard_path(id);
            crate::atomic::write(&path, &ob, 0o644).map_err(StoreError::io("writing", &path))?;
        }
        crate::partial::record_complete(&self.catalog, id, size, target)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(data: &[u8]) -> (tempfile::TempDir, Store, ContentId, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("src")).unwrap();
        let id = store.import_bytes(data).unwrap();
        let chunks = (data.len() as u64).div_ceil(CHUNK).max(1);
        let mut enc = Vec::new();
        store
            .open_served(&id)
            .unwrap()
            .unwrap()
            .encode(shoal_proto::transfer::ChunkSpan { start: 0, end: chunks }, &mut enc)
            .unwrap();
        (dir, store, id, enc)
    }

    #[test]
    fn whole_small_blobs_verify_and_a_batch_lands_recorded_and_servable() {
        let dir = tempfile::tempdir().unwrap();
        let dst = Store::open(&dir.path().join("dst")).unwrap();
        let (out, staging) = (dir.path().join("out"), dir.path().join(".out.shoal-partial"));
        std::fs::create_dir_all(&out).unwrap();
        std::fs::create_dir_all(&staging).unwrap();
        let mut batch = Vec::new();
        let mut keep = Vec::new();
        for (i, size) in
            [1usize, 1024, 4096, 16 * 1024, 16 * 1024 + 1, 300_000, MAX_SMALL as usize].into_iter().enumerate()
        {
            let data = shoal_testkit::random_bytes(size, i as u64);
            let (_d, _s, id, enc) = served(&data);
            let blob = verify_small(&id, size as u64, &enc).unwrap();
            // One byte changed anywhere in the answer: refused.
            let mut bad = enc.clone();
            let n = bad.len();
            bad[n / 2] ^= 1;
            assert!(verify_small(&id, size as u64, &bad).is_err(), "size {size}");
            batch.push((blob, out.join(format!("f{i}"))));
            keep.push((id, data, out.join(format!("f{i}"))));
        }
        dst.finish_small(batch, &staging).unwrap();
        assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0, "staging names removed");
        for (id, data, path) in keep {
            assert_eq!(std::fs::read(&path).unwrap(), data);
            // Recorded complete where it is, and served with a correct outboard.
            assert_eq!(dst.complete_path(&id).unwrap(), Some(path));
            assert!(dst.open_served(&id).unwrap().is_some());
        }
        assert_eq!(dst.check().unwrap(), Vec::new());
    }

    #[test]
    fn a_file_already_in_place_is_adopted_only_if_it_is_that_blob() {
        let dir = tempfile::tempdir().unwrap();
        let dst = Store::open(&dir.path().join("dst")).unwrap();
        let data = shoal_testkit::random_bytes(50_000, 3);
        let id = ContentId::of(&data);
        let p = dir.path().join("f");
        assert!(!dst.adopt_small(&id, 50_000, &p).unwrap(), "nothing there");
        std::fs::write(&p, &data).unwrap();
        assert!(dst.adopt_small(&id, 50_000, &p).unwrap());
        assert_eq!(dst.complete_path(&id).unwrap(), Some(p.clone()));
        let other = dir.path().join("g");
        std::fs::write(&other, vec![0u8; 50_000]).unwrap();
        assert!(matches!(dst.adopt_small(&id, 50_000, &other), Err(StoreError::Exists(_))));
    }
}
