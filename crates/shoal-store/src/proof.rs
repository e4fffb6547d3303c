//! Proving a blob's size before anything is allocated for it.
//!
//! A BLAKE3 root commits to the length of what it hashes: the tree's shape depends on the length, and the
//! root node is hashed with its own flag. So the last chunk of a blob, with the proof from the root down to
//! it, verifies only against the true size. A downloader asks the provider that claims a size for that
//! chunk before it preallocates the file or trusts the claim (what iroh-blobs does); a provider that lies
//! cannot produce it.

use bao_tree::io::BaoContentItem;
use bao_tree::io::sync::DecodeResponseIter;
use bao_tree::{BaoTree, ChunkNum, ChunkRanges};
use shoal_proto::transfer::{CHUNK, ChunkSpan};

use crate::ContentId;
use crate::outboard::BLOCK_SIZE;

/// The range to ask for to prove that a blob of `id` has `size` bytes: its last chunk. `None` for an empty
/// blob, whose size the id alone proves (see [`empty_is_proven`]).
pub fn last_chunk(size: u64) -> Option<ChunkSpan> {
    let chunks = size.div_ceil(CHUNK);
    (chunks > 0).then(|| ChunkSpan { start: chunks - 1, end: chunks })
}

/// Whether `id` is the id of the empty blob, the one blob whose size needs no proof.
pub fn empty_is_proven(id: &ContentId) -> bool {
    *id == ContentId::of(b"")
}

/// Checks that `encoded` (a provider's answer to a `Get` of [`last_chunk`]`(size)`) proves that `id` has
/// `size` bytes: every hash on the way verifies and data reaches the claimed last byte. `Err` says why not.
pub fn check_size(id: &ContentId, size: u64, encoded: &[u8]) -> Result<(), String> {
    let Some(span) = last_chunk(size) else {
        return if empty_is_proven(id) { Ok(()) } else { Err("the id is not the empty blob's".into()) };
    };
    let tree = BaoTree::new(size, BLOCK_SIZE);
    let ranges = ChunkRanges::from(ChunkNum(span.start)..ChunkNum(span.end));
    let mut reader = encoded;
    let mut reached = 0u64;
    for item in DecodeResponseIter::new(id.hash(), tree, &mut reader, &ranges) {
        match item.map_err(|e| format!("the proof does not verify: {e}"))? {
            BaoContentItem::Parent(_) => {}
            BaoContentItem::Leaf(l) => reached = reached.max(l.offset + l.data.len() as u64),
        }
    }
    if !reader.is_empty() {
        return Err(format!("{} bytes beyond the proof", reader.len()));
    }
    if reached != size {
        return Err(format!("the proof reaches byte {reached}, not {size}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    /// The answer an honest provider of `data` gives to a `Get` of `span`.
    fn encoded(data: &[u8], span: ChunkSpan) -> (ContentId, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("home")).unwrap();
        let id = store.import_bytes(data).unwrap();
        let served = store.open_served(&id).unwrap().unwrap();
        let mut out = Vec::new();
        served.encode(span, &mut out).unwrap();
        (id, out)
    }

    #[test]
    fn the_true_size_is_proven_and_every_other_is_not() {
        for size in [1u64, 1023, 1024, 1025, 16 * 1024, 16 * 1024 + 1, 300_000, 1 << 20] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let span = last_chunk(size).unwrap();
            let (id, proof) = encoded(&data, span);
            assert_eq!(check_size(&id, size, &proof), Ok(()), "size {size}");
            // The honest proof does not verify for any other size, larger or smaller.
            for lie in [size + 1, size * 2, size - 1, size + 1024, 1 << 40] {
                if lie != 0 && lie != size {
                    assert!(check_size(&id, lie, &proof).is_err(), "size {size} claimed as {lie}");
                }
            }
            // Nor does a real proof of other bytes of the claimed size.
            let lie = size + 1;
            let (_, other) = encoded(&vec![0u8; lie as usize], last_chunk(lie).unwrap());
            assert!(check_size(&id, lie, &other).is_err(), "a proof of other bytes");
        }
    }

    #[test]
    fn garbage_and_truncated_proofs_are_refused_without_a_panic() {
        let data = vec![5u8; 40_000];
        let span = last_chunk(40_000).unwrap();
        let (id, proof) = encoded(&data, span);
        for cut in [0, 1, 63, 64, proof.len() / 2, proof.len() - 1] {
            assert!(check_size(&id, 40_000, &proof[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = proof.clone();
        flipped[10] ^= 1;
        assert!(check_size(&id, 40_000, &flipped).is_err());
        let mut longer = proof;
        longer.push(0);
        assert!(check_size(&id, 40_000, &longer).is_err());
    }

    #[test]
    fn an_empty_blob_needs_no_proof_but_only_its_own_id_is_empty() {
        assert_eq!(last_chunk(0), None);
        assert_eq!(check_size(&ContentId::of(b""), 0, &[]), Ok(()));
        assert!(check_size(&ContentId::of(b"x"), 0, &[]).is_err());
    }
}
