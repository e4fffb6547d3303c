//! A folder's small files, fetched many at once: each file (at most `shoal_store::small::MAX_SMALL`)
//! travels whole in one answer, so there is nothing to schedule within a file, and what matters is not
//! paying a round trip, a stream and two `fsync`s per file.
//!
//! Every provider gets [`STREAMS_PER_PROVIDER`] streams, each taking the next file from one shared queue
//! while the provider's bytes in flight (over all its streams) are within its [`Window`] (the same
//! sans-IO window as a file's pieces: delivery rate times the round trip, halved when answers queue), so a
//! 100 ms link is kept full rather than paying a round trip per file or per fixed handful of files: fast providers take more, and a provider that lacks a file,
//! sends a bad one or breaks its stream hands the file back to the queue for the others (a stream that
//! broke is opened again, a few times). Verified files are written in batches (`Store::finish_small`: one
//! sync before their names appear and one after, one catalog transaction). Files already in place from an
//! earlier run are checked and kept (`Store::adopt_small`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{Multiaddr, PeerId};
use shoal_proto::transfer::messages::{MAX_FRAME, MAX_PAYLOAD};
use shoal_proto::transfer::{CHUNK, ChunkSpan, Request, Response, Sent, Window, WindowConfig};
use shoal_store::ContentId;
use shoal_store::small::{SmallBlob, verify_small};
use tokio::sync::{mpsc, watch};

use super::download::{PeerReport, Progress};
use crate::blocking::blocking;
use crate::framing::{read_frame, write_frame};
use crate::{Node, NodeError};

/// Streams opened to each provider (its server prepares answers of several streams at once).
const STREAMS_PER_PROVIDER: usize = 4;
/// Requests in flight per stream at most, whatever the window allows (4,096 files in flight per provider).
const MAX_DEPTH: usize = 1024;
/// A provider's window starts here (16 files of 64 KiB, 256 of 4 KiB). A file's pieces start at one piece
/// (swarms, see `shoal_proto::transfer::scheduler`); a folder's small files are asked of a few providers
/// at once, never of a swarm, and one file per round trip at the start would cost seconds over long links.
const INITIAL_WINDOW: u64 = 1 << 20;
/// A stream that broke is opened again this many times.
const REOPENS: usize = 3;
/// A stream with requests outstanding and no answer for this long is given up and opened again (its
/// files go back to the queue). Seen once in 20 benchmark runs on a loaded machine: every stream of a
/// download silent for 30 s, cause not found; a fresh stream is cheap. At most 1 MiB per answer, so this
/// asks for 70 KB/s at the least.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// Files written per batch, at most, and bytes.
const BATCH_FILES: usize = 512;
const BATCH_BYTES: u64 = 16 << 20;

/// One small file of the folder.
#[derive(Clone, Debug)]
pub(crate) struct SmallFile {
    pub(crate) id: ContentId,
    pub(crate) size: u64,
    pub(crate) target: PathBuf,
}

/// The queue of files not yet fetched, shared by every stream.
struct Queue {
    todo: Mutex<VecDeque<usize>>,
    /// Providers that could not give a file, by file.
    failed: Mutex<HashMap<usize, HashSet<PeerId>>>,
}

impl Queue {
    /// The next file `peer` has not failed.
    fn next(&self, peer: &PeerId) -> Option<usize> {
        let failed = shoal_store::lock(&self.failed);
        let mut todo = shoal_store::lock(&self.todo);
        let at = todo.iter().position(|i| failed.get(i).is_none_or(|f| !f.contains(peer)))?;
        todo.remove(at)
    }

    fn give_back(&self, i: usize) {
        shoal_store::lock(&self.todo).push_front(i);
    }
}

/// One provider's window and its bytes in flight, shared by its streams.
struct Pipe {
    window: Window,
    outstanding: u64,
}

/// What the streams tell the collector.
enum Got {
    /// File `i` verified, from `peer`, `received` bytes on the wire.
    Blob { i: usize, blob: SmallBlob, peer: PeerId, received: u64 },
    /// `peer` could not give file `i` (it lacks it, or sent what does not verify).
    Failed { i: usize, peer: PeerId, why: String, received: u64 },
    /// A stream to `peer` ended for good.
    Gone { peer: PeerId, why: String },
}

