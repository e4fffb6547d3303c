//! `shoal-link-bench`: real `shoal` processes over emulated Internet links (network namespaces joined by
//! `shoal-link`'s emulator: one-way delay, a rate cap and a bounded queue per direction), next to plain TCP
//! streams over the same links in the same run.
//!
//! ```text
//! cargo build --release -p shoal-cli && target/release/shoal-link-bench            # the whole matrix
//! target/release/shoal-link-bench --rtt-ms 100 --rate-mbs 25 --size-mib 256 --sources 1,4
//! target/release/shoal-link-bench --rtt-ms 100 --folder 1000x64 --size-mib 0
//! ```
//!
//! The lab: a router host, the downloader's host and one host per source, each joined to the router by its
//! own access link. A source's link has the case's rate and all of the round trip's delay; the downloader's
//! has no delay and room for every source at once, so the ideal is `sources x rate` and the round trip to
//! each source is the case's. Sources reach each other over two links (their DHT traffic crosses the
//! emulator too); nothing reaches anything over loopback.
//!
//! Each case starts N `shoal share` processes (the first N source hosts; each bootstraps to the first, so
//! their DHT holds every provider record) and one `shoal get`, with a ticket that names every source
//! (`--ticket all`, the default) or only the first (`--ticket one`: the others must be found through the DHT).
//! Figures: file bytes over the downloader's own transfer time (first provider's answer to the last verified
//! piece), and over the whole `shoal get` process (start to exit, what a user waits for); the baseline is N
//! TCP streams, one per source over its own link, carrying the same bytes between the same hosts.
//!
//! TCP's buffer limits are each namespace's: by default the kernel lets a socket's buffer grow to 6 MiB
//! (receive) and 4 MiB (send), which caps one TCP connection at that much per round trip (20 MB/s at
//! 300 ms). `--tcp-buffer-mib` (default 64) raises both in every host, as a tuned host would; `0` keeps the
//! kernel's defaults. `SHOAL_BENCH_LOG=shoal_node=debug` shows the downloader's log (each provider's window).
//! Needs root.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use shoal_link::{Lab, Shape};
use shoal_node::Ticket;

mod benchkit;
mod sample;

const ROUTER: usize = 0;
const DOWNLOADER: usize = 1;
const FIRST_SOURCE: usize = 2;

struct Args {
    rtts: Vec<u64>,
    rates: Vec<u64>,
    sizes: Vec<u64>,
    sources: Vec<usize>,
    folder: Option<(usize, u64)>,
    runs: usize,
    quic: bool,
    ticket_all: bool,
    tcp_buffer_mib: u64,
    mtu: u32,
    dir: Option<PathBuf>,
}

