//! How a blob is cut into pieces.
//!
//! BLAKE3 hashes 1 KiB *chunks*; Shoal's outboards keep one hash pair per 16 KiB *chunk group* (bao-tree
//! block size 2^4 chunks), so 16 KiB is the smallest unit that can be verified on its own. A *piece* is the
//! unit the scheduler requests: a power of two between 16 KiB and 1 MiB, chosen so that a file has 512 to
//! 1,024 pieces when the bounds allow (BitTorrent's usual count), while a large one keeps per-request
//! overhead low (1 MiB pieces from 1 GiB up). Why that many: in a swarm, a peer can pass a piece on only
//! once it has all of it, so the last pieces to leave the seed take a few piece-times per hop to reach
//! everyone. The simulator measures the distribution of 64 MiB to 100 peers, all else being the node's, at
//! 1.46x the textbook bound with 64 pieces of 1 MiB, 1.20x with 256 of 256 KiB and 1.10x with 1,024 of
//! 64 KiB (1.10-1.13x over other random seeds; docs/RESULTS.md). The price is work per request; with the
//! per-piece costs cut (docs/ARCHITECTURE.md, Transfer), one source sends a 64 MiB file over loopback at
//! about 650 MB/s with 64 KiB pieces, where 256 KiB pieces gave 600 before (README).
//! Each downloader picks its own piece size; peers only ever exchange chunk ranges, so they need not agree.
//!
//! Requests in flight are sized in bytes by each provider's window (`window.rs`: delivery rate times the
//! round trip), not as a count of pieces, so small pieces do not slow a long link.

use serde::{Deserialize, Serialize};

/// Bytes in a BLAKE3 chunk.
pub const CHUNK: u64 = 1024;
/// Bytes in a chunk group: the smallest unit an outboard can verify.
pub const CHUNK_GROUP: u64 = 16 * 1024;
/// Largest piece a downloader asks for in one request.
pub const MAX_PIECE: u64 = 1024 * 1024;
/// A file is cut into at least half this many pieces (when the 16 KiB and 1 MiB bounds allow).
const TARGET_PIECES: u64 = 1024;

/// A half-open range of BLAKE3 chunk numbers, `start..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkSpan {
    /// First chunk.
    pub start: u64,
    /// One past the last chunk.
    pub end: u64,
}

impl ChunkSpan {
    /// True when `other` lies entirely inside `self`.
    pub fn contains(&self, other: &ChunkSpan) -> bool {
        self.start <= other.start && other.end <= self.end
    }
}

/// The piece layout of one blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    size: u64,
    piece_size: u64,
}

impl Layout {
    /// The layout Shoal uses for a blob of `size` bytes.
    pub fn new(size: u64) -> Self {
        let wanted = (size / TARGET_PIECES).next_power_of_two();
        Self { size, piece_size: wanted.clamp(CHUNK_GROUP, MAX_PIECE) }
    }

    /// A layout with a chosen piece size (rounded to a power of two between 16 KiB and 1 MiB), for
    /// experiments; the node uses [`Layout::new`].
    pub fn with_piece_size(size: u64, piece_size: u64) -> Self {
        Self { size, piece_size: piece_size.next_power_of_two().clamp(CHUNK_GROUP, MAX_PIECE) }
    }

    /// Blob size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes per piece (the last piece may be shorter).
    pub fn piece_size(&self) -> u64 {
        self.piece_size
    }

    /// Number of pieces (0 for an empty blob).
    pub fn piece_count(&self) -> u32 {
        // A 1 MiB piece and a u32 index cover 4 PiB; larger blobs are refused when a ticket is decoded.
        u32::try_from(self.size.div_ceil(self.piece_size)).unwrap_or(u32::MAX)
    }

    /// Number of BLAKE3 chunks in the blob.
    pub fn chunk_count(&self) -> u64 {
        self.size.div_ceil(CHUNK)
    }

    /// Byte range of piece `i`.
    pub fn piece_bytes(&self, i: u32) -> std::ops::Range<u64> {
        let start = (i as u64 * self.piece_size).min(self.size);
        start..(start + self.piece_size).min(self.size)
    }

    /// Chunk range of piece `i`.
    pub fn piece_chunks(&self, i: u32) -> ChunkSpan {
        let b = self.piece_bytes(i);
        ChunkSpan { start: b.start / CHUNK, end: b.end.div_ceil(CHUNK) }
    }

    /// Pieces entirely covered by `spans` (e.g. what a peer says it has).
    pub fn pieces_in(&self, spans: &[ChunkSpan]) -> super::Bitfield {
        let mut out = super::Bitfield::new(self.piece_count());
        for i in 0..self.piece_count() {
            let c = self.piece_chunks(i);
            if spans.iter().any(|s| s.contains(&c)) {
                out.set(i);
            }
        }
        out
    }

    /// Chunk spans covering the pieces in `have`, merged where adjacent.
    pub fn spans_of(&self, have: &super::Bitfield) -> Vec<ChunkSpan> {
        let mut out: Vec<ChunkSpan> = Vec::new();
        for i in have.iter() {
            let c = self.piece_chunks(i);
            match out.last_mut() {
                Some(last) if last.end == c.start => last.end = c.end,
                _ => out.push(c),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes() {
        assert_eq!(Layout::new(0).piece_count(), 0);
        assert_eq!(Layout::new(1).piece_size(), CHUNK_GROUP);
        assert_eq!(Layout::new(8 << 20).piece_size(), CHUNK_GROUP);
        assert_eq!(Layout::new(64 << 20).piece_size(), 64 << 10);
        assert_eq!(Layout::new(64 << 20).piece_count(), 1024);
        assert_eq!(Layout::new(256 << 20).piece_size(), 256 << 10);
        assert_eq!(Layout::new(1 << 30).piece_size(), MAX_PIECE);
        assert_eq!(Layout::new(1 << 30).piece_count(), 1024);
        assert_eq!(Layout::new(8 << 30).piece_count(), 8192);
    }

    proptest! {
        #[test]
        fn pieces_tile_the_blob(size in 0u64..(64 << 20)) {
            let l = Layout::new(size);
            let mut next = 0;
            for i in 0..l.piece_count() {
                let b = l.piece_bytes(i);
                prop_assert_eq!(b.start, next);
                prop_assert!(b.end > b.start);
                prop_assert_eq!(b.start % CHUNK_GROUP, 0);
                next = b.end;
            }
            prop_assert_eq!(next, size);
            let full = super::super::Bitfield::full(l.piece_count());
            let spans = l.spans_of(&full);
            prop_assert_eq!(l.pieces_in(&spans), full);
        }
    }
}
