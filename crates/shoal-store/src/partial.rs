//! A download in progress: verify whole pieces, then write them; record what is verified durably.
//!
//! Order of writes: data and outboard slots are written with `pwrite` first; then the verified set in memory
//! grows; a [`Partial::checkpoint`] (every 100 ms or so) writes that set to the catalog. After `kill -9` the
//! page cache still holds every byte written, so the recorded set is true; anything verified after the last
//! checkpoint is fetched again. Checkpoints do not `fsync` (that would stall a fast download on writeback):
//! instead, when a download resumes, the recorded ranges are hashed again against the outboard
//! ([`crate::Store::begin_download`]) and only what still verifies is kept, which also covers a power
//! loss. The finished file is synced before it gets its final name.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bao_tree::io::BaoContentItem;
use bao_tree::io::sync::DecodeResponseIter;
use bao_tree::{ChunkNum, ChunkRanges};
use shoal_proto::transfer::ChunkSpan;

use crate::catalog::{BlobRow, BlobState, Catalog};
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
    data_path: PathBuf,
    outboard: FileOutboard,
    verified: Mutex<Vec<ChunkSpan>>,
    /// Held while a verified piece is written. Pieces from several providers are verified in parallel,
    /// but concurrent `pwrite`s to one file queue on the kernel's inode lock by spinning: with four
    /// sources on two cores that spinning (`rwsem_spin_on_owner`) was 7% of the downloader's CPU.
    /// Waiting here sleeps instead.
    writing: Mutex<()>,
    catalog: Arc<Catalog>,
}

impl std::fmt::Debug for Partial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partial").field("id", &self.id).field("path", &self.data_path).finish()
    }
}

thread_local! {
    /// One piece-sized buffer per (blocking-pool) thread, reused: a fresh megabyte per piece costs a memset
    /// and page faults.
    static PIECE_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
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
        Self { id, size, data, data_path, outboard, verified: Mutex::new(verified), writing: Mutex::new(()), catalog }
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
        self.verified.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Verifies the bao encoding of `span` as a whole and, only if every byte of it verifies, writes its data
    /// and hash pairs. Returns the number of data bytes written.
    pub fn write_piece(&self, span: ChunkSpan, encoded: &[u8]) -> Result<u64, PieceError> {
        let start = (span.start * shoal_proto::transfer::CHUNK).min(self.size);
        let end = (span.end * shoal_proto::transfer::CHUNK).min(self.size);
        // The piece is assembled in memory and written with one pwrite, its hash pairs in merged runs.
        PIECE_BUF.with_borrow_mut(|buf| self.write_piece_with(buf, span, encoded, start, end))
    }

    fn write_piece_with(
        &self,
        buf: &mut Vec<u8>,
        span: ChunkSpan,
        encoded: &[u8],
        start: u64,
        end: u64,
    ) -> Result<u64, PieceError> {
        let tree = self.outboard.tree;
        let ranges = ChunkRanges::from(ChunkNum(span.start)..ChunkNum(span.end));
        let n = (end - start) as usize;
        if buf.len() < n {
            buf.resize(n, 0);
        }
        let data = &mut buf[..n];
        let mut pairs = Vec::new();
        let mut filled = 0u64;
        let mut reader = encoded;
        for item in DecodeResponseIter::new(self.id.hash(), tree, &mut reader, &ranges) {
            match item.map_err(|e| PieceError::Corrupt(e.to_string()))? {
                BaoContentItem::Parent(p) => {
                    if let Some(off) = tree.pre_order_offset(p.node) {
                        let mut b = [0u8; 64];
                        b[..32].copy_from_slice(p.pair.0.as_bytes());
                        b[32..].copy_from_slice(p.pair.1.as_bytes());
                        pairs.push((off * 64, b));
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
        if filled != end - start || (filled == 0 && self.size > 0) {
            return Err(PieceError::Corrupt(format!("answer covers {filled} of {} bytes", end - start)));
        }
        {
            let _turn = self.writing.lock().unwrap_or_else(|p| p.into_inner());
            self.data.write_all_at(data, start).map_err(StoreError::io("writing", &self.data_path))?;
            self.outboard.write_pairs(&mut pairs).map_err(StoreError::io("writing outboard of", &self.data_path))?;
        }
        insert_span(&mut self.verified.lock().unwrap_or_else(|p| p.into_inner()), span);
        Ok(filled)
    }

    /// Records the ranges verified so far in the catalog (see the module docs for why this does not sync).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.catalog.set_verified(&self.id, &self.verified())
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
        match std::fs::hard_link(&self.data_path, final_path) {
            Ok(()) => {
                std::fs::remove_file(&self.data_path).map_err(StoreError::io("removing", &self.data_path))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StoreError::Exists(final_path.into()));
            }
            Err(_) => {
                if std::fs::symlink_metadata(final_path).is_ok() {
                    return Err(StoreError::Exists(final_path.into()));
                }
                std::fs::rename(&self.data_path, final_path).map_err(StoreError::io("renaming", final_path))?;
            }
        }
        let m = std::fs::metadata(final_path).map_err(StoreError::io("reading metadata of", final_path))?;
        self.catalog.put_blob(&BlobRow {
            id: self.id,
            size: self.size,
            data_path: final_path.to_owned(),
            mtime_ns: crate::store::mtime_ns(&m),
            state: BlobState::Complete,
            verified: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests;
