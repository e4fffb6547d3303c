//! Generated test data and file hashing, shared by `shoal demo` and `shoal-bench`.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` pseudo-random bytes (xorshift64: fast, incompressible enough for a transfer test).
pub(crate) fn write_pseudo_random(path: &Path, bytes: u64) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        for c in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.flush()
}

/// BLAKE3 of a file, as `b3sum` prints it.
pub(crate) fn blake3_file(p: &Path) -> std::io::Result<String> {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(p)?)?;
    Ok(h.finalize().to_hex().to_string())
}
