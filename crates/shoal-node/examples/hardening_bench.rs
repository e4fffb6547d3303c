//! Figures of the hardening work, with their baselines measured in the same run (loopback only, real nodes
//! in this process, real files in a temporary directory):
//!
//! - **files**: a folder of 10,000 files of 4 KiB and one of 1,000 files of 1 MiB from one peer to another
//!   (share, then download until every file is in place and synced), next to `tar c | TCP | tar x` of the
//!   same folder followed by `sync -f`; files/s and MB/s, and whether any of the runs hung.
//! - **attack**: a 64 MiB download from 4 honest sources, alone and with three attackers beside them (one
//!   lies about the size, one asks and never reads, one dials the downloader's sources 1,000 times);
//!   completion time of each and the ratio, and this process's peak RSS.
//! - **churn**: 12 sharers of a 256 MiB file; while it downloads (capped at 16 MB/s, so that it lasts long
//!   enough), a random sharer is stopped every 2 s until 3 remain; the download must complete and verify,
//!   in every run.
//!
//! ```text
//! cargo run --release -p shoal-node --example hardening_bench -- [files|attack|churn|all] [--runs N]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: it may stop on what it does not expect

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shoal_node::{DownloadRequest, Node, NodeConfig};
use shoal_testkit::hostile::{Hostile, Lie};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn node(dir: &Path, name: &str) -> Node {
    let tuning = shoal_node::config::DownloadTuning::default().with_stall_timeout(Duration::from_secs(30));
    Node::start(NodeConfig::loopback(dir.join(name)).with_download(tuning)).await.unwrap()
}

/// A folder of `n` files of `size` bytes, 50 to a subfolder.
fn folder(root: &Path, n: usize, size: usize) -> PathBuf {
    let dir = root.join(format!("folder-{n}x{size}"));
    for i in 0..n {
        let d = dir.join(format!("d{:02}", i % 50));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("f{i:05}.bin")), shoal_testkit::random_bytes(size, i as u64 + 7)).unwrap();
    }
    dir
}

/// `tar c -C parent name | TCP (loopback) | tar x -C out`, then `sync -f out`: seconds.
/// Flushes the file system of `dir`, so that a measured run does not pay for writes made before it.
fn settle(dir: &Path) {
    assert!(Command::new("sync").arg("-f").arg(dir).status().unwrap().success());
}

fn tar_over_tcp(src: &Path, out: &Path) -> f64 {
    std::fs::create_dir_all(out).unwrap();
    settle(out);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let t0 = Instant::now();
    let out2 = out.to_path_buf();
    let rx = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        let mut tar = Command::new("tar").arg("x").arg("-C").arg(&out2).stdin(Stdio::piped()).spawn().unwrap();
        std::io::copy(&mut sock, tar.stdin.as_mut().unwrap()).unwrap();
        drop(tar.stdin.take());
        assert!(tar.wait().unwrap().success());
    });
    let mut tar = Command::new("tar")
        .arg("c")
        .arg("-C")
        .arg(src.parent().unwrap())
        .arg(src.file_name().unwrap())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut sock = TcpStream::connect(addr).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut stdout = tar.stdout.take().unwrap();
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        sock.write_all(&buf[..n]).unwrap();
    }
    drop(sock);
    assert!(tar.wait().unwrap().success());
    rx.join().unwrap();
    assert!(Command::new("sync").arg("-f").arg(out).status().unwrap().success());
    t0.elapsed().as_secs_f64()
}

async fn files(runs: usize) {
    let work = tempfile::tempdir().unwrap();
    for (n, size) in [(10_000usize, 4096usize), (1_000, 1 << 20)] {
        let src_dir = folder(work.path(), n, size);
        let bytes = (n * size) as f64;
        let (mut ours, mut base, mut hung) = (Vec::new(), Vec::new(), 0);
        for run in 0..runs {
            let tdir = work.path().join(format!("tar-{n}-{run}"));
            base.push(tar_over_tcp(&src_dir, &tdir));
            std::fs::remove_dir_all(&tdir).unwrap();
            let dir = work.path().join(format!("run-{n}-{run}"));
            let (a, b) = (node(&dir, "a").await, node(&dir, "b").await);
            let info = a.share(&src_dir).await.unwrap();
            let ticket = a.ticket(&info).await.unwrap();
            // A share announces every file to the DHT; the figure is the transfer, not that (a sharer that
            // has been up a while has long finished announcing).
            let deadline = Instant::now() + Duration::from_secs(300);
            while a.network().dht_state(vec![0; 32]).await.unwrap().announcing > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let out = dir.join("out");
            settle(&dir);
            let t0 = Instant::now();
            let req = DownloadRequest::from_ticket(&ticket, Some(out.clone()));
            match tokio::time::timeout(Duration::from_secs(120), async { b.download(req).await?.finish().await }).await
            {
                Ok(Ok(r)) => {
                    assert_eq!(r.files, n);
                    ours.push(t0.elapsed().as_secs_f64());
                }
                Ok(Err(e)) => panic!("run {run}: {e}"),
                Err(_) => hung += 1,
            }
            a.shutdown().await;
            b.shutdown().await;
            std::fs::remove_dir_all(&dir).unwrap();
        }
        let (s, t) = (median(ours.clone()), median(base));
        println!(
            "files {n} x {size} B: shoal {:.0} files/s {:.1} MB/s ({s:.2} s) | tar|tcp|tar+sync {:.0} files/s {:.1} MB/s ({t:.2} s) | {:.1}x | {} of {runs} runs hung",
            n as f64 / s,
            bytes / s / 1e6,
            n as f64 / t,
            bytes / t / 1e6,
            s / t,
            hung
        );
    }
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().split(' ').next()?.parse().ok())
        .unwrap_or(0)
}

