//! The [`Store`] over one data directory, and its content: blobs, their outboards, serving ranges of them,
//! and partial downloads. Shares, downloads, the search index and the registry have their own modules.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use bao_tree::io::sync::encode_ranges;
use bao_tree::{BaoTree, ChunkNum, ChunkRanges};
use shoal_proto::transfer::ChunkSpan;

use crate::blobs::{BlobRow, BlobState};
use crate::catalog::Catalog;
use crate::collection::Entry;
use crate::outboard::{self, BLOCK_SIZE, DataFile, FileOutboard, ServedOutboard, WindowData};
use crate::{ContentId, Partial, StoreError};

/// What was shared or stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BlobInfo {
    /// Content id (BLAKE3).
    pub id: ContentId,
    /// Size in bytes (for a folder: the size of its collection blob).
    pub size: u64,
    /// File or folder name.
    pub name: String,
    /// True for a folder (a collection).
    pub is_collection: bool,
    /// For a folder, the files it holds.
    pub files: Vec<Entry>,
}

/// A blob opened for serving ranges of it.
#[derive(Debug)]
pub struct Served {
    /// Blob size.
    pub size: u64,
    data: File,
    outboard: ServedOutboard,
    /// `None`: complete.
    verified: Option<Vec<ChunkSpan>>,
    /// Modification time the complete file had when it was hashed (checked when opened).
    mtime_ns: Option<i64>,
}

impl Served {
    /// The chunk ranges that can be served.
    pub fn spans(&self) -> Vec<ChunkSpan> {
        match &self.verified {
            None => vec![ChunkSpan { start: 0, end: self.size.div_ceil(shoal_proto::transfer::CHUNK) }],
            Some(v) => v.clone(),
        }
    }

    /// True for a complete blob (a partial one grows as its download goes on: open it again for news).
    pub fn is_complete(&self) -> bool {
        self.verified.is_none()
    }

    /// For a complete blob: true while the open file still has the size and modification time it had when
    /// it was hashed. One `fstat` of the open handle, so a peer serving many pieces of one file need not
    /// look it up again for each (a changed file still stops being served: the next [`Store::open_served`]
    /// marks it stale).
    pub fn unchanged(&self) -> bool {
        self.verified.is_none()
            && self.data.metadata().is_ok_and(|m| m.len() == self.size && mtime_ns(&m) == self.mtime_ns)
    }

    /// True when all of `span` can be served.
    pub fn can_serve(&self, span: &ChunkSpan) -> bool {
        span.start < span.end && self.spans().iter().any(|s| s.contains(span))
    }

    /// Appends the bao encoding of `span` (data interleaved with its proof) to `out`.
    pub fn encode(&self, span: ChunkSpan, out: &mut Vec<u8>) -> Result<(), StoreError> {
        use std::os::unix::fs::FileExt;
        let ranges = ChunkRanges::from(ChunkNum(span.start)..ChunkNum(span.end));
        let file = DataFile { file: &self.data, size: self.size };
        let start = (span.start * shoal_proto::transfer::CHUNK).min(self.size);
        let end = (span.end * shoal_proto::transfer::CHUNK).min(self.size);
        WINDOW.with_borrow_mut(|window| {
            let n = (end - start) as usize;
            if window.len() < n {
                window.resize(n, 0);
            }
            self.data.read_exact_at(&mut window[..n], start).map_err(StoreError::io("reading", "<shared file>"))?;
            let data = WindowData { file, base: start, window: &window[..n] };
            encode_ranges(data, &self.outboard, &ranges, out).map_err(|e| StoreError::Io {
                action: "encoding",
                path: PathBuf::from("<blob data>"),
                source: std::io::Error::other(e.to_string()),
            })
        })
    }
}

