//! Reading and writing [`shoal_proto::wire`] frames on async streams.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use serde::{Serialize, de::DeserializeOwned};
use shoal_proto::wire::{self, HEADER_LEN, WireError};

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// Reads one frame. `Ok(None)` when the stream ended cleanly before a new frame.
pub(crate) async fn read_frame<T: DeserializeOwned, R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<T>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    let n = r.read(&mut header[..1]).await?;
    if n == 0 {
        return Ok(None);
    }
    r.read_exact(&mut header[1..]).await?;
    let len = wire::decode_header(header, max)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(Some(wire::decode_body(&body)?))
}

/// Writes one frame (not flushed).
pub(crate) async fn write_frame<T: Serialize, W: AsyncWrite + Unpin>(
    w: &mut W,
    msg: &T,
    max: usize,
) -> Result<(), FrameError> {
    let bytes = wire::encode(msg, max)?;
    w.write_all(&bytes).await?;
    Ok(())
}
