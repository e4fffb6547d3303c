//! Store round trips: share, serve, verify, resume, refuse corrupt data and changed files.

use super::*;
use crate::Store;
use shoal_proto::transfer::Layout;
use shoal_testkit::random_bytes;
use std::os::unix::fs::FileExt;

struct Env {
    _dirs: Vec<tempfile::TempDir>,
    src: Store,
    dst: Store,
    out: PathBuf,
    id: ContentId,
    bytes: Vec<u8>,
    file: PathBuf,
}

fn env(size: usize) -> Env {
    let (a, b, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let bytes = random_bytes(size, size as u64);
    let file = c.path().join("input.bin");
    std::fs::write(&file, &bytes).unwrap();
    let src = Store::open(a.path()).unwrap();
    let dst = Store::open(b.path()).unwrap();
    let info = src.share_file(&file).unwrap();
    assert_eq!(info.id, ContentId::of(&bytes), "content id must equal BLAKE3 of the bytes");
    let out = c.path().join("out.bin");
    Env { _dirs: vec![a, b, c], src, dst, out, id: info.id, bytes, file }
}

#[test]
fn every_piece_verifies_and_the_output_matches() {
    for size in [0usize, 1, 1024, 16 * 1024 + 1, 3 << 20] {
        let e = env(size);
        let layout = Layout::new(size as u64);
        let partial = e.dst.begin_download(&e.id, size as u64, &e.out.with_extension("part")).unwrap();
        let served = e.src.open_served(&e.id).unwrap().unwrap();
        for i in (0..layout.piece_count()).rev() {
            let span = layout.piece_chunks(i);
            assert!(served.can_serve(&span));
            let mut enc = Vec::new();
            served.encode(span, &mut enc).unwrap();
            assert_eq!(
                partial.write_piece(span, &enc).unwrap(),
                layout.piece_bytes(i).end - layout.piece_bytes(i).start
            );
        }
        partial.finish(&e.out).unwrap();
        assert_eq!(std::fs::read(&e.out).unwrap(), e.bytes, "size {size}");
        // The downloader now serves the blob itself.
        assert!(e.dst.open_served(&e.id).unwrap().is_some());
    }
}

/// Pieces of 256 KiB and more at aligned offsets go around the page cache; the unaligned tail and pieces at
/// odd offsets through it. Either way the bytes on disk are the verified ones.
#[test]
fn large_aligned_pieces_are_written_directly_and_read_back_intact() {
    let size = (1 << 20) + 5000;
    let e = env(size);
    let partial = e.dst.begin_download(&e.id, size as u64, &e.out.with_extension("part")).unwrap();
    let served = e.src.open_served(&e.id).unwrap().unwrap();
    // The temp dir's file system decides whether O_DIRECT is there; ext4 and xfs have it.
    let direct = partial.direct.is_some();
    // (span, written around the page cache if the file system allows)
    let spans = [
        (ChunkSpan { start: 512, end: 768 }, true),
        (ChunkSpan { start: 0, end: 1 }, false),
        (ChunkSpan { start: 1, end: 257 }, false),
        (ChunkSpan { start: 257, end: 512 }, false),
        (ChunkSpan { start: 768, end: 1024 }, true),
        (ChunkSpan { start: 1024, end: 1029 }, false),
    ];
    for (span, big) in spans {
        let mut enc = Vec::new();
        served.encode(span, &mut enc).unwrap();
        let piece = partial.verify(span, &enc).unwrap();
        assert_eq!(partial.commit_waits_for_disk(&piece), big && direct, "{span:?}");
        partial.commit(piece).unwrap();
    }
    assert_eq!(partial.verified(), vec![ChunkSpan { start: 0, end: 1029 }]);
    partial.finish(&e.out).unwrap();
    assert_eq!(std::fs::read(&e.out).unwrap(), e.bytes);
}

/// With the `direct_writes` setting off, even a large aligned piece goes through the page cache.
#[test]
fn without_direct_writes_every_piece_goes_through_the_page_cache() {
    let size = 1 << 20;
    let e = env(size);
    let partial = e.dst.begin_download(&e.id, size as u64, &e.out.with_extension("part")).unwrap();
    let partial = partial.without_direct_writes();
    let served = e.src.open_served(&e.id).unwrap().unwrap();
    for start in [0, 256, 512, 768] {
        let span = ChunkSpan { start, end: start + 256 };
        let mut enc = Vec::new();
        served.encode(span, &mut enc).unwrap();
        let piece = partial.verify(span, &enc).unwrap();
        assert!(!partial.commit_waits_for_disk(&piece));
        partial.commit(piece).unwrap();
    }
    partial.finish(&e.out).unwrap();
    assert_eq!(std::fs::read(&e.out).unwrap(), e.bytes);
}

#[test]
fn corrupt_piece_writes_nothing() {
    let e = env(1 << 20);
    let layout = Layout::new(1 << 20);
    let partial = e.dst.begin_download(&e.id, 1 << 20, &e.out.with_extension("part")).unwrap();
    let served = e.src.open_served(&e.id).unwrap().unwrap();
    let span = layout.piece_chunks(3);
    let mut enc = Vec::new();
    served.encode(span, &mut enc).unwrap();
    for pos in [0, enc.len() / 2, enc.len() - 1] {
        let mut bad = enc.clone();
        bad[pos] ^= 0x40;
        assert!(matches!(partial.write_piece(span, &bad), Err(PieceError::Corrupt(_))));
    }
    assert!(matches!(partial.write_piece(span, &enc[..enc.len() - 1]), Err(PieceError::Corrupt(_))));
    let mut long = enc.clone();
    long.push(0);
    assert!(matches!(partial.write_piece(span, &long), Err(PieceError::Corrupt(_))));
    let on_disk = std::fs::read(partial.data_path()).unwrap();
    let r = layout.piece_bytes(3);
    assert!(on_disk[r.start as usize..r.end as usize].iter().all(|&b| b == 0), "corrupt bytes reached the file");
    assert!(partial.verified().is_empty());
    assert!(partial.finish(&e.out).is_err(), "an incomplete download must not appear under its final name");
    assert!(!e.out.exists());
}

#[test]
fn resume_keeps_checkpointed_ranges_only() {
    let e = env(2 << 20);
    let layout = Layout::new(2 << 20);
    let part_path = e.out.with_extension("part");
    let served = e.src.open_served(&e.id).unwrap().unwrap();
    let put = |p: &Partial, i: u32| {
        let mut enc = Vec::new();
        served.encode(layout.piece_chunks(i), &mut enc).unwrap();
        p.write_piece(layout.piece_chunks(i), &enc).unwrap();
    };
    {
        let p = e.dst.begin_download(&e.id, 2 << 20, &part_path).unwrap();
        put(&p, 0);
        put(&p, 1);
        p.checkpoint().unwrap();
        put(&p, 5); // verified but never checkpointed: lost on "crash"
    }
    let p = e.dst.begin_download(&e.id, 2 << 20, &part_path).unwrap();
    assert_eq!(p.verified(), vec![ChunkSpan { start: 0, end: layout.piece_chunks(1).end }]);
    // A partial blob is served for the verified ranges only.
    let s = e.dst.open_served(&e.id).unwrap().unwrap();
    assert!(s.can_serve(&layout.piece_chunks(1)) && !s.can_serve(&layout.piece_chunks(5)));
    for i in 2..layout.piece_count() {
        put(&p, i);
    }
    p.finish(&e.out).unwrap();
    assert_eq!(std::fs::read(&e.out).unwrap(), e.bytes);
}

#[test]
fn changed_file_stops_being_served() {
    let e = env(100_000);
    assert!(e.src.open_served(&e.id).unwrap().is_some());
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut changed = e.bytes.clone();
    changed[7] ^= 1;
    std::fs::write(&e.file, &changed).unwrap();
    assert!(e.src.open_served(&e.id).unwrap().is_none());
    // Sharing it again gives the new id, which is served.
    let again = e.src.share_file(&e.file).unwrap();
    assert_eq!(again.id, ContentId::of(&changed));
    assert!(e.src.open_served(&again.id).unwrap().is_some());
}

#[test]
fn existing_output_is_never_overwritten() {
    let e = env(5000);
    std::fs::write(&e.out, b"precious").unwrap();
    let p = e.dst.begin_download(&e.id, 5000, &e.out.with_extension("part")).unwrap();
    let served = e.src.open_served(&e.id).unwrap().unwrap();
    let span = Layout::new(5000).piece_chunks(0);
    let mut enc = Vec::new();
    served.encode(span, &mut enc).unwrap();
    p.write_piece(span, &enc).unwrap();
    assert!(matches!(p.finish(&e.out), Err(StoreError::Exists(_))));
    assert_eq!(std::fs::read(&e.out).unwrap(), b"precious");
}

#[test]
fn shared_folder_becomes_a_collection_without_symlinks() {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let root = dirs.1.path().join("photos");
    std::fs::create_dir_all(root.join("2024/summer")).unwrap();
    std::fs::write(root.join("a.txt"), b"alpha").unwrap();
    std::fs::write(root.join("2024/summer/b.jpg"), b"beta").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("link")).unwrap();
    let store = Store::open(dirs.0.path()).unwrap();
    let info = store.share(&root).unwrap();
    assert!(info.is_collection);
    let paths: Vec<_> = info.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, vec!["2024/summer/b.jpg", "a.txt"]);
    let bytes = store.read_blob(&info.id, 1 << 20).unwrap().unwrap();
    assert_eq!(ContentId::of(&bytes), info.id);
    assert_eq!(crate::Collection::decode(&bytes).unwrap().entries, info.files);
}