/// What [`fetch_small`] did: bytes that were in place already, bytes received, and the seconds from the
/// first request to the last file written.
pub(crate) struct Fetched {
    pub(crate) resumed: u64,
    pub(crate) received: u64,
    pub(crate) seconds: f64,
}

/// Fetches `files` from `providers` into their targets, writing through `staging`. Adds each provider's
/// figures to `peers` and the files and bytes to `progress`.
pub(crate) async fn fetch_small(
    node: &Node,
    files: Vec<SmallFile>,
    providers: Vec<(PeerId, Vec<Multiaddr>)>,
    staging: &Path,
    progress: &watch::Sender<Progress>,
    peers: &mut HashMap<PeerId, PeerReport>,
) -> Result<Fetched, NodeError> {
    // In place already (an earlier run, or a crash before a batch was recorded), or empty: no network.
    let store = node.store().clone();
    let all = files.clone();
    let (present, empty) = blocking(move || {
        let mut present = Vec::new();
        for (i, f) in all.iter().enumerate() {
            if store.adopt_small(&f.id, f.size, &f.target)? {
                present.push(i);
            }
        }
        Ok::<_, NodeError>((
            present,
            all.iter().enumerate().filter(|(_, f)| f.size == 0).map(|(i, _)| i).collect::<Vec<_>>(),
        ))
    })
    .await?;
    let mut done: HashSet<usize> = present.iter().copied().collect();
    let mut batch: Vec<(usize, SmallBlob)> = Vec::new();
    for i in empty {
        if !done.contains(&i) {
            let blob = verify_small(&files[i].id, 0, &[])
                .map_err(|e| NodeError::Stalled { id: files[i].id, why: format!("an empty file: {e}") })?;
            batch.push((i, blob));
        }
    }
    let resumed: u64 = present.iter().map(|i| files[*i].size).sum();
    progress.send_modify(|p| {
        p.files_done += present.len();
        p.verified += resumed;
    });
    let queue = Arc::new(Queue {
        todo: Mutex::new((0..files.len()).filter(|i| !done.contains(i) && files[*i].size > 0).collect()),
        failed: Mutex::new(HashMap::new()),
    });
    let wanted = files.len() - done.len() - batch.len();
    let files = Arc::new(files);
    let (tx, mut rx) = mpsc::channel::<Got>(256);
    let mut workers = tokio::task::JoinSet::new();
    let mut alive: HashMap<PeerId, usize> = HashMap::new();
    let mut pipes: Vec<(PeerId, Arc<Mutex<Pipe>>)> = Vec::new();
    let started = Instant::now();
    let window = WindowConfig::default().with_max_bytes(node.config().download.max_bytes_in_flight);
    if wanted > 0 {
        for (peer, addrs) in providers.iter().filter(|(p, _)| *p != node.peer_id()) {
            if alive.contains_key(peer) {
                continue;
            }
            alive.insert(*peer, STREAMS_PER_PROVIDER);
            let pipe = Arc::new(Mutex::new(Pipe { window: Window::new(INITIAL_WINDOW), outstanding: 0 }));
            pipes.push((*peer, pipe.clone()));
            for _ in 0..STREAMS_PER_PROVIDER {
                let (net, q, f, tx) = (node.network().clone(), queue.clone(), files.clone(), tx.clone());
                let link = Link { pipe: pipe.clone(), config: window.clone() };
                workers.spawn(stream_worker(net, *peer, addrs.clone(), q, f, tx, link));
            }
        }
    }
    drop(tx);
    let stall = node.config().download.stall_timeout;
    let mut last_useful = Instant::now();
    let mut writing: Option<tokio::task::JoinHandle<Result<(), shoal_store::StoreError>>> = None;
    let mut fetched = 0usize;
    let mut received_all = 0u64;
    let mut why_not: Vec<String> = Vec::new();
    let total = files.len();
    loop {
        let all_in = fetched >= wanted;
        let batch_bytes: u64 = batch.iter().map(|(_, b)| b.len()).sum();
        let flush = !batch.is_empty() && (all_in || batch.len() >= BATCH_FILES || batch_bytes >= BATCH_BYTES);
        if flush && writing.as_ref().is_none_or(|w| w.is_finished()) {
            if let Some(w) = writing.take() {
                w.await.map_err(|e| NodeError::Task(e.to_string()))??;
            }
            let items: Vec<(SmallBlob, PathBuf)> =
                std::mem::take(&mut batch).into_iter().map(|(i, b)| (b, files[i].target.clone())).collect();
            let (store, staging) = (node.store().clone(), staging.to_path_buf());
            let n = items.len();
            let bytes: u64 = items.iter().map(|(b, _)| b.len()).sum();
            writing = Some(tokio::task::spawn_blocking(move || store.finish_small(items, &staging)));
            progress.send_modify(|p| {
                p.files_done += n;
                p.verified += bytes;
            });
        }
        if all_in && batch.is_empty() {
            break;
        }
        if all_in {
            // Only the last write is left.
            if let Some(w) = writing.take() {
                w.await.map_err(|e| NodeError::Task(e.to_string()))??;
            }
            continue;
        }
        let got = tokio::select! {
            got = rx.recv() => got,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if last_useful.elapsed() > stall {
                    return Err(NodeError::Stalled { id: files[0].id, why: stalled(&why_not, stall) });
                }
                continue;
            }
        };
        let Some(got) = got else {
            // Every stream ended with files left.
            let left = shoal_store::lock(&queue.todo).len();
            why_not.push(format!("{left} of {total} files could not be fetched from any provider"));
            return Err(NodeError::Stalled { id: files[0].id, why: stalled(&why_not, stall) });
        };
        match got {
            Got::Blob { i, blob, peer, received } => {
                received_all += received;
                let r = report(peers, peer);
                r.bytes += blob.len();
                r.received += received;
                if done.insert(i) {
                    fetched += 1;
                    batch.push((i, blob));
                }
                last_useful = Instant::now();
            }
            Got::Failed { i, peer, why, received } => {
                received_all += received;
                report(peers, peer).received += received;
                tracing::debug!(%peer, file = i, %why, "a provider could not give a file");
                let mut failed = shoal_store::lock(&queue.failed);
                let by = failed.entry(i).or_default();
                by.insert(peer);
                if alive.keys().all(|p| by.contains(p)) {
                    return Err(NodeError::Stalled {
                        id: files[i].id,
                        why: format!("no provider could give {} ({why})", files[i].target.display()),
                    });
                }
                drop(failed);
                queue.give_back(i);
            }
            Got::Gone { peer, why } => {
                if let Some(n) = alive.get_mut(&peer) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        alive.remove(&peer);
                        report(peers, peer).dropped.get_or_insert(why.clone());
                        why_not.push(format!("{peer}: {why}"));
                    }
                }
            }
        }
    }
    workers.abort_all();
    for (peer, pipe) in &pipes {
        let p = shoal_store::lock(pipe);
        tracing::debug!(%peer, window_kib = p.window.limit() >> 10, rate_mb_s = p.window.rate() / 1e6,
            fastest_ms = p.window.fastest().map_or(0.0, |d| d.as_secs_f64() * 1e3), "small files: provider window");
    }
    if let Some(w) = writing.take() {
        w.await.map_err(|e| NodeError::Task(e.to_string()))??;
    }
    Ok(Fetched { resumed, received: received_all, seconds: started.elapsed().as_secs_f64() })
}