thread_local! {
    /// The piece being encoded, per (blocking-pool) thread, reused across requests.
    static WINDOW: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Outboards of complete blobs kept in memory, at most this many bytes (a 1 GiB blob's is 4 MiB).
const OUTBOARD_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Shoal's store over one data directory.
pub struct Store {
    home: PathBuf,
    blobs: PathBuf,
    pub(crate) catalog: Arc<Catalog>,
    /// Complete blobs' outboards by id. Content-addressed, so an entry can never be out of date.
    outboards: std::sync::Mutex<(usize, std::collections::HashMap<ContentId, bytes::Bytes>)>,
}

pub(crate) fn mtime_ns(m: &std::fs::Metadata) -> Option<i64> {
    m.modified().ok()?.duration_since(UNIX_EPOCH).ok().map(|d| d.as_nanos() as i64)
}

impl Store {
    /// Opens (creating if needed) the store in `home`.
    pub fn open(home: &Path) -> Result<Self, StoreError> {
        let blobs = home.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(StoreError::io("creating", &blobs))?;
        let catalog = Arc::new(Catalog::open(&home.join("shoal.db"))?);
        let store = Self { home: home.to_path_buf(), blobs, catalog, outboards: Default::default() };
        // Decided by what the catalog holds, not only by the migration that created the index: a crash after
        // that migration committed and before the index was filled must not leave it empty for good.
        if store.catalog.needs_reindex || store.catalog.index_is_behind()? {
            store.reindex()?;
        }
        Ok(store)
    }

    /// Where blobs' outboards (and small imported blobs) live.
    pub(crate) fn blobs_dir(&self) -> &Path {
        &self.blobs
    }

    /// The data directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    pub(crate) fn outboard_path(&self, id: &ContentId) -> PathBuf {
        self.blobs.join(format!("{id}.obao"))
    }

    /// Writes a file of the data directory whole; the name is durable once [`Store::sync_blobs`] ran.
    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        crate::atomic::replace(path, bytes, 0o644).map_err(StoreError::io("writing", path))
    }

    /// Makes the names written into `blobs/` durable, before the catalog records anything that needs them.
    pub(crate) fn sync_blobs(&self) -> Result<(), StoreError> {
        crate::atomic::sync_dir(&self.blobs).map_err(StoreError::io("syncing", &self.blobs))
    }

    /// Hashes a file in place (no copy) and writes its outboard; the caller records the returned row (in
    /// the same transaction as the share that needs it).
    pub(crate) fn hash_in_place(&self, path: &Path) -> Result<BlobRow, StoreError> {
        let file = File::open(path).map_err(StoreError::io("opening", path))?;
        let before = file.metadata().map_err(StoreError::io("reading metadata of", path))?;
        let size = before.len();
        let (root, ob) = outboard::compute(&file, size).map_err(StoreError::io("reading", path))?;
        let after = std::fs::metadata(path).map_err(StoreError::io("reading metadata of", path))?;
        if after.len() != size || mtime_ns(&after) != mtime_ns(&before) {
            return Err(StoreError::NotShareable {
                path: path.to_owned(),
                why: "it changed while it was being hashed; share it again when it is finished".into(),
            });
        }
        if size == 0 {
            // A file that says it is empty but is not (`/proc/self/status` and the like): its size is not
            // known before it is read, and it changes every time.
            let mut probe = [0u8; 1];
            if std::io::Read::read(&mut &file, &mut probe).map_err(StoreError::io("reading", path))? > 0 {
                return Err(StoreError::NotShareable {
                    path: path.to_owned(),
                    why: "it is a special file whose size is not known in advance (such as those under /proc)".into(),
                });
            }
        }
        let id = ContentId(*root.as_bytes());
        if !ob.is_empty() {
            self.write_atomically(&self.outboard_path(&id), &ob)?;
        }
        Ok(BlobRow {
            id,
            size,
            data_path: path.to_owned(),
            mtime_ns: mtime_ns(&after),
            state: BlobState::Complete,
            verified: Vec::new(),
        })
    }

    /// Stores `bytes` (a small blob such as a collection) in the data directory.
    pub fn import_bytes(&self, bytes: &[u8]) -> Result<ContentId, StoreError> {
        let row = self.write_bytes(bytes)?;
        self.sync_blobs()?;
        self.catalog.put_blob(&row)?;
        Ok(row.id)
    }

    /// Writes `bytes` and their outboard into the data directory; the caller records the row.
    pub(crate) fn write_bytes(&self, bytes: &[u8]) -> Result<BlobRow, StoreError> {
        let (root, ob) =
            outboard::compute(bytes, bytes.len() as u64).map_err(|e| StoreError::io("hashing", "<memory>")(e))?;
        let id = ContentId(*root.as_bytes());
        let data = self.blobs.join(format!("{id}.data"));
        self.write_atomically(&data, bytes)?;
        self.write_atomically(&self.outboard_path(&id), &ob)?;
        let m = std::fs::metadata(&data).map_err(StoreError::io("reading metadata of", &data))?;
        Ok(BlobRow {
            id,
            size: bytes.len() as u64,
            data_path: data,
            mtime_ns: mtime_ns(&m),
            state: BlobState::Complete,
            verified: Vec::new(),
        })
    }

    /// Opens a blob for serving, or `None` if this peer cannot serve it (unknown, or a shared file changed
    /// since it was hashed: it is then marked stale and never served under this id again).
    pub fn open_served(&self, id: &ContentId) -> Result<Option<Served>, StoreError> {
        self.open_served_tries(id, 3)
    }

    /// [`Store::open_served`]. A download that completes moves its blob from the partial file to its final
    /// name (and records that) between our reading of the row and our opening of the file: the row is
    /// then read again (`tries` times at most), and only a row that is still the one we read is marked
    /// stale. (Marking it unconditionally made a just-completed download stale, and its downloaders stalled.)
    fn open_served_tries(&self, id: &ContentId, tries: u8) -> Result<Option<Served>, StoreError> {
        let Some(row) = self.catalog.blob(id)? else {
            return Ok(None);
        };
        let verified = match row.state {
            BlobState::Stale => return Ok(None),
            BlobState::Complete => None,
            BlobState::Partial => Some(row.verified.clone()),
        };
        let data = match File::open(&row.data_path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !self.catalog.set_state_stale_if_unchanged(&row)? {
                    return if tries > 0 { self.open_served_tries(id, tries - 1) } else { Ok(None) };
                }
                tracing::warn!(id = %id.short(), path = %row.data_path.display(), "shared file is gone");
                return Ok(None);
            }
            Err(e) => return Err(StoreError::io("opening", &row.data_path)(e)),
        };
        if verified.is_none() {
            let m = data.metadata().map_err(StoreError::io("reading metadata of", &row.data_path))?;
            if m.len() != row.size || mtime_ns(&m) != row.mtime_ns {
                if !self.catalog.set_state_stale_if_unchanged(&row)? {
                    return if tries > 0 { self.open_served_tries(id, tries - 1) } else { Ok(None) };
                }
                tracing::warn!(id = %id.short(), path = %row.data_path.display(),
                    "shared file changed since it was hashed; no longer serving it under its old id");
                return Ok(None);
            }
        }
        let tree = BaoTree::new(row.size, BLOCK_SIZE);
        let ob_path = self.outboard_path(id);
        let outboard = if verified.is_none() {
            let cached = crate::lock(&self.outboards).1.get(id).cloned();
            let bytes = match cached {
                Some(b) => b,
                None => {
                    // A blob of one chunk group (16 KiB or less) has an empty outboard, kept as no file.
                    let b = if tree.outboard_size() == 0 {
                        bytes::Bytes::new()
                    } else {
                        bytes::Bytes::from(std::fs::read(&ob_path).map_err(StoreError::io("reading", &ob_path))?)
                    };
                    let mut cache = crate::lock(&self.outboards);
                    if cache.0 + b.len() > OUTBOARD_CACHE_BYTES {
                        *cache = Default::default();
                    }
                    cache.0 += b.len();
                    cache.1.insert(*id, b.clone());
                    b
                }
            };
            if bytes.len() as u64 != tree.outboard_size() {
                return Err(StoreError::io("reading", &ob_path)(std::io::Error::other("outboard has the wrong size")));
            }
            ServedOutboard::Mem(bao_tree::io::outboard::PreOrderMemOutboard { root: id.hash(), tree, data: bytes })
        } else {
            let ob = File::open(&ob_path).map_err(StoreError::io("opening", &ob_path))?;
            ServedOutboard::File(FileOutboard { root: id.hash(), tree, file: Arc::new(ob) })
        };
        Ok(Some(Served { size: row.size, data, outboard, verified, mtime_ns: row.mtime_ns }))
    }

    /// Where the complete, verified bytes of `id` are, if this peer has them.
    pub fn complete_path(&self, id: &ContentId) -> Result<Option<PathBuf>, StoreError> {
        Ok(self.open_served(id)?.filter(|s| s.verified.is_none()).and(self.catalog.blob(id)?.map(|r| r.data_path)))
    }

    /// Reads a whole complete blob of at most `max` bytes (a collection).
    pub fn read_blob(&self, id: &ContentId, max: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(path) = self.complete_path(id)? else {
            return Ok(None);
        };
        let m = std::fs::metadata(&path).map_err(StoreError::io("reading metadata of", &path))?;
        if m.len() > max {
            return Err(StoreError::Collection(format!("{} bytes is over the limit of {max}", m.len())));
        }
        std::fs::read(&path).map(Some).map_err(StoreError::io("reading", &path))
    }

    /// Starts or resumes the download of `id` (`size` bytes) into `partial_path`. A download of the same id
    /// into the same partial file resumes with the ranges verified before.
    pub fn begin_download(&self, id: &ContentId, size: u64, partial_path: &Path) -> Result<Partial, StoreError> {
        let tree = BaoTree::new(size, BLOCK_SIZE);
        // One writer per blob: the outboard is locked before anything is read or truncated, and stays locked
        // while the `Partial` lives (another process, or another task here, gets `InUse`).
        let ob_path = self.outboard_path(id);
        let ob = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&ob_path)
            .map_err(StoreError::io("creating", &ob_path))?;
        lock_writer(&ob, id, &ob_path)?;
        let mut verified = Vec::new();
        if let Some(row) = self.catalog.blob(id)?
            && row.state == BlobState::Partial
            && row.size == size
            && row.data_path == partial_path
            && std::fs::symlink_metadata(partial_path).is_ok_and(|m| m.is_file() && m.len() == size)
        {
            verified = row.verified;
        }
        let fresh = verified.is_empty();
        let data = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(fresh)
            .custom_flags(libc::O_NOFOLLOW)
            .open(partial_path)
            .map_err(StoreError::io("creating", partial_path))?;
        if fresh && let Err(e) = preallocate(&data, size, partial_path) {
            // Nothing of ours is in it yet: do not leave an empty file behind.
            let _ = std::fs::remove_file(partial_path);
            return Err(e);
        }
        ob.set_len(tree.outboard_size()).map_err(StoreError::io("sizing", &ob_path))?;
        if fresh {
            self.catalog.put_blob(&BlobRow {
                id: *id,
                size,
                data_path: partial_path.to_owned(),
                mtime_ns: None,
                state: BlobState::Partial,
                verified: Vec::new(),
            })?;
        }
        let outboard = FileOutboard { root: id.hash(), tree, file: Arc::new(ob) };
        if !fresh {
            // Trust nothing that was written before a crash: keep only what hashes correctly now.
            verified = revalidate(&outboard, &data, size, &verified, partial_path)?;
        }
        Ok(Partial::new(*id, size, data, partial_path.to_owned(), outboard, verified, self.catalog.clone()))
    }

    /// Completes a download that a crash interrupted between giving the file its final name and recording
    /// it: the catalog says `id` is partial at `partial_path`, and `final_path` is that very file (the same
    /// inode, linked there only once every piece had verified). Records it complete at `final_path`, removes
    /// the partial name, and returns true; false (touching nothing) in every other case.
    pub fn adopt_finished(&self, id: &ContentId, partial_path: &Path, final_path: &Path) -> Result<bool, StoreError> {
        use std::os::unix::fs::MetadataExt;
        let Some(row) = self.catalog.blob(id)? else { return Ok(false) };
        if row.state != BlobState::Partial || row.data_path != partial_path {
            return Ok(false);
        }
        let (Ok(p), Ok(f)) = (std::fs::symlink_metadata(partial_path), std::fs::symlink_metadata(final_path)) else {
            return Ok(false);
        };
        if !(p.is_file() && f.is_file() && p.dev() == f.dev() && p.ino() == f.ino() && f.len() == row.size) {
            return Ok(false);
        }
        crate::partial::record_complete(&self.catalog, id, row.size, final_path)?;
        std::fs::remove_file(partial_path).map_err(StoreError::io("removing", partial_path))?;
        tracing::info!(id = %id.short(), path = %final_path.display(), "completed a download a crash had interrupted");
        Ok(true)
    }

    /// Throws away a partial download of `id` (a cancelled download): its partial file, its outboard and its
    /// record. Complete blobs and user files are never touched.
    pub fn discard_partial(&self, id: &ContentId) -> Result<(), StoreError> {
        let Some(row) = self.catalog.blob(id)? else { return Ok(()) };
        if row.state != BlobState::Partial {
            return Ok(());
        }
        for p in [row.data_path.clone(), self.outboard_path(id)] {
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(StoreError::io("removing", &p)(e)),
                _ => {}
            }
        }
        self.catalog.remove_blob(id)
    }

    /// Forgets a blob (e.g. a cancelled download). Does not touch user files.
    pub fn forget(&self, id: &ContentId) -> Result<(), StoreError> {
        self.catalog.remove_blob(id)
    }

    /// Ids this peer can serve (complete or partial): what it announces as a provider.
    pub fn servable_ids(&self) -> Result<Vec<ContentId>, StoreError> {
        self.catalog.servable_ids()
    }
}