#[test]
fn resume_drops_recorded_ranges_whose_bytes_were_lost() {
    let e = env(2 << 20);
    let layout = Layout::new(2 << 20);
    let part_path = e.out.with_extension("part");
    let served = e.src.open_served(&e.id).unwrap().unwrap();
    {
        let p = e.dst.begin_download(&e.id, 2 << 20, &part_path).unwrap();
        for i in 0..4 {
            let mut enc = Vec::new();
            served.encode(layout.piece_chunks(i), &mut enc).unwrap();
            p.write_piece(layout.piece_chunks(i), &enc).unwrap();
        }
        p.checkpoint().unwrap();
    }
    // As after a power loss: piece 2's bytes never reached the disk.
    let r = layout.piece_bytes(2);
    let f = std::fs::OpenOptions::new().write(true).open(&part_path).unwrap();
    f.write_all_at(&vec![0u8; (r.end - r.start) as usize], r.start).unwrap();
    let p = e.dst.begin_download(&e.id, 2 << 20, &part_path).unwrap();
    let have = layout.pieces_in(&p.verified());
    assert_eq!(have.iter().collect::<Vec<_>>(), vec![0, 1, 3]);
}

#[test]
fn one_writer_per_blob_and_the_second_is_refused_without_touching_the_first() {
    let e = env(200_000);
    let part = e.out.with_extension("part");
    let first = e.dst.begin_download(&e.id, 200_000, &part).unwrap();
    let served = e.src.open_served(&e.id).unwrap().unwrap();
    let layout = Layout::new(200_000);
    let span = layout.piece_chunks(0);
    let mut enc = Vec::new();
    served.encode(span, &mut enc).unwrap();
    first.write_piece(span, &enc).unwrap();
    first.checkpoint().unwrap();
    // A second download of the same blob, into the same partial file or another: refused, and the first's
    // partial file is neither truncated nor reopened.
    for path in [part.clone(), e.out.with_extension("other")] {
        let err = e.dst.begin_download(&e.id, 200_000, &path).unwrap_err();
        assert!(matches!(err, StoreError::InUse(id) if id == e.id), "{err}");
        assert!(err.to_string().contains("already writing"), "{err}");
    }
    assert!(!e.out.with_extension("other").exists(), "the refused download created a file");
    let start = layout.piece_bytes(0);
    let mut back = vec![0u8; (start.end - start.start) as usize];
    std::fs::File::open(&part).unwrap().read_exact_at(&mut back, start.start).unwrap();
    assert_eq!(back, e.bytes[start.start as usize..start.end as usize], "the first writer's data survived");
    // Once the first writer is gone, the same request resumes what it verified.
    drop(first);
    let again = e.dst.begin_download(&e.id, 200_000, &part).unwrap();
    assert_eq!(again.verified(), vec![span]);
}