fn stalled(why: &[String], stall: Duration) -> String {
    if why.is_empty() { format!("no file arrived for {} s", stall.as_secs()) } else { why.join("; ") }
}

fn report(peers: &mut HashMap<PeerId, PeerReport>, p: PeerId) -> &mut PeerReport {
    peers.entry(p).or_insert_with(|| PeerReport { peer: p.to_string(), bytes: 0, received: 0, dropped: None })
}

/// A stream's share of its provider's window.
struct Link {
    pipe: Arc<Mutex<Pipe>>,
    config: WindowConfig,
}

impl Link {
    /// Whether one more request may go out now (a stream with nothing outstanding always may).
    fn room(&self, asked: usize) -> bool {
        let p = shoal_store::lock(&self.pipe);
        asked == 0 || (asked < MAX_DEPTH && p.outstanding < p.window.limit())
    }

    fn sent(&self, bytes: u64) -> Sent {
        let mut p = shoal_store::lock(&self.pipe);
        p.outstanding += bytes;
        p.window.on_send(Instant::now())
    }

    /// A request of `bytes` ended: answered (then it counts for the window) or not.
    fn ended(&self, sent: Sent, bytes: u64, answered: bool) {
        let mut p = shoal_store::lock(&self.pipe);
        p.outstanding = p.outstanding.saturating_sub(bytes);
        if answered {
            p.window.on_answer(sent, bytes, Instant::now(), &self.config);
        }
    }
}

