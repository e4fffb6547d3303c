//! A download in progress: verify whole pieces, then write them; record what is verified durably.
//!
//! Order of writes: data and outboard slots are written with `pwrite` first (pieces of 256 KiB and more with
//! `O_DIRECT`, see [`Partial::commit`]); then the verified set in memory grows; a [`Partial::checkpoint`]
//! (every 100 ms or so) writes that set to the catalog. After `kill -9` the page cache (or the disk, for
//! direct writes) still holds every byte written, so the recorded set is true; anything verified after the
//! last checkpoint is fetched again. Checkpoints do not `fsync` (that would stall a fast download on writeback):
//! instead, when a download resumes, the recorded ranges are hashed again against the outboard
//! ([`crate::Store::begin_download`]) and only what still verifies is kept, which also covers a power
//! loss. The finished file is synced before it gets its final name.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bao_tree::io::BaoContentItem;
use bao_tree::io::sync::DecodeResponseIter;
use bao_tree::{ChunkNum, ChunkRanges};
use shoal_proto::transfer::ChunkSpan;

use crate::blobs::{BlobRow, BlobState};
use crate::catalog::Catalog;
use crate::outboard::FileOutboard;
use crate::{ContentId, StoreError};

/// Why a piece was not written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PieceError {
    /// The bytes do not verify against the blob id. Nothing was written.
    #[error("data does not verify against the id: {0}")]
    Corrupt(String),
    /// Writing failed (disk full, I/O error).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A blob being downloaded. Shared between the download's workers (`&self` everywhere).
pub struct Partial {
    id: ContentId,
    size: u64,
    data: File,
    /// The same file opened with `O_DIRECT`, when the file system allows it (see [`Partial::commit`]).
    direct: Option<File>,
    data_path: PathBuf,
    outboard: FileOutboard,
    verified: Mutex<Vec<ChunkSpan>>,
    /// Piece buffers handed back by [`Partial::commit`], reused so that a piece costs no zeroing or faults.
    spare: Mutex<Vec<Vec<u8>>>,
    /// Held while a verified piece is written through the page cache. Pieces from several providers are
    /// verified in parallel, but concurrent buffered `pwrite`s to one file queue on the kernel's inode lock
    /// by spinning: with four sources on two cores that spinning (`rwsem_spin_on_owner`) was 7% of the
    /// downloader's CPU. Waiting here sleeps instead. Direct writes do not take it: they wait for the disk,
    /// which takes several at once. (Hash pairs that two pieces share are the same bytes either way.)
    writing: Mutex<()>,
    catalog: Arc<Catalog>,
}

impl std::fmt::Debug for Partial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partial").field("id", &self.id).field("path", &self.data_path).finish()
    }
}

/// Alignment of offset, length and memory that `O_DIRECT` asks for (the largest logical block size in use).
const DIRECT_ALIGN: usize = 4096;
/// Pieces at least this large are written with `O_DIRECT` (see [`Partial::commit`]).
const DIRECT_MIN: usize = 256 * 1024;
/// Piece buffers kept for reuse at most: the pieces a download verifies ahead of its writes.
const SPARE_BUFFERS: usize = 8;

/// A piece every byte of which verified, not yet written: [`Partial::verify`], then [`Partial::commit`].
pub struct VerifiedPiece {
    span: ChunkSpan,
    /// Offset of the piece in the blob.
    start: u64,
    /// The piece's bytes are `buf[at..at + len]`, `at` chosen so that they start on a [`DIRECT_ALIGN`] boundary.
    buf: Vec<u8>,
    at: usize,
    len: usize,
    /// Outboard hash pairs the proof carried: (offset in the outboard, pair).
    pairs: Vec<(u64, [u8; 64])>,
}

impl VerifiedPiece {
    /// Data bytes in the piece.
    pub fn len(&self) -> u64 {
        self.len as u64
    }

