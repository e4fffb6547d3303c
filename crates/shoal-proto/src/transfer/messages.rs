//! The messages of `/shoal/transfer/1`.
//!
//! A downloader opens one stream per provider and pipelines requests on it; the provider answers each request
//! in order. `Have` asks which ranges of a blob the provider can serve (all of it for a complete blob, the
//! verified ranges for one it is still downloading). `Get` asks for one chunk range; the answer is a `Data`
//! frame announcing the payload length, followed by that many raw bytes: the bao encoding of the range, i.e.
//! the data interleaved with the hash pairs that prove it against the blob id. Raw bytes keep bulk data out of
//! postcard (no copy, no per-frame allocation); the receiver bounds the length by the range it asked for.
//!
//! `Cancel` withdraws an earlier `Get` whose piece the downloader got elsewhere meanwhile (end game, a slow
//! provider's piece fetched from another). It has no answer of its own: the withdrawn `Get` is answered
//! `Cancelled` instead of `Data` if its data has not started to go out, so the order of answers holds and a
//! provider behind an upload cap spends its bandwidth on pieces someone still needs. `Cancel` and
//! `Cancelled` came after the first two requests; a peer that does not know them closes the stream, as for
//! any frame it cannot decode.

use serde::{Deserialize, Serialize};

use super::layout::{CHUNK_GROUP, ChunkSpan, MAX_PIECE};

/// libp2p protocol id.
pub const PROTOCOL: &str = "/shoal/transfer/1";

/// Largest control frame (requests, `Have` answers).
pub const MAX_FRAME: usize = 64 * 1024;

/// Largest chunk range a provider serves in one `Get`.
pub const MAX_GET_CHUNKS: u64 = MAX_PIECE / super::layout::CHUNK;

/// Largest `Data` payload: a full piece, one hash pair per chunk group inside it, and the path from the root
/// (at most 64 levels).
pub const MAX_PAYLOAD: u64 = MAX_PIECE + 64 * (MAX_PIECE / CHUNK_GROUP + 64);

/// Most ranges a `Have` answer lists; a provider with more sends the first ones (still the truth, not all of it).
pub const MAX_HAVE_SPANS: usize = 2048;

/// A blob id on the wire: the 32-byte BLAKE3 hash.
pub type WireId = [u8; 32];

/// Downloader to provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Which ranges of `id` can you serve?
    Have {
        /// Blob id.
        id: WireId,
    },
    /// Send chunks `span` of `id`, with proofs.
    Get {
        /// Blob id.
        id: WireId,
        /// Chunk range, at most [`MAX_GET_CHUNKS`] long.
        span: ChunkSpan,
    },
    /// Withdraw the oldest unanswered `Get` of exactly this `id` and `span` (no answer; nothing happens if
    /// there is none, e.g. because its data is already on the way).
    Cancel {
        /// Blob id.
        id: WireId,
        /// The range of the `Get`.
        span: ChunkSpan,
    },
}

/// Provider to downloader, one per request, in request order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The provider has (parts of) the blob.
    Have {
        /// Blob size in bytes.
        size: u64,
        /// Chunk ranges the provider can serve now.
        spans: Vec<ChunkSpan>,
        /// The provider says this blob is a collection (a folder listing). A hint: the downloader verifies
        /// the bytes like any others and then checks that they decode as a collection.
        collection: bool,
    },
    /// The provider does not have this blob (or no longer: a shared file changed).
    NotFound,
    /// `len` raw bytes of bao encoding follow.
    Data {
        /// Payload length, at most [`MAX_PAYLOAD`].
        len: u64,
    },
    /// The request was understood but refused.
    Refused {
        /// Why, for the downloader's log.
        reason: String,
    },
    /// The answer to a `Get` the downloader withdrew with `Cancel` before its data went out.
    Cancelled,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire;

    #[test]
    fn worst_case_have_fits_in_a_frame() {
        let spans = vec![ChunkSpan { start: u64::MAX, end: u64::MAX }; MAX_HAVE_SPANS];
        let frame = wire::encode(&Response::Have { size: u64::MAX, spans, collection: true }, MAX_FRAME);
        assert!(frame.is_ok());
    }

    #[test]
    fn requests_and_answers_round_trip() {
        let id = [7; 32];
        let span = ChunkSpan { start: 3, end: 67 };
        for req in [Request::Have { id }, Request::Get { id, span }, Request::Cancel { id, span }] {
            let frame = wire::encode(&req, MAX_FRAME).unwrap();
            assert_eq!(wire::decode::<Request>(&frame, MAX_FRAME).unwrap(), (req, frame.len()));
        }
        for resp in [Response::NotFound, Response::Data { len: 9 }, Response::Cancelled] {
            let frame = wire::encode(&resp, MAX_FRAME).unwrap();
            assert_eq!(wire::decode::<Response>(&frame, MAX_FRAME).unwrap(), (resp, frame.len()));
        }
    }

    #[test]
    fn garbage_is_an_error() {
        for junk in [&[1u8, 3, 0, 0, 0, 9, 9, 9][..], &[1, 1, 0, 0, 0, 200], &[]] {
            assert!(wire::decode::<Request>(junk, MAX_FRAME).is_err());
        }
    }
}