/// One stream to one provider: keeps files asked for while its provider's window allows, reads the answers
/// in order, verifies each. Opens the stream again after it breaks, [`REOPENS`] times; hands back what it
/// had asked for.
async fn stream_worker(
    net: shoal_net::Network,
    peer: PeerId,
    addrs: Vec<Multiaddr>,
    queue: Arc<Queue>,
    files: Arc<Vec<SmallFile>>,
    tx: mpsc::Sender<Got>,
    link: Link,
) {
    let mut why = String::new();
    for _ in 0..=REOPENS {
        let mut asked: VecDeque<(usize, Sent)> = VecDeque::new();
        let r = run_stream(&net, peer, &addrs, &queue, &files, &tx, &mut asked, &link).await;
        hand_back(&mut asked, &link, &queue, &files);
        match r {
            Ok(()) => return,
            Err(e) => {
                tracing::debug!(%peer, why = %e, "small files: a stream ended, opening it again");
                why = e;
            }
        }
        if tx.is_closed() {
            return;
        }
    }
    let _ = tx.send(Got::Gone { peer, why }).await;
}

/// Gives every file a stream had asked for back to the queue (its stream ended) and out of the window.
fn hand_back(asked: &mut VecDeque<(usize, Sent)>, link: &Link, queue: &Queue, files: &[SmallFile]) {
    for (i, sent) in asked.drain(..) {
        link.ended(sent, files[i].size, false);
        queue.give_back(i);
    }
}