fn list<T: std::str::FromStr>(v: &str, flag: &str) -> anyhow::Result<Vec<T>> {
    v.split(',').map(|s| s.trim().parse::<T>().map_err(|_| anyhow::anyhow!("{flag} takes e.g. 1,4"))).collect()
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        rtts: vec![20, 100, 300],
        rates: vec![25, 100],
        sizes: vec![64, 256, 1024],
        sources: vec![1, 4],
        folder: None,
        runs: 1,
        quic: false,
        ticket_all: true,
        tcp_buffer_mib: 64,
        mtu: 9000,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--rtt-ms" => a.rtts = list(&val()?, &flag)?,
            "--rate-mbs" => a.rates = list(&val()?, &flag)?,
            "--size-mib" => a.sizes = list::<u64>(&val()?, &flag)?.into_iter().filter(|s| *s > 0).collect(),
            "--sources" => a.sources = list(&val()?, &flag)?,
            "--folder" => {
                let v = val()?;
                let (n, kib) = v.split_once('x').context("--folder takes FILESxKIB, e.g. 1000x64")?;
                a.folder = Some((n.parse().context("--folder FILES")?, kib.parse().context("--folder KIB")?));
            }
            "--runs" => a.runs = val()?.parse::<usize>().context("--runs takes a number")?.max(1),
            "--transport" => {
                a.quic = match val()?.as_str() {
                    "tcp" => false,
                    "quic" => true,
                    other => bail!("--transport is tcp or quic, not {other:?}"),
                }
            }
            "--ticket" => {
                a.ticket_all = match val()?.as_str() {
                    "all" => true,
                    "one" => false,
                    other => bail!("--ticket is all or one, not {other:?}"),
                }
            }
            "--tcp-buffer-mib" => a.tcp_buffer_mib = val()?.parse().context("--tcp-buffer-mib takes a number")?,
            "--mtu" => a.mtu = val()?.parse().context("--mtu takes a number")?,
            "--dir" => a.dir = Some(PathBuf::from(val()?)),
            "-h" | "--help" => {
                println!(
                    "usage: shoal-link-bench [--rtt-ms 20,100,300] [--rate-mbs 25,100] [--size-mib 64,256,1024]\n\
                     \x20      [--sources 1,4] [--folder 1000x64] [--runs N] [--transport tcp|quic]\n\
                     \x20      [--ticket all|one] [--tcp-buffer-mib 64] [--mtu 9000] [--dir DIR]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if a.sources.contains(&0) || a.rates.contains(&0) {
        bail!("--sources and --rate-mbs must be at least 1");
    }
    Ok(a)
}

/// What is shared: a file or a folder, its bytes, and how to check the copy.
struct Input {
    path: PathBuf,
    bytes: u64,
    label: String,
    digest: String,
}

/// BLAKE3 over a folder's files in name order (names and contents), or of a file.
fn digest(p: &Path) -> anyhow::Result<String> {
    if !p.is_dir() {
        return Ok(sample::blake3_file(p)?);
    }
    let mut names: Vec<_> = std::fs::read_dir(p)?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
    names.sort();
    let mut h = blake3::Hasher::new();
    for n in names {
        h.update(n.as_encoded_bytes());
        h.update_reader(std::fs::File::open(p.join(&n))?)?;
    }
    Ok(h.finalize().to_hex().to_string())
}

fn make_inputs(args: &Args, work: &Path) -> anyhow::Result<Vec<Input>> {
    let mut out = Vec::new();
    for &mib in &args.sizes {
        let path = work.join(format!("file-{mib}MiB.bin"));
        eprintln!("writing {mib} MiB ...");
        sample::write_pseudo_random(&path, mib << 20)?;
        out.push(Input { digest: digest(&path)?, path, bytes: mib << 20, label: format!("{mib} MiB file") });
    }
    if let Some((n, kib)) = args.folder {
        let path = work.join(format!("folder-{n}x{kib}KiB"));
        std::fs::create_dir_all(&path)?;
        eprintln!("writing {n} files of {kib} KiB ...");
        for i in 0..n {
            let f = path.join(format!("f{i:05}.bin"));
            sample::write_pseudo_random(&f, kib << 10)?;
            // Different contents: the same bytes would be one blob.
            std::fs::OpenOptions::new().write(true).open(&f)?.write_all_at(&(i as u64).to_le_bytes(), 0)?;
        }
        out.push(Input {
            digest: digest(&path)?,
            path,
            bytes: n as u64 * (kib << 10),
            label: format!("folder {n} x {kib} KiB"),
        });
    }
    Ok(out)
}

/// The lab for one round trip and rate, with `sources` source hosts.
fn make_lab(args: &Args, rtt_ms: u64, rate: u64, sources: usize) -> anyhow::Result<Lab> {
    let mut lab = Lab::new(FIRST_SOURCE + sources)?;
    // The downloader's access link: no delay, room for every source.
    let wide = Shape::new(Duration::ZERO, rate * sources as u64 * 2).with_queue(64 << 20);
    lab.connect(ROUTER, DOWNLOADER, wide, wide, args.mtu)?;
    let source = Shape::new(Duration::from_micros(rtt_ms * 500), rate);
    for s in 0..sources {
        lab.connect(ROUTER, FIRST_SOURCE + s, source, source, args.mtu)?;
    }
    lab.route_through(ROUTER)?;
    if args.tcp_buffer_mib > 0 {
        let max = (args.tcp_buffer_mib << 20).to_string();
        for h in 0..FIRST_SOURCE + sources {
            lab.sysctl(h, "ipv4/tcp_rmem", &format!("4096 131072 {max}"))?;
            lab.sysctl(h, "ipv4/tcp_wmem", &format!("4096 16384 {max}"))?;
        }
    }
    Ok(lab)
}

/// The address of `host` on its access link.
fn addr_of(lab: &Lab, host: usize) -> anyhow::Result<std::net::Ipv4Addr> {
    Ok(lab.link(host - 1).context("no such link")?.b_addr)
}

/// Baseline: one TCP stream per source host to the downloader's host, each with its share of the input's
/// bytes, read from the file and written to a file. Seconds until the last byte is written.
fn tcp_streams(lab: &Lab, input: &Input, sources: usize, work: &Path) -> anyhow::Result<f64> {
    let dst = addr_of(lab, DOWNLOADER)?;
    let out = work.join("tcp-out.bin");
    std::fs::File::create(&out)?.set_len(input.bytes)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let out2 = out.clone();
    let receiver = lab.spawn_in(DOWNLOADER, move || -> anyhow::Result<()> {
        let l = TcpListener::bind((dst, 0))?;
        tx.send(l.local_addr()?)?;
        let mut threads = Vec::new();
        for _ in 0..sources {
            let (mut s, _) = l.accept()?;
            let f = std::fs::OpenOptions::new().write(true).open(&out2)?;
            threads.push(std::thread::spawn(move || -> std::io::Result<()> {
                let mut off = [0u8; 8];
                s.read_exact(&mut off)?;
                let mut at = u64::from_le_bytes(off);
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = s.read(&mut buf)?;
                    if n == 0 {
                        return Ok(());
                    }
                    f.write_all_at(&buf[..n], at)?;
                    at += n as u64;
                }
            }));
        }
        for t in threads {
            t.join().map_err(|_| anyhow::anyhow!("receiver panicked"))??;
        }
        Ok(())
    })?;
    let to: SocketAddr = rx.recv_timeout(Duration::from_secs(10))?;
    let t0 = Instant::now();
    let share = input.bytes.div_ceil(sources as u64);
    let mut senders = Vec::new();
    for s in 0..sources {
        let path = if input.path.is_dir() { None } else { Some(input.path.clone()) };
        let (start, end) = ((s as u64 * share).min(input.bytes), ((s as u64 + 1) * share).min(input.bytes));
        senders.push(lab.spawn_in(FIRST_SOURCE + s, move || -> anyhow::Result<()> {
            let mut c = TcpStream::connect_timeout(&to, Duration::from_secs(10))?;
            c.write_all(&start.to_le_bytes())?;
            let f = path.map(std::fs::File::open).transpose()?;
            let mut buf = vec![0x33u8; 1 << 20];
            let mut at = start;
            while at < end {
                let n = ((end - at) as usize).min(buf.len());
                if let Some(f) = &f {
                    f.read_exact_at(&mut buf[..n], at)?;
                }
                c.write_all(&buf[..n])?;
                at += n as u64;
            }
            Ok(())
        })?);
    }
    for s in senders {
        s.join().map_err(|_| anyhow::anyhow!("sender panicked"))???;
    }
    receiver.join().map_err(|_| anyhow::anyhow!("receiver panicked"))???;
    let secs = t0.elapsed().as_secs_f64();
    std::fs::remove_file(&out)?;
    Ok(secs)
}

