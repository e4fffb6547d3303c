//! Outboards on disk, and data files read by position.
//!
//! bao-tree's own file outboard needs `&mut` to write; ours writes with `pwrite` through a shared `&File`, so
//! several download workers can record verified hash pairs of one blob at once without a lock (they touch
//! disjoint 64-byte slots, and the same bytes where their proofs overlap).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bao_tree::io::sync::{Outboard, OutboardMut, ReadAt, Size};
use bao_tree::{BaoTree, BlockSize, TreeNode};

/// 16 KiB chunk groups: one hash pair per 16 KiB of data (outboard = 1/256 of the data).
pub(crate) const BLOCK_SIZE: BlockSize = BlockSize::from_chunk_log(4);

/// A pre-order outboard in a file.
#[derive(Clone, Debug)]
pub(crate) struct FileOutboard {
    pub(crate) root: blake3::Hash,
    pub(crate) tree: BaoTree,
    pub(crate) file: Arc<File>,
}

impl Outboard for FileOutboard {
    fn root(&self) -> blake3::Hash {
        self.root
    }
    fn tree(&self) -> BaoTree {
        self.tree
    }
    fn load(&self, node: TreeNode) -> io::Result<Option<(blake3::Hash, blake3::Hash)>> {
        let Some(offset) = self.tree.pre_order_offset(node) else {
            return Ok(None);
        };
        let mut buf = [0u8; 64];
        match FileExt::read_exact_at(&*self.file, &mut buf, offset * 64) {
            Ok(()) => {}
            // A slot past the end of a short file is not there yet: zeros never verify.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => buf = [0; 64],
            Err(e) => return Err(e),
        }
        let mut l = [0u8; 32];
        let mut r = [0u8; 32];
        l.copy_from_slice(&buf[..32]);
        r.copy_from_slice(&buf[32..]);
        Ok(Some((blake3::Hash::from_bytes(l), blake3::Hash::from_bytes(r))))
    }
}

impl OutboardMut for FileOutboard {
    fn save(&mut self, node: TreeNode, pair: &(blake3::Hash, blake3::Hash)) -> io::Result<()> {
        self.save_shared(node, pair)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

impl FileOutboard {
    pub(crate) fn save_shared(&self, node: TreeNode, pair: &(blake3::Hash, blake3::Hash)) -> io::Result<()> {
        let Some(offset) = self.tree.pre_order_offset(node) else {
            return Ok(());
        };
        let mut buf = [0u8; 64];
        buf[..32].copy_from_slice(pair.0.as_bytes());
        buf[32..].copy_from_slice(pair.1.as_bytes());
        self.file.write_all_at(&buf, offset * 64)
    }
}

/// An outboard served from memory (complete blobs: their outboard never changes) or from its file (partial
/// blobs: slots are filled as pieces verify).
#[derive(Debug)]
pub(crate) enum ServedOutboard {
    File(FileOutboard),
    Mem(bao_tree::io::outboard::PreOrderMemOutboard<bytes::Bytes>),
}

impl Outboard for ServedOutboard {
    fn root(&self) -> blake3::Hash {
        match self {
            Self::File(o) => o.root(),
            Self::Mem(o) => o.root,
        }
    }
    fn tree(&self) -> BaoTree {
        match self {
            Self::File(o) => o.tree(),
            Self::Mem(o) => o.tree,
        }
    }
    fn load(&self, node: TreeNode) -> io::Result<Option<(blake3::Hash, blake3::Hash)>> {
        match self {
            Self::File(o) => o.load(node),
            Self::Mem(o) => o.load(node),
        }
    }
}

impl FileOutboard {
    /// Writes hash pairs `(byte offset, pair)`, merging adjacent slots into one `pwrite` each.
    pub(crate) fn write_pairs(&self, pairs: &mut [(u64, [u8; 64])]) -> io::Result<()> {
        pairs.sort_unstable_by_key(|p| p.0);
        let mut run: Vec<u8> = Vec::with_capacity(pairs.len() * 64);
        let mut run_start = 0;
        for (off, bytes) in pairs.iter() {
            if !run.is_empty() && run_start + run.len() as u64 != *off {
                self.file.write_all_at(&run, run_start)?;
                run.clear();
            }
            if run.is_empty() {
                run_start = *off;
            }
            run.extend_from_slice(bytes);
        }
        if !run.is_empty() {
            self.file.write_all_at(&run, run_start)?;
        }
        Ok(())
    }
}

/// A window of a data file already in memory (the piece being encoded), with the file behind it for anything
/// outside the window: one `pread` per piece instead of one per 16 KiB chunk group.
#[derive(Debug)]
pub(crate) struct WindowData<'a> {
    pub(crate) file: DataFile<'a>,
    pub(crate) base: u64,
    pub(crate) window: &'a [u8],
}

impl ReadAt for WindowData<'_> {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        if pos >= self.base {
            let start = (pos - self.base) as usize;
            if let Some(src) = self.window.get(start..start.saturating_add(buf.len())) {
                buf.copy_from_slice(src);
                return Ok(buf.len());
            }
        }
        self.file.read_at(pos, buf)
    }
}

impl Size for WindowData<'_> {
    fn size(&self) -> io::Result<Option<u64>> {
        Ok(Some(self.file.size))
    }
}

/// A data file of known size, read by position.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DataFile<'a> {
    pub(crate) file: &'a File,
    pub(crate) size: u64,
}

impl ReadAt for DataFile<'_> {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        FileExt::read_at(self.file, buf, pos)
    }
}

impl Size for DataFile<'_> {
    fn size(&self) -> io::Result<Option<u64>> {
        Ok(Some(self.size))
    }
}

/// Computes the root hash and the pre-order outboard of `size` bytes read from `data`.
pub(crate) fn compute(data: impl io::Read, size: u64) -> io::Result<(blake3::Hash, Vec<u8>)> {
    use bao_tree::io::outboard::PreOrderOutboard;
    use bao_tree::io::sync::CreateOutboard;
    let reader = io::BufReader::with_capacity(1 << 20, data);
    let ob = PreOrderOutboard::<Vec<u8>>::create_sized(reader, size, BLOCK_SIZE)?;
    Ok((ob.root, ob.data))
}