/// Asks for more files while the provider's window has room, then flushes. Each file is in `asked` before
/// its request is written, so a write that fails hands it back with the others ([`hand_back`]): taken from
/// the queue and then lost on a failed write, one file was never fetched, and the download waited for it
/// with every other file in until the stall timeout ended it (seen in benchmarks).
async fn ask_more<W: futures::AsyncWrite + Unpin>(
    stream: &mut W,
    peer: &PeerId,
    queue: &Queue,
    files: &[SmallFile],
    asked: &mut VecDeque<(usize, Sent)>,
    link: &Link,
) -> Result<(), String> {
    let mut sent = false;
    while link.room(asked.len())
        && let Some(i) = queue.next(peer)
    {
        let f = &files[i];
        let span = ChunkSpan { start: 0, end: f.size.div_ceil(CHUNK) };
        asked.push_back((i, link.sent(f.size)));
        let get = Request::Get { id: *f.id.as_bytes(), span };
        tokio::time::timeout(ANSWER_TIMEOUT, write_frame(stream, &get, MAX_FRAME))
            .await
            .map_err(|_| format!("a request could not be written for {} s", ANSWER_TIMEOUT.as_secs()))?
            .map_err(|e| e.to_string())?;
        sent = true;
    }
    if sent {
        tokio::time::timeout(ANSWER_TIMEOUT, stream.flush())
            .await
            .map_err(|_| format!("requests could not be flushed for {} s", ANSWER_TIMEOUT.as_secs()))?
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn run_stream(
    net: &shoal_net::Network,
    peer: PeerId,
    addrs: &[Multiaddr],
    queue: &Queue,
    files: &[SmallFile],
    tx: &mpsc::Sender<Got>,
    asked: &mut VecDeque<(usize, Sent)>,
    link: &Link,
) -> Result<(), String> {
    let timeout = Duration::from_secs(10);
    tokio::time::timeout(timeout, net.connect(peer, addrs.to_vec()))
        .await
        .map_err(|_| "could not connect within 10 s".to_string())?
        .map_err(|e| e.to_string())?;
    let mut stream = tokio::time::timeout(timeout, net.streams().open_stream(peer, super::PROTOCOL))
        .await
        .map_err(|_| "could not open a transfer stream within 10 s".to_string())?
        .map_err(|e| format!("cannot open a transfer stream: {e}"))?;
    let mut buf = Vec::new();
    loop {
        // Keep the pipe full, then read the oldest answer.
        ask_more(&mut stream, &peer, queue, files, asked, link).await?;
        let Some(&(i, sent_as)) = asked.front() else {
            // Nothing to ask now; files may still come back from other streams that fail them.
            if tx.is_closed() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let resp: Response = tokio::time::timeout(ANSWER_TIMEOUT, read_frame(&mut stream, MAX_FRAME))
            .await
            .map_err(|_| format!("no answer for {} s", ANSWER_TIMEOUT.as_secs()))?
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "provider closed the stream".to_string())?;
        // The file stays in `asked` until its answer is all read: a stream that breaks midway hands it back.
        let got = match resp {
            Response::Data { len } => {
                if len > MAX_PAYLOAD {
                    return Err(format!("payload of {len} bytes is over the limit"));
                }
                buf.resize(len as usize, 0);
                tokio::time::timeout(ANSWER_TIMEOUT, stream.read_exact(&mut buf))
                    .await
                    .map_err(|_| format!("an answer took over {} s", ANSWER_TIMEOUT.as_secs()))?
                    .map_err(|e| e.to_string())?;
                match verify_small(&files[i].id, files[i].size, &buf) {
                    Ok(blob) => Got::Blob { i, blob, peer, received: len },
                    Err(e) => Got::Failed { i, peer, why: e.to_string(), received: len },
                }
            }
            Response::NotFound => Got::Failed { i, peer, why: "it does not have it".into(), received: 0 },
            Response::Refused { reason } => Got::Failed { i, peer, why: reason, received: 0 },
            other => return Err(format!("unexpected answer {other:?}")),
        };
        asked.pop_front();
        link.ended(sent_as, files[i].size, matches!(got, Got::Blob { .. }));
        if tx.send(got).await.is_err() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Takes `left` writes, then fails every write, as a stream whose connection closed.
    struct Breaks {
        left: usize,
    }

    impl futures::AsyncWrite for Breaks {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
            if self.left == 0 {
                return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "connection is closed")));
            }
            self.left -= 1;
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_request_that_cannot_be_written_hands_its_file_back() {
        let files: Vec<SmallFile> = (0..5u8)
            .map(|n| SmallFile { id: ContentId::of(&[n]), size: 1000, target: PathBuf::from(format!("f{n}")) })
            .collect();
        let queue = Queue { todo: Mutex::new((0..files.len()).collect()), failed: Mutex::new(HashMap::new()) };
        let pipe = Arc::new(Mutex::new(Pipe { window: Window::new(INITIAL_WINDOW), outstanding: 0 }));
        let link = Link { pipe: pipe.clone(), config: WindowConfig::default() };
        let peer = PeerId::random();
        let mut asked = VecDeque::new();
        let r = ask_more(&mut Breaks { left: 2 }, &peer, &queue, &files, &mut asked, &link).await;
        assert!(r.is_err(), "the third write fails");
        assert_eq!(asked.len(), 3, "two written and the one whose write failed");
        hand_back(&mut asked, &link, &queue, &files);
        let mut back: Vec<usize> = shoal_store::lock(&queue.todo).iter().copied().collect();
        back.sort_unstable();
        assert_eq!(back, vec![0, 1, 2, 3, 4], "no file lost");
        assert_eq!(shoal_store::lock(&pipe).outstanding, 0);
    }
}