struct Run {
    transfer_secs: f64,
    process_secs: f64,
    contributors: usize,
    received_ratio: f64,
}

fn listen_on(ip: std::net::Ipv4Addr, quic: bool) -> String {
    if quic { format!("/ip4/{ip}/udp/0/quic-v1") } else { format!("/ip4/{ip}/tcp/0") }
}

/// One Shoal download of `input` from `sources` sharers.
fn shoal_case(shoal: &Path, lab: &Lab, args: &Args, input: &Input, sources: usize, work: &Path) -> anyhow::Result<Run> {
    let mut sharers = Vec::new();
    let mut tickets: Vec<Ticket> = Vec::new();
    for s in 0..sources {
        let host = FIRST_SOURCE + s;
        let home = work.join(format!("src-{s}"));
        let _ = std::fs::remove_dir_all(&home);
        let mut cmd = lab.command(host, shoal)?;
        cmd.arg("--home").arg(&home).arg("--mdns").arg("false");
        cmd.arg("--listen").arg(listen_on(addr_of(lab, host)?, args.quic));
        if let Some(first) = tickets.first().and_then(|t| t.providers.first()) {
            let (peer, addrs) = first;
            for a in addrs {
                cmd.arg("--bootstrap").arg(format!("{a}/p2p/{peer}"));
            }
        }
        let (sharer, ticket) = benchkit::start_sharer(cmd, &input.path)?;
        sharers.push(sharer);
        tickets.push(ticket);
    }
    let mut ticket = tickets.first().cloned().context("no sources")?;
    if args.ticket_all {
        ticket.providers = tickets.iter().flat_map(|t| t.providers.clone()).collect();
    }
    // The DHT's records are put when the sharers start: give the later ones a moment to reach the first.
    if !args.ticket_all {
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = work.join("out");
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_file(&out);
    let home = work.join("dst");
    let _ = std::fs::remove_dir_all(&home);
    let t0 = Instant::now();
    let mut cmd = lab.command(DOWNLOADER, shoal)?;
    let child = cmd
        .arg("--home")
        .arg(&home)
        .arg("--mdns")
        .arg("false")
        .arg("--listen")
        .arg(listen_on(addr_of(lab, DOWNLOADER)?, args.quic))
        .arg("get")
        .arg(ticket.to_string())
        .arg("-o")
        .arg(&out)
        .arg("--json")
        .env("RUST_LOG", std::env::var("SHOAL_BENCH_LOG").unwrap_or_else(|_| "error".into()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if std::env::var_os("SHOAL_BENCH_LOG").is_some() { Stdio::inherit() } else { Stdio::piped() })
        .spawn()
        .context("starting shoal get")?;
    let got = child.wait_with_output()?;
    let process_secs = t0.elapsed().as_secs_f64();
    drop(sharers);
    if !got.status.success() {
        bail!("shoal get failed: {}", String::from_utf8_lossy(&got.stderr).trim());
    }
    let v: serde_json::Value = serde_json::from_slice(&got.stdout).context("reading get's JSON report")?;
    let transfer_secs = v["transfer_seconds"].as_f64().unwrap_or(f64::NAN);
    let received_ratio = v["received"].as_f64().unwrap_or(f64::NAN) / input.bytes as f64;
    let contributors = v["peers"].as_array().map_or(0, |a| a.iter().filter(|p| p["bytes"].as_u64() > Some(0)).count());
    let d = digest(&out)?;
    if d != input.digest {
        bail!("the copy of the {} differs from the input", input.label);
    }
    if out.is_dir() {
        std::fs::remove_dir_all(&out)?
    } else {
        std::fs::remove_file(&out)?
    }
    Ok(Run { transfer_secs, process_secs, contributors, received_ratio })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    if let Some(why) = shoal_link::unavailable() {
        bail!("the link emulator cannot run here: {why}");
    }
    let shoal = benchkit::shoal_binary()?;
    let tmp = benchkit::scratch(args.dir.as_deref())?;
    let work = tmp.path();
    let inputs = make_inputs(&args, work)?;
    let max_sources = args.sources.iter().copied().max().unwrap_or(1);
    println!(
        "shoal-link-bench: {} over emulated links, MTU {}, TCP buffers {}, ticket names {} source(s), {} run(s) each (medians)",
        if args.quic { "QUIC" } else { "TCP" },
        args.mtu,
        if args.tcp_buffer_mib > 0 { format!("up to {} MiB", args.tcp_buffer_mib) } else { "kernel default".into() },
        if args.ticket_all { "every" } else { "the first" },
        args.runs
    );
    println!(
        "{:>5} {:>6} {:<20} {:>4} | {:>8} {:>7} | {:>8} {:>7} {:>7} | {:>9} {:>5} {:>7}",
        "RTT", "MB/s", "what", "src", "ideal", "TCP", "shoal", "%ideal", "vs TCP", "whole get", "used", "recv"
    );
    for &rtt in &args.rtts {
        for &rate_mbs in &args.rates {
            let rate = rate_mbs * 1_000_000;
            let lab = make_lab(&args, rtt, rate, max_sources)?;
            for input in &inputs {
                for &n in &args.sources {
                    let ideal = (n as u64 * rate) as f64 / 1e6;
                    let mut tcp = Vec::new();
                    let mut runs = Vec::new();
                    for _ in 0..args.runs {
                        tcp.push(input.bytes as f64 / tcp_streams(&lab, input, n, work)? / 1e6);
                        runs.push(shoal_case(&shoal, &lab, &args, input, n, work)?);
                    }
                    let tcp = median(tcp);
                    let mbs = median(runs.iter().map(|r| input.bytes as f64 / r.transfer_secs / 1e6).collect());
                    let whole = median(runs.iter().map(|r| input.bytes as f64 / r.process_secs / 1e6).collect());
                    let used = runs.iter().map(|r| r.contributors).min().unwrap_or(0);
                    let recv = median(runs.iter().map(|r| r.received_ratio).collect());
                    println!(
                        "{:>5} {:>6} {:<20} {:>4} | {:>8.1} {:>7.1} | {:>8.1} {:>6.0}% {:>7.2} | {:>9.1} {:>5} {:>6.3}x",
                        format!("{rtt}ms"),
                        rate_mbs,
                        input.label,
                        n,
                        ideal,
                        tcp,
                        mbs,
                        100.0 * mbs / ideal,
                        mbs / tcp,
                        whole,
                        format!("{used}/{n}"),
                        recv
                    );
                }
            }
            let drops: Vec<String> = (0..=max_sources)
                .filter_map(|k| lab.link(k).map(|l| l.counts()))
                .map(|[ab, ba]| format!("{}/{}", ab.dropped, ba.dropped))
                .collect();
            eprintln!("  link drops (router->host/host->router): {}", drops.join(" "));
        }
    }
    println!("ideal: sources x link rate. TCP: one TCP stream per source over its own link, same bytes, same hosts.");
    println!("shoal: file bytes over the downloader's transfer time (first answer to last verified piece);");
    println!("whole get: over the `shoal get` process from start to exit. used: sources that sent pieces.");
    Ok(())
}