/// The parts of `spans` whose data and outboard still verify against the root.
fn revalidate(
    outboard: &FileOutboard,
    data: &File,
    size: u64,
    spans: &[ChunkSpan],
    path: &Path,
) -> Result<Vec<ChunkSpan>, StoreError> {
    let mut ranges = ChunkRanges::empty();
    for s in spans {
        ranges |= ChunkRanges::from(ChunkNum(s.start)..ChunkNum(s.end));
    }
    let mut out = Vec::new();
    for r in bao_tree::io::sync::valid_ranges(outboard, DataFile { file: data, size }, &ranges) {
        let r = r.map_err(StoreError::io("checking", path))?;
        crate::partial::insert_span(&mut out, ChunkSpan { start: r.start.0, end: r.end.0 });
    }
    Ok(out)
}

/// Reserves the space of a download up front, so that a full disk is reported before the transfer starts.
fn preallocate(file: &File, size: u64, path: &Path) -> Result<(), StoreError> {
    use std::os::fd::AsRawFd;
    if size == 0 {
        return Ok(());
    }
    let Ok(len) = libc::off_t::try_from(size) else {
        return Err(StoreError::io("sizing", path)(std::io::Error::from_raw_os_error(libc::EFBIG)));
    };
    // SAFETY: the fd is open for writing for the duration of the call; posix_fallocate reads no memory of ours.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    match rc {
        0 => Ok(()),
        libc::EOPNOTSUPP | libc::EINVAL => file.set_len(size).map_err(StoreError::io("sizing", path)),
        libc::ENOSPC | libc::EFBIG => Err(StoreError::NoSpace { path: path.to_owned(), size }),
        e => Err(StoreError::io("reserving space for", path)(std::io::Error::from_raw_os_error(e))),
    }
}

/// Takes the exclusive writer's lock on a blob's outboard, without waiting. `flock` locks belong to the open
/// file, so the lock is held as long as the file is open (by the `Partial`) and goes with the process if it
/// dies; two opens in one process exclude each other too. Readers (serving) do not lock.
fn lock_writer(ob: &File, id: &ContentId, path: &Path) -> Result<(), StoreError> {
    use std::os::fd::AsRawFd;
    // SAFETY: `flock` on a file descriptor that `ob` owns and keeps open for the whole call.
    let rc = unsafe { libc::flock(ob.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Err(StoreError::InUse(*id)),
        _ => Err(StoreError::io("locking", path)(e)),
    }
}