    /// Whether the piece is empty (only an empty blob's is).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.at..self.at + self.len]
    }
}

impl std::fmt::Debug for VerifiedPiece {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedPiece").field("span", &self.span).field("len", &self.len).finish()
    }
}

/// Adds `span` to a sorted list of disjoint spans, merging neighbours.
pub(crate) fn insert_span(spans: &mut Vec<ChunkSpan>, span: ChunkSpan) {
    spans.push(span);
    spans.sort_by_key(|s| s.start);
    let mut out: Vec<ChunkSpan> = Vec::with_capacity(spans.len());
    for s in spans.drain(..) {
        match out.last_mut() {
            Some(last) if s.start <= last.end => last.end = last.end.max(s.end),
            _ => out.push(s),
        }
    }
    *spans = out;
}

impl Partial {
    pub(crate) fn new(
        id: ContentId,
        size: u64,
        data: File,
        data_path: PathBuf,
        outboard: FileOutboard,
        verified: Vec<ChunkSpan>,
        catalog: Arc<Catalog>,
    ) -> Self {
        // Large pieces are written around the page cache (see `commit`). A file system without O_DIRECT
        // refuses the open; then every write goes through the page cache.
        #[cfg(target_os = "linux")]
        let direct = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECT)
            .open(&data_path)
            .ok();
        #[cfg(not(target_os = "linux"))]
        let direct = None;
        Self {
            id,
            size,
            data,
            direct,
            data_path,
            outboard,
            verified: Mutex::new(verified),
            spare: Mutex::new(Vec::new()),
            writing: Mutex::new(()),
            catalog,
        }
    }

    /// From now on every write goes through the page cache (the `direct_writes` setting is off).
    pub fn without_direct_writes(mut self) -> Self {
        self.direct = None;
        self
    }

    /// Blob id.
    pub fn id(&self) -> ContentId {
        self.id
    }

    /// Blob size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Where the bytes are being written.
    pub fn data_path(&self) -> &Path {
        &self.data_path
    }

    /// Chunk ranges verified so far (including those not yet checkpointed).
    pub fn verified(&self) -> Vec<ChunkSpan> {
        crate::lock(&self.verified).clone()
    }

    /// Verifies the bao encoding of `span` as a whole and, only if every byte of it verifies, writes its data
    /// and hash pairs. Returns the number of data bytes written. [`Partial::verify`] then [`Partial::commit`].
    pub fn write_piece(&self, span: ChunkSpan, encoded: &[u8]) -> Result<u64, PieceError> {
        let piece = self.verify(span, encoded)?;
        Ok(self.commit(piece)?)
    }

    /// Verifies the bao encoding of `span` as a whole and assembles its data in memory; nothing is written.
    pub fn verify(&self, span: ChunkSpan, encoded: &[u8]) -> Result<VerifiedPiece, PieceError> {
        let start = (span.start * shoal_proto::transfer::CHUNK).min(self.size);
        let end = (span.end * shoal_proto::transfer::CHUNK).min(self.size);
        let len = (end - start) as usize;
        let mut buf = crate::lock(&self.spare).pop().unwrap_or_default();
        if buf.len() < len + DIRECT_ALIGN {
            buf.resize(len + DIRECT_ALIGN, 0);
        }
        let at = buf.as_ptr().align_offset(DIRECT_ALIGN).min(DIRECT_ALIGN);
        let mut piece = VerifiedPiece { span, start, buf, at, len, pairs: Vec::new() };
        match self.decode_into(&mut piece, encoded) {
            Ok(()) => Ok(piece),
            Err(e) => {
                self.give_back(piece.buf);
                Err(e)
            }
        }
    }

    fn decode_into(&self, piece: &mut VerifiedPiece, encoded: &[u8]) -> Result<(), PieceError> {
        let tree = self.outboard.tree;
        let (span, start, len) = (piece.span, piece.start, piece.len);
        let ranges = ChunkRanges::from(ChunkNum(span.start)..ChunkNum(span.end));
        let data = &mut piece.buf[piece.at..piece.at + len];
        let mut filled = 0u64;
        let mut reader = encoded;
        for item in DecodeResponseIter::new(self.id.hash(), tree, &mut reader, &ranges) {
            match item.map_err(|e| PieceError::Corrupt(e.to_string()))? {
                BaoContentItem::Parent(p) => {
                    if let Some(off) = tree.pre_order_offset(p.node) {
                        let mut b = [0u8; 64];
                        b[..32].copy_from_slice(p.pair.0.as_bytes());
                        b[32..].copy_from_slice(p.pair.1.as_bytes());
                        piece.pairs.push((off * 64, b));
                    }
                }
                BaoContentItem::Leaf(l) => {
                    let at = l.offset.checked_sub(start).map(|a| a as usize);
                    let dst = at.and_then(|a| data.get_mut(a..a + l.data.len()));
                    let Some(dst) = dst else {
                        return Err(PieceError::Corrupt(format!("leaf at {} is outside the piece", l.offset)));
                    };
                    dst.copy_from_slice(&l.data);
                    filled += l.data.len() as u64;
                }
            }
        }
        if !reader.is_empty() {
            return Err(PieceError::Corrupt(format!("{} bytes beyond the requested range", reader.len())));
        }
        if filled != len as u64 || (filled == 0 && self.size > 0) {
            return Err(PieceError::Corrupt(format!("answer covers {filled} of {len} bytes")));
        }
        Ok(())
    }

    /// Whether [`Partial::commit`] of `piece` waits for the disk (an `O_DIRECT` write), so that a caller on
    /// an async runtime should run it on a blocking thread. Other pieces are copied into the page cache,
    /// which is quick enough to do in place.
    pub fn commit_waits_for_disk(&self, piece: &VerifiedPiece) -> bool {
        self.direct.is_some()
            && piece.len >= DIRECT_MIN
            && piece.len.is_multiple_of(DIRECT_ALIGN)
            && piece.start.is_multiple_of(DIRECT_ALIGN as u64)
    }

    /// Writes a verified piece's data and hash pairs and counts it as verified. Returns its data bytes.
    ///
    /// Large aligned pieces go to the disk with `O_DIRECT`, not through the page cache. Why: writing into the
    /// page cache fills pages the kernel has to find and clear first, and that cost is not steady. On the
    /// development machine (a VM whose free memory goes back to the host) `dd` of 1 GiB into the page cache
    /// took 0.19 s of CPU right after a delete and 1.5 s after a pause of 5 s, against 0.12 s with
    /// `O_DIRECT` either way (and 2 GB/s of disk). Shoal's downloads were 400-600 MB/s whenever they met such
    /// pages and 1,100-1,300 MB/s otherwise; the copy into the page cache was then most of the downloader's
    /// CPU. Writing straight from the verified buffer also leaves the page cache to the user's working set,
    /// as a "disable OS cache" option does in BitTorrent clients, and leaves the final `fsync` little to do.
    pub fn commit(&self, mut piece: VerifiedPiece) -> Result<u64, StoreError> {
        let direct = if self.commit_waits_for_disk(&piece) { self.direct.as_ref() } else { None };
        {
            // Direct writes do not queue on the page cache's locks, and the disk takes several at once.
            let _turn = direct.is_none().then(|| crate::lock(&self.writing));
            let wrote = match direct {
                // A file system may still refuse a direct write (EINVAL): the page cache always takes it.
                Some(d) => d.write_all_at(piece.data(), piece.start).or_else(|e| match e.raw_os_error() {
                    Some(libc::EINVAL) => self.data.write_all_at(piece.data(), piece.start),
                    _ => Err(e),
                }),
                None => self.data.write_all_at(piece.data(), piece.start),
            };
            wrote.map_err(StoreError::io("writing", &self.data_path))?;
            self.outboard
                .write_pairs(&mut piece.pairs)
                .map_err(StoreError::io("writing outboard of", &self.data_path))?;
        }
        insert_span(&mut crate::lock(&self.verified), piece.span);
        let len = piece.len();
        self.give_back(piece.buf);
        Ok(len)
    }

    fn give_back(&self, buf: Vec<u8>) {
        let mut spare = crate::lock(&self.spare);
        if spare.len() < SPARE_BUFFERS {
            spare.push(buf);
        }
    }

    /// Records the ranges verified so far in the catalog (see the module docs for why this does not sync).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.catalog.set_verified(&self.id, &self.verified())
    }

    /// Hashes the whole file again from the disk: `Err` unless it is the blob's id (the file changed under
    /// the download, by the disk or another program; see `recheck_on_finish`).
    pub fn recheck(&self) -> Result<(), StoreError> {
        use std::io::Read;
        let mut f = File::open(&self.data_path).map_err(StoreError::io("opening", &self.data_path))?;
        let mut h = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut left = self.size;
        while left > 0 {
            let n =
                f.read(&mut buf[..left.min(1 << 20) as usize]).map_err(StoreError::io("reading", &self.data_path))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            left -= n as u64;
        }
        if left > 0 || *h.finalize().as_bytes() != *self.id.as_bytes() {
            return Err(StoreError::Collection(format!(
                "{} changed on disk during the download (it no longer hashes to {}); run the same command to fetch it again",
                self.data_path.display(),
                self.id
            )));
        }
        Ok(())
    }

    /// Completes the download: checks every chunk is verified, moves the file to `final_path` (which must not
    /// exist: it is never overwritten) and records the blob as complete there, so this peer keeps serving it.
    pub fn finish(&self, final_path: &Path) -> Result<(), StoreError> {
        let total = self.size.div_ceil(shoal_proto::transfer::CHUNK);
        let spans = self.verified();
        let complete = self.size == 0 || spans.iter().any(|s| s.start == 0 && s.end >= total);
        if !complete {
            return Err(StoreError::Collection(format!("download of {} is not complete", self.id)));
        }
        self.data.sync_data().map_err(StoreError::io("syncing", &self.data_path))?;
        self.outboard.file.sync_data().map_err(StoreError::io("syncing outboard of", &self.data_path))?;
        self.checkpoint()?;
        // A hard link never replaces an existing file; fall back to a checked rename where links are unsupported.
        let linked = match std::fs::hard_link(&self.data_path, final_path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StoreError::Exists(final_path.into()));
            }
            Err(_) => {
                if std::fs::symlink_metadata(final_path).is_ok() {
                    return Err(StoreError::Exists(final_path.into()));
                }
                std::fs::rename(&self.data_path, final_path).map_err(StoreError::io("renaming", final_path))?;
                false
            }
        };
        // A crash here leaves the final name and the partial file as one file (one inode) while the catalog
        // still says partial: `Store::adopt_finished` recognises exactly that and completes the change.
        crate::crash::point("finish-after-link");
        record_complete(&self.catalog, &self.id, self.size, final_path)?;
        if linked {
            std::fs::remove_file(&self.data_path).map_err(StoreError::io("removing", &self.data_path))?;
        }
        let dir = final_path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        crate::atomic::sync_dir(dir).map_err(StoreError::io("syncing", dir))
    }
}

/// Records blob `id` as complete at `path` (where a download put it).
pub(crate) fn record_complete(catalog: &Catalog, id: &ContentId, size: u64, path: &Path) -> Result<(), StoreError> {
    let m = std::fs::metadata(path).map_err(StoreError::io("reading metadata of", path))?;
    catalog.put_blob(&BlobRow {
        id: *id,
        size,
        data_path: path.to_owned(),
        mtime_ns: crate::store::mtime_ns(&m),
        state: BlobState::Complete,
        verified: Vec::new(),
    })
}

#[cfg(test)]
mod tests;