#[test]
fn a_recheck_catches_a_file_changed_on_disk_after_its_pieces_verified() {
    let e = env(300_000);
    let part = e.out.with_extension("part");
    let partial = e.dst.begin_download(&e.id, 300_000, &part).unwrap();
    let served = e.src.open_served(&e.id).unwrap().unwrap();
    let layout = Layout::new(300_000);
    for i in 0..layout.piece_count() {
        let span = layout.piece_chunks(i);
        let mut enc = Vec::new();
        served.encode(span, &mut enc).unwrap();
        partial.write_piece(span, &enc).unwrap();
    }
    partial.recheck().unwrap();
    // Another program zeroes a range under the download: the verified set does not know, the recheck does.
    std::fs::OpenOptions::new().write(true).open(&part).unwrap().write_all_at(&[0u8; 4096], 100_000).unwrap();
    let err = partial.recheck().unwrap_err();
    assert!(err.to_string().contains("changed on disk"), "{err}");
}

/// The race a CI run hit: a provider read the blob's row while it was partial, the download finished
/// (moved the file, recorded it complete), and the provider then found the partial file gone. Marking the
/// blob stale then would stop the peer serving what it has just completed; a stale mark is taken only for
/// the row that was read.
#[test]
fn a_download_that_completes_under_a_reader_is_not_marked_stale() {
    let size = 3 << 20;
    let e = env(size);
    let layout = Layout::new(size as u64);
    let partial = e.dst.begin_download(&e.id, size as u64, &e.out.with_extension("part")).unwrap();
    let served = e.src.open_served(&e.id).unwrap().unwrap();
    for i in 0..layout.piece_count() {
        let mut enc = Vec::new();
        served.encode(layout.piece_chunks(i), &mut enc).unwrap();
        partial.write_piece(layout.piece_chunks(i), &enc).unwrap();
    }
    let read_while_partial = e.dst.catalog.blob(&e.id).unwrap().unwrap();
    assert_eq!(read_while_partial.state, crate::blobs::BlobState::Partial);
    partial.finish(&e.out).unwrap();
    assert!(!e.dst.catalog.set_state_stale_if_unchanged(&read_while_partial).unwrap(), "the row moved on");
    let now = e.dst.open_served(&e.id).unwrap().expect("the completed blob is still served");
    assert!(now.is_complete(), "served as complete");
    // The row as it is now can be marked (a file that really went away).
    let current = e.dst.catalog.blob(&e.id).unwrap().unwrap();
    assert!(e.dst.catalog.set_state_stale_if_unchanged(&current).unwrap());
    assert!(e.dst.open_served(&e.id).unwrap().is_none());
}
