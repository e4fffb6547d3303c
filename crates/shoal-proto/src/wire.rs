//! Framing for Shoal's own protocols.
//!
//! A frame is `[version: u8][length: u32 little-endian][body: postcard]`. The version lets a peer reject a
//! frame from a newer protocol with a clear error instead of misreading it; the length is checked against a
//! per-protocol maximum *before* anything is allocated, so a hostile peer cannot make us buffer gigabytes.
//! Decoding never panics on any input (see the fuzz target in `fuzz/`).

use serde::{Serialize, de::DeserializeOwned};

/// The frame format version written by this build.
pub const VERSION: u8 = 1;

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 5;

/// Why a frame could not be encoded or decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// The peer speaks a frame version we do not know.
    #[error("unsupported frame version {got} (this peer speaks version {VERSION}); upgrade one of the peers")]
    Version {
        /// The version byte received.
        got: u8,
    },
    /// The announced body is larger than the protocol allows.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// Limit for this protocol.
        max: usize,
    },
    /// The input ended before the frame did.
    #[error("truncated frame: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes the frame needs.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The body is not a valid message.
    #[error("malformed frame body: {0}")]
    Malformed(String),
}

/// Parses a frame header and returns the body length, checked against `max`.
pub fn decode_header(header: [u8; HEADER_LEN], max: usize) -> Result<usize, WireError> {
    if header[0] != VERSION {
        return Err(WireError::Version { got: header[0] });
    }
    let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > max {
        return Err(WireError::TooLarge { len, max });
    }
    Ok(len)
}

/// Decodes a message body (the bytes after the header). Trailing bytes are an error: a frame holds exactly
/// one message.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    let (msg, rest) = postcard::take_from_bytes(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::Malformed(format!("{} trailing bytes", rest.len())));
    }
    Ok(msg)
}

/// Encodes one message as a complete frame (header and body).
pub fn encode<T: Serialize>(msg: &T, max: usize) -> Result<Vec<u8>, WireError> {
    let mut out = vec![0u8; HEADER_LEN];
    out = postcard::to_extend(msg, out).map_err(|e| WireError::Malformed(e.to_string()))?;
    let len = out.len() - HEADER_LEN;
    if len > max {
        return Err(WireError::TooLarge { len, max });
    }
    out[0] = VERSION;
    out[1..HEADER_LEN].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(out)
}

/// Decodes one complete frame from the start of `buf`; returns the message and the bytes consumed.
/// This is what a stream reader does in two steps; it exists whole for tests and fuzzing.
pub fn decode<T: DeserializeOwned>(buf: &[u8], max: usize) -> Result<(T, usize), WireError> {
    let header: [u8; HEADER_LEN] = match buf.get(..HEADER_LEN) {
        Some(h) => [h[0], h[1], h[2], h[3], h[4]],
        None => {
            return Err(WireError::Truncated { need: HEADER_LEN, have: buf.len() });
        }
    };
    let len = decode_header(header, max)?;
    let end = HEADER_LEN + len;
    let body = buf.get(HEADER_LEN..end).ok_or(WireError::Truncated { need: end, have: buf.len() })?;
    Ok((decode_body(body)?, end))
}

/// Decodes a buffer that must hold exactly one frame (a gossip message, a stored record): bytes after the
/// frame are an error, not the start of the next one.
pub fn decode_whole<T: DeserializeOwned>(buf: &[u8], max: usize) -> Result<T, WireError> {
    let (msg, used) = decode(buf, max)?;
    if used != buf.len() {
        return Err(WireError::Malformed(format!("{} bytes after the frame", buf.len() - used)));
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let frame = encode(&(7u32, "hi".to_string()), 100).unwrap();
        let ((a, b), used): ((u32, String), usize) = decode(&frame, 100).unwrap();
        assert_eq!((a, b.as_str(), used), (7, "hi", frame.len()));
    }

    #[test]
    fn rejects_wrong_version_and_oversize() {
        let mut frame = encode(&1u8, 100).unwrap();
        assert_eq!(decode_header([2, 0, 0, 0, 0], 10), Err(WireError::Version { got: 2 }));
        assert!(matches!(decode_header([1, 0xff, 0xff, 0xff, 0x7f], 10), Err(WireError::TooLarge { .. })));
        frame.push(0);
        frame[1] += 1;
        assert!(matches!(decode::<u8>(&frame, 100), Err(WireError::Malformed(_))));
        assert!(matches!(encode(&vec![0u8; 200], 100), Err(WireError::TooLarge { .. })));
    }

    #[test]
    fn truncated_input() {
        let frame = encode(&"hello".to_string(), 100).unwrap();
        for cut in 0..frame.len() {
            assert!(decode::<String>(&frame[..cut], 100).is_err());
        }
    }
}