async fn attack(runs: usize) {
    let work = tempfile::tempdir().unwrap();
    let bytes = shoal_testkit::random_bytes(64 << 20, 5);
    let (mut calm, mut attacked) = (Vec::new(), Vec::new());
    for run in 0..runs {
        for under_attack in [false, true] {
            let dir = work.path().join(format!("run-{run}-{under_attack}"));
            let mut sources = Vec::new();
            let mut ticket: Option<shoal_node::Ticket> = None;
            for i in 0..4 {
                let n = node(&dir, &format!("s{i}")).await;
                let f = dir.join(format!("file{i}.bin"));
                std::fs::write(&f, &bytes).unwrap();
                let info = n.share(&f).await.unwrap();
                let t = n.ticket(&info).await.unwrap();
                match &mut ticket {
                    None => ticket = Some(t),
                    Some(all) => all.providers.extend(t.providers),
                }
                sources.push(n);
            }
            let mut ticket = ticket.unwrap();
            let mut attackers = Vec::new();
            if under_attack {
                let liar = Hostile::start(Lie::Size(1 << 40)).await.unwrap();
                ticket.providers.insert(0, (liar.peer_id(), liar.addrs()));
                attackers.push(liar);
                let (p, a) = ticket.providers[1].clone();
                attackers.push(Hostile::hoard(p, a, *ticket.id.as_bytes(), bytes.len() as u64, 16).await.unwrap());
                let addr = ticket.providers[2].1[0].clone();
                attackers.push(Hostile::dial_repeatedly(addr, 1_000).await.unwrap());
            }
            let dst = node(&dir, "dst").await;
            let t0 = Instant::now();
            let r = dst.download(DownloadRequest::from_ticket(&ticket, Some(dir.join("out.bin")))).await.unwrap();
            r.finish().await.unwrap();
            let secs = t0.elapsed().as_secs_f64();
            if under_attack {
                attacked.push(secs)
            } else {
                calm.push(secs)
            }
            drop(attackers);
            dst.shutdown().await;
            for s in sources {
                s.shutdown().await;
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
    let (c, a) = (median(calm), median(attacked));
    println!(
        "attack: 64 MiB from 4 sources {c:.2} s alone, {a:.2} s beside a liar, a hoarder and a 1,000-dial flood: {:.2}x; peak RSS of this process {} MiB",
        a / c,
        peak_rss_kib() / 1024
    );
}

async fn churn(runs: usize) {
    let work = tempfile::tempdir().unwrap();
    let bytes = shoal_testkit::random_bytes(256 << 20, 9);
    let input = work.path().join("input.bin");
    std::fs::write(&input, &bytes).unwrap();
    let want = blake3::hash(&bytes);
    drop(bytes);
    let mut ok = 0;
    let mut times = Vec::new();
    for run in 0..runs {
        let dir = work.path().join(format!("run-{run}"));
        let mut sharers = Vec::new();
        let mut ticket: Option<shoal_node::Ticket> = None;
        for i in 0..12 {
            let n = node(&dir, &format!("s{i}")).await;
            let info = n.share(&input).await.unwrap();
            let t = n.ticket(&info).await.unwrap();
            match &mut ticket {
                None => ticket = Some(t),
                Some(all) => all.providers.extend(t.providers),
            }
            sharers.push(Some(n));
        }
        // Capped at 16 MB/s so that the download lasts about 17 s and the sharers are stopped under it (on
        // loopback it would be over before the first one goes).
        let tuning = shoal_node::config::DownloadTuning::default().with_stall_timeout(Duration::from_secs(30));
        let cfg = NodeConfig::loopback(dir.join("dst")).with_download(tuning).with_limits(None, Some(16_000_000), None);
        let dst = Node::start(cfg).await.unwrap();
        let out = dir.join("out.bin");
        let t0 = Instant::now();
        let handle =
            dst.download(DownloadRequest::from_ticket(ticket.as_ref().unwrap(), Some(out.clone()))).await.unwrap();
        let mut rng = shoal_proto::rng::SplitMix64::new(run as u64 + 1);
        let finish = handle.finish();
        tokio::pin!(finish);
        let mut killing = true;
        let result = loop {
            tokio::select! {
                r = &mut finish => break r,
                () = tokio::time::sleep(Duration::from_secs(2)), if killing => {
                    let alive: Vec<usize> = (0..sharers.len()).filter(|i| sharers[*i].is_some()).collect();
                    let victim = alive[(rng.next_u64() % alive.len() as u64) as usize];
                    if let Some(n) = sharers[victim].take() {
                        n.shutdown().await;
                    }
                    killing = alive.len() - 1 > 3;
                }
            }
        };
        if result.is_ok() && blake3::hash(&std::fs::read(&out).unwrap()) == want {
            ok += 1;
            times.push(t0.elapsed().as_secs_f64());
        } else {
            println!("churn run {run}: {result:?}");
        }
        dst.shutdown().await;
        for n in sharers.into_iter().flatten() {
            n.shutdown().await;
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
    println!(
        "churn: 256 MiB at 16 MB/s from 12 sharers, one stopped every 2 s down to 3: {ok} of {runs} runs completed and verified (median {:.1} s)",
        if times.is_empty() { 0.0 } else { median(times) }
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map_or("all", String::as_str).to_string();
    let runs = args.iter().position(|a| a == "--runs").and_then(|i| args.get(i + 1)).and_then(|r| r.parse().ok());
    if matches!(what.as_str(), "files" | "all") {
        files(runs.unwrap_or(20)).await;
    }
    if matches!(what.as_str(), "attack" | "all") {
        attack(runs.unwrap_or(3)).await;
    }
    if matches!(what.as_str(), "churn" | "all") {
        churn(runs.unwrap_or(20)).await;
    }
}
